//! Tests for `checks`: project checks with annotations, batching, cut output, conclusions, buttons and their parser, the required checks.

use std::collections::BTreeMap;

use super::*;
use crate::core::plan::{FailedStage, PlanSummary, render_diff};
use crate::core::review::locate::tests::{fixture_files, fixture_plan};
use crate::core::review::locate::{LocateInput, locate};
use crate::core::types::{ProjectDir, Workspace};

const SHA: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

fn ctx(sha: &CommitSha) -> CheckContext<'_> {
    CheckContext {
        head_sha: sha,
        bot_name: "sluice",
        command: CommandName::Plan,
        log_url: Some("https://sluice.example.com/runs/7"),
        started_at: Some("2026-11-22T15:00:00Z"),
        completed_at: Some("2026-11-22T15:03:00Z"),
        annotate: ReviewComments::DestroyAndReplace,
        max_annotations: 1_000,
    }
}

fn report(name: &str, outcome: ProjectOutcome) -> ProjectReport {
    ProjectReport {
        project: ProjectName::new(name).unwrap(),
        dir: ProjectDir::new(name).unwrap(),
        workspace: Workspace::default(),
        outcome,
        notes: Vec::new(),
        destroy_plan: false,
    }
}

fn planned(plan: &Plan) -> ProjectOutcome {
    ProjectOutcome::Planned {
        summary: PlanSummary::from_plan(plan),
        diff: render_diff(plan),
        plan_sha256: "ab".repeat(32),
    }
}

#[test]
fn a_project_check_with_annotations_on_the_module_call_and_the_module_file() {
    let sha = CommitSha::new(SHA).unwrap();
    let plan = fixture_plan();
    let (head, base) = fixture_files();
    let dir = ProjectDir::root();
    let locations = locate(
        &plan,
        &LocateInput {
            project_dir: &dir,
            head: &head,
            base: Some(&base),
            bounds: crate::core::review::locate::tests::limits(),
        },
    );
    let report = report("app", planned(&plan));
    let draft = project_check(
        &ctx(&sha),
        &CheckProject {
            report: &report,
            plan: Some(&plan),
            locations: Some(&locations),
            failed_policies: &[],
        },
    );
    assert_eq!(draft.requests(), 1);
    assert_eq!(draft.create.name, "sluice/plan: app");
    let json = serde_json::to_value(&draft.create).unwrap();
    // The annotations, on head lines only (`legacy.tf` is deleted by the PR).
    let places: Vec<String> = draft
        .create
        .output
        .annotations
        .iter()
        .map(|a| {
            format!(
                "{}:{}-{} {:?}",
                a.path, a.start_line, a.end_line, a.annotation_level
            )
        })
        .collect();
    assert_eq!(
        places,
        [
            "main.tf:1-4 Warning",
            "main.tf:6-11 Warning",
            "modules/app/cache.tf:1-6 Warning",
            "modules/app/main.tf:5-10 Warning",
            "modules/bucket/main.tf:9-14 Warning",
            "modules/dns/main.tf:5-9 Warning",
        ]
    );
    insta::assert_snapshot!(serde_json::to_string_pretty(&json).unwrap());
}

