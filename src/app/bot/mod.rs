//! The bot: what Sluice does with each verified webhook event. [`Bot::handle`] is the one
//! `match` over [`Event`] — pull requests autoplan or release, comments become commands — and
//! [`Bot::run_command`] the one `match` over [`CommandKind`]. Each event and each command has a
//! file of its own; a command reads like this: gather the facts (GitHub, the mirror, the store),
//! let `core` decide, write the outcome with its reply and audit entries in one transaction.
//!
//! Work that takes time (terraform) is never done here: this module turns events into
//! persisted runs, replies and records; workers run the jobs. Every text posted comes from
//! `core::reply` (or `core::command`, `core::freshness`, `core::policy`).

mod apply;
mod approve_policies;
mod automerge;
mod check_action;
mod comment;
mod drift;
mod merge;
mod merge_queue;
mod plan;
mod pull_request;
mod remediate;
mod repo;
mod rollback;
mod state;
mod unlock;
mod version;

use std::sync::Arc;

use tokio::sync::Notify;

use super::policy::TeamCache;
use super::ports::store::{Effects, OutboxItem, StatusContext};
use super::ports::{GitHubApi, GitHubError, PullDetails, StatusState, Store};
use crate::adapters::clock;
use crate::adapters::git::Mirrors;
use crate::config::Settings;
use crate::core::audit::{AuditAction, AuditActor, AuditRecord, AuditResult};
use crate::core::command::{Command, CommandKind};
use crate::core::event::{Actor, ActorKind, Event, RepoRef};
use crate::core::policy::Policy;
use crate::core::types::{CommitSha, PrNumber, UnixMs};

pub use comment::Comment;
pub use rollback::Said as RollbackSaid;
pub(crate) use state::state_record;

/// Why handling an event stopped.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// Try again later (GitHub or git unreachable, a 5xx): the event stays pending.
    #[error("{0:#}")]
    Retry(anyhow::Error),
    /// Retrying would not help; the event is done (the PR was told when possible).
    #[error("{0:#}")]
    Permanent(anyhow::Error),
}

impl From<GitHubError> for EventError {
    fn from(e: GitHubError) -> Self {
        if e.is_retryable() {
            EventError::Retry(e.into())
        } else {
            EventError::Permanent(e.into())
        }
    }
}

/// Everything the flows need: the ports, the mirrors, and what the server was configured with.
pub struct Bot {
    pub settings: Arc<Settings>,
    pub store: Arc<dyn Store>,
    pub github: Arc<dyn GitHubApi>,
    pub mirrors: Arc<Mirrors>,
    pub enabled: Vec<CommandKind>,
    /// The bot's own login, to ignore its own comments and accept `@login plan`.
    pub bot_login: tokio::sync::OnceCell<String>,
    /// Wakes the job workers when runs are queued.
    pub jobs_ready: Arc<Notify>,
    /// Wakes the outbox deliverer.
    pub outbox_ready: Arc<Notify>,
    /// The server's mandatory policies (loaded at start-up).
    pub server_policies: Arc<Vec<Policy>>,
    pub teams: Arc<TeamCache>,
    /// Check run button pressers' repository permissions, cached briefly
    /// (`core::review::permission`).
    pub permissions: Arc<std::sync::Mutex<crate::core::review::permission::PermissionCache>>,
    /// Drift detection (`None` when off): pushes and drift-issue comments go there.
    pub drift: Option<Arc<super::drift::DriftService>>,
}

/// Who asked Sluice to act on which pull request, with which delivery: what every reply,
/// status and audit record of a flow has in common.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ask<'a> {
    pub delivery: &'a str,
    pub repo: &'a RepoRef,
    pub pr: PrNumber,
    pub actor: &'a Actor,
}

impl Ask<'_> {
    /// A comment on the pull request.
    fn comment(&self, body: impl Into<String>) -> OutboxItem {
        OutboxItem::comment(&self.repo.name, self.pr, body)
    }

    /// A commit status on `sha`.
    fn status(
        &self,
        sha: &CommitSha,
        context: StatusContext,
        state: StatusState,
        description: impl Into<String>,
    ) -> OutboxItem {
        OutboxItem::status(&self.repo.name, self.pr, sha, context, state, description)
    }

    /// An audit record of `action` by the asker on this pull request, for this delivery.
    fn record(&self, action: AuditAction, result: AuditResult) -> AuditRecord {
        AuditRecord::new(action, AuditActor::of(self.actor), result)
            .event(self.delivery)
            .pr(&self.repo.name, self.pr)
    }

    /// The refusal of a command or event: its audit record (with `reason`) at `head`.
    fn refusal(&self, head: &CommitSha, reason: &str) -> AuditRecord {
        self.record(AuditAction::CommandRejected, AuditResult::Refused)
            .head(head)
            .detail("reason", reason)
    }

    /// The pull request's page on GitHub, without the number (`https://github.com/o/r`).
    fn repo_url(&self) -> String {
        format!("https://github.com/{}", self.repo.name.full())
    }
}

