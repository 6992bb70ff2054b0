//! The one GitHub API client: the implementation of the [`GitHubApi`] port over octocrab.
//!
//! It owns authentication (a personal/bot token, or a GitHub App whose installation tokens are
//! cached and refreshed), the shared rate limiter, the retry policy (5xx, 429, secondary and
//! primary rate limits, honouring `Retry-After` and `X-RateLimit-*`), pagination, and the
//! conversion of GitHub's JSON into small DTOs and then into Sluice's own types. It must not
//! decide what to post or when (that is `app`), must not log or `Debug`-print a token, and must
//! not talk to any host but the configured API URL — pagination links that point elsewhere are
//! refused rather than followed with our credentials.

use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasher;
use std::num::NonZeroU32;
use std::sync::Mutex as SyncMutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use http::header::{ACCEPT, AUTHORIZATION};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use octocrab::models::AppId;
use octocrab::{EncodingKey, Octocrab};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::config::{Secret, Settings};
use crate::core::event::{Actor, ActorKind, Review, ReviewState};
use crate::core::types::{CommitSha, PrNumber, RepoName};

use crate::app::ports::github::{
    CommitStatus, GitHubApi, GitHubError, IssueText, MAX_STATUS_DESCRIPTION, MergeableState,
    NewPull, PostedReviewIds, PullDetails, PullLink, PullState,
};
use crate::core::review::checks::{CreateCheckRun, UpdateCheckRun};
use crate::core::review::patch::PrFile;
use crate::core::review::pr_review::{CreateReview, CreateReviewComment};

/// How Sluice authenticates to GitHub.
#[derive(Debug, Clone)]
pub enum GitHubAuth {
    /// A personal or bot-account token.
    Token(Secret),
    /// A GitHub App: its id and private key (PEM), exchanged for installation tokens.
    App { app_id: u64, key_pem: Secret },
}

/// Everything [`OctocrabGitHub::new`] needs. [`GitHubConfig::new`] gives production defaults;
/// tests shorten the delays.
#[derive(Debug, Clone)]
pub struct GitHubConfig {
    /// `https://api.github.com`, `https://ghe.example.com/api/v3`, or a fake server's URL.
    pub api_url: String,
    pub auth: GitHubAuth,
    /// Sustained request rate of the whole process (all calls share one limiter).
    pub requests_per_second: NonZeroU32,
    /// Requests allowed at once after a quiet period.
    pub burst: NonZeroU32,
    /// Tries per call, the first included.
    pub max_attempts: u32,
    /// First backoff when the server gave no wait of its own; doubled per attempt, jittered.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// Longest wait honoured in-line. A server asking for more (a primary rate limit resetting
    /// in 40 minutes) gets [`GitHubError::RateLimited`] back to the caller at once, which can
    /// reschedule instead of holding a worker.
    pub max_retry_wait: Duration,
    /// Limit on one request, connection to last body byte.
    pub request_timeout: Duration,
}

impl GitHubConfig {
    pub fn new(api_url: impl Into<String>, auth: GitHubAuth) -> GitHubConfig {
        GitHubConfig {
            api_url: api_url.into(),
            auth,
            requests_per_second: NonZeroU32::new(10).expect("10 is not zero"),
            burst: NonZeroU32::new(10).expect("10 is not zero"),
            max_attempts: 5,
            base_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_retry_wait: Duration::from_secs(120),
            request_timeout: Duration::from_secs(30),
        }
    }

    /// Builds the configuration from server settings: a token, or an App id plus the PEM file
    /// it names (read here). Exactly one of the two must be configured.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<GitHubConfig> {
        let auth = match (
            settings.github_app_id,
            &settings.github_app_key_file,
            &settings.github_token,
        ) {
            (Some(_), Some(_), Some(_)) => anyhow::bail!(
                "both a GitHub token and a GitHub App are configured; set either \
                 SLUICE_GITHUB_TOKEN or SLUICE_GITHUB_APP_ID + SLUICE_GITHUB_APP_KEY_FILE"
            ),
            (Some(app_id), Some(file), None) => {
                let pem = std::fs::read_to_string(file).map_err(|e| {
                    anyhow::anyhow!("reading the GitHub App private key {}: {e}", file.display())
                })?;
                GitHubAuth::App {
                    app_id,
                    key_pem: Secret::new(pem),
                }
            }
            (None, None, Some(token)) => GitHubAuth::Token(token.clone()),
            _ => anyhow::bail!(
                "no GitHub credentials: set SLUICE_GITHUB_TOKEN, or SLUICE_GITHUB_APP_ID and \
                 SLUICE_GITHUB_APP_KEY_FILE"
            ),
        };
        Ok(GitHubConfig::new(settings.github_api_url.clone(), auth))
    }
}

/// Installation tokens are refreshed this long before GitHub says they expire, so a token
/// handed to a long `git fetch` or a slow call does not die mid-way.
const TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// A guard against a server whose `Link: rel="next"` never ends.
const MAX_PAGES: usize = 100;

const PER_PAGE: u32 = 100;

/// The [`GitHubApi`] implementation: one octocrab client for every call.
///
/// octocrab is used as the HTTP transport (base URL, TLS, connection pool) through its raw
/// `build_request`/`execute`; auth headers, retries and JSON decoding are done here so status
/// codes and rate-limit headers stay visible. octocrab's own auth is left empty because a
/// GitHub App needs two credentials side by side (a JWT for `/app/…`, installation tokens for
/// everything else) and octocrab would overwrite the `Authorization` header we set.
pub struct OctocrabGitHub {
    crab: Octocrab,
    api_url: String,
    auth: Auth,
    limiter: DefaultDirectRateLimiter,
    retry: RetryPolicy,
    request_timeout: Duration,
    /// Installation id → token. An async mutex: concurrent callers wait for one refresh
    /// instead of each minting a token.
    installation_tokens: tokio::sync::Mutex<HashMap<u64, CachedToken>>,
    /// `owner/name` (lowercase) or `org:<org>` → installation id, for App auth.
    installations: SyncMutex<HashMap<String, u64>>,
}

enum Auth {
    Token(Secret),
    App { app_id: u64, key: EncodingKey },
}

impl fmt::Debug for OctocrabGitHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match &self.auth {
            Auth::Token(_) => "token".to_string(),
            Auth::App { app_id, .. } => format!("app {app_id}"),
        };
        f.debug_struct("OctocrabGitHub")
            .field("api_url", &self.api_url)
            .field("auth", &auth)
            .field("retry", &self.retry)
            .field("request_timeout", &self.request_timeout)
            .finish_non_exhaustive()
    }
}

