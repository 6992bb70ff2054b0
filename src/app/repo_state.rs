//! What Sluice knows about a repository for one base/head pair: the files changed, the tree at
//! head, and the repository configuration — project definitions from the head (so a PR can add
//! projects), apply requirements from the base (so a PR cannot relax its own gate).
//! Shared by `preview`, the server and `config check`.
//!
//! Everything here is read within the repository's limits (see `adapters::git`): a `.tf` file
//! whose module calls Sluice did not read is a detection error, and the projects in its directory
//! are not planned — Sluice does not run what it could not read.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::adapters::git::{FileRead, GitRepo, human_bytes};
use crate::core::base_rules::{BaseRules, Requirements};
use crate::core::diag::{Diagnostic, has_errors};
use crate::core::projects::{self, ChangedFile, DetectOptions, Detection, Project, RepoSnapshot};
use crate::core::removed::{self, RemovedProject};
use crate::core::repo_config::{self, RepoConfig};
use crate::core::server_rules::{self, ServerRules};
use crate::core::types::{CommitSha, ProjectName, RepoName};
use crate::core::workflow::Workflow;

/// The server's repo rules (`repo_rules`) and the repository they are applied for.
#[derive(Debug, Clone)]
pub struct RepoRules {
    pub rules: Arc<ServerRules>,
    /// Atlantis' repository id, `github.com/owner/name` ([`server_rules::repo_id`]); for a local
    /// preview of no repository, `local/preview`, which only `/regex/` rules can match.
    pub repo_id: String,
    /// The base branch of the pull request (or the branch) the configuration is read for:
    /// projects whose Atlantis `branch` does not match it are left out
    /// ([`RepoConfig::for_base_branch`]). `None`: every project (a local preview).
    pub base_branch: Option<String>,
}

impl RepoRules {
    /// `rules` applied for `repo` (`None`: a local preview).
    pub fn new(rules: &Arc<ServerRules>, repo: Option<&RepoName>) -> RepoRules {
        RepoRules {
            rules: rules.clone(),
            repo_id: match repo {
                Some(r) => server_rules::repo_id("github.com", r),
                None => "local/preview".to_string(),
            },
            base_branch: None,
        }
    }

    /// The same rules, for pull requests into `base_branch`.
    pub fn into_branch(mut self, base_branch: &str) -> RepoRules {
        self.base_branch = Some(base_branch.to_string());
        self
    }

    /// The server's settings for this repository (its matching rules merged).
    pub fn settings(&self) -> server_rules::RepoSettings {
        self.rules.settings_for(&self.repo_id)
    }

    /// No rules: every key may be set, workflows may be defined (`sluice config check`
    /// without a server).
    pub fn unconfigured() -> RepoRules {
        RepoRules::new(&Arc::new(ServerRules::unconfigured()), None)
    }
}

pub struct RepoState {
    pub base: CommitSha,
    pub head: CommitSha,
    pub changed: Vec<ChangedFile>,
    pub snapshot: RepoSnapshot,
    /// The configuration at head, when the repository has one and it parsed.
    pub config: Option<RepoConfig>,
    /// The file it came from (`sluice.yaml`, `atlantis.yaml`, …).
    pub config_file: Option<String>,
    /// The base branch the configuration was read for ([`RepoRules::base_branch`]).
    pub base_branch: Option<String>,
    /// Problems found in the configuration at head. Errors stop every run.
    pub diagnostics: Vec<Diagnostic>,
    /// `.tf`/`.tofu` files at head that Sluice did not read because they are over a limit (error
    /// diagnostics, one per file). The projects in their directories are not planned.
    pub unread: Vec<Diagnostic>,
    /// The projects of the base branch that the head no longer has ([`removed::removed_projects`]),
    /// as the base tip defines them. Empty when the change deletes, renames no file and leaves
    /// the configuration alone, and when the base's configuration has errors.
    pub removed: Vec<RemovedProject>,
}

