//! Tests for `surface`: the writes of a push, and the writes and new objects per push for 1, 20 and 100 projects.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, TimeDelta, Utc};

use super::*;
use crate::core::plan::Plan;
use crate::core::plan::{
    CommandName, PlanSummary, ProjectOutcome, ProjectReport, parse_plan_json, render_diff,
};
use crate::core::review::budget::{BudgetLimits, Next, Outcome, WriteBudget};
use crate::core::review::checks::{
    self, CheckContext, CheckProject, GateProject, GateState, apply_gate_check, project_check,
    projects_with_own_check, summary_check,
};
use crate::core::review::locate::{LocateInput, Locations, locate};
use crate::core::review::patch::{PrDiff, PrFile};
use crate::core::review::pr_review::{ReviewComments, ReviewOptions, ReviewProject, build_review};
use crate::core::review::sticky::{
    LockCell, PolicyCell, StickyContext, StickyLimits, StickyRow, StickyRun, render_sticky,
};
use crate::core::types::{ProjectDir, ProjectName, Workspace};

const HEAD1: &str = "1111111111111111111111111111111111111111";
const HEAD2: &str = "2222222222222222222222222222222222222222";
/// Per-project check runs per head (the rest are in the summary check).
const OWN_CHECKS: usize = 10;

struct Project {
    name: ProjectName,
    dir: ProjectDir,
    workspace: Workspace,
    plan: Plan,
    locations: Locations,
    report: ProjectReport,
}

/// `n` projects, each replacing one resource and destroying another, with the PR adding
/// each project's `main.tf`.
fn projects(n: usize) -> (Vec<Project>, Vec<PrFile>) {
    let mut out = Vec::new();
    let mut files = Vec::new();
    for i in 0..n {
        let dir = ProjectDir::new(&format!("envs/p{i:03}")).unwrap();
        let text = "resource \"null_resource\" \"app\" {\n  triggers = {\n    v = \"2\"\n  }\n}\n\nresource \"null_resource\" \"old\" {\n  count = 0\n}\n";
        let path = dir.join("main.tf");
        let head: BTreeMap<String, String> = [(path.clone(), text.to_string())].into();
        let plan = parse_plan_json(
            br#"{"resource_changes": [
              {"address": "null_resource.app", "type": "null_resource", "name": "app", "change": {"actions": ["delete", "create"], "before": {"triggers": {"v": "1"}}, "after": {"triggers": {"v": "2"}}, "replace_paths": [["triggers"]]}},
              {"address": "null_resource.old[0]", "type": "null_resource", "name": "old", "index": 0, "change": {"actions": ["delete"], "before": {"triggers": {}}, "after": null}}
            ]}"#,
        )
        .unwrap();
        let locations = locate(
            &plan,
            &LocateInput {
                project_dir: &dir,
                head: &head,
                base: None,
                bounds: crate::core::review::locate::tests::limits(),
            },
        );
        let name = ProjectName::derived(&dir, &Workspace::default());
        let report = ProjectReport {
            project: name.clone(),
            dir: dir.clone(),
            workspace: Workspace::default(),
            outcome: ProjectOutcome::Planned {
                summary: PlanSummary::from_plan(&plan),
                diff: render_diff(&plan),
                plan_sha256: "ab".repeat(32),
            },
            notes: Vec::new(),
            destroy_plan: false,
        };
        files.push(PrFile {
            filename: path,
            status: "added".into(),
            patch: Some(format!(
                "@@ -0,0 +1,9 @@\n{}",
                text.lines().map(|l| format!("+{l}\n")).collect::<String>()
            )),
            previous_filename: None,
        });
        out.push(Project {
            name,
            dir,
            workspace: Workspace::default(),
            plan,
            locations,
            report,
        });
    }
    (out, files)
}

