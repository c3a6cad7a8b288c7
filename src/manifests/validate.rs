//! Semantic validation of one REC or REDB (no I/O, no other objects): documented invariants and defaults. The
//! result is a `Validated…` struct with every default applied, which is all the builders ever see. Problems are
//! reported by field path; the repository loader turns paths into file locations. Controllers call the same
//! functions on live objects.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::ResourceExt;
use regex::Regex;
use serde_json::Value;

use super::diagnostics::{FieldPath, Severity, quote, truncate};
use super::quantity::{
    MAX_QUANTITY, QuantityError, format_binary_quantity, parse_bounded_quantity, parse_memory_size, parse_quantity,
};
use crate::api::cluster::{DatabaseServicePortPolicy, ServiceNaming, ServiceType};
use crate::api::database::{DatabaseType, EvictionPolicy, Persistence, TlsMode};
use crate::api::{RedisEnterpriseCluster, RedisEnterpriseDatabase};
use crate::model::{
    BackupLocation, DatabaseServiceKinds, ValidatedBackup, ValidatedCluster, ValidatedDatabase, ValidatedPersistence,
    names,
};

/// Redis Enterprise image repository used when the spec names none.
pub const DEFAULT_IMAGE_REPOSITORY: &str = "redislabs/redis";
/// Redis Enterprise version used when the spec names none.
pub const DEFAULT_VERSION_TAG: &str = "8.0.20-44";
/// Administrator user name used when the spec names none (the official default).
pub const DEFAULT_USERNAME: &str = "demo@redis.com";
/// Smallest database the cluster accepts: 100MB.
pub const MINIMUM_MEMORY_BYTES: u64 = 100 << 20;
/// Largest database accepted: 64TB (far above any single Redis Enterprise cluster's memory).
pub const MAXIMUM_MEMORY_BYTES: u64 = 64 << 40;
/// Largest memory of one node accepted (limits and requests): 64Ti.
pub const MAX_NODE_MEMORY_BYTES: f64 = (64u64 << 40) as f64;
/// Most CPUs of one node accepted: 1024.
pub const MAX_NODE_CPUS: f64 = 1024.0;
/// Largest persistent volume per node accepted: 1Pi.
pub const MAX_VOLUME_BYTES: f64 = (1u64 << 50) as f64;
/// Most nodes of one cluster accepted (the CRD says the same): 99.
pub const MAX_NODES: i32 = 99;

/// A problem found by semantic validation, located by field path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issue {
    /// Error or warning.
    pub severity: Severity,
    /// The field at fault.
    pub path: FieldPath,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl Issue {
    fn error(path: FieldPath, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            path,
            message: message.into(),
        }
    }

    fn warning(path: FieldPath, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            path,
            message: message.into(),
        }
    }
}

/// The backup intervals Redis Enterprise schedules: 1, 4, 12 and 24 hours.
pub const BACKUP_INTERVALS: [i64; 4] = [3600, 14_400, 43_200, 86_400];

