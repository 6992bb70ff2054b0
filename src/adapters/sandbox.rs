//! The sandbox: turns "run this engine command in this job dir" into a [`ProcessSpec`] that runs
//! it under a runner profile (`runners/*.toml`): bubblewrap, or a plain process for development.
//!
//! The threat model (PRODUCT.md §8): the code of a PR is hostile — a provider binary or a
//! `local-exec` provisioner committed in a PR runs here, before any review. Under bwrap a run
//! sees its own job dir (writable), the engine binary and provider mirror (read-only), copies of
//! its CLI configuration and inputs, a private /tmp and a read-only /proc, read-only system
//! libraries — never the server's data dir, config, secrets or other jobs. Its environment is
//! built here from scratch; the server's own is never inherited, and values travel through the
//! process environment, never argv (argv is world-readable in /proc).
//!
//! A run never holds privilege, whoever starts Sluice:
//! * **Never root.** When Sluice runs as root, every run and every helper setting one up runs as
//!   `runner.sandbox_uid:sandbox_gid` (default 65534, `nobody`) instead, and the job dir is
//!   handed to that user before the run. bubblewrap started by root keeps every capability and
//!   maps the run to host uid 0: a user namespace alone does not help, since the kernel checks
//!   sysctl writes and file ownership against the *host* uid (root in a user namespace can write
//!   `/proc/sys/kernel/core_pattern`). Switching uid before `exec` rather than mapping through
//!   subordinate ids keeps the set-up free of setuid helpers (`newuidmap`) and of
//!   `/etc/subuid` configuration, and makes the root and the unprivileged case the same code.
//! * **Its own namespaces**, under a user namespace of its own ([`netns`]): user, mount, pid,
//!   ipc, uts, cgroup and network; no capability in any of them (`--cap-drop ALL`); no further
//!   user namespaces (`--disable-userns`, and the seccomp filter).
//! * **A seccomp filter** ([`seccomp`]) against the syscalls of the classic escapes.
//! * **Resource limits** per run (`runner.limits`): processes, address space, file size, open
//!   files; no core dumps.
//! * **Its own network** ([`netns`]): outbound only, never the host's loopback, link-local,
//!   private ranges or the host's own addresses unless `runner.egress_allow` opens them; with
//!   `runner.network = false`, none at all.
//! * **No host paths**: everything is bound from descriptors Sluice opened (`--bind-fd`), small
//!   files are copied in (`--ro-bind-data`), and job dirs live outside the data dir — so
//!   `/proc/self/mountinfo` names the job dir, engine and mirror, never the data dir.
//!
//! `runners/bwrap.toml` documents every bubblewrap flag and why.

use std::collections::BTreeMap;
use std::io::{Seek, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use nix::sys::resource::Resource;
use serde::Deserialize;

use super::netns::{self, EgressPolicy, Helpers, RunNamespaces};
use super::process::{Confinement, KeepAlive, ProcessSpec, Stdout};
use super::seccomp;
use crate::config::{RunLimits, RunnerSettings};

/// Where things are, as seen from inside a run.
pub const GUEST_WORK: &str = "/sluice/work";
pub const GUEST_BIN: &str = "/sluice/bin";
pub const GUEST_PROVIDERS: &str = "/sluice/providers";
pub const GUEST_CLI_CONFIG: &str = "/sluice/etc/terraformrc";
/// Read-only inputs (the saved plan file) are mounted here, by name.
pub const GUEST_INPUTS: &str = "/sluice/in";
/// The longest TMPDIR the plain runner hands terraform: providers listen on
/// `<TMPDIR>/plugin<digits>`, which must stay under the 108-byte unix socket path limit.
const MAX_PLAIN_TMPDIR: usize = 80;

const BUILTIN_BWRAP: &str = include_str!("../../runners/bwrap.toml");
const BUILTIN_PLAIN: &str = include_str!("../../runners/plain.toml");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Bwrap,
    Plain,
}

/// A runner profile, as written in `runners/*.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub kind: Kind,
    pub description: String,
    #[serde(default)]
    pub ro_bind_try: Vec<PathBuf>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub pass_env: Vec<String>,
}

impl Profile {
    /// A built-in name (`bwrap`, `plain`) or the path of a profile file.
    pub fn load(name_or_path: &str) -> anyhow::Result<Profile> {
        let (text, origin) = match name_or_path {
            "bwrap" => (
                BUILTIN_BWRAP.to_string(),
                "built-in profile `bwrap`".to_string(),
            ),
            "plain" => (
                BUILTIN_PLAIN.to_string(),
                "built-in profile `plain`".to_string(),
            ),
            path => (
                std::fs::read_to_string(path).with_context(|| {
                    format!("reading runner profile {path} (built-in profiles: bwrap, plain)")
                })?,
                format!("runner profile {path}"),
            ),
        };
        toml::from_str(&text).with_context(|| format!("invalid {origin}"))
    }
}

/// What the terraform driver needs to know about paths inside a run.
#[derive(Debug, Clone)]
pub struct GuestPaths {
    /// The job directory.
    pub work: PathBuf,
    /// The engine binary.
    pub engine: PathBuf,
    /// The provider mirror, when one is configured.
    pub providers: Option<PathBuf>,
    /// The terraform CLI configuration file, when one is given.
    pub cli_config: Option<PathBuf>,
}

