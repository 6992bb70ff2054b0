//! A pull request must not steer terraform outside the configuration Sluice gives it: not with a
//! `.terraform/` data dir of its own, not with plugins under `terraform.d/`, not with a CLI
//! config file in the repository, and not through the project's `env` in `sluice.yaml`.
//!
//! Each attack plants a "provider" (a shell script) that, if terraform ever starts it, answers
//! the plugin handshake with a marker, which terraform then quotes in its error — and Sluice
//! posts in the comment. Every test also shows a positive outcome (the mirror's provider planned,
//! or terraform's own error about what it did instead), so none passes because nothing ran.

use std::collections::BTreeMap;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::support::{
    DataDir, NULL_PROVIDER, Run, TestRepo, Tools, null_project, scratch_dir, sluice, tool_env,
    tools, unique,
};

/// Where the null provider's binary sits in a provider directory (mirror or data dir layout).
const NULL_PACKAGE: &str = "registry.terraform.io/hashicorp/null/2.1.2/linux_amd64";
const NULL_BINARY: &str = "terraform-provider-null_v2.1.2_x4";

/// `sluice preview` of `repo` (head vs. its parent) under the default `bwrap` runner, with the
/// tools' provider mirror (`mirror = true`) or none.
fn preview(tools: &Tools, repo: &TestRepo, mirror: bool) -> Run {
    let data = DataDir::scratch("steer-data");
    let mut env: BTreeMap<String, String> = tool_env(tools, data.path());
    if !mirror {
        env.remove("SLUICE_PROVIDER_MIRROR");
    }
    let path = repo.path().display().to_string();
    Run::from_output(&sluice(
        &["preview", "--base", "HEAD~1", &path],
        &env,
        repo.path(),
    ))
}

/// A base commit, then a head commit that adds `dir/main.tf` (a null resource) and `extra`
/// files; paths ending in `_x4` or named `terraform-provisioner-*` are made executable.
fn pr(dir: &str, extra: &[(&str, &str)]) -> TestRepo {
    use std::os::unix::fs::PermissionsExt;
    let repo = TestRepo::new();
    repo.write("README.md", "base\n");
    repo.commit("base");
    repo.write(&format!("{dir}/main.tf"), &null_project("a", "1"));
    for (path, content) in extra {
        repo.write(path, content);
        if path.ends_with("_x4") || path.contains("terraform-provisioner-") {
            std::fs::set_permissions(
                repo.path().join(path),
                std::fs::Permissions::from_mode(0o755),
            )
            .expect("chmod");
        }
    }
    repo.commit("the pull request");
    repo
}

/// A provider binary that, when started, prints `marker` where terraform expects its handshake.
fn trojan(marker: &str) -> String {
    format!("#!/bin/sh\necho {marker}\n")
}

/// Terraform's `h1:` hash of a provider package directory (Go's `dirhash.Hash1`): SHA-256 over
/// the lines `<sha256 hex>  <file name>\n` of every file, sorted by name, in base64.
fn h1_of_dir(dir: &Path) -> String {
    use base64::Engine as _;
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read provider dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut summary = String::new();
    for name in names {
        let bytes = std::fs::read(dir.join(&name)).expect("read provider file");
        summary.push_str(&format!(
            "{}  {name}\n",
            hex::encode(Sha256::digest(&bytes))
        ));
    }
    format!(
        "h1:{}",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(summary.as_bytes()))
    )
}

/// A dependency lock file accepting each of `hashes` for hashicorp/null 2.1.2.
fn lock_file(hashes: &[String]) -> String {
    let list: Vec<String> = hashes.iter().map(|h| format!("    \"{h}\",")).collect();
    format!(
        "provider \"registry.terraform.io/hashicorp/null\" {{\n  version     = \"2.1.2\"\n  constraints = \"~> 2.1\"\n  hashes = [\n{}\n  ]\n}}\n",
        list.join("\n")
    )
}

#[track_caller]
fn assert_not_started(run: &Run, marker: &str) {
    assert!(
        !run.stdout.contains(marker) && !run.stderr.contains(marker),
        "terraform started the pull request's own plugin:\n{}\n{}",
        run.stdout,
        run.stderr
    );
}

#[track_caller]
fn assert_planned(run: &Run) {
    run.expect_code(0);
    assert!(
        run.stdout
            .contains("**Plan: 1 to add, 0 to change, 0 to destroy.**"),
        "{}",
        run.stdout
    );
}

