//! Delivery after merge (PRODUCT.md §15): which projects apply when a pull request merges, how
//! the merge commit's plan is compared with the plan that was reviewed, and in which order
//! projects apply.
//!
//! Pure like the rest of the core: the app reads the base branch's configuration, the saved
//! plans and the store, and asks these what to do. Nothing here decides *whether* a reviewer
//! approved (that is [`super::apply_gate`]) or what a policy says ([`super::policy`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::glob::build_glob;
use super::graph;
use super::plan::{Action, Plan};
use super::projects::Project;
use super::repo_config::{DirSpec, RepoConfig};
use super::types::{ProjectDir, ProjectName, Workspace};

/// When a project's reviewed plan is applied (`apply_mode` in the base branch's
/// `sluice.yaml`, per project or at the top level; default `comment`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplyMode {
    /// Apply before merge, by an `apply` comment (Atlantis's flow).
    #[default]
    Comment,
    /// Plan on the PR, gate as the required check `sluice/apply-gate`, apply the merge commit
    /// after the merge. An `apply` comment is refused.
    OnMerge,
    /// Either: an `apply` comment before merge, or the merge commit after it (what was applied
    /// by comment has no plan left to apply at merge).
    CommentOrMerge,
}

impl ApplyMode {
    pub const ALL: [ApplyMode; 3] = [
        ApplyMode::Comment,
        ApplyMode::OnMerge,
        ApplyMode::CommentOrMerge,
    ];

    /// The value as written in `sluice.yaml`.
    pub fn as_str(self) -> &'static str {
        match self {
            ApplyMode::Comment => "comment",
            ApplyMode::OnMerge => "on_merge",
            ApplyMode::CommentOrMerge => "comment_or_merge",
        }
    }

    pub fn parse(s: &str) -> Option<ApplyMode> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// An `apply` comment may apply the project.
    pub fn by_comment(self) -> bool {
        matches!(self, ApplyMode::Comment | ApplyMode::CommentOrMerge)
    }

    /// The merge commit is applied after the pull request merges.
    pub fn on_merge(self) -> bool {
        matches!(self, ApplyMode::OnMerge | ApplyMode::CommentOrMerge)
    }
}

/// What happens when the merge commit's plan differs from the reviewed one
/// (`merge_plan_check` in the base branch's `sluice.yaml`; default `strict`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MergePlanCheck {
    /// Refuse and report: nothing is applied that nobody reviewed.
    #[default]
    Strict,
    /// Apply the merge commit's plan if the base branch's policies still pass on it.
    Replan,
}

impl MergePlanCheck {
    pub const ALL: [MergePlanCheck; 2] = [MergePlanCheck::Strict, MergePlanCheck::Replan];

    pub fn as_str(self) -> &'static str {
        match self {
            MergePlanCheck::Strict => "strict",
            MergePlanCheck::Replan => "replan",
        }
    }

    pub fn parse(s: &str) -> Option<MergePlanCheck> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// The apply mode the base configuration gives a project, looked up by its dir and workspace
/// (never by the name a PR gives it): the first listed entry whose dir is the project's — an
/// exact entry before a glob one — and whose workspace matches; its `apply_mode`, else the
/// top-level one, else `comment`.
pub fn mode_of(config: Option<&RepoConfig>, dir: &ProjectDir, workspace: &Workspace) -> ApplyMode {
    let Some(config) = config else {
        return ApplyMode::default();
    };
    entry_of(config, dir, workspace)
        .and_then(|p| p.apply_mode)
        .unwrap_or(config.apply_mode)
}

/// Whether the configuration applies any project after merge (its top-level `apply_mode`, or
/// one project's). When not, a merge needs no delivery at all.
pub fn uses_merge(config: Option<&RepoConfig>) -> bool {
    config.is_some_and(|c| {
        c.apply_mode.on_merge()
            || c.projects
                .iter()
                .flatten()
                .any(|p| p.apply_mode.is_some_and(ApplyMode::on_merge))
    })
}

