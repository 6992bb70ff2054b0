//! Rego policy sets in the apply gate, through the real server with real terraform plans: a
//! conftest-style `deny` (v0) blocks the apply next to a v1 `warn` that only shows, a non-owner's
//! `approve_policies` is refused (and audited), an owner's lets the apply through; the `.rego`
//! files come from the base branch, never the PR's head; a syntax error on the base branch is
//! shown at file:line:col and blocks apply; a rule that runs too long is stopped and fails closed.

use sluice::core::audit::{AuditAction, AuditEntry, AuditResult};

use crate::server::{Harness, REPO};
use crate::support::null_project;

/// Atlantis' configuration: one project, one policy set owned by carol.
const ATLANTIS: &str = r#"version: 3
projects:
  - dir: envs/a
policies:
  owners:
    users: [carol]
  policy_sets:
    - name: guardrails
      path: policy
      source: local
"#;

/// v0 syntax: no new null resources.
const DENY_V0: &str = r#"package main

deny[msg] {
  r := input.resource_changes[_]
  r.type == "null_resource"
  r.change.actions[_] == "create"
  msg := sprintf("%s: new null resources need an owner's sign-off", [r.address])
}
"#;

/// v1 syntax: a warning on every change.
const WARN_V1: &str = r#"package main

warn contains msg if {
  some r in input.resource_changes
  msg := sprintf("%s changes (v1 rule)", [r.address])
}
"#;

async fn harness(files: &[(&str, &str)], env: &[(&str, &str)]) -> Harness {
    let a = null_project("a", "1");
    let mut all: Vec<(&str, &str)> = vec![("envs/a/main.tf", a.as_str())];
    if !files.iter().any(|(p, _)| *p == "atlantis.yaml") {
        all.push(("atlantis.yaml", ATLANTIS));
    }
    all.extend_from_slice(files);
    let mut h = Harness::new(&all).await;
    for (k, v) in env {
        h.set_env(k, v);
    }
    h.start();
    h
}

