//! A harness for end-to-end tests of the bot: the real `sluice serve` binary, started as a child
//! process against the fake GitHub server, a real git repository (cloned through a `file://`
//! URL), real terraform with the null provider, and a real SQLite store in a temp dir.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::fake_github::{FakeGitHub, FakePull, TOKEN};
use crate::support::{DataDir, TestRepo, tools};
use crate::webhooks::{Webhook, github_now};

pub const SECRET: &str = "test-webhook-secret-0123456789";
pub const API_TOKEN: &str = "test-api-token-0123456789";
pub const REPO: &str = "acme/infra";

/// A running `sluice serve`.
pub struct Server {
    child: Option<Child>,
    pub url: String,
    pub logs: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts the binary with `env` (plus nothing inherited but PATH/HOME) and waits until it
    /// listens.
    pub fn start(env: &BTreeMap<String, String>, args: &[&str]) -> Result<Server, String> {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
        cmd.arg("serve")
            .args(args)
            .arg("--log-format")
            .arg("json")
            .env_clear();
        for key in ["PATH", "HOME"] {
            if let Ok(v) = std::env::var(key) {
                cmd.env(key, v);
            }
        }
        cmd.env("SLUICE_LOG", "info,sluice=debug");
        cmd.envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| e.to_string())?;
        let stderr = child.stderr.take().expect("piped");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let logs = logs.clone();
            std::thread::spawn(move || {
                let mut tx = Some(tx);
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Some(addr) = line.strip_prefix("sluice: listening on ")
                        && let Some(t) = tx.take()
                    {
                        let _ = t.send(addr.trim().to_string());
                    }
                    logs.lock().unwrap().push(line);
                }
            });
        }
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(url) => Ok(Server {
                child: Some(child),
                url,
                logs,
            }),
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                std::thread::sleep(Duration::from_millis(100));
                Err(format!(
                    "server did not start ({status:?}):\n{}",
                    logs.lock().unwrap().join("\n")
                ))
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGKILL: a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The exit status when the process has ended by itself (or was killed); `None` while it runs.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = c.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = c.kill();
        c.wait().ok()
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Everything a bot scenario needs.
pub struct Harness {
    pub fake: FakeGitHub,
    pub origin: TestRepo,
    pub data: DataDir,
    pub env: BTreeMap<String, String>,
    pub server: Option<Server>,
    pub http: reqwest::Client,
}

impl Harness {
    /// The origin repo gets `files` on `main`; the server is not started yet.
    pub async fn new(files: &[(&str, &str)]) -> Harness {
        let tools = tools();
        let fake = FakeGitHub::start().await;
        let origin = TestRepo::new();
        for (p, c) in files {
            origin.write(p, c);
        }
        origin.commit("initial infrastructure");
        let data = DataDir::temp();
        let env = BTreeMap::from([
            ("SLUICE_LISTEN".to_string(), "127.0.0.1:0".to_string()),
            (
                "SLUICE_DATA_DIR".to_string(),
                data.path().display().to_string(),
            ),
            ("SLUICE_WEBHOOK_SECRET".to_string(), SECRET.to_string()),
            ("SLUICE_GITHUB_TOKEN".to_string(), TOKEN.to_string()),
            ("SLUICE_GITHUB_API_URL".to_string(), fake.url()),
            (
                "SLUICE_TERRAFORM_BIN".to_string(),
                tools.terraform.display().to_string(),
            ),
            (
                "SLUICE_PROVIDER_MIRROR".to_string(),
                tools.mirror.display().to_string(),
            ),
            ("SLUICE_API_TOKEN".to_string(), API_TOKEN.to_string()),
            ("SLUICE_JOB_LEASE_SECS".to_string(), "3".to_string()),
            ("SLUICE_SHUTDOWN_GRACE_SECS".to_string(), "20".to_string()),
        ]);
        Harness {
            fake,
            origin,
            data,
            env,
            server: None,
            // A pooled connection idle longer than the server's header-read timeout is closed by
            // the server (it waits for the next request's head); reusing one as it closes fails
            // the request. Connections idle for a second are not reused: no server here has a
            // shorter timeout.
            http: reqwest::Client::builder()
                .pool_idle_timeout(Duration::from_secs(1))
                .build()
                .expect("http client"),
        }
    }

