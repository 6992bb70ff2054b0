//! `apply`: the gate checks every targeted saved plan — current head, unchanged since planned,
//! locks held by this pull request, the base branch's apply requirements, written before the
//! comment, and the base branch's policies — then queues the applies, one per project, in
//! order. Or it refuses with every reason of every project and applies nothing.

use std::collections::HashMap;

use super::{Bot, CommandRun, EventError};
use crate::adapters::git::GitRepo;
use crate::adapters::{clock, plan_files};
use crate::app::policy::PolicySet;
use crate::app::ports::StatusState;
use crate::app::ports::store::{
    ApplyContext, Effects, NewJob, NewRun, Opening, PlanRow, RunStart, StatusContext, Trigger,
};
use crate::core::apply_gate::{self, PlanFacts, PrFacts, ProjectFacts};
use crate::core::audit::{AuditAction, AuditApproval, AuditPolicyDecision, AuditResult};
use crate::core::delivery::{self, ApplyMode};
use crate::core::event::Review;
use crate::core::freshness;
use crate::core::job::JobKind;
use crate::core::lock::{LockKey, holds_all};
use crate::core::policy::{self, PolicyInput, Stage};
use crate::core::projects::Project;
use crate::core::reply;
use crate::core::reply::apply::Refusal;
use crate::core::target;
use crate::core::types::CommitSha;

/// A targeted plan and the project it was made for (`None`: unreadable).
struct Targeted<'a> {
    plan: &'a PlanRow,
    project: Option<Project>,
    /// A destroy plan (`plan --destroy`).
    destroy: bool,
    /// The commit the plan was made from, when not the head (a removed project's base).
    config_commit: Option<CommitSha>,
}

/// What the gate found.
struct Gate<'a> {
    base_tip: CommitSha,
    targeted: Vec<Targeted<'a>>,
    refusals: Vec<Refusal>,
    /// Every review of the pull request (GitHub's order).
    reviews: Vec<Review>,
    approvals: Vec<AuditApproval>,
    /// The policy decisions, per project name, as the audit log records them.
    policy: HashMap<String, Vec<AuditPolicyDecision>>,
    /// The policy sections of projects refused by policy.
    policy_sections: Vec<String>,
    /// The base branch's configuration, for the apply order (`execution_order_group`).
    base_config: Option<crate::core::repo_config::RepoConfig>,
}

impl Gate<'_> {
    /// Adds `reasons` to `project`'s refusal.
    fn refuse(&mut self, project: &str, reasons: Vec<String>) {
        match self.refusals.iter_mut().find(|r| r.project == project) {
            Some(r) => r.reasons.extend(reasons),
            None => self.refusals.push(Refusal {
                project: project.to_string(),
                reasons,
            }),
        }
    }
}

impl Bot {
    pub(super) async fn apply(&self, run: &CommandRun<'_>) -> Result<(), EventError> {
        let (ask, pull) = (&run.ask, run.pull);
        let plans = self
            .store
            .current_plans(&ask.repo.name, pull.number)
            .await
            .map_err(EventError::Retry)?;
        let targeted = target::select(&plans, &run.cmd.targets)
            .map_err(|e| EventError::Permanent(e.into()))?;
        if targeted.is_empty() {
            let body = reply::apply::nothing_to_apply(!plans.is_empty(), &self.settings.bot_name);
            return self.reply(ask, body).await;
        }
        let git = self.fetch(ask.repo, pull).await?;
        let mut gate = self.gate(run, &git, targeted).await?;
        let policies = self
            .policy_set(&ask.repo.name, &git, &gate.base_tip)
            .await?;
        self.check_policies(run, &policies, &mut gate).await?;
        if !gate.refusals.is_empty() {
            return self.say(refused(run, &gate)).await;
        }
        self.queue_applies(run, gate).await
    }