/// Whether a project a pull request changes is applied after it merges (and so gated by
/// `sluice/apply-gate` before): every `on_merge` project; a `comment_or_merge` project unless it
/// was applied by comment and holds no newer plan for the head (`planned_at_head`: a current
/// plan for the pull request's head; `applied_by_comment`: a plan of it was applied on the pull
/// request). A project neither applied nor planned is delivered — and refused for having no
/// reviewed plan, never skipped.
pub fn delivered(mode: ApplyMode, planned_at_head: bool, applied_by_comment: bool) -> bool {
    match mode {
        ApplyMode::Comment => false,
        ApplyMode::OnMerge => true,
        ApplyMode::CommentOrMerge => planned_at_head || !applied_by_comment,
    }
}

/// Atlantis's `execution_order_group` the base configuration gives a project, looked up like
/// [`mode_of`]; 0 when unlisted.
pub fn group_of(config: Option<&RepoConfig>, dir: &ProjectDir, workspace: &Workspace) -> i64 {
    config
        .and_then(|c| entry_of(c, dir, workspace))
        .map_or(0, |p| p.execution_order_group)
}

/// The `execution_order_group` of each of `projects` (by name, for [`apply_order`]).
pub fn groups_of(config: Option<&RepoConfig>, projects: &[Project]) -> HashMap<ProjectName, i64> {
    projects
        .iter()
        .map(|p| (p.name.clone(), group_of(config, &p.dir, &p.workspace)))
        .collect()
}

/// The configured project entry of a dir and workspace: the first listed exact entry, else the
/// first glob entry that matches.
fn entry_of<'c>(
    config: &'c RepoConfig,
    dir: &ProjectDir,
    workspace: &Workspace,
) -> Option<&'c super::repo_config::ProjectConfig> {
    let entries = config.projects.as_deref().unwrap_or_default();
    let exact = entries.iter().find(|p| {
        &p.workspace == workspace && matches!(&p.dir.value, DirSpec::Exact(d) if d == dir)
    });
    exact.or_else(|| {
        entries.iter().find(|p| {
            &p.workspace == workspace
                && matches!(&p.dir.value, DirSpec::Glob(g)
                    if build_glob(g).is_ok_and(|g| g.compile_matcher().is_match(dir.as_str())))
        })
    })
}

/// One planned change, as the comparison sees it: the resource address and the action
/// (`create`, `update`, `delete`, `replace`, `forget`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Change {
    pub address: String,
    pub action: String,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.action, self.address)
    }
}

