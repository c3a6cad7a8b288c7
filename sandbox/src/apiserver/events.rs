//! Events served through both events APIs: the conversion between core/v1 Events (the stored form) and
//! events.k8s.io/v1 Events, the core/v1 field-selector labels, and the Table kube-apiserver prints for events.
//!
//! Conversion renames fields as kube-apiserver's `pkg/apis/events/v1/conversion.go` does (field for field, no
//! value is invented); it validates nothing.

use serde_json::{Value, json};

use super::resources::PrinterColumn;

/// core/v1 Event field ↔ events.k8s.io/v1 Event field; `reportingInstance`, `eventTime`, `series`, `action`,
/// `reason`, `type` and `related` have the same name in both.
const RENAMED: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
    ("reportingComponent", "reportingController"),
];

fn rename(mut object: Value, to_core: bool) -> Value {
    if let Some(map) = object.as_object_mut() {
        for (core, events) in RENAMED {
            let (from, to) = if to_core { (events, core) } else { (core, events) };
            if let Some(value) = map.remove(*from) {
                map.insert(to.to_string(), value);
            }
        }
    }
    object
}

/// An events.k8s.io/v1 Event in its core/v1 form (the stored form).
pub fn to_core(object: Value) -> Value {
    let mut object = rename(object, true);
    if let Some(map) = object.as_object_mut() {
        map.insert("apiVersion".into(), json!("v1"));
    }
    object
}

/// A core/v1 Event in its events.k8s.io/v1 form.
pub fn to_events_v1(object: Value) -> Value {
    let mut object = rename(object, false);
    if let Some(map) = object.as_object_mut() {
        map.insert("apiVersion".into(), json!("events.k8s.io/v1"));
    }
    object
}

fn text<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
}

fn first_non_empty<'a>(a: &'a str, b: &'a str) -> &'a str {
    if a.is_empty() { b } else { a }
}

/// The value of a field-selector label on a stored (core/v1) Event, for the labels whose value is not simply the
/// field at that path: events.k8s.io's `regarding.X` and `reportingController`, and the computed `source`
/// (`source.component`, else `reportingComponent`). `None` for every other label and for other kinds.
pub fn selector_value(object: &Value, label: &str) -> Option<String> {
    let api_version = object.get("apiVersion").and_then(Value::as_str);
    if object.get("kind").and_then(Value::as_str) != Some("Event")
        || !matches!(api_version, Some("v1" | "events.k8s.io/v1"))
    {
        return None;
    }
    if let Some(field) = label.strip_prefix("regarding.") {
        return Some(text(object, &format!("/involvedObject/{field}")).to_string());
    }
    match label {
        "reportingController" => Some(text(object, "/reportingComponent").to_string()),
        "source" => {
            Some(first_non_empty(text(object, "/source/component"), text(object, "/reportingComponent")).to_string())
        }
        _ => None,
    }
}

const LAST_SEEN: &str = "@event-last-seen";

fn column(name: &str, path: &str, priority: i64, description: &str) -> PrinterColumn {
    PrinterColumn {
        name: name.into(),
        column_type: "string".into(),
        format: if name == "Name" { "name".into() } else { String::new() },
        description: description.into(),
        priority,
        json_path: path.into(),
    }
}

/// The columns kube-apiserver's event printer serves (`pkg/printers/internalversion/printers.go`), for both
/// events APIs; priority 1 is `-o wide` only. The Table has no leading Name and no Age column.
pub fn columns() -> Vec<PrinterColumn> {
    vec![
        column(
            "Last Seen",
            LAST_SEEN,
            0,
            "The time at which the most recent occurrence of this event was recorded.",
        ),
        column(
            "Type",
            "@event-type",
            0,
            "Type of this event (Normal, Warning), new types could be added in the future",
        ),
        column(
            "Reason",
            "@event-reason",
            0,
            "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
        ),
        column("Object", "@event-object", 0, "The object that this event is about."),
        column(
            "Subobject",
            "@event-subobject",
            1,
            "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement.",
        ),
        column(
            "Source",
            "@event-source",
            1,
            "The component reporting this event. Should be a short machine understandable string.",
        ),
        column(
            "Message",
            "@event-message",
            0,
            "A human-readable description of the status of this operation.",
        ),
        column(
            "First Seen",
            "@event-first-seen",
            1,
            "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)",
        ),
        column(
            "Count",
            "@event-count",
            1,
            "The number of times this event has occurred.",
        ),
        column("Name", "@event-name", 1, "Name must be unique within a namespace."),
    ]
}

/// Whether a column list is the events Table, which brings its own Name column and no Age.
pub fn is_event_table(columns: &[PrinterColumn]) -> bool {
    columns.first().is_some_and(|c| c.json_path == LAST_SEEN)
}

/// Time since a timestamp as kubectl prints it, `<unknown>` when unset.
fn since(timestamp: &str) -> String {
    match timestamp.parse::<k8s_openapi::jiff::Timestamp>() {
        Ok(ts) => super::table::human_duration(k8s_openapi::jiff::Timestamp::now().as_second() - ts.as_second()),
        Err(_) => "<unknown>".into(),
    }
}

