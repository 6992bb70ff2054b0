//! The review, summary comment and check run writes through the outbox deliverer and its write
//! budget, against the fake GitHub and a real SQLite store: the sticky comment edited (not
//! posted again) on the next push and re-created after a human deletes it; a review GitHub
//! refuses for a line outside the diff sent again with file-level comments, and superseded by
//! the next push's review; check runs with more than 50 annotations in batches (App mode) and
//! statuses only in token mode; the budget holding writes back beyond its per-minute limit.

use std::sync::Arc;
use std::time::Duration;

use sluice::adapters::git::Mirrors;
use sluice::adapters::store::sqlite::SqliteStore;
use sluice::app::bot::Bot;
use sluice::app::policy::TeamCache;
use sluice::app::ports::Store;
use sluice::app::ports::store::{Effects, OutboxItem};
use sluice::app::project_run::Runner;
use sluice::app::server::{enabled_commands, github_client};
use sluice::app::worker::{Workers, WriteScheduler};
use sluice::config::{Overrides, Settings};
use sluice::core::host_paths::HostPaths;
use sluice::core::review::checks::{
    Annotation, AnnotationLevel, CheckOutput, CheckRunDraft, CheckStatus, Conclusion,
    CreateCheckRun, UpdateCheckRun,
};
use sluice::core::review::patch::Side;
use sluice::core::review::pr_review::{
    CreateReview, DraftReviewComment, ReviewContext, ReviewDraft, ReviewEvent,
};
use sluice::core::review::sticky::{FollowUp, Sticky};
use sluice::core::review::surface::{
    CommitStatus, PrObjects, PushOutput, StatusState, push_writes,
};
use sluice::core::types::{CommitSha, PrNumber, RepoName};
use tokio::sync::Notify;

use crate::fake_github::{self, FakeFile, FakePull};
use crate::server::{Harness, REPO};

const PATCH: &str = "@@ -1,2 +1,3 @@\n module \"db\" {\n-  source = \"./a\"\n+  source = \"./b\"\n+  size   = 2\n }";

struct Rig {
    h: Harness,
    store: Arc<dyn Store>,
    workers: Arc<Workers>,
}

fn pr() -> PrNumber {
    PrNumber::new(1).unwrap()
}

fn repo() -> RepoName {
    RepoName::parse(REPO).unwrap()
}

fn sha(c: char) -> CommitSha {
    CommitSha::new(&c.to_string().repeat(40)).unwrap()
}

/// Workers over the fake GitHub, as a token (`app: false`) or a GitHub App.
async fn rig(app: bool, env: &[(&str, &str)]) -> Rig {
    let mut h = Harness::new(&[("envs/a/main.tf", "# a\n")]).await;
    h.set_env("SLUICE_GITHUB_WRITE_GAP_MS", "0");
    for (k, v) in env {
        h.set_env(k, v);
    }
    if app {
        let key = h.data.path().join("app.pem");
        std::fs::write(&key, fake_github::app_private_key()).unwrap();
        h.env.remove("SLUICE_GITHUB_TOKEN");
        h.set_env("SLUICE_GITHUB_APP_ID", &fake_github::APP_ID.to_string());
        h.set_env("SLUICE_GITHUB_APP_KEY_FILE", &key.display().to_string());
        h.fake.install_on_repo(REPO, 77);
    }
    h.fake.add_pull(FakePull::new(REPO, 1));
    h.fake.set_pull_files(
        REPO,
        1,
        vec![FakeFile::new("envs/a/main.tf", "modified", Some(PATCH))],
    );
    let vars = h.env.clone().into_iter().collect();
    let settings = Arc::new(Settings::load_from(&vars, &Overrides::default()).unwrap());
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&settings.db_path()).await.unwrap());
    let github = github_client(&settings).unwrap();
    let bot = Bot {
        settings: settings.clone(),
        store: store.clone(),
        github: github.clone(),
        mirrors: Arc::new(Mirrors::new(settings.mirrors_dir()).with_limits(settings.limits)),
        enabled: enabled_commands(&settings).unwrap(),
        bot_login: Default::default(),
        jobs_ready: Arc::new(Notify::new()),
        outbox_ready: Arc::new(Notify::new()),
        server_policies: Arc::new(Vec::new()),
        teams: Arc::new(TeamCache::new(Duration::from_secs(60))),
        permissions: Default::default(),
        drift: None,
    };
    let workers = Arc::new(Workers {
        settings: settings.clone(),
        store: store.clone(),
        github,
        runner: Arc::new(Runner::from_settings(&settings).unwrap()),
        bot: Arc::new(bot),
        events_ready: Arc::new(Notify::new()),
        jobs_ready: Arc::new(Notify::new()),
        outbox_ready: Arc::new(Notify::new()),
        instance: "test".into(),
        lease: Duration::from_secs(3),
        live: Default::default(),
        host_paths: Arc::new(HostPaths::default()),
        writes: WriteScheduler::new(&settings),
        job_logs: None,
    });
    Rig { h, store, workers }
}

