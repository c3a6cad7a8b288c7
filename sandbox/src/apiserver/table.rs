//! `meta.k8s.io/v1` Table responses for `kubectl get`: NAME, the CRD's additionalPrinterColumns (JSONPath
//! subset `.a.b`, `.a[*].b`, `.a[0]`, `.a['x.y']`) or a default set for built-in kinds, and AGE.

use serde_json::{Value, json};

use super::resources::{PrinterColumn, ResourceInfo};

/// Whether the Accept header asks for a Table.
pub fn wants_table(accept: &str) -> bool {
    accept.split(',').next().is_some_and(|first| first.contains("as=Table"))
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(usize),
    All,
    /// `[?(@.a.b=="x")]` or `!=`: the array items whose field at the relative path compares as asked.
    Filter {
        path: Vec<String>,
        equal: bool,
        literal: Value,
    },
}

/// Parses the inside of a filter, `?(@.type=="Ready")`, as the API server's JSONPath does for printer columns.
fn parse_filter(inner: &str) -> Option<Step> {
    let expression = inner.strip_prefix("?(")?.strip_suffix(')')?.trim();
    let (left, right, equal) = match expression.split_once("!=") {
        Some((left, right)) => (left, right, false),
        None => {
            let (left, right) = expression.split_once("==")?;
            (left, right, true)
        }
    };
    let path: Vec<String> = left.trim().strip_prefix("@.")?.split('.').map(str::to_string).collect();
    let right = right.trim();
    let literal = if let Some(text) = right.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Value::String(text.to_string())
    } else if let Some(text) = right.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        Value::String(text.to_string())
    } else {
        serde_json::from_str(right).ok()?
    };
    Some(Step::Filter { path, equal, literal })
}

fn parse_path(path: &str) -> Option<Vec<Step>> {
    let path = path.trim().trim_start_matches('{').trim_end_matches('}');
    let mut steps = Vec::new();
    let mut rest = path.strip_prefix('.').unwrap_or(path);
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']')?;
            let inner = &after[..end];
            if inner == "*" {
                steps.push(Step::All);
            } else if inner.starts_with("?(") {
                steps.push(parse_filter(inner)?);
            } else if let Ok(i) = inner.parse::<usize>() {
                steps.push(Step::Index(i));
            } else {
                steps.push(Step::Field(inner.trim_matches(|c| c == '\'' || c == '"').to_string()));
            }
            rest = &after[end + 1..];
            rest = rest.strip_prefix('.').unwrap_or(rest);
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            steps.push(Step::Field(rest[..end].to_string()));
            rest = &rest[end..];
            rest = rest.strip_prefix('.').unwrap_or(rest);
        }
    }
    Some(steps)
}

/// Evaluates a JSONPath (subset) against an object, returning every match.
pub fn evaluate(object: &Value, path: &str) -> Vec<Value> {
    let Some(steps) = parse_path(path) else {
        return Vec::new();
    };
    let mut current = vec![object.clone()];
    for step in steps {
        let mut next = Vec::new();
        for value in current {
            match (&step, value) {
                (Step::Field(name), Value::Object(map)) => {
                    if let Some(v) = map.get(name) {
                        next.push(v.clone());
                    }
                }
                (Step::Index(i), Value::Array(items)) => {
                    if let Some(v) = items.get(*i) {
                        next.push(v.clone());
                    }
                }
                (Step::All, Value::Array(items)) => next.extend(items),
                (Step::Filter { path, equal, literal }, Value::Array(items)) => {
                    next.extend(items.into_iter().filter(|item| {
                        let found = path.iter().try_fold(item, |value, key| value.get(key));
                        (found == Some(literal)) == *equal
                    }));
                }
                _ => {}
            }
        }
        current = next;
    }
    current
}

/// Renders a duration the way kubectl's AGE column does (`45s`, `3m20s`, `5h`, `12d`).
pub fn human_duration(seconds: i64) -> String {
    if seconds < 0 {
        return "0s".into();
    }
    let minutes = seconds / 60;
    let hours = minutes / 60;
    let days = hours / 24;
    if seconds < 120 {
        format!("{seconds}s")
    } else if minutes < 10 {
        if seconds % 60 == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{}s", seconds % 60)
        }
    } else if hours < 3 {
        format!("{minutes}m")
    } else if hours < 8 {
        if minutes % 60 == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{}m", minutes % 60)
        }
    } else if hours < 48 {
        format!("{hours}h")
    } else if days < 8 && hours % 24 != 0 {
        format!("{days}d{}h", hours % 24)
    } else {
        format!("{days}d")
    }
}

