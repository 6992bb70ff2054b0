//! The drift lifecycle: one drift object per project, and what each event does to it.
//!
//! ```text
//!            check_drifted                 ack                    accept --until D
//!   (none) ───────────────▶ open ─────────────────▶ acknowledged ─────────────────▶ accepted
//!      ▲                     │ ▲ ◀─── different drift / values changed / D passed ───┘ │
//!      │                     │ └──────────── different drift ─────────┘                │
//!      └─── resolved ◀───────┴── check_clean, or a Sluice apply that converges ───────┘
//! ```
//!
//! [`apply`] is the one transition function: (record, event) → new record, the audit-worthy
//! [`Transition`]s, what to do with the project's GitHub issues, and which transitions to
//! notify about. The rules:
//!
//! * **Identity.** A drift object is identified by its [`Fingerprint`]. A check that finds the
//!   same fingerprint edits the same object (and its issue); nothing is opened again.
//! * **A different drift.** While `open`, the object takes the new fingerprint (transition
//!   `changed`, audited, no notification: it was already open). While `acknowledged` or
//!   `accepted`, it re-opens: an acknowledgement or acceptance covers the drift it was given
//!   for, not whatever comes next (transition `reopened`, notified).
//! * **Accepted values.** An acceptance is also bound to the [`ValuesDigest`] of what the
//!   report showed when it was given: if the same attributes drift to other values, it re-opens.
//!   (Fail closed: accepting "port 22 open to 10.0.0.0/8" must not cover "open to 0.0.0.0/0".
//!   Sensitive values are never shown, so a change of only a sensitive value does not re-open.)
//! * **Expiry.** `accept --until D` covers through the end of day `D` (UTC). The first event
//!   at or after `D + 1` 00:00 UTC re-opens it (transition `acceptance_expired`, notified);
//!   the app sends `time_passed` regularly so this happens even without a check.
//! * **Resolution.** A clean check resolves a live drift object; so does a successful Sluice
//!   apply that converges the project (a full apply: see [`apply_converges`]). The issue is
//!   closed. A later drift opens a new object (and a new issue).
//! * **Failed checks** do not touch the drift object (nothing is known). The first failure of
//!   a streak is audited, notified and opens the check-failed issue; later failures only edit
//!   that issue; the next successful check ends the streak (audited, notified, issue closed).
//! * **Notifications** go out on state changes only (opened, reopened, acknowledged, accepted,
//!   acceptance expired, resolved, check failed, check recovered). A check that finds the same
//!   drift, or a `changed` fingerprint while open, only edits the issue.
//! * **Refusals.** `ack` and `accept` need a live (open, acknowledged or accepted) drift;
//!   `ack` of an acknowledged drift and `accept` with a date before the event's day are
//!   refused with a message for the person who asked ([`LifecycleError`]). Check events never
//!   fail.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::classify::{ClassCounts, Classification};
use super::fingerprint::{Fingerprint, ValuesDigest};
use crate::core::event::Actor;
use crate::core::types::{CommitSha, PrNumber};

/// A drift object keeps at most this many transitions (the first, `opened`, always stays; then
/// the most recent). The audit log has all of them.
pub const MAX_HISTORY: usize = 100;

/// Where a drift object is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftPhase {
    Open,
    Acknowledged,
    Accepted,
    Resolved,
}

impl DriftPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            DriftPhase::Open => "open",
            DriftPhase::Acknowledged => "acknowledged",
            DriftPhase::Accepted => "accepted",
            DriftPhase::Resolved => "resolved",
        }
    }

    /// Open, acknowledged or accepted: its issue is open.
    pub fn is_live(self) -> bool {
        self != DriftPhase::Resolved
    }
}

impl std::fmt::Display for DriftPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who acknowledged, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledgement {
    pub by: Actor,
    pub at: DateTime<Utc>,
}

/// An exception with an expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acceptance {
    pub by: Actor,
    pub at: DateTime<Utc>,
    /// Covered through the end of this day (UTC).
    pub until: NaiveDate,
    pub reason: Option<String>,
    /// What the report showed when it was accepted.
    pub values: ValuesDigest,
}

impl Acceptance {
    /// Whether the acceptance has run out at `now` (from `until + 1` 00:00 UTC on).
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        now.date_naive() > self.until
    }
}

/// How a drift object was resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum Resolution {
    /// A later check found the project in sync.
    CheckClean,
    /// A Sluice apply converged the project.
    Applied {
        /// Who applied. Named `applied_by` in JSON: a [`Transition`] flattens its kind next to
        /// its own `actor`, and one object cannot hold two `actor` keys.
        #[serde(rename = "applied_by")]
        actor: Option<Actor>,
        pr: Option<PrNumber>,
        sha: CommitSha,
    },
}

/// The state of a drift object, with the facts of that state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum DriftState {
    Open,
    Acknowledged(Acknowledgement),
    Accepted(Acceptance),
    Resolved { at: DateTime<Utc>, how: Resolution },
}

