//! The bdb (database) configuration: parsing and validating POST/PUT bodies the way the REST API
//! documents it (reference §4.4, redis/docs `requests/bdbs`), with the documented error codes.
//! A body is laid over the current configuration (or the defaults) and the result is validated as a
//! whole, so a create and a partial update obey the same rules and a rejected body changes nothing.
//!
//! Fields fall in three groups: those the emulator acts on (memory, eviction, persistence, password,
//! port, ...), those it records and echoes without behaviour (placement, proxy policy, connection
//! settings, ...: they have no observable effect on a single-process database), and those whose
//! behaviour it does not implement, which are refused with 501 `not_implemented` naming the field
//! (memcached, replica-of, disabling the default user). `module_list` is checked for shape
//! here and resolved against the cluster's modules by the operations (`missing_module` names what is missing);
//! `tls_mode` is `disabled`, `enabled` (the database's redis-server serves TLS) or `replica_ssl` (TLS only between
//! databases: clients connect in plain text, as in RS). Scheduled backups are accepted with a complete
//! `backup_location` (the keys its type requires, else 406 `invalid_backup_location`); `backup/` checks the rest.

use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::process::Persistence;

/// The eviction policies Redis (and RS) accept.
pub const EVICTION_POLICIES: [&str; 8] = [
    "volatile-lru",
    "volatile-ttl",
    "volatile-random",
    "allkeys-lru",
    "allkeys-random",
    "noeviction",
    "volatile-lfu",
    "allkeys-lfu",
];

/// The `redis_version` values a database may ask for. Every one runs on the installed redis-server.
pub const REDIS_VERSIONS: [&str; 6] = ["6.2", "7.0", "7.2", "7.4", "8.0", "8.2"];

/// The default `redis_version` of a new database.
pub const DEFAULT_REDIS_VERSION: &str = "7.4";

/// The `tls_mode` values of a bdb.
pub const TLS_MODES: [&str; 3] = ["disabled", "enabled", "replica_ssl"];

/// Ports RS reserves for its own services (a database may not use them).
const RESERVED_PORTS: [u16; 11] = [8001, 8002, 8004, 8006, 8070, 8071, 8080, 8443, 9081, 9091, 9443];

/// Read-only bdb fields: the server sets them, a body may not.
const READ_ONLY_FIELDS: [&str; 18] = [
    "status",
    "endpoints",
    "shard_list",
    "action_uid",
    "created_time",
    "last_changed_time",
    "version",
    "export_status",
    "export_progress",
    "export_failure_reason",
    "import_status",
    "import_progress",
    "import_failure_reason",
    "backup_status",
    "backup_progress",
    "backup_failure_reason",
    "last_backup_time",
    "dataset_import_sources",
];

/// Fields accepted, stored and returned as given, without behaviour in the emulator.
const RECORDED_FIELDS: [&str; 21] = [
    "enforce_client_authentication",
    "ssl",
    "proxy_policy",
    "shards_placement",
    "oss_cluster",
    "resp3",
    "data_internode_encryption",
    "authentication_ssl_client_certs",
    "conns",
    "conns_type",
    "conns_global_maximum_dedicated",
    "conns_minimum_dedicated",
    "sched_policy",
    "tags",
    "email_alerts",
    "backup",
    "backup_interval",
    "backup_interval_offset",
    "backup_history",
    "backup_location",
    "bigstore_ram_size",
];

/// A validated database configuration: everything a client can set.
#[derive(Debug, Clone, PartialEq)]
pub struct BdbConfig {
    /// `name`.
    pub name: String,
    /// `memory_size` in bytes (0 = unlimited).
    pub memory_size: u64,
    /// `port` as asked (None: the cluster assigns one).
    pub port: Option<u16>,
    /// `replication`.
    pub replication: bool,
    /// `sharding`.
    pub sharding: bool,
    /// `shards_count`.
    pub shards_count: u64,
    /// `shard_key_regex` as given.
    pub shard_key_regex: Value,
    /// `data_persistence`: disabled, snapshot or aof.
    pub data_persistence: String,
    /// `aof_policy`.
    pub aof_policy: String,
    /// `snapshot_policy` as (secs, writes) rules.
    pub snapshot_policy: Vec<(u64, u64)>,
    /// `eviction_policy`.
    pub eviction_policy: String,
    /// The default user's passwords (`authentication_redis_pass` / `/passwords`).
    pub passwords: Vec<String>,
    /// `redis_version`.
    pub redis_version: String,
    /// `module_list`: objects with `module_name` (string) and optionally `module_args`, `semantic_version`,
    /// `module_id`.
    pub module_list: Vec<Value>,
    /// `tls_mode`: one of [`TLS_MODES`].
    pub tls_mode: String,
    /// Recorded fields (see the module doc).
    pub recorded: Map<String, Value>,
}