/// The example: a committed `.terraform/` holding a trojan `hashicorp/null`, with a lock
/// file that accepts both it and the real one. Terraform would find it "already installed" in
/// its data dir and run it; with the data dir outside the checkout (and `.terraform/` never
/// exported), init installs the mirror's provider, which the lock also accepts, and plans.
#[test]
fn a_committed_terraform_data_dir_is_never_used() {
    let tools = tools();
    let marker = unique("STEERED-DATA-DIR");
    let trojan_dir = scratch_dir("trojan");
    std::fs::write(trojan_dir.path().join(NULL_BINARY), trojan(&marker)).expect("write");
    let fake = h1_of_dir(trojan_dir.path());
    let real = h1_of_dir(&tools.mirror.join(NULL_PACKAGE));
    let lock = lock_file(&[fake, real]);
    let planted = format!("app/.terraform/providers/{NULL_PACKAGE}/{NULL_BINARY}");
    let script = trojan(&marker);
    let repo = pr(
        "app",
        &[
            (planted.as_str(), script.as_str()),
            ("app/.terraform.lock.hcl", lock.as_str()),
            // The workspace a committed data dir would select, were it read.
            ("app/.terraform/environment", "attacker"),
        ],
    );
    let run = preview(&tools, &repo, true);
    assert_not_started(&run, &marker);
    assert_planned(&run);
}

/// Without a mirror, terraform's implied configuration would install providers from
/// `terraform.d/plugins` in the working directory — the PR's own binary. Sluice's CLI config
/// names the installation methods explicitly, so no implied local directory is consulted (and
/// `terraform.d/` is not exported): init goes to the registry, which this machine cannot reach.
#[test]
fn plugins_under_terraform_d_are_not_installed_without_a_mirror() {
    let tools = tools();
    let marker = unique("STEERED-IMPLIED-MIRROR");
    let planted = format!("app/terraform.d/plugins/{NULL_PACKAGE}/{NULL_BINARY}");
    let script = trojan(&marker);
    let repo = pr("app", &[(planted.as_str(), script.as_str())]);
    let run = preview(&tools, &repo, false);
    assert_not_started(&run, &marker);
    run.expect_code(1);
    assert!(
        run.stdout.contains("**Plan failed** during `init`")
            && run.stdout.contains("registry.terraform.io"),
        "init should have looked for hashicorp/null in the registry only:\n{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("Note: `app/terraform.d` was not checked out"),
        "the failure says what was left out:\n{}",
        run.stdout
    );
}

/// With a mirror, the same planted package is ignored and the mirror's provider plans.
#[test]
fn plugins_under_terraform_d_are_not_installed_with_a_mirror() {
    let tools = tools();
    let marker = unique("STEERED-MIRRORED");
    let planted = format!("app/terraform.d/plugins/{NULL_PACKAGE}/{NULL_BINARY}");
    let script = trojan(&marker);
    let repo = pr("app", &[(planted.as_str(), script.as_str())]);
    let run = preview(&tools, &repo, true);
    assert_not_started(&run, &marker);
    assert_planned(&run);
}

/// Terraform 1.0 still loads third-party *provisioner* plugins from `terraform.d/plugins/<os_arch>`
/// in the working directory, whatever the CLI config says, and starts them at plan time to read
/// their schema. `terraform.d/` is not exported, so there is none to start.
#[test]
fn a_provisioner_plugin_under_terraform_d_is_never_started() {
    let tools = tools();
    let marker = unique("STEERED-PROVISIONER");
    let main_tf = format!(
        "{NULL_PROVIDER}\nresource \"null_resource\" \"a\" {{\n  provisioner \"pwn\" {{}}\n}}\n"
    );
    let script = trojan(&marker);
    let repo = pr(
        "app",
        &[
            ("app/main.tf", main_tf.as_str()),
            (
                "app/terraform.d/plugins/linux_amd64/terraform-provisioner-pwn",
                script.as_str(),
            ),
        ],
    );
    let run = preview(&tools, &repo, true);
    assert_not_started(&run, &marker);
    run.expect_code(1);
    assert!(
        run.stdout.contains("**Plan failed**") && run.stdout.contains("provisioner \"pwn\""),
        "terraform should report the provisioner as unavailable:\n{}",
        run.stdout
    );
}

/// A CLI configuration file committed in the project dir (`.terraformrc`, `terraform.rc`) with
/// `dev_overrides` pointing at the PR's binary is not read: only Sluice's own config is.
#[test]
fn a_committed_cli_config_file_is_not_read() {
    let tools = tools();
    let marker = unique("STEERED-RC");
    let script = trojan(&marker);
    let rc = "provider_installation {\n  dev_overrides {\n    \"hashicorp/null\" = \"/sluice/work/repo/app/bin\"\n  }\n  direct {}\n}\n";
    let repo = pr(
        "app",
        &[
            ("app/.terraformrc", rc),
            ("app/terraform.rc", rc),
            (".terraformrc", rc),
            ("app/bin/terraform-provider-null_x4", script.as_str()),
        ],
    );
    let run = preview(&tools, &repo, true);
    assert_not_started(&run, &marker);
    assert_planned(&run);
    assert!(
        !run.stdout.contains("Provider development overrides"),
        "{}",
        run.stdout
    );
}

/// A repository with `sluice.yaml` giving project `app` the environment `env` (YAML flow map
/// body), and `app/main.tf` = `main_tf`.
fn repo_with_env(env: &str, main_tf: &str) -> TestRepo {
    let repo = TestRepo::new();
    repo.write("README.md", "base\n");
    repo.commit("base");
    repo.write(
        "sluice.yaml",
        &format!("version: 1\nprojects:\n  - name: app\n    dir: app\n    env: {{ {env} }}\n"),
    );
    repo.write("app/main.tf", main_tf);
    repo.commit("the pull request");
    repo
}

