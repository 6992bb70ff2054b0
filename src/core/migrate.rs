//! `sluice migrate atlantis`, the pure part: what Sluice will do with an `atlantis.yaml` (and,
//! optionally, the server's `repos.yaml`) — each project, workflow and policy set, what is not
//! supported and why — and the equivalent `sluice.yaml` for teams that want to switch formats.
//!
//! The CLI reads the files and prints [`explain_migration`]'s text; nothing here does I/O.

use std::fmt::Write as _;

use super::diag::Diagnostic;
use super::policy::rego::{PolicySetConfig, SetOrigin};
use super::repo_config::{
    ATLANTIS_DEFAULT_WHEN_MODIFIED, ConfigFormat, DirSpec, ProjectConfig, RepoConfig,
    parse_atlantis_config, parse_repo_config,
};
use super::server_rules::{ServerRules, effective_config, parse_repos_yaml};
use super::types::{ApplyRequirement, Engine};
use super::workflow::{
    BuiltinStep, DEFAULT_WORKFLOW, EnvValue, Stage, Step, Workflow, WorkflowCommand, WorkflowOrigin,
};

/// What the command was given.
#[derive(Debug, Clone, Copy)]
pub struct MigrationInput<'a> {
    /// `(path, text)` of the repository's `atlantis.yaml`.
    pub atlantis: (&'a str, &'a str),
    /// `(path, text)` of the server's `repos.yaml`, if the user has it.
    pub repos_yaml: Option<(&'a str, &'a str)>,
    /// `github.com/owner/name`, to pick the `repos.yaml` rules that apply (default: rules whose
    /// id matches any repository, i.e. `/.*/`-style regexes only).
    pub repo_id: Option<&'a str>,
}

/// The text `sluice migrate atlantis` prints: a summary, the projects, workflows, policy sets,
/// what is ignored or refused and why, and the equivalent `sluice.yaml` (when the file loads).
pub fn explain_migration(input: &MigrationInput) -> String {
    let (file, text) = input.atlantis;
    let (config, mut diags) = parse_atlantis_config(file, text);
    let mut rules = ServerRules::unconfigured();
    if let Some((rfile, rtext)) = input.repos_yaml {
        let (r, d) = parse_repos_yaml(rfile, rtext);
        diags.extend(d);
        if let Some(r) = r {
            rules = r;
        }
    }
    let repo_id = input.repo_id.unwrap_or("<any repository>");
    let mut out = String::new();
    let Some(config) = config else {
        let _ = writeln!(
            out,
            "Sluice cannot use {file} as it is: Atlantis' rules refuse it too, or Sluice would do something different. Fix these first:\n"
        );
        problems(&mut out, &diags);
        return out;
    };
    let (effective, ediags) = effective_config(repo_id, &config, &rules);
    diags.extend(ediags);

    if diags.iter().any(Diagnostic::is_error) {
        let _ = writeln!(
            out,
            "Sluice reads {file} (atlantis.yaml version {}), but refuses what is listed under \
             \"Refused\" below: fix that before switching.",
            config.version
        );
    } else {
        let _ = writeln!(
            out,
            "Sluice reads {file} (atlantis.yaml version {}) as it is; no change is needed to switch.",
            config.version
        );
    }
    if let (Some((rfile, _)), false) = (input.repos_yaml, rules.configured) {
        let _ = writeln!(
            out,
            "Server rules: {rfile} could not be read (see the errors below); the rest is judged \
             as if there were none."
        );
    } else if rules.configured {
        let _ = writeln!(out, "Server rules: {} (rules for {repo_id}).", rules.file);
        let settings = rules.settings_for(repo_id);
        if let Some(b) = &settings.branch {
            let _ = writeln!(
                out,
                "  Pull requests are run only into base branches matching {} (the rule's `branch`); \
                 Sluice answers others with a refusal.",
                b.text
            );
        }
        let _ = writeln!(
            out,
            "  Default requirements: plan {}; apply {}.",
            reqs(&settings.plan_requirements),
            reqs(&settings.apply_requirements)
        );
    } else {
        let _ = writeln!(
            out,
            "Server rules: none given, so the repository may set every key and define workflows \
             (pass the server's repos.yaml to check against it)."
        );
    }
    out.push('\n');

    projects_section(&mut out, &config, effective.as_ref());
    workflows_section(&mut out, &config, &rules);
    policies_section(&mut out, &config.policy_sets, &rules.policy_sets);

    let warnings: Vec<&Diagnostic> = diags.iter().filter(|d| !d.is_error()).collect();
    let errors: Vec<&Diagnostic> = diags.iter().filter(|d| d.is_error()).collect();
    if !warnings.is_empty() {
        out.push_str("Ignored or read differently (warnings):\n");
        for d in &warnings {
            let _ = writeln!(out, "  {}", indent(&d.to_string()));
        }
        out.push('\n');
    }
    if !errors.is_empty() {
        out.push_str("Refused (fix before Sluice runs these projects):\n");
        for d in &errors {
            let _ = writeln!(out, "  {}", indent(&d.to_string()));
        }
        out.push('\n');
    }

    let pending = if rules.configured {
        super::server_rules::server_not_yet_enforced(&rules)
    } else {
        Vec::new()
    };
    if !pending.is_empty() {
        out.push_str(
            "Not carried out by this Sluice version yet (the server refuses its rules until they \
             are removed):\n",
        );
        for d in &pending {
            let _ = writeln!(out, "  {}", indent(&d.to_string()));
        }
        out.push('\n');
    }

    let yaml = sluice_yaml(&config);
    out.push_str("Equivalent sluice.yaml (optional; Sluice reads atlantis.yaml as it is):\n\n");
    out.push_str(&yaml.text);
    if !yaml.left_out.is_empty() {
        out.push_str("\nNot expressible in sluice.yaml (keep atlantis.yaml to keep them):\n");
        for l in &yaml.left_out {
            let _ = writeln!(out, "  - {l}");
        }
    }
    out
}

