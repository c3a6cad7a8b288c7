//! Forge commit-status clients: GitHub, GitLab, Gitea/Forgejo and Bitbucket Cloud, each in its own file with the
//! documented request (path, auth header, body, description limit, state names), and the shared part here and in
//! [`http`] (the HTTP client with a custom CA, dedup against the commit's existing statuses, rate limits, errors
//! without the token), and the pull-request comment of `plan --comment` ([`comments`]). It talks only to the forge;
//! it never touches the Kubernetes API.

pub mod bitbucket;
pub mod comments;
pub mod gitea;
pub mod github;
pub mod gitlab;
pub mod http;
pub mod target;

use std::time::Duration;

use serde_json::Value;

pub use crate::api::gitsync::ForgeProvider;
pub use http::{ForgeClient, ForgeClientConfig};
pub use target::{ForgeTarget, TargetError, resolve_target};

/// The state of a commit status, as the agent means it (each forge names it its own way).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CommitState {
    /// The revision is being worked on.
    Pending,
    /// Applied, or every object Ready.
    Success,
    /// Refused, or an object Stalled.
    Failure,
}

impl CommitState {
    /// The agent's own name of the state, for logs and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Success => "success",
            Self::Failure => "failure",
        }
    }
}

/// One commit status to post.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusPost {
    /// The commit, 40 hex digits.
    pub sha: String,
    /// The context (GitLab's `name`, Bitbucket's `name`, its sha1 the `key`).
    pub context: String,
    /// The state.
    pub state: CommitState,
    /// The description, before the forge's limit is applied.
    pub description: String,
}

/// The newest status a forge shows for one context of a commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExistingStatus {
    /// The state in the forge's own words (`success`, `failed`, `SUCCESSFUL` ...).
    pub state: String,
    /// The description as stored.
    pub description: String,
}

/// One HTTP request to a forge, relative to its API URL.
#[derive(Clone, Debug, PartialEq)]
pub struct ForgeRequest {
    /// `GET` or `POST`.
    pub method: reqwest::Method,
    /// Path and query, appended to the API URL (starts with `/`).
    pub path: String,
    /// The JSON body of a `POST`.
    pub body: Option<Value>,
}

/// What the agent does about a status once it posted or found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// The status was created.
    Posted,
    /// The forge already showed it (dedup), or refused it as a same-state transition (GitLab): nothing to do.
    AlreadyThere,
}

/// Why a status could not be delivered. Messages never hold the token: the forge's answers are redacted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForgeError {
    /// The HTTP client could not be built (a bad `ca.crt`).
    #[error("unable to set up the {provider} client: {reason}")]
    Configuration {
        /// The provider.
        provider: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The forge could not be reached or did not answer in time.
    #[error("failed to reach {provider} ({endpoint}): {reason}")]
    Transport {
        /// The provider.
        provider: &'static str,
        /// `METHOD path`.
        endpoint: String,
        /// The innermost cause.
        reason: String,
    },
    /// The token was refused (401, or 403 without a rate limit) or lacks access to the repository (404).
    #[error(
        "{provider} refused the token for {endpoint} ({status}): {message}; check the token's scope and repository"
    )]
    Unauthorized {
        /// The provider.
        provider: &'static str,
        /// `METHOD path`.
        endpoint: String,
        /// The HTTP status.
        status: u16,
        /// The forge's message.
        message: String,
    },
    /// The forge asks to slow down (429, 403 with a rate-limit header or a secondary-limit message).
    #[error("{provider} rate-limited {endpoint}; retrying in {}s", retry_after.as_secs())]
    RateLimited {
        /// The provider.
        provider: &'static str,
        /// `METHOD path`.
        endpoint: String,
        /// How long the forge asks to wait.
        retry_after: Duration,
    },
    /// The forge refused the request for another reason (a validation error, a server error).
    #[error("{provider} answered {status} to {endpoint}: {message}")]
    Rejected {
        /// The provider.
        provider: &'static str,
        /// `METHOD path`.
        endpoint: String,
        /// The HTTP status.
        status: u16,
        /// The forge's message.
        message: String,
    },
    /// The forge answered something that is not the documented JSON.
    #[error("{provider} answered {endpoint} with a body that is not the documented JSON: {reason}")]
    InvalidResponse {
        /// The provider.
        provider: &'static str,
        /// `METHOD path`.
        endpoint: String,
        /// What is wrong.
        reason: String,
    },
    /// This replica does not hold the leader Lease, so it writes nothing anywhere.
    #[error("not posting to {provider}: this replica does not hold the leader Lease")]
    NotLeader {
        /// The provider.
        provider: &'static str,
    },
}