fn age(timestamp: Option<&str>) -> String {
    let Some(ts) = timestamp.and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok()) else {
        return "<unknown>".into();
    };
    human_duration(k8s_openapi::jiff::Timestamp::now().as_second() - ts.as_second())
}

/// Columns of built-in kinds that no JSONPath expresses (kubectl's `READY 1/1` style counts).
fn computed_cell(name: &str, object: &Value) -> Option<Value> {
    if let Some(value) = super::events::cell(name, object) {
        return Some(value);
    }
    let count = |pointer: &str| {
        object
            .pointer(pointer)
            .and_then(Value::as_array)
            .map(Vec::len)
            .unwrap_or(0)
    };
    match name {
        "@pod-ready" => {
            let ready = object
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array)
                .map(|s| s.iter().filter(|c| c.get("ready") == Some(&Value::Bool(true))).count())
                .unwrap_or(0);
            Some(json!(format!("{ready}/{}", count("/spec/containers"))))
        }
        "@pod-restarts" => Some(json!(
            object
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array)
                .map(|s| s
                    .iter()
                    .filter_map(|c| c.get("restartCount").and_then(Value::as_i64))
                    .sum::<i64>())
                .unwrap_or(0)
        )),
        "@statefulset-ready" => {
            let ready = object
                .pointer("/status/readyReplicas")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let wanted = object.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
            Some(json!(format!("{ready}/{wanted}")))
        }
        "@data-count" => Some(json!(
            object
                .get("data")
                .and_then(Value::as_object)
                .map(|d| d.len())
                .unwrap_or(0)
        )),
        "@service-ports" => {
            let ports: Vec<String> = object
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .map(|ps| {
                    ps.iter()
                        .map(|p| {
                            format!(
                                "{}/{}",
                                p.get("port").map(|v| v.to_string()).unwrap_or_default(),
                                p.get("protocol").and_then(Value::as_str).unwrap_or("TCP")
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            Some(json!(if ports.is_empty() {
                "<none>".to_string()
            } else {
                ports.join(",")
            }))
        }
        _ => None,
    }
}

fn cell(column: &PrinterColumn, object: &Value) -> Value {
    if let Some(value) = computed_cell(&column.json_path, object) {
        return value;
    }
    let values = evaluate(object, &column.json_path);
    if values.is_empty() {
        return Value::Null;
    }
    if column.column_type == "date" {
        return json!(age(values[0].as_str()));
    }
    if values.len() == 1 {
        return match &values[0] {
            Value::String(_) | Value::Number(_) | Value::Bool(_) => values[0].clone(),
            other => json!(other.to_string()),
        };
    }
    let parts: Vec<String> = values
        .iter()
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect();
    json!(parts.join(","))
}

fn column(name: &str, column_type: &str, path: &str, priority: i64) -> PrinterColumn {
    PrinterColumn {
        name: name.into(),
        column_type: column_type.into(),
        format: String::new(),
        description: String::new(),
        priority,
        json_path: path.into(),
    }
}

fn builtin_columns(info: &ResourceInfo) -> Vec<PrinterColumn> {
    match (info.group.as_str(), info.plural.as_str()) {
        ("", "namespaces") => vec![column("Status", "string", ".status.phase", 0)],
        ("", "pods") => vec![
            column("Ready", "string", "@pod-ready", 0),
            column("Status", "string", ".status.phase", 0),
            column("Restarts", "integer", "@pod-restarts", 0),
            column("IP", "string", ".status.podIP", 1),
            column("Node", "string", ".spec.nodeName", 1),
        ],
        ("", "services") => vec![
            column("Type", "string", ".spec.type", 0),
            column("Cluster-IP", "string", ".spec.clusterIP", 0),
            column("Ports", "string", "@service-ports", 0),
        ],
        ("", "secrets") => vec![
            column("Type", "string", ".type", 0),
            column("Data", "integer", "@data-count", 0),
        ],
        ("", "configmaps") => vec![column("Data", "integer", "@data-count", 0)],
        ("", "persistentvolumeclaims") => vec![
            column("Status", "string", ".status.phase", 0),
            column("Capacity", "string", ".status.capacity.storage", 0),
            column("Access Modes", "string", ".spec.accessModes[*]", 0),
        ],
        ("apps", "statefulsets") => vec![column("Ready", "string", "@statefulset-ready", 0)],
        ("policy", "poddisruptionbudgets") => vec![
            column("Min Available", "string", ".spec.minAvailable", 0),
            column("Max Unavailable", "string", ".spec.maxUnavailable", 0),
            column("Allowed Disruptions", "integer", ".status.disruptionsAllowed", 0),
        ],
        ("coordination.k8s.io", "leases") => {
            vec![column("Holder", "string", ".spec.holderIdentity", 0)]
        }
        ("", "events") | ("events.k8s.io", "events") => super::events::columns(),
        ("apiextensions.k8s.io", "customresourcedefinitions") => Vec::new(),
        _ => Vec::new(),
    }
}

/// The columns served for a resource version: the CRD's or the built-in defaults.
pub fn columns(info: &ResourceInfo, version: &str) -> Vec<PrinterColumn> {
    if info.custom {
        info.version(version)
            .map(|v| v.printer_columns.clone())
            .unwrap_or_default()
    } else {
        builtin_columns(info)
    }
}

fn partial_metadata(object: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": object.get("metadata").cloned().unwrap_or(json!({})),
    })
}

/// One table row for an object.
pub fn row(columns: &[PrinterColumn], object: &Value, include_object: bool) -> Value {
    // The events Table brings its own Name column and has no Age.
    let complete = super::events::is_event_table(columns);
    let mut cells = Vec::new();
    if !complete {
        cells.push(json!(
            object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
        ));
    }
    let has_age = complete || columns.iter().any(|c| c.name.eq_ignore_ascii_case("age"));
    for c in columns {
        cells.push(cell(c, object));
    }
    if !has_age {
        cells.push(json!(age(object
            .pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str))));
    }
    json!({
        "cells": cells,
        "object": if include_object { object.clone() } else { partial_metadata(object) },
    })
}