/// Validates a REC, applying the official defaults.
pub fn validate_cluster(cluster: &RedisEnterpriseCluster) -> Result<(ValidatedCluster, Vec<Issue>), Vec<Issue>> {
    let spec = &cluster.spec;
    let mut issues = validate_metadata(
        cluster.metadata.name.as_deref(),
        cluster.metadata.namespace.as_deref(),
        names::MAX_CLUSTER_NAME,
        "it names the StatefulSet, whose pods carry the label controller-revision-hash=<name>-<10 characters>",
    );
    check_bootstrap_cluster_name(
        cluster.metadata.name.as_deref(),
        cluster.metadata.namespace.as_deref(),
        &mut issues,
    );
    check_object_labels(&cluster.metadata, &mut issues);
    let path = FieldPath::of(&["spec"]);
    for (field, map) in [
        ("extraLabels", spec.extra_labels.as_ref()),
        ("nodeSelector", spec.node_selector.as_ref()),
    ] {
        check_labels(map, &path.key(field), &mut issues);
    }
    for (field, map) in [
        (path.key("podAnnotations"), spec.pod_annotations.as_ref()),
        (path.key("uiAnnotations"), spec.ui_annotations.as_ref()),
        (
            path.key("services").key("servicesAnnotations"),
            spec.services.as_ref().and_then(|s| s.services_annotations.as_ref()),
        ),
    ] {
        check_annotations(map, &field, &mut issues);
    }

    let nodes = spec.nodes.unwrap_or(3);
    if nodes > MAX_NODES {
        issues.push(Issue::error(
            path.key("nodes"),
            format!("{nodes} is above the maximum of {MAX_NODES} nodes; use an odd number from 3 to {MAX_NODES}"),
        ));
    } else if nodes < 3 || nodes % 2 == 0 {
        issues.push(Issue::error(
            path.key("nodes"),
            format!(
                "a cluster of {nodes} node{} cannot keep a quorum; use an odd number of at least 3 (3, 5, 7...) so the \
                 cluster survives losing a minority of nodes",
                if nodes == 1 { "" } else { "s" }
            ),
        ));
    }

    let image_spec = spec.redis_enterprise_image_spec.clone().unwrap_or_default();
    let repository = image_spec
        .repository
        .clone()
        .unwrap_or_else(|| DEFAULT_IMAGE_REPOSITORY.to_string());
    let version_tag = image_spec
        .version_tag
        .clone()
        .unwrap_or_else(|| DEFAULT_VERSION_TAG.to_string());
    let image_path = path.key("redisEnterpriseImageSpec");
    if repository.contains(':') && !repository.contains('/')
        || repository.rsplit('/').next().is_some_and(|last| last.contains(':'))
    {
        issues.push(Issue::error(
            image_path.key("repository"),
            format!(
                "{} includes a tag; put the repository here and the tag in versionTag",
                quote(&repository)
            ),
        ));
    }
    let image = match &image_spec.digest_hash {
        Some(digest) if !digest.starts_with("sha256:") => {
            issues.push(Issue::error(
                image_path.key("digestHash"),
                format!(
                    "{} is not an image digest; write it as sha256:<64 hex digits>",
                    quote(digest)
                ),
            ));
            format!("{repository}:{version_tag}")
        }
        Some(digest) => format!("{repository}@{digest}"),
        None => format!("{repository}:{version_tag}"),
    };

    let resources = validated_resources(spec.redis_enterprise_node_resources.as_ref(), &path, &mut issues);
    let persistence = validated_persistence(spec, &resources, &path, &mut issues);

    if spec.license.as_deref().is_some_and(|l| !l.is_empty()) {
        if spec.license_secret_name.as_deref().is_some_and(|s| !s.is_empty()) {
            issues.push(Issue::error(
                path.key("license"),
                "license and licenseSecretName are mutually exclusive; keep only licenseSecretName",
            ));
        } else {
            issues.push(Issue::warning(
                path.key("license"),
                "the license is stored in Git in plain text; prefer licenseSecretName (a Secret with key license)",
            ));
        }
    }

    let database_services = match spec
        .services_rigger_spec
        .as_ref()
        .and_then(|r| r.database_service_type.as_deref())
    {
        None => DatabaseServiceKinds {
            cluster_ip: true,
            headless: true,
            load_balancer: false,
        },
        Some(list) => {
            let kinds: Vec<&str> = list.split(',').map(str::trim).collect();
            DatabaseServiceKinds {
                cluster_ip: kinds.contains(&"cluster_ip"),
                headless: kinds.contains(&"headless"),
                load_balancer: kinds.contains(&"load_balancer"),
            }
        }
    };

    let name = cluster.name_any();
    let namespace = cluster
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_string());
    let credentials_secret_name = spec
        .cluster_credential_secret_name
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| name.clone());
    let service_account_name = spec
        .service_account_name
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| name.clone());
    for (field, value) in [
        (
            "clusterCredentialSecretName",
            spec.cluster_credential_secret_name.as_deref(),
        ),
        ("licenseSecretName", spec.license_secret_name.as_deref()),
        ("serviceAccountName", spec.service_account_name.as_deref()),
    ] {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            check_object_name(value, &path.key(field), &mut issues);
        }
    }
    if let Some(grace) = spec.redis_enterprise_termination_grace_period_seconds
        && grace < 0
    {
        issues.push(Issue::error(
            path.key("redisEnterpriseTerminationGracePeriodSeconds"),
            format!("{grace} is negative; use 0 or more seconds (the default, one year, lets shards migrate away)"),
        ));
    }
    check_no_plaintext_secrets(&serde_json::to_value(spec).unwrap_or(Value::Null), &path, &mut issues);

    if issues.iter().any(|issue| issue.severity == Severity::Error) {
        return Err(issues);
    }
    let validated = ValidatedCluster {
        name,
        namespace,
        uid: cluster.metadata.uid.clone(),
        nodes,
        image,
        version_tag,
        image_pull_policy: image_spec.image_pull_policy.map(|p| p.as_str().to_string()),
        resources,
        persistence,
        username: spec
            .username
            .clone()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| DEFAULT_USERNAME.to_string()),
        credentials_secret_name,
        license_secret_name: spec.license_secret_name.clone().filter(|s| !s.is_empty()),
        ui_service_type: spec.ui_service_type.unwrap_or(ServiceType::ClusterIP),
        ui_annotations: spec.ui_annotations.clone().unwrap_or_default(),
        api_service_type: spec
            .services
            .as_ref()
            .and_then(|s| s.api_service.as_ref())
            .and_then(|a| a.service_type)
            .unwrap_or(ServiceType::ClusterIP),
        services_annotations: spec
            .services
            .as_ref()
            .and_then(|s| s.services_annotations.clone())
            .unwrap_or_default(),
        database_services,
        service_naming: spec
            .services_rigger_spec
            .as_ref()
            .and_then(|r| r.service_naming)
            .unwrap_or(ServiceNaming::BdbName),
        database_service_port_policy: spec
            .services_rigger_spec
            .as_ref()
            .and_then(|r| r.database_service_port_policy)
            .unwrap_or(DatabaseServicePortPolicy::DatabasePortForward),
        pod_anti_affinity: spec.pod_anti_affinity.clone(),
        node_selector: spec.node_selector.clone().unwrap_or_default(),
        tolerations: spec.pod_tolerations.clone().unwrap_or_default(),
        extra_labels: spec.extra_labels.clone().unwrap_or_default(),
        pod_annotations: spec.pod_annotations.clone().unwrap_or_default(),
        pull_secrets: spec.pull_secrets.clone().unwrap_or_default(),
        service_account_name,
        create_service_account: spec.create_service_account.unwrap_or(true),
        priority_class_name: spec.priority_class_name.clone().filter(|p| !p.is_empty()),
        termination_grace_period_seconds: spec
            .redis_enterprise_termination_grace_period_seconds
            .unwrap_or(31_536_000),
    };
    Ok((validated, issues))
}

