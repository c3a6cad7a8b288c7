//! `RedisEnterpriseCluster` (REC): the official operator's cluster kind, `app.redislabs.com/v1`
//! (storage) and `v1alpha1` (same schema), with the official field names, types and allowed values.
//! Defaults are documented here and applied by validation, not stored in the object.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{LocalObjectReference, PodAntiAffinity, ResourceRequirements, Toleration};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::conditions::Condition;

/// The desired state of a Redis Enterprise cluster: its nodes, images, storage and services.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "app.redislabs.com",
    version = "v1",
    kind = "RedisEnterpriseCluster",
    plural = "redisenterpriseclusters",
    shortname = "rec",
    namespaced,
    status = "RedisEnterpriseClusterStatus",
    doc = "A Redis Enterprise cluster: a StatefulSet of Redis Enterprise nodes bootstrapped into one cluster.",
    printcolumn = r#"{"name":"Nodes","type":"integer","jsonPath":".spec.nodes"}"#,
    printcolumn = r#"{"name":"Version","type":"string","jsonPath":".spec.redisEnterpriseImageSpec.versionTag"}"#,
    printcolumn = r#"{"name":"State","type":"string","jsonPath":".status.state"}"#,
    printcolumn = r#"{"name":"Spec Status","type":"string","jsonPath":".status.specStatus"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Revision","type":"string","priority":1,"jsonPath":".status.sourceRevision"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RedisEnterpriseClusterSpec {
    /// Number of Redis Enterprise nodes (pods). Must be odd and at least 3 so the cluster keeps a quorum.
    /// Raising it adds nodes; lowering it (scale-in) is not supported. At most 99. Default: 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 99))]
    pub nodes: Option<i32>,

    /// Image of the Redis Enterprise node container. Changing `versionTag` upgrades the cluster, one node at
    /// a time. Default: `redislabs/redis` at the version this agent was built for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_enterprise_image_spec: Option<ImageSpec>,

    /// Persistent storage of each node (a PersistentVolumeClaim per pod). Enabled by default; required for
    /// recovering a cluster that lost its quorum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_spec: Option<PersistentSpec>,

    /// CPU and memory of each Redis Enterprise node container. Keep requests equal to limits (Guaranteed QoS).
    /// Default: 2 CPU and 4Gi for both requests and limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_enterprise_node_resources: Option<ResourceRequirements>,

    /// User name of the cluster administrator, stored in the admin-credentials Secret. Default: `demo@redis.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,

    /// The license key itself, inline. Prefer `licenseSecretName`; the two are mutually exclusive. Empty means a
    /// trial license.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,

    /// Name of a Secret in the cluster's namespace whose key `license` holds the license. Mutually exclusive with
    /// `license`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license_secret_name: Option<String>,

    /// Name of the Secret with the administrator's `username` and `password`. If it does not exist, the agent
    /// creates it once with a random password and never regenerates it. Default: the cluster's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_credential_secret_name: Option<String>,

    /// Kubernetes Service type of the Cluster Manager UI service `<name>-ui` (port 8443). Default: ClusterIP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ui_service_type: Option<ServiceType>,

    /// Annotations added to the UI service `<name>-ui`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ui_annotations: Option<BTreeMap<String, String>>,

    /// Settings of the services the agent creates for the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<ClusterServices>,

    /// How database Services are created: which types, how they are named, which port they expose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services_rigger_spec: Option<ServicesRiggerSpec>,

    /// Pod anti-affinity of the nodes. Default: no two nodes of this cluster on one Kubernetes node
    /// (required anti-affinity on `kubernetes.io/hostname`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_anti_affinity: Option<PodAntiAffinity>,

    /// Node selector of the Redis Enterprise pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,

    /// Tolerations of the Redis Enterprise pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_tolerations: Option<Vec<Toleration>>,

    /// Labels added to every object created for this cluster (and to its pods). Changing them does not restart pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_labels: Option<BTreeMap<String, String>>,

    /// Annotations added to the Redis Enterprise pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_annotations: Option<BTreeMap<String, String>>,

    /// Image pull secrets of the Redis Enterprise pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_secrets: Option<Vec<LocalObjectReference>>,

    /// Name of the ServiceAccount of the Redis Enterprise pods. Default: the cluster's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,

    /// Whether the agent creates the ServiceAccount (and its Role and RoleBinding). Default: true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_service_account: Option<bool>,

    /// Priority class of the Redis Enterprise pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,

    /// Grace period for a node pod to shut down cleanly (shards migrate away first). Default: 31536000 (one year),
    /// as the official operator, so that a node is never killed with data on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_enterprise_termination_grace_period_seconds: Option<i64>,

    /// Cluster-wide backup settings (an S3-compatible endpoint for database backups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<ClusterBackupSpec>,
}

