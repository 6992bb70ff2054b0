//! `import ADDRESS ID` and `state rm ADDRESS...` end to end: the real `sluice serve`, real git,
//! real terraform with the null provider, the state in a real `http` backend
//! ([`StateBackend`]), a fake GitHub. What the state holds after each command is read from the
//! backend, what the next plan says from the pull request, and every attempt from the audit log.

use crate::drift::{apply_by_hand, backend_project};
use crate::server::{Harness, REPO};
use crate::state_backend::StateBackend;
use crate::support::{null_project, tools};

/// The audit log's entries (`sluice audit export`, JSON lines) whose action is `action`.
fn audit_entries(h: &Harness, action: &str) -> Vec<serde_json::Value> {
    let out = h.cli(&["audit", "export"]);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON line"))
        .filter(|e| e["action"] == action)
        .collect()
}

/// The addresses of the resources in state `name` of the backend, with their ids.
fn resources(backend: &StateBackend, name: &str) -> Vec<String> {
    let Some(state) = backend.state(name) else {
        return vec![];
    };
    state["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| {
            format!(
                "{}.{} id={}",
                r["type"].as_str().unwrap_or(""),
                r["name"].as_str().unwrap_or(""),
                r["instances"][0]["attributes"]["id"].as_str().unwrap_or("")
            )
        })
        .collect()
}

