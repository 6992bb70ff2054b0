//! The repository's own configuration: `sluice.yaml` (version 1) and, for teams migrating,
//! `atlantis.yaml` (version 3), turned into one validated [`RepoConfig`].
//!
//! This module owns the file formats: which keys exist, what they mean, their defaults, and every
//! check that can be made from the file alone (versions, unknown keys, dirs, workspaces, globs,
//! unique names, `depends_on` targets and cycles). Parsers return the config *and* every
//! diagnostic they found, each at `file:line:col`, so `sluice config check` reports all problems
//! in one go. It must not read files (the I/O layer hands us the text and tells us which config
//! files exist), and it must not look at the repository tree: expanding dir globs against real
//! directories and following symlinks is [`super::projects`]' job.
//!
//! # `sluice.yaml`, version 1
//!
//! ```yaml
//! version: 1                 # required
//! autoplan:                  # optional defaults for every project
//!   enabled: true            #   plan automatically when a PR changes the project (default true)
//!   when_modified: ["**/*.tf", "../modules/**"]  # default for projects that set none
//! plan_drafts: false         # autoplan draft PRs too (default false; read by the PR intake)
//! automerge: { enabled: true, method: squash }  # merge the PR once every project is applied
//!                            #   (method: merge (default), squash, rebase; `true` = merge)
//! review_comments: destroy_and_replace  # PR review line comments: or all_changes, off (read from the base branch)
//! projects:                  # optional; without it Sluice detects projects itself (§5)
//!   - name: network-prod     # optional, unique; default derived from dir and workspace
//!     dir: envs/prod/network # relative to the repo root; may be a glob (`envs/*/network`)
//!     workspace: default
//!     terraform_version: 1.6.2
//!     engine: terraform      # or opentofu; default: OpenTofu when the files need it
//!     autoplan: { enabled: true, when_modified: ["**/*.tf", "../../modules/**/*.tf"] }
//!     apply_requirements: [approved, mergeable, undiverged]   # default [approved]
//!     depends_on: [network-shared]
//!     env: { TF_VAR_region: eu-west-1 }   # plain, non-secret variables (`env_name_refusal`)
//! policies:                  # optional; same entries as a `policies/*.yaml` file (`core::policy`)
//!   - name: cap-destroys
//!     rules: [{ max_destroys: 10 }]
//! ```
//!
//!
//! Workflows (`workflows:`, a project's `workflow:`) and Rego policy sets (`policy_sets:`) are
//! read here too; their syntax is [`super::workflow`]'s and [`super::policy::rego`]'s.
//!
//! Anchors and aliases (`&x` / `*x`) and tags (`!!str`) are rejected in `sluice.yaml`: every
//! value has exactly one place in the file, which is what makes `file:line:col` in diagnostics
//! trustworthy. `atlantis.yaml` is read the way Atlantis reads it (see
//! [`parse_atlantis_config`]), anchors and merge keys included.

use std::collections::BTreeMap;

use marked_yaml::Node;
use marked_yaml::types::MarkedMappingNode;
use serde::{Deserialize, Serialize};

use super::delivery::{ApplyMode, MergePlanCheck};
use super::diag::{Diagnostic, has_errors};
use super::drift::{DriftSettings, validate_schedule};
use super::glob::{build_glob, is_glob};
use super::graph::{find_cycles, show_cycle};
use super::policy::rego::{PolicySetConfig, SetOrigin, policies_block_node, policy_sets_node};
use super::policy::{self, Policy};
use super::review::pr_review::ReviewComments;
use super::server_rules::{OverrideKey, SlashRegex};
use super::types::{ApplyRequirement, Engine, ProjectDir, ProjectName, Workspace};
use super::workflow::{RunSyntax, Workflow, WorkflowOrigin, workflows_node};
use super::yaml::{
    self, Anchors, Key,
    Key::{Ignored, Known, Unsupported},
    did_you_mean, is_null, list_some, pos, pos_of_span,
};

/// The config files Sluice looks for at the repository root, in precedence order: the first one
/// that exists is read, the others are ignored with a warning ([`choose_config_file`]).
pub const CONFIG_FILE_NAMES: [&str; 4] =
    ["sluice.yaml", "sluice.yml", "atlantis.yaml", "atlantis.yml"];

/// Most entries a `projects:` list may have (each one may be a glob matched against the tree).
pub const MAX_PROJECTS: usize = 5_000;

/// Versions of `sluice.yaml` this build understands.
pub const SUPPORTED_VERSIONS: &[u32] = &[1];

/// The `atlantis.yaml` versions Sluice reads, as Atlantis does. They differ only in how `run`
/// commands are read (version 2 splits them like a shell and joins the words again).
pub const ATLANTIS_VERSIONS: &[u32] = &[3, 2];

/// `when_modified` of a `sluice.yaml` project that sets none (relative to the project dir). Local
/// modules the project uses are tracked on top of this, see [`super::projects`].
pub const DEFAULT_WHEN_MODIFIED: &[&str] = &[
    "**/*.tf",
    "**/*.tofu",
    "**/*.tfvars",
    "**/*.tfvars.json",
    "**/.terraform.lock.hcl",
];

/// Atlantis' own default `when_modified`, used for projects read from `atlantis.yaml` so a
/// migrating team gets the same autoplan behaviour it had.
pub const ATLANTIS_DEFAULT_WHEN_MODIFIED: &[&str] =
    &["**/*.tf*", "**/terragrunt.hcl", "**/.terraform.lock.hcl"];

/// Names a project's `env` may not set besides the `TF_*` family (compared case-insensitively):
/// the run's own directories and identity (the runner sets them), the network path and the
/// certificates it trusts, and what loads or wraps programs before they run. Sources: glibc's
/// list of variables it ignores for setuid programs (`UNSECURE_ENVVARS`), the proxy and TLS
/// variables of Go, curl and git, and the shell's start-up variables.
const REFUSED_ENV: &[(&str, EnvClass)] = &[
    ("PATH", EnvClass::Runner),
    ("HOME", EnvClass::Runner),
    ("TMPDIR", EnvClass::Runner),
    ("TMP", EnvClass::Runner),
    ("TEMP", EnvClass::Runner),
    ("USER", EnvClass::Runner),
    ("LOGNAME", EnvClass::Runner),
    ("SHELL", EnvClass::Runner),
    ("PWD", EnvClass::Runner),
    ("HTTP_PROXY", EnvClass::Network),
    ("HTTPS_PROXY", EnvClass::Network),
    ("ALL_PROXY", EnvClass::Network),
    ("FTP_PROXY", EnvClass::Network),
    ("NO_PROXY", EnvClass::Network),
    ("SSL_CERT_FILE", EnvClass::Network),
    ("SSL_CERT_DIR", EnvClass::Network),
    ("CURL_CA_BUNDLE", EnvClass::Network),
    ("NETRC", EnvClass::Network),
    ("GLIBC_TUNABLES", EnvClass::Loader),
    ("GCONV_PATH", EnvClass::Loader),
    ("GETCONF_DIR", EnvClass::Loader),
    ("HOSTALIASES", EnvClass::Loader),
    ("LOCALDOMAIN", EnvClass::Loader),
    ("LOCPATH", EnvClass::Loader),
    ("MALLOC_TRACE", EnvClass::Loader),
    ("NIS_PATH", EnvClass::Loader),
    ("NLSPATH", EnvClass::Loader),
    ("RESOLV_HOST_CONF", EnvClass::Loader),
    ("RES_OPTIONS", EnvClass::Loader),
    ("TZDIR", EnvClass::Loader),
    ("GODEBUG", EnvClass::Loader),
    ("GOTRACEBACK", EnvClass::Loader),
    ("GOMAXPROCS", EnvClass::Loader),
    ("GOGC", EnvClass::Loader),
    ("GOMEMLIMIT", EnvClass::Loader),
    ("BASH_ENV", EnvClass::Loader),
    ("ENV", EnvClass::Loader),
    ("SHELLOPTS", EnvClass::Loader),
    ("BASHOPTS", EnvClass::Loader),
    ("IFS", EnvClass::Loader),
    ("CDPATH", EnvClass::Loader),
    ("PS4", EnvClass::Loader),
    ("PROMPT_COMMAND", EnvClass::Loader),
];

/// Prefixes refused the same way (compared case-insensitively). `TF_` is handled apart: only
/// `TF_VAR_*` passes.
const REFUSED_ENV_PREFIXES: &[(&str, EnvClass)] = &[
    ("TERRAFORM_", EnvClass::Engine),
    ("TOFU_", EnvClass::Engine),
    ("CHECKPOINT_", EnvClass::Engine),
    ("SLUICE_", EnvClass::Runner),
    ("XDG_", EnvClass::Runner),
    ("GIT_", EnvClass::Network),
    ("SSH_", EnvClass::Network),
    ("LD_", EnvClass::Loader),
    ("DYLD_", EnvClass::Loader),
    ("BASH_FUNC_", EnvClass::Loader),
];

/// Why a variable cannot be set through a project's `env` ([`env_name_refusal`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvClass {
    /// `TF_*` (other than `TF_VAR_*`), `TERRAFORM_*`, `TOFU_*`, `CHECKPOINT_*`: terraform's own
    /// controls — CLI config, data and plugin dirs, implicit arguments, registry and provider
    /// overrides, logging (which prints provider requests, credentials included, into the
    /// output posted on the PR), workspace selection.
    Engine,
    /// The run's directories and identity, and Sluice's own settings: the runner sets them.
    Runner,
    /// Where the run connects and which certificates it trusts (proxies, CA bundles, git and
    /// ssh transport settings).
    Network,
    /// What loads, wraps or configures programs before they run: the dynamic loader, glibc and
    /// Go runtime knobs, shell start-up files.
    Loader,
}

impl EnvClass {
    /// The hint shown with the refusal.
    pub fn hint(self) -> &'static str {
        match self {
            EnvClass::Engine => {
                "`TF_*` variables other than `TF_VAR_*` change what terraform loads, where it \
                 connects or how it runs, which Sluice controls; pass values to the configuration \
                 as `TF_VAR_name`"
            }
            EnvClass::Runner => {
                "the runner sets the run's directories and identity; `env` is for values the \
                 configuration reads, such as `TF_VAR_*`"
            }
            EnvClass::Network => {
                "it changes where the run connects or which certificates it trusts, which only \
                 the server's operator may configure"
            }
            EnvClass::Loader => {
                "it changes how programs are loaded or started inside the run; `env` is for \
                 values the configuration reads, such as `TF_VAR_*`"
            }
        }
    }
}

/// Whether a project's `env` in the repository configuration may set `name` — an allowlist:
/// `TF_VAR_*` (terraform's input variables) and plain names, except those that steer the
/// engine, the runner, the network path or the loader ([`EnvClass`]). `Some(class)` says why
/// not. Names are compared case-insensitively (`http_proxy` is read by curl and git, and no
/// configuration needs two spellings), except that `TF_VAR_` must be written as terraform reads
/// it. The syntax of the name is checked separately.
pub fn env_name_refusal(name: &str) -> Option<EnvClass> {
    if name.starts_with("TF_VAR_") && name.len() > "TF_VAR_".len() {
        return None;
    }
    let upper = name.to_ascii_uppercase();
    if upper.starts_with("TF_") {
        return Some(EnvClass::Engine);
    }
    REFUSED_ENV
        .iter()
        .find(|(n, _)| *n == upper)
        .or_else(|| {
            REFUSED_ENV_PREFIXES
                .iter()
                .find(|(p, _)| upper.starts_with(p))
        })
        .map(|(_, class)| *class)
}

pub use super::yaml::{Located, Pos};

/// Which dialect a config file is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ConfigFormat {
    /// `sluice.yaml` / `sluice.yml`, version 1.
    Sluice,
    /// `atlantis.yaml` / `atlantis.yml`, version 3.
    Atlantis,
}

impl ConfigFormat {
    /// The format of a config file, judged by its name (the last path component).
    pub fn for_file(path: &str) -> Option<Self> {
        match path.rsplit('/').next().unwrap_or(path) {
            "sluice.yaml" | "sluice.yml" => Some(ConfigFormat::Sluice),
            "atlantis.yaml" | "atlantis.yml" => Some(ConfigFormat::Atlantis),
            _ => None,
        }
    }
}

/// A validated repository configuration. Only ever handed out when the file had no errors:
/// a config with errors is never half-used (fail closed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoConfig {
    /// The file it was read from (for diagnostics raised later, e.g. a glob matching nothing).
    pub file: String,
    pub format: ConfigFormat,
    /// The listed projects, in file order. `None` when the file lists none: Sluice then detects
    /// projects itself (PRODUCT.md §5) and only the top-level settings below apply.
    pub projects: Option<Vec<ProjectConfig>>,
    /// Top-level `autoplan.enabled`: the default for listed projects, and the setting for
    /// detected ones.
    pub autoplan: bool,
    /// `plan_drafts`: autoplan draft PRs too. Read by the PR intake (`app`), not by detection.
    pub plan_drafts: bool,
    /// Inline policies (`policies:`, same entries as a `policies/*.yaml` file). Like every
    /// requirement, the caller must take them from the **base** branch's file. Combine them with
    /// the policy files through [`super::policy::load_policies`]. Always empty for atlantis.yaml.
    pub policies: Vec<Policy>,
    /// The file's version (`1` for sluice.yaml; `2` or `3` for atlantis.yaml).
    pub version: u32,
    /// Workflows the file defines (`workflows:`), in file order. Whether the repository may
    /// define them, and which one each project runs, is `server_rules::effective_config`'s call.
    pub workflows: Vec<Workflow>,
    /// Rego policy sets (`policy_sets:` in sluice.yaml, `policies.policy_sets` in
    /// atlantis.yaml); `path`s are relative to the repository root. Like `policies`, take them
    /// from the base branch.
    pub policy_sets: Vec<PolicySetConfig>,
    /// Repository-level keys the server's rules govern (`allowed_overrides`), where written.
    pub keys_set: BTreeMap<OverrideKey, Pos>,
    /// Top-level `drift: { enabled, schedule }`: the default for every project (a project's
    /// own `drift:` replaces it). Read by the drift scheduler from the default branch.
    pub drift: DriftSettings,
    /// `review_comments`: which planned changes get line comments in the PR review
    /// (`destroy_and_replace`, the default; `all_changes`; `off`). Read from the base branch.
    pub review_comments: ReviewComments,
    /// Top-level `apply_mode`: the default for every project (see [`super::delivery`]). Like
    /// every requirement, read from the base branch.
    pub apply_mode: ApplyMode,
    /// `merge_plan_check`: what happens when the merge commit's plan differs from the reviewed
    /// one (`strict` refuses, `replan` re-checks policies).
    pub merge_plan_check: MergePlanCheck,
    /// `automerge`: merge the pull request once Sluice has applied every project of it (`None`:
    /// off, the default). Read from the base branch.
    pub automerge: Option<MergeMethod>,
    /// The entries [`RepoConfig::for_base_branch`] left out because their Atlantis `branch`
    /// does not match the base branch (empty in a config as parsed).
    pub left_out_by_branch: Vec<ProjectConfig>,
}

