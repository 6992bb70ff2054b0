//! Custom workflows carried out and the server's repo rules enforced (PRODUCT.md §19), through
//! the real binary: `sluice serve` against the fake GitHub for the PR comment, `sluice preview`
//! (the same runner and report code) for the rest. Real terraform, real bubblewrap sandbox.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::server::Harness;
use crate::support::{
    DataDir, NULL_PROVIDER, Run, TestRepo, processes_matching, sluice, tool_env, tools, unique,
    wait_until,
};

/// A project whose plan shows `var.flavour` (set by a `-var-file`, so `extra_args` is seen).
fn flavoured_project() -> String {
    format!(
        "{NULL_PROVIDER}\nvariable \"flavour\" {{\n  default = \"plain\"\n}}\n\
         resource \"null_resource\" \"r\" {{\n  triggers = {{ flavour = var.flavour }}\n}}\n"
    )
}

/// A repository whose base has only a README and whose head (the PR) adds `files`.
fn pr_with(files: &[(&str, &str)]) -> TestRepo {
    let repo = TestRepo::new();
    repo.write("README.md", "infrastructure\n");
    repo.commit("base");
    for (p, c) in files {
        repo.write(p, c);
    }
    repo.commit("the pull request");
    repo
}

/// `sluice preview` of `repo` (head against its parent) with `extra` settings.
fn preview(repo: &TestRepo, data: &std::path::Path, extra: &[(&str, &str)]) -> Run {
    let tools = tools();
    let mut env: BTreeMap<String, String> = tool_env(&tools, data);
    for (k, v) in extra {
        env.insert((*k).to_string(), (*v).to_string());
    }
    let path = repo.path().display().to_string();
    Run::from_output(&sluice(
        &["preview", "--base", "HEAD~1", &path],
        &env,
        repo.path(),
    ))
}

const CHECKED_WORKFLOW: &str = r#"version: 3
projects:
- name: app
  dir: envs/a
  workflow: checked
workflows:
  checked:
    plan:
      steps:
      - run: sh ../../scripts/check.sh
      - init
      - plan:
          extra_args: [-var-file=prod.tfvars]
"#;

const CHECK_SCRIPT: &str = r#"echo "check ran for project=$PROJECT_NAME workspace=$WORKSPACE dir=$REPO_REL_DIR pull=$PULL_NUM"
terraform version | head -n 1 | sed 's/^/engine on PATH: /'
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_run_step_of_a_custom_workflow_is_posted_on_the_pr_plan_comment() {
    let mut h = Harness::new(&[("README.md", "infrastructure\n")]).await;
    h.start();
    let main_tf = flavoured_project();
    h.open_pr(
        1,
        "custom-workflow",
        &[
            ("atlantis.yaml", CHECKED_WORKFLOW),
            ("scripts/check.sh", CHECK_SCRIPT),
            ("envs/a/main.tf", &main_tf),
            ("envs/a/prod.tfvars", "flavour = \"from-the-var-file\"\n"),
        ],
    );
    h.deliver(&h.pr_event("opened", 1)).await;
    let comment = h
        .wait_comment(1, "the plan comment", |c| c.contains("Plan:"))
        .await;
    for expected in [
        "Workflow `checked`",
        "check ran for project=app workspace=default dir=envs/a pull=1",
        "engine on PATH: Terraform v",
        // `extra_args` reached terraform: the var file's value is in the plan.
        "from-the-var-file",
    ] {
        assert!(comment.contains(expected), "no {expected:?} in:\n{comment}");
    }
}

/// Every one of Atlantis' documented step variables, one per line, as a `run` step echoes them.
const ECHO_ALL: &str = r#"for v in BASE_BRANCH_NAME BASE_REPO_NAME BASE_REPO_OWNER COMMENT_ARGS DIR HEAD_BRANCH_NAME HEAD_COMMIT HEAD_REPO_NAME HEAD_REPO_OWNER PLANFILE POLICYCHECKFILE PROJECT_NAME PULL_AUTHOR PULL_NUM PULL_URL REPO_REL_DIR SHOWFILE USER_NAME WORKSPACE ATLANTIS_TERRAFORM_VERSION ATLANTIS_TERRAFORM_DISTRIBUTION ATLANTIS_PR_APPROVED ATLANTIS_PR_MERGEABLE; do eval "printf '%s=[%s]\n' $v \"\$$v\""; done
test -e /tmp/injected && echo INJECTED || echo no-injection
"#;

