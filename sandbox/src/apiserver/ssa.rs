//! Server-side apply and managed fields: per-manager field ownership (`metadata.managedFields`, `FieldsV1`),
//! conflict detection between managers, removal of fields a manager stops applying, and the ownership
//! bookkeeping of ordinary updates (PUT and non-apply patches).

use serde_json::{Map, Value, json};

use super::error::{ApiError, Cause};
use super::fields::{
    FieldSet, ListType, ListTypes, Scope, display_path, field_set, from_fields_v1, has_prefix, item_key, remove_at,
    to_fields_v1, value_at,
};

/// One `managedFields` entry.
#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: String,
    subresource: String,
    api_version: String,
    time: String,
    fields: FieldSet,
}

fn read_entries(object: &Value) -> Vec<Entry> {
    object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|entries| {
            entries
                .iter()
                .map(|e| Entry {
                    manager: e.get("manager").and_then(Value::as_str).unwrap_or_default().into(),
                    operation: e.get("operation").and_then(Value::as_str).unwrap_or("Update").into(),
                    subresource: e.get("subresource").and_then(Value::as_str).unwrap_or_default().into(),
                    api_version: e.get("apiVersion").and_then(Value::as_str).unwrap_or_default().into(),
                    time: e.get("time").and_then(Value::as_str).unwrap_or_default().into(),
                    fields: e.get("fieldsV1").map(from_fields_v1).unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn write_entries(object: &mut Value, entries: Vec<Entry>) {
    let list: Vec<Value> = entries
        .into_iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut entry = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": to_fields_v1(&e.fields),
            });
            if !e.subresource.is_empty()
                && let Some(m) = entry.as_object_mut()
            {
                m.insert("subresource".into(), json!(e.subresource));
            }
            entry
        })
        .collect();
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// Who is writing, for managed-fields bookkeeping.
#[derive(Debug, Clone)]
pub struct Writer<'a> {
    /// The field manager name.
    pub manager: &'a str,
    /// `status` for writes to the status subresource, empty otherwise.
    pub subresource: &'a str,
    /// The apiVersion the write was made in.
    pub api_version: &'a str,
    /// The current time, RFC 3339.
    pub now: &'a str,
}

fn scope_for(subresource: &str, exclude_status: bool) -> Scope {
    if subresource == "status" {
        Scope::Status
    } else {
        Scope::Main { exclude_status }
    }
}

/// Records an ordinary update: the writer owns every field whose value it changed, other managers lose those
/// fields, and fields that disappeared are owned by nobody.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    writer: &Writer<'_>,
    list_types: &dyn ListTypes,
    exclude_status: bool,
) {
    let scope = scope_for(writer.subresource, exclude_status);
    // Entries come from the new object: the stored ones, or the ones a client deliberately rewrote.
    let mut entries = read_entries(new);
    let new_set = field_set(new, list_types, scope);
    let old_set = old.map(|o| field_set(o, list_types, scope)).unwrap_or_default();
    let changed: FieldSet = new_set
        .iter()
        .filter(|p| {
            let before = old.and_then(|o| value_at(o, p));
            if p.last().map(String::as_str) == Some(".") {
                before.is_none()
            } else {
                before != value_at(new, p)
            }
        })
        .cloned()
        .collect();
    let removed: FieldSet = old_set.difference(&new_set).cloned().collect();
    if changed.is_empty() && removed.is_empty() {
        write_entries(new, entries);
        return;
    }
    let mut found = false;
    for entry in &mut entries {
        entry.fields.retain(|p| !removed.contains(p));
        let mine =
            entry.manager == writer.manager && entry.operation == "Update" && entry.subresource == writer.subresource;
        if mine {
            entry.fields.extend(changed.iter().cloned());
            entry.time = writer.now.to_string();
            entry.api_version = writer.api_version.to_string();
            found = true;
        } else {
            entry.fields.retain(|p| !changed.contains(p));
        }
    }
    if !found {
        entries.push(Entry {
            manager: writer.manager.to_string(),
            operation: "Update".into(),
            subresource: writer.subresource.to_string(),
            api_version: writer.api_version.to_string(),
            time: writer.now.to_string(),
            fields: changed,
        });
    }
    write_entries(new, entries);
}

