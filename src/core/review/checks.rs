//! Check runs (GitHub App mode): one per project and command (`sluice/plan: network-prod`),
//! the always-present `sluice/plan` summary check, and the `sluice/apply-gate` check that says
//! what blocks an apply; annotations on the `.tf` lines that cause each change; the "Apply" and
//! "Plan again" buttons, and the parser that turns a pressed button back into the comment
//! command it stands for.
//!
//! **Required checks never deadlock** when branch protection requires `sluice/plan` and
//! `sluice/apply-gate` (never the per-project checks: a PR that does not touch a project never
//! gets its check, so requiring one would block every other PR): both are reported on every PR
//! head, `success` at once when the PR changes no Terraform project; the gate is `success` when
//! nothing is left to apply, `action_required` with the unmet requirements while something is,
//! and `failure` when a plan or apply failed (a new push runs it all again). The app must
//! evaluate the `mergeable` apply requirement ignoring Sluice's own checks, or the gate would
//! wait for itself.
//!
//! Shapes and limits are GitHub's (`@octokit/openapi` 23, `POST /repos/{owner}/{repo}/check-runs`
//! and `PATCH …/check-runs/{check_run_id}`): `output.summary` and `output.text` at most 65,535
//! characters, at most 50 annotations per request (more are appended by further `PATCH`es), an
//! annotation `title` at most 255 characters, at most 3 `actions`, each with `label` ≤ 20,
//! `description` ≤ 40 and `identifier` ≤ 20 characters. Pure: the app sends these.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::consequence::{Kind, consequence};
use super::locate::{BlockSpan, Locations, Revision};
use super::pr_review::ReviewComments;
use crate::core::command::{Command, CommandKind, Targets, project_hint};
use crate::core::plan::render::{code, fenced, keep_head, keep_tail, link};
use crate::core::plan::split::{Frame, split_markdown, truncate_to};
use crate::core::plan::{CommandName, Plan, ProjectOutcome, ProjectReport};
use crate::core::types::{CommitSha, ProjectName};

/// The summary check reported on every PR head (require this one).
pub const PLAN_CHECK: &str = "sluice/plan";
/// The apply gate check reported on every PR head (require this one to apply before merge).
pub const APPLY_GATE_CHECK: &str = "sluice/apply-gate";
/// `output.summary` / `output.text` limit, in characters (Sluice counts bytes: never fewer).
pub const MAX_OUTPUT: usize = 65_535;
/// Annotations per create or update request.
pub const MAX_ANNOTATIONS_PER_REQUEST: usize = 50;
/// `output.annotations[].title` limit.
pub const MAX_ANNOTATION_TITLE: usize = 255;
/// `output.annotations[].message` limit (64 KB).
pub const MAX_ANNOTATION_MESSAGE: usize = 65_536;
/// `actions` per check run.
pub const MAX_ACTIONS: usize = 3;
pub const MAX_ACTION_LABEL: usize = 20;
pub const MAX_ACTION_DESCRIPTION: usize = 40;
pub const MAX_ACTION_IDENTIFIER: usize = 20;

/// `POST /repos/{owner}/{repo}/check-runs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateCheckRun {
    pub name: String,
    pub head_sha: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details_url: Option<String>,
    /// Sluice's reference: which check this is ([`CheckRef`]), read back from
    /// `check_run.requested_action` events.
    pub external_id: String,
    pub status: CheckStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conclusion: Option<Conclusion>,
    /// ISO 8601, given by the caller (the core has no clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    pub output: CheckOutput,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<CheckAction>,
}

