//! The HTTP surface of the REST API (reference §4): routes, the gate every request passes (fault
//! injection, node liveness, basic auth — bootstrap is open until the node joins), JSON parsing
//! with RS-style errors, and a 501 answer naming any request the emulator does not implement.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use base64::Engine;
use serde_json::{Value, json};

use super::bdb::MODULES;
use super::bootstrap;
use super::cluster::{Credentials, now};
use super::error::ApiError;
use super::faults::FaultAction;
use super::operations::Ops;

/// Which listener a request came in on.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// A node's own address (`<pod>.<rec>-headless.<ns>.svc`).
    Node(String),
    /// The API service (`<rec>.<ns>.svc`): served by any joined node.
    Service,
}

/// The state of one listener.
pub(crate) struct Endpoint {
    pub ops: Ops,
    pub target: Target,
}

/// The pod whose node serves the request (set by the gate).
#[derive(Debug, Clone)]
struct ServingPod(String);

type Ep = State<Arc<Endpoint>>;
type ApiResult = Result<Response, ApiError>;

fn ok(value: Value) -> ApiResult {
    Ok((StatusCode::OK, axum::Json(value)).into_response())
}

/// Parses a JSON body; an empty body is `{}`.
fn parse_body(body: &Bytes) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(body)
        .map_err(|error| ApiError::invalid_schema(format!("the body is not valid JSON: {error}")))
}

fn parse_uid(uid: &str, what: &str) -> Result<u64, ApiError> {
    uid.parse()
        .map_err(|_| ApiError::not_found(format!("{what} {uid} does not exist")))
}

/// Builds the router of one listener.
pub(crate) fn router(endpoint: Arc<Endpoint>) -> Router {
    Router::new()
        .route("/v1/bootstrap", get(get_bootstrap))
        .route("/v1/bootstrap/{action}", post(post_bootstrap))
        .route("/v1/cluster", get(get_cluster).put(put_cluster))
        .route("/v1/cluster/policy", get(get_policy).put(put_policy))
        .route(
            "/v1/users/password",
            put(user_password).post(user_password).delete(user_password),
        )
        .route("/v1/nodes", get(get_nodes))
        .route("/v1/nodes/{uid}", get(get_node))
        .route("/v1/bdbs", get(get_bdbs).post(post_bdb))
        .route("/v1/bdbs/{uid}", get(get_bdb).put(put_bdb).delete(delete_bdb))
        .route(
            "/v1/bdbs/{uid}/passwords",
            put(passwords).post(passwords).delete(passwords),
        )
        .route("/v1/bdbs/{uid}/upgrade", post(upgrade))
        .route("/v1/bdbs/alerts/{uid}", get(get_alerts).post(post_alerts))
        .route("/v1/bdbs/stats/last", get(get_stats_last_all))
        .route("/v1/bdbs/stats/last/{uid}", get(get_stats_last))
        .route("/v1/bdbs/{uid}/actions/export", post(export))
        .route("/v1/bdbs/{uid}/actions/import", post(import))
        .route("/v1/bdbs/{uid}/actions/{action}", put(reset_status))
        .route("/v1/actions", get(get_actions))
        .route("/v1/actions/{uid}", get(get_action))
        .route("/v2/actions", get(get_actions_v2))
        .route("/v2/actions/{uid}", get(get_action_v2))
        .route("/v2/bdbs", post(post_bdb_v2))
        .route("/v1/shards", get(get_shards))
        .route("/v1/shards/{uid}", get(get_shard))
        .route("/v1/modules", get(get_modules))
        .route("/v1/license", get(get_license).put(put_license))
        .fallback(not_implemented)
        .method_not_allowed_fallback(not_implemented)
        .layer(middleware::from_fn_with_state(endpoint.clone(), gate))
        .with_state(endpoint)
}

async fn not_implemented(method: Method, request: Request) -> Response {
    ApiError::not_implemented(format!("{method} {}", request.uri().path())).into_response()
}

