//! What a plan job keeps for its PR review: the plan reduced to the changes a review can
//! mention (values dropped: they may be sensitive, and the review never shows them), where each
//! comes from in the `.tf` files (computed by the worker, which has the commit, with
//! [`super::locate::locate`]), the plan's own counts, and the repository's `review_comments`
//! setting from the base branch. Stored with the job's report, read when the run is reported.
//!
//! Bounded: at most [`MAX_CHANGES`] changes are kept, most serious first (a review shows at
//! most a few dozen anyway), so a 10,000-resource plan stores a small record. Pure.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::consequence::{Kind, consequence};
use super::locate::{Location, Locations};
use super::pr_review::ReviewComments;
use crate::core::plan::{Plan, PlanSummary};

/// Changes kept per project.
pub const MAX_CHANGES: usize = 500;

/// One planned project's review input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewMaterial {
    /// `resource_changes` that have a consequence ([`consequence`]), without values, most
    /// serious first, at most [`MAX_CHANGES`]; `configuration` kept (module sources).
    pub plan: Plan,
    /// By `resource_changes[].address`.
    pub locations: BTreeMap<String, Location>,
    /// The counts of the whole plan (not of the kept changes).
    pub summary: PlanSummary,
    /// `review_comments` of the base branch's configuration.
    pub comments: ReviewComments,
    /// Changes not kept (over [`MAX_CHANGES`]).
    #[serde(default)]
    pub dropped: usize,
}

impl ReviewMaterial {
    /// Reduces `plan` and `locations` to what a review needs.
    pub fn new(plan: &Plan, locations: &Locations, comments: ReviewComments) -> ReviewMaterial {
        let mut kept: Vec<(Kind, _)> = plan
            .resource_changes
            .iter()
            .filter_map(|rc| consequence(rc).map(|c| (c.kind, rc)))
            .collect();
        kept.sort_by_key(|(kind, _)| *kind);
        let dropped = kept.len().saturating_sub(MAX_CHANGES);
        kept.truncate(MAX_CHANGES);
        let resource_changes = kept
            .into_iter()
            .map(|(_, rc)| {
                let mut rc = rc.clone();
                for v in [
                    &mut rc.change.before,
                    &mut rc.change.after,
                    &mut rc.change.after_unknown,
                    &mut rc.change.before_sensitive,
                    &mut rc.change.after_sensitive,
                ] {
                    *v = Value::Null;
                }
                rc
            })
            .collect::<Vec<_>>();
        let locations = resource_changes
            .iter()
            .filter_map(|rc| {
                locations
                    .get(&rc.address)
                    .map(|l| (rc.address.clone(), l.clone()))
            })
            .collect();
        ReviewMaterial {
            plan: Plan {
                format_version: plan.format_version.clone(),
                terraform_version: plan.terraform_version.clone(),
                resource_changes,
                resource_drift: Vec::new(),
                output_changes: BTreeMap::new(),
                errored: plan.errored,
                configuration: plan.configuration.clone(),
            },
            locations,
            summary: PlanSummary::from_plan(plan),
            comments,
            dropped,
        }
    }

    /// The locations as [`super::pr_review::ReviewProject`] takes them.
    pub fn locations(&self) -> Locations {
        Locations {
            by_address: self.locations.clone(),
            unread: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::plan::parse_plan_json;

    #[test]
    fn values_are_dropped_and_the_most_serious_changes_kept() {
        let mut changes = Vec::new();
        for i in 0..(MAX_CHANGES + 3) {
            changes.push(format!(
                r#"{{"address":"null_resource.c{i}","mode":"managed","type":"null_resource","name":"c{i}","change":{{"actions":["create"],"before":null,"after":{{"secret":"hunter2"}}}}}}"#
            ));
        }
        changes.push(r#"{"address":"null_resource.gone","mode":"managed","type":"null_resource","name":"gone","change":{"actions":["delete"],"before":{"secret":"hunter2"},"after":null}}"#.to_string());
        changes.push(r#"{"address":"null_resource.same","mode":"managed","type":"null_resource","name":"same","change":{"actions":["no-op"],"before":{},"after":{}}}"#.to_string());
        let json = format!(
            r#"{{"format_version":"1.1","terraform_version":"1.0.3","resource_changes":[{}]}}"#,
            changes.join(",")
        );
        let plan = parse_plan_json(json.as_bytes()).unwrap();
        let m = ReviewMaterial::new(&plan, &Locations::default(), ReviewComments::AllChanges);
        assert_eq!(m.plan.resource_changes.len(), MAX_CHANGES);
        assert_eq!(m.dropped, 4);
        assert_eq!(m.plan.resource_changes[0].address, "null_resource.gone");
        assert_eq!(m.summary.add, MAX_CHANGES + 3);
        assert_eq!(m.summary.destroy, 1);
        let text = serde_json::to_string(&m).unwrap();
        assert!(!text.contains("hunter2"));
        let back: ReviewMaterial = serde_json::from_str(&text).unwrap();
        assert_eq!(back, m);
    }
}
