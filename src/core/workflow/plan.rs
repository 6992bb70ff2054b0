//! The step plan: what a runner executes for one project and one command, in order, with every
//! argument resolved and the variables Atlantis documents for custom steps computed — plus the
//! pure pieces a runner needs between steps (output filters, `env`/`multienv` results).
//!
//! Values reach steps through the environment ([`StepPlan::env`]), never through argv or the
//! command text: a branch name or a PR author can contain anything. Sluice's apply runs in a
//! fresh checkout (it never reuses what the plan job wrote), so `apply`, `import` and
//! `state_rm` stages that do not initialise the project themselves get an implicit `init` with
//! the plan stage's `init` arguments (the backend must be the one the plan used).

use std::collections::BTreeMap;

use super::model::{BuiltinStep, EnvValue, RunOutput, Step, Workflow, WorkflowCommand};
use super::parse::check_env_name;
use crate::core::policy::rego::Namespaces;
use crate::core::types::{CommitSha, Engine, PrNumber, ProjectDir, RepoName, Workspace};

/// Paths inside the run's sandbox (what steps see), chosen by the runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunPaths {
    /// The project dir, absolute (`$DIR`).
    pub dir: String,
    /// Where the plan is written (plan) or read (apply) — `$PLANFILE`.
    pub planfile: String,
    /// `terraform show -json` of the plan — `$SHOWFILE`.
    pub showfile: String,
    /// The policy check results — `$POLICYCHECKFILE`.
    pub policycheckfile: String,
}

/// The pull request a run belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullInfo {
    pub base_repo: RepoName,
    /// The repository the PR's head branch lives in (a fork, or the base repository).
    pub head_repo: RepoName,
    pub base_branch: String,
    pub head_branch: String,
    pub head_commit: CommitSha,
    /// `None` for a run of no pull request (a drift check, a local preview): `PULL_NUM` is
    /// empty then.
    pub number: Option<PrNumber>,
    pub url: String,
    pub author: String,
    /// Whether someone other than the author approved it (`ATLANTIS_PR_APPROVED`) and whether
    /// GitHub says it can merge (`ATLANTIS_PR_MERGEABLE`); `None` when not known (GitHub not
    /// asked, or still computing), and the variable is then unset.
    pub approved: Option<bool>,
    pub mergeable: Option<bool>,
}

/// Everything the step plan depends on besides the workflow.
#[derive(Debug, Clone, Copy)]
pub struct StepContext<'a> {
    pub command: WorkflowCommand,
    /// The name from the config file; `None` for a project without one (Atlantis sets
    /// `PROJECT_NAME` to the empty string then).
    pub project_name: Option<&'a str>,
    pub dir: &'a ProjectDir,
    pub workspace: &'a Workspace,
    pub engine: Engine,
    /// The exact engine version that runs (`1.6.2`).
    pub engine_version: &'a str,
    pub paths: &'a RunPaths,
    pub pull: &'a PullInfo,
    /// Who asked (for autoplan, the bot's own login, as in Atlantis).
    pub user: &'a str,
    /// Arguments after `--` in the comment (for `import`: `ADDRESS ID`; `state rm`: addresses).
    pub comment_args: &'a [String],
    /// For `plan` and `apply`: whether the PR is approved / mergeable right now.
    pub approved: Option<bool>,
    pub mergeable: Option<bool>,
}

