//! GitHub's merge queue (`merge_group`, PRODUCT.md §15): the required checks `sluice/plan` and
//! `sluice/apply-gate` on the queue's temporary commit, so GitHub merges the group or ejects it.
//!
//! [`Bot::on_merge_group`] fetches the queue commit and its base, finds the projects the commit
//! changes (the local `git diff base..head`; when the commit cannot be fetched, GitHub's compare
//! API, trusted only to say "no Terraform changes"), and either answers at once — no Terraform
//! changes: both checks succeed, so a required check never blocks the queue; configuration
//! errors, an unreadable commit, a truncated file list: both fail, closed — or queues a plan run
//! of the queue commit (no locks: nothing is applied). When that run ends,
//! [`Bot::after_queue_run`] sets `sluice/plan` from the plans and `sluice/apply-gate` from the
//! queued pull request's own gate (the pull request named by the queue ref; its projects applied
//! after merge must have a reviewed plan and pass approvals, requirements and policies) and the
//! base branch's policies on the queue commit's plans.
//!
//! A pull request Sluice never saw is planned from the queue commit like any other; its
//! projects applied after merge have no reviewed plan, so its `sluice/apply-gate` fails and
//! GitHub ejects it (applying after merge would refuse it anyway). Nothing here applies.

use super::{Bot, EventError};
use crate::adapters::clock;
use crate::adapters::git::GitRepo;
use crate::app::ports::StatusState;
use crate::app::ports::store::{
    Effects, JobReport, JobRow, NewJob, NewRun, OutboxItem, Outgoing, RunRow, RunStart,
    StatusContext, Trigger,
};
use crate::core::audit::{AuditAction, AuditActor, AuditRecord, AuditResult};
use crate::core::event::{Actor, MergeGroupAction, MergeGroupInfo, RepoRef};
use crate::core::job::{JobKind, JobState};
use crate::core::merge_queue::{self, CompareVerdict, GatedProject, QueuePlan, Verdict};
use crate::core::policy::PolicyVerdict;
use crate::core::projects::{self, DetectOptions};
use crate::core::reply::merge_queue as say;
use crate::core::types::{CommitSha, PrNumber, RepoName};

/// Where a merge queue event's checks go: the queue commit of a repository, for a pull request
/// (when the queue ref names one).
struct QueueCommit<'a> {
    delivery: &'a str,
    repo: &'a RepoRef,
    group: &'a MergeGroupInfo,
    actor: &'a Actor,
}

impl QueueCommit<'_> {
    /// Both required checks with the same state and description.
    fn both(&self, state: StatusState, description: &str) -> Vec<OutboxItem> {
        [StatusContext::Plan, StatusContext::ApplyGate]
            .into_iter()
            .map(|context| {
                status(
                    &self.repo.name,
                    self.group.pr,
                    &self.group.head_sha,
                    context,
                    state,
                    description,
                )
            })
            .collect()
    }

    /// The audit entry of what the event led to.
    fn record(&self, result: AuditResult, what: &str) -> AuditRecord {
        let mut r = AuditRecord::new(
            AuditAction::MergeQueueCheck,
            AuditActor::of(self.actor),
            result,
        )
        .event(self.delivery)
        .base(&self.group.base_sha)
        .head(&self.group.head_sha)
        .detail("queue_ref", self.group.head_ref.as_str())
        .detail("result", what);
        if let Some(pr) = self.group.pr {
            r = r.pr(&self.repo.name, pr);
        }
        r
    }

    /// Both checks, and the audit entry saying why.
    fn answer(&self, state: StatusState, description: &str) -> Effects {
        let result = match state {
            StatusState::Success => AuditResult::Success,
            _ => AuditResult::Refused,
        };
        Effects::new(
            self.both(state, description),
            vec![self.record(result, description)],
        )
    }
}

/// A commit status on `sha` (a queue commit is no commit of the pull request, but the outbox
/// keeps the pull request for its bookkeeping when there is one).
fn status(
    repo: &RepoName,
    pr: Option<PrNumber>,
    sha: &CommitSha,
    context: StatusContext,
    state: StatusState,
    description: &str,
) -> OutboxItem {
    OutboxItem {
        repo: repo.clone(),
        pr,
        message: Outgoing::Status {
            sha: sha.clone(),
            context,
            state,
            description: description.to_string(),
            target_url: None,
        },
    }
}

