//! Rollback by revert end to end (`sluice rollback`, PRODUCT.md §15): the real binary, real
//! terraform with the null provider on a remote state (terraform's `http` backend, so what an
//! apply did survives to the next plan), real git merges in the origin repository — which the
//! revert branch is pushed to — and the fake GitHub opening the revert pull request from it.

use crate::drift::backend_project;
use crate::server::{Harness, REPO};
use crate::state_backend::StateBackend;

async fn harness(backend: &StateBackend, web: &str) -> Harness {
    let main = backend_project(backend, "app", &[("web", web)]);
    let mut h = Harness::new(&[("app/main.tf", &main)]).await;
    h.set_env("SLUICE_RUNNER__EGRESS_ALLOW", &backend.addr.to_string());
    h.fake.set_repo_dir(REPO, h.origin.path());
    h.fake.set_permission(REPO, "bob", "write");
    h.fake.set_permission(REPO, "alice", "admin");
    h.fake.set_permission(REPO, "carol", "read");
    h.start();
    h
}

/// Plans PR `n` (already opened with `open_pr`), has bob approve it and alice apply it.
async fn plan_approve_apply(h: &Harness, n: u64) {
    let head = h.fake_pull(n).head_sha;
    h.deliver(&h.pr_event("opened", n)).await;
    h.wait_status(&head, "sluice/plan", "success").await;
    h.fake.add_review(REPO, n, "bob", "APPROVED");
    h.deliver(&h.comment_event(n, "alice", "sluice apply"))
        .await;
    h.wait_status(&head, "sluice/apply", "success").await;
}

/// Merges PR `n`'s branch into `main` with a merge commit, as GitHub's merge button does, marks
/// it merged on the fake with that merge commit, and delivers GitHub's `closed` event (which
/// releases its locks).
async fn merge(h: &Harness, n: u64) -> String {
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
        p.merge_commit_sha = Some(sha.clone());
    });
    h.deliver(
        &h.pr_event("closed", n)
            .set("/pull_request/merged", true)
            .set("/pull_request/merge_commit_sha", sha.as_str()),
    )
    .await;
    sha
}

