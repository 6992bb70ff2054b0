//! What Sluice posts: the PR comment (markdown, split into bodies that fit GitHub's limit) and
//! the terminal rendering of the same run for `sluice preview`.
//!
//! This module owns the layout: per project a header, the summary line, destroys and
//! replacements called out before anything else, notes, the folded diff, errors in plain sight,
//! and the commands to type next; a summary table for multi-project runs; and what gives way
//! when a run is too big for `max_comments` comments (diffs first, largest first; then the
//! beginning of error output; never a project's header, summary or the end of its error).
//! It does not redact (texts arrive redacted), talk to GitHub, or read the plan JSON.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::split::{Frame, split_markdown};
use super::summary::{PlanSummary, plural};
use crate::core::command::{CommandKind, project_hint};
use crate::core::removed::Removal;
use crate::core::reply;
use crate::core::types::{CommitSha, ProjectDir, ProjectName, Workspace};

/// GitHub's limit for an issue comment body.
pub const DEFAULT_MAX_COMMENT_CHARS: usize = 65_536;
pub const DEFAULT_MAX_COMMENTS: usize = 10;
/// Limits below this are raised to it: a part must hold its frame, the reopened `<details>`
/// and fence, and some content.
pub const MIN_COMMENT_CHARS: usize = 2_000;
/// At most this many destroyed/replaced addresses are listed in a project's warning.
const MAX_CALLOUT_ADDRESSES: usize = 20;
/// However tight the limits, this much of the end of an error stays: it is where terraform
/// says what went wrong (`Error: …` and the offending lines).
const MIN_ERROR_TAIL: usize = 1_500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommentLimits {
    /// Per comment body, counted in UTF-8 bytes (never fewer than characters).
    pub max_chars: usize,
    /// Per run. When the output needs more, diffs are truncated (see the module docs).
    pub max_comments: usize,
}

impl Default for CommentLimits {
    fn default() -> Self {
        CommentLimits {
            max_chars: DEFAULT_MAX_COMMENT_CHARS,
            max_comments: DEFAULT_MAX_COMMENTS,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CommandName {
    Plan,
    Apply,
}

impl CommandName {
    pub fn as_str(self) -> &'static str {
        match self {
            CommandName::Plan => "plan",
            CommandName::Apply => "apply",
        }
    }
}

/// Everything about the run that is not per project.
#[derive(Debug, Clone)]
pub struct RenderContext {
    /// The name users type, e.g. `sluice` (or `atlantis` for teams migrating).
    pub bot_name: String,
    pub command: CommandName,
    pub head_sha: Option<CommitSha>,
    /// Where the full, untruncated output can be read (Sluice's UI).
    pub log_url: Option<String>,
    pub limits: CommentLimits,
    /// The projects applied only after merge (`apply_mode: on_merge` in the base branch's
    /// configuration): their plans point to the merge, never to `apply` or `unlock` (an
    /// `on_merge` plan takes no lock).
    pub after_merge: std::collections::BTreeSet<ProjectName>,
}

/// The outcome of one project in a run. Texts are already redacted. Serializable because the
/// store keeps each job's report until its run's comment is written.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProjectReport {
    pub project: ProjectName,
    pub dir: ProjectDir,
    pub workspace: Workspace,
    pub outcome: ProjectOutcome,
    /// Extra markdown lines shown under the summary (e.g. policy results).
    pub notes: Vec<String>,
    /// A destroy plan (`plan --destroy`): its warning comes before anything else.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub destroy_plan: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ProjectOutcome {
    Planned {
        summary: PlanSummary,
        /// From `render_diff`, redacted.
        diff: String,
        /// Hex SHA-256 of the saved plan file.
        plan_sha256: String,
    },
    PlanFailed {
        stage: FailedStage,
        /// The tail of terraform's output, redacted.
        error: String,
    },
    Applied {
        output: String,
        summary: Option<PlanSummary>,
    },
    ApplyFailed {
        error: String,
    },
    /// Not run: refused, queued behind another PR, interrupted, ...
    Skipped {
        reason: String,
    },
    /// Not run: the pull request removes the project (`core::removed`); its resources would be
    /// orphaned by the merge. Counts as a failure.
    Removed {
        #[serde(flatten)]
        removal: Removal,
    },
}

/// Where a plan failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailedStage {
    Checkout,
    Config,
    Init,
    Workspace,
    Plan,
    Show,
    /// A failure of the apply itself (or of its checks before running).
    Apply,
}

