//! The cluster states (`status.state`) this controller reports, spelled as the official operator spells them.

/// The StatefulSet was just created; no pod yet.
pub const PENDING_CREATION: &str = "PendingCreation";
/// Pod 0 is starting or creating the cluster.
pub const BOOTSTRAPPING_FIRST_POD: &str = "BootstrappingFirstPod";
/// The other pods are joining (also while a scale-up's new pods join).
pub const INITIALIZING: &str = "Initializing";
/// Every node is an active member.
pub const RUNNING: &str = "Running";
/// Pods are replaced one at a time for a pod-template change.
pub const RUNNING_ROLLING_UPDATE: &str = "RunningRollingUpdate";
/// Pods are replaced one at a time for a new Redis Enterprise version.
pub const UPGRADE: &str = "Upgrade";
/// Bootstrap failed.
pub const ERROR: &str = "Error";
/// The spec is invalid; nothing was changed.
pub const INVALID: &str = "Invalid";

/// Whether a cluster in `state` has been created on the REST side (so `GET /v1/nodes` answers).
pub fn cluster_exists(state: &str) -> bool {
    matches!(
        state,
        INITIALIZING | RUNNING | RUNNING_ROLLING_UPDATE | UPGRADE | "runningRollingUpgrade"
    )
}

/// Whether `state` is one of the rolling-update states.
pub fn is_rolling(state: &str) -> bool {
    matches!(state, RUNNING_ROLLING_UPDATE | UPGRADE | "runningRollingUpgrade")
}
