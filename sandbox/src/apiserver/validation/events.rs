//! `ValidateEventCreate` on the stored (core/v1) form of an Event: with `eventTime`, the reporting controller,
//! instance, action and reason are required and bounded and the note is at most 1024 bytes; without it, the
//! namespaces must agree; events.k8s.io/v1 additionally requires `eventTime` and a known type and refuses the
//! deprecated fields.

use serde_json::Value;

use super::names::{is_dns1123_subdomain, is_qualified_name};
use super::{FieldError, quote, text};

/// The longest `note` (`message` in core/v1), in bytes.
pub const NOTE_LENGTH_LIMIT: usize = 1024;
/// The longest `reason`, `action` and `reportingInstance`.
pub const SHORT_FIELD_LIMIT: usize = 128;

/// Runs the create rules; `events_api` is true for a request to events.k8s.io (`version` is its version).
pub fn validate_create(object: &Value, events_api: bool, version: &str, errors: &mut Vec<FieldError>) {
    let namespace = text(object, "/metadata/namespace");
    let involved_namespace = text(object, "/involvedObject/namespace");
    let event_time = text(object, "/eventTime");
    let controller_field = if events_api {
        "reportingController"
    } else {
        "reportingComponent"
    };
    if event_time.is_empty() {
        let agrees = if involved_namespace.is_empty() {
            namespace.is_empty() || namespace == "default"
        } else {
            namespace == involved_namespace
        };
        if !agrees {
            errors.push(FieldError::invalid(
                "involvedObject.namespace",
                quote(involved_namespace),
                "does not match event.namespace",
            ));
        }
    } else {
        if involved_namespace.is_empty() && namespace != "default" && namespace != "kube-system" {
            errors.push(FieldError::invalid(
                "involvedObject.namespace",
                quote(involved_namespace),
                "does not match event.namespace",
            ));
        }
        let controller = text(object, "/reportingComponent");
        if controller.is_empty() {
            errors.push(FieldError::required(controller_field, ""));
        }
        for message in is_qualified_name(controller) {
            errors.push(FieldError::invalid(controller_field, quote(controller), message));
        }
        for (field, limit) in [
            ("reportingInstance", SHORT_FIELD_LIMIT),
            ("action", SHORT_FIELD_LIMIT),
            ("reason", SHORT_FIELD_LIMIT),
        ] {
            let value = text(object, &format!("/{field}"));
            if value.is_empty() {
                errors.push(FieldError::required(field, ""));
            }
            if value.len() > limit {
                errors.push(FieldError::invalid(
                    field,
                    "\"\"",
                    format!("can have at most {limit} characters"),
                ));
            }
        }
        if text(object, "/message").len() > NOTE_LENGTH_LIMIT {
            errors.push(FieldError::invalid(
                "message",
                "\"\"",
                format!("can have at most {NOTE_LENGTH_LIMIT} characters"),
            ));
        }
    }
    for message in is_dns1123_subdomain(namespace) {
        errors.push(FieldError::invalid("namespace", quote(namespace), message));
    }
    if !events_api || version == "v1beta1" {
        return;
    }
    if event_time.is_empty() {
        errors.push(FieldError::required("eventTime", ""));
    }
    let kind = text(object, "/type");
    if kind != "Normal" && kind != "Warning" {
        errors.push(FieldError::invalid(
            "type",
            "\"\"",
            format!("has invalid value: {kind}"),
        ));
    }
    let set = |pointer: &str| {
        object
            .pointer(pointer)
            .is_some_and(|v| !v.is_null() && v != "" && v != 0)
    };
    for (pointer, field) in [
        ("/firstTimestamp", "deprecatedFirstTimestamp"),
        ("/lastTimestamp", "deprecatedLastTimestamp"),
        ("/count", "deprecatedCount"),
    ] {
        if set(pointer) {
            errors.push(FieldError::invalid(field, "\"\"", "needs to be unset"));
        }
    }
    if set("/source/component") || set("/source/host") {
        errors.push(FieldError::invalid("deprecatedSource", "\"\"", "needs to be unset"));
    }
    if let Some(series) = object.get("series").filter(|s| !s.is_null()) {
        if series.get("count").and_then(Value::as_i64).unwrap_or(0) < 2 {
            errors.push(FieldError::invalid("series.count", "\"\"", "should be at least 2"));
        }
        if series.get("lastObservedTime").is_none_or(Value::is_null) {
            errors.push(FieldError::required("series.lastObservedTime", ""));
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn notes_are_bounded_in_bytes() {
        let event = |message: String| {
            json!({"metadata": {"namespace": "ns"}, "involvedObject": {"namespace": "ns"},
                "eventTime": "2026-01-01T00:00:00.000000Z", "reportingComponent": "redis-gitops",
                "reportingInstance": "a", "action": "Sync", "reason": "Synced", "type": "Normal", "message": message})
        };
        let mut errors = Vec::new();
        validate_create(&event("é".repeat(512)), true, "v1", &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        validate_create(&event("é".repeat(513)), true, "v1", &mut errors);
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0].message(),
            "Invalid value: \"\": can have at most 1024 characters"
        );
    }
}
