//! The store contract: behaviour every `Store` implementation must have, written against the
//! trait only. Each backend's test module runs every check on a fresh store.

use crate::app::ports::store::*;
use crate::core::audit::{AuditAction, AuditRecord, Verifier};
use crate::core::event::{Actor, ActorKind, Event};
use crate::core::job::{JobKind, JobState, MAX_PLAN_ATTEMPTS};
use crate::core::lock::LockKey;
use crate::core::plan::{PlanSummary, ProjectOutcome, ProjectReport};
use crate::core::policy::PolicyVerdict;
use crate::core::projects::Project;
use crate::core::types::{
    CommitSha, PrNumber, ProjectDir, ProjectName, RepoName, UnixMs, Workspace,
};

/// A point in (test) time.
pub fn t(ms: i64) -> UnixMs {
    UnixMs::new(ms)
}

/// A run's start that says nothing.
pub fn silent(_: Opening<'_>) -> Effects {
    Effects::default()
}

fn project(dir: &str) -> Project {
    Project::detected(ProjectDir::new(dir).unwrap(), Workspace::default())
}

pub fn repo() -> RepoName {
    RepoName::parse("acme/infra").unwrap()
}

pub fn pr(n: u64) -> PrNumber {
    PrNumber::new(n).unwrap()
}

pub fn sha(c: char) -> CommitSha {
    CommitSha::new(&c.to_string().repeat(40)).unwrap()
}

fn key(dir: &str) -> LockKey {
    LockKey {
        dir: ProjectDir::new(dir).unwrap(),
        workspace: Workspace::default(),
    }
}

fn job(kind: JobKind, dir: &str, plan_id: Option<i64>) -> NewJob {
    match kind {
        JobKind::Plan => NewJob::plan(&project(dir)),
        JobKind::Apply => {
            let mut j = NewJob::apply(
                plan_id.unwrap_or(0),
                ApplyContext {
                    project: project(dir),
                    approvals: vec![],
                    policy: vec![],
                    destroy: false,
                    config_commit: None,
                },
            );
            j.plan_id = plan_id;
            j
        }
        JobKind::State => NewJob::state(StateJob {
            project: project(dir),
            command: crate::core::state_command::StateCommand::import(&["null_resource.x", "id-1"])
                .unwrap(),
            extra_args: vec!["-lock=false".into()],
            approvals: vec![],
            policy: vec![],
        }),
    }
}

/// A new event carrying nothing but its delivery id.
fn ping<'a>(delivery_id: &'a str, event: &'a Event) -> NewEvent<'a> {
    NewEvent {
        delivery_id,
        kind: "ping",
        event,
        keys: vec![],
        head: None,
    }
}

fn new_run(n: u64, kind: JobKind, dirs: &[&str], event: Option<&str>) -> NewRun {
    NewRun {
        repo: repo(),
        pr: pr(n),
        kind,
        trigger: Trigger::Comment,
        head_sha: sha('a'),
        base_sha: sha('b'),
        base_ref: "main".into(),
        clone_url: "file:///x".into(),
        installation_id: None,
        actor: Actor {
            login: format!("user{n}"),
            id: n,
            kind: ActorKind::Human,
        },
        comment_id: None,
        event_id: event.map(str::to_string),
        extra_args: vec![],
        verbose: false,
        jobs: dirs.iter().map(|d| job(kind, d, None)).collect(),
        locks: if kind != JobKind::Apply {
            dirs.iter().map(|d| key(d)).collect()
        } else {
            vec![]
        },
    }
}

fn audit(action: AuditAction) -> AuditRecord {
    AuditRecord {
        action: Some(action),
        repo: Some("acme/infra".into()),
        ..AuditRecord::default()
    }
}

fn finish(state: JobState, plan: Option<NewPlan>) -> JobFinish {
    JobFinish {
        state,
        report: JobReport::Full {
            report: ProjectReport {
                project: ProjectName::new("a").unwrap(),
                dir: ProjectDir::new("a").unwrap(),
                workspace: Workspace::default(),
                outcome: ProjectOutcome::Skipped {
                    reason: "test".into(),
                },
                notes: vec![],
                destroy_plan: false,
            },
            policy: PolicyVerdict::Pass,
            policy_names: vec![],
            review: None,
        },
        plan,
        audit: vec![],
    }
}

fn saved_plan() -> NewPlan {
    NewPlan {
        head_sha: sha('a'),
        plan_file: "/tmp/p".into(),
        plan_sha256: "ab".repeat(32),
        summary: PlanSummary::default(),
    }
}

async fn run_job_to_end(
    store: &dyn Store,
    state: JobState,
    plan: Option<NewPlan>,
) -> (ClaimedJob, bool) {
    let claimed = store
        .claim_job("w1", t(10), t(1_000))
        .await
        .unwrap()
        .expect("a job to claim");
    let done = store
        .finish_job(claimed.job.id, "w1", finish(state, plan), t(20))
        .await
        .unwrap();
    (claimed, done)
}

