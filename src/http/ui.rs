//! The operator's web UI on `sluice serve` (PRODUCT.md §16): login with GitHub, the pages, and
//! the forms that change state. The rules (who is asking, what they may see and do, how pages
//! look) are `core::ui`'s; this module reads the request, asks the store and GitHub, and answers.
//!
//! Fail closed, in this order for every page: [`Ui::viewer`] authenticates (the API token, a
//! signed session cookie, or the dev flag) — a missing or expired session goes to the login
//! page, a forged one gets 401, and with no login configured every page is the "how to
//! configure login" page, naming nothing of repositories or the host. Then every repository's
//! things are shown only to viewers GitHub lets read it ([`Ui::decide`]: cached permissions,
//! re-checked when old, 404 — never 403 — for a repository the viewer cannot read). Every
//! `POST` passes `access::check_post` (same origin and the CSRF token of its form and session)
//! before anything is done, and what it does is audited under the viewer's login.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use crate::app::ports::GitHubApi;
use crate::config::{Secret, Settings};
use crate::core::lock::LockKey;
use crate::core::types::{ProjectDir, RepoName, Workspace};
use crate::core::ui::access::{
    self, Admins, AuthConfig, Authenticated, CachedPermission, Credentials, Decision, Freshness,
    Permission, PostRequest, Principal, Role, UiAction,
};
use crate::core::ui::oauth::{self, OAuthClient};
use crate::core::ui::pages::{self, Chrome, Forms, routes};
use crate::core::ui::session::{
    self, CookieSettings, Session, SessionId, UiKeys, clear_cookie, session_cookie,
    session_cookie_name,
};

/// Everything the UI needs, built once from the settings.
pub struct Ui {
    /// From `ui.session_secret`; `None` when login with GitHub is not configured.
    keys: Option<UiKeys>,
    /// Keys for the CSRF tokens of requests without a session (the API token, the dev flag):
    /// drawn at start when no session secret is configured.
    fallback_keys: UiKeys,
    oauth: Option<(OAuthClient, Secret)>,
    api_url: String,
    github_web: String,
    api_token: Option<Secret>,
    cookies: CookieSettings,
    insecure_no_auth: bool,
    admins: Admins,
    session_ttl_ms: i64,
    /// `scheme://host[:port]` of `public_url`; `None` without one.
    public_origin: Option<String>,
    /// Asked for permissions and team memberships; `None`: nobody but admins sees anything.
    github: Option<Arc<dyn GitHubApi>>,
    freshness: Freshness,
    /// `(login, repo)` → permission, both lowercase.
    permissions: Mutex<HashMap<(String, String), CachedPermission>>,
    /// `login` → (member of an admin team, checked at ms).
    admin_teams: Mutex<HashMap<String, (bool, i64)>>,
    http: reqwest::Client,
    /// `/metrics` needs the API token.
    pub metrics_require_token: bool,
    /// Wakes the outbox deliverer after a form queued a comment (a released lock tells its PR).
    pub outbox_ready: Option<Arc<tokio::sync::Notify>>,
    /// Where jobs' logs are stored; `None`: log pages are 404.
    pub job_logs: Option<Arc<dyn crate::app::ports::job_log::JobLogStore>>,
    /// `ui.log_retention_days` in ms (0: forever).
    log_retention_ms: i64,
    /// Takes drift `ack` and `accept` from the drift page; `None` (drift detection off): the
    /// forms answer 409.
    pub drift_service: Option<Arc<crate::app::drift::DriftService>>,
}

impl std::fmt::Debug for Ui {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ui")
            .field("login", &self.keys.is_some())
            .field("insecure_no_auth", &self.insecure_no_auth)
            .finish_non_exhaustive()
    }
}

fn random16() -> [u8; 16] {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the OS random source is available");
    b
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next()?;
    (!host.is_empty()).then(|| format!("{}://{}", scheme.to_ascii_lowercase(), host))
}

fn now_ms() -> i64 {
    crate::adapters::clock::now().get()
}

