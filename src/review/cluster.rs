//! REC changes: created, updated, deleted. The children come from `desired::cluster`; whether nodes restart, in
//! which order, and whether a scale-in is refused come from the cluster controller's own build stage
//! (`controllers::cluster::build::build` and its rollout decision), run step after step against the base's
//! cluster as if it were running and healthy. Pure.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Container, Pod, PodCondition, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use serde_json::Value;

use super::database::child_changes;
use super::deletion::{Fate, ObjectKey};
use super::{Action, Change, Risk, RiskCode, Severity, fields, object_fields};
use crate::api::keys;
use crate::controllers::cluster::build::{build, template_hash};
use crate::controllers::cluster::dereference::{Observed, RestState};
use crate::controllers::cluster::rollout::RolloutStep;
use crate::controllers::cluster::validate::Validated;
use crate::desired::cluster::{ClusterResources, NODE_CONTAINER, build_cluster, build_statefulset, pod_template_hash};
use crate::enterprise::states::NodeStatus;
use crate::enterprise::types::{Credentials, Node};
use crate::manifests::Repository;
use crate::manifests::repo::LoadedCluster;
use crate::model::ValidatedCluster;

const KIND: &str = "RedisEnterpriseCluster";

fn object_value(cluster: &LoadedCluster) -> Value {
    serde_json::to_value(&cluster.object).unwrap_or(Value::Null)
}

/// The cluster's children by `(kind, name)`, as JSON (the credentials Secret as a template: no password).
fn children(cluster: &ValidatedCluster) -> BTreeMap<(String, String), Value> {
    let ClusterResources {
        service_account,
        role,
        role_binding,
        credentials_secret,
        services,
        pod_disruption_budget,
        stateful_set,
    } = build_cluster(cluster, None, 0);
    let mut objects = BTreeMap::new();
    let mut add = |kind: &str, name: Option<String>, value: Result<Value, serde_json::Error>| {
        if let (Some(name), Ok(value)) = (name, value) {
            objects.insert((kind.to_string(), name), value);
        }
    };
    if let Some(object) = service_account {
        add("ServiceAccount", object.metadata.name.clone(), to_json(&object));
    }
    if let Some(object) = role {
        add("Role", object.metadata.name.clone(), to_json(&object));
    }
    if let Some(object) = role_binding {
        add("RoleBinding", object.metadata.name.clone(), to_json(&object));
    }
    add(
        "Secret",
        credentials_secret.metadata.name.clone(),
        to_json(&credentials_secret),
    );
    for service in services {
        add("Service", service.metadata.name.clone(), to_json(&service));
    }
    add(
        "PodDisruptionBudget",
        pod_disruption_budget.metadata.name.clone(),
        to_json(&pod_disruption_budget),
    );
    add(
        "StatefulSet",
        stateful_set.metadata.name.clone(),
        to_json(&stateful_set),
    );
    objects
}

fn to_json<T: Serialize>(object: &T) -> Result<Value, serde_json::Error> {
    serde_json::to_value(object)
}

/// A REC new in the head.
pub(crate) fn created(cluster: &LoadedCluster) -> Change {
    let validated = &cluster.validated;
    let mut change = Change::new(
        KIND,
        &validated.namespace,
        &validated.name,
        Action::Create,
        Some(&cluster.source.file),
    );
    change.fields = object_fields(None, Some(&object_value(cluster)));
    change.children = child_changes(&BTreeMap::new(), &children(validated));
    if let Some(child) = change.children.iter_mut().find(|child| child.kind == "StatefulSet") {
        child.note = Some(format!(
            "{} pods start one at a time ({}-0 creates the cluster, the others join in order)",
            validated.nodes, validated.name
        ));
    }
    change
}