impl Rig {
    /// Moves the PR's head to `head` (as a push does) and queues that push's writes, as the
    /// report does.
    async fn push(&self, head: &CommitSha, out: PushOutput) -> usize {
        self.h
            .fake
            .update_pull(REPO, 1, |p| p.head_sha = head.as_str().to_string());
        let known = self.store.pr_objects(&repo(), pr()).await.unwrap();
        self.queue(head, &known, out).await
    }

    /// Queues writes for `head` rendered against `known` (what the store knew then).
    async fn queue(&self, head: &CommitSha, known: &PrObjects, out: PushOutput) -> usize {
        let ctx = ReviewContext {
            pr: pr(),
            head_sha: head,
            summary_url: None,
            log_url: None,
        };
        let items: Vec<OutboxItem> = push_writes(&ctx, known, out)
            .into_iter()
            .map(|w| OutboxItem::write(&repo(), pr(), w))
            .collect();
        let n = items.len();
        self.store
            .enqueue(Effects::new(items, vec![]), sluice::adapters::clock::now())
            .await
            .unwrap();
        n
    }

    /// Delivers until the outbox is empty (a positive signal), within a deadline.
    async fn drain(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while self.store.pending_outbox().await.unwrap() > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the outbox did not drain"
            );
            if self.workers.deliver_due().await == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    fn writes(&self) -> Vec<(String, String)> {
        self.h
            .fake
            .requests()
            .into_iter()
            .filter(|r| r.method != "GET")
            .map(|r| (r.method, r.path))
            .collect()
    }
}

fn sticky(body: &str, slots: u32) -> Sticky {
    Sticky {
        body: body.to_string(),
        follow_ups: (1..=slots)
            .map(|slot| FollowUp {
                slot,
                body: format!("{body} detail {slot}"),
            })
            .collect(),
        retire: vec![],
    }
}

#[tokio::test]
async fn the_sticky_comment_is_edited_on_the_next_push_written_over_when_a_human_edits_it_and_created_again_when_deleted()
 {
    let rig = rig(false, &[]).await;
    rig.push(
        &sha('a'),
        PushOutput {
            sticky: Some(sticky("push 1", 1)),
            ..Default::default()
        },
    )
    .await;
    rig.drain().await;
    let first = rig.store.pr_objects(&repo(), pr()).await.unwrap();
    let sticky_id = first
        .sticky_comment_id
        .expect("the sticky comment's id is kept");
    assert_eq!(rig.h.fake.bot_comments(REPO, 1).len(), 2);

    rig.push(
        &sha('b'),
        PushOutput {
            sticky: Some(sticky("push 2", 1)),
            ..Default::default()
        },
    )
    .await;
    rig.drain().await;
    let comments = rig.h.fake.bot_comments(REPO, 1);
    assert_eq!(
        comments,
        vec!["push 2".to_string(), "push 2 detail 1".to_string()]
    );
    assert_eq!(
        rig.h
            .fake
            .requests_to("POST", "/repos/acme/infra/issues/1/comments")
            .len(),
        2,
        "the second push edits; it creates nothing"
    );

    // A human edits the summary (its marker gone): the next push writes over it, in place.
    rig.h.fake.edit_comment(sticky_id, "edited by a human");
    rig.push(
        &sha('d'),
        PushOutput {
            sticky: Some(sticky("push 2b", 1)),
            ..Default::default()
        },
    )
    .await;
    rig.drain().await;
    assert_eq!(
        rig.h.fake.bot_comments(REPO, 1),
        vec!["push 2b".to_string(), "push 2b detail 1".to_string()]
    );
    assert_eq!(
        rig.store
            .pr_objects(&repo(), pr())
            .await
            .unwrap()
            .sticky_comment_id,
        Some(sticky_id),
        "the same comment, not a new one"
    );

    // A human deletes the summary: the next push posts it again and keeps the new id.
    rig.h.fake.delete_comment(sticky_id);
    rig.push(
        &sha('c'),
        PushOutput {
            sticky: Some(sticky("push 3", 1)),
            ..Default::default()
        },
    )
    .await;
    rig.drain().await;
    let comments = rig.h.fake.bot_comments(REPO, 1);
    assert!(comments.contains(&"push 3".to_string()), "{comments:?}");
    let now = rig.store.pr_objects(&repo(), pr()).await.unwrap();
    assert_ne!(now.sticky_comment_id, Some(sticky_id));
    assert_eq!(
        rig.store.pending_outbox().await.unwrap(),
        0,
        "nothing failed for good"
    );
}

