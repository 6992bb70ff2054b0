//! The one summary comment per PR, edited in place on every run: a table of projects × status ×
//! `+ ~ - ±` counts × policy × lock × next command for the newest run, earlier runs folded
//! below it, and each project's detailed output in a fold when everything fits GitHub's
//! 65,536-character limit — otherwise in follow-up comments with stable slot numbers that the
//! next run edits rather than re-posts.
//!
//! This module renders bodies and says which slots to write; it does not know comment ids. The
//! app keeps, per PR, the sticky comment's id, the ids of the follow-up slots and how many of
//! them hold live content, and a short history ([`PastRun`]). Finding a comment again when the
//! store lost it, or recreating one a human deleted, is [`upsert`]'s decision. Splitting reuses
//! `core::plan::split` (fence- and `<details>`-safe).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::marker::{Marker, MarkerKind};
use crate::core::plan::render::{cell, code, link, project_section, result_text};
use crate::core::plan::split::{Frame, split_markdown};
use crate::core::plan::{
    CommandName, CommentLimits, PlanSummary, ProjectOutcome, ProjectReport, RenderContext,
};
use crate::core::types::{CommitSha, PrNumber};

/// GitHub's limit for an issue comment body.
pub const MAX_COMMENT: usize = 65_536;

/// Sizes of the sticky comment and its follow-ups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StickyLimits {
    /// Per body, in UTF-8 bytes (never fewer than characters).
    pub max_chars: usize,
    /// Follow-up comments for details; beyond them, details are cut (full log linked).
    pub max_follow_ups: u32,
    /// Earlier runs listed in the fold.
    pub max_history: usize,
}

impl Default for StickyLimits {
    fn default() -> Self {
        StickyLimits {
            max_chars: MAX_COMMENT,
            max_follow_ups: 10,
            max_history: 10,
        }
    }
}

/// Everything about the PR that is not per run.
#[derive(Debug, Clone, Copy)]
pub struct StickyContext<'a> {
    pub pr: PrNumber,
    /// The word users type (`sluice`).
    pub bot_name: &'a str,
    /// Set when Sluice cannot create check runs (token mode without the Checks permission):
    /// the summary says so once, with this reason, and commit statuses carry the results.
    pub statuses_only: Option<&'a str>,
    pub limits: StickyLimits,
    /// Projects of this run applied only after merge (`apply_mode: on_merge`): their folds
    /// point to the merge, not to an `apply` comment.
    pub after_merge: &'a std::collections::BTreeSet<crate::core::types::ProjectName>,
}

/// A policy result for one project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "snake_case")]
pub enum PolicyCell {
    /// No policy applies (or it was not evaluated, e.g. the plan failed).
    None,
    Passed,
    /// Passes, with warnings from these policies (`on_failure: warn`).
    Warned {
        policies: Vec<String>,
    },
    /// Waits for approvals these policies require (the apply will need them).
    Pending {
        policies: Vec<String>,
    },
    /// Fails: these policies block the apply (empty when the policies could not be read).
    Failed {
        policies: Vec<String>,
    },
    /// Failed, and overridden by `approve_policies`.
    Overridden {
        by: String,
    },
}

/// Who holds the project's lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "lock", rename_all = "snake_case")]
pub enum LockCell {
    None,
    ThisPr,
    OtherPr { pr: u64 },
}

impl LockCell {
    /// The cell for a project whose lock `holder` has now (`None`: unlocked), seen from `pr`:
    /// another PR is named, so a reader knows whom a queued or refused project waits for.
    pub fn of(holder: Option<PrNumber>, pr: PrNumber) -> LockCell {
        match holder {
            Some(h) if h == pr => LockCell::ThisPr,
            Some(h) => LockCell::OtherPr { pr: h.get() },
            None => LockCell::None,
        }
    }
}

/// One project of the newest run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StickyRow {
    /// The outcome, with its (redacted) diff or error text for the details.
    pub report: ProjectReport,
    pub policy: PolicyCell,
    pub lock: LockCell,
    /// The comment to type next (`sluice apply -p prod`), when there is one.
    pub next: Option<String>,
    /// This project's log in Sluice's UI; the project's name links to it.
    #[serde(default)]
    pub log_url: Option<String>,
}

