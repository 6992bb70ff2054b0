//! Delivery after merge end to end (`apply_mode: on_merge`): the real binary, real terraform
//! with the null provider, real git merges in the origin repository, and GitHub's own webhook
//! shapes for `pull_request` closed+merged and `pull_request_review` (fixtures from
//! `@octokit/webhooks-examples`).

use crate::server::{Harness, REPO};
use crate::support::null_project;
use crate::webhooks::{Webhook, github_now};

/// `main` holds `sluice.yaml` (`config`) and the projects `files`; the server is started.
pub(crate) async fn harness(config: &str, files: &[(&str, String)]) -> Harness {
    let mut all: Vec<(&str, &str)> = vec![("sluice.yaml", config)];
    all.extend(files.iter().map(|(p, c)| (*p, c.as_str())));
    let mut h = Harness::new(&all).await;
    h.start();
    h
}

/// Merges PR `n`'s branch into `main` with a merge commit (as GitHub's merge button does),
/// marks it merged on the fake, and returns the merge commit's SHA.
pub(crate) fn merge(h: &Harness, n: u64) -> String {
    let pull = h.fake_pull(n);
    h.origin.checkout("main");
    h.origin.git(&[
        "merge",
        "--no-ff",
        "-m",
        &format!("Merge pull request #{n}"),
        &pull.head_ref,
    ]);
    let sha = h.origin.head();
    h.fake.update_pull(REPO, n, |p| {
        p.state = "closed".into();
        p.merged = true;
    });
    sha
}

/// GitHub's `pull_request` `closed` delivery of a merged PR, with its merge commit.
pub(crate) fn merged_event(h: &Harness, n: u64, merge_sha: &str) -> Webhook {
    let pull = h.fake_pull(n);
    Webhook::load("pull_request.closed.merged.json")
        .repo(REPO, &h.origin.url())
        .default_branch("main")
        .pr_number(n)
        .head_sha(&pull.head_sha)
        .set("/pull_request/head/ref", pull.head_ref.as_str())
        .base(&pull.base_ref, &pull.base_sha)
        .user(&pull.author)
        .set("/pull_request/user/id", pull.author_id)
        .set("/pull_request/updated_at", github_now())
        .set("/pull_request/merge_commit_sha", merge_sha)
        .set("/pull_request/merged", true)
        .draft(false)
        .installation(None)
}

/// `user` approves PR `n` (on the fake, and GitHub's `pull_request_review` delivery of it).
pub(crate) fn approve(h: &Harness, n: u64, user: &str) -> Webhook {
    let id = h.fake.add_review(REPO, n, user, "APPROVED");
    Webhook::load("pull_request_review.submitted.json")
        .repo(REPO, &h.origin.url())
        .default_branch("main")
        .pr_number(n)
        .review_state("approved")
        .set("/review/id", id)
        .installation(None)
}