/// The changes a plan makes, sorted: every resource change but no-ops and data reads.
pub fn changes(plan: &Plan) -> Vec<Change> {
    let mut out: Vec<Change> = plan
        .resource_changes
        .iter()
        .filter_map(|rc| {
            let action = match rc.change.actions {
                Action::NoOp | Action::Read => return None,
                Action::Create => "create",
                Action::Update => "update",
                Action::Delete => "delete",
                Action::DeleteThenCreate | Action::CreateThenDelete => "replace",
                Action::Forget => "forget",
            };
            Some(Change {
                address: rc.address.clone(),
                action: action.to_string(),
            })
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// How the merge commit's plan compares with the reviewed one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Comparison {
    /// The same addresses with the same actions.
    Same,
    /// What only the reviewed plan had, and what only the merge commit's plan has.
    Differs {
        reviewed_only: Vec<Change>,
        merged_only: Vec<Change>,
    },
}

/// Compares two sorted change lists ([`changes`]).
pub fn compare(reviewed: &[Change], merged: &[Change]) -> Comparison {
    let r: BTreeSet<&Change> = reviewed.iter().collect();
    let m: BTreeSet<&Change> = merged.iter().collect();
    if r == m {
        return Comparison::Same;
    }
    Comparison::Differs {
        reviewed_only: r.difference(&m).map(|c| (*c).clone()).collect(),
        merged_only: m.difference(&r).map(|c| (*c).clone()).collect(),
    }
}

/// A dependency among the projects of one apply: `project` needs `needs` applied first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    pub project: ProjectName,
    pub needs: ProjectName,
}

/// The order in which `projects` apply: `depends_on` first (a project after every project it
/// depends on), then Atlantis's `execution_order_group` (ascending), then the given order.
/// Dependencies on projects outside `projects` are ignored (they are not part of this apply).
/// The config parser refuses cycles, so none reach here; should one, its projects keep the
/// given order. Also returns the dependencies among `projects`, for "blocked by".
pub fn apply_order(
    projects: &[Project],
    groups: &HashMap<ProjectName, i64>,
) -> (Vec<usize>, Vec<Dependency>) {
    let names: BTreeMap<&ProjectName, usize> = projects
        .iter()
        .enumerate()
        .map(|(i, p)| (&p.name, i))
        .collect();
    let mut deps = Vec::new();
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); projects.len()];
    for (i, p) in projects.iter().enumerate() {
        for d in &p.depends_on {
            if let Some(&j) = names.get(d) {
                edges[i].push(j);
                deps.push(Dependency {
                    project: p.name.clone(),
                    needs: d.clone(),
                });
            }
        }
    }
    // Ties go by group, then by the given order: nodes are `(group, index)`.
    let key = |i: usize| (groups.get(&projects[i].name).copied().unwrap_or(0), i);
    let nodes: BTreeSet<(i64, usize)> = (0..projects.len()).map(key).collect();
    let order =
        graph::stable_topo_order(&nodes, |&(_, i)| edges[i].iter().map(|&j| key(j)).collect())
            .into_iter()
            .map(|(_, i)| i)
            .collect();
    (order, deps)
}