/// Whether the request's basic-auth credentials match.
fn authorized(request: &Request, credentials: &Option<Credentials>) -> bool {
    let Some(credentials) = credentials else {
        return false;
    };
    let Some(encoded) = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Basic "))
    else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let Ok(decoded) = String::from_utf8(decoded) else {
        return false;
    };
    decoded
        .split_once(':')
        .is_some_and(|(user, password)| credentials.accepts(user, password))
}

/// The largest request body the emulator reads (bootstrap and bdb bodies are a few KiB).
const MAX_BODY_BYTES: usize = 16 << 20;

/// Every request passes here: the request log, faults, then node liveness, then auth.
async fn gate(State(endpoint): Ep, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return ApiError::invalid_schema("the request body could not be read or is larger than 16 MiB").into_response();
    };
    endpoint
        .ops
        .shared
        .requests
        .record(parts.method.as_str(), parts.uri.path(), &bytes);
    let mut request = Request::from_parts(parts, axum::body::Body::from(bytes));
    let faults = &endpoint.ops.shared.faults;
    match faults.take(request.method(), request.uri().path()) {
        Some(FaultAction::Fail(error)) => return error.into_response(),
        Some(FaultAction::Delay(delay)) => tokio::time::sleep(delay).await,
        None => {}
    }
    let path = request.uri().path();
    let bootstrap_path = path == "/v1/bootstrap" || path.starts_with("/v1/bootstrap/");
    let (pod, joined, allowed) = {
        let state = endpoint.ops.cluster.lock();
        let serving = match &endpoint.target {
            Target::Node(pod) => state.nodes.get(pod).filter(|node| node.running),
            // The Service routes only to ready pods: members that are not starting.
            Target::Service => state.nodes.values().find(|node| node.joined() && !node.starting),
        };
        let Some(node) = serving else {
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "node_unavailable",
                "no running cluster node serves this address",
            )
            .into_response();
        };
        (
            node.pod.clone(),
            node.joined(),
            authorized(&request, &state.credentials),
        )
    };
    if !joined && !bootstrap_path {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "node_not_in_cluster",
            format!("node {pod} does not belong to a cluster yet; bootstrap it first"),
        )
        .into_response();
    }
    if joined && !allowed {
        let mut response = ApiError::unauthorized().into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"Redis Enterprise\""),
        );
        return response;
    }
    request.extensions_mut().insert(ServingPod(pod));
    next.run(request).await
}

fn serving_pod(request_pod: Option<axum::Extension<ServingPod>>) -> Result<String, ApiError> {
    request_pod
        .map(|axum::Extension(ServingPod(pod))| pod)
        .ok_or_else(|| ApiError::internal("the request passed no gate"))
}

async fn get_bootstrap(State(endpoint): Ep, pod: Option<axum::Extension<ServingPod>>) -> ApiResult {
    let pod = serving_pod(pod)?;
    ok(bootstrap::status_json(
        &endpoint.ops.cluster,
        &endpoint.ops.shared,
        &pod,
    )?)
}

async fn post_bootstrap(
    State(endpoint): Ep,
    Path(action): Path<String>,
    pod: Option<axum::Extension<ServingPod>>,
    body: Bytes,
) -> ApiResult {
    let pod = serving_pod(pod)?;
    let body = parse_body(&body)?;
    bootstrap::start(
        endpoint.ops.shared.clone(),
        endpoint.ops.cluster.clone(),
        pod,
        &action,
        &body,
    )?;
    ok(json!({}))
}

async fn get_cluster(State(endpoint): Ep) -> ApiResult {
    ok(endpoint.ops.cluster.lock().cluster_json())
}

/// Cluster settings `PUT /v1/cluster` records (no behaviour in the emulator).
const CLUSTER_SETTINGS: [&str; 16] = [
    // The S3-compatible endpoint of s3 backup locations and its CA (`rladmin cluster config s3_url|s3_ca_cert`).
    "s3_url",
    "s3_ca_cert",
    "email_alerts",
    "alert_settings",
    "cm_session_timeout_minutes",
    "upgrade_mode",
    "debuginfo_path",
    "handle_redirects",
    "min_control_TLS_version",
    "min_data_TLS_version",
    "password_complexity",
    "password_expiration_duration",
    "smtp_host",
    "smtp_port",
    "email_from",
    "s3_url",
];

