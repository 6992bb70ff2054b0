//! Server settings: defaults → `sluice.toml`/YAML (`SLUICE_CONFIG`) → `SLUICE_*` environment →
//! command-line flags, merged with the `config` crate and validated once.
//!
//! `preview` and `serve` read the same settings so they behave alike. Secrets are held in
//! [`Secret`], whose `Debug` never prints the value. This module reads the environment and the
//! config file; nothing else in the crate does.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::core::allowlist::Allowlist;
use crate::core::diag::has_errors;
use crate::core::server_rules::{
    ServerRules, ServerRulesConfig, parse_repos_yaml, rules_from_config, server_not_yet_enforced,
};

/// A secret value (webhook secret, token, key). `Debug` and `Display` redact it, so a settings
/// struct can be logged whole without leaking anything.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The value itself. Call sites are few and obvious: signing, auth headers, redaction lists.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Everything an operator can set. Flat keys are the contract scripted against
/// (`SLUICE_WEBHOOK_SECRET` ↔ `webhook_secret`); nested tables (`[runner]`, `[[credentials]]`)
/// are reachable from the environment with `__` (`SLUICE_RUNNER__PROFILE`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address the HTTP server listens on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Where the store, repository mirrors and job directories live.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Shared secret of the GitHub webhook. Required by `serve` (fail closed).
    #[serde(default)]
    pub webhook_secret: Option<Secret>,
    /// Development only: accept unsigned webhooks. Only settable by the flag of the same name.
    #[serde(skip)]
    pub insecure_no_webhook_secret: bool,
    #[serde(default)]
    pub github_token: Option<Secret>,
    #[serde(default)]
    pub github_app_id: Option<u64>,
    #[serde(default)]
    pub github_app_key_file: Option<PathBuf>,
    #[serde(default = "default_api_url")]
    pub github_api_url: String,
    /// The bot's own GitHub login (e.g. `sluice[bot]`); discovered from the API when unset.
    #[serde(default)]
    pub github_bot_login: Option<String>,
    /// `owner/repo` globs, `!` negation; empty means every repository that sends events.
    #[serde(default)]
    pub repo_allowlist: Vec<String>,
    /// The word that starts a command in a PR comment.
    #[serde(default = "default_bot_name")]
    pub bot_name: String,
    /// Default terraform binary (a path, or a name looked up on PATH).
    #[serde(default)]
    pub terraform_bin: Option<PathBuf>,
    /// Default OpenTofu binary.
    #[serde(default)]
    pub tofu_bin: Option<PathBuf>,
    /// Directory of pinned versions: `<dir>/terraform/<version>/terraform`,
    /// `<dir>/opentofu/<version>/tofu`.
    #[serde(default)]
    pub engine_versions_dir: Option<PathBuf>,
    /// Release mirrors a pinned engine version missing from `engine_versions_dir` is downloaded
    /// from (`[engine_mirrors.terraform]`, `[engine_mirrors.opentofu]`). Unset: pinned versions
    /// must be installed by hand.
    #[serde(default)]
    pub engine_mirrors: EngineMirrors,
    /// A filesystem provider mirror given read-only to every run. When set, providers are
    /// installed from it only (offline, trusted); unset, terraform downloads from registries.
    #[serde(default)]
    pub provider_mirror: Option<PathBuf>,
    #[serde(default)]
    pub runner: RunnerSettings,
    /// Bounds on what Sluice reads from pull requests in its own process (outside the sandbox).
    #[serde(default)]
    pub limits: Limits,
    /// Budgets of the HTTP server, whose webhook intake anyone can reach unauthenticated.
    #[serde(default)]
    pub http: HttpSettings,
    /// Comment commands this server accepts.
    #[serde(default = "default_enabled_commands")]
    pub enabled_commands: Vec<String>,
    /// GitHub writes (comments, reviews, check runs, statuses) per rolling minute, for all
    /// repositories together. GitHub's secondary limit is 80 content-creating requests a minute
    /// (`core::review::budget`); the default keeps a tenth in reserve.
    #[serde(default = "default_writes_per_minute")]
    pub github_writes_per_minute: u32,
    /// ... per rolling hour (GitHub: 500).
    #[serde(default = "default_writes_per_hour")]
    pub github_writes_per_hour: u32,
    /// Least milliseconds between the starts of two writes (GitHub asks for one second).
    #[serde(default = "default_write_gap_ms")]
    pub github_write_gap_ms: u64,
    /// Report plan runs in one summary comment per PR, edited in place on every run
    /// (`core::review::sticky`), instead of new comments per run. On by default; `false`
    /// posts one comment (or more, split at GitHub's 65,536-character limit) per plan run.
    #[serde(default = "default_true")]
    pub sticky_summary: bool,
    /// Plan draft PRs automatically (they are skipped by default).
    #[serde(default)]
    pub plan_drafts: bool,
    /// Run PRs whose head branch lives in a fork. Off by default: a fork's author gets the
    /// server's credentials at plan time otherwise.
    #[serde(default)]
    pub allow_fork_prs: bool,
    /// Base branches (globs) whose PRs Sluice plans and applies. Policies and apply
    /// requirements are read from the PR's base branch, and anyone who can push a branch could
    /// open a PR into one that carries weakened policies: only branches listed here (protect
    /// them like the default branch) are trusted, besides the repository's default branch.
    #[serde(default)]
    pub base_branches: Vec<String>,
    /// Whose PR comments are taken as commands, by their relation to the repository as GitHub
    /// reports it (`author_association`). Others get a refusal (and an audit entry).
    #[serde(default = "default_associations")]
    pub command_author_associations: Vec<String>,
    /// Worker slots: how many project jobs run at once.
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// Credentials handed to the runs of the projects that need them, and no others.
    #[serde(default)]
    pub credentials: Vec<CredentialRule>,
    /// Token for `GET /api/...`; unset disables the API (never open).
    #[serde(default)]
    pub api_token: Option<Secret>,
    /// Public base URL of this server, used for links to logs in comments.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Mandatory server policies: every `*.yaml` in this directory applies to every repository,
    /// on top of (never instead of) the repository's own.
    #[serde(default)]
    pub policy_dir: Option<PathBuf>,
    /// Read policies from the repositories (`policies/*.yaml`, `policies:` in sluice.yaml, from
    /// the PR's base branch). `false` leaves only the server's.
    #[serde(default = "default_true")]
    pub repo_policies: bool,
    /// Server-side repo rules (Atlantis' `repos.yaml`): which repository-config keys each
    /// repository may set (`allowed_overrides`), whether it may define workflows
    /// (`allow_custom_workflows`), the server's workflows it may pick. A `.yaml`/`.yml` file is
    /// read as an Atlantis `repos.yaml`, as-is; a `.toml` file holds the same keys in Sluice's
    /// TOML (`[[repos]]`, `[workflows.NAME.plan]`). Read and checked at start-up: a bad file stops
    /// the server. Unset: every repository may set every key and define its own workflows.
    #[serde(default)]
    pub repo_rules: Option<PathBuf>,
    /// `repo_rules`, read when the settings are loaded ([`Settings::server_rules`]).
    #[serde(skip, default = "unconfigured_rules")]
    server_rules: std::sync::Arc<ServerRules>,
    /// A worker renews its job's lease this often (a third of it); a job whose lease ran out
    /// (its worker died) is retried (plans) or marked interrupted (applies).
    #[serde(default = "default_lease")]
    pub job_lease_secs: u64,
    /// On shutdown, how long running jobs may take to finish before they are interrupted.
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace_secs: u64,
    /// Test builds only (`debug_assertions`): the delivery id whose processing aborts the
    /// process, so tests can prove that an event which kills the server is set aside. Read from
    /// `SLUICE_TEST_CRASH_ON_DELIVERY` in debug builds and never in release builds; never from a
    /// file.
    #[serde(skip)]
    pub test_crash_on_delivery: Option<String>,
    /// Drift detection: schedules, the share of workers, notifications.
    #[serde(default)]
    pub drift: DriftServerSettings,
    /// The web UI's login (`[ui]`, `SLUICE_UI__*`).
    #[serde(default)]
    pub ui: UiSettings,
    /// Development only: the web UI without login. Only settable by the flag of the same name.
    #[serde(skip)]
    pub insecure_ui_no_auth: bool,
    /// `repo_allowlist`, compiled when the settings are loaded.
    #[serde(skip)]
    allowlist: Allowlist,
    /// `base_branches`, compiled when the settings are loaded.
    #[serde(skip)]
    trusted_bases: globset::GlobSet,
}

