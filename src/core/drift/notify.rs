//! Outbound notifications for drift state changes: a Slack-compatible incoming-webhook message
//! and a generic JSON event, with the HMAC-SHA256 signature of the latter.
//!
//! **The JSON event** (schema `sluice.drift.v1`; fields are only ever added, never renamed):
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `schema` | string | always `sluice.drift.v1` |
//! | `id` | string | 64 hex digits, the same for every delivery of one event (deduplicate on it) |
//! | `type` | string | the transition: `drift_opened`, `drift_reopened`, `drift_acknowledged`, `drift_accepted`, `drift_acceptance_expired`, `drift_resolved`, `drift_check_failed`, `drift_check_recovered` (also `drift_changed` if a caller sends it) |
//! | `occurred_at` | string | RFC 3339 UTC |
//! | `repo` | string | `owner/name` |
//! | `project`, `dir`, `workspace` | string | the project |
//! | `phase` | string or null | the drift object's phase after the event: `open`, `acknowledged`, `accepted`, `resolved` |
//! | `previous_phase` | string or null | before it |
//! | `fingerprint` | string or null | 64 hex digits |
//! | `counts` | object | `changed_outside`, `unapplied`, `engine_or_provider_upgrade` of the latest check that found the drift (zeros when none) |
//! | `actor` | string or null | login of who caused it (ack, accept, apply) |
//! | `accepted_until` | string or null | `YYYY-MM-DD`, for `drift_accepted` and `drift_acceptance_expired` |
//! | `reason` | string or null | for `drift_accepted` |
//! | `error` | string or null | for `drift_check_failed`: the error, redacted, at most 2,000 characters |
//! | `issue_url` | string or null | the drift (or check-failed) issue |
//!
//! **Signature**: the body is signed like GitHub's `X-Hub-Signature-256`: header
//! `X-Sluice-Signature-256: sha256=<lowercase hex of HMAC-SHA256(secret, raw body bytes)>`.
//! Receivers recompute it over the exact bytes received and compare in constant time.
//!
//! Pure: this builds bodies; the outbox delivers them.

use std::fmt::Write as _;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::classify::ClassCounts;
use super::lifecycle::{DriftPhase, DriftRecord, Transition, TransitionKind};
use crate::core::types::{ProjectDir, ProjectName, RepoName, Workspace};

/// The header that carries [`sign`]'s value.
pub const SIGNATURE_HEADER: &str = "X-Sluice-Signature-256";
/// The `schema` of every JSON event.
pub const EVENT_SCHEMA: &str = "sluice.drift.v1";
const MAX_ERROR_CHARS: usize = 2_000;

/// Which project, and where people can look.
#[derive(Debug, Clone)]
pub struct NotifyContext {
    pub repo: RepoName,
    pub project: ProjectName,
    pub dir: ProjectDir,
    pub workspace: Workspace,
    /// The drift issue for drift transitions, the check-failed issue for failure ones.
    pub issue_url: Option<String>,
}

/// The generic JSON event (see the module docs for the schema).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftNotification {
    pub schema: String,
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub occurred_at: String,
    pub repo: String,
    pub project: String,
    pub dir: String,
    pub workspace: String,
    pub phase: Option<DriftPhase>,
    pub previous_phase: Option<DriftPhase>,
    pub fingerprint: Option<String>,
    pub counts: ClassCounts,
    pub actor: Option<String>,
    pub accepted_until: Option<String>,
    pub reason: Option<String>,
    pub error: Option<String>,
    pub issue_url: Option<String>,
}

