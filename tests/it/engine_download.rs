//! Engine versions downloaded from a release mirror: a real HTTP server on 127.0.0.1 serves a
//! mirror built here — the real terraform 1.0.3 binary zipped in HashiCorp's (or OpenTofu's)
//! layout, a `SHA256SUMS` listing it, and a detached signature made by `gpg` (an independent
//! OpenPGP implementation) with a key generated for the test, signing with a subkey as
//! HashiCorp's key does. Sluice verifies it with rPGP against the armored public key.
//!
//! No OpenTofu binary can be installed on the test machines: the OpenTofu release here is the
//! terraform 1.0.3 binary renamed `tofu` (it reports `Terraform v1.0.3`; Sluice compares only
//! the version).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use sluice::adapters::engine_install::{EngineInstaller, read_public_key, verify_detached};
use sluice::config::{Overrides, Settings};
use sluice::core::engine_version::Version;
use sluice::core::types::Engine;

use crate::server::Harness;
use crate::support::{null_project, tools};

// ---------------------------------------------------------------------------------------------
// The signing key (gpg)

/// A throw-away gpg home with one key: a certify-only ed25519 primary key and an ed25519
/// signing subkey (gpg signs with the subkey).
struct Gpg {
    home: tempfile::TempDir,
    fingerprint: String,
}

impl Gpg {
    fn new(uid: &str) -> Gpg {
        let home = tempfile::Builder::new()
            .prefix("sluice-gpg-")
            .tempdir_in("/tmp")
            .expect("gpg home");
        std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let mut g = Gpg {
            home,
            fingerprint: String::new(),
        };
        g.run(&["--quick-gen-key", uid, "ed25519", "cert", "never"]);
        let listing = g.run(&["--with-colons", "--list-keys", uid]);
        let fingerprint = String::from_utf8(listing)
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("fpr:"))
            .map(|l| l.trim_matches(':').to_string())
            .expect("the new key's fingerprint");
        g.run(&["--quick-add-key", &fingerprint, "ed25519", "sign", "never"]);
        g.fingerprint = fingerprint;
        g
    }

    fn run(&self, args: &[&str]) -> Vec<u8> {
        let out = Command::new("/usr/bin/gpg")
            .env("GNUPGHOME", self.home.path())
            .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""])
            .args(args)
            .output()
            .expect("gpg runs (apt-get install gnupg)");
        assert!(
            out.status.success(),
            "gpg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    fn public_key_armored(&self) -> String {
        String::from_utf8(self.run(&["--armor", "--export", &self.fingerprint])).unwrap()
    }

    /// A detached signature of `data`: binary (HashiCorp's `.sig`) or armored.
    fn sign(&self, data: &[u8], armored: bool) -> Vec<u8> {
        let input = self.home.path().join("to-sign");
        std::fs::write(&input, data).unwrap();
        let mut args = vec!["--local-user", &self.fingerprint, "--detach-sign"];
        if armored {
            args.push("--armor");
        }
        let input = input.display().to_string();
        args.extend(["--output", "-", &input]);
        self.run(&args)
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        // gpg started an agent for this home; stop it rather than leave it running.
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", self.home.path())
            .args(["--kill", "gpg-agent"])
            .output();
    }
}

// ---------------------------------------------------------------------------------------------
// The mirror (a real HTTP server)

/// Files by URL path, requests counted by path.
#[derive(Clone, Default)]
struct MirrorState {
    files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    /// How long archive (`.zip`) responses are held, so concurrent requests overlap.
    zip_delay: Arc<Mutex<Duration>>,
}

struct MirrorServer {
    url: String,
    state: MirrorState,
    _task: tokio::task::JoinHandle<()>,
}

