//! The JSON API for operators and SIEMs: `GET /api/locks`, `GET /api/audit` and
//! `GET /api/events`. Protected by the
//! `api_token` setting (`Authorization: Bearer …`); with no token configured the API is disabled
//! (404), never open.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use crate::app::ports::store::{AuditQuery, EventState};
use crate::core::audit::parse_time_bound;

fn err(status: StatusCode, msg: &str) -> Response {
    (status, Json(serde_json::json!({ "error": msg }))).into_response()
}

/// `Ok(())` when the request carries the configured token (compared in constant time).
pub(super) fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let Some(token) = &state.api_token else {
        return Err(Box::new(err(
            StatusCode::NOT_FOUND,
            "the API is disabled: set api_token to enable it",
        )));
    };
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    use hmac::Mac;
    // Constant-time comparison through HMAC verification of the two values.
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(b"sluice-api-token").expect("any key length");
    mac.update(token.expose().as_bytes());
    let expected = mac.finalize().into_bytes();
    let mut check =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(b"sluice-api-token").expect("any key length");
    check.update(given.as_bytes());
    if check.verify_slice(&expected).is_err() {
        return Err(Box::new(err(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token",
        )));
    }
    Ok(())
}

pub async fn locks(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(r) = authorize(&state, &headers) {
        return *r;
    }
    match state.store.locks(None).await {
        Ok(locks) => Json(serde_json::json!({ "locks": locks })).into_response(),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "listing locks failed");
            err(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

/// `GET /api/write-budget`: the GitHub write budget of this process (writes queued, sent and
/// left in the rolling minute and hour, totals created/updated/coalesced/rate-limited/failed).
pub async fn write_budget(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(r) = authorize(&state, &headers) {
        return *r;
    }
    let budget = crate::app::worker::published_budget()
        .map(|m| crate::app::worker::budget_json(&m))
        .unwrap_or(serde_json::Value::Null);
    Json(serde_json::json!({ "write_budget": budget })).into_response()
}

#[derive(Debug, Deserialize)]
pub struct AuditParams {
    since: Option<String>,
    until: Option<String>,
    repo: Option<String>,
    commit: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<u64>,
    limit: Option<u64>,
}

/// Paginated audit entries, oldest first: `{"entries": [...], "next_cursor": 1234}`;
/// `next_cursor` is absent on the last page.
pub async fn audit(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(p): Query<AuditParams>,
) -> Response {
    if let Err(r) = authorize(&state, &headers) {
        return *r;
    }
    let limit = p.limit.unwrap_or(500).clamp(1, 5000);
    let bound = |b: Option<&str>| b.map(parse_time_bound).transpose();
    let (since, until) = match (bound(p.since.as_deref()), bound(p.until.as_deref())) {
        (Ok(since), Ok(until)) => (since, until),
        (Err(e), _) | (_, Err(e)) => return err(StatusCode::BAD_REQUEST, &e),
    };
    let q = AuditQuery {
        since,
        until,
        repo: p.repo,
        head_sha: p.commit,
        after_seq: p.cursor,
        limit: Some(limit + 1),
    };
    let mut entries = Vec::new();
    let res = state
        .store
        .scan_audit(&q, &mut |e| {
            entries.push(e);
            Ok(true)
        })
        .await;
    if let Err(e) = res {
        tracing::error!(error = %format!("{e:#}"), "reading the audit log failed");
        return err(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
    }
    let next = if entries.len() as u64 > limit {
        entries.truncate(limit as usize);
        entries.last().map(|e| e.seq)
    } else {
        None
    };
    let mut body = serde_json::json!({ "entries": entries });
    if let Some(n) = next {
        body["next_cursor"] = n.into();
    }
    Json(body).into_response()
}

#[derive(Debug, Deserialize)]
pub struct EventParams {
    /// `pending`, `done` or `dead`.
    state: Option<String>,
    limit: Option<u32>,
}

/// Webhook events, newest first: `{"events": [{"delivery_id", "kind", "state", "attempts",
/// "received_at", "claimed_at", "dead_at", "error", "target"}]}`. `?state=dead` lists the events
/// set aside after their attempts were used up.
pub async fn events(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(p): Query<EventParams>,
) -> Response {
    if let Err(r) = authorize(&state, &headers) {
        return *r;
    }
    let filter = match p.state.as_deref() {
        None => None,
        Some(s) => match EventState::parse(s) {
            Some(st) => Some(st),
            None => {
                return err(
                    StatusCode::BAD_REQUEST,
                    "state must be one of pending, done, dead",
                );
            }
        },
    };
    let limit = p.limit.unwrap_or(100).clamp(1, 1000);
    match state.store.list_events(filter, limit).await {
        Ok(rows) => {
            let events: Vec<serde_json::Value> =
                rows.iter().map(crate::app::events_cli::to_json).collect();
            Json(serde_json::json!({ "events": events })).into_response()
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "listing events failed");
            err(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}