/// A `run` step sees every variable Atlantis documents, filled from the pull request (head
/// branch, URL and author as GitHub reports them). The head branch is the PR author's text: named
/// `$(touch${IFS}/tmp/injected)`, it reaches the step as data — printed literally, never run.
#[tokio::test(flavor = "multi_thread")]
async fn run_steps_get_every_step_variable_from_the_pull_request_as_data() {
    let mut h = Harness::new(&[("README.md", "infrastructure\n")]).await;
    h.start();
    let config = "version: 3\nprojects:\n- name: app\n  dir: envs/a\n  workflow: vars\n\
                  workflows:\n  vars:\n    plan:\n      steps:\n      - run: sh ../../scripts/vars.sh\n      \
                  - init\n      - plan\n";
    let main_tf = flavoured_project();
    let head = h.open_pr(
        1,
        "feature",
        &[
            ("atlantis.yaml", config),
            ("scripts/vars.sh", ECHO_ALL),
            ("envs/a/main.tf", &main_tf),
        ],
    );
    let branch = "$(touch${IFS}/tmp/injected)";
    h.fake.update_pull("acme/infra", 1, |p| {
        p.head_ref = branch.to_string();
        p.author = "octo-author".to_string();
    });
    h.deliver(&h.pr_event("opened", 1)).await;
    let comment = h
        .wait_comment(1, "the plan comment", |c| c.contains("Plan:"))
        .await;
    let expected = [
        "BASE_BRANCH_NAME=[main]".to_string(),
        "BASE_REPO_NAME=[infra]".to_string(),
        "BASE_REPO_OWNER=[acme]".to_string(),
        "COMMENT_ARGS=[]".to_string(),
        format!("HEAD_BRANCH_NAME=[{branch}]"),
        format!("HEAD_COMMIT=[{head}]"),
        "HEAD_REPO_NAME=[infra]".to_string(),
        "HEAD_REPO_OWNER=[acme]".to_string(),
        "PROJECT_NAME=[app]".to_string(),
        "PULL_AUTHOR=[octo-author]".to_string(),
        "PULL_NUM=[1]".to_string(),
        "PULL_URL=[https://github.com/acme/infra/pull/1]".to_string(),
        "REPO_REL_DIR=[envs/a]".to_string(),
        "WORKSPACE=[default]".to_string(),
        "ATLANTIS_TERRAFORM_VERSION=[1.0.3]".to_string(),
        "ATLANTIS_TERRAFORM_DISTRIBUTION=[terraform]".to_string(),
        // Nobody approved it yet; the fake says GitHub can merge it.
        "ATLANTIS_PR_APPROVED=[false]".to_string(),
        "ATLANTIS_PR_MERGEABLE=[true]".to_string(),
        "no-injection".to_string(),
    ];
    for e in &expected {
        assert!(comment.contains(e.as_str()), "no {e:?} in:\n{comment}");
    }
    // Paths inside the sandbox, and who asked (autoplan: the bot itself, as in Atlantis).
    for name in [
        "DIR",
        "PLANFILE",
        "SHOWFILE",
        "POLICYCHECKFILE",
        "USER_NAME",
    ] {
        let line = comment
            .lines()
            .find(|l| l.starts_with(&format!("{name}=[")))
            .unwrap_or_else(|| panic!("no {name} in:\n{comment}"));
        assert!(!line.ends_with("=[]"), "{name} is empty in:\n{comment}");
    }
}

#[test]
fn run_steps_cannot_read_the_servers_files_or_environment() {
    let data = DataDir::scratch("wf-server-data");
    let secret = unique("s3cr3t");
    std::fs::write(data.path().join("secret.txt"), &secret).expect("write the secret");
    let steal = format!(
        "version: 3\nprojects:\n- dir: envs/a\n  workflow: steal\nworkflows:\n  steal:\n    plan:\n      steps:\n      \
         - run: 'echo \"file=[$(cat {}/secret.txt 2>&1)]\"; echo \"env=[$SLUICE_TEST_SECRET]\"; \
         for p in /proc/[0-9]*; do tr \"\\0\" \"\\n\" < $p/environ 2>/dev/null; done | grep SLUICE_TEST_SECRET || echo no-process-env'\n      \
         - init\n      - plan\n",
        data.path().display()
    );
    let main_tf = flavoured_project();
    let repo = pr_with(&[("atlantis.yaml", &steal), ("envs/a/main.tf", &main_tf)]);
    let run_as = |profile: &str| {
        preview(
            &repo,
            data.path(),
            &[
                ("SLUICE_RUNNER__PROFILE", profile),
                ("SLUICE_TEST_SECRET", &secret),
            ],
        )
    };
    let sandboxed = run_as("bwrap");
    sandboxed.expect_code(0);
    let out = &sandboxed.stdout;
    assert!(out.contains("file=[cat: "), "the step ran:\n{out}");
    assert!(out.contains("env=[]"), "{out}");
    assert!(out.contains("no-process-env"), "{out}");
    assert!(
        !out.contains(&secret),
        "the server's secret reached the comment:\n{out}"
    );

    // The same step without the sandbox reads the file: the attack is real.
    let plain = run_as("plain");
    plain.expect_code(0);
    assert!(
        plain.stdout.contains(&format!("file=[{secret}]")),
        "without the sandbox the attack must work, or this test proves nothing:\n{}",
        plain.stdout
    );
}

