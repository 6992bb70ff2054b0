//! The base branch's rules for a project, looked up by the directory terraform really runs in.
//!
//! A pull request chooses its projects' names and may add projects the base branch has never
//! seen; it must not choose its way out of the rules that govern the directory it runs in. So
//! what the base branch's configuration says about a project — its apply requirements, and the
//! names that policy scopes and credential rules match — is looked up here by the project's dir
//! and workspace, never by the name the PR gives it. The dir is real: [`super::projects`]
//! refuses project dirs that go through a symlink, so a PR cannot reach `envs/prod` under
//! another path.
//!
//! * A base entry governs a project when its workspace is the project's and its `dir` is the
//!   project's dir (resolved through the base tree's symlinks, so an entry written through a
//!   link still binds the real dir) or — when no exact entry does — the first glob entry
//!   matching it, whether or not that dir exists at the base. This is how the configuration
//!   itself resolves entries: explicit dirs win over globs.
//! * A project no base entry governs is *new*: it gets the default requirements (the server's
//!   repo rules', `approved` to apply and nothing to plan unless they say otherwise) plus the
//!   requirements and names of the entries for its own dir in other workspaces or,
//!   when there are none, for the nearest directory above it that has any (in any workspace).
//!   A new `envs/prod/cache` is held to what `envs/prod` is held to.
//! * Without a `projects` list at the base, its entries are the projects detection finds there
//!   (default requirements, derived names).
//!
//! The same lookup gives the plan requirements (Atlantis `plan_requirements`): a pull request
//! cannot drop the approval its plans need by editing the configuration it plans.
//!
//! Names gathered here only ever add restrictions to policy scopes; for credentials they are
//! the *only* names that count (with the dir), so naming a project cannot obtain them.

use std::collections::HashMap;

use super::glob::build_glob;
use super::projects::{self, RepoSnapshot};
use super::repo_config::{DirSpec, RepoConfig};
use super::types::{ApplyRequirement, ProjectDir, ProjectName, Workspace};

/// The base branch's project entries, ready to be matched against the projects of a PR.
#[derive(Debug, Clone, Default)]
pub struct BaseRules {
    entries: Vec<BaseEntry>,
    /// What a project no entry governs starts from.
    defaults: Requirements,
    /// Real dir → its exact entries (indexes into `entries`): a lookup walks a project's
    /// ancestors, so it must not scan thousands of entries at each step.
    exact: HashMap<String, Vec<usize>>,
    /// The glob entries, in file order.
    globs: Vec<usize>,
}

#[derive(Debug, Clone)]
struct BaseEntry {
    dir: DirMatch,
    workspace: Workspace,
    /// The entry's explicit name; without one, the name is derived from the dir it matches.
    name: Option<ProjectName>,
    requirements: Requirements,
}

/// Requirements before `apply` and before `plan` (the values of `apply_requirements`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirements {
    pub apply: Vec<ApplyRequirement>,
    pub plan: Vec<ApplyRequirement>,
}