/// One release mirror per engine (PRODUCT.md §19).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EngineMirrors {
    /// HashiCorp's layout: `{url}/terraform/{v}/terraform_{v}_{os}_{arch}.zip`,
    /// `terraform_{v}_SHA256SUMS`, `terraform_{v}_SHA256SUMS.sig`.
    #[serde(default)]
    pub terraform: Option<EngineMirror>,
    /// OpenTofu's layout: `{url}/v{v}/tofu_{v}_{os}_{arch}.zip`, `tofu_{v}_SHA256SUMS`,
    /// `tofu_{v}_SHA256SUMS.gpgsig`.
    #[serde(default)]
    pub opentofu: Option<EngineMirror>,
}

/// Where an engine's releases are downloaded from and whose key signs them.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EngineMirror {
    /// Base URL (`https://releases.hashicorp.com`,
    /// `https://github.com/opentofu/opentofu/releases/download`, or an internal copy laid out
    /// the same way). `http://` is accepted (integrity rests on the signature), `https://` advised.
    pub url: String,
    /// The release signing key, an ASCII-armored OpenPGP public key (HashiCorp's is published at
    /// `https://www.hashicorp.com/security`, OpenTofu's at `https://get.opentofu.org/opentofu.asc`).
    /// Every release's `SHA256SUMS` must carry a valid detached signature by it (or by one of
    /// its signing subkeys).
    pub public_key_file: PathBuf,
    /// Largest release archive downloaded, in bytes (terraform's are about 30 MB).
    #[serde(default = "default_engine_archive_bytes")]
    pub max_archive_bytes: u64,
    /// Wall-clock limit of one file's download, in seconds.
    #[serde(default = "default_engine_download_timeout")]
    pub timeout_secs: u64,
}

fn default_engine_archive_bytes() -> u64 {
    512 * 1024 * 1024
}
fn default_engine_download_timeout() -> u64 {
    600
}

fn unconfigured_rules() -> std::sync::Arc<ServerRules> {
    std::sync::Arc::new(ServerRules::unconfigured())
}