/// Every variable that steers the engine, the loader, the network path, certificate trust or the
/// run's directories is refused in `env` — by `sluice config check` at its line and column, and by
/// the PR pipeline, which plans nothing.
#[test]
fn env_names_that_steer_the_run_are_refused_with_their_position() {
    let tools = tools();
    let refused = [
        "TF_CLI_CONFIG_FILE",
        "TF_PLUGIN_CACHE_DIR",
        "TF_DATA_DIR",
        "TF_CLI_ARGS",
        "TF_CLI_ARGS_init",
        "TF_REGISTRY_DISCOVERY_RETRY",
        "TF_PROVIDER_HOST",
        "TF_REATTACH_PROVIDERS",
        "TF_LOG",
        "TF_LOG_PATH",
        "TF_WORKSPACE",
        "TF_IGNORE",
        "TF_SKIP_PROVIDER_VERIFY",
        "tf_cli_args",
        "TERRAFORM_CONFIG",
        "HTTPS_PROXY",
        "http_proxy",
        "NO_PROXY",
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "GLIBC_TUNABLES",
        "PATH",
        "HOME",
        "TMPDIR",
        "XDG_DATA_HOME",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "GIT_SSH_COMMAND",
        "GIT_CONFIG_GLOBAL",
        "BASH_ENV",
        "GODEBUG",
        "SLUICE_API_TOKEN",
    ];
    let env: Vec<String> = refused.iter().map(|k| format!("{k}: x")).collect();
    let repo = repo_with_env(&env.join(", "), &null_project("a", "1"));
    let data = DataDir::scratch("steer-data");
    let settings = tool_env(&tools, data.path());
    let path = repo.path().display().to_string();
    let check = Run::from_output(&sluice(&["config", "check", &path], &settings, repo.path()));
    check.expect_code(1);
    // `    env: { ` puts the first key at column 12; each `KEY: x, ` adds its length + 5.
    let mut column = 12;
    for key in refused {
        let expected = format!("sluice.yaml:5:{column}: error: `{key}` cannot be set in `env`");
        assert!(
            check.stderr.contains(&expected),
            "missing {expected:?} in:\n{}",
            check.stderr
        );
        column += key.len() + 5;
    }
    let run = preview(&tools, &repo, true);
    run.expect_code(1);
    assert!(
        run.stderr
            .contains("the repository configuration has errors; nothing was planned")
            && run
                .stderr
                .contains("`TF_CLI_CONFIG_FILE` cannot be set in `env`"),
        "{}",
        run.stderr
    );
}

/// `TF_VAR_*` and plain names still reach the run.
#[test]
fn tf_var_and_plain_env_names_still_work() {
    let tools = tools();
    let main_tf = format!(
        "{NULL_PROVIDER}\nvariable \"greeting\" {{}}\nresource \"null_resource\" \"a\" {{\n  triggers = {{ v = var.greeting }}\n}}\n"
    );
    let repo = repo_with_env(
        "TF_VAR_greeting: hello-from-env, AWS_REGION: eu-west-1",
        &main_tf,
    );
    let run = preview(&tools, &repo, true);
    assert_planned(&run);
    assert!(run.stdout.contains("\"hello-from-env\""), "{}", run.stdout);
}

/// Through the server, the pull request is told: a comment with each refused key at its
/// position, a failed `sluice/plan` status, and nothing planned.
#[tokio::test(flavor = "multi_thread")]
async fn the_pr_is_told_which_env_keys_are_refused() {
    use crate::server::Harness;
    let app = null_project("a", "1");
    let mut h = Harness::new(&[("app/main.tf", app.as_str())]).await;
    h.start();
    let config = "version: 1\nprojects:\n  - name: app\n    dir: app\n    env: { TF_VAR_ok: 1, TF_CLI_ARGS_plan: -lock=false, LD_PRELOAD: /x.so }\n";
    let head = h.open_pr(
        1,
        "env",
        &[
            ("sluice.yaml", config),
            ("app/main.tf", &null_project("a", "2")),
        ],
    );
    h.deliver(&h.pr_event("opened", 1)).await;
    let comment = h
        .wait_comment(1, "the refusal", |c| {
            c.contains("Sluice cannot plan this pull request")
        })
        .await;
    for expected in [
        "sluice.yaml:5:26: error: `TF_CLI_ARGS_plan` cannot be set in `env`",
        "sluice.yaml:5:57: error: `LD_PRELOAD` cannot be set in `env`",
    ] {
        assert!(
            comment.contains(expected),
            "missing {expected:?}:\n{comment}"
        );
    }
    assert!(!comment.contains("TF_VAR_ok"), "{comment}");
    assert_eq!(
        h.wait_status(&head, "sluice/plan", "failure").await,
        "configuration has errors"
    );
    assert!(h.locks().await.is_empty(), "nothing was locked");
}
