//! `POST /events`: GitHub webhook intake. In order: size (an oversized `Content-Length` is
//! refused before any of the body is read), signature header (a missing or malformed one is
//! refused before any of the body is read), body (read within a time limit, a per-request cap
//! and a server-wide budget of bytes held before signatures are known, feeding the HMAC as it
//! arrives), signature, headers, parse, allowlist, persist, 202.
//!
//! A redelivery of a known `X-GitHub-Delivery` is answered 200 and does nothing. So is a
//! delivery that is the same event under a fresh delivery id (a replay of a signed body, or a
//! second webhook for the same repository): events are deduplicated by what they are, too —
//! the body's SHA-256, and for comments and reviews their GitHub ids. Every refusal has a JSON
//! body saying why, and is audited (at a bounded rate).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::AppState;
use crate::adapters::clock;
use crate::adapters::github::webhook::{SignatureCheck, parse_event};
use crate::app::ports::store::{EventIntake, HeadSource, NewEvent, PrHeadSeen};
use crate::core::audit::{AuditAction, AuditActor, AuditRecord, AuditResult};
use crate::core::event::Event;
use crate::core::types::UnixMs;

/// The body budgets of the intake (see `config::HttpSettings`).
pub struct BodyLimits {
    /// Largest body of one request, in bytes.
    pub max_body_bytes: u64,
    /// How long reading one body may take.
    pub body_read_timeout: Duration,
    /// One permit per byte of body held by requests whose signature is not checked yet.
    pub inflight: Arc<Semaphore>,
}

impl BodyLimits {
    pub fn from_settings(s: &crate::config::HttpSettings) -> BodyLimits {
        BodyLimits {
            max_body_bytes: s.max_body_bytes,
            body_read_timeout: Duration::from_secs(s.body_read_timeout_secs),
            inflight: Arc::new(Semaphore::new(
                usize::try_from(s.max_inflight_body_bytes)
                    .unwrap_or(usize::MAX)
                    .min(Semaphore::MAX_PERMITS),
            )),
        }
    }
}

/// Why a body was not read to the end.
#[derive(Debug, Clone, PartialEq, Eq)]
enum BodyRefusal {
    TooLarge { limit: u64 },
    Busy,
    Timeout { after: Duration },
    Broken(String),
}

impl BodyRefusal {
    fn status(&self) -> StatusCode {
        match self {
            BodyRefusal::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            BodyRefusal::Busy => StatusCode::SERVICE_UNAVAILABLE,
            BodyRefusal::Timeout { .. } => StatusCode::REQUEST_TIMEOUT,
            BodyRefusal::Broken(_) => StatusCode::BAD_REQUEST,
        }
    }

    fn message(&self) -> String {
        match self {
            BodyRefusal::TooLarge { limit } => {
                format!("the body is larger than this server accepts ({limit} bytes)")
            }
            BodyRefusal::Busy => {
                "too many webhook bytes are being received at once; redeliver later".to_string()
            }
            BodyRefusal::Timeout { after } => {
                format!("the body did not arrive within {}s", after.as_secs())
            }
            BodyRefusal::Broken(e) => format!("the body could not be read: {e}"),
        }
    }
}

/// Reads the whole body within the budgets, feeding `check`. Returns the bytes and the budget
/// permits they hold (released when the request is done with them).
async fn read_body(
    limits: &BodyLimits,
    body: Body,
    declared: Option<u64>,
    mut check: Option<&mut SignatureCheck>,
) -> Result<(Bytes, Option<OwnedSemaphorePermit>), BodyRefusal> {
    let take = |n: u64| -> Result<OwnedSemaphorePermit, BodyRefusal> {
        let n = u32::try_from(n).map_err(|_| BodyRefusal::TooLarge {
            limit: limits.max_body_bytes,
        })?;
        limits
            .inflight
            .clone()
            .try_acquire_many_owned(n)
            .map_err(|_| BodyRefusal::Busy)
    };
    // A declared length is reserved whole before reading: refused now rather than half-read.
    let mut held = match declared {
        Some(n) => Some(take(n)?),
        None => None,
    };
    let read = async {
        let mut body = body;
        let mut buf = Vec::with_capacity(declared.unwrap_or(0) as usize);
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| BodyRefusal::Broken(e.to_string()))?;
            let Ok(chunk) = frame.into_data() else {
                continue; // trailers
            };
            let total = buf.len() as u64 + chunk.len() as u64;
            if total > limits.max_body_bytes {
                return Err(BodyRefusal::TooLarge {
                    limit: limits.max_body_bytes,
                });
            }
            if declared.is_none() {
                // Chunked: reserve as it grows.
                let more = take(chunk.len() as u64)?;
                match &mut held {
                    Some(h) => h.merge(more),
                    None => held = Some(more),
                }
            }
            if let Some(c) = check.as_deref_mut() {
                c.update(&chunk);
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(buf))
    };
    match tokio::time::timeout(limits.body_read_timeout, read).await {
        Ok(Ok(bytes)) => Ok((bytes, held)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(BodyRefusal::Timeout {
            after: limits.body_read_timeout,
        }),
    }
}