/// Which credential a call is made with.
#[derive(Debug, Clone, Copy)]
enum Cred {
    /// The configured personal/bot token.
    Token,
    /// A freshly signed App JWT (only for `/app/…` and installation lookups).
    AppJwt,
    Installation(u64),
}

struct CachedToken {
    token: Secret,
    expires_at: DateTime<Utc>,
}

impl CachedToken {
    fn fresh(&self, now: DateTime<Utc>) -> bool {
        let margin = chrono::Duration::from_std(TOKEN_REFRESH_MARGIN)
            .expect("a few minutes fit in chrono::Duration");
        now + margin < self.expires_at
    }
}

#[derive(Debug, Clone)]
struct RetryPolicy {
    max_attempts: u32,
    base_backoff: Duration,
    max_backoff: Duration,
    max_wait: Duration,
}

impl RetryPolicy {
    /// Exponential backoff with jitter: somewhere between half and all of
    /// `base * 2^(attempt-1)`, capped. Jitter keeps several workers that failed together from
    /// retrying together.
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base_backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let capped = exp.min(self.max_backoff);
        // A fresh RandomState is randomly keyed: enough randomness for jitter, no extra crate.
        let r = std::collections::hash_map::RandomState::new().hash_one(attempt);
        let fraction = (r % 1000) as f64 / 1000.0;
        capped.mul_f64(0.5 + 0.5 * fraction)
    }
}

/// A response, read whole.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn json<T: DeserializeOwned>(&self, what: &str) -> Result<T, GitHubError> {
        serde_json::from_str(&self.body)
            .map_err(|e| GitHubError::Invalid(format!("{what}: unexpected response body: {e}")))
    }
}

/// What to do with a non-2xx answer.
enum Verdict {
    Fail(GitHubError),
    /// Worth another try; `wait` is what the server asked for, if anything.
    Retry {
        error: GitHubError,
        wait: Option<Duration>,
    },
}

