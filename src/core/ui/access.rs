//! Who is asking, and what they may see and do in the web UI.
//!
//! **Authentication** ([`authenticate`]) turns a request's `Authorization` and `Cookie` headers
//! into a [`Principal`] or the answer to give instead, failing closed:
//! * `Authorization: Bearer <api_token>` is the admin (headless access, scripts, the end-to-end
//!   tests), even when no login is configured. A request that carries an `Authorization` header
//!   with anything else is refused (401): it never falls back to a cookie.
//! * Otherwise the signed session cookie (`session`): valid → the user; missing or expired →
//!   the login page; forged → 401.
//! * With no login configured and no `--insecure-ui-no-auth`, every page is the "how to
//!   configure login" page, which names settings and nothing about repositories or the host.
//! * `--insecure-ui-no-auth` (development only) makes every request without a session the
//!   admin [`Principal::DevNoAuth`].
//!
//! **Authorization** ([`authorize`]) follows GitHub: a user sees a repository (its projects,
//! runs, logs, locks, drift, audit entries) only if they can read it on GitHub, and may release
//! its locks or acknowledge/accept its drift only with write access. Admins — configured logins
//! or members of configured teams ([`Admins`]), the API token, the dev flag — see and do
//! everything. A repository the viewer cannot read, or whose permission is unknown (GitHub did
//! not answer), is answered 404 exactly like one that does not exist, so names do not leak;
//! 403 only tells a reader they lack write. Permissions are cached by the caller and re-checked
//! when older than [`Freshness`] allows (shorter for writes).
//!
//! Pure: the caller fetches permissions (the collaborator permission API with the server's own
//! credentials) and team memberships, and passes the time.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::session::{
    CookieSettings, CsrfRefusal, Session, SessionCheck, SessionId, UiKeys, check_csrf, same_origin,
    session_cookie_name, session_from_header,
};

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A request with the configured API token: the admin view.
    ApiToken,
    /// A GitHub user with a session.
    User(Session),
    /// `--insecure-ui-no-auth`, without a session: the admin view, for development only.
    DevNoAuth,
}

impl Principal {
    /// The name shown in the header and written as the actor of what the viewer does.
    pub fn display_login(&self) -> &str {
        match self {
            Principal::ApiToken => "api-token",
            Principal::User(s) => &s.login,
            Principal::DevNoAuth => "no-auth",
        }
    }

    /// Whether state-changing requests of this principal need a CSRF token: every request
    /// a browser authenticates by itself (cookies, or no auth at all). A bearer token is never
    /// attached by a browser on its own, so it cannot be used across sites.
    pub fn needs_csrf(&self) -> bool {
        !matches!(self, Principal::ApiToken)
    }
}

/// What authentication needs from the settings.
#[derive(Debug, Clone, Copy)]
pub struct AuthConfig<'a> {
    /// `api_token`.
    pub api_token: Option<&'a str>,
    /// Derived from `session_secret`; `None` when login with GitHub is not configured.
    pub keys: Option<&'a UiKeys>,
    pub cookies: CookieSettings,
    /// `--insecure-ui-no-auth`.
    pub insecure_no_auth: bool,
}

/// The request headers authentication reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct Credentials<'a> {
    pub authorization: Option<&'a str>,
    pub cookie: Option<&'a str>,
}

/// The outcome of [`authenticate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authenticated {
    Principal(Principal),
    /// 303 to `/login?return_to=<this page>`; clear the session cookie when told.
    LoginRequired {
        clear_cookie: bool,
    },
    /// 401 with the error page (and `WWW-Authenticate: Bearer` when the request had an
    /// `Authorization` header); clear the session cookie when told.
    Unauthorized {
        clear_cookie: bool,
    },
    /// Neither login nor the dev flag is configured: the "how to configure login" page.
    NotConfigured,
}