fn answer(status: StatusCode, key: &str, msg: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ key: msg.into() }))).into_response()
}

/// A refusal sent before the body was read (or while it was): the connection is closed after
/// it, so nothing of the rest is read.
fn answer_and_close(status: StatusCode, msg: impl Into<String>) -> Response {
    let mut r = answer(status, "error", msg);
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    r
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
    let mut record = AuditRecord::new(
        AuditAction::WebhookRejected,
        AuditActor::system("unknown"),
        AuditResult::Refused,
    )
    .detail("reason", why)
    .detail("http_status", status.as_u16().to_string());
    if let Some(k) = kind {
        record = record.detail("event", k.chars().take(64).collect::<String>());
    }
    if suppressed > 0 {
        record = record.detail(
            "rejections_not_recorded_before_this",
            suppressed.to_string(),
        );
    }
    record.event_id = delivery.map(|d| d.chars().take(100).collect());
    record.repo = repo;
    if let Err(e) = state.store.append_audit(vec![record], clock::now()).await {
        tracing::error!(error = %format!("{e:#}"), "could not audit a rejected webhook");
    }
}

/// `POST /events`, timed and counted (`sluice_webhook_requests_total`,
/// `sluice_webhook_duration_seconds`) by event and answer.
pub async fn receive(state: State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let started = std::time::Instant::now();
    let event = header(&headers, "x-github-event").unwrap_or("").to_string();
    let response = receive_counted(state, headers, body).await;
    let result = super::metrics::intake_result(response.status());
    super::metrics::inc(
        "sluice_webhook_requests_total",
        &[("event", &event), ("result", result)],
    );
    super::metrics::observe(
        "sluice_webhook_duration_seconds",
        &[("event", &event)],
        started.elapsed().as_secs_f64(),
    );
    response
}

async fn receive_counted(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let delivery = header(&headers, "x-github-delivery");
    let kind = header(&headers, "x-github-event");
    // 1.–2. Size and authenticity; the body's budget is held until the answer.
    let (body, _budget) = match authentic_body(&state, &headers, body, delivery, kind).await {
        Ok(read) => read,
        Err(refused) => return refused,
    };
    let (delivery, kind) = match named(&state, delivery, kind).await {
        Ok(named) => named,
        Err(refused) => return refused,
    };
    // 3. Meaning, and whether this repository is served here.
    let event = match understand(&state, delivery, kind, &body).await {
        Ok(event) => event,
        Err(refused) => return refused,
    };
    // 4. Persist, then acknowledge.
    persist(&state, delivery, kind, &event, &body).await
}

/// The body, read only when its size and signature header pass, and checked against its
/// signature as it arrives (with the permit of the bytes it holds); or the refusal, recorded.
async fn authentic_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    delivery: Option<&str>,
    kind: Option<&str>,
) -> Result<(Bytes, Option<OwnedSemaphorePermit>), Response> {
    // Size, before anything is read.
    let declared = match headers.get(header::CONTENT_LENGTH) {
        None => None,
        Some(v) => match v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()) {
            Some(n) => Some(n),
            None => {
                return Err(answer_and_close(
                    StatusCode::BAD_REQUEST,
                    "invalid Content-Length header",
                ));
            }
        },
    };
    if let Some(n) = declared
        && n > state.body_limits.max_body_bytes
    {
        let refusal = BodyRefusal::TooLarge {
            limit: state.body_limits.max_body_bytes,
        };
        tracing::warn!(delivery = ?delivery, declared = n, "webhook refused: body too large");
        audit_rejection(
            state,
            delivery,
            kind,
            None,
            &refusal.message(),
            refusal.status(),
        )
        .await;
        return Err(answer_and_close(refusal.status(), refusal.message()));
    }
    // Authenticity: a missing or malformed signature is refused before the body is read; a
    // well-formed one is checked as the body arrives.
    let mut check = match &state.webhook_secret {
        Some(secret) => match SignatureCheck::new(
            secret.expose().as_bytes(),
            header(headers, "x-hub-signature-256"),
        ) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(delivery = ?delivery, error = %e, "webhook refused: bad signature");
                let why = format!("signature: {e}");
                audit_rejection(state, delivery, kind, None, &why, StatusCode::UNAUTHORIZED).await;
                return Err(answer_and_close(
                    StatusCode::UNAUTHORIZED,
                    format!("signature verification failed: {e}"),
                ));
            }
        },
        None => None,
    };
    let read = match read_body(&state.body_limits, body, declared, check.as_mut()).await {
        Ok(read) => read,
        Err(refusal) => {
            tracing::warn!(delivery = ?delivery, why = %refusal.message(), "webhook refused while reading its body");
            audit_rejection(
                state,
                delivery,
                kind,
                None,
                &refusal.message(),
                refusal.status(),
            )
            .await;
            return Err(answer_and_close(refusal.status(), refusal.message()));
        }
    };
    if let Some(check) = check
        && let Err(e) = check.finish()
    {
        tracing::warn!(delivery = ?delivery, error = %e, "webhook refused: bad signature");
        let why = format!("signature: {e}");
        audit_rejection(state, delivery, kind, None, &why, StatusCode::UNAUTHORIZED).await;
        return Err(answer(
            StatusCode::UNAUTHORIZED,
            "error",
            format!("signature verification failed: {e}"),
        ));
    }
    Ok(read)
}