/// Reads the `repo_rules` file (at most `max_bytes`): an Atlantis `repos.yaml` as-is, or
/// Sluice's TOML with the same keys (by extension). Every problem — a parse error, a key Sluice
/// refuses, a rule this server does not carry out ([`server_not_yet_enforced`]) — is listed in
/// the error, at `file:line:col` where known.
pub fn load_repo_rules(path: &Path, max_bytes: u64) -> anyhow::Result<ServerRules> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("repo_rules: reading {}", path.display()))?;
    if meta.len() > max_bytes {
        bail!(
            "repo_rules: {} is {} bytes; Sluice reads configuration files of at most {max_bytes} \
             bytes (limits.file_bytes)",
            path.display(),
            meta.len()
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("repo_rules: reading {}", path.display()))?;
    let name = path.display().to_string();
    let toml_format = path.extension().is_some_and(|e| e == "toml");
    let (rules, mut diags) = if toml_format {
        let cfg: ServerRulesConfig =
            toml::from_str(&text).with_context(|| format!("repo_rules: {name} is not valid"))?;
        rules_from_config(&name, &cfg)
    } else {
        parse_repos_yaml(&name, &text)
    };
    if let Some(r) = &rules {
        diags.extend(server_not_yet_enforced(r));
    }
    match rules {
        Some(r) if !has_errors(&diags) => {
            for d in &diags {
                tracing::warn!("repo_rules: {d}");
            }
            Ok(r)
        }
        _ => bail!(
            "repo_rules: {name} is refused:\n{}",
            diags
                .iter()
                .filter(|d| d.is_error())
                .map(|d| format!("  {d}"))
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

/// How and where terraform runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunnerSettings {
    /// `bwrap` (default, isolated), `plain` (development only, not isolated), or a path to a
    /// profile file like those in `runners/`.
    #[serde(default = "default_profile")]
    pub profile: String,
    /// Wall-clock limit of one terraform command.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// After SIGINT (timeout or cancel), how long terraform gets to stop before SIGKILL.
    #[serde(default = "default_grace")]
    pub grace_secs: u64,
    /// Bytes of terraform output kept per command (head and tail are kept, the middle cut).
    #[serde(default = "default_output_cap")]
    pub output_cap_bytes: usize,
    /// Largest `terraform show -json` accepted.
    #[serde(default = "default_json_cap")]
    pub plan_json_cap_bytes: usize,
    /// Network inside the sandbox. Providers talk to cloud APIs, so on by default. Each run has
    /// a network namespace of its own with outbound IPv4 through slirp4netns; the host's
    /// loopback, link-local (cloud metadata), private and other non-public ranges and the host's
    /// own addresses are refused unless `egress_allow` opens them. `false`: no network at all.
    #[serde(default = "default_true")]
    pub network: bool,
    /// Ranges (`10.20.0.0/16`) or addresses (`10.20.0.5`) runs may reach although they are
    /// blocked by default, e.g. an internal registry or proxy. IPv4 only; loopback never.
    #[serde(default)]
    pub egress_allow: Vec<String>,
    /// When Sluice runs as root, runs (and the helpers that set them up) run as this user and
    /// group instead — never as root. Ignored otherwise: runs then use Sluice's own user.
    #[serde(default = "default_sandbox_id")]
    pub sandbox_uid: u32,
    #[serde(default = "default_sandbox_id")]
    pub sandbox_gid: u32,
    /// Where job directories (checkouts, saved plans) live. Never inside `data_dir`: a run can
    /// see the path of its own job dir (`/proc/self/mountinfo`), and it must not learn the data
    /// dir's. Default: `sluice-jobs-<hash of data_dir>` next to the data dir. Put it on a
    /// filesystem of its own (a volume) and runs see only `/<job>` instead of its path.
    #[serde(default)]
    pub jobs_dir: Option<PathBuf>,
    /// Resource limits of each run (the bwrap profile).
    #[serde(default)]
    pub limits: RunLimits,
}

/// Resource limits of one run, set as rlimits on the sandbox (soft = hard). The process limit
/// counts the run's own processes and threads only (each run has a user namespace of its own);
/// memory and file size are per process — for one cap on a whole run's memory, run Sluice under
/// a cgroup (a container's memory limit, or a systemd slice).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RunLimits {
    /// Processes and threads of one run (`RLIMIT_NPROC`). terraform and each provider are Go
    /// programs with a few dozen threads each.
    #[serde(default = "default_limit_processes")]
    pub processes: u64,
    /// Virtual memory of one process, in bytes (`RLIMIT_AS`). Go reserves address space
    /// generously, so this is far above what terraform and large providers touch.
    #[serde(default = "default_limit_address_space")]
    pub address_space_bytes: u64,
    /// Largest file one process may write, in bytes (`RLIMIT_FSIZE`): providers downloaded into
    /// a job (without a mirror) are the biggest files a run writes legitimately.
    #[serde(default = "default_limit_file_size")]
    pub file_size_bytes: u64,
    /// Open files per process (`RLIMIT_NOFILE`).
    #[serde(default = "default_limit_open_files")]
    pub open_files: u64,
    /// Size of the run's private `/tmp` (a tmpfs), in bytes. Without a size a tmpfs may grow to
    /// half the host's memory; a run writing past this gets `ENOSPC`.
    #[serde(default = "default_limit_tmp")]
    pub tmp_bytes: u64,
    /// Size of the run's `/dev/shm` (a tmpfs), in bytes; the rest of its `/dev` is read-only.
    #[serde(default = "default_limit_dev_shm")]
    pub dev_shm_bytes: u64,
}

impl Default for RunLimits {
    fn default() -> Self {
        RunLimits {
            processes: default_limit_processes(),
            address_space_bytes: default_limit_address_space(),
            file_size_bytes: default_limit_file_size(),
            open_files: default_limit_open_files(),
            tmp_bytes: default_limit_tmp(),
            dev_shm_bytes: default_limit_dev_shm(),
        }
    }
}

impl Default for RunnerSettings {
    fn default() -> Self {
        RunnerSettings {
            profile: default_profile(),
            timeout_secs: default_timeout(),
            grace_secs: default_grace(),
            output_cap_bytes: default_output_cap(),
            plan_json_cap_bytes: default_json_cap(),
            network: true,
            egress_allow: Vec::new(),
            sandbox_uid: default_sandbox_id(),
            sandbox_gid: default_sandbox_id(),
            jobs_dir: None,
            limits: RunLimits::default(),
        }
    }
}

/// Bounds on everything Sluice derives from pull-request content in its own process — reading
/// blobs and trees, parsing `.tf` files for module detection, parsing YAML configuration, and
/// unpacking a commit into a job's directory — so that no pull request can stop the server or
/// exhaust its memory, disk or time. What goes over a bound is refused with a message that
/// names the setting (`limits.<name>`); nothing is truncated silently.
///
/// Every field has a default; set them in `[limits]` or as `SLUICE_LIMITS__<NAME>`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest single file read into memory, in bytes: `sluice.yaml`/`atlantis.yaml`, policy
    /// files and `.tf`/`.tofu` files read for module detection. A larger configuration or policy
    /// file is a configuration error; a larger `.tf` file is a detection error on that file.
    pub file_bytes: u64,
    /// Total bytes of `.tf`/`.tofu` files read from one commit for module detection. Files past
    /// the budget (in path order) are detection errors.
    pub detection_bytes: u64,
    /// Deepest nesting module detection parses in a `.tf` file: brackets, braces, parentheses,
    /// string templates, template directives and chains of operators each count one level.
    /// At most 500 (the parser recurses once per level; see `core::hcl_scan`).
    pub hcl_depth: usize,
    /// Files and symlinks in one commit's tree (submodules not counted).
    pub tree_files: usize,
    /// Files one pull request may change (its diff against the merge base).
    pub changed_files: usize,
    /// Longest path in a commit, in bytes (also the longest symlink target).
    pub path_bytes: usize,
    /// Wall-clock budget of reading one commit and detecting its projects, in seconds, per event.
    /// Also the longest any one git command reading pull-request content (diff, ls-tree,
    /// cat-file, archive) may run; git started for such a read is killed, with every process it
    /// started, when the reader stops waiting.
    pub detection_timeout_secs: u64,
    /// Address space of each git process the server runs (`RLIMIT_AS`), in bytes: git working
    /// on crafted objects (a "tree bomb" of trees reused to spell 10^9 paths) fails with an
    /// out-of-memory error instead of growing without bound.
    pub git_memory_bytes: u64,
    /// Bytes of files one job's checkout may hold.
    pub export_bytes: u64,
    /// Entries (files, directories, symlinks) one job's checkout may hold.
    pub export_files: usize,
    /// Largest single file in a job's checkout, in bytes.
    pub export_file_bytes: u64,
    /// Attempts at handling one webhook event — counted when the attempt starts, so an event
    /// whose handling stops the process counts too — before it is set aside (dead-lettered).
    pub event_attempts: u32,
    /// Projects one plan may run; a change that affects more is refused with a hint to target
    /// some with `-p`/`-d`.
    pub projects_per_run: usize,
    /// Wall-clock budget of one Rego policy set's evaluation on one plan, in milliseconds: the
    /// interpreter stops itself past it (its cooperative timer), and Sluice stops waiting at
    /// twice that plus a second. A set stopped either way fails (closed), saying so.
    pub rego_eval_ms: u64,
}

/// The most `limits.hcl_depth` may be: module detection parses on a thread whose stack holds
/// several times this depth of the parser's deepest recursion.
pub const MAX_HCL_DEPTH: usize = 500;

impl Default for Limits {
    fn default() -> Self {
        const MIB: u64 = 1024 * 1024;
        Limits {
            file_bytes: MIB,
            detection_bytes: 64 * MIB,
            hcl_depth: 100,
            tree_files: 100_000,
            changed_files: 25_000,
            path_bytes: 1024,
            detection_timeout_secs: 120,
            git_memory_bytes: 4 << 30,
            export_bytes: 1024 * MIB,
            export_files: 100_000,
            export_file_bytes: 100 * MIB,
            event_attempts: 3,
            projects_per_run: 500,
            rego_eval_ms: 10_000,
        }
    }
}

/// Budgets of the HTTP server (`[http]`, `SLUICE_HTTP__*`). `POST /events` is reachable by
/// anyone before the signature is checked, so every resource a sender can hold — a connection, a
/// slot in the header parser, bytes of body buffered before the HMAC is known — is bounded in
/// count, size and time. Deliveries from GitHub are small and fast (GitHub gives up after 10 s
/// and caps payloads at 25 MB), so the defaults leave them untouched.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// A connection must send a complete request head (request line and headers) within this
    /// many seconds of opening — or, on a kept-alive connection, of its previous response —
    /// or it is closed. Stops slow-header ("slowloris") senders from holding connections.
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout_secs: u64,
    /// A request body must arrive completely within this many seconds of the handler starting
    /// to read it, or the request is answered 408 and the connection closed.
    #[serde(default = "default_body_read_timeout")]
    pub body_read_timeout_secs: u64,
    /// A response write that makes no progress for this many seconds (the client does not read
    /// what it asked for) closes the connection. Stops clients that pipeline requests and never
    /// read the answers from holding connections for ever.
    #[serde(default = "default_write_timeout")]
    pub write_timeout_secs: u64,
    /// A connection on which the server waits this many seconds for a byte that does not come
    /// is closed, whatever it was waiting for (a request head, a body, the next request).
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_secs: u64,
    /// Open connections at most; further ones wait in the kernel's accept queue until one
    /// closes.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Open connections from one peer IP address at most; further ones are closed at once.
    /// `0` turns the per-address cap off — do that (or raise it) when a reverse proxy in
    /// front of Sluice is the only peer.
    #[serde(default = "default_max_connections_per_ip")]
    pub max_connections_per_ip: usize,
    /// Largest webhook body accepted, in bytes. A larger `Content-Length` is answered 413
    /// before any of the body is read; a chunked body is cut off (413) when it grows past it.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: u64,
    /// Bytes of webhook bodies held in memory at once, over all requests, before their
    /// signatures are known. A request that would go past it is answered 503 without being
    /// read. Must be at least `max_body_bytes`.
    #[serde(default = "default_max_inflight_body")]
    pub max_inflight_body_bytes: u64,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            header_read_timeout_secs: default_header_read_timeout(),
            body_read_timeout_secs: default_body_read_timeout(),
            write_timeout_secs: default_write_timeout(),
            idle_timeout_secs: default_idle_timeout(),
            max_connections: default_max_connections(),
            max_connections_per_ip: default_max_connections_per_ip(),
            max_body_bytes: default_max_body(),
            max_inflight_body_bytes: default_max_inflight_body(),
        }
    }
}