impl std::fmt::Display for FailedStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FailedStage {
    pub const ALL: [FailedStage; 7] = [
        FailedStage::Checkout,
        FailedStage::Config,
        FailedStage::Init,
        FailedStage::Workspace,
        FailedStage::Plan,
        FailedStage::Show,
        FailedStage::Apply,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailedStage::Checkout => "checkout",
            FailedStage::Config => "config",
            FailedStage::Init => "init",
            FailedStage::Workspace => "workspace",
            FailedStage::Plan => "plan",
            FailedStage::Show => "show",
            FailedStage::Apply => "apply",
        }
    }

    fn during(self) -> &'static str {
        match self {
            FailedStage::Checkout => "while checking out the commit",
            FailedStage::Config => "while reading the project configuration",
            FailedStage::Init => "during `init`",
            FailedStage::Workspace => "while selecting the workspace",
            FailedStage::Plan => "during `plan`",
            FailedStage::Show => "while reading the saved plan (`show`)",
            FailedStage::Apply => "during `apply`",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Markdown

/// The comment bodies for a run, each within `ctx.limits.max_chars` bytes, normally at most
/// `ctx.limits.max_comments` of them. To stay within that count, folded outputs (diffs, apply
/// logs) are truncated, largest first, then the beginnings of error outputs; headers,
/// summaries, warnings and the end of each error always stay. Only when those alone need more
/// comments than allowed (hundreds of projects) are there more bodies than `max_comments`.
pub fn render_comments(ctx: &RenderContext, reports: &[ProjectReport]) -> Vec<String> {
    let max = ctx.limits.max_chars.max(MIN_COMMENT_CHARS);
    let max_comments = ctx.limits.max_comments.max(1);
    let frame = |i: usize, n: usize| comment_frame(ctx, i, n);
    let split = |caps: &[Caps]| split_markdown(&blocks(ctx, reports, caps), max, frame);

    let full = blocks(ctx, reports, &vec![Caps::default(); reports.len()]);
    // Skip the full split when the text obviously cannot fit.
    if full.iter().map(String::len).sum::<usize>() <= max_comments * max {
        let parts = split_markdown(&full, max, frame);
        if parts.len() <= max_comments {
            return parts;
        }
    }
    drop(full);

    // What a part can hold besides its frame and the close/reopen of a fenced block.
    let per_part = max.saturating_sub(comment_frame(ctx, 99, 99).len() + 300);
    let room = max_comments * per_part;

    // Pass 1: truncate folded outputs, keeping their beginning (destroys are rendered first).
    let outputs: Vec<usize> = reports
        .iter()
        .map(|r| folded(r).map_or(0, str::len))
        .collect();
    let no_outputs: Vec<Caps> = reports
        .iter()
        .map(|_| Caps {
            output: Some(0),
            ..Caps::default()
        })
        .collect();
    let fixed: usize = blocks(ctx, reports, &no_outputs)
        .iter()
        .map(String::len)
        .sum();
    let parts = shrink_until_fits(room.saturating_sub(fixed), max_comments, |budget| {
        let caps: Vec<Caps> = water_fill(&outputs, budget)
            .into_iter()
            .map(|output| Caps {
                output,
                ..Caps::default()
            })
            .collect();
        split(&caps)
    });
    if parts.len() <= max_comments {
        return parts;
    }

    // Pass 2: no folded output at all; truncate the beginnings of errors (their end says what
    // went wrong).
    let errors: Vec<usize> = reports
        .iter()
        .map(|r| error_text(r).map_or(0, str::len))
        .collect();
    let minimal: Vec<Caps> = reports
        .iter()
        .map(|_| Caps {
            output: Some(0),
            error: Some(0),
            ..Caps::default()
        })
        .collect();
    let fixed: usize = blocks(ctx, reports, &minimal).iter().map(String::len).sum();
    shrink_until_fits(room.saturating_sub(fixed), max_comments, |budget| {
        let caps: Vec<Caps> = water_fill(&errors, budget)
            .into_iter()
            .map(|error| Caps {
                output: Some(0),
                error,
                ..Caps::default()
            })
            .collect();
        split(&caps)
    })
}

/// Renders with a shrinking budget until the parts fit (the estimate ignores per-part waste at
/// cut points, so a few rounds may be needed); ends with a zero budget.
fn shrink_until_fits(
    mut budget: usize,
    max_comments: usize,
    render: impl Fn(usize) -> Vec<String>,
) -> Vec<String> {
    for _ in 0..6 {
        let parts = render(budget);
        if parts.len() <= max_comments || budget == 0 {
            return parts;
        }
        // Scale by how far off we were, and a little more.
        budget = (budget as u128 * max_comments as u128 * 9 / (parts.len() as u128 * 10)) as usize;
    }
    render(0)
}

/// Caps (in bytes) that make `sizes` sum to at most `budget`, cutting the largest first:
/// every size above some level is cut to it. `None` means "keep whole".
fn water_fill(sizes: &[usize], budget: usize) -> Vec<Option<usize>> {
    if sizes.iter().sum::<usize>() <= budget {
        return vec![None; sizes.len()];
    }
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by_key(|&i| sizes[i]);
    let mut caps = vec![None; sizes.len()];
    let mut left = budget;
    for (k, &i) in order.iter().enumerate() {
        let share = left / (order.len() - k);
        if sizes[i] <= share {
            left -= sizes[i];
        } else {
            for &j in &order[k..] {
                caps[j] = Some(share);
            }
            break;
        }
    }
    caps
}

/// How much of a project's texts to show; `None` = all.
#[derive(Debug, Clone, Copy, Default)]
struct Caps {
    output: Option<usize>,
    error: Option<usize>,
    /// Outputs are fenced in the open, not in a "Show output" fold (the caller folds the
    /// whole section).
    unfolded: bool,
}

/// One project's section exactly as the run's comment shows it (heading, destroy warnings,
/// summary, notes, diff or error, the commands to type next), for a caller that lays out the
/// sections itself (the PR's summary comment folds each one). With `cap`, the diff or apply log
/// keeps its first `cap` bytes and an error its last (at least 1,500 bytes), with a note that
/// links `ctx.log_url`.
pub(crate) fn project_section(
    ctx: &RenderContext,
    r: &ProjectReport,
    cap: Option<usize>,
) -> String {
    let mut s = String::new();
    let caps = Caps {
        output: cap,
        error: cap,
        unfolded: true,
    };
    project_markdown(&mut s, ctx, r, caps);
    s
}

fn folded(r: &ProjectReport) -> Option<&str> {
    match &r.outcome {
        ProjectOutcome::Planned { summary, diff, .. } if summary.has_changes() => Some(diff),
        ProjectOutcome::Applied { output, .. } if !output.trim().is_empty() => Some(output),
        _ => None,
    }
}

fn error_text(r: &ProjectReport) -> Option<&str> {
    match &r.outcome {
        ProjectOutcome::PlanFailed { error, .. } | ProjectOutcome::ApplyFailed { error } => {
            Some(error)
        }
        _ => None,
    }
}

fn comment_frame(ctx: &RenderContext, i: usize, n: usize) -> Frame {
    let mut head = format!("**{} {}**", ctx.bot_name, ctx.command.as_str());
    if let Some(sha) = &ctx.head_sha {
        let _ = write!(head, " for commit `{}`", sha.short());
    }
    if n > 1 {
        let _ = write!(head, " (part {i} of {n})");
    }
    head.push_str("\n\n");
    let tail = if i < n {
        format!(
            "\n---\n_Continued in the next comment (part {} of {n})._\n",
            i + 1
        )
    } else {
        String::new()
    };
    Frame { head, tail }
}

/// The document as blocks the splitter keeps whole when it can: the intro and table, one per
/// project, the footer.
fn blocks(ctx: &RenderContext, reports: &[ProjectReport], caps: &[Caps]) -> Vec<String> {
    let mut out = Vec::with_capacity(reports.len() + 2);
    if reports.is_empty() {
        out.push(match ctx.command {
            CommandName::Plan => "No projects to plan: no Terraform project is affected by the \
                                  files changed in this pull request.\n"
                .to_string(),
            CommandName::Apply => {
                "No projects to apply: this pull request has no unapplied plans.\n".to_string()
            }
        });
        return out;
    }
    if reports.len() > 1 {
        out.push(summary_table(ctx, reports));
    }
    for (i, (r, c)) in reports.iter().zip(caps).enumerate() {
        let mut s = String::new();
        if i > 0 || reports.len() > 1 {
            s.push_str("---\n\n");
        }
        project_markdown(&mut s, ctx, r, *c);
        out.push(s);
    }
    let footer = footer(ctx, reports);
    if !footer.is_empty() {
        out.push(footer);
    }
    out
}

fn summary_table(ctx: &RenderContext, reports: &[ProjectReport]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Ran {} for {} projects: {}.\n",
        ctx.command.as_str(),
        reports.len(),
        tally(reports)
    );
    s.push_str("| Project | Dir | Workspace | Result |\n|---|---|---|---|\n");
    for r in reports {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            cell(&code(r.project.as_str())),
            cell(&code(r.dir.as_str())),
            cell(&code(r.workspace.as_str())),
            cell(&result_text(&r.outcome, true)),
        );
    }
    s.push('\n');
    s
}

