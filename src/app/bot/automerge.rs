//! Automerge after an apply (`automerge` in the base branch's `sluice.yaml`): when an `apply`
//! run of a pull request ends with every job applied, [`Bot::automerge_after_apply`] gathers the
//! pull request's projects and plans, lets `core::automerge` decide, and merges through GitHub's
//! "Merge a pull request" with the configured method and the head SHA the apply was of (so a
//! newer push is never merged). A refusal (branch protection: 405; new commits: 409; 422) is
//! told on the pull request; the merge and the refusal are both audited.

use super::Bot;
use crate::app::ports::PullState;
use crate::app::ports::store::{Effects, JobRow, OutboxItem, RunRow, Trigger};
use crate::core::audit::{AuditAction, AuditActor, AuditRecord, AuditResult};
use crate::core::automerge::{self, Decision, Facts, ProjectState};
use crate::core::delivery;
use crate::core::event::RepoRef;
use crate::core::job::{JobKind, JobState};
use crate::core::reply::automerge as say;

/// The repository of a run, as the flows that fetch need it.
pub(super) fn repo_of(run: &RunRow) -> RepoRef {
    RepoRef {
        name: run.repo.clone(),
        clone_url: run.clone_url.clone(),
        default_branch: run.base_ref.clone(),
        installation_id: run.installation_id,
    }
}

impl Bot {
    /// After an `apply` comment's run: merges the pull request when `automerge` is on and the
    /// pull request is applied completely. What it says (a comment and an audit entry when a
    /// merge was attempted) goes into the run's report.
    pub async fn automerge_after_apply(&self, run: &RunRow, jobs: &[JobRow]) -> Effects {
        if run.kind != JobKind::Apply
            || run.trigger != Trigger::Comment
            || jobs.is_empty()
            || jobs.iter().any(|j| j.state != JobState::Succeeded)
        {
            return Effects::default();
        }
        match self.try_automerge(run).await {
            Ok(effects) => effects,
            Err(e) => {
                tracing::warn!(repo = %run.repo, pr = run.pr.get(), error = %format!("{e:#}"), "automerge: not attempted");
                Effects::default()
            }
        }
    }

    async fn try_automerge(&self, run: &RunRow) -> anyhow::Result<Effects> {
        let pull = self.github.get_pull(&run.repo, run.pr).await?;
        let git = self
            .fetch(&repo_of(run), &pull)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let base = Self::base_tip(&git, &pull);
        let config = self
            .base_config(&run.repo, &pull.base_ref, &git, &base)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let Some(method) = config.as_ref().and_then(|c| c.automerge) else {
            return Ok(Effects::default());
        };
        let projects = self
            .repo_state(&run.repo, &pull.base_ref, &git, &base, &pull.head_sha)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .affected_projects()
            .projects;
        let applied = self.store.applied_plans(&run.repo, run.pr).await?;
        let unapplied = self
            .store
            .current_plans(&run.repo, run.pr)
            .await?
            .into_iter()
            .filter(|p| p.head_sha == pull.head_sha)
            .count();
        let states: Vec<ProjectState> = projects
            .iter()
            .map(|p| ProjectState {
                name: p.name.to_string(),
                applied: applied.iter().any(|a| {
                    a.project_dir == p.dir
                        && a.workspace == p.workspace
                        && a.head_sha == pull.head_sha
                }),
                mode: delivery::mode_of(config.as_ref(), &p.dir, &p.workspace),
            })
            .collect();
        let decision = automerge::decide(&Facts {
            method: Some(method),
            open: pull.state == PullState::Open && !pull.merged,
            head_current: pull.head_sha == run.head_sha,
            projects: &states,
            unapplied_plans: unapplied,
        });
        let method = match decision {
            Decision::Skip(why) => {
                tracing::info!(repo = %run.repo, pr = run.pr.get(), why, "automerge: not merged");
                return Ok(Effects::default());
            }
            Decision::Merge(m) => m,
        };
        let mut record = AuditRecord::new(
            AuditAction::Automerge,
            AuditActor::system(&self.settings.bot_name),
            AuditResult::Success,
        )
        .pr(&run.repo, run.pr)
        .base(&base)
        .head(&pull.head_sha)
        .detail("method", method.as_str());
        record.event_id = run.event_id.clone();
        Ok(
            match self
                .github
                .merge_pull(&run.repo, run.pr, method, &pull.head_sha)
                .await
            {
                Ok(merge_sha) => {
                    tracing::info!(repo = %run.repo, pr = run.pr.get(), merge = %merge_sha.short(), "automerge: merged");
                    Effects::new(
                        vec![OutboxItem::comment(
                            &run.repo,
                            run.pr,
                            say::merged(method, &merge_sha),
                        )],
                        vec![record.detail("merge_commit", merge_sha.as_str())],
                    )
                }
                Err(e) => {
                    let error = e.to_string();
                    tracing::warn!(repo = %run.repo, pr = run.pr.get(), error, "automerge: GitHub refused the merge");
                    Effects::new(
                        vec![OutboxItem::comment(
                            &run.repo,
                            run.pr,
                            say::refused(method, &error),
                        )],
                        vec![
                            record
                                .result(AuditResult::Refused)
                                .detail("error", error.as_str()),
                        ],
                    )
                }
            },
        )
    }
}
