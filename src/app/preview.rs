//! `sluice preview`: the PR pipeline on a local git checkout, with no GitHub — changed files
//! between two refs → affected projects → sandboxed plans (in parallel, bounded) → the
//! comment(s) Sluice would post. Same settings, same runner and same renderer as the server.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::project_run::{ProjectJob, Runner};
use super::repo_state::{self, RepoState};
use crate::adapters::git::GitRepo;
use crate::adapters::process::LineSink;
use crate::core::diag::Diagnostic;
use crate::core::plan::{
    CommandName, CommentLimits, ProjectOutcome, ProjectReport, RenderContext, TerminalStyle,
    render_comments, render_terminal,
};
use crate::core::projects::Project;
use crate::core::types::CommitSha;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The PR comment(s), as GitHub would receive them.
    Markdown,
    /// A plain-text rendering for reading in a terminal.
    Terminal,
}

#[derive(Debug, Clone)]
pub struct PreviewOptions {
    pub path: PathBuf,
    pub base: Option<String>,
    pub head: Option<String>,
    pub jobs: usize,
    /// Plan every project, not only the affected ones.
    pub all: bool,
    pub format: Format,
    pub bot_name: String,
    /// Keep job dirs (checkouts, plan files) after the run, for debugging.
    pub keep_job_dirs: bool,
    /// ANSI colours in the terminal format.
    pub color: bool,
    /// The bounds on reading the repository (the server's, so preview behaves alike).
    pub limits: crate::config::Limits,
    /// The host layout and its neutral names (`app::layout::host_paths`): what would be posted
    /// is shown as the server would post it, without host paths.
    pub host_paths: crate::core::host_paths::HostPaths,
}

/// What happened, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreviewResult {
    /// Every affected project planned (or none was affected).
    AllPlanned,
    /// At least one project failed to plan, the project configuration has errors, or the run
    /// was interrupted.
    SomeFailed,
    /// The repository's configuration was rejected; nothing ran.
    ConfigRejected,
}

/// Default base ref when none is given: the remote's default branch, then common local names.
const BASE_CANDIDATES: &[&str] = &[
    "origin/HEAD",
    "origin/main",
    "origin/master",
    "main",
    "master",
];

/// Progress on stderr: spinners on a terminal, one line per event otherwise.
struct Progress {
    bars: Option<indicatif::MultiProgress>,
}

struct ProjectProgress {
    bar: Option<indicatif::ProgressBar>,
    name: String,
}

impl LineSink for ProjectProgress {
    fn line(&self, line: &str) {
        if let Some(bar) = &self.bar {
            let line = line.trim();
            if !line.is_empty() {
                let short: String = line.chars().take(70).collect();
                bar.set_message(format!("{}: {short}", self.name));
            }
        }
    }
}

impl Progress {
    fn new() -> Progress {
        let bars = std::io::stderr()
            .is_terminal()
            .then(indicatif::MultiProgress::new);
        Progress { bars }
    }

    fn start(&self, project: &Project) -> Arc<ProjectProgress> {
        let name = project.name.to_string();
        match &self.bars {
            Some(mp) => {
                let bar = mp.add(indicatif::ProgressBar::new_spinner());
                bar.set_style(
                    indicatif::ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
                        .expect("static template")
                        .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ "),
                );
                bar.enable_steady_tick(std::time::Duration::from_millis(120));
                bar.set_message(format!("{name}: starting"));
                Arc::new(ProjectProgress {
                    bar: Some(bar),
                    name,
                })
            }
            None => {
                eprintln!(
                    "sluice: planning {name} ({}, workspace {})",
                    project.dir, project.workspace
                );
                Arc::new(ProjectProgress { bar: None, name })
            }
        }
    }

    fn finish(&self, p: &ProjectProgress, ok: bool, line: &str) {
        let mark = if ok { "✓" } else { "✗" };
        match &p.bar {
            Some(bar) => bar.finish_with_message(format!("{mark} {}: {line}", p.name)),
            None => eprintln!("sluice: {mark} {}: {line}", p.name),
        }
    }
}