/// "2 planned with changes, 1 failed"
fn tally(reports: &[ProjectReport]) -> String {
    tally_of(reports.iter())
}

/// The outcomes of `reports` counted by kind: "2 with changes, 1 failed" (kinds with none left
/// out; empty when there are no reports). Shared with the PR's summary comment.
pub(crate) fn tally_of<'a>(reports: impl Iterator<Item = &'a ProjectReport>) -> String {
    let (mut changes, mut none, mut applied, mut failed, mut skipped) = (0, 0, 0, 0, 0);
    for r in reports {
        match &r.outcome {
            ProjectOutcome::Planned { summary, .. } if summary.has_changes() => changes += 1,
            ProjectOutcome::Planned { .. } => none += 1,
            ProjectOutcome::Applied { .. } => applied += 1,
            ProjectOutcome::PlanFailed { .. }
            | ProjectOutcome::ApplyFailed { .. }
            | ProjectOutcome::Removed { .. } => failed += 1,
            ProjectOutcome::Skipped { .. } => skipped += 1,
        }
    }
    let parts: Vec<String> = [
        (changes, "with changes"),
        (none, "without changes"),
        (applied, "applied"),
        (failed, "failed"),
        (skipped, "skipped"),
    ]
    .into_iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    parts.join(", ")
}

