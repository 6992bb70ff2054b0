//! Policies end to end, through the real server: a PR blocked by a policy, refused an override by
//! someone who is not an owner, overridden by an owner, applied — with the whole story in the
//! audit log; a PR that edits the policy to let itself through is still judged by the base
//! branch's policy; team-based access fails closed for a team that does not exist.

use sluice::core::audit::{AuditAction, AuditEntry, AuditResult};

use crate::server::{Harness, REPO};
use crate::support::null_project;

const GUARD: &str = r#"version: 1
policies:
  - name: guard-null
    description: New null resources need a sign-off from the owners.
    rules:
      - name: no-new-null
        deny: [create]
        resource_types: [null_resource]
    on_failure: require_override
    owners: { users: [carol] }
"#;

async fn harness(extra: &[(&str, &str)]) -> Harness {
    let a = null_project("a", "1");
    let mut files: Vec<(&str, &str)> = vec![("envs/a/main.tf", a.as_str())];
    files.extend_from_slice(extra);
    let mut h = Harness::new(&files).await;
    h.start();
    h
}

fn entries(h: &Harness) -> Vec<AuditEntry> {
    let out = h.cli(&["audit", "export"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blocked_pr_is_overridden_by_an_owner_then_applied_and_audited() {
    let h = harness(&[("policies/guard.yaml", GUARD)]).await;
    let head = h.open_pr(1, "change", &[("envs/a/main.tf", &null_project("a", "2"))]);
    h.deliver(&h.pr_event("opened", 1)).await;

    // The plan shows the policy verdict and how to override it.
    let plan = h.wait_comment(1, "the plan", |c| c.contains("Plan:")).await;
    assert!(plan.contains("guard-null"), "{plan}");
    assert!(
        plan.contains("| ❌ failed: `guard-null` |"),
        "the summary's policy column names the failing policy:\n{plan}"
    );
    assert!(
        plan.contains("approve_policies"),
        "the override command is shown:\n{plan}"
    );
    let desc = h.wait_status(&head, "sluice/policy", "failure").await;
    assert_eq!(desc, "1 of 1 project fails a policy");

    // Approved, but the policy blocks the apply.
    h.fake.add_review(REPO, 1, "bob", "APPROVED");
    h.deliver(&h.comment_event(1, "alice", "sluice apply"))
        .await;
    let refusal = h
        .wait_comment(1, "refusal", |c| c.contains("Apply refused"))
        .await;
    assert!(refusal.contains("policy `guard-null` failed"), "{refusal}");
    assert!(
        refusal.contains("null_resource.a"),
        "the resource is named:\n{refusal}"
    );

    // Only an owner may override.
    h.deliver(&h.comment_event(1, "bob", "sluice approve_policies"))
        .await;
    let no = h
        .wait_comment(1, "bob's refusal", |c| {
            c.contains("approve_policies") && c.contains("@bob")
        })
        .await;
    assert!(no.contains("❌") && !no.contains("✅"), "{no}");
    h.deliver(&h.comment_event(1, "carol", "sluice approve_policies"))
        .await;
    let yes = h
        .wait_comment(1, "carol's override", |c| {
            c.contains("overrode policy `guard-null`")
        })
        .await;
    assert!(yes.contains("@carol"), "{yes}");
    // The override turns `sluice/policy` green: a required policy check no longer blocks.
    let desc = h.wait_status(&head, "sluice/policy", "success").await;
    assert!(desc.contains("pass"), "{desc}");

    h.deliver(&h.comment_event(1, "alice", "sluice apply"))
        .await;
    h.wait_status(&head, "sluice/apply", "success").await;

    // The whole story is in the audit log, with the policy file's blob SHA.
    let log = entries(&h);
    let plan = log
        .iter()
        .find(|e| e.record.action == Some(AuditAction::Plan))
        .unwrap();
    assert_eq!(plan.record.policy[0].policy, "guard-null");
    assert_eq!(plan.record.policy[0].outcome, "fail");
    let blob = plan.record.policy[0]
        .source_blob
        .clone()
        .expect("blob sha recorded");
    assert_eq!(
        blob,
        h.origin.git(&["rev-parse", "main:policies/guard.yaml"])
    );
    let refused = log
        .iter()
        .find(|e| e.record.action == Some(AuditAction::ApplyRefused))
        .unwrap();
    assert_eq!(refused.record.policy[0].outcome, "fail");
    // bob's attempt is recorded as refused; carol's override as granted.
    let overrides: Vec<_> = log
        .iter()
        .filter(|e| e.record.action == Some(AuditAction::PolicyOverride))
        .map(|e| (e.record.actor.login.as_str(), e.record.result))
        .collect();
    assert_eq!(
        overrides,
        [
            ("bob", Some(AuditResult::Refused)),
            ("carol", Some(AuditResult::Success))
        ]
    );
    let apply = log
        .iter()
        .find(|e| e.record.action == Some(AuditAction::Apply))
        .unwrap();
    assert_eq!(apply.record.policy[0].outcome, "overridden");
    assert!(
        apply.record.policy[0]
            .reasons
            .iter()
            .any(|r| r.contains("carol"))
    );
    let verify = h.cli(&["audit", "verify"]);
    assert!(verify.status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pr_that_weakens_the_policy_is_judged_by_the_base_branch_policy() {
    let h = harness(&[("policies/guard.yaml", GUARD)]).await;
    let weakened = GUARD.replace("on_failure: require_override", "on_failure: warn");
    let head = h.open_pr(
        1,
        "sneaky",
        &[
            ("envs/a/main.tf", &null_project("a", "2")),
            ("policies/guard.yaml", &weakened),
        ],
    );
    h.deliver(&h.pr_event("opened", 1)).await;
    let refusal = h.approved_apply_refused_by_policy(1, &head).await;
    assert!(refusal.contains("policy `guard-null` failed"), "{refusal}");
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_listed_team_may_apply_and_a_missing_team_fails_closed() {
    let access = r#"version: 1
policies:
  - name: only-infra-applies
    access:
      apply: { teams: [acme/infra] }
"#;
    let h = harness(&[("policies/access.yaml", access)]).await;
    h.fake.add_team_member("acme", "infra", "dave");
    let head = h.open_pr(1, "change", &[("envs/a/main.tf", &null_project("a", "2"))]);
    h.deliver(&h.pr_event("opened", 1)).await;
    h.wait_status(&head, "sluice/plan", "success").await;
    h.fake.add_review(REPO, 1, "bob", "APPROVED");

    h.deliver(&h.comment_event(1, "alice", "sluice apply"))
        .await;
    let refusal = h
        .wait_comment(1, "refusal", |c| c.contains("Apply refused"))
        .await;
    assert!(refusal.contains("only-infra-applies"), "{refusal}");
    assert!(refusal.contains("alice"), "{refusal}");

    h.deliver(&h.comment_event(1, "dave", "sluice apply")).await;
    h.wait_status(&head, "sluice/apply", "success").await;

    // The same policy naming a team GitHub does not know: nobody may apply.
    let missing = access.replace("acme/infra", "acme/ghosts");
    let h = harness(&[("policies/access.yaml", &missing)]).await;
    let head = h.open_pr(1, "change", &[("envs/a/main.tf", &null_project("a", "2"))]);
    h.deliver(&h.pr_event("opened", 1)).await;
    h.wait_status(&head, "sluice/plan", "success").await;
    h.fake.add_review(REPO, 1, "bob", "APPROVED");
    h.deliver(&h.comment_event(1, "dave", "sluice apply")).await;
    let refusal = h
        .wait_comment(1, "refusal", |c| c.contains("Apply refused"))
        .await;
    assert!(
        refusal.contains("acme/ghosts"),
        "the missing team is named:\n{refusal}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_policy_files_on_the_base_branch_block_apply() {
    let broken = "version: 1\npolicies:\n  - name: x\n    rules:\n      - deny: [destroy]\n";
    let h = harness(&[("policies/broken.yaml", broken)]).await;
    let head = h.open_pr(1, "change", &[("envs/a/main.tf", &null_project("a", "2"))]);
    h.deliver(&h.pr_event("opened", 1)).await;
    let plan = h.wait_comment(1, "the plan", |c| c.contains("Plan:")).await;
    assert!(
        plan.contains("policies/broken.yaml:5:"),
        "the error is shown with its position:\n{plan}"
    );
    assert!(
        plan.contains("| ❌ failed |"),
        "the summary's policy column says the unreadable policies fail:\n{plan}"
    );
    let refusal = h.approved_apply_refused_by_policy(1, &head).await;
    assert!(refusal.contains("fail closed"), "{refusal}");
}

/// As a GitHub App: the `sluice/plan` check run fails when a policy blocks the apply (as the
/// `sluice/policy` status does), names the policy, and links the run's full log.
#[tokio::test(flavor = "multi_thread")]
async fn as_an_app_a_blocking_policy_fails_the_plan_check_run_which_links_the_log() {
    let a = null_project("a", "1");
    let mut h = Harness::new(&[
        ("envs/a/main.tf", a.as_str()),
        ("policies/guard.yaml", GUARD),
    ])
    .await;
    h.as_app();
    h.set_env("SLUICE_PUBLIC_URL", "https://sluice.example.com");
    h.start();
    let head = h.open_pr(1, "change", &[("envs/a/main.tf", &null_project("a", "2"))]);
    h.deliver(&h.pr_event("opened", 1)).await;
    let check = h
        .wait("the sluice/plan check run", || {
            h.fake
                .check_runs()
                .into_iter()
                .find(|c| c.name == "sluice/plan" && c.head_sha == head && c.conclusion.is_some())
        })
        .await;
    assert_eq!(check.conclusion.as_deref(), Some("failure"), "{check:?}");
    assert!(
        check.output.to_string().contains("guard-null"),
        "{:?}",
        check.output
    );
    let posted = h.fake.requests_to("POST", "/repos/acme/infra/check-runs");
    assert!(
        posted.iter().any(|r| r
            .body
            .as_ref()
            .and_then(|b| b["details_url"].as_str())
            .is_some_and(|u| u.starts_with("https://sluice.example.com/"))),
        "the check runs link the full log"
    );
}