impl MirrorServer {
    async fn start() -> MirrorServer {
        let state = MirrorState::default();
        let served = state.clone();
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
            let s = served.clone();
            async move {
                let path = uri.path().to_string();
                *s.hits.lock().unwrap().entry(path.clone()).or_default() += 1;
                if path.ends_with(".zip") {
                    let delay = *s.zip_delay.lock().unwrap();
                    tokio::time::sleep(delay).await;
                }
                match s.files.lock().unwrap().get(&path) {
                    Some(body) => (axum::http::StatusCode::OK, body.clone()),
                    None => (axum::http::StatusCode::NOT_FOUND, Vec::new()),
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        MirrorServer {
            url: format!("http://{addr}"),
            state,
            _task: task,
        }
    }

    fn put(&self, path: &str, body: Vec<u8>) {
        self.state
            .files
            .lock()
            .unwrap()
            .insert(path.to_string(), body);
    }

    fn hits(&self, path: &str) -> usize {
        self.state
            .hits
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    fn total_hits(&self) -> usize {
        self.state.hits.lock().unwrap().values().sum()
    }
}

/// The platform part of archive names, as release archives spell it.
fn platform() -> (&'static str, &'static str) {
    sluice::adapters::engine_install::release_platform()
}

/// One release as a mirror serves it: URL paths and bodies.
struct Release {
    archive_path: String,
    archive: Vec<u8>,
    sums_path: String,
    sums: Vec<u8>,
    sig_path: String,
    sig: Vec<u8>,
}

impl Release {
    /// `engine` `version` holding the real terraform 1.0.3 binary under the engine's binary
    /// name, its `SHA256SUMS` (with other platforms' lines, as real ones have) signed by `key`.
    fn build(engine: Engine, version: &str, key: &Gpg) -> Release {
        let (os, arch) = platform();
        let (dir, product, sig_ext) = match engine {
            Engine::Terraform => (format!("/terraform/{version}"), "terraform", "sig"),
            Engine::Opentofu => (format!("/v{version}"), "tofu", "gpgsig"),
        };
        let archive_name = format!("{product}_{version}_{os}_{arch}.zip");
        let archive = zip_binary(product, &std::fs::read(tools().terraform).unwrap());
        let sums = format!(
            "{}  {product}_{version}_darwin_arm64.zip\n{}  {archive_name}\n{}  {product}_{version}_windows_amd64.zip\n",
            "1".repeat(64),
            hex::encode(Sha256::digest(&archive)),
            "2".repeat(64),
        )
        .into_bytes();
        let sig = key.sign(&sums, engine == Engine::Opentofu);
        Release {
            archive_path: format!("{dir}/{archive_name}"),
            archive,
            sums_path: format!("{dir}/{product}_{version}_SHA256SUMS"),
            sums,
            sig_path: format!("{dir}/{product}_{version}_SHA256SUMS.{sig_ext}"),
            sig,
        }
    }

    fn serve(&self, mirror: &MirrorServer) {
        mirror.put(&self.archive_path, self.archive.clone());
        mirror.put(&self.sums_path, self.sums.clone());
        mirror.put(&self.sig_path, self.sig.clone());
    }
}

/// A zip archive with one executable entry, deflated, as HashiCorp's are.
fn zip_binary(name: &str, bytes: &[u8]) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut out);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(0o755);
        zip.start_file(name, opts).unwrap();
        zip.write_all(bytes).unwrap();
        zip.finish().unwrap();
    }
    out.into_inner()
}

// ---------------------------------------------------------------------------------------------
// The installer, as the server builds it

/// A fresh versions dir and a key file for `key`.
struct Cache {
    dir: tempfile::TempDir,
}

impl Cache {
    fn new() -> Cache {
        let dir = tempfile::tempdir().unwrap();
        // The sandbox's user must reach the installed binary.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        Cache { dir }
    }

    fn versions(&self) -> PathBuf {
        self.dir.path().join("versions")
    }

    fn key_file(&self, key: &Gpg) -> PathBuf {
        let path = self.dir.path().join(format!("{}.asc", key.fingerprint));
        std::fs::write(&path, key.public_key_armored()).unwrap();
        path
    }

    /// The settings a server with this mirror and key would have.
    fn env(&self, engine: Engine, url: &str, key: &Gpg) -> BTreeMap<String, String> {
        let e = engine.as_str().to_ascii_uppercase();
        BTreeMap::from([
            (
                "SLUICE_ENGINE_VERSIONS_DIR".to_string(),
                self.versions().display().to_string(),
            ),
            (format!("SLUICE_ENGINE_MIRRORS__{e}__URL"), url.to_string()),
            (
                format!("SLUICE_ENGINE_MIRRORS__{e}__PUBLIC_KEY_FILE"),
                self.key_file(key).display().to_string(),
            ),
        ])
    }

