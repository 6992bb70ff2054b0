//! The background loops of `sluice serve`: the event processor (webhook → runs), the job
//! workers (runs → terraform, with leases), the sweeper (expired leases, unreported runs) and
//! the outbox deliverer (comments, statuses, reactions → GitHub, with retries).
//!
//! Every loop takes a `stop` token: when it fires the loop finishes what it holds and returns.
//! Running terraform is only interrupted by the separate `kill` token, after the shutdown grace.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::bot::{ApplyContext, Bot, EventError, STATUS_APPLY, STATUS_PLAN, STATUS_POLICY, status};
use super::ports::store::{
    Claimed, ClaimedJob, JobFinish, JobRow, NewPlan, OutboxItem, Outgoing, RunRow, Store,
    StoredEvent, UNFINISHED_ATTEMPT, event_retry_delay_ms,
};
use super::project_run::{ProjectJob, Runner};
use crate::adapters::clock::now_ms;
use crate::app::ports::{GitHubApi, StatusState};
use crate::config::Settings;
use crate::core::audit::{AuditAction, AuditActor, AuditRecord, AuditResult, ChangeCounts};
use crate::core::dead_letter::{DeadLetter, SetAside};
use crate::core::event::Event;
use crate::core::job::{JobKind, JobState, RunTally};
use crate::core::plan::{
    CommandName, CommentLimits, PlanSummary, ProjectOutcome, ProjectReport, RenderContext,
    render_comments,
};
use crate::core::projects::Project;
use crate::core::types::{ProjectDir, ProjectName, Workspace};

/// Everything the loops share.
pub struct Workers {
    pub settings: Arc<Settings>,
    pub store: Arc<dyn Store>,
    pub github: Arc<dyn GitHubApi>,
    pub runner: Arc<Runner>,
    pub bot: Arc<Bot>,
    pub events_ready: Arc<Notify>,
    pub jobs_ready: Arc<Notify>,
    pub outbox_ready: Arc<Notify>,
    /// Unique per process start; worker ids are `<instance>-w<n>`.
    pub instance: String,
    pub lease: Duration,
    /// This process's running jobs (id → worker id). The sweeper renews their leases before it
    /// recovers expired ones, so a stalled heartbeat never makes a live job look dead (a live
    /// apply marked interrupted could be applied a second time).
    pub live: std::sync::Mutex<HashMap<i64, String>>,
    /// The host layout's neutral names, applied to everything posted (see `app::layout`).
    pub host_paths: Arc<crate::core::host_paths::HostPaths>,
}

/// How a job's report is stored: a full report, or a one-line reason for jobs that never ran to
/// the end (written by the store when it cancels or interrupts them).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
enum StoredReport {
    Full(Box<FullReport>),
    Interrupted { interrupted: String },
    Cancelled { cancelled: String },
    Skipped { skipped: String },
}

/// A job's report as stored: what the comment shows, plus the one-word policy verdict for the
/// `sluice/policy` status (`none` when no policy applies).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct FullReport {
    #[serde(flatten)]
    report: ProjectReport,
    #[serde(default = "no_policy")]
    policy: String,
}

fn no_policy() -> String {
    "none".to_string()
}

fn encode(report: ProjectReport, policy: &str) -> String {
    serde_json::to_string(&FullReport {
        report,
        policy: policy.to_string(),
    })
    .unwrap_or_default()
}

/// The policy verdict stored with a job (see [`FullReport`]).
fn job_policy(job: &JobRow) -> String {
    match job
        .report_json
        .as_deref()
        .map(serde_json::from_str::<StoredReport>)
    {
        Some(Ok(StoredReport::Full(r))) => r.policy,
        _ => no_policy(),
    }
}

/// A job's report, named from the job row (a name or dir that no longer parses falls back to
/// the root project rather than losing the report).
fn job_report(job: &JobRow, outcome: ProjectOutcome, notes: Vec<String>) -> ProjectReport {
    ProjectReport {
        project: ProjectName::new(&job.project_name)
            .unwrap_or_else(|_| ProjectName::derived(&ProjectDir::root(), &Workspace::default())),
        dir: ProjectDir::new(&job.project_dir).unwrap_or_else(|_| ProjectDir::root()),
        workspace: Workspace::new(&job.workspace).unwrap_or_default(),
        outcome,
        notes,
    }
}