/// How a pull request is merged: GitHub's `merge_method` of "Merge a pull request"
/// (`PUT /repos/{owner}/{repo}/pulls/{n}/merge`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MergeMethod {
    /// A merge commit (GitHub's default, and what Atlantis's `automerge: true` does).
    #[default]
    Merge,
    Squash,
    Rebase,
}

impl MergeMethod {
    pub const ALL: [MergeMethod; 3] =
        [MergeMethod::Merge, MergeMethod::Squash, MergeMethod::Rebase];

    /// GitHub's spelling (`merge`, `squash`, `rebase`), also the `sluice.yaml` one.
    pub fn as_str(self) -> &'static str {
        match self {
            MergeMethod::Merge => "merge",
            MergeMethod::Squash => "squash",
            MergeMethod::Rebase => "rebase",
        }
    }

    pub fn parse(s: &str) -> Option<MergeMethod> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// A project's `dir`: one directory, or a glob expanded against the directories that hold
/// `.tf`/`.tofu` files at the PR's head ([`super::projects`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirSpec {
    Exact(ProjectDir),
    /// Normalised (no leading `./`, no trailing `/`); `*` does not cross `/`, `**` does.
    Glob(String),
}

impl DirSpec {
    pub fn as_str(&self) -> &str {
        match self {
            DirSpec::Exact(d) => d.as_str(),
            DirSpec::Glob(g) => g,
        }
    }
}

/// One entry of `projects`, with defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectConfig {
    /// Where the entry starts (its `-`), for diagnostics about the whole entry.
    pub pos: Pos,
    /// The explicit name; `None` means derived from dir and workspace ([`ProjectName::derived`]).
    /// Entries with a glob dir cannot have one (they expand to several projects).
    pub name: Option<Located<ProjectName>>,
    pub dir: Located<DirSpec>,
    pub workspace: Workspace,
    /// `engine` (`terraform_distribution` in atlantis.yaml), where it is written. `None` when
    /// the entry does not pin one: the engine then follows the project's files
    /// ([`super::projects`]): OpenTofu when its configuration holds files only OpenTofu reads
    /// (`.tofu`, `.tofu.json` without a `.tf`/`.tf.json` twin), terraform otherwise.
    pub engine: Option<Located<Engine>>,
    /// Exact version without a leading `v`. `None`: resolved later from `required_version`.
    pub terraform_version: Option<String>,
    /// Whether a PR that touches the project plans it automatically.
    pub autoplan: bool,
    /// Globs relative to the project dir (`..` allowed while it stays inside the repo); a
    /// leading `!` excludes, and the last matching pattern wins. Always resolved: the project's
    /// own list, else the top-level one, else the format's default.
    pub when_modified: Vec<Located<String>>,
    pub apply_requirements: Vec<ApplyRequirement>,
    pub depends_on: Vec<Located<ProjectName>>,
    /// Plain, non-secret variables passed to the run: `TF_VAR_*` and plain names, never one that
    /// steers the engine, runner, network or loader ([`env_name_refusal`]).
    pub env: BTreeMap<String, String>,
    /// The workflow the project names (`None`: the server's choice, `default` unless set).
    pub workflow: Option<Located<String>>,
    /// Atlantis `branch`: the project exists only on PRs whose base branch matches
    /// ([`RepoConfig::for_base_branch`]).
    pub branch: Option<SlashRegex>,
    /// Requirements before `plan` (Atlantis `plan_requirements`; values as `apply_requirements`).
    pub plan_requirements: Option<Vec<ApplyRequirement>>,
    /// Requirements before `import` and `state rm` (`None`: the apply requirements).
    pub import_requirements: Option<Vec<ApplyRequirement>>,
    /// Atlantis `policy_check: false` turns policy checks off for the project (when the server
    /// allows the override).
    pub policy_check: Option<bool>,
    /// Atlantis `execution_order_group`: groups run in ascending order (default 0), see
    /// [`RepoConfig::execution_groups`].
    pub execution_order_group: i64,
    /// Keys the server's rules govern (`allowed_overrides`), where written.
    pub keys_set: BTreeMap<OverrideKey, Pos>,
    /// `drift: { enabled, schedule }`, or the top-level one.
    pub drift: DriftSettings,
    /// The project's own `apply_mode` (`None`: the top-level one). Use
    /// [`super::delivery::mode_of`] on the base branch's config.
    pub apply_mode: Option<ApplyMode>,
}

impl ProjectConfig {
    /// The name this entry will have, when it can be known from the file alone (not for a glob
    /// dir without a name: those get one name per matching dir).
    pub fn known_name(&self) -> Option<ProjectName> {
        match (&self.name, &self.dir.value) {
            (Some(n), _) => Some(n.value.clone()),
            (None, DirSpec::Exact(d)) => Some(ProjectName::derived(d, &self.workspace)),
            (None, DirSpec::Glob(_)) => None,
        }
    }
}

/// Picks the config file to read among those that exist at the repository root, following
/// [`CONFIG_FILE_NAMES`], and warns about every other one (it is ignored, and someone editing it
/// would wonder why nothing changes). `None` when there is no config file.
pub fn choose_config_file<S: AsRef<str>>(
    existing: &[S],
) -> (Option<&'static str>, Vec<Diagnostic>) {
    let present: Vec<&'static str> = CONFIG_FILE_NAMES
        .into_iter()
        .filter(|name| existing.iter().any(|e| e.as_ref() == *name))
        .collect();
    let Some((&chosen, others)) = present.split_first() else {
        return (None, Vec::new());
    };
    let diags = others
        .iter()
        .map(|&other| {
            let hint = if ConfigFormat::for_file(chosen) != ConfigFormat::for_file(other) {
                format!(
                    "Sluice reads only one config file; delete `{other}` once the migration to \
                     `{chosen}` is done, so nobody edits a file that has no effect"
                )
            } else {
                format!("keep only one of `{chosen}` and `{other}`")
            };
            Diagnostic::warning(
                other,
                0,
                0,
                format!("`{other}` is ignored: `{chosen}` takes precedence"),
            )
            .with_hint(hint)
        })
        .collect();
    (Some(chosen), diags)
}

/// Parses a config file with the parser its name calls for ([`ConfigFormat::for_file`]);
/// unknown names are read as `sluice.yaml`.
pub fn parse_config(file: &str, text: &str) -> (Option<RepoConfig>, Vec<Diagnostic>) {
    match ConfigFormat::for_file(file) {
        Some(ConfigFormat::Atlantis) => parse_atlantis_config(file, text),
        _ => parse_repo_config(file, text),
    }
}

/// Parses and validates `sluice.yaml`. Returns the config only when there is no error
/// (warnings allowed), and every diagnostic found.
pub fn parse_repo_config(file: &str, text: &str) -> (Option<RepoConfig>, Vec<Diagnostic>) {
    parse(file, text, ConfigFormat::Sluice)
}

/// Parses an `atlantis.yaml` (version 3, or 2) into the same model, accepting what Atlantis'
/// own parser accepts and refusing what it refuses, with positions (PRODUCT.md §19).
///
/// Read as Atlantis reads it: anchors, aliases and merge keys; a flow list closed at its key's
/// indentation; `version: 2` (its `run` commands shell-split and re-joined); a `dir` with a
/// leading `/` (read from the root, with a warning); a `when_modified` pattern that climbs above
/// the repository (dropped with a warning: it never matches); `workflows` and a project's
/// `workflow`, `branch`, `plan_requirements`, `import_requirements`, `policy_check`,
/// `execution_order_group` and the `policies` block (Rego policy sets). Refused as Atlantis
/// refuses: a project without `dir`, duplicate keys, an unknown step (`- init -upgrade`),
/// unnamed projects sharing dir and workspace. Keys Sluice does not act on (`parallel_*`, …)
/// are warnings. Without `apply_requirements`, Sluice still requires an
/// approval (its default, PRODUCT.md §10), stricter than Atlantis' server-side default.
///
/// Parsing is not running: the server's repo rules apply through
/// [`super::server_rules::effective_config`], and `branch` through
/// [`RepoConfig::for_base_branch`].
pub fn parse_atlantis_config(file: &str, text: &str) -> (Option<RepoConfig>, Vec<Diagnostic>) {
    parse(file, text, ConfigFormat::Atlantis)
}

/// Anchors a `when_modified` pattern (relative to `dir`, a normalised repo path or `.`) at the
/// repository root, resolving `..` lexically: `../../modules/**` from `envs/prod` becomes
/// `modules/**`. Errors (a sentence for the user) when the pattern leaves the repository, is
/// absolute, or puts `..` after a wildcard (whose parent is not one directory).
pub fn anchor_pattern(dir: &str, pattern: &str) -> Result<String, String> {
    if pattern.starts_with('/') {
        return Err(format!(
            "pattern `{pattern}` is absolute; patterns are relative to the project dir"
        ));
    }
    let mut out: Vec<&str> = if dir == "." || dir.is_empty() {
        Vec::new()
    } else {
        dir.split('/').collect()
    };
    for seg in pattern.split('/') {
        match seg {
            "" | "." => {}
            ".." => match out.last() {
                None => {
                    return Err(format!(
                        "pattern `{pattern}` leaves the repository when read from `{dir}`"
                    ));
                }
                Some(last) if is_glob(last) => {
                    return Err(format!(
                        "pattern `{pattern}` has `..` after a wildcard, which does not name one directory"
                    ));
                }
                Some(_) => {
                    out.pop();
                }
            },
            other => out.push(other),
        }
    }
    if out.is_empty() {
        // The pattern names the repository root itself: everything below it.
        return Ok("**".to_string());
    }
    Ok(out.join("/"))
}

// ---------------------------------------------------------------------------------------------
// Reading YAML nodes, collecting diagnostics instead of stopping at the first problem.

const SLUICE_TOP_KEYS: &[(&str, Key)] = &[
    ("version", Known),
    ("projects", Known),
    ("autoplan", Known),
    ("plan_drafts", Known),
    ("automerge", Known),
    ("policies", Known),
    ("workflows", Known),
    ("policy_sets", Known),
    ("drift", Known),
    ("review_comments", Known),
    ("apply_mode", Known),
    ("merge_plan_check", Known),
];

const SLUICE_PROJECT_KEYS: &[(&str, Key)] = &[
    ("name", Known),
    ("dir", Known),
    ("workspace", Known),
    ("terraform_version", Known),
    ("engine", Known),
    ("autoplan", Known),
    ("apply_requirements", Known),
    ("depends_on", Known),
    ("env", Known),
    ("workflow", Known),
    ("drift", Known),
    ("apply_mode", Known),
];

const DRIFT_KEYS: &[(&str, Key)] = &[("enabled", Known), ("schedule", Known)];

const AUTOPLAN_KEYS: &[(&str, Key)] = &[("enabled", Known), ("when_modified", Known)];

const WHY_ORDER: &str = "Sluice runs each project as its own job, ordered by `depends_on`";

const ATLANTIS_TOP_KEYS: &[(&str, Key)] = &[
    ("version", Known),
    ("projects", Known),
    ("automerge", Known),
    ("autodiscover", Known),
    ("workflows", Known),
    ("policies", Known),
    (
        "emoji_reaction",
        Ignored("Sluice does not react to comments with emoji"),
    ),
    (
        "repo_locks",
        Ignored("Sluice always locks each project dir and workspace"),
    ),
    (
        "silence_pr_comments",
        Ignored("Sluice always reports on the PR"),
    ),
    ("parallel_plan", Ignored(WHY_ORDER)),
    ("parallel_apply", Ignored(WHY_ORDER)),
    ("parallel_policy_check", Ignored(WHY_ORDER)),
    ("abort_on_execution_order_fail", Ignored(WHY_ORDER)),
    (
        "delete_source_branch_on_merge",
        Ignored("Sluice does not delete branches"),
    ),
    (
        "allowed_regexp_prefixes",
        Ignored("Sluice's `-p` takes exact project names"),
    ),
];

const ATLANTIS_PROJECT_KEYS: &[(&str, Key)] = &[
    ("name", Known),
    ("dir", Known),
    ("workspace", Known),
    ("terraform_version", Known),
    ("terraform_distribution", Known),
    ("autoplan", Known),
    ("apply_requirements", Known),
    ("depends_on", Known),
    ("workflow", Known),
    ("branch", Known),
    ("plan_requirements", Known),
    ("import_requirements", Known),
    ("policy_check", Known),
    ("custom_policy_check", Known),
    ("execution_order_group", Known),
    (
        "delete_source_branch_on_merge",
        Ignored("Sluice does not delete branches"),
    ),
    (
        "repo_locking",
        Ignored("Sluice always locks each project dir and workspace"),
    ),
    (
        "repo_locks",
        Ignored("Sluice always locks each project dir and workspace"),
    ),
    (
        "silence_pr_comments",
        Ignored("Sluice always reports on the PR"),
    ),
];

/// The YAML reader plus which dialect is being read (some messages and checks depend on it).
struct Reader<'f> {
    y: yaml::Reader<'f>,
    format: ConfigFormat,
}

