//! Drift metrics computed from a drift object's transition history: time to detect, drift age,
//! time to acknowledge, time to resolve; and counters over a window of checks.
//!
//! Definitions (durations in whole seconds):
//! * **time to detect**: from the latest moment the project was known in sync (the last clean
//!   check or converging apply before the drift opened) to the check that opened it. The drift
//!   happened somewhere in that window, so this is an upper bound of how long it went unseen.
//!   `None` when the project was never known in sync.
//! * **drift age**: from opening to resolution, or to `now` while it is live.
//! * **time to acknowledge**: from opening to the first acknowledgement or acceptance.
//! * **time to resolve**: from opening to resolution; `None` while live.
//!
//! Pure: the store keeps the history (`lifecycle::Drift::history`, which always keeps the
//! opening transition) and the exporter calls these.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::lifecycle::{Drift, Transition, TransitionKind};

/// The metrics of one drift object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftMetrics {
    pub time_to_detect_seconds: Option<i64>,
    pub age_seconds: i64,
    pub time_to_acknowledge_seconds: Option<i64>,
    pub time_to_resolve_seconds: Option<i64>,
}

/// Computes the metrics of `drift` at `now`.
pub fn drift_metrics(drift: &Drift, now: DateTime<Utc>) -> DriftMetrics {
    metrics_from_history(&drift.history, drift.opened_at, now)
}

/// The same from a bare history (e.g. read back from the audit log). `opened_at` is used when
/// the history lacks the opening transition.
pub fn metrics_from_history(
    history: &[Transition],
    opened_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> DriftMetrics {
    let secs = |d: Duration| d.num_seconds().max(0);
    let opened = history.iter().find_map(|t| match &t.kind {
        TransitionKind::Opened { last_clean_at } => Some((t.at, *last_clean_at)),
        _ => None,
    });
    let (opened_at, last_clean_at) = opened.unwrap_or((opened_at, None));
    let resolved_at = history.iter().rev().find_map(|t| match &t.kind {
        TransitionKind::Resolved(_) => Some(t.at),
        _ => None,
    });
    let acknowledged_at = history.iter().find_map(|t| match &t.kind {
        TransitionKind::Acknowledged | TransitionKind::Accepted { .. } => Some(t.at),
        _ => None,
    });
    DriftMetrics {
        time_to_detect_seconds: last_clean_at.map(|c| secs(opened_at - c)),
        age_seconds: secs(resolved_at.unwrap_or(now) - opened_at),
        time_to_acknowledge_seconds: acknowledged_at.map(|a| secs(a - opened_at)),
        time_to_resolve_seconds: resolved_at.map(|r| secs(r - opened_at)),
    }
}

/// Checks finished in a window, for "projects checked per hour" and "checks failed".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckCounts {
    pub checks: u64,
    pub failed: u64,
    /// Distinct projects checked at least once.
    pub projects: u64,
}

impl CheckCounts {
    /// Projects checked per hour over a window of `window` length.
    pub fn projects_per_hour(&self, window: Duration) -> f64 {
        let hours = window.num_seconds() as f64 / 3600.0;
        if hours <= 0.0 {
            0.0
        } else {
            self.projects as f64 / hours
        }
    }
}

/// Counts checks finished in `[from, to)` from `(project key, finished at, failed)` rows.
pub fn count_checks<'a, K: Ord + 'a>(
    checks: impl IntoIterator<Item = (&'a K, DateTime<Utc>, bool)>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> CheckCounts {
    let mut projects = std::collections::BTreeSet::new();
    let mut c = CheckCounts::default();
    for (key, at, failed) in checks {
        if at < from || at >= to {
            continue;
        }
        c.checks += 1;
        c.failed += u64::from(failed);
        projects.insert(key);
    }
    c.projects = projects.len() as u64;
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::drift::classify::ClassCounts;
    use crate::core::drift::fingerprint::{Fingerprint, ValuesDigest};
    use crate::core::drift::lifecycle::{DriftEvent, DriftRecord, apply};
    use crate::core::event::{Actor, ActorKind};

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn drifted(t: &str) -> DriftEvent {
        DriftEvent::CheckDrifted {
            at: at(t),
            fingerprint: Fingerprint::parse(&"a".repeat(64)).unwrap(),
            values: ValuesDigest::parse(&"b".repeat(64)).unwrap(),
            counts: ClassCounts {
                changed_outside: 1,
                ..ClassCounts::default()
            },
        }
    }

    #[test]
    fn from_a_real_history() {
        let mut rec = DriftRecord::default();
        let events = [
            DriftEvent::CheckClean {
                at: at("2027-01-01T00:00:00Z"),
            },
            drifted("2027-01-01T06:00:00Z"),
            DriftEvent::Ack {
                at: at("2027-01-01T06:30:00Z"),
                actor: Actor {
                    login: "ana".into(),
                    id: 1,
                    kind: ActorKind::Human,
                },
            },
        ];
        for e in &events {
            rec = apply(&rec, e).unwrap().record;
        }
        let live = drift_metrics(rec.drift.as_ref().unwrap(), at("2027-01-01T08:00:00Z"));
        assert_eq!(
            live,
            DriftMetrics {
                time_to_detect_seconds: Some(6 * 3600),
                age_seconds: 2 * 3600,
                time_to_acknowledge_seconds: Some(1800),
                time_to_resolve_seconds: None,
            }
        );
        rec = apply(
            &rec,
            &DriftEvent::CheckClean {
                at: at("2027-01-01T12:00:00Z"),
            },
        )
        .unwrap()
        .record;
        let done = drift_metrics(rec.drift.as_ref().unwrap(), at("2027-02-01T00:00:00Z"));
        assert_eq!(done.time_to_resolve_seconds, Some(6 * 3600));
        assert_eq!(done.age_seconds, 6 * 3600, "age stops at resolution");

        // Never known in sync: no time to detect.
        let first = apply(&DriftRecord::default(), &drifted("2027-01-01T06:00:00Z"))
            .unwrap()
            .record;
        let m = drift_metrics(first.drift.as_ref().unwrap(), at("2027-01-01T06:00:00Z"));
        assert_eq!(m.time_to_detect_seconds, None);
        assert_eq!(m.age_seconds, 0);
    }

    #[test]
    fn counting_checks() {
        let rows = [
            ("a", "2027-01-01T00:10:00Z", false),
            ("a", "2027-01-01T00:40:00Z", true),
            ("b", "2027-01-01T00:50:00Z", false),
            ("c", "2027-01-01T01:00:00Z", false),
        ];
        let keys: Vec<String> = rows.iter().map(|r| r.0.to_string()).collect();
        let c = count_checks(
            rows.iter().zip(&keys).map(|(r, k)| (k, at(r.1), r.2)),
            at("2027-01-01T00:00:00Z"),
            at("2027-01-01T01:00:00Z"),
        );
        assert_eq!(
            c,
            CheckCounts {
                checks: 3,
                failed: 1,
                projects: 2
            }
        );
        assert_eq!(c.projects_per_hour(Duration::minutes(30)), 4.0);
        assert_eq!(c.projects_per_hour(Duration::zero()), 0.0);
    }
}
