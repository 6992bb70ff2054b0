//! Drift checks at scale (PRODUCT.md §14): a 200-project repository (one `null_resource` per
//! project, terraform 1.0.3, the null provider mirror, the default `bwrap` runner), checked the
//! way the server checks it — read the default branch's projects, find the project, run
//! `Runner::drift_check` (init, `plan -refresh-only -lock=false`, `plan -lock=false`, two
//! `show -json`, classification) — with `drift.workers` checks at once. Prints projects checked
//! per hour on this machine, and the scheduling overhead per check: the ratio of a check's wall
//! time to the raw terraform commands it runs (the same five commands on a plain copy of the
//! project, no sandbox, no Sluice), measured side by side.
//!
//! `SLUICE_BENCH_DRIFT_CHECKS` (default: all 200) checks only that many projects of the
//! repository (spread over it); `SLUICE_BENCH_DRIFT_WORKERS` (default 2) is `drift.workers`.
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    clippy::too_many_lines,
    reason = "benchmarks start the binary and tools themselves, and a failed unwrap is a failed run"
)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use sluice::adapters::git::GitRepo;
use sluice::app::drift_check::AppliedFacts;
use sluice::app::project_run::{ProjectJob, Runner};
use sluice::app::repo_state::RepoState;
use sluice::config::{Overrides, Settings};
use tokio_util::sync::CancellationToken;

const PROJECTS: usize = 200;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn git(repo: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(repo)
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

fn project_tf(i: usize) -> String {
    format!(
        "terraform {{\n  required_providers {{\n    null = {{\n      source  = \"hashicorp/null\"\n      version = \"~> 2.1\"\n    }}\n  }}\n}}\n\nresource \"null_resource\" \"p{i}\" {{\n  triggers = {{ v = \"{i}\" }}\n}}\n"
    )
}

/// The five engine commands of one check, run directly on a copy of the project.
fn raw_check(terraform: &Path, mirror: &Path, project: &Path, scratch: &Path) -> Duration {
    let work = scratch.join("raw");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).expect("mkdir raw");
    std::fs::copy(project.join("main.tf"), work.join("main.tf")).expect("copy");
    let started = Instant::now();
    let plugin = format!("-plugin-dir={}", mirror.display());
    for args in [
        vec!["init", "-input=false", "-no-color", plugin.as_str()],
        vec![
            "plan",
            "-input=false",
            "-no-color",
            "-refresh-only",
            "-lock=false",
            "-out=r.tfplan",
        ],
        vec!["show", "-json", "-no-color", "r.tfplan"],
        vec![
            "plan",
            "-input=false",
            "-no-color",
            "-lock=false",
            "-out=p.tfplan",
        ],
        vec!["show", "-json", "-no-color", "p.tfplan"],
    ] {
        let out = Command::new(terraform)
            .args(&args)
            .current_dir(&work)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("TF_IN_AUTOMATION", "1")
            .output()
            .expect("terraform runs");
        assert!(out.status.success(), "terraform {args:?}: {out:?}");
    }
    started.elapsed()
}