pub async fn github_objects_are_kept_per_pr_and_check_key(store: &dyn Store) {
    let repo = RepoName::parse("acme/infra").unwrap();
    let (one, two) = (PrNumber::new(1).unwrap(), PrNumber::new(2).unwrap());
    assert_eq!(
        store.pr_objects(&repo, one).await.unwrap(),
        PrObjects::default()
    );
    let mut objects = PrObjects {
        sticky_comment_id: Some(11),
        live_slots: 1,
        ..PrObjects::default()
    };
    objects.follow_up_ids.insert(1, 12);
    store
        .save_pr_objects(&repo, one, &objects, t(1))
        .await
        .unwrap();
    objects.sticky_comment_id = Some(13);
    store
        .save_pr_objects(&repo, one, &objects, t(2))
        .await
        .unwrap();
    let other = RepoName::parse("ACME/Infra").unwrap();
    assert_eq!(store.pr_objects(&other, one).await.unwrap(), objects);
    assert_eq!(
        store.pr_objects(&repo, two).await.unwrap(),
        PrObjects::default()
    );

    assert_eq!(store.check_run_id(&repo, "check/a/x").await.unwrap(), None);
    store
        .save_check_run_id(&repo, "check/a/x", 7, t(1))
        .await
        .unwrap();
    store
        .save_check_run_id(&repo, "check/a/x", 8, t(2))
        .await
        .unwrap();
    assert_eq!(
        store.check_run_id(&repo, "check/a/x").await.unwrap(),
        Some(8)
    );
    assert_eq!(store.check_run_id(&repo, "check/a/y").await.unwrap(), None);
}

pub async fn deliveries_are_deduplicated(store: &dyn Store) {
    assert_eq!(
        store
            .insert_event_once(ping("d1", &Event::Ping), t(1))
            .await
            .unwrap(),
        EventIntake::New
    );
    assert_eq!(
        store
            .insert_event_once(ping("d1", &Event::Ping), t(2))
            .await
            .unwrap(),
        EventIntake::Redelivery
    );
    let ev = attempt(store.claim_event(t(5), 3).await.unwrap());
    assert_eq!((ev.delivery_id.as_str(), ev.attempts), ("d1", 1));
    store.retry_event("d1", "boom", t(100)).await.unwrap();
    assert!(
        store.claim_event(t(50), 3).await.unwrap().is_none(),
        "not due before retry_at"
    );
    let ev = attempt(store.claim_event(t(100), 3).await.unwrap());
    assert_eq!((ev.attempts, ev.last_error.as_deref()), (2, Some("boom")));
    store.finish_event("d1", None).await.unwrap();
    assert!(store.claim_event(t(1_000_000), 3).await.unwrap().is_none());
    let done = store.list_events(Some(EventState::Done), 10).await.unwrap();
    assert_eq!(
        done[0].error, None,
        "a handled event keeps no passing error"
    );
    // A failure retrying will not mend: done, with why kept for `sluice events list`.
    store
        .finish_event("d1", Some("the pull request is gone"))
        .await
        .unwrap();
    let done = store.list_events(Some(EventState::Done), 10).await.unwrap();
    assert_eq!(done[0].error.as_deref(), Some("the pull request is gone"));
}

fn attempt(c: Option<Claimed>) -> StoredEvent {
    match c {
        Some(Claimed::Attempt(ev)) => ev,
        other => panic!("expected an attempt, got {other:?}"),
    }
}

/// An event whose attempts never finish (the process died in each) is counted at every claim,
/// waits its backoff while other events go first, and is handed back as exhausted, then set
/// aside with its report and audit entry.
pub async fn attempts_count_when_claimed_and_poison_events_are_set_aside(store: &dyn Store) {
    store
        .insert_event_once(ping("poison", &Event::Ping), t(1))
        .await
        .unwrap();
    store
        .insert_event_once(ping("other", &Event::Ping), t(2))
        .await
        .unwrap();
    let mut now = t(10);
    for n in 1..=3 {
        // The claim itself is the attempt: nothing else is recorded (the process "dies").
        let ev = attempt(store.claim_event(now, 3).await.unwrap());
        assert_eq!((ev.delivery_id.as_str(), ev.attempts), ("poison", n));
        if n == 1 {
            // While it waits its backoff, the next event is handled.
            let other = attempt(store.claim_event(now.plus_ms(1), 3).await.unwrap());
            assert_eq!(other.delivery_id, "other");
            store.finish_event("other", None).await.unwrap();
            assert!(
                store
                    .claim_event(now.plus_ms(2), 3)
                    .await
                    .unwrap()
                    .is_none()
            );
        }
        now = now.plus_ms(event_retry_delay_ms(n));
    }
    // Used up: handed back before its backoff ends, unchanged.
    let Some(Claimed::Exhausted(ev)) = store.claim_event(now.plus_ms(-1), 3).await.unwrap() else {
        panic!("expected the exhausted event");
    };
    assert_eq!(ev.attempts, 3);
    assert_eq!(ev.last_error.as_deref(), Some(UNFINISHED_ATTEMPT));
    let tell = OutboxItem {
        repo: repo(),
        pr: Some(pr(1)),
        message: Outgoing::Comment {
            body: "set aside".into(),
        },
    };
    assert!(
        store
            .dead_letter_event(
                "poison",
                "gave up",
                Effects::new(
                    vec![tell.clone()],
                    vec![audit(AuditAction::EventDeadLettered)]
                ),
                now
            )
            .await
            .unwrap()
    );
    assert!(
        !store
            .dead_letter_event("poison", "again", Effects::new(vec![tell], vec![]), now)
            .await
            .unwrap(),
        "only once"
    );
    assert!(
        store
            .claim_event(t(now.get() * 10), 3)
            .await
            .unwrap()
            .is_none()
    );
    let dead = store.list_events(Some(EventState::Dead), 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (
            dead[0].delivery_id.as_str(),
            dead[0].attempts,
            dead[0].error.as_deref(),
            dead[0].dead_at
        ),
        ("poison", 3, Some("gave up"), Some(now))
    );
    assert_eq!(store.list_events(None, 10).await.unwrap().len(), 2);
    assert_eq!(store.due_outbox(now, 10).await.unwrap().len(), 1);
    let mut actions = Vec::new();
    store
        .scan_audit(&AuditQuery::default(), &mut |e| {
            actions.push(e.record.action);
            Ok(true)
        })
        .await
        .unwrap();
    assert_eq!(actions, vec![Some(AuditAction::EventDeadLettered)]);
}