/// Reads and parses the repository's configuration file with `read(path)`, which returns the
/// file's text at some commit (or `None`), and applies the server's repo `rules` to it
/// ([`server_rules::effective_config`]): a key the repository may not set, a workflow it may not
/// define or that does not exist, is an error naming the rule. The config returned holds the
/// requirements each project really runs with ([`server_rules::apply_effective`]) and, when
/// `rules.base_branch` is set, only the projects for that base branch. Returns the config
/// (`None` when anything refuses it), its file name, and diagnostics.
pub fn load_config_files(
    read: impl Fn(&str) -> anyhow::Result<Option<String>>,
    rules: &RepoRules,
) -> anyhow::Result<(Option<RepoConfig>, Option<String>, Vec<Diagnostic>)> {
    let mut present = Vec::new();
    for name in repo_config::CONFIG_FILE_NAMES {
        if let Some(text) = read(name)? {
            present.push((name.to_string(), text));
        }
    }
    let (chosen, mut diags) = repo_config::choose_config_file(
        &present.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
    );
    let Some(chosen) = chosen else {
        return Ok((None, None, diags));
    };
    let text = &present
        .iter()
        .find(|(n, _)| n == chosen)
        .expect("chosen among present")
        .1;
    let (config, more) = if chosen.starts_with("atlantis") {
        repo_config::parse_atlantis_config(chosen, text)
    } else {
        repo_config::parse_repo_config(chosen, text)
    };
    diags.extend(more);
    // What the server's rules forbid is refused, never silently ignored.
    let config = match config {
        Some(mut c) => {
            let (effective, mut refused) =
                server_rules::effective_config(&rules.repo_id, &c, &rules.rules);
            refused.sort_by_key(|d| (d.line, d.column));
            refused.dedup();
            diags.extend(refused);
            effective.map(|e| {
                server_rules::apply_effective(&mut c, &e);
                match &rules.base_branch {
                    Some(b) => c.for_base_branch(b),
                    None => c,
                }
            })
        }
        None => None,
    };
    Ok((config, Some(chosen.to_string()), diags))
}

/// [`load_config_files`] at a commit, reading every candidate file in one git call. A
/// candidate larger than `limits.file_bytes` is a configuration error (nothing runs until it is
/// smaller): Sluice does not guess what an unread configuration says.
pub fn load_config_at(
    git: &GitRepo,
    commit: &CommitSha,
    rules: &RepoRules,
) -> anyhow::Result<(Option<RepoConfig>, Option<String>, Vec<Diagnostic>)> {
    let names = repo_config::CONFIG_FILE_NAMES;
    let read = git.read_files_bounded(commit, &names)?;
    if let Some((name, bytes)) = names.iter().zip(&read).find_map(|(n, f)| match f {
        FileRead::TooLarge { bytes } => Some((*n, *bytes)),
        _ => None,
    }) {
        let d = too_large(name, bytes, git.limits().file_bytes);
        return Ok((None, Some(name.to_string()), vec![d]));
    }
    let contents: Vec<Option<String>> = read
        .into_iter()
        .map(|f| match f {
            FileRead::Text(t) => Some(t),
            _ => None,
        })
        .collect();
    load_config_files(
        |path| {
            Ok(names
                .iter()
                .position(|n| *n == path)
                .and_then(|i| contents[i].clone()))
        },
        rules,
    )
}