impl DriftState {
    pub fn phase(&self) -> DriftPhase {
        match self {
            DriftState::Open => DriftPhase::Open,
            DriftState::Acknowledged(_) => DriftPhase::Acknowledged,
            DriftState::Accepted(_) => DriftPhase::Accepted,
            DriftState::Resolved { .. } => DriftPhase::Resolved,
        }
    }
}

/// One drift object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    pub state: DriftState,
    pub fingerprint: Fingerprint,
    pub values: ValuesDigest,
    /// Of the latest check that found it.
    pub counts: ClassCounts,
    /// When a check first found it.
    pub opened_at: DateTime<Utc>,
    /// The latest check that found it.
    pub last_seen_at: DateTime<Utc>,
    /// Oldest first; capped at [`MAX_HISTORY`].
    pub history: Vec<Transition>,
}

/// A run of failed checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureStreak {
    pub since: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
    pub failures: u32,
    /// The latest error, already redacted and cut by the app.
    pub last_error: String,
}

/// What the store keeps per project (serializable as one value).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftRecord {
    /// The live drift object, or the last resolved one; `None` before the first drift.
    pub drift: Option<Drift>,
    /// `Some` while the latest checks fail.
    pub failure: Option<FailureStreak>,
    /// The latest check (any result).
    pub last_check: Option<LastCheck>,
    /// The latest time the project was known to be in sync: a clean check or a converging
    /// apply. Feeds "time to detect".
    pub last_clean_at: Option<DateTime<Utc>>,
}

impl DriftRecord {
    /// The live drift object, if any.
    pub fn live(&self) -> Option<&Drift> {
        self.drift.as_ref().filter(|d| d.state.phase().is_live())
    }
}

/// The result of the latest check, for sync status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastCheck {
    pub at: DateTime<Utc>,
    pub outcome: CheckOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum CheckOutcome {
    Clean,
    Drifted { counts: ClassCounts },
    Failed,
}

/// Something that happened to a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum DriftEvent {
    CheckClean {
        at: DateTime<Utc>,
    },
    CheckDrifted {
        at: DateTime<Utc>,
        fingerprint: Fingerprint,
        values: ValuesDigest,
        counts: ClassCounts,
    },
    CheckFailed {
        at: DateTime<Utc>,
        /// Redacted and cut by the app (it is stored and shown).
        error: String,
    },
    Ack {
        at: DateTime<Utc>,
        actor: Actor,
    },
    Accept {
        at: DateTime<Utc>,
        actor: Actor,
        until: NaiveDate,
        reason: Option<String>,
    },
    /// A Sluice apply of the project succeeded. `converges` says whether it brought the whole
    /// project in line with its configuration ([`apply_converges`]).
    ApplySucceeded {
        at: DateTime<Utc>,
        actor: Option<Actor>,
        pr: Option<PrNumber>,
        sha: CommitSha,
        converges: bool,
    },
    /// The clock moved on (sent by the scheduler; lets acceptances expire without a check).
    TimePassed {
        now: DateTime<Utc>,
    },
}

impl DriftEvent {
    /// The event for a successful check.
    pub fn checked(at: DateTime<Utc>, c: &Classification) -> DriftEvent {
        if c.is_clean() {
            DriftEvent::CheckClean { at }
        } else {
            DriftEvent::CheckDrifted {
                at,
                fingerprint: c.fingerprint.clone(),
                values: c.values.clone(),
                counts: c.counts(),
            }
        }
    }

    pub fn at(&self) -> DateTime<Utc> {
        match self {
            DriftEvent::CheckClean { at }
            | DriftEvent::CheckDrifted { at, .. }
            | DriftEvent::CheckFailed { at, .. }
            | DriftEvent::Ack { at, .. }
            | DriftEvent::Accept { at, .. }
            | DriftEvent::ApplySucceeded { at, .. } => *at,
            DriftEvent::TimePassed { now } => *now,
        }
    }
}

/// Why an acknowledged or accepted drift was re-opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum ReopenReason {
    /// Other resources or attributes drift now.
    DifferentDrift { previous: Fingerprint },
    /// The same attributes, other values than the accepted ones.
    ValuesChanged,
}

/// What happened, as the audit log and the issue's history record it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TransitionKind {
    Opened {
        /// The latest time the project was known in sync before (for time to detect).
        last_clean_at: Option<DateTime<Utc>>,
    },
    /// Still open, other resources or attributes.
    Changed {
        previous: Fingerprint,
    },
    Reopened(ReopenReason),
    Acknowledged,
    Accepted {
        until: NaiveDate,
        reason: Option<String>,
    },
    AcceptanceExpired {
        until: NaiveDate,
    },
    Resolved(Resolution),
    /// A streak of failed checks began.
    CheckFailed {
        error: String,
    },
    /// The streak ended with a successful check.
    CheckRecovered {
        failures: u32,
        since: DateTime<Utc>,
    },
}

