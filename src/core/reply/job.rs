//! What a job's part of its run's comment says when the job did not produce a plan or apply
//! output of its own — it was interrupted, cancelled, skipped, or failed in Sluice rather than
//! in terraform — and the notes added under a project (no sandbox, policies not evaluated).
//! Also why an apply job stops before terraform starts, with the audit log's error class.

use crate::core::audit::ErrorClass;
use crate::core::job::{JobKind, JobState};
use crate::core::types::CommitSha;

/// A job that stopped before its end (crash, shutdown): `why`, and what to do.
pub fn interrupted(kind: JobKind, why: &str) -> String {
    format!(
        "⚠️ Interrupted: {why}. {}",
        match kind {
            JobKind::Plan => "Comment `plan` to run it again.",
            JobKind::Apply =>
                "The apply may have changed infrastructure partly: check the state before applying again.",
            JobKind::State =>
                "The state may have changed: plan the project to see it before running the command again.",
        }
    )
}

/// A job that never ran (the PR was closed, `unlock`).
pub fn cancelled(why: &str) -> String {
    format!("Cancelled: {why}.")
}

/// A job that was not attempted (an earlier project of the apply failed).
pub fn skipped(why: &str) -> String {
    format!("Skipped: {why}.")
}

/// A job whose stored report cannot be read.
pub fn report_unreadable(error: &str) -> String {
    format!("the job's report could not be read ({error})")
}

/// A job that ended without any report.
pub fn no_report(state: JobState) -> String {
    format!("the job ended `{state}` without a report")
}

/// A job whose code panicked (`what`: the panic message).
pub fn crashed(what: &str) -> String {
    format!(
        "Sluice failed internally while running this job ({what}); nothing more was done. Try again."
    )
}

/// A job whose stored project cannot be read.
pub fn project_unreadable(error: &str) -> String {
    format!("the job's project cannot be read: {error}")
}

/// The note under every project run without a sandbox.
pub fn not_isolated_note() -> String {
    "> [!CAUTION]\n> Run **without a sandbox** (runner profile `plain`): not isolated.".to_string()
}

/// The note under a plan whose base branch's policy files are broken (`message`:
/// `PolicySet::broken_message`).
pub fn policies_broken_note(message: &str) -> String {
    format!("> [!CAUTION]\n> **Policies**: {message}")
}

/// The note under a plan whose policies could not be evaluated (`error`: why).
pub fn policies_not_evaluated_note(error: &str) -> String {
    format!(
        "> [!WARNING]\n> Policies could not be evaluated: {error}. Apply will check them again."
    )
}

/// Why an apply job stops before terraform starts: what the gate checked when `apply` was
/// commented may have changed while the job was queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyStop {
    /// The plan row is gone.
    PlanMissing,
    /// The plan was made for another commit than the run's.
    OtherCommit,
    AlreadyApplied,
    /// Discarded by `unlock` or a newer plan.
    Discarded,
    /// Reading the locks failed (`error`).
    LocksUnreadable(String),
    /// The pull request no longer holds the project's lock.
    LockLost,
    /// Asking GitHub for the pull request failed (`error`).
    PullUnreadable(String),
    PrClosed,
    /// New commits were pushed; `head` is the head now.
    NewCommits {
        head: CommitSha,
    },
}

impl ApplyStop {
    /// The reason shown in the apply comment.
    pub fn reason(&self) -> String {
        match self {
            ApplyStop::PlanMissing => "the plan to apply no longer exists; run plan again".into(),
            ApplyStop::OtherCommit => "the plan was made for another commit; run plan again".into(),
            ApplyStop::AlreadyApplied => "this plan was already applied".into(),
            ApplyStop::Discarded => "the plan was discarded (by `unlock` or a newer plan) after apply was asked for; run plan again".into(),
            ApplyStop::LocksUnreadable(e) => format!("reading locks: {e}"),
            ApplyStop::LockLost => {
                "this pull request no longer holds the project's lock; run plan again".into()
            }
            ApplyStop::PullUnreadable(e) => format!("reading the pull request: {e}"),
            ApplyStop::PrClosed => "the pull request was closed".into(),
            ApplyStop::NewCommits { head } => format!(
                "new commits were pushed (head is now {}) after apply was asked for; run plan again",
                head.short()
            ),
        }
    }

