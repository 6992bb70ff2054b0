//! The real GitHub client (`OctocrabGitHub`) against the fake GitHub server: every call, the
//! retry policy (5xx, 403 secondary limits, 429, give-up), and GitHub App auth.

use std::num::NonZeroU32;
use std::time::Duration;

use sluice::adapters::github::{GitHubAuth, GitHubConfig, OctocrabGitHub};
use sluice::app::ports::{
    CommitStatus, GitHubApi, GitHubError, MergeableState, PullState, StatusState,
};
use sluice::config::Secret;
use sluice::core::event::{ActorKind, ReviewState};
use sluice::core::types::{CommitSha, PrNumber, RepoName};

use crate::fake_github::{self, Failure, FakeGitHub, FakePull};

const REPO: &str = "acme/infra";

fn repo() -> RepoName {
    RepoName::parse(REPO).unwrap()
}

fn pr(n: u64) -> PrNumber {
    PrNumber::new(n).unwrap()
}

/// Fast retries so tests do not sleep for real backoffs; the limiter out of the way.
fn fast(api_url: String, auth: GitHubAuth) -> GitHubConfig {
    GitHubConfig {
        requests_per_second: NonZeroU32::new(1000).unwrap(),
        burst: NonZeroU32::new(1000).unwrap(),
        max_attempts: 3,
        base_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        max_retry_wait: Duration::from_secs(5),
        request_timeout: Duration::from_secs(10),
        ..GitHubConfig::new(api_url, auth)
    }
}

fn token_client(fake: &FakeGitHub) -> OctocrabGitHub {
    OctocrabGitHub::new(fast(
        fake.url(),
        GitHubAuth::Token(Secret::new(fake_github::TOKEN)),
    ))
    .unwrap()
}

fn app_client(fake: &FakeGitHub) -> OctocrabGitHub {
    OctocrabGitHub::new(fast(
        fake.url(),
        GitHubAuth::App {
            app_id: fake_github::APP_ID,
            key_pem: Secret::new(fake_github::app_private_key()),
        },
    ))
    .unwrap()
}

#[tokio::test]
async fn comments_are_created_and_updated() {
    let fake = FakeGitHub::start().await;
    fake.add_pull(FakePull::new(REPO, 1));
    let gh = token_client(&fake);

    let id = gh
        .create_comment(&repo(), pr(1), "**plan** running")
        .await
        .unwrap();
    assert_eq!(fake.comments(REPO, 1), ["**plan** running"]);

    gh.update_comment(&repo(), id, "Plan: 1 to add")
        .await
        .unwrap();
    assert_eq!(fake.comments(REPO, 1), ["Plan: 1 to add"]);

    let posts = fake.requests_to("POST", "/repos/acme/infra/issues/1/comments");
    assert_eq!(posts.len(), 1);
    let post = &posts[0];
    assert_eq!(
        post.header("authorization"),
        Some(format!("Bearer {}", fake_github::TOKEN).as_str())
    );
    assert_eq!(post.header("accept"), Some("application/vnd.github+json"));
    assert_eq!(post.header("x-github-api-version"), Some("2022-11-28"));
    assert_eq!(post.body.as_ref().unwrap()["body"], "**plan** running");
    let patch = fake.requests_to("PATCH", &format!("/repos/acme/infra/issues/comments/{id}"));
    assert_eq!(patch.len(), 1);

    let err = gh.update_comment(&repo(), 999_999, "x").await.unwrap_err();
    assert!(matches!(err, GitHubError::NotFound(_)), "{err:?}");
}

#[tokio::test]
async fn status_descriptions_are_cut_to_what_github_accepts() {
    let fake = FakeGitHub::start().await;
    let gh = token_client(&fake);
    let sha = CommitSha::new("abcdefabcdefabcdefabcdefabcdefabcdefabcd").unwrap();

    let long = "3/3 projects planned: ".to_string() + &"network-prod, ".repeat(20);
    assert!(long.chars().count() > 140);
    gh.set_status(
        &repo(),
        &sha,
        &CommitStatus {
            context: "sluice/plan".into(),
            state: StatusState::Success,
            description: long.clone(),
            target_url: Some("https://sluice.example.com/runs/1".into()),
        },
    )
    .await
    .unwrap();
    gh.set_status(
        &repo(),
        &sha,
        &CommitStatus {
            context: "sluice/apply".into(),
            state: StatusState::Pending,
            description: "waiting for approval".into(),
            target_url: None,
        },
    )
    .await
    .unwrap();

    let statuses = fake.statuses(sha.as_str());
    assert_eq!(statuses.len(), 2);
    let (context, state, description) = &statuses[0];
    assert_eq!(
        (context.as_str(), state.as_str()),
        ("sluice/plan", "success")
    );
    assert_eq!(description.chars().count(), 140);
    assert!(long.starts_with(description.trim_end_matches('…')));
    assert_eq!(
        statuses[1],
        (
            "sluice/apply".to_string(),
            "pending".to_string(),
            "waiting for approval".to_string()
        )
    );
    let all = fake.all_statuses();
    assert_eq!(
        all[0].target_url.as_deref(),
        Some("https://sluice.example.com/runs/1")
    );
    assert_eq!(all[1].target_url, None);
}

