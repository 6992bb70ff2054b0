//! A check run's button pressed (`check_run.requested_action`, PRODUCT.md §17): "Apply" and
//! "Plan again" stand for the comment commands `apply` and `plan` (with `-p` for a project's
//! check run, `core::review::checks::command_for_action`), and pass through exactly the gate of
//! a comment: the pull request open, not from a fork, into a trusted base, the presser allowed
//! to run commands, then [`Bot::run_command`] with its apply requirements, locks and audit.
//!
//! A press carries no `author_association`; the presser's permission on the repository is
//! asked from GitHub instead: `admin`, `maintain` and `write` count as a `COLLABORATOR`
//! (so `command_author_associations` must list it), anything else as `NONE`. A press on a
//! check run of an older head, of a check run that is not Sluice's, or without a pull request
//! is refused and recorded. The permission is cached per (repository, presser) for 30 seconds
//! (`core::review::permission`), so a burst of presses asks GitHub once.

use super::comment::Comment;
use super::{Ask, Bot, CommandRun, EventError};
use crate::adapters::clock;
use crate::core::audit::{AuditAction, AuditResult};
use crate::core::event::{Actor, RepoRef};
use crate::core::review::checks::{RequestedAction, command_for_action};
use crate::core::types::PrNumber;

/// A press, as its event carries it.
#[derive(Debug, Clone, Copy)]
pub struct CheckAction<'a> {
    pub repo: &'a RepoRef,
    pub pr: Option<PrNumber>,
    pub check_head_sha: &'a str,
    pub external_id: Option<&'a str>,
    pub identifier: &'a str,
    pub sender: &'a Actor,
}

/// The association a repository permission stands for in the comment gate.
pub fn association_of(permission: &str) -> &'static str {
    match permission {
        "admin" | "maintain" | "write" => "COLLABORATOR",
        _ => "NONE",
    }
}

impl Bot {
    pub(super) async fn on_check_action(
        &self,
        delivery: &str,
        a: &CheckAction<'_>,
    ) -> Result<(), EventError> {
        let Some(pr) = a.pr else {
            tracing::info!(repo = %a.repo.name, "a check run button without a pull request; ignored");
            let record = crate::core::audit::AuditRecord::new(
                AuditAction::CommandRejected,
                crate::core::audit::AuditActor::of(a.sender),
                AuditResult::Refused,
            )
            .event(delivery)
            .detail(
                "reason",
                "a check run button was pressed on a commit of no open pull request",
            );
            return self
                .store
                .append_audit(vec![record], clock::now())
                .await
                .map(|_| ())
                .map_err(EventError::Retry);
        };
        let ask = Ask {
            delivery,
            repo: a.repo,
            pr,
            actor: a.sender,
        };
        let Some(pull) = self.pull_of_comment(&ask).await? else {
            return Ok(());
        };
        let pressed = RequestedAction {
            identifier: a.identifier,
            external_id: a.external_id,
            check_head_sha: a.check_head_sha,
            pr_head_sha: &pull.head_sha,
        };
        let cmd = match command_for_action(&pressed) {
            Ok(cmd) => cmd,
            Err(e) => {
                let why = format!("check run button: {e}");
                let body = format!("@{} the button was not run: {e}.", a.sender.login);
                return self.refuse(&ask, &pull.head_sha, body, &why).await;
            }
        };
        if !self.enabled.contains(&cmd.kind) {
            let why = format!(
                "check run button: `{}` is not enabled on this server",
                cmd.kind.name()
            );
            let body = format!(
                "@{} the button was not run: `{}` is not enabled on this server.",
                a.sender.login,
                cmd.kind.name()
            );
            return self.refuse(&ask, &pull.head_sha, body, &why).await;
        }
        let permission = self.presser_permission(a).await?;
        let now = clock::now();
        let comment = Comment {
            repo: a.repo,
            pr,
            id: 0,
            body: "",
            author: a.sender,
            association: Some(association_of(&permission)),
            written_at: Some(now),
        };
        if let Some((body, recorded)) = self.refusal(&ask, &comment, cmd.kind, &pull) {
            return match recorded {
                Some(why) => {
                    let why = format!("check run button: {why}");
                    self.refuse(&ask, &pull.head_sha, body, &why).await
                }
                None => self.reply(&ask, body).await,
            };
        }
        let run = CommandRun {
            ask,
            cmd: &cmd,
            pull: &pull,
            comment_id: 0,
            written_at: Some(now),
        };
        self.run_command(&run).await
    }
}

impl Bot {
    /// The presser's permission on the repository: from the cache when read less than
    /// `PERMISSION_TTL_MS` ago, else from GitHub (and remembered).
    async fn presser_permission(&self, a: &CheckAction<'_>) -> Result<String, EventError> {
        let (repo, login) = (&a.repo.name, a.sender.login.as_str());
        let cached = self
            .permissions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(repo, login, clock::now())
            .map(str::to_string);
        if let Some(permission) = cached {
            return Ok(permission);
        }
        let permission = self.github.repo_permission(repo, login).await?;
        self.permissions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .put(repo, login, &permission, clock::now());
        Ok(permission)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_write_access_and_above_count_as_a_collaborator() {
        for p in ["admin", "maintain", "write"] {
            assert_eq!(association_of(p), "COLLABORATOR");
        }
        for p in ["triage", "read", "none", "", "WRITE"] {
            assert_eq!(association_of(p), "NONE");
        }
    }
}
