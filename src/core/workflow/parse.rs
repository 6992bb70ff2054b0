//! Reading `workflows:` (in `sluice.yaml`, `atlantis.yaml` and the server's repo rules) into
//! [`Workflow`]s, with Atlantis' step syntax and Sluice's checks, every problem as a diagnostic at
//! `file:line:col`.
//!
//! The accepted syntax is Atlantis' (`server/core/config/raw/step.go`, `stage.go`,
//! `workflow.go`): a step is a built-in name (`- init`), a built-in with `extra_args`
//! (`- plan: {extra_args: [...]}`), `- run: CMD` or `- run: {command, output, shell, shellArgs}`,
//! `- env: {name, value | command, shell, shellArgs}`, `- multienv: CMD` or
//! `- multienv: {command, output, shell, shellArgs}`. Where Sluice refuses what Atlantis accepts,
//! it is because Sluice would do something different or unsafe, and the message says so:
//! `extra_args` that redirect terraform (`-chdir`, `-out`, `-state`, …, the same list as comment
//! arguments), a step that changes infrastructure outside its own stage (`apply` in `plan`), an
//! `env`/`multienv` variable outside the environment allowlist (`repo_config::env_name_refusal`),
//! a bare `env`/`multienv` step with nothing to set.

use marked_yaml::Node;
use marked_yaml::types::MarkedMappingNode;

use super::model::{
    BuiltinStep, EnvValue, FilterRegex, RunOutput, Shell, Stage, Step, Workflow, WorkflowCommand,
    WorkflowOrigin,
};
use crate::core::command::blocked_extra_arg;
use crate::core::repo_config::{EnvClass, Located, Pos, env_name_refusal};
use crate::core::yaml::{self, Key::Known, describe, did_you_mean, is_null, pos, pos_of_span};

/// Most workflows one file may define.
pub const MAX_WORKFLOWS: usize = 500;

/// Most steps in one stage.
pub const MAX_STEPS: usize = 200;

/// How `run` commands of an `atlantis.yaml` are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunSyntax {
    /// As written (Atlantis `version: 3`, Sluice).
    Verbatim,
    /// Atlantis `version: 2`: the command is split like a shell would (quotes and escapes
    /// removed) and joined again with single spaces, in `plan` and `apply` stages.
    LegacyShellSplit,
}

/// Reads a `workflows:` mapping; the workflows of entries with errors are left out (their errors
/// are in `r`). `origin` records where they were defined.
pub(crate) fn workflows_node(
    r: &mut yaml::Reader,
    node: &Node,
    origin: &WorkflowOrigin,
    syntax: RunSyntax,
) -> Vec<Workflow> {
    let mut out = Vec::new();
    if let Node::Scalar(s) = node {
        if is_null(s) {
            return out;
        }
    }
    let Some(map) = r.mapping(node, "`workflows`") else {
        return out;
    };
    if map.len() > MAX_WORKFLOWS {
        r.error(
            pos(node),
            format!(
                "`workflows` defines {} workflows; Sluice reads at most {MAX_WORKFLOWS}",
                map.len()
            ),
            None,
        );
        return out;
    }
    for (name, body) in map.iter() {
        let at = pos_of_span(name.span());
        if name.as_str().trim().is_empty() {
            r.error(at, "a workflow needs a name", None);
            continue;
        }
        if let Some(w) = workflow(r, name.as_str(), at, body, origin, syntax) {
            out.push(w);
        }
    }
    out
}

fn errors(r: &yaml::Reader) -> usize {
    r.diags.iter().filter(|d| d.is_error()).count()
}