// The generic node readers (`string`, `mapping`, `check_keys`, …) live in `core::yaml`; reading
// through the wrapper keeps every call site here unchanged.
impl<'f> std::ops::Deref for Reader<'f> {
    type Target = yaml::Reader<'f>;
    fn deref(&self) -> &Self::Target {
        &self.y
    }
}

impl std::ops::DerefMut for Reader<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.y
    }
}

impl Reader<'_> {
    /// `when_modified` patterns: non-empty, relative, and valid glob syntax.
    fn patterns(&mut self, node: &Node) -> Option<Vec<Located<String>>> {
        let mut list = self.string_list(node, "when_modified")?;
        if self.format == ConfigFormat::Atlantis {
            atlantis_patterns(self, &mut list);
        }
        for p in &list {
            let body = p.value.strip_prefix('!').unwrap_or(&p.value);
            let problem = if body.is_empty() {
                Some(("an empty pattern matches nothing".to_string(), None))
            } else if body.starts_with('/') {
                Some((
                    format!("when_modified pattern `{}` is absolute", p.value),
                    Some(format!(
                        "patterns are relative to the project dir; to reach other parts of the \
                         repository use `../`, e.g. `../../modules/**/*.tf` (not `{body}`)"
                    )),
                ))
            } else {
                build_glob(body).err().map(|e| (e, None))
            };
            if let Some((msg, hint)) = problem {
                self.error(p.pos, msg, hint);
            }
        }
        // Returned even with errors (the entry is dropped anyway), so the `..` checks below
        // still run on the other patterns and everything is reported at once.
        Some(list)
    }

    fn version(&mut self, map: &MarkedMappingNode, supported: &[u32]) -> VersionCheck {
        let supported_list = supported
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let Some(node) = map.get_node("version") else {
            self.error(
                Pos { line: 1, column: 1 },
                "missing `version`",
                Some(format!(
                    "add `version: {}` at the top of the file",
                    supported[0]
                )),
            );
            return VersionCheck::Missing;
        };
        let Some(v) = self.string(node, "version") else {
            return VersionCheck::Unsupported;
        };
        if supported.iter().any(|s| s.to_string() == v.value) {
            return VersionCheck::Supported;
        }
        let (msg, hint) = match self.format {
            ConfigFormat::Sluice => (
                format!(
                    "unsupported version `{}`; this Sluice reads version {supported_list}",
                    v.value
                ),
                "if the file was written for a newer Sluice, upgrade the server".to_string(),
            ),
            ConfigFormat::Atlantis => (
                format!(
                    "atlantis.yaml version `{}` is not supported; Sluice reads version {supported_list}",
                    v.value
                ),
                "upgrade the file to Atlantis' version 3 format, or write a sluice.yaml"
                    .to_string(),
            ),
        };
        self.error(v.pos, msg, Some(hint));
        VersionCheck::Unsupported
    }
}

#[derive(PartialEq)]
enum VersionCheck {
    Supported,
    Missing,
    Unsupported,
}

/// Top-level defaults a project entry inherits.
struct Defaults {
    autoplan: bool,
    drift: DriftSettings,
    when_modified: Vec<Located<String>>,
    /// Whether `when_modified` came from the file (else from the format's built-in default).
    when_modified_from_file: bool,
}

fn parse(file: &str, text: &str, format: ConfigFormat) -> (Option<RepoConfig>, Vec<Diagnostic>) {
    let first_key = match format {
        ConfigFormat::Sluice => "version: 1",
        ConfigFormat::Atlantis => "version: 3",
    };
    let mut r = Reader {
        y: yaml::Reader::new(file, format!("start with `{first_key}`, then `projects:`")),
        format,
    };
    // Atlantis' YAML library expands anchors and merge keys; so does Sluice for its files.
    let anchors = match format {
        ConfigFormat::Sluice => Anchors::Refuse,
        ConfigFormat::Atlantis => Anchors::Expand,
    };
    let Some(root) = r.load_with(text, anchors) else {
        return (None, r.y.diags);
    };
    let Some(map) = root.as_mapping() else {
        // The loader only returns mappings at the top level; stay defensive.
        r.error(
            Pos::default(),
            "the file must be a mapping of keys to values",
            None,
        );
        return (None, r.y.diags);
    };
    if map.is_empty() {
        let version = match format {
            ConfigFormat::Sluice => "version: 1",
            ConfigFormat::Atlantis => "version: 3",
        };
        r.error(
            Pos { line: 1, column: 1 },
            format!("`{file}` is empty (or only comments)"),
            Some(format!(
                "start it with `{version}` and a `projects:` list, or delete it to let Sluice \
                 detect projects itself"
            )),
        );
        return (None, r.y.diags);
    }
    let config = match format {
        ConfigFormat::Sluice => sluice_top(&mut r, map),
        ConfigFormat::Atlantis => atlantis_top(&mut r, map),
    };
    if let Some(config) = &config {
        if let Some(projects) = &config.projects {
            check_names_and_dependencies(&mut r, projects);
        }
    }
    let mut config = config;
    if let Some(config) = &mut config {
        if format == ConfigFormat::Atlantis {
            atlantis_name_rules(&mut r, config);
            drop_unknown_dependencies(config);
        }
    }
    let config = if has_errors(&r.diags) { None } else { config };
    // Checks run key by key; users read the file top to bottom. A value shared through an
    // anchor is checked once per use: report it once.
    r.diags.sort_by_key(|d| (d.line, d.column));
    r.y.diags.dedup();
    (config, r.y.diags)
}

fn sluice_top(r: &mut Reader, map: &MarkedMappingNode) -> Option<RepoConfig> {
    // A version we do not know means a schema we do not know: stop here instead of burying the
    // one useful message under unknown-key errors.
    if r.version(map, SUPPORTED_VERSIONS) == VersionCheck::Unsupported {
        return None;
    }
    r.check_keys(map, "at the top level", SLUICE_TOP_KEYS);

    let mut defaults = Defaults {
        autoplan: true,
        drift: DriftSettings::default(),
        when_modified: Vec::new(),
        when_modified_from_file: false,
    };
    if let Some(node) = map.get_node("drift") {
        defaults.drift = drift(r, node, &DriftSettings::default());
    }
    let mut top_when_modified_pos = None;
    if let Some(node) = map.get_node("autoplan") {
        let (enabled, when_modified) = autoplan(r, node);
        defaults.autoplan = enabled.unwrap_or(true);
        if let Some(wm) = when_modified {
            top_when_modified_pos = Some(pos(node));
            defaults.when_modified = wm;
            defaults.when_modified_from_file = true;
        }
    }
    let plan_drafts = map
        .get_node("plan_drafts")
        .and_then(|n| r.boolean(n, "plan_drafts"))
        .unwrap_or(false);
    let automerge = map.get_node("automerge").and_then(|n| automerge(r, n));
    let review_comments = review_comments(r, map);
    let top_apply_mode = map.get_node("apply_mode").and_then(|n| apply_mode(r, n));
    let merge_plan_check = map
        .get_node("merge_plan_check")
        .and_then(|n| merge_plan_check(r, n))
        .unwrap_or_default();
    let projects = projects(r, map, &defaults);
    if let (None, Some(at)) = (&projects, top_when_modified_pos) {
        r.warning(
            at,
            "top-level `when_modified` has no effect without `projects`",
            Some(
                "without a `projects` list Sluice detects projects itself and maps each changed \
                 file to the nearest project dir"
                    .to_string(),
            ),
        );
    }
    let policies = map
        .get_node("policies")
        .map(|n| policy::policies_node(&mut r.y, n))
        .unwrap_or_default();
    let workflows = repo_workflows(r, map, RunSyntax::Verbatim);
    let policy_sets = map
        .get_node("policy_sets")
        .map(|n| policy_sets_node(&mut r.y, n, SetOrigin::Repo))
        .unwrap_or_default();
    Some(RepoConfig {
        file: r.file.to_string(),
        format: ConfigFormat::Sluice,
        projects,
        autoplan: defaults.autoplan,
        plan_drafts,
        policies,
        version: 1,
        workflows,
        policy_sets,
        keys_set: BTreeMap::new(),
        drift: defaults.drift,
        review_comments,
        apply_mode: top_apply_mode.unwrap_or_default(),
        merge_plan_check,
        automerge,
        left_out_by_branch: Vec::new(),
    })
}

/// `review_comments` in `sluice.yaml`; an unknown value is an error at its position.
fn review_comments(r: &mut Reader, map: &MarkedMappingNode) -> ReviewComments {
    let Some(v) = map
        .get_node("review_comments")
        .and_then(|n| r.string(n, "review_comments"))
    else {
        return ReviewComments::default();
    };
    match v.value.as_str() {
        "destroy_and_replace" => ReviewComments::DestroyAndReplace,
        "all_changes" => ReviewComments::AllChanges,
        "off" => ReviewComments::Off,
        other => {
            r.error(
                v.pos,
                format!("unknown review_comments `{other}`"),
                Some(
                    "valid values: destroy_and_replace (the default), all_changes, off".to_string(),
                ),
            );
            ReviewComments::default()
        }
    }
}

const AUTOMERGE_KEYS: &[(&str, Key)] = &[("enabled", Known), ("method", Known)];

/// `automerge`: `false` (the default), `true` (method `merge`, as Atlantis), or
/// `{ enabled: true, method: merge | squash | rebase }` (`enabled` defaults to true when the
/// mapping is written). An unknown method is an error at its position.
fn automerge(r: &mut Reader, node: &Node) -> Option<MergeMethod> {
    if let Node::Scalar(v) = node {
        if let Some(m) = MergeMethod::parse(v.as_str()) {
            r.error(
                pos(node),
                format!("`automerge: {}` is not a setting", m.as_str()),
                Some(format!(
                    "write `automerge: {{ enabled: true, method: {} }}`",
                    m.as_str()
                )),
            );
            return None;
        }
        return r
            .boolean(node, "automerge")
            .and_then(|on| on.then_some(MergeMethod::Merge));
    }
    let map = r.mapping(node, "`automerge`")?;
    r.check_keys(map, "in `automerge`", AUTOMERGE_KEYS);
    let enabled = map
        .get_node("enabled")
        .and_then(|n| r.boolean(n, "enabled"))
        .unwrap_or(true);
    let method = match map.get_node("method").and_then(|n| r.string(n, "method")) {
        None => Some(MergeMethod::default()),
        Some(v) => {
            let m = MergeMethod::parse(&v.value);
            if m.is_none() {
                r.error(
                    v.pos,
                    format!("unknown automerge method `{}`", v.value),
                    Some(
                        "valid values: merge (a merge commit, the default), squash, rebase — \
                         the ones the repository allows in its GitHub settings"
                            .to_string(),
                    ),
                );
            }
            m
        }
    };
    method.filter(|_| enabled)
}

/// `apply_mode: comment | on_merge | comment_or_merge`.
fn apply_mode(r: &mut Reader, node: &Node) -> Option<ApplyMode> {
    let v = r.string(node, "apply_mode")?;
    let mode = ApplyMode::parse(&v.value);
    if mode.is_none() {
        r.error(
            v.pos,
            format!("unknown apply_mode `{}`", v.value),
            Some(
                "valid values: comment (apply by comment before merge), on_merge (apply the \
                 merge commit after merge), comment_or_merge"
                    .to_string(),
            ),
        );
    }
    mode
}

/// `merge_plan_check: strict | replan`.
fn merge_plan_check(r: &mut Reader, node: &Node) -> Option<MergePlanCheck> {
    let v = r.string(node, "merge_plan_check")?;
    let check = MergePlanCheck::parse(&v.value);
    if check.is_none() {
        r.error(
            v.pos,
            format!("unknown merge_plan_check `{}`", v.value),
            Some(
                "valid values: strict (a merge commit whose plan differs from the reviewed one \
                 is not applied), replan (it is applied if the policies still pass)"
                    .to_string(),
            ),
        );
    }
    check
}

fn atlantis_top(r: &mut Reader, map: &MarkedMappingNode) -> Option<RepoConfig> {
    if r.version(map, ATLANTIS_VERSIONS) == VersionCheck::Unsupported {
        return None;
    }
    r.check_keys(map, "at the top level of atlantis.yaml", ATLANTIS_TOP_KEYS);

    let version: u32 = map
        .get_node("version")
        .and_then(|n| n.as_scalar())
        .and_then(|v| v.as_str().parse().ok())
        .unwrap_or(3);
    let syntax = if version == 2 {
        RunSyntax::LegacyShellSplit
    } else {
        RunSyntax::Verbatim
    };
    let workflows = repo_workflows(r, map, syntax);
    let policy_sets = map
        .get_node("policies")
        .map(|n| policies_block_node(&mut r.y, n, SetOrigin::Repo))
        .unwrap_or_default();
    let mut keys_set = BTreeMap::new();
    for key in [
        OverrideKey::DeleteSourceBranchOnMerge,
        OverrideKey::RepoLocks,
        OverrideKey::SilencePrComments,
    ] {
        if let Some(k) = map.keys().find(|k| k.as_str() == key.key()) {
            keys_set.insert(key, pos_of_span(k.span()));
        }
    }
    let defaults = Defaults {
        autoplan: true,
        drift: DriftSettings::default(),
        when_modified: Vec::new(),
        when_modified_from_file: false,
    };
    let projects = projects(r, map, &defaults);
    if let Some(node) = map.get_node("autodiscover") {
        autodiscover(r, node, projects.is_some());
    }
    Some(RepoConfig {
        file: r.file.to_string(),
        format: ConfigFormat::Atlantis,
        projects,
        autoplan: true,
        plan_drafts: false,
        policies: Vec::new(),
        version,
        workflows,
        policy_sets,
        keys_set,
        drift: DriftSettings::default(),
        review_comments: ReviewComments::default(),
        apply_mode: ApplyMode::default(),
        merge_plan_check: MergePlanCheck::default(),
        automerge: map
            .get_node("automerge")
            .and_then(|n| r.boolean(n, "automerge"))
            .and_then(|on| on.then_some(MergeMethod::Merge)),
        left_out_by_branch: Vec::new(),
    })
}

