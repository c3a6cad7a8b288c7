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

/// Sets `new` in `conditions`, keeping `lastTransitionTime` from the existing condition of the same type when its
/// status did not change. Returns whether anything other than timestamps changed, so callers skip no-op writes.
pub fn set_condition(conditions: &mut Vec<Condition>, mut new: Condition) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(existing) => {
            if existing.status == new.status {
                new.last_transition_time = existing.last_transition_time.clone();
            }
            let changed = *existing != new;
            *existing = new;
            changed
        }
        None => {
            conditions.push(new);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn condition(status: &str, reason: &str, time: &str) -> Condition {
        Condition {
            type_: types::READY.into(),
            status: status.into(),
            reason: reason.into(),
            message: String::new(),
            observed_generation: Some(1),
            last_transition_time: time.into(),
        }
    }

    #[test]
    fn transition_time_moves_only_when_status_flips() {
        let mut conditions = vec![condition("False", "Pending", "t1")];
        assert!(!set_condition(&mut conditions, condition("False", "Pending", "t2")));
        assert_eq!(conditions[0].last_transition_time, "t1");
        assert!(set_condition(&mut conditions, condition("False", "Waiting", "t3")));
        assert_eq!(conditions[0].last_transition_time, "t1");
        assert!(set_condition(&mut conditions, condition("True", "Created", "t4")));
        assert_eq!(conditions[0].last_transition_time, "t4");
        assert_eq!(conditions.len(), 1);
    }
}