/// The delivery id and event name, both present and sane; or the refusal, recorded.
async fn named<'h>(
    state: &AppState,
    delivery: Option<&'h str>,
    kind: Option<&'h str>,
) -> Result<(&'h str, &'h str), Response> {
    let Some(kind) = kind else {
        let missing = "missing X-GitHub-Event";
        audit_rejection(
            state,
            delivery,
            None,
            None,
            missing,
            StatusCode::BAD_REQUEST,
        )
        .await;
        return Err(answer(
            StatusCode::BAD_REQUEST,
            "error",
            "missing X-GitHub-Event header",
        ));
    };
    let Some(delivery) = delivery.filter(|d| !d.is_empty() && d.len() <= 100) else {
        let why = "missing or invalid X-GitHub-Delivery";
        audit_rejection(state, None, Some(kind), None, why, StatusCode::BAD_REQUEST).await;
        return Err(answer(
            StatusCode::BAD_REQUEST,
            "error",
            "missing or invalid X-GitHub-Delivery header",
        ));
    };
    Ok((delivery, kind))
}

/// The event the body carries, for a repository this server serves; or the refusal, recorded.
async fn understand(
    state: &AppState,
    delivery: &str,
    kind: &str,
    body: &[u8],
) -> Result<Event, Response> {
    let event = match parse_event(kind, body) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(delivery, kind, error = %e, "webhook refused: cannot parse");
            let why = format!("unparseable: {e}");
            audit_rejection(
                state,
                Some(delivery),
                Some(kind),
                None,
                &why,
                StatusCode::BAD_REQUEST,
            )
            .await;
            return Err(answer(
                StatusCode::BAD_REQUEST,
                "error",
                format!("cannot parse the `{kind}` payload: {e}"),
            ));
        }
    };
    if let Some(repo) = event.repo()
        && !state.allowlist.allows(&repo.name.full())
    {
        tracing::warn!(delivery, repo = %repo.name, "webhook refused: repository not allowlisted");
        audit_rejection(
            state,
            Some(delivery),
            Some(kind),
            Some(repo.name.full()),
            "repository not in the allowlist",
            StatusCode::FORBIDDEN,
        )
        .await;
        return Err(answer(
            StatusCode::FORBIDDEN,
            "error",
            format!("repository {} is not served by this Sluice", repo.name),
        ));
    }
    Ok(event)
}

/// Stores the event unless it is known (by delivery id or by what it is), then answers: 202
/// for a new event, 200 for a known one, 503 when nothing could be stored.
async fn persist(
    state: &AppState,
    delivery: &str,
    kind: &str,
    event: &Event,
    body: &[u8],
) -> Response {
    let mut keys = event.identity_keys();
    if event.replays_are_duplicates() {
        keys.push(format!("body:{}", hex::encode(Sha256::digest(body))));
    }
    let new = NewEvent {
        delivery_id: delivery,
        kind,
        event,
        keys,
        head: head_sighting(event, clock::now()),
    };
    match state.store.insert_event_once(new, clock::now()).await {
        Ok(EventIntake::New) => {
            tracing::info!(delivery, kind, "webhook accepted");
            state.events_ready.notify_one();
            answer(StatusCode::ACCEPTED, "status", "queued")
        }
        Ok(EventIntake::Redelivery) => {
            tracing::info!(delivery, kind, "webhook redelivered: already known");
            answer(
                StatusCode::OK,
                "status",
                "duplicate delivery; already processed or queued",
            )
        }
        Ok(EventIntake::SameEvent {
            first_delivery,
            key,
        }) => {
            // Not an error for the sender (a second webhook for the same repository does
            // this), but a replayed signed body does too: recorded.
            tracing::warn!(
                delivery,
                kind,
                first_delivery,
                key,
                "webhook is an event already received under another delivery id; ignored"
            );
            let why = format!(
                "same event as delivery {first_delivery} ({})",
                key.split(':').next().unwrap_or("body")
            );
            let repo = event.repo().map(|r| r.name.full());
            audit_rejection(
                state,
                Some(delivery),
                Some(kind),
                repo,
                &why,
                StatusCode::OK,
            )
            .await;
            answer(
                StatusCode::OK,
                "status",
                "duplicate event: already received under another delivery id",
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

/// The head a `pull_request` delivery reports, as a sighting at GitHub's `updated_at` (or now,
/// for a payload without one).
fn head_sighting(event: &Event, now: UnixMs) -> Option<PrHeadSeen> {
    match event {
        Event::PullRequest { repo, pr, .. } => Some(PrHeadSeen {
            repo: repo.name.clone(),
            pr: pr.number,
            sha: pr.head_sha.clone(),
            at: pr.updated_at_ms.unwrap_or(now),
            source: HeadSource::PullRequest,
        }),
        _ => None,
    }
}
