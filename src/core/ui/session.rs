//! Signed session cookies and CSRF tokens of the web UI.
//!
//! A session is a cookie the server signs and reads back: nothing is kept server-side, so a
//! replica or a restart does not log anyone out. The cookie carries the GitHub login and user
//! id, a random session id and the expiry; its value is
//!
//! ```text
//! base64url(payload) "." base64url(HMAC-SHA256(session_key, "sluice-session-v1\0" || payload))
//! payload = "1|" user_id "|" issued_ms "|" expires_ms "|" session_id_hex "|" login
//! ```
//!
//! Reading a cookie gives a [`SessionCheck`]: the signature is verified first (constant time), so
//! a cookie that was altered, truncated or signed with another key is [`SessionCheck::Forged`]
//! (answer 401), and only a genuine cookie can be [`SessionCheck::Expired`] (send to the login
//! page). [`SessionCheck::decision`] says which.
//!
//! A CSRF token is `base64url(HMAC-SHA256(csrf_key, session_id || 0x00 || form_action))`: bound
//! to the session and to the form's action path, so a token leaked from one form does not work
//! on another, and nothing needs storing. Checked in constant time ([`check_csrf`]).
//!
//! Pure: keys, session ids and the time come in as arguments (the HTTP layer draws ids from the
//! OS's random source). Keys are derived from the `session_secret` setting with
//! [`UiKeys::derive`]; their `Debug` never shows them.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The shortest `session_secret` accepted, in bytes (the HMAC key's full strength).
pub const MIN_SECRET_BYTES: usize = 32;

/// How long a session lasts by default (8 hours, a working day). Permissions are re-checked
/// during a session anyway (`access`), so this bounds only how long a stolen cookie works.
pub const DEFAULT_SESSION_TTL_MS: i64 = 8 * 3600 * 1000;

/// Cookie values longer than this are refused unread (browsers cap a cookie at 4096 bytes).
pub const MAX_COOKIE_VALUE_BYTES: usize = 4096;

/// The session cookie's name: `__Host-sluice_session` with `Secure` cookies (the prefix makes
/// the browser refuse it unless it was set by this host over HTTPS with `Path=/` and no
/// `Domain`, so a sibling subdomain cannot plant one), `sluice_session` for plain-HTTP
/// development.
pub fn session_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-sluice_session"
    } else {
        "sluice_session"
    }
}

/// The keys of the UI, each derived from the one `session_secret` for one purpose, so a value
/// signed for one purpose (a session) is never valid for another (a CSRF token, an OAuth state).
#[derive(Clone)]
pub struct UiKeys {
    pub(crate) session: [u8; 32],
    pub(crate) csrf: [u8; 32],
    pub(crate) oauth: [u8; 32],
}

/// Why a `session_secret` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error(
        "session_secret is {got} bytes; it must be at least {MIN_SECRET_BYTES} (e.g. `openssl rand -hex 32`)"
    )]
    TooShort { got: usize },
}

impl UiKeys {
    /// Derives the keys from `secret` (HMAC-SHA256 of a purpose label under the secret).
    pub fn derive(secret: &[u8]) -> Result<UiKeys, KeyError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(KeyError::TooShort { got: secret.len() });
        }
        let sub = |label: &str| -> [u8; 32] {
            let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
            mac.update(label.as_bytes());
            mac.finalize().into_bytes().into()
        };
        Ok(UiKeys {
            session: sub("sluice ui v1 session"),
            csrf: sub("sluice ui v1 csrf"),
            oauth: sub("sluice ui v1 oauth-state"),
        })
    }
}

/// Never shows the keys.
impl fmt::Debug for UiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UiKeys(***)")
    }
}

pub(crate) fn mac(key: &[u8; 32], domain: &str, parts: &[&[u8]]) -> HmacSha256 {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    m.update(domain.as_bytes());
    m.update(&[0]);
    for p in parts {
        m.update(p);
    }
    m
}

/// 16 random bytes naming one session (from the OS's random source; see the HTTP layer).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId([u8; 16]);

impl SessionId {
    /// The session id of every request under `--insecure-ui-no-auth` (development only: CSRF
    /// tokens stay unguessable to other sites since they are keyed, but all viewers share them).
    pub const DEV: SessionId = SessionId([0; 16]);