impl Default for Requirements {
    /// Sluice's defaults without server rules: `approved` to apply, nothing to plan.
    fn default() -> Self {
        Requirements {
            apply: vec![ApplyRequirement::Approved],
            plan: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
enum DirMatch {
    /// A real dir (after the base tree's symlinks), normalised.
    Exact(String),
    Glob(globset::GlobMatcher),
}

/// What the base branch says about one project dir and workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseIdentity {
    /// A base entry governs this dir and workspace. `false`: the project is new.
    pub known: bool,
    /// For a new project: the dir above it whose entries it inherits.
    pub inherited_from: Option<ProjectDir>,
    /// The names the base gives it: the explicit names of the governing (or inherited) entries,
    /// the names derived from their dirs, and the name derived from its own dir and workspace.
    /// Sorted, without duplicates.
    pub names: Vec<ProjectName>,
    /// The apply requirements the base imposes, sorted, without duplicates.
    pub requirements: Vec<ApplyRequirement>,
    /// The plan requirements the base imposes, sorted, without duplicates.
    pub plan_requirements: Vec<ApplyRequirement>,
}

impl BaseRules {
    /// The rules of a base commit: its configuration (`None` when it has none, or none that
    /// parsed) and its tree, with Sluice's default requirements.
    pub fn new(config: Option<&RepoConfig>, snapshot: &RepoSnapshot) -> BaseRules {
        Self::with_defaults(config, snapshot, Requirements::default())
    }

    /// [`BaseRules::new`] where projects without their own requirements (detected, new, or
    /// listed before the server's rules were applied to them) get `defaults` — the server's
    /// repo rules for the repository.
    pub fn with_defaults(
        config: Option<&RepoConfig>,
        snapshot: &RepoSnapshot,
        defaults: Requirements,
    ) -> BaseRules {
        let listed = config.and_then(|c| c.projects.as_ref());
        let entries: Vec<BaseEntry> = match listed {
            Some(list) => list
                .iter()
                .filter_map(|pc| {
                    let dir = match &pc.dir.value {
                        DirSpec::Exact(d) => DirMatch::Exact(
                            projects::real_path(&snapshot.symlinks, d.as_str())
                                .unwrap_or_else(|_| d.as_str().to_string()),
                        ),
                        // A glob that does not compile matches nothing, as in the config itself.
                        DirSpec::Glob(g) => DirMatch::Glob(build_glob(g).ok()?.compile_matcher()),
                    };
                    Some(BaseEntry {
                        dir,
                        workspace: pc.workspace.clone(),
                        name: pc.name.as_ref().map(|n| n.value.clone()),
                        requirements: Requirements {
                            apply: pc.apply_requirements.clone(),
                            plan: pc
                                .plan_requirements
                                .clone()
                                .unwrap_or_else(|| defaults.plan.clone()),
                        },
                    })
                })
                .collect(),
            None => projects::all_projects(snapshot, config)
                .0
                .into_iter()
                .map(|p| BaseEntry {
                    dir: DirMatch::Exact(p.dir.as_str().to_string()),
                    workspace: p.workspace,
                    name: None,
                    requirements: defaults.clone(),
                })
                .collect(),
        };
        let mut exact: HashMap<String, Vec<usize>> = HashMap::new();
        let mut globs = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            match &e.dir {
                DirMatch::Exact(d) => exact.entry(d.clone()).or_default().push(i),
                DirMatch::Glob(_) => globs.push(i),
            }
        }
        BaseRules {
            entries,
            defaults,
            exact,
            globs,
        }
    }

    /// The entries governing `dir` in `workspace` (`None`: any workspace): the exact ones if
    /// any, else the first glob that matches.
    fn governing(&self, dir: &str, workspace: Option<&Workspace>) -> Vec<&BaseEntry> {
        let in_ws = |e: &&BaseEntry| workspace.is_none_or(|w| &e.workspace == w);
        let exact: Vec<&BaseEntry> = self
            .exact
            .get(dir)
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .map(|&i| &self.entries[i])
            .filter(in_ws)
            .collect();
        if !exact.is_empty() {
            return exact;
        }
        // `envs/*` does not match the root, as in detection.
        if dir == "." {
            return Vec::new();
        }
        let mut globs: Vec<&BaseEntry> = Vec::new();
        for e in self.globs.iter().map(|&i| &self.entries[i]).filter(in_ws) {
            if let DirMatch::Glob(g) = &e.dir
                && g.is_match(dir)
                && !globs.iter().any(|x| x.workspace == e.workspace)
            {
                globs.push(e);
            }
        }
        globs
    }

    /// What the base says about the project in `dir` (a real dir) and `workspace`.
    pub fn identity(&self, dir: &ProjectDir, workspace: &Workspace) -> BaseIdentity {
        let own = self.governing(dir.as_str(), Some(workspace));
        let known = !own.is_empty();
        let mut names = vec![ProjectName::derived(dir, workspace)];
        let mut requirements: Vec<ApplyRequirement> = Vec::new();
        let mut plan_requirements: Vec<ApplyRequirement> = Vec::new();
        if !known {
            requirements.extend(self.defaults.apply.iter().copied());
            plan_requirements.extend(self.defaults.plan.iter().copied());
        }
        let mut add = |entries: &[&BaseEntry], at: &ProjectDir| {
            for e in entries {
                names.push(
                    e.name
                        .clone()
                        .unwrap_or_else(|| ProjectName::derived(at, &e.workspace)),
                );
                requirements.extend(e.requirements.apply.iter().copied());
                plan_requirements.extend(e.requirements.plan.iter().copied());
            }
        };
        let mut inherited_from = None;
        if known {
            add(&own, dir);
        } else {
            // The dir itself in other workspaces first, then each dir above it.
            let mut at = dir.as_str();
            loop {
                let above = self.governing(at, None);
                if !above.is_empty() {
                    let at = ProjectDir::new(at).expect("a parent of a valid dir is valid");
                    add(&above, &at);
                    inherited_from = Some(at);
                    break;
                }
                if at == "." {
                    break;
                }
                at = at.rsplit_once('/').map_or(".", |(parent, _)| parent);
            }
        }
        names.sort();
        names.dedup();
        requirements.sort();
        requirements.dedup();
        plan_requirements.sort();
        plan_requirements.dedup();
        BaseIdentity {
            known,
            inherited_from,
            names,
            requirements,
            plan_requirements,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::repo_config::parse_config;
    use std::collections::BTreeMap;

    fn snapshot(files: &[&str], links: &[(&str, &str)]) -> RepoSnapshot {
        RepoSnapshot {
            files: files.iter().map(|f| f.to_string()).collect(),
            symlinks: links
                .iter()
                .map(|(l, t)| (l.to_string(), t.to_string()))
                .collect::<BTreeMap<_, _>>(),
            module_calls: BTreeMap::new(),
        }
    }

    /// `dir[:workspace] → known|new(<from>) names=[..] reqs=[..]` for each probe.
    fn check(config: Option<&str>, snap: &RepoSnapshot, probes: &[&str]) -> String {
        let cfg = config.map(|text| {
            let (c, d) = parse_config("sluice.yaml", text);
            c.unwrap_or_else(|| panic!("bad test config: {d:#?}"))
        });
        let rules = BaseRules::new(cfg.as_ref(), snap);
        let mut out = String::new();
        for probe in probes {
            let (dir, ws) = probe.split_once(':').unwrap_or((probe, "default"));
            let id = rules.identity(&ProjectDir::new(dir).unwrap(), &Workspace::new(ws).unwrap());
            let how = match (&id.known, &id.inherited_from) {
                (true, _) => "known".to_string(),
                (false, Some(from)) => format!("new, inherits {from}"),
                (false, None) => "new".to_string(),
            };
            let names: Vec<&str> = id.names.iter().map(ProjectName::as_str).collect();
            let reqs: Vec<String> = id.requirements.iter().map(|r| r.to_string()).collect();
            out.push_str(&format!(
                "{probe} → {how}; names=[{}] requirements=[{}]\n",
                names.join(","),
                reqs.join(",")
            ));
        }
        out
    }

    const CONFIG: &str = r#"version: 1
projects:
  - name: prod-network
    dir: envs/prod/network
    apply_requirements: [approved, mergeable]
  - name: prod-network-blue
    dir: envs/prod/network
    workspace: blue
    apply_requirements: [approved, undiverged]
  - dir: "envs/*/app"
    apply_requirements: [approved, mergeable, undiverged]
  - name: staging-app
    dir: envs/staging/app
    apply_requirements: []
  - name: via-link
    dir: linked/db
    apply_requirements: [approved, undiverged]
  - name: sandbox
    dir: sandbox
    apply_requirements: []
"#;

    /// Plan requirements are looked up like apply requirements; projects without an entry of
    /// their own start from the server's defaults.
    #[test]
    fn plan_requirements_and_server_defaults_follow_the_same_lookup() {
        let (c, d) = crate::core::repo_config::parse_atlantis_config(
            "atlantis.yaml",
            "version: 3\nprojects:\n- dir: envs/prod\n  plan_requirements: [approved]\n- dir: envs/dev\n",
        );
        let c = c.unwrap_or_else(|| panic!("{d:#?}"));
        let snap = snapshot(&["envs/prod/main.tf", "envs/dev/main.tf"], &[]);
        let strict = Requirements {
            apply: vec![ApplyRequirement::Approved, ApplyRequirement::Mergeable],
            plan: vec![ApplyRequirement::Mergeable],
        };
        let show = |rules: &BaseRules, dir: &str| {
            let id = rules.identity(
                &ProjectDir::new(dir).unwrap(),
                &Workspace::new("default").unwrap(),
            );
            let s =
                |r: &[ApplyRequirement]| r.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(",");
            format!(
                "{dir}: plan [{}] apply [{}]",
                s(&id.plan_requirements),
                s(&id.requirements)
            )
        };
        let rules = BaseRules::with_defaults(Some(&c), &snap, strict.clone());
        // Listed: its own (a listed entry without `plan_requirements` gets the server's).
        assert_eq!(
            show(&rules, "envs/prod"),
            "envs/prod: plan [approved] apply [approved]"
        );
        assert_eq!(
            show(&rules, "envs/dev"),
            "envs/dev: plan [mergeable] apply [approved]"
        );
        // New below a listed dir: the defaults plus what it inherits.
        assert_eq!(
            show(&rules, "envs/prod/cache"),
            "envs/prod/cache: plan [approved,mergeable] apply [approved,mergeable]"
        );
        // No configuration: detected projects get the defaults.
        let detected = BaseRules::with_defaults(None, &snap, strict);
        assert_eq!(
            show(&detected, "envs/dev"),
            "envs/dev: plan [mergeable] apply [approved,mergeable]"
        );
        // Sluice's defaults without server rules: approved to apply, nothing to plan.
        assert_eq!(
            show(&BaseRules::new(None, &snap), "envs/dev"),
            "envs/dev: plan [] apply [approved]"
        );
    }

    #[test]
    fn base_rules_follow_the_real_dir_never_the_prs_names() {
        let snap = snapshot(
            &["envs/prod/network/main.tf", "real/db/main.tf"],
            &[("linked", "real")],
        );
        insta::assert_snapshot!(check(Some(CONFIG), &snap, &[
            // Exact entries, per workspace; several entries for one dir add up.
            "envs/prod/network",
            "envs/prod/network:blue",
            // Explicit entries win over a matching glob (the config's own precedence).
            "envs/staging/app",
            // A glob binds dirs that do not exist at the base yet.
            "envs/qa/app",
            // An entry written through a base symlink binds the real dir.
            "real/db",
            // New projects inherit from the nearest configured dir above them, any workspace.
            "envs/prod/network/cache",
            "envs/prod/network/cache:green",
            "envs/qa/app/extra",
            // … and get the default where nothing above is configured.
            "envs/prod/other",
            "tools",
            // The workspace is part of the key: an unknown workspace of a known dir is new.
            "sandbox:green",
        ]), @r"
            envs/prod/network → known; names=[envs/prod/network,prod-network] requirements=[approved,mergeable]
            envs/prod/network:blue → known; names=[envs/prod/network:blue,prod-network-blue] requirements=[approved,undiverged]
            envs/staging/app → known; names=[envs/staging/app,staging-app] requirements=[]
            envs/qa/app → known; names=[envs/qa/app] requirements=[approved,mergeable,undiverged]
            real/db → known; names=[real/db,via-link] requirements=[approved,undiverged]
            envs/prod/network/cache → new, inherits envs/prod/network; names=[envs/prod/network/cache,prod-network,prod-network-blue] requirements=[approved,mergeable,undiverged]
            envs/prod/network/cache:green → new, inherits envs/prod/network; names=[envs/prod/network/cache:green,prod-network,prod-network-blue] requirements=[approved,mergeable,undiverged]
            envs/qa/app/extra → new, inherits envs/qa/app; names=[envs/qa/app,envs/qa/app/extra] requirements=[approved,mergeable,undiverged]
            envs/prod/other → new; names=[envs/prod/other] requirements=[approved]
            tools → new; names=[tools] requirements=[approved]
            sandbox:green → new, inherits sandbox; names=[sandbox,sandbox:green] requirements=[approved]
            ");
    }

    #[test]
    fn without_a_project_list_the_base_projects_are_detected() {
        let snap = snapshot(
            &["envs/prod/main.tf", "main.tf", "modules/x/README.md"],
            &[],
        );
        insta::assert_snapshot!(check(None, &snap, &[
            "envs/prod",
            "envs/prod/new",
            "envs/dev",
            ".",
        ]), @r"
        envs/prod → known; names=[envs/prod] requirements=[approved]
        envs/prod/new → new, inherits envs/prod; names=[envs/prod,envs/prod/new] requirements=[approved]
        envs/dev → new, inherits .; names=[envs/dev,root] requirements=[approved]
        . → known; names=[root] requirements=[approved]
        ");
    }
}
