//! Where in the configuration each planned change comes from: every `resource_changes[]`
//! address followed through its module calls to the file and lines of its `resource`/`data`
//! block, and of each `module` block on the way.
//!
//! Input is text the caller read (repository-relative path → content, for the project's dir and
//! its local module dirs, at the PR head and optionally at the base); output is plain values.
//! Blocks are found with `hcl-edit`'s spans (`hcl-rs` 0.18 re-exports it as `hcl::edit`; its
//! own `hcl::Body` carries no positions), after `core::hcl_scan` has checked the text against
//! the same bounds module detection uses (`limits.file_bytes`, `limits.hcl_depth`): the text
//! comes from a pull request. Callers run [`locate`] where detection runs (on a thread whose
//! stack holds the parser's deepest recursion at `limits.hcl_depth`).
//! Nothing here fails: an address that cannot be followed gets a [`Gap`] saying why (a registry
//! module, a module outside the repository, a file over the bounds or with a syntax error, a
//! block that is not there), and callers fall back to a file-level or summary mention.
//!
//! Objects whose configuration the PR removed (a deleted block or file) are looked up in the
//! base files, and come back with [`Revision::Base`]: their lines are on the diff's left side.

use std::collections::{BTreeMap, HashMap};

use hcl::edit::Span as _;
use hcl::edit::expr::Expression;
use hcl::edit::structure::{Block, BlockLabel, Body};
use serde::{Deserialize, Serialize};

use super::address::{Address, parse_address};
use crate::core::hcl_scan::{self, HclLimits, Refusal};
use crate::core::plan::{ModuleConfig, Plan, ResourceChange};
use crate::core::types::ProjectDir;

/// Which commit a location is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Revision {
    /// The PR's head: the configuration being planned.
    Head,
    /// The PR's base: configuration the PR removed.
    Base,
}

/// A block's place in a file. Lines are 1-based and inclusive.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BlockSpan {
    /// Repository-relative path.
    pub path: String,
    pub revision: Revision,
    /// The line of the block's first token (`resource`, `data`, `module`).
    pub start_line: u32,
    /// The line of its closing `}`.
    pub end_line: u32,
}

/// Why an address could not be followed all the way to its block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "gap", rename_all = "snake_case")]
pub enum Gap {
    /// The address is not one terraform prints.
    BadAddress { message: String },
    /// The module comes from a registry, Git, a URL...: its files are not in the PR.
    RemoteModule { module: String, source: String },
    /// A local `source` that leaves the repository.
    ModuleOutsideRepository { module: String, source: String },
    /// No `module "name"` block in the files of `dir`.
    ModuleCallNotFound { module: String, dir: String },
    /// No matching `resource`/`data` block in the files of `dir`.
    BlockNotFound { dir: String },
    /// Not found, and these files of `dir` could not be read: the block may be in one of them.
    Unread { dir: String, files: Vec<String> },
}

impl Gap {
    /// One line for people: why Sluice cannot point at the code.
    pub fn describe(&self) -> String {
        match self {
            Gap::BadAddress { message } => message.clone(),
            Gap::RemoteModule { module, source } => {
                format!("`{module}` comes from `{source}`, outside this repository")
            }
            Gap::ModuleOutsideRepository { module, source } => {
                format!("`{module}` comes from `{source}`, which leaves the repository")
            }
            Gap::ModuleCallNotFound { module, dir } => {
                format!("no `module` block for `{module}` in `{dir}`")
            }
            Gap::BlockNotFound { dir } => format!("its block is not in `{dir}`"),
            Gap::Unread { files, .. } => format!(
                "Sluice could not read {}",
                files
                    .iter()
                    .map(|f| format!("`{f}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// Where one resource change comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// The `module` blocks leading to the resource, outermost first: `calls[0]` (when present)
    /// is in the project's own files. Stops at the first call that could not be found.
    pub calls: Vec<BlockSpan>,
    /// The `resource`/`data` block.
    pub block: Option<BlockSpan>,
    /// Set when `block` is `None` or a call is missing.
    pub gap: Option<Gap>,
}

impl Location {
    /// The block in the project's own files that causes the change: the outermost module call,
    /// or the resource block of a root-module resource.
    pub fn root_anchor(&self) -> Option<&BlockSpan> {
        self.calls.first().or(self.block.as_ref())
    }
}

/// Why a `.tf` file was not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unread {
    /// Over the bounds, or structured in a way the pre-scan cannot follow (not parsed at all).
    Refused(Refusal),
    /// The parser rejected it.
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
}

impl std::fmt::Display for Unread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unread::Refused(r) => {
                let (line, column) = r.position();
                if line > 0 {
                    write!(f, "{line}:{column}: ")?;
                }
                write!(f, "{r}")
            }
            Unread::Syntax {
                line,
                column,
                message,
            } => write!(f, "{line}:{column}: HCL syntax error: {message}"),
        }
    }
}

/// A `.tf` file that was not read, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadFile {
    pub path: String,
    pub revision: Revision,
    pub why: Unread,
}