impl OctocrabGitHub {
    /// Builds the client. Must run inside a tokio runtime: octocrab spawns its connection
    /// buffer task here (checked, so a misuse is an error rather than a panic).
    pub fn new(config: GitHubConfig) -> Result<OctocrabGitHub, GitHubError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(GitHubError::Invalid(
                "the GitHub client must be created inside a tokio runtime".to_string(),
            ));
        }
        let api_url = config.api_url.trim_end_matches('/').to_string();
        let uri: http::Uri = api_url
            .parse()
            .map_err(|e| GitHubError::Invalid(format!("API URL `{api_url}`: {e}")))?;
        if uri.scheme().is_none() || uri.authority().is_none() {
            return Err(GitHubError::Invalid(format!(
                "API URL `{api_url}` must be absolute, like https://api.github.com"
            )));
        }
        let crab = Octocrab::builder()
            .base_uri(api_url.as_str())
            .and_then(|b| b.build())
            .map_err(|e| GitHubError::Invalid(format!("setting up the GitHub client: {e}")))?;
        let auth = match config.auth {
            GitHubAuth::Token(token) => Auth::Token(token),
            GitHubAuth::App { app_id, key_pem } => {
                let key = EncodingKey::from_rsa_pem(key_pem.expose().as_bytes()).map_err(|e| {
                    GitHubError::Invalid(format!(
                        "the GitHub App private key is not an RSA key in PEM form: {e}"
                    ))
                })?;
                Auth::App { app_id, key }
            }
        };
        if config.max_attempts == 0 {
            return Err(GitHubError::Invalid(
                "max_attempts must be at least 1".to_string(),
            ));
        }
        let quota = Quota::per_second(config.requests_per_second).allow_burst(config.burst);
        Ok(OctocrabGitHub {
            crab,
            api_url,
            auth,
            limiter: RateLimiter::direct(quota),
            retry: RetryPolicy {
                max_attempts: config.max_attempts,
                base_backoff: config.base_backoff,
                max_backoff: config.max_backoff,
                max_wait: config.max_retry_wait,
            },
            request_timeout: config.request_timeout,
            installation_tokens: tokio::sync::Mutex::new(HashMap::new()),
            installations: SyncMutex::new(HashMap::new()),
        })
    }

    /// Sends one call with retries. An installation token GitHub no longer accepts (revoked,
    /// clock skew) is dropped and the call tried once more with a fresh one.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        cred: Cred,
    ) -> Result<Reply, GitHubError> {
        let result = self.send_with_retries(&method, path, body, cred).await;
        if let (Err(GitHubError::Unauthorized(_)), Cred::Installation(id)) = (&result, cred) {
            self.installation_tokens.lock().await.remove(&id);
            return self.send_with_retries(&method, path, body, cred).await;
        }
        result
    }

    async fn send_with_retries(
        &self,
        method: &Method,
        path: &str,
        body: Option<&serde_json::Value>,
        cred: Cred,
    ) -> Result<Reply, GitHubError> {
        let auth = self.auth_header(cred).await?;
        let mut attempt = 1;
        loop {
            self.limiter.until_ready().await;
            let (error, server_wait, status) = match self.send_once(method, path, body, &auth).await
            {
                Ok(reply) if reply.status.is_success() => return Ok(reply),
                Ok(reply) => match classify(method, path, &reply) {
                    Verdict::Fail(error) => return Err(error),
                    Verdict::Retry { error, wait } => (error, wait, Some(reply.status.as_u16())),
                },
                Err(error) => (error, None, None),
            };
            let wait = server_wait.unwrap_or_else(|| self.retry.backoff(attempt));
            let error = match error {
                GitHubError::RateLimited { .. } => GitHubError::RateLimited { retry_after: wait },
                other => other,
            };
            if attempt >= self.retry.max_attempts || wait > self.retry.max_wait {
                tracing::warn!(
                    %method, path, status, attempt, wait_ms = wait.as_millis() as u64,
                    "GitHub call failed; giving up"
                );
                return Err(error);
            }
            tracing::warn!(
                %method, path, status, attempt, wait_ms = wait.as_millis() as u64,
                error = %error, "GitHub call failed; retrying"
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn send_once(
        &self,
        method: &Method,
        path: &str,
        body: Option<&serde_json::Value>,
        auth: &HeaderValue,
    ) -> Result<Reply, GitHubError> {
        let builder = http::Request::builder()
            .method(method.clone())
            .uri(path)
            .header(AUTHORIZATION, auth.clone())
            .header(ACCEPT, "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28");
        let request = self
            .crab
            .build_request(builder, body)
            .map_err(|e| GitHubError::Invalid(format!("{method} {path}: {e}")))?;
        let exchange = async {
            let response = self.crab.execute(request).await?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = self.crab.body_to_string(response).await?;
            Ok::<_, octocrab::Error>(Reply {
                status,
                headers,
                body,
            })
        };
        let answer = tokio::time::timeout(self.request_timeout, exchange).await;
        record_call(&answer);
        match answer {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => Err(GitHubError::Transport(format!("{method} {path}: {e}"))),
            Err(_) => Err(GitHubError::Transport(format!(
                "{method} {path}: no complete answer within {:?}",
                self.request_timeout
            ))),
        }
    }

    async fn auth_header(&self, cred: Cred) -> Result<HeaderValue, GitHubError> {
        let token = match (cred, &self.auth) {
            (Cred::Token, Auth::Token(token)) => token.clone(),
            (Cred::AppJwt, Auth::App { app_id, key }) => {
                let jwt = octocrab::auth::create_jwt(AppId(*app_id), key).map_err(|e| {
                    GitHubError::Invalid(format!("signing the GitHub App JWT: {e}"))
                })?;
                Secret::new(jwt)
            }
            (Cred::Installation(id), Auth::App { .. }) => self.installation_token(id).await?,
            (cred, _) => {
                return Err(GitHubError::Invalid(format!(
                    "internal: credential {cred:?} does not match the configured auth"
                )));
            }
        };
        let mut value =
            HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
                GitHubError::Invalid(
                    "the GitHub token contains characters not allowed in an HTTP header"
                        .to_string(),
                )
            })?;
        // Keeps the value out of hyper's and http's Debug output.
        value.set_sensitive(true);
        Ok(value)
    }

    /// An installation token, from the cache while it has more than the refresh margin left.
    async fn installation_token(&self, installation_id: u64) -> Result<Secret, GitHubError> {
        let mut cache = self.installation_tokens.lock().await;
        if let Some(cached) = cache.get(&installation_id)
            && cached.fresh(Utc::now())
        {
            return Ok(cached.token.clone());
        }
        let path = format!("/app/installations/{installation_id}/access_tokens");
        // Boxed: this call signs with the App JWT, but the compiler only sees that
        // send_with_retries → auth_header → installation_token → send_with_retries is a cycle.
        let reply = Box::pin(self.send_with_retries(&Method::POST, &path, None, Cred::AppJwt))
            .await
            .map_err(|e| match e {
                GitHubError::NotFound(_) => GitHubError::NotFound(format!(
                    "GitHub App installation {installation_id} does not exist"
                )),
                other => other,
            })?;
        #[derive(Deserialize)]
        struct TokenDto {
            token: String,
            expires_at: String,
        }
        let dto: TokenDto = reply.json(&format!("POST {path}"))?;
        let expires_at = DateTime::parse_from_rfc3339(&dto.expires_at)
            .map_err(|e| {
                GitHubError::Invalid(format!(
                    "POST {path}: `expires_at` {:?} is not a timestamp: {e}",
                    dto.expires_at
                ))
            })?
            .with_timezone(&Utc);
        let token = Secret::new(dto.token);
        tracing::debug!(installation_id, %expires_at, "new GitHub App installation token");
        cache.insert(
            installation_id,
            CachedToken {
                token: token.clone(),
                expires_at,
            },
        );
        Ok(token)
    }

    /// The credential for calls about `repo`: the token, or the token of the App installation
    /// that covers the repository (looked up once, then remembered).
    async fn repo_cred(&self, repo: &RepoName) -> Result<Cred, GitHubError> {
        let path = Self::repo_path(repo, "/installation");
        self.cred_for(repo.full().to_ascii_lowercase(), &path, || {
            format!("the GitHub App is not installed on {repo}")
        })
        .await
    }

    async fn org_cred(&self, org: &str) -> Result<Cred, GitHubError> {
        let path = format!("/orgs/{org}/installation");
        self.cred_for(format!("org:{}", org.to_ascii_lowercase()), &path, || {
            format!("the GitHub App is not installed on the organization {org}")
        })
        .await
    }

    async fn cred_for(
        &self,
        key: String,
        lookup_path: &str,
        not_installed: impl FnOnce() -> String,
    ) -> Result<Cred, GitHubError> {
        if let Auth::Token(_) = self.auth {
            return Ok(Cred::Token);
        }
        let known = self
            .installations
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&key)
            .copied();
        if let Some(id) = known {
            return Ok(Cred::Installation(id));
        }
        let reply = self
            .send(Method::GET, lookup_path, None, Cred::AppJwt)
            .await
            .map_err(|e| match e {
                GitHubError::NotFound(_) => GitHubError::NotFound(not_installed()),
                other => other,
            })?;
        let id = reply.json::<IdDto>(&format!("GET {lookup_path}"))?.id;
        self.installations
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(key, id);
        Ok(Cred::Installation(id))
    }

    /// GETs `first` and every page after it (`Link: <…>; rel="next"`).
    async fn get_all<T: DeserializeOwned>(
        &self,
        first: String,
        cred: Cred,
    ) -> Result<Vec<T>, GitHubError> {
        let mut items = Vec::new();
        let mut next = Some(first);
        let mut pages = 0;
        while let Some(path) = next {
            pages += 1;
            if pages > MAX_PAGES {
                return Err(GitHubError::Invalid(format!(
                    "GET {path}: more than {MAX_PAGES} pages; refusing to follow further"
                )));
            }
            let reply = self.send(Method::GET, &path, None, cred).await?;
            let page: Vec<T> = reply.json(&format!("GET {path}"))?;
            items.extend(page);
            next = next_link(&reply.headers)
                .map(|url| self.relative(&url))
                .transpose()?;
        }
        Ok(items)
    }

    /// The path of an absolute URL GitHub handed us, if it is under our API URL. Anything else
    /// is refused: following it would send our credentials to another host.
    fn relative(&self, url: &str) -> Result<String, GitHubError> {
        match url.strip_prefix(&self.api_url) {
            Some(rest) if rest.starts_with('/') => Ok(rest.to_string()),
            _ => Err(GitHubError::Invalid(format!(
                "pagination link {url} is not under the API URL {}",
                self.api_url
            ))),
        }
    }

    /// `/repos/{owner}/{name}` followed by `rest` (which starts with `/`).
    fn repo_path(repo: &RepoName, rest: &str) -> String {
        format!("/repos/{}/{}{rest}", repo.owner(), repo.name())
    }

    /// One call about `repo` (`rest` is the path below the repository, e.g.
    /// `/issues/1/comments`), sent with the repository's credential ([`Self::repo_cred`]).
    async fn repo_call(
        &self,
        repo: &RepoName,
        method: Method,
        rest: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Reply, GitHubError> {
        let cred = self.repo_cred(repo).await?;
        self.send(method, &Self::repo_path(repo, rest), body.as_ref(), cred)
            .await
    }

    /// POSTs `body` (serialised with serde) below `repo`; the `id` of the object GitHub made.
    async fn repo_create(
        &self,
        repo: &RepoName,
        rest: &str,
        body: &impl serde::Serialize,
    ) -> Result<u64, GitHubError> {
        let path = Self::repo_path(repo, rest);
        let body = serde_json::to_value(body).map_err(|e| invalid_value(&path, e))?;
        let reply = self.repo_call(repo, Method::POST, rest, Some(body)).await?;
        Ok(reply.json::<IdDto>(&format!("POST {path}"))?.id)
    }

    /// Every page of a list below `repo` (`rest` carries the query, e.g. `per_page`).
    async fn repo_list<T: DeserializeOwned>(
        &self,
        repo: &RepoName,
        rest: &str,
    ) -> Result<Vec<T>, GitHubError> {
        let cred = self.repo_cred(repo).await?;
        self.get_all(Self::repo_path(repo, rest), cred).await
    }
}

