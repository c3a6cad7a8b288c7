//! Discovery documents: `/version`, `/api`, `/apis`, `/apis/{group}` and the per group-version
//! `APIResourceList` (verbs, short names, scope, kind, subresources). Aggregated discovery is answered in the
//! legacy format, which kubectl accepts by looking at the response content type. The review groups
//! (`authorization.k8s.io`, `authentication.k8s.io`) and `serviceaccounts/token` are listed here too.

use serde_json::{Value, json};

use super::resources::Registry;
use super::reviews::{AUTHENTICATION_GROUP, AUTHORIZATION_GROUP};

/// The `/version` document.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": "v1.32.0-sandbox",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.23",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

/// The `/api` document.
pub fn core_versions(address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}]
    })
}

fn group_json(group: &str, versions: &[String]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    let preferred = versions.first().cloned().unwrap_or(json!({}));
    json!({"name": group, "versions": versions, "preferredVersion": preferred})
}

/// The groups served: the registry's, plus the create-only review groups of `reviews.rs`.
fn served_groups(registry: &Registry) -> Vec<(String, Vec<String>)> {
    let mut groups = registry.groups();
    for group in [AUTHENTICATION_GROUP, AUTHORIZATION_GROUP] {
        if !groups.iter().any(|(g, _)| g == group) {
            groups.push((group.to_string(), vec!["v1".to_string()]));
        }
    }
    groups
}

/// The `/apis` document.
pub fn group_list(registry: &Registry) -> Value {
    let groups: Vec<Value> = served_groups(registry)
        .iter()
        .map(|(g, vs)| group_json(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// The `/apis/{group}` document, if the group is served.
pub fn group(registry: &Registry, name: &str) -> Option<Value> {
    served_groups(registry).iter().find(|(g, _)| g == name).map(|(g, vs)| {
        let mut doc = group_json(g, vs);
        if let Some(map) = doc.as_object_mut() {
            map.insert("kind".into(), json!("APIGroup"));
            map.insert("apiVersion".into(), json!("v1"));
        }
        doc
    })
}

/// The `APIResourceList` of one group-version, if anything is served there.
pub fn resource_list(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let mut resources = Vec::new();
    for info in registry.all() {
        if info.group != group || info.version(version).is_none() {
            continue;
        }
        let mut entry = json!({
            "name": info.plural,
            "singularName": info.singular,
            "namespaced": info.namespaced,
            "kind": info.kind,
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
        });
        if let Some(map) = entry.as_object_mut() {
            if !info.short_names.is_empty() {
                map.insert("shortNames".into(), json!(info.short_names));
            }
            if !info.categories.is_empty() {
                map.insert("categories".into(), json!(info.categories));
            }
        }
        resources.push(entry);
        if info.group.is_empty() && info.plural == "serviceaccounts" {
            resources.push(json!({
                "name": "serviceaccounts/token",
                "singularName": "",
                "namespaced": true,
                "group": AUTHENTICATION_GROUP,
                "version": "v1",
                "kind": "TokenRequest",
                "verbs": ["create"],
            }));
        }
        if info.version(version).is_some_and(|v| v.scale.is_some()) {
            resources.push(json!({
                "name": format!("{}/scale", info.plural),
                "singularName": "",
                "namespaced": info.namespaced,
                "group": "autoscaling",
                "version": "v1",
                "kind": "Scale",
                "verbs": ["get", "patch", "update"],
            }));
        }
        if info.version(version).is_some_and(|v| v.status_subresource) {
            resources.push(json!({
                "name": format!("{}/status", info.plural),
                "singularName": "",
                "namespaced": info.namespaced,
                "kind": info.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    if resources.is_empty() {
        return None;
    }
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }))
}
