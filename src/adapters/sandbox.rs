//! The sandbox: turns "run this engine command in this job dir" into a [`ProcessSpec`] that runs
//! it under a runner profile (`runners/*.toml`): bubblewrap, or a plain process for development.
//!
//! The threat model (PRODUCT.md §8): the code of a PR is hostile. Under bwrap a run sees its own
//! job dir (writable), the engine binary and provider mirror (read-only), a private /tmp and
//! /proc, read-only system libraries — never the server's data dir, config, secrets or other
//! jobs. Its environment is built here from scratch; the server's own is never inherited, and
//! values travel through the process environment, never argv (argv is world-readable in /proc).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

use super::process::{ProcessSpec, Stdout};

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
    /// Host path of a terraform CLI configuration file, mounted read-only (outside the job dir,
    /// so the code of the PR cannot rewrite it between two commands of the same job).
    pub cli_config: Option<&'a Path>,
    /// Host files mounted read-only at `GUEST_INPUTS/<name>` (see [`Sandbox::input_path`]): what
    /// the run may read but must not be able to change, like the reviewed plan file.
    pub inputs: Vec<(PathBuf, String)>,
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
    /// Resolved `bwrap` binary for bwrap profiles.
    bwrap: Option<PathBuf>,
    /// Values of `pass_env`, read once at start-up.
    passed: BTreeMap<String, String>,
}

impl Sandbox {
    /// Builds the sandbox for a profile, checking now (not at the first PR) that it can work.
    pub fn new(profile: Profile) -> anyhow::Result<Sandbox> {
        let bwrap = match profile.kind {
            Kind::Bwrap => Some(crate::config::resolve_binary(Path::new("bwrap")).context(
                "the bwrap runner needs bubblewrap: install it (Debian/Ubuntu: apt-get install bubblewrap), \
                 or for development only set runner.profile = \"plain\"",
            )?),
            Kind::Plain => None,
        };
        let passed = profile
            .pass_env
            .iter()
            .filter_map(|name| std::env::var(name).ok().map(|v| (name.clone(), v)))
            .collect();
        Ok(Sandbox {
            profile,
            bwrap,
            passed,
        })
    }

    pub fn from_settings(profile: &str) -> anyhow::Result<Sandbox> {
        Sandbox::new(Profile::load(profile)?)
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
        if let Some(cfg) = &paths.cli_config {
            env.insert(
                "TF_CLI_CONFIG_FILE".into(),
                cfg.to_string_lossy().into_owned(),
            );
        }
        env
    }

    /// The process to start for `inv`.
    pub fn process_spec(&self, inv: &Invocation<'_>) -> anyhow::Result<ProcessSpec> {
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
        match self.profile.kind {
            Kind::Plain => {
                if let Some(home) = env.get("HOME") {
                    std::fs::create_dir_all(home).with_context(|| format!("creating {home}"))?;
                }
                if let Some(tmp) = env.get("TMPDIR") {
                    std::fs::create_dir_all(tmp).with_context(|| format!("creating {tmp}"))?;
                }
                Ok(ProcessSpec {
                    program: inv.engine.to_path_buf(),
                    args: inv.args.iter().map(Into::into).collect(),
                    env,
                    cwd: guest_cwd,
                    timeout: inv.timeout,
                    grace: inv.grace,
                    output_cap: inv.output_cap,
                    stdout: inv.stdout.clone(),
                    ignore_sigint: false,
                })
            }
            Kind::Bwrap => {
                let bwrap = self
                    .bwrap
                    .clone()
                    .expect("bwrap profiles resolve bwrap in new()");
                let mut a: Vec<String> = vec![
                    "--unshare-all".into(),
                    "--die-with-parent".into(),
                    "--hostname".into(),
                    "sluice".into(),
                ];
                if inv.network {
                    a.push("--share-net".into());
                }
                for p in &self.profile.ro_bind_try {
                    let s = p.to_string_lossy().into_owned();
                    a.extend(["--ro-bind-try".into(), s.clone(), s]);
                }
                a.extend([
                    "--proc".into(),
                    "/proc".into(),
                    "--dev".into(),
                    "/dev".into(),
                    "--tmpfs".into(),
                    "/tmp".into(),
                    "--bind".into(),
                    host(inv.job_dir)?,
                    GUEST_WORK.into(),
                    "--ro-bind".into(),
                    host(inv.engine)?,
                    paths.engine.to_string_lossy().into_owned(),
                ]);
                if let (Some(mirror), Some(guest)) = (inv.mirror, &paths.providers) {
                    a.extend([
                        "--ro-bind".into(),
                        host(mirror)?,
                        guest.to_string_lossy().into_owned(),
                    ]);
                }
                for (host_path, name) in &inv.inputs {
                    if name.contains('/') || name.starts_with('.') {
                        bail!("input name {name:?} must be a plain file name");
                    }
                    a.extend([
                        "--ro-bind".into(),
                        host(host_path)?,
                        self.input_path(host_path, name)
                            .to_string_lossy()
                            .into_owned(),
                    ]);
                }
                if let (Some(cfg), Some(guest)) = (inv.cli_config, &paths.cli_config) {
                    a.extend([
                        "--ro-bind".into(),
                        host(cfg)?,
                        guest.to_string_lossy().into_owned(),
                    ]);
                }
                a.extend([
                    "--chdir".into(),
                    guest_cwd.to_string_lossy().into_owned(),
                    "--".into(),
                    paths.engine.to_string_lossy().into_owned(),
                ]);
                a.extend(inv.args.iter().cloned());
                Ok(ProcessSpec {
                    program: bwrap,
                    args: a.into_iter().map(Into::into).collect(),
                    // bwrap hands its own environment to the command: values never appear in argv.
                    env,
                    // bwrap itself needs no particular directory; the job dir is a safe place.
                    cwd: inv.job_dir.to_path_buf(),
                    timeout: inv.timeout,
                    grace: inv.grace,
                    output_cap: inv.output_cap,
                    stdout: inv.stdout.clone(),
                    ignore_sigint: true,
                })
            }
        }
    }
}

