//! Drift detection end to end (PRODUCT.md §14) with real terraform, the null provider and a real
//! remote state (terraform's `http` backend, [`StateBackend`]), changed behind Sluice's back.
//!
//! `sluice drift check` on a local checkout: in sync, changed outside Git, unapplied, an
//! unreachable backend, plan JSON over its cap — and the state lock is never taken.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::state_backend::StateBackend;
use crate::support::{Run, TestRepo, Tools, scratch_dir, sluice, tool_env, tools};

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
    let data = scratch_dir("drift-data");
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
    let data = scratch_dir("drift-data");
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