fn review(head: &CommitSha, lines: &[u32]) -> ReviewDraft {
    ReviewDraft {
        review: CreateReview {
            commit_id: head.as_str().to_string(),
            body: format!("Plan review for {}", head.short()),
            event: ReviewEvent::Comment,
            comments: lines
                .iter()
                .map(|&line| DraftReviewComment {
                    path: "envs/a/main.tf".into(),
                    line,
                    side: Side::Right,
                    body: format!("🔁 replace (line {line})"),
                })
                .collect(),
        },
        file_comments: vec![],
    }
}

#[tokio::test]
async fn a_line_outside_the_diff_becomes_a_file_comment_and_the_next_push_supersedes_the_review() {
    let rig = rig(false, &[]).await;
    rig.push(
        &sha('a'),
        PushOutput {
            review: Some(review(&sha('a'), &[2, 40])),
            ..Default::default()
        },
    )
    .await;
    rig.drain().await;
    let reviews = rig.h.fake.posted_reviews();
    assert_eq!(
        reviews.len(),
        1,
        "the refused review posted nothing; the retry did"
    );
    let comments = rig.h.fake.review_comments();
    assert_eq!(comments.len(), 1);
    assert_eq!(comments[0].subject_type, "file");
    assert!(
        comments[0].body.contains("On line 40"),
        "{}",
        comments[0].body
    );
    let kept = rig
        .store
        .pr_objects(&repo(), pr())
        .await
        .unwrap()
        .review
        .unwrap();
    assert_eq!(kept.review_id, reviews[0].id);
    assert_eq!(kept.comment_ids, vec![comments[0].id]);

    rig.push(
        &sha('b'),
        PushOutput {
            review: Some(review(&sha('b'), &[3])),
            ..Default::default()
        },
    )
    .await;
    rig.drain().await;
    let reviews = rig.h.fake.posted_reviews();
    assert_eq!(reviews.len(), 2);
    assert!(
        reviews[0].body.contains("superseded"),
        "{}",
        reviews[0].body
    );
    let comments = rig.h.fake.review_comments();
    assert!(
        comments[0].body.contains("Superseded"),
        "{}",
        comments[0].body
    );
    assert_eq!(
        (comments[1].line, comments[1].subject_type.as_str()),
        (Some(3), "line")
    );
}

/// A review whose write reaches GitHub after a newer push was reviewed (its plan finished
/// late, or its write waited) is edited into a pointer to the newer head at once: the newer
/// review stays current and is never superseded by the older one.
#[tokio::test]
async fn a_late_review_is_superseded_at_once_and_the_newer_one_stays_current() {
    let rig = rig(false, &[]).await;
    // `a`'s review was rendered when nothing was posted yet; `b` is pushed and reviewed first.
    let late = PushOutput {
        review: Some(review(&sha('a'), &[2])),
        ..Default::default()
    };
    rig.push(
        &sha('b'),
        PushOutput {
            review: Some(review(&sha('b'), &[3])),
            ..Default::default()
        },
    )
    .await;
    rig.drain().await;
    rig.queue(&sha('a'), &PrObjects::default(), late).await;
    rig.drain().await;

    let reviews = rig.h.fake.posted_reviews();
    assert_eq!(reviews.len(), 2, "{reviews:#?}");
    let (newer, older) = (&reviews[0], &reviews[1]);
    assert_eq!(older.commit_id, sha('a').as_str());
    assert!(
        older.body.contains("superseded by the plan for `bbbbbbb`"),
        "{}",
        older.body
    );
    assert!(!newer.body.contains("superseded"), "{}", newer.body);
    let comments = rig.h.fake.review_comments();
    let on = |line: u32| comments.iter().find(|c| c.line == Some(line)).unwrap();
    assert!(on(2).body.contains("Superseded"), "{}", on(2).body);
    assert!(!on(3).body.contains("Superseded"), "{}", on(3).body);
    let current = rig.store.pr_objects(&repo(), pr()).await.unwrap().review;
    assert_eq!(current.map(|r| r.review_id), Some(newer.id));
}

