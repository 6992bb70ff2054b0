//! Server-side repo rules (PRODUCT.md §19): what the operator lets each repository's config do —
//! Atlantis' `repos.yaml`, read as-is, or the same fields under `repos:` in Sluice's server config
//! ([`ServerRulesConfig`]) — and [`effective_config`], which applies them to a repository's
//! config: the settings each project really runs with, or refusals that name the rule.
//!
//! Semantics follow Atlantis (`server/core/config/raw/global_cfg.go`, `valid/global_cfg.go`):
//! every rule whose `id` matches the repository (exact `github.com/owner/name`, or `/regex/`
//! matched anywhere in it) applies, in file order, a later rule's key replacing an earlier one's;
//! a repository config may set `workflow`, requirements and the other governed keys only when
//! `allowed_overrides` lists them, may define `workflows` only with
//! `allow_custom_workflows: true`, may name only workflows that exist (in the repository's file or
//! the server's) and, when `allowed_workflows` is set, only those. Under configured rules the
//! base is Atlantis' own default entry (nothing may be overridden, no custom workflows), except
//! that `apply_requirements` default to Sluice's `[approved]`. Without any rules
//! ([`ServerRules::unconfigured`]) a repository may set everything Sluice supports: its config
//! is read from the base branch, which the repository's own reviewers control.
//!
//! Pure: the app reads the files and hands text (or the deserialised server config) in.

use std::collections::BTreeMap;
use std::fmt;

use marked_yaml::Node;
use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode, MarkedSequenceNode};
use serde::{Deserialize, Serialize};

use super::diag::{Diagnostic, has_errors};
use super::policy::rego::{PolicySetConfig, SetOrigin, policies_block_node};
use super::repo_config::{Located, Pos, ProjectConfig, RepoConfig};
use super::types::{ApplyRequirement, RepoName};
use super::workflow::{DEFAULT_WORKFLOW, RunSyntax, Workflow, WorkflowOrigin, workflows_node};
use super::yaml::{
    self, Anchors, Key, Key::Ignored, Key::Known, Key::Unsupported, is_null, pos, pos_of_span,
};

/// Most `repos` entries a rules file may have.
pub const MAX_REPO_RULES: usize = 2_000;

/// A key a repository config may set only when a matching rule lists it in `allowed_overrides`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OverrideKey {
    PlanRequirements,
    ApplyRequirements,
    ImportRequirements,
    Workflow,
    DeleteSourceBranchOnMerge,
    RepoLocking,
    RepoLocks,
    PolicyCheck,
    CustomPolicyCheck,
    SilencePrComments,
}

impl OverrideKey {
    pub const ALL: [OverrideKey; 10] = [
        OverrideKey::PlanRequirements,
        OverrideKey::ApplyRequirements,
        OverrideKey::ImportRequirements,
        OverrideKey::Workflow,
        OverrideKey::DeleteSourceBranchOnMerge,
        OverrideKey::RepoLocking,
        OverrideKey::RepoLocks,
        OverrideKey::PolicyCheck,
        OverrideKey::CustomPolicyCheck,
        OverrideKey::SilencePrComments,
    ];

    pub fn key(self) -> &'static str {
        match self {
            OverrideKey::PlanRequirements => "plan_requirements",
            OverrideKey::ApplyRequirements => "apply_requirements",
            OverrideKey::ImportRequirements => "import_requirements",
            OverrideKey::Workflow => "workflow",
            OverrideKey::DeleteSourceBranchOnMerge => "delete_source_branch_on_merge",
            OverrideKey::RepoLocking => "repo_locking",
            OverrideKey::RepoLocks => "repo_locks",
            OverrideKey::PolicyCheck => "policy_check",
            OverrideKey::CustomPolicyCheck => "custom_policy_check",
            OverrideKey::SilencePrComments => "silence_pr_comments",
        }
    }

    pub fn from_key(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.key() == s)
    }
}

impl fmt::Display for OverrideKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// A Go-syntax regular expression written between slashes (`/^main$/`), compiled once.
/// Matching is unanchored, as Go's `MatchString`.
#[derive(Debug, Clone)]
pub struct SlashRegex {
    /// As written, slashes included.
    pub text: String,
    pub regex: regex::Regex,
}

impl PartialEq for SlashRegex {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}
impl Eq for SlashRegex {}

impl SlashRegex {
    /// `Ok(None)` when `text` is not between slashes; the error is a sentence.
    pub fn parse(text: &str) -> Result<Option<Self>, String> {
        let Some(inner) = text
            .strip_prefix('/')
            .and_then(|t| t.strip_suffix('/'))
            .filter(|_| text.len() >= 2)
        else {
            return Ok(None);
        };
        regex::RegexBuilder::new(inner)
            .size_limit(1 << 20)
            .build()
            .map(|regex| {
                Some(SlashRegex {
                    text: text.to_string(),
                    regex,
                })
            })
            .map_err(|e| format!("`{text}` is not a valid regular expression: {e}"))
    }

    pub fn is_match(&self, s: &str) -> bool {
        self.regex.is_match(s)
    }
}

/// Which repositories a rule is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepoMatcher {
    /// `github.com/owner/name` (or `owner/name`), compared case-insensitively like GitHub does.
    Exact(String),
    Regex(SlashRegex),
}