/// The one-line result of a project, for the table (`emoji`) or the terminal.
pub(crate) fn result_text(o: &ProjectOutcome, emoji: bool) -> String {
    let icon = |e: &'static str| if emoji { e } else { "" };
    match o {
        ProjectOutcome::Planned { summary, .. } => {
            let icon = if summary.destroy > 0 {
                icon("⚠️ ")
            } else {
                icon("✅ ")
            };
            if summary.has_resource_changes() {
                format!("{icon}{}", summary.counts())
            } else if summary.outputs_changed > 0 {
                format!(
                    "{icon}{} {} to change",
                    summary.outputs_changed,
                    plural(summary.outputs_changed, "output", "outputs")
                )
            } else {
                format!("{icon}no changes")
            }
        }
        ProjectOutcome::PlanFailed { stage, .. } => {
            format!("{}plan failed ({})", icon("❌ "), stage.as_str())
        }
        ProjectOutcome::Applied { summary, .. } => match summary {
            Some(s) => format!(
                "{}applied: {} added, {} changed, {} destroyed",
                icon("✅ "),
                s.add,
                s.change,
                s.destroy
            ),
            None => format!("{}applied", icon("✅ ")),
        },
        ProjectOutcome::ApplyFailed { .. } => format!("{}apply failed", icon("❌ ")),
        ProjectOutcome::Skipped { reason } => {
            format!("{}skipped: {}", icon("⏭️ "), one_line(reason))
        }
        ProjectOutcome::Removed { .. } => {
            format!("{}{}", icon("🗑️ "), reply::removed::table_line())
        }
    }
}

