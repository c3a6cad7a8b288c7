//! Benchmark of the cluster and database controllers (issue 5): 1000 databases on 2 RECs in the sandbox.
//!
//! The agent runs as its own process (the release `redis-gitops agent`, with `--hosts-file` for the sandbox's
//! in-cluster names), so its CPU time and memory are its own. The benchmark:
//! 1. creates 2 RECs of 3 nodes and waits until both are Running;
//! 2. applies 1000 REDBs (500 per cluster) and measures the time until all are Ready, with the REST calls and API
//!    requests per database;
//! 3. restarts the agent: the new one reconciles all 1002 healthy objects once (a steady-state resync), which must
//!    write nothing; it reports the resync's CPU time and the agent's memory.
//!
//! Run: `cargo bench --bench controllers` (needs redis-server). `BENCH_DATABASES=N` changes the count.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{Api, Patch, PatchParams};
use redis_gitops::api::{RedisEnterpriseCluster, RedisEnterpriseDatabase};
use redis_gitops_sandbox::{Sandbox, SandboxOptions};
use serde_json::json;

const CLUSTERS: [&str; 2] = ["east", "west"];

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

/// The agent process and what it was started with.
struct Agent {
    child: Child,
    metrics: String,
}

impl Agent {
    fn start(dir: &Path, sandbox: &Sandbox, kubeconfig: &Path, hosts: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let metrics = format!("127.0.0.1:{port}");
        let child = Command::new(env!("CARGO_BIN_EXE_redis-gitops"))
            .args(["agent", "--lease-duration", "2s", "--metrics-address", &metrics])
            .arg("--cache-dir")
            .arg(dir.join("cache"))
            .arg("--enterprise-ca-file")
            .arg(sandbox.ca_path())
            .arg("--hosts-file")
            .arg(hosts)
            .env("KUBECONFIG", kubeconfig)
            .env("POD_NAMESPACE", "default")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the agent starts");
        Self { child, metrics }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// User + system CPU seconds so far.
    fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        // Fields after the command name (which is in parentheses): utime is the 14th field, stime the 15th.
        let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks: f64 = fields
            .get(11..13)
            .map(|f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum())
            .unwrap_or(0.0);
        // SAFETY: sysconf has no preconditions.
        let hertz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        ticks / hertz
    }

