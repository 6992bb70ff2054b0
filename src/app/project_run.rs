//! One project's plan or apply, end to end: a fresh job dir with the exact commit exported into
//! it, the engine run in the sandbox, the saved plan hashed and summarised from
//! `terraform show -json`. Shared by `sluice preview` and the server's workers, so both behave
//! the same.
//!
//! Apply never runs in the plan's job dir: it gets a fresh export of the same commit, the
//! hash-verified plan file and a fresh `init`. Nothing the plan run wrote (providers, modules,
//! scripts) is executed by the apply — only the reviewed plan file crosses over.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::adapters::git::GitRepo;
use crate::adapters::process::LineSink;
use crate::adapters::sandbox::Sandbox;
use crate::adapters::terraform::{EngineResolver, Engines, Limits, Step, cli_config_text};
use crate::config::{Secret, Settings};
use crate::core::base_rules::BaseRules;
use crate::core::plan::{FailedStage, PlanSummary, Redactor, parse_plan_json, render_diff};
use crate::core::projects::{Project, opentofu_only_files};
use crate::core::repo_config::env_name_refusal;
use crate::core::types::{CommitSha, Engine, ProjectDir, RepoName};
use crate::core::workflow::{
    BuiltinStep, PullInfo, RunPaths, StepContext, Workflow, WorkflowCommand, step_plan,
};

use super::workflow_run::{StageOutput, StageRun, run_stage};
use crate::core::ui::job_log::LogStep;

use super::repo_state::{RepoRules, base_rules_at};
use crate::core::server_rules::ServerRules;

/// Shared, long-lived state for running projects, built once from the settings.
pub struct Runner {
    pub sandbox: Sandbox,
    pub engines: EngineResolver,
    /// Downloads pinned engine versions from `engine_mirrors` (`None`: none configured).
    pub engine_installer: Option<Arc<crate::adapters::engine_install::EngineInstaller>>,
    pub mirror: Option<PathBuf>,
    pub limits: Limits,
    /// Where job dirs are created (`runner.jobs_dir`, outside the data dir).
    pub jobs_dir: PathBuf,
    pub credentials: Vec<ResolvedCredential>,
    /// Every secret value known to the server; redacted from all output.
    pub secrets: Vec<String>,
    /// The server's repo rules (`repo_rules`): which workflow each project runs.
    pub rules: Arc<ServerRules>,
    /// Where engine downloads are audited (the server's store; `None` in local runs).
    pub download_audit: Option<super::engine_choice::DownloadAudit>,
}

/// A credential rule with its values read (at start-up, from literal config values or the
/// server's environment).
#[derive(Debug, Clone)]
pub struct ResolvedCredential {
    repos: globset::GlobSet,
    projects: globset::GlobSet,
    env: BTreeMap<String, Secret>,
}

/// Compiles credential globs. Repository names compare case-insensitively (as on GitHub);
/// project dirs and names do not: `ENVS/PROD` is another directory than `envs/prod`, which
/// policies and locks treat as such, so credentials must too.
fn glob_set(patterns: &[String], what: &str) -> anyhow::Result<globset::GlobSet> {
    let mut b = globset::GlobSetBuilder::new();
    for p in patterns {
        b.add(
            globset::GlobBuilder::new(p)
                .case_insensitive(what == "repos")
                .literal_separator(false)
                .build()
                .with_context(|| {
                    format!("credentials: {what} pattern {p:?} is not a valid glob")
                })?,
        );
    }
    Ok(b.build()?)
}

impl Runner {
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Runner> {
        let sandbox = Sandbox::from_settings(&settings.runner)?;
        let mut credentials = Vec::new();
        let mut secrets = settings.secret_values();
        for rule in &settings.credentials {
            let mut env = rule.env.clone();
            for name in &rule.env_from_server {
                let value = std::env::var(name).with_context(|| {
                    format!("credentials: env_from_server names {name}, which is not set in the server's environment")
                })?;
                secrets.push(value.clone());
                env.insert(name.clone(), Secret::new(value));
            }
            credentials.push(ResolvedCredential {
                repos: glob_set(&rule.repos, "repos")?,
                projects: glob_set(&rule.projects, "projects")?,
                env,
            });
        }
        let mirror = match &settings.provider_mirror {
            Some(p) => Some(
                std::fs::canonicalize(p)
                    .with_context(|| format!("provider mirror {} does not exist", p.display()))?,
            ),
            None => None,
        };
        let jobs_dir = crate::adapters::sandbox::prepare_jobs_dir(
            &settings.jobs_dir(),
            &settings.data_dir,
            sandbox.run_as(),
        )?;
        Ok(Runner {
            sandbox,
            engines: EngineResolver {
                terraform_bin: settings.terraform_bin.clone(),
                tofu_bin: settings.tofu_bin.clone(),
                versions_dir: settings.engine_versions_dir.clone(),
            },
            engine_installer: crate::adapters::engine_install::EngineInstaller::from_settings(
                settings,
            )?
            .map(Arc::new),
            mirror,
            limits: Limits {
                timeout: Duration::from_secs(settings.runner.timeout_secs),
                grace: Duration::from_secs(settings.runner.grace_secs),
                output_cap: settings.runner.output_cap_bytes,
                plan_json_cap: settings.runner.plan_json_cap_bytes as u64,
                network: settings.runner.network,
            },
            jobs_dir,
            credentials,
            rules: settings.server_rules().clone(),
            download_audit: None,
            // The server's log, audit log and outbox are redacted of the same values as
            // everything it posts.
            secrets: {
                crate::adapters::known_secrets::register(secrets.iter().cloned());
                secrets
            },
        })
    }

    pub fn redactor(&self) -> Redactor {
        Redactor::new(self.secrets.iter().cloned())
    }

