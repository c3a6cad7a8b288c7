//! Every hostile value of issue 9 through `redis-gitops validate` (exact messages) and through the real GitSync
//! controller against the sandbox: an overflowing duration, unbounded numbers, a 40 MB revision, 40 alias bombs,
//! 100 000 objects. None may panic; a hostile GitSync is `Stalled` while another tenant's GitSync keeps syncing.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::api::{Api, PostParams};
use redis_gitops::api::{GitSync, RedisEnterpriseDatabase};
use redis_gitops::sync::controller::{SyncContext, run};
use redis_gitops::telemetry::Metrics;
use redis_gitops_sandbox::{Sandbox, SandboxOptions};
use serde_json::json;

mod support;
use support::Repo;

const REC: &str =
    "apiVersion: app.redislabs.com/v1\nkind: RedisEnterpriseCluster\nmetadata:\n  name: rec\nspec:\n  nodes: 3\n";

fn database(name: &str, memory: &str) -> String {
    format!(
        "apiVersion: app.redislabs.com/v1alpha1\nkind: RedisEnterpriseDatabase\nmetadata:\n  name: {name}\nspec:\n  memorySize: {memory}\n"
    )
}

/// Runs `redis-gitops validate` with extra arguments; returns "exit: N\n" and standard output.
fn validate(path: &Path, extra: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_redis-gitops"))
        .arg("validate")
        .arg(path)
        .args(extra)
        .output()
        .expect("the redis-gitops binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "validate panicked:\n{stderr}");
    format!(
        "exit: {}\n{}{stderr}",
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout)
    )
}

fn write(dir: &Path, name: &str, content: &str) {
    std::fs::write(dir.join(name), content).expect("write a file");
}

/// 40 files of about 0.97 MB: a REDB each, padded with comments (the 1.8 GB revision).
fn huge_revision(dir: &Path) {
    write(dir, "a-cluster.yaml", REC);
    let padding = format!("# {}\n", "x".repeat(1000)).repeat(1000);
    for index in 0..40 {
        write(
            dir,
            &format!("db-{index:02}.yaml"),
            &format!("{}{padding}", database(&format!("db-{index:02}"), "100MB")),
        );
    }
}

/// 40 small files whose aliases expand to about 111 000 nodes each (the 1.08 GB revision).
fn alias_revision(dir: &Path) {
    let bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n\
                b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n\
                c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n\
                d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n\
                e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n";
    for index in 0..40 {
        write(dir, &format!("alias-{index:02}.yaml"), bomb);
    }
}

/// 100 000 REDBs in 200 files of 500 documents (the 583 MB revision), and their cluster.
fn many_objects_revision(dir: &Path) {
    write(dir, "a-cluster.yaml", REC);
    for file in 0..200 {
        let documents: Vec<String> = (0..500)
            .map(|index| database(&format!("db-{file:03}-{index:03}"), "100MB"))
            .collect();
        write(dir, &format!("objects-{file:03}.yaml"), &documents.join("---\n"));
    }
}

#[test]
fn a_revision_over_the_byte_budget_is_refused_at_the_file_that_crosses_it() {
    let temp = tempfile::tempdir().expect("temp dir");
    huge_revision(temp.path());
    assert_eq!(
        validate(temp.path(), &[]),
        "exit: 1\n\
         db-16.yaml: the revision has more than 16777216 bytes of YAML in total (the agent's --max-revision-bytes); \
         the files from here on are not read; split the repository into several GitSync paths\n\
         invalid: 1 errors, 0 warnings; nothing would be applied\n"
    );
    // The budget is a flag: with 64Mi the same revision is valid.
    let accepted = validate(temp.path(), &["--max-revision-bytes", "64Mi"]);
    assert!(
        accepted.starts_with("exit: 0\n") && accepted.ends_with("1 clusters, 40 databases: valid, 0 warnings\n"),
        "{}",
        &accepted[accepted.len().saturating_sub(500)..]
    );
}

#[test]
fn alias_bombs_across_files_are_refused_by_the_node_budget() {
    let temp = tempfile::tempdir().expect("temp dir");
    alias_revision(temp.path());
    let no_kind = "this document has no apiVersion, so it is not a Kubernetes object; add apiVersion: \
                   app.redislabs.com/v1alpha1 and kind: RedisEnterpriseDatabase (or RedisEnterpriseCluster with \
                   app.redislabs.com/v1)";
    let mut expected = String::from("exit: 1\n");
    // Eight files of 111 111 nodes fit; the ninth reaches the budget inside its parser, which stops there.
    for index in 0..8 {
        expected.push_str(&format!("alias-{index:02}.yaml:1:1: {no_kind}\n"));
    }
    expected.push_str(
        "alias-08.yaml:4:44: the revision expands to more than 1000000 YAML nodes in total (aliases count each time they \
         are used; the agent's --max-revision-nodes); the files from here on are not read; remove aliases or split \
         the repository\n\
         invalid: 9 errors, 0 warnings; nothing would be applied\n",
    );
    assert_eq!(validate(temp.path(), &[]), expected);
}