fn host(p: &Path) -> anyhow::Result<String> {
    let canon = std::fs::canonicalize(p).with_context(|| format!("resolving {}", p.display()))?;
    canon
        .to_str()
        .map(str::to_string)
        .with_context(|| format!("{} is not valid UTF-8", canon.display()))
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

    #[test]
    fn values_never_travel_in_argv() {
        let sb = Sandbox::from_settings("bwrap").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let spec = sb
            .process_spec(&Invocation {
                job_dir: dir.path(),
                cwd: "repo/envs/prod",
                engine: Path::new("/bin/sh"),
                mirror: None,
                cli_config: None,
                inputs: vec![],
                args: vec!["plan".into()],
                env: BTreeMap::from([("AWS_SECRET_ACCESS_KEY".to_string(), "hunter2".to_string())]),
                network: false,
                timeout: Duration::from_secs(1),
                grace: Duration::from_secs(1),
                output_cap: 1000,
                stdout: Stdout::Captured,
            })
            .unwrap();
        let argv: Vec<String> = spec
            .args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(!argv.iter().any(|a| a.contains("hunter2")));
        assert_eq!(spec.env["AWS_SECRET_ACCESS_KEY"], "hunter2");
        assert!(!argv.contains(&"--share-net".to_string()));
        assert!(
            argv.windows(2)
                .any(|w| w[0] == "--chdir" && w[1] == "/sluice/work/repo/envs/prod")
        );
        assert!(spec.ignore_sigint);
    }

    #[test]
    fn cwd_must_stay_in_the_job_dir() {
        let sb = Sandbox::from_settings("plain").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let inv = Invocation {
            job_dir: dir.path(),
            cwd: "../other-job",
            engine: Path::new("/bin/sh"),
            mirror: None,
            cli_config: None,
            inputs: vec![],
            args: vec![],
            env: BTreeMap::new(),
            network: true,
            timeout: Duration::from_secs(1),
            grace: Duration::from_secs(1),
            output_cap: 1000,
            stdout: Stdout::Captured,
        };
        assert!(sb.process_spec(&inv).is_err());
    }

    #[test]
    fn plain_tmpdir_stays_short_enough_for_provider_sockets() {
        let sb = Sandbox::from_settings("plain").unwrap();
        let root = tempfile::tempdir().unwrap();
        let deep = root
            .path()
            .join("a-rather-long-data-directory-name".repeat(3));
        for (job_dir, expect_inside) in [(root.path().to_path_buf(), true), (deep, false)] {
            let spec = sb
                .process_spec(&Invocation {
                    job_dir: &job_dir,
                    cwd: ".",
                    engine: Path::new("/bin/sh"),
                    mirror: None,
                    cli_config: None,
                    inputs: vec![],
                    args: vec![],
                    env: BTreeMap::new(),
                    network: true,
                    timeout: Duration::from_secs(1),
                    grace: Duration::from_secs(1),
                    output_cap: 1000,
                    stdout: Stdout::Captured,
                })
                .unwrap();
            let tmp = &spec.env["TMPDIR"];
            assert!(tmp.len() <= MAX_PLAIN_TMPDIR, "{tmp}");
            assert_eq!(Path::new(tmp).starts_with(&job_dir), expect_inside, "{tmp}");
        }
    }
}