/// A Table holding the given objects.
pub fn table(columns: &[PrinterColumn], objects: &[Value], resource_version: &str, include_object: bool) -> Value {
    let complete = super::events::is_event_table(columns);
    let mut definitions = Vec::new();
    if !complete {
        definitions.push(json!({
            "name": "Name", "type": "string", "format": "name",
            "description": "Name must be unique within a namespace.", "priority": 0
        }));
    }
    for c in columns {
        definitions.push(json!({
            "name": c.name, "type": c.column_type, "format": c.format,
            "description": c.description, "priority": c.priority
        }));
    }
    if !complete && !columns.iter().any(|c| c.name.eq_ignore_ascii_case("age")) {
        definitions.push(json!({
            "name": "Age", "type": "string", "format": "",
            "description": "CreationTimestamp is a timestamp representing the server time when this object was created.",
            "priority": 0
        }));
    }
    let rows: Vec<Value> = objects.iter().map(|o| row(columns, o, include_object)).collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": definitions,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_path_subset() {
        let obj = json!({"status": {"phase": "Active", "conditions": [{"type": "Ready", "status": "True"}, {"type": "X", "status": "False"}]},
            "metadata": {"labels": {"a.b/c": "v"}}});
        assert_eq!(evaluate(&obj, ".status.phase"), vec![json!("Active")]);
        assert_eq!(
            evaluate(&obj, ".status.conditions[*].type"),
            vec![json!("Ready"), json!("X")]
        );
        assert_eq!(evaluate(&obj, ".status.conditions[0].status"), vec![json!("True")]);
        assert_eq!(evaluate(&obj, ".metadata.labels['a.b/c']"), vec![json!("v")]);
        assert!(evaluate(&obj, ".missing.field").is_empty());
        assert_eq!(
            evaluate(&obj, r#".status.conditions[?(@.type=="Ready")].status"#),
            vec![json!("True")]
        );
        assert_eq!(
            evaluate(&obj, ".status.conditions[?(@.type!='Ready')].type"),
            vec![json!("X")]
        );
    }

    #[test]
    fn durations_like_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(200), "3m20s");
        assert_eq!(human_duration(3600 * 5), "5h");
        assert_eq!(human_duration(86400 * 3 + 3600), "3d1h");
    }
}
