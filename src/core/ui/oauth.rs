//! Login with GitHub: the OAuth web flow's `state`, the authorize URL and the token exchange's
//! request and response shapes (GitHub docs: "Authorizing OAuth apps" → web application flow;
//! the same endpoints serve a GitHub App's user authorization).
//!
//! The flow, and who does what:
//! 1. `GET /login/start?return_to=/x` — [`begin_login`] draws on a fresh random nonce: the
//!    browser gets the nonce in a short-lived cookie ([`oauth_cookie_name`]), GitHub gets a
//!    signed `state` carrying the nonce, an expiry and where to go back to; the browser is sent
//!    to [`authorize_url`].
//! 2. GitHub sends the browser back to `GET /login/callback?code=…&state=…`. [`finish_login`]
//!    checks the state: signed by us, not expired, and carrying *this browser's* nonce (so a
//!    login started in an attacker's browser cannot be completed in the victim's — login CSRF).
//! 3. The HTTP layer posts [`token_request`] to GitHub, reads the answer with
//!    [`parse_token_response`], asks `GET /user` with the token ([`parse_user`]) and starts a
//!    session. The user's token is then dropped: what they may see is asked of GitHub with the
//!    server's own credentials (see `access`), so no user token is stored.
//!
//! No scope is requested: the login only identifies the user (for a GitHub App the user token
//! is limited to the app's permissions anyway).
//!
//! Pure: the nonce and the time come in as arguments; the HTTP calls are the caller's.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::Mac;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::session::{UiKeys, is_github_login, mac};

/// How long a login may take between leaving for GitHub and coming back (10 minutes).
pub const STATE_TTL_MS: i64 = 10 * 60 * 1000;

/// The longest `return_to` kept; longer ones go back to `/`.
pub const MAX_RETURN_TO_BYTES: usize = 1024;

/// The cookie that binds a login to the browser that started it (`__Host-` with `Secure`
/// cookies, as for the session).
pub fn oauth_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-sluice_oauth"
    } else {
        "sluice_oauth"
    }
}

const STATE_DOMAIN: &str = "sluice-oauth-state-v1";

/// What starting a login produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginStart {
    /// The `state` parameter for GitHub.
    pub state: String,
    /// The value of the [`oauth_cookie_name`] cookie (set with `Max-Age` [`STATE_TTL_MS`]/1000).
    pub cookie_value: String,
}

/// Starts a login at `now_ms` that returns to `return_to` (made safe with [`safe_return_to`]).
/// `nonce` must come from a cryptographic random source.
pub fn begin_login(keys: &UiKeys, nonce: [u8; 16], return_to: &str, now_ms: i64) -> LoginStart {
    let nonce_hex = hex::encode(nonce);
    let payload = format!(
        "1|{}|{}|{}",
        now_ms.saturating_add(STATE_TTL_MS),
        nonce_hex,
        safe_return_to(return_to)
    );
    let tag = mac(&keys.oauth, STATE_DOMAIN, &[payload.as_bytes()]).finalize();
    LoginStart {
        state: format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload.as_bytes()),
            URL_SAFE_NO_PAD.encode(tag.into_bytes())
        ),
        cookie_value: nonce_hex,
    }
}

/// Why a login callback was refused. Each is answered with the login page and its message
/// (400); none of them starts a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StateRefusal {
    #[error("the login answer from GitHub carried no state; start the login again")]
    Missing,
    #[error("the login answer's state was not issued by this server; start the login again")]
    Forged,
    #[error("the login took longer than 10 minutes; start it again")]
    Expired,
    #[error(
        "this login was started in another browser (or its cookie was blocked); start it again here"
    )]
    OtherBrowser,
}

