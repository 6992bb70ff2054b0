//! Validated value types shared by the whole crate: repository names, PR numbers, commit SHAs,
//! workspaces, project directories and names, engines.
//!
//! Each newtype checks its invariant in its constructor, so code holding one never re-validates.
//! Nothing here does I/O.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a value was rejected by one of the constructors below. The message is written for the
/// person who typed the value (a PR comment, a config file), not for a developer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub String);

fn invalid(msg: impl Into<String>) -> InvalidValue {
    InvalidValue(msg.into())
}

/// A point in time: milliseconds since the Unix epoch, UTC. Every timestamp Sluice stores or
/// compares (events, runs, jobs, plans, locks, head sightings) is one; the clock that produces
/// them lives at the edge (`adapters::clock`), never here. Serialised as the bare number.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct UnixMs(i64);

impl UnixMs {
    pub const fn new(ms: i64) -> UnixMs {
        UnixMs(ms)
    }

    /// The number of milliseconds since the epoch.
    pub const fn get(self) -> i64 {
        self.0
    }

    /// `ms` milliseconds later (earlier when negative), saturating.
    pub const fn plus_ms(self, ms: i64) -> UnixMs {
        UnixMs(self.0.saturating_add(ms))
    }

    /// `d` later, saturating.
    pub fn plus(self, d: std::time::Duration) -> UnixMs {
        self.plus_ms(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
}

impl fmt::Display for UnixMs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

/// `owner/name` of a GitHub repository. Compared case-insensitively, as GitHub does.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RepoName {
    owner: String,
    name: String,
}

impl RepoName {
    pub fn new(owner: &str, name: &str) -> Result<Self, InvalidValue> {
        let ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 100
                && s != "."
                && s != ".."
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        };
        if !ok(owner) || !ok(name) {
            return Err(invalid(format!(
                "`{owner}/{name}` is not a repository name (expected owner/name of letters, digits, '-', '_' or '.')"
            )));
        }
        Ok(RepoName {
            owner: owner.to_string(),
            name: name.to_string(),
        })
    }

