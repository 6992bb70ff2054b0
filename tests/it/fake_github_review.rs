// The fake's pull request files, reviews, review comments and check runs, answering with the
// shapes of `@octokit/openapi` (`pull-request-review`, `review-comment`, `diff-entry`,
// `check-run`) and refusing what GitHub refuses: a review line outside the PR's diff (422),
// more than 50 annotations in one request, outputs over 65,535 characters, more than three
// actions, and check runs from anything but a GitHub App (403).

use std::collections::BTreeSet;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{Value, json};

use super::{
    Caller, FakeState, PageQuery, Shared, caller_login, error_body, lock, not_found, paginate,
    unprocessable, user_json,
};

/// A file of a pull request, as `GET …/pulls/{n}/files` lists it.
#[derive(Debug, Clone)]
pub struct FakeFile {
    pub filename: String,
    /// `added`, `modified`, `removed`, `renamed`.
    pub status: String,
    /// Unified diff hunks; `None` for a binary file or a diff too large to show.
    pub patch: Option<String>,
}

impl FakeFile {
    pub fn new(filename: &str, status: &str, patch: Option<&str>) -> FakeFile {
        FakeFile {
            filename: filename.to_string(),
            status: status.to_string(),
            patch: patch.map(str::to_string),
        }
    }
}

/// A review Sluice submitted.
#[derive(Debug, Clone)]
pub struct PostedReview {
    pub id: u64,
    pub repo: String,
    pub pr: u64,
    pub user: String,
    pub commit_id: String,
    pub body: String,
    pub event: String,
}

/// A review comment: a line comment of a review, or a file-level comment.
#[derive(Debug, Clone)]
pub struct FakeReviewComment {
    pub id: u64,
    pub repo: String,
    pub pr: u64,
    pub review_id: Option<u64>,
    pub path: String,
    /// `None` for a file-level comment.
    pub line: Option<u32>,
    pub side: Option<String>,
    /// `line` or `file`.
    pub subject_type: String,
    pub body: String,
}

/// A check run, with every annotation it was given over all its requests.
#[derive(Debug, Clone)]
pub struct FakeCheckRun {
    pub id: u64,
    pub repo: String,
    pub name: String,
    pub head_sha: String,
    pub external_id: Option<String>,
    pub status: String,
    pub conclusion: Option<String>,
    /// `output` of the last request that had one, without its annotations.
    pub output: Value,
    pub annotations: Vec<Value>,
    pub actions: Vec<Value>,
}

/// The lines a unified-diff `patch` shows, per side (`LEFT` base, `RIGHT` head), read
/// independently of Sluice's own reader.
pub fn commentable_lines(patch: &str) -> BTreeSet<(String, u32)> {
    let mut out = BTreeSet::new();
    let (mut left, mut right) = (0u32, 0u32);
    for line in patch.lines() {
        if let Some(rest) = line.strip_prefix("@@ -") {
            let mut parts = rest.split_whitespace();
            let start = |s: Option<&str>| {
                s.and_then(|s| {
                    s.trim_start_matches('+')
                        .split(',')
                        .next()?
                        .parse::<u32>()
                        .ok()
                })
                .unwrap_or(0)
            };
            left = start(parts.next());
            right = start(parts.next());
            continue;
        }
        match line.chars().next() {
            Some('+') => {
                out.insert(("RIGHT".to_string(), right));
                right += 1;
            }
            Some('-') => {
                out.insert(("LEFT".to_string(), left));
                left += 1;
            }
            Some('\\') => {}
            _ => {
                out.insert(("RIGHT".to_string(), right));
                out.insert(("LEFT".to_string(), left));
                left += 1;
                right += 1;
            }
        }
    }
    out
}

fn repo_key(owner: &str, repo: &str) -> String {
    format!("{owner}/{repo}").to_ascii_lowercase()
}

