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

/// The job id in the "Full log" link of PR 1's plan summary, which points at the UI.
pub async fn full_log_job(h: &Harness) -> i64 {
    let comment = h.wait_plan(1, "the plan", |c| c.contains("Full log")).await;
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

    // A real plan: through the queue, the locks and terraform's steps, into the audit log.
    let head = h.open_pr(1, "change-1", &[("app/main.tf", &null_project("web", "2"))]);
    h.deliver(&h.pr_event("opened", 1)).await;
    h.wait_status(&head, "sluice/plan", "success").await;

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
    let doubled: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("# HELP") && l.ends_with(".."))
        .collect();
    assert!(
        doubled.is_empty(),
        "HELP texts end with one period: {doubled:?}"
    );
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

    // What the plan went through: every value here must be positive.
    let count = |name: &str, labels: &[(&str, &str)]| -> f64 {
        scrape
            .samples
            .iter()
            .filter(|s| {
                (s.metric == name || s.metric == format!("{name}_count"))
                    && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
            })
            .map(|s| match &s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => *v,
                prometheus_parse::Value::Histogram(b) => b
                    .iter()
                    .find(|b| b.less_than.is_infinite())
                    .map_or(0.0, |b| b.count),
                _ => 0.0,
            })
            .fold(0.0, f64::max)
    };
    for (name, labels) in [
        (
            "sluice_jobs",
            &[("kind", "plan"), ("state", "succeeded")][..],
        ),
        ("sluice_queue_wait_seconds", &[("kind", "plan")][..]),
        (
            "sluice_terraform_step_duration_seconds",
            &[("step", "init"), ("result", "ok")][..],
        ),
        (
            "sluice_terraform_step_duration_seconds",
            &[("step", "plan"), ("result", "ok")][..],
        ),
        (
            "sluice_terraform_step_duration_seconds",
            &[("step", "show"), ("result", "ok")][..],
        ),
        ("sluice_lock_wait_seconds", &[][..]),
        ("sluice_audit_entries_total", &[("action", "plan")][..]),
        (
            "sluice_audit_entries_total",
            &[("action", "lock_taken")][..],
        ),
    ] {
        assert!(count(name, labels) >= 1.0, "{name} {labels:?}: {text}");
    }
    // Nothing is left in the queue; the write budget is published and not paused.
    assert_eq!(
        value("sluice_queue_depth", &[("kind", "plan")]),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        value("sluice_github_writes_paused", &[]),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        value("sluice_github_writes_pending", &[]),
        Some(0.0),
        "{text}"
    );
    assert!(
        value(
            "sluice_github_write_budget_remaining",
            &[("window", "hour")]
        )
        .is_none_or(|v| v > 0.0),
        "a published budget has writes left: {text}"
    );
    // Audit entries are counted once: a second scrape adds only what was written since.
    let audit_plan = count("sluice_audit_entries_total", &[("action", "plan")]);
    let again = reqwest::get(format!("{}/metrics", h.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let again = prometheus_parse::Scrape::parse(again.lines().map(|l| Ok(l.to_string()))).unwrap();
    let plan_again = again
        .samples
        .iter()
        .find(|s| {
            s.metric == "sluice_audit_entries_total" && s.labels.get("action") == Some("plan")
        })
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        });
    assert_eq!(plan_again, Some(audit_plan));
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
    // Resuming at the end chunk, or past it: 204 at once (an EventSource stops), not a stream
    // held open (the timeout turns a hang into a failure).
    let last = *ids.last().unwrap();
    for after in [last, last + 5] {
        let r = events(Some(after))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "after {after}");
    }
    // A position that is not a number is refused.
    let bad = events(None)
        .header("last-event-id", "abc")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

/// `GET /api/projects` → the one project's JSON.
async fn project_json(h: &Harness) -> serde_json::Value {
    let v: serde_json::Value = h
        .http
        .get(format!("{}/api/projects", h.url()))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .expect("api")
        .json()
        .await
        .expect("json");
    v["projects"][0].clone()
}

