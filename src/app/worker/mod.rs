//! The background loops of `sluice serve`: the event processor (webhook → runs, [`events`]),
//! the job workers (runs → terraform, with leases, [`jobs`]), the reports of finished runs
//! ([`report`]), the sweeper (expired leases, unreported runs) and the outbox deliverer
//! (comments, statuses, reactions → GitHub, with retries, [`outbox`]).
//!
//! Every loop takes a `stop` token: when it fires the loop finishes what it holds and returns.
//! Running terraform is only interrupted by the separate `kill` token, after the shutdown grace.

mod events;
mod jobs;
mod outbox;
mod report;
mod review;
mod state;
mod writes;

pub use report::MAX_PROJECT_CHECKS;
pub use writes::{WriteScheduler, budget_json, published_budget};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::bot::Bot;
use super::ports::{GitHubApi, Store};
use super::project_run::Runner;
use crate::adapters::clock;
use crate::config::Settings;

/// Everything the loops share.
pub struct Workers {
    pub settings: Arc<Settings>,
    pub store: Arc<dyn Store>,
    pub github: Arc<dyn GitHubApi>,
    pub runner: Arc<Runner>,
    pub bot: Arc<Bot>,
    pub events_ready: Arc<Notify>,
    pub jobs_ready: Arc<Notify>,
    pub outbox_ready: Arc<Notify>,
    /// Unique per process start; worker ids are `<instance>-w<n>`.
    pub instance: String,
    pub lease: Duration,
    /// This process's running jobs (id → worker id). The sweeper renews their leases before it
    /// recovers expired ones, so a stalled heartbeat never makes a live job look dead (a live
    /// apply marked interrupted could be applied a second time).
    pub live: std::sync::Mutex<HashMap<i64, String>>,
    /// The host layout's neutral names, applied to everything posted (see `app::layout`).
    pub host_paths: Arc<crate::core::host_paths::HostPaths>,
    /// Paces review, summary and check run writes (`core::review::budget`).
    pub writes: WriteScheduler,
    /// Where jobs' terraform output is stored for the web UI (`app::job_log`).
    pub job_logs: Option<Arc<dyn crate::app::ports::job_log::JobLogStore>>,
}

impl Workers {
    /// Starts job `job_id`'s stored log (none when no log store is wired).
    pub(super) fn start_log(
        &self,
        job_id: i64,
        step: crate::core::ui::job_log::LogStep,
    ) -> Option<Arc<crate::app::job_log::JobLog>> {
        let store = self.job_logs.clone()?;
        Some(crate::app::job_log::JobLog::start(
            store,
            job_id,
            step,
            self.runner.redactor(),
            {
                let max_bytes = self.settings.ui.log_max_bytes.max(4096);
                let d = crate::core::ui::job_log::LogLimits::default();
                crate::core::ui::job_log::LogLimits {
                    max_bytes,
                    tail_bytes: d.tail_bytes.min(max_bytes / 4),
                    chunk_bytes: d.chunk_bytes.min(max_bytes / 4),
                }
            },
        ))
    }

    /// `text` with host paths mapped to neutral names (the same mapping as every text posted on
    /// GitHub): for what is also written to the store — a dead letter's reason, its audit entry.
    fn hide_host_paths(&self, text: &str) -> String {
        self.host_paths.map(text).into_owned()
    }

    fn live_jobs(&self) -> std::sync::MutexGuard<'_, HashMap<i64, String>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    // ---- sweeper ---------------------------------------------------------------------------------

    pub async fn sweep_loop(self: Arc<Self>, stop: CancellationToken) {
        loop {
            self.sweep().await;
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                _ = stop.cancelled() => return,
            }
        }
    }

    /// Store upkeep; the leases of this process's running jobs renewed; expired leases
    /// recovered; finished runs that were not reported, reported.
    pub async fn sweep(&self) {
        if let Err(e) = self.store.upkeep().await {
            tracing::warn!(error = %format!("{e:#}"), "store upkeep failed");
        }
        // Our own running jobs are alive whatever their heartbeat managed: extend them first.
        let live: Vec<(i64, String)> = self
            .live_jobs()
            .iter()
            .map(|(id, w)| (*id, w.clone()))
            .collect();
        for (id, worker) in live {
            let until = clock::now().plus(self.lease);
            if let Err(e) = self.store.renew_lease(id, &worker, until).await {
                tracing::warn!(job_id = id, error = %format!("{e:#}"), "renewing a live job's lease failed");
            }
        }
        match self.store.recover_expired(clock::now()).await {
            Ok(rec) => {
                for r in &rec {
                    tracing::warn!(job_id = r.job.id, repo = %r.run.repo, pr = r.run.pr.get(), now = %r.now, "job lease expired");
                }
                if !rec.is_empty() {
                    self.jobs_ready.notify_one();
                }
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "recovering expired leases failed")
            }
        }
        match self.store.finished_runs().await {
            Ok(runs) => {
                for run in runs {
                    self.report(run.id).await;
                }
            }
            Err(e) => tracing::error!(error = %format!("{e:#}"), "listing finished runs failed"),
        }
    }
}
