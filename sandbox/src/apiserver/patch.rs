//! Patch application: JSON merge patch (RFC 7386), JSON patch (RFC 6902, via the `json-patch` crate) and
//! strategic merge patch (merge lists by the keys of `fields::ListTypes`, honouring `$patch`,
//! `$setElementOrder`, `$retainKeys` and `$deleteFromPrimitiveList` directives; for custom resources, whose
//! lists have no patch strategy, it behaves as a merge patch except for lists with `x-kubernetes-list-type`).

use serde_json::Value;

use super::error::ApiError;
use super::fields::{ListType, ListTypes, item_key};

/// The patch types the server accepts, by `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/merge-patch+json`.
    Merge,
    /// `application/json-patch+json`.
    Json,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
}

impl PatchKind {
    /// The patch type named by a `Content-Type` header.
    pub fn from_content_type(content_type: &str) -> Result<Self, ApiError> {
        let media = content_type.split(';').next().unwrap_or_default().trim();
        match media {
            "application/merge-patch+json" => Ok(PatchKind::Merge),
            "application/json-patch+json" => Ok(PatchKind::Json),
            "application/strategic-merge-patch+json" => Ok(PatchKind::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Ok(PatchKind::Apply),
            _ => Err(ApiError::UnsupportedMediaType {
                accepted: "application/json-patch+json, application/merge-patch+json, \
                           application/strategic-merge-patch+json, application/apply-patch+yaml"
                    .into(),
            }),
        }
    }
}

/// Applies a JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

/// Applies a JSON patch document atomically. As in kube-apiserver, a `test` of `null` passes when the path is
/// absent (kube-runtime's finalizer helper relies on it); a failed `test` is a 422, a malformed patch a 400.
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), ApiError> {
    let operations: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| ApiError::bad_request(format!("the JSON patch is malformed: {e}")))?;
    let mut working = target.clone();
    for operation in &operations.0 {
        if let json_patch::PatchOperation::Test(test) = operation
            && test.value.is_null()
            && working.pointer(test.path.as_str()).is_none_or(Value::is_null)
        {
            continue;
        }
        json_patch::patch(&mut working, std::slice::from_ref(operation)).map_err(|e| {
            let message = format!("the JSON patch could not be applied: {e}");
            if matches!(operation, json_patch::PatchOperation::Test(_)) {
                ApiError::Invalid {
                    kind: String::new(),
                    group: String::new(),
                    name: String::new(),
                    summary: message.clone(),
                    causes: Vec::new(),
                }
            } else {
                ApiError::bad_request(message)
            }
        })?;
    }
    *target = working;
    Ok(())
}

/// Applies a strategic merge patch using the given list semantics.
pub fn strategic_merge(target: &mut Value, patch: &Value, list_types: &dyn ListTypes) -> Result<(), ApiError> {
    let mut names = Vec::new();
    merge_object(target, patch, list_types, &mut names)
}

fn merge_object(
    target: &mut Value,
    patch: &Value,
    list_types: &dyn ListTypes,
    names: &mut Vec<String>,
) -> Result<(), ApiError> {
    let Some(patch_map) = patch.as_object() else {
        *target = patch.clone();
        return Ok(());
    };
    if patch_map.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut replacement = patch.clone();
        if let Some(m) = replacement.as_object_mut() {
            m.remove("$patch");
        }
        *target = replacement;
        return Ok(());
    }
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    let mut retain: Option<Vec<String>> = None;
    for (key, value) in patch_map {
        if key == "$patch" || key.starts_with("$setElementOrder/") {
            continue;
        }
        if key == "$retainKeys" {
            retain = value
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect());
            continue;
        }
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(list), Some(remove)) = (target.get_mut(field).and_then(Value::as_array_mut), value.as_array())
            {
                list.retain(|item| !remove.contains(item));
            }
            continue;
        }
        if key.starts_with('$') {
            return Err(ApiError::bad_request(format!(
                "the strategic merge patch directive {key} is not supported by the sandbox API server"
            )));
        }
        let Some(target_map) = target.as_object_mut() else {
            continue;
        };
        if value.is_null() {
            target_map.remove(key);
            continue;
        }
        names.push(key.clone());
        let existing = target_map.entry(key.clone()).or_insert(Value::Null);
        match value {
            Value::Object(_) => {
                if value.get("$patch").and_then(Value::as_str) == Some("delete") {
                    target_map.remove(key);
                } else {
                    merge_object(existing, value, list_types, names)?;
                }
            }
            Value::Array(items) => merge_list(existing, items, list_types, names)?,
            _ => *existing = value.clone(),
        }
        names.pop();
    }
    if let (Some(keys), Some(target_map)) = (retain, target.as_object_mut()) {
        target_map.retain(|k, _| keys.contains(k));
    }
    Ok(())
}

fn merge_list(
    target: &mut Value,
    items: &[Value],
    list_types: &dyn ListTypes,
    names: &mut Vec<String>,
) -> Result<(), ApiError> {
    match list_types.list_type(names) {
        ListType::Map(keys) if !keys.is_empty() => {
            if items
                .iter()
                .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
            {
                *target = Value::Array(items.iter().filter(|i| i.get("$patch").is_none()).cloned().collect());
                return Ok(());
            }
            if !target.is_array() {
                *target = Value::Array(Vec::new());
            }
            for item in items {
                let key = item_key(item, &keys);
                let Some(list) = target.as_array_mut() else {
                    break;
                };
                let position = list.iter().position(|existing| item_key(existing, &keys) == key);
                let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
                match (position, delete) {
                    (Some(i), true) => {
                        list.remove(i);
                    }
                    (None, true) => {}
                    (Some(i), false) => merge_object(&mut list[i], item, list_types, names)?,
                    (None, false) => {
                        let mut fresh = Value::Object(Default::default());
                        merge_object(&mut fresh, item, list_types, names)?;
                        list.push(fresh);
                    }
                }
            }
        }
        ListType::Set => {
            if !target.is_array() {
                *target = Value::Array(Vec::new());
            }
            if let Some(list) = target.as_array_mut() {
                for item in items {
                    if !list.contains(item) {
                        list.push(item.clone());
                    }
                }
            }
        }
        _ => *target = Value::Array(items.to_vec()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::fields::BuiltinListTypes;
    use serde_json::json;

    #[test]
    fn strategic_merge_merges_containers_by_name() {
        let mut pod = json!({"spec": {"containers": [
            {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
            {"name": "b", "image": "b:1"}
        ], "tolerations": [{"key": "t"}]}});
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
            "containers": [
                {"name": "a", "env": [{"name": "Y", "value": "2"}]},
                {"name": "b", "$patch": "delete"}
            ],
            "tolerations": [{"key": "u"}]
        }});
        assert!(strategic_merge(&mut pod, &patch, &BuiltinListTypes).is_ok());
        assert_eq!(
            pod,
            json!({"spec": {"containers": [
                {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]}
            ], "tolerations": [{"key": "u"}]}})
        );
    }

    #[test]
    fn json_patch_test_failure_is_an_error() {
        let mut doc = json!({"a": 1});
        let patch = json!([{"op": "test", "path": "/a", "value": 2}]);
        assert!(json_patch(&mut doc, &patch).is_err());
        assert_eq!(doc, json!({"a": 1}));
    }
}