impl Ui {
    /// The UI as the settings configure it; an error names the setting at fault.
    pub fn from_settings(
        settings: &Settings,
        github: Option<Arc<dyn GitHubApi>>,
    ) -> anyhow::Result<Ui> {
        let ui = &settings.ui;
        let keys = match &ui.session_secret {
            Some(s) if ui.login_configured() => Some(
                UiKeys::derive(s.expose().as_bytes())
                    .map_err(|e| anyhow::anyhow!("ui.session_secret: {e}"))?,
            ),
            _ => None,
        };
        let public_url = settings.public_url.clone();
        if keys.is_some() && public_url.is_none() {
            anyhow::bail!(
                "login with GitHub needs public_url (SLUICE_PUBLIC_URL): GitHub sends users back to <public_url>/login/callback"
            );
        }
        let github_web = ui
            .github_web_url
            .clone()
            .unwrap_or_else(|| oauth::web_url_from_api_url(&settings.github_api_url));
        let oauth = match (&ui.oauth_client_id, &ui.oauth_client_secret, &public_url) {
            (Some(id), Some(secret), Some(public)) if keys.is_some() => Some((
                OAuthClient {
                    web_url: github_web.clone(),
                    client_id: id.clone(),
                    redirect_uri: oauth::callback_url(public),
                },
                secret.clone(),
            )),
            _ => None,
        };
        let mut fallback = [0u8; 32];
        getrandom::fill(&mut fallback).expect("the OS random source is available");
        let admins = Admins::parse(&ui.admins).map_err(|e| anyhow::anyhow!("{}", e.join("; ")))?;
        Ok(Ui {
            keys,
            fallback_keys: UiKeys::derive(&fallback).expect("32 bytes"),
            oauth,
            api_url: settings.github_api_url.trim_end_matches('/').to_string(),
            github_web,
            api_token: settings.api_token.clone(),
            // `Secure` unless the UI is served over plain HTTP for development.
            cookies: CookieSettings {
                secure: !public_url
                    .as_deref()
                    .is_some_and(|u| u.to_ascii_lowercase().starts_with("http://")),
            },
            insecure_no_auth: settings.insecure_ui_no_auth,
            admins,
            session_ttl_ms: i64::try_from(ui.session_ttl_secs.saturating_mul(1000))
                .unwrap_or(i64::MAX),
            public_origin: public_url.as_deref().and_then(origin_of),
            github,
            freshness: Freshness::default(),
            permissions: Mutex::default(),
            admin_teams: Mutex::default(),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(20))
                .build()?,
            metrics_require_token: ui.metrics_require_token,
            outbox_ready: None,
            job_logs: None,
            log_retention_ms: i64::try_from(ui.log_retention_days.saturating_mul(86_400_000))
                .unwrap_or(i64::MAX),
            drift_service: None,
        })
    }

    /// A UI with nothing configured (every page explains how to configure login); for tests
    /// that build the router by hand.
    pub fn disabled() -> Ui {
        Ui::from_settings(
            &Settings::load_from(&HashMap::new(), &Default::default())
                .expect("the default settings load"),
            None,
        )
        .expect("the default settings build a UI")
    }

    /// Whether a page may be shown at all (login configured, or the dev flag, or a token).
    pub fn login_configured(&self) -> bool {
        self.keys.is_some()
    }

    fn keys(&self) -> &UiKeys {
        self.keys.as_ref().unwrap_or(&self.fallback_keys)
    }

    fn auth_config(&self) -> AuthConfig<'_> {
        AuthConfig {
            api_token: self.api_token.as_ref().map(|s| s.expose()),
            keys: self.keys.as_ref(),
            cookies: self.cookies,
            insecure_no_auth: self.insecure_no_auth,
        }
    }

    /// Who is asking, or the answer to give instead (see the module docs).
    pub async fn viewer(&self, headers: &HeaderMap, uri: &Uri) -> Result<Viewer, Response> {
        let creds = Credentials {
            authorization: header_str(headers, header::AUTHORIZATION),
            cookie: header_str(headers, header::COOKIE),
        };
        match access::authenticate(&self.auth_config(), &creds, now_ms()) {
            Authenticated::Principal(p) => {
                let in_team = match &p {
                    Principal::User(s) => self.in_admin_team(&s.login).await,
                    _ => false,
                };
                let role = access::role(&p, &self.admins, in_team);
                Ok(Viewer { principal: p, role })
            }
            Authenticated::LoginRequired { clear_cookie } => {
                let return_to = uri.path_and_query().map_or("/", |p| p.as_str());
                let location = format!(
                    "{}?{}",
                    routes::LOGIN,
                    form_urlencoded::Serializer::new(String::new())
                        .append_pair("return_to", return_to)
                        .finish()
                );
                let mut r = (
                    StatusCode::SEE_OTHER,
                    [(header::LOCATION, location)],
                    "log in first\n",
                )
                    .into_response();
                if clear_cookie {
                    self.clear_session(&mut r);
                }
                Err(r)
            }
            Authenticated::Unauthorized { clear_cookie } => {
                let mut r = page(
                    StatusCode::UNAUTHORIZED,
                    pages::error_page(
                        401,
                        "Your credentials were not accepted. Log in again, or check the API token.",
                    ),
                );
                if creds.authorization.is_some() {
                    r.headers_mut()
                        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                }
                if clear_cookie {
                    self.clear_session(&mut r);
                }
                Err(r)
            }
            Authenticated::NotConfigured => Err(page(StatusCode::OK, pages::not_configured_page())),
        }
    }

    fn clear_session(&self, r: &mut Response) {
        if let Ok(v) = HeaderValue::from_str(&clear_cookie(
            session_cookie_name(self.cookies.secure),
            self.cookies,
        )) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }

    /// What every page around its content needs, for `viewer`.
    pub fn chrome(&self, viewer: &Viewer) -> Chrome {
        let id = match &viewer.principal {
            Principal::User(s) => s.id,
            _ => SessionId::DEV,
        };
        Chrome {
            viewer: viewer.principal.display_login().to_string(),
            admin: viewer.role == Role::Admin,
            can_logout: matches!(viewer.principal, Principal::User(_)),
            forms: Forms::new(self.keys(), &id),
            github_web: self.github_web.clone(),
            insecure_no_auth: self.insecure_no_auth,
        }
    }

    async fn in_admin_team(&self, login: &str) -> bool {
        if self.admins.teams().is_empty() {
            return false;
        }
        let key = login.to_ascii_lowercase();
        let now = now_ms();
        if let Some((member, at)) = self.lock_teams().get(&key).copied()
            && now - at < self.freshness.read_ttl_ms
        {
            return member;
        }
        let Some(gh) = &self.github else {
            return false;
        };
        let mut member = false;
        for (org, slug) in self.admins.teams() {
            match gh.team_members(org, slug).await {
                Ok(members) => {
                    if members.iter().any(|m| m.eq_ignore_ascii_case(login)) {
                        member = true;
                        break;
                    }
                }
                Err(e) => tracing::warn!(%org, %slug, error = %e, "reading an admin team failed"),
            }
        }
        self.lock_teams().insert(key, (member, now));
        member
    }

    fn lock_teams(&self) -> std::sync::MutexGuard<'_, HashMap<String, (bool, i64)>> {
        self.admin_teams.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_permissions(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(String, String), CachedPermission>> {
        self.permissions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `viewer` may do `action` on `repo`: cached, re-asked of GitHub when the cached
    /// answer is too old for the action; a repository GitHub says nothing about is `NotFound`.
    pub async fn decide(&self, viewer: &Viewer, repo: &str, action: UiAction) -> Decision {
        let Principal::User(s) = &viewer.principal else {
            return access::authorize(viewer.role, action, None, true, self.freshness, 0);
        };
        let key = (s.login.to_ascii_lowercase(), repo.to_ascii_lowercase());
        let now = now_ms();
        let cached = self.lock_permissions().get(&key).copied();
        match access::authorize(viewer.role, action, cached, false, self.freshness, now) {
            Decision::Recheck => {}
            d => return d,
        }
        let fetched = self.fetch_permission(repo, &s.login).await.map(|p| {
            let c = CachedPermission {
                permission: p,
                checked_at_ms: now,
            };
            self.lock_permissions().insert(key, c);
            c
        });
        access::authorize(viewer.role, action, fetched, true, self.freshness, now)
    }

    async fn fetch_permission(&self, repo: &str, login: &str) -> Option<Permission> {
        let gh = self.github.as_ref()?;
        let repo = RepoName::parse(repo).ok()?;
        match gh.repo_permission(&repo, login).await {
            Ok(permission) => Some(Permission::from_github(&permission, None)),
            // Not a collaborator (or no such repository): nothing to see.
            Err(crate::app::ports::GitHubError::NotFound(_)) => Some(Permission::None),
            Err(e) => {
                tracing::warn!(%repo, %login, error = %e, "reading a permission failed");
                None
            }
        }
    }

    /// Of `repos`, the ones `viewer` may read (order kept).
    pub async fn readable(&self, viewer: &Viewer, repos: BTreeSet<String>) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for r in repos {
            if self.decide(viewer, &r, UiAction::Read).await == Decision::Allow {
                out.insert(r);
            }
        }
        out
    }

    /// The checks of a state-changing request (module docs) for the form posted to `action`.
    pub fn check_post(
        &self,
        viewer: &Viewer,
        headers: &HeaderMap,
        action: &str,
        csrf: Option<&str>,
    ) -> Result<(), Box<Response>> {
        let host_origin = header_str(headers, header::HOST).map(|h| {
            format!(
                "{}://{h}",
                if self.cookies.secure { "https" } else { "http" }
            )
        });
        let origin = self
            .public_origin
            .clone()
            .or(host_origin)
            .unwrap_or_default();
        let req = PostRequest {
            action,
            csrf,
            origin: header_str(headers, header::ORIGIN),
            sec_fetch_site: headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()),
        };
        access::check_post(&viewer.principal, self.keys(), &req, &origin).map_err(|e| {
            Box::new(page(
                StatusCode::FORBIDDEN,
                pages::error_page(403, &e.to_string()),
            ))
        })
    }
}

/// An authenticated viewer.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub principal: Principal,
    pub role: Role,
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// An HTML page with the headers every UI page carries.
fn page(status: StatusCode, html: String) -> Response {
    let mut r = (status, Html(html)).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self' https: http:; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    r
}

fn not_found() -> Response {
    page(
        StatusCode::NOT_FOUND,
        pages::error_page(404, "There is no such page, or you cannot see it."),
    )
}

fn internal(e: &anyhow::Error, what: &str) -> Response {
    tracing::error!(error = %format!("{e:#}"), "{what}");
    page(
        StatusCode::INTERNAL_SERVER_ERROR,
        pages::error_page(500, "Something went wrong; the server's log says what."),
    )
}

fn redirect(to: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, to.to_string())],
        "",
    )
        .into_response()
}

