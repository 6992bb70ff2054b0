//! The GitHub calls behind plans where reviewers read, through the real client against the fake
//! GitHub: the PR's files over many pages, reviews with line comments (and GitHub's 422 for a
//! line outside the diff), file-level review comments, edits of both, and check runs with
//! annotation batches and buttons (refused to a personal token, as GitHub does).

use std::num::NonZeroU32;
use std::time::Duration;

use sluice::adapters::github::{GitHubAuth, GitHubConfig, OctocrabGitHub};
use sluice::app::ports::{GitHubApi, GitHubError};
use sluice::config::Secret;
use sluice::core::review::checks::{
    Annotation, AnnotationLevel, Button, CheckOutput, CheckStatus, Conclusion, CreateCheckRun,
    Scope, UpdateCheckRun,
};
use sluice::core::review::patch::{PrDiff, Side};
use sluice::core::review::pr_review::{
    CreateReview, CreateReviewComment, DraftReviewComment, ReviewEvent, SubjectType,
    is_line_not_in_diff,
};
use sluice::core::types::{PrNumber, RepoName};

use crate::fake_github::{self, FakeFile, FakeGitHub, FakePull};

const REPO: &str = "acme/infra";
const HEAD: &str = "1111111111111111111111111111111111111111";
const PATCH: &str = "@@ -1,3 +1,4 @@\n resource \"null_resource\" \"a\" {\n-  triggers = {}\n+  triggers = { v = 1 }\n+  # new\n }";

fn repo() -> RepoName {
    RepoName::parse(REPO).unwrap()
}

fn pr() -> PrNumber {
    PrNumber::new(1).unwrap()
}

fn config(fake: &FakeGitHub, auth: GitHubAuth) -> GitHubConfig {
    GitHubConfig {
        requests_per_second: NonZeroU32::new(1000).unwrap(),
        burst: NonZeroU32::new(1000).unwrap(),
        max_attempts: 2,
        base_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        ..GitHubConfig::new(fake.url(), auth)
    }
}

fn token_client(fake: &FakeGitHub) -> OctocrabGitHub {
    OctocrabGitHub::new(config(
        fake,
        GitHubAuth::Token(Secret::new(fake_github::TOKEN)),
    ))
    .unwrap()
}

fn app_client(fake: &FakeGitHub) -> OctocrabGitHub {
    fake.install_on_repo(REPO, 77);
    OctocrabGitHub::new(config(
        fake,
        GitHubAuth::App {
            app_id: fake_github::APP_ID,
            key_pem: Secret::new(fake_github::app_private_key()),
        },
    ))
    .unwrap()
}

async fn fake_with_pull() -> FakeGitHub {
    let fake = FakeGitHub::start().await;
    fake.add_pull(FakePull::new(REPO, 1));
    fake.set_pull_files(
        REPO,
        1,
        vec![
            FakeFile::new("prod/main.tf", "modified", Some(PATCH)),
            FakeFile::new("prod/big.tf", "modified", None),
        ],
    );
    fake
}

#[tokio::test]
async fn a_pull_request_with_350_files_is_listed_over_every_page() {
    let fake = FakeGitHub::start().await;
    fake.add_pull(FakePull::new(REPO, 1));
    let files: Vec<FakeFile> = (0..350)
        .map(|i| FakeFile::new(&format!("p{i}/main.tf"), "added", Some("@@ -0,0 +1 @@\n+x")))
        .collect();
    fake.set_pull_files(REPO, 1, files);
    let listed = token_client(&fake)
        .list_pull_files(&repo(), pr())
        .await
        .unwrap();
    assert_eq!(listed.len(), 350);
    assert_eq!(listed[349].filename, "p349/main.tf");
    assert_eq!(
        fake.requests_to("GET", "/repos/acme/infra/pulls/1/files")
            .len(),
        4
    );
    let diff = PrDiff::from_files(&listed);
    assert!(diff.is_commentable("p200/main.tf", Side::Right, 1));
}

fn review(line: u32) -> CreateReview {
    CreateReview {
        commit_id: HEAD.into(),
        body: "summary".into(),
        event: ReviewEvent::Comment,
        comments: vec![DraftReviewComment {
            path: "prod/main.tf".into(),
            line,
            side: Side::Right,
            body: "🔁 replace".into(),
        }],
    }
}

