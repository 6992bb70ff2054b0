//! Webhook intake at the edge: checks GitHub's `X-Hub-Signature-256` and turns a verified body
//! into a [`core::event::Event`](crate::core::event::Event).
//!
//! It owns the HMAC check and the mapping from GitHub's payload shapes (octocrab's webhook
//! models, plus the raw JSON where those models are silent) to Sluice's events. It must not
//! decide anything about the events (allowlists, forks, drafts, commands are the app's and the
//! core's business), must not do I/O, and must never panic on what the network sends: every bad
//! input becomes a [`SignatureError`] or a [`ParseError`] whose message is safe to send back.

use hmac::{Hmac, Mac};
use octocrab::models::webhook_events::payload::{
    IssueCommentWebhookEventAction, IssueCommentWebhookEventPayload,
    PullRequestReviewWebhookEventAction, PullRequestReviewWebhookEventPayload,
    PullRequestWebhookEventAction, PullRequestWebhookEventPayload, PushWebhookEventPayload,
};
use octocrab::models::webhook_events::{WebhookEvent, WebhookEventPayload};
use octocrab::models::{Author, Repository};
use serde::Deserialize;
use sha2::Sha256;

use crate::core::event::{
    Actor, ActorKind, Event, MergeGroupAction, MergeGroupInfo, PullRequestAction, PullRequestInfo,
    RepoRef, Review, ReviewAction, ReviewState, queue_ref_pr,
};
use crate::core::types::{CommitSha, PrNumber, RepoName, UnixMs};

/// Why a webhook signature was refused. Messages name the problem without echoing secrets or
/// the expected digest, so they can go back to the sender as-is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing X-Hub-Signature-256 header")]
    Missing,
    #[error("X-Hub-Signature-256 must start with `sha256=` (SHA-1 signatures are not accepted)")]
    WrongPrefix,
    #[error("X-Hub-Signature-256 is not a 64-digit hex digest")]
    BadHex,
    #[error("X-Hub-Signature-256 does not match the body")]
    Mismatch,
}

/// Checks `X-Hub-Signature-256: sha256=<hex>` against HMAC-SHA256(`secret`, `body`).
///
/// The comparison is constant-time (`Mac::verify_slice`), so response timing does not reveal
/// how much of a forged digest was right.
pub fn verify_signature(
    secret: &[u8],
    body: &[u8],
    header: Option<&str>,
) -> Result<(), SignatureError> {
    let mut check = SignatureCheck::new(secret, header)?;
    check.update(body);
    check.finish()
}

/// A signature check fed the body as it arrives, so the intake can refuse a request whose
/// header is missing or malformed before reading any of its body, and needs no second pass
/// over the bytes it buffered.
pub struct SignatureCheck {
    mac: Hmac<Sha256>,
    expected: [u8; 32],
    /// An empty key is a key everybody knows: such a check never passes.
    empty_key: bool,
}

impl SignatureCheck {
    /// Parses the header (`sha256=` and 64 hex digits) and starts the HMAC. Errors here are
    /// about the header alone: the body is not needed to tell.
    pub fn new(secret: &[u8], header: Option<&str>) -> Result<SignatureCheck, SignatureError> {
        let header = header.map(str::trim).filter(|h| !h.is_empty());
        let header = header.ok_or(SignatureError::Missing)?;
        let digest_hex = header
            .strip_prefix("sha256=")
            .ok_or(SignatureError::WrongPrefix)?;
        let mut expected = [0u8; 32];
        hex::decode_to_slice(digest_hex, &mut expected).map_err(|_| SignatureError::BadHex)?;
        Ok(SignatureCheck {
            mac: Hmac::<Sha256>::new_from_slice(secret)
                .expect("HMAC-SHA256 accepts keys of any length"),
            expected,
            // Settings refuse short secrets; this guards callers that bypass them.
            empty_key: secret.is_empty(),
        })
    }

    /// Feeds the next bytes of the body.
    pub fn update(&mut self, chunk: &[u8]) {
        self.mac.update(chunk);
    }

    /// Compares in constant time, once the whole body was fed.
    pub fn finish(self) -> Result<(), SignatureError> {
        if self.empty_key {
            return Err(SignatureError::Mismatch);
        }
        self.mac
            .verify_slice(&self.expected)
            .map_err(|_| SignatureError::Mismatch)
    }
}

/// Why a (verified) webhook body could not be turned into an [`Event`]. Each message names the
/// event type and the problem; none of them contains more of the payload than a field name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("missing X-GitHub-Event header")]
    MissingEventType,
    #[error("`{event}` webhook: the body is not a JSON object: {message}")]
    Json { event: String, message: String },
    #[error("`{event}` webhook: the payload does not have the expected shape: {message}")]
    Shape { event: String, message: String },
    #[error("`{event}` webhook: {message}")]
    Invalid { event: String, message: String },
}

