//! The official operator's example manifests (shapes from its docs, `tests/official/`) load, with a warning for
//! each official field redis-gitops does not manage yet, and render into valid Kubernetes objects.

use std::fs;
use std::path::Path;

use redis_gitops::desired::render::{Only, render, to_yaml_stream};
use redis_gitops::manifests::{LoadOptions, SourceFile, load_files};

fn load(name: &str) -> redis_gitops::manifests::Repository {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/official").join(name);
    let content = fs::read(&path).expect("fixture exists");
    let file = SourceFile {
        path: name.to_string(),
        content,
    };
    match load_files(&[file], &LoadOptions::default()) {
        Ok(repository) => repository,
        Err(diagnostics) => {
            let text: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
            panic!("{name} does not load:\n{}", text.join("\n"))
        }
    }
}

fn warnings(repository: &redis_gitops::manifests::Repository) -> Vec<String> {
    repository.warnings.iter().map(ToString::to_string).collect()
}

#[test]
fn the_basic_examples_load_without_warnings_and_v1alpha1_equals_v1() {
    let v1 = load("v1-rec.yaml");
    let v1alpha1 = load("v1alpha1-rec.yaml");
    assert!(warnings(&v1).is_empty(), "{:?}", warnings(&v1));
    assert_eq!(
        v1.clusters[0].validated, v1alpha1.clusters[0].validated,
        "both versions mean the same cluster"
    );
    assert_eq!(v1alpha1.clusters[0].object.spec, v1.clusters[0].object.spec);
    let cluster = &v1.clusters[0].validated;
    assert_eq!((cluster.name.as_str(), cluster.nodes), ("rec", 3));
    assert_eq!(
        cluster.persistence.as_ref().map(|p| p.volume_size.0.as_str()),
        Some("20Gi")
    );

    let redb = load("v1alpha1-redb.yaml");
    let database = &redb.databases[0].validated;
    assert_eq!(
        (database.memory_size_bytes, database.shard_count, database.replication),
        (256 << 20, 1, false)
    );
    // The example has no cluster reference: the one REC of the namespace is used, which is not in this file.
    assert_eq!(
        warnings(&redb),
        [
            "v1alpha1-redb.yaml:6:3: warning: spec: no RedisEnterpriseCluster in namespace default in this repository; the \
          database goes to the cluster of that namespace, which must already exist"
        ]
    );
}

#[test]
fn older_examples_load_with_their_defaults() {
    let simple = load("simple.yaml");
    let cluster = &simple.clusters[0].validated;
    assert_eq!(cluster.image, "redislabs/redis:8.0.20-44");
    assert_eq!(
        cluster.persistence.as_ref().map(|p| p.volume_size.0.as_str()),
        Some("20Gi")
    );
    let persistent = load("persistent.yaml");
    assert_eq!(
        persistent.clusters[0]
            .validated
            .persistence
            .as_ref()
            .and_then(|p| p.storage_class_name.as_deref()),
        Some("gp2")
    );
    let legacy = load("legacy.yaml");
    let cluster = &legacy.clusters[0].validated;
    assert_eq!(cluster.username, "admin@acme.com");
    assert_eq!(cluster.ui_service_type.as_str(), "LoadBalancer");
    for name in ["old-redb-100mb.yaml", "old-redb-1gb.yaml"] {
        let repository = load(name);
        assert_eq!(
            repository.databases[0].validated.cluster_reference.as_deref(),
            Some("redis-enterprise")
        );
    }
}

#[test]
fn official_fields_not_managed_yet_are_warnings_naming_the_field() {
    let expectations: [(&str, &[&str]); 4] = [
        ("with-service-broker.yaml", &["serviceBrokerSpec"]),
        ("rack-aware-rec.yaml", &["rackAwarenessNodeLabel"]),
        (
            "rec-rhel.yaml",
            &[
                "redisEnterpriseServicesRiggerImageSpec",
                "bootstrapperImageSpec",
                "usageMeter",
            ],
        ),
        (
            "vault-rec.yaml",
            &[
                "clusterCredentialSecretType",
                "clusterCredentialSecretRole",
                "vaultCASecret",
            ],
        ),
    ];
    for (file, fields) in expectations {
        let repository = load(file);
        let found = warnings(&repository);
        assert_eq!(found.len(), fields.len(), "{file}: {found:?}");
        for (warning, field) in found.iter().zip(fields.iter()) {
            assert!(
                warning.contains(&format!(
                    "warning: spec.{field}: {field} is a field of the official operator that redis-gitops does not manage yet"
                )),
                "{file}: {warning}"
            );
        }
    }
    let rhel = load("rec-rhel.yaml");
    assert_eq!(
        rhel.clusters[0].validated.image,
        "registry.connect.redhat.com/redislabs/redis-enterprise:8.0.20-44.23"
    );
}

#[test]
fn every_example_renders_objects_that_pass_the_kubernetes_schemas() {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/official");
    let mut stream = String::new();
    let mut names: Vec<_> = fs::read_dir(&directory)
        .expect("dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    names.sort();
    for name in names {
        let name = name.to_string_lossy().into_owned();
        if name.ends_with(".yaml") {
            stream.push_str(&to_yaml_stream(&render(&load(&name)), Only::Kubernetes).expect("renders"));
        }
    }
    let output = std::env::temp_dir().join(format!("official-render-{}.yaml", std::process::id()));
    fs::write(&output, &stream).expect("write");
    let report = support_check_schemas(&output);
    assert!(
        report.ends_with(" invalid") && report.contains(", 0 invalid"),
        "{report}"
    );
    fs::remove_file(&output).ok();
}

/// Runs the team's schema checker (`../shared/tools/check-k8s-schemas`) and returns its summary line.
fn support_check_schemas(file: &Path) -> String {
    let tool = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/tools/check-k8s-schemas");
    assert!(
        tool.exists(),
        "{} is missing: the tests need the shared/ directory beside the checkout",
        tool.display()
    );
    let output = std::process::Command::new(&tool)
        .arg(file)
        .output()
        .expect("the schema checker runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schema check failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout.lines().last().unwrap_or_default().to_string()
}