/// Runs the preview, writing the comment(s) to `out` and progress to stderr.
pub async fn preview(
    runner: Arc<Runner>,
    opts: &PreviewOptions,
    out: &mut dyn Write,
) -> anyhow::Result<PreviewResult> {
    if opts.jobs == 0 {
        bail!("--jobs must be at least 1");
    }
    let git = GitRepo::open(&opts.path)?.with_limits(opts.limits);
    let (base, head, base_rev) = commits(&git, opts)?;
    let state = {
        let git = git.clone();
        let (base, head) = (base.clone(), head.clone());
        let rules = super::repo_state::RepoRules::new(&runner.rules, None);
        // Atlantis `branch` patterns pick the projects of the base branch `--base` names.
        let rules = match base_branch_name(&git, &base_rev) {
            Some(b) => rules.into_branch(&b),
            None => rules,
        };
        let budget = std::time::Duration::from_secs(opts.limits.detection_timeout_secs);
        super::bounded::run("reading the repository", budget, move || {
            RepoState::load(&git, &base, &head, &rules)
        })
        .await??
    };
    print_diagnostics(&state.diagnostics);
    if state.rejected() {
        eprintln!("sluice: the repository configuration has errors; nothing was planned");
        return Ok(PreviewResult::ConfigRejected);
    }
    let projects = if opts.all {
        state.all_projects()
    } else {
        state.autoplan_projects()
    };
    print_diagnostics(&projects.diagnostics);
    // Errors found while resolving projects (a glob matching nothing, a project dir escaping the
    // repository through a symlink, a module cycle) are what `sluice config check` fails on; the
    // projects they do not touch still plan, but the preview must not look like a clean run.
    let detection_errors = projects.diagnostics.iter().filter(|d| d.is_error()).count();
    let projects = projects.projects;
    eprintln!(
        "sluice: {} changed file(s) between {} and {}; {} project(s) to plan with {} ({})",
        state.changed.len(),
        base.short(),
        head.short(),
        projects.len(),
        if runner.sandbox.is_isolated() {
            "sandbox"
        } else {
            "NO SANDBOX"
        },
        runner.sandbox.description(),
    );
    let commits = Commits { git, base, head };
    let planned = plan_all(&runner, &commits, projects, opts).await?;
    let failed = planned
        .reports
        .iter()
        .any(|r| matches!(r.outcome, ProjectOutcome::PlanFailed { .. }));
    write_comments(opts, &commits.head, &planned.reports, out)?;
    if !opts.keep_job_dirs {
        for d in &planned.job_dirs {
            crate::adapters::plan_files::remove_job_dir(d);
        }
        crate::adapters::plan_files::remove_job_dir(
            &runner
                .jobs_dir
                .join(crate::adapters::sandbox::ENGINE_COPIES),
        );
    } else {
        eprintln!("sluice: job dirs kept under {}", runner.jobs_dir.display());
    }
    if detection_errors > 0 {
        eprintln!(
            "sluice: {detection_errors} error(s) in the project configuration (above); see `sluice config check`"
        );
    }
    Ok(if failed || detection_errors > 0 || planned.interrupted {
        PreviewResult::SomeFailed
    } else {
        PreviewResult::AllPlanned
    })
}

/// The commits to compare: `--base` (or the first of [`BASE_CANDIDATES`] that exists) and
/// `--head` (or `HEAD`), and the base as it was named.
fn commits(git: &GitRepo, opts: &PreviewOptions) -> anyhow::Result<(CommitSha, CommitSha, String)> {
    let head_ref = opts.head.clone().unwrap_or_else(|| "HEAD".to_string());
    let head = git.resolve(&head_ref)?;
    let (base, base_rev) = match &opts.base {
        Some(b) => (git.resolve(b)?, b.clone()),
        None => BASE_CANDIDATES
            .iter()
            .find_map(|c| git.resolve(c).ok().map(|sha| (sha, c.to_string())))
            .with_context(|| {
                format!(
                    "no base ref found (tried {}); pass --base REF",
                    BASE_CANDIDATES.join(", ")
                )
            })?,
    };
    if base == head && !opts.all {
        eprintln!(
            "sluice: base and head are the same commit ({}); nothing changed. Pass --base REF, or --all to plan every project.",
            head.short()
        );
    }
    Ok((base, head, base_rev))
}

