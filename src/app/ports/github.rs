//! The GitHub port: what the flows need from GitHub, as a trait the app holds as
//! `Arc<dyn GitHubApi>`, and the small DTOs it speaks in. `adapters::github` implements it over
//! octocrab; tests implement it in-process. Nothing here knows about HTTP or JSON.

use std::time::Duration;

use async_trait::async_trait;

use crate::config::Secret;
use crate::core::event::{Actor, Review};
use crate::core::types::{CommitSha, PrNumber, RepoName};

/// What Sluice needs from GitHub. The app holds it as `Arc<dyn GitHubApi>`; tests can swap in
/// their own implementation, integration tests run the real one against a fake server.
#[async_trait]
pub trait GitHubApi: Send + Sync {
    /// Posts a comment on a pull request; returns the new comment's id.
    async fn create_comment(
        &self,
        repo: &RepoName,
        pr: PrNumber,
        body: &str,
    ) -> Result<u64, GitHubError>;

    /// Replaces the body of an existing (issue or pull request) comment.
    async fn update_comment(
        &self,
        repo: &RepoName,
        comment_id: u64,
        body: &str,
    ) -> Result<(), GitHubError>;

    /// Sets a commit status. Descriptions longer than GitHub's 140 characters are cut.
    async fn set_status(
        &self,
        repo: &RepoName,
        sha: &CommitSha,
        status: &CommitStatus,
    ) -> Result<(), GitHubError>;

    /// Reacts to a comment (`eyes` to say "seen, working on it").
    async fn add_reaction(
        &self,
        repo: &RepoName,
        comment_id: u64,
        content: &str,
    ) -> Result<(), GitHubError>;

    /// The pull request as GitHub sees it now.
    async fn get_pull(&self, repo: &RepoName, pr: PrNumber) -> Result<PullDetails, GitHubError>;

    /// Every review of the pull request, oldest first, all pages.
    async fn list_reviews(&self, repo: &RepoName, pr: PrNumber)
    -> Result<Vec<Review>, GitHubError>;

    /// Logins of a team's members, all pages. An unknown org or team is [`GitHubError::NotFound`].
    async fn team_members(&self, org: &str, team_slug: &str) -> Result<Vec<String>, GitHubError>;

    /// The login Sluice posts as: the token's user, or `<app-slug>[bot]` for an App.
    async fn bot_login(&self) -> Result<String, GitHubError>;

    /// A token for https git fetches: the configured token, or an installation token for the
    /// given installation. `None` when there is nothing to offer (an App without an
    /// installation id): the fetch then goes out anonymously.
    async fn clone_token(
        &self,
        installation_id: Option<u64>,
    ) -> Result<Option<Secret>, GitHubError>;

    /// Opens an issue (`POST /repos/{o}/{r}/issues`); returns its number.
    async fn create_issue(&self, repo: &RepoName, issue: &IssueText) -> Result<u64, GitHubError>;

    /// Replaces an issue's title, body and labels, and opens or closes it
    /// (`PATCH /repos/{o}/{r}/issues/{n}`).
    async fn update_issue(
        &self,
        repo: &RepoName,
        number: u64,
        issue: &IssueText,
        open: bool,
    ) -> Result<(), GitHubError>;

    /// The open issues (not pull requests) carrying `label`, as (number, body), all pages.
    async fn open_issues_labelled(
        &self,
        repo: &RepoName,
        label: &str,
    ) -> Result<Vec<(u64, String)>, GitHubError>;

    /// A user's permission on a repository, as GitHub's "Get repository permissions for a
    /// user" answers it (`GET /repos/{o}/{r}/collaborators/{login}/permission`): `(permission,
    /// role_name)`, e.g. `("write", Some("maintain"))`. The web UI decides with it what a user
    /// sees (`core::ui::access`). An implementation that cannot ask answers an error, and the
    /// UI then shows the user nothing of the repository (fail closed).
    async fn repo_permission(
        &self,
        repo: &RepoName,
        login: &str,
    ) -> Result<(String, Option<String>), GitHubError> {
        let _ = (repo, login);
        Err(GitHubError::Unauthorized(
            "this GitHub client cannot read permissions".to_string(),
        ))
    }
}

/// What an issue says: its title, body (markdown) and labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueText {
    pub title: String,
    pub body: String,
    pub labels: Vec<String>,
}

