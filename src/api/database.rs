//! `RedisEnterpriseDatabase` (REDB): the official operator's database kind, `app.redislabs.com/v1alpha1`, with
//! the official field names, types and allowed values. Defaults are documented here and applied by validation.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::conditions::Condition;

/// The desired state of a database in a Redis Enterprise cluster.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "app.redislabs.com",
    version = "v1alpha1",
    kind = "RedisEnterpriseDatabase",
    plural = "redisenterprisedatabases",
    shortname = "redb",
    namespaced,
    status = "RedisEnterpriseDatabaseStatus",
    doc = "A database in a Redis Enterprise cluster, with its credentials Secret and Services.",
    printcolumn = r#"{"name":"Version","type":"string","jsonPath":".status.version"}"#,
    printcolumn = r#"{"name":"Port","type":"integer","jsonPath":".status.internalEndpoints[*].port"}"#,
    printcolumn = r#"{"name":"Cluster","type":"string","jsonPath":".status.redisEnterpriseCluster"}"#,
    printcolumn = r#"{"name":"Shards","type":"integer","jsonPath":".status.shardStatuses.active"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.status"}"#,
    printcolumn = r#"{"name":"Spec Status","type":"string","jsonPath":".status.specStatus"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Revision","type":"string","priority":1,"jsonPath":".status.sourceRevision"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RedisEnterpriseDatabaseSpec {
    /// The cluster this database lives in. Default: the one RedisEnterpriseCluster in the database's namespace.
    /// Required when the cluster is in another namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_enterprise_cluster: Option<ClusterReference>,

    /// Memory limit of the database, for example `100MB`, `0.5GB` or `1GB` (units are powers of 1024).
    /// At least `100MB`. Default: `100MB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(B|KB|MB|GB|TB)$"), length(max = 32))]
    pub memory_size: Option<String>,

    /// Number of primary shards. More than one turns sharding on. Default: 1. After creation it can only grow to a
    /// multiple of the current count (the cluster splits shards, it never merges them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 512))]
    pub shard_count: Option<u16>,

    /// Whether every primary shard has a replica. Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication: Option<bool>,

    /// Data persistence: `disabled`, `aofEverySecond`, `aofAlways`, `snapshotEvery1Hour`, `snapshotEvery6Hour` or
    /// `snapshotEvery12Hour`. Default: `disabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<Persistence>,

    /// What happens when the database reaches its memory limit. Default: `volatile-lru`, `allkeys-lru` for memcached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eviction_policy: Option<EvictionPolicy>,

    /// TLS for client connections: `disabled`, `enabled`, or `replica_ssl` (TLS for replication only).
    /// Default: `disabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_mode: Option<TlsMode>,

    /// TCP port of the database, unique in the cluster (10000-19999). Assigned by the cluster when omitted.
    /// Cannot change after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub database_port: Option<i32>,

    /// Port of the database's Kubernetes Services, if it should differ from the database port. Can change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub database_service_port: Option<i32>,

    /// Name of the Secret holding the database password (key `password`) and connection details (keys `port`,
    /// `service_names`, `service_name`). Created with a random password when missing. Default: `redb-<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_secret_name: Option<String>,

    /// Whether the default user (password only, no user name) can connect. When false, no credentials Secret is
    /// created or updated. Default: true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_user: Option<bool>,

    /// Database type: `redis` or `memcached`. Default: `redis`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub database_type: Option<DatabaseType>,

    /// Name of a Secret with the `username` and `password` for memcached SASL authentication. Not supported by
    /// redis-gitops yet: `validate` refuses it (the credentials would not be sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memcached_sasl_secret_name: Option<String>,

    /// Modules enabled on the database. Names as listed by the cluster (`search`, `ReJSON`, `timeseries`, `bf`).
    /// Redis 8 and later enable the bundled modules without this list. Set at creation only: a change is refused
    /// (`ImmutableFieldChanged`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub modules_list: Option<Vec<DatabaseModule>>,

    /// Redis version of the database, for example `7.4` or `8.0`, or `major`/`latest`. Default: the cluster's
    /// default. Raising it upgrades the database. `latest` is the newest version every node supports, `major` the
    /// cluster's default version; a database is never moved back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_version: Option<String>,

    /// Access-control roles and the Redis ACL each one gets on this database. Not supported by redis-gitops yet:
    /// `validate` refuses it (the permissions would not be sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles_permissions: Option<Vec<RolePermission>>,

    /// Whether the database speaks the OSS Cluster API (clients see the shards). Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oss_cluster: Option<bool>,

    /// Which nodes run a proxy for this database. Default: `single` (`all-master-shards` with `ossCluster`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_policy: Option<ProxyPolicy>,

    /// How shards are placed on nodes: `dense` (few nodes) or `sparse` (many nodes). Default: `dense`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards_placement: Option<ShardsPlacement>,

    /// Whether replicas are kept in another rack or zone than their primary. Needs a rack-aware cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack_aware: Option<bool>,

    /// Whether the database speaks RESP3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resp3: Option<bool>,

    /// Names of Secrets holding client certificates (key `cert`) that may connect when TLS is enabled. Not supported
    /// by redis-gitops yet: `validate` refuses it (the certificates would not be sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_authentication_certificates: Option<Vec<String>>,

    /// Alert thresholds of the database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_settings: Option<DatabaseAlertSettings>,

    /// Periodic backup of the database to one storage location, run by the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<DatabaseBackupSpec>,
}

