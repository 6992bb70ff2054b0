//! Which engine binary a project runs (PRODUCT.md §19), decided one way for plans, applies, drift
//! checks and the `version` command:
//!
//! * `terraform_version` pins an exact version: `<engine_versions_dir>/<engine>/<version>/`,
//!   downloaded from the engine's release mirror (`engine_mirrors`) and verified when it is not
//!   installed. A pin that contradicts the module's `required_version` is refused (terraform
//!   would refuse to run).
//! * Else the module's `required_version` (the `terraform` blocks of the project dir's `.tf` —
//!   and, for OpenTofu, `.tofu` — files at the commit): the newest version satisfying it among
//!   the versions installed in `engine_versions_dir` (named by their directory, as a pin is)
//!   and the default binary's own (asked with `version`). When none does and the constraint
//!   names one exact version (`= 1.6.2`) with a mirror configured, that version is downloaded
//!   like a pin; otherwise the run fails naming the constraint and the versions available.
//! * Else the default binary (`terraform_bin` / `tofu_bin`, else the engine on `PATH`).
//!
//! Every download the server makes is an audit entry (`engine_download`) on the job that asked
//! for it — its repository, pull request, commit and project — whether the release was installed
//! or refused (signature, checksum, a release filed under another version) or the mirror failed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::ports::store::Store;
use super::project_run::{ProjectJob, Runner};
use crate::adapters::engine_install::{Download, DownloadFailure, EngineInstaller};
use crate::adapters::git::GitRepo;
use crate::adapters::terraform::{EngineResolver, VERSION_TIMEOUT, binary_version};
use crate::core::audit::{AuditAction, AuditActor, AuditRecord, AuditResult, ErrorClass};
use crate::core::engine_version::{
    Constraint, ResolveError, Version, required_versions, resolve_version,
};
use crate::core::projects::Project;
use crate::core::types::{CommitSha, Engine};

/// How long a job waits before asking again when every reading thread is busy.
const BUSY_RETRY: Duration = Duration::from_millis(200);

/// The engine a project runs, and why.
#[derive(Debug, Clone)]
pub struct EngineChoice {
    /// The binary; `None` only when reporting a version that would be downloaded first.
    pub binary: Option<PathBuf>,
    /// The exact version chosen; `None` for the default binary without a constraint (its own
    /// `version` output says which it is).
    pub version: Option<Version>,
    /// Where the version came from, for the `version` reply (`terraform_version`, …).
    pub source: String,
}

/// Where the server's download audit entries go (`None` in local runs: `preview`, `drift
/// check`, whose downloads are logged only).
#[derive(Clone)]
pub struct DownloadAudit {
    pub store: Arc<dyn Store>,
}

impl std::fmt::Debug for DownloadAudit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DownloadAudit")
    }
}

impl Runner {
    /// The engine binary `job` runs ([`EngineChooser::choose_engine`], downloading what is
    /// missing). The error is the job's `config` failure text.
    pub async fn engine_binary(&self, job: &ProjectJob<'_>) -> Result<PathBuf, String> {
        let chooser = EngineChooser {
            engines: &self.engines,
            engine_installer: self.engine_installer.as_deref(),
            download_audit: self.download_audit.as_ref(),
        };
        let choice = chooser
            .choose_engine(job.git, job.commit, job.project, Some(job))
            .await?;
        choice
            .binary
            .ok_or_else(|| "the engine binary was not installed".to_string())
    }
}

/// What choosing an engine needs: the configured binaries and versions dir, the mirrors, and
/// where downloads are audited.
#[derive(Debug, Clone, Copy)]
pub struct EngineChooser<'a> {
    pub engines: &'a EngineResolver,
    pub engine_installer: Option<&'a EngineInstaller>,
    pub download_audit: Option<&'a DownloadAudit>,
}

