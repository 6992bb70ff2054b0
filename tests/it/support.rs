//! Shared test support: the tools the suite needs (terraform 1.0.3, the null provider mirror,
//! bwrap), real git repositories in temp dirs, and running the real `sluice` binary.
//!
//! A missing tool fails the test with the command that installs it — never a silent pass.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Where `scripts/install-test-tools` put terraform and the provider mirror.
pub struct Tools {
    pub terraform: PathBuf,
    pub mirror: PathBuf,
}

pub fn tools() -> Tools {
    let dir = std::env::var_os("SLUICE_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools"));
    let terraform = dir.join("bin/terraform");
    let mirror = dir.join("providers");
    assert!(
        terraform.is_file() && mirror.join("registry.terraform.io/hashicorp/null").is_dir(),
        "terraform 1.0.3 and the null provider are missing from {}: run scripts/install-test-tools \
         (or scripts/test, which runs it)",
        dir.display()
    );
    assert!(
        Command::new("bwrap")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "bubblewrap (bwrap) is missing: run scripts/install-test-tools or `apt-get install bubblewrap`"
    );
    Tools { terraform, mirror }
}

/// A real git repository in a temp dir.
pub struct TestRepo {
    pub dir: tempfile::TempDir,
}

impl TestRepo {
    /// An empty repository whose default branch is `main`.
    pub fn new() -> TestRepo {
        let dir = tempfile::tempdir().expect("temp dir");
        let r = TestRepo { dir };
        r.git(&["init", "-q", "-b", "main"]);
        r
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `file://` URL, as a webhook's `clone_url` would carry.
    pub fn url(&self) -> String {
        format!("file://{}", self.path().display())
    }

    /// Runs git in the repository; panics with its output on failure.
    pub fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(args)
            .current_dir(self.path())
            .env("GIT_AUTHOR_NAME", "Test")
            .env("GIT_AUTHOR_EMAIL", "test@example.com")
            .env("GIT_COMMITTER_NAME", "Test")
            .env("GIT_COMMITTER_EMAIL", "test@example.com")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .expect("git runs");
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn write(&self, path: &str, content: &str) -> &Self {
        let p = self.path().join(path);
        std::fs::create_dir_all(p.parent().expect("a file has a parent")).expect("mkdir");
        std::fs::write(p, content).expect("write");
        self
    }

    pub fn remove(&self, path: &str) -> &Self {
        let p = self.path().join(path);
        if p.is_dir() {
            std::fs::remove_dir_all(p).expect("rm -r");
        } else {
            std::fs::remove_file(p).expect("rm");
        }
        self
    }

    /// Copies a directory of this repository's sources (e.g. `examples/demo-infra`) in.
    pub fn copy_from(&self, src: &Path) -> &Self {
        copy_dir(src, self.path());
        self
    }

    /// Commits everything; returns the new commit's SHA.
    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.head()
    }

    pub fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"])
    }

    pub fn checkout_new(&self, branch: &str) {
        self.git(&["checkout", "-q", "-b", branch]);
    }

    pub fn checkout(&self, branch: &str) {
        self.git(&["checkout", "-q", branch]);
    }

    /// Points `refs/pull/<n>/head` at a commit, as GitHub does for every PR.
    pub fn set_pull_ref(&self, n: u64, sha: &str) {
        self.git(&["update-ref", &format!("refs/pull/{n}/head"), sha]);
    }
}

pub fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).expect("mkdir");
    for entry in std::fs::read_dir(src).expect("read dir") {
        let entry = entry.expect("entry");
        let to = dst.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &to);
        } else {
            std::fs::copy(entry.path(), &to).expect("copy");
        }
    }
}

/// The example infrastructure repository shipped in `examples/`.
pub fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

/// The `null` provider block every test project uses.
pub const NULL_PROVIDER: &str = r#"terraform {
  required_providers {
    null = {
      source  = "hashicorp/null"
      version = "~> 2.1"
    }
  }
}
"#;

/// A one-resource project.
pub fn null_project(resource: &str, trigger: &str) -> String {
    format!(
        "{NULL_PROVIDER}\nresource \"null_resource\" \"{resource}\" {{\n  triggers = {{ v = \"{trigger}\" }}\n}}\n"
    )
}

/// Runs the real `sluice` binary with a clean environment plus `env`.
pub fn sluice(args: &[&str], env: &BTreeMap<String, String>, cwd: &Path) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.args(args).current_dir(cwd).env_clear();
    for key in ["PATH", "HOME", "USER"] {
        if let Ok(v) = std::env::var(key) {
            cmd.env(key, v);
        }
    }
    cmd.envs(env);
    cmd.output().expect("sluice runs")
}

/// The settings environment pointing sluice at the test tools.
pub fn tool_env(tools: &Tools, data_dir: &Path) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "SLUICE_TERRAFORM_BIN".to_string(),
            tools.terraform.display().to_string(),
        ),
        (
            "SLUICE_PROVIDER_MIRROR".to_string(),
            tools.mirror.display().to_string(),
        ),
        (
            "SLUICE_DATA_DIR".to_string(),
            data_dir.display().to_string(),
        ),
    ])
}

pub fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