/// Atlantis users' break-glass: stop managing a resource without destroying it. The PR drops
/// `null_resource.x` from the configuration (its plan would destroy it); `state rm` behind the
/// apply gate forgets it in the remote state, and the next plan changes nothing. `import` runs
/// the engine against the same backend; the mirror's null provider (2.1) imports nothing, so
/// terraform's own refusal is what the pull request and the audit log get.
#[tokio::test(flavor = "multi_thread")]
async fn state_rm_and_import_change_the_remote_state_behind_the_apply_gate() {
    let backend = StateBackend::start();
    let base = backend_project(&backend, "app", &[("x", "1")]);
    let mut h = Harness::new(&[("envs/a/main.tf", &base)]).await;
    apply_by_hand(&tools(), &h.origin, "envs/a");
    assert_eq!(resources(&backend, "app").len(), 1);
    h.set_env("SLUICE_RUNNER__EGRESS_ALLOW", &backend.addr.to_string());
    h.start();
    let without_x = backend_project(&backend, "app", &[]);
    let head = h.open_pr(1, "forget-x", &[("envs/a/main.tf", &without_x)]);
    h.deliver(&h.pr_event("opened", 1)).await;
    h.wait_status(&head, "sluice/plan", "success").await;

    // The plan would destroy `x`: changing the state under it is refused.
    h.deliver(&h.comment_event(1, "alice", "sluice state rm null_resource.x"))
        .await;
    let refusal = h
        .wait_comment(1, "the unapplied-plan refusal", |c| {
            c.contains("`state rm` was not run") && c.contains("not applied")
        })
        .await;
    assert!(refusal.contains("sluice unlock"), "{refusal}");
    h.deliver(&h.comment_event(1, "alice", "sluice unlock"))
        .await;
    h.wait_comment(1, "the unlock", |c| c.contains("discarded 1 plan"))
        .await;

    // The author alone: the apply gate's `approved` requirement refuses.
    h.fake.add_review(REPO, 1, "alice", "APPROVED");
    h.deliver(&h.comment_event(1, "alice", "sluice state rm null_resource.x"))
        .await;
    let gate = h
        .wait_comment(1, "the gate refusal", |c| {
            c.contains("needs what `apply` needs")
        })
        .await;
    assert!(gate.contains("requirement `approved` failed"), "{gate}");
    assert_eq!(resources(&backend, "app").len(), 1, "nothing ran");

    // Someone else approves: `state rm` runs in the sandbox against the backend.
    h.fake.add_review(REPO, 1, "bob", "APPROVED");
    h.deliver(&h.comment_event(1, "alice", "sluice state rm null_resource.x"))
        .await;
    let removed = h
        .wait_comment(1, "the state rm result", |c| {
            c.contains("`state rm` succeeded")
        })
        .await;
    assert!(removed.contains("Removed null_resource.x"), "{removed}");
    assert!(removed.contains("sluice plan -p envs/a"), "{removed}");
    assert!(
        resources(&backend, "app").is_empty(),
        "{:?}",
        backend.state("app")
    );
    assert_eq!(
        h.locks().await,
        vec![("envs/a".to_string(), "default".to_string(), 1)],
        "the state run holds the project's lock"
    );

    // The next plan destroys nothing: `x` is no longer in the state.
    h.deliver(&h.comment_event(1, "alice", "sluice plan")).await;
    h.wait("the plan after state rm", || {
        h.plan_text(1).filter(|t| t.contains("✅ no changes"))
    })
    .await;

    // `import` runs the engine against the backend (a plan without changes does not stand in
    // the way); terraform refuses, and says why.
    let gets = backend.gets("app");
    h.deliver(&h.comment_event(1, "alice", "sluice import null_resource.x 4242"))
        .await;
    let failed = h
        .wait_comment(1, "the import result", |c| c.contains("`import` failed"))
        .await;
    assert!(failed.contains("Error:"), "{failed}");
    assert!(
        backend.gets("app") > gets,
        "the import read the remote state"
    );
    assert!(resources(&backend, "app").is_empty());

    let refused = audit_entries(&h, "state_command_refused");
    let reasons: Vec<String> = refused.iter().map(|e| e["details"].to_string()).collect();
    assert_eq!(refused.len(), 2, "{refused:#?}");
    assert!(reasons[0].contains("not applied"), "{reasons:?}");
    assert!(
        reasons[1].contains("requirement `approved` failed"),
        "{reasons:?}"
    );
    let ran = audit_entries(&h, "state_command");
    let results: Vec<&str> = ran
        .iter()
        .map(|e| e["result"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(results, ["success", "failure"], "{ran:#?}");
    assert_eq!(ran[0]["approvals"][0]["login"], "bob", "{ran:#?}");
    assert!(
        ran[0]["details"].to_string().contains("null_resource.x"),
        "{ran:#?}"
    );
    assert!(ran[1]["details"].to_string().contains("4242"), "{ran:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn state_commands_are_refused_under_another_prs_lock_and_with_bad_addresses() {
    let mut h = Harness::new(&[("envs/a/main.tf", &null_project("a", "1"))]).await;
    h.start();
    // PR 2 plans envs/a and holds its lock.
    let other = h.open_pr(
        2,
        "change-a",
        &[("envs/a/main.tf", &null_project("a", "2"))],
    );
    h.deliver(&h.pr_event("opened", 2)).await;
    h.wait_status(&other, "sluice/plan", "success").await;
    let head = h.open_pr(1, "docs", &[("README.md", "docs\n")]);
    h.deliver(&h.pr_event("opened", 1)).await;
    h.wait_status(&head, "sluice/plan", "success").await;
    h.fake.add_review(REPO, 1, "bob", "APPROVED");

    let cases = [
        (
            "sluice import -p envs/a null_resource.a 1",
            "`import` was not run: project `envs/a` is locked by #2",
        ),
        (
            "sluice state rm -p envs/a null_resource.a",
            "`state rm` was not run: project `envs/a` is locked by #2",
        ),
        (
            "sluice import -p envs/a null_resource 1",
            "`null_resource` is not a resource address: the resource type `null_resource` must be followed by `.NAME`",
        ),
        (
            "sluice import -p envs/a module.net 1",
            "`module.net` names a module; `import` needs a resource",
        ),
        (
            "sluice state rm -p envs/a null_resource.a 'not ok'",
            "address 2 of 2: `not ok` is not a resource address",
        ),
    ];
    for (i, (comment, says)) in cases.iter().enumerate() {
        h.deliver(&h.comment_event(1, "alice", comment)).await;
        let reply = h.wait_comment(1, comment, |c| c.contains(says)).await;
        assert!(
            reply.contains("**Not run:**") || reply.contains("**Error:**"),
            "{reply}"
        );
        let audited = audit_entries(&h, "state_command_refused");
        assert_eq!(audited.len(), i + 1, "{comment}: {audited:#?}");
        assert_eq!(audited[i]["pr"], 1, "{audited:#?}");
    }
    assert!(audit_entries(&h, "state_command").is_empty());
    assert_eq!(
        h.locks().await,
        vec![("envs/a".to_string(), "default".to_string(), 2)]
    );
}

/// On a started harness whose `envs/a` keeps local state: PR #1 (no change to resources) is
/// planned, unlocked, approved by bob; alice comments `sluice state rm null_resource.a`. Returns
/// the answer to it.
pub(crate) async fn approved_state_rm(h: &Harness) -> String {
    let head = h.open_pr(1, "docs", &[("envs/a/notes.tf", "# notes\n")]);
    h.deliver(&h.pr_event("opened", 1)).await;
    h.wait_status(&head, "sluice/plan", "success").await;
    h.deliver(&h.comment_event(1, "alice", "sluice unlock"))
        .await;
    h.wait_comment(1, "the unlock", |c| c.contains("discarded"))
        .await;
    h.fake.add_review(REPO, 1, "bob", "APPROVED");
    h.deliver(&h.comment_event(1, "alice", "sluice state rm null_resource.a"))
        .await;
    h.wait_comment(1, "the state rm answer", |c| c.contains("`state rm`"))
        .await
}

/// A project whose state is a local file in the job's directory: the command would change a copy
/// that is thrown away. It fails and says so; nothing claims success.
#[tokio::test(flavor = "multi_thread")]
async fn a_state_command_on_a_project_with_local_state_fails_saying_nothing_lasting_changed() {
    let mut h = Harness::new(&[("envs/a/main.tf", &null_project("a", "1"))]).await;
    h.start();
    let failed = approved_state_rm(&h).await;
    assert!(failed.contains("`state rm` failed"), "{failed}");
    assert!(
        failed.contains("keeps its state in a local file"),
        "{failed}"
    );
    let ran = audit_entries(&h, "state_command");
    assert_eq!(ran.len(), 1, "{ran:#?}");
    assert_eq!(ran[0]["result"], "failure", "{ran:#?}");
}

/// A command refused for its words — here a refused argument after `--` — is audited like every
/// other attempt, with why, besides the reply.
#[tokio::test(flavor = "multi_thread")]
async fn a_command_refused_for_its_arguments_is_audited() {
    let mut h = Harness::new(&[("envs/a/main.tf", &null_project("a", "1"))]).await;
    h.start();
    h.open_pr(1, "docs", &[("envs/a/notes.tf", "# notes\n")]);
    h.deliver(&h.comment_event(
        1,
        "alice",
        "sluice import null_resource.x abc -- -state=/tmp/x",
    ))
    .await;
    let reply = h
        .wait_comment(1, "the refusal", |c| c.contains("-state"))
        .await;
    let rejected = h
        .wait("the audit entry", || {
            Some(audit_entries(&h, "command_rejected")).filter(|e| !e.is_empty())
        })
        .await;
    assert!(
        rejected[0]["details"].to_string().contains("-state"),
        "{rejected:#?}\n{reply}"
    );
}
