//! `ValidateObjectMeta` and `ValidateObjectMetaUpdate`: the name rule of the kind, namespace, labels, annotations
//! (syntax and the 256 KiB total), owner references (complete, not an Event, at most one controller) and
//! finalizer names; on update, no new finalizer once deletion started.

use serde_json::Value;

use super::names::{is_dns1123_label, is_qualified_name, is_valid_label_value, validate_object_name};
use super::{FieldError, quote};
use crate::apiserver::resources::ResourceInfo;

/// The total size of all annotation keys and values.
pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// `ValidateLabels` on a string map at `field` (also used for selectors and pod template labels).
pub fn validate_labels(labels: Option<&Value>, field: &str, errors: &mut Vec<FieldError>) {
    let Some(labels) = labels.and_then(Value::as_object) else {
        return;
    };
    for (key, value) in labels {
        for message in is_qualified_name(key) {
            errors.push(FieldError::invalid(field, quote(key), message));
        }
        let value = value.as_str().unwrap_or_default();
        for message in is_valid_label_value(value) {
            errors.push(FieldError::invalid(field, quote(value), message));
        }
    }
}

/// `ValidateAnnotations` on a string map at `field`: keys are qualified names (case does not matter), and keys
/// plus values take at most 256 KiB.
pub fn validate_annotations(annotations: Option<&Value>, field: &str, errors: &mut Vec<FieldError>) {
    let Some(annotations) = annotations.and_then(Value::as_object) else {
        return;
    };
    let mut total = 0usize;
    for (key, value) in annotations {
        for message in is_qualified_name(&key.to_lowercase()) {
            errors.push(FieldError::invalid(field, quote(key), message));
        }
        total += key.len() + value.as_str().map_or(0, str::len);
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errors.push(FieldError::too_long(field, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
}

fn validate_owner_references(references: Option<&Value>, errors: &mut Vec<FieldError>) {
    let Some(references) = references.and_then(Value::as_array) else {
        return;
    };
    let field = "metadata.ownerReferences";
    let mut first_controller: Option<String> = None;
    for reference in references {
        let text = |key: &str| reference.get(key).and_then(Value::as_str).unwrap_or_default();
        let api_version = text("apiVersion");
        let version = api_version.rsplit('/').next().unwrap_or_default();
        if version.is_empty() {
            errors.push(FieldError::invalid(
                format!("{field}.apiVersion"),
                quote(api_version),
                "version must not be empty",
            ));
        }
        for (key, detail) in [
            ("kind", "kind must not be empty"),
            ("name", "name must not be empty"),
            ("uid", "uid must not be empty"),
        ] {
            if text(key).is_empty() {
                errors.push(FieldError::invalid(format!("{field}.{key}"), "\"\"", detail));
            }
        }
        if api_version == "v1" && text("kind") == "Event" {
            errors.push(FieldError::invalid(
                field,
                reference.to_string(),
                "/v1, Kind=Event is disallowed from being an owner",
            ));
        }
        if reference.get("controller").and_then(Value::as_bool) == Some(true) {
            let current = format!("{}/{}", text("kind"), text("name"));
            match &first_controller {
                Some(first) => errors.push(FieldError::invalid(
                    field,
                    Value::Array(references.clone()).to_string(),
                    format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {first} and {current}"
                    ),
                )),
                None => first_controller = Some(current),
            }
        }
    }
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// Runs the create (`old` absent) or update rules on the object's metadata.
pub fn validate(info: &ResourceInfo, object: &Value, old: Option<&Value>, errors: &mut Vec<FieldError>) {
    let metadata = object.get("metadata").cloned().unwrap_or(Value::Null);
    let stored = info.storage_resource();
    let (group, plural) = if info.custom {
        ("custom", "")
    } else {
        (stored.group.as_str(), stored.plural.as_str())
    };
    let text = |key: &str| metadata.get(key).and_then(Value::as_str).unwrap_or_default();
    let name = text("name");
    if old.is_none() {
        let generate_name = text("generateName");
        if !generate_name.is_empty() {
            for message in validate_object_name(group, plural, generate_name, true) {
                errors.push(FieldError::invalid(
                    "metadata.generateName",
                    quote(generate_name),
                    message,
                ));
            }
        }
    }
    if name.is_empty() {
        errors.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else if old.is_none() {
        for message in validate_object_name(group, plural, name, false) {
            errors.push(FieldError::invalid("metadata.name", quote(name), message));
        }
    }
    let namespace = text("namespace");
    if info.namespaced && !namespace.is_empty() {
        for message in is_dns1123_label(namespace) {
            errors.push(FieldError::invalid("metadata.namespace", quote(namespace), message));
        }
    }
    validate_labels(metadata.get("labels"), "metadata.labels", errors);
    validate_annotations(metadata.get("annotations"), "metadata.annotations", errors);
    validate_owner_references(metadata.get("ownerReferences"), errors);
    let finalizers = strings(metadata.get("finalizers"));
    for finalizer in &finalizers {
        for message in is_qualified_name(finalizer) {
            errors.push(FieldError::invalid("metadata.finalizers", quote(finalizer), message));
        }
    }
    if finalizers.iter().any(|f| f == "orphan") && finalizers.iter().any(|f| f == "foregroundDeletion") {
        errors.push(FieldError::invalid(
            "metadata.finalizers",
            Value::from(finalizers.clone()).to_string(),
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
    if let Some(old) = old
        && old.pointer("/metadata/deletionTimestamp").is_some()
    {
        let before = strings(old.pointer("/metadata/finalizers"));
        let mut added: Vec<&String> = finalizers.iter().filter(|f| !before.contains(f)).collect();
        added.sort();
        added.dedup();
        if !added.is_empty() {
            let list: Vec<String> = added.iter().map(|f| quote(f)).collect();
            errors.push(FieldError::forbidden(
                "metadata.finalizers",
                format!(
                    "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                    list.join(", ")
                ),
            ));
        }
    }
}
