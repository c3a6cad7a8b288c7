//! `redis-gitops agent` as a process: it finds the API server through its kubeconfig, waits for the CRDs, serves
//! /healthz, /readyz and /metrics, syncs a GitSync, and stops cleanly on SIGTERM.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kube::api::{Api, PostParams};
use redis_gitops::api::{GitSync, RedisEnterpriseDatabase};
use redis_gitops_sandbox::{Sandbox, SandboxOptions};

mod support;
use support::Repo;

fn get(address: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(address).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    Some((status, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_serves_health_and_metrics_syncs_and_stops_on_sigterm() {
    let temp = tempfile::tempdir().expect("temp dir");
    let sandbox = Sandbox::start(SandboxOptions::with_crds(redis_gitops::api::crds()))
        .await
        .expect("sandbox starts (needs redis-server)");
    let kubeconfig = temp.path().join("kubeconfig");
    sandbox.apiserver.write_kubeconfig(&kubeconfig).expect("kubeconfig");

    let repo = Repo::new(temp.path());
    repo.write(
        "cache.yaml",
        "apiVersion: app.redislabs.com/v1alpha1\nkind: RedisEnterpriseDatabase\nmetadata:\n  name: cache\nspec:\n  memorySize: 1GB\n",
    );
    repo.commit("init");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("address")
        .port();
    let address = format!("127.0.0.1:{port}");
    let agent = Command::new(env!("CARGO_BIN_EXE_redis-gitops"))
        .args([
            "agent",
            "--allow-file-urls",
            "--webhook-address",
            "127.0.0.1:0",
            "--metrics-address",
            &address,
            "--cache-dir",
        ])
        .arg(temp.path().join("cache"))
        .env("KUBECONFIG", &kubeconfig)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the agent starts");

    let deadline = Instant::now() + Duration::from_secs(30);
    while get(&address, "/readyz").map(|(status, _)| status) != Some(200) {
        assert!(Instant::now() < deadline, "the agent did not become ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(get(&address, "/healthz"), Some((200, "ok".to_string())));

    let client = sandbox.apiserver.kube_client().expect("client");
    let gitsyncs: Api<GitSync> = Api::namespaced(client.clone(), "default");
    let gitsync: GitSync = serde_json::from_value(serde_json::json!({
        "apiVersion": "redisgitops.dev/v1alpha1", "kind": "GitSync",
        "metadata": {"name": "config", "namespace": "default"},
        "spec": {"url": repo.url(), "interval": "2s"}
    }))
    .expect("gitsync");
    gitsyncs.create(&PostParams::default(), &gitsync).await.expect("create");
    let databases: Api<RedisEnterpriseDatabase> = Api::namespaced(client, "default");
    while databases.get_opt("cache").await.expect("get").is_none() {
        assert!(Instant::now() < deadline, "the agent did not apply the database");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, metrics) = get(&address, "/metrics").expect("metrics answer");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("redis_gitops_gitsync_syncs_total{result=\"success\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("redis_gitops_gitsync_last_applied_timestamp_seconds{namespace=\"default\",name=\"config\"}"),
        "{metrics}"
    );

    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) }, 0);
    let output = agent.wait_with_output().expect("exits");
    let logs = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{logs}");
    assert!(logs.contains("agent stopped"), "{logs}");
}

/// Starts an agent process whose logs are collected as it runs.
fn start_agent(
    kubeconfig: &std::path::Path,
    cache: &std::path::Path,
    pod: &str,
) -> (std::process::Child, std::sync::Arc<std::sync::Mutex<String>>) {
    start_agent_with(kubeconfig, cache, pod, &[])
}

/// [`start_agent`] with more arguments.
fn start_agent_with(
    kubeconfig: &std::path::Path,
    cache: &std::path::Path,
    pod: &str,
    extra: &[&str],
) -> (std::process::Child, std::sync::Arc<std::sync::Mutex<String>>) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("address")
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_redis-gitops"))
        .args([
            "agent",
            "--allow-file-urls",
            "--lease-duration",
            "2s",
            "--webhook-address",
            "127.0.0.1:0",
            "--metrics-address",
            &format!("127.0.0.1:{port}"),
            "--cache-dir",
        ])
        .arg(cache)
        .args(extra)
        .env("KUBECONFIG", kubeconfig)
        .env("POD_NAME", pod)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the agent starts");
    let logs = support::collect_stderr(&mut child);
    (child, logs)
}

async fn wait_for_log(logs: &std::sync::Arc<std::sync::Mutex<String>>, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !logs.lock().map(|l| l.contains(text)).unwrap_or(false) {
        assert!(
            Instant::now() < deadline,
            "no log line with {text:?}:\n{}",
            logs.lock().map(|l| l.clone()).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_replica_waits_for_the_lease_and_takes_over_when_the_leader_dies() {
    let temp = tempfile::tempdir().expect("temp dir");
    let sandbox = Sandbox::start(SandboxOptions::with_crds(redis_gitops::api::crds()))
        .await
        .expect("sandbox starts (needs redis-server)");
    let kubeconfig = temp.path().join("kubeconfig");
    sandbox.apiserver.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let repo = Repo::new(temp.path());
    let database = |memory: &str| {
        format!(
            "apiVersion: app.redislabs.com/v1alpha1\nkind: RedisEnterpriseDatabase\nmetadata:\n  name: cache\nspec:\n  memorySize: {memory}\n"
        )
    };
    repo.write("cache.yaml", &database("1GB"));
    repo.commit("first");

    let (mut leader, leader_logs) = start_agent(&kubeconfig, &temp.path().join("cache-a"), "agent-a");
    wait_for_log(&leader_logs, "leading: this replica holds the lease").await;
    let (mut standby, standby_logs) = start_agent(&kubeconfig, &temp.path().join("cache-b"), "agent-b");
    wait_for_log(&standby_logs, "waiting: another replica holds the lease").await;

    let client = sandbox.apiserver.kube_client().expect("client");
    let gitsyncs: Api<GitSync> = Api::namespaced(client.clone(), "default");
    let gitsync: GitSync = serde_json::from_value(serde_json::json!({
        "apiVersion": "redisgitops.dev/v1alpha1", "kind": "GitSync",
        "metadata": {"name": "config", "namespace": "default"},
        "spec": {"url": repo.url(), "interval": "1s"}
    }))
    .expect("gitsync");
    gitsyncs.create(&PostParams::default(), &gitsync).await.expect("create");
    let databases: Api<RedisEnterpriseDatabase> = Api::namespaced(client, "default");
    let deadline = Instant::now() + Duration::from_secs(30);
    while databases.get_opt("cache").await.expect("get").is_none() {
        assert!(Instant::now() < deadline, "the leader did not apply the database");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        !standby_logs.lock().expect("logs").contains("leading"),
        "the standby must not lead while the leader runs"
    );

    // The leader dies without releasing the lease; the standby takes over once it expires and syncs.
    leader.kill().expect("kill the leader");
    let _ = leader.wait();
    wait_for_log(&standby_logs, "leading: this replica holds the lease").await;
    repo.write("cache.yaml", &database("2GB"));
    repo.commit("second");
    let deadline = Instant::now() + Duration::from_secs(30);
    while databases.get("cache").await.expect("get").spec.memory_size.as_deref() != Some("2GB") {
        assert!(Instant::now() < deadline, "the new leader did not sync");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(standby.id() as i32, libc::SIGTERM) }, 0);
    assert!(standby.wait().expect("exits").success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_watch_namespace_the_agent_manages_only_the_namespaces_it_lists() {
    use k8s_openapi::api::core::v1::Namespace;
    use kube::ResourceExt;
    let temp = tempfile::tempdir().expect("temp dir");
    let sandbox = Sandbox::start(SandboxOptions::with_crds(redis_gitops::api::crds()))
        .await
        .expect("sandbox starts (needs redis-server)");
    let kubeconfig = temp.path().join("kubeconfig");
    sandbox.apiserver.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let client = sandbox.apiserver.kube_client().expect("client");
    for name in ["team-a", "team-b"] {
        let namespace: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).expect("namespace");
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .expect("create the namespace");
    }
    let repo = Repo::new(temp.path());
    repo.write(
        "cache.yaml",
        "apiVersion: app.redislabs.com/v1alpha1\nkind: RedisEnterpriseDatabase\nmetadata:\n  name: cache\nspec:\n  memorySize: 1GB\n",
    );
    repo.commit("init");
    let (mut agent, logs) = start_agent_with(
        &kubeconfig,
        &temp.path().join("cache"),
        "agent-a",
        &["--watch-namespace", "team-a"],
    );
    wait_for_log(&logs, "leading: this replica holds the lease").await;
    wait_for_log(&logs, "database controller started").await;
    assert!(
        logs.lock().expect("logs").contains("team-a"),
        "the watched namespace is logged"
    );
    for namespace in ["team-a", "team-b"] {
        let gitsync: GitSync = serde_json::from_value(serde_json::json!({
            "apiVersion": "redisgitops.dev/v1alpha1", "kind": "GitSync",
            "metadata": {"name": "config", "namespace": namespace},
            "spec": {"url": repo.url(), "interval": "1s"}
        }))
        .expect("gitsync");
        Api::<GitSync>::namespaced(client.clone(), namespace)
            .create(&PostParams::default(), &gitsync)
            .await
            .expect("create");
    }
    // team-a: the GitSync applies the REDB and the database controller takes it (its finalizer).
    let databases: Api<RedisEnterpriseDatabase> = Api::namespaced(client.clone(), "team-a");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let finalized = databases
            .get_opt("cache")
            .await
            .expect("get")
            .is_some_and(|redb| !redb.finalizers().is_empty());
        if finalized {
            break;
        }
        assert!(Instant::now() < deadline, "the agent did not manage team-a");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // team-b: nothing was read or written there, not even the GitSync's status.
    let other = Api::<GitSync>::namespaced(client.clone(), "team-b")
        .get("config")
        .await
        .expect("get");
    assert!(other.status.is_none(), "the agent wrote to team-b: {:?}", other.status);
    assert!(
        Api::<RedisEnterpriseDatabase>::namespaced(client, "team-b")
            .get_opt("cache")
            .await
            .expect("get")
            .is_none()
    );
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) }, 0);
    assert!(agent.wait().expect("exits").success());
}
