//! Pure builders for a database: from a [`ValidatedDatabase`] to the Redis Enterprise REST request body
//! (reference/redis-enterprise.md §2.4), the minimal update of a live bdb, its Services and its credentials
//! Secret (§3.3), and the objects exactly as the database controller applies them (the Secret in stored form, the
//! EndpointSlices of the Services). Secret values (passwords, backup keys) are parameters, never read from the spec.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Secret, Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Map, Value, json};

use super::labels::{child_labels, child_metadata, owner_reference, stored_secret};
use crate::api::cluster::DatabaseServicePortPolicy;
use crate::api::database::Persistence;
use crate::model::names::{self, DatabaseServiceKind};
use crate::model::{BackupLocation, ValidatedCluster, ValidatedDatabase};

const API_VERSION: &str = "app.redislabs.com/v1alpha1";
const KIND: &str = "RedisEnterpriseDatabase";
/// Annotation on the database Secret: digest of the password the cluster last accepted (see
/// `controllers::database::build`).
pub const PASSWORD_DIGEST_ANNOTATION: &str = "redisgitops.dev/applied-password-digest";
/// Label naming the Service of an EndpointSlice.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Label naming the controller of an EndpointSlice.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`] on the EndpointSlices of the database controller.
pub const MANAGED_BY: &str = "redis-gitops";
/// The port database Services expose with `databaseServicePortPolicy: RedisDefaultPort`.
pub const REDIS_DEFAULT_PORT: u16 = 6379;

/// Values that complete a bdb body at apply time; they come from Secrets and the cluster, never from Git.
#[derive(Clone, Default)]
pub struct RuntimeValues<'a> {
    /// Password of the default user.
    pub password: Option<&'a str>,
    /// Role and ACL uids resolved from their names (`GET /v1/roles`, `GET /v1/redis_acls`), in spec order.
    pub roles_permissions: Option<Vec<(u64, u64)>>,
    /// Credential fields of the backup location, from the backup Secret (for example `access_key_id`).
    pub backup_credentials: BTreeMap<String, String>,
}

impl std::fmt::Debug for RuntimeValues<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeValues")
            .field("password", &self.password.map(|_| "<redacted>"))
            .field("roles_permissions", &self.roles_permissions)
            .field(
                "backup_credentials",
                &self.backup_credentials.keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// The fields of a bdb body filled in at apply time, listed by `render` so a reader knows what is missing.
pub fn runtime_fields(database: &ValidatedDatabase) -> Vec<&'static str> {
    let mut fields = Vec::new();
    if database.default_user {
        fields.push("authentication_redis_pass");
    }
    if !database.roles_permissions.is_empty() {
        fields.push("roles_permissions");
    }
    if let Some(backup) = &database.backup {
        fields.extend(match backup.location {
            BackupLocation::S3 { .. } => &["backup_location.access_key_id", "backup_location.secret_access_key"][..],
            BackupLocation::Gcs { .. } => &[
                "backup_location.client_id",
                "backup_location.client_email",
                "backup_location.private_key_id",
                "backup_location.private_key",
            ][..],
            BackupLocation::Abs { .. } => &["backup_location.account_name", "backup_location.account_key"][..],
            BackupLocation::Sftp { .. } => &["backup_location.key"][..],
            BackupLocation::Ftp { .. } | BackupLocation::Mount { .. } => &[][..],
        });
    }
    fields
}

