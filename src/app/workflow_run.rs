//! Custom workflows carried out (PRODUCT.md §19): the [`StepPlan`] of one stage of a project's
//! workflow (`core::workflow::step_plan`) executed step by step in the run's sandbox — the same
//! sandbox, job dir, environment rules (credentials only for matching projects), limits and
//! timeout as the engine's own commands ([`Engines`]).
//!
//! * `run` steps run their shell (`sh -c COMMAND`) in the project dir with Atlantis' step
//!   variables; the engine is first on their `PATH`. Their output goes through the step's
//!   `output` filters and redaction, then into the PR comment (a failed step's always).
//! * `env` and `multienv` steps set variables for every later step, built-in ones included. Their
//!   values count as secrets: redacted from everything the job shows, and their commands' output
//!   is never streamed to the job log.
//! * A step that fails stops the stage: the failure names the step and shows its output after
//!   what earlier steps posted. A step that never ends is stopped at `runner.timeout_secs`, with
//!   its whole sandbox.
//! * What `init` installed is sealed ([`Engines::seal`]) before the stage's main engine step
//!   (`plan`, `apply`), so nothing a step runs afterwards can swap a provider under it.

use std::path::Path;
use std::sync::Arc;

use crate::adapters::process::LineSink;
use crate::adapters::terraform::{Engines, Step};
use crate::core::plan::Redactor;
use crate::core::workflow::{
    BuiltinStep, PlannedEnvValue, PlannedStep, RunOutput, StepPlan, env_value_from_output,
    parse_multienv, posted_output,
};

use super::project_run::{RedactingSink, step_failure};

/// What a stage left for the report.
#[derive(Debug, Default, Clone)]
pub struct StageOutput {
    /// Markdown: the posted output of each `run` step (and the names `multienv` steps set),
    /// redacted. Empty when no step posts anything.
    pub section: String,
    /// The values `env` and `multienv` steps set: redacted from everything the job shows.
    pub secrets: Vec<String>,
    /// The output of the stage's main engine step (`apply`), redacted; empty when the stage
    /// has none.
    pub main_output: String,
}

/// One stage to run.
pub(super) struct StageRun<'a> {
    pub plan: &'a StepPlan,
    /// The server's secrets (redacted from every output).
    pub secrets: &'a [String],
    /// The job's log, unredacted (`None`: no live log).
    pub sink: Option<Arc<dyn LineSink>>,
    /// The engine version that runs (`1.0.3`), for `strip_refreshing`.
    pub engine_version: &'a str,
    /// Host path of `$SHOWFILE`, where a `show` step's output goes.
    pub showfile_host: &'a Path,
    /// The built-in step before which what `init` installed is sealed.
    pub seal_before: BuiltinStep,
    /// The engine's name for messages (`terraform`).
    pub engine: &'a str,
}

