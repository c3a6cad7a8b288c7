//! Pure builders for a cluster: from a [`ValidatedCluster`] to its ServiceAccount, Role, RoleBinding,
//! admin-credentials Secret, Services, PodDisruptionBudget and StatefulSet (reference/redis-enterprise.md §3.2).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    RollingUpdateStatefulSetStrategy, StatefulSet, StatefulSetSpec, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Affinity, Container, ContainerPort, HTTPGetAction, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PodAffinityTerm, PodAntiAffinity, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, Secret, Service,
    ServiceAccount, ServicePort, ServiceSpec, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::labels::{child_labels, child_metadata, content_hash, node_selector_labels, owner_reference, stored_secret};
use crate::api::keys;
use crate::model::ValidatedCluster;
use crate::model::names;

/// Name of the Redis Enterprise node container.
pub const NODE_CONTAINER: &str = "redis-enterprise-node";
/// Name of the per-node volume claim template.
pub const STORAGE_VOLUME: &str = "redis-enterprise-storage";
/// Cluster Manager UI port.
pub const UI_PORT: i32 = 8443;
/// REST API port.
pub const API_PORT: i32 = 9443;
/// Discovery service (Sentinel API) port.
pub const DISCOVERY_PORT: i32 = 8001;
/// Prometheus metrics port.
pub const METRICS_PORT: i32 = 8070;
/// User and group Redis Enterprise runs as.
pub const RUN_AS: i64 = 1001;

const API_VERSION: &str = "app.redislabs.com/v1";
const KIND: &str = "RedisEnterpriseCluster";

/// Every Kubernetes object of one cluster, in apply order.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterResources {
    /// ServiceAccount of the pods (absent with `createServiceAccount: false`).
    pub service_account: Option<ServiceAccount>,
    /// Role of the pods.
    pub role: Option<Role>,
    /// Binding of the Role to the ServiceAccount.
    pub role_binding: Option<RoleBinding>,
    /// Admin-credentials Secret: created once with a random password, never regenerated.
    pub credentials_secret: Secret,
    /// REST API, UI, metrics and headless governing Services.
    pub services: Vec<Service>,
    /// At most one node down at a time, to keep the quorum.
    pub pod_disruption_budget: PodDisruptionBudget,
    /// The Redis Enterprise nodes.
    pub stateful_set: StatefulSet,
}

/// Every object of a cluster as the cluster controller applies it: [`build_cluster`] with the admin password and the
/// credentials Secret in its stored form (`data`), finished: the controller applies it as it is.
pub fn build_cluster_for_apply(cluster: &ValidatedCluster, password: &str, partition: i32) -> ClusterResources {
    let mut resources = build_cluster(cluster, Some(password), partition);
    resources.credentials_secret = stored_secret(resources.credentials_secret);
    resources
}

/// Builds every object of a cluster. `password` is the admin password when known (never from Git); offline
/// rendering passes `None` and gets a Secret template with the key and no value. `partition` stages rolling
/// upgrades: pods with an ordinal at or above it take a new template (0 lets all of them).
pub fn build_cluster(cluster: &ValidatedCluster, password: Option<&str>, partition: i32) -> ClusterResources {
    let (service_account, role, role_binding) = if cluster.create_service_account {
        (
            Some(build_service_account(cluster)),
            Some(build_role(cluster)),
            Some(build_role_binding(cluster)),
        )
    } else {
        (None, None, None)
    };
    ClusterResources {
        service_account,
        role,
        role_binding,
        credentials_secret: build_credentials_secret(cluster, password),
        services: build_services(cluster),
        pod_disruption_budget: build_pod_disruption_budget(cluster),
        stateful_set: build_statefulset(cluster, partition),
    }
}

fn metadata(
    cluster: &ValidatedCluster,
    name: &str,
    component: &str,
    annotations: BTreeMap<String, String>,
) -> ObjectMeta {
    child_metadata(
        name,
        &cluster.namespace,
        child_labels(
            "redis-enterprise",
            &cluster.name,
            Some(&cluster.name),
            component,
            &cluster.extra_labels,
        ),
        annotations,
        owner_reference(API_VERSION, KIND, &cluster.name, cluster.uid.as_deref()),
    )
}

