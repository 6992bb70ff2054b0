//! `rollback` on a merged pull request (PRODUCT.md §15): a branch holding the revert of its
//! merge, pushed to the repository, and a pull request "Revert #N: …" opened from it by Sluice
//! — which is then planned, reviewed, policy-checked and applied like any other pull request.
//! Nothing is ever applied here.
//!
//! Refused, with the reason replied and audited: an asker without `write` on the repository (the
//! App pushes on their behalf, so GitHub's own permission is asked, not only the comment's
//! association), a pull request that is not merged, one Sluice never applied (no successful
//! `apply` entry of it in the audit log: its revert would be planned against state it never
//! changed through Sluice — the user can still revert it by hand, gated like any PR), a merge
//! no longer on the base branch, a revert that changes nothing. A revert that conflicts is
//! reported on the original pull request with the files and the commands to revert by hand.
//! While a revert pull request from the same branch is open, a second `rollback` points to it.
//!
//! The revert is computed in the server's mirror (`adapters::git::revert`: git plumbing, no
//! work tree, no PR code run) and pushed with the token the mirror fetches with, passed to git
//! through its environment. Pushing was chosen over the REST git data API because a clean
//! three-way revert can hold file contents that exist nowhere on GitHub yet (merged text); the
//! data API would need each such blob, tree and commit created by hand, one call each.

use super::{Ask, Bot, CommandRun, EventError};
use crate::adapters::git::{RevertOutcome, RevertPlan, RevertRequest};
use crate::app::ports::store::{AuditQuery, Effects};
use crate::app::ports::{GitHubError, NewPull, PullDetails, PullLink, PullState};
use crate::core::audit::{AuditAction, AuditRecord, AuditResult};
use crate::core::event::{Actor, ActorKind, RepoRef};
use crate::core::reply::rollback::{self as text, Refusal, Reverted};
use crate::core::types::{CommitSha, PrNumber, RepoName};

/// What a rollback said on the pull request, and whether a revert pull request is open now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Said {
    pub revert_open: bool,
    /// The reply posted on the pull request (markdown).
    pub text: String,
}

/// GitHub permissions that may push a branch.
const WRITERS: [&str; 3] = ["admin", "maintain", "write"];

impl Bot {
    pub(super) async fn rollback(&self, run: &CommandRun<'_>) -> Result<(), EventError> {
        self.rollback_pull(&run.ask, run.pull).await.map(drop)
    }

    /// `sluice rollback --pr N` on the command line: the same flow for `by` (an operator, who
    /// must have `write` on the repository too), on a repository the server has had events
    /// from. Returns what was said on the pull request.
    pub async fn rollback_from_cli(
        &self,
        repo: &RepoRef,
        pr: PrNumber,
        by: &str,
        delivery: &str,
    ) -> Result<Said, EventError> {
        let actor = Actor {
            login: by.to_string(),
            id: 0,
            kind: ActorKind::Admin,
        };
        let ask = Ask {
            delivery,
            repo,
            pr,
            actor: &actor,
        };
        let pull = self.github.get_pull(&repo.name, pr).await?;
        if pull.from_fork && !self.settings.allow_fork_prs {
            let text = crate::core::reply::pull_request::fork_refusal();
            return Err(EventError::Permanent(anyhow::anyhow!("{text}")));
        }
        if let Some((text, _)) = self.base_refusal(repo, &pull.base_ref) {
            return Err(EventError::Permanent(anyhow::anyhow!("{text}")));
        }
        self.rollback_pull(&ask, &pull).await
    }