/// Everything the core renders for one push of a PR with these projects.
fn render(
    head: &CommitSha,
    projects: &[Project],
    files: &[PrFile],
    known: &PrObjects,
) -> Vec<crate::core::review::budget::Write<GitHubWrite>> {
    let pr = PrNumber::new(12).unwrap();
    let ctx = ReviewContext {
        pr,
        head_sha: head,
        summary_url: None,
        log_url: Some("https://sluice.example.com/runs/1"),
    };
    let run = StickyRun {
        head_sha: head.clone(),
        command: CommandName::Plan,
        at: "2026-11-22 15:03 UTC".into(),
        log_url: Some("https://sluice.example.com/runs/1".into()),
        rows: projects
            .iter()
            .map(|p| StickyRow {
                report: p.report.clone(),
                policy: PolicyCell::Passed,
                lock: LockCell::ThisPr,
                next: Some(format!("sluice apply -p {}", p.name)),
                log_url: None,
            })
            .collect(),
    };
    let sticky_ctx = StickyContext {
        pr,
        bot_name: "sluice",
        statuses_only: None,
        limits: StickyLimits::default(),
        after_merge: Box::leak(Box::default()),
    };
    let sticky = render_sticky(&sticky_ctx, &run, &[], known.live_slots);
    let review_projects: Vec<ReviewProject<'_>> = projects
        .iter()
        .map(|p| ReviewProject {
            project: &p.name,
            dir: &p.dir,
            workspace: &p.workspace,
            plan: &p.plan,
            locations: &p.locations,
            summary: None,
        })
        .collect();
    let review = build_review(
        &ctx,
        &review_projects,
        &PrDiff::from_files(files),
        &ReviewOptions::default(),
    );
    let check_ctx = CheckContext {
        head_sha: head,
        bot_name: "sluice",
        command: CommandName::Plan,
        log_url: Some("https://sluice.example.com/runs/1"),
        started_at: None,
        completed_at: None,
        annotate: ReviewComments::DestroyAndReplace,
        max_annotations: 1_000,
    };
    let reports: Vec<ProjectReport> = projects.iter().map(|p| p.report.clone()).collect();
    let project_checks = projects_with_own_check(&reports, OWN_CHECKS)
        .into_iter()
        .map(|i| {
            project_check(
                &check_ctx,
                &CheckProject {
                    report: &projects[i].report,
                    plan: Some(&projects[i].plan),
                    locations: Some(&projects[i].locations),
                    failed_policies: &[],
                },
            )
        })
        .collect();
    let gate: Vec<GateProject> = projects
        .iter()
        .map(|p| GateProject {
            project: p.name.clone(),
            state: GateState::Ready,
        })
        .collect();
    let head_checks = vec![
        summary_check(&check_ctx, &reports, &[]),
        apply_gate_check(&check_ctx, &gate),
    ];
    push_writes(
        &ctx,
        known,
        PushOutput {
            sticky: Some(sticky),
            review,
            project_checks,
            head_checks,
            statuses: Vec::new(),
        },
    )
}

/// What the store would know after sending `writes` (ids made up, as GitHub would return).
fn remember(
    known: &mut PrObjects,
    head: &CommitSha,
    writes: &[crate::core::review::budget::Write<GitHubWrite>],
    next_id: &mut u64,
) {
    let mut review: Option<PostedReview> = None;
    let mut live = 0;
    for w in writes {
        *next_id += 1;
        let id = *next_id;
        match &w.payload {
            GitHubWrite::CreateIssueComment { .. } if w.key.ends_with("/sticky") => {
                known.sticky_comment_id = Some(id)
            }
            GitHubWrite::CreateIssueComment { body }
            | GitHubWrite::EditIssueComment { body, .. }
                if w.key.contains("/detail/") =>
            {
                let slot: u32 = w.key.rsplit('/').next().unwrap().parse().unwrap();
                known.follow_up_ids.entry(slot).or_insert(id);
                if !body.lines().next().unwrap_or("").contains("superseded") {
                    live = live.max(slot);
                }
            }
            GitHubWrite::CreateReview(r) => {
                let comment_ids = (0..r.comments.len() as u64)
                    .map(|k| id * 1_000 + k)
                    .collect();
                review = Some(PostedReview {
                    review_id: id,
                    head_sha: head.clone(),
                    comment_ids,
                });
            }
            GitHubWrite::CreateReviewComment(_) => {
                if let Some(r) = review.as_mut() {
                    r.comment_ids.push(id);
                }
            }
            _ => {}
        }
    }
    known.live_slots = live;
    known.review = review;
}

struct Count {
    writes: usize,
    new_objects: usize,
    edits: usize,
    /// Until the last write is sent.
    seconds: i64,
    /// Until the last write that is not retiring an old object is sent.
    seconds_current: i64,
}