fn project_markdown(s: &mut String, ctx: &RenderContext, r: &ProjectReport, caps: Caps) {
    let _ = writeln!(
        s,
        "### {} · dir {} · workspace {}\n",
        code(r.project.as_str()),
        code(r.dir.as_str()),
        code(r.workspace.as_str())
    );
    let bot = &ctx.bot_name;
    match &r.outcome {
        ProjectOutcome::Planned {
            summary,
            diff,
            plan_sha256,
        } => {
            if r.destroy_plan {
                destroy_plan_warning(s, summary);
            }
            let _ = writeln!(s, "**{}**\n", summary.line());
            destroy_callout(s, summary);
            notes(s, &r.notes);
            if summary.has_changes() {
                folded_output(s, ctx, "diff", diff, caps);
                if ctx.after_merge.contains(&r.project) {
                    let _ = writeln!(
                        s,
                        "* :arrow_forward: This plan is **applied after merge** (`apply_mode: on_merge`): merge the pull request once `sluice/apply-gate` passes"
                    );
                } else {
                    let _ = writeln!(
                        s,
                        "* :arrow_forward: To **apply** this plan, comment: {}",
                        code(&project_hint(bot, CommandKind::Apply, &r.project))
                    );
                }
            }
            let _ = writeln!(
                s,
                "* :repeat: To **plan** this project again, comment: {}",
                code(&project_hint(bot, CommandKind::Plan, &r.project))
            );
            if !plan_sha256.is_empty() {
                let short = plan_sha256.get(..12).unwrap_or(plan_sha256);
                let _ = writeln!(s, "\n<sub>Plan file SHA-256 `{short}…`</sub>");
            }
        }
        ProjectOutcome::PlanFailed { stage, error } => {
            let _ = writeln!(s, "**Plan failed** {}:\n", stage.during());
            notes(s, &r.notes);
            error_block(s, ctx, error, caps.error);
            let _ = writeln!(
                s,
                "* :repeat: Fix the problem, then plan again: {}",
                code(&project_hint(bot, CommandKind::Plan, &r.project))
            );
        }
        ProjectOutcome::Applied { output, summary } => {
            let line = summary
                .as_ref()
                .map_or_else(|| "Apply succeeded.".to_string(), PlanSummary::apply_line);
            let _ = writeln!(s, "**{line}**\n");
            notes(s, &r.notes);
            if !output.trim().is_empty() {
                folded_output(s, ctx, "", output, caps);
            }
        }
        ProjectOutcome::ApplyFailed { error } => {
            let _ = writeln!(s, "**Apply failed:**\n");
            notes(s, &r.notes);
            error_block(s, ctx, error, caps.error);
            let _ = writeln!(
                s,
                "* :repeat: To **plan** this project again, comment: {}",
                code(&project_hint(bot, CommandKind::Plan, &r.project))
            );
        }
        ProjectOutcome::Skipped { reason } => {
            let _ = writeln!(s, "**Skipped:** {}\n", one_line(reason));
            notes(s, &r.notes);
        }
        ProjectOutcome::Removed { removal } => {
            let removed = reply::removed::Removed {
                name: &r.project,
                dir: &r.dir,
                workspace: &r.workspace,
                removal,
            };
            let _ = writeln!(s, "{}\n", reply::removed::section(bot, &removed));
            notes(s, &r.notes);
        }
    }
    end_with_blank_line(s);
}

/// Sections end with exactly one blank line, so the next one (a `---` rule above all, which
/// would otherwise turn the line before it into a heading) starts cleanly.
fn end_with_blank_line(s: &mut String) {
    let trimmed = s.trim_end_matches('\n').len();
    s.truncate(trimmed);
    s.push_str("\n\n");
}

/// The warning that opens a destroy plan: applying it destroys what the project manages.
fn destroy_plan_warning(s: &mut String, summary: &PlanSummary) {
    let what = if summary.destroy == 0 {
        "the state holds no resource to destroy; applying it records that".to_string()
    } else {
        format!(
            "applying it destroys all {} {} of this project",
            summary.destroy,
            plural(summary.destroy, "resource", "resources")
        )
    };
    let _ = writeln!(s, "> [!CAUTION]\n> **Destroy plan**: {what}.\n");
}

/// Destroyed and replaced addresses, before anything else a reviewer might skim past.
fn destroy_callout(s: &mut String, summary: &PlanSummary) {
    let (d, r) = (summary.destroyed.len(), summary.replaced.len());
    if d + r == 0 {
        return;
    }
    let what = match (d, r) {
        (d, 0) => format!("destroys {d} {}", plural(d, "resource", "resources")),
        (0, r) => format!("replaces {r} {}", plural(r, "resource", "resources")),
        (d, r) => format!(
            "destroys {d} {} and replaces {r}",
            plural(d, "resource", "resources")
        ),
    };
    let _ = writeln!(s, "> [!WARNING]\n> **This plan {what}:**");
    let listed = summary
        .destroyed
        .iter()
        .map(|a| ("destroy", a))
        .chain(summary.replaced.iter().map(|a| ("replace", a)));
    for (verb, addr) in listed.clone().take(MAX_CALLOUT_ADDRESSES) {
        let _ = writeln!(s, "> - {verb} {}", code(addr));
    }
    if d + r > MAX_CALLOUT_ADDRESSES {
        let _ = writeln!(
            s,
            "> - … and {} more (see the plan output)",
            d + r - MAX_CALLOUT_ADDRESSES
        );
    }
    s.push('\n');
}

fn notes(s: &mut String, notes: &[String]) {
    for n in notes {
        s.push_str(n);
        s.push('\n');
    }
    if !notes.is_empty() {
        s.push('\n');
    }
}

