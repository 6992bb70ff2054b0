//! Real GitHub webhook payloads (`tests/fixtures/webhooks/`, from `@octokit/webhooks-examples`)
//! made ready to POST: load one, edit it for the test at hand, sign it like GitHub does.
//!
//! It owns payload editing and signing for tests; it does not send anything (tests POST the
//! result to the server under test) and never changes the fixture files.
//!
//! ```ignore
//! let hook = Webhook::load("issue_comment.created.pr.json")
//!     .repo("acme/infra", &clone_url)
//!     .pr_number(7)
//!     .comment_body("sluice plan")
//!     .signed(SECRET);
//! client.post(url).headers(hook.header_map()).body(hook.body).send().await?;
//! ```

// Helpers here serve tests that are written later (webhook → comment flows); not all are used yet.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/webhooks")
}

/// A payload being prepared. `event` is the `X-GitHub-Event` value, taken from the file name.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub event: String,
    pub payload: Value,
}

/// A payload ready to POST: exact body bytes and the headers GitHub sends with them.
#[derive(Debug, Clone)]
pub struct SignedWebhook {
    pub body: Vec<u8>,
    /// `X-GitHub-Event`, `X-GitHub-Delivery`, `X-Hub-Signature-256`, `Content-Type`, `User-Agent`.
    pub headers: Vec<(String, String)>,
}

impl SignedWebhook {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn delivery(&self) -> &str {
        self.header("X-GitHub-Delivery").expect("delivery header")
    }

    pub fn header_map(&self) -> reqwest::header::HeaderMap {
        let mut map = reqwest::header::HeaderMap::new();
        for (k, v) in &self.headers {
            map.insert(
                reqwest::header::HeaderName::from_bytes(k.as_bytes()).expect("header name"),
                reqwest::header::HeaderValue::from_str(v).expect("header value"),
            );
        }
        map
    }
}

impl Webhook {
    /// Loads `tests/fixtures/webhooks/<file>`; the event type is the file name up to the first
    /// dot (`pull_request.opened.json` → `pull_request`).
    pub fn load(file: &str) -> Webhook {
        let path = fixtures_dir().join(file);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let payload = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
        let event = file.split('.').next().expect("file name").to_string();
        Webhook { event, payload }
    }

    /// Sets the value at a JSON pointer (`/pull_request/head/sha`). The parent must exist.
    pub fn set(mut self, pointer: &str, value: impl Into<Value>) -> Webhook {
        let (parent, key) = pointer
            .rsplit_once('/')
            .unwrap_or_else(|| panic!("{pointer:?} is not a JSON pointer"));
        let target = self
            .payload
            .pointer_mut(parent)
            .unwrap_or_else(|| panic!("{} payload has nothing at {parent:?}", self.event));
        match target {
            Value::Object(map) => {
                map.insert(key.to_string(), value.into());
            }
            Value::Array(items) => {
                let i: usize = key.parse().expect("array index");
                items[i] = value.into();
            }
            _ => panic!("{parent:?} is neither an object nor an array"),
        }
        self
    }

    /// Sets the value only where the payload has the parent (for edits that apply to several
    /// event types: a PR's `user` or a comment's `user`).
    fn set_if_present(self, pointer: &str, value: impl Into<Value>) -> Webhook {
        let parent = pointer.rsplit_once('/').map_or("", |(p, _)| p);
        if self.payload.pointer(parent).is_some_and(|v| !v.is_null()) {
            self.set(pointer, value)
        } else {
            self
        }
    }

    pub fn remove(mut self, pointer: &str) -> Webhook {
        let (parent, key) = pointer.rsplit_once('/').expect("JSON pointer");
        if let Some(Value::Object(map)) = self.payload.pointer_mut(parent) {
            map.remove(key);
        }
        self
    }

    pub fn action(self, action: &str) -> Webhook {
        self.set("/action", action)
    }