/// Where every resource change of a plan comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Locations {
    /// By `resource_changes[].address`.
    pub by_address: BTreeMap<String, Location>,
    /// Files that could not be read, each once.
    pub unread: Vec<UnreadFile>,
}

impl Locations {
    pub fn get(&self, address: &str) -> Option<&Location> {
        self.by_address.get(address)
    }
}

/// What [`locate`] reads.
#[derive(Debug, Clone, Copy)]
pub struct LocateInput<'a> {
    /// The project's dir (the root module).
    pub project_dir: &'a ProjectDir,
    /// Files at the PR head: at least the `.tf` files of the project dir and of the dirs
    /// [`module_dirs`] names. Other files are ignored.
    pub head: &'a BTreeMap<String, String>,
    /// The same at the base commit, to find configuration the PR removed; `None` to skip.
    pub base: Option<&'a BTreeMap<String, String>>,
    /// The bounds module detection uses (`Limits::hcl()` in the server's settings).
    pub bounds: HclLimits,
}

/// A local module the plan uses, and the repository dir its files are in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleDir {
    /// `module.app.module.dns`.
    pub module: String,
    pub dir: String,
}

/// The dirs of the local modules the plan's `configuration` calls (nested calls resolved from
/// their caller's dir), so the caller knows which files to read for [`locate`]. Registry and
/// other remote sources, and paths leaving the repository, are left out. A dir called from
/// several places is listed once per call.
pub fn module_dirs(project_dir: &ProjectDir, plan: &Plan) -> Vec<ModuleDir> {
    let mut out = Vec::new();
    let Some(config) = &plan.configuration else {
        return out;
    };
    // Iterative (a deep or malicious plan cannot exhaust the stack), depth first in call-name
    // order.
    fn calls<'p>(
        prefix: &str,
        dir: &str,
        module: &'p ModuleConfig,
    ) -> Vec<(String, String, &'p ModuleConfig)> {
        module
            .module_calls
            .iter()
            .rev()
            .filter_map(|(name, call)| {
                let child = resolve_source(dir, &call.source).ok().flatten()?;
                Some((format!("{prefix}module.{name}"), child, &call.module))
            })
            .collect()
    }
    let mut stack = Vec::new();
    stack.extend(calls("", project_dir.as_str(), &config.root_module));
    while let Some((module, dir, config)) = stack.pop() {
        stack.extend(calls(&format!("{module}."), &dir, config));
        out.push(ModuleDir { module, dir });
    }
    out
}

/// Follows every resource change of `plan` to its blocks.
pub fn locate(plan: &Plan, input: &LocateInput<'_>) -> Locations {
    let mut index = Index {
        input,
        dirs: HashMap::new(),
        unread: Vec::new(),
    };
    let mut by_address = BTreeMap::new();
    for rc in &plan.resource_changes {
        if by_address.contains_key(&rc.address) {
            continue;
        }
        let location = match parse_address(&rc.address) {
            Err(e) => Location {
                calls: Vec::new(),
                block: None,
                gap: Some(Gap::BadAddress {
                    message: e.to_string(),
                }),
            },
            Ok(address) => locate_one(plan, rc, &address, &mut index),
        };
        by_address.insert(rc.address.clone(), location);
    }
    Locations {
        by_address,
        unread: index.unread,
    }
}

fn locate_one(plan: &Plan, rc: &ResourceChange, address: &Address, index: &mut Index) -> Location {
    let head = follow(plan, address, Revision::Head, index);
    if head.gap.is_none() || !rc.change.actions.destroys() || index.input.base.is_none() {
        return head;
    }
    // The PR may have removed the block (or its file, or its module call): the base has it.
    let base = follow(plan, address, Revision::Base, index);
    if base.block.is_some() { base } else { head }
}