impl RepoMatcher {
    /// Whether the rule is for the repository `id` (`github.com/owner/name`).
    pub fn matches(&self, id: &str) -> bool {
        match self {
            RepoMatcher::Exact(e) => {
                e.eq_ignore_ascii_case(id)
                    || id
                        .split_once('/')
                        .is_some_and(|(_, short)| e.eq_ignore_ascii_case(short))
            }
            RepoMatcher::Regex(r) => r.is_match(id),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            RepoMatcher::Exact(e) => e,
            RepoMatcher::Regex(r) => &r.text,
        }
    }
}

/// The repository id rules match: Atlantis' `{host}/{owner}/{name}` (`github.com/acme/infra`).
pub fn repo_id(host: &str, repo: &RepoName) -> String {
    format!("{host}/{}", repo.full())
}

/// One `repos` entry. `None` means the entry does not set the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoRule {
    pub pos: Pos,
    pub id: RepoMatcher,
    /// The PR base branches Sluice acts on for matching repositories.
    pub branch: Option<SlashRegex>,
    /// Where the repository's config file is (default: Sluice's usual names at the root).
    pub repo_config_file: Option<String>,
    pub plan_requirements: Option<Vec<ApplyRequirement>>,
    pub apply_requirements: Option<Vec<ApplyRequirement>>,
    pub import_requirements: Option<Vec<ApplyRequirement>>,
    /// The server workflow matching repositories' projects run.
    pub workflow: Option<Located<String>>,
    pub allowed_overrides: Option<Vec<OverrideKey>>,
    pub allowed_workflows: Option<Vec<Located<String>>>,
    pub allow_custom_workflows: Option<bool>,
    pub policy_check: Option<bool>,
}

/// The operator's rules: `repos`, the server's `workflows` and `policies`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerRules {
    /// Where they were read from (`repos.yaml`, or the server config's name); empty when
    /// unconfigured.
    pub file: String,
    /// `false`: [`ServerRules::unconfigured`].
    pub configured: bool,
    pub repos: Vec<RepoRule>,
    /// The server's workflows by name (`default` always exists: built in, or redefined here).
    pub workflows: BTreeMap<String, Workflow>,
    /// Policy sets that apply to every repository (their `path`s are server paths).
    pub policy_sets: Vec<PolicySetConfig>,
}

impl ServerRules {
    /// No rules configured: every repository may set every key Sluice supports and define its
    /// own workflows; projects without a `workflow` run `default`.
    pub fn unconfigured() -> Self {
        let mut workflows = BTreeMap::new();
        workflows.insert(DEFAULT_WORKFLOW.to_string(), Workflow::default_workflow());
        ServerRules {
            file: String::new(),
            configured: false,
            repos: Vec::new(),
            workflows,
            policy_sets: Vec::new(),
        }
    }
}

/// The server settings for one repository, merged over every matching rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoSettings {
    pub branch: Option<SlashRegex>,
    pub repo_config_file: Option<String>,
    pub plan_requirements: Vec<ApplyRequirement>,
    pub apply_requirements: Vec<ApplyRequirement>,
    /// `None`: the same as `apply_requirements` (import and `state rm` are behind the apply gate).
    pub import_requirements: Option<Vec<ApplyRequirement>>,
    /// The workflow projects run unless they may and do name another.
    pub workflow: Workflow,
    pub allowed_overrides: Vec<OverrideKey>,
    /// Empty: any existing workflow.
    pub allowed_workflows: Vec<String>,
    pub allow_custom_workflows: bool,
    pub policy_check: bool,
    /// For messages: the rule that decided each key (`repos.yaml:4:5 (id /.*/)`), by key name.
    pub decided_by: BTreeMap<&'static str, String>,
}

impl ServerRules {
    /// Merges every rule matching `repo_id` (`github.com/owner/name`), in file order.
    pub fn settings_for(&self, repo_id: &str) -> RepoSettings {
        let mut s = RepoSettings {
            branch: None,
            repo_config_file: None,
            plan_requirements: Vec::new(),
            apply_requirements: vec![ApplyRequirement::Approved],
            import_requirements: None,
            workflow: self
                .workflows
                .get(DEFAULT_WORKFLOW)
                .cloned()
                .unwrap_or_else(Workflow::default_workflow),
            allowed_overrides: if self.configured {
                Vec::new()
            } else {
                OverrideKey::ALL.to_vec()
            },
            allowed_workflows: Vec::new(),
            allow_custom_workflows: !self.configured,
            policy_check: true,
            decided_by: BTreeMap::new(),
        };
        for rule in self.repos.iter().filter(|r| r.id.matches(repo_id)) {
            let by = format!(
                "{}:{}:{} (id {})",
                self.file,
                rule.pos.line,
                rule.pos.column,
                rule.id.as_str()
            );
            let mut note = |k: &'static str| {
                s.decided_by.insert(k, by.clone());
            };
            // As Atlantis' `MatchingRepo`: the last matching rule's `branch` decides, set or not.
            s.branch = rule.branch.clone();
            if s.branch.is_some() {
                note("branch");
            }
            if let Some(f) = &rule.repo_config_file {
                s.repo_config_file = Some(f.clone());
                note("repo_config_file");
            }
            if let Some(r) = &rule.plan_requirements {
                s.plan_requirements = r.clone();
                note("plan_requirements");
            }
            if let Some(r) = &rule.apply_requirements {
                s.apply_requirements = r.clone();
                note("apply_requirements");
            }
            if let Some(r) = &rule.import_requirements {
                s.import_requirements = Some(r.clone());
                note("import_requirements");
            }
            if let Some(w) = &rule.workflow {
                if let Some(wf) = self.workflows.get(&w.value) {
                    s.workflow = wf.clone();
                }
                note("workflow");
            }
            if let Some(o) = &rule.allowed_overrides {
                s.allowed_overrides = o.clone();
                note("allowed_overrides");
            }
            if let Some(w) = &rule.allowed_workflows {
                s.allowed_workflows = w.iter().map(|w| w.value.clone()).collect();
                note("allowed_workflows");
            }
            if let Some(a) = rule.allow_custom_workflows {
                s.allow_custom_workflows = a;
                note("allow_custom_workflows");
            }
            if let Some(p) = rule.policy_check {
                s.policy_check = p;
                note("policy_check");
            }
        }
        s
    }
}