/// A diff or apply log in a folded block (or in the open with `caps.unfolded`), cut to
/// `caps.output` bytes (keeping whole lines from the start) with a visible note saying so.
fn folded_output(s: &mut String, ctx: &RenderContext, lang: &str, text: &str, caps: Caps) {
    let (kept, dropped) = match caps.output {
        Some(cap) => keep_head(text, cap),
        None => (text, 0),
    };
    if !kept.is_empty() && caps.unfolded {
        fenced(s, lang, kept);
        s.push('\n');
    } else if !kept.is_empty() {
        s.push_str("<details><summary>Show output</summary>\n\n");
        fenced(s, lang, kept);
        s.push_str("\n</details>\n\n");
    }
    if dropped > 0 {
        truncation_note(
            s,
            ctx,
            &format!(
                "output truncated: {dropped} {} not shown",
                plural(dropped, "line", "lines")
            ),
        );
    }
}

/// An error, never folded: the end of terraform's output is what says what went wrong, so
/// when it must be cut, its beginning goes.
fn error_block(s: &mut String, ctx: &RenderContext, text: &str, cap: Option<usize>) {
    let (kept, dropped) = match cap {
        Some(cap) => keep_tail(text, cap.max(MIN_ERROR_TAIL)),
        None => (text, 0),
    };
    if dropped > 0 {
        truncation_note(
            s,
            ctx,
            &format!(
                "error output truncated: the first {dropped} {} are not shown",
                plural(dropped, "line", "lines")
            ),
        );
    }
    if !kept.trim().is_empty() {
        fenced(s, "", kept);
        s.push('\n');
    }
}

fn truncation_note(s: &mut String, ctx: &RenderContext, what: &str) {
    let _ = write!(s, ":warning: **Note:** {what}");
    match &ctx.log_url {
        Some(url) => {
            let _ = writeln!(s, "; full log: {}\n", link(url));
        }
        None => s.push_str(" (too long for a pull request comment).\n\n"),
    }
}

/// Writes a fenced code block. The fence is longer than any backtick run that starts a line of
/// `text`, so the text cannot close it; lines that would still close it (absurdly long runs)
/// are indented out of fence position.
pub(crate) fn fenced(s: &mut String, lang: &str, text: &str) {
    const MAX_FENCE: usize = 10;
    let longest = text
        .lines()
        .map(|l| {
            let t = l.trim_start_matches(' ');
            if l.len() - t.len() > 3 {
                0
            } else {
                t.bytes().take_while(|&b| b == b'`').count()
            }
        })
        .max()
        .unwrap_or(0);
    let n = (longest + 1).clamp(3, MAX_FENCE);
    let fence = "`".repeat(n);
    let _ = writeln!(s, "{fence}{lang}");
    if longest >= MAX_FENCE {
        for line in text.lines() {
            let t = line.trim_start_matches(' ');
            if line.len() - t.len() <= 3 && t.starts_with(&fence) {
                s.push_str("    ");
            }
            s.push_str(line);
            s.push('\n');
        }
    } else {
        s.push_str(text);
        if !text.ends_with('\n') {
            s.push('\n');
        }
    }
    let _ = writeln!(s, "{fence}");
}

fn footer(ctx: &RenderContext, reports: &[ProjectReport]) -> String {
    let mut s = String::new();
    let bot = &ctx.bot_name;
    if ctx.command == CommandName::Plan {
        // `on_merge` projects are neither applied by comment nor locked.
        let by_comment = |r: &&ProjectReport| !ctx.after_merge.contains(&r.project);
        let with_changes = reports
            .iter()
            .filter(by_comment)
            .filter(|r| matches!(&r.outcome, ProjectOutcome::Planned { summary, .. } if summary.has_changes()))
            .count();
        if with_changes > 1 {
            let _ = writeln!(
                s,
                "* :fast_forward: To **apply** all unapplied plans from this pull request, comment: `{bot} apply`"
            );
        }
        if reports.is_empty() || reports.iter().any(|r| by_comment(&r)) {
            let _ = writeln!(
                s,
                "* :put_litter_in_its_place: To **delete** all plans and locks from this pull request, comment: `{bot} unlock`"
            );
        }
    }
    if let Some(url) = &ctx.log_url {
        if !s.is_empty() {
            s.push('\n');
        }
        let _ = writeln!(s, "Full log: {}", link(url));
    }
    if s.is_empty() {
        return s;
    }
    format!("---\n\n{s}")
}