/// What the cluster around a database looks like, for checks that depend on it.
#[derive(Debug, Clone, Copy)]
pub struct ClusterFacts {
    /// How many nodes are active.
    pub active_nodes: usize,
}

fn schema_error(field: &str, expected: &str, value: &Value) -> ApiError {
    ApiError::invalid_schema(format!("field '{field}' must be {expected}, got {value}"))
}

fn as_bool(field: &str, value: &Value) -> Result<bool, ApiError> {
    value.as_bool().ok_or_else(|| schema_error(field, "a boolean", value))
}

fn as_u64(field: &str, value: &Value) -> Result<u64, ApiError> {
    value
        .as_u64()
        .ok_or_else(|| schema_error(field, "a non-negative integer", value))
}

fn as_str<'a>(field: &str, value: &'a Value) -> Result<&'a str, ApiError> {
    value.as_str().ok_or_else(|| schema_error(field, "a string", value))
}

/// Whether `name` is a valid database name: letters, digits and hyphens, starting and ending with a
/// letter or digit, at most 63 characters.
pub fn valid_db_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// Checks that a requested port may be used by a database at all (not in use: see the cluster).
pub fn check_port_allowed(port: u16) -> Result<(), ApiError> {
    // 10050 sits inside the database range but is the cluster's; 20000-29999 are the shards' own ports.
    if port == 10_050 || (20_000..=29_999).contains(&port) {
        return Err(ApiError::not_acceptable(
            "port_unavailable",
            format!("port {port} is reserved (10050 and the shard ports 20000-29999)"),
        ));
    }
    if port < 1024 || RESERVED_PORTS.contains(&port) || (3333..=3345).contains(&port) {
        return Err(ApiError::not_acceptable(
            "port_unavailable",
            format!("port {port} is reserved for cluster services"),
        ));
    }
    Ok(())
}

