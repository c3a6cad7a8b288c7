//! HTTP routing: parses Kubernetes REST paths and query parameters, decodes JSON/YAML bodies, dispatches to
//! the store, and encodes objects, lists, Tables, watch streams and `Status` errors.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::Authorization;
use super::auth::{self, Identity, Impersonation, TokenOwner, Tokens};
use super::discovery;
use super::error::ApiError;
use super::escalation;
use super::faults::Faults;
use super::openapi;
use super::patch::PatchKind;
use super::rbac::{self, Attributes, Decision};
use super::requests::{IdentityRequest, RequestCounter};
use super::resources::{GroupResource, ResourceInfo, ScalePaths};
use super::reviews::{self, Mode};
use super::selector::{FieldSelector, LabelSelector};
use super::store::{
    DeleteOptions, EventType, FieldValidation, Propagation, Store, Subresource, WatchEvent, WriteOptions,
};
use super::table;

/// Shared state of the HTTP layer.
pub struct AppState {
    /// The object store.
    pub store: Store,
    /// Fault rules.
    pub faults: Faults,
    /// Request counts by verb and resource.
    pub requests: RequestCounter,
    /// `host:port` the server listens on.
    pub address: String,
    /// A bearer token every request must carry, if set.
    pub token: Option<String>,
    /// A bearer token every request for Secrets must carry (or `token`), if set.
    pub secrets_token: Option<String>,
    /// How often watches that allow bookmarks get one.
    pub bookmark_interval: Duration,
    /// How requests are authorized.
    pub authorization: Authorization,
    /// The tokens the server accepts (admin and ServiceAccounts).
    pub tokens: Tokens,
}

impl AppState {
    fn mode(&self) -> Mode {
        match self.authorization {
            Authorization::AllowAll => Mode::AllowAll,
            Authorization::Rbac => Mode::Rbac,
        }
    }
}

const MAX_BODY: usize = 32 * 1024 * 1024;