    /// Sluice will authenticate as the fake's GitHub App (installed on [`REPO`]), not a token.
    pub fn as_app(&mut self) {
        let key = self.data.path().join("app.pem");
        std::fs::write(&key, crate::fake_github::app_private_key()).expect("write the App key");
        self.env.remove("SLUICE_GITHUB_TOKEN");
        self.set_env(
            "SLUICE_GITHUB_APP_ID",
            &crate::fake_github::APP_ID.to_string(),
        );
        self.set_env("SLUICE_GITHUB_APP_KEY_FILE", &key.display().to_string());
        self.fake.install_on_repo(REPO, 77);
    }

    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.insert(key.to_string(), value.to_string());
    }

    pub fn start(&mut self) {
        let s = Server::start(&self.env, &[]).unwrap_or_else(|e| panic!("{e}"));
        self.server = Some(s);
    }

    pub fn server(&self) -> &Server {
        self.server.as_ref().expect("server started")
    }

    pub fn url(&self) -> String {
        self.server().url.clone()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data.path().to_path_buf()
    }

    /// Waits for `sluice/policy` to fail at `head` of PR `n`, then bob approves and alice
    /// comments `sluice apply`; returns the refusal comment.
    pub async fn approved_apply_refused_by_policy(&self, n: u64, head: &str) -> String {
        self.wait_status(head, "sluice/policy", "failure").await;
        self.fake.add_review(REPO, n, "bob", "APPROVED");
        self.deliver(&self.comment_event(n, "alice", "sluice apply"))
            .await;
        self.wait_comment(n, "refusal", |c| c.contains("Apply refused"))
            .await
    }

    /// Creates branch `branch` from `main` with `files` changed, registers PR `n` on the fake and
    /// in the origin's `refs/pull/n/head`. Returns the head SHA.
    pub fn open_pr(&self, n: u64, branch: &str, files: &[(&str, &str)]) -> String {
        self.open_pr_into(n, "main", branch, files)
    }

    /// [`Harness::open_pr`] into `base_branch` (a branch of the origin) instead of `main`.
    pub fn open_pr_into(
        &self,
        n: u64,
        base_branch: &str,
        branch: &str,
        files: &[(&str, &str)],
    ) -> String {
        self.origin.checkout(base_branch);
        let base = self.origin.head();
        self.origin.checkout_new(branch);
        for (p, c) in files {
            self.origin.write(p, c);
        }
        let head = self.origin.commit(&format!("change for #{n}"));
        self.origin.set_pull_ref(n, &head);
        self.origin.checkout("main");
        self.fake.add_pull(FakePull {
            head_sha: head.clone(),
            head_ref: branch.to_string(),
            base_ref: base_branch.to_string(),
            base_sha: base,
            ..FakePull::new(REPO, n)
        });
        head
    }

    /// [`Harness::open_pr`], then the `opened` webhook; waits until the plan succeeded at the
    /// head, which it returns.
    pub async fn open_and_plan(&self, n: u64, branch: &str, files: &[(&str, &str)]) -> String {
        let head = self.open_pr(n, branch, files);
        self.deliver(&self.pr_event("opened", n)).await;
        self.wait_status(&head, "sluice/plan", "success").await;
        head
    }

    /// Adds a commit to the PR's branch; returns the new head SHA (the fake and the pull ref
    /// follow).
    pub fn push(&self, n: u64, branch: &str, files: &[(&str, &str)]) -> String {
        self.origin.checkout(branch);
        for (p, c) in files {
            self.origin.write(p, c);
        }
        let head = self.origin.commit(&format!("more for #{n}"));
        self.origin.set_pull_ref(n, &head);
        self.origin.checkout("main");
        self.fake
            .update_pull(REPO, n, |p| p.head_sha = head.clone());
        head
    }

    /// A `pull_request` webhook for PR `n` as the fake knows it.
    pub fn pr_event(&self, action: &str, n: u64) -> Webhook {
        let pull = self.fake_pull(n);
        Webhook::load(match action {
            "closed" => "pull_request.closed.json",
            "synchronize" => "pull_request.synchronize.json",
            "reopened" => "pull_request.reopened.json",
            "ready_for_review" => "pull_request.ready_for_review.json",
            _ => "pull_request.opened.json",
        })
        .repo(REPO, &self.origin.url())
        .default_branch("main")
        .pr_number(n)
        .head_sha(&pull.head_sha)
        .set("/pull_request/head/ref", pull.head_ref.as_str())
        .base(&pull.base_ref, &pull.base_sha)
        .user(&pull.author)
        .set("/pull_request/user/id", pull.author_id)
        .set("/pull_request/updated_at", github_now())
        .draft(false)
        .installation(None)
    }

    pub fn fake_pull(&self, n: u64) -> FakePull {
        self.fake.pull(REPO, n).expect("the PR exists on the fake")
    }

    /// An `issue_comment` webhook on PR `n` by `user`.
    pub fn comment_event(&self, n: u64, user: &str, body: &str) -> Webhook {
        let id = self.fake.add_comment(REPO, n, user, body);
        Webhook::load("issue_comment.created.pr.json")
            .repo(REPO, &self.origin.url())
            .default_branch("main")
            .pr_number(n)
            .comment_body(body)
            .user(user)
            .set("/comment/id", id)
            .set("/comment/created_at", github_now())
            .set("/comment/updated_at", github_now())
            .set("/comment/user/id", user_id(user))
            .set("/sender/id", user_id(user))
            .installation(None)
    }

    pub async fn send(&self, hook: &Webhook) -> reqwest::Response {
        let signed = hook.signed(SECRET);
        self.http
            .post(format!("{}/events", self.url()))
            .headers(signed.header_map())
            .body(signed.body.clone())
            .send()
            .await
            .expect("webhook delivered")
    }

    /// Sends an already signed webhook (when the test needs its delivery id beforehand).
    pub async fn send_signed(&self, signed: &crate::webhooks::SignedWebhook) -> reqwest::Response {
        self.http
            .post(format!("{}/events", self.url()))
            .headers(signed.header_map())
            .body(signed.body.clone())
            .send()
            .await
            .expect("webhook delivered")
    }

    /// Sends and asserts 202.
    pub async fn deliver(&self, hook: &Webhook) {
        let r = self.send(hook).await;
        assert_eq!(
            r.status(),
            202,
            "webhook not accepted: {}",
            r.text().await.unwrap_or_default()
        );
    }

    /// Waits until PR `n` has a comment satisfying `pred`; returns it.
    pub async fn wait_comment(&self, n: u64, what: &str, pred: impl Fn(&str) -> bool) -> String {
        self.wait(what, || {
            self.fake
                .bot_comments(REPO, n)
                .into_iter()
                .find(|c| pred(c))
        })
        .await
    }

    /// Number of comments on PR `n` satisfying `pred`.
    pub fn count_comments(&self, n: u64, pred: impl Fn(&str) -> bool) -> usize {
        self.fake
            .bot_comments(REPO, n)
            .iter()
            .filter(|c| pred(c))
            .count()
    }

    /// Waits for the latest status `context` on `sha` to be `state`; returns its description.
    pub async fn wait_status(&self, sha: &str, context: &str, state: &str) -> String {
        self.wait(&format!("status {context}={state} on {sha}"), || {
            self.fake
                .statuses(sha)
                .into_iter()
                .rev()
                .find(|(c, _, _)| c == context)
                .filter(|(_, s, _)| s == state)
                .map(|(_, _, d)| d)
        })
        .await
    }

    /// Waits for the status `context` on `sha` to be `state` with exactly `description`. Use it
    /// for `pending`, which a run's start and its report can both set: waiting on the state
    /// alone can return the start's status before the report's arrives.
    pub async fn wait_status_described(
        &self,
        sha: &str,
        context: &str,
        state: &str,
        description: &str,
    ) {
        self.wait(
            &format!("status {context}={state} \"{description}\" on {sha}"),
            || {
                self.fake
                    .statuses(sha)
                    .into_iter()
                    .rev()
                    .find(|(c, _, _)| c == context)
                    .filter(|(_, s, d)| s == state && d == description)
                    .map(|_| ())
            },
        )
        .await
    }

    /// Waits until the server has nothing left to do for `prs`: every stored event handled, the
    /// outbox delivered, and no run of theirs open. The positive signal a test waits for before
    /// it asserts that something did *not* happen.
    pub async fn wait_idle(&self, prs: &[u64]) {
        use sluice::app::ports::Store;
        use sluice::app::ports::store::EventState;
        use sluice::core::types::{PrNumber, RepoName};
        let store =
            sluice::adapters::store::sqlite::SqliteStore::open(&self.data_dir().join("sluice.db"))
                .await
                .expect("the server's store opens");
        let repo = RepoName::parse(REPO).expect("a repository name");
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let mut busy = Vec::new();
            if !store
                .list_events(Some(EventState::Pending), 1)
                .await
                .expect("events")
                .is_empty()
            {
                busy.push("an event is pending".to_string());
            }
            let outbox = store.pending_outbox().await.expect("outbox");
            if outbox > 0 {
                busy.push(format!("{outbox} outbox items are pending"));
            }
            for pr in prs {
                let pr = PrNumber::new(*pr).expect("a PR number");
                if !store.open_runs(&repo, pr).await.expect("runs").is_empty() {
                    busy.push(format!("#{pr} has an open run"));
                }
            }
            if busy.is_empty() {
                return;
            }
            if Instant::now() > deadline {
                let logs = self.server.as_ref().map(|s| s.logs()).unwrap_or_default();
                panic!(
                    "the server never became idle: {}\n--- server logs ---\n{logs}",
                    busy.join(", ")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn wait<T>(&self, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(v) = probe() {
                return v;
            }
            if Instant::now() > deadline {
                let logs = self.server.as_ref().map(|s| s.logs()).unwrap_or_default();
                let comments: Vec<String> = self
                    .fake
                    .all_comments()
                    .into_iter()
                    .map(|c| format!("#{} {}: {}", c.issue, c.user, c.body))
                    .collect();
                panic!(
                    "timed out waiting for {what}\n--- comments ---\n{}\n--- server logs ---\n{logs}",
                    comments.join("\n----\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `GET /api/locks` → (dir, workspace, pr) triples.
    pub async fn locks(&self) -> Vec<(String, String, u64)> {
        let v: serde_json::Value = self
            .http
            .get(format!("{}/api/locks", self.url()))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .expect("api")
            .json()
            .await
            .expect("json");
        v["locks"]
            .as_array()
            .expect("locks array")
            .iter()
            .map(|l| {
                (
                    l["key"]["dir"].as_str().unwrap_or_default().to_string(),
                    l["key"]["workspace"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    l["pr"].as_u64().unwrap_or_default(),
                )
            })
            .collect()
    }

    /// Runs `sluice <args>` against this harness's data dir.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        crate::support::sluice(
            args,
            &BTreeMap::from([(
                "SLUICE_DATA_DIR".to_string(),
                self.data_dir().display().to_string(),
            )]),
            Path::new("."),
        )
    }
}

pub use crate::fake_github::user_id;
