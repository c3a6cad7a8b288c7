//! The state vocabularies of Redis Enterprise as enums (reference/redis-enterprise.md §1.3, §4.2–4.4): the official
//! operator's REC `status.state`, and the REST API's bootstrap state, node status, bdb status and action status.
//! Pure types, no I/O. Each enum keeps a value it does not know (a newer cluster may send one) in `Unknown`, and writes it back
//! exactly as it came; known values are written in their documented spelling.

/// Defines a state enum whose variants are documented strings, plus `Unknown(String)` for any other string:
/// `as_str`, `Display`, `From<&str>`/`From<String>`/`FromStr` (never fails), serde as a plain string, and
/// `Default` (the empty string, what a missing field with `#[serde(default)]` used to be). A variant may list older
/// spellings after `|`; they are read as that variant and written in the current spelling.
macro_rules! state_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $(
                $(#[$variant_meta:meta])*
                $variant:ident = $text:literal $(| $legacy:literal)*,
            )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $(
                $(#[$variant_meta])*
                $variant,
            )+
            /// A value this agent does not know (a newer cluster may send one), kept exactly as it was sent.
            /// Build values with `From<&str>`, which never puts a known value here.
            Unknown(String),
        }

        impl $name {
            /// Every known value, in the documented order.
            pub const KNOWN: &'static [Self] = &[$(Self::$variant),+];

            /// The value as Redis Enterprise spells it (an unknown one as it was sent).
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $text,)+
                    Self::Unknown(text) => text,
                }
            }
        }

        impl From<&str> for $name {
            fn from(text: &str) -> Self {
                match text {
                    $($text $(| $legacy)* => Self::$variant,)+
                    other => Self::Unknown(other.to_string()),
                }
            }
        }

        impl From<String> for $name {
            fn from(text: String) -> Self {
                match Self::from(text.as_str()) {
                    Self::Unknown(_) => Self::Unknown(text),
                    known => known,
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::convert::Infallible;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Ok(Self::from(text))
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::Unknown(String::new())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                String::deserialize(deserializer).map(Self::from)
            }
        }
    };
}

state_enum! {
    /// A REC's `status.state`, as the official operator reports it (reference §1.3).
    pub enum ClusterState {
        /// The StatefulSet was just created; no pod yet.
        PendingCreation = "PendingCreation",
        /// Pod 0 is starting or creating the cluster.
        BootstrappingFirstPod = "BootstrappingFirstPod",
        /// The other pods are joining (also while a scale-up's new pods join).
        Initializing = "Initializing",
        /// The official operator resets the cluster for a recovery.
        RecoveryReset = "RecoveryReset",
        /// The official operator recovers the cluster's configuration on the first pod.
        RecoveringFirstPod = "RecoveringFirstPod",
        /// Every node is an active member.
        Running = "Running",
        /// Bootstrap failed.
        Error = "Error",
        /// The spec is invalid; nothing was changed.
        Invalid = "Invalid",
        /// The official operator refused an upgrade (bad configuration or prerequisites).
        InvalidUpgrade = "InvalidUpgrade",
        /// Pods are replaced one at a time for a new Redis Enterprise version.
        Upgrade = "Upgrade",
        /// The official operator deletes the cluster.
        Deleting = "Deleting",
        /// The official operator recreates the cluster.
        ClusterRecreating = "ClusterRecreating",
        /// Pods are replaced one at a time for a pod-template change. Release notes of operator 7.8.2 spell it
        /// `runningRollingUpgrade`; that spelling is read as this state.
        RunningRollingUpdate = "RunningRollingUpdate" | "runningRollingUpgrade",
    }
}

impl ClusterState {
    /// Whether a cluster in this state has been created on the REST side (so `GET /v1/nodes` answers).
    pub fn cluster_exists(&self) -> bool {
        matches!(
            self,
            Self::Initializing | Self::Running | Self::RunningRollingUpdate | Self::Upgrade
        )
    }

    /// Whether this is one of the rolling-update states.
    pub fn is_rolling(&self) -> bool {
        matches!(self, Self::RunningRollingUpdate | Self::Upgrade)
    }
}

state_enum! {
    /// The `state` of a node's `GET /v1/bootstrap` answer (reference §4.2).
    pub enum BootstrapState {
        /// Not bootstrapped; a bootstrap may be started.
        Idle = "idle",
        /// A bootstrap was accepted and is starting.
        Initiated = "initiated",
        /// The node is creating a new cluster.
        CreatingCluster = "creating_cluster",
        /// The node is recovering a cluster from its configuration backup.
        RecoveringCluster = "recovering_cluster",
        /// The node is joining an existing cluster.
        JoiningCluster = "joining_cluster",
        /// The last bootstrap failed (see `error_code`); a bootstrap may be started again.
        Error = "error",
        /// The node belongs to a cluster.
        Completed = "completed",
    }
}

state_enum! {
    /// A node's `status` in `GET /v1/nodes` (reference §4.3).
    pub enum NodeStatus {
        /// A working member.
        Active = "active",
        /// Being removed from the cluster.
        Decommissioning = "decommissioning",
        /// Not reachable.
        Down = "down",
        /// Being added to the cluster.
        Provisioning = "provisioning",
    }
}

state_enum! {
    /// A database's (bdb's) `status` (reference §4.4); the REDB's `status.status` carries the same values.
    pub enum DatabaseStatus {
        /// Being created.
        Pending = "pending",
        /// Serving, no change under way.
        Active = "active",
        /// Serving while a change is applied.
        ActiveChangePending = "active-change-pending",
        /// Being deleted.
        DeletePending = "delete-pending",
        /// Data is being imported.
        ImportPending = "import-pending",
        /// The cluster could not create it.
        CreationFailed = "creation-failed",
        /// Being recovered after a cluster recovery.
        Recovery = "recovery",
    }
}