#[derive(Deserialize)]
struct IdDto {
    id: u64,
}

/// A pull request's number and page, as `POST …/pulls` and `GET …/pulls` return them.
#[derive(Deserialize)]
struct PullLinkDto {
    number: u64,
    html_url: String,
}

impl PullLinkDto {
    fn link(self, what: &str) -> Result<PullLink, GitHubError> {
        Ok(PullLink {
            number: PrNumber::new(self.number).map_err(|e| invalid_value(what, e))?,
            html_url: self.html_url,
        })
    }
}

#[derive(Deserialize)]
struct NumberDto {
    number: u64,
}

/// An issue as the issues API lists it (pull requests appear there too, with `pull_request`).
#[derive(Deserialize)]
struct IssueDto {
    number: u64,
    body: Option<String>,
    pull_request: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct LoginDto {
    login: String,
}

#[derive(Deserialize)]
struct UserDto {
    login: String,
    id: u64,
    #[serde(rename = "type", default)]
    kind: Option<String>,
}

impl UserDto {
    fn actor(self) -> Actor {
        Actor {
            kind: if self.kind.as_deref() == Some("Bot") {
                ActorKind::Bot
            } else {
                ActorKind::Human
            },
            login: self.login,
            id: self.id,
        }
    }
}

#[derive(Deserialize)]
struct ReviewDto {
    id: u64,
    /// `null` for reviews by deleted accounts.
    user: Option<UserDto>,
    state: String,
    commit_id: Option<String>,
    submitted_at: Option<String>,
}

#[derive(Deserialize)]
struct PullDto {
    number: u64,
    state: String,
    #[serde(default)]
    merged: bool,
    #[serde(default)]
    draft: bool,
    mergeable: Option<bool>,
    mergeable_state: Option<String>,
    html_url: String,
    user: Option<UserDto>,
    head: BranchDto,
    base: BranchDto,
    #[serde(default)]
    title: String,
    merge_commit_sha: Option<String>,
}

#[derive(Deserialize)]
struct BranchDto {
    #[serde(rename = "ref")]
    git_ref: String,
    sha: String,
    /// `null` when the (fork) repository was deleted.
    repo: Option<RepoDto>,
}

#[derive(Deserialize)]
struct RepoDto {
    full_name: String,
    clone_url: Option<String>,
}

fn truncate_description(s: &str) -> String {
    if s.chars().count() <= MAX_STATUS_DESCRIPTION {
        return s.to_string();
    }
    let mut out: String = s.chars().take(MAX_STATUS_DESCRIPTION - 1).collect();
    out.push('…');
    out
}

/// Names that go into a URL path unescaped (org, team slug) must be plain GitHub names.
fn path_segment<'a>(s: &'a str, what: &str) -> Result<&'a str, GitHubError> {
    let ok = !s.is_empty()
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(s)
    } else {
        Err(GitHubError::Invalid(format!(
            "{what} `{s}` is not a GitHub name"
        )))
    }
}

const REACTIONS: &[&str] = &[
    "+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes",
];

fn invalid_value(what: &str, e: impl fmt::Display) -> GitHubError {
    GitHubError::Invalid(format!("{what}: {e}"))
}

#[async_trait]
impl GitHubApi for OctocrabGitHub {
    async fn create_comment(
        &self,
        repo: &RepoName,
        pr: PrNumber,
        body: &str,
    ) -> Result<u64, GitHubError> {
        // A POST retried after a 5xx may post twice if GitHub did the work before failing; a
        // duplicate comment is a nuisance, a lost plan result is worse.
        let rest = format!("/issues/{}/comments", pr.get());
        self.repo_create(repo, &rest, &json!({ "body": body }))
            .await
    }

    async fn create_issue(&self, repo: &RepoName, issue: &IssueText) -> Result<u64, GitHubError> {
        let body = json!({ "title": issue.title, "body": issue.body, "labels": issue.labels });
        let reply = self
            .repo_call(repo, Method::POST, "/issues", Some(body))
            .await?;
        let what = format!("POST {}", Self::repo_path(repo, "/issues"));
        Ok(reply.json::<NumberDto>(&what)?.number)
    }

    async fn update_issue(
        &self,
        repo: &RepoName,
        number: u64,
        issue: &IssueText,
        open: bool,
    ) -> Result<(), GitHubError> {
        let body = json!({
            "title": issue.title,
            "body": issue.body,
            "labels": issue.labels,
            "state": if open { "open" } else { "closed" },
        });
        self.repo_call(
            repo,
            Method::PATCH,
            &format!("/issues/{number}"),
            Some(body),
        )
        .await?;
        Ok(())
    }