/// One audit-worthy step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub kind: TransitionKind,
    /// The drift object's phase before and after; `None` when there was none (or for
    /// failure transitions when no drift object is live).
    pub from: Option<DriftPhase>,
    pub to: Option<DriftPhase>,
    /// Who caused it: the commenter for ack/accept, the applier for an apply; `None` for the
    /// checker and the clock.
    pub actor: Option<Actor>,
    /// The drift object's fingerprint after the transition.
    pub fingerprint: Option<Fingerprint>,
}

impl Transition {
    /// The audit action for this transition (`drift_opened`, …).
    pub fn audit_action(&self) -> &'static str {
        match &self.kind {
            TransitionKind::Opened { .. } => "drift_opened",
            TransitionKind::Changed { .. } => "drift_changed",
            TransitionKind::Reopened(_) => "drift_reopened",
            TransitionKind::Acknowledged => "drift_acknowledged",
            TransitionKind::Accepted { .. } => "drift_accepted",
            TransitionKind::AcceptanceExpired { .. } => "drift_acceptance_expired",
            TransitionKind::Resolved(_) => "drift_resolved",
            TransitionKind::CheckFailed { .. } => "drift_check_failed",
            TransitionKind::CheckRecovered { .. } => "drift_check_recovered",
        }
    }

    /// The audit entry's `details` object: this transition as JSON (keys sorted by
    /// `serde_json`'s map), without `at` (the entry has its own time).
    pub fn audit_details(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        };
        m.remove("at");
        m.remove("actor");
        // What was not given (an acceptance without a reason) is left out, not written `null`.
        m.retain(|_, v| !v.is_null());
        m
    }

    /// Whether this transition changes the project's state (and so is notified).
    pub fn notifies(&self) -> bool {
        !matches!(self.kind, TransitionKind::Changed { .. })
    }
}

/// What to do with one of the project's GitHub issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IssueAction {
    /// Open a new issue (title, body, labels from `report`).
    Open,
    /// Edit the open issue's title, body and labels in place.
    Edit,
    /// Edit it one last time, then close it.
    Close,
}

/// The outcome of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub record: DriftRecord,
    /// Each becomes one audit entry, in order.
    pub transitions: Vec<Transition>,
    /// The drift issue (`report::issue_title` / `issue_body`).
    pub drift_issue: Option<IssueAction>,
    /// The check-failed issue (`report::check_failed_title` / `check_failed_body`).
    pub failure_issue: Option<IssueAction>,
}

impl Step {
    /// The transitions to send notifications for (state changes only).
    pub fn notifications(&self) -> impl Iterator<Item = &Transition> {
        self.transitions.iter().filter(|t| t.notifies())
    }
}

/// Why `ack` or `accept` was refused; the message is the reply to the person who asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    #[error("there is no open drift to {0}: the latest check found this project in sync")]
    NothingLive(&'static str),
    #[error("this drift was already acknowledged by @{by} on {at}")]
    AlreadyAcknowledged { by: String, at: String },
    #[error("`--until {until}` is in the past; give today ({today}) or a later date")]
    UntilInPast { until: NaiveDate, today: NaiveDate },
}

/// Applies `event` to `record`. Check, apply and time events never fail; `ack` and `accept`
/// fail (and change nothing) as [`LifecycleError`] says.
pub fn apply(record: &DriftRecord, event: &DriftEvent) -> Result<Step, LifecycleError> {
    let at = event.at();
    let mut m = Machine {
        rec: record.clone(),
        transitions: Vec::new(),
        drift_issue: None,
        failure_issue: None,
    };
    // An acceptance that ran out is re-opened before anything else happens at this time.
    m.expire(at);

    match event {
        DriftEvent::TimePassed { .. } => {}
        DriftEvent::CheckClean { at } => {
            m.end_failure_streak(*at);
            m.rec.last_check = Some(LastCheck {
                at: *at,
                outcome: CheckOutcome::Clean,
            });
            m.rec.last_clean_at = Some(*at);
            m.resolve(*at, Resolution::CheckClean, None);
        }
        DriftEvent::CheckDrifted {
            at,
            fingerprint,
            values,
            counts,
        } => {
            m.end_failure_streak(*at);
            m.rec.last_check = Some(LastCheck {
                at: *at,
                outcome: CheckOutcome::Drifted { counts: *counts },
            });
            m.drifted(*at, fingerprint, values, *counts);
        }
        DriftEvent::CheckFailed { at, error } => {
            m.rec.last_check = Some(LastCheck {
                at: *at,
                outcome: CheckOutcome::Failed,
            });
            m.failed(*at, error);
        }
        DriftEvent::Ack { at, actor } => m.ack(*at, actor)?,
        DriftEvent::Accept {
            at,
            actor,
            until,
            reason,
        } => m.accept(*at, actor, *until, reason.clone())?,
        DriftEvent::ApplySucceeded {
            at,
            actor,
            pr,
            sha,
            converges,
        } => {
            if *converges {
                m.rec.last_clean_at = Some(*at);
                let how = Resolution::Applied {
                    actor: actor.clone(),
                    pr: *pr,
                    sha: sha.clone(),
                };
                m.resolve(*at, how, actor.clone());
            }
        }
    }
    Ok(Step {
        record: m.rec,
        transitions: m.transitions,
        drift_issue: m.drift_issue,
        failure_issue: m.failure_issue,
    })
}

