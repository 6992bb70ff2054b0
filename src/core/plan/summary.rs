//! Counting a plan: how many objects are added, changed, destroyed, replaced, imported, and the
//! one-line summary people know from terraform (`Plan: 2 to add, 1 to change, 0 to destroy.`).
//!
//! This module owns the counting conventions (they feed the PR comment, commit statuses, policies
//! and the audit log, so they must agree everywhere). It does not render diffs or markdown.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::model::{Action, Plan};

/// The counts of a plan, with terraform's conventions:
///
/// * a replacement counts as one add **and** one destroy (that is what terraform's line says, and
///   what people compare against); `replace` says how many of those adds/destroys are replacements;
/// * data-source reads (`read`) and no-ops are not changes;
/// * `import` counts objects being imported, whatever else happens to them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSummary {
    /// Objects created, including the creating half of replacements.
    pub add: usize,
    /// Objects updated in place.
    pub change: usize,
    /// Objects destroyed, including the destroying half of replacements.
    pub destroy: usize,
    /// Objects replaced (each also counted in `add` and `destroy`).
    pub replace: usize,
    pub import: usize,
    /// Objects removed from state without being destroyed (terraform ≥ 1.7 `removed` blocks).
    pub forget: usize,
    /// Objects that only moved to a new address (`moved` blocks) and are otherwise unchanged.
    pub moved: usize,
    /// Data sources read during apply (not a change).
    pub read: usize,
    pub outputs_changed: usize,
    /// Addresses destroyed outright (not replaced), in plan order.
    pub destroyed: Vec<String>,
    /// Addresses replaced, in plan order.
    pub replaced: Vec<String>,
}

impl PlanSummary {
    pub fn from_plan(plan: &Plan) -> Self {
        let mut s = PlanSummary::default();
        for rc in &plan.resource_changes {
            if rc.is_hidden_data_delete() {
                continue;
            }
            if rc.change.importing.is_some() {
                s.import += 1;
            }
            match rc.change.actions {
                Action::NoOp => {
                    if rc.is_moved() {
                        s.moved += 1;
                    }
                }
                Action::Create => s.add += 1,
                Action::Read => s.read += 1,
                Action::Update => s.change += 1,
                Action::Delete => {
                    s.destroy += 1;
                    s.destroyed.push(rc.display_address());
                }
                Action::DeleteThenCreate | Action::CreateThenDelete => {
                    s.add += 1;
                    s.destroy += 1;
                    s.replace += 1;
                    s.replaced.push(rc.display_address());
                }
                Action::Forget => s.forget += 1,
            }
        }
        s.outputs_changed = plan
            .output_changes
            .values()
            .filter(|c| c.actions != Action::NoOp)
            .count();
        s
    }

    /// True when applying would change infrastructure or state (resources, imports, moves,
    /// forgets), not counting outputs.
    pub fn has_resource_changes(&self) -> bool {
        self.add + self.change + self.destroy + self.import + self.forget + self.moved > 0
    }

    /// True when there is anything to apply at all, outputs included.
    pub fn has_changes(&self) -> bool {
        self.has_resource_changes() || self.outputs_changed > 0
    }

    /// `2 to add, 1 to change, 0 to destroy` (with the import, replacement and forget parts when
    /// non-zero), the core of [`PlanSummary::line`]; also used in the summary table.
    pub fn counts(&self) -> String {
        let mut s = String::new();
        if self.import > 0 {
            s.push_str(&format!("{} to import, ", self.import));
        }
        s.push_str(&format!(
            "{} to add, {} to change, {} to destroy",
            self.add, self.change, self.destroy
        ));
        if self.replace > 0 {
            s.push_str(&format!(
                " ({} {})",
                self.replace,
                plural(self.replace, "replacement", "replacements")
            ));
        }
        if self.forget > 0 {
            s.push_str(&format!(", {} to forget", self.forget));
        }
        s
    }

    /// The one-line summary, in terraform's words.
    pub fn line(&self) -> String {
        if self.has_resource_changes() {
            format!("Plan: {}.", self.counts())
        } else if self.outputs_changed > 0 {
            format!(
                "No resource changes; {} {} will change.",
                self.outputs_changed,
                plural(self.outputs_changed, "output", "outputs")
            )
        } else {
            "No changes. Your infrastructure matches the configuration.".to_string()
        }
    }

