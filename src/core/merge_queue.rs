//! GitHub's merge queue (`merge_group` events, PRODUCT.md §15): what Sluice decides about a
//! queue's temporary commit — which changed files it may trust when the commit cannot be read
//! locally, and the verdicts of the two required checks, `sluice/plan` and `sluice/apply-gate`,
//! on that commit.
//!
//! Pure: the app fetches the commit, plans it, reads the pull request's gate and hands the
//! facts here. Nothing is ever applied from a queue commit; the checks only let GitHub merge
//! the group or eject it. Every text is in [`super::reply::merge_queue`].

use super::projects::{ChangeKind, ChangedFile};
use super::reply::merge_queue as say;
use super::review::patch::PrFile;

/// The most files GitHub's compare API lists for one comparison: "Compare two commits" says
/// the list of changed files "includes up to 300 changed files for the entire comparison"
/// (<https://docs.github.com/en/rest/commits/commits#compare-two-commits>). A list this long
/// may have been cut short, so it is never trusted.
pub const MAX_COMPARE_FILES: usize = 300;

/// The compare API's files as the project detection reads them.
pub fn changed_from_compare(files: &[PrFile]) -> Vec<ChangedFile> {
    files
        .iter()
        .map(|f| ChangedFile {
            path: f.filename.clone(),
            kind: match (f.status.as_str(), &f.previous_filename) {
                ("added", _) => ChangeKind::Added,
                ("removed", _) => ChangeKind::Deleted,
                ("renamed", Some(from)) => ChangeKind::Renamed { from: from.clone() },
                _ => ChangeKind::Modified,
            },
        })
        .collect()
}

/// Whether a changed file can change what Terraform does or how Sluice reads the repository,
/// whatever the configuration says: Terraform and OpenTofu files, variable files, HCL
/// (Terragrunt, lock files) and Sluice's and Atlantis's configuration files.
pub fn may_touch_terraform(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    [
        ".tf",
        ".tofu",
        ".tf.json",
        ".tofu.json",
        ".tfvars",
        ".tfvars.json",
        ".hcl",
    ]
    .iter()
    .any(|ext| name.ends_with(ext))
        || ["sluice.yaml", "sluice.yml", "atlantis.yaml", "atlantis.yml"].contains(&path)
        || path.starts_with("policies/")
}

/// What the compare API's list of files allows when the queue commit itself could not be
/// fetched (so it cannot be planned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompareVerdict {
    /// Nothing Terraform reads changed: both checks succeed at once.
    NoTerraformChanges,
    /// The checks fail, with this description (fail closed).
    Refused(String),
}

/// Judges the compare API's files of a queue commit that could not be fetched.
/// `affected` is whether the base branch's project detection maps any of them to a project.
pub fn compare_verdict(files: &[PrFile], affected: bool) -> CompareVerdict {
    if files.len() >= MAX_COMPARE_FILES {
        return CompareVerdict::Refused(say::compare_truncated(files.len()));
    }
    if affected
        || files.iter().any(|f| {
            may_touch_terraform(&f.filename)
                || f.previous_filename
                    .as_deref()
                    .is_some_and(may_touch_terraform)
        })
    {
        return CompareVerdict::Refused(say::UNFETCHABLE.to_string());
    }
    CompareVerdict::NoTerraformChanges
}

/// How a project's plan on the queue commit went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueuePlan {
    /// Planned; `policy_refuses`: the base branch's policies refuse the plan, or could not
    /// say (fail closed).
    Planned { policy_refuses: bool },
    /// The plan failed, or never ran to its end.
    Failed,
    /// The queue commit does not plan this project (it is not affected by the group).
    NotPlanned,
}

/// One project of the queued pull request that is applied after merge, as the gate sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatedProject {
    pub name: String,
    /// The pull request has a plan of this project for its current head.
    pub reviewed: bool,
    pub queue_plan: QueuePlan,
}

/// A check's verdict on the queue commit: passed or not, and its description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub passed: bool,
    pub description: String,
}

/// `sluice/plan` on the queue commit: every affected project planned. `failed` names the
/// projects whose plan failed.
pub fn plan_verdict(planned: usize, failed: &[String]) -> Verdict {
    match failed.first() {
        None => Verdict {
            passed: true,
            description: say::planned(planned),
        },
        Some(first) => Verdict {
            passed: false,
            description: say::plan_failed(first, failed.len()),
        },
    }
}