    fn installer(&self, env: &BTreeMap<String, String>) -> anyhow::Result<EngineInstaller> {
        let env: HashMap<String, String> = env.clone().into_iter().collect();
        let settings = Settings::load_from(&env, &Overrides::default())?;
        Ok(EngineInstaller::from_settings(&settings)?.expect("a mirror is configured"))
    }

    /// Every entry under the versions dir (relative paths), to show nothing was left behind.
    fn entries(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![self.versions()];
        while let Some(d) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in rd.flatten() {
                let p = e.path();
                out.push(
                    p.strip_prefix(self.versions())
                        .unwrap()
                        .display()
                        .to_string(),
                );
                if p.is_dir() {
                    stack.push(p);
                }
            }
        }
        out.sort();
        out
    }
}

fn v(s: &str) -> Version {
    Version::parse(s).unwrap()
}

fn version_of(binary: &Path) -> String {
    let out = Command::new(binary)
        .arg("version")
        .env("CHECKPOINT_DISABLE", "1")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

// ---------------------------------------------------------------------------------------------
// Tests

/// A pinned version missing from the cache is downloaded, verified (signature by the subkey,
/// checksum, its own version output), installed read-only where the resolver looks, and then
/// served from the cache without asking the mirror again.
#[tokio::test(flavor = "multi_thread")]
async fn a_pinned_version_is_downloaded_verified_and_cached() {
    let key = Gpg::new("Test Releases <releases@example.test>");
    let mirror = MirrorServer::start().await;
    let release = Release::build(Engine::Terraform, "1.0.3", &key);
    release.serve(&mirror);
    let cache = Cache::new();
    let installer = cache
        .installer(&cache.env(Engine::Terraform, &mirror.url, &key))
        .unwrap();

    let path = installer
        .ensure(Engine::Terraform, &v("1.0.3"))
        .await
        .unwrap();
    assert_eq!(path, cache.versions().join("terraform/1.0.3/terraform"));
    assert_eq!(version_of(&path), "Terraform v1.0.3");
    assert_eq!(mode(&path), 0o555, "the binary is read-only");
    assert_eq!(mode(path.parent().unwrap()), 0o555, "its dir too");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        std::fs::read(tools().terraform).unwrap()
    );
    assert_eq!(
        cache.entries(),
        [
            "terraform",
            "terraform/.1.0.3.lock",
            "terraform/1.0.3",
            "terraform/1.0.3/terraform"
        ],
        "nothing but the version (and its lock file) is left"
    );
    for p in [&release.sums_path, &release.sig_path, &release.archive_path] {
        assert_eq!(mirror.hits(p), 1, "{p}");
    }

    // Cached: a second request (a new server process, too) does not touch the mirror.
    let before = mirror.total_hits();
    let again = cache
        .installer(&cache.env(Engine::Terraform, &mirror.url, &key))
        .unwrap()
        .ensure(Engine::Terraform, &v("1.0.3"))
        .await
        .unwrap();
    assert_eq!(again, path);
    assert_eq!(mirror.total_hits(), before);
}

/// OpenTofu's layout (`/v1.0.3/tofu_1.0.3_…zip`, `.gpgsig`, here ASCII-armored), installed as
/// `opentofu/<version>/tofu`.
#[tokio::test(flavor = "multi_thread")]
async fn opentofu_releases_come_from_the_opentofu_layout() {
    let key = Gpg::new("Tofu Releases <tofu@example.test>");
    let mirror = MirrorServer::start().await;
    let release = Release::build(Engine::Opentofu, "1.0.3", &key);
    assert!(release.sig.starts_with(b"-----BEGIN PGP SIGNATURE-----"));
    release.serve(&mirror);
    let cache = Cache::new();
    let installer = cache
        .installer(&cache.env(Engine::Opentofu, &mirror.url, &key))
        .unwrap();
    assert!(!installer.has_mirror(Engine::Terraform));
    let path = installer
        .ensure(Engine::Opentofu, &v("1.0.3"))
        .await
        .unwrap();
    assert_eq!(path, cache.versions().join("opentofu/1.0.3/tofu"));
    assert_eq!(mirror.hits(&release.archive_path), 1);
    // The stand-in is terraform renamed `tofu` (see the module doc).
    assert_eq!(version_of(&path), "Terraform v1.0.3");

    let err = format!(
        "{:#}",
        installer
            .ensure(Engine::Terraform, &v("1.0.3"))
            .await
            .unwrap_err()
    );
    assert!(err.contains("no engine_mirrors.terraform"), "{err}");
}

