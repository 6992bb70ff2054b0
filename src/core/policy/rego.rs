//! Rego policy sets, conftest-compatible (PRODUCT.md §19): the policy sets of Atlantis'
//! `policies:` block and of `sluice.yaml`'s `policy_sets:`, compiled and evaluated in-process on
//! a plan's `terraform show -json` output with the [`regorus`] interpreter — no `opa` or
//! `conftest` binary.
//!
//! Conftest's conventions (`policy/engine.go`): in each namespace (package; `main` unless the
//! workflow's `policy_check` step passes `--namespace`/`--all-namespaces`), rules named
//! `deny`, `violation`, `deny_<x>`, `violation_<x>` are failures and `warn`, `warn_<x>` warnings;
//! a rule's value must be a set (or array) of strings or of objects with a `msg` string, anything
//! else passes; `exception` rules (`exception contains ["rule_name"]`) silence a rule. Both Rego
//! syntaxes are read: each file is parsed as v0 and, failing that, as v1 (a file with
//! `import rego.v1` is v1), unless the policy set says `rego_version`.
//!
//! A set becomes a [`Policy`] ([`to_policy`]) so it joins the YAML policies in every place: the
//! Policies section, the `sluice/policy` status, audit entries and `approve_policies` (by the
//! set's owners, `approve_count` of them). The app evaluates each set on the plan
//! ([`evaluate_set`]) and attaches the result ([`Policy::with_rego_evaluation`]) before calling
//! `policy::evaluate`; a set with no result for the plan fails closed.
//!
//! Bounds: policy files are refused past regorus' length limits (1 MiB, 20,000 lines, 1,024
//! columns), the plan JSON past [`RegoLimits::max_input_bytes`], and evaluation stops when the
//! interpreter's cooperative execution timer passes [`RegoLimits::time_budget`] (checked every
//! few instructions; a rule that loops over a huge range is stopped, not finished). The budget
//! is an argument: the core reads no clock itself (regorus measures elapsed time with its own
//! monotonic clock). [`evaluate_set`] builds its own engine from plain data and is `Send`, so
//! the app can also run it on a thread it abandons at a hard deadline. Builtins that would reach
//! the network or the host (`http.send`, `opa.runtime` environment) are not compiled in.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use marked_yaml::Node;
use serde::Serialize;
use serde_json::Value as Json;

use super::code;
use super::eval::{Decision, Outcome, PolicyInput, Reason, ReasonKind};
use super::model::{OnFailure, Policy, Principals, Scope, Stage, TeamRef};
use crate::core::diag::{Diagnostic, has_errors};
use crate::core::repo_config::{Located, Pos};
use crate::core::yaml::{self, Key::Ignored, Key::Known, is_null, pos};

/// The Rego dialect a file is read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RegoVersion {
    /// OPA before 1.0: `deny[msg] { ... }`.
    V0,
    /// OPA 1.0: `deny contains msg if { ... }`.
    V1,
}

impl RegoVersion {
    pub fn name(self) -> &'static str {
        match self {
            RegoVersion::V0 => "v0",
            RegoVersion::V1 => "v1",
        }
    }
}

/// Where a policy set's configuration was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOrigin {
    /// The repository's config (base branch): `path` is relative to the repository root.
    Repo,
    /// The server's repo rules: `path` is a server path, resolved by the app.
    Server,
}

/// Users and teams as Atlantis writes them: a team may be a bare slug (`platform`), which means
/// the team of that name in the repository's organisation ([`RawOwners::resolve`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawOwners {
    /// Logins, lowercase.
    pub users: Vec<Located<String>>,
    /// `org/slug` or `slug`, lowercase.
    pub teams: Vec<Located<String>>,
}

impl RawOwners {
    /// The owners with every bare team slug placed in `org` (the repository's owner).
    pub fn resolve(&self, org: &str) -> Principals {
        Principals {
            users: self.users.clone(),
            teams: self
                .teams
                .iter()
                .map(|t| {
                    let (o, s) = t.value.split_once('/').unwrap_or((org, t.value.as_str()));
                    Located {
                        value: TeamRef {
                            org: o.to_ascii_lowercase(),
                            slug: s.to_ascii_lowercase(),
                        },
                        pos: t.pos,
                    }
                })
                .collect(),
        }
    }

    fn extend(&mut self, other: &RawOwners) {
        for u in &other.users {
            if !self.users.iter().any(|x| x.value == u.value) {
                self.users.push(u.clone());
            }
        }
        for t in &other.teams {
            if !self.teams.iter().any(|x| x.value == t.value) {
                self.teams.push(t.clone());
            }
        }
    }
}