    async fn open_issues_labelled(
        &self,
        repo: &RepoName,
        label: &str,
    ) -> Result<Vec<(u64, String)>, GitHubError> {
        let rest = format!("/issues?state=open&labels={label}&per_page={PER_PAGE}");
        let dtos: Vec<IssueDto> = self.repo_list(repo, &rest).await?;
        Ok(dtos
            .into_iter()
            .filter(|i| i.pull_request.is_none())
            .map(|i| (i.number, i.body.unwrap_or_default()))
            .collect())
    }

    async fn create_pull(&self, repo: &RepoName, pull: &NewPull) -> Result<PullLink, GitHubError> {
        let body = json!({
            "title": pull.title,
            "body": pull.body,
            "head": pull.head,
            "base": pull.base,
            "maintainer_can_modify": false,
        });
        let reply = self
            .repo_call(repo, Method::POST, "/pulls", Some(body))
            .await?;
        let what = format!("POST {}", Self::repo_path(repo, "/pulls"));
        reply.json::<PullLinkDto>(&what)?.link(&what)
    }

    async fn open_pulls_from(
        &self,
        repo: &RepoName,
        branch: &str,
    ) -> Result<Vec<PullLink>, GitHubError> {
        let rest = format!(
            "/pulls?state=open&head={}:{branch}&per_page={PER_PAGE}",
            repo.owner()
        );
        let what = format!("GET {}", Self::repo_path(repo, &rest));
        let dtos: Vec<PullLinkDto> = self.repo_list(repo, &rest).await?;
        dtos.into_iter().map(|d| d.link(&what)).collect()
    }

    async fn update_comment(
        &self,
        repo: &RepoName,
        comment_id: u64,
        body: &str,
    ) -> Result<(), GitHubError> {
        let rest = format!("/issues/comments/{comment_id}");
        self.repo_call(repo, Method::PATCH, &rest, Some(json!({ "body": body })))
            .await?;
        Ok(())
    }

    async fn set_status(
        &self,
        repo: &RepoName,
        sha: &CommitSha,
        status: &CommitStatus,
    ) -> Result<(), GitHubError> {
        let mut body = json!({
            "state": status.state.as_str(),
            "context": status.context,
            "description": truncate_description(&status.description),
        });
        if let Some(url) = &status.target_url {
            body["target_url"] = json!(url);
        }
        self.repo_call(repo, Method::POST, &format!("/statuses/{sha}"), Some(body))
            .await?;
        Ok(())
    }

    async fn add_reaction(
        &self,
        repo: &RepoName,
        comment_id: u64,
        content: &str,
    ) -> Result<(), GitHubError> {
        if !REACTIONS.contains(&content) {
            return Err(GitHubError::Invalid(format!(
                "`{content}` is not a GitHub reaction (one of {})",
                REACTIONS.join(", ")
            )));
        }
        let rest = format!("/issues/comments/{comment_id}/reactions");
        // 200 (already there) and 201 (added) are both fine.
        self.repo_call(
            repo,
            Method::POST,
            &rest,
            Some(json!({ "content": content })),
        )
        .await?;
        Ok(())
    }

    async fn get_pull(&self, repo: &RepoName, pr: PrNumber) -> Result<PullDetails, GitHubError> {
        let rest = format!("/pulls/{}", pr.get());
        let what = format!("GET {}", Self::repo_path(repo, &rest));
        let reply = self.repo_call(repo, Method::GET, &rest, None).await?;
        let dto: PullDto = reply.json(&what)?;
        let author = dto
            .user
            .ok_or_else(|| GitHubError::Invalid(format!("{what}: the pull request has no author")))?
            .actor();
        let base_full = dto
            .base
            .repo
            .as_ref()
            .map_or_else(|| repo.full(), |r| r.full_name.clone());
        let (from_fork, head_clone_url) = match &dto.head.repo {
            Some(head) => (
                !head.full_name.eq_ignore_ascii_case(&base_full),
                head.clone_url.clone(),
            ),
            // The head repository was deleted: certainly not the base repository.
            None => (true, None),
        };
        Ok(PullDetails {
            number: PrNumber::new(dto.number).map_err(|e| invalid_value(&what, e))?,
            state: if dto.state == "open" {
                PullState::Open
            } else {
                PullState::Closed
            },
            merged: dto.merged,
            draft: dto.draft,
            mergeable: dto.mergeable,
            mergeable_state: MergeableState::parse(dto.mergeable_state.as_deref()),
            html_url: dto.html_url,
            author,
            head_sha: CommitSha::new(&dto.head.sha).map_err(|e| invalid_value(&what, e))?,
            head_ref: dto.head.git_ref,
            head_clone_url,
            base_ref: dto.base.git_ref,
            base_sha: CommitSha::new(&dto.base.sha).map_err(|e| invalid_value(&what, e))?,
            from_fork,
            title: dto.title,
            merge_commit_sha: dto
                .merge_commit_sha
                .as_deref()
                .map(CommitSha::new)
                .transpose()
                .map_err(|e| invalid_value(&what, e))?,
        })
    }

    async fn list_reviews(
        &self,
        repo: &RepoName,
        pr: PrNumber,
    ) -> Result<Vec<Review>, GitHubError> {
        let rest = format!("/pulls/{}/reviews?per_page={PER_PAGE}", pr.get());
        let dtos: Vec<ReviewDto> = self.repo_list(repo, &rest).await?;
        let mut reviews = Vec::with_capacity(dtos.len());
        for dto in dtos {
            // A review by a deleted account, or in a state this version does not know, can
            // never count as an approval; skipping it is safer than failing the whole list.
            let Some(user) = dto.user else {
                tracing::debug!(review = dto.id, "skipping a review without a user");
                continue;
            };
            let Some(state) = ReviewState::parse(&dto.state) else {
                tracing::warn!(review = dto.id, state = %dto.state, "skipping a review in an unknown state");
                continue;
            };
            let commit_id = match dto.commit_id.as_deref() {
                Some(sha) => Some(
                    CommitSha::new(sha)
                        .map_err(|e| invalid_value(&format!("review {}", dto.id), e))?,
                ),
                None => None,
            };
            reviews.push(Review {
                id: dto.id,
                reviewer: user.actor(),
                state,
                commit_id,
                submitted_at: dto.submitted_at,
            });
        }
        Ok(reviews)
    }