/// The installed-or-refused outcome of one request, with the cache's entries after it.
async fn refused(cache: &Cache, installer: &EngineInstaller, version: &str) -> String {
    let err = installer
        .ensure(Engine::Terraform, &v(version))
        .await
        .expect_err("the release is refused");
    let err = format!("{err:#}");
    let left: Vec<String> = cache
        .entries()
        .into_iter()
        .filter(|e| !e.ends_with(".lock") && e != "terraform")
        .collect();
    assert!(left.is_empty(), "nothing is cached: {left:?} ({err})");
    err
}

/// An archive that is not the one `SHA256SUMS` lists (one byte changed) is refused with both
/// digests named, nothing cached; the next request downloads again (nothing half-kept).
#[tokio::test(flavor = "multi_thread")]
async fn an_archive_whose_checksum_differs_is_refused_and_not_cached() {
    let key = Gpg::new("Test Releases <releases@example.test>");
    let mirror = MirrorServer::start().await;
    let release = Release::build(Engine::Terraform, "1.0.3", &key);
    release.serve(&mirror);
    let mut tampered = release.archive.clone();
    let mid = tampered.len() / 2;
    tampered[mid] ^= 0x01;
    mirror.put(&release.archive_path, tampered.clone());
    let cache = Cache::new();
    let installer = cache
        .installer(&cache.env(Engine::Terraform, &mirror.url, &key))
        .unwrap();

    let err = refused(&cache, &installer, "1.0.3").await;
    let (os, arch) = platform();
    let expected = hex::encode(Sha256::digest(&release.archive));
    let actual = hex::encode(Sha256::digest(&tampered));
    assert!(
        err.contains(&format!(
            "terraform_1.0.3_{os}_{arch}.zip has SHA-256 {actual}"
        )) && err.contains(&format!("SHA256SUMS lists {expected}"))
            && err.contains("refusing the release"),
        "{err}"
    );
    let _ = refused(&cache, &installer, "1.0.3").await;
    assert_eq!(
        mirror.hits(&release.archive_path),
        2,
        "not cached: fetched again"
    );

    // The same bytes with their listing: installed.
    release.serve(&mirror);
    installer
        .ensure(Engine::Terraform, &v("1.0.3"))
        .await
        .unwrap();
}

/// Every way the signature can fail to vouch for `SHA256SUMS` is refused before the archive is
/// downloaded: a signature by another key, a listing changed after signing, a signature that is
/// not one, no signature at all; an archive missing from the listing too.
#[tokio::test(flavor = "multi_thread")]
async fn a_release_not_signed_by_the_configured_key_is_refused() {
    let key = Gpg::new("Test Releases <releases@example.test>");
    let other = Gpg::new("Someone Else <else@example.test>");
    let mirror = MirrorServer::start().await;
    let release = Release::build(Engine::Terraform, "1.0.3", &key);
    let cache = Cache::new();
    let installer = cache
        .installer(&cache.env(Engine::Terraform, &mirror.url, &key))
        .unwrap();

    // Signed by another key.
    release.serve(&mirror);
    mirror.put(&release.sig_path, other.sign(&release.sums, false));
    let err = refused(&cache, &installer, "1.0.3").await;
    assert!(
        err.contains("terraform_1.0.3_SHA256SUMS.sig does not verify terraform_1.0.3_SHA256SUMS")
            && err.contains(&format!(
                "which is not the configured key {}",
                key.fingerprint.to_ascii_lowercase()
            ))
            && err.contains(&other_subkey_fingerprint(&other)),
        "{err}"
    );

    // The listing changed after it was signed (the signature is the right key's).
    release.serve(&mirror);
    let mut sums = release.sums.clone();
    sums.extend_from_slice(format!("{}  extra.zip\n", "3".repeat(64)).as_bytes());
    mirror.put(&release.sums_path, sums);
    let err = refused(&cache, &installer, "1.0.3").await;
    assert!(
        err.contains("does not verify terraform_1.0.3_SHA256SUMS against the configured key")
            && err.contains("the file was changed after it was signed"),
        "{err}"
    );

    // Not a signature.
    release.serve(&mirror);
    mirror.put(&release.sig_path, b"not a signature".to_vec());
    let err = refused(&cache, &installer, "1.0.3").await;
    assert!(err.contains("not an OpenPGP signature"), "{err}");

    // No signature published.
    release.serve(&mirror);
    mirror.state.files.lock().unwrap().remove(&release.sig_path);
    let err = refused(&cache, &installer, "1.0.3").await;
    assert!(
        err.contains(&format!("{}{}", mirror.url, release.sig_path))
            && err.contains("404 Not Found"),
        "{err}"
    );
    assert_eq!(
        mirror.hits(&release.archive_path),
        0,
        "no archive is downloaded for an unverified listing"
    );

    // A signed listing without this platform's archive.
    let (os, arch) = platform();
    let sums = format!("{}  terraform_1.0.3_plan9_mips.zip\n", "4".repeat(64)).into_bytes();
    mirror.put(&release.sig_path, key.sign(&sums, false));
    mirror.put(&release.sums_path, sums);
    let err = refused(&cache, &installer, "1.0.3").await;
    assert!(
        err.contains(&format!(
            "does not list terraform_1.0.3_{os}_{arch}.zip (no terraform 1.0.3 for {os}/{arch})"
        )),
        "{err}"
    );
}