/// One configured policy set (Atlantis' `policy_sets` entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySetConfig {
    /// Unique among the repository's policies; what `approve_policies --policy-set` names.
    pub name: String,
    /// A `.rego` file or a directory of them (read recursively).
    pub path: Located<String>,
    /// The set's own owners plus the `policies.owners` of its block.
    pub owners: RawOwners,
    /// How many distinct owners must run `approve_policies` for a failure to be overridden.
    pub approve_count: u32,
    /// `None`: detected per file.
    pub rego_version: Option<RegoVersion>,
    /// The config file it was written in, and where.
    pub file: String,
    pub pos: Pos,
    pub origin: SetOrigin,
}

/// Most policy sets one file may configure.
pub const MAX_POLICY_SETS: usize = 200;

const SET_KEYS: &[(&str, yaml::Key)] = &[
    ("name", Known),
    ("path", Known),
    ("source", Known),
    ("owners", Known),
    ("approve_count", Known),
    ("prevent_self_approve", Known),
    ("rego_version", Known),
];

/// Reads Atlantis' `policies:` block (`{conftest_version, owners, policy_sets}`), in
/// `repos.yaml` or `atlantis.yaml`. The block's `owners` may override every set.
pub(crate) fn policies_block_node(
    r: &mut yaml::Reader,
    node: &Node,
    origin: SetOrigin,
) -> Vec<PolicySetConfig> {
    if let Node::Scalar(s) = node {
        if is_null(s) {
            return Vec::new();
        }
    }
    let Some(map) = r.mapping(node, "`policies`") else {
        return Vec::new();
    };
    r.check_keys(
        map,
        "in `policies`",
        &[
            ("owners", Known),
            ("policy_sets", Known),
            (
                "conftest_version",
                Ignored("Sluice evaluates Rego in-process, without conftest"),
            ),
        ],
    );
    let owners = map
        .get_node("owners")
        .and_then(|n| raw_owners(r, n, "owners"))
        .unwrap_or_default();
    let Some(sets) = map.get_node("policy_sets") else {
        r.error(
            pos(node),
            "`policies` has no `policy_sets`",
            Some(
                "declare the policy sets to enforce: `policy_sets: [{name, path, source: local}]`"
                    .to_string(),
            ),
        );
        return Vec::new();
    };
    let mut out = policy_sets_node(r, sets, origin);
    if out.is_empty() && !has_errors(&r.diags) {
        r.error(
            pos(sets),
            "`policy_sets` cannot be empty",
            Some("declare the policy sets to enforce, or remove `policies`".to_string()),
        );
    }
    for s in &mut out {
        s.owners.extend(&owners);
    }
    out
}

/// Reads a `policy_sets:` list (Sluice's top-level key, and inside Atlantis' `policies:`).
pub(crate) fn policy_sets_node(
    r: &mut yaml::Reader,
    node: &Node,
    origin: SetOrigin,
) -> Vec<PolicySetConfig> {
    let Some(seq) = r.sequence(node, "policy_sets") else {
        return Vec::new();
    };
    if !r.at_most(seq, "policy_sets", MAX_POLICY_SETS) {
        return Vec::new();
    }
    seq.iter()
        .filter_map(|n| policy_set(r, n, origin))
        .collect()
}

