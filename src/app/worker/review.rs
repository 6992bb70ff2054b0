//! The plan where reviewers read (PRODUCT.md §17), from the app's side: after a plan, the
//! worker that has the commit computes each project's review input (where each planned change
//! comes from in the `.tf` files, `core::review::locate`, read from the mirror on a bounded
//! reading thread); when the run is reported, the PR review and the sticky summary comment are
//! built from those inputs, the PR's files (for which lines GitHub can comment on) and what the
//! store remembers of the PR's GitHub objects, and queued as paced writes.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::Workers;
use crate::adapters::git::{FileRead, GitRepo};
use crate::app::ports::store::{ClaimedJob, JobReport, JobRow, OutboxItem, RunRow};
use crate::core::command::{CommandKind, project_hint};
use crate::core::job::JobKind;
use crate::core::lock::LockKey;
use crate::core::plan::{CommandName, Plan, ProjectOutcome, ProjectReport, RenderContext};
use crate::core::policy::PolicyVerdict;
use crate::core::projects::Project;
use crate::core::review::locate::{LocateInput, locate, module_dirs};
use crate::core::review::material::ReviewMaterial;
use crate::core::review::patch::PrDiff;
use crate::core::review::pr_review::{
    ReviewComments, ReviewContext, ReviewOptions, ReviewProject, build_review, is_late,
};
use crate::core::review::sticky::{
    LockCell, PastRun, PolicyCell, StickyContext, StickyLimits, StickyRow, StickyRun, record_run,
    render_sticky,
};
use crate::core::review::surface::{PushOutput, push_writes};
use crate::core::types::{CommitSha, PrNumber};

/// Earlier runs the store keeps for the summary comment's history fold.
const HISTORY: usize = 10;

