//! The drift store port: what Sluice keeps per project of a repository's default branch for
//! reconciliation (PRODUCT.md §14) — the drift record ([`DriftRecord`]: the drift object and its
//! lifecycle, the failure streak, the latest check), the latest classification (reports are
//! rendered from it), the schedule and its next due time (so schedules survive restarts), the
//! project's drift issues, the last commit Sluice applied, one row per check (metrics), and the
//! drift outbox (issues and notifications, delivered with retries like GitHub calls).
//!
//! A project is keyed by repository, dir and workspace — the directory terraform really runs
//! in, as locks and credentials are — never by its name alone. Each method is one transaction;
//! [`DriftStore::finish_check`] and [`DriftStore::record_event`] write the record, its audit
//! entries and its outbox items together.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::store::StoreResult;
use crate::core::audit::AuditRecord;
use crate::core::drift::{Classification, DriftRecord, IssueKind, LastApplied, VersionSnapshot};
use crate::core::event::RepoRef;
use crate::core::types::{CommitSha, ProjectDir, ProjectName, RepoName, UnixMs, Workspace};

/// Which project: repository, dir, workspace.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DriftKey {
    pub repo: RepoName,
    pub dir: ProjectDir,
    pub workspace: Workspace,
}

/// A project as the default branch's configuration describes it, for
/// [`DriftStore::sync_projects`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriftProject {
    pub key: DriftKey,
    pub name: ProjectName,
    /// The cron expression that applies (project's or server default); `None` when scheduled
    /// checks are off for it.
    pub schedule: Option<String>,
    /// When its next scheduled check is due, computed from the schedule and its jitter; `None`
    /// when off.
    pub next_due_at: Option<UnixMs>,
}

/// Everything kept about one project.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftRow {
    pub key: DriftKey,
    pub name: ProjectName,
    pub record: DriftRecord,
    /// The latest successful check's findings.
    pub classification: Option<Classification>,
    /// The default-branch commit of the latest check.
    pub checked_sha: Option<CommitSha>,
    pub schedule: Option<String>,
    pub next_due_at: Option<UnixMs>,
    /// A check asked for outside the schedule (after an apply, a push, `sluice drift check`).
    pub requested_at: Option<UnixMs>,
    /// While a check runs: until when its claim holds (a crashed server's claim runs out and
    /// the check runs again).
    pub claimed_until: Option<UnixMs>,
    /// The project's drift issue (number), once opened.
    pub drift_issue: Option<u64>,
    /// The project's check-failed issue (number), once opened.
    pub failure_issue: Option<u64>,
    /// `false` once the default branch no longer has the project (kept for history).
    pub active: bool,
}

/// What a finished check writes ([`DriftStore::finish_check`]).
#[derive(Debug, Clone)]
pub struct CheckFinish {
    /// The project's record after the check (`core::drift::apply`).
    pub record: DriftRecord,
    /// `Some` for a successful check (replaces the stored one); `None` keeps the last one.
    pub classification: Option<Classification>,
    pub checked_sha: CommitSha,
    pub next_due_at: Option<UnixMs>,
    pub result: CheckResult,
    pub started_at: UnixMs,
    /// Time spent in engine commands.
    pub engine_ms: u64,
    pub audit: Vec<AuditRecord>,
    pub outbox: Vec<DriftOutgoing>,
}

/// How one check ended (one row per check, for metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckResult {
    Clean,
    Drifted,
    Failed,
}

impl CheckResult {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckResult::Clean => "clean",
            CheckResult::Drifted => "drifted",
            CheckResult::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<CheckResult> {
        [
            CheckResult::Clean,
            CheckResult::Drifted,
            CheckResult::Failed,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// One stored check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRow {
    pub key: DriftKey,
    pub sha: CommitSha,
    pub result: CheckResult,
    pub started_at: UnixMs,
    pub finished_at: UnixMs,
    pub engine_ms: u64,
}

/// A drift side effect waiting to be delivered. Issue actions name the project's issue by
/// kind: its number is read from the project's row when delivered (an issue opened by an
/// earlier item of the same project has its number by then: items of one project go in order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DriftOutgoing {
    /// Open the project's issue of `issue` kind (or, when one is recorded, edit it instead).
    OpenIssue {
        issue: IssueKind,
        title: String,
        body: String,
        labels: Vec<String>,
    },
    /// Edit its title, body and labels in place.
    EditIssue {
        issue: IssueKind,
        title: String,
        body: String,
        labels: Vec<String>,
    },
    /// Edit it one last time, then close it (and forget its number: a later drift opens a new
    /// issue).
    CloseIssue {
        issue: IssueKind,
        title: String,
        body: String,
        labels: Vec<String>,
    },
    /// A comment on the project's issue (replies to drift commands).
    Comment { issue_number: u64, body: String },
    /// A Slack-compatible incoming-webhook message (JSON body) to `drift.slack_webhook_url`.
    Slack { body: String },
    /// A JSON event to `drift.webhook_url`, signed when delivered.
    Webhook { body: String },
}

impl DriftOutgoing {
    /// What it is, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            DriftOutgoing::OpenIssue { .. } => "open_issue",
            DriftOutgoing::EditIssue { .. } => "edit_issue",
            DriftOutgoing::CloseIssue { .. } => "close_issue",
            DriftOutgoing::Comment { .. } => "comment",
            DriftOutgoing::Slack { .. } => "slack",
            DriftOutgoing::Webhook { .. } => "webhook",
        }
    }
}

