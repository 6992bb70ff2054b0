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

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::adapters::process::LineSink;
use crate::adapters::terraform::{Engines, Step};
use crate::core::plan::Redactor;
use crate::core::workflow::{
    BuiltinStep, PlannedEnvValue, PlannedStep, StepPlan, env_value_from_output, parse_multienv,
    posted_output,
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
    let mut out = StageOutput::default();
    let mut posted: Vec<String> = Vec::new();
    let redactor = |secrets: &[String]| {
        Redactor::new(run.secrets.iter().cloned().chain(secrets.iter().cloned()))
    };
    let live = |secrets: &[String]| {
        run.sink.clone().map(|inner| {
            Arc::new(RedactingSink {
                inner,
                redactor: redactor(secrets),
            }) as Arc<dyn LineSink>
        })
    };
    let fail = |posted: &[String], why: String| {
        let mut text = posted.join("\n\n");
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        text.push_str(&why);
        text
    };
    tf.sink = live(&out.secrets);
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
                if *step == run.seal_before && tf.sealed.is_none() {
                    tf.seal()
                        .await
                        .map_err(|e| fail(&posted, format!("{e:#}")))?;
                }
                let ok: &[i32] = if *step == BuiltinStep::Plan {
                    &[0, 2]
                } else {
                    &[0]
                };
                let to = (*step == BuiltinStep::Show).then_some(run.showfile_host);
                let result = tf
                    .engine_step(args.clone(), ok, to)
                    .await
                    .map_err(|e| fail(&posted, format!("step {n} (`{step}`): {e:#}")))?;
                if !result.ok {
                    let what =
                        format!("{} {}", run.engine, args.first().map_or("", String::as_str));
                    let which = if written {
                        format!("Step {n} of workflow `{}`", run.plan.workflow)
                    } else {
                        format!(
                            "The `{step}` Sluice runs before the steps of workflow `{}`",
                            run.plan.workflow
                        )
                    };
                    return Err(fail(
                        &posted,
                        format!(
                            "{which} failed: {}",
                            step_failure(&what, &result, &redactor(&out.secrets))
                        ),
                    ));
                }
                if *step == run.seal_before {
                    out.main_output = redactor(&out.secrets)
                        .redact(result.output.output.trim_end())
                        .into_owned();
                }
                if result.output.stdout_file_overflow {
                    return Err(fail(
                        &posted,
                        format!(
                            "step {n} (`show`): the plan's JSON is larger than the configured cap \
                             (runner.plan_json_cap_bytes)"
                        ),
                    ));
                }
            }
            PlannedStep::SelectWorkspace { workspace } => {
                let result = tf
                    .select_workspace(workspace.as_str())
                    .await
                    .map_err(|e| fail(&posted, format!("{e:#}")))?;
                if !result.ok {
                    let what = format!("{} workspace select", run.engine);
                    return Err(fail(
                        &posted,
                        step_failure(&what, &result, &redactor(&out.secrets)),
                    ));
                }
            }
            PlannedStep::PolicyCheck { .. } => {
                // The parser keeps `policy_check` steps in the `policy_check` stage.
                return Err(fail(
                    &posted,
                    format!(
                        "step {n}: a `policy_check` step runs only in the `policy_check` stage"
                    ),
                ));
            }
            PlannedStep::Run { argv, output } => {
                let result = command(tf, argv, &run.plan.env, n, &posted, fail).await?;
                let failed = !result.ok;
                let shown = posted_output(
                    &result.output.output,
                    output,
                    Some(run.engine_version),
                    failed,
                );
                // The command text is the repository's, but may hold a value an `env` step set.
                let label = redactor(&out.secrets)
                    .redact(&format!("`run` step {n}: {}", code(command_text(argv))))
                    .into_owned();
                if failed {
                    let text = redactor(&out.secrets)
                        .redact(shown.unwrap_or_default().trim_end())
                        .into_owned();
                    return Err(fail(
                        &posted,
                        format!(
                            "Step {n} of workflow `{}` failed: {label} {}.\n\n{}",
                            run.plan.workflow,
                            result.ending(),
                            fenced(&text)
                        ),
                    ));
                }
                if let Some(text) = shown {
                    let text = redactor(&out.secrets).redact(text.trim_end()).into_owned();
                    posted.push(format!("{label}\n\n{}", fenced(&text)));
                }
            }
            PlannedStep::Env { name, value } => {
                let value = match value {
                    PlannedEnvValue::Static(v) => v.clone(),
                    PlannedEnvValue::Command { argv } => {
                        // Its output is the value: never streamed to the log.
                        tf.sink = None;
                        let result = command(tf, argv, &run.plan.env, n, &posted, fail).await?;
                        if !result.ok {
                            let text = redactor(&out.secrets)
                                .redact(result.output.output.trim_end())
                                .into_owned();
                            return Err(fail(
                                &posted,
                                format!(
                                    "Step {n} of workflow `{}` failed: the command of `env` step \
                                     `{name}` {}.\n\n{}",
                                    run.plan.workflow,
                                    result.ending(),
                                    fenced(&text)
                                ),
                            ));
                        }
                        env_value_from_output(&result.output.output)
                    }
                };
                out.secrets.push(value.clone());
                tf.env.insert(name.clone(), value);
                tf.sink = live(&out.secrets);
            }
            PlannedStep::MultiEnv { argv, hide } => {
                tf.sink = None;
                let result = command(tf, argv, &run.plan.env, n, &posted, fail).await?;
                let refused = |why: String| {
                    fail(
                        &posted,
                        format!(
                            "Step {n} of workflow `{}` failed: `multienv` step {}: {why}",
                            run.plan.workflow,
                            code(command_text(argv))
                        ),
                    )
                };
                if !result.ok {
                    let text = redactor(&out.secrets)
                        .redact(result.output.output.trim_end())
                        .into_owned();
                    return Err(refused(format!(
                        "{}.\n\n{}",
                        result.ending(),
                        fenced(&text)
                    )));
                }
                let pairs = parse_multienv(&result.output.output)
                    .map_err(|e| refused(format!("{} ({})", e.message, e.hint)))?;
                let names: Vec<String> = pairs.iter().map(|(k, _)| code(k)).collect();
                for (k, v) in pairs {
                    out.secrets.push(v.clone());
                    tf.env.insert(k, v);
                }
                tf.sink = live(&out.secrets);
                if !hide && !names.is_empty() {
                    posted.push(format!("`multienv` step {n} set {}", names.join(", ")));
                }
            }
        }
    }
    if !posted.is_empty() {
        out.section = format!(
            "**Workflow `{}`** ({}):\n\n{}",
            run.plan.workflow,
            run.plan.command,
            posted.join("\n\n")
        );
    }
    Ok(out)
}

/// Runs a step's command; a failure to start it at all is the stage's failure.
async fn command(
    tf: &Engines<'_>,
    argv: &[String],
    vars: &BTreeMap<String, String>,
    n: usize,
    posted: &[String],
    fail: impl Fn(&[String], String) -> String,
) -> Result<Step, String> {
    tf.command_step(argv, vars.clone())
        .await
        .map_err(|e| fail(posted, format!("step {n}: {e:#}")))
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
