//! `sluice preview` end to end: the real binary on real git repositories, planning with real
//! terraform 1.0.3 and the null provider mirror under the default `bwrap` runner — the example
//! repository, every kind of bad input, time-outs, Ctrl-C and concurrent plans.
//!
//! Exit codes: 0 every plan succeeded, 1 a plan failed or the configuration was rejected,
//! 2 a usage error (bad flag, unknown git ref).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::{
    DataDir, KillOnDrop, Mirror, Run, Spawned, TestRepo, Tools, example, fake_provider_project,
    null_project, output_filters, processes_matching, scratch_dir, sluice, sluice_command,
    tool_env, tools, unique, wait_until,
};

/// One preview set-up: the tools, a data dir of its own, and the settings environment.
struct Preview {
    tools: Tools,
    data: DataDir,
    env: BTreeMap<String, String>,
}

impl Preview {
    fn new() -> Preview {
        let tools = tools();
        let data = DataDir::scratch("data");
        let env = tool_env(&tools, data.path());
        Preview { tools, data, env }
    }

    fn env(mut self, key: &str, value: impl Into<String>) -> Preview {
        self.env.insert(key.to_string(), value.into());
        self
    }

    /// `sluice preview ARGS REPO`.
    fn run(&self, repo: &TestRepo, args: &[&str]) -> Run {
        let path = repo.path().display().to_string();
        let mut argv = vec!["preview"];
        argv.extend_from_slice(args);
        argv.push(&path);
        let run = Run::from_output(&sluice(&argv, &self.env, repo.path()));
        self.assert_job_dirs_removed(&run);
        run
    }

    /// `sluice config check REPO`.
    fn check(&self, repo: &TestRepo) -> Run {
        let path = repo.path().display().to_string();
        Run::from_output(&sluice(&["config", "check", &path], &self.env, repo.path()))
    }

    /// Starts `sluice preview ARGS REPO` in the background.
    fn spawn(&self, repo: &TestRepo, args: &[&str]) -> Spawned {
        let path = repo.path().display().to_string();
        let mut argv = vec!["preview"];
        argv.extend_from_slice(args);
        argv.push(&path);
        Spawned::start(sluice_command(&argv, &self.env, repo.path()))
    }