/// The few top-level fields read from every payload, whatever its type. Read from the raw JSON
/// because they decide whether the typed (stricter) parse is needed at all, and because
/// octocrab's `installation` model wants fields that only some deliveries carry.
#[derive(Deserialize)]
struct Envelope {
    action: Option<String>,
    installation: Option<InstallationRef>,
}

#[derive(Deserialize)]
struct InstallationRef {
    id: u64,
}

/// Parses a verified webhook body. `event_header` is the `X-GitHub-Event` value.
///
/// Only the events Sluice acts on go through octocrab's typed models; everything else (and the
/// actions of those events that Sluice ignores) becomes [`Event::Ignored`] after a plain JSON
/// check, so a model that lags behind GitHub can never turn an event we would ignore anyway
/// into an error.
pub fn parse_event(event_header: &str, body: &[u8]) -> Result<Event, ParseError> {
    let kind = event_header.trim();
    if kind.is_empty() {
        return Err(ParseError::MissingEventType);
    }
    let envelope: Envelope = serde_json::from_slice(body).map_err(|e| ParseError::Json {
        event: kind.to_string(),
        message: e.to_string(),
    })?;
    let action = envelope.action.clone();
    let installation_id = envelope.installation.as_ref().map(|i| i.id);
    let ignored = || Event::Ignored {
        kind: kind.to_string(),
        action: action.clone(),
    };

    if kind == "check_run" {
        if action.as_deref() != Some("requested_action") {
            return Ok(ignored());
        }
        return Cx { event: kind }.check_run_action(body, installation_id);
    }
    if kind == "merge_group" {
        let action = match action.as_deref() {
            Some("checks_requested") => MergeGroupAction::ChecksRequested,
            Some("destroyed") => MergeGroupAction::Destroyed,
            _ => return Ok(ignored()),
        };
        return Cx { event: kind }.merge_group(action, body, installation_id);
    }
    let wanted = match kind {
        "ping" => return Ok(Event::Ping),
        "push" => true,
        "pull_request" => matches!(
            action.as_deref(),
            Some("opened" | "reopened" | "synchronize" | "ready_for_review" | "closed")
        ),
        "issue_comment" => action.as_deref() == Some("created"),
        "pull_request_review" => {
            matches!(
                action.as_deref(),
                Some("submitted" | "dismissed" | "edited")
            )
        }
        _ => false,
    };
    if !wanted {
        return Ok(ignored());
    }

    let parsed =
        WebhookEvent::try_from_header_and_body(kind, body).map_err(|e| ParseError::Shape {
            event: kind.to_string(),
            message: e.to_string(),
        })?;
    let cx = Cx { event: kind };
    let (repository, sender) = (parsed.repository.as_ref(), parsed.sender.as_ref());
    let event = match parsed.specific {
        WebhookEventPayload::PullRequest(p) => {
            cx.pull_request(&p, repository, sender, installation_id)?
        }
        WebhookEventPayload::IssueComment(c) => cx.comment(&c, repository, installation_id)?,
        WebhookEventPayload::PullRequestReview(r) => cx.review(&r, repository, installation_id)?,
        WebhookEventPayload::Push(p) => Some(cx.push(&p, repository, installation_id)?),
        // The header named an event we asked for, so octocrab parsed it as that event: any
        // other variant means the two disagree, which is worth an error rather than a guess.
        _ => return Err(cx.invalid("the payload does not match the event type")),
    };
    Ok(event.unwrap_or_else(ignored))
}

