//! A fake GitHub REST API for integration tests: a real axum HTTP server on `127.0.0.1:0` that
//! serves the endpoints Sluice uses with GitHub's JSON shapes (taken from `@octokit/openapi`),
//! checks credentials (the test token, App JWTs signed with the test key, installation tokens
//! it issued), paginates with `Link` headers, records every request, and can be told to fail.
//!
//! It owns only test state. It does not try to be GitHub: permissions, most validation and
//! every endpoint Sluice does not call are left out; unknown paths answer GitHub's 404 body.
//!
//! ```ignore
//! let fake = FakeGitHub::start().await;
//! fake.add_pull(FakePull::new("acme/infra", 1));
//! fake.fail_next("GET", "/repos/acme/infra/pulls/1", 2, Failure::new(500));
//! // … point the client at fake.url() …
//! assert_eq!(fake.requests_to("GET", "/repos/acme/infra/pulls/1").len(), 3);
//! ```

// Helpers here serve tests that are written later (webhook → comment flows); not all are used yet.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Extension, Json, Router};
use chrono::Utc;
use octocrab::jsonwebtoken::{self, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Value, json};

/// Pull request files, reviews, review comments and check runs (included, so that every
/// binary that includes this file by path gets them too).
mod review {
    include!("fake_github_review.rs");
}

pub use review::{FakeCheckRun, FakeFile, FakeReviewComment, PostedReview};

/// Compare and merge (delivery after merge, the merge queue, automerge).
mod delivery {
    include!("fake_github_delivery.rs");
}

/// Opening and listing pull requests (included for the same reason).
mod pulls {
    include!("fake_github_pulls.rs");
}

/// The personal token the fake accepts.
pub const TOKEN: &str = "ghp_fakeTokenForSluiceTests0000000000";
/// `GET /user` login for [`TOKEN`].
pub const USER_LOGIN: &str = "sluice-bot";

/// A stable numeric id per login, as GitHub would have (the same user always has the same id).
pub fn user_id(login: &str) -> u64 {
    match login {
        "alice" => 1001,
        "bob" => 1002,
        "carol" => 1003,
        _ => 5000 + login.bytes().map(u64::from).sum::<u64>(),
    }
}
pub const APP_ID: u64 = 4242;
pub const APP_SLUG: &str = "sluice-test";

const PRIVATE_KEY: &str = include_str!("../fixtures/github-app/test-app.private-key.pem");
const PUBLIC_KEY: &str = include_str!("../fixtures/github-app/test-app.public-key.pem");

/// The PEM private key of the fake's GitHub App (a test-only key).
pub fn app_private_key() -> &'static str {
    PRIVATE_KEY
}

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Lowercased names; only `authorization`, `accept`, `content-type`, `user-agent` and
    /// `x-github-api-version`.
    pub headers: BTreeMap<String, String>,
    /// The body parsed as JSON, when it was JSON.
    pub body: Option<Value>,
    /// When the request arrived (for "waited at least N seconds" assertions).
    pub at: Instant,
    /// What the fake answered (0 until the answer is sent).
    pub status: u16,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// Value of a query parameter, e.g. `page`.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let q = self.query.as_deref()?;
        q.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == name).then(|| v.to_string())
        })
    }
}

/// A pull request the fake knows. Build with [`FakePull::new`] and struct update syntax.
#[derive(Debug, Clone)]
pub struct FakePull {
    pub repo: String,
    pub number: u64,
    pub title: String,
    pub author: String,
    pub author_id: u64,
    /// `User` or `Bot`.
    pub author_type: String,
    pub head_sha: String,
    pub head_ref: String,
    /// `owner/name` of the head repository; another name makes a fork, `None` a deleted fork.
    pub head_repo: Option<String>,
    pub base_ref: String,
    pub base_sha: String,
    pub draft: bool,
    /// `open` or `closed`.
    pub state: String,
    pub merged: bool,
    pub mergeable: Option<bool>,
    pub mergeable_state: Option<String>,
    /// Markdown.
    pub body: String,
    /// GitHub's `merge_commit_sha` (set when the test merges it).
    pub merge_commit_sha: Option<String>,
}

impl FakePull {
    pub fn new(repo: &str, number: u64) -> FakePull {
        FakePull {
            repo: repo.to_string(),
            number,
            title: format!("Change #{number}"),
            author: "alice".to_string(),
            author_id: 1001,
            author_type: "User".to_string(),
            head_sha: "1111111111111111111111111111111111111111".to_string(),
            head_ref: "feature".to_string(),
            head_repo: Some(repo.to_string()),
            base_ref: "main".to_string(),
            base_sha: "2222222222222222222222222222222222222222".to_string(),
            draft: false,
            state: "open".to_string(),
            merged: false,
            mergeable: Some(true),
            mergeable_state: Some("clean".to_string()),
            body: "Terraform change".to_string(),
            merge_commit_sha: None,
        }
    }
}

/// A review the fake lists for a pull request.
#[derive(Debug, Clone)]
pub struct FakeReview {
    pub id: u64,
    pub user: String,
    pub user_id: u64,
    pub user_type: String,
    /// GitHub's spelling: `APPROVED`, `CHANGES_REQUESTED`, `COMMENTED`, `DISMISSED`.
    pub state: String,
    pub commit_id: Option<String>,
    pub submitted_at: String,
}

#[derive(Debug, Clone)]
pub struct FakeComment {
    pub id: u64,
    pub repo: String,
    pub issue: u64,
    pub user: String,
    pub body: String,
}

#[derive(Debug, Clone)]
pub struct FakeStatus {
    pub repo: String,
    pub sha: String,
    pub context: String,
    pub state: String,
    pub description: String,
    pub target_url: Option<String>,
}

#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub installation_id: u64,
    pub token: String,
    pub expires_at: chrono::DateTime<Utc>,
}