fn validated_resources(
    resources: Option<&ResourceRequirements>,
    path: &FieldPath,
    issues: &mut Vec<Issue>,
) -> ResourceRequirements {
    let path = path.key("redisEnterpriseNodeResources");
    let default: BTreeMap<String, Quantity> = [
        ("cpu".to_string(), Quantity("2".into())),
        ("memory".to_string(), Quantity("4Gi".into())),
    ]
    .into();
    let Some(resources) = resources else {
        return ResourceRequirements {
            limits: Some(default.clone()),
            requests: Some(default),
            ..Default::default()
        };
    };
    for (section, values) in [("limits", &resources.limits), ("requests", &resources.requests)] {
        for (resource, quantity) in values.iter().flatten() {
            let (maximum, maximum_text, example) = match resource.as_str() {
                "memory" => (MAX_NODE_MEMORY_BYTES, "64Ti", "4Gi"),
                "cpu" => (MAX_NODE_CPUS, "1024", "2"),
                _ => (MAX_QUANTITY, "9.2e18", "1Gi"),
            };
            let problem = match parse_bounded_quantity(&quantity.0, maximum) {
                Ok(_) => continue,
                Err(QuantityError::TooLarge) => format!(
                    "{} is larger than the maximum of {maximum_text} for {}; use a real node size such as {example}",
                    quote(&quantity.0),
                    truncate(resource)
                ),
                Err(QuantityError::Syntax | QuantityError::Negative) => format!(
                    "{} is not a Kubernetes quantity; write for example 2, 4000m, 4Gi or 512Mi",
                    quote(&quantity.0)
                ),
            };
            issues.push(Issue::error(path.key(section).key(resource), problem));
        }
    }
    let memory = |values: &Option<BTreeMap<String, Quantity>>| {
        values
            .as_ref()
            .and_then(|v| v.get("memory"))
            .and_then(|q| parse_quantity(&q.0))
    };
    if let (Some(request), Some(limit)) = (memory(&resources.requests), memory(&resources.limits))
        && request > limit
    {
        issues.push(Issue::error(
            path.key("requests").key("memory"),
            "the memory request is larger than the limit; keep requests equal to limits for Redis Enterprise nodes",
        ));
    }
    if memory(&resources.limits)
        .or(memory(&resources.requests))
        .is_some_and(|bytes| bytes < (4u64 << 30) as f64)
    {
        issues.push(Issue::warning(
            path.clone(),
            "Redis Enterprise nodes need at least 4Gi of memory; smaller nodes are killed under load",
        ));
    }
    resources.clone()
}