/// The branch a base revision names (`main`, `origin/main`, `refs/heads/main`), when it names
/// one of the repository's branches; `None` for a commit, `HEAD` or `origin/HEAD`.
fn base_branch_name(git: &GitRepo, rev: &str) -> Option<String> {
    let name = rev
        .strip_prefix("refs/heads/")
        .or_else(|| rev.strip_prefix("refs/remotes/origin/"))
        .or_else(|| rev.strip_prefix("origin/"))
        .unwrap_or(rev);
    if name == "HEAD" {
        return None;
    }
    ["refs/heads/", "refs/remotes/origin/"]
        .iter()
        .any(|p| git.resolve(&format!("{p}{name}")).is_ok())
        .then(|| name.to_string())
}

/// The repository and the two commits a preview compares.
struct Commits {
    git: GitRepo,
    base: CommitSha,
    head: CommitSha,
}

/// What planning every project left.
struct PlannedAll {
    /// One per project, in run order.
    reports: Vec<ProjectReport>,
    /// Every directory the jobs may have made (work, `.etc`, `.out`, `.apply`).
    job_dirs: Vec<PathBuf>,
    /// Ctrl-C stopped the run.
    interrupted: bool,
}

/// Plans `projects`, `opts.jobs` at a time, in run order; Ctrl-C stops the running plans the
/// same way the server's cancel does (SIGINT, then kill) and skips those not started.
async fn plan_all(
    runner: &Arc<Runner>,
    commits: &Commits,
    projects: Vec<Project>,
    opts: &PreviewOptions,
) -> anyhow::Result<PlannedAll> {
    let progress = Arc::new(Progress::new());
    let limit = Arc::new(Semaphore::new(opts.jobs));
    let cancel = CancellationToken::new();
    let run_id = format!("preview-{}-{}", std::process::id(), commits.head.short());
    let results: Arc<Mutex<Vec<Option<ProjectReport>>>> =
        Arc::new(Mutex::new(vec![None; projects.len()]));
    let ctrl_c = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("sluice: interrupted; stopping plans");
                cancel.cancel();
            }
        })
    };
    let mut tasks = tokio::task::JoinSet::new();
    let mut job_dirs = Vec::new();
    for (i, project) in projects.into_iter().enumerate() {
        let job_id = format!("{run_id}-{i}");
        for dir in [
            job_id.clone(),
            format!("{job_id}.etc"),
            format!("{job_id}.out"),
            format!("{job_id}.apply"),
        ] {
            job_dirs.push(runner.jobs_dir.join(dir));
        }
        // Slots are taken here, in run order (dependencies first), so projects start in that
        // order — one after the other with --jobs 1 — rather than in whatever order the
        // runtime happens to poll their tasks.
        let permit = limit
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closed");
        let (runner, git, head, base, progress, results, cancel) = (
            runner.clone(),
            commits.git.clone(),
            commits.head.clone(),
            commits.base.clone(),
            progress.clone(),
            results.clone(),
            cancel.clone(),
        );
        tasks.spawn(async move {
            let _permit = permit;
            let report = if cancel.is_cancelled() {
                // Ctrl-C stops the run: projects still waiting for a slot do not start.
                report_of(
                    &project,
                    ProjectOutcome::Skipped {
                        reason: "not started: the preview was interrupted".to_string(),
                    },
                    Vec::new(),
                )
            } else {
                let job = ProjectJob {
                    pull: None,
                    user: String::new(),
                    git: &git,
                    repo: None,
                    commit: &head,
                    base: &base,
                    project: &project,
                    job_id,
                    extra_args: Vec::new(),
                    sink: None,
                    cancel,
                };
                plan_one(&runner, &progress, job).await
            };
            results.lock().expect("results lock")[i] = Some(report);
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.context("a plan task panicked")?;
    }
    ctrl_c.abort();
    let reports: Vec<ProjectReport> = Arc::try_unwrap(results)
        .map_err(|_| anyhow::anyhow!("plan tasks still hold results"))?
        .into_inner()
        .expect("results lock")
        .into_iter()
        .flatten()
        .collect();
    Ok(PlannedAll {
        reports,
        job_dirs,
        interrupted: cancel.is_cancelled(),
    })
}

/// Plans one project, showing its progress.
async fn plan_one(runner: &Runner, progress: &Progress, mut job: ProjectJob<'_>) -> ProjectReport {
    let p = progress.start(job.project);
    job.sink = Some(p.clone() as Arc<dyn LineSink>);
    let mut notes = Vec::new();
    let outcome = match runner.plan(&job).await {
        Ok(planned) => {
            if !planned.workflow_output.is_empty() {
                notes.push(planned.workflow_output.clone());
            }
            let line = format!(
                "{} ({:.1}s)",
                planned.summary.line(),
                planned.duration.as_secs_f64()
            );
            progress.finish(&p, true, &line);
            ProjectOutcome::Planned {
                summary: planned.summary,
                diff: planned.diff,
                plan_sha256: planned.plan_sha256,
            }
        }
        Err(failed) => {
            let line = format!(
                "{} failed ({:.1}s)",
                failed.stage,
                failed.duration.as_secs_f64()
            );
            progress.finish(&p, false, &line);
            ProjectOutcome::PlanFailed {
                stage: failed.stage,
                error: failed.error,
            }
        }
    };
    if !runner.sandbox.is_isolated() {
        notes.push(
            "> [!CAUTION]\n> Planned **without a sandbox** (runner profile `plain`): not isolated."
                .to_string(),
        );
    }
    report_of(job.project, outcome, notes)
}

fn report_of(project: &Project, outcome: ProjectOutcome, notes: Vec<String>) -> ProjectReport {
    ProjectReport {
        project: project.name.clone(),
        dir: project.dir.clone(),
        workspace: project.workspace.clone(),
        outcome,
        notes,
        destroy_plan: false,
    }
}

/// The comment(s) Sluice would post, as markdown or for a terminal.
fn write_comments(
    opts: &PreviewOptions,
    head: &CommitSha,
    reports: &[ProjectReport],
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let ctx = RenderContext {
        bot_name: opts.bot_name.clone(),
        command: CommandName::Plan,
        head_sha: Some(head.clone()),
        log_url: None,
        limits: CommentLimits::default(),
        after_merge: Default::default(),
    };
    match opts.format {
        Format::Markdown => {
            let comments = render_comments(&ctx, reports);
            let n = comments.len();
            for (i, body) in comments.iter().enumerate() {
                let body = opts.host_paths.map(body);
                if n > 1 {
                    eprintln!(
                        "sluice: comment {} of {n} ({} characters)",
                        i + 1,
                        body.chars().count()
                    );
                }
                writeln!(out, "{body}")?;
                if i + 1 < n {
                    writeln!(out, "\n<!-- ──────── next comment ──────── -->\n")?;
                }
            }
        }
        Format::Terminal => {
            let style = if opts.color {
                TerminalStyle::Ansi
            } else {
                TerminalStyle::Plain
            };
            let text = render_terminal(&ctx, reports, style);
            write!(out, "{}", opts.host_paths.map(&text))?;
        }
    }
    out.flush()?;
    Ok(())
}

fn print_diagnostics(diags: &[Diagnostic]) {
    for d in diags {
        eprintln!("{d}");
    }
}

pub use repo_state::load_config_files;