/// Server-side apply of `applied` onto `current` (an empty object for create-on-apply) by `writer`.
/// Returns the new object with updated `managedFields`, or a 409 naming the conflicting managers.
#[allow(clippy::too_many_arguments)]
pub fn apply(
    current: &Value,
    applied: &Value,
    writer: &Writer<'_>,
    force: bool,
    list_types: &dyn ListTypes,
    exclude_status: bool,
    resource: &str,
    name: &str,
) -> Result<Value, ApiError> {
    let scope = scope_for(writer.subresource, exclude_status);
    let applied_set = field_set(applied, list_types, scope);
    let mut entries = read_entries(current);
    let mine = |e: &Entry| e.manager == writer.manager && e.operation == "Apply" && e.subresource == writer.subresource;
    let previous: FieldSet = entries
        .iter()
        .find(|e| mine(e))
        .map(|e| e.fields.clone())
        .unwrap_or_default();

    // Conflicts: another manager owns a field this apply sets to a different value.
    let mut conflicts: Vec<(String, String, Vec<String>)> = Vec::new();
    for entry in entries.iter().filter(|e| !mine(e)) {
        for path in entry.fields.intersection(&applied_set) {
            if path.last().map(String::as_str) == Some(".") {
                continue;
            }
            if value_at(current, path) != value_at(applied, path) {
                conflicts.push((entry.manager.clone(), entry.api_version.clone(), path.clone()));
            }
        }
    }
    // Moving from client-side to server-side apply: like kube-apiserver, `kubectl --server-side` may take over
    // fields whose live value is still what the last client-side apply set.
    let mut force = force;
    if !force && !conflicts.is_empty() && writer.manager == "kubectl" {
        let last_applied: Option<Value> = current
            .pointer("/metadata/annotations")
            .and_then(|a| a.get("kubectl.kubernetes.io/last-applied-configuration"))
            .and_then(Value::as_str)
            .and_then(|text| serde_json::from_str(text).ok());
        if let Some(last_applied) = last_applied {
            let blocking: Vec<(String, String, Vec<String>)> = conflicts
                .iter()
                .filter(|(_, _, path)| {
                    let previous = value_at(&last_applied, path);
                    previous.is_none() || previous != value_at(current, path)
                })
                .cloned()
                .collect();
            if blocking.is_empty() {
                force = true;
            } else {
                conflicts = blocking;
            }
        }
    }
    if !conflicts.is_empty() && !force {
        let count = conflicts.len();
        let causes: Vec<Cause> = conflicts
            .iter()
            .map(|(manager, api_version, path)| Cause {
                reason: "FieldManagerConflict".into(),
                message: format!("conflict with \"{manager}\" using {api_version}"),
                field: display_path(path),
            })
            .collect();
        let message = if count == 1 {
            format!(
                "Apply failed with 1 conflict: {}: {}",
                causes[0].message, causes[0].field
            )
        } else {
            let lines: Vec<String> = causes.iter().map(|c| format!("{}: {}", c.message, c.field)).collect();
            format!("Apply failed with {count} conflicts: {}", lines.join("\n"))
        };
        return Err(ApiError::Conflict {
            resource: resource.to_string(),
            name: name.to_string(),
            message,
            causes,
        });
    }
    if force {
        for entry in entries.iter_mut().filter(|e| !mine(e)) {
            entry
                .fields
                .retain(|p| !conflicts.iter().any(|(m, _, c)| *m == entry.manager && c == p));
        }
    }

    let mut result = current.clone();
    // Fields this manager applied before and omits now go away unless someone else still owns them.
    let dropped: Vec<&Vec<String>> = previous.difference(&applied_set).collect();
    for path in dropped {
        let item_path: Vec<String> = if path.last().map(String::as_str) == Some(".") {
            path[..path.len() - 1].to_vec()
        } else {
            path.clone()
        };
        let owned_elsewhere = entries
            .iter()
            .filter(|e| !mine(e))
            .any(|e| e.fields.iter().any(|p| has_prefix(p, &item_path)))
            || applied_set.iter().any(|p| has_prefix(p, &item_path));
        if !owned_elsewhere {
            remove_at(&mut result, path);
        }
    }
    let mut names = Vec::new();
    merge_applied(&mut result, applied, list_types, &mut names, scope, true);

    match entries.iter_mut().find(|e| mine(e)) {
        Some(entry) => {
            entry.fields = applied_set;
            entry.time = writer.now.to_string();
            entry.api_version = writer.api_version.to_string();
        }
        None => entries.push(Entry {
            manager: writer.manager.to_string(),
            operation: "Apply".into(),
            subresource: writer.subresource.to_string(),
            api_version: writer.api_version.to_string(),
            time: writer.now.to_string(),
            fields: applied_set,
        }),
    }
    write_entries(&mut result, entries);
    Ok(result)
}