/// Atlantis `autodiscover: {mode, ignore_paths}`. Sluice's behaviour equals Atlantis' `auto`:
/// listed projects when there are some, detection otherwise.
fn autodiscover(r: &mut Reader, node: &Node, has_projects: bool) {
    let Some(map) = r.mapping(node, "`autodiscover`") else {
        return;
    };
    r.check_keys(
        map,
        "in `autodiscover`",
        &[
            ("mode", Known),
            (
                "ignore_paths",
                Unsupported(
                    "ignoring it would plan directories your team excluded; list the projects \
                     explicitly instead",
                ),
            ),
        ],
    );
    let Some(mode) = map.get_node("mode").and_then(|n| r.string(n, "mode")) else {
        return;
    };
    match (mode.value.as_str(), has_projects) {
        ("auto", _) | ("disabled", true) => {}
        ("enabled", true) => r.error(
            mode.pos,
            "`autodiscover: {mode: enabled}` together with `projects` is not supported",
            Some(
                "Atlantis would also plan directories that are not listed; Sluice plans either the \
                 listed projects or, without a `projects` list, the ones it detects. List every \
                 project, or remove `projects`"
                    .to_string(),
            ),
        ),
        ("enabled", false) => {}
        ("disabled", false) => r.error(
            mode.pos,
            "`autodiscover: {mode: disabled}` without `projects` is not supported",
            Some(
                "Atlantis would plan nothing, Sluice would detect projects itself; list the \
                 projects to plan"
                    .to_string(),
            ),
        ),
        (other, _) => r.error(
            mode.pos,
            format!("unknown autodiscover mode `{other}`"),
            Some("valid modes: auto, enabled, disabled".to_string()),
        ),
    }
}

/// `autoplan: {enabled, when_modified}` (project level or top level).
fn autoplan(r: &mut Reader, node: &Node) -> (Option<bool>, Option<Vec<Located<String>>>) {
    let Some(map) = r.mapping(node, "`autoplan`") else {
        return (None, None);
    };
    r.check_keys(map, "in `autoplan`", AUTOPLAN_KEYS);
    let enabled = map
        .get_node("enabled")
        .and_then(|n| r.boolean(n, "enabled"));
    let when_modified = map.get_node("when_modified").and_then(|n| r.patterns(n));
    (enabled, when_modified)
}

fn projects(
    r: &mut Reader,
    map: &MarkedMappingNode,
    defaults: &Defaults,
) -> Option<Vec<ProjectConfig>> {
    let node = map.get_node("projects")?;
    if let Node::Scalar(s) = node {
        if is_null(s) {
            r.warning(
                pos(node),
                "`projects` is empty; Sluice detects projects itself",
                Some("remove `projects:`, or list at least one project".to_string()),
            );
            return None;
        }
    }
    let seq = r.sequence(node, "projects")?;
    if !r.at_most(seq, "projects", MAX_PROJECTS) {
        return None;
    }
    if seq.is_empty() {
        r.warning(
            pos(node),
            "`projects` is empty; Sluice detects projects itself",
            Some("remove `projects: []`, or list at least one project".to_string()),
        );
        return None;
    }
    Some(
        seq.iter()
            .filter_map(|entry| project(r, entry, defaults))
            .collect(),
    )
}

fn project(r: &mut Reader, node: &Node, defaults: &Defaults) -> Option<ProjectConfig> {
    let map = r.mapping(node, "each entry of `projects`")?;
    // A block mapping's own marker sits after its first key; the first key is where a reader
    // sees the entry start.
    let entry_pos = map
        .keys()
        .next()
        .map_or_else(|| pos(node), |k| pos_of_span(k.span()));
    let atlantis = r.format == ConfigFormat::Atlantis;
    let rules = if atlantis {
        ATLANTIS_PROJECT_KEYS
    } else {
        SLUICE_PROJECT_KEYS
    };
    r.check_keys(map, "in project", rules);
    let errors_before = r.diags.iter().filter(|d| d.is_error()).count();

    let name = project_name(r, map);
    let dir = match map.get_node("dir") {
        Some(n) => r
            .string(n, "dir")
            .and_then(|d| {
                if atlantis {
                    atlantis_dir(r, d)
                } else {
                    Some(d)
                }
            })
            .and_then(|d| dir_spec(r, d, name.as_ref().map(|n| &n.value))),
        None => {
            r.error(
                entry_pos,
                "project has no `dir`",
                Some("add `dir: path/to/project`, relative to the repository root (`.` for the root)".to_string()),
            );
            None
        }
    };
    let workspace = project_workspace(r, map);
    glob_dir_with_name(r, name.as_ref(), dir.as_ref());
    let engine = project_engine(r, map, atlantis);
    let terraform_version = terraform_version(r, map);
    let (autoplan_enabled, when_modified) = match map.get_node("autoplan") {
        Some(n) => autoplan(r, n),
        None => (None, None),
    };
    let when_modified = project_when_modified(
        r,
        when_modified,
        defaults,
        entry_pos,
        atlantis,
        dir.as_ref(),
    );
    let apply_requirements = match map.get_node("apply_requirements") {
        None => vec![ApplyRequirement::Approved],
        Some(n) => apply_requirements(r, n),
    };
    let depends_on = depends_on(r, map);
    let env = if atlantis {
        BTreeMap::new()
    } else {
        map.get_node("env").map(|n| env(r, n)).unwrap_or_default()
    };
    let extras = project_extras(r, map, atlantis);

    let drift = match map.get_node("drift") {
        Some(n) if !atlantis => drift(r, n, &defaults.drift),
        _ => defaults.drift.clone(),
    };
    let errors_after = r.diags.iter().filter(|d| d.is_error()).count();
    if errors_after > errors_before {
        return None;
    }
    Some(ProjectConfig {
        pos: entry_pos,
        name,
        dir: dir?,
        workspace: workspace?,
        engine,
        terraform_version,
        autoplan: autoplan_enabled.unwrap_or(defaults.autoplan),
        when_modified,
        apply_requirements,
        depends_on,
        env,
        workflow: extras.workflow,
        branch: extras.branch,
        plan_requirements: extras.plan_requirements,
        import_requirements: extras.import_requirements,
        policy_check: extras.policy_check,
        execution_order_group: extras.execution_order_group,
        keys_set: extras.keys_set,
        drift,
        apply_mode: match map.get_node("apply_mode") {
            Some(n) if !atlantis => apply_mode(r, n),
            _ => None,
        },
    })
}

/// A project's `name`, when it has a valid one.
fn project_name(r: &mut Reader, map: &MarkedMappingNode) -> Option<Located<ProjectName>> {
    match map.get_node("name").and_then(|n| r.string(n, "name")) {
        None => None,
        Some(n) => match ProjectName::chosen(&n.value) {
            Ok(name) => Some(Located {
                value: name,
                pos: n.pos,
            }),
            Err(e) => {
                r.error(n.pos, e.0, None);
                None
            }
        },
    }
}

/// A project's `workspace` (`default` when absent); `None` when it is invalid.
fn project_workspace(r: &mut Reader, map: &MarkedMappingNode) -> Option<Workspace> {
    match map
        .get_node("workspace")
        .and_then(|n| r.string(n, "workspace"))
    {
        None => Some(Workspace::default()),
        Some(w) => match Workspace::new(&w.value) {
            Ok(ws) => Some(ws),
            Err(e) => {
                r.error(w.pos, e.0, None);
                None
            }
        },
    }
}

/// A glob `dir` makes one project per directory, each named after it: a `name` is an error.
fn glob_dir_with_name(
    r: &mut Reader,
    name: Option<&Located<ProjectName>>,
    dir: Option<&Located<DirSpec>>,
) {
    if let (
        Some(n),
        Some(Located {
            value: DirSpec::Glob(g),
            ..
        }),
    ) = (name, dir)
    {
        r.error(
            n.pos,
            format!(
                "project `{}` has a glob `dir` (`{g}`) and a `name`",
                n.value
            ),
            Some(
                "a glob dir expands to one project per matching directory, each named after its \
                 dir; remove `name`, or list the directories one by one"
                    .to_string(),
            ),
        );
    }
}

/// `engine` (`terraform_distribution` in `atlantis.yaml`); `None` when absent (detection then
/// picks the engine from the project's files).
fn project_engine(
    r: &mut Reader,
    map: &MarkedMappingNode,
    atlantis: bool,
) -> Option<Located<Engine>> {
    let engine_key = if atlantis {
        "terraform_distribution"
    } else {
        "engine"
    };
    match map
        .get_node(engine_key)
        .and_then(|n| r.string(n, engine_key))
    {
        None => None,
        Some(e) => match e.value.as_str() {
            "terraform" => Some(Engine::Terraform),
            "opentofu" | "tofu" => Some(Engine::Opentofu),
            other => {
                r.error(
                    e.pos,
                    format!("unknown {engine_key} `{other}`"),
                    Some(
                        "valid values: terraform, opentofu (or leave it out: projects whose files \
                         only OpenTofu reads run with OpenTofu, the others with terraform)"
                            .to_string(),
                    ),
                );
                None
            }
        }
        .map(|value| Located { value, pos: e.pos }),
    }
}

/// `terraform_version`, an exact version (a leading `v` dropped).
fn terraform_version(r: &mut Reader, map: &MarkedMappingNode) -> Option<String> {
    map.get_node("terraform_version")
        .and_then(|n| r.string(n, "terraform_version"))
        .and_then(|v| {
            let bare = v.value.strip_prefix('v').unwrap_or(&v.value);
            if is_exact_version(bare) {
                Some(bare.to_string())
            } else {
                r.error(
                    v.pos,
                    format!(
                        "`terraform_version` should be an exact version like `1.6.2`, found `{}`",
                        v.value
                    ),
                    Some(
                        "Sluice runs exactly this version; leave it out to use the project's \
                         `required_version`"
                            .to_string(),
                    ),
                );
                None
            }
        })
}

/// `autoplan.when_modified`, else the file's default, else the built-in one; for a fixed dir,
/// patterns that leave the repository through `..` are errors.
fn project_when_modified(
    r: &mut Reader,
    when_modified: Option<Vec<Located<String>>>,
    defaults: &Defaults,
    entry_pos: Pos,
    atlantis: bool,
    dir: Option<&Located<DirSpec>>,
) -> Vec<Located<String>> {
    let when_modified = match when_modified {
        Some(list) => list,
        None if defaults.when_modified_from_file => defaults.when_modified.clone(),
        None => {
            let builtin = if atlantis {
                ATLANTIS_DEFAULT_WHEN_MODIFIED
            } else {
                DEFAULT_WHEN_MODIFIED
            };
            builtin
                .iter()
                .map(|p| Located {
                    value: (*p).to_string(),
                    pos: entry_pos,
                })
                .collect()
        }
    };
    let mut when_modified = when_modified;
    if let Some(Located {
        value: DirSpec::Exact(d),
        ..
    }) = dir
    {
        // For a fixed dir we can already tell whether `..` leaves the repository; for globs
        // that waits until the dirs are known.
        when_modified.retain(|p| {
            let body = p.value.strip_prefix('!').unwrap_or(&p.value);
            if body.is_empty() || body.starts_with('/') || build_glob(body).is_err() {
                return true; // already reported by `patterns`
            }
            match anchor_pattern(d.as_str(), body) {
                Ok(_) => true,
                Err(e) if atlantis && e.contains("leaves the repository") => {
                    // Atlantis accepts such a pattern; it simply never matches.
                    r.warning(
                        p.pos,
                        format!("{e}, so it never matches; Sluice ignores it, as Atlantis does"),
                        Some("remove it, or fix the number of `../`".to_string()),
                    );
                    false
                }
                Err(e) => {
                    r.error(p.pos, e, None);
                    true
                }
            }
        });
    }
    when_modified
}

/// `depends_on`: project names.
fn depends_on(r: &mut Reader, map: &MarkedMappingNode) -> Vec<Located<ProjectName>> {
    match map.get_node("depends_on") {
        None => Vec::new(),
        Some(n) => r
            .string_list(n, "depends_on")
            .unwrap_or_default()
            .into_iter()
            .filter_map(|d| match ProjectName::new(&d.value) {
                Ok(name) => Some(Located {
                    value: name,
                    pos: d.pos,
                }),
                Err(e) => {
                    r.error(d.pos, e.0, None);
                    None
                }
            })
            .collect(),
    }
}

/// `drift: { enabled, schedule }`: unset keys keep `base`'s values. A schedule that does not
/// parse is an error at the offending field of the value.
fn drift(r: &mut Reader, node: &Node, base: &DriftSettings) -> DriftSettings {
    let mut out = base.clone();
    let Some(map) = r.mapping(node, "`drift`") else {
        return out;
    };
    r.check_keys(map, "in `drift`", DRIFT_KEYS);
    if let Some(enabled) = map
        .get_node("enabled")
        .and_then(|n| r.boolean(n, "enabled"))
    {
        out.enabled = enabled;
    }
    if let Some(node) = map.get_node("schedule")
        && let Some(text) = r.string(node, "schedule")
    {
        // A quoted value's span starts at its quote; the error points inside the value.
        let quoted = matches!(node, Node::Scalar(s) if !s.may_coerce());
        match validate_schedule(&text.value) {
            Ok(s) => out.schedule = Some(s),
            Err(e) => {
                let column = text.pos.column + usize::from(quoted);
                let d = e.diagnostic(r.file, text.pos.line, column);
                r.y.diags.push(d);
            }
        }
    }
    out
}

/// `1`, `1.6`, `1.6.2`, optionally with a pre-release suffix (`1.7.0-beta1`).
fn is_exact_version(v: &str) -> bool {
    let (core, pre) = match v.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (v, None),
    };
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() <= 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        && pre.is_none_or(|p| {
            !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '.')
        })
}