    /// The environment of a project's runs: its own (non-secret) variables from the repo config
    /// (checked again against [`env_name_refusal`], whatever parsed them), then the credentials
    /// whose rules match this repository and project — and no others. Credential rules match
    /// the project's dir and the names the **base** branch gives it ([`credential_names`]),
    /// never a name the PR chose.
    pub(super) async fn project_env(
        &self,
        job: &ProjectJob<'_>,
    ) -> Result<BTreeMap<String, String>, String> {
        let project = job.project;
        let mut env = BTreeMap::new();
        for (k, v) in &project.env {
            if env_name_refusal(k).is_some() {
                return Err(format!(
                    "project `{}` sets the environment variable {k}, which a repository may not set (it steers the engine, the runner, the network or the loader)",
                    project.name
                ));
            }
            env.insert(k.clone(), v.clone());
        }
        if self.credentials.is_empty() {
            return Ok(env);
        }
        let (git, base) = (job.git.clone(), job.base.clone());
        let repo_rules = job_rules(&self.rules, job);
        let rules = tokio::task::spawn_blocking(move || base_rules_at(&git, &base, &repo_rules))
            .await
            .map_err(|e| format!("reading the base branch's projects: {e}"))?
            .map_err(|e| format!("reading the base branch's projects: {e:#}"))?;
        let names = credential_names(&rules, project);
        for c in &self.credentials {
            if c.applies(job.repo, &names) {
                for (k, v) in &c.env {
                    env.insert(k.clone(), v.expose().to_string());
                }
            }
        }
        Ok(env)
    }
}

/// The server's repo rules for `job`: for its repository and, on a pull request, its base
/// branch (whose name picks the projects of Atlantis `branch` patterns).
fn job_rules(rules: &Arc<ServerRules>, job: &ProjectJob<'_>) -> RepoRules {
    let r = RepoRules::new(rules, job.repo);
    match &job.pull {
        Some(p) => r.into_branch(&p.base_branch),
        None => r,
    }
}

/// What credential rules' `projects` globs are matched against for `project`: its dir and the
/// names the base branch gives that dir and workspace (for a project new in the PR, those of
/// the nearest configured dir above it). The PR's own name for the project counts only when the
/// base gives it too: naming a sandbox project `prod-db` must not obtain `prod-*` credentials.
pub fn credential_names(rules: &BaseRules, project: &Project) -> Vec<String> {
    let mut names: Vec<String> = rules
        .identity(&project.dir, &project.workspace)
        .names
        .into_iter()
        .map(String::from)
        .collect();
    names.push(project.dir.to_string());
    names.sort();
    names.dedup();
    names
}

impl ResolvedCredential {
    /// Whether this rule gives its variables to a run in `repo` (`None`: a local preview, any
    /// repository) of the project known by `names` ([`credential_names`]).
    fn applies(&self, repo: Option<&RepoName>, names: &[String]) -> bool {
        let repo_ok = repo.is_none_or(|r| self.repos.is_match(r.full()));
        repo_ok && names.iter().any(|n| self.projects.is_match(n))
    }
}

/// One project of one commit to plan or apply.
pub struct ProjectJob<'a> {
    pub git: &'a GitRepo,
    pub repo: Option<&'a RepoName>,
    pub commit: &'a CommitSha,
    /// The base commit of the change: whose configuration says which credentials the project
    /// gets (see [`credential_names`]).
    pub base: &'a CommitSha,
    pub project: &'a Project,
    /// Unique per job; names the job dir.
    pub job_id: String,
    /// Extra arguments after `--` in the comment (already validated by the comment parser).
    pub extra_args: Vec<String>,
    /// The pull request, for a custom workflow's step variables (`None`: a drift check or a
    /// local preview; the variables then describe the commit alone).
    pub pull: Option<PullInfo>,
    /// Who asked (`$USER_NAME` of custom workflow steps); empty when nobody did.
    pub user: String,
    pub sink: Option<Arc<dyn LineSink>>,
    pub cancel: CancellationToken,
}

#[derive(Debug, Clone)]
pub struct Planned {
    /// The parsed `show -json` (policies are evaluated on it).
    pub plan: crate::core::plan::Plan,
    pub summary: PlanSummary,
    /// Human diff, already redacted.
    pub diff: String,
    pub plan_sha256: String,
    /// Host path of the saved plan file.
    pub plan_file: PathBuf,
    pub job_dir: PathBuf,
    pub engine_version: String,
    pub duration: Duration,
    /// A custom workflow's posted step output (markdown, redacted); empty for the default
    /// steps, or when no step posts anything.
    pub workflow_output: String,
}

#[derive(Debug, Clone)]
pub struct Applied {
    /// Terraform's apply output, redacted.
    pub output: String,
    pub summary: Option<PlanSummary>,
    /// The engine version that applied: the saved plan's `terraform_version` (terraform applies
    /// a saved plan only with the version that made it). Empty when the plan JSON beside the
    /// plan file cannot be read.
    pub engine_version: String,
    pub duration: Duration,
}

#[derive(Debug, Clone)]
pub struct Failed {
    pub stage: FailedStage,
    /// What went wrong, for the PR: a sentence, then the tail of the engine's output. Redacted.
    pub error: String,
    pub duration: Duration,
}

/// A job dir ready for the engine.
pub(super) struct Prepared {
    pub(super) job_dir: PathBuf,
    /// Host path of the CLI config file.
    pub(super) cli_config: PathBuf,
    /// The project dir relative to the job dir (`repo/...`).
    pub(super) cwd: String,
    /// Paths of the commit not checked out because terraform treats them as its own
    /// (`.terraform/`, `terraform.d/`), for failure messages.
    pub(super) left_out: Vec<String>,
}

/// Prepares `<jobs>/<id>` (fresh) with the commit exported into `repo/`, and the read-only CLI
/// config beside it in `<jobs>/<id>.etc/`. Checks that the project dir exists in the checkout
/// and is a real directory: no component of it may be a symlink ([`check_real_dir`]).
pub(super) async fn prepare(
    runner: &Runner,
    job: &ProjectJob<'_>,
    suffix: &str,
) -> Result<Prepared, (FailedStage, String)> {
    let job_dir = runner.jobs_dir.join(format!("{}{suffix}", job.job_id));
    let etc_dir = runner.jobs_dir.join(format!("{}{suffix}.etc", job.job_id));
    let checkout = job_dir.join("repo");
    let git = job.git.clone();
    let commit = job.commit.clone();
    let (jd, ed, co) = (job_dir.clone(), etc_dir.clone(), checkout.clone());
    let mirror_guest = runner
        .sandbox
        .guest_paths(
            &job_dir,
            Path::new("engine"),
            runner.mirror.as_deref(),
            None,
        )
        .providers;
    let prepared = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<String>> {
        for d in [&jd, &ed] {
            if d.exists() {
                std::fs::remove_dir_all(d).with_context(|| format!("clearing {}", d.display()))?;
            }
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        std::fs::write(
            ed.join("terraformrc"),
            cli_config_text(mirror_guest.as_deref()),
        )
        .with_context(|| format!("writing {}", ed.display()))?;
        git.export(&commit, &co)
    })
    .await
    .map_err(|e| (FailedStage::Checkout, format!("checkout task failed: {e}")))?;
    let left_out = prepared.map_err(|e| (FailedStage::Checkout, format!("{e:#}")))?;

    let rel = job.project.dir.as_str();
    check_real_dir(&checkout, &job.project.dir, job.commit)
        .map_err(|e| (FailedStage::Config, e))?;
    check_engine_reads_every_file(&checkout, job.project).map_err(|e| (FailedStage::Config, e))?;
    let cwd = if job.project.dir.is_root() {
        "repo".to_string()
    } else {
        format!("repo/{rel}")
    };
    Ok(Prepared {
        job_dir,
        cli_config: etc_dir.join("terraformrc"),
        cwd,
        left_out,
    })
}

