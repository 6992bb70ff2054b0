// The fake's pull request creation and listing, with the shapes of `@octokit/openapi`
// (`pull-request` for `POST /repos/{owner}/{repo}/pulls`, 201; `pull-request-simple` items for
// `GET /repos/{owner}/{repo}/pulls`) and GitHub's refusals: a head branch that does not exist
// (422 `Validation Failed`, `field: head`, `code: invalid`), and a second open pull request from
// the same head into the same base (422, `A pull request already exists for owner:branch.`).
// Branches are read from the repository registered with `FakeGitHub::set_repo_dir` (the test's
// origin, which Sluice pushes to), so a pull request only opens from a branch that was pushed.

use std::path::PathBuf;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Caller, FakePull, Shared, caller_login, lock, paginate, pull_json, user_id};

#[derive(Debug, Deserialize)]
pub(super) struct CreatePullBody {
    title: Option<String>,
    head: Option<String>,
    base: Option<String>,
    body: Option<String>,
    #[allow(dead_code)]
    maintainer_can_modify: Option<bool>,
    #[serde(default)]
    draft: bool,
}

/// GitHub's 422 with its `errors` list.
fn validation_failed(errors: Value) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({
            "message": "Validation Failed",
            "errors": errors,
            "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
            "status": "422",
        })),
    )
        .into_response()
}

/// The commit a branch of the registered repository points at.
fn branch_sha(dir: &PathBuf, branch: &str) -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--verify", "--quiet"])
        .arg(format!("refs/heads/{branch}^{{commit}}"))
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

pub(super) async fn create_pull(
    State(state): State<Shared>,
    Path((owner, repo)): Path<(String, String)>,
    Extension(caller): Extension<Caller>,
    Json(req): Json<CreatePullBody>,
) -> Response {
    let full = format!("{owner}/{repo}");
    let key = full.to_ascii_lowercase();
    let (Some(title), Some(head), Some(base)) = (req.title, req.head, req.base) else {
        return validation_failed(json!([{ "resource": "PullRequest", "field": "head", "code": "missing_field" }]));
    };
    let branch = head.split_once(':').map_or(head.as_str(), |(_, b)| b).to_string();
    let mut s = lock(&state);
    let Some(dir) = s.repo_dirs.get(&key).cloned() else {
        return validation_failed(json!([{ "resource": "PullRequest", "field": "head", "code": "invalid" }]));
    };
    let (Some(head_sha), Some(base_sha)) = (branch_sha(&dir, &branch), branch_sha(&dir, &base)) else {
        return validation_failed(json!([{ "resource": "PullRequest", "field": "head", "code": "invalid" }]));
    };
    let exists = s.pulls.values().any(|p| {
        p.repo.eq_ignore_ascii_case(&full) && p.state == "open" && p.head_ref == branch && p.base_ref == base
    });
    if exists {
        return validation_failed(json!([{
            "resource": "PullRequest",
            "code": "custom",
            "message": format!("A pull request already exists for {owner}:{branch}."),
        }]));
    }
    let number = s
        .pulls
        .keys()
        .filter(|(r, _)| *r == key)
        .map(|(_, n)| *n)
        .max()
        .unwrap_or(0)
        + 1;
    let author = caller_login(&caller);
    let pull = FakePull {
        title,
        author_id: user_id(&author),
        author_type: if author.ends_with("[bot]") { "Bot" } else { "User" }.to_string(),
        author,
        head_sha,
        head_ref: branch,
        base_ref: base,
        base_sha,
        draft: req.draft,
        body: req.body.unwrap_or_default(),
        ..FakePull::new(&full, number)
    };
    let json = pull_json(&s.base_url, &pull);
    s.pulls.insert((key, number), pull);
    (StatusCode::CREATED, Json(json)).into_response()
}

#[derive(Debug, Deserialize)]
pub(super) struct ListPullsQuery {
    state: Option<String>,
    head: Option<String>,
    per_page: Option<usize>,
    page: Option<usize>,
}

pub(super) async fn list_pulls(
    State(state): State<Shared>,
    Path((owner, repo)): Path<(String, String)>,
    Query(q): Query<ListPullsQuery>,
) -> Response {
    let full = format!("{owner}/{repo}");
    let s = lock(&state);
    let wanted = q.state.as_deref().unwrap_or("open");
    // `head` is `user:ref-name`: only pull requests from that owner's branch.
    let head = q.head.as_deref().map(|h| match h.split_once(':') {
        Some((o, b)) => (o.to_string(), b.to_string()),
        None => (owner.clone(), h.to_string()),
    });
    let mut pulls: Vec<&FakePull> = s
        .pulls
        .values()
        .filter(|p| p.repo.eq_ignore_ascii_case(&full))
        .filter(|p| wanted == "all" || p.state == wanted)
        .filter(|p| match &head {
            Some((o, b)) => {
                let head_owner = p.head_repo.as_deref().and_then(|r| r.split_once('/')).map(|(o, _)| o);
                head_owner.is_some_and(|ho| ho.eq_ignore_ascii_case(o)) && p.head_ref == *b
            }
            None => true,
        })
        .collect();
    // Newest first, as GitHub's default `sort=created&direction=desc`.
    pulls.sort_by_key(|p| std::cmp::Reverse(p.number));
    let items: Vec<Value> = pulls.iter().map(|p| pull_json(&s.base_url, p)).collect();
    let page = super::PageQuery {
        per_page: q.per_page,
        page: q.page,
    };
    paginate(
        &s.base_url,
        &format!("/repos/{full}/pulls"),
        &page,
        s.max_per_page,
        items,
    )
}