fn count(writes: &[crate::core::review::budget::Write<GitHubWrite>]) -> Count {
    let t0: DateTime<Utc> = DateTime::parse_from_rfc3339("2026-11-22T15:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let mut budget = WriteBudget::new(BudgetLimits::default());
    for w in writes {
        budget.enqueue(w.clone());
    }
    let mut now = t0;
    let mut sent = 0;
    let mut current = t0;
    loop {
        match budget.next(now) {
            Next::Send { ticket, write } => {
                sent += 1;
                if write.kind.priority() < 2 {
                    current = now;
                }
                budget.finished(ticket, Outcome::Done, now);
            }
            Next::WaitUntil(t) => now = t,
            Next::Busy => unreachable!("each write finishes at once"),
            Next::Idle => break,
        }
    }
    let m = budget.metrics(now);
    assert_eq!(sent as u64, m.created + m.updated);
    Count {
        writes: sent,
        new_objects: m.created as usize,
        edits: m.updated as usize,
        seconds: (now - t0 + TimeDelta::seconds(1)).num_seconds(),
        seconds_current: (current - t0 + TimeDelta::seconds(1)).num_seconds(),
    }
}

/// The measurement the issue asks for: writes and new GitHub objects per push for 1-, 20- and
/// 100-project PRs. After the first push, a push creates the same small number of objects
/// whatever the number of projects: one review, the two head checks, at most `OWN_CHECKS`
/// project checks, at most `max_file_comments` file comments; the summary is edited.
#[test]
fn writes_per_push_for_1_20_100_projects() {
    let mut table =
        String::from("projects | push | writes | new objects | edits | s to current | s to all\n");
    for n in [1, 20, 100] {
        let (projects, files) = projects(n);
        let mut known = PrObjects::default();
        let mut next_id = 0;
        for (push, head) in [(1, HEAD1), (2, HEAD2), (3, HEAD1)] {
            let head = CommitSha::new(head).unwrap();
            let writes = render(&head, &projects, &files, &known);
            let c = count(&writes);
            let _ = writeln!(
                table,
                "{n:>8} | {push:>4} | {:>6} | {:>11} | {:>5} | {:>12} | {:>8}",
                c.writes, c.new_objects, c.edits, c.seconds_current, c.seconds
            );
            if push > 1 {
                assert!(
                    c.new_objects <= 3 + OWN_CHECKS + ReviewOptions::default().max_file_comments,
                    "{n} projects: {} new objects",
                    c.new_objects
                );
            }
            remember(&mut known, &head, &writes, &mut next_id);
        }
    }
    println!("{table}");
    insta::assert_snapshot!(table, @"
    projects | push | writes | new objects | edits | s to current | s to all
           1 |    1 |      5 |           5 |     0 |            5 |        5
           1 |    2 |      8 |           4 |     4 |            5 |        8
           1 |    3 |      8 |           4 |     4 |            5 |        8
          20 |    1 |     14 |          14 |     0 |           14 |       14
          20 |    2 |     55 |          13 |    42 |           14 |       55
          20 |    3 |     55 |          13 |    42 |           14 |       55
         100 |    1 |     21 |          21 |     0 |           21 |       21
         100 |    2 |     77 |          18 |    59 |           21 |       77
         100 |    3 |     77 |          18 |    59 |           21 |       77
    ");
}

#[test]
fn a_push_edits_what_exists_and_supersedes_the_previous_review() {
    let (projects, files) = projects(2);
    let head1 = CommitSha::new(HEAD1).unwrap();
    let head2 = CommitSha::new(HEAD2).unwrap();
    let first = render(&head1, &projects, &files, &PrObjects::default());
    let mut known = PrObjects::default();
    let mut id = 0;
    remember(&mut known, &head1, &first, &mut id);
    let second = render(&head2, &projects, &files, &known);
    let kinds: Vec<String> = second
        .iter()
        .map(|w| format!("{:?} {}", w.kind, w.key))
        .collect();
    insta::assert_snapshot!(kinds.join("\n"), @"
    EditIssueComment pr/12/sticky
    UpdateReview pr/12/review-id/2
    EditReviewComment pr/12/review-comment/2000
    EditReviewComment pr/12/review-comment/2001
    EditReviewComment pr/12/review-comment/2002
    EditReviewComment pr/12/review-comment/2003
    CreateReview pr/12/review/2222222222222222222222222222222222222222
    CreateCheckRun check/2222222222222222222222222222222222222222/sluice:plan
    CreateCheckRun check/2222222222222222222222222222222222222222/sluice:apply-gate
    CreateCheckRun check/2222222222222222222222222222222222222222/sluice:plan:envs/p000
    CreateCheckRun check/2222222222222222222222222222222222222222/sluice:plan:envs/p001
    ");
    let first_kinds: Vec<String> = first.iter().map(|w| format!("{:?}", w.kind)).collect();
    assert_eq!(first_kinds[0], "CreateIssueComment");
}

#[test]
fn statuses_are_short() {
    let s = CommitStatus::new(
        "sluice/plan",
        StatusState::Success,
        &format!("2/3 projects planned {}", "x".repeat(300)),
        None,
    );
    assert_eq!(s.description.chars().count(), MAX_STATUS_DESCRIPTION);
    assert!(s.description.ends_with('…'));
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["state"], "success");
    assert!(json.get("target_url").is_none());
    let _ = checks::PLAN_CHECK;
}