fn utc(ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Login

#[derive(Debug, Deserialize)]
pub struct ReturnTo {
    return_to: Option<String>,
}

/// `GET /login`: the login page (or how to configure login).
pub async fn login(State(state): State<Arc<AppState>>, Query(q): Query<ReturnTo>) -> Response {
    if state.ui.oauth.is_none() {
        return page(StatusCode::OK, pages::not_configured_page());
    }
    let to = oauth::safe_return_to(q.return_to.as_deref().unwrap_or("/"));
    page(
        StatusCode::OK,
        pages::login_page(&pages::login_start_href(&to), None),
    )
}

/// `GET /login/start`: binds a new login to this browser and sends it to GitHub.
pub async fn login_start(
    State(state): State<Arc<AppState>>,
    Query(q): Query<ReturnTo>,
) -> Response {
    let ui = &state.ui;
    let (Some((client, _)), Some(keys)) = (&ui.oauth, &ui.keys) else {
        return page(StatusCode::OK, pages::not_configured_page());
    };
    let start = oauth::begin_login(
        keys,
        random16(),
        q.return_to.as_deref().unwrap_or("/"),
        now_ms(),
    );
    let cookie = session::set_cookie(
        oauth::oauth_cookie_name(ui.cookies.secure),
        &start.cookie_value,
        oauth::STATE_TTL_MS / 1000,
        ui.cookies,
    );
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, oauth::authorize_url(client, &start.state)),
            (header::SET_COOKIE, cookie),
        ],
        "",
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /login/callback`: checks GitHub's answer, asks who logged in, starts a session.
pub async fn login_callback(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<Callback>,
) -> Response {
    let ui = &state.ui;
    let (Some((client, secret)), Some(keys)) = (&ui.oauth, &ui.keys) else {
        return page(StatusCode::OK, pages::not_configured_page());
    };
    let refuse = |msg: &str| {
        page(
            StatusCode::BAD_REQUEST,
            pages::login_page(&pages::login_start_href("/"), Some(msg)),
        )
    };
    if q.error.is_some() {
        return refuse("GitHub did not complete the login; start it again.");
    }
    let nonce = session::cookie_value(
        header_str(&headers, header::COOKIE).unwrap_or(""),
        oauth::oauth_cookie_name(ui.cookies.secure),
    );
    let return_to = match oauth::finish_login(keys, q.state.as_deref(), nonce, now_ms()) {
        Ok(r) => r,
        Err(e) => return refuse(&e.to_string()),
    };
    let request =
        match oauth::token_request(client, secret.expose(), q.code.as_deref().unwrap_or("")) {
            Ok(r) => r,
            Err(e) => return refuse(&e.to_string()),
        };
    let user = match exchange(ui, &request).await {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "login with GitHub failed");
            return refuse(&match e.downcast_ref::<oauth::OAuthError>() {
                Some(o) => o.to_string(),
                None => "GitHub could not be reached to complete the login; try again.".into(),
            });
        }
    };
    let now = now_ms();
    let s = Session::new(
        &user.login,
        user.id,
        SessionId::from_bytes(random16()),
        now,
        ui.session_ttl_ms,
    );
    tracing::info!(login = %user.login, "logged in to the web UI");
    let mut r = redirect(&return_to);
    for c in [
        session_cookie(keys, &s, now, ui.cookies),
        clear_cookie(oauth::oauth_cookie_name(ui.cookies.secure), ui.cookies),
    ] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    r
}

/// The token exchange and `GET /user`; the user's token is dropped afterwards.
async fn exchange(ui: &Ui, req: &oauth::TokenRequest) -> anyhow::Result<oauth::GitHubUser> {
    let body = ui
        .http
        .post(&req.url)
        .header(header::ACCEPT, oauth::TokenRequest::ACCEPT)
        .header(header::CONTENT_TYPE, oauth::TokenRequest::CONTENT_TYPE)
        .body(req.body.clone())
        .send()
        .await?
        .text()
        .await?;
    let token = oauth::parse_token_response(&body)?;
    let reply = ui
        .http
        .get(format!("{}/user", ui.api_url))
        .header(header::ACCEPT, "application/vnd.github+json")
        .header(header::USER_AGENT, "sluice")
        .bearer_auth(token.expose())
        .send()
        .await?;
    if !reply.status().is_success() {
        return Err(oauth::OAuthError::Refused {
            error: format!("user_{}", reply.status().as_u16()),
        }
        .into());
    }
    Ok(oauth::parse_user(&reply.text().await?)?)
}

#[derive(Debug, Deserialize)]
pub struct CsrfOnly {
    csrf: Option<String>,
}

/// `POST /logout`.
pub async fn logout(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
    Form(f): Form<CsrfOnly>,
) -> Response {
    let viewer = match state.ui.viewer(&headers, &uri).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Err(r) = state
        .ui
        .check_post(&viewer, &headers, routes::LOGOUT, f.csrf.as_deref())
    {
        return *r;
    }
    let mut r = redirect(routes::LOGIN);
    state.ui.clear_session(&mut r);
    r
}

// ---------------------------------------------------------------------------------------------
// Static assets

pub async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        pages::UI_CSS,
    )
        .into_response()
}

pub async fn js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        pages::UI_JS,
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// Environments

#[derive(Debug, Deserialize, Default)]
pub struct EnvQuery {
    q: Option<String>,
    status: Option<String>,
    env: Option<String>,
}

/// `GET /` and `GET /environments`.
pub async fn environments(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<EnvQuery>,
) -> Response {
    let viewer = match state.ui.viewer(&headers, &uri).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match environment_rows(&state, &viewer).await {
        Ok(rows) => {
            let filter = pages::EnvironmentFilter {
                q: q.q.unwrap_or_default(),
                status: q.status.unwrap_or_default(),
                env: q.env.unwrap_or_default(),
            };
            let chrome = state.ui.chrome(&viewer);
            page(
                StatusCode::OK,
                pages::environments_page(&chrome, &rows, &filter, chrono::Utc::now()),
            )
        }
        Err(e) => internal(&e, "listing environments failed"),
    }
}

/// The environments page's rows the viewer may read.
pub async fn environment_rows(
    state: &AppState,
    viewer: &Viewer,
) -> anyhow::Result<Vec<pages::EnvironmentRow>> {
    let now = chrono::Utc::now();
    let statuses = crate::app::drift::project_statuses(&*state.drift, None, now).await?;
    let locks = state.store.locks(None).await?;
    let repos: BTreeSet<String> = statuses.iter().map(|s| s.repo.clone()).collect();
    let readable = state.ui.readable(viewer, repos).await;
    let mut rows: Vec<pages::EnvironmentRow> = statuses
        .into_iter()
        .filter(|s| readable.contains(&s.repo))
        .map(|s| {
            let lock = locks
                .iter()
                .find(|l| {
                    l.repo.full() == s.repo
                        && l.key.dir.to_string() == s.dir
                        && l.key.workspace.to_string() == s.workspace
                })
                .map(|l| pages::LockHolder {
                    pr: l.pr.get(),
                    by: l.holder_login.clone(),
                    since: utc(l.acquired_at.get()),
                });
            pages::EnvironmentRow {
                environment: crate::core::ui::environments::environment_of(
                    &s.dir,
                    &s.workspace,
                    None,
                )
                .map(|e| e.name),
                status: s.sync.status,
                last_check_at: s.sync.last_check_at,
                last_applied: s.sync.last_applied.as_ref().map(|a| pages::AppliedView {
                    sha: a.sha.to_string(),
                    pr: a.pr.map(|p| p.get()),
                    by: a.by.login.clone(),
                    at: a.at,
                }),
                drift_age_seconds: s.sync.drift.as_ref().map(|d| d.age_seconds),
                lock,
                repo: s.repo,
                project: s.project,
                dir: s.dir,
                workspace: s.workspace,
            }
        })
        .collect();
    rows.sort_by(|a, b| (&a.repo, &a.dir, &a.workspace).cmp(&(&b.repo, &b.dir, &b.workspace)));
    Ok(rows)
}

// ---------------------------------------------------------------------------------------------
// Locks

async fn lock_views(state: &AppState, viewer: &Viewer) -> anyhow::Result<Vec<pages::LockView>> {
    let locks = state.store.locks(None).await?;
    let repos: BTreeSet<String> = locks.iter().map(|l| l.repo.full()).collect();
    let readable = state.ui.readable(viewer, repos).await;
    let mut out = Vec::new();
    for l in locks {
        let repo = l.repo.full();
        if !readable.contains(&repo) {
            continue;
        }
        let can_release =
            state.ui.decide(viewer, &repo, UiAction::ReleaseLock).await == Decision::Allow;
        out.push(pages::LockView {
            dir: l.key.dir.to_string(),
            workspace: l.key.workspace.to_string(),
            project: l.key.dir.to_string(),
            pr: l.pr.get(),
            by: l.holder_login.clone(),
            since: utc(l.acquired_at.get()),
            can_release,
            repo,
        });
    }
    Ok(out)
}

/// `GET /locks`.
pub async fn locks(State(state): State<Arc<AppState>>, headers: HeaderMap, uri: Uri) -> Response {
    let viewer = match state.ui.viewer(&headers, &uri).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match lock_views(&state, &viewer).await {
        Ok(locks) => page(
            StatusCode::OK,
            pages::locks_page(&state.ui.chrome(&viewer), &locks, chrono::Utc::now()),
        ),
        Err(e) => internal(&e, "listing locks failed"),
    }
}

#[derive(Debug, Deserialize)]
pub struct LockForm {
    repo: String,
    dir: String,
    workspace: String,
    csrf: Option<String>,
}

fn lock_key(f: &LockForm) -> Option<(RepoName, LockKey)> {
    Some((
        RepoName::parse(&f.repo).ok()?,
        LockKey {
            dir: ProjectDir::new(&f.dir).ok()?,
            workspace: Workspace::new(&f.workspace).ok()?,
        },
    ))
}

/// `GET /locks/release?repo=…&dir=…&workspace=…`: the confirmation page.
pub async fn lock_release_confirm(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
    Query(f): Query<LockForm>,
) -> Response {
    let viewer = match state.ui.viewer(&headers, &uri).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match state
        .ui
        .decide(&viewer, &f.repo, UiAction::ReleaseLock)
        .await
    {
        Decision::Allow => {}
        Decision::Forbidden => {
            return page(
                StatusCode::FORBIDDEN,
                pages::error_page(
                    403,
                    "Releasing this lock needs write access to the repository.",
                ),
            );
        }
        _ => return not_found(),
    }
    let views = match lock_views(&state, &viewer).await {
        Ok(v) => v,
        Err(e) => return internal(&e, "listing locks failed"),
    };
    match views
        .iter()
        .find(|l| l.repo == f.repo && l.dir == f.dir && l.workspace == f.workspace)
    {
        Some(l) => page(
            StatusCode::OK,
            pages::lock_release_confirm_page(&state.ui.chrome(&viewer), l),
        ),
        None => not_found(),
    }
}

/// `POST /locks/release`: the same release as `sluice locks release`, by the viewer.
pub async fn lock_release(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
    Form(f): Form<LockForm>,
) -> Response {
    let viewer = match state.ui.viewer(&headers, &uri).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Err(r) = state
        .ui
        .check_post(&viewer, &headers, routes::LOCK_RELEASE, f.csrf.as_deref())
    {
        return *r;
    }
    match state
        .ui
        .decide(&viewer, &f.repo, UiAction::ReleaseLock)
        .await
    {
        Decision::Allow => {}
        Decision::Forbidden => {
            return page(
                StatusCode::FORBIDDEN,
                pages::error_page(
                    403,
                    "Releasing this lock needs write access to the repository.",
                ),
            );
        }
        _ => return not_found(),
    }
    let Some((repo, key)) = lock_key(&f) else {
        return not_found();
    };
    let by = viewer.principal.display_login().to_string();
    match crate::app::locks_cli::release(&*state.store, &repo, &key, &by).await {
        Ok(Some((pr, _))) => {
            tracing::info!(%repo, %key, pr = pr.get(), %by, "lock released from the web UI");
            if let Some(n) = &state.ui.outbox_ready {
                n.notify_one();
            }
            redirect(routes::LOCKS)
        }
        Ok(None) => not_found(),
        Err(e) => internal(&e, "releasing a lock failed"),
    }
}

// ---------------------------------------------------------------------------------------------
// Runs and job logs

/// The most chunks a log page shows at once (the cap keeps a job's log far below it).
const MAX_PAGE_CHUNKS: u32 = 20_000;

fn job_view(j: &crate::app::ports::store::JobRow) -> pages::JobView {
    pages::JobView {
        id: j.id,
        project: j.project_name.to_string(),
        dir: j.project_dir.to_string(),
        workspace: j.workspace.to_string(),
        state: j.state,
        durations: pages::StepDurations {
            queue_wait_ms: j
                .started_at
                .map(|s| u64::try_from(s.get() - j.created_at.get()).unwrap_or(0)),
            ..Default::default()
        },
        summary: None,
        policies: Vec::new(),
    }
}

/// A job with its run, when the viewer may read its repository; `Err` is the answer (404 for
/// a job that does not exist and for one the viewer may not see).
async fn readable_job(
    state: &AppState,
    viewer: &Viewer,
    job_id: i64,
) -> Result<
    (
        crate::app::ports::store::JobRow,
        crate::app::ports::store::RunRow,
    ),
    Response,
> {
    let job = match state.store.job(job_id).await {
        Ok(Some(j)) => j,
        Ok(None) => return Err(not_found()),
        Err(e) => return Err(internal(&e, "reading a job failed")),
    };
    let run = match state.store.run(job.run_id).await {
        Ok(Some(r)) => r,
        Ok(None) => return Err(not_found()),
        Err(e) => return Err(internal(&e, "reading a run failed")),
    };
    match state
        .ui
        .decide(viewer, &run.repo.full(), UiAction::Read)
        .await
    {
        Decision::Allow => Ok((job, run)),
        _ => Err(not_found()),
    }
}

/// `GET /jobs/{id}/log`: the stored log; the script streams the rest while the job runs.
pub async fn job_log(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
    axum::extract::Path(job_id): axum::extract::Path<i64>,
) -> Response {
    let viewer = match state.ui.viewer(&headers, &uri).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let (job, run) = match readable_job(&state, &viewer, job_id).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(logs) = &state.ui.job_logs else {
        return not_found();
    };
    let chunks = match logs.log_chunks(job_id, 0, MAX_PAGE_CHUNKS).await {
        Ok(c) => c,
        Err(e) => return internal(&e, "reading a job's log failed"),
    };
    let retention = state.ui.log_retention_ms;
    let expired = chunks.is_empty()
        && retention > 0
        && job
            .finished_at
            .is_some_and(|f| now_ms() - f.get() > retention);
    let view = pages::JobLogView {
        job: job_view(&job),
        run_id: run.id,
        repo: run.repo.full(),
        pr: run.pr.get(),
        chunks,
        expired,
    };
    page(
        StatusCode::OK,
        pages::job_log_page(&state.ui.chrome(&viewer), &view),
    )
}

/// `GET /runs/{id}`: a run's jobs, each linking to its log.
pub async fn run(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
    axum::extract::Path(run_id): axum::extract::Path<i64>,
) -> Response {
    let viewer = match state.ui.viewer(&headers, &uri).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let run = match state.store.run(run_id).await {
        Ok(Some(r)) => r,
        Ok(None) => return not_found(),
        Err(e) => return internal(&e, "reading a run failed"),
    };
    if state
        .ui
        .decide(&viewer, &run.repo.full(), UiAction::Read)
        .await
        != Decision::Allow
    {
        return not_found();
    }
    let jobs = match state.store.jobs_of_run(run_id).await {
        Ok(j) => j,
        Err(e) => return internal(&e, "reading a run's jobs failed"),
    };
    let view = pages::RunView {
        id: run.id,
        repo: run.repo.full(),
        pr: run.pr.get(),
        kind: run.kind.as_str().to_string(),
        actor: run.actor.login.clone(),
        trigger: run.trigger.as_str().to_string(),
        head_sha: run.head_sha.to_string(),
        branch: run.base_ref.clone(),
        created_at: utc(run.created_at.get()),
        job_states: jobs.iter().map(|j| j.state).collect(),
    };
    let jobs: Vec<pages::JobView> = jobs.iter().map(job_view).collect();
    page(
        StatusCode::OK,
        pages::run_page(&state.ui.chrome(&viewer), &view, &jobs),
    )
}

#[derive(Debug, Deserialize)]
pub struct After {
    after: Option<String>,
}

/// How long one event stream stays open; the browser reconnects with `Last-Event-ID`.
const STREAM_LIFETIME: std::time::Duration = std::time::Duration::from_secs(300);
/// How often the store is asked for new chunks while a job runs.
const POLL: std::time::Duration = std::time::Duration::from_millis(300);
/// Chunks read and sent per batch.
const BATCH: u32 = 64;

/// `GET /jobs/{id}/log/events`: the log as Server-Sent Events from the chunk after
/// `Last-Event-ID` (or `?after=`), read from the store — so a viewer resumes where it was after
/// a reconnect or a server restart — until the end chunk. Each viewer holds one batch at most.
pub async fn job_log_events(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
    axum::extract::Path(job_id): axum::extract::Path<i64>,
    Query(q): Query<After>,
) -> Response {
    use crate::core::ui::live_log;
    let viewer = match state.ui.viewer(&headers, &uri).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Err(r) = readable_job(&state, &viewer, job_id).await {
        return r;
    }
    let Some(logs) = state.ui.job_logs.clone() else {
        return not_found();
    };
    let after = match live_log::resume_after(
        headers.get("last-event-id").and_then(|v| v.to_str().ok()),
        q.after.as_deref(),
    ) {
        Ok(a) => a,
        Err(e) => {
            return page(
                StatusCode::BAD_REQUEST,
                pages::error_page(400, &e.to_string()),
            );
        }
    };
    let stream = log_stream(logs, job_id, after);
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        axum::body::Body::from_stream(stream),
    )
        .into_response()
}

/// The chunks of `job_id` after `after`, as SSE text, until the end chunk or
/// [`STREAM_LIFETIME`].
pub fn log_stream(
    logs: Arc<dyn crate::app::ports::job_log::JobLogStore>,
    job_id: i64,
    after: u64,
) -> impl futures_util::Stream<Item = Result<String, std::convert::Infallible>> + Send {
    use crate::core::ui::job_log::ChunkKind;
    use crate::core::ui::live_log;
    struct S {
        logs: Arc<dyn crate::app::ports::job_log::JobLogStore>,
        after: u64,
        first: bool,
        done: bool,
        until: tokio::time::Instant,
    }
    let s = S {
        logs,
        after,
        first: true,
        done: false,
        until: tokio::time::Instant::now() + STREAM_LIFETIME,
    };
    futures_util::stream::unfold(s, move |mut s| async move {
        if s.done {
            return None;
        }
        if s.first {
            s.first = false;
            return Some((Ok(live_log::sse_retry(1000)), s));
        }
        let idle = tokio::time::Instant::now();
        loop {
            if tokio::time::Instant::now() >= s.until {
                return None;
            }
            match s.logs.log_chunks(job_id, s.after, BATCH).await {
                Ok(chunks) if !chunks.is_empty() => {
                    let mut out = String::new();
                    for c in &chunks {
                        out.push_str(&live_log::sse_event(c));
                        s.after = c.seq;
                        if c.kind == ChunkKind::End {
                            s.done = true;
                        }
                    }
                    return Some((Ok(out), s));
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(job_id, error = %format!("{e:#}"), "log stream: reading the store failed");
                }
            }
            if idle.elapsed() >= std::time::Duration::from_secs(15) {
                return Some((Ok(live_log::SSE_KEEPALIVE.to_string()), s));
            }
            tokio::time::sleep(POLL).await;
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Runs list and a pull request's runs

/// Runs shown on one page of the runs list.
const RUNS_PER_PAGE: u32 = 50;
/// Runs read from the store per batch while filling a page (the viewer may not read all).
const RUNS_BATCH: u32 = 200;
/// Batches read at most for one page: a viewer who may read little of a busy server gets a
/// shorter page with an "Older runs" link instead of a scan of the whole table.
const RUNS_MAX_BATCHES: u32 = 10;

#[derive(Debug, Deserialize, Default)]
pub struct RunsQuery {
    repo: Option<String>,
    pr: Option<String>,
    state: Option<String>,
    before: Option<String>,
}

fn run_view(
    run: &crate::app::ports::store::RunRow,
    jobs: &[crate::app::ports::store::JobRow],
) -> pages::RunView {
    pages::RunView {
        id: run.id,
        repo: run.repo.full(),
        pr: run.pr.get(),
        kind: run.kind.as_str().to_string(),
        actor: run.actor.login.clone(),
        trigger: run.trigger.as_str().to_string(),
        head_sha: run.head_sha.to_string(),
        branch: run.base_ref.clone(),
        created_at: utc(run.created_at.get()),
        job_states: jobs.iter().map(|j| j.state).collect(),
    }
}

fn bad_request(message: &str) -> Response {
    page(StatusCode::BAD_REQUEST, pages::error_page(400, message))
}

/// Runs of `repo`/`pr` newest first that the viewer may read and `filter` keeps, from id
/// `before` down; with the id to continue from when there may be more.
async fn run_views(
    state: &AppState,
    viewer: &Viewer,
    repo: Option<&RepoName>,
    pr: Option<crate::core::types::PrNumber>,
    filter: &pages::RunFilter,
    mut before: Option<i64>,
) -> anyhow::Result<(Vec<pages::RunView>, Option<i64>)> {
    let mut out = Vec::new();
    let mut readable: HashMap<String, bool> = HashMap::new();
    for _ in 0..RUNS_MAX_BATCHES {
        let batch = state
            .store
            .recent_runs(repo, pr, before, RUNS_BATCH)
            .await?;
        let exhausted = (batch.len() as u32) < RUNS_BATCH;
        for run in batch {
            before = Some(run.id);
            let name = run.repo.full().to_ascii_lowercase();
            let may = match readable.get(&name) {
                Some(m) => *m,
                None => {
                    let m = state.ui.decide(viewer, &name, UiAction::Read).await == Decision::Allow;
                    readable.insert(name, m);
                    m
                }
            };
            if !may {
                continue;
            }
            let jobs = state.store.jobs_of_run(run.id).await?;
            let view = run_view(&run, &jobs);
            if filter.state_matches(&view) {
                out.push(view);
                if out.len() as u32 >= RUNS_PER_PAGE {
                    return Ok((out, before));
                }
            }
        }
        if exhausted {
            return Ok((out, None));
        }
    }
    Ok((out, before))
}

/// `GET /runs?repo=&pr=&state=&before=`: pull requests' runs, newest first.
pub async fn runs(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<RunsQuery>,
) -> Response {
    let viewer = match state.ui.viewer(&headers, &uri).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let filter = pages::RunFilter {
        repo: q.repo.unwrap_or_default().trim().to_string(),
        pr: q.pr.unwrap_or_default().trim().to_string(),
        state: q.state.unwrap_or_default().trim().to_string(),
    };
    let repo = match filter.repo.as_str() {
        "" => None,
        r => match RepoName::parse(r) {
            Ok(r) => Some(r),
            Err(_) => return bad_request("The repository is written owner/name."),
        },
    };
    // A repository the viewer may not read is not named back (the same page as an empty one
    // would leak nothing, but the URL of another's repository is 404 like its pages).
    if let Some(r) = &repo
        && state.ui.decide(&viewer, &r.full(), UiAction::Read).await != Decision::Allow
    {
        return not_found();
    }
    let pr = match filter.pr.as_str() {
        "" => None,
        p => match p
            .trim_start_matches('#')
            .parse::<u64>()
            .ok()
            .and_then(|n| crate::core::types::PrNumber::new(n).ok())
        {
            Some(n) => Some(n),
            None => return bad_request("The pull request is a number, e.g. 31."),
        },
    };
    if !filter.state.is_empty()
        && !crate::core::job::JobState::ALL
            .iter()
            .any(|s| s.as_str() == filter.state)
    {
        return bad_request(
            "The state is one of waiting, queued, running, succeeded, failed, cancelled, interrupted.",
        );
    }
    let before = match q.before.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(b) => match b.parse::<i64>() {
            Ok(b) => Some(b),
            Err(_) => return bad_request("`before` is a run number."),
        },
    };
    match run_views(&state, &viewer, repo.as_ref(), pr, &filter, before).await {
        Ok((runs, older)) => page(
            StatusCode::OK,
            pages::runs_page(&state.ui.chrome(&viewer), None, &filter, &runs, older),
        ),
        Err(e) => internal(&e, "listing runs failed"),
    }
}

/// `GET /repos/{owner}/{name}/pulls/{pr}`: one pull request's runs (404 for a repository the
/// viewer may not read).
pub async fn pull(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
    axum::extract::Path((owner, name, pr)): axum::extract::Path<(String, String, u64)>,
) -> Response {
    let viewer = match state.ui.viewer(&headers, &uri).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let (Ok(repo), Ok(pr)) = (
        RepoName::parse(&format!("{owner}/{name}")),
        crate::core::types::PrNumber::new(pr),
    ) else {
        return not_found();
    };
    if state.ui.decide(&viewer, &repo.full(), UiAction::Read).await != Decision::Allow {
        return not_found();
    }
    let filter = pages::RunFilter::default();
    match run_views(&state, &viewer, Some(&repo), Some(pr), &filter, None).await {
        Ok((runs, older)) => page(
            StatusCode::OK,
            pages::runs_page(
                &state.ui.chrome(&viewer),
                Some((&repo.full(), pr.get())),
                &filter,
                &runs,
                older,
            ),
        ),
        Err(e) => internal(&e, "listing a pull request's runs failed"),
    }
}

// ---------------------------------------------------------------------------------------------
// Drift

#[derive(Debug, Deserialize, Default)]
pub struct DriftQuery {
    repo: Option<String>,
}

/// The live drift objects the viewer may read (of `repo` when given), oldest first.
async fn drift_rows(
    state: &AppState,
    viewer: &Viewer,
    repo: Option<&RepoName>,
) -> anyhow::Result<Vec<pages::DriftRow>> {
    let rows = state.drift.projects(repo).await?;
    let repos: BTreeSet<String> = rows.iter().map(|r| r.key.repo.full()).collect();
    let readable = state.ui.readable(viewer, repos).await;
    let now = chrono::Utc::now();
    let mut out = Vec::new();
    for r in rows {
        let name = r.key.repo.full();
        if !readable.contains(&name) || !r.active {
            continue;
        }
        let Some(d) = r.record.live() else { continue };
        let can_act = state.ui.decide(viewer, &name, UiAction::ActOnDrift).await == Decision::Allow;
        out.push(pages::DriftRow {
            repo: name,
            project: r.name.to_string(),
            dir: r.key.dir.to_string(),
            workspace: r.key.workspace.to_string(),
            phase: d.state.phase(),
            fingerprint: d.fingerprint.short().to_string(),
            changed_outside: u32::try_from(d.counts.changed_outside).unwrap_or(u32::MAX),
            unapplied: u32::try_from(d.counts.unapplied + d.counts.engine_or_provider_upgrade)
                .unwrap_or(u32::MAX),
            opened_at: d.opened_at,
            age_seconds: (now - d.opened_at).num_seconds(),
            issue: r.drift_issue,
            history: d.history.iter().map(pages::drift_history_line).collect(),
            can_act,
        });
    }
    out.sort_by_key(|a| a.opened_at);
    Ok(out)
}

/// `GET /drift?repo=`: live drift with its lifecycle and history.
pub async fn drift(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<DriftQuery>,
) -> Response {
    let viewer = match state.ui.viewer(&headers, &uri).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let repo = match q.repo.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(r) => match RepoName::parse(r) {
            Ok(r) => Some(r),
            Err(_) => return bad_request("The repository is written owner/name."),
        },
    };
    if let Some(r) = &repo
        && state.ui.decide(&viewer, &r.full(), UiAction::Read).await != Decision::Allow
    {
        return not_found();
    }
    match drift_rows(&state, &viewer, repo.as_ref()).await {
        Ok(rows) => page(
            StatusCode::OK,
            pages::drift_page(&state.ui.chrome(&viewer), &rows),
        ),
        Err(e) => internal(&e, "listing drift failed"),
    }
}

#[derive(Debug, Deserialize)]
pub struct DriftForm {
    repo: String,
    dir: String,
    workspace: String,
    fingerprint: String,
    csrf: Option<String>,
    until: Option<String>,
    reason: Option<String>,
}

/// Who a viewer acts as in the drift lifecycle and the audit log.
fn actor_of(viewer: &Viewer) -> crate::core::event::Actor {
    use crate::core::event::{Actor, ActorKind};
    match &viewer.principal {
        Principal::User(s) => Actor {
            login: s.login.clone(),
            id: s.user_id,
            kind: ActorKind::Human,
        },
        p => Actor {
            login: p.display_login().to_string(),
            id: 0,
            kind: ActorKind::Admin,
        },
    }
}

/// `POST /drift/ack`: `sluice drift ack` from the web UI.
pub async fn drift_ack(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
    Form(f): Form<DriftForm>,
) -> Response {
    drift_command(&state, &headers, &uri, routes::DRIFT_ACK, &f).await
}

/// `POST /drift/accept`: `sluice drift accept --until DATE --reason …` from the web UI.
pub async fn drift_accept(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
    Form(f): Form<DriftForm>,
) -> Response {
    drift_command(&state, &headers, &uri, routes::DRIFT_ACCEPT, &f).await
}

/// The checks of a drift form (session, same origin and CSRF, write permission), then the
/// command parsed by the comment grammar (so a date in the past or not a date is refused with
/// the same words) and taken by the drift service like the comment.
async fn drift_command(
    state: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
    action: &str,
    f: &DriftForm,
) -> Response {
    use crate::core::drift::{DriftParsed, parse_drift_args};
    let viewer = match state.ui.viewer(headers, uri).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Err(r) = state
        .ui
        .check_post(&viewer, headers, action, f.csrf.as_deref())
    {
        return *r;
    }
    match state
        .ui
        .decide(&viewer, &f.repo, UiAction::ActOnDrift)
        .await
    {
        Decision::Allow => {}
        Decision::Forbidden => {
            return page(
                StatusCode::FORBIDDEN,
                pages::error_page(
                    403,
                    "Acknowledging or accepting drift needs write access to the repository.",
                ),
            );
        }
        _ => return not_found(),
    }
    let (Ok(repo), Ok(dir), Ok(workspace)) = (
        RepoName::parse(&f.repo),
        ProjectDir::new(&f.dir),
        Workspace::new(&f.workspace),
    ) else {
        return not_found();
    };
    let Some(service) = &state.ui.drift_service else {
        return page(
            StatusCode::CONFLICT,
            pages::error_page(
                409,
                "Drift detection is off on this server (drift.enabled).",
            ),
        );
    };
    let words: Vec<String> = if action == routes::DRIFT_ACK {
        vec!["ack".into()]
    } else {
        let mut w = vec![
            "accept".to_string(),
            "--until".to_string(),
            f.until.clone().unwrap_or_default(),
        ];
        if let Some(r) = f.reason.as_deref().map(str::trim).filter(|r| !r.is_empty()) {
            w.push("--reason".into());
            w.push(r.to_string());
        }
        w
    };
    let today = chrono::Utc::now().date_naive();
    let cmd = match parse_drift_args(&service.settings.bot_name, &words, today) {
        DriftParsed::Command(c) => c,
        DriftParsed::Reply(text) => return bad_request(&plain_reply(&text)),
    };
    let key = crate::app::ports::drift::DriftKey {
        repo,
        dir,
        workspace,
    };
    let actor = actor_of(&viewer);
    let event_id = format!("web-ui:{}", hex::encode(random16()));
    match service
        .command_from_ui(&key, &cmd, &actor, &f.fingerprint, &event_id)
        .await
    {
        Ok(Ok(Some(()))) => {
            tracing::info!(repo = %key.repo, dir = %key.dir, by = %actor.login, command = cmd.name(), "drift command from the web UI");
            redirect(&format!(
                "{}?repo={}",
                routes::DRIFT,
                pages::seg(&key.repo.full())
            ))
        }
        Ok(Ok(None)) => not_found(),
        Ok(Err(why)) => page(
            StatusCode::CONFLICT,
            pages::error_page(409, &format!("Not done: {why}.")),
        ),
        Err(e) => internal(&e, "a drift command from the web UI failed"),
    }
}

/// A grammar reply (Markdown for a comment) as plain text for a page: its first error line
/// without the Markdown marks.
fn plain_reply(md: &str) -> String {
    let text: Vec<&str> = md
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('|') && !l.starts_with('#'))
        .collect();
    text.join(" ").replace('`', "").replace("**", "")
}