/// A container image: repository, tag and pull policy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageSpec {
    /// Image repository, without a tag, for example `redislabs/redis`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// Image tag, for example `8.0.20-44`. For Redis Enterprise this is the software version: changing it upgrades
    /// the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_tag: Option<String>,
    /// Image pull policy. Default: IfNotPresent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<ImagePullPolicy>,
    /// Image digest (`sha256:...`). Used instead of the tag when set; blocks automatic upgrades.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest_hash: Option<String>,
}

/// When the kubelet pulls an image.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[schemars(transform = crate::api::drop_type_description)]
pub enum ImagePullPolicy {
    /// Pull on every start.
    Always,
    /// Never pull; the image must be present on the node.
    Never,
    /// Pull when the image is not on the node.
    IfNotPresent,
}

impl ImagePullPolicy {
    /// The Kubernetes spelling of the policy.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "Always",
            Self::Never => "Never",
            Self::IfNotPresent => "IfNotPresent",
        }
    }
}

/// Persistent storage of each Redis Enterprise node.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PersistentSpec {
    /// Whether each node gets a PersistentVolumeClaim. Default: true. Required for production and recovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Storage class of the claims. Empty means the cluster's default class. Cannot change after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// Size of each claim, a Kubernetes quantity such as `20Gi`. Default: five times the node memory limit.
    /// Can only grow, and only with `enablePersistentVolumeResize`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_size: Option<k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    /// Whether growing `volumeSize` resizes the existing claims. Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_persistent_volume_resize: Option<bool>,
}

/// A Kubernetes Service type.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[schemars(transform = crate::api::drop_type_description)]
pub enum ServiceType {
    /// A virtual IP inside the cluster.
    ClusterIP,
    /// A port on every Kubernetes node.
    NodePort,
    /// An external load balancer.
    LoadBalancer,
    /// A DNS alias.
    ExternalName,
}

impl ServiceType {
    /// The Kubernetes spelling of the type.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClusterIP => "ClusterIP",
            Self::NodePort => "NodePort",
            Self::LoadBalancer => "LoadBalancer",
            Self::ExternalName => "ExternalName",
        }
    }
}

/// Settings of the cluster's own services.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterServices {
    /// The REST API service `<name>` (port 9443).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_service: Option<ApiServiceSpec>,
    /// Annotations added to every service the agent creates for this cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services_annotations: Option<BTreeMap<String, String>>,
}

/// The REST API service.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiServiceSpec {
    /// Kubernetes Service type of the REST API service. Default: ClusterIP.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub service_type: Option<ServiceType>,
}

/// How the Services of each database are created.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServicesRiggerSpec {
    /// Comma-separated list of Service kinds created for every database: `cluster_ip` (`<db>`), `headless`
    /// (`<db>-headless`) and `load_balancer` (`<db>-load-balancer`). Default: `cluster_ip,headless`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(cluster_ip|headless|load_balancer)(,(cluster_ip|headless|load_balancer))*$"))]
    pub database_service_type: Option<String>,
    /// How database Services are named: `bdb_name` (the database's name) or `redis-port` (`redis-<port>`).
    /// Default: `bdb_name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_naming: Option<ServiceNaming>,
    /// Which port database Services expose: `DatabasePortForward` (the database's own port) or
    /// `RedisDefaultPort` (6379). Default: `DatabasePortForward`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_service_port_policy: Option<DatabaseServicePortPolicy>,
}