/// `PATCH /repos/{owner}/{repo}/check-runs/{check_run_id}`: here, further annotations (GitHub
/// appends them) with the output's required `title` and `summary` repeated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateCheckRun {
    pub output: CheckOutput,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Queued,
    InProgress,
    Completed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Conclusion {
    ActionRequired,
    Cancelled,
    Failure,
    Neutral,
    Success,
    Skipped,
    TimedOut,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckOutput {
    pub title: String,
    /// Markdown, at most [`MAX_OUTPUT`].
    pub summary: String,
    /// Markdown, at most [`MAX_OUTPUT`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<Annotation>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Annotation {
    pub path: String,
    pub start_line: u32,
    pub end_line: u32,
    pub annotation_level: AnnotationLevel,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnnotationLevel {
    Notice,
    Warning,
    Failure,
}

/// A button on the check run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckAction {
    pub label: String,
    pub description: String,
    pub identifier: String,
}

/// The buttons Sluice offers. Each stands for a comment command and goes through the same
/// gate (same actor checks, audited) when pressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Button {
    Apply,
    PlanAgain,
}

impl Button {
    pub const ALL: [Button; 2] = [Button::Apply, Button::PlanAgain];

    /// The `requested_action.identifier` GitHub sends back.
    pub fn identifier(self) -> &'static str {
        match self {
            Button::Apply => "apply",
            Button::PlanAgain => "plan",
        }
    }

    pub fn action(self, scope: Scope) -> CheckAction {
        let (label, description) = match (self, scope) {
            (Button::Apply, Scope::Project) => ("Apply", "Apply this project's reviewed plan"),
            (Button::Apply, Scope::Pr) => ("Apply", "Apply every reviewed plan of this PR"),
            (Button::PlanAgain, Scope::Project) => ("Plan again", "Plan this project again"),
            (Button::PlanAgain, Scope::Pr) => ("Plan again", "Plan every project of this PR again"),
        };
        CheckAction {
            label: label.to_string(),
            description: description.to_string(),
            identifier: self.identifier().to_string(),
        }
    }

    fn command(self) -> CommandKind {
        match self {
            Button::Apply => CommandKind::Apply,
            Button::PlanAgain => CommandKind::Plan,
        }
    }
}

/// What a button acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Project,
    Pr,
}

/// Which of Sluice's checks a check run is, as written in its `external_id`:
/// `sluice:plan:<project>`, `sluice:apply:<project>`, `sluice:plan`, `sluice:apply-gate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckRef {
    Project {
        command: CommandName,
        project: ProjectName,
    },
    Summary,
    ApplyGate,
}

impl CheckRef {
    pub fn external_id(&self) -> String {
        match self {
            CheckRef::Project { command, project } => {
                format!("sluice:{}:{project}", command.as_str())
            }
            CheckRef::Summary => "sluice:plan".to_string(),
            CheckRef::ApplyGate => "sluice:apply-gate".to_string(),
        }
    }

    /// The check run's name as people see it (and branch protection requires it).
    pub fn name(&self) -> String {
        match self {
            CheckRef::Project { command, project } => {
                format!("sluice/{}: {project}", command.as_str())
            }
            CheckRef::Summary => PLAN_CHECK.to_string(),
            CheckRef::ApplyGate => APPLY_GATE_CHECK.to_string(),
        }
    }

    pub fn parse(external_id: &str) -> Option<CheckRef> {
        let rest = external_id.strip_prefix("sluice:")?;
        match rest {
            "plan" => return Some(CheckRef::Summary),
            "apply-gate" => return Some(CheckRef::ApplyGate),
            _ => {}
        }
        let (command, project) = rest.split_once(':')?;
        let command = match command {
            "plan" => CommandName::Plan,
            "apply" => CommandName::Apply,
            _ => return None,
        };
        Some(CheckRef::Project {
            command,
            project: ProjectName::new(project).ok()?,
        })
    }
}

/// Why a pressed button does not become a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestedActionError {
    #[error("unknown action `{0}`")]
    UnknownAction(String),
    #[error("the check run is not one of Sluice's")]
    NotSluices,
    #[error(
        "the button belongs to commit {check}, but the pull request's head is now {head}; use the buttons of the newest check runs"
    )]
    Stale { check: String, head: String },
}