impl Limits {
    /// The bounds module detection applies to one `.tf` file.
    pub fn hcl(&self) -> crate::core::hcl_scan::HclLimits {
        crate::core::hcl_scan::HclLimits {
            max_bytes: usize::try_from(self.file_bytes).unwrap_or(usize::MAX),
            max_depth: self.hcl_depth,
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.hcl_depth == 0 || self.hcl_depth > MAX_HCL_DEPTH {
            bail!(
                "limits.hcl_depth must be between 1 and {MAX_HCL_DEPTH}, got {}",
                self.hcl_depth
            );
        }
        if self.event_attempts == 0 {
            bail!("limits.event_attempts must be at least 1");
        }
        if self.detection_timeout_secs == 0 {
            bail!("limits.detection_timeout_secs must be at least 1");
        }
        if self.git_memory_bytes < 64 << 20 {
            bail!(
                "limits.git_memory_bytes must be at least 64 MiB (git maps its packs), got {}",
                self.git_memory_bytes
            );
        }
        for (name, v) in [
            ("file_bytes", self.file_bytes),
            ("detection_bytes", self.detection_bytes),
            ("export_bytes", self.export_bytes),
            ("export_file_bytes", self.export_file_bytes),
            ("tree_files", self.tree_files as u64),
            ("changed_files", self.changed_files as u64),
            ("path_bytes", self.path_bytes as u64),
            ("export_files", self.export_files as u64),
            ("projects_per_run", self.projects_per_run as u64),
            ("rego_eval_ms", self.rego_eval_ms),
        ] {
            if v == 0 {
                bail!("limits.{name} must be at least 1");
            }
        }
        Ok(())
    }
}

/// Environment variables given to the runs of matching projects only.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialRule {
    /// `owner/repo` globs.
    #[serde(default = "match_all")]
    pub repos: Vec<String>,
    /// Globs over the project's dir and the names the **base** branch gives that dir and
    /// workspace (`core::base_rules`); a name the PR chooses never counts.
    #[serde(default = "match_all")]
    pub projects: Vec<String>,
    /// Literal values (treated as secrets: redacted from every output).
    #[serde(default)]
    pub env: BTreeMap<String, Secret>,
    /// Names copied from the server's own environment at start-up (also redacted).
    #[serde(default)]
    pub env_from_server: Vec<String>,
}

fn default_associations() -> Vec<String> {
    ["OWNER", "MEMBER", "COLLABORATOR"]
        .map(String::from)
        .to_vec()
}
fn default_writes_per_minute() -> u32 {
    crate::core::review::budget::BudgetLimits::default().per_minute
}
fn default_writes_per_hour() -> u32 {
    crate::core::review::budget::BudgetLimits::default().per_hour
}
fn default_write_gap_ms() -> u64 {
    crate::core::review::budget::BudgetLimits::default()
        .min_gap
        .num_milliseconds()
        .max(0) as u64
}
fn default_listen() -> SocketAddr {
    "127.0.0.1:4141".parse().expect("literal address")
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("sluice-data")
}
fn default_api_url() -> String {
    "https://api.github.com".to_string()
}
fn default_bot_name() -> String {
    "sluice".to_string()
}
fn default_profile() -> String {
    "bwrap".to_string()
}
fn default_timeout() -> u64 {
    3600
}
fn default_grace() -> u64 {
    30
}
fn default_output_cap() -> usize {
    4 * 1024 * 1024
}
fn default_json_cap() -> usize {
    512 * 1024 * 1024
}
/// `nobody` / `nogroup` on Debian and most distributions.
fn default_sandbox_id() -> u32 {
    65534
}
fn default_limit_processes() -> u64 {
    4096
}
fn default_limit_address_space() -> u64 {
    16 << 30
}
fn default_limit_file_size() -> u64 {
    4 << 30
}
fn default_limit_open_files() -> u64 {
    4096
}
fn default_limit_tmp() -> u64 {
    1 << 30
}
fn default_limit_dev_shm() -> u64 {
    64 << 20
}
fn default_true() -> bool {
    true
}
fn default_workers() -> usize {
    2
}
fn default_enabled_commands() -> Vec<String> {
    [
        "plan",
        "apply",
        "import",
        "state_rm",
        "unlock",
        "approve_policies",
        "help",
        "version",
        "rollback",
    ]
    .map(String::from)
    .to_vec()
}
fn default_header_read_timeout() -> u64 {
    10
}
fn default_body_read_timeout() -> u64 {
    20
}
fn default_write_timeout() -> u64 {
    20
}
fn default_idle_timeout() -> u64 {
    60
}
fn default_max_connections() -> usize {
    1024
}
fn default_max_connections_per_ip() -> usize {
    64
}
/// GitHub caps webhook payloads at 25 MB; a little headroom above that.
fn default_max_body() -> u64 {
    26 * 1024 * 1024
}
fn default_max_inflight_body() -> u64 {
    64 * 1024 * 1024
}
fn default_lease() -> u64 {
    30
}
fn default_shutdown_grace() -> u64 {
    60
}
fn match_all() -> Vec<String> {
    vec!["*".to_string()]
}

/// Values from command-line flags; they override everything else.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub insecure_no_webhook_secret: bool,
    pub insecure_ui_no_auth: bool,
}

/// Top-level keys settable from the environment as `SLUICE_<KEY>`. Other `SLUICE_*` variables
/// are ignored rather than rejected: the environment is shared with other tools.
const ENV_KEYS: &[&str] = &[
    "listen",
    "data_dir",
    "webhook_secret",
    "github_token",
    "github_app_id",
    "github_app_key_file",
    "github_api_url",
    "github_bot_login",
    "repo_allowlist",
    "bot_name",
    "terraform_bin",
    "tofu_bin",
    "engine_versions_dir",
    "provider_mirror",
    "enabled_commands",
    "plan_drafts",
    "allow_fork_prs",
    "github_writes_per_minute",
    "github_writes_per_hour",
    "github_write_gap_ms",
    "sticky_summary",
    "base_branches",
    "command_author_associations",
    "workers",
    "api_token",
    "public_url",
    "job_lease_secs",
    "policy_dir",
    "repo_policies",
    "repo_rules",
    "shutdown_grace_secs",
];
/// GitHub's `author_association` values.
const ASSOCIATIONS: &[&str] = &[
    "OWNER",
    "MEMBER",
    "COLLABORATOR",
    "CONTRIBUTOR",
    "FIRST_TIME_CONTRIBUTOR",
    "FIRST_TIMER",
    "MANNEQUIN",
    "NONE",
];
const LIST_KEYS: &[&str] = &[
    "runner.egress_allow",
    "repo_allowlist",
    "enabled_commands",
    "base_branches",
    "command_author_associations",
    "ui.admins",
];

