//! The REST API's objects, with the documented field names (reference/redis-enterprise.md §4). Only the fields
//! the agent reads are typed; everything else is kept in `other`, so nothing the cluster reports is lost.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::states::{ActionStatus, BootstrapState, DatabaseStatus, NodeStatus};

/// `GET /v1/bootstrap`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct Bootstrap {
    /// Where the node's bootstrap stands.
    #[serde(default)]
    pub bootstrap_status: BootstrapStatus,
    /// Everything else the node reports.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// The bootstrap state of a node.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct BootstrapStatus {
    /// `idle`, `initiated`, `creating_cluster`, `recovering_cluster`, `joining_cluster`, `error` or `completed`.
    #[serde(default)]
    pub state: BootstrapState,
    /// Error code when `state` is `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// Error details when `state` is `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_details: Option<Value>,
}

/// A node of the cluster (`GET /v1/nodes`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct Node {
    /// The node's id.
    pub uid: u64,
    /// Internal address.
    #[serde(default)]
    pub addr: String,
    /// `active`, `decommissioning`, `down` or `provisioning`.
    #[serde(default)]
    pub status: NodeStatus,
    /// Redis Enterprise version of the node.
    #[serde(default)]
    pub software_version: String,
    /// Everything else the node reports.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// A database (`GET /v1/bdbs/{uid}`). Its `Debug` hides every field that holds a secret (the cluster reports the
/// default user's password as `authentication_redis_pass`, backup locations carry access keys).
#[derive(Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct Bdb {
    /// The database's id.
    pub uid: u64,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// `pending`, `active`, `active-change-pending`, `delete-pending`, `import-pending`, `creation-failed`, `recovery`.
    #[serde(default)]
    pub status: DatabaseStatus,
    /// Port, 0 until assigned.
    #[serde(default)]
    pub port: u16,
    /// The action that the last change started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_uid: Option<String>,
    /// Everything else, as the cluster reports it (used to compute the minimal update).
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl Bdb {
    /// The whole object as JSON, for comparing with a desired body.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

impl std::fmt::Debug for Bdb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bdb")
            .field("uid", &self.uid)
            .field("name", &self.name)
            .field("status", &self.status)
            .field("port", &self.port)
            .field("action_uid", &self.action_uid)
            .field("other", &redact_secrets(&Value::Object(self.other.clone())))
            .finish()
    }
}

/// Whether a REST field name holds a secret: passwords, keys, tokens, certificates' private parts.
fn is_secret_field(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "pass",
        "secret",
        "token",
        "private",
        "access_key",
        "key_id",
        "credential",
        "sas",
    ]
    .iter()
    .any(|marker| name.contains(marker))
}

/// `value` with every secret field's value (at any depth) replaced by `"<redacted>"`.
pub fn redact_secrets(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| {
                    let value = if is_secret_field(key) {
                        Value::String("<redacted>".to_string())
                    } else {
                        redact_secrets(value)
                    };
                    (key.clone(), value)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact_secrets).collect()),
        other => other.clone(),
    }
}

/// An asynchronous action (`GET /v1/actions/{uid}`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct Action {
    /// The action's id.
    pub action_uid: String,
    /// What it does.
    #[serde(default)]
    pub name: String,
    /// `pending`, `active`, `completed` or `failed`.
    #[serde(default)]
    pub status: ActionStatus,
    /// Progress in percent. v1 actions report a number or a string (`"45"`, `"45.5"`); both read as a number, and
    /// a string that is no number reads as 0.
    #[serde(default, deserialize_with = "progress_number")]
    pub progress: f64,
    /// Everything else (for example `error` on failure).
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// Reads an action's `progress` given as a number, a string or null.
fn progress_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::Number(number) => number.as_f64().unwrap_or_default(),
        Value::String(text) => text.trim().trim_end_matches('%').parse().unwrap_or_default(),
        _ => 0.0,
    })
}

impl Action {
    /// The stand-in for an action the cluster no longer knows (`GET /v1/actions/{uid}` answers 404): the cluster
    /// forgets actions some time after they end, so it counts as finished.
    pub fn forgotten(action_uid: &str) -> Self {
        Self {
            action_uid: action_uid.to_string(),
            status: ActionStatus::Completed,
            progress: 100.0,
            ..Self::default()
        }
    }

    /// Whether the action finished, well or not.
    pub fn is_finished(&self) -> bool {
        self.status.is_finished()
    }
}

/// The body of `POST /v1/bootstrap/create_cluster` and `/join_cluster`. Debug never shows the password.
#[derive(Clone, Serialize, PartialEq)]
pub struct BootstrapRequest {
    /// `create_cluster` or `join_cluster`.
    pub action: String,
    /// The cluster: its FQDN name, and for a join the address of a member.
    pub cluster: BootstrapCluster,
    /// The node: its address.
    pub node: BootstrapNode,
    /// The administrator's credentials.
    pub credentials: Credentials,
    /// The license; omitted for a trial.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
}