    async fn team_members(&self, org: &str, team_slug: &str) -> Result<Vec<String>, GitHubError> {
        let org = path_segment(org, "organization")?;
        let team_slug = path_segment(team_slug, "team")?;
        let cred = self.org_cred(org).await?;
        let path = format!("/orgs/{org}/teams/{team_slug}/members?per_page={PER_PAGE}");
        let members: Vec<LoginDto> = self.get_all(path, cred).await?;
        Ok(members.into_iter().map(|m| m.login).collect())
    }

    async fn bot_login(&self) -> Result<String, GitHubError> {
        match &self.auth {
            Auth::Token(_) => {
                let reply = self.send(Method::GET, "/user", None, Cred::Token).await?;
                Ok(reply.json::<LoginDto>("GET /user")?.login)
            }
            Auth::App { .. } => {
                #[derive(Deserialize)]
                struct AppDto {
                    slug: String,
                }
                let reply = self.send(Method::GET, "/app", None, Cred::AppJwt).await?;
                // Apps comment as `<slug>[bot]`: that is the login their comments carry.
                Ok(format!("{}[bot]", reply.json::<AppDto>("GET /app")?.slug))
            }
        }
    }

    async fn repo_permission(&self, repo: &RepoName, login: &str) -> Result<String, GitHubError> {
        // Logins are letters, digits and hyphens (apps add `[bot]`): anything else is not one.
        if login.is_empty() || !login.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Ok("none".to_string());
        }
        #[derive(Deserialize)]
        struct PermissionDto {
            permission: String,
        }
        let rest = format!("/collaborators/{login}/permission");
        match self.repo_call(repo, Method::GET, &rest, None).await {
            Ok(reply) => Ok(reply
                .json::<PermissionDto>("GET …/collaborators/{login}/permission")?
                .permission),
            Err(GitHubError::NotFound(_)) => Ok("none".to_string()),
            Err(e) => Err(e),
        }
    }

    async fn list_pull_files(
        &self,
        repo: &RepoName,
        pr: PrNumber,
    ) -> Result<Vec<PrFile>, GitHubError> {
        self.repo_list(
            repo,
            &format!("/pulls/{}/files?per_page={PER_PAGE}", pr.get()),
        )
        .await
    }

    async fn create_review(
        &self,
        repo: &RepoName,
        pr: PrNumber,
        review: &CreateReview,
    ) -> Result<PostedReviewIds, GitHubError> {
        let rest = format!("/pulls/{}/reviews", pr.get());
        let review_id = self.repo_create(repo, &rest, review).await?;
        let comments: Vec<IdDto> = self
            .repo_list(
                repo,
                &format!("{rest}/{review_id}/comments?per_page={PER_PAGE}"),
            )
            .await?;
        Ok(PostedReviewIds {
            review_id,
            comment_ids: comments.into_iter().map(|c| c.id).collect(),
        })
    }

    async fn update_review(
        &self,
        repo: &RepoName,
        pr: PrNumber,
        review_id: u64,
        body: &str,
    ) -> Result<(), GitHubError> {
        let rest = format!("/pulls/{}/reviews/{review_id}", pr.get());
        self.repo_call(repo, Method::PUT, &rest, Some(json!({ "body": body })))
            .await?;
        Ok(())
    }

    async fn create_review_comment(
        &self,
        repo: &RepoName,
        pr: PrNumber,
        comment: &CreateReviewComment,
    ) -> Result<u64, GitHubError> {
        self.repo_create(repo, &format!("/pulls/{}/comments", pr.get()), comment)
            .await
    }

    async fn update_review_comment(
        &self,
        repo: &RepoName,
        comment_id: u64,
        body: &str,
    ) -> Result<(), GitHubError> {
        let rest = format!("/pulls/comments/{comment_id}");
        self.repo_call(repo, Method::PATCH, &rest, Some(json!({ "body": body })))
            .await?;
        Ok(())
    }

    async fn create_check_run(
        &self,
        repo: &RepoName,
        check: &CreateCheckRun,
    ) -> Result<u64, GitHubError> {
        self.repo_create(repo, "/check-runs", check).await
    }

    async fn update_check_run(
        &self,
        repo: &RepoName,
        check_run_id: u64,
        update: &UpdateCheckRun,
    ) -> Result<(), GitHubError> {
        let path = Self::repo_path(repo, &format!("/check-runs/{check_run_id}"));
        let body = serde_json::to_value(update).map_err(|e| invalid_value(&path, e))?;
        self.repo_call(
            repo,
            Method::PATCH,
            &format!("/check-runs/{check_run_id}"),
            Some(body),
        )
        .await?;
        Ok(())
    }

    fn is_app(&self) -> bool {
        matches!(self.auth, Auth::App { .. })
    }

    async fn clone_token(
        &self,
        installation_id: Option<u64>,
    ) -> Result<Option<Secret>, GitHubError> {
        match (&self.auth, installation_id) {
            (Auth::Token(token), _) => Ok(Some(token.clone())),
            (Auth::App { .. }, Some(id)) => Ok(Some(self.installation_token(id).await?)),
            (Auth::App { .. }, None) => Ok(None),
        }
    }

    async fn compare_files(
        &self,
        repo: &RepoName,
        base: &CommitSha,
        head: &CommitSha,
    ) -> Result<Vec<PrFile>, GitHubError> {
        #[derive(serde::Deserialize)]
        struct CompareDto {
            #[serde(default)]
            files: Vec<PrFile>,
        }
        // The files are listed on the first page only; one commit per page keeps it small.
        let rest = format!("/compare/{base}...{head}?per_page=1");
        let reply = self.repo_call(repo, Method::GET, &rest, None).await?;
        let what = format!("GET {}", Self::repo_path(repo, &rest));
        Ok(reply.json::<CompareDto>(&what)?.files)
    }

    async fn merge_pull(
        &self,
        repo: &RepoName,
        pr: PrNumber,
        method: crate::app::ports::github::MergeMethod,
        sha: &CommitSha,
    ) -> Result<CommitSha, GitHubError> {
        #[derive(serde::Deserialize)]
        struct MergedDto {
            sha: String,
        }
        let rest = format!("/pulls/{}/merge", pr.get());
        let body = json!({ "merge_method": method.as_str(), "sha": sha.as_str() });
        let reply = self.repo_call(repo, Method::PUT, &rest, Some(body)).await?;
        let what = format!("PUT {}", Self::repo_path(repo, &rest));
        let dto: MergedDto = reply.json(&what)?;
        CommitSha::new(&dto.sha).map_err(|e| invalid_value(&what, e))
    }
}

