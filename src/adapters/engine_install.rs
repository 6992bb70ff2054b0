//! Installing a pinned engine version from a release mirror (PRODUCT.md §19): download the
//! release's `SHA256SUMS` and its detached OpenPGP signature, check the signature against the
//! operator's key, download the archive (size- and time-bounded, hashed as it streams), check it
//! against `SHA256SUMS`, unpack the one binary and move it into
//! `<engine_versions_dir>/<engine>/<version>/<binary>` with one `rename` — so a version directory
//! either holds a verified binary or does not exist. Files are read-only (0555) and shared by every
//! job. Two jobs wanting the same version wait on one lock (an in-process mutex per version, then
//! an exclusive `flock` on `<engine>/.<version>.lock` for other processes sharing the directory):
//! one downloads, the other finds it installed. Any mismatch is refused, nothing is kept. Each
//! download (installed or refused) is reported to the caller ([`Download`]), which audits it.
//!
//! The URL layouts and the `SHA256SUMS` format are the core's (`core::engine_version`).

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use pgp::composed::{Deserializable, DetachedSignature, SignedPublicKey};
use pgp::types::KeyDetails;
use sha2::{Digest, Sha256};

use crate::config::{EngineMirror, Settings};
use crate::core::engine_version::{MirrorLayout, Sha256Sums, Version};
use crate::core::types::Engine;

/// Largest `SHA256SUMS` file read (HashiCorp's list about 15 archives, under 2 KiB).
pub const MAX_SUMS_BYTES: u64 = 1024 * 1024;
/// Largest detached signature read (an RSA-4096 signature is about 600 bytes).
pub const MAX_SIGNATURE_BYTES: u64 = 64 * 1024;
/// Largest unpacked engine binary (terraform 1.x is about 90 MB).
pub const MAX_BINARY_BYTES: u64 = 1024 * 1024 * 1024;
/// How long connecting to the mirror may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a version could not be installed. Every message names the file or URL concerned.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("downloading {url}: {detail}")]
    Fetch { url: String, detail: String },
    #[error("{url} is larger than the limit of {limit} bytes")]
    TooLarge { url: String, limit: u64 },
    #[error(
        "the signature {signature} does not verify {file} against the configured key {key_file}: {detail}; refusing the release"
    )]
    Signature {
        file: String,
        signature: String,
        key_file: String,
        detail: String,
    },
    #[error(
        "{file} has SHA-256 {actual}, but the release's SHA256SUMS lists {expected}; refusing the release"
    )]
    Checksum {
        file: String,
        expected: String,
        actual: String,
    },
    #[error("{file}: {detail}")]
    Release { file: String, detail: String },
    #[error("installing into {dir}: {detail}")]
    Io { dir: String, detail: String },
}

impl InstallError {
    /// Whether the mirror's release itself was refused (`release`: signature, checksum, a file
    /// filed under another name or version, too large) or the download did not complete
    /// (`download`: the mirror unreachable, the disk).
    pub fn class(&self) -> DownloadFailure {
        match self {
            InstallError::Fetch { .. } | InstallError::Io { .. } => DownloadFailure::Download,
            InstallError::TooLarge { .. }
            | InstallError::Signature { .. }
            | InstallError::Checksum { .. }
            | InstallError::Release { .. } => DownloadFailure::Release,
        }
    }
}

/// Why a download did not install anything, in the two kinds the audit log tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownloadFailure {
    /// The release was refused: it does not verify or is not what it claims to be.
    Release,
    /// The download did not complete (the mirror, the network or the disk).
    Download,
}

/// One download from a release mirror, installed or refused: what the audit log records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Download {
    pub engine: Engine,
    pub version: Version,
    /// The archive's URL (credentials in it removed).
    pub archive_url: String,
    /// The archive's SHA-256 (hex): the verified one when installed, the mismatching one when
    /// its checksum was refused; `None` when it was not read.
    pub sha256: Option<String>,
    /// Why nothing was installed (`None`: installed).
    pub refused: Option<(DownloadFailure, String)>,
}

/// A configured mirror with its key read and checked.
struct Mirror {
    base: String,
    layout: MirrorLayout,
    key: SignedPublicKey,
    key_file: PathBuf,
    max_archive_bytes: u64,
    client: reqwest::Client,
}

/// Downloads and installs engine versions; one per server, shared by all jobs.
pub struct EngineInstaller {
    versions_dir: PathBuf,
    terraform: Option<Mirror>,
    opentofu: Option<Mirror>,
    /// One lock per `(engine, version)`, so concurrent jobs of this process wait without
    /// holding a blocking thread each.
    inflight: Mutex<Gates>,
}

