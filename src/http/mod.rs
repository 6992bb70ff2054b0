//! HTTP: the axum router and the listener under it. `router(state)` is a plain function so
//! tests drive it without a socket; `listener::serve` puts it on a socket with connection
//! budgets. Handlers do no git or terraform work: the webhook handler verifies, parses, checks
//! the allowlist, persists and answers 202 in milliseconds; everything else happens in workers.
//!
//! Only `POST /events` (signed), `GET /healthz`, `GET /readyz` and `GET /metrics` (counts, no
//! names; optionally behind the token) work without credentials. `/api/*` needs the API token.
//! The web UI (`ui`: `/` and its pages) needs a login, the API token or the explicit dev flag,
//! and without any of them only says how to configure login: an unauthenticated page must not
//! describe repositories or the host.

pub mod api;
pub mod listener;
pub mod metrics;
pub mod projects;
pub mod ui;
pub mod webhook;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::Notify;

use crate::app::ports::store::Store;
use crate::config::Secret;
use crate::core::allowlist::Allowlist;

/// What the handlers need.
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// Drift records and sync status (`GET /api/projects`).
    pub drift: Arc<dyn crate::app::ports::drift::DriftStore>,
    /// `None` only with the explicit insecure development flag.
    pub webhook_secret: Option<Secret>,
    pub allowlist: Allowlist,
    pub api_token: Option<Secret>,
    pub events_ready: Arc<Notify>,
    /// Lines for the status page: what is configured and what is missing.
    pub setup_notes: Vec<String>,
    /// Rejected-webhook audit entries are rate-limited (an unauthenticated sender must not be
    /// able to grow the append-only log without bound); this counts the ones not written.
    pub rejections_suppressed: AtomicU64,
    pub rejection_limiter: governor::DefaultDirectRateLimiter,
    /// Size, time and memory budgets of webhook bodies.
    pub body_limits: webhook::BodyLimits,
    /// The web UI: login, sessions, permissions.
    pub ui: Arc<ui::Ui>,
    /// Set once the workers run; `GET /readyz` is 503 before (and after shutdown began).
    pub workers_running: Arc<AtomicBool>,
}

impl AppState {
    pub fn rejection_limiter() -> governor::DefaultDirectRateLimiter {
        governor::RateLimiter::direct(
            governor::Quota::per_second(std::num::NonZeroU32::new(5).expect("non-zero"))
                .allow_burst(std::num::NonZeroU32::new(20).expect("non-zero")),
        )
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    use crate::core::ui::pages::routes;
    Router::new()
        .route("/", get(ui::environments))
        .route(routes::ENVIRONMENTS, get(ui::environments))
        .route(routes::LOGIN, get(ui::login))
        .route(routes::LOGIN_START, get(ui::login_start))
        .route(routes::LOGIN_CALLBACK, get(ui::login_callback))
        .route(routes::LOGOUT, post(ui::logout))
        .route(routes::LOCKS, get(ui::locks))
        .route(
            routes::LOCK_RELEASE,
            get(ui::lock_release_confirm).post(ui::lock_release),
        )
        .route(routes::RUNS, get(ui::runs))
        .route("/runs/{id}", get(ui::run))
        .route("/repos/{owner}/{name}/pulls/{pr}", get(ui::pull))
        .route(routes::DRIFT, get(ui::drift))
        .route(routes::DRIFT_ACK, post(ui::drift_ack))
        .route(routes::DRIFT_ACCEPT, post(ui::drift_accept))
        .route(routes::AUDIT, get(ui::audit))
        .route(routes::AUDIT_EXPORT, get(ui::audit_export))
        .route("/jobs/{id}/log", get(ui::job_log))
        .route("/jobs/{id}/log/events", get(ui::job_log_events))
        .route(routes::CSS, get(ui::css))
        .route(routes::JS, get(ui::js))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics::metrics))
        // The handler reads the body itself, within `body_limits` (no extractor buffers it).
        .route("/events", post(webhook::receive))
        .route("/api/locks", get(api::locks))
        .route("/api/write-budget", get(api::write_budget))
        .route("/api/audit", get(api::audit))
        .route("/api/events", get(api::events))
        .route("/api/projects", get(projects::projects))
        .with_state(state)
}

/// Alive: the process answers and its store does.
async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    match state.store.pending_outbox().await {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "health check: store unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n").into_response()
        }
    }
}

/// Ready for traffic: the store answers (it was opened with its migrations applied, or the
/// server would not have started) and the workers run.
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if let Err(e) = state.store.pending_outbox().await {
        tracing::error!(error = %format!("{e:#}"), "readiness: store unavailable");
        return (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n").into_response();
    }
    if !state.workers_running.load(Ordering::Acquire) {
        return (StatusCode::SERVICE_UNAVAILABLE, "workers not running\n").into_response();
    }
    (StatusCode::OK, "ready\n").into_response()
}

pub fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
