//! Push → applied through the webhook path: a repository of 2 RECs and 1000 REDBs served over smart HTTP by the
//! sandbox's forge emulator (`git http-backend`), the real GitSync controller against the sandbox API server, and
//! the real webhook receiver. Each of 20 rounds changes one database, commits, runs `git push` to the emulator
//! (which delivers a signed GitHub push webhook to the receiver when the ref moves) and waits until the GitSync's
//! `lastAppliedRevision` is the new commit. Prints p50, p95 and max of push → applied, and the API writes per push.
//!
//! The GitSync polls once an hour, so every sync measured is the webhook's. Rounds are spaced by the receiver's
//! per-GitSync rate limit (one trigger a second), as consecutive pushes of people are.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis_gitops::sync::controller::{SyncContext, run};
use redis_gitops::telemetry::Metrics;
use redis_gitops::webhook::{MIN_TRIGGER_INTERVAL, WebhookReceiver, serve};
use redis_gitops_sandbox::apiserver::{ApiServer, ApiServerOptions, Objects};
use redis_gitops_sandbox::forge::git::GitHttp;
use redis_gitops_sandbox::forge::hooks::{HookFormat, Hooks, Subscription};
use serde_json::{Value, json};

const DATABASES: usize = 1000;
const CLUSTERS: usize = 2;
const PUSHES: usize = 20;
const SECRET: &str = "bench webhook secret";

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

fn gitsync(objects: &Objects) -> Option<Value> {
    objects
        .get("redisgitops.dev/v1alpha1", "GitSync", Some("default"), "config")
        .ok()
}

fn applied(objects: &Objects) -> Option<String> {
    gitsync(objects)?
        .pointer("/status/lastAppliedRevision")
        .and_then(Value::as_str)
        .map(str::to_string)
}

