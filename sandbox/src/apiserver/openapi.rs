//! OpenAPI v3 documents: the `/openapi/v3` index and one document per group-version, with a path per
//! resource whose write operations advertise `fieldValidation` (kubectl checks this before trusting the
//! server to validate) and a component schema per kind: the CRD's `openAPIV3Schema` (with its descriptions,
//! for `kubectl explain`) or an open schema for built-in kinds.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::resources::{Registry, ResourceInfo};

fn reversed_group(group: &str) -> String {
    if group.is_empty() {
        return "io.k8s.api.core".into();
    }
    let mut parts: Vec<&str> = group.split('.').collect();
    parts.reverse();
    parts.join(".")
}

/// The component schema name of a kind, e.g. `com.example.v1.RedisDatabase`.
pub fn schema_name(info: &ResourceInfo, version: &str) -> String {
    format!("{}.{}.{}", reversed_group(&info.group), version, info.kind)
}

fn object_meta_schema() -> Value {
    json!({
        "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "Name must be unique within a namespace."},
            "namespace": {"type": "string", "description": "Namespace defines the space within which each name must be unique."},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Map of string keys and values that can be used to organize and categorize objects."},
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Annotations is an unstructured key value map stored with a resource."},
            "finalizers": {"type": "array", "items": {"type": "string"}, "description": "Must be empty before the object is deleted from the registry."},
            "uid": {"type": "string", "description": "UID is the unique in time and space value for this object."},
            "resourceVersion": {"type": "string", "description": "An opaque value that represents the internal version of this object."},
            "generation": {"type": "integer", "format": "int64", "description": "A sequence number representing a specific generation of the desired state."},
            "creationTimestamp": {"type": "string", "format": "date-time", "description": "CreationTimestamp is a timestamp representing the server time when this object was created."}
        }
    })
}

fn kind_schema(info: &ResourceInfo, version: &str) -> Value {
    let gvk = json!([{"group": info.group, "version": version, "kind": info.kind}]);
    let mut schema = info
        .version(version)
        .and_then(|v| v.schema.clone())
        .unwrap_or_else(|| {
            let mut open = json!({
                "type": "object",
                "description": format!("{} is served by the sandbox API server with an open schema.", info.kind),
                "x-kubernetes-preserve-unknown-fields": true,
            });
            let has_spec = !matches!(
                info.plural.as_str(),
                "configmaps"
                    | "secrets"
                    | "events"
                    | "serviceaccounts"
                    | "endpoints"
                    | "endpointslices"
                    | "roles"
                    | "rolebindings"
            );
            if has_spec && let Some(map) = open.as_object_mut() {
                let part = |what: &str| {
                    json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                        "description": format!("The {what} of the {}; its fields are not described by the sandbox.", info.kind)})
                };
                map.insert("properties".into(), json!({"spec": part("desired state"), "status": part("observed state")}));
            }
            open
        });
    if let Some(map) = schema.as_object_mut() {
        map.insert("x-kubernetes-group-version-kind".into(), gvk);
        let properties = map.entry("properties").or_insert_with(|| Value::Object(Map::new()));
        if let Some(props) = properties.as_object_mut() {
            props.insert(
                "apiVersion".into(),
                json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."}),
            );
            props.insert(
                "kind".into(),
                json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents."}),
            );
            props.insert("metadata".into(), object_meta_schema());
        }
    }
    schema
}

fn parameter(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": "string", "uniqueItems": true}})
}

fn write_parameters() -> Vec<Value> {
    vec![
        parameter(
            "dryRun",
            "When present, indicates that modifications should not be persisted.",
        ),
        parameter(
            "fieldManager",
            "fieldManager is a name associated with the actor or entity that is making these changes.",
        ),
        parameter(
            "fieldValidation",
            "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields. Valid values are: Ignore, Warn (default), Strict.",
        ),
    ]
}

