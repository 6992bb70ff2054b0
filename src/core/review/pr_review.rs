//! The plan as a pull-request review: one review per push (event `COMMENT`) whose line comments
//! sit on the configuration that causes each destroy, replace and (configurably) other change,
//! and whose body is the summary.
//!
//! Where a comment goes, for each change: on the block in the project's own files that causes
//! it (the `module "x"` call for a resource in a module, else the `resource` block), and on the
//! `resource` block in the module's file when the PR's diff shows it; at the block's first line
//! when the diff shows that line, else at the first line of the block it shows. A block with no
//! line in the diff gets a file-level comment (`subject_type: file`) when its file is in the PR,
//! else a mention in the review body, which lists every change anyway. Changes that land on the
//! same line share one comment. Line comments, file comments and body length are bounded, so a
//! plan of any size makes a review of bounded size.
//!
//! Request bodies mirror GitHub's REST API (`@octokit/openapi` 23, `api.github.com`):
//! `POST /repos/{owner}/{repo}/pulls/{pull_number}/reviews` ([`CreateReview`]: `commit_id`,
//! `body`, `event`, `comments[]` with `path`, `line`, `side`, `body`; that endpoint takes no
//! `subject_type`), `POST /repos/{owner}/{repo}/pulls/{pull_number}/comments`
//! ([`CreateReviewComment`], where `subject_type: file` lives), `PUT …/reviews/{review_id}` and
//! `PATCH /repos/{owner}/{repo}/pulls/comments/{comment_id}` (body only). A review cannot be
//! deleted once submitted, so a new push edits the previous one into a pointer
//! ([`supersede`]). Pure: the app sends these.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::consequence::{Consequence, Kind, consequence};
use super::locate::{BlockSpan, Location, Locations, Revision};
use super::marker::{Marker, MarkerKind};
use super::patch::{PrDiff, Side};
use crate::core::plan::render::{code, link};
use crate::core::plan::summary::PlanSummary;
use crate::core::plan::{Plan, ResourceChange};
use crate::core::types::{CommitSha, PrNumber, ProjectDir, ProjectName, Workspace};

/// GitHub's limit for a comment or review body (characters; Sluice counts UTF-8 bytes, which
/// are never fewer).
pub const MAX_BODY: usize = 65_536;

/// Which changes get line comments (`review_comments:` in configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewComments {
    /// Destroys and replacements only (the default: what a reviewer must not miss).
    #[default]
    DestroyAndReplace,
    /// Every change: also creates, in-place updates, forgets, moves, imports.
    AllChanges,
    /// No review at all.
    Off,
}

impl ReviewComments {
    fn wants(self, kind: Kind) -> bool {
        match self {
            ReviewComments::DestroyAndReplace => kind.is_destructive(),
            ReviewComments::AllChanges => true,
            ReviewComments::Off => false,
        }
    }
}

/// Bounds and switches for [`build_review`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReviewOptions {
    pub comments: ReviewComments,
    /// Line comments per review; the rest are mentioned in the body.
    pub max_line_comments: usize,
    /// File-level comments per review: each is a request and a new object of its own.
    pub max_file_comments: usize,
    /// Changes listed per comment (and per project in the body) before "and N more".
    pub max_changes_per_comment: usize,
}

impl Default for ReviewOptions {
    fn default() -> Self {
        ReviewOptions {
            comments: ReviewComments::default(),
            max_line_comments: 50,
            max_file_comments: 5,
            max_changes_per_comment: 20,
        }
    }
}

/// The push being reviewed.
#[derive(Debug, Clone, Copy)]
pub struct ReviewContext<'a> {
    pub pr: PrNumber,
    pub head_sha: &'a CommitSha,
    /// The sticky summary comment, linked from the review body.
    pub summary_url: Option<&'a str>,
    /// The full log (Sluice's UI).
    pub log_url: Option<&'a str>,
}

/// One planned project.
#[derive(Debug, Clone, Copy)]
pub struct ReviewProject<'a> {
    pub project: &'a ProjectName,
    pub dir: &'a ProjectDir,
    pub workspace: &'a Workspace,
    pub plan: &'a Plan,
    /// From [`super::locate::locate`] for this plan.
    pub locations: &'a Locations,
    /// The plan's counts when `plan` holds only part of it ([`super::material`]); `None`
    /// counts `plan` itself.
    pub summary: Option<&'a PlanSummary>,
}