/// Runs `run.plan`'s steps in order with `tf`. The error is the failure report for the PR:
/// what earlier steps posted, then which step failed and its output (redacted).
pub(super) async fn run_stage(
    tf: &mut Engines<'_>,
    run: StageRun<'_>,
) -> Result<StageOutput, String> {
    let mut st = State {
        run: &run,
        out: StageOutput::default(),
        posted: Vec::new(),
    };
    tf.sink = st.live();
    // Steps are numbered as the workflow lists them: the implicit `init` and the workspace
    // selection Sluice adds do not count.
    let mut n = 0usize;
    for step in &run.plan.steps {
        let written = !matches!(
            step,
            PlannedStep::SelectWorkspace { .. } | PlannedStep::Engine { implicit: true, .. }
        );
        if written {
            n += 1;
        }
        match step {
            PlannedStep::Engine { step, args, .. } => {
                st.engine(tf, *step, args, n, written).await?;
            }
            // The default workspace needs no selection, and backends without workspaces
            // (`http`, …) refuse `workspace select default`: the default steps skip it too.
            PlannedStep::SelectWorkspace { workspace } if workspace.is_default() => {}
            PlannedStep::SelectWorkspace { workspace } => {
                let result = tf
                    .select_workspace(workspace.as_str())
                    .await
                    .map_err(|e| st.fail(format!("{e:#}")))?;
                if !result.ok {
                    let what = format!("{} workspace select", run.engine);
                    return Err(st.fail(step_failure(&what, &result, &st.redactor())));
                }
            }
            PlannedStep::PolicyCheck { .. } => {
                // The parser keeps `policy_check` steps in the `policy_check` stage.
                return Err(st.fail(format!(
                    "step {n}: a `policy_check` step runs only in the `policy_check` stage"
                )));
            }
            PlannedStep::Run { argv, output } => st.run_step(tf, argv, output, n).await?,
            PlannedStep::Env { name, value } => {
                let value = match value {
                    PlannedEnvValue::Static(v) => v.clone(),
                    PlannedEnvValue::Command { argv } => {
                        // Its output is the value: never streamed to the log.
                        tf.sink = None;
                        let result = st.command(tf, argv, n).await?;
                        if !result.ok {
                            let why = format!(
                                "the command of `env` step `{name}` {}.\n\n{}",
                                result.ending(),
                                fenced(&st.redact(&result.output.output))
                            );
                            return Err(st.step_failed(n, &why));
                        }
                        env_value_from_output(&result.output.output)
                    }
                };
                st.out.secrets.push(value.clone());
                tf.env.insert(name.clone(), value);
                tf.sink = st.live();
            }
            PlannedStep::MultiEnv { argv, hide } => st.multienv(tf, argv, *hide, n).await?,
        }
    }
    let mut out = st.out;
    if !st.posted.is_empty() {
        out.section = format!(
            "**Workflow `{}`** ({}):\n\n{}",
            run.plan.workflow,
            run.plan.command,
            st.posted.join("\n\n")
        );
    }
    Ok(out)
}

/// A stage in progress: what its steps set and posted so far.
struct State<'a, 'r> {
    run: &'a StageRun<'r>,
    out: StageOutput,
    posted: Vec<String>,
}

impl State<'_, '_> {
    /// The server's secrets and the values steps set so far.
    fn redactor(&self) -> Redactor {
        Redactor::new(
            self.run
                .secrets
                .iter()
                .cloned()
                .chain(self.out.secrets.iter().cloned()),
        )
    }

    fn redact(&self, text: &str) -> String {
        self.redactor().redact(text.trim_end()).into_owned()
    }

    /// The job's live log, redacted of everything known so far.
    fn live(&self) -> Option<Arc<dyn LineSink>> {
        self.run.sink.clone().map(|inner| {
            Arc::new(RedactingSink {
                inner,
                redactor: self.redactor(),
            }) as Arc<dyn LineSink>
        })
    }

    /// The stage's failure report: what earlier steps posted, then `why`.
    fn fail(&self, why: String) -> String {
        let mut text = self.posted.join("\n\n");
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        text.push_str(&why);
        text
    }

    fn step_failed(&self, n: usize, why: &str) -> String {
        self.fail(format!(
            "Step {n} of workflow `{}` failed: {why}",
            self.run.plan.workflow
        ))
    }

    /// Runs a step's command; a failure to start it at all is the stage's failure.
    async fn command(&self, tf: &Engines<'_>, argv: &[String], n: usize) -> Result<Step, String> {
        tf.command_step(argv, self.run.plan.env.clone())
            .await
            .map_err(|e| self.fail(format!("step {n}: {e:#}")))
    }

    /// A built-in step: the engine with its arguments; what `init` installed is sealed first
    /// when this is the stage's main step.
    async fn engine(
        &mut self,
        tf: &mut Engines<'_>,
        step: BuiltinStep,
        args: &[String],
        n: usize,
        written: bool,
    ) -> Result<(), String> {
        if step == self.run.seal_before && tf.sealed.is_none() {
            tf.seal().await.map_err(|e| self.fail(format!("{e:#}")))?;
        }
        let ok: &[i32] = if step == BuiltinStep::Plan {
            &[0, 2]
        } else {
            &[0]
        };
        let to = (step == BuiltinStep::Show).then_some(self.run.showfile_host);
        let result = tf
            .engine_step(args.to_vec(), ok, to)
            .await
            .map_err(|e| self.fail(format!("step {n} (`{step}`): {e:#}")))?;
        if !result.ok {
            let what = format!(
                "{} {}",
                self.run.engine,
                args.first().map_or("", String::as_str)
            );
            let report = step_failure(&what, &result, &self.redactor());
            if written {
                return Err(self.step_failed(n, &report));
            }
            return Err(self.fail(format!(
                "The `{step}` Sluice runs before the steps of workflow `{}` failed: {report}",
                self.run.plan.workflow
            )));
        }
        if step == self.run.seal_before {
            self.out.main_output = self.redact(&result.output.output);
        }
        if result.output.stdout_file_overflow {
            return Err(self.fail(format!(
                "step {n} (`show`): the plan's JSON is larger than the configured cap \
                 (runner.plan_json_cap_bytes)"
            )));
        }
        Ok(())
    }