/// The fingerprint of `key`'s signing subkey (what its signatures name as issuer).
fn other_subkey_fingerprint(key: &Gpg) -> String {
    let listing =
        String::from_utf8(key.run(&["--with-colons", "--list-keys", &key.fingerprint])).unwrap();
    let mut after_sub = false;
    for l in listing.lines() {
        if l.starts_with("sub:") {
            after_sub = true;
        } else if after_sub && let Some(f) = l.strip_prefix("fpr:") {
            return f.trim_matches(':').to_ascii_lowercase();
        }
    }
    panic!("no subkey in {listing}");
}

/// A release whose binary says it is another version than the one it is filed under (a signed
/// 1.0.3 served as 1.0.4) is refused.
#[tokio::test(flavor = "multi_thread")]
async fn a_release_filed_under_another_version_is_refused() {
    let key = Gpg::new("Test Releases <releases@example.test>");
    let mirror = MirrorServer::start().await;
    Release::build(Engine::Terraform, "1.0.4", &key).serve(&mirror);
    let cache = Cache::new();
    let installer = cache
        .installer(&cache.env(Engine::Terraform, &mirror.url, &key))
        .unwrap();
    let err = refused(&cache, &installer, "1.0.4").await;
    assert!(
        err.contains("reports \"Terraform v1.0.3\", not version 1.0.4"),
        "{err}"
    );
}

/// Four requests for one version at once — two in each of two installers, as two server
/// processes sharing the directory would be — download it once and all get the same binary.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_requests_for_one_version_download_it_once() {
    let key = Gpg::new("Test Releases <releases@example.test>");
    let mirror = MirrorServer::start().await;
    let release = Release::build(Engine::Terraform, "1.0.3", &key);
    release.serve(&mirror);
    *mirror.state.zip_delay.lock().unwrap() = Duration::from_millis(700);
    let cache = Cache::new();
    let env = cache.env(Engine::Terraform, &mirror.url, &key);
    let a = Arc::new(cache.installer(&env).unwrap());
    let b = Arc::new(cache.installer(&env).unwrap());
    let mut tasks = Vec::new();
    for installer in [&a, &a, &b, &b] {
        let installer = installer.clone();
        tasks.push(tokio::spawn(async move {
            installer.ensure(Engine::Terraform, &v("1.0.3")).await
        }));
    }
    let mut paths = Vec::new();
    for t in tasks {
        paths.push(t.await.unwrap().unwrap());
    }
    assert!(paths.windows(2).all(|w| w[0] == w[1]), "{paths:?}");
    assert_eq!(mirror.hits(&release.archive_path), 1, "one download");
    assert_eq!(mirror.hits(&release.sums_path), 1);
    assert_eq!(version_of(&paths[0]), "Terraform v1.0.3");
}

