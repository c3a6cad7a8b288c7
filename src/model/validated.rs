//! The validated model: what a REC or REDB is once every default is applied and every invariant checked. Plain
//! data, built by `manifests::validate` and read by the builders (`desired`) and the controllers.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{LocalObjectReference, PodAntiAffinity, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::api::cluster::{DatabaseServicePortPolicy, ServiceNaming, ServiceType};
use crate::api::database::{
    DatabaseAlertSettings, DatabaseModule, DatabaseType, EvictionPolicy, Persistence, ProxyPolicy, RolePermission,
    ShardsPlacement, TlsMode,
};

/// A REC with every default applied and every invariant checked.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidatedCluster {
    /// Name of the REC (and of its StatefulSet and API service).
    pub name: String,
    /// Namespace of the REC and of everything created for it.
    pub namespace: String,
    /// UID of the live object, when known; children get an owner reference only then.
    pub uid: Option<String>,
    /// Number of Redis Enterprise nodes.
    pub nodes: i32,
    /// Full image reference of the node container.
    pub image: String,
    /// The Redis Enterprise version (the image tag).
    pub version_tag: String,
    /// Image pull policy, when set.
    pub image_pull_policy: Option<String>,
    /// Resources of the node container.
    pub resources: ResourceRequirements,
    /// Persistent storage per node, when enabled.
    pub persistence: Option<ValidatedPersistence>,
    /// Administrator user name.
    pub username: String,
    /// Name of the admin-credentials Secret.
    pub credentials_secret_name: String,
    /// Name of the license Secret, when set.
    pub license_secret_name: Option<String>,
    /// Type of the UI service.
    pub ui_service_type: ServiceType,
    /// Annotations of the UI service.
    pub ui_annotations: BTreeMap<String, String>,
    /// Type of the REST API service.
    pub api_service_type: ServiceType,
    /// Annotations of every cluster service.
    pub services_annotations: BTreeMap<String, String>,
    /// Which Services each database gets.
    pub database_services: DatabaseServiceKinds,
    /// How database Services are named.
    pub service_naming: ServiceNaming,
    /// Which port database Services expose.
    pub database_service_port_policy: DatabaseServicePortPolicy,
    /// Pod anti-affinity set by the user (the builder applies the default when `None`).
    pub pod_anti_affinity: Option<PodAntiAffinity>,
    /// Node selector of the pods.
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations of the pods.
    pub tolerations: Vec<Toleration>,
    /// Labels added to every object of the cluster.
    pub extra_labels: BTreeMap<String, String>,
    /// Annotations of the pods.
    pub pod_annotations: BTreeMap<String, String>,
    /// Image pull secrets of the pods.
    pub pull_secrets: Vec<LocalObjectReference>,
    /// ServiceAccount of the pods.
    pub service_account_name: String,
    /// Whether the agent creates the ServiceAccount, Role and RoleBinding.
    pub create_service_account: bool,
    /// Priority class of the pods.
    pub priority_class_name: Option<String>,
    /// Termination grace period of the pods.
    pub termination_grace_period_seconds: i64,
}

/// Persistent storage of each node.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidatedPersistence {
    /// Storage class; `None` means the cluster's default.
    pub storage_class_name: Option<String>,
    /// Size of each claim.
    pub volume_size: Quantity,
    /// `enablePersistentVolumeResize`: a larger size grows the existing claims (the StatefulSet is re-created
    /// around its running pods, as its claim templates cannot change in place).
    pub resize_allowed: bool,
}

/// Which Services each database gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DatabaseServiceKinds {
    /// A ClusterIP service `<db>`.
    pub cluster_ip: bool,
    /// A headless service `<db>-headless`.
    pub headless: bool,
    /// A LoadBalancer service `<db>-load-balancer`.
    pub load_balancer: bool,
}

/// A REDB with every default applied and every invariant checked that needs no other object.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidatedDatabase {
    /// Name of the REDB, and of the database in the cluster.
    pub name: String,
    /// Namespace of the REDB, its Secret and its Services.
    pub namespace: String,
    /// UID of the live object, when known.
    pub uid: Option<String>,
    /// The REC named by the spec; `None` means the one REC of the namespace.
    pub cluster_reference: Option<String>,
    /// Memory limit in bytes.
    pub memory_size_bytes: u64,
    /// Number of primary shards.
    pub shard_count: u16,
    /// Whether shards have replicas.
    pub replication: bool,
    /// Data persistence.
    pub persistence: Persistence,
    /// Eviction policy.
    pub eviction_policy: EvictionPolicy,
    /// TLS mode.
    pub tls_mode: TlsMode,
    /// Database port, when fixed by the spec.
    pub port: Option<u16>,
    /// Port of the Services, when it differs from the database port.
    pub service_port: Option<u16>,
    /// Name of the credentials Secret.
    pub secret_name: String,
    /// Whether the default user exists (and the Secret is maintained).
    pub default_user: bool,
    /// Database type.
    pub database_type: DatabaseType,
    /// Secret with memcached SASL credentials.
    pub memcached_sasl_secret_name: Option<String>,
    /// Modules.
    pub modules: Vec<DatabaseModule>,
    /// Redis version, when set.
    pub redis_version: Option<String>,
    /// Role permissions.
    pub roles_permissions: Vec<RolePermission>,
    /// OSS Cluster API.
    pub oss_cluster: bool,
    /// Proxy policy, when set.
    pub proxy_policy: Option<ProxyPolicy>,
    /// Shards placement, when set.
    pub shards_placement: Option<ShardsPlacement>,
    /// Rack awareness, when set.
    pub rack_aware: Option<bool>,
    /// RESP3, when set.
    pub resp3: Option<bool>,
    /// Secrets holding client certificates.
    pub client_certificate_secrets: Vec<String>,
    /// Alert settings, when set.
    pub alert_settings: Option<DatabaseAlertSettings>,
    /// Periodic backup, when set.
    pub backup: Option<ValidatedBackup>,
}

/// Periodic backup of a database to one location.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidatedBackup {
    /// Seconds between backups.
    pub interval: i64,
    /// Offset of the backup time, when set.
    pub interval_offset: Option<i64>,
    /// Where backups go.
    pub location: BackupLocation,
}

/// Where a database's backups go. Credentials stay in the named Secrets.
#[derive(Clone, Debug, PartialEq)]
pub enum BackupLocation {
    /// An S3 bucket.
    S3 {
        /// Secret with the access keys.
        secret_name: String,
        /// Bucket.
        bucket_name: String,
        /// Directory in the bucket.
        subdir: Option<String>,
        /// Region.
        region_name: Option<String>,
    },
    /// A Google Cloud Storage bucket.
    Gcs {
        /// Secret with the service-account key.
        secret_name: String,
        /// Bucket.
        bucket_name: String,
        /// Directory in the bucket.
        subdir: Option<String>,
    },
    /// An Azure Blob Storage container.
    Abs {
        /// Secret with the account name and key.
        secret_name: String,
        /// Container.
        container: String,
        /// Directory in the container.
        subdir: Option<String>,
    },
    /// An SFTP server.
    Sftp {
        /// Secret with the SSH key.
        secret_name: String,
        /// `sftp://` URL without a password.
        url: String,
    },
    /// An FTP server.
    Ftp {
        /// `ftp://` URL without a password.
        url: String,
    },
    /// A directory mounted on every node.
    Mount {
        /// Path of the mount.
        path: String,
    },
}
