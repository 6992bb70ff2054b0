//! The web UI and metrics on the real `sluice serve`: login with GitHub through the fake's OAuth
//! web flow, what each viewer sees (a user only the repositories GitHub lets them read, 404 for
//! the others), the bad inputs of authentication (no session, an expired or forged cookie, a
//! POST without its CSRF token), releasing a lock from the UI (audited, the PR told), the page
//! without any login configured, and `/metrics` parsed as Prometheus text.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

use crate::server::{API_TOKEN, Harness, REPO};
use crate::support::null_project;
use crate::webhooks::Webhook;

const CLIENT_ID: &str = "Iv1.uitestclient";
const CLIENT_SECRET: &str = "ui-test-client-secret-0123456789";
const SESSION_SECRET: &str = "ui-test-session-secret-0123456789abcdef";

/// A free local port for a server whose `public_url` must be known before it starts.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// `name=value` of the `Set-Cookie` of `name` in `r`.
fn cookie(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap_or_default().to_string())
}

fn set_cookie_header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// The value of hidden input `name` in a page.
fn hidden(page: &str, name: &str) -> Option<String> {
    let at = page.find(&format!("name=\"{name}\" value=\""))?;
    let rest = &page[at + name.len() + 15..];
    Some(rest[..rest.find('"')?].to_string())
}

/// A push of the origin's `main` (syncs the projects Sluice reconciles).
fn push_event(h: &Harness) -> Webhook {
    h.origin.checkout("main");
    Webhook::load("push.json")
        .repo(REPO, &h.origin.url())
        .default_branch("main")
        .set("/ref", "refs/heads/main")
        .set("/after", h.origin.head().as_str())
        .set("/before", format!("{:040x}", 1).as_str())
        .installation(None)
}

/// A harness whose server has login with GitHub configured at a known `public_url`.
pub async fn ui_harness() -> Harness {
    let mut h = Harness::new(&[("envs/prod/app/main.tf", &null_project("web", "1"))]).await;
    let port = free_port();
    h.set_env("SLUICE_LISTEN", &format!("127.0.0.1:{port}"));
    h.set_env("SLUICE_PUBLIC_URL", &format!("http://127.0.0.1:{port}"));
    h.set_env("SLUICE_UI__OAUTH_CLIENT_ID", CLIENT_ID);
    h.set_env("SLUICE_UI__OAUTH_CLIENT_SECRET", CLIENT_SECRET);
    h.set_env("SLUICE_UI__SESSION_SECRET", SESSION_SECRET);
    h.set_env("SLUICE_UI__ADMINS", "root-admin");
    // Small enough for the capped plan below.
    h.set_env("SLUICE_UI__LOG_MAX_BYTES", "4096");
    h.fake.set_oauth_client(CLIENT_ID, CLIENT_SECRET);
    h.start();
    h
}

/// Logs `login` in through the OAuth web flow, as a browser does; returns the session cookie
/// (`name=value`).
pub async fn log_in(h: &Harness, login: &str) -> String {
    let c = no_redirects();
    h.fake.set_oauth_login(login);
    let start = c
        .get(format!("{}/login/start?return_to=%2Flocks", h.url()))
        .send()
        .await
        .expect("login start");
    assert_eq!(start.status(), StatusCode::SEE_OTHER);
    let nonce = cookie(&start, "sluice_oauth").expect("the login binds the browser");
    let to_github = location(&start);
    assert!(
        to_github.starts_with(&format!("{}/login/oauth/authorize?", h.fake.url())),
        "{to_github}"
    );
    let back = c.get(&to_github).send().await.expect("authorize");
    assert_eq!(back.status(), StatusCode::FOUND);
    let callback = location(&back);
    let done = c
        .get(&callback)
        .header(COOKIE, &nonce)
        .send()
        .await
        .expect("callback");
    assert_eq!(
        done.status(),
        StatusCode::SEE_OTHER,
        "{}",
        done.text().await.unwrap_or_default()
    );
    assert_eq!(location(&done), "/locks", "back where the login started");
    let header = set_cookie_header(&done, "sluice_session").expect("a session cookie");
    assert!(header.contains("HttpOnly"), "{header}");
    assert!(header.contains("SameSite=Lax"), "{header}");
    cookie(&done, "sluice_session").expect("session")
}

