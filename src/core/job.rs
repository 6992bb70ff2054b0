//! Jobs and runs as state machines. A *run* is one command on one PR (an autoplan, a comment's
//! `plan` or `apply`); it has one *job* per project. Jobs are persisted and claimed by workers
//! with a lease; this module decides which transitions are legal and what a lost lease means.
//! Pure: the store applies these decisions, it does not make them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    Plan,
    Apply,
    /// `import ADDRESS ID` or `state rm ADDRESS...` (`core::state_command`): changes the
    /// project's state, never re-run automatically, like an apply.
    State,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Plan => "plan",
            JobKind::Apply => "apply",
            JobKind::State => "state",
        }
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "plan" => Ok(JobKind::Plan),
            "apply" => Ok(JobKind::Apply),
            "state" => Ok(JobKind::State),
            other => Err(format!("unknown job kind {other:?}")),
        }
    }
}

/// queued → running → succeeded | failed | cancelled | interrupted; `waiting` before `queued`
/// while the run waits for another PR's locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Its run waits for locks held by another PR.
    Waiting,
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    /// Its worker vanished (crash, shutdown) and it will not be retried.
    Interrupted,
}

impl JobState {
    pub const ALL: [JobState; 7] = [
        JobState::Waiting,
        JobState::Queued,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
        JobState::Interrupted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Waiting => "waiting",
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
            JobState::Interrupted => "interrupted",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled | JobState::Interrupted
        )
    }

    /// Whether `self → to` is a legal move. Terminal states never change.
    pub fn can_become(self, to: JobState) -> bool {
        use JobState::*;
        match (self, to) {
            (Waiting, Queued) | (Waiting, Cancelled) => true,
            (Queued, Running) | (Queued, Cancelled) => true,
            (Running, Succeeded | Failed | Cancelled | Interrupted) => true,
            // A lost lease on a plan puts it back in the queue (see `after_lost_lease`).
            (Running, Queued) => true,
            _ => false,
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        JobState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown job state {s:?}"))
    }
}

/// How many times a plan job is started before a lost lease makes it `interrupted`.
pub const MAX_PLAN_ATTEMPTS: u32 = 3;

/// What becomes of a running job whose worker stopped renewing its lease (a crash, a kill -9).
///
/// A plan is read-only with respect to infrastructure, so it is simply run again (up to
/// [`MAX_PLAN_ATTEMPTS`] starts). An apply is **never** re-run automatically: it may have changed
/// real infrastructure halfway, and the state lock may still be held. It ends `interrupted` and
/// the PR is told to look before re-applying.
pub fn after_lost_lease(kind: JobKind, attempts: u32) -> JobState {
    match kind {
        JobKind::Plan if attempts < MAX_PLAN_ATTEMPTS => JobState::Queued,
        JobKind::Plan | JobKind::Apply | JobKind::State => JobState::Interrupted,
    }
}

/// A run's overall result once all its jobs are terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunTally {
    pub total: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub cancelled: usize,
    pub interrupted: usize,
}

impl RunTally {
    pub fn of(states: &[JobState]) -> RunTally {
        let count = |s: JobState| states.iter().filter(|&&x| x == s).count();
        RunTally {
            total: states.len(),
            succeeded: count(JobState::Succeeded),
            failed: count(JobState::Failed),
            cancelled: count(JobState::Cancelled),
            interrupted: count(JobState::Interrupted),
        }
    }

    pub fn all_terminal(states: &[JobState]) -> bool {
        states.iter().all(|s| s.is_terminal())
    }

    pub fn ok(&self) -> bool {
        self.succeeded == self.total
    }

    /// The commit status description, e.g. `2/3 projects planned`.
    pub fn describe(&self, kind: JobKind) -> String {
        let verb = match kind {
            JobKind::Plan => "planned",
            JobKind::Apply => "applied",
            JobKind::State => "done",
        };
        let noun = if self.total == 1 {
            "project"
        } else {
            "projects"
        };
        let mut s = format!("{}/{} {noun} {verb}", self.succeeded, self.total);
        if self.failed > 0 {
            s.push_str(&format!(", {} failed", self.failed));
        }
        if self.interrupted > 0 {
            s.push_str(&format!(", {} interrupted", self.interrupted));
        }
        if self.cancelled > 0 {
            s.push_str(&format!(", {} cancelled", self.cancelled));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_states_never_change() {
        for from in JobState::ALL.into_iter().filter(|s| s.is_terminal()) {
            for to in JobState::ALL {
                assert!(!from.can_become(to), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn legal_moves() {
        use JobState::*;
        assert!(Waiting.can_become(Queued));
        assert!(Queued.can_become(Running));
        assert!(Running.can_become(Succeeded));
        assert!(Running.can_become(Interrupted));
        assert!(
            !Queued.can_become(Succeeded),
            "a job must run before it succeeds"
        );
        assert!(!Waiting.can_become(Running), "locks first");
    }

    #[test]
    fn lost_leases() {
        assert_eq!(after_lost_lease(JobKind::Plan, 1), JobState::Queued);
        assert_eq!(
            after_lost_lease(JobKind::Plan, MAX_PLAN_ATTEMPTS),
            JobState::Interrupted
        );
        assert_eq!(
            after_lost_lease(JobKind::Apply, 1),
            JobState::Interrupted,
            "never re-run an apply"
        );
    }

    #[test]
    fn state_names_round_trip() {
        for s in JobState::ALL {
            assert_eq!(s.as_str().parse::<JobState>().unwrap(), s);
        }
    }

    #[test]
    fn tally_descriptions() {
        use JobState::*;
        let t = RunTally::of(&[Succeeded, Succeeded, Failed]);
        assert_eq!(t.describe(JobKind::Plan), "2/3 projects planned, 1 failed");
        assert!(!t.ok());
        assert_eq!(
            RunTally::of(&[]).describe(JobKind::Plan),
            "0/0 projects planned"
        );
        assert_eq!(
            RunTally::of(&[Succeeded]).describe(JobKind::Apply),
            "1/1 project applied"
        );
    }
}
