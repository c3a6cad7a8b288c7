//! Field paths and list semantics shared by strategic merge patch and server-side apply: which lists merge by
//! key (from a CRD's `x-kubernetes-list-type` or, for built-in kinds, the merge keys of the lists we use), and
//! field sets in the `fieldsV1` shape (`f:spec`, `k:{"name":"a"}`, `v:"x"`, `.`).

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// How a list merges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListType {
    /// Replaced as a whole.
    Atomic,
    /// A set of scalars, merged by value.
    Set,
    /// A list of objects merged by these key fields.
    Map(Vec<String>),
}

/// Answers the list type of the list at a path of field names (array levels are not part of the path).
pub trait ListTypes {
    /// The list type of the list at `path`.
    fn list_type(&self, path: &[String]) -> ListType;
}

/// List types of a custom resource, read from its `openAPIV3Schema`.
pub struct SchemaListTypes<'a> {
    /// The version's `openAPIV3Schema`.
    pub schema: &'a Value,
}

/// The sub-schema at a path of field names, stepping through arrays' `items`.
pub fn schema_at<'a>(schema: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut current = schema;
    for key in path {
        while current.get("type").and_then(Value::as_str) == Some("array") {
            current = current.get("items")?;
        }
        current = match current.get("properties").and_then(|p| p.get(key)) {
            Some(s) => s,
            None => current.get("additionalProperties").filter(|a| a.is_object())?,
        };
    }
    Some(current)
}

impl ListTypes for SchemaListTypes<'_> {
    fn list_type(&self, path: &[String]) -> ListType {
        if path.len() == 2 && path[0] == "metadata" {
            return BuiltinListTypes.list_type(path);
        }
        let Some(schema) = schema_at(self.schema, path) else {
            return ListType::Atomic;
        };
        match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("map") => ListType::Map(
                schema
                    .get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .map(|keys| keys.iter().filter_map(|k| k.as_str().map(str::to_string)).collect())
                    .unwrap_or_default(),
            ),
            Some("set") => ListType::Set,
            _ => ListType::Atomic,
        }
    }
}

/// List types of the built-in kinds: the merge keys of the lists the agent and kubectl use (containers, ports,
/// env, volumes, volumeMounts, imagePullSecrets, conditions, ownerReferences; finalizers as a set). Every
/// other list (tolerations, volumeClaimTemplates, args, …) is atomic.
pub struct BuiltinListTypes;

impl ListTypes for BuiltinListTypes {
    fn list_type(&self, path: &[String]) -> ListType {
        let Some(last) = path.last() else {
            return ListType::Atomic;
        };
        let in_container = path.len() >= 2
            && matches!(
                path[path.len() - 2].as_str(),
                "containers" | "initContainers" | "ephemeralContainers"
            );
        match last.as_str() {
            "containers" | "initContainers" | "ephemeralContainers" | "volumes" | "imagePullSecrets" => {
                ListType::Map(vec!["name".into()])
            }
            "env" if in_container => ListType::Map(vec!["name".into()]),
            "volumeMounts" if in_container => ListType::Map(vec!["mountPath".into()]),
            "ports" if in_container => ListType::Map(vec!["containerPort".into()]),
            // EndpointSlice `ports` (top level) is atomic, as its `+listType=atomic` says.
            "ports" if path.len() == 1 => ListType::Atomic,
            "ports" => ListType::Map(vec!["port".into()]),
            "conditions" => ListType::Map(vec!["type".into()]),
            "ownerReferences" => ListType::Map(vec!["uid".into()]),
            "finalizers" => ListType::Set,
            _ => ListType::Atomic,
        }
    }
}

/// One element of a field path, in `fieldsV1` notation.
pub type FieldPath = Vec<String>;
/// A set of field paths owned by one manager.
pub type FieldSet = BTreeSet<FieldPath>;

/// The `k:{...}` key of a list-map item, keys sorted.
pub fn item_key(item: &Value, keys: &[String]) -> String {
    let mut map = Map::new();
    let mut sorted: Vec<&String> = keys.iter().collect();
    sorted.sort();
    for k in sorted {
        if let Some(v) = item.get(k.as_str()) {
            map.insert(k.clone(), v.clone());
        }
    }
    format!("k:{}", Value::Object(map))
}