#[test]
fn a_step_that_never_ends_is_stopped_with_its_whole_sandbox_at_the_timeout() {
    let data = DataDir::scratch("wf-timeout");
    // Unique durations name the step's processes on this host.
    let forever = 900_000 + u64::from(std::process::id() % 90_000);
    let hang = format!(
        "version: 3\nprojects:\n- dir: envs/a\n  workflow: hang\nworkflows:\n  hang:\n    plan:\n      steps:\n      \
         - run: 'sleep {} & echo started; sleep {forever}'\n      - init\n      - plan\n",
        forever + 1
    );
    let main_tf = flavoured_project();
    let repo = pr_with(&[("atlantis.yaml", &hang), ("envs/a/main.tf", &main_tf)]);
    let started = Instant::now();
    let run = preview(&repo, data.path(), &[("SLUICE_RUNNER__TIMEOUT_SECS", "3")]);
    run.expect_code(1);
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "stopped at the timeout"
    );
    assert!(
        run.stdout.contains("ran past its timeout and was stopped")
            && run.stdout.contains("Step 1 of workflow `hang` failed"),
        "{}",
        run.stdout
    );
    // Its background child died with the sandbox.
    let pattern = format!("sleep {}", forever + 1);
    assert!(
        wait_until(Duration::from_secs(10), || processes_matching(&pattern)
            .is_empty()),
        "left running: {:?}",
        processes_matching(&pattern)
    );
}

#[test]
fn a_workflow_that_exists_nowhere_is_refused() {
    let data = DataDir::scratch("wf-unknown");
    let config = "version: 3\nprojects:\n- dir: envs/a\n  workflow: nosuch\n";
    let main_tf = flavoured_project();
    let repo = pr_with(&[("atlantis.yaml", config), ("envs/a/main.tf", &main_tf)]);
    let run = preview(&repo, data.path(), &[]);
    run.expect_code(1);
    let all = format!("{}\n{}", run.stdout, run.stderr);
    assert!(
        all.contains("atlantis.yaml:4:13")
            && all.contains("workflow `nosuch` is not defined anywhere"),
        "{all}"
    );
}

/// Writes `text` as the server's `repos.yaml` in `dir`; returns its path.
fn repos_yaml(dir: &std::path::Path, text: &str) -> String {
    let path = dir.join("repos.yaml");
    std::fs::write(&path, text).expect("write repos.yaml");
    path.display().to_string()
}

#[test]
fn server_rules_refuse_a_repository_defining_a_workflow_and_a_key_not_allowed() {
    let data = DataDir::scratch("wf-rules");
    let rules = repos_yaml(
        data.path(),
        "repos:\n- id: /.*/\n  allowed_overrides: [workflow]\n  allow_custom_workflows: false\n",
    );
    let main_tf = flavoured_project();

    // A workflow defined in the repository, with `allow_custom_workflows` left false.
    let repo = pr_with(&[
        ("atlantis.yaml", CHECKED_WORKFLOW),
        ("scripts/check.sh", CHECK_SCRIPT),
        ("envs/a/main.tf", &main_tf),
    ]);
    let run = preview(&repo, data.path(), &[("SLUICE_REPO_RULES", &rules)]);
    run.expect_code(1);
    let all = format!("{}\n{}", run.stdout, run.stderr);
    assert!(
        all.contains("this repository may not define workflows")
            && all.contains("repos.yaml:2:3 (id /.*/)"),
        "the refusal names the rule:\n{all}"
    );
    assert!(!all.contains("check ran"), "nothing ran:\n{all}");

    // `apply_requirements` is not in `allowed_overrides`.
    let config = "version: 3\nprojects:\n- dir: envs/a\n  apply_requirements: []\n";
    let repo = pr_with(&[("atlantis.yaml", config), ("envs/a/main.tf", &main_tf)]);
    let run = preview(&repo, data.path(), &[("SLUICE_REPO_RULES", &rules)]);
    run.expect_code(1);
    let all = format!("{}\n{}", run.stdout, run.stderr);
    assert!(
        all.contains("may not set `apply_requirements`")
            && all.contains("repos.yaml:2:3 (id /.*/)")
            && all.contains("allowed_overrides: [apply_requirements]"),
        "{all}"
    );
}