/// The body of `POST /v1/bdbs` that creates the database.
pub fn build_bdb(database: &ValidatedDatabase, runtime: &RuntimeValues<'_>) -> Map<String, Value> {
    let mut body = Map::new();
    let mut set = |key: &str, value: Value| {
        body.insert(key.to_string(), value);
    };
    set("name", json!(database.name));
    set("type", json!(database.database_type.as_str()));
    set("memory_size", json!(database.memory_size_bytes));
    if let Some(port) = database.port {
        set("port", json!(port));
    }
    set("replication", json!(database.replication));
    set("shards_count", json!(database.shard_count));
    set("sharding", json!(database.shard_count > 1));
    if database.shard_count > 1 {
        // The hashing policy the official docs show: hash tags `{...}` first, else the whole key.
        set(
            "shard_key_regex",
            json!([{"regex": ".*\\{(?<tag>.*)\\}.*"}, {"regex": "(?<tag>.*)"}]),
        );
    }
    match database.persistence {
        Persistence::Disabled => set("data_persistence", json!("disabled")),
        Persistence::AofEverySecond => {
            set("data_persistence", json!("aof"));
            set("aof_policy", json!("appendfsync-every-sec"));
        }
        Persistence::AofAlways => {
            set("data_persistence", json!("aof"));
            set("aof_policy", json!("appendfsync-always"));
        }
        Persistence::SnapshotEvery1Hour | Persistence::SnapshotEvery6Hour | Persistence::SnapshotEvery12Hour => {
            let hours = match database.persistence {
                Persistence::SnapshotEvery1Hour => 1,
                Persistence::SnapshotEvery6Hour => 6,
                _ => 12,
            };
            set("data_persistence", json!("snapshot"));
            set("snapshot_policy", json!([{"secs": hours * 3600, "writes": 1}]));
        }
    }
    set("eviction_policy", json!(database.eviction_policy.as_str()));
    set("tls_mode", json!(database.tls_mode.as_str()));
    set("default_user", json!(database.default_user));
    set("oss_cluster", json!(database.oss_cluster));
    if let Some(policy) = database.proxy_policy {
        set("proxy_policy", json!(policy.as_str()));
    }
    if let Some(placement) = database.shards_placement {
        set("shards_placement", json!(placement.as_str()));
    }
    if let Some(rack_aware) = database.rack_aware {
        set("rack_aware", json!(rack_aware));
    }
    if let Some(resp3) = database.resp3 {
        set("resp3", json!(resp3));
    }
    if let Some(version) = &database.redis_version {
        set("redis_version", json!(version));
    }
    if !database.modules.is_empty() {
        let modules: Vec<Value> = database
            .modules
            .iter()
            .map(|module| {
                let mut entry = Map::new();
                entry.insert("module_name".to_string(), json!(module.name));
                if let Some(version) = &module.version {
                    entry.insert("semantic_version".to_string(), json!(version));
                }
                if let Some(config) = &module.config {
                    entry.insert("module_args".to_string(), json!(config));
                }
                Value::Object(entry)
            })
            .collect();
        set("module_list", Value::Array(modules));
    }
    if let Some(permissions) = &runtime.roles_permissions {
        let permissions: Vec<Value> = permissions
            .iter()
            .map(|(role, acl)| json!({"role_uid": role, "redis_acl_uid": acl}))
            .collect();
        set("roles_permissions", Value::Array(permissions));
    }
    match &database.backup {
        Some(backup) => {
            set("backup", json!(true));
            set("backup_interval", json!(backup.interval));
            if let Some(offset) = backup.interval_offset {
                set("backup_interval_offset", json!(offset));
            }
            set(
                "backup_location",
                backup_location(&backup.location, &runtime.backup_credentials),
            );
        }
        None => set("backup", json!(false)),
    }
    if let Some(password) = runtime.password {
        set("authentication_redis_pass", json!(password));
    }
    body
}

fn backup_location(location: &BackupLocation, credentials: &BTreeMap<String, String>) -> Value {
    let mut value = match location {
        BackupLocation::S3 {
            bucket_name,
            subdir,
            region_name,
            ..
        } => {
            let mut v = json!({"type": "s3", "bucket_name": bucket_name});
            if let Some(subdir) = subdir {
                v["subdir"] = json!(subdir);
            }
            if let Some(region) = region_name {
                v["region_name"] = json!(region);
            }
            v
        }
        BackupLocation::Gcs {
            bucket_name, subdir, ..
        } => {
            let mut v = json!({"type": "gs", "bucket_name": bucket_name});
            if let Some(subdir) = subdir {
                v["subdir"] = json!(subdir);
            }
            v
        }
        BackupLocation::Abs { container, subdir, .. } => {
            let mut v = json!({"type": "abs", "container": container});
            if let Some(subdir) = subdir {
                v["subdir"] = json!(subdir);
            }
            v
        }
        BackupLocation::Sftp { url, .. } => json!({"type": "sftp", "sftp_url": url}),
        BackupLocation::Ftp { url } => json!({"type": "url", "url": url}),
        BackupLocation::Mount { path } => json!({"type": "mount_point", "path": path}),
    };
    if let Value::Object(fields) = &mut value {
        for (key, secret) in credentials {
            fields.insert(key.clone(), json!(secret));
        }
    }
    value
}