/// Whether a successful apply with these extra terraform arguments brought the whole project in
/// line with its configuration, so that it resolves drift without waiting for a check. Not
/// when it was partial (`-target`), skipped the refresh (`-refresh=false`, so outside changes
/// were not seen), only refreshed (`-refresh-only`), or destroyed (`-destroy`). Spellings are
/// matched as terraform's flag parser accepts them (`-x`, `--x`, `-x=v`).
pub fn apply_converges(extra_args: &[String]) -> bool {
    !extra_args.iter().any(|arg| {
        let Some(flag) = arg.trim().strip_prefix('-') else {
            return false;
        };
        let flag = flag.trim_start_matches('-');
        let (name, value) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (flag, None),
        };
        match name.to_ascii_lowercase().replace('_', "-").as_str() {
            "target" | "refresh-only" | "destroy" => true,
            "refresh" => value.is_some_and(|v| v.eq_ignore_ascii_case("false") || v == "0"),
            _ => false,
        }
    })
}

struct Machine {
    rec: DriftRecord,
    transitions: Vec<Transition>,
    drift_issue: Option<IssueAction>,
    failure_issue: Option<IssueAction>,
}

impl Machine {
    fn phase(&self) -> Option<DriftPhase> {
        self.rec.drift.as_ref().map(|d| d.state.phase())
    }

    fn live_phase(&self) -> Option<DriftPhase> {
        self.phase().filter(|p| p.is_live())
    }

    /// Records a transition on the drift object (and in the step).
    fn record(
        &mut self,
        at: DateTime<Utc>,
        kind: TransitionKind,
        from: Option<DriftPhase>,
        actor: Option<Actor>,
    ) {
        let to = self.phase();
        let fingerprint = self.rec.drift.as_ref().map(|d| d.fingerprint.clone());
        let t = Transition {
            at,
            kind,
            from,
            to,
            actor,
            fingerprint,
        };
        // Failure transitions while no drift object is live belong to no drift's history.
        let live = |p: Option<DriftPhase>| p.is_some_and(DriftPhase::is_live);
        if let Some(d) = self.rec.drift.as_mut().filter(|_| live(from) || live(to)) {
            d.history.push(t.clone());
            if d.history.len() > MAX_HISTORY {
                d.history.remove(1);
            }
        }
        self.transitions.push(t);
    }

    /// Issue actions merge: `Open` stays `Open` (the new issue gets the latest body anyway),
    /// `Close` wins over `Edit`.
    fn issue(&mut self, action: IssueAction) {
        self.drift_issue = Some(match (self.drift_issue, action) {
            (Some(IssueAction::Open), IssueAction::Edit) => IssueAction::Open,
            (_, a) => a,
        });
    }

    fn expire(&mut self, now: DateTime<Utc>) {
        let Some(d) = self.rec.drift.as_mut() else {
            return;
        };
        let DriftState::Accepted(acc) = &d.state else {
            return;
        };
        if !acc.expired(now) {
            return;
        }
        let until = acc.until;
        d.state = DriftState::Open;
        self.record(
            now,
            TransitionKind::AcceptanceExpired { until },
            Some(DriftPhase::Accepted),
            None,
        );
        self.issue(IssueAction::Edit);
    }

    fn drifted(
        &mut self,
        at: DateTime<Utc>,
        fingerprint: &Fingerprint,
        values: &ValuesDigest,
        counts: ClassCounts,
    ) {
        let Some(from) = self.live_phase() else {
            let last_clean_at = self.rec.last_clean_at;
            self.rec.drift = Some(Drift {
                state: DriftState::Open,
                fingerprint: fingerprint.clone(),
                values: values.clone(),
                counts,
                opened_at: at,
                last_seen_at: at,
                history: Vec::new(),
            });
            self.record(at, TransitionKind::Opened { last_clean_at }, None, None);
            self.issue(IssueAction::Open);
            return;
        };
        let d = self
            .rec
            .drift
            .as_mut()
            .expect("a live phase has a drift object");
        let previous = d.fingerprint.clone();
        let same = previous == *fingerprint;
        d.fingerprint = fingerprint.clone();
        d.values = values.clone();
        d.counts = counts;
        d.last_seen_at = at;
        let reopen = match (&d.state, same) {
            (DriftState::Open, true) => None,
            (DriftState::Open, false) => {
                self.record(at, TransitionKind::Changed { previous }, Some(from), None);
                None
            }
            (DriftState::Acknowledged(_), true) | (DriftState::Resolved { .. }, true) => None,
            (DriftState::Accepted(acc), true) if acc.values == *values => None,
            (DriftState::Accepted(_), true) => Some(ReopenReason::ValuesChanged),
            (_, false) => Some(ReopenReason::DifferentDrift { previous }),
        };
        // New values alone (open or acknowledged) are no transition: the issue shows the
        // latest values.
        if let Some(reason) = reopen {
            if let Some(d) = self.rec.drift.as_mut() {
                d.state = DriftState::Open;
            }
            self.record(at, TransitionKind::Reopened(reason), Some(from), None);
        }
        self.issue(IssueAction::Edit);
    }