/// Waits until the project's drift is in `phase`.
async fn wait_drift_phase(h: &Harness, phase: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let p = project_json(h).await;
        if p["drift"]["phase"] == phase {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the drift never became {phase}: {p:#}\n{}",
            h.server().logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The CSRF token the server gives `cookie`'s session for the form posted to `action`
/// (computed as the server does, for a viewer whose page shows no such form).
fn csrf_for(cookie: &str, action: &str) -> String {
    use sluice::core::ui::session::{SessionCheck, UiKeys, csrf_token, open_session};
    let keys = UiKeys::derive(SESSION_SECRET.as_bytes()).unwrap();
    let value = cookie.split_once('=').unwrap().1;
    match open_session(&keys, value, chrono::Utc::now().timestamp_millis()) {
        SessionCheck::Valid(s) => csrf_token(&keys, &s.id, action),
        other => panic!("not a valid session: {other:?}"),
    }
}

/// The part of `page` from the form posted to `action` on.
fn form_of<'p>(page: &'p str, action: &str) -> &'p str {
    let at = page
        .find(&format!("action=\"{action}\""))
        .unwrap_or_else(|| panic!("no form for {action}: {page}"));
    &page[at..]
}

/// The runs list, a PR's runs, the drift page (acknowledge and accept through the UI: CSRF,
/// write permission, the comment grammar's date checks, audited with the viewer) and the audit
/// page (filters, the story of a commit, export), each hiding what the viewer may not read.
#[tokio::test(flavor = "multi_thread")]
async fn runs_drift_and_audit_pages_obey_visibility_and_drift_acts_are_audited() {
    let h = ui_harness().await;
    with_project_and_lock(&h).await;
    h.fake.set_permission(REPO, "ana", "write");
    h.fake.set_permission(REPO, "rita", "read");
    // The default branch was checked: the project is not applied, so its drift is open.
    wait_drift_phase(&h, "open").await;
    let ana = log_in(&h, "ana").await;
    let rita = log_in(&h, "rita").await;
    let eve = log_in(&h, "eve").await;

    // Every page is linked from `/`.
    let (_, _, root) = get(&h, "/", Some(&ana)).await;
    for href in ["/environments", "/runs", "/locks", "/drift", "/audit"] {
        assert!(root.contains(&format!("href=\"{href}\"")), "{href}: {root}");
    }

    // Runs: PR 1's plan, newest first, filtered by repository, PR and state.
    let (status, _, runs) = get(&h, "/runs", Some(&ana)).await;
    assert_eq!(status, StatusCode::OK, "{runs}");
    assert!(
        runs.contains(REPO) && runs.contains("/repos/acme/infra/pulls/1"),
        "{runs}"
    );
    assert!(runs.contains("Succeeded"), "{runs}");
    let (_, _, hit) = get(
        &h,
        "/runs?repo=acme%2Finfra&pr=1&state=succeeded",
        Some(&ana),
    )
    .await;
    assert!(hit.contains("/runs/") && !hit.contains("No runs."), "{hit}");
    // The run's page lists each job's steps with how long they took and how they ended.
    let at = hit.find("href=\"/runs/").expect("a run link") + "href=\"".len();
    let link: String = hit[at..].chars().take_while(|c| *c != '"').collect();
    let (status, _, run) = get(&h, &link, Some(&ana)).await;
    assert_eq!(status, StatusCode::OK, "{run}");
    for step in ["init", "plan", "show"] {
        let dt = format!("<dt>{step}</dt><dd>");
        let at = run.find(&dt).unwrap_or_else(|| panic!("{step}: {run}")) + dt.len();
        let dd: String = run[at..].chars().take_while(|c| *c != '<').collect();
        assert!(
            dd.ends_with(", ok") && dd.chars().next().is_some_and(|c| c.is_ascii_digit()),
            "{step}: {dd}"
        );
    }
    for miss in ["/runs?state=failed", "/runs?pr=2"] {
        let (status, _, page) = get(&h, miss, Some(&ana)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            page.contains("No runs.") && !page.contains("/runs/1\""),
            "{miss}: {page}"
        );
    }
    for bad in [
        "/runs?pr=abc",
        "/runs?state=exploded",
        "/runs?repo=no-slash",
    ] {
        let (status, _, _) = get(&h, bad, Some(&ana)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let (status, _, pull) = get(&h, "/repos/acme/infra/pulls/1", Some(&ana)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        pull.contains("acme/infra #1") && pull.contains("/runs/"),
        "{pull}"
    );
    // Eve cannot read the repository: the list hides it; its URLs are 404.
    let (status, _, runs) = get(&h, "/runs", Some(&eve)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!runs.contains(REPO) && runs.contains("No runs."), "{runs}");
    for path in [
        "/repos/acme/infra/pulls/1",
        "/runs?repo=acme%2Finfra",
        "/drift?repo=acme%2Finfra",
        "/audit?repo=acme%2Finfra",
        "/audit/export?repo=acme%2Finfra",
    ] {
        let (status, _, body) = get(&h, path, Some(&eve)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(!body.contains("envs/prod/app"), "{body}");
    }

    // The job's log keeps terraform's steps apart, each with its duration.
    let job = full_log_job(&h).await;
    let (_, _, log) = get(&h, &format!("/jobs/{job}/log"), Some(&ana)).await;
    for step in ["init", "plan", "show"] {
        assert!(log.contains(&format!("── {step} ──")), "{step}: {log}");
        assert!(
            log.contains(&format!("[{step}: ")),
            "{step}'s duration: {log}"
        );
    }
    let init = log.find("── init ──").unwrap();
    let plan = log.find("── plan ──").unwrap();
    assert!(
        init < plan && log[init..plan].contains("Initializing"),
        "{log}"
    );

    // Drift: the open drift, with its history; forms only for writers.
    let (status, _, drift) = get(&h, "/drift", Some(&ana)).await;
    assert_eq!(status, StatusCode::OK, "{drift}");
    assert!(
        drift.contains("envs/prod/app") && drift.contains(">open<"),
        "{drift}"
    );
    assert!(drift.contains("opened"), "the history: {drift}");
    let ack_form = form_of(&drift, "/drift/ack").to_string();
    let accept_form = form_of(&drift, "/drift/accept").to_string();
    let fingerprint = hidden(&ack_form, "fingerprint").expect("fingerprint");
    let ack_csrf = hidden(&ack_form, "csrf").expect("csrf");
    let accept_csrf = hidden(&accept_form, "csrf").expect("csrf");
    let (_, _, rita_drift) = get(&h, "/drift", Some(&rita)).await;
    assert!(rita_drift.contains("envs/prod/app"), "{rita_drift}");
    assert!(
        !rita_drift.contains("/drift/ack"),
        "no form for a reader: {rita_drift}"
    );
    let (_, _, eve_drift) = get(&h, "/drift", Some(&eve)).await;
    assert!(!eve_drift.contains("envs/prod/app") && eve_drift.contains("No open drift."));

    let c = no_redirects();
    let post = |path: &str, cookie: &str, fields: Vec<(&str, String)>| {
        c.post(format!("{}{path}", h.url()))
            .header(COOKIE, cookie)
            .form(&fields)
            .send()
    };
    let key = |extra: &[(&'static str, &str)]| {
        let mut f = vec![
            ("repo", REPO.to_string()),
            ("dir", "envs/prod/app".to_string()),
            ("workspace", "default".to_string()),
            ("fingerprint", fingerprint.clone()),
        ];
        f.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        f
    };
    let audit_count = |what: &str| {
        let out = h.cli(&["audit", "export"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains(what))
            .count()
    };
    // Without its CSRF token, or cross-site: refused.
    let r = post("/drift/ack", &ana, key(&[])).await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = c
        .post(format!("{}/drift/ack", h.url()))
        .header(COOKIE, &ana)
        .header("origin", "https://evil.example")
        .form(&key(&[("csrf", &ack_csrf)]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // A reader with a valid token of her own: refused for want of write access.
    let rita_csrf = csrf_for(&rita, "/drift/ack");
    let r = post("/drift/ack", &rita, key(&[("csrf", &rita_csrf)]))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Eve: as if there were no such repository.
    let eve_csrf = csrf_for(&eve, "/drift/ack");
    let r = post("/drift/ack", &eve, key(&[("csrf", &eve_csrf)]))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Accept with a date in the past, or not a date, or without a reason: a clear error,
    // nothing changes, and each refusal is audited.
    let rejected_before = audit_count("command_rejected");
    let in_range = (chrono::Utc::now() + chrono::Duration::days(30))
        .date_naive()
        .to_string();
    for (until, reason, says) in [
        ("2020-01-31", "vendor fix", "past"),
        ("next-friday", "vendor fix", "not a date"),
        ("", "vendor fix", "until"),
        (in_range.as_str(), "  ", "needs a reason"),
    ] {
        let r = post(
            "/drift/accept",
            &ana,
            key(&[("csrf", &accept_csrf), ("until", until), ("reason", reason)]),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{until}");
        let body = r.text().await.unwrap();
        assert!(body.contains(says), "{until}: {body}");
    }
    assert_eq!(project_json(&h).await["drift"]["phase"], "open");
    assert_eq!(audit_count("command_rejected"), rejected_before + 4);
    assert_eq!(audit_count("drift_acknowledged"), 0);
    assert_eq!(audit_count("drift_accepted"), 0);

    // The real acknowledgement: the state changes, audited with Ana as the actor.
    let r = post("/drift/ack", &ana, key(&[("csrf", &ack_csrf)]))
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "{}",
        r.text().await.unwrap_or_default()
    );
    wait_drift_phase(&h, "acknowledged").await;
    let audit = h.cli(&["audit", "export"]);
    let audit = String::from_utf8_lossy(&audit.stdout);
    let acked: Vec<serde_json::Value> = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["action"] == "drift_acknowledged")
        .collect();
    assert_eq!(acked.len(), 1, "{audit}");
    assert_eq!(acked[0]["actor"]["login"], "ana", "{:#}", acked[0]);
    assert_eq!(acked[0]["repo"], REPO);
    assert!(
        acked[0]["event_id"]
            .as_str()
            .is_some_and(|e| e.starts_with("web-ui:")),
        "{:#}",
        acked[0]
    );
    let (_, _, drift) = get(&h, "/drift", Some(&ana)).await;
    assert!(
        drift.contains(">acknowledged<") && drift.contains("by ana"),
        "{drift}"
    );
    // Acknowledging twice is refused with the lifecycle's reason, and audited as refused.
    let r = post("/drift/ack", &ana, key(&[("csrf", &ack_csrf)]))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert!(r.text().await.unwrap().contains("already acknowledged"));

    // Audit: filtered by actor and action, the story of a commit, export.
    let (status, _, page) = get(&h, "/audit?actor=ana", Some(&ana)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        page.contains("drift_acknowledged") && !page.contains(">plan<"),
        "{page}"
    );
    assert!(
        !page.contains("Chain verified"),
        "the chain is for admins: {page}"
    );
    let plan_entry = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["action"] == "plan" && e["pr"] == 1)
        .expect("the plan's audit entry");
    let head = plan_entry["head_sha"].as_str().unwrap().to_string();
    let (_, _, story) = get(&h, &format!("/audit?commit={}", &head[..7]), Some(&ana)).await;
    assert!(
        story.contains(">plan<") && story.contains(&head[..7]),
        "{story}"
    );
    assert!(!story.contains("drift_acknowledged"), "{story}");
    let (_, _, plans) = get(&h, "/audit?action=plan&pr=1&repo=acme%2Finfra", Some(&ana)).await;
    assert!(
        plans.contains(">plan<") && !plans.contains("lock_acquired"),
        "{plans}"
    );
    for bad in ["/audit?since=yesterday", "/audit?pr=x", "/audit?commit=zz"] {
        let (status, _, _) = get(&h, bad, Some(&ana)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let (_, _, eve_audit) = get(&h, "/audit", Some(&eve)).await;
    assert!(
        !eve_audit.contains(REPO) && eve_audit.contains("No entries."),
        "{eve_audit}"
    );
    let admin = c
        .get(format!("{}/audit", h.url()))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(admin.contains("Chain verified"), "{admin}");
    // The export link of the page, and what it streams.
    assert!(
        page.contains("/audit/export?format=csv&amp;actor=ana"),
        "{page}"
    );
    let r = c
        .get(format!("{}/audit/export?format=csv&actor=ana", h.url()))
        .header(COOKIE, &ana)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = r.text().await.unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert!(
        !rows.is_empty() && rows.iter().all(|l| l.contains("ana")),
        "{csv}"
    );
    assert!(csv.contains("drift_acknowledged"), "{csv}");
    let r = c
        .get(format!("{}/audit/export?format=jsonl", h.url()))
        .header(COOKIE, &eve)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "", "nothing Eve may read");
    let (status, _, _) = get(&h, "/audit/export?format=xml", Some(&ana)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Accept until a date in range: accepted, audited.
    let until = (chrono::Utc::now() + chrono::Duration::days(30))
        .date_naive()
        .to_string();
    let r = post(
        "/drift/accept",
        &ana,
        key(&[
            ("csrf", &accept_csrf),
            ("until", &until),
            ("reason", "vendor fix pending"),
        ]),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    wait_drift_phase(&h, "accepted").await;
    assert_eq!(
        project_json(&h).await["drift"]["accepted_until"],
        until.as_str()
    );
    assert_eq!(audit_count("drift_accepted"), 1);
    let accepted: Vec<serde_json::Value> =
        String::from_utf8_lossy(&h.cli(&["audit", "export"]).stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| e["action"] == "drift_accepted")
            .collect();
    assert_eq!(
        accepted[0]["details"]["reason"], "vendor fix pending",
        "{:#}",
        accepted[0]
    );
    // A page from before the acceptance still shows "Acknowledge" (the drift was open):
    // it must not silently withdraw the exception.
    let r = post(
        "/drift/ack",
        &ana,
        key(&[("csrf", &ack_csrf), ("phase", "open")]),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let body = r.text().await.unwrap();
    assert!(body.contains("accepted now"), "{body}");
    assert_eq!(project_json(&h).await["drift"]["phase"], "accepted");
}
