//! The store port: everything Sluice persists — webhook deliveries, runs and jobs, saved plans,
//! locks, the outbox of GitHub side effects and the audit log — behind one trait, so SQLite now
//! and PostgreSQL later implement the same contract (and run the same contract tests,
//! `adapters::store::contract`).
//!
//! Each method is one transaction. Methods that change state *and* must be reported take the
//! [`Effects`] — outbox items and audit records — to write in that same transaction: an outcome
//! is never recorded without its report, nor reported without its record.
//!
//! Everything here is typed: core values, closed enums, [`UnixMs`] timestamps. How a backend
//! lays them out (columns, JSON) is its own business; no JSON string crosses this port.

use std::path::PathBuf;

use async_trait::async_trait;
use serde::Serialize;

use super::github::StatusState;
use crate::core::audit::{AuditApproval, AuditEntry, AuditPolicyDecision, AuditRecord};
use crate::core::event::{Actor, Event};
use crate::core::freshness::HeadSeen;
use crate::core::job::{JobKind, JobState};
use crate::core::lock::{Lock, LockKey};
use crate::core::plan::{PlanSummary, ProjectReport};
use crate::core::policy::PolicyVerdict;
use crate::core::projects::Project;
use crate::core::removed::Removal;
pub use crate::core::review::budget::Write;
pub use crate::core::review::surface::{GitHubWrite, PrObjects};
use crate::core::target::Targetable;
use crate::core::types::{
    CommitSha, PrNumber, ProjectDir, ProjectName, RepoName, UnixMs, Workspace,
};

pub type StoreResult<T> = anyhow::Result<T>;

/// What one step of a flow writes besides its state change: GitHub side effects to deliver and
/// audit records to append — always in the same transaction as the change they report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effects {
    pub outbox: Vec<OutboxItem>,
    pub audit: Vec<AuditRecord>,
}

impl Effects {
    pub fn new(outbox: Vec<OutboxItem>, audit: Vec<AuditRecord>) -> Effects {
        Effects { outbox, audit }
    }

    pub fn is_empty(&self) -> bool {
        self.outbox.is_empty() && self.audit.is_empty()
    }

    /// `other` after these.
    pub fn extend(&mut self, other: Effects) {
        self.outbox.extend(other.outbox);
        self.audit.extend(other.audit);
    }
}

/// A verified webhook event to store ([`Store::insert_event_once`]).
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub delivery_id: &'a str,
    /// GitHub's event name (`X-GitHub-Event`), for operators.
    pub kind: &'a str,
    pub event: &'a Event,
    /// What the event is, besides its delivery id (`Event::identity_keys`, plus the body's
    /// SHA-256): a delivery carrying a key that is already stored is the same event again.
    pub keys: Vec<String>,
    /// The head commit a `pull_request` delivery reports, recorded with the event.
    pub head: Option<PrHeadSeen>,
}

/// Where a sighting of a pull request's head comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadSource {
    /// A `pull_request` delivery (at GitHub's `updated_at`).
    PullRequest,
    /// A command found a head Sluice had not seen (at Sluice's clock).
    Command,
}

impl HeadSource {
    pub fn as_str(self) -> &'static str {
        match self {
            HeadSource::PullRequest => "pull_request",
            HeadSource::Command => "command",
        }
    }
}

/// One sighting of a pull request's head (see `core::freshness`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrHeadSeen {
    pub repo: RepoName,
    pub pr: PrNumber,
    pub sha: CommitSha,
    /// GitHub's `updated_at` for deliveries, Sluice's clock otherwise.
    pub at: UnixMs,
    pub source: HeadSource,
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

/// A stored value this version cannot read (written by another version, or damaged): why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unreadable(pub String);

#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub delivery_id: String,
    pub kind: String,
    pub event: Result<Event, Unreadable>,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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