impl Settings {
    /// Loads settings from the process environment and, when named, a config file.
    pub fn load(overrides: &Overrides) -> anyhow::Result<Settings> {
        let env: HashMap<String, String> = std::env::vars().collect();
        Self::load_from(&env, overrides)
    }

    /// Same as [`Settings::load`] with an explicit environment (tests).
    pub fn load_from(
        env: &HashMap<String, String>,
        overrides: &Overrides,
    ) -> anyhow::Result<Settings> {
        let file = overrides.config_file.clone().or_else(|| {
            env.get("SLUICE_CONFIG")
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
        });

        let mut builder = config::Config::builder();
        if let Some(path) = &file {
            if !path.is_file() {
                bail!("config file {} does not exist", path.display());
            }
            builder = builder.add_source(config::File::from(path.as_path()).required(true));
        }

        // Only known keys are taken from the environment: flat ones as SLUICE_KEY, nested ones
        // as SLUICE_SECTION__KEY.
        let mut vars = config::Map::new();
        for (k, v) in env {
            let Some(rest) = k.strip_prefix("SLUICE_") else {
                continue;
            };
            let key = rest.to_ascii_lowercase();
            let known = ENV_KEYS.contains(&key.as_str())
                || key.starts_with("runner__")
                || key.starts_with("limits__")
                || key.starts_with("http__")
                || key.starts_with("drift__")
                || key.starts_with("ui__")
                || key.starts_with("engine_mirrors__");
            if known && !v.is_empty() {
                vars.insert(k.clone(), v.clone());
            }
        }
        let mut envsrc = config::Environment::with_prefix("SLUICE")
            .prefix_separator("_")
            .separator("__")
            .list_separator(",")
            .try_parsing(true)
            .source(Some(vars));
        for key in LIST_KEYS {
            envsrc = envsrc.with_list_parse_key(key);
        }
        builder = builder.add_source(envsrc);

        if let Some(listen) = overrides.listen {
            builder = builder.set_override("listen", listen.to_string())?;
        }
        if let Some(dir) = &overrides.data_dir {
            builder = builder.set_override("data_dir", dir.to_string_lossy().to_string())?;
        }

        let merged = builder.build().map_err(|e| match &file {
            Some(path) => anyhow::anyhow!("reading settings from {}: {e}", path.display()),
            None => anyhow::anyhow!("reading settings: {e}"),
        })?;
        let mut settings: Settings = merged.try_deserialize().map_err(|e| match &file {
            Some(path) => anyhow::anyhow!(
                "invalid settings (file {}, SLUICE_* environment): {e}",
                path.display()
            ),
            None => anyhow::anyhow!("invalid settings (SLUICE_* environment): {e}"),
        })?;
        settings.insecure_no_webhook_secret = overrides.insecure_no_webhook_secret;
        settings.insecure_ui_no_auth = overrides.insecure_ui_no_auth;
        // A fault injection for the end-to-end test of poison events: it must not exist in a
        // release build at all (not merely be off), so no configuration can turn it on in
        // production; debug builds are what `cargo test` runs.
        #[cfg(debug_assertions)]
        {
            settings.test_crash_on_delivery = env
                .get("SLUICE_TEST_CRASH_ON_DELIVERY")
                .filter(|s| !s.is_empty())
                .cloned();
        }
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&mut self) -> anyhow::Result<()> {
        if self.bot_name.trim().is_empty() || self.bot_name.contains(char::is_whitespace) {
            bail!("bot_name must be one word, got {:?}", self.bot_name);
        }
        if self.workers == 0 {
            bail!("workers must be at least 1");
        }
        self.drift.validate()?;
        self.ui.validate()?;
        for (name, m) in [
            ("terraform", &self.engine_mirrors.terraform),
            ("opentofu", &self.engine_mirrors.opentofu),
        ] {
            let Some(m) = m else { continue };
            if !(m.url.starts_with("https://") || m.url.starts_with("http://")) {
                bail!(
                    "engine_mirrors.{name}.url must be an http(s) URL, got {:?}",
                    m.url
                );
            }
            if self.engine_versions_dir.is_none() {
                bail!(
                    "engine_mirrors.{name} needs engine_versions_dir: downloaded versions are kept there"
                );
            }
            if m.max_archive_bytes == 0 || m.timeout_secs == 0 {
                bail!("engine_mirrors.{name}: max_archive_bytes and timeout_secs must be positive");
            }
        }
        if self.github_app_id.is_some() != self.github_app_key_file.is_some() {
            bail!("SLUICE_GITHUB_APP_ID and SLUICE_GITHUB_APP_KEY_FILE must be set together");
        }
        if let Some(secret) = &self.webhook_secret
            && secret.expose().len() < 8
        {
            bail!("the webhook secret is shorter than 8 characters; use a long random value");
        }
        self.allowlist = Allowlist::new(&self.repo_allowlist)
            .map_err(|e| anyhow::anyhow!("repo_allowlist: {e}"))?;
        for a in &mut self.command_author_associations {
            *a = a.trim().to_ascii_uppercase();
            if !ASSOCIATIONS.contains(&a.as_str()) {
                bail!(
                    "command_author_associations: unknown value {a:?} (one of {})",
                    ASSOCIATIONS.join(", ")
                );
            }
        }
        // GitHub's branch names, matched as they always were here: `*` may cross `/`.
        let mut bases = globset::GlobSetBuilder::new();
        for pattern in &self.base_branches {
            bases.add(
                globset::Glob::new(pattern).with_context(|| {
                    format!("base_branches entry {pattern:?} is not a valid glob")
                })?,
            );
        }
        self.trusted_bases = bases.build().context("base_branches")?;
        self.github_api_url = self.github_api_url.trim_end_matches('/').to_string();
        if self.runner.timeout_secs == 0 {
            bail!("runner.timeout_secs must be at least 1");
        }
        for (name, v) in [
            ("tmp_bytes", self.runner.limits.tmp_bytes),
            ("dev_shm_bytes", self.runner.limits.dev_shm_bytes),
        ] {
            if v < 1 << 20 {
                bail!("runner.limits.{name} must be at least 1 MiB, got {v}");
            }
        }
        self.limits.validate()?;
        self.http.validate()?;
        if let Some(path) = &self.repo_rules {
            self.server_rules = std::sync::Arc::new(load_repo_rules(path, self.limits.file_bytes)?);
        }
        if self.runner.sandbox_uid == 0 || self.runner.sandbox_gid == 0 {
            bail!(
                "runner.sandbox_uid and runner.sandbox_gid must not be 0: runs never run as root"
            );
        }
        let l = &self.runner.limits;
        if l.processes < 16
            || l.open_files < 64
            || l.address_space_bytes < (256 << 20)
            || l.file_size_bytes < (1 << 20)
        {
            bail!(
                "runner.limits are too small for terraform to start (at least 16 processes, 64 open files, \
                 256 MiB of address space, 1 MiB file size): {l:?}"
            );
        }
        Ok(())
    }

    /// Whether a comment author with this `author_association` may run commands (fail closed:
    /// an unknown association may not).
    pub fn may_comment_commands(&self, association: Option<&str>) -> bool {
        association.is_some_and(|a| {
            self.command_author_associations
                .iter()
                .any(|ok| ok.eq_ignore_ascii_case(a))
        })
    }

    /// Whether PRs into `base` are run, for a repository whose default branch is `default`.
    pub fn base_branch_trusted(&self, base: &str, default: &str) -> bool {
        if base == default {
            return true;
        }
        self.trusted_bases.is_match(base)
    }