fn policy_set(r: &mut yaml::Reader, node: &Node, origin: SetOrigin) -> Option<PolicySetConfig> {
    let map = r.mapping(node, "each entry of `policy_sets`")?;
    let at = map
        .keys()
        .next()
        .map_or_else(|| pos(node), |k| yaml::pos_of_span(k.span()));
    r.check_keys(map, "in a policy set", SET_KEYS);
    let before = r.diags.iter().filter(|d| d.is_error()).count();
    let name = match map.get_node("name").and_then(|n| r.string(n, "name")) {
        Some(n) => super::parse::policy_name(r, n),
        None => {
            if map.get_node("name").is_none() {
                r.error(
                    at,
                    "policy set has no `name`",
                    Some("add `name: ...`".to_string()),
                );
            }
            None
        }
    };
    let path = match map.get_node("path").and_then(|n| r.string(n, "path")) {
        Some(p) => set_path(r, p, origin),
        None => {
            if map.get_node("path").is_none() {
                r.error(
                    at,
                    "policy set has no `path`",
                    Some(
                        "add `path: policies/` (a directory of .rego files, or one file)"
                            .to_string(),
                    ),
                );
            }
            None
        }
    };
    if let Some(s) = map.get_node("source").and_then(|n| r.string(n, "source")) {
        match s.value.as_str() {
            "local" => {}
            "github" => r.error(
                s.pos,
                "policy sets with `source: github` are not supported",
                Some(
                    "Sluice reads policies from the repository's base branch or the server's \
                     files, never fetched at run time; copy the policies and use `source: local`"
                        .to_string(),
                ),
            ),
            other => r.error(
                s.pos,
                format!("unknown policy set source `{other}`"),
                Some("valid sources: local".to_string()),
            ),
        }
    }
    let owners = map
        .get_node("owners")
        .and_then(|n| raw_owners(r, n, "owners"))
        .unwrap_or_default();
    let approve_count = match map.get_node("approve_count") {
        None => 1,
        Some(n) => match r.whole_number(n, "approve_count") {
            Some(0) => {
                r.error(
                    pos(n),
                    "`approve_count` must be at least 1",
                    Some("a failing policy set needs at least one owner's override".to_string()),
                );
                1
            }
            Some(c) => c,
            None => 1,
        },
    };
    if let Some(n) = map.get_node("prevent_self_approve") {
        if r.boolean(n, "prevent_self_approve") == Some(false) {
            r.warning(
                pos(n),
                "`prevent_self_approve: false` has no effect: Sluice never lets the author of a \
                 pull request override its policies",
                None,
            );
        }
    }
    let rego_version = match map
        .get_node("rego_version")
        .and_then(|n| r.string(n, "rego_version"))
    {
        None => None,
        Some(v) => match v.value.as_str() {
            "v0" | "0" => Some(RegoVersion::V0),
            "v1" | "1" => Some(RegoVersion::V1),
            other => {
                r.error(
                    v.pos,
                    format!("unknown `rego_version` `{other}`"),
                    Some("valid values: v0, v1 (leave it out to detect per file)".to_string()),
                );
                None
            }
        },
    };
    let after = r.diags.iter().filter(|d| d.is_error()).count();
    if after > before {
        return None;
    }
    Some(PolicySetConfig {
        name: name?,
        path: path?,
        owners,
        approve_count,
        rego_version,
        file: r.file.to_string(),
        pos: at,
        origin,
    })
}

/// A set's `path`: in the repository, relative and inside it (normalised, no trailing `/`); on
/// the server, as written.
fn set_path(
    r: &mut yaml::Reader,
    p: Located<String>,
    origin: SetOrigin,
) -> Option<Located<String>> {
    if origin == SetOrigin::Server {
        return Some(p);
    }
    let raw = p.value.as_str();
    if raw.starts_with('/') || raw.split('/').any(|s| s == "..") {
        r.error(
            p.pos,
            format!("policy set path `{raw}` must stay inside the repository"),
            Some("write it relative to the repository root, e.g. `policies/terraform`".to_string()),
        );
        return None;
    }
    let norm: Vec<&str> = raw
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    Some(Located {
        value: if norm.is_empty() {
            ".".to_string()
        } else {
            norm.join("/")
        },
        pos: p.pos,
    })
}

/// `owners: {users, teams}` with Atlantis' leniency: teams may be bare slugs.
fn raw_owners(r: &mut yaml::Reader, node: &Node, key: &str) -> Option<RawOwners> {
    let map = r.mapping(node, &format!("`{key}`"))?;
    r.check_keys(
        map,
        &format!("in `{key}`"),
        &[("users", Known), ("teams", Known)],
    );
    let mut out = RawOwners::default();
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 100
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '[' | ']'))
    };
    if let Some(n) = map.get_node("users") {
        for u in r.one_or_many(n, "users").unwrap_or_default() {
            let login = u
                .value
                .strip_prefix('@')
                .unwrap_or(&u.value)
                .to_ascii_lowercase();
            if name_ok(&login) {
                out.users.push(Located {
                    value: login,
                    pos: u.pos,
                });
            } else {
                r.error(u.pos, format!("`{}` is not a GitHub login", u.value), None);
            }
        }
    }
    if let Some(n) = map.get_node("teams") {
        for t in r.one_or_many(n, "teams").unwrap_or_default() {
            let team = t
                .value
                .strip_prefix('@')
                .unwrap_or(&t.value)
                .to_ascii_lowercase();
            let ok = match team.split_once('/') {
                Some((o, s)) => name_ok(o) && name_ok(s),
                None => name_ok(&team),
            };
            if ok {
                out.teams.push(Located {
                    value: team,
                    pos: t.pos,
                });
            } else {
                r.error(
                    t.pos,
                    format!("`{}` is not a GitHub team", t.value),
                    Some("write `org/team-slug`, or the slug of a team of the repository's organisation".to_string()),
                );
            }
        }
    }
    Some(out)
}

