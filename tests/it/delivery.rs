//! Delivery after merge end to end (`apply_mode: on_merge`): the real binary, real terraform
//! with the null provider, real git merges in the origin repository, and GitHub's own webhook
//! shapes for `pull_request` closed+merged and `pull_request_review` (fixtures from
//! `@octokit/webhooks-examples`).

use crate::server::{Harness, REPO};
use crate::support::null_project;
use crate::webhooks::{Webhook, github_now};

/// `main` holds `sluice.yaml` (`config`) and the projects `files`; the server is started.
async fn harness(config: &str, files: &[(&str, String)]) -> Harness {
    let mut all: Vec<(&str, &str)> = vec![("sluice.yaml", config)];
    all.extend(files.iter().map(|(p, c)| (*p, c.as_str())));
    let mut h = Harness::new(&all).await;
    h.start();
    h
}

/// Merges PR `n`'s branch into `main` with a merge commit (as GitHub's merge button does),
/// marks it merged on the fake, and returns the merge commit's SHA.
fn merge(h: &Harness, n: u64) -> String {
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
fn merged_event(h: &Harness, n: u64, merge_sha: &str) -> Webhook {
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
fn approve(h: &Harness, n: u64, user: &str) -> Webhook {
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
fn audit(h: &Harness) -> Vec<serde_json::Value> {
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

#[tokio::test(flavor = "multi_thread")]
async fn an_on_merge_project_is_planned_gated_applied_after_merge_and_audited_with_both_shas() {
    let h = harness(ON_MERGE, &[("envs/a/main.tf", null_project("a", "1"))]).await;
    let head = h.open_pr(
        1,
        "change-a",
        &[("envs/a/main.tf", &null_project("a", "2"))],
    );
    h.deliver(&h.pr_event("opened", 1)).await;
    h.wait_status(&head, "sluice/plan", "success").await;
    let gate = h.wait_status(&head, "sluice/apply-gate", "failure").await;
    assert!(gate.contains("approved"), "{gate}");
    assert!(h.locks().await.is_empty(), "an on_merge plan takes no lock");

    // Nothing is applied before the merge, not even by comment.
    h.deliver(&h.comment_event(1, "bob", "sluice apply")).await;
    let refusal = h
        .wait_comment(1, "the refusal", |c| c.contains("Apply refused"))
        .await;
    assert!(refusal.contains("applied after merge"), "{refusal}");

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
    let head = h.open_pr(
        1,
        "change-a",
        &[("envs/a/main.tf", &null_project("a", "2"))],
    );
    h.deliver(&h.pr_event("opened", 1)).await;
    h.wait_status(&head, "sluice/plan", "success").await;
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