fn annotations(from: usize, n: usize) -> Vec<Annotation> {
    (from..from + n)
        .map(|i| Annotation {
            path: "envs/a/main.tf".into(),
            start_line: 1 + i as u32,
            end_line: 1 + i as u32,
            annotation_level: AnnotationLevel::Warning,
            message: format!("change {i}"),
            title: None,
        })
        .collect()
}

fn project_check(head: &CommitSha, n: usize) -> CheckRunDraft {
    let output = |a: Vec<Annotation>| CheckOutput {
        title: "120 to change".into(),
        summary: "summary".into(),
        text: Some("diff".into()),
        annotations: a,
    };
    CheckRunDraft {
        create: CreateCheckRun {
            name: "sluice/plan: a".into(),
            head_sha: head.as_str().to_string(),
            details_url: None,
            external_id: "sluice:plan:a".into(),
            status: CheckStatus::Completed,
            conclusion: Some(Conclusion::Neutral),
            started_at: None,
            completed_at: None,
            output: output(annotations(0, 50)),
            actions: vec![],
        },
        more_annotations: (50..n)
            .step_by(50)
            .map(|from| UpdateCheckRun {
                output: output(annotations(from, 50.min(n - from))),
            })
            .collect(),
    }
}

#[tokio::test]
async fn check_runs_take_their_annotations_in_batches_as_an_app_and_tokens_post_statuses() {
    let app = rig(true, &[]).await;
    let head = sha('a');
    app.push(
        &head,
        PushOutput {
            project_checks: vec![project_check(&head, 120)],
            ..Default::default()
        },
    )
    .await;
    app.drain().await;
    let runs = app.h.fake.check_runs();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].annotations.len(), 120);
    assert_eq!(
        app.h
            .fake
            .requests_to(
                "PATCH",
                &format!("/repos/acme/infra/check-runs/{}", runs[0].id)
            )
            .len(),
        2
    );

    let token = rig(false, &[]).await;
    let status = CommitStatus::new(
        "sluice/plan",
        StatusState::Success,
        "1 project planned",
        None,
    );
    token
        .push(
            &head,
            PushOutput {
                project_checks: vec![project_check(&head, 120)],
                statuses: vec![status],
                ..Default::default()
            },
        )
        .await;
    token.drain().await;
    assert!(token.h.fake.check_runs().is_empty());
    let statuses = token.h.fake.statuses(head.as_str());
    assert_eq!(statuses.len(), 1, "{statuses:?}");
    assert!(
        token
            .h
            .fake
            .requests_to("PATCH", "/repos/acme/infra/check-runs")
            .is_empty()
    );
}

#[tokio::test]
async fn the_budget_holds_writes_back_beyond_its_limit_per_minute() {
    let rig = rig(false, &[("SLUICE_GITHUB_WRITES_PER_MINUTE", "5")]).await;
    let head = sha('a');
    let statuses = (0..8)
        .map(|i| {
            CommitStatus::new(
                &format!("sluice/plan: p{i}"),
                StatusState::Success,
                "ok",
                None,
            )
        })
        .collect();
    let queued = rig
        .push(
            &head,
            PushOutput {
                statuses,
                ..Default::default()
            },
        )
        .await;
    assert_eq!(queued, 8);
    let mut sent = 0;
    for _ in 0..20 {
        sent += rig.workers.deliver_due().await;
    }
    assert_eq!(sent, 5, "{:?}", rig.writes());
    assert_eq!(rig.h.fake.statuses(head.as_str()).len(), 5);
    assert_eq!(rig.store.pending_outbox().await.unwrap(), 3);
}