/// Checks the callback's `state` against the browser's [`oauth_cookie_name`] cookie at
/// `now_ms`; returns where to send the user after login.
pub fn finish_login(
    keys: &UiKeys,
    state: Option<&str>,
    cookie_value: Option<&str>,
    now_ms: i64,
) -> Result<String, StateRefusal> {
    let state = state
        .filter(|s| !s.is_empty())
        .ok_or(StateRefusal::Missing)?;
    if state.len() > 4 * MAX_RETURN_TO_BYTES {
        return Err(StateRefusal::Forged);
    }
    let (p, t) = state.split_once('.').ok_or(StateRefusal::Forged)?;
    let payload = URL_SAFE_NO_PAD
        .decode(p)
        .map_err(|_| StateRefusal::Forged)?;
    let tag = URL_SAFE_NO_PAD
        .decode(t)
        .map_err(|_| StateRefusal::Forged)?;
    mac(&keys.oauth, STATE_DOMAIN, &[&payload])
        .verify_slice(&tag)
        .map_err(|_| StateRefusal::Forged)?;
    let text = std::str::from_utf8(&payload).map_err(|_| StateRefusal::Forged)?;
    let mut it = text.splitn(4, '|');
    let (Some("1"), Some(expires), Some(nonce), Some(return_to)) =
        (it.next(), it.next(), it.next(), it.next())
    else {
        return Err(StateRefusal::Forged);
    };
    let expires: i64 = expires.parse().map_err(|_| StateRefusal::Forged)?;
    if now_ms >= expires {
        return Err(StateRefusal::Expired);
    }
    let cookie = cookie_value.unwrap_or("");
    if !bool::from(nonce.as_bytes().ct_eq(cookie.as_bytes())) {
        return Err(StateRefusal::OtherBrowser);
    }
    Ok(safe_return_to(return_to))
}

/// `s` when it is a path on this server (`/…`, not `//host` or `/\host`, no control
/// characters, not too long); `/` otherwise. Keeps the login from being an open redirect.
pub fn safe_return_to(s: &str) -> String {
    let ok = s.starts_with('/')
        && !s.starts_with("//")
        && !s.starts_with("/\\")
        && s.len() <= MAX_RETURN_TO_BYTES
        && !s.chars().any(|c| c.is_control() || c == '\\');
    if ok { s.to_string() } else { "/".to_string() }
}

/// The GitHub web host for an API base URL: `https://api.github.com` → `https://github.com`;
/// GitHub Enterprise Server's `https://host/api/v3` → `https://host`; anything else (a test
/// server) as it is.
pub fn web_url_from_api_url(api_url: &str) -> String {
    let api = api_url.trim_end_matches('/');
    if api.eq_ignore_ascii_case("https://api.github.com") {
        return "https://github.com".to_string();
    }
    api.strip_suffix("/api/v3").unwrap_or(api).to_string()
}

/// The OAuth client (a GitHub App's or an OAuth app's client id) and where GitHub sends the
/// browser back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthClient {
    /// GitHub's web host, e.g. `https://github.com` ([`web_url_from_api_url`]).
    pub web_url: String,
    pub client_id: String,
    /// `{public_url}/login/callback` ([`callback_url`]); must match the app's registered
    /// callback URL.
    pub redirect_uri: String,
}

/// The callback URL under `public_url`.
pub fn callback_url(public_url: &str) -> String {
    format!("{}/login/callback", public_url.trim_end_matches('/'))
}

/// Where the browser goes to log in: `{web}/login/oauth/authorize?client_id=…&redirect_uri=…&
/// state=…&allow_signup=false` (no scope: identity only).
pub fn authorize_url(client: &OAuthClient, state: &str) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", &client.client_id)
        .append_pair("redirect_uri", &client.redirect_uri)
        .append_pair("state", state)
        .append_pair("allow_signup", "false")
        .finish();
    format!(
        "{}/login/oauth/authorize?{query}",
        client.web_url.trim_end_matches('/')
    )
}

/// The token exchange: `POST url` with headers `Accept: application/json` and `Content-Type:
/// application/x-www-form-urlencoded`, and `body`. Its `Debug` hides the body (it carries the
/// client secret).
#[derive(Clone, PartialEq, Eq)]
pub struct TokenRequest {
    pub url: String,
    pub body: String,
}

impl TokenRequest {
    pub const ACCEPT: &'static str = "application/json";
    pub const CONTENT_TYPE: &'static str = "application/x-www-form-urlencoded";
}

impl fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRequest")
            .field("url", &self.url)
            .field("body", &"***")
            .finish()
    }
}

/// Why a login could not be completed after GitHub's answer. The message is for the user on
/// the login page; details go to the server's log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    #[error("GitHub's answer carried no valid code; start the login again")]
    BadCode,
    /// GitHub said no (`bad_verification_code`, `incorrect_client_credentials`, …).
    #[error("GitHub refused the login ({error}); start it again")]
    Refused { error: String },
    #[error("GitHub's answer could not be read; start the login again")]
    Unreadable,
}