/// A reference to a RedisEnterpriseCluster by name.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ClusterReference {
    /// Name of the RedisEnterpriseCluster.
    pub name: String,
}

/// Data persistence of a database.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[schemars(transform = crate::api::drop_type_description)]
#[serde(rename_all = "camelCase")]
pub enum Persistence {
    /// No persistence.
    Disabled,
    /// Append-only file, fsync every second.
    AofEverySecond,
    /// Append-only file, fsync on every write.
    AofAlways,
    /// A snapshot every hour.
    SnapshotEvery1Hour,
    /// A snapshot every 6 hours.
    SnapshotEvery6Hour,
    /// A snapshot every 12 hours.
    SnapshotEvery12Hour,
}

/// What a database does when it reaches its memory limit.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[schemars(transform = crate::api::drop_type_description)]
#[serde(rename_all = "kebab-case")]
pub enum EvictionPolicy {
    /// Evict the least recently used keys that have an expiry.
    VolatileLru,
    /// Evict the keys with the nearest expiry.
    VolatileTtl,
    /// Evict random keys that have an expiry.
    VolatileRandom,
    /// Evict the least recently used keys.
    AllkeysLru,
    /// Evict random keys.
    AllkeysRandom,
    /// Refuse writes when full.
    Noeviction,
    /// Evict the least frequently used keys that have an expiry.
    VolatileLfu,
    /// Evict the least frequently used keys.
    AllkeysLfu,
}

impl EvictionPolicy {
    /// The policy's name as Redis and the REST API spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VolatileLru => "volatile-lru",
            Self::VolatileTtl => "volatile-ttl",
            Self::VolatileRandom => "volatile-random",
            Self::AllkeysLru => "allkeys-lru",
            Self::AllkeysRandom => "allkeys-random",
            Self::Noeviction => "noeviction",
            Self::VolatileLfu => "volatile-lfu",
            Self::AllkeysLfu => "allkeys-lfu",
        }
    }
}

/// TLS mode of a database.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[schemars(transform = crate::api::drop_type_description)]
pub enum TlsMode {
    /// No TLS.
    #[serde(rename = "disabled")]
    Disabled,
    /// TLS for clients and replication.
    #[serde(rename = "enabled")]
    Enabled,
    /// TLS for replication only.
    #[serde(rename = "replica_ssl")]
    ReplicaSsl,
}

impl TlsMode {
    /// The mode as the REST API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disabled => "disabled",
            Self::Enabled => "enabled",
            Self::ReplicaSsl => "replica_ssl",
        }
    }
}

/// Database type.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[schemars(transform = crate::api::drop_type_description)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseType {
    /// A Redis database.
    Redis,
    /// A memcached-protocol database.
    Memcached,
}

impl DatabaseType {
    /// The type as the REST API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Redis => "redis",
            Self::Memcached => "memcached",
        }
    }
}

/// Which nodes run a proxy for a database.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[schemars(transform = crate::api::drop_type_description)]
#[serde(rename_all = "kebab-case")]
pub enum ProxyPolicy {
    /// One proxy.
    Single,
    /// A proxy on every node that hosts a primary shard.
    AllMasterShards,
    /// A proxy on every node.
    AllNodes,
}

impl ProxyPolicy {
    /// The policy as the REST API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Single => "single",
            Self::AllMasterShards => "all-master-shards",
            Self::AllNodes => "all-nodes",
        }
    }
}

/// How shards are placed on nodes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[schemars(transform = crate::api::drop_type_description)]
#[serde(rename_all = "lowercase")]
pub enum ShardsPlacement {
    /// On as few nodes as possible.
    Dense,
    /// On as many nodes as possible.
    Sparse,
}