/// What went wrong talking to GitHub. Messages name the call (`GET /repos/o/r/pulls/1`) and
/// GitHub's own message; they never contain a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GitHubError {
    #[error("not found on GitHub: {0}")]
    NotFound(String),
    #[error("GitHub refused Sluice's credentials: {0}")]
    Unauthorized(String),
    #[error("GitHub denied access: {0}")]
    Forbidden(String),
    #[error("GitHub rate limit reached; retry in {}s", retry_after.as_secs().max(1))]
    RateLimited { retry_after: Duration },
    #[error("GitHub answered {status}: {message}")]
    Server { status: u16, message: String },
    #[error("could not reach GitHub: {0}")]
    Transport(String),
    #[error("GitHub rejected the request or sent something unexpected: {0}")]
    Invalid(String),
}

impl GitHubError {
    /// Whether trying again later may succeed (the client already retried in-line; this is for
    /// callers that reschedule whole jobs).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            GitHubError::RateLimited { .. }
                | GitHubError::Server { .. }
                | GitHubError::Transport(_)
        )
    }
}

/// `state` of a commit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusState {
    Pending,
    Success,
    Failure,
    Error,
}

impl StatusState {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusState::Pending => "pending",
            StatusState::Success => "success",
            StatusState::Failure => "failure",
            StatusState::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<StatusState> {
        [
            StatusState::Pending,
            StatusState::Success,
            StatusState::Failure,
            StatusState::Error,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// A commit status (`sluice/plan`, `sluice/apply`, `sluice/policy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitStatus {
    pub context: String,
    pub state: StatusState,
    /// Cut to [`MAX_STATUS_DESCRIPTION`] characters when sent.
    pub description: String,
    pub target_url: Option<String>,
}

/// GitHub rejects longer status descriptions with a 422.
pub const MAX_STATUS_DESCRIPTION: usize = 140;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullState {
    Open,
    Closed,
}

/// GitHub's `mergeable_state`. It is computed lazily by GitHub: right after a push it is often
/// `unknown` (JSON `null`), which is not the same as "not mergeable".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeableState {
    /// Mergeable, checks green.
    Clean,
    /// Mergeable, some non-required checks failing.
    Unstable,
    /// Mergeable, pre-receive hooks pending.
    HasHooks,
    /// Base branch moved ahead; mergeable only after an update, if branch protection says so.
    Behind,
    /// Blocked by branch protection (reviews, required checks).
    Blocked,
    /// Merge conflicts.
    Dirty,
    Draft,
    /// Not computed yet, or a value this version does not know.
    Unknown,
}

impl MergeableState {
    /// GitHub's spelling (`unknown` for values this version does not know).
    pub fn as_str(self) -> &'static str {
        match self {
            MergeableState::Clean => "clean",
            MergeableState::Unstable => "unstable",
            MergeableState::HasHooks => "has_hooks",
            MergeableState::Behind => "behind",
            MergeableState::Blocked => "blocked",
            MergeableState::Dirty => "dirty",
            MergeableState::Draft => "draft",
            MergeableState::Unknown => "unknown",
        }
    }

    /// GitHub's spelling back to the value (`Unknown` for `null` and unknown values).
    pub fn parse(s: Option<&str>) -> MergeableState {
        match s {
            Some("clean") => MergeableState::Clean,
            Some("unstable") => MergeableState::Unstable,
            Some("has_hooks") => MergeableState::HasHooks,
            Some("behind") => MergeableState::Behind,
            Some("blocked") => MergeableState::Blocked,
            Some("dirty") => MergeableState::Dirty,
            Some("draft") => MergeableState::Draft,
            _ => MergeableState::Unknown,
        }
    }
}

/// A pull request as `GET /repos/{o}/{r}/pulls/{n}` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullDetails {
    pub number: PrNumber,
    pub state: PullState,
    pub merged: bool,
    pub draft: bool,
    /// `None` while GitHub is still computing it.
    pub mergeable: Option<bool>,
    pub mergeable_state: MergeableState,
    pub html_url: String,
    pub author: Actor,
    pub head_sha: CommitSha,
    pub head_ref: String,
    /// Clone URL of the head repository; `None` when that repository was deleted.
    pub head_clone_url: Option<String>,
    pub base_ref: String,
    pub base_sha: CommitSha,
    /// True when the head branch lives in another repository than the base.
    pub from_fork: bool,
}
