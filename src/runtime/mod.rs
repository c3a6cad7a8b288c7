//! What every controller of the agent shares, written once: conditions with an injected clock, the event
//! publisher, the per-object backoff, the shutdown relay, error categories, the kind → API resource table and the
//! guard against objects that do not decode, and the watch scope (cluster or listed namespaces). It may talk to the API server only to publish events; it decides
//! nothing about any one kind.

pub mod backoff;
pub mod conditions;
pub mod errors;
pub mod events;
pub mod guard;
pub mod kinds;
pub mod scope;
pub mod shutdown;

pub use backoff::{Backoff, resync_interval};
pub use conditions::{Clock, ConditionStatus, SystemClock, new_condition, set_condition};
pub use errors::ErrorCategory;
pub use events::Publisher;
pub use kinds::{KindResource, UnknownKind, api_resource};
pub use scope::{WatchScope, api_in};
pub use shutdown::ShutdownSignal;

/// `<namespace>/<name>` of an object, for logs, span fields and backoff keys.
pub fn object_key<K: kube::Resource>(object: &K) -> String {
    let meta = object.meta();
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}