/// Walks the module calls of `address` in one revision.
fn follow(plan: &Plan, address: &Address, rev: Revision, index: &mut Index) -> Location {
    let mut dir = index.input.project_dir.as_str().to_string();
    let mut calls = Vec::new();
    let mut module_path = String::new();
    let names = address.module_names();
    for (depth, name) in names.iter().enumerate() {
        module_path.push_str(&format!("module.{name}"));
        let entry = index.dir(&dir, rev);
        let Some(call) = entry.modules.get(*name) else {
            let gap = match unread_gap(&dir, entry) {
                Some(g) => g,
                None => Gap::ModuleCallNotFound {
                    module: module_path.clone(),
                    dir: dir.clone(),
                },
            };
            return Location {
                calls,
                block: None,
                gap: Some(gap),
            };
        };
        calls.push(call.span.clone());
        // The plan's configuration says which source terraform used (head only: the base was
        // not planned); the block's own `source` otherwise.
        let planned = match rev {
            Revision::Head => plan
                .configuration
                .as_ref()
                .and_then(|c| c.module(&names[..=depth]))
                .and_then(|(_, call)| call)
                .map(|c| c.source.clone()),
            Revision::Base => None,
        };
        let Some(source) = planned.or_else(|| call.source.clone()) else {
            return Location {
                calls,
                block: None,
                gap: Some(Gap::ModuleCallNotFound {
                    module: module_path.clone(),
                    dir: dir.clone(),
                }),
            };
        };
        match resolve_source(&dir, &source) {
            Ok(Some(child)) => dir = child,
            Ok(None) => {
                return Location {
                    calls,
                    block: None,
                    gap: Some(Gap::RemoteModule {
                        module: module_path,
                        source,
                    }),
                };
            }
            Err(()) => {
                return Location {
                    calls,
                    block: None,
                    gap: Some(Gap::ModuleOutsideRepository {
                        module: module_path,
                        source,
                    }),
                };
            }
        }
        module_path.push('.');
    }
    let entry = index.dir(&dir, rev);
    let key = (
        address.block_keyword().to_string(),
        address.resource_type.clone(),
        address.name.clone(),
    );
    match entry.blocks.get(&key) {
        Some(span) => Location {
            calls,
            block: Some(span.clone()),
            gap: None,
        },
        None => Location {
            calls,
            block: None,
            gap: Some(unread_gap(&dir, entry).unwrap_or(Gap::BlockNotFound { dir })),
        },
    }
}

fn unread_gap(dir: &str, entry: &DirIndex) -> Option<Gap> {
    (!entry.unread.is_empty()).then(|| Gap::Unread {
        dir: dir.to_string(),
        files: entry.unread.clone(),
    })
}

/// `Ok(Some(dir))` for a local source (`./x`, `../x`), `Ok(None)` for anything else (registry,
/// Git, URLs), `Err` for a local path leaving the repository.
fn resolve_source(from_dir: &str, source: &str) -> Result<Option<String>, ()> {
    let local = source.starts_with("./")
        || source.starts_with("../")
        || source.starts_with(".\\")
        || source.starts_with("..\\")
        || source == "."
        || source == "..";
    if !local {
        return Ok(None);
    }
    let mut parts: Vec<&str> = if from_dir == "." {
        Vec::new()
    } else {
        from_dir.split('/').collect()
    };
    for seg in source.split(['/', '\\']) {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop().ok_or(())?;
            }
            s => parts.push(s),
        }
    }
    Ok(Some(if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    }))
}

struct Index<'a> {
    input: &'a LocateInput<'a>,
    dirs: HashMap<(Revision, String), DirIndex>,
    unread: Vec<UnreadFile>,
}

/// The top-level blocks of one dir's `.tf` files.
#[derive(Default)]
struct DirIndex {
    /// (`resource`|`data`|`ephemeral`, type, name) → span. The first one wins (terraform
    /// refuses duplicates anyway).
    blocks: HashMap<(String, String, String), BlockSpan>,
    modules: HashMap<String, ModuleBlock>,
    unread: Vec<String>,
}