/// Counts a call in `/metrics` (`sluice_github_requests_total` by result) and keeps the
/// rate-limit headroom GitHub reported (`sluice_github_rate_limit_remaining` by resource).
fn record_call<E>(answer: &Result<Result<Reply, E>, tokio::time::error::Elapsed>) {
    let result = match answer {
        Ok(Ok(r)) if r.status.is_success() => "ok",
        Ok(Ok(r))
            if r.status.as_u16() == 429
                || (r.status.as_u16() == 403
                    && r.headers
                        .get("x-ratelimit-remaining")
                        .is_some_and(|v| v.as_bytes() == b"0")) =>
        {
            "rate_limited"
        }
        Ok(Ok(r)) if r.status.is_server_error() => "server_error",
        Ok(Ok(_)) => "client_error",
        _ => "network_error",
    };
    crate::adapters::metrics::inc("sluice_github_requests_total", &[("result", result)]);
    if let Ok(Ok(r)) = answer {
        let header = |n: &str| r.headers.get(n).and_then(|v| v.to_str().ok());
        if let Some(remaining) = header("x-ratelimit-remaining").and_then(|v| v.parse::<f64>().ok())
        {
            let resource = header("x-ratelimit-resource").unwrap_or("core");
            crate::adapters::metrics::set(
                "sluice_github_rate_limit_remaining",
                &[("resource", resource)],
                remaining,
            );
        }
    }
}

/// Sorts a non-2xx answer into "give up now" or "try again".
fn classify(method: &Method, path: &str, reply: &Reply) -> Verdict {
    let message = error_message(&reply.body);
    let what = format!("{method} {path}: {message}");
    let status = reply.status;
    match status.as_u16() {
        401 => Verdict::Fail(GitHubError::Unauthorized(what)),
        404 => Verdict::Fail(GitHubError::NotFound(what)),
        403 | 429 => {
            // 403 is also how GitHub says "rate limited" (primary and secondary limits); only
            // those are worth waiting for, a real permission problem will not go away.
            let limited = status == StatusCode::TOO_MANY_REQUESTS
                || reply.headers.contains_key("retry-after")
                || header_str(&reply.headers, "x-ratelimit-remaining") == Some("0")
                || message.to_ascii_lowercase().contains("rate limit");
            if limited {
                Verdict::Retry {
                    error: GitHubError::RateLimited {
                        retry_after: Duration::ZERO,
                    },
                    wait: server_wait(&reply.headers, Utc::now()),
                }
            } else {
                Verdict::Fail(GitHubError::Forbidden(what))
            }
        }
        500..=599 => Verdict::Retry {
            error: GitHubError::Server {
                status: status.as_u16(),
                message: what,
            },
            wait: server_wait(&reply.headers, Utc::now()),
        },
        // GitHub says which field it refused in `errors`, not `message`: keep the answer.
        422 => Verdict::Fail(GitHubError::Unprocessable(format!(
            "{method} {path}: {}",
            reply.body.chars().take(2_000).collect::<String>()
        ))),
        _ => Verdict::Fail(GitHubError::Invalid(format!(
            "{method} {path} answered {status}: {message}"
        ))),
    }
}

