//! The event publisher every controller uses: one `Recorder` per controller, created once; a note is cut to the
//! 1000 characters Kubernetes keeps; a failure to publish is logged, never fatal. It may write Events only.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tracing::warn;

/// The most characters of an event note (the API server refuses longer ones).
pub const MAX_NOTE_CHARS: usize = 1000;

/// Publishes the events of one controller.
#[derive(Clone)]
pub struct Publisher {
    recorder: Recorder,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").finish_non_exhaustive()
    }
}

impl Publisher {
    /// A publisher reporting as `controller` (with the agent's pod name as `instance`).
    pub fn new(client: kube::Client, controller: &str, instance: Option<String>) -> Self {
        let reporter = Reporter {
            controller: controller.to_string(),
            instance,
        };
        Self {
            recorder: Recorder::new(client, reporter),
        }
    }

    /// Publishes an event about `object`.
    pub async fn publish<K>(&self, object: &K, type_: EventType, reason: &str, action: &str, note: &str)
    where
        K: Resource<DynamicType = ()>,
    {
        self.publish_to(&object.object_ref(&()), type_, reason, action, note)
            .await;
    }

    /// Publishes an event about the object `reference` names.
    pub async fn publish_to(
        &self,
        reference: &ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: &str,
    ) {
        let event = Event {
            type_,
            reason: reason.to_string(),
            note: Some(note.chars().take(MAX_NOTE_CHARS).collect()),
            action: action.to_string(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, reference).await {
            warn!(error = %crate::runtime::errors::kube_error_text(&error), reason, "failed to publish an event");
        }
    }
}
