//! `import ADDRESS ID` and `state rm ADDRESS...` (`core::state_command`): the arguments checked,
//! one project picked at the head, then — in the order a user fixes them — another pull
//! request's lock, this pull request's unapplied plan of the project, and the apply gate (the
//! base branch's apply requirements and policies, through `core::apply_gate` and
//! `core::policy` as for `apply`). A refusal is commented and audited; otherwise a state run is
//! queued that takes the project's lock (`Store::create_run`) and runs in the sandbox
//! (`worker::state`).

use super::{Bot, CommandRun, EventError};
use crate::adapters::clock;
use crate::app::ports::store::{Effects, NewJob, NewRun, Opening, RunStart, StateJob, Trigger};
use crate::app::repo_state::base_rules_at;
use crate::core::apply_gate::{self, PrFacts};
use crate::core::audit::{
    AuditAction, AuditApproval, AuditPolicyDecision, AuditRecord, AuditResult,
};
use crate::core::event::Review;
use crate::core::job::JobKind;
use crate::core::lock::LockKey;
use crate::core::policy::{self, PolicyInput, ReasonKind, Stage};
use crate::core::projects::{self, Project};
use crate::core::reply;
use crate::core::state_command::{self, StateCommand, StateFacts};
use crate::core::types::CommitSha;

/// What the gate found for the project, as `apply` would.
struct StateGate {
    refusals: Vec<String>,
    approvals: Vec<AuditApproval>,
    policy: Vec<AuditPolicyDecision>,
}

