//! `sluice drift check [--project NAME] [--ref REF] PATH`: the server's drift check on a local
//! git checkout, no GitHub and no store — every project of the commit (or the one named) is
//! checked with [`Runner::drift_check`] in the sandbox, and the classified report is printed.
//! Same settings, same runner, same classification as the server.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::drift_check::{AppliedFacts, Checked};
use super::project_run::{Failed, ProjectJob, Runner};
use super::repo_state::RepoState;
use crate::adapters::git::GitRepo;
use crate::core::drift::check_text::{CheckHeader, render_check};
use crate::core::projects::Project;
use crate::core::types::ProjectName;

/// What `sluice drift check` was asked.
#[derive(Debug, Clone)]
pub struct DriftCheckOptions {
    pub path: PathBuf,
    /// Only this project (by name).
    pub project: Option<String>,
    /// The commit to check (default `HEAD`).
    pub git_ref: Option<String>,
    /// Checks run at once.
    pub jobs: usize,
    /// The bounds on reading the repository (the server's).
    pub limits: crate::config::Limits,
}

/// How the checks went, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriftCheckResult {
    /// Every project checked is in sync.
    InSync,
    /// At least one project drifted or is out of sync; every check succeeded.
    Drifted,
    /// At least one check failed, or the configuration has errors.
    Failed,
}

/// Runs the checks, writing the report to `out` and progress to stderr.
pub async fn check(
    runner: Arc<Runner>,
    opts: &DriftCheckOptions,
    out: &mut dyn Write,
) -> anyhow::Result<DriftCheckResult> {
    if opts.jobs == 0 {
        bail!("--jobs must be at least 1");
    }
    let git = GitRepo::open(&opts.path)?.with_limits(opts.limits);
    let commit = git.resolve(opts.git_ref.as_deref().unwrap_or("HEAD"))?;
    let state = {
        let (git, commit) = (git.clone(), commit.clone());
        let rules = super::repo_state::RepoRules::new(&runner.rules, None);
        let budget = std::time::Duration::from_secs(opts.limits.detection_timeout_secs);
        super::bounded::run("reading the repository", budget, move || {
            RepoState::load(&git, &commit, &commit, &rules)
        })
        .await??
    };
    for d in &state.diagnostics {
        eprintln!("{d}");
    }
    if state.rejected() {
        eprintln!("sluice: the repository configuration has errors; nothing was checked");
        return Ok(DriftCheckResult::Failed);
    }
    let detection = state.all_projects();
    for d in &detection.diagnostics {
        eprintln!("{d}");
    }
    let projects = select(detection.projects, opts.project.as_deref())?;
    eprintln!(
        "sluice: checking {} project(s) at {} for drift with {} ({})",
        projects.len(),
        commit.short(),
        if runner.sandbox.is_isolated() {
            "sandbox"
        } else {
            "NO SANDBOX"
        },
        runner.sandbox.description(),
    );
    let cancel = CancellationToken::new();
    let run_id = format!("drift-{}-{}", std::process::id(), commit.short());
    let results: Vec<(Project, Result<Checked, Failed>)> =
        futures_util::stream::iter(projects.into_iter().enumerate())
            .map(|(i, project)| {
                let (runner, git, commit, cancel) =
                    (runner.clone(), git.clone(), commit.clone(), cancel.clone());
                let job_id = format!("{run_id}-{i}");
                async move {
                    let job = ProjectJob {
                        pull: None,
                        user: String::new(),
                        git: &git,
                        repo: None,
                        commit: &commit,
                        base: &commit,
                        project: &project,
                        job_id,
                        extra_args: Vec::new(),
                        sink: None,
                        cancel,
                    };
                    let r = runner.drift_check(&job, &AppliedFacts::default()).await;
                    match &r {
                        Ok(c) => eprintln!(
                            "sluice: ✓ {}: checked ({:.1}s)",
                            project.name,
                            c.duration.as_secs_f64()
                        ),
                        Err(f) => eprintln!(
                            "sluice: ✗ {}: {} failed ({:.1}s)",
                            project.name,
                            f.stage,
                            f.duration.as_secs_f64()
                        ),
                    }
                    (project, r)
                }
            })
            .buffered(opts.jobs)
            .collect()
            .await;
    let mut result = DriftCheckResult::InSync;
    let short = commit.short().to_string();
    for (project, r) in &results {
        let header = CheckHeader {
            project: &project.name,
            dir: &project.dir,
            workspace: &project.workspace,
            commit: &short,
        };
        let text = match r {
            Ok(c) => {
                if !c.classification.is_clean() && result == DriftCheckResult::InSync {
                    result = DriftCheckResult::Drifted;
                }
                render_check(&header, Ok(&c.classification))
            }
            Err(f) => {
                result = DriftCheckResult::Failed;
                render_check(&header, Err(&f.error))
            }
        };
        write!(out, "{text}")?;
    }
    out.flush()?;
    if detection.diagnostics.iter().any(|d| d.is_error()) {
        result = DriftCheckResult::Failed;
    }
    Ok(result)
}

