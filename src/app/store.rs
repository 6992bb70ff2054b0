//! The store port: everything Sluice persists — webhook deliveries, runs and jobs, saved plans,
//! locks, the outbox of GitHub side effects and the audit log — behind one trait, so SQLite now
//! and PostgreSQL later implement the same contract (and run the same contract tests).
//!
//! Each method is one transaction. Methods that change state *and* must be reported take the
//! outbox items and audit records to write in that same transaction: an outcome is never
//! recorded without its report, nor reported without its record.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::core::audit::{AuditEntry, AuditRecord};
use crate::core::event::Actor;
use crate::core::job::{JobKind, JobState};
use crate::core::lock::{Lock, LockKey};
use crate::core::types::{CommitSha, PrNumber, RepoName};

pub type StoreResult<T> = anyhow::Result<T>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    New,
    Duplicate,
}

/// A verified webhook event to store ([`Store::insert_event_once`]).
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub delivery_id: &'a str,
    pub kind: &'a str,
    pub event_json: &'a str,
    /// What the event is, besides its delivery id (`Event::identity_keys`, plus the body's
    /// SHA-256): a delivery carrying a key that is already stored is the same event again.
    pub keys: Vec<String>,
    /// The head commit a `pull_request` delivery reports, recorded with the event.
    pub head: Option<PrHeadSeen>,
}

/// One sighting of a pull request's head (see `core::freshness`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrHeadSeen {
    pub repo: RepoName,
    pub pr: PrNumber,
    pub sha: CommitSha,
    /// Unix milliseconds: GitHub's `updated_at` for deliveries, Sluice's clock otherwise.
    pub at_ms: i64,
    /// Where the sighting comes from (`pull_request`, `command`), for operators.
    pub source: String,
}

/// What [`Store::insert_event_once`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventIntake {
    /// Stored; it will be handled.
    New,
    /// This delivery id is already stored (GitHub redelivers under the same id).
    Redelivery,
    /// Another delivery already brought this event (`key` matched): nothing stored.
    SameEvent { first_delivery: String, key: String },
}

#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub delivery_id: String,
    pub kind: String,
    pub event_json: String,
    /// Attempts made so far — for a claimed event, this one included.
    pub attempts: u32,
    /// What the last attempt left: its error, or [`UNFINISHED_ATTEMPT`] when it never ended.
    pub last_error: Option<String>,
}

/// The error an attempt records when it starts; the attempt's end replaces it. Still there at
/// the next claim, it means the process stopped (crashed, was killed) while handling the event.
pub const UNFINISHED_ATTEMPT: &str =
    "the attempt did not finish: the server stopped while handling this event";

/// A delivery taken by the event processor ([`Store::claim_event`]).
#[derive(Debug, Clone)]
pub enum Claimed {
    /// Handle it: the attempt is already counted.
    Attempt(StoredEvent),
    /// Its attempts are used up (the last ones never finished): set it aside with
    /// [`Store::dead_letter_event`] instead of handling it again.
    Exhausted(StoredEvent),
}

/// How long an event waits after attempt `attempt` (1-based) before it is due again, in ms:
/// 2 s, 4 s, 8 s, … up to 5 minutes. Set when the attempt starts, so an event whose attempt
/// crashed the process waits too, while other events go first.
pub fn event_retry_delay_ms(attempt: u32) -> i64 {
    (1000i64 << attempt.clamp(1, 8)).min(300_000)
}

/// Where a webhook delivery is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventState {
    /// Waiting to be handled (or to be tried again).
    Pending,
    /// Handled.
    Done,
    /// Set aside after its attempts were used up (a dead letter): never tried again by itself.
    Dead,
}

impl EventState {
    /// The name operators use (`sluice events list --state dead`, `?state=dead`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventState::Pending => "pending",
            EventState::Done => "done",
            EventState::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<EventState> {
        match s {
            "pending" => Some(EventState::Pending),
            "done" => Some(EventState::Done),
            "dead" => Some(EventState::Dead),
            _ => None,
        }
    }
}

/// A stored delivery, as operators see it.
#[derive(Debug, Clone, Serialize)]
pub struct EventRow {
    pub delivery_id: String,
    pub kind: String,
    pub state: EventState,
    pub attempts: u32,
    /// Unix ms.
    pub received_at: i64,
    /// When the last attempt started.
    pub claimed_at: Option<i64>,
    /// When it was set aside.
    pub dead_at: Option<i64>,
    pub error: Option<String>,
    /// `core::event::Event`, as JSON.
    #[serde(skip)]
    pub event_json: String,
}

/// A GitHub side effect waiting to be delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outgoing {
    Comment {
        body: String,
    },
    Status {
        sha: CommitSha,
        context: String,
        state: crate::adapters::github::StatusState,
        description: String,
        target_url: Option<String>,
    },
    Reaction {
        comment_id: u64,
        content: String,
    },
}

