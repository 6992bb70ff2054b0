//! `sluice drift remediate` on a drift issue: a pull request from the default branch's head (one
//! empty commit, pushed like a rollback's revert) whose plan of the drifted project — planned by
//! Sluice as `plan -p NAME`, since no file changed — puts Git's state back. It is reviewed and
//! applied like any pull request; nothing is applied here. Only open or acknowledged drift is
//! remediated; while the project's remediation pull request is open, asking again points to it.

use super::{Ask, Bot, CommandRun, EventError};
use crate::app::drift::DriftService;
use crate::app::ports::NewPull;
use crate::app::ports::drift::DriftRow;
use crate::core::command::{self, CommandKind, ParseContext, Parsed};
use crate::core::drift::DriftPhase;
use crate::core::event::{Actor, RepoRef};
use crate::core::reply::remediate as text;

/// What `remediate` did, for the issue reply and the audit log.
pub(super) enum Remediation {
    /// The pull request was opened (`already`: it was open before).
    Open {
        pr: u64,
        already: bool,
        reply: String,
    },
    /// Refused, with the reason.
    Refused(String),
}

impl Bot {
    pub(super) async fn remediate(
        &self,
        drift: &DriftService,
        repo: &RepoRef,
        row: &DriftRow,
        issue: u64,
        actor: &Actor,
        delivery: &str,
    ) -> Result<Remediation, EventError> {
        let phase = row.record.drift.as_ref().map(|d| d.state.phase());
        if !matches!(phase, Some(DriftPhase::Open | DriftPhase::Acknowledged)) {
            let why = text::not_open(&row.name, phase.map(DriftPhase::as_str));
            return Ok(Remediation::Refused(why));
        }
        let branch = text::branch(&row.name);
        let open = self.github.open_pulls_from(&repo.name, &branch).await?;
        if let Some(open) = open.into_iter().next() {
            return Ok(Remediation::Open {
                pr: open.number.get(),
                already: true,
                reply: text::already_open(&row.name, open.number, &open.html_url),
            });
        }
        let (git, head) = drift.fetch_default(repo).await.map_err(EventError::Retry)?;
        let login = self
            .bot_login()
            .await
            .unwrap_or_else(|| self.settings.bot_name.clone());
        let identity = (login.clone(), format!("{login}@users.noreply.github.com"));
        let message = format!(
            "{}\n\nNo change: a pull request to plan `{}` on `{}` and re-apply it over the drift of #{issue}.",
            text::title(&row.name, &repo.default_branch),
            row.name,
            repo.default_branch
        );
        let token = self.github.clone_token(repo.installation_id).await?;
        let (url, to) = (repo.clone_url.clone(), branch.clone());
        tokio::task::spawn_blocking(move || {
            let commit = git.empty_commit(&head, &message, &identity)?;
            git.push_branch(&url, &commit, &to, token.as_ref())
        })
        .await
        .map_err(|e| EventError::Retry(e.into()))?
        .map_err(|e| EventError::Retry(e.context("pushing the remediation branch")))?;
        let new = NewPull {
            title: text::title(&row.name, &repo.default_branch),
            body: text::body(
                &row.name,
                &repo.default_branch,
                issue,
                &actor.login,
                &command::project_hint(&self.settings.bot_name, CommandKind::Apply, &row.name),
                &self.settings.bot_name,
            ),
            head: branch,
            base: repo.default_branch.clone(),
        };
        let opened = self.github.create_pull(&repo.name, &new).await?;
        tracing::info!(repo = %repo.name, project = %row.name, pr = opened.number.get(), "remediation pull request opened");
        // No file changed, so autoplan plans nothing: Sluice plans the project itself, as
        // `plan -p NAME` commented by the one who asked.
        let pull = self.github.get_pull(&repo.name, opened.number).await?;
        let hint = command::project_hint(&self.settings.bot_name, CommandKind::Plan, &row.name);
        let ctx = ParseContext::new(&self.settings.bot_name);
        let Parsed::Command(cmd) = command::parse_comment(&ctx, &hint) else {
            return Err(EventError::Permanent(anyhow::anyhow!(
                "`{hint}` does not parse back to a plan command"
            )));
        };
        let run = CommandRun {
            ask: Ask {
                delivery,
                repo,
                pr: opened.number,
                actor,
            },
            cmd: &cmd,
            pull: &pull,
            comment_id: 0,
            written_at: None,
        };
        self.plan_command(&run).await?;
        Ok(Remediation::Open {
            pr: opened.number.get(),
            already: false,
            reply: text::opened(&row.name, opened.number, &opened.html_url),
        })
    }
}