impl BdbConfig {
    /// The defaults of a new database, before the body is laid over them.
    fn defaults_json() -> Map<String, Value> {
        let defaults = json!({
            "type": "redis",
            "replication": false,
            "sharding": false,
            "shards_count": 1,
            "shard_key_regex": [],
            "data_persistence": "disabled",
            "aof_policy": "appendfsync-every-sec",
            "snapshot_policy": [],
            "eviction_policy": "volatile-lru",
            "redis_version": DEFAULT_REDIS_VERSION,
            "default_user": true,
            "module_list": [],
            "tls_mode": "disabled",
            "backup": false,
        });
        match defaults {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    /// This configuration as bdb JSON fields (the inverse of [`Self::from_fields`]).
    pub fn to_json(&self) -> Map<String, Value> {
        let mut map = self.recorded.clone();
        let snapshot: Vec<Value> = self
            .snapshot_policy
            .iter()
            .map(|(secs, writes)| json!({"secs": secs, "writes": writes}))
            .collect();
        let fields = json!({
            "name": self.name,
            "type": "redis",
            "memory_size": self.memory_size,
            "port": self.port.unwrap_or(0),
            "replication": self.replication,
            "sharding": self.sharding,
            "shards_count": self.shards_count,
            "shard_key_regex": self.shard_key_regex,
            "data_persistence": self.data_persistence,
            "aof_policy": self.aof_policy,
            "snapshot_policy": snapshot,
            "eviction_policy": self.eviction_policy,
            "authentication_redis_pass": self.passwords.first().cloned().unwrap_or_default(),
            "default_user": true,
            "redis_version": self.redis_version,
            "module_list": self.module_list,
            "roles_permissions": [],
            "tls_mode": self.tls_mode,
            "rack_aware": false,
            "bigstore": false,
        });
        if let Value::Object(fields) = fields {
            map.extend(fields);
        }
        map
    }

    /// Parses a POST body: the required fields, then the body over the defaults.
    pub fn from_create(body: &Map<String, Value>, facts: ClusterFacts) -> Result<Self, ApiError> {
        if !body.contains_key("name") {
            return Err(ApiError::not_acceptable(
                "missing_db_name",
                "DB name is a required property",
            ));
        }
        if !body.contains_key("memory_size") {
            return Err(ApiError::not_acceptable(
                "missing_memory_size",
                "Memory Size is a required property",
            ));
        }
        let mut fields = Self::defaults_json();
        overlay(&mut fields, body, true)?;
        Self::from_fields(&fields, facts)
    }

    /// Parses a PUT body: the body over the current configuration.
    pub fn updated(&self, body: &Map<String, Value>, facts: ClusterFacts) -> Result<Self, ApiError> {
        check_update_rules(&self.to_json(), body)?;
        let mut fields = self.to_json();
        overlay(&mut fields, body, false)?;
        let mut updated = Self::from_fields(&fields, facts)?;
        // The JSON view shows one password; keep every password unless the body sets one.
        if !body.contains_key("authentication_redis_pass") {
            updated.passwords = self.passwords.clone();
        }
        Ok(updated)
    }

    /// Validates a complete field map.
    fn from_fields(fields: &Map<String, Value>, facts: ClusterFacts) -> Result<Self, ApiError> {
        let get = |field: &str| fields.get(field).unwrap_or(&Value::Null);

        let name = as_str("name", get("name"))?.to_string();
        if !valid_db_name(&name) {
            return Err(ApiError::invalid_schema(format!(
                "invalid database name {name:?}: use letters, digits and hyphens, start and end \
                 with a letter or digit, at most 63 characters"
            )));
        }
        match as_str("type", get("type"))? {
            "redis" => {}
            "memcached" => return Err(ApiError::not_implemented("memcached databases (type)")),
            other => {
                return Err(ApiError::invalid_schema(format!(
                    "field 'type' must be redis or memcached, got {other:?}"
                )));
            }
        }
        let memory_size = as_u64("memory_size", get("memory_size"))?;
        let port_value = match get("port") {
            Value::Null => json!(0),
            value => value.clone(),
        };
        let port = match as_u64("port", &port_value)? {
            0 => None,
            port => {
                let port = u16::try_from(port).map_err(|_| {
                    ApiError::not_acceptable("port_unavailable", format!("port {port} is out of range"))
                })?;
                check_port_allowed(port)?;
                Some(port)
            }
        };

        let replication = as_bool("replication", get("replication"))?;
        if replication && facts.active_nodes < 2 {
            return Err(ApiError::not_acceptable(
                "invalid_replication",
                format!(
                    "not enough nodes to perform replication: {} active node(s), 2 needed",
                    facts.active_nodes
                ),
            ));
        }
        let sharding = as_bool("sharding", get("sharding"))?;
        let shards_count = as_u64("shards_count", get("shards_count"))?;
        if !(1..=512).contains(&shards_count) {
            return Err(ApiError::not_acceptable(
                "invalid_sharding",
                format!("shards_count must be between 1 and 512, got {shards_count}"),
            ));
        }
        if shards_count > 1 && !sharding {
            return Err(ApiError::not_acceptable(
                "invalid_sharding",
                format!("shards_count {shards_count} requires sharding: true"),
            ));
        }
        let shard_key_regex = get("shard_key_regex").clone();
        let regex_ok = shard_key_regex.as_array().is_some_and(|rules| {
            rules
                .iter()
                .all(|rule| rule.get("regex").and_then(Value::as_str).is_some())
        });
        if !regex_ok {
            return Err(schema_error(
                "shard_key_regex",
                "a list of {\"regex\": string}",
                &shard_key_regex,
            ));
        }

        let persistence_error = |detail: String| ApiError::not_acceptable("invalid_data_persistence", detail);
        let data_persistence = as_str("data_persistence", get("data_persistence"))?.to_string();
        if !["disabled", "snapshot", "aof"].contains(&data_persistence.as_str()) {
            return Err(persistence_error(format!(
                "data_persistence must be disabled, snapshot or aof, got {data_persistence:?}"
            )));
        }
        let aof_policy = as_str("aof_policy", get("aof_policy"))?.to_string();
        if !["appendfsync-every-sec", "appendfsync-always"].contains(&aof_policy.as_str()) {
            return Err(persistence_error(format!(
                "aof_policy must be appendfsync-every-sec or appendfsync-always, got {aof_policy:?}"
            )));
        }
        let mut snapshot_policy = Vec::new();
        let rules = get("snapshot_policy")
            .as_array()
            .ok_or_else(|| persistence_error("snapshot_policy must be a list of {secs, writes}".to_string()))?;
        for rule in rules {
            let secs = rule.get("secs").and_then(Value::as_u64).filter(|s| *s > 0);
            let writes = rule.get("writes").and_then(Value::as_u64);
            match (secs, writes) {
                (Some(secs), Some(writes)) => snapshot_policy.push((secs, writes)),
                _ => {
                    return Err(persistence_error(format!(
                        "invalid snapshot_policy rule {rule}: secs must be > 0 and writes >= 0"
                    )));
                }
            }
        }
        if data_persistence == "snapshot" && snapshot_policy.is_empty() {
            snapshot_policy.push((3600, 1));
        }

        let eviction_policy = as_str("eviction_policy", get("eviction_policy"))?.to_string();
        if !EVICTION_POLICIES.contains(&eviction_policy.as_str()) {
            return Err(ApiError::invalid_schema(format!(
                "invalid eviction_policy {eviction_policy:?}; valid policies: {}",
                EVICTION_POLICIES.join(", ")
            )));
        }

        let passwords = match get("authentication_redis_pass") {
            Value::Null => Vec::new(),
            value => match as_str("authentication_redis_pass", value)? {
                "" => Vec::new(),
                password => vec![password.to_string()],
            },
        };
        if !as_bool("default_user", get("default_user"))? {
            return Err(ApiError::not_implemented(
                "databases without the default user (default_user: false)",
            ));
        }

        let redis_version = as_str("redis_version", get("redis_version"))?.to_string();
        if !REDIS_VERSIONS.contains(&redis_version.as_str()) {
            return Err(ApiError::not_acceptable(
                "invalid_version",
                format!(
                    "redis_version {redis_version:?} is not available; available: {}",
                    REDIS_VERSIONS.join(", ")
                ),
            ));
        }

        // The documented 406 for an incomplete location of a periodic backup comes before the emulator's own checks.
        check_backup_location(fields)?;
        check_unimplemented(fields)?;
        let module_list = parse_module_list(get("module_list"))?;
        let tls_mode = as_str("tls_mode", get("tls_mode"))?.to_string();
        if !TLS_MODES.contains(&tls_mode.as_str()) {
            return Err(ApiError::invalid_schema(format!(
                "field 'tls_mode' must be one of {}, got {tls_mode:?}",
                TLS_MODES.join(", ")
            )));
        }

        let mut recorded: Map<String, Value> = fields
            .iter()
            .filter(|(key, _)| RECORDED_FIELDS.contains(&key.as_str()))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        // Periodic backup is accepted (with a complete location) and shown as set.
        if fields.get("backup").is_some_and(|backup| backup == true) {
            recorded.insert("backup".to_string(), json!(true));
        }
        Ok(Self {
            name,
            memory_size,
            port,
            replication,
            sharding,
            shards_count,
            shard_key_regex,
            data_persistence,
            aof_policy,
            snapshot_policy,
            eviction_policy,
            passwords,
            redis_version,
            module_list,
            tls_mode,
            recorded,
        })
    }

    /// Whether the database's clients connect over TLS (`tls_mode: enabled`).
    pub fn client_tls(&self) -> bool {
        self.tls_mode == "enabled"
    }

    /// The persistence mode redis-server runs with.
    pub fn persistence(&self) -> Persistence {
        match self.data_persistence.as_str() {
            "aof" => Persistence::Aof {
                always: self.aof_policy == "appendfsync-always",
            },
            "snapshot" => Persistence::Snapshot(self.snapshot_policy.clone()),
            _ => Persistence::Disabled,
        }
    }
}

/// `module_list`: a list of objects, each with a string `module_name` and, if given, a string `module_args`.
fn parse_module_list(value: &Value) -> Result<Vec<Value>, ApiError> {
    let expected = "a list of {\"module_name\": string, \"module_args\": string}";
    let modules = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Array(modules) => modules,
        other => return Err(schema_error("module_list", expected, other)),
    };
    for module in modules {
        let name_ok = module
            .get("module_name")
            .and_then(Value::as_str)
            .is_some_and(|name| !name.is_empty());
        let args_ok = module
            .get("module_args")
            .is_none_or(|args| args.is_string() || args.is_null());
        if !module.is_object() || !name_ok || !args_ok {
            return Err(schema_error("module_list", expected, module));
        }
    }
    Ok(modules.clone())
}

/// What a PUT may not change, as the cluster refuses it: the shard count only grows to a multiple of the current
/// one (shards are split, never merged), and the module list is set at creation only.
fn check_update_rules(current: &Map<String, Value>, body: &Map<String, Value>) -> Result<(), ApiError> {
    if let (Some(now), Some(wanted)) = (
        current.get("shards_count").and_then(Value::as_u64),
        body.get("shards_count").and_then(Value::as_u64),
    ) && wanted != now
        && (wanted < now || now == 0 || !wanted.is_multiple_of(now))
    {
        return Err(ApiError::not_acceptable(
            "invalid_sharding",
            format!(
                "shards_count can only grow to a multiple of the current {now} shards (shards are split, not \
                 merged), got {wanted}"
            ),
        ));
    }
    if let Some(wanted) = body.get("module_list") {
        let names = |modules: Option<&Value>| -> std::collections::BTreeSet<String> {
            modules
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|module| module.get("module_name").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        };
        if names(Some(wanted)) != names(current.get("module_list")) {
            return Err(ApiError::invalid_schema(
                "module_list can only be set when the database is created; use POST /v1/bdbs/{uid}/upgrade to \
                 change the modules of an existing database",
            ));
        }
    }
    Ok(())
}

/// The keys each `backup_location` type needs (redis/docs `objects/bdb/backup_location`), besides `type`.
pub fn required_location_keys(location_type: &str) -> Option<&'static [&'static str]> {
    Some(match location_type {
        "s3" => &["bucket_name", "access_key_id", "secret_access_key"],
        "gs" => &[
            "bucket_name",
            "client_id",
            "client_email",
            "private_key_id",
            "private_key",
        ],
        "abs" => &["container", "account_name"],
        "sftp" => &["sftp_url"],
        "url" => &["url"],
        "mount_point" => &["path"],
        _ => return None,
    })
}