/// A mirror nobody answers at, and one whose archive is over the size limit: clear errors
/// naming the URL, nothing cached.
#[tokio::test(flavor = "multi_thread")]
async fn a_mirror_that_is_down_or_too_big_is_a_clear_error() {
    let key = Gpg::new("Test Releases <releases@example.test>");
    let cache = Cache::new();
    // A port that was just free: nothing listens there.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let down = format!("http://{closed}");
    let installer = cache
        .installer(&cache.env(Engine::Terraform, &down, &key))
        .unwrap();
    let err = refused(&cache, &installer, "1.0.3").await;
    assert!(
        err.contains(&format!(
            "downloading {down}/terraform/1.0.3/terraform_1.0.3_SHA256SUMS"
        )) && err.to_lowercase().contains("connect"),
        "{err}"
    );

    let mirror = MirrorServer::start().await;
    let release = Release::build(Engine::Terraform, "1.0.3", &key);
    release.serve(&mirror);
    let mut env = cache.env(Engine::Terraform, &mirror.url, &key);
    env.insert(
        "SLUICE_ENGINE_MIRRORS__TERRAFORM__MAX_ARCHIVE_BYTES".into(),
        "1048576".into(),
    );
    let err = refused(&cache, &cache.installer(&env).unwrap(), "1.0.3").await;
    assert!(
        err.contains(&format!(
            "{}{} is larger than the limit of 1048576 bytes",
            mirror.url, release.archive_path
        )),
        "{err}"
    );
}

/// Bad mirror settings are refused at start-up, naming the setting or file.
#[test]
fn bad_mirror_settings_are_refused_at_start_up() {
    let key = Gpg::new("Test Releases <releases@example.test>");
    let cache = Cache::new();
    let env = cache.env(Engine::Terraform, "http://127.0.0.1:9", &key);

    let mut no_dir = env.clone();
    no_dir.remove("SLUICE_ENGINE_VERSIONS_DIR");
    let err = format!("{:#}", cache.installer(&no_dir).unwrap_err());
    assert!(
        err.contains("engine_mirrors.terraform needs engine_versions_dir"),
        "{err}"
    );

    let mut ftp = env.clone();
    ftp.insert(
        "SLUICE_ENGINE_MIRRORS__TERRAFORM__URL".into(),
        "ftp://x".into(),
    );
    let err = format!("{:#}", cache.installer(&ftp).unwrap_err());
    assert!(err.contains("must be an http(s) URL"), "{err}");

    let not_a_key = cache.dir.path().join("not-a-key.asc");
    std::fs::write(&not_a_key, "hello").unwrap();
    let mut bad_key = env.clone();
    bad_key.insert(
        "SLUICE_ENGINE_MIRRORS__TERRAFORM__PUBLIC_KEY_FILE".into(),
        not_a_key.display().to_string(),
    );
    let err = format!("{:#}", cache.installer(&bad_key).unwrap_err());
    assert!(
        err.contains("engine_mirrors.terraform.public_key_file")
            && err.contains("not-a-key.asc is not an ASCII-armored OpenPGP public key"),
        "{err}"
    );

    // The key parses, and it verifies its own signatures but not another key's.
    let k = read_public_key(&cache.key_file(&key)).unwrap();
    let data = b"some data";
    verify_detached(&k, &key.sign(data, false), data).unwrap();
    verify_detached(&k, &key.sign(data, true), data).unwrap();
    let other = Gpg::new("Someone Else <else@example.test>");
    verify_detached(&k, &other.sign(data, false), data).unwrap_err();
    verify_detached(&k, &key.sign(data, false), b"other data").unwrap_err();
}

// ---------------------------------------------------------------------------------------------
// End to end