/// A stored delivery, as operators see it (`sluice events list`, `GET /api/events`).
#[derive(Debug, Clone, Serialize)]
pub struct EventRow {
    pub delivery_id: String,
    pub kind: String,
    pub state: EventState,
    pub attempts: u32,
    pub received_at: UnixMs,
    /// When the last attempt started.
    pub claimed_at: Option<UnixMs>,
    /// When it was set aside.
    pub dead_at: Option<UnixMs>,
    pub error: Option<String>,
    /// The event; `None` when its stored form cannot be read.
    #[serde(skip)]
    pub event: Option<Event>,
}

/// The commit statuses Sluice sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StatusContext {
    /// `sluice/plan`
    Plan,
    /// `sluice/apply`
    Apply,
    /// `sluice/policy`: the policy verdict of a plan run.
    Policy,
    /// `sluice/apply-gate`: whether the pull request may merge, for projects applied after
    /// merge (approvals, policies, requirements); meant as a required check.
    ApplyGate,
}

impl StatusContext {
    /// The context GitHub shows.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusContext::Plan => "sluice/plan",
            StatusContext::Apply => "sluice/apply",
            StatusContext::Policy => "sluice/policy",
            StatusContext::ApplyGate => "sluice/apply-gate",
        }
    }

    pub fn parse(s: &str) -> Option<StatusContext> {
        [
            StatusContext::Plan,
            StatusContext::Apply,
            StatusContext::Policy,
            StatusContext::ApplyGate,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }

    /// The status of a run of this kind.
    pub fn of(kind: JobKind) -> StatusContext {
        match kind {
            JobKind::Plan => StatusContext::Plan,
            // A state run sets no status of its own; what it changes shows in the next plan.
            JobKind::Apply | JobKind::State => StatusContext::Apply,
        }
    }
}

/// Reactions Sluice adds to comments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reaction {
    /// 👀: "heard, working on it".
    Eyes,
}

impl Reaction {
    /// GitHub's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Reaction::Eyes => "eyes",
        }
    }

    pub fn parse(s: &str) -> Option<Reaction> {
        (s == "eyes").then_some(Reaction::Eyes)
    }
}

/// A GitHub side effect waiting to be delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    Comment {
        body: String,
    },
    Status {
        sha: CommitSha,
        context: StatusContext,
        state: StatusState,
        description: String,
        target_url: Option<String>,
    },
    Reaction {
        comment_id: u64,
        content: Reaction,
    },
    /// A review, check run, or summary comment write (`core::review::surface::push_writes`),
    /// paced by the write budget.
    Write(Box<Write<GitHubWrite>>),
}

impl Outgoing {
    pub fn kind(&self) -> &'static str {
        match self {
            Outgoing::Write(_) => "write",
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

impl OutboxItem {
    /// A comment on the pull request.
    pub fn comment(repo: &RepoName, pr: PrNumber, body: impl Into<String>) -> OutboxItem {
        OutboxItem {
            repo: repo.clone(),
            pr: Some(pr),
            message: Outgoing::Comment { body: body.into() },
        }
    }

    /// A commit status on `sha`, a commit of the pull request.
    pub fn status(
        repo: &RepoName,
        pr: PrNumber,
        sha: &CommitSha,
        context: StatusContext,
        state: StatusState,
        description: impl Into<String>,
    ) -> OutboxItem {
        OutboxItem {
            repo: repo.clone(),
            pr: Some(pr),
            message: Outgoing::Status {
                sha: sha.clone(),
                context,
                state,
                description: description.into(),
                target_url: None,
            },
        }
    }

    /// A write for the PR's review, summary comment or check runs.
    pub fn write(repo: &RepoName, pr: PrNumber, write: Write<GitHubWrite>) -> OutboxItem {
        OutboxItem {
            repo: repo.clone(),
            pr: Some(pr),
            message: Outgoing::Write(Box::new(write)),
        }
    }

    /// A reaction to a comment on the pull request.
    pub fn reaction(
        repo: &RepoName,
        pr: PrNumber,
        comment_id: u64,
        content: Reaction,
    ) -> OutboxItem {
        OutboxItem {
            repo: repo.clone(),
            pr: Some(pr),
            message: Outgoing::Reaction {
                comment_id,
                content,
            },
        }
    }
}

#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: i64,
    pub item: OutboxItem,
    pub attempts: u32,
}

/// What an apply job carries: the project as planned, and what the gate relied on (recorded
/// with the apply).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyContext {
    pub project: Project,
    pub approvals: Vec<AuditApproval>,
    /// The policy decisions the gate made.
    pub policy: Vec<AuditPolicyDecision>,
    /// The saved plan is a destroy plan (`plan --destroy`).
    pub destroy: bool,
    /// The commit whose configuration the plan was made from when it is not the PR's head (the
    /// base commit, for a project the PR removes): the apply exports the same one.
    pub config_commit: Option<CommitSha>,
}