/// The body of `POST /v1/bdbs/alerts/{uid}`, when the spec sets alerts.
pub fn build_alert_settings(database: &ValidatedDatabase) -> Option<Value> {
    database
        .alert_settings
        .as_ref()
        .and_then(|settings| serde_json::to_value(settings).ok())
}

/// What it takes to move a live bdb to the desired body.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BdbUpdate {
    /// Fields for one `PUT /v1/bdbs/{uid}`, exactly those that differ. Empty means no write.
    pub changes: Map<String, Value>,
    /// A new Redis version, applied with `POST /v1/bdbs/{uid}/upgrade`.
    pub upgrade_to: Option<String>,
    /// Fields that differ but cannot change after creation (`port`, `type`, `name`).
    pub immutable: Vec<String>,
}

/// Compares a desired bdb body with the live bdb (`GET /v1/bdbs/{uid}`) and returns the minimal update.
/// Fields the live object does not report are treated as different, so they are sent.
pub fn diff_bdb(desired: &Map<String, Value>, live: &Value) -> BdbUpdate {
    let mut update = BdbUpdate::default();
    for (key, wanted) in desired {
        let current = live.get(key);
        match key.as_str() {
            // Write-only: the REST API never returns it; rotation is decided by the caller.
            "authentication_redis_pass" => {}
            "name" | "type" | "port" => {
                if current.is_some_and(|c| c != wanted) {
                    update.immutable.push(key.clone());
                }
            }
            "redis_version" => {
                let current_version = current.and_then(Value::as_str).unwrap_or_default();
                let wanted_version = wanted.as_str().unwrap_or_default();
                let is_policy = matches!(wanted_version, "major" | "latest");
                if !is_policy && !current_version.starts_with(wanted_version) {
                    update.upgrade_to = Some(wanted_version.to_string());
                }
            }
            // Modules are chosen at creation only; a Redis 8 database also carries the bundled modules unasked.
            "module_list" => {
                if modules_differ(wanted, current, live.get("redis_version")) {
                    update.immutable.push(key.clone());
                }
            }
            // The cluster only splits shards: a count may grow to a multiple of the current one, never shrink.
            "shards_count" => {
                if let (Some(wanted_count), Some(current_count)) = (wanted.as_u64(), current.and_then(Value::as_u64))
                    && wanted_count != current_count
                {
                    if shard_change_allowed(current_count, wanted_count) {
                        update.changes.insert(key.clone(), wanted.clone());
                    } else {
                        update.immutable.push(key.clone());
                    }
                } else if current != Some(wanted) {
                    update.changes.insert(key.clone(), wanted.clone());
                }
            }
            "backup_location" => {
                // The live location never shows credentials; compare what is not secret.
                let comparable = |location: Option<&Value>| -> Map<String, Value> {
                    location
                        .and_then(Value::as_object)
                        .map(|fields| {
                            fields
                                .iter()
                                .filter(|(k, _)| !is_credential(k))
                                .map(|(k, v)| (k.clone(), v.clone()))
                                .collect()
                        })
                        .unwrap_or_default()
                };
                if comparable(Some(wanted)) != comparable(current) {
                    update.changes.insert(key.clone(), wanted.clone());
                }
            }
            "data_persistence" => {
                if current != Some(wanted) {
                    update.changes.insert(key.clone(), wanted.clone());
                    // A persistence change carries its policy even when the policy itself is unchanged.
                    for policy in ["aof_policy", "snapshot_policy"] {
                        if let Some(value) = desired.get(policy) {
                            update.changes.insert(policy.to_string(), value.clone());
                        }
                    }
                }
            }
            _ => {
                if current != Some(wanted) {
                    update.changes.insert(key.clone(), wanted.clone());
                }
            }
        }
    }
    update
}