/// `sluice/apply-gate` on the queue commit: every project of the queued pull request that is
/// applied after merge has a reviewed plan and passes the pull request's own gate
/// (`pr_refusals`: approvals, requirements and policies on the reviewed plan, as
/// `sluice/apply-gate` on the pull request words them), and its plan on the queue commit
/// succeeded with no blocking policy. The first reason found fails it.
pub fn gate_verdict(pr_refusals: &[String], projects: &[GatedProject]) -> Verdict {
    let unreviewed = projects
        .iter()
        .find(|p| !p.reviewed)
        .map(|p| say::not_reviewed(&p.name));
    let reason = unreviewed
        .or_else(|| pr_refusals.first().cloned())
        .or_else(|| {
            projects.iter().find_map(|p| match &p.queue_plan {
                QueuePlan::Failed => Some(say::queue_plan_failed(&p.name)),
                QueuePlan::Planned {
                    policy_refuses: true,
                } => Some(say::queue_policy_refused(&p.name)),
                _ => None,
            })
        });
    match reason {
        Some(r) => Verdict {
            passed: false,
            description: say::gate_failed(&r),
        },
        None => Verdict {
            passed: true,
            description: say::gate_passed(projects.len()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, status: &str) -> PrFile {
        PrFile {
            filename: name.into(),
            status: status.into(),
            patch: None,
            previous_filename: None,
        }
    }

    #[test]
    fn compare_files_are_trusted_only_below_githubs_limit_and_without_terraform() {
        assert_eq!(
            compare_verdict(&[file("README.md", "modified")], false),
            CompareVerdict::NoTerraformChanges
        );
        assert_eq!(
            compare_verdict(&[], false),
            CompareVerdict::NoTerraformChanges
        );
        let many: Vec<PrFile> = (0..300)
            .map(|i| file(&format!("docs/{i}.md"), "added"))
            .collect();
        let CompareVerdict::Refused(why) = compare_verdict(&many, false) else {
            panic!("300 files may be truncated");
        };
        assert!(why.contains("300"), "{why}");
        for path in [
            "envs/a/main.tf",
            "x/terraform.tfvars",
            "sluice.yaml",
            "live/terragrunt.hcl",
            "policies/cap.yaml",
        ] {
            assert!(
                matches!(
                    compare_verdict(&[file(path, "modified")], false),
                    CompareVerdict::Refused(_)
                ),
                "{path}"
            );
        }
        // A file the detection maps to a project (a `when_modified` pattern) refuses too.
        assert!(matches!(
            compare_verdict(&[file("scripts/x.sh", "modified")], true),
            CompareVerdict::Refused(_)
        ));
        // A Terraform file renamed out of sight still counts.
        let mut moved = file("docs/old.txt", "renamed");
        moved.previous_filename = Some("envs/a/old.tf".into());
        assert!(matches!(
            compare_verdict(&[moved.clone()], false),
            CompareVerdict::Refused(_)
        ));
        assert_eq!(
            changed_from_compare(&[moved, file("a.tf", "removed")]),
            vec![
                ChangedFile {
                    path: "docs/old.txt".into(),
                    kind: ChangeKind::Renamed {
                        from: "envs/a/old.tf".into()
                    }
                },
                ChangedFile {
                    path: "a.tf".into(),
                    kind: ChangeKind::Deleted
                },
            ]
        );
    }

    fn gated(name: &str) -> GatedProject {
        GatedProject {
            name: name.into(),
            reviewed: true,
            queue_plan: QueuePlan::Planned {
                policy_refuses: false,
            },
        }
    }

    #[test]
    fn the_gate_on_the_queue_commit_needs_a_reviewed_gated_and_clean_plan() {
        assert_eq!(
            gate_verdict(&[], &[]),
            Verdict {
                passed: true,
                description: "ready: no project of the pull request applies after merge".into()
            }
        );
        assert!(gate_verdict(&[], &[gated("a"), gated("b")]).passed);
        let check = |p: GatedProject| {
            let v = gate_verdict(&[], &[gated("ok"), p]);
            assert!(!v.passed);
            v.description
        };
        insta::assert_snapshot!(check(GatedProject { reviewed: false, ..gated("a") }), @"not ready: `a` has no reviewed plan for the pull request's head (plan it before queueing)");
        insta::assert_snapshot!(check(GatedProject { queue_plan: QueuePlan::Failed, ..gated("a") }), @"not ready: `a` could not be planned on the queue commit");
        insta::assert_snapshot!(check(GatedProject { queue_plan: QueuePlan::Planned { policy_refuses: true }, ..gated("a") }), @"not ready: the base branch's policies refuse `a`'s plan on the queue commit");
        let v = gate_verdict(&["`a`: needs an approval".to_string()], &[gated("a")]);
        assert_eq!(
            (v.passed, v.description.as_str()),
            (false, "not ready: `a`: needs an approval")
        );
        // A missing reviewed plan is named before what the pull request's gate says.
        let v = gate_verdict(
            &["`b`: needs an approval".to_string()],
            &[GatedProject {
                reviewed: false,
                ..gated("b")
            }],
        );
        assert!(
            v.description.contains("no reviewed plan"),
            "{}",
            v.description
        );
        assert!(
            gate_verdict(
                &[],
                &[GatedProject {
                    queue_plan: QueuePlan::NotPlanned,
                    ..gated("a")
                }]
            )
            .passed
        );
    }

    #[test]
    fn the_plan_check_names_the_first_failure() {
        assert_eq!(
            plan_verdict(2, &[]).description,
            "queue commit: 2 projects planned"
        );
        let v = plan_verdict(3, &["net".into(), "app".into()]);
        assert!(!v.passed);
        assert_eq!(
            v.description,
            "queue commit: `net` and 1 more could not be planned"
        );
    }
}
