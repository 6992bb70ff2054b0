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
    Effects, NewJob, NewRun, Opening, OutboxItem, PlanJob, RunStart, StatusContext, Trigger,
};
use crate::app::repo_state::RepoState;
use crate::core::apply_gate::{self, PrFacts};
use crate::core::audit::{AuditAction, AuditRecord, AuditResult, ErrorClass};
use crate::core::command::Command;
use crate::core::lock::LockKey;
use crate::core::plan::CommandName;
use crate::core::policy::{self, PolicyInput, Stage};
use crate::core::projects::{self, Project};
use crate::core::reply;
use crate::core::repo_config::RepoConfig;
use crate::core::review::checks::{CheckContext, no_terraform_changes};
use crate::core::review::pr_review::{ReviewComments, ReviewContext};
use crate::core::review::surface::{PrObjects, PushOutput, push_writes};
use crate::core::types::{ApplyRequirement, CommitSha};

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
        let state = self
            .repo_state(
                &ask.repo.name,
                &pull.base_ref,
                &git,
                &commits.base,
                &commits.head,
            )
            .await?;
        if matches!(origin, Origin::Autoplan) && pull.draft && !self.plans_drafts(&state) {
            tracing::info!(repo = %ask.repo.name, pr = ask.pr.get(), "draft pull request: not planned");
            return Ok(());
        }
        if state.rejected() {
            return self.say(config_rejected(ask, &commits, &state)).await;
        }
        let warnings = state.config_warnings();
        if !warnings.is_empty() {
            let body = reply::removed::config_warnings(
                state.config_file.as_deref(),
                &commits.head,
                &warnings,
            );
            self.reply(ask, body).await?;
        }
        let Some(mut selected) = self.select(ask, origin, &commits, &state).await? else {
            return Ok(());
        };
        // Every plan run says what the PR removes (unless it plans that project's destroy), so
        // no run turns `sluice/plan` green while a removal would orphan resources.
        let removals: Vec<PlanJob> = self
            .unsettled_removals(ask, &state)
            .await?
            .into_iter()
            .filter(|r| {
                !selected.iter().any(|s| {
                    s.project.dir == r.project.dir && s.project.workspace == r.project.workspace
                })
            })
            .collect();
        selected.extend(removals);
        if selected.is_empty() && is_remediation(origin, pull) {
            // A drift remediation PR changes no file: its project is planned by `remediate`
            // itself (`plan -p NAME`), and that plan, not "0 projects", is its `sluice/plan`.
            return Ok(());
        }
        if selected.is_empty() {
            let mut effects = nothing_to_plan(ask, origin, &commits.head);
            if state.affected_projects().projects.is_empty() {
                // No Terraform changes: `sluice/apply-gate` succeeds at once (as the App's
                // check runs do), so requiring it never holds up the merge button.
                if self.github.is_app() {
                    effects.extend(no_changes_checks(
                        ask,
                        &commits.head,
                        &self.settings.bot_name,
                    ));
                } else {
                    effects.outbox.push(ask.status(
                        &commits.head,
                        StatusContext::ApplyGate,
                        StatusState::Success,
                        reply::status::NO_TERRAFORM_CHANGES,
                    ));
                }
            } else {
                // Projects changed but none planned (autoplan off): the gate says what the
                // merge would apply without a reviewed plan.
                match self.apply_gate_status(&ask.repo.name, ask.pr).await {
                    Ok(gate) => effects.outbox.extend(gate),
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "apply gate: not evaluated")
                    }
                }
            }
            return self.say(effects).await;
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
        let base_config = self
            .base_config(&ask.repo.name, &pull.base_ref, &git, &commits.base)
            .await?;
        let held = self
            .plan_requirements_unmet(ask, pull, &git, &commits, base_config.as_ref(), &selected)
            .await?;
        if !held.is_empty() {
            return self.say(self.plan_held(ask, origin, &commits, held)).await;
        }
        if let Some(refused) = self
            .policy_refusal(ask, pull, &git, &commits, &selected)
            .await?
        {
            return self.say(refused).await;
        }
        tracing::debug!(ms = t0.elapsed().as_millis() as u64, "policies checked");
        // Projects applied only after merge take no lock on the PR: the merge's delivery does.
        // A removed project's job runs nothing, so it takes no lock either: its warning is not
        // held up behind another PR (its destroy plan takes the lock like any plan).
        let locked: Vec<&Project> = selected
            .iter()
            .filter(|j| j.removed.is_none())
            .map(|j| &j.project)
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
    /// `plan --destroy` of a project the pull request removes plans it from the base tip.
    async fn select(
        &self,
        ask: &Ask<'_>,
        origin: Origin<'_>,
        commits: &Commits,
        state: &RepoState,
    ) -> Result<Option<Vec<PlanJob>>, EventError> {
        let detection = match origin {
            Origin::Command { cmd, .. } if !cmd.targets.is_all() => {
                return self.select_targets(ask, cmd, commits, state).await;
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
            self.reply(ask, reply::plan::detection_errors(&commits.head, &errors))
                .await?;
        }
        Ok(Some(
            detection.projects.into_iter().map(PlanJob::of).collect(),
        ))
    }

    /// The projects a `plan` comment's targets pick at the head; for `--destroy`, else among
    /// the projects the pull request removes (planned from the base tip). A target that is a
    /// removed project without `--destroy` is told how to plan its destroy.
    async fn select_targets(
        &self,
        ask: &Ask<'_>,
        cmd: &Command,
        commits: &Commits,
        state: &RepoState,
    ) -> Result<Option<Vec<PlanJob>>, EventError> {
        let all = state.all_projects();
        let why = match projects::select_projects(&all.projects, &cmd.targets) {
            Ok(found) => {
                let jobs = found
                    .into_iter()
                    .map(|p| PlanJob {
                        destroy: cmd.destroy,
                        ..PlanJob::of(p.clone())
                    })
                    .collect();
                return Ok(Some(jobs));
            }
            Err(why) => why,
        };
        if let Some(body) = outside_branch(state, cmd, &pull_base(state)) {
            return self.reply(ask, body).await.map(|()| None);
        }
        let removed: Vec<Project> = state.removed.iter().map(|r| r.project.clone()).collect();
        if let Ok(found) = projects::select_projects(&removed, &cmd.targets)
            && !found.is_empty()
        {
            if cmd.destroy {
                let jobs = found
                    .into_iter()
                    .map(|p| PlanJob {
                        destroy: true,
                        config_commit: Some(commits.base.clone()),
                        ..PlanJob::of(p.clone())
                    })
                    .collect();
                return Ok(Some(jobs));
            }
            let body = reply::removed::target_removed(&self.settings.bot_name, &found[0].name);
            return self.reply(ask, body).await.map(|()| None);
        }
        let body = reply::plan::target_not_found(&why, &all.diagnostics);
        self.reply(ask, body).await.map(|()| None)
    }

    /// The projects the pull request removes whose destroy plan has not been applied on it:
    /// each becomes a job that fails with the advice to destroy it first.
    async fn unsettled_removals(
        &self,
        ask: &Ask<'_>,
        state: &RepoState,
    ) -> Result<Vec<PlanJob>, EventError> {
        if state.removed.is_empty() {
            return Ok(Vec::new());
        }
        let applied = self
            .store
            .applied_plans(&ask.repo.name, ask.pr)
            .await
            .map_err(EventError::Retry)?;
        let mut destroyed = Vec::new();
        for plan in &applied {
            if self.plan_job_of(plan).await.is_some_and(|j| j.destroy) {
                destroyed.push((plan.project_dir.clone(), plan.workspace.clone()));
            }
        }
        Ok(state
            .removed
            .iter()
            .filter(|r| !destroyed.contains(&(r.project.dir.clone(), r.project.workspace.clone())))
            .map(|r| PlanJob {
                removed: Some(r.removal.clone()),
                ..PlanJob::of(r.project.clone())
            })
            .collect())
    }

    /// Atlantis `plan_requirements` of the selected projects (by their dir and workspace, from
    /// the base branch's configuration and the server's repo rules), judged by the apply gate's
    /// own evaluation ([`apply_gate::requirement_failures`]): each project with an unmet one
    /// and what fails (empty: every one holds). `base_config`: the base branch's configuration,
    /// which tells at once when nothing requires anything.
    async fn plan_requirements_unmet<'s>(
        &self,
        ask: &Ask<'_>,
        pull: &PullDetails,
        git: &GitRepo,
        commits: &Commits,
        base_config: Option<&RepoConfig>,
        selected: &'s [PlanJob],
    ) -> Result<Vec<(&'s Project, Vec<String>)>, EventError> {
        let rules = self.repo_rules(&ask.repo.name, &pull.base_ref);
        let listed = base_config
            .and_then(|c| c.projects.as_ref())
            .is_some_and(|l| {
                l.iter()
                    .any(|p| p.plan_requirements.as_ref().is_some_and(|r| !r.is_empty()))
            });
        if !listed && rules.settings().plan_requirements.is_empty() {
            return Ok(Vec::new());
        }
        let base_rules = self
            .base_rules(&ask.repo.name, &pull.base_ref, git, &commits.base)
            .await?;
        // A removed project runs nothing: there is nothing its plan requirements guard.
        let required: Vec<(&Project, Vec<ApplyRequirement>)> = selected
            .iter()
            .filter(|j| j.removed.is_none())
            .map(|j| {
                let id = base_rules.identity(&j.project.dir, &j.project.workspace);
                (&j.project, id.plan_requirements)
            })
            .filter(|(_, r)| !r.is_empty())
            .collect();
        if required.is_empty() {
            return Ok(Vec::new());
        }
        let reviews = self
            .github
            .list_reviews(&ask.repo.name, pull.number)
            .await?;
        let facts = PrFacts {
            open: true,
            head_sha: &pull.head_sha,
            author: &pull.author,
            reviews: &reviews,
            mergeable_state: Some(pull.mergeable_state.as_str()),
            undiverged: git.is_ancestor(&commits.base, &pull.head_sha).ok(),
        };
        Ok(required
            .into_iter()
            .map(|(p, reqs)| (p, apply_gate::requirement_failures(&facts, &reqs)))
            .filter(|(_, failed)| !failed.is_empty())
            .collect())
    }

    /// The refusal of a plan whose projects' plan requirements do not hold (`held`, from
    /// [`Bot::plan_requirements_unmet`]): nothing is planned, so an autoplan is skipped and a
    /// `plan` comment refused — the comment naming each unmet requirement, `sluice/plan`
    /// failed, a `plan_refused` audit entry per project.
    fn plan_held(
        &self,
        ask: &Ask<'_>,
        origin: Origin<'_>,
        commits: &Commits,
        held: Vec<(&Project, Vec<String>)>,
    ) -> Effects {
        tracing::info!(repo = %ask.repo.name, pr = ask.pr.get(), projects = held.len(), "plan requirements not met: nothing planned");
        let records = held
            .iter()
            .map(|(p, failed)| {
                ask.record(AuditAction::PlanRefused, AuditResult::Refused)
                    .base(&commits.base)
                    .head(&commits.head)
                    .project(&p.name, &p.dir, &p.workspace)
                    .numbered("reason", failed)
            })
            .collect();
        let listed: Vec<(String, Vec<String>)> = held
            .into_iter()
            .map(|(p, failed)| (p.name.to_string(), failed))
            .collect();
        let body = reply::plan::requirements_unmet(
            matches!(origin, Origin::Autoplan),
            &self.settings.bot_name,
            &listed,
        );
        let status = ask.status(
            &commits.head,
            StatusContext::Plan,
            StatusState::Failure,
            reply::status::PLAN_REQUIREMENTS_UNMET,
        );
        Effects::new(vec![ask.comment(body), status], records)
    }

    /// Who may plan, by the base branch's policies: the refusal of every blocked project, or
    /// `None` when all may be planned.
    async fn policy_refusal(
        &self,
        ask: &Ask<'_>,
        pull: &PullDetails,
        git: &GitRepo,
        commits: &Commits,
        selected: &[PlanJob],
    ) -> Result<Option<Effects>, EventError> {
        let policies = self.policy_set(&ask.repo.name, git, &commits.base).await?;
        if policies.policies.is_empty() {
            return Ok(None);
        }
        let teams = self.teams.resolve(&*self.github, &policies.policies).await;
        let mut sections = Vec::new();
        let mut records = Vec::new();
        // A removed project runs nothing: there is nothing for plan policies to allow.
        for p in selected
            .iter()
            .filter(|j| j.removed.is_none())
            .map(|j| &j.project)
        {
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
        selected: &[PlanJob],
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
            jobs: selected.iter().cloned().map(NewJob::plan_job).collect(),
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

/// The base branch a state was read for (the name its Atlantis `branch` patterns were matched
/// against); empty when it was read for no branch.
fn pull_base(state: &RepoState) -> String {
    state.base_branch.clone().unwrap_or_default()
}

/// The reply to `plan` targets that pick nothing at the head when they name projects the
/// configuration has only for other base branches (Atlantis `branch`); `None` otherwise.
fn outside_branch(state: &RepoState, cmd: &Command, base: &str) -> Option<String> {
    let config = state.config.as_ref()?;
    // Each left-out entry with an exact dir, as the project it would be, and its pattern.
    let (left_out, patterns): (Vec<Project>, Vec<String>) = config
        .left_out_by_branch
        .iter()
        .filter_map(|pc| {
            let crate::core::repo_config::DirSpec::Exact(dir) = &pc.dir.value else {
                return None;
            };
            let mut p = Project::detected(dir.clone(), pc.workspace.clone());
            if let Some(n) = &pc.name {
                p.name = n.value.clone();
            }
            Some((p, pc.branch.as_ref()?.text.clone()))
        })
        .unzip();
    let found = projects::select_projects(&left_out, &cmd.targets).ok()?;
    let named: Vec<(String, String)> = found
        .iter()
        .filter_map(|f| {
            let i = left_out.iter().position(|p| std::ptr::eq(p, *f))?;
            Some((f.name.to_string(), patterns[i].clone()))
        })
        .collect();
    if named.is_empty() {
        return None;
    }
    let file = state.config_file.as_deref().unwrap_or("atlantis.yaml");
    Some(reply::plan::target_outside_branch(base, file, &named))
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
/// An autoplan of a drift remediation pull request: Sluice's own branch in the repository.
fn is_remediation(origin: Origin<'_>, pull: &PullDetails) -> bool {
    matches!(origin, Origin::Autoplan)
        && !pull.from_fork
        && pull.head_ref.starts_with(reply::remediate::BRANCH_PREFIX)
}

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

/// A PR that changes no Terraform project, as a GitHub App: `sluice/plan` and
/// `sluice/apply-gate` succeed at once, so requiring them never holds up the merge button.
pub(super) fn no_changes_checks(ask: &Ask<'_>, head: &CommitSha, bot_name: &str) -> Effects {
    let ctx = CheckContext {
        head_sha: head,
        bot_name,
        command: CommandName::Plan,
        log_url: None,
        started_at: None,
        completed_at: None,
        annotate: ReviewComments::default(),
        max_annotations: 0,
    };
    let out = PushOutput {
        head_checks: no_terraform_changes(&ctx).into(),
        ..PushOutput::default()
    };
    let review = ReviewContext {
        pr: ask.pr,
        head_sha: head,
        summary_url: None,
        log_url: None,
    };
    let items = push_writes(&review, &PrObjects::default(), out)
        .into_iter()
        .map(|w| OutboxItem::write(&ask.repo.name, ask.pr, w))
        .collect();
    Effects::new(items, vec![])
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