/// One async lock per `(engine, version)` being installed.
type Gates = HashMap<(Engine, String), Arc<tokio::sync::Mutex<()>>>;

impl std::fmt::Debug for EngineInstaller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineInstaller")
            .field("versions_dir", &self.versions_dir)
            .field("terraform", &self.terraform.as_ref().map(|m| &m.base))
            .field("opentofu", &self.opentofu.as_ref().map(|m| &m.base))
            .finish()
    }
}

/// Reads an ASCII-armored OpenPGP public key and checks its self-signatures (and its subkeys'
/// binding signatures), so a broken key file is refused at start-up rather than at first use.
pub fn read_public_key(path: &Path) -> anyhow::Result<SignedPublicKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the release key {}", path.display()))?;
    let (key, _) = SignedPublicKey::from_string(&text).map_err(|e| {
        anyhow::anyhow!(
            "{} is not an ASCII-armored OpenPGP public key: {e}",
            path.display()
        )
    })?;
    key.verify().map_err(|e| {
        anyhow::anyhow!(
            "the OpenPGP key in {} has invalid self-signatures: {e}",
            path.display()
        )
    })?;
    Ok(key)
}

/// Checks that `signature` (binary or ASCII-armored, detached) is a valid signature of `data`
/// by `key`'s primary key or one of its subkeys that is bound to it and flagged for signing.
pub fn verify_detached(key: &SignedPublicKey, signature: &[u8], data: &[u8]) -> Result<(), String> {
    let sig = if signature.trim_ascii_start().starts_with(b"-----BEGIN") {
        let text =
            std::str::from_utf8(signature).map_err(|_| "the armored signature is not UTF-8")?;
        DetachedSignature::from_string(text).map(|(s, _)| s)
    } else {
        DetachedSignature::from_bytes(signature)
    }
    .map_err(|e| format!("not an OpenPGP signature ({e})"))?;
    if sig.verify(&key.primary_key, data).is_ok() {
        return Ok(());
    }
    let mut last = None;
    for sub in &key.public_subkeys {
        let signs = sub.signatures.iter().any(|b| b.key_flags().sign());
        if !signs || sub.verify(&key.primary_key).is_err() {
            continue;
        }
        match sig.verify(&sub.key, data) {
            Ok(()) => return Ok(()),
            Err(e) => last = Some(e.to_string()),
        }
    }
    let ours_fpr = |f: &pgp::types::Fingerprint| {
        *f == key.primary_key.fingerprint()
            || key.public_subkeys.iter().any(|s| *f == s.key.fingerprint())
    };
    let ours_id = |id: &pgp::types::KeyId| {
        *id == key.primary_key.key_id() || key.public_subkeys.iter().any(|s| *id == s.key.key_id())
    };
    let by_ours = sig.signature.issuer_fingerprint().into_iter().any(ours_fpr)
        || sig.signature.issuer().into_iter().any(ours_id);
    let configured = key.primary_key.fingerprint();
    Err(if by_ours {
        format!(
            "the signature is by the configured key {configured} but does not match the file's content \
             (the file was changed after it was signed){}",
            last.map(|e| format!(": {e}")).unwrap_or_default()
        )
    } else {
        match sig.signature.issuer_fingerprint().first() {
            Some(f) => format!(
                "it was made by key {f}, which is not the configured key {configured} or one of its signing subkeys"
            ),
            None => format!(
                "it was not made by the configured key {configured} or one of its signing subkeys"
            ),
        }
    })
}

/// `linux`/`darwin` and `amd64`/`arm64`/… as release archives name them (Go's GOOS/GOARCH).
pub fn release_platform() -> (&'static str, &'static str) {
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        other => other,
    };
    (os, arch)
}

impl EngineInstaller {
    /// `None` when no mirror is configured. Reads and checks each mirror's key (errors name the
    /// file).
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Option<EngineInstaller>> {
        let Some(versions_dir) = &settings.engine_versions_dir else {
            return Ok(None);
        };
        let mirror = |engine: Engine, m: &Option<EngineMirror>| -> anyhow::Result<Option<Mirror>> {
            let Some(m) = m else { return Ok(None) };
            let key = read_public_key(&m.public_key_file)
                .with_context(|| format!("engine_mirrors.{engine}.public_key_file"))?;
            let client = reqwest::Client::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .timeout(Duration::from_secs(m.timeout_secs))
                .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
                .build()
                .context("building the HTTP client")?;
            Ok(Some(Mirror {
                base: m.url.clone(),
                layout: MirrorLayout::for_engine(engine),
                key,
                key_file: m.public_key_file.clone(),
                max_archive_bytes: m.max_archive_bytes,
                client,
            }))
        };
        let terraform = mirror(Engine::Terraform, &settings.engine_mirrors.terraform)?;
        let opentofu = mirror(Engine::Opentofu, &settings.engine_mirrors.opentofu)?;
        if terraform.is_none() && opentofu.is_none() {
            return Ok(None);
        }
        Ok(Some(EngineInstaller {
            versions_dir: versions_dir.clone(),
            terraform,
            opentofu,
            inflight: Mutex::new(HashMap::new()),
        }))
    }

