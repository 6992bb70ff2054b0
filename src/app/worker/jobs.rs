//! The job workers: claim a job with a lease, keep the lease alive while it runs, run the plan
//! or the apply through `project_run::Runner`, and record the result — report, saved plan,
//! audit entry — in one transaction. A job whose code panics ends failed; an apply re-checks
//! what may have changed since its gate right before terraform starts.

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::Workers;
use crate::adapters::git::GitRepo;
use crate::adapters::{clock, plan_files};
use crate::app::ports::PullState;
use crate::app::ports::store::{
    ApplyContext, ClaimedJob, JobFinish, JobPayload, JobReport, NewPlan, PlanRow, Trigger,
};
use crate::app::project_run::ProjectJob;
use crate::core::audit::{
    AuditAction, AuditActor, AuditPolicyDecision, AuditRecord, AuditResult, ChangeCounts,
    ErrorClass,
};
use crate::core::delivery;
use crate::core::job::{JobKind, JobState};
use crate::core::plan::{FailedStage, Plan, PlanSummary, ProjectOutcome, ProjectReport};
use crate::core::policy::{self, PolicyInput, PolicyVerdict, Stage};
use crate::core::projects::Project;
use crate::core::reply;
use crate::core::reply::job::ApplyStop;
use crate::core::types::CommitSha;

