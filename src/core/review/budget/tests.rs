//! Tests for `budget`: coalescing, per-object order, priorities, the secondary-limit windows, pauses.

use super::*;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-22T15:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn w(key: &str, kind: WriteKind, body: &str) -> Write<String> {
    Write {
        key: key.to_string(),
        kind,
        payload: body.to_string(),
    }
}

/// Sends everything, each write finishing at once; returns (seconds since t0, key, body).
fn drain(b: &mut WriteBudget<String>, start: DateTime<Utc>) -> Vec<(i64, String, String)> {
    let mut now = start;
    let mut out = Vec::new();
    for _ in 0..100_000 {
        match b.next(now) {
            Next::Send { ticket, write } => {
                out.push(((now - t0()).num_seconds(), write.key, write.payload));
                b.finished(ticket, Outcome::Done, now);
            }
            Next::WaitUntil(t) => {
                assert!(t > now, "waiting for the past");
                now = t;
            }
            Next::Busy => panic!("nothing in flight, yet busy"),
            Next::Idle => return out,
        }
    }
    panic!("did not drain");
}

#[test]
fn only_the_latest_body_of_an_object_is_sent() {
    let mut b = WriteBudget::new(BudgetLimits::default());
    for i in 0..10 {
        let e = b.enqueue(w(
            "pr/1/sticky",
            WriteKind::EditIssueComment,
            &format!("v{i}"),
        ));
        assert_eq!(
            e,
            if i == 0 {
                Enqueued::Queued
            } else {
                Enqueued::Coalesced
            }
        );
    }
    let sent = drain(&mut b, t0());
    assert_eq!(sent, [(0, "pr/1/sticky".to_string(), "v9".to_string())]);
    let m = b.metrics(t0());
    assert_eq!((m.updated, m.created, m.coalesced), (1, 0, 9));
}

#[test]
fn writes_to_one_object_keep_their_order_and_annotations_add_up() {
    let mut b = WriteBudget::new(BudgetLimits::default());
    let key = "check/abc/sluice:plan:prod";
    b.enqueue(w(key, WriteKind::CreateCheckRun, "create"));
    b.enqueue(w(key, WriteKind::AppendAnnotations, "batch 2"));
    assert_eq!(
        b.enqueue(w(key, WriteKind::AppendAnnotations, "batch 3")),
        Enqueued::Queued
    );
    b.enqueue(w("pr/1/sticky", WriteKind::EditIssueComment, "edit"));
    // While the creation is in flight, its annotations wait, other objects do not.
    let Next::Send { ticket, write } = b.next(t0()) else {
        panic!()
    };
    assert_eq!(write.payload, "edit", "edits go before new objects");
    b.finished(ticket, Outcome::Done, t0());
    let mut b2 = WriteBudget::new(BudgetLimits {
        max_in_flight: 4,
        min_gap: TimeDelta::zero(),
        ..BudgetLimits::default()
    });
    b2.enqueue(w(key, WriteKind::CreateCheckRun, "create"));
    b2.enqueue(w(key, WriteKind::AppendAnnotations, "batch 2"));
    let Next::Send { ticket, .. } = b2.next(t0()) else {
        panic!()
    };
    assert_eq!(
        b2.next(t0()),
        Next::Busy,
        "batch 2 waits for the check run to exist"
    );
    b2.finished(ticket, Outcome::Done, t0());
    let Next::Send { write, .. } = b2.next(t0()) else {
        panic!()
    };
    assert_eq!(write.payload, "batch 2");

    let sent: Vec<String> = drain(&mut b, t0()).into_iter().map(|s| s.2).collect();
    assert_eq!(sent, ["create", "batch 2", "batch 3"]);
}

#[test]
fn edits_go_before_new_objects_and_retiring_old_ones_last() {
    let mut b = WriteBudget::new(BudgetLimits::default());
    b.enqueue(w("pr/1/review/abc", WriteKind::CreateReview, "review"));
    b.enqueue(w("check/abc/x", WriteKind::CreateCheckRun, "check"));
    b.enqueue(w(
        "pr/1/review-comment/5",
        WriteKind::EditReviewComment,
        "supersede 5",
    ));
    b.enqueue(w("pr/1/sticky", WriteKind::EditIssueComment, "sticky"));
    let sent: Vec<String> = drain(&mut b, t0()).into_iter().map(|s| s.2).collect();
    assert_eq!(sent, ["sticky", "review", "check", "supersede 5"]);
}