/// Every project, or the one named (an unknown name lists the known ones).
fn select(projects: Vec<Project>, name: Option<&str>) -> anyhow::Result<Vec<Project>> {
    let Some(name) = name else {
        return Ok(projects);
    };
    let wanted = ProjectName::new(name).with_context(|| format!("--project {name:?}"))?;
    let known: Vec<String> = projects.iter().map(|p| p.name.to_string()).collect();
    let found: Vec<Project> = projects.into_iter().filter(|p| p.name == wanted).collect();
    if found.is_empty() {
        bail!(
            "no project named `{name}` at this commit (projects: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        );
    }
    Ok(found)
}

/// `sluice status [--repo R] [--json]`: every reconciled project of the server's store with its
/// sync status, drift (phase, acceptance and expiry, age), last applied commit and next check.
pub async fn status(
    settings: &crate::config::Settings,
    repo: Option<&str>,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<std::process::ExitCode> {
    let store = super::audit::open_existing(settings).await?;
    let repo = repo
        .map(crate::core::types::RepoName::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--repo: {e}"))?;
    let now = chrono::Utc::now();
    let list = super::drift::project_statuses(&store, repo.as_ref(), now).await?;
    if list.is_empty() {
        eprintln!("sluice: no projects checked for drift yet");
    }
    if json {
        for p in &list {
            writeln!(out, "{}", serde_json::to_string(p)?)?;
        }
        return Ok(std::process::ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "REPO\tPROJECT\tDIR\tWORKSPACE\tSTATUS\tDRIFT\tDRIFT AGE\tLAST APPLIED\tLAST CHECK\tNEXT CHECK"
    )?;
    let when = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map_or("-".to_string(), |t| {
            t.format("%Y-%m-%d %H:%M UTC").to_string()
        })
    };
    for p in &list {
        let s = &p.sync;
        let drift = match &s.drift {
            None => "-".to_string(),
            Some(d) => match (&d.accepted_by, d.accepted_until, &d.acknowledged_by) {
                (Some(by), Some(until), _) => {
                    format!("accepted by {by} until {until}")
                }
                (_, _, Some(by)) => format!("acknowledged by {by}"),
                _ => d.phase.to_string(),
            },
        };
        let age = s
            .drift
            .as_ref()
            .map_or("-".to_string(), |d| human_age(d.age_seconds));
        let applied = s.last_applied.as_ref().map_or("-".to_string(), |a| {
            format!(
                "{} by {}{} at {}",
                a.sha.short(),
                a.by.login,
                a.pr.map(|n| format!(" (#{})", n.get())).unwrap_or_default(),
                a.at.format("%Y-%m-%d %H:%M UTC")
            )
        });
        writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{drift}\t{age}\t{applied}\t{}\t{}",
            p.repo,
            p.project,
            p.dir,
            p.workspace,
            s.status,
            when(s.last_check_at),
            when(s.next_check_due),
        )?;
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// `3d 4h`, `2h 5m`, `40s`.
fn human_age(secs: i64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3_600, secs % 3_600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}
