//! `approve_policies`: an owner overrides failing `require_override` policies for the targeted
//! projects at the current head commit — named, audited, and cleared by the next commit.
//! Refused when a targeted plan was made after the comment: the owner cannot have read it.

use super::{Bot, CommandRun, EventError};
use crate::adapters::{clock, plan_files};
use crate::app::ports::StatusState;
use crate::app::ports::store::{Effects, OutboxItem, PlanRow, PolicyOverrideRow, StatusContext};
use crate::core::apply_gate;
use crate::core::audit::{AuditAction, AuditPolicyDecision, AuditRecord, AuditResult};
use crate::core::command::CommandKind;
use crate::core::freshness;
use crate::core::policy::{self, PolicyInput, PolicyVerdict, Stage};
use crate::core::reply;
use crate::core::reply::approve_policies::Line;
use crate::core::target;
use crate::core::types::UnixMs;

impl Bot {
    pub(super) async fn approve_policies(&self, run: &CommandRun<'_>) -> Result<(), EventError> {
        let (ask, pull) = (&run.ask, run.pull);
        let bot = &self.settings.bot_name;
        let plans: Vec<PlanRow> = self
            .store
            .current_plans(&ask.repo.name, pull.number)
            .await
            .map_err(EventError::Retry)?
            .into_iter()
            .filter(|p| p.head_sha == pull.head_sha)
            .collect();
        let targeted = target::select(&plans, &run.cmd.targets)
            .map_err(|e| EventError::Permanent(e.into()))?;
        if targeted.is_empty() {
            let body = reply::approve_policies::nothing_to_approve(&pull.head_sha, bot);
            return self.reply(ask, body).await;
        }
        if let Some(newer) = targeted
            .iter()
            .find(|p| freshness::plan_after_comment(run.written_at, p.created_at))
        {
            let why = reply::approve_policies::plan_after_comment(
                newer.project_name.as_str(),
                &freshness::plan_after_comment_reason("approve_policies", bot),
            );
            let body = reply::comment::not_run(CommandKind::ApprovePolicies, &why);
            return self.refuse(ask, &pull.head_sha, body, &why).await;
        }
        let git = self.fetch(ask.repo, pull).await?;
        let base_tip = Self::base_tip(&git, pull);
        let policies = self.policy_set(&ask.repo.name, &git, &base_tip).await?;
        if policies.broken {
            let body = reply::approve_policies::policies_broken(&policies.broken_message());
            return self.reply(ask, body).await;
        }
        let teams = self.teams.resolve(&*self.github, &policies.policies).await;
        let reviews = self
            .github
            .list_reviews(&ask.repo.name, pull.number)
            .await?;
        let in_force = apply_gate::approvals(&reviews, &pull.author);
        let existing = self.overrides(&ask.repo.name, pull).await?;
        let mut rows = Vec::new();
        let mut records = Vec::new();
        let mut lines = Vec::new();
        for plan in targeted {
            let Some(project) = self.project_of_plan(plan).await else {
                continue;
            };
            let parsed = plan_files::read_json(&plan.plan_file);
            let base_names = policies.base_names_of(&project);
            let input = PolicyInput {
                stage: Stage::Apply,
                actor: &ask.actor.login,
                author: &pull.author.login,
                target_branch: &pull.base_ref,
                head_sha: &pull.head_sha,
                project: &project,
                base_names: &base_names,
                plan: parsed.as_ref(),
                approvals: &in_force,
                teams: &teams,
                overrides: &existing,
            };
            let on_plan = self
                .policies_on_plan(&policies.policies, &plan.plan_file)
                .await;
            let decided = policy::plan_overrides(&on_plan, &input, &run.cmd.policy_sets);
            for o in &decided.granted {
                lines.push(Line::Granted {
                    policy: o.policy.clone(),
                    project: project.name.to_string(),
                });
                rows.push(PolicyOverrideRow {
                    repo: ask.repo.name.clone(),
                    pr: pull.number,
                    head_sha: pull.head_sha.clone(),
                    project: project.name.clone(),
                    policy: o.policy.clone(),
                    by_login: ask.actor.login.clone(),
                    by_id: Some(ask.actor.id),
                    created_at: UnixMs::default(),
                });
                let decision = AuditPolicyDecision {
                    policy: o.policy.clone(),
                    outcome: "overridden".into(),
                    reasons: vec![format!("overridden by @{}", ask.actor.login)],
                    source_blob: policies
                        .policies
                        .iter()
                        .find(|p| p.name == o.policy)
                        .and_then(|p| policies.blobs.get(&p.file).cloned()),
                };
                let mut record: AuditRecord = ask
                    .record(AuditAction::PolicyOverride, AuditResult::Success)
                    .base(&base_tip)
                    .head(&pull.head_sha)
                    .project(&project.name, &project.dir, &project.workspace)
                    .policy(vec![decision]);
                record.plan_sha256 = Some(plan.plan_sha256.clone());
                records.push(record);
            }
            for (policy, why) in decided.refused {
                // A refused override is recorded too: who tried to let which policy pass.
                let mut record: AuditRecord = ask
                    .record(AuditAction::PolicyOverride, AuditResult::Refused)
                    .base(&base_tip)
                    .head(&pull.head_sha)
                    .project(&project.name, &project.dir, &project.workspace)
                    .detail("policy", &policy)
                    .detail("reason", &why);
                record.plan_sha256 = Some(plan.plan_sha256.clone());
                records.push(record);
                lines.push(Line::Refused {
                    policy,
                    project: project.name.to_string(),
                    why,
                });
            }
            for policy in decided.unknown {
                lines.push(Line::Unknown { policy });
            }
        }
        let granted = !rows.is_empty();
        let body = reply::approve_policies::answer(&ask.actor.login, &pull.head_sha, &lines, bot);
        let effects = Effects::new(vec![ask.comment(body)], records);
        self.store
            .add_policy_overrides(rows, effects, clock::now())
            .await
            .map_err(EventError::Retry)?;
        if granted {
            // `sluice/policy` says again what fails, now that some failures are overridden.
            let ctx = PolicyContext {
                policies: &policies,
                teams: &teams,
                approvals: &in_force,
            };
            let status = self.policy_status(run, &plans, &ctx).await?;
            self.say(Effects::new(status.into_iter().collect(), vec![]))
                .await?;
        }
        self.wake(false);
        Ok(())
    }