/// `POST /repos/{owner}/{repo}/pulls/{pull_number}/reviews`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateReview {
    /// The head commit the plan was made for; GitHub marks comments outdated when later
    /// commits change their lines.
    pub commit_id: String,
    pub body: String,
    pub event: ReviewEvent,
    pub comments: Vec<DraftReviewComment>,
}

/// Sluice only ever comments: approving is a human's judgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReviewEvent {
    #[serde(rename = "COMMENT")]
    Comment,
}

/// One entry of `comments[]` in [`CreateReview`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DraftReviewComment {
    pub path: String,
    /// The line in the file on `side` (head for `RIGHT`, base for `LEFT`).
    pub line: u32,
    pub side: Side,
    pub body: String,
}

/// `POST /repos/{owner}/{repo}/pulls/{pull_number}/comments`: here, always file-level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateReviewComment {
    pub commit_id: String,
    pub path: String,
    pub body: String,
    pub subject_type: SubjectType,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubjectType {
    Line,
    File,
}

/// `PUT /repos/{owner}/{repo}/pulls/{pull_number}/reviews/{review_id}` and
/// `PATCH /repos/{owner}/{repo}/pulls/comments/{comment_id}`: both take only a body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateBody {
    pub body: String,
}

/// What to send for one push: the review first, then each file-level comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewDraft {
    pub review: CreateReview,
    pub file_comments: Vec<CreateReviewComment>,
}

impl ReviewDraft {
    /// New GitHub objects this draft creates (the review and each file comment; line comments
    /// are part of the review request).
    pub fn new_objects(&self) -> usize {
        1 + self.file_comments.len()
    }
}

/// One change worth a comment, with where it comes from.
struct Finding<'a> {
    project: &'a ProjectName,
    consequence: Consequence,
    location: Option<&'a Location>,
}

/// Where a finding's comment went (the first place, when there are two).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Placed {
    Line {
        path: String,
        line: u32,
    },
    File {
        path: String,
    },
    /// Only in the body.
    Body,
}

