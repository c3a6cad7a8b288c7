//! Conditions in the meta/v1 shape, kstatus style, shared by every kind we own or extend.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One aspect of an object's state (meta/v1 `Condition`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Type of the condition: `Ready`, `Reconciling`, `Stalled` or `Synced`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Machine-readable reason in CamelCase, for example `DatabaseCreated`.
    pub reason: String,
    /// Human-readable details.
    #[serde(default)]
    pub message: String,
    /// The generation of the spec this condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When the status last changed (RFC 3339).
    pub last_transition_time: String,
}

/// The condition types this project writes.
pub mod types {
    /// The object is in the state its spec asks for.
    pub const READY: &str = "Ready";
    /// The agent is working towards the spec (waiting is not an error).
    pub const RECONCILING: &str = "Reconciling";
    /// The agent cannot make progress without a change to the spec or its environment.
    pub const STALLED: &str = "Stalled";
    /// The object matches its source revision in Git.
    pub const SYNCED: &str = "Synced";
}

/// The merge rule of conditions lives with the other shared controller machinery; re-exported so existing imports
/// resolve.
pub use crate::runtime::conditions::set_condition;
