//! Drift: the pure core of reconciliation (PRODUCT.md §14). Everything here decides,
//! classifies, schedules or renders; nothing does I/O or reads the clock (time comes in as an
//! argument). The app layer runs terraform, keeps records, talks to GitHub and delivers
//! notifications, and calls these functions in this order:
//!
//! **Configuration** (`sluice.yaml` `drift: { schedule, enabled }`, and the server default):
//! [`schedule::validate_schedule`] turns the string into a [`Schedule`] or a
//! [`schedule::ScheduleError`] whose `diagnostic(file, line, column)` is the config error;
//! [`DriftSettings::effective`] picks the project's schedule (or none when disabled).
//!
//! **Scheduling** (the next due time lives in the store, so it survives restarts): per project,
//! `offset = Jitter::default().offset(repo, project, schedule)` (fixed), then
//! [`next_due`]`(schedule, offset, last_check_at.unwrap_or(now))`. Also check right after every
//! Sluice apply and every push to the default branch. Send [`DriftEvent::TimePassed`] to
//! records with an accepted drift now and then, so acceptances expire without a check.
//!
//! **A check** (refresh-only plan and normal plan of the default branch head, `show -json` of
//! each, in the sandbox like PR plans): [`parse_plan_json`](crate::core::plan::parse_plan_json)
//! both, then [`classify()`]`(CheckPlans { refresh_only, plan }, Some(&VersionFacts { .. }),
//! secrets)`. `Ok(c)` → [`DriftEvent::checked`]`(now, &c)` (keep `c`: reports are rendered
//! from it until the next check); any failure (terraform, parse, [`ClassifyError`]) →
//! [`DriftEvent::CheckFailed`] with the redacted error.
//!
//! **Every event** (check result, `ack`/`accept` from a comment, a successful apply with
//! `converges: apply_converges(&extra_args)`, time passing) goes through
//! [`lifecycle::apply`]`(&record, &event)`. An `Err(LifecycleError)` is the reply to the
//! commenter (and nothing changes). An `Ok(step)` is written in one transaction:
//! * `step.record`: the project's new [`DriftRecord`];
//! * one audit entry per `step.transitions` (`t.audit_action()`, `t.audit_details()`, the
//!   actor);
//! * `step.drift_issue` → open/edit/close the drift issue with [`report::issue_title`],
//!   [`report::issue_body`], [`report::issue_labels`]; `step.failure_issue` → the
//!   check-failed issue with [`report::check_failed_title`] / [`report::check_failed_body`];
//! * one outbox item per notification target for each of `step.notifications()`:
//!   [`notify::slack_message`], or [`notify::json_event`] + [`notify::json_event_body`] signed
//!   with [`notify::sign`] in the [`notify::SIGNATURE_HEADER`] header.
//!
//! **Comments on a drift issue**: the words after `sluice drift` go to
//! [`grammar::parse_drift_args`]`(bot_name, words, today)`: a [`DriftCommand`] or a reply.
//!
//! **Status and metrics**: [`status::project_sync`] for `sluice status` and `GET
//! /api/projects` (with [`LastApplied`], which the store updates on every successful apply);
//! [`metrics::drift_metrics`] and [`metrics::count_checks`] for the metrics endpoint.

pub mod check_text;
pub mod classify;
pub mod fingerprint;
pub mod grammar;
pub mod lifecycle;
pub mod metrics;
pub mod notify;
pub mod report;
pub mod schedule;
pub mod status;
pub(crate) mod text;

pub use classify::{
    AttrPath, AttributeChange, CheckPlans, ClassCounts, Classification, ClassifyError, DriftClass,
    Finding, PathStep, ShownValue, Upgrade, VersionFacts, VersionSnapshot, classify,
    locked_providers,
};
pub use fingerprint::{Fingerprint, ValuesDigest};
pub use grammar::{DriftCommand, DriftParsed, drift_usage, parse_drift, parse_drift_args};
pub use lifecycle::{
    Acceptance, Acknowledgement, CheckOutcome, Drift, DriftEvent, DriftPhase, DriftRecord,
    DriftState, FailureStreak, IssueAction, LastCheck, LifecycleError, ReopenReason, Resolution,
    Step, Transition, TransitionKind, apply, apply_converges,
};
pub use metrics::{CheckCounts, DriftMetrics, count_checks, drift_metrics};
pub use notify::{DriftNotification, NotifyContext};
pub use report::{IssueContext, IssueKind};
pub use schedule::{
    DEFAULT_SCHEDULE, DriftSettings, Jitter, Schedule, ScheduleError, next_due, stale_at,
    validate_schedule,
};
pub use status::{LastApplied, ProjectSync, ScheduleView, SyncStatus, project_sync, sync_status};