/// Checks, on the exported checkout, that `dir` is a directory reached without any symlink —
/// the same rule project detection applies to the tree ([`crate::core::projects`]), checked
/// again where terraform will run, so that no path to a project can differ from the dir its
/// lock, requirements, policies and credentials were decided for. The error names the link.
fn check_real_dir(checkout: &Path, dir: &ProjectDir, commit: &CommitSha) -> Result<(), String> {
    if dir.is_root() {
        return Ok(());
    }
    let mut here = checkout.to_path_buf();
    let mut so_far = String::new();
    for seg in dir.as_str().split('/') {
        here.push(seg);
        if !so_far.is_empty() {
            so_far.push('/');
        }
        so_far.push_str(seg);
        match std::fs::symlink_metadata(&here) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = std::fs::read_link(&here)
                    .map(|t| t.display().to_string())
                    .unwrap_or_default();
                return Err(format!(
                    "project dir `{dir}` goes through the symlink `{so_far}` → `{target}`; \
                     project dirs must not go through symlinks (locks, requirements, policies \
                     and credentials follow the directory terraform really runs in), so \
                     Sluice refuses to run there"
                ));
            }
            Ok(m) if m.is_dir() => {}
            _ => {
                return Err(format!(
                    "project dir `{dir}` does not exist at commit {}",
                    commit.short()
                ));
            }
        }
    }
    Ok(())
}

