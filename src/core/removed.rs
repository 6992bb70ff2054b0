//! Projects a pull request removes: what exists on the base branch and no longer at its head.
//!
//! A change whose effect lies outside the files it changes — every `.tf` file of a project
//! deleted, its directory moved, its entry dropped from `sluice.yaml` — affects no project at
//! the head, yet after the merge the project's resources still exist and nothing manages them.
//! [`removed_projects`] compares the projects of the base tree with those of the head tree, by
//! the directory terraform runs in and the workspace (what state and locks key on), and says
//! why each one disappears. The app turns each into a failing part of the plan run (its lock
//! taken, the advice to plan its destroy from the base commit), until a destroy plan of it has
//! been applied on the pull request.

use std::collections::{BTreeSet, HashSet};

use super::projects::{ChangeKind, ChangedFile, Project};
use super::types::{ProjectDir, Workspace};

/// Why a project of the base branch is not a project at the head.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "why", rename_all = "snake_case")]
pub enum Removal {
    /// Its directory holds no `.tf`/`.tofu` file at the head (deleted, or the dir is gone).
    FilesDeleted,
    /// Its files were renamed into other directories, which are projects at the head; their
    /// state is not the old project's state unless the backend configuration says so.
    Moved { to: Vec<ProjectDir> },
    /// Its directory still holds Terraform files, but the head's configuration no longer lists
    /// it (an entry removed from `sluice.yaml`, a `projects:` list that leaves it out).
    DroppedFromConfig,
}

/// A project of the base branch that the head does not have, as the base defines it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RemovedProject {
    /// The project exactly as the base branch's configuration and tree define it: what a
    /// destroy plan from the base commit runs.
    pub project: Project,
    #[serde(flatten)]
    pub removal: Removal,
}

/// Whether `changed` can remove a project at all: a file deleted or renamed, or a
/// configuration file (`config_files`, e.g. `sluice.yaml`) changed. When not, the base tree
/// need not be read.
pub fn may_remove(changed: &[ChangedFile], config_files: &[&str]) -> bool {
    changed.iter().any(|c| {
        matches!(c.kind, ChangeKind::Deleted | ChangeKind::Renamed { .. })
            || config_files.contains(&c.path.as_str())
    })
}

/// The projects of `base` (every project of the base commit) that `head` (every project of
/// the head commit) does not have, keyed by dir and workspace, in `base`'s order.
/// `head_has_tf(dir)` says whether `dir` holds Terraform files at the head; `changed` is the
/// pull request's diff, whose renames tell a move from a deletion.
pub fn removed_projects(
    base: &[Project],
    head: &[Project],
    head_has_tf: impl Fn(&ProjectDir) -> bool,
    changed: &[ChangedFile],
) -> Vec<RemovedProject> {
    let at_head: HashSet<(&ProjectDir, &Workspace)> =
        head.iter().map(|p| (&p.dir, &p.workspace)).collect();
    let base_dirs: HashSet<&ProjectDir> = base.iter().map(|p| &p.dir).collect();
    base.iter()
        .filter(|p| !at_head.contains(&(&p.dir, &p.workspace)))
        .map(|p| {
            let removal = if head_has_tf(&p.dir) {
                Removal::DroppedFromConfig
            } else {
                let to = moved_to(&p.dir, head, &base_dirs, changed);
                if to.is_empty() {
                    Removal::FilesDeleted
                } else {
                    Removal::Moved { to }
                }
            };
            RemovedProject {
                project: p.clone(),
                removal,
            }
        })
        .collect()
}

