//! The state job (`import` / `state rm`, `core::state_command`): the gate was checked when the
//! command was commented and the run holds the project's lock; right before the engine starts,
//! the job checks again that the pull request is open and at the same head. The output goes
//! through the runner's redaction into the report; a success discards the pull request's plans
//! of the project (the store does, with the job's result).

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::Workers;
use super::jobs::{failed, project_report};
use crate::adapters::plan_files;
use crate::app::ports::PullState;
use crate::app::ports::store::{ClaimedJob, JobFinish, JobPayload, JobReport, StateJob};
use crate::app::project_run::ProjectJob;
use crate::core::audit::{AuditRecord, AuditResult, ErrorClass};
use crate::core::job::JobState;
use crate::core::plan::{FailedStage, ProjectOutcome};
use crate::core::policy::PolicyVerdict;
use crate::core::reply;
use crate::core::state_command::StateCommand;
use crate::core::workflow::WorkflowCommand;

impl Workers {
    pub(super) async fn state_job(&self, c: &ClaimedJob, cancel: CancellationToken) -> JobFinish {
        let job: Option<&StateJob> = match &c.job.payload {
            Ok(JobPayload::State(job)) => Some(job),
            _ => None,
        };
        let record = self.audit_base(c, job.map(|j| &j.project));
        let fail = |error: String, record: AuditRecord, class: ErrorClass| {
            let outcome = ProjectOutcome::ApplyFailed { error };
            failed(self.state_report(c, outcome), record.error(class))
        };
        let Some(job) = job else {
            let why = match &c.job.payload {
                Err(e) => e.0.clone(),
                Ok(_) => "another kind of job's payload on a state job".to_string(),
            };
            return fail(
                reply::job::project_unreadable(&why),
                record,
                ErrorClass::Internal,
            );
        };
        let mut record = crate::app::bot::state_record(record, &job.command);
        record.approvals = job.approvals.clone();
        record.policy = job.policy.clone();
        // What may have changed since the gate: the pull request closed, or a push.
        match self.github.get_pull(&c.run.repo, c.run.pr).await {
            Ok(pull) if pull.state != PullState::Open => {
                return fail(
                    "the pull request was closed".into(),
                    record,
                    ErrorClass::PrClosed,
                );
            }
            Ok(pull) if pull.head_sha != c.run.head_sha => {
                let why = format!(
                    "new commits were pushed (head is now {}) after the command was commented; \
                     comment it again",
                    pull.head_sha.short()
                );
                return fail(why, record, ErrorClass::StalePlan);
            }
            Ok(_) => {}
            Err(e) => {
                let why = format!("reading the pull request: {e}");
                return fail(why, record, ErrorClass::GitHub);
            }
        }
        let git = match self.git_for(c, None).await {
            Ok(g) => g,
            Err(e) => {
                let class = ErrorClass::Stage(FailedStage::Checkout);
                return fail(format!("{e:#}"), record, class);
            }
        };
        let log = self.start_log(c.job.id, crate::core::ui::job_log::LogStep::Apply);
        let command = match job.command {
            StateCommand::Import { .. } => WorkflowCommand::Import,
            StateCommand::StateRm { .. } => WorkflowCommand::StateRm,
        };
        let run = ProjectJob {
            pull: Some(self.pull_info(c).await),
            user: c.run.actor.login.clone(),
            git: &git,
            repo: Some(&c.run.repo),
            commit: &c.run.head_sha,
            base: &c.run.base_sha,
            project: &job.project,
            job_id: format!("job-{}", c.job.id),
            extra_args: job.comment_args(),
            sink: log
                .clone()
                .map(|l| l as Arc<dyn crate::adapters::process::LineSink>),
            cancel,
        };
        let result = self.runner.state_command(&run, command).await;
        plan_files::remove_job_dir(&self.runner.jobs_dir.join(format!("job-{}-state", c.job.id)));
        drop(run);
        if let Some(log) = log {
            log.finish().await;
        }
        match result {
            Ok(output) => {
                let mut record = record.result(AuditResult::Success);
                record.engine = Some(job.project.engine.as_str().to_string());
                let outcome = ProjectOutcome::Applied {
                    output,
                    summary: None,
                };
                JobFinish {
                    state: JobState::Succeeded,
                    report: self.state_report(c, outcome),
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

    /// A state job's report: the outcome and the usual notes, no policy verdict.
    fn state_report(&self, c: &ClaimedJob, outcome: ProjectOutcome) -> JobReport {
        JobReport::Full {
            report: project_report(c, outcome, self.job_notes()),
            policy: PolicyVerdict::None,
            policy_names: vec![],
            review: None,
        }
    }
}