fn entries(h: &Harness) -> Vec<AuditEntry> {
    let out = h.cli(&["audit", "export"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("an audit entry"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_conftest_deny_blocks_apply_until_an_owner_overrides_it() {
    let h = harness(
        &[("policy/deny.rego", DENY_V0), ("policy/warn.rego", WARN_V1)],
        &[],
    )
    .await;
    let head = h.open_pr(1, "change", &[("envs/a/main.tf", &null_project("a", "2"))]);
    h.deliver(&h.pr_event("opened", 1)).await;

    // The plan comment's Policies section shows the v0 failure and the v1 warning.
    let plan = h.wait_comment(1, "the plan", |c| c.contains("Plan:")).await;
    assert!(plan.contains("guardrails"), "{plan}");
    assert!(
        plan.contains("null_resource.a: new null resources need an owner's sign-off"),
        "the deny message is shown:\n{plan}"
    );
    assert!(
        plan.contains("null_resource.a changes (v1 rule)"),
        "the v1 warning is shown:\n{plan}"
    );
    assert!(
        plan.contains("`deny` (`policy/deny.rego:3`)")
            && plan.contains("`warn` (`policy/warn.rego:3`)"),
        "each rule's file:line:\n{plan}"
    );
    let desc = h.wait_status(&head, "sluice/policy", "failure").await;
    assert_eq!(desc, "1 of 1 project fails a policy");

    // Approved, but the policy set blocks the apply.
    h.fake.add_review(REPO, 1, "bob", "APPROVED");
    h.deliver(&h.comment_event(1, "alice", "sluice apply"))
        .await;
    let refusal = h
        .wait_comment(1, "refusal", |c| c.contains("Apply refused"))
        .await;
    assert!(refusal.contains("policy `guardrails` failed"), "{refusal}");

    // bob is no owner: refused.
    h.deliver(&h.comment_event(1, "bob", "sluice approve_policies --policy-set guardrails"))
        .await;
    let no = h
        .wait_comment(1, "bob's refusal", |c| {
            c.contains("approve_policies") && c.contains("@bob")
        })
        .await;
    assert!(no.contains("❌") && !no.contains("✅"), "{no}");

    // carol is: the apply goes through.
    h.deliver(&h.comment_event(
        1,
        "carol",
        "sluice approve_policies --policy-set guardrails",
    ))
    .await;
    h.wait_comment(1, "carol's override", |c| {
        c.contains("overrode policy `guardrails`")
    })
    .await;
    h.deliver(&h.comment_event(1, "alice", "sluice apply"))
        .await;
    h.wait_status(&head, "sluice/apply", "success").await;

    let log = entries(&h);
    let planned = log
        .iter()
        .find(|e| e.record.action == Some(AuditAction::Plan))
        .expect("a plan entry");
    let d = &planned.record.policy[0];
    assert_eq!(
        (d.policy.as_str(), d.outcome.as_str()),
        ("guardrails", "fail")
    );
    assert_eq!(
        d.source_blob.clone().expect("the config's blob"),
        h.origin.git(&["rev-parse", "main:atlantis.yaml"])
    );
    let overrides: Vec<_> = log
        .iter()
        .filter(|e| e.record.action == Some(AuditAction::PolicyOverride))
        .map(|e| (e.record.actor.login.as_str(), e.record.result))
        .collect();
    assert_eq!(
        overrides,
        vec![
            ("bob", Some(AuditResult::Refused)),
            ("carol", Some(AuditResult::Success))
        ],
        "both attempts are recorded"
    );
    let applied = log
        .iter()
        .find(|e| e.record.action == Some(AuditAction::Apply))
        .expect("an apply entry");
    assert_eq!(applied.record.policy[0].outcome, "overridden");
    assert!(h.cli(&["audit", "verify"]).status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rego_file_changed_in_the_pr_is_not_what_runs() {
    let h = harness(&[("policy/deny.rego", DENY_V0)], &[]).await;
    let harmless = "package main\n\ndeny[msg] {\n  false\n  msg := \"never\"\n}\n";
    let head = h.open_pr(
        1,
        "sneaky",
        &[
            ("envs/a/main.tf", &null_project("a", "2")),
            ("policy/deny.rego", harmless),
        ],
    );
    h.deliver(&h.pr_event("opened", 1)).await;
    let plan = h.wait_comment(1, "the plan", |c| c.contains("Plan:")).await;
    assert!(
        plan.contains("new null resources need an owner's sign-off"),
        "the base branch's rule ran:\n{plan}"
    );
    let refusal = h.approved_apply_refused_by_policy(1, &head).await;
    assert!(refusal.contains("policy `guardrails` failed"), "{refusal}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rego_syntax_error_on_the_base_branch_is_shown_at_its_position_and_blocks_apply() {
    let broken =
        "package main\n\ndeny[msg] {\n  r := input.resource_changes[_\n  msg := \"x\"\n}\n";
    let h = harness(&[("policy/deny.rego", broken)], &[]).await;
    let head = h.open_pr(1, "change", &[("envs/a/main.tf", &null_project("a", "2"))]);
    h.deliver(&h.pr_event("opened", 1)).await;
    let plan = h.wait_comment(1, "the plan", |c| c.contains("Plan:")).await;
    assert!(
        plan.contains("policy/deny.rego:3:11: error: Rego: expecting }"),
        "the error is shown with its position:\n{plan}"
    );
    let refusal = h.approved_apply_refused_by_policy(1, &head).await;
    assert!(refusal.contains("fail closed"), "{refusal}");
    assert!(refusal.contains("policy/deny.rego:3:11"), "{refusal}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_runaway_rule_is_stopped_and_fails_closed() {
    // 10^10 iterations over two small ranges: no memory to speak of, far too long to finish.
    let runaway = r#"package main

deny[msg] {
  count(input.resource_changes) > 0
  r := numbers.range(1, 100000)
  a := r[_]
  b := r[_]
  a * b == -1
  msg := "never"
}
"#;
    let h = harness(
        &[("policy/slow.rego", runaway)],
        &[("SLUICE_LIMITS__REGO_EVAL_MS", "300")],
    )
    .await;
    let head = h.open_pr(1, "change", &[("envs/a/main.tf", &null_project("a", "2"))]);
    let started = std::time::Instant::now();
    h.deliver(&h.pr_event("opened", 1)).await;
    let plan = h.wait_comment(1, "the plan", |c| c.contains("Plan:")).await;
    assert!(
        plan.contains("evaluation took longer than 300 ms and was stopped"),
        "the stop is explained:\n{plan}"
    );
    h.wait_status(&head, "sluice/policy", "failure").await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "the rule did not hold the plan"
    );
    h.fake.add_review(REPO, 1, "bob", "APPROVED");
    h.deliver(&h.comment_event(1, "alice", "sluice apply"))
        .await;
    let refusal = h
        .wait_comment(1, "refusal", |c| c.contains("Apply refused"))
        .await;
    assert!(refusal.contains("policy `guardrails` failed"), "{refusal}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_workflows_policy_check_namespaces_are_queried() {
    // Only `--all-namespaces` in the workflow's policy_check step reaches `terraform.null`.
    let config = r#"version: 3
projects:
  - dir: envs/a
    workflow: checked
workflows:
  checked:
    policy_check:
      steps:
        - show
        - policy_check:
            extra_args: ["--all-namespaces"]
policies:
  owners:
    users: [carol]
  policy_sets:
    - name: guardrails
      path: policy
      source: local
"#;
    let scoped = DENY_V0.replace("package main", "package terraform.null");
    let h = harness(
        &[("policy/deny.rego", &scoped), ("atlantis.yaml", config)],
        &[],
    )
    .await;
    let head = h.open_pr(1, "change", &[("envs/a/main.tf", &null_project("a", "2"))]);
    h.deliver(&h.pr_event("opened", 1)).await;
    let plan = h.wait_comment(1, "the plan", |c| c.contains("Plan:")).await;
    assert!(
        plan.contains("new null resources need an owner's sign-off"),
        "the rule in terraform.null ran:\n{plan}"
    );
    h.wait_status(&head, "sluice/policy", "failure").await;
}

/// A state command has no plan for a Rego set to judge: the set does not hold it back (as
/// Atlantis runs no policy check for `import` / `state rm`), while the apply gate's approval
/// still does. The command runs — here it fails for the project's local state, which is its
/// own answer, not a policy refusal.
#[tokio::test(flavor = "multi_thread")]
async fn a_rego_set_does_not_block_a_state_command_forever() {
    let h = harness(&[("policy/deny.rego", DENY_V0)], &[]).await;
    let answer = crate::state_commands::approved_state_rm(&h).await;
    assert!(
        answer.contains("`state rm` failed") && answer.contains("local file"),
        "it ran, not refused by the Rego set: {answer}"
    );
}