/// One step as the runner executes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlannedStep {
    /// Run the engine binary with `args` (the binary itself is the runner's choice). For
    /// [`BuiltinStep::Show`], stdout goes to `$SHOWFILE`.
    Engine {
        step: BuiltinStep,
        args: Vec<String>,
        /// Added by Sluice (apply in a fresh checkout), not written in the workflow.
        implicit: bool,
    },
    /// `workspace select` (or `new`) before the first step that needs the workspace.
    SelectWorkspace { workspace: Workspace },
    /// Evaluate the policy sets in-process on `$SHOWFILE` with these namespaces.
    PolicyCheck { namespaces: Namespaces },
    /// Run `argv` in `$DIR`; its output goes through `output` before it is posted.
    Run {
        argv: Vec<String>,
        output: RunOutput,
    },
    /// Set `name` for the following steps.
    Env {
        name: String,
        value: PlannedEnvValue,
    },
    /// Run `argv` and set the variables its output lists ([`parse_multienv`]).
    MultiEnv { argv: Vec<String>, hide: bool },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlannedEnvValue {
    Static(String),
    /// Run `argv`; the value is its output with one trailing newline removed
    /// ([`env_value_from_output`]).
    Command {
        argv: Vec<String>,
    },
}

/// The ordered steps and the base environment of one command for one project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepPlan {
    pub workflow: String,
    pub command: WorkflowCommand,
    pub steps: Vec<PlannedStep>,
    /// Atlantis' documented variables, for every `run`, `env` and `multienv` step (the runner
    /// adds the project's `env` and what `env`/`multienv` steps set, in order). Never `PATH`,
    /// `HOME` or anything else the sandbox sets.
    pub env: BTreeMap<String, String>,
}

/// The name of every variable [`StepPlan::env`] may hold. Atlantis' `OUTPUT_STATUS_FILE` exists
/// only for its server-side pre/post workflow hooks, which Sluice does not run.
pub const STEP_VARIABLES: &[&str] = &[
    "ATLANTIS_PR_APPROVED",
    "ATLANTIS_PR_MERGEABLE",
    "ATLANTIS_TERRAFORM_DISTRIBUTION",
    "ATLANTIS_TERRAFORM_VERSION",
    "BASE_BRANCH_NAME",
    "BASE_REPO_NAME",
    "BASE_REPO_OWNER",
    "COMMENT_ARGS",
    "DIR",
    "HEAD_BRANCH_NAME",
    "HEAD_COMMIT",
    "HEAD_REPO_NAME",
    "HEAD_REPO_OWNER",
    "PLANFILE",
    "POLICYCHECKFILE",
    "PROJECT_NAME",
    "PULL_AUTHOR",
    "PULL_NUM",
    "PULL_URL",
    "REPO_REL_DIR",
    "SHOWFILE",
    "USER_NAME",
    "WORKSPACE",
];

