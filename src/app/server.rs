//! `sluice serve`: builds everything from the settings and runs it — the HTTP server, the event
//! processor, the job workers, the sweeper and the outbox deliverer — in one process.
//!
//! Shutdown is decide → tell → wait: the shutdown future fires; intake stops (HTTP drains) and
//! loops stop claiming work; running jobs get `shutdown_grace` to finish; then their terraform
//! processes are interrupted (SIGINT, then SIGKILL) and the jobs are recorded as interrupted, and
//! the PR is told. Nothing is dropped silently.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::bot::Bot;
use super::ports::store::Store;
use super::project_run::Runner;
use super::worker::Workers;
use crate::adapters::git::Mirrors;
use crate::adapters::github::{GitHubConfig, OctocrabGitHub};
use crate::adapters::store::SqliteStore;
use crate::app::ports::GitHubApi;
use crate::config::Settings;
use crate::core::allowlist::Allowlist;
use crate::core::command::CommandKind;
use crate::http::{AppState, router};

/// How long running jobs may take to finish after a shutdown signal.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(60);

/// What is missing to talk to GitHub, and other facts worth printing at start.
pub fn setup_notes(settings: &Settings, runner: &Runner, allowlist: &Allowlist) -> Vec<String> {
    let mut notes = Vec::new();
    match (&settings.github_token, settings.github_app_id) {
        (_, Some(id)) => notes.push(format!("GitHub: App {id} (installation tokens) at {}", settings.github_api_url)),
        (Some(_), None) => notes.push(format!("GitHub: token authentication at {}", settings.github_api_url)),
        (None, None) => notes.push(
            "MISSING GitHub credentials: set SLUICE_GITHUB_TOKEN, or SLUICE_GITHUB_APP_ID and SLUICE_GITHUB_APP_KEY_FILE. \
             Webhooks are accepted and stored, but Sluice cannot comment, set statuses or fetch private repositories."
                .to_string(),
        ),
    }
    if settings.webhook_secret.is_some() {
        notes.push("Webhooks: POST /events, signatures verified (X-Hub-Signature-256)".to_string());
    } else {
        notes.push(
            "INSECURE: webhook signatures are NOT verified (--insecure-no-webhook-secret)"
                .to_string(),
        );
    }
    notes.push(if allowlist.is_open() {
        "Repositories: every repository whose webhooks carry the secret (set SLUICE_REPO_ALLOWLIST to restrict)".to_string()
    } else {
        format!("Repositories: {}", settings.repo_allowlist.join(", "))
    });
    notes.push(format!(
        "Runner: {}{}",
        runner.sandbox.description(),
        if runner.sandbox.is_isolated() {
            ""
        } else {
            " — WARNING: PR code is NOT isolated"
        }
    ));
    notes.push(match &runner.mirror {
        Some(m) => format!("Providers: from the mirror {} only", m.display()),
        None => "Providers: downloaded by terraform from registries into each job".to_string(),
    });
    notes.push(match (&settings.policy_dir, settings.repo_policies) {
        (Some(d), true) => format!(
            "Policies: the server's in {} plus each repository's (from the PR's base branch)",
            d.display()
        ),
        (Some(d), false) => format!("Policies: only the server's, in {}", d.display()),
        (None, true) => {
            "Policies: each repository's policies/*.yaml (from the PR's base branch)".to_string()
        }
        (None, false) => "Policies: none".to_string(),
    });
    notes.push(if settings.insecure_ui_no_auth {
        "INSECURE: the web UI has no login (--insecure-ui-no-auth): everyone who reaches it is an admin".to_string()
    } else if settings.ui.login_configured() {
        format!(
            "Web UI: login with GitHub at {}/login",
            settings.public_url.as_deref().unwrap_or("").trim_end_matches('/')
        )
    } else {
        "Web UI: no login configured (set SLUICE_UI__OAUTH_CLIENT_ID, SLUICE_UI__OAUTH_CLIENT_SECRET, \
         SLUICE_UI__SESSION_SECRET); pages open only with the API token"
            .to_string()
    });
    notes.push(format!("Data: {}", settings.data_dir.display()));
    notes.push(format!(
        "Comment commands start with `{}`",
        settings.bot_name
    ));
    notes
}

