//! The report of a finished run: its comment(s) rendered by `core::plan::render_comments`, its
//! final status, the `sluice/policy` status of a plan run, and audit entries for jobs that were
//! interrupted — written, and the run marked reported, in one transaction.

use super::Workers;
use crate::adapters::clock;
use crate::app::ports::StatusState;
use crate::app::ports::store::{
    Effects, JobPayload, JobReport, JobRow, OutboxItem, Outgoing, RunRow, StatusContext, Trigger,
};
use crate::core::audit::{AuditAction, AuditActor, AuditRecord, AuditResult};
use crate::core::job::{JobKind, JobState, RunTally};
use crate::core::plan::{
    CommandName, CommentLimits, ProjectOutcome, ProjectReport, RenderContext, render_comments,
};
use crate::core::policy::PolicyVerdict;
use crate::core::reply;
use crate::core::review::checks::{
    CheckContext, CheckProject, project_check, projects_with_own_check, summary_check,
};
use crate::core::review::locate::Locations;
use crate::core::review::material::ReviewMaterial;
use crate::core::review::pr_review::ReviewContext;
use crate::core::review::surface::{PrObjects, PushOutput, push_writes};
use crate::core::types::ProjectName;

impl Workers {
    /// Writes a finished run's comment(s) and final status.
    pub async fn report(&self, run_id: i64) {
        let result = async {
            let Some(run) = self.store.run(run_id).await? else {
                return Ok(());
            };
            let jobs = self.store.jobs_of_run(run_id).await?;
            // A merge queue commit's report is its two checks, nothing on the pull request.
            if run.trigger == Trigger::MergeQueue {
                let effects = self.bot.after_queue_run(&run, &jobs).await?;
                return self.store.report_run(run_id, effects, clock::now()).await;
            }
            let mut effects = self.render_run(&run, &jobs).await;
            if run.trigger == Trigger::Merge {
                effects.extend(self.bot.after_merge_run(&run, &jobs).await?);
            } else {
                if run.kind == JobKind::Apply {
                    effects.extend(self.bot.automerge_after_apply(&run, &jobs).await);
                }
                // After a plan or an apply by comment, the gate says what is left to do.
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

    async fn render_run(&self, run: &RunRow, jobs: &[JobRow]) -> Effects {
        if run.kind == JobKind::State {
            return self.render_state_run(run, jobs);
        }
        let states: Vec<JobState> = jobs.iter().map(|j| j.state).collect();
        // Runs cancelled wholesale (PR closed, unlock) were already explained when cancelled.
        if !jobs.is_empty() && states.iter().all(|s| *s == JobState::Cancelled) {
            return Effects::default();
        }
        let reports: Vec<ProjectReport> = jobs.iter().map(job_report).collect();
        let (command, context) = match run.kind {
            JobKind::Plan => (CommandName::Plan, StatusContext::Plan),
            JobKind::Apply | JobKind::State => (CommandName::Apply, StatusContext::Apply),
        };
        let ctx = RenderContext {
            bot_name: self.settings.bot_name.clone(),
            command,
            head_sha: Some(run.head_sha.clone()),
            log_url: full_log_url(self.settings.public_url.as_deref(), run.id, jobs),
            limits: CommentLimits::default(),
            after_merge: match (run.kind, run.trigger) {
                (JobKind::Plan, Trigger::Merge | Trigger::MergeQueue) => Default::default(),
                (JobKind::Plan, _) => self.bot.on_merge_projects(run, jobs).await,
                (JobKind::Apply | JobKind::State, _) => Default::default(),
            },
        };
        let tally = RunTally::of(&states);
        // A plan run: the PR review, and the summary comment when it is sticky.
        let surface = match self.review_writes(run, jobs, &reports, &ctx).await {
            Ok(items) => items,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "review: building the review failed; the run is reported in comments");
                None
            }
        };
        // The summary comment stands for this run's comments when it was handled (written, or
        // left to the newer head's run when this one is late).
        let sticky = self.settings.sticky_summary && surface.is_some();
        let surface = surface.unwrap_or_default();
        let mut out: Vec<OutboxItem> = if sticky {
            Vec::new()
        } else {
            render_comments(&ctx, &reports)
                .into_iter()
                .map(|body| OutboxItem::comment(&run.repo, run.pr, body))
                .collect()
        };
        out.extend(surface.into_iter().filter(|item| {
            sticky
                || !matches!(&item.message, Outgoing::Write(w) if is_summary_write(&w.key, run.pr))
        }));
        let state = if tally.ok() {
            StatusState::Success
        } else {
            StatusState::Failure
        };
        // A destroy plan of a project the PR removes settles nothing until it is applied.
        let removed_destroys = jobs
            .iter()
            .filter(|j| matches!(&j.payload, Ok(JobPayload::Plan(p)) if p.config_commit.is_some()))
            .count();
        let (state, description) = if state == StatusState::Success && removed_destroys > 0 {
            (
                StatusState::Pending,
                reply::status::removed_destroy_planned(removed_destroys),
            )
        } else {
            (state, tally.describe(run.kind))
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
        out.push(status(context, state, description));
        if run.kind == JobKind::Plan && self.github.is_app() {
            out.extend(self.plan_check_runs(run, jobs, &reports, ctx.log_url.as_deref()));
        }
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
                    JobKind::State => AuditAction::StateCommand,
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

impl Workers {
    /// A state run's report (`import` / `state rm`): one comment per job with the engine's
    /// output (redacted by the runner) or why it did not run; no commit status (what changed
    /// shows in the next plan); an audit entry for a job that was interrupted.
    fn render_state_run(&self, run: &RunRow, jobs: &[JobRow]) -> Effects {
        // Cancelled wholesale (PR closed, unlock): already explained when cancelled.
        if !jobs.is_empty() && jobs.iter().all(|j| j.state == JobState::Cancelled) {
            return Effects::default();
        }
        let bot = &self.settings.bot_name;
        let mut out = Vec::new();
        let mut audit = Vec::new();
        for job in jobs {
            let cmd = match &job.payload {
                Ok(JobPayload::State(s)) => s.command.name(),
                _ => "state command",
            };
            let text = match &job.report {
                Some(Ok(JobReport::Full { report, .. })) => match &report.outcome {
                    ProjectOutcome::Applied { output, .. } => Ok(output.clone()),
                    ProjectOutcome::ApplyFailed { error } => Err(error.clone()),
                    other => Err(format!("{other:?}")),
                },
                Some(Ok(JobReport::Interrupted(why)))
                | Some(Ok(JobReport::Cancelled(why)))
                | Some(Ok(JobReport::Skipped(why))) => Err(why.clone()),
                Some(Err(e)) => Err(e.0.clone()),
                None => Err("the job left no report".to_string()),
            };
            let body = reply::state::result(
                cmd,
                bot,
                &job.project_name,
                text.as_deref().map_err(String::as_str),
            );
            out.push(OutboxItem::comment(&run.repo, run.pr, body));
            if job.state == JobState::Interrupted {
                let mut record = AuditRecord::new(
                    AuditAction::StateCommand,
                    AuditActor::of(&run.actor),
                    AuditResult::Interrupted,
                )
                .pr(&run.repo, run.pr)
                .head(&run.head_sha)
                .project(&job.project_name, &job.project_dir, &job.workspace);
                record.event_id = run.event_id.clone();
                record.job_id = Some(job.id);
                audit.push(record);
            }
        }
        Effects::new(out, audit)
    }

    /// The check runs of a finished plan (GitHub App only): `sluice/plan` over every project
    /// and one `sluice/plan: <project>` for each of the projects that need attention most (at
    /// most [`MAX_PROJECT_CHECKS`], so a push creates a bounded number of check runs). Their
    /// writes go through the write budget like every review and summary write.
    fn plan_check_runs(
        &self,
        run: &RunRow,
        jobs: &[JobRow],
        reports: &[ProjectReport],
        log_url: Option<&str>,
    ) -> Vec<OutboxItem> {
        // Policies that block each project's apply, by name (a broken policy set has none).
        let failed: Vec<(ProjectName, Vec<String>)> = jobs
            .iter()
            .filter_map(|j| match &j.report {
                Some(Ok(JobReport::Full {
                    policy: PolicyVerdict::Fail,
                    policy_names,
                    ..
                })) => Some((
                    j.project_name.clone(),
                    match policy_names.is_empty() {
                        true => vec!["the policies could not be read".to_string()],
                        false => policy_names.clone(),
                    },
                )),
                _ => None,
            })
            .collect();
        let failed_of = |project: &ProjectName| {
            failed
                .iter()
                .find(|(p, _)| p == project)
                .map_or(&[][..], |(_, names)| names.as_slice())
        };
        // Annotations on the `.tf` lines, from what the worker located (as the review's).
        let materials: Vec<Option<&ReviewMaterial>> = jobs
            .iter()
            .map(|j| match &j.report {
                Some(Ok(JobReport::Full {
                    review: Some(m), ..
                })) => Some(m.as_ref()),
                _ => None,
            })
            .collect();
        let locations: Vec<Option<Locations>> = materials
            .iter()
            .map(|m| m.map(ReviewMaterial::locations))
            .collect();
        let annotate = materials
            .iter()
            .flatten()
            .next()
            .map(|m| m.comments)
            .unwrap_or_default();
        let ctx = CheckContext {
            head_sha: &run.head_sha,
            bot_name: &self.settings.bot_name,
            command: CommandName::Plan,
            log_url,
            started_at: None,
            completed_at: None,
            annotate,
            max_annotations: MAX_ANNOTATIONS,
        };
        let project_checks = projects_with_own_check(reports, MAX_PROJECT_CHECKS)
            .into_iter()
            .map(|i| {
                project_check(
                    &ctx,
                    &CheckProject {
                        report: &reports[i],
                        plan: materials.get(i).copied().flatten().map(|m| &m.plan),
                        locations: locations.get(i).and_then(Option::as_ref),
                        failed_policies: failed_of(&reports[i].project),
                    },
                )
            })
            .collect();
        let out = PushOutput {
            head_checks: vec![summary_check(&ctx, reports, &failed)],
            project_checks,
            ..PushOutput::default()
        };
        let review = ReviewContext {
            pr: run.pr,
            head_sha: &run.head_sha,
            summary_url: None,
            log_url,
        };
        push_writes(&review, &PrObjects::default(), out)
            .into_iter()
            .map(|w| OutboxItem::write(&run.repo, run.pr, w))
            .collect()
    }
}

/// Whether the write with `key` is the summary comment or one of its follow-ups.
fn is_summary_write(key: &str, pr: crate::core::types::PrNumber) -> bool {
    key == crate::core::review::surface::sticky_key(pr)
        || key.starts_with(&format!("pr/{}/detail/", pr.get()))
}

/// Annotations per check run; GitHub takes 50 per request, so this is at most 20 requests.
pub const MAX_ANNOTATIONS: usize = 1_000;

/// Per-project check runs per push, at most: the rest are listed in `sluice/plan`.
pub const MAX_PROJECT_CHECKS: usize = 20;

/// The policy verdict stored with a job (`None` for jobs without a full report).
fn job_verdict(job: &JobRow) -> PolicyVerdict {
    match &job.report {
        Some(Ok(JobReport::Full { policy, .. })) => *policy,
        _ => PolicyVerdict::None,
    }
}

/// What a job's part of the run's comment shows: its full report, or why there is none.
pub(super) fn job_report(job: &JobRow) -> ProjectReport {
    let skipped = |reason: String| ProjectReport {
        project: job.project_name.clone(),
        dir: job.project_dir.clone(),
        workspace: job.workspace.clone(),
        outcome: ProjectOutcome::Skipped { reason },
        notes: vec![],
        destroy_plan: false,
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

/// The "Full log" link of a run's comment, under `public_url`: the job's log page for a run of
/// one job, the run's page (which links each job's log) otherwise; none without `public_url`.
fn full_log_url(public_url: Option<&str>, run_id: i64, jobs: &[JobRow]) -> Option<String> {
    use crate::core::ui::pages::routes;
    let public = public_url?.trim_end_matches('/');
    Some(match jobs {
        [job] => routes::full_log_url(public, job.id),
        _ => format!("{public}{}", routes::run(run_id)),
    })
}