    /// Points the event at another repository: `repository` and, for PR payloads, the base
    /// (and head, unless it is a fork) repository of the pull request.
    pub fn repo(self, full_name: &str, clone_url: &str) -> Webhook {
        let (owner, name) = full_name.split_once('/').expect("owner/name");
        let head_is_base = self.payload.pointer("/pull_request/head/repo/full_name")
            == self.payload.pointer("/pull_request/base/repo/full_name");
        let mut hook = self
            .set("/repository/full_name", full_name)
            .set("/repository/name", name)
            .set("/repository/clone_url", clone_url)
            .set_if_present("/repository/owner/login", owner);
        let mut prefixes = vec!["/pull_request/base/repo"];
        if head_is_base {
            prefixes.push("/pull_request/head/repo");
        }
        for prefix in prefixes {
            hook = hook
                .set_if_present(&format!("{prefix}/full_name"), full_name)
                .set_if_present(&format!("{prefix}/name"), name)
                .set_if_present(&format!("{prefix}/clone_url"), clone_url);
        }
        hook
    }

    /// Makes the PR's head live in `full_name` (a fork, unless it is the base repository).
    pub fn head_repo(self, full_name: &str) -> Webhook {
        self.set("/pull_request/head/repo/full_name", full_name)
    }

    pub fn default_branch(self, branch: &str) -> Webhook {
        self.set("/repository/default_branch", branch)
    }

    /// The PR (or issue) number, wherever this payload carries it.
    pub fn pr_number(self, n: u64) -> Webhook {
        self.set_if_present("/number", n)
            .set_if_present("/pull_request/number", n)
            .set_if_present("/issue/number", n)
    }

    pub fn head_sha(self, sha: &str) -> Webhook {
        self.set("/pull_request/head/sha", sha)
    }

    pub fn base(self, git_ref: &str, sha: &str) -> Webhook {
        self.set("/pull_request/base/ref", git_ref)
            .set("/pull_request/base/sha", sha)
    }

    pub fn comment_body(self, body: &str) -> Webhook {
        self.set("/comment/body", body)
    }

    /// Who acted: the sender, and the author of the comment / review / pull request.
    pub fn user(self, login: &str) -> Webhook {
        self.set("/sender/login", login)
            .set_if_present("/comment/user/login", login)
            .set_if_present("/review/user/login", login)
            .set_if_present("/pull_request/user/login", login)
    }

    pub fn draft(self, draft: bool) -> Webhook {
        self.set("/pull_request/draft", draft)
    }

    pub fn review_state(self, state: &str) -> Webhook {
        self.set("/review/state", state)
    }

    /// Sets (or removes, with `None`) the App installation that delivered the event.
    pub fn installation(self, id: Option<u64>) -> Webhook {
        match id {
            Some(id) => self.set(
                "/installation",
                serde_json::json!({ "id": id, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uMQ==" }),
            ),
            None => self.remove("/installation"),
        }
    }

    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(&self.payload).expect("payload serializes")
    }

    /// Body and headers as GitHub would send them, signed with `secret`.
    pub fn signed(&self, secret: &str) -> SignedWebhook {
        let body = self.body();
        let headers = vec![
            ("X-GitHub-Event".to_string(), self.event.clone()),
            ("X-GitHub-Delivery".to_string(), new_delivery_id()),
            ("X-Hub-Signature-256".to_string(), signature(secret, &body)),
            ("Content-Type".to_string(), "application/json".to_string()),
            (
                "User-Agent".to_string(),
                "GitHub-Hookshot/sluice-tests".to_string(),
            ),
        ];
        SignedWebhook { body, headers }
    }
}

/// `sha256=<hex HMAC-SHA256 of body>`, the `X-Hub-Signature-256` value.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Now as GitHub writes times (RFC 3339, UTC), with milliseconds and strictly increasing within
/// the test process: two payloads built for different moments never read the same time (GitHub
/// itself writes whole seconds).
pub fn github_now() -> String {
    static LAST: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    let now = chrono::Utc::now().timestamp_millis();
    let prev = LAST.fetch_max(now, Ordering::SeqCst);
    let ms = if prev >= now {
        LAST.fetch_add(1, Ordering::SeqCst) + 1
    } else {
        now
    };
    chrono::DateTime::from_timestamp_millis(ms)
        .expect("a valid time")
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A GUID-shaped delivery id, unique within the test process (and very likely across runs).
pub fn new_delivery_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let pid = std::process::id();
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (nanos >> 32) as u32,
        (nanos >> 16) as u16,
        pid & 0xfff,
        (pid >> 12) & 0xfff,
        ((nanos & 0xffff) << 32) | n
    )
}