/// The ServiceAccount of the Redis Enterprise pods.
pub fn build_service_account(cluster: &ValidatedCluster) -> ServiceAccount {
    ServiceAccount {
        metadata: metadata(cluster, &cluster.service_account_name, "rbac", BTreeMap::new()),
        ..Default::default()
    }
}

/// The Role of the Redis Enterprise pods: read their pods and services, and keep the cluster's coordination
/// ConfigMaps.
pub fn build_role(cluster: &ValidatedCluster) -> Role {
    let rule = |resources: &[&str], verbs: &[&str]| PolicyRule {
        api_groups: Some(vec![String::new()]),
        resources: Some(resources.iter().map(|r| (*r).to_string()).collect()),
        verbs: verbs.iter().map(|v| (*v).to_string()).collect(),
        ..Default::default()
    };
    Role {
        metadata: metadata(cluster, &cluster.service_account_name, "rbac", BTreeMap::new()),
        rules: Some(vec![
            rule(&["pods", "services", "endpoints"], &["get", "list", "watch"]),
            rule(&["configmaps"], &["get", "list", "watch", "create", "update", "patch"]),
        ]),
    }
}

/// Binds the Role to the ServiceAccount.
pub fn build_role_binding(cluster: &ValidatedCluster) -> RoleBinding {
    RoleBinding {
        metadata: metadata(cluster, &cluster.service_account_name, "rbac", BTreeMap::new()),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_string(),
            kind: "Role".to_string(),
            name: cluster.service_account_name.clone(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_string(),
            name: cluster.service_account_name.clone(),
            namespace: Some(cluster.namespace.clone()),
            ..Default::default()
        }]),
    }
}

/// The admin-credentials Secret, keys `username` and `password`. It carries the labels of the cluster but no owner
/// reference: like the nodes' PersistentVolumeClaims it outlives the REC, so a REC deleted and applied again (from
/// Git) finds the password of the cluster its volumes hold instead of minting one the cluster refuses.
pub fn build_credentials_secret(cluster: &ValidatedCluster, password: Option<&str>) -> Secret {
    let mut metadata = metadata(
        cluster,
        &cluster.credentials_secret_name,
        "credentials",
        BTreeMap::new(),
    );
    metadata.owner_references = None;
    Secret {
        metadata,
        type_: Some("Opaque".to_string()),
        string_data: Some(
            [
                ("username".to_string(), cluster.username.clone()),
                ("password".to_string(), password.unwrap_or_default().to_string()),
            ]
            .into(),
        ),
        ..Default::default()
    }
}

fn service_port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.to_string()),
        port,
        target_port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".to_string()),
        ..Default::default()
    }
}

/// The cluster's Services: REST API `<rec>` (9443, 8001), UI `<rec>-ui` (8443), metrics `<rec>-prom` (8070)
/// and the StatefulSet's headless governing service `<rec>-headless`.
pub fn build_services(cluster: &ValidatedCluster) -> Vec<Service> {
    let selector = node_selector_labels(&cluster.name);
    let mut ui_annotations = cluster.services_annotations.clone();
    ui_annotations.extend(cluster.ui_annotations.clone());
    let service = |name: String, component: &str, annotations: BTreeMap<String, String>, spec: ServiceSpec| {
        let mut service = Service {
            metadata: metadata(cluster, &name, component, annotations),
            spec: Some(spec),
            ..Default::default()
        };
        if component == "metrics"
            && let Some(labels) = service.metadata.labels.as_mut()
        {
            labels.insert("redis.io/service".to_string(), "prom-metrics".to_string());
        }
        service
    };
    vec![
        service(
            cluster.name.clone(),
            "api",
            cluster.services_annotations.clone(),
            ServiceSpec {
                type_: Some(cluster.api_service_type.as_str().to_string()),
                selector: Some(selector.clone()),
                ports: Some(vec![
                    service_port("api", API_PORT),
                    service_port("sentinel", DISCOVERY_PORT),
                ]),
                ..Default::default()
            },
        ),
        service(
            names::cluster_ui_service(cluster),
            "ui",
            ui_annotations,
            ServiceSpec {
                type_: Some(cluster.ui_service_type.as_str().to_string()),
                selector: Some(selector.clone()),
                ports: Some(vec![service_port("ui", UI_PORT)]),
                ..Default::default()
            },
        ),
        service(
            names::cluster_metrics_service(cluster),
            "metrics",
            cluster.services_annotations.clone(),
            ServiceSpec {
                type_: Some("ClusterIP".to_string()),
                selector: Some(selector.clone()),
                ports: Some(vec![service_port("prometheus", METRICS_PORT)]),
                ..Default::default()
            },
        ),
        service(
            names::cluster_headless_service(cluster),
            "nodes",
            cluster.services_annotations.clone(),
            ServiceSpec {
                cluster_ip: Some("None".to_string()),
                // Nodes must find each other while they bootstrap, before they are ready.
                publish_not_ready_addresses: Some(true),
                selector: Some(selector),
                ports: Some(vec![service_port("api", API_PORT)]),
                ..Default::default()
            },
        ),
    ]
}