/// Validates and normalises a `dir`. Absolute paths are rejected rather than normalised: in a
/// config file a leading `/` is almost certainly a mistake (a path on someone's machine), and
/// quietly reading it from the repository root could plan the wrong directory.
fn dir_spec(
    r: &mut Reader,
    d: Located<String>,
    project: Option<&ProjectName>,
) -> Option<Located<DirSpec>> {
    let raw = d.value.as_str();
    // A named project is named in the error: with many entries, the name is what people search for.
    let whose = project.map_or_else(String::new, |n| format!("project `{n}`: "));
    if raw.starts_with('/') {
        let relative = raw.trim_start_matches('/');
        r.error(
            d.pos,
            format!("{whose}dir `{raw}` is absolute"),
            Some(format!(
                "dirs are relative to the repository root: write `{}`",
                if relative.is_empty() { "." } else { relative }
            )),
        );
        return None;
    }
    if raw.split('/').any(|s| s == "..") {
        r.error(
            d.pos,
            format!("{whose}dir `{raw}` leaves the repository (`..` is not allowed)"),
            Some("dirs are relative to the repository root and must stay inside it".to_string()),
        );
        return None;
    }
    if !is_glob(raw) {
        return match ProjectDir::new(raw) {
            Ok(dir) => Some(Located {
                value: DirSpec::Exact(dir),
                pos: d.pos,
            }),
            Err(e) => {
                r.error(d.pos, e.0, None);
                None
            }
        };
    }
    let normalised = raw
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect::<Vec<_>>()
        .join("/");
    match build_glob(&normalised) {
        Ok(_) => Some(Located {
            value: DirSpec::Glob(normalised),
            pos: d.pos,
        }),
        Err(e) => {
            r.error(d.pos, format!("dir {e}"), None);
            None
        }
    }
}

fn apply_requirements(r: &mut Reader, node: &Node) -> Vec<ApplyRequirement> {
    let mut out: Vec<ApplyRequirement> = Vec::new();
    for item in r
        .string_list(node, "apply_requirements")
        .unwrap_or_default()
    {
        let req = match item.value.as_str() {
            "approved" => ApplyRequirement::Approved,
            "mergeable" => ApplyRequirement::Mergeable,
            "undiverged" => ApplyRequirement::Undiverged,
            other => {
                let valid = ["approved", "mergeable", "undiverged"];
                let hint = match did_you_mean(other, valid) {
                    Some(s) => format!("did you mean `{s}`? valid values: {}", valid.join(", ")),
                    None => format!("valid values: {}", valid.join(", ")),
                };
                r.error(
                    item.pos,
                    format!("unknown apply requirement `{other}`"),
                    Some(hint),
                );
                continue;
            }
        };
        if !out.contains(&req) {
            out.push(req);
        }
    }
    out
}

fn env(r: &mut Reader, node: &Node) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(map) = r.mapping(node, "`env`") else {
        return out;
    };
    for (key, value) in map.iter() {
        let at = pos_of_span(key.span());
        let name = key.as_str();
        let valid_name = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name {
            r.error(
                at,
                format!("`{name}` is not a valid environment variable name"),
                Some("use letters, digits and `_`, not starting with a digit".to_string()),
            );
            continue;
        }
        if let Some(class) = env_name_refusal(name) {
            r.error(
                at,
                format!("`{name}` cannot be set in `env`"),
                Some(class.hint().to_string()),
            );
            continue;
        }
        if let Some(v) = r.string(value, name) {
            out.insert(name.to_string(), v.value);
        }
    }
    out
}

