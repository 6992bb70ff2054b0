//! `GET /metrics` (Prometheus text format) from the process's registry (`adapters::metrics`,
//! where the series are recorded). Values that live in the store — the outbox backlog, drift
//! projects by status and age, jobs by kind and state, the queue, audit entries written — are
//! read at scrape time, so they are right after a restart; the GitHub write budget is the one
//! the write scheduler last published.
//!
//! `/metrics` is open by default, like most exporters (it shows counts, never names);
//! `ui.metrics_require_token` puts it behind the API token.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
pub use crate::adapters::metrics::{global, inc, inc_by, observe, set};
use crate::core::ui::metrics::{find, label_value};

/// Reads what the store knows into the gauges (outbox backlog, drift by status and age).
async fn refresh(state: &AppState) -> anyhow::Result<()> {
    let backlog = state.store.pending_outbox().await?;
    set("sluice_outbox_backlog", &[], backlog as f64);
    let now = chrono::Utc::now();
    let projects = crate::app::drift::project_statuses(&*state.drift, None, now).await?;
    let mut by_status: HashMap<&'static str, u64> = HashMap::new();
    if let Some(def) = find("sluice_drift_projects") {
        for l in def.labels.iter().filter(|l| l.name == "status") {
            for v in l.values {
                by_status.insert(v, 0);
            }
        }
    }
    let mut oldest = 0i64;
    for p in &projects {
        let status = find("sluice_drift_projects").map_or("other", |d| {
            label_value(d, "status", p.sync.status.as_str())
        });
        *by_status.entry(status).or_default() += 1;
        if let Some(d) = &p.sync.drift {
            oldest = oldest.max(d.age_seconds);
        }
    }
    for (status, n) in by_status {
        set("sluice_drift_projects", &[("status", status)], n as f64);
    }
    set("sluice_drift_oldest_age_seconds", &[], oldest as f64);
    refresh_jobs(state).await?;
    refresh_audit(state).await?;
    refresh_write_budget();
    Ok(())
}

/// The label values of `label` of catalog metric `name`, `other` included.
fn label_values(name: &str, label: &str) -> Vec<&'static str> {
    find(name)
        .into_iter()
        .flat_map(|d| d.labels.iter().filter(|l| l.name == label))
        .flat_map(|l| l.values.iter().copied())
        .collect()
}

/// Jobs by kind and state (`sluice_jobs`) and the queue (`sluice_queue_depth`: queued or
/// waiting for locks), from the store; every combination is set, 0 when none.
async fn refresh_jobs(state: &AppState) -> anyhow::Result<()> {
    let counts = state.store.job_counts().await?;
    let kinds = label_values("sluice_jobs", "kind");
    let states = label_values("sluice_jobs", "state");
    let mut jobs: HashMap<(&'static str, &'static str), u64> = HashMap::new();
    let mut depth: HashMap<&'static str, u64> = HashMap::new();
    for k in &kinds {
        depth.insert(k, 0);
        for s in &states {
            jobs.insert((k, s), 0);
        }
    }
    let (Some(jobs_def), Some(depth_def)) = (find("sluice_jobs"), find("sluice_queue_depth"))
    else {
        return Ok(());
    };
    for (kind, st, n) in counts {
        let k = label_value(jobs_def, "kind", &kind);
        let s = label_value(jobs_def, "state", &st);
        *jobs.entry((k, s)).or_default() += n;
        if st == "queued" || st == "waiting" {
            *depth
                .entry(label_value(depth_def, "kind", &kind))
                .or_default() += n;
        }
    }
    for ((k, s), n) in jobs {
        set("sluice_jobs", &[("kind", k), ("state", s)], n as f64);
    }
    for (k, n) in depth {
        set("sluice_queue_depth", &[("kind", k)], n as f64);
    }
    Ok(())
}

/// The last audit `seq` counted into `sluice_audit_entries_total`: each scrape adds the
/// entries written since (by this server, the CLI or anything else), so the counter counts
/// what the log holds, once, and rises only.
static AUDIT_COUNTED: tokio::sync::Mutex<u64> = tokio::sync::Mutex::const_new(0);

async fn refresh_audit(state: &AppState) -> anyhow::Result<()> {
    let mut counted = AUDIT_COUNTED.lock().await;
    let (counts, last) = state.store.audit_counts(*counted).await?;
    for (action, n) in counts {
        let label = crate::core::ui::metrics::audit_action_label(&action);
        inc_by("sluice_audit_entries_total", &[("action", label)], n);
    }
    *counted = last;
    Ok(())
}

/// The GitHub write budget the outbox's write scheduler last published.
fn refresh_write_budget() {
    let Some(b) = crate::app::worker::published_budget() else {
        // No write scheduled yet: nothing pending, nothing paused.
        set("sluice_github_writes_pending", &[], 0.0);
        set("sluice_github_writes_paused", &[], 0.0);
        return;
    };
    set(
        "sluice_github_writes_pending",
        &[],
        (b.queued + b.in_flight) as f64,
    );
    let paused = b.paused_until.is_some_and(|t| t > chrono::Utc::now());
    set(
        "sluice_github_writes_paused",
        &[],
        if paused { 1.0 } else { 0.0 },
    );
    set(
        "sluice_github_write_budget_remaining",
        &[("window", "minute")],
        f64::from(b.remaining_minute),
    );
    set(
        "sluice_github_write_budget_remaining",
        &[("window", "hour")],
        f64::from(b.remaining_hour),
    );
}

/// `GET /metrics`.
pub async fn metrics(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if state.ui.metrics_require_token
        && let Err(r) = super::api::authorize(&state, &headers)
    {
        return *r;
    }
    if let Err(e) = refresh(&state).await {
        // The counters are still worth scraping; the gauges keep their last values.
        tracing::warn!(error = %format!("{e:#}"), "metrics: reading the store failed");
    }
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        global().encode(),
    )
        .into_response()
}

/// The `result` label of a webhook answer's status.
pub fn intake_result(status: StatusCode) -> &'static str {
    match status.as_u16() {
        202 => "accepted",
        200 => "ignored",
        401 => "bad_signature",
        413 => "too_large",
        400 | 415 | 422 => "bad_request",
        403 | 404 => "not_allowed",
        _ => "error",
    }
}