impl Bot {
    pub(super) async fn state_command(&self, run: &CommandRun<'_>) -> Result<(), EventError> {
        let (ask, pull) = (&run.ask, run.pull);
        let bot = &self.settings.bot_name;
        let kind = run.cmd.kind;
        let command = match run.cmd.state_command() {
            Some(Ok(c)) => c,
            Some(Err(e)) => {
                let record = ask
                    .record(AuditAction::StateCommandRefused, AuditResult::Refused)
                    .head(&pull.head_sha)
                    .detail("command", kind.name())
                    .numbered("argument", &run.cmd.state_args)
                    .detail("reason", &e.message);
                let body = reply::state::bad_arguments(kind, bot, &e);
                return self
                    .say(Effects::new(vec![ask.comment(body)], vec![record]))
                    .await;
            }
            None => return Ok(()),
        };
        let git = self.fetch(ask.repo, pull).await?;
        let base_tip = Self::base_tip(&git, pull);
        let Some(project) = self.state_project(run, &git, &base_tip).await? else {
            return Ok(());
        };
        let key = LockKey {
            dir: project.dir.clone(),
            workspace: project.workspace.clone(),
        };
        let locks = self
            .store
            .locks(Some(&ask.repo.name))
            .await
            .map_err(EventError::Retry)?;
        let lock_holder = locks.iter().find(|l| l.key == key).map(|l| l.pr);
        let plans = self
            .store
            .current_plans(&ask.repo.name, pull.number)
            .await
            .map_err(EventError::Retry)?;
        // A plan that changes nothing has nothing to apply (and is discarded after the change);
        // one whose summary cannot be read counts as changing something (fail closed).
        let unapplied: Option<CommitSha> = plans
            .iter()
            .find(|p| {
                p.project_dir == project.dir
                    && p.workspace == project.workspace
                    && p.summary.as_ref().is_none_or(|s| s.has_changes())
            })
            .map(|p| p.head_sha.clone());
        let gate = self.state_gate(run, &git, &base_tip, &project).await?;
        let facts = StateFacts {
            project: &project.name,
            pr: pull.number,
            unapplied_plan: unapplied.as_ref(),
            lock_holder,
            gate_refusals: &gate.refusals,
        };
        let audit = |action: AuditAction, result: AuditResult| -> AuditRecord {
            let mut record = state_record(ask.record(action, result), &command)
                .base(&base_tip)
                .head(&pull.head_sha)
                .project(&project.name, &project.dir, &project.workspace);
            record.approvals = gate.approvals.clone();
            record.policy = gate.policy.clone();
            record
        };
        if let Some(refusal) = state_command::refusal(&facts) {
            let message = refusal.message(kind.name(), &project.name, bot);
            let reasons = match &refusal {
                state_command::StateRefusal::Gate(reasons) => reasons.clone(),
                _ => vec![message.clone()],
            };
            let record = audit(AuditAction::StateCommandRefused, AuditResult::Refused)
                .numbered("reason", &reasons);
            let body = reply::state::refused(&message);
            return self
                .say(Effects::new(vec![ask.comment(body)], vec![record]))
                .await;
        }
        let job = StateJob {
            project: project.clone(),
            command: command.clone(),
            extra_args: run.cmd.extra_args.clone(),
            approvals: gate.approvals.clone(),
            policy: gate.policy.clone(),
        };
        let new_run = NewRun {
            repo: ask.repo.name.clone(),
            pr: pull.number,
            kind: JobKind::State,
            trigger: Trigger::Comment,
            head_sha: pull.head_sha.clone(),
            base_sha: base_tip.clone(),
            base_ref: pull.base_ref.clone(),
            clone_url: ask.repo.clone_url.clone(),
            installation_id: ask.repo.installation_id,
            actor: ask.actor.clone(),
            comment_id: Some(run.comment_id),
            event_id: Some(format!("{}:state", ask.delivery)),
            extra_args: run.cmd.extra_args.clone(),
            verbose: run.cmd.verbose,
            jobs: vec![NewJob::state(job)],
            locks: vec![key],
        };
        // The lock was free or this pull request's a moment ago; should another pull request
        // take it first, the run waits behind it like a plan (and says so).
        let announce = |opening: Opening<'_>| match opening {
            Opening::Starts => Effects::default(),
            Opening::Waits { held } => Effects::new(
                vec![ask.comment(reply::state::waiting(kind, held.first().map(|l| l.pr)))],
                vec![],
            ),
        };
        let started = self
            .store
            .create_run(new_run, &announce, clock::now())
            .await
            .map_err(EventError::Retry)?;
        if let RunStart::Refused { reason } = started {
            let record = audit(AuditAction::StateCommandRefused, AuditResult::Refused)
                .detail("reason", &reason);
            let body = reply::state::refused(&reason);
            return self
                .say(Effects::new(vec![ask.comment(body)], vec![record]))
                .await;
        }
        self.wake(true);
        Ok(())
    }

    /// The one project a state command acts on: its `-p`/`-d`/`-w` among every project of the
    /// head, or without them the one project the pull request affects. `None`: the pull request
    /// was told why there is none (or several).
    async fn state_project(
        &self,
        run: &CommandRun<'_>,
        git: &crate::adapters::git::GitRepo,
        base_tip: &CommitSha,
    ) -> Result<Option<Project>, EventError> {
        let (ask, pull) = (&run.ask, run.pull);
        let (bot, kind) = (&self.settings.bot_name, run.cmd.kind);
        let state = self
            .repo_state(
                &ask.repo.name,
                &pull.base_ref,
                git,
                base_tip,
                &pull.head_sha,
            )
            .await?;
        let detection = if run.cmd.targets.is_all() {
            state.affected_projects()
        } else {
            state.all_projects()
        };
        let found = match projects::select_projects(&detection.projects, &run.cmd.targets) {
            Ok(found) => found,
            Err(why) => {
                let body = reply::plan::target_not_found(&why, &detection.diagnostics);
                return self.reply(ask, body).await.map(|()| None);
            }
        };
        let body = match found.as_slice() {
            [one] => return Ok(Some((*one).clone())),
            [] => {
                let names: Vec<_> = detection.projects.iter().map(|p| p.name.clone()).collect();
                reply::state::no_project(kind, &names)
            }
            more => {
                let names: Vec<_> = more.iter().map(|p| p.name.clone()).collect();
                reply::state::several_projects(kind, bot, &names)
            }
        };
        self.reply(ask, body).await.map(|()| None)
    }

    /// The apply gate of `project` without a saved plan: the pull request open, the base
    /// branch's apply requirements of the project's dir and workspace, and the base branch's
    /// policies at the `apply` stage (rules that read a plan refuse: there is none).
    async fn state_gate(
        &self,
        run: &CommandRun<'_>,
        git: &crate::adapters::git::GitRepo,
        base_tip: &CommitSha,
        project: &Project,
    ) -> Result<StateGate, EventError> {
        let (ask, pull) = (&run.ask, run.pull);
        let base_rules = {
            let (git, tip) = (git.clone(), base_tip.clone());
            let rules = self.repo_rules(&ask.repo.name, &pull.base_ref);
            self.read_bounded(move || base_rules_at(&git, &tip, &rules))
                .await?
        };
        let reviews: Vec<Review> = self
            .github
            .list_reviews(&ask.repo.name, pull.number)
            .await?;
        let facts = PrFacts {
            open: pull.state == crate::app::ports::PullState::Open,
            head_sha: &pull.head_sha,
            author: &pull.author,
            reviews: &reviews,
            mergeable_state: Some(pull.mergeable_state.as_str()),
            undiverged: git.is_ancestor(base_tip, &pull.head_sha).ok(),
        };
        // By the dir and workspace, never the pull request's name for the project.
        let requirements = base_rules
            .identity(&project.dir, &project.workspace)
            .requirements;
        let mut refusals = apply_gate::refusals_without_plan(&facts, &requirements);
        let in_force = apply_gate::approvals(&reviews, &pull.author);
        let approvals = in_force
            .iter()
            .map(|a| AuditApproval {
                login: a.login.clone(),
                user_id: a.user_id,
                review_id: a.review_id,
                submitted_at: a.submitted_at.clone(),
            })
            .collect();
        let policies = self.policy_set(&ask.repo.name, git, base_tip).await?;
        let mut audited = Vec::new();
        if policies.broken {
            refusals.push(policies.broken_message());
        } else if !policies.policies.is_empty() {
            let teams = self.teams.resolve(&*self.github, &policies.policies).await;
            let overrides = self.overrides(&ask.repo.name, pull).await?;
            let base_names = policies.base_names_of(project);
            let input = PolicyInput {
                stage: Stage::Apply,
                actor: &ask.actor.login,
                author: &pull.author.login,
                target_branch: &pull.base_ref,
                head_sha: &pull.head_sha,
                project,
                base_names: &base_names,
                plan: None,
                approvals: &in_force,
                teams: &teams,
                overrides: &overrides,
            };
            let decisions = policy::evaluate(&policies.policies, &input);
            audited = policies.audit(&decisions);
            // There is no plan: rules that read one (YAML plan rules, Rego sets) have nothing to
            // judge and do not hold a state command back — as Atlantis runs no policy check
            // for `import` / `state rm`. Access and approval rules do.
            refusals.extend(
                decisions
                    .iter()
                    .filter(|d| {
                        d.is_blocking()
                            && d.reasons.iter().any(|r| {
                                matches!(r.kind, ReasonKind::Access | ReasonKind::Approvals)
                            })
                    })
                    .map(|d| reply::apply::policy_failed(&d.policy)),
            );
        }
        Ok(StateGate {
            refusals,
            approvals,
            policy: audited,
        })
    }
}

/// `record` with what the command asks: `command`, then the address(es) and the import ID (the
/// store redacts known secrets from every entry as it writes it).
pub(crate) fn state_record(record: AuditRecord, command: &StateCommand) -> AuditRecord {
    match command {
        StateCommand::Import { address, id } => record
            .detail("command", "import")
            .detail("address", &address.text)
            .detail("import_id", id),
        StateCommand::StateRm { addresses } => {
            let texts: Vec<String> = addresses.iter().map(|a| a.text.clone()).collect();
            record
                .detail("command", "state rm")
                .numbered("address", &texts)
        }
    }
}
