//! Shared test support: the tools the suite needs (terraform 1.0.3, the null provider mirror,
//! bwrap), real git repositories in temp dirs, and running the real `sluice` binary.
//!
//! A missing tool fails the test with the command that installs it — never a silent pass.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

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

/// The real `sluice` binary with a clean environment (`PATH`, `HOME`, `USER`) plus `env`.
pub fn sluice_command(args: &[&str], env: &BTreeMap<String, String>, cwd: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.args(args).current_dir(cwd).env_clear();
    for key in ["PATH", "HOME", "USER"] {
        if let Ok(v) = std::env::var(key) {
            cmd.env(key, v);
        }
    }
    cmd.envs(env);
    cmd
}

/// Runs the real `sluice` binary with a clean environment plus `env`.
pub fn sluice(args: &[&str], env: &BTreeMap<String, String>, cwd: &Path) -> Output {
    sluice_command(args, env, cwd)
        .output()
        .expect("sluice runs")
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

/// How a finished `sluice` run went: exit code and both streams.
#[derive(Debug, Clone)]
pub struct Run {
    /// `None` when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from_output(out: &Output) -> Run {
        let (stdout, stderr) = text(out);
        Run {
            code: out.status.code(),
            stdout,
            stderr,
        }
    }

    /// Panics with both streams unless the exit code is `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code,
            Some(code),
            "expected exit code {code}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// A scratch directory under cargo's per-target temp dir — deliberately *not* under `/tmp`:
/// bubblewrap gives every run a private `/tmp`, so a sandbox test whose secrets live in `/tmp`
/// would pass even if the sandbox exposed the rest of the host.
pub fn scratch_dir(prefix: &str) -> tempfile::TempDir {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(base).expect("mkdir target tmp");
    tempfile::Builder::new()
        .prefix(&format!("{prefix}-"))
        .tempdir_in(base)
        .expect("scratch dir")
}

/// A data dir for one test's `sluice`: a temp dir whose default jobs dir — beside it, outside
/// it (`config::default_jobs_dir`), holding job dirs and an engine copy of about 75 MB — is
/// removed with it, so a whole suite run does not pile up one jobs dir per test.
pub struct DataDir(tempfile::TempDir);

impl DataDir {
    /// Under [`scratch_dir`]'s base, named `PREFIX-…`.
    pub fn scratch(prefix: &str) -> DataDir {
        DataDir(scratch_dir(prefix))
    }

    /// Under the temp dir (`TMPDIR`).
    pub fn temp() -> DataDir {
        DataDir(tempfile::tempdir().expect("temp dir"))
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let jobs = sluice::config::default_jobs_dir(self.0.path());
        if let Err(e) = std::fs::remove_dir_all(&jobs)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            // Job dirs a sandboxed run left read-only: make them writable, then try again.
            let _ = Command::new("chmod")
                .arg("-R")
                .arg("u+rwx")
                .arg(&jobs)
                .status();
            let _ = std::fs::remove_dir_all(&jobs);
        }
    }
}