/// At most one Redis Enterprise node may be evicted at a time, so voluntary disruptions never break the quorum.
pub fn build_pod_disruption_budget(cluster: &ValidatedCluster) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: metadata(cluster, &cluster.name, "nodes", BTreeMap::new()),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(node_selector_labels(&cluster.name)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The default anti-affinity: no two nodes of this cluster on one Kubernetes node.
pub fn default_pod_anti_affinity(cluster_name: &str) -> PodAntiAffinity {
    PodAntiAffinity {
        required_during_scheduling_ignored_during_execution: Some(vec![PodAffinityTerm {
            label_selector: Some(LabelSelector {
                match_labels: Some(node_selector_labels(cluster_name)),
                ..Default::default()
            }),
            topology_key: "kubernetes.io/hostname".to_string(),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

/// The pod template of the Redis Enterprise nodes. It carries a hash of itself ([`keys::POD_TEMPLATE_HASH`]), so
/// a change that restarts pods is visible.
pub fn build_pod_template(cluster: &ValidatedCluster) -> PodTemplateSpec {
    let selector = node_selector_labels(&cluster.name);
    // extraLabels stay off the pod template: changing them must not restart Redis Enterprise nodes.
    let mut pod_labels = selector.clone();
    pod_labels.insert(keys::NAME.to_string(), "redis-enterprise".to_string());
    pod_labels.insert(keys::INSTANCE.to_string(), cluster.name.clone());
    pod_labels.insert(keys::MANAGED_BY.to_string(), keys::MANAGER.to_string());
    pod_labels.insert(keys::COMPONENT.to_string(), "node".to_string());

    let container_port = |name: &str, port: i32| ContainerPort {
        name: Some(name.to_string()),
        container_port: port,
        protocol: Some("TCP".to_string()),
        ..Default::default()
    };
    let mut volume_mounts = Vec::new();
    if cluster.persistence.is_some() {
        volume_mounts.push(VolumeMount {
            name: STORAGE_VOLUME.to_string(),
            mount_path: "/var/opt/redislabs/persist".to_string(),
            ..Default::default()
        });
        volume_mounts.push(VolumeMount {
            name: STORAGE_VOLUME.to_string(),
            mount_path: "/var/opt/redislabs/log".to_string(),
            sub_path: Some("logs".to_string()),
            ..Default::default()
        });
    }
    let container = Container {
        name: NODE_CONTAINER.to_string(),
        image: Some(cluster.image.clone()),
        image_pull_policy: cluster.image_pull_policy.clone(),
        ports: Some(vec![
            container_port("ui", UI_PORT),
            container_port("api", API_PORT),
            container_port("sentinel", DISCOVERY_PORT),
            container_port("prometheus", METRICS_PORT),
        ]),
        resources: Some(cluster.resources.clone()),
        // The REST API answers on every node, joined or not; the agent decides when a node counts as active.
        readiness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/v1/bootstrap".to_string()),
                port: IntOrString::Int(API_PORT),
                scheme: Some("HTTPS".to_string()),
                ..Default::default()
            }),
            initial_delay_seconds: Some(15),
            period_seconds: Some(10),
            timeout_seconds: Some(5),
            ..Default::default()
        }),
        volume_mounts: (!volume_mounts.is_empty()).then_some(volume_mounts),
        ..Default::default()
    };
    let pod_spec = PodSpec {
        service_account_name: Some(cluster.service_account_name.clone()),
        termination_grace_period_seconds: Some(cluster.termination_grace_period_seconds),
        security_context: Some(PodSecurityContext {
            run_as_user: Some(RUN_AS),
            run_as_group: Some(RUN_AS),
            fs_group: Some(RUN_AS),
            ..Default::default()
        }),
        affinity: Some(Affinity {
            pod_anti_affinity: Some(
                cluster
                    .pod_anti_affinity
                    .clone()
                    .unwrap_or_else(|| default_pod_anti_affinity(&cluster.name)),
            ),
            ..Default::default()
        }),
        node_selector: (!cluster.node_selector.is_empty()).then(|| cluster.node_selector.clone()),
        tolerations: (!cluster.tolerations.is_empty()).then(|| cluster.tolerations.clone()),
        image_pull_secrets: (!cluster.pull_secrets.is_empty()).then(|| cluster.pull_secrets.clone()),
        priority_class_name: cluster.priority_class_name.clone(),
        containers: vec![container],
        ..Default::default()
    };
    let mut template = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(pod_labels),
            annotations: (!cluster.pod_annotations.is_empty()).then(|| cluster.pod_annotations.clone()),
            ..Default::default()
        }),
        spec: Some(pod_spec),
    };
    let hash = content_hash(&template);
    if let Some(metadata) = template.metadata.as_mut() {
        metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(keys::POD_TEMPLATE_HASH.to_string(), hash);
    }
    template
}