/// One cell of the events Table, for an Event in either API's form; `None` when `name` is not an event column.
pub fn cell(name: &str, object: &Value) -> Option<Value> {
    if !name.starts_with("@event-") {
        return None;
    }
    let event = to_core(object.clone());
    let first = || {
        let first = text(&event, "/firstTimestamp");
        since(if first.is_empty() {
            text(&event, "/eventTime")
        } else {
            first
        })
    };
    let series = event.get("series").filter(|s| s.is_object());
    let value = match name {
        LAST_SEEN => match series {
            Some(_) => json!(since(text(&event, "/series/lastObservedTime"))),
            None if !text(&event, "/lastTimestamp").is_empty() => json!(since(text(&event, "/lastTimestamp"))),
            None => json!(first()),
        },
        "@event-first-seen" => json!(first()),
        "@event-type" => json!(text(&event, "/type")),
        "@event-reason" => json!(text(&event, "/reason")),
        "@event-object" => {
            let kind = text(&event, "/involvedObject/kind").to_lowercase();
            let object_name = text(&event, "/involvedObject/name");
            json!(if object_name.is_empty() {
                kind
            } else {
                format!("{kind}/{object_name}")
            })
        }
        "@event-subobject" => json!(text(&event, "/involvedObject/fieldPath")),
        "@event-source" => {
            let component = first_non_empty(text(&event, "/source/component"), text(&event, "/reportingComponent"));
            let instance = first_non_empty(text(&event, "/source/host"), text(&event, "/reportingInstance"));
            json!(if instance.is_empty() {
                component.to_string()
            } else {
                format!("{component}, {instance}")
            })
        }
        "@event-message" => json!(text(&event, "/message").trim()),
        "@event-count" => {
            let count = match series {
                Some(s) => s.get("count").and_then(Value::as_i64).unwrap_or_default(),
                None => event
                    .get("count")
                    .and_then(Value::as_i64)
                    .filter(|c| *c != 0)
                    .unwrap_or(1),
            };
            json!(count)
        }
        "@event-name" => json!(text(&event, "/metadata/name")),
        _ => return None,
    };
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded() -> Value {
        json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "db.1", "namespace": "ns"},
            "eventTime": "2026-01-01T00:00:00.000000Z",
            "regarding": {"kind": "RedisEnterpriseDatabase", "name": "db", "namespace": "ns", "uid": "u1"},
            "note": " created the database \n", "reason": "DatabaseCreated", "type": "Normal", "action": "Create",
            "reportingController": "redis-gitops", "reportingInstance": "agent-0",
            "series": {"count": 3, "lastObservedTime": "2026-01-01T00:00:05.000000Z"},
        })
    }

    #[test]
    fn conversion_renames_field_for_field_both_ways() {
        let core = to_core(recorded());
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["involvedObject"]["name"], "db");
        assert_eq!(core["message"], " created the database \n");
        assert_eq!(core["reportingComponent"], "redis-gitops");
        assert_eq!(core["series"]["count"], 3);
        for gone in ["regarding", "note", "reportingController", "source", "count"] {
            assert!(core.get(gone).is_none(), "{gone} in {core}");
        }
        assert_eq!(to_events_v1(core), recorded());

        let legacy = json!({"apiVersion": "v1", "kind": "Event", "source": {"component": "kubelet", "host": "n1"},
                            "count": 2, "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:01:00Z"});
        let served = to_events_v1(legacy.clone());
        assert_eq!(served["deprecatedSource"]["component"], "kubelet");
        assert_eq!(served["deprecatedCount"], 2);
        assert_eq!(served["deprecatedLastTimestamp"], "2026-01-01T00:01:00Z");
        assert_eq!(to_core(served), legacy);
    }

    #[test]
    fn selector_labels_of_both_apis() {
        let core = to_core(recorded());
        assert_eq!(selector_value(&core, "regarding.name").as_deref(), Some("db"));
        assert_eq!(selector_value(&core, "regarding.uid").as_deref(), Some("u1"));
        assert_eq!(
            selector_value(&core, "reportingController").as_deref(),
            Some("redis-gitops")
        );
        assert_eq!(selector_value(&core, "source").as_deref(), Some("redis-gitops"));
        assert_eq!(
            selector_value(&core, "involvedObject.name"),
            None,
            "the plain path answers it"
        );
        let legacy = json!({"apiVersion": "v1", "kind": "Event", "source": {"component": "kubelet"}});
        assert_eq!(selector_value(&legacy, "source").as_deref(), Some("kubelet"));
        let other = json!({"apiVersion": "v1", "kind": "ConfigMap"});
        assert_eq!(selector_value(&other, "source"), None);
    }

    #[test]
    fn table_cells_as_kube_apiserver_prints_them() {
        let columns = columns();
        assert!(is_event_table(&columns));
        let headers: Vec<&str> = columns
            .iter()
            .filter(|c| c.priority == 0)
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(headers, ["Last Seen", "Type", "Reason", "Object", "Message"]);
        let cells: Vec<Value> = columns
            .iter()
            .map(|c| cell(&c.json_path, &recorded()).unwrap_or(Value::Null))
            .collect();
        assert_eq!(
            cells[1..],
            [
                json!("Normal"),
                json!("DatabaseCreated"),
                json!("redisenterprisedatabase/db"),
                json!(""),
                json!("redis-gitops, agent-0"),
                json!("created the database"),
                cells[7].clone(),
                json!(3),
                json!("db.1"),
            ]
        );
        let five_minutes_ago = k8s_openapi::jiff::Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(300);
        let mut recent = recorded();
        recent["series"]["lastObservedTime"] = json!(five_minutes_ago.to_string());
        assert_eq!(cell("@event-last-seen", &recent), Some(json!("5m")));
        let single = json!({"apiVersion": "v1", "kind": "Event", "involvedObject": {"kind": "Node"}, "message": "m"});
        assert_eq!(cell("@event-count", &single), Some(json!(1)));
        assert_eq!(cell("@event-object", &single), Some(json!("node")));
        assert_eq!(cell("@event-last-seen", &single), Some(json!("<unknown>")));
        assert_eq!(cell(".type", &single), None);
    }
}