/// What a plan job plans: a project, how, and from which commit's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanJob {
    pub project: Project,
    /// `terraform plan -destroy` (`plan --destroy`).
    pub destroy: bool,
    /// The commit whose configuration is planned when it is not the run's head: the base
    /// commit, for a project the pull request removes (its files are gone at the head).
    pub config_commit: Option<CommitSha>,
    /// The pull request removes this project: the job runs nothing and fails with the advice
    /// to destroy it first (`core::reply::removed`).
    pub removed: Option<Removal>,
}

impl PlanJob {
    /// A plain plan of `project` at the run's head.
    pub fn of(project: Project) -> PlanJob {
        PlanJob {
            project,
            destroy: false,
            config_commit: None,
            removed: None,
        }
    }
}

/// What a state job carries (`import` / `state rm`): the project, the checked command, the
/// terraform arguments after `--` (checked by the comment grammar), and what the gate relied on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateJob {
    pub project: Project,
    pub command: crate::core::state_command::StateCommand,
    pub extra_args: Vec<String>,
    pub approvals: Vec<AuditApproval>,
    pub policy: Vec<AuditPolicyDecision>,
}

impl StateJob {
    /// The arguments the workflow's `import` / `state_rm` stage appends: the terraform options
    /// first (terraform reads options only before positional arguments), then `ADDRESS ID` or
    /// the addresses.
    pub fn comment_args(&self) -> Vec<String> {
        let mut args = self.extra_args.clone();
        args.extend(self.command.comment_args());
        args
    }
}

/// What a job carries to the worker that runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobPayload {
    /// Plan this project.
    Plan(PlanJob),
    /// Apply the job's saved plan of this project.
    Apply(ApplyContext),
    /// Run `import` / `state rm` on this project.
    State(StateJob),
}

impl JobPayload {
    pub fn kind(&self) -> JobKind {
        match self {
            JobPayload::Plan(_) => JobKind::Plan,
            JobPayload::Apply(_) => JobKind::Apply,
            JobPayload::State(_) => JobKind::State,
        }
    }

    pub fn project(&self) -> &Project {
        match self {
            JobPayload::Plan(p) => &p.project,
            JobPayload::Apply(a) => &a.project,
            JobPayload::State(s) => &s.project,
        }
    }
}

/// How a job ended, as its run's report shows it.
#[derive(Debug, Clone)]
#[allow(
    clippy::large_enum_variant,
    reason = "one per job, read once to render its run's report: boxing buys nothing"
)]
pub enum JobReport {
    /// The job ran: what the comment shows, and the policy verdict for `sluice/policy`.
    Full {
        report: ProjectReport,
        policy: PolicyVerdict,
        /// The policies behind `policy` (`PolicyVerdict::names_in`): the failing ones, those
        /// waiting for approvals, or the warning ones; empty when none is named.
        policy_names: Vec<String>,
        /// A plan's input to the PR review (`None` for applies and failed plans).
        review: Option<Box<crate::core::review::material::ReviewMaterial>>,
    },
    /// It stopped before its end (the worker crashed or Sluice shut down): why.
    Interrupted(String),
    /// It never ran (the PR was closed, `unlock`): why.
    Cancelled(String),
    /// It was not attempted (an earlier project of the same apply failed): why.
    Skipped(String),
}