pub async fn events_are_deduplicated_by_what_they_are(store: &dyn Store) {
    let repo = RepoName::parse("Acme/Infra").unwrap();
    let pr = PrNumber::new(7).unwrap();
    let head = |c: char, at: i64| PrHeadSeen {
        repo: repo.clone(),
        pr,
        sha: CommitSha::new(&c.to_string().repeat(40)).unwrap(),
        at: t(at),
        source: HeadSource::PullRequest,
    };
    let event = |delivery: &'static str, keys: &[&str], h: Option<PrHeadSeen>| NewEvent {
        delivery_id: delivery,
        kind: "issue_comment",
        event: &Event::Ping,
        keys: keys.iter().map(|k| k.to_string()).collect(),
        head: h,
    };
    assert_eq!(
        store
            .insert_event_once(
                event("d1", &["body:1", "comment:9"], Some(head('a', 10))),
                t(1)
            )
            .await
            .unwrap(),
        EventIntake::New
    );
    assert_eq!(
        store
            .insert_event_once(event("d1", &["body:other"], None), t(2))
            .await
            .unwrap(),
        EventIntake::Redelivery
    );
    assert_eq!(
        store
            .insert_event_once(
                event("d2", &["body:2", "comment:9"], Some(head('b', 20))),
                t(3)
            )
            .await
            .unwrap(),
        EventIntake::SameEvent {
            first_delivery: "d1".into(),
            key: "comment:9".into()
        },
        "the same comment under a fresh delivery id"
    );
    assert_eq!(
        store
            .insert_event_once(
                event("d3", &["body:3", "body:3"], Some(head('b', 30))),
                t(4)
            )
            .await
            .unwrap(),
        EventIntake::New,
    );
    // Nothing of the refused delivery was kept: neither the event nor its sighting.
    let pending = attempt(store.claim_event(t(100), 3).await.unwrap());
    assert_eq!(pending.delivery_id, "d1");
    store.finish_event("d1", None).await.unwrap();
    assert_eq!(
        attempt(store.claim_event(t(100), 3).await.unwrap()).delivery_id,
        "d3"
    );
    // Sightings: per PR (repository case-insensitive), oldest first, repeats ignored.
    store.record_pr_head(head('a', 40)).await.unwrap();
    store.record_pr_head(head('a', 40)).await.unwrap();
    let seen: Vec<(String, i64)> = store
        .pr_heads(&RepoName::parse("acme/infra").unwrap(), pr)
        .await
        .unwrap()
        .into_iter()
        .map(|h| (h.sha.short().to_string(), h.at.get()))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("aaaaaaa".to_string(), 10),
            ("bbbbbbb".to_string(), 30),
            ("aaaaaaa".to_string(), 40)
        ]
    );
    assert!(
        store
            .pr_heads(&repo, PrNumber::new(8).unwrap())
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn locks_are_atomic_and_waiting_runs_start_when_freed(store: &dyn Store) {
    let first = store
        .create_run(new_run(1, JobKind::Plan, &["a", "b"], None), &silent, t(1))
        .await
        .unwrap();
    assert!(matches!(first, RunStart::Queued { .. }));
    // PR 2 needs b and c: b is PR 1's, so it takes nothing (not even c) and waits.
    let second = store
        .create_run(new_run(2, JobKind::Plan, &["b", "c"], None), &silent, t(2))
        .await
        .unwrap();
    let RunStart::Waiting { run_id, held } = second else {
        panic!("expected waiting, got {second:?}")
    };
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].pr, pr(1));
    let locks = store.locks(Some(&repo())).await.unwrap();
    assert_eq!(locks.len(), 2, "c was not taken: all or nothing");
    assert!(locks.iter().all(|l| l.pr == pr(1)));
    // Only PR 1's jobs are runnable.
    let c1 = store.claim_job("w1", t(3), t(100)).await.unwrap().unwrap();
    let c2 = store.claim_job("w1", t(3), t(100)).await.unwrap().unwrap();
    assert!(store.claim_job("w1", t(3), t(100)).await.unwrap().is_none());
    assert_eq!((c1.run.pr, c2.run.pr), (pr(1), pr(1)));

    let (released, started) = store
        .release_pr_locks(
            &repo(),
            pr(1),
            Effects::new(vec![], vec![audit(AuditAction::LockReleased)]),
            t(4),
        )
        .await
        .unwrap();
    assert_eq!(released.len(), 2);
    assert_eq!(started, vec![run_id]);
    let locks = store.locks(Some(&repo())).await.unwrap();
    assert_eq!(locks.iter().filter(|l| l.pr == pr(2)).count(), 2);
    let next = store.claim_job("w1", t(5), t(100)).await.unwrap().unwrap();
    assert_eq!(next.run.pr, pr(2));
}

pub async fn a_pr_replanning_keeps_its_own_locks(store: &dyn Store) {
    store
        .create_run(new_run(1, JobKind::Plan, &["a"], None), &silent, t(1))
        .await
        .unwrap();
    let again = store
        .create_run(new_run(1, JobKind::Plan, &["a", "b"], None), &silent, t(2))
        .await
        .unwrap();
    assert!(matches!(again, RunStart::Queued { .. }));
    assert_eq!(store.locks(None).await.unwrap().len(), 2);
}

pub async fn runs_are_created_once_per_event(store: &dyn Store) {
    let a = store
        .create_run(
            new_run(1, JobKind::Plan, &["a"], Some("ev-1")),
            &silent,
            t(1),
        )
        .await
        .unwrap();
    let RunStart::Queued { run_id } = a else {
        panic!()
    };
    let b = store
        .create_run(
            new_run(1, JobKind::Plan, &["a"], Some("ev-1")),
            &silent,
            t(2),
        )
        .await
        .unwrap();
    assert_eq!(b, RunStart::AlreadyExists { run_id });
    assert_eq!(store.jobs_of_run(run_id).await.unwrap().len(), 1);
}

