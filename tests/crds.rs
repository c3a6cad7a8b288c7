//! The CRDs in `crds/` are exactly what the Rust types generate, and every field has a description, so
//! `kubectl explain` is useful. After changing a type: `cargo run -- crds --output-dir crds`.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use redis_gitops::api::{CRDS_KUSTOMIZATION, crd_file_name, crd_yaml, crds, crds_kustomization};
use serde_json::Value;

#[test]
fn checked_in_crds_match_the_types() {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let mut expected_files = BTreeSet::new();
    for crd in crds() {
        let name = crd_file_name(&crd);
        let generated = crd_yaml(&crd).expect("CRD serializes");
        let checked_in = fs::read_to_string(directory.join(&name)).unwrap_or_default();
        assert!(
            generated == checked_in,
            "crds/{name} drifted from the Rust types; regenerate it with `cargo run -- crds --output-dir crds`"
        );
        expected_files.insert(name);
    }
    let kustomization = fs::read_to_string(directory.join(CRDS_KUSTOMIZATION)).unwrap_or_default();
    assert!(
        kustomization == crds_kustomization(),
        "crds/{CRDS_KUSTOMIZATION} drifted; regenerate it with `cargo run -- crds --output-dir crds`"
    );
    expected_files.insert(CRDS_KUSTOMIZATION.to_string());
    let present: BTreeSet<String> = fs::read_dir(&directory)
        .expect("crds/ exists")
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        present, expected_files,
        "crds/ holds exactly one file per CRD and its kustomization"
    );
}

#[test]
fn names_versions_and_printer_columns_match_the_official_crds() {
    let crds = crds();
    let summary: Vec<(String, Vec<String>, Vec<String>)> = crds
        .iter()
        .map(|crd| {
            (
                crd.metadata.name.clone().unwrap_or_default(),
                crd.spec
                    .versions
                    .iter()
                    .map(|v| format!("{}{}", v.name, if v.storage { "*" } else { "" }))
                    .collect(),
                crd.spec.names.short_names.clone().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "redisenterpriseclusters.app.redislabs.com".into(),
                vec!["v1*".into(), "v1alpha1".into()],
                vec!["rec".into()]
            ),
            (
                "redisenterprisedatabases.app.redislabs.com".into(),
                vec!["v1alpha1*".into()],
                vec!["redb".into()]
            ),
            (
                "gitsyncs.redisgitops.dev".into(),
                vec!["v1alpha1*".into()],
                vec!["gsync".into()]
            ),
            (
                "redisbackupschedules.redisgitops.dev".into(),
                vec!["v1alpha1*".into()],
                vec!["rbs".into()]
            ),
            (
                "redisbackups.redisgitops.dev".into(),
                vec!["v1alpha1*".into()],
                vec!["rbk".into()]
            ),
            (
                "redisrestores.redisgitops.dev".into(),
                vec!["v1alpha1*".into()],
                vec!["rrs".into()]
            ),
        ]
    );
    let columns = |index: usize| -> Vec<String> {
        crds[index].spec.versions[0]
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.clone())
            .collect()
    };
    assert_eq!(
        columns(0),
        ["Nodes", "Version", "State", "Spec Status", "Ready", "Revision", "Age"]
    );
    assert_eq!(
        columns(1),
        [
            "Version",
            "Port",
            "Cluster",
            "Shards",
            "Status",
            "Spec Status",
            "Ready",
            "Revision",
            "Age"
        ]
    );
    assert_eq!(columns(2), ["URL", "Revision", "Ready", "Reason", "Status", "Age"]);
    assert_eq!(columns(3), ["Schedule", "Last Success", "Last Result", "Next", "Age"]);
    assert_eq!(
        columns(4),
        [
            "Database",
            "Phase",
            "Keys",
            "Size",
            "Verified",
            "Completed",
            "Reason",
            "Age"
        ]
    );
    assert_eq!(
        columns(5),
        ["Backup", "Database", "Phase", "Completed", "Message", "Age"]
    );
    // Both REC versions carry the same schema.
    assert_eq!(crds[0].spec.versions[0].schema, crds[0].spec.versions[1].schema);
}

/// Walks a schema and collects the paths of properties without a description.
fn undocumented(schema: &Value, path: &str, missing: &mut Vec<String>) {
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, property) in properties {
            let child = format!("{path}.{name}");
            let described = property
                .get("description")
                .and_then(Value::as_str)
                .is_some_and(|d| !d.trim().is_empty());
            if !described {
                missing.push(child.clone());
            }
            undocumented(property, &child, missing);
        }
    }
    if let Some(items) = schema.get("items") {
        undocumented(items, &format!("{path}[]"), missing);
    }
    if let Some(additional) = schema.get("additionalProperties").filter(|a| a.is_object()) {
        undocumented(additional, &format!("{path}{{}}"), missing);
    }
}

#[test]
fn every_field_has_a_description_for_kubectl_explain() {
    let mut missing = Vec::new();
    for crd in crds() {
        for version in &crd.spec.versions {
            let schema = serde_json::to_value(&version.schema).expect("schema serializes");
            let root = &schema["openAPIV3Schema"];
            for part in ["spec", "status"] {
                undocumented(
                    &root["properties"][part],
                    &format!("{}/{}.{part}", crd.spec.names.kind, version.name),
                    &mut missing,
                );
            }
        }
    }
    assert!(missing.is_empty(), "fields without a description: {missing:#?}");
    let database = serde_json::to_value(&crds()[1].spec.versions[0].schema).expect("schema");
    let memory = &database["openAPIV3Schema"]["properties"]["spec"]["properties"]["memorySize"]["description"];
    assert_eq!(
        memory.as_str(),
        Some(
            "Memory limit of the database, for example `100MB`, `0.5GB` or `1GB` (units are powers of 1024).\nAt least `100MB`. Default: `100MB`."
        )
    );
}
