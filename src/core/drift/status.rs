//! Sync status per project, in Argo CD's vocabulary adapted to Terraform, and the last applied
//! commit per project (the multi-environment view).
//!
//! [`sync_status`] is a pure function of the latest check, the schedule, whether a Sluice apply
//! of the project is running, and `now`. Precedence, first match wins:
//!
//! 1. `applying`: a Sluice apply of the project is running (whatever a check said before).
//! 2. `unknown`: never checked.
//! 3. `stale`: checks are scheduled and two scheduled checks in a row have passed since the
//!    latest one finished (see `schedule::stale_at`): whatever it said is too old to show.
//! 4. `check_failed`: the latest check failed.
//! 5. `drifted`: the latest check found changes made outside Git (even if it also found
//!    unapplied ones: an outside change is the more urgent news).
//! 6. `out_of_sync`: the latest check found only unapplied changes or upgrade changes (Git is
//!    ahead of the live infrastructure).
//! 7. `synced`.
//!
//! An accepted drift is still `drifted` (or `out_of_sync`); [`ProjectSync`] carries the
//! acceptance and its expiry next to the status.

use std::fmt;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::classify::ClassCounts;
use super::lifecycle::{CheckOutcome, DriftPhase, DriftRecord, DriftState, LastCheck};
use super::schedule::{Schedule, next_due, stale_at};
use crate::core::event::Actor;
use crate::core::types::{CommitSha, PrNumber};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncStatus {
    /// The live infrastructure matches the default branch.
    Synced,
    /// Changed outside Git.
    Drifted,
    /// Git is ahead: merged but not applied (or an upgrade wants changes).
    OutOfSync,
    /// A Sluice apply of the project is running.
    Applying,
    /// The latest check failed (e.g. the state backend was unreachable).
    CheckFailed,
    /// Never checked.
    Unknown,
    /// The latest check is older than two scheduled checks.
    Stale,
}

impl SyncStatus {
    pub const ALL: [SyncStatus; 7] = [
        SyncStatus::Synced,
        SyncStatus::Drifted,
        SyncStatus::OutOfSync,
        SyncStatus::Applying,
        SyncStatus::CheckFailed,
        SyncStatus::Unknown,
        SyncStatus::Stale,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SyncStatus::Synced => "synced",
            SyncStatus::Drifted => "drifted",
            SyncStatus::OutOfSync => "out_of_sync",
            SyncStatus::Applying => "applying",
            SyncStatus::CheckFailed => "check_failed",
            SyncStatus::Unknown => "unknown",
            SyncStatus::Stale => "stale",
        }
    }
}

impl fmt::Display for SyncStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a project is scheduled, for staleness and the next due time.
#[derive(Debug, Clone, Copy)]
pub struct ScheduleView<'a> {
    pub schedule: &'a Schedule,
    /// The project's jitter offset (`schedule::Jitter::offset`).
    pub offset: Duration,
}

/// The status of one project. `schedule` is `None` when scheduled checks are off for it (it
/// is then never `stale`).
pub fn sync_status(
    last_check: Option<&LastCheck>,
    schedule: Option<ScheduleView<'_>>,
    applying: bool,
    now: DateTime<Utc>,
) -> SyncStatus {
    if applying {
        return SyncStatus::Applying;
    }
    let Some(last) = last_check else {
        return SyncStatus::Unknown;
    };
    if let Some(s) = schedule
        && stale_at(s.schedule, s.offset, last.at).is_some_and(|t| now >= t)
    {
        return SyncStatus::Stale;
    }
    match &last.outcome {
        CheckOutcome::Failed => SyncStatus::CheckFailed,
        CheckOutcome::Drifted { counts } if counts.changed_outside > 0 => SyncStatus::Drifted,
        CheckOutcome::Drifted { counts } if counts.total() > 0 => SyncStatus::OutOfSync,
        CheckOutcome::Drifted { .. } | CheckOutcome::Clean => SyncStatus::Synced,
    }
}

/// The last commit Sluice applied for a project: what the store keeps, updated on every
/// successful apply job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastApplied {
    pub sha: CommitSha,
    /// Who ran the apply (the commenter).
    pub by: Actor,
    pub at: DateTime<Utc>,
    /// The pull request it was applied from; `None` for an apply not from a PR.
    pub pr: Option<PrNumber>,
    /// The engine version that applied it, for the upgrade rule.
    pub engine_version: Option<String>,
}