    /// The server's repo rules (`repo_rules`), read when the settings were loaded;
    /// [`ServerRules::unconfigured`] without the setting.
    pub fn server_rules(&self) -> &std::sync::Arc<ServerRules> {
        &self.server_rules
    }

    /// The repository allowlist (`repo_allowlist`), compiled when the settings were loaded.
    pub fn allowlist(&self) -> &Allowlist {
        &self.allowlist
    }

    /// Every secret value the server knows, for output redaction.
    pub fn secret_values(&self) -> Vec<String> {
        let mut out: Vec<String> = [
            &self.webhook_secret,
            &self.github_token,
            &self.api_token,
            &self.drift.webhook_secret,
            &self.drift.slack_webhook_url,
            &self.ui.oauth_client_secret,
            &self.ui.session_secret,
        ]
        .into_iter()
        .flatten()
        .map(|s| s.expose().to_string())
        .collect();
        for rule in &self.credentials {
            out.extend(rule.env.values().map(|s| s.expose().to_string()));
        }
        out
    }

    /// True when the data dir was configured rather than defaulted (`preview` then uses a
    /// throw-away directory instead of creating `sluice-data/` wherever it is run).
    pub fn data_dir_configured(&self) -> bool {
        self.data_dir != default_data_dir()
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("sluice.db")
    }

    /// Where job directories live: `runner.jobs_dir`, or `sluice-jobs-<12 hex digits of the
    /// SHA-256 of the absolute data dir>` beside the data dir — outside it, on the same
    /// filesystem (saved plans survive restarts), named so it does not give the data dir's path
    /// away, and distinct for every data dir.
    pub fn jobs_dir(&self) -> PathBuf {
        match &self.runner.jobs_dir {
            Some(dir) => dir.clone(),
            None => default_jobs_dir(&self.data_dir),
        }
    }

    pub fn mirrors_dir(&self) -> PathBuf {
        self.data_dir.join("repos")
    }
}

impl HttpSettings {
    fn validate(&self) -> anyhow::Result<()> {
        if self.header_read_timeout_secs == 0
            || self.body_read_timeout_secs == 0
            || self.write_timeout_secs == 0
            || self.idle_timeout_secs == 0
        {
            bail!(
                "http.header_read_timeout_secs, body_read_timeout_secs, write_timeout_secs and idle_timeout_secs must be at least 1"
            );
        }
        if self.max_connections == 0 {
            bail!("http.max_connections must be at least 1");
        }
        if self.max_body_bytes < 1024 || self.max_body_bytes > u64::from(u32::MAX) {
            bail!(
                "http.max_body_bytes must be between 1 KiB and 4 GiB, got {}",
                self.max_body_bytes
            );
        }
        if self.max_inflight_body_bytes < self.max_body_bytes {
            bail!(
                "http.max_inflight_body_bytes ({}) must be at least http.max_body_bytes ({}), or no delivery of the largest size could ever be read",
                self.max_inflight_body_bytes,
                self.max_body_bytes
            );
        }
        Ok(())
    }
}

/// The jobs dir of a data dir when `runner.jobs_dir` is not set (see [`Settings::jobs_dir`]).
pub fn default_jobs_dir(data_dir: &Path) -> PathBuf {
    use sha2::{Digest, Sha256};
    let data = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    let hash = hex::encode(Sha256::digest(data.as_os_str().as_encoded_bytes()));
    let parent = data.parent().unwrap_or(Path::new("/"));
    parent.join(format!("sluice-jobs-{}", &hash[..12]))
}