/// An answer the fake gives instead of the real one (see [`FakeGitHub::fail_next`]).
#[derive(Debug, Clone)]
pub struct Failure {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Failure {
    /// `status` with GitHub's error body (`message` = the reason phrase).
    pub fn new(status: u16) -> Failure {
        let reason = StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Error");
        Failure {
            status,
            headers: Vec::new(),
            body: error_body(reason, status),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Failure {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn message(mut self, message: &str) -> Failure {
        self.body["message"] = json!(message);
        self
    }

    /// GitHub's secondary rate limit: 403 with `Retry-After`.
    pub fn secondary_rate_limit(retry_after_secs: u64) -> Failure {
        Failure::new(403)
            .header("retry-after", &retry_after_secs.to_string())
            .message(
                "You have exceeded a secondary rate limit. Please wait a few minutes before you \
                 try again. If you reach out to GitHub Support for help, please include the \
                 request ID.",
            )
    }

    /// The primary rate limit: 403, `X-RateLimit-Remaining: 0`, reset at `reset_epoch`.
    pub fn primary_rate_limit(reset_epoch: i64) -> Failure {
        Failure::new(403)
            .header("x-ratelimit-limit", "5000")
            .header("x-ratelimit-remaining", "0")
            .header("x-ratelimit-reset", &reset_epoch.to_string())
            .message("API rate limit exceeded for installation ID 1.")
    }
}

struct FailureRule {
    method: String,
    path_prefix: String,
    remaining: usize,
    failure: Failure,
}

#[derive(Default)]
struct FakeState {
    base_url: String,
    pulls: HashMap<(String, u64), FakePull>,
    reviews: HashMap<(String, u64), Vec<FakeReview>>,
    comments: Vec<FakeComment>,
    issues: Vec<FakeIssue>,
    statuses: Vec<FakeStatus>,
    reactions: Vec<(u64, String)>,
    teams: HashMap<(String, String), Vec<String>>,
    repo_installations: HashMap<String, u64>,
    org_installations: HashMap<String, u64>,
    tokens: Vec<IssuedToken>,
    token_lifetime: Duration,
    max_per_page: usize,
    failures: Vec<FailureRule>,
    requests: Vec<RecordedRequest>,
    next_id: u64,
    files: HashMap<(String, u64), Vec<FakeFile>>,
    posted_reviews: Vec<PostedReview>,
    review_comments: Vec<FakeReviewComment>,
    check_runs: Vec<FakeCheckRun>,
    /// Login with GitHub: the OAuth client the fake accepts.
    oauth_client: Option<(String, String)>,
    /// Who `GET /login/oauth/authorize` logs in next (the "user at the keyboard").
    oauth_next_login: Option<String>,
    /// Issued OAuth codes and user tokens → login.
    oauth_codes: HashMap<String, String>,
    user_tokens: HashMap<String, String>,
    /// `(repo, login)` (lowercase) → GitHub's `permission` for it.
    permissions: HashMap<(String, String), String>,
    delivery: delivery::DeliveryState,
    /// `owner/name` (lowercase) → the git repository its branches are read from.
    repo_dirs: HashMap<String, std::path::PathBuf>,
}

impl FakeState {
    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

type Shared = Arc<Mutex<FakeState>>;

/// Who made a request, as established by its `Authorization` header.
#[derive(Debug, Clone)]
enum Caller {
    User,
    /// A user's OAuth token from the login flow.
    OAuthUser(String),
    App,
    Installation(u64),
}

/// A running fake. Dropping it stops the server.
pub struct FakeGitHub {
    addr: SocketAddr,
    state: Shared,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for FakeGitHub {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl FakeGitHub {
    pub async fn start() -> FakeGitHub {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake GitHub");
        let addr = listener.local_addr().expect("local address");
        let state: Shared = Arc::new(Mutex::new(FakeState {
            base_url: format!("http://{addr}"),
            token_lifetime: Duration::from_secs(3600),
            max_per_page: 100,
            next_id: 1000,
            ..FakeState::default()
        }));
        let app = router(state.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        FakeGitHub {
            addr,
            state,
            shutdown: Some(tx),
        }
    }

    /// `http://127.0.0.1:PORT`: the API URL to configure.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn state(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    // ---- test control -------------------------------------------------------------------

    /// The git repository `repo`'s branches live in (pull requests open from its branches).
    pub fn set_repo_dir(&self, repo: &str, dir: &std::path::Path) {
        self.state()
            .repo_dirs
            .insert(repo.to_ascii_lowercase(), dir.to_path_buf());
    }

    pub fn add_pull(&self, pull: FakePull) {
        let key = (pull.repo.to_ascii_lowercase(), pull.number);
        self.state().pulls.insert(key, pull);
    }

    /// Changes a known pull request (push a new head, merge it, …).
    pub fn update_pull(&self, repo: &str, number: u64, change: impl FnOnce(&mut FakePull)) {
        let mut state = self.state();
        let pull = state
            .pulls
            .get_mut(&(repo.to_ascii_lowercase(), number))
            .unwrap_or_else(|| panic!("fake GitHub: no pull request {repo}#{number}"));
        change(pull);
    }

    /// Adds a review by `user` (a human) in `state` (`APPROVED`, …) on the PR's current head.
    pub fn add_review(&self, repo: &str, pr: u64, user: &str, state: &str) -> u64 {
        let commit_id = self
            .state()
            .pulls
            .get(&(repo.to_ascii_lowercase(), pr))
            .map(|p| p.head_sha.clone());
        let id = self.state().next_id();
        self.add_review_full(
            repo,
            pr,
            FakeReview {
                id,
                user: user.to_string(),
                user_id: user_id(user),
                user_type: "User".to_string(),
                state: state.to_string(),
                commit_id,
                submitted_at: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            },
        );
        id
    }

    pub fn add_review_full(&self, repo: &str, pr: u64, review: FakeReview) {
        self.state()
            .reviews
            .entry((repo.to_ascii_lowercase(), pr))
            .or_default()
            .push(review);
    }

    /// A comment written by someone (so Sluice can react to it); returns its id.
    pub fn add_comment(&self, repo: &str, pr: u64, user: &str, body: &str) -> u64 {
        let mut state = self.state();
        let id = state.next_id();
        state.comments.push(FakeComment {
            id,
            repo: repo.to_ascii_lowercase(),
            issue: pr,
            user: user.to_string(),
            body: body.to_string(),
        });
        id
    }

    /// Accepts logins through the OAuth web flow for this client.
    pub fn set_oauth_client(&self, client_id: &str, client_secret: &str) {
        self.state().oauth_client = Some((client_id.to_string(), client_secret.to_string()));
    }

    /// The user who "is at the keyboard" when a browser reaches `/login/oauth/authorize`.
    pub fn set_oauth_login(&self, login: &str) {
        self.state().oauth_next_login = Some(login.to_string());
    }

    /// A code for `login`, as GitHub hands the browser on the way back (for HTTP-level tests).
    pub fn oauth_code_for(&self, login: &str) -> String {
        let mut s = self.state();
        let code = format!("code{}", s.next_id());
        s.oauth_codes.insert(code.clone(), login.to_string());
        code
    }

    /// `login`'s permission on `repo`, as `GET …/collaborators/{login}/permission` answers
    /// (`admin`, `write`, `read` or `none`); unknown logins answer 404.
    pub fn set_permission(&self, repo: &str, login: &str, permission: &str) {
        self.state().permissions.insert(
            (repo.to_ascii_lowercase(), login.to_ascii_lowercase()),
            permission.to_string(),
        );
    }

    /// Creates the team if needed (an empty team lists `[]`, an unknown one is a 404).
    pub fn add_team(&self, org: &str, slug: &str) {
        self.state()
            .teams
            .entry((org.to_ascii_lowercase(), slug.to_string()))
            .or_default();
    }

    pub fn add_team_member(&self, org: &str, slug: &str, login: &str) {
        self.state()
            .teams
            .entry((org.to_ascii_lowercase(), slug.to_string()))
            .or_default()
            .push(login.to_string());
    }

    /// Installs the fake App on a repository under installation `id`.
    pub fn install_on_repo(&self, repo: &str, id: u64) {
        self.state()
            .repo_installations
            .insert(repo.to_ascii_lowercase(), id);
    }

    pub fn install_on_org(&self, org: &str, id: u64) {
        self.state()
            .org_installations
            .insert(org.to_ascii_lowercase(), id);
    }

    /// How long installation tokens live (GitHub: one hour).
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.state().token_lifetime = lifetime;
    }

    /// Invalidates every installation token issued so far (as if revoked).
    pub fn revoke_tokens(&self) {
        for t in self.state().tokens.iter_mut() {
            t.expires_at = Utc::now() - chrono::Duration::seconds(1);
        }
    }

    /// Caps `per_page` below GitHub's 100, so pagination shows with a handful of items.
    pub fn set_max_per_page(&self, n: usize) {
        self.state().max_per_page = n.max(1);
    }

    /// The next `times` requests whose method is `method` and whose path starts with
    /// `path_prefix` get `failure` instead of their answer. Rules are checked in the order
    /// they were added.
    pub fn fail_next(&self, method: &str, path_prefix: &str, times: usize, failure: Failure) {
        self.state().failures.push(FailureRule {
            method: method.to_ascii_uppercase(),
            path_prefix: path_prefix.to_string(),
            remaining: times,
            failure,
        });
    }

    // ---- what happened ------------------------------------------------------------------

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state().requests.clone()
    }

    /// Requests with this method and exactly this path (query ignored).
    pub fn requests_to(&self, method: &str, path: &str) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.method.eq_ignore_ascii_case(method) && r.path == path)
            .collect()
    }

    /// Every issue (not pull request) opened through the API, in order.
    pub fn issues(&self, repo: &str) -> Vec<FakeIssue> {
        let repo = repo.to_ascii_lowercase();
        self.state()
            .issues
            .iter()
            .filter(|i| i.repo == repo)
            .cloned()
            .collect()
    }

    /// Current bodies of the comments on a pull request, oldest first.
    pub fn comments(&self, repo: &str, pr: u64) -> Vec<String> {
        let repo = repo.to_ascii_lowercase();
        self.state()
            .comments
            .iter()
            .filter(|c| c.repo == repo && c.issue == pr)
            .map(|c| c.body.clone())
            .collect()
    }

    /// Bodies of the comments the bot itself posted on a pull request, oldest first.
    pub fn bot_comments(&self, repo: &str, pr: u64) -> Vec<String> {
        let repo = repo.to_ascii_lowercase();
        self.state()
            .comments
            .iter()
            .filter(|c| c.repo == repo && c.issue == pr && c.user == USER_LOGIN)
            .map(|c| c.body.clone())
            .collect()
    }

    /// A pull request as the fake knows it now.
    pub fn pull(&self, repo: &str, number: u64) -> Option<FakePull> {
        self.state()
            .pulls
            .get(&(repo.to_ascii_lowercase(), number))
            .cloned()
    }

    pub fn all_comments(&self) -> Vec<FakeComment> {
        self.state().comments.clone()
    }

    /// `(context, state, description)` of every status set on `sha`, in order.
    pub fn statuses(&self, sha: &str) -> Vec<(String, String, String)> {
        self.state()
            .statuses
            .iter()
            .filter(|s| s.sha == sha)
            .map(|s| (s.context.clone(), s.state.clone(), s.description.clone()))
            .collect()
    }

    pub fn all_statuses(&self) -> Vec<FakeStatus> {
        self.state().statuses.clone()
    }

    /// `(comment id, content)` of every reaction added.
    pub fn reactions(&self) -> Vec<(u64, String)> {
        self.state().reactions.clone()
    }

    /// Sets the files `GET …/pulls/{n}/files` lists (and that review lines are checked against).
    pub fn set_pull_files(&self, repo: &str, pr: u64, files: Vec<FakeFile>) {
        self.state()
            .files
            .insert((repo.to_ascii_lowercase(), pr), files);
    }

    /// Reviews submitted to the fake, oldest first.
    pub fn posted_reviews(&self) -> Vec<PostedReview> {
        self.state().posted_reviews.clone()
    }

    /// Review comments (line and file-level), oldest first.
    pub fn review_comments(&self) -> Vec<FakeReviewComment> {
        self.state().review_comments.clone()
    }

    /// Check runs, oldest first.
    pub fn check_runs(&self) -> Vec<FakeCheckRun> {
        self.state().check_runs.clone()
    }

    /// A human edits an issue comment.
    pub fn edit_comment(&self, id: u64, body: &str) {
        if let Some(c) = self.state().comments.iter_mut().find(|c| c.id == id) {
            c.body = body.to_string();
        }
    }

    /// A human deletes an issue comment (later edits answer 404).
    pub fn delete_comment(&self, id: u64) {
        self.state().comments.retain(|c| c.id != id);
    }

    pub fn tokens_issued(&self) -> Vec<IssuedToken> {
        self.state().tokens.clone()
    }
}

fn router(state: Shared) -> Router {
    Router::new()
        .route("/user", get(get_user))
        .route("/app", get(get_app))
        .route(
            "/app/installations/{id}/access_tokens",
            post(create_access_token),
        )
        .route(
            "/repos/{owner}/{repo}/installation",
            get(get_repo_installation),
        )
        .route("/orgs/{org}/installation", get(get_org_installation))
        .route("/repos/{owner}/{repo}/pulls/{number}", get(get_pull))
        .route(
            "/repos/{owner}/{repo}/pulls/{number}/merge",
            axum::routing::put(delivery::merge_pull),
        )
        .route(
            "/repos/{owner}/{repo}/compare/{basehead}",
            get(delivery::compare),
        )
        .route(
            "/repos/{owner}/{repo}/pulls",
            get(pulls::list_pulls).post(pulls::create_pull),
        )
        .route(
            "/repos/{owner}/{repo}/pulls/{number}/reviews",
            get(list_reviews).post(review::create_review),
        )
        .route(
            "/repos/{owner}/{repo}/pulls/{number}/reviews/{id}",
            axum::routing::put(review::update_review),
        )
        .route(
            "/repos/{owner}/{repo}/pulls/{number}/reviews/{id}/comments",
            get(review::list_review_comments),
        )
        .route(
            "/repos/{owner}/{repo}/pulls/{number}/files",
            get(review::list_files),
        )
        .route(
            "/repos/{owner}/{repo}/pulls/{number}/comments",
            post(review::create_review_comment),
        )
        .route(
            "/repos/{owner}/{repo}/pulls/comments/{id}",
            patch(review::update_review_comment),
        )
        .route(
            "/repos/{owner}/{repo}/check-runs",
            post(review::create_check_run),
        )
        .route(
            "/repos/{owner}/{repo}/check-runs/{id}",
            patch(review::update_check_run),
        )
        .route(
            "/repos/{owner}/{repo}/issues/{number}/comments",
            post(create_comment),
        )
        .route(
            "/repos/{owner}/{repo}/issues/comments/{id}",
            patch(update_comment),
        )
        .route(
            "/repos/{owner}/{repo}/issues/comments/{id}/reactions",
            post(create_reaction),
        )
        .route("/repos/{owner}/{repo}/statuses/{sha}", post(create_status))
        .route(
            "/repos/{owner}/{repo}/issues",
            post(create_issue).get(list_issues),
        )
        .route("/repos/{owner}/{repo}/issues/{number}", patch(update_issue))
        .route("/orgs/{org}/teams/{slug}/members", get(list_team_members))
        .route(
            "/repos/{owner}/{repo}/collaborators/{login}/permission",
            get(get_permission),
        )
        .route("/login/oauth/authorize", get(oauth_authorize))
        .route("/login/oauth/access_token", post(oauth_access_token))
        .fallback(|| async { not_found() })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            record_and_gate,
        ))
        .with_state(state)
}

// ---- middleware: record, inject failures, authenticate --------------------------------------

const RECORDED_HEADERS: &[&str] = &[
    "authorization",
    "accept",
    "content-type",
    "user-agent",
    "x-github-api-version",
];

async fn record_and_gate(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let at = Instant::now();
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 16 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let method = parts.method.to_string();
    let path = parts.uri.path().to_string();
    let headers: BTreeMap<String, String> = RECORDED_HEADERS
        .iter()
        .filter_map(|h| {
            let v = parts.headers.get(*h)?.to_str().ok()?;
            Some((h.to_string(), v.to_string()))
        })
        .collect();

    let (index, injected) = {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        s.requests.push(RecordedRequest {
            method: method.clone(),
            path: path.clone(),
            query: parts.uri.query().map(str::to_string),
            headers: headers.clone(),
            body: serde_json::from_slice(&bytes).ok(),
            at,
            status: 0,
        });
        let index = s.requests.len() - 1;
        let injected = s
            .failures
            .iter_mut()
            .find(|r| r.remaining > 0 && r.method == method && path.starts_with(&r.path_prefix))
            .map(|r| {
                r.remaining -= 1;
                r.failure.clone()
            });
        (index, injected)
    };

    let response = match injected {
        Some(failure) => failure_response(&failure),
        // The OAuth web flow's pages take no API credentials.
        None if path.starts_with("/login/oauth/") => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        None => match authenticate(&state, &path, headers.get("authorization")) {
            Err(message) => unauthorized(message),
            Ok(caller) => {
                let mut req = Request::from_parts(parts, Body::from(bytes));
                req.extensions_mut().insert(caller);
                next.run(req).await
            }
        },
    };
    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
    s.requests[index].status = response.status().as_u16();
    response
}

fn failure_response(f: &Failure) -> Response {
    let status = StatusCode::from_u16(f.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, Json(f.body.clone())).into_response();
    for (k, v) in &f.headers {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

#[derive(Deserialize)]
struct JwtClaims {
    iss: u64,
}

/// `/app/…` and installation lookups take an App JWT; everything else the test token or a live
/// installation token — like GitHub, which refuses a JWT on repository endpoints.
/// The error is the message of the 401 answer.
fn authenticate(state: &Shared, path: &str, auth: Option<&String>) -> Result<Caller, &'static str> {
    let needs_jwt = path == "/app" || path.starts_with("/app/") || path.ends_with("/installation");
    let Some(auth) = auth else {
        return Err("Requires authentication");
    };
    let credential = auth
        .strip_prefix("Bearer ")
        .or_else(|| auth.strip_prefix("token "))
        .unwrap_or("");
    if needs_jwt {
        let key = DecodingKey::from_rsa_pem(PUBLIC_KEY.as_bytes()).expect("test public key");
        let mut validation = Validation::new(Algorithm::RS256);
        // `iss` is checked below: GitHub App JWTs carry it as a number, which jsonwebtoken's
        // own (string) issuer check does not read.
        validation.set_required_spec_claims(&["exp", "iat"]);
        return match jsonwebtoken::decode::<JwtClaims>(credential, &key, &validation) {
            Ok(data) if data.claims.iss == APP_ID => Ok(Caller::App),
            Ok(_) => Err("'Issuer' claim ('iss') must be an Integer"),
            Err(_) => Err("A JSON web token could not be decoded"),
        };
    }
    if credential == TOKEN {
        return Ok(Caller::User);
    }
    let s = state.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(login) = s.user_tokens.get(credential) {
        return Ok(Caller::OAuthUser(login.clone()));
    }
    match s.tokens.iter().find(|t| t.token == credential) {
        Some(t) if t.expires_at > Utc::now() => Ok(Caller::Installation(t.installation_id)),
        _ => Err("Bad credentials"),
    }
}

// ---- handlers ---------------------------------------------------------------------------------

fn error_body(message: &str, status: u16) -> Value {
    json!({
        "message": message,
        "documentation_url": "https://docs.github.com/rest",
        "status": status.to_string(),
    })
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Json(error_body("Not Found", 404))).into_response()
}

fn unauthorized(message: &str) -> Response {
    (StatusCode::UNAUTHORIZED, Json(error_body(message, 401))).into_response()
}

fn unprocessable(message: &str) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(error_body(message, 422)),
    )
        .into_response()
}

