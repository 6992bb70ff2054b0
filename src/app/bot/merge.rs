//! Delivery after merge (`apply_mode: on_merge` / `comment_or_merge`, PRODUCT.md §15).
//!
//! When a pull request merges, [`Bot::prepare_delivery`] — before its plans are discarded —
//! records what was reviewed of each project applied after merge: the reviewed plan's changes,
//! and the gate evaluated as of the merge (the base branch's apply requirements and policies on
//! the reviewed plan). [`Bot::start_delivery`] then plans the merge commit in a run that takes
//! the projects' locks, so merges that touch the same project run one at a time, in merge order.
//! When that run ends, [`Bot::after_merge_run`] compares each new plan with the reviewed one
//! (`merge_plan_check`), queues the applies in `depends_on` order, and when the applies end,
//! reports, releases the locks and — for anything not applied — comments, fails `sluice/apply`
//! on the merge commit, notifies and marks the project out of sync.
//!
//! Nothing is applied before the merge, nothing that was not reviewed (strict) or that the
//! policies refuse (replan), and an apply interrupted by a crash is reported, never re-run.

use std::collections::BTreeSet;

use super::{Ask, Bot, EventError};
use crate::adapters::{clock, plan_files};
use crate::app::ports::PullState;
use crate::app::ports::StatusState;
use crate::app::ports::delivery::{DeliveryRow, DeliveryState, NewDelivery, Reviewed};
use crate::app::ports::store::{
    ApplyContext, Effects, JobReport, JobRow, NewJob, NewRun, OutboxItem, PlanRow, RunRow,
    RunStart, StatusContext, Trigger,
};
use crate::app::repo_state::load_config_at;
use crate::core::apply_gate::{self, PlanFacts, PrFacts, ProjectFacts};
use crate::core::audit::{AuditAction, AuditActor, AuditApproval, AuditRecord, AuditResult};
use crate::core::delivery::{self, Comparison, MergePlanCheck};
use crate::core::event::PullRequestInfo;
use crate::core::job::{JobKind, JobState};
use crate::core::lock::LockKey;
use crate::core::policy::{self, PolicyInput, Stage};
use crate::core::projects::Project;
use crate::core::reply::delivery::{self as say, NotApplied};
use crate::core::repo_config::RepoConfig;
use crate::core::types::{CommitSha, PrNumber, ProjectDir, ProjectName, RepoName, Workspace};

/// The gate of an open pull request ([`Bot::apply_gate`]).
pub(super) struct PrGate {
    pub pull: crate::app::ports::PullDetails,
    /// Why it does not pass, each prefixed with its project; empty when it passes.
    pub reasons: Vec<String>,
    /// How many projects it judged: those the merge would apply ([`delivery::delivered`]).
    pub plans: usize,
    /// Why the projects applied by comment are not done yet, each prefixed with its project:
    /// planned at the head with changes but not applied, or not planned at the head. Empty
    /// when each is applied at the head or its head plan has no changes.
    pub to_apply: Vec<String>,
    /// How many projects are applied by comment.
    pub by_comment: usize,
}

/// A merged pull request's delivery, prepared before its plans are discarded.
pub(super) struct Prepared {
    delivery: NewDelivery,
    projects: Vec<Project>,
    base: CommitSha,
}

impl Prepared {
    /// The projects whose reviewed plan (for the pull request's head) the delivery compares
    /// the merge commit's plan with.
    pub(super) fn reviewed_plans(&self) -> Vec<(ProjectDir, Workspace)> {
        self.delivery
            .reviewed
            .iter()
            .filter(|r| r.plan_sha256.is_some())
            .map(|r| (r.dir.clone(), r.workspace.clone()))
            .collect()
    }
}

impl Bot {
    /// The base branch's configuration at `base`, the tip of `base_ref` (`None`: none, or none
    /// that parses).
    pub(super) async fn base_config(
        &self,
        repo: &RepoName,
        base_ref: &str,
        git: &crate::adapters::git::GitRepo,
        base: &CommitSha,
    ) -> Result<Option<RepoConfig>, EventError> {
        let (git, base, rules) = (git.clone(), base.clone(), self.repo_rules(repo, base_ref));
        self.read_bounded(move || Ok(load_config_at(&git, &base, &rules)?.0))
            .await
    }

    /// The mirror with the merged pull request fetched. A repository whose base configuration
    /// (as the mirror last saw it) applies nothing after merge has nothing to prepare, so a
    /// failed fetch there is no failed delivery: `None`.
    async fn fetch_merged(
        &self,
        ask: &Ask<'_>,
        pr: &PullRequestInfo,
        pull: &crate::app::ports::PullDetails,
    ) -> Result<Option<crate::adapters::git::GitRepo>, EventError> {
        match self.fetch(ask.repo, pull).await {
            Ok(git) => Ok(Some(git)),
            Err(e) => match self
                .known_base_config(ask.repo, &pr.base_ref, &pr.base_sha)
                .await
            {
                Some(config) if !delivery::uses_merge(config.as_ref()) => {
                    tracing::info!(repo = %ask.repo.name, pr = pr.number.get(), error = %e, "merged; fetch failed, but nothing applies after merge");
                    Ok(None)
                }
                _ => Err(e),
            },
        }
    }