fn validated_persistence(
    spec: &crate::api::RedisEnterpriseClusterSpec,
    resources: &ResourceRequirements,
    path: &FieldPath,
    issues: &mut Vec<Issue>,
) -> Option<ValidatedPersistence> {
    let persistent = spec.persistent_spec.clone().unwrap_or_default();
    let path = path.key("persistentSpec");
    if persistent.enabled == Some(false) {
        issues.push(Issue::warning(
            path.key("enabled"),
            "persistence is off: a cluster that loses its quorum cannot be recovered; enable it for production",
        ));
        return None;
    }
    let volume_size = match persistent.volume_size {
        Some(size) => {
            match parse_bounded_quantity(&size.0, MAX_VOLUME_BYTES) {
                Ok(bytes) if bytes > 0.0 => {}
                Err(QuantityError::TooLarge) => issues.push(Issue::error(
                    path.key("volumeSize"),
                    format!(
                        "{} is larger than the maximum of 1Pi per node; use a real size such as 20Gi",
                        quote(&size.0)
                    ),
                )),
                Ok(_) | Err(QuantityError::Syntax | QuantityError::Negative) => issues.push(Issue::error(
                    path.key("volumeSize"),
                    format!(
                        "{} is not a storage size; write a Kubernetes quantity such as 20Gi",
                        quote(&size.0)
                    ),
                )),
            }
            size
        }
        None => {
            let memory = resources
                .limits
                .as_ref()
                .and_then(|l| l.get("memory"))
                .or_else(|| resources.requests.as_ref().and_then(|r| r.get("memory")))
                .and_then(|q| parse_quantity(&q.0))
                .unwrap_or((4u64 << 30) as f64);
            // Saturating conversion of a finite, positive size in bytes.
            Quantity(format_binary_quantity((memory * 5.0) as u64))
        }
    };
    Some(ValidatedPersistence {
        storage_class_name: persistent.storage_class_name.filter(|s| !s.is_empty()),
        volume_size,
        resize_allowed: persistent.enable_persistent_volume_resize.unwrap_or(false),
    })
}