fn lock(state: &Shared) -> MutexGuard<'_, FakeState> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

fn user_json(base: &str, login: &str, id: u64, kind: &str) -> Value {
    json!({
        "login": login,
        "id": id,
        "node_id": format!("MDQ6VXNlcj{id}"),
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{id}?v=4"),
        "gravatar_id": "",
        "url": format!("{base}/users/{login}"),
        "html_url": format!("https://github.com/{login}"),
        "followers_url": format!("{base}/users/{login}/followers"),
        "following_url": format!("{base}/users/{login}/following{{/other_user}}"),
        "gists_url": format!("{base}/users/{login}/gists{{/gist_id}}"),
        "starred_url": format!("{base}/users/{login}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{base}/users/{login}/subscriptions"),
        "organizations_url": format!("{base}/users/{login}/orgs"),
        "repos_url": format!("{base}/users/{login}/repos"),
        "events_url": format!("{base}/users/{login}/events{{/privacy}}"),
        "received_events_url": format!("{base}/users/{login}/received_events"),
        "type": kind,
        "site_admin": false,
    })
}

fn repo_json(base: &str, full_name: &str) -> Value {
    let (owner, name) = full_name.split_once('/').unwrap_or((full_name, full_name));
    json!({
        "id": 1296269,
        "node_id": "MDEwOlJlcG9zaXRvcnkxMjk2MjY5",
        "name": name,
        "full_name": full_name,
        "owner": user_json(base, owner, 1, "Organization"),
        "private": false,
        "html_url": format!("https://github.com/{full_name}"),
        "url": format!("{base}/repos/{full_name}"),
        "clone_url": format!("https://github.com/{full_name}.git"),
        "default_branch": "main",
        "fork": false,
    })
}

