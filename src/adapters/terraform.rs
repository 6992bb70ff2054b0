//! Driving terraform / OpenTofu inside the sandbox: resolve the binary for a project, write the
//! CLI configuration, and run `init`, `workspace select|new`, `plan -out`, `show -json` and
//! `apply <planfile>` with the right flags and exit-code handling.
//!
//! What a step's output *means* (summaries, rendering) is the core's business, not this module's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio_util::sync::CancellationToken;

use super::process::{self, LineSink, ProcessOutput, Stdout, Termination};
use super::sandbox::{Invocation, Sandbox};
use crate::core::types::Engine;

/// Finds the engine binary for a project: a pinned version from the versions dir, else the
/// configured default binary, else the engine's name on PATH. The result is checked to exist and
/// be executable, so a missing binary is reported before any job starts.
#[derive(Debug, Clone, Default)]
pub struct EngineResolver {
    pub terraform_bin: Option<PathBuf>,
    pub tofu_bin: Option<PathBuf>,
    pub versions_dir: Option<PathBuf>,
}

impl EngineResolver {
    pub fn resolve(&self, engine: Engine, version: Option<&str>) -> anyhow::Result<PathBuf> {
        if let Some(version) = version {
            if !version
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
            {
                bail!("terraform_version {version:?} is not a version number");
            }
            let Some(dir) = &self.versions_dir else {
                bail!(
                    "the project pins {engine} {version}, but no engine_versions_dir is configured; \
                     install it as <engine_versions_dir>/{engine}/{version}/{} or remove the pin",
                    engine.default_binary()
                );
            };
            let path = dir
                .join(engine.as_str())
                .join(version)
                .join(engine.default_binary());
            return crate::config::resolve_binary(&path)
                .with_context(|| format!("{engine} {version} is not installed"));
        }
        let configured = match engine {
            Engine::Terraform => self.terraform_bin.clone(),
            Engine::Opentofu => self.tofu_bin.clone(),
        };
        let wanted = configured.unwrap_or_else(|| PathBuf::from(engine.default_binary()));
        crate::config::resolve_binary(&wanted)
            .with_context(|| format!("{engine} binary unavailable{}", unavailable_hint(engine)))
    }
}

/// Why a project needs the engine, for the error when it is not installed: a project runs with
/// OpenTofu when it says so or when its files are ones only OpenTofu reads.
fn unavailable_hint(engine: Engine) -> &'static str {
    match engine {
        Engine::Terraform => "",
        Engine::Opentofu => {
            " (the project sets `engine: opentofu`, or its configuration has `.tofu`/`.tofu.json` \
             files, which only OpenTofu reads; install `tofu` and set tofu_bin / SLUICE_TOFU_BIN)"
        }
    }
}

/// How long `<engine> version` may take when the `version` command asks for it.
pub const VERSION_TIMEOUT: Duration = Duration::from_secs(20);

/// The first line of `<binary> version` (`Terraform v1.0.3`), run outside the sandbox — it reads
/// no pull-request code — through `process::run` like every other process: explicit argv, empty
/// environment (plus `CHECKPOINT_DISABLE`), its own process group, a timeout (the flows use
/// [`VERSION_TIMEOUT`]), capped output.
pub async fn binary_version(binary: &Path, timeout: Duration) -> anyhow::Result<String> {
    let cwd = binary
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("/"))
        .to_path_buf();
    let spec = process::ProcessSpec {
        program: binary.to_path_buf(),
        args: vec!["version".into()],
        env: BTreeMap::from([("CHECKPOINT_DISABLE".to_string(), "1".to_string())]),
        cwd,
        timeout,
        grace: Duration::from_secs(2),
        output_cap: 64 * 1024,
        stdout: Stdout::Captured,
        ignore_sigint: false,
        confine: process::Confinement::default(),
    };
    let out = process::run(&spec, None, &CancellationToken::new())
        .await
        .with_context(|| format!("running {} version", binary.display()))?;
    match out.termination {
        Termination::Exited(0) => {}
        Termination::TimedOut => bail!(
            "`{} version` did not answer within {}s",
            binary.display(),
            timeout.as_secs_f32()
        ),
        other => bail!("`{} version` ended {other:?}", binary.display()),
    }
    Ok(out.output.lines().next().unwrap_or("").trim().to_string())
}

