//! Bootstrap (reference §4.2): `GET /v1/bootstrap` and `POST /v1/bootstrap/{create_cluster,
//! join_cluster}` on one node. A request is accepted only in `idle` or `error` (else 409); the state
//! then moves to `creating_cluster` / `joining_cluster` and, after a short delay, to `completed`, or
//! to `error` with a documented `error_code` (`connect_error` when no given address is a member of
//! the cluster, `access_denied` on wrong credentials, `config_error` when the cluster exists already).

use std::net::IpAddr;
use std::sync::Arc;

use serde_json::{Value, json};

use super::cluster::{BootstrapStatus, Cluster, Credentials, Shared, now, step};
use super::error::ApiError;

/// The longest cluster name (FQDN) a bootstrap accepts.
pub const MAX_CLUSTER_NAME: usize = 64;

/// A cluster name is an FQDN of at most [`MAX_CLUSTER_NAME`] characters.
fn check_cluster_name(name: &str) -> Result<(), ApiError> {
    if name.len() > MAX_CLUSTER_NAME {
        return Err(ApiError::invalid_schema(format!(
            "cluster.name {name:?} is {} characters long; a cluster name has at most {MAX_CLUSTER_NAME}",
            name.len()
        )));
    }
    Ok(())
}

/// A parsed bootstrap request.
#[derive(Debug, Clone)]
struct BootstrapRequest {
    create: bool,
    cluster_name: Option<String>,
    cluster_nodes: Vec<String>,
    identity_addr: Option<String>,
    username: String,
    password: String,
    license: Option<String>,
}

fn parse(action: &str, body: &Value) -> Result<BootstrapRequest, ApiError> {
    let create = match action {
        "create_cluster" => true,
        "join_cluster" => false,
        "recover_cluster" => {
            return Err(ApiError::not_implemented(
                "POST /v1/bootstrap/recover_cluster (cluster recovery)",
            ));
        }
        other => {
            return Err(ApiError::invalid_schema(format!(
                "unknown bootstrap action {other:?}; expected create_cluster or join_cluster"
            )));
        }
    };
    if !body.is_object() {
        return Err(ApiError::invalid_schema("the bootstrap body must be a JSON object"));
    }
    if let Some(named) = body.get("action").and_then(Value::as_str)
        && named != action
    {
        return Err(ApiError::invalid_schema(format!(
            "body action {named:?} does not match the path action {action:?}"
        )));
    }
    let text = |pointer: &str| body.pointer(pointer).and_then(Value::as_str).map(str::to_string);
    let username =
        text("/credentials/username").ok_or_else(|| ApiError::invalid_schema("missing credentials.username"))?;
    let password =
        text("/credentials/password").ok_or_else(|| ApiError::invalid_schema("missing credentials.password"))?;
    let cluster_name = text("/cluster/name");
    if create && cluster_name.as_deref().is_none_or(str::is_empty) {
        return Err(ApiError::invalid_schema("missing cluster.name (the cluster FQDN)"));
    }
    if let Some(name) = cluster_name.as_deref() {
        check_cluster_name(name)?;
    }
    let cluster_nodes: Vec<String> = match body.pointer("/cluster/nodes") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| ApiError::invalid_schema("cluster.nodes must be a list of addresses"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(ApiError::invalid_schema("cluster.nodes must be a list of addresses"));
        }
    };
    if !create && cluster_nodes.is_empty() {
        return Err(ApiError::invalid_schema(
            "join_cluster needs cluster.nodes: the address of at least one cluster node",
        ));
    }
    Ok(BootstrapRequest {
        create,
        cluster_name,
        cluster_nodes,
        identity_addr: text("/node/identity/addr"),
        license: text("/license").filter(|license| !license.trim().is_empty()),
        username,
        password,
    })
}

/// The `GET /v1/bootstrap` answer for `pod`.
pub(crate) fn status_json(cluster: &Cluster, shared: &Shared, pod: &str) -> Result<Value, ApiError> {
    let state = cluster.lock();
    let node = state
        .nodes
        .get(pod)
        .ok_or_else(|| ApiError::not_found(format!("node {pod}")))?;
    let mut local = json!({
        "addr": node.addr,
        "available_addrs": [node.ip.to_string()],
        "software_version": shared.config.software_version,
        "total_memory": shared.config.node_memory,
        "cores": 2,
        "ephemeral_storage_path": "/var/opt/redislabs/tmp",
        "persistent_storage_path": "/var/opt/redislabs/persist",
    });
    if let Some(uid) = node.uid {
        local["uid"] = json!(uid.to_string());
    }
    Ok(json!({
        "bootstrap_status": node.bootstrap.to_json(),
        "local_node_info": local,
    }))
}