/// The caller's login, as comments and reactions would show it.
fn caller_login(caller: &Caller) -> String {
    match caller {
        Caller::User => USER_LOGIN.to_string(),
        Caller::OAuthUser(login) => login.clone(),
        Caller::App | Caller::Installation(_) => format!("{APP_SLUG}[bot]"),
    }
}

async fn get_user(State(state): State<Shared>, Extension(caller): Extension<Caller>) -> Response {
    if let Caller::OAuthUser(login) = &caller {
        let base = lock(&state).base_url.clone();
        return Json(user_json(&base, login, user_id(login), "User")).into_response();
    }
    if !matches!(caller, Caller::User) {
        return (
            StatusCode::FORBIDDEN,
            Json(error_body("Resource not accessible by integration", 403)),
        )
            .into_response();
    }
    let base = lock(&state).base_url.clone();
    let mut user = user_json(&base, USER_LOGIN, 9001, "User");
    user["name"] = json!("Sluice Bot");
    Json(user).into_response()
}

async fn get_app(State(state): State<Shared>) -> Response {
    let base = lock(&state).base_url.clone();
    Json(json!({
        "id": APP_ID,
        "slug": APP_SLUG,
        "client_id": "Iv1.fake0000000000",
        "node_id": "MDExOkludGVncmF0aW9uMQ==",
        "owner": user_json(&base, "acme", 1, "Organization"),
        "name": "Sluice (test)",
        "description": "",
        "external_url": "https://example.com",
        "html_url": format!("https://github.com/apps/{APP_SLUG}"),
        "created_at": "2024-01-01T00:00:00Z",
        "updated_at": "2024-01-01T00:00:00Z",
        "permissions": { "metadata": "read", "contents": "read", "issues": "write", "pull_requests": "write", "statuses": "write" },
        "events": ["pull_request", "issue_comment", "pull_request_review", "push"],
    }))
    .into_response()
}

