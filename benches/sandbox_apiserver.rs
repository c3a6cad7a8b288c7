//! Benchmark of the sandbox API server through `kube::Client`: create 1000 custom resources, list them,
//! and watch 1000 updates; prints objects/s and the process RSS (server and client share the process).

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::{CustomResource, CustomResourceExt};
use redis_gitops_sandbox::apiserver::{ApiServer, ApiServerOptions, PatchKind, Subresource};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// A database-like custom resource with a validated spec.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "bench.sandbox.io",
    version = "v1",
    kind = "Item",
    namespaced,
    status = "ItemStatus"
)]
struct ItemSpec {
    /// Memory in bytes.
    #[schemars(range(min = 1))]
    memory: i64,
    /// Eviction policy.
    policy: String,
    /// Replication on or off.
    replication: bool,
}

/// Status of an item.
#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema)]
struct ItemStatus {
    /// Phase.
    phase: Option<String>,
}

const COUNT: usize = 1000;
const CONCURRENCY: usize = 16;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let options = ApiServerOptions {
        crds: vec![Item::crd()],
        ..ApiServerOptions::default()
    };
    let server = ApiServer::start(options).await?;
    let client = server.kube_client()?;
    let api: Api<Item> = Api::namespaced(client, "default");
    let rss_before = rss_kib();

    let started = Instant::now();
    futures::stream::iter(0..COUNT)
        .map(|i| {
            let api = api.clone();
            async move {
                let item = Item::new(
                    &format!("item-{i:04}"),
                    ItemSpec {
                        memory: 1 << 20,
                        policy: "volatile-lru".into(),
                        replication: i % 2 == 0,
                    },
                );
                api.create(&PostParams::default(), &item).await
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    let create_elapsed = started.elapsed();

    let started = Instant::now();
    let list = api.list(&ListParams::default()).await?;
    let list_elapsed = started.elapsed();
    assert_eq!(list.items.len(), COUNT, "the list returns every created object");
    let rv = list.metadata.resource_version.clone().unwrap_or_default();

    let watch = api.watch(&WatchParams::default().timeout(120), &rv).await?;
    let watcher = tokio::spawn(async move {
        let mut stream = watch.boxed();
        let mut seen = 0usize;
        while let Ok(Some(event)) = stream.try_next().await {
            if matches!(event, WatchEvent::Modified(_)) {
                seen += 1;
                if seen == COUNT {
                    break;
                }
            }
        }
        seen
    });
    let started = Instant::now();
    futures::stream::iter(0..COUNT)
        .map(|i| {
            let api = api.clone();
            async move {
                api.patch(
                    &format!("item-{i:04}"),
                    &PatchParams::apply("bench").force(),
                    &Patch::Apply(json!({"apiVersion": "bench.sandbox.io/v1", "kind": "Item",
                        "spec": {"memory": 2 << 20, "policy": "allkeys-lru", "replication": true}})),
                )
                .await
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    let update_elapsed = started.elapsed();
    let seen = tokio::time::timeout(Duration::from_secs(120), watcher).await??;
    let watch_elapsed = started.elapsed();
    let rss_after = rss_kib();

    // The store alone (no HTTP, no client): the same server-side apply through the in-process handle.
    let objects = server.objects().clone();
    let started = Instant::now();
    for i in 0..COUNT {
        objects.patch(
            "bench.sandbox.io/v1",
            "Item",
            Some("default"),
            &format!("item-{i:04}"),
            PatchKind::Apply,
            json!({"apiVersion": "bench.sandbox.io/v1", "kind": "Item",
                "spec": {"memory": 3 << 20, "policy": "noeviction", "replication": false}}),
            Subresource::Main,
            "bench",
        )?;
    }
    let in_process_elapsed = started.elapsed();

    println!(
        "sandbox API server benchmark ({COUNT} custom resources, {CONCURRENCY} concurrent requests, kube::Client)"
    );
    println!(
        "create:  {:>8.0} objects/s ({create_elapsed:.2?})",
        rate(COUNT, create_elapsed)
    );
    println!(
        "list:    {:>8.0} objects/s ({list_elapsed:.2?} for one list of {COUNT})",
        rate(COUNT, list_elapsed)
    );
    println!(
        "apply:   {:>8.0} objects/s ({update_elapsed:.2?}, server-side apply updates)",
        rate(COUNT, update_elapsed)
    );
    println!(
        "watch:   {:>8.0} events/s ({seen} MODIFIED events received in {watch_elapsed:.2?})",
        rate(seen, watch_elapsed)
    );
    println!(
        "store:   {:>8.0} objects/s ({in_process_elapsed:.2?}, the same applies in process, no HTTP)",
        rate(COUNT, in_process_elapsed)
    );
    println!(
        "rss:     {} KiB before, {} KiB after (server and client in one process)",
        rss_before, rss_after
    );
    assert_eq!(seen, COUNT, "the watch sees every update");
    Ok(())
}