fn main() {
    let tools = std::env::var_os("SLUICE_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools"));
    let terraform = tools.join("bin/terraform");
    let mirror = tools.join("providers");
    if !terraform.is_file() || !mirror.is_dir() {
        eprintln!(
            "drift bench: terraform and the provider mirror are missing from {}: run scripts/install-test-tools",
            tools.display()
        );
        std::process::exit(2);
    }
    let checks = env_usize("SLUICE_BENCH_DRIFT_CHECKS", PROJECTS).clamp(1, PROJECTS);
    let workers = env_usize("SLUICE_BENCH_DRIFT_WORKERS", 2).max(1);

    let scratch = tempfile::Builder::new()
        .prefix("sluice-drift-bench-")
        .tempdir()
        .expect("scratch");
    let repo = scratch.path().join("repo");
    std::fs::create_dir_all(&repo).expect("mkdir repo");
    git(&repo, &["init", "-q", "-b", "main"]);
    for i in 0..PROJECTS {
        let dir = repo.join(format!("envs/p{i:03}"));
        std::fs::create_dir_all(&dir).expect("mkdir project");
        std::fs::write(dir.join("main.tf"), project_tf(i)).expect("write");
    }
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "200 projects"]);

    let data = scratch.path().join("data");
    let env: HashMap<String, String> = HashMap::from([
        (
            "SLUICE_TERRAFORM_BIN".into(),
            terraform.display().to_string(),
        ),
        (
            "SLUICE_PROVIDER_MIRROR".into(),
            mirror.display().to_string(),
        ),
        ("SLUICE_DATA_DIR".into(), data.display().to_string()),
    ]);
    let settings = Settings::load_from(&env, &Overrides::default()).expect("settings");
    let runner = Arc::new(Runner::from_settings(&settings).expect("runner"));
    let git_repo = GitRepo::open(&repo)
        .expect("open repo")
        .with_limits(settings.limits);
    let head = git_repo.resolve("HEAD").expect("HEAD");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");

    println!(
        "drift: {PROJECTS}-project repository, {checks} checks, {workers} at once, runner {}",
        runner.sandbox.description()
    );
    // Which projects: spread over the repository.
    let picked: Vec<usize> = (0..checks).map(|k| k * PROJECTS / checks).collect();
    let started = Instant::now();
    let results: Vec<(Duration, Duration, Duration)> = rt.block_on(async {
        futures_util::stream::iter(picked.iter().copied())
            .map(|i| {
                let (runner, git_repo, head) = (runner.clone(), git_repo.clone(), head.clone());
                async move {
                    let t0 = Instant::now();
                    // What the server does per check: read the default branch's projects and
                    // find this one, then check it.
                    let (g, h) = (git_repo.clone(), head.clone());
                    let state = tokio::task::spawn_blocking(move || {
                        RepoState::load(
                            &g,
                            &h,
                            &h,
                            &sluice::app::repo_state::RepoRules::unconfigured(),
                        )
                    })
                    .await
                    .expect("join")
                    .expect("repo state");
                    let dir = format!("envs/p{i:03}");
                    let project = state
                        .all_projects()
                        .projects
                        .into_iter()
                        .find(|p| p.dir.as_str() == dir)
                        .expect("project");
                    let scheduling = t0.elapsed();
                    let job = ProjectJob {
                        pull: None,
                        user: String::new(),
                        git: &git_repo,
                        repo: None,
                        commit: &head,
                        base: &head,
                        project: &project,
                        job_id: format!("drift-bench-{i}"),
                        extra_args: Vec::new(),
                        sink: None,
                        cancel: CancellationToken::new(),
                    };
                    let checked = runner
                        .drift_check(&job, &AppliedFacts::default())
                        .await
                        .unwrap_or_else(|f| panic!("check of {dir} failed: {}", f.error));
                    (t0.elapsed(), scheduling, checked.engine_time)
                }
            })
            .buffer_unordered(workers)
            .collect()
            .await
    });
    let wall = started.elapsed();
    let per_hour = checks as f64 / wall.as_secs_f64() * 3600.0;
    let mean = |f: &dyn Fn(&(Duration, Duration, Duration)) -> Duration| {
        results.iter().map(f).sum::<Duration>().as_secs_f64() / results.len() as f64
    };
    let (check_s, sched_s, engine_s) = (mean(&|r| r.0), mean(&|r| r.1), mean(&|r| r.2));

    // The raw commands, one project at a time, side by side with single checks.
    let samples = checks.min(5);
    let mut raw = Vec::new();
    let mut single = Vec::new();
    for k in 0..samples {
        let i = picked[k * picked.len() / samples];
        let dir = repo.join(format!("envs/p{i:03}"));
        raw.push(raw_check(&terraform, &mirror, &dir, scratch.path()).as_secs_f64());
        let t0 = Instant::now();
        rt.block_on(async {
            let state = RepoState::load(
                &git_repo,
                &head,
                &head,
                &sluice::app::repo_state::RepoRules::unconfigured(),
            )
            .expect("state");
            let project = state
                .all_projects()
                .projects
                .into_iter()
                .find(|p| p.dir.as_str() == format!("envs/p{i:03}"))
                .expect("project");
            let job = ProjectJob {
                pull: None,
                user: String::new(),
                git: &git_repo,
                repo: None,
                commit: &head,
                base: &head,
                project: &project,
                job_id: format!("drift-bench-single-{i}"),
                extra_args: Vec::new(),
                sink: None,
                cancel: CancellationToken::new(),
            };
            runner
                .drift_check(&job, &AppliedFacts::default())
                .await
                .unwrap_or_else(|f| panic!("check failed: {}", f.error));
        });
        single.push(t0.elapsed().as_secs_f64());
    }
    let raw_mean = raw.iter().sum::<f64>() / raw.len() as f64;
    let single_mean = single.iter().sum::<f64>() / single.len() as f64;
    println!(
        "  projects checked per hour:        {per_hour:>8.0}  ({checks} checks in {:.1}s)",
        wall.as_secs_f64()
    );
    println!(
        "  per check (at {workers} at once):      {check_s:>8.2}s  (finding the project {:.3}s, engine commands {engine_s:.2}s)",
        sched_s
    );
    println!("  one check alone:                  {single_mean:>8.2}s");
    println!(
        "  raw terraform commands alone:     {raw_mean:>8.2}s  (init, plan -refresh-only, show -json, plan, show -json; no sandbox)"
    );
    println!(
        "  scheduling overhead per check:    {:>8.2}x  (one check / raw commands)",
        single_mean / raw_mean
    );
}