    /// Terraform's closing line of a successful apply of this plan.
    pub fn apply_line(&self) -> String {
        let import = if self.import > 0 {
            format!("{} imported, ", self.import)
        } else {
            String::new()
        };
        format!(
            "Apply complete! Resources: {import}{} added, {} changed, {} destroyed.",
            self.add, self.change, self.destroy
        )
    }
}

impl fmt::Display for PlanSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.line())
    }
}

pub(crate) fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::plan::model::parse_plan_json;

    fn summary(json: &str) -> PlanSummary {
        PlanSummary::from_plan(&parse_plan_json(json.as_bytes()).expect("fixture parses"))
    }

    #[test]
    fn fixtures() {
        let check = |json: &str, line: &str| {
            assert_eq!(summary(json).line(), line);
        };
        check(
            include_str!("../../../tests/fixtures/plans/create.json"),
            "Plan: 6 to add, 0 to change, 0 to destroy.",
        );
        // terraform 1.0.3 printed "Plan: 3 to add, 0 to change, 3 to destroy." for this plan.
        check(
            include_str!("../../../tests/fixtures/plans/mixed.json"),
            "Plan: 3 to add, 0 to change, 3 to destroy (2 replacements).",
        );
        check(
            include_str!("../../../tests/fixtures/plans/nochange.json"),
            "No changes. Your infrastructure matches the configuration.",
        );
        check(
            include_str!("../../../tests/fixtures/plans/sensitive.json"),
            "Plan: 2 to add, 0 to change, 1 to destroy (1 replacement).",
        );
        check(
            include_str!("../../../tests/fixtures/plans/aws_db.json"),
            "Plan: 2 to add, 2 to change, 2 to destroy (1 replacement).",
        );
        check(
            include_str!("../../../tests/fixtures/plans/future.json"),
            "Plan: 1 to import, 1 to add, 0 to change, 0 to destroy, 1 to forget.",
        );
    }

    #[test]
    fn mixed_details() {
        let s = summary(include_str!("../../../tests/fixtures/plans/mixed.json"));
        assert_eq!(
            s,
            PlanSummary {
                add: 3,
                change: 0,
                destroy: 3,
                replace: 2,
                import: 0,
                forget: 0,
                moved: 0,
                read: 1,
                outputs_changed: 3,
                destroyed: vec!["null_resource.old[1]".into()],
                replaced: vec![
                    "null_resource.cbd".into(),
                    "null_resource.replace_me".into()
                ],
            }
        );
        assert_eq!(
            s.apply_line(),
            "Apply complete! Resources: 3 added, 0 changed, 3 destroyed."
        );
    }

    #[test]
    fn lines() {
        let check = |s: PlanSummary, expect: &str| assert_eq!(s.line(), expect);
        check(
            PlanSummary::default(),
            "No changes. Your infrastructure matches the configuration.",
        );
        check(
            PlanSummary {
                read: 4,
                ..Default::default()
            },
            "No changes. Your infrastructure matches the configuration.",
        );
        check(
            PlanSummary {
                outputs_changed: 1,
                ..Default::default()
            },
            "No resource changes; 1 output will change.",
        );
        check(
            PlanSummary {
                add: 2,
                change: 1,
                ..Default::default()
            },
            "Plan: 2 to add, 1 to change, 0 to destroy.",
        );
        check(
            PlanSummary {
                import: 1,
                add: 2,
                ..Default::default()
            },
            "Plan: 1 to import, 2 to add, 0 to change, 0 to destroy.",
        );
        check(
            PlanSummary {
                moved: 1,
                ..Default::default()
            },
            "Plan: 0 to add, 0 to change, 0 to destroy.",
        );
        let imported = PlanSummary {
            import: 2,
            add: 1,
            ..Default::default()
        };
        assert_eq!(
            imported.apply_line(),
            "Apply complete! Resources: 2 imported, 1 added, 0 changed, 0 destroyed."
        );
    }

    #[test]
    fn data_source_deletes_are_not_counted() {
        let json = r#"{"resource_changes":[{"address":"data.x.y","mode":"data","type":"x","name":"y",
            "change":{"actions":["delete"],"before":{"id":"1"},"after":null}}]}"#;
        assert!(!summary(json).has_changes());
    }
}