/// Whether `path` (a file of the repository or server) belongs to the set: a `.rego` file that is
/// the set's `path` or lies below it. Test files (`_test.rego`) are read like conftest does;
/// their `test_` rules are never queried.
pub fn set_includes(set: &PolicySetConfig, path: &str) -> bool {
    if !path.ends_with(".rego") {
        return false;
    }
    let base = set.path.value.trim_end_matches('/');
    base == "."
        || path == base
        || path
            .strip_prefix(base)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// One policy file, as compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegoSource {
    pub path: String,
    pub text: String,
    pub version: RegoVersion,
    /// The file's package, without `data.` (`main`, `terraform.aws`).
    pub package: String,
    /// Where each conftest rule (`deny…`, `violation…`, `warn…`) is first written: line (1-based).
    pub rules: BTreeMap<String, usize>,
}

/// A policy set whose files all compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegoPolicySet {
    pub config: PolicySetConfig,
    pub sources: Vec<RegoSource>,
}

impl RegoPolicySet {
    /// Every namespace (package) of the set, sorted, without duplicates.
    pub fn namespaces(&self) -> Vec<String> {
        let mut ns: Vec<String> = self.sources.iter().map(|s| s.package.clone()).collect();
        ns.sort();
        ns.dedup();
        ns
    }

    /// Where `rule` of `namespace` is written (file, line), for reasons.
    fn rule_site(&self, namespace: &str, rule: &str) -> (String, usize) {
        self.sources
            .iter()
            .filter(|s| s.package == namespace)
            .find_map(|s| s.rules.get(rule).map(|l| (s.path.clone(), *l)))
            .unwrap_or_else(|| (self.config.path.value.clone(), 0))
    }
}

/// Conftest's failure and warning rule names.
fn rule_class(name: &str) -> Option<bool> {
    let suffix_ok = |rest: &str| {
        rest.is_empty()
            || rest.strip_prefix('_').is_some_and(|r| {
                r.split('_')
                    .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric()))
            })
    };
    for (prefix, failure) in [("deny", true), ("violation", true), ("warn", false)] {
        if let Some(rest) = name.strip_prefix(prefix) {
            if suffix_ok(rest) {
                return Some(failure);
            }
        }
    }
    None
}

/// Lines where conftest rules start (`deny[msg] {`, `deny contains msg if {`, `warn_x := ...`):
/// a rule name at the start of a line.
fn rule_lines(text: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        // Rule heads start at the beginning of a line; bodies are indented.
        let word: String = line
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if rule_class(&word).is_some() {
            out.entry(word).or_insert(i + 1);
        }
    }
    out
}

fn length_config() -> regorus::PolicyLengthConfig {
    regorus::PolicyLengthConfig::default()
}

fn new_engine(version: RegoVersion) -> regorus::Engine {
    let mut e = regorus::Engine::new();
    e.set_rego_v0(version == RegoVersion::V0);
    e.set_policy_length_config(length_config());
    e
}

/// A regorus error as `(line, column, message)` in `path`, when it names a position.
fn error_position(err: &str, path: &str) -> (usize, usize, String) {
    let message = err
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("error: "))
        .unwrap_or_else(|| err.lines().find(|l| !l.trim().is_empty()).unwrap_or(err))
        .trim()
        .to_string();
    let at = err.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("--> ")?;
        let rest = rest.strip_prefix(path).unwrap_or(rest);
        let mut parts = rest.trim_start_matches(':').split(':');
        let line = parts.next()?.parse().ok()?;
        let col = parts.next()?.parse().ok()?;
        Some((line, col))
    });
    let (line, col) = at.unwrap_or((0, 0));
    (line, col, message)
}

/// Parses one file in `version`; the package on success, the error text otherwise.
fn parse_as(path: &str, text: &str, version: RegoVersion) -> Result<String, String> {
    let mut e = new_engine(version);
    e.add_policy(path.to_string(), text.to_string())
        .map(|p| p.strip_prefix("data.").unwrap_or(&p).to_string())
        .map_err(|e| format!("{e:#}"))
}

