//! The writes of one push: from what the store knows about a PR's GitHub objects (the sticky
//! comment, its follow-up slots, the previous review) and what the core rendered for the new
//! head (summary, review, check runs, statuses), the keyed writes to hand to the
//! [`super::budget::WriteBudget`].
//!
//! This is where "a push creates a small constant number of new objects" is decided: the
//! sticky comment and its slots are edited when they exist, the previous review is edited into
//! a pointer, and only the review, its file comments (bounded), the check runs (bounded per
//! head) and statuses are new. Pure: ids come from the store, bodies from the renderers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::budget::{Write, WriteKind};
use super::checks::{CheckRunDraft, CreateCheckRun, UpdateCheckRun};
use super::pr_review::{
    CreateReview, CreateReviewComment, PostedReview, ReviewContext, ReviewDraft, UpdateBody,
    supersede,
};
use super::sticky::Sticky;
use crate::core::plan::split::truncate_to;
use crate::core::types::{CommitSha, PrNumber};

/// GitHub refuses a commit status `description` longer than this.
pub const MAX_STATUS_DESCRIPTION: usize = 140;

/// One request to GitHub, with what the sender needs to make it. Serialized (tagged by
/// `request`) when it waits in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum GitHubWrite {
    /// `POST /repos/{o}/{r}/issues/{n}/comments`; the sender stores the new id under the
    /// write's key (the sticky comment, or follow-up slot `n`).
    CreateIssueComment { body: String },
    /// `PATCH /repos/{o}/{r}/issues/comments/{comment_id}`; on 404 (deleted by a human) the
    /// sender creates it again (`sticky::after_edit_failed`).
    EditIssueComment { comment_id: u64, body: String },
    /// `POST /repos/{o}/{r}/pulls/{n}/reviews`; on 422 "line not in the diff" the sender
    /// retries with `pr_review::file_level_retry`. It stores the review id and its comments'
    /// ids as the PR's [`PostedReview`].
    CreateReview(CreateReview),
    /// `PUT /repos/{o}/{r}/pulls/{n}/reviews/{review_id}`
    UpdateReview { review_id: u64, body: UpdateBody },
    /// `POST /repos/{o}/{r}/pulls/{n}/comments` (file-level); its id joins the posted review's.
    CreateReviewComment(CreateReviewComment),
    /// `PATCH /repos/{o}/{r}/pulls/comments/{comment_id}`
    EditReviewComment { comment_id: u64, body: UpdateBody },
    /// `POST /repos/{o}/{r}/check-runs`; the sender keeps the id under the write's key.
    CreateCheckRun(CreateCheckRun),
    /// `PATCH /repos/{o}/{r}/check-runs/{id}` for the check run created under the same key
    /// (the budget sends it only after the creation finished).
    AppendAnnotations(UpdateCheckRun),
    /// `POST /repos/{o}/{r}/statuses/{sha}`
    CreateStatus { sha: String, status: CommitStatus },
}

/// The body of `POST /repos/{owner}/{repo}/statuses/{sha}` (token mode, where check runs are
/// not available).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitStatus {
    pub state: StatusState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_url: Option<String>,
    /// At most [`MAX_STATUS_DESCRIPTION`] characters (cut by [`CommitStatus::new`]).
    pub description: String,
    /// `sluice/plan`, `sluice/apply`, `sluice/policy`.
    pub context: String,
}