/// The newest run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StickyRun {
    pub head_sha: CommitSha,
    pub command: CommandName,
    /// When it finished, as shown (`2026-11-22 15:03 UTC`); the app formats its clock.
    pub at: String,
    /// The run's full log in Sluice's UI.
    pub log_url: Option<String>,
    pub rows: Vec<StickyRow>,
}

/// An earlier run, as the app keeps it for the history fold (small: no outputs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PastRun {
    pub head_sha: CommitSha,
    pub command: CommandName,
    pub at: String,
    /// `3 projects: 2 with changes, 1 failed`.
    pub tally: String,
    pub log_url: Option<String>,
}

impl PastRun {
    /// What to keep of `run` once a newer run replaces it on top.
    pub fn of(run: &StickyRun) -> PastRun {
        PastRun {
            head_sha: run.head_sha.clone(),
            command: run.command,
            at: run.at.clone(),
            tally: tally(&run.rows),
            log_url: run.log_url.clone(),
        }
    }
}

/// Adds `run` to `history` (newest first), keeping at most `max`: on top, unless `run` is
/// late — a run of a head the PR has since left (`latest`: the PR's head now, `None` when
/// unknown) — then below the runs of the latest head, which stay on top.
pub fn record_run(
    history: &mut Vec<PastRun>,
    run: PastRun,
    latest: Option<&CommitSha>,
    max: usize,
) {
    let at = match latest {
        Some(latest) if *latest != run.head_sha => {
            history.iter().take_while(|h| h.head_sha == *latest).count()
        }
        _ => 0,
    };
    history.insert(at, run);
    history.truncate(max);
}

/// A follow-up comment's body, by slot (1-based, stable across runs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowUp {
    pub slot: u32,
    pub body: String,
}

/// What to write for one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sticky {
    /// The summary comment.
    pub body: String,
    /// Slots `1..=n` with this run's details: edit the existing comment of each slot, create
    /// the missing ones.
    pub follow_ups: Vec<FollowUp>,
    /// Live slots this run no longer needs: edit each into a "superseded" note.
    pub retire: Vec<FollowUp>,
}