    /// The audit entry's error class.
    pub fn class(&self) -> ErrorClass {
        match self {
            ApplyStop::PlanMissing => ErrorClass::PlanMissing,
            ApplyStop::OtherCommit
            | ApplyStop::AlreadyApplied
            | ApplyStop::Discarded
            | ApplyStop::NewCommits { .. } => ErrorClass::StalePlan,
            ApplyStop::LocksUnreadable(_) => ErrorClass::Internal,
            ApplyStop::LockLost => ErrorClass::LockLost,
            ApplyStop::PullUnreadable(_) => ErrorClass::GitHub,
            ApplyStop::PrClosed => ErrorClass::PrClosed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallbacks_and_notes() {
        insta::assert_snapshot!(interrupted(JobKind::Plan, "Sluice was shut down before this job finished"), @"⚠️ Interrupted: Sluice was shut down before this job finished. Comment `plan` to run it again.");
        insta::assert_snapshot!(interrupted(JobKind::Apply, "the worker running this job stopped (crash or restart) before it finished"), @"⚠️ Interrupted: the worker running this job stopped (crash or restart) before it finished. The apply may have changed infrastructure partly: check the state before applying again.");
        insta::assert_snapshot!(cancelled("the pull request was closed"), @"Cancelled: the pull request was closed.");
        insta::assert_snapshot!(skipped("not applied: an earlier project of this apply did not succeed"), @"Skipped: not applied: an earlier project of this apply did not succeed.");
        insta::assert_snapshot!(report_unreadable("expected value at line 1"), @"the job's report could not be read (expected value at line 1)");
        insta::assert_snapshot!(no_report(JobState::Failed), @"the job ended `failed` without a report");
        insta::assert_snapshot!(crashed("index out of bounds"), @"Sluice failed internally while running this job (index out of bounds); nothing more was done. Try again.");
        insta::assert_snapshot!(project_unreadable("missing field `dir`"), @"the job's project cannot be read: missing field `dir`");
        insta::assert_snapshot!(not_isolated_note(), @r"
        > [!CAUTION]
        > Run **without a sandbox** (runner profile `plain`): not isolated.
        ");
        insta::assert_snapshot!(policies_broken_note("the policy files on the base branch have errors"), @r"
        > [!CAUTION]
        > **Policies**: the policy files on the base branch have errors
        ");
        insta::assert_snapshot!(policies_not_evaluated_note("GitHub answered 502"), @r"
        > [!WARNING]
        > Policies could not be evaluated: GitHub answered 502. Apply will check them again.
        ");
    }

    #[test]
    fn why_an_apply_stops() {
        let head = CommitSha::new(&"d".repeat(40)).unwrap();
        let all = [
            ApplyStop::PlanMissing,
            ApplyStop::OtherCommit,
            ApplyStop::AlreadyApplied,
            ApplyStop::Discarded,
            ApplyStop::LocksUnreadable("database is locked".into()),
            ApplyStop::LockLost,
            ApplyStop::PullUnreadable("GitHub answered 502: bad gateway".into()),
            ApplyStop::PrClosed,
            ApplyStop::NewCommits { head },
        ];
        let shown: Vec<String> = all
            .iter()
            .map(|s| format!("{}: {}", s.class(), s.reason()))
            .collect();
        insta::assert_snapshot!(shown.join("\n"), @r"
        plan_missing: the plan to apply no longer exists; run plan again
        stale_plan: the plan was made for another commit; run plan again
        stale_plan: this plan was already applied
        stale_plan: the plan was discarded (by `unlock` or a newer plan) after apply was asked for; run plan again
        internal: reading locks: database is locked
        lock_lost: this pull request no longer holds the project's lock; run plan again
        github: reading the pull request: GitHub answered 502: bad gateway
        pr_closed: the pull request was closed
        stale_plan: new commits were pushed (head is now ddddddd) after apply was asked for; run plan again
        ");
    }
}
