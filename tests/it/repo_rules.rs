//! Atlantis' per-branch projects, plan requirements and the server's repo rules, carried out end
//! to end: the real binary, real git and terraform, the fake GitHub.

use crate::server::{Harness, REPO};
use crate::support::null_project;

fn is_plan(c: &str) -> bool {
    c.contains("sluice plan") && c.contains("Plan:")
}

/// A harness whose `main` holds `atlantis` and projects `envs/a` and `envs/rel`, with a
/// `release/1` branch, pull requests into `release/*` trusted, and `env` set.
async fn harness(atlantis: &str, env: &[(&str, &str)]) -> Harness {
    let (a, rel) = (null_project("a", "1"), null_project("rel", "1"));
    let mut h = Harness::new(&[
        ("atlantis.yaml", atlantis),
        ("envs/a/main.tf", &a),
        ("envs/rel/main.tf", &rel),
    ])
    .await;
    h.origin.checkout_new("release/1");
    h.origin.checkout("main");
    h.set_env("SLUICE_BASE_BRANCHES", "release/*");
    for (k, v) in env {
        h.set_env(k, v);
    }
    h.start();
    h
}

const PER_BRANCH: &str = "version: 3\nprojects:\n- name: rel\n  dir: envs/rel\n  branch: /^release\\/.*$/\n- name: app\n  dir: envs/a\n";