/// Renders the summary for `run`, with `history` (newest first) folded below it. `live_slots`
/// is how many follow-up slots (from 1) hold content from earlier runs.
pub fn render_sticky(
    ctx: &StickyContext<'_>,
    run: &StickyRun,
    history: &[PastRun],
    live_slots: u32,
) -> Sticky {
    let max = ctx
        .limits
        .max_chars
        .max(crate::core::plan::render::MIN_COMMENT_CHARS);
    let render = RenderContext {
        bot_name: ctx.bot_name.to_string(),
        command: run.command,
        head_sha: Some(run.head_sha.clone()),
        log_url: run.log_url.clone(),
        limits: CommentLimits {
            max_chars: max,
            max_comments: ctx.limits.max_follow_ups as usize,
        },
        after_merge: ctx.after_merge.clone(),
    };
    let details: Vec<String> = run
        .rows
        .iter()
        .map(|r| detail_block(&render, r, None))
        .collect();
    let detail_len: usize = details.iter().map(String::len).sum();

    // Everything in one comment when it fits.
    let inline = head(ctx, run, history, max, Placement::Inline);
    if inline.len() + detail_len + 40 <= max {
        let mut body = inline;
        if detail_len > 0 {
            body.push_str("\n#### Details\n\n");
        }
        for d in &details {
            body.push_str(d);
        }
        return Sticky {
            body,
            follow_ups: Vec::new(),
            retire: retire(ctx, run, 0, live_slots),
        };
    }

    // Otherwise: details in follow-ups, cut (largest first) until they fit the slots.
    let frame = |i: usize, n: usize| Frame {
        head: format!(
            "{}\n**{} details** for `{}` (part {i} of {n}) — the summary is in the comment above.\n\n",
            Marker::new(MarkerKind::Detail { slot: i as u32 }, ctx.pr.get())
                .with_head(run.head_sha.as_str()),
            ctx.bot_name,
            run.head_sha.short()
        ),
        tail: String::new(),
    };
    let slots = ctx.limits.max_follow_ups.max(1) as usize;
    let mut parts = split_markdown(&details, max, frame);
    let mut cap = detail_len;
    while parts.len() > slots && cap > 0 {
        // Aim at the room the slots have, then shrink further if the frames cost more.
        let room = slots * max.saturating_sub(frame(99, 99).len() + 400);
        cap = if cap == detail_len {
            room / run.rows.len().max(1)
        } else {
            cap * 3 / 4
        };
        let capped: Vec<String> = run
            .rows
            .iter()
            .map(|r| detail_block(&render, r, Some(cap)))
            .collect();
        parts = split_markdown(&capped, max, frame);
    }
    let body = head(ctx, run, history, max, Placement::FollowUps(parts.len()));
    let follow_ups: Vec<FollowUp> = parts
        .into_iter()
        .enumerate()
        .map(|(i, body)| FollowUp {
            slot: i as u32 + 1,
            body,
        })
        .collect();
    let used = follow_ups.len() as u32;
    Sticky {
        body,
        follow_ups,
        retire: retire(ctx, run, used, live_slots),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placement {
    Inline,
    FollowUps(usize),
}

fn retire(ctx: &StickyContext<'_>, run: &StickyRun, used: u32, live: u32) -> Vec<FollowUp> {
    (used + 1..=live)
        .map(|slot| FollowUp {
            slot,
            body: format!(
                "{}\n_No longer used: the details of the run for `{}` are in the summary comment{}._\n",
                Marker::new(MarkerKind::Detail { slot }, ctx.pr.get()).superseded(),
                run.head_sha.short(),
                if used > 0 { " and the comments before this one" } else { "" }
            ),
        })
        .collect()
}

/// The summary without details: title, table, notes, history.
fn head(
    ctx: &StickyContext<'_>,
    run: &StickyRun,
    history: &[PastRun],
    max: usize,
    placement: Placement,
) -> String {
    let mut s = format!("{}\n", Marker::new(MarkerKind::Sticky, ctx.pr.get()));
    let _ = writeln!(
        s,
        "## {} {} · `{}` · {}\n",
        ctx.bot_name,
        run.command.as_str(),
        run.head_sha.short(),
        run.at
    );
    let _ = writeln!(s, "**{}**\n", tally(&run.rows));

    // The closing part is rendered first so the table knows how much room it has.
    let mut tail = String::new();
    if let Some(why) = ctx.statuses_only {
        let _ = writeln!(
            tail,
            "ℹ️ Results are reported as commit statuses, not check runs: {why}\n"
        );
    }
    match placement {
        Placement::Inline => {}
        Placement::FollowUps(n) => {
            let _ = writeln!(
                tail,
                "Detailed output is in the {} below (edited on every run).\n",
                if n == 1 {
                    "comment".to_string()
                } else {
                    format!("{n} comments")
                }
            );
        }
    }
    if let Some(url) = &run.log_url {
        let _ = writeln!(tail, "Full log: {}\n", link(url));
    }
    let earlier = history_fold(history, ctx.limits.max_history);
    let room = max.saturating_sub(s.len() + tail.len() + earlier.len() + 200);
    s.push_str(&table(run, room));
    s.push_str(&tail);
    s.push_str(&earlier);
    s
}

fn table(run: &StickyRun, room: usize) -> String {
    if run.rows.is_empty() {
        return match run.command {
            CommandName::Plan => "No Terraform project is affected by this pull request.\n\n",
            CommandName::Apply => "Nothing to apply.\n\n",
        }
        .to_string();
    }
    let header = "| Project | Status | + | ~ | - | ± | Policy | Lock | Next |\n\
                  |---|---|--:|--:|--:|--:|---|---|---|\n";
    let legend = "_+ add, ~ change, - destroy, ± replace (also counted in + and -)._\n\n";
    let rows: Vec<String> = run.rows.iter().map(row).collect();
    // When the table is too long, the projects that need attention stay.
    let mut keep = vec![false; rows.len()];
    let mut used = header.len() + legend.len() + 120;
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by_key(|&i| attention(&run.rows[i]));
    for i in order {
        if used + rows[i].len() <= room {
            used += rows[i].len();
            keep[i] = true;
        }
    }
    let mut s = String::from(header);
    for (i, r) in rows.iter().enumerate() {
        if keep[i] {
            s.push_str(r);
        }
    }
    let left_out = keep.iter().filter(|k| !**k).count();
    if left_out > 0 {
        let _ = writeln!(
            s,
            "\n_{left_out} more projects without changes or problems are not listed; the full log has them._"
        );
    }
    s.push('\n');
    s.push_str(legend);
    s
}

/// Lower is more urgent.
fn attention(r: &StickyRow) -> u8 {
    match &r.report.outcome {
        ProjectOutcome::PlanFailed { .. }
        | ProjectOutcome::ApplyFailed { .. }
        | ProjectOutcome::Removed { .. } => 0,
        _ if matches!(r.policy, PolicyCell::Failed { .. }) => 0,
        ProjectOutcome::Planned { summary, .. } if summary.destroy > 0 => 1,
        ProjectOutcome::Planned { summary, .. } if summary.has_changes() => 2,
        ProjectOutcome::Skipped { .. } => 3,
        _ => 4,
    }
}

/// `❌ failed: `a`, `b``, or the word alone when no policy is named.
fn named(word: &str, policies: &[String]) -> String {
    if policies.is_empty() {
        return word.to_string();
    }
    let names: Vec<String> = policies.iter().map(|p| code(p)).collect();
    format!("{word}: {}", names.join(", "))
}

fn row(r: &StickyRow) -> String {
    let (status, counts) = status(&r.report.outcome);
    let n = |v: usize| {
        if v == 0 {
            "·".to_string()
        } else {
            v.to_string()
        }
    };
    let [add, change, destroy, replace] = match counts {
        Some(c) => [n(c.add), n(c.change), n(c.destroy), n(c.replace)],
        None => ["".into(), "".into(), "".into(), "".into()],
    };
    let policy = match &r.policy {
        PolicyCell::None => "—".to_string(),
        PolicyCell::Passed => "✅ passed".to_string(),
        PolicyCell::Warned { policies } => named("⚠️ warned", policies),
        PolicyCell::Pending { policies } => named("⏳ needs approvals", policies),
        PolicyCell::Failed { policies } => named("❌ failed", policies),
        PolicyCell::Overridden { by } => format!("☑️ overridden by {}", code(by)),
    };
    let lock = match &r.lock {
        LockCell::None => "—".to_string(),
        LockCell::ThisPr => "🔒 this PR".to_string(),
        LockCell::OtherPr { pr } => format!("⏳ #{pr}"),
    };
    let next = r.next.as_deref().map_or("—".to_string(), code);
    let name = match &r.log_url {
        Some(url) => format!(
            "[{}]({})",
            code(r.report.project.as_str()),
            link_target(url)
        ),
        None => code(r.report.project.as_str()),
    };
    format!(
        "| {} | {} | {add} | {change} | {destroy} | {replace} | {} | {} | {} |\n",
        cell(&name),
        cell(&status),
        cell(&policy),
        cell(&lock),
        cell(&next)
    )
}

/// Text safe inside HTML.
fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A URL as a markdown link target: characters that would end it are percent-encoded.
fn link_target(url: &str) -> String {
    let mut s = String::with_capacity(url.len());
    for c in url.chars() {
        match c {
            '(' => s.push_str("%28"),
            ')' => s.push_str("%29"),
            ' ' => s.push_str("%20"),
            '|' => s.push_str("%7C"),
            '<' => s.push_str("%3C"),
            '>' => s.push_str("%3E"),
            c if c.is_control() => {}
            c => s.push(c),
        }
    }
    s
}

fn status(o: &ProjectOutcome) -> (String, Option<&PlanSummary>) {
    match o {
        ProjectOutcome::Planned { summary, .. } => {
            let s = if summary.destroy > 0 {
                "⚠️ destroys"
            } else if summary.has_changes() {
                "🟡 changes"
            } else {
                "✅ no changes"
            };
            (s.to_string(), Some(summary))
        }
        ProjectOutcome::PlanFailed { stage, .. } => (format!("❌ {stage} failed"), None),
        ProjectOutcome::Applied { summary, .. } => ("✅ applied".to_string(), summary.as_ref()),
        ProjectOutcome::ApplyFailed { .. } => ("❌ apply failed".to_string(), None),
        ProjectOutcome::Skipped { reason } => (format!("⏭️ {reason}"), None),
        ProjectOutcome::Removed { .. } => (
            format!("🗑️ {}", crate::core::reply::removed::table_line()),
            None,
        ),
    }
}

/// `3 projects: 2 with changes, 1 failed`
fn tally(rows: &[StickyRow]) -> String {
    let counted = crate::core::plan::render::tally_of(rows.iter().map(|r| &r.report));
    let projects = if rows.len() == 1 {
        "project"
    } else {
        "projects"
    };
    if counted.is_empty() {
        format!("{} {projects}", rows.len())
    } else {
        format!("{} {projects}: {counted}", rows.len())
    }
}

fn history_fold(history: &[PastRun], max: usize) -> String {
    if history.is_empty() || max == 0 {
        return String::new();
    }
    let mut s = format!(
        "<details><summary>Earlier runs ({})</summary>\n\n",
        history.len().min(max)
    );
    for h in history.iter().take(max) {
        let _ = write!(
            s,
            "- `{}` at `{}` · {} · {}",
            h.command.as_str(),
            h.head_sha.short(),
            h.at,
            h.tally
        );
        if let Some(url) = &h.log_url {
            let _ = write!(s, " · {}", link(url));
        }
        s.push('\n');
    }
    s.push_str("\n</details>\n");
    s
}

/// One project's detailed output in a fold: the same section the per-run comment shows
/// (`core::plan::render::project_section`: destroy warnings, summary, notes, diff or error,
/// removal explanation, the commands to type next). With `cap`, its diff keeps its first `cap`
/// bytes and its error its end, with the full log linked. Empty for a project without changes,
/// notes or warnings: its table row says all there is.
fn detail_block(render: &RenderContext, r: &StickyRow, cap: Option<usize>) -> String {
    let report = &r.report;
    let quiet = matches!(&report.outcome, ProjectOutcome::Planned { summary, .. } if !summary.has_changes())
        && report.notes.is_empty()
        && !report.destroy_plan;
    if quiet {
        return String::new();
    }
    // HTML inside `<summary>`: markdown there is not rendered everywhere.
    let mut s = format!(
        "<details><summary><code>{}</code> · {}</summary>\n\n",
        html(report.project.as_str()),
        html(&result_text(&report.outcome, true))
    );
    s.push_str(&project_section(render, report, cap));
    s.push_str("</details>\n\n");
    s
}

// ---------------------------------------------------------------------------------------------
// Finding the comment again

/// An issue comment on the PR, as listed by `GET /repos/{owner}/{repo}/issues/{n}/comments`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedComment {
    pub id: u64,
    /// Whether Sluice (its App or token user) wrote it: markers typed by others are ignored.
    pub by_sluice: bool,
    pub body: String,
}

/// Whether to edit a comment or create one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upsert {
    Edit { comment_id: u64 },
    Create,
}