/// The conversions of the events Sluice acts on; `None` for actions it ignores.
impl Cx<'_> {
    fn pull_request(
        &self,
        p: &PullRequestWebhookEventPayload,
        repository: Option<&Repository>,
        sender: Option<&Author>,
        installation_id: Option<u64>,
    ) -> Result<Option<Event>, ParseError> {
        let action = match p.action {
            PullRequestWebhookEventAction::Opened => PullRequestAction::Opened,
            PullRequestWebhookEventAction::Reopened => PullRequestAction::Reopened,
            PullRequestWebhookEventAction::Synchronize => PullRequestAction::Synchronize,
            PullRequestWebhookEventAction::ReadyForReview => PullRequestAction::ReadyForReview,
            PullRequestWebhookEventAction::Closed => PullRequestAction::Closed {
                // `merged_at` is the older, always-present signal; `merged` the explicit one.
                merged: p.pull_request.merged.unwrap_or(false)
                    || p.pull_request.merged_at.is_some(),
            },
            _ => return Ok(None),
        };
        let repo = self.repo(repository, installation_id)?;
        let pr = &p.pull_request;
        let author = pr
            .user
            .as_deref()
            .ok_or_else(|| self.invalid("the pull request has no `user`"))?;
        let head_full = pr.head.repo.as_ref().and_then(|r| r.full_name.as_deref());
        let base_full = pr
            .base
            .repo
            .as_ref()
            .and_then(|r| r.full_name.as_deref())
            .unwrap_or(&repo.name.full())
            .to_string();
        let info = PullRequestInfo {
            number: self.pr_number(pr.number)?,
            author: actor(author),
            head_sha: self.sha(&pr.head.sha, "pull_request.head.sha")?,
            head_ref: pr.head.ref_field.clone(),
            base_ref: pr.base.ref_field.clone(),
            base_sha: self.sha(&pr.base.sha, "pull_request.base.sha")?,
            draft: pr.draft.unwrap_or(false),
            from_fork: is_fork(head_full, &base_full),
            html_url: pr
                .html_url
                .as_ref()
                .map(|u| u.to_string())
                .unwrap_or_default(),
            updated_at_ms: pr.updated_at.map(|t| UnixMs::new(t.timestamp_millis())),
            merge_commit_sha: pr
                .merge_commit_sha
                .as_deref()
                .and_then(|s| CommitSha::new(s).ok()),
        };
        let sender = sender.ok_or_else(|| self.invalid("the payload has no `sender`"))?;
        Ok(Some(Event::PullRequest {
            action,
            repo,
            pr: info,
            sender: actor(sender),
        }))
    }

    fn comment(
        &self,
        c: &IssueCommentWebhookEventPayload,
        repository: Option<&Repository>,
        installation_id: Option<u64>,
    ) -> Result<Option<Event>, ParseError> {
        if c.action != IssueCommentWebhookEventAction::Created {
            return Ok(None);
        }
        let repo = self.repo(repository, installation_id)?;
        let association = c
            .comment
            .author_association
            .as_ref()
            .and_then(|a| serde_json::to_value(a).ok())
            .and_then(|v| v.as_str().map(str::to_ascii_uppercase));
        let created_at_ms = Some(UnixMs::new(c.comment.created_at.timestamp_millis()));
        // Comments on plain issues share this event: drift issues take drift commands.
        if c.issue.pull_request.is_none() {
            return Ok(Some(Event::IssueComment {
                repo,
                issue: c.issue.number,
                comment_id: c.comment.id.into_inner(),
                body: c.comment.body.clone().unwrap_or_default(),
                author: actor(&c.comment.user),
                association,
                created_at_ms,
            }));
        }
        Ok(Some(Event::Comment {
            repo,
            pr: self.pr_number(c.issue.number)?,
            comment_id: c.comment.id.into_inner(),
            body: c.comment.body.clone().unwrap_or_default(),
            author: actor(&c.comment.user),
            association,
            created_at_ms,
        }))
    }

    fn review(
        &self,
        r: &PullRequestReviewWebhookEventPayload,
        repository: Option<&Repository>,
        installation_id: Option<u64>,
    ) -> Result<Option<Event>, ParseError> {
        let action = match r.action {
            PullRequestReviewWebhookEventAction::Submitted => ReviewAction::Submitted,
            PullRequestReviewWebhookEventAction::Dismissed => ReviewAction::Dismissed,
            PullRequestReviewWebhookEventAction::Edited => ReviewAction::Edited,
            _ => return Ok(None),
        };
        let repo = self.repo(repository, installation_id)?;
        let reviewer = r
            .review
            .user
            .as_ref()
            .ok_or_else(|| self.invalid("the review has no `user`"))?;
        let state = r
            .review
            .state
            .ok_or_else(|| self.invalid("the review has no `state`"))?;
        let commit_id = r
            .review
            .commit_id
            .as_deref()
            .map(|s| self.sha(s, "review.commit_id"))
            .transpose()?;
        Ok(Some(Event::Review {
            action,
            repo,
            pr: self.pr_number(r.pull_request.number)?,
            review: Review {
                id: r.review.id.into_inner(),
                reviewer: actor(reviewer),
                state: review_state(state),
                commit_id,
                submitted_at: r
                    .review
                    .submitted_at
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            },
        }))
    }

    fn push(
        &self,
        p: &PushWebhookEventPayload,
        repository: Option<&Repository>,
        installation_id: Option<u64>,
    ) -> Result<Event, ParseError> {
        let repo = self.repo(repository, installation_id)?;
        // A deleted branch or tag has `after` = forty zeros: there is no commit to point at.
        let after = if p.deleted || p.after.bytes().all(|b| b == b'0') {
            None
        } else {
            Some(self.sha(&p.after, "after")?)
        };
        Ok(Event::Push {
            repo,
            git_ref: p.r#ref.clone(),
            after,
        })
    }
}

/// The fields of a `merge_group` payload Sluice reads (GitHub's webhook reference,
/// "merge_group"; octocrab has no model of it).
#[derive(Deserialize)]
struct MergeGroupPayload {
    merge_group: MergeGroupFields,
    repository: Option<Repository>,
    sender: Option<Author>,
}

#[derive(Deserialize)]
struct MergeGroupFields {
    head_sha: String,
    head_ref: String,
    base_sha: String,
    base_ref: String,
}