// ---------------------------------------------------------------------------------------------
// Audit

/// Entries shown on one page of the audit list.
const AUDIT_PER_PAGE: usize = 100;

#[derive(Debug, Deserialize, Default)]
pub struct AuditUiQuery {
    repo: Option<String>,
    pr: Option<String>,
    commit: Option<String>,
    actor: Option<String>,
    action: Option<String>,
    since: Option<String>,
    until: Option<String>,
    cursor: Option<String>,
    format: Option<String>,
}

impl AuditUiQuery {
    fn filter(&self) -> pages::AuditFilter {
        let t = |v: &Option<String>| v.as_deref().unwrap_or("").trim().to_string();
        pages::AuditFilter {
            repo: t(&self.repo),
            pr: t(&self.pr),
            commit: t(&self.commit),
            actor: t(&self.actor),
            action: t(&self.action),
            since: t(&self.since),
            until: t(&self.until),
        }
    }
}

/// An audit filter checked and lowered: the store's query and the rest, matched per entry.
struct AuditSelection {
    query: crate::app::ports::store::AuditQuery,
    pr: Option<u64>,
    /// Lowercase; a prefix of the entry's head commit.
    commit: Option<String>,
    actor: Option<String>,
    action: Option<String>,
    /// `None`: every entry (admins); else entries of these repositories (lowercase) only.
    repos: Option<BTreeSet<String>>,
}

