//! `sluice rollback --repo R --pr N`: the comment command's flow run from the command line, with
//! the server's settings (its store, its GitHub credentials, its mirrors). The repository must
//! have sent the server an event before (its clone URL, default branch and installation come
//! from there); the replies go to the pull request through the store's outbox, delivered by the
//! running server, and the outcome is printed.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::Notify;

use super::bot::{Bot, EventError};
use super::ports::drift::DriftStore;
use crate::adapters::git::Mirrors;
use crate::config::Settings;
use crate::core::types::{PrNumber, RepoName};

/// What the command was asked.
#[derive(Debug, Clone)]
pub struct RollbackOptions {
    /// `owner/name`.
    pub repo: String,
    pub pr: u64,
    /// Who asks (recorded in the audit log; must have `write` on the repository). Defaults to
    /// `$USER`.
    pub by: Option<String>,
}

/// Exit 0: the revert pull request was opened (or is already open); 1: refused or conflicting.
pub async fn run(settings: &Settings, opts: RollbackOptions) -> anyhow::Result<ExitCode> {
    let name = RepoName::parse(&opts.repo).map_err(|e| anyhow::anyhow!("--repo: {e}"))?;
    let pr = PrNumber::new(opts.pr).map_err(|e| anyhow::anyhow!("--pr: {e}"))?;
    let by = opts
        .by
        .or_else(|| std::env::var("USER").ok())
        .context("say who asks for the rollback with --by")?;
    let sqlite = Arc::new(super::audit::open_existing(settings).await?);
    let repo = sqlite.repo(&name).await?.with_context(|| {
        format!(
            "{name} is not known to this server: its clone URL and default branch come from its \
             events, remembered while drift detection is on (drift.enabled)"
        )
    })?;
    let settings = Arc::new(settings.clone());
    let bot = Bot {
        settings: settings.clone(),
        store: sqlite,
        github: super::server::github_client(&settings)?,
        mirrors: Arc::new(Mirrors::new(settings.mirrors_dir()).with_limits(settings.limits)),
        enabled: super::server::enabled_commands(&settings)?,
        bot_login: Default::default(),
        jobs_ready: Arc::new(Notify::new()),
        outbox_ready: Arc::new(Notify::new()),
        server_policies: Arc::new(Vec::new()),
        teams: Arc::new(super::policy::TeamCache::new(
            std::time::Duration::from_secs(60),
        )),
        permissions: Default::default(),
        drift: None,
    };
    let delivery = format!("cli-rollback-{}", crate::adapters::clock::now().get());
    match bot.rollback_from_cli(&repo, pr, &by, &delivery).await {
        Ok(said) => {
            println!("{}", said.text);
            Ok(if said.revert_open {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Err(EventError::Retry(e) | EventError::Permanent(e)) => Err(e),
    }
}