impl Workers {
    pub async fn job_loop(
        self: Arc<Self>,
        n: usize,
        stop: CancellationToken,
        kill: CancellationToken,
    ) {
        let worker = format!("{}-w{n}", self.instance);
        loop {
            if stop.is_cancelled() {
                return;
            }
            let now = clock::now();
            match self
                .store
                .claim_job(&worker, now, now.plus(self.lease))
                .await
            {
                Ok(Some(claimed)) => {
                    crate::adapters::metrics::observe(
                        "sluice_queue_wait_seconds",
                        &[("kind", claimed.job.kind.as_str())],
                        (now.get() - claimed.job.created_at.get()).max(0) as f64 / 1000.0,
                    );
                    // There may be more queued work: pass the wake-up on to an idle worker. (A
                    // `notify_one` keeps its permit until someone waits, so none is lost.)
                    self.jobs_ready.notify_one();
                    self.execute(&worker, claimed, &kill).await
                }
                Ok(None) => {
                    tokio::select! {
                        _ = self.jobs_ready.notified() => {}
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                        _ = stop.cancelled() => return,
                    }
                }
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "claiming a job failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    async fn execute(&self, worker: &str, c: ClaimedJob, kill: &CancellationToken) {
        let span = tracing::info_span!(
            "job",
            job_id = c.job.id,
            kind = %c.job.kind,
            repo = %c.run.repo,
            pr = c.run.pr.get(),
            project = %c.job.project_name,
            sha = %c.run.head_sha.short(),
        );
        async {
            tracing::info!(attempt = c.job.attempts, "job started");
            let cancel = kill.child_token();
            let heartbeat = self.heartbeat(c.job.id, worker, cancel.clone());
            self.live_jobs().insert(c.job.id, worker.to_string());
            let run = async {
                match c.job.kind {
                    JobKind::Plan => self.plan_job(&c, cancel.clone()).await,
                    JobKind::Apply => self.apply_job(&c, cancel.clone()).await,
                    JobKind::State => self.state_job(&c, cancel.clone()).await,
                }
            };
            // A bug that panics ends this job as failed, never as a job that runs forever (the
            // heartbeat would keep its lease alive).
            let finish = match std::panic::AssertUnwindSafe(run).catch_unwind().await {
                Ok(finish) => finish,
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "unknown panic".into());
                    tracing::error!(panic = %what, "job panicked");
                    self.crashed(&c, &what)
                }
            };
            heartbeat.abort();
            self.live_jobs().remove(&c.job.id);
            if kill.is_cancelled() {
                // Shutdown past its grace: the server marks the job interrupted; our result is
                // incomplete by construction.
                return;
            }
            let state = finish.state;
            let engine_version = finish.audit.iter().find_map(|r| r.engine_version.clone());
            let recorded = self
                .store
                .finish_job(c.job.id, worker, finish, clock::now())
                .await;
            // A successful apply moves the project's drift baseline (and is checked again).
            if recorded.is_ok()
                && c.job.kind == JobKind::Apply
                && state == JobState::Succeeded
                && let Some(drift) = &self.bot.drift
                && let Err(e) = drift.after_apply(&c, engine_version).await
            {
                tracing::warn!(error = %format!("{e:#}"), "drift: recording the apply failed");
            }
            match recorded {
                Ok(true) => {
                    tracing::info!(state = %state, "job finished; run complete");
                    self.report(c.run.id).await;
                }
                Ok(false) => tracing::info!(state = %state, "job finished"),
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "recording the job's result failed")
                }
            }
            self.jobs_ready.notify_one();
        }
        .instrument(span)
        .await
    }

    /// Renews the job's lease every third of it; a refused renewal means the job was taken from
    /// this worker (cancelled, recovered), and `cancel` stops it.
    fn heartbeat(
        &self,
        job_id: i64,
        worker: &str,
        cancel: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let store = self.store.clone();
        let (worker, lease) = (worker.to_string(), self.lease);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease / 3).await;
                match store
                    .renew_lease(job_id, &worker, clock::now().plus(lease))
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(job_id, "lease lost; stopping the job");
                        cancel.cancel();
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "lease renewal failed")
                    }
                }
            }
        })
    }

    /// The end of a job whose code panicked: failed, with an audit entry saying so.
    fn crashed(&self, c: &ClaimedJob, what: &str) -> JobFinish {
        let project = c.job.payload.as_ref().ok().map(JobPayload::project);
        let record = self
            .audit_base(c, project)
            .error(ErrorClass::Internal)
            .result(AuditResult::Failure);
        let error = reply::job::crashed(what);
        let outcome = match c.job.kind {
            JobKind::Plan => ProjectOutcome::PlanFailed {
                stage: FailedStage::Plan,
                error,
            },
            JobKind::Apply | JobKind::State => ProjectOutcome::ApplyFailed { error },
        };
        failed(self.report_of(c, outcome), record)
    }

    /// Notes every project's report carries (a run without a sandbox says so).
    pub(super) fn job_notes(&self) -> Vec<String> {
        if self.runner.sandbox.is_isolated() {
            vec![]
        } else {
            vec![reply::job::not_isolated_note()]
        }
    }

    /// The report of the claimed job's project with `outcome`, the usual notes and no policy.
    fn report_of(&self, c: &ClaimedJob, outcome: ProjectOutcome) -> JobReport {
        JobReport::Full {
            report: project_report(c, outcome, self.job_notes()),
            policy: PolicyVerdict::None,
            policy_names: vec![],
            review: None,
        }
    }

    /// The audit record of the job's action, with what every such record carries.
    pub(super) fn audit_base(&self, c: &ClaimedJob, project: Option<&Project>) -> AuditRecord {
        let action = match c.job.kind {
            JobKind::Plan => AuditAction::Plan,
            JobKind::Apply => AuditAction::Apply,
            JobKind::State => AuditAction::StateCommand,
        };
        // Failed until the job says otherwise.
        let mut record =
            AuditRecord::new(action, AuditActor::of(&c.run.actor), AuditResult::Failure)
                .pr(&c.run.repo, c.run.pr)
                .base(&c.run.base_sha)
                .head(&c.run.head_sha)
                .project(&c.job.project_name, &c.job.project_dir, &c.job.workspace)
                .detail("runner", self.runner.sandbox.description());
        record.event_id = c.run.event_id.clone();
        record.engine = project.map(|p| p.engine.as_str().to_string());
        record.job_id = Some(c.job.id);
        record
    }

    /// The run's commit (and `also`, a plan's configuration commit), in the repository's
    /// mirror.
    pub(super) async fn git_for(
        &self,
        c: &ClaimedJob,
        also: Option<&CommitSha>,
    ) -> anyhow::Result<GitRepo> {
        let token = self.github.clone_token(c.run.installation_id).await?;
        let n = c.run.pr.get();
        // A merge commit is on the base branch, not on the PR's ref.
        let base = format!("+refs/heads/{0}:refs/sluice/base/{0}", c.run.base_ref);
        self.bot
            .mirrors
            .ensure(
                &c.run.repo,
                &c.run.clone_url,
                token,
                vec![
                    vec![format!("+refs/pull/{n}/head:refs/sluice/pull/{n}/head")],
                    vec![base],
                ],
                std::iter::once(c.run.head_sha.clone())
                    .chain(also.cloned())
                    .collect(),
                false,
            )
            .await
    }

    async fn plan_job(&self, c: &ClaimedJob, cancel: CancellationToken) -> JobFinish {
        let record = self.audit_base(c, c.job.payload.as_ref().ok().map(JobPayload::project));
        let fail = |stage: FailedStage, error: String, record: AuditRecord| {
            failed(
                self.report_of(c, ProjectOutcome::PlanFailed { stage, error }),
                record,
            )
        };
        let plan_job = match &c.job.payload {
            Ok(JobPayload::Plan(p)) => p,
            Ok(JobPayload::Apply(_) | JobPayload::State(_)) => {
                let why =
                    reply::job::project_unreadable("another kind of job's payload on a plan job");
                return fail(FailedStage::Config, why, record.error(ErrorClass::Internal));
            }
            Err(e) => {
                let why = reply::job::project_unreadable(&e.0);
                return fail(FailedStage::Config, why, record.error(ErrorClass::Internal));
            }
        };
        let project = &plan_job.project;
        let mut record = record;
        if let Some(removal) = &plan_job.removed {
            return self.removed_project(c, removal, record);
        }
        if plan_job.destroy {
            record = record.detail("destroy_plan", "true");
        }
        if let Some(commit) = &plan_job.config_commit {
            record = record.detail("config_commit", commit.as_str());
        }
        let git = match self.git_for(c, plan_job.config_commit.as_ref()).await {
            Ok(g) => g,
            Err(e) => {
                let record = record.error(ErrorClass::Stage(FailedStage::Checkout));
                return fail(FailedStage::Checkout, format!("{e:#}"), record);
            }
        };
        let mut extra_args = c.run.extra_args.clone();
        if plan_job.destroy {
            extra_args.insert(0, "-destroy".to_string());
        }
        let log = self.start_log(c.job.id, crate::core::ui::job_log::LogStep::Plan);
        let job = ProjectJob {
            pull: Some(self.pull_info(c).await),
            user: c.run.actor.login.clone(),
            git: &git,
            repo: Some(&c.run.repo),
            commit: plan_job.config_commit.as_ref().unwrap_or(&c.run.head_sha),
            base: &c.run.base_sha,
            project,
            job_id: format!("job-{}", c.job.id),
            extra_args,
            sink: log
                .clone()
                .map(|l| l as Arc<dyn crate::adapters::process::LineSink>),
            cancel,
        };
        let result = self.runner.plan(&job).await;
        // The plan file now lives in `<job>.out`; the working copy is not needed again.
        plan_files::remove_job_dir(&self.runner.jobs_dir.join(&job.job_id));
        drop(job);
        if let Some(log) = log {
            log.finish().await;
        }
        let planned = match result {
            Ok(planned) => planned,
            Err(f) => {
                let mut record = record.error(ErrorClass::Stage(f.stage));
                record.duration_ms = Some(f.duration.as_millis() as u64);
                return fail(f.stage, f.error, record);
            }
        };
        // Policies predict the apply: shown on the PR, recorded, not acted upon here.
        let mut notes = self.job_notes();
        if !planned.workflow_output.is_empty() {
            notes.push(planned.workflow_output.clone());
        }
        let mut record = record.result(AuditResult::Success);
        let (verdict, policy_names) = match self
            .plan_policies(c, &git, project, &planned.plan, &planned.plan_file)
            .await
        {
            Ok(Some(PlanPolicies {
                section,
                audit,
                verdict,
                names,
            })) => {
                if !section.is_empty() {
                    notes.push(section);
                }
                record.policy = audit;
                (verdict, names)
            }
            Ok(None) => (PolicyVerdict::None, vec![]),
            Err(e) => {
                notes.push(reply::job::policies_not_evaluated_note(&e.to_string()));
                (PolicyVerdict::Pending, vec![])
            }
        };
        // A merge queue commit's plan is only a check: no PR review, and no plan kept.
        let queue = c.run.trigger == Trigger::MergeQueue;
        let review = match queue {
            true => None,
            false => self.review_material(c, &git, project, &planned.plan).await,
        };
        record.engine_version = Some(planned.engine_version.clone());
        record.duration_ms = Some(planned.duration.as_millis() as u64);
        record.plan_sha256 = Some(planned.plan_sha256.clone());
        record.changes = Some(counts(&planned.summary));
        record.destroyed = planned.summary.destroyed.clone();
        record.replaced = planned.summary.replaced.clone();
        let plan = match queue {
            true => {
                plan_files::remove(&planned.plan_file);
                None
            }
            false => Some(NewPlan {
                head_sha: c.run.head_sha.clone(),
                plan_file: planned.plan_file.clone(),
                plan_sha256: planned.plan_sha256.clone(),
                summary: planned.summary.clone(),
            }),
        };
        let outcome = ProjectOutcome::Planned {
            summary: planned.summary,
            diff: planned.diff,
            plan_sha256: planned.plan_sha256,
        };
        JobFinish {
            state: JobState::Succeeded,
            report: JobReport::Full {
                report: ProjectReport {
                    destroy_plan: plan_job.destroy,
                    ..project_report(c, outcome, notes)
                },
                policy: verdict,
                policy_names,
                review,
            },
            plan,
            audit: vec![match queue {
                true => record.detail("merge_queue", "true"),
                false => record,
            }],
        }
    }

    /// Evaluates the base branch's policies on a fresh plan. `None` when no policy is
    /// configured.
    async fn plan_policies(
        &self,
        c: &ClaimedJob,
        git: &GitRepo,
        project: &Project,
        plan: &Plan,
        plan_file: &std::path::Path,
    ) -> anyhow::Result<Option<PlanPolicies>> {
        let set = self
            .bot
            .policy_set(&c.run.repo, git, &c.run.base_sha)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if set.is_empty() {
            return Ok(None);
        }
        if set.broken {
            let note = reply::job::policies_broken_note(&set.broken_message());
            return Ok(Some(PlanPolicies {
                section: note,
                audit: vec![],
                verdict: PolicyVerdict::Fail,
                names: vec![],
            }));
        }
        let pull = self.github.get_pull(&c.run.repo, c.run.pr).await?;
        let reviews = self.github.list_reviews(&c.run.repo, c.run.pr).await?;
        let approvals = crate::core::apply_gate::approvals(&reviews, &pull.author);
        let teams = self.bot.teams.resolve(&*self.github, &set.policies).await;
        let base_names = set.base_names_of(project);
        let input = PolicyInput {
            stage: Stage::Plan,
            actor: &c.run.actor.login,
            author: &pull.author.login,
            target_branch: &c.run.base_ref,
            head_sha: &c.run.head_sha,
            project,
            base_names: &base_names,
            plan: Some(plan),
            approvals: &approvals,
            teams: &teams,
            overrides: &[],
        };
        let decisions = policy::evaluate(
            &self.bot.policies_on_plan(&set.policies, plan_file).await,
            &input,
        );
        let section = policy::render_section(&decisions, &self.settings.bot_name, &project.name);
        let verdict = PolicyVerdict::of(&decisions);
        Ok(Some(PlanPolicies {
            section,
            audit: set.audit(&decisions),
            verdict,
            names: verdict.names_in(&decisions),
        }))
    }

    /// Whether the plan may still be applied now: current (neither discarded by `unlock` or a
    /// newer plan, nor applied), its workspace still locked by this PR, and the PR still open at
    /// the planned commit.
    async fn still_applicable(&self, c: &ClaimedJob, plan: &PlanRow) -> Result<(), ApplyStop> {
        if plan.applied_at.is_some() {
            return Err(ApplyStop::AlreadyApplied);
        }
        if plan.discarded_at.is_some() {
            return Err(ApplyStop::Discarded);
        }
        let locks = self
            .store
            .locks(Some(&c.run.repo))
            .await
            .map_err(|e| ApplyStop::LocksUnreadable(format!("{e:#}")))?;
        let held = locks.iter().any(|l| {
            l.pr == c.run.pr && l.key.dir == plan.project_dir && l.key.workspace == plan.workspace
        });
        if !held {
            return Err(ApplyStop::LockLost);
        }
        // After merge, the plan is the merge commit's own: the PR is closed by design.
        if c.run.trigger == Trigger::Merge {
            return Ok(());
        }
        let pull = self
            .github
            .get_pull(&c.run.repo, c.run.pr)
            .await
            .map_err(|e| ApplyStop::PullUnreadable(e.to_string()))?;
        if pull.state != PullState::Open {
            return Err(ApplyStop::PrClosed);
        }
        if pull.head_sha != c.run.head_sha {
            return Err(ApplyStop::NewCommits {
                head: pull.head_sha,
            });
        }
        Ok(())
    }

    /// The project of an earlier job of this apply that `project` depends on and that did not
    /// apply (`depends_on`: a project whose dependency failed is not attempted).
    async fn blocked_by(
        &self,
        c: &ClaimedJob,
        project: &Project,
    ) -> Option<crate::core::types::ProjectName> {
        let jobs = self.store.jobs_of_run(c.run.id).await.ok()?;
        jobs.into_iter()
            .filter(|j| j.position < c.job.position && j.state != JobState::Succeeded)
            .map(|j| j.project_name)
            .find(|name| project.depends_on.contains(name))
    }

    /// A plan job of a project gone at the head: nothing runs, and the run fails with the
    /// advice (plan with `--destroy`, or keep the project).
    fn removed_project(
        &self,
        c: &ClaimedJob,
        removal: &crate::core::removed::Removal,
        record: AuditRecord,
    ) -> JobFinish {
        let outcome = ProjectOutcome::Removed {
            removal: removal.clone(),
        };
        let record = record
            .error(ErrorClass::Stage(FailedStage::Config))
            .detail("removed", reply::removed::removal_word(removal));
        let report = JobReport::Full {
            report: project_report(c, outcome, self.job_notes()),
            policy: PolicyVerdict::None,
            policy_names: vec![],
            review: None,
        };
        failed(report, record)
    }

    /// An apply after merge records the merge commit and the reviewed head, and returns what
    /// was reviewed of `project` (to say how the applied plan differs); other applies are left
    /// as they are.
    async fn after_merge(
        &self,
        c: &ClaimedJob,
        project: &Project,
        mut record: AuditRecord,
    ) -> (AuditRecord, Option<Vec<delivery::Change>>) {
        if c.run.trigger != Trigger::Merge {
            return (record, None);
        }
        record = record.detail("merge_commit", c.run.head_sha.as_str());
        let mut reviewed = None;
        if let Ok(Some(d)) = self.store.delivery_of_run(c.run.id).await {
            record = record.detail("reviewed_head", d.reviewed_head.as_str());
            reviewed = d
                .reviewed
                .into_iter()
                .find(|r| r.dir == project.dir && r.workspace == project.workspace)
                .and_then(|r| r.changes);
        }
        (record, reviewed)
    }

    async fn apply_job(&self, c: &ClaimedJob, cancel: CancellationToken) -> JobFinish {
        let ctx: Option<&ApplyContext> = match &c.job.payload {
            Ok(JobPayload::Apply(ctx)) => Some(ctx),
            _ => None,
        };
        let mut record = self.audit_base(c, ctx.map(|x| &x.project));
        let fail = |error: String, record: AuditRecord, class: ErrorClass| {
            let outcome = ProjectOutcome::ApplyFailed { error };
            failed(self.report_of(c, outcome), record.error(class))
        };
        let Some(ctx) = ctx else {
            let why = match &c.job.payload {
                Err(e) => e.0.clone(),
                Ok(_) => "a plan job's payload on an apply job".to_string(),
            };
            return fail(
                reply::job::project_unreadable(&why),
                record,
                ErrorClass::Internal,
            );
        };
        record.approvals = ctx.approvals.clone();
        record.policy = ctx.policy.clone();
        let (record, reviewed_changes) = self.after_merge(c, &ctx.project, record).await;
        let mut record = record;
        // Only the projects that depend on one that did not apply stop (`depends_on`).
        if let Some(by) = self.blocked_by(c, &ctx.project).await {
            let why = crate::core::reply::delivery::blocked_by(by.as_str());
            return JobFinish {
                state: JobState::Cancelled,
                report: JobReport::Skipped(why.clone()),
                plan: None,
                audit: vec![record.result(AuditResult::Refused).detail("reason", &why)],
            };
        }
        let plan = match c.job.plan_id {
            Some(id) => self.store.plan(id).await.ok().flatten(),
            None => None,
        };
        let Some(plan) = plan else {
            let stop = ApplyStop::PlanMissing;
            return fail(stop.reason(), record, stop.class());
        };
        record.plan_sha256 = Some(plan.plan_sha256.clone());
        record.plan_entry_seq = plan.audit_seq;
        // `merge_plan_check: replan` applies a merge commit's plan that differs from the
        // reviewed one: the differences are recorded and said with the apply, never silent.
        let mut differs_note = None;
        if let Some((reviewed_only, merged_only)) = replan_difference(reviewed_changes, &plan) {
            record = record
                .detail("plan_differs_from_reviewed", "true")
                .numbered("reviewed_only", &reviewed_only)
                .numbered("merge_only", &merged_only);
            differs_note = Some(reply::delivery::replanned(&reviewed_only, &merged_only));
        }
        let fail = |error: String, record: AuditRecord, class: ErrorClass| {
            let mut report = self.report_of(c, ProjectOutcome::ApplyFailed { error });
            if let (JobReport::Full { report, .. }, Some(note)) = (&mut report, &differs_note) {
                report.notes.insert(0, note.clone());
            }
            failed(report, record.error(class))
        };
        // The gate was checked when `apply` was commented; the job may have queued since.
        // What can change meanwhile is checked again, right before terraform starts.
        let check = if plan.head_sha != c.run.head_sha {
            Err(ApplyStop::OtherCommit)
        } else {
            self.still_applicable(c, &plan).await
        };
        if let Err(stop) = check {
            return fail(stop.reason(), record, stop.class());
        }
        if ctx.destroy {
            record = record.detail("destroy_plan", "true");
        }
        if let Some(commit) = &ctx.config_commit {
            record = record.detail("config_commit", commit.as_str());
        }
        let git = match self.git_for(c, ctx.config_commit.as_ref()).await {
            Ok(g) => g,
            Err(e) => {
                let class = ErrorClass::Stage(FailedStage::Checkout);
                return fail(format!("{e:#}"), record, class);
            }
        };
        let log = self.start_log(c.job.id, crate::core::ui::job_log::LogStep::Apply);
        let job = ProjectJob {
            pull: Some(self.pull_info(c).await),
            user: c.run.actor.login.clone(),
            git: &git,
            repo: Some(&c.run.repo),
            commit: ctx.config_commit.as_ref().unwrap_or(&c.run.head_sha),
            base: &c.run.base_sha,
            project: &ctx.project,
            job_id: format!("job-{}", c.job.id),
            extra_args: vec![],
            sink: log
                .clone()
                .map(|l| l as Arc<dyn crate::adapters::process::LineSink>),
            cancel,
        };
        let result = self
            .runner
            .apply(&job, &plan.plan_file, &plan.plan_sha256)
            .await;
        plan_files::remove_job_dir(&self.runner.jobs_dir.join(format!("job-{}-apply", c.job.id)));
        drop(job);
        if let Some(log) = log {
            log.finish().await;
        }
        match result {
            Ok(applied) => {
                // Applied plans are never used again; their files hold sensitive values.
                plan_files::remove(&plan.plan_file);
                let mut record = record.result(AuditResult::Success);
                record.duration_ms = Some(applied.duration.as_millis() as u64);
                if !applied.engine_version.is_empty() {
                    record.engine_version = Some(applied.engine_version.clone());
                }
                if let Some(s) = &plan.summary {
                    record.changes = Some(counts(s));
                    record.destroyed = s.destroyed.clone();
                    record.replaced = s.replaced.clone();
                }
                let outcome = ProjectOutcome::Applied {
                    output: applied.output,
                    summary: plan.summary.clone(),
                };
                let mut report = self.report_of(c, outcome);
                if let (JobReport::Full { report, .. }, Some(note)) = (&mut report, differs_note) {
                    report.notes.insert(0, note);
                }
                JobFinish {
                    state: JobState::Succeeded,
                    report,
                    plan: None,
                    audit: vec![record],
                }
            }
            Err(f) => {
                record.duration_ms = Some(f.duration.as_millis() as u64);
                fail(f.error, record, ErrorClass::Stage(f.stage))
            }
        }
    }
}