/// One command to run in a job dir.
#[derive(Debug, Clone)]
pub struct Invocation<'a> {
    /// Host path of the job directory (writable by the run).
    pub job_dir: &'a Path,
    /// Working directory, relative to the job dir.
    pub cwd: &'a str,
    /// Host path of the engine binary (already resolved and checked).
    pub engine: &'a Path,
    /// Host path of the provider mirror.
    pub mirror: Option<&'a Path>,
    /// Host path of a terraform CLI configuration file, copied in read-only (outside the job
    /// dir, so the code of the PR cannot rewrite it between two commands of the same job).
    pub cli_config: Option<&'a Path>,
    /// Host files copied in read-only at `GUEST_INPUTS/<name>` (see [`Sandbox::input_path`]):
    /// what the run may read but must not be able to change, like the reviewed plan file.
    pub inputs: Vec<(PathBuf, String)>,
    /// Paths inside the job dir (relative to it, no `..`) bound read-only over themselves:
    /// what `init` installed (terraform's data dir, the dependency lock file), so that later
    /// commands of the job load exactly that. Opened without following any symlink; a path that
    /// is not a regular file or directory fails the command.
    pub read_only: Vec<String>,
    /// The whole job dir read-only (for commands that only read, like `show -json`).
    pub work_read_only: bool,
    /// The program to run instead of the engine: a name looked up on the run's `PATH` (a
    /// workflow's `run` step shell, `sh`) — with the engine's directory first on that `PATH`, so
    /// a script finds `terraform` — or `None` for the engine itself. Same sandbox either way.
    pub program: Option<String>,
    /// Arguments after the program name.
    pub args: Vec<String>,
    /// Variables for this run on top of the profile's (project env, credentials, TF_* wiring).
    pub env: BTreeMap<String, String>,
    pub network: bool,
    pub timeout: Duration,
    pub grace: Duration,
    pub output_cap: usize,
    pub stdout: Stdout,
}

#[derive(Debug, Clone)]
pub struct Sandbox {
    profile: Profile,
    /// Values of `pass_env`, read once at start-up.
    passed: BTreeMap<String, String>,
    /// Everything a bwrap run needs besides the profile (`None` for plain).
    bwrap: Option<Arc<Bwrap>>,
}

/// What bwrap runs are made with, resolved and checked once at start-up.
#[derive(Debug)]
struct Bwrap {
    binary: PathBuf,
    /// The seccomp program (`struct sock_filter[]`), built once.
    seccomp: Vec<u8>,
    helpers: Helpers,
    egress: EgressPolicy,
    /// Resource limits, already capped at what this process may set.
    rlimits: Vec<(Resource, u64)>,
    /// Sizes of the run's `/tmp` and `/dev/shm` (`runner.limits`).
    tmp_bytes: u64,
    dev_shm_bytes: u64,
}

/// The user and group a run inside the sandbox sees itself as (its files in the job dir appear
/// owned by them). Not root, so nothing inside mistakes itself for root.
const GUEST_ID: u32 = 65534;

impl Sandbox {
    /// Builds the sandbox for a profile, checking now (not at the first PR) that it can work:
    /// bubblewrap is recent enough, libseccomp builds the filter, and with network on,
    /// slirp4netns and `ip` are installed and `/dev/net/tun` is usable by the sandbox user.
    pub fn new(profile: Profile, runner: &RunnerSettings) -> anyhow::Result<Sandbox> {
        let passed = profile
            .pass_env
            .iter()
            .filter_map(|name| std::env::var(name).ok().map(|v| (name.clone(), v)))
            .collect();
        let bwrap = match profile.kind {
            Kind::Bwrap => Some(Arc::new(Bwrap::new(runner)?)),
            Kind::Plain => None,
        };
        Ok(Sandbox {
            profile,
            passed,
            bwrap,
        })
    }

    /// The sandbox of the settings' `runner.profile`.
    pub fn from_settings(runner: &RunnerSettings) -> anyhow::Result<Sandbox> {
        Sandbox::new(Profile::load(&runner.profile)?, runner)
    }

    /// The user and group runs use on the host: `runner.sandbox_uid:gid` when Sluice runs as
    /// root, Sluice's own otherwise (`None`).
    pub fn run_as(&self) -> Option<(u32, u32)> {
        self.bwrap.as_ref().and_then(|b| b.helpers.run_as)
    }

    pub fn is_isolated(&self) -> bool {
        self.profile.kind == Kind::Bwrap
    }

    pub fn description(&self) -> &str {
        &self.profile.description
    }

    /// Where a read-only input named `name` (host path `host`) appears inside a run.
    pub fn input_path(&self, host: &Path, name: &str) -> PathBuf {
        match self.profile.kind {
            Kind::Bwrap => Path::new(GUEST_INPUTS).join(name),
            Kind::Plain => host.to_path_buf(),
        }
    }

    /// Paths as the run sees them: fixed under bwrap (so nothing reveals the host layout, and a
    /// plan made in one job dir names the same paths when applied), the host paths otherwise.
    pub fn guest_paths(
        &self,
        job_dir: &Path,
        engine: &Path,
        mirror: Option<&Path>,
        cli_config: Option<&Path>,
    ) -> GuestPaths {
        match self.profile.kind {
            Kind::Bwrap => GuestPaths {
                work: PathBuf::from(GUEST_WORK),
                engine: Path::new(GUEST_BIN).join(engine.file_name().unwrap_or("engine".as_ref())),
                providers: mirror.map(|_| PathBuf::from(GUEST_PROVIDERS)),
                cli_config: cli_config.map(|_| PathBuf::from(GUEST_CLI_CONFIG)),
            },
            Kind::Plain => GuestPaths {
                work: job_dir.to_path_buf(),
                engine: engine.to_path_buf(),
                providers: mirror.map(Path::to_path_buf),
                cli_config: cli_config.map(Path::to_path_buf),
            },
        }
    }