/// Validates a REDB, applying the official defaults. The cluster reference is resolved by the caller.
pub fn validate_database(database: &RedisEnterpriseDatabase) -> Result<(ValidatedDatabase, Vec<Issue>), Vec<Issue>> {
    let spec = &database.spec;
    let mut issues = validate_metadata(
        database.metadata.name.as_deref(),
        database.metadata.namespace.as_deref(),
        63,
        "it names Services and the database",
    );
    check_object_labels(&database.metadata, &mut issues);
    let path = FieldPath::of(&["spec"]);

    let memory_size_bytes = match spec.memory_size.as_deref() {
        None => MINIMUM_MEMORY_BYTES,
        Some(text) => match parse_memory_size(text) {
            Some(bytes) if bytes < MINIMUM_MEMORY_BYTES => {
                issues.push(Issue::error(
                    path.key("memorySize"),
                    format!("{} is below the minimum of 100MB; use 100MB or more", quote(text)),
                ));
                bytes
            }
            Some(bytes) if bytes > MAXIMUM_MEMORY_BYTES => {
                issues.push(Issue::error(
                    path.key("memorySize"),
                    format!("{} is above the maximum of 64TB; use 64TB or less", quote(text)),
                ));
                bytes
            }
            Some(bytes) => bytes,
            None if text.len() <= 32
                && text
                    .trim_end_matches(char::is_alphabetic)
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b == b'.') =>
            {
                // Well-formed but beyond 2^64 bytes.
                issues.push(Issue::error(
                    path.key("memorySize"),
                    format!("{} is above the maximum of 64TB; use 64TB or less", quote(text)),
                ));
                MINIMUM_MEMORY_BYTES
            }
            None => {
                issues.push(Issue::error(path.key("memorySize"), memory_size_message(text)));
                MINIMUM_MEMORY_BYTES
            }
        },
    };

    let shard_count = spec.shard_count.unwrap_or(1);
    let replication = spec.replication.unwrap_or(false);
    let database_type = spec.database_type.unwrap_or(DatabaseType::Redis);
    let oss_cluster = spec.oss_cluster.unwrap_or(false);
    if oss_cluster && database_type == DatabaseType::Memcached {
        issues.push(Issue::error(
            path.key("ossCluster"),
            "memcached databases cannot use the OSS Cluster API; remove ossCluster",
        ));
    }
    if database_type == DatabaseType::Memcached && spec.modules_list.as_ref().is_some_and(|m| !m.is_empty()) {
        issues.push(Issue::error(
            path.key("modulesList"),
            "memcached databases cannot load modules; remove modulesList",
        ));
    }
    let port = checked_port(spec.database_port, &path.key("databasePort"), &mut issues);
    check_rest_database_fields(spec, &path, &mut issues);
    if let Some(port) = port
        && !(10_000..=19_999).contains(&port)
        && !is_reserved_database_port(port)
    {
        issues.push(Issue::warning(
            path.key("databasePort"),
            format!("port {port} is outside the range Redis Enterprise uses for databases (10000-19999); the cluster may refuse it"),
        ));
    }
    let service_port = checked_port(
        spec.database_service_port,
        &path.key("databaseServicePort"),
        &mut issues,
    );

    let mut modules = spec.modules_list.clone().unwrap_or_default();
    let mut seen = BTreeMap::new();
    for (index, module) in modules.iter().enumerate() {
        if module.name.trim().is_empty() {
            issues.push(Issue::error(
                path.key("modulesList").index(index).key("name"),
                "the module name is empty; name a module the cluster offers, such as search or ReJSON",
            ));
        } else if let Some(first) = seen.insert(module.name.clone(), index) {
            issues.push(Issue::error(
                path.key("modulesList").index(index).key("name"),
                format!(
                    "module {} is listed twice (also at modulesList[{first}]); keep one entry",
                    quote(&module.name)
                ),
            ));
        }
        if module.version.is_some() {
            issues.push(Issue::warning(
                path.key("modulesList").index(index).key("version"),
                "module versions are deprecated: the cluster picks the version matching the database's Redis version",
            ));
        }
    }
    modules.sort_by(|a, b| a.name.cmp(&b.name));

    if let Some(version) = spec.redis_version.as_deref() {
        let valid = version == "major"
            || version == "latest"
            || regex(&VERSION, r"^[0-9]+\.[0-9]+$").is_some_and(|r| r.is_match(version));
        if !valid {
            issues.push(Issue::error(
                path.key("redisVersion"),
                format!(
                    "{} is not a Redis version; write major.minor such as 7.4 or 8.0, or major or latest",
                    quote(version)
                ),
            ));
        }
    }
    let roles_permissions = spec.roles_permissions.clone().unwrap_or_default();
    for (index, permission) in roles_permissions.iter().enumerate() {
        for (field, value) in [("role", &permission.role), ("acl", &permission.acl)] {
            if value.trim().is_empty() {
                issues.push(Issue::error(
                    path.key("rolesPermissions").index(index).key(field),
                    format!("{field} is empty; name an existing {field} of the cluster (case-sensitive)"),
                ));
            }
        }
    }
    let secret_name = spec
        .database_secret_name
        .clone()
        .unwrap_or_else(|| format!("redb-{}", database.name_any()));
    if let Some(name) = spec.database_secret_name.as_deref() {
        if name.is_empty() {
            issues.push(Issue::error(
                path.key("databaseSecretName"),
                "an empty Secret name would leave the database without a password; omit the field for redb-<name> or name a Secret",
            ));
        } else {
            check_object_name(name, &path.key("databaseSecretName"), &mut issues);
        }
    }
    for (index, secret) in spec.client_authentication_certificates.iter().flatten().enumerate() {
        check_object_name(
            secret,
            &path.key("clientAuthenticationCertificates").index(index),
            &mut issues,
        );
    }
    if spec
        .client_authentication_certificates
        .as_ref()
        .is_some_and(|c| !c.is_empty())
        && spec.tls_mode != Some(TlsMode::Enabled)
    {
        issues.push(Issue::error(
            path.key("clientAuthenticationCertificates"),
            "client certificates need TLS; set tlsMode: enabled",
        ));
    }
    let backup = spec
        .backup
        .as_ref()
        .and_then(|backup| validated_backup(backup, &path.key("backup"), &mut issues));
    check_no_plaintext_secrets(&serde_json::to_value(spec).unwrap_or(Value::Null), &path, &mut issues);

    if issues.iter().any(|issue| issue.severity == Severity::Error) {
        return Err(issues);
    }
    let validated = ValidatedDatabase {
        name: database.name_any(),
        namespace: database
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string()),
        uid: database.metadata.uid.clone(),
        cluster_reference: spec.redis_enterprise_cluster.as_ref().map(|c| c.name.clone()),
        memory_size_bytes,
        shard_count,
        replication,
        persistence: spec.persistence.unwrap_or(Persistence::Disabled),
        eviction_policy: spec
            .eviction_policy
            .unwrap_or_else(|| default_eviction_policy(database_type)),
        tls_mode: spec.tls_mode.unwrap_or(TlsMode::Disabled),
        port,
        service_port,
        secret_name,
        default_user: spec.default_user.unwrap_or(true),
        database_type,
        memcached_sasl_secret_name: spec.memcached_sasl_secret_name.clone(),
        modules,
        redis_version: spec.redis_version.clone(),
        roles_permissions,
        oss_cluster,
        proxy_policy: spec.proxy_policy,
        shards_placement: spec.shards_placement,
        rack_aware: spec.rack_aware,
        resp3: spec.resp3,
        client_certificate_secrets: spec.client_authentication_certificates.clone().unwrap_or_default(),
        alert_settings: spec.alert_settings.clone(),
        backup,
    };
    Ok((validated, issues))
}