/// How database Services are named.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[schemars(transform = crate::api::drop_type_description)]
pub enum ServiceNaming {
    /// Services are named after the database.
    #[serde(rename = "bdb_name")]
    BdbName,
    /// Services are named `redis-<port>`.
    #[serde(rename = "redis-port")]
    RedisPort,
}

/// Which port database Services expose.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[schemars(transform = crate::api::drop_type_description)]
pub enum DatabaseServicePortPolicy {
    /// The Service port is the database's port.
    DatabasePortForward,
    /// The Service port is 6379, forwarding to the database's port.
    RedisDefaultPort,
}

/// Cluster-wide backup settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterBackupSpec {
    /// An S3-compatible endpoint used by database backups of type `s3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<ClusterS3BackupSpec>,
}

/// An S3-compatible endpoint for backups.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterS3BackupSpec {
    /// URL of the S3-compatible endpoint, for example `https://minio.storage.svc:9000`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Name of a Secret whose key `cert` holds the CA certificate of the endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificate_secret_name: Option<String>,
}

/// The observed state of a Redis Enterprise cluster: the official fields plus conditions.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedisEnterpriseClusterStatus {
    /// Lifecycle state, as the official operator reports it: PendingCreation, BootstrappingFirstPod,
    /// Initializing, Running, Upgrade, RunningRollingUpdate, Error, Invalid, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Whether the spec is valid: `Valid` or `Invalid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_status: Option<String>,
    /// License details as reported by the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
    pub license_status: Option<serde_json::Map<String, serde_json::Value>>,
    /// Modules available on the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modules: Option<Vec<ClusterModule>>,
    /// Name of the Secret holding the administrator credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_credential_secret_name: Option<String>,
    /// Conditions: `Ready`, `Reconciling`, `Stalled` and, for clusters that came from Git, `Synced`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Option<Vec<Condition>>,
    /// The generation of the spec that the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The Git revision (`<ref>@sha1:<commit>`) this spec came from, when applied by a GitSync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_revision: Option<String>,
}

/// A module available on the cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterModule {
    /// Module name as databases reference it, for example `search`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Human-readable module name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Versions of the module available on the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions: Option<Vec<String>>,
}

/// Fields of the official operator's REC that this agent recognises but does not manage yet. A spec that sets
/// one loads, with a warning naming the field, instead of failing or silently dropping it.
pub const UNSUPPORTED_OFFICIAL_FIELDS: &[&str] = &[
    "redisEnterpriseServicesRiggerImageSpec",
    "bootstrapperImageSpec",
    "bootstrapperResources",
    "redisEnterpriseServicesRiggerResources",
    "clusterCredentialSecretType",
    "clusterCredentialSecretRole",
    "antiAffinityAdditionalTopologyKeys",
    "rackAwarenessNodeLabel",
    "hostAliases",
    "redisEnterprisePodAnnotations",
    "sideContainersSpec",
    "volumes",
    "redisEnterpriseVolumeMounts",
    "redisEnterpriseAdditionalPodSpecAttributes",
    "extraEnvVars",
    "podStartingPolicy",
    "slaveHA",
    "upgradeSpec",
    "redisUpgradePolicy",
    "clusterRecovery",
    "enforceIPv4",
    "redisEnterpriseIPFamily",
    "securityContext",
    "certificates",
    "redisEnterpriseServicesConfiguration",
    "ingressOrRouteSpec",
    "ossClusterSettings",
    "redisOnFlashSpec",
    "usageMeter",
    "ldap",
    "sso",
    "ocspConfiguration",
    "encryptPkeys",
    "dataInternodeEncryption",
    "resp3Default",
    "containerTimezone",
    "auditing",
    "userDefinedModules",
    "usageReportFields",
    "vaultCASecret",
    "activeActive",
    "serviceBrokerSpec",
    "podSecurityPolicyName",
    "flashStorageEngine",
];