impl Outgoing {
    pub fn kind(&self) -> &'static str {
        match self {
            Outgoing::Comment { .. } => "comment",
            Outgoing::Status { .. } => "status",
            Outgoing::Reaction { .. } => "reaction",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxItem {
    pub repo: RepoName,
    pub pr: Option<PrNumber>,
    pub message: Outgoing,
}

#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: i64,
    pub item: OutboxItem,
    pub attempts: u32,
}

#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: JobKind,
    pub project_name: String,
    pub project_dir: String,
    pub workspace: String,
    /// `core::projects::Project`, as JSON.
    pub project_json: String,
    /// For applies: the plan to apply.
    pub plan_id: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct NewRun {
    pub repo: RepoName,
    pub pr: PrNumber,
    pub kind: JobKind,
    /// `autoplan` or `comment`.
    pub trigger: String,
    pub head_sha: CommitSha,
    pub base_sha: CommitSha,
    pub base_ref: String,
    pub clone_url: String,
    pub installation_id: Option<u64>,
    pub actor: Actor,
    pub comment_id: Option<u64>,
    pub event_id: Option<String>,
    pub extra_args: Vec<String>,
    pub verbose: bool,
    pub jobs: Vec<NewJob>,
    /// Locks the run must hold (all, atomically) before any job runs. Empty for applies, which
    /// require the locks to be held already.
    pub locks: Vec<LockKey>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunStart {
    /// Locks taken (or none needed): the jobs are queued.
    Queued { run_id: i64 },
    /// Another PR holds some of the locks: the run waits, and starts by itself when they free.
    Waiting { run_id: i64, held: Vec<Lock> },
    /// The event that asks for this run was already turned into one (a redelivery, a crash
    /// between creating the run and finishing the event).
    AlreadyExists { run_id: i64 },
    /// An apply of a plan that is no longer current, or that another apply already took
    /// (two `apply` comments in a row): nothing was created.
    Refused { reason: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRow {
    pub id: i64,
    pub repo: RepoName,
    pub pr: PrNumber,
    pub kind: JobKind,
    pub trigger: String,
    pub head_sha: CommitSha,
    pub base_sha: CommitSha,
    pub base_ref: String,
    pub clone_url: String,
    pub installation_id: Option<u64>,
    pub actor: Actor,
    pub comment_id: Option<u64>,
    pub event_id: Option<String>,
    pub extra_args: Vec<String>,
    pub verbose: bool,
    pub state: String,
    pub waiting_on_pr: Option<u64>,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRow {
    pub id: i64,
    pub run_id: i64,
    pub position: i64,
    pub kind: JobKind,
    pub project_name: String,
    pub project_dir: String,
    pub workspace: String,
    pub project_json: String,
    pub plan_id: Option<i64>,
    pub state: JobState,
    pub attempts: u32,
    pub report_json: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

/// A claimed job with its run.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub job: JobRow,
    pub run: RunRow,
}

#[derive(Debug, Clone)]
pub struct NewPlan {
    pub head_sha: CommitSha,
    pub plan_file: String,
    pub plan_sha256: String,
    pub summary_json: String,
}

/// How a job ended, as the worker reports it.
#[derive(Debug, Clone)]
pub struct JobFinish {
    pub state: JobState,
    /// `core::plan::ProjectReport`, as JSON.
    pub report_json: String,
    /// A successful plan's saved plan.
    pub plan: Option<NewPlan>,
    pub audit: Vec<AuditRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanRow {
    pub id: i64,
    pub repo: RepoName,
    pub pr: PrNumber,
    pub project_name: String,
    pub project_dir: String,
    pub workspace: String,
    pub head_sha: CommitSha,
    pub job_id: i64,
    pub plan_file: String,
    pub plan_sha256: String,
    pub summary_json: String,
    pub audit_seq: Option<u64>,
    pub created_at: i64,
    pub applied_at: Option<i64>,
    pub discarded_at: Option<i64>,
}

/// A job whose lease expired, and what became of it.
#[derive(Debug, Clone)]
pub struct Recovered {
    pub job: JobRow,
    pub run: RunRow,
    pub now: JobState,
}

/// Filters for reading the audit log.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// RFC 3339 lower bound (inclusive) on `time`.
    pub since: Option<String>,
    /// RFC 3339 upper bound (exclusive).
    pub until: Option<String>,
    pub repo: Option<String>,
    pub head_sha: Option<String>,
    /// Entries with `seq > after_seq` (pagination cursor).
    pub after_seq: Option<u64>,
    pub limit: Option<u64>,
}

/// An owner's override of a failing policy, valid for one head commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyOverrideRow {
    pub repo: RepoName,
    pub pr: PrNumber,
    pub head_sha: CommitSha,
    pub project: String,
    pub policy: String,
    pub by_login: String,
    pub by_id: Option<u64>,
    pub created_at: i64,
}

#[async_trait]
pub trait Store: Send + Sync {
    /// Periodic housekeeping of the backend (SQLite: WAL checkpoints). Called by the sweeper.
    async fn upkeep(&self) -> StoreResult<()>;

    // ---- webhook deliveries ------------------------------------------------------------------
    /// Persists a verified delivery. A known `delivery_id` is a duplicate and changes nothing.
    async fn insert_event(
        &self,
        delivery_id: &str,
        kind: &str,
        event_json: &str,
        now: i64,
    ) -> StoreResult<Inserted>;
    /// Persists a verified delivery unless it is already known — by its delivery id, or by
    /// any of its identity keys — and records the head sighting it carries, in one
    /// transaction.
    async fn insert_event_once(&self, event: NewEvent<'_>, now: i64) -> StoreResult<EventIntake>;
    /// Records a sighting of a pull request's head (a repeat of a known one changes nothing).
    async fn record_pr_head(&self, head: PrHeadSeen) -> StoreResult<()>;
    /// Every recorded sighting of a pull request's head, oldest first.
    async fn pr_heads(
        &self,
        repo: &RepoName,
        pr: PrNumber,
    ) -> StoreResult<Vec<crate::core::freshness::HeadSeen>>;
    /// Claims the oldest pending delivery that is due — or whose `max_attempts` attempts are
    /// used up, due or not. A due one's attempt is counted, and its next due time set to
    /// [`event_retry_delay_ms`] from now, in the same transaction and before any work: an event
    /// whose handling stops the process has used an attempt, and waits while other events go
    /// first. An exhausted one is returned as [`Claimed::Exhausted`], unchanged.
    async fn claim_event(&self, now: i64, max_attempts: u32) -> StoreResult<Option<Claimed>>;
    async fn finish_event(&self, delivery_id: &str) -> StoreResult<()>;
    /// The attempt failed for a passing reason: record `error` and try again at `retry_at`
    /// (the attempt was counted when claimed).
    async fn retry_event(&self, delivery_id: &str, error: &str, retry_at: i64) -> StoreResult<()>;
    /// Sets a pending delivery aside for good (a dead letter, state [`EventState::Dead`]) with
    /// `reason`, and writes `outbox`/`audit` in the same transaction. `false` (and nothing
    /// written) when it was not pending.
    async fn dead_letter_event(
        &self,
        delivery_id: &str,
        reason: &str,
        outbox: Vec<OutboxItem>,
        audit: Vec<AuditRecord>,
        now: i64,
    ) -> StoreResult<bool>;
    /// Deliveries, newest first, optionally only those in `state`; at most `limit`.
    async fn list_events(
        &self,
        state: Option<EventState>,
        limit: u32,
    ) -> StoreResult<Vec<EventRow>>;

    // ---- runs and jobs -----------------------------------------------------------------------
    /// Creates a run and its jobs, taking all its locks atomically (or waiting behind their
    /// holder), and writes `outbox`/`audit` in the same transaction. An apply run is refused
    /// when one of its plans is applied, discarded, or already being applied.
    async fn create_run(
        &self,
        run: NewRun,
        outbox: Vec<OutboxItem>,
        audit: Vec<AuditRecord>,
        now: i64,
    ) -> StoreResult<RunStart>;
    /// Claims the next runnable job for `worker` with a lease until `lease_until`. Jobs of an
    /// apply run go one at a time, in order.
    async fn claim_job(
        &self,
        worker: &str,
        now: i64,
        lease_until: i64,
    ) -> StoreResult<Option<ClaimedJob>>;
    /// Extends the lease; `false` when the job is no longer this worker's (cancelled, recovered).
    async fn renew_lease(&self, job_id: i64, worker: &str, lease_until: i64) -> StoreResult<bool>;
    /// Records a job's end. Returns `true` when this was its run's last job (the run is then
    /// `finished` and waits to be reported).
    async fn finish_job(
        &self,
        job_id: i64,
        worker: &str,
        finish: JobFinish,
        now: i64,
    ) -> StoreResult<bool>;
    /// Runs whose jobs are all done but whose report was not written yet.
    async fn finished_runs(&self) -> StoreResult<Vec<RunRow>>;
    /// Writes a finished run's report (comments, statuses) and audit, and marks it reported.
    async fn report_run(
        &self,
        run_id: i64,
        outbox: Vec<OutboxItem>,
        audit: Vec<AuditRecord>,
        now: i64,
    ) -> StoreResult<()>;
    async fn run(&self, run_id: i64) -> StoreResult<Option<RunRow>>;
    async fn jobs_of_run(&self, run_id: i64) -> StoreResult<Vec<JobRow>>;
    async fn job(&self, job_id: i64) -> StoreResult<Option<JobRow>>;
    /// Running jobs whose lease expired: plans go back to the queue (a few times), applies end
    /// `interrupted`. The run of a job that ends here may become finished.
    async fn recover_expired(&self, now: i64) -> StoreResult<Vec<Recovered>>;
    /// Marks `running` jobs of `worker` interrupted (graceful shutdown past its deadline).
    async fn interrupt_worker_jobs(&self, worker: &str, now: i64) -> StoreResult<Vec<i64>>;
    /// Cancels the PR's waiting and queued jobs (closed PR, unlock). Returns the affected runs.
    async fn cancel_pending_jobs(
        &self,
        repo: &RepoName,
        pr: PrNumber,
        reason_json: &str,
        now: i64,
    ) -> StoreResult<Vec<i64>>;
    /// Active (not yet reported) runs of a PR.
    async fn open_runs(&self, repo: &RepoName, pr: PrNumber) -> StoreResult<Vec<RunRow>>;

    // ---- plans -------------------------------------------------------------------------------
    /// The PR's current plans (neither discarded nor applied), one per project, newest first.
    async fn current_plans(&self, repo: &RepoName, pr: PrNumber) -> StoreResult<Vec<PlanRow>>;
    async fn plan(&self, plan_id: i64) -> StoreResult<Option<PlanRow>>;
    /// Discards the PR's current plans; returns their files (for deletion).
    async fn discard_plans(
        &self,
        repo: &RepoName,
        pr: PrNumber,
        now: i64,
    ) -> StoreResult<Vec<PlanRow>>;

    // ---- policy overrides ----------------------------------------------------------------------
    /// Records overrides (with their audit entries, in one transaction).
    async fn add_policy_overrides(
        &self,
        rows: Vec<PolicyOverrideRow>,
        audit: Vec<AuditRecord>,
        now: i64,
    ) -> StoreResult<()>;
    /// Overrides in force for the PR's `head_sha`.
    async fn policy_overrides(
        &self,
        repo: &RepoName,
        pr: PrNumber,
        head_sha: &CommitSha,
    ) -> StoreResult<Vec<PolicyOverrideRow>>;

    // ---- locks -------------------------------------------------------------------------------
    async fn locks(&self, repo: Option<&RepoName>) -> StoreResult<Vec<Lock>>;
    /// Releases every lock of the PR (close, merge, unlock) and starts the runs that were
    /// waiting for them. Writes `outbox`/`audit` in the same transaction; returns the released
    /// locks and the runs that could start.
    async fn release_pr_locks(
        &self,
        repo: &RepoName,
        pr: PrNumber,
        outbox: Vec<OutboxItem>,
        audit: Vec<AuditRecord>,
        now: i64,
    ) -> StoreResult<(Vec<Lock>, Vec<i64>)>;
    /// Releases one lock (admin), with the same wake-up of waiting runs.
    async fn release_lock(
        &self,
        repo: &RepoName,
        key: &LockKey,
        outbox: Vec<OutboxItem>,
        audit: Vec<AuditRecord>,
        now: i64,
    ) -> StoreResult<(Option<Lock>, Vec<i64>)>;

    // ---- outbox ------------------------------------------------------------------------------
    async fn enqueue(
        &self,
        outbox: Vec<OutboxItem>,
        audit: Vec<AuditRecord>,
        now: i64,
    ) -> StoreResult<()>;
    /// Due items, oldest first, at most one per PR (so a PR's comments keep their order even
    /// when one is being retried).
    async fn due_outbox(&self, now: i64, limit: u32) -> StoreResult<Vec<OutboxRow>>;
    async fn outbox_sent(&self, id: i64, now: i64) -> StoreResult<()>;
    async fn outbox_retry(&self, id: i64, error: &str, retry_at: i64) -> StoreResult<()>;
    async fn outbox_failed(&self, id: i64, error: &str) -> StoreResult<()>;
    async fn pending_outbox(&self) -> StoreResult<u64>;

    // ---- audit -------------------------------------------------------------------------------
    async fn append_audit(&self, audit: Vec<AuditRecord>, now: i64)
    -> StoreResult<Vec<AuditEntry>>;
    /// Entries matching `q`, in sequence order, handed to `each` one at a time (constant memory
    /// over millions of entries). `each` returning `false` stops early. A row whose filter
    /// columns disagree with its entry is an error of type `core::audit::ColumnEdited`.
    async fn scan_audit(
        &self,
        q: &AuditQuery,
        each: &mut (dyn FnMut(AuditEntry) -> anyhow::Result<bool> + Send),
    ) -> StoreResult<()>;
}