impl ShardsPlacement {
    /// The placement as the REST API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dense => "dense",
            Self::Sparse => "sparse",
        }
    }
}

/// A module enabled on a database.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct DatabaseModule {
    /// Module name as the cluster lists it, for example `search` or `ReJSON`.
    pub name: String,
    /// Module version. Deprecated by the official operator: the cluster picks the version that matches the
    /// database's Redis version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Module arguments, passed as the module's configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
}

/// One role's access to a database.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct RolePermission {
    /// Kind of role; only `redis-enterprise` exists. Default: `redis-enterprise`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub role_type: Option<RoleType>,
    /// Name of the role in the cluster (case-sensitive).
    pub role: String,
    /// Name of the Redis ACL in the cluster (case-sensitive).
    pub acl: String,
}

/// Kind of role in a role permission.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[schemars(transform = crate::api::drop_type_description)]
pub enum RoleType {
    /// A Redis Enterprise role.
    #[serde(rename = "redis-enterprise")]
    RedisEnterprise,
}

/// An alert that is on or off, with an optional threshold.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct AlertSetting {
    /// Whether the alert is on.
    pub enabled: bool,
    /// Threshold of the alert, as the cluster expects it (for example a percentage or a latency).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub threshold: Option<String>,
}

/// Alert settings of a database, keyed by the cluster's alert names.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct DatabaseAlertSettings {
    /// A periodic backup is late.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bdb_backup_delayed: Option<AlertSetting>,
    /// Active-Active: syncer lag is high.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bdb_crdt_src_high_syncer_lag: Option<AlertSetting>,
    /// Active-Active: syncer cannot connect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bdb_crdt_src_syncer_connection_error: Option<AlertSetting>,
    /// Active-Active: syncer failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bdb_crdt_src_syncer_general_error: Option<AlertSetting>,
    /// Latency is above the threshold (microseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bdb_high_latency: Option<AlertSetting>,
    /// Throughput is above the threshold (operations per second).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bdb_high_throughput: Option<AlertSetting>,
    /// An action runs for too long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bdb_long_running_action: Option<AlertSetting>,
    /// Throughput is below the threshold (operations per second).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bdb_low_throughput: Option<AlertSetting>,
    /// Dataset RAM overhead is above the threshold (percent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bdb_ram_dataset_overhead: Option<AlertSetting>,
    /// Values in RAM are below the threshold (percent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bdb_ram_values: Option<AlertSetting>,
    /// Replica-of: syncer lag is high.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bdb_replica_src_high_syncer_lag: Option<AlertSetting>,
    /// Replica-of: syncer cannot connect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bdb_replica_src_syncer_connection_error: Option<AlertSetting>,
    /// Values in RAM per shard are below the threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bdb_shard_num_ram_values: Option<AlertSetting>,
    /// Dataset size is above the threshold (percent of the memory limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bdb_size: Option<AlertSetting>,
    /// The proxy certificate expires soon (days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bdb_proxy_cert_expiring_soon: Option<AlertSetting>,
}

/// Periodic backup of a database, run by the cluster, to exactly one storage location.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseBackupSpec {
    /// Seconds between backups: 3600, 14400, 43200 or 86400. Default: 86400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<i64>,
    /// Offset in seconds of the backup time within the interval; only for 12 and 24 hour intervals, and
    /// smaller than the interval. Random when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 86399))]
    pub interval_offset: Option<i64>,
    /// An Amazon S3 (or S3-compatible) bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Backup>,
    /// A Google Cloud Storage bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcs: Option<GcsBackup>,
    /// An Azure Blob Storage container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abs: Option<AbsBackup>,
    /// An SFTP server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sftp: Option<SftpBackup>,
    /// An FTP server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ftp: Option<FtpBackup>,
    /// A directory mounted on every node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount: Option<MountBackup>,
}

/// An S3 backup location.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Backup {
    /// Secret with keys `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`.
    pub aws_secret_name: String,
    /// Bucket name.
    pub bucket_name: String,
    /// Directory inside the bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subdir: Option<String>,
    /// Region of the bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region_name: Option<String>,
}

/// A Google Cloud Storage backup location.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcsBackup {
    /// Secret with keys `CLIENT_ID`, `PRIVATE_KEY`, `PRIVATE_KEY_ID` and `CLIENT_EMAIL`.
    pub gcs_secret_name: String,
    /// Bucket name.
    pub bucket_name: String,
    /// Directory inside the bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subdir: Option<String>,
}