#[tokio::test]
async fn reactions_are_added_and_checked() {
    let fake = FakeGitHub::start().await;
    fake.add_pull(FakePull::new(REPO, 3));
    let comment = fake.add_comment(REPO, 3, "alice", "sluice plan");
    let gh = token_client(&fake);

    gh.add_reaction(&repo(), comment, "eyes").await.unwrap();
    // Reacting twice is fine (GitHub answers 200 with the existing reaction).
    gh.add_reaction(&repo(), comment, "eyes").await.unwrap();
    assert_eq!(fake.reactions(), [(comment, "eyes".to_string())]);

    let before = fake.requests().len();
    let err = gh
        .add_reaction(&repo(), comment, "smile")
        .await
        .unwrap_err();
    assert!(matches!(err, GitHubError::Invalid(_)), "{err:?}");
    assert_eq!(fake.requests().len(), before, "refused before any request");
}

#[tokio::test]
async fn pull_requests_are_read() {
    let fake = FakeGitHub::start().await;
    fake.add_pull(FakePull {
        author: "dependabot[bot]".into(),
        author_type: "Bot".into(),
        draft: true,
        mergeable: None,
        mergeable_state: Some("blocked".into()),
        head_repo: Some("someone/infra".into()),
        ..FakePull::new(REPO, 5)
    });
    let gh = token_client(&fake);

    let p = gh.get_pull(&repo(), pr(5)).await.unwrap();
    assert_eq!(p.number, pr(5));
    assert_eq!(p.state, PullState::Open);
    assert!(!p.merged);
    assert!(p.draft);
    assert_eq!(p.mergeable, None);
    assert_eq!(p.mergeable_state, MergeableState::Blocked);
    assert_eq!(p.author.login, "dependabot[bot]");
    assert_eq!(p.author.kind, ActorKind::Bot);
    assert_eq!(
        p.head_sha.as_str(),
        "1111111111111111111111111111111111111111"
    );
    assert_eq!(p.head_ref, "feature");
    assert_eq!(p.base_ref, "main");
    assert_eq!(
        p.base_sha.as_str(),
        "2222222222222222222222222222222222222222"
    );
    assert_eq!(p.html_url, "https://github.com/acme/infra/pull/5");
    assert!(p.from_fork);
    assert_eq!(
        p.head_clone_url.as_deref(),
        Some("https://github.com/someone/infra.git")
    );

    // Merged, and the head repository deleted since.
    fake.update_pull(REPO, 5, |p| {
        p.state = "closed".into();
        p.merged = true;
        p.head_repo = None;
    });
    let p = gh.get_pull(&repo(), pr(5)).await.unwrap();
    assert_eq!(p.state, PullState::Closed);
    assert!(p.merged);
    assert!(p.from_fork);
    assert_eq!(p.head_clone_url, None);
}

#[tokio::test]
async fn reviews_are_read_across_pages() {
    let fake = FakeGitHub::start().await;
    fake.add_pull(FakePull::new(REPO, 2));
    fake.set_max_per_page(2);
    let states = [
        "COMMENTED",
        "CHANGES_REQUESTED",
        "APPROVED",
        "DISMISSED",
        "APPROVED",
    ];
    let ids: Vec<u64> = states
        .iter()
        .enumerate()
        .map(|(i, s)| fake.add_review(REPO, 2, &format!("reviewer{i}"), s))
        .collect();
    let gh = token_client(&fake);

    let reviews = gh.list_reviews(&repo(), pr(2)).await.unwrap();
    assert_eq!(reviews.iter().map(|r| r.id).collect::<Vec<_>>(), ids);
    assert_eq!(
        reviews.iter().map(|r| r.state).collect::<Vec<_>>(),
        [
            ReviewState::Commented,
            ReviewState::ChangesRequested,
            ReviewState::Approved,
            ReviewState::Dismissed,
            ReviewState::Approved
        ]
    );
    assert_eq!(reviews[2].reviewer.login, "reviewer2");
    assert_eq!(
        reviews[2].commit_id.as_ref().map(|c| c.as_str()),
        Some("1111111111111111111111111111111111111111")
    );

    let pages: Vec<Option<String>> = fake
        .requests_to("GET", "/repos/acme/infra/pulls/2/reviews")
        .iter()
        .map(|r| r.query_param("page"))
        .collect();
    assert_eq!(pages, [None, Some("2".into()), Some("3".into())]);

    let err = gh.list_reviews(&repo(), pr(404)).await.unwrap_err();
    assert!(matches!(err, GitHubError::NotFound(_)), "{err:?}");
}