/// What one push of an `n`-project PR writes as an App: the summary comment, the review with a
/// comment per project (up to the review's own bound), `sluice/plan` and `sluice/apply-gate`,
/// and a check run for at most 20 projects (`MAX_PROJECT_CHECKS`, the report's bound).
fn push_of(head: &CommitSha, n: usize) -> PushOutput {
    let lines: Vec<u32> = (0..n.min(50)).map(|_| 2).collect();
    let mut head_checks = Vec::new();
    for name in ["sluice:plan", "sluice:apply-gate"] {
        let mut c = project_check(head, 1).create;
        c.external_id = name.into();
        c.name = name.replace(':', "/");
        head_checks.push(c);
    }
    PushOutput {
        sticky: Some(sticky(&format!("{n} projects at {}", head.short()), 0)),
        review: Some(review(head, &lines)),
        head_checks,
        project_checks: (0..n.min(sluice::app::worker::MAX_PROJECT_CHECKS))
            .map(|i| {
                let mut d = project_check(head, 1);
                d.create.external_id = format!("sluice:plan:p{i}");
                d.create.name = format!("sluice/plan: p{i}");
                d
            })
            .collect(),
        statuses: vec![],
    }
}

/// The benchmark of PRODUCT.md §17: writes per push for 1, 20 and 100 projects, printed; new
/// GitHub objects per push stay bounded whatever the number of projects.
#[tokio::test]
async fn writes_per_push_for_1_20_and_100_projects() {
    let mut created = Vec::new();
    for n in [1usize, 20, 100] {
        // Counting, not pacing (the per-minute limit would hold the 100-project push back).
        let limits = [
            ("SLUICE_GITHUB_WRITES_PER_MINUTE", "10000"),
            ("SLUICE_GITHUB_WRITES_PER_HOUR", "10000"),
        ];
        let rig = rig(true, &limits).await;
        let mut per_push = Vec::new();
        for head in [sha('a'), sha('b')] {
            let before = rig.writes();
            rig.push(&head, push_of(&head, n)).await;
            rig.drain().await;
            let now = rig.writes();
            let new: Vec<_> = now[before.len()..].to_vec();
            let creates = new.iter().filter(|(m, _)| m == "POST").count();
            per_push.push((new.len(), creates));
        }
        println!(
            "{n:>3} projects: push 1 {} writes ({} new objects), push 2 {} writes ({} new objects)",
            per_push[0].0, per_push[0].1, per_push[1].0, per_push[1].1
        );
        created.push(per_push[1].1);
    }
    // The second push edits the summary and supersedes the review: its new objects are the
    // review and the head's check runs, at most 1 + 2 + 20.
    assert!(created.iter().all(|&c| c <= 23), "{created:?}");
    assert_eq!(
        created[1], created[2],
        "20 and 100 projects create as many objects"
    );
}

/// Only the latest body is sent: two summaries queued for the same comment before the deliverer
/// ran become one write with the newer body, and a new check run of the same key drops the
/// pending annotation batches of the one it replaces.
#[tokio::test]
async fn writes_still_waiting_for_the_same_object_are_coalesced_to_the_latest_body() {
    let rig = rig(true, &[]).await;
    let head = sha('a');
    rig.push(
        &head,
        PushOutput {
            sticky: Some(sticky("older", 0)),
            project_checks: vec![project_check(&head, 120)],
            ..Default::default()
        },
    )
    .await;
    rig.push(
        &head,
        PushOutput {
            sticky: Some(sticky("newer", 0)),
            project_checks: vec![project_check(&head, 60)],
            ..Default::default()
        },
    )
    .await;
    rig.drain().await;
    assert_eq!(rig.h.fake.comments(REPO, 1), vec!["newer".to_string()]);
    assert_eq!(
        rig.h
            .fake
            .requests_to("POST", "/repos/acme/infra/issues/1/comments")
            .len(),
        1
    );
    assert!(
        rig.writes()
            .iter()
            .all(|(m, p)| !(m == "PATCH" && p.contains("/issues/comments/"))),
        "the older body was never sent, so nothing was edited: {:?}",
        rig.writes()
    );
    let runs = rig.h.fake.check_runs();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0].annotations.len(), 60);
}