impl CommitStatus {
    pub fn new(
        context: &str,
        state: StatusState,
        description: &str,
        target_url: Option<&str>,
    ) -> Self {
        let mut description: String = description.split_whitespace().collect::<Vec<_>>().join(" ");
        if description.chars().count() > MAX_STATUS_DESCRIPTION {
            description = description
                .chars()
                .take(MAX_STATUS_DESCRIPTION - 1)
                .collect();
            description.push('…');
        }
        truncate_to(&mut description, 4 * MAX_STATUS_DESCRIPTION);
        CommitStatus {
            state,
            target_url: target_url.map(str::to_string),
            description,
            context: context.to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusState {
    Error,
    Failure,
    Pending,
    Success,
}

/// What the store knows about a PR's GitHub objects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PrObjects {
    pub sticky_comment_id: Option<u64>,
    /// Follow-up comment ids by slot.
    pub follow_up_ids: BTreeMap<u32, u64>,
    /// Slots `1..=live_slots` hold content (the others were retired).
    pub live_slots: u32,
    /// The last review Sluice posted, not yet superseded.
    pub review: Option<PostedReview>,
    /// Earlier runs shown in the summary comment's history fold, newest first.
    pub history: Vec<super::sticky::PastRun>,
}

/// Everything rendered for one head.
#[derive(Debug, Clone, Default)]
pub struct PushOutput {
    /// `None` when the summary comment is not updated by this write set.
    pub sticky: Option<Sticky>,
    pub review: Option<ReviewDraft>,
    /// Per-project check runs.
    pub project_checks: Vec<CheckRunDraft>,
    /// `sluice/plan` and `sluice/apply-gate`.
    pub head_checks: Vec<CreateCheckRun>,
    /// Token mode: commit statuses instead of check runs.
    pub statuses: Vec<CommitStatus>,
}

/// The key of the sticky comment of a PR.
pub fn sticky_key(pr: PrNumber) -> String {
    format!("pr/{}/sticky", pr.get())
}

/// The key of follow-up slot `slot`.
pub fn follow_up_key(pr: PrNumber, slot: u32) -> String {
    format!("pr/{}/detail/{slot}", pr.get())
}

/// The key of the review of `head`.
pub fn review_key(pr: PrNumber, head: &CommitSha) -> String {
    format!("pr/{}/review/{head}", pr.get())
}

/// The key of a check run (its creation and its annotation batches share it).
pub fn check_key(head: &str, external_id: &str) -> String {
    format!("check/{head}/{external_id}")
}

/// The writes for one push, in the order they should be queued.
pub fn push_writes(
    ctx: &ReviewContext<'_>,
    known: &PrObjects,
    out: PushOutput,
) -> Vec<Write<GitHubWrite>> {
    let pr = ctx.pr;
    let mut writes = Vec::new();
    let mut push = |key: String, kind: WriteKind, payload: GitHubWrite| {
        writes.push(Write { key, kind, payload })
    };

    if let Some(sticky) = out.sticky {
        match known.sticky_comment_id {
            Some(comment_id) => push(
                sticky_key(pr),
                WriteKind::EditIssueComment,
                GitHubWrite::EditIssueComment {
                    comment_id,
                    body: sticky.body,
                },
            ),
            None => push(
                sticky_key(pr),
                WriteKind::CreateIssueComment,
                GitHubWrite::CreateIssueComment { body: sticky.body },
            ),
        }
        for f in sticky.follow_ups.into_iter().chain(sticky.retire) {
            let key = follow_up_key(pr, f.slot);
            match known.follow_up_ids.get(&f.slot) {
                Some(&comment_id) => push(
                    key,
                    WriteKind::EditIssueComment,
                    GitHubWrite::EditIssueComment {
                        comment_id,
                        body: f.body,
                    },
                ),
                None => push(
                    key,
                    WriteKind::CreateIssueComment,
                    GitHubWrite::CreateIssueComment { body: f.body },
                ),
            }
        }
    }

    // The previous review becomes a pointer whether or not this push has one of its own: its
    // comments are about an older commit.
    if let Some(previous) = &known.review {
        let s = supersede(ctx, previous);
        push(
            format!("pr/{}/review-id/{}", pr.get(), s.review.0),
            WriteKind::UpdateReview,
            GitHubWrite::UpdateReview {
                review_id: s.review.0,
                body: s.review.1,
            },
        );
        for (comment_id, body) in s.comments {
            push(
                format!("pr/{}/review-comment/{comment_id}", pr.get()),
                WriteKind::EditReviewComment,
                GitHubWrite::EditReviewComment { comment_id, body },
            );
        }
    }
    if let Some(review) = out.review {
        let key = review_key(pr, ctx.head_sha);
        push(
            key.clone(),
            WriteKind::CreateReview,
            GitHubWrite::CreateReview(review.review),
        );
        // Queued after the review: among new objects, the budget keeps queue order.
        for c in review.file_comments {
            push(
                format!("{key}/file/{}", c.path),
                WriteKind::CreateReviewComment,
                GitHubWrite::CreateReviewComment(c),
            );
        }
    }

    for check in out.head_checks {
        push(
            check_key(&check.head_sha, &check.external_id),
            WriteKind::CreateCheckRun,
            GitHubWrite::CreateCheckRun(check),
        );
    }
    for draft in out.project_checks {
        let key = check_key(&draft.create.head_sha, &draft.create.external_id);
        push(
            key.clone(),
            WriteKind::CreateCheckRun,
            GitHubWrite::CreateCheckRun(draft.create),
        );
        for batch in draft.more_annotations {
            push(
                key.clone(),
                WriteKind::AppendAnnotations,
                GitHubWrite::AppendAnnotations(batch),
            );
        }
    }
    for status in out.statuses {
        push(
            format!("status/{}/{}", ctx.head_sha, status.context),
            WriteKind::CreateStatus,
            GitHubWrite::CreateStatus {
                sha: ctx.head_sha.as_str().to_string(),
                status,
            },
        );
    }
    writes
}

#[cfg(test)]
mod tests;