pub async fn finishing_the_last_job_finishes_the_run_once(store: &dyn Store) {
    let RunStart::Queued { run_id } = store
        .create_run(new_run(1, JobKind::Plan, &["a", "b"], None), &silent, t(1))
        .await
        .unwrap()
    else {
        panic!()
    };
    let (_, done) = run_job_to_end(store, JobState::Succeeded, Some(saved_plan())).await;
    assert!(!done);
    let (_, done) = run_job_to_end(store, JobState::Failed, None).await;
    assert!(done);
    let finished = store.finished_runs().await.unwrap();
    assert_eq!(
        finished.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![run_id]
    );
    let item = OutboxItem {
        repo: repo(),
        pr: Some(pr(1)),
        message: Outgoing::Comment {
            body: "done".into(),
        },
    };
    store
        .report_run(
            run_id,
            Effects::new(vec![item.clone()], vec![audit(AuditAction::Plan)]),
            t(30),
        )
        .await
        .unwrap();
    store
        .report_run(
            run_id,
            Effects::new(vec![item], vec![audit(AuditAction::Plan)]),
            t(31),
        )
        .await
        .unwrap();
    assert_eq!(
        store.pending_outbox().await.unwrap(),
        1,
        "reporting twice writes once"
    );
    assert!(store.finished_runs().await.unwrap().is_empty());
    // A stale worker cannot overwrite a finished job.
    let jobs = store.jobs_of_run(run_id).await.unwrap();
    assert!(
        !store
            .finish_job(jobs[0].id, "w1", finish(JobState::Failed, None), t(40))
            .await
            .unwrap()
    );
    assert_eq!(
        store.jobs_of_run(run_id).await.unwrap()[0].state,
        JobState::Succeeded
    );
}

pub async fn plans_supersede_older_ones(store: &dyn Store) {
    store
        .create_run(new_run(1, JobKind::Plan, &["a"], None), &silent, t(1))
        .await
        .unwrap();
    run_job_to_end(store, JobState::Succeeded, Some(saved_plan())).await;
    let plans = store.current_plans(&repo(), pr(1)).await.unwrap();
    assert_eq!(plans.len(), 1);
    // A re-plan that fails leaves nothing applicable.
    store
        .create_run(new_run(1, JobKind::Plan, &["a"], None), &silent, t(2))
        .await
        .unwrap();
    run_job_to_end(store, JobState::Failed, None).await;
    assert!(
        store
            .current_plans(&repo(), pr(1))
            .await
            .unwrap()
            .is_empty()
    );
    // A successful re-plan is current; discarding clears it.
    store
        .create_run(new_run(1, JobKind::Plan, &["a"], None), &silent, t(3))
        .await
        .unwrap();
    run_job_to_end(store, JobState::Succeeded, Some(saved_plan())).await;
    assert_eq!(store.current_plans(&repo(), pr(1)).await.unwrap().len(), 1);
    assert_eq!(
        store
            .discard_plans(&repo(), pr(1), t(4))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        store
            .current_plans(&repo(), pr(1))
            .await
            .unwrap()
            .is_empty()
    );
}

/// A state run (`import` / `state rm`) takes its project's lock like a plan (waiting behind
/// another PR's), keeps its command through the store, and once it succeeds the PR's plans of
/// that project — made against the old state — are discarded, no other project's.
pub async fn a_state_run_locks_and_its_success_discards_the_projects_plans(store: &dyn Store) {
    store
        .create_run(new_run(1, JobKind::Plan, &["a", "b"], None), &silent, t(1))
        .await
        .unwrap();
    run_job_to_end(store, JobState::Succeeded, Some(saved_plan())).await;
    run_job_to_end(store, JobState::Succeeded, Some(saved_plan())).await;
    assert_eq!(store.current_plans(&repo(), pr(1)).await.unwrap().len(), 2);

    let other = store
        .create_run(new_run(2, JobKind::State, &["a"], None), &silent, t(2))
        .await
        .unwrap();
    assert!(
        matches!(other, RunStart::Waiting { .. }),
        "PR 1 holds the lock of a: {other:?}"
    );
    let own = store
        .create_run(new_run(1, JobKind::State, &["b"], None), &silent, t(3))
        .await
        .unwrap();
    assert!(matches!(own, RunStart::Queued { .. }), "{own:?}");
    let (claimed, done) = run_job_to_end(store, JobState::Succeeded, None).await;
    assert!(done);
    assert_eq!(claimed.job.kind, JobKind::State);
    assert_eq!(claimed.run.kind, JobKind::State);
    match claimed.job.payload {
        Ok(JobPayload::State(job)) => {
            assert_eq!(
                job.comment_args(),
                ["-lock=false", "null_resource.x", "id-1"]
            );
            assert_eq!(job.project.dir.as_str(), "b");
        }
        other => panic!("a state payload, got {other:?}"),
    }
    let left: Vec<String> = store
        .current_plans(&repo(), pr(1))
        .await
        .unwrap()
        .iter()
        .map(|p| p.project_dir.to_string())
        .collect();
    assert_eq!(left, ["a"]);
}