/// Checks, on the exported checkout, that terraform is not about to run a project dir holding
/// files only OpenTofu reads ([`opentofu_only_files`]) — detection chose the engine from the
/// same commit; this is the same rule where the engine runs, so no plan silently leaves
/// configuration out.
fn check_engine_reads_every_file(checkout: &Path, project: &Project) -> Result<(), String> {
    if project.engine != Engine::Terraform {
        return Ok(());
    }
    let dir = checkout.join(project.dir.as_str());
    let names: BTreeSet<String> = std::fs::read_dir(&dir)
        .map_err(|e| format!("reading project dir `{}`: {e}", project.dir))?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .collect();
    let only = opentofu_only_files(names.iter().map(String::as_str), |f| names.contains(f));
    if only.is_empty() {
        return Ok(());
    }
    Err(format!(
        "project `{}` runs with terraform, but its dir holds files only OpenTofu reads ({}); \
         terraform would plan without them, so Sluice refuses to run it: set `engine: opentofu`",
        project.name,
        only.iter()
            .map(|f| format!("`{f}`"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// `error`, with a note when the checkout left out paths terraform treats as its own: a
/// repository that commits plugins or a data dir learns why terraform does not find them.
pub(super) fn with_left_out(error: String, left_out: &[String]) -> String {
    if left_out.is_empty() {
        return error;
    }
    let shown: Vec<String> = left_out.iter().take(5).map(|p| format!("`{p}`")).collect();
    let more = if left_out.len() > 5 {
        format!(" and {} more", left_out.len() - 5)
    } else {
        String::new()
    };
    format!(
        "{error}\n\nNote: {}{more} {} not checked out: Sluice never lets terraform use a data \
         dir (`.terraform/`) or plugins (`terraform.d/`) from the repository; providers come \
         from the server's mirror or registry.",
        shown.join(", "),
        if left_out.len() == 1 { "was" } else { "were" }
    )
}

/// Takes the plan file terraform wrote out of the job dir into `out_dir` (fresh), refusing
/// anything that is not a regular file (a symlink or device planted by the run).
fn take_plan_file(from: &Path, out_dir: &Path) -> anyhow::Result<PathBuf> {
    let meta = std::fs::symlink_metadata(from)
        .with_context(|| format!("terraform wrote no plan file at {}", from.display()))?;
    if !meta.file_type().is_file() {
        anyhow::bail!(
            "the plan file is not a regular file (was it replaced by the run?); refusing to use it"
        );
    }
    if out_dir.exists() {
        std::fs::remove_dir_all(out_dir)
            .with_context(|| format!("clearing {}", out_dir.display()))?;
    }
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    // Copied, not renamed: the run could have made the path a hard link to another file of its
    // job dir, through which a later command could rewrite a renamed plan.
    let to = out_dir.join("plan.tfplan");
    let mut src = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(from)
        .with_context(|| format!("opening {}", from.display()))?;
    let mut dst = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&to)
        .with_context(|| format!("creating {}", to.display()))?;
    std::io::copy(&mut src, &mut dst)
        .with_context(|| format!("copying the plan file to {}", to.display()))?;
    dst.sync_all()
        .with_context(|| format!("writing {}", to.display()))?;
    std::fs::remove_file(from).with_context(|| format!("removing {}", from.display()))?;
    Ok(to)
}

/// Hands each line of live output to `inner` with the known secrets redacted.
pub(super) struct RedactingSink {
    pub(super) inner: Arc<dyn LineSink>,
    pub(super) redactor: Redactor,
}

impl LineSink for RedactingSink {
    fn line(&self, line: &str) {
        self.inner.line(&self.redactor.redact(line));
    }

    fn begin_step(&self, step: LogStep) {
        self.inner.begin_step(step);
    }

    fn end_step(&self, step: LogStep, duration: Duration, ok: bool) {
        self.inner.end_step(step, duration, ok);
    }
}

/// Before a terraform command of `job`: its output is `step`'s in the job's log.
fn begin_step(job: &ProjectJob<'_>, step: LogStep) {
    if let Some(s) = &job.sink {
        s.begin_step(step);
    }
}

/// After a terraform command of `job`: its duration goes to the job's log and to
/// `sluice_terraform_step_duration_seconds` (result `ok`, `error`, `timeout` or `cancelled`;
/// `error` too when the command could not be run at all).
fn end_step<E>(job: &ProjectJob<'_>, step: LogStep, started: Instant, result: &Result<Step, E>) {
    use crate::adapters::process::Termination;
    let (duration, ok, label) = match result {
        Ok(s) => (
            s.output.duration,
            s.ok,
            match s.output.termination {
                Termination::TimedOut => "timeout",
                Termination::Cancelled => "cancelled",
                _ if s.ok => "ok",
                _ => "error",
            },
        ),
        Err(_) => (started.elapsed(), false, "error"),
    };
    crate::adapters::metrics::observe(
        "sluice_terraform_step_duration_seconds",
        &[("step", step.as_str()), ("result", label)],
        duration.as_secs_f64(),
    );
    if let Some(s) = &job.sink {
        s.end_step(step, duration, ok);
    }
}

/// A failure report: what happened, then the end of the engine's output (where its errors are).
pub(super) fn step_failure(what: &str, step: &Step, redactor: &Redactor) -> String {
    let text = redactor.redact(step.output.output.trim_end()).into_owned();
    format!("`{what}` {}.\n\n{text}", step.ending())
}

impl Runner {
    pub(super) fn engines<'a>(
        &'a self,
        job: &ProjectJob<'_>,
        binary: &'a Path,
        cli_config: &'a Path,
        job_dir: &'a Path,
        cwd: String,
        env: BTreeMap<String, String>,
    ) -> Engines<'a> {
        Engines {
            sandbox: &self.sandbox,
            engine: job.project.engine,
            binary,
            mirror: self.mirror.as_deref(),
            cli_config,
            job_dir,
            cwd,
            env,
            limits: self.limits,
            // Live output is redacted like the final report: the sink shows it as it comes.
            sink: job.sink.clone().map(|inner| {
                Arc::new(RedactingSink {
                    inner,
                    redactor: self.redactor(),
                }) as Arc<dyn LineSink>
            }),
            cancel: job.cancel.clone(),
            inputs: Vec::new(),
            sealed: None,
        }
    }

    /// init → workspace → plan → show -json → summary. Every failure names its stage and keeps
    /// the engine's own error text.
    pub async fn plan(&self, job: &ProjectJob<'_>) -> Result<Planned, Failed> {
        let started = Instant::now();
        let fail = |stage: FailedStage, error: String| Failed {
            stage,
            error,
            duration: started.elapsed(),
        };
        let SetUp {
            binary,
            env,
            prepared:
                Prepared {
                    job_dir,
                    cli_config,
                    cwd,
                    left_out,
                },
        } = self.set_up(job, "").await.map_err(|(s, e)| fail(s, e))?;
        tracing::debug!(ms = started.elapsed().as_millis() as u64, "checked out");
        let workflow = self
            .workflow_for(job, WorkflowCommand::Plan)
            .await
            .map_err(|e| fail(FailedStage::Config, e))?;
        let tf = self.engines(job, &binary, &cli_config, &job_dir, cwd.clone(), env);
        let engine = job.project.engine.default_binary();
        let mut tf = tf;
        let mut stage = StageOutput::default();
        match &workflow {
            None => self
                .default_plan_steps(job, &mut tf, &left_out)
                .await
                .map_err(|(s, e)| fail(s, e))?,
            Some(wf) => {
                let work = tf.guest_work();
                let paths = RunPaths {
                    dir: work.join(&cwd).to_string_lossy().into_owned(),
                    planfile: work.join("plan.tfplan").to_string_lossy().into_owned(),
                    showfile: work.join("plan.json").to_string_lossy().into_owned(),
                    policycheckfile: work.join("policycheck.json").to_string_lossy().into_owned(),
                };
                stage = self
                    .custom_stage(
                        job,
                        &mut tf,
                        wf,
                        WorkflowCommand::Plan,
                        &paths,
                        &job_dir.join("plan.json"),
                    )
                    .await
                    .map_err(|e| fail(FailedStage::Plan, with_left_out(e, &left_out)))?;
                if tf.sealed.is_none() {
                    tf.seal()
                        .await
                        .map_err(|e| fail(FailedStage::Plan, format!("{e:#}")))?;
                }
            }
        }
        // What `env`/`multienv` steps set is as secret as the server's own values.
        let redactor = Redactor::new(self.secrets.iter().cloned().chain(stage.secrets.clone()));
        // The run is over (its PID namespace died with it): nothing of the PR runs now. Take the
        // plan file out of the writable job dir before anything reads it, so what is hashed,
        // shown, reviewed and applied is the file terraform wrote — not a substitute planted by
        // a provider during `show`, and never a symlink to a host file.
        let out_dir = self.jobs_dir.join(format!("{}.out", job.job_id));
        let plan_file = {
            let (from, out_dir) = (job_dir.join("plan.tfplan"), out_dir.clone());
            tokio::task::spawn_blocking(move || take_plan_file(&from, &out_dir))
                .await
                .map_err(|e| fail(FailedStage::Plan, e.to_string()))?
                .map_err(|e| fail(FailedStage::Plan, format!("{e:#}")))?
        };
        // A plan that cannot be shown is not kept (plan files hold sensitive values).
        let shown = async {
            let plan_sha256 =
                crate::adapters::plan_files::sha256(&plan_file).map_err(|e| fail(FailedStage::Plan, format!("{e:#}")))?;
            let mut tf = tf;
            tf.inputs = vec![(plan_file.clone(), "plan.tfplan".to_string())];
            let guest_plan = self.sandbox.input_path(&plan_file, "plan.tfplan");
            let json_path = out_dir.join("plan.json");
            begin_step(job, LogStep::Show);
            let at = Instant::now();
            let step = tf.show_json(&guest_plan, &json_path).await;
            end_step(job, LogStep::Show, at, &step);
            let step = step.map_err(|e| fail(FailedStage::Show, format!("{e:#}")))?;
            tracing::debug!(ms = step.output.duration.as_millis() as u64, "show -json");
            if step.output.stdout_file_overflow {
                return Err(fail(
                    FailedStage::Show,
                    format!(
                        "the plan's JSON is larger than the configured cap ({} bytes, runner.plan_json_cap_bytes); \
                         split the project or raise the cap",
                        self.limits.plan_json_cap
                    ),
                ));
            }
            if !step.ok {
                return Err(fail(
                    FailedStage::Show,
                    step_failure(&format!("{engine} show -json"), &step, &redactor),
                ));
            }
            let json = std::fs::read(&json_path)
                .with_context(|| format!("reading {}", json_path.display()))
                .map_err(|e| fail(FailedStage::Show, format!("{e:#}")))?;
            let plan = parse_plan_json(&json).map_err(|e| fail(FailedStage::Show, e.to_string()))?;
            let summary = PlanSummary::from_plan(&plan);
            // Values the plan marks sensitive are redacted wherever they might surface in text.
            let redactor = Redactor::new(
                self.secrets
                    .iter()
                    .cloned()
                    .chain(stage.secrets.iter().cloned())
                    .chain(plan.sensitive_values()),
            );
            let diff = redactor.redact(&render_diff(&plan)).into_owned();
            let engine_version = plan.terraform_version.clone();
            Ok(Planned {
                plan,
                summary,
                diff,
                plan_sha256,
                plan_file,
                job_dir: job_dir.clone(),
                engine_version,
                duration: started.elapsed(),
                workflow_output: stage.section.clone(),
            })
        }
        .await;
        if shown.is_err() {
            let _ = std::fs::remove_dir_all(&out_dir);
        }
        shown
    }

    /// The workflow `job`'s project runs, when its `command` stage is not Atlantis' default
    /// steps (`None`: the default steps, which [`Runner::plan`] and [`Runner::apply`] run
    /// themselves). Read from the configuration at the job's commit, with the server's repo
    /// rules ([`super::repo_state::project_workflow`]).
    async fn workflow_for(
        &self,
        job: &ProjectJob<'_>,
        command: WorkflowCommand,
    ) -> Result<Option<Workflow>, String> {
        let (git, commit, project) = (job.git.clone(), job.commit.clone(), job.project.clone());
        let rules = job_rules(&self.rules, job);
        let workflow = tokio::task::spawn_blocking(move || {
            super::repo_state::project_workflow(&git, &commit, &rules, &project)
        })
        .await
        .map_err(|e| format!("reading the project's workflow: {e}"))?
        .map_err(|e| format!("reading the project's workflow: {e:#}"))??;
        let only_this = match command {
            WorkflowCommand::Plan => Workflow {
                plan: workflow.plan.clone(),
                ..Workflow::default_workflow()
            },
            WorkflowCommand::Apply => Workflow {
                apply: workflow.apply.clone(),
                ..Workflow::default_workflow()
            },
            // `import` / `state_rm` always run through their stage (its implicit `init` takes
            // the plan stage's `init` arguments, so the backend is the one plans use).
            _ => return Ok(Some(workflow)),
        };
        Ok((!only_this.is_equivalent_to_default()).then_some(workflow))
    }

    /// Runs the `command` stage of `workflow` for `job` with `tf` ([`run_stage`]). `paths` are
    /// the step variables' paths; `showfile_host` is where a `show` step writes.
    async fn custom_stage(
        &self,
        job: &ProjectJob<'_>,
        tf: &mut Engines<'_>,
        workflow: &Workflow,
        command: WorkflowCommand,
        paths: &RunPaths,
        showfile_host: &Path,
    ) -> Result<StageOutput, String> {
        let engine = job.project.engine.default_binary();
        // `ATLANTIS_TERRAFORM_VERSION`: the version that really runs.
        let version = tf
            .version()
            .await
            .map_err(|e| format!("{engine} version: {e:#}"))?;
        let version = version
            .rsplit_once(" v")
            .map_or(version.as_str(), |(_, v)| v)
            .to_string();
        let pull = job.pull.clone().unwrap_or_else(|| {
            let repo = job
                .repo
                .cloned()
                .unwrap_or_else(|| RepoName::new("local", "preview").expect("a valid name"));
            PullInfo {
                base_repo: repo.clone(),
                head_repo: repo,
                base_branch: String::new(),
                head_branch: String::new(),
                head_commit: job.commit.clone(),
                number: None,
                url: String::new(),
                author: String::new(),
                approved: None,
                mergeable: None,
            }
        });
        let name = job.project.name.to_string();
        let ctx = StepContext {
            command,
            project_name: job.project.config_pos.is_some().then_some(name.as_str()),
            dir: &job.project.dir,
            workspace: &job.project.workspace,
            engine: job.project.engine,
            engine_version: &version,
            paths,
            pull: &pull,
            user: &job.user,
            comment_args: &job.extra_args,
            approved: pull.approved,
            mergeable: pull.mergeable,
        };
        let plan = step_plan(workflow, &ctx);
        let seal_before = match command {
            WorkflowCommand::Apply => BuiltinStep::Apply,
            WorkflowCommand::Import => BuiltinStep::Import,
            WorkflowCommand::StateRm => BuiltinStep::StateRm,
            _ => BuiltinStep::Plan,
        };
        run_stage(
            tf,
            StageRun {
                plan: &plan,
                secrets: &self.secrets,
                sink: job.sink.clone(),
                engine_version: &version,
                showfile_host,
                seal_before,
                engine,
            },
        )
        .await
    }

    /// The default plan steps: init → workspace → seal → plan, writing `plan.tfplan` in the job
    /// dir. The error is the failed stage and its report.
    async fn default_plan_steps(
        &self,
        job: &ProjectJob<'_>,
        tf: &mut Engines<'_>,
        left_out: &[String],
    ) -> Result<(), (FailedStage, String)> {
        let redactor = self.redactor();
        let engine = job.project.engine.default_binary();
        begin_step(job, LogStep::Init);
        let at = Instant::now();
        let step = tf.init(&[]).await;
        end_step(job, LogStep::Init, at, &step);
        let step = step.map_err(|e| (FailedStage::Init, format!("{e:#}")))?;
        tracing::debug!(ms = step.output.duration.as_millis() as u64, "init");
        if !step.ok {
            return Err((
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
                .map_err(|e| (FailedStage::Init, format!("{e:#}")))?;
            if !step.ok {
                return Err((
                    FailedStage::Init,
                    with_left_out(
                        step_failure(&format!("{engine} workspace select"), &step, &redactor),
                        left_out,
                    ),
                ));
            }
        }
        // What init installed is what plan, show and apply load.
        tf.seal()
            .await
            .map_err(|e| (FailedStage::Init, format!("{e:#}")))?;
        let guest_plan = tf.guest_work().join("plan.tfplan");
        begin_step(job, LogStep::Plan);
        let at = Instant::now();
        let step = tf.plan(&guest_plan, &job.extra_args).await;
        end_step(job, LogStep::Plan, at, &step);
        let step = step.map_err(|e| (FailedStage::Plan, format!("{e:#}")))?;
        tracing::debug!(ms = step.output.duration.as_millis() as u64, "plan");
        if !step.ok {
            return Err((
                FailedStage::Plan,
                with_left_out(
                    step_failure(&format!("{engine} plan"), &step, &redactor),
                    left_out,
                ),
            ));
        }
        Ok(())
    }

    /// Applies the saved plan `plan_file` after checking it still hashes to `expected_sha256`.
    pub async fn apply(
        &self,
        job: &ProjectJob<'_>,
        plan_file: &Path,
        expected_sha256: &str,
    ) -> Result<Applied, Failed> {
        let started = Instant::now();
        let fail = |stage: FailedStage, error: String| Failed {
            stage,
            error,
            duration: started.elapsed(),
        };
        let redactor = self.redactor();
        check_plan_hash(plan_file, expected_sha256).map_err(|e| fail(FailedStage::Apply, e))?;
        let SetUp {
            binary,
            env,
            prepared:
                Prepared {
                    job_dir,
                    cli_config,
                    cwd,
                    left_out,
                },
        } = self
            .set_up(job, "-apply")
            .await
            .map_err(|(s, e)| fail(s, e))?;
        let workflow = self
            .workflow_for(job, WorkflowCommand::Apply)
            .await
            .map_err(|e| fail(FailedStage::Config, e))?;
        let tf = self.engines(job, &binary, &cli_config, &job_dir, cwd.clone(), env);
        if let Some(wf) = workflow {
            // The custom apply stage, in this fresh checkout: the reviewed plan file read-only
            // at `$PLANFILE`, an implicit `init` unless the stage initialises itself.
            let mut tf = tf;
            tf.inputs = vec![(plan_file.to_path_buf(), "plan.tfplan".to_string())];
            let work = tf.guest_work();
            let paths = RunPaths {
                dir: work.join(&cwd).to_string_lossy().into_owned(),
                planfile: self
                    .sandbox
                    .input_path(plan_file, "plan.tfplan")
                    .to_string_lossy()
                    .into_owned(),
                showfile: work.join("plan.json").to_string_lossy().into_owned(),
                policycheckfile: work.join("policycheck.json").to_string_lossy().into_owned(),
            };
            let stage = self
                .custom_stage(
                    job,
                    &mut tf,
                    &wf,
                    WorkflowCommand::Apply,
                    &paths,
                    &job_dir.join("plan.json"),
                )
                .await
                .map_err(|e| fail(FailedStage::Apply, with_left_out(e, &left_out)))?;
            let output = [stage.section, stage.main_output]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join("\n\n");
            return Ok(Applied {
                output,
                summary: None,
                engine_version: saved_plan_engine_version(plan_file).unwrap_or_default(),
                duration: started.elapsed(),
            });
        }
        let engine = job.project.engine.default_binary();
        begin_step(job, LogStep::Init);
        let at = Instant::now();
        let step = tf.init(&[]).await;
        end_step(job, LogStep::Init, at, &step);
        let step = step.map_err(|e| fail(FailedStage::Init, format!("{e:#}")))?;
        if !step.ok {
            return Err(fail(
                FailedStage::Init,
                with_left_out(
                    step_failure(&format!("{engine} init"), &step, &redactor),
                    &left_out,
                ),
            ));
        }
        if !job.project.workspace.is_default() {
            let step = tf
                .select_workspace(job.project.workspace.as_str())
                .await
                .map_err(|e| fail(FailedStage::Init, format!("{e:#}")))?;
            if !step.ok {
                return Err(fail(
                    FailedStage::Init,
                    with_left_out(
                        step_failure(&format!("{engine} workspace select"), &step, &redactor),
                        &left_out,
                    ),
                ));
            }
        }
        // What init installed is what apply loads; the reviewed plan file, read-only: the run
        // can read it, never replace it.
        let mut tf = tf;
        tf.seal()
            .await
            .map_err(|e| fail(FailedStage::Init, format!("{e:#}")))?;
        tf.inputs = vec![(plan_file.to_path_buf(), "plan.tfplan".to_string())];
        let guest_plan = self.sandbox.input_path(plan_file, "plan.tfplan");
        begin_step(job, LogStep::Apply);
        let at = Instant::now();
        let step = tf.apply(&guest_plan).await;
        end_step(job, LogStep::Apply, at, &step);
        let step = step.map_err(|e| fail(FailedStage::Apply, format!("{e:#}")))?;
        let output = redactor.redact(step.output.output.trim_end()).into_owned();
        if !step.ok {
            return Err(fail(
                FailedStage::Apply,
                with_left_out(
                    format!("`{engine} apply` {}.\n\n{output}", step.ending()),
                    &left_out,
                ),
            ));
        }
        Ok(Applied {
            output,
            summary: None,
            engine_version: saved_plan_engine_version(plan_file).unwrap_or_default(),
            duration: started.elapsed(),
        })
    }
}

impl Runner {
    /// `import` / `state rm` (`command`) on `job`'s project: a fresh export of the commit, then
    /// the workflow's `import` / `state_rm` stage in the sandbox with the project's credentials
    /// rules — by default `init` (with the plan stage's `init` arguments), the workspace, then
    /// the engine's `import ADDRESS ID` / `state rm ADDRESS...` with `job.extra_args` (the
    /// terraform options, then the positional arguments). The result is the redacted output.
    pub async fn state_command(
        &self,
        job: &ProjectJob<'_>,
        command: WorkflowCommand,
    ) -> Result<String, Failed> {
        let started = Instant::now();
        let fail = |stage: FailedStage, error: String| Failed {
            stage,
            error,
            duration: started.elapsed(),
        };
        let SetUp {
            binary,
            env,
            prepared:
                Prepared {
                    job_dir,
                    cli_config,
                    cwd,
                    left_out,
                },
        } = self
            .set_up(job, "-state")
            .await
            .map_err(|(s, e)| fail(s, e))?;
        let workflow = self
            .workflow_for(job, command)
            .await
            .map_err(|e| fail(FailedStage::Config, e))?
            .unwrap_or_else(Workflow::default_workflow);
        let mut tf = self.engines(job, &binary, &cli_config, &job_dir, cwd.clone(), env);
        let work = tf.guest_work();
        let paths = RunPaths {
            dir: work.join(&cwd).to_string_lossy().into_owned(),
            planfile: work.join("plan.tfplan").to_string_lossy().into_owned(),
            showfile: work.join("plan.json").to_string_lossy().into_owned(),
            policycheckfile: work.join("policycheck.json").to_string_lossy().into_owned(),
        };
        let stage = self
            .custom_stage(
                job,
                &mut tf,
                &workflow,
                command,
                &paths,
                &job_dir.join("plan.json"),
            )
            .await;
        let remote = remote_backend(
            &job_dir
                .join(crate::adapters::terraform::DATA_DIR)
                .join("terraform.tfstate"),
        );
        let stage = match (stage, remote) {
            (Ok(_), false) => return Err(fail(FailedStage::Config, LOCAL_STATE.to_string())),
            (Ok(stage), true) => stage,
            (Err(e), remote) => {
                let e = with_left_out(e, &left_out);
                let e = match remote {
                    true => e,
                    false => format!("{LOCAL_STATE_MAYBE}\n\n{e}"),
                };
                return Err(fail(FailedStage::Apply, e));
            }
        };
        Ok([stage.section, stage.main_output]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("\n\n"))
    }
}

/// Why a state command on a project without a remote backend changed nothing.
const LOCAL_STATE: &str = "this project keeps its state in a local file (no `backend` block, or \
     `backend \"local\"`): the command changed a copy in the job's directory, which is thrown \
     away, so nothing lasting changed. State commands need a remote backend.";

/// Said before the engine's error when a state command failed and no remote backend was found.
const LOCAL_STATE_MAYBE: &str = "No remote backend was found after `init`: if this project keeps \
     its state in a local file, state commands cannot change it (the job's directory is thrown \
     away). The engine said:";

/// Whether terraform's backend settings file (`<TF_DATA_DIR>/terraform.tfstate`, written by
/// `init`: `{"backend": {"type": "s3", …}}`) names a backend other than `local`. Missing or
/// unreadable: no remote backend.
fn remote_backend(settings: &Path) -> bool {
    std::fs::read(settings)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["backend"]["type"].as_str().map(|t| t != "local"))
        .unwrap_or(false)
}

/// What every run of a project starts with.
struct SetUp {
    /// The engine binary the project runs ([`Runner::engine_binary`]).
    binary: PathBuf,
    /// The project's environment ([`Runner::project_env`]).
    env: BTreeMap<String, String>,
    /// Its job dir, checked out ([`prepare`]).
    prepared: Prepared,
}

impl Runner {
    /// The engine, the environment and a fresh job dir (`<job id><suffix>`) of a plan, apply
    /// or state run; the error names the stage that failed.
    async fn set_up(
        &self,
        job: &ProjectJob<'_>,
        suffix: &str,
    ) -> Result<SetUp, (FailedStage, String)> {
        let binary = self
            .engine_binary(job)
            .await
            .map_err(|e| (FailedStage::Config, e))?;
        let env = self
            .project_env(job)
            .await
            .map_err(|e| (FailedStage::Config, e))?;
        let prepared = prepare(self, job, suffix).await?;
        Ok(SetUp {
            binary,
            env,
            prepared,
        })
    }
}

/// Whether the saved plan at `path` still hashes (SHA-256, hex) to `expected`, the hash of the
/// reviewed plan; the error is what the PR is told.
fn check_plan_hash(path: &Path, expected: &str) -> Result<(), String> {
    match crate::adapters::plan_files::sha256(path) {
        Ok(h) if h == expected => Ok(()),
        Ok(h) => Err(format!(
            "the saved plan changed since it was reviewed (sha256 {h}, expected {expected}); refusing to apply. Run plan again."
        )),
        Err(e) => Err(format!(
            "the saved plan cannot be read ({e:#}); run plan again"
        )),
    }
}

/// `terraform_version` of the plan JSON saved beside `plan_file` (`<job>.out/plan.json`, written
/// by `show -json` when the plan was made), or `None` when it cannot be read.
fn saved_plan_engine_version(plan_file: &Path) -> Option<String> {
    let json = std::fs::read(plan_file.parent()?.join("plan.json")).ok()?;
    let plan: serde_json::Value = serde_json::from_slice(&json).ok()?;
    Some(plan.get("terraform_version")?.as_str()?.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::projects::RepoSnapshot;
    use crate::core::repo_config::parse_config;
    use crate::core::types::{ProjectName, Workspace};

    #[test]
    fn the_project_dir_must_be_reached_without_symlinks_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let co = dir.path();
        std::fs::create_dir_all(co.join("envs/prod")).unwrap();
        std::fs::create_dir_all(co.join("real/app")).unwrap();
        std::os::unix::fs::symlink("envs/prod", co.join("sandbox-x")).unwrap();
        std::os::unix::fs::symlink("../real", co.join("envs/alias")).unwrap();
        std::os::unix::fs::symlink("/etc", co.join("abs")).unwrap();
        std::fs::write(co.join("file"), "x").unwrap();
        let sha = CommitSha::new("0123456789abcdef0123456789abcdef01234567").unwrap();
        let check = |d: &str| check_real_dir(co, &ProjectDir::new(d).unwrap(), &sha);
        assert_eq!(check("envs/prod"), Ok(()));
        assert_eq!(check("."), Ok(()));
        for (dir, link, target) in [
            ("sandbox-x", "sandbox-x", "envs/prod"),
            ("envs/alias/app", "envs/alias", "../real"),
            ("abs/ssl", "abs", "/etc"),
        ] {
            let err = check(dir).unwrap_err();
            assert!(
                err.contains(&format!("goes through the symlink `{link}` → `{target}`")),
                "{err}"
            );
        }
        for dir in ["nope", "file", "Envs/Prod"] {
            let err = check(dir).unwrap_err();
            assert!(err.contains("does not exist at commit 0123456"), "{err}");
        }
    }

    #[test]
    fn credentials_match_the_dir_and_the_base_names_never_the_prs_own_name() {
        let base = parse_config(
            "sluice.yaml",
            "version: 1\nprojects:\n  - name: prod-db\n    dir: envs/prod/db\n",
        )
        .0
        .unwrap();
        let rules = BaseRules::new(Some(&base), &RepoSnapshot::default());
        let rule = ResolvedCredential {
            repos: glob_set(&["acme/*".to_string()], "repos").unwrap(),
            projects: glob_set(&["prod-*".to_string()], "projects").unwrap(),
            env: BTreeMap::new(),
        };
        let repo = RepoName::parse("acme/infra").unwrap();
        let project = |name: &str, dir: &str| Project {
            name: ProjectName::new(name).unwrap(),
            ..Project::detected(ProjectDir::new(dir).unwrap(), Workspace::default())
        };
        let gets =
            |p: &Project, repo: Option<&RepoName>| rule.applies(repo, &credential_names(&rules, p));
        // The base's project, whatever the PR calls it.
        assert!(gets(&project("prod-db", "envs/prod/db"), Some(&repo)));
        assert!(gets(&project("renamed", "envs/prod/db"), Some(&repo)));
        // A new project inside it inherits its names (and its gate).
        assert!(gets(&project("cache", "envs/prod/db/cache"), Some(&repo)));
        // A sandbox project named like a production one gets nothing.
        assert!(!gets(&project("prod-db", "sandbox"), Some(&repo)));
        assert!(!gets(&project("prod-evil", "sandbox"), Some(&repo)));
        // Other repositories get nothing; a local preview is not bound to one.
        let other = RepoName::parse("evil/infra").unwrap();
        assert!(!gets(&project("prod-db", "envs/prod/db"), Some(&other)));
        assert!(gets(&project("prod-db", "envs/prod/db"), None));
        // Rules may name dirs too.
        let by_dir = ResolvedCredential {
            projects: glob_set(&["envs/prod/**".to_string()], "projects").unwrap(),
            ..rule.clone()
        };
        assert!(by_dir.applies(
            Some(&repo),
            &credential_names(&rules, &project("x", "envs/prod/y"))
        ));
        assert!(!by_dir.applies(
            Some(&repo),
            &credential_names(&rules, &project("envs/prod/y", "sandbox"))
        ));
        // Another case is another directory (as for policies and locks): no credentials.
        assert!(!by_dir.applies(
            Some(&repo),
            &credential_names(&rules, &project("x", "ENVS/PROD/y"))
        ));
        assert!(!rule.applies(
            Some(&repo),
            &credential_names(&rules, &project("x", "PROD-DB"))
        ));
        // Repository names compare as GitHub does.
        assert!(by_dir.applies(
            Some(&RepoName::parse("ACME/Infra").unwrap()),
            &credential_names(&rules, &project("x", "envs/prod/y"))
        ));
    }

    #[test]
    fn terraform_never_runs_a_dir_with_files_only_opentofu_reads() {
        let dir = tempfile::tempdir().unwrap();
        let co = dir.path();
        for (path, text) in [
            ("twins/main.tf", ""),
            ("twins/main.tofu", ""),
            ("mixed/main.tf", ""),
            ("mixed/extra.tofu.json", "{}"),
        ] {
            std::fs::create_dir_all(co.join(path).parent().unwrap()).unwrap();
            std::fs::write(co.join(path), text).unwrap();
        }
        let project = |dir: &str, engine: Engine| Project {
            engine,
            ..Project::detected(ProjectDir::new(dir).unwrap(), Workspace::default())
        };
        assert_eq!(
            check_engine_reads_every_file(co, &project("twins", Engine::Terraform)),
            Ok(())
        );
        assert_eq!(
            check_engine_reads_every_file(co, &project("mixed", Engine::Opentofu)),
            Ok(())
        );
        let err =
            check_engine_reads_every_file(co, &project("mixed", Engine::Terraform)).unwrap_err();
        assert!(
            err.contains("(`extra.tofu.json`)") && err.contains("engine: opentofu"),
            "{err}"
        );
    }

    #[test]
    fn live_output_reaches_the_sink_redacted() {
        use base64::Engine as _;
        struct Lines(std::sync::Mutex<Vec<String>>);
        impl LineSink for Lines {
            fn line(&self, line: &str) {
                self.0.lock().unwrap().push(line.to_string());
            }
        }
        let lines = Arc::new(Lines(Default::default()));
        let sink = RedactingSink {
            inner: lines.clone(),
            redactor: Redactor::new(["sink-secret-42".to_string()]),
        };
        let b64 = base64::engine::general_purpose::STANDARD.encode("sink-secret-42");
        sink.line("  + token = \"sink-secret-42\"");
        sink.line(&format!("  + auth  = \"{b64}\""));
        sink.line("Plan: 1 to add");
        assert_eq!(
            *lines.0.lock().unwrap(),
            [
                "  + token = \"***\"",
                "  + auth  = \"***\"",
                "Plan: 1 to add"
            ]
        );
    }

    #[test]
    fn a_failure_says_what_the_checkout_left_out() {
        assert_eq!(with_left_out("boom".into(), &[]), "boom");
        let one = with_left_out("boom".into(), &["app/terraform.d".into()]);
        assert!(
            one.starts_with("boom\n\nNote: `app/terraform.d` was not checked out"),
            "{one}"
        );
        let many: Vec<String> = (0..7).map(|i| format!("d{i}/.terraform")).collect();
        let text = with_left_out("boom".into(), &many);
        assert!(
            text.contains("`d4/.terraform` and 2 more were not checked out"),
            "{text}"
        );
    }

    #[test]
    fn only_a_regular_plan_file_is_taken_out_of_the_job_dir() {
        let dir = tempfile::tempdir().unwrap();
        let (job, out) = (dir.path().join("job"), dir.path().join("job.out"));
        std::fs::create_dir_all(&job).unwrap();
        let secret = dir.path().join("host-secret");
        std::fs::write(&secret, "hunter2").unwrap();

        // A link planted where the plan goes is refused, and the host file is untouched.
        std::os::unix::fs::symlink(&secret, job.join("plan.tfplan")).unwrap();
        let err = take_plan_file(&job.join("plan.tfplan"), &out).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err:#}");
        assert_eq!(std::fs::read_to_string(&secret).unwrap(), "hunter2");

        // A real plan file moves into a fresh out dir (left-overs of an earlier plan are gone).
        std::fs::remove_file(job.join("plan.tfplan")).unwrap();
        std::fs::write(job.join("plan.tfplan"), "plan").unwrap();
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("plan.json"), "stale").unwrap();
        let taken = take_plan_file(&job.join("plan.tfplan"), &out).unwrap();
        assert_eq!(taken, out.join("plan.tfplan"));
        assert_eq!(std::fs::read_to_string(&taken).unwrap(), "plan");
        assert!(!out.join("plan.json").exists());
        assert!(!job.join("plan.tfplan").exists());

        // A plan file hard-linked to another file of the job dir: later writes through that
        // file do not reach the taken plan.
        std::fs::write(job.join("keep"), "plan A").unwrap();
        std::fs::hard_link(job.join("keep"), job.join("plan.tfplan")).unwrap();
        let taken = take_plan_file(&job.join("plan.tfplan"), &out).unwrap();
        std::fs::write(job.join("keep"), "plan B").unwrap();
        assert_eq!(std::fs::read_to_string(&taken).unwrap(), "plan A");
    }
}
