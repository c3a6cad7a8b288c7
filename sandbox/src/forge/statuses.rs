//! Commit statuses as each forge documents them (reference: gitops.md §3): create and list, the accepted states,
//! the description and context limits (GitHub: 140 characters, 1000 statuses per sha and context; GitLab: 255
//! characters and 400 on re-posting the current state), auth by token in each forge's header, and GitHub-style
//! rate-limit headers. No agent logic.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde_json::{Value, json};

use super::{ForgeState, RecordedRequest, unix_now};

/// Which forge's API a request used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Forge {
    /// GitHub (`/repos/...`).
    Github,
    /// GitLab (`/api/v4/projects/...`).
    Gitlab,
    /// Gitea and Forgejo (`/api/v1/repos/...`).
    Gitea,
    /// Bitbucket Cloud (`/2.0/repositories/...`).
    Bitbucket,
}

/// A status as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostedStatus {
    /// Increasing id.
    pub id: i64,
    /// The state, in the forge's words.
    pub state: String,
    /// The context (GitLab and Bitbucket: `name`).
    pub context: String,
    /// The description.
    pub description: String,
    /// Bitbucket's key; empty elsewhere.
    pub key: String,
}

/// GitHub's description limit.
pub const GITHUB_DESCRIPTION_LIMIT: usize = 140;
/// GitHub's statuses per sha and context.
pub const GITHUB_STATUSES_PER_CONTEXT: usize = 1000;
/// GitLab's description, name and ref limit.
pub const GITLAB_FIELD_LIMIT: usize = 255;
/// Bitbucket's key limit.
pub const BITBUCKET_KEY_LIMIT: usize = 40;

/// The routes of all four forges (state still to be given).
pub fn routes() -> Router<ForgeState> {
    Router::new()
        .route("/repos/{owner}/{repo}/statuses/{sha}", post(github_create))
        .route("/repos/{owner}/{repo}/commits/{sha}/statuses", get(github_list))
        .route("/api/v4/projects/{id}/statuses/{sha}", post(gitlab_create))
        .route(
            "/api/v4/projects/{id}/repository/commits/{sha}/statuses",
            get(gitlab_list),
        )
        .route("/api/v1/repos/{owner}/{repo}/statuses/{sha}", post(gitea_create))
        .route("/api/v1/repos/{owner}/{repo}/commits/{sha}/statuses", get(gitea_list))
        .route(
            "/2.0/repositories/{workspace}/{slug}/commit/{sha}/statuses/build",
            post(bitbucket_create),
        )
        .route(
            "/2.0/repositories/{workspace}/{slug}/commit/{sha}/statuses/build/{key}",
            get(bitbucket_get),
        )
}

/// What every request goes through: recorded, then faults, auth and the rate limit. `Err` is the answer.
pub(super) fn admit(
    state: &ForgeState,
    forge: Forge,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Value, Box<Response>> {
    let mut inner = state.lock();
    inner.requests.push(RecordedRequest {
        method: method.to_string(),
        path: uri.path_and_query().map(ToString::to_string).unwrap_or_default(),
        headers: headers
            .iter()
            .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_string())))
            .collect::<BTreeMap<_, _>>(),
        body: serde_json::from_slice(body).ok(),
    });
    if inner.down {
        return Err(Box::new(error(
            forge,
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable",
        )));
    }
    if inner.throttled > 0 {
        inner.throttled -= 1;
        let mut response = error(forge, StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
        if let Ok(value) = inner.retry_after.to_string().parse() {
            response.headers_mut().insert("retry-after", value);
        }
        return Err(Box::new(response));
    }
    let Some(token) = token(forge, headers).filter(|token| inner.tokens.contains(token)) else {
        let message = match forge {
            Forge::Github => "Bad credentials",
            Forge::Gitlab => "401 Unauthorized",
            Forge::Gitea => "user does not exist or token is invalid",
            Forge::Bitbucket => "Token is invalid or not supported for this endpoint.",
        };
        return Err(Box::new(error(forge, StatusCode::UNAUTHORIZED, message)));
    };
    let limit = inner.rate_limit;
    let used = inner.used.entry(token).or_insert(0);
    if *used >= limit {
        let mut response = error(forge, StatusCode::FORBIDDEN, "API rate limit exceeded");
        rate_headers(&mut response, 0);
        return Err(Box::new(response));
    }
    *used += 1;
    let remaining = limit - *used;
    drop(inner);
    if [Method::POST, Method::PATCH, Method::PUT].contains(method) {
        serde_json::from_slice(body)
            .map_err(|_| Box::new(error(forge, StatusCode::BAD_REQUEST, "Problems parsing JSON")))
            .map(|value: Value| json!({"body": value, "remaining": remaining}))
    } else {
        Ok(json!({"remaining": remaining}))
    }
}