    fn environment(&self, inv: &Invocation<'_>, paths: &GuestPaths) -> BTreeMap<String, String> {
        let mut env = self.profile.env.clone();
        env.extend(self.passed.clone());
        if self.profile.kind == Kind::Plain {
            // No private /tmp or HOME: keep terraform's scratch files inside the job dir.
            let scratch = paths.work.join(".sluice");
            env.insert(
                "HOME".into(),
                scratch.join("home").to_string_lossy().into_owned(),
            );
            // Providers listen on a unix socket under TMPDIR, and a socket path longer than
            // 108 bytes cannot be bound: a deep data dir falls back to the system's /tmp.
            let tmp = scratch.join("tmp");
            let tmp = if tmp.as_os_str().len() <= MAX_PLAIN_TMPDIR {
                tmp
            } else {
                PathBuf::from("/tmp")
            };
            env.insert("TMPDIR".into(), tmp.to_string_lossy().into_owned());
        }
        env.extend(inv.env.clone());
        if inv.program.is_some() {
            let engine_dir = paths
                .engine
                .parent()
                .map(|d| d.to_string_lossy().into_owned())
                .unwrap_or_default();
            let path = env.get("PATH").cloned().unwrap_or_default();
            env.insert("PATH".into(), format!("{engine_dir}:{path}"));
        }
        if let Some(cfg) = &paths.cli_config {
            env.insert(
                "TF_CLI_CONFIG_FILE".into(),
                cfg.to_string_lossy().into_owned(),
            );
        }
        env
    }

    /// The process to start for `inv`. Under bwrap this also makes the run's namespaces (and
    /// network, when it has one), which live as long as the returned spec.
    pub async fn process_spec(&self, inv: &Invocation<'_>) -> anyhow::Result<ProcessSpec> {
        if inv.cwd.split('/').any(|seg| seg == "..") || inv.cwd.starts_with('/') {
            bail!("working directory {:?} is not inside the job dir", inv.cwd);
        }
        let paths = self.guest_paths(inv.job_dir, inv.engine, inv.mirror, inv.cli_config);
        let env = self.environment(inv, &paths);
        let guest_cwd = if inv.cwd.is_empty() || inv.cwd == "." {
            paths.work.clone()
        } else {
            paths.work.join(inv.cwd)
        };
        let Some(bwrap) = &self.bwrap else {
            return plain_spec(inv, env, guest_cwd);
        };

        if let Some((uid, gid)) = bwrap.helpers.run_as {
            let dir = inv.job_dir.to_path_buf();
            tokio::task::spawn_blocking(move || hand_over(&dir, uid, gid))
                .await
                .context("handing the job dir over")??;
            // bubblewrap resolves what it binds by path, as the sandbox user.
            reachable_by(inv.job_dir, uid, gid, 0o7, "the job dir")?;
            reachable_by(inv.engine, uid, gid, 0o1, "the engine binary")?;
            if let Some(mirror) = inv.mirror {
                reachable_by(mirror, uid, gid, 0o5, "the provider mirror")?;
            }
        }
        // The engine runs from an execute-only copy (see [`exec_only_copy`]).
        let engine = {
            let (engine, cache) = (inv.engine.to_path_buf(), engine_cache_dir(inv.job_dir));
            tokio::task::spawn_blocking(move || exec_only_copy(&engine, &cache))
                .await
                .context("copying the engine")??
        };
        let (a, fds) = self.bwrap_argv(bwrap, inv, &paths, &guest_cwd, engine)?;

        let namespaces =
            RunNamespaces::start(&bwrap.helpers, inv.network.then_some(&bwrap.egress)).await?;
        Ok(ProcessSpec {
            program: bwrap.binary.clone(),
            args: a.into_iter().map(Into::into).collect(),
            // bwrap hands its own environment to the command: values never appear in argv.
            env,
            // bwrap needs no particular directory, and the sandbox user may not enter the job
            // dir's parents.
            cwd: PathBuf::from("/"),
            timeout: inv.timeout,
            grace: inv.grace,
            output_cap: inv.output_cap,
            stdout: inv.stdout.clone(),
            ignore_sigint: true,
            confine: Confinement {
                run_as: bwrap.helpers.run_as,
                namespaces: namespaces.join(),
                rlimits: bwrap.rlimits.clone(),
                inherit_fds: fds.0,
                keep_alive: Some(KeepAlive(Arc::new(namespaces))),
            },
        })
    }

    /// bubblewrap's arguments for `inv`, with the descriptors they name; `engine` is the
    /// execute-only copy of the engine binary, bound where the run finds its engine.
    fn bwrap_argv(
        &self,
        bwrap: &Bwrap,
        inv: &Invocation<'_>,
        paths: &GuestPaths,
        guest_cwd: &Path,
        engine: OwnedFd,
    ) -> anyhow::Result<(Vec<String>, Fds)> {
        let mut fds = Fds::default();
        let mut a: Vec<String> = vec![
            "--unshare-user".into(),
            "--unshare-ipc".into(),
            "--unshare-pid".into(),
            "--unshare-uts".into(),
            "--unshare-cgroup-try".into(),
            // The engine is PID 1 of the run, not a bubblewrap reaper: a reaper would hold the
            // engine's stdout (the plan JSON Sluice reads) and, readable by the run's user, let
            // the run's code reopen it through /proc/1/fd/1.
            "--as-pid-1".into(),
        ];
        if !inv.network {
            a.push("--unshare-net".into());
        }
        a.extend(
            [
                "--disable-userns",
                "--cap-drop",
                "ALL",
                "--die-with-parent",
                "--uid",
                &GUEST_ID.to_string(),
                "--gid",
                &GUEST_ID.to_string(),
                "--hostname",
                "sluice",
                "--seccomp",
                &fds.data(&bwrap.seccomp, "the seccomp program")?,
            ]
            .map(String::from),
        );
        for p in &self.profile.ro_bind_try {
            let s = p.to_string_lossy().into_owned();
            a.extend(["--ro-bind-try".into(), s.clone(), s]);
        }
        a.extend(
            [
                "--proc",
                "/proc",
                "--remount-ro",
                "/proc",
                "--dev",
                "/dev",
                "--size",
                &bwrap.dev_shm_bytes.to_string(),
                "--tmpfs",
                "/dev/shm",
                "--remount-ro",
                "/dev",
                "--size",
                &bwrap.tmp_bytes.to_string(),
                "--tmpfs",
                "/tmp",
                if inv.work_read_only {
                    "--ro-bind-fd"
                } else {
                    "--bind-fd"
                },
                &fds.open(inv.job_dir)?,
                GUEST_WORK,
                "--ro-bind-fd",
                &fds.keep(engine),
                &paths.engine.to_string_lossy(),
            ]
            .map(String::from),
        );
        for rel in &inv.read_only {
            let fd = open_beneath(inv.job_dir, rel)?;
            a.extend([
                "--ro-bind-fd".into(),
                fds.keep(fd),
                paths.work.join(rel).to_string_lossy().into_owned(),
            ]);
        }
        if let (Some(mirror), Some(guest)) = (inv.mirror, &paths.providers) {
            a.extend([
                "--ro-bind-fd".into(),
                fds.open(mirror)?,
                guest.to_string_lossy().into_owned(),
            ]);
        }
        // Small files are copied in, not bound: their host paths stay out of the run's
        // mountinfo, and a copy cannot be changed from outside while the run reads it.
        for (host_path, name) in &inv.inputs {
            if name.contains('/') || name.starts_with('.') {
                bail!("input name {name:?} must be a plain file name");
            }
            a.extend([
                "--ro-bind-data".into(),
                fds.open(host_path)?,
                self.input_path(host_path, name)
                    .to_string_lossy()
                    .into_owned(),
            ]);
        }
        if let (Some(cfg), Some(guest)) = (inv.cli_config, &paths.cli_config) {
            a.extend([
                "--ro-bind-data".into(),
                fds.open(cfg)?,
                guest.to_string_lossy().into_owned(),
            ]);
        }
        if inv.network {
            let resolv = format!("nameserver {}\n", netns::GUEST_DNS);
            a.extend([
                "--ro-bind-data".into(),
                fds.data(resolv.as_bytes(), "resolv.conf")?,
                "/etc/resolv.conf".into(),
            ]);
        }
        a.extend([
            "--chdir".into(),
            guest_cwd.to_string_lossy().into_owned(),
            "--".into(),
            match &inv.program {
                Some(p) => p.clone(),
                None => paths.engine.to_string_lossy().into_owned(),
            },
        ]);
        a.extend(inv.args.iter().cloned());
        Ok((a, fds))
    }
}