fn json_response(code: StatusCode, body: &Value, warnings: &[String]) -> Response {
    let mut response = (code, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response();
    for w in warnings {
        let escaped = w.replace('"', "\\\"");
        if let Ok(value) = format!("299 - \"{escaped}\"").parse() {
            response.headers_mut().append(header::WARNING, value);
        }
    }
    response
}

/// The single entry point for every request.
pub async fn handle(State(app): State<Arc<AppState>>, request: Request) -> Response {
    let method = request.method().clone();
    let uri = request.uri().clone();
    let path = uri.path().to_string();
    app.requests.record(method.as_str(), &path, uri.query());
    let (delay, injected) = app.faults.check(method.as_str(), &path);
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    if let Some(error) = injected {
        return error.into_response();
    }
    let query: HashMap<String, String> = Query::try_from_uri(&uri).map(|q| q.0).unwrap_or_default();
    let identity = match app.authorization {
        Authorization::Rbac => match admit(&app, method.as_str(), &path, &query, request.headers()) {
            Ok(identity) => identity,
            Err(response) => return *response,
        },
        Authorization::AllowAll => match allow_all(&app, method.as_str(), &path, &query, request.headers()) {
            Ok(identity) => identity,
            Err(response) => return *response,
        },
    };
    let headers = request.headers().clone();
    let body = match axum::body::to_bytes(request.into_body(), MAX_BODY).await {
        Ok(b) => b,
        Err(e) => {
            return ApiError::bad_request(format!("failed to read the request body: {e}")).into_response();
        }
    };
    match route(&app, &identity, &method, &path, &query, &headers, body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

fn unauthorized(message: &str) -> Response {
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": "Unauthorized", "code": 401});
    json_response(StatusCode::UNAUTHORIZED, &status, &[])
}

fn forbidden(user: &str, attributes: &Attributes, reason: &str) -> Response {
    let status = rbac::forbidden_status(user, attributes, reason);
    let mut response = json_response(StatusCode::FORBIDDEN, &status, &[]);
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    response
}

fn record(app: &AppState, identity: &Identity, attributes: &Attributes, decision: &Decision) {
    let (resource, api_group) = if attributes.resource_request {
        (attributes.combined_resource(), attributes.api_group.clone())
    } else {
        (attributes.path.clone(), String::new())
    };
    app.requests.record_identity(IdentityRequest {
        user: identity.user.clone(),
        verb: attributes.verb.clone(),
        api_group,
        resource,
        namespace: attributes.namespace.clone(),
        non_resource: !attributes.resource_request,
        allowed: decision.allowed,
        grant: decision.grant.clone(),
    });
}

/// The identity of a bearer token, or 401 for a token that is malformed, unknown, expired, or whose
/// ServiceAccount is gone (or was recreated).
fn authenticate(app: &AppState, headers: &HeaderMap) -> Result<Identity, Box<Response>> {
    let token = match auth::bearer(headers) {
        None => return Ok(Identity::anonymous()),
        Some(Err(())) => return Err(Box::new(unauthorized("Unauthorized"))),
        Some(Ok(token)) => token,
    };
    match app.tokens.owner(token, std::time::SystemTime::now()) {
        Some(TokenOwner::Admin(identity)) => Ok(identity),
        Some(TokenOwner::ServiceAccount(identity, namespace, name)) => {
            let state = app.store.lock();
            let account = state.get(&GroupResource::new("", "serviceaccounts"), &namespace, &name);
            let current_uid = account.and_then(|a| a.pointer("/metadata/uid")).and_then(Value::as_str);
            match current_uid {
                Some(uid) if identity.uid.is_empty() || identity.uid == uid => Ok(identity),
                _ => Err(Box::new(unauthorized("Unauthorized"))),
            }
        }
        None => Err(Box::new(unauthorized("Unauthorized"))),
    }
}

/// Whether the request would create the object it names (PUT, or an apply patch, of an object that does not
/// exist): then Kubernetes also checks `create`.
fn creates(app: &AppState, method: &str, headers: &HeaderMap, attributes: &Attributes) -> bool {
    let apply = method == "PATCH"
        && headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.contains("apply-patch"));
    if !(apply || method == "PUT") || !attributes.resource_request || attributes.name.is_empty() {
        return false;
    }
    if !attributes.subresource.is_empty() {
        return false;
    }
    let state = app.store.lock();
    let Some(info) = state
        .registry
        .find(&attributes.api_group, &attributes.api_version, &attributes.resource)
    else {
        return false;
    };
    state
        .get(&info.storage_resource(), &attributes.namespace, &attributes.name)
        .is_none()
}

/// Authentication, impersonation and RBAC authorization of one request; the identity it runs as, or the 400, 401
/// or 403 answer.
fn admit(
    app: &AppState,
    method: &str,
    path: &str,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<Identity, Box<Response>> {
    let mut identity = authenticate(app, headers)?;
    match Impersonation::from_headers(headers) {
        Err(error) => return Err(Box::new(ApiError::bad_request(error.to_string()).into_response())),
        Ok(None) => {}
        Ok(Some(impersonation)) => {
            for check in impersonation.checks() {
                let decision = rbac::authorize(&app.store.lock(), &identity, &check);
                record(app, &identity, &check, &decision);
                if !decision.allowed {
                    return Err(Box::new(forbidden(&identity.user, &check, &decision.reason)));
                }
            }
            identity = impersonation.identity();
        }
    }
    let attributes = rbac::request_attributes(method, path, query);
    let decision = rbac::authorize(&app.store.lock(), &identity, &attributes);
    record(app, &identity, &attributes, &decision);
    if !decision.allowed {
        return Err(Box::new(forbidden(&identity.user, &attributes, &decision.reason)));
    }
    if creates(app, method, headers, &attributes) {
        let create = Attributes {
            verb: "create".to_string(),
            ..attributes.clone()
        };
        let decision = rbac::authorize(&app.store.lock(), &identity, &create);
        record(app, &identity, &create, &decision);
        if !decision.allowed {
            return Err(Box::new(forbidden(&identity.user, &create, &decision.reason)));
        }
    }
    Ok(identity)
}

/// Without RBAC: the static token checks of `token` and `secrets_token`, then every request is allowed (and counted
/// for the identity its token names, anonymous otherwise).
fn allow_all(
    app: &AppState,
    method: &str,
    path: &str,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<Identity, Box<Response>> {
    legacy_tokens(app, path, headers)?;
    let identity = authenticate(app, headers).unwrap_or_else(|_| Identity::anonymous());
    let identity = match Impersonation::from_headers(headers) {
        Ok(Some(impersonation)) => impersonation.identity(),
        _ => identity,
    };
    let attributes = rbac::request_attributes(method, path, query);
    let decision = Decision {
        allowed: true,
        ..Decision::default()
    };
    record(app, &identity, &attributes, &decision);
    Ok(identity)
}

/// The checks of the static `token` and `secrets_token` options (unchanged from before RBAC).
fn legacy_tokens(app: &AppState, path: &str, headers: &HeaderMap) -> Result<(), Box<Response>> {
    if let Some(token) = &app.token {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if presented != Some(token.as_str()) {
            let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "Unauthorized", "reason": "Unauthorized", "code": 401});
            return Err(Box::new(json_response(StatusCode::UNAUTHORIZED, &status, &[])));
        }
    }
    if let Some(secrets_token) = &app.secrets_token
        && is_secrets_path(path)
    {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        let accepted = [Some(secrets_token), app.token.as_ref()]
            .into_iter()
            .flatten()
            .any(|token| same_token(presented, token));
        if !accepted {
            let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "Unauthorized: Secrets need the sandbox's bearer token; use the kubeconfig the sandbox wrote",
                "reason": "Unauthorized", "code": 401});
            return Err(Box::new(json_response(StatusCode::UNAUTHORIZED, &status, &[])));
        }
    }
    Ok(())
}

/// Whether a path names Secrets: `/api/v1/secrets` or `/api/v1/namespaces/<ns>/secrets[/...]`.
fn is_secrets_path(path: &str) -> bool {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    matches!(
        segments.as_slice(),
        ["api", "v1", "secrets", ..] | ["api", "v1", "namespaces", _, "secrets", ..]
    )
}

/// Compares a presented token with the expected one in time independent of where they differ.
fn same_token(presented: &str, expected: &str) -> bool {
    let (presented, expected) = (presented.as_bytes(), expected.as_bytes());
    presented.len() == expected.len()
        && presented
            .iter()
            .zip(expected)
            .fold(0u8, |difference, (a, b)| difference | (a ^ b))
            == 0
}