/// Which dialect a file is written in: `import rego.v1` means v1; otherwise a file that parses as
/// v0 is v0 (where both parse, v0 is the meaning the author had: v1 files use `if`/`contains`,
/// which v0 does not parse without imports), else v1.
fn detect(path: &str, text: &str) -> Result<(RegoVersion, String), (RegoVersion, String)> {
    let says_v1 = text.lines().any(|l| {
        let l = l.trim();
        l == "import rego.v1"
            || l.starts_with("import rego.v1 ")
            || l.starts_with("import rego.v1#")
    });
    if says_v1 {
        return parse_as(path, text, RegoVersion::V1)
            .map(|p| (RegoVersion::V1, p))
            .map_err(|e| (RegoVersion::V1, e));
    }
    match parse_as(path, text, RegoVersion::V0) {
        Ok(p) => Ok((RegoVersion::V0, p)),
        Err(v0) => match parse_as(path, text, RegoVersion::V1) {
            Ok(p) => Ok((RegoVersion::V1, p)),
            Err(v1) => {
                // Report the error of the dialect the file looks written in.
                let looks_v1 = text
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .any(|w| w == "if" || w == "contains");
                Err(if looks_v1 {
                    (RegoVersion::V1, v1)
                } else {
                    (RegoVersion::V0, v0)
                })
            }
        },
    }
}

/// Compiles a policy set from its files (`(path, text)`: every file [`set_includes`] selects,
/// read from the base branch or the server by the app). Every syntax error is a diagnostic at
/// `file:line:col`; the set is returned only when all files compiled together.
pub fn compile_set<P: AsRef<str>, T: AsRef<str>>(
    config: &PolicySetConfig,
    files: &[(P, T)],
) -> (Option<RegoPolicySet>, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let mut sources = Vec::new();
    let mut paths: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_ref(), t.as_ref()))
        .filter(|(p, _)| set_includes(config, p))
        .collect();
    paths.sort();
    if paths.is_empty() {
        diags.push(
            Diagnostic::error(
                &config.file,
                config.pos.line,
                config.pos.column,
                format!(
                    "policy set `{}` has no .rego files at `{}`",
                    config.name, config.path.value
                ),
            )
            .with_hint("check `path`: a directory of .rego files, or one .rego file"),
        );
        return (None, diags);
    }
    for (path, text) in paths {
        let result = match config.rego_version {
            Some(v) => parse_as(path, text, v).map(|p| (v, p)).map_err(|e| (v, e)),
            None => detect(path, text),
        };
        match result {
            Ok((version, package)) => sources.push(RegoSource {
                path: path.to_string(),
                text: text.to_string(),
                version,
                package,
                rules: rule_lines(text),
            }),
            Err((version, err)) => {
                let (line, col, message) = error_position(&err, path);
                let how = match config.rego_version {
                    Some(_) => format!(
                        "read as Rego {} (`rego_version` of policy set `{}`)",
                        version.name(),
                        config.name
                    ),
                    None => format!(
                        "read as Rego {} (detected); set `rego_version` on policy set `{}` to choose",
                        version.name(),
                        config.name
                    ),
                };
                diags.push(
                    Diagnostic::error(path, line, col, format!("Rego: {message}")).with_hint(how),
                );
            }
        }
    }
    if !diags.is_empty() {
        return (None, diags);
    }
    // Files that parse alone can still conflict together (a rule defined twice incompatibly).
    let set = RegoPolicySet {
        config: config.clone(),
        sources,
    };
    // Evaluating `data` also runs every rule that does not depend on the input: bounded like an
    // evaluation, and a rule stopped here is not a compile error (evaluation reports it).
    if let Err(e) = engine_for(&set).and_then(|mut e| {
        e.set_input(regorus::Value::new_object());
        e.set_execution_timer_config(regorus::utils::limits::ExecutionTimerConfig {
            limit: COMPILE_CHECK_BUDGET,
            check_interval: NonZeroU32::new(64).expect("64 is not zero"),
        });
        e.eval_query("data".to_string(), false)
            .map(|_| ())
            .map_err(|e| format!("{e:#}"))
    }) {
        let (line, col, message) = error_position(&e, "");
        let at = set
            .sources
            .iter()
            .find(|s| e.contains(&s.path))
            .map_or(config.file.as_str(), |s| s.path.as_str());
        if line == 0 {
            // Not a compile error, e.g. a rule that fails on empty input: evaluation reports it.
        } else {
            diags.push(Diagnostic::error(at, line, col, format!("Rego: {message}")));
            return (None, diags);
        }
    }
    (Some(set), diags)
}

/// Wall-clock budget of the check, at compile time, that a set's files work together.
const COMPILE_CHECK_BUDGET: Duration = Duration::from_secs(1);

fn engine_for(set: &RegoPolicySet) -> Result<regorus::Engine, String> {
    let mut e = regorus::Engine::new();
    e.set_policy_length_config(length_config());
    for s in &set.sources {
        e.set_rego_v0(s.version == RegoVersion::V0);
        e.add_policy(s.path.clone(), s.text.clone())
            .map_err(|err| format!("{err:#}"))?;
    }
    Ok(e)
}