async fn put_cluster(State(endpoint): Ep, body: Bytes) -> ApiResult {
    let body = parse_body(&body)?;
    let fields = body
        .as_object()
        .ok_or_else(|| ApiError::invalid_schema("the request body must be a JSON object"))?;
    for (key, value) in fields {
        match key.as_str() {
            "name" | "created_time" => {
                return Err(ApiError::invalid_schema(format!("field '{key}' is read-only")));
            }
            "rack_aware" if value == true => {
                return Err(ApiError::not_implemented("rack-aware clusters (rack_aware)"));
            }
            "rack_aware" => {}
            key if CLUSTER_SETTINGS.contains(&key) => {}
            other => {
                return Err(ApiError::invalid_schema(format!(
                    "unknown cluster field '{other}' (or one the emulator does not implement)"
                )));
            }
        }
    }
    let mut state = endpoint.ops.cluster.lock();
    for (key, value) in fields {
        state.settings.insert(key.clone(), value.clone());
    }
    ok(state.cluster_json())
}

async fn get_policy(State(endpoint): Ep) -> ApiResult {
    let state = endpoint.ops.cluster.lock();
    let mut policy = json!({
        "default_non_sharded_proxy_policy": "single",
        "default_sharded_proxy_policy": "all-master-shards",
        "default_shards_placement": "dense",
        "rack_aware": false,
        "default_redis_version": super::bdb::DEFAULT_REDIS_VERSION,
    });
    for (key, value) in &state.policy {
        policy[key] = value.clone();
    }
    ok(policy)
}

async fn put_policy(State(endpoint): Ep, body: Bytes) -> ApiResult {
    let body = parse_body(&body)?;
    let fields = body
        .as_object()
        .ok_or_else(|| ApiError::invalid_schema("the request body must be a JSON object"))?;
    if fields.get("rack_aware").is_some_and(|rack| rack == true) {
        return Err(ApiError::not_implemented("rack-aware clusters (policy rack_aware)"));
    }
    endpoint
        .ops
        .cluster
        .lock()
        .policy
        .extend(fields.iter().map(|(key, value)| (key.clone(), value.clone())));
    get_policy(State(endpoint)).await
}

/// `PUT` (replace), `POST` (add) and `DELETE` (remove) `/v1/users/password`, used to rotate the
/// admin password without a moment where neither the old nor the new one works.
async fn user_password(State(endpoint): Ep, method: Method, body: Bytes) -> ApiResult {
    let body = parse_body(&body)?;
    let text = |field: &str| {
        body.get(field)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| ApiError::invalid_schema(format!("missing field '{field}' (a string)")))
    };
    let username = text("username")?;
    let old_password = text("old_password")?;
    let new_password = if method == Method::DELETE {
        None
    } else {
        Some(text("new_password")?).filter(|password| !password.is_empty())
    };
    let mut state = endpoint.ops.cluster.lock();
    let credentials = state
        .credentials
        .as_mut()
        .filter(|credentials| credentials.username == username)
        .ok_or_else(|| ApiError::not_found(format!("user {username} does not exist")))?;
    if !credentials.accepts(&username, &old_password) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "old_password is not a password of this user",
        ));
    }
    match (method.as_str(), new_password) {
        ("DELETE", _) => {
            if credentials.passwords.len() == 1 {
                return Err(ApiError::not_acceptable(
                    "cannot_delete_last_password",
                    "the user's only password cannot be deleted",
                ));
            }
            credentials.passwords.retain(|password| *password != old_password);
        }
        ("PUT", Some(new_password)) => credentials.passwords = vec![new_password],
        (_, Some(new_password)) => {
            if !credentials.passwords.contains(&new_password) {
                credentials.passwords.push(new_password);
            }
        }
        (_, None) => return Err(ApiError::invalid_schema("new_password must not be empty")),
    }
    ok(json!({}))
}