    /// The gate without policies: requirements (from the base branch), plan, locks, freshness.
    async fn gate<'p>(
        &self,
        run: &CommandRun<'_>,
        git: &GitRepo,
        targeted: Vec<&'p PlanRow>,
    ) -> Result<Gate<'p>, EventError> {
        let (ask, pull) = (&run.ask, run.pull);
        let base_tip = Self::base_tip(git, pull);
        let base_rules = self
            .base_rules(&ask.repo.name, &pull.base_ref, git, &base_tip)
            .await?;
        let base_config = self
            .base_config(&ask.repo.name, &pull.base_ref, git, &base_tip)
            .await?;
        let reviews: Vec<Review> = self
            .github
            .list_reviews(&ask.repo.name, pull.number)
            .await?;
        let locks = self
            .store
            .locks(Some(&ask.repo.name))
            .await
            .map_err(EventError::Retry)?;
        let facts = PrFacts {
            open: pull.state == crate::app::ports::PullState::Open,
            head_sha: &pull.head_sha,
            author: &pull.author,
            reviews: &reviews,
            mergeable_state: Some(pull.mergeable_state.as_str()),
            undiverged: git.is_ancestor(&base_tip, &pull.head_sha).ok(),
        };
        let mut gate = Gate {
            approvals: apply_gate::approvals(&reviews, &pull.author)
                .into_iter()
                .map(|a| AuditApproval {
                    login: a.login,
                    user_id: a.user_id,
                    review_id: a.review_id,
                    submitted_at: a.submitted_at,
                })
                .collect(),
            reviews: Vec::new(),
            base_tip,
            targeted: Vec::new(),
            refusals: Vec::new(),
            policy: HashMap::new(),
            policy_sections: Vec::new(),
            base_config: base_config.clone(),
        };
        for plan in targeted {
            let job = self.plan_job_of(plan).await;
            let destroy = job.as_ref().is_some_and(|j| j.destroy);
            let config_commit = job.as_ref().and_then(|j| j.config_commit.clone());
            let project = job.map(|j| j.project);
            let Some(p) = &project else {
                gate.refuse(
                    plan.project_name.as_str(),
                    vec![reply::apply::PROJECT_UNREADABLE.into()],
                );
                gate.targeted.push(Targeted {
                    plan,
                    project,
                    destroy,
                    config_commit,
                });
                continue;
            };
            // By the dir the plan ran in and its workspace, never the PR's name for it.
            let requirements = base_rules.identity(&p.dir, &p.workspace).requirements;
            let plan_facts = PlanFacts {
                head_sha: plan.head_sha.clone(),
                recorded_sha256: plan.plan_sha256.clone(),
                current_sha256: plan_files::sha256(&plan.plan_file).ok(),
            };
            let key = LockKey {
                dir: p.dir.clone(),
                workspace: p.workspace.clone(),
            };
            let mut reasons = if delivery::mode_of(base_config.as_ref(), &p.dir, &p.workspace)
                == ApplyMode::OnMerge
            {
                // The one reason: no comment applies it, whatever else holds (an `on_merge`
                // plan takes no lock, so "no longer holds the lock" would only mislead).
                vec![reply::delivery::applies_after_merge(
                    &self.settings.bot_name,
                )]
            } else {
                apply_gate::refusals(
                    &facts,
                    &ProjectFacts {
                        requirements: &requirements,
                        plan: Some(&plan_facts),
                        holds_locks: holds_all(pull.number, &[key], &locks),
                    },
                )
            };
            if freshness::plan_after_comment(run.written_at, plan.created_at) {
                reasons.push(freshness::plan_after_comment_reason(
                    "apply",
                    &self.settings.bot_name,
                ));
            }
            if !reasons.is_empty() {
                gate.refuse(plan.project_name.as_str(), reasons);
            }
            gate.targeted.push(Targeted {
                plan,
                project,
                destroy,
                config_commit,
            });
        }
        gate.reviews = reviews;
        Ok(gate)
    }

    /// The base branch's policies must allow the apply (broken policy files refuse it).
    async fn check_policies(
        &self,
        run: &CommandRun<'_>,
        policies: &PolicySet,
        gate: &mut Gate<'_>,
    ) -> Result<(), EventError> {
        let (ask, pull) = (&run.ask, run.pull);
        if policies.broken {
            let names: Vec<String> = gate
                .targeted
                .iter()
                .map(|t| t.plan.project_name.to_string())
                .collect();
            for name in names {
                gate.refuse(&name, vec![policies.broken_message()]);
            }
            return Ok(());
        }
        if policies.policies.is_empty() {
            return Ok(());
        }
        let teams = self.teams.resolve(&*self.github, &policies.policies).await;
        let overrides = self.overrides(&ask.repo.name, pull).await?;
        let in_force = apply_gate::approvals(&gate.reviews, &pull.author);
        let mut refused = Vec::new();
        for t in &gate.targeted {
            let Some(project) = &t.project else { continue };
            let parsed = plan_files::read_json(&t.plan.plan_file);
            let base_names = policies.base_names_of(project);
            let input = PolicyInput {
                stage: Stage::Apply,
                actor: &ask.actor.login,
                author: &pull.author.login,
                target_branch: &pull.base_ref,
                head_sha: &pull.head_sha,
                project,
                base_names: &base_names,
                plan: parsed.as_ref(),
                approvals: &in_force,
                teams: &teams,
                overrides: &overrides,
            };
            let on_plan = self
                .policies_on_plan(&policies.policies, &t.plan.plan_file)
                .await;
            let decisions = policy::evaluate(&on_plan, &input);
            let name = t.plan.project_name.to_string();
            gate.policy.insert(name.clone(), policies.audit(&decisions));
            if policy::blocks(&decisions) {
                let failing: Vec<String> = decisions
                    .iter()
                    .filter(|d| d.is_blocking())
                    .map(|d| reply::apply::policy_failed(&d.policy))
                    .collect();
                let section =
                    policy::render_section(&decisions, &self.settings.bot_name, &project.name);
                refused.push((name, failing, project.name.to_string(), section));
            }
        }
        for (name, failing, project, section) in refused {
            gate.refuse(&name, failing);
            gate.policy_sections
                .push(reply::apply::policy_section(&project, &section));
        }
        Ok(())
    }

    /// Everything passed: one apply job per plan, in order, holding what the gate relied on.
    async fn queue_applies(&self, run: &CommandRun<'_>, gate: Gate<'_>) -> Result<(), EventError> {
        let (ask, pull) = (&run.ask, run.pull);
        // In `depends_on` order, then the base branch's `execution_order_group`, then plan
        // order. A project whose dependency does not apply is not attempted (the worker checks).
        let projects: Vec<_> = gate
            .targeted
            .iter()
            .filter_map(|t| t.project.clone())
            .collect();
        let groups = delivery::groups_of(gate.base_config.as_ref(), &projects);
        let (order, _) = delivery::apply_order(&projects, &groups);
        let ordered: Vec<&Targeted<'_>> = order
            .iter()
            .filter_map(|&i| {
                gate.targeted.iter().find(|t| {
                    t.project
                        .as_ref()
                        .is_some_and(|p| p.name == projects[i].name)
                })
            })
            .collect();
        let jobs: Vec<NewJob> = ordered
            .into_iter()
            .filter_map(|t| {
                let project = t.project.clone()?;
                let policy = gate
                    .policy
                    .get(t.plan.project_name.as_str())
                    .cloned()
                    .unwrap_or_default();
                Some(NewJob::apply(
                    t.plan.id,
                    ApplyContext {
                        project,
                        approvals: gate.approvals.clone(),
                        policy,
                        destroy: t.destroy,
                        config_commit: t.config_commit.clone(),
                    },
                ))
            })
            .collect();
        let n = jobs.len();
        let new_run = NewRun {
            repo: ask.repo.name.clone(),
            pr: pull.number,
            kind: JobKind::Apply,
            trigger: Trigger::Comment,
            head_sha: pull.head_sha.clone(),
            base_sha: gate.base_tip.clone(),
            base_ref: pull.base_ref.clone(),
            clone_url: ask.repo.clone_url.clone(),
            installation_id: ask.repo.installation_id,
            actor: ask.actor.clone(),
            comment_id: Some(run.comment_id),
            event_id: Some(format!("{}:apply", ask.delivery)),
            extra_args: vec![],
            verbose: run.cmd.verbose,
            jobs,
            locks: vec![],
        };
        let announce = |_: Opening<'_>| {
            Effects::new(
                vec![ask.status(
                    &pull.head_sha,
                    StatusContext::Apply,
                    StatusState::Pending,
                    reply::status::applying(n),
                )],
                vec![],
            )
        };
        let started = self
            .store
            .create_run(new_run, &announce, clock::now())
            .await
            .map_err(EventError::Retry)?;
        if let RunStart::Refused { reason } = started {
            let body = reply::apply::not_started(&ask.actor.login, &reason);
            return self.reply(ask, body).await;
        }
        self.wake(true);
        Ok(())
    }
}

