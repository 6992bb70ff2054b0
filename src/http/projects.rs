//! `GET /api/projects[?repo=owner/name]`: every project Sluice reconciles, with its sync status
//! (`synced`, `drifted`, `out_of_sync`, `check_failed`, `unknown`, `stale`), its live drift (phase,
//! who acknowledged or accepted it and until when, age), the failure streak, the next check and
//! the last commit Sluice applied (who, when, which PR). Protected by `api_token` like the rest
//! of `/api/*`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use super::api::authorize;
use crate::core::types::RepoName;

#[derive(Debug, Deserialize)]
pub struct ProjectsParams {
    repo: Option<String>,
}

/// `{"projects": [...]}`, ordered by repository, dir and workspace.
pub async fn projects(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<ProjectsParams>,
) -> Response {
    if let Err(r) = authorize(&state, &headers) {
        return *r;
    }
    let repo = match q.repo.as_deref().map(RepoName::parse).transpose() {
        Ok(r) => r,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(serde_json::json!({ "error": format!("repo: {e}") })),
            )
                .into_response();
        }
    };
    match crate::app::drift::project_statuses(&*state.drift, repo.as_ref(), chrono::Utc::now())
        .await
    {
        Ok(list) => Json(serde_json::json!({ "projects": list })).into_response(),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "listing projects failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(serde_json::json!({ "error": "internal error" })),
            )
                .into_response()
        }
    }
}