#[allow(clippy::too_many_arguments)]
async fn route(
    app: &Arc<AppState>,
    identity: &Identity,
    method: &Method,
    path: &str,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let ok = |v: Value| Ok(json_response(StatusCode::OK, &v, &[]));
    if let Some(response) = review_request(app, identity, method, &segments, headers, &body)? {
        return Ok(response);
    }
    match segments.as_slice() {
        ["version"] => ok(discovery::version()),
        ["healthz"] | ["readyz"] | ["livez"] => Ok((StatusCode::OK, "ok").into_response()),
        ["api"] => ok(discovery::core_versions(&app.address)),
        ["apis"] => ok(discovery::group_list(&app.store.lock().registry)),
        ["openapi", "v3"] => ok(openapi::index(&app.store.lock().registry)),
        ["openapi", "v3", "api", version] => openapi::group_version_document(&app.store.lock().registry, "", version)
            .map(|d| json_response(StatusCode::OK, &d, &[]))
            .ok_or_else(|| ApiError::UnknownPath { path: path.into() }),
        ["openapi", "v3", "apis", group, version] => {
            openapi::group_version_document(&app.store.lock().registry, group, version)
                .map(|d| json_response(StatusCode::OK, &d, &[]))
                .ok_or_else(|| ApiError::UnknownPath { path: path.into() })
        }
        ["openapi", "v2"] => Err(ApiError::NotImplemented {
            what: "OpenAPI v2 (/openapi/v2); use /openapi/v3".into(),
        }),
        ["api", "v1"] => discovery::resource_list(&app.store.lock().registry, "", "v1")
            .map(|d| json_response(StatusCode::OK, &d, &[]))
            .ok_or_else(|| ApiError::UnknownPath { path: path.into() }),
        ["apis", group] => discovery::group(&app.store.lock().registry, group)
            .map(|d| json_response(StatusCode::OK, &d, &[]))
            .ok_or_else(|| ApiError::UnknownPath { path: path.into() }),
        [
            "apis",
            group @ (reviews::AUTHORIZATION_GROUP | reviews::AUTHENTICATION_GROUP),
            version,
        ] => reviews::resource_list(group, version)
            .map(|d| json_response(StatusCode::OK, &d, &[]))
            .ok_or_else(|| ApiError::UnknownPath { path: path.into() }),
        ["apis", group, version] => discovery::resource_list(&app.store.lock().registry, group, version)
            .map(|d| json_response(StatusCode::OK, &d, &[]))
            .ok_or_else(|| ApiError::UnknownPath { path: path.into() }),
        ["api", version, rest @ ..] => {
            let target = parse_target(app, "", version, rest, path)?;
            resource_request(app, identity, method, target, query, headers, body).await
        }
        ["apis", group, version, rest @ ..] => {
            let target = parse_target(app, group, version, rest, path)?;
            resource_request(app, identity, method, target, query, headers, body).await
        }
        _ => Err(ApiError::UnknownPath { path: path.into() }),
    }
}