/// Which namespaces are queried (conftest's `--namespace` / `--all-namespaces`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Namespaces {
    All,
    Only(Vec<String>),
}

impl Default for Namespaces {
    /// conftest's default: `main`.
    fn default() -> Self {
        Namespaces::Only(vec!["main".to_string()])
    }
}

/// A conftest argument Sluice cannot honour, with the index of the argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConftestArgError {
    pub index: usize,
    pub message: String,
    pub hint: String,
}

impl Namespaces {
    /// Reads the `extra_args` of a `policy_check` step: `--namespace NS` (`-n`, `--namespace=NS`,
    /// repeatable), `--all-namespaces`. Other conftest flags change where policies come from or
    /// how files are read, which Sluice decides (the policy sets); they are refused.
    pub fn from_conftest_args(args: &[&str]) -> Result<Self, ConftestArgError> {
        let mut only = Vec::new();
        let mut all = false;
        let mut i = 0;
        while i < args.len() {
            let a = args[i].trim();
            let at = i;
            let err = move |message: String, hint: &str| ConftestArgError {
                index: at,
                message,
                hint: hint.to_string(),
            };
            // Atlantis' docs pass `"-p /path"` as one argument; split such pairs like a shell.
            let (flag, inline) = match a.split_once(['=', ' ']) {
                Some((f, v)) if f.starts_with('-') => (f, Some(v.trim())),
                _ => (a, None),
            };
            match flag {
                "--all-namespaces" => all = true,
                "--namespace" | "-n" => {
                    let value = match inline {
                        Some(v) => v.to_string(),
                        None => {
                            i += 1;
                            match args.get(i) {
                                Some(v) => v.trim().to_string(),
                                None => {
                                    return Err(err(
                                        format!("`{a}` needs a namespace"),
                                        "write `--namespace=NAME`",
                                    ));
                                }
                            }
                        }
                    };
                    if value.is_empty()
                        || !value.split('.').all(|p| {
                            !p.is_empty()
                                && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        })
                    {
                        return Err(err(
                            format!("`{value}` is not a Rego package name"),
                            "write the package as in its `package` line, e.g. `terraform.aws`",
                        ));
                    }
                    only.push(value);
                }
                "-p" | "--policy" => {
                    return Err(err(
                        format!(
                            "`{a}` is not supported: the policy set's `path` says where its policies are"
                        ),
                        "remove it; configure the files in `policy_sets`",
                    ));
                }
                _ => {
                    return Err(err(
                        format!("conftest argument `{a}` is not supported"),
                        "Sluice evaluates policies in-process and understands `--namespace NAME` and `--all-namespaces`",
                    ));
                }
            }
            i += 1;
        }
        Ok(if all {
            Namespaces::All
        } else if only.is_empty() {
            Namespaces::default()
        } else {
            Namespaces::Only(only)
        })
    }
}

/// Bounds on one evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegoLimits {
    /// Wall-clock budget of the interpreter (its own cooperative timer).
    pub time_budget: Duration,
    /// Largest plan JSON evaluated.
    pub max_input_bytes: usize,
}

impl Default for RegoLimits {
    fn default() -> Self {
        RegoLimits {
            time_budget: Duration::from_secs(10),
            max_input_bytes: 64 << 20,
        }
    }
}

/// One failure or warning of a set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegoFinding {
    pub namespace: String,
    /// `deny`, `warn_public_ports`, …
    pub rule: String,
    /// The rule's message (from the policy, often naming addresses from the plan).
    pub message: String,
    /// Where the rule is written.
    pub file: String,
    pub line: usize,
}

/// A set's result on one plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegoEvaluation {
    pub set: String,
    pub failures: Vec<RegoFinding>,
    pub warnings: Vec<RegoFinding>,
    /// Rules silenced by an `exception` (`namespace.rule`).
    pub exceptions: Vec<String>,
    /// Evaluation did not finish (time budget, input too large, a runtime error): the set fails.
    pub error: Option<String>,
}

impl RegoEvaluation {
    /// A result that did not come: the set fails, saying `why`.
    pub fn failed(set: &str, why: String) -> Self {
        RegoEvaluation {
            set: set.to_string(),
            failures: Vec::new(),
            warnings: Vec::new(),
            exceptions: Vec::new(),
            error: Some(why),
        }
    }
}

