//! Policies in the flows: where they come from (always the **base** commit of the PR — a PR is
//! judged by the policy it wants to change — plus the server's mandatory policies), team
//! membership from GitHub (briefly cached; failures fail closed), and the facts evaluation needs.
//! The rules themselves are `core::policy`.
//!
//! Rego policy sets (`policy_sets:`) are compiled here from the base commit's `.rego` files (a
//! syntax error breaks the set at `file:line:col`, failing closed) and evaluated on a plan's
//! `plan.json` by [`rego_on_plan`], on a thread of its own with a hard deadline on top of the
//! interpreter's own time budget (`limits.rego_eval_ms`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::adapters::git::{FileRead, GitRepo};
use crate::adapters::plan_files;
use crate::app::bounded::{self, BoundedError};
use crate::app::ports::{GitHubApi, GitHubError};
use crate::core::audit::AuditPolicyDecision;
use crate::core::base_rules::BaseRules;
use crate::core::diag::{Diagnostic, has_errors};
use crate::core::policy::rego::{self, RegoEvaluation, RegoLimits, SetOrigin};
use crate::core::policy::{self, Decision, Outcome, Policy, TeamMembership};
use crate::core::projects::Project;
use crate::core::repo_config::RepoConfig;
use crate::core::types::{CommitSha, ProjectName};

/// The policies that govern one PR, with where each file came from.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    pub policies: Vec<Policy>,
    /// Git blob SHA of each repository policy file (recorded in the audit log).
    pub blobs: BTreeMap<String, String>,
    /// Problems in the policy files. With errors, `policies` is empty and `broken` is true:
    /// Sluice then refuses to apply (fail closed) and says why.
    pub diagnostics: Vec<Diagnostic>,
    pub broken: bool,
    /// The base branch's projects, by real dir and workspace: the names policy scopes match.
    pub base: BaseRules,
}

impl PolicySet {
    /// The names the base branch gives `project`'s dir and workspace (its explicit names and
    /// the derived one — or, for a project new in the PR, those of the nearest configured dir
    /// above it, see [`BaseRules`]), except the PR's own: policies scoped by name match any of
    /// them, so a PR can neither rename a project out of a policy's scope nor escape it by
    /// adding a new project inside a governed dir.
    pub fn base_names_of(&self, project: &Project) -> Vec<ProjectName> {
        let mut out = self.base.identity(&project.dir, &project.workspace).names;
        out.retain(|n| n != &project.name);
        out
    }

    pub fn is_empty(&self) -> bool {
        self.policies.is_empty() && !self.broken
    }

    /// Decisions as the audit log records them, with the blob SHA of each policy's file.
    pub fn audit(&self, decisions: &[Decision]) -> Vec<AuditPolicyDecision> {
        decisions
            .iter()
            .filter(|d| d.outcome != Outcome::NotApplicable)
            .map(|d| d.to_audit(self.blobs.get(&d.file).cloned()))
            .collect()
    }

    /// The refusal text for a broken policy set.
    pub fn broken_message(&self) -> String {
        let mut s = String::from(
            "the policy files on the base branch have errors, so no policy can be checked and apply is refused (fail closed):\n\n```\n",
        );
        for d in self.diagnostics.iter().filter(|d| d.is_error()) {
            s.push_str(&format!("{d}\n"));
        }
        s.push_str("```");
        s
    }
}

/// Server-side policies: every `*.yaml`/`*.yml` in `dir`, loaded at start-up. Errors stop the
/// server from starting (they would otherwise silently disable a mandatory rule).
pub fn load_server_policies(dir: &Path) -> anyhow::Result<Vec<Policy>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)
        .with_context(|| format!("reading the policy dir {}", dir.display()))?
    {
        let path = entry?.path();
        if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            files.push((path.display().to_string(), text));
        }
    }
    files.sort();
    let (policies, diags) = policy::load_policies(&files, &[]);
    match policies {
        // Errors above name the host path (for the operator, at start-up); from here on the
        // policies go into PR comments and the audit log, which must not show the host layout.
        Some(mut p) => {
            for policy in &mut p {
                let name = Path::new(&policy.file)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                policy.file = format!("{}/{name}", super::layout::SERVER_POLICIES);
            }
            Ok(p)
        }
        None => {
            let msgs: Vec<String> = diags
                .iter()
                .filter(|d| d.is_error())
                .map(|d| d.to_string())
                .collect();
            anyhow::bail!("the server's policies have errors:\n{}", msgs.join("\n"))
        }
    }
}