/// Which top-level parts of an object a field set covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everything but identity metadata (and `status` when excluded).
    Main {
        /// Leave `status` out (status subresource enabled).
        exclude_status: bool,
    },
    /// Only `status`.
    Status,
}

/// The field set of an object: leaves, atomic lists, list-map items (with their `.`) and set members.
pub fn field_set(object: &Value, list_types: &dyn ListTypes, scope: Scope) -> FieldSet {
    let mut out = FieldSet::new();
    let Some(map) = object.as_object() else {
        return out;
    };
    for (key, value) in map {
        let included = match (scope, key.as_str()) {
            (_, "apiVersion" | "kind") => false,
            (Scope::Status, k) => k == "status",
            (Scope::Main { exclude_status }, "status") => !exclude_status,
            _ => true,
        };
        if !included {
            continue;
        }
        if key == "metadata" {
            if let Some(meta) = value.as_object() {
                for field in ["labels", "annotations", "finalizers", "ownerReferences"] {
                    if let Some(v) = meta.get(field) {
                        let mut prefix = vec!["f:metadata".to_string(), format!("f:{field}")];
                        let mut names = vec!["metadata".to_string(), field.to_string()];
                        collect(v, list_types, &mut names, &mut prefix, &mut out);
                    }
                }
            }
            continue;
        }
        let mut prefix = vec![format!("f:{key}")];
        let mut names = vec![key.clone()];
        collect(value, list_types, &mut names, &mut prefix, &mut out);
    }
    out
}

fn collect(
    value: &Value,
    list_types: &dyn ListTypes,
    names: &mut Vec<String>,
    prefix: &mut FieldPath,
    out: &mut FieldSet,
) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                prefix.push(format!("f:{k}"));
                names.push(k.clone());
                collect(v, list_types, names, prefix, out);
                names.pop();
                prefix.pop();
            }
        }
        Value::Array(items) => match list_types.list_type(names) {
            ListType::Map(keys) if items.iter().all(Value::is_object) && !keys.is_empty() => {
                if items.is_empty() {
                    out.insert(prefix.clone());
                }
                for item in items {
                    prefix.push(item_key(item, &keys));
                    prefix.push(".".into());
                    out.insert(prefix.clone());
                    prefix.pop();
                    collect(item, list_types, names, prefix, out);
                    prefix.pop();
                }
            }
            ListType::Set => {
                if items.is_empty() {
                    out.insert(prefix.clone());
                }
                for item in items {
                    prefix.push(format!("v:{item}"));
                    out.insert(prefix.clone());
                    prefix.pop();
                }
            }
            _ => {
                out.insert(prefix.clone());
            }
        },
        _ => {
            out.insert(prefix.clone());
        }
    }
}

/// The `fieldsV1` tree of a field set.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut node = &mut root;
        for element in path {
            let entry = node.entry(element.clone()).or_insert_with(|| Value::Object(Map::new()));
            match entry {
                Value::Object(m) => node = m,
                other => {
                    *other = Value::Object(Map::new());
                    match other {
                        Value::Object(m) => node = m,
                        _ => break,
                    }
                }
            }
        }
    }
    Value::Object(root)
}

/// The field set stored in a `fieldsV1` tree.
pub fn from_fields_v1(tree: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    let mut prefix = Vec::new();
    walk_tree(tree, &mut prefix, &mut out);
    out
}

fn walk_tree(tree: &Value, prefix: &mut FieldPath, out: &mut FieldSet) {
    match tree.as_object() {
        Some(map) if !map.is_empty() => {
            for (k, v) in map {
                prefix.push(k.clone());
                walk_tree(v, prefix, out);
                prefix.pop();
            }
        }
        _ => {
            if !prefix.is_empty() {
                out.insert(prefix.clone());
            }
        }
    }
}

