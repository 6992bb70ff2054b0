//! Drift detection end to end (PRODUCT.md §14) with real terraform, the null provider and a real
//! remote state (terraform's `http` backend, [`StateBackend`]), changed behind Sluice's back.
//!
//! `sluice drift check` on a local checkout: in sync, changed outside Git, unapplied, an
//! unreachable backend, plan JSON over its cap — and the state lock is never taken.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::state_backend::StateBackend;
use crate::support::{DataDir, Run, TestRepo, Tools, scratch_dir, sluice, tool_env, tools};

/// A project on the http backend with `null_resource`s named `resources`, each with trigger
/// `v = value`.
pub fn backend_project(backend: &StateBackend, state: &str, resources: &[(&str, &str)]) -> String {
    let mut s = backend.backend_block(state);
    s.push_str(
        "terraform {\n  required_providers {\n    null = {\n      source  = \"hashicorp/null\"\n      version = \"~> 2.1\"\n    }\n  }\n}\n",
    );
    for (name, value) in resources {
        s.push_str(&format!(
            "resource \"null_resource\" \"{name}\" {{\n  triggers = {{ v = \"{value}\" }}\n}}\n"
        ));
    }
    s
}

/// Applies `dir` of `repo` with the raw terraform binary (outside Sluice): how the state first
/// comes to exist, or an apply by hand.
pub fn apply_by_hand(tools: &Tools, repo: &TestRepo, dir: &str) {
    let work = scratch_dir("by-hand");
    crate::support::copy_dir(&repo.path().join(dir), work.path());
    let tf = |args: &[&str]| {
        let out = Command::new(&tools.terraform)
            .args(args)
            .current_dir(work.path())
            .env("TF_IN_AUTOMATION", "1")
            .output()
            .expect("terraform runs");
        assert!(
            out.status.success(),
            "terraform {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let plugin_dir = format!("-plugin-dir={}", tools.mirror.display());
    tf(&["init", "-input=false", "-no-color", &plugin_dir]);
    tf(&["apply", "-input=false", "-no-color", "-auto-approve"]);
}

/// The settings environment for drift checks: the tools, and egress to the state backend.
pub fn drift_env(tools: &Tools, data: &Path, backend: &StateBackend) -> BTreeMap<String, String> {
    let mut env = tool_env(tools, data);
    env.insert(
        "SLUICE_RUNNER__EGRESS_ALLOW".into(),
        backend.addr.to_string(),
    );
    env
}

fn drift_check(env: &BTreeMap<String, String>, repo: &TestRepo, args: &[&str]) -> Run {
    let path = repo.path().display().to_string();
    let mut argv = vec!["drift", "check"];
    argv.extend_from_slice(args);
    argv.push(&path);
    Run::from_output(&sluice(&argv, env, repo.path()))
}

#[test]
fn drift_check_tells_changed_outside_from_unapplied_and_never_takes_the_lock() {
    let tools = tools();
    let backend = StateBackend::start();
    let data = DataDir::scratch("drift-data");
    let env = drift_env(&tools, data.path(), &backend);
    let repo = TestRepo::new();
    repo.write(
        "app/main.tf",
        &backend_project(&backend, "app", &[("web", "1"), ("db", "1")]),
    );
    repo.write(
        "other/main.tf",
        &backend_project(&backend, "other", &[("x", "1")]),
    );
    repo.commit("infra");
    apply_by_hand(&tools, &repo, "app");
    apply_by_hand(&tools, &repo, "other");
    let locks_before = backend
        .requests()
        .iter()
        .filter(|r| r.starts_with("LOCK"))
        .count();

    // In sync: exit 0, both projects.
    let run = drift_check(&env, &repo, &[]);
    run.expect_code(0);
    assert!(
        run.stdout.contains("app (dir app, workspace default)"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains(": in sync"), "{}", run.stdout);
    assert_eq!(run.stdout.matches(": in sync").count(), 2, "{}", run.stdout);

    // Changed behind Sluice's back: changed_outside, naming the resource; the other project
    // and the other resource are not reported.
    backend.change_outside("app", "web", "resized-by-hand");
    let run = drift_check(&env, &repo, &["--project", "app"]);
    run.expect_code(3);
    assert!(
        run.stdout.contains("1 changed_outside"),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    assert!(run.stdout.contains("null_resource.web"), "{}", run.stdout);
    assert!(!run.stdout.contains("null_resource.db"), "{}", run.stdout);
    assert!(!run.stdout.contains("other (dir"), "{}", run.stdout);

    // Git ahead of the infrastructure: a commit that was never applied.
    repo.write(
        "other/main.tf",
        &backend_project(&backend, "other", &[("x", "2")]),
    );
    repo.commit("other: x to 2, not applied");
    let run = drift_check(&env, &repo, &["-p", "other"]);
    run.expect_code(3);
    assert!(run.stdout.contains("1 unapplied"), "{}", run.stdout);
    assert!(run.stdout.contains("null_resource.x"), "{}", run.stdout);
    assert!(!run.stdout.contains("changed_outside"), "{}", run.stdout);

    // No check ever took the state lock.
    let locks_after = backend
        .requests()
        .iter()
        .filter(|r| r.starts_with("LOCK"))
        .count();
    assert_eq!(locks_before, locks_after, "{:?}", backend.requests());
    assert!(!backend.locked("app") && !backend.locked("other"));

    // An unknown project is a clear error listing the known ones.
    let run = drift_check(&env, &repo, &["-p", "nope"]);
    run.expect_code(2);
    assert!(
        run.stderr.contains("no project named `nope`") && run.stderr.contains("app, other"),
        "{}",
        run.stderr
    );
}

#[test]
fn drift_check_of_an_unreachable_backend_or_an_oversized_plan_fails_clearly() {
    let tools = tools();
    let backend = StateBackend::start();
    let data = DataDir::scratch("drift-data");
    let mut env = drift_env(&tools, data.path(), &backend);
    let repo = TestRepo::new();
    let many: Vec<(String, String)> = (0..30).map(|i| (format!("r{i}"), "1".into())).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    repo.write("app/main.tf", &backend_project(&backend, "app", &many));
    repo.commit("infra");
    apply_by_hand(&tools, &repo, "app");

    // Plan JSON over the cap: the check fails and says which cap.
    env.insert("SLUICE_RUNNER__PLAN_JSON_CAP_BYTES".into(), "2000".into());
    let run = drift_check(&env, &repo, &[]);
    run.expect_code(1);
    assert!(run.stdout.contains("check failed"), "{}", run.stdout);
    assert!(
        run.stdout.contains("runner.plan_json_cap_bytes"),
        "{}",
        run.stdout
    );
    env.remove("SLUICE_RUNNER__PLAN_JSON_CAP_BYTES");

    // The backend goes away: the check fails with terraform's error, never "in sync".
    backend.stop();
    let run = drift_check(&env, &repo, &[]);
    run.expect_code(1);
    assert!(
        run.stdout.contains("app (dir app, workspace default)"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("check failed"), "{}", run.stdout);
    assert!(!run.stdout.contains("in sync"), "{}", run.stdout);
    assert!(run.stdout.contains("init"), "{}", run.stdout);
}

/// A drifted attribute marked sensitive (a sensitive variable fed into it) is reported by address
/// and classification, never by value: neither the applied value nor the one changed outside.
#[test]
fn a_drifted_sensitive_attribute_is_reported_without_its_values() {
    let tools = tools();
    let backend = StateBackend::start();
    let data = DataDir::scratch("drift-data");
    let env = drift_env(&tools, data.path(), &backend);
    let repo = TestRepo::new();
    let mut tf = backend_project(&backend, "app", &[("web", "1")]);
    tf.push_str(concat!(
        "variable \"db\" {\n  type      = map(string)\n  sensitive = true\n",
        "  default   = { password = \"s3cr3t-initial\" }\n}\n",
        "resource \"null_resource\" \"db\" {\n  triggers = var.db\n}\n",
    ));
    repo.write("app/main.tf", &tf);
    repo.commit("infra with a sensitive trigger");
    apply_by_hand(&tools, &repo, "app");
    let attrs = backend.state("app").expect("state")["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .find(|r| r["name"] == "db")
        .expect("db in state")["instances"][0]
        .clone();
    assert!(
        attrs["sensitive_attributes"]
            .as_array()
            .is_some_and(|a| !a.is_empty()),
        "terraform records the sensitive path in state: {attrs}"
    );

    backend.change_outside("app", "db", "s3cr3t-changed");
    let run = drift_check(&env, &repo, &[]);
    run.expect_code(3);
    let all = format!("{}\n{}", run.stdout, run.stderr);
    assert!(all.contains("1 changed_outside"), "{all}");
    assert!(all.contains("null_resource.db"), "{all}");
    assert!(all.contains("(sensitive value)"), "{all}");
    assert!(!all.contains("null_resource.web"), "{all}");
    for secret in ["s3cr3t-initial", "s3cr3t-changed"] {
        assert!(!all.contains(secret), "`{secret}` shown:\n{all}");
    }
}

// ---------------------------------------------------------------------------------------------
// The server: the whole loop, from an apply through Sluice to a resolved drift.

use std::sync::{Arc, Mutex};

use crate::server::{API_TOKEN, Harness, REPO};
use crate::webhooks::{Webhook, github_now};

/// One POST a [`Receiver`] got: path, signature header, body.
type Received = (String, Option<String>, String);

/// Records every POST it receives: a notification endpoint.
pub(crate) struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub(crate) fn start() -> Receiver {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind receiver");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let g = got.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let mut reader = BufReader::new(conn.try_clone().expect("clone"));
                let mut conn = conn;
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                let (mut len, mut sig) = (0usize, None);
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).is_err() {
                        break;
                    }
                    let h = h.trim_end();
                    if h.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        if k.eq_ignore_ascii_case("content-length") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                        if k.eq_ignore_ascii_case("x-sluice-signature-256") {
                            sig = Some(v.trim().to_string());
                        }
                    }
                }
                let mut body = vec![0; len];
                let _ = reader.read_exact(&mut body);
                g.lock().expect("lock").push((
                    path,
                    sig,
                    String::from_utf8_lossy(&body).into_owned(),
                ));
                let _ = conn.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        Receiver { url, got }
    }

    pub(crate) fn events(&self) -> Vec<serde_json::Value> {
        self.got
            .lock()
            .expect("lock")
            .iter()
            .map(|(_, _, b)| serde_json::from_str(b).expect("JSON"))
            .collect()
    }
}

const HOOK_SECRET: &str = "drift-hook-secret-0123";

/// The server harness with a remote state for `app/` and notifications to `receiver`.
pub(crate) async fn drift_harness(backend: &StateBackend, receiver: &Receiver) -> Harness {
    let main = backend_project(backend, "app", &[("web", "1"), ("db", "1")]);
    let mut h = Harness::new(&[("app/main.tf", &main)]).await;
    h.set_env("SLUICE_RUNNER__EGRESS_ALLOW", &backend.addr.to_string());
    h.set_env("SLUICE_DRIFT__WEBHOOK_URL", &receiver.url);
    h.set_env("SLUICE_DRIFT__WEBHOOK_SECRET", HOOK_SECRET);
    h.start();
    h
}

static PUSHES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A push of the origin's `main` as it is now.
pub(crate) fn push_event(h: &Harness) -> Webhook {
    let n = PUSHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    h.origin.checkout("main");
    Webhook::load("push.json")
        .repo(REPO, &h.origin.url())
        .default_branch("main")
        .set("/ref", "refs/heads/main")
        .set("/after", h.origin.head().as_str())
        .set("/before", format!("{n:040x}").as_str())
        .installation(None)
}

static ISSUE_COMMENTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(900_000);

/// A comment on plain issue `issue`.
pub(crate) fn issue_comment(
    h: &Harness,
    issue: u64,
    user: &str,
    association: &str,
    body: &str,
) -> Webhook {
    let id = ISSUE_COMMENTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Webhook::load("issue_comment.created.json")
        .repo(REPO, &h.origin.url())
        .default_branch("main")
        .set("/issue/number", issue)
        .comment_body(body)
        .user(user)
        .set("/comment/id", id)
        .set("/comment/author_association", association)
        .set("/comment/created_at", github_now())
        .set("/comment/updated_at", github_now())
        .installation(None)
}

/// Merges `branch` into the origin's `main`.
pub(crate) fn merge(h: &Harness, branch: &str) {
    h.origin.checkout("main");
    h.origin.git(&["merge", "--no-edit", "--no-ff", branch]);
}

/// `GET /api/projects` → the one project's JSON.
pub(crate) async fn project_status(h: &Harness) -> serde_json::Value {
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

pub(crate) async fn wait_status(
    h: &Harness,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let p = project_status(h).await;
        if pred(&p) {
            return p;
        }
        if std::time::Instant::now() > deadline {
            panic!(
                "timed out waiting for {what}; last status {p:#}\n--- logs ---\n{}",
                h.server().logs()
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Plans, approves and applies PR `n` through Sluice.
pub(crate) async fn apply_through_sluice(h: &Harness, n: u64, branch: &str, main_tf: &str) {
    let head = h.open_pr(n, branch, &[("app/main.tf", main_tf)]);
    h.deliver(&h.pr_event("opened", n)).await;
    h.wait_status(&head, "sluice/plan", "success").await;
    h.fake.add_review(REPO, n, "bob", "APPROVED");
    h.deliver(&h.comment_event(n, "alice", "sluice apply"))
        .await;
    h.wait_status(&head, "sluice/apply", "success").await;
}

fn audit_actions(h: &Harness) -> Vec<String> {
    let out = h.cli(&["audit", "export"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["action"].as_str().map(String::from))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn drift_from_an_apply_through_sluice_to_resolved_with_one_issue_and_state_change_notifications()
 {
    let backend = StateBackend::start();
    let receiver = Receiver::start();
    let h = drift_harness(&backend, &receiver).await;

    // A PR applied through Sluice and merged: synced.
    let v2 = backend_project(&backend, "app", &[("web", "2"), ("db", "1")]);
    apply_through_sluice(&h, 1, "web-2", &v2).await;
    assert!(
        backend.state("app").is_some(),
        "the apply wrote the remote state"
    );
    merge(&h, "web-2");
    h.deliver(&h.pr_event("closed", 1).set("/pull_request/merged", true))
        .await;
    h.deliver(&push_event(&h)).await;
    let p = wait_status(&h, "synced", |p| p["status"] == "synced").await;
    assert_eq!(p["last_applied"]["by"]["login"], "alice", "{p:#}");
    assert_eq!(p["last_applied"]["pr"], 1, "{p:#}");
    // The engine version that applied is kept: a later check tells an engine upgrade from it.
    assert_eq!(p["last_applied"]["engine_version"], "1.0.3", "{p:#}");
    assert!(
        h.fake.issues(REPO).is_empty(),
        "no issue for a synced project"
    );

    // Changed behind Sluice's back: the next check opens exactly one issue naming the resource
    // as changed_outside, and one notification goes out.
    backend.change_outside("app", "web", "resized-by-hand");
    h.deliver(&push_event(&h)).await;
    wait_status(&h, "drifted", |p| p["status"] == "drifted").await;
    let issue = h
        .wait("the drift issue", || {
            h.fake.issues(REPO).into_iter().find(|i| i.open)
        })
        .await;
    assert_eq!(h.fake.issues(REPO).len(), 1);
    assert!(issue.body.contains("null_resource.web"), "{}", issue.body);
    assert!(
        issue.body.to_lowercase().contains("changed outside"),
        "{}",
        issue.body
    );
    assert!(!issue.body.contains("null_resource.db"), "{}", issue.body);
    let opened = h
        .wait("the notification", || {
            let e = receiver.events();
            (!e.is_empty()).then_some(e)
        })
        .await;
    assert_eq!(opened.len(), 1, "{opened:#?}");
    assert_eq!(opened[0]["type"], "drift_opened");
    {
        let got = receiver.got.lock().expect("lock");
        let (_, sig, body) = &got[0];
        let sig = sig.as_deref().expect("signed");
        assert!(
            sluice::core::drift::notify::verify(HOOK_SECRET.as_bytes(), body.as_bytes(), sig),
            "the signature verifies"
        );
    }

    // A second check edits the same issue; no new issue, no new notification.
    let edits = issue.edits;
    h.deliver(&push_event(&h)).await;
    h.wait("the issue edited", || {
        let i = h.fake.issues(REPO);
        (i.len() == 1 && i[0].edits > edits).then_some(())
    })
    .await;
    assert_eq!(h.fake.issues(REPO).len(), 1);
    assert_eq!(
        receiver.events().len(),
        1,
        "no notification without a state change"
    );

    // Someone not a collaborator: refused, audited.
    h.deliver(&issue_comment(
        &h,
        issue.number,
        "mallory",
        "NONE",
        "sluice drift ack",
    ))
    .await;
    let refusal = h
        .wait_comment(issue.number, "the refusal", |c| c.contains("Refused"))
        .await;
    assert!(refusal.contains("not a collaborator"), "{refusal}");

    // ack, then a bad accept, then accept --until.
    h.deliver(&issue_comment(
        &h,
        issue.number,
        "alice",
        "OWNER",
        "sluice drift ack",
    ))
    .await;
    wait_status(&h, "acknowledged", |p| {
        p["drift"]["phase"] == "acknowledged"
    })
    .await;
    h.deliver(&issue_comment(
        &h,
        issue.number,
        "alice",
        "OWNER",
        "sluice drift accept --until 2020-01-31",
    ))
    .await;
    h.wait_comment(issue.number, "the past date refused", |c| {
        c.contains("2020-01-31")
    })
    .await;
    let until = (chrono::Utc::now() + chrono::Duration::days(30))
        .date_naive()
        .to_string();
    h.deliver(&issue_comment(
        &h,
        issue.number,
        "alice",
        "OWNER",
        &format!("sluice drift accept --until {until} --reason \"vendor fix pending\""),
    ))
    .await;
    let p = wait_status(&h, "accepted", |p| p["drift"]["phase"] == "accepted").await;
    assert_eq!(p["drift"]["accepted_until"], until.as_str(), "{p:#}");
    let status = h.cli(&["status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains(&format!("accepted by alice until {until}")),
        "{text}"
    );

    // The outside change goes away and a PR changes the code without applying it: out_of_sync
    // with an unapplied resource.
    backend.edit("app", |state| {
        for r in state["resources"].as_array_mut().expect("resources") {
            if let Some(t) = r["instances"][0]["attributes"]["triggers"].as_object_mut() {
                t.remove("%");
            }
        }
    });
    let v3 = backend_project(&backend, "app", &[("web", "2"), ("db", "2")]);
    h.open_pr(2, "db-2", &[("app/main.tf", &v3)]);
    merge(&h, "db-2");
    h.deliver(&push_event(&h)).await;
    let p = wait_status(&h, "out_of_sync", |p| p["status"] == "out_of_sync").await;
    assert_eq!(p["drift"]["counts"]["unapplied"], 1, "{p:#}");
    assert_eq!(p["drift"]["counts"]["changed_outside"], 0, "{p:#}");

    // Fixing it through Sluice: the issue is closed and `resolved` audited.
    let v3b = format!("{v3}\n# applied through Sluice\n");
    apply_through_sluice(&h, 3, "apply-db-2", &v3b).await;
    merge(&h, "apply-db-2");
    h.deliver(&h.pr_event("closed", 3).set("/pull_request/merged", true))
        .await;
    h.deliver(&push_event(&h)).await;
    wait_status(&h, "synced again", |p| p["status"] == "synced").await;
    h.wait("the issue closed", || {
        h.fake.issues(REPO).iter().all(|i| !i.open).then_some(())
    })
    .await;
    assert_eq!(h.fake.issues(REPO).len(), 1, "still one issue");
    let actions = audit_actions(&h);
    for a in [
        "drift_check",
        "drift_opened",
        "drift_acknowledged",
        "drift_accepted",
        "drift_resolved",
        "command_rejected",
    ] {
        assert!(
            actions.iter().any(|x| x == a),
            "{a} missing from {actions:?}"
        );
    }
    // No check ever took the state lock.
    assert!(!backend.locked("app"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_backend_gets_one_issue_per_failure_streak_and_a_killed_check_runs_again_after_restart()
 {
    let backend = StateBackend::start();
    let receiver = Receiver::start();
    let mut h = drift_harness(&backend, &receiver).await;
    let tools = tools();
    apply_by_hand(&tools, &h.origin, "app");
    h.deliver(&push_event(&h)).await;
    wait_status(&h, "synced", |p| p["status"] == "synced").await;

    // The state backend goes away: check_failed with terraform's error, one issue for the
    // streak however many checks fail.
    backend.pause();
    h.deliver(&push_event(&h)).await;
    let p = wait_status(&h, "check_failed", |p| p["status"] == "check_failed").await;
    assert_eq!(p["failures"], 1, "{p:#}");
    let failing = |h: &Harness| -> Vec<crate::fake_github::FakeIssue> {
        h.fake
            .issues(REPO)
            .into_iter()
            .filter(|i| i.labels.iter().any(|l| l == "sluice-drift-check-failed"))
            .collect()
    };
    h.wait("the check-failed issue", || {
        (failing(&h).len() == 1).then_some(())
    })
    .await;
    h.deliver(&push_event(&h)).await;
    wait_status(&h, "a second failure", |p| p["failures"] == 2).await;
    // Delivered in order after the check is recorded: wait for the outbox to settle.
    h.wait("the issue edited", || {
        (failing(&h)[0].edits >= 1).then_some(())
    })
    .await;
    assert_eq!(failing(&h).len(), 1, "one issue per failure streak");
    assert!(
        failing(&h)[0].body.contains("Failed") || failing(&h)[0].body.contains("error"),
        "{}",
        failing(&h)[0].body
    );
    backend.resume();
    h.deliver(&push_event(&h)).await;
    wait_status(&h, "synced again", |p| p["status"] == "synced").await;
    h.wait("the check-failed issue closed", || {
        (!failing(&h)[0].open).then_some(())
    })
    .await;

    // A check in flight when the server is killed runs again after the restart; one issue.
    backend.change_outside("app", "web", "by-hand");
    backend.slow_gets(6_000);
    let gets = backend.gets("app");
    h.deliver(&push_event(&h)).await;
    h.wait("the check reading the state", || {
        (backend.gets("app") > gets).then_some(())
    })
    .await;
    h.server.as_mut().expect("server").kill();
    backend.slow_gets(0);
    h.start();
    wait_status(&h, "drifted after the restart", |p| {
        p["status"] == "drifted"
    })
    .await;
    let drift_issues = |h: &Harness| -> Vec<crate::fake_github::FakeIssue> {
        h.fake
            .issues(REPO)
            .into_iter()
            .filter(|i| i.labels.iter().any(|l| l == "sluice-drift"))
            .collect()
    };
    h.wait("the drift issue", || {
        (drift_issues(&h).len() == 1).then_some(())
    })
    .await;
    assert_eq!(drift_issues(&h).len(), 1);
}

/// The `timestamp` of the first server log line whose message is `message` and that `pred`
/// accepts.
fn log_time(
    logs: &str,
    message: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> Option<chrono::DateTime<chrono::Utc>> {
    logs.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["message"] == message && pred(v))
        .and_then(|v| v["timestamp"].as_str().map(String::from))
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
}

#[tokio::test(flavor = "multi_thread")]
async fn five_hundred_projects_due_at_once_never_delay_a_pr_job() {
    let files: Vec<(String, String)> = (0..500)
        .map(|i| {
            (
                format!("envs/p{i:03}/main.tf"),
                crate::support::null_project(&format!("p{i}"), "1"),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    let mut h = Harness::new(&refs).await;
    h.set_env("SLUICE_DRIFT__WORKERS", "1");
    h.start();
    // Every project is due now: a push asks for a check of each.
    h.deliver(&push_event(&h)).await;
    let all = wait_status(&h, "the projects registered", |p| !p.is_null()).await;
    assert!(all["next_check_due"].is_string(), "{all:#}");
    h.wait("a drift check running", || {
        h.server().logs().contains("drift_check").then_some(())
    })
    .await;

    // A PR now: its plan job starts within a second of being queued.
    let head = h.open_pr(
        1,
        "change",
        &[(
            "envs/p007/main.tf",
            &crate::support::null_project("p7", "2"),
        )],
    );
    h.deliver(&h.pr_event("opened", 1)).await;
    h.wait_status(&head, "sluice/plan", "success").await;
    let logs = h.server().logs();
    let queued =
        log_time(&logs, "plan queued", |v| v["fields"]["pr"] == 1).expect("plan queued logged");
    let started =
        log_time(&logs, "job started", |v| v["span"]["pr"] == 1).expect("job started logged");
    let waited = started - queued;
    assert!(
        waited < chrono::Duration::seconds(1),
        "the PR job waited {waited} behind drift checks"
    );
    // The checks are spread: the scheduled due times of 500 projects are not one instant.
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
    let projects = v["projects"].as_array().expect("projects");
    assert_eq!(projects.len(), 500);
    let due: std::collections::BTreeSet<&str> = projects
        .iter()
        .filter_map(|p| p["next_check_due"].as_str())
        .collect();
    assert!(
        due.len() > 400,
        "scheduled checks spread over distinct times: {}",
        due.len()
    );
}