    fn resolve(&mut self, at: DateTime<Utc>, how: Resolution, actor: Option<Actor>) {
        let Some(from) = self.live_phase() else {
            return;
        };
        if let Some(d) = self.rec.drift.as_mut() {
            d.state = DriftState::Resolved {
                at,
                how: how.clone(),
            };
        }
        self.record(at, TransitionKind::Resolved(how), Some(from), actor);
        self.issue(IssueAction::Close);
    }

    fn failed(&mut self, at: DateTime<Utc>, error: &str) {
        match self.rec.failure.as_mut() {
            Some(streak) => {
                streak.failures = streak.failures.saturating_add(1);
                streak.last_at = at;
                streak.last_error = error.to_string();
                self.failure_issue = Some(IssueAction::Edit);
            }
            None => {
                self.rec.failure = Some(FailureStreak {
                    since: at,
                    last_at: at,
                    failures: 1,
                    last_error: error.to_string(),
                });
                let phase = self.phase();
                self.record(
                    at,
                    TransitionKind::CheckFailed {
                        error: error.to_string(),
                    },
                    phase,
                    None,
                );
                self.failure_issue = Some(IssueAction::Open);
            }
        }
    }

    fn end_failure_streak(&mut self, at: DateTime<Utc>) {
        let Some(streak) = self.rec.failure.take() else {
            return;
        };
        let phase = self.phase();
        self.record(
            at,
            TransitionKind::CheckRecovered {
                failures: streak.failures,
                since: streak.since,
            },
            phase,
            None,
        );
        self.failure_issue = Some(IssueAction::Close);
    }

    fn ack(&mut self, at: DateTime<Utc>, actor: &Actor) -> Result<(), LifecycleError> {
        let Some(from) = self.live_phase() else {
            return Err(LifecycleError::NothingLive("acknowledge"));
        };
        let d = self
            .rec
            .drift
            .as_mut()
            .expect("a live phase has a drift object");
        if let DriftState::Acknowledged(a) = &d.state {
            return Err(LifecycleError::AlreadyAcknowledged {
                by: a.by.login.clone(),
                at: a.at.format("%Y-%m-%d %H:%M UTC").to_string(),
            });
        }
        // From `accepted`, this withdraws the exception.
        d.state = DriftState::Acknowledged(Acknowledgement {
            by: actor.clone(),
            at,
        });
        self.record(
            at,
            TransitionKind::Acknowledged,
            Some(from),
            Some(actor.clone()),
        );
        self.issue(IssueAction::Edit);
        Ok(())
    }

    fn accept(
        &mut self,
        at: DateTime<Utc>,
        actor: &Actor,
        until: NaiveDate,
        reason: Option<String>,
    ) -> Result<(), LifecycleError> {
        let today = at.date_naive();
        if until < today {
            return Err(LifecycleError::UntilInPast { until, today });
        }
        let Some(from) = self.live_phase() else {
            return Err(LifecycleError::NothingLive("accept"));
        };
        let d = self
            .rec
            .drift
            .as_mut()
            .expect("a live phase has a drift object");
        d.state = DriftState::Accepted(Acceptance {
            by: actor.clone(),
            at,
            until,
            reason: reason.clone(),
            values: d.values.clone(),
        });
        self.record(
            at,
            TransitionKind::Accepted { until, reason },
            Some(from),
            Some(actor.clone()),
        );
        self.issue(IssueAction::Edit);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::event::ActorKind;
    use chrono::TimeZone;

    fn t(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2027, 1, day, hour, 0, 0).unwrap()
    }

    fn fp(c: char) -> Fingerprint {
        Fingerprint::parse(&c.to_string().repeat(64)).unwrap()
    }

    fn vd(c: char) -> ValuesDigest {
        ValuesDigest::parse(&c.to_string().repeat(64)).unwrap()
    }

    fn actor(login: &str) -> Actor {
        Actor {
            login: login.to_string(),
            id: 7,
            kind: ActorKind::Human,
        }
    }

    fn counts() -> ClassCounts {
        ClassCounts {
            changed_outside: 1,
            ..ClassCounts::default()
        }
    }

    fn drifted(at: DateTime<Utc>, f: char, v: char) -> DriftEvent {
        DriftEvent::CheckDrifted {
            at,
            fingerprint: fp(f),
            values: vd(v),
            counts: counts(),
        }
    }

    fn sha() -> CommitSha {
        CommitSha::new(&"c".repeat(40)).unwrap()
    }