impl RepoSettings {
    /// Whether Sluice acts on PRs into `base_branch`: the last matching rule's `branch` (a Go
    /// regular expression, matched unanchored) matches it, or that rule sets none — as Atlantis,
    /// which ignores every event of a pull request into another branch.
    pub fn base_branch_allowed(&self, base_branch: &str) -> bool {
        self.branch.as_ref().is_none_or(|b| b.is_match(base_branch))
    }

    /// The rule (`repos.yaml:4:5 (id /.*/)`) that decided `key`, when one did.
    pub fn decided_by(&self, key: &str) -> Option<&str> {
        self.decided_by.get(key).map(String::as_str)
    }

    fn who(&self, key: &str) -> String {
        match self.decided_by.get(key) {
            Some(by) => format!("the server's repo rules ({by})"),
            None => "the server's repo rules (no matching rule sets it)".to_string(),
        }
    }
}

/// What one project runs with, after the server's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectSettings {
    pub workflow: Workflow,
    pub plan_requirements: Vec<ApplyRequirement>,
    pub apply_requirements: Vec<ApplyRequirement>,
    pub import_requirements: Vec<ApplyRequirement>,
    /// Whether policies (YAML and Rego sets) are checked for this project.
    pub policy_check: bool,
}

/// A repository config with the server's rules applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveConfig {
    pub settings: RepoSettings,
    /// One entry per `config.projects` entry (same order); `None` when the config lists no
    /// projects — detected projects then use [`EffectiveConfig::detected_project`].
    pub projects: Option<Vec<ProjectSettings>>,
    /// Server policy sets, then the repository's.
    pub policy_sets: Vec<PolicySetConfig>,
}

impl EffectiveConfig {
    /// The settings of a project Sluice detected (no entry in the config): the server's.
    pub fn detected_project(&self) -> ProjectSettings {
        let s = &self.settings;
        ProjectSettings {
            workflow: s.workflow.clone(),
            plan_requirements: s.plan_requirements.clone(),
            apply_requirements: s.apply_requirements.clone(),
            import_requirements: s
                .import_requirements
                .clone()
                .unwrap_or_else(|| s.apply_requirements.clone()),
            policy_check: s.policy_check,
        }
    }
}

impl EffectiveConfig {
    /// The settings of the project made from `config`'s entry written at `entry`
    /// (`Project::config_pos`); a detected project (`None`, or an entry no longer there) gets
    /// [`EffectiveConfig::detected_project`]'s.
    pub fn project_at(&self, config: &RepoConfig, entry: Option<Pos>) -> ProjectSettings {
        let found = entry.and_then(|at| {
            let i = config.projects.as_ref()?.iter().position(|p| p.pos == at)?;
            self.projects.as_ref()?.get(i).cloned()
        });
        found.unwrap_or_else(|| self.detected_project())
    }
}