fn workflow(
    r: &mut yaml::Reader,
    name: &str,
    at: Pos,
    node: &Node,
    origin: &WorkflowOrigin,
    syntax: RunSyntax,
) -> Option<Workflow> {
    let before = errors(r);
    let mut w = Workflow {
        name: name.to_string(),
        origin: origin.clone(),
        pos: at,
        ..Workflow::default_workflow()
    };
    // `name:` alone (no stages) is a workflow that behaves like `default`.
    if let Node::Scalar(s) = node {
        if is_null(s) {
            return Some(w);
        }
    }
    let map = r.mapping(node, &format!("workflow `{name}`"))?;
    let rules: Vec<(&str, yaml::Key)> = WorkflowCommand::ALL
        .iter()
        .map(|c| (c.key(), Known))
        .collect();
    r.check_keys(map, &format!("in workflow `{name}`"), &rules);
    for command in WorkflowCommand::ALL {
        let Some(stage_node) = map.get_node(command.key()) else {
            continue;
        };
        if let Some(stage) = stage(r, name, command, stage_node, syntax) {
            *w.stage_mut(command) = stage;
        }
    }
    (errors(r) == before).then_some(w)
}

fn stage(
    r: &mut yaml::Reader,
    workflow: &str,
    command: WorkflowCommand,
    node: &Node,
    syntax: RunSyntax,
) -> Option<Stage> {
    if let Node::Scalar(s) = node {
        if is_null(s) {
            return Some(Stage::default_for(command));
        }
    }
    let place = format!("`{workflow}.{}`", command.key());
    let map = r.mapping(node, &place)?;
    r.check_keys(map, &format!("in {place}"), &[("steps", Known)]);
    let Some(steps_node) = map.get_node("steps") else {
        return Some(Stage::default_for(command));
    };
    if let Node::Scalar(s) = steps_node {
        if is_null(s) {
            return Some(Stage::default_for(command));
        }
    }
    let seq = r.sequence(steps_node, "steps")?;
    if !r.at_most(seq, "steps", MAX_STEPS) {
        return None;
    }
    let stage_pos = pos(steps_node);
    let steps: Vec<Step> = seq
        .iter()
        .filter_map(|n| step(r, command, n, syntax))
        .collect();
    check_stage(r, workflow, command, &steps, stage_pos);
    Some(Stage {
        steps,
        pos: Some(stage_pos),
    })
}

/// What a stage must do to be useful in Sluice, as warnings (Atlantis runs such stages too).
fn check_stage(
    r: &mut yaml::Reader,
    workflow: &str,
    command: WorkflowCommand,
    steps: &[Step],
    at: Pos,
) {
    let runs = steps.iter().any(|s| matches!(s, Step::Run { .. }));
    let main = command.main_step();
    let has_main = steps
        .iter()
        .any(|s| matches!(s, Step::Builtin { step, .. } if *step == main));
    if steps.is_empty() {
        r.warning(
            at,
            format!(
                "workflow `{workflow}` runs no steps for `{command}`: nothing will be {}",
                match command {
                    WorkflowCommand::Plan => "planned",
                    WorkflowCommand::Apply => "applied",
                    WorkflowCommand::PolicyCheck => "checked",
                    WorkflowCommand::Import => "imported",
                    WorkflowCommand::StateRm => "removed from the state",
                }
            ),
            Some(format!(
                "remove `{}:` to use the default steps",
                command.key()
            )),
        );
    } else if command == WorkflowCommand::Plan && !has_main && !runs {
        r.warning(
            at,
            format!("workflow `{workflow}`: no step of `plan` writes the plan file"),
            Some("add the `plan` step, or a `run` step that writes `$PLANFILE`".to_string()),
        );
    }
}

const STEP_NAMES: &[&str] = &[
    "init",
    "plan",
    "show",
    "apply",
    "policy_check",
    "import",
    "state_rm",
    "run",
    "env",
    "multienv",
];