/// The policies in force for a PR whose base is `base`: the repository's `policies/*.yaml` and
/// the `policies:` of its `sluice.yaml` at that commit (unless `repo_policies` is off), plus the
/// server's mandatory ones (which repository files cannot remove: all policies must pass).
///
/// The Rego policy sets the base configuration declares are compiled from the base commit too
/// (paths relative to the repository root); `org` (the repository's owner) places the bare team
/// slugs of their `owners`.
pub fn policies_at(
    git: &GitRepo,
    base: &CommitSha,
    server: &[Policy],
    repo_policies: bool,
    org: &str,
) -> anyhow::Result<PolicySet> {
    let mut set = PolicySet::default();
    let mut files = Vec::new();
    let mut inline = Vec::new();
    // The base's own policies count whatever the server's repo rules say of the rest of its
    // configuration: those rules refuse runs, never a policy.
    let rules = super::repo_state::RepoRules::unconfigured();
    let (config, file, diags) = super::repo_state::load_config_at(git, base, &rules)?;
    if repo_policies {
        // Only `policies/` is listed (not the whole tree), and every file is read in one call.
        let paths: Vec<String> = git
            .list_dir(base, policy::POLICY_DIR)?
            .into_iter()
            .filter(|p| policy::is_policy_file(p))
            .collect();
        let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
        for (path, read) in paths.iter().zip(git.read_files_bounded(base, &refs)?) {
            match read {
                FileRead::Text(text) => files.push((path.clone(), text)),
                // An unread policy file breaks the set: it fails closed.
                FileRead::TooLarge { bytes } => set.diagnostics.push(super::repo_state::too_large(
                    path,
                    bytes,
                    git.limits().file_bytes,
                )),
                FileRead::Missing => {}
            }
        }
        if let Some(cfg) = &config {
            inline = cfg.policies.clone();
        }
        // Blob ids for the audit log, in one call: `<commit>:<path>` for every source file.
        let mut sources: Vec<String> = files.iter().map(|(p, _)| p.clone()).collect();
        sources.extend(file.filter(|_| !inline.is_empty()));
        for (path, blob) in sources.iter().zip(git.blob_ids(base, &sources)?) {
            if let Some(blob) = blob {
                set.blobs.insert(path.clone(), blob);
            }
        }
        set.diagnostics
            .extend(diags.into_iter().filter(|d| d.file.starts_with("sluice")));
    }
    let (policies, diags) = policy::load_policies(&files, &inline);
    set.diagnostics.extend(diags);
    let mut rego = Vec::new();
    if repo_policies {
        if let Some(cfg) = config.as_ref().filter(|c| !c.policy_sets.is_empty()) {
            rego = rego_sets_at(git, base, cfg, org, &mut set)?;
        }
    }
    match policies {
        Some(mut p) if !has_errors(&set.diagnostics) => {
            p.extend(rego);
            p.extend(server.iter().cloned());
            set.policies = p;
        }
        _ => {
            set.broken = true;
            set.policies = server.to_vec();
        }
    }
    // The base's project names count for every policy's scope, the server's included. Only
    // needed (and its tree only read) when some policy is in force.
    if !set.policies.is_empty() {
        set.base = BaseRules::new(config.as_ref(), &git.snapshot(base)?);
    }
    Ok(set)
}

/// Compiles the repository's Rego policy sets from the `.rego` files at `base` (never the PR's
/// head). Unreadable or broken files are error diagnostics in `set` (the whole set then fails
/// closed); blob ids of the files and of the config that declares them go to `set.blobs`.
fn rego_sets_at(
    git: &GitRepo,
    base: &CommitSha,
    config: &RepoConfig,
    org: &str,
    set: &mut PolicySet,
) -> anyhow::Result<Vec<Policy>> {
    let tree = git.snapshot(base)?;
    let mut out = Vec::new();
    for cfg in config
        .policy_sets
        .iter()
        .filter(|s| s.origin == SetOrigin::Repo)
    {
        let paths: Vec<&str> = tree
            .files
            .iter()
            .filter(|p| rego::set_includes(cfg, p))
            .map(String::as_str)
            .collect();
        let mut files = Vec::new();
        for (path, read) in paths.iter().zip(git.read_files_bounded(base, &paths)?) {
            match read {
                FileRead::Text(text) => files.push((path.to_string(), text)),
                FileRead::TooLarge { bytes } => set.diagnostics.push(super::repo_state::too_large(
                    path,
                    bytes,
                    git.limits().file_bytes,
                )),
                FileRead::Missing => {}
            }
        }
        let (compiled, diags) = rego::compile_set(cfg, &files);
        set.diagnostics.extend(diags);
        let mut sources: Vec<String> = files.iter().map(|(p, _)| p.clone()).collect();
        sources.push(cfg.file.clone());
        for (path, blob) in sources.iter().zip(git.blob_ids(base, &sources)?) {
            if let Some(blob) = blob {
                set.blobs.insert(path.clone(), blob);
            }
        }
        if let Some(c) = compiled {
            let mut policy = rego::to_policy(&c, org);
            if let Some(r) = &mut policy.rego {
                r.namespaces = rego::namespaces_of(config);
            }
            out.push(policy);
        }
    }
    Ok(out)
}