/// How long the server asked us to wait: `Retry-After` (seconds), else, when the primary limit
/// is used up, until `X-RateLimit-Reset` (epoch seconds) plus a second for clock skew.
fn server_wait(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    if let Some(secs) =
        header_str(headers, "retry-after").and_then(|v| v.trim().parse::<u64>().ok())
    {
        return Some(Duration::from_secs(secs));
    }
    if header_str(headers, "x-ratelimit-remaining") == Some("0") {
        let reset = header_str(headers, "x-ratelimit-reset")?
            .trim()
            .parse::<i64>()
            .ok()?;
        let secs = (reset - now.timestamp()).max(0) as u64 + 1;
        return Some(Duration::from_secs(secs));
    }
    None
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// GitHub's `{"message": …}`, or the start of whatever else came back.
fn error_message(body: &str) -> String {
    #[derive(Deserialize)]
    struct ErrorDto {
        message: String,
    }
    match serde_json::from_str::<ErrorDto>(body) {
        Ok(e) => e.message,
        Err(_) if body.trim().is_empty() => "(empty body)".to_string(),
        Err(_) => body.chars().take(200).collect(),
    }
}

/// The `rel="next"` URL of a `Link` header (RFC 8288, as GitHub writes it).
fn next_link(headers: &HeaderMap) -> Option<String> {
    let link = header_str(headers, "link")?;
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"");
        let url = url.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next.then(|| url.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn reply(status: u16, hdrs: &[(&'static str, &str)], body: &str) -> Reply {
        Reply {
            status: StatusCode::from_u16(status).unwrap(),
            headers: headers(hdrs),
            body: body.to_string(),
        }
    }

    #[test]
    fn description_is_cut_to_140_characters() {
        assert_eq!(truncate_description("short"), "short");
        let exact = "é".repeat(140);
        assert_eq!(truncate_description(&exact), exact);
        let long = "x".repeat(200);
        let cut = truncate_description(&long);
        assert_eq!(cut.chars().count(), 140);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn next_link_is_found() {
        let h = headers(&[(
            "link",
            r#"<https://api.github.com/repositories/1/pulls/2/reviews?per_page=100&page=2>; rel="next", <https://api.github.com/repositories/1/pulls/2/reviews?per_page=100&page=3>; rel="last""#,
        )]);
        assert_eq!(
            next_link(&h).as_deref(),
            Some("https://api.github.com/repositories/1/pulls/2/reviews?per_page=100&page=2")
        );
        let last_page = headers(&[(
            "link",
            r#"<https://x/y?page=1>; rel="first", <https://x/y?page=1>; rel="prev""#,
        )]);
        assert_eq!(next_link(&last_page), None);
        assert_eq!(next_link(&HeaderMap::new()), None);
    }

    #[test]
    fn waits_come_from_the_headers() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            server_wait(&headers(&[("retry-after", "7")]), now),
            Some(Duration::from_secs(7))
        );
        let reset = (now.timestamp() + 30).to_string();
        assert_eq!(
            server_wait(
                &headers(&[
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", &reset)
                ]),
                now
            ),
            Some(Duration::from_secs(31))
        );
        // A reset in the past still waits a second rather than hammering.
        let past = (now.timestamp() - 30).to_string();
        assert_eq!(
            server_wait(
                &headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", &past)]),
                now
            ),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            server_wait(&headers(&[("x-ratelimit-remaining", "12")]), now),
            None
        );
    }

    #[test]
    fn statuses_are_classified() {
        let get = Method::GET;
        let kind = |r: Reply| match classify(&get, "/x", &r) {
            Verdict::Fail(e) => format!("fail {e:?}"),
            Verdict::Retry { error, wait } => format!("retry {error:?} {wait:?}"),
        };
        assert_eq!(
            kind(reply(404, &[], r#"{"message":"Not Found"}"#)),
            r#"fail NotFound("GET /x: Not Found")"#
        );
        assert_eq!(
            kind(reply(401, &[], r#"{"message":"Bad credentials"}"#)),
            r#"fail Unauthorized("GET /x: Bad credentials")"#
        );
        assert_eq!(
            kind(reply(
                403,
                &[],
                r#"{"message":"Resource not accessible by integration"}"#
            )),
            r#"fail Forbidden("GET /x: Resource not accessible by integration")"#
        );
        assert_eq!(
            kind(reply(403, &[("retry-after", "3")], r#"{"message":"x"}"#)),
            "retry RateLimited { retry_after: 0ns } Some(3s)"
        );
        assert_eq!(
            kind(reply(
                403,
                &[],
                r#"{"message":"You have exceeded a secondary rate limit."}"#
            )),
            "retry RateLimited { retry_after: 0ns } None"
        );
        assert_eq!(
            kind(reply(429, &[], "")),
            "retry RateLimited { retry_after: 0ns } None"
        );
        assert_eq!(
            kind(reply(502, &[], "<html>bad gateway</html>")),
            r#"retry Server { status: 502, message: "GET /x: <html>bad gateway</html>" } None"#
        );
        assert_eq!(
            kind(reply(422, &[], r#"{"message":"Validation Failed"}"#)),
            r#"fail Unprocessable("GET /x: {\"message\":\"Validation Failed\"}")"#
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            max_wait: Duration::from_secs(60),
        };
        for _ in 0..50 {
            let b1 = p.backoff(1);
            assert!(b1 >= Duration::from_millis(50) && b1 <= Duration::from_millis(100));
            let b3 = p.backoff(3);
            assert!(b3 >= Duration::from_millis(200) && b3 <= Duration::from_millis(400));
            let b30 = p.backoff(30);
            assert!(b30 >= Duration::from_millis(500) && b30 <= Duration::from_secs(1));
        }
    }

    #[tokio::test]
    async fn pagination_never_leaves_the_api_url() {
        let gh = OctocrabGitHub::new(GitHubConfig::new(
            "https://ghe.example.com/api/v3",
            GitHubAuth::Token(Secret::new("t")),
        ))
        .unwrap();
        assert_eq!(
            gh.relative("https://ghe.example.com/api/v3/repositories/1/pulls/2/reviews?page=2")
                .unwrap(),
            "/repositories/1/pulls/2/reviews?page=2"
        );
        for foreign in [
            "https://evil.example.com/api/v3/repositories/1?page=2",
            "https://ghe.example.com/api/v3.evil.example.com/x",
            "http://ghe.example.com/api/v3/repositories/1",
        ] {
            assert!(gh.relative(foreign).is_err(), "{foreign}");
        }
    }

    #[test]
    fn names_in_paths_are_checked() {
        assert!(path_segment("platform-team", "team").is_ok());
        for bad in ["", "..", "a/b", "a?b", "a b", "%2e"] {
            assert!(path_segment(bad, "team").is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn config_and_debug_hide_secrets() {
        let config = GitHubConfig::new(
            "http://127.0.0.1:1/",
            GitHubAuth::Token(Secret::new("ghp_very_secret")),
        );
        assert!(!format!("{config:?}").contains("ghp_very_secret"));
        let client = OctocrabGitHub::new(config).unwrap();
        let dbg = format!("{client:?}");
        assert!(!dbg.contains("ghp_very_secret"), "{dbg}");
        assert!(
            dbg.contains("http://127.0.0.1:1\""),
            "trailing slash trimmed: {dbg}"
        );

        let err = OctocrabGitHub::new(GitHubConfig::new(
            "http://127.0.0.1:1",
            GitHubAuth::App {
                app_id: 1,
                key_pem: Secret::new("-----BEGIN RSA PRIVATE KEY-----\nnope\n"),
            },
        ))
        .unwrap_err();
        assert!(matches!(err, GitHubError::Invalid(_)), "{err:?}");
        assert!(!err.to_string().contains("nope"), "{err}");

        let err = OctocrabGitHub::new(GitHubConfig::new(
            "api.github.com",
            GitHubAuth::Token(Secret::new("t")),
        ))
        .unwrap_err();
        assert!(err.to_string().contains("must be absolute"), "{err}");
    }

    #[tokio::test]
    async fn settings_choose_the_auth() {
        use std::collections::HashMap as Map;
        let load = |pairs: &[(&str, &str)]| {
            let env: Map<String, String> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            Settings::load_from(&env, &crate::config::Overrides::default()).unwrap()
        };
        let s = load(&[("SLUICE_GITHUB_TOKEN", "ghp_x")]);
        let c = GitHubConfig::from_settings(&s).unwrap();
        assert!(matches!(c.auth, GitHubAuth::Token(_)));
        assert_eq!(c.api_url, "https://api.github.com");

        let err = GitHubConfig::from_settings(&load(&[])).unwrap_err();
        assert!(err.to_string().contains("no GitHub credentials"), "{err}");

        let key = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/github-app/test-app.private-key.pem"
        );
        let s = load(&[
            ("SLUICE_GITHUB_APP_ID", "42"),
            ("SLUICE_GITHUB_APP_KEY_FILE", key),
        ]);
        let c = GitHubConfig::from_settings(&s).unwrap();
        assert!(matches!(c.auth, GitHubAuth::App { app_id: 42, .. }));
        assert!(OctocrabGitHub::new(c).is_ok());

        let s = load(&[
            ("SLUICE_GITHUB_APP_ID", "42"),
            ("SLUICE_GITHUB_APP_KEY_FILE", "/nonexistent/key.pem"),
        ]);
        let err = GitHubConfig::from_settings(&s).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/key.pem"), "{err}");
    }
}