/// How the merge commit's plan differs from the reviewed one (`reviewed`, recorded at merge):
/// what only the reviewed plan had and what only the merge commit's plan has; `None` when they
/// are the same, or either is unknown.
fn replan_difference(
    reviewed: Option<Vec<delivery::Change>>,
    plan: &PlanRow,
) -> Option<(Vec<delivery::Change>, Vec<delivery::Change>)> {
    let parsed = plan_files::read_json(&plan.plan_file)?;
    match delivery::compare(&reviewed?, &delivery::changes(&parsed)) {
        delivery::Comparison::Same => None,
        delivery::Comparison::Differs {
            reviewed_only,
            merged_only,
        } => Some((reviewed_only, merged_only)),
    }
}

/// The claimed job's project's report with `outcome` and `notes`.
pub(super) fn project_report(
    c: &ClaimedJob,
    outcome: ProjectOutcome,
    notes: Vec<String>,
) -> ProjectReport {
    ProjectReport {
        project: c.job.project_name.clone(),
        dir: c.job.project_dir.clone(),
        workspace: c.job.workspace.clone(),
        outcome,
        notes,
        destroy_plan: false,
    }
}

/// A failed job: its report, and its audit record marked failed.
pub(super) fn failed(report: JobReport, record: AuditRecord) -> JobFinish {
    JobFinish {
        state: JobState::Failed,
        report,
        plan: None,
        audit: vec![record.result(AuditResult::Failure)],
    }
}

