//! GitLab commit statuses: `POST /projects/:id/statuses/:sha` with the project id as the URL-encoded path, `state`
//! (`pending`, `success`, `failed`), `name` and `description` (at most 255 characters); read back with
//! `GET /projects/:id/repository/commits/:sha/statuses?name=`. Auth `PRIVATE-TOKEN`. A 400 "Cannot transition
//! status" (re-posting the current state) means the status is already there. Pure request building.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Method;
use serde_json::json;

use super::{CommitState, ForgeRequest, ForgeTarget, StatusPost};

/// GitLab's documented description limit.
pub const DESCRIPTION_LIMIT: usize = 255;

/// Everything but the unreserved characters is encoded (the `/` of the project path above all).
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// GitLab's name of `state`.
pub fn state(state: CommitState) -> &'static str {
    match state {
        CommitState::Pending => "pending",
        CommitState::Success => "success",
        CommitState::Failure => "failed",
    }
}

/// `text` as one URL path or query component.
pub fn encode(text: &str) -> String {
    utf8_percent_encode(text, COMPONENT).to_string()
}

/// Creates a status.
pub fn create(target: &ForgeTarget, post: &StatusPost, description: &str) -> ForgeRequest {
    ForgeRequest {
        method: Method::POST,
        path: format!("/projects/{}/statuses/{}", encode(&target.repository), post.sha),
        body: Some(json!({ "state": state(post.state), "name": post.context, "description": description })),
    }
}

/// Lists the commit's statuses named `context`.
pub fn list(target: &ForgeTarget, sha: &str, context: &str) -> ForgeRequest {
    ForgeRequest {
        method: Method::GET,
        path: format!(
            "/projects/{}/repository/commits/{sha}/statuses?name={}&all=true",
            encode(&target.repository),
            encode(context)
        ),
        body: None,
    }
}

/// Whether a 400 answer is GitLab's refusal to re-post the current state, which means the status is there.
pub fn is_same_state_transition(status: u16, body: &str) -> bool {
    status == 400 && body.contains("Cannot transition status")
}