/// The JSON event for `t` (one of `Step::notifications`), with the record after the step.
pub fn json_event(ctx: &NotifyContext, t: &Transition, record: &DriftRecord) -> DriftNotification {
    let occurred_at = t.at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    let (accepted_until, reason, error) = match &t.kind {
        TransitionKind::Accepted { until, reason } => {
            (Some(until.to_string()), reason.clone(), None)
        }
        TransitionKind::AcceptanceExpired { until } => (Some(until.to_string()), None, None),
        TransitionKind::CheckFailed { error } => (
            None,
            None,
            Some(error.chars().take(MAX_ERROR_CHARS).collect()),
        ),
        _ => (None, None, None),
    };
    // Stable across retries of the same event, distinct across events.
    let mut h = Sha256::new();
    for part in [
        ctx.repo.full().to_ascii_lowercase().as_str(),
        ctx.project.as_str(),
        t.audit_action(),
        occurred_at.as_str(),
        t.fingerprint.as_ref().map_or("", |f| f.as_str()),
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    DriftNotification {
        schema: EVENT_SCHEMA.to_string(),
        id: hex::encode(h.finalize()),
        kind: t.audit_action().to_string(),
        occurred_at,
        repo: ctx.repo.full(),
        project: ctx.project.as_str().to_string(),
        dir: ctx.dir.as_str().to_string(),
        workspace: ctx.workspace.as_str().to_string(),
        phase: t.to,
        previous_phase: t.from,
        fingerprint: t.fingerprint.as_ref().map(|f| f.as_str().to_string()),
        counts: record.drift.as_ref().map(|d| d.counts).unwrap_or_default(),
        actor: t.actor.as_ref().map(|a| a.login.clone()),
        accepted_until,
        reason,
        error,
        issue_url: ctx.issue_url.clone(),
    }
}

/// The exact bytes to send for a JSON event (compact JSON).
pub fn json_event_body(event: &DriftNotification) -> Vec<u8> {
    serde_json::to_vec(event).expect("notifications always serialize")
}

/// `sha256=<hex>` for the [`SIGNATURE_HEADER`] of `body`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether `header` is the signature of `body` under `secret` (constant-time comparison), for
/// receivers and tests.
pub fn verify(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// A Slack incoming-webhook message (`text` for notifications and clients without blocks,
/// `blocks` for the rest). Text from users is escaped as Slack's mrkdwn requires.
pub fn slack_message(ctx: &NotifyContext, t: &Transition, record: &DriftRecord) -> Value {
    let project = format!(
        "`{}` in {}",
        esc(ctx.project.as_str()),
        esc(&ctx.repo.full())
    );
    let by = t
        .actor
        .as_ref()
        .map(|a| format!(" by {}", esc(&a.login)))
        .unwrap_or_default();
    let headline = match &t.kind {
        TransitionKind::Opened { .. } => format!(":warning: Drift detected: {project}"),
        TransitionKind::Changed { .. } => format!(":warning: Drift changed: {project}"),
        TransitionKind::Reopened(_) => format!(":warning: Drift re-opened: {project}"),
        TransitionKind::Acknowledged => format!(":eyes: Drift acknowledged{by}: {project}"),
        TransitionKind::Accepted { until, .. } => {
            format!(":memo: Drift accepted{by} until {until}: {project}")
        }
        TransitionKind::AcceptanceExpired { until } => {
            format!(":alarm_clock: Drift acceptance ran out ({until}): {project}")
        }
        TransitionKind::Resolved(_) => format!(":white_check_mark: Drift resolved{by}: {project}"),
        TransitionKind::CheckFailed { .. } => format!(":x: Drift check failing: {project}"),
        TransitionKind::CheckRecovered { .. } => {
            format!(":white_check_mark: Drift checks work again: {project}")
        }
    };
    let mut detail = String::new();
    let about_checks = matches!(
        t.kind,
        TransitionKind::CheckFailed { .. } | TransitionKind::CheckRecovered { .. }
    );
    if let Some(d) = record
        .drift
        .as_ref()
        .filter(|d| d.state.phase().is_live() && !about_checks)
    {
        let c = d.counts;
        let mut parts = Vec::new();
        if c.changed_outside > 0 {
            parts.push(format!("{} changed outside Git", c.changed_outside));
        }
        if c.unapplied > 0 {
            parts.push(format!("{} unapplied", c.unapplied));
        }
        if c.engine_or_provider_upgrade > 0 {
            parts.push(format!("{} from an upgrade", c.engine_or_provider_upgrade));
        }
        if !parts.is_empty() {
            let _ = write!(detail, "{}", parts.join(", "));
        }
    }
    match &t.kind {
        TransitionKind::Accepted {
            reason: Some(r), ..
        } => {
            if !detail.is_empty() {
                detail.push_str(". ");
            }
            let _ = write!(detail, "Reason: {}", esc(r));
        }
        TransitionKind::CheckFailed { error } => {
            let first = error.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            let first: String = first.chars().take(300).collect();
            let _ = write!(detail, "{}", esc(&first));
        }
        _ => {}
    }
    let mut text = headline.clone();
    if !detail.is_empty() {
        text.push_str(" — ");
        text.push_str(&detail);
    }
    let mut section = headline;
    if !detail.is_empty() {
        section.push('\n');
        section.push_str(&detail);
    }
    if let Some(url) = &ctx.issue_url {
        let _ = write!(section, "\n<{}|Open the issue>", slack_url(url));
    }
    let context = format!(
        "dir `{}` · workspace `{}` · {}",
        esc(ctx.dir.as_str()),
        esc(ctx.workspace.as_str()),
        t.at.format("%Y-%m-%d %H:%M UTC")
    );
    json!({
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": section}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
        ]
    })
}

/// Slack mrkdwn needs `&`, `<` and `>` escaped; nothing else is special enough to break out.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A URL inside `<url|text>`: `|` and `>` would end it.
fn slack_url(u: &str) -> String {
    u.replace('|', "%7C")
        .replace('>', "%3E")
        .replace('<', "%3C")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::drift::fingerprint::{Fingerprint, ValuesDigest};
    use crate::core::drift::lifecycle::{DriftEvent, apply};
    use crate::core::event::{Actor, ActorKind};
    use chrono::{DateTime, NaiveDate, Utc};

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn ctx() -> NotifyContext {
        NotifyContext {
            repo: RepoName::parse("acme/infra").unwrap(),
            project: ProjectName::new("prod-db").unwrap(),
            dir: ProjectDir::new("envs/prod").unwrap(),
            workspace: Workspace::default_workspace(),
            issue_url: Some("https://github.com/acme/infra/issues/7".into()),
        }
    }

    fn steps() -> Vec<(Transition, DriftRecord)> {
        let events = [
            DriftEvent::CheckDrifted {
                at: at("2027-01-01T06:00:00Z"),
                fingerprint: Fingerprint::parse(&"ab".repeat(32)).unwrap(),
                values: ValuesDigest::parse(&"cd".repeat(32)).unwrap(),
                counts: ClassCounts {
                    changed_outside: 2,
                    unapplied: 1,
                    engine_or_provider_upgrade: 0,
                },
            },
            DriftEvent::Accept {
                at: at("2027-01-01T07:00:00Z"),
                actor: Actor {
                    login: "ana".into(),
                    id: 1,
                    kind: ActorKind::Human,
                },
                until: NaiveDate::from_ymd_opt(2027, 1, 31).unwrap(),
                reason: Some("vendor <fix> & retest".into()),
            },
            DriftEvent::CheckFailed {
                at: at("2027-01-01T12:00:00Z"),
                error: "\nError: Failed to load state: <html> 502\nmore".into(),
            },
            DriftEvent::CheckClean {
                at: at("2027-01-01T18:00:00Z"),
            },
        ];
        let mut rec = DriftRecord::default();
        let mut out = Vec::new();
        for e in events {
            let step = apply(&rec, &e).unwrap();
            for t in step.notifications() {
                out.push((t.clone(), step.record.clone()));
            }
            rec = step.record;
        }
        out
    }

    #[test]
    fn slack_messages() {
        let all: Vec<String> = steps()
            .iter()
            .map(|(t, r)| serde_json::to_string(&slack_message(&ctx(), t, r)).unwrap())
            .collect();
        insta::assert_snapshot!(all.join("\n"), @r#"
        {"blocks":[{"text":{"text":":warning: Drift detected: `prod-db` in acme/infra\n2 changed outside Git, 1 unapplied\n<https://github.com/acme/infra/issues/7|Open the issue>","type":"mrkdwn"},"type":"section"},{"elements":[{"text":"dir `envs/prod` · workspace `default` · 2027-01-01 06:00 UTC","type":"mrkdwn"}],"type":"context"}],"text":":warning: Drift detected: `prod-db` in acme/infra — 2 changed outside Git, 1 unapplied"}
        {"blocks":[{"text":{"text":":memo: Drift accepted by ana until 2027-01-31: `prod-db` in acme/infra\n2 changed outside Git, 1 unapplied. Reason: vendor &lt;fix&gt; &amp; retest\n<https://github.com/acme/infra/issues/7|Open the issue>","type":"mrkdwn"},"type":"section"},{"elements":[{"text":"dir `envs/prod` · workspace `default` · 2027-01-01 07:00 UTC","type":"mrkdwn"}],"type":"context"}],"text":":memo: Drift accepted by ana until 2027-01-31: `prod-db` in acme/infra — 2 changed outside Git, 1 unapplied. Reason: vendor &lt;fix&gt; &amp; retest"}
        {"blocks":[{"text":{"text":":x: Drift check failing: `prod-db` in acme/infra\nError: Failed to load state: &lt;html&gt; 502\n<https://github.com/acme/infra/issues/7|Open the issue>","type":"mrkdwn"},"type":"section"},{"elements":[{"text":"dir `envs/prod` · workspace `default` · 2027-01-01 12:00 UTC","type":"mrkdwn"}],"type":"context"}],"text":":x: Drift check failing: `prod-db` in acme/infra — Error: Failed to load state: &lt;html&gt; 502"}
        {"blocks":[{"text":{"text":":white_check_mark: Drift checks work again: `prod-db` in acme/infra\n<https://github.com/acme/infra/issues/7|Open the issue>","type":"mrkdwn"},"type":"section"},{"elements":[{"text":"dir `envs/prod` · workspace `default` · 2027-01-01 18:00 UTC","type":"mrkdwn"}],"type":"context"}],"text":":white_check_mark: Drift checks work again: `prod-db` in acme/infra"}
        {"blocks":[{"text":{"text":":white_check_mark: Drift resolved: `prod-db` in acme/infra\n<https://github.com/acme/infra/issues/7|Open the issue>","type":"mrkdwn"},"type":"section"},{"elements":[{"text":"dir `envs/prod` · workspace `default` · 2027-01-01 18:00 UTC","type":"mrkdwn"}],"type":"context"}],"text":":white_check_mark: Drift resolved: `prod-db` in acme/infra"}
        "#);
    }

    #[test]
    fn json_events() {
        let s = steps();
        let events: Vec<DriftNotification> =
            s.iter().map(|(t, r)| json_event(&ctx(), t, r)).collect();
        insta::assert_snapshot!(serde_json::to_string_pretty(&events[1]).unwrap(), @r#"
        {
          "schema": "sluice.drift.v1",
          "id": "3e9c7f126cf01798bb9e1ebf9d87bff1e127e99644663e8f3c88803e6e2ae8b5",
          "type": "drift_accepted",
          "occurred_at": "2027-01-01T07:00:00.000Z",
          "repo": "acme/infra",
          "project": "prod-db",
          "dir": "envs/prod",
          "workspace": "default",
          "phase": "accepted",
          "previous_phase": "open",
          "fingerprint": "abababababababababababababababababababababababababababababababab",
          "counts": {
            "changed_outside": 2,
            "engine_or_provider_upgrade": 0,
            "unapplied": 1
          },
          "actor": "ana",
          "accepted_until": "2027-01-31",
          "reason": "vendor <fix> & retest",
          "error": null,
          "issue_url": "https://github.com/acme/infra/issues/7"
        }
        "#);
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "drift_opened",
                "drift_accepted",
                "drift_check_failed",
                "drift_check_recovered",
                "drift_resolved"
            ]
        );
        // Ids: stable for one event, distinct across events.
        assert_eq!(json_event(&ctx(), &s[0].0, &s[0].1).id, events[0].id);
        let mut ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), events.len());
        let body = json_event_body(&events[0]);
        let back: DriftNotification = serde_json::from_slice(&body).unwrap();
        assert_eq!(back, events[0]);
    }

    /// The construction is GitHub's: the example from GitHub's webhook documentation
    /// (secret "It's a Secret to Everybody", payload "Hello, World!").
    #[test]
    fn signatures() {
        let secret = b"It's a Secret to Everybody";
        let body = b"Hello, World!";
        let sig = sign(secret, body);
        assert_eq!(
            sig,
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
        assert!(verify(secret, body, &sig));
        assert!(!verify(secret, b"Hello, World?", &sig));
        assert!(!verify(b"other", body, &sig));
        assert!(!verify(secret, body, "sha1=00"));
        assert!(!verify(secret, body, "sha256=zz"));
    }
}