struct ModuleBlock {
    span: BlockSpan,
    /// The literal `source`, when it is one.
    source: Option<String>,
}

impl Index<'_> {
    fn dir(&mut self, dir: &str, rev: Revision) -> &DirIndex {
        let key = (rev, dir.to_string());
        if !self.dirs.contains_key(&key) {
            let files = match rev {
                Revision::Head => Some(self.input.head),
                Revision::Base => self.input.base,
            };
            let built = build_dir(dir, rev, files, &self.input.bounds, &mut self.unread);
            self.dirs.insert(key.clone(), built);
        }
        &self.dirs[&key]
    }
}

fn build_dir(
    dir: &str,
    rev: Revision,
    files: Option<&BTreeMap<String, String>>,
    bounds: &HclLimits,
    unread: &mut Vec<UnreadFile>,
) -> DirIndex {
    let mut out = DirIndex::default();
    let Some(files) = files else {
        return out;
    };
    // Paths are sorted: a dir's files are one range (the root's are spread out, scanned once).
    let candidates: Box<dyn Iterator<Item = (&String, &String)>> = if dir == "." {
        Box::new(files.iter())
    } else {
        let prefix = format!("{dir}/");
        Box::new(
            files
                .range(prefix.clone()..)
                .take_while(move |(p, _)| p.starts_with(&prefix)),
        )
    };
    for (path, text) in candidates {
        if parent_dir(path) != dir || !(path.ends_with(".tf") || path.ends_with(".tofu")) {
            continue;
        }
        match parse(text, bounds) {
            Ok(body) => index_file(path, rev, text, &body, &mut out),
            Err(why) => {
                out.unread.push(path.clone());
                unread.push(UnreadFile {
                    path: path.clone(),
                    revision: rev,
                    why,
                });
            }
        }
    }
    out
}

fn parse(text: &str, bounds: &HclLimits) -> Result<Body, Unread> {
    hcl_scan::check(text, bounds).map_err(Unread::Refused)?;
    hcl::edit::parser::parse_body(text).map_err(|e| Unread::Syntax {
        line: e.location().line(),
        column: e.location().column(),
        message: e.message().to_string(),
    })
}

fn parent_dir(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[..i],
        None => ".",
    }
}

fn index_file(path: &str, rev: Revision, text: &str, body: &Body, out: &mut DirIndex) {
    let lines = LineIndex::new(text);
    for block in body.blocks() {
        let Some(span) = block_span(path, rev, block, &lines) else {
            continue;
        };
        let labels: Vec<&str> = block.labels.iter().map(label_str).collect();
        match (block.ident.as_str(), labels.as_slice()) {
            (kind @ ("resource" | "data" | "ephemeral"), [ty, name]) => {
                out.blocks
                    .entry((kind.to_string(), ty.to_string(), name.to_string()))
                    .or_insert(span);
            }
            ("module", [name]) => {
                let source = block
                    .body
                    .get_attribute("source")
                    .and_then(|a| match &a.value {
                        Expression::String(s) => Some(s.value().to_string()),
                        _ => None,
                    });
                out.modules
                    .entry(name.to_string())
                    .or_insert(ModuleBlock { span, source });
            }
            _ => {}
        }
    }
}

fn label_str(label: &BlockLabel) -> &str {
    match label {
        BlockLabel::Ident(i) => i.as_str(),
        BlockLabel::String(s) => s.as_str(),
    }
}

fn block_span(path: &str, rev: Revision, block: &Block, lines: &LineIndex) -> Option<BlockSpan> {
    // The identifier's span starts at the keyword; the block's own may include leading
    // comments.
    let whole = block.span()?;
    let start = block.ident.span().map_or(whole.start, |s| s.start);
    Some(BlockSpan {
        path: path.to_string(),
        revision: rev,
        start_line: lines.line(start),
        end_line: lines.line(whole.end.saturating_sub(1).max(start)),
    })
}