use crate::app::ports::GitHubError;
use crate::core::review::checks::{CreateCheckRun, UpdateCheckRun};
use crate::core::review::patch::PrFile;
use crate::core::review::pr_review::{CreateReview, CreateReviewComment};
use crate::core::types::{PrNumber, RepoName};

/// A GitHub client that refuses every call, for a server started without credentials (it still
/// accepts and stores webhooks, and explains what is missing).
struct NoGitHub;

#[async_trait::async_trait]
impl GitHubApi for NoGitHub {
    async fn create_comment(
        &self,
        _: &crate::core::types::RepoName,
        _: crate::core::types::PrNumber,
        _: &str,
    ) -> Result<u64, crate::app::ports::GitHubError> {
        Err(missing())
    }
    async fn update_comment(
        &self,
        _: &crate::core::types::RepoName,
        _: u64,
        _: &str,
    ) -> Result<(), crate::app::ports::GitHubError> {
        Err(missing())
    }
    async fn set_status(
        &self,
        _: &crate::core::types::RepoName,
        _: &crate::core::types::CommitSha,
        _: &crate::app::ports::CommitStatus,
    ) -> Result<(), crate::app::ports::GitHubError> {
        Err(missing())
    }
    async fn add_reaction(
        &self,
        _: &crate::core::types::RepoName,
        _: u64,
        _: &str,
    ) -> Result<(), crate::app::ports::GitHubError> {
        Err(missing())
    }
    async fn get_pull(
        &self,
        _: &crate::core::types::RepoName,
        _: crate::core::types::PrNumber,
    ) -> Result<crate::app::ports::PullDetails, crate::app::ports::GitHubError> {
        Err(missing())
    }
    async fn list_reviews(
        &self,
        _: &crate::core::types::RepoName,
        _: crate::core::types::PrNumber,
    ) -> Result<Vec<crate::core::event::Review>, crate::app::ports::GitHubError> {
        Err(missing())
    }
    async fn team_members(
        &self,
        _: &str,
        _: &str,
    ) -> Result<Vec<String>, crate::app::ports::GitHubError> {
        Err(missing())
    }
    async fn bot_login(&self) -> Result<String, crate::app::ports::GitHubError> {
        Err(missing())
    }
    async fn repo_permission(&self, _: &RepoName, _: &str) -> Result<String, GitHubError> {
        Err(missing())
    }
    async fn list_pull_files(&self, _: &RepoName, _: PrNumber) -> Result<Vec<PrFile>, GitHubError> {
        Err(missing())
    }
    async fn create_review(
        &self,
        _: &RepoName,
        _: PrNumber,
        _: &CreateReview,
    ) -> Result<crate::app::ports::PostedReviewIds, GitHubError> {
        Err(missing())
    }
    async fn update_review(
        &self,
        _: &RepoName,
        _: PrNumber,
        _: u64,
        _: &str,
    ) -> Result<(), GitHubError> {
        Err(missing())
    }
    async fn create_review_comment(
        &self,
        _: &RepoName,
        _: PrNumber,
        _: &CreateReviewComment,
    ) -> Result<u64, GitHubError> {
        Err(missing())
    }
    async fn update_review_comment(
        &self,
        _: &RepoName,
        _: u64,
        _: &str,
    ) -> Result<(), GitHubError> {
        Err(missing())
    }
    async fn create_check_run(&self, _: &RepoName, _: &CreateCheckRun) -> Result<u64, GitHubError> {
        Err(missing())
    }
    async fn update_check_run(
        &self,
        _: &RepoName,
        _: u64,
        _: &UpdateCheckRun,
    ) -> Result<(), GitHubError> {
        Err(missing())
    }
    fn is_app(&self) -> bool {
        false
    }
    async fn clone_token(
        &self,
        _: Option<u64>,
    ) -> Result<Option<crate::config::Secret>, crate::app::ports::GitHubError> {
        Ok(None)
    }
    async fn create_issue(
        &self,
        _: &crate::core::types::RepoName,
        _: &crate::app::ports::github::IssueText,
    ) -> Result<u64, crate::app::ports::GitHubError> {
        Err(missing())
    }
    async fn update_issue(
        &self,
        _: &crate::core::types::RepoName,
        _: u64,
        _: &crate::app::ports::github::IssueText,
        _: bool,
    ) -> Result<(), crate::app::ports::GitHubError> {
        Err(missing())
    }
    async fn open_issues_labelled(
        &self,
        _: &crate::core::types::RepoName,
        _: &str,
    ) -> Result<Vec<(u64, String)>, crate::app::ports::GitHubError> {
        Err(missing())
    }
    async fn compare_files(
        &self,
        _: &crate::core::types::RepoName,
        _: &crate::core::types::CommitSha,
        _: &crate::core::types::CommitSha,
    ) -> Result<Vec<PrFile>, crate::app::ports::GitHubError> {
        Err(missing())
    }
    async fn merge_pull(
        &self,
        _: &crate::core::types::RepoName,
        _: PrNumber,
        _: crate::app::ports::github::MergeMethod,
        _: &crate::core::types::CommitSha,
    ) -> Result<crate::core::types::CommitSha, crate::app::ports::GitHubError> {
        Err(missing())
    }
    async fn create_pull(
        &self,
        _: &RepoName,
        _: &crate::app::ports::NewPull,
    ) -> Result<crate::app::ports::PullLink, GitHubError> {
        Err(missing())
    }
    async fn open_pulls_from(
        &self,
        _: &RepoName,
        _: &str,
    ) -> Result<Vec<crate::app::ports::PullLink>, GitHubError> {
        Err(missing())
    }
}