    /// Whether versions of `engine` can be downloaded.
    pub fn has_mirror(&self, engine: Engine) -> bool {
        self.mirror(engine).is_some()
    }

    fn mirror(&self, engine: Engine) -> Option<&Mirror> {
        match engine {
            Engine::Terraform => self.terraform.as_ref(),
            Engine::Opentofu => self.opentofu.as_ref(),
        }
    }

    /// `<versions_dir>/<engine>/<version>/<binary>`.
    pub fn binary_path(&self, engine: Engine, version: &Version) -> PathBuf {
        self.versions_dir
            .join(engine.as_str())
            .join(version.to_string())
            .join(engine.default_binary())
    }

    /// The installed binary of `engine` `version`, downloading and verifying it first when it is
    /// not installed yet. Concurrent calls for one version download it once.
    pub async fn ensure(&self, engine: Engine, version: &Version) -> anyhow::Result<PathBuf> {
        self.install(engine, version).await.0
    }

    /// [`EngineInstaller::ensure`], with the download this call made (installed or refused) for
    /// the audit log: `None` when the version was already installed (or this call waited for
    /// another one's download) or the mirror was never asked.
    pub async fn install(
        &self,
        engine: Engine,
        version: &Version,
    ) -> (anyhow::Result<PathBuf>, Option<Download>) {
        let target = self.binary_path(engine, version);
        if target.is_file() {
            return (Ok(target), None);
        }
        let Some(mirror) = self.mirror(engine) else {
            let e = anyhow::anyhow!(
                "no engine_mirrors.{engine} is configured to download {engine} {version} from"
            );
            return (Err(e), None);
        };
        let gate = {
            let mut map = self
                .inflight
                .lock()
                .expect("the in-flight map is never poisoned");
            map.entry((engine, version.to_string()))
                .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(())))
                .clone()
        };
        let _held = gate.lock().await;
        let engine_dir = self.versions_dir.join(engine.as_str());
        if let Err(e) = std::fs::create_dir_all(&engine_dir) {
            let e = anyhow::anyhow!(e).context(format!("creating {}", engine_dir.display()));
            return (Err(e), None);
        }
        // Other processes sharing the directory: an exclusive flock, taken on a blocking thread.
        let lock_path = engine_dir.join(format!(".{version}.lock"));
        let flock = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
                .with_context(|| format!("opening {}", lock_path.display()))?;
            nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
                .map_err(|(_, e)| anyhow::anyhow!("locking {}: {e}", lock_path.display()))
        })
        .await
        .context("the lock task panicked");
        let _flock = match flock {
            Ok(Ok(f)) => f,
            Ok(Err(e)) | Err(e) => return (Err(e), None),
        };
        if target.is_file() {
            return (Ok(target), None);
        }
        let (os, arch) = release_platform();
        let mut report = Download {
            engine,
            version: version.clone(),
            archive_url: super::git::redact_url(&mirror.layout.archive_url(
                &mirror.base,
                version,
                os,
                arch,
            )),
            sha256: None,
            refused: None,
        };
        match self.download(engine, version, mirror, &engine_dir).await {
            Ok(sha256) => {
                tracing::info!(%engine, %version, path = %target.display(), "engine version installed");
                report.sha256 = Some(sha256);
                (Ok(target), Some(report))
            }
            Err(e) => {
                if let InstallError::Checksum { actual, .. } = &e {
                    report.sha256 = Some(actual.clone());
                }
                report.refused = Some((e.class(), e.to_string()));
                (Err(e.into()), Some(report))
            }
        }
    }

    async fn download(
        &self,
        engine: Engine,
        version: &Version,
        mirror: &Mirror,
        engine_dir: &Path,
    ) -> Result<String, InstallError> {
        let layout = mirror.layout;
        let (os, arch) = release_platform();
        let sums_name = layout.sums_name(version);
        let sums_url = layout.sums_url(&mirror.base, version);
        let sig_url = layout.signature_url(&mirror.base, version);
        let sums = fetch_small(&mirror.client, &sums_url, MAX_SUMS_BYTES).await?;
        let sig = fetch_small(&mirror.client, &sig_url, MAX_SIGNATURE_BYTES).await?;
        verify_detached(&mirror.key, &sig, &sums).map_err(|detail| InstallError::Signature {
            file: sums_name.clone(),
            signature: layout.signature_name(version),
            key_file: mirror.key_file.display().to_string(),
            detail,
        })?;
        let release = |detail: String| InstallError::Release {
            file: sums_name.clone(),
            detail,
        };
        let sums = std::str::from_utf8(&sums)
            .map_err(|_| release("is not UTF-8 text".into()))
            .and_then(|t| Sha256Sums::parse(t).map_err(release))?;
        let archive_name = layout.archive_name(version, os, arch);
        let expected = sums
            .digest_of(&archive_name)
            .ok_or_else(|| {
                release(format!(
                    "does not list {archive_name} (no {engine} {version} for {os}/{arch})"
                ))
            })?
            .to_string();

        let io = |detail: String| InstallError::Io {
            dir: engine_dir.display().to_string(),
            detail,
        };
        // Everything is written inside the engine's directory (same filesystem as the final
        // place, so the last step is one atomic rename) and removed on any failure.
        let staging = tempfile::Builder::new()
            .prefix(&format!(".partial-{version}-"))
            .tempdir_in(engine_dir)
            .map_err(|e| io(format!("creating a staging directory: {e}")))?;
        let archive_path = staging.path().join(&archive_name);
        let archive_url = layout.archive_url(&mirror.base, version, os, arch);
        let actual = fetch_to_file(
            &mirror.client,
            &archive_url,
            &archive_path,
            mirror.max_archive_bytes,
        )
        .await?;
        if !actual.eq_ignore_ascii_case(&expected) {
            return Err(InstallError::Checksum {
                file: archive_name,
                expected,
                actual,
            });
        }
        let version_dir = staging.path().join("version");
        let binary = layout.binary_name();
        let (archive_for_unzip, dir_for_unzip) = (archive_path.clone(), version_dir.clone());
        tokio::task::spawn_blocking(move || unpack(&archive_for_unzip, binary, &dir_for_unzip))
            .await
            .map_err(|e| io(format!("the unpack task failed: {e}")))?
            .map_err(|detail| InstallError::Release {
                file: archive_name.clone(),
                detail,
            })?;
        // The release must be the version it is filed under (a mirror could serve a signed but
        // older release under a newer name): its own `version` output says which it is.
        let staged = version_dir.join(binary);
        let reported = super::terraform::binary_version(&staged, super::terraform::VERSION_TIMEOUT)
            .await
            .map_err(|e| InstallError::Release {
                file: archive_name.clone(),
                detail: format!("its `{binary} version` failed: {e:#}"),
            })?;
        if !reported_version(&reported).is_some_and(|r| r.cmp(version).is_eq()) {
            return Err(InstallError::Release {
                file: archive_name,
                detail: format!(
                    "its `{binary} version` reports {reported:?}, not version {version}; refusing the release"
                ),
            });
        }
        // Read-only from here on; until now the staging dir stayed removable by its drop (a
        // cancelled job, a refused release) even when Sluice does not run as root.
        std::fs::set_permissions(&version_dir, std::fs::Permissions::from_mode(0o555))
            .and_then(|()| File::open(&version_dir)?.sync_all())
            .map_err(|e| io(format!("finishing {}: {e}", version_dir.display())))?;
        let final_dir = engine_dir.join(version.to_string());
        if let Err(e) = std::fs::rename(&version_dir, &final_dir) {
            // Writable again, so the staging directory can be removed.
            let _ = std::fs::set_permissions(&version_dir, std::fs::Permissions::from_mode(0o755));
            return Err(io(format!(
                "moving the verified {binary} into {}: {e}",
                final_dir.display()
            )));
        }
        File::open(engine_dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io(format!("syncing: {e}")))?;
        Ok(actual)
    }
}