/// Who a request comes from, at `now_ms` (see the module docs for the rules).
pub fn authenticate(cfg: &AuthConfig<'_>, req: &Credentials<'_>, now_ms: i64) -> Authenticated {
    if let Some(header) = req.authorization {
        let given = bearer(header).unwrap_or("");
        return match cfg.api_token {
            Some(token) if !given.is_empty() && token_matches(token, given) => {
                Authenticated::Principal(Principal::ApiToken)
            }
            _ => Authenticated::Unauthorized {
                clear_cookie: false,
            },
        };
    }
    let Some(keys) = cfg.keys else {
        return if cfg.insecure_no_auth {
            Authenticated::Principal(Principal::DevNoAuth)
        } else {
            Authenticated::NotConfigured
        };
    };
    let name = session_cookie_name(cfg.cookies.secure);
    match session_from_header(keys, req.cookie, name, now_ms) {
        SessionCheck::Valid(s) => Authenticated::Principal(Principal::User(s)),
        SessionCheck::Missing if cfg.insecure_no_auth => {
            Authenticated::Principal(Principal::DevNoAuth)
        }
        SessionCheck::Missing => Authenticated::LoginRequired {
            clear_cookie: false,
        },
        SessionCheck::Expired { .. } => Authenticated::LoginRequired { clear_cookie: true },
        SessionCheck::Forged => Authenticated::Unauthorized { clear_cookie: true },
    }
}

/// The token of an `Authorization: Bearer <token>` header (the scheme is case-insensitive,
/// RFC 9110 §11.1; spaces around the token are ignored); `None` for other schemes.
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Constant-time comparison of a bearer token with the configured one (through their SHA-256,
/// so neither the content nor the length leaks through timing).
pub fn token_matches(expected: &str, given: &str) -> bool {
    let a = Sha256::digest(expected.as_bytes());
    let b = Sha256::digest(given.as_bytes());
    a.ct_eq(&b).into()
}

/// A user's permission on a repository, in GitHub's terms (repository roles).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Permission {
    None,
    Read,
    Triage,
    Write,
    Maintain,
    Admin,
}

impl Permission {
    /// From GitHub's "Get repository permissions for a user" answer
    /// (`GET /repos/{owner}/{repo}/collaborators/{username}/permission`): `role_name`
    /// (`admin`, `maintain`, `write`, `triage`, `read`) when it is one of GitHub's roles,
    /// else `permission` (`admin`, `write`, `read`, `none`; custom roles map onto these).
    /// Anything unknown is `None`.
    pub fn from_github(permission: &str, role_name: Option<&str>) -> Permission {
        let by_name = |s: &str| match s {
            "admin" => Some(Permission::Admin),
            "maintain" => Some(Permission::Maintain),
            "write" | "push" => Some(Permission::Write),
            "triage" => Some(Permission::Triage),
            "read" | "pull" => Some(Permission::Read),
            "none" => Some(Permission::None),
            _ => None,
        };
        role_name
            .and_then(by_name)
            .or_else(|| by_name(permission))
            .unwrap_or(Permission::None)
    }

    pub fn can_read(self) -> bool {
        self >= Permission::Read
    }

    pub fn can_write(self) -> bool {
        self >= Permission::Write
    }
}

/// A permission as cached by the caller, with when GitHub said so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachedPermission {
    pub permission: Permission,
    /// Milliseconds since the Unix epoch.
    pub checked_at_ms: i64,
}

/// How old a cached permission may be for a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// For reading pages (default 10 minutes).
    pub read_ttl_ms: i64,
    /// For releasing a lock or acknowledging drift (default 1 minute): a user whose write
    /// access was just removed must not act on a cached answer.
    pub write_ttl_ms: i64,
}

impl Default for Freshness {
    fn default() -> Self {
        Freshness {
            read_ttl_ms: 10 * 60 * 1000,
            write_ttl_ms: 60 * 1000,
        }
    }
}

/// The UI's admins: `ui_admins` entries, each a GitHub login (`ana`) or a team
/// (`org/team-slug`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Admins {
    logins: Vec<String>,
    teams: Vec<(String, String)>,
}