#[tokio::test]
async fn team_members_are_read_across_pages() {
    let fake = FakeGitHub::start().await;
    fake.set_max_per_page(2);
    for login in ["ann", "ben", "cat"] {
        fake.add_team_member("acme", "platform", login);
    }
    fake.add_team("acme", "empty");
    let gh = token_client(&fake);

    assert_eq!(
        gh.team_members("acme", "platform").await.unwrap(),
        ["ann", "ben", "cat"]
    );
    assert_eq!(
        fake.requests_to("GET", "/orgs/acme/teams/platform/members")
            .len(),
        2
    );
    assert!(gh.team_members("acme", "empty").await.unwrap().is_empty());

    let err = gh.team_members("acme", "nobody").await.unwrap_err();
    assert!(matches!(err, GitHubError::NotFound(_)), "{err:?}");
    let err = gh.team_members("acme", "../x").await.unwrap_err();
    assert!(matches!(err, GitHubError::Invalid(_)), "{err:?}");
}

#[tokio::test]
async fn unknown_pull_request_is_not_found_without_retries() {
    let fake = FakeGitHub::start().await;
    let gh = token_client(&fake);

    let err = gh.get_pull(&repo(), pr(9)).await.unwrap_err();
    assert_eq!(
        err,
        GitHubError::NotFound("GET /repos/acme/infra/pulls/9: Not Found".into())
    );
    assert!(!err.is_retryable());
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn server_errors_are_retried() {
    let fake = FakeGitHub::start().await;
    fake.add_pull(FakePull::new(REPO, 1));
    fake.fail_next("GET", "/repos/acme/infra/pulls/1", 2, Failure::new(500));
    let gh = token_client(&fake);

    let p = gh.get_pull(&repo(), pr(1)).await.unwrap();
    assert_eq!(p.number, pr(1));
    let statuses: Vec<u16> = fake
        .requests_to("GET", "/repos/acme/infra/pulls/1")
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [500, 500, 200]);
}

#[tokio::test]
async fn secondary_rate_limit_waits_for_retry_after() {
    let fake = FakeGitHub::start().await;
    fake.add_pull(FakePull::new(REPO, 1));
    fake.fail_next(
        "POST",
        "/repos/acme/infra/issues/1/comments",
        1,
        Failure::secondary_rate_limit(1),
    );
    let gh = token_client(&fake);

    gh.create_comment(&repo(), pr(1), "hello").await.unwrap();
    let posts = fake.requests_to("POST", "/repos/acme/infra/issues/1/comments");
    assert_eq!(
        posts.iter().map(|r| r.status).collect::<Vec<_>>(),
        [403, 201]
    );
    let waited = posts[1].at.duration_since(posts[0].at);
    // Retry-After: 1 is honoured (not the 5 ms backoff); a little slack for timer granularity.
    assert!(
        waited >= Duration::from_millis(990),
        "waited only {waited:?}"
    );
    assert_eq!(fake.comments(REPO, 1), ["hello"], "posted exactly once");
}

#[tokio::test]
async fn too_many_requests_is_retried() {
    let fake = FakeGitHub::start().await;
    fake.fail_next("GET", "/user", 2, Failure::new(429));
    let gh = token_client(&fake);

    assert_eq!(gh.bot_login().await.unwrap(), fake_github::USER_LOGIN);
    let statuses: Vec<u16> = fake
        .requests_to("GET", "/user")
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [429, 429, 200]);
}

#[tokio::test]
async fn primary_rate_limit_waits_until_reset() {
    let fake = FakeGitHub::start().await;
    // Reset already passed: the client waits the one-second floor, then retries.
    let reset = chrono::Utc::now().timestamp() - 5;
    fake.fail_next("GET", "/user", 1, Failure::primary_rate_limit(reset));
    let gh = token_client(&fake);

    gh.bot_login().await.unwrap();
    let calls = fake.requests_to("GET", "/user");
    assert_eq!(
        calls.iter().map(|r| r.status).collect::<Vec<_>>(),
        [403, 200]
    );
    assert!(calls[1].at.duration_since(calls[0].at) >= Duration::from_millis(990));
}

