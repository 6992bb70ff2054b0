//! The server's bare mirrors of the repositories it serves, one per repository under
//! `<data>/repos/<owner>/<name>.git`, fetched under a per-repository lock (two fetches into one
//! repository would fight over its refs). Jobs and flows share their objects; nothing is cloned
//! per job.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use super::GitRepo;
use crate::config::{Limits, Secret};
use crate::core::types::{CommitSha, RepoName};

/// Bare mirrors of the repositories Sluice serves, one per repo, fetched under a per-repo lock
/// (two fetches into one repository would fight over its refs).
#[derive(Default)]
pub struct Mirrors {
    dir: PathBuf,
    locks: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The bounds every read of a mirror respects (defaults unless set).
    limits: Limits,
}

impl Mirrors {
    pub fn new(dir: PathBuf) -> Mirrors {
        Mirrors {
            dir,
            locks: Default::default(),
            limits: Default::default(),
        }
    }

    /// The same mirrors, read within `limits`.
    pub fn with_limits(mut self, limits: Limits) -> Mirrors {
        self.limits = limits;
        self
    }

    fn lock_for(&self, repo: &RepoName) -> Arc<tokio::sync::Mutex<()>> {
        let key = repo.full().to_ascii_lowercase();
        self.locks
            .lock()
            .expect("mirror lock map")
            .entry(key)
            .or_default()
            .clone()
    }

    pub fn path(&self, repo: &RepoName) -> PathBuf {
        self.dir
            .join(repo.owner().to_ascii_lowercase())
            .join(format!("{}.git", repo.name().to_ascii_lowercase()))
    }

    /// Makes sure the commits `want` are in the mirror. With `refresh`, fetches even when they
    /// are (to see where the base branch is now); otherwise only when something is missing.
    pub async fn ensure(
        &self,
        repo: &RepoName,
        clone_url: &str,
        token: Option<Secret>,
        refspec_sets: Vec<Vec<String>>,
        want: Vec<CommitSha>,
        refresh: bool,
    ) -> anyhow::Result<GitRepo> {
        let lock = self.lock_for(repo);
        let _guard = lock.lock().await;
        let path = self.path(repo);
        let url = clone_url.to_string();
        let limits = self.limits;
        tokio::task::spawn_blocking(move || -> anyhow::Result<GitRepo> {
            let git = GitRepo::mirror(&path)?.with_limits(limits);
            let have_all = |g: &GitRepo| want.iter().all(|w| g.has_commit(w));
            if !refresh && have_all(&git) {
                return Ok(git);
            }
            // Refspec sets in order of preference: the first that brings every wanted commit wins.
            // A set can fail as a whole (git rejects a missing ref), so the next one is tried.
            let mut last_err = None;
            for refspecs in &refspec_sets {
                match git.fetch(&url, refspecs, token.as_ref()) {
                    Ok(()) if have_all(&git) => return Ok(git),
                    Ok(()) => {}
                    Err(e) => last_err = Some(e),
                }
            }
            // Last resort: GitHub serves reachable commits by id.
            let ids: Vec<String> = want.iter().map(|w| w.to_string()).collect();
            match git.fetch(&url, &ids, token.as_ref()) {
                Ok(()) if have_all(&git) => Ok(git),
                Ok(()) => anyhow::bail!(
                    "the commits {} are not in {}",
                    ids.join(", "),
                    super::redact_url(&url)
                ),
                Err(e) => Err(last_err.map(|l| l.context(format!("{e:#}"))).unwrap_or(e)),
            }
        })
        .await
        .context("fetch task failed")?
    }
}
