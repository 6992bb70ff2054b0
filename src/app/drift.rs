//! Reconciliation in the server (PRODUCT.md §14): which projects of which repositories are
//! checked when, running the checks, and everything a check or a drift command leads to.
//!
//! * **What is checked**: the projects of each repository's default branch, as its
//!   configuration (`sluice.yaml` `drift:`, read from the default branch, never a PR) says,
//!   with the server's default schedule ([`sync_repo`](DriftService::sync_repo), on every push
//!   to the default branch and whenever a repository is first seen).
//! * **When**: the next due time of each project lives in the store (it survives restarts),
//!   spread by [`Jitter`]; a check is also requested after every Sluice apply of the project,
//!   after every push to the default branch, and by `sluice drift check` on its issue.
//! * **How**: [`DriftService::scheduler`] claims due projects while one of its own slots
//!   (`drift.workers`) is free — never a job worker's, so PR plans and applies are never delayed
//!   — and runs [`Runner::drift_check`] in the sandbox on the default branch head, read-only
//!   (no state lock; a project locked by an open PR is checked anyway and its report names the
//!   holder).
//! * **What follows**: the lifecycle step (`core::drift::apply`) is written with one audit entry
//!   per transition and the drift outbox items (the project's issue opened, edited in place or
//!   closed; Slack and signed JSON notifications for state changes only) in one transaction;
//!   [`DriftService::deliver_due`] delivers them with retries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use super::drift_check::AppliedFacts;
use super::ports::drift::{
    CheckFinish, CheckResult, DriftKey, DriftOutgoing, DriftProject, DriftRow, DriftStore,
};
use super::ports::github::IssueText;
use super::ports::store::{ClaimedJob, Store};
use super::ports::{GitHubApi, GitHubError};
use super::project_run::{ProjectJob, Runner};
use super::repo_state::RepoState;
use crate::adapters::clock;
use crate::adapters::git::{GitRepo, Mirrors};
use crate::config::Settings;
use crate::core::audit::{AuditAction, AuditActor, AuditRecord, AuditResult};
use crate::core::drift::report::{self, IssueContext, MAX_ISSUE_BODY};
use crate::core::drift::{
    self as core_drift, DriftEvent, IssueAction, IssueKind, Jitter, LastApplied, NotifyContext,
    Schedule, Step, VersionSnapshot, next_due, notify,
};
use crate::core::event::{Actor, RepoRef};
use crate::core::plan::Redactor;
use crate::core::projects::Project;
use crate::core::types::{CommitSha, RepoName, UnixMs};

/// A check's stored error is cut to this many characters (the issue shows its end).
const MAX_ERROR_CHARS: usize = 4_000;
/// A drift outbox item is given up after this many attempts.
const MAX_ATTEMPTS: u32 = 10;

/// What a web UI drift form says the viewer saw: the drift's fingerprint (12 hex digits) and
/// its phase (`open`, `acknowledged`, `accepted`; `None` from a form without one).
#[derive(Debug, Clone, Copy)]
pub struct ShownDrift<'a> {
    pub fingerprint: &'a str,
    pub phase: Option<&'a str>,
}

/// The drift side of the server.
pub struct DriftService {
    pub settings: Arc<Settings>,
    pub store: Arc<dyn Store>,
    pub drift: Arc<dyn DriftStore>,
    pub github: Arc<dyn GitHubApi>,
    pub mirrors: Arc<Mirrors>,
    pub runner: Arc<Runner>,
    /// Wakes the scheduler (a check was requested).
    pub ready: Arc<Notify>,
    /// Wakes the drift outbox deliverer.
    pub outbox_ready: Arc<Notify>,
    /// The checks' own slots (`drift.workers`).
    pub slots: Arc<Semaphore>,
    /// Repositories seen in events (clone URL, default branch, installation), by name.
    pub repos: Mutex<HashMap<String, RepoRef>>,
    pub http: reqwest::Client,
    /// Host paths → neutral names, for everything posted (`app::layout`).
    pub host_paths: Arc<crate::core::host_paths::HostPaths>,
}

fn ms(t: DateTime<Utc>) -> UnixMs {
    UnixMs::new(t.timestamp_millis())
}

/// The refspec that brings a repository's default branch into its mirror, and the ref it lands
/// on.
fn default_ref(branch: &str) -> (String, String) {
    let local = format!("refs/sluice/default/{branch}");
    (format!("+refs/heads/{branch}:{local}"), local)
}