fn step(
    r: &mut yaml::Reader,
    command: WorkflowCommand,
    node: &Node,
    syntax: RunSyntax,
) -> Option<Step> {
    let at = pos(node);
    match node {
        Node::Scalar(s) if !is_null(s) => {
            let text = s.as_str();
            if let Some(b) = BuiltinStep::from_name(text) {
                return builtin(r, command, b, Vec::new(), at);
            }
            let (message, hint) = match text {
                "run" | "env" | "multienv" => (
                    format!("`{text}` step needs a command"),
                    match text {
                        "env" => "write `- env: {name: NAME, value: VALUE}` or `- env: {name: NAME, command: CMD}`".to_string(),
                        _ => format!("write `- {text}: COMMAND`"),
                    },
                ),
                _ => {
                    let first = text.split_whitespace().next().unwrap_or(text);
                    let hint = if let Some(b) = BuiltinStep::from_name(first) {
                        let rest: Vec<&str> = text.split_whitespace().skip(1).collect();
                        format!(
                            "to pass arguments to the built-in step, write `- {b}: {{extra_args: [{}]}}`; \
                             to run a command, write `- run: {text}`",
                            rest.join(", ")
                        )
                    } else if let Some(s) = did_you_mean(text, STEP_NAMES.iter().copied()) {
                        format!("did you mean `{s}`? to run a command, write `- run: {text}`")
                    } else {
                        format!(
                            "steps are {}; to run a command, write `- run: {text}`",
                            STEP_NAMES.join(", ")
                        )
                    };
                    (format!("`{text}` is not a valid step"), hint)
                }
            };
            r.error(at, message, Some(hint));
            None
        }
        Node::Mapping(map) => {
            let keys: Vec<&str> = map.keys().map(|k| k.as_str()).collect();
            if keys.len() != 1 {
                r.error(
                    at,
                    format!(
                        "a step has exactly one key, found {}{}",
                        keys.len(),
                        if keys.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", keys.join(", "))
                        }
                    ),
                    Some("write each step as its own list item (`- run: ...`)".to_string()),
                );
                return None;
            }
            let (key, value) = map.iter().next().expect("one key");
            let name = key.as_str();
            let key_at = pos_of_span(key.span());
            match name {
                "run" => run_step(r, value, key_at, syntax, command),
                "multienv" => multienv_step(r, value, key_at),
                "env" => env_step(r, value, key_at),
                _ => match BuiltinStep::from_name(name) {
                    Some(b) => {
                        let args = extra_args(r, b, value)?;
                        builtin(r, command, b, args, key_at)
                    }
                    None => {
                        let hint = match did_you_mean(name, STEP_NAMES.iter().copied()) {
                            Some(s) => {
                                format!("did you mean `{s}`? steps are {}", STEP_NAMES.join(", "))
                            }
                            None => format!("steps are {}", STEP_NAMES.join(", ")),
                        };
                        r.error(key_at, format!("`{name}` is not a valid step"), Some(hint));
                        None
                    }
                },
            }
        }
        other => {
            r.error(
                at,
                format!(
                    "a step should be a name or a mapping, found {}",
                    describe(other)
                ),
                Some(
                    "write `- init`, `- run: COMMAND` or `- plan: {extra_args: [...]}`".to_string(),
                ),
            );
            None
        }
    }
}

fn builtin(
    r: &mut yaml::Reader,
    command: WorkflowCommand,
    step: BuiltinStep,
    extra_args: Vec<Located<String>>,
    at: Pos,
) -> Option<Step> {
    if let Some(only) = step.only_in() {
        if only != command {
            let why = match step {
                BuiltinStep::Apply => {
                    "applying outside `apply` would skip the review and the apply gate"
                }
                BuiltinStep::Plan => {
                    "a plan outside `plan` would replace the plan that was reviewed"
                }
                BuiltinStep::Import | BuiltinStep::StateRm => {
                    "it changes the state, which only its own command may do, behind the apply gate"
                }
                BuiltinStep::PolicyCheck => "policies are checked in the `policy_check` stage",
                BuiltinStep::Init | BuiltinStep::Show => "",
            };
            r.error(
                at,
                format!("the `{step}` step belongs in `{only}`, not in `{command}`: {why}"),
                Some(format!("move it under `{only}: {{steps: [...]}}`")),
            );
            return None;
        }
    }
    Some(Step::Builtin {
        step,
        extra_args,
        pos: at,
    })
}

