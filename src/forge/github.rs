//! GitHub (and GitHub Enterprise Server) commit statuses: `POST /repos/{owner}/{repo}/statuses/{sha}` with
//! `state`, `description` (at most 140 characters, 422 beyond) and `context`; read back with
//! `GET /repos/{owner}/{repo}/commits/{sha}/statuses`. Auth `Authorization: Bearer <token>`. Pure request building.

use reqwest::Method;
use serde_json::json;

use super::{CommitState, ForgeRequest, ForgeTarget, StatusPost};

/// GitHub's documented description limit.
pub const DESCRIPTION_LIMIT: usize = 140;

/// The headers GitHub asks every REST client to send.
pub const HEADERS: [(&str, &str); 2] = [
    ("accept", "application/vnd.github+json"),
    ("x-github-api-version", "2022-11-28"),
];

/// GitHub's name of `state`.
pub fn state(state: CommitState) -> &'static str {
    match state {
        CommitState::Pending => "pending",
        CommitState::Success => "success",
        CommitState::Failure => "failure",
    }
}

/// Creates a status.
pub fn create(target: &ForgeTarget, post: &StatusPost, description: &str) -> ForgeRequest {
    ForgeRequest {
        method: Method::POST,
        path: format!("/repos/{}/statuses/{}", target.repository, post.sha),
        body: Some(json!({ "state": state(post.state), "description": description, "context": post.context })),
    }
}

/// Lists the commit's statuses, newest first (one page of 100 is enough: the agent posts a handful per context).
pub fn list(target: &ForgeTarget, sha: &str) -> ForgeRequest {
    ForgeRequest {
        method: Method::GET,
        path: format!("/repos/{}/commits/{sha}/statuses?per_page=100", target.repository),
        body: None,
    }
}