async fn get_nodes(State(endpoint): Ep) -> ApiResult {
    let state = endpoint.ops.cluster.lock();
    let mut nodes: Vec<_> = state.nodes.values().filter(|node| node.uid.is_some()).collect();
    nodes.sort_by_key(|node| node.uid);
    let views: Vec<Value> = nodes
        .into_iter()
        .map(|node| state.node_json(node, &endpoint.ops.shared.config))
        .collect();
    ok(Value::Array(views))
}

async fn get_node(State(endpoint): Ep, Path(uid): Path<String>) -> ApiResult {
    let uid = parse_uid(&uid, "node")?;
    let state = endpoint.ops.cluster.lock();
    let node = state
        .nodes
        .values()
        .find(|node| node.uid == Some(uid))
        .ok_or_else(|| ApiError::not_found(format!("node {uid} does not exist")))?;
    ok(state.node_json(node, &endpoint.ops.shared.config))
}

/// Keeps only the `?fields=a,b` of a JSON object.
fn select_fields(value: Value, fields: Option<&String>) -> Value {
    let (Some(fields), Value::Object(map)) = (fields, &value) else {
        return value;
    };
    let wanted: Vec<&str> = fields.split(',').map(str::trim).collect();
    Value::Object(
        map.iter()
            .filter(|(key, _)| wanted.contains(&key.as_str()))
            .map(|(key, field)| (key.clone(), field.clone()))
            .collect(),
    )
}

async fn get_bdbs(State(endpoint): Ep, Query(query): Query<HashMap<String, String>>) -> ApiResult {
    let ops = &endpoint.ops;
    let state = ops.cluster.lock();
    let views: Vec<Value> = state
        .bdbs
        .values()
        .map(|bdb| {
            let view = state.bdb_json(bdb, ops.cluster.service_ip, &ops.shared.redis_version);
            select_fields(view, query.get("fields"))
        })
        .collect();
    ok(Value::Array(views))
}

async fn get_bdb(
    State(endpoint): Ep,
    Path(uid): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let uid = parse_uid(&uid, "database")?;
    let ops = &endpoint.ops;
    let state = ops.cluster.lock();
    let bdb = state
        .bdbs
        .get(&uid)
        .ok_or_else(|| ApiError::not_found(format!("database {uid} does not exist")))?;
    let view = state.bdb_json(bdb, ops.cluster.service_ip, &ops.shared.redis_version);
    ok(select_fields(view, query.get("fields")))
}

async fn post_bdb(State(endpoint): Ep, Query(query): Query<HashMap<String, String>>, body: Bytes) -> ApiResult {
    let body = parse_body(&body)?;
    ok(endpoint.ops.create(&body, query.contains_key("dry_run"))?)
}

