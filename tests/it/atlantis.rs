//! Atlantis compatibility, on the pure core: every `tests/fixtures/atlantis/*.yaml` loads and
//! yields the projects and the step sequence (argv, variables) Atlantis' documentation describes;
//! the accept/refuse table of what Atlantis' own parser accepts and refuses; the server's repo
//! rules; `sluice migrate atlantis`'s text.

use std::fmt::Write as _;

use sluice::core::diag::Diagnostic;
use sluice::core::repo_config::{DirSpec, RepoConfig, parse_atlantis_config};
use sluice::core::server_rules::{ServerRules, effective_config};
use sluice::core::types::{CommitSha, Engine, PrNumber, ProjectDir, RepoName, Workspace};
use sluice::core::workflow::{
    PlannedEnvValue, PlannedStep, PullInfo, RunPaths, StepContext, Workflow, WorkflowCommand,
    step_plan,
};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/atlantis");
const REPO_ID: &str = "github.com/acme/infra";

fn corpus() -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(CORPUS)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .map(|p| {
            (
                p.file_stem().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

fn pull() -> PullInfo {
    PullInfo {
        base_repo: RepoName::new("acme", "infra").unwrap(),
        head_repo: RepoName::new("acme", "infra").unwrap(),
        base_branch: "main".to_string(),
        head_branch: "feature/x".to_string(),
        head_commit: CommitSha::new("0123456789abcdef0123456789abcdef01234567").unwrap(),
        number: Some(PrNumber::new(7).unwrap()),
        url: "https://github.com/acme/infra/pull/7".to_string(),
        author: "octocat".to_string(),
        approved: None,
        mergeable: None,
    }
}

fn paths() -> RunPaths {
    RunPaths {
        dir: "/job/repo/DIR".to_string(),
        planfile: "/job/out/plan.tfplan".to_string(),
        showfile: "/job/out/plan.json".to_string(),
        policycheckfile: "/job/out/policy.json".to_string(),
    }
}

/// One line per planned step: what the runner executes.
fn render_steps(workflow: &Workflow, command: WorkflowCommand, ctx: &StepContext) -> String {
    let plan = step_plan(workflow, &StepContext { command, ..*ctx });
    let mut out = String::new();
    for s in &plan.steps {
        let line = match s {
            PlannedStep::Engine {
                step,
                args,
                implicit,
            } => format!(
                "engine {step}{}: {}",
                if *implicit { " (implicit)" } else { "" },
                args.join(" ")
            ),
            PlannedStep::SelectWorkspace { workspace } => format!("workspace {workspace}"),
            PlannedStep::PolicyCheck { namespaces } => format!("policy_check {namespaces:?}"),
            PlannedStep::Run { argv, output } => format!(
                "run {argv:?}{}{}{}",
                if output.hide { " hide" } else { "" },
                if output.strip_refreshing {
                    " strip_refreshing"
                } else {
                    ""
                },
                if output.filters.is_empty() {
                    String::new()
                } else {
                    format!(" filters={}", output.filters.len())
                }
            ),
            PlannedStep::Env { name, value } => match value {
                PlannedEnvValue::Static(v) => format!("env {name}={v:?}"),
                PlannedEnvValue::Command { argv } => format!("env {name} from {argv:?}"),
            },
            PlannedStep::MultiEnv { argv, hide } => {
                format!("multienv {argv:?}{}", if *hide { " hide" } else { "" })
            }
        };
        writeln!(out, "      {line}").unwrap();
    }
    out
}

fn render_diags(diags: &[Diagnostic]) -> String {
    diags.iter().map(|d| format!("{d}\n")).collect()
}

/// The projects (as Atlantis' docs say they are read) and each one's step plans.
fn render_corpus_file(name: &str, text: &str) -> String {
    let file = "atlantis.yaml";
    let (config, diags) = parse_atlantis_config(file, text);
    let mut out = render_diags(&diags);
    let config: RepoConfig =
        config.unwrap_or_else(|| panic!("{name} must load, as in Atlantis:\n{out}"));
    let rules = ServerRules::unconfigured();
    let (effective, ediags) = effective_config(REPO_ID, &config, &rules);
    out.push_str(&render_diags(&ediags));
    let effective = effective.unwrap_or_else(|| panic!("{name}: refused by the server rules"));
    writeln!(out, "version {}", config.version).unwrap();
    let Some(projects) = &config.projects else {
        out.push_str("projects: detected\n");
        return out;
    };
    let settings = effective.projects.as_ref().unwrap();
    let pull = pull();
    let paths = paths();
    for (p, s) in projects.iter().zip(settings) {
        let dir = match &p.dir.value {
            DirSpec::Exact(d) => d.clone(),
            DirSpec::Glob(g) => panic!("{name}: glob dir {g}"),
        };
        let project_name = p.name.as_ref().map(|n| n.value.to_string());
        writeln!(
            out,
            "project {} dir={dir} ws={} engine={} version={} autoplan={} group={} branch={}",
            p.known_name().unwrap(),
            p.workspace,
            p.engine.as_ref().map_or("-", |e| e.value.as_str()),
            p.terraform_version.as_deref().unwrap_or("-"),
            p.autoplan,
            p.execution_order_group,
            p.branch.as_ref().map_or("-", |b| b.text.as_str()),
        )
        .unwrap();
        let list = |r: &[sluice::core::types::ApplyRequirement]| {
            r.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(",")
        };
        writeln!(
            out,
            "  when_modified: {}\n  depends_on: [{}]\n  requirements: plan=[{}] apply=[{}] import=[{}] policy_check={}",
            p.when_modified
                .iter()
                .map(|w| w.value.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            p.depends_on
                .iter()
                .map(|d| d.value.as_str())
                .collect::<Vec<_>>()
                .join(","),
            list(&s.plan_requirements),
            list(&s.apply_requirements),
            list(&s.import_requirements),
            s.policy_check,
        )
        .unwrap();
        writeln!(
            out,
            "  workflow {} ({})",
            s.workflow.name, s.workflow.origin
        )
        .unwrap();
        let workspace = p.workspace.clone();
        let engine = p.engine.as_ref().map_or(Engine::Terraform, |e| e.value);
        let version = p.terraform_version.clone().unwrap_or("1.9.8".to_string());
        let ctx = StepContext {
            command: WorkflowCommand::Plan,
            project_name: project_name.as_deref(),
            dir: &dir,
            workspace: &workspace,
            engine,
            engine_version: &version,
            paths: &paths,
            pull: &pull,
            user: "octocat",
            comment_args: &[],
            approved: Some(true),
            mergeable: Some(false),
        };
        for command in WorkflowCommand::ALL {
            // The default stages are shown once, in the first project that uses them.
            if command != WorkflowCommand::Plan
                && command != WorkflowCommand::Apply
                && s.workflow.stage(command).is_default()
            {
                continue;
            }
            writeln!(out, "    {command}:").unwrap();
            out.push_str(&render_steps(&s.workflow, command, &ctx));
        }
    }
    let groups: Vec<String> = config
        .execution_groups()
        .iter()
        .map(|(g, ps)| {
            format!(
                "{g}: {}",
                ps.iter()
                    .map(|p| p.known_name().unwrap().to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        })
        .collect();
    writeln!(out, "execution groups: {}", groups.join(" | ")).unwrap();
    if !config.policy_sets.is_empty() {
        for set in &effective.policy_sets {
            writeln!(out, "policy set {set:?}").unwrap();
        }
    }
    out
}

#[test]
fn every_corpus_file_loads_with_atlantis_projects_and_steps() {
    let files = corpus();
    assert!(files.len() >= 15, "the corpus has {} files", files.len());
    for (name, text) in files {
        let rendered = render_corpus_file(&name, &text);
        insta::assert_snapshot!(format!("atlantis_corpus__{name}"), rendered);
    }
}

/// Loads `text` as `atlantis.yaml` and applies `rules` (unconfigured when `None`): the
/// diagnostics, and whether it loaded.
fn load(text: &str, repos_yaml: Option<&str>) -> (bool, String) {
    let (config, diags) = parse_atlantis_config("atlantis.yaml", text);
    let mut out = render_diags(&diags);
    let Some(config) = config else {
        return (false, out);
    };
    let rules = match repos_yaml {
        None => ServerRules::unconfigured(),
        Some(r) => {
            let (rules, d) = sluice::core::server_rules::parse_repos_yaml("repos.yaml", r);
            assert!(rules.is_some(), "{}", render_diags(&d));
            rules.unwrap()
        }
    };
    let (effective, d) = effective_config(REPO_ID, &config, &rules);
    out.push_str(&render_diags(&d));
    (effective.is_some(), out)
}

/// What Atlantis' parser accepts loads (with a warning where Sluice reads it differently from
/// what was probably meant).
#[test]
fn atlantis_accepts_so_sluice_loads() {
    let cases: &[(&str, &str)] = &[
        (
            "anchors and merge keys",
            "version: 3\nprojects:\n- &base\n  dir: a\n  apply_requirements: [approved]\n- <<: *base\n  dir: b\n- <<: [*base]\n  dir: c\n  workspace: w\n",
        ),
        (
            "branch",
            "version: 3\nprojects:\n- dir: a\n  branch: /^(main|release\\/.*)$/\n",
        ),
        (
            "plan_requirements",
            "version: 3\nprojects:\n- dir: a\n  plan_requirements: [approved, mergeable]\n",
        ),
        (
            "flow list closed at the key's indentation",
            "version: 3\nprojects:\n- dir: a\n  autoplan:\n    when_modified: [\n      \"*.tf\",\n      \"../m/**\"\n    ]\n- dir: b\n  depends_on: [\n  ]\n",
        ),
        (
            "leading slash in dir",
            "version: 3\nprojects:\n- dir: /envs/prod\n",
        ),
        (
            "version 2",
            "version: 2\nprojects:\n- dir: a\n  workflow: w\nworkflows:\n  w:\n    plan:\n      steps: [init, {run: echo   'a  b'}, plan]\n",
        ),
        (
            "when_modified above the repository",
            "version: 3\nprojects:\n- dir: a\n  autoplan:\n    when_modified: [\"../../x/*.tf\", \"*.tf\"]\n",
        ),
    ];
    let mut all = String::new();
    for (name, text) in cases {
        let (loaded, diags) = load(text, None);
        assert!(loaded, "{name} must load, as in Atlantis:\n{diags}");
        assert!(
            !diags.contains(": error:"),
            "{name}: no error expected:\n{diags}"
        );
        writeln!(all, "## {name}\n{diags}").unwrap();
    }
    insta::assert_snapshot!(all, @"
    ## anchors and merge keys

    ## branch

    ## plan_requirements

    ## flow list closed at the key's indentation

    ## leading slash in dir
    atlantis.yaml:3:8: warning: dir `/envs/prod` starts with `/`; it is read from the repository root as `envs/prod`, as Atlantis does
      hint: write `dir: envs/prod`

    ## version 2

    ## when_modified above the repository
    atlantis.yaml:5:21: warning: pattern `../../x/*.tf` leaves the repository when read from `a`, so it never matches; Sluice ignores it, as Atlantis does
      hint: remove it, or fix the number of `../`
    ");
}

/// What Atlantis refuses is refused, with a message that names the same problem.
#[test]
fn atlantis_refuses_so_sluice_refuses_naming_the_problem() {
    let server_workflow = "repos:\n- id: /.*/\n  allowed_overrides: [workflow]\nworkflows:\n  shared:\n    plan:\n      steps: [init, plan]\n";
    let no_custom =
        "repos:\n- id: /.*/\n  allowed_overrides: [workflow]\n  allow_custom_workflows: false\n";
    let cases: &[(&str, &str, Option<&str>, &str)] = &[
        (
            "project without dir",
            "version: 3\nprojects:\n- name: a\n",
            None,
            "dir",
        ),
        (
            "duplicate keys",
            "version: 3\nprojects:\n- dir: a\n  dir: b\n",
            None,
            "appears twice",
        ),
        (
            "duplicate top-level keys",
            "version: 3\nversion: 3\nprojects:\n- dir: a\n",
            None,
            "appears twice",
        ),
        (
            "unknown step `- init -upgrade`",
            "version: 3\nprojects:\n- dir: a\n  workflow: w\nworkflows:\n  w:\n    plan:\n      steps:\n      - init -upgrade\n      - plan\n",
            None,
            "init -upgrade",
        ),
        (
            "workflow that does not exist (no server rules)",
            "version: 3\nprojects:\n- dir: a\n  workflow: shared\n",
            None,
            "`shared` is not defined",
        ),
        (
            "workflow defined only on the server, override not allowed",
            "version: 3\nprojects:\n- dir: a\n  workflow: shared\n",
            Some(
                "repos:\n- id: /.*/\nworkflows:\n  shared:\n    plan:\n      steps: [init, plan]\n",
            ),
            "may not set `workflow`",
        ),
        (
            "repository defines a workflow the server forbids",
            "version: 3\nprojects:\n- dir: a\n  workflow: mine\nworkflows:\n  mine:\n    plan:\n      steps: [init, plan]\n",
            Some(no_custom),
            "may not define workflows",
        ),
        (
            "unsupported version",
            "version: 4\nprojects:\n- dir: a\n",
            None,
            "version",
        ),
        (
            "unknown project key",
            "version: 3\nprojects:\n- dir: a\n  workfow: w\n",
            None,
            "workfow",
        ),
    ];
    let mut all = String::new();
    for (name, text, rules, needle) in cases {
        let (loaded, diags) = load(text, *rules);
        assert!(!loaded, "{name} must be refused:\n{diags}");
        assert!(
            diags.contains(needle),
            "{name}: the message must name `{needle}`:\n{diags}"
        );
        writeln!(all, "## {name}\n{diags}").unwrap();
    }
    // The server's workflow, picked by a repository the server lets pick it, loads.
    let (loaded, diags) = load(
        "version: 3\nprojects:\n- dir: a\n  workflow: shared\n",
        Some(server_workflow),
    );
    assert!(loaded, "{diags}");
    insta::assert_snapshot!(all, @"
    ## project without dir
    atlantis.yaml:3:3: error: project has no `dir`
      hint: add `dir: path/to/project`, relative to the repository root (`.` for the root)

    ## duplicate keys
    atlantis.yaml:4:3: error: key `dir` appears twice in the same mapping (first at line 3)
      hint: remove one of them; YAML would silently keep only the last

    ## duplicate top-level keys
    atlantis.yaml:2:1: error: key `version` appears twice in the same mapping (first at line 1)
      hint: remove one of them; YAML would silently keep only the last

    ## unknown step `- init -upgrade`
    atlantis.yaml:9:9: error: `init -upgrade` is not a valid step
      hint: to pass arguments to the built-in step, write `- init: {extra_args: [-upgrade]}`; to run a command, write `- run: init -upgrade`

    ## workflow that does not exist (no server rules)
    atlantis.yaml:4:13: error: project `a`: workflow `shared` is not defined anywhere: not in `atlantis.yaml`, and without server rules only `default` exists on the server
      hint: define it under `workflows:`, or use one of: default

    ## workflow defined only on the server, override not allowed
    atlantis.yaml:4:3: error: project `a`: this repository may not set `workflow`: the server's repo rules (no matching rule sets it) do not allow it
      hint: the server's rule for this repository needs `allowed_overrides: [workflow]`

    ## repository defines a workflow the server forbids
    atlantis.yaml:4:13: error: project `a`: workflow `mine` is defined in `atlantis.yaml`, which this repository may not do
      hint: ask the operator for `allow_custom_workflows: true`, or pick a server workflow
    atlantis.yaml:6:3: error: this repository may not define workflows: the server's repo rules (repos.yaml:2:3 (id /.*/)) set `allow_custom_workflows: false`
      hint: pick a workflow the server defines (`workflow: NAME`), or ask the operator for `allow_custom_workflows: true`

    ## unsupported version
    atlantis.yaml:1:10: error: atlantis.yaml version `4` is not supported; Sluice reads version 3, 2
      hint: upgrade the file to Atlantis' version 3 format, or write a sluice.yaml

    ## unknown project key
    atlantis.yaml:4:3: error: unknown key `workfow` in project
      hint: did you mean `workflow`? valid keys here: name, dir, workspace, terraform_version, terraform_distribution, autoplan, apply_requirements, depends_on, workflow, branch, plan_requirements, import_requirements, policy_check, custom_policy_check, execution_order_group
    ");
}

// ---------------------------------------------------------------------------------------------
// Server-side repo rules

/// A repos.yaml as Atlantis' docs show it: a base rule for every repository, a stricter one for
/// one repository, server workflows.
const REPOS_YAML: &str = r#"repos:
- id: /.*/
  apply_requirements: [approved]
  allowed_overrides: [workflow]
  allowed_workflows: [standard]
  allow_custom_workflows: false
- id: github.com/acme/infra
  apply_requirements: [approved, mergeable]
  allowed_overrides: [workflow, apply_requirements]
  allow_custom_workflows: true
- id: /^github\.com\/acme\/legacy-.*$/
  branch: /^(main|master)$/
  workflow: standard
workflows:
  standard:
    plan:
      steps: [init, {plan: {extra_args: [-lock-timeout=5m]}}]
policies:
  owners:
    teams: [security]
  policy_sets:
  - name: org-guardrails
    path: /etc/sluice/policies
    source: local
"#;

fn rules(text: &str) -> ServerRules {
    let (r, d) = sluice::core::server_rules::parse_repos_yaml("repos.yaml", text);
    r.unwrap_or_else(|| panic!("{}", render_diags(&d)))
}

fn effective(repo_id: &str, atlantis: &str, rules: &ServerRules) -> (bool, String) {
    let (config, d) = parse_atlantis_config("atlantis.yaml", atlantis);
    let config = config.unwrap_or_else(|| panic!("{}", render_diags(&d)));
    let (e, d) = effective_config(repo_id, &config, rules);
    (e.is_some(), render_diags(&d))
}

#[test]
fn repos_yaml_rules_merge_in_order_and_refusals_name_the_rule() {
    let r = rules(REPOS_YAML);
    let sets_reqs = "version: 3\nprojects:\n- dir: a\n  apply_requirements: [mergeable]\n";
    // The later, exact rule lets acme/infra set apply_requirements…
    let (ok, d) = effective("github.com/acme/infra", sets_reqs, &r);
    assert!(ok, "{d}");
    // …no other repository may, and the refusal names the rule that decided it.
    let (ok, d) = effective("github.com/acme/other", sets_reqs, &r);
    assert!(!ok);
    assert!(d.contains("repos.yaml:2:3 (id /.*/)"), "{d}");
    assert!(d.contains("allowed_overrides: [apply_requirements]"), "{d}");
    insta::assert_snapshot!(d, @"
    atlantis.yaml:4:3: error: project `a`: this repository may not set `apply_requirements`: the server's repo rules (repos.yaml:2:3 (id /.*/)) do not allow it
      hint: the server's rule for this repository needs `allowed_overrides: [apply_requirements]`
    ");

    // Custom workflows: acme/infra may define its own; others may not.
    let own = "version: 3\nprojects:\n- dir: a\n  workflow: mine\nworkflows:\n  mine:\n    plan:\n      steps: [init, plan]\n";
    assert!(effective("github.com/acme/infra", own, &r).0);
    let (ok, d) = effective("github.com/acme/other", own, &r);
    assert!(!ok);
    assert!(d.contains("allow_custom_workflows: false"), "{d}");
    assert!(d.contains("repos.yaml:2:3"), "{d}");

    // allowed_workflows: the server's `standard` may be picked; another server workflow may not.
    let picks = |w: &str| format!("version: 3\nprojects:\n- dir: a\n  workflow: {w}\n");
    assert!(effective("github.com/acme/other", &picks("standard"), &r).0);
    let (ok, d) = effective("github.com/acme/other", &picks("nightly"), &r);
    assert!(!ok);
    assert!(d.contains("`nightly` is not defined"), "{d}");

    // /regex/ ids match anywhere in github.com/owner/name; the legacy rule's workflow and branch.
    let s = r.settings_for("github.com/acme/legacy-dns");
    assert_eq!(s.workflow.name, "standard");
    assert!(s.base_branch_allowed("master") && !s.base_branch_allowed("develop"));
    let s = r.settings_for("github.com/other/legacy-dns");
    assert_eq!(s.workflow.name, "default");
    assert!(s.base_branch_allowed("develop"));
    // Exact ids compare case-insensitively, as GitHub names do.
    assert!(
        !r.settings_for("github.com/ACME/Infra")
            .allowed_overrides
            .is_empty()
    );
    assert_eq!(
        r.settings_for("github.com/ACME/Infra")
            .apply_requirements
            .len(),
        2
    );
    assert_eq!(r.policy_sets.len(), 1);
}

#[test]
fn without_rules_a_repository_may_set_everything_and_the_server_default_is_atlantis_default() {
    let text = "version: 3\nprojects:\n- dir: a\n  apply_requirements: [mergeable]\n  plan_requirements: [approved]\n  workflow: w\nworkflows:\n  w:\n    plan:\n      steps: [init, plan]\n";
    let (ok, d) = effective(REPO_ID, text, &ServerRules::unconfigured());
    assert!(ok, "{d}");
    // Configured rules start from Atlantis' defaults: nothing may be overridden.
    let (ok, d) = effective(REPO_ID, text, &rules("repos:\n- id: /.*/\n"));
    assert!(!ok);
    for key in ["apply_requirements", "plan_requirements", "workflow"] {
        assert!(d.contains(&format!("may not set `{key}`")), "{key}: {d}");
    }
}

#[test]
fn bad_repos_yaml_is_refused_at_file_line_col() {
    let cases: &[(&str, &str)] = &[
        ("repos:\n- id: /([/\n", "regular expression"),
        (
            "repos:\n- id: /.*/\n  allowed_overides: [workflow]\n",
            "allowed_overides",
        ),
        (
            "repos:\n- id: /.*/\n  allowed_overrides: [terraform_version]\n",
            "terraform_version",
        ),
        (
            "repos:\n- id: /.*/\n  pre_workflow_hooks:\n  - run: ./hook.sh\n",
            "pre_workflow_hooks",
        ),
        ("repos:\n- id: /.*/\n  workflow: nowhere\n", "nowhere"),
        ("repos:\n- branch: /main/\n", "id"),
        ("repos:\n- id: /.*/\n  id: x\n", "twice"),
    ];
    let mut all = String::new();
    for (text, needle) in cases {
        let (r, d) = sluice::core::server_rules::parse_repos_yaml("repos.yaml", text);
        let shown = render_diags(&d);
        assert!(r.is_none(), "must be refused:\n{text}\n{shown}");
        assert!(shown.contains(needle), "{needle}: {shown}");
        assert!(shown.starts_with("repos.yaml:"), "{shown}");
        all.push_str(&shown);
    }
    insta::assert_snapshot!(all, @"
    repos.yaml:2:7: error: `/([/` is not a valid regular expression: regex parse error:
        ([
         ^
    error: unclosed character class
    repos.yaml:3:3: error: unknown key `allowed_overides` in a `repos` entry
      hint: did you mean `allowed_overrides`? valid keys here: id, branch, repo_config_file, plan_requirements, apply_requirements, import_requirements, workflow, allowed_overrides, allowed_workflows, allow_custom_workflows, policy_check, custom_policy_check, pre_workflow_hooks, post_workflow_hooks, autodiscover
    repos.yaml:3:23: error: `terraform_version` is not a valid override
      hint: valid overrides: plan_requirements, apply_requirements, import_requirements, workflow, delete_source_branch_on_merge, repo_locking, repo_locks, policy_check, custom_policy_check, silence_pr_comments
    repos.yaml:4:5: error: `pre_workflow_hooks` are not supported
      hint: Atlantis runs them on the server with the server's environment; Sluice runs nothing outside a project's sandbox. Move the commands into the workflow's `run` steps
    repos.yaml:3:13: error: workflow `nowhere` is not defined
      hint: define it under `workflows:`; defined: default
    repos.yaml:2:3: error: `repos` entry has no `id`
      hint: add `id: github.com/owner/name`, or `id: /regex/`
    repos.yaml:3:3: error: key `id` appears twice in the same mapping (first at line 2)
      hint: remove one of them; YAML would silently keep only the last
    ");
}

#[test]
fn sluice_server_config_rules_read_like_repos_yaml() {
    use sluice::core::server_rules::{ServerRulesConfig, rules_from_config};
    let cfg = ServerRulesConfig {
        repos: vec![serde_json::json!({
            "id": "/.*/",
            "allowed_overrides": ["apply_requirements"],
            "allow_custom_workflows": false,
        })],
        workflows: Some(serde_json::json!({
            "standard": {"plan": {"steps": ["init", "plan"]}}
        })),
        policies: None,
    };
    let (r, d) = rules_from_config("sluice.toml", &cfg);
    let r = r.unwrap_or_else(|| panic!("{}", render_diags(&d)));
    assert!(r.workflows.contains_key("standard"));
    let own = "version: 3\nprojects:\n- dir: a\nworkflows:\n  mine:\n    plan:\n      steps: [init, plan]\n";
    let (ok, d) = effective(REPO_ID, own, &r);
    assert!(!ok);
    assert!(d.contains("sluice.toml"), "{d}");
    let bad = ServerRulesConfig {
        repos: vec![serde_json::json!({"id": "/.*/", "allowed_overrides": ["nope"]})],
        ..ServerRulesConfig::default()
    };
    let (r, d) = rules_from_config("sluice.toml", &bad);
    assert!(r.is_none());
    assert!(render_diags(&d).contains("nope"), "{}", render_diags(&d));
}

// ---------------------------------------------------------------------------------------------
// Workflow pieces the runner uses between steps

#[test]
fn step_variables_in_extra_args_are_expanded_but_never_become_flags() {
    use sluice::core::workflow::expand_step_variables;
    let env: std::collections::BTreeMap<String, String> = [
        ("WORKSPACE", "prod"),
        ("DIR", "/job/repo/a"),
        ("HEAD_BRANCH_NAME", "-chdir=/etc"),
        ("PULL_AUTHOR", "x -state=/tmp/s"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let cases = [
        (
            "-var-file=env/$WORKSPACE.tfvars",
            "-var-file=env/prod.tfvars",
        ),
        (
            "-var-file=${DIR}/x.tfvars",
            "-var-file=/job/repo/a/x.tfvars",
        ),
        ("-var=x=$UNKNOWN", "-var=x=$UNKNOWN"),
        ("-var=x=$", "-var=x=$"),
        ("-var=x=${WORKSPACE", "-var=x=${WORKSPACE"),
        ("$HEAD_BRANCH_NAME", "$HEAD_BRANCH_NAME"),
        ("-$HEAD_BRANCH_NAME", "-$HEAD_BRANCH_NAME"),
        ("-var=who=$PULL_AUTHOR", "-var=who=x -state=/tmp/s"),
        ("$$WORKSPACE", "$prod"),
    ];
    for (arg, want) in cases {
        assert_eq!(expand_step_variables(arg, &env), want, "{arg}");
    }
}

#[test]
fn run_output_filters_and_env_results() {
    use sluice::core::workflow::{
        FilterRegex, RunOutput, comment_args_var, env_value_from_output, parse_multienv,
        posted_output, strip_refreshing,
    };
    let plan = "Refreshing state... [id=a]\nnull_resource.b: Refreshing state... [id=b]\n\nPlan: 1 to add\n";
    assert_eq!(strip_refreshing(plan, None), "\nPlan: 1 to add\n");
    assert_eq!(
        strip_refreshing("no refresh\n", Some("1.9.0")),
        "no refresh\n"
    );
    let old = format!("Refreshing state...\n{}\nPlan: 1 to add\n", "-".repeat(72));
    assert_eq!(strip_refreshing(&old, Some("0.13.7")), "Plan: 1 to add\n");

    let how = RunOutput {
        hide: true,
        strip_refreshing: false,
        filters: vec![FilterRegex {
            text: "token=\\S+".to_string(),
            regex: regex::Regex::new("token=\\S+").unwrap(),
        }],
    };
    assert_eq!(posted_output("token=abc ok", &how, None, false), None);
    // A failed step's output is shown, still filtered.
    assert_eq!(
        posted_output("token=abc failed", &how, None, true).as_deref(),
        Some("<redacted> failed")
    );

    assert_eq!(env_value_from_output("v\n"), "v");
    assert_eq!(env_value_from_output("v\n\n"), "v\n");
    assert_eq!(
        parse_multienv("A=1,TF_VAR_b=x=y\n").unwrap(),
        vec![
            ("A".to_string(), "1".to_string()),
            ("TF_VAR_b".to_string(), "x=y".to_string())
        ]
    );
    assert!(parse_multienv("").unwrap().is_empty());
    assert!(parse_multienv("novalue").is_err());
    // A command cannot set what the file could not (credentials it fetched, it may).
    assert!(parse_multienv("AWS_SECRET_ACCESS_KEY=x").is_ok());
    for bad in [
        "PATH=/tmp",
        "LD_PRELOAD=/x.so",
        "TF_CLI_ARGS=-chdir=/",
        "1X=y",
        "A B=c",
    ] {
        let e = parse_multienv(bad);
        assert!(e.is_err(), "{bad} must be refused");
    }
    assert_eq!(
        comment_args_var(&["-var".to_string(), "x=1".to_string()]),
        "\\-\\v\\a\\r,\\x\\=\\1"
    );
}

#[test]
fn comment_args_reach_plan_import_and_state_rm_as_atlantis_passes_them() {
    let (config, d) = parse_atlantis_config(
        "atlantis.yaml",
        "version: 3\nprojects:\n- dir: a\n  workspace: w\n",
    );
    let config = config.unwrap_or_else(|| panic!("{}", render_diags(&d)));
    let (e, _) = effective_config(REPO_ID, &config, &ServerRules::unconfigured());
    let wf = &e.unwrap().projects.unwrap()[0].workflow;
    let pull = pull();
    let paths = paths();
    let dir = ProjectDir::new("a").unwrap();
    let ws = Workspace::new("w").unwrap();
    let import_args = ["aws_s3_bucket.b".to_string(), "my-bucket".to_string()];
    let ctx = StepContext {
        command: WorkflowCommand::Import,
        project_name: None,
        dir: &dir,
        workspace: &ws,
        engine: Engine::Opentofu,
        engine_version: "1.8.3",
        paths: &paths,
        pull: &pull,
        user: "alice",
        comment_args: &import_args,
        approved: Some(true),
        mergeable: Some(true),
    };
    let mut out = render_steps(wf, WorkflowCommand::Import, &ctx);
    out.push_str(&render_steps(wf, WorkflowCommand::StateRm, &ctx));
    out.push_str(&render_steps(wf, WorkflowCommand::Plan, &ctx));
    let plan = step_plan(wf, &ctx);
    // Atlantis' variables, every one documented, none that the sandbox sets.
    for (k, v) in &plan.env {
        assert!(
            sluice::core::workflow::STEP_VARIABLES.contains(&k.as_str()),
            "{k}"
        );
        out.push_str(&format!("{k}={v}\n"));
    }
    // Import is not plan or apply: Atlantis sets no approval variables for it.
    assert!(!plan.env.contains_key("ATLANTIS_PR_APPROVED"));
    insta::assert_snapshot!(out, @r"
          engine init: init -input=false -no-color
          workspace w
          engine import: import -input=false -no-color aws_s3_bucket.b my-bucket
          engine init: init -input=false -no-color
          workspace w
          engine state_rm: state rm -no-color aws_s3_bucket.b my-bucket
          engine init: init -input=false -no-color
          workspace w
          engine plan: plan -input=false -no-color -detailed-exitcode -out=/job/out/plan.tfplan aws_s3_bucket.b my-bucket
    ATLANTIS_TERRAFORM_DISTRIBUTION=tofu
    ATLANTIS_TERRAFORM_VERSION=1.8.3
    BASE_BRANCH_NAME=main
    BASE_REPO_NAME=infra
    BASE_REPO_OWNER=acme
    COMMENT_ARGS=\a\w\s\_\s\3\_\b\u\c\k\e\t\.\b,\m\y\-\b\u\c\k\e\t
    DIR=/job/repo/DIR
    HEAD_BRANCH_NAME=feature/x
    HEAD_COMMIT=0123456789abcdef0123456789abcdef01234567
    HEAD_REPO_NAME=infra
    HEAD_REPO_OWNER=acme
    PLANFILE=/job/out/plan.tfplan
    POLICYCHECKFILE=/job/out/policy.json
    PROJECT_NAME=
    PULL_AUTHOR=octocat
    PULL_NUM=7
    PULL_URL=https://github.com/acme/infra/pull/7
    REPO_REL_DIR=a
    SHOWFILE=/job/out/plan.json
    USER_NAME=alice
    WORKSPACE=w
    ");
}

// ---------------------------------------------------------------------------------------------
// sluice migrate atlantis

#[test]
fn migration_text_for_corpus_files() {
    use sluice::core::migrate::{MigrationInput, explain_migration};
    for name in ["09-policy-check", "11-multienv"] {
        let text = std::fs::read_to_string(format!("{CORPUS}/{name}.yaml")).unwrap();
        let out = explain_migration(&MigrationInput {
            atlantis: ("atlantis.yaml", &text),
            repos_yaml: None,
            repo_id: None,
        });
        insta::assert_snapshot!(format!("migrate__{name}"), out);
    }
    // Against a server's repos.yaml that forbids custom workflows.
    let text = std::fs::read_to_string(format!("{CORPUS}/02-tfvars-per-env.yaml")).unwrap();
    let out = explain_migration(&MigrationInput {
        atlantis: ("atlantis.yaml", &text),
        repos_yaml: Some(("repos.yaml", REPOS_YAML)),
        repo_id: Some("github.com/acme/other"),
    });
    insta::assert_snapshot!("migrate__02-tfvars-per-env-with-repos-yaml", out);
    // A file Atlantis refuses.
    let out = explain_migration(&MigrationInput {
        atlantis: ("atlantis.yaml", "version: 3\nprojects:\n- name: x\n"),
        repos_yaml: None,
        repo_id: None,
    });
    insta::assert_snapshot!("migrate__refused", out);
}

/// The `sluice.yaml` that `sluice migrate atlantis` prints for each corpus file loads as
/// `sluice.yaml`, without errors, with the same projects and workflows.
#[test]
fn migrated_sluice_yaml_of_every_corpus_file_loads() {
    use sluice::core::migrate::{MigrationInput, explain_migration};
    use sluice::core::repo_config::parse_repo_config;
    for (name, text) in corpus() {
        let out = explain_migration(&MigrationInput {
            atlantis: ("atlantis.yaml", &text),
            repos_yaml: None,
            repo_id: None,
        });
        let Some((_, rest)) = out.split_once("Equivalent sluice.yaml") else {
            panic!("{name}: no sluice.yaml in\n{out}");
        };
        let yaml: String = rest
            .lines()
            .skip(1)
            .take_while(|l| !l.starts_with("Not expressible") && !l.starts_with("Warnings"))
            .map(|l| format!("{l}\n"))
            .collect();
        let (config, diags) = parse_repo_config("sluice.yaml", &yaml);
        let errors: Vec<String> = diags
            .iter()
            .filter(|d| d.is_error())
            .map(ToString::to_string)
            .collect();
        assert!(errors.is_empty(), "{name}:\n{yaml}\n{}", errors.join("\n"));
        let migrated = config.unwrap();
        let (original, _) = parse_atlantis_config("atlantis.yaml", &text);
        let original = original.unwrap();
        let names = |c: &RepoConfig| -> Vec<String> {
            c.projects
                .iter()
                .flatten()
                .map(|p| format!("{:?} {}", p.known_name(), p.workspace))
                .collect()
        };
        assert_eq!(names(&migrated), names(&original), "{name}:\n{yaml}");
        let wf = |c: &RepoConfig| -> Vec<String> {
            c.workflows.iter().map(|w| w.name.clone()).collect()
        };
        assert_eq!(wf(&migrated), wf(&original), "{name}:\n{yaml}");
        assert_eq!(migrated.automerge, original.automerge, "{name}:\n{yaml}");
    }
}

/// Every corpus file loads as the server loads a repository's configuration (no key refused,
/// nothing left "not carried out"), and per-branch projects are those of the base branch.
#[test]
fn every_corpus_file_loads_as_the_server_reads_it_and_branch_picks_the_projects() {
    use sluice::app::repo_state::{RepoRules, load_config_files};
    let load = |text: &str, base: Option<&str>| {
        let rules = match base {
            Some(b) => RepoRules::unconfigured().into_branch(b),
            None => RepoRules::unconfigured(),
        };
        load_config_files(
            |path| Ok((path == "atlantis.yaml").then(|| text.to_string())),
            &rules,
        )
        .unwrap()
    };
    for (name, text) in corpus() {
        let (config, _, diags) = load(&text, Some("main"));
        assert!(
            config.is_some() && !diags.iter().any(|d| d.is_error()),
            "{name}:\n{}",
            render_diags(&diags)
        );
    }
    let text = corpus()
        .into_iter()
        .find(|(n, _)| n == "13-branch-and-requirements")
        .expect("the per-branch corpus file")
        .1;
    let names = |base: &str| -> Vec<String> {
        let config = load(&text, Some(base)).0.unwrap();
        config
            .projects
            .iter()
            .flatten()
            .map(|p| p.known_name().unwrap().to_string())
            .collect()
    };
    assert_eq!(names("main"), ["main-stack"]);
    assert_eq!(names("release/2"), ["release-stack"]);
    // The requirements each project runs with are written into the loaded configuration.
    let main = load(&text, Some("main")).0.unwrap();
    let stack = &main.projects.as_ref().unwrap()[0];
    assert_eq!(
        stack.plan_requirements.as_deref(),
        Some(&[sluice::core::types::ApplyRequirement::Approved][..])
    );
}

/// `sluice migrate atlantis` with the real binary: a directory or a file, a repos.yaml, the exit
/// code says whether Sluice would run the file as it is.
#[test]
fn migrate_atlantis_command_prints_the_explanation_and_exits_by_the_verdict() {
    use std::process::Command;
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["migrate", "atlantis"])
            .args(args)
            .env_remove("SLUICE_CONFIG")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    // Default steps only: runs as it is.
    std::fs::copy(
        format!("{CORPUS}/01-simple-projects.yaml"),
        dir.path().join("atlantis.yaml"),
    )
    .unwrap();
    let (code, out, err) = run(&[dir.path().to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("Projects (3)"), "{out}");
    assert!(out.contains("Equivalent sluice.yaml"), "{out}");

    // Per-branch projects and plan requirements: carried out, explained, exit 0.
    let later = dir.path().join("later.yaml");
    std::fs::copy(format!("{CORPUS}/13-branch-and-requirements.yaml"), &later).unwrap();
    let (code, out, _) = run(&[later.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("only on PRs into base branches matching /^main$/")
            && out.contains("requirements: plan approved; apply approved, mergeable"),
        "{out}"
    );
    assert!(!out.contains("Not carried out"), "{out}");

    // A server rule this version does not carry out: explained, exit 1.
    let pending = dir.path().join("pending-repos.yaml");
    std::fs::write(
        &pending,
        "repos:\n- id: /.*/\n  branch: /^main$/\n  apply_requirements: [approved, mergeable]\n  repo_config_file: infra/atlantis.yaml\n",
    )
    .unwrap();
    let (code, out, _) = run(&[
        "--repos-yaml",
        pending.to_str().unwrap(),
        later.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("Not carried out by this Sluice version yet")
            && out.contains("pending-repos.yaml:2:3: error: rule `/.*/`: `repo_config_file")
            && out.contains("Pull requests are run only into base branches matching /^main$/")
            && out.contains("Default requirements: plan none; apply approved, mergeable."),
        "{out}"
    );

    // Custom steps: carried out, so without server rules the file runs as it is.
    let file = dir.path().join("atlantis.yml");
    std::fs::copy(format!("{CORPUS}/02-tfvars-per-env.yaml"), &file).unwrap();
    let (code, out, _) = run(&[file.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}");

    // Against a repos.yaml, for one repository.
    let repos = dir.path().join("repos.yaml");
    std::fs::write(&repos, REPOS_YAML).unwrap();
    let (code, out, _) = run(&[
        "--repos-yaml",
        repos.to_str().unwrap(),
        "--repo",
        "acme/other",
        file.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1));
    assert!(
        out.contains("Server rules: repos.yaml (rules for github.com/acme/other)"),
        "{out}"
    );
    assert!(out.contains("allow_custom_workflows: false"), "{out}");

    // Bad input: no file, a bad --repo.
    let empty = tempfile::tempdir().unwrap();
    let (code, _, err) = run(&[empty.path().to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert!(err.contains("has no atlantis.yaml"), "{err}");
    let (code, _, err) = run(&["--repo", "not-a-repo", file.to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert!(err.contains("OWNER/NAME"), "{err}");
}

/// Anchors are expanded within bounds: an alias bomb, a self-referencing alias and an alias to
/// nothing are refused with a message, not loaded (nor hung on).
#[test]
fn yaml_aliases_are_bounded() {
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 0..9 {
        let prev = (b'a' + i) as char;
        let next = (b'a' + i + 1) as char;
        bomb.push_str(&format!(
            "{next}: &{next} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
        ));
    }
    bomb.push_str("version: 3\nprojects:\n- dir: a\n");
    let started = std::time::Instant::now();
    for (name, text) in [
        ("alias bomb", bomb.as_str()),
        (
            "self alias",
            "version: 3\nprojects: &p\n- dir: a\n  x: *p\n",
        ),
        (
            "unknown alias",
            "version: 3\nprojects:\n- <<: *nothing\n  dir: a\n",
        ),
    ] {
        let (config, diags) = parse_atlantis_config("atlantis.yaml", text);
        assert!(config.is_none(), "{name} must be refused");
        assert!(
            diags
                .iter()
                .any(|d| d.is_error() && d.file == "atlantis.yaml"),
            "{name}: {}",
            render_diags(&diags)
        );
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}
