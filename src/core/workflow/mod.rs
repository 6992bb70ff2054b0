//! Workflows (PRODUCT.md §19): which steps each command runs for a project — Atlantis' custom
//! workflows, read from `sluice.yaml`, `atlantis.yaml` and the server's repo rules — and the
//! *step plan* a runner executes, with every argument and variable resolved.
//!
//! The flow: the config parsers call [`workflows_node`] for a `workflows:` mapping →
//! `server_rules::effective_config` decides which [`Workflow`] each project uses (and whether
//! the repository may define or pick it) → per job, [`step_plan`] turns the workflow, the command
//! and the run's facts into [`PlannedStep`]s and an environment → the runner executes them in
//! the run's sandbox, using [`posted_output`], [`env_value_from_output`] and
//! [`parse_multienv`] between steps.
//!
//! Pure: nothing here runs a step, reads a file or looks at the clock.
//!
//! ```yaml
//! workflows:
//!   staging:
//!     plan:
//!       steps:
//!         - env: {name: TG_TF_PATH, command: 'echo "$ATLANTIS_TERRAFORM_DISTRIBUTION"'}
//!         - run: rm -rf .terraform
//!         - init: {extra_args: [-backend-config=staging.backend.tfvars]}
//!         - run: {command: tflint, output: hide}
//!         - plan: {extra_args: [-var-file=staging.tfvars]}
//!     apply:
//!       steps: [apply]
//! ```

mod model;
mod parse;
mod plan;

pub use model::{
    BuiltinStep, DEFAULT_WORKFLOW, EnvValue, FilterRegex, RunOutput, Shell, Stage, Step, Workflow,
    WorkflowCommand, WorkflowOrigin,
};
pub(crate) use parse::workflows_node;
pub use parse::{MAX_STEPS, MAX_WORKFLOWS, RunSyntax, check_env_name};
pub use plan::{
    MultiEnvError, PlannedEnvValue, PlannedStep, PullInfo, REFRESH_KEYWORD, RunPaths,
    STEP_VARIABLES, StepContext, StepPlan, comment_args_var, env_value_from_output,
    expand_step_variables, parse_multienv, posted_output, step_env, step_plan, strip_refreshing,
};