/// Merges an applied configuration into an object: objects recursively, list-maps by key, sets by value,
/// everything else replaced.
fn merge_applied(
    target: &mut Value,
    applied: &Value,
    list_types: &dyn ListTypes,
    names: &mut Vec<String>,
    scope: Scope,
    root: bool,
) {
    let (Some(applied_map), true) = (applied.as_object(), target.is_object() || target.is_null()) else {
        *target = applied.clone();
        return;
    };
    if target.is_null() {
        *target = Value::Object(Map::new());
    }
    let Some(target_map) = target.as_object_mut() else {
        return;
    };
    for (key, value) in applied_map {
        if root {
            let skip = match (scope, key.as_str()) {
                (Scope::Status, k) => k != "status",
                (Scope::Main { exclude_status }, "status") => exclude_status,
                _ => false,
            };
            if skip {
                continue;
            }
            if key == "metadata" {
                let target_meta = target_map
                    .entry("metadata")
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Some(meta) = value.as_object() {
                    for field in ["labels", "annotations", "finalizers", "ownerReferences"] {
                        if let Some(v) = meta.get(field) {
                            names.push("metadata".into());
                            names.push(field.into());
                            if let Some(tm) = target_meta.as_object_mut() {
                                let slot = tm.entry(field).or_insert(Value::Null);
                                merge_value(slot, v, list_types, names, scope);
                            }
                            names.pop();
                            names.pop();
                        }
                    }
                }
                continue;
            }
        }
        names.push(key.clone());
        if value.is_null() {
            target_map.remove(key);
        } else {
            let slot = target_map.entry(key.clone()).or_insert(Value::Null);
            merge_value(slot, value, list_types, names, scope);
        }
        names.pop();
    }
}