    /// Runs `events` from an empty record; one line per event: phase after it, transitions,
    /// issue actions, notifications (or the refusal).
    fn story(events: &[DriftEvent]) -> String {
        let mut rec = DriftRecord::default();
        let mut out = String::new();
        for e in events {
            let name = serde_json::to_value(e).unwrap()["event"]
                .as_str()
                .unwrap()
                .to_string();
            match apply(&rec, e) {
                Ok(step) => {
                    // The store keeps the record as JSON: every state must read back as it was.
                    let json = serde_json::to_string(&step.record).unwrap();
                    let back: DriftRecord = serde_json::from_str(&json)
                        .unwrap_or_else(|err| panic!("after {name}: {err}\n{json}"));
                    assert_eq!(back, step.record, "after {name}");
                    let phase = step
                        .record
                        .drift
                        .as_ref()
                        .map_or("-", |d| d.state.phase().as_str());
                    let ts: Vec<&str> = step.transitions.iter().map(|t| t.audit_action()).collect();
                    let ns: Vec<&str> = step.notifications().map(|t| t.audit_action()).collect();
                    let issue = |a: Option<IssueAction>| {
                        a.map_or("-".to_string(), |a| format!("{a:?}").to_lowercase())
                    };
                    out.push_str(&format!(
                        "{name} → {phase}; audit [{}]; issue {}; failure issue {}; notify [{}]\n",
                        ts.join(", "),
                        issue(step.drift_issue),
                        issue(step.failure_issue),
                        ns.join(", "),
                    ));
                    rec = step.record;
                }
                Err(e) => out.push_str(&format!("{name} refused: {e}\n")),
            }
        }
        out
    }