    /// The base configuration at `base` as the mirror already holds it (no fetch); `None` when
    /// the mirror lacks the commit or it cannot be read.
    async fn known_base_config(
        &self,
        repo: &crate::core::event::RepoRef,
        base_ref: &str,
        base: &CommitSha,
    ) -> Option<Option<RepoConfig>> {
        let git = crate::adapters::git::GitRepo::mirror(&self.mirrors.path(&repo.name))
            .ok()?
            .with_limits(self.settings.limits);
        if !git.has_commit(base) {
            return None;
        }
        self.base_config(&repo.name, base_ref, &git, base)
            .await
            .ok()
    }

    /// The projects of a pull request's plan run applied only after merge (`on_merge` in the
    /// base configuration at the run's base): their plan comments point to the merge. Empty
    /// when the configuration cannot be read (the comment then offers `apply`, which the gate
    /// refuses for an `on_merge` project anyway).
    pub async fn on_merge_projects(&self, run: &RunRow, jobs: &[JobRow]) -> BTreeSet<ProjectName> {
        let config = match crate::adapters::git::GitRepo::mirror(&self.mirrors.path(&run.repo)) {
            Ok(git) => {
                let git = git.with_limits(self.settings.limits);
                self.base_config(&run.repo, &run.base_ref, &git, &run.base_sha)
                    .await
                    .ok()
                    .flatten()
            }
            Err(_) => None,
        };
        if !delivery::uses_merge(config.as_ref()) {
            return BTreeSet::new();
        }
        jobs.iter()
            .filter(|j| {
                delivery::mode_of(config.as_ref(), &j.project_dir, &j.workspace)
                    == delivery::ApplyMode::OnMerge
            })
            .map(|j| j.project_name.clone())
            .collect()
    }

