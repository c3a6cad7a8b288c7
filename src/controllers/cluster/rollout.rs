//! Rolling updates as a pure decision (part of the build stage): which StatefulSet `partition` lets exactly one
//! Redis Enterprise node restart at a time. No I/O; the inputs are what the dereference stage observed.
//!
//! How the partition is computed. A StatefulSet with `RollingUpdate` replaces, highest ordinal first, every pod
//! whose ordinal is at or above `partition` and whose template is outdated; pods below it keep their template.
//! Let `h` be the highest ordinal whose pod still runs the old template (a pod is "updated" when its
//! `redisgitops.dev/pod-template-hash` annotation equals the desired one):
//! - no outdated pod: `partition = 0` (nothing to hold back; new pods of a scale-up take the new template);
//! - every other pod (all ordinals except `h`) is Ready and its node is `active` in `GET /v1/nodes`: `partition = h`,
//!   so the StatefulSet replaces pod `h` now;
//! - otherwise `partition = h + 1`: pods `0..=h` wait. This holds while the previously replaced pod `h + 1` comes
//!   back, rejoins and turns `active`, and whenever any other node is down (the cluster's quorum comes first).
//!
//! So the partition equals the number of pods still on the old template that must wait, and it only ever moves
//! down by one step per replaced node. A template change is applied together with `partition = replicas` or
//! `replicas - 1`, never with 0, so the StatefulSet never rolls nodes on its own.

/// What the dereference stage saw of one ordinal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PodRollout {
    /// The pod exists.
    pub present: bool,
    /// The pod runs the desired template.
    pub updated: bool,
    /// The pod is Ready.
    pub ready: bool,
    /// The pod's Redis Enterprise node is `active` in the cluster.
    pub node_active: bool,
}

impl PodRollout {
    fn healthy(&self) -> bool {
        self.present && self.ready && self.node_active
    }
}

/// Where a rolling update stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RolloutStep {
    /// No pod runs an outdated template.
    Complete,
    /// Pod `ordinal` is let go now.
    Replace {
        /// Its ordinal.
        ordinal: i32,
    },
    /// Pod `next` waits for pod `blocker` (Ready and node active) before it is replaced.
    Waiting {
        /// The next pod to replace.
        next: i32,
        /// The first pod that is not healthy yet.
        blocker: i32,
    },
}

/// The partition to apply and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolloutDecision {
    /// `spec.updateStrategy.rollingUpdate.partition`.
    pub partition: i32,
    /// Where the rolling update stands.
    pub step: RolloutStep,
    /// Pods still on an outdated template.
    pub outdated: usize,
}

/// Decides the partition for `replicas` pods; `pods[i]` describes ordinal `i` (missing entries: no pod).
pub fn decide_partition(replicas: i32, pods: &[PodRollout]) -> RolloutDecision {
    let pod = |ordinal: i32| {
        usize::try_from(ordinal)
            .ok()
            .and_then(|index| pods.get(index))
            .copied()
            .unwrap_or_default()
    };
    let outdated: Vec<i32> = (0..replicas)
        .filter(|&ordinal| {
            let pod = pod(ordinal);
            pod.present && !pod.updated
        })
        .collect();
    let Some(&highest) = outdated.last() else {
        return RolloutDecision {
            partition: 0,
            step: RolloutStep::Complete,
            outdated: 0,
        };
    };
    let blocker = (0..replicas).find(|&ordinal| ordinal != highest && !pod(ordinal).healthy());
    let (partition, step) = match blocker {
        None => (highest, RolloutStep::Replace { ordinal: highest }),
        Some(blocker) => (highest + 1, RolloutStep::Waiting { next: highest, blocker }),
    };
    RolloutDecision {
        partition,
        step,
        outdated: outdated.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: PodRollout = PodRollout {
        present: true,
        updated: false,
        ready: true,
        node_active: true,
    };
    const NEW: PodRollout = PodRollout {
        present: true,
        updated: true,
        ready: true,
        node_active: true,
    };
    const NEW_NOT_ACTIVE: PodRollout = PodRollout {
        present: true,
        updated: true,
        ready: true,
        node_active: false,
    };
    const NEW_NOT_READY: PodRollout = PodRollout {
        present: true,
        updated: true,
        ready: false,
        node_active: false,
    };
    const MISSING: PodRollout = PodRollout {
        present: false,
        updated: false,
        ready: false,
        node_active: false,
    };
    const OLD_DOWN: PodRollout = PodRollout {
        present: true,
        updated: false,
        ready: true,
        node_active: false,
    };

    #[test]
    fn the_partition_walks_down_one_healthy_node_at_a_time() {
        use RolloutStep::*;
        let table: &[(&str, i32, &[PodRollout], i32, RolloutStep)] = &[
            ("nothing to roll", 3, &[NEW, NEW, NEW], 0, Complete),
            (
                "new template, all healthy: highest first",
                3,
                &[OLD, OLD, OLD],
                2,
                Replace { ordinal: 2 },
            ),
            (
                "replaced pod gone: hold the rest",
                3,
                &[OLD, OLD, MISSING],
                2,
                Waiting { next: 1, blocker: 2 },
            ),
            (
                "replaced pod not ready yet",
                3,
                &[OLD, OLD, NEW_NOT_READY],
                2,
                Waiting { next: 1, blocker: 2 },
            ),
            (
                "replaced pod ready, node not active",
                3,
                &[OLD, OLD, NEW_NOT_ACTIVE],
                2,
                Waiting { next: 1, blocker: 2 },
            ),
            (
                "replaced node active: next one",
                3,
                &[OLD, OLD, NEW],
                1,
                Replace { ordinal: 1 },
            ),
            ("last one", 3, &[OLD, NEW, NEW], 0, Replace { ordinal: 0 }),
            (
                "last one back but not active",
                3,
                &[NEW_NOT_ACTIVE, NEW, NEW],
                0,
                Complete,
            ),
            (
                "another node down: quorum first",
                3,
                &[OLD_DOWN, OLD, OLD],
                3,
                Waiting { next: 2, blocker: 0 },
            ),
            (
                "an unhealthy outdated pod may be replaced",
                3,
                &[OLD, OLD, OLD_DOWN],
                2,
                Replace { ordinal: 2 },
            ),
            (
                "scale-up pods come new",
                5,
                &[OLD, OLD, OLD, MISSING, MISSING],
                3,
                Waiting { next: 2, blocker: 3 },
            ),
            ("bootstrapping: nothing outdated", 3, &[NEW_NOT_READY], 0, Complete),
        ];
        for (name, replicas, pods, partition, step) in table {
            let decision = decide_partition(*replicas, pods);
            assert_eq!((decision.partition, &decision.step), (*partition, step), "{name}");
        }
    }

    #[test]
    fn outdated_pods_are_counted() {
        assert_eq!(decide_partition(3, &[OLD, OLD, NEW]).outdated, 2);
        assert_eq!(decide_partition(3, &[NEW, NEW, NEW]).outdated, 0);
    }
}
