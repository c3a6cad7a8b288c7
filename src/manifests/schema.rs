//! Structural validation of a document against the OpenAPI v3 schema of its CRD (the same schema the API server
//! enforces): types, enums, patterns, ranges, required fields and unknown fields. Every violation is collected.

use regex::Regex;
use serde_json::Value;

use super::diagnostics::FieldPath;

/// One way a document breaks its schema.
#[derive(Clone, Debug, PartialEq)]
pub struct Violation {
    /// The field at fault.
    pub path: FieldPath,
    /// What is wrong.
    pub kind: ViolationKind,
}

/// The kinds of schema violations, with what a message needs.
#[derive(Clone, Debug, PartialEq)]
pub enum ViolationKind {
    /// A value of the wrong JSON type.
    WrongType {
        /// The schema's type.
        expected: String,
        /// The value found.
        found: Value,
    },
    /// A value outside the allowed list.
    NotInEnum {
        /// The value found.
        found: Value,
        /// The allowed values.
        allowed: Vec<Value>,
    },
    /// A string that does not match the field's pattern.
    PatternMismatch {
        /// The value found.
        found: String,
        /// The pattern.
        pattern: String,
    },
    /// A number below the minimum.
    BelowMinimum {
        /// The value found.
        found: Value,
        /// The minimum.
        minimum: f64,
    },
    /// A number above the maximum.
    AboveMaximum {
        /// The value found.
        found: Value,
        /// The maximum.
        maximum: f64,
    },
    /// A string longer than the field's `maxLength`.
    TooLong {
        /// Its length in characters.
        length: usize,
        /// The maximum.
        max_length: u64,
    },
    /// A required field is missing (the path is the missing field's).
    MissingField,
    /// A field the schema does not know (the path is the unknown field's).
    UnknownField {
        /// Known fields whose names are close, best first.
        suggestions: Vec<String>,
    },
}

/// Validates `value` against `schema`, returning every violation.
pub fn validate(value: &Value, schema: &Value, path: &FieldPath) -> Vec<Violation> {
    let mut violations = Vec::new();
    check(value, schema, path, &mut violations);
    violations
}

fn check(value: &Value, schema: &Value, path: &FieldPath, violations: &mut Vec<Violation>) {
    let Some(schema) = schema.as_object() else {
        return;
    };
    if value.is_null() {
        // Optional fields are nullable; a null for a non-nullable field is reported as a wrong type.
        if schema.get("nullable").and_then(Value::as_bool) == Some(true) || schema.is_empty() {
            return;
        }
    }
    if schema.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true) {
        if !(value.is_string() || value.is_i64() || value.is_u64()) {
            push(
                violations,
                path,
                ViolationKind::WrongType {
                    expected: "int-or-string".into(),
                    found: value.clone(),
                },
            );
        }
        return;
    }
    // A value outside an enum is reported as such even when its type is also wrong: the list is the useful hint.
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        push(
            violations,
            path,
            ViolationKind::NotInEnum {
                found: value.clone(),
                allowed: allowed.clone(),
            },
        );
        return;
    }
    let expected = schema.get("type").and_then(Value::as_str);
    if let Some(expected) = expected
        && !has_type(value, expected)
    {
        push(
            violations,
            path,
            ViolationKind::WrongType {
                expected: expected.to_string(),
                found: value.clone(),
            },
        );
        return;
    }
    if let (Some(max_length), Some(text)) = (schema.get("maxLength").and_then(Value::as_u64), value.as_str()) {
        let length = text.chars().count();
        if u64::try_from(length).unwrap_or(u64::MAX) > max_length {
            // Too long already says what to fix; matching a huge value against the pattern would add nothing.
            push(violations, path, ViolationKind::TooLong { length, max_length });
            return;
        }
    }
    if let (Some(pattern), Some(text)) = (schema.get("pattern").and_then(Value::as_str), value.as_str())
        && compiled(pattern).is_some_and(|regex| !regex.is_match(text))
    {
        push(
            violations,
            path,
            ViolationKind::PatternMismatch {
                found: text.to_string(),
                pattern: pattern.to_string(),
            },
        );
    }
    if let Some(number) = value.as_f64() {
        if let Some(minimum) = schema.get("minimum").and_then(Value::as_f64)
            && number < minimum
        {
            push(
                violations,
                path,
                ViolationKind::BelowMinimum {
                    found: value.clone(),
                    minimum,
                },
            );
        }
        if let Some(maximum) = schema.get("maximum").and_then(Value::as_f64)
            && number > maximum
        {
            push(
                violations,
                path,
                ViolationKind::AboveMaximum {
                    found: value.clone(),
                    maximum,
                },
            );
        }
    }
    match value {
        Value::Object(fields) => {
            let preserve = schema
                .get("x-kubernetes-preserve-unknown-fields")
                .and_then(Value::as_bool)
                == Some(true);
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            if let Some(required) = schema.get("required").and_then(Value::as_array) {
                for name in required.iter().filter_map(Value::as_str) {
                    if fields.get(name).is_none_or(Value::is_null) {
                        push(violations, &path.key(name), ViolationKind::MissingField);
                    }
                }
            }
            for (name, field) in fields {
                let child = path.key(name);
                if let Some(property) = properties.and_then(|p| p.get(name)) {
                    check(field, property, &child, violations);
                } else if let Some(additional) = additional.filter(|a| a.is_object()) {
                    check(field, additional, &child, violations);
                } else if properties.is_some() && !preserve && additional.and_then(Value::as_bool) != Some(true) {
                    let known = properties
                        .map(|p| p.keys().map(String::as_str).collect::<Vec<_>>())
                        .unwrap_or_default();
                    push(
                        violations,
                        &child,
                        ViolationKind::UnknownField {
                            suggestions: similar_names(name, &known),
                        },
                    );
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (index, item) in items.iter().enumerate() {
                    check(item, item_schema, &path.index(index), violations);
                }
            }
        }
        _ => {}
    }
}