    /// A review changed: the `sluice/apply-gate` check of the pull request is evaluated again.
    pub(super) async fn on_review(&self, repo: &RepoName, pr: PrNumber) -> Result<(), EventError> {
        match self.apply_gate_status(repo, pr).await {
            Ok(Some(item)) => self.say(Effects::new(vec![item], vec![])).await,
            Ok(None) => Ok(()),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "apply gate: not evaluated");
                Ok(())
            }
        }
    }

    /// The `sluice/apply-gate` status of an open pull request on its head, when the base
    /// branch applies some project after merge: every project its merge would apply
    /// ([`delivery::delivered`]: `on_merge`, and `comment_or_merge` not applied by comment) must
    /// have a plan for the head that passes the gate as `apply` would (the base branch's
    /// requirements and policies; no lock is needed, the merge takes it). `None` when no
    /// project is applied after merge.
    pub async fn apply_gate_status(
        &self,
        repo: &RepoName,
        pr: PrNumber,
    ) -> anyhow::Result<Option<OutboxItem>> {
        let Some(gate) = self.apply_gate(repo, pr).await? else {
            return Ok(None);
        };
        if gate.plans + gate.by_comment == 0 {
            return Ok(None);
        }
        let (state, description) = match gate.reasons.iter().chain(&gate.to_apply).next() {
            Some(first) => (StatusState::Failure, say::gate_failed(first)),
            None => (
                StatusState::Success,
                say::gate_passed_all(gate.plans, gate.by_comment),
            ),
        };
        Ok(Some(OutboxItem::status(
            repo,
            pr,
            &gate.pull.head_sha,
            StatusContext::ApplyGate,
            state,
            description,
        )))
    }

    /// The gate of an open pull request for the projects applied after merge: why it does not
    /// pass (empty: it passes), each reason prefixed with its project. `None` when the pull
    /// request is not open or the base branch applies no project after merge.
    pub(super) async fn apply_gate(
        &self,
        repo: &RepoName,
        pr: PrNumber,
    ) -> anyhow::Result<Option<PrGate>> {
        let pull = self.github.get_pull(repo, pr).await?;
        if pull.state != PullState::Open {
            return Ok(None);
        }
        let git = crate::adapters::git::GitRepo::mirror(&self.mirrors.path(repo))?
            .with_limits(self.settings.limits);
        let base = Self::base_tip(&git, &pull);
        let config = self
            .base_config(repo, &pull.base_ref, &git, &base)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let affected = self
            .repo_state(repo, &pull.base_ref, &git, &base, &pull.head_sha)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .affected_projects()
            .projects;
        let current = self.store.current_plans(repo, pr).await?;
        let (to_apply, by_comment) = self
            .comment_applied(
                repo,
                pr,
                config.as_ref(),
                &affected,
                &pull.head_sha,
                &current,
            )
            .await?;
        let delivered = match delivery::uses_merge(config.as_ref()) {
            true => {
                self.delivered_projects(
                    repo,
                    pr,
                    config.as_ref(),
                    affected,
                    &pull.head_sha,
                    &current,
                )
                .await?
            }
            false => Vec::new(),
        };
        let policies = self
            .policy_set(repo, &git, &base)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let base_rules = self
            .base_rules(repo, &pull.base_ref, &git, &base)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let reviews = self.github.list_reviews(repo, pr).await?;
        let overrides = self
            .overrides(repo, &pull)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let teams = self.teams.resolve(&*self.github, &policies.policies).await;
        let in_force = apply_gate::approvals(&reviews, &pull.author);
        let facts = PrFacts {
            open: true,
            head_sha: &pull.head_sha,
            author: &pull.author,
            reviews: &reviews,
            mergeable_state: Some(pull.mergeable_state.as_str()),
            undiverged: git.is_ancestor(&base, &pull.head_sha).ok(),
        };
        let mut reasons: Vec<String> = Vec::new();
        for (affected, plan) in &delivered {
            // Nothing reviewed: the merge would not be applied.
            let Some(plan) = plan else {
                reasons.push(format!("`{}`: {}", affected.name, say::NO_PLAN_AT_HEAD));
                continue;
            };
            let Some(project) = self.project_of_plan(plan).await else {
                reasons.push(format!("`{}`: its plan cannot be read", plan.project_name));
                continue;
            };
            let requirements = base_rules
                .identity(&project.dir, &project.workspace)
                .requirements;
            let plan_facts = PlanFacts {
                head_sha: plan.head_sha.clone(),
                recorded_sha256: plan.plan_sha256.clone(),
                current_sha256: plan_files::sha256(&plan.plan_file).ok(),
            };
            let refusals = apply_gate::refusals(
                &facts,
                &ProjectFacts {
                    requirements: &requirements,
                    plan: Some(&plan_facts),
                    holds_locks: true,
                },
            );
            reasons.extend(
                refusals
                    .into_iter()
                    .map(|r| format!("`{}`: {r}", plan.project_name)),
            );
            if policies.broken {
                reasons.push(policies.broken_message());
            } else if !policies.policies.is_empty() {
                let parsed = plan_files::read_json(&plan.plan_file);
                let base_names = policies.base_names_of(&project);
                let input = PolicyInput {
                    stage: Stage::Apply,
                    actor: &pull.author.login,
                    author: &pull.author.login,
                    target_branch: &pull.base_ref,
                    head_sha: &pull.head_sha,
                    project: &project,
                    base_names: &base_names,
                    plan: parsed.as_ref(),
                    approvals: &in_force,
                    teams: &teams,
                    overrides: &overrides,
                };
                let in_force_policies = self
                    .policies_on_plan(&policies.policies, &plan.plan_file)
                    .await;
                reasons.extend(
                    policy::evaluate(&in_force_policies, &input)
                        .iter()
                        .filter(|d| d.is_blocking())
                        .map(|d| {
                            format!(
                                "`{}`: {}",
                                plan.project_name,
                                say::policy_refused(&d.policy)
                            )
                        }),
                );
            }
        }
        let plans = delivered.len();
        Ok(Some(PrGate {
            pull,
            reasons,
            plans,
            to_apply,
            by_comment,
        }))
    }

    /// The projects of `affected` applied by comment (not [`delivery::delivered`]) that are not
    /// done at `head`: why each is not (`` `name`: … ``), and how many are applied by comment.
    /// Done: applied at the head, or its plan for the head has no changes.
    async fn comment_applied(
        &self,
        repo: &RepoName,
        pr: PrNumber,
        config: Option<&RepoConfig>,
        affected: &[Project],
        head: &CommitSha,
        current: &[PlanRow],
    ) -> anyhow::Result<(Vec<String>, usize)> {
        let applied = self.store.applied_plans(repo, pr).await?;
        let same = |r: &PlanRow, p: &Project| r.project_dir == p.dir && r.workspace == p.workspace;
        let mut reasons = Vec::new();
        let mut count = 0;
        for p in affected {
            let at_head = current.iter().find(|r| same(r, p) && &r.head_sha == head);
            let by_comment = applied.iter().any(|r| same(r, p));
            let mode = delivery::mode_of(config, &p.dir, &p.workspace);
            if delivery::delivered(mode, at_head.is_some(), by_comment) {
                continue;
            }
            count += 1;
            if applied.iter().any(|r| same(r, p) && &r.head_sha == head) {
                continue;
            }
            match at_head {
                Some(plan) if plan.summary.as_ref().is_some_and(|s| !s.has_changes()) => {}
                Some(_) => reasons.push(format!("`{}`: {}", p.name, say::NOT_APPLIED_YET)),
                None if by_comment => {
                    reasons.push(format!("`{}`: {}", p.name, say::NOT_PLANNED_SINCE_APPLY))
                }
                None => reasons.push(format!("`{}`: {}", p.name, say::NOT_PLANNED_AT_HEAD)),
            }
        }
        Ok((reasons, count))
    }

    /// What of a merged pull request applies after merge, and what was reviewed of it; `None`
    /// when no project does.
    pub(super) async fn prepare_delivery(
        &self,
        ask: &Ask<'_>,
        pr: &PullRequestInfo,
    ) -> Result<Option<Prepared>, EventError> {
        let pull = super::pull_request::pull_from_event(pr, ask.repo);
        let Some(git) = self.fetch_merged(ask, pr, &pull).await? else {
            return Ok(None);
        };
        let Some(merge) = pr.merge_commit_sha.clone() else {
            tracing::warn!(repo = %ask.repo.name, pr = pr.number.get(), "merged without a merge commit SHA");
            return Ok(None);
        };
        // The base branch as the merge found it: the merge commit's first parent.
        let base = git
            .resolve(&format!("{merge}^1"))
            .unwrap_or_else(|_| pr.base_sha.clone());
        let config = self
            .base_config(&ask.repo.name, &pr.base_ref, &git, &base)
            .await?;
        // Nothing applies after merge: no project state, reviews or policies to read.
        if !delivery::uses_merge(config.as_ref()) {
            return Ok(None);
        }
        let state = self
            .repo_state(&ask.repo.name, &pr.base_ref, &git, &base, &merge)
            .await?;
        let plans = self
            .store
            .current_plans(&ask.repo.name, pr.number)
            .await
            .map_err(EventError::Retry)?;
        let delivered = self
            .delivered_projects(
                &ask.repo.name,
                pr.number,
                config.as_ref(),
                state.affected_projects().projects,
                &pr.head_sha,
                &plans,
            )
            .await
            .map_err(EventError::Retry)?;
        if delivered.is_empty() {
            return Ok(None);
        }
        let policies = self.policy_set(&ask.repo.name, &git, &base).await?;
        let base_rules = self
            .base_rules(&ask.repo.name, &pr.base_ref, &git, &base)
            .await?;
        let reviews = self.github.list_reviews(&ask.repo.name, pr.number).await?;
        let overrides = self.overrides(&ask.repo.name, &pull).await?;
        let teams = self.teams.resolve(&*self.github, &policies.policies).await;
        let in_force = apply_gate::approvals(&reviews, &pr.author);
        let approvals = audit_approvals(&in_force);
        let facts = PrFacts {
            open: true,
            head_sha: &pr.head_sha,
            author: &pr.author,
            reviews: &reviews,
            // GitHub merged it: it was mergeable.
            mergeable_state: Some("clean"),
            undiverged: git.is_ancestor(&base, &pr.head_sha).ok(),
        };
        let mut reviewed = Vec::new();
        for (p, plan) in &delivered {
            let plan = *plan;
            let requirements = base_rules.identity(&p.dir, &p.workspace).requirements;
            let plan_facts = plan.map(|r| PlanFacts {
                head_sha: r.head_sha.clone(),
                recorded_sha256: r.plan_sha256.clone(),
                current_sha256: plan_files::sha256(&r.plan_file).ok(),
            });
            let parsed = plan.and_then(|r| plan_files::read_json(&r.plan_file));
            let mut refusals = if plan.is_some() {
                apply_gate::refusals(
                    &facts,
                    &ProjectFacts {
                        requirements: &requirements,
                        plan: plan_facts.as_ref(),
                        holds_locks: true,
                    },
                )
            } else {
                Vec::new()
            };
            let mut decisions = Vec::new();
            if plan.is_none() {
                // Nothing reviewed: that is the reason (`merge_verdict`), not what the policies
                // say of a plan that does not exist.
            } else if policies.broken {
                refusals.push(policies.broken_message());
            } else if !policies.policies.is_empty() {
                let base_names = policies.base_names_of(p);
                let input = PolicyInput {
                    stage: Stage::Apply,
                    actor: &ask.actor.login,
                    author: &pr.author.login,
                    target_branch: &pr.base_ref,
                    head_sha: &pr.head_sha,
                    project: p,
                    base_names: &base_names,
                    plan: parsed.as_ref(),
                    approvals: &in_force,
                    teams: &teams,
                    overrides: &overrides,
                };
                let on_plan = self.policies_on_row(&policies.policies, plan).await;
                let ds = policy::evaluate(&on_plan, &input);
                refusals.extend(
                    ds.iter()
                        .filter(|d| d.is_blocking())
                        .map(|d| say::policy_refused(&d.policy)),
                );
                decisions = policies.audit(&ds);
            }
            reviewed.push(Reviewed {
                project: p.name.clone(),
                dir: p.dir.clone(),
                workspace: p.workspace.clone(),
                changes: parsed.as_ref().map(delivery::changes),
                plan_sha256: plan.map(|r| r.plan_sha256.clone()),
                refusals,
                approvals: approvals.clone(),
                policy: decisions,
            });
        }
        let check = config
            .as_ref()
            .map(|c| c.merge_plan_check)
            .unwrap_or_default();
        Ok(Some(Prepared {
            delivery: NewDelivery {
                repo: ask.repo.name.clone(),
                pr: pr.number,
                merge_sha: merge,
                reviewed_head: pr.head_sha.clone(),
                event_id: format!("{}:merge", ask.delivery),
                check,
                reviewed,
            },
            projects: delivered.into_iter().map(|(p, _)| p).collect(),
            base,
        }))
    }

    /// The projects of `affected` (changed by a pull request) that its merge applies
    /// ([`delivery::delivered`]), each with its current plan for `head` (`None`: nothing was
    /// reviewed).
    pub(super) async fn delivered_projects<'p>(
        &self,
        repo: &RepoName,
        pr: PrNumber,
        config: Option<&RepoConfig>,
        affected: Vec<Project>,
        head: &CommitSha,
        plans: &'p [PlanRow],
    ) -> anyhow::Result<Vec<(Project, Option<&'p PlanRow>)>> {
        let applied = self.store.applied_plans(repo, pr).await?;
        let same = |r: &PlanRow, p: &Project| r.project_dir == p.dir && r.workspace == p.workspace;
        Ok(affected
            .into_iter()
            .filter_map(|p| {
                let plan = plans.iter().find(|r| same(r, &p) && &r.head_sha == head);
                let by_comment = applied.iter().any(|r| same(r, &p));
                let mode = delivery::mode_of(config, &p.dir, &p.workspace);
                delivery::delivered(mode, plan.is_some(), by_comment).then_some((p, plan))
            })
            .collect())
    }

    /// Records the delivery and queues the plan of the merge commit (which waits behind the
    /// locks of an earlier merge's delivery of the same projects).
    pub(super) async fn start_delivery(
        &self,
        ask: &Ask<'_>,
        pr: &PullRequestInfo,
        prepared: Prepared,
    ) -> Result<(), EventError> {
        let Prepared {
            delivery,
            projects,
            base,
        } = prepared;
        let merge = delivery.merge_sha.clone();
        let row = self
            .store
            .insert_delivery(delivery, clock::now())
            .await
            .map_err(EventError::Retry)?;
        let locks: Vec<LockKey> = projects
            .iter()
            .map(|p| LockKey {
                dir: p.dir.clone(),
                workspace: p.workspace.clone(),
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let n = projects.len();
        let run = NewRun {
            repo: ask.repo.name.clone(),
            pr: pr.number,
            kind: JobKind::Plan,
            trigger: Trigger::Merge,
            head_sha: merge.clone(),
            base_sha: base,
            base_ref: pr.base_ref.clone(),
            clone_url: ask.repo.clone_url.clone(),
            installation_id: ask.repo.installation_id,
            actor: ask.actor.clone(),
            comment_id: None,
            event_id: Some(row_event(&row)),
            extra_args: vec![],
            verbose: false,
            jobs: projects.iter().map(NewJob::plan).collect(),
            locks: locks.clone(),
        };
        let announce = |_: crate::app::ports::store::Opening<'_>| {
            Effects::new(
                vec![ask.status(
                    &merge,
                    StatusContext::Apply,
                    StatusState::Pending,
                    say::delivering(n),
                )],
                vec![
                    ask.record(AuditAction::LockAcquired, AuditResult::Success)
                        .head(&merge)
                        .detail("reviewed_head", pr.head_sha.as_str())
                        .numbered("lock", &locks),
                ],
            )
        };
        let started = self
            .store
            .create_run(run, &announce, clock::now())
            .await
            .map_err(EventError::Retry)?;
        let run_id = match started {
            RunStart::Queued { run_id }
            | RunStart::Waiting { run_id, .. }
            | RunStart::AlreadyExists { run_id } => run_id,
            RunStart::Refused { reason } => {
                return Err(EventError::Permanent(anyhow::anyhow!(
                    "merge plan refused: {reason}"
                )));
            }
        };
        self.store
            .set_delivery_run(row.id, JobKind::Plan, run_id)
            .await
            .map_err(EventError::Retry)?;
        tracing::info!(repo = %ask.repo.name, pr = pr.number.get(), run_id, merge = %merge.short(), "delivery after merge queued");
        self.wake(true);
        Ok(())
    }

    /// The rest of a delivery when one of its runs ended: after the merge plan, the comparison
    /// and the applies; after the applies, the outcome. Returns what the run's report adds (to
    /// be written with it). An error leaves the run unreported: the sweeper comes back.
    pub async fn after_merge_run(&self, run: &RunRow, jobs: &[JobRow]) -> anyhow::Result<Effects> {
        let d =
            self.store.delivery_of_run(run.id).await?.ok_or_else(|| {
                anyhow::anyhow!("the delivery of run {} is not recorded yet", run.id)
            })?;
        match run.kind {
            JobKind::Plan => self.after_merge_plan(run, jobs, &d).await,
            JobKind::Apply => self.after_merge_apply(run, jobs, &d).await,
            JobKind::State => anyhow::bail!("run {} of a merge is a state run", run.id),
        }
    }

    async fn after_merge_plan(
        &self,
        run: &RunRow,
        jobs: &[JobRow],
        d: &DeliveryRow,
    ) -> anyhow::Result<Effects> {
        let plans = self.store.current_plans(&run.repo, run.pr).await?;
        let mut not_applied: Vec<NotApplied> = Vec::new();
        let mut states = Vec::new();
        let mut to_apply: Vec<(Project, &PlanRow, &Reviewed)> = Vec::new();
        for job in jobs {
            let Some(r) = d
                .reviewed
                .iter()
                .find(|r| r.dir == job.project_dir && r.workspace == job.workspace)
            else {
                continue;
            };
            let plan = plans.iter().find(|p| p.job_id == job.id);
            let project = match &job.payload {
                Ok(crate::app::ports::store::JobPayload::Plan(p)) => Some(p.project.clone()),
                _ => None,
            };
            let (Some(plan), Some(project), JobState::Succeeded) = (plan, project, job.state)
            else {
                not_applied.push(refused(r, vec![say::PLAN_FAILED.into()]));
                states.push((r.dir.clone(), r.workspace.clone(), DeliveryState::Refused));
                continue;
            };
            let merged = plan_files::read_json(&plan.plan_file).map(|p| delivery::changes(&p));
            if merged.as_ref().is_some_and(Vec::is_empty) {
                states.push((r.dir.clone(), r.workspace.clone(), DeliveryState::Nothing));
                continue;
            }
            match self
                .merge_verdict(run, d, r, &project, plan, merged.as_deref())
                .await
            {
                Ok(()) => to_apply.push((project, plan, r)),
                Err(reasons) => {
                    not_applied.push(refused(r, reasons));
                    states.push((r.dir.clone(), r.workspace.clone(), DeliveryState::Refused));
                }
            }
        }
        // Projects that depend on a refused one are blocked; the others apply in order.
        let projects: Vec<Project> = to_apply.iter().map(|(p, _, _)| p.clone()).collect();
        let config = match crate::adapters::git::GitRepo::mirror(&self.mirrors.path(&run.repo)) {
            Ok(git) => self
                .base_config(
                    &run.repo,
                    &run.base_ref,
                    &git.with_limits(self.settings.limits),
                    &run.base_sha,
                )
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?,
            Err(e) => return Err(e),
        };
        let groups = delivery::groups_of(config.as_ref(), &projects);
        let (order, deps) = delivery::apply_order(&projects, &groups);
        let mut failed: BTreeSet<ProjectName> = not_applied
            .iter()
            .filter_map(|n| ProjectName::new(&n.project).ok())
            .collect();
        let mut apply_jobs = Vec::new();
        for i in order {
            let (project, plan, r) = &to_apply[i];
            if let Some(by) = delivery::blocked_by(&project.name, &deps, &failed) {
                not_applied.push(refused(r, vec![say::blocked_by(by.as_str())]));
                states.push((r.dir.clone(), r.workspace.clone(), DeliveryState::Blocked));
                failed.insert(project.name.clone());
                continue;
            }
            states.push((r.dir.clone(), r.workspace.clone(), DeliveryState::Applying));
            apply_jobs.push(NewJob::apply(
                plan.id,
                ApplyContext {
                    project: project.clone(),
                    approvals: r.approvals.clone(),
                    policy: r.policy.clone(),
                    // The merge commit's own plan: never a destroy plan, never of another commit.
                    destroy: false,
                    config_commit: None,
                },
            ));
        }
        let mut effects = self.not_applied_effects(run, d, &not_applied).await;
        if apply_jobs.is_empty() {
            self.store
                .set_delivery_states(d.id, &states, clock::now())
                .await?;
            self.end_delivery(run, d, not_applied.is_empty(), &mut effects)
                .await?;
            return Ok(effects);
        }
        let new_run = NewRun {
            kind: JobKind::Apply,
            event_id: Some(format!("merge-apply:{}", d.id)),
            jobs: apply_jobs,
            locks: vec![],
            ..new_run_like(run)
        };
        let none = |_: crate::app::ports::store::Opening<'_>| Effects::default();
        let started = self.store.create_run(new_run, &none, clock::now()).await?;
        let apply_run = match started {
            RunStart::Queued { run_id }
            | RunStart::Waiting { run_id, .. }
            | RunStart::AlreadyExists { run_id } => run_id,
            RunStart::Refused { reason } => anyhow::bail!("merge apply refused: {reason}"),
        };
        self.store
            .set_delivery_run(d.id, JobKind::Apply, apply_run)
            .await?;
        self.store
            .set_delivery_states(d.id, &states, clock::now())
            .await?;
        self.wake(true);
        Ok(effects)
    }

    /// Whether the merge commit's plan of one project may be applied: the gate held at merge,
    /// there was a reviewed plan, and the new plan matches it (strict) or passes the policies
    /// (replan). `Err` with the reasons when not.
    async fn merge_verdict(
        &self,
        run: &RunRow,
        d: &DeliveryRow,
        r: &Reviewed,
        project: &Project,
        plan: &PlanRow,
        merged: Option<&[delivery::Change]>,
    ) -> Result<(), Vec<String>> {
        // No reviewed plan is the reason, whatever else would refuse it.
        let Some(reviewed) = &r.changes else {
            return Err(vec![say::NO_REVIEWED_PLAN.into()]);
        };
        if !r.refusals.is_empty() {
            return Err(r.refusals.clone());
        }
        let merged = merged.unwrap_or_default();
        let Comparison::Differs {
            reviewed_only,
            merged_only,
        } = delivery::compare(reviewed, merged)
        else {
            return Ok(());
        };
        if d.check == MergePlanCheck::Strict {
            return Err(vec![say::plan_differs(&reviewed_only, &merged_only, false)]);
        }
        match self.replan_policies(run, project, plan).await {
            Ok(blocking) if blocking.is_empty() => Ok(()),
            Ok(blocking) => {
                let mut reasons = vec![say::plan_differs(&reviewed_only, &merged_only, true)];
                reasons.extend(blocking.iter().map(|p| say::policy_refused(p)));
                Err(reasons)
            }
            Err(e) => Err(vec![format!("the policies could not be evaluated: {e:#}")]),
        }
    }

    /// The base branch's blocking policies on the merge commit's plan (replan mode).
    async fn replan_policies(
        &self,
        run: &RunRow,
        project: &Project,
        plan: &PlanRow,
    ) -> anyhow::Result<Vec<String>> {
        let git = crate::adapters::git::GitRepo::mirror(&self.mirrors.path(&run.repo))?
            .with_limits(self.settings.limits);
        let set = self
            .policy_set(&run.repo, &git, &run.base_sha)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if set.broken {
            return Ok(vec![set.broken_message()]);
        }
        let parsed = plan_files::read_json(&plan.plan_file);
        let teams = self.teams.resolve(&*self.github, &set.policies).await;
        let base_names = set.base_names_of(project);
        let input = PolicyInput {
            stage: Stage::Apply,
            actor: &run.actor.login,
            author: &run.actor.login,
            target_branch: &run.base_ref,
            head_sha: &run.head_sha,
            project,
            base_names: &base_names,
            plan: parsed.as_ref(),
            approvals: &[],
            teams: &teams,
            overrides: &[],
        };
        let on_plan = self.policies_on_plan(&set.policies, &plan.plan_file).await;
        Ok(policy::evaluate(&on_plan, &input)
            .iter()
            .filter(|d| d.is_blocking())
            .map(|d| d.policy.clone())
            .collect())
    }

    async fn after_merge_apply(
        &self,
        run: &RunRow,
        jobs: &[JobRow],
        d: &DeliveryRow,
    ) -> anyhow::Result<Effects> {
        let mut not_applied = Vec::new();
        let mut states = Vec::new();
        for job in jobs {
            let state = match job.state {
                JobState::Succeeded => DeliveryState::Applied,
                JobState::Interrupted => DeliveryState::Interrupted,
                JobState::Cancelled => DeliveryState::Blocked,
                _ => DeliveryState::Failed,
            };
            if state != DeliveryState::Applied {
                let why = match (&job.report, state) {
                    (Some(Ok(JobReport::Skipped(why))), _) => why.clone(),
                    (_, DeliveryState::Interrupted) => {
                        "the apply was interrupted (Sluice stopped while it ran); it is not run again by itself: check the state and fix forward".to_string()
                    }
                    _ => "the apply failed (see the apply output)".to_string(),
                };
                not_applied.push(NotApplied {
                    project: job.project_name.to_string(),
                    reasons: vec![why],
                });
            }
            states.push((job.project_dir.clone(), job.workspace.clone(), state));
        }
        self.store
            .set_delivery_states(d.id, &states, clock::now())
            .await?;
        let mut effects = self.not_applied_effects(run, d, &not_applied).await;
        self.end_delivery(run, d, not_applied.is_empty(), &mut effects)
            .await?;
        Ok(effects)
    }

    /// The comment, the failed `sluice/apply` on the merge commit, the audit entries and the
    /// notification of projects not applied (nothing when there are none).
    async fn not_applied_effects(
        &self,
        run: &RunRow,
        d: &DeliveryRow,
        items: &[NotApplied],
    ) -> Effects {
        if items.is_empty() {
            return Effects::default();
        }
        // `rollback` is offered only for what it would accept: a PR Sluice applied some of.
        let revertable = self
            .pr_applied_by_sluice(&run.repo, run.pr)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %format!("{e:#}"), "delivery: the audit log could not be read");
                false
            });
        let outbox = vec![
            OutboxItem::comment(
                &run.repo,
                run.pr,
                say::not_applied(&d.merge_sha, items, revertable),
            ),
            OutboxItem::status(
                &run.repo,
                run.pr,
                &d.merge_sha,
                StatusContext::Apply,
                StatusState::Failure,
                say::NOT_APPLIED,
            ),
        ];
        let audit = items
            .iter()
            .map(|i| {
                let mut r = AuditRecord::new(
                    AuditAction::ApplyRefused,
                    AuditActor::of(&run.actor),
                    AuditResult::Refused,
                )
                .pr(&run.repo, run.pr)
                .base(&run.base_sha)
                .head(&d.merge_sha)
                .detail("reviewed_head", d.reviewed_head.as_str())
                .numbered("reason", &i.reasons);
                r.project = Some(i.project.clone());
                r.event_id = run.event_id.clone();
                r
            })
            .collect();
        if let Some(drift) = &self.drift {
            let text = say::notification_text(&run.repo.full(), run.pr.get(), &d.merge_sha, items);
            if let Err(e) = drift.notify(&run.repo, &text).await {
                tracing::warn!(error = %format!("{e:#}"), "delivery: the notification could not be queued");
            }
        } else {
            tracing::warn!(repo = %run.repo, pr = run.pr.get(), "delivery failed; no notification channel (drift is off)");
        }
        Effects::new(outbox, audit)
    }

    /// The delivery is over: its locks are released (before the report is written, so a crash
    /// in between only releases nothing twice), and a delivery with nothing to apply says so.
    async fn end_delivery(
        &self,
        run: &RunRow,
        d: &DeliveryRow,
        ok: bool,
        effects: &mut Effects,
    ) -> anyhow::Result<()> {
        if ok && run.kind == JobKind::Plan {
            effects.outbox.push(OutboxItem::status(
                &run.repo,
                run.pr,
                &d.merge_sha,
                StatusContext::Apply,
                StatusState::Success,
                "nothing to apply after merge",
            ));
        }
        let record = AuditRecord::new(
            AuditAction::LockReleased,
            AuditActor::system(&self.settings.bot_name),
            AuditResult::Success,
        )
        .pr(&run.repo, run.pr)
        .head(&d.merge_sha);
        let (_, started) = self
            .store
            .release_pr_locks(
                &run.repo,
                run.pr,
                Effects::new(vec![], vec![record]),
                clock::now(),
            )
            .await?;
        self.wake(!started.is_empty());
        Ok(())
    }
}

