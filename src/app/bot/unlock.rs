//! `unlock`: cancel the pull request's pending jobs, discard its plans and release its locks —
//! unless an apply of it is running (its locks keep others off until it ends) or the base
//! branch's policies say the commenter may not (`access.unlock`).

use super::{Ask, Bot, CommandRun, EventError};
use crate::adapters::clock;
use crate::app::ports::store::Effects;
use crate::app::repo_state::load_config_at;
use crate::core::audit::{AuditAction, AuditResult};
use crate::core::job::{JobKind, JobState};
use crate::core::lock::{Lock, LockKey};
use crate::core::policy::{self, PolicyInput, Stage};
use crate::core::projects;
use crate::core::reply;

impl Bot {
    pub(super) async fn unlock(&self, run: &CommandRun<'_>) -> Result<(), EventError> {
        let ask = &run.ask;
        if self.apply_running(ask).await? {
            return self.reply(ask, reply::unlock::apply_running()).await;
        }
        let held = self.locks_of(ask).await?;
        if let Some(refusal) = self.unlock_refusal(run, &held).await? {
            return self.reply(ask, refusal).await;
        }
        let (repo, pr) = (&ask.repo.name, ask.pr);
        let now = clock::now();
        let why = reply::unlock::cancel_reason(&ask.actor.login);
        self.store
            .cancel_pending_jobs(repo, pr, &why, now)
            .await
            .map_err(EventError::Retry)?;
        let discarded = self
            .store
            .discard_plans(repo, pr, now)
            .await
            .map_err(EventError::Retry)?;
        let keys: Vec<LockKey> = held.into_iter().map(|l| l.key).collect();
        let body = reply::unlock::released(&keys, discarded.len(), &self.settings.bot_name);
        let record = ask
            .record(AuditAction::Unlock, AuditResult::Success)
            .numbered("lock", &keys);
        self.release(
            ask,
            Effects::new(vec![ask.comment(body)], vec![record]),
            &discarded,
        )
        .await
    }

    /// Whether one of the pull request's apply jobs is running now.
    async fn apply_running(&self, ask: &Ask<'_>) -> Result<bool, EventError> {
        let runs = self
            .store
            .open_runs(&ask.repo.name, ask.pr)
            .await
            .map_err(EventError::Retry)?;
        for run in runs.iter().filter(|r| r.kind == JobKind::Apply) {
            let jobs = self
                .store
                .jobs_of_run(run.id)
                .await
                .map_err(EventError::Retry)?;
            if jobs.iter().any(|j| j.state == JobState::Running) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Who may `unlock`: the `access.unlock` of the policies covering the projects whose locks
    /// the pull request holds. The refusal, or `None`.
    async fn unlock_refusal(
        &self,
        run: &CommandRun<'_>,
        held: &[Lock],
    ) -> Result<Option<String>, EventError> {
        let (ask, pull) = (&run.ask, run.pull);
        if held.is_empty() || (self.server_policies.is_empty() && !self.settings.repo_policies) {
            return Ok(None);
        }
        let git = self.fetch(ask.repo, pull).await?;
        let base_tip = Self::base_tip(&git, pull);
        let policies = self.policy_set(&ask.repo.name, &git, &base_tip).await?;
        if policies.policies.is_empty() {
            return Ok(None);
        }
        let teams = self.teams.resolve(&*self.github, &policies.policies).await;
        let ((config, _, _), snapshot) = {
            let (g, h) = (git.clone(), pull.head_sha.clone());
            let rules = self.repo_rules(&ask.repo.name, &pull.base_ref);
            self.read_bounded(move || Ok((load_config_at(&g, &h, &rules)?, g.snapshot(&h)?)))
                .await?
        };
        let (known, _) = projects::all_projects(&snapshot, config.as_ref());
        let mut sections = String::new();
        for l in held {
            let project = known
                .iter()
                .find(|p| p.dir == l.key.dir && p.workspace == l.key.workspace)
                .cloned()
                .unwrap_or_else(|| {
                    projects::Project::detected(l.key.dir.clone(), l.key.workspace.clone())
                });
            let base_names = policies.base_names_of(&project);
            let input = PolicyInput {
                stage: Stage::Unlock,
                actor: &ask.actor.login,
                author: &pull.author.login,
                target_branch: &pull.base_ref,
                head_sha: &pull.head_sha,
                project: &project,
                base_names: &base_names,
                plan: None,
                approvals: &[],
                teams: &teams,
                overrides: &[],
            };
            let decisions = policy::evaluate(&policies.policies, &input);
            if policy::blocks(&decisions) {
                sections.push_str(&policy::render_section(
                    &decisions,
                    &self.settings.bot_name,
                    &project.name,
                ));
            }
        }
        Ok((!sections.is_empty())
            .then(|| reply::unlock::refused_by_policy(&ask.actor.login, &sections)))
    }
}