/// The workflow `project` runs, as the configuration at `commit` and the server's `rules` decide
/// ([`server_rules::effective_config`]): its own `workflow:` (the repository's definition or the
/// server's), else the server rule's `workflow`, else `default`. Fails with the configuration's
/// errors when it is refused (the PR changed since its projects were found).
pub fn project_workflow(
    git: &GitRepo,
    commit: &CommitSha,
    rules: &RepoRules,
    project: &Project,
) -> anyhow::Result<Result<Workflow, String>> {
    let (config, file, diags) = load_config_at(git, commit, rules)?;
    let Some(config) = config else {
        if has_errors(&diags) {
            let errors: Vec<String> = diags
                .iter()
                .filter(|d| d.is_error())
                .map(|d| d.to_string())
                .collect();
            return Ok(Err(format!(
                "the configuration ({}) at {} is refused:\n{}",
                file.unwrap_or_default(),
                commit.short(),
                errors.join("\n")
            )));
        }
        return Ok(Ok(rules.rules.settings_for(&rules.repo_id).workflow));
    };
    let (effective, diags) = server_rules::effective_config(&rules.repo_id, &config, &rules.rules);
    match effective {
        Some(e) => Ok(Ok(e.project_at(&config, project.config_pos).workflow)),
        None => Ok(Err(diags
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("\n"))),
    }
}

/// The error for a configuration or policy file over `limits.file_bytes`.
pub fn too_large(file: &str, bytes: u64, max: u64) -> Diagnostic {
    Diagnostic::error(
        file,
        0,
        0,
        format!(
            "the file is {}; Sluice reads configuration and policy files of at most {} \
             (limits.file_bytes)",
            human_bytes(bytes),
            human_bytes(max)
        ),
    )
    .with_hint("make it smaller, or ask the Sluice operator to raise the limit")
}

impl RepoState {
    /// Reads everything at `head` (and the diff against `base`) from `git`.
    pub fn load(
        git: &GitRepo,
        base: &CommitSha,
        head: &CommitSha,
        rules: &RepoRules,
    ) -> anyhow::Result<RepoState> {
        let changed = git.changed_files(base, head)?;
        let (snapshot, unread) = git.read_tree(head)?;
        let (config, config_file, diagnostics) = load_config_at(git, head, rules)?;
        let mut state = RepoState {
            base: base.clone(),
            head: head.clone(),
            changed,
            snapshot,
            config,
            config_file,
            base_branch: rules.base_branch.clone(),
            diagnostics,
            unread,
            removed: Vec::new(),
        };
        if removed::may_remove(&state.changed, &repo_config::CONFIG_FILE_NAMES) {
            state.removed = state.removed_projects(git, rules)?;
        }
        Ok(state)
    }

    /// The projects at the base tip that the head does not have — and that the merge base
    /// has, so a project added to the base branch after the pull request branched off is not
    /// one it removes.
    fn removed_projects(
        &self,
        git: &GitRepo,
        rules: &RepoRules,
    ) -> anyhow::Result<Vec<RemovedProject>> {
        let projects_at = |commit: &CommitSha| -> anyhow::Result<Option<Vec<Project>>> {
            let (config, _, diags) = load_config_at(git, commit, rules)?;
            if has_errors(&diags) {
                return Ok(None);
            }
            let snapshot = git.snapshot(commit)?;
            Ok(Some(projects::all_projects(&snapshot, config.as_ref()).0))
        };
        let Some(mut base) = projects_at(&self.base)? else {
            tracing::info!(base = %self.base.short(), "base configuration has errors: removed projects not compared");
            return Ok(Vec::new());
        };
        // Without a common history (a preview of unrelated commits) every base project counts.
        let merge_base = git
            .merge_base(&self.base, &self.head)
            .unwrap_or(self.base.clone());
        if merge_base != self.base {
            let Some(at_fork) = projects_at(&merge_base)? else {
                return Ok(Vec::new());
            };
            base.retain(|p| {
                at_fork
                    .iter()
                    .any(|f| f.dir == p.dir && f.workspace == p.workspace)
            });
        }
        let (head, _) = projects::all_projects(&self.snapshot, self.config.as_ref());
        let tf_dirs: BTreeSet<&str> = self
            .snapshot
            .files
            .iter()
            .filter(|f| {
                [".tf", ".tofu", ".tf.json", ".tofu.json"]
                    .iter()
                    .any(|e| f.ends_with(e))
            })
            .map(|f| f.rsplit_once('/').map_or(".", |(d, _)| d))
            .collect();
        Ok(removed::removed_projects(
            &base,
            &head,
            |d| tf_dirs.contains(d.as_str()),
            &self.changed,
        ))
    }