fn missing() -> crate::app::ports::GitHubError {
    crate::app::ports::GitHubError::Unauthorized("no GitHub credentials are configured".into())
}

pub fn github_client(settings: &Settings) -> anyhow::Result<Arc<dyn GitHubApi>> {
    if settings.github_token.is_none() && settings.github_app_id.is_none() {
        return Ok(Arc::new(NoGitHub));
    }
    let client = OctocrabGitHub::new(GitHubConfig::from_settings(settings)?)?;
    Ok(Arc::new(client))
}

pub fn enabled_commands(settings: &Settings) -> anyhow::Result<Vec<CommandKind>> {
    settings
        .enabled_commands
        .iter()
        .map(|name| {
            CommandKind::from_name(name).with_context(|| {
                format!("enabled_commands: unknown command {name:?} (known: plan, apply, import, state_rm, unlock, approve_policies, help, version, rollback)")
            })
        })
        .collect()
}

/// Runs the server until `shutdown` completes, then stops as described in the module docs.
pub async fn serve(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    if settings.webhook_secret.is_none() && !settings.insecure_no_webhook_secret {
        bail!(
            "refusing to start without a webhook secret: set SLUICE_WEBHOOK_SECRET (the secret configured on the GitHub App \
             or webhook). For local development only, --insecure-no-webhook-secret accepts unsigned webhooks."
        );
    }
    let settings = Arc::new(settings);
    let (workers, state) = wire(&settings).await?;
    let store = workers.store.clone();

    // Decide: one token to stop intake and claiming, another to interrupt running terraform.
    let stop = CancellationToken::new();
    let kill = CancellationToken::new();
    let tracker = TaskTracker::new();
    // Recover what a previous process left running before taking new work.
    workers.sweep().await;
    tracker.spawn(workers.clone().event_loop(stop.clone()));
    let job_tracker = TaskTracker::new();
    for n in 0..settings.workers {
        job_tracker.spawn(workers.clone().job_loop(n, stop.clone(), kill.clone()));
    }
    job_tracker.close();
    tracker.spawn(workers.clone().sweep_loop(stop.clone()));
    let outbox_stop = CancellationToken::new();
    tracker.spawn(workers.clone().outbox_loop(outbox_stop.clone()));
    if let Some(drift) = workers.bot.drift.clone() {
        // Drift checks have their own slots (`drift.workers`): PR jobs never wait for them.
        tracker.spawn(drift.clone().scheduler(stop.clone()));
        tracker.spawn(drift.outbox_loop(outbox_stop.clone()));
    }
    if let (Some(logs), days @ 1..) = (workers.job_logs.clone(), settings.ui.log_retention_days) {
        tracker.spawn(log_retention_loop(logs, days, stop.clone()));
    }
    tracker.close();
    state
        .workers_running
        .store(true, std::sync::atomic::Ordering::Release);
    let ready = state.workers_running.clone();

    let addr = listener.local_addr()?;
    tracing::info!(%addr, "listening");
    eprintln!("sluice: listening on http://{addr}");
    let http_task = tokio::spawn(crate::http::listener::serve(
        listener,
        router(state),
        crate::http::listener::ConnectionLimits::from_settings(&settings.http),
        stop.clone(),
    ));

    shutdown.await;
    tracing::info!("shutting down: intake stopped, waiting for running jobs");
    eprintln!(
        "sluice: shutting down; waiting up to {}s for running jobs",
        settings.shutdown_grace_secs
    );
    ready.store(false, std::sync::atomic::Ordering::Release);
    stop.cancel();
    let _ = http_task.await;
    // Wait for running jobs, up to the grace period; then interrupt them.
    if tokio::time::timeout(
        Duration::from_secs(settings.shutdown_grace_secs),
        job_tracker.wait(),
    )
    .await
    .is_err()
    {
        tracing::warn!("jobs still running after the grace period: interrupting them");
        kill.cancel();
        let _ = tokio::time::timeout(
            Duration::from_secs(settings.runner.grace_secs + 5),
            job_tracker.wait(),
        )
        .await;
    }
    tell_the_interrupted(&settings, &store, &workers).await;
    outbox_stop.cancel();
    tracker.wait().await;
    tracing::info!("stopped");
    Ok(())
}