impl AuditSelection {
    fn keeps(&self, e: &crate::core::audit::AuditEntry) -> bool {
        let r = &e.record;
        self.pr.is_none_or(|p| r.pr == Some(p))
            && self.commit.as_ref().is_none_or(|c| {
                r.head_sha
                    .as_ref()
                    .is_some_and(|h| h.to_ascii_lowercase().starts_with(c.as_str()))
            })
            && self
                .actor
                .as_ref()
                .is_none_or(|a| r.actor.login.eq_ignore_ascii_case(a))
            && self
                .action
                .as_ref()
                .is_none_or(|a| r.action.is_some_and(|x| x.as_str() == a))
            && self.repos.as_ref().is_none_or(|set| {
                r.repo
                    .as_ref()
                    .is_some_and(|n| set.contains(&n.to_ascii_lowercase()))
            })
    }
}

/// The checks of an audit filter: a bad value is a 400 with what to write, a repository the
/// viewer may not read a 404. A viewer who is not an admin sees only entries of repositories
/// they may read (an entry without a repository, or of another, is never shown to them).
async fn audit_selection(
    state: &AppState,
    viewer: &Viewer,
    f: &pages::AuditFilter,
) -> Result<AuditSelection, Response> {
    use crate::core::audit::parse_time_bound;
    let bound = |s: &str| -> Result<Option<crate::core::types::UnixMs>, String> {
        match s {
            "" => Ok(None),
            s => parse_time_bound(s).map(Some),
        }
    };
    let since = bound(&f.since).map_err(|e| bad_request(&e))?;
    let until = bound(&f.until).map_err(|e| bad_request(&e))?;
    let repo = match f.repo.as_str() {
        "" => None,
        r => match RepoName::parse(r) {
            Ok(r) => Some(r.full()),
            Err(_) => return Err(bad_request("The repository is written owner/name.")),
        },
    };
    if let Some(r) = &repo
        && state.ui.decide(viewer, r, UiAction::Read).await != Decision::Allow
    {
        return Err(not_found());
    }
    let pr = match f.pr.trim_start_matches('#') {
        "" => None,
        p => match p.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => return Err(bad_request("The pull request is a number, e.g. 31.")),
        },
    };
    let commit = match f.commit.to_ascii_lowercase() {
        c if c.is_empty() => None,
        c if c.len() >= 4 && c.len() <= 64 && c.chars().all(|x| x.is_ascii_hexdigit()) => Some(c),
        _ => {
            return Err(bad_request(
                "The commit is a SHA (at least 4 hex digits, e.g. 3f2a9c1).",
            ));
        }
    };
    let query = crate::app::ports::store::AuditQuery {
        since,
        until,
        repo: repo.clone(),
        head_sha: commit.clone().filter(|c| c.len() == 40 || c.len() == 64),
        after_seq: None,
        limit: None,
    };
    let repos = match (viewer.role, repo) {
        (Role::Admin, _) => None,
        (_, Some(r)) => Some(BTreeSet::from([r.to_ascii_lowercase()])),
        // Not an admin and no repository chosen: the repositories the entries name, of which
        // the ones the viewer may read (a first pass over the log; permissions are cached).
        (_, None) => {
            let mut named = BTreeSet::new();
            let scanned = state
                .store
                .scan_audit(&query, &mut |e| {
                    if let Some(r) = &e.record.repo {
                        named.insert(r.to_ascii_lowercase());
                    }
                    Ok(true)
                })
                .await;
            if let Err(e) = scanned {
                return Err(internal(&e, "reading the audit log failed"));
            }
            Some(state.ui.readable(viewer, named).await)
        }
    };
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    Ok(AuditSelection {
        query,
        pr,
        commit,
        actor: non_empty(&f.actor),
        action: non_empty(&f.action),
        repos,
    })
}