fn rate_headers(response: &mut Response, remaining: u64) {
    let headers = response.headers_mut();
    if let Ok(value) = remaining.to_string().parse() {
        headers.insert("x-ratelimit-remaining", value);
    }
    if let Ok(value) = (unix_now() + 3600).to_string().parse() {
        headers.insert("x-ratelimit-reset", value);
    }
}

/// The token each forge's documented auth header carries.
fn token(forge: Forge, headers: &HeaderMap) -> Option<String> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let authorization = header("authorization").unwrap_or_default();
    let scheme = |prefix: &str| authorization.strip_prefix(prefix).map(str::to_string);
    match forge {
        Forge::Github => scheme("Bearer ").or_else(|| scheme("token ")),
        Forge::Gitlab => header("private-token").or_else(|| scheme("Bearer ")),
        Forge::Gitea => scheme("token ").or_else(|| scheme("Bearer ")),
        Forge::Bitbucket => scheme("Bearer ").or_else(|| {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(scheme("Basic ")?)
                .ok()?;
            String::from_utf8(decoded).ok()
        }),
    }
}

/// An error answer in the forge's shape.
pub(super) fn error(forge: Forge, status: StatusCode, message: &str) -> Response {
    let body = match forge {
        Forge::Github | Forge::Gitea | Forge::Gitlab => json!({"message": message}),
        Forge::Bitbucket => json!({"type": "error", "error": {"message": message}}),
    };
    (status, axum::Json(body)).into_response()
}

fn is_sha(sha: &str) -> bool {
    sha.len() == 40 && sha.bytes().all(|b| b.is_ascii_hexdigit())
}

fn text(body: &Value, field: &str) -> Option<String> {
    body.get(field).and_then(Value::as_str).map(str::to_string)
}

/// Stores a status and returns it.
fn store(state: &ForgeState, forge: Forge, repository: &str, sha: &str, mut status: PostedStatus) -> PostedStatus {
    let mut inner = state.lock();
    status.id = inner.next_id;
    inner.next_id += 1;
    let list = inner
        .statuses
        .entry((forge, repository.to_string(), sha.to_lowercase()))
        .or_default();
    if forge == Forge::Bitbucket {
        // The same key overwrites.
        list.retain(|existing| existing.key != status.key);
    }
    list.push(status.clone());
    status
}

fn listed(state: &ForgeState, forge: Forge, repository: &str, sha: &str) -> Vec<PostedStatus> {
    state.statuses(forge, repository, &sha.to_lowercase())
}

fn github_json(status: &PostedStatus) -> Value {
    json!({
        "id": status.id, "state": status.state, "description": status.description,
        "context": status.context, "target_url": null,
    })
}

pub(super) fn with_rate(mut response: Response, admitted: &Value) -> Response {
    rate_headers(&mut response, admitted["remaining"].as_u64().unwrap_or(0));
    response
}