    /// (current RSS, peak RSS) in MiB.
    fn memory_mib(&self) -> (f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
                .unwrap_or(0.0)
                / 1024.0
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// Successful reconciles of `controller` so far, from /metrics.
    async fn reconciles(&self, controller: &str) -> u64 {
        let Ok(response) = reqwest::get(format!("http://{}/metrics", self.metrics)).await else {
            return 0;
        };
        let text = response.text().await.unwrap_or_default();
        text.lines()
            .filter(|l| l.starts_with("redis_gitops_controller_reconciles_total"))
            .filter(|l| l.contains(&format!("controller=\"{controller}\"")) && l.contains("result=\"success\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .map(|v| v as u64)
            .sum()
    }

    fn stop(mut self) {
        // SAFETY: kill has no memory preconditions; the pid is our child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

fn cluster_body(name: &str) -> serde_json::Value {
    json!({
        "apiVersion": "app.redislabs.com/v1", "kind": "RedisEnterpriseCluster",
        "metadata": {"name": name, "namespace": name},
        "spec": {"nodes": 3}
    })
}

fn database_body(cluster: &str, index: usize) -> serde_json::Value {
    json!({
        "apiVersion": "app.redislabs.com/v1alpha1", "kind": "RedisEnterpriseDatabase",
        "metadata": {"name": format!("db-{index:04}"), "namespace": cluster},
        "spec": {"redisEnterpriseCluster": {"name": cluster}, "memorySize": "100MB"}
    })
}

fn is_ready(status: Option<&Vec<redis_gitops::api::conditions::Condition>>) -> bool {
    status
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    start.elapsed()
}

async fn ready_databases(client: &kube::Client) -> usize {
    let api: Api<RedisEnterpriseDatabase> = Api::all(client.clone());
    api.list(&Default::default())
        .await
        .map(|list| {
            list.items
                .iter()
                .filter(|db| is_ready(db.status.as_ref().and_then(|s| s.conditions.as_ref())))
                .count()
        })
        .unwrap_or(0)
}

async fn run() {
    let total: usize = std::env::var("BENCH_DATABASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let dir = tempfile::tempdir().expect("temp dir");
    let sandbox = Sandbox::start(SandboxOptions {
        pod_ready_delay: Duration::from_millis(100),
        ..SandboxOptions::with_crds(redis_gitops::api::crds())
    })
    .await
    .expect("sandbox starts (needs redis-server)");
    let kubeconfig = dir.path().join("kubeconfig");
    sandbox.apiserver.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let hosts: PathBuf = dir.path().join("hosts");
    let _hosts_writer = sandbox.keep_hosts_file(hosts.clone(), redis_gitops::enterprise::hosts::render_hosts);
    let client = sandbox.apiserver.kube_client().expect("client");
    let params = PatchParams::apply("bench").force();
    for name in CLUSTERS {
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
        namespaces
            .patch(
                name,
                &params,
                &Patch::Apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})),
            )
            .await
            .expect("namespace");
    }

    let agent = Agent::start(dir.path(), &sandbox, &kubeconfig, &hosts);
    for name in CLUSTERS {
        let api: Api<RedisEnterpriseCluster> = Api::namespaced(client.clone(), name);
        api.patch(name, &params, &Patch::Apply(cluster_body(name)))
            .await
            .expect("apply REC");
    }
    let clusters_ready = wait_for("both clusters Running", Duration::from_secs(180), || {
        let client = client.clone();
        async move {
            let api: Api<RedisEnterpriseCluster> = Api::all(client);
            api.list(&Default::default()).await.is_ok_and(|list| {
                list.items.len() == CLUSTERS.len()
                    && list
                        .items
                        .iter()
                        .all(|rec| rec.status.as_ref().and_then(|s| s.state.as_deref()) == Some("Running"))
            })
        }
    })
    .await;
    println!("2 RECs of 3 nodes Running after {:.1} s", clusters_ready.as_secs_f64());

    // Cold sync of the databases.
    sandbox.emulator.requests().clear();
    sandbox.apiserver.reset_request_counts();
    let cpu_before = agent.cpu_seconds();
    let start = Instant::now();
    let bodies: Vec<(String, serde_json::Value)> = (0..total)
        .map(|i| {
            let cluster = CLUSTERS[i % CLUSTERS.len()];
            (cluster.to_string(), database_body(cluster, i))
        })
        .collect();
    futures::stream::iter(bodies)
        .for_each_concurrent(16, |(namespace, body)| {
            let api: Api<RedisEnterpriseDatabase> = Api::namespaced(client.clone(), &namespace);
            let params = params.clone();
            async move {
                let name = body["metadata"]["name"].as_str().unwrap_or_default().to_string();
                api.patch(&name, &params, &Patch::Apply(body))
                    .await
                    .expect("apply REDB");
            }
        })
        .await;
    let applied = start.elapsed();
    wait_for("every database Ready", Duration::from_secs(900), || {
        let client = client.clone();
        async move { ready_databases(&client).await == total }
    })
    .await;
    let cold = start.elapsed();
    let cold_cpu = agent.cpu_seconds() - cpu_before;
    let rest = sandbox.emulator.requests().all();
    let rest_writes = rest.iter().filter(|r| r.is_write()).count();
    let api = sandbox.apiserver.request_counts();
    // Requests the benchmark itself made: one apply per database and the Ready polls (lists).
    let bench_patches = total as u64;
    let agent_api = api.total() - bench_patches - api.get("list", "redisenterprisedatabases");
    let (rss, peak) = agent.memory_mib();
    let per = |n: f64| n / total as f64;
    println!(
        "cold sync of {total} databases: {:.1} s to all Ready ({:.1} s to apply the CRs); agent CPU {:.1} s",
        cold.as_secs_f64(),
        applied.as_secs_f64(),
        cold_cpu
    );
    println!(
        "  REST calls: {} ({:.2} per database), of which writes {} ({:.2} per database)",
        rest.len(),
        per(rest.len() as f64),
        rest_writes,
        per(rest_writes as f64)
    );
    println!(
        "  API requests by the agent: ~{agent_api} ({:.2} per database), writes {} ({:.2} per database); by verb {:?}",
        per(agent_api as f64),
        api.writes() - bench_patches,
        per((api.writes() - bench_patches) as f64),
        api.by_verb()
    );
    let mut writes_by_resource = std::collections::BTreeMap::new();
    for (kind, count) in &api.counts {
        if redis_gitops_sandbox::apiserver::requests::WRITE_VERBS.contains(&kind.verb.as_str()) {
            *writes_by_resource.entry(kind.resource.clone()).or_insert(0u64) += count;
        }
    }
    println!("  API writes by resource (including the benchmark's {bench_patches} applies): {writes_by_resource:?}");
    let mut rest_by_call = std::collections::BTreeMap::new();
    for request in &rest {
        let path: String = request
            .path
            .split('/')
            .map(|segment| {
                if segment.len() > 2 && segment.chars().any(|c| c.is_ascii_digit()) || segment.parse::<u64>().is_ok() {
                    "{uid}"
                } else {
                    segment
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        *rest_by_call.entry(format!("{} {path}", request.method)).or_insert(0u64) += 1;
    }
    println!("  REST calls by endpoint: {rest_by_call:?}");
    println!("  agent memory: RSS {rss:.1} MiB, peak {peak:.1} MiB");

    // Steady state: a new agent reconciles every healthy object once.
    agent.stop();
    sandbox.emulator.requests().clear();
    sandbox.apiserver.reset_request_counts();
    let agent = Agent::start(dir.path(), &sandbox, &kubeconfig, &hosts);
    let resync = wait_for("a full resync", Duration::from_secs(600), || {
        let agent = &agent;
        async move { agent.reconciles("database").await >= total as u64 && agent.reconciles("cluster").await >= 2 }
    })
    .await;
    let resync_cpu = agent.cpu_seconds();
    let rest = sandbox.emulator.requests().all();
    let rest_writes: Vec<String> = rest
        .iter()
        .filter(|r| r.is_write())
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    let api = sandbox.apiserver.request_counts();
    let lease_writes = api.writes_to("leases");
    let api_writes = api.writes() - lease_writes;
    let (rss, peak) = agent.memory_mib();
    println!(
        "steady-state resync of {total} databases + 2 clusters (agent restart): {:.1} s, agent CPU {resync_cpu:.2} s \
         (including start-up), REST calls {} (writes {}), API writes {api_writes} (plus {lease_writes} to the leader Lease)",
        resync.as_secs_f64(),
        rest.len(),
        rest_writes.len()
    );
    println!("  agent memory after the resync: RSS {rss:.1} MiB, peak {peak:.1} MiB");
    if !rest_writes.is_empty() || api_writes > 0 {
        println!(
            "  UNEXPECTED writes: REST {rest_writes:?}; API by verb {:?}",
            api.counts
        );
    }
    agent.stop();
}