/// A REC only in the base.
pub(crate) fn deleted(cluster: &LoadedCluster, base: &Repository, fates: &BTreeMap<ObjectKey, Fate>) -> Change {
    let validated = &cluster.validated;
    let mut change = Change::new(
        KIND,
        &validated.namespace,
        &validated.name,
        Action::Delete,
        Some(&cluster.source.file),
    );
    change.fields = object_fields(Some(&object_value(cluster)), None);
    let position = base.clusters.iter().position(|other| std::ptr::eq(other, cluster));
    let databases: Vec<String> = base
        .databases
        .iter()
        .filter(|database| database.cluster.is_some() && database.cluster == position)
        .map(|database| format!("{}/{}", database.validated.namespace, database.validated.name))
        .collect();
    let on_it = if databases.is_empty() {
        "no database of the base revision lives on it".to_string()
    } else {
        format!(
            "it holds {} database{} ({})",
            databases.len(),
            if databases.len() == 1 { "" } else { "s" },
            crate::sync::plan::quote_names(&databases)
        )
    };
    let fate = fates
        .get(&(KIND.to_string(), validated.namespace.clone(), validated.name.clone()))
        .cloned()
        .unwrap_or(Fate::Deleted);
    let (severity, outcome) = match fate {
        Fate::Deleted => {
            change.children = child_changes(&children(validated), &BTreeMap::new())
                .into_iter()
                // The admin credentials Secret has no owner reference: it outlives the REC, like the volume claims.
                .filter(|child| child.kind != "Secret")
                .collect();
            (
                Severity::DataLoss,
                "the GitSync prunes it: Kubernetes deletes its StatefulSet and every node, and with them the cluster \
                 and everything on it (the volume claims and the admin Secret stay)"
                    .to_string(),
            )
        }
        Fate::Kept(reason) => (
            Severity::Warning,
            format!("{reason}: it keeps running, reported as orphaned"),
        ),
        Fate::Depends(reason) => (
            Severity::DataLoss,
            format!(
                "with the GitSync's prune: true and allowDatabaseDeletion: true, once no database lives on it, the \
                 agent deletes it and every node; otherwise it is {reason}; pass --gitsync FILE to know which"
            ),
        ),
    };
    change.risks.push(Risk::new(
        RiskCode::ClusterDeleted,
        severity,
        format!(
            "REC removed; {on_it}: {outcome}. To keep it, restore the YAML or annotate it redisgitops.dev/protect: \
             \"true\" in an earlier change"
        ),
    ));
    change
}

/// A REC in both sides; `None` when nothing changes.
pub(crate) fn updated(before: &LoadedCluster, after: &LoadedCluster) -> Option<Change> {
    let field_changes = object_fields(Some(&object_value(before)), Some(&object_value(after)));
    if field_changes.is_empty() {
        return None;
    }
    let (old, new) = (&before.validated, &after.validated);
    let mut change = Change::new(
        KIND,
        &new.namespace,
        &new.name,
        Action::Update,
        Some(&after.source.file),
    );
    change.fields = field_changes;
    let mut children = child_changes(&children(old), &children(new));
    let simulation = simulate(old, new);
    if let Some((asked, kept)) = simulation.scale_in_refused {
        change.risks.push(Risk::new(
            RiskCode::ScaleInRefused,
            Severity::Warning,
            format!(
                "nodes goes down from {kept} to {asked}: removing nodes is not supported, so the agent refuses it \
                 (the REC turns Stalled, ScaleDownNotSupported) and the StatefulSet keeps {kept} replicas; restore \
                 `nodes: {kept}`"
            ),
        ));
        // The StatefulSet's replicas do not change: the controller keeps the live count.
        for child in children.iter_mut().filter(|child| child.kind == "StatefulSet") {
            child.fields.retain(|path| path != "spec.replicas");
        }
        children.retain(|child| child.kind != "StatefulSet" || !child.fields.is_empty());
    }
    let immutable = immutable_statefulset_fields(old, new);
    if !immutable.is_empty() {
        let cause = if immutable
            .iter()
            .any(|path| path.starts_with("spec.volumeClaimTemplates"))
        {
            " (from spec.persistentSpec: the nodes' volume claim size, storage class or persistence)"
        } else {
            ""
        };
        change.risks.push(Risk::new(
            RiskCode::ImmutableFieldChanged,
            Severity::Warning,
            format!(
                "the StatefulSet's {}{cause} cannot change after creation: Kubernetes refuses the update, so the \
                 cluster controller fails to apply the StatefulSet and none of its other changes take effect; \
                 restore the field (to grow volumes, expand each PersistentVolumeClaim where the storage class \
                 allows it)",
                immutable.join(", ")
            ),
        ));
    }
    if !simulation.order.is_empty() {
        let pods: Vec<String> = simulation
            .order
            .iter()
            .map(|ordinal| format!("{}-{ordinal}", new.name))
            .collect();
        let cause = if old.version_tag != new.version_tag {
            format!(
                "the Redis Enterprise version goes from {} to {} (an upgrade)",
                old.version_tag, new.version_tag
            )
        } else {
            let template: Vec<String> = children
                .iter()
                .filter(|child| child.kind == "StatefulSet")
                .flat_map(|child| child.fields.iter())
                .filter(|path| path.starts_with("spec.template"))
                .cloned()
                .collect();
            format!("the pod template changes ({})", template.join(", "))
        };
        let note = format!(
            "rolling restart of {} pods, one at a time, in this order: {}",
            pods.len(),
            pods.join(", ")
        );
        for child in children.iter_mut().filter(|child| child.kind == "StatefulSet") {
            child.note = Some(note.clone());
        }
        change.risks.push(Risk::new(
            RiskCode::RollingRestart,
            Severity::Disruption,
            format!(
                "{cause}: every node restarts, one at a time, in this order: {}; each waits until the previous pod \
                 is Ready and its node active. Shards on a restarting node fail over to their replicas; databases \
                 without replication are unavailable while their node restarts. Merge it in a maintenance window",
                pods.join(", ")
            ),
        ));
    }
    change.children = children;
    Some(change)
}