/// A `check_run.requested_action` event, as far as the parser needs it.
#[derive(Debug, Clone, Copy)]
pub struct RequestedAction<'a> {
    /// `requested_action.identifier`.
    pub identifier: &'a str,
    /// `check_run.external_id`.
    pub external_id: Option<&'a str>,
    /// `check_run.head_sha`.
    pub check_head_sha: &'a str,
    /// The PR's current head.
    pub pr_head_sha: &'a CommitSha,
}

/// The comment command a pressed button stands for: "Apply" on `sluice/plan: prod` is
/// `sluice apply -p prod`, on the gate or summary check `sluice apply`. The app runs it
/// through exactly the path of a comment (actor checks, gate, audit) with the button's presser
/// as the actor. A button of an older head is refused.
pub fn command_for_action(a: &RequestedAction<'_>) -> Result<Command, RequestedActionError> {
    let button = Button::ALL
        .into_iter()
        .find(|b| b.identifier() == a.identifier)
        .ok_or_else(|| RequestedActionError::UnknownAction(cut(a.identifier, 40)))?;
    let check = a
        .external_id
        .and_then(CheckRef::parse)
        .ok_or(RequestedActionError::NotSluices)?;
    if !a
        .check_head_sha
        .eq_ignore_ascii_case(a.pr_head_sha.as_str())
    {
        return Err(RequestedActionError::Stale {
            check: cut(a.check_head_sha, 12),
            head: a.pr_head_sha.short().to_string(),
        });
    }
    let project = match check {
        CheckRef::Project { project, .. } => Some(project),
        CheckRef::Summary | CheckRef::ApplyGate => None,
    };
    Ok(Command {
        kind: button.command(),
        targets: Targets {
            project,
            dir: None,
            workspace: None,
        },
        verbose: false,
        extra_args: Vec::new(),
        state_args: Vec::new(),
        policy_sets: Vec::new(),
        destroy: false,
    })
}

fn cut(s: &str, max: usize) -> String {
    let mut s: String = s.chars().filter(|c| !c.is_control()).collect();
    truncate_to(&mut s, max);
    s
}

/// Everything about the check runs of one head that is not per project.
#[derive(Debug, Clone, Copy)]
pub struct CheckContext<'a> {
    pub head_sha: &'a CommitSha,
    /// The word users type (`sluice`).
    pub bot_name: &'a str,
    pub command: CommandName,
    /// The run's page in Sluice's UI: `details_url`, and the "full log" link when output is cut.
    pub log_url: Option<&'a str>,
    pub started_at: Option<&'a str>,
    pub completed_at: Option<&'a str>,
    /// Which changes get annotations (the `review_comments` setting).
    pub annotate: ReviewComments,
    /// Annotations per check run; the rest are counted in the summary.
    pub max_annotations: usize,
}

/// One project's check run: the create request (with the first 50 annotations) and the
/// updates that append the rest, 50 at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRunDraft {
    pub create: CreateCheckRun,
    pub more_annotations: Vec<UpdateCheckRun>,
}

impl CheckRunDraft {
    /// Requests this draft takes.
    pub fn requests(&self) -> usize {
        1 + self.more_annotations.len()
    }
}

/// What [`project_check`] reads for one project.
#[derive(Debug, Clone, Copy)]
pub struct CheckProject<'a> {
    pub report: &'a ProjectReport,
    /// The plan and its locations, for annotations (none without them).
    pub plan: Option<&'a Plan>,
    pub locations: Option<&'a Locations>,
    /// Policies that failed (and were not overridden): the check fails.
    pub failed_policies: &'a [String],
}

