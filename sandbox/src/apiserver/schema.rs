//! Defaulting and validation of custom resources against a CRD version's `openAPIV3Schema` (types, required, enum, pattern,
//! length/item/value bounds, `nullable`, `x-kubernetes-int-or-string`, `x-kubernetes-preserve-unknown-fields`)
//! and pruning of fields the schema does not know, with the messages kube-apiserver uses.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use serde_json::Value;

use super::error::Cause;

fn render(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        Value::Object(_) => "\"object\"".into(),
        Value::Array(_) => "\"array\"".into(),
        other => other.to_string(),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn invalid(causes: &mut Vec<Cause>, path: &str, value: &Value, detail: String) {
    causes.push(Cause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: {}: {detail}", render(value)),
        field: path.to_string(),
    });
}

/// Removes fields unknown to the schema, collecting their paths (for `fieldValidation` Warn/Strict).
pub fn prune(schema: &Value, value: &mut Value, path: &str, unknown: &mut Vec<String>) {
    if schema.get("x-kubernetes-embedded-resource").and_then(Value::as_bool) == Some(true) {
        return;
    }
    let preserve = schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true);
    match value {
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                let child_path = join(path, &key);
                let child_schema = properties.and_then(|p| p.get(&key)).or(additional);
                match (child_schema, map.get_mut(&key)) {
                    (Some(s), Some(child)) => prune(s, child, &child_path, unknown),
                    (None, _)
                        if preserve
                            || path.is_empty() && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") => {}
                    (None, _) => {
                        map.remove(&key);
                        unknown.push(child_path);
                    }
                    _ => {}
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    prune(item_schema, item, &format!("{path}[{i}]"), unknown);
                }
            }
        }
        _ => {}
    }
}

/// Fills in the `default` of every absent property whose parent object is present, as kube-apiserver does for
/// structural schemas (metadata at the root is left alone).
pub fn apply_defaults(schema: &Value, value: &mut Value, root: bool) {
    match value {
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            if let Some(properties) = properties {
                for (key, child_schema) in properties {
                    if root && key == "metadata" {
                        continue;
                    }
                    if !map.contains_key(key)
                        && let Some(default) = child_schema.get("default")
                    {
                        map.insert(key.clone(), default.clone());
                    }
                    if let Some(child) = map.get_mut(key) {
                        apply_defaults(child_schema, child, false);
                    }
                }
            }
            if let Some(additional) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for (key, child) in map.iter_mut() {
                    if properties.is_none_or(|p| !p.contains_key(key)) {
                        apply_defaults(additional, child, false);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    apply_defaults(item_schema, item, false);
                }
            }
        }
        _ => {}
    }
}

/// Validates a value against a schema, appending every violation.
pub fn validate(schema: &Value, value: &Value, path: &str, causes: &mut Vec<Cause>) {
    if value.is_null() {
        if schema.get("nullable").and_then(Value::as_bool) == Some(true) || schema.get("type").is_none() {
            return;
        }
        if let Some(t) = schema.get("type").and_then(Value::as_str) {
            invalid(
                causes,
                path,
                value,
                format!("{path} in body must be of type {t}: \"null\""),
            );
        }
        return;
    }
    let int_or_string = schema.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true);
    if int_or_string {
        if !(value.is_string() || type_name(value) == "integer") {
            invalid(
                causes,
                path,
                value,
                format!(
                    "{path} in body must be of type integer,string: \"{}\"",
                    type_name(value)
                ),
            );
            return;
        }
    } else if let Some(expected) = schema.get("type").and_then(Value::as_str) {
        let actual = type_name(value);
        let ok = actual == expected || (expected == "number" && actual == "integer");
        if !ok {
            invalid(
                causes,
                path,
                value,
                format!("{path} in body must be of type {expected}: \"{actual}\""),
            );
            return;
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        let supported: Vec<String> = options.iter().map(render).collect();
        causes.push(Cause {
            reason: "FieldValueNotSupported".into(),
            message: format!(
                "Unsupported value: {}: supported values: {}",
                render(value),
                supported.join(", ")
            ),
            field: path.to_string(),
        });
    }
    match value {
        Value::Object(map) => {
            if let Some(required) = schema.get("required").and_then(Value::as_array) {
                for name in required.iter().filter_map(Value::as_str) {
                    if !map.contains_key(name) {
                        causes.push(Cause {
                            reason: "FieldValueRequired".into(),
                            message: "Required value".into(),
                            field: join(path, name),
                        });
                    }
                }
            }
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (key, child) in map {
                if path.is_empty() && key == "metadata" {
                    continue;
                }
                if let Some(child_schema) = properties.and_then(|p| p.get(key)).or(additional) {
                    validate(child_schema, child, &join(path, key), causes);
                }
            }
            if let Some(min) = schema.get("minProperties").and_then(Value::as_u64)
                && (map.len() as u64) < min
            {
                invalid(
                    causes,
                    path,
                    value,
                    format!("{path} in body should have at least {min} properties"),
                );
            }
            if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
                && (map.len() as u64) > max
            {
                invalid(
                    causes,
                    path,
                    value,
                    format!("{path} in body should have at most {max} properties"),
                );
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    validate(item_schema, item, &format!("{path}[{i}]"), causes);
                }
            }
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && (items.len() as u64) < min
            {
                invalid(
                    causes,
                    path,
                    &Value::from(items.len()),
                    format!("{path} in body should have at least {min} items"),
                );
            }
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && (items.len() as u64) > max
            {
                causes.push(Cause {
                    reason: "FieldValueTooMany".into(),
                    message: format!("Too many: {}: must have at most {max} items", items.len()),
                    field: path.to_string(),
                });
            }
        }
        Value::String(s) => {
            if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
                && let Some(re) = compiled(pattern)
                && !re.is_match(s)
            {
                invalid(causes, path, value, format!("{path} in body should match '{pattern}'"));
            }
            let chars = s.chars().count() as u64;
            if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
                && chars < min
            {
                invalid(
                    causes,
                    path,
                    value,
                    format!("{path} in body should be at least {min} chars long"),
                );
            }
            if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
                && chars > max
            {
                causes.push(Cause {
                    reason: "FieldValueTooLong".into(),
                    message: format!("Too long: may not be more than {max} bytes"),
                    field: path.to_string(),
                });
            }
        }
        Value::Number(n) => {
            let Some(x) = n.as_f64() else { return };
            let exclusive_min = schema.get("exclusiveMinimum").and_then(Value::as_bool) == Some(true);
            let exclusive_max = schema.get("exclusiveMaximum").and_then(Value::as_bool) == Some(true);
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
                if exclusive_min && x <= min {
                    invalid(
                        causes,
                        path,
                        value,
                        format!("{path} in body should be greater than {}", fmt_num(min)),
                    );
                } else if x < min {
                    invalid(
                        causes,
                        path,
                        value,
                        format!("{path} in body should be greater than or equal to {}", fmt_num(min)),
                    );
                }
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
                if exclusive_max && x >= max {
                    invalid(
                        causes,
                        path,
                        value,
                        format!("{path} in body should be less than {}", fmt_num(max)),
                    );
                } else if x > max {
                    invalid(
                        causes,
                        path,
                        value,
                        format!("{path} in body should be less than or equal to {}", fmt_num(max)),
                    );
                }
            }
        }
        _ => {}
    }
}