impl std::fmt::Debug for BootstrapRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootstrapRequest")
            .field("action", &self.action)
            .field("cluster", &self.cluster)
            .field("node", &self.node)
            .field("credentials", &self.credentials)
            .field("license", &self.license.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The cluster part of a bootstrap request.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct BootstrapCluster {
    /// The cluster's FQDN, `<rec>.<ns>.svc.cluster.local`.
    pub name: String,
    /// For a join: addresses of existing members.
    pub nodes: Vec<String>,
}

/// The node part of a bootstrap request.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct BootstrapNode {
    /// The node's identity.
    pub identity: NodeIdentity,
}

/// A node's identity.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct NodeIdentity {
    /// The node's address (the pod IP).
    pub addr: String,
}

/// User name and password. Debug never shows the password.
#[derive(Clone, Serialize, PartialEq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_a_bdb_hides_passwords_and_keys_at_any_depth() {
        let bdb: Bdb = serde_json::from_value(serde_json::json!({
            "uid": 1, "name": "orders", "status": "active", "port": 12000,
            "authentication_redis_pass": "hunter2-db-password",
            "backup_location": {"type": "s3", "access_key_id": "AKIA-ID", "secret_access_key": "s3-secret"},
            "roles_permissions": [{"redis_acl_uid": 1, "password": "nested-pass"}],
            "memory_size": 1073741824
        }))
        .unwrap();
        let debug = format!("{bdb:?}");
        for secret in ["hunter2-db-password", "AKIA-ID", "s3-secret", "nested-pass"] {
            assert!(!debug.contains(secret), "{secret} leaked: {debug}");
        }
        assert!(
            debug.contains("\"authentication_redis_pass\": String(\"<redacted>\")"),
            "{debug}"
        );
        assert!(debug.contains("orders") && debug.contains("1073741824"), "{debug}");
        // Serialization (what is compared with the desired body) keeps the values.
        assert_eq!(bdb.to_value()["authentication_redis_pass"], "hunter2-db-password");
    }

    #[test]
    fn action_progress_reads_as_a_number_from_a_number_or_a_string() {
        for (progress, expected) in [
            (serde_json::json!(45.5), 45.5),
            (serde_json::json!("45"), 45.0),
            (serde_json::json!("100.0"), 100.0),
            (serde_json::json!("n/a"), 0.0),
            (serde_json::json!(null), 0.0),
        ] {
            let action: Action = serde_json::from_value(
                serde_json::json!({"action_uid": "a1", "status": "active", "progress": progress}),
            )
            .unwrap();
            assert_eq!(action.progress, expected, "{progress}");
        }
        let cancelled: Action =
            serde_json::from_value(serde_json::json!({"action_uid": "a2", "status": "cancelled"})).unwrap();
        assert!(cancelled.is_finished() && cancelled.progress == 0.0);
        let forgotten = Action::forgotten("a3");
        assert!(forgotten.is_finished() && forgotten.status == ActionStatus::Completed);
    }

    #[test]
    fn states_are_typed_and_an_unknown_one_is_written_back_as_sent() {
        let bdb: Bdb =
            serde_json::from_value(serde_json::json!({"uid": 2, "status": "active-change-pending"})).unwrap();
        assert_eq!(bdb.status, DatabaseStatus::ActiveChangePending);
        let newer: Bdb = serde_json::from_value(serde_json::json!({"uid": 3, "status": "migrating"})).unwrap();
        assert_eq!(newer.status, DatabaseStatus::Unknown("migrating".into()));
        assert_eq!(newer.to_value()["status"], "migrating");
        let nodes: Vec<Node> = serde_json::from_value(serde_json::json!([
            {"uid": 1, "addr": "10.0.0.1", "status": "active"},
            {"uid": 2, "addr": "10.0.0.2"}
        ]))
        .unwrap();
        assert_eq!(nodes[0].status, NodeStatus::Active);
        assert_eq!(
            nodes[1].status.as_str(),
            "",
            "a missing status reads as empty, as before"
        );
        let bootstrap: Bootstrap = serde_json::from_value(serde_json::json!({
            "bootstrap_status": {"state": "joining_cluster"}, "local_node_info": {"uid": "1"}
        }))
        .unwrap();
        assert_eq!(bootstrap.bootstrap_status.state, BootstrapState::JoiningCluster);
        assert_eq!(
            serde_json::to_value(&bootstrap).unwrap()["bootstrap_status"]["state"],
            "joining_cluster"
        );
    }
}