/// The steps `ctx.command` runs for a project that uses `workflow`.
///
/// Built-in steps get the arguments Sluice always passes (`-input=false -no-color`, the plan
/// file), then the step's `extra_args`, then — for `plan`, `apply`, `import` and `state_rm`, as in
/// Atlantis — the comment's arguments after `--`. `import` and `state_rm` take the comment's
/// arguments as their positional arguments.
pub fn step_plan(workflow: &Workflow, ctx: &StepContext) -> StepPlan {
    let stage = workflow.stage(ctx.command);
    let mut steps = Vec::with_capacity(stage.steps.len() + 2);
    let mut workspace_selected = false;

    // Apply-like stages run in a fresh checkout: initialise it like the plan did, unless the
    // stage's own first engine step is `init` or the stage runs only custom commands (a wrapper
    // such as terragrunt initialises itself).
    let fresh = matches!(
        ctx.command,
        WorkflowCommand::Apply | WorkflowCommand::Import | WorkflowCommand::StateRm
    );
    let first_engine = stage.steps.iter().find_map(|s| match s {
        Step::Builtin { step, .. } if *step != BuiltinStep::PolicyCheck => Some(*step),
        _ => None,
    });
    if fresh && first_engine.is_some_and(|s| s != BuiltinStep::Init) {
        let plan_init = workflow.plan.steps.iter().find_map(|s| match s {
            Step::Builtin {
                step: BuiltinStep::Init,
                extra_args,
                ..
            } => Some(
                extra_args
                    .iter()
                    .map(|a| a.value.clone())
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        });
        steps.push(PlannedStep::Engine {
            step: BuiltinStep::Init,
            args: init_args(&plan_init.unwrap_or_default()),
            implicit: true,
        });
    }

    let env = step_env(ctx);
    for s in &stage.steps {
        match s {
            Step::Builtin {
                step, extra_args, ..
            } => {
                let extra: Vec<String> = extra_args
                    .iter()
                    .map(|a| expand_step_variables(&a.value, &env))
                    .collect();
                let needs_workspace = matches!(
                    step,
                    BuiltinStep::Plan
                        | BuiltinStep::Apply
                        | BuiltinStep::Import
                        | BuiltinStep::StateRm
                );
                if needs_workspace && !workspace_selected {
                    steps.push(PlannedStep::SelectWorkspace {
                        workspace: ctx.workspace.clone(),
                    });
                    workspace_selected = true;
                }
                let Some(args) = engine_args(*step, &extra, ctx) else {
                    // `policy_check`: evaluated in-process, on the shown plan.
                    let flags: Vec<&str> = extra.iter().map(String::as_str).collect();
                    // The parser refused anything else.
                    let namespaces = Namespaces::from_conftest_args(&flags).unwrap_or_default();
                    steps.push(PlannedStep::PolicyCheck { namespaces });
                    continue;
                };
                steps.push(PlannedStep::Engine {
                    step: *step,
                    args,
                    implicit: false,
                });
            }
            Step::Run {
                command,
                shell,
                output,
                ..
            } => steps.push(PlannedStep::Run {
                argv: shell.argv(command),
                output: output.clone(),
            }),
            Step::Env { name, value, .. } => steps.push(PlannedStep::Env {
                name: name.clone(),
                value: match value {
                    EnvValue::Static(v) => PlannedEnvValue::Static(v.clone()),
                    EnvValue::Command { command, shell } => PlannedEnvValue::Command {
                        argv: shell.argv(command),
                    },
                },
            }),
            Step::MultiEnv {
                command,
                shell,
                hide,
                ..
            } => steps.push(PlannedStep::MultiEnv {
                argv: shell.argv(command),
                hide: *hide,
            }),
        }
    }
    StepPlan {
        workflow: workflow.name.clone(),
        command: ctx.command,
        steps,
        env,
    }
}

/// An `extra_args` item with Atlantis' step variables (`$WORKSPACE`, `${DIR}`, …, the names in
/// `env`) replaced by their values, as Atlantis' shell does when it runs the engine
/// (`-var-file=env/$WORKSPACE.tfvars` → `-var-file=env/prod.tfvars`). Nothing else a shell
/// would do happens: other `$NAME`s, `$(...)`, quotes and globs stay as written. When the result
/// would be a flag the item was not (`$HEAD_BRANCH_NAME` with a branch named `-chdir=..`), or a
/// flag comment arguments may not pass ([`crate::core::command::blocked_extra_arg`]), the item
/// is kept as written: a value from the PR never becomes an option.
pub fn expand_step_variables(arg: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(arg.len());
    let mut rest = arg;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, consumed) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        match env.get(name).filter(|_| !name.is_empty()) {
            Some(value) => {
                out.push_str(value);
                rest = &after[consumed..];
            }
            None => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    let became_flag = out.starts_with('-') && !arg.starts_with('-');
    if became_flag || (out != arg && crate::core::command::blocked_extra_arg(&out).is_some()) {
        return arg.to_string();
    }
    out
}

/// The engine's argv for a built-in step: Sluice's fixed flags, the step's `extra_args`, then
/// the comment's arguments where Atlantis passes them. `None` for `policy_check`, which Sluice
/// evaluates itself.
fn engine_args(step: BuiltinStep, extra: &[String], ctx: &StepContext) -> Option<Vec<String>> {
    let args = match step {
        BuiltinStep::Init => init_args(extra),
        BuiltinStep::Plan => {
            let mut a = vec![
                "plan".to_string(),
                "-input=false".to_string(),
                "-no-color".to_string(),
                "-detailed-exitcode".to_string(),
                format!("-out={}", ctx.paths.planfile),
            ];
            a.extend(extra.iter().cloned());
            a.extend(ctx.comment_args.iter().cloned());
            a
        }
        BuiltinStep::Show => {
            let mut a = vec![
                "show".to_string(),
                "-json".to_string(),
                "-no-color".to_string(),
            ];
            a.extend(extra.iter().cloned());
            a.push(ctx.paths.planfile.clone());
            a
        }
        BuiltinStep::Apply => {
            let mut a = vec![
                "apply".to_string(),
                "-input=false".to_string(),
                "-no-color".to_string(),
                "-auto-approve".to_string(),
            ];
            a.extend(extra.iter().cloned());
            a.extend(ctx.comment_args.iter().cloned());
            // The saved plan comes last: options must precede it.
            a.push(ctx.paths.planfile.clone());
            a
        }
        BuiltinStep::Import => {
            let mut a = vec![
                "import".to_string(),
                "-input=false".to_string(),
                "-no-color".to_string(),
            ];
            a.extend(extra.iter().cloned());
            a.extend(ctx.comment_args.iter().cloned());
            a
        }
        BuiltinStep::StateRm => {
            // Terraform reads `-no-color` in every command (its `Meta.process`).
            let mut a = vec![
                "state".to_string(),
                "rm".to_string(),
                "-no-color".to_string(),
            ];
            a.extend(extra.iter().cloned());
            a.extend(ctx.comment_args.iter().cloned());
            a
        }
        BuiltinStep::PolicyCheck => return None,
    };
    Some(args)
}

fn init_args(extra: &[String]) -> Vec<String> {
    let mut a = vec![
        "init".to_string(),
        "-input=false".to_string(),
        "-no-color".to_string(),
    ];
    a.extend(extra.iter().cloned());
    a
}

/// Atlantis' variables for custom steps, from the context.
pub fn step_env(ctx: &StepContext) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let mut set = |k: &str, v: String| {
        env.insert(k.to_string(), v);
    };
    set(
        "ATLANTIS_TERRAFORM_DISTRIBUTION",
        ctx.engine.default_binary().to_string(),
    );
    set("ATLANTIS_TERRAFORM_VERSION", ctx.engine_version.to_string());
    set("BASE_BRANCH_NAME", ctx.pull.base_branch.clone());
    set("BASE_REPO_NAME", ctx.pull.base_repo.name().to_string());
    set("BASE_REPO_OWNER", ctx.pull.base_repo.owner().to_string());
    set("COMMENT_ARGS", comment_args_var(ctx.comment_args));
    set("DIR", ctx.paths.dir.clone());
    set("HEAD_BRANCH_NAME", ctx.pull.head_branch.clone());
    set("HEAD_COMMIT", ctx.pull.head_commit.to_string());
    set("HEAD_REPO_NAME", ctx.pull.head_repo.name().to_string());
    set("HEAD_REPO_OWNER", ctx.pull.head_repo.owner().to_string());
    set("PLANFILE", ctx.paths.planfile.clone());
    set("POLICYCHECKFILE", ctx.paths.policycheckfile.clone());
    set(
        "PROJECT_NAME",
        ctx.project_name.unwrap_or_default().to_string(),
    );
    set("PULL_AUTHOR", ctx.pull.author.clone());
    set(
        "PULL_NUM",
        ctx.pull
            .number
            .map(|n| n.get().to_string())
            .unwrap_or_default(),
    );
    set("PULL_URL", ctx.pull.url.clone());
    set("REPO_REL_DIR", ctx.dir.as_str().to_string());
    set("SHOWFILE", ctx.paths.showfile.clone());
    set("USER_NAME", ctx.user.to_string());
    set("WORKSPACE", ctx.workspace.as_str().to_string());
    if matches!(ctx.command, WorkflowCommand::Plan | WorkflowCommand::Apply) {
        if let Some(a) = ctx.approved {
            set("ATLANTIS_PR_APPROVED", a.to_string());
        }
        if let Some(m) = ctx.mergeable {
            set("ATLANTIS_PR_MERGEABLE", m.to_string());
        }
    }
    env
}

