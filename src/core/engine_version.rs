//! Engine versions (PRODUCT.md §19), the pure part: a project's `terraform_version` or its
//! `required_version` constraints → one exact version out of those available; where a release
//! mirror keeps each version's archive, checksums and signature (HashiCorp's and OpenTofu's
//! layouts); reading a `SHA256SUMS` file. Downloading, signature verification and the shared
//! cache are the adapter's (it hands the texts in and acts on the answers).
//!
//! Constraints follow HashiCorp's `go-version` (what terraform uses for `required_version`):
//! `=`, `!=`, `>`, `>=`, `<`, `<=`, `~>` (pessimistic: `~> 1.2` is `>= 1.2, < 2.0`,
//! `~> 1.2.3` is `>= 1.2.3, < 1.3.0`, `~> 1` is `>= 1`), no operator meaning `=`, `,` meaning
//! "and". Pre-releases match only constraints that name a pre-release of the same version.

use std::cmp::Ordering;
use std::fmt;

use super::types::Engine;

/// A release version: numeric segments (missing ones are 0) and an optional pre-release.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version {
    /// Always three: `1.6` is `1.6.0`.
    pub segments: [u64; 3],
    /// How many segments were written (`~>` depends on it).
    pub written: usize,
    /// `beta1` of `1.7.0-beta1`; empty for a release.
    pub pre: String,
}

impl Version {
    /// Parses `1`, `1.6`, `1.6.2`, `v1.6.2`, `1.7.0-beta1` (build metadata `+x` is ignored).
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let t = t.strip_prefix('v').unwrap_or(t);
        let t = t.split_once('+').map_or(t, |(v, _)| v);
        let (core, pre) = match t.split_once('-') {
            Some((c, p)) => (c, p),
            None => (t, ""),
        };
        let parts: Vec<&str> = core.split('.').collect();
        let bad = || format!("`{s}` is not a version like `1.6.2`");
        if parts.is_empty()
            || parts.len() > 3
            || parts
                .iter()
                .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.len() > 9)
        {
            return Err(bad());
        }
        if t.contains('-')
            && (pre.is_empty()
                || !pre
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-'))
        {
            return Err(bad());
        }
        let mut segments = [0u64; 3];
        for (i, p) in parts.iter().enumerate() {
            segments[i] = p.parse().map_err(|_| bad())?;
        }
        Ok(Version {
            segments,
            written: parts.len(),
            pre: pre.to_string(),
        })
    }

    pub fn is_prerelease(&self) -> bool {
        !self.pre.is_empty()
    }
}

impl Ord for Version {
    /// Semantic version order: segments, then a pre-release before its release, pre-releases
    /// compared part by part (numbers numerically, below words).
    fn cmp(&self, other: &Self) -> Ordering {
        self.segments.cmp(&other.segments).then_with(|| {
            match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => {
                    let mut a = self.pre.split('.');
                    let mut b = other.pre.split('.');
                    loop {
                        match (a.next(), b.next()) {
                            (None, None) => return Ordering::Equal,
                            (None, Some(_)) => return Ordering::Less,
                            (Some(_), None) => return Ordering::Greater,
                            (Some(x), Some(y)) => {
                                let o = match (x.parse::<u64>(), y.parse::<u64>()) {
                                    (Ok(n), Ok(m)) => n.cmp(&m),
                                    (Ok(_), Err(_)) => Ordering::Less,
                                    (Err(_), Ok(_)) => Ordering::Greater,
                                    (Err(_), Err(_)) => x.cmp(y),
                                };
                                if o != Ordering::Equal {
                                    return o;
                                }
                            }
                        }
                    }
                }
            }
        })
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    /// Always three segments: `1.6.0`, `1.7.0-beta1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c] = self.segments;
        write!(f, "{a}.{b}.{c}")?;
        if !self.pre.is_empty() {
            write!(f, "-{}", self.pre)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    /// `~>`
    Pessimistic,
}

/// One `OP VERSION` of a constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub op: Op,
    pub version: Version,
}

impl Requirement {
    pub fn matches(&self, v: &Version) -> bool {
        let c = &self.version;
        // Pre-release rules (go-version `prereleaseCheck`).
        match (c.is_prerelease(), v.is_prerelease()) {
            (true, true) if c.segments != v.segments => return false,
            (false, true) => return false,
            _ => {}
        }
        match self.op {
            Op::Eq => v == c || (v.cmp(c) == Ordering::Equal),
            Op::Ne => v.cmp(c) != Ordering::Equal,
            Op::Gt => v > c,
            Op::Ge => v >= c,
            Op::Lt => v < c,
            Op::Le => v <= c,
            Op::Pessimistic => {
                if c.is_prerelease() != v.is_prerelease() || v < c {
                    return false;
                }
                // Every written segment but the last must be equal.
                c.segments[..c.written.saturating_sub(1)]
                    == v.segments[..c.written.saturating_sub(1)]
            }
        }
    }
}