/// `{extra_args: [...]}` of a built-in step (an empty mapping means none).
fn extra_args(
    r: &mut yaml::Reader,
    step: BuiltinStep,
    node: &Node,
) -> Option<Vec<Located<String>>> {
    let map = match node {
        Node::Mapping(m) => m,
        other => {
            r.error(
                pos(other),
                format!(
                    "`{step}` takes only `extra_args`, found {}",
                    describe(other)
                ),
                Some(format!(
                    "write `- {step}` or `- {step}: {{extra_args: [ARG, ...]}}`"
                )),
            );
            return None;
        }
    };
    r.check_keys(
        map,
        &format!("in the `{step}` step"),
        &[("extra_args", Known)],
    );
    let Some(list) = map.get_node("extra_args") else {
        return Some(Vec::new());
    };
    let args = r.string_list(list, "extra_args")?;
    let mut ok = true;
    for a in &args {
        if a.value.chars().any(char::is_control) {
            r.error(
                a.pos,
                format!(
                    "extra argument `{}` contains control characters",
                    a.value.escape_default()
                ),
                None,
            );
            ok = false;
        } else if let Some(why) = blocked_extra_arg(&a.value) {
            r.error(
                a.pos,
                format!("extra argument `{}` is not allowed: {why}", a.value),
                Some("remove it; Sluice sets this itself".to_string()),
            );
            ok = false;
        }
    }
    if ok && step == BuiltinStep::PolicyCheck {
        // conftest's own flags; only the namespace selection has a meaning in-process.
        let all: Vec<&str> = args.iter().map(|a| a.value.as_str()).collect();
        if let Err(e) = crate::core::policy::rego::Namespaces::from_conftest_args(&all) {
            let at = args.get(e.index).map_or(pos(list), |a| a.pos);
            r.error(at, e.message, Some(e.hint));
            ok = false;
        }
    }
    ok.then_some(args)
}

/// `shell` and `shellArgs` of a command step (`shellArgs` only with `shell`, as in Atlantis).
fn shell(r: &mut yaml::Reader, map: &MarkedMappingNode, step: &str) -> Option<Shell> {
    let program = map.get_node("shell");
    let args = map.get_node("shellArgs");
    if program.is_some() && map.get_node("command").is_none() {
        r.error(
            program.map_or(Pos::default(), pos),
            format!("`shell` in a `{step}` step needs `command`"),
            None,
        );
        return None;
    }
    let Some(program) = program else {
        if let Some(a) = args {
            r.error(
                pos(a),
                format!("`shellArgs` in a `{step}` step needs `shell`"),
                Some("add `shell: sh` (the default shell)".to_string()),
            );
            return None;
        }
        return Some(Shell::default());
    };
    let program = r.string(program, "shell")?;
    if program
        .value
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        r.error(
            program.pos,
            format!(
                "shell `{}` should be a program name like `bash`",
                program.value.escape_default()
            ),
            Some("put its options in `shellArgs`".to_string()),
        );
        return None;
    }
    let args = match args {
        None => vec!["-c".to_string()],
        // Atlantis splits a string on single spaces.
        Some(Node::Scalar(s)) if !is_null(s) => s.as_str().split(' ').map(str::to_string).collect(),
        Some(n) => r
            .string_list(n, "shellArgs")?
            .into_iter()
            .map(|a| a.value)
            .collect(),
    };
    Some(Shell {
        program: program.value,
        args,
    })
}

fn command_text(r: &mut yaml::Reader, node: &Node, key: &str, syntax: RunSyntax) -> Option<String> {
    let c = r.string(node, key)?;
    if c.value.trim().is_empty() {
        r.error(c.pos, format!("`{key}` is empty"), None);
        return None;
    }
    if c.value.contains('\0') {
        r.error(c.pos, format!("`{key}` contains a NUL character"), None);
        return None;
    }
    match syntax {
        RunSyntax::Verbatim => Some(c.value),
        RunSyntax::LegacyShellSplit => match shell_words::split(&c.value) {
            Ok(words) => Some(words.join(" ")),
            Err(e) => {
                r.error(
                    c.pos,
                    format!("cannot read `{}` the way atlantis.yaml version 2 does: {e}", c.value),
                    Some("version 2 splits run commands like a shell; use version 3 to run them as written".to_string()),
                );
                None
            }
        },
    }
}