state_enum! {
    /// An asynchronous action's `status` in `GET /v1/actions/{uid}` (reference §4.5, plus the final `cancelled` and
    /// `aborted` of redis/docs `objects/action`); the REDB's
    /// `status.lastActionStatus` carries the same values.
    pub enum ActionStatus {
        /// Waiting to run.
        Pending = "pending",
        /// Running.
        Active = "active",
        /// Finished well.
        Completed = "completed",
        /// Finished with an error.
        Failed = "failed",
        /// Stopped on request before it finished (final).
        Cancelled = "cancelled",
        /// Stopped by the cluster before it finished (final).
        Aborted = "aborted",
    }
}

impl ActionStatus {
    /// Whether the action finished, well or not.
    pub fn is_finished(&self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled | Self::Aborted)
    }

    /// Whether the action ended without doing its work (failed, cancelled or aborted).
    pub fn is_unsuccessful(&self) -> bool {
        matches!(self, Self::Failed | Self::Cancelled | Self::Aborted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// Every known value reads back as itself from its string and from JSON, and is written as its string.
    fn assert_round_trips<T>(known: &[T])
    where
        T: for<'a> From<&'a str> + serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
        T: std::fmt::Display,
    {
        for value in known {
            let text = value.to_string();
            assert_eq!(&T::from(text.as_str()), value, "{text}");
            let written = serde_json::to_value(value).expect("serialize");
            assert_eq!(written, Value::String(text.clone()));
            assert_eq!(
                &serde_json::from_value::<T>(written).expect("deserialize"),
                value,
                "{text}"
            );
        }
    }

    #[test]
    fn known_values_round_trip_in_their_documented_spelling() {
        assert_round_trips(ClusterState::KNOWN);
        assert_round_trips(BootstrapState::KNOWN);
        assert_round_trips(NodeStatus::KNOWN);
        assert_round_trips(DatabaseStatus::KNOWN);
        assert_round_trips(ActionStatus::KNOWN);
        assert_eq!(ClusterState::KNOWN.len(), 13);
        assert_eq!(BootstrapState::KNOWN.len(), 7);
        assert_eq!(NodeStatus::KNOWN.len(), 4);
        assert_eq!(DatabaseStatus::KNOWN.len(), 7);
        assert_eq!(ActionStatus::KNOWN.len(), 6);
        assert_eq!(ClusterState::RunningRollingUpdate.as_str(), "RunningRollingUpdate");
        assert_eq!(BootstrapState::CreatingCluster.as_str(), "creating_cluster");
        assert_eq!(DatabaseStatus::ActiveChangePending.as_str(), "active-change-pending");
        assert_eq!(NodeStatus::Provisioning.to_string(), "provisioning");
    }

    #[test]
    fn an_unknown_value_is_kept_and_written_back_unchanged() {
        let bdb: DatabaseStatus = serde_json::from_value(json!("active-resharding")).expect("deserialize");
        assert_eq!(bdb, DatabaseStatus::Unknown("active-resharding".into()));
        assert_eq!(
            serde_json::to_value(&bdb).expect("serialize"),
            json!("active-resharding")
        );
        assert_eq!(bdb.to_string(), "active-resharding");

        let state = ClusterState::from("Hibernating".to_string());
        assert_eq!(state, ClusterState::Unknown("Hibernating".into()));
        assert_eq!(state.as_str(), "Hibernating");
        assert!(!state.cluster_exists() && !state.is_rolling());

        assert_eq!(
            NodeStatus::from("ACTIVE"),
            NodeStatus::Unknown("ACTIVE".into()),
            "spelling is exact"
        );
        assert_eq!("failed".parse(), Ok(BootstrapState::Unknown("failed".into())));
        assert_eq!(BootstrapState::default().as_str(), "");
    }

    #[test]
    fn the_legacy_rolling_update_spelling_reads_as_the_current_state() {
        let legacy: ClusterState = serde_json::from_value(json!("runningRollingUpgrade")).expect("deserialize");
        assert_eq!(legacy, ClusterState::RunningRollingUpdate);
        assert!(legacy.is_rolling() && legacy.cluster_exists());
        assert_eq!(
            serde_json::to_value(&legacy).expect("serialize"),
            json!("RunningRollingUpdate")
        );
    }

    #[test]
    fn rolling_existing_and_finished_states() {
        let exists: Vec<&str> = ClusterState::KNOWN
            .iter()
            .filter(|s| s.cluster_exists())
            .map(ClusterState::as_str)
            .collect();
        assert_eq!(exists, ["Initializing", "Running", "Upgrade", "RunningRollingUpdate"]);
        let rolling: Vec<&str> = ClusterState::KNOWN
            .iter()
            .filter(|s| s.is_rolling())
            .map(ClusterState::as_str)
            .collect();
        assert_eq!(rolling, ["Upgrade", "RunningRollingUpdate"]);
        let finished: Vec<&str> = ActionStatus::KNOWN
            .iter()
            .filter(|s| s.is_finished())
            .map(ActionStatus::as_str)
            .collect();
        assert_eq!(finished, ["completed", "failed", "cancelled", "aborted"]);
        assert!(
            !ActionStatus::from("queued").is_finished(),
            "a v2 status is not taken for an end"
        );
    }

    #[test]
    fn a_non_string_value_is_an_error() {
        let error = serde_json::from_value::<NodeStatus>(json!(3)).expect_err("a number is no status");
        assert!(error.to_string().contains("expected a string"), "{error}");
    }
}