/// The StatefulSet fields Kubernetes refuses to change that differ.
fn immutable_statefulset_fields(old: &ValidatedCluster, new: &ValidatedCluster) -> Vec<String> {
    let (Ok(before), Ok(after)) = (
        serde_json::to_value(build_statefulset(old, 0)),
        serde_json::to_value(build_statefulset(new, 0)),
    ) else {
        return Vec::new();
    };
    let mut paths = BTreeSet::new();
    for field in ["volumeClaimTemplates", "serviceName", "selector", "podManagementPolicy"] {
        let pointer = format!("/spec/{field}");
        let mut out = Vec::new();
        fields::diff(
            &format!("spec.{field}"),
            before.pointer(&pointer),
            after.pointer(&pointer),
            &mut out,
        );
        if !out.is_empty() {
            paths.insert(format!("spec.{field}"));
        }
    }
    paths.into_iter().collect()
}

/// What the cluster controller does with the head's spec on a running, healthy base cluster.
struct Simulation {
    /// `(spec.nodes, nodes kept)` when fewer nodes are asked for.
    scale_in_refused: Option<(i32, i32)>,
    /// Ordinals restarted, in order.
    order: Vec<i32>,
}

fn simulate(old: &ValidatedCluster, new: &ValidatedCluster) -> Simulation {
    let validated = Validated {
        cluster: new.clone(),
        credentials: Credentials {
            username: new.username.clone(),
            password: String::new(),
        },
        license: None,
        owns_credentials_secret: true,
    };
    let mut old_cluster = old.clone();
    old_cluster.username = new.username.clone();
    let old_hash = pod_template_hash(&old_cluster);
    let replicas = old.nodes.max(0);
    let address = |ordinal: i32| format!("10.0.{}.{}", ordinal / 250, ordinal % 250 + 1);
    let mut pods: BTreeMap<i32, Pod> = (0..replicas)
        .map(|ordinal| (ordinal, pod(&old_hash, &old.image, &address(ordinal))))
        .collect();
    let nodes: Vec<Node> = (0..replicas)
        .map(|ordinal| Node {
            uid: u64::try_from(ordinal + 1).unwrap_or_default(),
            addr: address(ordinal),
            status: NodeStatus::Active,
            software_version: old.version_tag.clone(),
            other: Default::default(),
        })
        .collect();
    let observe = |pods: &BTreeMap<i32, Pod>| Observed {
        credentials_secret: None,
        credentials: None,
        cluster_ca: None,
        license_secret: None,
        stateful_set: Some(k8s_openapi::api::apps::v1::StatefulSet {
            spec: Some(k8s_openapi::api::apps::v1::StatefulSetSpec {
                replicas: Some(replicas),
                ..Default::default()
            }),
            ..Default::default()
        }),
        pods: pods.clone(),
        rest: RestState {
            nodes: Some(Ok(nodes.clone())),
            bootstrap: BTreeMap::new(),
        },
    };
    let first = build(&validated, &observe(&pods));
    let mut order = Vec::new();
    let mut plan = first.clone();
    // Each step replaces one pod; a guard of twice the pods stops a decision that never completes.
    for _ in 0..(2 * replicas.max(1)) {
        let RolloutStep::Replace { ordinal } = plan.rollout.step else {
            break;
        };
        order.push(ordinal);
        let hash = template_hash(&plan.resources.stateful_set)
            .unwrap_or_default()
            .to_string();
        pods.insert(ordinal, pod(&hash, &new.image, &address(ordinal)));
        plan = build(&validated, &observe(&pods));
    }
    Simulation {
        scale_in_refused: first.scale_in_refused,
        order,
    }
}

fn pod(hash: &str, image: &str, ip: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            annotations: Some([(keys::POD_TEMPLATE_HASH.to_string(), hash.to_string())].into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: NODE_CONTAINER.to_string(),
                image: Some(image.to_string()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: Some(PodStatus {
            pod_ip: Some(ip.to_string()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".to_string(),
                status: "True".to_string(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}