impl Cx<'_> {
    fn merge_group(
        &self,
        action: MergeGroupAction,
        body: &[u8],
        installation_id: Option<u64>,
    ) -> Result<Event, ParseError> {
        let p: MergeGroupPayload = serde_json::from_slice(body).map_err(|e| ParseError::Shape {
            event: self.event.to_string(),
            message: e.to_string(),
        })?;
        let repo = self.repo(p.repository.as_ref(), installation_id)?;
        let sender = p
            .sender
            .as_ref()
            .ok_or_else(|| self.invalid("the payload has no `sender`"))?;
        let g = p.merge_group;
        let base_ref = g
            .base_ref
            .strip_prefix("refs/heads/")
            .unwrap_or(&g.base_ref)
            .to_string();
        Ok(Event::MergeGroup {
            action,
            repo,
            group: MergeGroupInfo {
                head_sha: self.sha(&g.head_sha, "merge_group.head_sha")?,
                pr: queue_ref_pr(&g.head_ref),
                head_ref: g.head_ref,
                base_sha: self.sha(&g.base_sha, "merge_group.base_sha")?,
                base_ref,
            },
            sender: actor(sender),
        })
    }
}

/// The fields of a `check_run.requested_action` payload Sluice reads (GitHub's webhook
/// reference, "check_run", action `requested_action`).
#[derive(Deserialize)]
struct CheckRunActionPayload {
    check_run: CheckRunFields,
    requested_action: Option<RequestedActionFields>,
    repository: Option<Repository>,
    sender: Option<Author>,
}

#[derive(Deserialize)]
struct CheckRunFields {
    id: u64,
    head_sha: String,
    external_id: Option<String>,
    #[serde(default)]
    pull_requests: Vec<PullRequestNumber>,
}

#[derive(Deserialize)]
struct PullRequestNumber {
    number: u64,
}

#[derive(Deserialize)]
struct RequestedActionFields {
    identifier: String,
}

impl Cx<'_> {
    fn check_run_action(
        &self,
        body: &[u8],
        installation_id: Option<u64>,
    ) -> Result<Event, ParseError> {
        let p: CheckRunActionPayload =
            serde_json::from_slice(body).map_err(|e| ParseError::Shape {
                event: self.event.to_string(),
                message: e.to_string(),
            })?;
        let repo = self.repo(p.repository.as_ref(), installation_id)?;
        let sender = p
            .sender
            .as_ref()
            .ok_or_else(|| self.invalid("the payload has no `sender`"))?;
        let identifier = p
            .requested_action
            .ok_or_else(|| self.invalid("the payload has no `requested_action`"))?
            .identifier;
        let pr = p
            .check_run
            .pull_requests
            .first()
            .map(|pr| self.pr_number(pr.number))
            .transpose()?;
        Ok(Event::CheckRunAction {
            repo,
            pr,
            check_run_id: p.check_run.id,
            check_head_sha: p.check_run.head_sha,
            external_id: p.check_run.external_id,
            identifier,
            sender: actor(sender),
        })
    }
}

/// Error context: which event is being converted.
struct Cx<'a> {
    event: &'a str,
}

impl Cx<'_> {
    fn invalid(&self, message: impl Into<String>) -> ParseError {
        ParseError::Invalid {
            event: self.event.to_string(),
            message: message.into(),
        }
    }

    fn sha(&self, s: &str, field: &str) -> Result<CommitSha, ParseError> {
        CommitSha::new(s).map_err(|e| self.invalid(format!("`{field}`: {e}")))
    }

    fn pr_number(&self, n: u64) -> Result<PrNumber, ParseError> {
        PrNumber::new(n).map_err(|e| self.invalid(format!("pull request number: {e}")))
    }

    fn repo(
        &self,
        repository: Option<&Repository>,
        installation_id: Option<u64>,
    ) -> Result<RepoRef, ParseError> {
        let r = repository.ok_or_else(|| self.invalid("the payload has no `repository`"))?;
        let full = r
            .full_name
            .as_deref()
            .ok_or_else(|| self.invalid("`repository.full_name` is missing"))?;
        let name = RepoName::parse(full)
            .map_err(|e| self.invalid(format!("`repository.full_name`: {e}")))?;
        let clone_url = r
            .clone_url
            .as_ref()
            .ok_or_else(|| self.invalid("`repository.clone_url` is missing"))?
            .to_string();
        let default_branch = r
            .default_branch
            .clone()
            .ok_or_else(|| self.invalid("`repository.default_branch` is missing"))?;
        Ok(RepoRef {
            name,
            clone_url,
            default_branch,
            installation_id,
        })
    }
}

fn actor(a: &Author) -> Actor {
    Actor {
        login: a.login.clone(),
        id: a.id.into_inner(),
        kind: if a.r#type == "Bot" {
            ActorKind::Bot
        } else {
            ActorKind::Human
        },
    }
}

/// A PR comes from a fork when its head branch lives in another repository. A head repository
/// that is gone (`null`: the fork was deleted) counts as a fork: it is certainly not the base.
fn is_fork(head_full_name: Option<&str>, base_full_name: &str) -> bool {
    match head_full_name {
        Some(head) => !head.eq_ignore_ascii_case(base_full_name),
        None => true,
    }
}