/// Applies `rules` to `config` for the repository `repo_id` (`github.com/owner/name`): the
/// settings of every project, or every refusal as a diagnostic at the place in the repository's
/// config that the rules forbid, naming the rule (file:line:col and id) that decides it.
pub fn effective_config(
    repo_id: &str,
    config: &RepoConfig,
    rules: &ServerRules,
) -> (Option<EffectiveConfig>, Vec<Diagnostic>) {
    let settings = rules.settings_for(repo_id);
    let mut diags = Vec::new();
    let file = config.file.as_str();
    let err = |at: Pos, msg: String, hint: String| {
        Diagnostic::error(file, at.line, at.column, msg).with_hint(hint)
    };
    let allowed = |k: OverrideKey| settings.allowed_overrides.contains(&k);

    // Keys the rules govern, at the repository level and per project.
    for (key, at) in &config.keys_set {
        if !allowed(*key) {
            diags.push(err(
                *at,
                format!(
                    "this repository may not set `{key}`: {} do not allow it",
                    settings.who("allowed_overrides")
                ),
                format!("the server's rule for this repository needs `allowed_overrides: [{key}]`"),
            ));
        }
    }
    for p in config.projects.iter().flatten() {
        for (key, at) in &p.keys_set {
            if *key == OverrideKey::PolicyCheck && !allowed(*key) {
                // Atlantis accepts it and ignores it.
                diags.push(
                    Diagnostic::warning(
                        file,
                        at.line,
                        at.column,
                        format!(
                            "`policy_check` has no effect: {} do not allow this repository to set it",
                            settings.who("allowed_overrides")
                        ),
                    )
                    .with_hint("the server's rule needs `allowed_overrides: [policy_check]`"),
                );
                continue;
            }
            if !allowed(*key) {
                diags.push(err(
                    *at,
                    format!(
                        "project {}: this repository may not set `{key}`: {} do not allow it",
                        project_label(p),
                        settings.who("allowed_overrides")
                    ),
                    format!(
                        "the server's rule for this repository needs `allowed_overrides: [{key}]`"
                    ),
                ));
            }
        }
    }
    if let Some(first) = config.workflows.first() {
        if !settings.allow_custom_workflows {
            diags.push(err(
                first.pos,
                format!(
                    "this repository may not define workflows: {} set `allow_custom_workflows: false`",
                    settings.who("allow_custom_workflows")
                ),
                "pick a workflow the server defines (`workflow: NAME`), or ask the operator for \
                 `allow_custom_workflows: true`"
                    .to_string(),
            ));
        }
    }

    let mut projects = None;
    if let Some(list) = &config.projects {
        let mut out = Vec::with_capacity(list.len());
        for p in list {
            let workflow = match &p.workflow {
                None => settings.workflow.clone(),
                Some(w) => match resolve_workflow(&w.value, config, rules, &settings) {
                    Ok(wf) => wf,
                    Err((msg, hint)) => {
                        diags.push(err(
                            w.pos,
                            format!("project {}: {msg}", project_label(p)),
                            hint,
                        ));
                        settings.workflow.clone()
                    }
                },
            };
            let pick = |own: &Option<Vec<ApplyRequirement>>,
                        key: OverrideKey,
                        server: &[ApplyRequirement]| {
                match own {
                    Some(v) if allowed(key) => v.clone(),
                    _ => server.to_vec(),
                }
            };
            let apply = if p.keys_set.contains_key(&OverrideKey::ApplyRequirements)
                && allowed(OverrideKey::ApplyRequirements)
            {
                p.apply_requirements.clone()
            } else {
                settings.apply_requirements.clone()
            };
            let import_server = settings
                .import_requirements
                .clone()
                .unwrap_or_else(|| apply.clone());
            out.push(ProjectSettings {
                plan_requirements: pick(
                    &p.plan_requirements,
                    OverrideKey::PlanRequirements,
                    &settings.plan_requirements,
                ),
                import_requirements: pick(
                    &p.import_requirements,
                    OverrideKey::ImportRequirements,
                    &import_server,
                ),
                apply_requirements: apply,
                policy_check: match p.policy_check {
                    Some(v) if allowed(OverrideKey::PolicyCheck) => v,
                    _ => settings.policy_check,
                },
                workflow,
            });
        }
        projects = Some(out);
    }
    diags.sort_by_key(|d| (d.line, d.column));
    if has_errors(&diags) {
        return (None, diags);
    }
    let mut policy_sets = rules.policy_sets.clone();
    policy_sets.extend(config.policy_sets.iter().cloned());
    (
        Some(EffectiveConfig {
            settings,
            projects,
            policy_sets,
        }),
        diags,
    )
}

/// What the server's own rules say that this server does not carry out yet — refused when the
/// server starts (each at `file:line:col`), never silently ignored: a rule's
/// `repo_config_file`, `policy_check: false`, and server policy sets. Everything else the rules
/// say is carried out: `allowed_overrides`, `allow_custom_workflows`, `allowed_workflows`,
/// `workflow` and server `workflows` through [`effective_config`]; `plan_requirements` and
/// `apply_requirements` as the defaults of matching repositories' projects
/// ([`apply_effective`]); `branch` by not running pull requests into other branches
/// ([`RepoSettings::base_branch_allowed`]).
pub fn server_not_yet_enforced(rules: &ServerRules) -> Vec<Diagnostic> {
    let file = rules.file.as_str();
    let mut diags = Vec::new();
    let mut refuse = |at: Pos, what: String, hint: &str| {
        diags.push(
            Diagnostic::error(
                file,
                at.line,
                at.column,
                format!(
                    "{what}: this Sluice server does not carry it out yet, and ignoring it would \
                     run something other than what the rules say"
                ),
            )
            .with_hint(hint.to_string()),
        );
    };
    for rule in &rules.repos {
        let id = rule.id.as_str();
        if let Some(f) = &rule.repo_config_file {
            refuse(
                rule.pos,
                format!("rule `{id}`: `repo_config_file: {f}`"),
                "remove it; Sluice reads sluice.yaml or atlantis.yaml at the repository root",
            );
        }
        if rule.policy_check == Some(false) {
            refuse(
                rule.pos,
                format!("rule `{id}`: `policy_check: false`"),
                "remove it; Sluice checks the policies in force for every project",
            );
        }
    }
    for set in &rules.policy_sets {
        refuse(
            set.pos,
            format!("policy set `{}`", set.name),
            "remove it, or write the rules as Sluice policies (policy_dir)",
        );
    }
    diags
}

/// Writes what `effective` decided into `config` (the one it was computed from): each listed
/// project's `apply_requirements` and `plan_requirements` become the ones it really runs with —
/// its own when the rules allow it to set them, else the server's — so everything that reads
/// the configuration (the base branch's rules, the apply and plan gates) sees them.
pub fn apply_effective(config: &mut RepoConfig, effective: &EffectiveConfig) {
    let (Some(projects), Some(settings)) = (config.projects.as_mut(), &effective.projects) else {
        return;
    };
    for (p, s) in projects.iter_mut().zip(settings) {
        p.apply_requirements = s.apply_requirements.clone();
        p.plan_requirements = Some(s.plan_requirements.clone());
    }
}

fn project_label(p: &ProjectConfig) -> String {
    match p.known_name() {
        Some(n) => format!("`{n}`"),
        None => format!("`{}`", p.dir.value.as_str()),
    }
}