/// The virtual endpoints of `reviews.rs` (access and rules reviews, TokenRequest, TokenReview,
/// SelfSubjectReview); `None` for every other path.
fn review_request(
    app: &AppState,
    identity: &Identity,
    method: &Method,
    segments: &[&str],
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Option<Response>, ApiError> {
    const AUTHORIZATION: &str = reviews::AUTHORIZATION_GROUP;
    const AUTHENTICATION: &str = reviews::AUTHENTICATION_GROUP;
    let review = match segments {
        [
            "apis",
            AUTHORIZATION,
            "v1",
            resource @ ("selfsubjectaccessreviews" | "subjectaccessreviews" | "selfsubjectrulesreviews"),
        ] => *resource,
        [
            "apis",
            AUTHORIZATION,
            "v1",
            "namespaces",
            _,
            "localsubjectaccessreviews",
        ] => "localsubjectaccessreviews",
        [
            "apis",
            AUTHENTICATION,
            "v1",
            resource @ ("selfsubjectreviews" | "tokenreviews"),
        ] => *resource,
        ["api", "v1", "namespaces", _, "serviceaccounts", _, "token"] => "serviceaccounts/token",
        _ => return Ok(None),
    };
    if *method != Method::POST {
        return Err(ApiError::MethodNotAllowed {
            message: format!("the server does not allow this method on the requested resource ({method} {review})"),
        });
    }
    let request = decode_body(body, headers, false)?;
    let mode = app.mode();
    let state = app.store.lock();
    let answer = match (review, segments) {
        ("selfsubjectaccessreviews", _) => reviews::self_subject_access_review(&state, mode, identity, request)?,
        ("subjectaccessreviews", _) => reviews::subject_access_review(&state, mode, request)?,
        ("localsubjectaccessreviews", [_, _, _, _, namespace, _]) => {
            let asked = request
                .pointer("/spec/resourceAttributes/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if asked != *namespace {
                return Err(ApiError::bad_request(format!(
                    "spec.resourceAttributes.namespace must match namespace: {namespace}"
                )));
            }
            let mut answer = reviews::subject_access_review(&state, mode, request)?;
            answer["kind"] = json!("LocalSubjectAccessReview");
            answer
        }
        ("selfsubjectrulesreviews", _) => reviews::self_subject_rules_review(&state, mode, identity, request),
        ("selfsubjectreviews", _) => reviews::self_subject_review(identity, request),
        ("tokenreviews", _) => {
            let token = request
                .pointer("/spec/token")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let mut status = json!({"authenticated": false});
            if let Some(owner) = app.tokens.owner(token, std::time::SystemTime::now()) {
                let user = match owner {
                    TokenOwner::Admin(identity) | TokenOwner::ServiceAccount(identity, _, _) => identity,
                };
                status = json!({"authenticated": true, "audiences": [reviews::DEFAULT_AUDIENCE],
                    "user": {"username": user.user, "uid": user.uid, "groups": user.groups}});
            }
            json!({"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"creationTimestamp": null}, "spec": request.get("spec").cloned().unwrap_or(json!({})),
                "status": status})
        }
        ("serviceaccounts/token", [_, _, _, namespace, _, name, _]) => {
            reviews::token_request(&state, &app.tokens, namespace, name, request)?
        }
        _ => return Ok(None),
    };
    Ok(Some(json_response(StatusCode::CREATED, &answer, &[])))
}

/// A request addressed to a resource.
struct Target {
    info: Arc<ResourceInfo>,
    version: String,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

fn parse_target(app: &AppState, group: &str, version: &str, rest: &[&str], path: &str) -> Result<Target, ApiError> {
    let state = app.store.lock();
    let registry = &state.registry;
    let unknown_resource = |plural: &str| {
        let resource = if group.is_empty() {
            plural.to_string()
        } else {
            format!("{plural}.{group}")
        };
        ApiError::UnknownPath {
            path: format!("{path}: the server doesn't have a resource type \"{resource}\""),
        }
    };
    if let ["namespaces", namespace, plural, tail @ ..] = rest
        && let Some(info) = registry.find(group, version, plural).filter(|i| i.namespaced)
    {
        let (name, subresource) = match tail {
            [] => (None, None),
            [name] => (Some(name.to_string()), None),
            [name, sub] => (Some(name.to_string()), Some(sub.to_string())),
            _ => return Err(ApiError::UnknownPath { path: path.into() }),
        };
        return Ok(Target {
            info,
            version: version.to_string(),
            namespace: Some(namespace.to_string()),
            name,
            subresource,
        });
    }
    if let ["namespaces", _, plural, tail @ ..] = rest {
        let namespace_subresource = group.is_empty() && tail.is_empty() && matches!(*plural, "status" | "finalize");
        if !namespace_subresource {
            return Err(unknown_resource(plural));
        }
    }
    match rest {
        [plural, tail @ ..] => {
            let info = registry
                .find(group, version, plural)
                .ok_or_else(|| unknown_resource(plural))?;
            let (name, subresource) = match tail {
                [] => (None, None),
                [name] if !info.namespaced => (Some(name.to_string()), None),
                [name, sub] if !info.namespaced => (Some(name.to_string()), Some(sub.to_string())),
                _ => return Err(ApiError::UnknownPath { path: path.into() }),
            };
            Ok(Target {
                info,
                version: version.to_string(),
                namespace: None,
                name,
                subresource,
            })
        }
        [] => Err(ApiError::UnknownPath { path: path.into() }),
    }
}

fn decode_body(body: &Bytes, headers: &HeaderMap, allow_yaml: bool) -> Result<Value, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if content_type.contains("protobuf") {
        // client-go's typed clients (kubectl create <kind> <name>, kubectl auth can-i) send protobuf.
        return super::protobuf::decode_body(body, content_type);
    }
    let text =
        std::str::from_utf8(body).map_err(|e| ApiError::bad_request(format!("the request body is not UTF-8: {e}")))?;
    if text.trim().is_empty() {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    match serde_json::from_str::<Value>(text) {
        Ok(v) => Ok(v),
        Err(json_error) => {
            if allow_yaml || content_type.contains("yaml") {
                serde_saphyr::from_str::<Value>(text)
                    .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
            } else {
                Err(ApiError::bad_request(format!(
                    "couldn't get version/kind; json parse error: {json_error}"
                )))
            }
        }
    }
}

fn write_options(query: &HashMap<String, String>, headers: &HeaderMap) -> Result<WriteOptions, ApiError> {
    let field_manager = match query.get("fieldManager") {
        Some(m) if !m.is_empty() => m.clone(),
        _ => headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.split('/').next().unwrap_or(ua).to_string())
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| "unknown".into()),
    };
    let dry_run = match query.get("dryRun").map(String::as_str) {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "dryRun must be \"All\", got \"{other}\""
            )));
        }
    };
    Ok(WriteOptions {
        field_manager,
        field_validation: FieldValidation::parse(query.get("fieldValidation").map(String::as_str))?,
        dry_run,
        force: query.get("force").is_some_and(|f| f == "true" || f == "1"),
    })
}

fn subresource_of(target: &Target) -> Result<Subresource, ApiError> {
    match target.subresource.as_deref() {
        None => Ok(Subresource::Main),
        Some("status") if target.info.has_status_subresource() => Ok(Subresource::Status),
        Some(other) => Err(ApiError::NotImplemented {
            what: format!("the {}/{other} subresource", target.info.group_resource().qualified()),
        }),
    }
}

/// Splits a `.a.b` path into JSON pointer form `/a/b`.
fn pointer_of(path: &str) -> String {
    path.split('.')
        .filter(|p| !p.is_empty())
        .fold(String::new(), |acc, p| acc + "/" + p)
}

