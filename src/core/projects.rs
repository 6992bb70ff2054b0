//! Which projects a repository has, and which of them a pull request affects.
//!
//! Input is a [`RepoSnapshot`] of the tree at the PR's head (built by the git adapter), the
//! optional [`RepoConfig`] and the list of changed files; output is a resolved [`Project`] list in
//! run order (`depends_on` first) plus diagnostics. This module owns the detection rules of
//! PRODUCT.md §5: project dirs, local-module tracking, `when_modified` globs, symlinks, and the
//! resolution of comment targets (`-p`, `-d`, `-w`). It must not read files, run git or parse the
//! config text (that is [`super::repo_config`]); it only reads HCL text handed to
//! [`module_sources`].
//!
//! It must stay fast on big monorepos (5,000 projects × 1,000 changed files in well under 100 ms):
//! everything is indexed once per call — dirs with Terraform files in a hash set, module callers
//! in a reverse map, `when_modified` globs grouped by their literal base directory and compiled
//! once per distinct set — and each changed file only walks its own ancestors.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use globset::{GlobSet, GlobSetBuilder};

use super::diag::Diagnostic;
use super::glob::{build_glob, is_glob};
use super::graph::{find_cycles, show_cycle, stable_topo_order};
use super::hcl_scan::{self, HclLimits};
use super::repo_config::{ConfigFormat, DirSpec, Pos, ProjectConfig, RepoConfig, anchor_pattern};
use super::target::{DirTarget, DirTargetError, Targets, select};
use super::types::{ApplyRequirement, Engine, ProjectDir, ProjectName, Workspace};

/// The tree at the PR's head commit, as the git adapter sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepoSnapshot {
    /// Every regular file, repo-relative, `/`-separated, normalised (no `.`/`..` segments).
    pub files: BTreeSet<String>,
    /// Every symlink: path → target exactly as stored in git (relative or absolute).
    pub symlinks: BTreeMap<String, String>,
    /// For each dir holding `.tf`/`.tofu` files: the raw `source` strings of its `module` blocks
    /// (from [`module_sources`]).
    pub module_calls: BTreeMap<ProjectDir, Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
    Renamed { from: String },
}

/// One entry of the PR's diff (base...head).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedFile {
    pub path: String,
    pub kind: ChangeKind,
}

impl ChangedFile {
    pub fn modified(path: impl Into<String>) -> Self {
        ChangedFile {
            path: path.into(),
            kind: ChangeKind::Modified,
        }
    }
}

/// A project as the rest of Sluice sees it: everything needed to lock, plan and apply it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Project {
    pub name: ProjectName,
    /// The dir terraform runs in, as configured (or detected). Always a real dir — an entry
    /// whose dir goes through a symlink is refused — so it is what locks, the base branch's
    /// rules and credentials key on.
    pub dir: ProjectDir,
    pub workspace: Workspace,
    pub engine: Engine,
    pub terraform_version: Option<String>,
    /// Plan automatically when a PR affects it.
    pub autoplan: bool,
    /// As configured, relative to `dir`. Empty for detected projects: they use the
    /// nearest-directory rule instead of globs.
    pub when_modified: Vec<String>,
    pub apply_requirements: Vec<ApplyRequirement>,
    pub depends_on: Vec<ProjectName>,
    pub env: BTreeMap<String, String>,
    /// Where the project's entry is in the config file; `None` for detected projects.
    pub config_pos: Option<Pos>,
    /// `drift:` from the configuration (the project's, else the top-level one): whether and
    /// when its drift is checked. Only the default branch's counts.
    #[serde(default)]
    pub drift: crate::core::drift::DriftSettings,
}

impl Project {
    /// A project found without configuration: defaults everywhere, named after its dir.
    pub fn detected(dir: ProjectDir, workspace: Workspace) -> Project {
        Project {
            name: ProjectName::derived(&dir, &workspace),
            dir,
            workspace,
            engine: Engine::default(),
            terraform_version: None,
            autoplan: true,
            when_modified: Vec::new(),
            apply_requirements: vec![ApplyRequirement::Approved],
            depends_on: Vec::new(),
            env: BTreeMap::new(),
            config_pos: None,
            drift: crate::core::drift::DriftSettings::default(),
        }
    }
}