/// Where the comment of `kind` goes: the stored id when that comment still exists, else a
/// comment of Sluice's carrying the marker (the newest, when the store lost the id), else a new
/// one. `listed: None` means the app did not list the comments (it then edits the stored id and,
/// on 404, creates — see [`after_edit_failed`]).
pub fn upsert(
    kind: MarkerKind,
    pr: PrNumber,
    stored: Option<u64>,
    listed: Option<&[ListedComment]>,
) -> Upsert {
    let Some(listed) = listed else {
        return match stored {
            Some(comment_id) => Upsert::Edit { comment_id },
            None => Upsert::Create,
        };
    };
    let ours = |c: &&ListedComment| {
        c.by_sluice && Marker::parse(&c.body).is_some_and(|m| m.kind == kind && m.pr == pr.get())
    };
    if let Some(id) = stored {
        if listed.iter().filter(ours).any(|c| c.id == id) {
            return Upsert::Edit { comment_id: id };
        }
    }
    match listed.iter().filter(ours).max_by_key(|c| c.id) {
        Some(c) => Upsert::Edit { comment_id: c.id },
        None => Upsert::Create,
    }
}

/// After an edit failed with `status`: a comment deleted by a human (404, 410) is created
/// again; anything else is an error for the caller's retry policy.
pub fn after_edit_failed(status: u16) -> Option<Upsert> {
    matches!(status, 404 | 410).then_some(Upsert::Create)
}

#[cfg(test)]
mod tests;