/// A command to run: who asked and how, and the pull request as GitHub sees it now.
pub(crate) struct CommandRun<'a> {
    pub ask: Ask<'a>,
    pub cmd: &'a Command,
    pub pull: &'a PullDetails,
    pub comment_id: u64,
    /// When the comment was written (GitHub's clock); `None` for undated deliveries.
    pub written_at: Option<UnixMs>,
}

impl Bot {
    /// Handles one event to completion (or to a retry).
    pub async fn handle(&self, delivery_id: &str, event: Event) -> Result<(), EventError> {
        if let (Some(drift), Some(repo)) = (&self.drift, event.repo()) {
            drift.seen(repo).await;
        }
        match event {
            Event::PullRequest {
                action,
                repo,
                pr,
                sender,
            } => {
                self.on_pull_request(delivery_id, &repo, action, &pr, &sender)
                    .await
            }
            Event::Comment {
                repo,
                pr,
                comment_id,
                body,
                author,
                association,
                created_at_ms,
            } => {
                let comment = Comment {
                    repo: &repo,
                    pr,
                    id: comment_id,
                    body: &body,
                    author: &author,
                    association: association.as_deref(),
                    written_at: created_at_ms,
                };
                self.on_comment(delivery_id, &comment).await
            }
            Event::IssueComment {
                repo,
                issue,
                body,
                author,
                association,
                ..
            } => {
                let c = drift::IssueComment {
                    delivery: delivery_id,
                    repo: &repo,
                    issue,
                    body: &body,
                    author: &author,
                    association: association.as_deref(),
                };
                self.on_issue_comment(&c).await
            }
            Event::Push {
                repo,
                git_ref,
                after,
            } => self.on_push(&repo, &git_ref, after.as_ref()).await,
            Event::CheckRunAction {
                repo,
                pr,
                check_head_sha,
                external_id,
                identifier,
                sender,
                ..
            } => {
                let a = check_action::CheckAction {
                    repo: &repo,
                    pr,
                    check_head_sha: &check_head_sha,
                    external_id: external_id.as_deref(),
                    identifier: &identifier,
                    sender: &sender,
                };
                self.on_check_action(delivery_id, &a).await
            }
            // Reviews are read from the reviews API when an apply asks (latest per reviewer), so
            // nothing is cached that could go stale.
            // A review can open the `sluice/apply-gate` of projects applied after merge.
            Event::Review { repo, pr, .. } => self.on_review(&repo.name, pr).await,
            Event::MergeGroup {
                action,
                repo,
                group,
                sender,
            } => {
                self.on_merge_group(delivery_id, &repo, action, &group, &sender)
                    .await
            }
            Event::Ping | Event::Ignored { .. } => Ok(()),
        }
    }

    /// Runs a command that passed every check of `on_comment`.
    async fn run_command(&self, run: &CommandRun<'_>) -> Result<(), EventError> {
        match run.cmd.kind {
            CommandKind::Plan => self.plan_command(run).await,
            CommandKind::Apply => self.apply(run).await,
            CommandKind::Unlock => self.unlock(run).await,
            CommandKind::ApprovePolicies => self.approve_policies(run).await,
            CommandKind::Version => self.version(run).await,
            CommandKind::Rollback => self.rollback(run).await,
            CommandKind::Import | CommandKind::StateRm => self.state_command(run).await,
            // Answered before the pull request was read (and outsiders get no usage).
            CommandKind::Help => Ok(()),
        }
    }

    /// Writes what a step says — outbox items and audit records, in one transaction — and wakes
    /// the outbox deliverer.
    async fn say(&self, effects: Effects) -> Result<(), EventError> {
        self.store
            .enqueue(effects, clock::now())
            .await
            .map_err(EventError::Retry)?;
        self.wake(false);
        Ok(())
    }

    /// Tells the pull request one thing (and records nothing).
    async fn reply(&self, ask: &Ask<'_>, body: impl Into<String>) -> Result<(), EventError> {
        self.say(Effects::new(vec![ask.comment(body)], vec![]))
            .await
    }

    /// Tells the pull request why Sluice will not act, and records the refusal.
    async fn refuse(
        &self,
        ask: &Ask<'_>,
        head: &CommitSha,
        body: String,
        reason: &str,
    ) -> Result<(), EventError> {
        self.say(Effects::new(
            vec![ask.comment(body)],
            vec![ask.refusal(head, reason)],
        ))
        .await
    }

    /// Wakes the outbox deliverer, and the job workers when `jobs` were queued or started.
    fn wake(&self, jobs: bool) {
        if jobs {
            self.jobs_ready.notify_one();
        }
        self.outbox_ready.notify_one();
    }

    /// The login Sluice posts as: configured, or asked from GitHub once.
    async fn bot_login(&self) -> Option<String> {
        if let Some(l) = &self.settings.github_bot_login {
            return Some(l.clone());
        }
        self.bot_login
            .get_or_try_init(|| async { self.github.bot_login().await })
            .await
            .ok()
            .cloned()
    }
}

impl ActorKind {
    /// Sluice itself, as the actor of what it does on its own.
    pub fn system() -> Actor {
        Actor {
            login: "sluice".into(),
            id: 0,
            kind: ActorKind::Bot,
        }
    }
}