#[derive(Debug, Clone)]
pub struct NewJob {
    pub project_name: ProjectName,
    pub project_dir: ProjectDir,
    pub workspace: Workspace,
    pub payload: JobPayload,
    /// For applies: the plan to apply.
    pub plan_id: Option<i64>,
}

impl NewJob {
    /// A job planning `project`.
    pub fn plan(project: &Project) -> NewJob {
        NewJob::plan_job(PlanJob::of(project.clone()))
    }

    /// A job planning as `job` says (a destroy plan, a removed project).
    pub fn plan_job(job: PlanJob) -> NewJob {
        NewJob {
            project_name: job.project.name.clone(),
            project_dir: job.project.dir.clone(),
            workspace: job.project.workspace.clone(),
            payload: JobPayload::Plan(job),
            plan_id: None,
        }
    }

    /// A job applying the saved plan `plan_id` of `context.project`.
    pub fn apply(plan_id: i64, context: ApplyContext) -> NewJob {
        NewJob {
            project_name: context.project.name.clone(),
            project_dir: context.project.dir.clone(),
            workspace: context.project.workspace.clone(),
            payload: JobPayload::Apply(context),
            plan_id: Some(plan_id),
        }
    }

    /// A job running `import` / `state rm` on `job.project`.
    pub fn state(job: StateJob) -> NewJob {
        NewJob {
            project_name: job.project.name.clone(),
            project_dir: job.project.dir.clone(),
            workspace: job.project.workspace.clone(),
            payload: JobPayload::State(job),
            plan_id: None,
        }
    }

    pub fn kind(&self) -> JobKind {
        self.payload.kind()
    }
}

/// What made a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A pull request was opened, pushed to, reopened or marked ready.
    Autoplan,
    /// A comment command.
    Comment,
    /// A pull request merged: the merge commit is planned and applied (`apply_mode: on_merge`).
    Merge,
    /// GitHub's merge queue asked for checks: the queue commit is planned, never applied, and
    /// the run's report is the queue commit's `sluice/plan` and `sluice/apply-gate` (no
    /// comment; the plans are not kept and never replace the pull request's own).
    MergeQueue,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Autoplan => "autoplan",
            Trigger::Comment => "comment",
            Trigger::Merge => "merge",
            Trigger::MergeQueue => "merge_queue",
        }
    }

    pub fn parse(s: &str) -> Option<Trigger> {
        match s {
            "autoplan" => Some(Trigger::Autoplan),
            "comment" => Some(Trigger::Comment),
            "merge" => Some(Trigger::Merge),
            "merge_queue" => Some(Trigger::MergeQueue),
            _ => None,
        }
    }
}

