//! The event publisher every controller uses: one `Recorder` per controller, created once; a note is cut to the
//! 1024 bytes the API server accepts (on a character boundary), reason and action to 128; a failure to publish
//! is logged, never fatal. It may write Events only.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tracing::warn;

/// The most bytes of an event note (`ValidateEventCreate` refuses longer ones).
pub const MAX_NOTE_BYTES: usize = 1024;
/// The most bytes of an event's reason and action.
pub const MAX_REASON_BYTES: usize = 128;

/// The longest prefix of `text` of at most `limit` bytes that ends on a character boundary.
pub fn truncate_bytes(text: &str, limit: usize) -> &str {
    if text.len() <= limit {
        return text;
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

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
            reason: truncate_bytes(reason, MAX_REASON_BYTES).to_string(),
            note: Some(truncate_bytes(note, MAX_NOTE_BYTES).to_string()),
            action: truncate_bytes(action, MAX_REASON_BYTES).to_string(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, reference).await {
            warn!(error = %crate::runtime::errors::kube_error_text(&error), reason, "failed to publish an event");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_cut_at_1024_bytes_on_a_character_boundary() {
        let ascii = "a".repeat(2000);
        assert_eq!(truncate_bytes(&ascii, MAX_NOTE_BYTES).len(), 1024);
        // 'é' is two bytes: 1024 bytes hold 512 of them; with one ASCII byte first, only 511 fit.
        let accented = format!("x{}", "é".repeat(600));
        let cut = truncate_bytes(&accented, MAX_NOTE_BYTES);
        assert_eq!(cut.len(), 1023);
        assert_eq!(cut.chars().count(), 512);
        assert_eq!(truncate_bytes("short", MAX_NOTE_BYTES), "short");
    }
}
