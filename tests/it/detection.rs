//! Which projects a pull request plans, and with which engine, end to end through `sluice
//! preview` (the same detection and job code as the server): nested projects, and directories
//! holding files only OpenTofu reads.
//!
//! No OpenTofu binary can be installed on the test machines, so the OpenTofu tests use a
//! stand-in: a shell script named `tofu` that records each call and then runs the real terraform
//! 1.0.3 on the directory as OpenTofu reads it (each `x.tofu` / `x.tofu.json` becomes `x.tf` /
//! `x.tf.json`, replacing a file of that name). It needs the `plain` runner: inside bubblewrap
//! only the engine binary itself is mounted, so a script could not start terraform there.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::support::{
    DataDir, NULL_PROVIDER, Run, TestRepo, null_project, scratch_dir, sluice, tool_env, tools,
};

/// `sluice preview --base HEAD~1 REPO` with the tools' settings plus `env`.
fn preview(repo: &TestRepo, data: &Path, env: &[(&str, String)]) -> Run {
    let mut all: BTreeMap<String, String> = tool_env(&tools(), data);
    for (k, v) in env {
        all.insert(k.to_string(), v.clone());
    }
    let path = repo.path().display().to_string();
    Run::from_output(&sluice(
        &["preview", "--base", "HEAD~1", &path],
        &all,
        repo.path(),
    ))
}

/// The `### project` headings of the comment, in order.
fn planned(comment: &str) -> Vec<String> {
    comment
        .lines()
        .filter_map(|l| l.strip_prefix("### `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_string)
        .collect()
}

/// The comment's section for `project`.
fn section<'a>(comment: &'a str, project: &str) -> &'a str {
    comment
        .split("### ")
        .find(|s| s.starts_with(&format!("`{project}`")))
        .unwrap_or_else(|| panic!("no section for {project}:\n{comment}"))
}

// ---------------------------------------------------------------------------------------------
// Nested projects

/// A repository with projects at `.` and `dev/` (configured by `config_file` = `config`) whose
/// pull request changes only `changed`.
fn nested_repo(config_file: &str, config: &str, changed: &str) -> TestRepo {
    let repo = TestRepo::new();
    repo.write(config_file, config);
    repo.write("main.tf", &null_project("root", "1"));
    repo.write("dev/main.tf", &null_project("dev", "1"));
    repo.commit("base");
    repo.write(changed, &null_project("changed", "2"));
    repo.commit("the pull request");
    repo
}

/// With `sluice.yaml` projects at `.` and `dev/`, a change to `dev/main.tf` plans (and so
/// locks) `dev` only; a change at the root plans the root only; `atlantis.yaml` keeps Atlantis'
/// rule, under which the root's default `**/*.tf*` claims `dev/main.tf` too.
#[test]
fn a_change_in_a_nested_project_plans_that_project_only() {
    let data = DataDir::scratch("nested");
    let sluice_yaml = "version: 1\nprojects:\n  - dir: .\n  - dir: dev\n";
    for (changed, expect) in [("dev/main.tf", vec!["dev"]), ("main.tf", vec!["root"])] {
        let repo = nested_repo("sluice.yaml", sluice_yaml, changed);
        let run = preview(&repo, data.path(), &[]);
        run.expect_code(0);
        assert_eq!(planned(&run.stdout), expect, "{changed}:\n{}", run.stdout);
    }

    // The parent names the nested dir explicitly: both plan.
    let explicit = "version: 1\nprojects:\n  - dir: .\n    autoplan: {when_modified: [\"*.tf\", \"dev/*.tf\"]}\n  - dir: dev\n";
    let run = preview(
        &nested_repo("sluice.yaml", explicit, "dev/main.tf"),
        data.path(),
        &[],
    );
    run.expect_code(0);
    assert_eq!(planned(&run.stdout), ["dev", "root"], "{}", run.stdout);

    let atlantis = "version: 3\nprojects:\n  - dir: .\n  - dir: dev\n";
    let run = preview(
        &nested_repo("atlantis.yaml", atlantis, "dev/main.tf"),
        data.path(),
        &[],
    );
    run.expect_code(0);
    assert_eq!(planned(&run.stdout), ["dev", "root"], "{}", run.stdout);
}

// ---------------------------------------------------------------------------------------------
// Files only OpenTofu reads

/// The OpenTofu stand-in (see the module doc) and the file it records its calls in.
struct FakeTofu {
    _dir: tempfile::TempDir,
    bin: PathBuf,
    log: PathBuf,
}

impl FakeTofu {
    fn new() -> FakeTofu {
        use std::os::unix::fs::PermissionsExt;
        let dir = scratch_dir("fake-tofu");
        // Runs never run as root: when the tests do, the sandbox user runs the script and
        // appends to the log.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod");
        let bin = dir.path().join("tofu");
        let log = dir.path().join("calls.log");
        std::fs::write(
            &bin,
            format!(
                "#!/bin/sh\n\
                 # OpenTofu stand-in: terraform reading the directory as OpenTofu does.\n\
                 echo \"$(/bin/pwd) $1\" >> '{log}'\n\
                 for f in *.tofu *.tofu.json; do\n\
                 \x20 [ -e \"$f\" ] || continue\n\
                 \x20 case \"$f\" in\n\
                 \x20   *.tofu.json) /bin/mv -f \"$f\" \"${{f%.tofu.json}}.tf.json\" ;;\n\
                 \x20   *.tofu) /bin/mv -f \"$f\" \"${{f%.tofu}}.tf\" ;;\n\
                 \x20 esac\n\
                 done\n\
                 exec '{terraform}' \"$@\"\n",
                log = log.display(),
                terraform = tools().terraform.display()
            ),
        )
        .expect("write the stand-in");
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        FakeTofu {
            _dir: dir,
            bin,
            log,
        }
    }

