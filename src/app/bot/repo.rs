//! What the flows read about a pull request besides GitHub's word: its commits fetched into the
//! repository's mirror, its configuration and projects (read within the detection deadline),
//! the policies in force (from the base branch, never the head), the overrides recorded for its
//! head, and the project a saved plan was made for.

use super::{Bot, EventError};
use crate::adapters::git::GitRepo;
use crate::app::bounded::{self, BoundedError};
use crate::app::policy::{PolicySet, policies_at};
use crate::app::ports::PullDetails;
use crate::app::ports::store::{JobPayload, PlanJob, PlanRow};
use crate::app::repo_state::{RepoRules, RepoState, base_rules_at};
use crate::core::base_rules::BaseRules;
use crate::core::event::RepoRef;
use crate::core::policy::PolicyOverride;
use crate::core::projects::Project;
use crate::core::types::{CommitSha, RepoName};

impl Bot {
    /// Fetches the PR's head and base into the mirror.
    pub(super) async fn fetch(
        &self,
        repo: &RepoRef,
        pr: &PullDetails,
    ) -> Result<GitRepo, EventError> {
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

    /// The commit the base branch points at now (after a fetch).
    pub(super) fn base_tip(git: &GitRepo, pr: &PullDetails) -> CommitSha {
        git.resolve(&format!("refs/sluice/base/{}", pr.base_ref))
            .unwrap_or_else(|_| pr.base_sha.clone())
    }

    /// The configuration, tree and changes of `head` against `base` (the tip of the branch
    /// `base_ref`, whose name picks the projects of Atlantis `branch` patterns), read within the
    /// deadline.
    pub(super) async fn repo_state(
        &self,
        repo: &RepoName,
        base_ref: &str,
        git: &GitRepo,
        base: &CommitSha,
        head: &CommitSha,
    ) -> Result<RepoState, EventError> {
        let (git, base, head) = (git.clone(), base.clone(), head.clone());
        let rules = self.repo_rules(repo, base_ref);
        self.read_bounded(move || RepoState::load(&git, &base, &head, &rules))
            .await
    }

    /// The base branch's rules at `base`, the tip of `base_ref` (`app::repo_state::base_rules_at`:
    /// apply and plan requirements by dir and workspace, the server's repo rules' defaults
    /// included), read within the deadline.
    pub(super) async fn base_rules(
        &self,
        repo: &RepoName,
        base_ref: &str,
        git: &GitRepo,
        base: &CommitSha,
    ) -> Result<BaseRules, EventError> {
        let (git, base) = (git.clone(), base.clone());
        let rules = self.repo_rules(repo, base_ref);
        self.read_bounded(move || base_rules_at(&git, &base, &rules))
            .await
    }

    /// The server's repo rules (`repo_rules`), applied for `repo` and pull requests into
    /// `base_ref`.
    pub fn repo_rules(&self, repo: &RepoName, base_ref: &str) -> RepoRules {
        RepoRules::new(self.settings.server_rules(), Some(repo)).into_branch(base_ref)
    }

    /// Why pull requests of `repo` into `base` are not run, with the audit reason: the base is
    /// not trusted (the default branch or `base_branches`), or the server's repo rule for the
    /// repository limits it to other base branches (Atlantis `branch`). `None`: they are run.
    pub(super) fn base_refusal(
        &self,
        repo: &RepoRef,
        base: &str,
    ) -> Option<(String, &'static str)> {
        use crate::core::reply::pull_request as say;
        if !self
            .settings
            .base_branch_trusted(base, &repo.default_branch)
        {
            return Some((
                say::untrusted_base(base, &repo.default_branch),
                say::UNTRUSTED_BASE_REASON,
            ));
        }
        let settings = self.repo_rules(&repo.name, base).settings();
        if settings.base_branch_allowed(base) {
            return None;
        }
        let pattern = settings.branch.as_ref().map_or("", |b| b.text.as_str());
        let by = settings.decided_by("branch").unwrap_or("");
        Some((
            say::base_outside_rule(base, pattern, by),
            say::RULE_BRANCH_REASON,
        ))
    }

    /// The policies in force for a PR of `repo` whose base is `base` (from that commit, never
    /// the head).
    pub async fn policy_set(
        &self,
        repo: &RepoName,
        git: &GitRepo,
        base: &CommitSha,
    ) -> Result<PolicySet, EventError> {
        let (git, base, server, repo_policies, org) = (
            git.clone(),
            base.clone(),
            self.server_policies.clone(),
            self.settings.repo_policies,
            repo.owner().to_string(),
        );
        self.read_bounded(move || policies_at(&git, &base, &server, repo_policies, &org))
            .await
    }

    /// `policies` with each Rego policy set's result on the plan saved at `plan_file` attached
    /// (see `app::policy::rego_on_plan`).
    pub async fn policies_on_plan(
        &self,
        policies: &[crate::core::policy::Policy],
        plan_file: &std::path::Path,
    ) -> Vec<crate::core::policy::Policy> {
        let budget = std::time::Duration::from_millis(self.settings.limits.rego_eval_ms);
        crate::app::policy::rego_on_plan(policies, plan_file, budget).await
    }

    /// [`Bot::policies_on_plan`] for a saved plan, if there is one (without, Rego sets have no
    /// result and fail at apply).
    pub(super) async fn policies_on_row(
        &self,
        policies: &[crate::core::policy::Policy],
        plan: Option<&PlanRow>,
    ) -> Vec<crate::core::policy::Policy> {
        match plan {
            Some(r) => self.policies_on_plan(policies, &r.plan_file).await,
            None => policies.to_vec(),
        }
    }

    /// Runs blocking work that reads a PR's commits on a reading thread of its own, within
    /// `limits.detection_timeout_secs` (see `app::bounded`).
    pub(super) async fn read_bounded<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> Result<T, EventError> {
        let budget = std::time::Duration::from_secs(self.settings.limits.detection_timeout_secs);
        match bounded::run("reading the pull request", budget, work).await {
            Ok(read) => read.map_err(EventError::Permanent),
            Err(e @ BoundedError::Busy { .. }) => Err(EventError::Retry(e.into())),
            Err(e) => Err(EventError::Permanent(e.into())),
        }
    }

    /// Overrides recorded for the PR's current head.
    pub(super) async fn overrides(
        &self,
        repo: &RepoName,
        pr: &PullDetails,
    ) -> Result<Vec<PolicyOverride>, EventError> {
        let rows = self
            .store
            .policy_overrides(repo, pr.number, &pr.head_sha)
            .await
            .map_err(EventError::Retry)?;
        Ok(rows
            .into_iter()
            .map(|r| PolicyOverride {
                policy: r.policy,
                project: r.project,
                by: r.by_login,
                head_sha: r.head_sha,
            })
            .collect())
    }

    /// The project a saved plan was made for, exactly as its plan job stored it; `None` when
    /// it cannot be read.
    pub(super) async fn project_of_plan(&self, plan: &PlanRow) -> Option<Project> {
        self.plan_job_of(plan).await.map(|job| job.project)
    }

    /// The plan job that made a saved plan (its project, whether it is a destroy plan, the
    /// commit it planned); `None` when it cannot be read.
    pub(super) async fn plan_job_of(&self, plan: &PlanRow) -> Option<PlanJob> {
        match self.store.job(plan.job_id).await.ok()??.payload {
            Ok(JobPayload::Plan(job)) => Some(job),
            _ => None,
        }
    }
}