/// Accepts `POST /v1/bootstrap/{action}` on `pod` and finishes it in the background.
pub(crate) fn start(
    shared: Arc<Shared>,
    cluster: Arc<Cluster>,
    pod: String,
    action: &str,
    body: &Value,
) -> Result<(), ApiError> {
    let request = parse(action, body)?;
    {
        let mut state = cluster.lock();
        let node = state
            .nodes
            .get_mut(&pod)
            .ok_or_else(|| ApiError::not_found(format!("node {pod}")))?;
        if !matches!(node.bootstrap.state, "idle" | "error") {
            return Err(ApiError::new(
                axum::http::StatusCode::CONFLICT,
                "busy",
                format!(
                    "bootstrap is not allowed in state {}: only in idle or error",
                    node.bootstrap.state
                ),
            ));
        }
        node.bootstrap = BootstrapStatus {
            state: if request.create {
                "creating_cluster"
            } else {
                "joining_cluster"
            },
            start_time: Some(now()),
            end_time: None,
            error_code: None,
            error_details: None,
        };
        if let Some(addr) = &request.identity_addr {
            node.addr = addr.clone();
        }
    }
    let finishing = cluster.clone();
    finishing.spawn(async move {
        step(&shared).await;
        step(&shared).await;
        let outcome = if request.create {
            finish_create(&cluster, &request)
        } else {
            finish_join(&shared, &cluster, &request)
        };
        let mut state = cluster.lock();
        let uid = match outcome {
            Ok(()) => {
                let uid = state.next_node_uid;
                state.next_node_uid += 1;
                Some(uid)
            }
            Err(_) => None,
        };
        if let Some(node) = state.nodes.get_mut(&pod) {
            node.bootstrap.end_time = Some(now());
            match outcome {
                Ok(()) => {
                    node.uid = uid;
                    node.bootstrap.state = "completed";
                }
                Err((code, details)) => {
                    node.bootstrap.state = "error";
                    node.bootstrap.error_code = Some(code.to_string());
                    node.bootstrap.error_details = Some(details);
                }
            }
        }
    });
    Ok(())
}

type Failure = (&'static str, String);

fn finish_create(cluster: &Cluster, request: &BootstrapRequest) -> Result<(), Failure> {
    let mut state = cluster.lock();
    if let Some(fqdn) = &state.fqdn {
        return Err((
            "config_error",
            format!("cluster {fqdn} was already created by another node; use join_cluster"),
        ));
    }
    state.fqdn = request.cluster_name.clone();
    state.credentials = Some(Credentials {
        username: request.username.clone(),
        passwords: vec![request.password.clone()],
    });
    state.created_time = Some(now());
    state.license = request.license.clone();
    Ok(())
}

fn finish_join(shared: &Shared, cluster: &Cluster, request: &BootstrapRequest) -> Result<(), Failure> {
    let state = cluster.lock();
    let reachable = request.cluster_nodes.iter().any(|address| {
        let ip = address.parse::<IpAddr>().ok().or_else(|| shared.names.lookup(address));
        state
            .nodes
            .values()
            .any(|node| node.joined() && (ip == Some(node.ip) || node.addr == *address))
    });
    if !reachable {
        return Err((
            "connect_error",
            format!("unable to connect to any cluster node at {:?}", request.cluster_nodes),
        ));
    }
    match &state.credentials {
        Some(credentials) if credentials.accepts(&request.username, &request.password) => Ok(()),
        _ => Err(("access_denied", "the cluster refused the given credentials".to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(name: &str) -> Value {
        json!({"action": "create_cluster", "cluster": {"name": name},
               "credentials": {"username": "admin@example.com", "password": "p"}})
    }

    #[test]
    fn a_cluster_name_over_64_characters_is_refused() {
        let at_limit = format!("{}.svc.cluster.local", "a".repeat(MAX_CLUSTER_NAME - 18));
        assert_eq!(at_limit.len(), MAX_CLUSTER_NAME);
        assert!(parse("create_cluster", &create(&at_limit)).is_ok());
        let over = format!("b{at_limit}");
        let error = parse("create_cluster", &create(&over)).expect_err("refused");
        assert_eq!(
            (error.status.as_u16(), error.error_code.as_str()),
            (400, "invalid_schema")
        );
        assert!(error.description.contains("65 characters long"), "{error}");
    }
}
