//! `redis-gitops plan` as a reviewer and a CI job meet it: one scenario per risk code, the exit codes (0 no change,
//! 1 changes, 2 invalid head, 3 `--fail-on`), directories and real Git revisions as inputs, and the pull-request
//! comment against the reviewed golden file `tests/plan/golden.md`.
//! To review a deliberate change of the comment: `BLESS=1 cargo test --test plan`, then read the diff.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use tempfile::TempDir;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn base() -> PathBuf {
    root().join("tests/plan/base")
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_redis-gitops"))
        .arg("plan")
        .args(args)
        .current_dir(root())
        .output()
        .expect("the binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create directory");
    for entry in fs::read_dir(from).expect("read fixture directory") {
        let entry = entry.expect("directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("copy fixture");
        }
    }
}

/// The base fixture with edits: `(file, Some(text))` writes a file, `(file, None)` removes it.
fn head_with(edits: &[(&str, Option<String>)]) -> TempDir {
    let directory = tempfile::tempdir().expect("temp dir");
    copy_dir(&base(), directory.path());
    for (file, text) in edits {
        let path = directory.path().join(file);
        match text {
            Some(text) => {
                fs::create_dir_all(path.parent().expect("parent")).expect("create parent");
                fs::write(&path, text).expect("write edit");
            }
            None => fs::remove_file(&path).expect("remove file"),
        }
    }
    directory
}

fn fixture(file: &str) -> String {
    fs::read_to_string(base().join(file)).expect("fixture exists")
}

/// The base file with one text replaced (the replaced text must be there).
fn edited(file: &str, from: &str, to: &str) -> (String, Option<String>) {
    let text = fixture(file);
    assert!(text.contains(from), "{file} contains {from:?}");
    (file.to_string(), Some(text.replace(from, to)))
}

/// Plans base → head as JSON with extra flags; returns the exit code and the document.
fn plan_json(head: &Path, flags: &[&str]) -> (i32, Value) {
    let base = base();
    let mut args = vec![
        "--base",
        base.to_str().expect("UTF-8 path"),
        "--head",
        head.to_str().expect("UTF-8 path"),
        "-o",
        "json",
    ];
    args.extend_from_slice(flags);
    let output = run(&args);
    let text = stdout(&output);
    let json: Value = serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("{error}: {text}\n{}", String::from_utf8_lossy(&output.stderr)));
    (output.status.code().expect("exit code"), json)
}

fn edits_to(edits: Vec<(String, Option<String>)>) -> TempDir {
    let borrowed: Vec<(&str, Option<String>)> = edits.iter().map(|(f, t)| (f.as_str(), t.clone())).collect();
    head_with(&borrowed)
}

/// The change of `name`, and the codes and severities of its risks.
fn change<'a>(plan: &'a Value, kind: &str, name: &str) -> &'a Value {
    plan["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .find(|change| change["kind"] == kind && change["name"] == name)
        .unwrap_or_else(|| panic!("no change of {kind} {name} in {plan:#}"))
}

fn risks(change: &Value) -> Vec<(String, String)> {
    change["risks"]
        .as_array()
        .expect("risks")
        .iter()
        .map(|risk| {
            (
                risk["code"].as_str().expect("code").to_string(),
                risk["severity"].as_str().expect("severity").to_string(),
            )
        })
        .collect()
}

fn risk_message<'a>(change: &'a Value, code: &str) -> &'a str {
    change["risks"]
        .as_array()
        .expect("risks")
        .iter()
        .find(|risk| risk["code"] == code)
        .and_then(|risk| risk["message"].as_str())
        .unwrap_or_else(|| panic!("no {code} in {change:#}"))
}

const REDB: &str = "RedisEnterpriseDatabase";
const REC: &str = "RedisEnterpriseCluster";

/// One database changed by one edit: the plan has exactly that change; returns it.
fn single_database_change(file: &str, from: &str, to: &str, name: &str) -> Value {
    let head = edits_to(vec![edited(file, from, to)]);
    let (code, plan) = plan_json(head.path(), &[]);
    assert_eq!(code, 1, "{plan:#}");
    assert_eq!(plan["changes"].as_array().expect("changes").len(), 1, "{plan:#}");
    change(&plan, REDB, name).clone()
}