/// The check run of one project.
pub fn project_check(ctx: &CheckContext<'_>, p: &CheckProject<'_>) -> CheckRunDraft {
    let r = p.report;
    let check = CheckRef::Project {
        command: ctx.command,
        project: r.project.clone(),
    };
    let (title, conclusion, buttons): (String, Conclusion, &[Button]) = match &r.outcome {
        _ if !p.failed_policies.is_empty() => (
            format!("Policy failed: {}", p.failed_policies.join(", ")),
            Conclusion::Failure,
            &[Button::PlanAgain],
        ),
        ProjectOutcome::Planned { summary, .. } if summary.has_changes() => (
            summary.line(),
            Conclusion::Success,
            &[Button::Apply, Button::PlanAgain],
        ),
        ProjectOutcome::Planned { summary, .. } => {
            (summary.line(), Conclusion::Success, &[Button::PlanAgain])
        }
        ProjectOutcome::PlanFailed { stage, .. } => (
            format!("Plan failed during {stage}"),
            Conclusion::Failure,
            &[Button::PlanAgain],
        ),
        ProjectOutcome::Applied { summary, .. } => (
            summary
                .as_ref()
                .map_or("Applied".to_string(), |s| s.apply_line()),
            Conclusion::Success,
            &[],
        ),
        ProjectOutcome::ApplyFailed { .. } => (
            "Apply failed".to_string(),
            Conclusion::Failure,
            &[Button::PlanAgain],
        ),
        ProjectOutcome::Skipped { reason } => (
            format!("Skipped: {}", one_line(reason)),
            Conclusion::Neutral,
            &[Button::PlanAgain],
        ),
        ProjectOutcome::Removed { .. } => (
            format!("Removed: {}", crate::core::reply::removed::table_line()),
            Conclusion::Failure,
            &[],
        ),
    };
    let annotations = match (p.plan, p.locations) {
        (Some(plan), Some(locations)) => annotations(plan, locations, ctx.annotate),
        _ => Vec::new(),
    };
    let shown = annotations.len().min(ctx.max_annotations);
    let summary = project_summary(ctx, p, annotations.len() - shown);
    let text = project_text(ctx, r);
    let title = short_title(&title);
    let mut batches = annotations
        .into_iter()
        .take(shown)
        .collect::<Vec<_>>()
        .chunks(MAX_ANNOTATIONS_PER_REQUEST)
        .map(<[Annotation]>::to_vec)
        .collect::<Vec<_>>()
        .into_iter();
    let first = batches.next().unwrap_or_default();
    let more_annotations = batches
        .map(|annotations| UpdateCheckRun {
            output: CheckOutput {
                title: title.clone(),
                summary: summary.clone(),
                text: None,
                annotations,
            },
        })
        .collect();
    CheckRunDraft {
        create: CreateCheckRun {
            name: check.name(),
            head_sha: ctx.head_sha.as_str().to_string(),
            details_url: ctx.log_url.map(str::to_string),
            external_id: check.external_id(),
            status: CheckStatus::Completed,
            conclusion: Some(conclusion),
            started_at: ctx.started_at.map(str::to_string),
            completed_at: ctx.completed_at.map(str::to_string),
            output: CheckOutput {
                title,
                summary,
                text,
                annotations: first,
            },
            actions: buttons.iter().map(|b| b.action(Scope::Project)).collect(),
        },
        more_annotations,
    }
}

/// A check run that has started (status `in_progress`), e.g. when a project's job starts.
pub fn started_check(ctx: &CheckContext<'_>, check: &CheckRef, title: &str) -> CreateCheckRun {
    CreateCheckRun {
        name: check.name(),
        head_sha: ctx.head_sha.as_str().to_string(),
        details_url: ctx.log_url.map(str::to_string),
        external_id: check.external_id(),
        status: CheckStatus::InProgress,
        conclusion: None,
        started_at: ctx.started_at.map(str::to_string),
        completed_at: None,
        output: CheckOutput {
            title: short_title(title),
            summary: format!(
                "{} is working on commit `{}`.",
                ctx.bot_name,
                ctx.head_sha.short()
            ),
            text: None,
            annotations: Vec::new(),
        },
        actions: Vec::new(),
    }
}