/// `GET /audit?repo=&pr=&commit=&actor=&action=&since=&until=&cursor=`: the newest entries
/// matching the filter (older than `cursor`), and for admins the chain's verification.
pub async fn audit(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<AuditUiQuery>,
) -> Response {
    let viewer = match state.ui.viewer(&headers, &uri).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let filter = q.filter();
    let sel = match audit_selection(&state, &viewer, &filter).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let cursor = match q.cursor.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(c) => match c.parse::<u64>() {
            Ok(c) => Some(c),
            Err(_) => return bad_request("`cursor` is an entry number."),
        },
    };
    // The newest matching entries below the cursor: the scan runs oldest first, so keep the
    // last page's worth (and one more, to know whether older ones exist).
    let mut kept: std::collections::VecDeque<crate::core::audit::AuditEntry> =
        std::collections::VecDeque::new();
    let nobody = sel.repos.as_ref().is_some_and(BTreeSet::is_empty);
    if !nobody {
        let res = state
            .store
            .scan_audit(&sel.query, &mut |e| {
                if cursor.is_some_and(|c| e.seq >= c) {
                    return Ok(false);
                }
                if sel.keeps(&e) {
                    kept.push_back(e);
                    if kept.len() > AUDIT_PER_PAGE + 1 {
                        kept.pop_front();
                    }
                }
                Ok(true)
            })
            .await;
        if let Err(e) = res {
            return internal(&e, "reading the audit log failed");
        }
    }
    let more = kept.len() > AUDIT_PER_PAGE;
    if more {
        kept.pop_front();
    }
    let rows: Vec<pages::AuditRow> = kept
        .iter()
        .rev()
        .map(|e| pages::AuditRow {
            seq: e.seq,
            time: chrono::DateTime::parse_from_rfc3339(&e.time)
                .map(|t| t.with_timezone(&chrono::Utc))
                .unwrap_or_default(),
            actor: e.record.actor.login.clone(),
            action: e.record.action.map_or("", |a| a.as_str()).to_string(),
            result: e.record.result.map_or("", |r| r.as_str()).to_string(),
            repo: e.record.repo.clone(),
            pr: e.record.pr,
            head_sha: e.record.head_sha.clone(),
            project: e.record.project.clone(),
        })
        .collect();
    let next_cursor = more.then(|| rows.last().map(|r| r.seq)).flatten();
    let chain = match viewer.role {
        Role::Admin => Some(chain_status(&state).await),
        _ => None,
    };
    page(
        StatusCode::OK,
        pages::audit_page(
            &state.ui.chrome(&viewer),
            &filter,
            &rows,
            chain.as_ref(),
            next_cursor,
        ),
    )
}

