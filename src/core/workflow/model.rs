//! The workflow model: what a validated `workflows:` entry says, as plain values with the
//! position of every part. Only the parser ([`super::parse`]) builds custom workflows, and only
//! from entries without errors; [`Workflow::default_workflow`] is Atlantis' built-in `default`.
//! Nothing here runs anything or does I/O.

use std::fmt;

use crate::core::repo_config::{Located, Pos};

/// The name of the workflow every project uses unless it (or the server) names another.
pub const DEFAULT_WORKFLOW: &str = "default";

/// The command a stage of a workflow runs for. Atlantis calls these the workflow's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WorkflowCommand {
    Plan,
    Apply,
    /// Runs after `plan` when policies are checked; its `policy_check` step evaluates the policy
    /// sets in-process.
    PolicyCheck,
    /// `import ADDRESS ID`.
    Import,
    /// `state rm ADDRESS...`.
    StateRm,
}

impl WorkflowCommand {
    pub const ALL: [WorkflowCommand; 5] = [
        WorkflowCommand::Plan,
        WorkflowCommand::Apply,
        WorkflowCommand::PolicyCheck,
        WorkflowCommand::Import,
        WorkflowCommand::StateRm,
    ];

    /// The key under a workflow (`plan:`, `policy_check:`, …).
    pub fn key(self) -> &'static str {
        match self {
            WorkflowCommand::Plan => "plan",
            WorkflowCommand::Apply => "apply",
            WorkflowCommand::PolicyCheck => "policy_check",
            WorkflowCommand::Import => "import",
            WorkflowCommand::StateRm => "state_rm",
        }
    }

    /// The built-in step that does this command's work (`plan` for `plan`, …).
    pub fn main_step(self) -> BuiltinStep {
        match self {
            WorkflowCommand::Plan => BuiltinStep::Plan,
            WorkflowCommand::Apply => BuiltinStep::Apply,
            WorkflowCommand::PolicyCheck => BuiltinStep::PolicyCheck,
            WorkflowCommand::Import => BuiltinStep::Import,
            WorkflowCommand::StateRm => BuiltinStep::StateRm,
        }
    }
}

impl fmt::Display for WorkflowCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// A step Sluice implements itself (Atlantis' built-in commands).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BuiltinStep {
    /// `terraform init -input=false`.
    Init,
    /// `terraform plan -input=false -out $PLANFILE`.
    Plan,
    /// `terraform show -json $PLANFILE`, written to `$SHOWFILE`.
    Show,
    /// `terraform apply $PLANFILE` (the saved, reviewed plan only).
    Apply,
    /// The policy sets, evaluated in-process on `$SHOWFILE` (conftest's conventions).
    PolicyCheck,
    /// `terraform import ADDRESS ID`.
    Import,
    /// `terraform state rm ADDRESS...`.
    StateRm,
}

impl BuiltinStep {
    pub const ALL: [BuiltinStep; 7] = [
        BuiltinStep::Init,
        BuiltinStep::Plan,
        BuiltinStep::Show,
        BuiltinStep::Apply,
        BuiltinStep::PolicyCheck,
        BuiltinStep::Import,
        BuiltinStep::StateRm,
    ];

    /// The step's name in a workflow.
    pub fn name(self) -> &'static str {
        match self {
            BuiltinStep::Init => "init",
            BuiltinStep::Plan => "plan",
            BuiltinStep::Show => "show",
            BuiltinStep::Apply => "apply",
            BuiltinStep::PolicyCheck => "policy_check",
            BuiltinStep::Import => "import",
            BuiltinStep::StateRm => "state_rm",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The only stage this step may appear in, for steps that change infrastructure or state
    /// (`None`: any stage). An `apply` step in the plan stage would apply before anyone reviewed
    /// the plan or passed the apply gate.
    pub fn only_in(self) -> Option<WorkflowCommand> {
        match self {
            BuiltinStep::Init | BuiltinStep::Show => None,
            BuiltinStep::Plan => Some(WorkflowCommand::Plan),
            BuiltinStep::Apply => Some(WorkflowCommand::Apply),
            BuiltinStep::PolicyCheck => Some(WorkflowCommand::PolicyCheck),
            BuiltinStep::Import => Some(WorkflowCommand::Import),
            BuiltinStep::StateRm => Some(WorkflowCommand::StateRm),
        }
    }
}

impl fmt::Display for BuiltinStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The program a `run`, `env` or `multienv` command is handed to, with the arguments before
/// the command text (Atlantis: `shell`, default `sh`; `shellArgs`, default `-c`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shell {
    pub program: String,
    pub args: Vec<String>,
}