fn line_not_in_diff() -> Response {
    let mut body = error_body("Unprocessable Entity", 422);
    body["errors"] = json!([
        "Pull request review thread line must be part of the diff and Pull request review thread diff hunk can't be blank"
    ]);
    (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
}

fn forbidden(message: &str) -> Response {
    (StatusCode::FORBIDDEN, Json(error_body(message, 403))).into_response()
}

pub(super) async fn list_files(
    State(state): State<Shared>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    Query(q): Query<PageQuery>,
) -> Response {
    let s = lock(&state);
    let key = (repo_key(&owner, &repo), number);
    if !s.pulls.contains_key(&key) {
        return not_found();
    }
    let items: Vec<Value> = s
        .files
        .get(&key)
        .into_iter()
        .flatten()
        .take(3000)
        .enumerate()
        .map(|(i, f)| {
            let (adds, dels) = f.patch.as_deref().map_or((0, 0), |p| {
                (
                    p.lines().filter(|l| l.starts_with('+')).count(),
                    p.lines().filter(|l| l.starts_with('-')).count(),
                )
            });
            let mut v = json!({
                "sha": format!("{:040x}", i + 1),
                "filename": f.filename,
                "status": f.status,
                "additions": adds,
                "deletions": dels,
                "changes": adds + dels,
                "blob_url": format!("https://github.com/{owner}/{repo}/blob/h/{}", f.filename),
                "raw_url": format!("https://github.com/{owner}/{repo}/raw/h/{}", f.filename),
                "contents_url": format!("{}/repos/{owner}/{repo}/contents/{}", s.base_url, f.filename),
            });
            if let Some(p) = &f.patch {
                v["patch"] = json!(p);
            }
            v
        })
        .collect();
    let path = format!("/repos/{owner}/{repo}/pulls/{number}/files");
    paginate(&s.base_url, &path, &q, s.max_per_page, items)
}

fn review_json(base: &str, owner: &str, repo: &str, r: &PostedReview, user_id: u64) -> Value {
    let html = format!(
        "https://github.com/{owner}/{repo}/pull/{}#pullrequestreview-{}",
        r.pr, r.id
    );
    json!({
        "id": r.id,
        "node_id": "PRR_kwDOAAABBB",
        "user": user_json(base, &r.user, user_id, "Bot"),
        "body": r.body,
        "state": "COMMENTED",
        "html_url": html,
        "pull_request_url": format!("{base}/repos/{owner}/{repo}/pulls/{}", r.pr),
        "_links": {
            "html": { "href": html },
            "pull_request": { "href": format!("{base}/repos/{owner}/{repo}/pulls/{}", r.pr) },
        },
        "submitted_at": "2026-01-01T00:00:00Z",
        "commit_id": r.commit_id,
        "author_association": "NONE",
    })
}

fn review_comment_json(base: &str, c: &FakeReviewComment) -> Value {
    json!({
        "id": c.id,
        "node_id": "PRRC_kwDOAAABBB",
        "url": format!("{base}/repos/{}/pulls/comments/{}", c.repo, c.id),
        "pull_request_review_id": c.review_id,
        "diff_hunk": "@@ -1 +1 @@",
        "path": c.path,
        "commit_id": "0000000000000000000000000000000000000000",
        "original_commit_id": "0000000000000000000000000000000000000000",
        "user": user_json(base, "sluice-bot", 9001, "Bot"),
        "body": c.body,
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
        "html_url": format!("https://github.com/{}/pull/{}#discussion_r{}", c.repo, c.pr, c.id),
        "pull_request_url": format!("{base}/repos/{}/pulls/{}", c.repo, c.pr),
        "author_association": "NONE",
        "_links": {},
        "line": c.line,
        "side": c.side,
        "subject_type": c.subject_type,
    })
}

/// `POST /repos/{o}/{r}/pulls/{n}/reviews`: every comment's line must be in the PR's diff.
pub(super) async fn create_review(
    State(state): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    Json(body): Json<Value>,
) -> Response {
    let mut s = lock(&state);
    let key = (repo_key(&owner, &repo), number);
    if !s.pulls.contains_key(&key) {
        return not_found();
    }
    let text = body["body"].as_str().unwrap_or("").to_string();
    if text.chars().count() > 65536 {
        return unprocessable("Validation Failed: body is too long (maximum is 65536 characters)");
    }
    let event = body["event"].as_str().unwrap_or("PENDING").to_string();
    if !["APPROVE", "REQUEST_CHANGES", "COMMENT", "PENDING"].contains(&event.as_str()) {
        return unprocessable("Unprocessable Entity");
    }
    let comments = body["comments"].as_array().cloned().unwrap_or_default();
    let mut lines = Vec::new();
    for c in &comments {
        let (Some(path), Some(line)) = (c["path"].as_str(), c["line"].as_u64()) else {
            return unprocessable("Invalid request.\n\n\"path\" and \"line\" are required.");
        };
        let side = c["side"].as_str().unwrap_or("RIGHT").to_string();
        let shown = s
            .files
            .get(&key)
            .and_then(|fs| fs.iter().find(|f| f.filename == path))
            .and_then(|f| f.patch.as_deref())
            .is_some_and(|p| commentable_lines(p).contains(&(side.clone(), line as u32)));
        if !shown {
            return line_not_in_diff();
        }
        lines.push((
            path.to_string(),
            line as u32,
            side,
            c["body"].as_str().unwrap_or("").to_string(),
        ));
    }
    let id = s.next_id();
    let review = PostedReview {
        id,
        repo: key.0.clone(),
        pr: number,
        user: caller_login(&caller),
        commit_id: body["commit_id"].as_str().unwrap_or("").to_string(),
        body: text,
        event,
    };
    for (path, line, side, body) in lines {
        let cid = s.next_id();
        s.review_comments.push(FakeReviewComment {
            id: cid,
            repo: key.0.clone(),
            pr: number,
            review_id: Some(id),
            path,
            line: Some(line),
            side: Some(side),
            subject_type: "line".into(),
            body,
        });
    }
    let json = review_json(&s.base_url, &owner, &repo, &review, 9001);
    s.posted_reviews.push(review);
    Json(json).into_response()
}

/// `GET /repos/{o}/{r}/pulls/{n}/reviews/{id}/comments`
pub(super) async fn list_review_comments(
    State(state): State<Shared>,
    Path((owner, repo, number, id)): Path<(String, String, u64, u64)>,
    Query(q): Query<PageQuery>,
) -> Response {
    let s = lock(&state);
    if !s
        .posted_reviews
        .iter()
        .any(|r| r.id == id && r.pr == number)
    {
        return not_found();
    }
    let items: Vec<Value> = s
        .review_comments
        .iter()
        .filter(|c| c.review_id == Some(id))
        .map(|c| review_comment_json(&s.base_url, c))
        .collect();
    let path = format!("/repos/{owner}/{repo}/pulls/{number}/reviews/{id}/comments");
    paginate(&s.base_url, &path, &q, s.max_per_page, items)
}

/// `PUT /repos/{o}/{r}/pulls/{n}/reviews/{id}`
pub(super) async fn update_review(
    State(state): State<Shared>,
    Path((owner, repo, number, id)): Path<(String, String, u64, u64)>,
    Json(body): Json<Value>,
) -> Response {
    let mut s = lock(&state);
    let base = s.base_url.clone();
    let Some(text) = body["body"].as_str() else {
        return unprocessable("Invalid request.\n\n\"body\" wasn't supplied.");
    };
    let Some(r) = s
        .posted_reviews
        .iter_mut()
        .find(|r| r.id == id && r.pr == number && r.repo == repo_key(&owner, &repo))
    else {
        return not_found();
    };
    r.body = text.to_string();
    Json(review_json(&base, &owner, &repo, r, 9001)).into_response()
}

/// `POST /repos/{o}/{r}/pulls/{n}/comments`: a file-level comment needs a file of the PR.
pub(super) async fn create_review_comment(
    State(state): State<Shared>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    Json(body): Json<Value>,
) -> Response {
    let mut s = lock(&state);
    let key = (repo_key(&owner, &repo), number);
    if !s.pulls.contains_key(&key) {
        return not_found();
    }
    let (Some(path), Some(text), Some(_commit)) = (
        body["path"].as_str(),
        body["body"].as_str(),
        body["commit_id"].as_str(),
    ) else {
        return unprocessable(
            "Invalid request.\n\n\"body\", \"commit_id\" and \"path\" are required.",
        );
    };
    let subject = body["subject_type"].as_str().unwrap_or("line").to_string();
    let in_pr = s
        .files
        .get(&key)
        .is_some_and(|fs| fs.iter().any(|f| f.filename == path));
    let line = body["line"].as_u64().map(|l| l as u32);
    if !in_pr || (subject == "line" && line.is_none()) {
        return line_not_in_diff();
    }
    let id = s.next_id();
    let c = FakeReviewComment {
        id,
        repo: key.0,
        pr: number,
        review_id: None,
        path: path.to_string(),
        line,
        side: body["side"].as_str().map(str::to_string),
        subject_type: subject,
        body: text.to_string(),
    };
    let json = review_comment_json(&s.base_url, &c);
    s.review_comments.push(c);
    (StatusCode::CREATED, Json(json)).into_response()
}

/// `PATCH /repos/{o}/{r}/pulls/comments/{id}`
pub(super) async fn update_review_comment(
    State(state): State<Shared>,
    Path((owner, repo, id)): Path<(String, String, u64)>,
    Json(body): Json<Value>,
) -> Response {
    let mut s = lock(&state);
    let base = s.base_url.clone();
    let Some(text) = body["body"].as_str() else {
        return unprocessable("Invalid request.\n\n\"body\" wasn't supplied.");
    };
    let Some(c) = s
        .review_comments
        .iter_mut()
        .find(|c| c.id == id && c.repo == repo_key(&owner, &repo))
    else {
        return not_found();
    };
    c.body = text.to_string();
    Json(review_comment_json(&base, c)).into_response()
}

/// What GitHub refuses in a check run request, as its 422 message; `None` when acceptable.
fn check_run_refusal(body: &Value) -> Option<String> {
    if let Some(output) = body.get("output") {
        if output["title"].as_str().is_none() || output["summary"].as_str().is_none() {
            return Some("Invalid request.\n\n\"title\", \"summary\" weren't supplied.".into());
        }
        for field in ["summary", "text"] {
            if output[field]
                .as_str()
                .is_some_and(|t| t.chars().count() > 65535)
            {
                return Some(format!(
                    "Invalid request.\n\nOnly 65535 characters are allowed; {field} is too long."
                ));
            }
        }
        let annotations = output["annotations"].as_array().map_or(0, Vec::len);
        if annotations > 50 {
            return Some("Invalid request.\n\nOnly 50 annotations are allowed per request.".into());
        }
    }
    if let Some(actions) = body["actions"].as_array() {
        if actions.len() > 3 {
            return Some("Invalid request.\n\nOnly 3 actions are allowed.".into());
        }
        for a in actions {
            let too_long = |f: &str, n: usize| a[f].as_str().is_none_or(|s| s.chars().count() > n);
            if too_long("label", 20) || too_long("description", 40) || too_long("identifier", 20) {
                return Some("Invalid request.\n\nAn action's label, description or identifier is missing or too long.".into());
            }
        }
    }
    None
}

fn check_run_json(base: &str, c: &FakeCheckRun) -> Value {
    let mut output = c.output.clone();
    output["annotations_count"] = json!(c.annotations.len());
    output["annotations_url"] = json!(format!(
        "{base}/repos/{}/check-runs/{}/annotations",
        c.repo, c.id
    ));
    json!({
        "id": c.id,
        "head_sha": c.head_sha,
        "node_id": "CR_kwDOAAABBB",
        "external_id": c.external_id,
        "url": format!("{base}/repos/{}/check-runs/{}", c.repo, c.id),
        "html_url": format!("https://github.com/{}/runs/{}", c.repo, c.id),
        "details_url": null,
        "status": c.status,
        "conclusion": c.conclusion,
        "started_at": "2026-01-01T00:00:00Z",
        "completed_at": null,
        "output": output,
        "name": c.name,
        "check_suite": { "id": 1 },
        "app": null,
        "pull_requests": [],
    })
}

fn apply_check_body(c: &mut FakeCheckRun, body: &Value) {
    if let Some(status) = body["status"].as_str() {
        c.status = status.to_string();
    }
    if let Some(conclusion) = body["conclusion"].as_str() {
        c.conclusion = Some(conclusion.to_string());
        c.status = "completed".into();
    }
    if let Some(output) = body.get("output") {
        let mut o = output.clone();
        if let Some(list) = o.as_object_mut().and_then(|m| m.remove("annotations")) {
            c.annotations
                .extend(list.as_array().cloned().unwrap_or_default());
        }
        c.output = o;
    }
    if let Some(actions) = body["actions"].as_array() {
        c.actions = actions.clone();
    }
}

/// `POST /repos/{o}/{r}/check-runs`: only a GitHub App's installation may.
pub(super) async fn create_check_run(
    State(state): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path((owner, repo)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    if !matches!(caller, Caller::Installation(_)) {
        return forbidden("Resource not accessible by personal access token");
    }
    if let Some(why) = check_run_refusal(&body) {
        return unprocessable(&why);
    }
    let (Some(name), Some(head_sha)) = (body["name"].as_str(), body["head_sha"].as_str()) else {
        return unprocessable("Invalid request.\n\n\"name\", \"head_sha\" weren't supplied.");
    };
    let mut s: std::sync::MutexGuard<'_, FakeState> = lock(&state);
    let id = s.next_id();
    let mut c = FakeCheckRun {
        id,
        repo: repo_key(&owner, &repo),
        name: name.to_string(),
        head_sha: head_sha.to_string(),
        external_id: body["external_id"].as_str().map(str::to_string),
        status: "queued".into(),
        conclusion: None,
        output: json!({ "title": null, "summary": null, "text": null }),
        annotations: Vec::new(),
        actions: Vec::new(),
    };
    apply_check_body(&mut c, &body);
    let json = check_run_json(&s.base_url, &c);
    s.check_runs.push(c);
    (StatusCode::CREATED, Json(json)).into_response()
}

/// `PATCH /repos/{o}/{r}/check-runs/{id}`: annotations are appended.
pub(super) async fn update_check_run(
    State(state): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path((owner, repo, id)): Path<(String, String, u64)>,
    Json(body): Json<Value>,
) -> Response {
    if !matches!(caller, Caller::Installation(_)) {
        return forbidden("Resource not accessible by personal access token");
    }
    if let Some(why) = check_run_refusal(&body) {
        return unprocessable(&why);
    }
    let mut s = lock(&state);
    let base = s.base_url.clone();
    let Some(c) = s
        .check_runs
        .iter_mut()
        .find(|c| c.id == id && c.repo == repo_key(&owner, &repo))
    else {
        return not_found();
    };
    apply_check_body(c, &body);
    Json(check_run_json(&base, c)).into_response()
}
