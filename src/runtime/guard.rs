//! The guard against one object that does not decode: controllers watch `DeserializeGuard<K>` (kube-core's
//! error boundary), so such an object reaches its own reconcile instead of breaking the watch for every other one;
//! there it is logged and reported with a Warning event, and skipped until it changes. It may publish events only.

use std::sync::Arc;

use kube::Resource;
use kube::core::DeserializeGuard;
use kube::runtime::events::EventType;
use tracing::warn;

use super::events::Publisher;
use super::object_key;

/// The event reason of an object that does not decode.
pub const INVALID_OBJECT_REASON: &str = "InvalidObject";

/// The most characters of the decoding error quoted in the event (it may quote a user's value).
const MAX_ERROR_CHARS: usize = 300;

/// The decoded object, or `None` after reporting one that does not decode (a Warning event on it and a log line).
pub async fn decoded<K>(object: &DeserializeGuard<K>, events: &Publisher) -> Option<Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone,
{
    match &object.0 {
        Ok(decoded) => Some(Arc::new(decoded.clone())),
        Err(invalid) => {
            let kind = K::kind(&());
            let key = object_key(object);
            let error: String = invalid.error.chars().take(MAX_ERROR_CHARS).collect();
            warn!(%kind, object = %key, %error, "the object does not decode; it is skipped until it changes");
            let note = format!(
                "{kind} {key} cannot be read by the agent: {error}; fix the object, the agent skips it until it changes"
            );
            events
                .publish_to(
                    &object.object_ref(&()),
                    EventType::Warning,
                    INVALID_OBJECT_REASON,
                    "Decode",
                    &note,
                )
                .await;
            None
        }
    }
}
