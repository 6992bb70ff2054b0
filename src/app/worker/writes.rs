//! The review, summary comment and check run writes of the outbox, sent through one
//! [`WriteBudget`] (GitHub's secondary limits: writes per minute and per hour, one at a time, a
//! gap between starts, a pause after a limit answer). The outbox keeps them durable; the budget
//! only paces, so a restart loses the pacing history and nothing else.
//!
//! What a write creates is remembered for the next push (`Store::save_pr_objects`,
//! `Store::save_check_run_id`), so later pushes edit instead of posting again. Faults get the
//! answer PRODUCT.md §17 names: a sticky comment deleted by a human is created again; a review
//! GitHub refuses for a line outside the diff is sent again with file-level comments; check
//! runs refused to a personal token are dropped (token mode reports statuses).

use std::collections::HashSet;
use std::sync::Mutex;

use chrono::{TimeDelta, Utc};

use super::Workers;
use crate::adapters::clock;
use crate::app::ports::store::{Effects, OutboxItem, OutboxRow, Outgoing};
use crate::app::ports::{GitHubError, StatusState};
use crate::config::Settings;
use crate::core::review::budget::{
    BudgetLimits, BudgetMetrics, Next, Outcome, Write, WriteBudget, WriteKind,
};
use crate::core::review::checks::MAX_OUTPUT;
use crate::core::review::pr_review::{
    MAX_BODY, PostedReview, ReviewContext, ReviewDraft, ReviewOptions, file_level_retry,
    is_line_not_in_diff, settle_posted,
};
use crate::core::review::sticky::{Upsert, after_edit_failed};
use crate::core::review::surface::{self, GitHubWrite};
use crate::core::types::{CommitSha, PrNumber, RepoName};

/// The budget and which outbox rows it holds (so a row is queued once while it waits).
pub struct WriteScheduler {
    budget: Mutex<WriteBudget<OutboxRow>>,
    queued: Mutex<HashSet<i64>>,
}

impl WriteScheduler {
    /// Limits from the settings (`github_writes_per_minute`, `…_per_hour`, `github_write_gap_ms`).
    pub fn new(settings: &Settings) -> WriteScheduler {
        let limits = BudgetLimits {
            per_minute: settings.github_writes_per_minute.max(1),
            per_hour: settings.github_writes_per_hour.max(1),
            min_gap: TimeDelta::milliseconds(settings.github_write_gap_ms as i64),
            ..BudgetLimits::default()
        };
        WriteScheduler {
            budget: Mutex::new(WriteBudget::new(limits)),
            queued: Mutex::new(HashSet::new()),
        }
    }