fn counts(s: &PlanSummary) -> ChangeCounts {
    ChangeCounts {
        add: s.add as u64,
        change: s.change as u64,
        destroy: s.destroy as u64,
        replace: s.replace as u64,
        import: s.import as u64,
    }
}

/// The pull request of a claimed job as the run records it: the head branch, URL and author are
/// not recorded with the run (GitHub is asked for them, [`Workers::pull_info`]).
pub(super) fn recorded_pull(c: &ClaimedJob) -> crate::core::workflow::PullInfo {
    crate::core::workflow::PullInfo {
        base_repo: c.run.repo.clone(),
        head_repo: c.run.repo.clone(),
        base_branch: c.run.base_ref.clone(),
        head_branch: String::new(),
        head_commit: c.run.head_sha.clone(),
        number: Some(c.run.pr),
        url: String::new(),
        author: String::new(),
        approved: None,
        mergeable: None,
    }
}

/// `owner/name` of a clone URL (`https://github.com/acme/infra.git` → `acme/infra`).
fn repo_of_clone_url(url: &str) -> Option<crate::core::types::RepoName> {
    let path = url.trim_end_matches('/').trim_end_matches(".git");
    let mut parts = path.rsplit('/');
    let name = parts.next()?;
    let owner = parts.next()?;
    crate::core::types::RepoName::new(owner, name).ok()
}

