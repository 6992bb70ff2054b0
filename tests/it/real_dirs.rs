//! Rules keyed on what actually runs, end to end through the real server: a pull request cannot
//! reach a locked or policy-governed directory under another path (a symlink), and a project
//! the base branch does not know is held to the rules of the directory it sits in.

use crate::fake_github::FakePull;
use crate::server::{Harness, REPO};
use crate::support::null_project;

/// Like [`Harness::open_pr`], with symlinks (`link`, `target`) added on the PR's branch.
fn open_pr_with_links(
    h: &Harness,
    n: u64,
    branch: &str,
    files: &[(&str, &str)],
    links: &[(&str, &str)],
) -> String {
    h.origin.checkout("main");
    let base = h.origin.head();
    h.origin.checkout_new(branch);
    for (path, content) in files {
        h.origin.write(path, content);
    }
    for (link, target) in links {
        std::os::unix::fs::symlink(target, h.origin.path().join(link)).expect("symlink");
    }
    let head = h.origin.commit(&format!("change for #{n}"));
    h.origin.set_pull_ref(n, &head);
    h.origin.checkout("main");
    h.fake.add_pull(FakePull {
        head_sha: head.clone(),
        head_ref: branch.to_string(),
        base_sha: base,
        ..FakePull::new(REPO, n)
    });
    head
}

async fn harness(files: &[(&str, &str)]) -> Harness {
    let mut h = Harness::new(files).await;
    h.start();
    h
}

/// The PR's config: one project `sandbox-x` in dir `dir`, with no apply requirements.
fn sandbox_config(dir: &str) -> String {
    format!(
        "version: 1\nprojects:\n  - name: sandbox-x\n    dir: {dir}\n    apply_requirements: []\n"
    )
}

const REFUSAL: &str = "project dir `sandbox-x` goes through the symlink `sandbox-x` → `envs/prod` (it is really `envs/prod`)";

/// The issue's example: while PR #1 holds the `envs/prod` lock, PR #2 adds `sandbox-x ->
/// envs/prod` and a project with `dir: sandbox-x`. The project is refused, naming the link and
/// the real dir — by autoplan and by comments targeting it by name or dir — and no lock other
/// than #1's exists.
#[tokio::test(flavor = "multi_thread")]
async fn a_symlinked_project_dir_cannot_plan_a_locked_dir_under_another_name() {
    let prod = null_project("prod", "1");
    let h = harness(&[("envs/prod/main.tf", &prod)]).await;
    let one = h.open_pr(
        1,
        "one",
        &[("envs/prod/main.tf", &null_project("prod", "2"))],
    );
    h.deliver(&h.pr_event("opened", 1)).await;
    h.wait_status(&one, "sluice/plan", "success").await;
    assert_eq!(
        h.locks().await,
        vec![("envs/prod".to_string(), "default".to_string(), 1)]
    );

    let config = sandbox_config("sandbox-x");
    let two = open_pr_with_links(
        &h,
        2,
        "two",
        &[
            ("sluice.yaml", &config),
            ("envs/prod/main.tf", &null_project("prod", "3")),
        ],
        &[("sandbox-x", "envs/prod")],
    );
    h.deliver(&h.pr_event("opened", 2)).await;
    let refused = h
        .wait_comment(2, "the refusal", |c| c.contains("could not be planned"))
        .await;
    assert!(refused.contains(REFUSAL), "{refused}");
    assert!(refused.contains("write `dir: envs/prod`"), "{refused}");
    // Its configuration no longer lists `envs/prod` (only the refused `sandbox-x`): a removed
    // project, told on the PR, failing the status, taking no lock.
    let removed = h
        .wait_plan(2, "the removed project", |c| {
            c.contains("This pull request removes the project")
        })
        .await;
    assert!(
        removed.contains("the configuration no longer lists `envs/prod`"),
        "{removed}"
    );
    h.wait_status(&two, "sluice/plan", "failure").await;

    for (command, answer) in [
        ("sluice plan -p sandbox-x", "no project named `sandbox-x`"),
        ("sluice plan -d sandbox-x", "no project in dir `sandbox-x`"),
    ] {
        h.deliver(&h.comment_event(2, "alice", command)).await;
        let reply = h.wait_comment(2, command, |c| c.contains(answer)).await;
        assert!(
            reply.contains(REFUSAL),
            "the reply says why the project does not exist:\n{reply}"
        );
    }
    assert_eq!(
        h.locks().await,
        vec![("envs/prod".to_string(), "default".to_string(), 1)],
        "only #1 holds a lock"
    );
    assert_eq!(
        h.count_comments(2, |c| c.contains("Plan:")),
        0,
        "nothing was planned for #2"
    );
}