    pub fn parse(full: &str) -> Result<Self, InvalidValue> {
        match full.split_once('/') {
            Some((owner, name)) => Self::new(owner, name),
            None => Err(invalid(format!(
                "`{full}` is not a repository name (expected owner/name)"
            ))),
        }
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn full(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }
}

impl PartialEq for RepoName {
    fn eq(&self, other: &Self) -> bool {
        self.owner.eq_ignore_ascii_case(&other.owner) && self.name.eq_ignore_ascii_case(&other.name)
    }
}
impl Eq for RepoName {}

impl std::hash::Hash for RepoName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.owner.to_ascii_lowercase().hash(state);
        self.name.to_ascii_lowercase().hash(state);
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

impl TryFrom<String> for RepoName {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<RepoName> for String {
    fn from(r: RepoName) -> String {
        r.full()
    }
}

/// A pull request number (always positive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PrNumber(u64);

impl PrNumber {
    pub fn new(n: u64) -> Result<Self, InvalidValue> {
        if n == 0 {
            return Err(invalid("pull request numbers start at 1"));
        }
        Ok(PrNumber(n))
    }

    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for PrNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A full git commit id: 40 (SHA-1) or 64 (SHA-256) lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CommitSha(String);

impl CommitSha {
    pub fn new(s: &str) -> Result<Self, InvalidValue> {
        let s = s.trim();
        if (s.len() == 40 || s.len() == 64) && s.chars().all(|c| c.is_ascii_hexdigit()) {
            Ok(CommitSha(s.to_ascii_lowercase()))
        } else {
            Err(invalid(format!("`{s}` is not a full commit SHA")))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 7-character form people read in comments.
    pub fn short(&self) -> &str {
        &self.0[..7]
    }
}

impl fmt::Display for CommitSha {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for CommitSha {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(&s)
    }
}

impl From<CommitSha> for String {
    fn from(c: CommitSha) -> String {
        c.0
    }
}

/// A Terraform workspace name: letters, digits, `-`, `_` and `.`, not starting with `-`, never
/// `.` or containing `..`. Stricter than terraform itself (which allows most URL-safe
/// characters) so that a name can never be a path, an option, markup or a mention.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Workspace(String);

impl Workspace {
    pub fn new(s: &str) -> Result<Self, InvalidValue> {
        let bad = |why: &str| Err(invalid(format!("workspace `{s}` is not allowed: {why}")));
        if s.is_empty() {
            return bad("it is empty");
        }
        if s.len() > 90 {
            return bad("it is longer than 90 characters");
        }
        if s == "." || s.contains("..") {
            return bad("it must not be `.` or contain `..`");
        }
        if s.starts_with('-') || s.starts_with('~') {
            return bad("it must not start with `-` or `~`");
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return bad(&format!(
                "it contains {c:?}; use letters, digits, '-', '_' and '.'"
            ));
        }
        Ok(Workspace(s.to_string()))
    }

    pub fn default_workspace() -> Self {
        Workspace("default".to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_default(&self) -> bool {
        self.0 == "default"
    }
}

impl Default for Workspace {
    fn default() -> Self {
        Self::default_workspace()
    }
}

impl fmt::Display for Workspace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Workspace {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(&s)
    }
}

impl From<Workspace> for String {
    fn from(w: Workspace) -> String {
        w.0
    }
}

/// A directory inside the repository, relative to its root, normalised: no leading `/` or `./`,
/// no trailing `/`, no `.` or empty segments, never `..`. The root itself is `.`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProjectDir(String);

impl ProjectDir {
    /// Normalises `s` (leading `/` and `./` are dropped: users write both to mean "from the repo
    /// root") and rejects anything that would leave the repository.
    pub fn new(s: &str) -> Result<Self, InvalidValue> {
        if s.chars().any(|c| c.is_control()) {
            return Err(invalid(format!(
                "directory `{}` contains control characters",
                s.escape_debug()
            )));
        }
        if s.contains('\\') {
            return Err(invalid(format!(
                "directory `{s}` contains `\\`; use `/` between directories"
            )));
        }
        let mut parts = Vec::new();
        for seg in s.split('/') {
            match seg {
                "" | "." => {}
                ".." => {
                    return Err(invalid(format!(
                        "directory `{s}` leaves the repository (`..` is not allowed)"
                    )));
                }
                other => parts.push(other),
            }
        }
        if parts.is_empty() {
            return Ok(ProjectDir(".".to_string()));
        }
        Ok(ProjectDir(parts.join("/")))
    }

    pub fn root() -> Self {
        ProjectDir(".".to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0 == "."
    }

    /// The path of `file` relative to this directory, when `file` is inside it.
    pub fn relative<'a>(&self, file: &'a str) -> Option<&'a str> {
        if self.is_root() {
            return Some(file);
        }
        file.strip_prefix(self.0.as_str())?.strip_prefix('/')
    }

    /// `dir/name`, or `name` for the root.
    pub fn join(&self, name: &str) -> String {
        if self.is_root() {
            name.to_string()
        } else {
            format!("{}/{}", self.0, name)
        }
    }
}

impl fmt::Display for ProjectDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ProjectDir {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(&s)
    }
}

impl From<ProjectDir> for String {
    fn from(d: ProjectDir) -> String {
        d.0
    }
}

/// A project's unique name within a repository: letters, digits, `-`, `_`, `.`, `/`, `:`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProjectName(String);

impl ProjectName {
    /// The longest name, in bytes: room for a derived name (a directory path and a workspace).
    pub const MAX_LEN: usize = 4096;

    /// A project name: what a configuration names a project, or what Sluice derives from its
    /// directory ([`ProjectName::derived`]) — so any directory a repository can hold (spaces,
    /// non-ASCII letters, `+`, `@`, `(`, a leading `-`, …), read back from storage or typed
    /// after `-p` (`-p=-edge` for a name that starts with `-`: the grammar reads a word after
    /// `-p` that starts with `-` as the next flag). Refused: empty, longer than
    /// [`ProjectName::MAX_LEN`] bytes, control characters, `\`, and bidirectional overrides
    /// (they make a name display as another). A configuration may not *choose* a name starting
    /// with `-` ([`ProjectName::chosen`]).
    pub fn new(s: &str) -> Result<Self, InvalidValue> {
        if s.is_empty() || s.len() > Self::MAX_LEN {
            return Err(invalid(format!(
                "a project name must have 1 to {} bytes",
                Self::MAX_LEN
            )));
        }
        if let Some(c) = s.chars().find(|c| {
            c.is_control()
                || *c == '\\'
                || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
        }) {
            return Err(invalid(format!(
                "project name `{s}` contains {c:?}, which no project name holds"
            )));
        }
        Ok(ProjectName(s.to_string()))
    }

