//! The GitSync controller against the sandbox API server with 2 RECs and 1000 REDBs in a Git repository
//! (`file://`, one file per object): the cold sync (GitSync created → Ready with the revision applied) with its API
//! requests per object, then one REDB file changed (which objects get written), then no-op polls (no writes).
//!
//! Requests are counted by the sandbox API server itself (`ApiServerHandle::request_counts`). The benchmark reads
//! and writes through the in-process object handle, so its own checks are not counted.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis_gitops::sync::controller::{SyncContext, run};
use redis_gitops::telemetry::{Metrics, ResultLabels};
use redis_gitops_sandbox::apiserver::{ApiServer, ApiServerOptions, RequestCounts};
use serde_json::{Value, json};

const DATABASES: usize = 1000;
const CLUSTERS: usize = 2;
const INTERVAL_SECONDS: u64 = 2;
const NOOP_POLLS: u64 = 5;

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.invalid")
        .env("GIT_COMMITTER_NAME", "Bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.invalid")
        .stderr(Stdio::inherit())
        .output()
        .expect("git is installed (apt-get install git)");
    assert!(output.status.success(), "git {args:?} failed");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn database(index: usize, memory: &str) -> String {
    format!(
        "apiVersion: app.redislabs.com/v1alpha1\nkind: RedisEnterpriseDatabase\nmetadata:\n  name: db-{index:04}\nspec:\n  \
         redisEnterpriseCluster:\n    name: rec-{}\n  memorySize: {memory}\n  evictionPolicy: allkeys-lru\n  \
         replication: true\n",
        index % CLUSTERS
    )
}

fn write(dir: &Path, path: &str, content: &str) {
    let file = dir.join(path);
    std::fs::create_dir_all(file.parent().expect("a parent directory")).expect("create directories");
    std::fs::write(file, content).expect("write a file");
}

/// The GitSync's `lastAppliedRevision` and Ready status, read in process (not counted).
fn gitsync_state(objects: &redis_gitops_sandbox::apiserver::Objects) -> (Option<String>, Option<String>) {
    let Ok(gitsync) = objects.get("redisgitops.dev/v1alpha1", "GitSync", Some("default"), "config") else {
        return (None, None);
    };
    let applied = gitsync
        .pointer("/status/lastAppliedRevision")
        .and_then(Value::as_str)
        .map(str::to_string);
    let ready = gitsync
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .and_then(|c| c["status"].as_str())
        .map(str::to_string);
    (applied, ready)
}