fn installation_json(base: &str, id: u64, account: &str) -> Value {
    json!({
        "id": id,
        "account": user_json(base, account, 1, "Organization"),
        "repository_selection": "all",
        "access_tokens_url": format!("{base}/app/installations/{id}/access_tokens"),
        "repositories_url": format!("{base}/installation/repositories"),
        "html_url": format!("https://github.com/organizations/{account}/settings/installations/{id}"),
        "app_id": APP_ID,
        "app_slug": APP_SLUG,
        "target_id": 1,
        "target_type": "Organization",
        "permissions": { "metadata": "read", "contents": "read", "issues": "write" },
        "events": ["pull_request", "issue_comment"],
        "created_at": "2024-01-01T00:00:00Z",
        "updated_at": "2024-01-01T00:00:00Z",
        "suspended_at": null,
        "suspended_by": null,
    })
}

async fn get_repo_installation(
    State(state): State<Shared>,
    Path((owner, repo)): Path<(String, String)>,
) -> Response {
    let s = lock(&state);
    match s
        .repo_installations
        .get(&format!("{owner}/{repo}").to_ascii_lowercase())
    {
        Some(id) => Json(installation_json(&s.base_url, *id, &owner)).into_response(),
        None => not_found(),
    }
}

async fn get_org_installation(State(state): State<Shared>, Path(org): Path<String>) -> Response {
    let s = lock(&state);
    match s.org_installations.get(&org.to_ascii_lowercase()) {
        Some(id) => Json(installation_json(&s.base_url, *id, &org)).into_response(),
        None => not_found(),
    }
}

async fn create_access_token(State(state): State<Shared>, Path(id): Path<u64>) -> Response {
    let mut s = lock(&state);
    let known = s.repo_installations.values().any(|i| *i == id)
        || s.org_installations.values().any(|i| *i == id);
    if !known {
        return not_found();
    }
    let n = s.tokens.len() + 1;
    let token = format!("ghs_fake{id}x{n:04}0000000000000000000000");
    let lifetime = chrono::Duration::from_std(s.token_lifetime).expect("token lifetime");
    let expires_at = Utc::now() + lifetime;
    s.tokens.push(IssuedToken {
        installation_id: id,
        token: token.clone(),
        expires_at,
    });
    (
        StatusCode::CREATED,
        Json(json!({
            "token": token,
            "expires_at": expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "permissions": { "issues": "write", "contents": "read", "pull_requests": "write", "statuses": "write" },
            "repository_selection": "all",
        })),
    )
        .into_response()
}