async fn wait_applied(objects: &Objects, revision: &str, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        if applied(objects).as_deref() == Some(revision) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "the GitSync did not apply {revision} within {limit:?} (it has {:?})",
            applied(objects)
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let index = ((sorted.len() as f64 * fraction).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let temp = tempfile::tempdir().expect("temp dir");
    let work = temp.path().join("work");
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
    let served = temp.path().join("served");
    std::fs::create_dir_all(&served).expect("served dir");
    let bare = served.join("config.git");
    git(
        temp.path(),
        &[
            "clone",
            "-q",
            "--bare",
            &work.display().to_string(),
            &bare.display().to_string(),
        ],
    );

    // The forge emulator: smart HTTP and push webhooks.
    let hooks = Hooks::new();
    let forge = GitHttp::new(served.clone(), Some(hooks.clone())).expect("git http-backend");
    let forge_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the forge");
    let remote = format!("http://{}/config.git", forge_listener.local_addr().expect("address"));
    let router = forge.router();
    tokio::spawn(async move {
        let _ = axum::serve(forge_listener, router).await;
    });
    git(&work, &["remote", "add", "forge", &remote]);

    // The API server, the GitSync controller and the webhook receiver.
    let server = ApiServer::start(ApiServerOptions {
        crds: redis_gitops::api::crds(),
        ..ApiServerOptions::default()
    })
    .await
    .expect("the sandbox API server starts");
    let client = server.kube_client().expect("a client");
    let objects = server.objects().clone();
    let metrics = Arc::new(Metrics::default());
    let context = SyncContext::new(
        client.clone(),
        temp.path().join("cache"),
        Default::default(),
        None,
        metrics.clone(),
    );
    let triggers = context.triggers.clone();
    tokio::spawn(run(Arc::new(context), std::future::pending()));
    let receiver = WebhookReceiver::new(client, triggers, metrics.clone());
    let hook_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the receiver");
    let hook_base = format!("http://{}", hook_listener.local_addr().expect("address"));
    tokio::spawn(async move {
        let _ = serve(hook_listener, receiver, std::future::pending()).await;
    });

    objects
        .create(
            "v1",
            "Secret",
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "hook", "namespace": "default"},
                   "stringData": {"token": SECRET}}),
        )
        .expect("create the webhook Secret");
    objects
        .create(
            "redisgitops.dev/v1alpha1",
            "GitSync",
            json!({"apiVersion": "redisgitops.dev/v1alpha1", "kind": "GitSync",
                "metadata": {"name": "config", "namespace": "default"},
                "spec": {"url": remote, "ref": {"branch": "main"}, "interval": "1h",
                         "webhook": {"secretRef": {"name": "hook"}}}}),
        )
        .expect("create the GitSync");
    let started = Instant::now();
    wait_applied(&objects, &format!("main@sha1:{first}"), Duration::from_secs(600)).await;
    println!(
        "cold sync of {DATABASES} databases + {CLUSTERS} clusters over smart HTTP: {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let path = gitsync(&objects)
        .and_then(|g| {
            g.pointer("/status/webhookPath")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .expect("status.webhookPath");
    hooks
        .subscribe(
            &bare,
            Subscription {
                url: format!("{hook_base}{path}"),
                secret: SECRET.as_bytes().to_vec(),
                format: HookFormat::GitHub,
            },
        )
        .await
        .expect("subscribe the receiver");
    tokio::time::sleep(MIN_TRIGGER_INTERVAL).await;

    let mut latencies = Vec::new();
    let mut pushes = Vec::new();
    let mut writes = Vec::new();
    for round in 0..PUSHES {
        let index = (round * 37 + 11) % DATABASES;
        write(
            &work,
            &format!("databases/db-{index:04}.yaml"),
            &database(index, &format!("{}GB", 2 + round)),
        );
        git(
            &work,
            &["commit", "-q", "-am", &format!("db-{index:04}: {}GB", 2 + round)],
        );
        let commit = git(&work, &["rev-parse", "HEAD"]);
        server.reset_request_counts();
        let started = Instant::now();
        let pushing = {
            let work = work.clone();
            tokio::task::spawn_blocking(move || {
                let started = Instant::now();
                git(&work, &["push", "-q", "forge", "main"]);
                started.elapsed()
            })
        };
        wait_applied(&objects, &format!("main@sha1:{commit}"), Duration::from_secs(60)).await;
        let latency = started.elapsed();
        let push = pushing.await.expect("git push");
        // Trailing writes of the same sync (the event) land within a moment.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let counts = server.request_counts();
        println!(
            "push {round:>2} db-{index:04}: push → applied {:>4} ms (git push itself {:>4} ms); writes: REDB {} + REDB \
             status {}, GitSync status {}, events {}; {} requests",
            latency.as_millis(),
            push.as_millis(),
            counts.writes_to("redisenterprisedatabases"),
            counts.writes_to("redisenterprisedatabases/status"),
            counts.writes_to("gitsyncs/status"),
            counts.writes_to("events"),
            counts.total()
        );
        latencies.push(latency);
        pushes.push(push);
        writes.push(counts.writes());
        // The receiver triggers a GitSync at most once a second; pushes of people are that far apart.
        tokio::time::sleep(MIN_TRIGGER_INTERVAL).await;
    }
    let mut sorted = latencies.clone();
    sorted.sort();
    pushes.sort();
    let deliveries = hooks.deliveries();
    let accepted = deliveries.iter().filter(|d| d.status == Ok(202)).count();
    println!();
    println!(
        "push → applied over {PUSHES} pushes, {DATABASES} databases: p50 {} ms, p95 {} ms, max {} ms (git push alone: \
         p50 {} ms)",
        percentile(&sorted, 0.5).as_millis(),
        percentile(&sorted, 0.95).as_millis(),
        sorted.last().map_or(0, Duration::as_millis),
        percentile(&pushes, 0.5).as_millis(),
    );
    println!(
        "writes per push: {:.1} (min {}, max {}); webhook deliveries {} ({} accepted with 202)",
        writes.iter().sum::<u64>() as f64 / writes.len() as f64,
        writes.iter().min().copied().unwrap_or(0),
        writes.iter().max().copied().unwrap_or(0),
        deliveries.len(),
        accepted
    );
    let text = metrics.encode();
    for line in text.lines().filter(|line| {
        line.starts_with("redis_gitops_webhook_to_applied_seconds_sum")
            || line.starts_with("redis_gitops_webhook_to_applied_seconds_count")
            || line.starts_with("redis_gitops_webhook_deliveries_total")
    }) {
        println!("  {line}");
    }
}