    pub fn from_bytes(b: [u8; 16]) -> SessionId {
        SessionId(b)
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// 32 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    fn parse_hex(s: &str) -> Option<SessionId> {
        let v = hex::decode(s).ok()?;
        Some(SessionId(v.try_into().ok()?))
    }
}

/// Only a prefix: enough to match log lines, not enough to be a handle on the session.
impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({}…)", &self.to_hex()[..6])
    }
}

/// Who a session belongs to, as GitHub identified them at login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// GitHub login (`[A-Za-z0-9-]`, at most 39 characters).
    pub login: String,
    /// GitHub's numeric user id (stable across renames; permission checks use the login).
    pub user_id: u64,
    pub id: SessionId,
    /// Milliseconds since the Unix epoch.
    pub issued_at_ms: i64,
    /// Milliseconds since the Unix epoch; the session is expired from this instant on.
    pub expires_at_ms: i64,
}

impl Session {
    /// A session for `login` starting at `now_ms` and lasting `ttl_ms`.
    pub fn new(login: &str, user_id: u64, id: SessionId, now_ms: i64, ttl_ms: i64) -> Session {
        Session {
            login: login.to_string(),
            user_id,
            id,
            issued_at_ms: now_ms,
            expires_at_ms: now_ms.saturating_add(ttl_ms),
        }
    }
}

/// A GitHub login as GitHub allows it: letters, digits and single hyphens, not at either end,
/// at most 39 characters. Anything else is never a login we issued a session for.
pub fn is_github_login(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 39
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

const SESSION_DOMAIN: &str = "sluice-session-v1";

/// The cookie value for `session` (see the module docs for the format).
pub fn seal_session(keys: &UiKeys, session: &Session) -> String {
    let payload = format!(
        "1|{}|{}|{}|{}|{}",
        session.user_id,
        session.issued_at_ms,
        session.expires_at_ms,
        session.id.to_hex(),
        session.login
    );
    let tag = mac(&keys.session, SESSION_DOMAIN, &[payload.as_bytes()]).finalize();
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(payload.as_bytes()),
        URL_SAFE_NO_PAD.encode(tag.into_bytes())
    )
}

/// What a request's session cookie says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionCheck {
    /// No session cookie.
    Missing,
    /// Genuine and current.
    Valid(Session),
    /// Genuine but past its expiry: the viewer logs in again.
    Expired { login: String },
    /// Not signed by this server's key (altered, truncated, made up, or signed with a rotated
    /// key): refused outright.
    Forged,
}

/// What the HTTP layer does with a [`SessionCheck`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthDecision {
    /// Serve the page to the session's user.
    Proceed,
    /// 303 to `/login?return_to=…` (no session, or it expired); an expired cookie is cleared.
    RedirectToLogin,
    /// 401 with the error page, and the cookie cleared.
    Unauthorized,
}

impl SessionCheck {
    pub fn decision(&self) -> AuthDecision {
        match self {
            SessionCheck::Valid(_) => AuthDecision::Proceed,
            SessionCheck::Missing | SessionCheck::Expired { .. } => AuthDecision::RedirectToLogin,
            SessionCheck::Forged => AuthDecision::Unauthorized,
        }
    }

    /// Whether the answer should clear the cookie (it was there and is no good).
    pub fn clears_cookie(&self) -> bool {
        matches!(self, SessionCheck::Expired { .. } | SessionCheck::Forged)
    }
}

/// Reads the session from a cookie value (the part after `name=`), at `now_ms`.
pub fn open_session(keys: &UiKeys, value: &str, now_ms: i64) -> SessionCheck {
    if value.len() > MAX_COOKIE_VALUE_BYTES {
        return SessionCheck::Forged;
    }
    let Some((payload_b64, tag_b64)) = value.split_once('.') else {
        return SessionCheck::Forged;
    };
    let (Ok(payload), Ok(tag)) = (
        URL_SAFE_NO_PAD.decode(payload_b64),
        URL_SAFE_NO_PAD.decode(tag_b64),
    ) else {
        return SessionCheck::Forged;
    };
    if mac(&keys.session, SESSION_DOMAIN, &[&payload])
        .verify_slice(&tag)
        .is_err()
    {
        return SessionCheck::Forged;
    }
    // Signed by us: a payload we cannot read means the format changed under the same key.
    // Refusing it (rather than trusting part of it) is the safe reading.
    let Some(session) = parse_payload(&payload) else {
        return SessionCheck::Forged;
    };
    if now_ms >= session.expires_at_ms {
        return SessionCheck::Expired {
            login: session.login,
        };
    }
    SessionCheck::Valid(session)
}

