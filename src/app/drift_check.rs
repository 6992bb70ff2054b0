//! One drift check (PRODUCT.md §14): for one project at one commit of the default branch, in
//! the same job dir, sandbox, credentials and runner as a PR plan, `init`, then
//! `plan -refresh-only -lock=false` ("did the live infrastructure change outside Git?") and
//! `plan -lock=false` ("is Git ahead of it?"), each shown as JSON and classified together by
//! [`crate::core::drift::classify`]. Used by `sluice drift check` and by the server's drift jobs.
//!
//! The state lock is never taken: a check is read-only and must not block an apply (nor wait
//! behind one). Saved plans stay inside the job dir and are never applied; only their JSON
//! (written by Sluice to a fresh file outside the job dir, within `runner.plan_json_cap_bytes`)
//! is read. Every directory the check made is removed when it ends, whatever happened.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::project_run::{Failed, ProjectJob, Runner, prepare, step_failure, with_left_out};
use crate::adapters::terraform::Engines;
use crate::core::drift::{CheckPlans, Classification, VersionFacts, VersionSnapshot, classify};
use crate::core::plan::{FailedStage, Plan, parse_plan_json};

/// The lock file is read (for provider upgrades) up to this size; a larger one counts as
/// unknown versions.
const MAX_LOCK_FILE_BYTES: u64 = 1 << 20;

/// The arguments of the refresh-only plan.
pub const REFRESH_ONLY_ARGS: [&str; 2] = ["-refresh-only", "-lock=false"];
/// The arguments of the normal plan.
pub const PLAN_ARGS: [&str; 1] = ["-lock=false"];

/// What Sluice knows about the project's last apply, for the upgrade rule.
#[derive(Debug, Clone, Default)]
pub struct AppliedFacts {
    /// Versions at the last commit Sluice applied for the project.
    pub last_applied: Option<VersionSnapshot>,
    /// Whether any file of the project other than its lock file changed since then.
    pub config_changed: bool,
}

/// A successful check.
#[derive(Debug, Clone)]
pub struct Checked {
    pub classification: Classification,
    /// The engine's version as its plan JSON reports it (e.g. `1.0.3`).
    pub engine_version: String,
    /// Wall time of the whole check.
    pub duration: Duration,
    /// Time spent in engine commands alone (init, both plans, both shows), for the overhead
    /// measurement.
    pub engine_time: Duration,
}

impl Runner {
    /// Runs one check of `job.project` at `job.commit`. `job.extra_args` is ignored: a check
    /// always runs the whole project. Any failure (engine, plan JSON over its cap, a plan that
    /// cannot be classified) is a [`Failed`] whose error is redacted and names its stage.
    pub async fn drift_check(
        &self,
        job: &ProjectJob<'_>,
        applied: &AppliedFacts,
    ) -> Result<Checked, Failed> {
        let started = Instant::now();
        let job_dir = self.jobs_dir.join(&job.job_id);
        let result = self.drift_check_in(job, applied, started).await;
        let dirs = [
            job_dir,
            self.jobs_dir.join(format!("{}.etc", job.job_id)),
            self.jobs_dir.join(format!("{}.out", job.job_id)),
        ];
        let _ = tokio::task::spawn_blocking(move || {
            for d in dirs {
                let _ = std::fs::remove_dir_all(d);
            }
        })
        .await;
        result
    }

