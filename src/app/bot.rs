//! The bot: what Sluice does with each verified webhook event. One `match` over
//! [`Event`]: pull requests autoplan or release, comments become commands, reviews are read
//! when an apply asks for them. Work that takes time (terraform) is never done here: this module
//! turns events into persisted runs, replies and records; workers run the jobs.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use tokio::sync::Notify;

use super::policy::{PolicySet, TeamCache, policies_at};
use super::ports::store::PolicyOverrideRow;
use super::ports::store::{NewJob, NewRun, OutboxItem, Outgoing, PrHeadSeen, RunStart, Store};
use super::repo_state::{RepoState, base_rules_at, load_config_at};
use crate::adapters::clock::now_ms;
use crate::adapters::git::{GitRepo, Mirrors};
use crate::app::ports::{
    GitHubApi, GitHubError, MergeableState, PullDetails, PullState, StatusState,
};
use crate::config::Settings;
use crate::core::apply_gate::{self, PlanFacts, PrFacts, ProjectFacts};
use crate::core::audit::{
    AuditAction, AuditActor, AuditApproval, AuditPolicyDecision, AuditRecord, AuditResult,
};
use crate::core::command::{self, Command, CommandKind, ParseContext, Parsed};
use crate::core::event::{Actor, ActorKind, Event, PullRequestAction, PullRequestInfo, RepoRef};
use crate::core::freshness::{self, CommentHead};
use crate::core::job::JobKind;
use crate::core::lock::{Lock, LockKey};
use crate::core::policy::{self, Policy, PolicyInput, Stage};
use crate::core::projects::{self, Project};
use crate::core::types::{CommitSha, PrNumber, RepoName};

pub const STATUS_PLAN: &str = "sluice/plan";
pub const STATUS_APPLY: &str = "sluice/apply";
pub const STATUS_POLICY: &str = "sluice/policy";

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
}

fn actor_audit(a: &Actor) -> AuditActor {
    AuditActor {
        login: a.login.clone(),
        id: Some(a.id),
        kind: a.kind.as_str().to_string(),
    }
}

fn comment(repo: &RepoName, pr: PrNumber, body: impl Into<String>) -> OutboxItem {
    OutboxItem {
        repo: repo.clone(),
        pr: Some(pr),
        message: Outgoing::Comment { body: body.into() },
    }
}

pub fn status(
    repo: &RepoName,
    pr: PrNumber,
    sha: &CommitSha,
    context: &str,
    state: StatusState,
    description: impl Into<String>,
) -> OutboxItem {
    OutboxItem {
        repo: repo.clone(),
        pr: Some(pr),
        message: Outgoing::Status {
            sha: sha.clone(),
            context: context.to_string(),
            state,
            description: description.into(),
            target_url: None,
        },
    }
}

/// What a lock conflict looks like on the PR.
fn queued_message(held: &[Lock], html_base: &str) -> String {
    let mut holders: Vec<u64> = held.iter().map(|l| l.pr.get()).collect();
    holders.dedup();
    let links: Vec<String> = holders
        .iter()
        .map(|n| format!("[#{n}]({html_base}/pull/{n})"))
        .collect();
    let mut s = format!(
        "⏳ **Queued behind {}**: another pull request holds the lock of {}:\n\n",
        links.join(", "),
        if held.len() == 1 {
            "a project this change affects"
        } else {
            "projects this change affects"
        }
    );
    for l in held {
        s.push_str(&format!(
            "* `{}` — held by #{} (@{})\n",
            l.key,
            l.pr.get(),
            l.holder_login
        ));
    }
    s.push_str("\nThis plan starts by itself as soon as those locks are released (when that pull request is merged or closed, or its author comments `unlock`).");
    s
}

impl Bot {
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

    fn repo_html(repo: &RepoRef) -> String {
        format!("https://github.com/{}", repo.name.full())
    }

    /// Handles one event to completion (or to a retry).
    pub async fn handle(&self, delivery_id: &str, event: Event) -> Result<(), EventError> {
        match event {
            Event::PullRequest {
                action,
                repo,
                pr,
                sender,
            } => match action {
                PullRequestAction::Closed { merged } => {
                    self.on_closed(delivery_id, &repo, pr.number, merged, &sender)
                        .await
                }
                PullRequestAction::Opened
                | PullRequestAction::Reopened
                | PullRequestAction::ReadyForReview
                | PullRequestAction::Synchronize => {
                    if pr.draft && !self.settings.plan_drafts {
                        tracing::info!(repo = %repo.name, pr = pr.number.get(), "draft pull request: not planned");
                        return Ok(());
                    }
                    // Refused PRs are told once (not on every push) and the refusal audited.
                    let refusal = if pr.from_fork && !self.settings.allow_fork_prs {
                        Some((FORK_REFUSAL.to_string(), "fork pull requests are not run"))
                    } else if !self
                        .settings
                        .base_branch_trusted(&pr.base_ref, &repo.default_branch)
                    {
                        Some((
                            untrusted_base(&pr.base_ref, &repo.default_branch),
                            "base branch not trusted",
                        ))
                    } else {
                        None
                    };
                    if let Some((body, reason)) = refusal {
                        tracing::info!(repo = %repo.name, pr = pr.number.get(), reason, "pull request not planned");
                        if action != PullRequestAction::Synchronize {
                            self.refuse(
                                delivery_id,
                                &repo.name,
                                pr.number,
                                &pr.head_sha,
                                &sender,
                                body,
                                reason,
                            )
                            .await?;
                        }
                        return Ok(());
                    }
                    let details = pull_from_event(&pr, &repo);
                    self.plan(delivery_id, &repo, &details, &sender, None, None, true)
                        .await
                }
            },
            Event::Comment {
                repo,
                pr,
                comment_id,
                body,
                author,
                association,
                created_at_ms,
            } => {
                self.on_comment(
                    delivery_id,
                    &repo,
                    pr,
                    comment_id,
                    &body,
                    &author,
                    association.as_deref(),
                    created_at_ms,
                )
                .await
            }
            // Reviews are read from the reviews API when an apply asks (latest per reviewer), so
            // nothing is cached that could go stale.
            Event::Review { .. } | Event::Push { .. } | Event::Ping | Event::Ignored { .. } => {
                Ok(())
            }
        }
    }

    fn rejected_record(
        &self,
        delivery_id: &str,
        repo: &RepoName,
        pr: PrNumber,
        head: &CommitSha,
        actor: &Actor,
        why: &str,
    ) -> AuditRecord {
        AuditRecord {
            event_id: Some(delivery_id.to_string()),
            actor: actor_audit(actor),
            action: Some(AuditAction::CommandRejected),
            repo: Some(repo.full()),
            pr: Some(pr.get()),
            head_sha: Some(head.to_string()),
            result: Some(AuditResult::Refused),
            details: [("reason".to_string(), why.to_string())].into(),
            ..AuditRecord::default()
        }
    }

    /// Tells the PR why Sluice will not act, and records the refusal (one transaction).
    #[allow(clippy::too_many_arguments)]
    async fn refuse(
        &self,
        delivery_id: &str,
        repo: &RepoName,
        pr: PrNumber,
        head: &CommitSha,
        actor: &Actor,
        body: String,
        reason: &str,
    ) -> Result<(), EventError> {
        let record = self.rejected_record(delivery_id, repo, pr, head, actor, reason);
        self.store
            .enqueue(vec![comment(repo, pr, body)], vec![record], now_ms())
            .await
            .map_err(EventError::Retry)?;
        self.outbox_ready.notify_one();
        Ok(())
    }