/// Limits applied to every engine command of a job.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub timeout: Duration,
    pub grace: Duration,
    pub output_cap: usize,
    pub plan_json_cap: u64,
    pub network: bool,
}

/// The terraform CLI configuration for runs. Its `provider_installation` block is always
/// explicit, because terraform's *implied* one (used when there is none) installs providers
/// from local directories first — `terraform.d/plugins` in the working directory, that is the
/// PR's own files, `~/.terraform.d/plugins`, the XDG data dirs. With a mirror, providers come
/// from it only (`filesystem_mirror`, no `direct` fallback): trusted, read-only, offline, and
/// safe for any number of concurrent inits (nothing shared is written). Without one, only
/// `direct` (the origin registries), into each job's own data dir. `plugin_cache_dir` is never
/// set: no cache is shared between jobs.
pub fn cli_config_text(providers_guest_path: Option<&Path>) -> String {
    let mut s = String::from("# written by sluice\ndisable_checkpoint = true\n");
    match providers_guest_path {
        Some(p) => s.push_str(&format!(
            "provider_installation {{\n  filesystem_mirror {{\n    path = \"{}\"\n  }}\n}}\n",
            p.display()
        )),
        None => s.push_str("provider_installation {\n  direct {}\n}\n"),
    }
    s
}

/// Terraform's data dir (`TF_DATA_DIR`: installed providers, modules, the selected workspace,
/// backend settings) relative to the job dir: beside the checkout (`repo/`), never inside it,
/// so a `.terraform/` committed in the PR is never terraform's.
pub const DATA_DIR: &str = ".sluice/tfdata";

/// Everything needed to run engine commands for one project in one job dir.
pub struct Engines<'a> {
    pub sandbox: &'a Sandbox,
    pub engine: Engine,
    pub binary: &'a Path,
    pub mirror: Option<&'a Path>,
    /// Host path of the CLI config file (outside the job dir; mounted read-only).
    pub cli_config: &'a Path,
    pub job_dir: &'a Path,
    /// Working directory relative to the job dir (e.g. `repo/envs/prod`).
    pub cwd: String,
    pub env: BTreeMap<String, String>,
    pub limits: Limits,
    pub sink: Option<Arc<dyn LineSink>>,
    pub cancel: CancellationToken,
    /// Read-only inputs for every command (host path, name); see `Sandbox::input_path`.
    pub inputs: Vec<(PathBuf, String)>,
    /// Set by [`Engines::seal`] once `init` is done: what it installed, and how it looked.
    pub sealed: Option<Sealed>,
}

/// The dependency lock file terraform (and OpenTofu) keeps in the working directory.
pub const LOCK_FILE: &str = ".terraform.lock.hcl";

/// What `init` installed, frozen for the rest of the job: terraform's data dir (providers,
/// modules, backend settings, the selected workspace) and the dependency lock file, as paths
/// relative to the job dir, with a fingerprint of both taken when the job sealed them.
///
/// Code of the PR runs during `plan` (a provider, or a program an `external` data source
/// starts); without this it could replace a provider binary or its lock entry between `plan`
/// and `show -json`, and the plan shown would be made by its provider. Under bubblewrap the
/// sealed paths are bound read-only for every later command; every later command (whatever
/// the runner) first checks that the fingerprint is unchanged, and fails closed if not.
#[derive(Debug, Clone)]
pub struct Sealed {
    pub paths: Vec<String>,
    fingerprint: String,
}

/// The error when a sealed path changed: names the paths, says what it means.
#[derive(Debug, thiserror::Error)]
#[error(
    "what `init` installed changed before a later command of the job ({paths}): code run by the \
     job replaced a provider, a module or the dependency lock file. Sluice refuses to go on with \
     this job; nothing it would show or apply could be trusted"
)]
pub struct SealBroken {
    paths: String,
}