/// The workflow named `name` for a project of `config`: the repository's own definition when it
/// may define workflows, else the server's; refused when it exists nowhere or is not in
/// `allowed_workflows`.
fn resolve_workflow(
    name: &str,
    config: &RepoConfig,
    rules: &ServerRules,
    settings: &RepoSettings,
) -> Result<Workflow, (String, String)> {
    let repo_def = config.workflows.iter().find(|w| w.name == name);
    let server_def = rules.workflows.get(name);
    let chosen = match (repo_def, server_def) {
        (Some(w), _) if settings.allow_custom_workflows => w.clone(),
        (_, Some(w)) => w.clone(),
        (Some(_), None) => {
            return Err((
                format!(
                    "workflow `{name}` is defined in `{}`, which this repository may not do",
                    config.file
                ),
                "ask the operator for `allow_custom_workflows: true`, or pick a server workflow"
                    .to_string(),
            ));
        }
        (None, None) => {
            let mut known: Vec<&str> = config.workflows.iter().map(|w| w.name.as_str()).collect();
            known.extend(rules.workflows.keys().map(String::as_str));
            known.sort();
            known.dedup();
            let where_ = if rules.configured {
                format!(
                    "neither in `{}` nor in the server's rules ({})",
                    config.file, rules.file
                )
            } else {
                format!(
                    "not in `{}`, and without server rules only `default` exists on the server",
                    config.file
                )
            };
            return Err((
                format!("workflow `{name}` is not defined anywhere: {where_}"),
                format!(
                    "define it under `workflows:`, or use one of: {}",
                    known.join(", ")
                ),
            ));
        }
    };
    let from_repo = repo_def.is_some() && settings.allow_custom_workflows;
    if !settings.allowed_workflows.is_empty()
        && !from_repo
        && name != DEFAULT_WORKFLOW
        && !settings.allowed_workflows.iter().any(|w| w == name)
    {
        return Err((
            format!(
                "workflow `{name}` is not allowed for this repository by {}",
                settings.who("allowed_workflows")
            ),
            format!(
                "allowed workflows: {}",
                settings.allowed_workflows.join(", ")
            ),
        ));
    }
    Ok(chosen)
}

// ---------------------------------------------------------------------------------------------
// Reading rules: Atlantis' repos.yaml, and Sluice's server config.

const TOP_KEYS: &[(&str, Key)] = &[
    ("repos", Known),
    ("workflows", Known),
    ("policies", Known),
    (
        "metrics",
        Ignored("Sluice's metrics are configured in its server config"),
    ),
    (
        "team_authz",
        Unsupported(
            "it restricts who may run which command; ignoring it would let everyone run them. Use \
             Sluice policies' `access` rules instead",
        ),
    ),
];

const REPO_KEYS: &[(&str, Key)] = &[
    ("id", Known),
    ("branch", Known),
    ("repo_config_file", Known),
    ("plan_requirements", Known),
    ("apply_requirements", Known),
    ("import_requirements", Known),
    ("workflow", Known),
    ("allowed_overrides", Known),
    ("allowed_workflows", Known),
    ("allow_custom_workflows", Known),
    ("policy_check", Known),
    ("custom_policy_check", Known),
    ("pre_workflow_hooks", Known),
    ("post_workflow_hooks", Known),
    ("autodiscover", Known),
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

/// Parses an Atlantis `repos.yaml` (server-side repo config) as-is: anchors and merge keys
/// expanded, unknown keys and duplicates refused, every problem at `file:line:col`. The rules
/// are returned only when there is no error.
pub fn parse_repos_yaml(file: &str, text: &str) -> (Option<ServerRules>, Vec<Diagnostic>) {
    let mut r = yaml::Reader::new(file, "start with `repos:`, a list of `- id: ...` entries");
    let Some(root) = r.load_with(text, Anchors::Expand) else {
        return (None, r.diags);
    };
    let rules = rules_from_node(&mut r, &root);
    finish(r, rules)
}

fn finish(
    mut r: yaml::Reader,
    rules: Option<ServerRules>,
) -> (Option<ServerRules>, Vec<Diagnostic>) {
    r.diags.sort_by_key(|d| (d.line, d.column));
    r.diags.dedup();
    if has_errors(&r.diags) {
        (None, r.diags)
    } else {
        (rules, r.diags)
    }
}

/// Sluice's server config equivalent of `repos.yaml`: the same keys, as the `config` crate
/// deserialises them from TOML or YAML (`[[repos]]` tables, `[workflows.NAME]`, `[policies]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerRulesConfig {
    pub repos: Vec<serde_json::Value>,
    pub workflows: Option<serde_json::Value>,
    pub policies: Option<serde_json::Value>,
}

impl ServerRulesConfig {
    /// True when nothing is configured (the config can then use [`ServerRules::unconfigured`]).
    pub fn is_empty(&self) -> bool {
        self.repos.is_empty() && self.workflows.is_none() && self.policies.is_none()
    }
}