fn merge_value(slot: &mut Value, value: &Value, list_types: &dyn ListTypes, names: &mut Vec<String>, scope: Scope) {
    match value {
        Value::Object(_) if slot.is_object() => merge_applied(slot, value, list_types, names, scope, false),
        Value::Array(items) => match list_types.list_type(names) {
            ListType::Map(keys) if !keys.is_empty() && slot.is_array() => {
                if let Some(list) = slot.as_array_mut() {
                    for item in items {
                        let key = item_key(item, &keys);
                        match list.iter().position(|e| item_key(e, &keys) == key) {
                            Some(i) => merge_applied(&mut list[i], item, list_types, names, scope, false),
                            None => list.push(item.clone()),
                        }
                    }
                }
            }
            ListType::Set if slot.is_array() => {
                if let Some(list) = slot.as_array_mut() {
                    for item in items {
                        if !list.contains(item) {
                            list.push(item.clone());
                        }
                    }
                }
            }
            _ => *slot = value.clone(),
        },
        _ => *slot = value.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::fields::BuiltinListTypes;

    fn writer(manager: &str) -> Writer<'_> {
        Writer {
            manager,
            subresource: "",
            api_version: "v1",
            now: "2026-01-01T00:00:00Z",
        }
    }

    #[test]
    fn dropped_field_is_removed_unless_shared() {
        let base = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        let first =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}});
        let obj = apply(
            &base,
            &first,
            &writer("m1"),
            false,
            &BuiltinListTypes,
            false,
            "configmaps",
            "c",
        )
        .map_err(|e| e.to_string());
        let obj = obj.unwrap_or_default();
        let other = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"b": "2"}});
        let obj = apply(
            &obj,
            &other,
            &writer("m2"),
            false,
            &BuiltinListTypes,
            false,
            "configmaps",
            "c",
        )
        .unwrap_or_default();
        let second = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}});
        let obj = apply(
            &obj,
            &second,
            &writer("m1"),
            false,
            &BuiltinListTypes,
            false,
            "configmaps",
            "c",
        )
        .unwrap_or_default();
        assert_eq!(obj.get("data"), Some(&json!({"b": "2"})));
    }

    #[test]
    fn conflicting_value_needs_force() {
        let base = json!({"metadata": {"name": "c"}, "data": {"a": "1"}});
        let obj = apply(
            &json!({"metadata": {"name": "c"}}),
            &base,
            &writer("m1"),
            false,
            &BuiltinListTypes,
            false,
            "configmaps",
            "c",
        )
        .unwrap_or_default();
        let change = json!({"metadata": {"name": "c"}, "data": {"a": "2"}});
        let err = apply(
            &obj,
            &change,
            &writer("m2"),
            false,
            &BuiltinListTypes,
            false,
            "configmaps",
            "c",
        )
        .map(|_| ())
        .unwrap_err();
        assert_eq!(err.code(), 409);
        assert_eq!(
            err.to_string(),
            "Apply failed with 1 conflict: conflict with \"m1\" using v1: .data.a"
        );
        let forced = apply(
            &obj,
            &change,
            &writer("m2"),
            true,
            &BuiltinListTypes,
            false,
            "configmaps",
            "c",
        )
        .unwrap_or_default();
        assert_eq!(forced.pointer("/data/a"), Some(&json!("2")));
        let managers: Vec<&str> = forced
            .pointer("/metadata/managedFields")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|e| e.get("manager").and_then(Value::as_str))
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(managers, vec!["m2"]);
    }

    #[test]
    fn list_map_items_are_owned_per_key() {
        let apply_as = |current: &Value, manager: &str, containers: Value| {
            let body = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "s"},
                "spec": {"template": {"spec": {"containers": containers}}}});
            apply(
                current,
                &body,
                &writer(manager),
                false,
                &BuiltinListTypes,
                true,
                "statefulsets.apps",
                "s",
            )
            .map_err(|e| e.to_string())
        };
        let base = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "s"}});
        let obj = apply_as(
            &base,
            "a",
            json!([{"name": "main", "image": "i:1"}, {"name": "side", "image": "s:1"}]),
        )
        .unwrap_or_default();
        let obj = apply_as(
            &obj,
            "b",
            json!([{"name": "main", "env": [{"name": "X", "value": "1"}]}]),
        )
        .unwrap_or_default();
        let obj = apply_as(&obj, "a", json!([{"name": "main", "image": "i:2"}])).unwrap_or_default();
        assert_eq!(
            obj.pointer("/spec/template/spec/containers"),
            Some(&json!([{"name": "main", "image": "i:2", "env": [{"name": "X", "value": "1"}]}])),
            "side is dropped by its only owner; b's env on main stays"
        );
    }
}