/// The hash the pod template of a cluster carries (see [`build_pod_template`]); pods with another hash are outdated.
pub fn pod_template_hash(cluster: &ValidatedCluster) -> String {
    build_pod_template(cluster)
        .metadata
        .and_then(|metadata| metadata.annotations)
        .and_then(|mut annotations| annotations.remove(keys::POD_TEMPLATE_HASH))
        .unwrap_or_default()
}

/// The StatefulSet of the Redis Enterprise nodes, with the pod template of [`build_pod_template`]; the update
/// strategy is staged by `partition` so upgrades go one node at a time.
pub fn build_statefulset(cluster: &ValidatedCluster, partition: i32) -> StatefulSet {
    let selector = node_selector_labels(&cluster.name);
    let template = build_pod_template(cluster);
    let volume_claim_templates = cluster.persistence.as_ref().map(|persistence| {
        vec![PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some(STORAGE_VOLUME.to_string()),
                labels: Some(selector.clone()),
                ..Default::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteOnce".to_string()]),
                storage_class_name: persistence.storage_class_name.clone(),
                resources: Some(VolumeResourceRequirements {
                    requests: Some([("storage".to_string(), persistence.volume_size.clone())].into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }]
    });
    StatefulSet {
        metadata: metadata(cluster, &cluster.name, "nodes", BTreeMap::new()),
        spec: Some(StatefulSetSpec {
            replicas: Some(cluster.nodes),
            service_name: Some(names::cluster_headless_service(cluster)),
            selector: LabelSelector {
                match_labels: Some(selector),
                ..Default::default()
            },
            pod_management_policy: Some("OrderedReady".to_string()),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("RollingUpdate".to_string()),
                rolling_update: Some(RollingUpdateStatefulSetStrategy {
                    partition: Some(partition.max(0)),
                    ..Default::default()
                }),
            }),
            template,
            volume_claim_templates,
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::RedisEnterpriseCluster;
    use crate::manifests::validate::validate_cluster;

    fn cluster(yaml: &str) -> ValidatedCluster {
        let object: RedisEnterpriseCluster = serde_saphyr::from_str(yaml).expect("fixture parses");
        validate_cluster(&object).expect("fixture is valid").0
    }

    const MINIMAL: &str = "apiVersion: app.redislabs.com/v1\nkind: RedisEnterpriseCluster\nmetadata: {name: rec, namespace: ns}\nspec: {}\n";

    fn template_hash(statefulset: &StatefulSet) -> String {
        statefulset
            .spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.annotations.as_ref())
            .and_then(|a| a.get(keys::POD_TEMPLATE_HASH))
            .cloned()
            .expect("hash annotation")
    }

    #[test]
    fn official_defaults_make_a_three_node_statefulset_with_storage() {
        let resources = build_cluster(&cluster(MINIMAL), None, 0);
        let spec = resources.stateful_set.spec.as_ref().expect("spec");
        assert_eq!(spec.replicas, Some(3));
        assert_eq!(spec.service_name.as_deref(), Some("rec-headless"));
        let pod = spec.template.spec.as_ref().expect("pod spec");
        let container = &pod.containers[0];
        assert_eq!(container.image.as_deref(), Some("redislabs/redis:8.0.20-44"));
        let ports: Vec<i32> = container.ports.iter().flatten().map(|p| p.container_port).collect();
        assert_eq!(ports, [8443, 9443, 8001, 8070]);
        let limits = container
            .resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .expect("limits");
        assert_eq!(limits["memory"].0, "4Gi");
        let claim = &spec.volume_claim_templates.as_ref().expect("claims")[0];
        let storage = claim
            .spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref())
            .expect("size");
        assert_eq!(storage["storage"].0, "20Gi", "five times the node memory");
        let anti_affinity = pod
            .affinity
            .as_ref()
            .and_then(|a| a.pod_anti_affinity.as_ref())
            .expect("anti-affinity");
        let term = &anti_affinity
            .required_during_scheduling_ignored_during_execution
            .as_ref()
            .expect("required")[0];
        assert_eq!(term.topology_key, "kubernetes.io/hostname");
        assert_eq!(pod.termination_grace_period_seconds, Some(31_536_000));
        assert_eq!(
            resources
                .pod_disruption_budget
                .spec
                .as_ref()
                .and_then(|s| s.max_unavailable.clone()),
            Some(IntOrString::Int(1))
        );
        let service_names: Vec<_> = resources
            .services
            .iter()
            .filter_map(|s| s.metadata.name.clone())
            .collect();
        assert_eq!(service_names, ["rec", "rec-ui", "rec-prom", "rec-headless"]);
        assert!(resources.service_account.is_some() && resources.role.is_some() && resources.role_binding.is_some());
    }

    #[test]
    fn the_credentials_secret_is_a_template_until_a_password_is_given() {
        let validated = cluster(MINIMAL);
        let template = build_credentials_secret(&validated, None);
        let data = template.string_data.expect("data");
        assert_eq!(data["username"], "demo@redis.com");
        assert_eq!(data["password"], "");
        let filled = build_credentials_secret(&validated, Some("s3cret"))
            .string_data
            .expect("data");
        assert_eq!(filled["password"], "s3cret");
    }

    #[test]
    fn the_credentials_secret_has_the_cluster_labels_but_no_owner_reference() {
        let mut validated = cluster(MINIMAL);
        validated.uid = Some("1234".into());
        let secret = build_credentials_secret(&validated, Some("s3cret"));
        assert!(secret.metadata.owner_references.is_none());
        let labels = secret.metadata.labels.expect("labels");
        assert_eq!(labels[keys::COMPONENT], "credentials");
        assert_eq!(labels["redis.io/cluster"], validated.name);
        assert!(build_statefulset(&validated, 0).metadata.owner_references.is_some());
    }

    #[test]
    fn only_changes_that_need_a_restart_change_the_pod_template_hash() {
        let base = template_hash(&build_statefulset(&cluster(MINIMAL), 0));
        let labels = MINIMAL.replace("spec: {}", "spec: {extraLabels: {team: a}}");
        assert_eq!(
            template_hash(&build_statefulset(&cluster(&labels), 0)),
            base,
            "extraLabels apply without restart"
        );
        let upgraded = MINIMAL.replace("spec: {}", "spec: {redisEnterpriseImageSpec: {versionTag: 8.2.0-1}}");
        assert_ne!(template_hash(&build_statefulset(&cluster(&upgraded), 0)), base);
    }

    #[test]
    fn owner_references_only_with_a_uid() {
        let mut validated = cluster(MINIMAL);
        assert!(build_statefulset(&validated, 0).metadata.owner_references.is_none());
        validated.uid = Some("1234".into());
        let owners = build_statefulset(&validated, 0)
            .metadata
            .owner_references
            .expect("owner");
        assert_eq!(
            (owners[0].kind.as_str(), owners[0].controller),
            ("RedisEnterpriseCluster", Some(true))
        );
    }

    #[test]
    fn no_service_account_objects_when_the_user_brings_their_own() {
        let own = MINIMAL.replace(
            "spec: {}",
            "spec: {createServiceAccount: false, serviceAccountName: mine}",
        );
        let resources = build_cluster(&cluster(&own), None, 0);
        assert!(resources.service_account.is_none() && resources.role.is_none() && resources.role_binding.is_none());
        let pod = resources.stateful_set.spec.and_then(|s| s.template.spec).expect("pod");
        assert_eq!(pod.service_account_name.as_deref(), Some("mine"));
    }
}