impl Bot {
    /// A `merge_group` event: `checks_requested` is answered (at once, or by a plan run of the
    /// queue commit); `destroyed` needs nothing (the event is recorded by the intake).
    pub(super) async fn on_merge_group(
        &self,
        delivery: &str,
        repo: &RepoRef,
        action: MergeGroupAction,
        group: &MergeGroupInfo,
        sender: &Actor,
    ) -> Result<(), EventError> {
        if action == MergeGroupAction::Destroyed {
            tracing::info!(repo = %repo.name, queue_ref = %group.head_ref, "merge group left the queue; nothing to do");
            return Ok(());
        }
        let q = QueueCommit {
            delivery,
            repo,
            group,
            actor: sender,
        };
        match self.check_queue_commit(&q).await {
            // A failure retrying will not mend fails both checks, closed: a required check
            // left unanswered would hold the queue until GitHub's timeout.
            Err(EventError::Permanent(e)) => {
                tracing::warn!(repo = %repo.name, queue_ref = %group.head_ref, error = %format!("{e:#}"), "merge queue commit not checked: checks fail");
                self.say(q.answer(StatusState::Failure, say::NOT_CHECKED))
                    .await
            }
            other => other,
        }
    }

    /// [`Bot::on_merge_group`]'s `checks_requested`: answered at once or by a plan run.
    async fn check_queue_commit(&self, q: &QueueCommit<'_>) -> Result<(), EventError> {
        let (repo, group) = (q.repo, q.group);
        let Some(pr) = group.pr else {
            tracing::warn!(repo = %repo.name, queue_ref = %group.head_ref, "merge queue ref names no pull request: checks fail");
            return self
                .say(q.answer(StatusState::Failure, say::NO_PULL_REQUEST))
                .await;
        };
        let git = match self.fetch_queue(repo, group).await {
            Ok(git) => git,
            Err(e) => {
                tracing::warn!(repo = %repo.name, error = %format!("{e:#}"), "queue commit not fetched: judging GitHub's compare");
                return self.queue_by_compare(q).await;
            }
        };
        let state = self
            .repo_state(
                &repo.name,
                &group.base_ref,
                &git,
                &group.base_sha,
                &group.head_sha,
            )
            .await?;
        if state.rejected() {
            return self
                .say(q.answer(StatusState::Failure, say::CONFIG_ERRORS))
                .await;
        }
        let affected = state.affected_projects().projects;
        if affected.is_empty() {
            return self.no_terraform_changes(q, pr).await;
        }
        let max = self.settings.limits.projects_per_run;
        if affected.len() > max {
            let why = say::too_many_projects(affected.len(), max);
            return self.say(q.answer(StatusState::Failure, &why)).await;
        }
        let n = affected.len();
        let run = NewRun {
            repo: repo.name.clone(),
            pr,
            kind: JobKind::Plan,
            trigger: Trigger::MergeQueue,
            head_sha: group.head_sha.clone(),
            base_sha: group.base_sha.clone(),
            base_ref: group.base_ref.clone(),
            clone_url: repo.clone_url.clone(),
            installation_id: repo.installation_id,
            actor: q.actor.clone(),
            comment_id: None,
            event_id: Some(format!("{}:merge-queue", q.delivery)),
            extra_args: vec![],
            verbose: false,
            jobs: affected.iter().map(NewJob::plan).collect(),
            // Nothing is applied from a queue commit: no lock is needed, and none is waited for.
            locks: vec![],
        };
        let pending = say::planning(n);
        let announce = |_: crate::app::ports::store::Opening<'_>| {
            Effects::new(q.both(StatusState::Pending, &pending), vec![])
        };
        let started = self
            .store
            .create_run(run, &announce, clock::now())
            .await
            .map_err(EventError::Retry)?;
        match started {
            RunStart::Queued { run_id } | RunStart::Waiting { run_id, .. } => {
                tracing::info!(repo = %repo.name, pr = pr.get(), run_id, projects = n, queue = %group.head_sha.short(), "merge queue commit planning");
                self.wake(true);
            }
            RunStart::AlreadyExists { run_id } => {
                tracing::info!(run_id, "merge queue event already turned into a run");
            }
            RunStart::Refused { reason } => {
                return Err(EventError::Permanent(anyhow::anyhow!(
                    "merge queue plan refused: {reason}"
                )));
            }
        }
        Ok(())
    }

    /// The queue commit and its base in the repository's mirror (the queue ref first; GitHub
    /// also serves the commits by id).
    async fn fetch_queue(&self, repo: &RepoRef, group: &MergeGroupInfo) -> anyhow::Result<GitRepo> {
        let token = self.github.clone_token(repo.installation_id).await?;
        let queue = group
            .head_ref
            .strip_prefix("refs/heads/")
            .unwrap_or(&group.head_ref);
        let sets = vec![vec![
            format!("+refs/heads/{queue}:refs/sluice/queue/{queue}"),
            format!("+refs/heads/{0}:refs/sluice/base/{0}", group.base_ref),
        ]];
        self.mirrors
            .ensure(
                &repo.name,
                &repo.clone_url,
                token,
                sets,
                vec![group.head_sha.clone(), group.base_sha.clone()],
                false,
            )
            .await
    }

    /// The queue commit could not be fetched: GitHub's compare API says which files it
    /// changes. Trusted only to answer "no Terraform changes"; anything else fails closed.
    async fn queue_by_compare(&self, q: &QueueCommit<'_>) -> Result<(), EventError> {
        let files = self
            .github
            .compare_files(&q.repo.name, &q.group.base_sha, &q.group.head_sha)
            .await?;
        // The base branch's projects, as its configuration detects them, for the files listed.
        let base = self.fetch_base(q.repo, q.group).await;
        let affected = match base {
            Some(git) => {
                let changed = merge_queue::changed_from_compare(&files);
                let at = q.group.base_sha.clone();
                let rules = self.repo_rules(&q.repo.name, &q.group.base_ref);
                self.read_bounded(move || {
                    let snapshot = git.snapshot(&at)?;
                    let (config, _, _) = crate::app::repo_state::load_config_at(&git, &at, &rules)?;
                    let d = projects::affected_projects_with(
                        &snapshot,
                        config.as_ref(),
                        &changed,
                        DetectOptions {
                            respect_autoplan: false,
                        },
                    );
                    Ok(!d.projects.is_empty())
                })
                .await?
            }
            // Without the base either, any listed file may matter.
            None => !files.is_empty(),
        };
        match merge_queue::compare_verdict(&files, affected) {
            CompareVerdict::NoTerraformChanges => match q.group.pr {
                Some(pr) => self.no_terraform_changes(q, pr).await,
                None => {
                    self.say(q.answer(StatusState::Success, say::NO_TERRAFORM_CHANGES))
                        .await
                }
            },
            CompareVerdict::Refused(why) => self.say(q.answer(StatusState::Failure, &why)).await,
        }
    }

    /// The base commit of a queue in the mirror; `None` when it cannot be fetched.
    async fn fetch_base(&self, repo: &RepoRef, group: &MergeGroupInfo) -> Option<GitRepo> {
        let token = self.github.clone_token(repo.installation_id).await.ok()?;
        let base = format!("+refs/heads/{0}:refs/sluice/base/{0}", group.base_ref);
        self.mirrors
            .ensure(
                &repo.name,
                &repo.clone_url,
                token,
                vec![vec![base]],
                vec![group.base_sha.clone()],
                false,
            )
            .await
            .ok()
    }

    /// A queue commit that changes no Terraform project: both checks succeed at once (and, as
    /// a GitHub App, both check runs too, like a pull request without changes).
    async fn no_terraform_changes(
        &self,
        q: &QueueCommit<'_>,
        pr: PrNumber,
    ) -> Result<(), EventError> {
        let mut effects = q.answer(StatusState::Success, say::NO_TERRAFORM_CHANGES);
        if self.github.is_app() {
            let ask = super::Ask {
                delivery: q.delivery,
                repo: q.repo,
                pr,
                actor: q.actor,
            };
            effects.extend(super::plan::no_changes_checks(
                &ask,
                &q.group.head_sha,
                &self.settings.bot_name,
            ));
        }
        self.say(effects).await
    }

    /// A merge queue run ended: `sluice/plan` and `sluice/apply-gate` on the queue commit, and
    /// the audit entry. An error leaves the run unreported: the sweeper comes back.
    pub async fn after_queue_run(&self, run: &RunRow, jobs: &[JobRow]) -> anyhow::Result<Effects> {
        let failed: Vec<String> = jobs
            .iter()
            .filter(|j| j.state != JobState::Succeeded)
            .map(|j| j.project_name.to_string())
            .collect();
        let plan = merge_queue::plan_verdict(jobs.len(), &failed);
        // Fail closed: a gate that cannot be evaluated (the pull request unreadable, GitHub or
        // the mirror failing) fails, so GitHub ejects the group instead of waiting for ever.
        let gate = match self.queue_gate(run, jobs).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(repo = %run.repo, pr = run.pr.get(), error = %format!("{e:#}"), "merge queue gate not evaluated: failing it");
                Verdict {
                    passed: false,
                    description: say::GATE_NOT_EVALUATED.to_string(),
                }
            }
        };
        let mut outbox = Vec::new();
        for (context, v) in [
            (StatusContext::Plan, &plan),
            (StatusContext::ApplyGate, &gate),
        ] {
            let state = match v.passed {
                true => StatusState::Success,
                false => StatusState::Failure,
            };
            outbox.push(status(
                &run.repo,
                Some(run.pr),
                &run.head_sha,
                context,
                state,
                &v.description,
            ));
        }
        let result = match plan.passed && gate.passed {
            true => AuditResult::Success,
            false => AuditResult::Failure,
        };
        let mut record = AuditRecord::new(
            AuditAction::MergeQueueCheck,
            AuditActor::of(&run.actor),
            result,
        )
        .pr(&run.repo, run.pr)
        .base(&run.base_sha)
        .head(&run.head_sha)
        .detail("plan", plan.description.as_str())
        .detail("apply_gate", gate.description.as_str());
        record.event_id = run.event_id.clone();
        Ok(Effects::new(outbox, vec![record]))
    }

    /// `sluice/apply-gate` on a queue commit: every project of the queued pull request that its
    /// merge would deliver (those its own change affects, picked by
    /// `core::delivery::delivered` as the pull request's own gate picks them: `on_merge`, and
    /// `comment_or_merge` unless applied by comment), their reviewed plans and gate, and their
    /// plans on the queue commit.
    async fn queue_gate(&self, run: &RunRow, jobs: &[JobRow]) -> anyhow::Result<Verdict> {
        let pull = self.github.get_pull(&run.repo, run.pr).await?;
        let git = self
            .fetch(&super::automerge::repo_of(run), &pull)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let config = self
            .base_config(&run.repo, &run.base_ref, &git, &run.base_sha)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let base = Self::base_tip(&git, &pull);
        let own = self
            .repo_state(&run.repo, &pull.base_ref, &git, &base, &pull.head_sha)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .affected_projects()
            .projects;
        // Every project the merge would deliver — `on_merge`, and `comment_or_merge` unless
        // applied by comment — by the rule the pull request's own `sluice/apply-gate` uses.
        let current = self.store.current_plans(&run.repo, run.pr).await?;
        let delivered = self
            .delivered_projects(
                &run.repo,
                run.pr,
                config.as_ref(),
                own,
                &pull.head_sha,
                &current,
            )
            .await?;
        if delivered.is_empty() {
            return Ok(merge_queue::gate_verdict(&[], &[]));
        }
        let pr_gate = self.apply_gate(&run.repo, run.pr).await?;
        let refusals = pr_gate.map(|g| g.reasons).unwrap_or_default();
        let projects: Vec<GatedProject> = delivered
            .iter()
            .map(|(p, reviewed)| {
                let job = jobs
                    .iter()
                    .find(|j| j.project_dir == p.dir && j.workspace == p.workspace);
                let queue_plan = match job {
                    None => QueuePlan::NotPlanned,
                    Some(j) if j.state != JobState::Succeeded => QueuePlan::Failed,
                    Some(j) => QueuePlan::Planned {
                        policy_refuses: matches!(
                            &j.report,
                            Some(Ok(JobReport::Full {
                                policy: PolicyVerdict::Fail | PolicyVerdict::Pending,
                                ..
                            }))
                        ),
                    },
                };
                GatedProject {
                    name: p.name.to_string(),
                    reviewed: reviewed.is_some(),
                    queue_plan,
                }
            })
            .collect();
        Ok(merge_queue::gate_verdict(&refusals, &projects))
    }
}