fn indent(s: &str) -> String {
    s.replace('\n', "\n  ")
}

fn problems(out: &mut String, diags: &[Diagnostic]) {
    for d in diags {
        let _ = writeln!(out, "  {}", indent(&d.to_string()));
    }
}

fn reqs(list: &[ApplyRequirement]) -> String {
    if list.is_empty() {
        "none".to_string()
    } else {
        list.iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn project_title(p: &ProjectConfig) -> String {
    let name = p
        .known_name()
        .map_or_else(|| "(one per matching dir)".to_string(), |n| n.to_string());
    format!(
        "{name} — dir {}, workspace {}",
        p.dir.value.as_str(),
        p.workspace
    )
}

fn projects_section(
    out: &mut String,
    config: &RepoConfig,
    effective: Option<&super::server_rules::EffectiveConfig>,
) {
    let Some(projects) = &config.projects else {
        out.push_str(
            "Projects: none listed, so Sluice detects them itself: every directory with .tf or \
             .tofu files is a project (workspace default), planned when a PR changes it or a \
             local module it uses (Atlantis' autodiscovery).\n\n",
        );
        return;
    };
    let _ = writeln!(out, "Projects ({}):", projects.len());
    for (i, p) in projects.iter().enumerate() {
        let _ = writeln!(out, "  * {}", project_title(p));
        let settings = effective
            .and_then(|e| e.projects.as_ref())
            .and_then(|ps| ps.get(i));
        let workflow = match (&p.workflow, settings) {
            (_, Some(s)) => s.workflow.name.clone(),
            (Some(w), None) => w.value.clone(),
            (None, None) => DEFAULT_WORKFLOW.to_string(),
        };
        let engine = match p.engine.as_ref().map(|e| e.value) {
            Some(Engine::Terraform) => "terraform",
            Some(Engine::Opentofu) => "OpenTofu (tofu)",
            None => "terraform, or OpenTofu when the directory holds only `.tofu` files",
        };
        let version = p.terraform_version.as_deref().map_or_else(
            || "from required_version".to_string(),
            |v| format!("exactly {v}"),
        );
        let _ = writeln!(
            out,
            "      engine: {engine}, version {version}; workflow: {workflow}"
        );
        let wm: Vec<&str> = p.when_modified.iter().map(|w| w.value.as_str()).collect();
        if p.autoplan {
            let default = wm == ATLANTIS_DEFAULT_WHEN_MODIFIED;
            let _ = writeln!(
                out,
                "      autoplan: when a PR changes {}{}",
                wm.join(" "),
                if default { " (Atlantis' default)" } else { "" }
            );
        } else {
            out.push_str("      autoplan: off (plan with a comment)\n");
        }
        if let Some(s) = settings {
            let _ = writeln!(
                out,
                "      requirements: plan {}; apply {}; import and state rm {}",
                reqs(&s.plan_requirements),
                reqs(&s.apply_requirements),
                reqs(&s.import_requirements)
            );
            if !s.policy_check {
                out.push_str("      policy checks: off for this project\n");
            }
        }
        if !p.depends_on.is_empty() {
            let deps: Vec<&str> = p.depends_on.iter().map(|d| d.value.as_str()).collect();
            let _ = writeln!(out, "      applied after: {}", deps.join(", "));
        }
        if p.execution_order_group != 0 {
            let _ = writeln!(
                out,
                "      execution order group: {}",
                p.execution_order_group
            );
        }
        if let Some(b) = &p.branch {
            let _ = writeln!(
                out,
                "      only on PRs into base branches matching {} (elsewhere the project does not exist)",
                b.text
            );
        }
    }
    out.push_str(
        "  Every project is locked by dir and workspace while a PR holds its plan; apply runs \
         the saved, reviewed plan in a fresh checkout.\n\n",
    );
}

fn describe_step(s: &Step) -> String {
    match s {
        Step::Builtin {
            step, extra_args, ..
        } => {
            if extra_args.is_empty() {
                step.name().to_string()
            } else {
                let args: Vec<&str> = extra_args.iter().map(|a| a.value.as_str()).collect();
                format!("{} {}", step.name(), args.join(" "))
            }
        }
        Step::Run {
            command, output, ..
        } => {
            let mut s = format!("run `{}`", one_line(command));
            if output.hide {
                s.push_str(" (output hidden)");
            }
            if output.strip_refreshing {
                s.push_str(" (refresh lines stripped)");
            }
            if !output.filters.is_empty() {
                s.push_str(" (output filtered)");
            }
            s
        }
        Step::Env { name, value, .. } => match value {
            EnvValue::Static(v) => format!("env {name}={}", one_line(v)),
            EnvValue::Command { command, .. } => format!("env {name} from `{}`", one_line(command)),
        },
        Step::MultiEnv { command, .. } => format!("multienv from `{}`", one_line(command)),
    }
}

fn one_line(s: &str) -> String {
    let first = s.trim().lines().next().unwrap_or("");
    let mut t: String = first.chars().take(80).collect();
    if first.chars().count() > 80 || s.trim().lines().count() > 1 {
        t.push('…');
    }
    t
}

fn stage_line(stage: &Stage) -> String {
    if stage.is_default() {
        return "default".to_string();
    }
    if stage.steps.is_empty() {
        return "(no steps)".to_string();
    }
    stage
        .steps
        .iter()
        .map(describe_step)
        .collect::<Vec<_>>()
        .join(" → ")
}

fn workflows_section(out: &mut String, config: &RepoConfig, rules: &ServerRules) {
    let mut used: Vec<&Workflow> = config.workflows.iter().collect();
    for w in rules.workflows.values() {
        if w.origin != WorkflowOrigin::BuiltIn && !used.iter().any(|u| u.name == w.name) {
            used.push(w);
        }
    }
    if used.is_empty() {
        out.push_str(
            "Workflows: none defined; every project runs the default one (init → plan; apply the \
             saved plan).\n\n",
        );
        return;
    }
    let _ = writeln!(out, "Workflows ({}):", used.len());
    for w in used {
        let _ = writeln!(out, "  * {} ({}:{})", w.name, w.origin, w.pos.line);
        for c in WorkflowCommand::ALL {
            let stage = w.stage(c);
            if !stage.is_default() {
                let _ = writeln!(out, "      {}: {}", c.key(), stage_line(stage));
            }
        }
        if w.is_equivalent_to_default() {
            out.push_str("      (the same steps as the default workflow)\n");
        }
        let apply_has_init = w.apply.steps.iter().any(|s| {
            matches!(
                s,
                Step::Builtin {
                    step: BuiltinStep::Init,
                    ..
                }
            )
        });
        let apply_uses_engine = w
            .apply
            .steps
            .iter()
            .any(|s| matches!(s, Step::Builtin { step, .. } if *step != BuiltinStep::Init));
        if apply_uses_engine && !apply_has_init {
            out.push_str(
                "      apply runs in a fresh checkout: Sluice runs init first, with the plan stage's init arguments\n",
            );
        }
    }
    out.push_str(
        "  `run`, `env` and `multienv` commands run inside the project's sandbox with the run's \
         environment only (Atlantis ran them on the server, with its whole environment); their \
         output is redacted like terraform's, and a failing step stops the workflow.\n\n",
    );
}

fn policies_section(out: &mut String, repo: &[PolicySetConfig], server: &[PolicySetConfig]) {
    if repo.is_empty() && server.is_empty() {
        out.push_str("Policy sets: none.\n\n");
        return;
    }
    let _ = writeln!(out, "Policy sets ({}):", repo.len() + server.len());
    for s in server.iter().chain(repo) {
        let owners: Vec<String> = s
            .owners
            .users
            .iter()
            .map(|u| format!("@{}", u.value))
            .chain(s.owners.teams.iter().map(|t| format!("team {}", t.value)))
            .collect();
        let whence = match s.origin {
            SetOrigin::Repo => "the repository's base branch",
            SetOrigin::Server => "the server",
        };
        let _ = writeln!(
            out,
            "  * {} — Rego files at {} (from {whence}), evaluated in-process on the plan's JSON with conftest's rules (deny/violation fail, warn warns; namespace main plus those the workflows' policy_check steps name); a failure blocks apply until {} of its owners ({}) run `approve_policies --policy-set {}`",
            s.name,
            s.path.value,
            s.approve_count,
            if owners.is_empty() {
                "none listed".to_string()
            } else {
                owners.join(", ")
            },
            s.name
        );
    }
    out.push('\n');
}

/// The `sluice.yaml` equivalent, and what it cannot say.
struct SluiceYaml {
    text: String,
    left_out: Vec<String>,
}

/// A YAML scalar: plain when it is unambiguous, JSON-quoted otherwise.
fn scalar(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-'))
        && !s.starts_with(['-', '.'])
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n" | "~"
        );
    if plain {
        s.to_string()
    } else {
        serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
    }
}

fn list(items: &[String]) -> String {
    format!(
        "[{}]",
        items
            .iter()
            .map(|s| scalar(s))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn step_yaml(s: &Step) -> String {
    match s {
        Step::Builtin {
            step, extra_args, ..
        } => {
            if extra_args.is_empty() {
                step.name().to_string()
            } else {
                let args: Vec<String> = extra_args.iter().map(|a| a.value.clone()).collect();
                format!("{}: {{ extra_args: {} }}", step.name(), list(&args))
            }
        }
        Step::Run {
            command,
            shell,
            output,
            ..
        } => {
            let default_shell = shell == &super::workflow::Shell::default();
            if default_shell && output == &super::workflow::RunOutput::default() {
                return format!("run: {}", scalar(command));
            }
            let mut parts = vec![format!("command: {}", scalar(command))];
            let mut outs: Vec<String> = Vec::new();
            if output.hide {
                outs.push("hide".to_string());
            }
            if output.strip_refreshing {
                outs.push("strip_refreshing".to_string());
            }
            for f in &output.filters {
                outs.push(format!("{{ filter_regex: {} }}", scalar(&f.text)));
            }
            match outs.len() {
                0 => {}
                1 if !outs[0].starts_with('{') => parts.push(format!("output: {}", outs[0])),
                _ => parts.push(format!("output: [{}]", outs.join(", "))),
            }
            if !default_shell {
                parts.push(format!("shell: {}", scalar(&shell.program)));
                parts.push(format!("shellArgs: {}", list(&shell.args)));
            }
            format!("run: {{ {} }}", parts.join(", "))
        }
        Step::Env { name, value, .. } => match value {
            EnvValue::Static(v) => format!("env: {{ name: {name}, value: {} }}", scalar(v)),
            EnvValue::Command { command, shell } => {
                let mut s = format!("env: {{ name: {name}, command: {}", scalar(command));
                if shell != &super::workflow::Shell::default() {
                    let _ = write!(
                        s,
                        ", shell: {}, shellArgs: {}",
                        scalar(&shell.program),
                        list(&shell.args)
                    );
                }
                s.push_str(" }");
                s
            }
        },
        Step::MultiEnv {
            command,
            shell,
            hide,
            ..
        } => {
            let mut parts = vec![format!("command: {}", scalar(command))];
            if *hide {
                parts.push("output: hide".to_string());
            }
            if shell != &super::workflow::Shell::default() {
                parts.push(format!("shell: {}", scalar(&shell.program)));
                parts.push(format!("shellArgs: {}", list(&shell.args)));
            }
            format!("multienv: {{ {} }}", parts.join(", "))
        }
    }
}

fn sluice_yaml(config: &RepoConfig) -> SluiceYaml {
    let mut t = String::from("version: 1\n");
    let mut left_out = Vec::new();
    if let Some(method) = config.automerge {
        let _ = writeln!(
            t,
            "automerge: {{ enabled: true, method: {} }}",
            method.as_str()
        );
    }
    if let Some(projects) = &config.projects {
        t.push_str("projects:\n");
        for p in projects {
            let label = project_title(p);
            let dir = match &p.dir.value {
                DirSpec::Exact(d) => d.as_str().to_string(),
                DirSpec::Glob(g) => g.clone(),
            };
            match &p.name {
                Some(n) => {
                    let _ = writeln!(t, "  - name: {}", scalar(n.value.as_str()));
                    let _ = writeln!(t, "    dir: {}", scalar(&dir));
                }
                None => {
                    let _ = writeln!(t, "  - dir: {}", scalar(&dir));
                }
            }
            if !p.workspace.is_default() {
                let _ = writeln!(t, "    workspace: {}", scalar(p.workspace.as_str()));
            }
            if let Some(v) = &p.terraform_version {
                let _ = writeln!(t, "    terraform_version: {}", scalar(v));
            }
            match p.engine.as_ref().map(|e| e.value) {
                Some(Engine::Opentofu) => t.push_str("    engine: opentofu\n"),
                Some(Engine::Terraform) => t.push_str("    engine: terraform\n"),
                None => {}
            }
            let wm: Vec<String> = p.when_modified.iter().map(|w| w.value.clone()).collect();
            let _ = writeln!(
                t,
                "    autoplan: {{ enabled: {}, when_modified: {} }}",
                p.autoplan,
                list(&wm)
            );
            let reqs: Vec<String> = p
                .apply_requirements
                .iter()
                .map(|r| r.as_str().to_string())
                .collect();
            let _ = writeln!(t, "    apply_requirements: {}", list(&reqs));
            if !p.depends_on.is_empty() {
                let deps: Vec<String> = p.depends_on.iter().map(|d| d.value.to_string()).collect();
                let _ = writeln!(t, "    depends_on: {}", list(&deps));
            }
            if let Some(w) = &p.workflow {
                let _ = writeln!(t, "    workflow: {}", scalar(&w.value));
            }
            if let Some(b) = &p.branch {
                left_out.push(format!(
                    "{label}: `branch: {}` (sluice.yaml has no per-branch projects)",
                    b.text
                ));
            }
            if let Some(r) = &p.plan_requirements {
                let r: Vec<&str> = r.iter().map(|x| x.as_str()).collect();
                left_out.push(format!(
                    "{label}: `plan_requirements: [{}]` (set it in the server rules)",
                    r.join(", ")
                ));
            }
            if let Some(r) = &p.import_requirements {
                let r: Vec<&str> = r.iter().map(|x| x.as_str()).collect();
                left_out.push(format!(
                    "{label}: `import_requirements: [{}]` (set it in the server rules)",
                    r.join(", ")
                ));
            }
            if p.execution_order_group != 0 {
                left_out.push(format!(
                    "{label}: `execution_order_group: {}` (use `depends_on`)",
                    p.execution_order_group
                ));
            }
            if p.policy_check == Some(false) {
                left_out.push(format!(
                    "{label}: `policy_check: false` (scope the policies instead)"
                ));
            }
        }
    }
    if !config.workflows.is_empty() {
        t.push_str("workflows:\n");
        for w in &config.workflows {
            let _ = writeln!(t, "  {}:", scalar(&w.name));
            let mut any = false;
            for c in WorkflowCommand::ALL {
                let stage = w.stage(c);
                if stage.is_default() {
                    continue;
                }
                any = true;
                let _ = writeln!(t, "    {}:", c.key());
                if stage.steps.is_empty() {
                    t.push_str("      steps: []\n");
                    continue;
                }
                t.push_str("      steps:\n");
                for s in &stage.steps {
                    let _ = writeln!(t, "        - {}", step_yaml(s));
                }
            }
            if !any {
                t.push_str("    plan: ~\n");
            }
        }
    }
    if !config.policy_sets.is_empty() {
        t.push_str("policy_sets:\n");
        for s in &config.policy_sets {
            let _ = writeln!(t, "  - name: {}", scalar(&s.name));
            let _ = writeln!(t, "    path: {}", scalar(&s.path.value));
            t.push_str("    source: local\n");
            if !s.owners.users.is_empty() || !s.owners.teams.is_empty() {
                let users: Vec<String> = s.owners.users.iter().map(|u| u.value.clone()).collect();
                let teams: Vec<String> = s.owners.teams.iter().map(|u| u.value.clone()).collect();
                let _ = writeln!(
                    t,
                    "    owners: {{ users: {}, teams: {} }}",
                    list(&users),
                    list(&teams)
                );
            }
            if s.approve_count != 1 {
                let _ = writeln!(t, "    approve_count: {}", s.approve_count);
            }
            if let Some(v) = s.rego_version {
                let _ = writeln!(t, "    rego_version: {}", v.name());
            }
        }
    }
    // The text must read back as the same projects: a bug here would hand users a broken file.
    debug_assert!(
        parse_repo_config("sluice.yaml", &t)
            .0
            .is_some_and(|c| c.format == ConfigFormat::Sluice),
        "generated sluice.yaml does not parse:\n{t}"
    );
    SluiceYaml { text: t, left_out }
}