/// `COMMENT_ARGS` as Atlantis builds it: every character of every argument preceded by `\`,
/// arguments joined by `,` (`plan -- -var x=1` → `\-\v\a\r,\x\=\1`), so that a shell that
/// expands the variable unquoted gets the characters back literally.
pub fn comment_args_var(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            let mut s = String::with_capacity(a.len() * 2);
            for c in a.chars() {
                s.push('\\');
                s.push(c);
            }
            s
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The line Atlantis (and terraform) print for every object refreshed during a plan.
pub const REFRESH_KEYWORD: &str = "Refreshing state...";

/// The separator terraform before 0.14 printed after the refresh lines.
const REFRESH_SEPARATOR: &str =
    "------------------------------------------------------------------------\n";

/// `output: strip_refreshing`: drops everything up to and including the last line that contains
/// `Refreshing state...` (terraform 0.14 and later; for older versions, everything up to the
/// separator line that followed the refresh). `engine_version` is the version that ran
/// (`None`: current behaviour). Unlike Atlantis, a refresh line on the very first line is
/// dropped too.
pub fn strip_refreshing(output: &str, engine_version: Option<&str>) -> String {
    let pre_014 = engine_version.is_some_and(|v| {
        let mut parts = v.trim_start_matches('v').split('.');
        let major: u64 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(1);
        let minor: u64 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        major == 0 && minor < 14
    });
    if pre_014 {
        return match output.find(REFRESH_SEPARATOR) {
            Some(i) => output[i + REFRESH_SEPARATOR.len()..].to_string(),
            None => output.to_string(),
        };
    }
    let lines: Vec<&str> = output.split('\n').collect();
    match lines.iter().rposition(|l| l.contains(REFRESH_KEYWORD)) {
        Some(last) => lines[last + 1..].join("\n"),
        None => output.to_string(),
    }
}

/// What of a successful `run` step's output is posted: `None` for `output: hide`, otherwise the
/// output after `strip_refreshing` and `filter_regex` (matches become `<redacted>`). A failed
/// step's output is always shown (filtered, never hidden), so the failure can be understood.
pub fn posted_output(
    output: &str,
    how: &RunOutput,
    engine_version: Option<&str>,
    failed: bool,
) -> Option<String> {
    let mut text = if how.strip_refreshing {
        strip_refreshing(output, engine_version)
    } else {
        output.to_string()
    };
    for f in &how.filters {
        text = f.regex.replace_all(&text, "<redacted>").into_owned();
    }
    if how.hide && !failed {
        return None;
    }
    Some(text)
}

/// An `env` step's value from its command's output: one trailing newline removed (so
/// `echo value` works), nothing else.
pub fn env_value_from_output(output: &str) -> String {
    output.strip_suffix('\n').unwrap_or(output).to_string()
}

/// Why a `multienv` command's output was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct MultiEnvError {
    pub message: String,
    pub hint: String,
}

/// The variables a `multienv` command's output sets: `NAME=value` pairs separated by commas
/// (Atlantis' format; a value may contain `=`, trailing newlines are dropped). Empty output sets
/// nothing. Every name passes the same checks as an `env` step's name (the environment
/// allowlist): the first that does not fails the step, so a command cannot set what the file
/// could not.
pub fn parse_multienv(output: &str) -> Result<Vec<(String, String)>, MultiEnvError> {
    if output.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for item in output.split(',') {
        let item = item.trim_end_matches('\n');
        let Some((name, value)) = item.split_once('=') else {
            return Err(MultiEnvError {
                message: format!(
                    "`multienv` output `{}` is not `NAME=value`",
                    item.escape_default()
                ),
                hint: "print `NAME1=value1,NAME2=value2`".to_string(),
            });
        };
        if let Err((message, hint)) = check_env_name(name) {
            return Err(MultiEnvError { message, hint });
        }
        out.push((name.to_string(), value.to_string()));
    }
    Ok(out)
}
