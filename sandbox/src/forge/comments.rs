//! Pull-request comments as GitHub, GitLab and Gitea document them: list (paginated, oldest first), create and edit,
//! on pull requests the test opened ([`super::ForgeState::open_pull_request`]; others are 404), with each forge's
//! body limit (GitHub 65 536 characters, 422; GitLab 1 000 000, 400) and an empty body refused. Requests go through
//! the same recording, faults, auth and rate limit as the statuses. No agent logic.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, put};
use serde_json::{Value, json};

use super::ForgeState;
use super::statuses::{Forge, admit, error, with_rate};

/// A comment as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostedComment {
    /// Increasing id, shared by all pull requests of the emulator.
    pub id: u64,
    /// The body.
    pub body: String,
    /// How many times it was edited.
    pub edits: u32,
}

/// GitHub's and Gitea's longest comment body (Gitea documents none and gets GitHub's).
pub const GITHUB_BODY_LIMIT: usize = 65_536;
/// GitLab's longest note body.
pub const GITLAB_BODY_LIMIT: usize = 1_000_000;

/// The comment routes of the three forges (state still to be given).
pub fn routes() -> Router<ForgeState> {
    Router::new()
        .route(
            "/repos/{owner}/{repo}/issues/{number}/comments",
            get(github_list).post(github_create),
        )
        .route("/repos/{owner}/{repo}/issues/comments/{id}", patch(github_edit))
        .route(
            "/api/v4/projects/{project}/merge_requests/{iid}/notes",
            get(gitlab_list).post(gitlab_create),
        )
        .route(
            "/api/v4/projects/{project}/merge_requests/{iid}/notes/{id}",
            put(gitlab_edit),
        )
        .route(
            "/api/v1/repos/{owner}/{repo}/issues/{number}/comments",
            get(gitea_list).post(gitea_create),
        )
        .route("/api/v1/repos/{owner}/{repo}/issues/comments/{id}", patch(gitea_edit))
}

/// Stores a new comment on a pull request (opening it if needed).
pub(super) fn store(state: &ForgeState, forge: Forge, repository: &str, number: u64, body: &str) -> PostedComment {
    let mut inner = state.lock();
    let id = u64::try_from(inner.next_id).unwrap_or_default();
    inner.next_id += 1;
    let comment = PostedComment {
        id,
        body: body.to_string(),
        edits: 0,
    };
    inner
        .comments
        .entry((forge, repository.to_string(), number))
        .or_default()
        .push(comment.clone());
    comment
}

fn exists(state: &ForgeState, forge: Forge, repository: &str, number: u64) -> bool {
    state
        .lock()
        .comments
        .contains_key(&(forge, repository.to_string(), number))
}

/// Edits comment `id` of `repository` (any pull request; GitLab: only `number`'s). `None` when there is none.
fn edit(
    state: &ForgeState,
    forge: Forge,
    repository: &str,
    number: Option<u64>,
    id: u64,
    body: &str,
) -> Option<PostedComment> {
    let mut inner = state.lock();
    inner
        .comments
        .iter_mut()
        .filter(|((f, r, n), _)| *f == forge && r == repository && number.is_none_or(|number| number == *n))
        .flat_map(|(_, comments)| comments.iter_mut())
        .find(|comment| comment.id == id)
        .map(|comment| {
            comment.body = body.to_string();
            comment.edits += 1;
            comment.clone()
        })
}

fn comment_json(forge: Forge, comment: &PostedComment) -> Value {
    match forge {
        Forge::Gitlab => json!({
            "id": comment.id, "body": comment.body, "system": false, "noteable_type": "MergeRequest",
            "author": {"username": "redis-gitops"},
        }),
        _ => json!({"id": comment.id, "body": comment.body, "user": {"login": "redis-gitops"}}),
    }
}

/// The body of a create or edit request, checked as the forge checks it.
fn checked_body(forge: Forge, admitted: &Value) -> Result<String, Box<Response>> {
    let body = admitted["body"].get("body").and_then(Value::as_str).unwrap_or_default();
    let (limit, status) = match forge {
        Forge::Gitlab => (GITLAB_BODY_LIMIT, StatusCode::BAD_REQUEST),
        _ => (GITHUB_BODY_LIMIT, StatusCode::UNPROCESSABLE_ENTITY),
    };
    if body.trim().is_empty() {
        let message = if forge == Forge::Gitlab {
            "400 Bad request - body is missing"
        } else {
            "Validation Failed: body cannot be blank"
        };
        return Err(Box::new(error(forge, status, message)));
    }
    if body.chars().count() > limit {
        let message = if forge == Forge::Gitlab {
            format!("Note is too long (maximum is {limit} characters)")
        } else {
            format!("Validation Failed: body is too long (maximum is {limit} characters)")
        };
        return Err(Box::new(error(forge, status, &message)));
    }
    Ok(body.to_string())
}

fn not_found(forge: Forge) -> Response {
    let message = match forge {
        Forge::Gitlab => "404 Not found",
        _ => "Not Found",
    };
    error(forge, StatusCode::NOT_FOUND, message)
}

