//! GitHub's merge queue end to end: the real binary, real terraform with the null provider,
//! queue commits built with real git merges on `gh-readonly-queue/…` branches of the origin,
//! and GitHub's own `merge_group` payload (`@octokit/webhooks-examples`).

use crate::delivery::{approve, audit, harness, merged_event};
use crate::server::{Harness, REPO};
use crate::support::null_project;
use crate::webhooks::Webhook;

const ON_MERGE: &str = "version: 1\napply_mode: on_merge\n";

/// A queue commit for PR `n` as GitHub's merge queue builds one: `main` with the PR merged, on
/// `gh-readonly-queue/main/pr-<n>-<head sha>`. Returns (queue SHA, base SHA, queue ref).
fn queue_commit(h: &Harness, n: u64) -> (String, String, String) {
    let pull = h.fake_pull(n);
    h.origin.checkout("main");
    let base = h.origin.head();
    let queue_ref = format!("gh-readonly-queue/main/pr-{n}-{}", pull.head_sha);
    h.origin.checkout_new(&queue_ref);
    h.origin.git(&[
        "merge",
        "--no-ff",
        "-m",
        &format!("Merge pull request #{n}"),
        &pull.head_ref,
    ]);
    let head = h.origin.head();
    h.origin.checkout("main");
    (head, base, queue_ref)
}

