//! The outbox deliverer: posts what the flows wrote — comments, statuses, reactions — to GitHub,
//! oldest first and one at a time per pull request (so a PR's comments keep their order), with
//! retries and backoff. Every text leaves through [`Workers::public_text`]: host paths mapped to
//! neutral names, and within GitHub's size limits.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Workers;
use crate::adapters::clock;
use crate::app::ports::store::Outgoing;
use crate::app::ports::{CommitStatus, GitHubError};
use crate::core::plan::render::DEFAULT_MAX_COMMENT_CHARS;

/// Attempts at delivering one item before it is given up.
pub(super) const MAX_ATTEMPTS: u32 = 12;

impl Workers {
    pub async fn outbox_loop(self: Arc<Self>, stop: CancellationToken) {
        loop {
            let delivered = self.deliver_due().await;
            if delivered == 0 {
                tokio::select! {
                    _ = self.outbox_ready.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = stop.cancelled() => return,
                }
            }
        }
    }

    /// Text as it may leave for GitHub: host paths replaced by their neutral names
    /// (`app::layout`), and still within `max_chars` (a name can be longer than a short path).
    pub(super) fn public_text(&self, text: &str, max_chars: usize) -> String {
        let mapped = self.host_paths.map(text);
        if mapped.chars().count() <= max_chars {
            return mapped.into_owned();
        }
        const CUT: &str = "\n\n…(cut: too long for one comment)";
        let keep = max_chars.saturating_sub(CUT.chars().count());
        let mut out: String = mapped.chars().take(keep).collect();
        out.push_str(CUT);
        out
    }

    /// Delivers what is due now; returns how many items were handled.
    pub async fn deliver_due(&self) -> usize {
        let due = match self.store.due_outbox(clock::now(), 32).await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "reading the outbox failed");
                return 0;
            }
        };
        // Review, summary and check run writes are paced by the write budget.
        let (writes, due): (Vec<_>, Vec<_>) = due
            .into_iter()
            .partition(|row| matches!(row.item.message, Outgoing::Write(_)));
        let paced = self.deliver_writes(writes).await;
        // Writes the budget holds back do not count: the loop then waits instead of spinning.
        let n = paced + due.len();
        for row in due {
            let Some(result) = self
                .deliver(&row.item.repo, row.item.pr, &row.item.message)
                .await
            else {
                let _ = self
                    .store
                    .outbox_failed(row.id, "a comment needs a pull request")
                    .await;
                continue;
            };
            let kind = row.item.message.kind();
            let outcome = match result {
                Ok(()) => self.store.outbox_sent(row.id, clock::now()).await,
                Err(e) if e.is_retryable() && row.attempts + 1 < MAX_ATTEMPTS => {
                    tracing::warn!(id = row.id, kind, error = %e, attempt = row.attempts + 1, "delivery failed; will retry");
                    let retry_at = clock::now().plus_ms(backoff_ms(row.attempts + 1));
                    self.store
                        .outbox_retry(row.id, &e.to_string(), retry_at)
                        .await
                }
                Err(e) => {
                    tracing::error!(id = row.id, kind, error = %e, "delivery failed for good");
                    self.store.outbox_failed(row.id, &e.to_string()).await
                }
            };
            if let Err(e) = outcome {
                tracing::error!(error = %format!("{e:#}"), "recording a delivery failed");
            }
        }
        n
    }

    /// Posts one item; `None` when it cannot be posted at all (a comment without a PR).
    async fn deliver(
        &self,
        repo: &crate::core::types::RepoName,
        pr: Option<crate::core::types::PrNumber>,
        message: &Outgoing,
    ) -> Option<Result<(), GitHubError>> {
        Some(match (message, pr) {
            (Outgoing::Comment { body }, Some(pr)) => {
                let body = self.public_text(body, DEFAULT_MAX_COMMENT_CHARS);
                self.github
                    .create_comment(repo, pr, &body)
                    .await
                    .map(|_| ())
            }
            (Outgoing::Comment { .. } | Outgoing::Write(_), None) => return None,
            (Outgoing::Write(_), Some(_)) => Err(GitHubError::Invalid(
                "a paced write reached the plain deliverer".into(),
            )),
            (
                Outgoing::Status {
                    sha,
                    context,
                    state,
                    description,
                    target_url,
                },
                _,
            ) => {
                let status = CommitStatus {
                    context: context.as_str().to_string(),
                    state: *state,
                    description: self.public_text(description, usize::MAX),
                    target_url: target_url.clone(),
                };
                self.github.set_status(repo, sha, &status).await
            }
            (
                Outgoing::Reaction {
                    comment_id,
                    content,
                },
                _,
            ) => {
                self.github
                    .add_reaction(repo, *comment_id, content.as_str())
                    .await
            }
        })
    }
}

/// How long to wait before attempt `attempts + 1`: 2 s, 4 s, … up to 5 minutes.
pub(super) fn backoff_ms(attempts: u32) -> i64 {
    let secs = 2u64.saturating_pow(attempts.min(8)).min(300);
    (secs * 1000) as i64
}