async fn get(h: &Harness, path: &str, cookie: Option<&str>) -> (StatusCode, String, String) {
    let mut r = no_redirects().get(format!("{}{path}", h.url()));
    if let Some(c) = cookie {
        r = r.header(COOKIE, c);
    }
    let r = r.send().await.expect("get");
    let status = r.status();
    let loc = location(&r);
    (status, loc, r.text().await.expect("body"))
}

/// Waits until the push synced the project and PR 1 holds its lock.
pub async fn with_project_and_lock(h: &Harness) {
    h.deliver(&push_event(h)).await;
    h.wait("the project to be synced", || {
        let out = h.cli(&["status", "--json"]);
        String::from_utf8_lossy(&out.stdout)
            .contains("envs/prod/app")
            .then_some(())
    })
    .await;
    let head = h.open_pr(
        1,
        "change-1",
        &[("envs/prod/app/main.tf", &chatty_project())],
    );
    h.deliver(&h.pr_event("opened", 1)).await;
    h.wait_status(&head, "sluice/plan", "success").await;
    assert_eq!(h.locks().await.len(), 1, "PR 1 holds the lock");
}

/// A project whose plan prints a server secret (the API token, in a trigger) and far more
/// than the 4 KiB log cap.
fn chatty_project() -> String {
    format!(
        "{}\nresource \"null_resource\" \"web\" {{\n  count = 60\n  triggers = {{ v = \"{API_TOKEN}-${{count.index}}\" }}\n}}\n",
        crate::support::NULL_PROVIDER
    )
}

/// The job id in the "Full log" link of PR 1's plan comment, which points at the UI.
pub async fn full_log_job(h: &Harness) -> i64 {
    let comment = h
        .wait_comment(1, "the plan comment", |c| c.contains("Full log"))
        .await;
    let at = comment.find("/jobs/").expect("a job log link");
    let rest = &comment[at + 6..];
    let link_base = format!("{}/jobs/", h.url());
    assert!(
        comment.contains(&link_base),
        "the link is built from public_url: {comment}"
    );
    rest[..rest.find('/').expect("/log")]
        .parse()
        .expect("job id")
}

