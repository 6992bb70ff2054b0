//! The report of a finished run: its comment(s) rendered by `core::plan::render_comments`, its
//! final status, the `sluice/policy` status of a plan run, and audit entries for jobs that were
//! interrupted — written, and the run marked reported, in one transaction.

use super::Workers;
use crate::adapters::clock;
use crate::app::ports::StatusState;
use crate::app::ports::store::{
    Effects, JobReport, JobRow, OutboxItem, RunRow, StatusContext, Trigger,
};
use crate::core::audit::{AuditAction, AuditActor, AuditRecord, AuditResult};
use crate::core::job::{JobKind, JobState, RunTally};
use crate::core::plan::{
    CommandName, CommentLimits, ProjectOutcome, ProjectReport, RenderContext, render_comments,
};
use crate::core::policy::PolicyVerdict;
use crate::core::reply;

impl Workers {
    /// Writes a finished run's comment(s) and final status.
    pub async fn report(&self, run_id: i64) {
        let result = async {
            let Some(run) = self.store.run(run_id).await? else {
                return Ok(());
            };
            let jobs = self.store.jobs_of_run(run_id).await?;
            let mut effects = self.render_run(&run, &jobs);
            if run.trigger == Trigger::Merge {
                effects.extend(self.bot.after_merge_run(&run, &jobs).await?);
            } else if run.kind == JobKind::Plan {
                match self.bot.apply_gate_status(&run.repo, run.pr).await {
                    Ok(gate) => effects.outbox.extend(gate),
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "apply gate: not evaluated")
                    }
                }
            }
            self.store.report_run(run_id, effects, clock::now()).await
        }
        .await;
        match result {
            Ok(()) => self.outbox_ready.notify_one(),
            Err(e) => {
                tracing::error!(run_id, error = %format!("{e:#}"), "reporting a run failed; the sweeper will retry")
            }
        }
    }

    fn render_run(&self, run: &RunRow, jobs: &[JobRow]) -> Effects {
        let states: Vec<JobState> = jobs.iter().map(|j| j.state).collect();
        // Runs cancelled wholesale (PR closed, unlock) were already explained when cancelled.
        if !jobs.is_empty() && states.iter().all(|s| *s == JobState::Cancelled) {
            return Effects::default();
        }
        let reports: Vec<ProjectReport> = jobs.iter().map(job_report).collect();
        let (command, context) = match run.kind {
            JobKind::Plan => (CommandName::Plan, StatusContext::Plan),
            JobKind::Apply => (CommandName::Apply, StatusContext::Apply),
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
            .map(|body| OutboxItem::comment(&run.repo, run.pr, body))
            .collect();
        let state = if tally.ok() {
            StatusState::Success
        } else {
            StatusState::Failure
        };
        let status = |context, state, description| {
            OutboxItem::status(
                &run.repo,
                run.pr,
                &run.head_sha,
                context,
                state,
                description,
            )
        };
        out.push(status(context, state, tally.describe(run.kind)));
        let verdicts: Vec<PolicyVerdict> = jobs.iter().map(job_verdict).collect();
        if run.kind == JobKind::Plan
            && let Some((verdict, description)) = reply::status::policy(&verdicts)
        {
            let state = match verdict {
                PolicyVerdict::Fail => StatusState::Failure,
                PolicyVerdict::Pending => StatusState::Pending,
                _ => StatusState::Success,
            };
            out.push(status(StatusContext::Policy, state, description));
        }
        let audit = jobs
            .iter()
            .filter(|j| j.state == JobState::Interrupted)
            .map(|job| {
                let action = match run.kind {
                    JobKind::Plan => AuditAction::Plan,
                    JobKind::Apply => AuditAction::Apply,
                };
                let mut record =
                    AuditRecord::new(action, AuditActor::of(&run.actor), AuditResult::Interrupted)
                        .pr(&run.repo, run.pr)
                        .head(&run.head_sha)
                        .project(&job.project_name, &job.project_dir, &job.workspace);
                record.event_id = run.event_id.clone();
                record.job_id = Some(job.id);
                record
            })
            .collect();
        Effects::new(out, audit)
    }
}

/// The policy verdict stored with a job (`None` for jobs without a full report).
fn job_verdict(job: &JobRow) -> PolicyVerdict {
    match &job.report {
        Some(Ok(JobReport::Full { policy, .. })) => *policy,
        _ => PolicyVerdict::None,
    }
}

/// What a job's part of the run's comment shows: its full report, or why there is none.
fn job_report(job: &JobRow) -> ProjectReport {
    let skipped = |reason: String| ProjectReport {
        project: job.project_name.clone(),
        dir: job.project_dir.clone(),
        workspace: job.workspace.clone(),
        outcome: ProjectOutcome::Skipped { reason },
        notes: vec![],
    };
    match &job.report {
        Some(Ok(JobReport::Full { report, .. })) => report.clone(),
        Some(Ok(JobReport::Interrupted(why))) => skipped(reply::job::interrupted(job.kind, why)),
        Some(Ok(JobReport::Cancelled(why))) => skipped(reply::job::cancelled(why)),
        Some(Ok(JobReport::Skipped(why))) => skipped(reply::job::skipped(why)),
        Some(Err(e)) => skipped(reply::job::report_unreadable(&e.0)),
        None => skipped(reply::job::no_report(job.state)),
    }
}