fn pull_json(base: &str, p: &FakePull) -> Value {
    let branch = |git_ref: &str, sha: &str, repo: Option<&str>| {
        let owner = repo
            .and_then(|r| r.split_once('/'))
            .map(|(o, _)| o)
            .unwrap_or("ghost");
        json!({
            "label": format!("{owner}:{git_ref}"),
            "ref": git_ref,
            "sha": sha,
            "user": user_json(base, owner, 1, "Organization"),
            "repo": repo.map(|r| repo_json(base, r)),
        })
    };
    let api = format!("{base}/repos/{}/pulls/{}", p.repo, p.number);
    let html = format!("https://github.com/{}/pull/{}", p.repo, p.number);
    let mut pull = json!({
        "url": api,
        "id": 1_000_000 + p.number,
        "node_id": "MDExOlB1bGxSZXF1ZXN0MQ==",
        "html_url": html,
        "diff_url": format!("{html}.diff"),
        "patch_url": format!("{html}.patch"),
        "issue_url": format!("{base}/repos/{}/issues/{}", p.repo, p.number),
        "commits_url": format!("{api}/commits"),
        "review_comments_url": format!("{api}/comments"),
        "comments_url": format!("{base}/repos/{}/issues/{}/comments", p.repo, p.number),
        "statuses_url": format!("{base}/repos/{}/statuses/{}", p.repo, p.head_sha),
        "number": p.number,
        "state": p.state,
        "locked": false,
        "title": p.title,
        "user": user_json(base, &p.author, p.author_id, &p.author_type),
        "body": p.body,
        "labels": [],
        "milestone": null,
        "active_lock_reason": null,
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
        "closed_at": if p.state == "closed" { json!("2026-01-02T00:00:00Z") } else { Value::Null },
        "merged_at": if p.merged { json!("2026-01-02T00:00:00Z") } else { Value::Null },
        "merge_commit_sha": p.merge_commit_sha,
    });
    // Two literals: one would exceed serde_json's macro recursion limit.
    let rest = json!({
        "assignee": null,
        "assignees": [],
        "requested_reviewers": [],
        "requested_teams": [],
        "head": branch(&p.head_ref, &p.head_sha, p.head_repo.as_deref()),
        "base": branch(&p.base_ref, &p.base_sha, Some(&p.repo)),
        "author_association": "MEMBER",
        "auto_merge": null,
        "draft": p.draft,
        "merged": p.merged,
        "mergeable": p.mergeable,
        "rebaseable": p.mergeable,
        "mergeable_state": p.mergeable_state,
        "merged_by": null,
        "comments": 0,
        "review_comments": 0,
        "maintainer_can_modify": false,
        "commits": 1,
        "additions": 1,
        "deletions": 0,
        "changed_files": 1,
    });
    if let (Value::Object(head), Value::Object(rest)) = (&mut pull, rest) {
        head.extend(rest);
    }
    pull
}

async fn get_pull(
    State(state): State<Shared>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
) -> Response {
    let s = lock(&state);
    match s
        .pulls
        .get(&(format!("{owner}/{repo}").to_ascii_lowercase(), number))
    {
        Some(p) => Json(pull_json(&s.base_url, p)).into_response(),
        None => not_found(),
    }
}

#[derive(Deserialize)]
struct PageQuery {
    per_page: Option<usize>,
    page: Option<usize>,
}

/// One page of `items`, with GitHub's `Link` header (absolute URLs, `next`/`last`/`first`/`prev`).
fn paginate(
    base: &str,
    path: &str,
    q: &PageQuery,
    max_per_page: usize,
    items: Vec<Value>,
) -> Response {
    let per_page = q.per_page.unwrap_or(30).clamp(1, max_per_page);
    let page = q.page.unwrap_or(1).max(1);
    let last = items.len().div_ceil(per_page).max(1);
    let slice: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let link =
        |p: usize, rel: &str| format!("<{base}{path}?per_page={per_page}&page={p}>; rel=\"{rel}\"");
    let mut links = Vec::new();
    if page > 1 {
        links.push(link(page - 1, "prev"));
    }
    if page < last {
        links.push(link(page + 1, "next"));
        links.push(link(last, "last"));
    }
    if page > 1 {
        links.push(link(1, "first"));
    }
    let mut response = Json(Value::Array(slice)).into_response();
    if !links.is_empty() {
        response.headers_mut().insert(
            "link",
            HeaderValue::from_str(&links.join(", ")).expect("link header"),
        );
    }
    response
}

async fn list_reviews(
    State(state): State<Shared>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    Query(q): Query<PageQuery>,
) -> Response {
    let s = lock(&state);
    let key = (format!("{owner}/{repo}").to_ascii_lowercase(), number);
    if !s.pulls.contains_key(&key) {
        return not_found();
    }
    let base = s.base_url.clone();
    let items: Vec<Value> = s
        .reviews
        .get(&key)
        .into_iter()
        .flatten()
        .map(|r| {
            let html = format!("https://github.com/{owner}/{repo}/pull/{number}#pullrequestreview-{}", r.id);
            json!({
                "id": r.id,
                "node_id": "MDE3OlB1bGxSZXF1ZXN0UmV2aWV3ODA=",
                "user": user_json(&base, &r.user, r.user_id, &r.user_type),
                "body": "",
                "state": r.state,
                "html_url": html,
                "pull_request_url": format!("{base}/repos/{owner}/{repo}/pulls/{number}"),
                "_links": {
                    "html": { "href": html },
                    "pull_request": { "href": format!("{base}/repos/{owner}/{repo}/pulls/{number}") },
                },
                "submitted_at": r.submitted_at,
                "commit_id": r.commit_id,
                "author_association": "MEMBER",
            })
        })
        .collect();
    let path = format!("/repos/{owner}/{repo}/pulls/{number}/reviews");
    paginate(&base, &path, &q, s.max_per_page, items)
}

async fn get_permission(
    State(state): State<Shared>,
    Path((owner, repo, login)): Path<(String, String, String)>,
) -> Response {
    let s = lock(&state);
    let key = (
        format!("{owner}/{repo}").to_ascii_lowercase(),
        login.to_ascii_lowercase(),
    );
    let Some(permission) = s.permissions.get(&key) else {
        return not_found();
    };
    let user = user_json(&s.base_url, &login, 7100, "User");
    Json(json!({ "permission": permission, "role_name": permission, "user": user })).into_response()
}

async fn list_team_members(
    State(state): State<Shared>,
    Path((org, slug)): Path<(String, String)>,
    Query(q): Query<PageQuery>,
) -> Response {
    let s = lock(&state);
    let Some(members) = s.teams.get(&(org.to_ascii_lowercase(), slug.clone())) else {
        return not_found();
    };
    let base = s.base_url.clone();
    let items: Vec<Value> = members
        .iter()
        .enumerate()
        .map(|(i, login)| {
            let mut u = user_json(&base, login, 7000 + i as u64, "User");
            u["role"] = json!("member");
            u
        })
        .collect();
    let path = format!("/orgs/{org}/teams/{slug}/members");
    paginate(&base, &path, &q, s.max_per_page, items)
}