/// Compiled schema patterns, kept because every write of a custom resource validates against them.
fn compiled(pattern: &str) -> Option<regex::Regex> {
    static CACHE: OnceLock<Mutex<HashMap<String, Option<regex::Regex>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
    cache
        .entry(pattern.to_string())
        .or_insert_with(|| regex::Regex::new(pattern).ok())
        .clone()
}

fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        x.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object", "required": ["size"], "properties": {
            "size": {"type": "integer", "minimum": 1, "maximum": 10},
            "mode": {"type": "string", "enum": ["a", "b"]},
            "name": {"type": "string", "pattern": "^[a-z]+$"},
            "port": {"x-kubernetes-int-or-string": true},
            "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
        }}}})
    }

    #[test]
    fn reports_each_violation_with_its_path() {
        let obj = json!({"spec": {"size": 0, "mode": "c", "name": "A1", "port": true}});
        let mut causes = Vec::new();
        validate(&schema(), &obj, "", &mut causes);
        let messages: Vec<String> = causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect();
        assert_eq!(
            messages,
            vec![
                "spec.mode: Unsupported value: \"c\": supported values: \"a\", \"b\"",
                "spec.name: Invalid value: \"A1\": spec.name in body should match '^[a-z]+$'",
                "spec.port: Invalid value: true: spec.port in body must be of type integer,string: \"boolean\"",
                "spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1",
            ]
        );
        let mut causes = Vec::new();
        validate(&schema(), &json!({"spec": {"size": "x"}}), "", &mut causes);
        assert_eq!(
            causes[0].message,
            "Invalid value: \"x\": spec.size in body must be of type integer: \"string\""
        );
        let mut causes = Vec::new();
        validate(&schema(), &json!({"spec": {}}), "", &mut causes);
        assert_eq!(causes[0].field, "spec.size");
        assert_eq!(causes[0].message, "Required value");
    }

    #[test]
    fn defaults_fill_absent_fields_of_present_objects() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "mode": {"type": "string", "default": "a"},
            "limits": {"type": "object", "properties": {"max": {"type": "integer", "default": 3}}}
        }}}});
        let mut obj = json!({"spec": {"mode": "b"}});
        apply_defaults(&schema, &mut obj, true);
        assert_eq!(obj, json!({"spec": {"mode": "b"}}));
        let mut obj = json!({"spec": {"limits": {}}});
        apply_defaults(&schema, &mut obj, true);
        assert_eq!(obj, json!({"spec": {"mode": "a", "limits": {"max": 3}}}));
    }

    #[test]
    fn prunes_unknown_fields_but_keeps_preserved_ones() {
        let mut obj = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n"},
            "spec": {"size": 1, "bogus": 1, "extra": {"anything": 2}}, "other": 3});
        let mut unknown = Vec::new();
        prune(&schema(), &mut obj, "", &mut unknown);
        assert_eq!(unknown, vec!["other".to_string(), "spec.bogus".to_string()]);
        assert_eq!(obj.get("spec"), Some(&json!({"size": 1, "extra": {"anything": 2}})));
    }
}