/// Everything `serve` runs, built from the settings: the store, the runner, the GitHub client,
/// the bot and its workers, and the HTTP handlers' state. Prints what is set up and what is
/// missing.
async fn wire(settings: &Arc<Settings>) -> anyhow::Result<(Arc<Workers>, Arc<AppState>)> {
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("creating the data dir {}", settings.data_dir.display()))?;
    let sqlite = Arc::new(SqliteStore::open(&settings.db_path()).await?);
    let store: Arc<dyn Store> = sqlite.clone();
    let job_logs: Arc<dyn crate::app::ports::job_log::JobLogStore> = sqlite.clone();
    let drift_store: Arc<dyn crate::app::ports::drift::DriftStore> = sqlite;
    let mut runner = Runner::from_settings(settings)?;
    runner.download_audit = Some(super::engine_choice::DownloadAudit {
        store: store.clone(),
    });
    let runner = Arc::new(runner);
    let github = github_client(settings)?;
    let allowlist = settings.allowlist().clone();
    let enabled = enabled_commands(settings)?;
    let server_policies = match &settings.policy_dir {
        Some(dir) => super::policy::load_server_policies(dir)?,
        None => Vec::new(),
    };
    let notes = setup_notes(settings, &runner, &allowlist);
    for n in &notes {
        if n.starts_with("MISSING") || n.starts_with("INSECURE") || n.contains("WARNING") {
            tracing::warn!("{n}");
            eprintln!("sluice: {n}");
        } else {
            tracing::info!("{n}");
        }
    }
    let events_ready = Arc::new(Notify::new());
    let jobs_ready = Arc::new(Notify::new());
    let outbox_ready = Arc::new(Notify::new());
    let mirrors = Arc::new(Mirrors::new(settings.mirrors_dir()).with_limits(settings.limits));
    let host_paths = Arc::new(super::layout::host_paths(settings, &runner));
    let drift = match settings.drift.enabled {
        true => Some(Arc::new(super::drift::DriftService::new(
            settings.clone(),
            store.clone(),
            drift_store.clone(),
            github.clone(),
            mirrors.clone(),
            runner.clone(),
            host_paths.clone(),
        )?)),
        false => None,
    };
    let bot = Arc::new(Bot {
        settings: settings.clone(),
        store: store.clone(),
        github: github.clone(),
        mirrors,
        drift,
        enabled,
        bot_login: Default::default(),
        jobs_ready: jobs_ready.clone(),
        outbox_ready: outbox_ready.clone(),
        server_policies: Arc::new(server_policies),
        teams: Arc::new(super::policy::TeamCache::new(Duration::from_secs(60))),
        permissions: Default::default(),
    });
    let instance = format!(
        "{}-{}-{}",
        std::env::var("HOSTNAME").unwrap_or_else(|_| "sluice".into()),
        std::process::id(),
        crate::adapters::clock::now().get()
    );
    let mut ui = crate::http::ui::Ui::from_settings(settings, Some(github.clone()))?;
    ui.outbox_ready = Some(outbox_ready.clone());
    ui.job_logs = Some(job_logs.clone());
    ui.drift_service = bot.drift.clone();
    let workers = Arc::new(Workers {
        settings: settings.clone(),
        store: store.clone(),
        github,
        runner: runner.clone(),
        bot,
        events_ready: events_ready.clone(),
        jobs_ready,
        outbox_ready,
        instance,
        lease: Duration::from_secs(settings.job_lease_secs.max(3)),
        live: Default::default(),
        host_paths,
        writes: super::worker::WriteScheduler::new(settings),
        job_logs: Some(job_logs.clone()),
    });
    let state = Arc::new(AppState {
        store,
        drift: drift_store,
        webhook_secret: settings.webhook_secret.clone(),
        allowlist,
        api_token: settings.api_token.clone(),
        events_ready,
        setup_notes: notes,
        rejections_suppressed: Default::default(),
        rejection_limiter: AppState::rejection_limiter(),
        body_limits: crate::http::webhook::BodyLimits::from_settings(&settings.http),
        ui: Arc::new(ui),
        workers_running: Default::default(),
    });
    Ok((workers, state))
}