#[tokio::test(flavor = "multi_thread")]
async fn a_project_with_a_branch_pattern_exists_only_on_pull_requests_into_matching_branches() {
    let h = harness(PER_BRANCH, &[]).await;

    // Into main: `rel` is not a project there, so changing its files plans nothing…
    let head = h.open_pr(
        1,
        "rel-on-main",
        &[("envs/rel/main.tf", &null_project("rel", "2"))],
    );
    h.deliver(&h.pr_event("opened", 1)).await;
    assert_eq!(
        h.wait_status(&head, "sluice/plan", "success").await,
        "0 projects affected"
    );
    // …and asking for it by name says which branches it exists on.
    h.deliver(&h.comment_event(1, "alice", "sluice plan -p rel"))
        .await;
    let answer = h
        .wait_comment(1, "the answer naming the pattern", |c| {
            c.contains("exists only for pull requests")
        })
        .await;
    assert!(
        answer.contains("`/^release\\/.*$/`") && answer.contains("into `main`"),
        "{answer}"
    );
    assert_eq!(h.count_comments(1, is_plan), 0, "nothing planned on #1");

    // Into release/1: `rel` is planned.
    let head = h.open_pr_into(
        2,
        "release/1",
        "rel-on-release",
        &[("envs/rel/main.tf", &null_project("rel", "3"))],
    );
    h.deliver(&h.pr_event("opened", 2)).await;
    let plan = h.wait_comment(2, "the plan of rel", is_plan).await;
    assert!(plan.contains("rel"), "{plan}");
    assert_eq!(
        h.wait_status(&head, "sluice/plan", "success").await,
        "1/1 project planned"
    );

    // An invalid pattern is a configuration error at its position; nothing is planned.
    let bad = "version: 3\nprojects:\n- dir: envs/a\n  branch: /^(main/\n";
    let head = h.open_pr(
        3,
        "bad-pattern",
        &[
            ("atlantis.yaml", bad),
            ("envs/a/main.tf", &null_project("a", "9")),
        ],
    );
    h.deliver(&h.pr_event("opened", 3)).await;
    h.wait_status(&head, "sluice/plan", "failure").await;
    let rejected = h
        .wait_comment(3, "the configuration error", |c| {
            c.contains("atlantis.yaml:4:11")
        })
        .await;
    assert!(
        rejected.contains("is not a valid regular expression"),
        "{rejected}"
    );
    assert_eq!(h.count_comments(3, is_plan), 0, "nothing planned on #3");
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_requirements_skip_autoplan_until_they_hold_then_plan_runs() {
    let config = "version: 3\nprojects:\n- dir: envs/a\n  plan_requirements: [approved]\n";
    let h = harness(config, &[]).await;
    let head = h.open_pr(
        1,
        "change-a",
        &[("envs/a/main.tf", &null_project("a", "2"))],
    );
    h.deliver(&h.pr_event("opened", 1)).await;
    let skipped = h
        .wait_comment(1, "the skipped autoplan", |c| {
            c.contains("Autoplan skipped")
        })
        .await;
    assert!(
        skipped.contains("`envs/a`") && skipped.contains("requirement `approved` failed"),
        "{skipped}"
    );
    assert_eq!(
        h.wait_status(&head, "sluice/plan", "failure").await,
        "plan requirements not met"
    );
    assert!(
        h.locks().await.is_empty(),
        "nothing planned, nothing locked"
    );

    // A `plan` comment is refused the same way while nobody has approved.
    h.deliver(&h.comment_event(1, "alice", "sluice plan")).await;
    h.wait_comment(1, "the refused plan", |c| c.contains("Plan refused"))
        .await;

    // Approved by someone else: the plan runs.
    h.fake.add_review(REPO, 1, "bob", "APPROVED");
    h.deliver(&h.comment_event(1, "alice", "sluice plan")).await;
    let plan = h.wait_comment(1, "the plan", is_plan).await;
    assert!(plan.contains("envs/a"), "{plan}");
    h.wait_status(&head, "sluice/plan", "success").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn server_rule_requirements_and_branch_are_carried_out() {
    let data = tempfile::tempdir().unwrap();
    let rules = data.path().join("repos.yaml");
    std::fs::write(
        &rules,
        "repos:\n- id: /.*/\n  branch: /^main$/\n  apply_requirements: [approved, mergeable]\n",
    )
    .unwrap();
    // No `apply_requirements` in the repository: the server rule's are the project's.
    let config = "version: 3\nprojects:\n- dir: envs/a\n";
    let h = harness(
        config,
        &[("SLUICE_REPO_RULES", &rules.display().to_string())],
    )
    .await;
    let head = h.open_pr(
        1,
        "change-a",
        &[("envs/a/main.tf", &null_project("a", "2"))],
    );
    h.deliver(&h.pr_event("opened", 1)).await;
    h.wait_status(&head, "sluice/plan", "success").await;
    h.fake.add_review(REPO, 1, "bob", "APPROVED");
    h.fake
        .update_pull(REPO, 1, |p| p.mergeable_state = Some("blocked".into()));
    h.deliver(&h.comment_event(1, "alice", "sluice apply"))
        .await;
    let refusal = h
        .wait_comment(1, "the refusal", |c| c.contains("Apply refused"))
        .await;
    assert!(
        refusal.contains("requirement `mergeable` failed"),
        "{refusal}"
    );
    assert!(!refusal.contains("`approved` failed"), "{refusal}");
    // Mergeable: the same reviewed plan applies.
    h.fake
        .update_pull(REPO, 1, |p| p.mergeable_state = Some("clean".into()));
    h.deliver(&h.comment_event(1, "alice", "sluice apply"))
        .await;
    h.wait_status(&head, "sluice/apply", "success").await;

    // The rule's `branch`: a pull request into another (trusted) base branch is not run.
    h.open_pr_into(
        2,
        "release/1",
        "rel-change",
        &[("envs/a/main.tf", &null_project("a", "3"))],
    );
    h.deliver(&h.pr_event("opened", 2)).await;
    let refused = h
        .wait_comment(2, "the refusal", |c| {
            c.contains("does not run pull requests")
        })
        .await;
    assert!(
        refused.contains("`release/1`")
            && refused.contains("repos.yaml:2:3 (id /.*/)")
            && refused.contains("`/^main$/`"),
        "{refused}"
    );
    assert_eq!(h.count_comments(2, is_plan), 0, "nothing planned on #2");
}

/// `sluice config check` loads per-branch projects and plan requirements (no longer refused)
/// and shows them; a bad pattern is an error at its position.
#[test]
fn config_check_shows_branch_patterns_and_plan_requirements() {
    use crate::support::{Run, scratch_dir, sluice};
    let dir = scratch_dir("rules-check");
    let write = |path: &str, text: &str| {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write("envs/a/main.tf", &null_project("a", "1"));
    write("envs/rel/main.tf", &null_project("rel", "1"));
    write(
        "atlantis.yaml",
        &format!("{PER_BRANCH}  plan_requirements: [approved, mergeable]\n"),
    );
    let path = dir.path().display().to_string();
    let env = std::collections::BTreeMap::new();
    let run = Run::from_output(&sluice(&["config", "check", &path], &env, dir.path()));
    run.expect_code(0);
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(
        all.contains("rel                            dir=envs/rel workspace=default engine=terraform branch=/^release\\/.*$/")
            && all.contains("plan_requirements=[approved,mergeable]"),
        "{all}"
    );
    write(
        "atlantis.yaml",
        "version: 3\nprojects:\n- dir: envs/a\n  branch: /(/\n",
    );
    let run = Run::from_output(&sluice(&["config", "check", &path], &env, dir.path()));
    run.expect_code(1);
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(
        all.contains("atlantis.yaml:4:11: error: `/(/` is not a valid regular expression"),
        "{all}"
    );
}

/// A server rule's apply requirements gate an `on_merge` project's `sluice/apply-gate` too (the
/// requirements the delivery after merge enforces), whether or not any policy is in force.
#[tokio::test(flavor = "multi_thread")]
async fn server_rule_requirements_gate_projects_applied_after_merge() {
    use crate::delivery::approve;
    let data = tempfile::tempdir().unwrap();
    let rules = data.path().join("repos.yaml");
    std::fs::write(
        &rules,
        "repos:\n- id: /.*/\n  apply_requirements: [approved, mergeable]\n",
    )
    .unwrap();
    let a = null_project("a", "1");
    let mut h = Harness::new(&[
        ("sluice.yaml", "version: 1\napply_mode: on_merge\n"),
        ("envs/a/main.tf", &a),
    ])
    .await;
    h.set_env("SLUICE_REPO_RULES", &rules.display().to_string());
    h.start();
    let head = h.open_pr(
        1,
        "change-a",
        &[("envs/a/main.tf", &null_project("a", "2"))],
    );
    h.deliver(&h.pr_event("opened", 1)).await;
    h.wait_status(&head, "sluice/plan", "success").await;
    h.fake
        .update_pull(REPO, 1, |p| p.mergeable_state = Some("dirty".into()));
    h.deliver(&approve(&h, 1, "bob")).await;
    // The latest `sluice/apply-gate` fails, naming the server rule's requirement.
    let gate = h
        .wait("sluice/apply-gate failing on `mergeable`", || {
            h.fake
                .statuses(&head)
                .into_iter()
                .rev()
                .find(|(c, _, _)| c == "sluice/apply-gate")
                .filter(|(_, s, d)| s == "failure" && d.contains("mergeable"))
                .map(|(_, _, d)| d)
        })
        .await;
    assert!(!gate.contains("`approved`"), "approved by bob: {gate}");
}

/// `sluice preview --base BRANCH` picks the projects of that base branch.
#[test]
fn preview_picks_the_projects_of_the_branch_base_names() {
    use crate::support::{Run, TestRepo, scratch_dir, sluice, tool_env, tools};
    let repo = TestRepo::new();
    repo.write("README.md", "infrastructure\n");
    repo.commit("base");
    repo.checkout_new("release/1");
    repo.checkout("main");
    repo.checkout_new("feature");
    repo.write("atlantis.yaml", PER_BRANCH);
    repo.write("envs/a/main.tf", &null_project("a", "1"));
    repo.write("envs/rel/main.tf", &null_project("rel", "1"));
    repo.commit("the pull request");
    let data = scratch_dir("rules-preview");
    let env = tool_env(&tools(), data.path());
    let path = repo.path().display().to_string();
    let run = |base: &str| {
        Run::from_output(&sluice(
            &["preview", "--base", base, "--head", "feature", &path],
            &env,
            repo.path(),
        ))
    };
    let into_main = run("main");
    into_main.expect_code(0);
    let all = format!("{}{}", into_main.stdout, into_main.stderr);
    assert!(all.contains("envs/a") && !all.contains("envs/rel"), "{all}");
    let into_release = run("release/1");
    into_release.expect_code(0);
    let all = format!("{}{}", into_release.stdout, into_release.stderr);
    assert!(all.contains("envs/rel"), "{all}");
}
