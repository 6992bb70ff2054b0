//! `POST /events`: GitHub webhook intake. In order: signature (before looking at the body),
//! headers, parse, allowlist, persist, 202. A redelivery of a known `X-GitHub-Delivery` is
//! answered 200 and does nothing. Every refusal has a JSON body saying why, and is audited.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::adapters::github::webhook::{parse_event, verify_signature};
use crate::app::bot::now_ms;
use crate::app::store::Inserted;
use crate::core::audit::{AuditAction, AuditActor, AuditRecord, AuditResult};

fn answer(status: StatusCode, key: &str, msg: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ key: msg.into() }))).into_response()
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Records a refused delivery in the audit log, at a bounded rate.
async fn audit_rejection(
    state: &AppState,
    delivery: Option<&str>,
    kind: Option<&str>,
    repo: Option<String>,
    why: &str,
    status: StatusCode,
) {
    if state.rejection_limiter.check().is_err() {
        state.rejections_suppressed.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let suppressed = state.rejections_suppressed.swap(0, Ordering::Relaxed);
    let mut details: std::collections::BTreeMap<String, String> = [
        ("reason".to_string(), why.to_string()),
        ("http_status".to_string(), status.as_u16().to_string()),
    ]
    .into();
    if let Some(k) = kind {
        details.insert("event".into(), k.chars().take(64).collect());
    }
    if suppressed > 0 {
        details.insert(
            "rejections_not_recorded_before_this".into(),
            suppressed.to_string(),
        );
    }
    let record = AuditRecord {
        event_id: delivery.map(|d| d.chars().take(100).collect()),
        actor: AuditActor {
            login: "unknown".into(),
            id: None,
            kind: "system".into(),
        },
        action: Some(AuditAction::WebhookRejected),
        repo,
        result: Some(AuditResult::Refused),
        details,
        ..AuditRecord::default()
    };
    if let Err(e) = state.store.append_audit(vec![record], now_ms()).await {
        tracing::error!(error = %format!("{e:#}"), "could not audit a rejected webhook");
    }
}

pub async fn receive(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let delivery = header(&headers, "x-github-delivery");
    let kind = header(&headers, "x-github-event");

    // 1. Authenticity, before anything else reads the body.
    if let Some(secret) = &state.webhook_secret
        && let Err(e) = verify_signature(
            secret.expose().as_bytes(),
            &body,
            header(&headers, "x-hub-signature-256"),
        )
    {
        tracing::warn!(delivery = ?delivery, error = %e, "webhook refused: bad signature");
        audit_rejection(
            &state,
            delivery,
            kind,
            None,
            &format!("signature: {e}"),
            StatusCode::UNAUTHORIZED,
        )
        .await;
        return answer(
            StatusCode::UNAUTHORIZED,
            "error",
            format!("signature verification failed: {e}"),
        );
    }
    let Some(kind) = kind else {
        audit_rejection(
            &state,
            delivery,
            None,
            None,
            "missing X-GitHub-Event",
            StatusCode::BAD_REQUEST,
        )
        .await;
        return answer(
            StatusCode::BAD_REQUEST,
            "error",
            "missing X-GitHub-Event header",
        );
    };
    let Some(delivery) = delivery.filter(|d| !d.is_empty() && d.len() <= 100) else {
        audit_rejection(
            &state,
            None,
            Some(kind),
            None,
            "missing or invalid X-GitHub-Delivery",
            StatusCode::BAD_REQUEST,
        )
        .await;
        return answer(
            StatusCode::BAD_REQUEST,
            "error",
            "missing or invalid X-GitHub-Delivery header",
        );
    };

    // 2. Meaning.
    let event = match parse_event(kind, &body) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(delivery, kind, error = %e, "webhook refused: cannot parse");
            audit_rejection(
                &state,
                Some(delivery),
                Some(kind),
                None,
                &format!("unparseable: {e}"),
                StatusCode::BAD_REQUEST,
            )
            .await;
            return answer(
                StatusCode::BAD_REQUEST,
                "error",
                format!("cannot parse the `{kind}` payload: {e}"),
            );
        }
    };

    // 3. Is this repository served here?
    if let Some(repo) = event.repo()
        && !state.allowlist.allows(&repo.name.full())
    {
        tracing::warn!(delivery, repo = %repo.name, "webhook refused: repository not allowlisted");
        audit_rejection(
            &state,
            Some(delivery),
            Some(kind),
            Some(repo.name.full()),
            "repository not in the allowlist",
            StatusCode::FORBIDDEN,
        )
        .await;
        return answer(
            StatusCode::FORBIDDEN,
            "error",
            format!("repository {} is not served by this Sluice", repo.name),
        );
    }

    // 4. Persist, then acknowledge.
    let json = match serde_json::to_string(&event) {
        Ok(j) => j,
        Err(e) => {
            return answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                "error",
                format!("cannot store the event: {e}"),
            );
        }
    };
    match state
        .store
        .insert_event(delivery, kind, &json, now_ms())
        .await
    {
        Ok(Inserted::New) => {
            tracing::info!(delivery, kind, "webhook accepted");
            state.events_ready.notify_one();
            answer(StatusCode::ACCEPTED, "status", "queued")
        }
        Ok(Inserted::Duplicate) => {
            tracing::info!(delivery, kind, "webhook redelivered: already known");
            answer(
                StatusCode::OK,
                "status",
                "duplicate delivery; already processed or queued",
            )
        }
        Err(e) => {
            // The one case where GitHub should try again: nothing was stored.
            tracing::error!(delivery, error = %format!("{e:#}"), "could not persist a webhook");
            answer(
                StatusCode::SERVICE_UNAVAILABLE,
                "error",
                "the event could not be stored; redeliver it",
            )
        }
    }
}