impl EngineChooser<'_> {
    /// The engine `project` runs at `commit` (see the module doc). With `job`, a version that
    /// is not installed is downloaded (and audited for the job); without one, nothing is
    /// downloaded and such a version is reported with no binary.
    pub async fn choose_engine(
        &self,
        git: &GitRepo,
        commit: &CommitSha,
        project: &Project,
        job: Option<&ProjectJob<'_>>,
    ) -> Result<EngineChoice, String> {
        let engine = project.engine;
        let required = read_required(git, commit, project).await?;
        if let Some(pin) = project.terraform_version.as_deref() {
            let version =
                resolve_version(engine, Some(pin), &required, &[]).map_err(|e| format!("{e}"))?;
            let source = "pinned by `terraform_version`".to_string();
            return self.exact(engine, pin, version, source, job).await;
        }
        if required.is_empty() {
            let binary = self
                .engines
                .resolve(engine, None)
                .map_err(|e| format!("{e:#}"))?;
            return Ok(EngineChoice {
                binary: Some(binary),
                version: None,
                source: "the default binary".to_string(),
            });
        }
        let (available, default) = self.available(engine).await;
        let versions: Vec<Version> = available.iter().map(|(v, _)| v.clone()).collect();
        let shown = required
            .iter()
            .map(|c| format!("`{c}`"))
            .collect::<Vec<_>>()
            .join(" and ");
        match resolve_version(engine, None, &required, &versions) {
            Ok(v) => {
                let binary = available
                    .into_iter()
                    .find(|(a, _)| a.cmp(&v).is_eq())
                    .map(|(_, p)| p);
                let from = if default.as_ref().is_some_and(|(d, _)| d.cmp(&v).is_eq()) {
                    "the default binary"
                } else {
                    "engine_versions_dir"
                };
                Ok(EngineChoice {
                    binary,
                    version: Some(v),
                    source: format!("newest satisfying `required_version` {shown}, from {from}"),
                })
            }
            Err(ResolveError::Invalid(e)) => Err(format!("required_version: {e}")),
            Err(no_match @ ResolveError::NoMatch { .. }) => {
                // An exact constraint with a mirror: fetched like a pin.
                let exact = required
                    .iter()
                    .filter_map(|c| Constraint::parse(c).ok())
                    .find_map(|c| c.exact().cloned());
                let mirror = self.engine_installer.is_some_and(|i| i.has_mirror(engine));
                match exact {
                    Some(v) if mirror => {
                        let source = format!("`required_version` {shown}");
                        self.exact(engine, &v.to_string(), v.clone(), source, job)
                            .await
                    }
                    _ => Err(format!(
                        "{no_match} (installed in engine_versions_dir{}, and the default \
                         binary's own); pin one with `terraform_version`, or install one that \
                         satisfies it",
                        self.engines
                            .versions_dir
                            .as_ref()
                            .map(|d| format!(" {}", d.display()))
                            .unwrap_or_else(|| " (not configured)".to_string()),
                    )),
                }
            }
        }
    }

    /// The binary of one exact version: installed, downloaded (with `job`), or reported as to
    /// be downloaded.
    async fn exact(
        &self,
        engine: Engine,
        written: &str,
        version: Version,
        source: String,
        job: Option<&ProjectJob<'_>>,
    ) -> Result<EngineChoice, String> {
        let installer = self.engine_installer.filter(|i| i.has_mirror(engine));
        let binary = match (installer, job) {
            (Some(installer), Some(job)) => {
                let (result, download) = installer.install(engine, &version).await;
                if let Some(d) = download {
                    self.audit_download(job, &d).await;
                }
                let path = result.map_err(|e| format!("installing {engine} {version}: {e:#}"))?;
                Some(
                    crate::config::resolve_binary(&path)
                        .map_err(|e| format!("{engine} {version} is not installed: {e:#}"))?,
                )
            }
            (Some(installer), None) => {
                let path = installer.binary_path(engine, &version);
                path.is_file().then_some(path)
            }
            (None, _) => Some(
                self.engines
                    .resolve(engine, Some(written))
                    .map_err(|e| format!("{e:#}"))?,
            ),
        };
        let source = if binary.is_none() {
            format!("{source}; downloaded from the release mirror when a plan needs it")
        } else {
            source
        };
        Ok(EngineChoice {
            binary,
            version: Some(version),
            source,
        })
    }

    /// The versions a constraint can choose from, oldest first, with their binaries: every
    /// `<engine_versions_dir>/<engine>/<version>/<binary>` whose directory name is a version,
    /// and the default binary's own version (also returned alone).
    async fn available(
        &self,
        engine: Engine,
    ) -> (Vec<(Version, PathBuf)>, Option<(Version, PathBuf)>) {
        let mut found = Vec::new();
        if let Some(dir) = &self.engines.versions_dir {
            let engine_dir = dir.join(engine.as_str());
            for entry in std::fs::read_dir(&engine_dir)
                .into_iter()
                .flatten()
                .flatten()
            {
                let name = entry.file_name().to_string_lossy().into_owned();
                let binary = entry.path().join(engine.default_binary());
                if let (Ok(v), true) = (Version::parse(&name), binary.is_file()) {
                    found.push((v, binary));
                }
            }
        }
        let default = match self.engines.resolve(engine, None) {
            Ok(binary) => binary_version(&binary, VERSION_TIMEOUT)
                .await
                .ok()
                .and_then(|line| crate::adapters::engine_install::reported_version(&line))
                .map(|v| (v, binary)),
            Err(_) => None,
        };
        // The default binary first: when it has the chosen version, it is the one that runs.
        let mut all: Vec<(Version, PathBuf)> = default.iter().cloned().collect();
        all.extend(found);
        (all, default)
    }

    /// The audit entry of one download, on the job that asked for it.
    async fn audit_download(&self, job: &ProjectJob<'_>, d: &Download) {
        let Some(audit) = self.download_audit else {
            tracing::info!(
                engine = %d.engine, version = %d.version, url = %d.archive_url,
                refused = ?d.refused, "engine download (not audited: no server store)"
            );
            return;
        };
        let result = match &d.refused {
            None => AuditResult::Success,
            Some((DownloadFailure::Release, _)) => AuditResult::Refused,
            Some((DownloadFailure::Download, _)) => AuditResult::Failure,
        };
        let mut record = AuditRecord::new(
            AuditAction::EngineDownload,
            AuditActor::system("sluice"),
            result,
        )
        .head(job.commit)
        .base(job.base)
        .project(&job.project.name, &job.project.dir, &job.project.workspace)
        .detail("archive_url", d.archive_url.clone())
        .detail("job", job.job_id.clone());
        if let Some(repo) = job.repo {
            record = match job.pull.as_ref().and_then(|p| p.number) {
                Some(pr) => record.pr(repo, pr),
                None => record.repo(repo),
            };
        }
        if !job.user.is_empty() {
            record = record.detail("requested_by", job.user.clone());
        }
        if let Some(sha) = &d.sha256 {
            record = record.detail("archive_sha256", sha.clone());
        }
        if let Some((kind, why)) = &d.refused {
            record = record.detail("reason", why.clone()).error(match kind {
                DownloadFailure::Release => ErrorClass::EngineRelease,
                DownloadFailure::Download => ErrorClass::EngineDownload,
            });
        }
        record.engine = Some(d.engine.as_str().to_string());
        record.engine_version = Some(d.version.to_string());
        let now = crate::adapters::clock::now();
        if let Err(e) = audit.store.append_audit(vec![record], now).await {
            tracing::error!(error = %e, "recording an engine download in the audit log");
        }
    }
}