/// Whether any policy is a Rego policy set (which needs [`rego_on_plan`] before evaluation).
pub fn has_rego(policies: &[Policy]) -> bool {
    policies.iter().any(|p| p.rego.is_some())
}

/// `policies` with every Rego set's result on the plan saved beside `plan_file` attached
/// (`plan.json`). Each set runs on a thread of its own: the interpreter stops itself after
/// `budget` (its cooperative timer), and Sluice stops waiting at twice that plus a second — a
/// set that has no result by then, whose plan JSON cannot be read, or that could not start,
/// fails (closed) with a reason saying why. Policies without Rego are returned as they are.
pub async fn rego_on_plan(policies: &[Policy], plan_file: &Path, budget: Duration) -> Vec<Policy> {
    if !has_rego(policies) {
        return policies.to_vec();
    }
    let json = plan_files::read_json_text(plan_file).map(Arc::new);
    let limits = RegoLimits {
        time_budget: budget,
        ..RegoLimits::default()
    };
    let mut out = Vec::with_capacity(policies.len());
    for p in policies {
        let Some(r) = &p.rego else {
            out.push(p.clone());
            continue;
        };
        let name = r.set.config.name.clone();
        let evaluation = match &json {
            None => RegoEvaluation::failed(
                &name,
                "the plan's JSON (`terraform show -json`) could not be read; run plan again"
                    .to_string(),
            ),
            Some(json) => {
                let (set, json, ns) = (r.set.clone(), json.clone(), r.namespaces.clone());
                let hard = budget * 2 + Duration::from_secs(1);
                match bounded::run("evaluating a Rego policy set", hard, move || {
                    rego::evaluate_set(&set, &json, &ns, &limits)
                })
                .await
                {
                    Ok(ev) => ev,
                    Err(BoundedError::TimedOut { .. }) => RegoEvaluation::failed(
                        &name,
                        format!(
                            "evaluation did not finish within {} ms (limits.rego_eval_ms) and was abandoned",
                            hard.as_millis()
                        ),
                    ),
                    Err(e) => RegoEvaluation::failed(&name, format!("not evaluated: {e}")),
                }
            }
        };
        out.push(p.with_rego_evaluation(evaluation));
    }
    out
}

/// Team members from GitHub, cached for a short while (policies are evaluated several times per
/// PR, and team changes should take effect within a minute).
pub struct TeamCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, CachedTeam>>,
}

/// When a team was read, and its members (`None`: GitHub says it does not exist).
type CachedTeam = (Instant, Option<Vec<String>>);

impl TeamCache {
    pub fn new(ttl: Duration) -> TeamCache {
        TeamCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Resolves every team the policies name. A team GitHub says does not exist is recorded as
    /// such; a team that could not be read (an error) is left unresolved — both fail closed.
    pub async fn resolve(&self, github: &dyn GitHubApi, policies: &[Policy]) -> TeamMembership {
        let mut out = TeamMembership::new();
        for (org, slug) in policy::teams_referenced(policies) {
            let key = format!("{org}/{slug}").to_ascii_lowercase();
            let cached = {
                let entries = self.entries.lock().expect("team cache lock");
                entries
                    .get(&key)
                    .filter(|(at, _)| at.elapsed() < self.ttl)
                    .map(|(_, m)| m.clone())
            };
            let members = match cached {
                Some(m) => Some(m),
                None => match github.team_members(&org, &slug).await {
                    Ok(m) => Some(Some(m)),
                    Err(GitHubError::NotFound(_)) => Some(None),
                    Err(e) => {
                        tracing::warn!(team = %key, error = %e, "team membership unavailable; rules naming it fail closed");
                        None
                    }
                },
            };
            if let Some(m) = members {
                self.entries
                    .lock()
                    .expect("team cache lock")
                    .insert(key, (Instant::now(), m.clone()));
                out.insert(&org, &slug, m);
            }
        }
        out
    }
}
