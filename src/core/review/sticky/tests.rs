//! Tests for `sticky`: the summary as users read it, follow-up slots, cuts, retiring slots, finding the comment again.

use super::*;
use crate::core::plan::FailedStage;
use crate::core::types::{ProjectDir, ProjectName, Workspace};

const SHA: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";
const OLD: &str = "0123456789abcdef0123456789abcdef01234567";

fn ctx() -> StickyContext<'static> {
    StickyContext {
        pr: PrNumber::new(12).unwrap(),
        bot_name: "sluice",
        statuses_only: None,
        limits: StickyLimits::default(),
        after_merge: Box::leak(Box::default()),
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

fn planned(
    add: usize,
    change: usize,
    destroy: usize,
    replace: usize,
    diff: String,
) -> ProjectOutcome {
    ProjectOutcome::Planned {
        summary: PlanSummary {
            add,
            change,
            destroy,
            replace,
            ..PlanSummary::default()
        },
        diff,
        plan_sha256: "ab".repeat(32),
    }
}

fn row(name: &str, outcome: ProjectOutcome) -> StickyRow {
    let next = match &outcome {
        ProjectOutcome::Planned { summary, .. } if summary.has_changes() => {
            Some(format!("sluice apply -p {name}"))
        }
        ProjectOutcome::PlanFailed { .. } => Some(format!("sluice plan -p {name}")),
        _ => None,
    };
    StickyRow {
        report: report(name, outcome),
        policy: PolicyCell::Passed,
        lock: LockCell::ThisPr,
        next,
        log_url: None,
    }
}

fn run(sha: &str, rows: Vec<StickyRow>) -> StickyRun {
    StickyRun {
        head_sha: CommitSha::new(sha).unwrap(),
        command: CommandName::Plan,
        at: "2026-11-22 15:03 UTC".into(),
        log_url: Some("https://sluice.example.com/runs/7".into()),
        rows,
    }
}

fn small_run() -> StickyRun {
    let mut db = row(
        "prod-db",
        planned(1, 0, 2, 1, "  # aws_db_instance.main must be replaced\n-/+ resource \"aws_db_instance\" \"main\" {\n      ~ identifier = \"main\" -> \"main-v2\" # forces replacement\n    }\n".into()),
    );
    db.policy = PolicyCell::Failed {
        policies: vec!["no-db-destroy".into()],
    };
    let mut net = row("network", planned(0, 0, 0, 0, String::new()));
    net.lock = LockCell::OtherPr { pr: 9 };
    net.policy = PolicyCell::None;
    let mut app = row(
        "app",
        ProjectOutcome::PlanFailed {
            stage: FailedStage::Init,
            error: "Error: Failed to query available provider packages\n".into(),
        },
    );
    app.policy = PolicyCell::Overridden { by: "dora".into() };
    app.log_url = Some("https://sluice.example.com/runs/7/jobs/3 (x)|y".into());
    run(SHA, vec![db, net, app])
}

#[test]
fn a_small_run_fits_in_one_comment() {
    let history = [PastRun::of(&run(
        OLD,
        vec![row("prod-db", planned(1, 0, 0, 0, "+ x\n".into()))],
    ))];
    let sticky = render_sticky(&ctx(), &small_run(), &history, 0);
    assert!(sticky.follow_ups.is_empty());
    assert!(sticky.retire.is_empty());
    insta::assert_snapshot!(sticky.body);
}

/// Details that no longer need their follow-up comments: those are edited into a note, never
/// deleted (their ids are reused when details grow again).
#[test]
fn slots_a_run_no_longer_needs_are_retired() {
    let sticky = render_sticky(&ctx(), &small_run(), &[], 3);
    let retired: Vec<u32> = sticky.retire.iter().map(|f| f.slot).collect();
    assert_eq!(retired, [1, 2, 3]);
    let m = Marker::parse(&sticky.retire[0].body).unwrap();
    assert_eq!(
        (m.kind, m.superseded),
        (MarkerKind::Detail { slot: 1 }, true)
    );
    insta::assert_snapshot!(sticky.retire[0].body, @r"
    <!-- sluice:detail slot=1 pr=12 superseded -->
    _No longer used: the details of the run for `4b825dc` are in the summary comment._
    ");
}

fn big_diff(lines: usize, tag: &str) -> String {
    let mut s = String::new();
    for i in 0..lines {
        s.push_str(&format!(
            "      ~ attribute_{tag}_{i} = \"old value {i}\" -> \"new value {i}\"\n"
        ));
    }
    s.push_str("```\n<details>\n");
    s
}

#[test]
fn details_that_do_not_fit_go_to_follow_up_slots() {
    let rows: Vec<StickyRow> = (0..20)
        .map(|i| {
            row(
                &format!("p{i:02}"),
                planned(1, 200, 0, 0, big_diff(200, &i.to_string())),
            )
        })
        .collect();
    let run = run(SHA, rows);
    let sticky = render_sticky(&ctx(), &run, &[], 6);
    assert!(sticky.body.len() <= MAX_COMMENT);
    assert!(!sticky.body.contains("<details><summary><code>p00</code>"));
    assert!(
        sticky.body.contains("Detailed output is in the "),
        "{}",
        sticky.body
    );
    let n = sticky.follow_ups.len();
    assert!((2..=10).contains(&n), "{n} follow-ups");
    for (i, f) in sticky.follow_ups.iter().enumerate() {
        assert_eq!(f.slot, i as u32 + 1);
        assert!(f.body.len() <= MAX_COMMENT);
        crate::core::plan::split::tests::assert_balanced(&f.body);
        let m = Marker::parse(&f.body).unwrap();
        assert_eq!(m.kind, MarkerKind::Detail { slot: f.slot });
        assert_eq!(m.head.as_deref(), Some(SHA));
    }
    // Every project's details are somewhere, whole.
    for i in 0..20 {
        let needle = format!("attribute_{i}_199 ");
        assert!(
            sticky.follow_ups.iter().any(|f| f.body.contains(&needle)),
            "{needle}"
        );
    }
    // Slots 1..=6 were live: those beyond what this run uses are retired.
    let retired: Vec<u32> = sticky.retire.iter().map(|f| f.slot).collect();
    assert_eq!(retired, ((n as u32 + 1)..=6).collect::<Vec<_>>());
}

#[test]
fn details_beyond_the_slots_are_cut_with_the_log_linked() {
    let rows: Vec<StickyRow> = (0..100)
        .map(|i| {
            row(
                &format!("p{i:03}"),
                planned(1, 2_000, 0, 0, big_diff(2_000, &i.to_string())),
            )
        })
        .collect();
    let sticky = render_sticky(&ctx(), &run(SHA, rows), &[], 0);
    assert!(sticky.body.len() <= MAX_COMMENT);
    assert!(sticky.follow_ups.len() <= 10, "{}", sticky.follow_ups.len());
    let all: String = sticky.follow_ups.iter().map(|f| f.body.as_str()).collect();
    for i in 0..100 {
        assert!(
            all.contains(&format!("<details><summary><code>p{i:03}</code>")),
            "p{i:03}"
        );
    }
    assert!(all.contains("lines not shown; full log: <https://sluice.example.com/runs/7>"));
    for f in &sticky.follow_ups {
        assert!(f.body.len() <= MAX_COMMENT);
        // Fences and folds are balanced in every part.
        crate::core::plan::split::tests::assert_balanced(&f.body);
    }
}

#[test]
fn thousands_of_projects_keep_the_ones_that_need_attention() {
    let mut rows: Vec<StickyRow> = (0..3_000)
        .map(|i| row(&format!("quiet-{i:04}"), planned(0, 0, 0, 0, String::new())))
        .collect();
    rows.insert(1_500, row("loud", planned(0, 0, 1, 0, "- x\n".into())));
    let sticky = render_sticky(&ctx(), &run(SHA, rows), &[], 0);
    assert!(sticky.body.len() <= MAX_COMMENT);
    assert!(sticky.body.contains("| `loud` | ⚠️ destroys |"));
    assert!(
        sticky
            .body
            .contains("more projects without changes or problems are not listed")
    );
    assert!(sticky.body.starts_with("<!-- sluice:sticky pr=12 -->\n"));
}

#[test]
fn token_mode_without_checks_says_so_once() {
    let mut c = ctx();
    c.statuses_only = Some("the token cannot create check runs (GitHub Apps only)");
    let sticky = render_sticky(&c, &small_run(), &[], 0);
    assert_eq!(
        sticky
            .body
            .matches("commit statuses, not check runs")
            .count(),
        1
    );
    let none = render_sticky(&c, &run(SHA, Vec::new()), &[], 0);
    insta::assert_snapshot!(none.body, @r"
    <!-- sluice:sticky pr=12 -->
    ## sluice plan · `4b825dc` · 2026-11-22 15:03 UTC

    **0 projects**

    No Terraform project is affected by this pull request.

    ℹ️ Results are reported as commit statuses, not check runs: the token cannot create check runs (GitHub Apps only)

    Full log: <https://sluice.example.com/runs/7>
    ");
}

#[test]
fn the_comment_is_found_again_or_recreated() {
    let pr = PrNumber::new(12).unwrap();
    let sticky = |id, by_sluice, pr: u64| ListedComment {
        id,
        by_sluice,
        body: format!("{}\ntext", Marker::new(MarkerKind::Sticky, pr)),
    };
    let plain = ListedComment {
        id: 50,
        by_sluice: true,
        body: "LGTM".into(),
    };
    type Case = (
        &'static str,
        Option<u64>,
        Option<Vec<ListedComment>>,
        Upsert,
    );
    let table: Vec<Case> = vec![
        (
            "stored, not listed",
            Some(7),
            None,
            Upsert::Edit { comment_id: 7 },
        ),
        ("nothing stored", None, None, Upsert::Create),
        (
            "stored and present",
            Some(7),
            Some(vec![sticky(7, true, 12), sticky(9, true, 12)]),
            Upsert::Edit { comment_id: 7 },
        ),
        (
            "deleted by a human: found by marker",
            Some(7),
            Some(vec![sticky(9, true, 12), sticky(11, true, 12)]),
            Upsert::Edit { comment_id: 11 },
        ),
        (
            "marker typed by someone else",
            None,
            Some(vec![sticky(9, false, 12), plain.clone()]),
            Upsert::Create,
        ),
        (
            "another PR's marker",
            None,
            Some(vec![sticky(9, true, 13)]),
            Upsert::Create,
        ),
        (
            "marker edited away by a human",
            Some(7),
            Some(vec![ListedComment {
                id: 7,
                by_sluice: true,
                body: "edited".into(),
            }]),
            Upsert::Create,
        ),
    ];
    for (what, stored, listed, want) in table {
        assert_eq!(
            upsert(MarkerKind::Sticky, pr, stored, listed.as_deref()),
            want,
            "{what}"
        );
    }
    assert_eq!(after_edit_failed(404), Some(Upsert::Create));
    assert_eq!(after_edit_failed(410), Some(Upsert::Create));
    assert_eq!(after_edit_failed(502), None);
}

/// The lock column names the holder: this PR, another PR (as `#n`), or nobody.
#[test]
fn the_lock_column_names_whoever_holds_the_lock() {
    let this = PrNumber::new(12).unwrap();
    let other = PrNumber::new(9).unwrap();
    assert_eq!(LockCell::of(Some(this), this), LockCell::ThisPr);
    assert_eq!(LockCell::of(Some(other), this), LockCell::OtherPr { pr: 9 });
    assert_eq!(LockCell::of(None, this), LockCell::None);
    let mut r = row("net", planned(1, 0, 0, 0, "+ x\n".into()));
    r.lock = LockCell::of(Some(other), this);
    let body = render_sticky(&ctx(), &run(SHA, vec![r]), &[], 0).body;
    assert!(body.contains("| ⏳ #9 |"), "{body}");
}

/// The policy column names the policies behind a project's verdict: failing, waiting for
/// approvals, or warning; a failure without names (the policies could not be read) still says
/// it failed.
#[test]
fn the_policy_column_names_the_policies_behind_the_verdict() {
    let cell = |policy: PolicyCell| {
        let mut r = row("net", planned(1, 0, 0, 0, "+ x\n".into()));
        r.policy = policy;
        render_sticky(&ctx(), &run(SHA, vec![r]), &[], 0).body
    };
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let failed = cell(PolicyCell::Failed {
        policies: names(&["no-db-destroy", "cost`cap"]),
    });
    assert!(
        failed.contains("| ❌ failed: `no-db-destroy`, `` cost`cap `` |"),
        "{failed}"
    );
    let pending = cell(PolicyCell::Pending {
        policies: names(&["two-approvals"]),
    });
    assert!(
        pending.contains("| ⏳ needs approvals: `two-approvals` |"),
        "{pending}"
    );
    let warned = cell(PolicyCell::Warned {
        policies: names(&["tags"]),
    });
    assert!(warned.contains("| ⚠️ warned: `tags` |"), "{warned}");
    let unread = cell(PolicyCell::Failed { policies: vec![] });
    assert!(unread.contains("| ❌ failed |"), "{unread}");
}

/// Whatever a per-run comment said of a project, the summary says too (in its fold): a removed
/// project's explanation and destroy hint, a destroy plan's warning, notes (policy results),
/// a skipped project's reason, the end of an error, the commands to type next.
#[test]
fn the_summary_carries_everything_the_per_run_comment_did() {
    let mut removed = row(
        "app",
        ProjectOutcome::Removed {
            removal: crate::core::removed::Removal::FilesDeleted,
        },
    );
    removed.next = None;
    let mut destroy = row("db", planned(0, 0, 2, 0, "- null_resource.a\n".into()));
    destroy.report.destroy_plan = true;
    destroy.report.notes = vec!["❌ Policy `no-destroys` failed.".into()];
    let skipped = row(
        "net",
        ProjectOutcome::Skipped {
            reason: "not applied: an earlier project failed".into(),
        },
    );
    let mut quiet = row("quiet", planned(0, 0, 0, 0, String::new()));
    quiet.report.notes = vec!["⚠️ a warning about `quiet`".into()];
    let failed = row(
        "web",
        ProjectOutcome::PlanFailed {
            stage: FailedStage::Plan,
            error: "Error: Invalid reference\n  on main.tf line 3\n".into(),
        },
    );
    let all = run(SHA, vec![removed, destroy, skipped, quiet, failed]);
    let body = render_sticky(&ctx(), &all, &[], 0).body;
    for needle in [
        "This pull request removes the project",
        "`sluice plan -p app --destroy`",
        "**Destroy plan**",
        "❌ Policy `no-destroys` failed.",
        "not applied: an earlier project failed",
        "⚠️ a warning about `quiet`",
        "**Plan failed** during `plan`",
        "Error: Invalid reference\n  on main.tf line 3",
        "To **plan** this project again, comment: `sluice plan -p db`",
        "Fix the problem, then plan again: `sluice plan -p web`",
    ] {
        assert!(body.contains(needle), "{needle:?} missing:\n{body}");
    }
    // The destroy warning comes before the summary line inside the fold.
    let caution = body.find("**Destroy plan**").unwrap();
    let summary = body
        .find("**Plan: 0 to add, 0 to change, 2 to destroy.**")
        .unwrap();
    assert!(caution < summary, "{body}");
    crate::core::plan::split::tests::assert_balanced(&body);
}

/// A run of a head the PR has since left goes below the latest head's runs, never on top; an
/// up-to-date run (or one whose latest head is unknown) goes on top; the history stays bounded.
#[test]
fn a_late_run_is_recorded_below_the_latest_heads_runs() {
    let past = |sha: &str, tally: &str| PastRun {
        head_sha: CommitSha::new(sha).unwrap(),
        command: CommandName::Plan,
        at: "2026-11-22 15:03 UTC".into(),
        tally: tally.into(),
        log_url: None,
    };
    let new = CommitSha::new(SHA).unwrap();
    let tallies = |h: &[PastRun]| h.iter().map(|p| p.tally.clone()).collect::<Vec<_>>();
    let mut history = vec![past(SHA, "new b"), past(SHA, "new a"), past(OLD, "old 1")];
    record_run(&mut history, past(OLD, "old late"), Some(&new), 10);
    assert_eq!(tallies(&history), ["new b", "new a", "old late", "old 1"]);
    record_run(&mut history, past(SHA, "new c"), Some(&new), 10);
    assert_eq!(tallies(&history)[0], "new c");
    record_run(&mut history, past(OLD, "unknown head"), None, 3);
    assert_eq!(tallies(&history), ["unknown head", "new c", "new b"]);
}