/// Evaluates `set` on a plan (`terraform show -json` text) in the chosen namespaces, within
/// `limits`. Never panics on policy content; every way it can go wrong is `error`.
pub fn evaluate_set(
    set: &RegoPolicySet,
    plan_json: &str,
    namespaces: &Namespaces,
    limits: &RegoLimits,
) -> RegoEvaluation {
    let name = &set.config.name;
    if plan_json.len() > limits.max_input_bytes {
        return RegoEvaluation::failed(
            name,
            format!(
                "the plan's JSON is {} bytes, more than the {} this policy set may read",
                plan_json.len(),
                limits.max_input_bytes
            ),
        );
    }
    let input = match regorus::Value::from_json_str(plan_json) {
        Ok(v) => v,
        Err(e) => return RegoEvaluation::failed(name, format!("the plan is not JSON: {e}")),
    };
    let mut engine = match engine_for(set) {
        Ok(e) => e,
        Err(e) => return RegoEvaluation::failed(name, e),
    };
    engine.set_input(input);
    engine.set_execution_timer_config(regorus::utils::limits::ExecutionTimerConfig {
        limit: limits.time_budget,
        check_interval: NonZeroU32::new(64).expect("64 is not zero"),
    });
    let data = match engine.eval_query("data".to_string(), false) {
        Ok(r) => r
            .result
            .first()
            .and_then(|q| q.expressions.first())
            .map(|e| serde_json::to_value(&e.value).unwrap_or(Json::Null))
            .unwrap_or(Json::Null),
        Err(e) => {
            let text = format!("{e:#}");
            let why = if text.contains("time limit")
                || text.contains("execution time")
                || text.contains("Time limit")
            {
                format!(
                    "evaluation took longer than {} ms and was stopped",
                    limits.time_budget.as_millis()
                )
            } else {
                let (_, _, message) = error_position(&text, "");
                format!("evaluation failed: {message}")
            };
            return RegoEvaluation::failed(name, why);
        }
    };
    let wanted: Vec<String> = match namespaces {
        Namespaces::All => set.namespaces(),
        Namespaces::Only(ns) => ns.clone(),
    };
    let mut out = RegoEvaluation {
        set: name.clone(),
        failures: Vec::new(),
        warnings: Vec::new(),
        exceptions: Vec::new(),
        error: None,
    };
    for ns in wanted {
        let mut doc = &data;
        for part in ns.split('.') {
            doc = doc.get(part).unwrap_or(&Json::Null);
        }
        let Some(rules) = doc.as_object() else {
            continue;
        };
        let excepted: Vec<&str> = rules
            .get("exception")
            .and_then(Json::as_array)
            .map(|outer| {
                outer
                    .iter()
                    .filter_map(Json::as_array)
                    .flatten()
                    .filter_map(Json::as_str)
                    .collect()
            })
            .unwrap_or_default();
        for (rule, value) in rules {
            let Some(failure) = rule_class(rule) else {
                continue;
            };
            let short = rule
                .strip_prefix("violation_")
                .or_else(|| rule.strip_prefix("deny_"))
                .or_else(|| rule.strip_prefix("warn_"))
                .unwrap_or(rule);
            if excepted.contains(&short) {
                out.exceptions.push(format!("{ns}.{rule}"));
                continue;
            }
            let (file, line) = set.rule_site(&ns, rule);
            let Some(items) = value.as_array() else {
                continue; // a boolean or anything else: conftest counts it as passed
            };
            for item in items {
                let message = match item {
                    Json::String(s) => s.clone(),
                    Json::Object(o) => match o.get("msg").and_then(Json::as_str) {
                        Some(m) => m.to_string(),
                        None => {
                            return RegoEvaluation::failed(
                                name,
                                format!(
                                    "rule `{ns}.{rule}` returned an object without a `msg` string"
                                ),
                            );
                        }
                    },
                    _ => continue,
                };
                let finding = RegoFinding {
                    namespace: ns.clone(),
                    rule: rule.clone(),
                    message,
                    file: file.clone(),
                    line,
                };
                if failure {
                    out.failures.push(finding);
                } else {
                    out.warnings.push(finding);
                }
            }
        }
    }
    out
}

/// The evaluation state a Rego policy carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegoPolicy {
    pub set: Arc<RegoPolicySet>,
    /// The result on the plan being decided on; `None` until the app attaches it.
    pub evaluation: Option<Arc<RegoEvaluation>>,
    /// The namespaces queried ([`namespaces_of`] the base configuration).
    pub namespaces: Namespaces,
}