    /// The project dirs (last path components of the working dirs) it ran `plan` in.
    fn planned_in(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut dirs: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_suffix(" plan"))
            .filter_map(|cwd| cwd.rsplit('/').next())
            .map(str::to_string)
            .collect();
        dirs.sort();
        dirs
    }
}

fn null_resource(name: &str) -> String {
    format!("resource \"null_resource\" \"{name}\" {{\n  triggers = {{ v = \"{name}\" }}\n}}\n")
}

/// A pull request adding `only-tofu/` (`.tofu` files only), `mixed/` (a `.tf` file and a
/// `.tofu.json` file), `twins/` (`main.tf` and `main.tofu`, a dual-engine dir) and `plain/`,
/// plus `sluice.yaml` = `config` when given.
fn tofu_repo(config: Option<&str>) -> TestRepo {
    let repo = TestRepo::new();
    repo.write("README.md", "infrastructure\n");
    repo.commit("base");
    if let Some(c) = config {
        repo.write("sluice.yaml", c);
    }
    repo.write("only-tofu/main.tofu", NULL_PROVIDER);
    repo.write("only-tofu/resources.tofu", &null_resource("from_tofu"));
    repo.write(
        "mixed/main.tf",
        &format!("{NULL_PROVIDER}\n{}", null_resource("from_tf")),
    );
    repo.write(
        "mixed/extra.tofu.json",
        r#"{"resource": {"null_resource": {"from_tofu_json": {"triggers": {"v": "json"}}}}}"#,
    );
    repo.write(
        "twins/main.tf",
        &format!("{NULL_PROVIDER}\n{}", null_resource("for_terraform")),
    );
    repo.write(
        "twins/main.tofu",
        &format!("{NULL_PROVIDER}\n{}", null_resource("for_tofu")),
    );
    repo.write("plain/main.tf", &null_project("plain", "1"));
    repo.commit("the pull request");
    repo
}

/// Without an engine pin, the `.tofu`-only dir and the mixed dir run with OpenTofu and their
/// plans hold the resources the `.tofu` / `.tofu.json` files declare (terraform alone reported
/// "No configuration files" for the first, and planned the second without them); the dual-engine
/// dir and the plain dir run with terraform.
#[test]
fn directories_with_files_only_opentofu_reads_run_with_opentofu() {
    let data = DataDir::scratch("tofu");
    let tofu = FakeTofu::new();
    let run = preview(
        &tofu_repo(None),
        data.path(),
        &[
            ("SLUICE_TOFU_BIN", tofu.bin.display().to_string()),
            ("SLUICE_RUNNER__PROFILE", "plain".to_string()),
        ],
    );
    run.expect_code(0);
    let comment = &run.stdout;
    assert_eq!(
        planned(comment),
        ["mixed", "only-tofu", "plain", "twins"],
        "{comment}"
    );
    assert_eq!(tofu.planned_in(), ["mixed", "only-tofu"], "{comment}");
    assert!(
        section(comment, "only-tofu").contains("null_resource.from_tofu"),
        "{comment}"
    );
    let mixed = section(comment, "mixed");
    assert!(
        mixed.contains("null_resource.from_tf") && mixed.contains("null_resource.from_tofu_json"),
        "the mixed dir's plan holds both files' resources:\n{comment}"
    );
    // Terraform reads `main.tf` and ignores its `main.tofu` twin, as OpenTofu intends.
    let twins = section(comment, "twins");
    assert!(
        twins.contains("null_resource.for_terraform") && !twins.contains("for_tofu"),
        "{comment}"
    );
}

/// A project pinned to terraform whose dir holds files only OpenTofu reads is refused, naming
/// the files and the fix, and is not planned; the other projects are. Without any OpenTofu
/// binary, a project that needs it fails saying why it needs it.
#[test]
fn a_terraform_pin_on_opentofu_files_is_refused_naming_them() {
    let data = DataDir::scratch("tofu-pin");
    let config = "version: 1\nprojects:\n  - dir: mixed\n    engine: terraform\n  - dir: twins\n    engine: terraform\n  - dir: plain\n  - dir: only-tofu\n";
    let run = preview(
        &tofu_repo(Some(config)),
        data.path(),
        &[("SLUICE_TOFU_BIN", "/nonexistent/tofu".to_string())],
    );
    run.expect_code(1);
    assert!(
        run.stderr.contains(
            "sluice.yaml:4:13: error: project `mixed` sets `engine: terraform`, but its \
             configuration has files only OpenTofu reads: `mixed/extra.tofu.json`"
        ) && run.stderr.contains("write `engine: opentofu`"),
        "{}",
        run.stderr
    );
    assert_eq!(
        planned(&run.stdout),
        ["only-tofu", "plain", "twins"],
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("from_tf"), "{}", run.stdout);
    let only = section(&run.stdout, "only-tofu");
    assert!(
        only.contains("opentofu binary unavailable")
            && only.contains("`.tofu`/`.tofu.json` files, which only OpenTofu reads"),
        "{only}"
    );
}