/// The head projects' dirs (new at the head) that files of `dir` went to: a file renamed out
/// of `dir`, or deleted there while a file of the same name was added in the new dir (git
/// diffs without rename detection report a move so).
fn moved_to(
    dir: &ProjectDir,
    head: &[Project],
    base_dirs: &HashSet<&ProjectDir>,
    changed: &[ChangedFile],
) -> Vec<ProjectDir> {
    let split = |path: &str| match path.rsplit_once('/') {
        Some((d, f)) => (d.to_string(), f.to_string()),
        None => (".".to_string(), path.to_string()),
    };
    let deleted: BTreeSet<String> = changed
        .iter()
        .filter(|c| c.kind == ChangeKind::Deleted)
        .map(|c| split(&c.path))
        .filter(|(d, _)| d == dir.as_str())
        .map(|(_, f)| f)
        .collect();
    let mut targets: BTreeSet<String> = BTreeSet::new();
    for c in changed {
        let (to_dir, file) = split(&c.path);
        let moved = match &c.kind {
            ChangeKind::Renamed { from } => split(from).0 == dir.as_str(),
            ChangeKind::Added => deleted.contains(&file),
            _ => false,
        };
        if moved {
            targets.insert(to_dir);
        }
    }
    let mut out: Vec<ProjectDir> = head
        .iter()
        .map(|p| &p.dir)
        .filter(|d| targets.contains(d.as_str()) && !base_dirs.contains(d))
        .cloned()
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::projects::{RepoSnapshot, all_projects};
    use crate::core::repo_config::parse_repo_config;

    fn snap(files: &[&str]) -> RepoSnapshot {
        RepoSnapshot {
            files: files.iter().map(|f| f.to_string()).collect(),
            ..RepoSnapshot::default()
        }
    }

    fn change(path: &str, kind: ChangeKind) -> ChangedFile {
        ChangedFile {
            path: path.to_string(),
            kind,
        }
    }

    /// Detects the projects of both trees (with their `sluice.yaml`, if any) and compares them,
    /// as the server does: `name (dir:workspace) why`.
    fn compare(
        base: (&[&str], Option<&str>),
        head: (&[&str], Option<&str>),
        changed: &[ChangedFile],
    ) -> Vec<String> {
        let projects = |(files, yaml): (&[&str], Option<&str>)| {
            let config = yaml.map(|y| parse_repo_config("sluice.yaml", y).0.expect("config"));
            let s = snap(files);
            (all_projects(&s, config.as_ref()).0, s)
        };
        let (base_projects, _) = projects(base);
        let (head_projects, head_snap) = projects(head);
        let has_tf = |d: &ProjectDir| {
            head_snap.files.iter().any(|f| {
                f.rsplit_once('/').map_or(".", |(p, _)| p) == d.as_str()
                    && (f.ends_with(".tf") || f.ends_with(".tofu"))
            })
        };
        removed_projects(&base_projects, &head_projects, has_tf, changed)
            .into_iter()
            .map(|r| {
                format!(
                    "{} ({}:{}) {:?}",
                    r.project.name, r.project.dir, r.project.workspace, r.removal
                )
            })
            .collect()
    }

    #[test]
    fn what_a_pull_request_removes() {
        let both = ["a/main.tf", "b/main.tf"];
        let cases: Vec<(&str, Vec<String>, Vec<&str>)> = vec![
            (
                "nothing removed: same projects",
                compare((&both, None), (&both, None), &[]),
                vec![],
            ),
            (
                "every .tf file of a detected project deleted",
                compare(
                    (&both, None),
                    (&["b/main.tf", "a/README.md"], None),
                    &[change("a/main.tf", ChangeKind::Deleted)],
                ),
                vec!["a (a:default) FilesDeleted"],
            ),
            (
                "a detected project's directory deleted",
                compare(
                    (&both, None),
                    (&["b/main.tf"], None),
                    &[change("a/main.tf", ChangeKind::Deleted)],
                ),
                vec!["a (a:default) FilesDeleted"],
            ),
            (
                "a project directory renamed: old one gone, new one appears",
                compare(
                    (&both, None),
                    (&["b/main.tf", "c/main.tf"], None),
                    &[change(
                        "c/main.tf",
                        ChangeKind::Renamed {
                            from: "a/main.tf".into(),
                        },
                    )],
                ),
                vec!["a (a:default) Moved { to: [ProjectDir(\"c\")] }"],
            ),
            (
                "a project directory moved, as git reports it without rename detection",
                compare(
                    (&both, None),
                    (&["b/main.tf", "c/main.tf"], None),
                    &[
                        change("a/main.tf", ChangeKind::Deleted),
                        change("c/main.tf", ChangeKind::Added),
                    ],
                ),
                vec!["a (a:default) Moved { to: [ProjectDir(\"c\")] }"],
            ),
            (
                "a project deleted while an unrelated one is added: not a move",
                compare(
                    (&both, None),
                    (&["b/main.tf", "c/other.tf"], None),
                    &[
                        change("a/main.tf", ChangeKind::Deleted),
                        change("c/other.tf", ChangeKind::Added),
                    ],
                ),
                vec!["a (a:default) FilesDeleted"],
            ),
            (
                "a configured project's files deleted",
                compare(
                    (
                        &both,
                        Some("version: 1\nprojects:\n  - name: app\n    dir: a\n  - dir: b\n"),
                    ),
                    (
                        &["b/main.tf"],
                        Some("version: 1\nprojects:\n  - name: app\n    dir: a\n  - dir: b\n"),
                    ),
                    &[change("a/main.tf", ChangeKind::Deleted)],
                ),
                vec!["app (a:default) FilesDeleted"],
            ),
            (
                "a project dropped from sluice.yaml while its .tf files stay",
                compare(
                    (
                        &both,
                        Some("version: 1\nprojects:\n  - name: app\n    dir: a\n  - dir: b\n"),
                    ),
                    (&both, Some("version: 1\nprojects:\n  - dir: b\n")),
                    &[ChangedFile::modified("sluice.yaml")],
                ),
                vec!["app (a:default) DroppedFromConfig"],
            ),
            (
                "one workspace of a dir dropped; the other stays",
                compare(
                    (
                        &both,
                        Some(
                            "version: 1\nprojects:\n  - dir: a\n    workspace: blue\n  - dir: a\n    workspace: green\n",
                        ),
                    ),
                    (
                        &both,
                        Some("version: 1\nprojects:\n  - dir: a\n    workspace: green\n"),
                    ),
                    &[ChangedFile::modified("sluice.yaml")],
                ),
                vec!["a:blue (a:blue) DroppedFromConfig"],
            ),
            (
                "a project renamed in sluice.yaml (same dir and workspace) is not removed",
                compare(
                    (
                        &both,
                        Some("version: 1\nprojects:\n  - name: old\n    dir: a\n"),
                    ),
                    (
                        &both,
                        Some("version: 1\nprojects:\n  - name: new\n    dir: a\n"),
                    ),
                    &[ChangedFile::modified("sluice.yaml")],
                ),
                vec![],
            ),
            (
                "a configured dir that already had no .tf files at the base is not a project there",
                compare(
                    (
                        &["b/main.tf"],
                        Some("version: 1\nprojects:\n  - dir: a\n  - dir: b\n"),
                    ),
                    (&["b/main.tf"], Some("version: 1\nprojects:\n  - dir: b\n")),
                    &[ChangedFile::modified("sluice.yaml")],
                ),
                vec![],
            ),
        ];
        let mut failures = Vec::new();
        for (name, got, want) in cases {
            if got != want {
                failures.push(format!("{name}:\n  got  {got:?}\n  want {want:?}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn only_deletions_renames_and_config_changes_can_remove() {
        let config = ["sluice.yaml", "atlantis.yaml"];
        assert!(!may_remove(&[ChangedFile::modified("a/main.tf")], &config));
        assert!(!may_remove(
            &[change("a/new.tf", ChangeKind::Added)],
            &config
        ));
        assert!(may_remove(
            &[change("a/main.tf", ChangeKind::Deleted)],
            &config
        ));
        assert!(may_remove(
            &[change(
                "b/x.tf",
                ChangeKind::Renamed {
                    from: "a/x.tf".into()
                }
            )],
            &config
        ));
        assert!(may_remove(&[ChangedFile::modified("sluice.yaml")], &config));
        assert!(may_remove(
            &[ChangedFile::modified("atlantis.yaml")],
            &config
        ));
    }
}