/// Byte offset → 1-based line.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    fn line(&self, offset: usize) -> u32 {
        let n = self.starts.partition_point(|&s| s <= offset);
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::core::plan::parse_plan_json;

    /// The `module_replace` fixture's files under `envs/prod/`, at head and base.
    pub(crate) fn fixture_files() -> (BTreeMap<String, String>, BTreeMap<String, String>) {
        let head = [
            (
                "main.tf",
                include_str!("../../../tests/fixtures/plans/src/module_replace/main.tf"),
            ),
            (
                "modules/app/main.tf",
                include_str!(
                    "../../../tests/fixtures/plans/src/module_replace/modules/app/main.tf"
                ),
            ),
            (
                "modules/app/cache.tf",
                include_str!(
                    "../../../tests/fixtures/plans/src/module_replace/modules/app/cache.tf"
                ),
            ),
            (
                "modules/dns/main.tf",
                include_str!(
                    "../../../tests/fixtures/plans/src/module_replace/modules/dns/main.tf"
                ),
            ),
            (
                "modules/bucket/main.tf",
                include_str!(
                    "../../../tests/fixtures/plans/src/module_replace/modules/bucket/main.tf"
                ),
            ),
        ];
        let base = [
            (
                "main.tf",
                include_str!("../../../tests/fixtures/plans/src/module_replace/seed/main.tf"),
            ),
            (
                "legacy.tf",
                include_str!("../../../tests/fixtures/plans/src/module_replace/seed/legacy.tf"),
            ),
            (
                "modules/app/main.tf",
                include_str!(
                    "../../../tests/fixtures/plans/src/module_replace/seed/modules/app/main.tf"
                ),
            ),
            (
                "modules/app/cache.tf",
                include_str!(
                    "../../../tests/fixtures/plans/src/module_replace/seed/modules/app/cache.tf"
                ),
            ),
            (
                "modules/dns/main.tf",
                include_str!(
                    "../../../tests/fixtures/plans/src/module_replace/seed/modules/dns/main.tf"
                ),
            ),
            (
                "modules/bucket/main.tf",
                include_str!(
                    "../../../tests/fixtures/plans/src/module_replace/seed/modules/bucket/main.tf"
                ),
            ),
        ];
        let map = |files: &[(&str, &str)]| {
            files
                .iter()
                .map(|(p, t)| (p.to_string(), t.to_string()))
                .collect()
        };
        (map(&head), map(&base))
    }

    /// The default bounds of the server's settings.
    pub(crate) fn limits() -> HclLimits {
        HclLimits {
            max_bytes: 1 << 20,
            max_depth: 100,
        }
    }

    pub(crate) fn fixture_plan() -> Plan {
        parse_plan_json(include_bytes!(
            "../../../tests/fixtures/plans/module_replace.json"
        ))
        .unwrap()
    }

    fn span(s: &BlockSpan) -> String {
        let rev = match s.revision {
            Revision::Head => "",
            Revision::Base => " (base)",
        };
        format!("{}:{}-{}{rev}", s.path, s.start_line, s.end_line)
    }

    pub(crate) fn show(locations: &Locations) -> String {
        let mut out = String::new();
        for (address, loc) in &locations.by_address {
            let calls: Vec<String> = loc.calls.iter().map(span).collect();
            out.push_str(&format!(
                "{address}\n  calls: [{}]\n  block: {}\n",
                calls.join(", "),
                loc.block.as_ref().map_or("-".to_string(), span)
            ));
            if let Some(gap) = &loc.gap {
                out.push_str(&format!("  gap: {}\n", gap.describe()));
            }
        }
        for u in &locations.unread {
            out.push_str(&format!(
                "unread {} ({:?}): {}\n",
                u.path, u.revision, u.why
            ));
        }
        out
    }

    fn check(
        plan: &Plan,
        dir: &str,
        head: &BTreeMap<String, String>,
        base: Option<&BTreeMap<String, String>>,
    ) -> String {
        let dir = ProjectDir::new(dir).unwrap();
        show(&locate(
            plan,
            &LocateInput {
                project_dir: &dir,
                head,
                base,
                bounds: limits(),
            },
        ))
    }

    #[test]
    fn module_resources_are_followed_to_the_module_file_and_the_call() {
        let (head, base) = fixture_files();
        let plan = fixture_plan();
        insta::assert_snapshot!(check(&plan, ".", &head, Some(&base)), @r#"
        data.null_data_source.release
          calls: []
          block: main.tf:19-23
        module.app.module.dns.null_resource.record
          calls: [main.tf:1-4, modules/app/main.tf:18-21]
          block: modules/dns/main.tf:5-9
        module.app.null_resource.cache[0]
          calls: [main.tf:1-4]
          block: modules/app/cache.tf:1-6
        module.app.null_resource.keep
          calls: [main.tf:1-4]
          block: modules/app/main.tf:12-16
        module.app.null_resource.server
          calls: [main.tf:1-4]
          block: modules/app/main.tf:5-10
        module.buckets["logs"].null_resource.bucket
          calls: [main.tf:6-11]
          block: modules/bucket/main.tf:9-14
        module.buckets["media"].null_resource.bucket
          calls: [main.tf:6-11]
          block: modules/bucket/main.tf:9-14
        null_resource.legacy
          calls: []
          block: legacy.tf:2-6 (base)
        null_resource.root_keep
          calls: []
          block: main.tf:13-17
        "#);
    }

    #[test]
    fn module_dirs_follow_nested_local_sources() {
        let plan = fixture_plan();
        let dirs = module_dirs(&ProjectDir::new("envs/prod").unwrap(), &plan);
        let got: Vec<String> = dirs
            .iter()
            .map(|d| format!("{} → {}", d.module, d.dir))
            .collect();
        assert_eq!(
            got,
            [
                "module.app → envs/prod/modules/app",
                "module.app.module.dns → envs/prod/modules/dns",
                "module.buckets → envs/prod/modules/bucket",
            ]
        );
        assert!(module_dirs(&ProjectDir::root(), &Plan::default()).is_empty());
    }

    #[test]
    fn sources_resolve_inside_the_repository_only() {
        let table = [
            (".", "./modules/x", Ok(Some("modules/x"))),
            ("envs/prod", "../../modules/x", Ok(Some("modules/x"))),
            ("envs/prod", "../../../x", Err(())),
            ("a", "./b/../c/./d", Ok(Some("a/c/d"))),
            ("a", "..", Ok(Some("."))),
            ("a", ".\\win\\mod", Ok(Some("a/win/mod"))),
            (".", "terraform-aws-modules/vpc/aws", Ok(None)),
            (".", "git::https://example.com/m.git", Ok(None)),
            (".", "/abs/path", Ok(None)),
        ];
        for (from, source, want) in table {
            assert_eq!(
                resolve_source(from, source),
                want.map(|o| o.map(str::to_string)),
                "{from} + {source}"
            );
        }
    }

    /// Everything that cannot be located comes back as a value saying why; nothing fails.
    #[test]
    fn fallbacks_say_why() {
        let plan = parse_plan_json(
            br#"{"resource_changes": [
              {"address": "module.vpc.aws_vpc.this[0]", "change": {"actions": ["delete", "create"]}},
              {"address": "module.escape.null_resource.x", "change": {"actions": ["delete"]}},
              {"address": "module.nocall.null_resource.x", "change": {"actions": ["delete"]}},
              {"address": "module.computed.null_resource.x", "change": {"actions": ["delete"]}},
              {"address": "null_resource.gone", "change": {"actions": ["delete"]}},
              {"address": "null_resource.broken", "change": {"actions": ["delete"]}},
              {"address": "module.deep.null_resource.x", "change": {"actions": ["update"]}},
              {"address": "weird address", "change": {"actions": ["update"]}}
            ]}"#,
        )
        .unwrap();
        let files: BTreeMap<String, String> = [
            ("p/main.tf", "module \"vpc\" {\n  source  = \"terraform-aws-modules/vpc/aws\"\n  version = \"5.0.0\"\n}\n\nmodule \"escape\" {\n  source = \"../../outside\"\n}\n\nmodule \"computed\" {\n  source = local.src\n}\n"),
            ("p/broken.tf", "resource \"null_resource\" \"broken\" {\n  triggers = {\n"),
            ("p/deep.tf", &format!("module \"deep\" {{\n  source = \"./deep\"\n}}\nlocals {{\n  x = {}1{}\n}}\n", "[".repeat(500), "]".repeat(500))),
        ]
        .into_iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect();
        insta::assert_snapshot!(check(&plan, "p", &files, None), @"
        module.computed.null_resource.x
          calls: [p/main.tf:10-12]
          block: -
          gap: no `module` block for `module.computed` in `p`
        module.deep.null_resource.x
          calls: []
          block: -
          gap: Sluice could not read `p/broken.tf`, `p/deep.tf`
        module.escape.null_resource.x
          calls: [p/main.tf:6-8]
          block: -
          gap: `module.escape` comes from `../../outside`, which leaves the repository
        module.nocall.null_resource.x
          calls: []
          block: -
          gap: Sluice could not read `p/broken.tf`, `p/deep.tf`
        module.vpc.aws_vpc.this[0]
          calls: [p/main.tf:1-4]
          block: -
          gap: `module.vpc` comes from `terraform-aws-modules/vpc/aws`, outside this repository
        null_resource.broken
          calls: []
          block: -
          gap: Sluice could not read `p/broken.tf`, `p/deep.tf`
        null_resource.gone
          calls: []
          block: -
          gap: Sluice could not read `p/broken.tf`, `p/deep.tf`
        weird address
          calls: []
          block: -
          gap: address `weird address` is not a resource address: expected `.` at byte 5
        unread p/broken.tf (Head): 2:14: HCL syntax error: unclosed bracket, brace or parenthesis
        unread p/deep.tf (Head): 5:105: brackets, braces, parentheses, string templates and operators nest more than 100 levels deep here (limits.hcl_depth)
        ");

        // Without the unreadable files, each gap is specific.
        let readable: BTreeMap<String, String> = files
            .into_iter()
            .filter(|(p, _)| p == "p/main.tf")
            .collect();
        insta::assert_snapshot!(check(&plan, "p", &readable, None), @"
        module.computed.null_resource.x
          calls: [p/main.tf:10-12]
          block: -
          gap: no `module` block for `module.computed` in `p`
        module.deep.null_resource.x
          calls: []
          block: -
          gap: no `module` block for `module.deep` in `p`
        module.escape.null_resource.x
          calls: [p/main.tf:6-8]
          block: -
          gap: `module.escape` comes from `../../outside`, which leaves the repository
        module.nocall.null_resource.x
          calls: []
          block: -
          gap: no `module` block for `module.nocall` in `p`
        module.vpc.aws_vpc.this[0]
          calls: [p/main.tf:1-4]
          block: -
          gap: `module.vpc` comes from `terraform-aws-modules/vpc/aws`, outside this repository
        null_resource.broken
          calls: []
          block: -
          gap: its block is not in `p`
        null_resource.gone
          calls: []
          block: -
          gap: its block is not in `p`
        weird address
          calls: []
          block: -
          gap: address `weird address` is not a resource address: expected `.` at byte 5
        ");
    }

    /// A file the PR deletes: without the base files, the destroyed resource has no place; with
    /// them, it is found on the base side.
    #[test]
    fn configuration_removed_by_the_pr_is_found_in_the_base() {
        let (head, base) = fixture_files();
        let plan = fixture_plan();
        let without = check(&plan, ".", &head, None);
        assert!(
            without.contains(
                "null_resource.legacy\n  calls: []\n  block: -\n  gap: its block is not in `.`\n"
            ),
            "{without}"
        );
        let with = check(&plan, ".", &head, Some(&base));
        assert!(with.contains("block: legacy.tf:2-6 (base)"), "{with}");
    }

    #[test]
    fn blocks_in_odd_layouts() {
        let plan = parse_plan_json(
            br#"{"resource_changes": [
              {"address": "a.one", "change": {"actions": ["delete"]}},
              {"address": "a.two", "change": {"actions": ["delete"]}},
              {"address": "data.a.three", "change": {"actions": ["read"]}},
              {"address": "a.three", "change": {"actions": ["delete"]}}
            ]}"#,
        )
        .unwrap();
        let files: BTreeMap<String, String> = [
            ("x/one.tf", "# comment above\n/* and a\nblock comment */\nresource \"a\" \"one\" { triggers = {} }\n"),
            ("x/two.tofu", "\n\nresource a two {\n\n}\n\ndata \"a\" \"three\" {\n}\n"),
            ("x/sub/three.tf", "resource \"a\" \"three\" {}\n"),
            ("x/notes.md", "resource \"a\" \"three\" {}\n"),
        ]
        .into_iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect();
        insta::assert_snapshot!(check(&plan, "x", &files, None), @r"
        a.one
          calls: []
          block: x/one.tf:4-4
        a.three
          calls: []
          block: -
          gap: its block is not in `x`
        a.two
          calls: []
          block: x/two.tofu:3-5
        data.a.three
          calls: []
          block: x/two.tofu:7-8
        ");
    }
}