/// A constraint: requirements that must all hold (`>= 1.5, < 2.0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    pub text: String,
    pub requirements: Vec<Requirement>,
}

impl Constraint {
    /// Parses a `required_version`-style constraint; the error is a sentence.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for part in text.split(',') {
            let p = part.trim();
            if p.is_empty() {
                return Err(format!("`{text}` has an empty part between commas"));
            }
            let (op, rest) = [
                ("~>", Op::Pessimistic),
                (">=", Op::Ge),
                ("<=", Op::Le),
                ("!=", Op::Ne),
                (">", Op::Gt),
                ("<", Op::Lt),
                ("=", Op::Eq),
            ]
            .into_iter()
            .find_map(|(sym, op)| p.strip_prefix(sym).map(|r| (op, r)))
            .unwrap_or((Op::Eq, p));
            let version =
                Version::parse(rest).map_err(|e| format!("in constraint `{text}`: {e}"))?;
            requirements.push(Requirement { op, version });
        }
        Ok(Constraint {
            text: text.trim().to_string(),
            requirements,
        })
    }

    pub fn matches(&self, v: &Version) -> bool {
        self.requirements.iter().all(|r| r.matches(v))
    }

    /// The one version an `= X` constraint names.
    pub fn exact(&self) -> Option<&Version> {
        match self.requirements.as_slice() {
            [
                Requirement {
                    op: Op::Eq,
                    version,
                },
            ] => Some(version),
            _ => None,
        }
    }
}

/// Why no version could be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("{0}")]
    Invalid(String),
    #[error("no available {engine} version satisfies {constraints}; available: {available}")]
    NoMatch {
        engine: &'static str,
        constraints: String,
        available: String,
    },
}

/// The version a project runs: the pin (`terraform_version`); else the newest available release (pre-releases only
/// when a constraint names one) that satisfies every `required_version`; else the newest
/// release. A pinned version is returned even if unavailable (the adapter downloads it or
/// refuses), but a pin that contradicts `required_version` is an error — terraform would refuse
/// to run.
pub fn resolve_version(
    engine: Engine,
    pinned: Option<&str>,
    required: &[String],
    available: &[Version],
) -> Result<Version, ResolveError> {
    let constraints: Vec<Constraint> = required
        .iter()
        .map(|c| Constraint::parse(c).map_err(ResolveError::Invalid))
        .collect::<Result<_, _>>()?;
    let show = |list: &[Version]| {
        if list.is_empty() {
            "none".to_string()
        } else {
            let mut v: Vec<String> = list.iter().map(ToString::to_string).collect();
            v.reverse();
            if v.len() > 8 {
                let more = v.len() - 8;
                v.truncate(8);
                v.push(format!("and {more} more"));
            }
            v.join(", ")
        }
    };
    let mut sorted = available.to_vec();
    sorted.sort();
    sorted.dedup();
    let binary = engine.default_binary();
    if let Some(pin) = pinned {
        let v = Version::parse(pin).map_err(ResolveError::Invalid)?;
        if let Some(c) = constraints.iter().find(|c| !c.matches(&v)) {
            return Err(ResolveError::Invalid(format!(
                "`terraform_version` {v} does not satisfy the configuration's `required_version` `{}`",
                c.text
            )));
        }
        return Ok(v);
    }
    let wants_pre = constraints
        .iter()
        .flat_map(|c| &c.requirements)
        .any(|r| r.version.is_prerelease());
    sorted
        .iter()
        .rev()
        .filter(|v| wants_pre || !v.is_prerelease())
        .find(|v| constraints.iter().all(|c| c.matches(v)))
        .cloned()
        .ok_or_else(|| ResolveError::NoMatch {
            engine: binary,
            constraints: if constraints.is_empty() {
                "any release".to_string()
            } else {
                constraints
                    .iter()
                    .map(|c| format!("`{}`", c.text))
                    .collect::<Vec<_>>()
                    .join(" and ")
            },
            available: show(&sorted),
        })
}

/// The `required_version` constraints of one configuration file of a module: the string value of
/// `required_version` in each top-level `terraform` block (`terraform { required_version =
/// ">= 1.5" }`). Only `.tf` and `.tofu` files count (the caller picks them); a computed value is
/// skipped, as terraform itself refuses it.
///
/// The text comes from a pull request: it is checked against `limits` first
/// ([`crate::core::hcl_scan`]) and only parsed within them. A file over the limits, or with a
/// syntax error, yields nothing — terraform reports its own error when it runs.
pub fn required_versions(hcl_text: &str, limits: &crate::core::hcl_scan::HclLimits) -> Vec<String> {
    if !hcl_text.contains("required_version")
        || crate::core::hcl_scan::check(hcl_text, limits).is_err()
    {
        return Vec::new();
    }
    let Ok(body) = hcl::edit::parser::parse_body(hcl_text) else {
        return Vec::new();
    };
    body.get_blocks("terraform")
        .filter_map(|b| match &b.body.get_attribute("required_version")?.value {
            hcl::edit::expr::Expression::String(s) => Some(s.value().trim().to_string()),
            _ => None,
        })
        .collect()
}