fn parse_payload(payload: &[u8]) -> Option<Session> {
    let text = std::str::from_utf8(payload).ok()?;
    let mut it = text.splitn(6, '|');
    if it.next()? != "1" {
        return None;
    }
    let user_id = it.next()?.parse().ok()?;
    let issued_at_ms = it.next()?.parse().ok()?;
    let expires_at_ms = it.next()?.parse().ok()?;
    let id = SessionId::parse_hex(it.next()?)?;
    let login = it.next()?;
    if !is_github_login(login) {
        return None;
    }
    Some(Session {
        login: login.to_string(),
        user_id,
        id,
        issued_at_ms,
        expires_at_ms,
    })
}

/// Reads the session from a request's `Cookie` header (`None` when it has none): the first
/// cookie named `name` (browsers send the most specific first).
pub fn session_from_header(
    keys: &UiKeys,
    cookie_header: Option<&str>,
    name: &str,
    now_ms: i64,
) -> SessionCheck {
    match cookie_header.and_then(|h| cookie_value(h, name)) {
        None => SessionCheck::Missing,
        Some(v) => open_session(keys, v, now_ms),
    }
}

/// The value of the first cookie named `name` in a `Cookie` header
/// (`a=1; b=2`, RFC 6265 §5.4).
pub fn cookie_value<'h>(header: &'h str, name: &str) -> Option<&'h str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k.trim() == name).then(|| v.trim().trim_matches('"'))
    })
}

/// How the UI's cookies are set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookieSettings {
    /// `Secure` (and the `__Host-` prefix): on unless the UI is served over plain HTTP for
    /// development (`public_url` with `http://`).
    pub secure: bool,
}

/// A `Set-Cookie` header value: `HttpOnly` (no script reads it), `SameSite=Lax` (not sent on
/// cross-site POSTs, sent on the top-level GET back from GitHub's login), `Path=/`, `Secure`
/// when configured, and `Max-Age` in seconds.
pub fn set_cookie(name: &str, value: &str, max_age_secs: i64, settings: CookieSettings) -> String {
    let secure = if settings.secure { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; Max-Age={max_age_secs}; HttpOnly; SameSite=Lax{secure}")
}

/// A `Set-Cookie` header value that deletes the cookie.
pub fn clear_cookie(name: &str, settings: CookieSettings) -> String {
    set_cookie(name, "", 0, settings)
}

/// The `Set-Cookie` value that starts `session` (`Max-Age` until its expiry from `now_ms`).
pub fn session_cookie(
    keys: &UiKeys,
    session: &Session,
    now_ms: i64,
    settings: CookieSettings,
) -> String {
    let max_age = ((session.expires_at_ms - now_ms) / 1000).max(0);
    set_cookie(
        session_cookie_name(settings.secure),
        &seal_session(keys, session),
        max_age,
        settings,
    )
}

const CSRF_DOMAIN: &str = "sluice-csrf-v1";

/// The CSRF token for the form that posts to `action` (its path, e.g. `/locks/release`) in
/// session `id`. Goes in a hidden field named [`CSRF_FIELD`].
pub fn csrf_token(keys: &UiKeys, id: &SessionId, action: &str) -> String {
    let tag = mac(
        &keys.csrf,
        CSRF_DOMAIN,
        &[id.as_bytes(), &[0], action.as_bytes()],
    )
    .finalize();
    URL_SAFE_NO_PAD.encode(tag.into_bytes())
}

/// The form field that carries the CSRF token.
pub const CSRF_FIELD: &str = "csrf";

/// Why a state-changing request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CsrfRefusal {
    #[error("the form carried no CSRF token; reload the page and submit it again")]
    Missing,
    #[error(
        "the form's CSRF token is not valid for this session and action; reload the page and submit it again"
    )]
    Invalid,
}