const TWO_APPROVALS: &str = r#"version: 1
policies:
  - name: prod-needs-two
    scope: { projects: ["envs/prod/**"] }
    approvals: { minimum: 2 }
"#;

/// A policy scoped to `envs/prod/**` cannot be dodged through a symlink (the project is
/// refused, so there is nothing to apply), nor by the PR naming the real dir `sandbox-x` with no
/// requirements: the policy and the base's requirements follow the dir.
#[tokio::test(flavor = "multi_thread")]
async fn a_symlinked_project_dir_cannot_escape_the_policies_of_the_real_dir() {
    let prod = null_project("prod", "1");
    let h = harness(&[
        ("envs/prod/main.tf", &prod),
        ("policies/prod.yaml", TWO_APPROVALS),
    ])
    .await;
    let config = sandbox_config("sandbox-x");
    let head = open_pr_with_links(
        &h,
        1,
        "sneaky",
        &[
            ("sluice.yaml", &config),
            ("envs/prod/main.tf", &null_project("prod", "2")),
        ],
        &[("sandbox-x", "envs/prod")],
    );
    h.deliver(&h.pr_event("opened", 1)).await;
    let refused = h
        .wait_comment(1, "the refusal", |c| c.contains("could not be planned"))
        .await;
    assert!(refused.contains(REFUSAL), "{refused}");
    h.fake.add_review(REPO, 1, "bob", "APPROVED");
    h.deliver(&h.comment_event(1, "alice", "sluice apply -p sandbox-x"))
        .await;
    h.wait_comment(1, "nothing to apply", |c| {
        c.contains("Nothing to apply: this pull request has no saved plans")
    })
    .await;
    assert!(
        h.fake
            .statuses(&head)
            .iter()
            .all(|(c, _, _)| c != "sluice/apply")
    );

    // The PR points its lax project at the real dir: now it plans, and the policy scoped to
    // that dir is in force, whatever the project is called.
    let fixed = h.push(
        1,
        "sneaky",
        &[("sluice.yaml", &sandbox_config("envs/prod"))],
    );
    h.deliver(&h.pr_event("synchronize", 1)).await;
    let plan = h.wait_comment(1, "the plan", |c| c.contains("Plan:")).await;
    assert!(plan.contains("prod-needs-two"), "{plan}");
    h.wait_status(&fixed, "sluice/plan", "success").await;
    h.fake.add_review(REPO, 1, "bob", "APPROVED");
    h.deliver(&h.comment_event(1, "alice", "sluice apply"))
        .await;
    let refusal = h
        .wait_comment(1, "the apply refusal", |c| c.contains("Apply refused"))
        .await;
    assert!(
        refusal.contains("policy `prod-needs-two` failed"),
        "{refusal}"
    );
    // And the base's default requirement holds although the PR's config says `[]`.
    h.fake.add_review(REPO, 1, "bob", "CHANGES_REQUESTED");
    h.deliver(&h.comment_event(1, "alice", "sluice apply"))
        .await;
    let refusal = h
        .wait_comment(1, "the second refusal", |c| {
            c.contains("Apply refused") && c.contains("requirement `approved` failed")
        })
        .await;
    assert!(refusal.contains("sandbox-x"), "{refusal}");
}

const BASE_CONFIG: &str = r#"version: 1
projects:
  - name: prod
    dir: envs/prod
    apply_requirements: [approved, mergeable]
"#;

const NO_NEW_NULL_IN_PROD: &str = r#"version: 1
policies:
  - name: no-new-null-in-prod
    scope: { projects: [prod] }
    rules:
      - deny: [create]
        resource_types: [null_resource]
"#;