/// The first whole lines of `text` within `cap` bytes, and how many lines were left out.
/// Works on bytes: `\n` never occurs inside a multi-byte character, so cuts after it are
/// always on a `char` boundary.
pub(crate) fn keep_head(text: &str, cap: usize) -> (&str, usize) {
    if text.len() <= cap {
        return (text, 0);
    }
    let end = text.as_bytes()[..cap]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    (&text[..end], count_lines(&text[end..]))
}

/// The last whole lines of `text` within `cap` bytes, and how many lines were left out.
pub(crate) fn keep_tail(text: &str, cap: usize) -> (&str, usize) {
    if text.len() <= cap {
        return (text, 0);
    }
    let from = text.len() - cap;
    let bytes = text.as_bytes();
    let mut start = if bytes[from - 1] == b'\n' {
        from
    } else {
        bytes[from..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(text.len(), |i| from + i + 1)
    };
    if start == text.len() {
        // The last line alone is longer than `cap`: show its end rather than nothing.
        start = from;
        while !text.is_char_boundary(start) {
            start += 1;
        }
    }
    (&text[start..], count_lines(&text[..start]))
}

fn count_lines(s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        s.matches('\n').count() + usize::from(!s.ends_with('\n'))
    }
}

/// An inline code span that survives backticks in its content.
pub(crate) fn code(s: &str) -> String {
    let longest = s.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    if longest == 0 {
        format!("`{s}`")
    } else {
        format!("{fence} {s} {fence}")
    }
}

/// Text safe inside a table cell: pipes escaped, one line.
pub(crate) fn cell(s: &str) -> String {
    one_line(s).replace('|', "\\|")
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A URL as a markdown autolink; characters that would end it are percent-encoded.
pub(crate) fn link(url: &str) -> String {
    let mut s = String::from("<");
    for c in url.chars() {
        match c {
            '<' => s.push_str("%3C"),
            '>' => s.push_str("%3E"),
            ' ' => s.push_str("%20"),
            c if c.is_control() => {}
            c => s.push(c),
        }
    }
    s.push('>');
    s
}

// ---------------------------------------------------------------------------------------------
// Terminal

/// Whether the terminal rendering uses ANSI colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TerminalStyle {
    #[default]
    Plain,
    Ansi,
}

struct Paint(TerminalStyle);

impl Paint {
    fn wrap(&self, code: &str, text: &str) -> String {
        match self.0 {
            TerminalStyle::Plain => text.to_string(),
            TerminalStyle::Ansi => format!("\x1b[{code}m{text}\x1b[0m"),
        }
    }
    fn bold(&self, t: &str) -> String {
        self.wrap("1", t)
    }
    fn red(&self, t: &str) -> String {
        self.wrap("31", t)
    }
    fn green(&self, t: &str) -> String {
        self.wrap("32", t)
    }
    fn yellow(&self, t: &str) -> String {
        self.wrap("33", t)
    }
    fn dim(&self, t: &str) -> String {
        self.wrap("2", t)
    }

    /// A diff line coloured by its marker.
    fn diff_line(&self, line: &str) -> String {
        match line.as_bytes().first() {
            Some(b'+') => self.green(line),
            Some(b'-') => self.red(line),
            Some(b'~') => self.yellow(line),
            Some(b'#') => self.bold(line),
            _ => line.to_string(),
        }
    }
}

