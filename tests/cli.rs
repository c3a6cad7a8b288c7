//! The command line as a user meets it: exit codes, summaries, help text.

use std::path::Path;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_redis-gitops"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn validate_examples_repo_prints_one_line_per_object_and_succeeds() {
    let output = run(&["validate", "examples-repo"]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 11, "{text}");
    assert_eq!(
        lines[0],
        "ok RedisEnterpriseCluster redis-production/prod (clusters/production.yaml:2): 5 nodes, redislabs/redis:8.0.20-44, 80Gi per node"
    );
    assert_eq!(
        lines[3],
        "ok RedisEnterpriseDatabase redis-production/orders-cache (databases/production/orders-cache.yaml:2): cluster prod, \
         4GB, 2 shards, replication, persistence aofEverySecond, port 12002"
    );
    assert_eq!(
        lines[5],
        "ok RedisEnterpriseDatabase redis-production/product-search (databases/production/product-search.yaml:2): \
         cluster prod, 2GB, 1 shard, replication, persistence aofEverySecond, modules ReJSON+search, port 12004"
    );
    assert_eq!(lines[10], "2 clusters, 8 databases: valid, 0 warnings");
}

#[test]
fn validate_a_missing_directory_fails_clearly() {
    let output = run(&["validate", "does-not-exist"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout(&output)
            .starts_with("does-not-exist: cannot be read (No such file or directory (os error 2)); check the path\n"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn render_of_an_invalid_repository_prints_nothing_and_fails() {
    let output = run(&["render", "tests/bad-input/26-bad-eviction-policy"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("databases/cache.yaml:7:19: spec.evictionPolicy: \"illegal\" is not one of volatile-lru"),
        "{stderr}"
    );
}

#[test]
fn render_only_rest_prints_the_requests() {
    let text = stdout(&run(&["render", "examples-repo", "--only", "rest"]));
    assert_eq!(text.matches("(not a Kubernetes object)").count(), 9);
    assert!(!text.contains("kind: StatefulSet"));
}

#[test]
fn crds_prints_three_definitions_and_writes_files() {
    let text = stdout(&run(&["crds"]));
    assert_eq!(text.matches("kind: CustomResourceDefinition").count(), 6);
    let directory = std::env::temp_dir().join(format!("redis-gitops-crds-{}", std::process::id()));
    let output = run(&["crds", "--output-dir", directory.to_str().expect("utf-8 path")]);
    assert!(output.status.success());
    for name in [
        "redisenterpriseclusters.app.redislabs.com.yaml",
        "gitsyncs.redisgitops.dev.yaml",
    ] {
        assert!(Path::new(&directory).join(name).exists(), "{name} written");
    }
    std::fs::remove_dir_all(&directory).ok();
}

#[test]
fn help_explains_each_command() {
    let text = stdout(&run(&["--help"]));
    for command in ["validate", "render", "crds"] {
        assert!(text.contains(command), "{text}");
    }
    let render_help = stdout(&run(&["render", "--help"]));
    assert!(render_help.contains("Secrets are templates"), "{render_help}");
}
