//! The server's host layout — data dir, repository mirrors, job dirs, provider mirror, engine
//! binaries, server policies — and the neutral names it goes by in anything Sluice posts
//! (`core::host_paths`). Built once at start-up from the settings and the runner; applied by the
//! outbox deliverer to every comment and status before it leaves for GitHub, so no failure text
//! (git, terraform, Sluice's own) can tell a pull request where the server keeps its files.

use std::path::Path;

use super::project_run::Runner;
use crate::config::Settings;
use crate::core::host_paths::HostPaths;

/// Neutral names, as they appear on pull requests.
pub const DATA: &str = "<data>";
pub const MIRRORS: &str = "<mirrors>";
pub const JOB: &str = "<job>";
pub const JOBS: &str = "<jobs>";
pub const PROVIDERS: &str = "<providers>";
pub const ENGINES: &str = "<engines>";
pub const SERVER_POLICIES: &str = "<server-policies>";
pub const SECRETS: &str = "<secret-file>";

/// Every spelling of `dir` a message may use: as configured, absolute, and canonical (symlinks
/// resolved, e.g. `/tmp` → `/private/tmp`).
fn spellings(dir: &Path) -> Vec<String> {
    let mut out = vec![dir.to_string_lossy().into_owned()];
    if let Ok(cwd) = std::env::current_dir()
        && dir.is_relative()
    {
        out.push(cwd.join(dir).to_string_lossy().into_owned());
    }
    if let Ok(real) = std::fs::canonicalize(dir) {
        out.push(real.to_string_lossy().into_owned());
    }
    out
}

/// The layout of this server. Directories that do not exist yet are still named (by their
/// configured and absolute spellings).
pub fn host_paths(settings: &Settings, runner: &Runner) -> HostPaths {
    let mut paths = HostPaths::new();
    let mut add = |dir: &Path, name: &str| {
        for s in spellings(dir) {
            paths.add(&s, name);
        }
    };
    add(&settings.data_dir, DATA);
    add(&settings.mirrors_dir(), MIRRORS);
    if let Some(m) = &runner.mirror {
        add(m, PROVIDERS);
    }
    if let Some(d) = &settings.engine_versions_dir {
        add(d, ENGINES);
    }
    for bin in [&settings.terraform_bin, &settings.tofu_bin]
        .into_iter()
        .flatten()
    {
        // A bare name is looked up on PATH: nothing host-specific to hide.
        if bin.components().count() > 1 {
            let name = bin
                .file_name()
                .map(|n| format!("{ENGINES}/{}", n.to_string_lossy()))
                .unwrap_or_else(|| ENGINES.to_string());
            add(bin, &name);
        }
    }
    if let Some(d) = &settings.policy_dir {
        add(d, SERVER_POLICIES);
    }
    if let Some(k) = &settings.github_app_key_file {
        add(k, SECRETS);
    }
    for s in spellings(&runner.jobs_dir) {
        paths.add_entries(&s, JOB, JOBS);
    }
    paths
}