/// Reads Sluice's server-config rules with the same checks and messages as `repos.yaml`.
/// `source` names the config file in diagnostics (positions are not known after
/// deserialisation, so messages name the key instead).
pub fn rules_from_config(
    source: &str,
    cfg: &ServerRulesConfig,
) -> (Option<ServerRules>, Vec<Diagnostic>) {
    let mut root = serde_json::Map::new();
    root.insert(
        "repos".to_string(),
        serde_json::Value::Array(cfg.repos.clone()),
    );
    if let Some(w) = &cfg.workflows {
        root.insert("workflows".to_string(), w.clone());
    }
    if let Some(p) = &cfg.policies {
        root.insert("policies".to_string(), p.clone());
    }
    let node = json_to_node(&serde_json::Value::Object(root));
    let mut r = yaml::Reader::new(source, "add a `repos` list");
    let rules = rules_from_node(&mut r, &node);
    finish(r, rules)
}

/// A deserialised value as a YAML node without positions: strings stay strings (never
/// coerced), numbers and booleans read as written.
fn json_to_node(v: &serde_json::Value) -> Node {
    let span = marked_yaml::Span::new_blank();
    let scalar = |s: String, coerce: bool| {
        let mut n = MarkedScalarNode::new(span, s);
        n.set_coerce(coerce);
        Node::Scalar(n)
    };
    match v {
        serde_json::Value::Null => scalar("~".to_string(), true),
        serde_json::Value::Bool(b) => scalar(b.to_string(), true),
        serde_json::Value::Number(n) => scalar(n.to_string(), true),
        serde_json::Value::String(s) => scalar(s.clone(), false),
        serde_json::Value::Array(a) => Node::Sequence(MarkedSequenceNode::new(
            span,
            a.iter().map(json_to_node).collect(),
        )),
        serde_json::Value::Object(o) => {
            let mut m = MarkedMappingNode::new_empty(span);
            for (k, v) in o {
                m.insert(MarkedScalarNode::new(span, k.clone()), json_to_node(v));
            }
            Node::Mapping(m)
        }
    }
}

fn rules_from_node(r: &mut yaml::Reader, root: &Node) -> Option<ServerRules> {
    let map = r.mapping(root, "the repo rules")?;
    r.check_keys(map, "at the top level of the repo rules", TOP_KEYS);
    let origin = WorkflowOrigin::Server {
        file: r.file.to_string(),
    };
    let mut workflows = BTreeMap::new();
    workflows.insert(DEFAULT_WORKFLOW.to_string(), Workflow::default_workflow());
    if let Some(node) = map.get_node("workflows") {
        for w in workflows_node(r, node, &origin, RunSyntax::Verbatim) {
            workflows.insert(w.name.clone(), w);
        }
    }
    let policy_sets = map
        .get_node("policies")
        .map(|n| policies_block_node(r, n, SetOrigin::Server))
        .unwrap_or_default();
    let mut repos = Vec::new();
    if let Some(node) = map.get_node("repos") {
        if let Some(seq) = r.sequence(node, "repos") {
            if r.at_most(seq, "repos", MAX_REPO_RULES) {
                for entry in seq.iter() {
                    if let Some(rule) = repo_rule(r, entry, &workflows) {
                        repos.push(rule);
                    }
                }
            }
        }
    }
    Some(ServerRules {
        file: r.file.to_string(),
        configured: true,
        repos,
        workflows,
        policy_sets,
    })
}

fn requirements(r: &mut yaml::Reader, node: &Node, key: &str) -> Option<Vec<ApplyRequirement>> {
    let mut out = Vec::new();
    let mut ok = true;
    for item in r.string_list(node, key)? {
        let req = match item.value.as_str() {
            "approved" => ApplyRequirement::Approved,
            "mergeable" => ApplyRequirement::Mergeable,
            "undiverged" => ApplyRequirement::Undiverged,
            other => {
                r.error(
                    item.pos,
                    format!("`{other}` is not a valid requirement in `{key}`"),
                    Some("valid values: approved, mergeable, undiverged".to_string()),
                );
                ok = false;
                continue;
            }
        };
        if !out.contains(&req) {
            out.push(req);
        }
    }
    ok.then_some(out)
}