fn run_step(
    r: &mut yaml::Reader,
    node: &Node,
    at: Pos,
    syntax: RunSyntax,
    command: WorkflowCommand,
) -> Option<Step> {
    // Version 2 only changed `run` in the plan and apply stages.
    let syntax = match command {
        WorkflowCommand::Plan | WorkflowCommand::Apply => syntax,
        _ => RunSyntax::Verbatim,
    };
    if let Node::Scalar(_) = node {
        let command = command_text(r, node, "run", syntax)?;
        return Some(Step::Run {
            command,
            shell: Shell::default(),
            output: RunOutput::default(),
            pos: at,
        });
    }
    let map = r.mapping(node, "a `run` step")?;
    r.check_keys(
        map,
        "in a `run` step",
        &[
            ("command", Known),
            ("output", Known),
            ("shell", Known),
            ("shellArgs", Known),
        ],
    );
    let Some(cmd) = map.get_node("command") else {
        r.error(
            at,
            "`run` step has no `command`",
            Some("add `command: ...`".to_string()),
        );
        return None;
    };
    let command = command_text(r, cmd, "command", syntax)?;
    let shell = shell(r, map, "run")?;
    let output = match map.get_node("output") {
        None => RunOutput::default(),
        Some(o) => run_output(r, o)?,
    };
    Some(Step::Run {
        command,
        shell,
        output,
        pos: at,
    })
}