/// 600 writes at once: never more than the per-minute and per-hour limits in any window, a
/// second apart, and all sent in the end.
#[test]
fn the_secondary_limits_hold_in_every_window() {
    let limits = BudgetLimits::default();
    let mut b = WriteBudget::new(limits);
    for i in 0..600 {
        b.enqueue(w(&format!("check/abc/{i}"), WriteKind::CreateCheckRun, ""));
    }
    let sent = drain(&mut b, t0());
    assert_eq!(sent.len(), 600);
    let times: Vec<i64> = sent.iter().map(|s| s.0).collect();
    for (i, &t) in times.iter().enumerate() {
        let minute = times[i..].iter().take_while(|&&u| u < t + 60).count();
        let hour = times[i..].iter().take_while(|&&u| u < t + 3_600).count();
        assert!(
            minute <= limits.per_minute as usize,
            "{minute} in the minute from {t}"
        );
        assert!(
            hour <= limits.per_hour as usize,
            "{hour} in the hour from {t}"
        );
        if i > 0 {
            assert!(t - times[i - 1] >= 1);
        }
    }
    // A second apart (so the minute limit never binds), 450 in the first hour, the rest
    // when the hour has passed.
    assert_eq!(times[449], 449);
    assert_eq!(times[450], 3_600);

    // Without the gap, the minute limit is what paces bursts.
    let mut b = WriteBudget::new(BudgetLimits {
        min_gap: TimeDelta::zero(),
        ..limits
    });
    for i in 0..150 {
        b.enqueue(w(&format!("k{i}"), WriteKind::CreateIssueComment, ""));
    }
    let times: Vec<i64> = drain(&mut b, t0()).into_iter().map(|s| s.0).collect();
    let per_start = |t: i64| times.iter().filter(|&&u| u == t).count();
    assert_eq!((per_start(0), per_start(60), per_start(120)), (72, 72, 6));
}

#[test]
fn a_secondary_limit_answer_pauses_and_retries() {
    let mut b = WriteBudget::new(BudgetLimits::default());
    b.enqueue(w("pr/1/sticky", WriteKind::EditIssueComment, "v1"));
    b.enqueue(w("pr/1/review/abc", WriteKind::CreateReview, "review"));
    let Next::Send { ticket, .. } = b.next(t0()) else {
        panic!()
    };
    b.finished(
        ticket,
        Outcome::RateLimited {
            retry_after: Some(TimeDelta::seconds(30)),
        },
        t0(),
    );
    let paused = t0() + TimeDelta::seconds(30);
    assert_eq!(
        b.next(t0() + TimeDelta::seconds(5)),
        Next::WaitUntil(paused)
    );
    assert_eq!(b.metrics(t0()).paused_until, Some(paused));
    // A newer body arrives meanwhile: it replaces the one that was refused.
    b.enqueue(w("pr/1/sticky", WriteKind::EditIssueComment, "v2"));
    let sent = drain(&mut b, t0() + TimeDelta::seconds(5));
    assert_eq!(
        sent.iter().map(|s| (s.0, s.2.as_str())).collect::<Vec<_>>(),
        [(30, "v2"), (31, "review")]
    );
    // Without retry-after: the default backoff; the refused write itself is retried.
    b.enqueue(w("x", WriteKind::CreateIssueComment, "once"));
    let now = t0() + TimeDelta::seconds(100);
    let Next::Send { ticket, .. } = b.next(now) else {
        panic!()
    };
    b.finished(ticket, Outcome::RateLimited { retry_after: None }, now);
    let sent = drain(&mut b, now);
    assert_eq!(sent, [(160, "x".to_string(), "once".to_string())]);
    let m = b.metrics(now + TimeDelta::seconds(60));
    assert_eq!(
        (m.rate_limited, m.created, m.updated, m.failed),
        (2, 2, 1, 0)
    );
}

#[test]
fn failures_are_dropped_and_counted() {
    let mut b = WriteBudget::new(BudgetLimits::default());
    b.enqueue(w("x", WriteKind::CreateStatus, "s"));
    let Next::Send { ticket, .. } = b.next(t0()) else {
        panic!()
    };
    assert_eq!(b.metrics(t0()).in_flight, 1);
    b.finished(ticket, Outcome::Failed, t0());
    b.finished(ticket, Outcome::Done, t0()); // a second report is ignored
    assert_eq!(b.next(t0()), Next::Idle);
    let m = b.metrics(t0());
    assert_eq!(
        (
            m.failed,
            m.created,
            m.in_flight,
            m.sent_last_minute,
            m.remaining_minute
        ),
        (1, 0, 0, 1, 71)
    );
}

#[test]
fn kind_names_are_the_stored_names_and_a_new_check_run_replaces_its_pending_annotations() {
    use WriteKind::*;
    for kind in [
        CreateIssueComment,
        EditIssueComment,
        CreateReview,
        UpdateReview,
        CreateReviewComment,
        EditReviewComment,
        CreateCheckRun,
        UpdateCheckRun,
        AppendAnnotations,
        CreateStatus,
    ] {
        assert_eq!(
            serde_json::to_value(kind).unwrap(),
            serde_json::Value::String(kind.as_str().to_string())
        );
        assert_eq!(
            kind.replaces().contains(&kind),
            kind.coalesces(),
            "{kind:?}"
        );
    }
    assert!(CreateCheckRun.replaces().contains(&AppendAnnotations));
}