#[test]
fn a_server_workflow_picked_by_name_runs_and_a_bad_rules_file_stops_the_server() {
    let data = DataDir::scratch("wf-server-workflow");
    let rules = repos_yaml(
        data.path(),
        "repos:\n- id: /.*/\n  allowed_overrides: [workflow]\nworkflows:\n  linted:\n    plan:\n      steps:\n      \
         - run: echo \"server step for $PROJECT_NAME\"\n      - init\n      - plan\n",
    );
    let config = "version: 3\nprojects:\n- name: app\n  dir: envs/a\n  workflow: linted\n";
    let main_tf = flavoured_project();
    let repo = pr_with(&[("atlantis.yaml", config), ("envs/a/main.tf", &main_tf)]);
    let run = preview(&repo, data.path(), &[("SLUICE_REPO_RULES", &rules)]);
    run.expect_code(0);
    assert!(
        run.stdout.contains("server step for app"),
        "{}\n{}",
        run.stdout,
        run.stderr
    );

    // A rules file with an unknown key: a clear start-up error, nothing planned.
    let bad = repos_yaml(
        data.path(),
        "repos:\n- id: /.*/\n  allow_everything: true\n",
    );
    let run = preview(&repo, data.path(), &[("SLUICE_REPO_RULES", &bad)]);
    assert_ne!(run.code, Some(0));
    assert!(
        run.stderr.contains("repo_rules:") && run.stderr.contains("repos.yaml:3:3"),
        "{}",
        run.stderr
    );
}

#[test]
fn env_and_multienv_values_reach_later_steps_and_are_redacted() {
    let data = DataDir::scratch("wf-env");
    let (a, b, c) = (
        unique("static-val"),
        unique("command-val"),
        unique("multi-val"),
    );
    let config = format!(
        r#"version: 3
projects:
- dir: envs/a
  workflow: envs
workflows:
  envs:
    plan:
      steps:
      - env: {{name: TOKEN_A, value: {a}}}
      - env: {{name: TOKEN_B, command: 'echo {b}'}}
      - multienv: 'echo TOKEN_C={c},TF_VAR_flavour=$TOKEN_B'
      - run: 'echo "A=$TOKEN_A B=$TOKEN_B C=$TOKEN_C"; [ "$TOKEN_A" = {a} ] && [ "$TOKEN_B" = {b} ] && [ "$TOKEN_C" = {c} ] && echo all-three-arrived'
      - init
      - plan
      - run: 'echo failing-step-output; exit 3'
      - run: echo never-reached
"#
    );
    let main_tf = flavoured_project();
    let repo = pr_with(&[("atlantis.yaml", &config), ("envs/a/main.tf", &main_tf)]);
    let run = preview(&repo, data.path(), &[]);
    run.expect_code(1);
    let out = format!("{}\n{}", run.stdout, run.stderr);
    assert!(out.contains("all-three-arrived"), "{out}");
    assert!(out.contains("A=*** B=*** C=***"), "{out}");
    assert!(
        out.contains("`multienv` step 3 set `` TOKEN_C ``, `` TF_VAR_flavour ``")
            || out.contains("`multienv` step 3 set ` TOKEN_C `, ` TF_VAR_flavour `"),
        "{out}"
    );
    for secret in [&a, &b, &c] {
        assert!(!out.contains(secret.as_str()), "{secret} is shown:\n{out}");
    }
    // The failing step stops the workflow, with its output.
    assert!(
        out.contains("Step 7 of workflow `envs` failed")
            && out.contains("exited with status 3")
            && out.contains("failing-step-output"),
        "{out}"
    );
    assert!(!out.contains("never-reached"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_custom_apply_stage_runs_in_a_fresh_checkout_with_the_reviewed_plan() {
    let mut h = Harness::new(&[("README.md", "infrastructure\n")]).await;
    h.start();
    let config = r#"version: 3
projects:
- dir: envs/a
  workflow: announced
workflows:
  announced:
    apply:
      steps:
      - run: 'echo "applying in $WORKSPACE"; test -r "$PLANFILE" && echo reviewed-plan-readable; test -e leftover-from-plan || echo fresh-checkout'
      - apply
    plan:
      steps:
      - init
      - run: touch leftover-from-plan
      - plan
"#;
    let main_tf = flavoured_project();
    let head = h.open_pr(
        1,
        "custom-apply",
        &[("atlantis.yaml", config), ("envs/a/main.tf", &main_tf)],
    );
    h.deliver(&h.pr_event("opened", 1)).await;
    h.wait_status(&head, "sluice/plan", "success").await;
    h.fake.add_review(crate::server::REPO, 1, "bob", "APPROVED");
    h.deliver(&h.comment_event(1, "alice", "sluice apply"))
        .await;
    let applied = h
        .wait_comment(1, "the apply comment", |c| {
            c.contains("sluice apply") && (c.contains("Apply complete") || c.contains("failed"))
        })
        .await;
    for expected in [
        "applying in default",
        "reviewed-plan-readable",
        "fresh-checkout",
        "Apply complete",
    ] {
        assert!(applied.contains(expected), "no {expected:?} in:\n{applied}");
    }
}