/// A queued drift side effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriftOutboxRow {
    pub id: i64,
    pub key: DriftKey,
    pub item: DriftOutgoing,
    pub attempts: u32,
}

#[async_trait]
pub trait DriftStore: super::delivery::DeliveryStore + Send + Sync {
    /// Remembers where a repository is fetched from (its latest event's word).
    async fn remember_repo(&self, repo: &RepoRef, now: UnixMs) -> StoreResult<()>;
    /// Where a repository is fetched from, if an event of it was ever seen.
    async fn repo(&self, repo: &RepoName) -> StoreResult<Option<RepoRef>>;
    /// Drops every claim: at start-up, the claims of a process that died (one server per
    /// store) — their checks run again.
    async fn release_claims(&self) -> StoreResult<u64>;
    /// Makes the stored projects of `repo` those of its default branch now: new ones are added
    /// (record empty, `next_due_at` as given), known ones get their name and schedule (their
    /// due time only when their schedule changed), missing ones are marked inactive.
    async fn sync_projects(
        &self,
        repo: &RepoName,
        projects: &[DriftProject],
        now: UnixMs,
    ) -> StoreResult<()>;
    /// Asks for a check of these projects (of all active projects of `repo` when `keys` is
    /// empty) as soon as a slot is free.
    async fn request_check(
        &self,
        repo: &RepoName,
        keys: &[DriftKey],
        now: UnixMs,
    ) -> StoreResult<()>;
    /// Claims up to `limit` active projects whose check is due (requested, or scheduled at or
    /// before `now`) and not claimed by a live claim, until `claim_until`, oldest due first.
    async fn claim_due(
        &self,
        now: UnixMs,
        claim_until: UnixMs,
        limit: u32,
    ) -> StoreResult<Vec<DriftRow>>;
    /// Extends a claim; `false` when the project is no longer claimed.
    async fn renew_claim(&self, key: &DriftKey, claim_until: UnixMs) -> StoreResult<bool>;
    /// Writes a check's outcome, its audit entries and outbox items in one transaction, clears
    /// the claim and the request (a request made while the check ran stays).
    async fn finish_check(
        &self,
        key: &DriftKey,
        finish: CheckFinish,
        now: UnixMs,
    ) -> StoreResult<()>;
    /// Writes a lifecycle step that is not a check (ack, accept, apply, time passing): the new
    /// record, audit entries and outbox items, in one transaction.
    async fn record_event(
        &self,
        key: &DriftKey,
        record: DriftRecord,
        audit: Vec<AuditRecord>,
        outbox: Vec<DriftOutgoing>,
        now: UnixMs,
    ) -> StoreResult<()>;
    /// One project.
    async fn project(&self, key: &DriftKey) -> StoreResult<Option<DriftRow>>;
    /// The project whose drift or check-failed issue is `number` in `repo`.
    async fn project_by_issue(&self, repo: &RepoName, number: u64)
    -> StoreResult<Option<DriftRow>>;
    /// Every active project (of one repository), by repository, dir and workspace.
    async fn projects(&self, repo: Option<&RepoName>) -> StoreResult<Vec<DriftRow>>;
    /// Active projects with a live acceptance (for expiry without a check).
    async fn accepted_projects(&self) -> StoreResult<Vec<DriftRow>>;

    /// Records a successful Sluice apply of a project (replacing the previous one).
    async fn record_applied(
        &self,
        key: &DriftKey,
        applied: &LastApplied,
        versions: &VersionSnapshot,
    ) -> StoreResult<()>;
    /// Whether an apply job of the project (any pull request, any trigger) is running now:
    /// its sync status is then `applying`.
    async fn apply_running(&self, key: &DriftKey) -> StoreResult<bool>;
    /// The last commit Sluice applied for the project, with the versions then.
    async fn last_applied(
        &self,
        key: &DriftKey,
    ) -> StoreResult<Option<(LastApplied, VersionSnapshot)>>;

    /// Checks finished at or after `since`, oldest first (metrics).
    async fn checks_since(&self, since: UnixMs) -> StoreResult<Vec<CheckRow>>;

    /// Due drift outbox items, oldest first, at most one per project.
    async fn due_drift_outbox(&self, now: UnixMs, limit: u32) -> StoreResult<Vec<DriftOutboxRow>>;
    /// Delivered; `issue` records (`Some`) or forgets (`None`) the project's issue number of
    /// that kind when the item opened or closed one.
    async fn drift_outbox_sent(
        &self,
        id: i64,
        issue: Option<(IssueKind, Option<u64>)>,
        now: UnixMs,
    ) -> StoreResult<()>;
    async fn drift_outbox_retry(&self, id: i64, error: &str, retry_at: UnixMs) -> StoreResult<()>;
    async fn drift_outbox_failed(&self, id: i64, error: &str) -> StoreResult<()>;
}