/// `chmod 0755`: a scratch dir (0700 when made) that the sandbox user must read.
pub fn world_readable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// A string no other test (or earlier run) uses: for secrets and process markers.
pub fn unique(label: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .subsec_nanos();
    format!(
        "{label}-{}-{}-{nanos:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A filesystem provider mirror of its own (in a scratch dir), holding fake providers — shell
/// scripts that terraform starts as `sluice-test/<name>` 1.0.0 — and optionally a copy of the
/// real `hashicorp/null`. Tests that let PR code attack the mirror get their own copy.
pub struct Mirror {
    pub dir: tempfile::TempDir,
}

impl Mirror {
    pub fn empty() -> Mirror {
        let dir = scratch_dir("mirror");
        // Readable by everyone, like any mirror: runs never run as root, so when the tests run
        // as root the sandbox user reads it.
        world_readable(dir.path());
        Mirror { dir }
    }

    /// A copy of the tools' mirror (`hashicorp/null`).
    pub fn copy_of(tools: &Tools) -> Mirror {
        let m = Mirror::empty();
        copy_dir(&tools.mirror, m.path());
        m
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Adds provider `sluice-test/<name>` whose binary is `script` (a `#!/bin/sh` script);
    /// returns the binary's path.
    pub fn add_fake_provider(&self, name: &str, script: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let dir = self
            .path()
            .join("registry.terraform.io/sluice-test")
            .join(name)
            .join("1.0.0/linux_amd64");
        std::fs::create_dir_all(&dir).expect("mkdir provider dir");
        let bin = dir.join(format!("terraform-provider-{name}_v1.0.0"));
        std::fs::write(&bin, script).expect("write fake provider");
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        bin
    }

    /// Every file and symlink under the mirror with its size and SHA-256: equal fingerprints
    /// mean nothing was added, removed or changed.
    pub fn fingerprint(&self) -> BTreeMap<String, String> {
        fingerprint(self.path())
    }
}

/// See [`Mirror::fingerprint`].
pub fn fingerprint(root: &Path) -> BTreeMap<String, String> {
    use sha2::{Digest, Sha256};
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let entry = entry.expect("entry");
            let path = entry.path();
            let rel = path
                .strip_prefix(root)
                .expect("under root")
                .display()
                .to_string();
            let ft = entry.file_type().expect("file type");
            if ft.is_dir() {
                stack.push(path);
            } else if ft.is_symlink() {
                let target = std::fs::read_link(&path).expect("read link");
                out.insert(rel, format!("-> {}", target.display()));
            } else {
                let bytes = std::fs::read(&path).expect("read");
                out.insert(
                    rel,
                    format!(
                        "{} bytes {}",
                        bytes.len(),
                        hex::encode(Sha256::digest(&bytes))
                    ),
                );
            }
        }
    }
    out
}

/// The main file of a project using fake provider `sluice-test/<name>` (one resource, so
/// `plan` starts the provider to read its schema).
pub fn fake_provider_project(name: &str) -> String {
    format!(
        "terraform {{\n  required_providers {{\n    {name} = {{\n      source = \"sluice-test/{name}\"\n    }}\n  }}\n}}\n\nresource \"{name}_thing\" \"x\" {{}}\n"
    )
}

/// `pgrep -af PATTERN`: the processes whose command line contains `pattern`.
pub fn processes_matching(pattern: &str) -> Vec<String> {
    let out = Command::new("pgrep")
        .arg("-af")
        .arg(pattern)
        .output()
        .expect("pgrep (procps) runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Waits up to `limit` for `cond`, polling; returns whether it held.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kills, by pid, every process whose command line carries `marker` when dropped — so a failing
/// test does not leave the processes it provoked behind. Markers come from [`unique`], so only
/// processes this test started can match. A match that leads its own process group (it called
/// `setsid`) is killed with its group, which holds its children (e.g. its `sleep`).
pub struct KillOnDrop(pub String);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        use nix::sys::signal::{Signal, kill, killpg};
        use nix::unistd::{Pid, getpgid};
        for line in processes_matching(&self.0) {
            if let Some(pid) = line.split_whitespace().next().and_then(|p| p.parse().ok()) {
                let pid = Pid::from_raw(pid);
                if getpgid(Some(pid)) == Ok(pid) {
                    let _ = killpg(pid, Signal::SIGKILL);
                } else {
                    let _ = kill(pid, Signal::SIGKILL);
                }
            }
        }
    }
}

/// A `sluice` process running in the background, its output collected by threads.
pub struct Spawned {
    pub child: Child,
    out: Option<std::thread::JoinHandle<String>>,
    err: Option<std::thread::JoinHandle<String>>,
}

impl Spawned {
    pub fn start(mut cmd: Command) -> Spawned {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sluice starts");
        let reader = |mut r: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut s = Vec::new();
                let _ = r.read_to_end(&mut s);
                String::from_utf8_lossy(&s).into_owned()
            })
        };
        let out = reader(Box::new(child.stdout.take().expect("piped")));
        let err = reader(Box::new(child.stderr.take().expect("piped")));
        Spawned {
            child,
            out: Some(out),
            err: Some(err),
        }
    }

    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.id() as i32)
    }

    /// Waits up to `limit` for the process to exit; on time-out kills it and panics.
    pub fn wait(mut self, limit: Duration) -> (Run, Duration) {
        let start = Instant::now();
        let status: ExitStatus = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("sluice did not exit within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let took = start.elapsed();
        let stdout = self.out.take().expect("once").join().expect("reader");
        let stderr = self.err.take().expect("once").join().expect("reader");
        (
            Run {
                code: status.code(),
                stdout,
                stderr,
            },
            took,
        )
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        // Only reached with the child still running when a test panics before `wait`.
        if self.out.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// insta filters for what changes from run to run in Sluice's output: commit SHAs, plan file
/// hashes, durations. Temp paths are replaced by the tests themselves (they know them).
pub fn output_filters() -> Vec<(&'static str, &'static str)> {
    vec![
        (r"\b[0-9a-f]{40}\b", "[SHA]"),
        (r"commit `[0-9a-f]{7}`", "commit `[SHORT_SHA]`"),
        (r"for commit [0-9a-f]{7}\b", "for commit [SHORT_SHA]"),
        (
            r"between [0-9a-f]{7} and [0-9a-f]{7}\b",
            "between [BASE] and [HEAD]",
        ),
        (r"SHA-256 `[0-9a-f]{12}…`", "SHA-256 `[PLAN_SHA]…`"),
        (r"\(\d+\.\ds\)", "([TIME])"),
        (r"preview-\d+-[0-9a-f]{7}-\d+", "[JOB_ID]"),
    ]
}