/// Where a run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// Waiting for another PR's locks.
    Waiting,
    /// Its jobs are queued or running.
    Active,
    /// Every job ended; the report is not written yet.
    Finished,
    /// Reported on the PR.
    Reported,
    Cancelled,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Waiting => "waiting",
            RunState::Active => "active",
            RunState::Finished => "finished",
            RunState::Reported => "reported",
            RunState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<RunState> {
        [
            RunState::Waiting,
            RunState::Active,
            RunState::Finished,
            RunState::Reported,
            RunState::Cancelled,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

#[derive(Debug, Clone)]
pub struct NewRun {
    pub repo: RepoName,
    pub pr: PrNumber,
    pub kind: JobKind,
    pub trigger: Trigger,
    pub head_sha: CommitSha,
    pub base_sha: CommitSha,
    pub base_ref: String,
    pub clone_url: String,
    pub installation_id: Option<u64>,
    pub actor: Actor,
    pub comment_id: Option<u64>,
    /// The delivery (and command) that asks for the run: a second run for it is not created.
    pub event_id: Option<String>,
    pub extra_args: Vec<String>,
    pub verbose: bool,
    pub jobs: Vec<NewJob>,
    /// Locks the run must hold (all, atomically) before any job runs. Empty for applies, which
    /// require the locks to be held already.
    pub locks: Vec<LockKey>,
}

/// Whether a new run starts now or waits, as [`Store::create_run`] decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening<'a> {
    /// Its locks are taken (or none are needed): the jobs are queued.
    Starts,
    /// Another PR holds some of the locks: the run waits behind `held`.
    Waits { held: &'a [Lock] },
}

/// What a run's start says on the pull request and in the audit log, given how it opens. Called
/// by [`Store::create_run`] inside its transaction, so what a run says when it starts is
/// written together with the run, in order — never "planning" after "queued behind".
pub type Announce<'a> = &'a (dyn Fn(Opening<'_>) -> Effects + Send + Sync);

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

#[derive(Debug, Clone)]
pub struct RunRow {
    pub id: i64,
    pub repo: RepoName,
    pub pr: PrNumber,
    pub kind: JobKind,
    pub trigger: Trigger,
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
    pub state: RunState,
    pub waiting_on_pr: Option<PrNumber>,
    pub created_at: UnixMs,
}

#[derive(Debug, Clone)]
pub struct JobRow {
    pub id: i64,
    pub run_id: i64,
    pub position: i64,
    pub kind: JobKind,
    pub project_name: ProjectName,
    pub project_dir: ProjectDir,
    pub workspace: Workspace,
    pub payload: Result<JobPayload, Unreadable>,
    pub plan_id: Option<i64>,
    pub state: JobState,
    pub attempts: u32,
    /// Set once the job ended; `Err` when the stored report cannot be read.
    pub report: Option<Result<JobReport, Unreadable>>,
    pub created_at: UnixMs,
    pub started_at: Option<UnixMs>,
    pub finished_at: Option<UnixMs>,
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
    /// The saved plan, in its `<job>.out/` directory (beside it: `plan.json`).
    pub plan_file: PathBuf,
    /// Hex SHA-256 of the plan file.
    pub plan_sha256: String,
    pub summary: PlanSummary,
}

/// How a job ended, as the worker reports it.
#[derive(Debug, Clone)]
pub struct JobFinish {
    pub state: JobState,
    pub report: JobReport,
    /// A successful plan's saved plan.
    pub plan: Option<NewPlan>,
    pub audit: Vec<AuditRecord>,
}

#[derive(Debug, Clone)]
pub struct PlanRow {
    pub id: i64,
    pub repo: RepoName,
    pub pr: PrNumber,
    pub project_name: ProjectName,
    pub project_dir: ProjectDir,
    pub workspace: Workspace,
    pub head_sha: CommitSha,
    pub job_id: i64,
    pub plan_file: PathBuf,
    pub plan_sha256: String,
    /// `None` when the stored summary cannot be read.
    pub summary: Option<PlanSummary>,
    /// The audit entry that recorded the plan.
    pub audit_seq: Option<u64>,
    pub created_at: UnixMs,
    pub applied_at: Option<UnixMs>,
    pub discarded_at: Option<UnixMs>,
}

impl Targetable for PlanRow {
    fn target_name(&self) -> &ProjectName {
        &self.project_name
    }
    fn target_dir(&self) -> &ProjectDir {
        &self.project_dir
    }
    fn target_workspace(&self) -> &Workspace {
        &self.workspace
    }
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
    /// Lower bound (inclusive) on `time` (`core::audit::parse_time_bound` reads it from text).
    pub since: Option<UnixMs>,
    /// Upper bound (exclusive) on `time`.
    pub until: Option<UnixMs>,
    /// `owner/name`, case-insensitively.
    pub repo: Option<String>,
    pub head_sha: Option<String>,
    /// Entries with `seq > after_seq` (pagination cursor).
    pub after_seq: Option<u64>,
    pub limit: Option<u64>,
}

/// An owner's override of a failing policy, valid for one head commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyOverrideRow {
    pub repo: RepoName,
    pub pr: PrNumber,
    pub head_sha: CommitSha,
    pub project: ProjectName,
    pub policy: String,
    pub by_login: String,
    pub by_id: Option<u64>,
    /// Set by the store when recorded.
    pub created_at: UnixMs,
}

#[async_trait]
pub trait Store: super::delivery::DeliveryStore + Send + Sync {
    /// Periodic housekeeping of the backend (SQLite: WAL checkpoints). Called by the sweeper.
    async fn upkeep(&self) -> StoreResult<()>;

    // ---- webhook deliveries ------------------------------------------------------------------
    /// Persists a verified delivery unless it is already known — by its delivery id, or by
    /// any of its identity keys — and records the head sighting it carries, in one
    /// transaction.
    async fn insert_event_once(&self, event: NewEvent<'_>, now: UnixMs)
    -> StoreResult<EventIntake>;
    /// Records a sighting of a pull request's head (a repeat of a known one changes nothing).
    async fn record_pr_head(&self, head: PrHeadSeen) -> StoreResult<()>;
    /// Every recorded sighting of a pull request's head, oldest first.
    async fn pr_heads(&self, repo: &RepoName, pr: PrNumber) -> StoreResult<Vec<HeadSeen>>;
    /// Claims the oldest pending delivery that is due — or whose `max_attempts` attempts are
    /// used up, due or not. A due one's attempt is counted, and its next due time set to
    /// [`event_retry_delay_ms`] from now, in the same transaction and before any work: an event
    /// whose handling stops the process has used an attempt, and waits while other events go
    /// first. An exhausted one is returned as [`Claimed::Exhausted`], unchanged.
    async fn claim_event(&self, now: UnixMs, max_attempts: u32) -> StoreResult<Option<Claimed>>;
    /// The event is handled for good: `done`, with `error` when handling failed for a reason
    /// retrying would not mend (kept for `sluice events list`), else without one.
    async fn finish_event(&self, delivery_id: &str, error: Option<&str>) -> StoreResult<()>;
    /// The attempt failed for a passing reason: record `error` and try again at `retry_at`
    /// (the attempt was counted when claimed).
    async fn retry_event(
        &self,
        delivery_id: &str,
        error: &str,
        retry_at: UnixMs,
    ) -> StoreResult<()>;
    /// Sets a pending delivery aside for good (a dead letter, state [`EventState::Dead`]) with
    /// `reason`, and writes `effects` in the same transaction. `false` (and nothing written)
    /// when it was not pending.
    async fn dead_letter_event(
        &self,
        delivery_id: &str,
        reason: &str,
        effects: Effects,
        now: UnixMs,
    ) -> StoreResult<bool>;
    /// Deliveries, newest first, optionally only those in `state`; at most `limit`.
    async fn list_events(
        &self,
        state: Option<EventState>,
        limit: u32,
    ) -> StoreResult<Vec<EventRow>>;

    // ---- runs and jobs -----------------------------------------------------------------------
    /// Creates a run and its jobs, taking all its locks atomically (or waiting behind their
    /// holder), and writes what `announce` says for that opening in the same transaction. An
    /// apply run is refused when one of its plans is applied, discarded, or already being
    /// applied; nothing is announced then, nor for a run that already exists.
    async fn create_run(
        &self,
        run: NewRun,
        announce: Announce<'_>,
        now: UnixMs,
    ) -> StoreResult<RunStart>;
    /// Claims the next runnable job for `worker` with a lease until `lease_until`. Jobs of an
    /// apply run go one at a time, in order.
    async fn claim_job(
        &self,
        worker: &str,
        now: UnixMs,
        lease_until: UnixMs,
    ) -> StoreResult<Option<ClaimedJob>>;
    /// Extends the lease; `false` when the job is no longer this worker's (cancelled, recovered).
    async fn renew_lease(
        &self,
        job_id: i64,
        worker: &str,
        lease_until: UnixMs,
    ) -> StoreResult<bool>;
    /// Records a job's end. Returns `true` when this was its run's last job (the run is then
    /// `finished` and waits to be reported).
    async fn finish_job(
        &self,
        job_id: i64,
        worker: &str,
        finish: JobFinish,
        now: UnixMs,
    ) -> StoreResult<bool>;
    /// Runs whose jobs are all done but whose report was not written yet.
    async fn finished_runs(&self) -> StoreResult<Vec<RunRow>>;
    /// Writes a finished run's report (comments, statuses) and audit, and marks it reported.
    async fn report_run(&self, run_id: i64, effects: Effects, now: UnixMs) -> StoreResult<()>;
    async fn run(&self, run_id: i64) -> StoreResult<Option<RunRow>>;
    async fn jobs_of_run(&self, run_id: i64) -> StoreResult<Vec<JobRow>>;
    async fn job(&self, job_id: i64) -> StoreResult<Option<JobRow>>;
    /// Running jobs whose lease expired: plans go back to the queue (a few times), applies end
    /// `interrupted`. The run of a job that ends here may become finished.
    async fn recover_expired(&self, now: UnixMs) -> StoreResult<Vec<Recovered>>;
    /// Marks `running` jobs of `worker` interrupted (graceful shutdown past its deadline).
    async fn interrupt_worker_jobs(&self, worker: &str, now: UnixMs) -> StoreResult<Vec<i64>>;
    /// Cancels the PR's waiting and queued jobs (closed PR, unlock), saying `reason` in their
    /// reports. Returns the affected runs.
    async fn cancel_pending_jobs(
        &self,
        repo: &RepoName,
        pr: PrNumber,
        reason: &str,
        now: UnixMs,
    ) -> StoreResult<Vec<i64>>;
    /// Active (not yet reported) runs of a PR.
    async fn open_runs(&self, repo: &RepoName, pr: PrNumber) -> StoreResult<Vec<RunRow>>;
    /// Jobs counted by kind and state (`JobKind`/`JobState` as stored: `plan`, `queued`…),
    /// for `/metrics`.
    async fn job_counts(&self) -> StoreResult<Vec<(String, String, u64)>>;
    /// Audit entries with `seq > after_seq` counted by action (`AuditAction::as_str`), and the
    /// highest `seq` (`after_seq` when there are none), for `/metrics`.
    async fn audit_counts(&self, after_seq: u64) -> StoreResult<(Vec<(String, u64)>, u64)>;
    /// Runs newest first (by id), of `repo` (case-insensitively) and `pr` when given, with
    /// `id < before` when given; at most `limit`. The web UI's runs list.
    async fn recent_runs(
        &self,
        repo: Option<&RepoName>,
        pr: Option<PrNumber>,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<RunRow>>;

    // ---- plans -------------------------------------------------------------------------------
    /// The PR's current plans (neither discarded nor applied), one per project, oldest first.
    async fn current_plans(&self, repo: &RepoName, pr: PrNumber) -> StoreResult<Vec<PlanRow>>;
    /// The PR's applied plans, oldest first (whatever head they were made on).
    async fn applied_plans(&self, repo: &RepoName, pr: PrNumber) -> StoreResult<Vec<PlanRow>>;
    async fn plan(&self, plan_id: i64) -> StoreResult<Option<PlanRow>>;
    /// Discards the PR's current plans; returns them (their files are the caller's to delete).
    async fn discard_plans(
        &self,
        repo: &RepoName,
        pr: PrNumber,
        now: UnixMs,
    ) -> StoreResult<Vec<PlanRow>>;

    // ---- policy overrides --------------------------------------------------------------------
    /// Records overrides, with `effects` (their audit entries, the reply), in one transaction.
    async fn add_policy_overrides(
        &self,
        rows: Vec<PolicyOverrideRow>,
        effects: Effects,
        now: UnixMs,
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
    /// waiting for them. Writes `effects` in the same transaction; returns the released locks
    /// and the runs that could start.
    async fn release_pr_locks(
        &self,
        repo: &RepoName,
        pr: PrNumber,
        effects: Effects,
        now: UnixMs,
    ) -> StoreResult<(Vec<Lock>, Vec<i64>)>;
    /// Releases one lock (admin), with the same wake-up of waiting runs.
    async fn release_lock(
        &self,
        repo: &RepoName,
        key: &LockKey,
        effects: Effects,
        now: UnixMs,
    ) -> StoreResult<(Option<Lock>, Vec<i64>)>;

    // ---- outbox ------------------------------------------------------------------------------
    /// Writes `effects` on their own (replies that change no other state).
    async fn enqueue(&self, effects: Effects, now: UnixMs) -> StoreResult<()>;
    /// Due items, oldest first, at most one per PR (so a PR's comments keep their order even
    /// when one is being retried).
    async fn due_outbox(&self, now: UnixMs, limit: u32) -> StoreResult<Vec<OutboxRow>>;
    async fn outbox_sent(&self, id: i64, now: UnixMs) -> StoreResult<()>;
    async fn outbox_retry(&self, id: i64, error: &str, retry_at: UnixMs) -> StoreResult<()>;
    async fn outbox_failed(&self, id: i64, error: &str) -> StoreResult<()>;
    async fn pending_outbox(&self) -> StoreResult<u64>;

    // ---- GitHub objects kept across pushes ------------------------------------------------------
    /// What Sluice posted on the PR that later pushes edit (default: nothing yet).
    async fn pr_objects(&self, repo: &RepoName, pr: PrNumber) -> StoreResult<PrObjects>;
    /// Replaces the history fold's runs of [`Store::pr_objects`] (and nothing else).
    async fn update_pr_history(
        &self,
        repo: &RepoName,
        pr: PrNumber,
        history: &[crate::core::review::sticky::PastRun],
        now: UnixMs,
    ) -> StoreResult<()>;
    /// Replaces what [`Store::pr_objects`] returns, except its history (kept as stored:
    /// [`Store::update_pr_history`] writes it, at the same time as the deliverer writes ids).
    async fn save_pr_objects(
        &self,
        repo: &RepoName,
        pr: PrNumber,
        objects: &PrObjects,
        now: UnixMs,
    ) -> StoreResult<()>;
    /// The id of the check run created under `key` (`core::review::surface::check_key`).
    async fn check_run_id(&self, repo: &RepoName, key: &str) -> StoreResult<Option<u64>>;
    async fn save_check_run_id(
        &self,
        repo: &RepoName,
        key: &str,
        check_run_id: u64,
        now: UnixMs,
    ) -> StoreResult<()>;

    // ---- audit -------------------------------------------------------------------------------
    async fn append_audit(
        &self,
        audit: Vec<AuditRecord>,
        now: UnixMs,
    ) -> StoreResult<Vec<AuditEntry>>;
    /// Entries matching `q`, in sequence order, handed to `each` one at a time (constant memory
    /// over millions of entries). `each` returning `false` stops early. A row whose filter
    /// columns disagree with its entry is an error of type `core::audit::ColumnEdited`.
    async fn scan_audit(
        &self,
        q: &AuditQuery,
        each: &mut (dyn FnMut(AuditEntry) -> anyhow::Result<bool> + Send),
    ) -> StoreResult<()>;
    /// The distinct repositories (`owner/name` as the entries wrote them) that entries matching
    /// `q` name, in no set order (`q.limit` and `q.after_seq` are honoured); entries without
    /// one are left out. Read from the indexed column alone, so asking which of them a viewer
    /// may read costs no pass over the entries themselves.
    async fn audit_repos(&self, q: &AuditQuery) -> StoreResult<Vec<String>>;
}