/// Where the text being written sits, so it does not repeat what the reader sees.
#[derive(Debug, Clone, Copy)]
enum Here<'a> {
    /// A line comment in this file.
    Line(&'a str),
    /// A line comment on a `module` call in this file.
    Call(&'a str),
    /// A file-level comment on this file.
    File(&'a str),
    /// The review body.
    Body,
}

/// Builds the review for one push, or `None` when review comments are off or no change
/// qualifies (the summary comment still reports every project).
pub fn build_review(
    ctx: &ReviewContext<'_>,
    projects: &[ReviewProject<'_>],
    diff: &PrDiff,
    opts: &ReviewOptions,
) -> Option<ReviewDraft> {
    if opts.comments == ReviewComments::Off {
        return None;
    }
    let mut findings: Vec<Finding<'_>> = Vec::new();
    for p in projects {
        for rc in &p.plan.resource_changes {
            if let Some(c) = wanted(rc, opts.comments) {
                findings.push(Finding {
                    project: p.project,
                    consequence: c,
                    location: p.locations.get(&rc.address),
                });
            }
        }
    }
    if findings.is_empty() {
        return None;
    }
    // Most serious first, then by project and address: the bounded lists keep what matters.
    findings.sort_by(|a, b| {
        (a.consequence.kind, a.project, &a.consequence.address).cmp(&(
            b.consequence.kind,
            b.project,
            &b.consequence.address,
        ))
    });

    // Group by anchor line; remember which findings got one.
    let mut lines: BTreeMap<(String, Side, u32), Vec<usize>> = BTreeMap::new();
    let mut line_order: Vec<(String, Side, u32)> = Vec::new();
    let mut placed = vec![Placed::Body; findings.len()];
    for (i, f) in findings.iter().enumerate() {
        for target in targets(f.location) {
            let side = side_of(target.revision);
            if let Some(line) =
                diff.anchor_line(&target.path, side, target.start_line, target.end_line)
            {
                let key = (target.path.clone(), side, line);
                if !lines.contains_key(&key) {
                    if line_order.len() >= opts.max_line_comments {
                        continue;
                    }
                    line_order.push(key.clone());
                }
                let group = lines.entry(key).or_default();
                if group.last() != Some(&i) {
                    group.push(i);
                }
                if placed[i] == Placed::Body {
                    placed[i] = Placed::Line {
                        path: target.path.clone(),
                        line,
                    };
                }
            }
        }
    }
    // File-level comments for the rest, on the first of their files the PR shows.
    let mut files: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut file_order: Vec<String> = Vec::new();
    for (i, f) in findings.iter().enumerate() {
        if placed[i] != Placed::Body {
            continue;
        }
        let Some(target) = targets(f.location).find(|t| diff.contains(&t.path)) else {
            continue;
        };
        if !files.contains_key(&target.path) {
            if file_order.len() >= opts.max_file_comments {
                continue;
            }
            file_order.push(target.path.clone());
        }
        files.entry(target.path.clone()).or_default().push(i);
        placed[i] = Placed::File {
            path: target.path.clone(),
        };
    }

    // The budget went to the most serious changes; GitHub shows comments by file and line.
    line_order.sort();
    let head = ctx.head_sha.as_str();
    let marker = Marker::new(MarkerKind::ReviewComment, ctx.pr.get()).with_head(head);
    let comments = line_order
        .iter()
        .map(|key| {
            let (path, side, line) = key;
            let group = &lines[key];
            // On a `module` block: say so, the addresses alone do not tell.
            let on_call = group.iter().any(|&i| {
                findings[i]
                    .location
                    .and_then(|l| l.calls.first())
                    .is_some_and(|c| &c.path == path && (c.start_line..=c.end_line).contains(line))
            });
            let here = if on_call {
                Here::Call(path)
            } else {
                Here::Line(path)
            };
            let body = comment_body(&marker, &findings, group, here, opts);
            DraftReviewComment {
                path: path.clone(),
                line: *line,
                side: *side,
                body,
            }
        })
        .collect();
    let file_comments = file_order
        .iter()
        .map(|path| CreateReviewComment {
            commit_id: head.to_string(),
            path: path.clone(),
            body: comment_body(&marker, &findings, &files[path], Here::File(path), opts),
            subject_type: SubjectType::File,
        })
        .collect();
    let body = review_body(ctx, projects, &findings, &placed, opts);
    Some(ReviewDraft {
        review: CreateReview {
            commit_id: head.to_string(),
            body,
            event: ReviewEvent::Comment,
            comments,
        },
        file_comments,
    })
}

fn wanted(rc: &ResourceChange, mode: ReviewComments) -> Option<Consequence> {
    consequence(rc).filter(|c| mode.wants(c.kind))
}

/// The blocks a finding's comment may sit on, in order: the one in the project's own files,
/// then the resource block in its module.
fn targets(location: Option<&Location>) -> impl Iterator<Item = &BlockSpan> {
    let root = location.and_then(Location::root_anchor);
    let inner = location
        .filter(|l| !l.calls.is_empty())
        .and_then(|l| l.block.as_ref());
    root.into_iter().chain(inner)
}

fn side_of(rev: Revision) -> Side {
    match rev {
        Revision::Head => Side::Right,
        Revision::Base => Side::Left,
    }
}

/// `modules/app/main.tf:5` (plus "in the base" for removed configuration).
fn place(span: &BlockSpan) -> String {
    let s = code(&format!("{}:{}", span.path, span.start_line));
    match span.revision {
        Revision::Head => s,
        Revision::Base => format!("{s} (removed by this PR)"),
    }
}

/// Where a finding's code is, beyond what the reader is looking at: the module's block and the
/// calls on the way, or why Sluice cannot say.
fn whereabouts(f: &Finding<'_>, here: Here<'_>) -> String {
    let Some(loc) = f.location else {
        return String::new();
    };
    let mut parts = Vec::new();
    if let Some(block) = &loc.block {
        match here {
            Here::Line(path) | Here::Call(path) if path == block.path => {}
            Here::File(path) if path == block.path => {
                parts.push(format!("its block starts at line {}", block.start_line));
            }
            _ => parts.push(format!("declared at {}", place(block))),
        }
    }
    if loc.calls.len() > 1 {
        let via: Vec<String> = loc.calls[1..].iter().map(place).collect();
        parts.push(format!("through the module call at {}", via.join(", ")));
    }
    if let Some(gap) = &loc.gap {
        parts.push(format!(
            "Sluice cannot point at its block: {}",
            gap.describe()
        ));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" — {}", parts.join("; "))
    }
}

fn comment_body(
    marker: &Marker,
    findings: &[Finding<'_>],
    group: &[usize],
    here: Here<'_>,
    opts: &ReviewOptions,
) -> String {
    let mut s = format!("{marker}\n");
    let projects: Vec<&str> = {
        let mut v: Vec<&str> = group
            .iter()
            .map(|&i| findings[i].project.as_str())
            .collect();
        v.dedup();
        v
    };
    let destructive = group
        .iter()
        .filter(|&&i| findings[i].consequence.kind.is_destructive())
        .count();
    let heading = if destructive > 0 {
        "⚠️ **Sluice plan**"
    } else {
        "**Sluice plan**"
    };
    let through = match here {
        Here::Call(_) => " — through this module call",
        _ => "",
    };
    let _ = writeln!(
        s,
        "{heading} for project {}{through}:\n",
        projects
            .iter()
            .map(|p| code(p))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let max = opts.max_changes_per_comment.max(1);
    for &i in group.iter().take(max) {
        let f = &findings[i];
        let _ = writeln!(
            s,
            "- {} {}{}",
            f.consequence.kind.icon(),
            f.consequence.sentence(),
            whereabouts(f, here)
        );
    }
    if group.len() > max {
        let _ = writeln!(
            s,
            "- … and {} more (see the review summary)",
            group.len() - max
        );
    }
    cap(s)
}

fn review_body(
    ctx: &ReviewContext<'_>,
    projects: &[ReviewProject<'_>],
    findings: &[Finding<'_>],
    placed: &[Placed],
    opts: &ReviewOptions,
) -> String {
    let head = ctx.head_sha.as_str();
    let mut s = format!(
        "{}\n### Sluice plan review for `{}`\n\n",
        Marker::new(MarkerKind::Review, ctx.pr.get()).with_head(head),
        ctx.head_sha.short()
    );
    // Room kept for the closing lines, so they always fit.
    const TAIL_ROOM: usize = 2_000;
    let max = opts.max_changes_per_comment.max(1) * 5;
    let mut dropped = 0usize;
    for p in projects {
        let summary = p
            .summary
            .cloned()
            .unwrap_or_else(|| PlanSummary::from_plan(p.plan));
        let mut block = format!(
            "**{}** (dir {}, workspace {}): {}\n",
            code(p.project.as_str()),
            code(p.dir.as_str()),
            code(p.workspace.as_str()),
            summary.line()
        );
        let mine: Vec<usize> = (0..findings.len())
            .filter(|&i| findings[i].project == p.project)
            .collect();
        for &i in mine.iter().take(max) {
            let f = &findings[i];
            let note = match &placed[i] {
                Placed::Line { path, line } => {
                    format!(" (comment on {})", code(&format!("{path}:{line}")))
                }
                Placed::File { path } => format!(" (comment on {})", code(path)),
                Placed::Body => match (f.location.and_then(Location::root_anchor), f.location) {
                    (Some(span), _) => format!(" ({}, not in this PR's diff)", place(span)),
                    (None, Some(loc)) if loc.gap.is_some() => String::new(),
                    _ => " (no place in the code)".to_string(),
                },
            };
            let _ = writeln!(
                block,
                "- {} {}{}{note}",
                f.consequence.kind.icon(),
                f.consequence.sentence(),
                whereabouts(f, Here::Body)
            );
        }
        if mine.len() > max {
            let _ = writeln!(block, "- … and {} more", mine.len() - max);
        }
        block.push('\n');
        if s.len() + block.len() + TAIL_ROOM > MAX_BODY {
            dropped += 1;
            continue;
        }
        s.push_str(&block);
    }
    if dropped > 0 {
        let _ = writeln!(s, "_{dropped} more projects are in the summary comment._\n");
    }
    let mut links = Vec::new();
    if let Some(url) = ctx.summary_url {
        links.push(format!("summary: {}", link(url)));
    }
    if let Some(url) = ctx.log_url {
        links.push(format!("full log: {}", link(url)));
    }
    if !links.is_empty() {
        let _ = writeln!(s, "The whole plan — {}.", links.join(", "));
    }
    cap(s)
}

/// Cuts a body to GitHub's limit on a `char` boundary (a last resort: bodies are built to fit).
fn cap(mut s: String) -> String {
    crate::core::plan::split::truncate_to(&mut s, MAX_BODY);
    s
}

// ---------------------------------------------------------------------------------------------
// When GitHub refuses a line

/// Whether GitHub's answer to a review (or review comment) request means "a line is not part of
/// the diff": status 422 with one of the messages GitHub gives for it (`line must be part of the
/// diff`, `Line could not be resolved`, …). Other 422s (e.g. a bad `commit_id`) are not.
pub fn is_line_not_in_diff(status: u16, body: &str) -> bool {
    if status != 422 {
        return false;
    }
    let body = body.to_ascii_lowercase();
    [
        "must be part of the diff",
        "line could not be resolved",
        "could not be resolved",
        "diff_hunk",
        "pull_request_review_thread.line",
        "pull_request_review_thread.start_line",
    ]
    .iter()
    .any(|m| body.contains(m))
}

/// The retry after [`is_line_not_in_diff`]: GitHub does not say which comment it refused, and
/// refuses the whole review, so every line comment becomes part of a file-level comment (one per
/// file, up to `opts.max_file_comments` in all; the rest go into the body). The review itself
/// keeps its body.
pub fn file_level_retry(draft: &ReviewDraft, opts: &ReviewOptions) -> ReviewDraft {
    let mut by_path: BTreeMap<&str, Vec<&DraftReviewComment>> = BTreeMap::new();
    for c in &draft.review.comments {
        by_path.entry(c.path.as_str()).or_default().push(c);
    }
    let mut file_comments = draft.file_comments.clone();
    let mut overflow = Vec::new();
    for (path, comments) in by_path {
        // One marker on top, then each comment under the line it was meant for.
        let mut body = match comments.first().and_then(|c| Marker::parse(&c.body)) {
            Some(m) => format!("{m}\n"),
            None => String::new(),
        };
        for (n, c) in comments.iter().enumerate() {
            if n > 0 {
                body.push_str("\n---\n");
            }
            let _ = writeln!(body, "_On line {}:_", c.line);
            body.push_str(strip_marker(&c.body));
        }
        let room = file_comments.len() < opts.max_file_comments;
        match file_comments.iter_mut().find(|f| f.path == path) {
            Some(f) => {
                f.body.push_str("\n---\n");
                f.body.push_str(strip_marker(&body));
                f.body = cap(std::mem::take(&mut f.body));
            }
            None if room => {
                file_comments.push(CreateReviewComment {
                    commit_id: draft.review.commit_id.clone(),
                    path: path.to_string(),
                    body: cap(body),
                    subject_type: SubjectType::File,
                });
            }
            None => overflow.push(format!("`{path}`: {}", first_change_line(&body))),
        }
    }
    let mut review = draft.review.clone();
    review.comments.clear();
    review.body.push_str(
        "\n_GitHub did not accept comments on these lines, so they are on the files instead._\n",
    );
    for line in overflow {
        review.body.push_str(&format!("- {line}\n"));
    }
    review.body = cap(review.body);
    ReviewDraft {
        review,
        file_comments,
    }
}

/// One line comment as a file-level comment of its own (for a single
/// `POST …/pulls/{pull_number}/comments` that GitHub refused with [`is_line_not_in_diff`]).
pub fn to_file_level(commit_id: &str, comment: &DraftReviewComment) -> CreateReviewComment {
    CreateReviewComment {
        commit_id: commit_id.to_string(),
        path: comment.path.clone(),
        body: comment.body.clone(),
        subject_type: SubjectType::File,
    }
}

fn strip_marker(body: &str) -> &str {
    match Marker::parse(body) {
        Some(_) => body.split_once('\n').map_or("", |(_, rest)| rest),
        None => body,
    }
}

fn first_change_line(body: &str) -> String {
    body.lines()
        .find(|l| l.starts_with("- "))
        .map(|l| l.trim_start_matches("- ").to_string())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// A new push

/// A review Sluice posted earlier, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostedReview {
    pub review_id: u64,
    pub head_sha: CommitSha,
    /// Its line comments and the file-level comments sent with it.
    pub comment_ids: Vec<u64>,
}

/// The edits that retire a previous review once a newer one is posted: its body and each of
/// its comments become a one-line pointer (a submitted review cannot be deleted; editing keeps
/// the thread quiet and never creates anything).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Supersede {
    /// For `PUT …/reviews/{review_id}`.
    pub review: (u64, UpdateBody),
    /// For `PATCH …/pulls/comments/{comment_id}`, one per comment.
    pub comments: Vec<(u64, UpdateBody)>,
}

/// Retires `previous` in favour of the review for `ctx.head_sha`.
pub fn supersede(ctx: &ReviewContext<'_>, previous: &PostedReview) -> Supersede {
    let old = previous.head_sha.as_str();
    let newer = match ctx.summary_url {
        Some(url) => format!("the plan for `{}` ({})", ctx.head_sha.short(), link(url)),
        None => format!("the plan for `{}`", ctx.head_sha.short()),
    };
    let review = format!(
        "{}\n~~Sluice plan review for `{}`~~ — superseded by {newer}.\n",
        Marker::new(MarkerKind::Review, ctx.pr.get())
            .with_head(old)
            .superseded(),
        previous.head_sha.short()
    );
    let comment = format!(
        "{}\n_Superseded: this comment was about commit `{}`; see the newest Sluice review for {newer}._\n",
        Marker::new(MarkerKind::ReviewComment, ctx.pr.get())
            .with_head(old)
            .superseded(),
        previous.head_sha.short()
    );
    Supersede {
        review: (previous.review_id, UpdateBody { body: review }),
        comments: previous
            .comment_ids
            .iter()
            .map(|&id| {
                (
                    id,
                    UpdateBody {
                        body: comment.clone(),
                    },
                )
            })
            .collect(),
    }
}

/// Which reviews stand once a review was posted, and which must be edited into pointers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    /// The PR's current review (the one a later push supersedes).
    pub current: Option<PostedReview>,
    /// Reviews to supersede, each pointing at `newer`.
    pub retire: Vec<PostedReview>,
    /// The head the retired reviews point at.
    pub newer: CommitSha,
}

/// Settles the PR's reviews after `posted` was created. `latest_head` is the newest head
/// Sluice has seen for the PR (`None`: unknown, `posted` is taken as current).
///
/// A review is late when the PR moved to another head before it was posted (its plan
/// finished, or its write was delivered, after a newer push): it is retired at once in favour
/// of the newest head, and never displaces the review of that head. Otherwise it becomes
/// current and the previous one is retired.
pub fn settle_posted(
    posted: PostedReview,
    previous: Option<PostedReview>,
    latest_head: Option<&CommitSha>,
) -> Settled {
    let previous = previous.filter(|p| p.review_id != posted.review_id);
    match latest_head {
        Some(latest) if *latest != posted.head_sha => {
            let (current, mut retire) = match previous {
                Some(p) if p.head_sha == *latest => (Some(p), Vec::new()),
                other => (None, other.into_iter().collect()),
            };
            retire.push(posted);
            Settled {
                current,
                retire,
                newer: latest.clone(),
            }
        }
        _ => Settled {
            newer: posted.head_sha.clone(),
            current: Some(posted),
            retire: previous.into_iter().collect(),
        },
    }
}

/// Whether a plan of `head` is late: the PR's newest head is another commit.
pub fn is_late(head: &CommitSha, latest_head: Option<&CommitSha>) -> bool {
    latest_head.is_some_and(|latest| latest != head)
}

#[cfg(test)]
mod tests;
