//! `ValidatePersistentVolumeClaim`/`ValidatePersistentVolumeClaimUpdate`: access modes and a storage request
//! are required; after creation only `resources.requests` (of a bound claim, and never below the previous value)
//! and `volumeAttributesClassName` may change. Status writes are not checked.

use serde_json::{Value, json};

use super::quantity::Quantity;
use super::{FieldError, Write};

fn frozen_spec(object: &Value) -> Value {
    let mut spec = object.get("spec").cloned().unwrap_or_else(|| json!({}));
    if let Some(map) = spec.as_object_mut() {
        map.remove("volumeAttributesClassName");
        map.entry("volumeMode").or_insert_with(|| json!("Filesystem"));
        if let Some(requests) = map
            .get_mut("resources")
            .and_then(|r| r.get_mut("requests"))
            .and_then(Value::as_object_mut)
        {
            requests.remove("storage");
        }
    }
    spec
}

fn storage(object: &Value) -> Option<Quantity> {
    object
        .pointer("/spec/resources/requests/storage")
        .and_then(Value::as_str)
        .and_then(Quantity::parse)
}

/// Runs the claim rules for a create or an update of the main resource.
pub fn validate_claim(object: &Value, write: Write<'_>, errors: &mut Vec<FieldError>) {
    match write {
        Write::Status(_) => {}
        Write::Create => {
            if object
                .pointer("/spec/accessModes")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty)
            {
                errors.push(FieldError::required(
                    "spec.accessModes",
                    "at least 1 access mode is required",
                ));
            }
            if object.pointer("/spec/resources/requests/storage").is_none() {
                errors.push(FieldError::required("spec.resources[storage]", ""));
            }
        }
        Write::Update(old) => {
            let bound = old.pointer("/status/phase").and_then(Value::as_str) == Some("Bound");
            let storage_changed = storage(object) != storage(old);
            if frozen_spec(object) != frozen_spec(old) || (storage_changed && !bound) {
                errors.push(FieldError::forbidden(
                    "spec",
                    "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
                ));
            }
            if let (Some(new), Some(before)) = (storage(object), storage(old))
                && bound
                && new.nanos() < before.nanos()
            {
                errors.push(FieldError::forbidden(
                    "spec.resources.requests.storage",
                    "field can not be less than previous value",
                ));
            }
        }
    }
}