/// The audit log's `rollback` entries, as JSON.
fn rollback_entries(h: &Harness) -> Vec<serde_json::Value> {
    let out = h.cli(&["audit", "export", "--format", "jsonl"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON line"))
        .filter(|e| e["action"] == "rollback")
        .collect()
}

/// `sluice rollback …` with the server's settings (its data dir and GitHub credentials).
fn rollback_cli(h: &Harness, args: &[&str]) -> std::process::Output {
    crate::support::sluice(args, &h.env, std::path::Path::new("."))
}

fn trigger_in_state(backend: &StateBackend) -> String {
    let state = backend.state("app").expect("a remote state");
    state["resources"][0]["instances"][0]["attributes"]["triggers"]["v"]
        .as_str()
        .expect("the trigger")
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn rollback_opens_a_revert_pull_request_whose_plan_undoes_the_change_and_applies_after_approval()
 {
    let backend = StateBackend::start();
    let h = harness(&backend, "1").await;
    let v1 = backend_project(&backend, "app", &[("web", "1")]);
    let v2 = backend_project(&backend, "app", &[("web", "2")]);

    // PR 1 makes web 2, applied through Sluice, then merged.
    h.open_pr(1, "web-2", &[("app/main.tf", &v2)]);
    plan_approve_apply(&h, 1).await;
    assert_eq!(trigger_in_state(&backend), "2");
    let merge_sha = merge(&h, 1).await;

    // `sluice rollback` on the merged PR: a branch with the revert, and PR #2 opened from it.
    h.deliver(&h.comment_event(1, "bob", "sluice rollback"))
        .await;
    let told = h
        .wait_comment(1, "the rollback reply", |c| {
            c.contains("to revert this pull request")
        })
        .await;
    assert!(told.contains("Opened #2"), "{told}");
    let revert = h.fake_pull(2);
    assert_eq!(revert.title, "Revert #1: Change #1");
    assert_eq!(revert.head_ref, "sluice/revert-pr-1");
    assert_eq!(revert.base_ref, "main");
    assert_eq!(
        revert.author,
        crate::fake_github::USER_LOGIN,
        "opened by Sluice"
    );
    assert!(revert.body.contains("Reverts #1"), "{}", revert.body);
    assert!(revert.body.contains("like any other"), "{}", revert.body);
    // The branch holds main with PR 1 undone, on top of main.
    let branch_tip = h
        .origin
        .git(&["rev-parse", "refs/heads/sluice/revert-pr-1"]);
    assert_eq!(revert.head_sha, branch_tip);
    assert_eq!(
        h.origin.git(&["rev-parse", "sluice/revert-pr-1^"]),
        merge_sha,
        "the revert sits on the base tip"
    );
    let reverted = h.origin.git(&["show", "sluice/revert-pr-1:app/main.tf"]);
    assert_eq!(reverted.trim(), v1.trim());
    // Nothing was applied by the rollback itself.
    assert_eq!(trigger_in_state(&backend), "2");

    // A second rollback while #2 is open points to it; no other pull request is opened.
    h.deliver(&h.comment_event(1, "alice", "sluice rollback"))
        .await;
    let again = h
        .wait_comment(1, "the second reply", |c| c.contains("already open"))
        .await;
    assert!(again.contains("#2"), "{again}");
    // The command line says the same, as the operator `bob` (exit 0: a revert is open).
    let cli = rollback_cli(
        &h,
        &["rollback", "--repo", REPO, "--pr", "1", "--by", "bob"],
    );
    let said = String::from_utf8_lossy(&cli.stdout);
    assert!(
        cli.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    assert!(said.contains("already open: #2"), "{said}");
    assert!(
        h.fake.pull(REPO, 3).is_none(),
        "no second revert pull request"
    );

    // The revert PR is planned like any other: its plan undoes the change (web back to 1)...
    plan_approve_apply(&h, 2).await;
    let plan = h
        .wait_comment(2, "the revert's plan", |c| c.contains("null_resource.web"))
        .await;
    assert!(plan.contains("replace"), "{plan}");
    // ...and, approved and applied, it is: the live state is Git's state before PR 1.
    assert_eq!(trigger_in_state(&backend), "1");

    let entries = rollback_entries(&h);
    assert_eq!(entries.len(), 3, "{entries:#?}");
    assert_eq!(entries[0]["result"], "success");
    assert_eq!(entries[0]["pr"], 1);
    assert_eq!(entries[0]["actor"]["login"], "bob");
    assert_eq!(entries[0]["details"]["revert_pr"], "2");
    assert_eq!(entries[0]["details"]["merge_commit"], merge_sha);
    assert_eq!(entries[1]["details"]["already_open"], "true");
    h.wait_idle(&[1, 2]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rollback_refuses_unmerged_unapplied_unpermitted_and_conflicting_reverts_clearly() {
    let backend = StateBackend::start();
    let h = harness(&backend, "1").await;

    // An open pull request: nothing to revert.
    h.open_pr(1, "notes", &[("NOTES.md", "hello\n")]);
    h.deliver(&h.comment_event(1, "bob", "sluice rollback"))
        .await;
    let open = h
        .wait_comment(1, "the open refusal", |c| c.contains("not merged"))
        .await;
    assert!(open.contains("still open"), "{open}");

    // Merged, but Sluice never applied it: refused, nothing pushed.
    merge(&h, 1).await;
    h.deliver(&h.comment_event(1, "bob", "sluice rollback"))
        .await;
    let unapplied = h
        .wait_comment(1, "the unapplied refusal", |c| c.contains("audit log"))
        .await;
    assert!(
        unapplied.contains("no apply of this pull request by Sluice"),
        "{unapplied}"
    );
    assert!(unapplied.contains("GitHub's Revert button"), "{unapplied}");
    // The command line refuses alike (exit 1), and a repository the server never heard of
    // is an error naming it.
    let cli = rollback_cli(
        &h,
        &["rollback", "--repo", REPO, "--pr", "1", "--by", "bob"],
    );
    let said = String::from_utf8_lossy(&cli.stdout);
    assert_eq!(
        cli.status.code(),
        Some(1),
        "{said}{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    assert!(
        said.contains("no apply of this pull request by Sluice"),
        "{said}"
    );
    let cli = rollback_cli(
        &h,
        &[
            "rollback",
            "--repo",
            "acme/elsewhere",
            "--pr",
            "1",
            "--by",
            "bob",
        ],
    );
    assert!(!cli.status.success());
    assert!(
        String::from_utf8_lossy(&cli.stderr).contains("acme/elsewhere is not known"),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );

    // PR 2 applied through Sluice and merged, then main changes the same line.
    let v2 = backend_project(&backend, "app", &[("web", "2")]);
    let v3 = backend_project(&backend, "app", &[("web", "3")]);
    h.open_pr(2, "web-2", &[("app/main.tf", &v2)]);
    plan_approve_apply(&h, 2).await;
    let merge_sha = merge(&h, 2).await;

    // Someone who may not push: refused (the comment's association alone is not enough).
    h.deliver(&h.comment_event(2, "carol", "sluice rollback"))
        .await;
    let carol = h
        .wait_comment(2, "the permission refusal", |c| c.contains("@carol"))
        .await;
    assert!(carol.contains("`read` permission"), "{carol}");

    h.origin.write("app/main.tf", &v3);
    h.origin.commit("web 3 straight on main");
    h.deliver(&h.comment_event(2, "bob", "sluice rollback"))
        .await;
    let conflict = h
        .wait_comment(2, "the conflict report", |c| {
            c.contains("could not be prepared")
        })
        .await;
    assert!(conflict.contains("* `app/main.tf`"), "{conflict}");
    assert!(
        conflict.contains(&format!("git revert -m 1 {merge_sha}")),
        "{conflict}"
    );
    assert!(
        h.origin
            .git(&["branch", "--list", "sluice/revert-pr-*"])
            .is_empty(),
        "nothing was pushed"
    );
    assert!(h.fake.pull(REPO, 3).is_none(), "no pull request was opened");

    let entries = rollback_entries(&h);
    let outcomes: Vec<(String, String)> = entries
        .iter()
        .map(|e| {
            (
                e["result"].as_str().unwrap_or_default().to_string(),
                e["actor"]["login"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("refused", "bob"),
        ("refused", "bob"),
        ("refused", "bob"),
        ("refused", "carol"),
        ("failure", "bob"),
    ]
    .iter()
    .map(|(r, a)| (r.to_string(), a.to_string()))
    .collect();
    assert_eq!(outcomes, expected, "{entries:#?}");
    assert_eq!(
        entries[2]["actor"]["kind"], "admin",
        "the command line's entry"
    );
    assert_eq!(
        entries[4]["details"]["conflict_000"], "app/main.tf",
        "{entries:#?}"
    );
    h.wait_idle(&[1, 2]).await;
}