/// `POST /repos/{owner}/{repo}/statuses/{sha}`.
async fn github_create(
    State(state): State<ForgeState>,
    Path((owner, repo, sha)): Path<(String, String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let admitted = match admit(&state, Forge::Github, &method, &uri, &headers, &body) {
        Ok(admitted) => admitted,
        Err(response) => return *response,
    };
    let body = &admitted["body"];
    let invalid = |message: &str| error(Forge::Github, StatusCode::UNPROCESSABLE_ENTITY, message);
    if !is_sha(&sha) {
        return invalid(&format!("No commit found for SHA: {sha}"));
    }
    let state_name = text(body, "state").unwrap_or_default();
    if !["error", "failure", "pending", "success"].contains(&state_name.as_str()) {
        return invalid("Validation Failed: state is not included in the list");
    }
    let description = text(body, "description").unwrap_or_default();
    if description.chars().count() > GITHUB_DESCRIPTION_LIMIT {
        return invalid("Validation Failed: description is too long (maximum is 140 characters)");
    }
    let context = text(body, "context").unwrap_or_else(|| "default".to_string());
    let repository = format!("{owner}/{repo}");
    let same_context = listed(&state, Forge::Github, &repository, &sha)
        .iter()
        .filter(|s| s.context.eq_ignore_ascii_case(&context))
        .count();
    if same_context >= GITHUB_STATUSES_PER_CONTEXT {
        return invalid("Validation Failed: This SHA and context has reached the maximum number of statuses.");
    }
    let stored = store(
        &state,
        Forge::Github,
        &repository,
        &sha,
        PostedStatus {
            id: 0,
            state: state_name,
            context,
            description,
            key: String::new(),
        },
    );
    with_rate(
        (StatusCode::CREATED, axum::Json(github_json(&stored))).into_response(),
        &admitted,
    )
}

/// `GET /repos/{owner}/{repo}/commits/{sha}/statuses`, newest first.
async fn github_list(
    State(state): State<ForgeState>,
    Path((owner, repo, sha)): Path<(String, String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let admitted = match admit(&state, Forge::Github, &method, &uri, &headers, &Bytes::new()) {
        Ok(admitted) => admitted,
        Err(response) => return *response,
    };
    let statuses: Vec<Value> = listed(&state, Forge::Github, &format!("{owner}/{repo}"), &sha)
        .iter()
        .rev()
        .map(github_json)
        .collect();
    with_rate(
        (StatusCode::OK, axum::Json(Value::Array(statuses))).into_response(),
        &admitted,
    )
}

/// GitLab's event name of reaching `state` (its message on a refused same-state transition quotes it).
fn gitlab_event(state: &str) -> &'static str {
    match state {
        "pending" => "enqueue",
        "running" => "run",
        "success" => "success",
        "failed" => "drop",
        "canceled" => "cancel",
        _ => "skip",
    }
}

/// `POST /api/v4/projects/{id}/statuses/{sha}` (`id`: numeric or the URL-encoded path).
async fn gitlab_create(
    State(state): State<ForgeState>,
    Path((project, sha)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let admitted = match admit(&state, Forge::Gitlab, &method, &uri, &headers, &body) {
        Ok(admitted) => admitted,
        Err(response) => return *response,
    };
    let body = &admitted["body"];
    let bad = |message: &str| error(Forge::Gitlab, StatusCode::BAD_REQUEST, message);
    if !is_sha(&sha) {
        return error(Forge::Gitlab, StatusCode::NOT_FOUND, "404 Commit Not Found");
    }
    let state_name = text(body, "state").unwrap_or_default();
    if !["pending", "running", "success", "failed", "canceled", "skipped"].contains(&state_name.as_str()) {
        return bad("state does not have a valid value");
    }
    let name = text(body, "name")
        .or_else(|| text(body, "context"))
        .unwrap_or_else(|| "default".to_string());
    let description = text(body, "description").unwrap_or_default();
    for (field, value) in [("name", &name), ("description", &description)] {
        if value.chars().count() > GITLAB_FIELD_LIMIT {
            return bad(&format!("{field} is too long (maximum is 255 characters)"));
        }
    }
    let current = listed(&state, Forge::Gitlab, &project, &sha)
        .into_iter()
        .rev()
        .find(|s| s.context == name);
    if let Some(current) = current
        && current.state == state_name
    {
        return bad(&format!(
            "Cannot transition status via :{} from :{} (Reason(s): Status cannot transition via \"{}\")",
            gitlab_event(&state_name),
            current.state,
            gitlab_event(&state_name)
        ));
    }
    let stored = store(
        &state,
        Forge::Gitlab,
        &project,
        &sha,
        PostedStatus {
            id: 0,
            state: state_name,
            context: name,
            description,
            key: String::new(),
        },
    );
    (StatusCode::CREATED, axum::Json(gitlab_json(&stored, &sha))).into_response()
}

fn gitlab_json(status: &PostedStatus, sha: &str) -> Value {
    json!({
        "id": status.id, "sha": sha, "status": status.state, "name": status.context,
        "description": status.description, "target_url": null,
    })
}

/// `GET /api/v4/projects/{id}/repository/commits/{sha}/statuses?name=`.
async fn gitlab_list(
    State(state): State<ForgeState>,
    Path((project, sha)): Path<(String, String)>,
    Query(query): Query<BTreeMap<String, String>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Err(response) = admit(&state, Forge::Gitlab, &method, &uri, &headers, &Bytes::new()) {
        return *response;
    }
    let statuses: Vec<Value> = listed(&state, Forge::Gitlab, &project, &sha)
        .iter()
        .filter(|s| query.get("name").is_none_or(|name| *name == s.context))
        .map(|s| gitlab_json(s, &sha))
        .collect();
    (StatusCode::OK, axum::Json(Value::Array(statuses))).into_response()
}

/// `POST /api/v1/repos/{owner}/{repo}/statuses/{sha}` (`CreateStatusOption`).
async fn gitea_create(
    State(state): State<ForgeState>,
    Path((owner, repo, sha)): Path<(String, String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let admitted = match admit(&state, Forge::Gitea, &method, &uri, &headers, &body) {
        Ok(admitted) => admitted,
        Err(response) => return *response,
    };
    let body = &admitted["body"];
    let state_name = text(body, "state").unwrap_or_default();
    if !["pending", "success", "error", "failure", "warning", "skipped"].contains(&state_name.as_str()) {
        return error(Forge::Gitea, StatusCode::UNPROCESSABLE_ENTITY, "[State]: invalid state");
    }
    if !is_sha(&sha) {
        return error(Forge::Gitea, StatusCode::NOT_FOUND, "commit not found");
    }
    let stored = store(
        &state,
        Forge::Gitea,
        &format!("{owner}/{repo}"),
        &sha,
        PostedStatus {
            id: 0,
            state: state_name,
            context: text(body, "context").unwrap_or_else(|| "default".to_string()),
            description: text(body, "description").unwrap_or_default(),
            key: String::new(),
        },
    );
    (StatusCode::CREATED, axum::Json(github_json(&stored))).into_response()
}

/// `GET /api/v1/repos/{owner}/{repo}/commits/{sha}/statuses`, newest first.
async fn gitea_list(
    State(state): State<ForgeState>,
    Path((owner, repo, sha)): Path<(String, String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Err(response) = admit(&state, Forge::Gitea, &method, &uri, &headers, &Bytes::new()) {
        return *response;
    }
    let statuses: Vec<Value> = listed(&state, Forge::Gitea, &format!("{owner}/{repo}"), &sha)
        .iter()
        .rev()
        .map(github_json)
        .collect();
    (StatusCode::OK, axum::Json(Value::Array(statuses))).into_response()
}

fn bitbucket_json(status: &PostedStatus) -> Value {
    json!({
        "type": "build", "key": status.key, "state": status.state, "name": status.context,
        "description": status.description,
    })
}

/// `POST /2.0/repositories/{workspace}/{slug}/commit/{sha}/statuses/build`.
async fn bitbucket_create(
    State(state): State<ForgeState>,
    Path((workspace, slug, sha)): Path<(String, String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let admitted = match admit(&state, Forge::Bitbucket, &method, &uri, &headers, &body) {
        Ok(admitted) => admitted,
        Err(response) => return *response,
    };
    let body = &admitted["body"];
    let bad = |message: &str| error(Forge::Bitbucket, StatusCode::BAD_REQUEST, message);
    let key = text(body, "key").unwrap_or_default();
    if key.is_empty() || key.chars().count() > BITBUCKET_KEY_LIMIT {
        return bad("key: this field is required and at most 40 characters");
    }
    let state_name = text(body, "state").unwrap_or_default();
    if !["INPROGRESS", "SUCCESSFUL", "FAILED", "STOPPED"].contains(&state_name.as_str()) {
        return bad("state: must be one of INPROGRESS, SUCCESSFUL, FAILED, STOPPED");
    }
    if text(body, "url").is_none_or(|url| url.is_empty()) {
        return bad("url: this field is required");
    }
    let stored = store(
        &state,
        Forge::Bitbucket,
        &format!("{workspace}/{slug}"),
        &sha,
        PostedStatus {
            id: 0,
            state: state_name,
            context: text(body, "name").unwrap_or_default(),
            description: text(body, "description").unwrap_or_default(),
            key,
        },
    );
    (StatusCode::CREATED, axum::Json(bitbucket_json(&stored))).into_response()
}

/// `GET /2.0/repositories/{workspace}/{slug}/commit/{sha}/statuses/build/{key}`.
async fn bitbucket_get(
    State(state): State<ForgeState>,
    Path((workspace, slug, sha, key)): Path<(String, String, String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Err(response) = admit(&state, Forge::Bitbucket, &method, &uri, &headers, &Bytes::new()) {
        return *response;
    }
    match listed(&state, Forge::Bitbucket, &format!("{workspace}/{slug}"), &sha)
        .iter()
        .find(|s| s.key == key)
    {
        Some(status) => (StatusCode::OK, axum::Json(bitbucket_json(status))).into_response(),
        None => error(Forge::Bitbucket, StatusCode::NOT_FOUND, "Commit status not found"),
    }
}