/// `output: show | hide | strip_refreshing`, or a list of `strip_refreshing` and
/// `{filter_regex: RE}` entries.
fn run_output(r: &mut yaml::Reader, node: &Node) -> Option<RunOutput> {
    let mut out = RunOutput::default();
    let items: Vec<&Node> = match node {
        Node::Sequence(s) => s.iter().collect(),
        other => vec![other],
    };
    let mut ok = true;
    for item in items {
        match item {
            Node::Scalar(s) if !is_null(s) => match s.as_str() {
                "show" => {}
                "hide" => out.hide = true,
                "strip_refreshing" => out.strip_refreshing = true,
                other => {
                    r.error(
                        pos(item),
                        format!("unknown `output` `{other}`"),
                        Some(
                            "valid values: show, hide, strip_refreshing, {filter_regex: RE}"
                                .to_string(),
                        ),
                    );
                    ok = false;
                }
            },
            Node::Mapping(m) => {
                r.check_keys(m, "in `output`", &[("filter_regex", Known)]);
                let Some(re) = m
                    .get_node("filter_regex")
                    .and_then(|n| r.string(n, "filter_regex"))
                else {
                    ok = false;
                    continue;
                };
                match regex::RegexBuilder::new(&re.value)
                    .size_limit(1 << 20)
                    .build()
                {
                    Ok(regex) => out.filters.push(FilterRegex {
                        text: re.value,
                        regex,
                    }),
                    Err(e) => {
                        r.error(
                            re.pos,
                            format!("`filter_regex` is not a valid regular expression: {e}"),
                            None,
                        );
                        ok = false;
                    }
                }
            }
            other => {
                r.error(
                    pos(other),
                    format!(
                        "`output` should be show, hide or strip_refreshing, found {}",
                        describe(other)
                    ),
                    None,
                );
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

fn multienv_step(r: &mut yaml::Reader, node: &Node, at: Pos) -> Option<Step> {
    if let Node::Scalar(_) = node {
        let command = command_text(r, node, "multienv", RunSyntax::Verbatim)?;
        return Some(Step::MultiEnv {
            command,
            shell: Shell::default(),
            hide: false,
            pos: at,
        });
    }
    let map = r.mapping(node, "a `multienv` step")?;
    r.check_keys(
        map,
        "in a `multienv` step",
        &[
            ("command", Known),
            ("output", Known),
            ("shell", Known),
            ("shellArgs", Known),
        ],
    );
    let Some(cmd) = map.get_node("command") else {
        r.error(
            at,
            "`multienv` step has no `command`",
            Some("add `command: ...`".to_string()),
        );
        return None;
    };
    let command = command_text(r, cmd, "command", RunSyntax::Verbatim)?;
    let shell = shell(r, map, "multienv")?;
    let hide = match map.get_node("output").and_then(|o| r.string(o, "output")) {
        None => false,
        Some(o) if o.value == "show" => false,
        Some(o) if o.value == "hide" => true,
        Some(o) => {
            r.error(
                o.pos,
                format!(
                    "`multienv` `output` must be show or hide, found `{}`",
                    o.value
                ),
                None,
            );
            return None;
        }
    };
    Some(Step::MultiEnv {
        command,
        shell,
        hide,
        pos: at,
    })
}

fn env_step(r: &mut yaml::Reader, node: &Node, at: Pos) -> Option<Step> {
    let map = r.mapping(node, "an `env` step")?;
    r.check_keys(
        map,
        "in an `env` step",
        &[
            ("name", Known),
            ("value", Known),
            ("command", Known),
            ("shell", Known),
            ("shellArgs", Known),
        ],
    );
    let Some(name) = map.get_node("name").and_then(|n| r.string(n, "name")) else {
        if map.get_node("name").is_none() {
            r.error(
                at,
                "`env` step has no `name`",
                Some("add `name: VARIABLE`".to_string()),
            );
        }
        return None;
    };
    if let Err((message, hint)) = check_env_name(&name.value) {
        r.error(name.pos, message, Some(hint));
        return None;
    }
    let value = match (map.get_node("value"), map.get_node("command")) {
        (Some(_), Some(c)) => {
            r.error(
                pos(c),
                "`env` step has both `value` and `command`",
                Some("keep one: `value` for a fixed value, `command` to compute it".to_string()),
            );
            return None;
        }
        (Some(v), None) => {
            if map.get_node("shellArgs").is_some() || map.get_node("shell").is_some() {
                let s = map
                    .get_node("shell")
                    .or(map.get_node("shellArgs"))
                    .map_or(at, pos);
                r.error(s, "`shell` in an `env` step needs `command`", None);
                return None;
            }
            // A number or a boolean is taken as written, like everything else Sluice reads.
            EnvValue::Static(r.string(v, "value").map(|v| v.value).unwrap_or_default())
        }
        (None, Some(c)) => {
            let command = command_text(r, c, "command", RunSyntax::Verbatim)?;
            let shell = shell(r, map, "env")?;
            EnvValue::Command { command, shell }
        }
        // Atlantis runs an empty command: the variable is set to the empty string.
        (None, None) => EnvValue::Static(String::new()),
    };
    Some(Step::Env {
        name: name.value,
        value,
        pos: at,
    })
}

/// The checks an `env` or `multienv` variable name passes: a valid name, and allowed by the
/// project environment allowlist ([`env_name_refusal`]). The error is a message and a hint.
pub fn check_env_name(name: &str) -> Result<(), (String, String)> {
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err((
            format!(
                "`{}` is not a valid environment variable name",
                name.escape_default()
            ),
            "use letters, digits and `_`, not starting with a digit".to_string(),
        ));
    }
    match env_name_refusal(name) {
        None => Ok(()),
        Some(class) => {
            let mut hint = class.hint().to_string();
            if class == EnvClass::Engine && name.eq_ignore_ascii_case("TF_IN_AUTOMATION") {
                hint.push_str("; Sluice's runs are already non-interactive");
            }
            Err((format!("`{name}` cannot be set by a step"), hint))
        }
    }
}