impl Workers {
    /// The review input of a fresh plan: the base branch's `review_comments`, and where each
    /// planned change comes from at the head (and at the base, for configuration the PR
    /// removed). `None` when the files cannot be read in time: the review then says nothing of
    /// this project beyond the summary comment (never an error of the job).
    pub(super) async fn review_material(
        &self,
        c: &ClaimedJob,
        git: &GitRepo,
        project: &Project,
        plan: &Plan,
    ) -> Option<Box<ReviewMaterial>> {
        let (git, head, base) = (git.clone(), c.run.head_sha.clone(), c.run.base_sha.clone());
        let rules =
            crate::app::repo_state::RepoRules::new(self.settings.server_rules(), Some(&c.run.repo))
                .into_branch(&c.run.base_ref);
        let (dir, plan) = (project.dir.clone(), plan.clone());
        let bounds = self.settings.limits.hcl();
        let budget = std::time::Duration::from_secs(self.settings.limits.detection_timeout_secs);
        let work = move || -> anyhow::Result<ReviewMaterial> {
            let comments = super::super::repo_state::load_config_at(&git, &base, &rules)?
                .0
                .map(|c| c.review_comments)
                .unwrap_or_default();
            if comments == ReviewComments::Off {
                return Ok(ReviewMaterial::new(&plan, &Default::default(), comments));
            }
            let mut dirs: Vec<String> = vec![dir.as_str().to_string()];
            dirs.extend(module_dirs(&dir, &plan).into_iter().map(|m| m.dir));
            dirs.sort();
            dirs.dedup();
            let head_files = tf_files(&git, &head, &dirs)?;
            let base_files = tf_files(&git, &base, &dirs)?;
            let input = LocateInput {
                project_dir: &dir,
                head: &head_files,
                base: Some(&base_files),
                bounds,
            };
            let locations = locate(&plan, &input);
            Ok(ReviewMaterial::new(&plan, &locations, comments))
        };
        match crate::app::bounded::run("reading the project's files for the review", budget, work)
            .await
        {
            Ok(Ok(m)) => Some(Box::new(m)),
            Ok(Err(e)) => {
                tracing::warn!(error = %format!("{e:#}"), "review: reading the project's files failed");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "review: reading the project's files failed");
                None
            }
        }
    }

    /// The review and summary comment writes of a finished plan run, against what the store
    /// knows of the PR's objects (so the summary is edited, the previous review superseded);
    /// `None` for other runs. The PR's files come from GitHub; when they cannot be listed,
    /// every change is mentioned in the review body instead of on a line. A run of a head the
    /// PR has since left writes neither a review nor the summary (the newest head's run tops
    /// it); it is only recorded in the summary's history, below the newest head's runs.
    pub(super) async fn review_writes(
        &self,
        run: &RunRow,
        jobs: &[JobRow],
        reports: &[ProjectReport],
        render: &RenderContext,
    ) -> anyhow::Result<Option<Vec<OutboxItem>>> {
        if run.kind != JobKind::Plan {
            return Ok(None);
        }
        // A plan of some projects (`plan -p x`, a button) leaves the others' plans of the same
        // head current: the review and the summary keep them, so they still show every
        // project the PR would apply.
        let carried = self.carried_jobs(run, jobs).await?;
        let jobs: Vec<JobRow> = jobs
            .iter()
            .cloned()
            .chain(carried.iter().cloned())
            .collect();
        let reports: Vec<ProjectReport> = reports
            .iter()
            .cloned()
            .chain(carried.iter().map(super::report::job_report))
            .collect();
        let (jobs, reports) = (jobs.as_slice(), reports.as_slice());
        let mut known = self.store.pr_objects(&run.repo, run.pr).await?;
        let materials: Vec<(&JobRow, &ReviewMaterial)> = jobs
            .iter()
            .filter_map(|j| match &j.report {
                Some(Ok(JobReport::Full {
                    review: Some(m), ..
                })) => Some((j, m.as_ref())),
                _ => None,
            })
            .collect();
        let comments = materials
            .first()
            .map(|(_, m)| m.comments)
            .unwrap_or_default();
        let wants_review = comments != ReviewComments::Off
            && materials
                .iter()
                .any(|(_, m)| !m.plan.resource_changes.is_empty());
        let diff = if wants_review {
            match self.github.list_pull_files(&run.repo, run.pr).await {
                Ok(files) => PrDiff::from_files(&files),
                Err(e) => {
                    tracing::warn!(error = %e, "review: listing the PR's files failed; changes go in the review body");
                    PrDiff::default()
                }
            }
        } else {
            PrDiff::default()
        };
        let locations: Vec<_> = materials.iter().map(|(_, m)| m.locations()).collect();
        let projects: Vec<ReviewProject<'_>> = materials
            .iter()
            .zip(&locations)
            .map(|((j, m), l)| ReviewProject {
                project: &j.project_name,
                dir: &j.project_dir,
                workspace: &j.workspace,
                plan: &m.plan,
                locations: l,
                summary: Some(&m.summary),
            })
            .collect();
        let ctx = ReviewContext {
            pr: run.pr,
            head_sha: &run.head_sha,
            summary_url: None,
            log_url: None,
        };
        let opts = ReviewOptions {
            comments,
            ..ReviewOptions::default()
        };
        // A plan of a head the PR has since left gets no review: its lines are about an
        // older commit, and the newer head's review must stay current.
        let latest = match wants_review || known.review.is_some() || self.settings.sticky_summary {
            true => self.latest_head(&run.repo, run.pr).await,
            false => None,
        };
        let late = is_late(&run.head_sha, latest.as_ref());
        let review = if wants_review && !late {
            build_review(&ctx, &projects, &diff, &opts)
        } else {
            None
        };

        let sticky_run = self.sticky_run(run, jobs, reports, render).await?;
        let statuses_only = (!self.github.is_app())
            .then_some("Sluice posts as a token, and only a GitHub App can create check runs.");
        let sticky_ctx = StickyContext {
            pr: run.pr,
            bot_name: &self.settings.bot_name,
            statuses_only,
            limits: StickyLimits::default(),
            after_merge: &render.after_merge,
        };
        let sticky = (!late)
            .then(|| render_sticky(&sticky_ctx, &sticky_run, &known.history, known.live_slots));

        // The previous review is superseded when the new one is posted (the deliverer knows
        // which one was last posted then); with no new review, now.
        let mut against = known.clone();
        if review.is_some() || late {
            against.review = None;
        }
        let out = PushOutput {
            sticky,
            review,
            ..PushOutput::default()
        };
        let items = push_writes(&ctx, &against, out)
            .into_iter()
            .map(|w| OutboxItem::write(&run.repo, run.pr, w))
            .collect();

        record_run(
            &mut known.history,
            PastRun::of(&sticky_run),
            latest.as_ref(),
            HISTORY,
        );
        self.store
            .update_pr_history(
                &run.repo,
                run.pr,
                &known.history,
                crate::adapters::clock::now(),
            )
            .await?;
        Ok(Some(items))
    }

    /// The summary's newest run: one row per project of `jobs`, with who holds its lock now
    /// (this PR, another one, or nobody).
    async fn sticky_run(
        &self,
        run: &RunRow,
        jobs: &[JobRow],
        reports: &[ProjectReport],
        render: &RenderContext,
    ) -> anyhow::Result<StickyRun> {
        let holders: BTreeMap<LockKey, PrNumber> = self
            .store
            .locks(Some(&run.repo))
            .await?
            .into_iter()
            .map(|l| (l.key, l.pr))
            .collect();
        Ok(StickyRun {
            head_sha: run.head_sha.clone(),
            command: CommandName::Plan,
            at: shown_time(crate::adapters::clock::now().get()),
            log_url: render.log_url.clone(),
            rows: jobs
                .iter()
                .zip(reports)
                .map(|(j, r)| self.sticky_row(run.pr, &holders, &render.after_merge, j, r))
                .collect(),
        })
    }

    /// The jobs of the PR's other current plans of `run`'s head: plans of projects `run` did
    /// not plan (none of `jobs`), neither discarded nor applied, oldest first.
    async fn carried_jobs(&self, run: &RunRow, jobs: &[JobRow]) -> anyhow::Result<Vec<JobRow>> {
        let mut carried = Vec::new();
        for plan in self.store.current_plans(&run.repo, run.pr).await? {
            let planned_now = jobs
                .iter()
                .any(|j| j.project_dir == plan.project_dir && j.workspace == plan.workspace);
            if plan.head_sha != run.head_sha || planned_now {
                continue;
            }
            if let Some(job) = self.store.job(plan.job_id).await? {
                carried.push(job);
            }
        }
        Ok(carried)
    }

    /// The PR's head now, as GitHub tells it (a sighting would miss a force-push back to an
    /// earlier commit); `None` when GitHub cannot be asked (the plan is then taken as current).
    pub(super) async fn latest_head(
        &self,
        repo: &crate::core::types::RepoName,
        pr: PrNumber,
    ) -> Option<CommitSha> {
        match self.github.get_pull(repo, pr).await {
            Ok(pull) => Some(pull.head_sha),
            Err(e) => {
                tracing::warn!(error = %e, "review: reading the PR's head failed; the review is taken as current");
                None
            }
        }
    }

    /// One project's row of the summary comment. Its lock cell is who holds the lock of its
    /// dir and workspace now (`holders`): this PR, another PR (named: the one a queued or
    /// refused project waits for), or nobody.
    fn sticky_row(
        &self,
        pr: PrNumber,
        holders: &BTreeMap<LockKey, PrNumber>,
        after_merge: &std::collections::BTreeSet<crate::core::types::ProjectName>,
        job: &JobRow,
        report: &ProjectReport,
    ) -> StickyRow {
        let key = LockKey {
            dir: job.project_dir.clone(),
            workspace: job.workspace.clone(),
        };
        let lock = LockCell::of(holders.get(&key).copied(), pr);
        let log_url = self.settings.public_url.as_deref().map(|public| {
            crate::core::ui::pages::routes::full_log_url(public.trim_end_matches('/'), job.id)
        });
        let policy = match &job.report {
            Some(Ok(JobReport::Full {
                policy,
                policy_names,
                ..
            })) => {
                let policies = policy_names.clone();
                match policy {
                    PolicyVerdict::Fail => PolicyCell::Failed { policies },
                    PolicyVerdict::Pending => PolicyCell::Pending { policies },
                    PolicyVerdict::Warn => PolicyCell::Warned { policies },
                    PolicyVerdict::Pass => PolicyCell::Passed,
                    PolicyVerdict::None => PolicyCell::None,
                }
            }
            _ => PolicyCell::None,
        };
        let bot = &self.settings.bot_name;
        let next = match &report.outcome {
            // Applied by the merge, not by a comment: the fold says so.
            ProjectOutcome::Planned { .. } if after_merge.contains(&report.project) => None,
            ProjectOutcome::Planned { summary, .. } if summary.has_changes() => {
                Some(project_hint(bot, CommandKind::Apply, &report.project))
            }
            ProjectOutcome::PlanFailed { .. } | ProjectOutcome::Skipped { .. } => {
                Some(project_hint(bot, CommandKind::Plan, &report.project))
            }
            _ => None,
        };
        StickyRow {
            report: report.clone(),
            policy,
            lock,
            next,
            log_url,
        }
    }
}

/// `2026-11-22 15:03 UTC`.
fn shown_time(unix_ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(unix_ms)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

/// The `.tf`/`.tofu` files directly in `dirs` at `commit` (path → text); files over
/// `limits.file_bytes` are left out (the review then cannot point into them).
fn tf_files(
    git: &GitRepo,
    commit: &CommitSha,
    dirs: &[String],
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut paths = Vec::new();
    for dir in dirs {
        let listed = if dir == "." {
            git.list_dir(commit, "")?
        } else {
            git.list_dir(commit, dir)?
        };
        paths.extend(
            listed
                .into_iter()
                .map(|p| p.trim_start_matches('/').to_string())
                .filter(|p| p.ends_with(".tf") || p.ends_with(".tofu")),
        );
    }
    let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
    let read = git.read_files_bounded(commit, &refs)?;
    Ok(paths
        .iter()
        .zip(read)
        .filter_map(|(p, f)| match f {
            FileRead::Text(t) => Some((p.clone(), t)),
            _ => None,
        })
        .collect())
}