    /// The configuration's warnings at the head: its own (`sluice.yaml`'s keys and patterns)
    /// and those project detection finds in it (a configured dir without Terraform files).
    pub fn config_warnings(&self) -> Vec<Diagnostic> {
        let Some(file) = self.config_file.as_deref() else {
            return Vec::new();
        };
        let (_, detection) = projects::all_projects(&self.snapshot, self.config.as_ref());
        let mut out: Vec<Diagnostic> = self
            .diagnostics
            .iter()
            .chain(detection.iter().filter(|d| d.file == file))
            .filter(|d| !d.is_error())
            .cloned()
            .collect();
        out.dedup();
        out
    }

    /// True when the configuration has errors: nothing may run.
    pub fn rejected(&self) -> bool {
        has_errors(&self.diagnostics)
    }

    /// The projects the change affects that plan by themselves (`autoplan.enabled`): what a push
    /// plans.
    pub fn autoplan_projects(&self) -> Detection {
        self.affected(DetectOptions {
            respect_autoplan: true,
        })
    }

    /// Every project the change affects, autoplan or not (a `plan` comment without targets).
    pub fn affected_projects(&self) -> Detection {
        self.affected(DetectOptions {
            respect_autoplan: false,
        })
    }

    fn affected(&self, options: DetectOptions) -> Detection {
        let d = projects::affected_projects_with(
            &self.snapshot,
            self.config.as_ref(),
            &self.changed,
            options,
        );
        self.without_unread(d)
    }

    pub fn all_projects(&self) -> Detection {
        let (projects, diagnostics) = projects::all_projects(&self.snapshot, self.config.as_ref());
        self.without_unread(Detection {
            projects,
            diagnostics,
        })
    }

    /// Drops the projects whose directory holds a file Sluice did not read, and says so: the
    /// file's diagnostic is added when it stopped a project or when this change touches it.
    fn without_unread(&self, mut d: Detection) -> Detection {
        if self.unread.is_empty() {
            return d;
        }
        let dir_of = |file: &str| {
            file.rsplit_once('/')
                .map_or(".", |(dir, _)| dir)
                .to_string()
        };
        let blocked: BTreeSet<String> = self.unread.iter().map(|u| dir_of(&u.file)).collect();
        let mut stopped: BTreeSet<String> = BTreeSet::new();
        d.projects.retain(|p| {
            let hit = blocked.contains(p.dir.as_str());
            if hit {
                stopped.insert(p.dir.to_string());
            }
            !hit
        });
        let changed: BTreeSet<&str> = self.changed.iter().map(|c| c.path.as_str()).collect();
        d.diagnostics.extend(
            self.unread
                .iter()
                .filter(|u| stopped.contains(&dir_of(&u.file)) || changed.contains(u.file.as_str()))
                .cloned(),
        );
        d
    }
}

/// The base branch's rules at `commit` (its configuration and tree): apply requirements and the
/// names policy scopes and credentials match, looked up by a project's real dir and workspace —
/// never by the name the PR gives it ([`BaseRules`]). A PR that edits `apply_requirements` is
/// still judged by the requirements it wants to change. A configuration that does not parse
/// counts as none: projects are detected.
pub fn base_rules_at(
    git: &GitRepo,
    commit: &CommitSha,
    rules: &RepoRules,
) -> anyhow::Result<BaseRules> {
    let (config, _, _) = load_config_at(git, commit, rules)?;
    let snapshot = git.snapshot(commit)?;
    let settings = rules.settings();
    Ok(BaseRules::with_defaults(
        config.as_ref(),
        &snapshot,
        Requirements {
            apply: settings.apply_requirements,
            plan: settings.plan_requirements,
        },
    ))
}

/// Finds a project by name among `projects`.
pub fn project_named<'a>(projects: &'a [Project], name: &ProjectName) -> Option<&'a Project> {
    projects.iter().find(|p| &p.name == name)
}