/// Names must be unique; `depends_on` must name projects of this file; no dependency cycles.
fn check_names_and_dependencies(r: &mut Reader, projects: &[ProjectConfig]) {
    let mut seen: BTreeMap<ProjectName, Pos> = BTreeMap::new();
    let mut seen_in: BTreeMap<ProjectName, &ProjectConfig> = BTreeMap::new();
    for p in projects {
        let Some(name) = p.known_name() else {
            continue;
        };
        let at = p.name.as_ref().map_or(p.dir.pos, |n| n.pos);
        match seen.get(&name) {
            // Atlantis `branch`: entries for different base branches never exist together.
            Some(_) if seen_in.get(&name).is_some_and(|q| !branches_overlap(q, p)) => {}
            Some(first) => {
                let hint = if p.name.is_some() {
                    "project names must be unique; rename one of them".to_string()
                } else {
                    format!(
                        "both entries have dir `{}` and workspace `{}`; give each a distinct `name`, \
                         or remove one",
                        p.dir.value.as_str(),
                        p.workspace
                    )
                };
                r.error(
                    at,
                    format!(
                        "project name `{name}` is used twice: at line {} and at line {}",
                        first.line, at.line
                    ),
                    Some(hint),
                );
            }
            None => {
                seen.insert(name.clone(), at);
                seen_in.insert(name, p);
            }
        }
    }

    // A glob dir expands to names we cannot know yet; such references are checked once the
    // globs are expanded (`projects::all_projects`).
    let has_globs = projects
        .iter()
        .any(|p| matches!(p.dir.value, DirSpec::Glob(_)));
    let names: Vec<&str> = seen.keys().map(ProjectName::as_str).collect();
    for p in projects {
        for dep in &p.depends_on {
            if seen.contains_key(&dep.value) || has_globs {
                continue;
            }
            let mut hint = String::new();
            if let Some(s) = did_you_mean(dep.value.as_str(), names.iter().copied()) {
                hint.push_str(&format!("did you mean `{s}`? "));
            }
            hint.push_str(&format!("projects in this file: {}", list_some(&names, 20)));
            let message = format!(
                "`depends_on` names `{}`, which is not a project in this file",
                dep.value
            );
            if r.format == ConfigFormat::Atlantis {
                // Atlantis accepts it (the dependency is simply never met); Sluice drops it.
                r.warning(dep.pos, format!("{message}; it is ignored"), Some(hint));
            } else {
                r.error(dep.pos, message, Some(hint));
            }
        }
    }

    let mut graph: BTreeMap<ProjectName, Vec<ProjectName>> = BTreeMap::new();
    for p in projects {
        if let Some(name) = p.known_name() {
            graph
                .entry(name)
                .or_default()
                .extend(p.depends_on.iter().map(|d| d.value.clone()));
        }
    }
    for cycle in find_cycles(&graph) {
        // Where each edge of the cycle is written: the error points at the first, the hint
        // names them all, so every entry to edit is found.
        let edge_pos = |i: usize| {
            let (from, to) = (&cycle[i], &cycle[(i + 1) % cycle.len()]);
            projects
                .iter()
                .filter(|p| p.known_name().as_ref() == Some(from))
                .flat_map(|p| p.depends_on.iter())
                .find(|d| &d.value == to)
                .map_or(Pos::default(), |d| d.pos)
        };
        let at = edge_pos(0);
        let edges: Vec<String> = (0..cycle.len())
            .map(|i| {
                let p = edge_pos(i);
                format!(
                    "`{}` → `{}` at {}:{}",
                    cycle[i],
                    cycle[(i + 1) % cycle.len()],
                    p.line,
                    p.column
                )
            })
            .collect();
        r.error(
            at,
            format!("dependency cycle: {}", show_cycle(&cycle)),
            Some(format!(
                "`depends_on` sets the order of runs, and a cycle has no valid order; remove one \
                 of these entries: {}",
                edges.join(", ")
            )),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Atlantis compatibility: workflows, server-governed keys, Atlantis' own reading rules. Kept
// apart from the parser above so each can change without touching the other.

/// The file's `workflows:`, defined in this repository.
fn repo_workflows(r: &mut Reader, map: &MarkedMappingNode, syntax: RunSyntax) -> Vec<Workflow> {
    let Some(node) = map.get_node("workflows") else {
        return Vec::new();
    };
    let origin = WorkflowOrigin::Repo {
        file: r.file.to_string(),
    };
    workflows_node(&mut r.y, node, &origin, syntax)
}

/// `when_modified` as Atlantis reads it: surrounding spaces trimmed, and a leading `/` joined to
/// the project dir like any other pattern (with a warning).
fn atlantis_patterns(r: &mut Reader, list: &mut [Located<String>]) {
    for p in list.iter_mut() {
        let trimmed = p.value.trim();
        let (bang, body) = match trimmed.strip_prefix('!') {
            Some(b) => ("!", b),
            None => ("", trimmed),
        };
        let mut value = format!("{bang}{body}");
        if body.starts_with('/') && body.len() > 1 {
            let relative = body.trim_start_matches('/');
            r.warning(
                p.pos,
                format!(
                    "when_modified pattern `{}` starts with `/`; it is read relative to the project                      dir, as Atlantis does",
                    p.value
                ),
                Some(format!("write `{bang}{relative}`")),
            );
            value = format!("{bang}{relative}");
        }
        p.value = value;
    }
}

/// A project's keys beyond Sluice's own: its workflow, and what Atlantis adds.
#[derive(Default)]
struct ProjectExtras {
    workflow: Option<Located<String>>,
    branch: Option<SlashRegex>,
    plan_requirements: Option<Vec<ApplyRequirement>>,
    import_requirements: Option<Vec<ApplyRequirement>>,
    policy_check: Option<bool>,
    execution_order_group: i64,
    keys_set: BTreeMap<OverrideKey, Pos>,
}

fn project_extras(r: &mut Reader, map: &MarkedMappingNode, atlantis: bool) -> ProjectExtras {
    let mut x = ProjectExtras::default();
    for key in OverrideKey::ALL {
        if let Some(k) = map.keys().find(|k| k.as_str() == key.key()) {
            x.keys_set.insert(key, pos_of_span(k.span()));
        }
    }
    x.workflow = map
        .get_node("workflow")
        .and_then(|n| r.string(n, "workflow"));
    if !atlantis {
        return x;
    }
    if let Some(b) = map.get_node("branch").and_then(|n| r.string(n, "branch")) {
        match SlashRegex::parse(&b.value) {
            Ok(Some(re)) => x.branch = Some(re),
            Ok(None) => r.error(
                b.pos,
                format!(
                    "`branch` `{}` must be a regular expression between slashes",
                    b.value
                ),
                Some(format!("write `/^{}$/` to match that branch only", b.value)),
            ),
            Err(e) => r.error(b.pos, e, None),
        }
    }
    x.plan_requirements = map
        .get_node("plan_requirements")
        .map(|n| requirements(r, n, "plan_requirements"));
    x.import_requirements = map
        .get_node("import_requirements")
        .map(|n| requirements(r, n, "import_requirements"));
    x.policy_check = map
        .get_node("policy_check")
        .and_then(|n| r.boolean(n, "policy_check"));
    if let Some(n) = map.get_node("custom_policy_check") {
        if r.boolean(n, "custom_policy_check") == Some(true) {
            r.error(
                pos(n),
                "`custom_policy_check: true` is not supported",
                Some(
                    "Sluice decides policies from conftest-style Rego policy sets and its own \
                     policies, not from a tool's output; configure `policies.policy_sets`"
                        .to_string(),
                ),
            );
        }
    }
    if let Some(n) = map.get_node("execution_order_group") {
        match n
            .as_scalar()
            .filter(|s| s.may_coerce())
            .and_then(|s| s.as_str().parse::<i64>().ok())
        {
            Some(g) => x.execution_order_group = g,
            None => r.error(
                pos(n),
                format!(
                    "`execution_order_group` should be a whole number, found {}",
                    yaml::describe(n)
                ),
                None,
            ),
        }
    }
    x
}

/// Requirements lists (`plan_requirements`, `import_requirements`): the values of
/// `apply_requirements`.
fn requirements(r: &mut Reader, node: &Node, key: &str) -> Vec<ApplyRequirement> {
    let mut out = Vec::new();
    for item in r.string_list(node, key).unwrap_or_default() {
        let req = match item.value.as_str() {
            "approved" => ApplyRequirement::Approved,
            "mergeable" => ApplyRequirement::Mergeable,
            "undiverged" => ApplyRequirement::Undiverged,
            other => {
                let valid = ["approved", "mergeable", "undiverged"];
                let hint = match did_you_mean(other, valid) {
                    Some(s) => format!("did you mean `{s}`? valid values: {}", valid.join(", ")),
                    None => format!("valid values: {}", valid.join(", ")),
                };
                r.error(
                    item.pos,
                    format!("`{other}` is not a valid requirement in `{key}`"),
                    Some(hint),
                );
                continue;
            }
        };
        if !out.contains(&req) {
            out.push(req);
        }
    }
    out
}

/// An atlantis.yaml `dir` as Atlantis reads it (`filepath.Clean("./" + dir)`): a leading `/` is
/// the repository root (a warning says so); `..` anywhere in it is refused, as Atlantis does.
fn atlantis_dir(r: &mut Reader, d: Located<String>) -> Option<Located<String>> {
    if d.value.contains("..") {
        r.error(
            d.pos,
            format!("dir `{}` cannot contain `..`", d.value),
            Some("dirs are relative to the repository root and must stay inside it".to_string()),
        );
        return None;
    }
    if !d.value.starts_with('/') {
        return Some(d);
    }
    let relative = d.value.trim_start_matches('/');
    let relative = if relative.is_empty() { "." } else { relative };
    r.warning(
        d.pos,
        format!(
            "dir `{}` starts with `/`; it is read from the repository root as `{relative}`, as Atlantis does",
            d.value
        ),
        Some(format!("write `dir: {relative}`")),
    );
    Some(Located {
        value: relative.to_string(),
        pos: d.pos,
    })
}

/// Atlantis' rule: a project whose dir and workspace an earlier project already has must be
/// named, so both can be targeted (`-p`). Projects for different `branch`es never meet.
fn atlantis_name_rules(r: &mut Reader, config: &RepoConfig) {
    let Some(projects) = &config.projects else {
        return;
    };
    for (i, p) in projects.iter().enumerate() {
        if p.name.is_some() {
            continue;
        }
        let earlier = projects[..i].iter().find(|q| {
            q.dir.value == p.dir.value
                && q.workspace == p.workspace
                && q.name.is_some()
                && branches_overlap(q, p)
        });
        if let Some(q) = earlier {
            r.error(
                p.pos,
                format!(
                    "two or more projects have dir `{}` and workspace `{}`, and this one has no `name`",
                    p.dir.value.as_str(),
                    p.workspace
                ),
                Some(format!(
                    "give it a `name` (the one at line {} is named), so each can be targeted with `-p`",
                    q.pos.line
                )),
            );
        }
    }
}

/// Whether two projects can both exist for one base branch (unless both name different
/// `branch` patterns, one of them may apply to every branch).
fn branches_overlap(a: &ProjectConfig, b: &ProjectConfig) -> bool {
    match (&a.branch, &b.branch) {
        (Some(x), Some(y)) => x.text == y.text,
        _ => true,
    }
}

/// Removes `depends_on` entries that name no project of the file (reported as warnings for
/// atlantis.yaml), unless glob dirs leave names unknown until expansion.
fn drop_unknown_dependencies(config: &mut RepoConfig) {
    let Some(projects) = &mut config.projects else {
        return;
    };
    if projects
        .iter()
        .any(|p| matches!(p.dir.value, DirSpec::Glob(_)))
    {
        return;
    }
    let names: Vec<ProjectName> = projects
        .iter()
        .filter_map(ProjectConfig::known_name)
        .collect();
    for p in projects.iter_mut() {
        p.depends_on.retain(|d| names.contains(&d.value));
    }
}

impl RepoConfig {
    /// The config as it applies to PRs into `base_branch`: projects whose Atlantis `branch`
    /// does not match are left out (and `depends_on` entries naming them). As in Atlantis, when
    /// none is left, Sluice detects projects itself.
    pub fn for_base_branch(&self, base_branch: &str) -> RepoConfig {
        let mut out = self.clone();
        let Some(projects) = &self.projects else {
            return out;
        };
        let (kept, left_out): (Vec<ProjectConfig>, Vec<ProjectConfig>) = projects
            .iter()
            .cloned()
            .partition(|p| p.branch.as_ref().is_none_or(|b| b.is_match(base_branch)));
        out.left_out_by_branch = left_out;
        let names: Vec<ProjectName> = kept.iter().filter_map(ProjectConfig::known_name).collect();
        let has_globs = kept.iter().any(|p| matches!(p.dir.value, DirSpec::Glob(_)));
        let kept: Vec<ProjectConfig> = kept
            .into_iter()
            .map(|mut p| {
                if !has_globs {
                    p.depends_on.retain(|d| names.contains(&d.value));
                }
                p
            })
            .collect();
        out.projects = (!kept.is_empty()).then_some(kept);
        out
    }

    /// The listed projects by Atlantis `execution_order_group`, ascending (one group of all
    /// projects when none sets it). Within a group, file order; `depends_on` still applies.
    pub fn execution_groups(&self) -> Vec<(i64, Vec<&ProjectConfig>)> {
        let mut groups: BTreeMap<i64, Vec<&ProjectConfig>> = BTreeMap::new();
        for p in self.projects.iter().flatten() {
            groups.entry(p.execution_order_group).or_default().push(p);
        }
        groups.into_iter().collect()
    }

    /// The workflow this file defines under `name`.
    pub fn workflow(&self, name: &str) -> Option<&Workflow> {
        self.workflows.iter().find(|w| w.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write;

    /// Parses `text` as `file` and renders the diagnostics, then a compact view of the config.
    fn check(file: &str, text: &str) -> String {
        let (config, diags) = parse_config(file, text);
        let mut out = String::new();
        for d in &diags {
            writeln!(out, "{d}").unwrap();
        }
        match config {
            None => out.push_str("=> no config\n"),
            Some(c) => out.push_str(&summary(&c)),
        }
        out
    }

    #[test]
    fn drift_settings_per_project_over_the_top_level_and_bad_schedules_point_at_the_field() {
        let (config, diags) = parse_config(
            "sluice.yaml",
            "version: 1\ndrift: { schedule: \"*/30 * * * *\" }\nprojects:\n  - dir: a\n  - dir: b\n    drift: { enabled: false }\n  - dir: c\n    drift:\n      schedule: 0 7 * * 1-5\n",
        );
        assert!(diags.is_empty(), "{diags:?}");
        let c = config.unwrap();
        let p = c.projects.unwrap();
        let shown: Vec<(bool, Option<&str>)> = p
            .iter()
            .map(|p| {
                (
                    p.drift.enabled,
                    p.drift.schedule.as_ref().map(|s| s.as_str()),
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                (true, Some("*/30 * * * *")),
                (false, Some("*/30 * * * *")),
                (true, Some("0 7 * * 1-5")),
            ]
        );
        assert_eq!(c.drift.schedule.unwrap().as_str(), "*/30 * * * *");

        insta::assert_snapshot!(check(
            "sluice.yaml",
            "version: 1\nprojects:\n  - dir: a\n    drift:\n      schedule: 0 */6 * * * *\n      enable: true\n  - dir: b\n    drift: { schedule: \"0 25 * * *\" }\n",
        ), @r"
        sluice.yaml:5:17: error: a drift schedule has 5 fields, but `0 */6 * * * *` has 6
          hint: Sluice schedules have no seconds (or year) field: drop it, and give minute hour day-of-month month day-of-week
        sluice.yaml:6:7: error: unknown key `enable` in `drift`
          hint: did you mean `enabled`? valid keys here: enabled, schedule
        sluice.yaml:8:27: error: the hour field `25` is not valid (Number out of bounds.)
          hint: hour values are 0-23; combine them as lists `1,15`, ranges `1-5` and steps `*/15`
        => no config
        ");
    }

    fn summary(c: &RepoConfig) -> String {
        let mut out = format!(
            "=> {:?} autoplan={} plan_drafts={}\n",
            c.format, c.autoplan, c.plan_drafts
        );
        let Some(projects) = &c.projects else {
            out.push_str("   projects: detected\n");
            return out;
        };
        for p in projects {
            let name = p
                .known_name()
                .map_or_else(|| "<per dir>".to_string(), |n| n.to_string());
            let dir = match &p.dir.value {
                DirSpec::Exact(d) => d.to_string(),
                DirSpec::Glob(g) => format!("glob {g}"),
            };
            writeln!(
                out,
                "   {}:{} {name} dir={dir} ws={} engine={} tf={} autoplan={} reqs=[{}] deps=[{}] env={:?}",
                p.pos.line,
                p.pos.column,
                p.workspace,
                p.engine.as_ref().map_or("-", |e| e.value.as_str()),
                p.terraform_version.as_deref().unwrap_or("-"),
                p.autoplan,
                p.apply_requirements
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                p.depends_on
                    .iter()
                    .map(|d| d.value.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                p.env,
            )
            .unwrap();
            writeln!(
                out,
                "     when_modified: {}",
                p.when_modified
                    .iter()
                    .map(|w| w.value.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            )
            .unwrap();
        }
        out
    }

    #[test]
    fn valid_config() {
        insta::assert_snapshot!(check("sluice.yaml", r#"
version: 1
autoplan:
  when_modified: ["**/*.tf", "../../modules/**/*.tf"]
plan_drafts: true
projects:
  - name: network-prod
    dir: ./envs/prod/network/
    workspace: default
    terraform_version: v1.6.2
    engine: opentofu
    autoplan: { enabled: false, when_modified: ["*.tf", "!legacy.tf"] }
    apply_requirements: [approved, mergeable, undiverged, approved]
    depends_on: [network-shared]
    env: { TF_VAR_region: eu-west-1, TF_VAR_count: 3 }
  - name: network-shared
    dir: envs/shared/network
  - dir: envs/*/app
  - dir: envs/prod/network
    workspace: blue
    apply_requirements: []
"#), @r#"
            => Sluice autoplan=true plan_drafts=true
               7:5 network-prod dir=envs/prod/network ws=default engine=opentofu tf=1.6.2 autoplan=false reqs=[approved,mergeable,undiverged] deps=[network-shared] env={"TF_VAR_count": "3", "TF_VAR_region": "eu-west-1"}
                 when_modified: *.tf !legacy.tf
               16:5 network-shared dir=envs/shared/network ws=default engine=- tf=- autoplan=true reqs=[approved] deps=[] env={}
                 when_modified: **/*.tf ../../modules/**/*.tf
               18:5 <per dir> dir=glob envs/*/app ws=default engine=- tf=- autoplan=true reqs=[approved] deps=[] env={}
                 when_modified: **/*.tf ../../modules/**/*.tf
               19:5 envs/prod/network:blue dir=envs/prod/network ws=blue engine=- tf=- autoplan=true reqs=[] deps=[] env={}
                 when_modified: **/*.tf ../../modules/**/*.tf
            "#);
    }

    /// `automerge`: off by default; `true` (and Atlantis's `automerge: true`) is a merge
    /// commit; the mapping names the method; a bad method or key is an error at its position.
    #[test]
    fn automerge_shapes_and_bad_methods() {
        let method = |file: &str, text: &str| {
            let (c, d) = parse_config(file, text);
            assert!(d.is_empty(), "{text}: {d:?}");
            c.expect("parses").automerge
        };
        assert_eq!(method("sluice.yaml", "version: 1\n"), None);
        assert_eq!(
            method("sluice.yaml", "version: 1\nautomerge: false\n"),
            None
        );
        assert_eq!(
            method("sluice.yaml", "version: 1\nautomerge: true\n"),
            Some(MergeMethod::Merge)
        );
        assert_eq!(
            method(
                "sluice.yaml",
                "version: 1\nautomerge: { enabled: true, method: squash }\n"
            ),
            Some(MergeMethod::Squash)
        );
        assert_eq!(
            method("sluice.yaml", "version: 1\nautomerge:\n  method: rebase\n"),
            Some(MergeMethod::Rebase)
        );
        assert_eq!(
            method(
                "sluice.yaml",
                "version: 1\nautomerge: { enabled: false, method: squash }\n"
            ),
            None
        );
        assert_eq!(
            method("atlantis.yaml", "version: 3\nautomerge: true\n"),
            Some(MergeMethod::Merge)
        );
        insta::assert_snapshot!(check("sluice.yaml", "version: 1\nautomerge: { enabled: true, method: fast-forward }\n"), @"
        sluice.yaml:2:37: error: unknown automerge method `fast-forward`
          hint: valid values: merge (a merge commit, the default), squash, rebase — the ones the repository allows in its GitHub settings
        => no config
        ");
        insta::assert_snapshot!(check("sluice.yaml", "version: 1\nautomerge: { enable: true }\n"), @"
        sluice.yaml:2:14: error: unknown key `enable` in `automerge`
          hint: did you mean `enabled`? valid keys here: enabled, method
        => no config
        ");
        insta::assert_snapshot!(check("sluice.yaml", "version: 1\nautomerge: squash\n"), @"
        sluice.yaml:2:12: error: `automerge: squash` is not a setting
          hint: write `automerge: { enabled: true, method: squash }`
        => no config
        ");
        insta::assert_snapshot!(check("sluice.yaml", "version: 1\nautomerge: yes-please\n"), @"
        sluice.yaml:2:12: error: `automerge` should be `true` or `false`, found `yes-please`
        => no config
        ");
    }

    #[test]
    fn no_projects_means_detection() {
        insta::assert_snapshot!(check("sluice.yaml", "version: 1\nautoplan: {enabled: false}\nautomerge: false\n"), @r#"
            => Sluice autoplan=false plan_drafts=false
               projects: detected
            "#);
        insta::assert_snapshot!(check("sluice.yml", "version: 1\nprojects: []\nautoplan: {when_modified: ['*.tf']}\n"), @r#"
            sluice.yml:2:11: warning: `projects` is empty; Sluice detects projects itself
              hint: remove `projects: []`, or list at least one project
            sluice.yml:3:11: warning: top-level `when_modified` has no effect without `projects`
              hint: without a `projects` list Sluice detects projects itself and maps each changed file to the nearest project dir
            => Sluice autoplan=true plan_drafts=false
               projects: detected
            "#);
    }

    #[test]
    fn unknown_keys_with_did_you_mean() {
        insta::assert_snapshot!(check("sluice.yaml", r#"
version: 1
project:
  - dir: a
projects:
  - dir: a
    worksapce: prod
    autoplan: { enable: true }
    frobnicate: 1
"#), @"
        sluice.yaml:3:1: error: unknown key `project` at the top level
          hint: did you mean `projects`? valid keys here: version, projects, autoplan, plan_drafts, automerge, policies, workflows, policy_sets, drift, review_comments, apply_mode, merge_plan_check
        sluice.yaml:7:5: error: unknown key `worksapce` in project
          hint: did you mean `workspace`? valid keys here: name, dir, workspace, terraform_version, engine, autoplan, apply_requirements, depends_on, env, workflow, drift, apply_mode
        sluice.yaml:8:17: error: unknown key `enable` in `autoplan`
          hint: did you mean `enabled`? valid keys here: enabled, when_modified
        sluice.yaml:9:5: error: unknown key `frobnicate` in project
          hint: valid keys here: name, dir, workspace, terraform_version, engine, autoplan, apply_requirements, depends_on, env, workflow, drift, apply_mode
        => no config
        ");
    }

    #[test]
    fn versions() {
        insta::assert_snapshot!(check("sluice.yaml", "version: 2\nprojects: [{dirr: x}]\n"), @r#"
            sluice.yaml:1:10: error: unsupported version `2`; this Sluice reads version 1
              hint: if the file was written for a newer Sluice, upgrade the server
            => no config
            "#);
        insta::assert_snapshot!(check("sluice.yaml", "projects:\n  - dir: a\n"), @r#"
            sluice.yaml:1:1: error: missing `version`
              hint: add `version: 1` at the top of the file
            => no config
            "#);
        insta::assert_snapshot!(check("atlantis.yaml", "version: 2\nprojects: [{dir: x}]\n"), @"
        => Atlantis autoplan=true plan_drafts=false
           2:13 x dir=x ws=default engine=- tf=- autoplan=true reqs=[approved] deps=[] env={}
             when_modified: **/*.tf* **/terragrunt.hcl **/.terraform.lock.hcl
        ");
    }

    #[test]
    fn empty_and_not_a_mapping() {
        insta::assert_snapshot!(check("sluice.yaml", ""), @r#"
            sluice.yaml:1:1: error: `sluice.yaml` is empty (or only comments)
              hint: start it with `version: 1` and a `projects:` list, or delete it to let Sluice detect projects itself
            => no config
            "#);
        insta::assert_snapshot!(check("sluice.yaml", "# just a comment\n\n# another\n"), @r#"
            sluice.yaml:1:1: error: `sluice.yaml` is empty (or only comments)
              hint: start it with `version: 1` and a `projects:` list, or delete it to let Sluice detect projects itself
            => no config
            "#);
        insta::assert_snapshot!(check("sluice.yaml", "- version: 1\n"), @r#"
            sluice.yaml:1:1: error: the file must be a mapping of keys to values
              hint: start with `version: 1`, then `projects:`
            => no config
            "#);
    }

    #[test]
    fn yaml_syntax_errors() {
        insta::assert_snapshot!(check("sluice.yaml", "version: 1\nprojects:\n  - dir: [a\n"), @r#"
            sluice.yaml:4:1: error: invalid YAML: while parsing a flow sequence, expected ',' or ']'
              hint: check indentation and quoting around this spot
            => no config
            "#);
        insta::assert_snapshot!(check("sluice.yaml", "version: 1\nprojects:\n\t- dir: a\n"), @r#"
            sluice.yaml:3:2: error: invalid YAML: tabs disallowed within this context (block indentation)
              hint: check indentation and quoting around this spot
            => no config
            "#);
        insta::assert_snapshot!(check("sluice.yaml", "version: 1\nversion: 1\n"), @r#"
            sluice.yaml:2:1: error: key `version` appears twice in the same mapping (first at line 1)
              hint: remove one of them; YAML would silently keep only the last
            => no config
            "#);
        insta::assert_snapshot!(check("sluice.yaml", "version: !!str 1\n"), @r#"
            sluice.yaml:1:16: error: YAML tags (`!!str`, `!Ref`, …) are not supported
              hint: quote the value instead: `"1.10"`
            => no config
            "#);
    }

    #[test]
    fn anchors_and_aliases_are_rejected() {
        insta::assert_snapshot!(check("sluice.yaml", r#"
version: 1
projects:
  - dir: a
    autoplan: &ap { enabled: false }
  - dir: b
    autoplan: *ap
"#), @r#"
            sluice.yaml:5:19: error: YAML anchors and aliases (`&name`, `*name`) are not supported
              hint: write the value out in each place; Sluice reads a plain subset of YAML so every value has exactly one position in the file
            => no config
            "#);
        insta::assert_snapshot!(check("sluice.yaml", "version: 1\nprojects:\n  - dir: b\n    autoplan: *ap\n"), @r#"
            sluice.yaml:4:15: error: invalid YAML: while parsing node, found unknown anchor
              hint: write the value out in each place; Sluice reads a plain subset of YAML so every value has exactly one position in the file
            => no config
            "#);
    }

    /// The first line of what `check` says.
    fn first_error(file: &str, text: &str) -> String {
        check(file, text)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string()
    }

    #[test]
    fn review_comments_takes_three_values_and_points_at_a_wrong_one() {
        let read = |text: &str| {
            parse_repo_config("sluice.yaml", text)
                .0
                .map(|c| c.review_comments)
        };
        assert_eq!(
            read("version: 1\n"),
            Some(ReviewComments::DestroyAndReplace)
        );
        assert_eq!(
            read("version: 1\nreview_comments: all_changes\n"),
            Some(ReviewComments::AllChanges)
        );
        assert_eq!(
            read("version: 1\nreview_comments: off\n"),
            Some(ReviewComments::Off)
        );
        assert_eq!(
            first_error("sluice.yaml", "version: 1\nreview_comments: everything\n"),
            "sluice.yaml:2:18: error: unknown review_comments `everything`"
        );
    }

    #[test]
    fn files_from_a_pull_request_are_bounded_before_they_are_loaded() {
        // Billion laughs: refused at the first anchor, long before anything could expand.
        let mut laughs = String::from("version: 1\na0: &a0 [x, x, x, x, x, x, x, x, x]\n");
        for i in 1..30 {
            let p = i - 1;
            laughs.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        assert_eq!(
            first_error("sluice.yaml", &laughs),
            "sluice.yaml:2:9: error: YAML anchors and aliases (`&name`, `*name`) are not supported"
        );
        // Deep nesting, in flow style and in block style (the loader recurses per level; the
        // block style once overflowed its stack at about 1,000 levels).
        let flow = format!("version: 1\nx: {}1{}\n", "[".repeat(200), "]".repeat(200));
        assert_eq!(
            first_error("sluice.yaml", &flow),
            "sluice.yaml:2:35: error: the file nests more than 32 levels deep here"
        );
        let mut block = String::from("version: 1\n");
        for i in 0..5000 {
            block.push_str(&format!("{}a:\n", " ".repeat(i)));
        }
        assert_eq!(
            first_error("sluice.yaml", &block),
            "sluice.yaml:34:34: error: the file nests more than 32 levels deep here"
        );
        // Many values.
        let many = format!("version: 1\nx: [{}]\n", "1, ".repeat(100_001));
        assert_eq!(
            first_error("sluice.yaml", &many),
            "sluice.yaml:2:299990: error: the file has more than 100000 values; Sluice reads at most that many"
        );
        // Many projects: each may be a glob matched against the whole tree.
        let mut projects = String::from("version: 1\nprojects:\n");
        for i in 0..=MAX_PROJECTS {
            projects.push_str(&format!("  - dir: p{i}\n"));
        }
        assert_eq!(
            first_error("sluice.yaml", &projects),
            "sluice.yaml:3:3: error: `projects` lists 5001 entries; Sluice reads at most 5000"
        );
        projects.truncate(projects.rfind("  - dir").unwrap());
        assert!(
            check("sluice.yaml", &projects).contains("=> Sluice"),
            "5000 are fine"
        );
    }

    #[test]
    fn wrong_types_are_all_reported() {
        insta::assert_snapshot!(check("sluice.yaml", r#"
version: 1
plan_drafts: "true"
projects:
  - dir: [a]
    workspace: {x: 1}
    depends_on: other
    autoplan: yes
  - just-a-string
  - dir:
    env: [A]
"#), @r#"
            sluice.yaml:3:14: error: `plan_drafts` should be `true` or `false`, found the quoted string `"true"`
              hint: write it without quotes: quoted values are strings
            sluice.yaml:5:10: error: `dir` should be a single value, found a list
            sluice.yaml:6:16: error: `workspace` should be a single value, found a mapping
            sluice.yaml:7:17: error: `depends_on` should be a list, found `other`
              hint: write `depends_on: [a, b]` or one `- item` per line
            sluice.yaml:8:15: error: `autoplan` should be a mapping of keys to values, found `yes`
            sluice.yaml:9:5: error: each entry of `projects` should be a mapping of keys to values, found `just-a-string`
            sluice.yaml:11:5: error: `dir` should be a single value, found no value
            sluice.yaml:11:10: error: `env` should be a mapping of keys to values, found a list
            => no config
            "#);
    }

    #[test]
    fn duplicate_names() {
        insta::assert_snapshot!(check("sluice.yaml", r#"
version: 1
projects:
  - name: net
    dir: a
  - name: net
    dir: b
  - dir: c
  - dir: ./c/
"#), @r#"
            sluice.yaml:6:11: error: project name `net` is used twice: at line 4 and at line 6
              hint: project names must be unique; rename one of them
            sluice.yaml:9:10: error: project name `c` is used twice: at line 8 and at line 9
              hint: both entries have dir `c` and workspace `default`; give each a distinct `name`, or remove one
            => no config
            "#);
    }

    #[test]
    fn bad_dirs() {
        insta::assert_snapshot!(check("sluice.yaml", r#"
version: 1
projects:
  - dir: ../outside
  - dir: /envs/prod
  - dir: envs/../../x
  - dir: "envs/[prod"
  - name: named-glob
    dir: envs/*/net
  - dir: a
    workspace: ../x
  - dir: b
    name: -bad
  - name: web
    dir: ../web
"#), @r#"
            sluice.yaml:4:10: error: dir `../outside` leaves the repository (`..` is not allowed)
              hint: dirs are relative to the repository root and must stay inside it
            sluice.yaml:5:10: error: dir `/envs/prod` is absolute
              hint: dirs are relative to the repository root: write `envs/prod`
            sluice.yaml:6:10: error: dir `envs/../../x` leaves the repository (`..` is not allowed)
              hint: dirs are relative to the repository root and must stay inside it
            sluice.yaml:7:10: error: dir `envs/[prod` is not a valid glob: unclosed character class; missing ']'
            sluice.yaml:8:11: error: project `named-glob` has a glob `dir` (`envs/*/net`) and a `name`
              hint: a glob dir expands to one project per matching directory, each named after its dir; remove `name`, or list the directories one by one
            sluice.yaml:11:16: error: workspace `../x` is not allowed: it must not be `.` or contain `..`
            sluice.yaml:13:11: error: project name `-bad` must not start with `-`
            sluice.yaml:15:10: error: project `web`: dir `../web` leaves the repository (`..` is not allowed)
              hint: dirs are relative to the repository root and must stay inside it
            => no config
            "#);
    }

    #[test]
    fn bad_values() {
        insta::assert_snapshot!(check("sluice.yaml", r#"
version: 1
projects:
  - dir: a
    apply_requirements: [approved, aproved, reviewed]
    engine: pulumi
    terraform_version: "~> 1.5"
  - dir: b
    autoplan: { when_modified: ["[oops", "/abs/*.tf", "", "../../../x/*.tf"] }
  - dir: c
    env: { PATH: /bin, TF_CLI_ARGS_plan: -x, 1BAD: x, TF_VAR_ok: { a: 1 } }
"#), @"
        sluice.yaml:5:36: error: unknown apply requirement `aproved`
          hint: did you mean `approved`? valid values: approved, mergeable, undiverged
        sluice.yaml:5:45: error: unknown apply requirement `reviewed`
          hint: valid values: approved, mergeable, undiverged
        sluice.yaml:6:13: error: unknown engine `pulumi`
          hint: valid values: terraform, opentofu (or leave it out: projects whose files only OpenTofu reads run with OpenTofu, the others with terraform)
        sluice.yaml:7:24: error: `terraform_version` should be an exact version like `1.6.2`, found `~> 1.5`
          hint: Sluice runs exactly this version; leave it out to use the project's `required_version`
        sluice.yaml:9:33: error: `[oops` is not a valid glob: unclosed character class; missing ']'
        sluice.yaml:9:42: error: when_modified pattern `/abs/*.tf` is absolute
          hint: patterns are relative to the project dir; to reach other parts of the repository use `../`, e.g. `../../modules/**/*.tf` (not `/abs/*.tf`)
        sluice.yaml:9:55: error: an empty pattern matches nothing
        sluice.yaml:9:59: error: pattern `../../../x/*.tf` leaves the repository when read from `b`
        sluice.yaml:11:12: error: `PATH` cannot be set in `env`
          hint: the runner sets the run's directories and identity; `env` is for values the configuration reads, such as `TF_VAR_*`
        sluice.yaml:11:24: error: `TF_CLI_ARGS_plan` cannot be set in `env`
          hint: `TF_*` variables other than `TF_VAR_*` change what terraform loads, where it connects or how it runs, which Sluice controls; pass values to the configuration as `TF_VAR_name`
        sluice.yaml:11:46: error: `1BAD` is not a valid environment variable name
          hint: use letters, digits and `_`, not starting with a digit
        sluice.yaml:11:66: error: `TF_VAR_ok` should be a single value, found a mapping
        => no config
        ");
    }

    #[test]
    fn env_is_an_allowlist_of_tf_var_and_plain_names() {
        use EnvClass::*;
        let table: &[(&str, Option<EnvClass>)] = &[
            ("TF_VAR_region", None),
            ("TF_VAR_", Some(Engine)),
            ("tf_var_region", Some(Engine)),
            ("AWS_REGION", None),
            ("GOOGLE_PROJECT", None),
            ("ARM_SUBSCRIPTION_ID", None),
            ("LANG", None),
            ("MY_PROXY_NAME", None),
            ("TF_CLI_CONFIG_FILE", Some(Engine)),
            ("TF_PLUGIN_CACHE_DIR", Some(Engine)),
            ("TF_DATA_DIR", Some(Engine)),
            ("TF_CLI_ARGS", Some(Engine)),
            ("TF_CLI_ARGS_plan", Some(Engine)),
            ("TF_REGISTRY_CLIENT_TIMEOUT", Some(Engine)),
            ("TF_PROVIDER_X", Some(Engine)),
            ("TF_REATTACH_PROVIDERS", Some(Engine)),
            ("TF_LOG_PROVIDER", Some(Engine)),
            ("TF_WORKSPACE", Some(Engine)),
            ("TF_IGNORE", Some(Engine)),
            ("TF_IN_AUTOMATION", Some(Engine)),
            ("Tf_Log", Some(Engine)),
            ("TERRAFORM_CONFIG", Some(Engine)),
            ("TOFU_CLI_CONFIG_FILE", Some(Engine)),
            ("CHECKPOINT_DISABLE", Some(Engine)),
            ("PATH", Some(Runner)),
            ("home", Some(Runner)),
            ("TMPDIR", Some(Runner)),
            ("XDG_DATA_HOME", Some(Runner)),
            ("SLUICE_WEBHOOK_SECRET", Some(Runner)),
            ("HTTPS_PROXY", Some(Network)),
            ("http_proxy", Some(Network)),
            ("no_proxy", Some(Network)),
            ("SSL_CERT_FILE", Some(Network)),
            ("SSL_CERT_DIR", Some(Network)),
            ("GIT_SSH_COMMAND", Some(Network)),
            ("SSH_AUTH_SOCK", Some(Network)),
            ("LD_PRELOAD", Some(Loader)),
            ("LD_LIBRARY_PATH", Some(Loader)),
            ("DYLD_INSERT_LIBRARIES", Some(Loader)),
            ("GLIBC_TUNABLES", Some(Loader)),
            ("GODEBUG", Some(Loader)),
            ("BASH_ENV", Some(Loader)),
            ("BASH_FUNC_x%%", Some(Loader)),
        ];
        for (name, want) in table {
            assert_eq!(env_name_refusal(name), *want, "{name}");
        }
    }

    #[test]
    fn debug_logging_cannot_be_switched_on_from_the_repo() {
        // TF_LOG output includes provider requests (with credentials) and is posted on the PR.
        for name in ["TF_LOG", "TF_LOG_PROVIDER", "TF_LOG_PATH", "TMPDIR"] {
            let out = check(
                "sluice.yaml",
                &format!("version: 1\nprojects:\n  - dir: a\n    env: {{ {name}: trace }}\n"),
            );
            assert!(
                out.contains(&format!("`{name}` cannot be set in `env`")),
                "{name}: {out}"
            );
        }
    }

    #[test]
    fn apply_mode_and_merge_plan_check_take_their_values_only() {
        insta::assert_snapshot!(check("sluice.yaml", "version: 1\napply_mode: after_merge\nmerge_plan_check: loose\nprojects:\n  - dir: app\n    apply_mode: [on_merge]\n"), @"
        sluice.yaml:2:13: error: unknown apply_mode `after_merge`
          hint: valid values: comment (apply by comment before merge), on_merge (apply the merge commit after merge), comment_or_merge
        sluice.yaml:3:19: error: unknown merge_plan_check `loose`
          hint: valid values: strict (a merge commit whose plan differs from the reviewed one is not applied), replan (it is applied if the policies still pass)
        sluice.yaml:6:17: error: `apply_mode` should be a single value, found a list
        => no config
        ");
        let (c, _) = parse_repo_config(
            "sluice.yaml",
            "version: 1\napply_mode: on_merge\nmerge_plan_check: replan\nprojects:\n  - dir: app\n    apply_mode: comment\n",
        );
        let c = c.expect("valid");
        assert_eq!(c.apply_mode, ApplyMode::OnMerge);
        assert_eq!(c.merge_plan_check, MergePlanCheck::Replan);
        let app = &c.projects.as_ref().expect("projects")[0];
        assert_eq!(app.apply_mode, Some(ApplyMode::Comment));
    }

    #[test]
    fn depends_on_unknown_and_cycles() {
        insta::assert_snapshot!(check("sluice.yaml", r#"
version: 1
projects:
  - name: app
    dir: app
    depends_on: [netwrk, db]
  - name: db
    dir: db
    depends_on: [network]
  - name: network
    dir: network
    depends_on: [app]
  - name: solo
    dir: solo
    depends_on: [solo]
"#), @"
        sluice.yaml:6:18: error: `depends_on` names `netwrk`, which is not a project in this file
          hint: did you mean `network`? projects in this file: app, db, network, solo
        sluice.yaml:6:26: error: dependency cycle: `app` → `db` → `network` → `app`
          hint: `depends_on` sets the order of runs, and a cycle has no valid order; remove one of these entries: `app` → `db` at 6:26, `db` → `network` at 9:18, `network` → `app` at 12:18
        sluice.yaml:15:18: error: dependency cycle: `solo` → `solo`
          hint: `depends_on` sets the order of runs, and a cycle has no valid order; remove one of these entries: `solo` → `solo` at 15:18
        => no config
        ");
        // With a glob entry, names are only known after expansion: no error yet.
        insta::assert_snapshot!(check("sluice.yaml", "version: 1\nprojects:\n  - dir: envs/*\n  - dir: app\n    depends_on: [envs/prod]\n"), @r#"
            => Sluice autoplan=true plan_drafts=false
               3:5 <per dir> dir=glob envs/* ws=default engine=- tf=- autoplan=true reqs=[approved] deps=[] env={}
                 when_modified: **/*.tf **/*.tofu **/*.tfvars **/*.tfvars.json **/.terraform.lock.hcl
               4:5 app dir=app ws=default engine=- tf=- autoplan=true reqs=[approved] deps=[envs/prod] env={}
                 when_modified: **/*.tf **/*.tofu **/*.tfvars **/*.tfvars.json **/.terraform.lock.hcl
            "#);
    }

    #[test]
    fn atlantis_mapping() {
        insta::assert_snapshot!(check("atlantis.yaml", r#"
version: 3
automerge: true
parallel_plan: true
delete_source_branch_on_merge: true
projects:
  - name: prod
    dir: envs/prod
    workspace: prod
    terraform_version: v1.5.7
    terraform_distribution: opentofu
    autoplan:
      enabled: true
      when_modified: ["*.tf", "../modules/**/*.tf"]
    apply_requirements: [mergeable, approved]
    depends_on: [staging]
    execution_order_group: 2
    repo_locking: false
    workflow: default
  - name: staging
    dir: envs/staging
"#), @"
        atlantis.yaml:4:1: warning: `parallel_plan` is ignored: Sluice runs each project as its own job, ordered by `depends_on`
          hint: remove it to silence this warning
        atlantis.yaml:5:1: warning: `delete_source_branch_on_merge` is ignored: Sluice does not delete branches
          hint: remove it to silence this warning
        atlantis.yaml:18:5: warning: `repo_locking` is ignored: Sluice always locks each project dir and workspace
          hint: remove it to silence this warning
        => Atlantis autoplan=true plan_drafts=false
           7:5 prod dir=envs/prod ws=prod engine=opentofu tf=1.5.7 autoplan=true reqs=[mergeable,approved] deps=[staging] env={}
             when_modified: *.tf ../modules/**/*.tf
           20:5 staging dir=envs/staging ws=default engine=- tf=- autoplan=true reqs=[approved] deps=[] env={}
             when_modified: **/*.tf* **/terragrunt.hcl **/.terraform.lock.hcl
        ");
    }

    #[test]
    fn atlantis_unsupported_features_fail_closed() {
        insta::assert_snapshot!(check("atlantis.yaml", r#"
version: 3
workflows:
  custom:
    plan:
      steps: [init, {run: ./check.sh}, {plan: {extra_args: ["-lock=false"]}}]
projects:
  - dir: envs/prod
    workflow: custom
    branch: /main/
    plan_requirements: [approved]
  - dir: envs/dev
    engine: terraform
"#), @"
        atlantis.yaml:13:5: error: unknown key `engine` in project
          hint: valid keys here: name, dir, workspace, terraform_version, terraform_distribution, autoplan, apply_requirements, depends_on, workflow, branch, plan_requirements, import_requirements, policy_check, custom_policy_check, execution_order_group
        => no config
        ");
        insta::assert_snapshot!(check("atlantis.yml", "version: 3\nautodiscover:\n  mode: enabled\n  ignore_paths: [x]\nprojects:\n  - dir: a\n"), @r#"
            atlantis.yml:3:9: error: `autodiscover: {mode: enabled}` together with `projects` is not supported
              hint: Atlantis would also plan directories that are not listed; Sluice plans either the listed projects or, without a `projects` list, the ones it detects. List every project, or remove `projects`
            atlantis.yml:4:3: error: `ignore_paths` is not supported by Sluice: ignoring it would plan directories your team excluded; list the projects explicitly instead
              hint: remove it, or keep using Atlantis for this repository
            => no config
            "#);
    }

    /// Atlantis `branch`: a project exists only for pull requests into matching base branches
    /// (unanchored Go regex); the others are kept aside for the reply that names the pattern;
    /// when none is left, projects are detected. A bad pattern is an error at its position.
    #[test]
    fn branch_patterns_pick_the_projects_of_a_base_branch() {
        let text = "version: 3\nprojects:\n- name: main-stack\n  dir: stack\n  branch: /^main$/\n  depends_on: [release-stack]\n- name: release-stack\n  dir: stack\n  workspace: release\n  branch: /^release\\/.*$/\n- name: always\n  dir: net\n";
        let (config, d) = parse_atlantis_config("atlantis.yaml", text);
        let config = config.unwrap_or_else(|| panic!("{d:#?}"));
        let names = |c: &RepoConfig| -> String {
            let kept: Vec<String> = c
                .projects
                .iter()
                .flatten()
                .map(|p| {
                    let deps: Vec<&str> = p.depends_on.iter().map(|d| d.value.as_str()).collect();
                    format!("{}{deps:?}", p.known_name().unwrap())
                })
                .collect();
            let out: Vec<String> = c
                .left_out_by_branch
                .iter()
                .map(|p| p.known_name().unwrap().to_string())
                .collect();
            format!("kept {kept:?}, left out {out:?}")
        };
        assert_eq!(
            names(&config.for_base_branch("main")),
            r#"kept ["main-stack[]", "always[]"], left out ["release-stack"]"#
        );
        assert_eq!(
            names(&config.for_base_branch("release/1")),
            r#"kept ["release-stack[]", "always[]"], left out ["main-stack"]"#
        );
        assert_eq!(
            names(&config.for_base_branch("mainline")),
            r#"kept ["always[]"], left out ["main-stack", "release-stack"]"#
        );
        // Unanchored, as Go's MatchString: `/release/` matches `old-release`.
        let loose = "version: 3\nprojects:\n- dir: a\n  branch: /release/\n";
        let (c, _) = parse_atlantis_config("atlantis.yaml", loose);
        let c = c.unwrap().for_base_branch("old-release");
        assert!(c.projects.is_some() && c.left_out_by_branch.is_empty());
        // Nothing left: detection, as Atlantis.
        let c = parse_atlantis_config("atlantis.yaml", loose).0.unwrap();
        assert!(c.for_base_branch("main").projects.is_none());

        insta::assert_snapshot!(check("atlantis.yaml", "version: 3\nprojects:\n- dir: a\n  branch: /^release/(/\n- dir: b\n  branch: main\n"), @"
        atlantis.yaml:4:11: error: `/^release/(/` is not a valid regular expression: regex parse error:
            ^release/(
                     ^
        error: unclosed group
        atlantis.yaml:6:11: error: `branch` `main` must be a regular expression between slashes
          hint: write `/^main$/` to match that branch only
        => no config
        ");
    }

    #[test]
    fn choosing_the_config_file() {
        let show = |existing: &[&str]| {
            let (chosen, diags) = choose_config_file(existing);
            let mut out = format!("chosen: {chosen:?}\n");
            for d in diags {
                writeln!(out, "{d}").unwrap();
            }
            out
        };
        insta::assert_snapshot!(show(&["README.md"]), @"chosen: None");
        insta::assert_snapshot!(show(&["atlantis.yml"]), @r#"
            chosen: Some("atlantis.yml")
            "#);
        insta::assert_snapshot!(show(&["atlantis.yaml", "sluice.yml", "sluice.yaml"]), @r#"
            chosen: Some("sluice.yaml")
            sluice.yml: warning: `sluice.yml` is ignored: `sluice.yaml` takes precedence
              hint: keep only one of `sluice.yaml` and `sluice.yml`
            atlantis.yaml: warning: `atlantis.yaml` is ignored: `sluice.yaml` takes precedence
              hint: Sluice reads only one config file; delete `atlantis.yaml` once the migration to `sluice.yaml` is done, so nobody edits a file that has no effect
            "#);
    }

    #[test]
    fn anchoring_patterns() {
        let a = |dir: &str, p: &str| anchor_pattern(dir, p).unwrap_or_else(|e| format!("ERR {e}"));
        assert_eq!(
            a("envs/prod/network", "../../modules/**/*.tf"),
            "envs/modules/**/*.tf"
        );
        assert_eq!(a("envs/prod", "../../modules/**/*.tf"), "modules/**/*.tf");
        assert_eq!(a(".", "**/*.tf"), "**/*.tf");
        assert_eq!(a("a", "./x/../y/*.tf"), "a/y/*.tf");
        assert_eq!(a("a/b", "../.."), "**");
        assert!(a("a", "../../x").starts_with("ERR"));
        assert!(a("a", "**/../x").starts_with("ERR"));
        assert!(a("a", "/x").starts_with("ERR"));
    }

    #[test]
    fn scalars_are_read_as_written() {
        // YAML would read `1.10` as the float 1.1; Sluice keeps the text.
        let (config, diags) = parse_repo_config(
            "sluice.yaml",
            "version: 1\nprojects:\n  - dir: a\n    terraform_version: 1.10\n    env: {TF_VAR_n: 010}\n",
        );
        assert!(diags.is_empty(), "{diags:?}");
        let p = &config.unwrap().projects.unwrap()[0];
        assert_eq!(p.terraform_version.as_deref(), Some("1.10"));
        assert_eq!(p.env["TF_VAR_n"], "010");
    }

    #[test]
    fn inline_policies() {
        let (config, diags) = parse_repo_config(
            "sluice.yaml",
            r#"
version: 1
policies:
  - name: cap-destroys
    rules: [{ max_destroys: 10 }]
  - name: only-infra
    scope: { projects: ["prod-*"] }
    access: { apply: { teams: [acme/infra] } }
"#,
        );
        assert!(diags.is_empty(), "{diags:?}");
        let config = config.expect("valid");
        let names: Vec<(&str, &str, usize)> = config
            .policies
            .iter()
            .map(|p| (p.name.as_str(), p.file.as_str(), p.pos.line))
            .collect();
        assert_eq!(
            names,
            [
                ("cap-destroys", "sluice.yaml", 4),
                ("only-infra", "sluice.yaml", 6)
            ]
        );
        // Errors in inline policies read like every other config error, and fail the config.
        insta::assert_snapshot!(check("sluice.yaml", r#"
version: 1
projects:
  - dir: a
policies:
  - name: dbs
    rules:
      - deny: [destroy]
        resource_typs: [aws_db_instance]
  - name: x
    on_failure: require_override
"#), @r"
            sluice.yaml:8:16: error: unknown action `destroy`
              hint: did you mean `delete`? valid actions: create, update, delete, replace
            sluice.yaml:9:9: error: unknown key `resource_typs` in rule
              hint: did you mean `resource_types`? valid keys here: deny, require_approval, max_destroys, max_changes, deny_providers, require_tags, name, resource_types, addresses, approvals, tag_attributes
            sluice.yaml:11:17: error: `on_failure: require_override` needs `owners` who may override
              hint: add `owners: { teams: [org/team] }` or `owners: { users: [login] }`
            => no config
        ");
        insta::assert_snapshot!(check("atlantis.yaml", "version: 3\npolicies: []\n"), @"
        atlantis.yaml:2:11: error: `policies` should be a mapping of keys to values, found a list
        => no config
        ");
    }

    #[test]
    fn versions_accepted() {
        for ok in ["1", "1.6", "1.6.2", "1.7.0-beta1", "0.15.5"] {
            assert!(is_exact_version(ok), "{ok}");
        }
        for bad in ["", "~> 1.5", ">=1.0", "1.2.3.4", "1.x", "1.2-", "latest"] {
            assert!(!is_exact_version(bad), "{bad}");
        }
    }
}