impl Default for Shell {
    fn default() -> Self {
        Shell {
            program: "sh".to_string(),
            args: vec!["-c".to_string()],
        }
    }
}

impl Shell {
    /// The argv that runs `command` (the command text is the last argument, never split).
    pub fn argv(&self, command: &str) -> Vec<String> {
        let mut argv = Vec::with_capacity(self.args.len() + 2);
        argv.push(self.program.clone());
        argv.extend(self.args.iter().cloned());
        argv.push(command.to_string());
        argv
    }
}

/// A regular expression whose matches are masked in a step's posted output (`filter_regex`).
/// Compiled once; equal when written the same.
#[derive(Debug, Clone)]
pub struct FilterRegex {
    pub text: String,
    pub regex: regex::Regex,
}

impl PartialEq for FilterRegex {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}
impl Eq for FilterRegex {}

/// What happens to a `run` step's output before it is posted (Atlantis' `output`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RunOutput {
    /// `hide`: nothing is posted (the job log still has it).
    pub hide: bool,
    /// `strip_refreshing`: everything up to the last `Refreshing state...` line is dropped.
    pub strip_refreshing: bool,
    /// `filter_regex`: matches become `<redacted>`, in order.
    pub filters: Vec<FilterRegex>,
}

/// One step of a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Builtin {
        step: BuiltinStep,
        /// Appended to the command's own arguments; each passed the same checks as arguments
        /// after `--` in a comment (`command::blocked_extra_arg`).
        extra_args: Vec<Located<String>>,
        pos: Pos,
    },
    /// A command run in the project dir, inside the run's sandbox.
    Run {
        command: String,
        shell: Shell,
        output: RunOutput,
        pos: Pos,
    },
    /// Sets `name` for the steps below: a fixed value, or the output of a command.
    Env {
        name: String,
        value: EnvValue,
        pos: Pos,
    },
    /// Runs a command whose output (`A=1,B=2`) sets several variables for the steps below.
    MultiEnv {
        command: String,
        shell: Shell,
        /// `output: hide` — the list of variable names is not posted.
        hide: bool,
        pos: Pos,
    },
}

impl Step {
    pub fn pos(&self) -> Pos {
        match self {
            Step::Builtin { pos, .. }
            | Step::Run { pos, .. }
            | Step::Env { pos, .. }
            | Step::MultiEnv { pos, .. } => *pos,
        }
    }

    fn builtin(step: BuiltinStep) -> Self {
        Step::Builtin {
            step,
            extra_args: Vec::new(),
            pos: Pos::default(),
        }
    }
}

/// Where an `env` step's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvValue {
    Static(String),
    /// The command's output, one trailing newline removed.
    Command {
        command: String,
        shell: Shell,
    },
}

/// The steps one command runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub steps: Vec<Step>,
    /// Where the stage's `steps:` was written; `None` when the stage is the default one.
    pub pos: Option<Pos>,
}

impl Stage {
    /// Atlantis' default steps for `command`.
    pub fn default_for(command: WorkflowCommand) -> Self {
        use BuiltinStep as B;
        let steps = match command {
            WorkflowCommand::Plan => vec![B::Init, B::Plan],
            WorkflowCommand::Apply => vec![B::Apply],
            WorkflowCommand::PolicyCheck => vec![B::Show, B::PolicyCheck],
            WorkflowCommand::Import => vec![B::Init, B::Import],
            WorkflowCommand::StateRm => vec![B::Init, B::StateRm],
        };
        Stage {
            steps: steps.into_iter().map(Step::builtin).collect(),
            pos: None,
        }
    }

    pub fn is_default(&self) -> bool {
        self.pos.is_none()
    }