/// Which project of `dependencies` blocks `project` given the projects that did not apply:
/// the first one it needs (directly) that failed, was refused or was itself blocked.
pub fn blocked_by<'a>(
    project: &ProjectName,
    dependencies: &'a [Dependency],
    not_applied: &BTreeSet<ProjectName>,
) -> Option<&'a ProjectName> {
    dependencies
        .iter()
        .filter(|d| &d.project == project)
        .map(|d| &d.needs)
        .find(|n| not_applied.contains(*n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::repo_config::parse_repo_config;

    fn config(text: &str) -> RepoConfig {
        let (c, d) = parse_repo_config("sluice.yaml", text);
        c.unwrap_or_else(|| panic!("config parses: {d:?}"))
    }

    fn mode(c: &RepoConfig, dir: &str) -> ApplyMode {
        mode_of(
            Some(c),
            &ProjectDir::new(dir).expect("dir"),
            &Workspace::default(),
        )
    }

    #[test]
    fn apply_mode_is_looked_up_by_dir_exact_before_glob_then_top_level() {
        let c = config(
            "version: 1\napply_mode: comment_or_merge\nprojects:\n  - dir: envs/*\n    apply_mode: on_merge\n  - dir: envs/dev\n    apply_mode: comment\n  - dir: other\n",
        );
        assert_eq!(mode(&c, "envs/dev"), ApplyMode::Comment);
        assert_eq!(mode(&c, "envs/prod"), ApplyMode::OnMerge);
        assert_eq!(mode(&c, "other"), ApplyMode::CommentOrMerge);
        assert_eq!(mode(&c, "unlisted"), ApplyMode::CommentOrMerge);
        assert!(uses_merge(Some(&c)));
        assert!(!uses_merge(None));
        assert!(!uses_merge(Some(&config("version: 1\n"))));
        assert!(uses_merge(Some(&config(
            "version: 1\nprojects:\n  - dir: a\n    apply_mode: comment_or_merge\n"
        ))));
        assert!(!uses_merge(Some(&config(
            "version: 1\nprojects:\n  - dir: a\n    apply_mode: comment\n"
        ))));
        assert_eq!(
            mode_of(
                None,
                &ProjectDir::new("x").expect("dir"),
                &Workspace::default()
            ),
            ApplyMode::Comment
        );
    }

    #[test]
    fn comment_or_merge_is_delivered_unless_applied_by_comment_and_not_planned_again() {
        use ApplyMode::*;
        assert!(!delivered(Comment, true, false));
        assert!(delivered(OnMerge, false, false));
        assert!(delivered(OnMerge, false, true));
        assert!(delivered(CommentOrMerge, true, false), "a reviewed plan");
        assert!(
            delivered(CommentOrMerge, false, false),
            "never planned: refused loudly"
        );
        assert!(
            !delivered(CommentOrMerge, false, true),
            "applied by comment"
        );
        assert!(
            delivered(CommentOrMerge, true, true),
            "planned again after an apply"
        );
    }

    fn project(name: &str, depends_on: &[&str]) -> Project {
        let mut p = Project::detected(ProjectDir::new(name).expect("dir"), Workspace::default());
        p.name = ProjectName::new(name).expect("name");
        p.depends_on = depends_on
            .iter()
            .map(|d| ProjectName::new(d).expect("name"))
            .collect();
        p
    }

    #[test]
    fn applies_follow_depends_on_then_execution_order_group_then_the_given_order() {
        let (c, d) = crate::core::repo_config::parse_atlantis_config(
            "atlantis.yaml",
            "version: 3\nprojects:\n  - name: other\n    dir: other\n    execution_order_group: 2\n  - name: app\n    dir: app\n    execution_order_group: 1\n    depends_on: [network]\n  - name: network\n    dir: network\n    execution_order_group: 1\n  - name: tail\n    dir: tail\n",
        );
        let c = c.unwrap_or_else(|| panic!("config parses: {d:?}"));
        let ps = vec![
            project("other", &[]),
            project("app", &["network"]),
            project("network", &[]),
            project("tail", &[]),
        ];
        let groups = groups_of(Some(&c), &ps);
        assert_eq!(groups[&ps[0].name], 2);
        assert_eq!(groups[&ps[3].name], 0, "unset is group 0");
        let (order, deps) = apply_order(&ps, &groups);
        let names: Vec<&str> = order.iter().map(|&i| ps[i].name.as_str()).collect();
        assert_eq!(names, ["tail", "network", "app", "other"]);
        // Without groups: the given order, each project after what it depends on.
        let (order, _) = apply_order(&ps, &HashMap::new());
        let names: Vec<&str> = order.iter().map(|&i| ps[i].name.as_str()).collect();
        assert_eq!(names, ["other", "network", "app", "tail"]);
        // Only the dependents of what did not apply are blocked, transitively by the caller.
        let failed: BTreeSet<ProjectName> = [ProjectName::new("network").expect("name")].into();
        assert_eq!(
            blocked_by(&ps[1].name, &deps, &failed).map(ProjectName::as_str),
            Some("network")
        );
        assert_eq!(blocked_by(&ps[0].name, &deps, &failed), None);
        assert_eq!(blocked_by(&ps[3].name, &deps, &failed), None);
    }

    fn ch(action: &str, address: &str) -> Change {
        Change {
            address: address.into(),
            action: action.into(),
        }
    }

    #[test]
    fn comparison_is_by_address_and_action() {
        let a = vec![
            ch("create", "null_resource.a"),
            ch("update", "null_resource.b"),
        ];
        assert_eq!(compare(&a, &a.clone()), Comparison::Same);
        let b = vec![
            ch("create", "null_resource.a"),
            ch("replace", "null_resource.b"),
        ];
        assert_eq!(
            compare(&a, &b),
            Comparison::Differs {
                reviewed_only: vec![ch("update", "null_resource.b")],
                merged_only: vec![ch("replace", "null_resource.b")],
            }
        );
        assert!(matches!(compare(&[], &a), Comparison::Differs { .. }));
    }
}