/// 1,000 changed blocks: 20 requests of at most 50 annotations; above the cap, the rest are
/// counted in the summary.
#[test]
fn a_thousand_annotations_are_sent_fifty_at_a_time() {
    let sha = CommitSha::new(SHA).unwrap();
    let mut changes = Vec::new();
    let mut text = String::new();
    for i in 0..1_200 {
        changes.push(format!(
            r#"{{"address": "null_resource.r{i}", "change": {{"actions": ["delete", "create"], "replace_paths": [["triggers"]]}}}}"#
        ));
        let _ = write!(text, "resource \"null_resource\" \"r{i}\" {{\n}}\n");
    }
    let plan = crate::core::plan::parse_plan_json(
        format!(r#"{{"resource_changes": [{}]}}"#, changes.join(",")).as_bytes(),
    )
    .unwrap();
    let head: BTreeMap<String, String> = [("big/main.tf".to_string(), text)].into();
    let dir = ProjectDir::new("big").unwrap();
    let locations = locate(
        &plan,
        &LocateInput {
            project_dir: &dir,
            head: &head,
            base: None,
            bounds: crate::core::review::locate::tests::limits(),
        },
    );
    let report = report("big", planned(&plan));
    let draft = project_check(
        &ctx(&sha),
        &CheckProject {
            report: &report,
            plan: Some(&plan),
            locations: Some(&locations),
            failed_policies: &[],
        },
    );
    assert_eq!(draft.requests(), 20);
    assert_eq!(draft.create.output.annotations.len(), 50);
    let mut total = draft.create.output.annotations.len();
    for update in &draft.more_annotations {
        assert!(update.output.annotations.len() <= MAX_ANNOTATIONS_PER_REQUEST);
        assert_eq!(update.output.title, draft.create.output.title);
        assert_eq!(update.output.summary, draft.create.output.summary);
        total += update.output.annotations.len();
    }
    assert_eq!(total, 1_000);
    assert!(
        draft
            .create
            .output
            .summary
            .contains("_200 more changed blocks are not annotated (at most 1000 per check run)._")
    );
    for o in std::iter::once(&draft.create.output)
        .chain(draft.more_annotations.iter().map(|u| &u.output))
    {
        assert!(o.summary.len() <= MAX_OUTPUT);
        assert!(o.text.as_ref().is_none_or(|t| t.len() <= MAX_OUTPUT));
    }
}

/// A plan whose diff is far over the limit: the text is cut inside a closed fence, the summary
/// is whole, and the full log is linked.
#[test]
fn a_huge_diff_is_cut_safely() {
    let sha = CommitSha::new(SHA).unwrap();
    let plan = crate::core::plan::parse_plan_json(
        crate::core::plan::synthetic_plan_json(2_000).as_bytes(),
    )
    .unwrap();
    let report = report("huge", planned(&plan));
    let ProjectOutcome::Planned { diff, .. } = &report.outcome else {
        unreachable!()
    };
    assert!(diff.len() > 10 * MAX_OUTPUT, "{}", diff.len());
    let draft = project_check(
        &ctx(&sha),
        &CheckProject {
            report: &report,
            plan: Some(&plan),
            locations: None,
            failed_policies: &[],
        },
    );
    let out = &draft.create.output;
    let text = out.text.as_ref().unwrap();
    assert!(text.len() <= MAX_OUTPUT, "{}", text.len());
    assert!(text.starts_with("```diff\n"));
    crate::core::plan::split::tests::assert_balanced(text);
    assert!(text.contains("\n```\n\n_Output cut to fit GitHub's 65,535-character limit ("));
    assert!(text.ends_with("full log: <https://sluice.example.com/runs/7>._\n"));
    assert!(out.summary.starts_with("**`huge`** · dir `huge`"));
    assert!(out.summary.contains(&PlanSummary::from_plan(&plan).line()));
    assert!(out.summary.len() <= MAX_OUTPUT);
    // An error keeps its end.
    let failed =
        report_with_error("x".repeat(200) + "\n" + &"line\n".repeat(40_000) + "Error: the end\n");
    let draft = project_check(
        &ctx(&sha),
        &CheckProject {
            report: &failed,
            plan: None,
            locations: None,
            failed_policies: &[],
        },
    );
    let text = draft.create.output.text.unwrap();
    assert!(text.len() <= MAX_OUTPUT);
    assert!(text.contains("Error: the end\n```\n"));
    assert_eq!(draft.create.conclusion, Some(Conclusion::Failure));
}

fn report_with_error(error: String) -> ProjectReport {
    report(
        "broken",
        ProjectOutcome::PlanFailed {
            stage: FailedStage::Plan,
            error,
        },
    )
}

#[test]
fn conclusions_and_buttons_per_outcome() {
    let sha = CommitSha::new(SHA).unwrap();
    let changes = PlanSummary {
        add: 1,
        ..PlanSummary::default()
    };
    let policy = ["no-public-buckets".to_string()];
    let table: Vec<(ProjectOutcome, &[String], &str)> = vec![
        (
            ProjectOutcome::Planned {
                summary: changes.clone(),
                diff: "+ x\n".into(),
                plan_sha256: String::new(),
            },
            &[],
            "Success [apply, plan] Plan: 1 to add, 0 to change, 0 to destroy.",
        ),
        (
            ProjectOutcome::Planned {
                summary: PlanSummary::default(),
                diff: String::new(),
                plan_sha256: String::new(),
            },
            &[],
            "Success [plan] No changes. Your infrastructure matches the configuration.",
        ),
        (
            ProjectOutcome::Planned {
                summary: changes.clone(),
                diff: "+ x\n".into(),
                plan_sha256: String::new(),
            },
            &policy,
            "Failure [plan] Policy failed: no-public-buckets",
        ),
        (
            ProjectOutcome::PlanFailed {
                stage: FailedStage::Init,
                error: "e".into(),
            },
            &[],
            "Failure [plan] Plan failed during init",
        ),
        (
            ProjectOutcome::Applied {
                output: "done".into(),
                summary: Some(changes),
            },
            &[],
            "Success [] Apply complete! Resources: 1 added, 0 changed, 0 destroyed.",
        ),
        (
            ProjectOutcome::ApplyFailed { error: "e".into() },
            &[],
            "Failure [plan] Apply failed",
        ),
        (
            ProjectOutcome::Skipped {
                reason: "queued behind\n#9".into(),
            },
            &[],
            "Neutral [plan] Skipped: queued behind #9",
        ),
    ];
    for (outcome, policies, want) in table {
        let r = report("p", outcome);
        let d = project_check(
            &ctx(&sha),
            &CheckProject {
                report: &r,
                plan: None,
                locations: None,
                failed_policies: policies,
            },
        );
        let got = format!(
            "{:?} [{}] {}",
            d.create.conclusion.unwrap(),
            d.create
                .actions
                .iter()
                .map(|a| a.identifier.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            d.create.output.title
        );
        assert_eq!(got, want);
    }
}

#[test]
fn buttons_are_within_githubs_limits() {
    for b in Button::ALL {
        for scope in [Scope::Project, Scope::Pr] {
            let a = b.action(scope);
            assert!(a.label.chars().count() <= MAX_ACTION_LABEL, "{a:?}");
            assert!(
                a.description.chars().count() <= MAX_ACTION_DESCRIPTION,
                "{a:?}"
            );
            assert!(
                a.identifier.chars().count() <= MAX_ACTION_IDENTIFIER,
                "{a:?}"
            );
        }
    }
}

#[test]
fn a_pressed_button_is_the_comment_command() {
    let head = CommitSha::new(SHA).unwrap();
    let check =
        |identifier: &str, external_id: Option<&str>, check_head: &str| match command_for_action(
            &RequestedAction {
                identifier,
                external_id,
                check_head_sha: check_head,
                pr_head_sha: &head,
            },
        ) {
            Ok(c) => c.canonical("sluice"),
            Err(e) => format!("error: {e}"),
        };
    let table = [
        (
            "apply",
            Some("sluice:plan:network-prod"),
            SHA,
            "sluice apply -p network-prod",
        ),
        (
            "plan",
            Some("sluice:plan:network-prod"),
            SHA,
            "sluice plan -p network-prod",
        ),
        (
            "apply",
            Some("sluice:plan:envs/prod:staging"),
            SHA,
            "sluice apply -p envs/prod:staging",
        ),
        ("apply", Some("sluice:apply-gate"), SHA, "sluice apply"),
        ("plan", Some("sluice:plan"), SHA, "sluice plan"),
        (
            "apply",
            Some("sluice:plan:net"),
            &SHA.to_uppercase(),
            "sluice apply -p net",
        ),
        (
            "destroy",
            Some("sluice:plan:net"),
            SHA,
            "error: unknown action `destroy`",
        ),
        (
            "apply",
            None,
            SHA,
            "error: the check run is not one of Sluice's",
        ),
        (
            "apply",
            Some("other-app:42"),
            SHA,
            "error: the check run is not one of Sluice's",
        ),
        (
            "apply",
            // A project in a directory named `-edge` is one of Sluice's: its button works.
            Some("sluice:plan:-edge"),
            SHA,
            "sluice apply -p=-edge",
        ),
        (
            "apply",
            Some("sluice:plan:a\u{7}b"),
            SHA,
            "error: the check run is not one of Sluice's",
        ),
        (
            "apply",
            Some("sluice:destroy:net"),
            SHA,
            "error: the check run is not one of Sluice's",
        ),
        (
            "apply",
            Some("sluice:plan:net"),
            "0123456789abcdef0123456789abcdef01234567",
            "error: the button belongs to commit 0123456789ab, but the pull request's head is now 4b825dc; use the buttons of the newest check runs",
        ),
    ];
    for (identifier, external_id, check_head, want) in table {
        assert_eq!(
            check(identifier, external_id, check_head),
            want,
            "{identifier} {external_id:?}"
        );
    }
    // Every check Sluice creates parses back.
    for r in [
        CheckRef::Summary,
        CheckRef::ApplyGate,
        CheckRef::Project {
            command: CommandName::Apply,
            project: ProjectName::new("a:b/c").unwrap(),
        },
    ] {
        assert_eq!(CheckRef::parse(&r.external_id()), Some(r));
    }
}

#[test]
fn required_checks_never_wait_forever() {
    let sha = CommitSha::new(SHA).unwrap();
    let [plan, gate] = no_terraform_changes(&ctx(&sha));
    for c in [&plan, &gate] {
        assert_eq!(
            (c.status, c.conclusion),
            (CheckStatus::Completed, Some(Conclusion::Success))
        );
        assert!(c.actions.is_empty());
    }
    assert_eq!(plan.output.title, "No Terraform changes");
    assert_eq!(gate.output.title, "Nothing to apply");

    let p = |name: &str, state: GateState| GateProject {
        project: ProjectName::new(name).unwrap(),
        state,
    };
    let show = |projects: Vec<GateProject>| {
        let c = apply_gate_check(&ctx(&sha), &projects);
        format!(
            "{:?} {:?} [{}] {}",
            c.status,
            c.conclusion,
            c.actions
                .iter()
                .map(|a| a.identifier.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            c.output.title
        )
    };
    let table = [
        (
            vec![p("a", GateState::NoChanges)],
            "Completed Some(Success) [plan] Nothing to apply",
        ),
        (
            vec![p("a", GateState::Applied), p("b", GateState::NoChanges)],
            "Completed Some(Success) [plan] Every change is applied",
        ),
        (
            vec![p("a", GateState::Ready), p("b", GateState::Planning)],
            "InProgress None [] 1 project running",
        ),
        (
            vec![p("a", GateState::Ready), p("b", GateState::PlanFailed)],
            "Completed Some(Failure) [apply, plan] 1 project failed; push a fix or plan again",
        ),
        (
            vec![p("a", GateState::Ready), p("b", GateState::Applied)],
            "Completed Some(ActionRequired) [apply, plan] 1 to apply",
        ),
        (
            vec![p(
                "a",
                GateState::Blocked {
                    unmet: vec!["x".into()],
                },
            )],
            "Completed Some(ActionRequired) [plan] 1 to apply, 1 blocked",
        ),
    ];
    for (projects, want) in table {
        assert_eq!(show(projects), want);
    }
    let gate = apply_gate_check(
        &ctx(&sha),
        &[
            p("prod-db", GateState::Blocked {
                unmet: vec![
                    "requirement `approved` failed: the pull request needs an approving review from someone other than its author (@alice)".into(),
                    "requirement `mergeable` failed: the pull request is not mergeable (`blocked`)".into(),
                ],
            }),
            p("network", GateState::Ready),
            p("dns", GateState::NoChanges),
        ],
    );
    insta::assert_snapshot!(gate.output.summary, @r"
    - 🔒 `prod-db`: blocked
      - requirement `approved` failed: the pull request needs an approving review from someone other than its author (@alice)
      - requirement `mergeable` failed: the pull request is not mergeable (`blocked`)
    - 🟡 `network`: ready — press **Apply** or comment `sluice apply -p network`
    - ✅ `dns`: no changes

    Full log: <https://sluice.example.com/runs/7>
    ");
}

#[test]
fn the_summary_check_lists_every_project() {
    let sha = CommitSha::new(SHA).unwrap();
    let changes = PlanSummary {
        add: 1,
        destroy: 1,
        ..PlanSummary::default()
    };
    let reports = vec![
        report(
            "a",
            ProjectOutcome::Planned {
                summary: changes,
                diff: String::new(),
                plan_sha256: String::new(),
            },
        ),
        report(
            "b",
            ProjectOutcome::PlanFailed {
                stage: FailedStage::Init,
                error: "e".into(),
            },
        ),
    ];
    let c = summary_check(&ctx(&sha), &reports, &[]);
    assert_eq!(c.conclusion, Some(Conclusion::Failure));
    insta::assert_snapshot!(format!("{}\n{}", c.output.title, c.output.summary), @r"
    2 projects: 1 with changes, 1 failed
    | Project | Result |
    |---|---|
    | `a` | ⚠️ 1 to add, 0 to change, 1 to destroy |
    | `b` | ❌ plan failed (init) |

    Full log: <https://sluice.example.com/runs/7>
    ");
    let policies = [(ProjectName::new("a").unwrap(), vec!["caps".to_string()])];
    let c = summary_check(&ctx(&sha), &reports[..1], &policies);
    assert_eq!(c.conclusion, Some(Conclusion::Failure));
    assert!(
        c.output
            .summary
            .contains("| `a` | ⚠️ 1 to add, 0 to change, 1 to destroy · ❌ policy caps |")
    );
    // A project the PR removes (resources left to destroy) fails it, as the status does.
    let removed = [report(
        "gone",
        ProjectOutcome::Removed {
            removal: crate::core::removed::Removal::FilesDeleted,
        },
    )];
    let c = summary_check(&ctx(&sha), &removed, &[]);
    assert_eq!(c.conclusion, Some(Conclusion::Failure));
    assert_eq!(c.output.title, "1 project: 0 with changes, 1 failed");
    // Thousands of projects: the table stops before the limit.
    let many: Vec<ProjectReport> = (0..5_000)
        .map(|i| {
            report(
                &format!("project-{i:05}"),
                ProjectOutcome::Planned {
                    summary: PlanSummary::default(),
                    diff: String::new(),
                    plan_sha256: String::new(),
                },
            )
        })
        .collect();
    let c = summary_check(&ctx(&sha), &many, &[]);
    assert!(c.output.summary.len() <= MAX_OUTPUT);
    assert!(
        c.output
            .summary
            .contains("_More projects are listed in the full log._")
    );
    assert_eq!(c.conclusion, Some(Conclusion::Success));
}

#[test]
fn own_check_runs_are_bounded_and_go_to_projects_that_need_attention() {
    let quiet = || ProjectOutcome::Planned {
        summary: PlanSummary::default(),
        diff: String::new(),
        plan_sha256: String::new(),
    };
    let mut reports: Vec<ProjectReport> = (0..100)
        .map(|i| report(&format!("p{i:03}"), quiet()))
        .collect();
    reports[70].outcome = ProjectOutcome::PlanFailed {
        stage: FailedStage::Plan,
        error: "e".into(),
    };
    reports[80].outcome = ProjectOutcome::Planned {
        summary: PlanSummary {
            destroy: 1,
            ..PlanSummary::default()
        },
        diff: String::new(),
        plan_sha256: String::new(),
    };
    let own = projects_with_own_check(&reports, 10);
    assert_eq!(own.len(), 10);
    assert!(own.contains(&70) && own.contains(&80));
    assert!(own.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(projects_with_own_check(&reports[..3], 10), [0, 1, 2]);
}
