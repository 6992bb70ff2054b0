//! The web UI in a real browser: Debian's headless Chromium, driven over WebDriver
//! (`chromedriver`, installed by `scripts/install-test-tools`), against the real `sluice serve`
//! and the fake GitHub's OAuth pages. A user logs in, sees the environments with the real
//! project, follows the navigation to the drift (and acknowledges it), runs and audit pages,
//! watches a running apply's lines arrive in its log page, releases a lock through the
//! confirmation page, and another user is refused. Screenshots of each page go to
//! `target/ui-screenshots/`.
//!
//! The WebDriver client is the few W3C WebDriver commands the test needs (new session,
//! navigate, page source, find, click, screenshot, delete cookies) over `reqwest`: a client
//! crate (fantoccini) changes the features of shared dependencies and rebuilds the whole
//! tree for seven commands.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::server::{API_TOKEN, Harness, REPO};
use crate::ui::{full_log_job, ui_harness, with_project_and_lock};

/// `chromedriver` on a free port, killed on drop.
struct Driver {
    child: Child,
    url: String,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| PathBuf::from(d).join(name))
        .find(|p| p.is_file())
}

async fn browser() -> (Driver, Client) {
    let chromium = which("chromium").expect("chromium is missing: run scripts/install-test-tools");
    let driver = which("chromedriver")
        .expect("chromedriver is missing: run scripts/install-test-tools (chromium-driver)");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let url = format!("http://127.0.0.1:{port}");
    let profile = tempfile::tempdir().unwrap();
    let d = Driver {
        child,
        url,
        _profile: profile,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if reqwest::get(format!("{}/status", d.url)).await.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "chromedriver did not answer");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let caps = json!({"capabilities": {"alwaysMatch": {
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                "--window-size=1280,900",
                format!("--user-data-dir={}", d._profile.path().display()),
            ],
        },
    }}});
    let http = reqwest::Client::new();
    let v: Value = http
        .post(format!("{}/session", d.url))
        .json(&caps)
        .send()
        .await
        .expect("new session")
        .json()
        .await
        .expect("session json");
    let id = v["value"]["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("no Chromium session: {v}"))
        .to_string();
    let client = Client {
        http,
        base: format!("{}/session/{id}", d.url),
    };
    (d, client)
}

/// A WebDriver session (W3C WebDriver, the commands this test needs).
struct Client {
    http: reqwest::Client,
    base: String,
}

/// How an element is found.
enum Locator<'a> {
    Css(&'a str),
    LinkText(&'a str),
}

impl Client {
    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut r = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            r = r.json(&b);
        }
        let v: Value = r
            .send()
            .await
            .expect("webdriver")
            .json()
            .await
            .expect("json");
        if v["value"].get("error").is_some() {
            panic!("webdriver {path}: {v}");
        }
        v["value"].clone()
    }
    async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }
    async fn source(&self) -> String {
        self.cmd(reqwest::Method::GET, "/source", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
    async fn click(&self, l: Locator<'_>) {
        let (using, value) = match l {
            Locator::Css(v) => ("css selector", v),
            Locator::LinkText(v) => ("link text", v),
        };
        let el = self
            .cmd(
                reqwest::Method::POST,
                "/element",
                Some(json!({ "using": using, "value": value })),
            )
            .await;
        let id = el
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .expect("an element id")
            .to_string();
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
    }
    async fn screenshot(&self) -> Vec<u8> {
        let b64 = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
        base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap_or_default())
            .expect("base64 PNG")
    }
    async fn delete_all_cookies(&self) {
        self.cmd(reqwest::Method::DELETE, "/cookie", None).await;
    }
    async fn close(self) {
        self.cmd(reqwest::Method::DELETE, "", None).await;
    }
}

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await;
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
}

