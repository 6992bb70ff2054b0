//! Drift events in the bot: a push to the default branch (read its projects again, check them
//! all) and comments on a project's drift issue (`sluice drift ack|accept|check|remediate`).
//! Commands count only from collaborators (`command_author_associations`); anyone else is
//! refused and the refusal audited. Every reply goes to the issue through the drift outbox.

use chrono::Utc;

use super::{Bot, EventError};
use crate::adapters::clock;
use crate::app::ports::drift::DriftOutgoing;
use crate::core::audit::{AuditAction, AuditActor, AuditRecord, AuditResult};
use crate::core::drift::{DriftCommand, DriftEvent, DriftParsed, parse_drift};
use crate::core::event::{Actor, RepoRef};
use crate::core::types::CommitSha;

/// A comment on a plain issue.
pub struct IssueComment<'a> {
    pub delivery: &'a str,
    pub repo: &'a RepoRef,
    pub issue: u64,
    pub body: &'a str,
    pub author: &'a Actor,
    pub association: Option<&'a str>,
}

impl Bot {
    /// A push: to the default branch, the drift baseline moves.
    pub(super) async fn on_push(
        &self,
        repo: &RepoRef,
        git_ref: &str,
        after: Option<&CommitSha>,
    ) -> Result<(), EventError> {
        let Some(drift) = &self.drift else {
            return Ok(());
        };
        if git_ref != format!("refs/heads/{}", repo.default_branch) || after.is_none() {
            return Ok(());
        }
        drift.after_push(repo).await.map_err(EventError::Retry)
    }

    /// A comment on a plain issue: a drift command when it is one, on a drift issue.
    pub(super) async fn on_issue_comment(&self, c: &IssueComment<'_>) -> Result<(), EventError> {
        let Some(drift) = &self.drift else {
            return Ok(());
        };
        let Some(rest) = self.drift_words(c.body).await else {
            return Ok(());
        };
        drift.seen(c.repo).await;
        let row = drift
            .drift
            .project_by_issue(&c.repo.name, c.issue)
            .await
            .map_err(EventError::Retry)?;
        let Some(row) = row else {
            // Not a drift issue: nothing of Sluice's to act on.
            return Ok(());
        };
        let reply = |body: String| DriftOutgoing::Comment {
            issue_number: c.issue,
            body,
        };
        let record = |action: AuditAction, result: AuditResult| {
            AuditRecord::new(action, AuditActor::of(c.author), result)
                .event(c.delivery)
                .repo(&c.repo.name)
                .project(&row.name, &row.key.dir, &row.key.workspace)
        };
        let say = |audit: Vec<AuditRecord>, outbox: Vec<DriftOutgoing>| async {
            drift
                .drift
                .record_event(&row.key, row.record.clone(), audit, outbox, clock::now())
                .await
                .map_err(EventError::Retry)?;
            drift.outbox_ready.notify_one();
            Ok::<(), EventError>(())
        };
        let allowed = c.association.is_some_and(|a| {
            self.settings
                .command_author_associations
                .iter()
                .any(|x| x.eq_ignore_ascii_case(a))
        });
        if !allowed {
            let why = format!(
                "@{} is not a collaborator of this repository ({}); drift commands count only from {}",
                c.author.login,
                c.association.unwrap_or("no association"),
                self.settings.command_author_associations.join(", ")
            );
            let audit = record(AuditAction::CommandRejected, AuditResult::Refused)
                .detail("reason", &why)
                .detail("command", format!("drift {rest}"));
            return say(vec![audit], vec![reply(format!("Refused: {why}."))]).await;
        }
        let bot = &self.settings.bot_name;
        let now = Utc::now();
        let cmd = match parse_drift(bot, &rest, now.date_naive()) {
            DriftParsed::Reply(text) => return say(vec![], vec![reply(text)]).await,
            DriftParsed::Command(cmd) => cmd,
        };
        let event = match &cmd {
            DriftCommand::Ack => DriftEvent::Ack {
                at: now,
                actor: c.author.clone(),
            },
            DriftCommand::Accept { until, reason } => DriftEvent::Accept {
                at: now,
                actor: c.author.clone(),
                until: *until,
                reason: reason.clone(),
            },
            DriftCommand::Check => {
                drift
                    .drift
                    .request_check(&c.repo.name, std::slice::from_ref(&row.key), clock::now())
                    .await
                    .map_err(EventError::Retry)?;
                drift.ready.notify_one();
                let audit = record(AuditAction::DriftCheck, AuditResult::Success)
                    .detail("requested_by_command", cmd.canonical(bot));
                return say(
                    vec![audit],
                    vec![reply(format!(
                        "Checking `{}` again now; this issue is updated with the result.",
                        row.name
                    ))],
                )
                .await;
            }
            DriftCommand::Remediate => {
                let done = self
                    .remediate(drift, c.repo, &row, c.issue, c.author, c.delivery)
                    .await?;
                let (audit, body) = match done {
                    super::remediate::Remediation::Open { pr, already, reply } => {
                        let audit = record(AuditAction::DriftRemediate, AuditResult::Success)
                            .detail("remediation_pr", pr.to_string())
                            .detail("already_open", already.to_string());
                        (audit, reply)
                    }
                    super::remediate::Remediation::Refused(why) => {
                        let audit = record(AuditAction::DriftRemediate, AuditResult::Refused)
                            .detail("reason", &why);
                        (audit, format!("Not done: {why}."))
                    }
                };
                return say(vec![audit], vec![reply(body)]).await;
            }
        };
        match drift
            .command_event(&row, &event, c.author, c.delivery)
            .await
            .map_err(EventError::Retry)?
        {
            Ok(()) => Ok(()),
            Err(why) => {
                let audit = record(AuditAction::CommandRejected, AuditResult::Refused)
                    .detail("reason", &why)
                    .detail("command", cmd.canonical(bot));
                say(vec![audit], vec![reply(format!("Not done: {why}."))]).await
            }
        }
    }

    /// The words after `<bot> drift` when `body` is a one-line drift command.
    async fn drift_words(&self, body: &str) -> Option<String> {
        let line = body.trim();
        if line.contains('\n') {
            return None;
        }
        let line = line.trim_matches('`').trim();
        let mut words = line.splitn(3, char::is_whitespace);
        let name = words.next()?;
        let login = self.bot_login().await;
        let named = name.eq_ignore_ascii_case(&self.settings.bot_name)
            || login.is_some_and(|l| name.eq_ignore_ascii_case(&format!("@{l}")));
        if !named || !words.next()?.eq_ignore_ascii_case("drift") {
            return None;
        }
        Some(words.next().unwrap_or("").trim().to_string())
    }
}