fn comment_json(base: &str, c: &FakeComment) -> Value {
    json!({
        "id": c.id,
        "node_id": "MDEyOklzc3VlQ29tbWVudDE=",
        "url": format!("{base}/repos/{}/issues/comments/{}", c.repo, c.id),
        "html_url": format!("https://github.com/{}/pull/{}#issuecomment-{}", c.repo, c.issue, c.id),
        "body": c.body,
        "user": user_json(base, &c.user, 9001, if c.user.ends_with("[bot]") { "Bot" } else { "User" }),
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
        "issue_url": format!("{base}/repos/{}/issues/{}", c.repo, c.issue),
        "author_association": "NONE",
    })
}

#[derive(Deserialize)]
struct CommentBody {
    body: Option<String>,
}

async fn create_comment(
    State(state): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    Json(body): Json<CommentBody>,
) -> Response {
    let mut s = lock(&state);
    let repo_key = format!("{owner}/{repo}").to_ascii_lowercase();
    if !s.pulls.contains_key(&(repo_key.clone(), number))
        && !s
            .issues
            .iter()
            .any(|i| i.repo == repo_key && i.number == number)
    {
        return not_found();
    }
    let Some(text) = body.body else {
        return unprocessable("Invalid request.\n\n\"body\" wasn't supplied.");
    };
    if text.chars().count() > 65536 {
        return unprocessable("Validation Failed: body is too long (maximum is 65536 characters)");
    }
    let id = s.next_id();
    let comment = FakeComment {
        id,
        repo: repo_key,
        issue: number,
        user: caller_login(&caller),
        body: text,
    };
    let json = comment_json(&s.base_url, &comment);
    s.comments.push(comment);
    (StatusCode::CREATED, Json(json)).into_response()
}

async fn update_comment(
    State(state): State<Shared>,
    Path((owner, repo, id)): Path<(String, String, u64)>,
    Json(body): Json<CommentBody>,
) -> Response {
    let mut s = lock(&state);
    let repo_key = format!("{owner}/{repo}").to_ascii_lowercase();
    let base = s.base_url.clone();
    let Some(comment) = s
        .comments
        .iter_mut()
        .find(|c| c.id == id && c.repo == repo_key)
    else {
        return not_found();
    };
    let Some(text) = body.body else {
        return unprocessable("Invalid request.\n\n\"body\" wasn't supplied.");
    };
    comment.body = text;
    Json(comment_json(&base, comment)).into_response()
}

#[derive(Deserialize)]
struct ReactionBody {
    content: String,
}

async fn create_reaction(
    State(state): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path((owner, repo, id)): Path<(String, String, u64)>,
    Json(body): Json<ReactionBody>,
) -> Response {
    const CONTENTS: &[&str] = &[
        "+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes",
    ];
    let mut s = lock(&state);
    let repo_key = format!("{owner}/{repo}").to_ascii_lowercase();
    if !s.comments.iter().any(|c| c.id == id && c.repo == repo_key) {
        return not_found();
    }
    if !CONTENTS.contains(&body.content.as_str()) {
        return unprocessable("Validation Failed");
    }
    let base = s.base_url.clone();
    let login = caller_login(&caller);
    // GitHub answers 200 with the existing reaction when it is already there.
    let status = if s
        .reactions
        .iter()
        .any(|(c, r)| *c == id && *r == body.content)
    {
        StatusCode::OK
    } else {
        s.reactions.push((id, body.content.clone()));
        StatusCode::CREATED
    };
    (
        status,
        Json(json!({
            "id": id * 10,
            "node_id": "MDg6UmVhY3Rpb24x",
            "user": user_json(&base, &login, 9001, "Bot"),
            "content": body.content,
            "created_at": "2026-01-01T00:00:00Z",
        })),
    )
        .into_response()
}

#[derive(Deserialize)]
struct StatusBody {
    state: Option<String>,
    target_url: Option<String>,
    description: Option<String>,
    context: Option<String>,
}

async fn create_status(
    State(state): State<Shared>,
    Path((owner, repo, sha)): Path<(String, String, String)>,
    Json(body): Json<StatusBody>,
) -> Response {
    let Some(status_state) = body
        .state
        .filter(|s| matches!(s.as_str(), "pending" | "success" | "failure" | "error"))
    else {
        return unprocessable("Validation Failed: state is not included in the list");
    };
    let description = body.description.unwrap_or_default();
    // GitHub's limit; Sluice must cut descriptions itself.
    if description.chars().count() > 140 {
        return unprocessable(
            "Validation Failed: description is too long (maximum is 140 characters)",
        );
    }
    if sha.len() != 40 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
        return unprocessable(&format!("No commit found for SHA: {sha}"));
    }
    let mut s = lock(&state);
    let context = body.context.unwrap_or_else(|| "default".to_string());
    let id = s.next_id();
    let base = s.base_url.clone();
    s.statuses.push(FakeStatus {
        repo: format!("{owner}/{repo}"),
        sha: sha.clone(),
        context: context.clone(),
        state: status_state.clone(),
        description: description.clone(),
        target_url: body.target_url.clone(),
    });
    (
        StatusCode::CREATED,
        Json(json!({
            "url": format!("{base}/repos/{owner}/{repo}/statuses/{sha}"),
            "avatar_url": "https://github.com/images/error/hubot_happy.gif",
            "id": id,
            "node_id": "MDY6U3RhdHVzMQ==",
            "state": status_state,
            "description": description,
            "target_url": body.target_url,
            "context": context,
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
            "creator": user_json(&base, USER_LOGIN, 9001, "User"),
        })),
    )
        .into_response()
}