/// The modules Redis 8 databases load without being asked (redis/docs: Redis 8 includes search, JSON, time series
/// and probabilistic data structures).
pub const REDIS_8_BUNDLED_MODULES: [&str; 4] = ["search", "ReJSON", "timeseries", "bf"];

/// Whether a shard count may change from `current` to `wanted`: the cluster only splits every shard the same way,
/// so the new count is a multiple of the current one (2 → 4 or 6, never 4 → 2 or 2 → 3).
pub fn shard_change_allowed(current: u64, wanted: u64) -> bool {
    wanted == current || (current > 0 && wanted > current && wanted.is_multiple_of(current))
}

/// Whether the live `module_list` differs from the desired one by name, not counting the modules a Redis 8
/// database carries bundled unless the spec names them.
pub fn modules_differ(wanted: &Value, current: Option<&Value>, live_version: Option<&Value>) -> bool {
    let names = |modules: Option<&Value>| -> std::collections::BTreeSet<String> {
        modules
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|m| m.get("module_name").and_then(Value::as_str))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let wanted = names(Some(wanted));
    let mut current = names(current);
    let major = live_version
        .and_then(Value::as_str)
        .and_then(|version| version.split('.').next())
        .and_then(|major| major.parse::<u64>().ok());
    if major.is_some_and(|major| major >= 8) {
        current.retain(|name| wanted.contains(name) || !REDIS_8_BUNDLED_MODULES.contains(&name.as_str()));
    }
    wanted != current
}

fn is_credential(key: &str) -> bool {
    matches!(
        key,
        "access_key_id"
            | "secret_access_key"
            | "client_id"
            | "client_email"
            | "private_key_id"
            | "private_key"
            | "account_name"
            | "account_key"
            | "sas_token"
            | "key"
    )
}

/// The port a database's Services expose.
pub fn service_port(database: &ValidatedDatabase, cluster: Option<&ValidatedCluster>, port: u16) -> u16 {
    if let Some(service_port) = database.service_port {
        return service_port;
    }
    match cluster.map_or(DatabaseServicePortPolicy::DatabasePortForward, |c| {
        c.database_service_port_policy
    }) {
        DatabaseServicePortPolicy::DatabasePortForward => port,
        DatabaseServicePortPolicy::RedisDefaultPort => REDIS_DEFAULT_PORT,
    }
}

fn database_labels(
    database: &ValidatedDatabase,
    cluster: Option<&ValidatedCluster>,
    component: &str,
) -> BTreeMap<String, String> {
    let extra = cluster.map(|c| c.extra_labels.clone()).unwrap_or_default();
    let mut labels = child_labels(
        "redis-enterprise-database",
        &database.name,
        cluster.map(|c| c.name.as_str()),
        component,
        &extra,
    );
    labels.insert("redis.io/bdb".to_string(), database.name.clone());
    labels
}