fn scale_of(object: &Value, paths: &ScalePaths) -> Value {
    let spec = object
        .pointer(&pointer_of(&paths.spec_replicas))
        .cloned()
        .unwrap_or(json!(0));
    let status = object
        .pointer(&pointer_of(&paths.status_replicas))
        .cloned()
        .unwrap_or(json!(0));
    let selector = match &paths.label_selector {
        Some(path) => object
            .pointer(&pointer_of(path))
            .and_then(Value::as_str)
            .map(str::to_string),
        None => object
            .pointer("/spec/selector/matchLabels")
            .and_then(Value::as_object)
            .map(|labels| {
                labels
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join(",")
            }),
    };
    let metadata = object.get("metadata").cloned().unwrap_or(json!({}));
    let mut status_doc = json!({"replicas": status});
    if let (Some(selector), Some(m)) = (selector, status_doc.as_object_mut()) {
        m.insert("selector".into(), json!(selector));
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": metadata.get("name"), "namespace": metadata.get("namespace"), "uid": metadata.get("uid"),
            "resourceVersion": metadata.get("resourceVersion"), "creationTimestamp": metadata.get("creationTimestamp"),
        },
        "spec": {"replicas": spec},
        "status": status_doc,
    })
}

/// The `/scale` subresource: reads and writes the replica count through an `autoscaling/v1` Scale.
#[allow(clippy::too_many_arguments)]
fn scale_request(
    app: &Arc<AppState>,
    method: &Method,
    info: &Arc<ResourceInfo>,
    version: &str,
    namespace: Option<&str>,
    name: &str,
    paths: &ScalePaths,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let mut state = app.store.lock();
    let current = state
        .get(&info.storage_resource(), namespace.unwrap_or(""), name)
        .cloned()
        .ok_or_else(|| ApiError::NotFound {
            resource: info.group_resource().qualified(),
            name: name.to_string(),
        })?;
    let current = state.convert(info, version, current);
    let scale = scale_of(&current, paths);
    let desired = match *method {
        Method::GET => return Ok(json_response(StatusCode::OK, &scale, &[])),
        Method::PUT => decode_body(body, headers, false)?,
        Method::PATCH => {
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let patch_body = decode_body(body, headers, false)?;
            let mut patched = scale.clone();
            match PatchKind::from_content_type(content_type)? {
                PatchKind::Json => super::patch::json_patch(&mut patched, &patch_body)?,
                PatchKind::Merge | PatchKind::Strategic => super::patch::merge_patch(&mut patched, &patch_body),
                PatchKind::Apply => {
                    return Err(ApiError::NotImplemented {
                        what: "server-side apply on the scale subresource".into(),
                    });
                }
            }
            patched
        }
        _ => {
            return Err(ApiError::MethodNotAllowed {
                message: format!("{method} is not allowed on the scale subresource"),
            });
        }
    };
    let replicas = desired
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .filter(|r| *r >= 0)
        .ok_or_else(|| ApiError::bad_request("the Scale must have a non-negative spec.replicas"))?;
    let mut replica_patch = json!(replicas);
    for key in paths.spec_replicas.split('.').filter(|p| !p.is_empty()).rev() {
        replica_patch = json!({ key: replica_patch });
    }
    let options = write_options(query, headers)?;
    let outcome = state.patch(
        info,
        version,
        namespace,
        name,
        PatchKind::Merge,
        replica_patch,
        Subresource::Main,
        &options,
    )?;
    Ok(json_response(StatusCode::OK, &scale_of(&outcome.object, paths), &[]))
}

/// Whether writes of this resource go through the RBAC escalation check (roles and bindings, with RBAC on).
fn guards_escalation(app: &AppState, info: &ResourceInfo) -> bool {
    app.authorization == Authorization::Rbac
        && info.group == escalation::RBAC_GROUP
        && matches!(
            info.plural.as_str(),
            "roles" | "clusterroles" | "rolebindings" | "clusterrolebindings"
        )
}

/// Refuses a role or binding that would grant more than the writer holds ([`escalation::check`]).
fn no_escalation(
    app: &AppState,
    state: &super::store::State,
    identity: &Identity,
    info: &ResourceInfo,
    namespace: Option<&str>,
    object: &Value,
) -> Result<(), ApiError> {
    if !guards_escalation(app, info) {
        return Ok(());
    }
    escalation::check(state, identity, &info.plural, namespace.unwrap_or(""), object)
}

fn accept(headers: &HeaderMap) -> String {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string()
}