#[tokio::test]
async fn a_review_line_in_the_diff_is_posted_and_one_outside_is_422_line_not_in_diff() {
    let fake = fake_with_pull().await;
    let gh = token_client(&fake);
    let posted = gh.create_review(&repo(), pr(), &review(2)).await.unwrap();
    assert_eq!(posted.comment_ids.len(), 1);
    let comments = fake.review_comments();
    assert_eq!(
        (comments[0].path.as_str(), comments[0].line),
        ("prod/main.tf", Some(2))
    );

    let err = gh
        .create_review(&repo(), pr(), &review(40))
        .await
        .unwrap_err();
    let GitHubError::Unprocessable(text) = &err else {
        panic!("expected a 422, got {err:?}");
    };
    assert!(is_line_not_in_diff(422, text), "{text}");
    assert_eq!(
        fake.posted_reviews().len(),
        1,
        "the refused review posted nothing"
    );

    // The retry: a file-level comment, also on a file GitHub shows without a patch.
    let id = gh
        .create_review_comment(
            &repo(),
            pr(),
            &CreateReviewComment {
                commit_id: HEAD.into(),
                path: "prod/big.tf".into(),
                body: "🔁 replace (line 40)".into(),
                subject_type: SubjectType::File,
            },
        )
        .await
        .unwrap();
    gh.update_review_comment(&repo(), id, "superseded")
        .await
        .unwrap();
    gh.update_review(&repo(), pr(), posted.review_id, "old")
        .await
        .unwrap();
    let c = fake
        .review_comments()
        .into_iter()
        .find(|c| c.id == id)
        .unwrap();
    assert_eq!(
        (c.subject_type.as_str(), c.body.as_str()),
        ("file", "superseded")
    );
    assert_eq!(fake.posted_reviews()[0].body, "old");
    let sent = fake.requests_to("POST", "/repos/acme/infra/pulls/1/comments");
    assert_eq!(sent[0].body.as_ref().unwrap()["subject_type"], "file");
}

fn check(annotations: usize) -> CreateCheckRun {
    CreateCheckRun {
        name: "sluice/plan: prod".into(),
        head_sha: HEAD.into(),
        details_url: None,
        external_id: "sluice:plan:prod".into(),
        status: CheckStatus::Completed,
        conclusion: Some(Conclusion::Neutral),
        started_at: None,
        completed_at: None,
        output: output(annotations),
        actions: vec![
            Button::Apply.action(Scope::Project),
            Button::PlanAgain.action(Scope::Project),
        ],
    }
}

fn output(annotations: usize) -> CheckOutput {
    CheckOutput {
        title: "1 to replace".into(),
        summary: "s".into(),
        text: Some("t".into()),
        annotations: (0..annotations)
            .map(|i| Annotation {
                path: "prod/main.tf".into(),
                start_line: 1 + i as u32,
                end_line: 1 + i as u32,
                annotation_level: AnnotationLevel::Warning,
                message: "replace".into(),
                title: None,
            })
            .collect(),
    }
}

#[tokio::test]
async fn check_runs_are_created_as_an_app_in_batches_of_50_and_refused_to_a_token() {
    let fake = fake_with_pull().await;
    let err = token_client(&fake)
        .create_check_run(&repo(), &check(1))
        .await
        .unwrap_err();
    assert!(matches!(err, GitHubError::Forbidden(_)), "{err:?}");

    let gh = app_client(&fake);
    assert!(gh.is_app());
    let too_many = gh.create_check_run(&repo(), &check(51)).await.unwrap_err();
    assert!(
        matches!(too_many, GitHubError::Unprocessable(_)),
        "{too_many:?}"
    );
    let id = gh.create_check_run(&repo(), &check(50)).await.unwrap();
    gh.update_check_run(&repo(), id, &UpdateCheckRun { output: output(50) })
        .await
        .unwrap();
    let runs = fake.check_runs();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        runs[0].annotations.len(),
        100,
        "annotations are appended, not replaced"
    );
    assert_eq!(runs[0].actions.len(), 2);
    assert_eq!(runs[0].conclusion.as_deref(), Some("neutral"));
}