    /// The rollback of `pull` for `ask`; returns what was said on the pull request.
    async fn rollback_pull(&self, ask: &Ask<'_>, pull: &PullDetails) -> Result<Said, EventError> {
        let merge_sha = match self.rollback_refusal(ask, pull).await? {
            Ok(sha) => sha,
            Err(refusal) => return self.refuse_rollback(ask, pull, &refusal).await,
        };
        let branch = text::branch(ask.pr);
        if let Some(open) = self.open_revert(ask, &branch).await? {
            return self.revert_open(ask, &merge_sha, &open, true).await;
        }
        let git = self.fetch(ask.repo, pull).await?;
        let base_tip = Self::base_tip(&git, pull);
        if !git.has_commit(&merge_sha) {
            let refusal = Refusal::NotOnBase {
                base: pull.base_ref.clone(),
            };
            return self.refuse_rollback(ask, pull, &refusal).await;
        }
        let login = self
            .bot_login()
            .await
            .unwrap_or_else(|| self.settings.bot_name.clone());
        let req = RevertRequest {
            merge_sha: merge_sha.clone(),
            pr_head: pull.head_sha.clone(),
            base_tip,
            message: format!(
                "{}\n\nThis reverts {merge_sha}, the merge of {} ({}).\nAsked for by @{} with `rollback`.",
                text::title(ask.pr, &pull.title),
                ask.pr,
                pull.html_url,
                ask.actor.login
            ),
            identity: (login.clone(), format!("{login}@users.noreply.github.com")),
        };
        let outcome = {
            let git = git.clone();
            self.read_bounded(move || git.revert_onto(&req)).await?
        };
        let (sha, plan) = match outcome {
            RevertOutcome::Commit { sha, plan } => (sha, plan),
            RevertOutcome::Conflict { files, plan } => {
                return self
                    .revert_conflicts(ask, pull, &merge_sha, &plan, files)
                    .await;
            }
            RevertOutcome::Empty { .. } => {
                let refusal = Refusal::NothingToRevert {
                    base: pull.base_ref.clone(),
                };
                return self.refuse_rollback(ask, pull, &refusal).await;
            }
            RevertOutcome::NotOnBase => {
                let refusal = Refusal::NotOnBase {
                    base: pull.base_ref.clone(),
                };
                return self.refuse_rollback(ask, pull, &refusal).await;
            }
        };
        let token = self.github.clone_token(ask.repo.installation_id).await?;
        let (url, pushed, to) = (ask.repo.clone_url.clone(), sha.clone(), branch.clone());
        tokio::task::spawn_blocking(move || git.push_branch(&url, &pushed, &to, token.as_ref()))
            .await
            .map_err(|e| EventError::Retry(e.into()))?
            .map_err(|e| EventError::Retry(e.context("pushing the revert branch")))?;
        let new = NewPull {
            title: text::title(ask.pr, &pull.title),
            body: text::body(
                ask.pr,
                &pull.html_url,
                &ask.actor.login,
                Reverted {
                    merge_sha: merge_sha.as_str(),
                    commits: plan.commits,
                },
            ),
            head: branch.clone(),
            base: pull.base_ref.clone(),
        };
        let opened = match self.github.create_pull(&ask.repo.name, &new).await {
            Ok(opened) => opened,
            // Opened meanwhile (a second `rollback` racing this one): point to it.
            Err(e @ GitHubError::Unprocessable(_)) => match self.open_revert(ask, &branch).await? {
                Some(open) => return self.revert_open(ask, &merge_sha, &open, true).await,
                None => return Err(e.into()),
            },
            Err(e) => return Err(e.into()),
        };
        tracing::info!(repo = %ask.repo.name, pr = ask.pr.get(), revert = opened.number.get(), "revert pull request opened");
        let record = self
            .rollback_record(ask, pull, AuditResult::Success)
            .detail("revert_commit", sha.as_str())
            .detail("reverted_commits", plan.commits.to_string());
        let record = revert_details(record, &merge_sha, &branch, &opened, false);
        let body = text::opened(opened.number, &opened.html_url);
        self.say(Effects::new(vec![ask.comment(body.clone())], vec![record]))
            .await?;
        Ok(Said {
            revert_open: true,
            text: body,
        })
    }

    /// The merge commit to revert, or why there is none to revert for this asker.
    async fn rollback_refusal(
        &self,
        ask: &Ask<'_>,
        pull: &PullDetails,
    ) -> Result<Result<CommitSha, Refusal>, EventError> {
        let permission = self
            .github
            .repo_permission(&ask.repo.name, &ask.actor.login)
            .await?;
        if !WRITERS.contains(&permission.as_str()) {
            return Ok(Err(Refusal::NoPermission {
                login: ask.actor.login.clone(),
                permission,
            }));
        }
        if !pull.merged {
            return Ok(Err(Refusal::NotMerged {
                open: pull.state == PullState::Open,
            }));
        }
        let Some(merge_sha) = pull.merge_commit_sha.clone() else {
            return Ok(Err(Refusal::NoMergeCommit));
        };
        if !self.applied_by_sluice(ask).await? {
            return Ok(Err(Refusal::NotApplied));
        }
        Ok(Ok(merge_sha))
    }

