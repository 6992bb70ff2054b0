//! Plans where reviewers read, end to end (PRODUCT.md §17): the server plans a PR with real
//! terraform against a real remote state, and posts to the fake GitHub one review whose line
//! comments sit on the `.tf` lines that cause a module's replacement and a destroy (asserted by
//! file, side and line), and one sticky summary comment that the next push edits; the next push's
//! review supersedes the first.

use std::process::Command;

use crate::fake_github::FakeFile;
use crate::server::{Harness, REPO};
use crate::state_backend::StateBackend;
use crate::support::{TestRepo, Tools, scratch_dir, tools};
use crate::webhooks::Webhook;

const PROVIDERS: &str = "terraform {\n  required_providers {\n    null = {\n      source  = \"hashicorp/null\"\n      version = \"~> 2.1\"\n    }\n  }\n}\n";

const MODULE: &str = "variable \"size\" {\n  type = string\n}\n\nresource \"null_resource\" \"main\" {\n  triggers = {\n    size = var.size\n  }\n}\n";

/// `envs/app/main.tf`: the module call with `size`, and `null_resource.old` unless `old` is
/// false.
fn app(backend: &StateBackend, size: &str, old: bool) -> String {
    let mut s = backend.backend_block("app");
    s.push_str(PROVIDERS);
    s.push_str(&format!(
        "\nmodule \"db\" {{\n  source = \"../../modules/db\"\n  size   = \"{size}\"\n}}\n"
    ));
    if old {
        s.push_str(
            "\nresource \"null_resource\" \"old\" {\n  triggers = {\n    v = \"1\"\n  }\n}\n",
        );
    }
    s
}

/// The 1-based line of the first line of `text` starting with `start`.
fn line_of(text: &str, start: &str) -> u32 {
    text.lines()
        .position(|l| l.starts_with(start))
        .map(|i| i as u32 + 1)
        .unwrap_or_else(|| panic!("no line starting with {start:?} in\n{text}"))
}