/// One page of comments: `page` from 1, the page size capped at 100 as every forge caps it.
fn page(
    state: &ForgeState,
    forge: Forge,
    repository: &str,
    number: u64,
    query: &Query<Vec<(String, String)>>,
) -> Option<Value> {
    if !exists(state, forge, repository, number) {
        return None;
    }
    let number_of = |name: &str| {
        query
            .0
            .iter()
            .find(|(key, _)| key == name)
            .and_then(|(_, value)| value.parse::<usize>().ok())
    };
    let default_size = match forge {
        Forge::Gitlab => 20,
        Forge::Gitea => 50,
        _ => 30,
    };
    let size = number_of(if forge == Forge::Gitea { "limit" } else { "per_page" })
        .unwrap_or(default_size)
        .clamp(1, 100);
    let page = number_of("page").unwrap_or(1).max(1);
    let comments = state.comments(forge, repository, number);
    let listed: Vec<Value> = comments
        .iter()
        .skip((page - 1).saturating_mul(size))
        .take(size)
        .map(|comment| comment_json(forge, comment))
        .collect();
    Some(Value::Array(listed))
}

async fn list(
    forge: Forge,
    state: ForgeState,
    repository: String,
    number: u64,
    query: Query<Vec<(String, String)>>,
    request: (Method, Uri, HeaderMap),
) -> Response {
    let (method, uri, headers) = request;
    let admitted = match admit(&state, forge, &method, &uri, &headers, &Bytes::new()) {
        Ok(admitted) => admitted,
        Err(response) => return *response,
    };
    match page(&state, forge, &repository, number, &query) {
        Some(listed) => with_rate(axum::Json(listed).into_response(), &admitted),
        None => not_found(forge),
    }
}

async fn create(
    forge: Forge,
    state: ForgeState,
    repository: String,
    number: u64,
    request: (Method, Uri, HeaderMap, Bytes),
) -> Response {
    let (method, uri, headers, body) = request;
    let admitted = match admit(&state, forge, &method, &uri, &headers, &body) {
        Ok(admitted) => admitted,
        Err(response) => return *response,
    };
    if !exists(&state, forge, &repository, number) {
        return not_found(forge);
    }
    let body = match checked_body(forge, &admitted) {
        Ok(body) => body,
        Err(response) => return *response,
    };
    let comment = store(&state, forge, &repository, number, &body);
    with_rate(
        (StatusCode::CREATED, axum::Json(comment_json(forge, &comment))).into_response(),
        &admitted,
    )
}

async fn update(
    forge: Forge,
    state: ForgeState,
    repository: String,
    number: Option<u64>,
    id: u64,
    request: (Method, Uri, HeaderMap, Bytes),
) -> Response {
    let (method, uri, headers, body) = request;
    let admitted = match admit(&state, forge, &method, &uri, &headers, &body) {
        Ok(admitted) => admitted,
        Err(response) => return *response,
    };
    let body = match checked_body(forge, &admitted) {
        Ok(body) => body,
        Err(response) => return *response,
    };
    match edit(&state, forge, &repository, number, id, &body) {
        Some(comment) => with_rate(axum::Json(comment_json(forge, &comment)).into_response(), &admitted),
        None => not_found(forge),
    }
}

async fn github_list(
    State(state): State<ForgeState>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    query: Query<Vec<(String, String)>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    list(
        Forge::Github,
        state,
        format!("{owner}/{repo}"),
        number,
        query,
        (method, uri, headers),
    )
    .await
}

async fn github_create(
    State(state): State<ForgeState>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = (method, uri, headers, body);
    create(Forge::Github, state, format!("{owner}/{repo}"), number, request).await
}

async fn github_edit(
    State(state): State<ForgeState>,
    Path((owner, repo, id)): Path<(String, String, u64)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = (method, uri, headers, body);
    update(Forge::Github, state, format!("{owner}/{repo}"), None, id, request).await
}

async fn gitlab_list(
    State(state): State<ForgeState>,
    Path((project, iid)): Path<(String, u64)>,
    query: Query<Vec<(String, String)>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    list(Forge::Gitlab, state, project, iid, query, (method, uri, headers)).await
}

async fn gitlab_create(
    State(state): State<ForgeState>,
    Path((project, iid)): Path<(String, u64)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    create(Forge::Gitlab, state, project, iid, (method, uri, headers, body)).await
}

async fn gitlab_edit(
    State(state): State<ForgeState>,
    Path((project, iid, id)): Path<(String, u64, u64)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    update(
        Forge::Gitlab,
        state,
        project,
        Some(iid),
        id,
        (method, uri, headers, body),
    )
    .await
}

async fn gitea_list(
    State(state): State<ForgeState>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    query: Query<Vec<(String, String)>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    list(
        Forge::Gitea,
        state,
        format!("{owner}/{repo}"),
        number,
        query,
        (method, uri, headers),
    )
    .await
}

async fn gitea_create(
    State(state): State<ForgeState>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = (method, uri, headers, body);
    create(Forge::Gitea, state, format!("{owner}/{repo}"), number, request).await
}

async fn gitea_edit(
    State(state): State<ForgeState>,
    Path((owner, repo, id)): Path<(String, String, u64)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = (method, uri, headers, body);
    update(Forge::Gitea, state, format!("{owner}/{repo}"), None, id, request).await
}