async fn wait_applied(objects: &redis_gitops_sandbox::apiserver::Objects, revision: &str, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let (applied, ready) = gitsync_state(objects);
        if applied.as_deref() == Some(revision) && ready.as_deref() == Some("True") {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "the GitSync did not apply {revision} within {limit:?} (it has {applied:?}, Ready={ready:?})"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn print_counts(title: &str, counts: &RequestCounts, per: Option<usize>) {
    println!("{title}: {} requests", counts.total());
    let mut rows: BTreeMap<(String, String), u64> = BTreeMap::new();
    for (kind, count) in &counts.counts {
        rows.insert((kind.resource.clone(), kind.verb.clone()), *count);
    }
    for ((resource, verb), count) in rows {
        let resource = if resource.is_empty() {
            "(discovery)"
        } else {
            resource.as_str()
        };
        match per {
            Some(objects) => println!(
                "  {verb:>9} {resource:<40} {count:>6}  ({:.3} per object)",
                count as f64 / objects as f64
            ),
            None => println!("  {verb:>9} {resource:<40} {count:>6}"),
        }
    }
}

fn syncs(metrics: &Metrics) -> u64 {
    metrics.syncs.get_or_create(&ResultLabels { result: "success" }).get()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let temp = tempfile::tempdir().expect("temp dir");
    let work = temp.path().join("config");
    std::fs::create_dir_all(&work).expect("work tree");
    git(&work, &["init", "-q", "-b", "main"]);
    for cluster in 0..CLUSTERS {
        write(
            &work,
            &format!("clusters/rec-{cluster}.yaml"),
            &format!(
                "apiVersion: app.redislabs.com/v1\nkind: RedisEnterpriseCluster\nmetadata:\n  name: rec-{cluster}\nspec:\n  nodes: 3\n"
            ),
        );
    }
    for index in 0..DATABASES {
        write(&work, &format!("databases/db-{index:04}.yaml"), &database(index, "1GB"));
    }
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "1000 databases"]);
    let first = git(&work, &["rev-parse", "HEAD"]);

    let server = ApiServer::start(ApiServerOptions {
        crds: redis_gitops::api::crds(),
        ..ApiServerOptions::default()
    })
    .await
    .expect("the sandbox API server starts");
    let client = server.kube_client().expect("a client");
    let objects = server.objects().clone();
    let metrics = Arc::new(Metrics::default());
    let context = Arc::new(SyncContext::new(
        client,
        temp.path().join("cache"),
        Default::default(),
        None,
        metrics.clone(),
    ));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(run(context, async move {
        let _ = stopped.await;
    }));
    // Let the controller start its watch before the clock starts.
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.reset_request_counts();

    // Cold sync.
    let started = Instant::now();
    objects
        .create(
            "redisgitops.dev/v1alpha1",
            "GitSync",
            json!({"apiVersion": "redisgitops.dev/v1alpha1", "kind": "GitSync",
                "metadata": {"name": "config", "namespace": "default"},
                "spec": {"url": format!("file://{}", work.display()), "ref": {"branch": "main"},
                         "interval": format!("{INTERVAL_SECONDS}s")}}),
        )
        .expect("create the GitSync");
    let revision = format!("main@sha1:{first}");
    wait_applied(&objects, &revision, Duration::from_secs(600)).await;
    let cold = started.elapsed();
    // Trailing requests of the same sync (events) land within a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cold_counts = server.request_counts();
    let total_objects = DATABASES + CLUSTERS;
    println!(
        "cold sync of {DATABASES} databases + {CLUSTERS} clusters: {:.2} s",
        cold.as_secs_f64()
    );
    print_counts("cold sync", &cold_counts, Some(total_objects));
    println!(
        "  total {:.2} requests per object, {:.2} writes per object\n",
        cold_counts.total() as f64 / total_objects as f64,
        cold_counts.writes() as f64 / total_objects as f64
    );

    // No-op polls: the repository does not move.
    tokio::time::sleep(Duration::from_millis(INTERVAL_SECONDS * 1000)).await;
    server.reset_request_counts();
    let before = syncs(&metrics);
    let noop_started = Instant::now();
    tokio::time::sleep(Duration::from_millis(NOOP_POLLS * INTERVAL_SECONDS * 1000)).await;
    let noop_counts = server.request_counts();
    let polls = syncs(&metrics) - before;
    println!(
        "no-op polls: {polls} syncs in {:.1} s",
        noop_started.elapsed().as_secs_f64()
    );
    print_counts("no-op polls", &noop_counts, None);
    println!(
        "  {:.1} requests per poll, {} writes in all\n",
        noop_counts.total() as f64 / polls.max(1) as f64,
        noop_counts.writes()
    );

    // One database changed among 1000.
    write(&work, "databases/db-0500.yaml", &database(500, "2GB"));
    git(&work, &["commit", "-q", "-am", "db-0500: 2GB"]);
    let second = git(&work, &["rev-parse", "HEAD"]);
    server.reset_request_counts();
    let revision = format!("main@sha1:{second}");
    let waited = wait_applied(&objects, &revision, Duration::from_secs(120)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let change_counts = server.request_counts();
    println!(
        "one changed database: applied {:.2} s after the commit (poll interval {INTERVAL_SECONDS} s)",
        waited.as_secs_f64()
    );
    print_counts("one changed database", &change_counts, None);
    let written_databases: Vec<String> = objects
        .list(
            "app.redislabs.com/v1alpha1",
            "RedisEnterpriseDatabase",
            Some("default"),
            "",
        )
        .expect("list databases")
        .iter()
        .filter(|db| {
            db.pointer("/metadata/annotations/redisgitops.dev~1revision")
                .and_then(Value::as_str)
                == Some(revision.as_str())
        })
        .filter_map(|db| db.pointer("/metadata/name").and_then(Value::as_str).map(str::to_string))
        .collect();
    println!(
        "  objects carrying the new revision: {written_databases:?}; REDB spec writes {}, REDB status writes {}, \
         GitSync status writes {}, event writes {}",
        change_counts.writes_to("redisenterprisedatabases"),
        change_counts.writes_to("redisenterprisedatabases/status"),
        change_counts.writes_to("gitsyncs/status"),
        change_counts.writes_to("events"),
    );
    let _ = stop.send(());
    let _ = controller.await;
}
