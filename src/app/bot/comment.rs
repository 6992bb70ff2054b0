//! An `issue_comment` on a pull request: parsed by `core::command`; usage and grammar errors
//! answered; a command acknowledged (👀), then checked — the pull request exists and is open,
//! the author may run commands, the pull request is not from a fork nor into an untrusted base,
//! and `apply`/`approve_policies` were written on the head there is now (`core::freshness`) —
//! and handed to [`Bot::run_command`].

use super::{Ask, Bot, CommandRun, EventError};
use crate::adapters::clock;
use crate::app::ports::store::{Effects, HeadSource, OutboxItem, PrHeadSeen, Reaction};
use crate::app::ports::{GitHubError, PullDetails, PullState};
use crate::core::audit::{AuditAction, AuditResult};
use crate::core::command::{self, CommandKind, ParseContext, Parsed};
use crate::core::event::{Actor, RepoRef};
use crate::core::freshness::{self, CommentHead};
use crate::core::reply;
use crate::core::types::{PrNumber, UnixMs};

/// A comment, as its event carries it.
#[derive(Debug, Clone, Copy)]
pub struct Comment<'a> {
    pub repo: &'a RepoRef,
    pub pr: PrNumber,
    pub id: u64,
    pub body: &'a str,
    pub author: &'a Actor,
    /// GitHub's `author_association`.
    pub association: Option<&'a str>,
    /// When it was written (GitHub's clock).
    pub written_at: Option<UnixMs>,
}

impl Bot {
    pub(super) async fn on_comment(
        &self,
        delivery_id: &str,
        comment: &Comment<'_>,
    ) -> Result<(), EventError> {
        let login = self.bot_login().await;
        if is_own(comment.author, login.as_deref()) {
            return Ok(());
        }
        let ask = Ask {
            delivery: delivery_id,
            repo: comment.repo,
            pr: comment.pr,
            actor: comment.author,
        };
        let member = self.settings.may_comment_commands(comment.association);
        let ctx = ParseContext {
            bot_name: &self.settings.bot_name,
            bot_login: login.as_deref(),
            enabled: &self.enabled,
        };
        let cmd = match command::parse_comment(&ctx, comment.body) {
            Parsed::Ignore => return Ok(()),
            // Usage hints only for those who may run commands: no one else makes the bot talk.
            Parsed::Reply(text) if member => {
                // A command refused for its words (an unknown flag, a refused argument, a bad
                // address) is an attempt like any other: recorded with the first line of why.
                let why: String = text
                    .lines()
                    .next()
                    .unwrap_or("")
                    .chars()
                    .take(300)
                    .collect();
                let record = ask
                    .record(AuditAction::CommandRejected, AuditResult::Refused)
                    .detail("reason", &why);
                self.store
                    .append_audit(vec![record], clock::now())
                    .await
                    .map_err(EventError::Retry)?;
                return self.reply(&ask, text).await;
            }
            Parsed::Reply(_) => return Ok(()),
            Parsed::Command(cmd) => cmd,
        };
        if member {
            // Heard: a reaction before any slow work (outsiders get a refusal below instead).
            let heard =
                OutboxItem::reaction(&comment.repo.name, comment.pr, comment.id, Reaction::Eyes);
            self.say(Effects::new(vec![heard], vec![])).await?;
            if cmd.kind == CommandKind::Help {
                return self.reply(&ask, command::usage(&ctx)).await;
            }
        }
        let Some(pull) = self.pull_of_comment(&ask).await? else {
            return Ok(());
        };
        if let Some((body, recorded)) = self.refusal(&ask, comment, cmd.kind, &pull) {
            return match recorded {
                Some(why) => self.refuse(&ask, &pull.head_sha, body, &why).await,
                None => self.reply(&ask, body).await,
            };
        }
        let written_on = self.comment_head(&ask, &pull, comment.written_at).await?;
        if matches!(
            cmd.kind,
            CommandKind::Apply
                | CommandKind::ApprovePolicies
                | CommandKind::Import
                | CommandKind::StateRm
        ) && let (Some(body), Some(why)) = (
            written_on.refusal(cmd.kind.name(), &self.settings.bot_name),
            written_on.audit_reason(),
        ) {
            tracing::info!(repo = %comment.repo.name, pr = comment.pr.get(), why, "stale command refused");
            return self.refuse(&ask, &pull.head_sha, body, &why).await;
        }
        let run = CommandRun {
            ask,
            cmd: &cmd,
            pull: &pull,
            comment_id: comment.id,
            written_at: comment.written_at,
        };
        self.run_command(&run).await
    }