    fn budget(&self) -> std::sync::MutexGuard<'_, WriteBudget<OutboxRow>> {
        self.budget.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn queued(&self) -> std::sync::MutexGuard<'_, HashSet<i64>> {
        self.queued.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The budget as the scheduler last saw it (`GET /api/write-budget`): one scheduler per process,
/// published after each delivery round.
static PUBLISHED: Mutex<Option<BudgetMetrics>> = Mutex::new(None);

/// The write budget of this process's scheduler (`None` before its first delivery round).
pub fn published_budget() -> Option<BudgetMetrics> {
    PUBLISHED.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The budget as JSON: counts of the rolling windows and totals since start (`paused_until`
/// in RFC 3339).
pub fn budget_json(m: &BudgetMetrics) -> serde_json::Value {
    serde_json::json!({
        "queued": m.queued,
        "in_flight": m.in_flight,
        "sent_last_minute": m.sent_last_minute,
        "sent_last_hour": m.sent_last_hour,
        "remaining_minute": m.remaining_minute,
        "remaining_hour": m.remaining_hour,
        "created_total": m.created,
        "updated_total": m.updated,
        "coalesced_total": m.coalesced,
        "rate_limited_total": m.rate_limited,
        "failed_total": m.failed,
        "paused_until": m.paused_until.map(|t| t.to_rfc3339()),
    })
}

/// How one write ended, for the outbox and the budget.
enum Sent {
    Done,
    Failed(GitHubError),
}

impl Workers {
    /// Queues the due write rows in the budget and sends what it allows now; returns how many
    /// were sent. Rows the budget holds back stay pending in the outbox.
    pub(super) async fn deliver_writes(&self, rows: Vec<OutboxRow>) -> usize {
        {
            let mut queued = self.writes.queued();
            let mut budget = self.writes.budget();
            for row in rows {
                let Outgoing::Write(w) = &row.item.message else {
                    continue;
                };
                if queued.insert(row.id) {
                    let (key, kind) = (w.key.clone(), w.kind);
                    budget.enqueue(Write {
                        key,
                        kind,
                        payload: row,
                    });
                }
            }
        }
        let mut sent = 0;
        loop {
            let next = self.writes.budget().next(Utc::now());
            let Next::Send { ticket, write } = next else {
                break;
            };
            let row = write.payload;
            let result = self.send_write(&row).await;
            let outcome = match &result {
                Sent::Done => Outcome::Done,
                Sent::Failed(GitHubError::RateLimited { retry_after }) => Outcome::RateLimited {
                    retry_after: (!retry_after.is_zero())
                        .then(|| TimeDelta::from_std(*retry_after).ok())
                        .flatten(),
                },
                Sent::Failed(_) => Outcome::Failed,
            };
            let limited = matches!(outcome, Outcome::RateLimited { .. });
            self.writes.budget().finished(ticket, outcome, Utc::now());
            if limited {
                // The budget pauses and sends it again; the row stays pending meanwhile (the
                // client already retried in-line, so this is a lasting limit, not a fault).
                continue;
            }
            self.writes.queued().remove(&row.id);
            self.settle(&row, result).await;
            sent += 1;
        }
        let metrics = self.writes.budget().metrics(Utc::now());
        if metrics.queued > 0 {
            tracing::debug!(
                queued = metrics.queued,
                remaining_minute = metrics.remaining_minute,
                remaining_hour = metrics.remaining_hour,
                "GitHub writes held back by the write budget"
            );
        }
        *PUBLISHED.lock().unwrap_or_else(|e| e.into_inner()) = Some(metrics);
        sent
    }

    /// Records how a write ended in the outbox.
    async fn settle(&self, row: &OutboxRow, result: Sent) {
        let outcome = match result {
            Sent::Done => self.store.outbox_sent(row.id, clock::now()).await,
            Sent::Failed(e)
                if e.is_retryable() && row.attempts + 1 < super::outbox::MAX_ATTEMPTS =>
            {
                tracing::warn!(id = row.id, error = %e, "GitHub write failed; will retry");
                let retry_at = clock::now().plus_ms(super::outbox::backoff_ms(row.attempts + 1));
                self.store
                    .outbox_retry(row.id, &e.to_string(), retry_at)
                    .await
            }
            Sent::Failed(e) => {
                tracing::error!(id = row.id, error = %e, "GitHub write failed for good");
                self.store.outbox_failed(row.id, &e.to_string()).await
            }
        };
        if let Err(e) = outcome {
            tracing::error!(error = %format!("{e:#}"), "recording a write failed");
        }
    }

    /// Sends one write and remembers what it created.
    async fn send_write(&self, row: &OutboxRow) -> Sent {
        let (Outgoing::Write(w), Some(pr)) = (&row.item.message, row.item.pr) else {
            return Sent::Failed(GitHubError::Invalid("a write needs a pull request".into()));
        };
        let repo = &row.item.repo;
        match self.send_one(repo, pr, w).await {
            Ok(()) => Sent::Done,
            Err(e) => Sent::Failed(e),
        }
    }

    async fn send_one(
        &self,
        repo: &RepoName,
        pr: PrNumber,
        w: &Write<GitHubWrite>,
    ) -> Result<(), GitHubError> {
        let gh = &self.github;
        match &w.payload {
            GitHubWrite::CreateIssueComment { body } => {
                // Created meanwhile (an earlier push's write finished after this one was
                // queued): edited, never posted twice.
                if let Some(comment_id) = self.known_comment(repo, pr, &w.key).await? {
                    let edit = Write {
                        key: w.key.clone(),
                        kind: WriteKind::EditIssueComment,
                        payload: GitHubWrite::EditIssueComment {
                            comment_id,
                            body: body.clone(),
                        },
                    };
                    return Box::pin(self.send_one(repo, pr, &edit)).await;
                }
                let id = gh
                    .create_comment(repo, pr, &self.comment_text(body))
                    .await?;
                self.remember_comment(repo, pr, &w.key, id).await
            }
            GitHubWrite::EditIssueComment { comment_id, body } => {
                let body = self.comment_text(body);
                match gh.update_comment(repo, *comment_id, &body).await {
                    Err(GitHubError::NotFound(_))
                        if after_edit_failed(404) == Some(Upsert::Create) =>
                    {
                        // Deleted by a human: the summary is posted again, and remembered.
                        let id = gh.create_comment(repo, pr, &body).await?;
                        self.remember_comment(repo, pr, &w.key, id).await
                    }
                    other => other,
                }
            }
            GitHubWrite::CreateReview(review) => {
                let mut review = review.clone();
                review.body = self.comment_text(&review.body);
                for c in &mut review.comments {
                    c.body = self.comment_text(&c.body);
                }
                match gh.create_review(repo, pr, &review).await {
                    Ok(ids) => {
                        self.remember_review(
                            repo,
                            pr,
                            &review.commit_id,
                            ids.review_id,
                            ids.comment_ids,
                        )
                        .await
                    }
                    Err(GitHubError::Unprocessable(text)) if is_line_not_in_diff(422, &text) => {
                        self.review_as_file_comments(repo, pr, &w.key, review).await
                    }
                    Err(e) => Err(e),
                }
            }
            GitHubWrite::CreateReviewComment(c) => {
                let mut c = c.clone();
                c.body = self.comment_text(&c.body);
                let id = gh.create_review_comment(repo, pr, &c).await?;
                let mut objects = self.store.pr_objects(repo, pr).await.map_err(store_error)?;
                if let Some(review) = &mut objects.review {
                    review.comment_ids.push(id);
                }
                self.save_objects(repo, pr, &objects).await
            }
            GitHubWrite::UpdateReview { review_id, body } => {
                let body = self.comment_text(&body.body);
                ignore_gone(gh.update_review(repo, pr, *review_id, &body).await)
            }
            GitHubWrite::EditReviewComment { comment_id, body } => {
                let body = self.comment_text(&body.body);
                ignore_gone(gh.update_review_comment(repo, *comment_id, &body).await)
            }
            GitHubWrite::CreateCheckRun(check) => {
                let mut check = check.clone();
                check.output.summary = self.public_text(&check.output.summary, MAX_OUTPUT);
                check.output.text = check.output.text.map(|t| self.public_text(&t, MAX_OUTPUT));
                match gh.create_check_run(repo, &check).await {
                    Ok(id) => self
                        .store
                        .save_check_run_id(repo, &w.key, id, clock::now())
                        .await
                        .map_err(store_error),
                    // Token mode: no Checks API; statuses carry the result.
                    Err(GitHubError::Forbidden(_)) if !gh.is_app() => Ok(()),
                    Err(e) => Err(e),
                }
            }
            GitHubWrite::AppendAnnotations(update) => {
                let id = self
                    .store
                    .check_run_id(repo, &w.key)
                    .await
                    .map_err(store_error)?;
                match id {
                    Some(id) => gh.update_check_run(repo, id, update).await,
                    // Its check run was never created (token mode): nothing to annotate.
                    None => Ok(()),
                }
            }
            GitHubWrite::CreateStatus { sha, status } => {
                let sha = CommitSha::new(sha).map_err(|e| GitHubError::Invalid(e.to_string()))?;
                let status = crate::app::ports::CommitStatus {
                    context: status.context.clone(),
                    state: match status.state {
                        surface::StatusState::Error => StatusState::Error,
                        surface::StatusState::Failure => StatusState::Failure,
                        surface::StatusState::Pending => StatusState::Pending,
                        surface::StatusState::Success => StatusState::Success,
                    },
                    description: self.public_text(&status.description, usize::MAX),
                    target_url: status.target_url.clone(),
                };
                gh.set_status(repo, &sha, &status).await
            }
        }
    }

    fn comment_text(&self, body: &str) -> String {
        self.public_text(body, MAX_BODY - 1)
    }

    /// GitHub refused a line of the review: the review again with every line comment turned
    /// into a file-level comment (queued behind it, through the budget like any write).
    async fn review_as_file_comments(
        &self,
        repo: &RepoName,
        pr: PrNumber,
        key: &str,
        review: crate::core::review::pr_review::CreateReview,
    ) -> Result<(), GitHubError> {
        let draft = ReviewDraft {
            review,
            file_comments: Vec::new(),
        };
        let retry = file_level_retry(&draft, &ReviewOptions::default());
        let mut plain = retry.review.clone();
        plain.comments.clear();
        let ids = self.github.create_review(repo, pr, &plain).await?;
        self.remember_review(repo, pr, &plain.commit_id, ids.review_id, ids.comment_ids)
            .await?;
        let items = retry
            .file_comments
            .into_iter()
            .map(|c| {
                let write = Write {
                    key: format!("{key}/file/{}", c.path),
                    kind: WriteKind::CreateReviewComment,
                    payload: GitHubWrite::CreateReviewComment(c),
                };
                OutboxItem::write(repo, pr, write)
            })
            .collect();
        self.store
            .enqueue(Effects::new(items, vec![]), clock::now())
            .await
            .map_err(store_error)
    }

    /// Remembers the review just posted and retires what it replaces, through the budget
    /// (`pr_review::settle_posted`): on time, it becomes the PR's current review and the
    /// previous one (for an earlier head) is edited into a pointer to it; late (the PR moved to
    /// a newer head meanwhile), it is itself edited into a pointer to the newest head at once,
    /// and the newest head's review, if posted, stays current.
    async fn remember_review(
        &self,
        repo: &RepoName,
        pr: PrNumber,
        head: &str,
        review_id: u64,
        comment_ids: Vec<u64>,
    ) -> Result<(), GitHubError> {
        let head_sha = CommitSha::new(head).map_err(|e| GitHubError::Invalid(e.to_string()))?;
        let latest = self.latest_head(repo, pr).await;
        let mut objects = self.store.pr_objects(repo, pr).await.map_err(store_error)?;
        let posted = PostedReview {
            review_id,
            head_sha,
            comment_ids,
        };
        let settled = settle_posted(posted, objects.review.take(), latest.as_ref());
        objects.review = settled.current;
        self.save_objects(repo, pr, &objects).await?;
        let ctx = ReviewContext {
            pr,
            head_sha: &settled.newer,
            summary_url: None,
            log_url: None,
        };
        let items: Vec<OutboxItem> = settled
            .retire
            .into_iter()
            .flat_map(|retired| {
                let known = surface::PrObjects {
                    review: Some(retired),
                    ..Default::default()
                };
                surface::push_writes(&ctx, &known, surface::PushOutput::default())
            })
            .map(|w| OutboxItem::write(repo, pr, w))
            .collect();
        if items.is_empty() {
            return Ok(());
        }
        self.store
            .enqueue(Effects::new(items, vec![]), clock::now())
            .await
            .map_err(store_error)
    }

    /// The id of the issue comment remembered under `key` (the summary or a follow-up slot).
    async fn known_comment(
        &self,
        repo: &RepoName,
        pr: PrNumber,
        key: &str,
    ) -> Result<Option<u64>, GitHubError> {
        let objects = self.store.pr_objects(repo, pr).await.map_err(store_error)?;
        if key == surface::sticky_key(pr) {
            return Ok(objects.sticky_comment_id);
        }
        Ok(key
            .strip_prefix(&format!("pr/{}/detail/", pr.get()))
            .and_then(|s| s.parse::<u32>().ok())
            .and_then(|slot| objects.follow_up_ids.get(&slot).copied()))
    }

    /// Remembers a created issue comment: the sticky summary or one of its follow-up slots.
    async fn remember_comment(
        &self,
        repo: &RepoName,
        pr: PrNumber,
        key: &str,
        id: u64,
    ) -> Result<(), GitHubError> {
        let mut objects = self.store.pr_objects(repo, pr).await.map_err(store_error)?;
        if key == surface::sticky_key(pr) {
            objects.sticky_comment_id = Some(id);
        } else if let Some(slot) = key
            .strip_prefix(&format!("pr/{}/detail/", pr.get()))
            .and_then(|s| s.parse::<u32>().ok())
        {
            objects.follow_up_ids.insert(slot, id);
            objects.live_slots = objects.live_slots.max(slot);
        } else {
            return Ok(());
        }
        self.save_objects(repo, pr, &objects).await
    }

    async fn save_objects(
        &self,
        repo: &RepoName,
        pr: PrNumber,
        objects: &crate::app::ports::store::PrObjects,
    ) -> Result<(), GitHubError> {
        self.store
            .save_pr_objects(repo, pr, objects, clock::now())
            .await
            .map_err(store_error)
    }
}

/// A superseding edit of something a human deleted has nothing left to do.
fn ignore_gone(result: Result<(), GitHubError>) -> Result<(), GitHubError> {
    match result {
        Err(GitHubError::NotFound(_)) => Ok(()),
        other => other,
    }
}

/// A store failure while recording a write: retried like a server error (the write is sent
/// again, which is safe for edits; a duplicate new object is the lesser harm than a lost id).
fn store_error(e: anyhow::Error) -> GitHubError {
    GitHubError::Server {
        status: 500,
        message: format!("recording the write: {e:#}"),
    }
}