/// Whether `code` looks like an OAuth code GitHub issues (letters, digits, `-`/`_`, at most
/// 128 characters): anything else is not sent on.
pub fn valid_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 128
        && code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The token exchange request for `code`.
pub fn token_request(
    client: &OAuthClient,
    client_secret: &str,
    code: &str,
) -> Result<TokenRequest, OAuthError> {
    if !valid_code(code) {
        return Err(OAuthError::BadCode);
    }
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", &client.client_id)
        .append_pair("client_secret", client_secret)
        .append_pair("code", code)
        .append_pair("redirect_uri", &client.redirect_uri)
        .finish();
    Ok(TokenRequest {
        url: format!(
            "{}/login/oauth/access_token",
            client.web_url.trim_end_matches('/')
        ),
        body,
    })
}

/// A user's access token, used once to ask who they are. `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct UserToken(String);

impl UserToken {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for UserToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UserToken(***)")
    }
}

/// Reads the token exchange's answer. GitHub answers errors with HTTP 200 and
/// `{"error": "…", "error_description": "…"}`, so the body decides, not the status.
pub fn parse_token_response(body: &str) -> Result<UserToken, OAuthError> {
    #[derive(Deserialize)]
    struct Answer {
        access_token: Option<String>,
        error: Option<String>,
    }
    let a: Answer = serde_json::from_str(body).map_err(|_| OAuthError::Unreadable)?;
    if let Some(error) = a.error {
        // Only GitHub's error code (a short identifier) is shown, never free text.
        let error: String = error
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        return Err(OAuthError::Refused { error });
    }
    match a.access_token {
        Some(t) if !t.is_empty() => Ok(UserToken(t)),
        _ => Err(OAuthError::Unreadable),
    }
}

/// Who logged in, from `GET /user` with their token.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GitHubUser {
    pub login: String,
    pub id: u64,
}