    /// A preview leaves no checkouts, plan files or CLI configs behind.
    #[track_caller]
    fn assert_job_dirs_removed(&self, run: &Run) {
        let jobs = sluice::config::default_jobs_dir(self.data.path());
        let left: Vec<String> = std::fs::read_dir(&jobs)
            .map(|d| {
                d.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            left.is_empty(),
            "job dirs left in {}: {left:?}\n{}",
            jobs.display(),
            run.stderr
        );
    }

    /// Replaces the paths of this set-up and of `repo` with placeholders, for snapshots.
    fn scrub(&self, text: &str, repo: &TestRepo) -> String {
        text.replace(&repo.path().display().to_string(), "[REPO]")
            .replace(&self.data.path().display().to_string(), "[DATA]")
            .replace(&self.tools.mirror.display().to_string(), "[MIRROR]")
    }
}

/// Snapshot with the shared filters (SHAs, plan hashes, durations).
macro_rules! snapshot {
    ($($arg:tt)*) => {
        insta::with_settings!({filters => output_filters()}, {
            insta::assert_snapshot!($($arg)*);
        })
    };
}

/// The example repository as a PR: base `main` = the shipped files, head `pr` = a commit that
/// tags every resource of the shared `modules/naming` with a tier (used by both network
/// projects, not by the database).
fn example_pr() -> TestRepo {
    let repo = TestRepo::new();
    repo.copy_from(&example("demo-infra"));
    repo.commit("Initial infrastructure");
    repo.checkout_new("pr");
    let naming = repo.path().join("modules/naming/main.tf");
    let text = std::fs::read_to_string(&naming).expect("read naming module");
    let edited = text.replacen(
        "owner = \"platform-team\"",
        "owner = \"platform-team\"\n    tier  = \"gold\"",
        1,
    );
    assert_ne!(
        text, edited,
        "the example's naming module changed; update this test"
    );
    repo.write("modules/naming/main.tf", &edited);
    repo.commit("naming: tag every resource with its tier");
    repo
}

/// The `### project` sections of a markdown comment, in order.
fn planned_sections(comment: &str) -> Vec<&str> {
    comment
        .lines()
        .filter_map(|l| l.strip_prefix("### `"))
        .filter_map(|l| l.split('`').next())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The example repository

#[test]
fn module_change_plans_exactly_the_projects_using_the_module() {
    let p = Preview::new();
    let repo = example_pr();
    let run = p.run(&repo, &["--base", "main", "--head", "pr"]);
    run.expect_code(0);
    let comment = &run.stdout;
    assert_eq!(
        planned_sections(comment),
        ["envs/prod/network", "envs/staging/network"],
        "the database does not use the module:\n{comment}"
    );
    assert_eq!(
        comment
            .matches("**Plan: 4 to add, 0 to change, 0 to destroy.**")
            .count(),
        2,
        "{comment}"
    );
    assert!(
        comment.contains("| Project | Dir | Workspace | Result |"),
        "summary table:\n{comment}"
    );
    assert!(
        run.stderr.contains("with sandbox (bubblewrap sandbox"),
        "{}",
        run.stderr
    );
    snapshot!("example_pr_markdown", p.scrub(comment, &repo));
}

#[test]
fn terminal_format_renders_plain_text() {
    let p = Preview::new();
    let repo = example_pr();
    let run = p.run(
        &repo,
        &["--base", "main", "--head", "pr", "--format", "terminal"],
    );
    run.expect_code(0);
    let text = &run.stdout;
    for markdown in ["<details>", "```", "**", "| Project |", "\u{1b}["] {
        assert!(
            !text.contains(markdown),
            "{markdown:?} in terminal output:\n{text}"
        );
    }
    assert!(text.contains("== envs/prod/network"), "{text}");
    assert!(text.contains("== envs/staging/network"), "{text}");
    assert!(!text.contains("envs/prod/database"), "{text}");
    snapshot!("example_pr_terminal", p.scrub(text, &repo));
}

#[test]
fn all_flag_plans_every_project() {
    let p = Preview::new();
    let repo = example_pr();
    let run = p.run(&repo, &["--base", "main", "--head", "pr", "--all"]);
    run.expect_code(0);
    let comment = &run.stdout;
    assert_eq!(
        planned_sections(comment),
        [
            "envs/prod/database",
            "envs/prod/network",
            "envs/staging/network"
        ],
        "{comment}"
    );
    assert!(
        comment.contains("**Plan: 1 to add, 0 to change, 0 to destroy.**"),
        "{comment}"
    );
    // The database's password is a sensitive variable: planned, never shown.
    assert!(
        !comment.contains("change-me-in-a-secret-store"),
        "a sensitive value reached the comment:\n{comment}"
    );
}

#[test]
fn one_job_at_a_time_gives_the_same_comment() {
    let p = Preview::new();
    let repo = example_pr();
    let parallel = p.run(&repo, &["--base", "main", "--head", "pr", "--jobs", "2"]);
    let sequential = p.run(&repo, &["--base", "main", "--head", "pr", "--jobs", "1"]);
    parallel.expect_code(0);
    sequential.expect_code(0);
    // Plan files embed a timestamp, so only their hashes may differ.
    let hashless = |s: &str| {
        s.lines()
            .filter(|l| !l.contains("Plan file SHA-256"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(hashless(&sequential.stdout), hashless(&parallel.stdout));
    // One job at a time, the progress lines come in project order.
    snapshot!(
        p.scrub(&sequential.stderr, &repo),
        @r"
    sluice: 1 changed file(s) between [BASE] and [HEAD]; 2 project(s) to plan with sandbox (bubblewrap sandbox: private namespaces, only the job dir writable)
    sluice: planning envs/prod/network (envs/prod/network, workspace default)
    sluice: ✓ envs/prod/network: Plan: 4 to add, 0 to change, 0 to destroy. ([TIME])
    sluice: planning envs/staging/network (envs/staging/network, workspace default)
    sluice: ✓ envs/staging/network: Plan: 4 to add, 0 to change, 0 to destroy. ([TIME])
    "
    );
}

// ---------------------------------------------------------------------------------------------
// Bad repository configuration

/// A repository whose base commit has project `a`, and whose head adds `sluice.yaml` = `config`
/// (plus whatever `extra` writes) and touches `a`.
fn repo_with_config(config: &str, extra: impl FnOnce(&TestRepo)) -> TestRepo {
    let repo = TestRepo::new();
    repo.write("a/main.tf", &null_project("a", "1"));
    repo.commit("base");
    repo.write("a/main.tf", &null_project("a", "2"));
    repo.write("sluice.yaml", config);
    extra(&repo);
    repo.commit("head");
    repo
}

#[test]
fn unknown_config_key_is_rejected_by_check_and_by_preview() {
    let p = Preview::new();
    let repo = repo_with_config(
        "version: 1\nprojects:\n  - name: app\n    dir: a\n    workspaces: [prod]\n",
        |_| {},
    );
    let check = p.check(&repo);
    check.expect_code(1);
    snapshot!(check.stderr, @"
    sluice.yaml:5:5: error: unknown key `workspaces` in project
      hint: did you mean `workspace`? valid keys here: name, dir, workspace, terraform_version, engine, autoplan, apply_requirements, depends_on, env, workflow, drift, apply_mode
    sluice.yaml: no projects until the errors are fixed
    1 error(s)
    ");

    let run = p.run(&repo, &["--base", "HEAD~1"]);
    run.expect_code(1);
    assert!(run.stdout.is_empty(), "nothing is planned:\n{}", run.stdout);
    snapshot!(run.stderr, @"
    sluice.yaml:5:5: error: unknown key `workspaces` in project
      hint: did you mean `workspace`? valid keys here: name, dir, workspace, terraform_version, engine, autoplan, apply_requirements, depends_on, env, workflow, drift, apply_mode
    sluice: the repository configuration has errors; nothing was planned
    ");
}

#[test]
fn invalid_yaml_is_rejected_by_check_and_by_preview() {
    let p = Preview::new();
    let repo = repo_with_config(
        "version: 1\nprojects:\n  - dir: a\n   name: [oops\n",
        |_| {},
    );
    let check = p.check(&repo);
    check.expect_code(1);
    let diagnostic = check
        .stderr
        .lines()
        .next()
        .expect("a diagnostic")
        .to_string();
    assert!(
        diagnostic.starts_with("sluice.yaml:4:") && diagnostic.contains("invalid YAML"),
        "{}",
        check.stderr
    );
    assert!(check.stderr.contains("hint:"), "{}", check.stderr);

    let run = p.run(&repo, &["--base", "HEAD~1"]);
    run.expect_code(1);
    assert!(run.stdout.is_empty(), "nothing is planned:\n{}", run.stdout);
    assert!(
        run.stderr.contains(&diagnostic),
        "preview shows the same diagnostic as config check:\n{}",
        run.stderr
    );
    assert!(run.stderr.contains("nothing was planned"), "{}", run.stderr);
}

#[test]
fn project_dir_with_dot_dot_is_refused_naming_the_project() {
    let p = Preview::new();
    let repo = repo_with_config(
        "version: 1\nprojects:\n  - name: a\n    dir: a\n  - name: sneaky\n    dir: ../outside\n",
        |_| {},
    );
    let expected = "sluice.yaml:6:10: error: project `sneaky`: dir `../outside` leaves the repository (`..` is not allowed)";
    let check = p.check(&repo);
    check.expect_code(1);
    assert!(check.stderr.contains(expected), "{}", check.stderr);
    let run = p.run(&repo, &["--base", "HEAD~1"]);
    run.expect_code(1);
    assert!(run.stderr.contains(expected), "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
}

#[test]
fn absolute_project_dir_is_refused_naming_the_project() {
    let p = Preview::new();
    let repo = repo_with_config(
        "version: 1\nprojects:\n  - name: a\n    dir: a\n  - name: etc\n    dir: /etc\n",
        |_| {},
    );
    let check = p.check(&repo);
    check.expect_code(1);
    snapshot!(check.stderr.lines().take(2).collect::<Vec<_>>().join("\n"), @r"
    sluice.yaml:6:10: error: project `etc`: dir `/etc` is absolute
      hint: dirs are relative to the repository root: write `etc`
    ");
    let run = p.run(&repo, &["--base", "HEAD~1"]);
    run.expect_code(1);
    assert!(
        run.stderr
            .contains("error: project `etc`: dir `/etc` is absolute"),
        "{}",
        run.stderr
    );
}

#[test]
fn symlinked_project_dir_leaving_the_repo_is_refused_naming_the_project() {
    let p = Preview::new();
    // Terraform code outside the repository that the symlink would make Sluice plan.
    let outside = scratch_dir("outside");
    std::fs::write(
        outside.path().join("main.tf"),
        null_project("outside_the_repo", "x"),
    )
    .expect("write");
    let repo = repo_with_config(
        "version: 1\nprojects:\n  - name: a\n    dir: a\n  - name: linked\n    dir: linked\n",
        |repo| {
            std::os::unix::fs::symlink(outside.path(), repo.path().join("linked"))
                .expect("symlink");
        },
    );
    let check = p.check(&repo);
    check.expect_code(1);
    let expected = format!(
        "sluice.yaml:6:10: error: project `linked`: symlink escaping the repository: project dir `linked` goes through the symlink `linked` → `{}`; the project is skipped",
        outside.path().display()
    );
    assert!(check.stderr.contains(&expected), "{}", check.stderr);

    let run = p.run(&repo, &["--base", "HEAD~1"]);
    run.expect_code(1);
    assert!(run.stderr.contains(&expected), "{}", run.stderr);
    // The healthy project still plans; nothing outside the repository does.
    assert_eq!(planned_sections(&run.stdout), ["a"], "{}", run.stdout);
    assert!(!run.stdout.contains("outside_the_repo"), "{}", run.stdout);
}

#[test]
fn dir_glob_matching_nothing_is_an_error_but_other_projects_plan() {
    let p = Preview::new();
    let repo = repo_with_config(
        "version: 1\nprojects:\n  - name: a\n    dir: a\n  - dir: services/*\n",
        |_| {},
    );
    let expected = "sluice.yaml:5:10: error: dir glob `services/*` of the project at line 5 matches no directory with .tf or .tofu files";
    let check = p.check(&repo);
    check.expect_code(1);
    assert!(check.stderr.contains(expected), "{}", check.stderr);

    let run = p.run(&repo, &["--base", "HEAD~1"]);
    run.expect_code(1);
    assert!(run.stderr.contains(expected), "{}", run.stderr);
    assert!(
        run.stderr.contains("see `sluice config check`"),
        "{}",
        run.stderr
    );
    assert_eq!(planned_sections(&run.stdout), ["a"], "{}", run.stdout);
    assert!(
        run.stdout
            .contains("**Plan: 1 to add, 0 to change, 0 to destroy.**"),
        "{}",
        run.stdout
    );
}

#[test]
fn module_cycle_is_reported_and_detection_terminates() {
    let p = Preview::new();
    let repo = TestRepo::new();
    let module = |other: &str| format!("module \"{other}\" {{\n  source = \"../{other}\"\n}}\n");
    repo.write("m1/main.tf", &module("m2"));
    repo.write("m2/main.tf", &module("m1"));
    repo.write("app/main.tf", &module("m1"));
    repo.commit("base");
    repo.write("m2/main.tf", &format!("{}\n# touched\n", module("m1")));
    repo.commit("touch a module of the cycle");

    let check = p.check(&repo);
    check.expect_code(1);
    assert!(
        check
            .stderr
            .contains("error: module cycle: `m1` → `m2` → `m1`"),
        "{}",
        check.stderr
    );

    let spawned = p.spawn(&repo, &["--base", "HEAD~1"]);
    let (run, _) = spawned.wait(Duration::from_secs(120));
    run.expect_code(1);
    assert!(
        run.stderr
            .contains("error: module cycle: `m1` → `m2` → `m1`"),
        "{}",
        run.stderr
    );
    // The module change reaches `app` through the cycle; terraform refuses it at init.
    assert_eq!(planned_sections(&run.stdout), ["app"], "{}", run.stdout);
    assert!(
        run.stdout.contains("**Plan failed** during `init`"),
        "{}",
        run.stdout
    );
}

// ---------------------------------------------------------------------------------------------
// Broken tools and failing terraform

/// A repository whose head changes project `a` to `main_tf` (plus `extra` files).
fn repo_changing_a(main_tf: &str, extra: &[(&str, &str)]) -> TestRepo {
    let repo = TestRepo::new();
    repo.write("a/main.tf", &null_project("a", "1"));
    repo.commit("base");
    repo.write("a/main.tf", main_tf);
    for (path, text) in extra {
        repo.write(path, text);
    }
    repo.commit("head");
    repo
}

#[test]
fn missing_terraform_binary_is_reported_in_the_comment() {
    let p = Preview::new().env("SLUICE_TERRAFORM_BIN", "/nonexistent/terraform");
    let repo = repo_changing_a(&null_project("a", "2"), &[]);
    let run = p.run(&repo, &["--base", "HEAD~1"]);
    run.expect_code(1);
    snapshot!(run.stdout, @r"
    **sluice plan** for commit `[SHORT_SHA]`

    ### `a` · dir `a` · workspace `default`

    **Plan failed** while reading the project configuration:

    ```
    terraform binary unavailable: <engines>/terraform does not exist: No such file or directory (os error 2)
    ```

    * :repeat: Fix the problem, then plan again: `sluice plan -p a`

    ---

    * :put_litter_in_its_place: To **delete** all plans and locks from this pull request, comment: `sluice unlock`
    ");
}

#[test]
fn terraform_binary_without_execute_permission_is_reported_in_the_comment() {
    let bin_dir = scratch_dir("bin");
    let fake = bin_dir.path().join("terraform");
    std::fs::write(&fake, "#!/bin/sh\necho not really terraform\n").expect("write");
    let p = Preview::new().env("SLUICE_TERRAFORM_BIN", fake.display().to_string());
    let repo = repo_changing_a(&null_project("a", "2"), &[]);
    let run = p.run(&repo, &["--base", "HEAD~1"]);
    run.expect_code(1);
    // Named as the server would name it on a PR: without its host path.
    let expected =
        "terraform binary unavailable: <engines>/terraform is not executable (chmod +x it)";
    assert!(run.stdout.contains(expected), "{}", run.stdout);
    assert!(
        !run.stdout.contains(&fake.display().to_string()),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("**Plan failed**"), "{}", run.stdout);
}

#[test]
fn init_failure_shows_terraforms_error_in_the_comment() {
    let p = Preview::new();
    let aws = "terraform {\n  required_providers {\n    aws = {\n      source = \"hashicorp/aws\"\n    }\n  }\n}\n";
    let repo = repo_changing_a(aws, &[]);
    let run = p.run(&repo, &["--base", "HEAD~1"]);
    run.expect_code(1);
    let comment = &run.stdout;
    for expected in [
        "**Plan failed** during `init`",
        "`terraform init` exited with status 1.",
        "Error: Failed to query available provider packages",
        "provider registry.terraform.io/hashicorp/aws was not found",
        "/sluice/providers",
    ] {
        assert!(
            comment.contains(expected),
            "{expected:?} missing:\n{comment}"
        );
    }
    // The run sees the mirror at its sandbox path; the host's layout is not revealed.
    assert!(
        !comment.contains(&p.tools.mirror.display().to_string()),
        "{comment}"
    );
}

/// What preview prints as "would post" names no host path, as the server's comments do not:
/// under the plain runner terraform's own errors name the job dir and the mirror on the host.
#[test]
fn what_preview_would_post_names_no_host_path() {
    let p = Preview::new().env("SLUICE_RUNNER__PROFILE", "plain");
    let tf = format!(
        "{}\nlocals {{\n  x = file(\"${{path.cwd}}/missing.txt\")\n}}\n",
        null_project("a", "1")
    );
    let repo = repo_changing_a(&tf, &[]);
    for format in ["markdown", "terminal"] {
        let run = p.run(&repo, &["--base", "HEAD~1", "--format", format]);
        run.expect_code(1);
        let out = &run.stdout;
        assert!(out.contains("<job>/repo/a/missing.txt"), "{out}");
        let jobs = sluice::config::default_jobs_dir(p.data.path());
        for host in [
            jobs.display().to_string(),
            p.data.path().display().to_string(),
            p.tools.mirror.display().to_string(),
        ] {
            assert!(!out.contains(&host), "{host} in:\n{out}");
        }
    }
}

#[test]
fn hcl_syntax_errors_reach_the_comment_with_file_and_line() {
    let p = Preview::new();
    let repo = TestRepo::new();
    repo.write("config/main.tf", &null_project("c", "1"));
    repo.write("vars/main.tf", &null_project("v", "1"));
    repo.commit("base");
    // A syntax error in the configuration stops `init`; one in a .tfvars file stops `plan`.
    repo.write(
        "config/main.tf",
        "resource \"null_resource\" \"c\" {\n  triggers = {\n    v = \n  }\n}\n",
    );
    repo.write("vars/terraform.tfvars", "region = \n");
    repo.commit("break both");
    let run = p.run(&repo, &["--base", "HEAD~1"]);
    run.expect_code(1);
    let comment = &run.stdout;
    assert!(
        comment.contains("| `config` | `config` | `default` | ❌ plan failed (init) |"),
        "{comment}"
    );
    assert!(
        comment.contains("| `vars` | `vars` | `default` | ❌ plan failed (plan) |"),
        "{comment}"
    );
    for expected in [
        "`terraform init` exited with status 1.",
        "Error: Invalid expression",
        "on main.tf line 3, in resource \"null_resource\" \"c\":",
        "`terraform plan` exited with status 1.",
        "on terraform.tfvars line 1:",
        "Expected the start of an expression, but found an invalid expression token.",
    ] {
        assert!(
            comment.contains(expected),
            "{expected:?} missing:\n{comment}"
        );
    }
}

#[test]
fn output_over_the_cap_keeps_head_and_tail_and_says_what_was_omitted() {
    let p = Preview::new().env("SLUICE_RUNNER__OUTPUT_CAP_BYTES", "4000");
    // 200 references to undeclared variables: terraform prints an error block for each.
    let mut main_tf = crate::support::NULL_PROVIDER.to_string();
    for i in 1..=200 {
        main_tf.push_str(&format!(
            "resource \"null_resource\" \"r{i:03}\" {{\n  triggers = {{ v = var.missing_{i:03} }}\n}}\n"
        ));
    }
    let repo = repo_changing_a(&main_tf, &[]);
    let run = p.run(&repo, &["--base", "HEAD~1"]);
    run.expect_code(1);
    let comment = &run.stdout;
    assert!(
        comment.contains("**Plan failed** during `plan`"),
        "{comment}"
    );
    assert!(comment.contains("var.missing_001"), "head kept:\n{comment}");
    assert!(comment.contains("var.missing_200"), "tail kept:\n{comment}");
    assert!(
        !comment.contains("var.missing_100"),
        "middle dropped:\n{comment}"
    );
    let omitted = comment
        .split("[… ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no omission notice:\n{comment}"));
    assert!(omitted > 10_000, "{omitted} bytes omitted");
    assert!(
        comment.contains("bytes of output omitted: over the output cap"),
        "{comment}"
    );
}

#[test]
fn plan_json_over_the_cap_is_a_clear_failure() {
    let p = Preview::new().env("SLUICE_RUNNER__PLAN_JSON_CAP_BYTES", "100");
    let repo = repo_changing_a(&null_project("a", "2"), &[]);
    let run = p.run(&repo, &["--base", "HEAD~1"]);
    run.expect_code(1);
    assert!(
        run.stdout.contains(
            "the plan's JSON is larger than the configured cap (100 bytes, runner.plan_json_cap_bytes); split the project or raise the cap"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("**Plan failed** while reading the saved plan (`show`)"),
        "{}",
        run.stdout
    );
}

/// A fake provider that starts a `setsid`-detached process carrying `marker` (outside
/// terraform's process group, so a group kill cannot reach it) and then never answers.
fn slow_provider(marker: &str) -> String {
    format!(
        "#!/bin/sh\nsetsid sh -c 'sleep 600; true' {marker} </dev/null >/dev/null 2>&1 &\nexec sleep 600\n"
    )
}

/// A repository whose head adds projects `names`, each using the fake provider `slow`.
fn repo_with_slow_projects(names: &[&str]) -> TestRepo {
    let repo = TestRepo::new();
    repo.write("README.md", "base\n");
    repo.commit("base");
    for name in names {
        repo.write(&format!("{name}/main.tf"), &fake_provider_project("slow"));
    }
    repo.commit("slow projects");
    repo
}

#[test]
fn run_past_its_timeout_is_stopped_with_every_process_it_started() {
    let marker = unique("sluice-timeout-marker");
    let _cleanup = KillOnDrop(marker.clone());
    let mirror = Mirror::empty();
    mirror.add_fake_provider("slow", &slow_provider(&marker));
    let p = Preview::new()
        .env(
            "SLUICE_PROVIDER_MIRROR",
            mirror.path().display().to_string(),
        )
        .env("SLUICE_RUNNER__TIMEOUT_SECS", "3")
        .env("SLUICE_RUNNER__GRACE_SECS", "1");
    let repo = repo_with_slow_projects(&["slow"]);

    let spawned = p.spawn(&repo, &["--base", "HEAD~1"]);
    assert!(
        wait_until(Duration::from_secs(30), || !processes_matching(&marker)
            .is_empty()),
        "the provider never started its detached process"
    );
    let (run, _) = spawned.wait(Duration::from_secs(60));
    run.expect_code(1);
    assert!(
        run.stdout
            .contains("`terraform plan` ran past its timeout and was stopped."),
        "{}",
        run.stdout
    );
    assert!(
        wait_until(Duration::from_secs(5), || processes_matching(&marker)
            .is_empty()),
        "left running after the timeout: {:?}",
        processes_matching(&marker)
    );
}

/// The check above can fail: without the sandbox's PID namespace, a detached process escapes the
/// process-group kill (the `plain` profile is not isolated, and says so). If this starts failing
/// because `plain` now reaps such processes too, delete it — and enjoy.
#[test]
fn detached_process_survives_a_timeout_under_plain() {
    let marker = unique("sluice-plain-timeout-marker");
    let _cleanup = KillOnDrop(marker.clone());
    let mirror = Mirror::empty();
    mirror.add_fake_provider("slow", &slow_provider(&marker));
    let p = Preview::new()
        .env(
            "SLUICE_PROVIDER_MIRROR",
            mirror.path().display().to_string(),
        )
        .env("SLUICE_RUNNER__PROFILE", "plain")
        .env("SLUICE_RUNNER__TIMEOUT_SECS", "3")
        .env("SLUICE_RUNNER__GRACE_SECS", "1");
    let repo = repo_with_slow_projects(&["slow"]);
    let (run, _) = p
        .spawn(&repo, &["--base", "HEAD~1"])
        .wait(Duration::from_secs(60));
    run.expect_code(1);
    assert!(
        run.stdout.contains("ran past its timeout"),
        "{}",
        run.stdout
    );
    // Preview exits only after its process-group kill is done: nothing is left to kill the
    // detached process later, so it is checked at once.
    assert!(
        !processes_matching(&marker).is_empty(),
        "the detached process is gone even without the sandbox"
    );
}

#[test]
fn unknown_git_ref_is_a_usage_error_naming_the_ref() {
    let p = Preview::new();
    let repo = repo_changing_a(&null_project("a", "2"), &[]);
    let run = p.run(&repo, &["--base", "nope"]);
    run.expect_code(2);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    snapshot!(p.scrub(&run.stderr, &repo), @"sluice: error: git ref `nope` does not exist in [REPO]/.git");
}

// ---------------------------------------------------------------------------------------------
// Concurrency and cancellation

#[test]
fn four_projects_plan_two_at_a_time_sharing_the_read_only_mirror() {
    let p = Preview::new();
    let before = crate::support::fingerprint(&p.tools.mirror);
    let repo = TestRepo::new();
    repo.write("README.md", "base\n");
    repo.commit("base");
    let names = ["alpha", "bravo", "charlie", "delta"];
    for name in names {
        repo.write(&format!("{name}/main.tf"), &null_project(name, name));
    }
    repo.commit("four projects");
    let run = p.run(&repo, &["--base", "HEAD~1", "--jobs", "2"]);
    run.expect_code(0);
    assert_eq!(planned_sections(&run.stdout), names, "{}", run.stdout);
    assert_eq!(
        run.stdout
            .matches("**Plan: 1 to add, 0 to change, 0 to destroy.**")
            .count(),
        4,
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("Ran plan for 4 projects: 4 with changes."),
        "{}",
        run.stdout
    );
    assert_eq!(
        crate::support::fingerprint(&p.tools.mirror),
        before,
        "the shared mirror changed"
    );
}

#[test]
fn ctrl_c_stops_the_preview_and_every_process_it_started() {
    let marker = unique("sluice-ctrl-c-marker");
    let _cleanup = KillOnDrop(marker.clone());
    let mirror = Mirror::empty();
    mirror.add_fake_provider("slow", &slow_provider(&marker));
    let p = Preview::new().env(
        "SLUICE_PROVIDER_MIRROR",
        mirror.path().display().to_string(),
    );
    // Two projects, one slot: one runs and is interrupted, the other must not start at all.
    let repo = repo_with_slow_projects(&["first", "second"]);

    let spawned = p.spawn(&repo, &["--base", "HEAD~1", "--jobs", "1"]);
    assert!(
        wait_until(Duration::from_secs(30), || !processes_matching(&marker)
            .is_empty()),
        "the provider never started"
    );
    nix::sys::signal::kill(spawned.pid(), nix::sys::signal::Signal::SIGINT).expect("SIGINT");
    let (run, took) = spawned.wait(Duration::from_secs(60));
    assert!(took < Duration::from_secs(20), "took {took:?} to stop");
    assert!(
        matches!(run.code, Some(c) if c != 0),
        "an interrupted preview must not succeed: {:?}\n{}",
        run.code,
        run.stderr
    );
    assert!(
        run.stderr.contains("interrupted; stopping plans"),
        "{}",
        run.stderr
    );
    assert_eq!(
        run.stdout
            .matches("`terraform plan` was cancelled.")
            .count(),
        1,
        "{}",
        run.stdout
    );
    // Projects start in run order: `first` was running, `second` waited for the slot.
    assert!(
        run.stdout
            .contains("| `first` | `first` | `default` | ❌ plan failed (plan) |"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(
            "| `second` | `second` | `default` | ⏭️ skipped: not started: the preview was interrupted |"
        ),
        "the queued project does not start:\n{}",
        run.stdout
    );
    assert!(
        wait_until(Duration::from_secs(5), || processes_matching(&marker)
            .is_empty()),
        "left running after Ctrl-C: {:?}",
        processes_matching(&marker)
    );
}