/// `allowed_overrides`: the repo-config keys a repository may set.
fn allowed_overrides(r: &mut yaml::Reader, node: &Node) -> Option<Vec<OverrideKey>> {
    let list = r.string_list(node, "allowed_overrides")?;
    let mut out = Vec::new();
    for item in list {
        match OverrideKey::from_key(&item.value) {
            Some(k) => out.push(k),
            None => r.error(
                item.pos,
                format!("`{}` is not a valid override", item.value),
                Some(format!(
                    "valid overrides: {}",
                    OverrideKey::ALL
                        .iter()
                        .map(|k| k.key())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            ),
        }
    }
    Some(out)
}

/// Keys of a `repos` entry Sluice refuses: a custom policy check, workflow hooks (they would run
/// outside the sandbox), server-side `autodiscover` other than `auto`.
fn refuse_server_only_keys(r: &mut yaml::Reader, map: &MarkedMappingNode) {
    if let Some(n) = map.get_node("custom_policy_check") {
        if r.boolean(n, "custom_policy_check") == Some(true) {
            r.error(
                pos(n),
                "`custom_policy_check: true` is not supported",
                Some(
                    "Sluice decides policies from conftest-style Rego sets and its own policies, \
                     not from a tool's output; configure `policies.policy_sets`"
                        .to_string(),
                ),
            );
        }
    }
    for hooks in ["pre_workflow_hooks", "post_workflow_hooks"] {
        if let Some(n) = map.get_node(hooks) {
            let empty = matches!(n, Node::Sequence(s) if s.is_empty())
                || matches!(n, Node::Scalar(s) if is_null(s));
            if !empty {
                r.error(
                    pos(n),
                    format!("`{hooks}` are not supported"),
                    Some(
                        "Atlantis runs them on the server with the server's environment; Sluice runs \
                         nothing outside a project's sandbox. Move the commands into the workflow's \
                         `run` steps"
                            .to_string(),
                    ),
                );
            }
        }
    }
    if let Some(n) = map.get_node("autodiscover") {
        let mode = n
            .as_mapping()
            .and_then(|m| m.get_node("mode"))
            .and_then(|m| m.as_scalar())
            .map(|s| s.as_str().to_string());
        if mode.as_deref() != Some("auto") {
            r.error(
                pos(n),
                "server-side `autodiscover` other than `mode: auto` is not supported",
                Some("Sluice plans the listed projects, or detects them when a repository lists none (Atlantis' `auto`)".to_string()),
            );
        }
    }
}

fn repo_rule(
    r: &mut yaml::Reader,
    node: &Node,
    workflows: &BTreeMap<String, Workflow>,
) -> Option<RepoRule> {
    let map = r.mapping(node, "each entry of `repos`")?;
    let at = map
        .keys()
        .next()
        .map_or_else(|| pos(node), |k| pos_of_span(k.span()));
    r.check_keys(map, "in a `repos` entry", REPO_KEYS);
    let before = r.diags.iter().filter(|d| d.is_error()).count();
    let id = match map.get_node("id").and_then(|n| r.string(n, "id")) {
        None => {
            if map.get_node("id").is_none() {
                r.error(
                    at,
                    "`repos` entry has no `id`",
                    Some("add `id: github.com/owner/name`, or `id: /regex/`".to_string()),
                );
            }
            None
        }
        Some(id) => match SlashRegex::parse(&id.value) {
            Ok(Some(re)) => Some(RepoMatcher::Regex(re)),
            Ok(None) => Some(RepoMatcher::Exact(id.value)),
            Err(e) => {
                r.error(id.pos, e, None);
                None
            }
        },
    };
    let branch = match map.get_node("branch").and_then(|n| r.string(n, "branch")) {
        None => None,
        Some(b) if b.value.is_empty() => None,
        Some(b) => match SlashRegex::parse(&b.value) {
            Ok(Some(re)) => Some(re),
            Ok(None) => {
                r.error(
                    b.pos,
                    format!(
                        "`branch` `{}` must be a regular expression between slashes",
                        b.value
                    ),
                    Some(format!("write `/^{}$/`", b.value)),
                );
                None
            }
            Err(e) => {
                r.error(b.pos, e, None);
                None
            }
        },
    };
    let repo_config_file = map
        .get_node("repo_config_file")
        .and_then(|n| r.string(n, "repo_config_file"))
        .and_then(|f| {
            if f.value.starts_with('/') || f.value.contains("../") || f.value.contains("..\\") {
                r.error(
                    f.pos,
                    format!(
                        "`repo_config_file` `{}` must be a path inside the repository",
                        f.value
                    ),
                    None,
                );
                None
            } else {
                Some(f.value)
            }
        });
    let plan_requirements = map
        .get_node("plan_requirements")
        .and_then(|n| requirements(r, n, "plan_requirements"));
    let apply_requirements = map
        .get_node("apply_requirements")
        .and_then(|n| requirements(r, n, "apply_requirements"));
    let import_requirements = map
        .get_node("import_requirements")
        .and_then(|n| requirements(r, n, "import_requirements"));
    let workflow = map
        .get_node("workflow")
        .and_then(|n| r.string(n, "workflow"));
    if let Some(w) = &workflow {
        if !workflows.contains_key(&w.value) {
            r.error(
                w.pos,
                format!("workflow `{}` is not defined", w.value),
                Some(format!(
                    "define it under `workflows:`; defined: {}",
                    workflows.keys().cloned().collect::<Vec<_>>().join(", ")
                )),
            );
        }
    }
    let allowed_overrides = map
        .get_node("allowed_overrides")
        .and_then(|n| allowed_overrides(r, n));
    let allowed_workflows = map.get_node("allowed_workflows").and_then(|n| {
        let list = r.string_list(n, "allowed_workflows")?;
        for w in &list {
            if !workflows.contains_key(&w.value) {
                r.error(
                    w.pos,
                    format!("workflow `{}` is not defined", w.value),
                    Some("define it under `workflows:`".to_string()),
                );
            }
        }
        Some(list)
    });
    let allow_custom_workflows = map
        .get_node("allow_custom_workflows")
        .and_then(|n| r.boolean(n, "allow_custom_workflows"));
    let policy_check = map
        .get_node("policy_check")
        .and_then(|n| r.boolean(n, "policy_check"));
    refuse_server_only_keys(r, map);
    let after = r.diags.iter().filter(|d| d.is_error()).count();
    if after > before {
        return None;
    }
    Some(RepoRule {
        pos: at,
        id: id?,
        branch,
        repo_config_file,
        plan_requirements,
        apply_requirements,
        import_requirements,
        workflow,
        allowed_overrides,
        allowed_workflows,
        allow_custom_workflows,
        policy_check,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::repo_config::parse_atlantis_config;

    const REPO: &str = "github.com/acme/infra";

    fn rules(text: &str) -> ServerRules {
        let (r, d) = parse_repos_yaml("repos.yaml", text);
        r.unwrap_or_else(|| panic!("{d:#?}"))
    }

    /// `name: plan [..] apply [..]` for each project of `atlantis` once `rules` apply, as the
    /// app loads it ([`effective_config`] then [`apply_effective`]); or the errors.
    fn check(rules_text: Option<&str>, atlantis: &str) -> String {
        let rules = rules_text.map_or_else(ServerRules::unconfigured, rules);
        let (config, d) = parse_atlantis_config("atlantis.yaml", atlantis);
        let mut config = config.unwrap_or_else(|| panic!("{d:#?}"));
        let (effective, d) = effective_config(REPO, &config, &rules);
        let Some(effective) = effective else {
            return d.iter().map(|d| format!("{d}\n")).collect();
        };
        apply_effective(&mut config, &effective);
        let show =
            |r: &[ApplyRequirement]| r.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(",");
        let mut out = String::new();
        for p in config.projects.iter().flatten() {
            out.push_str(&format!(
                "{}: plan [{}] apply [{}]\n",
                p.dir.value.as_str(),
                show(p.plan_requirements.as_deref().unwrap_or_default()),
                show(&p.apply_requirements)
            ));
        }
        out
    }

    const TWO: &str = "version: 3\nprojects:\n- dir: a\n- dir: b\n  plan_requirements: [mergeable]\n  apply_requirements: [undiverged]\n";

    #[test]
    fn server_requirements_are_the_default_and_a_repository_overrides_them_only_when_allowed() {
        // Without rules: Sluice's defaults, and the repository's own values.
        insta::assert_snapshot!(check(None, TWO), @"
        a: plan [] apply [approved]
        b: plan [mergeable] apply [undiverged]
        ");
        // A rule's requirements are every project's default…
        let strict = "repos:\n- id: /.*/\n  plan_requirements: [approved]\n  apply_requirements: [approved, mergeable]\n";
        let one = "version: 3\nprojects:\n- dir: a\n";
        insta::assert_snapshot!(check(Some(strict), one), @"a: plan [approved] apply [approved,mergeable]");
        // …the repository may replace them when `allowed_overrides` says so…
        let allowing =
            format!("{strict}  allowed_overrides: [plan_requirements, apply_requirements]\n");
        insta::assert_snapshot!(check(Some(&allowing), TWO), @"
        a: plan [approved] apply [approved,mergeable]
        b: plan [mergeable] apply [undiverged]
        ");
        // …and is refused, naming the rule, when it does not.
        insta::assert_snapshot!(check(Some(strict), TWO), @"
        atlantis.yaml:5:3: error: project `b`: this repository may not set `plan_requirements`: the server's repo rules (no matching rule sets it) do not allow it
          hint: the server's rule for this repository needs `allowed_overrides: [plan_requirements]`
        atlantis.yaml:6:3: error: project `b`: this repository may not set `apply_requirements`: the server's repo rules (no matching rule sets it) do not allow it
          hint: the server's rule for this repository needs `allowed_overrides: [apply_requirements]`
        ");
        // `apply_requirements: []` on the server: nothing required, unlike Sluice's default.
        let none = "repos:\n- id: /.*/\n  apply_requirements: []\n";
        insta::assert_snapshot!(check(Some(none), one), @"a: plan [] apply []");
    }

    #[test]
    fn the_last_matching_rule_decides_the_branch_as_in_atlantis() {
        let r = rules(
            "repos:\n- id: /.*/\n  branch: /^main$/\n- id: github.com/acme/infra\n- id: github.com/acme/legacy\n  branch: /^(main|master)$/\n",
        );
        let infra = r.settings_for(REPO);
        assert!(
            infra.base_branch_allowed("develop"),
            "the exact rule sets no branch"
        );
        let other = r.settings_for("github.com/acme/other");
        assert!(other.base_branch_allowed("main") && !other.base_branch_allowed("develop"));
        assert_eq!(other.decided_by("branch"), Some("repos.yaml:2:3 (id /.*/)"));
        let legacy = r.settings_for("github.com/acme/legacy");
        assert!(legacy.base_branch_allowed("master") && !legacy.base_branch_allowed("main2"));
        // Unanchored, as Go's MatchString.
        assert!(
            rules("repos:\n- id: /.*/\n  branch: /release/\n")
                .settings_for(REPO)
                .base_branch_allowed("old-release-1")
        );
    }

    #[test]
    fn rules_carried_out_are_no_longer_refused_and_the_others_still_are() {
        let carried = rules(
            "repos:\n- id: /.*/\n  branch: /^main$/\n  plan_requirements: [approved]\n  apply_requirements: [approved, mergeable]\n- id: /x/\n  apply_requirements: []\n",
        );
        assert!(server_not_yet_enforced(&carried).is_empty());
        let pending = rules(
            "repos:\n- id: /.*/\n  repo_config_file: infra/atlantis.yaml\n  policy_check: false\n",
        );
        let shown: Vec<String> = server_not_yet_enforced(&pending)
            .iter()
            .map(ToString::to_string)
            .collect();
        insta::assert_snapshot!(shown.join("\n"), @"
        repos.yaml:2:3: error: rule `/.*/`: `repo_config_file: infra/atlantis.yaml`: this Sluice server does not carry it out yet, and ignoring it would run something other than what the rules say
          hint: remove it; Sluice reads sluice.yaml or atlantis.yaml at the repository root
        repos.yaml:2:3: error: rule `/.*/`: `policy_check: false`: this Sluice server does not carry it out yet, and ignoring it would run something other than what the rules say
          hint: remove it; Sluice checks the policies in force for every project
        ");
    }
}