#[test]
fn comments_reordered_keys_and_moved_files_are_no_change() {
    let reordered = "apiVersion: app.redislabs.com/v1alpha1\nkind: RedisEnterpriseDatabase\nspec:\n  databasePort: 12000\n  \
                     persistence: aofEverySecond\n  replication: true\n  evictionPolicy: allkeys-lru\n  memorySize: 2GB\n  \
                     redisEnterpriseCluster: {name: rec}   # the same cluster\nmetadata: {namespace: redis, name: cache}\n";
    let head = head_with(&[
        ("databases/cache.yaml", None),
        ("moved/cache.yml", Some(reordered.to_string())),
        (
            "cluster.yaml",
            Some(format!("# a new comment\n{}\n# and another\n", fixture("cluster.yaml"))),
        ),
    ]);
    let base = base();
    let output = run(&[
        "--base",
        base.to_str().expect("path"),
        "--head",
        head.path().to_str().expect("path"),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert_eq!(stdout(&output), "No changes: 5 objects unchanged.\n");
    let (code, plan) = plan_json(head.path(), &["--fail-on", "risk"]);
    assert_eq!(code, 0);
    assert_eq!(plan["changes"], Value::Array(Vec::new()));
    assert_eq!(plan["summary"]["unchanged"], 5);
}

#[test]
fn an_invalid_head_exits_2_with_the_errors_validate_prints() {
    let head = edits_to(vec![edited(
        "databases/cache.yaml",
        "evictionPolicy: allkeys-lru",
        "evictionPolicy: illegal",
    )]);
    let base = base();
    let output = run(&[
        "--base",
        base.to_str().expect("path"),
        "--head",
        head.path().to_str().expect("path"),
    ]);
    assert_eq!(output.status.code(), Some(2));
    let text = stdout(&output);
    let validate = Command::new(env!("CARGO_BIN_EXE_redis-gitops"))
        .args(["validate", head.path().to_str().expect("path")])
        .output()
        .expect("validate runs");
    let located = stdout(&validate).lines().next().expect("a located error").to_string();
    assert!(
        located.starts_with("databases/cache.yaml:11:19: spec.evictionPolicy: \"illegal\" is not one of"),
        "{located}"
    );
    assert_eq!(text.lines().next(), Some(located.as_str()), "{text}");
    assert!(
        text.ends_with("errors, 0 warnings; nothing would be applied\n"),
        "{text}"
    );
    let (code, json) = plan_json(head.path(), &[]);
    assert_eq!(code, 2);
    assert_eq!(json["errors"][0]["file"], "databases/cache.yaml");
    assert_eq!(json["errors"][0]["line"], 11);
    assert_eq!(json["errors"][0]["field"], "spec.evictionPolicy");
}

#[test]
fn fail_on_exits_3_only_when_a_matching_risk_is_there() {
    let deleted = head_with(&[("databases/legacy.yaml", None)]);
    assert_eq!(plan_json(deleted.path(), &[]).0, 1);
    assert_eq!(plan_json(deleted.path(), &["--fail-on", "data-loss"]).0, 3);
    // Kept by the GitSync's settings: a warning, not data loss.
    assert_eq!(
        plan_json(deleted.path(), &["--fail-on", "data-loss", "--prune", "false"]).0,
        1
    );
    assert_eq!(
        plan_json(deleted.path(), &["--fail-on", "risk", "--prune", "false"]).0,
        3
    );
    let harmless = edits_to(vec![edited("databases/orders.yaml", "team: shop", "team: checkout")]);
    let (code, plan) = plan_json(harmless.path(), &["--fail-on", "risk"]);
    assert_eq!(code, 1, "{plan:#}");
    assert_eq!(
        change(&plan, REDB, "orders")["fields"],
        serde_json::json!([{"path": "metadata.labels.team", "from": "shop", "to": "checkout"}])
    );
}

#[test]
fn database_deleted_says_what_the_gitsync_settings_do() {
    let head = head_with(&[("databases/legacy.yaml", None)]);
    let (_, unknown) = plan_json(head.path(), &[]);
    let legacy = change(&unknown, REDB, "legacy");
    assert_eq!(legacy["action"], "delete");
    assert_eq!(
        risks(legacy),
        [("DatabaseDeleted".to_string(), "data-loss".to_string())]
    );
    let message = risk_message(legacy, "DatabaseDeleted");
    assert!(
        message.contains("with the GitSync's prune: true and allowDatabaseDeletion: true the agent deletes"),
        "{message}"
    );
    assert!(message.contains("pass --gitsync FILE"), "{message}");
    assert_eq!(legacy["requests"], Value::Array(Vec::new()), "not sure to be sent");

    let gitsync = tempfile::NamedTempFile::new().expect("temp file");
    fs::write(
        gitsync.path(),
        "apiVersion: redisgitops.dev/v1alpha1\nkind: GitSync\nmetadata: {name: config, namespace: redis}\nspec:\n  \
         url: https://git.example.com/config.git\n  prune: true\n  allowDatabaseDeletion: true\n",
    )
    .expect("write GitSync");
    let (code, pruning) = plan_json(head.path(), &["--gitsync", gitsync.path().to_str().expect("path")]);
    assert_eq!(code, 1);
    let legacy = change(&pruning, REDB, "legacy");
    assert!(
        risk_message(legacy, "DatabaseDeleted")
            .contains("the agent deletes the database redis/legacy on cluster redis/rec and all its data"),
        "{legacy:#}"
    );
    assert_eq!(legacy["requests"][0]["method"], "DELETE");
    assert_eq!(legacy["requests"][0]["path"], "/v1/bdbs/{uid}");

    let (_, kept) = plan_json(head.path(), &["--prune", "true", "--allow-database-deletion", "false"]);
    let legacy = change(&kept, REDB, "legacy");
    assert_eq!(risks(legacy), [("DatabaseDeleted".to_string(), "warning".to_string())]);
    assert!(
        risk_message(legacy, "DatabaseDeleted")
            .contains("does not allow deleting databases (spec.allowDatabaseDeletion)"),
        "{legacy:#}"
    );

    let protected = edits_to(vec![edited(
        "databases/legacy.yaml",
        "  namespace: redis\n",
        "  namespace: redis\n  annotations:\n    redisgitops.dev/protect: \"true\"\n",
    )]);
    let (_, protected_plan) = {
        // The protected object is the base; the head removes it.
        let base = protected.path().to_path_buf();
        let head = head_with(&[("databases/legacy.yaml", None)]);
        let output = run(&[
            "--base",
            base.to_str().expect("path"),
            "--head",
            head.path().to_str().expect("path"),
            "-o",
            "json",
            "--prune",
            "true",
            "--allow-database-deletion",
            "true",
        ]);
        (
            output.status.code(),
            serde_json::from_str::<Value>(&stdout(&output)).expect("JSON"),
        )
    };
    let legacy = change(&protected_plan, REDB, "legacy");
    assert_eq!(risks(legacy), [("DatabaseDeleted".to_string(), "warning".to_string())]);
    assert!(
        risk_message(legacy, "DatabaseDeleted").contains("redisgitops.dev/protect=true"),
        "{legacy:#}"
    );
}

#[test]
fn a_rename_is_one_probable_rename_and_a_new_cluster_reference_recreates() {
    let sessions = fixture("databases/sessions.yaml");
    let head = head_with(&[
        ("databases/sessions.yaml", None),
        (
            "databases/user-sessions.yaml",
            Some(sessions.replace("name: sessions", "name: user-sessions")),
        ),
    ]);
    let (_, plan) = plan_json(head.path(), &[]);
    let old = change(&plan, REDB, "sessions");
    assert_eq!(old["renamedTo"], "redis/user-sessions");
    assert_eq!(risks(old), [("DatabaseRecreated".to_string(), "data-loss".to_string())]);
    assert!(risk_message(old, "DatabaseRecreated").starts_with("probably renamed to redis/user-sessions"));
    let new = change(&plan, REDB, "user-sessions");
    assert_eq!(new["renamedFrom"], "redis/sessions");
    assert_eq!(new["action"], "create");
    assert_eq!(
        plan["summary"]["dataLoss"], 1,
        "one rename, not a deletion plus a rename"
    );

    let moved = single_database_change("databases/cache.yaml", "name: rec", "name: other-rec", "cache");
    assert_eq!(
        risks(&moved),
        [("DatabaseRecreated".to_string(), "data-loss".to_string())]
    );
    assert!(risk_message(&moved, "DatabaseRecreated").contains("from cluster redis/rec to redis/other-rec"));
    assert_eq!(moved["requests"][0]["method"], "POST");
    assert_eq!(moved["requests"][0]["path"], "/v1/bdbs");
    assert_eq!(moved["requests"][0]["cluster"], "redis/other-rec");
}

#[test]
fn cluster_deleted_names_the_databases_on_it() {
    let head = head_with(&[("cluster.yaml", None)]);
    let (_, plan) = plan_json(head.path(), &["--prune", "true", "--allow-database-deletion", "true"]);
    let rec = change(&plan, REC, "rec");
    assert_eq!(rec["action"], "delete");
    let message = risk_message(rec, "ClusterDeleted");
    assert!(
        message.contains("it holds 4 databases (redis/cache, redis/legacy, redis/orders, redis/sessions)"),
        "{message}"
    );
    assert!(message.contains("databases still live on this cluster"), "{message}");
    let head = edits_to(vec![
        ("cluster.yaml".into(), None),
        ("databases/cache.yaml".into(), None),
        ("databases/orders.yaml".into(), None),
        ("databases/sessions.yaml".into(), None),
    ]);
    let (_, plan) = plan_json(head.path(), &["--prune", "true", "--allow-database-deletion", "true"]);
    let rec = change(&plan, REC, "rec");
    assert_eq!(
        risks(rec),
        [("ClusterDeleted".to_string(), "warning".to_string())],
        "kept while legacy lives on it"
    );
}

#[test]
fn immutable_fields_are_flagged_for_databases_and_the_statefulset() {
    let port = single_database_change(
        "databases/cache.yaml",
        "databasePort: 12000",
        "databasePort: 12100",
        "cache",
    );
    assert!(risks(&port).contains(&("ImmutableFieldChanged".to_string(), "warning".to_string())));
    assert!(risk_message(&port, "ImmutableFieldChanged").starts_with("spec.databasePort cannot change"));
    assert_eq!(port["requests"], Value::Array(Vec::new()), "the agent sends nothing");

    let head = edits_to(vec![edited("cluster.yaml", "volumeSize: 20Gi", "volumeSize: 40Gi")]);
    let (_, plan) = plan_json(head.path(), &[]);
    let rec = change(&plan, REC, "rec");
    let message = risk_message(rec, "ImmutableFieldChanged");
    assert!(
        message.starts_with("the StatefulSet's spec.volumeClaimTemplates (from spec.persistentSpec"),
        "{message}"
    );
}

#[test]
fn fewer_nodes_are_refused_and_a_new_version_restarts_every_node_in_order() {
    let head = edits_to(vec![edited("cluster.yaml", "nodes: 5", "nodes: 3")]);
    let (_, plan) = plan_json(head.path(), &[]);
    let rec = change(&plan, REC, "rec");
    assert_eq!(risks(rec), [("ScaleInRefused".to_string(), "warning".to_string())]);
    assert!(risk_message(rec, "ScaleInRefused").contains("the StatefulSet keeps 5 replicas"));
    assert_eq!(
        rec["children"],
        Value::Array(Vec::new()),
        "nothing changes in the cluster"
    );

    let head = edits_to(vec![edited(
        "cluster.yaml",
        "versionTag: 8.0.20-44",
        "versionTag: 8.2.0-1",
    )]);
    let (_, plan) = plan_json(head.path(), &[]);
    let rec = change(&plan, REC, "rec");
    assert_eq!(risks(rec), [("RollingRestart".to_string(), "disruption".to_string())]);
    let message = risk_message(rec, "RollingRestart");
    assert!(
        message.starts_with(
            "the Redis Enterprise version goes from 8.0.20-44 to 8.2.0-1 (an upgrade): every node restarts, one at a \
             time, in this order: rec-4, rec-3, rec-2, rec-1, rec-0"
        ),
        "{message}"
    );
    let statefulset = rec["children"]
        .as_array()
        .expect("children")
        .iter()
        .find(|child| child["kind"] == "StatefulSet")
        .expect("the StatefulSet changes");
    assert_eq!(
        statefulset["note"],
        "rolling restart of 5 pods, one at a time, in this order: rec-4, rec-3, rec-2, rec-1, rec-0"
    );
}

#[test]
fn memory_reduced_is_data_loss_only_when_keys_are_evicted() {
    let cache = single_database_change("databases/cache.yaml", "memorySize: 2GB", "memorySize: 1GB", "cache");
    assert_eq!(risks(&cache), [("MemoryReduced".to_string(), "data-loss".to_string())]);
    assert!(risk_message(&cache, "MemoryReduced").contains("with eviction policy allkeys-lru"));
    assert_eq!(
        cache["requests"],
        serde_json::json!([{"method": "PUT", "path": "/v1/bdbs/{uid}", "cluster": "redis/rec", "body": {"memory_size": 1073741824u64}}])
    );
    let orders = single_database_change("databases/orders.yaml", "memorySize: 4GB", "memorySize: 3GB", "orders");
    assert_eq!(risks(&orders), [("MemoryReduced".to_string(), "warning".to_string())]);
    assert!(risk_message(&orders, "MemoryReduced").contains("with eviction policy noeviction: nothing is evicted"));
}

#[test]
fn durability_modules_shards_and_eviction() {
    let durability = single_database_change(
        "databases/orders.yaml",
        "  replication: true\n  persistence: aofAlways\n",
        "  replication: false\n  persistence: disabled\n",
        "orders",
    );
    assert_eq!(
        risks(&durability),
        [("DurabilityReduced".to_string(), "warning".to_string())]
    );
    let message = risk_message(&durability, "DurabilityReduced");
    assert!(
        message.starts_with("persistence goes from aofAlways to disabled"),
        "{message}"
    );
    assert!(message.contains("replication is turned off"), "{message}");
    assert_eq!(
        durability["requests"][0]["body"],
        serde_json::json!({"data_persistence": "disabled", "replication": false})
    );

    let module = single_database_change("databases/orders.yaml", "    - name: ReJSON\n", "", "orders");
    // Modules are create-only on the cluster: the change is also flagged as one the agent will not apply.
    assert_eq!(
        risks(&module),
        [
            ("ModuleRemoved".to_string(), "data-loss".to_string()),
            ("ImmutableFieldChanged".to_string(), "warning".to_string())
        ]
    );
    assert!(risk_message(&module, "ModuleRemoved").starts_with("module rejson is removed"));

    let shards = single_database_change("databases/orders.yaml", "shardCount: 2", "shardCount: 4", "orders");
    assert_eq!(
        risks(&shards),
        [("ShardCountChanged".to_string(), "disruption".to_string())]
    );
    assert_eq!(shards["requests"][0]["body"], serde_json::json!({"shards_count": 4}));

    let eviction = single_database_change(
        "databases/orders.yaml",
        "evictionPolicy: noeviction",
        "evictionPolicy: allkeys-lru",
        "orders",
    );
    assert_eq!(
        risks(&eviction),
        [("EvictionPolicyChanged".to_string(), "warning".to_string())]
    );
    assert!(risk_message(&eviction, "EvictionPolicyChanged").contains("Redis now deletes keys"));
}

#[test]
fn tls_version_credentials_oss_cluster_and_endpoints() {
    let tls = single_database_change(
        "databases/orders.yaml",
        "tlsMode: disabled",
        "tlsMode: enabled",
        "orders",
    );
    assert_eq!(risks(&tls), [("TlsModeChanged".to_string(), "disruption".to_string())]);

    let upgrade = single_database_change(
        "databases/sessions.yaml",
        "  memorySize: 1GB\n",
        "  memorySize: 1GB\n  redisVersion: \"7.4\"\n",
        "sessions",
    );
    assert_eq!(
        risks(&upgrade),
        [("RedisVersionChanged".to_string(), "disruption".to_string())]
    );
    let paths: Vec<&str> = upgrade["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .map(|request| request["path"].as_str().expect("path"))
        .collect();
    assert_eq!(paths, ["/v1/bdbs/{uid}/upgrade"], "{upgrade:#}");
    assert_eq!(
        upgrade["requests"][0]["body"],
        serde_json::json!({"redis_version": "7.4"})
    );

    let secret = single_database_change(
        "databases/sessions.yaml",
        "  memorySize: 1GB\n",
        "  memorySize: 1GB\n  databaseSecretName: sessions-v2\n",
        "sessions",
    );
    assert!(risks(&secret).contains(&("CredentialsChanged".to_string(), "disruption".to_string())));
    let secrets: Vec<(&str, &str)> = secret["children"]
        .as_array()
        .expect("children")
        .iter()
        .filter(|child| child["kind"] == "Secret")
        .map(|child| {
            (
                child["name"].as_str().expect("name"),
                child["action"].as_str().expect("action"),
            )
        })
        .collect();
    assert_eq!(secrets, [("redb-sessions", "delete"), ("sessions-v2", "create")]);

    let oss = single_database_change(
        "databases/sessions.yaml",
        "  memorySize: 1GB\n",
        "  memorySize: 1GB\n  ossCluster: true\n",
        "sessions",
    );
    assert!(
        risks(&oss).contains(&("OssClusterChanged".to_string(), "disruption".to_string())),
        "{oss:#}"
    );

    let endpoint = single_database_change(
        "databases/sessions.yaml",
        "  databasePort: 12002\n",
        "  databasePort: 12002\n  databaseServicePort: 6379\n",
        "sessions",
    );
    assert_eq!(
        risks(&endpoint),
        [("EndpointChanged".to_string(), "disruption".to_string())]
    );
    assert!(
        risk_message(&endpoint, "EndpointChanged").contains("sessions (update)"),
        "{endpoint:#}"
    );
}

#[test]
fn created_databases_show_their_requests_without_secrets() {
    let reports = fs::read_to_string(root().join("tests/plan/head/databases/reports.yaml")).expect("fixture");
    let head = head_with(&[("databases/reports.yaml", Some(reports))]);
    let (code, plan) = plan_json(head.path(), &[]);
    assert_eq!(code, 1);
    let reports = change(&plan, REDB, "reports");
    assert_eq!(reports["action"], "create");
    assert_eq!(reports["risks"], Value::Array(Vec::new()));
    let create = &reports["requests"][0];
    assert_eq!(
        (create["method"].as_str(), create["path"].as_str()),
        (Some("POST"), Some("/v1/bdbs"))
    );
    assert_eq!(create["body"]["memory_size"], 1073741824u64);
    assert!(create["body"].get("authentication_redis_pass").is_none());
    assert_eq!(
        create["filledInAtApply"],
        serde_json::json!(["authentication_redis_pass"])
    );
    assert_eq!(reports["requests"][1]["path"], "/v1/bdbs/alerts/{uid}");
    let children: Vec<String> = reports["children"]
        .as_array()
        .expect("children")
        .iter()
        .map(|child| {
            format!(
                "{} {} {}",
                child["action"].as_str().unwrap_or_default(),
                child["kind"].as_str().unwrap_or_default(),
                child["name"].as_str().unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(
        children,
        [
            "create Secret redb-reports",
            "create Service reports",
            "create Service reports-headless"
        ]
    );
}

fn git(directory: &Path, args: &[&str]) {
    let output = Command::new("git")
        .args(args)
        .current_dir(directory)
        .env("GIT_AUTHOR_NAME", "test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn two_git_revisions_are_read_without_a_checkout() {
    let repository = tempfile::tempdir().expect("temp dir");
    let path = repository.path();
    git(path, &["init", "-q", "-b", "main"]);
    copy_dir(&base(), &path.join("config"));
    fs::write(path.join("README.md"), "not YAML\n").expect("write");
    git(path, &["add", "."]);
    git(path, &["commit", "-q", "-m", "base"]);
    git(path, &["checkout", "-q", "-b", "change"]);
    fs::remove_file(path.join("config/databases/legacy.yaml")).expect("remove");
    git(path, &["commit", "-q", "-a", "-m", "remove legacy"]);
    // The work tree goes back to main: the head is read from the commit, not from the files on disk.
    git(path, &["checkout", "-q", "main"]);
    let output = run(&[
        "--repo",
        path.to_str().expect("path"),
        "--base",
        "main",
        "--head",
        "change",
        "--path",
        "config",
        "-o",
        "json",
    ]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let plan: Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    assert_eq!(plan["changes"].as_array().expect("changes").len(), 1, "{plan:#}");
    let legacy = change(&plan, REDB, "legacy");
    assert_eq!(legacy["file"], "databases/legacy.yaml");
    let same = run(&[
        "--repo",
        path.to_str().expect("path"),
        "--base",
        "main",
        "--head",
        "change~1",
        "--path",
        "config",
    ]);
    assert_eq!(same.status.code(), Some(0), "{}", stdout(&same));
    let unknown = run(&[
        "--repo",
        path.to_str().expect("path"),
        "--base",
        "main",
        "--head",
        "no-such-branch",
    ]);
    assert_eq!(unknown.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.starts_with("plan: head: unable to resolve \"no-such-branch\""),
        "{stderr}"
    );
}

#[test]
fn the_pull_request_comment_matches_the_reviewed_golden_file() {
    let base = base();
    let head = root().join("tests/plan/head");
    let output = run(&[
        "--base",
        base.to_str().expect("path"),
        "--head",
        head.to_str().expect("path"),
        "-o",
        "markdown",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let actual = stdout(&output);
    let golden = root().join("tests/plan/golden.md");
    if std::env::var_os("BLESS").is_some() {
        fs::write(&golden, &actual).expect("golden file is writable");
        return;
    }
    let expected = fs::read_to_string(&golden).unwrap_or_default();
    assert!(
        actual == expected,
        "the comment differs from tests/plan/golden.md (BLESS=1 to update, then review):\n{actual}"
    );
    let table = actual.split("<details>").next().expect("summary first");
    assert!(table.contains("| Object | Action | Risks |"), "{table}");
}
