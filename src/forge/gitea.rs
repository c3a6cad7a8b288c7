//! Gitea and Forgejo commit statuses: `POST /repos/{owner}/{repo}/statuses/{sha}` (`CreateStatusOption`: `state`,
//! `target_url`, `description`, `context`), read back with `GET /repos/{owner}/{repo}/commits/{sha}/statuses`.
//! Auth `Authorization: token <token>`. Pure request building.

use reqwest::Method;
use serde_json::json;

use super::{CommitState, ForgeRequest, ForgeTarget, StatusPost};

/// Gitea documents no limit; descriptions are cut like GitLab's.
pub const DESCRIPTION_LIMIT: usize = 255;

/// Gitea's name of `state`.
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
        body: Some(json!({
            "state": state(post.state),
            "target_url": "",
            "description": description,
            "context": post.context,
        })),
    }
}

/// Lists the commit's statuses (one page of 50).
pub fn list(target: &ForgeTarget, sha: &str) -> ForgeRequest {
    ForgeRequest {
        method: Method::GET,
        path: format!("/repos/{}/commits/{sha}/statuses?limit=50", target.repository),
        body: None,
    }
}