    /// A name a configuration gives a project: [`ProjectName::new`], and not starting with `-`
    /// (only a directory's derived name may, for a directory that does).
    pub fn chosen(s: &str) -> Result<Self, InvalidValue> {
        if s.starts_with('-') {
            return Err(invalid(format!(
                "project name `{s}` must not start with `-`"
            )));
        }
        ProjectName::new(s)
    }

    /// The name Sluice gives a project that has none: its dir, plus `:workspace` when the
    /// workspace is not `default` (so two workspaces of one dir get distinct names).
    pub fn derived(dir: &ProjectDir, workspace: &Workspace) -> Self {
        let base = if dir.is_root() {
            "root".to_string()
        } else {
            dir.as_str().to_string()
        };
        if workspace.is_default() {
            ProjectName(base)
        } else {
            ProjectName(format!("{base}:{workspace}"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ProjectName {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(&s)
    }
}

impl From<ProjectName> for String {
    fn from(n: ProjectName) -> String {
        n.0
    }
}

/// Which infrastructure-as-code tool runs a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    #[default]
    Terraform,
    #[serde(alias = "tofu")]
    Opentofu,
}

impl Engine {
    /// The executable name looked up on PATH when no binary is configured.
    pub fn default_binary(self) -> &'static str {
        match self {
            Engine::Terraform => "terraform",
            Engine::Opentofu => "tofu",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Terraform => "terraform",
            Engine::Opentofu => "opentofu",
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What must hold before `apply` may run for a project (PRODUCT.md §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApplyRequirement {
    /// Approved by at least one reviewer other than the author (latest review per user).
    Approved,
    /// GitHub says the PR is mergeable (clean mergeable_state).
    Mergeable,
    /// The PR branch contains the base branch's current head.
    Undiverged,
}

impl ApplyRequirement {
    pub fn as_str(self) -> &'static str {
        match self {
            ApplyRequirement::Approved => "approved",
            ApplyRequirement::Mergeable => "mergeable",
            ApplyRequirement::Undiverged => "undiverged",
        }
    }
}

impl fmt::Display for ApplyRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_rules() {
        for ok in ["default", "prod", "eu-west-1", "a_b.c", "Staging2"] {
            assert!(Workspace::new(ok).is_ok(), "{ok} should be accepted");
        }
        for bad in [
            "", ".", "..", "a/b", "a\\b", "a..b", "-x", "~x", "$HOME", "a b", "a\tb", "a\nb",
            "a`b", "<b>", "@team", "a|b", "a\"b",
        ] {
            assert!(Workspace::new(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn project_dir_normalises_and_rejects_escapes() {
        let n = |s: &str| ProjectDir::new(s).map(|d| d.as_str().to_string());
        assert_eq!(n("envs/prod").unwrap(), "envs/prod");
        assert_eq!(n("./envs/prod/").unwrap(), "envs/prod");
        assert_eq!(n("/envs//prod").unwrap(), "envs/prod");
        assert_eq!(n(".").unwrap(), ".");
        assert_eq!(n("").unwrap(), ".");
        assert!(n("../x").is_err());
        assert!(n("envs/../../x").is_err());
        assert!(n("a\\b").is_err());
        assert!(n("a\u{0}b").is_err());
    }

    #[test]
    fn project_dir_relative() {
        let d = ProjectDir::new("envs/prod").unwrap();
        assert_eq!(d.relative("envs/prod/main.tf"), Some("main.tf"));
        assert_eq!(d.relative("envs/production/main.tf"), None);
        assert_eq!(ProjectDir::root().relative("main.tf"), Some("main.tf"));
    }

    #[test]
    fn repo_name_and_sha() {
        let r = RepoName::parse("Acme/Infra").unwrap();
        assert_eq!(r, RepoName::parse("acme/infra").unwrap());
        assert!(RepoName::parse("acme").is_err());
        assert!(RepoName::parse("acme/../x").is_err());
        assert!(CommitSha::new("abc").is_err());
        let sha = CommitSha::new(&"A".repeat(40)).unwrap();
        assert_eq!(sha.as_str(), "a".repeat(40));
        assert_eq!(sha.short(), "aaaaaaa");
    }

    #[test]
    fn derived_project_names() {
        let d = ProjectDir::new("envs/prod").unwrap();
        assert_eq!(
            ProjectName::derived(&d, &Workspace::default()).as_str(),
            "envs/prod"
        );
        let w = Workspace::new("blue").unwrap();
        assert_eq!(ProjectName::derived(&d, &w).as_str(), "envs/prod:blue");
        assert_eq!(
            ProjectName::derived(&ProjectDir::root(), &Workspace::default()).as_str(),
            "root"
        );
    }
}