/// Waits until the page's source satisfies `pred`.
async fn wait_source(c: &Client, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let src = c.source().await;
        if pred(&src) {
            return src;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}:\n{src}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn log_in(c: &Client, h: &Harness, login: &str) {
    h.fake.set_oauth_login(login);
    c.delete_all_cookies().await;
    c.goto(&format!("{}/", h.url())).await;
    wait_source(c, "the login page", |s| s.contains("Log in with GitHub")).await;
    c.click(Locator::LinkText("Log in with GitHub")).await;
    wait_source(c, "the environments page", |s| s.contains(login)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_browser_logs_in_watches_a_live_log_and_releases_a_lock() {
    let h = ui_harness().await;
    with_project_and_lock(&h).await;
    h.fake.set_permission(REPO, "ana", "write");
    let (_driver, c) = browser().await;

    log_in(&c, &h, "ana").await;
    let envs = c.source().await;
    assert!(
        envs.contains(REPO) && envs.contains("envs/prod/app"),
        "{envs}"
    );
    shot(&c, "environments").await;

    // Every section through the navigation from `/`: drift (acknowledged with its form, in the
    // browser: same origin, CSRF token), runs and a PR's runs, audit and a commit's story.
    c.goto(&format!("{}/", h.url())).await;
    c.click(Locator::LinkText("Drift")).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !c.source().await.contains("Acknowledge") {
        // The default branch's check opens the drift; the page is read again until it shows.
        assert!(
            Instant::now() < deadline,
            "no open drift: {}",
            c.source().await
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        c.goto(&format!("{}/drift", h.url())).await;
    }
    assert!(c.source().await.contains("envs/prod/app"));
    shot(&c, "drift").await;
    c.click(Locator::Css("form[action='/drift/ack'] button"))
        .await;
    wait_source(&c, "the acknowledged drift", |s| {
        s.contains(">acknowledged<") && s.contains("by ana")
    })
    .await;
    shot(&c, "drift-acknowledged").await;
    c.click(Locator::LinkText("Runs")).await;
    let runs = wait_source(&c, "the runs list", |s| s.contains("<h1>Runs</h1>")).await;
    assert!(
        runs.contains(REPO) && runs.contains("status ok\">Succeeded"),
        "{runs}"
    );
    shot(&c, "runs").await;
    c.click(Locator::LinkText("#1")).await;
    wait_source(&c, "the PR's runs", |s| s.contains("acme/infra #1")).await;
    shot(&c, "pull-runs").await;
    c.click(Locator::LinkText("Audit")).await;
    let audit = wait_source(&c, "the audit page", |s| s.contains("<h1>Audit</h1>")).await;
    assert!(audit.contains("drift_acknowledged"), "{audit}");
    shot(&c, "audit").await;
    c.click(Locator::Css("a[title='The story of this commit']"))
        .await;
    wait_source(&c, "a commit's story", |s| {
        s.contains("name=\"commit\" value=\"") && !s.contains("name=\"commit\" value=\"\"")
    })
    .await;
    shot(&c, "audit-commit").await;

    // The plan's log page (through the comment's link target).
    let plan_job = full_log_job(&h).await;
    c.goto(&format!("{}/jobs/{plan_job}/log", h.url())).await;
    wait_source(&c, "the plan log", |s| s.contains("end of log")).await;
    shot(&c, "job-log").await;

    // A slow apply: its lines arrive in the open page while it runs.
    h.fake.add_review(REPO, 1, "bob", "APPROVED");
    h.deliver(&h.comment_event(1, "alice", "sluice apply"))
        .await;
    let apply_job = plan_job + 1;
    let page = format!("{}/jobs/{apply_job}/log", h.url());
    // The apply job exists once the comment is handled.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = reqwest::Client::new()
            .get(&page)
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the apply job did not appear");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.goto(&page).await;
    let first = c.source().await;
    let done = wait_source(&c, "the apply's end streamed in", |s| {
        s.contains("end of log") && s.contains("Apply complete")
    })
    .await;
    assert!(
        !first.contains("Apply complete"),
        "the page was opened before the apply finished, so its end arrived live"
    );
    assert!(!done.contains(API_TOKEN), "redacted live too");
    shot(&c, "job-log-live").await;

    // Locks: the holder after the apply, release through the confirmation.
    let head = h.fake_pull(1).head_sha;
    h.wait_status(&head, "sluice/apply", "success").await;
    if h.locks().await.is_empty() {
        // Released by the apply already (merged PRs keep nothing): take it again.
        let head2 = h.push(
            1,
            "change-1",
            &[("envs/prod/app/other.tf", "# another change\n")],
        );
        h.deliver(&h.pr_event("synchronize", 1)).await;
        h.wait_status(&head2, "sluice/plan", "success").await;
    }
    assert_eq!(h.locks().await.len(), 1);
    c.goto(&format!("{}/locks", h.url())).await;
    shot(&c, "locks").await;
    c.click(Locator::LinkText("Release…")).await;
    wait_source(&c, "the confirmation", |s| s.contains("Release the lock")).await;
    shot(&c, "lock-release-confirm").await;
    c.click(Locator::Css("button.danger")).await;
    wait_source(&c, "the lock list without it", |s| {
        s.contains("No locks are held")
    })
    .await;
    assert!(h.locks().await.is_empty());
    h.wait_comment(1, "the PR told", |c| c.contains("ana"))
        .await;

    // Eve cannot read the repository: nothing listed, its log is the 404 page.
    log_in(&c, &h, "eve").await;
    let envs = c.source().await;
    assert!(!envs.contains(REPO), "{envs}");
    c.goto(&format!("{}/jobs/{plan_job}/log", h.url())).await;
    let refused = c.source().await;
    assert!(refused.contains("Not found") && !refused.contains("null_resource"));
    shot(&c, "refused").await;
    c.close().await;
}