/// A project the base branch does not know, in a dir under a configured one, is held to that
/// dir's requirements and to the policies scoped by its name — not to the PR's own config.
#[tokio::test(flavor = "multi_thread")]
async fn a_new_project_inside_a_governed_dir_gets_its_rules() {
    let prod = null_project("prod", "1");
    let h = harness(&[
        ("sluice.yaml", BASE_CONFIG),
        ("envs/prod/main.tf", &prod),
        ("policies/prod.yaml", NO_NEW_NULL_IN_PROD),
    ])
    .await;
    // `prod` itself stays out of the plan (its `when_modified` no longer covers the new dir),
    // so everything below is about `cache` alone.
    let config = "version: 1\nprojects:\n  - name: prod\n    dir: envs/prod\n    autoplan: { when_modified: [\"*.tf\"] }\n  - name: cache\n    dir: envs/prod/cache\n    apply_requirements: []\n";
    let head = h.open_pr(
        1,
        "cache",
        &[
            ("sluice.yaml", config),
            ("envs/prod/cache/main.tf", &null_project("cache", "1")),
        ],
    );
    h.fake
        .update_pull(REPO, 1, |p| p.mergeable_state = Some("blocked".to_string()));
    h.deliver(&h.pr_event("opened", 1)).await;
    let plan = h.wait_plan(1, "the plan", |c| c.contains("Plan:")).await;
    assert!(
        plan.contains("### `cache`") && !plan.contains("### `prod`"),
        "{plan}"
    );
    assert!(plan.contains("no-new-null-in-prod"), "{plan}");
    h.wait_status(&head, "sluice/policy", "failure").await;
    h.fake.add_review(REPO, 1, "bob", "APPROVED");
    h.deliver(&h.comment_event(1, "alice", "sluice apply -p cache"))
        .await;
    let refusal = h
        .wait_comment(1, "the refusal", |c| c.contains("Apply refused"))
        .await;
    assert!(
        refusal.contains("requirement `mergeable` failed"),
        "the base's requirements for envs/prod bind envs/prod/cache:\n{refusal}"
    );
    assert!(
        refusal.contains("policy `no-new-null-in-prod` failed"),
        "{refusal}"
    );
}

/// Credentials follow the base branch's names for the dir, never the name a PR gives a project:
/// the production project renamed in the PR still gets its credential; a sandbox project named
/// like a production one does not. (Through `sluice preview`, which runs the same job code.)
#[test]
fn credentials_follow_the_base_branchs_names_not_the_prs() {
    use crate::support::{DataDir, NULL_PROVIDER, Run, TestRepo, sluice, tool_env, tools, unique};
    let tools = tools();
    let secret = unique("cred");
    let data = DataDir::scratch("cred-data");
    let config = data.path().join("sluice.toml");
    std::fs::write(
        &config,
        format!(
            "[[credentials]]\nprojects = [\"prod-*\"]\nenv = {{ TF_VAR_token = \"{secret}\" }}\n"
        ),
    )
    .expect("write config");
    let main_tf = |trigger: &str| {
        format!(
            "{NULL_PROVIDER}\nvariable \"token\" {{\n  default = \"absent\"\n}}\nresource \"null_resource\" \"r\" {{\n  triggers = {{ token = var.token, t = \"{trigger}\" }}\n}}\n"
        )
    };
    let repo = TestRepo::new();
    repo.write(
        "sluice.yaml",
        "version: 1\nprojects:\n  - name: prod-net\n    dir: envs/prod\n",
    );
    repo.write("envs/prod/main.tf", &main_tf("1"));
    repo.commit("base");
    repo.write(
        "sluice.yaml",
        "version: 1\nprojects:\n  - name: net\n    dir: envs/prod\n  - name: prod-evil\n    dir: sandbox\n",
    );
    repo.write("envs/prod/main.tf", &main_tf("2"));
    repo.write("sandbox/main.tf", &main_tf("1"));
    repo.commit("the pull request");

    let mut env = tool_env(&tools, data.path());
    env.insert("SLUICE_CONFIG".into(), config.display().to_string());
    let path = repo.path().display().to_string();
    let run = Run::from_output(&sluice(
        &["preview", "--base", "HEAD~1", &path],
        &env,
        repo.path(),
    ));
    run.expect_code(0);
    assert!(!run.stdout.contains(&secret), "{}", run.stdout);
    let section = |name: &str| {
        run.stdout
            .split("### ")
            .find(|s| s.starts_with(&format!("`{name}`")))
            .unwrap_or_else(|| panic!("no section for {name}:\n{}", run.stdout))
            .to_string()
    };
    let prod = section("net");
    assert!(
        prod.contains("\"token\" = \"***\""),
        "the renamed production project gets its credential (redacted in output):\n{prod}"
    );
    let sandbox = section("prod-evil");
    assert!(
        sandbox.contains("\"token\" = \"absent\""),
        "a sandbox project named like a production one gets no credential:\n{sandbox}"
    );
}