#[tokio::test(flavor = "multi_thread")]
async fn login_sessions_visibility_and_lock_release_through_the_ui() {
    let h = ui_harness().await;
    with_project_and_lock(&h).await;
    h.fake.set_permission(REPO, "ana", "write");
    h.fake.set_permission(REPO, "rita", "read");

    // No session: to the login page, which names nothing.
    let (status, loc, _) = get(&h, "/", None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(loc, "/login?return_to=%2F");
    let (status, _, login_page) = get(&h, "/login", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(login_page.contains("Log in with GitHub"), "{login_page}");
    assert!(!login_page.contains("acme"), "{login_page}");

    // A forged cookie (signed with another key): 401, and the cookie is cleared.
    let other = sluice::core::ui::session::UiKeys::derive(&[9u8; 32]).unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let s = sluice::core::ui::session::Session::new(
        "ana",
        1,
        sluice::core::ui::session::SessionId::from_bytes([1; 16]),
        now,
        3_600_000,
    );
    let forged = format!(
        "sluice_session={}",
        sluice::core::ui::session::seal_session(&other, &s)
    );
    let (status, _, body) = get(&h, "/", Some(&forged)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!body.contains("acme"), "{body}");

    // An expired cookie signed with the server's key: back to the login page.
    let keys = sluice::core::ui::session::UiKeys::derive(SESSION_SECRET.as_bytes()).unwrap();
    let old = sluice::core::ui::session::Session::new(
        "ana",
        1,
        sluice::core::ui::session::SessionId::from_bytes([2; 16]),
        now - 7_200_000,
        3_600_000,
    );
    let expired = format!(
        "sluice_session={}",
        sluice::core::ui::session::seal_session(&keys, &old)
    );
    let (status, loc, _) = get(&h, "/locks", Some(&expired)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(loc, "/login?return_to=%2Flocks");

    // A callback whose state was not issued here starts no session.
    let c = no_redirects();
    let bad = c
        .get(format!(
            "{}/login/callback?code={}&state=forged.state",
            h.url(),
            h.fake.oauth_code_for("ana")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert!(cookie(&bad, "sluice_session").is_none());

    // Ana can write: she sees the repository and its project, and may release the lock.
    let ana = log_in(&h, "ana").await;
    let (status, _, envs) = get(&h, "/", Some(&ana)).await;
    assert_eq!(status, StatusCode::OK, "{envs}");
    assert!(
        envs.contains(REPO) && envs.contains("envs/prod/app"),
        "{envs}"
    );
    assert!(envs.contains("prod"), "grouped by environment: {envs}");
    let (_, _, locks) = get(&h, "/locks", Some(&ana)).await;
    assert!(locks.contains("Release…"), "{locks}");

    // The plan's log, through the comment's "Full log" link: redacted, capped with a notice.
    let job = full_log_job(&h).await;
    let (status, _, log) = get(&h, &format!("/jobs/{job}/log"), Some(&ana)).await;
    assert_eq!(status, StatusCode::OK, "{log}");
    assert!(log.contains("null_resource.web[0]"), "{log}");
    assert!(!log.contains(API_TOKEN), "the secret is redacted: {log}");
    assert!(log.contains("***-0"), "{log}");
    assert!(log.to_lowercase().contains("cap"), "the cap notice: {log}");
    assert!(log.contains("end of log"), "{log}");

    // Eve cannot read the repository: the list hides it, its pages are 404 (not 403).
    let eve = log_in(&h, "eve").await;
    let (status, _, envs) = get(&h, "/", Some(&eve)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !envs.contains(REPO) && !envs.contains("envs/prod/app"),
        "{envs}"
    );
    let confirm = "/locks/release?repo=acme%2Finfra&dir=envs%2Fprod%2Fapp&workspace=default";
    let (status, _, _) = get(&h, confirm, Some(&eve)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for path in [
        format!("/jobs/{job}/log"),
        format!("/jobs/{job}/log/events"),
    ] {
        let (status, _, body) = get(&h, &path, Some(&eve)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(!body.contains("null_resource"), "{body}");
    }
    // Rita can read but not write: she sees the lock, without a release link, and is refused.
    let rita = log_in(&h, "rita").await;
    let (_, _, locks) = get(&h, "/locks", Some(&rita)).await;
    assert!(
        locks.contains("envs/prod/app") && !locks.contains("Release…"),
        "{locks}"
    );
    let (status, _, _) = get(&h, confirm, Some(&rita)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Ana's confirmation page carries the form; a POST without its CSRF token is refused.
    let (status, _, page) = get(&h, confirm, Some(&ana)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    // The release form's token (the page's logout form carries another one).
    let form_at = page
        .find("action=\"/locks/release\"")
        .expect("the release form");
    let csrf = hidden(&page[form_at..], "csrf").expect("the form's CSRF token");
    assert_ne!(
        Some(csrf.as_str()),
        hidden(&page, "csrf").as_deref(),
        "tokens are bound to their form"
    );
    let form = |csrf: Option<&str>| {
        let mut f = vec![
            ("repo", REPO.to_string()),
            ("dir", "envs/prod/app".to_string()),
            ("workspace", "default".to_string()),
            ("pr", "1".to_string()),
        ];
        if let Some(c) = csrf {
            f.push(("csrf", c.to_string()));
        }
        f
    };
    for bad in [None, Some("bm90LWEtdG9rZW4")] {
        let r = c
            .post(format!("{}/locks/release", h.url()))
            .header(COOKIE, &ana)
            .form(&form(bad))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "csrf {bad:?}");
    }
    // A cross-site POST with the right token is refused too.
    let r = c
        .post(format!("{}/locks/release", h.url()))
        .header(COOKIE, &ana)
        .header("origin", "https://evil.example")
        .form(&form(Some(&csrf)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Eve's session with Ana's token: refused (tokens are bound to the session).
    let r = c
        .post(format!("{}/locks/release", h.url()))
        .header(COOKIE, &eve)
        .form(&form(Some(&csrf)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(h.locks().await.len(), 1, "nothing was released");

    // The real release: audited with Ana's login, the PR told.
    let r = c
        .post(format!("{}/locks/release", h.url()))
        .header(COOKIE, &ana)
        .form(&form(Some(&csrf)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(h.locks().await.is_empty());
    h.wait_comment(1, "the PR told of the release", |c| c.contains("ana"))
        .await;
    let audit = h.cli(&["audit", "export"]);
    let audit = String::from_utf8_lossy(&audit.stdout);
    assert!(
        audit
            .lines()
            .any(|l| l.contains("admin_lock_release") && l.contains("\"ana\"")),
        "{audit}"
    );

    // The API token opens every page with the admin view, even without a session.
    let r = c
        .get(format!("{}/environments", h.url()))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains(REPO));
    let r = c
        .get(format!("{}/", h.url()))
        .bearer_auth("wrong-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // The GitHub calls the bot made (statuses, comments) are counted.
    let text = reqwest::get(format!("{}/metrics", h.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("Prometheus text");
    assert!(
        scrape
            .samples
            .iter()
            .any(|s| s.metric == "sluice_github_requests_total"
                && s.labels.get("result") == Some("ok")
                && matches!(s.value, prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) if v >= 1.0)),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_login_configured_the_pages_say_how_and_show_nothing() {
    let mut h = Harness::new(&[("app/main.tf", &null_project("web", "1"))]).await;
    h.start();
    h.deliver(&push_event(&h)).await;
    for path in ["/", "/environments", "/locks", "/login"] {
        let (status, _, body) = get(&h, path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(body.contains("SLUICE_UI__SESSION_SECRET"), "{path}: {body}");
        assert!(!body.contains("acme") && !body.contains(&h.data_dir().display().to_string()));
    }
    // The token still opens them.
    let r = no_redirects()
        .get(format!("{}/", h.url()))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_parse_as_prometheus_text_and_count_the_real_intake() {
    let mut h = Harness::new(&[("app/main.tf", &null_project("web", "1"))]).await;
    h.start();
    h.deliver(&push_event(&h)).await;
    h.wait("the project to be synced", || {
        let out = h.cli(&["status", "--json"]);
        String::from_utf8_lossy(&out.stdout)
            .contains("\"app\"")
            .then_some(())
    })
    .await;
    // A refused delivery is counted too.
    let r = reqwest::Client::new()
        .post(format!("{}/events", h.url()))
        .header("x-github-event", "push")
        .header("x-github-delivery", "bad-1")
        .header("x-hub-signature-256", "sha256=00")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let ready = reqwest::get(format!("{}/readyz", h.url())).await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let text = reqwest::get(format!("{}/metrics", h.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text");
    let value = |name: &str, labels: &[(&str, &str)]| -> Option<f64> {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
    };
    assert!(
        value(
            "sluice_webhook_requests_total",
            &[("event", "push"), ("result", "accepted")]
        )
        .is_some_and(|v| v >= 1.0),
        "{text}"
    );
    assert!(
        value(
            "sluice_webhook_requests_total",
            &[("event", "push"), ("result", "bad_signature")]
        )
        .is_some_and(|v| v >= 1.0),
        "{text}"
    );
    assert_eq!(value("sluice_outbox_backlog", &[]), Some(0.0), "{text}");
    let projects: f64 = ["unknown", "synced", "stale", "drifted", "out_of_sync"]
        .iter()
        .filter_map(|s| value("sluice_drift_projects", &[("status", s)]))
        .sum();
    assert_eq!(projects, 1.0, "one project, counted once: {text}");
}

/// The live log's event stream resumes after `Last-Event-ID`, from the store, across a
/// restart of the server; it never sends the secret and ends with the end chunk.
#[tokio::test(flavor = "multi_thread")]
async fn the_log_stream_resumes_after_a_restart_from_the_last_event_id() {
    let mut h = ui_harness().await;
    with_project_and_lock(&h).await;
    let job = full_log_job(&h).await;
    let url = format!("{}/jobs/{job}/log/events", h.url());
    let events = |after: Option<u64>| {
        let mut r = reqwest::Client::new().get(&url).bearer_auth(API_TOKEN);
        if let Some(a) = after {
            r = r.header("last-event-id", a.to_string());
        }
        r
    };
    let all = events(None).send().await.unwrap();
    assert_eq!(all.status(), StatusCode::OK);
    assert_eq!(
        all.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let all = all.text().await.unwrap();
    let ids: Vec<u64> = all
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .map(|v| v.parse().unwrap())
        .collect();
    assert!(ids.len() >= 3, "{all}");
    assert_eq!(
        ids,
        (1..=ids.len() as u64).collect::<Vec<_>>(),
        "numbered without gaps"
    );
    assert!(all.contains("\"kind\":\"end\""), "{all}");
    assert!(!all.contains(API_TOKEN));

    // Restart; the viewer comes back with the id of the second event.
    if let Some(s) = h.server.as_mut() {
        s.terminate(Duration::from_secs(30));
    }
    h.start();
    let rest = events(Some(2)).send().await.unwrap().text().await.unwrap();
    let resumed: Vec<u64> = rest
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(resumed, ids[2..].to_vec(), "{rest}");
    // A position that is not a number is refused.
    let bad = events(None)
        .header("last-event-id", "abc")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}