    /// `sluice/policy` for the head's current `plans` as the policies judge them now, with the
    /// overrides in force; `None` when no policy applies to any of them.
    async fn policy_status(
        &self,
        run: &CommandRun<'_>,
        plans: &[PlanRow],
        ctx: &PolicyContext<'_>,
    ) -> Result<Option<OutboxItem>, EventError> {
        let (ask, pull) = (&run.ask, run.pull);
        let overrides = self.overrides(&ask.repo.name, pull).await?;
        let mut verdicts = Vec::new();
        for plan in plans {
            let Some(project) = self.project_of_plan(plan).await else {
                continue;
            };
            let parsed = plan_files::read_json(&plan.plan_file);
            let base_names = ctx.policies.base_names_of(&project);
            let input = PolicyInput {
                stage: Stage::Plan,
                actor: &ask.actor.login,
                author: &pull.author.login,
                target_branch: &pull.base_ref,
                head_sha: &pull.head_sha,
                project: &project,
                base_names: &base_names,
                plan: parsed.as_ref(),
                approvals: ctx.approvals,
                teams: ctx.teams,
                overrides: &overrides,
            };
            let on_plan = self
                .policies_on_plan(&ctx.policies.policies, &plan.plan_file)
                .await;
            verdicts.push(PolicyVerdict::of(&policy::evaluate(&on_plan, &input)));
        }
        Ok(
            reply::status::policy(&verdicts).map(|(verdict, description)| {
                let state = match verdict {
                    PolicyVerdict::Fail => StatusState::Failure,
                    PolicyVerdict::Pending => StatusState::Pending,
                    _ => StatusState::Success,
                };
                ask.status(&pull.head_sha, StatusContext::Policy, state, description)
            }),
        )
    }
}

/// What judging the policies again needs besides the plans.
struct PolicyContext<'a> {
    policies: &'a crate::app::policy::PolicySet,
    teams: &'a policy::TeamMembership,
    approvals: &'a [apply_gate::Approval],
}