#[allow(clippy::too_many_arguments)]
async fn resource_request(
    app: &Arc<AppState>,
    identity: &Identity,
    method: &Method,
    target: Target,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let info = target.info.clone();
    let version = target.version.as_str();
    let namespace = target.namespace.as_deref();
    let accept = accept(headers);
    let shape = Shape {
        table: table::wants_table(&accept),
        metadata: wants_metadata(&accept),
        include_object: query.get("includeObject").is_some_and(|v| v == "Object"),
    };
    if target.subresource.as_deref() == Some("scale")
        && let (Some(name), Some(paths)) = (
            target.name.as_deref(),
            info.version(version).and_then(|v| v.scale.clone()),
        )
    {
        return scale_request(
            app, method, &info, version, namespace, name, &paths, query, headers, &body,
        );
    }
    match (method.clone(), target.name.as_deref()) {
        (Method::GET, Some(name)) => {
            subresource_of(&target)?;
            let state = app.store.lock();
            let object = state
                .get(&info.storage_resource(), namespace.unwrap_or(""), name)
                .cloned()
                .ok_or_else(|| ApiError::NotFound {
                    resource: info.group_resource().qualified(),
                    name: name.to_string(),
                })?;
            let object = state.convert(&info, version, object);
            if shape.metadata && !shape.table {
                return Ok(json_response(StatusCode::OK, &partial_metadata(&object), &[]));
            }
            if shape.table {
                let rv = state.resource_version().to_string();
                drop(state);
                let columns = table::columns(&info, version);
                return Ok(json_response(
                    StatusCode::OK,
                    &table::table(&columns, &[object], &rv, shape.include_object),
                    &[],
                ));
            }
            Ok(json_response(StatusCode::OK, &object, &[]))
        }
        (Method::GET, None) => {
            let labels = LabelSelector::parse(query.get("labelSelector").map(String::as_str).unwrap_or(""))?;
            let fields = FieldSelector::parse(query.get("fieldSelector").map(String::as_str).unwrap_or(""))?;
            let watch = query.get("watch").is_some_and(|w| w == "true" || w == "1");
            if watch {
                return start_watch(app, info, version, namespace, labels, fields, query, shape);
            }
            list(app, &info, version, namespace, &labels, &fields, query, shape)
        }
        (Method::POST, None) => {
            let object = decode_body(&body, headers, false)?;
            let options = write_options(query, headers)?;
            let mut state = app.store.lock();
            no_escalation(app, &state, identity, &info, namespace, &object)?;
            let outcome = state.create(&info, version, namespace, object, &options)?;
            Ok(json_response(StatusCode::CREATED, &outcome.object, &outcome.warnings))
        }
        (Method::PUT, Some(name)) => {
            let subresource = subresource_of(&target)?;
            let object = decode_body(&body, headers, false)?;
            let options = write_options(query, headers)?;
            let mut state = app.store.lock();
            no_escalation(app, &state, identity, &info, namespace, &object)?;
            let outcome = state.update(&info, version, namespace, name, object, subresource, &options)?;
            let code = if outcome.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(json_response(code, &outcome.object, &outcome.warnings))
        }
        (Method::PATCH, Some(name)) => {
            let subresource = subresource_of(&target)?;
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let kind = PatchKind::from_content_type(content_type)?;
            let patch_body = decode_body(&body, headers, kind == PatchKind::Apply)?;
            let options = write_options(query, headers)?;
            if kind == PatchKind::Apply && query.get("fieldManager").is_none_or(|m| m.is_empty()) {
                return Err(ApiError::bad_request(
                    "PATCH requests of type application/apply-patch+yaml must include a fieldManager query parameter",
                ));
            }
            if kind != PatchKind::Apply && options.force {
                return Err(ApiError::bad_request("force is only allowed for apply patches"));
            }
            let mut state = app.store.lock();
            if guards_escalation(app, &info) {
                // The role or binding as the patch would leave it decides, so compute it first without storing.
                let preview = WriteOptions {
                    dry_run: true,
                    ..options.clone()
                };
                let would_be = state.patch(
                    &info,
                    version,
                    namespace,
                    name,
                    kind,
                    patch_body.clone(),
                    subresource,
                    &preview,
                )?;
                no_escalation(app, &state, identity, &info, namespace, &would_be.object)?;
            }
            let outcome = state.patch(&info, version, namespace, name, kind, patch_body, subresource, &options)?;
            let code = if outcome.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(json_response(code, &outcome.object, &outcome.warnings))
        }
        (Method::DELETE, Some(name)) => {
            subresource_of(&target).and_then(|s| {
                if s == Subresource::Main {
                    Ok(())
                } else {
                    Err(ApiError::MethodNotAllowed {
                        message: "DELETE is not allowed on the status subresource".into(),
                    })
                }
            })?;
            let options = delete_options(query, &body)?;
            let (object, gone) = app.store.lock().delete(&info, version, namespace, name, &options)?;
            let code = if gone { StatusCode::OK } else { StatusCode::ACCEPTED };
            // A custom resource deleted at once answers a Status, as the CRD registry store (which does not set
            // ReturnDeletedObject) does; one still terminating answers the object.
            let object = if gone && info.custom {
                crate::apiserver::validation::deleted_status(&info, &object)
            } else {
                object
            };
            Ok(json_response(code, &object, &[]))
        }
        (Method::DELETE, None) => {
            let labels = LabelSelector::parse(query.get("labelSelector").map(String::as_str).unwrap_or(""))?;
            let fields = FieldSelector::parse(query.get("fieldSelector").map(String::as_str).unwrap_or(""))?;
            let options = delete_options(query, &body)?;
            let mut state = app.store.lock();
            let names: Vec<(String, String)> = state
                .list(&info.storage_resource(), namespace, &labels, &fields)
                .iter()
                .map(|o| {
                    (
                        o.pointer("/metadata/namespace")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string(),
                        o.pointer("/metadata/name")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string(),
                    )
                })
                .collect();
            let mut items = Vec::new();
            for (ns, name) in names {
                let ns = if ns.is_empty() { None } else { Some(ns.as_str()) };
                let (object, _) = state.delete(&info, version, ns, &name, &options)?;
                items.push(object);
            }
            let rv = state.resource_version().to_string();
            Ok(json_response(
                StatusCode::OK,
                &json!({"kind": info.list_kind, "apiVersion": info.api_version(version),
                        "metadata": {"resourceVersion": rv}, "items": items}),
                &[],
            ))
        }
        (m, _) => Err(ApiError::MethodNotAllowed {
            message: format!(
                "the server does not allow this method on the requested resource ({m} {})",
                info.group_resource().qualified()
            ),
        }),
    }
}