/// Audit entries as JSON lines (`sluice audit export --format jsonl`).
pub(crate) fn audit(h: &Harness) -> Vec<serde_json::Value> {
    let out = h.cli(&["audit", "export", "--format", "jsonl"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

const ON_MERGE: &str = "version: 1\napply_mode: on_merge\n";

/// PR #1 changes `envs/a` (`null_project("a", "2")`), planned; its head.
async fn plan_change_a(h: &Harness) -> String {
    h.open_and_plan(
        1,
        "change-a",
        &[("envs/a/main.tf", &null_project("a", "2"))],
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_on_merge_project_is_planned_gated_applied_after_merge_and_audited_with_both_shas() {
    let h = harness(ON_MERGE, &[("envs/a/main.tf", null_project("a", "1"))]).await;
    let head = plan_change_a(&h).await;
    let gate = h.wait_status(&head, "sluice/apply-gate", "failure").await;
    assert!(gate.contains("approved"), "{gate}");
    assert!(h.locks().await.is_empty(), "an on_merge plan takes no lock");
    let planned = h
        .wait_comment(1, "the plan", |c| c.contains("null_resource.a"))
        .await;
    assert!(planned.contains("applied after merge"), "{planned}");
    assert!(
        !planned.contains("sluice apply") && !planned.contains("unlock"),
        "neither apply nor unlock is offered: {planned}"
    );

    // Nothing is applied before the merge, not even by comment.
    h.deliver(&h.comment_event(1, "bob", "sluice apply")).await;
    let refusal = h
        .wait_comment(1, "the refusal", |c| c.contains("Apply refused"))
        .await;
    assert!(refusal.contains("applied after merge"), "{refusal}");
    assert!(
        !refusal.contains("lock") && !refusal.contains("approved"),
        "the one reason, nothing about a lock it never takes: {refusal}"
    );

    h.deliver(&approve(&h, 1, "bob")).await;
    assert_eq!(
        h.wait_status(&head, "sluice/apply-gate", "success").await,
        "ready: 1 project apply after merge"
    );

    let merge_sha = merge(&h, 1);
    h.deliver(&merged_event(&h, 1, &merge_sha)).await;
    h.wait_status(&merge_sha, "sluice/apply", "success").await;
    let applied = h
        .wait_comment(1, "the apply comment", |c| c.contains("Apply complete"))
        .await;
    assert!(applied.contains("null_resource.a"), "{applied}");
    h.wait_idle(&[1]).await;
    assert!(
        h.locks().await.is_empty(),
        "the delivery released its locks"
    );

    let entries = audit(&h);
    let apply = entries
        .iter()
        .find(|e| e["action"] == "apply" && e["result"] == "success")
        .unwrap_or_else(|| panic!("an apply entry: {entries:#?}"));
    assert_eq!(apply["head_sha"], merge_sha.as_str(), "{apply:#}");
    let details = apply["details"].to_string();
    assert!(
        details.contains(&head),
        "the reviewed head is recorded: {apply:#}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_merge_commit_whose_plan_differs_from_the_reviewed_one_is_refused_loudly_in_strict_mode()
{
    let h = harness(ON_MERGE, &[("envs/a/main.tf", null_project("a", "1"))]).await;
    let head = plan_change_a(&h).await;
    h.deliver(&approve(&h, 1, "bob")).await;
    h.wait_status(&head, "sluice/apply-gate", "success").await;

    // Meanwhile `main` gains a resource in the same project: the merge commit plans more.
    h.origin.checkout("main");
    h.origin.write(
        "envs/a/extra.tf",
        "resource \"null_resource\" \"extra\" {}\n",
    );
    h.origin.commit("an unreviewed resource");
    let merge_sha = merge(&h, 1);
    h.deliver(&merged_event(&h, 1, &merge_sha)).await;

    assert_eq!(
        h.wait_status(&merge_sha, "sluice/apply", "failure").await,
        "not applied after merge: see the pull request"
    );
    let told = h
        .wait_comment(1, "the refusal", |c| c.contains("Not applied after merge"))
        .await;
    assert!(told.contains("create null_resource.extra"), "{told}");
    assert!(told.contains("out of sync"), "{told}");
    h.wait_idle(&[1]).await;
    assert!(
        !audit(&h)
            .iter()
            .any(|e| e["action"] == "apply" && e["result"] == "success"),
        "nothing was applied"
    );
}

/// A project whose apply fails (its provisioner exits 1); its plan succeeds.
fn failing_project(resource: &str) -> String {
    format!(
        "{}\nresource \"null_resource\" \"{resource}_fails\" {{\n  provisioner \"local-exec\" {{\n    command = \"exit 1\"\n  }}\n}}\n",
        null_project(resource, "2")
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn network_applies_before_the_app_that_depends_on_it_and_a_failure_blocks_the_app() {
    let config = "version: 1\napply_mode: on_merge\nprojects:\n  - name: app\n    dir: app\n    depends_on: [network]\n  - name: network\n    dir: network\n";
    let h = harness(
        config,
        &[
            ("network/main.tf", null_project("net", "1")),
            ("app/main.tf", null_project("app", "1")),
        ],
    )
    .await;
    let head = h
        .open_and_plan(
            1,
            "both",
            &[
                ("network/main.tf", &failing_project("net")),
                ("app/main.tf", &null_project("app", "2")),
            ],
        )
        .await;
    h.deliver(&approve(&h, 1, "bob")).await;
    assert_eq!(
        h.wait_status(&head, "sluice/apply-gate", "success").await,
        "ready: 2 projects apply after merge"
    );
    let merge_sha = merge(&h, 1);
    h.deliver(&merged_event(&h, 1, &merge_sha)).await;
    let told = h
        .wait_comment(1, "the failure", |c| c.contains("Not applied after merge"))
        .await;
    assert!(
        told.contains("- `network`: the apply failed"),
        "network failed: {told}"
    );
    assert!(
        told.contains("- `app`: blocked by `network`"),
        "app was not attempted: {told}"
    );
    assert!(
        !told.contains("rollback"),
        "nothing of it was applied: rollback would refuse it: {told}"
    );
    h.wait_status(&merge_sha, "sluice/apply", "failure").await;
    h.wait_idle(&[1]).await;
    let applies: Vec<(String, String)> = audit(&h)
        .iter()
        .filter(|e| e["action"] == "apply")
        .map(|e| {
            (
                e["project"].as_str().unwrap_or_default().to_string(),
                e["result"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        applies,
        vec![
            ("network".to_string(), "failure".to_string()),
            ("app".to_string(), "refused".to_string()),
        ],
        "network first; app recorded as not attempted"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_prs_merged_seconds_apart_apply_in_merge_order_each_with_its_merge_commit() {
    let h = harness(ON_MERGE, &[("envs/a/main.tf", null_project("a", "1"))]).await;
    let one = h.open_pr(1, "one", &[("envs/a/main.tf", &null_project("a", "2"))]);
    let two = h.open_pr(
        2,
        "two",
        &[("envs/a/b.tf", "resource \"null_resource\" \"b\" {}\n")],
    );
    h.deliver(&h.pr_event("opened", 1)).await;
    h.deliver(&h.pr_event("opened", 2)).await;
    h.wait_status(&one, "sluice/plan", "success").await;
    h.wait_status(&two, "sluice/plan", "success").await;
    h.deliver(&approve(&h, 1, "bob")).await;
    h.deliver(&approve(&h, 2, "bob")).await;
    h.wait_status(&one, "sluice/apply-gate", "success").await;
    h.wait_status(&two, "sluice/apply-gate", "success").await;

    let m1 = merge(&h, 1);
    let m2 = merge(&h, 2);
    h.deliver(&merged_event(&h, 1, &m1)).await;
    h.deliver(&merged_event(&h, 2, &m2)).await;
    h.wait_status(&m1, "sluice/apply", "success").await;
    h.wait_status(&m2, "sluice/apply", "success").await;
    h.wait_idle(&[1, 2]).await;
    let applied: Vec<(u64, String)> = audit(&h)
        .iter()
        .filter(|e| e["action"] == "apply" && e["result"] == "success")
        .map(|e| {
            (
                e["pr"].as_u64().unwrap_or_default(),
                e["head_sha"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        applied,
        vec![(1, m1), (2, m2)],
        "in merge order, one at a time"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_merge_without_a_finished_reviewed_plan_is_not_applied() {
    let h = harness(ON_MERGE, &[("envs/a/main.tf", null_project("a", "1"))]).await;
    h.open_pr(
        1,
        "change-a",
        &[("envs/a/main.tf", &null_project("a", "2"))],
    );
    // Merged before any plan of it finished (here: before it was planned at all).
    let merge_sha = merge(&h, 1);
    h.deliver(&merged_event(&h, 1, &merge_sha)).await;
    let told = h
        .wait_comment(1, "the refusal", |c| c.contains("Not applied after merge"))
        .await;
    assert!(told.contains("without a reviewed plan"), "{told}");
    h.wait_status(&merge_sha, "sluice/apply", "failure").await;
    h.wait_idle(&[1]).await;
    assert!(h.locks().await.is_empty());
}

const AUTOMERGE: &str = "version: 1\nautomerge: { enabled: true, method: squash }\nprojects:\n  - name: a\n    dir: a\n  - name: b\n    dir: b\n";

#[tokio::test(flavor = "multi_thread")]
async fn automerge_merges_a_fully_applied_pr_with_the_configured_method_at_its_head() {
    let h = harness(
        AUTOMERGE,
        &[
            ("a/main.tf", null_project("a", "1")),
            ("b/main.tf", null_project("b", "1")),
        ],
    )
    .await;
    let head = h
        .open_and_plan(
            1,
            "both",
            &[
                ("a/main.tf", &null_project("a", "2")),
                ("b/main.tf", &null_project("b", "2")),
            ],
        )
        .await;
    h.fake.add_review(REPO, 1, "bob", "APPROVED");

    // One project applied: the pull request is not complete, it is not merged.
    h.deliver(&h.comment_event(1, "alice", "sluice apply -p a"))
        .await;
    h.wait_comment(1, "the first apply", |c| c.contains("Apply complete"))
        .await;
    h.wait_idle(&[1]).await;
    assert!(h.fake.merges().is_empty(), "b is not applied yet");

    h.deliver(&h.comment_event(1, "alice", "sluice apply"))
        .await;
    let told = h
        .wait_comment(1, "the merge", |c| c.contains("Merged by automerge"))
        .await;
    assert!(told.contains("`squash`"), "{told}");
    let merges = h.fake.merges();
    assert_eq!(merges.len(), 1, "{merges:?}");
    assert_eq!(merges[0].method, "squash");
    assert_eq!(
        merges[0].sha.as_deref(),
        Some(head.as_str()),
        "merged only at the applied head"
    );
    h.wait_idle(&[1]).await;
    let entry = audit(&h)
        .into_iter()
        .find(|e| e["action"] == "automerge")
        .expect("the merge is audited");
    assert_eq!(entry["result"], "success", "{entry:#}");
    assert_eq!(entry["head_sha"], head.as_str(), "{entry:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn automerge_refused_by_branch_protection_is_reported_and_nothing_is_lost() {
    let h = harness(AUTOMERGE, &[("a/main.tf", null_project("a", "1"))]).await;
    let head = h
        .open_and_plan(1, "a", &[("a/main.tf", &null_project("a", "2"))])
        .await;
    h.fake.add_review(REPO, 1, "bob", "APPROVED");
    let rule = "At least 2 approving reviews are required by reviewers with write access.";
    h.fake.protect_pull(REPO, 1, rule);
    h.deliver(&h.comment_event(1, "alice", "sluice apply"))
        .await;
    let told = h
        .wait_comment(1, "the refusal", |c| c.contains("Automerge refused"))
        .await;
    assert!(told.contains(rule), "GitHub's reason is shown: {told}");
    assert!(told.contains("merge it by hand"), "{told}");
    assert_eq!(
        h.wait_status(&head, "sluice/apply", "success").await,
        "1/1 project applied",
        "the apply stands"
    );
    h.wait_idle(&[1]).await;
    let pull = h.fake_pull(1);
    assert!(!pull.merged && pull.state == "open", "the PR stays open");
    let entry = audit(&h)
        .into_iter()
        .find(|e| e["action"] == "automerge")
        .expect("the refusal is audited");
    assert_eq!(entry["result"], "refused", "{entry:#}");
    assert!(entry["details"].to_string().contains(rule), "{entry:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn automerge_never_merges_a_pr_without_changes() {
    let h = harness(AUTOMERGE, &[("a/main.tf", null_project("a", "1"))]).await;
    h.open_pr(1, "docs", &[("README.md", "# docs\n")]);
    h.deliver(&h.pr_event("opened", 1)).await;
    h.fake.add_review(REPO, 1, "bob", "APPROVED");
    h.deliver(&h.comment_event(1, "alice", "sluice apply"))
        .await;
    h.wait_comment(1, "nothing to apply", |c| c.contains("Nothing to apply"))
        .await;
    h.wait_idle(&[1]).await;
    assert!(h.fake.merges().is_empty());
}

/// Atlantis's `execution_order_group` orders applies with `depends_on`: `network` (group 1)
/// first, `app` (group 1, after `network`), then `other` (group 2), though the file lists them
/// the other way round.
const ORDERED: &str = "version: 3\nprojects:\n  - name: other\n    dir: other\n    execution_order_group: 2\n  - name: app\n    dir: app\n    execution_order_group: 1\n    depends_on: [network]\n  - name: network\n    dir: network\n    execution_order_group: 1\n";

#[tokio::test(flavor = "multi_thread")]
async fn an_apply_comment_follows_execution_order_groups_and_a_failure_blocks_only_its_dependents()
{
    let mut h = Harness::new(&[
        ("atlantis.yaml", ORDERED),
        ("network/main.tf", &null_project("net", "1")),
        ("app/main.tf", &null_project("app", "1")),
        ("other/main.tf", &null_project("other", "1")),
    ])
    .await;
    h.start();
    let head = h
        .open_and_plan(
            1,
            "all",
            &[
                ("network/main.tf", &failing_project("net")),
                ("app/main.tf", &null_project("app", "2")),
                ("other/main.tf", &null_project("other", "2")),
            ],
        )
        .await;
    h.fake.add_review(REPO, 1, "bob", "APPROVED");
    h.deliver(&h.comment_event(1, "alice", "sluice apply"))
        .await;
    let told = h
        .wait_comment(1, "the apply comment", |c| {
            c.contains("sluice apply") && c.contains("blocked by")
        })
        .await;
    assert!(told.contains("blocked by `network`"), "{told}");
    h.wait_status(&head, "sluice/apply", "failure").await;
    h.wait_idle(&[1]).await;
    let applies: Vec<(String, String)> = audit(&h)
        .iter()
        .filter(|e| e["action"] == "apply")
        .map(|e| {
            (
                e["project"].as_str().unwrap_or_default().to_string(),
                e["result"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        applies,
        vec![
            ("network".to_string(), "failure".to_string()),
            ("app".to_string(), "refused".to_string()),
            ("other".to_string(), "success".to_string()),
        ],
        "in group order; app blocked by network; other, independent, still applied"
    );
}

/// The base branch of the refusal tests: `main` then gains a resource in the project, so the
/// merge commit plans one more change than was reviewed.
fn gain_extra(h: &Harness) {
    h.origin.checkout("main");
    h.origin.write(
        "envs/a/extra.tf",
        "resource \"null_resource\" \"extra\" {}\n",
    );
    h.origin.commit("an unreviewed resource");
}

/// Plans, approves and merges PR 1 (changing `envs/a`) after `main` gained a resource; returns
/// the merge commit.
async fn merge_with_extra(h: &Harness) -> String {
    let head = plan_change_a(h).await;
    h.deliver(&approve(h, 1, "bob")).await;
    h.wait_status(&head, "sluice/apply-gate", "success").await;
    gain_extra(h);
    let merge_sha = merge(h, 1);
    h.deliver(&merged_event(h, 1, &merge_sha)).await;
    merge_sha
}

#[tokio::test(flavor = "multi_thread")]
async fn replan_mode_applies_a_differing_merge_commit_when_the_policies_still_pass() {
    let config = "version: 1\napply_mode: on_merge\nmerge_plan_check: replan\npolicies:\n  - name: no-prod-db\n    rules:\n      - deny: [create]\n        resource_types: [aws_db_instance]\n";
    let h = harness(config, &[("envs/a/main.tf", null_project("a", "1"))]).await;
    let merge_sha = merge_with_extra(&h).await;
    h.wait_status(&merge_sha, "sluice/apply", "success").await;
    let applied = h
        .wait_comment(1, "the apply", |c| c.contains("Apply complete"))
        .await;
    assert!(applied.contains("null_resource.extra"), "{applied}");
    // Applied, but not silently: the comment says what nobody reviewed.
    assert!(
        applied.contains("Not the reviewed plan")
            && applied.contains("only at merge: `create null_resource.extra`"),
        "{applied}"
    );
    h.wait_idle(&[1]).await;
    let entries = audit(&h);
    let apply = entries
        .iter()
        .find(|e| e["action"] == "apply" && e["result"] == "success")
        .unwrap_or_else(|| panic!("applied: {entries:#?}"));
    assert_eq!(apply["head_sha"], merge_sha.as_str());
    let details = apply["details"].to_string();
    assert!(
        details.contains("merge_only") && details.contains("create null_resource.extra"),
        "the audit entry records the difference: {apply:#}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_apply_after_merge_of_the_reviewed_plan_records_no_difference() {
    let h = harness(ON_MERGE, &[("envs/a/main.tf", null_project("a", "1"))]).await;
    let head = plan_change_a(&h).await;
    h.deliver(&approve(&h, 1, "bob")).await;
    h.wait_status(&head, "sluice/apply-gate", "success").await;
    let merge_sha = merge(&h, 1);
    h.deliver(&merged_event(&h, 1, &merge_sha)).await;
    let closed = h
        .wait_comment(1, "the close notice", |c| c.contains("Pull request merged"))
        .await;
    assert!(
        !closed.contains("discarded 1 plan")
            && closed.contains("1 reviewed plan is applied after merge"),
        "the reviewed plan is not called discarded: {closed}"
    );
    h.wait_status(&merge_sha, "sluice/apply", "success").await;
    let applied = h
        .wait_comment(1, "the apply", |c| c.contains("Apply complete"))
        .await;
    assert!(!applied.contains("Not the reviewed plan"), "{applied}");
    h.wait_idle(&[1]).await;
    let entries = audit(&h);
    let apply = entries
        .iter()
        .find(|e| e["action"] == "apply" && e["result"] == "success")
        .unwrap_or_else(|| panic!("applied: {entries:#?}"));
    assert!(
        !apply["details"].to_string().contains("merge_only"),
        "{apply:#}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn replan_mode_re_evaluates_the_policies_and_refuses_what_they_refuse() {
    let config = "version: 1\napply_mode: on_merge\nmerge_plan_check: replan\npolicies:\n  - name: no-extra\n    rules:\n      - deny: [create]\n        addresses: [null_resource.extra]\n";
    let h = harness(config, &[("envs/a/main.tf", null_project("a", "1"))]).await;
    let merge_sha = merge_with_extra(&h).await;
    assert_eq!(
        h.wait_status(&merge_sha, "sluice/apply", "failure").await,
        "not applied after merge: see the pull request"
    );
    let told = h
        .wait_comment(1, "the refusal", |c| c.contains("Not applied after merge"))
        .await;
    assert!(told.contains("create null_resource.extra"), "{told}");
    assert!(told.contains("policy `no-extra`"), "{told}");
    h.wait_idle(&[1]).await;
    assert!(
        !audit(&h)
            .iter()
            .any(|e| e["action"] == "apply" && e["result"] == "success"),
        "nothing was applied"
    );
}

/// A harness whose terraform sleeps `secs` before `plan` and `apply` (the `plain` runner
/// profile, as the durability tests), so a merge or a kill lands while a job runs.
async fn slow(config: &str, secs: u32) -> (Harness, tempfile::TempDir) {
    let a = null_project("a", "1");
    let mut h = Harness::new(&[("sluice.yaml", config), ("envs/a/main.tf", &a)]).await;
    let bin = tempfile::tempdir().expect("temp dir");
    let wrapper = crate::durability::slow_terraform(bin.path(), secs);
    h.set_env("SLUICE_TERRAFORM_BIN", &wrapper.display().to_string());
    h.set_env("SLUICE_RUNNER__PROFILE", "plain");
    h.start();
    (h, bin)
}

fn job_started(h: &Harness, kind: &str) -> bool {
    h.server()
        .logs()
        .lines()
        .any(|l| l.contains("job started") && l.contains(kind))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_merge_while_the_pr_is_still_being_planned_is_not_applied() {
    let (h, _bin) = slow(ON_MERGE, 4).await;
    h.open_pr(
        1,
        "change-a",
        &[("envs/a/main.tf", &null_project("a", "2"))],
    );
    h.deliver(&h.pr_event("opened", 1)).await;
    h.wait("the PR's plan to start", || {
        job_started(&h, "plan").then_some(())
    })
    .await;
    let merge_sha = merge(&h, 1);
    h.deliver(&merged_event(&h, 1, &merge_sha)).await;
    let told = h
        .wait_comment(1, "the refusal", |c| c.contains("Not applied after merge"))
        .await;
    assert!(told.contains("without a reviewed plan"), "{told}");
    h.wait_status(&merge_sha, "sluice/apply", "failure").await;
    h.wait_idle(&[1]).await;
    assert!(
        !audit(&h)
            .iter()
            .any(|e| e["action"] == "apply" && e["result"] == "success"),
        "nothing was applied"
    );
    assert!(h.locks().await.is_empty(), "no lock is left behind");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_killed_between_merge_and_apply_reports_the_apply_interrupted_never_runs_it_twice()
 {
    let (mut h, bin) = slow(ON_MERGE, 4).await;
    let head = plan_change_a(&h).await;
    h.deliver(&approve(&h, 1, "bob")).await;
    h.wait_status(&head, "sluice/apply-gate", "success").await;
    let merge_sha = merge(&h, 1);
    h.deliver(&merged_event(&h, 1, &merge_sha)).await;
    h.wait("the merge commit's apply to start", || {
        job_started(&h, "apply").then_some(())
    })
    .await;
    // The slow engine keeps the apply running for seconds: the kill lands mid-apply.
    crate::durability::engine_running(&h, &bin, "apply").await;
    h.server.as_mut().expect("server").kill();

    h.start();
    let told = h
        .wait_comment(1, "the interrupted delivery", |c| {
            c.contains("Not applied after merge")
        })
        .await;
    assert!(told.contains("interrupted"), "{told}");
    h.wait_status(&merge_sha, "sluice/apply", "failure").await;
    h.wait_idle(&[1]).await;
    assert!(
        !job_started(&h, "apply"),
        "the apply was not started again after the restart"
    );
    let entries = audit(&h);
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "apply" && e["result"] == "interrupted"),
        "{entries:#?}"
    );
    assert!(
        !entries
            .iter()
            .any(|e| e["action"] == "apply" && e["result"] == "success"),
        "never applied twice (nor once as a success)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_delivery_preparation_is_loud_on_the_pr_and_the_merge_commit() {
    let h = harness(ON_MERGE, &[("envs/a/main.tf", null_project("a", "1"))]).await;
    let _ = plan_change_a(&h).await;
    let merge_sha = merge(&h, 1);
    // The repository cannot be fetched when the merge arrives.
    let unreachable = merged_event(&h, 1, &merge_sha).repo(REPO, "file:///nonexistent/origin.git");
    h.deliver(&unreachable).await;
    let told = h
        .wait_comment(1, "the failure", |c| c.contains("did not apply this merge"))
        .await;
    assert!(told.contains("out of sync"), "{told}");
    assert_eq!(
        h.wait_status(&merge_sha, "sluice/apply", "failure").await,
        "not applied after merge: see the pull request"
    );
    h.wait_idle(&[1]).await;
    assert!(h.locks().await.is_empty(), "the locks were released anyway");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_merge_in_a_repository_that_applies_nothing_after_merge_prepares_no_delivery() {
    let h = harness(
        "version: 1\n",
        &[("envs/a/main.tf", null_project("a", "1"))],
    )
    .await;
    let _ = plan_change_a(&h).await;
    let merge_sha = merge(&h, 1);
    // Even a fetch failure is no failed delivery here: nothing applies after merge.
    let unreachable = merged_event(&h, 1, &merge_sha).repo(REPO, "file:///nonexistent/origin.git");
    h.deliver(&unreachable).await;
    h.wait_comment(1, "the close notice", |c| c.contains("discarded"))
        .await;
    h.wait_idle(&[1]).await;
    assert!(
        h.count_comments(1, |c| c.contains("Not applied after merge")) == 0,
        "{:?}",
        h.fake.bot_comments(REPO, 1)
    );
    assert!(
        h.fake.statuses(&merge_sha).is_empty(),
        "no sluice/apply on the merge commit"
    );
    assert!(h.locks().await.is_empty());
}

const COMMENT_OR_MERGE: &str = "version: 1\napply_mode: comment_or_merge\n";

/// The refusal comment on PR `n` and the failed `sluice/apply` on its merge commit.
async fn not_applied(h: &Harness, n: u64, merge_sha: &str) -> String {
    let told = h
        .wait_comment(n, "the refusal", |c| c.contains("Not applied after merge"))
        .await;
    assert_eq!(
        h.wait_status(merge_sha, "sluice/apply", "failure").await,
        "not applied after merge: see the pull request"
    );
    told
}

#[tokio::test(flavor = "multi_thread")]
async fn a_comment_or_merge_project_merged_never_planned_is_reported_not_silently_skipped() {
    let h = harness(
        COMMENT_OR_MERGE,
        &[("envs/a/main.tf", null_project("a", "1"))],
    )
    .await;
    h.open_pr(
        1,
        "change-a",
        &[("envs/a/main.tf", &null_project("a", "2"))],
    );
    let merge_sha = merge(&h, 1);
    h.deliver(&merged_event(&h, 1, &merge_sha)).await;
    let told = not_applied(&h, 1, &merge_sha).await;
    assert!(told.contains("- `envs/a`: "), "{told}");
    assert!(told.contains("without a reviewed plan"), "{told}");
    h.wait_idle(&[1]).await;
    let entries = audit(&h);
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "apply_refused" && e["project"] == "envs/a"),
        "the refusal is audited: {entries:#?}"
    );
    assert!(h.locks().await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_comment_or_merge_plan_queued_behind_another_prs_lock_fails_the_gate_and_is_reported_at_merge()
 {
    let h = harness(
        COMMENT_OR_MERGE,
        &[("envs/a/main.tf", null_project("a", "1"))],
    )
    .await;
    // PR 2 plans first and holds the project's lock (comment_or_merge plans take it).
    let two = h.open_pr(
        2,
        "two",
        &[("envs/a/b.tf", "resource \"null_resource\" \"b\" {}\n")],
    );
    h.deliver(&h.pr_event("opened", 2)).await;
    h.wait_status(&two, "sluice/plan", "success").await;
    let one = h.open_pr(
        1,
        "change-a",
        &[("envs/a/main.tf", &null_project("a", "2"))],
    );
    h.deliver(&h.pr_event("opened", 1)).await;
    h.wait_comment(1, "the queued notice", |c| c.contains("#2"))
        .await;
    // Approved, but nothing of PR 1 was reviewed: its gate does not pass.
    h.deliver(&approve(&h, 1, "bob")).await;
    let gate = h.wait_status(&one, "sluice/apply-gate", "failure").await;
    assert!(gate.contains("no reviewed plan"), "{gate}");

    let merge_sha = merge(&h, 1);
    h.deliver(&merged_event(&h, 1, &merge_sha)).await;
    // The delivery waits for PR 2's lock like PR 1's plan did; PR 2 is closed.
    h.fake.update_pull(REPO, 2, |p| p.state = "closed".into());
    h.deliver(&h.pr_event("closed", 2)).await;
    let told = not_applied(&h, 1, &merge_sha).await;
    assert!(told.contains("without a reviewed plan"), "{told}");
    h.wait_idle(&[1, 2]).await;
    assert!(
        !audit(&h)
            .iter()
            .any(|e| e["action"] == "apply" && e["result"] == "success"),
        "nothing was applied"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_comment_or_merge_project_applied_by_comment_needs_nothing_at_merge() {
    let h = harness(
        COMMENT_OR_MERGE,
        &[("envs/a/main.tf", null_project("a", "1"))],
    )
    .await;
    let _ = plan_change_a(&h).await;
    h.fake.add_review(REPO, 1, "bob", "APPROVED");
    h.deliver(&h.comment_event(1, "alice", "sluice apply"))
        .await;
    h.wait_comment(1, "the apply", |c| c.contains("Apply complete"))
        .await;
    h.wait_idle(&[1]).await;
    let merge_sha = merge(&h, 1);
    h.deliver(&merged_event(&h, 1, &merge_sha)).await;
    h.wait_comment(1, "the close notice", |c| c.contains("Pull request merged"))
        .await;
    h.wait_idle(&[1]).await;
    assert_eq!(
        h.count_comments(1, |c| c.contains("Not applied after merge")),
        0,
        "{:?}",
        h.fake.bot_comments(REPO, 1)
    );
    assert!(
        h.fake.statuses(&merge_sha).is_empty(),
        "no delivery: nothing left to apply"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gate_of_a_comment_or_merge_pr_requires_what_its_delivery_will_require() {
    let h = harness(
        COMMENT_OR_MERGE,
        &[("envs/a/main.tf", null_project("a", "1"))],
    )
    .await;
    let head = plan_change_a(&h).await;
    let gate = h.wait_status(&head, "sluice/apply-gate", "failure").await;
    assert!(
        gate.contains("`envs/a`") && gate.contains("approved"),
        "{gate}"
    );
    h.deliver(&approve(&h, 1, "bob")).await;
    assert_eq!(
        h.wait_status(&head, "sluice/apply-gate", "success").await,
        "ready: 1 project apply after merge"
    );
    let merge_sha = merge(&h, 1);
    h.deliver(&merged_event(&h, 1, &merge_sha)).await;
    h.wait_status(&merge_sha, "sluice/apply", "success").await;
    h.wait_comment(1, "the apply", |c| c.contains("Apply complete"))
        .await;
    h.wait_idle(&[1]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pr_without_terraform_changes_gets_a_passing_apply_gate_in_token_mode() {
    for config in [ON_MERGE, "version: 1\n"] {
        let h = harness(config, &[("envs/a/main.tf", null_project("a", "1"))]).await;
        let head = h.open_pr(1, "docs", &[("README.md", "# docs\n")]);
        h.deliver(&h.pr_event("opened", 1)).await;
        assert_eq!(
            h.wait_status(&head, "sluice/apply-gate", "success").await,
            "no Terraform changes",
            "{config}"
        );
        h.wait_status(&head, "sluice/plan", "success").await;
    }
}

/// `on_merge` with a policy: what a refusal for a missing plan must not be blamed on.
const ON_MERGE_POLICY: &str = "version: 1\napply_mode: on_merge\npolicies:\n  - name: no-prod-db\n    rules:\n      - deny: [create]\n        resource_types: [aws_db_instance]\nprojects:\n  - dir: envs/a\n    autoplan:\n      enabled: false\n";

#[tokio::test(flavor = "multi_thread")]
async fn a_never_planned_on_merge_pr_is_refused_for_no_reviewed_plan_not_by_a_policy() {
    let h = harness(
        ON_MERGE_POLICY,
        &[("envs/a/main.tf", null_project("a", "1"))],
    )
    .await;
    let head = h.open_pr(
        1,
        "change-a",
        &[("envs/a/main.tf", &null_project("a", "2"))],
    );
    // Autoplan is off: nothing is planned, and the gate says why it does not pass.
    h.deliver(&h.pr_event("opened", 1)).await;
    h.deliver(&approve(&h, 1, "bob")).await;
    let gate = h.wait_status(&head, "sluice/apply-gate", "failure").await;
    assert!(gate.contains("no reviewed plan"), "{gate}");
    assert!(!gate.contains("policy"), "{gate}");

    let merge_sha = merge(&h, 1);
    h.deliver(&merged_event(&h, 1, &merge_sha)).await;
    let told = not_applied(&h, 1, &merge_sha).await;
    assert!(told.contains("without a reviewed plan"), "{told}");
    assert!(!told.contains("policy"), "{told}");
    h.wait_idle(&[1]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_on_merge_pr_whose_plan_failed_does_not_pass_the_gate() {
    let h = harness(ON_MERGE, &[("envs/a/main.tf", null_project("a", "1"))]).await;
    let head = h.open_pr(
        1,
        "broken",
        &[("envs/a/main.tf", "resource \"null_resource\" {\n")],
    );
    h.deliver(&h.pr_event("opened", 1)).await;
    h.wait_status(&head, "sluice/plan", "failure").await;
    h.deliver(&approve(&h, 1, "bob")).await;
    let gate = h.wait_status(&head, "sluice/apply-gate", "failure").await;
    assert!(gate.contains("no reviewed plan"), "{gate}");
    h.wait_idle(&[1]).await;
}

/// A project applied by comment: `sluice/apply-gate` says it is not applied yet after its plan
/// (so requiring the check means "apply before merge", never a check that never comes), passes
/// once it is applied at the head, and fails again when a push changes it once more.
#[tokio::test(flavor = "multi_thread")]
async fn the_gate_of_a_comment_applied_pr_waits_for_the_apply_at_the_head() {
    let h = harness(
        "version: 1\nprojects:\n  - dir: envs/a\n",
        &[("envs/a/main.tf", null_project("a", "1"))],
    )
    .await;
    let head = plan_change_a(&h).await;
    let gate = h.wait_status(&head, "sluice/apply-gate", "failure").await;
    assert!(
        gate.contains("`envs/a`") && gate.contains("not applied yet"),
        "{gate}"
    );
    h.deliver(&approve(&h, 1, "bob")).await;
    h.deliver(&h.comment_event(1, "alice", "sluice apply"))
        .await;
    let gate = h.wait_status(&head, "sluice/apply-gate", "success").await;
    assert_eq!(gate, "ready: nothing left to apply (1 project)");
    let next = h.push(
        1,
        "change-a",
        &[("envs/a/main.tf", &null_project("a", "3"))],
    );
    h.deliver(&h.pr_event("synchronize", 1)).await;
    h.wait_status(&next, "sluice/plan", "success").await;
    let gate = h.wait_status(&next, "sluice/apply-gate", "failure").await;
    assert!(gate.contains("not applied yet"), "{gate}");
}

/// A comment-applied PR whose plan has no changes passes the gate at once: nothing to apply.
#[tokio::test(flavor = "multi_thread")]
async fn the_gate_of_a_comment_applied_pr_without_changes_passes() {
    let h = harness(
        "version: 1\nprojects:\n  - dir: envs/a\n",
        &[("envs/a/main.tf", "locals {\n  a = 1\n}\n".to_string())],
    )
    .await;
    let head = h
        .open_and_plan(
            1,
            "refactor",
            &[("envs/a/main.tf", "locals {\n  a = 2\n}\n")],
        )
        .await;
    let gate = h.wait_status(&head, "sluice/apply-gate", "success").await;
    assert_eq!(gate, "ready: nothing left to apply (1 project)");
}