#[test]
fn a_revision_over_the_object_budget_is_refused_at_the_first_object_too_many() {
    let temp = tempfile::tempdir().expect("temp dir");
    many_objects_revision(temp.path());
    assert_eq!(
        validate(temp.path(), &[]),
        "exit: 1\n\
         objects-019.yaml:3494:1: the revision has more than 10000 objects (the agent's --max-revision-objects); the \
         objects from here on are not read; split the repository into several GitSync paths\n\
         invalid: 1 errors, 0 warnings; nothing would be applied\n"
    );
    let smaller = validate(temp.path(), &["--max-revision-objects", "500"]);
    assert_eq!(
        smaller,
        "exit: 1\n\
         objects-000.yaml:3494:1: the revision has more than 500 objects (the agent's --max-revision-objects); the \
         objects from here on are not read; split the repository into several GitSync paths\n\
         invalid: 1 errors, 0 warnings; nothing would be applied\n"
    );
}

#[test]
fn budget_flags_refuse_values_that_do_not_fit() {
    let temp = tempfile::tempdir().expect("temp dir");
    let cases = [
        (
            "--max-revision-bytes",
            "18446744073709551615Gi",
            "\"18446744073709551615Gi\" is not a size from 1 to 1Gi; write bytes or a number with Ki, Mi or Gi, for \
             example 16Mi",
        ),
        (
            "--max-revision-nodes",
            "2147483648000",
            "\"2147483648000\" is not a whole number from 1 to 100000000",
        ),
        (
            "--max-revision-objects",
            "0",
            "\"0\" is not a whole number from 1 to 1000000",
        ),
    ];
    for (flag, value, message) in cases {
        let output = validate(temp.path(), &[flag, value]);
        assert!(output.starts_with("exit: 2\n"), "{flag} {value}: {output}");
        assert!(output.contains(message), "{flag} {value}: {output}");
    }
}

#[test]
fn an_overflowing_lease_duration_is_a_command_line_error_not_a_crash() {
    for value in [
        "10000000000000000000s10000000000000000000s",
        "5100000000000000h99999999999999h",
        "25h",
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_redis-gitops"))
            .args(["agent", "--lease-duration", value])
            .output()
            .expect("the redis-gitops binary runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{value}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "\"{value}\" is not a duration from 1s to 24h; write for example 15s or 1m"
            )),
            "{value}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn unbounded_numbers_are_located_errors() {
    let temp = tempfile::tempdir().expect("temp dir");
    write(
        temp.path(),
        "rec.yaml",
        "apiVersion: app.redislabs.com/v1\nkind: RedisEnterpriseCluster\nmetadata:\n  name: prod\nspec:\n  nodes: \
         2147483647\n  redisEnterpriseNodeResources:\n    limits:\n      memory: \"1e400\"\n  persistentSpec:\n    \
         enabled: true\n    volumeSize: \"1e400\"\n",
    );
    write(
        temp.path(),
        "db.yaml",
        &format!(
            "{}  shardCount: 4294967296\n  databasePort: 99999999999\n",
            database("cache", "99999999999999999999TB")
        ),
    );
    assert_eq!(
        validate(temp.path(), &[]),
        "exit: 1\n\
         db.yaml:6:15: spec.memorySize: \"99999999999999999999TB\" is above the maximum of 64TB; use 64TB or less\n\
         db.yaml:7:15: spec.shardCount: 4294967296 is above the maximum of 512\n\
         db.yaml:8:17: spec.databasePort: 99999999999 is above the maximum of 65535\n\
         rec.yaml:6:10: spec.nodes: 2147483647 is above the maximum of 99\n\
         rec.yaml:9:15: spec.redisEnterpriseNodeResources.limits.memory: \"1e400\" is larger than the maximum of 64Ti \
         for memory; use a real node size such as 4Gi\n\
         rec.yaml:12:17: spec.persistentSpec.volumeSize: \"1e400\" is larger than the maximum of 1Pi per node; use a \
         real size such as 20Gi\n\
         invalid: 6 errors, 0 warnings; nothing would be applied\n"
    );
}

#[test]
fn a_900_kb_value_is_quoted_in_200_characters() {
    let temp = tempfile::tempdir().expect("temp dir");
    let huge = "y".repeat(900_000);
    write(temp.path(), "rec.yaml", REC);
    write(
        temp.path(),
        "db.yaml",
        &format!("{}  evictionPolicy: {huge}\n", database("cache", "100MB")),
    );
    let output = validate(temp.path(), &[]);
    assert_eq!(
        output,
        format!(
            "exit: 1\ndb.yaml:7:19: spec.evictionPolicy: \"{}…\" is not one of volatile-lru, volatile-ttl, \
             volatile-random, allkeys-lru, allkeys-random, noeviction, volatile-lfu, allkeys-lfu\n\
             invalid: 1 errors, 0 warnings; nothing would be applied\n",
            "y".repeat(200)
        )
    );
}

