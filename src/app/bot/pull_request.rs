//! A `pull_request` event: opened, pushed to, reopened or marked ready → autoplan (or a refusal,
//! told once, for forks and untrusted base branches); closed or merged → locks released, plans
//! discarded, pending work cancelled.

use super::{Ask, Bot, EventError};
use crate::adapters::{clock, plan_files};
use crate::app::ports::StatusState;
use crate::app::ports::store::{Effects, PlanRow, StatusContext};
use crate::app::ports::{MergeableState, PullDetails, PullState};
use crate::core::audit::{AuditAction, AuditResult};
use crate::core::event::{Actor, PullRequestAction, PullRequestInfo, RepoRef};
use crate::core::lock::Lock;
use crate::core::reply;
use crate::core::types::{CommitSha, ProjectDir, Workspace};

impl Bot {
    pub(super) async fn on_pull_request(
        &self,
        delivery_id: &str,
        repo: &RepoRef,
        action: PullRequestAction,
        pr: &PullRequestInfo,
        sender: &Actor,
    ) -> Result<(), EventError> {
        let ask = Ask {
            delivery: delivery_id,
            repo,
            pr: pr.number,
            actor: sender,
        };
        if let PullRequestAction::Closed { merged } = action {
            // What applies after merge is read before the plans are discarded.
            // Preparing delivery never stands in the way of closing: when it fails, the locks
            // are released and the plans discarded anyway, and the failure is said loudly.
            let (delivery, failure) = match merged {
                true => match self.prepare_delivery(&ask, pr).await {
                    Ok(d) => (d, None),
                    Err(e) => {
                        let error = e.to_string();
                        tracing::error!(repo = %repo.name, pr = pr.number.get(), error = %error, "preparing delivery after merge failed; nothing applied, releasing locks anyway");
                        (None, Some(error))
                    }
                },
                false => (None, None),
            };
            let failure = failure.map(|error| (error, pr.merge_commit_sha.clone()));
            let delivered = delivery
                .as_ref()
                .map(super::merge::Prepared::reviewed_plans)
                .unwrap_or_default();
            self.on_closed(&ask, merged, failure, &delivered).await?;
            return match delivery {
                Some(d) => self.start_delivery(&ask, pr, d).await,
                None => Ok(()),
            };
        }
        let refusal = if pr.from_fork && !self.settings.allow_fork_prs {
            Some((
                reply::pull_request::fork_refusal(),
                reply::pull_request::FORK_REASON,
            ))
        } else {
            self.base_refusal(repo, &pr.base_ref)
        };
        if let Some((body, reason)) = refusal {
            tracing::info!(repo = %repo.name, pr = pr.number.get(), reason, "pull request not planned");
            // Told once (not on every push); a draft only when the server plans drafts.
            let skipped_draft = pr.draft && !self.settings.plan_drafts;
            if action != PullRequestAction::Synchronize && !skipped_draft {
                self.refuse(&ask, &pr.head_sha, body, reason).await?;
            }
            return Ok(());
        }
        self.autoplan(&ask, &pull_from_event(pr, repo)).await
    }

    /// Closed or merged: pending jobs cancelled, plans discarded, locks released — each step on
    /// its own, so the locks go even when the other cleanup fails.
    /// `delivery_failure` is why what applies after merge could not be prepared (and the merge
    /// commit): told on the pull request, failed as `sluice/apply` on the merge commit, and
    /// audited as a refused apply with the release. `delivered`: the projects whose reviewed
    /// plans the apply after merge compares with (their plans are not "discarded" to the user).
    async fn on_closed(
        &self,
        ask: &Ask<'_>,
        merged: bool,
        delivery_failure: Option<(String, Option<CommitSha>)>,
        delivered: &[(ProjectDir, Workspace)],
    ) -> Result<(), EventError> {
        let (repo, pr) = (&ask.repo.name, ask.pr);
        let now = clock::now();
        let reason = reply::pull_request::closed_cancel_reason(merged);
        if let Err(e) = self.store.cancel_pending_jobs(repo, pr, reason, now).await {
            tracing::error!(error = %format!("{e:#}"), "cancelling jobs of a closed PR failed; releasing locks anyway");
        }
        let discarded = match self.store.discard_plans(repo, pr, now).await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "discarding plans of a closed PR failed; releasing locks anyway");
                Vec::new()
            }
        };
        let held = self.locks_of(ask).await?;
        let mut effects = Effects::default();
        if !held.is_empty() || !discarded.is_empty() {
            let kept = discarded
                .iter()
                .filter(|p| {
                    delivered
                        .iter()
                        .any(|(d, w)| *d == p.project_dir && *w == p.workspace)
                })
                .count();
            effects.outbox.push(ask.comment(reply::pull_request::closed(
                merged,
                held.len(),
                discarded.len() - kept,
                kept,
            )));
        }
        effects.audit.push(
            ask.record(AuditAction::PullRequestClosed, AuditResult::Success)
                .detail("merged", merged.to_string()),
        );
        if let Some((error, merge_sha)) = delivery_failure {
            effects
                .outbox
                .push(ask.comment(reply::delivery::preparation_failed(&error)));
            let mut record = ask
                .record(AuditAction::ApplyRefused, AuditResult::Failure)
                .detail("reason", "delivery_preparation_failed")
                .detail("error", error.as_str());
            if let Some(sha) = &merge_sha {
                effects.outbox.push(ask.status(
                    sha,
                    StatusContext::Apply,
                    StatusState::Failure,
                    reply::delivery::NOT_APPLIED,
                ));
                record = record.head(sha);
            }
            effects.audit.push(record);
        }
        for l in &held {
            effects.audit.push(
                ask.record(AuditAction::LockReleased, AuditResult::Success)
                    .lock(&l.key),
            );
        }
        self.release(ask, effects, &discarded).await
    }

    /// The locks the pull request holds.
    pub(super) async fn locks_of(&self, ask: &Ask<'_>) -> Result<Vec<Lock>, EventError> {
        Ok(self
            .store
            .locks(Some(&ask.repo.name))
            .await
            .map_err(EventError::Retry)?
            .into_iter()
            .filter(|l| l.pr == ask.pr)
            .collect())
    }

    /// Releases the pull request's locks with `effects` (one transaction), deletes the files of
    /// the `discarded` plans, and wakes the runs that were waiting.
    pub(super) async fn release(
        &self,
        ask: &Ask<'_>,
        effects: Effects,
        discarded: &[PlanRow],
    ) -> Result<(), EventError> {
        let (_, started) = self
            .store
            .release_pr_locks(&ask.repo.name, ask.pr, effects, clock::now())
            .await
            .map_err(EventError::Retry)?;
        for plan in discarded {
            plan_files::remove(&plan.plan_file);
        }
        self.wake(!started.is_empty());
        Ok(())
    }
}

/// The PR as a `pull_request` event describes it (autoplan needs nothing more from the API).
pub(super) fn pull_from_event(pr: &PullRequestInfo, repo: &RepoRef) -> PullDetails {
    PullDetails {
        number: pr.number,
        state: PullState::Open,
        merged: false,
        draft: pr.draft,
        mergeable: None,
        mergeable_state: MergeableState::Unknown,
        html_url: pr.html_url.clone(),
        author: pr.author.clone(),
        head_sha: pr.head_sha.clone(),
        head_ref: pr.head_ref.clone(),
        head_clone_url: Some(repo.clone_url.clone()),
        base_ref: pr.base_ref.clone(),
        base_sha: pr.base_sha.clone(),
        from_fork: pr.from_fork,
        title: String::new(),
        merge_commit_sha: pr.merge_commit_sha.clone(),
    }
}