fn delete_options(query: &HashMap<String, String>, body: &Bytes) -> Result<DeleteOptions, ApiError> {
    let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the DeleteOptions body is malformed: {e}")))?
    };
    let policy = query
        .get("propagationPolicy")
        .map(String::as_str)
        .or_else(|| body.get("propagationPolicy").and_then(Value::as_str));
    let propagation = match policy {
        None => {
            if body.get("orphanDependents").and_then(Value::as_bool) == Some(true) {
                Some(Propagation::Orphan)
            } else {
                None
            }
        }
        Some("Background") => Some(Propagation::Background),
        Some("Foreground") => Some(Propagation::Foreground),
        Some("Orphan") => Some(Propagation::Orphan),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "propagationPolicy must be Background, Foreground or Orphan, got \"{other}\""
            )));
        }
    };
    let dry_run = query.get("dryRun").is_some_and(|d| d == "All")
        || body
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|v| v == "All"));
    Ok(DeleteOptions {
        propagation,
        precondition_uid: body
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string),
        precondition_resource_version: body
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string),
        dry_run,
    })
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    rv: u64,
    after_namespace: String,
    after_name: String,
}

#[allow(clippy::too_many_arguments)]
fn list(
    app: &Arc<AppState>,
    info: &Arc<ResourceInfo>,
    version: &str,
    namespace: Option<&str>,
    labels: &LabelSelector,
    fields: &FieldSelector,
    query: &HashMap<String, String>,
    shape: Shape,
) -> Result<Response, ApiError> {
    let limit = match query.get("limit").map(String::as_str) {
        None | Some("") => None,
        Some(l) => Some(
            l.parse::<usize>()
                .map_err(|_| ApiError::bad_request(format!("limit must be a non-negative integer, got \"{l}\"")))?,
        )
        .filter(|l| *l > 0),
    };
    let after = match query.get("continue").map(String::as_str) {
        None | Some("") => None,
        Some(token) => {
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(token)
                .map_err(|_| ApiError::bad_request("the continue token is not valid"))?;
            let parsed: ContinueToken =
                serde_json::from_slice(&bytes).map_err(|_| ApiError::bad_request("the continue token is not valid"))?;
            Some(parsed)
        }
    };
    let state = app.store.lock();
    let rv = after.as_ref().map(|a| a.rv).unwrap_or(state.resource_version());
    let all = state.list(&info.storage_resource(), namespace, labels, fields);
    let start = match &after {
        Some(token) => all
            .iter()
            .position(|o| {
                let ns = o
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let name = o.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
                (ns, name) > (token.after_namespace.as_str(), token.after_name.as_str())
            })
            .unwrap_or(all.len()),
        None => 0,
    };
    let end = limit.map(|l| (start + l).min(all.len())).unwrap_or(all.len());
    let items: Vec<Value> = all[start..end]
        .iter()
        .map(|o| state.convert(info, version, (*o).clone()))
        .collect();
    let remaining = all.len() - end;
    drop(state);
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if remaining > 0
        && let Some(last) = items.last()
    {
        let token = ContinueToken {
            rv,
            after_namespace: last
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .into(),
            after_name: last
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .into(),
        };
        let encoded =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&token).unwrap_or_default());
        if let Some(m) = metadata.as_object_mut() {
            m.insert("continue".into(), json!(encoded));
            m.insert("remainingItemCount".into(), json!(remaining));
        }
    }
    if shape.table {
        let columns = table::columns(info, version);
        let mut doc = table::table(&columns, &items, &rv.to_string(), shape.include_object);
        if let Some(m) = doc.as_object_mut() {
            m.insert("metadata".into(), metadata);
        }
        return Ok(json_response(StatusCode::OK, &doc, &[]));
    }
    if shape.metadata {
        let items: Vec<Value> = items.iter().map(partial_metadata).collect();
        return Ok(json_response(
            StatusCode::OK,
            &json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": metadata, "items": items}),
            &[],
        ));
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({"kind": info.list_kind, "apiVersion": info.api_version(version), "metadata": metadata, "items": items}),
        &[],
    ))
}

/// How objects are represented in a response, from the Accept header and `includeObject`.
#[derive(Debug, Clone, Copy)]
struct Shape {
    /// `as=Table` (kubectl get).
    table: bool,
    /// `as=PartialObjectMetadata(List)` (kube's metadata API and metadata watcher).
    metadata: bool,
    /// Full objects in table rows instead of metadata.
    include_object: bool,
}

fn wants_metadata(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=PartialObjectMetadata"))
}

fn partial_metadata(object: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": object.get("metadata").cloned().unwrap_or(json!({})),
    })
}

/// Renders one watch event line for the client.
struct WatchEncoder {
    info: Arc<ResourceInfo>,
    version: String,
    labels: LabelSelector,
    fields: FieldSelector,
    shape: Shape,
}