/// Checks the token a form posted to `action` in session `id` (constant-time comparison).
pub fn check_csrf(
    keys: &UiKeys,
    id: &SessionId,
    action: &str,
    given: Option<&str>,
) -> Result<(), CsrfRefusal> {
    let given = given
        .filter(|g| !g.is_empty())
        .ok_or(CsrfRefusal::Missing)?;
    let tag = URL_SAFE_NO_PAD
        .decode(given)
        .map_err(|_| CsrfRefusal::Invalid)?;
    mac(
        &keys.csrf,
        CSRF_DOMAIN,
        &[id.as_bytes(), &[0], action.as_bytes()],
    )
    .verify_slice(&tag)
    .map_err(|_| CsrfRefusal::Invalid)
}

/// Defence in depth for state-changing requests, on top of the CSRF token: the browser's
/// `Sec-Fetch-Site` (when sent) must be `same-origin` (or `none`: typed by the user), and the
/// `Origin` header (when sent) must be `public_origin` (`scheme://host[:port]` of
/// `public_url`). Requests with neither header (old browsers, curl) pass to the token check.
pub fn same_origin(
    origin: Option<&str>,
    sec_fetch_site: Option<&str>,
    public_origin: &str,
) -> bool {
    if let Some(site) = sec_fetch_site
        && site != "same-origin"
        && site != "none"
    {
        return false;
    }
    match origin {
        None => true,
        Some(o) => o
            .trim_end_matches('/')
            .eq_ignore_ascii_case(public_origin.trim_end_matches('/')),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> UiKeys {
        UiKeys::derive(&[7u8; 32]).unwrap()
    }

    fn session() -> Session {
        Session::new(
            "ana",
            42,
            SessionId::from_bytes([9; 16]),
            1_000_000,
            3_600_000,
        )
    }

    #[test]
    fn short_secrets_are_refused() {
        assert_eq!(
            UiKeys::derive(b"too short").unwrap_err(),
            KeyError::TooShort { got: 9 }
        );
        assert!(UiKeys::derive(&[0u8; 32]).is_ok());
        assert_eq!(format!("{:?}", keys()), "UiKeys(***)");
    }

    #[test]
    fn a_sealed_session_reads_back_until_it_expires() {
        let k = keys();
        let s = session();
        let v = seal_session(&k, &s);
        assert_eq!(
            open_session(&k, &v, 1_000_000),
            SessionCheck::Valid(s.clone())
        );
        assert_eq!(open_session(&k, &v, 4_599_999), SessionCheck::Valid(s));
        let expired = open_session(&k, &v, 4_600_000);
        assert_eq!(
            expired,
            SessionCheck::Expired {
                login: "ana".into()
            }
        );
        assert_eq!(expired.decision(), AuthDecision::RedirectToLogin);
        assert!(expired.clears_cookie());
    }

    /// Every way of tampering with a cookie is `Forged` (401), never `Expired` or `Valid`.
    #[test]
    fn forged_cookies_table() {
        let k = keys();
        let v = seal_session(&k, &session());
        let (payload, tag) = v.split_once('.').unwrap();
        let other_key = seal_session(&UiKeys::derive(&[8u8; 32]).unwrap(), &session());
        let forge_payload = |text: &str| format!("{}.{}", URL_SAFE_NO_PAD.encode(text), tag);
        // A payload signed by us in a format we do not read.
        let signed_garbage = {
            let p = "2|garbage";
            let t = mac(&k.session, SESSION_DOMAIN, &[p.as_bytes()]).finalize();
            format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(p),
                URL_SAFE_NO_PAD.encode(t.into_bytes())
            )
        };
        let mut flipped = tag.as_bytes().to_vec();
        flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
        let cases: Vec<(&str, String)> = vec![
            ("empty", String::new()),
            ("no dot", payload.to_string()),
            ("tag dropped", format!("{payload}.")),
            ("tag truncated", format!("{payload}.{}", &tag[..10])),
            (
                "tag altered",
                format!("{payload}.{}", String::from_utf8(flipped).unwrap()),
            ),
            ("not base64", "!!!.???".into()),
            ("other key", other_key),
            (
                "expiry extended",
                forge_payload(&format!(
                    "1|42|1000000|999999999999|{}|ana",
                    "09".repeat(16)
                )),
            ),
            (
                "login changed",
                forge_payload(&format!("1|42|1000000|4600000|{}|admin", "09".repeat(16))),
            ),
            ("signed unknown format", signed_garbage),
            ("huge", "a".repeat(MAX_COOKIE_VALUE_BYTES + 1)),
        ];
        for (name, value) in cases {
            let got = open_session(&k, &value, 1_000_000);
            assert_eq!(got, SessionCheck::Forged, "{name}");
            assert_eq!(got.decision(), AuthDecision::Unauthorized, "{name}");
        }
    }

    #[test]
    fn cookie_header_parsing() {
        let k = keys();
        let v = seal_session(&k, &session());
        let name = session_cookie_name(true);
        let header = format!("theme=dark; {name}={v}; other=1");
        assert!(matches!(
            session_from_header(&k, Some(&header), name, 1_000_000),
            SessionCheck::Valid(_)
        ));
        assert_eq!(
            session_from_header(&k, None, name, 1_000_000),
            SessionCheck::Missing
        );
        assert_eq!(
            session_from_header(&k, Some("theme=dark"), name, 1_000_000),
            SessionCheck::Missing
        );
        // The insecure name is a different cookie.
        let plain = format!("sluice_session={v}");
        assert_eq!(
            session_from_header(&k, Some(&plain), name, 1_000_000),
            SessionCheck::Missing
        );
        assert_eq!(cookie_value("a=1;b=\"2\" ; c", "b"), Some("2"));
        assert_eq!(cookie_value("ab=1", "a"), None);
    }

    #[test]
    fn set_cookie_attributes() {
        let k = keys();
        let secure = CookieSettings { secure: true };
        let c = session_cookie(&k, &session(), 1_000_000, secure);
        assert!(c.starts_with("__Host-sluice_session="), "{c}");
        assert!(
            c.ends_with("; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax; Secure"),
            "{c}"
        );
        assert_eq!(
            clear_cookie("sluice_session", CookieSettings { secure: false }),
            "sluice_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"
        );
    }

    #[test]
    fn csrf_tokens_are_bound_to_session_and_action() {
        let k = keys();
        let a = SessionId::from_bytes([1; 16]);
        let b = SessionId::from_bytes([2; 16]);
        let t = csrf_token(&k, &a, "/locks/release");
        assert_eq!(check_csrf(&k, &a, "/locks/release", Some(&t)), Ok(()));
        let cases: &[(&str, &SessionId, &str, Option<&str>, CsrfRefusal)] = &[
            ("missing", &a, "/locks/release", None, CsrfRefusal::Missing),
            (
                "empty",
                &a,
                "/locks/release",
                Some(""),
                CsrfRefusal::Missing,
            ),
            (
                "other session",
                &b,
                "/locks/release",
                Some(&t),
                CsrfRefusal::Invalid,
            ),
            (
                "other action",
                &a,
                "/drift/ack",
                Some(&t),
                CsrfRefusal::Invalid,
            ),
            (
                "not base64",
                &a,
                "/locks/release",
                Some("%%%"),
                CsrfRefusal::Invalid,
            ),
            (
                "truncated",
                &a,
                "/locks/release",
                Some(&t[..20]),
                CsrfRefusal::Invalid,
            ),
        ];
        for (name, id, action, given, want) in cases {
            assert_eq!(check_csrf(&k, id, action, *given), Err(*want), "{name}");
        }
        // A token from another key (another server) is no good either.
        let other = UiKeys::derive(&[3u8; 40]).unwrap();
        assert_eq!(
            check_csrf(&other, &a, "/locks/release", Some(&t)),
            Err(CsrfRefusal::Invalid)
        );
    }

    #[test]
    fn same_origin_table() {
        let o = "https://sluice.example.com";
        let cases = [
            (None, None, true),
            (
                Some("https://sluice.example.com"),
                Some("same-origin"),
                true,
            ),
            (Some("https://sluice.example.com/"), None, true),
            (None, Some("none"), true),
            (Some("https://evil.example"), None, false),
            (None, Some("cross-site"), false),
            (None, Some("same-site"), false),
            (Some("null"), None, false),
        ];
        for (origin, site, want) in cases {
            assert_eq!(same_origin(origin, site, o), want, "{origin:?} {site:?}");
        }
    }

    #[test]
    fn logins() {
        for ok in ["ana", "a-b", "A1", &"x".repeat(39)] {
            assert!(is_github_login(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "a b", "a_b", "<script>", &"x".repeat(40)] {
            assert!(!is_github_login(bad), "{bad}");
        }
    }
}