impl Admins {
    /// Parses the `ui_admins` entries; every bad entry is named.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Admins, Vec<String>> {
        let mut a = Admins::default();
        let mut errors = Vec::new();
        for e in entries {
            let e = e.as_ref().trim().trim_start_matches('@');
            match e.split_once('/') {
                Some((org, slug))
                    if super::session::is_github_login(org)
                        && !slug.is_empty()
                        && slug.len() <= 100
                        && slug
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
                {
                    a.teams
                        .push((org.to_ascii_lowercase(), slug.to_ascii_lowercase()))
                }
                None if super::session::is_github_login(e) => a.logins.push(e.to_ascii_lowercase()),
                _ => errors.push(format!(
                    "ui_admins: `{e}` is neither a GitHub login nor a team as `org/team-slug`"
                )),
            }
        }
        if errors.is_empty() {
            Ok(a)
        } else {
            Err(errors)
        }
    }

    /// The teams whose members are admins, as `(org, slug)`: the caller asks GitHub whether
    /// a user belongs to one (cached like permissions).
    pub fn teams(&self) -> &[(String, String)] {
        &self.teams
    }

    /// Whether `login` is named as an admin (case-insensitive, as GitHub logins are).
    pub fn names(&self, login: &str) -> bool {
        self.logins.iter().any(|l| l.eq_ignore_ascii_case(login))
    }
}

/// What a principal is in the UI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sees every repository and may do everything.
    Admin,
    /// Sees and does what GitHub lets them.
    Member,
}

/// The role of `principal`. `in_admin_team`: whether the user belongs to one of
/// [`Admins::teams`] (asked of GitHub by the caller; `false` when unknown).
pub fn role(principal: &Principal, admins: &Admins, in_admin_team: bool) -> Role {
    match principal {
        Principal::ApiToken | Principal::DevNoAuth => Role::Admin,
        Principal::User(s) if admins.names(&s.login) || in_admin_team => Role::Admin,
        Principal::User(_) => Role::Member,
    }
}

/// What the viewer wants to do with a repository's things.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UiAction {
    /// Any page or log of the repository, its audit entries and their export.
    Read,
    /// Release one of its locks.
    ReleaseLock,
    /// Acknowledge or accept one of its drifts.
    ActOnDrift,
}

impl UiAction {
    fn writes(self) -> bool {
        !matches!(self, UiAction::Read)
    }
}

/// The answer to a request about one repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// 404, the same page as for a repository that does not exist.
    NotFound,
    /// 403: the viewer can read the repository but not do this.
    Forbidden,
    /// The cached permission is too old for this action (or missing): ask GitHub, cache the
    /// answer, and decide again (with `None` if GitHub does not answer).
    Recheck,
}

/// Whether a viewer with `role` may do `action` on a repository, given the cached permission
/// (`None`: not cached) and `now_ms`. `fetched`: the permission was just asked of GitHub (so
/// `None` means GitHub did not answer, and the answer is `NotFound`, never `Recheck` again).
pub fn authorize(
    role: Role,
    action: UiAction,
    cached: Option<CachedPermission>,
    fetched: bool,
    freshness: Freshness,
    now_ms: i64,
) -> Decision {
    if role == Role::Admin {
        return Decision::Allow;
    }
    let ttl = if action.writes() {
        freshness.write_ttl_ms
    } else {
        freshness.read_ttl_ms
    };
    let Some(c) = cached else {
        return if fetched {
            Decision::NotFound
        } else {
            Decision::Recheck
        };
    };
    if !fetched && now_ms.saturating_sub(c.checked_at_ms) >= ttl {
        return Decision::Recheck;
    }
    if !c.permission.can_read() {
        Decision::NotFound
    } else if action.writes() && !c.permission.can_write() {
        Decision::Forbidden
    } else {
        Decision::Allow
    }
}

/// Things that belong to no repository (audit entries of rejected webhooks, dead-lettered
/// events): admins only; others get 404 (for pages) or never see them (in lists).
pub fn authorize_global(role: Role) -> Decision {
    match role {
        Role::Admin => Decision::Allow,
        Role::Member => Decision::NotFound,
    }
}

/// What a list page (environments, runs, locks, drift, audit) shows of `repos`, each with its
/// cached permission: the repositories the viewer may read now, and those to ask GitHub about
/// first (then call [`authorize`] with `fetched = true` for each). Repositories the viewer
/// cannot read are left out of both, silently: a list never says what it hides.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Visible<'r> {
    pub shown: Vec<&'r str>,
    pub recheck: Vec<&'r str>,
}