#[cfg(test)]
mod tests {
    use sluice::adapters::github::{parse_event, verify_signature};
    use sluice::core::event::{ActorKind, Event};

    use super::*;

    const SECRET: &str = "webhook-secret-for-tests";

    #[test]
    fn edited_payload_is_signed_and_parses() {
        let hook = Webhook::load("issue_comment.created.pr.json")
            .repo("acme/infra", "file:///tmp/acme-infra.git")
            .pr_number(7)
            .comment_body("sluice apply -p network")
            .user("bob")
            .installation(Some(99));
        let signed = hook.signed(SECRET);

        assert_eq!(signed.header("x-github-event"), Some("issue_comment"));
        verify_signature(
            SECRET.as_bytes(),
            &signed.body,
            signed.header("X-Hub-Signature-256"),
        )
        .expect("signature verifies");

        let event = parse_event("issue_comment", &signed.body).unwrap();
        let Event::Comment {
            repo,
            pr,
            body,
            author,
            ..
        } = event
        else {
            panic!("not a comment: {event:?}");
        };
        assert_eq!(repo.name.full(), "acme/infra");
        assert_eq!(repo.clone_url, "file:///tmp/acme-infra.git");
        assert_eq!(repo.installation_id, Some(99));
        assert_eq!(pr.get(), 7);
        assert_eq!(body, "sluice apply -p network");
        assert_eq!(author.login, "bob");
        assert_eq!(author.kind, ActorKind::Human);
    }

    #[test]
    fn pull_request_edits() {
        let hook = Webhook::load("pull_request.opened.json")
            .repo("acme/infra", "file:///tmp/acme-infra.git")
            .pr_number(12)
            .head_sha("abcdefabcdefabcdefabcdefabcdefabcdefabcd")
            .draft(true)
            .user("carol");
        let event = parse_event(&hook.event, &hook.body()).unwrap();
        let Event::PullRequest { pr, repo, .. } = event else {
            panic!("not a pull request: {event:?}");
        };
        assert_eq!(pr.number.get(), 12);
        assert_eq!(
            pr.head_sha.as_str(),
            "abcdefabcdefabcdefabcdefabcdefabcdefabcd"
        );
        assert!(pr.draft);
        assert!(!pr.from_fork, "head repo followed the base repo");
        assert_eq!(pr.author.login, "carol");
        assert_eq!(repo.name.full(), "acme/infra");

        let fork = Webhook::load("pull_request.opened.json")
            .repo("acme/infra", "file:///tmp/acme-infra.git")
            .head_repo("mallory/infra");
        let Event::PullRequest { pr, .. } = parse_event(&fork.event, &fork.body()).unwrap() else {
            panic!("not a pull request");
        };
        assert!(pr.from_fork);
    }

    #[test]
    fn deliveries_are_unique() {
        let hook = Webhook::load("ping.json");
        let a = hook.signed(SECRET);
        let b = hook.signed(SECRET);
        assert_ne!(a.delivery(), b.delivery());
        assert_eq!(a.body, b.body);
        assert_eq!(a.delivery().len(), 36);
    }
}