    /// The pull request as GitHub sees it now; `None` (and the dropped command recorded) when
    /// GitHub no longer knows it.
    pub(super) async fn pull_of_comment(
        &self,
        ask: &Ask<'_>,
    ) -> Result<Option<PullDetails>, EventError> {
        match self.github.get_pull(&ask.repo.name, ask.pr).await {
            Ok(pr) => Ok(Some(pr)),
            Err(GitHubError::NotFound(_)) => {
                tracing::warn!(repo = %ask.repo.name, pr = ask.pr.get(), "pull request no longer exists; command dropped");
                let record = ask
                    .record(AuditAction::CommandRejected, AuditResult::Refused)
                    .detail("reason", reply::comment::PULL_REQUEST_GONE);
                self.store
                    .append_audit(vec![record], clock::now())
                    .await
                    .map_err(EventError::Retry)?;
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Whether a command is refused before anything is read for it: on a closed pull request
    /// (but `unlock`), from an outsider (recorded, with the reason), on a fork, into an
    /// untrusted base (but `unlock`, which only releases what the pull request holds). The
    /// reply, and the audit reason when the refusal is recorded.
    pub(super) fn refusal(
        &self,
        ask: &Ask<'_>,
        comment: &Comment<'_>,
        kind: CommandKind,
        pull: &PullDetails,
    ) -> Option<(String, Option<String>)> {
        let settings = &self.settings;
        // `rollback` is for merged (so closed) pull requests; it answers an open one itself.
        if pull.state != PullState::Open
            && !matches!(kind, CommandKind::Unlock | CommandKind::Rollback)
        {
            return Some((reply::comment::closed_pull_request(kind), None));
        }
        if !settings.may_comment_commands(comment.association) {
            let why = reply::comment::outsider_reason(
                &comment.author.login,
                comment.association,
                &settings.command_author_associations,
            );
            return Some((reply::comment::not_run(kind, &why), Some(why)));
        }
        if pull.from_fork && !settings.allow_fork_prs {
            return Some((reply::pull_request::fork_refusal(), None));
        }
        if kind != CommandKind::Unlock
            && let Some((body, _)) = self.base_refusal(ask.repo, &pull.base_ref)
        {
            return Some((body, None));
        }
        None
    }

    /// Which head a comment written at `written_at` was written on (`core::freshness`).
    /// Records the head the pull request has now when Sluice had no sighting of it (a missed
    /// delivery), at the later of now and the comment's time, never earlier.
    async fn comment_head(
        &self,
        ask: &Ask<'_>,
        pr: &PullDetails,
        written_at: Option<UnixMs>,
    ) -> Result<CommentHead, EventError> {
        let seen = self
            .store
            .pr_heads(&ask.repo.name, pr.number)
            .await
            .map_err(EventError::Retry)?;
        if freshness::needs_sighting(&pr.head_sha, &seen) {
            self.store
                .record_pr_head(PrHeadSeen {
                    repo: ask.repo.name.clone(),
                    pr: pr.number,
                    sha: pr.head_sha.clone(),
                    at: clock::now().max(written_at.unwrap_or(UnixMs::new(i64::MIN))),
                    source: HeadSource::Command,
                })
                .await
                .map_err(EventError::Retry)?;
        }
        Ok(freshness::head_at_comment(written_at, &pr.head_sha, &seen))
    }
}

/// Whether `author` is the bot itself (its own comments are never commands).
fn is_own(author: &Actor, bot_login: Option<&str>) -> bool {
    bot_login.is_some_and(|me| {
        author.login.eq_ignore_ascii_case(me)
            || author
                .login
                .eq_ignore_ascii_case(me.trim_end_matches("[bot]"))
    })
}
