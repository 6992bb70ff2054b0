//! `plan`, and autoplan on a push: fetch the pull request, read its configuration and projects,
//! pick the projects (affected ones, or the comment's targets through `core::target`), refuse
//! what the configuration, the limits or the policies refuse, and create the run — which takes
//! every lock at once or waits behind their holder, saying which in the same transaction.

use std::collections::BTreeSet;

use super::{Ask, Bot, CommandRun, EventError};
use crate::adapters::clock;
use crate::adapters::git::GitRepo;
use crate::app::ports::PullDetails;
use crate::app::ports::StatusState;
use crate::app::ports::store::{
    Effects, NewJob, NewRun, Opening, RunStart, StatusContext, Trigger,
};
use crate::app::repo_state::RepoState;
use crate::core::audit::{AuditAction, AuditRecord, AuditResult, ErrorClass};
use crate::core::command::Command;
use crate::core::lock::LockKey;
use crate::core::policy::{self, PolicyInput, Stage};
use crate::core::projects::{self, Project};
use crate::core::reply;
use crate::core::types::CommitSha;

/// What asks for the plan.
#[derive(Clone, Copy)]
enum Origin<'a> {
    /// A pull request was opened, pushed to, reopened or marked ready: the affected projects
    /// whose autoplan is on.
    Autoplan,
    /// A `plan` comment: the targeted projects, or every affected one.
    Command { cmd: &'a Command, comment_id: u64 },
}

/// The commits a plan is about.
struct Commits {
    base: CommitSha,
    head: CommitSha,
}

impl Bot {
    /// Plans what a push to the pull request affects.
    pub(super) async fn autoplan(
        &self,
        ask: &Ask<'_>,
        pull: &PullDetails,
    ) -> Result<(), EventError> {
        self.plan(ask, pull, Origin::Autoplan).await
    }

    /// `plan` [`-p`/`-d`/`-w`] [`-- ARGS`].
    pub(super) async fn plan_command(&self, run: &CommandRun<'_>) -> Result<(), EventError> {
        let origin = Origin::Command {
            cmd: run.cmd,
            comment_id: run.comment_id,
        };
        self.plan(&run.ask, run.pull, origin).await
    }

    async fn plan(
        &self,
        ask: &Ask<'_>,
        pull: &PullDetails,
        origin: Origin<'_>,
    ) -> Result<(), EventError> {
        let t0 = std::time::Instant::now();
        let git = self.fetch(ask.repo, pull).await?;
        tracing::debug!(ms = t0.elapsed().as_millis() as u64, "fetched");
        let commits = Commits {
            base: Self::base_tip(&git, pull),
            head: pull.head_sha.clone(),
        };
        let state = self.repo_state(&git, &commits.base, &commits.head).await?;
        if matches!(origin, Origin::Autoplan) && pull.draft && !self.plans_drafts(&state) {
            tracing::info!(repo = %ask.repo.name, pr = ask.pr.get(), "draft pull request: not planned");
            return Ok(());
        }
        if state.rejected() {
            return self.say(config_rejected(ask, &commits, &state)).await;
        }
        let Some(selected) = self.select(ask, origin, &commits.head, &state).await? else {
            return Ok(());
        };
        if selected.is_empty() {
            return self.say(nothing_to_plan(ask, origin, &commits.head)).await;
        }
        let max = self.settings.limits.projects_per_run;
        if selected.len() > max {
            let effects = too_many(
                ask,
                &commits.head,
                selected.len(),
                max,
                &self.settings.bot_name,
            );
            return self.say(effects).await;
        }
        tracing::debug!(ms = t0.elapsed().as_millis() as u64, "projects selected");
        if let Some(refused) = self
            .policy_refusal(ask, pull, &git, &commits, &selected)
            .await?
        {
            return self.say(refused).await;
        }
        tracing::debug!(ms = t0.elapsed().as_millis() as u64, "policies checked");
        // Projects applied only after merge take no lock on the PR: the merge's delivery does.
        let base_config = self.base_config(&git, &commits.base).await?;
        let locked: Vec<&Project> = selected
            .iter()
            .filter(|p| {
                crate::core::delivery::mode_of(base_config.as_ref(), &p.dir, &p.workspace)
                    != crate::core::delivery::ApplyMode::OnMerge
            })
            .collect();
        self.queue(ask, pull, origin, &commits, &selected, &locked)
            .await
    }

    /// Whether drafts are planned: the server says so (`plan_drafts`), or the pull request's
    /// `sluice.yaml` does (`plan_drafts: true`).
    fn plans_drafts(&self, state: &RepoState) -> bool {
        self.settings.plan_drafts || state.config.as_ref().is_some_and(|c| c.plan_drafts)
    }