/// Titles are one line; GitHub documents no limit, Sluice keeps them short.
fn short_title(title: &str) -> String {
    let mut t = one_line(title);
    if t.len() > 200 {
        truncate_to(&mut t, 197);
        t.push_str("...");
    }
    t
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn project_summary(
    ctx: &CheckContext<'_>,
    p: &CheckProject<'_>,
    annotations_left: usize,
) -> String {
    let r = p.report;
    let mut s = format!(
        "**{}** · dir {} · workspace {} · commit `{}`\n\n",
        code(r.project.as_str()),
        code(r.dir.as_str()),
        code(r.workspace.as_str()),
        ctx.head_sha.short()
    );
    if let (ProjectOutcome::Planned { summary, .. }, Some(plan)) = (&r.outcome, p.plan) {
        let _ = writeln!(s, "{}\n", summary.line());
        let destructive: Vec<String> = plan
            .resource_changes
            .iter()
            .filter_map(consequence)
            .filter(|c| c.kind.is_destructive())
            .map(|c| format!("- {} {}", c.kind.icon(), c.sentence()))
            .collect();
        if !destructive.is_empty() {
            s.push_str("⚠️ **Destroys and replacements:**\n\n");
            for line in destructive.iter().take(20) {
                let _ = writeln!(s, "{line}");
            }
            if destructive.len() > 20 {
                let _ = writeln!(
                    s,
                    "- … and {} more (see the details below)",
                    destructive.len() - 20
                );
            }
            s.push('\n');
        }
    }
    for note in &r.notes {
        let _ = writeln!(s, "{note}");
    }
    if !r.notes.is_empty() {
        s.push('\n');
    }
    if annotations_left > 0 {
        let _ = writeln!(
            s,
            "_{annotations_left} more changed blocks are not annotated (at most {} per check run)._\n",
            ctx.max_annotations
        );
    }
    let bot = ctx.bot_name;
    match &r.outcome {
        ProjectOutcome::Planned { summary, .. } if summary.has_changes() => {
            let _ = writeln!(
                s,
                "To apply: press **Apply** above, or comment `{}`.",
                project_hint(bot, CommandKind::Apply, &r.project)
            );
        }
        ProjectOutcome::PlanFailed { .. } | ProjectOutcome::ApplyFailed { .. } => {
            let _ = writeln!(
                s,
                "To plan again: push a fix, press **Plan again** above, or comment `{}`.",
                project_hint(bot, CommandKind::Plan, &r.project)
            );
        }
        _ => {}
    }
    if let Some(url) = ctx.log_url {
        let _ = writeln!(s, "\nFull log: {}", link(url));
    }
    truncate_to(&mut s, MAX_OUTPUT);
    s
}

/// The diff (or error, or apply output) in a fence, cut to [`MAX_OUTPUT`] without breaking the
/// fence, with the full log linked when cut.
fn project_text(ctx: &CheckContext<'_>, r: &ProjectReport) -> Option<String> {
    let (lang, text, from_end) = match &r.outcome {
        ProjectOutcome::Planned { summary, diff, .. } if summary.has_changes() => {
            ("diff", diff.as_str(), false)
        }
        ProjectOutcome::PlanFailed { error, .. } | ProjectOutcome::ApplyFailed { error } => {
            ("", error.as_str(), true)
        }
        ProjectOutcome::Applied { output, .. } if !output.trim().is_empty() => {
            ("", output.as_str(), true)
        }
        _ => return None,
    };
    let mut whole = String::with_capacity(text.len() + 16);
    fenced(&mut whole, lang, text);
    if whole.len() <= MAX_OUTPUT {
        return Some(whole);
    }
    let note = match ctx.log_url {
        Some(url) => format!(
            "\n_Output cut to fit GitHub's 65,535-character limit ({} bytes in all); full log: {}._\n",
            text.len(),
            link(url)
        ),
        None => format!(
            "\n_Output cut to fit GitHub's 65,535-character limit ({} bytes in all)._\n",
            text.len()
        ),
    };
    // Errors keep their end (where terraform says what failed), diffs their beginning
    // (destroys are rendered first); the fence is closed whatever was cut.
    let room = MAX_OUTPUT.saturating_sub(note.len() + 64);
    let (shown, _) = if from_end {
        keep_tail(text, room)
    } else {
        keep_head(text, room)
    };
    let mut out = String::with_capacity(MAX_OUTPUT);
    fenced(&mut out, lang, shown);
    if out.len() > MAX_OUTPUT.saturating_sub(note.len()) {
        // A fence longer than three backticks (text full of them): let the splitter cut.
        out = split_markdown(&[out], MAX_OUTPUT.saturating_sub(note.len()), |_, _| {
            Frame::default()
        })
        .swap_remove(0);
    }
    out.push_str(&note);
    Some(out)
}

/// Annotations on the head-side blocks of each change the setting covers: one per block, with
/// every change it causes.
fn annotations(plan: &Plan, locations: &Locations, mode: ReviewComments) -> Vec<Annotation> {
    if mode == ReviewComments::Off {
        return Vec::new();
    }
    let mut by_block: BTreeMap<&BlockSpan, Vec<(Kind, String)>> = BTreeMap::new();
    for rc in &plan.resource_changes {
        let Some(c) = consequence(rc) else { continue };
        if mode == ReviewComments::DestroyAndReplace && !c.kind.is_destructive() {
            continue;
        }
        let Some(loc) = locations.get(&rc.address) else {
            continue;
        };
        let root = loc.root_anchor();
        let inner = loc.block.as_ref().filter(|_| !loc.calls.is_empty());
        for span in root.into_iter().chain(inner) {
            if span.revision == Revision::Head {
                by_block
                    .entry(span)
                    .or_default()
                    .push((c.kind, c.sentence()));
            }
        }
    }
    let mut out: Vec<Annotation> = by_block
        .into_iter()
        .map(|(span, mut changes)| {
            changes.sort();
            let worst = changes[0].0;
            let mut kinds: Vec<Kind> = changes.iter().map(|c| c.0).collect();
            kinds.dedup();
            let title = format!(
                "Sluice: {}",
                kinds
                    .iter()
                    .map(|k| k.word())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let mut message = String::new();
            for (_, sentence) in changes.iter().take(50) {
                let _ = writeln!(message, "{}", sentence.replace("**", ""));
            }
            if changes.len() > 50 {
                let _ = writeln!(message, "… and {} more", changes.len() - 50);
            }
            truncate_to(&mut message, MAX_ANNOTATION_MESSAGE);
            let mut title = title;
            truncate_to(&mut title, MAX_ANNOTATION_TITLE);
            Annotation {
                path: span.path.clone(),
                start_line: span.start_line,
                end_line: span.end_line,
                annotation_level: if worst.is_destructive() {
                    AnnotationLevel::Warning
                } else {
                    AnnotationLevel::Notice
                },
                message: message.trim_end().to_string(),
                title: Some(title),
            }
        })
        .collect();
    // Destroys and replacements first, so a cap keeps them.
    out.sort_by_key(|a| a.annotation_level != AnnotationLevel::Warning);
    out
}

// ---------------------------------------------------------------------------------------------
// The checks every head gets

/// Which projects get a check run of their own, in run order: at most `max`, the ones that need
/// attention first (failures, then destroys, then other changes). The others are listed in the
/// summary check only, so a push creates a bounded number of check runs whatever the number of
/// projects.
pub fn projects_with_own_check(reports: &[ProjectReport], max: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..reports.len()).collect();
    order.sort_by_key(|&i| match &reports[i].outcome {
        ProjectOutcome::PlanFailed { .. } | ProjectOutcome::ApplyFailed { .. } => 0,
        ProjectOutcome::Planned { summary, .. } if summary.destroy > 0 => 1,
        ProjectOutcome::Planned { summary, .. } if summary.has_changes() => 2,
        ProjectOutcome::Applied { .. } => 3,
        _ => 4,
    });
    order.truncate(max);
    order.sort_unstable();
    order
}

/// The `sluice/plan` check: `success` unless a project failed, was removed with resources
/// left to destroy (as the `sluice/plan` status: fail closed), or `failed_policies` names it.
/// With no reports at all — a PR that changes no Terraform project — it is `success` at
/// once.
pub fn summary_check(
    ctx: &CheckContext<'_>,
    reports: &[ProjectReport],
    failed_policies: &[(ProjectName, Vec<String>)],
) -> CreateCheckRun {
    let failed = reports
        .iter()
        .filter(|r| {
            matches!(
                r.outcome,
                ProjectOutcome::PlanFailed { .. }
                    | ProjectOutcome::ApplyFailed { .. }
                    | ProjectOutcome::Removed { .. }
            ) || failed_policies.iter().any(|(p, _)| *p == r.project)
        })
        .count();
    let with_changes = reports
        .iter()
        .filter(|r| matches!(&r.outcome, ProjectOutcome::Planned { summary, .. } if summary.has_changes()))
        .count();
    let title = if reports.is_empty() {
        "No Terraform changes".to_string()
    } else {
        let mut t = format!(
            "{} {}: {with_changes} with changes",
            reports.len(),
            if reports.len() == 1 {
                "project"
            } else {
                "projects"
            }
        );
        if failed > 0 {
            let _ = write!(t, ", {failed} failed");
        }
        t
    };
    let mut summary = String::new();
    if reports.is_empty() {
        summary.push_str("This pull request changes no Terraform project.\n");
    } else {
        summary.push_str("| Project | Result |\n|---|---|\n");
        for r in reports {
            let policy = failed_policies
                .iter()
                .find(|(p, _)| p == &r.project)
                .map(|(_, names)| format!(" · ❌ policy {}", names.join(", ")))
                .unwrap_or_default();
            let line = format!(
                "| {} | {}{policy} |\n",
                code(r.project.as_str()),
                crate::core::plan::render::result_text(&r.outcome, true)
            );
            if summary.len() + line.len() + 200 > MAX_OUTPUT {
                let _ = writeln!(summary, "\n_More projects are listed in the full log._");
                break;
            }
            summary.push_str(&line);
        }
    }
    if let Some(url) = ctx.log_url {
        let _ = write!(summary, "\nFull log: {}\n", link(url));
    }
    truncate_to(&mut summary, MAX_OUTPUT);
    let buttons: &[Button] = if reports.is_empty() {
        &[]
    } else if with_changes > 0 && failed == 0 {
        &[Button::Apply, Button::PlanAgain]
    } else {
        &[Button::PlanAgain]
    };
    CreateCheckRun {
        name: PLAN_CHECK.to_string(),
        head_sha: ctx.head_sha.as_str().to_string(),
        details_url: ctx.log_url.map(str::to_string),
        external_id: CheckRef::Summary.external_id(),
        status: CheckStatus::Completed,
        conclusion: Some(if failed > 0 {
            Conclusion::Failure
        } else {
            Conclusion::Success
        }),
        started_at: ctx.started_at.map(str::to_string),
        completed_at: ctx.completed_at.map(str::to_string),
        output: CheckOutput {
            title,
            summary,
            text: None,
            annotations: Vec::new(),
        },
        actions: buttons.iter().map(|b| b.action(Scope::Pr)).collect(),
    }
}

/// Where one project stands on the way to being applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum GateState {
    /// Planned, nothing to apply.
    NoChanges,
    Planning,
    PlanFailed,
    /// Every requirement is met: it may be applied now.
    Ready,
    /// These requirements are not met (from `core::apply_gate::refusals`).
    Blocked {
        unmet: Vec<String>,
    },
    Applying,
    Applied,
    ApplyFailed,
}