/// Reads `GET /user`'s answer; a login GitHub would not issue is refused.
pub fn parse_user(body: &str) -> Result<GitHubUser, OAuthError> {
    let u: GitHubUser = serde_json::from_str(body).map_err(|_| OAuthError::Unreadable)?;
    if !is_github_login(&u.login) {
        return Err(OAuthError::Unreadable);
    }
    Ok(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> UiKeys {
        UiKeys::derive(&[5u8; 32]).unwrap()
    }

    fn client() -> OAuthClient {
        OAuthClient {
            web_url: "https://github.com/".into(),
            client_id: "Iv1.abc".into(),
            redirect_uri: callback_url("https://sluice.example.com/"),
        }
    }

    #[test]
    fn a_login_round_trips_in_the_browser_that_started_it() {
        let k = keys();
        let start = begin_login(&k, [1; 16], "/jobs/7/log", 1_000);
        assert_eq!(start.cookie_value, "01".repeat(16));
        assert_eq!(
            finish_login(
                &k,
                Some(&start.state),
                Some(&start.cookie_value),
                1_000 + STATE_TTL_MS - 1
            ),
            Ok("/jobs/7/log".to_string())
        );
    }

    #[test]
    fn refused_callbacks_table() {
        let k = keys();
        let start = begin_login(&k, [1; 16], "/", 1_000);
        let other = begin_login(&k, [2; 16], "/", 1_000);
        let foreign = begin_login(&UiKeys::derive(&[6u8; 32]).unwrap(), [1; 16], "/", 1_000);
        let (p, _) = start.state.split_once('.').unwrap();
        let (_, t_other) = other.state.split_once('.').unwrap();
        let now = 2_000;
        let cookie = Some(start.cookie_value.as_str());
        type Case<'a> = (&'a str, Option<String>, Option<&'a str>, i64, StateRefusal);
        let cases: Vec<Case> = vec![
            ("no state", None, cookie, now, StateRefusal::Missing),
            (
                "empty state",
                Some(String::new()),
                cookie,
                now,
                StateRefusal::Missing,
            ),
            (
                "garbage",
                Some("x.y".into()),
                cookie,
                now,
                StateRefusal::Forged,
            ),
            (
                "other key",
                Some(foreign.state.clone()),
                cookie,
                now,
                StateRefusal::Forged,
            ),
            (
                "tag of another state",
                Some(format!("{p}.{t_other}")),
                cookie,
                now,
                StateRefusal::Forged,
            ),
            (
                "expired",
                Some(start.state.clone()),
                cookie,
                1_000 + STATE_TTL_MS,
                StateRefusal::Expired,
            ),
            (
                "no cookie",
                Some(start.state.clone()),
                None,
                now,
                StateRefusal::OtherBrowser,
            ),
            (
                "another browser's cookie",
                Some(start.state.clone()),
                Some(other.cookie_value.as_str()),
                now,
                StateRefusal::OtherBrowser,
            ),
            (
                "another browser's state",
                Some(other.state.clone()),
                cookie,
                now,
                StateRefusal::OtherBrowser,
            ),
        ];
        for (name, state, cookie, now, want) in cases {
            assert_eq!(
                finish_login(&k, state.as_deref(), cookie, now),
                Err(want),
                "{name}"
            );
        }
    }

    #[test]
    fn return_to_stays_on_this_server() {
        let cases = [
            ("/jobs/1/log?x=1#end", "/jobs/1/log?x=1#end"),
            ("/", "/"),
            ("", "/"),
            ("https://evil.example/", "/"),
            ("//evil.example/", "/"),
            ("/\\evil.example", "/"),
            ("/a\\b", "/"),
            ("/a\nSet-Cookie: x", "/"),
            ("javascript:alert(1)", "/"),
        ];
        for (given, want) in cases {
            assert_eq!(safe_return_to(given), want, "{given:?}");
        }
        let long = format!("/{}", "a".repeat(MAX_RETURN_TO_BYTES));
        assert_eq!(safe_return_to(&long), "/");
        // An unsafe return_to given at the start never comes back out.
        let k = keys();
        let s = begin_login(&k, [1; 16], "//evil.example", 0);
        assert_eq!(
            finish_login(&k, Some(&s.state), Some(&s.cookie_value), 1),
            Ok("/".into())
        );
    }

    #[test]
    fn urls() {
        assert_eq!(
            authorize_url(&client(), "st.at/e"),
            "https://github.com/login/oauth/authorize?client_id=Iv1.abc&redirect_uri=https%3A%2F%2Fsluice.example.com%2Flogin%2Fcallback&state=st.at%2Fe&allow_signup=false"
        );
        let req = token_request(&client(), "s3cr&t", "0123abcd").unwrap();
        assert_eq!(req.url, "https://github.com/login/oauth/access_token");
        assert_eq!(
            req.body,
            "client_id=Iv1.abc&client_secret=s3cr%26t&code=0123abcd&redirect_uri=https%3A%2F%2Fsluice.example.com%2Flogin%2Fcallback"
        );
        assert!(!format!("{req:?}").contains("s3cr"));
        for bad in ["", "a b", "a&client_id=x", &"a".repeat(129)] {
            assert_eq!(
                token_request(&client(), "s", bad),
                Err(OAuthError::BadCode),
                "{bad}"
            );
        }
        assert_eq!(
            web_url_from_api_url("https://api.github.com/"),
            "https://github.com"
        );
        assert_eq!(
            web_url_from_api_url("https://ghe.corp/api/v3"),
            "https://ghe.corp"
        );
        assert_eq!(
            web_url_from_api_url("http://127.0.0.1:9000"),
            "http://127.0.0.1:9000"
        );
    }

    #[test]
    fn github_answers() {
        let t =
            parse_token_response(r#"{"access_token":"gho_x","token_type":"bearer","scope":""}"#)
                .unwrap();
        assert_eq!(t.expose(), "gho_x");
        assert_eq!(format!("{t:?}"), "UserToken(***)");
        assert_eq!(
            parse_token_response(
                r#"{"error":"bad_verification_code","error_description":"<b>expired</b>"}"#
            ),
            Err(OAuthError::Refused {
                error: "bad_verification_code".into()
            })
        );
        assert_eq!(
            parse_token_response(r#"{"error":"<script>x"}"#),
            Err(OAuthError::Refused {
                error: "scriptx".into()
            })
        );
        assert_eq!(parse_token_response("<html>"), Err(OAuthError::Unreadable));
        assert_eq!(parse_token_response("{}"), Err(OAuthError::Unreadable));
        assert_eq!(
            parse_user(r#"{"login":"ana","id":42,"name":"Ana"}"#),
            Ok(GitHubUser {
                login: "ana".into(),
                id: 42
            })
        );
        assert_eq!(
            parse_user(r#"{"login":"a|b","id":1}"#),
            Err(OAuthError::Unreadable)
        );
    }
}