    #[test]
    fn the_whole_life() {
        let events = [
            DriftEvent::CheckClean { at: t(1, 0) },
            drifted(t(1, 6), 'a', '1'),
            drifted(t(1, 12), 'a', '2'),
            DriftEvent::Ack {
                at: t(1, 13),
                actor: actor("ana"),
            },
            DriftEvent::Ack {
                at: t(1, 14),
                actor: actor("bo"),
            },
            drifted(t(1, 18), 'a', '3'),
            DriftEvent::Accept {
                at: t(2, 9),
                actor: actor("bo"),
                until: NaiveDate::from_ymd_opt(2027, 1, 10).unwrap(),
                reason: Some("migration".into()),
            },
            drifted(t(3, 0), 'a', '3'),
            DriftEvent::TimePassed { now: t(10, 23) },
            DriftEvent::TimePassed { now: t(11, 0) },
            drifted(t(11, 6), 'b', '4'),
            DriftEvent::CheckFailed {
                at: t(11, 12),
                error: "backend unreachable".into(),
            },
            DriftEvent::CheckFailed {
                at: t(11, 18),
                error: "backend unreachable".into(),
            },
            drifted(t(12, 0), 'b', '4'),
            DriftEvent::ApplySucceeded {
                at: t(12, 6),
                actor: Some(actor("cy")),
                pr: Some(PrNumber::new(42).unwrap()),
                sha: sha(),
                converges: false,
            },
            DriftEvent::ApplySucceeded {
                at: t(12, 7),
                actor: Some(actor("cy")),
                pr: Some(PrNumber::new(42).unwrap()),
                sha: sha(),
                converges: true,
            },
            DriftEvent::CheckClean { at: t(12, 8) },
            DriftEvent::Ack {
                at: t(12, 9),
                actor: actor("ana"),
            },
            drifted(t(13, 0), 'a', '1'),
            DriftEvent::CheckClean { at: t(13, 6) },
        ];
        insta::assert_snapshot!(story(&events), @r"
        check_clean → -; audit []; issue -; failure issue -; notify []
        check_drifted → open; audit [drift_opened]; issue open; failure issue -; notify [drift_opened]
        check_drifted → open; audit []; issue edit; failure issue -; notify []
        ack → acknowledged; audit [drift_acknowledged]; issue edit; failure issue -; notify [drift_acknowledged]
        ack refused: this drift was already acknowledged by @ana on 2027-01-01 13:00 UTC
        check_drifted → acknowledged; audit []; issue edit; failure issue -; notify []
        accept → accepted; audit [drift_accepted]; issue edit; failure issue -; notify [drift_accepted]
        check_drifted → accepted; audit []; issue edit; failure issue -; notify []
        time_passed → accepted; audit []; issue -; failure issue -; notify []
        time_passed → open; audit [drift_acceptance_expired]; issue edit; failure issue -; notify [drift_acceptance_expired]
        check_drifted → open; audit [drift_changed]; issue edit; failure issue -; notify []
        check_failed → open; audit [drift_check_failed]; issue -; failure issue open; notify [drift_check_failed]
        check_failed → open; audit []; issue -; failure issue edit; notify []
        check_drifted → open; audit [drift_check_recovered]; issue edit; failure issue close; notify [drift_check_recovered]
        apply_succeeded → open; audit []; issue -; failure issue -; notify []
        apply_succeeded → resolved; audit [drift_resolved]; issue close; failure issue -; notify [drift_resolved]
        check_clean → resolved; audit []; issue -; failure issue -; notify []
        ack refused: there is no open drift to acknowledge: the latest check found this project in sync
        check_drifted → open; audit [drift_opened]; issue open; failure issue -; notify [drift_opened]
        check_clean → resolved; audit [drift_resolved]; issue close; failure issue -; notify [drift_resolved]
        ");
    }

    #[test]
    fn a_different_drift_reopens_what_was_acknowledged_or_accepted() {
        let until = NaiveDate::from_ymd_opt(2027, 6, 1).unwrap();
        let accept = DriftEvent::Accept {
            at: t(1, 1),
            actor: actor("ana"),
            until,
            reason: None,
        };
        let ack = DriftEvent::Ack {
            at: t(1, 1),
            actor: actor("ana"),
        };
        insta::assert_snapshot!(story(&[drifted(t(1, 0), 'a', '1'), ack.clone(), drifted(t(1, 2), 'b', '1')]), @r"
        check_drifted → open; audit [drift_opened]; issue open; failure issue -; notify [drift_opened]
        ack → acknowledged; audit [drift_acknowledged]; issue edit; failure issue -; notify [drift_acknowledged]
        check_drifted → open; audit [drift_reopened]; issue edit; failure issue -; notify [drift_reopened]
        ");
        // Acknowledged: new values of the same attributes are the same drift.
        insta::assert_snapshot!(story(&[drifted(t(1, 0), 'a', '1'), ack, drifted(t(1, 2), 'a', '2')]), @r"
        check_drifted → open; audit [drift_opened]; issue open; failure issue -; notify [drift_opened]
        ack → acknowledged; audit [drift_acknowledged]; issue edit; failure issue -; notify [drift_acknowledged]
        check_drifted → acknowledged; audit []; issue edit; failure issue -; notify []
        ");
        // Accepted: bound to the values it was given for.
        insta::assert_snapshot!(story(&[drifted(t(1, 0), 'a', '1'), accept.clone(), drifted(t(1, 2), 'a', '2')]), @r"
        check_drifted → open; audit [drift_opened]; issue open; failure issue -; notify [drift_opened]
        accept → accepted; audit [drift_accepted]; issue edit; failure issue -; notify [drift_accepted]
        check_drifted → open; audit [drift_reopened]; issue edit; failure issue -; notify [drift_reopened]
        ");
        insta::assert_snapshot!(story(&[drifted(t(1, 0), 'a', '1'), accept, drifted(t(1, 2), 'c', '1')]), @r"
        check_drifted → open; audit [drift_opened]; issue open; failure issue -; notify [drift_opened]
        accept → accepted; audit [drift_accepted]; issue edit; failure issue -; notify [drift_accepted]
        check_drifted → open; audit [drift_reopened]; issue edit; failure issue -; notify [drift_reopened]
        ");

        let mut rec = DriftRecord::default();
        for e in [
            drifted(t(1, 0), 'a', '1'),
            DriftEvent::Ack {
                at: t(1, 1),
                actor: actor("ana"),
            },
            drifted(t(1, 2), 'b', '1'),
        ] {
            rec = apply(&rec, &e).unwrap().record;
        }
        let last = rec.drift.unwrap().history.pop().unwrap();
        assert_eq!(
            last.kind,
            TransitionKind::Reopened(ReopenReason::DifferentDrift { previous: fp('a') })
        );
        assert_eq!(last.fingerprint, Some(fp('b')));
    }

    #[test]
    fn acceptance_dates() {
        let open = apply(&DriftRecord::default(), &drifted(t(5, 0), 'a', '1'))
            .unwrap()
            .record;
        let accept = |at: DateTime<Utc>, until: (i32, u32, u32)| DriftEvent::Accept {
            at,
            actor: actor("ana"),
            until: NaiveDate::from_ymd_opt(until.0, until.1, until.2).unwrap(),
            reason: None,
        };
        // Yesterday is refused; today is allowed (covers the rest of the day).
        let err = apply(&open, &accept(t(5, 10), (2027, 1, 4))).unwrap_err();
        insta::assert_snapshot!(err, @"`--until 2027-01-04` is in the past; give today (2027-01-05) or a later date");
        let rec = apply(&open, &accept(t(5, 10), (2027, 1, 5)))
            .unwrap()
            .record;
        let step = |now| apply(&rec, &DriftEvent::TimePassed { now }).unwrap();
        let last_second = Utc.with_ymd_and_hms(2027, 1, 5, 23, 59, 59).unwrap();
        assert!(step(last_second).transitions.is_empty());
        let next_day = step(t(6, 0));
        assert_eq!(
            next_day.transitions[0].audit_action(),
            "drift_acceptance_expired"
        );
        assert_eq!(next_day.record.drift.unwrap().state, DriftState::Open);
        // A check after the expiry: the expiry comes first, then the check.
        let step = apply(&rec, &drifted(t(7, 0), 'a', '1')).unwrap();
        let kinds: Vec<&str> = step.transitions.iter().map(|t| t.audit_action()).collect();
        assert_eq!(kinds, ["drift_acceptance_expired"]);
        // Nothing live: nothing to accept.
        let clean = apply(&open, &DriftEvent::CheckClean { at: t(5, 1) })
            .unwrap()
            .record;
        let err = apply(&clean, &accept(t(5, 2), (2027, 2, 1))).unwrap_err();
        assert_eq!(err, LifecycleError::NothingLive("accept"));
    }

    #[test]
    fn ack_withdraws_an_acceptance() {
        let mut rec = apply(&DriftRecord::default(), &drifted(t(1, 0), 'a', '1'))
            .unwrap()
            .record;
        rec = apply(
            &rec,
            &DriftEvent::Accept {
                at: t(1, 1),
                actor: actor("ana"),
                until: NaiveDate::from_ymd_opt(2027, 3, 1).unwrap(),
                reason: Some("vendor fix pending".into()),
            },
        )
        .unwrap()
        .record;
        let step = apply(
            &rec,
            &DriftEvent::Ack {
                at: t(1, 2),
                actor: actor("bo"),
            },
        )
        .unwrap();
        let t0 = &step.transitions[0];
        assert_eq!(
            (t0.from, t0.to),
            (Some(DriftPhase::Accepted), Some(DriftPhase::Acknowledged))
        );
        assert_eq!(t0.actor.as_ref().unwrap().login, "bo");
    }

    #[test]
    fn failure_streaks_report_once() {
        let mut rec = DriftRecord::default();
        let mut opened = 0;
        let mut audited = 0;
        for h in 0..10 {
            let step = apply(
                &rec,
                &DriftEvent::CheckFailed {
                    at: t(1, h),
                    error: format!("error {h}"),
                },
            )
            .unwrap();
            opened += usize::from(step.failure_issue == Some(IssueAction::Open));
            audited += step.transitions.len();
            rec = step.record;
        }
        assert_eq!((opened, audited), (1, 1));
        let streak = rec.failure.clone().unwrap();
        assert_eq!(
            (streak.failures, streak.since, streak.last_error.as_str()),
            (10, t(1, 0), "error 9")
        );
        assert_eq!(
            rec.last_check.as_ref().unwrap().outcome,
            CheckOutcome::Failed
        );
        // No drift object was touched or created.
        assert!(rec.drift.is_none());
        let step = apply(&rec, &DriftEvent::CheckClean { at: t(2, 0) }).unwrap();
        assert_eq!(step.failure_issue, Some(IssueAction::Close));
        assert_eq!(
            step.transitions[0].kind,
            TransitionKind::CheckRecovered {
                failures: 10,
                since: t(1, 0)
            }
        );
        assert!(step.record.failure.is_none());
    }

    #[test]
    fn history_is_capped_but_keeps_the_opening() {
        let mut rec = DriftRecord::default();
        for i in 0..(MAX_HISTORY as u32 + 50) {
            let f = if i % 2 == 0 { 'a' } else { 'b' };
            let at = t(1, 0) + chrono::Duration::minutes(i64::from(i));
            rec = apply(&rec, &drifted(at, f, '1')).unwrap().record;
        }
        let d = rec.drift.unwrap();
        assert_eq!(d.history.len(), MAX_HISTORY);
        assert_eq!(d.history[0].audit_action(), "drift_opened");
        assert_eq!(
            d.history[MAX_HISTORY - 1].at,
            t(1, 0) + chrono::Duration::minutes(149)
        );
    }

    #[test]
    fn audit_details_are_plain_json() {
        let step = apply(
            &apply(&DriftRecord::default(), &drifted(t(1, 0), 'a', '1'))
                .unwrap()
                .record,
            &DriftEvent::Accept {
                at: t(1, 1),
                actor: actor("ana"),
                until: NaiveDate::from_ymd_opt(2027, 3, 1).unwrap(),
                reason: Some("vendor fix pending".into()),
            },
        )
        .unwrap();
        let d = step.transitions[0].audit_details();
        insta::assert_snapshot!(serde_json::to_string(&d).unwrap(), @r#"{"fingerprint":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","from":"open","kind":"accepted","reason":"vendor fix pending","to":"accepted","until":"2027-03-01"}"#);
        // Without a reason, the key is left out rather than written `null`.
        let step = apply(
            &apply(&DriftRecord::default(), &drifted(t(1, 0), 'a', '1'))
                .unwrap()
                .record,
            &DriftEvent::Accept {
                at: t(1, 1),
                actor: actor("ana"),
                until: NaiveDate::from_ymd_opt(2027, 3, 1).unwrap(),
                reason: None,
            },
        )
        .unwrap();
        let d = step.transitions[0].audit_details();
        assert!(!d.contains_key("reason"), "{d:?}");
        assert!(d.values().all(|v| !v.is_null()), "{d:?}");
    }

    #[test]
    fn which_applies_converge() {
        let check = |args: &[&str], want: bool| {
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            assert_eq!(apply_converges(&args), want, "{args:?}");
        };
        check(&[], true);
        check(&["-replace=aws_x.y", "-var", "a=b", "-parallelism=2"], true);
        check(&["-refresh=true"], true);
        check(&["-target=aws_x.y"], false);
        check(&["--target", "aws_x.y"], false);
        check(&["-TARGET=aws_x.y"], false);
        check(&["-refresh=false"], false);
        check(&["-refresh=FALSE"], false);
        check(&["-refresh-only"], false);
        check(&["-refresh_only"], false);
        check(&["-destroy"], false);
    }
}
