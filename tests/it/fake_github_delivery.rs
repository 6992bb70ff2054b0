// The fake's delivery endpoints, with the shapes of `@octokit/openapi` 23.0.2:
// "Compare two commits" (`GET /repos/{o}/{r}/compare/{base}...{head}`, `commit-comparison`
// with `diff-entry` files, listed on the first page only, at most 300) and "Merge a pull
// request" (`PUT /repos/{o}/{r}/pulls/{n}/merge`: 200 `pull-request-merge-result`; 405 "Pull
// Request is not mergeable" when branch protection refuses; 409 "Head branch was modified.
// Review and try the merge again." when `sha` is not the head; 422 for a bad `merge_method`).
// The fake has no git: a test says which files a comparison lists.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{FakeGitHub, Shared, error_body, lock, not_found, unprocessable};

/// What the delivery endpoints know: comparisons set by tests, merges made, merges refused.
#[derive(Default)]
pub struct DeliveryState {
    /// `(repo lowercase, base, head)` → the files the comparison lists.
    compares: std::collections::HashMap<(String, String, String), Vec<String>>,
    /// `(repo lowercase, pr)` → branch protection's refusal message (answered with 405).
    protected: std::collections::HashMap<(String, u64), String>,
    merges: Vec<FakeMerge>,
}

/// A merge the fake performed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeMerge {
    pub repo: String,
    pub pr: u64,
    pub method: String,
    /// The `sha` the caller required the head to be.
    pub sha: Option<String>,
}

impl FakeGitHub {
    /// `GET …/compare/{base}...{head}` lists `files` (all `modified`; 300 at most, as GitHub).
    pub fn set_compare(&self, repo: &str, base: &str, head: &str, files: &[&str]) {
        let key = (repo.to_ascii_lowercase(), base.to_string(), head.to_string());
        let files = files.iter().map(|f| f.to_string()).collect();
        lock(&self.state).delivery.compares.insert(key, files);
    }

    /// Branch protection refuses to merge PR `pr` (405 with `message`).
    pub fn protect_pull(&self, repo: &str, pr: u64, message: &str) {
        lock(&self.state)
            .delivery
            .protected
            .insert((repo.to_ascii_lowercase(), pr), message.to_string());
    }

    /// The merges made through `PUT …/pulls/{n}/merge`.
    pub fn merges(&self) -> Vec<FakeMerge> {
        lock(&self.state).delivery.merges.clone()
    }
}

/// `GET /repos/{owner}/{repo}/compare/{basehead}` (`base...head`).
pub async fn compare(
    State(state): State<Shared>,
    Path((owner, repo, basehead)): Path<(String, String, String)>,
) -> Response {
    let Some((base, head)) = basehead.split_once("...") else {
        return not_found();
    };
    let s = lock(&state);
    let key = (
        format!("{owner}/{repo}").to_ascii_lowercase(),
        base.to_string(),
        head.to_string(),
    );
    let Some(files) = s.delivery.compares.get(&key) else {
        return not_found();
    };
    let base_url = s.base_url.clone();
    let files: Vec<Value> = files
        .iter()
        .take(300)
        .map(|f| {
            json!({
                "sha": "bbcd538c8e72b8c175046e27cc8f907076331401",
                "filename": f,
                "status": "modified",
                "additions": 1,
                "deletions": 1,
                "changes": 2,
                "blob_url": format!("{base_url}/{owner}/{repo}/blob/{head}/{f}"),
                "raw_url": format!("{base_url}/{owner}/{repo}/raw/{head}/{f}"),
                "contents_url": format!("{base_url}/repos/{owner}/{repo}/contents/{f}?ref={head}"),
                "patch": "@@ -1 +1 @@\n-a\n+b",
            })
        })
        .collect();
    Json(json!({
        "url": format!("{base_url}/repos/{owner}/{repo}/compare/{basehead}"),
        "html_url": format!("{base_url}/{owner}/{repo}/compare/{basehead}"),
        "permalink_url": format!("{base_url}/{owner}/{repo}/compare/{basehead}"),
        "diff_url": format!("{base_url}/{owner}/{repo}/compare/{basehead}.diff"),
        "patch_url": format!("{base_url}/{owner}/{repo}/compare/{basehead}.patch"),
        "base_commit": { "sha": base },
        "merge_base_commit": { "sha": base },
        "status": "ahead",
        "ahead_by": 1,
        "behind_by": 0,
        "total_commits": 1,
        "commits": [{ "sha": head }],
        "files": files,
    }))
    .into_response()
}

#[derive(Deserialize)]
pub struct MergeBody {
    merge_method: Option<String>,
    sha: Option<String>,
}

/// `PUT /repos/{owner}/{repo}/pulls/{number}/merge`.
pub async fn merge_pull(
    State(state): State<Shared>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    Json(body): Json<MergeBody>,
) -> Response {
    let full = format!("{owner}/{repo}");
    let mut s = lock(&state);
    let method = body.merge_method.unwrap_or_else(|| "merge".to_string());
    if !["merge", "squash", "rebase"].contains(&method.as_str()) {
        return unprocessable("Validation Failed: merge_method is not included in the list");
    }
    let key = (full.to_ascii_lowercase(), number);
    if let Some(message) = s.delivery.protected.get(&key).cloned() {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            Json(error_body(&message, 405)),
        )
            .into_response();
    }
    let Some(pull) = s.pulls.get_mut(&key) else {
        return not_found();
    };
    if pull.merged || pull.state != "open" {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            Json(error_body("Pull Request is not mergeable", 405)),
        )
            .into_response();
    }
    if body.sha.as_ref().is_some_and(|sha| sha != &pull.head_sha) {
        return (
            StatusCode::CONFLICT,
            Json(error_body(
                "Head branch was modified. Review and try the merge again.",
                409,
            )),
        )
            .into_response();
    }
    pull.merged = true;
    pull.state = "closed".to_string();
    let id = s.next_id();
    s.delivery.merges.push(FakeMerge {
        repo: full,
        pr: number,
        method,
        sha: body.sha,
    });
    Json(json!({
        "sha": format!("{id:040x}"),
        "merged": true,
        "message": "Pull Request successfully merged",
    }))
    .into_response()
}