async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn condition(gitsync: &GitSync, type_: &str) -> Option<(String, String, String)> {
    let condition = gitsync
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)?
        .clone();
    Some((condition.status, condition.reason, condition.message))
}

fn gitsync(name: &str, namespace: &str, url: &str, interval: &str) -> GitSync {
    serde_json::from_value(json!({
        "apiVersion": "redisgitops.dev/v1alpha1", "kind": "GitSync",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"url": url, "ref": {"branch": "main"}, "interval": interval}
    }))
    .expect("gitsync")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_gitsync_is_stalled_while_another_tenant_keeps_syncing() {
    let temp = tempfile::tempdir().expect("temp dir");
    let sandbox = Sandbox::start(SandboxOptions::with_crds(redis_gitops::api::crds()))
        .await
        .expect("sandbox starts (needs redis-server)");
    let client = sandbox.apiserver.kube_client().expect("client");

    let good_root = temp.path().join("good");
    let hostile_root = temp.path().join("hostile");
    let good = Repo::new(&good_root);
    good.write("rec.yaml", REC);
    good.write("cache.yaml", &database("cache", "1GB"));
    good.commit("first");
    let hostile = Repo::new(&hostile_root);
    hostile.write("rec.yaml", REC);
    hostile.commit("first");

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let context = Arc::new(SyncContext::new(
        client.clone(),
        temp.path().join("cache"),
        Default::default(),
        None,
        Arc::new(Metrics::default()),
    ));
    let controller = tokio::spawn(run(context, async move {
        let _ = stopped.await;
    }));

    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    for name in ["team-a", "team-b"] {
        let namespace =
            serde_json::from_value(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}))
                .expect("namespace");
        namespaces
            .create(&PostParams::default(), &namespace)
            .await
            .expect("create a namespace");
    }

    // The value is longer than the CRD's maxLength: the API server refuses it before any controller sees it.
    let hostile_api: Api<GitSync> = Api::namespaced(client.clone(), "team-a");
    let refused = hostile_api
        .create(
            &PostParams::default(),
            &gitsync(
                "hostile",
                "team-a",
                &hostile.url(),
                "10000000000000000000s10000000000000000000s",
            ),
        )
        .await
        .expect_err("the API server refuses a 42-character interval");
    assert!(refused.to_string().contains("spec.interval"), "{refused}");

    // A 32-character value passes the CRD and overflows a Duration: the controller must stall that one GitSync.
    hostile_api
        .create(
            &PostParams::default(),
            &gitsync("hostile", "team-a", &hostile.url(), "5100000000000000h99999999999999h"),
        )
        .await
        .expect("create the hostile gitsync");
    let good_api: Api<GitSync> = Api::namespaced(client.clone(), "team-b");
    good_api
        .create(&PostParams::default(), &gitsync("config", "team-b", &good.url(), "1s"))
        .await
        .expect("create the good gitsync");

    let stalled = eventually("the hostile GitSync to be Stalled", || async {
        let current = hostile_api.get("hostile").await.ok()?;
        condition(&current, "Stalled").filter(|c| c.0 == "True")
    })
    .await;
    assert_eq!(
        stalled,
        (
            "True".to_string(),
            "InvalidSpec".to_string(),
            "spec.interval: \"5100000000000000h99999999999999h\" is too large to be a duration; write for example \
             30s, 5m or 1h30m"
                .to_string()
        )
    );

    // The other tenant keeps syncing: its next commit is applied after the hostile GitSync was handled.
    let databases: Api<RedisEnterpriseDatabase> = Api::namespaced(client.clone(), "team-b");
    eventually("the first commit of team-b", || async {
        databases.get_opt("cache").await.ok().flatten()
    })
    .await;
    good.write("cache.yaml", &database("cache", "2GB"));
    let second = good.commit("more memory");
    let revision = format!("main@sha1:{second}");
    eventually("the second commit of team-b", || async {
        let cache = databases.get_opt("cache").await.ok().flatten()?;
        (cache.spec.memory_size.as_deref() == Some("2GB")).then_some(())
    })
    .await;
    eventually("team-b's GitSync to report the second commit", || async {
        let current = good_api.get("config").await.ok()?;
        let applied = current.status.as_ref()?.last_applied_revision.clone()?;
        (applied == revision).then_some(())
    })
    .await;
    // Still stalled, still the same message, and the controller task is alive.
    let current = hostile_api.get("hostile").await.expect("hostile gitsync");
    assert_eq!(
        condition(&current, "Stalled").map(|c| c.1),
        Some("InvalidSpec".to_string())
    );
    assert!(!controller.is_finished(), "the controller stopped");

    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), controller).await;
}