/// Sorts `repos` into [`Visible`] for `role` at `now`.
pub fn visible_repos<'r>(
    role: Role,
    repos: impl IntoIterator<Item = (&'r str, Option<CachedPermission>)>,
    freshness: Freshness,
    now_ms: i64,
) -> Visible<'r> {
    let mut v = Visible::default();
    for (repo, cached) in repos {
        match authorize(role, UiAction::Read, cached, false, freshness, now_ms) {
            Decision::Allow => v.shown.push(repo),
            Decision::Recheck => v.recheck.push(repo),
            Decision::NotFound | Decision::Forbidden => {}
        }
    }
    v
}

/// Why a state-changing request (a `POST` of the UI) was refused: 403 with the message, and
/// nothing done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PostRefusal {
    #[error("this request came from another site; submit the form from Sluice's own page")]
    CrossSite,
    #[error(transparent)]
    Csrf(#[from] CsrfRefusal),
}

/// A state-changing request's headers and form, as far as the checks need them.
#[derive(Debug, Clone, Copy, Default)]
pub struct PostRequest<'a> {
    /// The form's path (`pages::routes::LOCK_RELEASE`…): the action the token is bound to.
    pub action: &'a str,
    /// The form's `csrf` field.
    pub csrf: Option<&'a str>,
    pub origin: Option<&'a str>,
    pub sec_fetch_site: Option<&'a str>,
}