/// Small self-checks of the fake, so a broken fake fails here and not as a mystery elsewhere.
#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unknown_paths_and_missing_auth_answer_like_github() {
        let fake = FakeGitHub::start().await;
        let http = reqwest::Client::new();
        let r = http
            .get(format!("{}/nope", fake.url()))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["message"], "Not Found");

        let r = http
            .get(format!("{}/user", fake.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);

        let r = http
            .get(format!("{}/repos/acme/infra/pulls/1", fake.url()))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);

        let recorded = fake.requests();
        assert_eq!(recorded.len(), 3);
        assert_eq!(
            recorded.iter().map(|r| r.status).collect::<Vec<_>>(),
            [404, 401, 404]
        );
    }

    #[tokio::test]
    async fn pagination_links_are_absolute_and_complete() {
        let fake = FakeGitHub::start().await;
        fake.add_pull(FakePull::new("acme/infra", 1));
        for i in 0..5 {
            fake.add_review("acme/infra", 1, &format!("r{i}"), "COMMENTED");
        }
        let http = reqwest::Client::new();
        let r = http
            .get(format!(
                "{}/repos/acme/infra/pulls/1/reviews?per_page=2&page=2",
                fake.url()
            ))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        let link = r.headers()["link"].to_str().unwrap().to_string();
        let base = fake.url();
        assert_eq!(
            link,
            format!(
                "<{base}/repos/acme/infra/pulls/1/reviews?per_page=2&page=1>; rel=\"prev\", \
                 <{base}/repos/acme/infra/pulls/1/reviews?per_page=2&page=3>; rel=\"next\", \
                 <{base}/repos/acme/infra/pulls/1/reviews?per_page=2&page=3>; rel=\"last\", \
                 <{base}/repos/acme/infra/pulls/1/reviews?per_page=2&page=1>; rel=\"first\""
            )
        );
        let items: Vec<Value> = r.json().await.unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0]["user"]["login"], "r2");
    }
}

/// An issue opened through the API (drift reports).
#[derive(Debug, Clone)]
pub struct FakeIssue {
    pub repo: String,
    pub number: u64,
    pub title: String,
    pub body: String,
    pub labels: Vec<String>,
    pub open: bool,
    /// How many times it was edited.
    pub edits: usize,
}

#[derive(Deserialize)]
struct IssueBody {
    title: Option<String>,
    body: Option<String>,
    labels: Option<Vec<String>>,
    state: Option<String>,
}

fn issue_json(i: &FakeIssue) -> Value {
    json!({
        "number": i.number,
        "title": i.title,
        "body": i.body,
        "state": if i.open { "open" } else { "closed" },
        "labels": i.labels.iter().map(|l| json!({ "name": l })).collect::<Vec<_>>(),
    })
}

async fn create_issue(
    State(state): State<Shared>,
    Path((owner, repo)): Path<(String, String)>,
    Json(body): Json<IssueBody>,
) -> Response {
    let mut s = lock(&state);
    let Some(title) = body.title else {
        return unprocessable("Invalid request.\n\n\"title\" wasn't supplied.");
    };
    let text = body.body.unwrap_or_default();
    if text.chars().count() > 65536 {
        return unprocessable("Validation Failed: body is too long (maximum is 65536 characters)");
    }
    // Issues and pull requests share numbers.
    let repo_key = format!("{owner}/{repo}").to_ascii_lowercase();
    let number = 1000 + s.next_id();
    let issue = FakeIssue {
        repo: repo_key,
        number,
        title,
        body: text,
        labels: body.labels.unwrap_or_default(),
        open: true,
        edits: 0,
    };
    let json = issue_json(&issue);
    s.issues.push(issue);
    (StatusCode::CREATED, Json(json)).into_response()
}

async fn update_issue(
    State(state): State<Shared>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    Json(body): Json<IssueBody>,
) -> Response {
    let mut s = lock(&state);
    let repo_key = format!("{owner}/{repo}").to_ascii_lowercase();
    let Some(issue) = s
        .issues
        .iter_mut()
        .find(|i| i.repo == repo_key && i.number == number)
    else {
        return not_found();
    };
    if let Some(t) = body.title {
        issue.title = t;
    }
    if let Some(b) = body.body {
        issue.body = b;
    }
    if let Some(l) = body.labels {
        issue.labels = l;
    }
    if let Some(st) = body.state {
        issue.open = st == "open";
    }
    issue.edits += 1;
    Json(issue_json(issue)).into_response()
}

async fn list_issues(
    State(state): State<Shared>,
    Path((owner, repo)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let s = lock(&state);
    let repo_key = format!("{owner}/{repo}").to_ascii_lowercase();
    let label = q.get("labels").cloned();
    let list: Vec<Value> = s
        .issues
        .iter()
        .filter(|i| i.repo == repo_key && i.open)
        .filter(|i| label.as_ref().is_none_or(|l| i.labels.contains(l)))
        .map(issue_json)
        .collect();
    Json(list).into_response()
}

// ---- login with GitHub (OAuth web flow) ---------------------------------------------------------

/// `GET /repos/{o}/{r}/collaborators/{login}/permission`: 404 for a user GitHub knows nothing
/// about on the repository, else GitHub's shape.
#[derive(Deserialize)]
struct AuthorizeQuery {
    client_id: String,
    redirect_uri: String,
    state: String,
}

/// `GET /login/oauth/authorize`: the user "approves" at once and the browser goes back to
/// `redirect_uri` with a code and the state.
async fn oauth_authorize(State(state): State<Shared>, Query(q): Query<AuthorizeQuery>) -> Response {
    let mut s = lock(&state);
    let known = s
        .oauth_client
        .as_ref()
        .is_some_and(|(id, _)| *id == q.client_id);
    let Some(login) = s.oauth_next_login.clone().filter(|_| known) else {
        return (
            StatusCode::BAD_REQUEST,
            "unknown client or nobody to log in",
        )
            .into_response();
    };
    let code = format!("code{}", s.next_id());
    s.oauth_codes.insert(code.clone(), login);
    let to = format!(
        "{}?{}",
        q.redirect_uri,
        form_urlencoded::Serializer::new(String::new())
            .append_pair("code", &code)
            .append_pair("state", &q.state)
            .finish()
    );
    (StatusCode::FOUND, [("location", to)]).into_response()
}

/// `POST /login/oauth/access_token`: GitHub answers 200 with `error` for bad input.
async fn oauth_access_token(State(state): State<Shared>, body: String) -> Response {
    let form: HashMap<String, String> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let mut s = lock(&state);
    let client_ok = s.oauth_client.as_ref().is_some_and(|(id, secret)| {
        form.get("client_id") == Some(id) && form.get("client_secret") == Some(secret)
    });
    if !client_ok {
        return Json(json!({"error": "incorrect_client_credentials"})).into_response();
    }
    let Some(login) = form.get("code").and_then(|c| s.oauth_codes.remove(c)) else {
        return Json(json!({"error": "bad_verification_code"})).into_response();
    };
    let token = format!("gho_{}", s.next_id());
    s.user_tokens.insert(token.clone(), login);
    Json(json!({"access_token": token, "token_type": "bearer", "scope": ""})).into_response()
}