/// A `backup: true` database needs a complete `backup_location`: its type, and every key that type requires
/// (an Azure location also needs `account_key` or `sas_token`, not both). Refused with 406 `invalid_backup_location`
/// naming the missing key; the docs list no code for this case, so the code is the emulator's choice.
fn check_backup_location(fields: &Map<String, Value>) -> Result<(), ApiError> {
    if !fields.get("backup").is_some_and(|backup| backup == true) {
        return Ok(());
    }
    let refuse = |detail: String| ApiError::not_acceptable("invalid_backup_location", detail);
    let location = fields
        .get("backup_location")
        .and_then(Value::as_object)
        .ok_or_else(|| refuse("backup is enabled but backup_location is missing".to_string()))?;
    let location_type = location.get("type").and_then(Value::as_str).unwrap_or_default();
    let required = required_location_keys(location_type).ok_or_else(|| {
        refuse(format!(
            "backup_location type {location_type:?} is unknown; use url, sftp, s3, gs, abs or mount_point"
        ))
    })?;
    let present = |key: &str| location.get(key).and_then(Value::as_str).is_some_and(|v| !v.is_empty());
    if let Some(missing) = required.iter().find(|key| !present(key)) {
        return Err(refuse(format!(
            "backup_location of type {location_type} needs {missing}"
        )));
    }
    if location_type == "abs" && present("account_key") == present("sas_token") {
        return Err(refuse(
            "backup_location of type abs needs exactly one of account_key and sas_token".to_string(),
        ));
    }
    Ok(())
}