/// The result of [`affected_projects`]: projects in run order, and what went wrong on the way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Detection {
    pub projects: Vec<Project>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Knobs for [`affected_projects_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetectOptions {
    /// Skip projects with autoplan disabled. True for autoplan on PR events; false for an
    /// explicit `plan` comment, which targets everything the change affects.
    pub respect_autoplan: bool,
}

impl Default for DetectOptions {
    fn default() -> Self {
        DetectOptions {
            respect_autoplan: true,
        }
    }
}

/// The `source` of every `module` block in one `.tf`/`.tofu` file, when it is a literal string
/// (anything computed is skipped without error: terraform itself requires a literal, and will say
/// so in the plan).
///
/// The text comes from a pull request: it is checked against `limits` first ([`hcl_scan`]), and
/// only parsed when it is within them. A file over the limits comes back as an **error**
/// diagnostic (Sluice does not know what the file calls); a syntax error as a **warning** — the
/// caller should keep going, terraform will report it in the plan.
pub fn module_sources(
    file: &str,
    hcl_text: &str,
    limits: &HclLimits,
) -> Result<Vec<String>, Diagnostic> {
    let hint = "Sluice could not read the module calls of this file, so changes to the modules it \
                uses may not trigger a plan; terraform will report the error";
    if let Err(refusal) = hcl_scan::check(hcl_text, limits) {
        let (line, column) = refusal.position();
        return Err(if refusal.is_bound() {
            unread_file(file, line, column, &refusal)
        } else {
            Diagnostic::warning(file, line, column, refusal.to_string()).with_hint(hint)
        });
    }
    // `hcl-edit` is the parser under `hcl-rs`; its tree is all module detection needs.
    let body = hcl::edit::parser::parse_body(hcl_text).map_err(|e| {
        Diagnostic::warning(
            file,
            e.location().line(),
            e.location().column(),
            format!("HCL syntax error: {}", e.message()),
        )
        .with_hint(hint)
    })?;
    Ok(body
        .get_blocks("module")
        .filter_map(|b| match &b.body.get_attribute("source")?.value {
            hcl::edit::expr::Expression::String(s) => Some(s.value().clone()),
            _ => None,
        })
        .collect())
}

/// The error diagnostic of a `.tf` file whose module calls Sluice did not read because it is over
/// a limit (`why` names it). Callers do not plan the projects in the file's directory.
pub fn unread_file(
    file: &str,
    line: usize,
    column: usize,
    why: &dyn std::fmt::Display,
) -> Diagnostic {
    Diagnostic::error(file, line, column, format!("not read: {why}")).with_hint(
        "Sluice cannot tell which modules this file calls, so the projects in its directory are \
         not planned: make the file smaller or flatter, or ask the Sluice operator to raise the \
         limit",
    )
}

/// Every project of the repository at this commit, in run order, with diagnostics (config
/// globs matching nothing, symlinks escaping the repository, module cycles, …).
pub fn all_projects(
    snap: &RepoSnapshot,
    config: Option<&RepoConfig>,
) -> (Vec<Project>, Vec<Diagnostic>) {
    let mut tree = Tree::new(snap);
    let entries = resolve_entries(&mut tree, config);
    let all: Vec<usize> = (0..entries.len()).collect();
    let projects = in_run_order(entries, &all);
    (projects, dedup(tree.diags))
}

/// The projects `changed` affects, respecting autoplan (see [`affected_projects_with`]).
pub fn affected_projects(
    snap: &RepoSnapshot,
    config: Option<&RepoConfig>,
    changed: &[ChangedFile],
) -> Detection {
    affected_projects_with(snap, config, changed, DetectOptions::default())
}

/// The projects `changed` affects, in run order (`depends_on` first, then by name).
///
/// * Without a `projects` list: each changed file maps to the nearest dir at or above it that
///   directly holds `.tf`/`.tofu` files; if that dir is a project, it is affected.
/// * With one: a project is affected when a changed path matches its `when_modified` globs
///   (relative to its dir; the last matching pattern wins, so `!x` excludes). In a `sluice.yaml`,
///   a file inside a nested project's dir counts only for the deepest configured project
///   containing it: a parent's pattern claims it only when it names that dir **explicitly**
///   — its literal part (the directories before the first segment with a glob character) reaches
///   the nested dir, as `dev/*.tf` or `dev/**` from `.` do and `**/*.tf` or `*/main.tf` do not
///   ([`NestedClaims`]). An `atlantis.yaml` keeps Atlantis' rule: every project whose patterns
///   match is affected, nested or not.
/// * In both: if the nearest Terraform dir of a changed file is a local module, every project
///   that uses it — directly or through other modules — is affected. This holds even when a
///   project sets its own `when_modified`: a module change that no plan showed is exactly the
///   surprise Sluice exists to prevent.
///
/// Paths inside hidden directories (`.github/`, `.terraform/`) never map to a project by the
/// nearest-dir rule. A rename counts for both its old and new path. A change to a symlink's
/// target inside the repo also counts as a change under the symlink's path.
pub fn affected_projects_with(
    snap: &RepoSnapshot,
    config: Option<&RepoConfig>,
    changed: &[ChangedFile],
    options: DetectOptions,
) -> Detection {
    let mut tree = Tree::new(snap);
    let entries = resolve_entries(&mut tree, config);
    let uses_globs = config.is_some_and(|c| c.projects.is_some());
    let globs = uses_globs.then(|| WhenModified::new(&entries, &mut tree.diags));
    let nested = config.map_or(NestedClaims::DeepestOnly, |c| NestedClaims::of(c.format));

    let mut by_dir: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        by_dir.entry(e.real_dir.as_str()).or_default().push(i);
    }

    let mut hit = vec![false; entries.len()];
    let mut changed_modules: BTreeSet<&str> = BTreeSet::new();
    let mut scratch = Scratch::default();
    let mut paths: Vec<String> = Vec::new();
    for change in changed {
        paths.clear();
        tree.expand_aliases(&change.path, &mut paths);
        if let ChangeKind::Renamed { from } = &change.kind {
            tree.expand_aliases(from, &mut paths);
        }
        for path in &paths {
            if let Some(globs) = &globs {
                let deepest = match nested {
                    NestedClaims::DeepestOnly => deepest_project_dir(path, &by_dir),
                    NestedClaims::EveryMatch => None,
                };
                globs.mark(path, deepest, &mut hit, &mut scratch);
            }
            if in_hidden_dir(path) {
                continue;
            }
            let Some(dir) = tree.nearest_tf_dir(path) else {
                continue;
            };
            if let Some(module) = tree.callers.get_key_value(dir).map(|(k, _)| k.as_str()) {
                changed_modules.insert(module);
            }
            if !uses_globs {
                for &i in by_dir.get(dir).map_or(&[][..], Vec::as_slice) {
                    hit[i] = true;
                }
            }
        }
    }

    // Walk from every changed module up through its callers; `seen` makes cycles terminate.
    let mut seen: HashSet<&str> = changed_modules.iter().copied().collect();
    let mut queue: VecDeque<&str> = changed_modules.into_iter().collect();
    while let Some(dir) = queue.pop_front() {
        for &i in by_dir.get(dir).map_or(&[][..], Vec::as_slice) {
            hit[i] = true;
        }
        for caller in tree.callers.get(dir).map_or(&[][..], Vec::as_slice) {
            if seen.insert(caller) {
                queue.push_back(caller);
            }
        }
    }

    let selected: Vec<usize> = (0..entries.len())
        .filter(|&i| hit[i] && (!options.respect_autoplan || entries[i].project.autoplan))
        .collect();
    drop(globs);
    drop(by_dir);
    Detection {
        projects: in_run_order(entries, &selected),
        diagnostics: dedup(tree.diags),
    }
}

/// Who a changed file inside a nested project's dir counts for, by `when_modified`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NestedClaims {
    /// `sluice.yaml`: the deepest configured project dir containing the file; a parent also when
    /// one of its patterns names that dir explicitly (its literal base dir is at or below it) or
    /// when it uses a dir there as a local module. With projects at `.` and `dev`, a change to
    /// `dev/main.tf` plans `dev` only, unless `.` lists `dev/*.tf` or calls `./dev`.
    DeepestOnly,
    /// `atlantis.yaml`: every project whose patterns match, as Atlantis does (its default
    /// `**/*.tf*` of a project at `.` matches every file of the repository).
    EveryMatch,
}

impl NestedClaims {
    /// The rule of a config file format.
    pub fn of(format: ConfigFormat) -> NestedClaims {
        match format {
            ConfigFormat::Sluice => NestedClaims::DeepestOnly,
            ConfigFormat::Atlantis => NestedClaims::EveryMatch,
        }
    }
}

/// The deepest dir at or above `path` (a file path) that is a configured project's real dir.
fn deepest_project_dir<'p>(path: &'p str, by_dir: &HashMap<&str, Vec<usize>>) -> Option<&'p str> {
    let mut dir = parent(path);
    loop {
        if by_dir.contains_key(dir) {
            return Some(dir);
        }
        if dir == "." {
            return None;
        }
        dir = parent(dir);
    }
}

/// True when `dir` is `ancestor` or below it (both normalised repo paths, `.` the root).
fn within(dir: &str, ancestor: &str) -> bool {
    ancestor == "."
        || dir == ancestor
        || dir
            .strip_prefix(ancestor)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Resolves the targets of a comment (`-p NAME`, `-d DIR`, `-w WS`) among `projects`, with
/// `-d` still as text (it is parsed here as the comment parser parses it). See
/// [`select_projects`].
pub fn find_project<'a>(
    projects: &'a [Project],
    name: Option<&ProjectName>,
    dir: Option<&str>,
    workspace: Option<&Workspace>,
) -> Result<Vec<&'a Project>, String> {
    let dir = match dir {
        None => None,
        Some(raw) => Some(DirTarget::parse(raw).map_err(|e| match e {
            DirTargetError::LeavesRepository => {
                format!("`-d {raw}` leaves the repository (`..` is not allowed)")
            }
            DirTargetError::Invalid(e) => e.0,
            DirTargetError::BadGlob { message, .. } => format!("`-d`: {message}"),
        })?),
    };
    let targets = Targets {
        project: name.cloned(),
        dir,
        workspace: workspace.cloned(),
    };
    select_projects(projects, &targets)
}

/// The projects `targets` picks among `projects` (`core::target::select`, the rule `apply` and
/// `approve_policies` use for saved plans too). No target selects them all. When a target picks
/// nothing, the error is a sentence for the PR comment naming what exists.
pub fn select_projects<'a>(
    projects: &'a [Project],
    targets: &Targets,
) -> Result<Vec<&'a Project>, String> {
    let found = select(projects, targets).map_err(|e| e.to_string())?;
    if !found.is_empty() || targets.is_all() {
        return Ok(found);
    }
    if let Some(name) = &targets.project {
        let names: Vec<&str> = projects.iter().map(|p| p.name.as_str()).collect();
        let lower = name.as_str().to_ascii_lowercase();
        let suggestion = names
            .iter()
            .map(|n| {
                (
                    strsim::damerau_levenshtein(&lower, &n.to_ascii_lowercase()),
                    n,
                )
            })
            .filter(|(d, _)| *d <= 2)
            .min_by_key(|(d, _)| *d)
            .map(|(_, n)| format!(" (did you mean `{n}`?)"))
            .unwrap_or_default();
        return Err(format!(
            "no project named `{name}`{suggestion}; {}",
            describe_projects(projects)
        ));
    }
    let what = match (&targets.dir, &targets.workspace) {
        (Some(d), Some(w)) => format!("in dir `{d}` with workspace `{w}`"),
        (Some(d), None) => format!("in dir `{d}`"),
        (None, Some(w)) => format!("with workspace `{w}`"),
        (None, None) => return Ok(found),
    };
    Err(format!(
        "no project {what}; {}",
        describe_projects(projects)
    ))
}

/// A deterministic monorepo with `projects` projects and `projects / 50` (at least 1) local
/// modules, for the detection benchmark and tests. Projects live at
/// `envs/{prod,staging,dev}/{region}/svc-NNNNN` with tf, tfvars, lock, template and README files;
/// modules at `modules/mod-NNNN`, where each module calls the previous one in chains of four
/// (`mod-0003` → `mod-0002` → `mod-0001` → `mod-0000`). Six of every seven projects call one
/// module chosen by `seed`; every fifth also calls registry and git modules (which must be
/// ignored). A few non-Terraform files sit outside any project.
pub fn synthetic_monorepo(projects: usize, seed: u64) -> RepoSnapshot {
    let modules = (projects / 50).max(1);
    let mut snap = RepoSnapshot::default();
    for f in [
        "README.md",
        "docs/architecture.md",
        ".github/workflows/ci.yml",
        "scripts/fmt.sh",
    ] {
        snap.files.insert(f.to_string());
    }
    for k in 0..modules {
        let dir = format!("modules/mod-{k:04}");
        for f in [
            "main.tf",
            "variables.tf",
            "outputs.tf",
            "templates/policy.json.tpl",
        ] {
            snap.files.insert(format!("{dir}/{f}"));
        }
        let mut calls = vec!["hashicorp/consul/aws".to_string()];
        if k % 4 != 0 {
            calls.push(format!("../mod-{:04}", k - 1));
        }
        snap.module_calls.insert(
            ProjectDir::new(&dir).expect("generated dir is valid"),
            calls,
        );
    }
    for i in 0..projects {
        let dir = synthetic_project_dir(i);
        for f in [
            "main.tf",
            "variables.tf",
            "terraform.tfvars",
            ".terraform.lock.hcl",
            "templates/user-data.sh.tpl",
            "README.md",
        ] {
            snap.files.insert(format!("{dir}/{f}"));
        }
        let mut calls = Vec::new();
        if i % 7 != 0 {
            let m = mix(seed, i as u64) % modules as u64;
            calls.push(format!("../../../../modules/mod-{m:04}"));
        }
        if i % 5 == 0 {
            calls.push("terraform-aws-modules/vpc/aws".to_string());
            calls.push("git::https://example.com/infra/modules.git//dns?ref=v1.2.0".to_string());
        }
        if !calls.is_empty() {
            snap.module_calls.insert(
                ProjectDir::new(&dir).expect("generated dir is valid"),
                calls,
            );
        }
    }
    snap
}

/// The dir of project `i` in [`synthetic_monorepo`].
pub fn synthetic_project_dir(i: usize) -> String {
    const ENVS: [&str; 3] = ["prod", "staging", "dev"];
    const REGIONS: [&str; 4] = ["eu-west-1", "us-east-1", "ap-south-1", "sa-east-1"];
    format!(
        "envs/{}/{}/svc-{i:05}",
        ENVS[i % ENVS.len()],
        REGIONS[(i / ENVS.len()) % REGIONS.len()]
    )
}

/// `count` distinct changed files drawn from `snap` by `seed` (deterministic): mostly
/// modifications of existing files, every tenth an addition, plus every twentieth a deletion
/// of a `.tf` file that no longer exists at head.
pub fn synthetic_changes(snap: &RepoSnapshot, count: usize, seed: u64) -> Vec<ChangedFile> {
    let files: Vec<&String> = snap.files.iter().collect();
    if files.is_empty() {
        return Vec::new();
    }
    let mut chosen: BTreeSet<usize> = BTreeSet::new();
    let mut out = Vec::with_capacity(count);
    let mut j: u64 = 0;
    while out.len() < count && j < (count as u64 + 1) * 20 {
        let idx = (mix(seed ^ 0x5eed, j) % files.len() as u64) as usize;
        j += 1;
        if !chosen.insert(idx) {
            continue;
        }
        let path = files[idx].clone();
        let n = out.len();
        if n % 20 == 19 {
            let dir = path.rsplit_once('/').map_or(".", |(d, _)| d);
            out.push(ChangedFile {
                path: format!("{dir}/removed-{n}.tf"),
                kind: ChangeKind::Deleted,
            });
            continue;
        }
        let kind = if n % 10 == 9 {
            ChangeKind::Added
        } else {
            ChangeKind::Modified
        };
        out.push(ChangedFile { path, kind });
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The tree index.

/// How many symlinks one path may go through before we call it a loop (Linux uses 40 too).
const MAX_SYMLINK_HOPS: usize = 40;

/// Where a path really is, once symlinks are followed.
#[derive(Debug, PartialEq, Eq)]
enum Resolved {
    Inside(String),
    /// Through `link` (whose target is `target`) the path leaves the repository.
    Outside {
        link: String,
        target: String,
    },
    Loop {
        link: String,
    },
}

impl Resolved {
    /// For diagnostics: how a path that is not [`Resolved::Inside`] goes wrong.
    fn how(&self) -> String {
        match self {
            Resolved::Inside(p) => format!("resolves to `{p}`"),
            Resolved::Outside { link, target } => {
                format!("goes through the symlink `{link}` → `{target}`")
            }
            Resolved::Loop { link } => format!("goes through a symlink loop at `{link}`"),
        }
    }
}

/// Follows every symlinked component of `path` (a normalised repo path) the way the OS would,
/// including `..` inside link targets, and reports whether the result stays in the repository.
fn resolve(symlinks: &BTreeMap<String, String>, path: &str) -> Resolved {
    if symlinks.is_empty() || path == "." {
        return Resolved::Inside(path.to_string());
    }
    let mut done: Vec<String> = Vec::new();
    let mut todo: VecDeque<String> = path.split('/').map(str::to_string).collect();
    let mut hops = 0;
    let mut last_link: Option<(String, String)> = None;
    while let Some(seg) = todo.pop_front() {
        match seg.as_str() {
            "" | "." => continue,
            ".." => {
                if done.pop().is_none() {
                    let (link, target) =
                        last_link.unwrap_or_else(|| (path.to_string(), String::new()));
                    return Resolved::Outside { link, target };
                }
                continue;
            }
            _ => done.push(seg),
        }
        let here = done.join("/");
        if let Some(target) = symlinks.get(&here) {
            hops += 1;
            if hops > MAX_SYMLINK_HOPS {
                return Resolved::Loop { link: here };
            }
            if target.starts_with('/') || target.contains('\\') {
                return Resolved::Outside {
                    link: here,
                    target: target.clone(),
                };
            }
            done.pop();
            for s in target.split('/').rev() {
                todo.push_front(s.to_string());
            }
            last_link = Some((here, target.clone()));
        }
    }
    if done.is_empty() {
        Resolved::Inside(".".to_string())
    } else {
        Resolved::Inside(done.join("/"))
    }
}

/// Where `path` (a normalised repo path) really is once the tree's `symlinks` are followed the
/// way the OS would (`..` in targets included): the real repo path, or how the path leaves the
/// repository (through an absolute or climbing link, or a loop).
pub fn real_path(symlinks: &BTreeMap<String, String>, path: &str) -> Result<String, String> {
    match resolve(symlinks, path) {
        Resolved::Inside(real) => Ok(real),
        other => Err(other.how()),
    }
}

/// The first component of `dir` (a normalised repo path) that is a symlink in the tree, with its
/// target as stored in git.
fn first_symlink<'a>(
    symlinks: &'a BTreeMap<String, String>,
    dir: &str,
) -> Option<(&'a str, &'a str)> {
    if symlinks.is_empty() || dir == "." {
        return None;
    }
    prefixes(dir).find_map(|(prefix, _)| {
        symlinks
            .get_key_value(prefix)
            .map(|(l, t)| (l.as_str(), t.as_str()))
    })
}

fn is_tf_file(path: &str) -> bool {
    [".tf", ".tofu", ".tf.json", ".tofu.json"]
        .iter()
        .any(|ext| path.ends_with(ext))
}

/// The dir part of a file path; `.` for files at the root.
fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or(".", |(d, _)| d)
}

/// True when a directory on the way to `path` is hidden (`.git/`, `.terraform/`, `.github/`).
/// The file name itself may start with a dot (`.terraform.lock.hcl` belongs to its project).
fn in_hidden_dir(path: &str) -> bool {
    let dir = parent(path);
    dir != "." && dir.split('/').any(|s| s.starts_with('.'))
}

/// Lexically joins a relative `source` onto `dir`; `None` when it climbs above the root.
fn join_relative(dir: &str, source: &str) -> Option<String> {
    let mut out: Vec<&str> = if dir == "." {
        Vec::new()
    } else {
        dir.split('/').collect()
    };
    for seg in source.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            s => out.push(s),
        }
    }
    Some(if out.is_empty() {
        ".".to_string()
    } else {
        out.join("/")
    })
}

struct Tree<'s> {
    snap: &'s RepoSnapshot,
    /// Real dirs that directly hold Terraform files (regular, or symlinks to regular files in
    /// the repository), outside hidden dirs.
    tf_dirs: HashSet<&'s str>,
    /// Dirs holding a Terraform file that is a symlink leaving the repository → how it leaves.
    escaping_tf: HashMap<&'s str, String>,
    /// Local module dir → the dirs whose module blocks call it. Its keys are the module dirs.
    callers: HashMap<String, Vec<String>>,
    /// Real path → symlinks inside the repository that point at it.
    aliases: HashMap<String, Vec<&'s str>>,
    /// Dir → its files only OpenTofu reads ([`opentofu_only_files`]). Empty in a repository
    /// without `.tofu` files, which then pays nothing for the engine rule.
    tofu_only: HashMap<&'s str, Vec<&'s str>>,
    /// Dir → the local module dirs its module blocks call (the reverse of `callers`).
    calls: HashMap<String, Vec<String>>,
    diags: Vec<Diagnostic>,
}

impl<'s> Tree<'s> {
    fn new(snap: &'s RepoSnapshot) -> Self {
        let mut tree = Tree {
            snap,
            tf_dirs: HashSet::new(),
            escaping_tf: HashMap::new(),
            callers: HashMap::new(),
            aliases: HashMap::new(),
            tofu_only: HashMap::new(),
            calls: HashMap::new(),
            diags: Vec::new(),
        };
        // Files come sorted, so a dir's files are mostly adjacent: skip re-inserting it.
        let mut last: &str = "";
        for f in &snap.files {
            if is_tf_file(f) {
                let dir = parent(f);
                if dir != last && !in_hidden_dir(f) {
                    tree.tf_dirs.insert(dir);
                    last = dir;
                }
            }
        }
        for link in snap.symlinks.keys() {
            match resolve(&snap.symlinks, link) {
                Resolved::Inside(real) => {
                    if is_tf_file(link) && !in_hidden_dir(link) && snap.files.contains(&real) {
                        tree.tf_dirs.insert(parent(link));
                    }
                    if real != *link {
                        tree.aliases.entry(real).or_default().push(link);
                    }
                }
                other => {
                    if is_tf_file(link) && !in_hidden_dir(link) {
                        tree.escaping_tf.insert(parent(link), other.how());
                    }
                }
            }
        }
        let exists = |f: &str| snap.files.contains(f) || snap.symlinks.contains_key(f);
        let tofu_files = snap
            .files
            .iter()
            .chain(snap.symlinks.keys())
            .map(String::as_str)
            .filter(|f| !in_hidden_dir(f));
        for f in opentofu_only_files(tofu_files, exists) {
            tree.tofu_only.entry(parent(f)).or_default().push(f);
        }
        for files in tree.tofu_only.values_mut() {
            files.sort_unstable();
        }
        tree.index_modules();
        tree
    }

    fn index_modules(&mut self) {
        let mut calls: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (dir, sources) in &self.snap.module_calls {
            let dir = dir.as_str();
            if dir.split('/').any(|s| s.starts_with('.') && s != ".") {
                continue;
            }
            for source in sources {
                // Terraform only treats `./` and `../` sources as local paths; registry, git,
                // http and other sources live outside the repository.
                if !(source.starts_with("./") || source.starts_with("../")) {
                    continue;
                }
                let outside = |diags: &mut Vec<Diagnostic>, why: String| {
                    diags.push(
                        Diagnostic::warning(
                            dir,
                            0,
                            0,
                            format!("module source `{source}` in `{dir}` {why}; ignored for change detection"),
                        )
                        .with_hint("local module sources must stay inside the repository"),
                    );
                };
                let Some(joined) = join_relative(dir, source.trim_end_matches('/')) else {
                    outside(&mut self.diags, "points outside the repository".to_string());
                    continue;
                };
                match resolve(&self.snap.symlinks, &joined) {
                    Resolved::Inside(module) => {
                        calls.entry(dir.to_string()).or_default().push(module)
                    }
                    other => outside(&mut self.diags, other.how()),
                }
            }
        }
        for cycle in find_cycles(&calls) {
            self.diags.push(
                Diagnostic::error(
                    &cycle[0],
                    0,
                    0,
                    format!("module cycle: {}", show_cycle(&cycle)),
                )
                .with_hint(
                    "terraform cannot load modules that call each other in a loop; plans of the \
                     projects using them will fail until the loop is broken",
                ),
            );
        }
        for (caller, modules) in &calls {
            for module in modules {
                self.callers
                    .entry(module.clone())
                    .or_default()
                    .push(caller.clone());
            }
        }
        self.calls = calls.into_iter().collect();
        for list in self.callers.values_mut() {
            list.sort_unstable();
            list.dedup();
        }
    }

    fn is_module(&self, dir: &str) -> bool {
        self.callers.contains_key(dir)
    }

    /// The files only OpenTofu reads in `dir` and in every local module it uses, transitively,
    /// sorted. Empty for nearly every project, and at once when the repository has none.
    fn tofu_only_files_of(&self, dir: &str) -> Vec<&'s str> {
        if self.tofu_only.is_empty() {
            return Vec::new();
        }
        let mut out: Vec<&'s str> = Vec::new();
        let mut seen: HashSet<&str> = HashSet::from([dir]);
        let mut todo: Vec<&str> = vec![dir];
        while let Some(d) = todo.pop() {
            out.extend(self.tofu_only.get(d).map_or(&[][..], Vec::as_slice));
            for m in self.calls.get(d).map_or(&[][..], Vec::as_slice) {
                if seen.insert(m) {
                    todo.push(m);
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The nearest dir at or above `path`'s dir that holds Terraform files.
    fn nearest_tf_dir<'p>(&self, path: &'p str) -> Option<&'p str> {
        let mut dir = parent(path);
        loop {
            if self.tf_dirs.contains(dir) {
                return Some(dir);
            }
            if dir == "." {
                return None;
            }
            dir = parent(dir);
        }
    }

    /// Pushes `path` and every other path that names the same file through an in-repo symlink.
    fn expand_aliases(&self, path: &str, out: &mut Vec<String>) {
        let start = out.len();
        out.push(path.to_string());
        if self.aliases.is_empty() {
            return;
        }
        let mut i = start;
        // Bounded: symlink chains are short, and a pathological tree must not blow up.
        while i < out.len() && out.len() - start < 64 {
            let p = out[i].clone();
            for (prefix, rest) in prefixes(&p) {
                for link in self.aliases.get(prefix).map_or(&[][..], Vec::as_slice) {
                    let alias = if rest.is_empty() {
                        (*link).to_string()
                    } else {
                        format!("{link}/{rest}")
                    };
                    if !out[start..].contains(&alias) {
                        out.push(alias);
                    }
                }
            }
            i += 1;
        }
    }
}

/// `a/b/c` → (`a`, `b/c`), (`a/b`, `c`), (`a/b/c`, ``).
fn prefixes(path: &str) -> impl Iterator<Item = (&str, &str)> {
    path.match_indices('/')
        .map(move |(i, _)| (&path[..i], &path[i + 1..]))
        .chain(std::iter::once((path, "")))
}

// ---------------------------------------------------------------------------------------------
// Resolving the project list.

struct Entry<'c> {
    project: Project,
    /// The engine the entry pins and where (`None`: chosen from the files, [`choose_engines`]).
    engine_pin: Option<(Engine, Pos)>,
    /// Where the project's files really are (after symlinks); what changes are matched against.
    real_dir: String,
    /// `when_modified`, anchored at the repository root.
    patterns: Vec<EntryPattern<'c>>,
}

/// One `when_modified` pattern, split into its literal base dir and the glob below it
/// (`../../modules/**/*.tf` from `envs/prod` → base `modules`, glob `**/*.tf`).
struct EntryPattern<'c> {
    excluded: bool,
    /// `None`: the entry's own `real_dir` (the common case, kept allocation-free because a big
    /// monorepo has tens of thousands of these).
    base: Option<String>,
    glob: Cow<'c, str>,
}

fn resolve_entries<'c>(tree: &mut Tree, config: Option<&'c RepoConfig>) -> Vec<Entry<'c>> {
    let entries = match config {
        Some(c) => match &c.projects {
            Some(list) => configured_entries(tree, c, list),
            None => {
                let mut entries = detected_entries(tree, c.autoplan);
                for e in &mut entries {
                    e.project.drift = c.drift.clone();
                }
                entries
            }
        },
        None => detected_entries(tree, true),
    };
    choose_engines(tree, config, entries)
}

/// The files among `files` (repo paths) that only OpenTofu reads: `x.tofu` without an `x.tf`
/// beside it, `x.tofu.json` without an `x.tf.json` (`exists` says whether a path is in the
/// tree). OpenTofu reads `.tf`, `.tf.json`, `.tofu` and `.tofu.json` files, and a `.tofu` file
/// replaces the `.tf` file of the same name (so a module can ship one file per engine);
/// terraform reads only `.tf` and `.tf.json`. So a directory holding such a file is either
/// OpenTofu configuration or, run by terraform, a plan that silently leaves part of it out.
/// Source: <https://opentofu.org/docs/language/files/> ("Extension Precedence").
pub fn opentofu_only_files<'a>(
    files: impl IntoIterator<Item = &'a str>,
    exists: impl Fn(&str) -> bool,
) -> Vec<&'a str> {
    files
        .into_iter()
        .filter(|f| {
            let twin = if let Some(stem) = f.strip_suffix(".tofu.json") {
                format!("{stem}.tf.json")
            } else if let Some(stem) = f.strip_suffix(".tofu") {
                format!("{stem}.tf")
            } else {
                return false;
            };
            // A file named just `.tofu` is no configuration file for either engine.
            !f.ends_with("/.tofu") && *f != ".tofu" && !exists(&twin)
        })
        .collect()
}

/// Sets each project's engine: the one its entry pins, else OpenTofu when its dir or a local
/// module it uses holds files only OpenTofu reads ([`opentofu_only_files`]), else terraform.
/// An entry that pins terraform for such a configuration is refused (terraform would plan
/// without those files, and propose to destroy what they declare), naming the files and the fix.
fn choose_engines<'c>(
    tree: &mut Tree,
    config: Option<&RepoConfig>,
    entries: Vec<Entry<'c>>,
) -> Vec<Entry<'c>> {
    let mut out = Vec::with_capacity(entries.len());
    for mut e in entries {
        let files = tree.tofu_only_files_of(&e.real_dir);
        e.project.engine = match (e.engine_pin, files.is_empty()) {
            (Some((engine, _)), true) => engine,
            (None, true) => Engine::Terraform,
            (Some((Engine::Opentofu, _)), false) | (None, false) => Engine::Opentofu,
            (Some((Engine::Terraform, at)), false) => {
                let (file, key) = match config {
                    Some(c) if c.format == ConfigFormat::Atlantis => {
                        (c.file.as_str(), "terraform_distribution")
                    }
                    Some(c) => (c.file.as_str(), "engine"),
                    None => (e.real_dir.as_str(), "engine"),
                };
                tree.diags.push(terraform_ignores_files(
                    file,
                    at,
                    &e.project.name,
                    key,
                    &files,
                ));
                continue;
            }
        };
        out.push(e);
    }
    out
}

/// The refusal of a project pinned to terraform whose configuration holds `files` (sorted)
/// that only OpenTofu reads.
fn terraform_ignores_files(
    file: &str,
    at: Pos,
    name: &ProjectName,
    key: &str,
    files: &[&str],
) -> Diagnostic {
    const SHOWN: usize = 5;
    let mut listed = files
        .iter()
        .take(SHOWN)
        .map(|f| format!("`{f}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if files.len() > SHOWN {
        listed.push_str(&format!(" and {} more", files.len() - SHOWN));
    }
    Diagnostic::error(
        file,
        at.line,
        at.column,
        format!(
            "project `{name}` sets `{key}: terraform`, but its configuration has files only \
             OpenTofu reads: {listed}; terraform would plan without them (and propose to \
             destroy what they declare), so the project is skipped"
        ),
    )
    .with_hint(format!(
        "write `{key}: opentofu` (or leave `{key}` out: such projects run with OpenTofu), or \
         give each file a terraform twin (`x.tf` beside `x.tofu`, which OpenTofu then ignores)"
    ))
}

/// Without a `projects` list: every dir with Terraform files that is not a local module.
fn detected_entries<'c>(tree: &mut Tree, autoplan: bool) -> Vec<Entry<'c>> {
    let mut dirs: Vec<&str> = tree
        .tf_dirs
        .iter()
        .copied()
        .filter(|d| !tree.is_module(d))
        .collect();
    dirs.sort_unstable();
    let mut out = Vec::with_capacity(dirs.len());
    for d in dirs {
        if let Some(how) = tree.escaping_tf.get(d) {
            let how = format!("holds a Terraform file that {how}");
            tree.diags.push(escape_diag(d, 0, 0, d, &how));
            continue;
        }
        let dir = match ProjectDir::new(d) {
            Ok(dir) => dir,
            Err(e) => {
                tree.diags.push(Diagnostic::warning(
                    d,
                    0,
                    0,
                    format!("not treated as a project: {e}"),
                ));
                continue;
            }
        };
        out.push(Entry {
            project: Project {
                autoplan,
                ..Project::detected(dir, Workspace::default())
            },
            engine_pin: None,
            real_dir: d.to_string(),
            patterns: Vec::new(),
        });
    }
    out
}

fn escape_diag(file: &str, line: usize, column: usize, dir: &str, how: &str) -> Diagnostic {
    Diagnostic::error(
        file,
        line,
        column,
        format!(
            "symlink escaping the repository: project dir `{dir}` {how}; the project is skipped"
        ),
    )
    .with_hint(
        "Sluice only plans code inside the repository; point the project at the real directory",
    )
}

/// A project dir that stays in the repository but goes through a symlink. Locks, the base
/// branch's requirements and policy scopes, and credentials are keyed by the dir terraform
/// really runs in; a second path to it would be a second key to the same state, so it is
/// refused rather than resolved (the message names the link and the real dir to use instead).
fn symlinked_dir_diag(
    file: &str,
    at: Pos,
    dir: &str,
    link: &str,
    target: &str,
    real: &str,
) -> Diagnostic {
    Diagnostic::error(
        file,
        at.line,
        at.column,
        format!(
            "project dir `{dir}` goes through the symlink `{link}` → `{target}` (it is really \
             `{real}`); project dirs must not go through symlinks, so the project is skipped"
        ),
    )
    .with_hint(format!(
        "Sluice locks, gates and gives credentials to the directory terraform really runs in; \
         write `dir: {real}`"
    ))
}

/// Puts the project's configured name in front of a diagnostic about its entry: with many
/// entries, the name is what people look for.
fn name_in(pc: &ProjectConfig, mut d: Diagnostic) -> Diagnostic {
    if let Some(name) = &pc.name {
        d.message = format!("project `{}`: {}", name.value, d.message);
    }
    d
}

fn configured_entries<'c>(
    tree: &mut Tree,
    config: &RepoConfig,
    list: &'c [ProjectConfig],
) -> Vec<Entry<'c>> {
    let file = config.file.as_str();
    let mut out: Vec<Entry> = Vec::new();
    let mut names: HashMap<ProjectName, Pos> = HashMap::new();
    // Real dir → workspaces of the explicit entries there.
    let mut exact_keys: HashMap<String, Vec<Workspace>> = HashMap::new();

    exact_entries(tree, file, list, &mut names, &mut exact_keys, &mut out);
    glob_entries(tree, file, list, &mut names, &exact_keys, &mut out);
    check_dependencies(tree, file, list, &mut out);
    out
}

/// The entries with an exact `dir`, into `out`; their names into `names`, and for each real
/// dir the workspaces they claim into `exact_keys`.
fn exact_entries<'c>(
    tree: &mut Tree,
    file: &str,
    list: &'c [ProjectConfig],
    names: &mut HashMap<ProjectName, Pos>,
    exact_keys: &mut HashMap<String, Vec<Workspace>>,
    out: &mut Vec<Entry<'c>>,
) {
    // Explicit dirs first, so they win over a glob that also matches them: a glob for the
    // common case plus explicit entries for the exceptions is the natural way to write it.
    for pc in list {
        let DirSpec::Exact(dir) = &pc.dir.value else {
            continue;
        };
        let name = pc.name.as_ref().map_or_else(
            || ProjectName::derived(dir, &pc.workspace),
            |n| n.value.clone(),
        );
        let at = pc.dir.pos;
        let real = match resolve(&tree.snap.symlinks, dir.as_str()) {
            Resolved::Inside(real) if real == dir.as_str() => real,
            Resolved::Inside(real) => {
                let (link, target) = first_symlink(&tree.snap.symlinks, dir.as_str())
                    .expect("a dir that resolves elsewhere goes through a symlink");
                tree.diags.push(name_in(
                    pc,
                    symlinked_dir_diag(file, at, dir.as_str(), link, target, &real),
                ));
                continue;
            }
            other => {
                tree.diags.push(name_in(
                    pc,
                    escape_diag(file, at.line, at.column, dir.as_str(), &other.how()),
                ));
                continue;
            }
        };
        if let Some(how) = tree.escaping_tf.get(real.as_str()) {
            let how = format!("holds a Terraform file that {how}");
            tree.diags.push(name_in(
                pc,
                escape_diag(file, at.line, at.column, dir.as_str(), &how),
            ));
            continue;
        }
        if !tree.tf_dirs.contains(real.as_str()) {
            tree.diags.push(
                Diagnostic::warning(
                    file,
                    at.line,
                    at.column,
                    format!("project `{name}`: dir `{dir}` has no .tf or .tofu files at this commit; skipped"),
                )
                .with_hint("remove the entry if the directory is gone for good"),
            );
            continue;
        }
        if let Some(first) = names.get(&name) {
            // Already an error from the parser; stay defensive for hand-built configs.
            tree.diags.push(Diagnostic::error(
                file,
                at.line,
                at.column,
                format!(
                    "project name `{name}` is used twice: at line {} and at line {}",
                    first.line, at.line
                ),
            ));
            continue;
        }
        names.insert(name.clone(), at);
        exact_keys
            .entry(real.clone())
            .or_default()
            .push(pc.workspace.clone());
        out.push(configured_entry(tree, file, pc, name, dir.clone(), real));
    }
}

/// The entries a glob `dir` expands to, into `out`, except the dirs and workspaces an exact
/// entry already claims.
fn glob_entries<'c>(
    tree: &mut Tree,
    file: &str,
    list: &'c [ProjectConfig],
    names: &mut HashMap<ProjectName, Pos>,
    exact_keys: &HashMap<String, Vec<Workspace>>,
    out: &mut Vec<Entry<'c>>,
) {
    let mut sorted_dirs: Vec<&str> = tree
        .tf_dirs
        .iter()
        .copied()
        .filter(|d| *d != "." && !tree.is_module(d))
        .collect();
    sorted_dirs.sort_unstable();
    for pc in list {
        let DirSpec::Glob(pattern) = &pc.dir.value else {
            continue;
        };
        let at = pc.dir.pos;
        let matcher = match build_glob(pattern) {
            Ok(g) => g.compile_matcher(),
            Err(e) => {
                tree.diags.push(Diagnostic::error(
                    file,
                    at.line,
                    at.column,
                    format!("dir {e}"),
                ));
                continue;
            }
        };
        let matched: Vec<&str> = sorted_dirs
            .iter()
            .copied()
            .filter(|d| matcher.is_match(d))
            .collect();
        if matched.is_empty() {
            tree.diags.push(
                Diagnostic::error(
                    file,
                    at.line,
                    at.column,
                    format!(
                        "dir glob `{pattern}` of the project at line {} matches no directory with .tf or .tofu files",
                        pc.pos.line
                    ),
                )
                .with_hint("`*` matches within one directory name and `**` across directories; remove the entry if those projects are gone"),
            );
            continue;
        }
        for d in matched {
            if exact_keys
                .get(d)
                .is_some_and(|ws| ws.contains(&pc.workspace))
            {
                continue;
            }
            if let Some(how) = tree.escaping_tf.get(d) {
                let how = format!("holds a Terraform file that {how}");
                tree.diags
                    .push(escape_diag(file, at.line, at.column, d, &how));
                continue;
            }
            let Ok(dir) = ProjectDir::new(d) else {
                continue;
            };
            let name = ProjectName::derived(&dir, &pc.workspace);
            if let Some(first) = names.get(&name) {
                tree.diags.push(
                    Diagnostic::warning(
                        file,
                        at.line,
                        at.column,
                        format!(
                            "`{d}` (workspace `{}`) is matched by the project entries at lines {} and {}; using the first",
                            pc.workspace, first.line, at.line
                        ),
                    )
                    .with_hint("make the globs disjoint"),
                );
                continue;
            }
            names.insert(name.clone(), at);
            out.push(configured_entry(tree, file, pc, name, dir, d.to_string()));
        }
    }
}

fn configured_entry<'c>(
    tree: &mut Tree,
    file: &str,
    pc: &'c ProjectConfig,
    name: ProjectName,
    dir: ProjectDir,
    real: String,
) -> Entry<'c> {
    let mut patterns = Vec::with_capacity(pc.when_modified.len());
    for p in &pc.when_modified {
        let (excluded, body) = match p.value.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, p.value.as_str()),
        };
        let needs_anchoring = body.starts_with('/')
            || body
                .split('/')
                .any(|s| s.is_empty() || s == "." || s == "..");
        if !needs_anchoring {
            // Plain downward patterns (`**/*.tf`, `data/*`) cannot leave the repository: split
            // them without building the anchored string.
            let (sub, glob) = split_base(body);
            let base = match (sub, real.as_str()) {
                (".", _) => None,
                (sub, ".") => Some(sub.to_string()),
                (sub, real) => Some(format!("{real}/{sub}")),
            };
            patterns.push(EntryPattern {
                excluded,
                base,
                glob: Cow::Borrowed(glob),
            });
            continue;
        }
        match anchor_pattern(&real, body) {
            Ok(anchored) => {
                let (base, glob) = split_base(&anchored);
                patterns.push(EntryPattern {
                    excluded,
                    base: Some(base.to_string()),
                    glob: Cow::Owned(glob.to_string()),
                });
            }
            Err(e) => tree.diags.push(Diagnostic::error(
                file,
                p.pos.line,
                p.pos.column,
                format!("project `{name}`: {e}"),
            )),
        }
    }
    Entry {
        project: Project {
            name,
            dir,
            workspace: pc.workspace.clone(),
            // Set by `choose_engines` once the entry's files are known.
            engine: Engine::default(),
            terraform_version: pc.terraform_version.clone(),
            autoplan: pc.autoplan,
            when_modified: pc.when_modified.iter().map(|w| w.value.clone()).collect(),
            apply_requirements: pc.apply_requirements.clone(),
            depends_on: pc.depends_on.iter().map(|d| d.value.clone()).collect(),
            env: pc.env.clone(),
            drift: pc.drift.clone(),
            config_pos: Some(pc.pos),
        },
        engine_pin: pc.engine.as_ref().map(|e| (e.value, e.pos)),
        real_dir: real,
        patterns,
    }
}

/// `depends_on` must name resolved projects and must not loop. The parser checks what it can;
/// glob-expanded names can only be checked here. Bad references are dropped, so ordering never
/// depends on a name that does not exist.
fn check_dependencies(
    tree: &mut Tree,
    file: &str,
    list: &[ProjectConfig],
    entries: &mut [Entry<'_>],
) {
    if list.iter().all(|pc| pc.depends_on.is_empty()) {
        return;
    }
    let known: BTreeSet<ProjectName> = entries.iter().map(|e| e.project.name.clone()).collect();
    for pc in list {
        for dep in &pc.depends_on {
            if !known.contains(&dep.value) {
                tree.diags.push(
                    Diagnostic::error(
                        file,
                        dep.pos.line,
                        dep.pos.column,
                        format!(
                            "`depends_on` names `{}`, which is not a project at this commit",
                            dep.value
                        ),
                    )
                    .with_hint(format!(
                        "projects: {}",
                        known
                            .iter()
                            .take(20)
                            .map(ProjectName::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                );
            }
        }
    }
    for e in entries.iter_mut() {
        e.project.depends_on.retain(|d| known.contains(d));
    }
    let graph: BTreeMap<ProjectName, Vec<ProjectName>> = entries
        .iter()
        .map(|e| (e.project.name.clone(), e.project.depends_on.clone()))
        .collect();
    for cycle in find_cycles(&graph) {
        let at = entries
            .iter()
            .find(|e| e.project.name == cycle[0])
            .and_then(|e| e.project.config_pos)
            .unwrap_or_default();
        tree.diags.push(Diagnostic::error(
            file,
            at.line,
            at.column,
            format!("dependency cycle: {}", show_cycle(&cycle)),
        ));
    }
}

/// The selected entries' projects, dependencies first, ties broken by name.
/// The selected entries' projects, dependencies first, ties broken by name. Consumes the
/// entries so projects are moved, not cloned (thousands of them in a big monorepo).
fn in_run_order(entries: Vec<Entry<'_>>, selected: &[usize]) -> Vec<Project> {
    let mut slots: Vec<Option<Project>> = entries.into_iter().map(|e| Some(e.project)).collect();
    let order: Vec<usize> = {
        let projects: Vec<&Project> = selected.iter().filter_map(|&i| slots[i].as_ref()).collect();
        if projects.iter().all(|p| p.depends_on.is_empty()) {
            // The common case needs no graph: just the name order.
            let mut order = selected.to_vec();
            order.sort_by(|&a, &b| {
                let name = |i: usize| slots[i].as_ref().map(|p| &p.name);
                name(a).cmp(&name(b))
            });
            order
        } else {
            let by_name: HashMap<&ProjectName, usize> = selected
                .iter()
                .filter_map(|&i| slots[i].as_ref().map(|p| (&p.name, i)))
                .collect();
            let nodes: BTreeSet<&ProjectName> = by_name.keys().copied().collect();
            stable_topo_order(&nodes, |n| {
                by_name
                    .get(n)
                    .and_then(|&i| slots[i].as_ref())
                    .map(|p| p.depends_on.iter().collect())
                    .unwrap_or_default()
            })
            .into_iter()
            .filter_map(|n| by_name.get(n).copied())
            .collect()
        }
    };
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// Drops repeated diagnostics (the same config line can be reported once per expanded dir or
/// per changed file), keeping the first of each in order.
fn dedup(diags: Vec<Diagnostic>) -> Vec<Diagnostic> {
    let mut seen: HashSet<String> = HashSet::with_capacity(diags.len());
    diags
        .into_iter()
        .filter(|d| seen.insert(format!("{d:?}")))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// `when_modified` matching.

/// All projects' `when_modified` patterns, grouped by literal base dir: a pattern anchored as
/// `envs/prod/**/*.tf` is stored under `envs/prod` as `**/*.tf`, so a changed file only consults
/// the groups of its own ancestors, and identical groups (the default patterns of thousands of
/// projects) share one compiled [`GlobSet`].
struct WhenModified<'e> {
    bases: HashMap<&'e str, Base>,
    sets: Vec<CompiledSet>,
    /// Per entry: whether it has an exclusion (then the last matching pattern decides).
    has_exclusion: Vec<bool>,
    /// Per entry: its real dir (for the nested-project rule).
    dirs: Vec<&'e str>,
}

struct Base {
    set: usize,
    /// For each pattern of the group: who uses it.
    users: Vec<Vec<PatternUse>>,
    /// For each pattern of the group without any glob character (`dev`, `main.tf`): the path it
    /// names, which reaches further than the group's base.
    literal: Vec<Option<String>>,
}

struct CompiledSet {
    set: GlobSet,
    /// Glob index in `set` → pattern index in the group (each pattern is compiled twice: as
    /// written, and with `/**` so that a pattern naming a directory covers what is inside).
    pattern_of: Vec<usize>,
}

#[derive(Clone, Copy)]
struct PatternUse {
    entry: usize,
    order: usize,
    excluded: bool,
}

#[derive(Default)]
struct Scratch {
    matches: Vec<usize>,
    last: HashMap<usize, (usize, bool)>,
}

/// `envs/prod/**/*.tf` → (`envs/prod`, `**/*.tf`); `**/*.tf` → (`.`, `**/*.tf`).
fn split_base(pattern: &str) -> (&str, &str) {
    let mut end = 0;
    for (i, _) in pattern.match_indices('/') {
        if is_glob(&pattern[..i]) {
            break;
        }
        end = i;
    }
    if end == 0 {
        (".", pattern)
    } else {
        (&pattern[..end], &pattern[end + 1..])
    }
}

impl<'e> WhenModified<'e> {
    fn new(entries: &'e [Entry<'_>], diags: &mut Vec<Diagnostic>) -> Self {
        #[derive(Default)]
        struct Group<'e> {
            patterns: Vec<&'e str>,
            users: Vec<Vec<PatternUse>>,
        }
        let mut groups: HashMap<&'e str, Group<'e>> = HashMap::with_capacity(entries.len());
        let mut has_exclusion = vec![false; entries.len()];
        let dirs = entries.iter().map(|e| e.real_dir.as_str()).collect();
        for (entry, e) in entries.iter().enumerate() {
            for (order, p) in e.patterns.iter().enumerate() {
                has_exclusion[entry] |= p.excluded;
                let base = p.base.as_deref().unwrap_or(e.real_dir.as_str());
                let glob: &'e str = &p.glob;
                let g = groups.entry(base).or_default();
                // Groups hold a handful of patterns: a linear scan beats hashing.
                let idx = match g.patterns.iter().position(|q| *q == glob) {
                    Some(i) => i,
                    None => {
                        g.patterns.push(glob);
                        g.users.push(Vec::new());
                        g.patterns.len() - 1
                    }
                };
                g.users[idx].push(PatternUse {
                    entry,
                    order,
                    excluded: p.excluded,
                });
            }
        }
        let mut compiled: HashMap<Vec<&str>, usize> = HashMap::new();
        let mut sets = Vec::new();
        let mut bases = HashMap::with_capacity(groups.len());
        for (base, g) in groups {
            let literal = g
                .patterns
                .iter()
                .map(|p| (!is_glob(p)).then(|| join_relative(base, p)).flatten())
                .collect();
            let set = match compiled.get(&g.patterns) {
                Some(&s) => s,
                None => {
                    sets.push(compile_group(&g.patterns, diags));
                    compiled.insert(g.patterns, sets.len() - 1);
                    sets.len() - 1
                }
            };
            bases.insert(
                base,
                Base {
                    set,
                    users: g.users,
                    literal,
                },
            );
        }
        WhenModified {
            bases,
            sets,
            has_exclusion,
            dirs,
        }
    }

    /// Marks in `hit` every entry whose patterns select `path`. With `deepest` (the deepest
    /// project dir containing `path`, under [`NestedClaims::DeepestOnly`]), a project whose dir
    /// lies above it counts the file only through a pattern whose literal base reaches
    /// `deepest`; its exclusions always count.
    fn mark(&self, path: &str, deepest: Option<&str>, hit: &mut [bool], scratch: &mut Scratch) {
        let root = std::iter::once((".", path));
        let ancestors = path
            .match_indices('/')
            .map(|(i, _)| (&path[..i], &path[i + 1..]));
        for (base, rest) in root.chain(ancestors) {
            let Some(b) = self.bases.get(base) else {
                continue;
            };
            let compiled = &self.sets[b.set];
            compiled.set.matches_into(rest, &mut scratch.matches);
            for &g in &scratch.matches {
                let pattern = compiled.pattern_of[g];
                // Does the pattern name the nested dir, or only match inside it by a glob?
                let generic = deepest.is_some_and(|d| {
                    !within(base, d) && !b.literal[pattern].as_deref().is_some_and(|l| within(l, d))
                });
                for u in &b.users[pattern] {
                    if generic && !u.excluded && self.is_parent_of(u.entry, deepest, path) {
                        continue;
                    }
                    if !self.has_exclusion[u.entry] {
                        hit[u.entry] = true;
                    } else {
                        let slot = scratch.last.entry(u.entry).or_insert((u.order, u.excluded));
                        if u.order >= slot.0 {
                            *slot = (u.order, u.excluded);
                        }
                    }
                }
            }
        }
        for (entry, (_, excluded)) in scratch.last.drain() {
            if !excluded {
                hit[entry] = true;
            }
        }
    }

    /// True when `entry`'s dir contains `path` but is not `deepest` (so lies above it).
    fn is_parent_of(&self, entry: usize, deepest: Option<&str>, path: &str) -> bool {
        let dir = self.dirs[entry];
        deepest.is_some_and(|d| d != dir) && within(parent(path), dir)
    }
}

fn compile_group(patterns: &[&str], diags: &mut Vec<Diagnostic>) -> CompiledSet {
    let mut builder = GlobSetBuilder::new();
    let mut pattern_of = Vec::new();
    for (i, p) in patterns.iter().enumerate() {
        let mut variants = vec![(*p).to_string()];
        if !p.ends_with("**") {
            variants.push(format!("{p}/**"));
        }
        for v in variants {
            match build_glob(&v) {
                Ok(g) => {
                    builder.add(g);
                    pattern_of.push(i);
                }
                // Patterns were validated by the parser; a hand-built config may still be off.
                Err(e) => diags.push(Diagnostic::error("when_modified", 0, 0, e)),
            }
        }
    }
    let set = builder.build().unwrap_or_else(|e| {
        diags.push(Diagnostic::error("when_modified", 0, 0, e.to_string()));
        pattern_of.clear();
        GlobSet::empty()
    });
    CompiledSet { set, pattern_of }
}

fn describe_projects(projects: &[Project]) -> String {
    if projects.is_empty() {
        return "this repository has no projects at this commit".to_string();
    }
    const MAX: usize = 20;
    let shown: Vec<String> = projects
        .iter()
        .take(MAX)
        .map(|p| {
            let derived = ProjectName::derived(&p.dir, &p.workspace);
            if p.name == derived {
                format!("`{}`", p.name)
            } else {
                format!(
                    "`{}` (dir `{}`, workspace `{}`)",
                    p.name, p.dir, p.workspace
                )
            }
        })
        .collect();
    let mut s = format!("projects: {}", shown.join(", "));
    if projects.len() > MAX {
        s.push_str(&format!(" and {} more", projects.len() - MAX));
    }
    s
}

/// SplitMix64: a tiny, well-mixed deterministic hash, so generated data needs no RNG crate.
fn mix(seed: u64, i: u64) -> u64 {
    let mut z = seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::repo_config::parse_config;
    use std::fmt::Write;

    /// A snapshot from a compact description: files, symlinks (`path -> target`), module calls.
    fn snap(files: &[&str], symlinks: &[(&str, &str)], calls: &[(&str, &[&str])]) -> RepoSnapshot {
        RepoSnapshot {
            files: files.iter().map(|f| f.to_string()).collect(),
            symlinks: symlinks
                .iter()
                .map(|(l, t)| (l.to_string(), t.to_string()))
                .collect(),
            module_calls: calls
                .iter()
                .map(|(d, s)| {
                    (
                        ProjectDir::new(d).unwrap(),
                        s.iter().map(|x| x.to_string()).collect(),
                    )
                })
                .collect(),
        }
    }

    fn config(file: &str, text: &str) -> RepoConfig {
        let (config, diags) = parse_config(file, text);
        config.unwrap_or_else(|| panic!("test config is invalid: {diags:#?}"))
    }

    /// `M path` (default), `A path`, `D path`, `R old -> new`.
    fn changes(specs: &[&str]) -> Vec<ChangedFile> {
        specs
            .iter()
            .map(|s| {
                let (kind, rest) = match s.split_once(' ') {
                    Some(("A", r)) => (ChangeKind::Added, r),
                    Some(("D", r)) => (ChangeKind::Deleted, r),
                    Some(("M", r)) => (ChangeKind::Modified, r),
                    Some(("R", r)) => {
                        let (from, to) = r.split_once(" -> ").unwrap();
                        return ChangedFile {
                            path: to.to_string(),
                            kind: ChangeKind::Renamed {
                                from: from.to_string(),
                            },
                        };
                    }
                    _ => (ChangeKind::Modified, *s),
                };
                ChangedFile {
                    path: rest.to_string(),
                    kind,
                }
            })
            .collect()
    }

    fn render(projects: &[Project], diags: &[Diagnostic]) -> String {
        let mut out = String::new();
        for d in diags {
            writeln!(out, "{d}").unwrap();
        }
        let names: Vec<String> = projects
            .iter()
            .map(|p| {
                if p.name.as_str() == ProjectName::derived(&p.dir, &p.workspace).as_str() {
                    p.name.to_string()
                } else {
                    format!("{} ({})", p.name, p.dir)
                }
            })
            .collect();
        write!(out, "=> [{}]", names.join(", ")).unwrap();
        out
    }

    /// The detection helper: affected projects (autoplan respected) and diagnostics.
    fn check(s: &RepoSnapshot, cfg: Option<&RepoConfig>, changed: &[&str]) -> String {
        let d = affected_projects(s, cfg, &changes(changed));
        render(&d.projects, &d.diagnostics)
    }

    fn check_all(s: &RepoSnapshot, cfg: Option<&RepoConfig>) -> String {
        let (projects, diags) = all_projects(s, cfg);
        render(&projects, &diags)
    }

    fn basic() -> RepoSnapshot {
        snap(
            &[
                "README.md",
                ".github/workflows/ci.yml",
                "docs/howto.md",
                "envs/prod/network/main.tf",
                "envs/prod/network/variables.tf",
                "envs/prod/network/terraform.tfvars",
                "envs/prod/network/prod.tfvars.json",
                "envs/prod/network/.terraform.lock.hcl",
                "envs/prod/network/templates/x.tpl",
                "envs/prod/network/sub/main.tofu",
                "envs/prod/app/main.tf",
                "envs/staging/app/main.tf",
                "envs/staging/app/.terraform/modules/m/main.tf",
                ".git/hooks/x.tf",
            ],
            &[],
            &[],
        )
    }

    #[test]
    fn detection_without_config() {
        let s = basic();
        insta::assert_snapshot!(check_all(&s, None), @"=> [envs/prod/app, envs/prod/network, envs/prod/network/sub, envs/staging/app]");
        // A file under a project's subdir maps to the nearest project dir.
        insta::assert_snapshot!(check(&s, None, &["envs/prod/network/templates/x.tpl"]), @"=> [envs/prod/network]");
        // tfvars, tfvars.json and the lock file belong to their project.
        insta::assert_snapshot!(check(&s, None, &["envs/prod/network/terraform.tfvars", "envs/prod/network/prod.tfvars.json"]), @"=> [envs/prod/network]");
        insta::assert_snapshot!(check(&s, None, &["envs/prod/network/.terraform.lock.hcl"]), @"=> [envs/prod/network]");
        // A nested project is its own project.
        insta::assert_snapshot!(check(&s, None, &["envs/prod/network/sub/main.tofu"]), @"=> [envs/prod/network/sub]");
        // Non-Terraform files outside any project, and hidden dirs, map to nothing.
        insta::assert_snapshot!(check(&s, None, &["README.md", "docs/howto.md", ".github/workflows/ci.yml", "envs/prod/x.md"]), @"=> []");
        insta::assert_snapshot!(check(&s, None, &["envs/staging/app/.terraform/modules/m/main.tf"]), @"=> []");
        // A deleted dir (no .tf files at head) triggers nothing; a deleted file in a live dir does.
        insta::assert_snapshot!(check(&s, None, &["D envs/old/main.tf", "D envs/old/vars.tf", "D envs/prod/app/old.tf"]), @"=> [envs/prod/app]");
        // A rename counts for both sides.
        insta::assert_snapshot!(check(&s, None, &["R envs/staging/app/x.tf -> envs/prod/app/x.tf"]), @"=> [envs/prod/app, envs/staging/app]");
    }

    #[test]
    fn root_project_catches_the_rest_but_not_hidden_dirs() {
        let s = snap(
            &["main.tf", "README.md", ".github/ci.yml", "envs/a/main.tf"],
            &[],
            &[],
        );
        insta::assert_snapshot!(check(&s, None, &["README.md", ".github/ci.yml"]), @"=> [root]");
        insta::assert_snapshot!(check(&s, None, &["envs/a/main.tf"]), @"=> [envs/a]");
    }

    fn modules() -> RepoSnapshot {
        snap(
            &[
                "envs/a/main.tf",
                "envs/b/main.tf",
                "envs/c/main.tf",
                "modules/b/main.tf",
                "modules/c/main.tf",
                "modules/c/files/policy.json",
                "modules/unused/main.tf",
                "modules/x/main.tf",
                "modules/y/main.tf",
            ],
            &[],
            &[
                (
                    "envs/a",
                    &["../../modules/b", "terraform-aws-modules/vpc/aws"],
                ),
                ("envs/b", &["./../../modules/c/"]),
                (
                    "envs/c",
                    &[
                        "git::https://example.com/m.git",
                        "../../modules/x",
                        "../../../outside",
                    ],
                ),
                ("modules/b", &["../c"]),
                ("modules/x", &["../y"]),
                ("modules/y", &["../x"]),
            ],
        )
    }

    #[test]
    fn local_modules_trigger_their_users_transitively() {
        let s = modules();
        // Modules are not projects; a dir nobody calls is (it has .tf files and no caller).
        insta::assert_snapshot!(check_all(&s, None), @r#"
            envs/c: warning: module source `../../../outside` in `envs/c` points outside the repository; ignored for change detection
              hint: local module sources must stay inside the repository
            modules/x: error: module cycle: `modules/x` → `modules/y` → `modules/x`
              hint: terraform cannot load modules that call each other in a loop; plans of the projects using them will fail until the loop is broken
            => [envs/a, envs/b, envs/c, modules/unused]
            "#);
        // A uses B uses C: a change in C (even a non-.tf file) triggers A and B's user.
        insta::assert_snapshot!(check(&s, None, &["modules/c/files/policy.json"]), @r#"
            envs/c: warning: module source `../../../outside` in `envs/c` points outside the repository; ignored for change detection
              hint: local module sources must stay inside the repository
            modules/x: error: module cycle: `modules/x` → `modules/y` → `modules/x`
              hint: terraform cannot load modules that call each other in a loop; plans of the projects using them will fail until the loop is broken
            => [envs/a, envs/b]
            "#);
        insta::assert_snapshot!(check(&s, None, &["modules/b/main.tf"]), @r#"
            envs/c: warning: module source `../../../outside` in `envs/c` points outside the repository; ignored for change detection
              hint: local module sources must stay inside the repository
            modules/x: error: module cycle: `modules/x` → `modules/y` → `modules/x`
              hint: terraform cannot load modules that call each other in a loop; plans of the projects using them will fail until the loop is broken
            => [envs/a]
            "#);
        // A module cycle is reported, and detection terminates.
        insta::assert_snapshot!(check(&s, None, &["modules/y/main.tf"]), @r#"
            envs/c: warning: module source `../../../outside` in `envs/c` points outside the repository; ignored for change detection
              hint: local module sources must stay inside the repository
            modules/x: error: module cycle: `modules/x` → `modules/y` → `modules/x`
              hint: terraform cannot load modules that call each other in a loop; plans of the projects using them will fail until the loop is broken
            => [envs/c]
            "#);
    }

    fn with_symlinks() -> RepoSnapshot {
        snap(
            &[
                "envs/prod/main.tf",
                "envs/dev/main.tf",
                "envs/dev/linked.tf",
                "shared/common.tf",
                "real/app/main.tf",
            ],
            &[
                ("envs/escape", "../../outside"),
                ("envs/abs", "/etc"),
                ("envs/app", "../real/app"),
                ("envs/prod/shared.tf", "../../shared/common.tf"),
                ("envs/dev/evil.tf", "../../../../etc/passwd.tf"),
                ("loop/a", "b"),
                ("loop/b", "a"),
            ],
            &[],
        )
    }

    #[test]
    fn symlinks() {
        let s = with_symlinks();
        // Without config: a project holding a .tf symlink that leaves the repo is dropped.
        insta::assert_snapshot!(check_all(&s, None), @r#"
            envs/dev: error: symlink escaping the repository: project dir `envs/dev` holds a Terraform file that goes through the symlink `envs/dev/evil.tf` → `../../../../etc/passwd.tf`; the project is skipped
              hint: Sluice only plans code inside the repository; point the project at the real directory
            => [envs/prod, real/app, shared]
            "#);
        // A change to a symlink's in-repo target counts for the symlink's dir too.
        insta::assert_snapshot!(check(&s, None, &["shared/common.tf"]), @r#"
            envs/dev: error: symlink escaping the repository: project dir `envs/dev` holds a Terraform file that goes through the symlink `envs/dev/evil.tf` → `../../../../etc/passwd.tf`; the project is skipped
              hint: Sluice only plans code inside the repository; point the project at the real directory
            => [envs/prod, shared]
            "#);

        let cfg = config(
            "sluice.yaml",
            r#"
version: 1
projects:
  - dir: envs/escape
  - dir: envs/abs/x
  - dir: envs/app
  - dir: loop/a
  - dir: envs/prod
  - name: etc-y
    dir: envs/abs/y
"#,
        );
        insta::assert_snapshot!(check_all(&s, Some(&cfg)), @r"
            sluice.yaml:4:10: error: symlink escaping the repository: project dir `envs/escape` goes through the symlink `envs/escape` → `../../outside`; the project is skipped
              hint: Sluice only plans code inside the repository; point the project at the real directory
            sluice.yaml:5:10: error: symlink escaping the repository: project dir `envs/abs/x` goes through the symlink `envs/abs` → `/etc`; the project is skipped
              hint: Sluice only plans code inside the repository; point the project at the real directory
            sluice.yaml:6:10: error: project dir `envs/app` goes through the symlink `envs/app` → `../real/app` (it is really `real/app`); project dirs must not go through symlinks, so the project is skipped
              hint: Sluice locks, gates and gives credentials to the directory terraform really runs in; write `dir: real/app`
            sluice.yaml:7:10: error: symlink escaping the repository: project dir `loop/a` goes through a symlink loop at `loop/a`; the project is skipped
              hint: Sluice only plans code inside the repository; point the project at the real directory
            sluice.yaml:10:10: error: project `etc-y`: symlink escaping the repository: project dir `envs/abs/y` goes through the symlink `envs/abs` → `/etc`; the project is skipped
              hint: Sluice only plans code inside the repository; point the project at the real directory
            => [envs/prod]
            ");
        // `envs/app` links to `real/app`: a change there plans the project.
        insta::assert_snapshot!(check(&s, Some(&cfg), &["real/app/main.tf"]), @r"
            sluice.yaml:4:10: error: symlink escaping the repository: project dir `envs/escape` goes through the symlink `envs/escape` → `../../outside`; the project is skipped
              hint: Sluice only plans code inside the repository; point the project at the real directory
            sluice.yaml:5:10: error: symlink escaping the repository: project dir `envs/abs/x` goes through the symlink `envs/abs` → `/etc`; the project is skipped
              hint: Sluice only plans code inside the repository; point the project at the real directory
            sluice.yaml:6:10: error: project dir `envs/app` goes through the symlink `envs/app` → `../real/app` (it is really `real/app`); project dirs must not go through symlinks, so the project is skipped
              hint: Sluice locks, gates and gives credentials to the directory terraform really runs in; write `dir: real/app`
            sluice.yaml:7:10: error: symlink escaping the repository: project dir `loop/a` goes through a symlink loop at `loop/a`; the project is skipped
              hint: Sluice only plans code inside the repository; point the project at the real directory
            sluice.yaml:10:10: error: project `etc-y`: symlink escaping the repository: project dir `envs/abs/y` goes through the symlink `envs/abs` → `/etc`; the project is skipped
              hint: Sluice only plans code inside the repository; point the project at the real directory
            => []
            ");
    }

    /// The class of the symlink lock/policy bypass: every way a project dir can reach another
    /// directory through the tree's symlinks is refused, naming the link and the real dir; the
    /// same dir written differently is one key; a module source through a link is still tracked.
    #[test]
    fn project_dirs_through_symlinks_are_refused_naming_the_link() {
        let s = snap(
            &[
                "envs/prod/main.tf",
                "other/prod/main.tf",
                "modules/net/main.tf",
                "app/main.tf",
            ],
            &[
                ("sandbox-x", "envs/prod"),
                ("nested/b", "../envs/./prod/../prod"),
                ("chain1", "chain2"),
                ("chain2", "envs/prod"),
                ("dot", "."),
                ("alias", "other"),
                ("out", "../../x"),
                ("abs", "/srv/infra"),
                ("app/modlink", "../modules/net"),
            ],
            &[("app", &["./modlink"])],
        );
        let cfg = config(
            "sluice.yaml",
            r#"version: 1
projects:
  - dir: sandbox-x
  - dir: nested/b
  - dir: chain1
  - dir: dot/envs/prod
  - name: sneaky
    dir: alias/prod
  - dir: out
  - dir: abs
  - dir: ./envs//prod/
  - dir: Other/Prod
  - dir: app
"#,
        );
        insta::assert_snapshot!(check_all(&s, Some(&cfg)), @r"
            sluice.yaml:3:10: error: project dir `sandbox-x` goes through the symlink `sandbox-x` → `envs/prod` (it is really `envs/prod`); project dirs must not go through symlinks, so the project is skipped
              hint: Sluice locks, gates and gives credentials to the directory terraform really runs in; write `dir: envs/prod`
            sluice.yaml:4:10: error: project dir `nested/b` goes through the symlink `nested/b` → `../envs/./prod/../prod` (it is really `envs/prod`); project dirs must not go through symlinks, so the project is skipped
              hint: Sluice locks, gates and gives credentials to the directory terraform really runs in; write `dir: envs/prod`
            sluice.yaml:5:10: error: project dir `chain1` goes through the symlink `chain1` → `chain2` (it is really `envs/prod`); project dirs must not go through symlinks, so the project is skipped
              hint: Sluice locks, gates and gives credentials to the directory terraform really runs in; write `dir: envs/prod`
            sluice.yaml:6:10: error: project dir `dot/envs/prod` goes through the symlink `dot` → `.` (it is really `envs/prod`); project dirs must not go through symlinks, so the project is skipped
              hint: Sluice locks, gates and gives credentials to the directory terraform really runs in; write `dir: envs/prod`
            sluice.yaml:8:10: error: project `sneaky`: project dir `alias/prod` goes through the symlink `alias` → `other` (it is really `other/prod`); project dirs must not go through symlinks, so the project is skipped
              hint: Sluice locks, gates and gives credentials to the directory terraform really runs in; write `dir: other/prod`
            sluice.yaml:9:10: error: symlink escaping the repository: project dir `out` goes through the symlink `out` → `../../x`; the project is skipped
              hint: Sluice only plans code inside the repository; point the project at the real directory
            sluice.yaml:10:10: error: symlink escaping the repository: project dir `abs` goes through the symlink `abs` → `/srv/infra`; the project is skipped
              hint: Sluice only plans code inside the repository; point the project at the real directory
            sluice.yaml:12:10: warning: project `Other/Prod`: dir `Other/Prod` has no .tf or .tofu files at this commit; skipped
              hint: remove the entry if the directory is gone for good
            => [app, envs/prod]
            ");
        // A change to the module's real files plans the project whose source goes through the
        // link: detection follows it.
        insta::assert_snapshot!(check(&s, Some(&cfg), &["modules/net/main.tf"]), @r"
            sluice.yaml:3:10: error: project dir `sandbox-x` goes through the symlink `sandbox-x` → `envs/prod` (it is really `envs/prod`); project dirs must not go through symlinks, so the project is skipped
              hint: Sluice locks, gates and gives credentials to the directory terraform really runs in; write `dir: envs/prod`
            sluice.yaml:4:10: error: project dir `nested/b` goes through the symlink `nested/b` → `../envs/./prod/../prod` (it is really `envs/prod`); project dirs must not go through symlinks, so the project is skipped
              hint: Sluice locks, gates and gives credentials to the directory terraform really runs in; write `dir: envs/prod`
            sluice.yaml:5:10: error: project dir `chain1` goes through the symlink `chain1` → `chain2` (it is really `envs/prod`); project dirs must not go through symlinks, so the project is skipped
              hint: Sluice locks, gates and gives credentials to the directory terraform really runs in; write `dir: envs/prod`
            sluice.yaml:6:10: error: project dir `dot/envs/prod` goes through the symlink `dot` → `.` (it is really `envs/prod`); project dirs must not go through symlinks, so the project is skipped
              hint: Sluice locks, gates and gives credentials to the directory terraform really runs in; write `dir: envs/prod`
            sluice.yaml:8:10: error: project `sneaky`: project dir `alias/prod` goes through the symlink `alias` → `other` (it is really `other/prod`); project dirs must not go through symlinks, so the project is skipped
              hint: Sluice locks, gates and gives credentials to the directory terraform really runs in; write `dir: other/prod`
            sluice.yaml:9:10: error: symlink escaping the repository: project dir `out` goes through the symlink `out` → `../../x`; the project is skipped
              hint: Sluice only plans code inside the repository; point the project at the real directory
            sluice.yaml:10:10: error: symlink escaping the repository: project dir `abs` goes through the symlink `abs` → `/srv/infra`; the project is skipped
              hint: Sluice only plans code inside the repository; point the project at the real directory
            sluice.yaml:12:10: warning: project `Other/Prod`: dir `Other/Prod` has no .tf or .tofu files at this commit; skipped
              hint: remove the entry if the directory is gone for good
            => [app]
            ");
        // The same dir written with `./`, `//` or a trailing `/` is one dir (one lock key); a dir
        // that differs in case is another dir, which does not exist here.
        for (written, key) in [
            ("./envs/prod/", "envs/prod"),
            ("envs//prod", "envs/prod"),
            ("/envs/prod", "envs/prod"),
            ("envs/./prod", "envs/prod"),
            ("Envs/Prod", "Envs/Prod"),
        ] {
            assert_eq!(ProjectDir::new(written).unwrap().as_str(), key, "{written}");
        }
    }

    #[test]
    fn detection_with_config() {
        let s = snap(
            &[
                "envs/prod/network/main.tf",
                "envs/prod/network/legacy.tf",
                "envs/prod/network/data/ips.csv",
                "envs/staging/network/main.tf",
                "envs/dev/network/main.tf",
                "envs/prod/app/main.tf",
                "modules/vpc/main.tf",
                "modules/vpc/README.md",
                "modules/dns/main.tf",
                "tools/main.tf",
            ],
            &[],
            &[("envs/prod/app", &["../../../modules/dns"])],
        );
        let cfg = config(
            "sluice.yaml",
            r#"
version: 1
projects:
  - name: app
    dir: envs/prod/app
    depends_on: [network-prod]
  - name: network-prod
    dir: envs/prod/network
    autoplan: { when_modified: ["**/*.tf", "!legacy.tf", "data/*", "../../../modules/vpc/**/*.tf"] }
  - dir: envs/*/network
  - dir: tools
    autoplan: { enabled: false }
  - dir: gone
"#,
        );
        insta::assert_snapshot!(check_all(&s, Some(&cfg)), @r#"
            sluice.yaml:13:10: warning: project `gone`: dir `gone` has no .tf or .tofu files at this commit; skipped
              hint: remove the entry if the directory is gone for good
            => [envs/dev/network, envs/staging/network, network-prod (envs/prod/network), app (envs/prod/app), tools]
            "#);
        // when_modified with `..` reaches the module from the project dir.
        insta::assert_snapshot!(check(&s, Some(&cfg), &["modules/vpc/main.tf"]), @r#"
            sluice.yaml:13:10: warning: project `gone`: dir `gone` has no .tf or .tofu files at this commit; skipped
              hint: remove the entry if the directory is gone for good
            => [network-prod (envs/prod/network)]
            "#);
        // Not matched by any when_modified pattern.
        insta::assert_snapshot!(check(&s, Some(&cfg), &["modules/vpc/README.md"]), @r#"
            sluice.yaml:13:10: warning: project `gone`: dir `gone` has no .tf or .tofu files at this commit; skipped
              hint: remove the entry if the directory is gone for good
            => []
            "#);
        // The last matching pattern wins: `!legacy.tf` excludes the file from network-prod.
        insta::assert_snapshot!(check(&s, Some(&cfg), &["envs/prod/network/legacy.tf"]), @r#"
            sluice.yaml:13:10: warning: project `gone`: dir `gone` has no .tf or .tofu files at this commit; skipped
              hint: remove the entry if the directory is gone for good
            => []
            "#);
        insta::assert_snapshot!(check(&s, Some(&cfg), &["envs/prod/network/data/ips.csv", "envs/dev/network/main.tf"]), @r#"
            sluice.yaml:13:10: warning: project `gone`: dir `gone` has no .tf or .tofu files at this commit; skipped
              hint: remove the entry if the directory is gone for good
            => [envs/dev/network, network-prod (envs/prod/network)]
            "#);
        // Local modules count even with explicit when_modified; depends_on orders the result.
        insta::assert_snapshot!(check(&s, Some(&cfg), &["modules/dns/main.tf", "envs/prod/network/main.tf"]), @r#"
            sluice.yaml:13:10: warning: project `gone`: dir `gone` has no .tf or .tofu files at this commit; skipped
              hint: remove the entry if the directory is gone for good
            => [network-prod (envs/prod/network), app (envs/prod/app)]
            "#);
        // autoplan: false is skipped by autoplan, but an explicit plan sees it.
        insta::assert_snapshot!(check(&s, Some(&cfg), &["tools/main.tf"]), @r#"
            sluice.yaml:13:10: warning: project `gone`: dir `gone` has no .tf or .tofu files at this commit; skipped
              hint: remove the entry if the directory is gone for good
            => []
            "#);
        let explicit = affected_projects_with(
            &s,
            Some(&cfg),
            &changes(&["tools/main.tf"]),
            DetectOptions {
                respect_autoplan: false,
            },
        );
        insta::assert_snapshot!(render(&explicit.projects, &[]), @"=> [tools]");
    }

    /// The class of "a parent project claims the files of the projects nested under it": with a
    /// `sluice.yaml`, a file counts for the deepest configured project containing it, unless a
    /// parent names that dir explicitly or uses a dir there as a module; `atlantis.yaml` keeps
    /// Atlantis' every-match rule; detected projects follow the nearest-dir rule.
    #[test]
    fn a_file_counts_for_the_deepest_project_containing_it() {
        let s = snap(
            &[
                "main.tf",
                "README.md",
                "dev/main.tf",
                "dev/README.md",
                "dev/data/ips.csv",
                "dev/modules/net/main.tf",
                "envs/main.tf",
                "envs/prod/main.tf",
                "envs/prod/sub/extra.tf",
                "envs/prod/db/main.tf",
                "envs/prod/data/ips.csv",
                "envs/qa/main.tf",
                "tools/main.tf",
            ],
            &[],
            &[],
        );
        let cfg =
            |projects: &str| config("sluice.yaml", &format!("version: 1\nprojects:\n{projects}"));
        let both = cfg("  - dir: .\n  - dir: dev\n");
        // `.` + `dev/`: each file plans only its own project.
        insta::assert_snapshot!(check(&s, Some(&both), &["dev/main.tf"]), @"=> [dev]");
        insta::assert_snapshot!(check(&s, Some(&both), &["main.tf"]), @"=> [root]");
        insta::assert_snapshot!(check(&s, Some(&both), &["dev/main.tf", "main.tf"]), @"=> [dev, root]");
        // A file in a subdir of the nested project (not a project itself) is still the nested one's.
        insta::assert_snapshot!(check(&s, Some(&both), &["dev/modules/net/main.tf"]), @"=> [dev]");
        // The root still owns everything outside nested projects (`envs` is not configured here).
        insta::assert_snapshot!(check(&s, Some(&both), &["envs/prod/main.tf"]), @"=> [root]");

        // `envs/` + `envs/prod/`, and several levels (`.`, `envs`, `envs/prod`, `envs/prod/db`).
        let levels = cfg("  - dir: .\n  - dir: envs\n  - dir: envs/prod\n  - dir: envs/prod/db\n");
        insta::assert_snapshot!(check(&s, Some(&levels), &["envs/prod/db/main.tf"]), @"=> [envs/prod/db]");
        insta::assert_snapshot!(check(&s, Some(&levels), &["envs/prod/sub/extra.tf"]), @"=> [envs/prod]");
        insta::assert_snapshot!(check(&s, Some(&levels), &["envs/qa/main.tf"]), @"=> [envs]");
        insta::assert_snapshot!(check(&s, Some(&levels), &["tools/main.tf"]), @"=> [root]");

        // Nested projects from a dir glob, beside their parent listed explicitly.
        let glob = cfg("  - dir: envs\n  - dir: envs/*\n");
        insta::assert_snapshot!(check(&s, Some(&glob), &["envs/prod/main.tf", "envs/qa/main.tf"]), @"=> [envs/prod, envs/qa]");
        insta::assert_snapshot!(check(&s, Some(&glob), &["envs/main.tf"]), @"=> [envs]");

        // Workspaces of the same dirs: all of the deepest dir's workspaces, none of the parent's.
        let ws = cfg(
            "  - {name: root-a, dir: ., workspace: a}\n  - {name: root-b, dir: ., workspace: b}\n  - {name: dev-a, dir: dev, workspace: a}\n  - {name: dev-b, dir: dev, workspace: b}\n",
        );
        insta::assert_snapshot!(check(&s, Some(&ws), &["dev/main.tf"]), @"=> [dev-a (dev), dev-b (dev)]");
        insta::assert_snapshot!(check(&s, Some(&ws), &["main.tf"]), @"=> [root-a (.), root-b (.)]");

        // A parent pattern that names the nested dir explicitly still claims its files: a literal
        // base dir at or below it (`dev/*.tf`, `dev/**`, `envs/prod/data/*`) or a literal dir
        // (`dev`). Globs that merely match there (`**/*.tf`, `*/main.tf`, `**/dev/*.tf`) do not.
        for (patterns, expect) in [
            (r#"["**/*.tf", "dev/*.tf"]"#, "=> [dev, root]"),
            (r#"["dev/**"]"#, "=> [dev, root]"),
            (r#"["dev"]"#, "=> [dev, root]"),
            (r#"["./dev/main.tf"]"#, "=> [dev, root]"),
            (r#"["*/main.tf"]"#, "=> [dev]"),
            (r#"["**/dev/*.tf"]"#, "=> [dev]"),
            (r#"["**/*.tf", "!dev/main.tf"]"#, "=> [dev]"),
        ] {
            let c = cfg(&format!(
                "  - dir: .\n    autoplan: {{when_modified: {patterns}}}\n  - dir: dev\n"
            ));
            assert_eq!(check(&s, Some(&c), &["dev/main.tf"]), expect, "{patterns}");
        }
        // A file only the parent's explicit pattern matches plans the parent alone.
        let data = cfg(
            "  - dir: envs\n    autoplan: {when_modified: [\"**/*.tf\", \"prod/data/*\"]}\n  - dir: envs/prod\n",
        );
        insta::assert_snapshot!(check(&s, Some(&data), &["envs/prod/data/ips.csv"]), @"=> [envs]");
        // The parent's exclusions still hold for what its explicit patterns claim.
        let excl = cfg(
            "  - dir: .\n    autoplan: {when_modified: [\"dev/**\", \"!**/*.md\"]}\n  - dir: dev\n",
        );
        insta::assert_snapshot!(check(&s, Some(&excl), &["dev/README.md"]), @"=> []");
        insta::assert_snapshot!(check(&s, Some(&excl), &["dev/data/ips.csv"]), @"=> [root]");
        // A project that is not a parent and reaches out explicitly (`../dev`) keeps its claim.
        let sibling = cfg(
            "  - dir: dev\n  - dir: tools\n    autoplan: {when_modified: [\"**/*.tf\", \"../dev/*.tf\"]}\n",
        );
        insta::assert_snapshot!(check(&s, Some(&sibling), &["dev/main.tf"]), @"=> [dev, tools]");

        // A parent that uses the nested dir (or a dir inside it) as a module is planned too.
        let calls = |source: &str| {
            let mut s = s.clone();
            s.module_calls
                .insert(ProjectDir::new(".").unwrap(), vec![source.to_string()]);
            s
        };
        insta::assert_snapshot!(check(&calls("./dev"), Some(&both), &["dev/main.tf"]), @"=> [dev, root]");
        insta::assert_snapshot!(check(&calls("./dev/modules/net"), Some(&both), &["dev/modules/net/main.tf"]), @"=> [dev, root]");
        insta::assert_snapshot!(check(&calls("./dev/modules/net"), Some(&both), &["dev/main.tf"]), @"=> [dev]");

        // atlantis.yaml keeps Atlantis' rule: the root's default `**/*.tf*` claims `dev/main.tf`.
        let atlantis = config(
            "atlantis.yaml",
            "version: 3\nprojects:\n  - dir: .\n  - dir: dev\n",
        );
        insta::assert_snapshot!(check(&s, Some(&atlantis), &["dev/main.tf"]), @"=> [dev, root]");

        // Detected projects (no file, or a file without `projects`): the nearest dir only.
        insta::assert_snapshot!(check(&s, None, &["dev/main.tf", "envs/prod/db/main.tf"]), @"=> [dev, envs/prod/db]");
        let no_list = config("sluice.yaml", "version: 1\n");
        insta::assert_snapshot!(check(&s, Some(&no_list), &["dev/main.tf"]), @"=> [dev]");
    }

    /// Every project with the engine it runs with, then the diagnostics.
    fn engines(s: &RepoSnapshot, cfg: Option<&RepoConfig>) -> String {
        let (projects, diags) = all_projects(s, cfg);
        let mut out = String::new();
        for d in &diags {
            writeln!(out, "{d}").unwrap();
        }
        let list: Vec<String> = projects
            .iter()
            .map(|p| format!("{}={}", p.name, p.engine))
            .collect();
        write!(out, "=> [{}]", list.join(", ")).unwrap();
        out
    }

    /// The class of "terraform runs configuration it does not read": files only OpenTofu reads
    /// (`.tofu`, `.tofu.json` without a terraform twin; in the project's dir or in a local module
    /// it uses) select OpenTofu unless the entry pins an engine; pinned to terraform, the project
    /// is refused naming the files. A `.tofu` file with its `.tf` twin is dual-engine: nothing is
    /// lost under terraform.
    #[test]
    fn files_only_opentofu_reads_select_opentofu_or_are_refused() {
        let s = snap(
            &[
                "only-tofu/main.tofu",
                "only-tofu/variables.tofu",
                "mixed/main.tf",
                "mixed/extra.tofu",
                "json/main.tofu.json",
                "twins/main.tf",
                "twins/main.tofu",
                "twins/vars.tf.json",
                "twins/vars.tofu.json",
                "cross/main.tf.json",
                "cross/main.tofu",
                "overrides/main.tf",
                "overrides/override.tofu",
                "plain/main.tf",
                "plain/.terraform/modules/m/main.tofu",
                "plain/notes.tofu.md",
                "uses-mod/main.tf",
                "modules/tofu-mod/main.tofu",
                "modules/tf-mod/main.tf",
                "modules/tf-mod/nested.tf",
                "uses-chain/main.tf",
            ],
            &[],
            &[
                ("uses-mod", &["../modules/tofu-mod"]),
                ("uses-chain", &["../modules/tf-mod"]),
                ("modules/tf-mod", &["../tofu-mod"]),
            ],
        );
        // Detected projects: each picks the engine its files need.
        insta::assert_snapshot!(engines(&s, None), @"=> [cross=opentofu, json=opentofu, mixed=opentofu, only-tofu=opentofu, overrides=opentofu, plain=terraform, twins=terraform, uses-chain=opentofu, uses-mod=opentofu]");

        // Configured without `engine`: the same choice; `engine: opentofu` always holds.
        let unpinned = config(
            "sluice.yaml",
            "version: 1\nprojects:\n  - dir: mixed\n  - dir: twins\n  - dir: uses-chain\n  - dir: plain\n    engine: opentofu\n",
        );
        insta::assert_snapshot!(engines(&s, Some(&unpinned)), @"=> [mixed=opentofu, plain=opentofu, twins=terraform, uses-chain=opentofu]");

        // Pinned to terraform: refused, naming the files (also those of a module it uses) and
        // the fix; the other projects go on. Twins are fine under terraform.
        let pinned = config(
            "sluice.yaml",
            "version: 1\nprojects:\n  - dir: only-tofu\n    engine: terraform\n  - dir: uses-chain\n    engine: terraform\n  - dir: twins\n    engine: terraform\n  - dir: plain\n",
        );
        insta::assert_snapshot!(engines(&s, Some(&pinned)), @r"
        sluice.yaml:4:13: error: project `only-tofu` sets `engine: terraform`, but its configuration has files only OpenTofu reads: `only-tofu/main.tofu`, `only-tofu/variables.tofu`; terraform would plan without them (and propose to destroy what they declare), so the project is skipped
          hint: write `engine: opentofu` (or leave `engine` out: such projects run with OpenTofu), or give each file a terraform twin (`x.tf` beside `x.tofu`, which OpenTofu then ignores)
        sluice.yaml:6:13: error: project `uses-chain` sets `engine: terraform`, but its configuration has files only OpenTofu reads: `modules/tofu-mod/main.tofu`; terraform would plan without them (and propose to destroy what they declare), so the project is skipped
          hint: write `engine: opentofu` (or leave `engine` out: such projects run with OpenTofu), or give each file a terraform twin (`x.tf` beside `x.tofu`, which OpenTofu then ignores)
        => [plain=terraform, twins=terraform]
        ");
        // A refused project is not planned when its files change.
        insta::assert_snapshot!(
            render(&affected_projects(&s, Some(&pinned), &changes(&["only-tofu/main.tofu", "plain/main.tf"])).projects, &[]),
            @"=> [plain]"
        );

        // atlantis.yaml names the key it uses.
        let atlantis = config(
            "atlantis.yaml",
            "version: 3\nprojects:\n  - dir: json\n    terraform_distribution: terraform\n  - dir: mixed\n",
        );
        insta::assert_snapshot!(engines(&s, Some(&atlantis)), @r"
        atlantis.yaml:4:29: error: project `json` sets `terraform_distribution: terraform`, but its configuration has files only OpenTofu reads: `json/main.tofu.json`; terraform would plan without them (and propose to destroy what they declare), so the project is skipped
          hint: write `terraform_distribution: opentofu` (or leave `terraform_distribution` out: such projects run with OpenTofu), or give each file a terraform twin (`x.tf` beside `x.tofu`, which OpenTofu then ignores)
        => [mixed=opentofu]
        ");

        // Many files: the first five, and how many more.
        let many: Vec<String> = (0..8).map(|i| format!("big/f{i}.tofu")).collect();
        let big = snap(
            &many.iter().map(String::as_str).collect::<Vec<_>>(),
            &[],
            &[],
        );
        let cfg = config(
            "sluice.yaml",
            "version: 1\nprojects:\n  - dir: big\n    engine: terraform\n",
        );
        let out = engines(&big, Some(&cfg));
        assert!(out.contains("`big/f4.tofu` and 3 more;"), "{out}");
    }

    #[test]
    fn opentofu_only_files_follow_opentofus_extension_precedence() {
        let tree: BTreeSet<&str> = [
            "a.tofu",
            "a.tf",
            "b.tofu",
            "c.tofu.json",
            "c.tf.json",
            "d.tofu.json",
            "d.tf",
            "e.tofu",
            "e.tf.json",
            "x/.tofu",
            "y.tf",
            "override.tofu",
            "z_override.tofu.json",
        ]
        .into_iter()
        .collect();
        let only = opentofu_only_files(tree.iter().copied(), |f| tree.contains(f));
        assert_eq!(
            only,
            [
                "b.tofu",
                "d.tofu.json",
                "e.tofu",
                "override.tofu",
                "z_override.tofu.json"
            ]
        );
    }

    #[test]
    fn config_globs_and_dependencies_after_expansion() {
        let s = snap(
            &["envs/prod/main.tf", "envs/dev/main.tf", "apps/x/main.tf"],
            &[],
            &[],
        );
        let cfg = config(
            "sluice.yaml",
            r#"
version: 1
projects:
  - dir: envs/*
    autoplan: { when_modified: ["*.tf", "../../../x.tf"] }
  - dir: "services/*"
  - dir: apps/x
    depends_on: [envs/prod, envs/qa]
"#,
        );
        insta::assert_snapshot!(check_all(&s, Some(&cfg)), @r#"
            sluice.yaml:5:41: error: project `envs/dev`: pattern `../../../x.tf` leaves the repository when read from `envs/dev`
            sluice.yaml:5:41: error: project `envs/prod`: pattern `../../../x.tf` leaves the repository when read from `envs/prod`
            sluice.yaml:6:10: error: dir glob `services/*` of the project at line 6 matches no directory with .tf or .tofu files
              hint: `*` matches within one directory name and `**` across directories; remove the entry if those projects are gone
            sluice.yaml:8:29: error: `depends_on` names `envs/qa`, which is not a project at this commit
              hint: projects: apps/x, envs/dev, envs/prod
            => [envs/dev, envs/prod, apps/x]
            "#);
    }

    #[test]
    fn atlantis_defaults_apply() {
        let s = snap(
            &[
                "a/main.tf",
                "a/terragrunt.hcl",
                "a/notes.txt",
                "a/x.tf.json",
            ],
            &[],
            &[],
        );
        let cfg = config("atlantis.yaml", "version: 3\nprojects:\n  - dir: a\n");
        insta::assert_snapshot!(check(&s, Some(&cfg), &["a/terragrunt.hcl"]), @"=> [a]");
        insta::assert_snapshot!(check(&s, Some(&cfg), &["a/x.tf.json"]), @"=> [a]");
        insta::assert_snapshot!(check(&s, Some(&cfg), &["a/notes.txt"]), @"=> []");
        // A config without `projects` keeps detection, with its autoplan setting.
        let off = config("sluice.yaml", "version: 1\nautoplan: {enabled: false}\n");
        insta::assert_snapshot!(check(&s, Some(&off), &["a/notes.txt"]), @"=> []");
    }

    #[test]
    fn module_sources_from_hcl() {
        let limits = HclLimits {
            max_bytes: 1 << 20,
            max_depth: 100,
        };
        let show = |text: &str| match module_sources("main.tf", text, &limits) {
            Ok(v) => format!("{v:?}"),
            Err(d) => d.to_string(),
        };
        insta::assert_snapshot!(show(r#"
module "vpc" {
  source = "../modules/vpc"
  cidr   = "10.0.0.0/16"
}
module "dyn" {
  source = "${path.module}/x"
}
module "reg" {
  source  = "terraform-aws-modules/vpc/aws"
  version = "5.0.0"
}
resource "null_resource" "x" {
  source = "./not-a-module"
}
"#), @r#"
            ["../modules/vpc", "terraform-aws-modules/vpc/aws"]
            "#);
        // Unbalanced: not even parsed, a syntax warning like any other.
        insta::assert_snapshot!(show("module \"x\" {\n  source = \"./x\"\n"), @r#"
            main.tf:1:12: warning: HCL syntax error: unclosed bracket, brace or parenthesis
              hint: Sluice could not read the module calls of this file, so changes to the modules it uses may not trigger a plan; terraform will report the error
            "#);
        // Balanced but wrong: the parser's own message.
        insta::assert_snapshot!(show("module \"x\" {\n  source = = \"./x\"\n}\n"), @r#"
            main.tf:2:12: warning: HCL syntax error: invalid expression; expected `"`, `[`, `{`, `-`, `!`, `(`, `_`, `<`, letter or digit
              hint: Sluice could not read the module calls of this file, so changes to the modules it uses may not trigger a plan; terraform will report the error
            "#);
        // Over the limits: an error, the file is not read at all.
        let deep = format!(
            "module \"x\" {{\n  source = \"./x\"\n  y = {}1{}\n}}\n",
            "[".repeat(2000),
            "]".repeat(2000)
        );
        insta::assert_snapshot!(show(&deep), @r#"
            main.tf:3:105: error: not read: brackets, braces, parentheses, string templates and operators nest more than 100 levels deep here (limits.hcl_depth)
              hint: Sluice cannot tell which modules this file calls, so the projects in its directory are not planned: make the file smaller or flatter, or ask the Sluice operator to raise the limit
            "#);
        // 100,000 blocks (about 0.8 MB) are within the limits, and read in linear time.
        let mut many = String::from("module \"m\" {\n  source = \"./m\"\n}\n");
        for i in 0..100_000 {
            many.push_str(&format!("b{} {{}}\n", i % 10));
        }
        assert!(many.len() < 1 << 20);
        assert_eq!(
            module_sources("main.tf", &many, &limits),
            Ok(vec!["./m".to_string()])
        );
        insta::assert_snapshot!(show(&format!("{}\n", "#".repeat(2 << 20))), @r#"
            main.tf: error: not read: the file is 2097153 bytes; Sluice reads `.tf` files of at most 1048576 bytes (limits.file_bytes)
              hint: Sluice cannot tell which modules this file calls, so the projects in its directory are not planned: make the file smaller or flatter, or ask the Sluice operator to raise the limit
            "#);
    }

    #[test]
    fn find_project_targets() {
        let s = snap(
            &["envs/prod/main.tf", "envs/dev/main.tf", "net/main.tf"],
            &[],
            &[],
        );
        let cfg = config(
            "sluice.yaml",
            r#"
version: 1
projects:
  - dir: envs/*
  - name: network
    dir: net
  - name: network-blue
    dir: net
    workspace: blue
"#,
        );
        let (projects, diags) = all_projects(&s, Some(&cfg));
        assert!(diags.is_empty(), "{diags:?}");
        let find = |name: Option<&str>, dir: Option<&str>, ws: Option<&str>| {
            let name = name.map(|n| ProjectName::new(n).unwrap());
            let ws = ws.map(|w| Workspace::new(w).unwrap());
            match find_project(&projects, name.as_ref(), dir, ws.as_ref()) {
                Ok(found) => found
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                Err(e) => format!("error: {e}"),
            }
        };
        insta::assert_snapshot!(find(None, None, None), @"envs/dev, envs/prod, network, network-blue");
        insta::assert_snapshot!(find(Some("network"), None, None), @"network");
        insta::assert_snapshot!(find(Some("netwrok"), None, None), @"error: no project named `netwrok` (did you mean `network`?); projects: `envs/dev`, `envs/prod`, `network` (dir `net`, workspace `default`), `network-blue` (dir `net`, workspace `blue`)");
        insta::assert_snapshot!(find(Some("network"), Some("net"), None), @"error: `-p` cannot be combined with `-d` or `-w`: a project name already picks one dir and workspace");
        insta::assert_snapshot!(find(None, Some("./envs/*"), None), @"envs/dev, envs/prod");
        insta::assert_snapshot!(find(None, Some("/net/"), Some("blue")), @"network-blue");
        insta::assert_snapshot!(find(None, Some("envs/qa"), None), @"error: no project in dir `envs/qa`; projects: `envs/dev`, `envs/prod`, `network` (dir `net`, workspace `default`), `network-blue` (dir `net`, workspace `blue`)");
        insta::assert_snapshot!(find(None, None, Some("green")), @"error: no project with workspace `green`; projects: `envs/dev`, `envs/prod`, `network` (dir `net`, workspace `default`), `network-blue` (dir `net`, workspace `blue`)");
        insta::assert_snapshot!(find(None, Some("../x"), None), @"error: `-d ../x` leaves the repository (`..` is not allowed)");
        insta::assert_snapshot!(find(None, Some("envs/[x"), None), @"error: `-d`: `envs/[x` is not a valid glob: unclosed character class; missing ']'");
        assert_eq!(
            find_project(&[], ProjectName::new("x").ok().as_ref(), None, None).unwrap_err(),
            "no project named `x`; this repository has no projects at this commit"
        );
    }

    #[test]
    fn symlink_resolution() {
        let links: BTreeMap<String, String> = [
            ("a/link", "../b"),
            ("b/up", "../../x"),
            ("c", "c"),
            ("d", "./b/sub/.."),
        ]
        .iter()
        .map(|(l, t)| (l.to_string(), t.to_string()))
        .collect();
        assert_eq!(
            resolve(&links, "a/link/main.tf"),
            Resolved::Inside("b/main.tf".into())
        );
        assert_eq!(resolve(&links, "d/z"), Resolved::Inside("b/z".into()));
        assert_eq!(
            resolve(&links, "a/link/up/q"),
            Resolved::Outside {
                link: "b/up".into(),
                target: "../../x".into()
            }
        );
        assert_eq!(resolve(&links, "c/x"), Resolved::Loop { link: "c".into() });
    }

    #[test]
    fn synthetic_repo_is_deterministic() {
        assert_eq!(synthetic_monorepo(200, 7), synthetic_monorepo(200, 7));
        let s = synthetic_monorepo(200, 7);
        assert_eq!(synthetic_changes(&s, 50, 3), synthetic_changes(&s, 50, 3));
        assert_eq!(synthetic_changes(&s, 50, 3).len(), 50);
        let (projects, diags) = all_projects(&s, None);
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(projects.len(), 200);
    }

    /// An independent, deliberately naive implementation of the rules without config: scan
    /// everything for every question. Used as an oracle for the indexed implementation.
    fn naive_affected(s: &RepoSnapshot, changed: &[ChangedFile]) -> BTreeSet<String> {
        let has_tf = |dir: &str| {
            s.files
                .iter()
                .any(|f| parent(f) == dir && is_tf_file(f) && !in_hidden_dir(f))
        };
        let target = |dir: &str, src: &str| join_relative(dir, src.trim_end_matches('/'));
        let is_local = |src: &str| src.starts_with("./") || src.starts_with("../");
        let is_module = |dir: &str| {
            s.module_calls.iter().any(|(d, srcs)| {
                srcs.iter()
                    .any(|x| is_local(x) && target(d.as_str(), x).as_deref() == Some(dir))
            })
        };
        let mut out = BTreeSet::new();
        for c in changed {
            if in_hidden_dir(&c.path) {
                continue;
            }
            let mut dir = parent(&c.path).to_string();
            let nearest = loop {
                if has_tf(&dir) {
                    break Some(dir);
                }
                if dir == "." {
                    break None;
                }
                dir = parent(&dir).to_string();
            };
            let Some(nearest) = nearest else { continue };
            let mut todo = vec![nearest];
            let mut seen = BTreeSet::new();
            while let Some(d) = todo.pop() {
                if !seen.insert(d.clone()) {
                    continue;
                }
                if !is_module(&d) && has_tf(&d) {
                    out.insert(d.clone());
                }
                for (caller, srcs) in &s.module_calls {
                    if srcs.iter().any(|x| {
                        is_local(x) && target(caller.as_str(), x).as_deref() == Some(d.as_str())
                    }) {
                        todo.push(caller.to_string());
                    }
                }
            }
        }
        out
    }

    /// Set equality that prints only the differences (the sets can hold thousands of dirs).
    fn assert_same(got: &BTreeSet<String>, expected: &BTreeSet<String>) {
        let extra: Vec<&String> = got.difference(expected).take(10).collect();
        let missing: Vec<&String> = expected.difference(got).take(10).collect();
        assert!(
            extra.is_empty() && missing.is_empty(),
            "unexpected: {extra:?}\nmissing: {missing:?}"
        );
    }

    #[test]
    fn synthetic_detection_matches_the_naive_oracle() {
        let s = synthetic_monorepo(300, 42);
        for seed in 0..5 {
            let changed = synthetic_changes(&s, 40, seed);
            let got: BTreeSet<String> = affected_projects(&s, None, &changed)
                .projects
                .iter()
                .map(|p| p.dir.to_string())
                .collect();
            assert_same(&got, &naive_affected(&s, &changed));
        }
    }

    #[test]
    fn synthetic_monorepo_at_benchmark_size() {
        let s = synthetic_monorepo(5_000, 1);
        let module_of = |i: usize| -> Option<usize> {
            let dir = ProjectDir::new(&synthetic_project_dir(i)).unwrap();
            s.module_calls.get(&dir)?.iter().find_map(|src| {
                src.strip_prefix("../../../../modules/mod-")
                    .map(|n| n.parse().unwrap())
            })
        };
        // One project file → exactly that project.
        let d = affected_projects(
            &s,
            None,
            &[ChangedFile::modified(format!(
                "{}/main.tf",
                synthetic_project_dir(1234)
            ))],
        );
        assert_eq!(d.projects.len(), 1);
        assert_eq!(d.projects[0].dir.as_str(), synthetic_project_dir(1234));
        assert!(d.diagnostics.is_empty());
        // A module change → users of it and of every module above it in its chain of four.
        let d = affected_projects(
            &s,
            None,
            &[ChangedFile::modified(
                "modules/mod-0041/templates/policy.json.tpl",
            )],
        );
        let expected: BTreeSet<String> = (0..5_000)
            .filter(|&i| module_of(i).is_some_and(|m| m / 4 == 41 / 4 && m >= 41))
            .map(synthetic_project_dir)
            .collect();
        let got: BTreeSet<String> = d.projects.iter().map(|p| p.dir.to_string()).collect();
        assert!(!expected.is_empty());
        assert_same(&got, &expected);
        // Root files and CI config → nothing.
        let d = affected_projects(
            &s,
            None,
            &changes(&["README.md", ".github/workflows/ci.yml"]),
        );
        assert!(d.projects.is_empty());
        // 1,000 changes at once agree with the per-file answers combined.
        let changed = synthetic_changes(&s, 1_000, 9);
        let all: BTreeSet<String> = affected_projects(&s, None, &changed)
            .projects
            .iter()
            .map(|p| p.dir.to_string())
            .collect();
        let sample: Vec<&ChangedFile> = changed.iter().step_by(97).collect();
        for c in sample {
            for p in affected_projects(&s, None, std::slice::from_ref(c)).projects {
                assert!(all.contains(p.dir.as_str()), "{} from {}", p.dir, c.path);
            }
        }
        // The same repo described by a config with a glob gives the same answer.
        let cfg = config(
            "sluice.yaml",
            "version: 1\nprojects:\n  - dir: envs/*/*/*\n    autoplan: {when_modified: ['**']}\n",
        );
        let with_cfg: BTreeSet<String> = affected_projects(&s, Some(&cfg), &changed)
            .projects
            .iter()
            .map(|p| p.dir.to_string())
            .collect();
        assert_same(&with_cfg, &all);
    }
}