fn find_item(items: &[Value], element: &str) -> Option<usize> {
    if let Some(key) = element.strip_prefix("k:") {
        let wanted: Map<String, Value> = serde_json::from_str(key).ok()?;
        items
            .iter()
            .position(|item| wanted.iter().all(|(k, v)| item.get(k.as_str()) == Some(v)))
    } else if let Some(value) = element.strip_prefix("v:") {
        let wanted: Value = serde_json::from_str(value).ok()?;
        items.iter().position(|item| *item == wanted)
    } else {
        None
    }
}

/// The value at a field path (a list item for a `k:`/`v:` path, the item again for `.`).
pub fn value_at<'a>(object: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut current = object;
    for element in path {
        if let Some(name) = element.strip_prefix("f:") {
            current = current.get(name)?;
        } else if element == "." {
            continue;
        } else {
            let items = current.as_array()?;
            current = &items[find_item(items, element)?];
        }
    }
    Some(current)
}

/// Removes the field, list item or set member at a path; returns whether something was removed.
pub fn remove_at(object: &mut Value, path: &[String]) -> bool {
    let path: Vec<&String> = path.iter().filter(|e| e.as_str() != ".").collect();
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut current = object;
    for element in parents {
        current = if let Some(name) = element.strip_prefix("f:") {
            match current.get_mut(name) {
                Some(v) => v,
                None => return false,
            }
        } else {
            let Some(index) = current.as_array().and_then(|items| find_item(items, element)) else {
                return false;
            };
            match current.get_mut(index) {
                Some(v) => v,
                None => return false,
            }
        };
    }
    if let Some(name) = last.strip_prefix("f:") {
        current.as_object_mut().is_some_and(|m| m.remove(name).is_some())
    } else {
        let index = current.as_array().and_then(|items| find_item(items, last));
        match (index, current.as_array_mut()) {
            (Some(i), Some(items)) => {
                items.remove(i);
                true
            }
            _ => false,
        }
    }
}

/// Renders a field path the way kube-apiserver prints it in conflict messages (`.spec.containers[name="a"].image`).
pub fn display_path(path: &[String]) -> String {
    let mut out = String::new();
    for element in path {
        if let Some(name) = element.strip_prefix("f:") {
            out.push('.');
            out.push_str(name);
        } else if let Some(key) = element.strip_prefix("k:") {
            let parsed: Map<String, Value> = serde_json::from_str(key).unwrap_or_default();
            let parts: Vec<String> = parsed.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(value) = element.strip_prefix("v:") {
            out.push_str(&format!("[{value}]"));
        }
    }
    out
}

/// Whether `path` equals `prefix` or lies below it.
pub fn has_prefix(path: &[String], prefix: &[String]) -> bool {
    path.len() >= prefix.len() && path[..prefix.len()] == *prefix
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_set_round_trips_through_fields_v1() {
        let obj = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "labels": {"a": "b"}, "finalizers": ["x"]},
            "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80}]}], "tolerations": [{"key": "k"}]}
        });
        let set = field_set(&obj, &BuiltinListTypes, Scope::Main { exclude_status: true });
        assert!(set.contains(&vec!["f:metadata".to_string(), "f:labels".into(), "f:a".into()]));
        assert!(set.contains(&vec!["f:metadata".to_string(), "f:finalizers".into(), "v:\"x\"".into()]));
        assert!(set.contains(&vec!["f:spec".to_string(), "f:tolerations".into()]));
        let item = vec![
            "f:spec".to_string(),
            "f:containers".into(),
            "k:{\"name\":\"c\"}".into(),
            ".".into(),
        ];
        assert!(set.contains(&item));
        assert_eq!(from_fields_v1(&to_fields_v1(&set)), set);
        let image = vec![
            "f:spec".to_string(),
            "f:containers".into(),
            "k:{\"name\":\"c\"}".into(),
            "f:image".into(),
        ];
        assert_eq!(value_at(&obj, &image), Some(&json!("i")));
        assert_eq!(display_path(&image), ".spec.containers[name=\"c\"].image");
        let mut copy = obj.clone();
        assert!(remove_at(&mut copy, &item));
        assert_eq!(copy.pointer("/spec/containers"), Some(&json!([])));
    }
}