/// After the jobs stopped: the ones still running are recorded interrupted, the runs that
/// just finished are reported, and the outbox gets a moment to tell the pull requests.
async fn tell_the_interrupted(settings: &Settings, store: &Arc<dyn Store>, workers: &Workers) {
    for n in 0..settings.workers {
        let worker = format!("{}-w{n}", workers.instance);
        match store
            .interrupt_worker_jobs(&worker, crate::adapters::clock::now())
            .await
        {
            Ok(ids) if !ids.is_empty() => tracing::warn!(?ids, "jobs marked interrupted"),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %format!("{e:#}"), "marking interrupted jobs failed"),
        }
    }
    if let Ok(runs) = store.finished_runs().await {
        for run in runs {
            workers.report(run.id).await;
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while store.pending_outbox().await.map(|n| n > 0).unwrap_or(false) {
            if workers.deliver_due().await == 0 {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    })
    .await;
}

/// Removes job logs older than `ui.log_retention_days`, at start and then hourly.
async fn log_retention_loop(
    logs: Arc<dyn crate::app::ports::job_log::JobLogStore>,
    days: u64,
    stop: CancellationToken,
) {
    let keep_ms = i64::try_from(days.saturating_mul(86_400_000)).unwrap_or(i64::MAX);
    loop {
        let before = crate::core::types::UnixMs::new(
            crate::adapters::clock::now().get().saturating_sub(keep_ms),
        );
        match logs.remove_logs_before(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(chunks = n, "removed job logs past their retention"),
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "removing old job logs failed"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
    }
}
