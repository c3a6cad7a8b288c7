//! Build stage (pure): from the validated cluster and what was observed to every Kubernetes object
//! (`desired::cluster::build_cluster`), with the two decisions that depend on the live state: the StatefulSet's
//! replicas never go down (scale-in is refused) and its partition stages rolling updates (`rollout`).

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;

use super::dereference::{Observed, pod_is_ready};
use super::rollout::{PodRollout, RolloutDecision, decide_partition};
use super::validate::Validated;
use crate::api::keys;
use crate::desired::cluster::{ClusterResources, NODE_CONTAINER, build_cluster};

/// The objects to apply and the decisions behind them.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Every object, with the replicas and partition below.
    pub resources: ClusterResources,
    /// Replicas the StatefulSet gets: `spec.nodes`, or the live count when that is higher (scale-in refused).
    pub replicas: i32,
    /// `(spec.nodes, nodes kept)` when the spec asks for fewer nodes than the cluster has.
    pub scale_in_refused: Option<(i32, i32)>,
    /// The rolling update's partition and progress.
    pub rollout: RolloutDecision,
    /// Whether outdated pods run another Redis Enterprise image (an upgrade rather than a rolling update).
    pub upgrade: bool,
    /// What was seen of each ordinal `0..replicas`.
    pub pods: Vec<PodRollout>,
}

/// The pod-template hash a StatefulSet's pods carry.
pub fn template_hash(stateful_set: &StatefulSet) -> Option<&str> {
    stateful_set
        .spec
        .as_ref()?
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(keys::POD_TEMPLATE_HASH)
        .map(String::as_str)
}

fn pod_template_hash(pod: &Pod) -> Option<&str> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(keys::POD_TEMPLATE_HASH)
        .map(String::as_str)
}

fn pod_image(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == NODE_CONTAINER)?
        .image
        .as_deref()
}

/// Builds the plan.
pub fn build(validated: &Validated, observed: &Observed) -> Plan {
    let mut cluster = validated.cluster.clone();
    // A Secret the agent created keeps its user name; the cluster's admin user cannot be renamed by a Secret.
    cluster.username = validated.credentials.username.clone();
    let live_replicas = observed.live_replicas().unwrap_or(0);
    let scale_in_refused = (cluster.nodes < live_replicas).then_some((cluster.nodes, live_replicas));
    cluster.nodes = cluster.nodes.max(live_replicas);
    let replicas = cluster.nodes;

    let mut resources = build_cluster(&cluster, Some(&validated.credentials.password), 0);
    let desired_hash = template_hash(&resources.stateful_set).unwrap_or_default().to_string();
    let pods: Vec<PodRollout> = (0..replicas)
        .map(|ordinal| match observed.pods.get(&ordinal) {
            None => PodRollout::default(),
            Some(pod) => PodRollout {
                present: true,
                updated: pod_template_hash(pod) == Some(desired_hash.as_str()),
                ready: pod_is_ready(pod),
                node_active: observed.node_active(ordinal),
            },
        })
        .collect();
    let rollout = decide_partition(replicas, &pods);
    let upgrade = observed.pods.values().any(|pod| {
        pod_template_hash(pod) != Some(desired_hash.as_str()) && pod_image(pod) != Some(cluster.image.as_str())
    });
    if let Some(strategy) = resources
        .stateful_set
        .spec
        .as_mut()
        .and_then(|spec| spec.update_strategy.as_mut())
        .and_then(|strategy| strategy.rolling_update.as_mut())
    {
        strategy.partition = Some(rollout.partition);
    }
    Plan {
        resources,
        replicas,
        scale_in_refused,
        rollout,
        upgrade,
        pods,
    }
}