#[tokio::test]
async fn gives_up_after_max_attempts() {
    let fake = FakeGitHub::start().await;
    fake.add_pull(FakePull::new(REPO, 1));
    fake.fail_next("GET", "/repos/acme/infra/pulls/1", 10, Failure::new(502));
    let gh = token_client(&fake);

    let err = gh.get_pull(&repo(), pr(1)).await.unwrap_err();
    assert_eq!(
        err,
        GitHubError::Server {
            status: 502,
            message: "GET /repos/acme/infra/pulls/1: Bad Gateway".into()
        }
    );
    assert!(err.is_retryable());
    assert_eq!(
        fake.requests_to("GET", "/repos/acme/infra/pulls/1").len(),
        3
    );

    // Rate limited on every attempt: the error says how long to wait.
    fake.fail_next("GET", "/user", 10, Failure::secondary_rate_limit(0));
    let err = gh.bot_login().await.unwrap_err();
    assert_eq!(
        err,
        GitHubError::RateLimited {
            retry_after: Duration::ZERO
        }
    );
    assert_eq!(fake.requests_to("GET", "/user").len(), 3);
}

#[tokio::test]
async fn long_waits_are_handed_back_to_the_caller() {
    let fake = FakeGitHub::start().await;
    // Far beyond max_retry_wait (5 s in these tests): no in-line sleep, no second request.
    fake.fail_next("GET", "/user", 1, Failure::secondary_rate_limit(600));
    let gh = token_client(&fake);

    let err = gh.bot_login().await.unwrap_err();
    assert_eq!(
        err,
        GitHubError::RateLimited {
            retry_after: Duration::from_secs(600)
        }
    );
    assert_eq!(err.to_string(), "GitHub rate limit reached; retry in 600s");
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn permission_errors_are_not_retried() {
    let fake = FakeGitHub::start().await;
    fake.add_pull(FakePull::new(REPO, 1));
    fake.fail_next(
        "POST",
        "/repos/acme/infra/issues/1/comments",
        1,
        Failure::new(403).message("Resource not accessible by integration"),
    );
    let gh = token_client(&fake);

    let err = gh.create_comment(&repo(), pr(1), "x").await.unwrap_err();
    assert_eq!(
        err,
        GitHubError::Forbidden(
            "POST /repos/acme/infra/issues/1/comments: Resource not accessible by integration"
                .into()
        )
    );
    assert_eq!(fake.requests().len(), 1);

    let bad = OctocrabGitHub::new(fast(
        fake.url(),
        GitHubAuth::Token(Secret::new("ghp_wrong")),
    ))
    .unwrap();
    let err = bad.bot_login().await.unwrap_err();
    assert_eq!(
        err,
        GitHubError::Unauthorized("GET /user: Bad credentials".into())
    );
    assert!(!err.to_string().contains("ghp_wrong"));
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn transport_errors_are_retried_then_reported() {
    // A port nobody listens on: bind, note the port, close.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let gh = OctocrabGitHub::new(fast(
        format!("http://127.0.0.1:{port}"),
        GitHubAuth::Token(Secret::new("t")),
    ))
    .unwrap();
    let err = gh.bot_login().await.unwrap_err();
    assert!(matches!(err, GitHubError::Transport(_)), "{err:?}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn token_auth_identity_and_clone_token() {
    let fake = FakeGitHub::start().await;
    let gh = token_client(&fake);
    assert_eq!(gh.bot_login().await.unwrap(), "sluice-bot");
    let token = gh.clone_token(None).await.unwrap().unwrap();
    assert_eq!(token.expose(), fake_github::TOKEN);
    assert!(!format!("{gh:?}").contains(fake_github::TOKEN));
}

#[tokio::test]
async fn app_installation_token_is_fetched_once_and_reused() {
    let fake = FakeGitHub::start().await;
    fake.add_pull(FakePull::new(REPO, 1));
    fake.install_on_repo(REPO, 77);
    fake.install_on_org("acme", 77);
    fake.add_team_member("acme", "platform", "ann");
    let gh = app_client(&fake);
    let sha = CommitSha::new("1111111111111111111111111111111111111111").unwrap();

    let id = gh.create_comment(&repo(), pr(1), "hi").await.unwrap();
    gh.update_comment(&repo(), id, "hi again").await.unwrap();
    gh.set_status(
        &repo(),
        &sha,
        &CommitStatus {
            context: "sluice/plan".into(),
            state: StatusState::Pending,
            description: "planning".into(),
            target_url: None,
        },
    )
    .await
    .unwrap();
    gh.get_pull(&repo(), pr(1)).await.unwrap();
    gh.list_reviews(&repo(), pr(1)).await.unwrap();
    assert_eq!(gh.team_members("acme", "platform").await.unwrap(), ["ann"]);

    let tokens = fake.tokens_issued();
    assert_eq!(tokens.len(), 1, "one installation token for every call");
    assert_eq!(tokens[0].installation_id, 77);
    assert_eq!(
        fake.requests_to("GET", "/repos/acme/infra/installation")
            .len(),
        1,
        "the repository's installation is looked up once"
    );
    // The fake verified the JWT (RS256, iss = app id) on the token request; every other call
    // carried the installation token.
    let bearer = format!("Bearer {}", tokens[0].token);
    for r in fake.requests() {
        let jwt_call = r.path.starts_with("/app") || r.path.ends_with("/installation");
        if !jwt_call {
            assert_eq!(
                r.header("authorization"),
                Some(bearer.as_str()),
                "{} {}",
                r.method,
                r.path
            );
        }
        assert!(
            r.status < 400,
            "{} {} answered {}",
            r.method,
            r.path,
            r.status
        );
    }
    assert_eq!(fake.all_comments()[0].user, "sluice-test[bot]");

    // The clone token is the same cached installation token.
    let clone = gh.clone_token(Some(77)).await.unwrap().unwrap();
    assert_eq!(clone.expose(), tokens[0].token);
    assert_eq!(gh.clone_token(None).await.unwrap(), None);
    assert_eq!(fake.tokens_issued().len(), 1);

    assert_eq!(gh.bot_login().await.unwrap(), "sluice-test[bot]");
}

#[tokio::test]
async fn app_tokens_close_to_expiry_are_refreshed() {
    let fake = FakeGitHub::start().await;
    fake.add_pull(FakePull::new(REPO, 1));
    fake.install_on_repo(REPO, 77);
    // Inside the client's refresh margin: every use needs a new token.
    fake.set_token_lifetime(Duration::from_secs(120));
    let gh = app_client(&fake);

    for _ in 0..3 {
        gh.get_pull(&repo(), pr(1)).await.unwrap();
    }
    assert_eq!(fake.tokens_issued().len(), 3);
}

#[tokio::test]
async fn revoked_app_token_is_replaced_once() {
    let fake = FakeGitHub::start().await;
    fake.add_pull(FakePull::new(REPO, 1));
    fake.install_on_repo(REPO, 77);
    let gh = app_client(&fake);

    gh.get_pull(&repo(), pr(1)).await.unwrap();
    fake.revoke_tokens();
    gh.get_pull(&repo(), pr(1)).await.unwrap();

    assert_eq!(fake.tokens_issued().len(), 2);
    let statuses: Vec<u16> = fake
        .requests_to("GET", "/repos/acme/infra/pulls/1")
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [200, 401, 200]);
}