/// The plain profile: the engine itself, in the job dir, with its home and temp dirs made.
fn plain_spec(
    inv: &Invocation<'_>,
    env: BTreeMap<String, String>,
    guest_cwd: PathBuf,
) -> anyhow::Result<ProcessSpec> {
    if let Some(home) = env.get("HOME") {
        std::fs::create_dir_all(home).with_context(|| format!("creating {home}"))?;
    }
    if let Some(tmp) = env.get("TMPDIR") {
        std::fs::create_dir_all(tmp).with_context(|| format!("creating {tmp}"))?;
    }
    Ok(ProcessSpec {
        program: match &inv.program {
            Some(p) => PathBuf::from(p),
            None => inv.engine.to_path_buf(),
        },
        args: inv.args.iter().map(Into::into).collect(),
        env,
        cwd: guest_cwd,
        timeout: inv.timeout,
        grace: inv.grace,
        output_cap: inv.output_cap,
        stdout: inv.stdout.clone(),
        ignore_sigint: false,
        confine: Confinement::default(),
    })
}

impl Bwrap {
    fn new(runner: &RunnerSettings) -> anyhow::Result<Bwrap> {
        let binary = crate::config::resolve_binary(Path::new("bwrap")).context(
            "the bwrap runner needs bubblewrap: install it (Debian/Ubuntu: apt-get install bubblewrap), \
             or for development only set runner.profile = \"plain\"",
        )?;
        let help = super::process::probe(&binary, &["--help"], Duration::from_secs(10))
            .with_context(|| format!("running {} --help", binary.display()))?
            .stdout;
        for flag in [
            "--disable-userns",
            "--bind-fd",
            "--ro-bind-data",
            "--seccomp",
            "--as-pid-1",
            "--size",
        ] {
            if !help.contains(flag) {
                bail!(
                    "{} is too old: the sandbox needs bubblewrap 0.8 or later (it lacks {flag})",
                    binary.display()
                );
            }
        }
        check_suid_dumpable(
            &std::fs::read_to_string("/proc/sys/fs/suid_dumpable").unwrap_or_default(),
        )?;
        let run_as = nix::unistd::geteuid()
            .is_root()
            .then_some((runner.sandbox_uid, runner.sandbox_gid));
        let (slirp4netns, ip) = if runner.network {
            let slirp = crate::config::resolve_binary(Path::new("slirp4netns")).context(
                "runs have network (runner.network = true) through slirp4netns: install it \
                 (Debian/Ubuntu: apt-get install slirp4netns), or set runner.network = false",
            )?;
            let ip = ["ip", "/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
                .iter()
                .find_map(|p| crate::config::resolve_binary(Path::new(p)).ok())
                .context(
                    "runs have network (runner.network = true), fenced with `ip rule`: install \
                     iproute2 (Debian/Ubuntu: apt-get install iproute2), or set runner.network = false",
                )?;
            let (uid, gid) = run_as.unwrap_or_else(|| {
                (
                    nix::unistd::getuid().as_raw(),
                    nix::unistd::getgid().as_raw(),
                )
            });
            netns::check_tun(uid, gid)?;
            (Some(slirp), Some(ip))
        } else {
            (None, None)
        };
        let holder = ["cat", "/usr/bin/cat", "/bin/cat"]
            .iter()
            .find_map(|p| crate::config::resolve_binary(Path::new(p)).ok())
            .context(
                "`cat` (coreutils) is missing; the sandbox uses it to hold a run's namespaces",
            )?;
        Ok(Bwrap {
            binary,
            seccomp: seccomp::build()?,
            helpers: Helpers {
                holder,
                slirp4netns,
                ip,
                run_as,
            },
            egress: EgressPolicy::from_settings(&runner.egress_allow)?,
            rlimits: rlimits(&runner.limits),
            tmp_bytes: runner.limits.tmp_bytes,
            dev_shm_bytes: runner.limits.dev_shm_bytes,
        })
    }
}

/// Refuses to start when `fs.suid_dumpable` (the text of `/proc/sys/fs/suid_dumpable`) is 1:
/// with that debugging setting the kernel keeps a process that runs a file it may not read
/// dumpable, and the run's code could reach the engine's stdout and environment through /proc
/// (see [`exec_only_copy`]). 0 (the default) and 2 are fine; a kernel without the file is too.
fn check_suid_dumpable(setting: &str) -> anyhow::Result<()> {
    if setting.trim() == "1" {
        bail!(
            "fs.suid_dumpable is 1 on this host: the sandbox relies on the kernel making the \
             engine non-dumpable, so that the code of a pull request cannot reach its output or \
             environment through /proc. Set it to 0 (sysctl -w fs.suid_dumpable=0) or 2"
        );
    }
    Ok(())
}

/// Makes sure the jobs dir exists, is this user's alone (a jobs dir others can write could be
/// prepared by them with links and planted files) and is neither inside the data dir nor around
/// it: a run sees the path of its own job dir, and must not learn the data dir's. Returns the
/// absolute path.
pub fn prepare_jobs_dir(
    jobs: &Path,
    data_dir: &Path,
    run_as: Option<(u32, u32)>,
) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let abs = |p: &Path| {
        std::fs::canonicalize(p)
            .or_else(|_| std::path::absolute(p))
            .with_context(|| format!("resolving {}", p.display()))
    };
    let data = abs(data_dir)?;
    let wanted = abs(jobs)?;
    if wanted.starts_with(&data) || data.starts_with(&wanted) {
        bail!(
            "runner.jobs_dir {} must not be inside the data dir {} (nor contain it): a run can see \
             the path of its job dir, and must not learn where the server keeps its data",
            wanted.display(),
            data.display()
        );
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&wanted)
        .with_context(|| format!("creating the jobs dir {}", wanted.display()))?;
    let meta = std::fs::symlink_metadata(&wanted)
        .with_context(|| format!("reading {}", wanted.display()))?;
    let me = nix::unistd::geteuid().as_raw();
    if !meta.is_dir() || meta.uid() != me || meta.mode() & 0o022 != 0 {
        bail!(
            "the jobs dir {} must be a directory owned by uid {me} and writable by it alone \
             (found uid {}, mode {:o}); another user could prepare job dirs in it",
            wanted.display(),
            meta.uid(),
            meta.mode() & 0o7777
        );
    }
    if let Some((uid, gid)) = run_as {
        // Runs use another user, which must pass through (not list) the jobs dir to reach
        // the job dir handed to it.
        std::fs::set_permissions(&wanted, std::os::unix::fs::PermissionsExt::from_mode(0o711))
            .with_context(|| format!("chmod {}", wanted.display()))?;
        reachable_by(&wanted, uid, gid, 0o1, "the jobs dir (runner.jobs_dir)")?;
    }
    abs(&wanted)
}