    /// Fetches the PR's head and base into the mirror.
    async fn fetch(&self, repo: &RepoRef, pr: &PullDetails) -> Result<GitRepo, EventError> {
        let token = self.github.clone_token(repo.installation_id).await?;
        let n = pr.number.get();
        let base = format!("+refs/heads/{0}:refs/sluice/base/{0}", pr.base_ref);
        let sets = vec![
            vec![
                format!("+refs/pull/{n}/head:refs/sluice/pull/{n}/head"),
                base.clone(),
            ],
            vec![
                format!("+refs/heads/{0}:refs/sluice/head/{0}", pr.head_ref),
                base,
            ],
        ];
        self.mirrors
            .ensure(
                &repo.name,
                &repo.clone_url,
                token,
                sets,
                vec![pr.head_sha.clone()],
                true,
            )
            .await
            .map_err(|e| EventError::Retry(e.context(format!("fetching {} for #{n}", repo.name))))
    }

    /// The policies in force for a PR whose base is `base` (from that commit, never the head).
    pub async fn policy_set(
        &self,
        git: &GitRepo,
        base: &CommitSha,
    ) -> Result<PolicySet, EventError> {
        let (git, base, server, repo) = (
            git.clone(),
            base.clone(),
            self.server_policies.clone(),
            self.settings.repo_policies,
        );
        self.read_bounded(move || policies_at(&git, &base, &server, repo))
            .await
    }

    /// Runs blocking work that reads a PR's commits on a reading thread of its own, within
    /// `limits.detection_timeout_secs` (see `app::bounded`).
    async fn read_bounded<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> Result<T, EventError> {
        let budget = std::time::Duration::from_secs(self.settings.limits.detection_timeout_secs);
        match super::bounded::run("reading the pull request", budget, work).await {
            Ok(read) => read.map_err(EventError::Permanent),
            Err(e @ super::bounded::BoundedError::Busy { .. }) => Err(EventError::Retry(e.into())),
            Err(e) => Err(EventError::Permanent(e.into())),
        }
    }

    /// The refusal of a plan that would run more than `limits.projects_per_run` projects: the
    /// comment, the failed status and the audit entry. `None` when within the limit.
    fn too_many_projects(
        &self,
        delivery_id: &str,
        repo: &RepoRef,
        pr: &PullDetails,
        actor: &Actor,
        head: &CommitSha,
        n: usize,
    ) -> Option<(Vec<OutboxItem>, AuditRecord)> {
        let max = self.settings.limits.projects_per_run;
        if n <= max {
            return None;
        }
        let body = format!(
            "❌ **Sluice did not plan this pull request**: it affects {n} projects, and one plan \
             runs at most {max} (limits.projects_per_run). Plan some of them with \
             `{bot} plan -d <dir>` or `{bot} plan -p <project>`.",
            bot = self.settings.bot_name
        );
        let record = AuditRecord {
            event_id: Some(delivery_id.to_string()),
            actor: actor_audit(actor),
            action: Some(AuditAction::PlanRefused),
            repo: Some(repo.name.full()),
            pr: Some(pr.number.get()),
            head_sha: Some(head.to_string()),
            result: Some(AuditResult::Refused),
            error_class: Some("limit".into()),
            details: [
                ("projects".to_string(), n.to_string()),
                (
                    "limit".to_string(),
                    format!("limits.projects_per_run = {max}"),
                ),
            ]
            .into(),
            ..AuditRecord::default()
        };
        let out = vec![
            comment(&repo.name, pr.number, body),
            status(
                &repo.name,
                pr.number,
                head,
                STATUS_PLAN,
                StatusState::Failure,
                format!("{n} projects: more than {max} at once"),
            ),
        ];
        Some((out, record))
    }

    /// A refused policy check, as the audit log records it.
    fn policy_refusal(
        &self,
        delivery_id: &str,
        repo: &RepoName,
        pr: &PullDetails,
        actor: &Actor,
        project: &Project,
        decisions: Vec<AuditPolicyDecision>,
    ) -> AuditRecord {
        AuditRecord {
            event_id: Some(delivery_id.to_string()),
            actor: actor_audit(actor),
            action: Some(AuditAction::PolicyCheck),
            repo: Some(repo.full()),
            pr: Some(pr.number.get()),
            base_sha: Some(pr.base_sha.to_string()),
            head_sha: Some(pr.head_sha.to_string()),
            project: Some(project.name.to_string()),
            dir: Some(project.dir.to_string()),
            workspace: Some(project.workspace.to_string()),
            result: Some(AuditResult::Refused),
            policy: decisions,
            ..AuditRecord::default()
        }
    }

    /// The commit the base branch points at now (after a fetch).
    fn base_tip(git: &GitRepo, pr: &PullDetails) -> CommitSha {
        git.resolve(&format!("refs/sluice/base/{}", pr.base_ref))
            .unwrap_or_else(|_| pr.base_sha.clone())
    }