    /// Whether the audit log holds a successful apply of this pull request.
    async fn applied_by_sluice(&self, ask: &Ask<'_>) -> Result<bool, EventError> {
        self.pr_applied_by_sluice(&ask.repo.name, ask.pr)
            .await
            .map_err(EventError::Retry)
    }

    /// Whether the audit log holds a successful apply of `pr` (of any of its projects, by
    /// comment or after merge): the rule that makes a merged pull request revertable by
    /// `rollback`, so only then is `rollback` suggested for it.
    pub(super) async fn pr_applied_by_sluice(
        &self,
        repo: &RepoName,
        pr: PrNumber,
    ) -> anyhow::Result<bool> {
        let q = AuditQuery {
            repo: Some(repo.full()),
            ..AuditQuery::default()
        };
        let mut applied = false;
        let pr = pr.get();
        self.store
            .scan_audit(&q, &mut |e| {
                let r = &e.record;
                applied = r.pr == Some(pr)
                    && r.action == Some(AuditAction::Apply)
                    && r.result == Some(AuditResult::Success);
                Ok(!applied)
            })
            .await?;
        Ok(applied)
    }

    /// The open revert pull request from `branch`, if any.
    async fn open_revert(
        &self,
        ask: &Ask<'_>,
        branch: &str,
    ) -> Result<Option<PullLink>, EventError> {
        let open = self.github.open_pulls_from(&ask.repo.name, branch).await?;
        Ok(open.into_iter().next())
    }

    /// Points to the revert pull request already open.
    async fn revert_open(
        &self,
        ask: &Ask<'_>,
        merge_sha: &CommitSha,
        open: &PullLink,
        already: bool,
    ) -> Result<Said, EventError> {
        let record = ask.record(AuditAction::Rollback, AuditResult::Success);
        let record = revert_details(record, merge_sha, &text::branch(ask.pr), open, already);
        let body = text::already_open(open.number, &open.html_url);
        self.say(Effects::new(vec![ask.comment(body.clone())], vec![record]))
            .await?;
        Ok(Said {
            revert_open: true,
            text: body,
        })
    }

    async fn revert_conflicts(
        &self,
        ask: &Ask<'_>,
        pull: &PullDetails,
        merge_sha: &CommitSha,
        plan: &RevertPlan,
        files: Vec<String>,
    ) -> Result<Said, EventError> {
        let more = files.len().saturating_sub(text::MAX_LISTED_CONFLICTS);
        let listed = &files[..files.len().min(text::MAX_LISTED_CONFLICTS)];
        let body = text::conflict(
            ask.pr,
            merge_sha.as_str(),
            plan.mainline,
            &pull.base_ref,
            listed,
            more,
        );
        let record = self
            .rollback_record(ask, pull, AuditResult::Failure)
            .detail("merge_commit", merge_sha.as_str())
            .detail("reason", "the revert conflicts with the base branch")
            .numbered("conflict", listed);
        self.say(Effects::new(vec![ask.comment(body.clone())], vec![record]))
            .await?;
        Ok(Said {
            revert_open: false,
            text: body,
        })
    }

    async fn refuse_rollback(
        &self,
        ask: &Ask<'_>,
        pull: &PullDetails,
        refusal: &Refusal,
    ) -> Result<Said, EventError> {
        tracing::info!(repo = %ask.repo.name, pr = ask.pr.get(), reason = %refusal.reason(), "rollback refused");
        let record = self
            .rollback_record(ask, pull, AuditResult::Refused)
            .detail("reason", refusal.reason());
        let body = refusal.reply();
        self.say(Effects::new(vec![ask.comment(body.clone())], vec![record]))
            .await?;
        Ok(Said {
            revert_open: false,
            text: body,
        })
    }

    fn rollback_record(
        &self,
        ask: &Ask<'_>,
        pull: &PullDetails,
        result: AuditResult,
    ) -> AuditRecord {
        ask.record(AuditAction::Rollback, result)
            .head(&pull.head_sha)
    }
}

fn revert_details(
    record: AuditRecord,
    merge_sha: &CommitSha,
    branch: &str,
    revert: &PullLink,
    already_open: bool,
) -> AuditRecord {
    let record = record
        .detail("merge_commit", merge_sha.as_str())
        .detail("revert_branch", branch)
        .detail("revert_pr", revert.number.get().to_string());
    if already_open {
        record.detail("already_open", "true")
    } else {
        record
    }
}