    /// The projects to plan; `None` when the comment's targets pick nothing (the PR was told).
    /// Detection errors that stop some projects are told, not just logged; the others go on.
    async fn select(
        &self,
        ask: &Ask<'_>,
        origin: Origin<'_>,
        head: &CommitSha,
        state: &RepoState,
    ) -> Result<Option<Vec<Project>>, EventError> {
        let detection = match origin {
            Origin::Command { cmd, .. } if !cmd.targets.is_all() => {
                let all = state.all_projects();
                return match projects::select_projects(&all.projects, &cmd.targets) {
                    Ok(found) => Ok(Some(found.into_iter().cloned().collect())),
                    Err(why) => {
                        let body = reply::plan::target_not_found(&why, &all.diagnostics);
                        self.reply(ask, body).await.map(|()| None)
                    }
                };
            }
            Origin::Command { .. } => state.affected_projects(),
            Origin::Autoplan => state.autoplan_projects(),
        };
        let errors: Vec<String> = detection
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.to_string())
            .collect();
        if !errors.is_empty() {
            tracing::info!(repo = %ask.repo.name, pr = ask.pr.get(), errors = ?errors, "project detection errors");
            self.reply(ask, reply::plan::detection_errors(head, &errors))
                .await?;
        }
        Ok(Some(detection.projects))
    }

    /// Who may plan, by the base branch's policies: the refusal of every blocked project, or
    /// `None` when all may be planned.
    async fn policy_refusal(
        &self,
        ask: &Ask<'_>,
        pull: &PullDetails,
        git: &GitRepo,
        commits: &Commits,
        selected: &[Project],
    ) -> Result<Option<Effects>, EventError> {
        let policies = self.policy_set(git, &commits.base).await?;
        if policies.policies.is_empty() {
            return Ok(None);
        }
        let teams = self.teams.resolve(&*self.github, &policies.policies).await;
        let mut sections = Vec::new();
        let mut records = Vec::new();
        for p in selected {
            let base_names = policies.base_names_of(p);
            let input = PolicyInput {
                stage: Stage::Plan,
                actor: &ask.actor.login,
                author: &pull.author.login,
                target_branch: &pull.base_ref,
                head_sha: &commits.head,
                project: p,
                base_names: &base_names,
                plan: None,
                approvals: &[],
                teams: &teams,
                overrides: &[],
            };
            let decisions = policy::evaluate(&policies.policies, &input);
            if policy::blocks(&decisions) {
                sections.push(policy::render_section(
                    &decisions,
                    &self.settings.bot_name,
                    &p.name,
                ));
                records.push(
                    ask.record(AuditAction::PolicyCheck, AuditResult::Refused)
                        .base(&pull.base_sha)
                        .head(&pull.head_sha)
                        .project(&p.name, &p.dir, &p.workspace)
                        .policy(policies.audit(&decisions)),
                );
            }
        }
        if records.is_empty() {
            return Ok(None);
        }
        let body = reply::plan::refused_by_policy(&ask.actor.login, &sections);
        let status = ask.status(
            &commits.head,
            StatusContext::Plan,
            StatusState::Failure,
            reply::status::PLAN_REFUSED_BY_POLICY,
        );
        Ok(Some(Effects::new(vec![ask.comment(body), status], records)))
    }

    /// Creates the run: its jobs, its locks (all at once, or it waits), and what its start says.
    async fn queue(
        &self,
        ask: &Ask<'_>,
        pull: &PullDetails,
        origin: Origin<'_>,
        commits: &Commits,
        selected: &[Project],
        locked: &[&Project],
    ) -> Result<(), EventError> {
        let locks: Vec<LockKey> = locked
            .iter()
            .map(|p| LockKey {
                dir: p.dir.clone(),
                workspace: p.workspace.clone(),
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let (trigger, comment_id, extra_args, verbose) = match origin {
            Origin::Autoplan => (Trigger::Autoplan, None, vec![], false),
            Origin::Command { cmd, comment_id } => (
                Trigger::Comment,
                Some(comment_id),
                cmd.extra_args.clone(),
                cmd.verbose,
            ),
        };
        let run = NewRun {
            repo: ask.repo.name.clone(),
            pr: ask.pr,
            kind: crate::core::job::JobKind::Plan,
            trigger,
            head_sha: commits.head.clone(),
            base_sha: commits.base.clone(),
            base_ref: pull.base_ref.clone(),
            clone_url: ask.repo.clone_url.clone(),
            installation_id: ask.repo.installation_id,
            actor: ask.actor.clone(),
            comment_id,
            event_id: Some(format!("{}:plan", ask.delivery)),
            extra_args,
            verbose,
            jobs: selected.iter().map(NewJob::plan).collect(),
            locks: locks.clone(),
        };
        let n = selected.len();
        let announce = |opening: Opening<'_>| announce(ask, commits, n, &locks, opening);
        let started = self
            .store
            .create_run(run, &announce, clock::now())
            .await
            .map_err(EventError::Retry)?;
        let (repo, pr) = (&ask.repo.name, ask.pr.get());
        match started {
            RunStart::Queued { run_id } => {
                tracing::info!(repo = %repo, pr, run_id, projects = selected.len(), "plan queued");
                self.wake(true);
            }
            RunStart::Waiting { run_id, .. } => {
                tracing::info!(repo = %repo, pr, run_id, "plan waits for locks");
                self.wake(false);
            }
            RunStart::AlreadyExists { run_id } => {
                tracing::info!(run_id, "event already turned into a run");
            }
            RunStart::Refused { reason } => {
                return Err(EventError::Permanent(anyhow::anyhow!(
                    "plan run refused: {reason}"
                )));
            }
        }
        Ok(())
    }
}

/// What a plan run's start says, in the run's own transaction: when its locks are taken,
/// "planning N projects" and the locks acquired; when it waits, the queued comment, "queued
/// behind #N" and the conflict (it says "planning" and audits the locks only when it starts).
fn announce(
    ask: &Ask<'_>,
    commits: &Commits,
    projects: usize,
    locks: &[LockKey],
    opening: Opening<'_>,
) -> Effects {
    let held = match opening {
        // Locks taken: the run starts now. (A run that waits says this when the locks are
        // released and it starts: see `Store::release_pr_locks`.)
        Opening::Starts => {
            let pending = ask.status(
                &commits.head,
                StatusContext::Plan,
                StatusState::Pending,
                reply::status::planning(projects),
            );
            let acquired = ask
                .record(AuditAction::LockAcquired, AuditResult::Success)
                .base(&commits.base)
                .head(&commits.head)
                .numbered("lock", locks);
            return Effects::new(vec![pending], vec![acquired]);
        }
        Opening::Waits { held } => held,
    };
    let holder = held.first().map(|l| l.pr.get()).unwrap_or_default();
    Effects::new(
        vec![
            ask.comment(reply::plan::queued(held, &ask.repo_url())),
            ask.status(
                &commits.head,
                StatusContext::Plan,
                StatusState::Pending,
                reply::status::queued_behind(holder),
            ),
        ],
        vec![
            ask.record(AuditAction::LockConflict, AuditResult::Refused)
                .head(&commits.head)
                .numbered(
                    "held",
                    held.iter().map(|l| format!("{} by #{}", l.key, l.pr.get())),
                ),
        ],
    )
}

/// The configuration has errors: nothing is planned.
fn config_rejected(ask: &Ask<'_>, commits: &Commits, state: &RepoState) -> Effects {
    let body = reply::plan::config_rejected(
        state.config_file.as_deref(),
        &commits.head,
        &state.diagnostics,
    );
    let record = ask
        .record(AuditAction::ConfigRejected, AuditResult::Refused)
        .base(&commits.base)
        .head(&commits.head)
        .numbered("diagnostic", &state.diagnostics);
    Effects::new(
        vec![
            ask.comment(body),
            ask.status(
                &commits.head,
                StatusContext::Plan,
                StatusState::Failure,
                reply::status::CONFIG_ERRORS,
            ),
        ],
        vec![record],
    )
}

/// No project is affected: a success status, and a reply to a `plan` comment.
fn nothing_to_plan(ask: &Ask<'_>, origin: Origin<'_>, head: &CommitSha) -> Effects {
    let mut out = vec![ask.status(
        head,
        StatusContext::Plan,
        StatusState::Success,
        reply::status::NO_PROJECTS,
    )];
    if matches!(origin, Origin::Command { .. }) {
        out.push(ask.comment(reply::plan::no_projects()));
    }
    Effects::new(out, vec![])
}

/// More projects than `limits.projects_per_run`: refused, recorded.
fn too_many(ask: &Ask<'_>, head: &CommitSha, n: usize, max: usize, bot_name: &str) -> Effects {
    let record: AuditRecord = ask
        .record(AuditAction::PlanRefused, AuditResult::Refused)
        .head(head)
        .error(ErrorClass::Limit)
        .detail("projects", n.to_string())
        .detail("limit", format!("limits.projects_per_run = {max}"));
    Effects::new(
        vec![
            ask.comment(reply::plan::too_many_projects(n, max, bot_name)),
            ask.status(
                head,
                StatusContext::Plan,
                StatusState::Failure,
                reply::status::too_many_projects(n, max),
            ),
        ],
        vec![record],
    )
}