pub async fn applies_run_in_order_one_at_a_time_and_a_failure_stops_no_other(store: &dyn Store) {
    store
        .create_run(
            new_run(1, JobKind::Plan, &["a", "b", "c"], None),
            &silent,
            t(1),
        )
        .await
        .unwrap();
    for _ in 0..3 {
        run_job_to_end(store, JobState::Succeeded, Some(saved_plan())).await;
    }
    let plans = store.current_plans(&repo(), pr(1)).await.unwrap();
    let mut run = new_run(1, JobKind::Apply, &[], None);
    run.jobs = plans
        .iter()
        .map(|p| job(JobKind::Apply, p.project_dir.as_str(), Some(p.id)))
        .collect();
    let apply_of = |dirs: &[&str]| {
        let mut run = new_run(1, JobKind::Apply, &[], None);
        run.jobs = plans
            .iter()
            .filter(|p| dirs.contains(&p.project_dir.as_str()))
            .map(|p| job(JobKind::Apply, p.project_dir.as_str(), Some(p.id)))
            .collect();
        run
    };
    let RunStart::Queued { run_id } = store.create_run(run, &silent, t(2)).await.unwrap() else {
        panic!()
    };
    // A second `apply` while the first is queued takes nothing.
    let again = store
        .create_run(apply_of(&["b"]), &silent, t(2))
        .await
        .unwrap();
    assert!(
        matches!(&again, RunStart::Refused { reason } if reason.contains("already being applied")),
        "{again:?}"
    );
    let first = store.claim_job("w1", t(3), t(100)).await.unwrap().unwrap();
    assert!(
        store.claim_job("w2", t(3), t(100)).await.unwrap().is_none(),
        "one apply at a time"
    );
    store
        .finish_job(first.job.id, "w1", finish(JobState::Succeeded, None), t(4))
        .await
        .unwrap();
    let second = store.claim_job("w1", t(5), t(100)).await.unwrap().unwrap();
    assert_eq!(second.job.position, 1);
    let done = store
        .finish_job(second.job.id, "w1", finish(JobState::Failed, None), t(6))
        .await
        .unwrap();
    // Only the projects that depend on a failed one stop, and the worker decides that (it
    // knows `depends_on`): the store cancels nothing, the next apply is claimed as usual.
    assert!(!done, "the third apply is still to run");
    let third = store.claim_job("w1", t(6), t(100)).await.unwrap().unwrap();
    assert_eq!(third.job.position, 2);
    let done = store
        .finish_job(third.job.id, "w1", finish(JobState::Succeeded, None), t(6))
        .await
        .unwrap();
    assert!(done, "every apply ended: the run is finished");
    let states: Vec<JobState> = store
        .jobs_of_run(run_id)
        .await
        .unwrap()
        .iter()
        .map(|j| j.state)
        .collect();
    assert_eq!(
        states,
        vec![JobState::Succeeded, JobState::Failed, JobState::Succeeded]
    );
    let left: Vec<String> = store
        .current_plans(&repo(), pr(1))
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.project_dir.to_string())
        .collect();
    assert_eq!(left, vec!["b"], "the applied plans are no longer current");
    // The applied plan cannot be applied again; the failed one can be retried.
    let again = store
        .create_run(apply_of(&["a"]), &silent, t(7))
        .await
        .unwrap();
    assert!(
        matches!(&again, RunStart::Refused { reason } if reason.contains("applied or discarded")),
        "{again:?}"
    );
    let retry = store
        .create_run(apply_of(&["b"]), &silent, t(7))
        .await
        .unwrap();
    assert!(matches!(retry, RunStart::Queued { .. }), "{retry:?}");
}