/// The `required_version` constraints of `project` at `commit`: from the `.tf` files (and, for
/// OpenTofu, the `.tofu` files) directly in its dir, read within the repository's limits on a
/// bounded thread (the text is the pull request's).
async fn read_required(
    git: &GitRepo,
    commit: &CommitSha,
    project: &Project,
) -> Result<Vec<String>, String> {
    let (git, commit) = (git.clone(), commit.clone());
    let budget_git = git.clone();
    let dir = if project.dir.is_root() {
        String::new()
    } else {
        project.dir.as_str().to_string()
    };
    let tofu = project.engine == Engine::Opentofu;
    let read = move || -> anyhow::Result<Vec<String>> {
        let paths: Vec<String> = git
            .list_dir(&commit, &dir)?
            .into_iter()
            .map(|p| p.trim_start_matches('/').to_string())
            .filter(|p| p.ends_with(".tf") || (tofu && p.ends_with(".tofu")))
            .collect();
        let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
        let limits = git.limits().hcl();
        Ok(git
            .read_files_bounded(&commit, &refs)?
            .into_iter()
            .filter_map(|f| match f {
                crate::adapters::git::FileRead::Text(t) => Some(t),
                _ => None,
            })
            .flat_map(|text| required_versions(&text, &limits))
            .collect())
    };
    let budget = Duration::from_secs(budget_git.limits().detection_timeout_secs);
    let started = std::time::Instant::now();
    loop {
        // Reading threads are shared with webhook intake: when all are busy, the job waits its
        // turn (within the budget) instead of failing.
        let read = read.clone();
        match super::bounded::run("reading required_version", budget, read).await {
            Ok(Ok(found)) => return Ok(found),
            Ok(Err(e)) => return Err(format!("reading the project's required_version: {e:#}")),
            Err(super::bounded::BoundedError::Busy { .. }) if started.elapsed() < budget => {
                tokio::time::sleep(BUSY_RETRY).await;
            }
            Err(e) => return Err(format!("reading the project's required_version: {e}")),
        }
    }
}