/// A fingerprint of everything under the sealed `paths` of `job_dir`: for each entry (never
/// following a symlink) its path, type, mode, owner, size, inode, modification and change
/// times and symlink target, and for regular files under 1 MiB (the lock file, module sources)
/// their SHA-256. A replaced file gets a new inode or change time even when its content is
/// written back with the old modification time. A path that does not exist counts as such.
pub fn fingerprint(job_dir: &Path, paths: &[String]) -> anyhow::Result<String> {
    use sha2::{Digest, Sha256};
    use std::os::unix::fs::MetadataExt;
    let mut h = Sha256::new();
    let mut stack: Vec<PathBuf> = paths.iter().rev().map(|p| job_dir.join(p)).collect();
    let mut entries = 0usize;
    while let Some(path) = stack.pop() {
        entries += 1;
        if entries > 1_000_000 {
            bail!("more than a million files under terraform's data dir");
        }
        let rel = path
            .strip_prefix(job_dir)
            .unwrap_or(&path)
            .display()
            .to_string();
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                h.update(format!("{rel}\0missing\n"));
                continue;
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        h.update(format!(
            "{rel}\0{:o}\0{}\0{}\0{}\0{}.{}\0{}.{}\0",
            meta.mode(),
            meta.uid(),
            meta.len(),
            meta.ino(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ctime(),
            meta.ctime_nsec()
        ));
        let ft = meta.file_type();
        if ft.is_symlink() {
            let target =
                std::fs::read_link(&path).with_context(|| format!("reading {}", path.display()))?;
            h.update(target.as_os_str().as_encoded_bytes());
        } else if ft.is_dir() {
            let mut children: Vec<PathBuf> = std::fs::read_dir(&path)
                .with_context(|| format!("reading {}", path.display()))?
                .map(|e| e.map(|e| e.path()))
                .collect::<Result<_, _>>()
                .with_context(|| format!("reading {}", path.display()))?;
            children.sort();
            stack.extend(children.into_iter().rev());
        } else if ft.is_file() && meta.len() < 1 << 20 {
            let bytes =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            h.update(Sha256::digest(&bytes));
        }
        h.update(b"\n");
    }
    Ok(hex::encode(h.finalize()))
}

/// The outcome of one command, with what went wrong spelled out.
#[derive(Debug, Clone)]
pub struct Step {
    pub output: ProcessOutput,
    pub ok: bool,
}

impl Step {
    /// One line on how the step ended, for error reports.
    pub fn ending(&self) -> String {
        match self.output.termination {
            Termination::Exited(c) => format!("exited with status {c}"),
            Termination::Signalled(s) => format!("was killed by signal {s}"),
            Termination::TimedOut => "ran past its timeout and was stopped".to_string(),
            Termination::Cancelled => "was cancelled".to_string(),
        }
    }
}

impl Engines<'_> {
    /// Where the job dir is, as the run sees it.
    pub fn guest_work(&self) -> PathBuf {
        self.sandbox
            .guest_paths(
                self.job_dir,
                self.binary,
                self.mirror,
                Some(self.cli_config),
            )
            .work
    }

    /// Freezes what `init` (and `workspace select`) installed for the rest of the job: see
    /// [`Sealed`]. The lock file is created empty when `init` wrote none (a configuration
    /// without providers), so a later command cannot add one.
    pub async fn seal(&mut self) -> anyhow::Result<()> {
        let lock = self.lock_path();
        let paths = vec![DATA_DIR.to_string(), lock.clone()];
        let job_dir = self.job_dir.to_path_buf();
        let fingerprint = tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
            let lock = job_dir.join(&lock);
            if std::fs::symlink_metadata(&lock).is_err() {
                std::fs::write(&lock, "")
                    .with_context(|| format!("creating {}", lock.display()))?;
            }
            let data = job_dir.join(DATA_DIR);
            if std::fs::symlink_metadata(&data).is_err() {
                std::fs::create_dir_all(&data)
                    .with_context(|| format!("creating {}", data.display()))?;
            }
            fingerprint(&job_dir, &paths)
        })
        .await
        .context("sealing terraform's data dir")??;
        self.sealed = Some(Sealed {
            paths: vec![DATA_DIR.to_string(), self.lock_path()],
            fingerprint,
        });
        Ok(())
    }

    fn lock_path(&self) -> String {
        if self.cwd.is_empty() || self.cwd == "." {
            LOCK_FILE.to_string()
        } else {
            format!("{}/{LOCK_FILE}", self.cwd)
        }
    }

    /// Fails with [`SealBroken`] when a sealed path changed since [`Engines::seal`].
    async fn check_seal(&self) -> anyhow::Result<()> {
        let Some(sealed) = &self.sealed else {
            return Ok(());
        };
        let (job_dir, paths) = (self.job_dir.to_path_buf(), sealed.paths.clone());
        let now = tokio::task::spawn_blocking(move || fingerprint(&job_dir, &paths))
            .await
            .context("checking terraform's data dir")??;
        if now != sealed.fingerprint {
            return Err(SealBroken {
                paths: sealed.paths.join(", "),
            }
            .into());
        }
        Ok(())
    }

    async fn run(
        &self,
        args: Vec<String>,
        stdout: Stdout,
        ok_codes: &[i32],
    ) -> anyhow::Result<Step> {
        self.run_in(args, stdout, ok_codes, false).await
    }

    /// Runs the engine with `args` as a workflow's built-in step wrote them (Sluice's flags
    /// included, see `core::workflow::step_plan`); `ok_codes` are the exit statuses that count
    /// as success (`plan -detailed-exitcode`: 0 and 2). With `stdout_to`, standard output goes to
    /// that host file (capped at `runner.plan_json_cap_bytes`) instead of the output.
    pub async fn engine_step(
        &self,
        args: Vec<String>,
        ok_codes: &[i32],
        stdout_to: Option<&Path>,
    ) -> anyhow::Result<Step> {
        let stdout = match stdout_to {
            Some(path) => Stdout::File {
                path: path.to_path_buf(),
                cap: self.limits.plan_json_cap,
            },
            None => Stdout::Captured,
        };
        self.run_program(None, args, BTreeMap::new(), stdout, ok_codes, false)
            .await
    }

    /// Runs `argv` (a workflow's `run`, `env` or `multienv` command: the shell, its flags, the
    /// command text) in the project dir, in the same sandbox as the engine — same job dir, same
    /// environment rules, same limits and timeout — with `env` (the step variables) added.
    /// Succeeds on exit status 0.
    pub async fn command_step(
        &self,
        argv: &[String],
        env: BTreeMap<String, String>,
    ) -> anyhow::Result<Step> {
        let Some((program, args)) = argv.split_first() else {
            bail!("a step without a command");
        };
        self.run_program(
            Some(program.clone()),
            args.to_vec(),
            env,
            Stdout::Captured,
            &[0],
            false,
        )
        .await
    }

    /// Runs one command; `work_read_only` binds the whole job dir read-only. After
    /// [`Engines::seal`], the sealed paths are checked first and bound read-only.
    async fn run_in(
        &self,
        args: Vec<String>,
        stdout: Stdout,
        ok_codes: &[i32],
        work_read_only: bool,
    ) -> anyhow::Result<Step> {
        self.run_program(
            None,
            args,
            BTreeMap::new(),
            stdout,
            ok_codes,
            work_read_only,
        )
        .await
    }

    /// [`Engines::run_in`] for `program` (`None`: the engine), with `extra_env` added.
    async fn run_program(
        &self,
        program: Option<String>,
        args: Vec<String>,
        extra_env: BTreeMap<String, String>,
        stdout: Stdout,
        ok_codes: &[i32],
        work_read_only: bool,
    ) -> anyhow::Result<Step> {
        self.check_seal().await?;
        let mut env = self.env.clone();
        env.extend(extra_env);
        env.insert(
            "TF_DATA_DIR".into(),
            self.guest_work()
                .join(DATA_DIR)
                .to_string_lossy()
                .into_owned(),
        );
        let inv = Invocation {
            job_dir: self.job_dir,
            cwd: &self.cwd,
            engine: self.binary,
            mirror: self.mirror,
            cli_config: Some(self.cli_config),
            inputs: self.inputs.clone(),
            read_only: self
                .sealed
                .as_ref()
                .map(|s| s.paths.clone())
                .unwrap_or_default(),
            work_read_only,
            program,
            args,
            env,
            network: self.limits.network,
            timeout: self.limits.timeout,
            grace: self.limits.grace,
            output_cap: self.limits.output_cap,
            stdout,
        };
        let spec = self.sandbox.process_spec(&inv).await?;
        let output = process::run(&spec, self.sink.clone(), &self.cancel).await?;
        let ok = matches!(output.termination, Termination::Exited(c) if ok_codes.contains(&c));
        Ok(Step { output, ok })
    }

    pub async fn init(&self, extra: &[String]) -> anyhow::Result<Step> {
        let mut args = vec!["init".into(), "-input=false".into(), "-no-color".into()];
        args.extend(extra.iter().cloned());
        self.run(args, Stdout::Captured, &[0]).await
    }

    /// Selects the workspace, creating it when it does not exist yet (terraform 1.0 has no
    /// `select -or-create`).
    pub async fn select_workspace(&self, workspace: &str) -> anyhow::Result<Step> {
        let select = self
            .run(
                vec![
                    "workspace".into(),
                    "select".into(),
                    "-no-color".into(),
                    workspace.into(),
                ],
                Stdout::Captured,
                &[0],
            )
            .await?;
        if select.ok
            || matches!(
                select.output.termination,
                Termination::TimedOut | Termination::Cancelled
            )
        {
            return Ok(select);
        }
        self.run(
            vec![
                "workspace".into(),
                "new".into(),
                "-no-color".into(),
                workspace.into(),
            ],
            Stdout::Captured,
            &[0],
        )
        .await
    }

    /// `plan -detailed-exitcode`: 0 = no changes, 2 = changes (success, not failure), 1 = error.
    pub async fn plan(&self, plan_file: &Path, extra: &[String]) -> anyhow::Result<Step> {
        let mut args = vec![
            "plan".into(),
            "-input=false".into(),
            "-no-color".into(),
            "-detailed-exitcode".into(),
            format!("-out={}", plan_file.display()),
        ];
        args.extend(extra.iter().cloned());
        self.run(args, Stdout::Captured, &[0, 2]).await
    }

    /// `show -json <planfile>`, written to `json_out` (a host path outside the job dir). It
    /// only reads: the whole job dir is read-only for it.
    pub async fn show_json(&self, plan_file: &Path, json_out: &Path) -> anyhow::Result<Step> {
        self.run_in(
            vec![
                "show".into(),
                "-json".into(),
                "-no-color".into(),
                plan_file.to_string_lossy().into_owned(),
            ],
            Stdout::File {
                path: json_out.to_path_buf(),
                cap: self.limits.plan_json_cap,
            },
            &[0],
            true,
        )
        .await
    }

    /// Applies exactly `plan_file`.
    pub async fn apply(&self, plan_file: &Path) -> anyhow::Result<Step> {
        self.run(
            vec![
                "apply".into(),
                "-input=false".into(),
                "-no-color".into(),
                "-auto-approve".into(),
                plan_file.to_string_lossy().into_owned(),
            ],
            Stdout::Captured,
            &[0],
        )
        .await
    }

    /// `version` (first line, e.g. `Terraform v1.0.3`).
    pub async fn version(&self) -> anyhow::Result<String> {
        let step = self
            .run(vec!["version".into()], Stdout::Captured, &[0])
            .await?;
        Ok(step
            .output
            .output
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolver_explains_missing_and_non_executable_binaries() {
        let dir = tempfile::tempdir().unwrap();
        let r = EngineResolver {
            terraform_bin: Some(dir.path().join("nope")),
            ..EngineResolver::default()
        };
        let err = format!("{:#}", r.resolve(Engine::Terraform, None).unwrap_err());
        assert!(
            err.contains("terraform binary unavailable") && err.contains("does not exist"),
            "{err}"
        );

        let f = dir.path().join("terraform");
        std::fs::write(&f, "#!/bin/sh\n").unwrap();
        let r = EngineResolver {
            terraform_bin: Some(f.clone()),
            ..EngineResolver::default()
        };
        let err = format!("{:#}", r.resolve(Engine::Terraform, None).unwrap_err());
        assert!(err.contains("not executable"), "{err}");

        // OpenTofu resolves `tofu_bin`, else `tofu` on PATH, and says why it was wanted.
        let r = EngineResolver {
            terraform_bin: Some(f.clone()),
            tofu_bin: Some(dir.path().join("no-tofu")),
            ..EngineResolver::default()
        };
        let err = format!("{:#}", r.resolve(Engine::Opentofu, None).unwrap_err());
        assert!(
            err.contains("opentofu binary unavailable")
                && err.contains("`.tofu`/`.tofu.json`")
                && err.contains("no-tofu does not exist"),
            "{err}"
        );

        let err = format!(
            "{:#}",
            r.resolve(Engine::Terraform, Some("1.6.2")).unwrap_err()
        );
        assert!(err.contains("no engine_versions_dir"), "{err}");
        let err = format!(
            "{:#}",
            r.resolve(Engine::Terraform, Some("1.6.2; rm -rf /"))
                .unwrap_err()
        );
        assert!(err.contains("not a version number"), "{err}");
    }

    #[tokio::test]
    async fn binary_version_reads_the_first_line_within_a_timeout() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let script = |name: &str, body: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            p
        };
        let ok = script(
            "fast",
            "[ \"$1\" = version ] && [ -z \"$HOME\" ] && echo 'Terraform v9.9.9' && echo 'on linux_amd64'",
        );
        assert_eq!(
            binary_version(&ok, Duration::from_secs(10)).await.unwrap(),
            "Terraform v9.9.9"
        );
        let slow = script("slow", "sleep 30");
        let started = std::time::Instant::now();
        let err = format!(
            "{:#}",
            binary_version(&slow, Duration::from_millis(300))
                .await
                .unwrap_err()
        );
        assert!(err.contains("did not answer within"), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "stopped at the timeout"
        );
        let failing = script("failing", "exit 3");
        let err = format!(
            "{:#}",
            binary_version(&failing, Duration::from_secs(10))
                .await
                .unwrap_err()
        );
        assert!(err.contains("Exited(3)"), "{err}");
    }

    #[test]
    fn the_seal_fingerprint_sees_every_swap() {
        let dir = tempfile::tempdir().unwrap();
        let job = dir.path();
        let prov = job.join(".sluice/tfdata/providers/x/null/2.1.2");
        std::fs::create_dir_all(&prov).unwrap();
        std::os::unix::fs::symlink("/mirror/null", prov.join("linux_amd64")).unwrap();
        std::fs::create_dir_all(job.join("repo/a")).unwrap();
        std::fs::write(job.join("repo/a/.terraform.lock.hcl"), "h1:abc").unwrap();
        let paths = vec![
            DATA_DIR.to_string(),
            "repo/a/.terraform.lock.hcl".to_string(),
        ];
        let print = || fingerprint(job, &paths).unwrap();
        let first = print();
        assert_eq!(print(), first, "stable while nothing changes");
        // The same link target through a new link (what a run does to plant its own provider).
        std::fs::remove_file(prov.join("linux_amd64")).unwrap();
        std::os::unix::fs::symlink("/mirror/null", prov.join("linux_amd64")).unwrap();
        let relinked = print();
        assert_ne!(relinked, first);
        // The lock file's content.
        std::fs::write(job.join("repo/a/.terraform.lock.hcl"), "h1:xyz").unwrap();
        let relocked = print();
        assert_ne!(relocked, relinked);
        // A file added anywhere under the data dir, or the lock file removed.
        std::fs::write(job.join(".sluice/tfdata/environment"), "prod").unwrap();
        let added = print();
        assert_ne!(added, relocked);
        std::fs::remove_file(job.join("repo/a/.terraform.lock.hcl")).unwrap();
        assert_ne!(print(), added);
    }

    #[test]
    fn cli_config_uses_only_the_mirror() {
        let text = cli_config_text(Some(Path::new("/sluice/providers")));
        assert!(text.contains("filesystem_mirror") && text.contains("/sluice/providers"));
        assert!(!text.contains("direct") && !text.contains("plugin_cache_dir"));
        // Without a mirror the block is still explicit, so no implied local directory (such
        // as the checkout's `terraform.d/plugins`) is consulted.
        let text = cli_config_text(None);
        assert!(
            text.contains("provider_installation {\n  direct {}\n}"),
            "{text}"
        );
        assert!(!text.contains("filesystem_mirror") && !text.contains("plugin_cache_dir"));
    }
}