impl WatchEncoder {
    fn object(&self, object: &Value) -> Value {
        let converted = super::store::convert_object(&self.info, &self.version, object.clone());
        if self.shape.metadata && !self.shape.table {
            return partial_metadata(&converted);
        }
        if self.shape.table {
            let columns = table::columns(&self.info, &self.version);
            let rv = converted
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            return table::table(&columns, &[converted], &rv, self.shape.include_object);
        }
        converted
    }

    fn matches(&self, object: &Value) -> bool {
        self.labels.matches(object) && self.fields.matches(object)
    }

    fn line(event_type: &str, object: Value) -> Bytes {
        let mut text = json!({"type": event_type, "object": object}).to_string();
        text.push('\n');
        Bytes::from(text)
    }

    fn encode(&self, event: &WatchEvent) -> Option<Bytes> {
        let now = self.matches(&event.object);
        let before = event.old.as_ref().is_some_and(|o| self.matches(o));
        let event_type = match event.event_type {
            EventType::Added if now => "ADDED",
            EventType::Deleted if now => "DELETED",
            EventType::Modified => match (before, now) {
                (true, true) => "MODIFIED",
                (false, true) => "ADDED",
                (true, false) => "DELETED",
                (false, false) => return None,
            },
            _ => return None,
        };
        Some(Self::line(event_type, self.object(&event.object)))
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if initial_end && let Some(m) = metadata.as_object_mut() {
            m.insert("annotations".into(), json!({"k8s.io/initial-events-end": "true"}));
        }
        Self::line(
            "BOOKMARK",
            json!({"kind": self.info.kind, "apiVersion": self.info.api_version(&self.version), "metadata": metadata}),
        )
    }
}

#[allow(clippy::too_many_arguments)]
fn start_watch(
    app: &Arc<AppState>,
    info: Arc<ResourceInfo>,
    version: &str,
    namespace: Option<&str>,
    labels: LabelSelector,
    fields: FieldSelector,
    query: &HashMap<String, String>,
    shape: Shape,
) -> Result<Response, ApiError> {
    let since = match query.get("resourceVersion").map(String::as_str) {
        None | Some("") | Some("0") => None,
        Some(rv) => Some(
            rv.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion \"{rv}\"")))?,
        ),
    };
    let send_initial = query.get("sendInitialEvents").is_some_and(|v| v == "true");
    let bookmarks = query.get("allowWatchBookmarks").is_some_and(|v| v == "true");
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
    let encoder = WatchEncoder {
        info: info.clone(),
        version: version.to_string(),
        labels,
        fields,
        shape,
    };
    let (lines, line_receiver) = mpsc::channel::<Bytes>(256);
    let mut initial = Vec::new();
    let subscription = {
        let mut state = app.store.lock();
        let resource = info.storage_resource();
        let namespace_filter = namespace.map(str::to_string);
        // Synthetic ADDED events for the current state when no resourceVersion is given (or with
        // sendInitialEvents), then live events.
        let result = if since.is_none() || send_initial {
            for object in state.list(
                &resource,
                namespace,
                &LabelSelector::default(),
                &FieldSelector::default(),
            ) {
                if encoder.matches(object) {
                    initial.push(WatchEncoder::line("ADDED", encoder.object(object)));
                }
            }
            state.subscribe(Some(resource), namespace_filter, None)
        } else {
            state.subscribe(Some(resource), namespace_filter, since)
        };
        let rv = state.resource_version();
        result.map(|(replay, receiver)| (replay, receiver, rv))
    };
    let (replay, mut receiver, current_rv) = match subscription {
        Ok(s) => s,
        Err(gone @ ApiError::Gone { .. }) => {
            let line = WatchEncoder::line("ERROR", gone.to_status());
            return Ok(streaming(futures::stream::iter(vec![Ok::<Bytes, Infallible>(line)])));
        }
        Err(other) => return Err(other),
    };
    for event in &replay {
        if let Some(line) = encoder.encode(event) {
            initial.push(line);
        }
    }
    if send_initial {
        initial.push(encoder.bookmark(current_rv, true));
    }
    let store = app.store.clone();
    let bookmark_interval = app.bookmark_interval;
    tokio::spawn(async move {
        for line in initial {
            if lines.send(line).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval(bookmark_interval);
        ticker.tick().await;
        loop {
            tokio::select! {
                event = receiver.recv() => {
                    let Some(event) = event else { break };
                    if let Some(line) = encoder.encode(&event)
                        && lines.send(line).await.is_err()
                    {
                        break;
                    }
                }
                _ = ticker.tick() => {
                    if lines.is_closed() {
                        break;
                    }
                    if bookmarks {
                        let rv = store.lock().resource_version();
                        if lines.send(encoder.bookmark(rv, false)).await.is_err() {
                            break;
                        }
                    }
                }
                _ = &mut deadline => break,
            }
        }
    });
    let stream = futures::stream::unfold(line_receiver, |mut receiver| async move {
        receiver
            .recv()
            .await
            .map(|line| (Ok::<Bytes, Infallible>(line), receiver))
    });
    Ok(streaming(stream))
}

fn streaming<S>(stream: S) -> Response
where
    S: futures::Stream<Item = Result<Bytes, Infallible>> + Send + 'static,
{
    let mut response = Response::new(Body::from_stream(stream));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache, private"),
    );
    response
}