async fn put_bdb(
    State(endpoint): Ep,
    Path(uid): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> ApiResult {
    let uid = parse_uid(&uid, "database")?;
    let body = parse_body(&body)?;
    ok(endpoint.ops.update(uid, &body, query.contains_key("dry_run"))?)
}

async fn delete_bdb(State(endpoint): Ep, Path(uid): Path<String>) -> ApiResult {
    let uid = parse_uid(&uid, "database")?;
    ok(endpoint.ops.delete(uid)?)
}

async fn passwords(State(endpoint): Ep, method: Method, Path(uid): Path<String>, body: Bytes) -> ApiResult {
    let uid = parse_uid(&uid, "database")?;
    let body = parse_body(&body)?;
    ok(endpoint.ops.change_password(uid, &method, &body).await?)
}

async fn get_alerts(State(endpoint): Ep, Path(uid): Path<String>) -> ApiResult {
    let uid = parse_uid(&uid, "database")?;
    let state = endpoint.ops.cluster.lock();
    let bdb = state
        .bdbs
        .get(&uid)
        .ok_or_else(|| ApiError::not_found(format!("database {uid} does not exist")))?;
    ok(Value::Object(bdb.alerts.clone()))
}

/// Alert settings are recorded (an object of `{enabled, threshold}` per alert name).
async fn post_alerts(State(endpoint): Ep, Path(uid): Path<String>, body: Bytes) -> ApiResult {
    let uid = parse_uid(&uid, "database")?;
    let body = parse_body(&body)?;
    let fields = body
        .as_object()
        .ok_or_else(|| ApiError::invalid_schema("alert settings must be a JSON object"))?;
    if let Some((name, _)) = fields.iter().find(|(_, setting)| !setting.is_object()) {
        return Err(ApiError::invalid_schema(format!(
            "alert '{name}' must be an object like {{\"enabled\": true, \"threshold\": \"80\"}}"
        )));
    }
    let mut state = endpoint.ops.cluster.lock();
    let bdb = state
        .bdbs
        .get_mut(&uid)
        .ok_or_else(|| ApiError::not_found(format!("database {uid} does not exist")))?;
    bdb.alerts
        .extend(fields.iter().map(|(key, value)| (key.clone(), value.clone())));
    ok(Value::Object(bdb.alerts.clone()))
}

async fn upgrade(State(endpoint): Ep, Path(uid): Path<String>, body: Bytes) -> ApiResult {
    let uid = parse_uid(&uid, "database")?;
    let body = parse_body(&body)?;
    ok(endpoint.ops.upgrade(uid, &body)?)
}

async fn export(State(endpoint): Ep, Path(uid): Path<String>, body: Bytes) -> ApiResult {
    let uid = parse_uid(&uid, "database")?;
    let body = parse_body(&body)?;
    ok(endpoint.ops.export(uid, &body)?)
}

async fn import(State(endpoint): Ep, Path(uid): Path<String>, body: Bytes) -> ApiResult {
    let uid = parse_uid(&uid, "database")?;
    let body = parse_body(&body)?;
    ok(endpoint.ops.import(uid, &body)?)
}

async fn get_stats_last_all(State(endpoint): Ep, Query(query): Query<HashMap<String, String>>) -> ApiResult {
    let metrics = query.get("metrics").map(String::as_str);
    ok(endpoint.ops.stats_last(None, metrics).await?)
}

async fn get_stats_last(
    State(endpoint): Ep,
    Path(uid): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let uid = parse_uid(&uid, "database")?;
    let metrics = query.get("metrics").map(String::as_str);
    ok(endpoint.ops.stats_last(Some(uid), metrics).await?)
}

async fn reset_status(State(endpoint): Ep, Path((uid, action)): Path<(String, String)>) -> ApiResult {
    let uid = parse_uid(&uid, "database")?;
    match action.as_str() {
        "export_reset_status" => ok(endpoint.ops.reset_status(uid, true)?),
        "import_reset_status" => ok(endpoint.ops.reset_status(uid, false)?),
        "backup_reset_status" => ok(endpoint.ops.backup_reset_status(uid)?),
        other => Err(ApiError::not_implemented(format!("PUT /v1/bdbs/{uid}/actions/{other}"))),
    }
}

async fn get_actions(State(endpoint): Ep) -> ApiResult {
    use super::actions::ActionKind;
    let state = endpoint.ops.cluster.lock();
    let (machines, tasks): (Vec<_>, Vec<_>) = state
        .actions
        .values()
        .partition(|action| action.kind == ActionKind::StateMachine);
    ok(json!({
        "actions": tasks.iter().map(|action| action.to_json()).collect::<Vec<_>>(),
        "state-machines": machines.iter().map(|action| action.to_json()).collect::<Vec<_>>(),
    }))
}

async fn get_action(State(endpoint): Ep, Path(uid): Path<String>) -> ApiResult {
    let state = endpoint.ops.cluster.lock();
    let action = state
        .actions
        .get(&uid)
        .ok_or_else(|| ApiError::not_found(format!("action {uid} does not exist")))?;
    ok(action.to_json())
}

async fn get_actions_v2(State(endpoint): Ep) -> ApiResult {
    let state = endpoint.ops.cluster.lock();
    let views: Vec<Value> = state.actions.values().map(|action| action.to_json_v2()).collect();
    ok(Value::Array(views))
}

async fn get_action_v2(State(endpoint): Ep, Path(uid): Path<String>) -> ApiResult {
    let state = endpoint.ops.cluster.lock();
    let action = state
        .actions
        .get(&uid)
        .ok_or_else(|| ApiError::not_found(format!("action {uid} does not exist")))?;
    ok(action.to_json_v2())
}

async fn post_bdb_v2(State(endpoint): Ep, Query(query): Query<HashMap<String, String>>, body: Bytes) -> ApiResult {
    let body = parse_body(&body)?;
    if let Some(key) = body
        .as_object()
        .and_then(|fields| fields.keys().find(|key| *key != "bdb" && *key != "recovery_plan"))
    {
        return Err(ApiError::invalid_schema(format!(
            "unknown field '{key}' in a POST /v2/bdbs body (expected bdb, recovery_plan)"
        )));
    }
    if body.get("recovery_plan").is_some_and(|plan| !plan.is_null()) {
        return Err(ApiError::not_implemented(
            "POST /v2/bdbs with a recovery_plan (creating a database from persistence files)",
        ));
    }
    let bdb = body
        .get("bdb")
        .ok_or_else(|| ApiError::invalid_schema("missing field 'bdb'"))?;
    ok(endpoint.ops.create(bdb, query.contains_key("dry_run"))?)
}

async fn get_shards(State(endpoint): Ep) -> ApiResult {
    let state = endpoint.ops.cluster.lock();
    let views: Vec<Value> = state.bdbs.values().map(|bdb| state.shard_json(bdb)).collect();
    ok(Value::Array(views))
}

async fn get_shard(State(endpoint): Ep, Path(uid): Path<String>) -> ApiResult {
    let uid = parse_uid(&uid, "shard")?;
    let state = endpoint.ops.cluster.lock();
    let bdb = state
        .bdbs
        .get(&uid)
        .ok_or_else(|| ApiError::not_found(format!("shard {uid} does not exist")))?;
    ok(state.shard_json(bdb))
}

async fn get_modules() -> ApiResult {
    let modules: Vec<Value> = MODULES
        .iter()
        .enumerate()
        .map(|(index, (name, display, version))| {
            json!({
                "uid": format!("{:032x}", index + 1),
                "module_name": name,
                "display_name": display,
                "semantic_version": version,
                "min_redis_version": "7.2",
                "capabilities": ["types", "replica_of", "backup_restore", "clustering"],
            })
        })
        .collect();
    ok(Value::Array(modules))
}

fn license_json(state: &super::cluster::ClusterState) -> Value {
    json!({
        "license": state.license.clone().unwrap_or_default(),
        "expired": false,
        "activation_date": state.created_time.clone().unwrap_or_else(now),
        "expiration_date": "2099-12-31T00:00:00Z",
        "cluster_name": state.fqdn.clone().unwrap_or_default(),
        "owner": if state.license.is_some() { "license key" } else { "trial" },
        "shards_limit": 10000,
        "ram_shards_limit": 10000,
        "flash_shards_limit": 0,
        "features": [],
    })
}

async fn get_license(State(endpoint): Ep) -> ApiResult {
    ok(license_json(&endpoint.ops.cluster.lock()))
}

async fn put_license(State(endpoint): Ep, body: Bytes) -> ApiResult {
    let body = parse_body(&body)?;
    let license = body
        .get("license")
        .and_then(Value::as_str)
        .filter(|license| !license.trim().is_empty())
        .ok_or_else(|| ApiError::invalid_schema("missing field 'license' (the license key)"))?;
    let mut state = endpoint.ops.cluster.lock();
    state.license = Some(license.to_string());
    ok(license_json(&state))
}