/// How a release mirror lays out a version's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MirrorLayout {
    /// `releases.hashicorp.com`: `{base}/terraform/{v}/terraform_{v}_{os}_{arch}.zip`,
    /// `…/terraform_{v}_SHA256SUMS`, `…/terraform_{v}_SHA256SUMS.sig` (detached OpenPGP).
    HashiCorp,
    /// OpenTofu's GitHub releases (and TofuDL mirrors):
    /// `{base}/v{v}/tofu_{v}_{os}_{arch}.zip`, `…/tofu_{v}_SHA256SUMS`,
    /// `…/tofu_{v}_SHA256SUMS.gpgsig` (detached OpenPGP; `.sig` there is a cosign signature).
    OpenTofu,
}

impl MirrorLayout {
    pub fn for_engine(engine: Engine) -> Self {
        match engine {
            Engine::Terraform => MirrorLayout::HashiCorp,
            Engine::Opentofu => MirrorLayout::OpenTofu,
        }
    }

    /// The public mirror of this layout.
    pub fn default_base(self) -> &'static str {
        match self {
            MirrorLayout::HashiCorp => "https://releases.hashicorp.com",
            MirrorLayout::OpenTofu => "https://github.com/opentofu/opentofu/releases/download",
        }
    }

    fn product(self) -> &'static str {
        match self {
            MirrorLayout::HashiCorp => "terraform",
            MirrorLayout::OpenTofu => "tofu",
        }
    }

    fn dir(self, base: &str, v: &Version) -> String {
        let base = base.trim_end_matches('/');
        match self {
            MirrorLayout::HashiCorp => format!("{base}/terraform/{v}"),
            MirrorLayout::OpenTofu => format!("{base}/v{v}"),
        }
    }

    /// The archive's file name (`terraform_1.6.2_linux_amd64.zip`).
    pub fn archive_name(self, v: &Version, os: &str, arch: &str) -> String {
        format!("{}_{v}_{os}_{arch}.zip", self.product())
    }

    pub fn sums_name(self, v: &Version) -> String {
        format!("{}_{v}_SHA256SUMS", self.product())
    }

    pub fn signature_name(self, v: &Version) -> String {
        match self {
            MirrorLayout::HashiCorp => format!("{}.sig", self.sums_name(v)),
            MirrorLayout::OpenTofu => format!("{}.gpgsig", self.sums_name(v)),
        }
    }

    pub fn archive_url(self, base: &str, v: &Version, os: &str, arch: &str) -> String {
        format!("{}/{}", self.dir(base, v), self.archive_name(v, os, arch))
    }

    pub fn sums_url(self, base: &str, v: &Version) -> String {
        format!("{}/{}", self.dir(base, v), self.sums_name(v))
    }

    pub fn signature_url(self, base: &str, v: &Version) -> String {
        format!("{}/{}", self.dir(base, v), self.signature_name(v))
    }

    /// The binary inside the archive.
    pub fn binary_name(self) -> &'static str {
        self.product()
    }
}

/// A `SHA256SUMS` file: `(lowercase hex digest, file name)` per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sha256Sums {
    pub entries: Vec<(String, String)>,
}

/// Most lines a `SHA256SUMS` file may have.
pub const MAX_SUMS_LINES: usize = 10_000;

impl Sha256Sums {
    /// Parses `sha256sum` output: `<64 hex digits><space><space or *><file name>` per line;
    /// blank lines are skipped, anything else is an error naming the line (1-based).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            if entries.len() >= MAX_SUMS_LINES {
                return Err(format!("more than {MAX_SUMS_LINES} entries"));
            }
            let bad = || format!("line {} is not `<sha256>  <file>`", i + 1);
            let (hex, rest) = line.split_at_checked(64).ok_or_else(bad)?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            let name = rest
                .strip_prefix("  ")
                .or_else(|| rest.strip_prefix(" *"))
                .ok_or_else(bad)?;
            if name.is_empty() || name.contains('/') || name.contains(char::is_control) {
                return Err(bad());
            }
            if entries.iter().any(|(_, n)| n == name) {
                return Err(format!("line {}: `{name}` is listed twice", i + 1));
            }
            entries.push((hex.to_ascii_lowercase(), name.to_string()));
        }
        Ok(Sha256Sums { entries })
    }

    /// The digest listed for `file`.
    pub fn digest_of(&self, file: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(_, n)| n == file)
            .map(|(h, _)| h.as_str())
    }

    /// Whether `actual` (hex, any case) is the digest listed for `file`; `Err` says why not.
    pub fn verify(&self, file: &str, actual: &str) -> Result<(), String> {
        match self.digest_of(file) {
            None => Err(format!(
                "`{file}` is not listed in the release's SHA256SUMS"
            )),
            Some(h) if h.eq_ignore_ascii_case(actual) => Ok(()),
            Some(h) => Err(format!(
                "`{file}` has SHA-256 {actual}, but the release's SHA256SUMS lists {h}"
            )),
        }
    }
}
