//! End-to-end scenarios of the bot: the real `sluice serve` binary, a fake GitHub, real git and
//! real terraform. Each test is one story a user would tell.

use std::time::Duration;

use crate::fake_github::Failure;
use crate::server::{Harness, REPO, SECRET};
use crate::support::{NULL_PROVIDER, null_project};
use crate::webhooks::Webhook;

fn two_projects() -> Vec<(&'static str, String)> {
    vec![
        ("envs/a/main.tf", null_project("a", "1")),
        ("envs/b/main.tf", null_project("b", "1")),
        ("README.md", "infra\n".to_string()),
    ]
}

async fn harness() -> Harness {
    let files = two_projects();
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, c)| (*p, c.as_str())).collect();
    let mut h = Harness::new(&refs).await;
    h.start();
    h
}

fn is_plan(c: &str) -> bool {
    c.contains("sluice plan") && c.contains("Plan:")
}

#[tokio::test(flavor = "multi_thread")]
async fn opening_a_pr_plans_the_affected_project_and_sets_statuses() {
    let h = harness().await;
    let head = h.open_pr(
        1,
        "change-a",
        &[("envs/a/main.tf", &null_project("a", "2"))],
    );
    h.deliver(&h.pr_event("opened", 1)).await;

    let comment = h.wait_comment(1, "the plan comment", is_plan).await;
    assert!(comment.contains("envs/a"), "{comment}");
    assert!(
        !comment.contains("envs/b"),
        "only the changed project is planned:\n{comment}"
    );
    assert!(
        comment.contains("Plan: 1 to add, 0 to change, 0 to destroy."),
        "{comment}"
    );
    assert!(
        comment.contains("sluice apply -p envs/a"),
        "next commands are shown:\n{comment}"
    );
    let desc = h.wait_status(&head, "sluice/plan", "success").await;
    assert_eq!(desc, "1/1 project planned");
    let statuses: Vec<String> = h
        .fake
        .statuses(&head)
        .into_iter()
        .map(|(c, s, _)| format!("{c}={s}"))
        .collect();
    assert_eq!(
        statuses.first().map(String::as_str),
        Some("sluice/plan=pending"),
        "{statuses:?}"
    );
    assert_eq!(
        h.locks().await,
        vec![("envs/a".to_string(), "default".to_string(), 1)]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pr_touching_no_project_gets_a_zero_status() {
    let h = harness().await;
    let head = h.open_pr(1, "docs", &[("README.md", "docs only\n")]);
    h.deliver(&h.pr_event("opened", 1)).await;
    assert_eq!(
        h.wait_status(&head, "sluice/plan", "success").await,
        "0 projects affected"
    );
    assert_eq!(h.count_comments(1, |_| true), 0, "no comment for nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_is_refused_until_someone_else_approves_then_applies_the_reviewed_plan() {
    let h = harness().await;
    let head = h.open_pr(
        1,
        "change-a",
        &[("envs/a/main.tf", &null_project("a", "2"))],
    );
    h.deliver(&h.pr_event("opened", 1)).await;
    h.wait_status(&head, "sluice/plan", "success").await;

    // Unapproved.
    h.deliver(&h.comment_event(1, "alice", "sluice apply"))
        .await;
    let refusal = h
        .wait_comment(1, "the refusal", |c| c.contains("Apply refused"))
        .await;
    assert!(
        refusal.contains("requirement `approved` failed"),
        "{refusal}"
    );
    assert!(
        h.fake.reactions().iter().any(|(_, r)| r == "eyes"),
        "the command was acknowledged"
    );
    h.wait_status(&head, "sluice/apply", "failure").await;

    // The author approving their own PR does not count.
    h.fake.add_review(REPO, 1, "alice", "APPROVED");
    h.deliver(&h.comment_event(1, "alice", "sluice apply"))
        .await;
    h.wait("second refusal", || {
        (h.count_comments(1, |c| c.contains("Apply refused")) == 2).then_some(())
    })
    .await;

    // Someone else approves.
    h.fake.add_review(REPO, 1, "bob", "APPROVED");
    h.deliver(&h.comment_event(1, "alice", "sluice apply"))
        .await;
    let applied = h
        .wait_comment(1, "the apply comment", |c| {
            c.contains("sluice apply") && c.contains("Apply complete")
        })
        .await;
    assert!(applied.contains("1 added"), "{applied}");
    assert_eq!(
        h.wait_status(&head, "sluice/apply", "success").await,
        "1/1 project applied"
    );

    // Nothing left to apply.
    h.deliver(&h.comment_event(1, "alice", "sluice apply"))
        .await;
    h.wait_comment(1, "nothing to apply", |c| c.contains("Nothing to apply"))
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_commit_makes_the_old_plan_unappliable() {
    let h = harness().await;
    let first = h.open_pr(
        1,
        "change-a",
        &[("envs/a/main.tf", &null_project("a", "2"))],
    );
    h.deliver(&h.pr_event("opened", 1)).await;
    h.wait_status(&first, "sluice/plan", "success").await;
    h.fake.add_review(REPO, 1, "bob", "APPROVED");

    // A push the bot has not heard of yet (its `synchronize` is not delivered): Sluice cannot
    // tell whether the comment was written before or after it, so it refuses, naming both.
    let second = h.push(
        1,
        "change-a",
        &[("envs/a/main.tf", &null_project("a", "3"))],
    );
    h.deliver(&h.comment_event(1, "alice", "sluice apply"))
        .await;
    let refusal = h
        .wait_comment(1, "the refusal", |c| c.contains("`apply` was not run"))
        .await;
    assert!(
        refusal.contains(&format!(
            "written when the head commit was `{}`, and the head is now `{}`",
            &first[..7],
            &second[..7]
        )),
        "{refusal}"
    );
    // Commented again, once the new head is known: the gate names the stale plan.
    h.deliver(&h.comment_event(1, "alice", "sluice apply"))
        .await;
    let refusal = h
        .wait_comment(1, "the gate's refusal", |c| c.contains("Apply refused"))
        .await;
    assert!(
        refusal.contains(&format!(
            "the plan was made for commit {} but the head is now {}",
            &first[..7],
            &second[..7]
        )),
        "{refusal}"
    );

    // Once the new commit is planned, it applies.
    h.deliver(&h.pr_event("synchronize", 1)).await;
    h.wait_status(&second, "sluice/plan", "success").await;
    h.fake.add_review(REPO, 1, "bob", "APPROVED");
    h.deliver(&h.comment_event(1, "alice", "sluice apply"))
        .await;
    h.wait_status(&second, "sluice/apply", "success").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_pr_waits_for_the_lock_and_runs_when_the_first_closes() {
    let h = harness().await;
    let one = h.open_pr(1, "one", &[("envs/a/main.tf", &null_project("a", "2"))]);
    h.deliver(&h.pr_event("opened", 1)).await;
    h.wait_status(&one, "sluice/plan", "success").await;

    let two = h.open_pr(2, "two", &[("envs/a/main.tf", &null_project("a", "9"))]);
    h.deliver(&h.pr_event("opened", 2)).await;
    let queued = h
        .wait_comment(2, "queued notice", |c| c.contains("Queued behind"))
        .await;
    assert!(
        queued.contains("[#1](https://github.com/acme/infra/pull/1)"),
        "names and links the holder:\n{queued}"
    );
    assert_eq!(
        h.wait_status(&two, "sluice/plan", "pending").await,
        "queued behind #1"
    );
    assert_eq!(h.count_comments(2, is_plan), 0, "nothing ran for #2 yet");

    // Closing #1 releases its lock; #2's plan starts by itself.
    h.fake.update_pull(REPO, 1, |p| p.state = "closed".into());
    h.deliver(&h.pr_event("closed", 1)).await;
    h.wait_comment(1, "release notice", |c| c.contains("released 1 lock"))
        .await;
    let plan = h.wait_comment(2, "#2's plan", is_plan).await;
    assert!(plan.contains("envs/a"), "{plan}");
    h.wait_status(&two, "sluice/plan", "success").await;
    assert_eq!(
        h.locks().await,
        vec![("envs/a".to_string(), "default".to_string(), 2)]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn closing_and_unlocking_release_locks_and_plans() {
    let h = harness().await;
    let head = h.open_pr(
        1,
        "both",
        &[
            ("envs/a/main.tf", &null_project("a", "2")),
            ("envs/b/main.tf", &null_project("b", "2")),
        ],
    );
    h.deliver(&h.pr_event("opened", 1)).await;
    assert_eq!(
        h.wait_status(&head, "sluice/plan", "success").await,
        "2/2 projects planned"
    );
    assert_eq!(h.locks().await.len(), 2);

    h.deliver(&h.comment_event(1, "alice", "sluice unlock"))
        .await;
    let reply = h
        .wait_comment(1, "unlock reply", |c| c.contains("Released 2 locks"))
        .await;
    assert!(reply.contains("discarded 2 plans"), "{reply}");
    h.wait_locks_empty().await;

    // Apply after unlock has nothing to apply.
    h.fake.add_review(REPO, 1, "bob", "APPROVED");
    h.deliver(&h.comment_event(1, "alice", "sluice apply"))
        .await;
    h.wait_comment(1, "nothing to apply", |c| c.contains("Nothing to apply"))
        .await;

    // Plan again, then close: locks go.
    h.deliver(&h.comment_event(1, "alice", "sluice plan -p envs/b"))
        .await;
    // The summary, edited in place, now reports a second run: of `envs/b` alone.
    let second = h.wait_plan_runs(1, 2).await;
    assert!(is_plan(&second), "{second}");
    assert!(second.contains("### `envs/b`"), "{second}");
    assert!(!second.contains("### `envs/a`"), "{second}");
    assert_eq!(
        h.locks().await,
        vec![("envs/b".to_string(), "default".to_string(), 1)]
    );
    h.fake.update_pull(REPO, 1, |p| {
        p.state = "closed".into();
        p.merged = true;
    });
    h.deliver(&h.pr_event("closed", 1).set("/pull_request/merged", true))
        .await;
    h.wait_comment(1, "merge notice", |c| c.contains("Pull request merged"))
        .await;
    h.wait_locks_empty().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_must_be_signed_and_are_processed_once() {
    let h = harness().await;
    h.open_pr(
        1,
        "change-a",
        &[("envs/a/main.tf", &null_project("a", "2"))],
    );
    let hook = h.pr_event("opened", 1);

    // Unsigned.
    let r = h
        .http
        .post(format!("{}/events", h.url()))
        .header("X-GitHub-Event", "pull_request")
        .header("X-GitHub-Delivery", "x1")
        .body(hook.body())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("signature"));
    // Signed, but the body is not the signed one.
    let signed = hook.signed(SECRET);
    let mut forged = signed.body.clone();
    forged.extend_from_slice(b" ");
    let r = h
        .http
        .post(format!("{}/events", h.url()))
        .headers(signed.header_map())
        .body(forged)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Signed with another secret.
    let other = hook.signed("not-the-secret-at-all");
    let r = h
        .http
        .post(format!("{}/events", h.url()))
        .headers(other.header_map())
        .body(other.body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // The real one, twice (a redelivery).
    let r = h
        .http
        .post(format!("{}/events", h.url()))
        .headers(signed.header_map())
        .body(signed.body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = h
        .http
        .post(format!("{}/events", h.url()))
        .headers(signed.header_map())
        .body(signed.body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("duplicate"));
    h.wait_comment(1, "the plan", is_plan).await;
    h.wait_idle(&[1]).await;
    assert_eq!(
        h.count_comments(1, is_plan),
        1,
        "the redelivery did no new work"
    );

    // Rejections are audited.
    let out = h.cli(&["audit", "export"]);
    let export = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        export.matches("\"webhook_rejected\"").count(),
        3,
        "{export}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn repositories_outside_the_allowlist_get_403_and_no_work() {
    let files = two_projects();
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, c)| (*p, c.as_str())).collect();
    let mut h = Harness::new(&refs).await;
    h.set_env("SLUICE_REPO_ALLOWLIST", "acme/other-*,!acme/infra");
    h.start();
    h.open_pr(
        1,
        "change-a",
        &[("envs/a/main.tf", &null_project("a", "2"))],
    );
    let r = h.send(&h.pr_event("opened", 1)).await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("acme/infra is not served"));
    h.wait_idle(&[1]).await;
    assert!(
        h.fake.requests().iter().all(|r| r.method == "GET"),
        "no comment, status or reaction"
    );
    assert!(h.locks().await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_and_unknown_webhooks_get_clear_answers() {
    let h = harness().await;
    // Malformed JSON, correctly signed.
    let body = b"{\"action\": \"opened\", \"pull_request\": ".to_vec();
    let sig = crate::webhooks::signature(SECRET, &body);
    let r = h
        .http
        .post(format!("{}/events", h.url()))
        .header("X-GitHub-Event", "pull_request")
        .header("X-GitHub-Delivery", "bad-json-1")
        .header("X-Hub-Signature-256", sig)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("cannot parse the `pull_request` payload"),
        "{text}"
    );

    // An event type Sluice does not act on: acknowledged, ignored.
    let body = br#"{"action":"completed","check_suite":{"id":1}}"#.to_vec();
    let sig = crate::webhooks::signature(SECRET, &body);
    let r = h
        .http
        .post(format!("{}/events", h.url()))
        .header("X-GitHub-Event", "check_suite")
        .header("X-GitHub-Delivery", "unknown-1")
        .header("X-Hub-Signature-256", sig)
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());

    // Missing headers.
    let r = h
        .http
        .post(format!("{}/events", h.url()))
        .body("{}")
        .header(
            "X-Hub-Signature-256",
            crate::webhooks::signature(SECRET, b"{}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // A ping.
    h.deliver(&Webhook::load("ping.json")).await;
    let health = h
        .http
        .get(format!("{}/healthz", h.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn comments_get_replies_reactions_or_nothing() {
    let h = harness().await;
    h.open_pr(
        1,
        "change-a",
        &[("envs/a/main.tf", &null_project("a", "2"))],
    );
    h.deliver(&h.comment_event(1, "alice", "sluice help")).await;
    h.wait_comment(1, "usage", |c| {
        c.contains("sluice plan") && c.contains("unlock")
    })
    .await;
    h.deliver(&h.comment_event(1, "alice", "terraform plan"))
        .await;
    h.wait_comment(1, "did you mean", |c| {
        c.contains("did you mean") || c.contains("Did you mean")
    })
    .await;
    h.deliver(&h.comment_event(1, "alice", "sluice plan -p a -d envs/a"))
        .await;
    h.wait_comment(1, "flag error", |c| c.contains("cannot be combined"))
        .await;
    let before = h.count_comments(1, |_| true);
    h.deliver(&h.comment_event(1, "alice", "Looks good to me, the sluice plan is fine"))
        .await;
    // A 1 MB comment addressed to the bot: a short error, no crash.
    let huge = format!("sluice plan {}", "x".repeat(1024 * 1024));
    h.deliver(&h.comment_event(1, "alice", &huge)).await;
    let reply = h
        .wait_comment(1, "reply to the huge comment", |c| {
            c.contains("bytes long; Sluice reads commands of up to")
        })
        .await;
    assert!(
        reply.len() < 2000,
        "the reply does not echo the comment back"
    );
    h.wait_idle(&[1]).await;
    assert_eq!(
        h.count_comments(1, |_| true),
        before + 1,
        "conversation gets no reply"
    );
    // The bot's own comments are never commands.
    h.deliver(&h.comment_event(1, crate::fake_github::USER_LOGIN, "sluice plan"))
        .await;
    h.wait_idle(&[1]).await;
    // (The command itself is listed as the bot's comment; nothing else may appear.)
    assert_eq!(
        h.count_comments(1, |c| c != "sluice plan"),
        before + 1,
        "{:?}",
        h.fake.bot_comments(REPO, 1).last()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_on_a_pr_that_no_longer_exists_is_recorded_not_crashed() {
    let h = harness().await;
    // PR 99 is unknown to GitHub (404).
    let hook = Webhook::load("issue_comment.created.pr.json")
        .repo(REPO, &h.origin.url())
        .pr_number(99)
        .comment_body("sluice plan")
        .user("alice")
        .installation(None);
    h.deliver(&hook).await;
    h.wait("the audit entry", || {
        let out = h.cli(&["audit", "export"]);
        String::from_utf8_lossy(&out.stdout)
            .contains("GitHub answered 404")
            .then_some(())
    })
    .await;
    assert_eq!(
        h.http
            .get(format!("{}/healthz", h.url()))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn github_errors_while_reporting_are_retried_and_nothing_is_lost() {
    let h = harness().await;
    let head = h.open_pr(
        1,
        "change-a",
        &[("envs/a/main.tf", &null_project("a", "2"))],
    );
    h.fake.fail_next(
        "POST",
        "/repos/acme/infra/issues/1/comments",
        3,
        Failure::new(500),
    );
    h.fake.fail_next(
        "POST",
        &format!("/repos/acme/infra/statuses/{head}"),
        1,
        Failure::secondary_rate_limit(1),
    );
    h.deliver(&h.pr_event("opened", 1)).await;
    h.wait_comment(1, "the plan, after the 500s", is_plan).await;
    h.wait_status(&head, "sluice/plan", "success").await;
    assert_eq!(h.count_comments(1, is_plan), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repository_that_cannot_be_fetched_is_reported_on_the_pr() {
    let h = harness().await;
    h.open_pr(
        1,
        "change-a",
        &[("envs/a/main.tf", &null_project("a", "2"))],
    );
    let hook = h
        .pr_event("opened", 1)
        .repo(REPO, "file:///nonexistent/repo.git");
    h.deliver(&hook).await;
    let c = h
        .wait_comment(1, "the failure comment", |c| c.contains("could not act"))
        .await;
    assert!(c.contains("/nonexistent/repo.git"), "{c}");
}

#[tokio::test(flavor = "multi_thread")]
async fn fork_prs_are_refused_and_drafts_are_skipped() {
    let h = harness().await;
    let head = h.open_pr(
        1,
        "fork-change",
        &[("envs/a/main.tf", &null_project("a", "2"))],
    );
    h.fake
        .update_pull(REPO, 1, |p| p.head_repo = Some("mallory/infra".into()));
    h.deliver(&h.pr_event("opened", 1).head_repo("mallory/infra"))
        .await;
    h.wait_comment(1, "fork refusal", |c| {
        c.contains("does not run on pull requests from forks")
    })
    .await;
    assert!(h.fake.statuses(&head).is_empty());
    assert!(h.locks().await.is_empty());

    let draft = h.open_pr(2, "draft", &[("envs/b/main.tf", &null_project("b", "2"))]);
    h.deliver(&h.pr_event("opened", 2).draft(true)).await;
    h.wait_idle(&[2]).await;
    assert!(h.fake.statuses(&draft).is_empty(), "drafts are not planned");
    h.deliver(&h.pr_event("ready_for_review", 2)).await;
    h.wait_status(&draft, "sluice/plan", "success").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn prs_into_an_untrusted_base_branch_are_not_run() {
    // Policies and requirements come from the base branch: a PR into a branch anyone could
    // have pushed (with weakened policies) must not be planned or applied.
    let h = harness().await;
    let head = h.open_pr(1, "sneaky", &[("envs/a/main.tf", &null_project("a", "2"))]);
    h.fake.update_pull(REPO, 1, |p| p.base_ref = "weak".into());
    h.deliver(&h.pr_event("opened", 1)).await;
    let refusal = "does not run pull requests into `weak`";
    h.wait_comment(1, "the refusal", |c| c.contains(refusal))
        .await;
    h.deliver(&h.comment_event(1, "alice", "sluice apply"))
        .await;
    h.wait("a second refusal", || {
        (h.count_comments(1, |c| c.contains(refusal)) == 2).then_some(())
    })
    .await;
    assert!(h.fake.statuses(&head).is_empty());
    assert!(h.locks().await.is_empty());
    let out = h.cli(&["audit", "export"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("base branch not trusted"));
}

#[tokio::test(flavor = "multi_thread")]
async fn commands_from_outside_the_repository_are_refused() {
    let h = harness().await;
    let head = h.open_pr(1, "change", &[("envs/a/main.tf", &null_project("a", "2"))]);
    h.deliver(
        &h.comment_event(1, "mallory", "sluice plan")
            .set("/comment/author_association", "NONE"),
    )
    .await;
    h.wait_comment(1, "the refusal", |c| {
        c.contains("@mallory is not a collaborator") && c.contains("`plan` was not run")
    })
    .await;
    let out = h.cli(&["audit", "export"]);
    let audit = String::from_utf8_lossy(&out.stdout);
    assert!(
        audit.contains("command_rejected") && audit.contains("mallory"),
        "{audit}"
    );
    assert!(h.fake.statuses(&head).is_empty(), "nothing was planned");
    assert!(
        h.fake.reactions().is_empty(),
        "no 'heard' reaction for an outsider"
    );
    // Nor do near-misses make the bot answer them.
    h.deliver(
        &h.comment_event(1, "mallory", "sluice pln")
            .set("/comment/author_association", "NONE"),
    )
    .await;
    // A collaborator's command on the same PR runs.
    h.deliver(&h.comment_event(1, "alice", "sluice plan")).await;
    h.wait_status(&head, "sluice/plan", "success").await;
    assert!(
        !h.fake
            .bot_comments(REPO, 1)
            .iter()
            .any(|c| c.contains("pln")),
        "an outsider's near-miss gets no reply"
    );
    assert!(!h.fake.reactions().is_empty(), "the collaborator was heard");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pr_cannot_relax_its_own_apply_requirements() {
    // Base requires approval (the default). The PR adds a config that removes it (and keeps
    // `envs/b`, which a config leaving it out would remove).
    let h = harness().await;
    let config =
        "version: 1\nprojects:\n  - dir: envs/a\n    apply_requirements: []\n  - dir: envs/b\n";
    let head = h.open_pr(
        1,
        "sneaky",
        &[
            ("envs/a/main.tf", &null_project("a", "2")),
            ("sluice.yaml", config),
        ],
    );
    h.deliver(&h.pr_event("opened", 1)).await;
    h.wait_status(&head, "sluice/plan", "success").await;
    h.deliver(&h.comment_event(1, "alice", "sluice apply"))
        .await;
    let refusal = h
        .wait_comment(1, "refusal", |c| c.contains("Apply refused"))
        .await;
    assert!(
        refusal.contains("requirement `approved` failed"),
        "{refusal}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_refuses_to_start_without_a_webhook_secret() {
    let data = crate::support::DataDir::temp();
    let env = std::collections::BTreeMap::from([
        ("SLUICE_LISTEN".to_string(), "127.0.0.1:0".to_string()),
        (
            "SLUICE_DATA_DIR".to_string(),
            data.path().display().to_string(),
        ),
    ]);
    let err = crate::server::Server::start(&env, &[])
        .err()
        .expect("must not start");
    assert!(
        err.contains("refusing to start without a webhook secret"),
        "{err}"
    );

    // Zero-config development start: listens, explains what is missing.
    let s = crate::server::Server::start(&env, &["--insecure-no-webhook-secret"]).expect("starts");
    let client = reqwest::Client::new();
    assert_eq!(
        client
            .get(format!("{}/healthz", s.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let page = client
        .get(&s.url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // What is missing is printed where the operator looks; the unauthenticated page (and no
    // token can be configured here) does not tell the world that signatures go unchecked.
    assert!(!page.contains("INSECURE"), "{page}");
    assert!(page.contains("SLUICE_API_TOKEN"), "{page}");
    assert!(s.logs().contains("MISSING GitHub credentials"));
    assert!(s.logs().contains("INSECURE"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plan_with_an_hcl_error_is_reported_as_a_readable_failure() {
    let h = harness().await;
    let head = h.open_pr(
        1,
        "broken",
        &[(
            "envs/a/main.tf",
            &format!(
                "{NULL_PROVIDER}\nresource \"null_resource\" \"a\" {{\n  triggers = {{ v = \n}}\n"
            ),
        )],
    );
    h.deliver(&h.pr_event("opened", 1)).await;
    let c = h
        .wait_comment(1, "the failure", |c| c.contains("sluice plan"))
        .await;
    assert!(
        c.contains("main.tf line"),
        "terraform's own error reaches the PR:\n{c}"
    );
    assert_eq!(
        h.wait_status(&head, "sluice/plan", "failure").await,
        "0/1 project planned, 1 failed"
    );
}

impl Harness {
    pub async fn wait_locks_empty(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if self.locks().await.is_empty() {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "locks still held: {:?}",
                self.locks().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn detection_errors_are_told_on_the_pr_and_the_other_projects_still_plan() {
    let config = "version: 1\nprojects:\n  - dir: envs/a\n  - dir: envs/missing-*\n";
    let files = [
        ("envs/a/main.tf", null_project("a", "1")),
        ("sluice.yaml", config.to_string()),
    ];
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, c)| (*p, c.as_str())).collect();
    let mut h = Harness::new(&refs).await;
    h.start();
    let head = h.open_pr(
        1,
        "change-a",
        &[("envs/a/main.tf", &null_project("a", "2"))],
    );
    h.deliver(&h.pr_event("opened", 1)).await;
    let warning = h
        .wait_comment(1, "the detection warning", |c| {
            c.contains("Some projects could not be planned")
        })
        .await;
    assert!(
        warning.contains("sluice.yaml:4:"),
        "the error points at the entry:\n{warning}"
    );
    h.wait_comment(1, "the plan of envs/a", is_plan).await;
    h.wait_status(&head, "sluice/plan", "success").await;
}
