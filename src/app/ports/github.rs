//! The GitHub port: what the flows need from GitHub, as a trait the app holds as
//! `Arc<dyn GitHubApi>`, and the small DTOs it speaks in. `adapters::github` implements it over
//! octocrab; tests implement it in-process. Nothing here knows about HTTP or JSON.

use std::time::Duration;

use async_trait::async_trait;

use crate::config::Secret;
use crate::core::event::{Actor, Review};
use crate::core::review::checks::{CreateCheckRun, UpdateCheckRun};
use crate::core::review::patch::PrFile;
use crate::core::review::pr_review::{CreateReview, CreateReviewComment};
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

    /// `login`'s permission on `repo` (`GET /repos/{o}/{r}/collaborators/{login}/permission`):
    /// `admin`, `maintain`, `write`, `triage`, `read` or `none` (also for a login GitHub does
    /// not know there, or one that is not a plain GitHub login).
    async fn repo_permission(&self, repo: &RepoName, login: &str) -> Result<String, GitHubError>;

    /// The login Sluice posts as: the token's user, or `<app-slug>[bot]` for an App.
    async fn bot_login(&self) -> Result<String, GitHubError>;

    /// The files of a pull request with their patches, all pages (GitHub lists at most
    /// 3,000 files: `core::review::patch::MAX_LISTED_FILES`).
    async fn list_pull_files(
        &self,
        repo: &RepoName,
        pr: PrNumber,
    ) -> Result<Vec<PrFile>, GitHubError>;

    /// Submits a review (`POST …/pulls/{n}/reviews`); returns its id and the ids of its line
    /// comments (read back with `GET …/reviews/{id}/comments`). A line outside the diff is
    /// [`GitHubError::Unprocessable`].
    async fn create_review(
        &self,
        repo: &RepoName,
        pr: PrNumber,
        review: &CreateReview,
    ) -> Result<PostedReviewIds, GitHubError>;

    /// Replaces a submitted review's body (`PUT …/pulls/{n}/reviews/{id}`).
    async fn update_review(
        &self,
        repo: &RepoName,
        pr: PrNumber,
        review_id: u64,
        body: &str,
    ) -> Result<(), GitHubError>;

    /// Creates a (file-level) review comment (`POST …/pulls/{n}/comments`); returns its id.
    async fn create_review_comment(
        &self,
        repo: &RepoName,
        pr: PrNumber,
        comment: &CreateReviewComment,
    ) -> Result<u64, GitHubError>;

    /// Replaces a review comment's body (`PATCH …/pulls/comments/{id}`).
    async fn update_review_comment(
        &self,
        repo: &RepoName,
        comment_id: u64,
        body: &str,
    ) -> Result<(), GitHubError>;

    /// Creates a check run (`POST …/check-runs`, GitHub App only); returns its id.
    async fn create_check_run(
        &self,
        repo: &RepoName,
        check: &CreateCheckRun,
    ) -> Result<u64, GitHubError>;

    /// Updates a check run (`PATCH …/check-runs/{id}`); annotations in `update` are appended.
    async fn update_check_run(
        &self,
        repo: &RepoName,
        check_run_id: u64,
        update: &UpdateCheckRun,
    ) -> Result<(), GitHubError>;

    /// Whether Sluice runs as a GitHub App (check runs exist only for Apps; a token posts
    /// commit statuses instead).
    fn is_app(&self) -> bool;

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

    /// The files changed between two commits (`GET /repos/{o}/{r}/compare/{base}...{head}`,
    /// first page: GitHub lists the files there only, at most
    /// [`MAX_COMPARE_FILES`](crate::core::merge_queue::MAX_COMPARE_FILES)).
    async fn compare_files(
        &self,
        repo: &RepoName,
        base: &CommitSha,
        head: &CommitSha,
    ) -> Result<Vec<PrFile>, GitHubError>;

    /// Merges a pull request (`PUT /repos/{o}/{r}/pulls/{n}/merge`) with `method`, only if its
    /// head is still `sha` (GitHub answers 409 otherwise); returns the merge commit's SHA.
    /// Branch protection refusing the merge is 405 (or 422): a non-retryable error whose
    /// message carries GitHub's reason.
    async fn merge_pull(
        &self,
        repo: &RepoName,
        pr: PrNumber,
        method: MergeMethod,
        sha: &CommitSha,
    ) -> Result<CommitSha, GitHubError>;
    /// Opens a pull request (`POST /repos/{o}/{r}/pulls`), authored by Sluice's identity (the
    /// App). A head branch that already has an open pull request into that base is
    /// [`GitHubError::Unprocessable`].
    async fn create_pull(&self, repo: &RepoName, pull: &NewPull) -> Result<PullLink, GitHubError>;

    /// The open pull requests whose head is `branch` of `repo` itself
    /// (`GET /repos/{o}/{r}/pulls?state=open&head={owner}:{branch}`), all pages.
    async fn open_pulls_from(
        &self,
        repo: &RepoName,
        branch: &str,
    ) -> Result<Vec<PullLink>, GitHubError>;
}

/// A pull request to open: from branch `head` of the repository into `base`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPull {
    pub title: String,
    /// Markdown.
    pub body: String,
    pub head: String,
    pub base: String,
}

/// A pull request's number and page (`html_url`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullLink {
    pub number: PrNumber,
    pub html_url: String,
}

pub use crate::core::repo_config::MergeMethod;

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
    /// 422 Unprocessable Entity, with GitHub's whole answer (its `errors` say which field).
    #[error("GitHub refused the request (422): {0}")]
    Unprocessable(String),
}

/// What [`GitHubApi::create_review`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostedReviewIds {
    pub review_id: u64,
    /// The review's line comments, in GitHub's order.
    pub comment_ids: Vec<u64>,
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
    /// The pull request's title (empty when the source did not say).
    pub title: String,
    /// GitHub's `merge_commit_sha` of a merged pull request: the commit on the base branch that
    /// holds the merge (the merge commit, the squashed commit, or the last rebased commit).
    /// `None` before the merge, or when the source did not say.
    pub merge_commit_sha: Option<CommitSha>,
}