/// The same run as [`render_comments`], for a terminal (`sluice preview`): no HTML, no
/// splitting, nothing truncated. Terminal control characters in the texts are made visible, so
/// output from a PR cannot drive the reader's terminal.
pub fn render_terminal(
    ctx: &RenderContext,
    reports: &[ProjectReport],
    style: TerminalStyle,
) -> String {
    let p = Paint(style);
    let mut s = String::new();
    let mut title = format!("{} {}", ctx.bot_name, ctx.command.as_str());
    if let Some(sha) = &ctx.head_sha {
        let _ = write!(title, " for commit {}", sha.short());
    }
    let _ = writeln!(s, "{}\n", p.bold(&title));
    if reports.is_empty() {
        let _ = writeln!(s, "No projects to {}.", ctx.command.as_str());
    }
    for r in reports {
        let _ = writeln!(
            s,
            "{}",
            p.bold(&format!(
                "== {} (dir {}, workspace {})",
                r.project, r.dir, r.workspace
            ))
        );
        let bot = &ctx.bot_name;
        let mut next: Vec<String> = Vec::new();
        match &r.outcome {
            ProjectOutcome::Planned { summary, diff, .. } => {
                let _ = writeln!(s, "{}", p.bold(&summary.line()));
                for a in &summary.destroyed {
                    let _ = writeln!(s, "{}", p.red(&format!("! destroys {}", visible(a))));
                }
                for a in &summary.replaced {
                    let _ = writeln!(s, "{}", p.red(&format!("! replaces {}", visible(a))));
                }
                terminal_notes(&mut s, &r.notes);
                if summary.has_changes() {
                    s.push('\n');
                    for line in diff.lines() {
                        let _ = writeln!(s, "{}", p.diff_line(&visible(line)));
                    }
                    next.push(project_hint(bot, CommandKind::Apply, &r.project));
                }
                next.push(project_hint(bot, CommandKind::Plan, &r.project));
            }
            ProjectOutcome::PlanFailed { stage, error } => {
                let _ = writeln!(
                    s,
                    "{}",
                    p.red(&format!("Plan failed {}:", stage.during().replace('`', "")))
                );
                terminal_notes(&mut s, &r.notes);
                indented(&mut s, &p, error, true);
                next.push(project_hint(bot, CommandKind::Plan, &r.project));
            }
            ProjectOutcome::Applied { output, summary } => {
                let line = summary
                    .as_ref()
                    .map_or_else(|| "Apply succeeded.".to_string(), PlanSummary::apply_line);
                let _ = writeln!(s, "{}", p.green(&line));
                terminal_notes(&mut s, &r.notes);
                indented(&mut s, &p, output, false);
            }
            ProjectOutcome::ApplyFailed { error } => {
                let _ = writeln!(s, "{}", p.red("Apply failed:"));
                terminal_notes(&mut s, &r.notes);
                indented(&mut s, &p, error, true);
                next.push(project_hint(bot, CommandKind::Plan, &r.project));
            }
            ProjectOutcome::Skipped { reason } => {
                let _ = writeln!(s, "{}", p.yellow(&format!("Skipped: {}", visible(reason))));
                terminal_notes(&mut s, &r.notes);
            }
            ProjectOutcome::Removed { .. } => {
                let line = format!("Removed: {}", reply::removed::table_line());
                let _ = writeln!(s, "{}", p.red(&line));
                terminal_notes(&mut s, &r.notes);
                next.push(reply::removed::destroy_hint(bot, &r.project));
            }
        }
        if !next.is_empty() {
            s.push('\n');
            for n in next {
                let _ = writeln!(s, "{}", p.dim(&format!("-> {n}")));
            }
        }
        s.push('\n');
    }
    if reports.len() > 1 {
        terminal_table(&mut s, &p, reports);
    }
    s
}

fn terminal_notes(s: &mut String, notes: &[String]) {
    for n in notes {
        let _ = writeln!(s, "{}", visible(n));
    }
}

fn indented(s: &mut String, p: &Paint, text: &str, error: bool) {
    if text.trim().is_empty() {
        return;
    }
    s.push('\n');
    for line in text.lines() {
        let line = format!("  {}", visible(line));
        let _ = writeln!(s, "{}", if error { p.red(&line) } else { line });
    }
}

fn terminal_table(s: &mut String, p: &Paint, reports: &[ProjectReport]) {
    let rows: Vec<[String; 4]> = reports
        .iter()
        .map(|r| {
            [
                r.project.to_string(),
                r.dir.to_string(),
                r.workspace.to_string(),
                visible(&result_text(&r.outcome, false)),
            ]
        })
        .collect();
    let header = ["PROJECT", "DIR", "WORKSPACE", "RESULT"].map(String::from);
    let width = |c: usize| {
        rows.iter()
            .chain(std::iter::once(&header))
            .map(|r| r[c].chars().count())
            .max()
            .unwrap_or(0)
    };
    let widths = [width(0), width(1), width(2)];
    let line = |r: &[String; 4]| {
        let mut l = String::new();
        for (c, w) in widths.iter().enumerate() {
            let _ = write!(l, "{:<w$}  ", r[c], w = w);
        }
        l.push_str(&r[3]);
        l
    };
    let _ = writeln!(s, "{}", p.bold(&line(&header)));
    for r in &rows {
        let _ = writeln!(s, "{}", line(r));
    }
}

/// Control characters (ESC above all) shown as Unicode control pictures instead of obeyed.
fn visible(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\t' => c,
            c if (c as u32) < 0x20 => char::from_u32(0x2400 + c as u32).unwrap_or('?'),
            '\u{7f}' => '\u{2421}',
            c if c.is_control() => '\u{fffd}',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests;