fn review_state(s: octocrab::models::pulls::ReviewState) -> ReviewState {
    use octocrab::models::pulls::ReviewState as O;
    match s {
        O::Approved => ReviewState::Approved,
        O::ChangesRequested => ReviewState::ChangesRequested,
        O::Commented => ReviewState::Commented,
        O::Dismissed => ReviewState::Dismissed,
        // `open`/`pending` (and whatever octocrab adds later) grant nothing: treat as pending.
        _ => ReviewState::Pending,
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn sign(secret: &[u8], body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn signature_checks() {
        let secret = b"it's a secret to everybody";
        let body = br#"{"zen":"Design for failure."}"#;
        let good = sign(secret, body);

        assert_eq!(verify_signature(secret, body, Some(&good)), Ok(()));
        // Surrounding whitespace from a proxy is tolerated.
        assert_eq!(
            verify_signature(secret, body, Some(&format!(" {good} "))),
            Ok(())
        );

        let check = |name: &str, secret: &[u8], body: &[u8], header: Option<&str>, want| {
            assert_eq!(verify_signature(secret, body, header), Err(want), "{name}");
        };
        use SignatureError::*;
        let tampered = br#"{"zen":"Design for success."}"#;
        check("tampered body", secret, tampered, Some(&good), Mismatch);
        check(
            "wrong secret",
            b"another secret",
            body,
            Some(&good),
            Mismatch,
        );
        check("missing header", secret, body, None, Missing);
        check("empty header", secret, body, Some(""), Missing);
        let sha1 = "sha1=0123456789abcdef0123456789abcdef01234567";
        check("sha1 prefix", secret, body, Some(sha1), WrongPrefix);
        let bare = good.trim_start_matches("sha256=");
        check("no prefix", secret, body, Some(bare), WrongPrefix);
        check("bad hex", secret, body, Some("sha256=zz3c4d"), BadHex);
        check("short digest", secret, body, Some("sha256=abcd"), BadHex);
        check("empty secret", b"", body, Some(&good), Mismatch);
    }

    #[test]
    fn signature_checked_as_the_body_arrives() {
        let secret = b"s3cret-value";
        let body = br#"{"action":"created","comment":{"id":1}}"#;
        let good = sign(secret, body);
        for chunk in [1, 3, 7, body.len()] {
            let mut check = SignatureCheck::new(secret, Some(&good)).unwrap();
            for part in body.chunks(chunk) {
                check.update(part);
            }
            assert_eq!(check.finish(), Ok(()), "chunks of {chunk}");
        }
        let mut check = SignatureCheck::new(secret, Some(&good)).unwrap();
        check.update(&body[..body.len() - 1]);
        assert_eq!(check.finish(), Err(SignatureError::Mismatch), "a cut body");
        // The header alone is judged before any of the body is read.
        assert_eq!(
            SignatureCheck::new(secret, None).err(),
            Some(SignatureError::Missing)
        );
        assert_eq!(
            SignatureCheck::new(secret, Some("sha256=12")).err(),
            Some(SignatureError::BadHex)
        );
    }

    #[test]
    fn merge_group_payloads_become_merge_group_events() {
        let e = parse_event("merge_group", &fixture("merge_group.checks_requested.json")).unwrap();
        let Event::MergeGroup {
            action,
            repo,
            group,
            sender,
        } = e
        else {
            panic!("a merge group event: {e:?}");
        };
        assert_eq!(action, MergeGroupAction::ChecksRequested);
        assert_eq!(repo.name.full(), "octo-org/octo-repo");
        assert_eq!(
            group.head_sha.as_str(),
            "2ffea6db159f6b6c47a24e778fb9ef40cf6b1c7d"
        );
        assert_eq!(
            group.base_sha.as_str(),
            "380387fbc80638b734a49e1be1c4dfec1c01b33c"
        );
        assert_eq!(group.base_ref, "main");
        assert_eq!(group.pr.map(PrNumber::get), Some(104));
        assert!(!sender.login.is_empty());
        let destroyed = parse_event("merge_group", &fixture("merge_group.destroyed.json")).unwrap();
        assert!(matches!(
            destroyed,
            Event::MergeGroup {
                action: MergeGroupAction::Destroyed,
                ..
            }
        ));
        // Actions GitHub may add later are acknowledged, not errors.
        let other = edited("merge_group.checks_requested.json", |v| {
            v["action"] = "something_new".into();
        });
        assert!(matches!(
            parse_event("merge_group", &other).unwrap(),
            Event::Ignored { .. }
        ));
        // A malformed queue commit is a clear error.
        let bad = edited("merge_group.checks_requested.json", |v| {
            v["merge_group"]["head_sha"] = "not-a-sha".into();
        });
        let err = parse_event("merge_group", &bad).unwrap_err().to_string();
        assert!(err.contains("merge_group.head_sha"), "{err}");
    }

    #[test]
    fn comments_and_reviews_are_keyed_by_their_github_ids() {
        let comment =
            parse_event("issue_comment", &fixture("issue_comment.created.pr.json")).unwrap();
        assert_eq!(
            comment.identity_keys(),
            vec!["issue_comment:codertocat/hello-world:492700400".to_string()]
        );
        // The same comment delivered by another webhook (another installation) is the same event.
        let other = edited("issue_comment.created.pr.json", |v| {
            v["installation"]["id"] = 99.into();
        });
        assert_eq!(
            parse_event("issue_comment", &other)
                .unwrap()
                .identity_keys(),
            comment.identity_keys()
        );
        let review = parse_event(
            "pull_request_review",
            &fixture("pull_request_review.submitted.json"),
        )
        .unwrap();
        assert_eq!(
            review.identity_keys(),
            vec!["pull_request_review:codertocat/hello-world:237895671:submitted".to_string()]
        );
        let dismissed = edited("pull_request_review.submitted.json", |v| {
            v["action"] = "dismissed".into();
        });
        assert_ne!(
            parse_event("pull_request_review", &dismissed)
                .unwrap()
                .identity_keys(),
            review.identity_keys(),
            "a dismissal is another event than the submission"
        );
        let review_edit = edited("pull_request_review.submitted.json", |v| {
            v["action"] = "edited".into();
        });
        assert!(
            parse_event("pull_request_review", &review_edit)
                .unwrap()
                .identity_keys()
                .is_empty(),
            "edits can repeat: only their exact bodies are deduplicated"
        );
        let pr = parse_event("pull_request", &fixture("pull_request.opened.json")).unwrap();
        assert!(pr.identity_keys().is_empty());
    }

    #[test]
    fn signature_of_empty_body() {
        let secret = b"s3cret-value";
        let good = sign(secret, b"");
        assert_eq!(verify_signature(secret, b"", Some(&good)), Ok(()));
        assert_eq!(
            verify_signature(secret, b"{}", Some(&good)),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn uppercase_hex_digest_is_accepted() {
        let secret = b"s3cret-value";
        let good = sign(secret, b"x");
        let upper = format!("sha256={}", good["sha256=".len()..].to_ascii_uppercase());
        assert_eq!(verify_signature(secret, b"x", Some(&upper)), Ok(()));
    }

    fn fixtures_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/webhooks")
    }

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(fixtures_dir().join(name)).unwrap()
    }

    #[test]
    fn a_pressed_check_run_button_is_its_action_and_other_check_run_actions_are_ignored() {
        let event = parse_event("check_run", &fixture("check_run.requested_action.json")).unwrap();
        let Event::CheckRunAction {
            repo,
            pr,
            check_run_id,
            check_head_sha,
            external_id,
            identifier,
            sender,
        } = event
        else {
            panic!("{event:?}")
        };
        assert_eq!(repo.name.full(), "electron/electron");
        assert_eq!(repo.installation_id, Some(690857));
        assert_eq!(pr.map(|p| p.get()), Some(26764));
        assert_eq!(check_run_id, 1494503112);
        assert_eq!(check_head_sha, "5bd5f196a46b8222fb7484f05faba41a73cf34bd");
        assert_eq!(external_id.as_deref(), Some(""));
        assert_eq!(identifier, "lgtm|26764");
        assert_eq!(sender.login, "codebytere");

        let completed = edited("check_run.requested_action.json", |v| {
            v["action"] = "completed".into();
        });
        assert!(matches!(
            parse_event("check_run", &completed).unwrap(),
            Event::Ignored { .. }
        ));
        let no_action = edited("check_run.requested_action.json", |v| {
            v.as_object_mut().unwrap().remove("requested_action");
        });
        let err = parse_event("check_run", &no_action).unwrap_err();
        assert!(err.to_string().contains("requested_action"), "{err}");
    }

    /// The event type a fixture is for: its file name up to the first dot.
    fn event_of(file: &str) -> &str {
        file.split('.').next().unwrap()
    }

    /// One line per fixture, so a reader sees at a glance what each payload becomes; the full
    /// conversion of each is in the snapshots below.
    fn summary(event: &Event) -> String {
        match event {
            Event::PullRequest {
                action, repo, pr, ..
            } => format!(
                "pull_request {action:?} {} {} head={} fork={} draft={} installation={:?}",
                repo.name,
                pr.number,
                pr.head_sha.short(),
                pr.from_fork,
                pr.draft,
                repo.installation_id
            ),
            Event::Comment { repo, pr, body, .. } => format!("comment {} {pr} {body:?}", repo.name),
            Event::IssueComment {
                repo, issue, body, ..
            } => format!("issue comment {} #{issue} {body:?}", repo.name),
            Event::Review {
                action, pr, review, ..
            } => format!("review {action:?} {pr} {:?}", review.state),
            Event::Push { git_ref, after, .. } => format!(
                "push {git_ref} {}",
                after.as_ref().map_or("-", |a| a.short())
            ),
            Event::CheckRunAction {
                repo,
                pr,
                identifier,
                ..
            } => format!("check run button {} {pr:?} {identifier:?}", repo.name),
            Event::MergeGroup {
                action,
                repo,
                group,
                ..
            } => format!(
                "merge group {action:?} {} {:?} head={} base={}",
                repo.name,
                group.pr,
                group.head_sha.short(),
                group.base_ref
            ),
            Event::Ping => "ping".to_string(),
            Event::Ignored { kind, action } => format!("ignored {kind} {action:?}"),
        }
    }

    #[test]
    fn every_fixture_parses() {
        let expected: &[(&str, &str)] = &[
            (
                "check_run.requested_action.json",
                "check run button electron/electron Some(PrNumber(26764)) \"lgtm|26764\"",
            ),
            (
                "installation.created.json",
                "ignored installation Some(\"created\")",
            ),
            (
                "issue_comment.created.json",
                "issue comment Codertocat/Hello-World #1 \"You are totally right! I'll get this fixed right away.\"",
            ),
            (
                "issue_comment.created.pr.json",
                "comment Codertocat/Hello-World #1 \"sluice plan\"",
            ),
            (
                "issue_comment.edited.json",
                "ignored issue_comment Some(\"edited\")",
            ),
            (
                "merge_group.checks_requested.json",
                "merge group ChecksRequested octo-org/octo-repo Some(PrNumber(104)) head=2ffea6d base=main",
            ),
            (
                "merge_group.destroyed.json",
                "merge group Destroyed octo-org/octo-repo Some(PrNumber(104)) head=2ffea6d base=main",
            ),
            ("ping.json", "ping"),
            (
                "pull_request.closed.json",
                "pull_request Closed { merged: false } Codertocat/Hello-World #2 head=ec26c3e fork=false draft=false installation=Some(1)",
            ),
            (
                "pull_request.closed.merged.json",
                "pull_request Closed { merged: true } Codertocat/Hello-World #2 head=ec26c3e fork=false draft=false installation=Some(1)",
            ),
            (
                "pull_request.opened.json",
                "pull_request Opened Codertocat/Hello-World #2 head=ec26c3e fork=false draft=false installation=Some(1)",
            ),
            (
                "pull_request.ready_for_review.json",
                "pull_request ReadyForReview Codertocat/Hello-World #2 head=ec26c3e fork=false draft=false installation=Some(1)",
            ),
            (
                "pull_request.reopened.json",
                "pull_request Reopened Codertocat/Hello-World #2 head=ec26c3e fork=false draft=false installation=Some(1)",
            ),
            (
                "pull_request.synchronize.json",
                "pull_request Synchronize Codertocat/Hello-World #2 head=ec26c3e fork=false draft=false installation=Some(1)",
            ),
            (
                "pull_request_review.dismissed.json",
                "review Dismissed #2 Dismissed",
            ),
            (
                "pull_request_review.submitted.json",
                "review Submitted #2 Commented",
            ),
            ("push.json", "push refs/heads/master 6113728"),
        ];

        let mut files: Vec<String> = std::fs::read_dir(fixtures_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|f| f.ends_with(".json"))
            .collect();
        files.sort();
        let listed: Vec<&str> = expected.iter().map(|(f, _)| *f).collect();
        assert_eq!(files, listed, "every fixture has a row in this table");

        for (file, want) in expected {
            let event = parse_event(event_of(file), &fixture(file))
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(summary(&event), *want, "{file}");
            let json = serde_json::to_string_pretty(&event).unwrap();
            insta::assert_snapshot!(format!("parse_{}", file.trim_end_matches(".json")), json);
        }
    }

    fn edited(file: &str, edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
        let mut v: serde_json::Value = serde_json::from_slice(&fixture(file)).unwrap();
        edit(&mut v);
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn fork_bot_and_draft_are_read_from_the_payload() {
        let body = edited("pull_request.opened.json", |v| {
            v["pull_request"]["head"]["repo"]["full_name"] = "someone/Hello-World".into();
            v["pull_request"]["draft"] = true.into();
            v["pull_request"]["user"]["type"] = "Bot".into();
        });
        let Event::PullRequest { pr, .. } = parse_event("pull_request", &body).unwrap() else {
            panic!("not a pull_request event");
        };
        assert!(pr.from_fork);
        assert!(pr.draft);
        assert_eq!(pr.author.kind, ActorKind::Bot);

        // A fork that has since been deleted leaves `head.repo` null: still a fork.
        let body = edited("pull_request.opened.json", |v| {
            v["pull_request"]["head"]["repo"] = serde_json::Value::Null;
        });
        let Event::PullRequest { pr, .. } = parse_event("pull_request", &body).unwrap() else {
            panic!("not a pull_request event");
        };
        assert!(pr.from_fork);

        // Same repository, different letter case: GitHub names are case-insensitive.
        let body = edited("pull_request.opened.json", |v| {
            v["pull_request"]["head"]["repo"]["full_name"] = "codertocat/hello-world".into();
        });
        let Event::PullRequest { pr, .. } = parse_event("pull_request", &body).unwrap() else {
            panic!("not a pull_request event");
        };
        assert!(!pr.from_fork);
    }

    #[test]
    fn other_actions_and_events_are_ignored() {
        let cases: &[(&str, &str, &str, &str)] = &[
            (
                "pull_request",
                "pull_request.opened.json",
                "labeled",
                "ignored pull_request Some(\"labeled\")",
            ),
            (
                "pull_request",
                "pull_request.opened.json",
                "converted_to_draft",
                "ignored pull_request Some(\"converted_to_draft\")",
            ),
            (
                "issue_comment",
                "issue_comment.created.pr.json",
                "deleted",
                "ignored issue_comment Some(\"deleted\")",
            ),
            (
                "issue_comment",
                "issue_comment.created.pr.json",
                "edited",
                "ignored issue_comment Some(\"edited\")",
            ),
            (
                "check_suite",
                "push.json",
                "requested",
                "ignored check_suite Some(\"requested\")",
            ),
            (
                "installation_repositories",
                "installation.created.json",
                "added",
                "ignored installation_repositories Some(\"added\")",
            ),
        ];
        for (event, file, action, want) in cases {
            let body = edited(file, |v| v["action"] = (*action).into());
            let got = parse_event(event, &body).unwrap();
            assert_eq!(summary(&got), *want, "{event} {action}");
        }
    }

    #[test]
    fn review_edited_is_a_review_event() {
        let body = edited("pull_request_review.submitted.json", |v| {
            v["action"] = "edited".into();
            v["review"]["state"] = "approved".into();
        });
        let got = parse_event("pull_request_review", &body).unwrap();
        assert_eq!(summary(&got), "review Edited #2 Approved");
    }

    #[test]
    fn deleted_branch_push_has_no_after() {
        let body = edited("push.json", |v| {
            v["after"] = "0000000000000000000000000000000000000000".into();
            v["deleted"] = true.into();
            v["head_commit"] = serde_json::Value::Null;
        });
        let got = parse_event("push", &body).unwrap();
        assert_eq!(summary(&got), "push refs/heads/master -");
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        let err = parse_event("pull_request", b"{not json").unwrap_err();
        assert!(matches!(err, ParseError::Json { .. }), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("`pull_request` webhook: the body is not a JSON object"),
            "{err}"
        );

        let err = parse_event("push", b"[1, 2]").unwrap_err();
        assert!(matches!(err, ParseError::Json { .. }), "{err:?}");

        let err = parse_event("", b"{}").unwrap_err();
        assert_eq!(err, ParseError::MissingEventType);

        // The header says pull_request, the body is an issue comment.
        let mut body: serde_json::Value =
            serde_json::from_slice(&fixture("issue_comment.created.pr.json")).unwrap();
        body["action"] = "opened".into();
        let err = parse_event("pull_request", &serde_json::to_vec(&body).unwrap()).unwrap_err();
        assert!(matches!(err, ParseError::Shape { .. }), "{err:?}");
        assert!(err.to_string().contains("pull_request"), "{err}");
        assert!(err.to_string().contains("missing field"), "{err}");

        // A field GitHub always sends is gone.
        let body = edited("pull_request.opened.json", |v| {
            v["repository"].as_object_mut().unwrap().remove("full_name");
        });
        let err = parse_event("pull_request", &body).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`pull_request` webhook: `repository.full_name` is missing"
        );

        let body = edited("pull_request.opened.json", |v| {
            v["pull_request"]["head"]["sha"] = "not-a-sha".into();
        });
        let err = parse_event("pull_request", &body).unwrap_err();
        assert!(
            err.to_string()
                .contains("`pull_request.head.sha`: `not-a-sha` is not a full commit SHA"),
            "{err}"
        );

        // Ignored events still have to be JSON.
        let err = parse_event("installation", b"").unwrap_err();
        assert!(matches!(err, ParseError::Json { .. }), "{err:?}");
    }

    #[test]
    fn comment_on_plain_issue_is_an_issue_comment_keyed_like_any_comment() {
        let got = parse_event("issue_comment", &fixture("issue_comment.created.json")).unwrap();
        let Event::IssueComment {
            issue,
            ref author,
            ref association,
            ..
        } = got
        else {
            panic!("{got:?}");
        };
        assert_eq!(issue, 1);
        assert_eq!(author.login, "Codertocat");
        assert!(association.is_some(), "{got:?}");
        assert_eq!(
            got.identity_keys(),
            vec!["issue_comment:codertocat/hello-world:492700400".to_string()]
        );
    }

    #[test]
    fn missing_installation_is_none() {
        let body = edited("issue_comment.created.pr.json", |v| {
            v.as_object_mut().unwrap().remove("installation");
        });
        let got = parse_event("issue_comment", &body).unwrap();
        assert_eq!(got.repo().unwrap().installation_id, None);
    }
}