/// Fields with values whose behaviour the emulator does not implement.
fn check_unimplemented(fields: &Map<String, Value>) -> Result<(), ApiError> {
    if fields
        .get("roles_permissions")
        .and_then(Value::as_array)
        .is_some_and(|roles| !roles.is_empty())
    {
        return Err(ApiError::not_implemented(
            "role-based database access (roles_permissions)",
        ));
    }
    super::backup::check_backup_fields(fields)?;
    if fields.get("rack_aware").is_some_and(|rack| rack == true) {
        return Err(ApiError::not_acceptable(
            "not_rack_aware",
            "the cluster is not rack-aware and a rack-aware database was requested",
        ));
    }
    if fields.get("bigstore").is_some_and(|bigstore| bigstore == true) {
        return Err(ApiError::not_implemented("Redis on Flash databases (bigstore)"));
    }
    if fields
        .get("replica_sources")
        .and_then(Value::as_array)
        .is_some_and(|sources| !sources.is_empty())
        || fields.get("replica_sync").is_some_and(|sync| sync != "disabled")
    {
        return Err(ApiError::not_implemented("Replica Of (replica_sources / replica_sync)"));
    }
    Ok(())
}

/// Lays `body` over `fields`, refusing unknown and read-only fields.
fn overlay(fields: &mut Map<String, Value>, body: &Map<String, Value>, create: bool) -> Result<(), ApiError> {
    const ACTED_ON: [&str; 24] = [
        "name",
        "type",
        "memory_size",
        "port",
        "replication",
        "sharding",
        "shards_count",
        "shard_key_regex",
        "data_persistence",
        "aof_policy",
        "snapshot_policy",
        "eviction_policy",
        "authentication_redis_pass",
        "default_user",
        "redis_version",
        "module_list",
        "tls_mode",
        "backup",
        "rack_aware",
        "bigstore",
        "replica_sources",
        "replica_sync",
        "roles_permissions",
        "uid",
    ];
    for (key, value) in body {
        if READ_ONLY_FIELDS.contains(&key.as_str()) {
            return Err(ApiError::invalid_schema(format!("field '{key}' is read-only")));
        }
        if key == "uid" {
            if create {
                continue;
            }
            return Err(ApiError::invalid_schema("field 'uid' cannot be changed"));
        }
        if !ACTED_ON.contains(&key.as_str()) && !RECORDED_FIELDS.contains(&key.as_str()) {
            return Err(ApiError::invalid_schema(format!(
                "unknown field '{key}' (or one the emulator does not implement)"
            )));
        }
        fields.insert(key.clone(), value.clone());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("test body must be an object, got {other}"),
        }
    }

    const THREE: ClusterFacts = ClusterFacts { active_nodes: 3 };

    fn code(result: Result<BdbConfig, ApiError>) -> (u16, String) {
        match result {
            Ok(config) => panic!("expected an error, got {config:?}"),
            Err(error) => (error.status.as_u16(), error.error_code),
        }
    }

    #[test]
    fn create_applies_defaults() {
        let config =
            BdbConfig::from_create(&body(json!({"name": "db1", "memory_size": 104857600})), THREE).expect("valid body");
        assert_eq!(config.eviction_policy, "volatile-lru");
        assert_eq!(config.data_persistence, "disabled");
        assert_eq!(config.shards_count, 1);
        assert_eq!(config.port, None);
        assert_eq!(config.persistence(), Persistence::Disabled);
    }

    #[test]
    fn create_errors_have_documented_codes() {
        let cases = [
            (json!({"memory_size": 1}), 406, "missing_db_name"),
            (json!({"name": "a"}), 406, "missing_memory_size"),
            (
                json!({"name": "a", "memory_size": 1, "eviction_policy": "illegal"}),
                400,
                "invalid_schema",
            ),
            (
                json!({"name": "a", "memory_size": 1, "data_persistence": "rdb"}),
                406,
                "invalid_data_persistence",
            ),
            (
                json!({"name": "a", "memory_size": 1, "shards_count": 0}),
                406,
                "invalid_sharding",
            ),
            (
                json!({"name": "a", "memory_size": 1, "shards_count": 513, "sharding": true}),
                406,
                "invalid_sharding",
            ),
            (
                json!({"name": "a", "memory_size": 1, "shards_count": 2}),
                406,
                "invalid_sharding",
            ),
            (
                json!({"name": "a", "memory_size": 1, "port": 9443}),
                406,
                "port_unavailable",
            ),
            (
                json!({"name": "a", "memory_size": 1, "redis_version": "5.0"}),
                406,
                "invalid_version",
            ),
            (
                json!({"name": "a", "memory_size": 1, "module_list": [{"name": "search"}]}),
                400,
                "invalid_schema",
            ),
            (json!({"name": "a", "memory_size": "big"}), 400, "invalid_schema"),
            (json!({"name": "-a", "memory_size": 1}), 400, "invalid_schema"),
            (
                json!({"name": "a", "memory_size": 1, "colour": "red"}),
                400,
                "invalid_schema",
            ),
            (
                json!({"name": "a", "memory_size": 1, "status": "active"}),
                400,
                "invalid_schema",
            ),
            (
                json!({"name": "a", "memory_size": 1, "tls_mode": "on"}),
                400,
                "invalid_schema",
            ),
        ];
        for (input, status, error_code) in cases {
            let (got_status, got_code) = code(BdbConfig::from_create(&body(input.clone()), THREE));
            assert_eq!((got_status, got_code.as_str()), (status, error_code), "body {input}");
        }
    }

    #[test]
    fn reserved_ports_are_refused() {
        for port in [10_050, 20_000, 25_000, 29_999] {
            let input = body(json!({"name": "a", "memory_size": 1, "port": port}));
            assert_eq!(
                code(BdbConfig::from_create(&input, THREE)),
                (406, "port_unavailable".to_string()),
                "port {port}"
            );
        }
        for port in [10_049, 10_051, 19_999, 30_000] {
            let input = body(json!({"name": "a", "memory_size": 1, "port": port}));
            assert!(BdbConfig::from_create(&input, THREE).is_ok(), "port {port}");
        }
    }

    #[test]
    fn a_backup_location_needs_the_keys_of_its_type() {
        let with = |location: Value| {
            body(
                json!({"name": "a", "memory_size": 1, "backup": true, "backup_interval": 3600,
                        "backup_location": location}),
            )
        };
        for (location, message) in [
            (json!({"type": "s3", "bucket_name": "b"}), "needs access_key_id"),
            (
                json!({"type": "s3", "bucket_name": "b", "access_key_id": "id"}),
                "needs secret_access_key",
            ),
            (
                json!({"type": "gs", "bucket_name": "b", "client_id": "c"}),
                "needs client_email",
            ),
            (
                json!({"type": "abs", "container": "c", "account_name": "n"}),
                "exactly one of account_key and sas_token",
            ),
            (json!({"type": "sftp"}), "needs sftp_url"),
            (json!({"type": "swift", "container": "c"}), "type \"swift\" is unknown"),
        ] {
            let error = BdbConfig::from_create(&with(location.clone()), THREE).expect_err("refused");
            assert_eq!(
                (error.status.as_u16(), error.error_code.as_str()),
                (406, "invalid_backup_location")
            );
            assert!(error.description.contains(message), "{location}: {error}");
        }
        let missing = body(json!({"name": "a", "memory_size": 1, "backup": true, "backup_interval": 3600}));
        assert_eq!(
            code(BdbConfig::from_create(&missing, THREE)).1,
            "invalid_backup_location"
        );
        let complete = json!({"type": "s3", "bucket_name": "b", "access_key_id": "id", "secret_access_key": "k"});
        let config = BdbConfig::from_create(&with(complete.clone()), THREE).expect("accepted");
        assert_eq!(config.to_json()["backup_location"], complete);
        assert!(BdbConfig::from_create(&with(json!({"type": "mount_point", "path": "/b"})), THREE).is_ok());
    }

    #[test]
    fn shards_only_grow_to_a_multiple_and_modules_are_create_only() {
        let two = BdbConfig::from_create(
            &body(json!({"name": "a", "memory_size": 1, "sharding": true, "shards_count": 2})),
            THREE,
        )
        .expect("created");
        for wanted in [1, 3, 5] {
            let error = two
                .updated(&body(json!({"shards_count": wanted})), THREE)
                .expect_err("refused");
            assert_eq!(
                (error.status.as_u16(), error.error_code.as_str()),
                (406, "invalid_sharding"),
                "{wanted}"
            );
        }
        assert_eq!(
            two.updated(&body(json!({"shards_count": 4})), THREE)
                .expect("split")
                .shards_count,
            4
        );
        let error = two
            .updated(&body(json!({"module_list": [{"module_name": "search"}]})), THREE)
            .expect_err("refused");
        assert_eq!(error.status.as_u16(), 400);
        assert!(
            error.description.contains("only be set when the database is created"),
            "{error}"
        );
        assert!(
            two.updated(&body(json!({"module_list": []})), THREE).is_ok(),
            "unchanged list"
        );
    }

    #[test]
    fn replication_needs_two_nodes() {
        let input = body(json!({"name": "a", "memory_size": 1, "replication": true}));
        let (status, error_code) = code(BdbConfig::from_create(&input, ClusterFacts { active_nodes: 1 }));
        assert_eq!((status, error_code.as_str()), (406, "invalid_replication"));
        assert!(BdbConfig::from_create(&input, THREE).is_ok());
    }

    #[test]
    fn update_is_partial_and_keeps_other_fields() {
        let config = BdbConfig::from_create(
            &body(json!({"name": "a", "memory_size": 1, "authentication_redis_pass": "pw",
                         "proxy_policy": "single"})),
            THREE,
        )
        .expect("valid body");
        let updated = config
            .updated(
                &body(json!({"eviction_policy": "allkeys-lru", "data_persistence": "aof",
                             "aof_policy": "appendfsync-always"})),
                THREE,
            )
            .expect("valid update");
        assert_eq!(updated.eviction_policy, "allkeys-lru");
        assert_eq!(updated.passwords, vec!["pw".to_string()]);
        assert_eq!(updated.persistence(), Persistence::Aof { always: true });
        assert_eq!(updated.recorded.get("proxy_policy"), Some(&json!("single")));
        let (status, error_code) = code(config.updated(&body(json!({"uid": 7})), THREE));
        assert_eq!((status, error_code.as_str()), (400, "invalid_schema"));
    }

    #[test]
    fn modules_and_tls_mode_are_kept_and_echoed() {
        let config = BdbConfig::from_create(
            &body(json!({"name": "a", "memory_size": 1, "tls_mode": "enabled",
                         "module_list": [{"module_name": "search", "module_args": ""}, {"module_name": "ReJSON"}]})),
            THREE,
        )
        .expect("valid body");
        assert!(config.client_tls());
        let names: Vec<&str> = config
            .module_list
            .iter()
            .filter_map(|m| m["module_name"].as_str())
            .collect();
        assert_eq!(names, ["search", "ReJSON"]);
        let view = config.to_json();
        assert_eq!(view["tls_mode"], "enabled");
        assert_eq!(view["module_list"][1]["module_name"], "ReJSON");
        let replica_only = config
            .updated(&body(json!({"tls_mode": "replica_ssl"})), THREE)
            .expect("valid");
        assert!(!replica_only.client_tls());
    }

    #[test]
    fn snapshot_without_policy_gets_hourly_rule() {
        let config = BdbConfig::from_create(
            &body(json!({"name": "a", "memory_size": 1, "data_persistence": "snapshot"})),
            THREE,
        )
        .expect("valid body");
        assert_eq!(config.persistence(), Persistence::Snapshot(vec![(3600, 1)]));
    }
}