    /// Whether the stage runs commands written by the repository or server (`run`, `env` with a
    /// command, `multienv`).
    pub fn runs_commands(&self) -> bool {
        self.steps.iter().any(|s| {
            matches!(
                s,
                Step::Run { .. }
                    | Step::MultiEnv { .. }
                    | Step::Env {
                        value: EnvValue::Command { .. },
                        ..
                    }
            )
        })
    }
}

/// Where a workflow was defined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkflowOrigin {
    /// Atlantis' (and Sluice's) built-in `default`.
    BuiltIn,
    /// The repository's config file (`atlantis.yaml`, `sluice.yaml`).
    Repo { file: String },
    /// The server's repo rules (`repos.yaml`, or `repos:` in the server config).
    Server { file: String },
}

impl fmt::Display for WorkflowOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkflowOrigin::BuiltIn => f.write_str("built in"),
            WorkflowOrigin::Repo { file } | WorkflowOrigin::Server { file } => f.write_str(file),
        }
    }
}

/// A named workflow: the steps of every command. A stage not written in the file is the
/// default one (Atlantis: "if `plan` isn't set, Atlantis will use the default plan workflow").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workflow {
    pub name: String,
    pub origin: WorkflowOrigin,
    /// Where its name is written (0:0 for the built-in one).
    pub pos: Pos,
    pub plan: Stage,
    pub apply: Stage,
    pub policy_check: Stage,
    pub import: Stage,
    pub state_rm: Stage,
}

impl Workflow {
    /// Atlantis' built-in `default`: `init, plan` / `apply` / `show, policy_check` /
    /// `init, import` / `init, state_rm`. Sluice without a workflow runs exactly these.
    pub fn default_workflow() -> Self {
        Workflow {
            name: DEFAULT_WORKFLOW.to_string(),
            origin: WorkflowOrigin::BuiltIn,
            pos: Pos::default(),
            plan: Stage::default_for(WorkflowCommand::Plan),
            apply: Stage::default_for(WorkflowCommand::Apply),
            policy_check: Stage::default_for(WorkflowCommand::PolicyCheck),
            import: Stage::default_for(WorkflowCommand::Import),
            state_rm: Stage::default_for(WorkflowCommand::StateRm),
        }
    }

    pub fn stage(&self, command: WorkflowCommand) -> &Stage {
        match command {
            WorkflowCommand::Plan => &self.plan,
            WorkflowCommand::Apply => &self.apply,
            WorkflowCommand::PolicyCheck => &self.policy_check,
            WorkflowCommand::Import => &self.import,
            WorkflowCommand::StateRm => &self.state_rm,
        }
    }

    pub(crate) fn stage_mut(&mut self, command: WorkflowCommand) -> &mut Stage {
        match command {
            WorkflowCommand::Plan => &mut self.plan,
            WorkflowCommand::Apply => &mut self.apply,
            WorkflowCommand::PolicyCheck => &mut self.policy_check,
            WorkflowCommand::Import => &mut self.import,
            WorkflowCommand::StateRm => &mut self.state_rm,
        }
    }

    /// True when every stage is the default one: the workflow behaves exactly like `default`
    /// (whatever its name).
    pub fn is_equivalent_to_default(&self) -> bool {
        let d = Workflow::default_workflow();
        WorkflowCommand::ALL.into_iter().all(|c| {
            let (mine, theirs) = (self.stage(c), d.stage(c));
            mine.is_default() || same_steps(&mine.steps, &theirs.steps)
        })
    }

    /// Whether any stage runs commands written by the repository or server.
    pub fn runs_commands(&self) -> bool {
        WorkflowCommand::ALL
            .into_iter()
            .any(|c| self.stage(c).runs_commands())
    }
}

/// Steps compared without their positions.
fn same_steps(a: &[Step], b: &[Step]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| match (x, y) {
            (
                Step::Builtin {
                    step: s1,
                    extra_args: e1,
                    ..
                },
                Step::Builtin {
                    step: s2,
                    extra_args: e2,
                    ..
                },
            ) => {
                s1 == s2
                    && e1.len() == e2.len()
                    && e1.iter().zip(e2).all(|(p, q)| p.value == q.value)
            }
            _ => false,
        })
}