    /// Plans the affected (or targeted) projects of a PR: fetch, detect, lock, queue.
    #[allow(clippy::too_many_arguments)]
    async fn plan(
        &self,
        delivery_id: &str,
        repo: &RepoRef,
        pr: &PullDetails,
        actor: &Actor,
        command: Option<&Command>,
        comment_id: Option<u64>,
        autoplan: bool,
    ) -> Result<(), EventError> {
        let t0 = std::time::Instant::now();
        let git = self.fetch(repo, pr).await?;
        tracing::debug!(ms = t0.elapsed().as_millis() as u64, "fetched");
        let base = Self::base_tip(&git, pr);
        let head = pr.head_sha.clone();
        let state = {
            let (git, base, head) = (git.clone(), base.clone(), head.clone());
            self.read_bounded(move || RepoState::load(&git, &base, &head))
                .await?
        };
        let now = now_ms();
        if state.rejected() {
            let mut body = format!(
                "❌ **Sluice cannot plan this pull request**: `{}` has errors at {}:\n\n```\n",
                state.config_file.as_deref().unwrap_or("the configuration"),
                head.short()
            );
            for d in state.diagnostics.iter().filter(|d| d.is_error()) {
                body.push_str(&format!("{d}\n"));
            }
            body.push_str("```\nFix the file and push again; `sluice config check` shows the same errors locally.");
            let record = AuditRecord {
                event_id: Some(delivery_id.to_string()),
                actor: actor_audit(actor),
                action: Some(AuditAction::ConfigRejected),
                repo: Some(repo.name.full()),
                pr: Some(pr.number.get()),
                base_sha: Some(base.to_string()),
                head_sha: Some(head.to_string()),
                result: Some(AuditResult::Refused),
                details: state
                    .diagnostics
                    .iter()
                    .enumerate()
                    .map(|(i, d)| (format!("diagnostic_{i:03}"), d.to_string()))
                    .collect(),
                ..AuditRecord::default()
            };
            self.store
                .enqueue(
                    vec![
                        comment(&repo.name, pr.number, body),
                        status(
                            &repo.name,
                            pr.number,
                            &head,
                            STATUS_PLAN,
                            StatusState::Failure,
                            "configuration has errors",
                        ),
                    ],
                    vec![record],
                    now,
                )
                .await
                .map_err(EventError::Retry)?;
            self.outbox_ready.notify_one();
            return Ok(());
        }

        // Which projects.
        let targeted = command
            .map(|c| &c.targets)
            .filter(|t| t.project.is_some() || t.dir.is_some() || t.workspace.is_some());
        let (selected, notes): (Vec<Project>, Vec<String>) = match targeted {
            Some(t) => {
                let all = state.all_projects();
                match projects::select_projects(&all.projects, t) {
                    Ok(found) => (found.into_iter().cloned().collect(), vec![]),
                    Err(msg) => {
                        let body = with_detection_errors(format!("❌ {msg}"), &all.diagnostics);
                        self.reply(repo, pr.number, comment_id, body).await?;
                        return Ok(());
                    }
                }
            }
            None => {
                let d = state.affected_projects(autoplan);
                (
                    d.projects,
                    d.diagnostics
                        .iter()
                        .filter(|d| d.is_error())
                        .map(|d| d.to_string())
                        .collect(),
                )
            }
        };
        if !notes.is_empty() {
            // Errors that stop some projects (a glob matching nothing, a dir escaping the
            // repository, a module cycle) are told, not just logged; the other projects go on.
            tracing::info!(repo = %repo.name, pr = pr.number.get(), notes = ?notes, "project detection errors");
            let body = format!(
                "⚠️ **Some projects could not be planned** at {}:\n\n```\n{}\n```\n`sluice config check` shows the same locally.",
                head.short(),
                notes.join("\n")
            );
            self.store
                .enqueue(vec![comment(&repo.name, pr.number, body)], vec![], now)
                .await
                .map_err(EventError::Retry)?;
            self.outbox_ready.notify_one();
        }
        if selected.is_empty() {
            let mut out = vec![status(
                &repo.name,
                pr.number,
                &head,
                STATUS_PLAN,
                StatusState::Success,
                "0 projects affected",
            )];
            if command.is_some() {
                out.push(comment(
                    &repo.name,
                    pr.number,
                    "Ran plan for **0 projects**: no Terraform project is affected by the files this pull request changes.",
                ));
            }
            self.store
                .enqueue(out, vec![], now)
                .await
                .map_err(EventError::Retry)?;
            self.outbox_ready.notify_one();
            return Ok(());
        }
        if let Some((out, record)) =
            self.too_many_projects(delivery_id, repo, pr, actor, &head, selected.len())
        {
            self.store
                .enqueue(out, vec![record], now)
                .await
                .map_err(EventError::Retry)?;
            self.outbox_ready.notify_one();
            return Ok(());
        }

        // Who may plan (policies from the base branch).
        tracing::debug!(ms = t0.elapsed().as_millis() as u64, "projects selected");
        let policies = self.policy_set(&git, &base).await?;
        tracing::debug!(ms = t0.elapsed().as_millis() as u64, "policies loaded");
        if !policies.policies.is_empty() {
            let teams = self.teams.resolve(&*self.github, &policies.policies).await;
            let mut body = String::new();
            let mut records = Vec::new();
            for p in &selected {
                let base_names = policies.base_names_of(p);
                let input = PolicyInput {
                    stage: Stage::Plan,
                    actor: &actor.login,
                    author: &pr.author.login,
                    target_branch: &pr.base_ref,
                    head_sha: &head,
                    project: p,
                    base_names: &base_names,
                    plan: None,
                    approvals: &[],
                    teams: &teams,
                    overrides: &[],
                };
                let decisions = policy::evaluate(&policies.policies, &input);
                if policy::blocks(&decisions) {
                    body.push_str(&policy::render_section(
                        &decisions,
                        &self.settings.bot_name,
                        &p.name,
                    ));
                    body.push('\n');
                    records.push(self.policy_refusal(
                        delivery_id,
                        &repo.name,
                        pr,
                        actor,
                        p,
                        policies.audit(&decisions),
                    ));
                }
            }
            if !records.is_empty() {
                let body = format!(
                    "🚫 **Plan refused by policy** for @{}:\n\n{body}",
                    actor.login
                );
                self.store
                    .enqueue(
                        vec![
                            comment(&repo.name, pr.number, body),
                            status(
                                &repo.name,
                                pr.number,
                                &head,
                                STATUS_PLAN,
                                StatusState::Failure,
                                "refused by policy",
                            ),
                        ],
                        records,
                        now,
                    )
                    .await
                    .map_err(EventError::Retry)?;
                self.outbox_ready.notify_one();
                return Ok(());
            }
        }

        let n = selected.len();
        let lock_keys: Vec<LockKey> = selected
            .iter()
            .map(|p| LockKey {
                dir: p.dir.clone(),
                workspace: p.workspace.clone(),
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let jobs = selected
            .iter()
            .map(|p| {
                Ok(NewJob {
                    kind: JobKind::Plan,
                    project_name: p.name.to_string(),
                    project_dir: p.dir.to_string(),
                    workspace: p.workspace.to_string(),
                    project_json: serde_json::to_string(p)?,
                    plan_id: None,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()
            .map_err(EventError::Permanent)?;
        let run = NewRun {
            repo: repo.name.clone(),
            pr: pr.number,
            kind: JobKind::Plan,
            trigger: if command.is_some() {
                "comment".into()
            } else {
                "autoplan".into()
            },
            head_sha: head.clone(),
            base_sha: base.clone(),
            base_ref: pr.base_ref.clone(),
            clone_url: repo.clone_url.clone(),
            installation_id: repo.installation_id,
            actor: actor.clone(),
            comment_id,
            event_id: Some(format!("{delivery_id}:plan")),
            extra_args: command.map(|c| c.extra_args.clone()).unwrap_or_default(),
            verbose: command.is_some_and(|c| c.verbose),
            jobs,
            locks: lock_keys.clone(),
        };
        let lock_record = AuditRecord {
            event_id: Some(delivery_id.to_string()),
            actor: actor_audit(actor),
            action: Some(AuditAction::LockAcquired),
            repo: Some(repo.name.full()),
            pr: Some(pr.number.get()),
            base_sha: Some(base.to_string()),
            head_sha: Some(head.to_string()),
            result: Some(AuditResult::Success),
            details: lock_keys
                .iter()
                .enumerate()
                .map(|(i, k)| (format!("lock_{i:03}"), k.to_string()))
                .collect(),
            ..AuditRecord::default()
        };
        let pending = status(
            &repo.name,
            pr.number,
            &head,
            STATUS_PLAN,
            StatusState::Pending,
            format!("planning {n} project{}", if n == 1 { "" } else { "s" }),
        );
        let started = self
            .store
            .create_run(run, vec![pending], vec![lock_record], now)
            .await
            .map_err(EventError::Retry)?;
        match started {
            RunStart::Queued { run_id } => {
                tracing::info!(repo = %repo.name, pr = pr.number.get(), run_id, projects = n, "plan queued");
                self.jobs_ready.notify_one();
            }
            RunStart::Waiting { run_id, held } => {
                tracing::info!(repo = %repo.name, pr = pr.number.get(), run_id, "plan waits for locks");
                let holder = held.first().map(|l| l.pr.get()).unwrap_or_default();
                let record = AuditRecord {
                    event_id: Some(delivery_id.to_string()),
                    actor: actor_audit(actor),
                    action: Some(AuditAction::LockConflict),
                    repo: Some(repo.name.full()),
                    pr: Some(pr.number.get()),
                    head_sha: Some(head.to_string()),
                    result: Some(AuditResult::Refused),
                    details: held
                        .iter()
                        .enumerate()
                        .map(|(i, l)| {
                            (
                                format!("held_{i:03}"),
                                format!("{} by #{}", l.key, l.pr.get()),
                            )
                        })
                        .collect(),
                    ..AuditRecord::default()
                };
                self.store
                    .enqueue(
                        vec![
                            comment(
                                &repo.name,
                                pr.number,
                                queued_message(&held, &Self::repo_html(repo)),
                            ),
                            status(
                                &repo.name,
                                pr.number,
                                &head,
                                STATUS_PLAN,
                                StatusState::Pending,
                                format!("queued behind #{holder}"),
                            ),
                        ],
                        vec![record],
                        now_ms(),
                    )
                    .await
                    .map_err(EventError::Retry)?;
            }
            RunStart::AlreadyExists { run_id } => {
                tracing::info!(run_id, "event already turned into a run");
            }
            RunStart::Refused { reason } => {
                return Err(EventError::Permanent(anyhow::anyhow!(
                    "plan run refused: {reason}"
                )));
            }
        }
        self.outbox_ready.notify_one();
        Ok(())
    }

    async fn reply(
        &self,
        repo: &RepoRef,
        pr: PrNumber,
        _comment_id: Option<u64>,
        body: String,
    ) -> Result<(), EventError> {
        self.store
            .enqueue(vec![comment(&repo.name, pr, body)], vec![], now_ms())
            .await
            .map_err(EventError::Retry)?;
        self.outbox_ready.notify_one();
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn on_comment(
        &self,
        delivery_id: &str,
        repo: &RepoRef,
        pr_number: PrNumber,
        comment_id: u64,
        body: &str,
        author: &Actor,
        association: Option<&str>,
        created_at_ms: Option<i64>,
    ) -> Result<(), EventError> {
        let login = self.bot_login().await;
        if let Some(me) = &login
            && (author.login.eq_ignore_ascii_case(me)
                || author
                    .login
                    .eq_ignore_ascii_case(me.trim_end_matches("[bot]")))
        {
            return Ok(()); // our own comments
        }
        let ctx = ParseContext {
            bot_name: &self.settings.bot_name,
            bot_login: login.as_deref(),
            enabled: &self.enabled,
        };
        let cmd = match command::parse_comment(&ctx, body) {
            Parsed::Ignore => return Ok(()),
            // Usage hints only for those who may run commands: no one else makes the bot talk.
            Parsed::Reply(text) if self.settings.may_comment_commands(association) => {
                return self.reply(repo, pr_number, Some(comment_id), text).await;
            }
            Parsed::Reply(_) => return Ok(()),
            Parsed::Command(cmd) => cmd,
        };
        // Heard: an "eyes" reaction before any slow work (outsiders get a refusal below instead).
        let heard = if self.settings.may_comment_commands(association) {
            vec![OutboxItem {
                repo: repo.name.clone(),
                pr: Some(pr_number),
                message: Outgoing::Reaction {
                    comment_id,
                    content: "eyes".into(),
                },
            }]
        } else {
            vec![]
        };
        self.store
            .enqueue(heard, vec![], now_ms())
            .await
            .map_err(EventError::Retry)?;
        self.outbox_ready.notify_one();

        if cmd.kind == CommandKind::Help && self.settings.may_comment_commands(association) {
            return self
                .reply(repo, pr_number, Some(comment_id), command::usage(&ctx))
                .await;
        }
        let pr = match self.github.get_pull(&repo.name, pr_number).await {
            Ok(pr) => pr,
            Err(GitHubError::NotFound(_)) => {
                tracing::warn!(repo = %repo.name, pr = pr_number.get(), "pull request no longer exists; command dropped");
                self.store
                    .append_audit(
                        vec![AuditRecord {
                            event_id: Some(delivery_id.to_string()),
                            actor: actor_audit(author),
                            action: Some(AuditAction::CommandRejected),
                            repo: Some(repo.name.full()),
                            pr: Some(pr_number.get()),
                            result: Some(AuditResult::Refused),
                            details: [(
                                "reason".to_string(),
                                "the pull request does not exist (GitHub answered 404)".to_string(),
                            )]
                            .into(),
                            ..AuditRecord::default()
                        }],
                        now_ms(),
                    )
                    .await
                    .map_err(EventError::Retry)?;
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        if pr.state != PullState::Open && cmd.kind != CommandKind::Unlock {
            return self
                .reply(
                    repo,
                    pr_number,
                    Some(comment_id),
                    format!(
                        "❌ `{}` was not run: this pull request is closed.",
                        cmd.kind.name()
                    ),
                )
                .await;
        }
        if !self.settings.may_comment_commands(association) {
            let why = format!(
                "@{} is not a collaborator of this repository (GitHub says `{}`); commands are taken from {} only",
                author.login,
                association.unwrap_or("unknown"),
                self.settings.command_author_associations.join(", ")
            );
            return self
                .refuse(
                    delivery_id,
                    &repo.name,
                    pr_number,
                    &pr.head_sha,
                    author,
                    format!("🚫 `{}` was not run: {why}.", cmd.kind.name()),
                    &why,
                )
                .await;
        }
        if pr.from_fork && !self.settings.allow_fork_prs {
            return self
                .reply(repo, pr_number, Some(comment_id), FORK_REFUSAL.to_string())
                .await;
        }
        // Unlock stays available: it only releases what this PR holds.
        if cmd.kind != CommandKind::Unlock
            && !self
                .settings
                .base_branch_trusted(&pr.base_ref, &repo.default_branch)
        {
            return self
                .reply(
                    repo,
                    pr_number,
                    Some(comment_id),
                    untrusted_base(&pr.base_ref, &repo.default_branch),
                )
                .await;
        }
        // `apply` and `approve_policies` act only on the head the comment was written on.
        let written_on = self.comment_head(&repo.name, &pr, created_at_ms).await?;
        if matches!(cmd.kind, CommandKind::Apply | CommandKind::ApprovePolicies)
            && let (Some(body), Some(why)) = (
                written_on.refusal(cmd.kind.name(), &self.settings.bot_name),
                written_on.audit_reason(),
            )
        {
            tracing::info!(repo = %repo.name, pr = pr_number.get(), why, "stale command refused");
            return self
                .refuse(
                    delivery_id,
                    &repo.name,
                    pr_number,
                    &pr.head_sha,
                    author,
                    body,
                    &why,
                )
                .await;
        }
        match cmd.kind {
            CommandKind::Plan => {
                self.plan(
                    delivery_id,
                    repo,
                    &pr,
                    author,
                    Some(&cmd),
                    Some(comment_id),
                    false,
                )
                .await
            }
            CommandKind::Apply => {
                self.apply(
                    delivery_id,
                    repo,
                    &pr,
                    author,
                    &cmd,
                    comment_id,
                    created_at_ms,
                )
                .await
            }
            CommandKind::Unlock => {
                if self.apply_running(&repo.name, pr_number).await? {
                    return self
                        .reply(
                            repo,
                            pr_number,
                            Some(comment_id),
                            "⏳ `unlock` was not run: an apply of this pull request is running, and its locks \
keep other pull requests off the same workspaces until it ends. Unlock after it finishes."
                                .to_string(),
                        )
                        .await;
                }
                if let Some(refusal) = self.unlock_refusal(repo, &pr, author).await? {
                    return self.reply(repo, pr_number, Some(comment_id), refusal).await;
                }
                self.unlock(delivery_id, repo, pr_number, author).await
            }
            CommandKind::Version => self.version(repo, &pr).await,
            CommandKind::ApprovePolicies => {
                self.approve_policies(
                    delivery_id,
                    repo,
                    &pr,
                    author,
                    &cmd,
                    comment_id,
                    created_at_ms,
                )
                .await
            }
            // Answered above (outsiders were refused before this match).
            CommandKind::Help => Ok(()),
        }
    }

    /// Which head a comment written at `created_at_ms` was written on (`core::freshness`).
    /// Records the head the pull request has now when Sluice had no sighting of it (a missed
    /// delivery), at the later of now and the comment's time, never earlier.
    async fn comment_head(
        &self,
        repo: &RepoName,
        pr: &PullDetails,
        created_at_ms: Option<i64>,
    ) -> Result<CommentHead, EventError> {
        let seen = self
            .store
            .pr_heads(repo, pr.number)
            .await
            .map_err(EventError::Retry)?;
        if freshness::needs_sighting(&pr.head_sha, &seen) {
            self.store
                .record_pr_head(PrHeadSeen {
                    repo: repo.clone(),
                    pr: pr.number,
                    sha: pr.head_sha.clone(),
                    at_ms: now_ms().max(created_at_ms.unwrap_or(i64::MIN)),
                    source: "command".into(),
                })
                .await
                .map_err(EventError::Retry)?;
        }
        Ok(freshness::head_at_comment(
            created_at_ms,
            &pr.head_sha,
            &seen,
        ))
    }

    async fn version(&self, repo: &RepoRef, pr: &PullDetails) -> Result<(), EventError> {
        let git = self.fetch(repo, pr).await?;
        let state = {
            let (git, base, head) = (git.clone(), pr.base_sha.clone(), pr.head_sha.clone());
            self.read_bounded(move || RepoState::load(&git, &base, &head))
                .await?
        };
        let resolver = crate::adapters::terraform::EngineResolver {
            terraform_bin: self.settings.terraform_bin.clone(),
            tofu_bin: self.settings.tofu_bin.clone(),
            versions_dir: self.settings.engine_versions_dir.clone(),
        };
        let mut body = String::from(
            "| project | dir | workspace | engine | version |\n|---|---|---|---|---|\n",
        );
        let mut cache: HashMap<(String, Option<String>), String> = HashMap::new();
        for p in state.all_projects().projects {
            let key = (p.engine.as_str().to_string(), p.terraform_version.clone());
            let version = match cache.get(&key) {
                Some(v) => v.clone(),
                None => {
                    let v = match resolver.resolve(p.engine, p.terraform_version.as_deref()) {
                        Ok(bin) => crate::adapters::terraform::binary_version(
                            &bin,
                            crate::adapters::terraform::VERSION_TIMEOUT,
                        )
                        .await
                        .unwrap_or_else(|e| format!("unknown ({e:#})")),
                        Err(e) => format!("unavailable: {e:#}"),
                    };
                    cache.insert(key, v.clone());
                    v
                }
            };
            body.push_str(&format!(
                "| {} | `{}` | `{}` | {} | {} |\n",
                p.name, p.dir, p.workspace, p.engine, version
            ));
        }
        self.reply(repo, pr.number, None, body).await
    }

    /// Whether one of the PR's apply jobs is running now.
    async fn apply_running(&self, repo: &RepoName, pr: PrNumber) -> Result<bool, EventError> {
        for run in self
            .store
            .open_runs(repo, pr)
            .await
            .map_err(EventError::Retry)?
        {
            if run.kind != JobKind::Apply {
                continue;
            }
            let jobs = self
                .store
                .jobs_of_run(run.id)
                .await
                .map_err(EventError::Retry)?;
            if jobs
                .iter()
                .any(|j| j.state == crate::core::job::JobState::Running)
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn unlock(
        &self,
        delivery_id: &str,
        repo: &RepoRef,
        pr: PrNumber,
        actor: &Actor,
    ) -> Result<(), EventError> {
        let now = now_ms();
        let reason = serde_json::json!({ "cancelled": format!("cancelled by `unlock` from @{}", actor.login) }).to_string();
        self.store
            .cancel_pending_jobs(&repo.name, pr, &reason, now)
            .await
            .map_err(EventError::Retry)?;
        let discarded = self
            .store
            .discard_plans(&repo.name, pr, now)
            .await
            .map_err(EventError::Retry)?;
        let locks_before: Vec<Lock> = self
            .store
            .locks(Some(&repo.name))
            .await
            .map_err(EventError::Retry)?
            .into_iter()
            .filter(|l| l.pr == pr)
            .collect();
        let body = if locks_before.is_empty() && discarded.is_empty() {
            "🔓 Nothing to unlock: this pull request holds no locks and has no saved plans."
                .to_string()
        } else {
            let mut s = format!(
                "🔓 Released {} lock{} and discarded {} plan{} of this pull request.\n",
                locks_before.len(),
                if locks_before.len() == 1 { "" } else { "s" },
                discarded.len(),
                if discarded.len() == 1 { "" } else { "s" }
            );
            for l in &locks_before {
                s.push_str(&format!("* `{}`\n", l.key));
            }
            s.push_str(&format!(
                "\nComment `{} plan` to plan (and lock) again.",
                self.settings.bot_name
            ));
            s
        };
        let record = AuditRecord {
            event_id: Some(delivery_id.to_string()),
            actor: actor_audit(actor),
            action: Some(AuditAction::Unlock),
            repo: Some(repo.name.full()),
            pr: Some(pr.get()),
            result: Some(AuditResult::Success),
            details: locks_before
                .iter()
                .enumerate()
                .map(|(i, l)| (format!("lock_{i:03}"), l.key.to_string()))
                .collect(),
            ..AuditRecord::default()
        };
        let (_, started) = self
            .store
            .release_pr_locks(
                &repo.name,
                pr,
                vec![comment(&repo.name, pr, body)],
                vec![record],
                now,
            )
            .await
            .map_err(EventError::Retry)?;
        remove_plan_files(&discarded);
        if !started.is_empty() {
            self.jobs_ready.notify_one();
        }
        self.outbox_ready.notify_one();
        Ok(())
    }

    async fn on_closed(
        &self,
        delivery_id: &str,
        repo: &RepoRef,
        pr: PrNumber,
        merged: bool,
        actor: &Actor,
    ) -> Result<(), EventError> {
        let now = now_ms();
        let reason = serde_json::json!({ "cancelled": if merged { "the pull request was merged" } else { "the pull request was closed" } }).to_string();
        // Locks are released even if the other cleanup fails: each step is independent.
        if let Err(e) = self
            .store
            .cancel_pending_jobs(&repo.name, pr, &reason, now)
            .await
        {
            tracing::error!(error = %format!("{e:#}"), "cancelling jobs of a closed PR failed; releasing locks anyway");
        }
        let discarded = match self.store.discard_plans(&repo.name, pr, now).await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "discarding plans of a closed PR failed; releasing locks anyway");
                Vec::new()
            }
        };
        let held: Vec<Lock> = self
            .store
            .locks(Some(&repo.name))
            .await
            .map_err(EventError::Retry)?
            .into_iter()
            .filter(|l| l.pr == pr)
            .collect();
        let mut out = Vec::new();
        if !held.is_empty() || !discarded.is_empty() {
            out.push(comment(
                &repo.name,
                pr,
                format!(
                    "Pull request {}: released {} lock{} and discarded {} plan{}.",
                    if merged { "merged" } else { "closed" },
                    held.len(),
                    if held.len() == 1 { "" } else { "s" },
                    discarded.len(),
                    if discarded.len() == 1 { "" } else { "s" },
                ),
            ));
        }
        let mut records = vec![AuditRecord {
            event_id: Some(delivery_id.to_string()),
            actor: actor_audit(actor),
            action: Some(AuditAction::PullRequestClosed),
            repo: Some(repo.name.full()),
            pr: Some(pr.get()),
            result: Some(AuditResult::Success),
            details: [("merged".to_string(), merged.to_string())].into(),
            ..AuditRecord::default()
        }];
        for l in &held {
            records.push(AuditRecord {
                event_id: Some(delivery_id.to_string()),
                actor: actor_audit(actor),
                action: Some(AuditAction::LockReleased),
                repo: Some(repo.name.full()),
                pr: Some(pr.get()),
                dir: Some(l.key.dir.to_string()),
                workspace: Some(l.key.workspace.to_string()),
                result: Some(AuditResult::Success),
                ..AuditRecord::default()
            });
        }
        let (_, started) = self
            .store
            .release_pr_locks(&repo.name, pr, out, records, now)
            .await
            .map_err(EventError::Retry)?;
        remove_plan_files(&discarded);
        if !started.is_empty() {
            self.jobs_ready.notify_one();
        }
        self.outbox_ready.notify_one();
        Ok(())
    }

    /// `apply`: checks the gate for every targeted project, then queues the applies — or refuses
    /// with every reason, and applies nothing. Plans made after the comment (`comment_at_ms`)
    /// are refused too: the commenter cannot have read them.
    #[allow(clippy::too_many_arguments)]
    async fn apply(
        &self,
        delivery_id: &str,
        repo: &RepoRef,
        pr: &PullDetails,
        actor: &Actor,
        cmd: &Command,
        comment_id: u64,
        comment_at_ms: Option<i64>,
    ) -> Result<(), EventError> {
        let now = now_ms();
        let plans = self
            .store
            .current_plans(&repo.name, pr.number)
            .await
            .map_err(EventError::Retry)?;
        let targeted = targeted_plans(&plans, &cmd.targets)?;
        if targeted.is_empty() {
            let what = if plans.is_empty() {
                "this pull request has no saved plans"
            } else {
                "no saved plan matches that target"
            };
            return self
                .reply(
                    repo,
                    pr.number,
                    Some(comment_id),
                    format!(
                        "❌ Nothing to apply: {what}. Comment `{} plan` first.",
                        self.settings.bot_name
                    ),
                )
                .await;
        }

        // Facts for the gate. Requirements come from the base branch's configuration.
        let git = self.fetch(repo, pr).await?;
        let base_tip = Self::base_tip(&git, pr);
        let base_rules = {
            let (git, tip) = (git.clone(), base_tip.clone());
            self.read_bounded(move || base_rules_at(&git, &tip)).await?
        };
        let reviews = self.github.list_reviews(&repo.name, pr.number).await?;
        let undiverged = git.is_ancestor(&base_tip, &pr.head_sha).ok();
        let locks = self
            .store
            .locks(Some(&repo.name))
            .await
            .map_err(EventError::Retry)?;
        let facts = PrFacts {
            open: pr.state == PullState::Open,
            head_sha: &pr.head_sha,
            author: &pr.author,
            reviews: &reviews,
            mergeable_state: Some(pr.mergeable_state.as_str()),
            undiverged,
        };
        let mut refusals: Vec<(String, Vec<String>)> = Vec::new();
        let mut projects: Vec<Project> = Vec::new();
        for plan in &targeted {
            let project: Project = match self.project_of_plan(plan.job_id).await {
                Some(p) => p,
                None => {
                    refusals.push((
                        plan.project_name.clone(),
                        vec!["the plan's project could not be read; run plan again".into()],
                    ));
                    continue;
                }
            };
            // By the dir the plan ran in and its workspace, never the PR's name for it.
            let requirements = base_rules
                .identity(&project.dir, &project.workspace)
                .requirements;
            let current =
                super::project_run::sha256_file(std::path::Path::new(&plan.plan_file)).ok();
            let plan_facts = PlanFacts {
                head_sha: plan.head_sha.clone(),
                recorded_sha256: plan.plan_sha256.clone(),
                current_sha256: current,
            };
            let key = LockKey {
                dir: project.dir.clone(),
                workspace: project.workspace.clone(),
            };
            let mut reasons = apply_gate::refusals(
                &facts,
                &ProjectFacts {
                    requirements: &requirements,
                    plan: Some(&plan_facts),
                    holds_locks: crate::core::lock::holds_all(pr.number, &[key], &locks),
                },
            );
            if freshness::plan_after_comment(comment_at_ms, plan.created_at) {
                reasons.push(freshness::plan_after_comment_reason(
                    "apply",
                    &self.settings.bot_name,
                ));
            }
            if !reasons.is_empty() {
                refusals.push((plan.project_name.clone(), reasons));
            }
            projects.push(project);
        }
        let approvals: Vec<AuditApproval> = apply_gate::approvals(&reviews, &pr.author)
            .into_iter()
            .map(|a| AuditApproval {
                login: a.login,
                user_id: a.user_id,
                review_id: a.review_id,
                submitted_at: a.submitted_at,
            })
            .collect();

        // Policies (from the base branch) must allow the apply.
        let policies = self.policy_set(&git, &base_tip).await?;
        let mut policy_sections = Vec::new();
        let mut policy_audit: HashMap<String, Vec<AuditPolicyDecision>> = HashMap::new();
        if policies.broken {
            for plan in &targeted {
                refusals.push((plan.project_name.clone(), vec![policies.broken_message()]));
            }
        } else if !policies.policies.is_empty() {
            let teams = self.teams.resolve(&*self.github, &policies.policies).await;
            let overrides = self.overrides(&repo.name, pr).await?;
            let in_force = apply_gate::approvals(&reviews, &pr.author);
            for (plan, project) in targeted.iter().zip(&projects) {
                let parsed = read_plan_json(&plan.plan_file);
                let base_names = policies.base_names_of(project);
                let input = PolicyInput {
                    stage: Stage::Apply,
                    actor: &actor.login,
                    author: &pr.author.login,
                    target_branch: &pr.base_ref,
                    head_sha: &pr.head_sha,
                    project,
                    base_names: &base_names,
                    plan: parsed.as_ref(),
                    approvals: &in_force,
                    teams: &teams,
                    overrides: &overrides,
                };
                let decisions = policy::evaluate(&policies.policies, &input);
                policy_audit.insert(plan.project_name.clone(), policies.audit(&decisions));
                if policy::blocks(&decisions) {
                    let failing: Vec<String> = decisions
                        .iter()
                        .filter(|d| d.is_blocking())
                        .map(|d| format!("policy `{}` failed", d.policy))
                        .collect();
                    match refusals
                        .iter_mut()
                        .find(|(name, _)| name == &plan.project_name)
                    {
                        Some((_, reasons)) => reasons.extend(failing),
                        None => refusals.push((plan.project_name.clone(), failing)),
                    }
                    policy_sections.push(format!(
                        "Policies for **{}**:\n\n{}",
                        project.name,
                        policy::render_section(&decisions, &self.settings.bot_name, &project.name)
                    ));
                }
            }
        }

        if !refusals.is_empty() {
            let mut body = String::from("🚫 **Apply refused.** Nothing was applied:\n\n");
            let mut records = Vec::new();
            for (project, reasons) in &refusals {
                body.push_str(&format!("**{project}**\n"));
                for r in reasons {
                    body.push_str(&format!("* {r}\n"));
                }
                body.push('\n');
                let plan = targeted.iter().find(|p| &p.project_name == project);
                let decisions = policy_audit.get(project).cloned().unwrap_or_default();
                records.push(AuditRecord {
                    event_id: Some(delivery_id.to_string()),
                    actor: actor_audit(actor),
                    action: Some(AuditAction::ApplyRefused),
                    repo: Some(repo.name.full()),
                    pr: Some(pr.number.get()),
                    base_sha: Some(base_tip.to_string()),
                    head_sha: Some(pr.head_sha.to_string()),
                    project: Some(project.clone()),
                    dir: plan.map(|p| p.project_dir.clone()),
                    workspace: plan.map(|p| p.workspace.clone()),
                    result: Some(AuditResult::Refused),
                    plan_sha256: plan.map(|p| p.plan_sha256.clone()),
                    plan_entry_seq: plan.and_then(|p| p.audit_seq),
                    approvals: approvals.clone(),
                    policy: decisions,
                    details: reasons
                        .iter()
                        .enumerate()
                        .map(|(i, r)| (format!("reason_{i:03}"), r.clone()))
                        .collect(),
                    ..AuditRecord::default()
                });
            }
            for section in &policy_sections {
                body.push_str(section);
                body.push('\n');
            }
            self.store
                .enqueue(
                    vec![
                        comment(&repo.name, pr.number, body),
                        status(
                            &repo.name,
                            pr.number,
                            &pr.head_sha,
                            STATUS_APPLY,
                            StatusState::Failure,
                            "apply refused: requirements not met",
                        ),
                    ],
                    records,
                    now,
                )
                .await
                .map_err(EventError::Retry)?;
            self.outbox_ready.notify_one();
            return Ok(());
        }

        let jobs = targeted
            .iter()
            .zip(&projects)
            .map(|(plan, project)| {
                Ok(NewJob {
                    kind: JobKind::Apply,
                    project_name: plan.project_name.clone(),
                    project_dir: plan.project_dir.clone(),
                    workspace: plan.workspace.clone(),
                    project_json: serde_json::to_string(&ApplyContext {
                        project: project.clone(),
                        approvals: approvals.clone(),
                        policy: policy_audit
                            .get(&plan.project_name)
                            .cloned()
                            .unwrap_or_default(),
                    })?,
                    plan_id: Some(plan.id),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()
            .map_err(EventError::Permanent)?;
        let n = jobs.len();
        let run = NewRun {
            repo: repo.name.clone(),
            pr: pr.number,
            kind: JobKind::Apply,
            trigger: "comment".into(),
            head_sha: pr.head_sha.clone(),
            base_sha: base_tip.clone(),
            base_ref: pr.base_ref.clone(),
            clone_url: repo.clone_url.clone(),
            installation_id: repo.installation_id,
            actor: actor.clone(),
            comment_id: Some(comment_id),
            event_id: Some(format!("{delivery_id}:apply")),
            extra_args: vec![],
            verbose: cmd.verbose,
            jobs,
            locks: vec![],
        };
        let pending = status(
            &repo.name,
            pr.number,
            &pr.head_sha,
            STATUS_APPLY,
            StatusState::Pending,
            format!("applying {n} project{}", if n == 1 { "" } else { "s" }),
        );
        let started = self
            .store
            .create_run(run, vec![pending], vec![], now)
            .await
            .map_err(EventError::Retry)?;
        if let RunStart::Refused { reason } = started {
            return self
                .reply(
                    repo,
                    pr.number,
                    Some(comment_id),
                    format!("❌ **Apply not started** for @{}: {reason}.", actor.login),
                )
                .await;
        }
        self.jobs_ready.notify_one();
        self.outbox_ready.notify_one();
        Ok(())
    }

    /// Overrides recorded for the PR's current head.
    async fn overrides(
        &self,
        repo: &RepoName,
        pr: &PullDetails,
    ) -> Result<Vec<policy::PolicyOverride>, EventError> {
        let rows = self
            .store
            .policy_overrides(repo, pr.number, &pr.head_sha)
            .await
            .map_err(EventError::Retry)?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                Some(policy::PolicyOverride {
                    policy: r.policy,
                    project: crate::core::types::ProjectName::new(&r.project).ok()?,
                    by: r.by_login,
                    head_sha: r.head_sha,
                })
            })
            .collect())
    }

    /// `approve_policies`: an owner overrides failing `require_override` policies for the
    /// targeted projects at the current head commit. Audited, named; a new commit clears it.
    /// Refused when a targeted plan was made after the comment (`comment_at_ms`).
    #[allow(clippy::too_many_arguments)]
    async fn approve_policies(
        &self,
        delivery_id: &str,
        repo: &RepoRef,
        pr: &PullDetails,
        actor: &Actor,
        cmd: &Command,
        comment_id: u64,
        comment_at_ms: Option<i64>,
    ) -> Result<(), EventError> {
        let plans = self
            .store
            .current_plans(&repo.name, pr.number)
            .await
            .map_err(EventError::Retry)?;
        let at_head: Vec<_> = plans
            .iter()
            .filter(|p| p.head_sha == pr.head_sha)
            .cloned()
            .collect();
        let targeted = targeted_plans(&at_head, &cmd.targets)?;
        if targeted.is_empty() {
            return self
                .reply(repo, pr.number, Some(comment_id), format!("❌ Nothing to approve: there is no plan for the current head commit {}. Comment `{} plan` first.", pr.head_sha.short(), self.settings.bot_name))
                .await;
        }
        if let Some(newer) = targeted
            .iter()
            .find(|p| freshness::plan_after_comment(comment_at_ms, p.created_at))
        {
            let why = format!(
                "`{}`: {}",
                newer.project_name,
                freshness::plan_after_comment_reason("approve_policies", &self.settings.bot_name)
            );
            return self
                .refuse(
                    delivery_id,
                    &repo.name,
                    pr.number,
                    &pr.head_sha,
                    actor,
                    format!("🚫 `approve_policies` was not run: {why}."),
                    &why,
                )
                .await;
        }
        let git = self.fetch(repo, pr).await?;
        let base_tip = Self::base_tip(&git, pr);
        let policies = self.policy_set(&git, &base_tip).await?;
        if policies.broken {
            return self
                .reply(
                    repo,
                    pr.number,
                    Some(comment_id),
                    format!("❌ {}", policies.broken_message()),
                )
                .await;
        }
        let teams = self.teams.resolve(&*self.github, &policies.policies).await;
        let reviews = self.github.list_reviews(&repo.name, pr.number).await?;
        let in_force = apply_gate::approvals(&reviews, &pr.author);
        let existing = self.overrides(&repo.name, pr).await?;
        let mut rows = Vec::new();
        let mut records = Vec::new();
        let mut lines = Vec::new();
        for plan in &targeted {
            let Some(project) = self.project_of_plan(plan.job_id).await else {
                continue;
            };
            let parsed = read_plan_json(&plan.plan_file);
            let base_names = policies.base_names_of(&project);
            let input = PolicyInput {
                stage: Stage::Apply,
                actor: &actor.login,
                author: &pr.author.login,
                target_branch: &pr.base_ref,
                head_sha: &pr.head_sha,
                project: &project,
                base_names: &base_names,
                plan: parsed.as_ref(),
                approvals: &in_force,
                teams: &teams,
                overrides: &existing,
            };
            let decided = policy::plan_overrides(&policies.policies, &input, &cmd.policy_sets);
            for o in &decided.granted {
                lines.push(format!(
                    "✅ overrode policy `{}` for `{}`",
                    o.policy, project.name
                ));
                rows.push(PolicyOverrideRow {
                    repo: repo.name.clone(),
                    pr: pr.number,
                    head_sha: pr.head_sha.clone(),
                    project: project.name.to_string(),
                    policy: o.policy.clone(),
                    by_login: actor.login.clone(),
                    by_id: Some(actor.id),
                    created_at: 0,
                });
                records.push(AuditRecord {
                    event_id: Some(delivery_id.to_string()),
                    actor: actor_audit(actor),
                    action: Some(AuditAction::PolicyOverride),
                    repo: Some(repo.name.full()),
                    pr: Some(pr.number.get()),
                    base_sha: Some(base_tip.to_string()),
                    head_sha: Some(pr.head_sha.to_string()),
                    project: Some(project.name.to_string()),
                    dir: Some(project.dir.to_string()),
                    workspace: Some(project.workspace.to_string()),
                    result: Some(AuditResult::Success),
                    plan_sha256: Some(plan.plan_sha256.clone()),
                    policy: vec![AuditPolicyDecision {
                        policy: o.policy.clone(),
                        outcome: "overridden".into(),
                        reasons: vec![format!("overridden by @{}", actor.login)],
                        source_blob: policies
                            .policies
                            .iter()
                            .find(|p| p.name == o.policy)
                            .and_then(|p| policies.blobs.get(&p.file).cloned()),
                    }],
                    ..AuditRecord::default()
                });
            }
            for (name, why) in &decided.refused {
                lines.push(format!("❌ `{name}` for `{}`: {why}", project.name));
            }
            for name in &decided.unknown {
                lines.push(format!("❓ there is no policy named `{name}`"));
            }
        }
        lines.dedup();
        let body = if rows.is_empty() && lines.is_empty() {
            "ℹ️ `approve_policies`: no policy fails for these projects, so there is nothing to approve.".to_string()
        } else {
            format!(
                "**approve_policies** by @{} for commit `{}`:\n\n{}\n\nOverrides last until the next commit.{}",
                actor.login,
                pr.head_sha.short(),
                lines.join("\n"),
                if rows.is_empty() {
                    String::new()
                } else {
                    format!(" Comment `{} apply` to apply.", self.settings.bot_name)
                }
            )
        };
        let now = now_ms();
        if rows.is_empty() {
            self.store
                .enqueue(vec![comment(&repo.name, pr.number, body)], vec![], now)
                .await
                .map_err(EventError::Retry)?;
        } else {
            self.store
                .add_policy_overrides(rows, records, now)
                .await
                .map_err(EventError::Retry)?;
            self.store
                .enqueue(vec![comment(&repo.name, pr.number, body)], vec![], now)
                .await
                .map_err(EventError::Retry)?;
        }
        self.outbox_ready.notify_one();
        Ok(())
    }

    /// Who may `unlock`: the `access.unlock` of the policies covering the projects the PR holds.
    async fn unlock_refusal(
        &self,
        repo: &RepoRef,
        pr: &PullDetails,
        actor: &Actor,
    ) -> Result<Option<String>, EventError> {
        let locks: Vec<Lock> = self
            .store
            .locks(Some(&repo.name))
            .await
            .map_err(EventError::Retry)?
            .into_iter()
            .filter(|l| l.pr == pr.number)
            .collect();
        if locks.is_empty() || (self.server_policies.is_empty() && !self.settings.repo_policies) {
            return Ok(None);
        }
        let git = self.fetch(repo, pr).await?;
        let base_tip = Self::base_tip(&git, pr);
        let policies = self.policy_set(&git, &base_tip).await?;
        if policies.policies.is_empty() {
            return Ok(None);
        }
        let teams = self.teams.resolve(&*self.github, &policies.policies).await;
        let ((config, _, _), snapshot) = {
            let (g, h) = (git.clone(), pr.head_sha.clone());
            self.read_bounded(move || Ok((load_config_at(&g, &h)?, g.snapshot(&h)?)))
                .await?
        };
        let (known, _) = projects::all_projects(&snapshot, config.as_ref());
        let mut sections = String::new();
        for l in &locks {
            let project = known
                .iter()
                .find(|p| p.dir == l.key.dir && p.workspace == l.key.workspace)
                .cloned()
                .unwrap_or_else(|| {
                    projects::Project::detected(l.key.dir.clone(), l.key.workspace.clone())
                });
            let base_names = policies.base_names_of(&project);
            let input = PolicyInput {
                stage: Stage::Unlock,
                actor: &actor.login,
                author: &pr.author.login,
                target_branch: &pr.base_ref,
                head_sha: &pr.head_sha,
                project: &project,
                base_names: &base_names,
                plan: None,
                approvals: &[],
                teams: &teams,
                overrides: &[],
            };
            let decisions = policy::evaluate(&policies.policies, &input);
            if policy::blocks(&decisions) {
                sections.push_str(&policy::render_section(
                    &decisions,
                    &self.settings.bot_name,
                    &project.name,
                ));
            }
        }
        Ok((!sections.is_empty()).then(|| {
            format!(
                "🚫 **Unlock refused by policy** for @{}:\n\n{sections}",
                actor.login
            )
        }))
    }

    async fn project_of_plan(&self, job_id: i64) -> Option<Project> {
        // The plan job stored the project it planned; the apply uses exactly that definition.
        let run_jobs = self.store.job(job_id).await.ok()??;
        serde_json::from_str(&run_jobs.project_json).ok()
    }
}

/// The saved plans `targets` picks (`core::target`'s rule, the one `plan` uses for projects).
fn targeted_plans<'a>(
    plans: &'a [super::ports::store::PlanRow],
    targets: &crate::core::target::Targets,
) -> Result<Vec<&'a super::ports::store::PlanRow>, EventError> {
    if targets.project.is_some() && (targets.dir.is_some() || targets.workspace.is_some()) {
        return Err(EventError::Permanent(
            crate::core::target::ProjectWithDir.into(),
        ));
    }
    Ok(plans
        .iter()
        .filter(|p| {
            match (
                crate::core::types::ProjectName::new(&p.project_name),
                crate::core::types::ProjectDir::new(&p.project_dir),
                crate::core::types::Workspace::new(&p.workspace),
            ) {
                (Ok(n), Ok(d), Ok(w)) => targets.matches(&n, &d, &w),
                _ => false,
            }
        })
        .collect())
}

/// The PR as a `pull_request` event describes it (autoplan needs nothing more from the API).
fn pull_from_event(pr: &PullRequestInfo, repo: &RepoRef) -> PullDetails {
    PullDetails {
        number: pr.number,
        state: PullState::Open,
        merged: false,
        draft: pr.draft,
        mergeable: None,
        mergeable_state: MergeableState::Unknown,
        html_url: pr.html_url.clone(),
        author: pr.author.clone(),
        head_sha: pr.head_sha.clone(),
        head_ref: pr.head_ref.clone(),
        head_clone_url: Some(repo.clone_url.clone()),
        base_ref: pr.base_ref.clone(),
        base_sha: pr.base_sha.clone(),
        from_fork: pr.from_fork,
    }
}

/// What an apply job carries: the project as planned, and the approvals the gate relied on
/// (for the audit entry).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ApplyContext {
    pub project: Project,
    pub approvals: Vec<AuditApproval>,
    /// The policy decisions the gate made (recorded with the apply).
    #[serde(default)]
    pub policy: Vec<AuditPolicyDecision>,
}

/// The parsed `show -json` saved beside a plan file; `None` when it is missing or unreadable (a
/// policy that needs the plan then fails closed).
/// A reply that could not find a targeted project, with the detection errors that may explain
/// why (a file Sluice did not read keeps the projects in its directory from being planned).
fn with_detection_errors(reply: String, diagnostics: &[crate::core::diag::Diagnostic]) -> String {
    let errors: Vec<String> = diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.to_string())
        .collect();
    if errors.is_empty() {
        return reply;
    }
    format!(
        "{reply}\n\nProject detection found problems:\n\n```\n{}\n```",
        errors.join("\n")
    )
}

pub fn read_plan_json(plan_file: &str) -> Option<crate::core::plan::Plan> {
    let path = std::path::Path::new(plan_file).with_file_name("plan.json");
    let bytes = std::fs::read(path).ok()?;
    crate::core::plan::parse_plan_json(&bytes).ok()
}

fn remove_plan_files(plans: &[super::ports::store::PlanRow]) {
    for p in plans {
        if let Some(dir) = std::path::Path::new(&p.plan_file).parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Why a PR into an untrusted base branch is not run.
pub fn untrusted_base(base: &str, default: &str) -> String {
    format!(
        "🚫 **Sluice does not run pull requests into `{base}`.** Policies and apply requirements are read from \
the base branch, so only trusted base branches are run: `{default}` (the default branch) and those the server's \
`base_branches` setting lists. Target `{default}`, or ask an administrator to add `{base}` (and protect it like `{default}`)."
    )
}

pub const FORK_REFUSAL: &str = "🚫 **Sluice does not run on pull requests from forks.** The code of a fork would run with this \
repository's credentials at plan time. A maintainer can push the branch to this repository instead, or the server can allow \
fork pull requests (`allow_fork_prs`).";

impl ActorKind {
    pub fn system() -> Actor {
        Actor {
            login: "sluice".into(),
            id: 0,
            kind: ActorKind::Bot,
        }
    }
}