impl Workers {
    /// The pull request of a claimed job, for a custom workflow's step variables
    /// (`HEAD_BRANCH_NAME`, `PULL_URL`, `PULL_AUTHOR`, `HEAD_REPO_OWNER`/`NAME`,
    /// `ATLANTIS_PR_APPROVED`, `ATLANTIS_PR_MERGEABLE`): the run's record
    /// completed with what GitHub says of the pull request now. The values are the PR's own
    /// (untrusted): the steps get them as environment variables, never in a command line. When
    /// GitHub cannot be asked, those variables stay empty and the job runs anyway.
    pub(super) async fn pull_info(&self, c: &ClaimedJob) -> crate::core::workflow::PullInfo {
        let mut pull = recorded_pull(c);
        match self.github.get_pull(&c.run.repo, c.run.pr).await {
            Ok(details) => {
                match self.github.list_reviews(&c.run.repo, c.run.pr).await {
                    Ok(reviews) => {
                        let approvals =
                            crate::core::apply_gate::approvals(&reviews, &details.author);
                        pull.approved = Some(!approvals.is_empty());
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "reviews unread: ATLANTIS_PR_APPROVED unset")
                    }
                }
                pull.mergeable = details.mergeable;
                pull.head_branch = details.head_ref;
                pull.url = details.html_url;
                pull.author = details.author.login;
                if let Some(head) = details
                    .head_clone_url
                    .as_deref()
                    .and_then(repo_of_clone_url)
                {
                    pull.head_repo = head;
                }
            }
            Err(e) => tracing::warn!(
                repo = %c.run.repo, pr = c.run.pr.get(), error = %e,
                "the pull request could not be read: its head branch, URL and author are empty \
                 in workflow steps"
            ),
        }
        pull
    }
}

/// The base branch's policies on a fresh plan.
struct PlanPolicies {
    /// The comment's Policies section (markdown).
    section: String,
    /// The decisions as the audit entry records them.
    audit: Vec<AuditPolicyDecision>,
    verdict: PolicyVerdict,
    /// The policies behind `verdict` (`PolicyVerdict::names_in`).
    names: Vec<String>,
}
