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
    let head_ref = opts.head.clone().unwrap_or_else(|| "HEAD".to_string());
    let head = git.resolve(&head_ref)?;
    let base = match &opts.base {
        Some(b) => git.resolve(b)?,
        None => BASE_CANDIDATES
            .iter()
            .find_map(|c| git.resolve(c).ok())
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

    let state = {
        let git = git.clone();
        let (base, head) = (base.clone(), head.clone());
        let budget = std::time::Duration::from_secs(opts.limits.detection_timeout_secs);
        super::bounded::run("reading the repository", budget, move || {
            RepoState::load(&git, &base, &head)
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

    let progress = Arc::new(Progress::new());
    let limit = Arc::new(Semaphore::new(opts.jobs));
    let cancel = CancellationToken::new();
    let run_id = format!("preview-{}-{}", std::process::id(), head.short());
    let results: Arc<Mutex<Vec<Option<ProjectReport>>>> =
        Arc::new(Mutex::new(vec![None; projects.len()]));
    // Ctrl-C stops the running plans the same way the server's cancel does (SIGINT, then kill).
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
    for (i, project) in projects.iter().cloned().enumerate() {
        let (runner, git, head, base, progress, results, cancel) = (
            runner.clone(),
            git.clone(),
            head.clone(),
            base.clone(),
            progress.clone(),
            results.clone(),
            cancel.clone(),
        );
        let job_id = format!("{run_id}-{i}");
        job_dirs.push(runner.jobs_dir.join(&job_id));
        job_dirs.push(runner.jobs_dir.join(format!("{job_id}.etc")));
        job_dirs.push(runner.jobs_dir.join(format!("{job_id}.out")));
        // Slots are taken here, in run order (dependencies first), so projects start in that
        // order — one after the other with --jobs 1 — rather than in whatever order the
        // runtime happens to poll their tasks.
        let permit = limit
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closed");
        tasks.spawn(async move {
            let _permit = permit;
            if cancel.is_cancelled() {
                // Ctrl-C stops the run: projects still waiting for a slot do not start.
                results.lock().expect("results lock")[i] = Some(ProjectReport {
                    project: project.name.clone(),
                    dir: project.dir.clone(),
                    workspace: project.workspace.clone(),
                    outcome: ProjectOutcome::Skipped {
                        reason: "not started: the preview was interrupted".to_string(),
                    },
                    notes: Vec::new(),
                });
                return;
            }
            let p = progress.start(&project);
            let job = ProjectJob {
                git: &git,
                repo: None,
                commit: &head,
                base: &base,
                project: &project,
                job_id,
                extra_args: Vec::new(),
                sink: Some(p.clone() as Arc<dyn LineSink>),
                cancel,
            };
            let outcome = match runner.plan(&job).await {
                Ok(planned) => {
                    progress.finish(&p, true, &format!("{} ({:.1}s)", planned.summary.line(), planned.duration.as_secs_f64()));
                    ProjectOutcome::Planned {
                        summary: planned.summary,
                        diff: planned.diff,
                        plan_sha256: planned.plan_sha256,
                    }
                }
                Err(failed) => {
                    progress.finish(&p, false, &format!("{} failed ({:.1}s)", failed.stage, failed.duration.as_secs_f64()));
                    ProjectOutcome::PlanFailed {
                        stage: failed.stage,
                        error: failed.error,
                    }
                }
            };
            let mut notes = Vec::new();
            if !runner.sandbox.is_isolated() {
                notes.push("> [!CAUTION]\n> Planned **without a sandbox** (runner profile `plain`): not isolated.".to_string());
            }
            results.lock().expect("results lock")[i] = Some(ProjectReport {
                project: project.name.clone(),
                dir: project.dir.clone(),
                workspace: project.workspace.clone(),
                outcome,
                notes,
            });
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
    let failed = reports
        .iter()
        .any(|r| matches!(r.outcome, ProjectOutcome::PlanFailed { .. }));

    let ctx = RenderContext {
        bot_name: opts.bot_name.clone(),
        command: CommandName::Plan,
        head_sha: Some(head.clone()),
        log_url: None,
        limits: CommentLimits::default(),
    };
    match opts.format {
        Format::Markdown => {
            let comments = render_comments(&ctx, &reports);
            let n = comments.len();
            for (i, body) in comments.iter().enumerate() {
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
            write!(out, "{}", render_terminal(&ctx, &reports, style))?;
        }
    }
    out.flush()?;

    if !opts.keep_job_dirs {
        for d in job_dirs.iter().chain(
            job_dirs
                .iter()
                .map(|d| d.with_extension("apply"))
                .collect::<Vec<_>>()
                .iter(),
        ) {
            let _ = std::fs::remove_dir_all(d);
        }
    } else {
        eprintln!("sluice: job dirs kept under {}", runner.jobs_dir.display());
    }
    if detection_errors > 0 {
        eprintln!(
            "sluice: {detection_errors} error(s) in the project configuration (above); see `sluice config check`"
        );
    }
    Ok(if failed || detection_errors > 0 || cancel.is_cancelled() {
        PreviewResult::SomeFailed
    } else {
        PreviewResult::AllPlanned
    })
}

fn print_diagnostics(diags: &[Diagnostic]) {
    for d in diags {
        eprintln!("{d}");
    }
}

pub use repo_state::load_config_files;