fn operation(info: &ResourceInfo, version: &str, action: &str, schema_ref: &str, extra: Vec<Value>) -> Value {
    let mut op = json!({
        "operationId": format!("{action}{}", info.kind),
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": info.group, "version": version, "kind": info.kind},
        "parameters": extra,
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": schema_ref}}}}},
    });
    if matches!(action, "post" | "put" | "patch")
        && let Some(map) = op.as_object_mut()
    {
        let content = if action == "patch" {
            // Strategic merge is left out on purpose: kubectl then computes its patches for built-in kinds
            // from its compiled-in types (exact merge keys) and uses merge patches for custom resources.
            json!({
                "application/json-patch+json": {"schema": {"type": "object"}},
                "application/merge-patch+json": {"schema": {"type": "object"}},
                "application/apply-patch+yaml": {"schema": {"type": "object"}},
            })
        } else {
            json!({"application/json": {"schema": {"$ref": schema_ref}}})
        };
        map.insert("requestBody".into(), json!({"content": content, "required": true}));
    }
    op
}

/// The OpenAPI v3 document of one group-version (`api/v1` or `apis/{group}/{version}`), if served.
pub fn group_version_document(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    let prefix = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    for info in registry.all() {
        if info.group != group || info.version(version).is_none() {
            continue;
        }
        let name = schema_name(info, version);
        let schema_ref = format!("#/components/schemas/{name}");
        schemas.insert(name.clone(), kind_schema(info, version));
        let (collection, item) = if info.namespaced {
            (
                format!("{prefix}/namespaces/{{namespace}}/{}", info.plural),
                format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", info.plural),
            )
        } else {
            (
                format!("{prefix}/{}", info.plural),
                format!("{prefix}/{}/{{name}}", info.plural),
            )
        };
        let mut patch_params = write_parameters();
        patch_params.push(parameter("force", "Force is going to \"force\" Apply requests."));
        paths.insert(
            collection,
            json!({
                "get": operation(info, version, "list", &schema_ref, vec![
                    parameter("labelSelector", "A selector to restrict the list of returned objects by their labels."),
                    parameter("fieldSelector", "A selector to restrict the list of returned objects by their fields."),
                ]),
                "post": operation(info, version, "post", &schema_ref, write_parameters()),
            }),
        );
        paths.insert(
            item.clone(),
            json!({
                "get": operation(info, version, "get", &schema_ref, vec![]),
                "put": operation(info, version, "put", &schema_ref, write_parameters()),
                "patch": operation(info, version, "patch", &schema_ref, patch_params.clone()),
                "delete": operation(info, version, "delete", &schema_ref, vec![parameter("propagationPolicy", "Whether and how garbage collection will be performed.")]),
            }),
        );
        if info.version(version).is_some_and(|v| v.status_subresource) {
            paths.insert(
                format!("{item}/status"),
                json!({
                    "get": operation(info, version, "get", &schema_ref, vec![]),
                    "put": operation(info, version, "put", &schema_ref, write_parameters()),
                    "patch": operation(info, version, "patch", &schema_ref, patch_params),
                }),
            );
        }
    }
    if paths.is_empty() {
        return None;
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

/// The `/openapi/v3` index: one entry per served group-version with a content hash.
pub fn index(registry: &Registry) -> Value {
    let mut paths = Map::new();
    let mut group_versions = vec![(String::new(), "v1".to_string())];
    for (group, versions) in registry.groups() {
        for v in versions {
            group_versions.push((group.clone(), v));
        }
    }
    for (group, version) in group_versions {
        let Some(doc) = group_version_document(registry, &group, &version) else {
            continue;
        };
        let key = if group.is_empty() {
            format!("api/{version}")
        } else {
            format!("apis/{group}/{version}")
        };
        let hash = Sha256::digest(doc.to_string().as_bytes());
        let hex: String = hash.iter().take(16).map(|b| format!("{b:02X}")).collect();
        paths.insert(
            key.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={hex}")}),
        );
    }
    json!({"paths": paths})
}