impl ForgeError {
    /// A stable name of the failure (the variant name), for conditions and logs.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Configuration { .. } => "Configuration",
            Self::Transport { .. } => "Transport",
            Self::Unauthorized { .. } => "Unauthorized",
            Self::RateLimited { .. } => "RateLimited",
            Self::Rejected { .. } => "Rejected",
            Self::InvalidResponse { .. } => "InvalidResponse",
            Self::NotLeader { .. } => "NotLeader",
        }
    }

    /// How long the forge asked to wait, for a rate limit.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

/// The longest description each forge accepts, in characters: GitHub's documented 140 (422 beyond), GitLab's 255;
/// Gitea and Bitbucket document none, so they get GitLab's 255 as well.
pub fn description_limit(provider: ForgeProvider) -> usize {
    match provider {
        ForgeProvider::Github => github::DESCRIPTION_LIMIT,
        ForgeProvider::Gitlab => gitlab::DESCRIPTION_LIMIT,
        ForgeProvider::Gitea => gitea::DESCRIPTION_LIMIT,
        ForgeProvider::Bitbucket => bitbucket::DESCRIPTION_LIMIT,
    }
}

/// `text` cut to `limit` characters (an ellipsis marks the cut), never inside a character.
pub fn truncate(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        None => text.to_string(),
        Some(_) => {
            let kept: String = text.chars().take(limit.saturating_sub(1)).collect();
            format!("{kept}…")
        }
    }
}

/// The forge's name of `state`.
pub fn state_name(provider: ForgeProvider, state: CommitState) -> &'static str {
    match provider {
        ForgeProvider::Github => github::state(state),
        ForgeProvider::Gitlab => gitlab::state(state),
        ForgeProvider::Gitea => gitea::state(state),
        ForgeProvider::Bitbucket => bitbucket::state(state),
    }
}

/// The request that creates `post` on the forge (its description already cut to the forge's limit).
pub fn create_request(target: &ForgeTarget, post: &StatusPost) -> ForgeRequest {
    let description = truncate(&post.description, description_limit(target.provider));
    match target.provider {
        ForgeProvider::Github => github::create(target, post, &description),
        ForgeProvider::Gitlab => gitlab::create(target, post, &description),
        ForgeProvider::Gitea => gitea::create(target, post, &description),
        ForgeProvider::Bitbucket => bitbucket::create(target, post, &description),
    }
}

/// The request that reads the commit's statuses for `context` (Bitbucket: the one status with its key).
pub fn list_request(target: &ForgeTarget, sha: &str, context: &str) -> ForgeRequest {
    match target.provider {
        ForgeProvider::Github => github::list(target, sha),
        ForgeProvider::Gitlab => gitlab::list(target, sha, context),
        ForgeProvider::Gitea => gitea::list(target, sha),
        ForgeProvider::Bitbucket => bitbucket::get(target, sha, context),
    }
}

/// The newest status for `context` in the answer to [`list_request`]: the one with the highest `id` (GitHub, GitLab
/// and Gitea give each status an increasing id, whatever order they list in).
pub fn newest_status(provider: ForgeProvider, body: &Value, context: &str) -> Option<ExistingStatus> {
    if provider == ForgeProvider::Bitbucket {
        return bitbucket::existing(body);
    }
    let context_field = if provider == ForgeProvider::Gitlab {
        "name"
    } else {
        "context"
    };
    body.as_array()?
        .iter()
        .filter(|status| {
            status
                .get(context_field)
                .and_then(Value::as_str)
                // GitHub compares contexts case-insensitively.
                .is_some_and(|c| c.eq_ignore_ascii_case(context))
        })
        .max_by_key(|status| status.get("id").and_then(Value::as_i64).unwrap_or(0))
        .map(|status| ExistingStatus {
            state: text_field(
                status,
                if provider == ForgeProvider::Gitlab {
                    "status"
                } else {
                    "state"
                },
            ),
            description: text_field(status, "description"),
        })
}

fn text_field(value: &Value, field: &str) -> String {
    value.get(field).and_then(Value::as_str).unwrap_or_default().to_string()
}

/// Whether the forge already shows `post` as the newest status of its context (same state and description).
pub fn already_shown(target: &ForgeTarget, existing: Option<&ExistingStatus>, post: &StatusPost) -> bool {
    existing.is_some_and(|existing| {
        existing
            .state
            .eq_ignore_ascii_case(state_name(target.provider, post.state))
            && existing.description == truncate(&post.description, description_limit(target.provider))
    })
}

#[cfg(test)]
mod tests;