    /// A `run` step: its posted output, or the failure with its output.
    async fn run_step(
        &mut self,
        tf: &Engines<'_>,
        argv: &[String],
        output: &RunOutput,
        n: usize,
    ) -> Result<(), String> {
        let result = self.command(tf, argv, n).await?;
        let failed = !result.ok;
        let shown = posted_output(
            &result.output.output,
            output,
            Some(self.run.engine_version),
            failed,
        );
        // The command text is the repository's, but may hold a value an `env` step set.
        let label = self
            .redactor()
            .redact(&format!("`run` step {n}: {}", code(command_text(argv))))
            .into_owned();
        if failed {
            let text = self.redact(&shown.unwrap_or_default());
            let why = format!("{label} {}.\n\n{}", result.ending(), fenced(&text));
            return Err(self.step_failed(n, &why));
        }
        if let Some(text) = shown {
            let text = self.redact(&text);
            self.posted.push(format!("{label}\n\n{}", fenced(&text)));
        }
        Ok(())
    }

    /// A `multienv` step: the variables its command's output sets, for every later step.
    async fn multienv(
        &mut self,
        tf: &mut Engines<'_>,
        argv: &[String],
        hide: bool,
        n: usize,
    ) -> Result<(), String> {
        tf.sink = None;
        let result = self.command(tf, argv, n).await?;
        let label = format!("`multienv` step {}", code(command_text(argv)));
        if !result.ok {
            let why = format!(
                "{label}: {}.\n\n{}",
                result.ending(),
                fenced(&self.redact(&result.output.output))
            );
            return Err(self.step_failed(n, &why));
        }
        let pairs = parse_multienv(&result.output.output)
            .map_err(|e| self.step_failed(n, &format!("{label}: {} ({})", e.message, e.hint)))?;
        let names: Vec<String> = pairs.iter().map(|(k, _)| code(k)).collect();
        for (k, v) in pairs {
            self.out.secrets.push(v.clone());
            tf.env.insert(k, v);
        }
        tf.sink = self.live();
        if !hide && !names.is_empty() {
            self.posted
                .push(format!("`multienv` step {n} set {}", names.join(", ")));
        }
        Ok(())
    }
}

/// The command text of a step's argv (its last argument; the shell and its flags come first).
fn command_text(argv: &[String]) -> &str {
    argv.last().map_or("", String::as_str)
}

/// `text` as inline code, whatever backticks it holds (first line only, at most 120 chars).
fn code(text: &str) -> String {
    let line = text.lines().next().unwrap_or("");
    let mut short: String = line.chars().take(120).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    let ticks = "`".repeat(longest_backtick_run(&short) + 1);
    format!("{ticks} {short} {ticks}")
}

/// `text` in a fenced code block whose fence no line of the text can close.
fn fenced(text: &str) -> String {
    let fence = "`".repeat((longest_backtick_run(text) + 1).max(3));
    format!("{fence}text\n{text}\n{fence}")
}

fn longest_backtick_run(text: &str) -> usize {
    let (mut best, mut run) = (0, 0);
    for c in text.chars() {
        if c == '`' {
            run += 1;
            best = best.max(run);
        } else {
            run = 0;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posted_text_cannot_break_out_of_its_code() {
        assert_eq!(fenced("a"), "```text\na\n```");
        let f = fenced("x\n````\ny");
        assert!(
            f.starts_with("`````text\n") && f.ends_with("\n`````"),
            "{f}"
        );
        assert_eq!(code("echo `id`"), "`` echo `id` ``");
        assert!(code("a\nb").starts_with("` a…"), "{}", code("a\nb"));
    }
}