/// The checks every state-changing request passes before anything is done, after
/// [`authenticate`] and before [`authorize`]: for a principal a browser authenticates by
/// itself (a session, the dev flag) the request must be same-origin by the browser's headers
/// (`session::same_origin`) and carry the CSRF token for its action and session; a bearer
/// token needs neither (no browser sends one by itself). `public_origin` is
/// `scheme://host[:port]` of `public_url`. Under the dev flag, tokens are those of
/// [`SessionId::DEV`].
pub fn check_post(
    principal: &Principal,
    keys: &UiKeys,
    req: &PostRequest<'_>,
    public_origin: &str,
) -> Result<(), PostRefusal> {
    let id = match principal {
        Principal::ApiToken => return Ok(()),
        Principal::User(s) => s.id,
        Principal::DevNoAuth => SessionId::DEV,
    };
    if !same_origin(req.origin, req.sec_fetch_site, public_origin) {
        return Err(PostRefusal::CrossSite);
    }
    check_csrf(keys, &id, req.action, req.csrf)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ui::session::{SessionId, seal_session};

    #[test]
    fn authentication_table() {
        let keys = UiKeys::derive(&[1u8; 32]).unwrap();
        let other = UiKeys::derive(&[2u8; 32]).unwrap();
        let now = 10_000_000;
        let s = Session::new(
            "ana",
            7,
            SessionId::from_bytes([3; 16]),
            now - 1000,
            3_600_000,
        );
        let cookie = format!("__Host-sluice_session={}", seal_session(&keys, &s));
        let old = Session::new("ana", 7, SessionId::from_bytes([3; 16]), 0, 1000);
        let expired = format!("__Host-sluice_session={}", seal_session(&keys, &old));
        let forged = format!("__Host-sluice_session={}", seal_session(&other, &s));
        let secure = CookieSettings { secure: true };
        let full = AuthConfig {
            api_token: Some("tok-123"),
            keys: Some(&keys),
            cookies: secure,
            insecure_no_auth: false,
        };
        let token_only = AuthConfig { keys: None, ..full };
        let nothing = AuthConfig {
            api_token: None,
            keys: None,
            ..full
        };
        let dev = AuthConfig {
            api_token: None,
            keys: None,
            insecure_no_auth: true,
            ..full
        };
        let dev_with_login = AuthConfig {
            insecure_no_auth: true,
            ..full
        };
        let user = Authenticated::Principal(Principal::User(s.clone()));
        let admin = Authenticated::Principal(Principal::ApiToken);
        let login = Authenticated::LoginRequired {
            clear_cookie: false,
        };
        type Case<'a> = (
            &'a str,
            AuthConfig<'a>,
            Option<&'a str>,
            Option<&'a str>,
            Authenticated,
        );
        let cases: Vec<Case> = vec![
            ("session", full, None, Some(&cookie), user.clone()),
            ("no session", full, None, None, login.clone()),
            (
                "other cookies only",
                full,
                None,
                Some("theme=dark"),
                login.clone(),
            ),
            (
                "expired",
                full,
                None,
                Some(&expired),
                Authenticated::LoginRequired { clear_cookie: true },
            ),
            (
                "forged",
                full,
                None,
                Some(&forged),
                Authenticated::Unauthorized { clear_cookie: true },
            ),
            ("token", full, Some("Bearer tok-123"), None, admin.clone()),
            (
                "token beats cookie",
                full,
                Some("Bearer tok-123"),
                Some(&cookie),
                admin.clone(),
            ),
            (
                "wrong token, valid cookie: no fallback",
                full,
                Some("Bearer nope"),
                Some(&cookie),
                Authenticated::Unauthorized {
                    clear_cookie: false,
                },
            ),
            (
                "empty bearer",
                full,
                Some("Bearer "),
                None,
                Authenticated::Unauthorized {
                    clear_cookie: false,
                },
            ),
            (
                "basic auth",
                full,
                Some("Basic dG9rLTEyMw=="),
                None,
                Authenticated::Unauthorized {
                    clear_cookie: false,
                },
            ),
            (
                "token without login configured",
                token_only,
                Some("Bearer tok-123"),
                None,
                admin,
            ),
            (
                "no login configured",
                token_only,
                None,
                None,
                Authenticated::NotConfigured,
            ),
            (
                "no login configured, a cookie",
                token_only,
                None,
                Some(&cookie),
                Authenticated::NotConfigured,
            ),
            (
                "nothing configured",
                nothing,
                None,
                None,
                Authenticated::NotConfigured,
            ),
            (
                "nothing configured, a bearer",
                nothing,
                Some("Bearer x"),
                None,
                Authenticated::Unauthorized {
                    clear_cookie: false,
                },
            ),
            (
                "dev",
                dev,
                None,
                None,
                Authenticated::Principal(Principal::DevNoAuth),
            ),
            (
                "dev with login, no session",
                dev_with_login,
                None,
                None,
                Authenticated::Principal(Principal::DevNoAuth),
            ),
            (
                "dev with login, session",
                dev_with_login,
                None,
                Some(&cookie),
                user,
            ),
            (
                "dev with login, forged",
                dev_with_login,
                None,
                Some(&forged),
                Authenticated::Unauthorized { clear_cookie: true },
            ),
        ];
        for (name, cfg, authz, cookie, want) in cases {
            let req = Credentials {
                authorization: authz,
                cookie,
            };
            assert_eq!(authenticate(&cfg, &req, now), want, "{name}");
        }
    }

    #[test]
    fn permissions_from_github() {
        let cases = [
            ("admin", None, Permission::Admin),
            ("write", Some("maintain"), Permission::Maintain),
            ("write", Some("write"), Permission::Write),
            ("read", Some("triage"), Permission::Triage),
            ("read", Some("read"), Permission::Read),
            ("write", Some("custom-deployer"), Permission::Write),
            ("none", None, Permission::None),
            ("weird", None, Permission::None),
        ];
        for (p, r, want) in cases {
            assert_eq!(Permission::from_github(p, r), want, "{p} {r:?}");
        }
        assert!(Permission::Triage.can_read() && !Permission::Triage.can_write());
        assert!(Permission::Maintain.can_write());
        assert!(!Permission::None.can_read());
    }

    #[test]
    fn admins() {
        let a = Admins::parse(&["Ana", "@acme/Platform-Team", " bo "]).unwrap();
        assert!(a.names("ana") && a.names("BO") && !a.names("cy"));
        assert_eq!(
            a.teams(),
            &[("acme".to_string(), "platform-team".to_string())]
        );
        let errs = Admins::parse(&["ok", "a b", "acme/", "<x>/y"]).unwrap_err();
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(errs[0].contains("`a b`"), "{errs:?}");

        let s = Session::new("ana", 1, SessionId::from_bytes([0; 16]), 0, 1);
        let bo = Session::new("bo", 2, SessionId::from_bytes([0; 16]), 0, 1);
        let cy = Session::new("cy", 3, SessionId::from_bytes([0; 16]), 0, 1);
        assert_eq!(role(&Principal::User(s), &a, false), Role::Admin);
        assert_eq!(role(&Principal::User(bo), &a, false), Role::Admin);
        assert_eq!(role(&Principal::User(cy.clone()), &a, false), Role::Member);
        assert_eq!(role(&Principal::User(cy), &a, true), Role::Admin);
        assert_eq!(
            role(&Principal::ApiToken, &Admins::default(), false),
            Role::Admin
        );
        assert_eq!(
            role(&Principal::DevNoAuth, &Admins::default(), false),
            Role::Admin
        );
    }

    #[test]
    fn authorization_table() {
        use Decision::*;
        use Permission as P;
        use UiAction::*;
        let f = Freshness::default();
        let now = 1_000_000_000;
        let fresh = |p| {
            Some(CachedPermission {
                permission: p,
                checked_at_ms: now - 1000,
            })
        };
        let five_min = |p| {
            Some(CachedPermission {
                permission: p,
                checked_at_ms: now - 5 * 60 * 1000,
            })
        };
        let hour = |p| {
            Some(CachedPermission {
                permission: p,
                checked_at_ms: now - 3600 * 1000,
            })
        };
        #[rustfmt::skip]
        type Case = (&'static str, Role, UiAction, Option<CachedPermission>, bool, Decision);
        let cases: Vec<Case> = vec![
            (
                "admin, nothing known",
                Role::Admin,
                ReleaseLock,
                None,
                false,
                Allow,
            ),
            (
                "reader reads",
                Role::Member,
                Read,
                fresh(P::Read),
                false,
                Allow,
            ),
            (
                "triage reads",
                Role::Member,
                Read,
                fresh(P::Triage),
                false,
                Allow,
            ),
            (
                "no access: 404",
                Role::Member,
                Read,
                fresh(P::None),
                false,
                NotFound,
            ),
            (
                "no access, write: 404 not 403",
                Role::Member,
                ReleaseLock,
                fresh(P::None),
                false,
                NotFound,
            ),
            (
                "reader releases: 403",
                Role::Member,
                ReleaseLock,
                fresh(P::Read),
                false,
                Forbidden,
            ),
            (
                "reader acks: 403",
                Role::Member,
                ActOnDrift,
                fresh(P::Triage),
                false,
                Forbidden,
            ),
            (
                "writer releases",
                Role::Member,
                ReleaseLock,
                fresh(P::Write),
                false,
                Allow,
            ),
            (
                "maintainer acks",
                Role::Member,
                ActOnDrift,
                fresh(P::Maintain),
                false,
                Allow,
            ),
            ("not cached: ask", Role::Member, Read, None, false, Recheck),
            (
                "GitHub did not answer: 404",
                Role::Member,
                Read,
                None,
                true,
                NotFound,
            ),
            (
                "5 minutes old, read",
                Role::Member,
                Read,
                five_min(P::Write),
                false,
                Allow,
            ),
            (
                "5 minutes old, write: ask",
                Role::Member,
                ReleaseLock,
                five_min(P::Write),
                false,
                Recheck,
            ),
            (
                "5 minutes old, just fetched",
                Role::Member,
                ReleaseLock,
                five_min(P::Write),
                true,
                Allow,
            ),
            (
                "an hour old, read: ask",
                Role::Member,
                Read,
                hour(P::Read),
                false,
                Recheck,
            ),
            (
                "an hour old but unreadable: ask",
                Role::Member,
                Read,
                hour(P::None),
                false,
                Recheck,
            ),
        ];
        for (name, role, action, cached, fetched, want) in cases {
            assert_eq!(
                authorize(role, action, cached, fetched, f, now),
                want,
                "{name}"
            );
        }
        assert_eq!(authorize_global(Role::Admin), Allow);
        assert_eq!(authorize_global(Role::Member), NotFound);
    }

    #[test]
    fn bearer_comparison() {
        assert_eq!(bearer("Bearer tok"), Some("tok"));
        assert_eq!(bearer("bearer  tok "), Some("tok"));
        assert_eq!(bearer("BEARER tok"), Some("tok"));
        assert_eq!(bearer("Basic dG9r"), None);
        assert_eq!(bearer("Bearer"), None);
        assert_eq!(bearer("Bearertok"), None);
        assert!(token_matches("abc", "abc"));
        assert!(!token_matches("abc", "abd"));
        assert!(!token_matches("abc", "abcd"));
        assert!(!token_matches("abc", ""));
        assert!(Principal::DevNoAuth.needs_csrf());
        assert!(!Principal::ApiToken.needs_csrf());
    }

    /// A list shows what the viewer can read, asks about what is unknown or old, and hides
    /// the rest without a trace; admins see everything.
    #[test]
    fn list_visibility() {
        let f = Freshness::default();
        let now = 1_000_000_000;
        let c = |p, age_ms: i64| {
            Some(CachedPermission {
                permission: p,
                checked_at_ms: now - age_ms,
            })
        };
        let repos = vec![
            ("acme/read", c(Permission::Read, 1000)),
            ("acme/none", c(Permission::None, 1000)),
            ("acme/unknown", None),
            ("acme/old", c(Permission::Write, 3_600_000)),
            ("acme/write", c(Permission::Write, 1000)),
        ];
        let v = visible_repos(Role::Member, repos.clone(), f, now);
        assert_eq!(v.shown, vec!["acme/read", "acme/write"]);
        assert_eq!(v.recheck, vec!["acme/unknown", "acme/old"]);
        let admin = visible_repos(Role::Admin, repos, f, now);
        assert_eq!(admin.shown.len(), 5);
        assert!(admin.recheck.is_empty());
    }

    /// A POST without a token, with another session's or action's token, or from another
    /// site is refused before anything happens; the bearer token needs no token.
    #[test]
    fn post_checks_table() {
        use crate::core::ui::session::csrf_token;
        let keys = UiKeys::derive(&[4u8; 32]).unwrap();
        let s = Session::new("ana", 1, SessionId::from_bytes([5; 16]), 0, 1000);
        let user = Principal::User(s.clone());
        let good = csrf_token(&keys, &s.id, "/locks/release");
        let other_session = csrf_token(&keys, &SessionId::from_bytes([6; 16]), "/locks/release");
        let other_action = csrf_token(&keys, &s.id, "/drift/ack");
        let dev_token = csrf_token(&keys, &SessionId::DEV, "/locks/release");
        let origin = "https://sluice.example.com";
        let req = |csrf, origin, site| PostRequest {
            action: "/locks/release",
            csrf,
            origin,
            sec_fetch_site: site,
        };
        type Case<'a> = (
            &'a str,
            &'a Principal,
            PostRequest<'a>,
            Result<(), PostRefusal>,
        );
        let cases: Vec<Case> = vec![
            (
                "token, same origin",
                &user,
                req(Some(&good), Some(origin), Some("same-origin")),
                Ok(()),
            ),
            (
                "token, no origin headers",
                &user,
                req(Some(&good), None, None),
                Ok(()),
            ),
            (
                "no token",
                &user,
                req(None, Some(origin), None),
                Err(PostRefusal::Csrf(CsrfRefusal::Missing)),
            ),
            (
                "empty token",
                &user,
                req(Some(""), None, None),
                Err(PostRefusal::Csrf(CsrfRefusal::Missing)),
            ),
            (
                "another session's token",
                &user,
                req(Some(&other_session), None, None),
                Err(PostRefusal::Csrf(CsrfRefusal::Invalid)),
            ),
            (
                "another action's token",
                &user,
                req(Some(&other_action), None, None),
                Err(PostRefusal::Csrf(CsrfRefusal::Invalid)),
            ),
            (
                "cross-site, with a token",
                &user,
                req(Some(&good), Some("https://evil.example"), None),
                Err(PostRefusal::CrossSite),
            ),
            (
                "cross-site fetch",
                &user,
                req(Some(&good), None, Some("cross-site")),
                Err(PostRefusal::CrossSite),
            ),
            (
                "dev flag, dev token",
                &Principal::DevNoAuth,
                req(Some(&dev_token), None, None),
                Ok(()),
            ),
            (
                "dev flag, no token",
                &Principal::DevNoAuth,
                req(None, None, None),
                Err(PostRefusal::Csrf(CsrfRefusal::Missing)),
            ),
            (
                "bearer token",
                &Principal::ApiToken,
                req(None, None, None),
                Ok(()),
            ),
        ];
        for (name, principal, r, want) in cases {
            assert_eq!(check_post(principal, &keys, &r, origin), want, "{name}");
        }
    }
}