/// The version in the first line of `terraform version` (`Terraform v1.6.2`) or `tofu version`
/// (`OpenTofu v1.6.2`): its first word that starts with `v` and parses as a version.
pub fn reported_version(first_line: &str) -> Option<Version> {
    first_line
        .split_whitespace()
        .filter(|w| w.starts_with('v'))
        .find_map(|w| Version::parse(w).ok())
}

/// GETs `url` whole, refusing bodies over `limit` bytes.
async fn fetch_small(
    client: &reqwest::Client,
    url: &str,
    limit: u64,
) -> Result<Vec<u8>, InstallError> {
    let mut body = Vec::new();
    fetch(client, url, limit, |chunk| {
        body.extend_from_slice(chunk);
        Ok(())
    })
    .await?;
    Ok(body)
}

/// GETs `url` into a new file at `path` (fsynced), refusing bodies over `limit` bytes; returns
/// the body's SHA-256 (lowercase hex).
async fn fetch_to_file(
    client: &reqwest::Client,
    url: &str,
    path: &Path,
    limit: u64,
) -> Result<String, InstallError> {
    let io = |e: std::io::Error| InstallError::Io {
        dir: path.display().to_string(),
        detail: e.to_string(),
    };
    let mut file = File::create(path).map_err(io)?;
    let mut hasher = Sha256::new();
    fetch(client, url, limit, |chunk| {
        hasher.update(chunk);
        file.write_all(chunk)
    })
    .await?;
    file.sync_all().map_err(io)?;
    Ok(hex::encode(hasher.finalize()))
}