/// GitHub's `merge_group` delivery (`checks_requested`) of a queue commit.
fn merge_group(h: &Harness, head: &str, base: &str, queue_ref: &str) -> Webhook {
    Webhook::load("merge_group.checks_requested.json")
        .repo(REPO, &h.origin.url())
        .default_branch("main")
        .set("/merge_group/head_sha", head)
        .set("/merge_group/head_ref", format!("refs/heads/{queue_ref}"))
        .set("/merge_group/base_sha", base)
        .set("/merge_group/base_ref", "refs/heads/main")
        .installation(None)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_queue_batch_gets_its_checks_on_the_queue_sha_and_the_reviewed_plan_still_applies_after_merge()
 {
    let h = harness(ON_MERGE, &[("envs/a/main.tf", null_project("a", "1"))]).await;
    let head = h.open_pr(
        1,
        "change-a",
        &[("envs/a/main.tf", &null_project("a", "2"))],
    );
    h.deliver(&h.pr_event("opened", 1)).await;
    h.wait_status(&head, "sluice/plan", "success").await;
    h.deliver(&approve(&h, 1, "bob")).await;
    h.wait_status(&head, "sluice/apply-gate", "success").await;

    let (queue, base, queue_ref) = queue_commit(&h, 1);
    h.deliver(&merge_group(&h, &queue, &base, &queue_ref)).await;
    assert_eq!(
        h.wait_status(&queue, "sluice/plan", "success").await,
        "queue commit: 1 project planned"
    );
    assert_eq!(
        h.wait_status(&queue, "sluice/apply-gate", "success").await,
        "ready: 1 project apply after merge"
    );
    h.wait_idle(&[1]).await;
    let entries = audit(&h);
    assert!(
        !entries.iter().any(|e| e["action"] == "apply"),
        "nothing is applied from a queue commit: {entries:#?}"
    );
    let checked = entries
        .iter()
        .find(|e| e["action"] == "merge_queue_check")
        .unwrap_or_else(|| panic!("the queue check is audited: {entries:#?}"));
    assert_eq!(checked["result"], "success", "{checked:#}");
    assert_eq!(checked["head_sha"], queue.as_str(), "{checked:#}");
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "plan" && e["head_sha"] == queue.as_str()),
        "the queue commit's plan is audited"
    );
    assert!(
        h.fake
            .bot_comments(REPO, 1)
            .iter()
            .all(|c| !c.contains(&queue[..7])),
        "the queue plan posts nothing on the pull request"
    );

    // GitHub merges the group: `main` becomes the queue commit. The reviewed plan (not the
    // queue's) is what the merge is compared with, and it applies.
    h.origin.git(&["merge", "--ff-only", &queue_ref]);
    h.fake.update_pull(REPO, 1, |p| {
        p.state = "closed".into();
        p.merged = true;
    });
    h.deliver(&merged_event(&h, 1, &queue)).await;
    h.wait_status(&queue, "sluice/apply", "success").await;
    h.wait_idle(&[1]).await;
    assert!(
        audit(&h).iter().any(|e| e["action"] == "apply"
            && e["result"] == "success"
            && e["head_sha"] == queue.as_str()),
        "applied after merge"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_queue_commit_without_terraform_changes_gets_success_checks_at_once() {
    let h = harness(ON_MERGE, &[("envs/a/main.tf", null_project("a", "1"))]).await;
    h.open_pr(1, "docs", &[("README.md", "# docs only\n")]);
    let (queue, base, queue_ref) = queue_commit(&h, 1);
    h.deliver(&merge_group(&h, &queue, &base, &queue_ref)).await;
    for context in ["sluice/plan", "sluice/apply-gate"] {
        assert_eq!(
            h.wait_status(&queue, context, "success").await,
            "queue commit: no Terraform changes"
        );
    }
    // The group leaving the queue is recorded and needs nothing.
    let destroyed = merge_group(&h, &queue, &base, &queue_ref).action("destroyed");
    h.deliver(&destroyed).await;
    h.wait_idle(&[1]).await;
    assert_eq!(h.fake.statuses(&queue).len(), 2, "no further status");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_merge_group_for_a_pr_sluice_never_saw_is_planned_and_its_gate_fails() {
    let h = harness(ON_MERGE, &[("envs/a/main.tf", null_project("a", "1"))]).await;
    // Opened on GitHub, never delivered to Sluice.
    h.open_pr(7, "unseen", &[("envs/a/main.tf", &null_project("a", "2"))]);
    let (queue, base, queue_ref) = queue_commit(&h, 7);
    h.deliver(&merge_group(&h, &queue, &base, &queue_ref)).await;
    h.wait_status(&queue, "sluice/plan", "success").await;
    let gate = h.wait_status(&queue, "sluice/apply-gate", "failure").await;
    assert!(gate.contains("no reviewed plan"), "{gate}");
    h.wait_idle(&[7]).await;
    let entries = audit(&h);
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "merge_queue_check" && e["result"] == "failure"),
        "{entries:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unapproved_pr_is_ejected_by_its_gate_on_the_queue_commit() {
    let h = harness(ON_MERGE, &[("envs/a/main.tf", null_project("a", "1"))]).await;
    let head = h.open_pr(
        1,
        "change-a",
        &[("envs/a/main.tf", &null_project("a", "2"))],
    );
    h.deliver(&h.pr_event("opened", 1)).await;
    h.wait_status(&head, "sluice/plan", "success").await;
    let (queue, base, queue_ref) = queue_commit(&h, 1);
    h.deliver(&merge_group(&h, &queue, &base, &queue_ref)).await;
    h.wait_status(&queue, "sluice/plan", "success").await;
    let gate = h.wait_status(&queue, "sluice/apply-gate", "failure").await;
    assert!(gate.contains("approved"), "{gate}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unfetchable_queue_commit_is_judged_by_githubs_compare_and_fails_closed() {
    let h = harness(ON_MERGE, &[("envs/a/main.tf", null_project("a", "1"))]).await;
    h.origin.checkout("main");
    let base = h.origin.head();
    // Queue commits GitHub already deleted: the mirror cannot fetch them.
    let gone = |i: u32| format!("{i:040x}");
    let cases: [(&str, Vec<String>, &str, &str); 3] = [
        (
            "docs only",
            vec!["README.md".into()],
            "success",
            "queue commit: no Terraform changes",
        ),
        (
            "a Terraform file",
            vec!["envs/a/main.tf".into()],
            "failure",
            "not checked: the queue commit could not be fetched and it changes Terraform files; re-queue",
        ),
        (
            "GitHub's limit",
            (0..300).map(|i| format!("docs/{i}.md")).collect(),
            "failure",
            "not checked: queue commit unreadable and GitHub's compare lists 300 files (its limit); re-queue",
        ),
    ];
    for (i, (what, files, state, description)) in cases.iter().enumerate() {
        let sha = gone(0xdead0 + i as u32);
        let files: Vec<&str> = files.iter().map(String::as_str).collect();
        h.fake.set_compare(REPO, &base, &sha, &files);
        let queue_ref = format!("gh-readonly-queue/main/pr-{}-{sha}", i + 1);
        h.deliver(&merge_group(&h, &sha, &base, &queue_ref)).await;
        for context in ["sluice/plan", "sluice/apply-gate"] {
            assert_eq!(
                &h.wait_status(&sha, context, state).await,
                description,
                "{what}: {context}"
            );
        }
    }
}

/// Neither fetched nor compared (GitHub answers 404 for a queue commit it no longer has): both
/// checks fail at once, closed, and the audit log says so — the queue never waits for GitHub's
/// timeout on an unanswered required check.
#[tokio::test(flavor = "multi_thread")]
async fn a_queue_commit_neither_fetched_nor_compared_fails_both_checks_closed() {
    let h = harness(ON_MERGE, &[("envs/a/main.tf", null_project("a", "1"))]).await;
    h.origin.checkout("main");
    let base = h.origin.head();
    let sha = "1234567890abcdef1234567890abcdef12345678";
    let queue_ref = format!("gh-readonly-queue/main/pr-7-{sha}");
    h.deliver(&merge_group(&h, sha, &base, &queue_ref)).await;
    for context in ["sluice/plan", "sluice/apply-gate"] {
        let d = h.wait_status(sha, context, "failure").await;
        assert!(
            d.starts_with("not checked: Sluice could not read"),
            "{context}: {d}"
        );
    }
    let entries = audit(&h);
    assert!(
        entries.iter().any(|e| e["action"] == "merge_queue_check"
            && e["result"] == "refused"
            && e["head_sha"] == sha),
        "{entries:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_queue_ref_naming_a_pull_request_github_does_not_know_fails_the_gate_closed() {
    let h = harness(ON_MERGE, &[("envs/a/main.tf", null_project("a", "1"))]).await;
    h.open_pr(
        1,
        "change-a",
        &[("envs/a/main.tf", &null_project("a", "2"))],
    );
    let (queue, base, _) = queue_commit(&h, 1);
    // The ref names #99, which GitHub answers 404 for.
    let queue_ref = format!("gh-readonly-queue/main/pr-99-{queue}");
    h.deliver(&merge_group(&h, &queue, &base, &queue_ref)).await;
    h.wait_status(&queue, "sluice/plan", "success").await;
    let gate = h.wait_status(&queue, "sluice/apply-gate", "failure").await;
    assert!(gate.contains("could not be evaluated"), "{gate}");
}

/// The queue gate judges every project the merge would deliver, by the pull request's own
/// gate's rule — a `comment_or_merge` project not applied by comment is delivered too, so a
/// queued pull request whose only project is one is ejected without a reviewed plan and
/// approval (it used to pass: only `on_merge` projects were judged).
#[tokio::test(flavor = "multi_thread")]
async fn a_comment_or_merge_project_without_reviewed_plan_or_approval_is_ejected_by_the_queue_gate()
{
    let h = harness(
        "version: 1\napply_mode: comment_or_merge\n",
        &[
            ("envs/a/main.tf", null_project("a", "1")),
            ("envs/b/main.tf", null_project("b", "1")),
        ],
    )
    .await;
    // Opened on GitHub, never delivered to Sluice: nothing reviewed.
    h.open_pr(7, "unseen", &[("envs/a/main.tf", &null_project("a", "2"))]);
    let (queue, base, queue_ref) = queue_commit(&h, 7);
    h.deliver(&merge_group(&h, &queue, &base, &queue_ref)).await;
    h.wait_status(&queue, "sluice/plan", "success").await;
    let gate = h.wait_status(&queue, "sluice/apply-gate", "failure").await;
    assert!(gate.contains("no reviewed plan"), "{gate}");

    // Planned on the pull request, but nobody approved it.
    let head = h.open_pr(
        8,
        "change-b",
        &[("envs/b/main.tf", &null_project("b", "2"))],
    );
    h.deliver(&h.pr_event("opened", 8)).await;
    h.wait_status(&head, "sluice/plan", "success").await;
    let (queue, base, queue_ref) = queue_commit(&h, 8);
    h.deliver(&merge_group(&h, &queue, &base, &queue_ref)).await;
    h.wait_status(&queue, "sluice/plan", "success").await;
    let gate = h.wait_status(&queue, "sluice/apply-gate", "failure").await;
    assert!(gate.contains("approved"), "{gate}");
}