pub async fn expired_leases_requeue_plans_and_interrupt_applies(store: &dyn Store) {
    store
        .create_run(new_run(1, JobKind::Plan, &["a"], None), &silent, t(1))
        .await
        .unwrap();
    for attempt in 1..=MAX_PLAN_ATTEMPTS {
        let c = store
            .claim_job("w1", t(10), t(20))
            .await
            .unwrap()
            .expect("claimable again");
        assert_eq!(c.job.attempts, attempt);
        assert!(!store.renew_lease(c.job.id, "other", t(100)).await.unwrap());
        let rec = store.recover_expired(t(30)).await.unwrap();
        assert_eq!(rec.len(), 1);
        let expect = if attempt < MAX_PLAN_ATTEMPTS {
            JobState::Queued
        } else {
            JobState::Interrupted
        };
        assert_eq!(rec[0].now, expect);
    }
    assert_eq!(store.finished_runs().await.unwrap().len(), 1);

    let mut run = new_run(2, JobKind::Apply, &["z"], None);
    run.jobs = vec![job(JobKind::Apply, "z", None)];
    store.create_run(run, &silent, t(40)).await.unwrap();
    let c = store.claim_job("w1", t(41), t(50)).await.unwrap().unwrap();
    assert!(store.renew_lease(c.job.id, "w1", t(60)).await.unwrap());
    assert!(
        store.recover_expired(t(55)).await.unwrap().is_empty(),
        "renewed lease holds"
    );
    let rec = store.recover_expired(t(61)).await.unwrap();
    assert_eq!(
        rec[0].now,
        JobState::Interrupted,
        "an apply is never re-run by itself"
    );
    assert!(
        store
            .claim_job("w1", t(62), t(100))
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn closing_cancels_pending_work(store: &dyn Store) {
    store
        .create_run(new_run(1, JobKind::Plan, &["a"], None), &silent, t(1))
        .await
        .unwrap();
    let RunStart::Waiting { run_id, .. } = store
        .create_run(new_run(2, JobKind::Plan, &["a"], None), &silent, t(2))
        .await
        .unwrap()
    else {
        panic!()
    };
    let cancelled = store
        .cancel_pending_jobs(&repo(), pr(2), "closed", t(3))
        .await
        .unwrap();
    assert_eq!(cancelled, vec![run_id]);
    assert_eq!(
        store.jobs_of_run(run_id).await.unwrap()[0].state,
        JobState::Cancelled
    );
    assert_eq!(
        store.run(run_id).await.unwrap().unwrap().state,
        RunState::Finished
    );
    // Releasing PR 1's locks now starts nothing.
    let (_, started) = store
        .release_pr_locks(&repo(), pr(1), Effects::new(vec![], vec![]), t(4))
        .await
        .unwrap();
    assert!(started.is_empty());
}

pub async fn outbox_keeps_each_prs_order(store: &dyn Store) {
    let item = |n: u64, body: &str| OutboxItem {
        repo: repo(),
        pr: Some(pr(n)),
        message: Outgoing::Comment { body: body.into() },
    };
    store
        .enqueue(
            Effects::new(vec![item(1, "1a"), item(1, "1b"), item(2, "2a")], vec![]),
            t(1),
        )
        .await
        .unwrap();
    let due = store.due_outbox(t(1), 10).await.unwrap();
    let bodies: Vec<String> = due
        .iter()
        .map(|r| match &r.item.message {
            Outgoing::Comment { body } => body.clone(),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(bodies, vec!["1a", "2a"], "1b waits for 1a");
    store.outbox_retry(due[0].id, "500", t(100)).await.unwrap();
    let due = store.due_outbox(t(2), 10).await.unwrap();
    assert_eq!(
        due.len(),
        1,
        "1a is backing off, and 1b still waits behind it"
    );
    store.outbox_sent(due[0].id, t(3)).await.unwrap();
    let due = store.due_outbox(t(100), 10).await.unwrap();
    assert_eq!(due.len(), 1);
    store.outbox_sent(due[0].id, t(101)).await.unwrap();
    let due = store.due_outbox(t(102), 10).await.unwrap();
    assert!(matches!(&due[0].item.message, Outgoing::Comment { body } if body == "1b"));
    store.outbox_failed(due[0].id, "404").await.unwrap();
    assert_eq!(store.pending_outbox().await.unwrap(), 0);
}

pub async fn policy_overrides_are_per_head_commit(store: &dyn Store) {
    let row = |sha_char: char, policy: &str| PolicyOverrideRow {
        repo: repo(),
        pr: pr(1),
        head_sha: sha(sha_char),
        project: ProjectName::new("envs/a").unwrap(),
        policy: policy.into(),
        by_login: "dba".into(),
        by_id: Some(7),
        created_at: t(0),
    };
    store
        .add_policy_overrides(
            vec![row('a', "protect-prod-databases")],
            Effects::new(vec![], vec![audit(AuditAction::PolicyOverride)]),
            t(5),
        )
        .await
        .unwrap();
    let now = store
        .policy_overrides(&repo(), pr(1), &sha('a'))
        .await
        .unwrap();
    assert_eq!(now.len(), 1);
    assert_eq!(now[0].policy, "protect-prod-databases");
    assert_eq!(now[0].created_at, t(5));
    assert!(
        store
            .policy_overrides(&repo(), pr(1), &sha('b'))
            .await
            .unwrap()
            .is_empty(),
        "a new commit clears it"
    );
}

pub async fn audit_chain_appends_and_scans(store: &dyn Store) {
    let e = store
        .append_audit(
            vec![audit(AuditAction::Plan), audit(AuditAction::Apply)],
            t(1_700_000_000_000),
        )
        .await
        .unwrap();
    assert_eq!(e.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2]);
    store
        .enqueue(
            Effects::new(vec![], vec![audit(AuditAction::Unlock)]),
            t(1_700_000_001_000),
        )
        .await
        .unwrap();
    let mut v = Verifier::default();
    let mut seen = Vec::new();
    store
        .scan_audit(&AuditQuery::default(), &mut |entry| {
            v.check(&entry).map_err(|b| anyhow::anyhow!("{b}"))?;
            seen.push(entry.record.action);
            Ok(true)
        })
        .await
        .unwrap();
    assert_eq!(v.checked, 3);
    assert_eq!(
        seen,
        vec![
            Some(AuditAction::Plan),
            Some(AuditAction::Apply),
            Some(AuditAction::Unlock)
        ]
    );
    let mut after = Vec::new();
    store
        .scan_audit(
            &AuditQuery {
                after_seq: Some(1),
                limit: Some(1),
                ..AuditQuery::default()
            },
            &mut |entry| {
                after.push(entry.seq);
                Ok(true)
            },
        )
        .await
        .unwrap();
    assert_eq!(after, vec![2]);
    store
        .append_audit(
            vec![
                AuditRecord {
                    action: Some(AuditAction::Plan),
                    repo: Some("Acme/Other".into()),
                    ..AuditRecord::default()
                },
                AuditRecord {
                    action: Some(AuditAction::Plan),
                    ..AuditRecord::default()
                },
            ],
            t(1_700_000_002_000),
        )
        .await
        .unwrap();
    let mut repos = store.audit_repos(&AuditQuery::default()).await.unwrap();
    repos.sort();
    assert_eq!(
        repos,
        vec!["Acme/Other", "acme/infra"],
        "distinct, none for None"
    );
    let later = store
        .audit_repos(&AuditQuery {
            after_seq: Some(3),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(later, vec!["Acme/Other"]);
    let one = store
        .audit_repos(&AuditQuery {
            repo: Some("acme/other".into()),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        one,
        vec!["Acme/Other"],
        "the repository filter is case-insensitive"
    );
}

/// What a run says when it starts is decided by how it opens, inside the transaction that
/// creates it: one call, with the locks it waits behind, and nothing for a run that exists.
pub async fn a_run_announces_how_it_opens(store: &dyn Store) {
    let say = |opening: Opening<'_>| {
        let body = match opening {
            Opening::Starts => "starts".to_string(),
            Opening::Waits { held } => format!("waits behind #{}", held[0].pr.get()),
        };
        Effects::new(
            vec![OutboxItem {
                repo: repo(),
                pr: Some(pr(9)),
                message: Outgoing::Comment { body },
            }],
            vec![audit(AuditAction::LockAcquired)],
        )
    };
    store
        .create_run(new_run(1, JobKind::Plan, &["a"], Some("e1")), &say, t(1))
        .await
        .unwrap();
    store
        .create_run(new_run(2, JobKind::Plan, &["a"], Some("e2")), &say, t(2))
        .await
        .unwrap();
    let again = store
        .create_run(new_run(2, JobKind::Plan, &["a"], Some("e2")), &say, t(3))
        .await
        .unwrap();
    assert!(matches!(again, RunStart::AlreadyExists { .. }));
    let mut bodies = Vec::new();
    for _ in 0..3 {
        for row in store.due_outbox(t(10), 10).await.unwrap() {
            if let Outgoing::Comment { body } = &row.item.message {
                bodies.push(body.clone());
            }
            store.outbox_sent(row.id, t(10)).await.unwrap();
        }
    }
    assert_eq!(bodies, vec!["starts", "waits behind #1"]);
    let mut n = 0;
    store
        .scan_audit(&AuditQuery::default(), &mut |_| {
            n += 1;
            Ok(true)
        })
        .await
        .unwrap();
    assert_eq!(n, 2, "one announcement per created run");
}

#[cfg(test)]
mod sqlite {
    use super::*;
    use crate::adapters::store::SqliteStore;

    async fn fresh() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("data/sluice.db"))
            .await
            .unwrap();
        (dir, store)
    }

    macro_rules! contract {
        ($($name:ident),* $(,)?) => {$(
            #[tokio::test]
            async fn $name() {
                let (_dir, store) = fresh().await;
                super::$name(&store).await;
            }
        )*};
    }

    contract!(
        github_objects_are_kept_per_pr_and_check_key,
        deliveries_are_deduplicated,
        attempts_count_when_claimed_and_poison_events_are_set_aside,
        events_are_deduplicated_by_what_they_are,
        locks_are_atomic_and_waiting_runs_start_when_freed,
        a_pr_replanning_keeps_its_own_locks,
        a_run_announces_how_it_opens,
        runs_are_created_once_per_event,
        finishing_the_last_job_finishes_the_run_once,
        plans_supersede_older_ones,
        a_state_run_locks_and_its_success_discards_the_projects_plans,
        applies_run_in_order_one_at_a_time_and_a_failure_stops_no_other,
        expired_leases_requeue_plans_and_interrupt_applies,
        closing_cancels_pending_work,
        outbox_keeps_each_prs_order,
        policy_overrides_are_per_head_commit,
        audit_chain_appends_and_scans,
    );

    /// Migration 0010 rebuilds `runs` and `jobs` (their CHECK constraints) with every row and
    /// id: a store written before it opens with its runs, jobs and plans intact.
    #[tokio::test]
    async fn rows_written_before_state_jobs_survive_the_migration() {
        use sqlx::migrate::Migrator;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sluice.db");
        {
            let opts = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true)
                .foreign_keys(true);
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(opts)
                .await
                .unwrap();
            let sqlite = &crate::adapters::store::sqlite::MIGRATOR;
            let before = Migrator {
                migrations: std::borrow::Cow::Owned(
                    sqlite
                        .migrations
                        .iter()
                        .filter(|m| m.version < 10)
                        .cloned()
                        .collect(),
                ),
                ..Migrator::DEFAULT
            };
            before.run(&pool).await.unwrap();
            let project = serde_json::to_string(&project("a")).unwrap();
            for sql in [
                "INSERT INTO runs (id, repo, pr, kind, trigger, head_sha, base_sha, base_ref, \
                 clone_url, actor_json, state, created_at) VALUES (7, 'acme/infra', 1, 'plan', \
                 'comment', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', \
                 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb', 'main', 'file:///x', \
                 '{\"login\":\"u\",\"id\":1,\"kind\":\"human\"}', 'reported', 1)",
                "INSERT INTO jobs (id, run_id, position, kind, project_name, project_dir, \
                 workspace, project_json, state, created_at) VALUES (9, 7, 0, 'plan', 'a', 'a', \
                 'default', ?, 'succeeded', 1)",
                "INSERT INTO plans (id, repo, pr, project_name, project_dir, workspace, head_sha, \
                 job_id, plan_file, plan_sha256, summary_json, created_at) VALUES (3, \
                 'acme/infra', 1, 'a', 'a', 'default', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', \
                 9, '/tmp/p', 'ab', '{}', 1)",
            ] {
                let q = sqlx::query(sql);
                let q = if sql.contains('?') {
                    q.bind(&project)
                } else {
                    q
                };
                q.execute(&pool).await.unwrap();
            }
            pool.close().await;
        }
        let store = SqliteStore::open(&path).await.unwrap();
        let run = store.run(7).await.unwrap().expect("the run survives");
        assert_eq!(run.kind, JobKind::Plan);
        let jobs = store.jobs_of_run(7).await.unwrap();
        assert_eq!(jobs.iter().map(|j| j.id).collect::<Vec<_>>(), [9]);
        assert!(jobs[0].payload.is_ok(), "{:?}", jobs[0].payload);
        let plans = store.current_plans(&repo(), pr(1)).await.unwrap();
        assert_eq!(plans.iter().map(|p| p.job_id).collect::<Vec<_>>(), [9]);
        // The new kind is accepted, and ids continue after the copied rows.
        let started = store
            .create_run(new_run(1, JobKind::State, &["a"], None), &silent, t(2))
            .await
            .unwrap();
        assert!(
            matches!(started, RunStart::Queued { run_id } if run_id > 7),
            "{started:?}"
        );
        let fk: Vec<(String,)> = sqlx::query_as("SELECT \"table\" FROM pragma_foreign_key_check")
            .fetch_all(store.pool())
            .await
            .unwrap();
        assert!(fk.is_empty(), "foreign keys hold: {fk:?}");
    }

    /// A running apply job makes its project `applying` (`DriftStore::apply_running`); queued
    /// and finished ones do not, nor other projects.
    #[tokio::test]
    async fn a_running_apply_is_seen_by_the_drift_store() {
        use crate::app::ports::drift::{DriftKey, DriftStore};
        let (_dir, store) = fresh().await;
        store
            .create_run(new_run(1, JobKind::Plan, &["a"], None), &silent, t(1))
            .await
            .unwrap();
        run_job_to_end(&store, JobState::Succeeded, Some(saved_plan())).await;
        let plans = store.current_plans(&repo(), pr(1)).await.unwrap();
        let mut run = new_run(1, JobKind::Apply, &[], None);
        run.jobs = plans
            .iter()
            .map(|p| job(JobKind::Apply, p.project_dir.as_str(), Some(p.id)))
            .collect();
        store.create_run(run, &silent, t(2)).await.unwrap();
        let of = |dir: &str| DriftKey {
            repo: repo(),
            dir: ProjectDir::new(dir).unwrap(),
            workspace: Workspace::default(),
        };
        assert!(!store.apply_running(&of("a")).await.unwrap(), "queued");
        let claimed = store.claim_job("w1", t(3), t(100)).await.unwrap().unwrap();
        assert!(store.apply_running(&of("a")).await.unwrap(), "running");
        assert!(
            !store.apply_running(&of("b")).await.unwrap(),
            "another project"
        );
        store
            .finish_job(
                claimed.job.id,
                "w1",
                finish(JobState::Succeeded, None),
                t(4),
            )
            .await
            .unwrap();
        assert!(!store.apply_running(&of("a")).await.unwrap(), "finished");
    }

    #[tokio::test]
    async fn the_database_refuses_audit_updates_and_deletes() {
        let (_dir, store) = fresh().await;
        store
            .append_audit(vec![audit(AuditAction::Plan)], t(1))
            .await
            .unwrap();
        let upd = sqlx::query("UPDATE audit_log SET action = 'apply'")
            .execute(store.pool())
            .await;
        assert!(upd.unwrap_err().to_string().contains("append-only"));
        let del = sqlx::query("DELETE FROM audit_log")
            .execute(store.pool())
            .await;
        assert!(del.unwrap_err().to_string().contains("append-only"));
    }

    /// The store is the last point before the audit log and GitHub: a known secret (as is or
    /// encoded) in any record or outbox text is redacted there, and the redacted chain verifies.
    #[tokio::test]
    async fn known_secrets_never_reach_the_audit_log_or_the_outbox() {
        use base64::Engine as _;
        let (_dir, store) = fresh().await;
        // Unique to this test: the process-wide set redacts nothing any other test writes.
        let secret = "store/known+secret-7f3a";
        crate::adapters::known_secrets::register([secret.to_string()]);
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("u:{secret}"));
        let url = format!(
            "https://x/?t={}",
            secret.replace('/', "%2F").replace('+', "%2B")
        );
        let mut rec = audit(AuditAction::CommandRejected);
        rec.details = [("reason".to_string(), format!("bad {b64} and {url}"))].into();
        let status = Outgoing::Status {
            sha: sha('a'),
            context: StatusContext::Plan,
            state: crate::app::ports::StatusState::Failure,
            description: format!("failed: {secret}"),
            target_url: None,
        };
        store
            .enqueue(
                Effects::new(
                    vec![
                        OutboxItem {
                            repo: repo(),
                            pr: Some(pr(1)),
                            message: Outgoing::Comment {
                                body: format!("```\n{b64}\n```"),
                            },
                        },
                        OutboxItem {
                            repo: repo(),
                            pr: Some(pr(2)),
                            message: status,
                        },
                    ],
                    vec![rec],
                ),
                t(1),
            )
            .await
            .unwrap();
        let mut entries = Vec::new();
        store
            .scan_audit(&AuditQuery::default(), &mut |e| {
                entries.push(e);
                Ok(true)
            })
            .await
            .unwrap();
        let text = serde_json::to_string(&entries).unwrap();
        // "u:" is encoded with the secret's first bits: those characters stay.
        assert!(
            text.contains(r#""reason":"bad dTp*** and https://x/?t=***""#),
            "{text}"
        );
        let mut v = crate::core::audit::Verifier::default();
        assert_eq!(v.check(&entries[0]), Ok(()));
        let out: Vec<Outgoing> = store
            .due_outbox(t(2), 10)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.item.message)
            .collect();
        let text = format!("{out:?}");
        assert!(!text.contains(secret) && !text.contains(&b64), "{text}");
        assert!(text.contains("failed: ***"), "{text}");
        assert_eq!(out.len(), 2, "{text}");
    }

    #[tokio::test]
    async fn data_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sluice.db");
        {
            let store = SqliteStore::open(&path).await.unwrap();
            store
                .create_run(new_run(1, JobKind::Plan, &["a"], None), &silent, t(1))
                .await
                .unwrap();
        }
        let store = SqliteStore::open(&path).await.unwrap();
        assert_eq!(
            store.locks(None).await.unwrap().len(),
            1,
            "locks survive restarts"
        );
        assert!(
            store.claim_job("w", t(2), t(10)).await.unwrap().is_some(),
            "queued jobs survive restarts"
        );
    }
}