/// A schema pattern, compiled once per process: the same few patterns are checked for every object.
fn compiled(pattern: &str) -> Option<Regex> {
    static CACHE: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<String, Option<Regex>>>> =
        std::sync::OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    cache
        .entry(pattern.to_string())
        .or_insert_with(|| Regex::new(pattern).ok())
        .clone()
}

fn push(violations: &mut Vec<Violation>, path: &FieldPath, kind: ViolationKind) {
    violations.push(Violation {
        path: path.clone(),
        kind,
    });
}

fn has_type(value: &Value, expected: &str) -> bool {
    match expected {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        _ => true,
    }
}

/// Names from `known` that are close to `name` (a typo or a different case), best first, at most three.
pub fn similar_names(name: &str, known: &[&str]) -> Vec<String> {
    let lowered = name.to_ascii_lowercase();
    let mut scored: Vec<(usize, &str)> = known
        .iter()
        .map(|candidate| (edit_distance(&lowered, &candidate.to_ascii_lowercase()), *candidate))
        .filter(|(distance, candidate)| *distance <= (candidate.len() / 4).max(2))
        .collect();
    scored.sort();
    scored
        .into_iter()
        .take(3)
        .map(|(_, candidate)| candidate.to_string())
        .collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "memorySize": {"type": "string", "nullable": true, "pattern": "^[0-9]+(MB|GB)$"},
                "shardCount": {"type": "integer", "nullable": true, "minimum": 1.0, "maximum": 512.0},
                "evictionPolicy": {"type": "string", "nullable": true, "enum": ["volatile-lru", "allkeys-lru"]},
                "modulesList": {"type": "array", "nullable": true, "items": {
                    "type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}},
                "labels": {"type": "object", "nullable": true, "additionalProperties": {"type": "string"}}
            }
        })
    }

    #[test]
    fn collects_every_violation_with_its_path() {
        let value = json!({
            "memorySize": "1 GB", "shardCount": 0, "evictionPolicy": "illegal",
            "modulesList": [{"version": "1"}], "labels": {"a": 1}, "memorysize": "x"
        });
        let violations = validate(&value, &schema(), &FieldPath::of(&["spec"]));
        let paths: Vec<String> = violations.iter().map(|v| v.path.to_string()).collect();
        assert_eq!(
            paths,
            [
                "spec.evictionPolicy",
                "spec.labels.a",
                "spec.memorySize",
                "spec.memorysize",
                "spec.modulesList[0].name",
                "spec.modulesList[0].version",
                "spec.shardCount"
            ]
        );
        let unknown = violations
            .iter()
            .find(|v| v.path.to_string() == "spec.memorysize")
            .expect("reported");
        assert_eq!(
            unknown.kind,
            ViolationKind::UnknownField {
                suggestions: vec!["memorySize".into()]
            }
        );
    }

    #[test]
    fn suggestions_tolerate_typos_but_not_unrelated_names() {
        assert_eq!(
            similar_names("evictonPolicy", &["evictionPolicy", "tlsMode"]),
            ["evictionPolicy"]
        );
        assert!(similar_names("banana", &["evictionPolicy", "tlsMode"]).is_empty());
    }
}