    async fn drift_check_in(
        &self,
        job: &ProjectJob<'_>,
        applied: &AppliedFacts,
        started: Instant,
    ) -> Result<Checked, Failed> {
        let fail = |stage: FailedStage, error: String| Failed {
            stage,
            error,
            duration: started.elapsed(),
        };
        let redactor = self.redactor();
        let binary = self
            .engine_binary(job)
            .await
            .map_err(|e| fail(FailedStage::Config, e))?;
        let env = self
            .project_env(job)
            .await
            .map_err(|e| fail(FailedStage::Config, e))?;
        let prepared = prepare(self, job, "").await.map_err(|(s, e)| fail(s, e))?;
        // The lock file as committed, read before `init` may write one.
        let lock_file = read_lock_file(&prepared.job_dir.join(&prepared.cwd));
        let out_dir = self.jobs_dir.join(format!("{}.out", job.job_id));
        std::fs::create_dir_all(&out_dir)
            .with_context(|| format!("creating {}", out_dir.display()))
            .map_err(|e| fail(FailedStage::Checkout, format!("{e:#}")))?;
        let tf = self.engines(
            job,
            &binary,
            &prepared.cli_config,
            &prepared.job_dir,
            prepared.cwd.clone(),
            env,
        );
        let engine = job.project.engine.default_binary();
        let left_out = &prepared.left_out;
        let mut engine_time = Duration::ZERO;

        let step = tf
            .init(&[])
            .await
            .map_err(|e| fail(FailedStage::Init, format!("{e:#}")))?;
        engine_time += step.output.duration;
        if !step.ok {
            return Err(fail(
                FailedStage::Init,
                with_left_out(
                    step_failure(&format!("{engine} init"), &step, &redactor),
                    left_out,
                ),
            ));
        }
        if !job.project.workspace.is_default() {
            let step = tf
                .select_workspace(job.project.workspace.as_str())
                .await
                .map_err(|e| fail(FailedStage::Workspace, format!("{e:#}")))?;
            engine_time += step.output.duration;
            if !step.ok {
                return Err(fail(
                    FailedStage::Workspace,
                    step_failure(&format!("{engine} workspace select"), &step, &redactor),
                ));
            }
        }
        let mut plans = Vec::with_capacity(2);
        for (name, args) in [
            ("refresh-only", &REFRESH_ONLY_ARGS[..]),
            ("normal", &PLAN_ARGS[..]),
        ] {
            let (plan, took) = self
                .plan_and_show(&tf, &out_dir, name, args)
                .await
                .map_err(|(stage, e)| fail(stage, with_left_out(e, left_out)))?;
            engine_time += took;
            plans.push(plan);
        }
        let (refresh_only, plan) = (&plans[0], &plans[1]);
        let engine_version = plan.terraform_version.clone();
        let facts = VersionFacts {
            last_applied: applied.last_applied.clone(),
            current: VersionSnapshot {
                engine_version: Some(engine_version.clone()),
                lock_file,
            },
            config_changed: applied.config_changed,
        };
        let classification = classify(
            CheckPlans { refresh_only, plan },
            Some(&facts),
            &self.secrets,
        )
        .map_err(|e| fail(FailedStage::Plan, e.to_string()))?;
        Ok(Checked {
            classification,
            engine_version,
            duration: started.elapsed(),
            engine_time,
        })
    }

    /// `plan ARGS -out=<name>.tfplan` then `show -json` of it into `<out_dir>/<name>.json`
    /// (a fresh file Sluice creates, within the JSON cap), parsed.
    async fn plan_and_show(
        &self,
        tf: &Engines<'_>,
        out_dir: &Path,
        name: &str,
        args: &[&str],
    ) -> Result<(Plan, Duration), (FailedStage, String)> {
        let redactor = self.redactor();
        let engine = tf.engine.default_binary();
        let guest_plan = tf.guest_work().join(format!("{name}.tfplan"));
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let step = tf
            .plan(&guest_plan, &args)
            .await
            .map_err(|e| (FailedStage::Plan, format!("{e:#}")))?;
        let mut took = step.output.duration;
        if !step.ok {
            return Err((
                FailedStage::Plan,
                step_failure(
                    &format!("{engine} plan {}", args.join(" ")),
                    &step,
                    &redactor,
                ),
            ));
        }
        let json_path = out_dir.join(format!("{name}.json"));
        let step = tf
            .show_json(&guest_plan, &json_path)
            .await
            .map_err(|e| (FailedStage::Show, format!("{e:#}")))?;
        took += step.output.duration;
        if step.output.stdout_file_overflow {
            return Err((
                FailedStage::Show,
                format!(
                    "the {name} plan's JSON is larger than the configured cap ({} bytes, \
                     runner.plan_json_cap_bytes); split the project or raise the cap",
                    self.limits.plan_json_cap
                ),
            ));
        }
        if !step.ok {
            return Err((
                FailedStage::Show,
                step_failure(&format!("{engine} show -json"), &step, &redactor),
            ));
        }
        let json = std::fs::read(&json_path)
            .with_context(|| format!("reading {}", json_path.display()))
            .map_err(|e| (FailedStage::Show, format!("{e:#}")))?;
        let plan = parse_plan_json(&json)
            .map_err(|e| (FailedStage::Show, format!("the {name} plan's JSON: {e}")))?;
        Ok((plan, took))
    }
}

/// The project's committed `.terraform.lock.hcl`, if it is a regular file of at most
/// [`MAX_LOCK_FILE_BYTES`] (never through a link); `None` otherwise.
fn read_lock_file(project_dir: &Path) -> Option<String> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(project_dir.join(".terraform.lock.hcl"))
        .ok()?;
    if !f.metadata().ok()?.is_file() {
        return None;
    }
    let mut text = String::new();
    f.take(MAX_LOCK_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .ok()?;
    (text.len() as u64 <= MAX_LOCK_FILE_BYTES).then_some(text)
}
