//! Field-level differences of two JSON values: the leaf paths that differ (`spec.memorySize`,
//! `metadata.labels.team`), lists compared whole. Pure; key order never matters (two mappings with the same keys
//! and values are equal however they are written), and numbers are compared by value (`3` equals `3.0`).

use serde::Serialize;
use serde_json::Value;

/// One field that differs between the base and the head.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FieldChange {
    /// Dotted path from the object's root, such as `spec.memorySize`.
    pub path: String,
    /// The base value (`null` when the base does not set it).
    pub from: Value,
    /// The head value (`null` when the head does not set it).
    pub to: Value,
}

/// The differing leaves under `prefix` (its own path, such as `spec`); `None` stands for an absent value.
pub fn diff(prefix: &str, from: Option<&Value>, to: Option<&Value>, out: &mut Vec<FieldChange>) {
    match (from, to) {
        (Some(Value::Object(old)), Some(Value::Object(new))) => {
            let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                diff(&join(prefix, key), old.get(key), new.get(key), out);
            }
        }
        (Some(Value::Object(old)), None) if !old.is_empty() => {
            for (key, value) in old {
                diff(&join(prefix, key), Some(value), None, out);
            }
        }
        (None, Some(Value::Object(new))) if !new.is_empty() => {
            for (key, value) in new {
                diff(&join(prefix, key), None, Some(value), out);
            }
        }
        (old, new) if same(old, new) => {}
        (old, new) => out.push(FieldChange {
            path: prefix.to_string(),
            from: old.cloned().unwrap_or(Value::Null),
            to: new.cloned().unwrap_or(Value::Null),
        }),
    }
}

/// Whether two optional values are the same: absent, `null` and an empty mapping are all "unset".
fn same(a: Option<&Value>, b: Option<&Value>) -> bool {
    let unset = |value: Option<&Value>| match value {
        None | Some(Value::Null) => true,
        Some(Value::Object(map)) => map.is_empty(),
        Some(_) => false,
    };
    match (a, b) {
        (a, b) if unset(a) && unset(b) => true,
        (Some(a), Some(b)) => equal(a, b),
        _ => false,
    }
}

/// Deep equality with numbers compared by value.
pub fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| equal(x, y)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(key, value)| y.get(key).is_some_and(|other| equal(value, other)))
        }
        _ => a == b,
    }
}

/// Dotted path; keys with dots or slashes (annotation keys) are bracketed and quoted.
fn join(prefix: &str, key: &str) -> String {
    let plain = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (prefix.is_empty(), plain) {
        (true, true) => key.to_string(),
        (false, true) => format!("{prefix}.{key}"),
        (_, false) => format!("{prefix}[{key:?}]"),
    }
}

/// Only the paths of the differences (for children, whose values may be Secret templates).
pub fn changed_paths(from: &Value, to: &Value) -> Vec<String> {
    let mut out = Vec::new();
    diff("", Some(from), Some(to), &mut out);
    out.into_iter().map(|change| change.path).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn leaves_are_reported_with_paths_and_key_order_does_not_matter() {
        let mut out = Vec::new();
        let old = json!({"memorySize": "1GB", "replication": true, "modulesList": [{"name": "search"}]});
        let new = json!({"replication": true, "memorySize": "2GB", "modulesList": [{"name": "search"}]});
        diff("spec", Some(&old), Some(&new), &mut out);
        assert_eq!(
            out,
            [FieldChange {
                path: "spec.memorySize".into(),
                from: json!("1GB"),
                to: json!("2GB")
            }]
        );
        let mut none = Vec::new();
        diff(
            "spec",
            Some(&json!({"a": 3, "b": {}})),
            Some(&json!({"a": 3.0})),
            &mut none,
        );
        assert!(none.is_empty(), "{none:?}");
    }

    #[test]
    fn added_and_removed_fields_and_annotation_keys() {
        let mut out = Vec::new();
        diff(
            "metadata.annotations",
            Some(&json!({"redisgitops.dev/protect": "true"})),
            None,
            &mut out,
        );
        assert_eq!(out[0].path, "metadata.annotations[\"redisgitops.dev/protect\"]");
        assert_eq!((out[0].from.clone(), out[0].to.clone()), (json!("true"), Value::Null));
        assert_eq!(
            changed_paths(&json!({"spec": {"ports": [1]}}), &json!({"spec": {"ports": [2]}})),
            ["spec.ports"]
        );
    }
}
