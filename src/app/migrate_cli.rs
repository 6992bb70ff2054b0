//! `sluice migrate atlantis [PATH] [--repos-yaml FILE] [--repo OWNER/NAME]`: reads a
//! repository's `atlantis.yaml` (and optionally the server's `repos.yaml`) from disk and prints
//! what Sluice will do with each project, workflow and policy set, what it does not support and
//! why, and the equivalent `sluice.yaml` ([`crate::core::migrate::explain_migration`]).

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::config::Limits;
use crate::core::diag::has_errors;
use crate::core::migrate::{MigrationInput, explain_migration};
use crate::core::repo_config::parse_atlantis_config;
use crate::core::server_rules::{
    ServerRules, effective_config, parse_repos_yaml, repo_id, server_not_yet_enforced,
};
use crate::core::types::RepoName;

/// What `sluice migrate atlantis` was asked.
#[derive(Debug, Clone)]
pub struct MigrateOptions {
    /// The `atlantis.yaml` (or `.yml`) file, or the repository directory holding one.
    pub path: PathBuf,
    /// The server's `repos.yaml`, to check the file against its rules.
    pub repos_yaml: Option<PathBuf>,
    /// `owner/name`: which `repos.yaml` rules apply (default: only rules matching any
    /// repository).
    pub repo: Option<String>,
}

/// The text to print, and whether Sluice would run the file as it is.
#[derive(Debug, Clone)]
pub struct MigrateReport {
    pub text: String,
    /// False when the file, or the server rules, refuse it, or it uses settings the server does
    /// not carry out yet.
    pub ok: bool,
}

/// Reads the files (each within `limits.file_bytes`) and explains the migration.
pub fn migrate_atlantis(opts: &MigrateOptions) -> anyhow::Result<MigrateReport> {
    let limits = Limits::default();
    let file = find_atlantis_yaml(&opts.path)?;
    let name = file.file_name().map_or_else(
        || "atlantis.yaml".to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let text = read_bounded(&file, limits.file_bytes)?;
    let repos = match &opts.repos_yaml {
        Some(p) => Some((
            p.file_name().map_or_else(
                || "repos.yaml".to_string(),
                |n| n.to_string_lossy().into_owned(),
            ),
            read_bounded(p, limits.file_bytes)?,
        )),
        None => None,
    };
    let id = match &opts.repo {
        Some(r) => Some(repo_id(
            "github.com",
            &RepoName::parse(r).with_context(|| format!("--repo {r}: expected OWNER/NAME"))?,
        )),
        None => None,
    };
    let text_out = explain_migration(&MigrationInput {
        atlantis: (&name, &text),
        repos_yaml: repos.as_ref().map(|(n, t)| (n.as_str(), t.as_str())),
        repo_id: id.as_deref(),
    });
    let (config, diags) = parse_atlantis_config(&name, &text);
    let mut ok = !has_errors(&diags);
    if let Some(config) = config {
        let rules = match &repos {
            Some((n, t)) => parse_repos_yaml(n, t).0,
            None => Some(ServerRules::unconfigured()),
        };
        ok &= match rules {
            Some(rules) => {
                let (_, d) =
                    effective_config(id.as_deref().unwrap_or("<any repository>"), &config, &rules);
                !has_errors(&d) && !has_errors(&server_not_yet_enforced(&rules))
            }
            None => false,
        };
    }
    Ok(MigrateReport { text: text_out, ok })
}

/// `path` itself, or the `atlantis.yaml` / `atlantis.yml` in it.
fn find_atlantis_yaml(path: &Path) -> anyhow::Result<PathBuf> {
    if !path.is_dir() {
        return Ok(path.to_path_buf());
    }
    ["atlantis.yaml", "atlantis.yml"]
        .into_iter()
        .map(|n| path.join(n))
        .find(|p| p.is_file())
        .with_context(|| {
            format!(
                "{} has no atlantis.yaml or atlantis.yml; give the file's path",
                path.display()
            )
        })
}

fn read_bounded(path: &Path, max: u64) -> anyhow::Result<String> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.len() > max {
        anyhow::bail!(
            "{} is {} bytes; Sluice reads configuration files of at most {max} bytes \
             (limits.file_bytes)",
            path.display(),
            meta.len()
        );
    }
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}