/// The longest cluster name `POST /v1/bootstrap/create_cluster` accepts: the REC's FQDN
/// `<rec>.<namespace>.svc.cluster.local`.
pub const MAX_BOOTSTRAP_CLUSTER_NAME: usize = 64;

/// The name the cluster is bootstrapped with (its FQDN inside Kubernetes).
pub fn bootstrap_cluster_name(name: &str, namespace: &str) -> String {
    format!("{name}.{namespace}.svc.cluster.local")
}

/// A REC whose FQDN is longer than the 64 characters a cluster name may have would never bootstrap.
fn check_bootstrap_cluster_name(name: Option<&str>, namespace: Option<&str>, issues: &mut Vec<Issue>) {
    let Some(name) = name.filter(|name| !name.is_empty()) else {
        return;
    };
    let fqdn = bootstrap_cluster_name(name, namespace.unwrap_or("default"));
    if fqdn.len() > MAX_BOOTSTRAP_CLUSTER_NAME {
        issues.push(Issue::error(
            FieldPath::of(&["metadata", "name"]),
            format!(
                "the cluster would be created as {} ({} characters), but a Redis Enterprise cluster name has at \
                 most {MAX_BOOTSTRAP_CLUSTER_NAME}; shorten the REC name or its namespace by {}",
                quote(&fqdn),
                fqdn.len(),
                fqdn.len() - MAX_BOOTSTRAP_CLUSTER_NAME
            ),
        ));
    }
}

/// Whether Redis Enterprise keeps `port` for itself, so a database may not use it: 10050 (inside the database
/// range) and the shard ports 20000-29999.
pub fn is_reserved_database_port(port: u16) -> bool {
    port == 10_050 || (20_000..=29_999).contains(&port)
}

/// The eviction policy a database gets when the spec sets none, as the cluster defaults it: `allkeys-lru` for
/// memcached (which has no TTL-only keys), `volatile-lru` for Redis.
pub fn default_eviction_policy(database_type: DatabaseType) -> EvictionPolicy {
    match database_type {
        DatabaseType::Memcached => EvictionPolicy::AllkeysLru,
        DatabaseType::Redis => EvictionPolicy::VolatileLru,
    }
}

/// REST-side rules of a REDB spec: what a real cluster refuses (reserved ports), and the fields the agent cannot
/// send yet (refused here rather than accepted and silently dropped).
fn check_rest_database_fields(
    spec: &crate::api::database::RedisEnterpriseDatabaseSpec,
    path: &FieldPath,
    issues: &mut Vec<Issue>,
) {
    if let Some(port) = spec.database_port.and_then(|port| u16::try_from(port).ok())
        && is_reserved_database_port(port)
    {
        issues.push(Issue::error(
            path.key("databasePort"),
            format!(
                "port {port} is reserved by Redis Enterprise (10050 and the shard ports 20000-29999); use another port \
                 from 10000-19999"
            ),
        ));
    }
    if spec.roles_permissions.as_ref().is_some_and(|roles| !roles.is_empty()) {
        issues.push(Issue::error(
            path.key("rolesPermissions"),
            "rolesPermissions is not supported by redis-gitops yet: the role and ACL names would not be sent to the \
             cluster, so the database would run without them; remove the field and grant access in the cluster's \
             access control",
        ));
    }
    if spec
        .client_authentication_certificates
        .as_ref()
        .is_some_and(|certificates| !certificates.is_empty())
    {
        issues.push(Issue::error(
            path.key("clientAuthenticationCertificates"),
            "clientAuthenticationCertificates is not supported by redis-gitops yet: the certificates would not be \
             sent to the cluster, so no client could authenticate with them; remove the field",
        ));
    }
    if spec
        .memcached_sasl_secret_name
        .as_deref()
        .is_some_and(|name| !name.is_empty())
    {
        issues.push(Issue::error(
            path.key("memcachedSaslSecretName"),
            "memcachedSaslSecretName is not supported by redis-gitops yet: the SASL credentials would not be sent to \
             the cluster, so the memcached database would accept clients without them; remove the field",
        ));
    }
}

/// The message for a memory size that does not parse, shared with schema pattern errors.
pub fn memory_size_message(text: &str) -> String {
    format!(
        "{} is not a memory size; write a number and a unit (B, KB, MB, GB, TB), for example 100MB or 1.5GB",
        quote(text)
    )
}