/// One project on the gate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateProject {
    pub project: ProjectName,
    pub state: GateState,
}

/// The `sluice/apply-gate` check for the PR head:
///
/// * `success` when nothing is left to apply (no projects, no changes, or all applied);
/// * `in_progress` while a plan or apply runs;
/// * `failure` when a plan or apply failed;
/// * otherwise `action_required`, listing what each project still needs (the unmet
///   requirements, or just the apply), with an "Apply" button when one is ready.
pub fn apply_gate_check(ctx: &CheckContext<'_>, projects: &[GateProject]) -> CreateCheckRun {
    let count = |f: fn(&GateState) -> bool| projects.iter().filter(|p| f(&p.state)).count();
    let running = count(|s| matches!(s, GateState::Planning | GateState::Applying));
    let failed = count(|s| matches!(s, GateState::PlanFailed | GateState::ApplyFailed));
    let ready = count(|s| matches!(s, GateState::Ready));
    let blocked = count(|s| matches!(s, GateState::Blocked { .. }));
    let applied = count(|s| matches!(s, GateState::Applied));

    let (status, conclusion, title) = if running > 0 {
        (
            CheckStatus::InProgress,
            None,
            format!("{running} {} running", projects_word(running)),
        )
    } else if failed > 0 {
        (
            CheckStatus::Completed,
            Some(Conclusion::Failure),
            format!(
                "{failed} {} failed; push a fix or plan again",
                projects_word(failed)
            ),
        )
    } else if ready + blocked > 0 {
        let mut t = format!("{} to apply", ready + blocked);
        if blocked > 0 {
            let _ = write!(t, ", {blocked} blocked");
        }
        (CheckStatus::Completed, Some(Conclusion::ActionRequired), t)
    } else if applied > 0 {
        (
            CheckStatus::Completed,
            Some(Conclusion::Success),
            "Every change is applied".to_string(),
        )
    } else {
        (
            CheckStatus::Completed,
            Some(Conclusion::Success),
            "Nothing to apply".to_string(),
        )
    };

    let mut summary = String::new();
    if projects.is_empty() {
        summary.push_str("This pull request changes no Terraform project.\n");
    }
    let bot = ctx.bot_name;
    for p in projects {
        let name = code(p.project.as_str());
        let line = match &p.state {
            GateState::NoChanges => format!("- ✅ {name}: no changes\n"),
            GateState::Planning => format!("- ⏳ {name}: planning\n"),
            GateState::Applying => format!("- ⏳ {name}: applying\n"),
            GateState::PlanFailed => format!("- ❌ {name}: the plan failed\n"),
            GateState::ApplyFailed => format!("- ❌ {name}: the apply failed\n"),
            GateState::Applied => format!("- ✅ {name}: applied\n"),
            GateState::Ready => format!(
                "- 🟡 {name}: ready — press **Apply** or comment `{}`\n",
                project_hint(bot, CommandKind::Apply, &p.project)
            ),
            GateState::Blocked { unmet } => {
                let mut l = format!("- 🔒 {name}: blocked\n");
                for u in unmet {
                    let _ = writeln!(l, "  - {}", one_line(u));
                }
                l
            }
        };
        if summary.len() + line.len() + 200 > MAX_OUTPUT {
            summary.push_str("- … more projects in the full log\n");
            break;
        }
        summary.push_str(&line);
    }
    if let Some(url) = ctx.log_url {
        let _ = write!(summary, "\nFull log: {}\n", link(url));
    }
    truncate_to(&mut summary, MAX_OUTPUT);
    let mut actions = Vec::new();
    if ready > 0 && running == 0 {
        actions.push(Button::Apply.action(Scope::Pr));
    }
    if running == 0 && !projects.is_empty() {
        actions.push(Button::PlanAgain.action(Scope::Pr));
    }
    CreateCheckRun {
        name: APPLY_GATE_CHECK.to_string(),
        head_sha: ctx.head_sha.as_str().to_string(),
        details_url: ctx.log_url.map(str::to_string),
        external_id: CheckRef::ApplyGate.external_id(),
        status,
        conclusion,
        started_at: ctx.started_at.map(str::to_string),
        completed_at: conclusion.and(ctx.completed_at.map(str::to_string)),
        output: CheckOutput {
            title,
            summary,
            text: None,
            annotations: Vec::new(),
        },
        actions,
    }
}

fn projects_word(n: usize) -> &'static str {
    if n == 1 { "project" } else { "projects" }
}

/// The checks of a head that changes no Terraform project: both required checks, `success`,
/// reported at once so they never hold up the merge button.
pub fn no_terraform_changes(ctx: &CheckContext<'_>) -> [CreateCheckRun; 2] {
    [summary_check(ctx, &[], &[]), apply_gate_check(ctx, &[])]
}

#[cfg(test)]
mod tests;