/// The approvals in force, as the audit log records them.
fn audit_approvals(in_force: &[apply_gate::Approval]) -> Vec<AuditApproval> {
    in_force
        .iter()
        .map(|a| AuditApproval {
            login: a.login.clone(),
            user_id: a.user_id,
            review_id: a.review_id,
            submitted_at: a.submitted_at.clone(),
        })
        .collect()
}

/// The event id of a delivery's merge plan run.
fn row_event(row: &DeliveryRow) -> String {
    format!("merge-plan:{}", row.id)
}

fn refused(r: &Reviewed, reasons: Vec<String>) -> NotApplied {
    NotApplied {
        project: r.project.to_string(),
        reasons,
    }
}

/// A new run of the same pull request, commits and actor as `run`.
fn new_run_like(run: &RunRow) -> NewRun {
    NewRun {
        repo: run.repo.clone(),
        pr: run.pr,
        kind: run.kind,
        trigger: run.trigger,
        head_sha: run.head_sha.clone(),
        base_sha: run.base_sha.clone(),
        base_ref: run.base_ref.clone(),
        clone_url: run.clone_url.clone(),
        installation_id: run.installation_id,
        actor: run.actor.clone(),
        comment_id: None,
        event_id: None,
        extra_args: vec![],
        verbose: false,
        jobs: vec![],
        locks: vec![],
    }
}