fn checked_port(port: Option<i32>, path: &FieldPath, issues: &mut Vec<Issue>) -> Option<u16> {
    let port = port?;
    match u16::try_from(port) {
        Ok(port) if port > 0 => Some(port),
        _ => {
            issues.push(Issue::error(
                path.clone(),
                format!("{port} is not a TCP port; use 1-65535"),
            ));
            None
        }
    }
}

fn validated_backup(
    backup: &crate::api::database::DatabaseBackupSpec,
    path: &FieldPath,
    issues: &mut Vec<Issue>,
) -> Option<ValidatedBackup> {
    let mut locations = Vec::new();
    if let Some(s3) = &backup.s3 {
        locations.push((
            "s3",
            BackupLocation::S3 {
                secret_name: s3.aws_secret_name.clone(),
                bucket_name: s3.bucket_name.clone(),
                subdir: s3.subdir.clone(),
                region_name: s3.region_name.clone(),
            },
        ));
    }
    if let Some(gcs) = &backup.gcs {
        locations.push((
            "gcs",
            BackupLocation::Gcs {
                secret_name: gcs.gcs_secret_name.clone(),
                bucket_name: gcs.bucket_name.clone(),
                subdir: gcs.subdir.clone(),
            },
        ));
    }
    if let Some(abs) = &backup.abs {
        locations.push((
            "abs",
            BackupLocation::Abs {
                secret_name: abs.abs_secret_name.clone(),
                container: abs.container.clone(),
                subdir: abs.subdir.clone(),
            },
        ));
    }
    if let Some(sftp) = &backup.sftp {
        locations.push((
            "sftp",
            BackupLocation::Sftp {
                secret_name: sftp.sftp_secret_name.clone(),
                url: sftp.sftp_url.clone(),
            },
        ));
    }
    if let Some(ftp) = &backup.ftp {
        locations.push(("ftp", BackupLocation::Ftp { url: ftp.url.clone() }));
    }
    if let Some(mount) = &backup.mount {
        locations.push((
            "mount",
            BackupLocation::Mount {
                path: mount.path.clone(),
            },
        ));
    }
    let interval = backup.interval.unwrap_or(86_400);
    if !BACKUP_INTERVALS.contains(&interval) {
        issues.push(Issue::error(
            path.key("interval"),
            format!("{interval} is not a backup interval Redis Enterprise schedules; use 3600, 14400, 43200 or 86400 seconds"),
        ));
    }
    if let Some(offset) = backup.interval_offset {
        if interval < 43_200 {
            issues.push(Issue::error(
                path.key("intervalOffset"),
                "intervalOffset only applies to 12 and 24 hour intervals; remove it or use interval 43200 or 86400",
            ));
        } else if offset >= interval {
            issues.push(Issue::error(
                path.key("intervalOffset"),
                format!(
                    "{offset} is not smaller than the interval {interval}; use 0 to {}",
                    interval - 1
                ),
            ));
        }
    }
    match locations.len() {
        0 => {
            issues.push(Issue::error(
                path.clone(),
                "no backup location; set exactly one of s3, gcs, abs, sftp, ftp or mount",
            ));
            None
        }
        1 => locations.pop().map(|(_, location)| ValidatedBackup {
            interval,
            interval_offset: backup.interval_offset,
            location,
        }),
        _ => {
            let names: Vec<&str> = locations.iter().map(|(name, _)| *name).collect();
            issues.push(Issue::error(
                path.key(names[1]),
                format!(
                    "backup has {} locations ({}); a database backs up to exactly one, keep one",
                    names.len(),
                    names.join(", ")
                ),
            ));
            None
        }
    }
}

static VERSION: std::sync::OnceLock<Option<Regex>> = std::sync::OnceLock::new();
static DNS_LABEL: std::sync::OnceLock<Option<Regex>> = std::sync::OnceLock::new();
static NAMESPACE: std::sync::OnceLock<Option<Regex>> = std::sync::OnceLock::new();
static OBJECT_NAME: std::sync::OnceLock<Option<Regex>> = std::sync::OnceLock::new();