/// How long a verification of the whole audit chain is shown before the page runs it again
/// (it reads every entry: seconds for a million).
const CHAIN_CHECK_TTL: std::time::Duration = std::time::Duration::from_secs(300);

/// The last verification of the audit chain and when it ran; one runs at a time.
static CHAIN_CHECKED: tokio::sync::Mutex<Option<(pages::ChainStatus, std::time::Instant)>> =
    tokio::sync::Mutex::const_new(None);

/// The chain's status for the audit page: `sluice audit verify`'s verdict, run again when the
/// last one is older than [`CHAIN_CHECK_TTL`] (the page shows when it ran).
async fn chain_status(state: &AppState) -> pages::ChainStatus {
    let mut last = CHAIN_CHECKED.lock().await;
    if let Some((status, at)) = last.as_ref()
        && at.elapsed() < CHAIN_CHECK_TTL
    {
        return status.clone();
    }
    let status = match crate::app::audit::verify(&*state.store, None).await {
        Ok(crate::app::audit::Verdict::Ok {
            count,
            last_seq,
            last_hash,
        }) => pages::ChainStatus::Verified {
            entries: count,
            last_seq,
            last_hash,
            at: chrono::Utc::now(),
        },
        Ok(crate::app::audit::Verdict::Broken { seq, why, .. }) => pages::ChainStatus::Broken {
            seq,
            reason: why,
            at: chrono::Utc::now(),
        },
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "verifying the audit chain failed");
            return pages::ChainStatus::NotChecked;
        }
    };
    *last = Some((status.clone(), std::time::Instant::now()));
    status
}