/// Applies `dir` of the whole checkout of `repo` with the raw terraform binary.
fn apply_by_hand(tools: &Tools, repo: &TestRepo, dir: &str) {
    let work = scratch_dir("review-apply");
    crate::support::copy_dir(repo.path(), work.path());
    let tf = |args: &[&str]| {
        let out = Command::new(&tools.terraform)
            .args(args)
            .current_dir(work.path().join(dir))
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

/// GitHub's `patch` of `path` between two commits of the origin (the hunks, as `GET
/// …/pulls/{n}/files` gives them).
fn patch(repo: &TestRepo, base: &str, head: &str, path: &str) -> String {
    let out = Command::new("git")
        .args(["diff", "--no-color", base, head, "--", path])
        .current_dir(repo.path())
        .output()
        .expect("git diff runs");
    let text = String::from_utf8(out.stdout).expect("a text diff");
    let at = text.find("@@").expect("the diff has hunks");
    text[at..].trim_end().to_string()
}

/// A started server whose repository has the module and `old` applied, and PR #1 (planned):
/// the module's input changes (its resource is replaced) and `old` is removed. Returns the
/// base's and the head's `envs/app/main.tf` and the head.
async fn planned_pr(backend: &StateBackend) -> (Harness, String, String, String) {
    let tools = tools();
    let base_app = app(backend, "1", true);
    let mut h = Harness::new(&[
        ("envs/app/main.tf", &base_app),
        ("modules/db/main.tf", MODULE),
    ])
    .await;
    apply_by_hand(&tools, &h.origin, "envs/app");
    h.set_env("SLUICE_RUNNER__EGRESS_ALLOW", &backend.addr.to_string());
    h.set_env("SLUICE_STICKY_SUMMARY", "true");
    h.set_env("SLUICE_GITHUB_WRITE_GAP_MS", "0");
    h.start();

    let head_app = app(backend, "2", false);
    let base = h.origin.head();
    let head = h.open_pr(1, "resize", &[("envs/app/main.tf", &head_app)]);
    h.fake.set_pull_files(
        REPO,
        1,
        vec![FakeFile::new(
            "envs/app/main.tf",
            "modified",
            Some(&patch(&h.origin, &base, &head, "envs/app/main.tf")),
        )],
    );
    h.deliver(&h.pr_event("opened", 1)).await;
    h.wait_idle(&[1]).await;
    (h, base_app, head_app, head)
}

#[tokio::test]
async fn a_module_replace_and_a_destroy_get_one_review_on_their_lines_and_one_sticky_summary() {
    let backend = StateBackend::start();
    let (h, base_app, head_app, head) = planned_pr(&backend).await;

    let reviews = h.fake.posted_reviews();
    assert_eq!(reviews.len(), 1, "{reviews:#?}");
    assert_eq!(reviews[0].commit_id, head);
    assert_eq!(reviews[0].event, "COMMENT");
    let comments = h.fake.review_comments();
    // The replacement: on the `module "db"` call in the project's own file, naming the
    // module's resource and the attribute that forces it.
    let call = comments
        .iter()
        .find(|c| c.body.contains("module.db.null_resource.main"))
        .unwrap_or_else(|| panic!("no comment on the module call: {comments:#?}"));
    assert_eq!(call.path, "envs/app/main.tf");
    assert_eq!(call.side.as_deref(), Some("RIGHT"));
    let module_line = line_of(&head_app, "module \"db\"");
    assert!(
        (module_line..module_line + 4).contains(&call.line.expect("a line comment")),
        "{call:#?}"
    );
    assert!(call.body.contains("replaced"), "{}", call.body);
    assert!(call.body.contains("triggers"), "{}", call.body);
    assert!(call.body.contains("modules/db/main.tf:5"), "{}", call.body);
    // The destroy: on the removed block, on the diff's left side at its first line.
    let old = comments
        .iter()
        .find(|c| c.body.contains("null_resource.old"))
        .unwrap_or_else(|| panic!("no comment on the removed block: {comments:#?}"));
    assert_eq!(old.path, "envs/app/main.tf");
    assert_eq!(old.side.as_deref(), Some("LEFT"));
    assert_eq!(
        old.line,
        Some(line_of(&base_app, "resource \"null_resource\" \"old\""))
    );
    assert!(old.body.contains("destroyed"), "{}", old.body);

    // One summary comment, naming the project and the head.
    let summaries = h.fake.bot_comments(REPO, 1);
    assert_eq!(summaries.len(), 1, "{summaries:#?}");
    assert!(summaries[0].contains(&head[..7]), "{}", summaries[0]);
    let posts = |h: &Harness| {
        h.fake
            .requests_to("POST", "/repos/acme/infra/issues/1/comments")
            .len()
    };
    assert_eq!(posts(&h), 1);

    // The next push: the summary is edited in place (no new comment), a new review is posted
    // and the first one says it is superseded.
    let head_app2 = app(&backend, "3", false);
    let base2 = h.origin.head();
    let head2 = h.push(1, "resize", &[("envs/app/main.tf", &head_app2)]);
    h.fake.set_pull_files(
        REPO,
        1,
        vec![FakeFile::new(
            "envs/app/main.tf",
            "modified",
            Some(&patch(&h.origin, &base2, &head2, "envs/app/main.tf")),
        )],
    );
    h.deliver(&h.pr_event("synchronize", 1)).await;
    h.wait_idle(&[1]).await;
    // The summary's edit is written after the run ends: wait for it, not for the run alone.
    h.wait_plan(1, "the second push's summary", |t| t.contains(&head2[..7]))
        .await;
    let summaries = h.fake.bot_comments(REPO, 1);
    assert_eq!(summaries.len(), 1, "{summaries:#?}");
    assert!(summaries[0].contains(&head2[..7]), "{}", summaries[0]);
    assert!(
        summaries[0].contains(&head[..7]),
        "the first run is in the history: {}",
        summaries[0]
    );
    assert_eq!(posts(&h), 1, "the summary was edited, not posted again");
    h.wait("the second review", || {
        (h.fake.posted_reviews().len() >= 2).then_some(())
    })
    .await;
    let reviews = h.fake.posted_reviews();
    assert_eq!(reviews.len(), 2, "{reviews:#?}");
    assert!(
        reviews[0].body.contains("superseded"),
        "{}",
        reviews[0].body
    );
    assert_eq!(reviews[1].commit_id, head2);
}

/// `check_run.requested_action` on Sluice's `sluice/plan` check run of `head`, pressed by
/// `login`.
fn pressed(h: &Harness, identifier: &str, head: &str, login: &str) -> Webhook {
    Webhook::load("check_run.requested_action.json")
        .repo(REPO, &h.origin.url())
        .default_branch("main")
        .set("/check_run/head_sha", head)
        .set("/check_run/external_id", "sluice:plan")
        .set("/check_run/pull_requests/0/number", 1)
        .set("/requested_action/identifier", identifier)
        .user(login)
        .set("/sender/id", crate::fake_github::user_id(login))
        .installation(None)
}

#[tokio::test]
async fn the_apply_button_passes_the_comment_gate_refused_unapproved_and_accepted_after_approval() {
    let backend = StateBackend::start();
    let (h, _, _, head) = planned_pr(&backend).await;
    h.fake.set_permission(REPO, "bob", "write");
    h.fake.set_permission(REPO, "mallory", "read");
    let replies = |h: &Harness| h.fake.bot_comments(REPO, 1).len();
    let before = replies(&h);
    let serial = backend.state("app").map(|s| s["serial"].clone());

    // Unapproved: the apply gate refuses, as it does for the comment.
    let first_press = std::time::Instant::now();
    h.deliver(&pressed(&h, "apply", &head, "bob")).await;
    let refusal = h
        .wait_comment(1, "the apply refusal", |b| {
            b.contains("@bob") || b.contains("approv")
        })
        .await;
    assert!(refusal.to_lowercase().contains("approv"), "{refusal}");
    h.wait_idle(&[1]).await;
    // Nothing was applied: the state is the one applied by hand.
    assert_eq!(backend.state("app").map(|s| s["serial"].clone()), serial);
    assert_eq!(
        h.fake
            .statuses(&head)
            .iter()
            .filter(|(c, s, _)| c == "sluice/apply" && s == "success")
            .count(),
        0
    );

    h.fake.add_review(REPO, 1, "carol", "APPROVED");
    // Read access is not enough, approved or not; a button of another commit is refused.
    h.deliver(&pressed(&h, "apply", &head, "mallory")).await;
    h.deliver(&pressed(&h, "apply", &"1".repeat(40), "bob"))
        .await;
    h.deliver(&pressed(&h, "merge", &head, "bob")).await;
    h.wait_idle(&[1]).await;
    let said = h.fake.bot_comments(REPO, 1);
    let new: Vec<&String> = said[before..].iter().collect();
    assert!(
        new.iter().any(|b| b.contains("mallory")),
        "the read-only presser is told: {new:#?}"
    );
    assert!(
        new.iter().any(|b| b.contains("belongs to commit")),
        "the stale button is refused: {new:#?}"
    );
    assert!(
        new.iter().any(|b| b.contains("unknown action")),
        "an unknown button is refused: {new:#?}"
    );
    let audit = String::from_utf8_lossy(&h.cli(&["audit", "export"]).stdout).into_owned();
    let button_refusals = audit
        .lines()
        .filter(|l| l.contains("command_rejected") && l.contains("check run button"))
        .count();
    assert_eq!(button_refusals, 3, "{audit}");

    // Approved, pressed by a writer: applied.
    h.deliver(&pressed(&h, "apply", &head, "bob")).await;
    h.wait_status(&head, "sluice/apply", "success").await;
    h.wait_idle(&[1]).await;
    // bob's two presses that reached the gate asked GitHub for his permission once: it is
    // cached per (repository, login) for 30 s (`core::review::permission`, where expiry is
    // tested against the clock). Only checked when the presses were that close together.
    let asked = h
        .fake
        .requests_to("GET", "/repos/acme/infra/collaborators/bob/permission")
        .len();
    if first_press.elapsed() < std::time::Duration::from_secs(25) {
        assert_eq!(asked, 1, "bob's permission was read {asked} times");
    } else {
        assert!(asked >= 1, "bob's permission was never read");
    }
    let audit = String::from_utf8_lossy(&h.cli(&["audit", "export"]).stdout).into_owned();
    assert!(
        audit
            .lines()
            .any(|l| l.contains("\"action\":\"apply\"") && l.contains("\"bob\"")),
        "{audit}"
    );
}

/// A plan run of a head the PR has since left — its run finishes after the push — never tops
/// the summary comment nor posts a review: its commit still gets its status, the newer head's
/// run writes the summary, and the late run is listed in that summary's history.
#[tokio::test]
async fn a_run_of_a_head_the_pr_has_left_never_tops_the_summary() {
    use crate::support::null_project;
    let mut h = Harness::new(&[("envs/a/main.tf", &null_project("a", "1"))]).await;
    h.start();
    let old = h.open_pr(1, "change", &[("envs/a/main.tf", &null_project("a", "2"))]);
    let opened = h.pr_event("opened", 1);
    // The push lands before the first head's plan finishes: GitHub already says the newer head.
    let new = h.push(1, "change", &[("envs/a/main.tf", &null_project("a", "3"))]);
    h.deliver(&opened).await;
    h.wait_status(&old, "sluice/plan", "success").await;
    h.deliver(&h.pr_event("synchronize", 1)).await;
    let summary = h
        .wait_plan(1, "the newer head's summary", |t| {
            t.contains(&format!("sluice plan · `{}`", &new[..7]))
        })
        .await;
    assert!(
        summary.contains(&format!("`{}`", &old[..7])),
        "the late run is in the history:\n{summary}"
    );
    let on_top = format!("sluice plan · `{}`", &old[..7]);
    let written: Vec<String> = h
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("/comments") && matches!(r.method.as_str(), "POST" | "PATCH"))
        .filter_map(|r| r.body?.get("body")?.as_str().map(str::to_string))
        .collect();
    assert!(
        written.iter().all(|b| !b.contains(&on_top)),
        "no comment ever had the older head on top: {written:#?}"
    );
    let reviewed: Vec<String> = h
        .fake
        .posted_reviews()
        .into_iter()
        .map(|r| r.commit_id)
        .collect();
    assert!(
        !reviewed.contains(&old),
        "no review of the older head: {reviewed:?}"
    );
}

/// A plan of one project (`plan -p`) keeps the other projects' current plans of the same head
/// in the summary: it still lists every project the PR would apply.
#[tokio::test]
async fn a_plan_of_one_project_keeps_the_others_in_the_summary() {
    use crate::support::null_project;
    let mut h = Harness::new(&[
        ("envs/a/main.tf", &null_project("a", "1")),
        ("envs/b/main.tf", &null_project("b", "1")),
    ])
    .await;
    h.start();
    h.open_and_plan(
        1,
        "both",
        &[
            ("envs/a/main.tf", &null_project("a", "2")),
            ("envs/b/main.tf", &null_project("b", "2")),
        ],
    )
    .await;
    h.wait_plan(1, "the first summary", |t| t.contains("**2 projects"))
        .await;
    h.deliver(&h.comment_event(1, "alice", "sluice plan -p envs/a"))
        .await;
    let summary = h
        .wait_plan(1, "the summary after `plan -p envs/a`", |t| {
            t.contains("Earlier runs (1)")
        })
        .await;
    assert!(
        summary.contains("**2 projects: 2 with changes**"),
        "{summary}"
    );
    assert!(
        summary.contains("| `envs/a` |") && summary.contains("| `envs/b` |"),
        "{summary}"
    );
}