/// A project pinning `terraform_version: 1.0.3`, an empty versions dir and a mirror: the PR is
/// planned with the downloaded, verified binary; a second project requiring exactly a version
/// (`required_version = "= 1.0.2"`) whose archive does not match its checksum fails closed with
/// the reason in the PR comment. Both downloads are audit entries.
#[tokio::test(flavor = "multi_thread")]
async fn a_pr_is_planned_with_a_version_fetched_from_the_mirror() {
    let key = Gpg::new("Test Releases <releases@example.test>");
    let mirror = MirrorServer::start().await;
    let good = Release::build(Engine::Terraform, "1.0.3", &key);
    good.serve(&mirror);
    // 1.0.2's archive is not the one its (signed) SHA256SUMS lists.
    let bad = Release::build(Engine::Terraform, "1.0.2", &key);
    bad.serve(&mirror);
    mirror.put(
        &bad.archive_path,
        zip_binary("terraform", b"#!/bin/sh\necho pwned\n"),
    );
    let cache = Cache::new();
    // `old` asks for 1.0.2 through an exact `required_version` instead of a pin: fetched alike.
    let config = "version: 1\nprojects:\n  - name: app\n    dir: app\n    terraform_version: 1.0.3\n  - name: old\n    dir: old\n";
    let mut h = Harness::new(&[
        ("sluice.yaml", config),
        ("app/main.tf", &null_project("app", "1")),
        ("old/main.tf", &null_project("old", "1")),
    ])
    .await;
    for (k, val) in cache.env(Engine::Terraform, &mirror.url, &key) {
        h.set_env(&k, &val);
    }
    h.start();

    let head = h.open_pr(
        1,
        "change",
        &[
            ("app/main.tf", &null_project("app", "2")),
            ("old/main.tf", &null_project("old", "2")),
            ("old/versions.tf", &requiring("= 1.0.2")),
        ],
    );
    h.deliver(&h.pr_event("opened", 1)).await;
    let comment = h
        .wait_comment(1, "the plan comment", |c| {
            c.contains("`app`") && c.contains("`old`")
        })
        .await;
    let app = comment
        .split("### ")
        .find(|s| s.starts_with("`app`"))
        .unwrap_or_else(|| panic!("{comment}"));
    assert!(app.contains("null_resource.app"), "{comment}");
    let old = comment
        .split("### ")
        .find(|s| s.starts_with("`old`"))
        .unwrap_or_else(|| panic!("{comment}"));
    assert!(
        old.contains("installing terraform 1.0.2")
            && old.contains("has SHA-256")
            && old.contains("refusing the release"),
        "{comment}"
    );
    let installed = cache.versions().join("terraform/1.0.3/terraform");
    assert_eq!(version_of(&installed), "Terraform v1.0.3");
    assert!(!cache.versions().join("terraform/1.0.2").exists());

    // Both downloads are in the audit log, on the job's pull request, commit and project: the
    // installed one with the archive's verified SHA-256, the refused one with the reason.
    let downloads = engine_downloads(&h);
    assert_eq!(downloads.len(), 2, "{downloads:#?}");
    let entry = |project: &str| {
        downloads
            .iter()
            .find(|e| e["project"] == project)
            .unwrap_or_else(|| panic!("no download of {project}: {downloads:#?}"))
    };
    let (app, old) = (entry("app"), entry("old"));
    for (e, version) in [(app, "1.0.3"), (old, "1.0.2")] {
        assert_eq!(e["repo"], "acme/infra", "{e:#}");
        assert_eq!(e["pr"], 1, "{e:#}");
        assert_eq!(e["head_sha"], head.as_str(), "{e:#}");
        assert_eq!(e["engine"], "terraform", "{e:#}");
        assert_eq!(e["engine_version"], version, "{e:#}");
        let url = e["details"]["archive_url"].as_str().unwrap_or_default();
        assert!(
            url.starts_with(&mirror.url) && url.contains(&format!("terraform_{version}_")),
            "{e:#}"
        );
    }
    assert_eq!(app["result"], "success", "{app:#}");
    assert_eq!(
        app["details"]["archive_sha256"],
        hex::encode(Sha256::digest(&good.archive)).as_str(),
        "{app:#}"
    );
    assert_eq!(old["result"], "refused", "{old:#}");
    assert_eq!(old["error_class"], "engine_release", "{old:#}");
    let reason = old["details"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("has SHA-256"), "{old:#}");

    // A second plan finds 1.0.3 installed: no new download, no new entry.
    h.deliver(&h.comment_event(1, "alice", "sluice plan -p app"))
        .await;
    h.wait_comment(1, "the second plan", |c| {
        c.contains("`app`") && !c.contains("`old`")
    })
    .await;
    let again = engine_downloads(&h);
    assert_eq!(
        again.iter().filter(|e| e["project"] == "app").count(),
        1,
        "{again:#?}"
    );
}

