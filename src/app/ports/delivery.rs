//! The delivery store port (PRODUCT.md §15, `apply_mode: on_merge`): one record per merged pull
//! request whose projects apply after the merge — what was reviewed (each project's reviewed
//! plan as changes, the approvals and policy decisions of the gate at merge time), the runs that
//! plan and apply the merge commit — and where each project stands, which the sync status
//! reads (`applying`, and `out_of_sync` after a failed delivery).
//!
//! Each method is one transaction. A delivery is recorded once per merge event (its event id),
//! so a redelivered or retried merge finds the record it already made.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::store::StoreResult;
use crate::core::audit::{AuditApproval, AuditPolicyDecision};
use crate::core::delivery::{Change, MergePlanCheck};
use crate::core::types::{
    CommitSha, PrNumber, ProjectDir, ProjectName, RepoName, UnixMs, Workspace,
};

/// What was reviewed of one project on the pull request, recorded when it merged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reviewed {
    pub project: ProjectName,
    pub dir: ProjectDir,
    pub workspace: Workspace,
    /// The reviewed plan's changes; `None` when the project had no plan for the reviewed head
    /// (merged while its plan ran, or never planned).
    pub changes: Option<Vec<Change>>,
    /// The reviewed plan's SHA-256 (hex), for the audit log.
    pub plan_sha256: Option<String>,
    /// Why the gate refused the project at merge time; empty when it passed.
    pub refusals: Vec<String>,
    pub approvals: Vec<AuditApproval>,
    pub policy: Vec<AuditPolicyDecision>,
}

/// A delivery to record ([`DeliveryStore::insert_delivery`]).
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub repo: RepoName,
    pub pr: PrNumber,
    pub merge_sha: CommitSha,
    pub reviewed_head: CommitSha,
    /// The merge event's delivery: a second record for it is not made.
    pub event_id: String,
    pub check: MergePlanCheck,
    pub reviewed: Vec<Reviewed>,
}

/// A recorded delivery.
#[derive(Debug, Clone)]
pub struct DeliveryRow {
    pub id: i64,
    pub repo: RepoName,
    pub pr: PrNumber,
    pub merge_sha: CommitSha,
    pub reviewed_head: CommitSha,
    pub check: MergePlanCheck,
    pub reviewed: Vec<Reviewed>,
    pub plan_run_id: Option<i64>,
    pub apply_run_id: Option<i64>,
    pub created_at: UnixMs,
}

/// Where a project of a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// The merge commit is being planned.
    Planning,
    /// Its apply is queued or running.
    Applying,
    Applied,
    /// The merge commit's plan has no changes: nothing to apply.
    Nothing,
    /// The apply failed.
    Failed,
    /// Not applied: the gate, the comparison with the reviewed plan, or the policies refused.
    Refused,
    /// Not attempted: a project it depends on did not apply.
    Blocked,
    /// The apply was under way when Sluice stopped; it is never run again by itself.
    Interrupted,
}

impl DeliveryState {
    pub const ALL: [DeliveryState; 8] = [
        DeliveryState::Planning,
        DeliveryState::Applying,
        DeliveryState::Applied,
        DeliveryState::Nothing,
        DeliveryState::Failed,
        DeliveryState::Refused,
        DeliveryState::Blocked,
        DeliveryState::Interrupted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Planning => "planning",
            DeliveryState::Applying => "applying",
            DeliveryState::Applied => "applied",
            DeliveryState::Nothing => "nothing",
            DeliveryState::Failed => "failed",
            DeliveryState::Refused => "refused",
            DeliveryState::Blocked => "blocked",
            DeliveryState::Interrupted => "interrupted",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryState> {
        Self::ALL.into_iter().find(|d| d.as_str() == s)
    }

    /// Still under way (the sync status shows `applying`).
    pub fn in_progress(self) -> bool {
        matches!(self, DeliveryState::Planning | DeliveryState::Applying)
    }

    /// Merged but not applied (the sync status shows `out_of_sync`).
    pub fn not_applied(self) -> bool {
        matches!(
            self,
            DeliveryState::Failed
                | DeliveryState::Refused
                | DeliveryState::Blocked
                | DeliveryState::Interrupted
        )
    }
}

/// A project's newest delivery state, for the sync status.
#[derive(Debug, Clone)]
pub struct ProjectDelivery {
    pub pr: PrNumber,
    pub merge_sha: CommitSha,
    pub state: DeliveryState,
    pub at: UnixMs,
}

#[async_trait]
pub trait DeliveryStore: Send + Sync {
    /// Records a delivery (every reviewed project `planning`), or returns the one already
    /// recorded for `event_id`.
    async fn insert_delivery(&self, d: NewDelivery, now: UnixMs) -> StoreResult<DeliveryRow>;
    /// Links the run that plans the merge commit, or the one that applies it.
    async fn set_delivery_run(
        &self,
        id: i64,
        kind: crate::core::job::JobKind,
        run_id: i64,
    ) -> StoreResult<()>;
    /// The delivery whose plan or apply run is `run_id`.
    async fn delivery_of_run(&self, run_id: i64) -> StoreResult<Option<DeliveryRow>>;
    /// Sets where projects (by dir and workspace) of a delivery stand.
    async fn set_delivery_states(
        &self,
        id: i64,
        states: &[(ProjectDir, Workspace, DeliveryState)],
        now: UnixMs,
    ) -> StoreResult<()>;
    /// The newest delivery state of a project.
    async fn project_delivery(
        &self,
        repo: &RepoName,
        dir: &ProjectDir,
        workspace: &Workspace,
    ) -> StoreResult<Option<ProjectDelivery>>;
}
