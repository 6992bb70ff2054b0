//! The events Sluice acts on, as plain values: what a GitHub webhook means once verified and
//! parsed (the GitHub adapter converts payloads into these by hand). Flows match on
//! [`Event`] in one place.

use serde::{Deserialize, Serialize};

use super::types::{CommitSha, PrNumber, RepoName, UnixMs};

/// Who did something, as GitHub identifies them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub login: String,
    pub id: u64,
    pub kind: ActorKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActorKind {
    Human,
    Bot,
    /// An operator acting through Sluice's own CLI or API.
    Admin,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Human => "human",
            ActorKind::Bot => "bot",
            ActorKind::Admin => "admin",
        }
    }
}

/// The repository an event belongs to, with what is needed to fetch it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoRef {
    pub name: RepoName,
    /// `repository.clone_url` (https, or `file://` in tests).
    pub clone_url: String,
    pub default_branch: String,
    /// GitHub App installation that delivered the event, for installation tokens.
    pub installation_id: Option<u64>,
}

/// The pull request facts carried by `pull_request` events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequestInfo {
    pub number: PrNumber,
    pub author: Actor,
    pub head_sha: CommitSha,
    pub head_ref: String,
    pub base_ref: String,
    pub base_sha: CommitSha,
    pub draft: bool,
    /// True when the head branch lives in another repository (a fork).
    pub from_fork: bool,
    pub html_url: String,
    /// When GitHub last changed the pull request, as this delivery reports it (its
    /// `updated_at`, Unix milliseconds): for a push (`synchronize`), an upper bound of when
    /// `head_sha` became the head. `None` in events stored before Sluice read it.
    #[serde(default)]
    pub updated_at_ms: Option<UnixMs>,
    /// The merge commit of a merged pull request (GitHub's `merge_commit_sha`: the commit on
    /// the base branch that holds the merge). `None` until merged, and in events stored before
    /// Sluice read it.
    #[serde(default)]
    pub merge_commit_sha: Option<CommitSha>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PullRequestAction {
    Opened,
    Reopened,
    Synchronize,
    ReadyForReview,
    Closed { merged: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewAction {
    Submitted,
    Dismissed,
    Edited,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewState {
    Approved,
    ChangesRequested,
    Commented,
    Dismissed,
    Pending,
}

impl ReviewState {
    /// GitHub's spelling (`APPROVED`, `CHANGES_REQUESTED`, …), case-insensitive.
    pub fn parse(s: &str) -> Option<ReviewState> {
        match s.to_ascii_uppercase().as_str() {
            "APPROVED" => Some(ReviewState::Approved),
            "CHANGES_REQUESTED" => Some(ReviewState::ChangesRequested),
            "COMMENTED" => Some(ReviewState::Commented),
            "DISMISSED" => Some(ReviewState::Dismissed),
            "PENDING" => Some(ReviewState::Pending),
            _ => None,
        }
    }
}

/// A review as the reviews API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    pub id: u64,
    pub reviewer: Actor,
    pub state: ReviewState,
    /// The head commit the review was made on (absent on very old reviews).
    pub commit_id: Option<CommitSha>,
    /// RFC 3339.
    pub submitted_at: Option<String>,
}

/// What GitHub's merge queue did with a group (`merge_group.action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MergeGroupAction {
    /// The queue built a temporary commit and waits for its required checks.
    ChecksRequested,
    /// The group left the queue (merged, ejected, or the queue was rebuilt); GitHub's `reason`
    /// says why. Nothing is to be done: nothing is ever applied from a queue commit.
    Destroyed,
}

/// The queue's temporary commit, as a `merge_group` payload describes it (GitHub's webhook
/// reference, "merge_group": `merge_group.head_sha`, `head_ref`, `base_sha`, `base_ref`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeGroupInfo {
    /// The queue commit: the base branch with every pull request of the group (and of the
    /// groups ahead of it) merged in.
    pub head_sha: CommitSha,
    /// `refs/heads/gh-readonly-queue/<base>/pr-<N>-<sha>`.
    pub head_ref: String,
    /// The base branch commit the queue commit was built on.
    pub base_sha: CommitSha,
    /// The base branch, without `refs/heads/` (`main`).
    pub base_ref: String,
    /// The pull request the group was made for, read from `head_ref` (`pr-<N>-`); `None` when
    /// the ref does not say.
    pub pr: Option<PrNumber>,
}

/// The pull request a merge queue ref is for: GitHub names queue branches
/// `gh-readonly-queue/<base branch>/pr-<number>-<head sha>`.
pub fn queue_ref_pr(head_ref: &str) -> Option<PrNumber> {
    let last = head_ref.rsplit('/').next()?;
    let rest = last.strip_prefix("pr-")?;
    let (n, _) = rest.split_once('-')?;
    PrNumber::new(n.parse().ok()?).ok()
}