impl DriftService {
    pub fn new(
        settings: Arc<Settings>,
        store: Arc<dyn Store>,
        drift: Arc<dyn DriftStore>,
        github: Arc<dyn GitHubApi>,
        mirrors: Arc<Mirrors>,
        runner: Arc<Runner>,
        host_paths: Arc<crate::core::host_paths::HostPaths>,
    ) -> anyhow::Result<DriftService> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("building the notification client")?;
        let slots = Arc::new(Semaphore::new(settings.drift.workers));
        Ok(DriftService {
            settings,
            store,
            drift,
            github,
            mirrors,
            runner,
            ready: Arc::new(Notify::new()),
            outbox_ready: Arc::new(Notify::new()),
            slots,
            repos: Mutex::new(HashMap::new()),
            http,
            host_paths,
        })
    }

    fn key(repo: &RepoName, p: &Project) -> DriftKey {
        DriftKey {
            repo: repo.clone(),
            dir: p.dir.clone(),
            workspace: p.workspace.clone(),
        }
    }

    /// Where `repo` is fetched from: learned from its events, kept in the store.
    async fn repo_ref(&self, repo: &RepoName) -> Option<RepoRef> {
        let known = self
            .repos
            .lock()
            .expect("repos lock")
            .get(&repo.full().to_ascii_lowercase())
            .cloned();
        match known {
            Some(r) => Some(r),
            None => self.drift.repo(repo).await.ok().flatten(),
        }
    }

    /// Remembers a repository from an event; the first time, reads its projects (and so
    /// schedules their checks).
    pub async fn seen(&self, repo: &RepoRef) {
        if !self.settings.drift.enabled {
            return;
        }
        let first = self
            .repos
            .lock()
            .expect("repos lock")
            .insert(repo.name.full().to_ascii_lowercase(), repo.clone())
            .is_none();
        if !first {
            return;
        }
        if let Err(e) = self.drift.remember_repo(repo, clock::now()).await {
            tracing::warn!(repo = %repo.name, error = %format!("{e:#}"), "remembering the repository failed");
        }
        if let Err(e) = self.sync_repo(repo).await {
            tracing::warn!(repo = %repo.name, error = %format!("{e:#}"), "reading the default branch's projects failed");
        }
    }

    /// Fetches the default branch into the mirror; its head.
    pub(crate) async fn fetch_default(
        &self,
        repo: &RepoRef,
    ) -> anyhow::Result<(GitRepo, CommitSha)> {
        let token = self.github.clone_token(repo.installation_id).await?;
        let (refspec, local) = default_ref(&repo.default_branch);
        let git = self
            .mirrors
            .ensure(
                &repo.name,
                &repo.clone_url,
                token,
                vec![vec![refspec]],
                vec![],
                true,
            )
            .await?;
        let head = git
            .resolve(&local)
            .with_context(|| format!("the default branch `{}`", repo.default_branch))?;
        Ok((git, head))
    }

    /// The projects of the default branch at `head`, read within the detection deadline: those
    /// whose Atlantis `branch` pattern matches the default branch's name.
    async fn projects_at(
        &self,
        repo: &RepoRef,
        git: &GitRepo,
        head: &CommitSha,
    ) -> anyhow::Result<Vec<Project>> {
        let (git, head) = (git.clone(), head.clone());
        let rules = super::repo_state::RepoRules::new(&self.runner.rules, Some(&repo.name))
            .into_branch(&repo.default_branch);
        let budget = Duration::from_secs(self.settings.limits.detection_timeout_secs);
        let state = super::bounded::run("reading the default branch", budget, move || {
            RepoState::load(&git, &head, &head, &rules)
        })
        .await??;
        anyhow::ensure!(
            !state.rejected(),
            "the default branch's configuration has errors (see `sluice config check`)"
        );
        Ok(state.all_projects().projects)
    }

    /// Makes the stored projects of `repo` those of its default branch now, with their
    /// schedules and first due times.
    pub async fn sync_repo(&self, repo: &RepoRef) -> anyhow::Result<()> {
        let (git, head) = self.fetch_default(repo).await?;
        let projects = self.projects_at(repo, &git, &head).await?;
        let default = self.settings.drift.schedule();
        let now = Utc::now();
        let rows: Vec<DriftProject> = projects
            .iter()
            .map(|p| {
                let schedule = p.drift.effective(&default);
                DriftProject {
                    key: Self::key(&repo.name, p),
                    name: p.name.clone(),
                    schedule: schedule.map(|s| s.as_str().to_string()),
                    next_due_at: schedule.and_then(|s| {
                        let offset = Jitter::default().offset(&repo.name, &p.name, s);
                        next_due(s, offset, now).map(ms)
                    }),
                }
            })
            .collect();
        self.drift
            .sync_projects(&repo.name, &rows, clock::now())
            .await?;
        Ok(())
    }

    /// After a push to the default branch: read its projects again and check every one.
    pub async fn after_push(&self, repo: &RepoRef) -> anyhow::Result<()> {
        if !self.settings.drift.enabled {
            return Ok(());
        }
        self.repos
            .lock()
            .expect("repos lock")
            .insert(repo.name.full().to_ascii_lowercase(), repo.clone());
        self.drift.remember_repo(repo, clock::now()).await?;
        self.sync_repo(repo).await?;
        self.drift
            .request_check(&repo.name, &[], clock::now())
            .await?;
        self.ready.notify_one();
        Ok(())
    }

    /// After a successful Sluice apply: the last applied commit (with `engine_version`, the
    /// version that applied, which the upgrade rule compares a later check's version with), the
    /// lifecycle step (a converging apply resolves the drift), and a check of the project.
    pub async fn after_apply(
        &self,
        c: &ClaimedJob,
        engine_version: Option<String>,
    ) -> anyhow::Result<()> {
        let Ok(payload) = &c.job.payload else {
            return Ok(());
        };
        let project = payload.project();
        let key = DriftKey {
            repo: c.run.repo.clone(),
            dir: project.dir.clone(),
            workspace: project.workspace.clone(),
        };
        let now = Utc::now();
        let applied = LastApplied {
            sha: c.run.head_sha.clone(),
            by: c.run.actor.clone(),
            at: now,
            pr: Some(c.run.pr),
            engine_version: engine_version.clone(),
        };
        let lock_file = self.mirrors_git(&c.run.repo).and_then(|g| {
            let path = if project.dir.is_root() {
                ".terraform.lock.hcl".to_string()
            } else {
                format!("{}/.terraform.lock.hcl", project.dir)
            };
            g.read_file(&c.run.head_sha, &path).ok().flatten()
        });
        let versions = VersionSnapshot {
            engine_version,
            lock_file,
        };
        self.drift.record_applied(&key, &applied, &versions).await?;
        if let Some(row) = self.drift.project(&key).await? {
            let event = DriftEvent::ApplySucceeded {
                at: now,
                actor: Some(c.run.actor.clone()),
                pr: Some(c.run.pr),
                sha: c.run.head_sha.clone(),
                converges: core_drift::apply_converges(&c.run.extra_args),
            };
            if let Ok(step) = core_drift::apply(&row.record, &event) {
                self.record_step(&row, &step, Some(&c.run.actor), None)
                    .await?;
            }
            // Checked now when the applied commit is on the default branch already; a commit
            // applied before its merge is checked when the merge is pushed (checking the default
            // branch now would report the not-yet-merged change as drift).
            let merged = match self.repo_ref(&c.run.repo).await {
                Some(repo) => match self.fetch_default(&repo).await {
                    Ok((git, head)) => git.is_ancestor(&c.run.head_sha, &head).unwrap_or(false),
                    Err(_) => false,
                },
                None => false,
            };
            if merged {
                self.drift
                    .request_check(&c.run.repo, &[key], clock::now())
                    .await?;
                self.ready.notify_one();
            }
        }
        Ok(())
    }

    /// Queues `text` on the notification channels (Slack, signed JSON webhook) for a project of
    /// `repo`, outside any drift transition (a failed delivery after merge). Goes through the
    /// drift outbox of the repository's first known project, so it is delivered with retries.
    pub async fn notify(&self, repo: &RepoName, text: &str) -> anyhow::Result<()> {
        let Some(row) = self.drift.projects(Some(repo)).await?.into_iter().next() else {
            anyhow::bail!("no project of {repo} is known to drift detection yet");
        };
        let mut outbox = Vec::new();
        if self.settings.drift.slack_webhook_url.is_some() {
            let body = serde_json::json!({ "text": text }).to_string();
            outbox.push(DriftOutgoing::Slack { body });
        }
        if self.settings.drift.webhook_url.is_some() {
            let body = serde_json::json!({
                "event": "delivery_failed",
                "repo": repo.full(),
                "text": text,
            })
            .to_string();
            outbox.push(DriftOutgoing::Webhook { body });
        }
        if outbox.is_empty() {
            return Ok(());
        }
        self.drift
            .record_event(&row.key, row.record.clone(), vec![], outbox, clock::now())
            .await?;
        self.outbox_ready.notify_one();
        Ok(())
    }

    fn mirrors_git(&self, repo: &RepoName) -> Option<GitRepo> {
        let path = self.mirrors.path(repo);
        path.exists()
            .then(|| GitRepo::mirror(&path).ok())
            .flatten()
            .map(|g| g.with_limits(self.settings.limits))
    }

    /// Claims due checks while slots are free and runs them; lets acceptances expire. Returns
    /// when `stop` fires (running checks end with their own process limits).
    pub async fn scheduler(self: Arc<Self>, stop: CancellationToken) {
        if !self.settings.drift.enabled {
            return;
        }
        // A claim left by a process that died is this process's to redo (one server per
        // store): its check runs again now.
        match self.drift.release_claims().await {
            Ok(n) if n > 0 => tracing::warn!(
                checks = n,
                "drift: checks interrupted by a restart run again"
            ),
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "drift: releasing old claims failed")
            }
        }
        let tick = Duration::from_secs(1);
        let mut last_expiry = std::time::Instant::now() - Duration::from_secs(3600);
        loop {
            if last_expiry.elapsed() > Duration::from_secs(60) {
                last_expiry = std::time::Instant::now();
                if let Err(e) = self.expire_acceptances().await {
                    tracing::warn!(error = %format!("{e:#}"), "drift: expiring acceptances failed");
                }
            }
            let free = self.slots.available_permits() as u32;
            if free > 0 {
                let now = clock::now();
                let claim = now.plus_ms(self.claim_ms());
                match self.drift.claim_due(now, claim, free).await {
                    Ok(rows) => {
                        for row in rows {
                            let Ok(permit) = self.slots.clone().try_acquire_owned() else {
                                break;
                            };
                            let me = self.clone();
                            tokio::spawn(async move {
                                let _permit = permit;
                                me.check(row).await;
                            });
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %format!("{e:#}"), "drift: claiming checks failed")
                    }
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.ready.notified() => {}
                _ = tokio::time::sleep(tick) => {}
            }
        }
    }

    /// How long a check's claim holds: every engine command of a check at its time limit, and
    /// a minute.
    fn claim_ms(&self) -> i64 {
        let per = self
            .settings
            .runner
            .timeout_secs
            .saturating_add(self.settings.runner.grace_secs);
        (per.saturating_mul(6).saturating_add(60) * 1000) as i64
    }

    async fn expire_acceptances(&self) -> anyhow::Result<()> {
        let now = Utc::now();
        for row in self.drift.accepted_projects().await? {
            let step = core_drift::apply(&row.record, &DriftEvent::TimePassed { now })
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if !step.transitions.is_empty() {
                self.record_step(&row, &step, None, None).await?;
            }
        }
        Ok(())
    }

    /// Runs one claimed check and records it.
    async fn check(&self, row: DriftRow) {
        use tracing::Instrument;
        let span = tracing::info_span!("drift_check", repo = %row.key.repo, project = %row.name);
        async {
            tracing::info!("drift check started");
            let started = clock::now();
            let outcome = self.run_check(&row).await;
            let result = self.record_check(&row, started, outcome).await;
            if let Err(e) = result {
                tracing::error!(error = %format!("{e:#}"), "drift: recording the check failed");
            }
            self.outbox_ready.notify_one();
        }
        .instrument(span)
        .await
    }

    /// Fetch, find the project at the default branch head, check it. `Err` is the check's
    /// error (redacted), with the commit when it got that far.
    async fn run_check(&self, row: &DriftRow) -> CheckRun {
        let Some(repo) = self.repo_ref(&row.key.repo).await else {
            return CheckRun::failed(None, "the repository's clone URL is not known yet (no event from it since the server started)".into());
        };
        let (git, head) = match self.fetch_default(&repo).await {
            Ok(x) => x,
            Err(e) => return CheckRun::failed(None, format!("fetching the default branch: {e:#}")),
        };
        let projects = match self.projects_at(&repo, &git, &head).await {
            Ok(p) => p,
            Err(e) => return CheckRun::failed(Some(head), format!("{e:#}")),
        };
        let Some(project) = projects
            .into_iter()
            .find(|p| p.dir == row.key.dir && p.workspace == row.key.workspace)
        else {
            return CheckRun::failed(
                Some(head),
                format!(
                    "the default branch has no project in `{}` (workspace {}) any more",
                    row.key.dir, row.key.workspace
                ),
            );
        };
        let applied = self.applied_facts(&git, &row.key, &project, &head).await;
        let job = ProjectJob {
            pull: None,
            user: String::new(),
            git: &git,
            repo: Some(&row.key.repo),
            commit: &head,
            base: &head,
            project: &project,
            job_id: format!("drift-{}-{}", std::process::id(), clock::now().get()),
            extra_args: Vec::new(),
            sink: None,
            cancel: CancellationToken::new(),
        };
        match self.runner.drift_check(&job, &applied).await {
            Ok(checked) => CheckRun {
                sha: Some(head),
                result: Ok(checked.classification),
                engine_ms: checked.engine_time.as_millis() as u64,
            },
            Err(f) => CheckRun::failed(Some(head), format!("{} failed: {}", f.stage, f.error)),
        }
    }

    async fn applied_facts(
        &self,
        git: &GitRepo,
        key: &DriftKey,
        project: &Project,
        head: &CommitSha,
    ) -> AppliedFacts {
        let Ok(Some((last, versions))) = self.drift.last_applied(key).await else {
            return AppliedFacts::default();
        };
        let dir = project.dir.as_str().to_string();
        let config_changed = match git.changed_files(&last.sha, head) {
            Ok(files) => files.iter().any(|f| {
                let p = f.path.as_str();
                let inside = project.dir.is_root() || p.starts_with(&format!("{dir}/"));
                inside && !p.ends_with(".terraform.lock.hcl")
            }),
            Err(_) => true,
        };
        AppliedFacts {
            last_applied: Some(versions),
            config_changed,
        }
    }

    async fn record_check(
        &self,
        row: &DriftRow,
        started: UnixMs,
        run: CheckRun,
    ) -> anyhow::Result<()> {
        let now = Utc::now();
        let (event, classification, result) = match run.result {
            Ok(c) => {
                let r = if c.is_clean() {
                    CheckResult::Clean
                } else {
                    CheckResult::Drifted
                };
                (DriftEvent::checked(now, &c), Some(c), r)
            }
            Err(e) => {
                let e = self.redact(&e);
                (
                    DriftEvent::CheckFailed { at: now, error: e },
                    None,
                    CheckResult::Failed,
                )
            }
        };
        let step = core_drift::apply(&row.record, &event).map_err(|e| anyhow::anyhow!("{e}"))?;
        let sha = run
            .sha
            .clone()
            .or_else(|| row.checked_sha.clone())
            .unwrap_or_else(|| CommitSha::new(&"0".repeat(40)).expect("forty zeros"));
        let classification_now = classification.as_ref().or(row.classification.as_ref());
        let (audit, outbox) = self
            .effects(row, &step, None, classification_now, Some(&sha))
            .await;
        let mut audit = audit;
        let mut check = AuditRecord::new(
            AuditAction::DriftCheck,
            AuditActor::system(&self.settings.bot_name),
            match result {
                CheckResult::Failed => AuditResult::Failure,
                _ => AuditResult::Success,
            },
        )
        .repo(&row.key.repo)
        .head(&sha)
        .project(&row.name, &row.key.dir, &row.key.workspace)
        .detail("result", result.as_str());
        check.duration_ms = Some(clock::now().get().saturating_sub(started.get()) as u64);
        if let Some(c) = &classification {
            check = check.detail("fingerprint", c.fingerprint.short());
        }
        audit.insert(0, check);
        let next = row
            .schedule
            .as_deref()
            .and_then(|s| Schedule::parse(s).ok())
            .and_then(|s| {
                let offset = Jitter::default().offset(&row.key.repo, &row.name, &s);
                next_due(&s, offset, now).map(ms)
            });
        self.drift
            .finish_check(
                &row.key,
                CheckFinish {
                    record: step.record.clone(),
                    classification,
                    checked_sha: sha,
                    next_due_at: next,
                    result,
                    started_at: started,
                    engine_ms: run.engine_ms,
                    audit,
                    outbox,
                },
                clock::now(),
            )
            .await
    }

    fn redact(&self, text: &str) -> String {
        let text = Redactor::new(self.runner.secrets.iter().cloned())
            .redact(text)
            .into_owned();
        let text = self.host_paths.map(&text).into_owned();
        let n = text.chars().count();
        if n <= MAX_ERROR_CHARS {
            return text;
        }
        // The end of an engine's output is where its error is.
        text.chars().skip(n - MAX_ERROR_CHARS).collect()
    }

    /// Writes a lifecycle step that is not a check.
    async fn record_step(
        &self,
        row: &DriftRow,
        step: &Step,
        actor: Option<&Actor>,
        event_id: Option<&str>,
    ) -> anyhow::Result<()> {
        let (mut audit, outbox) = self
            .effects(
                row,
                step,
                actor,
                row.classification.as_ref(),
                row.checked_sha.as_ref(),
            )
            .await;
        if let Some(id) = event_id {
            audit = audit.into_iter().map(|a| a.event(id)).collect();
        }
        self.drift
            .record_event(&row.key, step.record.clone(), audit, outbox, clock::now())
            .await?;
        self.outbox_ready.notify_one();
        Ok(())
    }

    /// The audit entries and outbox items of a step.
    async fn effects(
        &self,
        row: &DriftRow,
        step: &Step,
        actor: Option<&Actor>,
        classification: Option<&core_drift::Classification>,
        sha: Option<&CommitSha>,
    ) -> (Vec<AuditRecord>, Vec<DriftOutgoing>) {
        let who = |t: &core_drift::Transition| match t.actor.as_ref().or(actor) {
            Some(a) => AuditActor::of(a),
            None => AuditActor::system(&self.settings.bot_name),
        };
        let audit: Vec<AuditRecord> = step
            .transitions
            .iter()
            .map(|t| {
                let mut r =
                    AuditRecord::new(AuditAction::of_transition(t), who(t), AuditResult::Success)
                        .repo(&row.key.repo)
                        .project(&row.name, &row.key.dir, &row.key.workspace);
                if let Some(sha) = sha {
                    r = r.head(sha);
                }
                for (k, v) in t.audit_details() {
                    let v = match v {
                        serde_json::Value::String(s) => s,
                        other => other.to_string(),
                    };
                    r = r.detail(&k, &v);
                }
                r
            })
            .collect();
        let mut outbox = Vec::new();
        let ctx = self.issue_context(row, sha).await;
        if let (Some(action), Some(drift), Some(c)) =
            (step.drift_issue, step.record.drift.as_ref(), classification)
        {
            let text = IssueText {
                title: report::issue_title(&ctx, drift),
                body: report::issue_body(&ctx, drift, c, &step.record),
                labels: report::issue_labels(drift),
            };
            outbox.push(issue_item(IssueKind::Drift, action, text));
        }
        if let Some(action) = step.failure_issue {
            let body = match &step.record.failure {
                Some(streak) => report::check_failed_body(&ctx, streak),
                None => format!(
                    "{}\n\nDrift checks of `{}` work again.",
                    report::issue_marker(&row.key.repo, &row.name, IssueKind::CheckFailed),
                    row.name
                ),
            };
            let text = IssueText {
                title: report::check_failed_title(&ctx),
                body,
                labels: report::check_failed_labels(),
            };
            outbox.push(issue_item(IssueKind::CheckFailed, action, text));
        }
        let notify_ctx = NotifyContext {
            repo: row.key.repo.clone(),
            project: row.name.clone(),
            dir: row.key.dir.clone(),
            workspace: row.key.workspace.clone(),
            issue_url: row
                .drift_issue
                .map(|n| format!("https://github.com/{}/issues/{n}", row.key.repo.full())),
        };
        for t in step.notifications() {
            if self.settings.drift.slack_webhook_url.is_some() {
                let msg = notify::slack_message(&notify_ctx, t, &step.record);
                outbox.push(DriftOutgoing::Slack {
                    body: msg.to_string(),
                });
            }
            if self.settings.drift.webhook_url.is_some() {
                let event = notify::json_event(&notify_ctx, t, &step.record);
                let body = String::from_utf8(notify::json_event_body(&event)).unwrap_or_default();
                outbox.push(DriftOutgoing::Webhook { body });
            }
        }
        (audit, outbox)
    }

    async fn issue_context(&self, row: &DriftRow, sha: Option<&CommitSha>) -> IssueContext {
        let lock = self
            .store
            .locks(Some(&row.key.repo))
            .await
            .ok()
            .and_then(|locks| {
                locks
                    .into_iter()
                    .find(|l| l.key.dir == row.key.dir && l.key.workspace == row.key.workspace)
            });
        let last_applied = self
            .drift
            .last_applied(&row.key)
            .await
            .ok()
            .flatten()
            .map(|(a, _)| a);
        IssueContext {
            bot_name: self.settings.bot_name.clone(),
            repo: row.key.repo.clone(),
            project: row.name.clone(),
            dir: row.key.dir.clone(),
            workspace: row.key.workspace.clone(),
            checked_sha: sha.cloned(),
            lock,
            last_applied,
            details_url: self.settings.public_url.clone(),
            max_body: MAX_ISSUE_BODY,
        }
    }

    /// Applies a drift command's event (ack, accept) to the project; `Err` is the reply.
    pub(crate) async fn command_event(
        &self,
        row: &DriftRow,
        event: &DriftEvent,
        actor: &Actor,
        delivery: &str,
    ) -> anyhow::Result<Result<(), String>> {
        match core_drift::apply(&row.record, event) {
            Ok(step) => {
                self.record_step(row, &step, Some(actor), Some(delivery))
                    .await?;
                Ok(Ok(()))
            }
            Err(e) => Ok(Err(e.to_string())),
        }
    }

    /// `ack` or `accept` of the drift of `key` by `actor` from outside an issue comment (the
    /// web UI): the same lifecycle step, audit entries and issue update as the comment
    /// commands, with `event_id` on the audit entries. `fingerprint` is the drift the person
    /// saw (its 12-hex-digit short form): a drift that changed since is refused, not acted on
    /// blind. `Ok(Err(why))`: refused and nothing changed (the refusal is audited);
    /// `Ok(Ok(None))`: no such project. Only `Ack` and `Accept` are taken.
    pub async fn command_from_ui(
        &self,
        key: &DriftKey,
        cmd: &core_drift::DriftCommand,
        actor: &Actor,
        shown: &ShownDrift<'_>,
        event_id: &str,
    ) -> anyhow::Result<Result<Option<()>, String>> {
        let Some(row) = self.drift.project(key).await? else {
            return Ok(Ok(None));
        };
        let fingerprint = shown.fingerprint;
        let now = Utc::now();
        let event = match cmd {
            core_drift::DriftCommand::Ack => DriftEvent::Ack {
                at: now,
                actor: actor.clone(),
            },
            core_drift::DriftCommand::Accept { until, reason } => DriftEvent::Accept {
                at: now,
                actor: actor.clone(),
                until: *until,
                reason: reason.clone(),
            },
            other => anyhow::bail!("`drift {}` is not taken from the web UI", other.name()),
        };
        let live = row.record.live();
        let seen = live.is_some_and(|d| {
            d.fingerprint
                .short()
                .eq_ignore_ascii_case(fingerprint.trim())
        });
        // The same drift in another phase than the page showed (accepted by someone since):
        // an old page's "Acknowledge" must not silently withdraw that exception.
        let moved = live
            .map(|d| d.state.phase().as_str())
            .filter(|now| shown.phase.is_some_and(|p| !p.eq_ignore_ascii_case(now)));
        let outcome = match (seen, moved) {
            (true, None) => self.command_event(&row, &event, actor, event_id).await?,
            (true, Some(now)) => Err(format!(
                "the drift is {now} now, not {} as the page showed; reload the page and look again",
                shown.phase.unwrap_or_default()
            )),
            (false, _) => Err("the drift changed since the page was shown (or was resolved); reload the page and look again".to_string()),
        };
        match outcome {
            Ok(()) => Ok(Ok(Some(()))),
            Err(why) => {
                let command = cmd.canonical(&self.settings.bot_name);
                self.refuse_from_ui(key, actor, &command, &why, event_id)
                    .await?;
                Ok(Err(why))
            }
        }
    }

    /// A drift command from the web UI that is refused — by the lifecycle, or before it (a
    /// date the grammar refuses, a missing reason): audited as `command_rejected` with the
    /// project, the command as written and why. A project Sluice does not know is audited
    /// without a project.
    pub async fn refuse_from_ui(
        &self,
        key: &DriftKey,
        actor: &Actor,
        command: &str,
        why: &str,
        event_id: &str,
    ) -> anyhow::Result<()> {
        let audit = AuditRecord::new(
            AuditAction::CommandRejected,
            AuditActor::of(actor),
            AuditResult::Refused,
        )
        .event(event_id)
        .repo(&key.repo)
        .detail("reason", why)
        .detail("command", command)
        .detail("via", "web_ui");
        match self.drift.project(key).await? {
            Some(row) => {
                let audit = audit.project(&row.name, &row.key.dir, &row.key.workspace);
                self.drift
                    .record_event(
                        &row.key,
                        row.record.clone(),
                        vec![audit],
                        vec![],
                        clock::now(),
                    )
                    .await?;
            }
            None => {
                self.store.append_audit(vec![audit], clock::now()).await?;
            }
        }
        Ok(())
    }

    /// Delivers the due drift outbox items; how many were handled.
    pub async fn deliver_due(&self) -> usize {
        let rows = match self.drift.due_drift_outbox(clock::now(), 20).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "drift: reading the outbox failed");
                return 0;
            }
        };
        let n = rows.len();
        for row in rows {
            let outcome = self.deliver(&row.key, &row.item).await;
            let now = clock::now();
            let written = match outcome {
                Ok(issue) => {
                    tracing::info!(kind = row.item.kind(), project = %row.key.dir, "drift: delivered");
                    self.drift.drift_outbox_sent(row.id, issue, now).await
                }
                Err(e) if row.attempts + 1 >= MAX_ATTEMPTS => {
                    tracing::error!(error = %e, "drift: giving up on an outbox item");
                    self.drift.drift_outbox_failed(row.id, &e).await
                }
                Err(e) => {
                    let backoff = 1_000i64 << row.attempts.min(10);
                    tracing::warn!(error = %e, attempt = row.attempts + 1, "drift: delivery failed; retrying");
                    self.drift
                        .drift_outbox_retry(row.id, &e, now.plus_ms(backoff))
                        .await
                }
            };
            if let Err(e) = written {
                tracing::error!(error = %format!("{e:#}"), "drift: recording a delivery failed");
            }
        }
        n
    }

    /// Delivers one item; `Ok(Some(..))` when an issue number was learned or forgotten.
    async fn deliver(
        &self,
        key: &DriftKey,
        item: &DriftOutgoing,
    ) -> Result<Option<(IssueKind, Option<u64>)>, String> {
        let gh = |e: GitHubError| e.to_string();
        let row = self
            .drift
            .project(key)
            .await
            .map_err(|e| format!("{e:#}"))?
            .ok_or("the project is not in the store")?;
        let number_of = |kind: IssueKind| match kind {
            IssueKind::Drift => row.drift_issue,
            IssueKind::CheckFailed => row.failure_issue,
        };
        match item {
            DriftOutgoing::OpenIssue {
                issue,
                title,
                body,
                labels,
            }
            | DriftOutgoing::EditIssue {
                issue,
                title,
                body,
                labels,
            } => {
                let text = IssueText {
                    title: title.clone(),
                    body: body.clone(),
                    labels: labels.clone(),
                };
                let known = match number_of(*issue) {
                    Some(n) => Some(n),
                    // An issue opened before a crash, whose number was never recorded, is
                    // found by its marker: one issue per project, never two.
                    None => self.find_issue(&key.repo, &row, *issue).await?,
                };
                match known {
                    Some(n) => {
                        self.github
                            .update_issue(&key.repo, n, &text, true)
                            .await
                            .map_err(gh)?;
                        Ok(Some((*issue, Some(n))))
                    }
                    None => {
                        let n = self
                            .github
                            .create_issue(&key.repo, &text)
                            .await
                            .map_err(gh)?;
                        Ok(Some((*issue, Some(n))))
                    }
                }
            }
            DriftOutgoing::CloseIssue {
                issue,
                title,
                body,
                labels,
            } => {
                let known = match number_of(*issue) {
                    Some(n) => Some(n),
                    None => self.find_issue(&key.repo, &row, *issue).await?,
                };
                if let Some(n) = known {
                    let text = IssueText {
                        title: title.clone(),
                        body: body.clone(),
                        labels: labels.clone(),
                    };
                    self.github
                        .update_issue(&key.repo, n, &text, false)
                        .await
                        .map_err(gh)?;
                }
                Ok(Some((*issue, None)))
            }
            DriftOutgoing::Comment { issue_number, body } => {
                let n =
                    crate::core::types::PrNumber::new(*issue_number).map_err(|e| e.to_string())?;
                self.github
                    .create_comment(&key.repo, n, body)
                    .await
                    .map_err(gh)?;
                Ok(None)
            }
            DriftOutgoing::Slack { body } => {
                let Some(url) = &self.settings.drift.slack_webhook_url else {
                    return Ok(None);
                };
                self.post(url.expose(), body, None).await?;
                Ok(None)
            }
            DriftOutgoing::Webhook { body } => {
                let (Some(url), Some(secret)) = (
                    &self.settings.drift.webhook_url,
                    &self.settings.drift.webhook_secret,
                ) else {
                    return Ok(None);
                };
                let signature = notify::sign(secret.expose().as_bytes(), body.as_bytes());
                self.post(url, body, Some(signature)).await?;
                Ok(None)
            }
        }
    }

    async fn find_issue(
        &self,
        repo: &RepoName,
        row: &DriftRow,
        kind: IssueKind,
    ) -> Result<Option<u64>, String> {
        let label = match kind {
            IssueKind::Drift => report::LABEL,
            IssueKind::CheckFailed => report::FAILURE_LABEL,
        };
        let marker = report::issue_marker(repo, &row.name, kind);
        let open = self
            .github
            .open_issues_labelled(repo, label)
            .await
            .map_err(|e| e.to_string())?;
        Ok(open
            .into_iter()
            .find(|(_, body)| body.starts_with(&marker))
            .map(|(n, _)| n))
    }

    async fn post(&self, url: &str, body: &str, signature: Option<String>) -> Result<(), String> {
        let mut req = self
            .http
            .post(url)
            .header("Content-Type", "application/json")
            .body(body.to_string());
        if let Some(sig) = signature {
            req = req.header(notify::SIGNATURE_HEADER, sig);
        }
        // The URL is a secret (Slack's carries its credential): errors never name it.
        let resp = req
            .send()
            .await
            .map_err(|e| format!("notification not sent: {}", e.without_url()))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(format!("notification refused: HTTP {}", resp.status()))
        }
    }

    /// Delivers the drift outbox until `stop` fires.
    pub async fn outbox_loop(self: Arc<Self>, stop: CancellationToken) {
        loop {
            let n = self.deliver_due().await;
            if n > 0 {
                continue;
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.outbox_ready.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}

/// How a check went, before it is recorded.
struct CheckRun {
    sha: Option<CommitSha>,
    result: Result<core_drift::Classification, String>,
    engine_ms: u64,
}

impl CheckRun {
    fn failed(sha: Option<CommitSha>, error: String) -> CheckRun {
        CheckRun {
            sha,
            result: Err(error),
            engine_ms: 0,
        }
    }
}

fn issue_item(kind: IssueKind, action: IssueAction, text: IssueText) -> DriftOutgoing {
    let IssueText {
        title,
        body,
        labels,
    } = text;
    match action {
        IssueAction::Open => DriftOutgoing::OpenIssue {
            issue: kind,
            title,
            body,
            labels,
        },
        IssueAction::Edit => DriftOutgoing::EditIssue {
            issue: kind,
            title,
            body,
            labels,
        },
        IssueAction::Close => DriftOutgoing::CloseIssue {
            issue: kind,
            title,
            body,
            labels,
        },
    }
}

/// The status of every project (of one repository), for `sluice status` and `GET
/// /api/projects`.
pub async fn project_statuses(
    drift: &dyn DriftStore,
    repo: Option<&RepoName>,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<ProjectStatus>> {
    let mut out = Vec::new();
    for row in drift.projects(repo).await? {
        let last = drift.last_applied(&row.key).await?.map(|(a, _)| a);
        let schedule = row
            .schedule
            .as_deref()
            .and_then(|s| Schedule::parse(s).ok());
        let offset = schedule
            .as_ref()
            .map(|s| Jitter::default().offset(&row.key.repo, &row.name, s));
        let view = schedule
            .as_ref()
            .zip(offset)
            .map(|(schedule, offset)| core_drift::ScheduleView { schedule, offset });
        // A Sluice apply of the project running now (a comment's, a check run button's):
        // `applying`, whatever the last check said.
        let applying = drift.apply_running(&row.key).await?;
        let mut sync = core_drift::project_sync(&row.record, last.as_ref(), view, applying, now);
        // A delivery after merge under way, or one that did not apply (newer than the last
        // successful apply): `applying` / `out_of_sync`.
        if let Some(d) = drift
            .project_delivery(&row.key.repo, &row.key.dir, &row.key.workspace)
            .await?
        {
            let after_last = last
                .as_ref()
                .is_none_or(|l| l.at.timestamp_millis() < d.at.get());
            if d.state.in_progress() {
                sync.status = core_drift::SyncStatus::Applying;
            } else if d.state.not_applied() && after_last {
                sync.status = core_drift::SyncStatus::OutOfSync;
            }
        }
        out.push(ProjectStatus {
            repo: row.key.repo.full(),
            project: row.name.to_string(),
            dir: row.key.dir.to_string(),
            workspace: row.key.workspace.to_string(),
            schedule: row.schedule.clone(),
            drift_issue: row.drift_issue,
            sync,
        });
    }
    Ok(out)
}

/// One project's status, as `sluice status` and `GET /api/projects` show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProjectStatus {
    pub repo: String,
    pub project: String,
    pub dir: String,
    pub workspace: String,
    /// The cron schedule; `None` when scheduled checks are off.
    pub schedule: Option<String>,
    pub drift_issue: Option<u64>,
    #[serde(flatten)]
    pub sync: core_drift::ProjectSync,
}
