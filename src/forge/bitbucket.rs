//! Bitbucket Cloud build statuses: `POST /2.0/repositories/{workspace}/{slug}/commit/{sha}/statuses/build` with
//! `key` (the sha1 hex of the context: keys are at most 40 characters, and the same key overwrites), `state`
//! (`INPROGRESS`, `SUCCESSFUL`, `FAILED`), `url` (required), `name` and `description`; read back with
//! `GET .../statuses/build/{key}` (404: none). Auth Bearer, or basic for `<username>:<app-password>`. Pure request
//! building.

use reqwest::Method;
use serde_json::{Value, json};
use sha1::{Digest, Sha1};

use super::{CommitState, ExistingStatus, ForgeRequest, ForgeTarget, StatusPost};

/// Bitbucket documents no limit; descriptions are cut like GitLab's.
pub const DESCRIPTION_LIMIT: usize = 255;

/// Bitbucket's name of `state`.
pub fn state(state: CommitState) -> &'static str {
    match state {
        CommitState::Pending => "INPROGRESS",
        CommitState::Success => "SUCCESSFUL",
        CommitState::Failure => "FAILED",
    }
}

/// The status key of `context`: its sha1 in hex.
pub fn key(context: &str) -> String {
    Sha1::digest(context.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Creates (or overwrites) the status of the context's key.
pub fn create(target: &ForgeTarget, post: &StatusPost, description: &str) -> ForgeRequest {
    ForgeRequest {
        method: Method::POST,
        path: format!(
            "/2.0/repositories/{}/commit/{}/statuses/build",
            target.repository, post.sha
        ),
        body: Some(json!({
            "key": key(&post.context),
            "state": state(post.state),
            "name": post.context,
            "description": description,
            "url": format!("https://bitbucket.org/{}/commits/{}", target.repository, post.sha),
        })),
    }
}

/// Reads the status of the context's key.
pub fn get(target: &ForgeTarget, sha: &str, context: &str) -> ForgeRequest {
    ForgeRequest {
        method: Method::GET,
        path: format!(
            "/2.0/repositories/{}/commit/{sha}/statuses/build/{}",
            target.repository,
            key(context)
        ),
        body: None,
    }
}

/// The status in the answer to [`get`] (`Null` stands for a 404).
pub fn existing(body: &Value) -> Option<ExistingStatus> {
    let state = body.get("state")?.as_str()?.to_string();
    Some(ExistingStatus {
        state,
        description: body
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
    })
}