#[tokio::test]
async fn app_not_installed_is_not_found() {
    let fake = FakeGitHub::start().await;
    let gh = app_client(&fake);
    let err = gh.get_pull(&repo(), pr(1)).await.unwrap_err();
    assert_eq!(
        err,
        GitHubError::NotFound("the GitHub App is not installed on acme/infra".into())
    );
    let err = gh.clone_token(Some(5)).await.unwrap_err();
    assert_eq!(
        err,
        GitHubError::NotFound("GitHub App installation 5 does not exist".into())
    );
}

#[tokio::test]
async fn the_rate_limiter_spaces_requests() {
    let fake = FakeGitHub::start().await;
    let gh = OctocrabGitHub::new(GitHubConfig {
        requests_per_second: NonZeroU32::new(4).unwrap(),
        burst: NonZeroU32::new(1).unwrap(),
        ..fast(
            fake.url(),
            GitHubAuth::Token(Secret::new(fake_github::TOKEN)),
        )
    })
    .unwrap();
    for _ in 0..3 {
        gh.bot_login().await.unwrap();
    }
    let calls = fake.requests_to("GET", "/user");
    let spread = calls[2].at.duration_since(calls[0].at);
    // 4 per second, no burst: ≥ 250 ms between requests.
    assert!(spread >= Duration::from_millis(450), "{spread:?}");
}