/// A verified, parsed webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    PullRequest {
        action: PullRequestAction,
        repo: RepoRef,
        pr: PullRequestInfo,
        sender: Actor,
    },
    /// A new comment on a pull request (comments on plain issues are not events for us).
    Comment {
        repo: RepoRef,
        pr: PrNumber,
        comment_id: u64,
        body: String,
        author: Actor,
        /// The author's relation to the repository as GitHub reports it (`OWNER`, `MEMBER`,
        /// `COLLABORATOR`, `CONTRIBUTOR`, `NONE`, ...); `None` when the payload has none.
        association: Option<String>,
        /// When the comment was written (GitHub's `created_at`, Unix milliseconds): commands
        /// act on the pull request as it was then. `None` in events stored before Sluice read
        /// it.
        #[serde(default)]
        created_at_ms: Option<UnixMs>,
    },
    /// A new comment on a plain issue (not a pull request): commands on drift issues
    /// (`sluice drift ack|accept|check|remediate`).
    IssueComment {
        repo: RepoRef,
        issue: u64,
        comment_id: u64,
        body: String,
        author: Actor,
        /// As for [`Event::Comment`].
        association: Option<String>,
        #[serde(default)]
        created_at_ms: Option<UnixMs>,
    },
    Review {
        action: ReviewAction,
        repo: RepoRef,
        pr: PrNumber,
        review: Review,
    },
    /// A push to a branch (drift baseline later; recorded, no work now).
    Push {
        repo: RepoRef,
        git_ref: String,
        after: Option<CommitSha>,
    },
    /// A button of a check run pressed (`check_run` with action `requested_action`): the
    /// command it stands for runs through the comment path (`core::review::checks`).
    CheckRunAction {
        repo: RepoRef,
        /// `check_run.pull_requests[0].number`: `None` when GitHub lists no pull request.
        pr: Option<PrNumber>,
        /// `check_run.id`: with the action, what makes a press one event.
        check_run_id: u64,
        /// `check_run.head_sha`.
        check_head_sha: String,
        /// `check_run.external_id`.
        external_id: Option<String>,
        /// `requested_action.identifier`.
        identifier: String,
        sender: Actor,
    },
    /// GitHub's merge queue asks for checks on a queue commit (`merge_group`, action
    /// `checks_requested`), or dropped one (`destroyed`: recorded, nothing to do).
    MergeGroup {
        action: MergeGroupAction,
        repo: RepoRef,
        group: MergeGroupInfo,
        sender: Actor,
    },
    Ping,
    /// Anything else GitHub sends (installation, check_suite, …): acknowledged, no work.
    Ignored {
        kind: String,
        action: Option<String>,
    },
}

impl Event {
    /// What this event *is*, independent of how it was delivered: GitHub ids that a second
    /// delivery of the same thing carries again (under a fresh `X-GitHub-Delivery` when a
    /// signed body is replayed, or when two webhooks of the same repository both deliver it).
    /// The intake stores an event only if none of its keys is known yet.
    ///
    /// * a comment is one command, whatever delivers it: `issue_comment:<repo>:<comment id>`
    ///   (only `created` comments become events: an edit is not a new command);
    /// * a review's submission and its dismissal each happen once:
    ///   `pull_request_review:<repo>:<review id>:<action>`; edits can repeat and have no key.
    ///
    /// Repository names are lowercased: GitHub's are case-insensitive. Other events have no
    /// key of their own; the intake also keys every delivery by its body's SHA-256, which
    /// catches byte-identical replays of any event.
    pub fn identity_keys(&self) -> Vec<String> {
        match self {
            Event::Comment {
                repo, comment_id, ..
            }
            | Event::IssueComment {
                repo, comment_id, ..
            } => vec![format!(
                "issue_comment:{}:{comment_id}",
                repo.name.full().to_ascii_lowercase()
            )],
            Event::Review {
                action: action @ (ReviewAction::Submitted | ReviewAction::Dismissed),
                repo,
                review,
                ..
            } => vec![format!(
                "pull_request_review:{}:{}:{}",
                repo.name.full().to_ascii_lowercase(),
                review.id,
                match action {
                    ReviewAction::Submitted => "submitted",
                    _ => "dismissed",
                }
            )],
            Event::Review { .. }
            | Event::PullRequest { .. }
            | Event::Push { .. }
            | Event::CheckRunAction { .. }
            | Event::MergeGroup { .. }
            | Event::Ping
            | Event::Ignored { .. } => vec![],
        }
    }

    /// Whether a byte-identical body under a new delivery id is the same event again (the
    /// intake then drops it). Not for a check run button: pressing it twice sends the same body
    /// twice (the check run has not changed), and the second press is meant — "Apply" pressed
    /// again after the approval the first press lacked. A replayed press gains nothing: it
    /// passes the whole gate again with the presser's permission at that time.
    pub fn replays_are_duplicates(&self) -> bool {
        !matches!(self, Event::CheckRunAction { .. })
    }

    pub fn repo(&self) -> Option<&RepoRef> {
        match self {
            Event::PullRequest { repo, .. }
            | Event::Comment { repo, .. }
            | Event::IssueComment { repo, .. }
            | Event::Review { repo, .. }
            | Event::Push { repo, .. }
            | Event::CheckRunAction { repo, .. }
            | Event::MergeGroup { repo, .. } => Some(repo),
            Event::Ping | Event::Ignored { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_ref_names_its_pull_request() {
        let pr = |r: &str| queue_ref_pr(r).map(PrNumber::get);
        assert_eq!(
            pr("refs/heads/gh-readonly-queue/main/pr-104-929f8209d40f77f4abc622a499c93a83babdbe64"),
            Some(104)
        );
        assert_eq!(
            pr("refs/heads/gh-readonly-queue/release/v2/pr-7-abc"),
            Some(7)
        );
        assert_eq!(pr("refs/heads/gh-readonly-queue/main/pr-0-abc"), None);
        assert_eq!(pr("refs/heads/gh-readonly-queue/main/pr-x-abc"), None);
        assert_eq!(pr("refs/heads/main"), None);
        assert_eq!(pr(""), None);
    }
}