/// The `engine_download` entries of the harness's audit log.
fn engine_downloads(h: &Harness) -> Vec<serde_json::Value> {
    let out = h.cli(&["audit", "export"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["action"] == "engine_download")
        .collect()
}

// ---------------------------------------------------------------------------------------------
// `required_version` without a pin

/// `versions.tf` with a `terraform` block requiring `constraint`.
fn requiring(constraint: &str) -> String {
    format!("terraform {{\n  required_version = \"{constraint}\"\n}}\n")
}

/// Projects without a pin but with a `required_version`: each runs the newest version that
/// satisfies it among the installed ones (`engine_versions_dir`, no mirror) and the default
/// binary's own (1.0.3). The installed "1.0.9" is `false`, so the comment shows which binary
/// each plan used (terraform 1.0.3 would have refused `>= 1.0.5` in words). A constraint nothing satisfies fails the plan
/// naming the constraint and the versions there are; the `version` command reports the same
/// choices, one row per project.
#[tokio::test(flavor = "multi_thread")]
async fn required_version_runs_the_newest_available_version_that_satisfies_it() {
    let cache = Cache::new();
    let fake = cache.versions().join("terraform/1.0.9");
    std::fs::create_dir_all(&fake).unwrap();
    // Not terraform: `false`, whose silent exit status 1 no terraform gives for `init`.
    std::fs::copy("/bin/false", fake.join("terraform")).unwrap();
    for d in [cache.versions(), cache.versions().join("terraform")] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut h = Harness::new(&[
        ("newer/main.tf", &null_project("newer", "1")),
        ("older/main.tf", &null_project("older", "1")),
        ("never/main.tf", &null_project("never", "1")),
        ("pinned/main.tf", &null_project("pinned", "1")),
        (
            "sluice.yaml",
            "version: 1\nprojects:\n  - dir: newer\n  - dir: older\n  - dir: never\n\
             \x20 - dir: pinned\n    terraform_version: 1.0.3\n",
        ),
    ])
    .await;
    h.set_env(
        "SLUICE_ENGINE_VERSIONS_DIR",
        &cache.versions().display().to_string(),
    );
    h.start();

    h.open_pr(
        1,
        "constraints",
        &[
            ("newer/main.tf", &null_project("newer", "2")),
            ("newer/versions.tf", &requiring(">= 1.0.5")),
            ("older/main.tf", &null_project("older", "2")),
            ("older/versions.tf", &requiring(">= 1.0.0, < 1.0.5")),
            ("never/main.tf", &null_project("never", "2")),
            ("never/versions.tf", &requiring("~> 2.1")),
            ("pinned/main.tf", &null_project("pinned", "2")),
            ("pinned/versions.tf", &requiring(">= 1.0.5")),
        ],
    );
    h.deliver(&h.pr_event("opened", 1)).await;
    let comment = h
        .wait_comment(1, "the plan comment", |c| {
            ["newer", "older", "never", "pinned"]
                .iter()
                .all(|p| c.contains(&format!("`{p}`")))
        })
        .await;
    let section = |name: &str| {
        comment
            .split("### ")
            .find(|s| s.starts_with(&format!("`{name}`")))
            .unwrap_or_else(|| panic!("no {name} in {comment}"))
            .to_string()
    };
    let newer = section("newer");
    assert!(
        newer.contains("`terraform init` exited with status 1.") && !newer.contains("Unsupported"),
        "{comment}"
    );
    let older = section("older");
    assert!(older.contains("null_resource.older"), "{comment}");
    let never = section("never");
    assert!(
        never.contains("no available terraform version satisfies `~> 2.1`")
            && never.contains("available: 1.0.9, 1.0.3"),
        "{comment}"
    );

    // A pin must satisfy the module's constraint: terraform would refuse to run.
    let pinned = section("pinned");
    assert!(
        pinned.contains("`terraform_version` 1.0.3 does not satisfy the configuration's `required_version` `>= 1.0.5`"),
        "{comment}"
    );

    h.deliver(&h.comment_event(1, "alice", "sluice version"))
        .await;
    let reply = h
        .wait_comment(1, "the version reply", |c| c.contains("| project |"))
        .await;
    let row = |name: &str| {
        reply
            .lines()
            .find(|l| l.starts_with(&format!("| {name} |")))
            .unwrap_or_else(|| panic!("no row {name} in {reply}"))
            .to_string()
    };
    assert!(
        row("newer").contains(
            "1.0.9 (newest satisfying `required_version` `>= 1.0.5`, from engine_versions_dir)"
        ),
        "{reply}"
    );
    assert!(
        row("older").contains("1.0.3 (newest satisfying")
            && row("older").contains("from the default binary"),
        "{reply}"
    );
    assert!(
        row("never").contains("unavailable: no available terraform version satisfies `~> 2.1`"),
        "{reply}"
    );
}