/// A `Write` that hands what is written to the response body in chunks.
struct ChannelWriter {
    buf: Vec<u8>,
    tx: tokio::sync::mpsc::UnboundedSender<Result<Vec<u8>, std::io::Error>>,
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= 64 * 1024 {
            self.flush()?;
        }
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            self.tx
                .send(Ok(std::mem::take(&mut self.buf)))
                .map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client left")
                })?;
        }
        Ok(())
    }
}

/// `GET /audit/export?format=jsonl|csv&…filters`: the entries the audit page would list, oldest
/// first, as `sluice audit export` writes them (the same streaming export).
pub async fn audit_export(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<AuditUiQuery>,
) -> Response {
    use crate::app::audit::ExportFormat;
    let viewer = match state.ui.viewer(&headers, &uri).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let (format, content_type, ext) = match q.format.as_deref().unwrap_or("jsonl") {
        "jsonl" => (ExportFormat::Jsonl, "application/x-ndjson", "jsonl"),
        "csv" => (ExportFormat::Csv, "text/csv; charset=utf-8", "csv"),
        _ => return bad_request("The export format is jsonl or csv."),
    };
    let sel = match audit_selection(&state, &viewer, &q.filter()).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let store = state.store.clone();
    tokio::spawn(async move {
        let mut w = ChannelWriter {
            buf: Vec::new(),
            tx: tx.clone(),
        };
        if sel.repos.as_ref().is_some_and(BTreeSet::is_empty) {
            // Nothing this viewer may read: a valid, empty export.
            let _ =
                crate::app::audit::export_matching(&*store, &sel.query, format, &mut w, &|_| false)
                    .await;
            return;
        }
        let keep = |e: &crate::core::audit::AuditEntry| sel.keeps(e);
        if let Err(e) =
            crate::app::audit::export_matching(&*store, &sel.query, format, &mut w, &keep).await
        {
            tracing::warn!(error = %format!("{e:#}"), "an audit export from the web UI stopped");
            let _ = tx.send(Err(std::io::Error::other("the export failed")));
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"sluice-audit.{ext}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        axum::body::Body::from_stream(stream),
    )
        .into_response()
}
