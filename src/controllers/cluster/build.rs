//! Build stage (pure): decides what depends on the live state — the StatefulSet's replicas never go down (scale-in
//! is refused) and its partition stages rolling updates (`rollout`) — and asks `desired::cluster` for the finished
//! objects with those decisions; nothing is patched afterwards.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;

use super::dereference::{Observed, pod_is_ready};
use super::rollout::{PodRollout, RolloutDecision, decide_partition};
use super::validate::Validated;
use crate::api::keys;
use crate::desired::cluster::{
    ClusterResources, NODE_CONTAINER, build_cluster_for_apply, pod_template_hash as desired_template_hash,
};

/// The objects to apply and the decisions behind them. Its `Debug` leaves out the objects (the credentials
/// Secret holds the admin password).
#[derive(Clone)]
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

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("resources", &"<redacted>")
            .field("replicas", &self.replicas)
            .field("scale_in_refused", &self.scale_in_refused)
            .field("rollout", &self.rollout)
            .field("upgrade", &self.upgrade)
            .field("pods", &self.pods)
            .finish()
    }
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

    let desired_hash = desired_template_hash(&cluster);
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
    let resources = build_cluster_for_apply(&cluster, &validated.credentials.password, rollout.partition);
    Plan {
        resources,
        replicas,
        scale_in_refused,
        rollout,
        upgrade,
        pods,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::api::RedisEnterpriseCluster;
    use crate::controllers::cluster::dereference::RestState;
    use crate::controllers::cluster::rollout::RolloutStep;
    use crate::controllers::cluster::validate::validate_spec;
    use crate::enterprise::types::Credentials;
    use k8s_openapi::api::apps::v1::StatefulSetSpec;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn validated(spec: &str) -> Validated {
        let cluster: RedisEnterpriseCluster = serde_saphyr::from_str(&format!(
            "apiVersion: app.redislabs.com/v1\nkind: RedisEnterpriseCluster\nmetadata: {{name: rec, namespace: ns, uid: u1}}\nspec: {spec}\n"
        ))
        .expect("fixture");
        Validated {
            cluster: validate_spec(&cluster).expect("valid"),
            credentials: Credentials {
                username: "admin@example.com".into(),
                password: "p".into(),
            },
            license: None,
            owns_credentials_secret: true,
        }
    }

    fn observed(live_replicas: Option<i32>, pods: BTreeMap<i32, Pod>) -> Observed {
        Observed {
            credentials_secret: None,
            credentials: None,
            cluster_ca: None,
            license_secret: None,
            stateful_set: live_replicas.map(|replicas| StatefulSet {
                spec: Some(StatefulSetSpec {
                    replicas: Some(replicas),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            pods,
            rest: RestState::default(),
        }
    }

    fn pod(hash: &str, image: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                annotations: Some([(keys::POD_TEMPLATE_HASH.to_string(), hash.to_string())].into()),
                ..Default::default()
            },
            spec: Some(k8s_openapi::api::core::v1::PodSpec {
                containers: vec![k8s_openapi::api::core::v1::Container {
                    name: NODE_CONTAINER.into(),
                    image: Some(image.into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus {
                pod_ip: Some("127.0.0.9".into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    fn partition(plan: &Plan) -> Option<i32> {
        plan.resources
            .stateful_set
            .spec
            .as_ref()?
            .update_strategy
            .as_ref()?
            .rolling_update
            .as_ref()?
            .partition
    }

    #[test]
    fn fewer_nodes_than_the_statefulset_has_keeps_its_replicas() {
        let plan = build(&validated("{nodes: 3}"), &observed(Some(5), BTreeMap::new()));
        assert_eq!(plan.replicas, 5);
        assert_eq!(plan.scale_in_refused, Some((3, 5)));
        assert_eq!(
            plan.resources.stateful_set.spec.as_ref().and_then(|s| s.replicas),
            Some(5)
        );
        let grown = build(&validated("{nodes: 5}"), &observed(Some(3), BTreeMap::new()));
        assert_eq!((grown.replicas, grown.scale_in_refused), (5, None));
    }

    #[test]
    fn a_new_image_holds_every_pod_but_the_highest_until_its_node_is_active() {
        let old = build(&validated("{nodes: 3}"), &observed(None, BTreeMap::new()));
        let old_hash = template_hash(&old.resources.stateful_set).expect("hash").to_string();
        let pods: BTreeMap<i32, Pod> = (0..3)
            .map(|i| (i, pod(&old_hash, "redislabs/redis:8.0.20-44")))
            .collect();
        let plan = build(
            &validated("{nodes: 3, redisEnterpriseImageSpec: {versionTag: 8.2.0-1}}"),
            &observed(Some(3), pods),
        );
        assert!(plan.upgrade);
        assert_eq!(plan.rollout.outdated, 3);
        // No node is reported active (no REST state), so even the highest pod waits: nothing restarts blindly.
        assert_eq!(plan.rollout.step, RolloutStep::Waiting { next: 2, blocker: 0 });
        assert_eq!(partition(&plan), Some(3));
        assert_eq!(partition(&old), Some(0), "a new cluster has nothing to hold back");
    }
}