/// Resolves a binary given as a path or a bare name (looked up on `PATH`), checking that it is
/// an executable file. The error says what was tried, so a missing tool is a one-line fix.
pub fn resolve_binary(name_or_path: &Path) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let check = |p: &Path| -> anyhow::Result<PathBuf> {
        let meta =
            std::fs::metadata(p).with_context(|| format!("{} does not exist", p.display()))?;
        if !meta.is_file() {
            bail!("{} is not a file", p.display());
        }
        if meta.permissions().mode() & 0o111 == 0 {
            bail!("{} is not executable (chmod +x it)", p.display());
        }
        std::fs::canonicalize(p).with_context(|| format!("resolving {}", p.display()))
    };
    if name_or_path.components().count() > 1 || name_or_path.is_absolute() {
        return check(name_or_path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name_or_path);
        if candidate.is_file() {
            return check(&candidate);
        }
    }
    bail!(
        "`{}` was not found on PATH; install it or set its path (SLUICE_TERRAFORM_BIN / tofu_bin)",
        name_or_path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_without_anything() {
        let s = Settings::load_from(&env(&[]), &Overrides::default()).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:4141");
        assert_eq!(s.bot_name, "sluice");
        assert!(s.webhook_secret.is_none());
        assert_eq!(s.runner.profile, "bwrap");
    }

    #[test]
    fn trusted_base_branches_and_command_authors() {
        let s = Settings::load_from(&env(&[]), &Overrides::default()).unwrap();
        assert!(s.base_branch_trusted("main", "main"));
        assert!(!s.base_branch_trusted("weak", "main"));
        assert!(s.may_comment_commands(Some("MEMBER")));
        assert!(!s.may_comment_commands(Some("CONTRIBUTOR")));
        assert!(!s.may_comment_commands(None), "unknown fails closed");

        let s = Settings::load_from(
            &env(&[
                ("SLUICE_BASE_BRANCHES", "release/*"),
                ("SLUICE_COMMAND_AUTHOR_ASSOCIATIONS", "owner,contributor"),
            ]),
            &Overrides::default(),
        )
        .unwrap();
        assert!(
            s.base_branch_trusted("main", "main"),
            "the default branch always runs"
        );
        assert!(s.base_branch_trusted("release/2.0", "main"));
        assert!(!s.base_branch_trusted("feature", "main"));
        assert!(s.may_comment_commands(Some("CONTRIBUTOR")));
        assert!(!s.may_comment_commands(Some("MEMBER")));

        let err = Settings::load_from(
            &env(&[("SLUICE_COMMAND_AUTHOR_ASSOCIATIONS", "OWNER,ADMIN")]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("unknown value \"ADMIN\""),
            "{err:#}"
        );
    }

    #[test]
    fn environment_contract_names() {
        let s = Settings::load_from(
            &env(&[
                ("SLUICE_LISTEN", "127.0.0.1:9999"),
                ("SLUICE_WEBHOOK_SECRET", "s3cret-value"),
                ("SLUICE_GITHUB_TOKEN", "ghp_abc"),
                ("SLUICE_GITHUB_API_URL", "http://127.0.0.1:1234/"),
                ("SLUICE_REPO_ALLOWLIST", "acme/*,!acme/secret"),
                ("SLUICE_TERRAFORM_BIN", "/opt/tf"),
                ("SLUICE_PROVIDER_MIRROR", "/opt/mirror"),
                ("SLUICE_BOT_NAME", "atlantis"),
                ("SLUICE_RUNNER__PROFILE", "plain"),
                ("SLUICE_UNRELATED_THING", "ignored"),
            ]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(s.listen.port(), 9999);
        assert_eq!(s.webhook_secret.as_ref().unwrap().expose(), "s3cret-value");
        assert_eq!(s.github_api_url, "http://127.0.0.1:1234");
        assert_eq!(s.repo_allowlist, vec!["acme/*", "!acme/secret"]);
        assert_eq!(s.bot_name, "atlantis");
        assert_eq!(s.runner.profile, "plain");
        assert_eq!(s.provider_mirror.unwrap(), PathBuf::from("/opt/mirror"));
    }

    #[test]
    fn sandbox_settings_from_the_environment() {
        let s = Settings::load_from(
            &env(&[
                ("SLUICE_RUNNER__EGRESS_ALLOW", "10.20.0.0/16,10.30.0.5"),
                ("SLUICE_RUNNER__SANDBOX_UID", "4242"),
                ("SLUICE_RUNNER__LIMITS__PROCESSES", "100"),
                ("SLUICE_RUNNER__JOBS_DIR", "/srv/sluice-jobs"),
            ]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(s.runner.egress_allow, ["10.20.0.0/16", "10.30.0.5"]);
        assert_eq!(s.runner.sandbox_uid, 4242);
        assert_eq!(s.runner.sandbox_gid, 65534);
        assert_eq!(s.runner.limits.processes, 100);
        assert_eq!(s.runner.limits.open_files, 4096);
        assert_eq!(s.jobs_dir(), Path::new("/srv/sluice-jobs"));

        for (key, value, why) in [
            ("SLUICE_RUNNER__SANDBOX_UID", "0", "must not be 0"),
            ("SLUICE_RUNNER__SANDBOX_GID", "0", "must not be 0"),
            ("SLUICE_RUNNER__LIMITS__PROCESSES", "2", "too small"),
            (
                "SLUICE_RUNNER__LIMITS__ADDRESS_SPACE_BYTES",
                "1000",
                "too small",
            ),
        ] {
            let err = format!(
                "{:#}",
                Settings::load_from(&env(&[(key, value)]), &Overrides::default()).unwrap_err()
            );
            assert!(err.contains(why), "{key}={value}: {err}");
        }
    }

    #[test]
    fn default_jobs_dir_is_beside_the_data_dir_and_does_not_name_it() {
        for data in [
            "/var/lib/sluice/data",
            "/var/lib/sluice/other",
            "relative-data",
        ] {
            let s = Settings::load_from(&env(&[("SLUICE_DATA_DIR", data)]), &Overrides::default())
                .unwrap();
            let jobs = s.jobs_dir();
            let abs = std::path::absolute(data).unwrap();
            assert!(!jobs.starts_with(&abs), "{}", jobs.display());
            assert_eq!(jobs.parent(), abs.parent());
            let name = jobs.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                name.starts_with("sluice-jobs-") && !name.contains("data"),
                "{name}"
            );
        }
        let a = default_jobs_dir(Path::new("/var/lib/sluice/data"));
        let b = default_jobs_dir(Path::new("/var/lib/sluice/other"));
        assert_ne!(a, b, "two data dirs in one place get two jobs dirs");
    }

    #[test]
    fn debug_never_prints_secrets() {
        let s = Settings::load_from(
            &env(&[
                ("SLUICE_WEBHOOK_SECRET", "very-secret-1"),
                ("SLUICE_GITHUB_TOKEN", "ghp_secret2"),
            ]),
            &Overrides::default(),
        )
        .unwrap();
        let dbg = format!("{s:?}");
        assert!(
            !dbg.contains("very-secret-1") && !dbg.contains("ghp_secret2"),
            "{dbg}"
        );
        assert!(dbg.contains("Secret(***)"));
    }

    #[test]
    fn http_budgets_have_defaults_env_names_and_checks() {
        let s = Settings::load_from(&env(&[]), &Overrides::default()).unwrap();
        assert_eq!(s.http.header_read_timeout_secs, 10);
        assert_eq!(s.http.max_connections_per_ip, 64);
        assert!(s.http.max_inflight_body_bytes >= s.http.max_body_bytes);

        let s = Settings::load_from(
            &env(&[
                ("SLUICE_HTTP__HEADER_READ_TIMEOUT_SECS", "2"),
                ("SLUICE_HTTP__MAX_CONNECTIONS_PER_IP", "0"),
                ("SLUICE_HTTP__MAX_BODY_BYTES", "4096"),
                ("SLUICE_HTTP__MAX_INFLIGHT_BODY_BYTES", "8192"),
            ]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(s.http.header_read_timeout_secs, 2);
        assert_eq!(s.http.max_connections_per_ip, 0);
        assert_eq!(s.http.max_body_bytes, 4096);

        for (key, value, want) in [
            (
                "SLUICE_HTTP__MAX_INFLIGHT_BODY_BYTES",
                "1024",
                "must be at least http.max_body_bytes",
            ),
            (
                "SLUICE_HTTP__BODY_READ_TIMEOUT_SECS",
                "0",
                "must be at least 1",
            ),
            (
                "SLUICE_HTTP__MAX_CONNECTIONS",
                "0",
                "max_connections must be at least 1",
            ),
            (
                "SLUICE_HTTP__MAX_BODY_BYTES",
                "10",
                "between 1 KiB and 4 GiB",
            ),
        ] {
            let err = Settings::load_from(&env(&[(key, value)]), &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{key}={value}: {err}");
        }
    }

    #[test]
    fn file_then_env_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sluice.toml");
        std::fs::write(
            &file,
            "bot_name = \"fromfile\"\nworkers = 3\n[runner]\ntimeout_secs = 10\n",
        )
        .unwrap();
        let s = Settings::load_from(
            &env(&[
                ("SLUICE_CONFIG", file.to_str().unwrap()),
                ("SLUICE_WORKERS", "5"),
            ]),
            &Overrides {
                listen: Some("127.0.0.1:1".parse().unwrap()),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(s.bot_name, "fromfile");
        assert_eq!(s.workers, 5);
        assert_eq!(s.runner.timeout_secs, 10);
        assert_eq!(s.listen.port(), 1);
    }

    #[test]
    fn limits_have_defaults_and_are_settable_and_checked() {
        let s = Settings::load_from(&env(&[]), &Overrides::default()).unwrap();
        assert_eq!(s.limits, Limits::default());
        assert_eq!(s.limits.hcl_depth, 100);
        assert_eq!(s.limits.event_attempts, 3);

        let s = Settings::load_from(
            &env(&[
                ("SLUICE_LIMITS__HCL_DEPTH", "200"),
                ("SLUICE_LIMITS__EXPORT_BYTES", "1000"),
            ]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!((s.limits.hcl_depth, s.limits.export_bytes), (200, 1000));
        assert_eq!(s.limits.file_bytes, Limits::default().file_bytes);

        for (key, value, want) in [
            (
                "SLUICE_LIMITS__HCL_DEPTH",
                "501",
                "limits.hcl_depth must be between 1 and 500",
            ),
            (
                "SLUICE_LIMITS__EVENT_ATTEMPTS",
                "0",
                "limits.event_attempts must be at least 1",
            ),
            (
                "SLUICE_LIMITS__TREE_FILES",
                "0",
                "limits.tree_files must be at least 1",
            ),
        ] {
            let err = Settings::load_from(&env(&[(key, value)]), &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{key}={value}: {err}");
        }

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sluice.toml");
        std::fs::write(&file, "[limits]\nfile_byte = 1\n").unwrap();
        let err = Settings::load_from(
            &env(&[("SLUICE_CONFIG", file.to_str().unwrap())]),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("file_byte"), "{err}");
    }

    #[test]
    fn the_crash_injection_exists_in_test_builds_only() {
        let s = Settings::load_from(
            &env(&[("SLUICE_TEST_CRASH_ON_DELIVERY", "abc")]),
            &Overrides::default(),
        )
        .unwrap();
        // Unit tests are debug builds; a release build has no code that reads the variable.
        assert_eq!(
            s.test_crash_on_delivery.as_deref(),
            cfg!(debug_assertions).then_some("abc")
        );
    }

    #[test]
    fn unknown_file_keys_and_bad_values_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sluice.toml");
        std::fs::write(&file, "bot_nme = \"x\"\n").unwrap();
        let err = Settings::load_from(
            &env(&[("SLUICE_CONFIG", file.to_str().unwrap())]),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("bot_nme"), "{err}");

        let err = Settings::load_from(
            &env(&[("SLUICE_WEBHOOK_SECRET", "short")]),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("shorter than 8"), "{err}");

        let err = Settings::load_from(
            &env(&[("SLUICE_REPO_ALLOWLIST", "acme/[")]),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("not a valid glob"), "{err}");
    }
}

/// `[drift]`: reconciliation (PRODUCT.md §14). Repositories set per-project schedules in
/// `sluice.yaml` (`drift: { schedule, enabled }`, from the default branch); this is the server's
/// side: the default schedule, how many checks may run at once, and where state changes are
/// announced.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriftServerSettings {
    /// `false` turns drift checks off on this server.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Schedule of projects whose configuration names none (5-field cron, UTC).
    #[serde(default = "default_drift_schedule")]
    pub default_schedule: String,
    /// Drift checks that may run at once. They never take the job workers' slots (`workers`):
    /// PR plans and applies are never delayed by them.
    #[serde(default = "default_drift_workers")]
    pub workers: usize,
    /// A Slack-compatible incoming-webhook URL for drift state changes (a secret: it is the
    /// credential).
    #[serde(default)]
    pub slack_webhook_url: Option<Secret>,
    /// A URL that receives every drift state change as JSON (`sluice.drift.v1`), signed with
    /// HMAC-SHA256 of `webhook_secret` in `X-Sluice-Signature-256`.
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// Required with `webhook_url`: unsigned events are never sent.
    #[serde(default)]
    pub webhook_secret: Option<Secret>,
}

fn default_drift_schedule() -> String {
    crate::core::drift::DEFAULT_SCHEDULE.to_string()
}

fn default_drift_workers() -> usize {
    1
}

impl Default for DriftServerSettings {
    fn default() -> Self {
        DriftServerSettings {
            enabled: true,
            default_schedule: default_drift_schedule(),
            workers: default_drift_workers(),
            slack_webhook_url: None,
            webhook_url: None,
            webhook_secret: None,
        }
    }
}

impl DriftServerSettings {
    fn validate(&self) -> anyhow::Result<()> {
        crate::core::drift::validate_schedule(&self.default_schedule).map_err(|e| {
            anyhow::anyhow!("drift.default_schedule {:?}: {e}", self.default_schedule)
        })?;
        if self.workers == 0 {
            bail!(
                "drift.workers must be at least 1 (set drift.enabled = false to turn checks off)"
            );
        }
        if self.webhook_url.is_some() && self.webhook_secret.is_none() {
            bail!("drift.webhook_url needs drift.webhook_secret: drift events are always signed");
        }
        if let Some(s) = &self.webhook_secret
            && s.expose().len() < 8
        {
            bail!("drift.webhook_secret is shorter than 8 characters; use a long random value");
        }
        Ok(())
    }

    /// The default schedule, parsed (validated when the settings were loaded).
    pub fn schedule(&self) -> crate::core::drift::Schedule {
        crate::core::drift::validate_schedule(&self.default_schedule)
            .or_else(|_| {
                crate::core::drift::validate_schedule(crate::core::drift::DEFAULT_SCHEDULE)
            })
            .expect("the built-in default schedule parses")
    }
}

/// `[ui]`: login to the web UI with GitHub (PRODUCT.md §16). The UI is on only when the OAuth
/// client and the session secret are all set (or with `--insecure-ui-no-auth`); the API token
/// opens it for scripts either way.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UiSettings {
    /// The client id of the GitHub App (or of an OAuth app) users log in with. Its callback URL
    /// must be `<public_url>/login/callback`.
    #[serde(default)]
    pub oauth_client_id: Option<String>,
    #[serde(default)]
    pub oauth_client_secret: Option<Secret>,
    /// Signs session cookies and CSRF tokens: at least 32 bytes (`openssl rand -hex 32`).
    /// Changing it logs everyone out.
    #[serde(default)]
    pub session_secret: Option<Secret>,
    /// Who sees and does everything: GitHub logins (`ana`) and teams (`org/team-slug`).
    #[serde(default)]
    pub admins: Vec<String>,
    /// How long a login lasts, in seconds (default 8 hours).
    #[serde(default = "default_session_ttl")]
    pub session_ttl_secs: u64,
    /// GitHub's web host for the OAuth pages, when it is not derived from `github_api_url`
    /// (`https://api.github.com` → `https://github.com`, `https://host/api/v3` → `https://host`).
    #[serde(default)]
    pub github_web_url: Option<String>,
    /// Whether `/metrics` needs the API token (default: open, like most exporters).
    #[serde(default)]
    pub metrics_require_token: bool,
    /// Bytes of terraform output stored per job for the log page (default 4 MiB; at least
    /// 4 KiB); beyond it the page shows a notice and the output's end (256 KiB, or a quarter of
    /// a smaller cap).
    #[serde(default = "default_log_max_bytes")]
    pub log_max_bytes: usize,
    /// Days a job's log is kept (default 30; 0 keeps logs forever).
    #[serde(default = "default_log_retention_days")]
    pub log_retention_days: u64,
}

fn default_log_max_bytes() -> usize {
    4 << 20
}

fn default_log_retention_days() -> u64 {
    30
}

fn default_session_ttl() -> u64 {
    8 * 3600
}

impl Default for UiSettings {
    fn default() -> Self {
        UiSettings {
            oauth_client_id: None,
            oauth_client_secret: None,
            session_secret: None,
            admins: Vec::new(),
            session_ttl_secs: default_session_ttl(),
            github_web_url: None,
            metrics_require_token: false,
            log_max_bytes: default_log_max_bytes(),
            log_retention_days: default_log_retention_days(),
        }
    }
}

impl UiSettings {
    /// Whether login with GitHub is configured (all three settings).
    pub fn login_configured(&self) -> bool {
        self.oauth_client_id.is_some()
            && self.oauth_client_secret.is_some()
            && self.session_secret.is_some()
    }

    fn validate(&mut self) -> anyhow::Result<()> {
        if self.session_ttl_secs == 0 {
            self.session_ttl_secs = default_session_ttl();
        }
        let set = [
            self.oauth_client_id.is_some(),
            self.oauth_client_secret.is_some(),
            self.session_secret.is_some(),
        ];
        if set.iter().any(|s| *s) && !set.iter().all(|s| *s) {
            bail!(
                "ui.oauth_client_id, ui.oauth_client_secret and ui.session_secret must be set together \
                 (SLUICE_UI__OAUTH_CLIENT_ID, SLUICE_UI__OAUTH_CLIENT_SECRET, SLUICE_UI__SESSION_SECRET)"
            );
        }
        if let Some(s) = &self.session_secret {
            crate::core::ui::session::UiKeys::derive(s.expose().as_bytes())
                .map_err(|e| anyhow::anyhow!("ui.session_secret: {e}"))?;
        }
        crate::core::ui::access::Admins::parse(&self.admins)
            .map_err(|errors| anyhow::anyhow!("{}", errors.join("; ")))?;
        Ok(())
    }
}
