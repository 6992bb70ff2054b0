//! HTTP: the axum router and the listener under it. `router(state)` is a plain function so
//! tests drive it without a socket; `listener::serve` puts it on a socket with connection
//! budgets. Handlers do no git or terraform work: the webhook handler verifies, parses, checks
//! the allowlist, persists and answers 202 in milliseconds; everything else happens in workers.
//!
//! Only `POST /events` (signed) and `GET /healthz` work without the API token. `GET /` shows a
//! minimal page to anyone and the set-up details (paths, what is configured) only to a request
//! carrying the token: an unauthenticated page must not describe the host.

pub mod api;
pub mod listener;
pub mod projects;
pub mod webhook;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
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
    Router::new()
        .route("/", get(index))
        .route("/healthz", get(healthz))
        // The handler reads the body itself, within `body_limits` (no extractor buffers it).
        .route("/events", post(webhook::receive))
        .route("/api/locks", get(api::locks))
        .route("/api/write-budget", get(api::write_budget))
        .route("/api/audit", get(api::audit))
        .route("/api/events", get(api::events))
        .route("/api/projects", get(projects::projects))
        .with_state(state)
}

async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    match state.store.pending_outbox().await {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "health check: store unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n").into_response()
        }
    }
}

/// The status page: to anyone, what Sluice is; with the API token, how it is set up.
async fn index(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Html<String> {
    let setup = if api::authorize(&state, &headers).is_ok() {
        let mut items = String::new();
        for note in &state.setup_notes {
            items.push_str(&format!("<li>{}</li>\n", html_escape(note)));
        }
        format!("<h2>Setup</h2><ul>\n{items}</ul>")
    } else {
        "<p>Set-up details are shown to requests carrying the API token \
         (<code>Authorization: Bearer …</code>).</p>"
            .to_string()
    };
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sluice</title></head><body>\
         <h1>Sluice</h1><p>Pull-request bot for Terraform and OpenTofu. Webhooks go to <code>POST /events</code>.</p>\
         {setup}</body></html>\n"
    ))
}

pub fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