/// `runner.limits` as rlimits, each capped at this process's own hard limit (which an
/// unprivileged process cannot raise), plus no core dumps (a core of terraform holds its
/// credentials).
fn rlimits(l: &RunLimits) -> Vec<(Resource, u64)> {
    [
        (Resource::RLIMIT_NPROC, l.processes),
        (Resource::RLIMIT_AS, l.address_space_bytes),
        (Resource::RLIMIT_FSIZE, l.file_size_bytes),
        (Resource::RLIMIT_NOFILE, l.open_files),
        (Resource::RLIMIT_CORE, 0),
    ]
    .into_iter()
    .map(|(r, want)| {
        let hard = nix::sys::resource::getrlimit(r).map_or(want, |(_, hard)| hard);
        (r, want.min(hard))
    })
    .collect()
}

/// The directory of the jobs dir where execute-only copies of engine binaries are kept
/// (see [`exec_only_copy`]); a one-off command such as `sluice preview` removes it when done.
pub const ENGINE_COPIES: &str = ".engines";

/// Where execute-only copies of engine binaries are kept: [`ENGINE_COPIES`] in the jobs dir
/// (the job dir's parent), private to Sluice like the jobs dir itself.
fn engine_cache_dir(job_dir: &Path) -> PathBuf {
    job_dir
        .parent()
        .unwrap_or(Path::new("/"))
        .join(ENGINE_COPIES)
}