/// The gate's refusal: the comment, the failed status and one audit entry per refused project.
fn refused(run: &CommandRun<'_>, gate: &Gate<'_>) -> Effects {
    let (ask, pull) = (&run.ask, run.pull);
    let records = gate
        .refusals
        .iter()
        .map(|r| {
            let plan = gate
                .targeted
                .iter()
                .find(|t| t.plan.project_name.as_str() == r.project)
                .map(|t| t.plan);
            let mut record = ask
                .record(AuditAction::ApplyRefused, AuditResult::Refused)
                .base(&gate.base_tip)
                .head(&pull.head_sha)
                .policy(gate.policy.get(&r.project).cloned().unwrap_or_default())
                .numbered("reason", &r.reasons);
            record.project = Some(r.project.clone());
            record.dir = plan.map(|p| p.project_dir.to_string());
            record.workspace = plan.map(|p| p.workspace.to_string());
            record.plan_sha256 = plan.map(|p| p.plan_sha256.clone());
            record.plan_entry_seq = plan.and_then(|p| p.audit_seq);
            record.approvals = gate.approvals.clone();
            record
        })
        .collect();
    let body = reply::apply::refused(&gate.refusals, &gate.policy_sections);
    Effects::new(
        vec![
            ask.comment(body),
            ask.status(
                &pull.head_sha,
                StatusContext::Apply,
                StatusState::Failure,
                reply::status::APPLY_REFUSED,
            ),
        ],
        records,
    )
}