/// The database's Services, as the cluster's `servicesRiggerSpec` says, for the database's `port`. They have no
/// selector: their endpoints follow the node that runs the database's proxy, maintained by the database controller.
pub fn build_database_services(
    database: &ValidatedDatabase,
    cluster: Option<&ValidatedCluster>,
    port: u16,
) -> Vec<Service> {
    let exposed = service_port(database, cluster, port);
    let annotations = cluster.map(|c| c.services_annotations.clone()).unwrap_or_default();
    names::database_services(database, cluster, Some(port))
        .into_iter()
        .map(|(name, kind)| {
            let (type_, cluster_ip) = match kind {
                DatabaseServiceKind::Headless => ("ClusterIP", Some("None".to_string())),
                DatabaseServiceKind::LoadBalancer => ("LoadBalancer", None),
                DatabaseServiceKind::ClusterIp => ("ClusterIP", None),
            };
            Service {
                metadata: child_metadata(
                    &name,
                    &database.namespace,
                    database_labels(database, cluster, "database"),
                    annotations.clone(),
                    owner_reference(API_VERSION, KIND, &database.name, database.uid.as_deref()),
                ),
                spec: Some(ServiceSpec {
                    type_: Some(type_.to_string()),
                    cluster_ip,
                    ports: Some(vec![ServicePort {
                        name: Some("redis".to_string()),
                        port: i32::from(exposed),
                        target_port: Some(IntOrString::Int(i32::from(port))),
                        protocol: Some("TCP".to_string()),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
                ..Default::default()
            }
        })
        .collect()
}

/// The database's credentials Secret with keys `password`, `port`, `service_names` (comma-separated) and
/// `service_name` (the ClusterIP service applications should use). `None` with `defaultUser: false`.
pub fn build_database_secret(
    database: &ValidatedDatabase,
    cluster: Option<&ValidatedCluster>,
    port: Option<u16>,
    password: Option<&str>,
) -> Option<Secret> {
    if !database.default_user {
        return None;
    }
    let services = port
        .map(|port| names::database_service_names(database, cluster, Some(port)))
        .unwrap_or_default();
    let data: BTreeMap<String, String> = [
        ("password".to_string(), password.unwrap_or_default().to_string()),
        ("port".to_string(), port.map(|p| p.to_string()).unwrap_or_default()),
        ("service_names".to_string(), services.join(",")),
        (
            "service_name".to_string(),
            services.first().cloned().unwrap_or_default(),
        ),
    ]
    .into();
    Some(Secret {
        metadata: child_metadata(
            &database.secret_name,
            &database.namespace,
            database_labels(database, cluster, "credentials"),
            BTreeMap::new(),
            owner_reference(API_VERSION, KIND, &database.name, database.uid.as_deref()),
        ),
        type_: Some("Opaque".to_string()),
        string_data: Some(data),
        ..Default::default()
    })
}

/// The credentials Secret exactly as the database controller applies it: [`build_database_secret`] in stored form
/// (`data`), without an owner reference when the Secret is the user's (`owned: false`: it outlives the REDB), and
/// with the [`PASSWORD_DIGEST_ANNOTATION`] when the digest of the password the cluster holds is known.
pub fn build_applied_database_secret(
    database: &ValidatedDatabase,
    cluster: Option<&ValidatedCluster>,
    port: Option<u16>,
    password: Option<&str>,
    owned: bool,
    password_digest: Option<&str>,
) -> Option<Secret> {
    let mut secret = stored_secret(build_database_secret(database, cluster, port, password)?);
    if !owned {
        // The user's Secret outlives the REDB, and its `type` is theirs: it is immutable, so applying `Opaque`
        // to a Secret of another type would be refused.
        secret.metadata.owner_references = None;
        secret.type_ = None;
    }
    if let Some(digest) = password_digest {
        secret
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(PASSWORD_DIGEST_ANNOTATION.to_string(), digest.to_string());
    }
    Some(secret)
}

/// The key of the database Secret that holds the CA certificate (PEM) TLS clients trust (`tlsMode: enabled`):
/// the cluster's proxy certificate, as `kubernetes.io/tls` and cert-manager Secrets name it.
pub const CA_CERTIFICATE_KEY: &str = "ca.crt";

/// `secret` (in stored form) with [`CA_CERTIFICATE_KEY`] set to `ca` when a CA is given.
pub fn with_ca_certificate(mut secret: Secret, ca: Option<&str>) -> Secret {
    if let Some(ca) = ca {
        secret
            .data
            .get_or_insert_with(BTreeMap::new)
            .insert(CA_CERTIFICATE_KEY.to_string(), ByteString(ca.as_bytes().to_vec()));
    }
    secret
}

/// Where a database answers, as its EndpointSlices list it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseEndpoints {
    /// `IPv4` or `IPv6`.
    pub address_type: &'static str,
    /// The addresses, of that family.
    pub addresses: Vec<String>,
    /// The database port.
    pub port: u16,
    /// Whether the database serves (it is active).
    pub ready: bool,
}

/// One EndpointSlice per Service (same name, namespace, labels and owner), listing the database's endpoints, one
/// endpoint per address (the API gives no meaning to addresses after an endpoint's first, and kube-proxy uses only
/// that one).
pub fn build_endpoint_slices(services: &[Service], endpoints: &DatabaseEndpoints) -> Vec<EndpointSlice> {
    services
        .iter()
        .filter_map(|service| {
            let name = service.metadata.name.clone()?;
            let mut labels = service.metadata.labels.clone().unwrap_or_default();
            labels.insert(SERVICE_NAME_LABEL.to_string(), name.clone());
            labels.insert(MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string());
            Some(EndpointSlice {
                metadata: ObjectMeta {
                    name: Some(name),
                    namespace: service.metadata.namespace.clone(),
                    labels: Some(labels),
                    owner_references: service.metadata.owner_references.clone(),
                    ..Default::default()
                },
                address_type: endpoints.address_type.to_string(),
                endpoints: endpoints
                    .addresses
                    .iter()
                    .map(|address| Endpoint {
                        addresses: vec![address.clone()],
                        conditions: Some(EndpointConditions {
                            ready: Some(endpoints.ready),
                            serving: Some(endpoints.ready),
                            terminating: Some(false),
                        }),
                        ..Default::default()
                    })
                    .collect(),
                ports: Some(vec![EndpointPort {
                    name: Some("redis".to_string()),
                    port: Some(i32::from(endpoints.port)),
                    protocol: Some("TCP".to_string()),
                    ..Default::default()
                }]),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::RedisEnterpriseDatabase;
    use crate::manifests::validate::validate_database;

    fn database(spec: &str) -> ValidatedDatabase {
        let yaml = format!(
            "apiVersion: app.redislabs.com/v1alpha1\nkind: RedisEnterpriseDatabase\nmetadata: {{name: cache, namespace: ns}}\nspec: {spec}\n"
        );
        let object: RedisEnterpriseDatabase = serde_saphyr::from_str(&yaml).expect("fixture parses");
        validate_database(&object).expect("fixture is valid").0
    }

    #[test]
    fn the_bdb_body_uses_the_documented_field_names_and_units() {
        let body = build_bdb(
            &database(
                "{memorySize: 1GB, shardCount: 2, replication: true, persistence: snapshotEvery6Hour, modulesList: [{name: search}]}",
            ),
            &RuntimeValues::default(),
        );
        assert_eq!(body["memory_size"], json!(1_073_741_824u64));
        assert_eq!(body["shards_count"], json!(2));
        assert_eq!(body["sharding"], json!(true));
        assert_eq!(body["data_persistence"], json!("snapshot"));
        assert_eq!(body["snapshot_policy"], json!([{"secs": 21_600, "writes": 1}]));
        assert_eq!(body["module_list"], json!([{"module_name": "search"}]));
        assert_eq!(body["eviction_policy"], json!("volatile-lru"));
        assert!(
            !body.contains_key("authentication_redis_pass"),
            "no password without a runtime value"
        );
        assert!(!body.contains_key("port"), "the cluster assigns the port");
    }

    #[test]
    fn runtime_values_complete_the_body_and_never_show_in_debug() {
        let runtime = RuntimeValues {
            password: Some("hunter2"),
            backup_credentials: [("access_key_id".to_string(), "AKIA".to_string())].into(),
            ..Default::default()
        };
        let validated = database("{backup: {s3: {awsSecretName: keys, bucketName: b}}}");
        let body = build_bdb(&validated, &runtime);
        assert_eq!(body["authentication_redis_pass"], json!("hunter2"));
        assert_eq!(body["backup_location"]["access_key_id"], json!("AKIA"));
        let debug = format!("{runtime:?}");
        assert!(!debug.contains("hunter2") && !debug.contains("AKIA"), "{debug}");
    }

    #[test]
    fn the_diff_sends_exactly_the_changed_fields() {
        let desired = build_bdb(
            &database("{memorySize: 200MB, evictionPolicy: allkeys-lru, databasePort: 12000}"),
            &RuntimeValues::default(),
        );
        let mut live = Value::Object(desired.clone());
        live["uid"] = json!(7);
        live["status"] = json!("active");
        assert_eq!(diff_bdb(&desired, &live), BdbUpdate::default(), "no change, no write");

        live["memory_size"] = json!(104_857_600u64);
        live["eviction_policy"] = json!("volatile-lru");
        let update = diff_bdb(&desired, &live);
        assert_eq!(
            Value::Object(update.changes),
            json!({"memory_size": 209_715_200u64, "eviction_policy": "allkeys-lru"})
        );
        assert!(update.immutable.is_empty() && update.upgrade_to.is_none());
    }

    #[test]
    fn the_diff_refuses_port_changes_and_upgrades_through_the_upgrade_call() {
        let desired = build_bdb(
            &database("{databasePort: 12001, redisVersion: \"8.0\"}"),
            &RuntimeValues::default(),
        );
        let mut live = Value::Object(desired.clone());
        live["port"] = json!(12000);
        live["redis_version"] = json!("7.4");
        let update = diff_bdb(&desired, &live);
        assert_eq!(update.immutable, ["port"]);
        assert_eq!(update.upgrade_to.as_deref(), Some("8.0"));
        assert!(update.changes.is_empty());
    }

    #[test]
    fn official_module_and_tls_shapes_map_to_the_bdb_fields() {
        // The shapes of the official docs: `{name: search}` and `{name: ReJSON, version: …}`.
        let body = build_bdb(
            &database(
                "{tlsMode: enabled, modulesList: [{name: search}, {name: ReJSON, version: 2.8.3}, {name: bf, config: 'ERROR_RATE 0.01'}]}",
            ),
            &RuntimeValues::default(),
        );
        assert_eq!(body["tls_mode"], json!("enabled"));
        assert_eq!(
            body["module_list"],
            // Sorted by name, as validation keeps them.
            json!([
                {"module_name": "ReJSON", "semantic_version": "2.8.3"},
                {"module_name": "bf", "module_args": "ERROR_RATE 0.01"},
                {"module_name": "search"},
            ])
        );
    }

    #[test]
    fn the_ca_certificate_goes_into_the_secret_only_when_given() {
        let validated = database("{tlsMode: enabled}");
        let secret = build_applied_database_secret(&validated, None, Some(12000), Some("pw"), true, None)
            .expect("default user has a Secret");
        let without = with_ca_certificate(secret.clone(), None);
        assert!(
            !without
                .data
                .as_ref()
                .is_some_and(|data| data.contains_key(CA_CERTIFICATE_KEY))
        );
        let with = with_ca_certificate(secret, Some("-----BEGIN CERTIFICATE-----\n"));
        assert_eq!(
            with.data.as_ref().and_then(|data| data.get(CA_CERTIFICATE_KEY)),
            Some(&ByteString(b"-----BEGIN CERTIFICATE-----\n".to_vec()))
        );
    }

    #[test]
    fn persistence_changes_carry_their_policy_and_modules_compare_by_name() {
        let desired = build_bdb(
            &database("{persistence: aofAlways, modulesList: [{name: search}, {name: ReJSON}]}"),
            &RuntimeValues::default(),
        );
        let mut live = Value::Object(desired.clone());
        live["data_persistence"] = json!("disabled");
        live["module_list"] = json!([{"module_name": "search", "module_id": "x", "semantic_version": "2.8.4"}, {"module_name": "ReJSON"}]);
        let update = diff_bdb(&desired, &live);
        assert_eq!(
            Value::Object(update.changes),
            json!({"data_persistence": "aof", "aof_policy": "appendfsync-always"})
        );
    }

    #[test]
    fn modules_are_create_only_and_redis_8_bundled_modules_are_no_difference() {
        let desired = build_bdb(&database("{modulesList: [{name: search}]}"), &RuntimeValues::default());
        let mut live = Value::Object(desired.clone());
        live["redis_version"] = json!("8.0");
        live["module_list"] = json!([{"module_name": "search"}, {"module_name": "ReJSON"}, {"module_name": "timeseries"}, {"module_name": "bf"}]);
        assert_eq!(diff_bdb(&desired, &live), BdbUpdate::default());
        live["module_list"] = json!([{"module_name": "ReJSON"}]);
        let update = diff_bdb(&desired, &live);
        assert_eq!(update.immutable, ["module_list"]);
        assert!(update.changes.is_empty(), "module_list is never PUT");
        live["redis_version"] = json!("7.4");
        live["module_list"] = json!([{"module_name": "search"}, {"module_name": "ReJSON"}]);
        assert_eq!(
            diff_bdb(&desired, &live).immutable,
            ["module_list"],
            "7.4 bundles nothing"
        );
    }

    #[test]
    fn memcached_gets_the_clusters_default_eviction_policy() {
        let body = build_bdb(&database("{type: memcached}"), &RuntimeValues::default());
        assert_eq!(body["eviction_policy"], json!("allkeys-lru"));
        let body = build_bdb(
            &database("{type: memcached, evictionPolicy: noeviction}"),
            &RuntimeValues::default(),
        );
        assert_eq!(body["eviction_policy"], json!("noeviction"));
        assert_eq!(
            build_bdb(&database("{}"), &RuntimeValues::default())["eviction_policy"],
            json!("volatile-lru")
        );
    }

    #[test]
    fn shard_counts_only_grow_to_a_multiple() {
        let desired = |count: u64| {
            let mut body = build_bdb(&database("{shardCount: 2}"), &RuntimeValues::default());
            body.insert("shards_count".into(), json!(count));
            body
        };
        let live = |count: u64| {
            let mut live = Value::Object(build_bdb(&database("{shardCount: 2}"), &RuntimeValues::default()));
            live["shards_count"] = json!(count);
            live
        };
        assert_eq!(
            diff_bdb(&desired(4), &live(2)).changes.get("shards_count"),
            Some(&json!(4))
        );
        assert_eq!(
            diff_bdb(&desired(6), &live(2)).changes.get("shards_count"),
            Some(&json!(6))
        );
        for (wanted, current) in [(2, 4), (3, 2), (1, 2)] {
            let update = diff_bdb(&desired(wanted), &live(current));
            assert_eq!(update.immutable, ["shards_count"], "{current} -> {wanted}");
            assert!(!update.changes.contains_key("shards_count"));
        }
        assert!(shard_change_allowed(1, 3) && shard_change_allowed(3, 3) && !shard_change_allowed(0, 2));
    }

    #[test]
    fn services_and_secret_follow_the_cluster_settings() {
        let validated = database("{databasePort: 12000}");
        let services = build_database_services(&validated, None, 12000);
        let names: Vec<_> = services.iter().filter_map(|s| s.metadata.name.clone()).collect();
        assert_eq!(names, ["cache", "cache-headless"]);
        let headless = services[1].spec.as_ref().expect("spec");
        assert_eq!(headless.cluster_ip.as_deref(), Some("None"));
        let secret = build_database_secret(&validated, None, Some(12000), None).expect("default user has a secret");
        assert_eq!(secret.metadata.name.as_deref(), Some("redb-cache"));
        let data = secret.string_data.expect("data");
        assert_eq!(
            (
                data["password"].as_str(),
                data["port"].as_str(),
                data["service_names"].as_str(),
                data["service_name"].as_str()
            ),
            ("", "12000", "cache,cache-headless", "cache")
        );
        assert!(build_database_secret(&database("{defaultUser: false}"), None, Some(12000), None).is_none());
    }
}