/// An execute-only (mode 0111) copy of `engine` in `cache` (made once per binary, kept while
/// the binary stays the same), opened `O_PATH` for binding. Why: the kernel marks a process
/// *non-dumpable* when it executes a file it may not read, and the `/proc/<pid>/fd`, `mem`
/// and `environ` of a non-dumpable process are closed to everyone without `CAP_SYS_PTRACE`
/// — which no process of a run holds. So a provider (or anything a provider starts) cannot
/// reopen the engine's stdout through `/proc/<engine>/fd/1` to write a forged plan into it,
/// nor read its environment, even though it runs as the same host user as the engine (as it
/// does when Sluice does not run as root). Inside the run the copy is on a read-only bind: its
/// owner cannot `chmod` it readable.
fn exec_only_copy(engine: &Path, cache: &Path) -> anyhow::Result<OwnedFd> {
    use nix::fcntl::{OFlag, open};
    use nix::sys::stat::Mode;
    use sha2::{Digest, Sha256};
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let real =
        std::fs::canonicalize(engine).with_context(|| format!("resolving {}", engine.display()))?;
    let meta = std::fs::metadata(&real).with_context(|| format!("reading {}", real.display()))?;
    let key = hex::encode(
        &Sha256::digest(format!(
            "{}\0{}\0{}\0{}\0{}\0{}",
            real.display(),
            meta.dev(),
            meta.ino(),
            meta.len(),
            meta.mtime(),
            meta.mtime_nsec()
        ))[..12],
    );
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o711)
        .create(cache)
        .with_context(|| format!("creating {}", cache.display()))?;
    let copy = cache.join(&key);
    let me = nix::unistd::geteuid().as_raw();
    let usable = |m: &std::fs::Metadata| {
        m.file_type().is_file()
            && m.uid() == me
            && m.mode() & 0o7777 == 0o111
            && m.len() == meta.len()
    };
    // One copy at a time in this process (jobs start together); other processes sharing the
    // jobs dir write their own temp file, and the rename makes one of them the copy.
    static COPYING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = COPYING.lock().unwrap_or_else(|e| e.into_inner());
    if !std::fs::symlink_metadata(&copy).is_ok_and(|m| usable(&m)) {
        let mut src =
            std::fs::File::open(&real).with_context(|| format!("opening {}", real.display()))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!("{key}."))
            .tempfile_in(cache)
            .with_context(|| format!("a temp file in {}", cache.display()))?;
        std::io::copy(&mut src, tmp.as_file_mut())
            .and_then(|_| tmp.as_file().sync_all())
            .and_then(|()| {
                tmp.as_file()
                    .set_permissions(std::fs::Permissions::from_mode(0o111))
            })
            .with_context(|| format!("copying {} to {}", real.display(), cache.display()))?;
        tmp.persist(&copy)
            .with_context(|| format!("renaming into {}", copy.display()))?;
    }
    // Opened by descriptor from here on: a copy removed or replaced later changes nothing.
    let fd = open(
        &copy,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("opening {}", copy.display()))?;
    let m = nix::sys::stat::fstat(&fd).with_context(|| format!("reading {}", copy.display()))?;
    if m.st_mode & nix::libc::S_IFMT != nix::libc::S_IFREG
        || m.st_uid != me
        || m.st_mode & 0o7777 != 0o111
    {
        bail!(
            "{} is not an execute-only copy of {} owned by uid {me}; remove it",
            copy.display(),
            real.display()
        );
    }
    Ok(fd)
}

/// Opens `rel` under `root` without following any symlink on the way (a run could have made
/// any component of it one, pointing at a host file that Sluice would then bind into the
/// run). The result must be a regular file or a directory.
fn open_beneath(root: &Path, rel: &str) -> anyhow::Result<OwnedFd> {
    use nix::fcntl::{OFlag, open, openat};
    use nix::sys::stat::Mode;
    let segs: Vec<&str> = rel
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    if segs.is_empty() || segs.contains(&"..") {
        bail!("{rel:?} is not a path inside the job dir");
    }
    let dir_flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut fd = open(root, dir_flags, Mode::empty())
        .with_context(|| format!("opening {}", root.display()))?;
    for (i, seg) in segs.iter().enumerate() {
        let last = i + 1 == segs.len();
        let flags = if last {
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
        } else {
            dir_flags
        };
        fd = openat(&fd, *seg, flags, Mode::empty()).with_context(|| {
            format!("opening {rel} in the job dir (it must not go through a symlink)")
        })?;
    }
    let m = nix::sys::stat::fstat(&fd).with_context(|| format!("reading {rel}"))?;
    let kind = m.st_mode & nix::libc::S_IFMT;
    if kind != nix::libc::S_IFREG && kind != nix::libc::S_IFDIR {
        bail!("{rel} in the job dir is neither a file nor a directory");
    }
    Ok(fd)
}

/// Descriptors a bwrap run inherits, named in its arguments by number.
#[derive(Default)]
struct Fds(Vec<Arc<OwnedFd>>);

impl Fds {
    /// Opens `path` (a file or directory) and returns its descriptor number.
    fn open(&mut self, path: &Path) -> anyhow::Result<String> {
        let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        Ok(self.keep(OwnedFd::from(f)))
    }

    /// A descriptor reading `bytes` (an unlinked temp file, so any size fits).
    fn data(&mut self, bytes: &[u8], what: &str) -> anyhow::Result<String> {
        let mut f = tempfile::tempfile().with_context(|| format!("a temp file for {what}"))?;
        f.write_all(bytes)
            .and_then(|()| f.rewind())
            .with_context(|| format!("writing {what}"))?;
        Ok(self.keep(OwnedFd::from(f)))
    }

    fn keep(&mut self, fd: OwnedFd) -> String {
        let n = fd.as_raw_fd().to_string();
        self.0.push(Arc::new(fd));
        n
    }
}

/// Checks that `uid:gid` (the sandbox user, without supplementary groups) can reach `path` and
/// has the permission bits `want` (`0o4` read, `0o2` write, `0o1` execute/search) on it, so a
/// root-owned directory on the way is reported plainly rather than as bubblewrap's "Can't find
/// source path".
fn reachable_by(path: &Path, uid: u32, gid: u32, want: u32, what: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let real =
        std::fs::canonicalize(path).with_context(|| format!("resolving {}", path.display()))?;
    let bits = |meta: &std::fs::Metadata| -> u32 {
        let mode = meta.mode();
        if meta.uid() == uid {
            (mode >> 6) & 7
        } else if meta.gid() == gid {
            (mode >> 3) & 7
        } else {
            mode & 7
        }
    };
    for dir in real.ancestors().skip(1) {
        let meta = std::fs::metadata(dir).with_context(|| format!("reading {}", dir.display()))?;
        if bits(&meta) & 1 == 0 {
            bail!(
                "{what} {} is out of reach of the sandbox user {uid}:{gid} (runs never run as root): \
                 {} has mode {:o}. Give others search permission on it (chmod o+x), or move {what} elsewhere",
                path.display(),
                dir.display(),
                meta.mode() & 0o7777
            );
        }
    }
    let meta = std::fs::metadata(&real).with_context(|| format!("reading {}", real.display()))?;
    if bits(&meta) & want != want {
        bail!(
            "{what} {} (mode {:o}, owner {}) is not usable by the sandbox user {uid}:{gid} \
             (runs never run as root): make it readable by others (chmod o+rX)",
            path.display(),
            meta.mode() & 0o7777,
            meta.uid()
        );
    }
    Ok(())
}