async fn fetch(
    client: &reqwest::Client,
    url: &str,
    limit: u64,
    mut sink: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> Result<(), InstallError> {
    let fetch_err = |detail: String| InstallError::Fetch {
        url: url.to_string(),
        detail,
    };
    let mut resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| fetch_err(error_chain(&e)))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(fetch_err(format!("the mirror answered {status}")));
    }
    if resp.content_length().is_some_and(|n| n > limit) {
        return Err(InstallError::TooLarge {
            url: url.to_string(),
            limit,
        });
    }
    let mut seen = 0u64;
    while let Some(chunk) = resp.chunk().await.map_err(|e| fetch_err(error_chain(&e)))? {
        seen += chunk.len() as u64;
        if seen > limit {
            return Err(InstallError::TooLarge {
                url: url.to_string(),
                limit,
            });
        }
        sink(&chunk).map_err(|e| InstallError::Io {
            dir: url.to_string(),
            detail: e.to_string(),
        })?;
    }
    Ok(())
}

/// An error and its sources on one line (reqwest's top-level message alone says only "error
/// sending request").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Unpacks the top-level file `binary` of the zip at `archive` into a new directory `dir` as
/// `dir/binary`, mode 0555, fsynced.
fn unpack(archive: &Path, binary: &str, dir: &Path) -> Result<(), String> {
    let file = File::open(archive).map_err(|e| format!("cannot be opened: {e}"))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| format!("is not a zip archive: {e}"))?;
    let mut entry = zip
        .by_name(binary)
        .map_err(|e| format!("has no top-level `{binary}` ({e})"))?;
    if !entry.is_file() {
        return Err(format!("its `{binary}` is not a regular file"));
    }
    if entry.size() > MAX_BINARY_BYTES {
        return Err(format!(
            "its `{binary}` unpacks to {} bytes, over the limit of {MAX_BINARY_BYTES}",
            entry.size()
        ));
    }
    std::fs::create_dir(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let out_path = dir.join(binary);
    let mut out =
        File::create(&out_path).map_err(|e| format!("creating {}: {e}", out_path.display()))?;
    // The declared size is the entry's; `take` bounds what is actually inflated.
    let copied = std::io::copy(&mut (&mut entry).take(MAX_BINARY_BYTES + 1), &mut out)
        .map_err(|e| format!("unpacking `{binary}`: {e}"))?;
    if copied > MAX_BINARY_BYTES {
        return Err(format!(
            "its `{binary}` unpacks to more than {MAX_BINARY_BYTES} bytes"
        ));
    }
    out.set_permissions(std::fs::Permissions::from_mode(0o555))
        .and_then(|()| out.sync_all())
        .map_err(|e| format!("writing {}: {e}", out_path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_read_from_either_engines_version_line() {
        let v = |s: &str| reported_version(s).map(|v| v.to_string());
        assert_eq!(v("Terraform v1.6.2").as_deref(), Some("1.6.2"));
        assert_eq!(v("OpenTofu v1.7.0-beta1").as_deref(), Some("1.7.0-beta1"));
        assert_eq!(
            v("Terraform v1.0.3 on linux_amd64").as_deref(),
            Some("1.0.3")
        );
        assert_eq!(v("version unknown"), None);
        assert_eq!(v(""), None);
    }

    #[test]
    fn release_archives_name_the_platform_as_go_does() {
        let (os, arch) = release_platform();
        assert!(!os.is_empty() && !arch.is_empty());
        if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
            assert_eq!((os, arch), ("linux", "amd64"));
        }
    }
}