/// A project's drift, as a status view shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftView {
    pub phase: DriftPhase,
    /// 12 hex digits.
    pub fingerprint: String,
    pub counts: ClassCounts,
    pub opened_at: DateTime<Utc>,
    /// Seconds since it opened (until now, or until it was resolved).
    pub age_seconds: i64,
    pub acknowledged_by: Option<String>,
    pub accepted_by: Option<String>,
    /// The last day the acceptance covers (UTC).
    pub accepted_until: Option<NaiveDate>,
    pub accepted_reason: Option<String>,
}

/// Everything `sluice status` and `GET /api/projects` show about one project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectSync {
    pub status: SyncStatus,
    pub last_check_at: Option<DateTime<Utc>>,
    /// `None` when scheduled checks are off.
    pub next_check_due: Option<DateTime<Utc>>,
    /// The live drift object; `None` when there is none.
    pub drift: Option<DriftView>,
    /// While checks fail: since when, and how many.
    pub failing_since: Option<DateTime<Utc>>,
    pub failures: u32,
    pub last_applied: Option<LastApplied>,
}

/// Builds the status view of one project from what the store keeps.
pub fn project_sync(
    record: &DriftRecord,
    last_applied: Option<&LastApplied>,
    schedule: Option<ScheduleView<'_>>,
    applying: bool,
    now: DateTime<Utc>,
) -> ProjectSync {
    let status = sync_status(record.last_check.as_ref(), schedule, applying, now);
    let last_check_at = record.last_check.as_ref().map(|c| c.at);
    let next_check_due = schedule.and_then(|s| {
        let from = last_check_at.unwrap_or(now);
        next_due(s.schedule, s.offset, from)
    });
    let drift = record.live().map(|d| {
        let (mut acknowledged_by, mut accepted_by, mut accepted_until, mut accepted_reason) =
            (None, None, None, None);
        match &d.state {
            DriftState::Acknowledged(a) => acknowledged_by = Some(a.by.login.clone()),
            DriftState::Accepted(a) => {
                accepted_by = Some(a.by.login.clone());
                accepted_until = Some(a.until);
                accepted_reason = a.reason.clone();
            }
            DriftState::Open | DriftState::Resolved { .. } => {}
        }
        DriftView {
            phase: d.state.phase(),
            fingerprint: d.fingerprint.short().to_string(),
            counts: d.counts,
            opened_at: d.opened_at,
            age_seconds: (now - d.opened_at).num_seconds().max(0),
            acknowledged_by,
            accepted_by,
            accepted_until,
            accepted_reason,
        }
    });
    ProjectSync {
        status,
        last_check_at,
        next_check_due,
        drift,
        failing_since: record.failure.as_ref().map(|f| f.since),
        failures: record.failure.as_ref().map_or(0, |f| f.failures),
        last_applied: last_applied.cloned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::drift::fingerprint::{Fingerprint, ValuesDigest};
    use crate::core::drift::lifecycle::{DriftEvent, apply};
    use crate::core::event::ActorKind;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn counts(outside: usize, unapplied: usize, upgrade: usize) -> ClassCounts {
        ClassCounts {
            changed_outside: outside,
            unapplied,
            engine_or_provider_upgrade: upgrade,
        }
    }

    type Case<'a> = (
        &'a str,
        Option<LastCheck>,
        Option<ScheduleView<'a>>,
        bool,
        DateTime<Utc>,
        SyncStatus,
    );

    #[test]
    fn status_table() {
        let six = Schedule::parse("0 */6 * * *").unwrap();
        let sched = Some(ScheduleView {
            schedule: &six,
            offset: Duration::zero(),
        });
        let check = |outcome: CheckOutcome| LastCheck {
            at: at("2027-01-01T00:01:00Z"),
            outcome,
        };
        let soon = at("2027-01-01T07:00:00Z");
        let late = at("2027-01-01T12:00:00Z");
        let drifted = check(CheckOutcome::Drifted {
            counts: counts(1, 2, 0),
        });
        let cases: Vec<Case> = vec![
            (
                "never checked",
                None,
                sched,
                false,
                soon,
                SyncStatus::Unknown,
            ),
            (
                "never checked, applying",
                None,
                sched,
                true,
                soon,
                SyncStatus::Applying,
            ),
            (
                "clean",
                Some(check(CheckOutcome::Clean)),
                sched,
                false,
                soon,
                SyncStatus::Synced,
            ),
            (
                "outside + unapplied",
                Some(drifted.clone()),
                sched,
                false,
                soon,
                SyncStatus::Drifted,
            ),
            (
                "applying wins",
                Some(drifted.clone()),
                sched,
                true,
                soon,
                SyncStatus::Applying,
            ),
            (
                "unapplied only",
                Some(check(CheckOutcome::Drifted {
                    counts: counts(0, 2, 0),
                })),
                sched,
                false,
                soon,
                SyncStatus::OutOfSync,
            ),
            (
                "upgrade only",
                Some(check(CheckOutcome::Drifted {
                    counts: counts(0, 0, 1),
                })),
                sched,
                false,
                soon,
                SyncStatus::OutOfSync,
            ),
            (
                "failed",
                Some(check(CheckOutcome::Failed)),
                sched,
                false,
                soon,
                SyncStatus::CheckFailed,
            ),
            (
                "one check missed: not yet stale",
                Some(drifted.clone()),
                sched,
                false,
                at("2027-01-01T11:59:59Z"),
                SyncStatus::Drifted,
            ),
            (
                "two checks missed",
                Some(drifted.clone()),
                sched,
                false,
                late,
                SyncStatus::Stale,
            ),
            (
                "failed long ago",
                Some(check(CheckOutcome::Failed)),
                sched,
                false,
                late,
                SyncStatus::Stale,
            ),
            (
                "checks off: never stale",
                Some(drifted),
                None,
                false,
                at("2030-01-01T00:00:00Z"),
                SyncStatus::Drifted,
            ),
        ];
        for (name, last, sched, applying, now, want) in cases {
            assert_eq!(
                sync_status(last.as_ref(), sched, applying, now),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn project_view() {
        let six = Schedule::parse("0 */6 * * *").unwrap();
        let sched = Some(ScheduleView {
            schedule: &six,
            offset: Duration::seconds(90),
        });
        let ana = Actor {
            login: "ana".into(),
            id: 1,
            kind: ActorKind::Human,
        };
        let mut rec = DriftRecord::default();
        for e in [
            DriftEvent::CheckDrifted {
                at: at("2027-01-01T00:01:30Z"),
                fingerprint: Fingerprint::parse(&"ab".repeat(32)).unwrap(),
                values: ValuesDigest::parse(&"cd".repeat(32)).unwrap(),
                counts: counts(1, 0, 0),
            },
            DriftEvent::Accept {
                at: at("2027-01-01T02:00:00Z"),
                actor: ana.clone(),
                until: NaiveDate::from_ymd_opt(2027, 1, 31).unwrap(),
                reason: Some("vendor fix pending".into()),
            },
        ] {
            rec = apply(&rec, &e).unwrap().record;
        }
        let applied = LastApplied {
            sha: CommitSha::new(&"e".repeat(40)).unwrap(),
            by: ana,
            at: at("2026-12-31T10:00:00Z"),
            pr: Some(PrNumber::new(12).unwrap()),
            engine_version: Some("1.0.3".into()),
        };
        let view = project_sync(
            &rec,
            Some(&applied),
            sched,
            false,
            at("2027-01-01T03:01:30Z"),
        );
        insta::assert_snapshot!(serde_json::to_string_pretty(&view).unwrap(), @r#"
        {
          "status": "drifted",
          "last_check_at": "2027-01-01T00:01:30Z",
          "next_check_due": "2027-01-01T06:01:30Z",
          "drift": {
            "phase": "accepted",
            "fingerprint": "abababababab",
            "counts": {
              "changed_outside": 1,
              "engine_or_provider_upgrade": 0,
              "unapplied": 0
            },
            "opened_at": "2027-01-01T00:01:30Z",
            "age_seconds": 10800,
            "acknowledged_by": null,
            "accepted_by": "ana",
            "accepted_until": "2027-01-31",
            "accepted_reason": "vendor fix pending"
          },
          "failing_since": null,
          "failures": 0,
          "last_applied": {
            "sha": "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee",
            "by": {
              "login": "ana",
              "id": 1,
              "kind": "human"
            },
            "at": "2026-12-31T10:00:00Z",
            "pr": 12,
            "engine_version": "1.0.3"
          }
        }
        "#);
    }
}