/// Gives the job dir and everything in it to `uid:gid` (the sandbox user, when Sluice runs as
/// root), so the run can write where terraform writes. Never follows a symlink. Children first
/// and the dir itself last: a dir owned by the user was handed over completely, so later
/// commands of the same job skip the walk.
fn hand_over(dir: &Path, uid: u32, gid: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(dir).with_context(|| format!("{}", dir.display()))?;
    if meta.uid() == uid && meta.gid() == gid {
        return Ok(());
    }
    fn walk(dir: &Path, uid: u32, gid: u32) -> anyhow::Result<()> {
        for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                walk(&path, uid, gid)?;
            }
            std::os::unix::fs::lchown(&path, Some(uid), Some(gid))
                .with_context(|| format!("chown {}", path.display()))?;
        }
        Ok(())
    }
    walk(dir, uid, gid)?;
    // Its owner's alone: other processes of the sandbox user on the host must not read plans.
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .with_context(|| format!("chmod {}", dir.display()))?;
    std::os::unix::fs::lchown(dir, Some(uid), Some(gid))
        .with_context(|| format!("chown {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_profiles_parse() {
        let b = Profile::load("bwrap").unwrap();
        assert_eq!(b.kind, Kind::Bwrap);
        assert!(
            b.pass_env.is_empty(),
            "nothing from the server env by default"
        );
        let p = Profile::load("plain").unwrap();
        assert_eq!(p.kind, Kind::Plain);
        assert!(p.description.contains("NOT ISOLATED"));
    }

    #[test]
    fn unknown_profile_keys_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.toml");
        std::fs::write(&f, "kind = \"bwrap\"\ndescription = \"x\"\nro_bind = []\n").unwrap();
        let err = format!("{:#}", Profile::load(f.to_str().unwrap()).unwrap_err());
        assert!(err.contains("ro_bind"), "{err}");
        let err = format!(
            "{:#}",
            Profile::load("/nonexistent/profile.toml").unwrap_err()
        );
        assert!(err.contains("built-in profiles"), "{err}");
    }

    fn settings(profile: &str, network: bool) -> RunnerSettings {
        RunnerSettings {
            profile: profile.to_string(),
            network,
            ..RunnerSettings::default()
        }
    }

    fn invocation<'a>(job_dir: &'a Path, cwd: &'a str, network: bool) -> Invocation<'a> {
        Invocation {
            job_dir,
            cwd,
            engine: Path::new("/bin/sh"),
            mirror: None,
            cli_config: None,
            inputs: vec![],
            read_only: vec![],
            work_read_only: false,
            program: None,
            args: vec!["plan".into()],
            env: BTreeMap::new(),
            network,
            timeout: Duration::from_secs(1),
            grace: Duration::from_secs(1),
            output_cap: 1000,
            stdout: Stdout::Captured,
        }
    }

    #[tokio::test]
    async fn values_never_travel_in_argv() {
        let sb = Sandbox::from_settings(&settings("bwrap", false)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut inv = invocation(dir.path(), "repo/envs/prod", false);
        inv.env = BTreeMap::from([("AWS_SECRET_ACCESS_KEY".to_string(), "hunter2".to_string())]);
        let spec = sb.process_spec(&inv).await.unwrap();
        let argv: Vec<String> = spec
            .args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(!argv.iter().any(|a| a.contains("hunter2")));
        assert_eq!(spec.env["AWS_SECRET_ACCESS_KEY"], "hunter2");
        assert!(
            argv.windows(2)
                .any(|w| w[0] == "--chdir" && w[1] == "/sluice/work/repo/envs/prod")
        );
        assert!(spec.ignore_sigint);
    }

    #[tokio::test]
    async fn every_bwrap_run_is_confined() {
        let sb = Sandbox::from_settings(&settings("bwrap", false)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let spec = sb
            .process_spec(&invocation(dir.path(), ".", false))
            .await
            .unwrap();
        let argv: Vec<String> = spec
            .args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let joined = argv.join(" ");
        for flag in [
            "--unshare-user",
            "--unshare-pid",
            "--unshare-net",
            "--disable-userns",
            "--cap-drop ALL",
            "--die-with-parent",
            "--remount-ro /proc",
            "--as-pid-1",
            "--remount-ro /dev",
            "--tmpfs /dev/shm",
            "--tmpfs /tmp",
        ] {
            assert!(joined.contains(flag), "{flag} missing: {joined}");
        }
        // The seccomp program and the job dir travel as descriptors the process inherits.
        let fd_after = |flag: &str| -> i32 {
            argv.windows(2)
                .find(|w| w[0] == flag)
                .map(|w| w[1].parse().unwrap())
                .unwrap()
        };
        let inherited: Vec<i32> = spec
            .confine
            .inherit_fds
            .iter()
            .map(|f| f.as_raw_fd())
            .collect();
        assert!(inherited.contains(&fd_after("--seccomp")));
        // Both tmpfs have a size.
        assert_eq!(
            argv.iter().filter(|a| *a == "--size").count(),
            2,
            "{joined}"
        );
        assert!(inherited.contains(&fd_after("--bind-fd")));
        assert!(
            !joined.contains(&dir.path().display().to_string()),
            "{joined}"
        );
        // Its own user namespace to join, limits, and (as root) another user.
        assert_eq!(spec.confine.namespaces.len(), 1);
        assert!(spec.confine.keep_alive.is_some());
        assert!(
            spec.confine
                .rlimits
                .iter()
                .any(|(r, v)| *r == Resource::RLIMIT_NPROC && *v <= 4096)
        );
        assert_eq!(
            spec.confine.run_as.is_some(),
            nix::unistd::geteuid().is_root()
        );
    }

    #[tokio::test]
    async fn cwd_must_stay_in_the_job_dir() {
        let sb = Sandbox::from_settings(&settings("plain", true)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        for cwd in ["../other-job", "/etc", "repo/../../x"] {
            assert!(
                sb.process_spec(&invocation(dir.path(), cwd, true))
                    .await
                    .is_err(),
                "{cwd}"
            );
        }
    }

    #[tokio::test]
    async fn plain_tmpdir_stays_short_enough_for_provider_sockets() {
        let sb = Sandbox::from_settings(&settings("plain", true)).unwrap();
        let root = tempfile::tempdir().unwrap();
        let deep = root
            .path()
            .join("a-rather-long-data-directory-name".repeat(3));
        for (job_dir, expect_inside) in [(root.path().to_path_buf(), true), (deep, false)] {
            let spec = sb
                .process_spec(&invocation(&job_dir, ".", true))
                .await
                .unwrap();
            let tmp = &spec.env["TMPDIR"];
            assert!(tmp.len() <= MAX_PLAIN_TMPDIR, "{tmp}");
            assert_eq!(Path::new(tmp).starts_with(&job_dir), expect_inside, "{tmp}");
        }
    }

    #[test]
    fn jobs_dir_is_outside_the_data_dir_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        for (jobs, data) in [
            (data.join("jobs"), data.clone()),
            (root.path().to_path_buf(), data.clone()),
        ] {
            let err = format!("{:#}", prepare_jobs_dir(&jobs, &data, None).unwrap_err());
            assert!(err.contains("must not be inside the data dir"), "{err}");
        }
        let jobs = root.path().join("jobs");
        let made = prepare_jobs_dir(&jobs, &data, None).unwrap();
        let mode = std::fs::metadata(&made).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        // Writable by others: someone else could have prepared job dirs in it.
        std::fs::set_permissions(&jobs, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = format!("{:#}", prepare_jobs_dir(&jobs, &data, None).unwrap_err());
        assert!(err.contains("writable by it alone"), "{err}");
        std::fs::set_permissions(&jobs, std::fs::Permissions::from_mode(0o700)).unwrap();
        if nix::unistd::geteuid().is_root() {
            // Runs use another user: it may pass through to its job dir, not list the others.
            std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
            prepare_jobs_dir(&jobs, &data, Some((65534, 65534))).unwrap();
            let mode = std::fs::metadata(&jobs).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o711);
        }
    }

    #[test]
    fn the_engine_must_be_made_non_dumpable() {
        assert!(check_suid_dumpable("0\n").is_ok());
        assert!(check_suid_dumpable("2\n").is_ok());
        assert!(check_suid_dumpable("").is_ok());
        let err = format!("{:#}", check_suid_dumpable("1\n").unwrap_err());
        assert!(err.contains("fs.suid_dumpable is 1"), "{err}");
    }

    #[test]
    fn sealed_paths_are_opened_without_following_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let job = dir.path();
        std::fs::create_dir_all(job.join("repo/a")).unwrap();
        std::fs::write(job.join("repo/a/.terraform.lock.hcl"), "").unwrap();
        std::fs::write(dir.path().join("host-secret"), "s").unwrap();
        assert!(open_beneath(job, "repo/a/.terraform.lock.hcl").is_ok());
        assert!(open_beneath(job, "repo/a").is_ok());
        // A link planted for the file itself or for a directory on the way is refused.
        std::os::unix::fs::symlink(dir.path().join("host-secret"), job.join("repo/link")).unwrap();
        std::os::unix::fs::symlink(dir.path(), job.join("repo/up")).unwrap();
        for rel in [
            "repo/link",
            "repo/up/host-secret",
            "../host-secret",
            "repo/../x",
            "",
        ] {
            assert!(open_beneath(job, rel).is_err(), "{rel}");
        }
    }

    #[test]
    fn the_engine_copy_is_execute_only_and_made_once() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let engine = dir.path().join("terraform");
        std::fs::write(&engine, "#!/bin/sh\n").unwrap();
        let cache = dir.path().join("jobs/.engines");
        let fd = exec_only_copy(&engine, &cache).unwrap();
        let copies: Vec<_> = std::fs::read_dir(&cache).unwrap().collect();
        assert_eq!(copies.len(), 1);
        let copy = copies[0].as_ref().unwrap().path();
        let meta = std::fs::metadata(&copy).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o111);
        assert_eq!(nix::sys::stat::fstat(&fd).unwrap().st_ino, meta.ino());
        exec_only_copy(&engine, &cache).unwrap();
        assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1, "made once");
        // A changed engine gets a new copy.
        std::fs::write(&engine, "#!/bin/sh\n# v2\n").unwrap();
        exec_only_copy(&engine, &cache).unwrap();
        assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 2);
    }

    #[test]
    fn handing_over_never_follows_symlinks() {
        use std::os::unix::fs::MetadataExt;
        if !nix::unistd::geteuid().is_root() {
            // Only root can give files away; the unprivileged case never hands anything over.
            assert!(hand_over(Path::new("/nonexistent"), 1, 1).is_err());
            return;
        }
        let root = tempfile::tempdir().unwrap();
        let outside = root.path().join("outside");
        std::fs::write(&outside, "host file").unwrap();
        let job = root.path().join("job");
        std::fs::create_dir_all(job.join("repo/sub")).unwrap();
        std::fs::write(job.join("repo/sub/main.tf"), "").unwrap();
        std::os::unix::fs::symlink(&outside, job.join("repo/link")).unwrap();
        hand_over(&job, 65534, 65534).unwrap();
        for p in ["", "repo", "repo/sub", "repo/sub/main.tf"] {
            assert_eq!(std::fs::metadata(job.join(p)).unwrap().uid(), 65534, "{p}");
        }
        assert_eq!(
            std::fs::symlink_metadata(job.join("repo/link"))
                .unwrap()
                .uid(),
            65534
        );
        assert_eq!(
            std::fs::metadata(&outside).unwrap().uid(),
            0,
            "followed a symlink"
        );
    }
}