/// The namespaces a repository's policy sets are queried in: `main`, plus every namespace the
/// `policy_check` steps of the configuration's workflows name (`--all-namespaces`: all). The
/// union over every workflow, not the project's own: querying more namespaces can only add
/// failures, so a project never escapes a rule another workflow asks for (fail closed).
pub fn namespaces_of(config: &crate::core::repo_config::RepoConfig) -> Namespaces {
    use crate::core::workflow::{BuiltinStep, Step};
    let mut only = vec!["main".to_string()];
    for w in &config.workflows {
        for step in &w.policy_check.steps {
            let Step::Builtin {
                step: BuiltinStep::PolicyCheck,
                extra_args,
                ..
            } = step
            else {
                continue;
            };
            let args: Vec<&str> = extra_args.iter().map(|a| a.value.as_str()).collect();
            match Namespaces::from_conftest_args(&args) {
                Ok(Namespaces::All) => return Namespaces::All,
                Ok(Namespaces::Only(ns)) => {
                    for n in ns {
                        if !only.contains(&n) {
                            only.push(n);
                        }
                    }
                }
                // The parser refused these; should one get here, query everything.
                Err(_) => return Namespaces::All,
            }
        }
    }
    Namespaces::Only(only)
}

/// The set as a [`Policy`]: every project and branch in scope (Atlantis applies policy sets to
/// every project of the repositories they are configured for), overridable by its owners (bare
/// team slugs placed in `org`, the repository's owner).
pub fn to_policy(set: &RegoPolicySet, org: &str) -> Policy {
    Policy {
        name: set.config.name.clone(),
        description: None,
        file: set.config.file.clone(),
        pos: set.config.pos,
        scope: Scope::default(),
        access: Vec::new(),
        approvals: None,
        rules: Vec::new(),
        on_failure: OnFailure::RequireOverride,
        owners: set.config.owners.resolve(org),
        rego: Some(RegoPolicy {
            set: Arc::new(set.clone()),
            evaluation: None,
            namespaces: Namespaces::default(),
        }),
    }
}

impl Policy {
    /// This policy with `evaluation` attached (a Rego policy's result on the plan in the
    /// `PolicyInput` it will be evaluated with). Other policies are returned unchanged.
    pub fn with_rego_evaluation(&self, evaluation: RegoEvaluation) -> Policy {
        let mut p = self.clone();
        if let Some(r) = &mut p.rego {
            r.evaluation = Some(Arc::new(evaluation));
        }
        p
    }

    /// Owners' overrides needed to let a failure pass.
    pub fn approve_count(&self) -> u32 {
        self.rego
            .as_ref()
            .map_or(1, |r| r.set.config.approve_count.max(1))
    }
}

/// The decision of a Rego policy (called by `evaluate` for policies with `rego`).
pub(super) fn decide(
    policy: &Policy,
    rego: &RegoPolicy,
    input: &PolicyInput,
    mut decision: Decision,
) -> Decision {
    if !matches!(input.stage, Stage::Plan | Stage::Apply) {
        return decision; // not applicable: Rego sets only judge plans
    }
    let Some(ev) = &rego.evaluation else {
        if input.plan.is_none() && input.stage == Stage::Plan {
            return decision; // before planning, there is nothing to judge yet
        }
        decision.reasons.push(reason(
            policy,
            "policy_check",
            ReasonKind::Plan,
            "the policy set was not evaluated on this plan; run plan again".to_string(),
            None,
        ));
        decision.outcome = super::eval::outcome(policy, input, &mut decision.reasons);
        return decision;
    };
    if let Some(why) = &ev.error {
        decision.reasons.push(reason(
            policy,
            "policy_check",
            ReasonKind::Plan,
            why.clone(),
            None,
        ));
    }
    for f in &ev.failures {
        decision.reasons.push(reason(
            policy,
            &f.rule,
            ReasonKind::Plan,
            code(&f.message),
            Some((&f.file, f.line)),
        ));
    }
    let failed = !decision.reasons.is_empty();
    for w in &ev.warnings {
        decision.reasons.push(reason(
            policy,
            &w.rule,
            ReasonKind::Note,
            format!("warning: {}", code(&w.message)),
            Some((&w.file, w.line)),
        ));
    }
    decision.outcome = if failed {
        super::eval::outcome(policy, input, &mut decision.reasons)
    } else if !ev.warnings.is_empty() {
        Outcome::Warn
    } else {
        Outcome::Pass
    };
    decision
}

fn reason(
    policy: &Policy,
    rule: &str,
    kind: ReasonKind,
    message: String,
    site: Option<(&str, usize)>,
) -> Reason {
    let (file, line, column) = match site {
        Some((f, l)) if l > 0 => (f.to_string(), l, 1),
        _ => (policy.file.clone(), policy.pos.line, policy.pos.column),
    };
    Reason {
        rule: rule.to_string(),
        kind,
        message,
        address: None,
        file,
        line,
        column,
    }
}