/// A name rule compiled once per process.
fn regex(cell: &'static std::sync::OnceLock<Option<Regex>>, pattern: &str) -> Option<&'static Regex> {
    cell.get_or_init(|| Regex::new(pattern).ok()).as_ref()
}

/// Checks `metadata.name` and `metadata.namespace`. `max_name` keeps derived names (`<name>-headless`) within
/// the 63 characters of a DNS label.
fn validate_metadata(name: Option<&str>, namespace: Option<&str>, max_name: usize, names_what: &str) -> Vec<Issue> {
    let mut issues = Vec::new();
    let label = regex(&DNS_LABEL, r"^[a-z]([-a-z0-9]*[a-z0-9])?$");
    match name {
        None | Some("") => issues.push(Issue::error(
            FieldPath::of(&["metadata", "name"]),
            "the object has no name; set metadata.name",
        )),
        Some(name) => {
            if !label.as_ref().is_some_and(|l| l.is_match(name)) || name.len() > max_name {
                issues.push(Issue::error(
                    FieldPath::of(&["metadata", "name"]),
                    format!(
                        "{} is not a valid name; use at most {max_name} lowercase letters, digits and '-', starting \
                         with a letter and ending with a letter or digit ({names_what})",
                        quote(name)
                    ),
                ));
            }
        }
    }
    if let Some(namespace) = namespace
        && (!regex(&NAMESPACE, r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$").is_some_and(|r| r.is_match(namespace))
            || namespace.len() > 63)
    {
        issues.push(Issue::error(
            FieldPath::of(&["metadata", "namespace"]),
            format!(
                "{} is not a valid namespace; use at most 63 lowercase letters, digits and '-'",
                quote(namespace)
            ),
        ));
    }
    issues
}

/// Checks a map that becomes labels (keys and values) of the objects the agent writes.
fn check_labels(map: Option<&BTreeMap<String, String>>, path: &FieldPath, issues: &mut Vec<Issue>) {
    for (key, value) in map.into_iter().flatten() {
        if let Some(problem) = names::label_key_problem(key) {
            issues.push(Issue::error(
                path.key(key),
                format!("{problem} (the API server refuses it)"),
            ));
        }
        if let Some(problem) = names::label_value_problem(value) {
            issues.push(Issue::error(
                path.key(key),
                format!("{problem} (the API server refuses it)"),
            ));
        }
    }
}

/// Checks a map that becomes annotations: keys, and the 256 KiB of all keys and values.
fn check_annotations(map: Option<&BTreeMap<String, String>>, path: &FieldPath, issues: &mut Vec<Issue>) {
    let Some(map) = map else {
        return;
    };
    for key in map.keys() {
        if let Some(problem) = names::label_key_problem(&key.to_lowercase()) {
            issues.push(Issue::error(
                path.key(key),
                format!("{problem} (the API server refuses it)"),
            ));
        }
    }
    let total: usize = map.iter().map(|(k, v)| k.len() + v.len()).sum();
    if total > names::MAX_ANNOTATIONS_BYTES {
        issues.push(Issue::error(
            path.clone(),
            format!(
                "the annotations take {total} bytes, above the {} bytes the API server accepts on one object",
                names::MAX_ANNOTATIONS_BYTES
            ),
        ));
    }
}

/// Checks the object's own labels and annotations (the API server refuses the object itself otherwise).
fn check_object_labels(metadata: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, issues: &mut Vec<Issue>) {
    let path = FieldPath::of(&["metadata"]);
    check_labels(metadata.labels.as_ref(), &path.key("labels"), issues);
    check_annotations(metadata.annotations.as_ref(), &path.key("annotations"), issues);
}

fn check_object_name(name: &str, path: &FieldPath, issues: &mut Vec<Issue>) {
    let valid =
        regex(&OBJECT_NAME, r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$").is_some_and(|r| r.is_match(name)) && name.len() <= 253;
    if !valid {
        issues.push(Issue::error(
            path.clone(),
            format!(
                "{} is not a valid object name; use lowercase letters, digits, '-' and '.'",
                quote(name)
            ),
        ));
    }
}

/// Rejects passwords written in plain text anywhere in a spec: URLs with a password part (`scheme://user:pass@`).
/// Unknown fields named like passwords are caught by schema validation with the same advice.
fn check_no_plaintext_secrets(value: &Value, path: &FieldPath, issues: &mut Vec<Issue>) {
    match value {
        Value::String(text) => {
            if let Some((_, rest)) = text.split_once("://")
                && let Some((userinfo, _)) = rest.split_once('@')
                && userinfo.contains(':')
                && !userinfo.contains('/')
            {
                issues.push(Issue::error(path.clone(), PLAINTEXT_SECRET_MESSAGE));
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                check_no_plaintext_secrets(item, &path.index(index), issues);
            }
        }
        Value::Object(fields) => {
            for (key, field) in fields {
                check_no_plaintext_secrets(field, &path.key(key), issues);
            }
        }
        _ => {}
    }
}

/// The advice given for any password found in a spec.
pub const PLAINTEXT_SECRET_MESSAGE: &str = "a plaintext password would be stored in Git; remove it and use a Secret reference (the password goes into a Kubernetes Secret)";