/// An Azure Blob Storage backup location.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AbsBackup {
    /// Secret with keys `AccountName` and `AccountKey`.
    pub abs_secret_name: String,
    /// Container name.
    pub container: String,
    /// Directory inside the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subdir: Option<String>,
}

/// An SFTP backup location.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct SftpBackup {
    /// Secret with key `Key`, the SSH private key.
    #[serde(rename = "sftpSecretName")]
    pub sftp_secret_name: String,
    /// `sftp://[user@]host[:port][/path]`.
    #[schemars(regex(pattern = r"^sftp://"))]
    pub sftp_url: String,
}

/// An FTP backup location.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct FtpBackup {
    /// `ftp[s]://[user@]host[:port]/path`. A password in the URL is refused: it would live in Git.
    #[schemars(regex(pattern = r"^ftps?://"))]
    pub url: String,
}

/// A directory mounted on every node.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct MountBackup {
    /// Absolute path of the mount, writable by the Redis Enterprise user.
    #[schemars(regex(pattern = r"^/"))]
    pub path: String,
}

/// The observed state of a database: the official fields plus conditions.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedisEnterpriseDatabaseStatus {
    /// Database status as the cluster reports it: pending, active, active-change-pending, delete-pending,
    /// import-pending, creation-failed or recovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Whether the spec is valid: `Valid` or `Invalid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_status: Option<String>,
    /// The database's id in the cluster.
    #[serde(default, rename = "databaseUID", skip_serializing_if = "Option::is_none")]
    pub database_uid: Option<String>,
    /// When the database was created in the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_time: Option<String>,
    /// When the database was last changed in the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated: Option<String>,
    /// Number of shards per shard status, for example `active: 2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_statuses: Option<BTreeMap<String, i64>>,
    /// The id of the last action the agent started on the database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_action_uid: Option<String>,
    /// Status of that action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_action_status: Option<String>,
    /// Redis compatibility version of the database, for example `7.4.2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Endpoints inside the Kubernetes cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_endpoints: Option<Vec<InternalEndpoint>>,
    /// Name of the cluster the database lives in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_enterprise_cluster: Option<String>,
    /// Periodic backup status as the cluster reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_info: Option<BackupInfo>,
    /// Conditions: `Ready`, `Reconciling`, `Stalled` and, for databases that came from Git, `Synced`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Option<Vec<Condition>>,
    /// The generation of the spec that was fully sent to the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The Git revision (`<ref>@sha1:<commit>`) this spec came from, when applied by a GitSync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_revision: Option<String>,
    /// A database creation under way: written before the create request and removed once `databaseUID` is
    /// recorded, so an agent that stopped in between recognises the database it created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_creation: Option<PendingCreation>,
}

/// The intent to create a database, recorded before the request that creates it. Every field is optional because
/// server-side apply can leave an empty object behind when the marker is removed; an empty marker means none.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct PendingCreation {
    /// Name of the database being created.
    #[serde(default)]
    pub name: String,
    /// The cluster it is created on (`<namespace>/<name>` of the RedisEnterpriseCluster).
    #[serde(default)]
    pub cluster: String,
    /// A random token naming this attempt (logged when the creation is resumed).
    #[serde(default)]
    pub token: String,
}

/// An endpoint of a database.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct InternalEndpoint {
    /// Host name of the endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Port of the endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
}

/// Periodic backup status of a database.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupInfo {
    /// Why the last backup failed: no-permission, wrong-file-path or general-error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_failure_reason: Option<String>,
    /// Days of backup history kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_history: Option<i64>,
    /// Seconds between backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_interval: Option<i64>,
    /// Offset of the backup time within the interval, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_interval_offset: Option<i64>,
    /// Progress of a running backup, in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_progress_percentage: Option<i64>,
    /// Status of the last backup: exporting, succeeded or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_status: Option<String>,
    /// When the last backup finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup_time: Option<String>,
}

/// Fields of the official operator's REDB that this agent recognises but does not manage yet. A spec that sets
/// one loads, with a warning naming the field, instead of failing or silently dropping it.
pub const UNSUPPORTED_OFFICIAL_FIELDS: &[&str] = &[
    "replicaSources",
    "connectionSettings",
    "isRof",
    "rofRamSize",
    "rofRamRatio",
    "searchOnBigstore",
    "dataInternodeEncryption",
    "shardingEnabled",
    "auditing",
    "activeActive",
    "ossClusterSettings",
    "upgradeSpec",
];

/// Backup storage types of the official operator that this agent recognises but does not manage: Redis
/// Enterprise dropped OpenStack Swift in 6.2.4.
pub const UNSUPPORTED_BACKUP_FIELDS: &[&str] = &["swift"];
