//! `GET /metrics` (Prometheus text format) from the process's registry (`adapters::metrics`,
//! where the series are recorded). Values that live in the store — the outbox backlog and drift
//! projects by status and age — are read at scrape time, so they are right after a restart.
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
    Ok(())
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