fn decode_report(job: &JobRow) -> ProjectReport {
    let fallback = |reason: String| job_report(job, ProjectOutcome::Skipped { reason }, vec![]);
    match job
        .report_json
        .as_deref()
        .map(serde_json::from_str::<StoredReport>)
    {
        Some(Ok(StoredReport::Full(r))) => r.report,
        Some(Ok(StoredReport::Interrupted { interrupted })) => fallback(format!(
            "⚠️ Interrupted: {interrupted}. {}",
            match job.kind {
                JobKind::Plan => "Comment `plan` to run it again.",
                JobKind::Apply =>
                    "The apply may have changed infrastructure partly: check the state before applying again.",
            }
        )),
        Some(Ok(StoredReport::Cancelled { cancelled })) => {
            fallback(format!("Cancelled: {cancelled}."))
        }
        Some(Ok(StoredReport::Skipped { skipped })) => fallback(format!("Skipped: {skipped}.")),
        Some(Err(e)) => fallback(format!("the job's report could not be read ({e})")),
        None => fallback(format!("the job ended `{}` without a report", job.state)),
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

impl Workers {
    fn backoff(attempts: u32) -> i64 {
        let secs = 2u64.saturating_pow(attempts.min(8)).min(300);
        (secs * 1000) as i64
    }

    // ---- events --------------------------------------------------------------------------------

    pub async fn event_loop(self: Arc<Self>, stop: CancellationToken) {
        // A few quick tries: a transient fetch or API failure usually clears in seconds; after that
        // the PR is told, rather than left waiting. Attempts are counted as they start, so an
        // event that stops the process is set aside too.
        let max_attempts = self.settings.limits.event_attempts;
        loop {
            if stop.is_cancelled() {
                return;
            }
            let next = match self.store.claim_event(now_ms(), max_attempts).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "reading pending events failed");
                    None
                }
            };
            let ev = match next {
                Some(Claimed::Attempt(ev)) => ev,
                Some(Claimed::Exhausted(ev)) => {
                    let why = match ev.last_error.as_deref() {
                        None | Some(UNFINISHED_ATTEMPT) => DeadLetter::Unfinished,
                        Some(e) => DeadLetter::Failed(e.to_string()),
                    };
                    self.dead_letter(&ev, why).await;
                    continue;
                }
                None => {
                    tokio::select! {
                        _ = self.events_ready.notified() => {}
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = stop.cancelled() => return,
                    }
                    continue;
                }
            };
            let span = tracing::info_span!("event", delivery = %ev.delivery_id, kind = %ev.kind, attempt = ev.attempts);
            async {
                self.crash_for_tests(&ev.delivery_id);
                let event: Event = match serde_json::from_str(&ev.event_json) {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::error!(error = %e, "stored event cannot be read; dropping it");
                        let _ = self.store.finish_event(&ev.delivery_id).await;
                        return;
                    }
                };
                let pr_of = pr_target(&event);
                match self.bot.handle(&ev.delivery_id, event).await {
                    Ok(()) => {
                        let _ = self.store.finish_event(&ev.delivery_id).await;
                    }
                    Err(EventError::Retry(e)) => {
                        let last = ev.attempts >= max_attempts;
                        tracing::warn!(error = %format!("{e:#}"), attempt = ev.attempts, last, "event failed");
                        if last {
                            self.dead_letter(&ev, DeadLetter::Failed(format!("{e:#}"))).await;
                        } else {
                            let _ = self
                                .store
                                .retry_event(&ev.delivery_id, &format!("{e:#}"), now_ms() + event_retry_delay_ms(ev.attempts))
                                .await;
                        }
                    }
                    Err(EventError::Permanent(e)) => {
                        tracing::warn!(error = %format!("{e:#}"), "event could not be handled");
                        let _ = self.store.finish_event(&ev.delivery_id).await;
                        self.tell_failure(pr_of, &e).await;
                    }
                }
            }
            .instrument(span)
            .await;
        }
    }

    /// Sets an event aside for good: the PR is told (when there is one) and the audit log
    /// records it, in the same transaction.
    async fn dead_letter(&self, ev: &StoredEvent, why: DeadLetter) {
        let why = match why {
            DeadLetter::Failed(e) => DeadLetter::Failed(
                self.runner
                    .redactor()
                    .redact(&self.hide_host_paths(&e))
                    .into_owned(),
            ),
            other => other,
        };
        let target = serde_json::from_str::<Event>(&ev.event_json)
            .ok()
            .and_then(|e| pr_target(&e));
        let set_aside = SetAside {
            delivery_id: &ev.delivery_id,
            kind: &ev.kind,
            attempts: ev.attempts,
            why,
            target: target.clone(),
        };
        tracing::error!(delivery = %ev.delivery_id, kind = %ev.kind, attempts = ev.attempts, reason = %set_aside.reason(), "event set aside (dead letter)");
        let outbox = target
            .map(|(repo, pr)| OutboxItem {
                repo,
                pr: Some(pr),
                message: Outgoing::Comment {
                    body: set_aside.comment(),
                },
            })
            .into_iter()
            .collect();
        match self
            .store
            .dead_letter_event(
                &ev.delivery_id,
                &set_aside.reason(),
                outbox,
                vec![set_aside.audit()],
                now_ms(),
            )
            .await
        {
            Ok(_) => self.outbox_ready.notify_one(),
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "recording the dead letter failed")
            }
        }
    }

    /// `text` with host paths mapped to neutral names (the same mapping as every text posted on
    /// GitHub): for what is also written to the store — the dead letter's reason, its audit entry.
    fn hide_host_paths(&self, text: &str) -> String {
        self.host_paths.map(text).into_owned()
    }

    /// Test builds only: abort the process when handling the delivery the tests named (see
    /// `Settings::test_crash_on_delivery`). Release builds have no such code path at all: the
    /// end-to-end test of poison events needs an event that reliably kills the server, and every
    /// real input that did (a stack overflow in a parser) is now bounded.
    fn crash_for_tests(&self, delivery_id: &str) {
        #[cfg(debug_assertions)]
        if self.settings.test_crash_on_delivery.as_deref() == Some(delivery_id) {
            tracing::error!(
                delivery = delivery_id,
                "SLUICE_TEST_CRASH_ON_DELIVERY: aborting"
            );
            std::process::abort();
        }
        let _ = delivery_id;
    }

    /// Tells the PR that Sluice could not act on its event (e.g. the repository cannot be
    /// fetched) — never silence.
    async fn tell_failure(
        &self,
        target: Option<(crate::core::types::RepoName, crate::core::types::PrNumber)>,
        e: &anyhow::Error,
    ) {
        let Some((repo, pr)) = target else { return };
        let redactor = self.runner.redactor();
        let body = format!(
            "❌ **Sluice could not act on this pull request**:\n\n```\n{}\n```",
            redactor.redact(&self.hide_host_paths(&format!("{e:#}")))
        );
        let item = OutboxItem {
            repo,
            pr: Some(pr),
            message: Outgoing::Comment { body },
        };
        if let Err(err) = self.store.enqueue(vec![item], vec![], now_ms()).await {
            tracing::error!(error = %format!("{err:#}"), "could not record the failure comment");
        }
        self.outbox_ready.notify_one();
    }

    // ---- jobs ------------------------------------------------------------------------------------

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
            let now = now_ms();
            match self
                .store
                .claim_job(&worker, now, now + self.lease.as_millis() as i64)
                .await
            {
                Ok(Some(claimed)) => {
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
            // Heartbeat: renew the lease; a refused renewal means the job was taken from us.
            let hb = {
                let store = self.store.clone();
                let (id, worker, lease, cancel) =
                    (c.job.id, worker.to_string(), self.lease, cancel.clone());
                tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(lease / 3).await;
                        match store
                            .renew_lease(id, &worker, now_ms() + lease.as_millis() as i64)
                            .await
                        {
                            Ok(true) => {}
                            Ok(false) => {
                                tracing::warn!(job_id = id, "lease lost; stopping the job");
                                cancel.cancel();
                                return;
                            }
                            Err(e) => {
                                tracing::warn!(error = %format!("{e:#}"), "lease renewal failed")
                            }
                        }
                    }
                })
            };
            self.live_jobs().insert(c.job.id, worker.to_string());
            let run = async {
                match c.job.kind {
                    JobKind::Plan => self.plan_job(&c, cancel.clone()).await,
                    JobKind::Apply => self.apply_job(&c, cancel.clone()).await,
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
            hb.abort();
            self.live_jobs().remove(&c.job.id);
            if kill.is_cancelled() {
                // Shutdown past its grace: the server marks the job interrupted; our result is
                // incomplete by construction.
                return;
            }
            let state = finish.state;
            match self
                .store
                .finish_job(c.job.id, worker, finish, now_ms())
                .await
            {
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

    fn live_jobs(&self) -> std::sync::MutexGuard<'_, HashMap<i64, String>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The end of a job whose code panicked: failed, with an audit entry saying so.
    fn crashed(&self, c: &ClaimedJob, what: &str) -> JobFinish {
        let project: Option<Project> = match c.job.kind {
            JobKind::Plan => serde_json::from_str(&c.job.project_json).ok(),
            JobKind::Apply => serde_json::from_str::<ApplyContext>(&c.job.project_json)
                .ok()
                .map(|x| x.project),
        };
        let action = match c.job.kind {
            JobKind::Plan => AuditAction::Plan,
            JobKind::Apply => AuditAction::Apply,
        };
        let mut record = self.audit_base(c, project.as_ref(), action);
        record.result = Some(AuditResult::Failure);
        record.error_class = Some("internal".into());
        let error = format!(
            "Sluice failed internally while running this job ({what}); nothing more was done. Try again."
        );
        let outcome = match c.job.kind {
            JobKind::Plan => ProjectOutcome::PlanFailed {
                stage: crate::core::plan::FailedStage::Plan,
                error,
            },
            JobKind::Apply => ProjectOutcome::ApplyFailed { error },
        };
        let report = job_report(&c.job, outcome, self.job_notes());
        JobFinish {
            state: JobState::Failed,
            report_json: encode(report, "none"),
            plan: None,
            audit: vec![record],
        }
    }

    fn job_notes(&self) -> Vec<String> {
        if self.runner.sandbox.is_isolated() {
            vec![]
        } else {
            vec![
                "> [!CAUTION]\n> Run **without a sandbox** (runner profile `plain`): not isolated."
                    .to_string(),
            ]
        }
    }

    fn audit_base(
        &self,
        c: &ClaimedJob,
        project: Option<&Project>,
        action: AuditAction,
    ) -> AuditRecord {
        AuditRecord {
            event_id: c.run.event_id.clone(),
            actor: AuditActor {
                login: c.run.actor.login.clone(),
                id: Some(c.run.actor.id),
                kind: c.run.actor.kind.as_str().to_string(),
            },
            action: Some(action),
            repo: Some(c.run.repo.full()),
            pr: Some(c.run.pr.get()),
            base_sha: Some(c.run.base_sha.to_string()),
            head_sha: Some(c.run.head_sha.to_string()),
            project: Some(c.job.project_name.clone()),
            dir: Some(c.job.project_dir.clone()),
            workspace: Some(c.job.workspace.clone()),
            engine: project.map(|p| p.engine.as_str().to_string()),
            job_id: Some(c.job.id),
            details: [(
                "runner".to_string(),
                self.runner.sandbox.description().to_string(),
            )]
            .into(),
            ..AuditRecord::default()
        }
    }

    async fn git_for(&self, c: &ClaimedJob) -> anyhow::Result<crate::adapters::git::GitRepo> {
        let token = self.github.clone_token(c.run.installation_id).await?;
        let n = c.run.pr.get();
        self.bot
            .mirrors
            .ensure(
                &c.run.repo,
                &c.run.clone_url,
                token,
                vec![vec![format!(
                    "+refs/pull/{n}/head:refs/sluice/pull/{n}/head"
                )]],
                vec![c.run.head_sha.clone()],
                false,
            )
            .await
    }

    async fn plan_job(&self, c: &ClaimedJob, cancel: CancellationToken) -> JobFinish {
        let project: Result<Project, _> = serde_json::from_str(&c.job.project_json);
        let report =
            |outcome: ProjectOutcome, notes: Vec<String>| job_report(&c.job, outcome, notes);
        let failed =
            |stage: crate::core::plan::FailedStage, error: String, audit: AuditRecord| JobFinish {
                state: JobState::Failed,
                report_json: encode(
                    report(
                        ProjectOutcome::PlanFailed { stage, error },
                        self.job_notes(),
                    ),
                    "none",
                ),
                plan: None,
                audit: vec![audit],
            };
        let mut record = self.audit_base(c, project.as_ref().ok(), AuditAction::Plan);
        let project = match project {
            Ok(p) => p,
            Err(e) => {
                record.result = Some(AuditResult::Failure);
                record.error_class = Some("internal".into());
                return failed(
                    crate::core::plan::FailedStage::Config,
                    format!("the job's project cannot be read: {e}"),
                    record,
                );
            }
        };
        let git = match self.git_for(c).await {
            Ok(g) => g,
            Err(e) => {
                record.result = Some(AuditResult::Failure);
                record.error_class = Some("checkout".into());
                return failed(
                    crate::core::plan::FailedStage::Checkout,
                    format!("{e:#}"),
                    record,
                );
            }
        };
        let job = ProjectJob {
            git: &git,
            repo: Some(&c.run.repo),
            commit: &c.run.head_sha,
            base: &c.run.base_sha,
            project: &project,
            job_id: format!("job-{}", c.job.id),
            extra_args: c.run.extra_args.clone(),
            sink: None,
            cancel,
        };
        let result = self.runner.plan(&job).await;
        // The plan file now lives in `<job>.out`; the working copy is not needed again.
        let work_dir = self.runner.jobs_dir.join(&job.job_id);
        let _ = std::fs::remove_dir_all(&work_dir);
        let _ = std::fs::remove_dir_all(work_dir.with_extension("etc"));
        match result {
            Ok(planned) => {
                // Policies predict the apply: shown on the PR, recorded, not acted upon here.
                let (mut notes, verdict) = (self.job_notes(), "none");
                let verdict = match self.plan_policies(c, &git, &project, &planned.plan).await {
                    Ok(Some((section, decisions, v))) => {
                        if !section.is_empty() {
                            notes.push(section);
                        }
                        record.policy = decisions;
                        v
                    }
                    Ok(None) => verdict,
                    Err(e) => {
                        notes.push(format!("> [!WARNING]\n> Policies could not be evaluated: {e}. Apply will check them again."));
                        "pending"
                    }
                };
                record.result = Some(AuditResult::Success);
                record.engine_version = Some(planned.engine_version.clone());
                record.duration_ms = Some(planned.duration.as_millis() as u64);
                record.plan_sha256 = Some(planned.plan_sha256.clone());
                record.changes = Some(counts(&planned.summary));
                record.destroyed = planned.summary.destroyed.clone();
                record.replaced = planned.summary.replaced.clone();
                let plan = NewPlan {
                    head_sha: c.run.head_sha.clone(),
                    plan_file: planned.plan_file.to_string_lossy().into_owned(),
                    plan_sha256: planned.plan_sha256.clone(),
                    summary_json: serde_json::to_string(&planned.summary).unwrap_or_default(),
                };
                let r = report(
                    ProjectOutcome::Planned {
                        summary: planned.summary,
                        diff: planned.diff,
                        plan_sha256: planned.plan_sha256,
                    },
                    notes,
                );
                JobFinish {
                    state: JobState::Succeeded,
                    report_json: encode(r, verdict),
                    plan: Some(plan),
                    audit: vec![record],
                }
            }
            Err(f) => {
                record.result = Some(AuditResult::Failure);
                record.error_class = Some(f.stage.to_string());
                record.duration_ms = Some(f.duration.as_millis() as u64);
                failed(f.stage, f.error, record)
            }
        }
    }

    /// Evaluates the base branch's policies on a fresh plan: the markdown section, the audit
    /// decisions and the verdict. `None` when no policy is configured.
    async fn plan_policies(
        &self,
        c: &ClaimedJob,
        git: &crate::adapters::git::GitRepo,
        project: &Project,
        plan: &crate::core::plan::Plan,
    ) -> anyhow::Result<
        Option<(
            String,
            Vec<crate::core::audit::AuditPolicyDecision>,
            &'static str,
        )>,
    > {
        let set = self
            .bot
            .policy_set(git, &c.run.base_sha)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if set.is_empty() {
            return Ok(None);
        }
        if set.broken {
            return Ok(Some((
                format!("> [!CAUTION]\n> **Policies**: {}", set.broken_message()),
                vec![],
                "fail",
            )));
        }
        let pull = self.github.get_pull(&c.run.repo, c.run.pr).await?;
        let reviews = self.github.list_reviews(&c.run.repo, c.run.pr).await?;
        let approvals = crate::core::apply_gate::approvals(&reviews, &pull.author);
        let teams = self.bot.teams.resolve(&*self.github, &set.policies).await;
        let base_names = set.base_names_of(project);
        let input = crate::core::policy::PolicyInput {
            stage: crate::core::policy::Stage::Plan,
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
        let decisions = crate::core::policy::evaluate(&set.policies, &input);
        let section =
            crate::core::policy::render_section(&decisions, &self.settings.bot_name, &project.name);
        Ok(Some((
            section,
            set.audit(&decisions),
            super::policy::verdict(&decisions),
        )))
    }

    /// Whether the plan may still be applied now: current (neither discarded by `unlock` or a
    /// newer plan, nor applied), its workspace still locked by this PR, and the PR still open at
    /// the planned commit.
    async fn still_applicable(
        &self,
        c: &ClaimedJob,
        plan: &super::ports::store::PlanRow,
    ) -> Result<(), (String, &'static str)> {
        if plan.applied_at.is_some() {
            return Err(("this plan was already applied".into(), "stale_plan"));
        }
        if plan.discarded_at.is_some() {
            return Err((
                "the plan was discarded (by `unlock` or a newer plan) after apply was asked for; run plan again".into(),
                "stale_plan",
            ));
        }
        let locks = self
            .store
            .locks(Some(&c.run.repo))
            .await
            .map_err(|e| (format!("reading locks: {e:#}"), "internal"))?;
        let held = locks.iter().any(|l| {
            l.pr == c.run.pr
                && l.key.dir.as_str() == plan.project_dir
                && l.key.workspace.as_str() == plan.workspace
        });
        if !held {
            return Err((
                "this pull request no longer holds the project's lock; run plan again".into(),
                "lock_lost",
            ));
        }
        let pull = self
            .github
            .get_pull(&c.run.repo, c.run.pr)
            .await
            .map_err(|e| (format!("reading the pull request: {e}"), "github"))?;
        if pull.state != crate::app::ports::PullState::Open {
            return Err(("the pull request was closed".into(), "pr_closed"));
        }
        if pull.head_sha != c.run.head_sha {
            return Err((
                format!(
                    "new commits were pushed (head is now {}) after apply was asked for; run plan again",
                    pull.head_sha.short()
                ),
                "stale_plan",
            ));
        }
        Ok(())
    }

    async fn apply_job(&self, c: &ClaimedJob, cancel: CancellationToken) -> JobFinish {
        let ctx: Result<ApplyContext, _> = serde_json::from_str(&c.job.project_json);
        let report = |outcome: ProjectOutcome| job_report(&c.job, outcome, self.job_notes());
        let mut record =
            self.audit_base(c, ctx.as_ref().ok().map(|x| &x.project), AuditAction::Apply);
        let fail = |error: String, mut record: AuditRecord, class: &str| {
            record.result = Some(AuditResult::Failure);
            record.error_class = Some(class.to_string());
            JobFinish {
                state: JobState::Failed,
                report_json: encode(report(ProjectOutcome::ApplyFailed { error }), "none"),
                plan: None,
                audit: vec![record],
            }
        };
        let ctx = match ctx {
            Ok(x) => x,
            Err(e) => {
                return fail(
                    format!("the job's project cannot be read: {e}"),
                    record,
                    "internal",
                );
            }
        };
        record.approvals = ctx.approvals.clone();
        record.policy = ctx.policy.clone();
        let plan = match c.job.plan_id {
            Some(id) => self.store.plan(id).await.ok().flatten(),
            None => None,
        };
        let Some(plan) = plan else {
            return fail(
                "the plan to apply no longer exists; run plan again".into(),
                record,
                "plan_missing",
            );
        };
        record.plan_sha256 = Some(plan.plan_sha256.clone());
        record.plan_entry_seq = plan.audit_seq;
        if plan.head_sha != c.run.head_sha {
            return fail(
                "the plan was made for another commit; run plan again".into(),
                record,
                "stale_plan",
            );
        }
        // The gate was checked when `apply` was commented; the job may have queued since.
        // What can change meanwhile is checked again, right before terraform starts.
        if let Err((why, class)) = self.still_applicable(c, &plan).await {
            return fail(why, record, class);
        }
        let git = match self.git_for(c).await {
            Ok(g) => g,
            Err(e) => return fail(format!("{e:#}"), record, "checkout"),
        };
        let job = ProjectJob {
            git: &git,
            repo: Some(&c.run.repo),
            commit: &c.run.head_sha,
            base: &c.run.base_sha,
            project: &ctx.project,
            job_id: format!("job-{}", c.job.id),
            extra_args: vec![],
            sink: None,
            cancel,
        };
        let summary: Option<PlanSummary> = serde_json::from_str(&plan.summary_json).ok();
        let result = self
            .runner
            .apply(
                &job,
                std::path::Path::new(&plan.plan_file),
                &plan.plan_sha256,
            )
            .await;
        let apply_dir = self.runner.jobs_dir.join(format!("job-{}-apply", c.job.id));
        let _ = std::fs::remove_dir_all(&apply_dir);
        let _ = std::fs::remove_dir_all(apply_dir.with_extension("etc"));
        match result {
            Ok(applied) => {
                // Applied plans are never used again; their files hold sensitive values.
                if let Some(out) = std::path::Path::new(&plan.plan_file).parent() {
                    let _ = std::fs::remove_dir_all(out);
                }
                record.result = Some(AuditResult::Success);
                record.duration_ms = Some(applied.duration.as_millis() as u64);
                if let Some(s) = &summary {
                    record.changes = Some(counts(s));
                    record.destroyed = s.destroyed.clone();
                    record.replaced = s.replaced.clone();
                }
                JobFinish {
                    state: JobState::Succeeded,
                    report_json: encode(
                        report(ProjectOutcome::Applied {
                            output: applied.output,
                            summary,
                        }),
                        "none",
                    ),
                    plan: None,
                    audit: vec![record],
                }
            }
            Err(f) => {
                record.duration_ms = Some(f.duration.as_millis() as u64);
                let class = f.stage.to_string();
                fail(f.error, record, &class)
            }
        }
    }

    /// Writes a finished run's comment(s) and final status.
    pub async fn report(&self, run_id: i64) {
        let result = async {
            let Some(run) = self.store.run(run_id).await? else {
                return Ok(());
            };
            let jobs = self.store.jobs_of_run(run_id).await?;
            let (outbox, audit) = self.render_run(&run, &jobs);
            self.store.report_run(run_id, outbox, audit, now_ms()).await
        }
        .await;
        match result {
            Ok(()) => self.outbox_ready.notify_one(),
            Err(e) => {
                tracing::error!(run_id, error = %format!("{e:#}"), "reporting a run failed; the sweeper will retry")
            }
        }
    }

    fn render_run(&self, run: &RunRow, jobs: &[JobRow]) -> (Vec<OutboxItem>, Vec<AuditRecord>) {
        let states: Vec<JobState> = jobs.iter().map(|j| j.state).collect();
        // Runs cancelled wholesale (PR closed, unlock) were already explained when cancelled.
        if !jobs.is_empty() && states.iter().all(|s| *s == JobState::Cancelled) {
            return (vec![], vec![]);
        }
        let reports: Vec<ProjectReport> = jobs.iter().map(decode_report).collect();
        let (command, context) = match run.kind {
            JobKind::Plan => (CommandName::Plan, STATUS_PLAN),
            JobKind::Apply => (CommandName::Apply, STATUS_APPLY),
        };
        let ctx = RenderContext {
            bot_name: self.settings.bot_name.clone(),
            command,
            head_sha: Some(run.head_sha.clone()),
            log_url: None,
            limits: CommentLimits::default(),
        };
        let tally = RunTally::of(&states);
        let mut out: Vec<OutboxItem> = render_comments(&ctx, &reports)
            .into_iter()
            .map(|body| OutboxItem {
                repo: run.repo.clone(),
                pr: Some(run.pr),
                message: Outgoing::Comment { body },
            })
            .collect();
        out.push(status(
            &run.repo,
            run.pr,
            &run.head_sha,
            context,
            if tally.ok() {
                StatusState::Success
            } else {
                StatusState::Failure
            },
            tally.describe(run.kind),
        ));
        if run.kind == JobKind::Plan {
            let verdicts: Vec<String> = jobs
                .iter()
                .map(job_policy)
                .filter(|v| v != "none")
                .collect();
            if !verdicts.is_empty() {
                let count = |v: &str| verdicts.iter().filter(|x| x.as_str() == v).count();
                let (state, description) = if count("fail") > 0 {
                    (
                        StatusState::Failure,
                        format!(
                            "{} of {} projects fail a policy",
                            count("fail"),
                            verdicts.len()
                        ),
                    )
                } else if count("pending") > 0 {
                    (
                        StatusState::Pending,
                        format!(
                            "{} of {} projects wait for approvals",
                            count("pending"),
                            verdicts.len()
                        ),
                    )
                } else {
                    (
                        StatusState::Success,
                        format!("{} projects pass their policies", verdicts.len()),
                    )
                };
                out.push(status(
                    &run.repo,
                    run.pr,
                    &run.head_sha,
                    STATUS_POLICY,
                    state,
                    description,
                ));
            }
        }
        let mut audit = Vec::new();
        for (job, state) in jobs.iter().zip(&states) {
            if *state == JobState::Interrupted {
                audit.push(AuditRecord {
                    event_id: run.event_id.clone(),
                    actor: AuditActor {
                        login: run.actor.login.clone(),
                        id: Some(run.actor.id),
                        kind: run.actor.kind.as_str().to_string(),
                    },
                    action: Some(match run.kind {
                        JobKind::Plan => AuditAction::Plan,
                        JobKind::Apply => AuditAction::Apply,
                    }),
                    repo: Some(run.repo.full()),
                    pr: Some(run.pr.get()),
                    head_sha: Some(run.head_sha.to_string()),
                    project: Some(job.project_name.clone()),
                    dir: Some(job.project_dir.clone()),
                    workspace: Some(job.workspace.clone()),
                    result: Some(AuditResult::Interrupted),
                    job_id: Some(job.id),
                    ..AuditRecord::default()
                });
            }
        }
        (out, audit)
    }

    // ---- sweeper ---------------------------------------------------------------------------------

    pub async fn sweep_loop(self: Arc<Self>, stop: CancellationToken) {
        loop {
            self.sweep().await;
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                _ = stop.cancelled() => return,
            }
        }
    }

    pub async fn sweep(&self) {
        if let Err(e) = self.store.upkeep().await {
            tracing::warn!(error = %format!("{e:#}"), "store upkeep failed");
        }
        // Our own running jobs are alive whatever their heartbeat managed: extend them first.
        let live: Vec<(i64, String)> = self
            .live_jobs()
            .iter()
            .map(|(id, w)| (*id, w.clone()))
            .collect();
        for (id, worker) in live {
            let until = now_ms() + self.lease.as_millis() as i64;
            if let Err(e) = self.store.renew_lease(id, &worker, until).await {
                tracing::warn!(job_id = id, error = %format!("{e:#}"), "renewing a live job's lease failed");
            }
        }
        match self.store.recover_expired(now_ms()).await {
            Ok(rec) => {
                for r in &rec {
                    tracing::warn!(job_id = r.job.id, repo = %r.run.repo, pr = r.run.pr.get(), now = %r.now, "job lease expired");
                }
                if !rec.is_empty() {
                    self.jobs_ready.notify_one();
                }
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "recovering expired leases failed")
            }
        }
        match self.store.finished_runs().await {
            Ok(runs) => {
                for run in runs {
                    self.report(run.id).await;
                }
            }
            Err(e) => tracing::error!(error = %format!("{e:#}"), "listing finished runs failed"),
        }
    }

    // ---- outbox ----------------------------------------------------------------------------------

    pub async fn outbox_loop(self: Arc<Self>, stop: CancellationToken) {
        loop {
            let delivered = self.deliver_due().await;
            if delivered == 0 {
                tokio::select! {
                    _ = self.outbox_ready.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = stop.cancelled() => return,
                }
            }
        }
    }

    /// Delivers what is due now; returns how many items were handled.
    /// Text as it may leave for GitHub: host paths replaced by their neutral names
    /// (`app::layout`), and still within `max_chars` (a name can be longer than a short path).
    fn public_text(&self, text: &str, max_chars: usize) -> String {
        let mapped = self.host_paths.map(text);
        if mapped.chars().count() <= max_chars {
            return mapped.into_owned();
        }
        const CUT: &str = "\n\n…(cut: too long for one comment)";
        let keep = max_chars.saturating_sub(CUT.chars().count());
        let mut out: String = mapped.chars().take(keep).collect();
        out.push_str(CUT);
        out
    }

    pub async fn deliver_due(&self) -> usize {
        const MAX_ATTEMPTS: u32 = 12;
        let due = match self.store.due_outbox(now_ms(), 32).await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "reading the outbox failed");
                return 0;
            }
        };
        let n = due.len();
        for row in due {
            let repo = &row.item.repo;
            let result = match (&row.item.message, row.item.pr) {
                (Outgoing::Comment { body }, Some(pr)) => {
                    let body = self
                        .public_text(body, crate::core::plan::render::DEFAULT_MAX_COMMENT_CHARS);
                    self.github
                        .create_comment(repo, pr, &body)
                        .await
                        .map(|_| ())
                }
                (
                    Outgoing::Status {
                        sha,
                        context,
                        state,
                        description,
                        target_url,
                    },
                    _,
                ) => {
                    let st = crate::app::ports::CommitStatus {
                        context: context.clone(),
                        state: *state,
                        description: self.public_text(description, usize::MAX),
                        target_url: target_url.clone(),
                    };
                    self.github.set_status(repo, sha, &st).await
                }
                (
                    Outgoing::Reaction {
                        comment_id,
                        content,
                    },
                    _,
                ) => self.github.add_reaction(repo, *comment_id, content).await,
                (Outgoing::Comment { .. }, None) => {
                    let _ = self
                        .store
                        .outbox_failed(row.id, "a comment needs a pull request")
                        .await;
                    continue;
                }
            };
            let outcome = match result {
                Ok(()) => self.store.outbox_sent(row.id, now_ms()).await,
                Err(e) if e.is_retryable() && row.attempts + 1 < MAX_ATTEMPTS => {
                    tracing::warn!(id = row.id, kind = row.item.message.kind(), error = %e, attempt = row.attempts + 1, "delivery failed; will retry");
                    self.store
                        .outbox_retry(
                            row.id,
                            &e.to_string(),
                            now_ms() + Self::backoff(row.attempts + 1),
                        )
                        .await
                }
                Err(e) => {
                    tracing::error!(id = row.id, kind = row.item.message.kind(), error = %e, "delivery failed for good");
                    self.store.outbox_failed(row.id, &e.to_string()).await
                }
            };
            if let Err(e) = outcome {
                tracing::error!(error = %format!("{e:#}"), "recording a delivery failed");
            }
        }
        n
    }
}

fn pr_target(e: &Event) -> Option<(crate::core::types::RepoName, crate::core::types::PrNumber)> {
    match e {
        Event::PullRequest { repo, pr, .. } => Some((repo.name.clone(), pr.number)),
        Event::Comment { repo, pr, .. } | Event::Review { repo, pr, .. } => {
            Some((repo.name.clone(), *pr))
        }
        _ => None,
    }
}
