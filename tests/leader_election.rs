//! Split brain: two `redis-gitops agent` processes against the sandbox with a short lease. The leader is frozen
//! (SIGSTOP) past its lease, the standby takes over and applies a new commit, the old leader is resumed
//! (SIGCONT): it must send no write to the API server after resuming, and stop.
//!
//! The old leader reaches the API server through a loopback proxy of this test that records the request line of
//! every request it forwards, with the moment it arrived, so "no write after resuming" is observed on the wire.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, PostParams};
use redis_gitops::api::{GitSync, RedisEnterpriseDatabase};
use redis_gitops_sandbox::{Sandbox, SandboxOptions};

mod support;
use support::Repo;

/// A TCP proxy to `upstream` that records every HTTP request line it forwards, with when it arrived.
struct RecordingProxy {
    address: std::net::SocketAddr,
    requests: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl RecordingProxy {
    fn start(upstream: std::net::SocketAddr) -> RecordingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let address = listener.local_addr().expect("proxy address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let (Ok(mut client_reader), Ok(mut server_writer)) = (client.try_clone(), server.try_clone()) else {
                    continue;
                };
                let log = log.clone();
                std::thread::spawn(move || {
                    let mut seen = Vec::<u8>::new();
                    let mut buffer = [0u8; 16 * 1024];
                    while let Ok(read) = client_reader.read(&mut buffer) {
                        if read == 0 {
                            break;
                        }
                        let arrived = Instant::now();
                        let start = seen.len();
                        seen.extend_from_slice(&buffer[..read]);
                        record_request_lines(&seen, start, arrived, &log);
                        if server_writer.write_all(&buffer[..read]).is_err() {
                            break;
                        }
                    }
                    let _ = server_writer.shutdown(std::net::Shutdown::Write);
                });
                let (mut server_reader, mut client_writer) = (server, client);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut server_reader, &mut client_writer);
                    let _ = client_writer.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        RecordingProxy { address, requests }
    }

    /// Write requests (anything but GET) that arrived after `since`.
    fn writes_after(&self, since: Instant) -> Vec<String> {
        self.requests
            .lock()
            .expect("proxy log")
            .iter()
            .filter(|(at, line)| *at >= since && !line.starts_with("GET "))
            .map(|(_, line)| line.clone())
            .collect()
    }

    fn all(&self) -> Vec<String> {
        self.requests
            .lock()
            .expect("proxy log")
            .iter()
            .map(|(_, line)| line.clone())
            .collect()
    }
}

/// Finds HTTP request lines that start at or after `start` in a connection's bytes (a request line begins the
/// stream or follows a newline, and names a method and an absolute path).
fn record_request_lines(seen: &[u8], start: usize, arrived: Instant, log: &Mutex<Vec<(Instant, String)>>) {
    const METHODS: [&str; 6] = ["GET /", "POST /", "PUT /", "PATCH /", "DELETE /", "HEAD /"];
    // Re-scan a little before `start`: a request line may have been split across reads.
    let from = start.saturating_sub(16);
    for index in from..seen.len() {
        if index != 0 && seen[index - 1] != b'\n' {
            continue;
        }
        let rest = &seen[index..];
        let Some(end) = rest.iter().position(|byte| *byte == b'\r') else {
            continue;
        };
        let line = String::from_utf8_lossy(&rest[..end]).to_string();
        // Only lines completed by this read, so none is recorded twice.
        if index + end < start {
            continue;
        }
        if METHODS.iter().any(|method| line.starts_with(method))
            && line.ends_with("HTTP/1.1")
            && let Ok(mut log) = log.lock()
        {
            log.push((arrived, line));
        }
    }
}

/// Starts an agent with a 3s lease whose logs are collected as it runs.
fn start_agent(kubeconfig: &std::path::Path, cache: &std::path::Path, pod: &str) -> (Child, Arc<Mutex<String>>) {
    use std::io::BufRead;
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("address")
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_redis-gitops"))
        .args([
            "agent",
            "--allow-file-urls",
            "--lease-duration",
            "3s",
            "--webhook-address",
            "127.0.0.1:0",
            "--metrics-address",
            &format!("127.0.0.1:{port}"),
            "--cache-dir",
        ])
        .arg(cache)
        .env("KUBECONFIG", kubeconfig)
        .env("POD_NAME", pod)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the agent starts");
    let logs = Arc::new(Mutex::new(String::new()));
    let sink = logs.clone();
    let stderr = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(mut logs) = sink.lock() {
                logs.push_str(&line);
                logs.push('\n');
            }
        }
    });
    (child, logs)
}

fn text(logs: &Arc<Mutex<String>>) -> String {
    logs.lock().map(|l| l.clone()).unwrap_or_default()
}

async fn wait_for_log(logs: &Arc<Mutex<String>>, wanted: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !text(logs).contains(wanted) {
        assert!(
            Instant::now() < deadline,
            "no log line with {wanted:?}:\n{}",
            text(logs)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn signal(child: &Child, signal: i32) {
    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
}

fn database(memory: &str) -> String {
    format!(
        "apiVersion: app.redislabs.com/v1alpha1\nkind: RedisEnterpriseDatabase\nmetadata:\n  name: cache\nspec:\n  memorySize: {memory}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_frozen_past_its_lease_writes_nothing_after_resuming_and_stops() {
    let temp = tempfile::tempdir().expect("temp dir");
    let sandbox = Sandbox::start(SandboxOptions::with_crds(redis_gitops::api::crds()))
        .await
        .expect("sandbox starts (needs redis-server)");
    let direct = temp.path().join("direct.kubeconfig");
    sandbox.apiserver.write_kubeconfig(&direct).expect("kubeconfig");
    // The first leader's kubeconfig points at the recording proxy.
    let proxy = RecordingProxy::start(sandbox.apiserver.address());
    let proxied = temp.path().join("proxied.kubeconfig");
    let upstream = sandbox.apiserver.url().to_string();
    let through_proxy = sandbox
        .apiserver
        .kubeconfig_yaml()
        .replace(&upstream, &format!("http://{}", proxy.address));
    assert_ne!(
        through_proxy,
        sandbox.apiserver.kubeconfig_yaml(),
        "the server url is http://host:port"
    );
    std::fs::write(&proxied, through_proxy).expect("proxied kubeconfig");

    let repo = Repo::new(temp.path());
    repo.write("cache.yaml", &database("1GB"));
    repo.commit("first");

    let (mut old_leader, old_logs) = start_agent(&proxied, &temp.path().join("cache-a"), "agent-a");
    wait_for_log(&old_logs, "leading: this replica holds the lease").await;
    let (mut standby, standby_logs) = start_agent(&direct, &temp.path().join("cache-b"), "agent-b");
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
    let databases: Api<RedisEnterpriseDatabase> = Api::namespaced(client.clone(), "default");
    let memory = |databases: Api<RedisEnterpriseDatabase>| async move {
        databases
            .get_opt("cache")
            .await
            .expect("get")
            .and_then(|database| database.spec.memory_size)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while memory(databases.clone()).await.as_deref() != Some("1GB") {
        assert!(Instant::now() < deadline, "the leader did not apply the database");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        proxy
            .all()
            .iter()
            .any(|line| line.starts_with("PATCH /apis/app.redislabs.com/")),
        "the leader's writes go through the proxy: {:?}",
        proxy.all()
    );

    // Freeze the leader past its lease; the standby takes the Lease over.
    signal(&old_leader, libc::SIGSTOP);
    let leases: Api<Lease> = Api::namespaced(client.clone(), "default");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let holder = leases
            .get_opt("redis-gitops-agent")
            .await
            .expect("get lease")
            .and_then(|lease| lease.spec?.holder_identity);
        if holder.as_deref() == Some("agent-b") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the standby did not take over: holder {holder:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_for_log(&standby_logs, "leading: this replica holds the lease").await;
    // A new commit: the new leader applies it, and the frozen one has something it would write on waking.
    repo.write("cache.yaml", &database("2GB"));
    repo.commit("second");
    let deadline = Instant::now() + Duration::from_secs(60);
    while memory(databases.clone()).await.as_deref() != Some("2GB") {
        assert!(Instant::now() < deadline, "the new leader did not apply the new commit");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Resume the old leader: it must find itself past its renew deadline, write nothing, and stop.
    let resumed = Instant::now();
    signal(&old_leader, libc::SIGCONT);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = old_leader.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the old leader did not stop:\n{}",
            text(&old_logs)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!status.success(), "losing the lease is a failure exit: {status:?}");
    let logs = text(&old_logs);
    assert!(
        logs.contains("lost the lease: it was not renewed within the renew deadline"),
        "{logs}"
    );
    assert!(
        logs.contains("agent stopped: the leader lease was lost; controllers stopped"),
        "{logs}"
    );
    assert_eq!(
        proxy.writes_after(resumed),
        Vec::<String>::new(),
        "the old leader wrote after resuming:\n{logs}"
    );
    // The new leader is undisturbed.
    assert_eq!(memory(databases.clone()).await.as_deref(), Some("2GB"));
    assert!(
        standby.try_wait().expect("wait").is_none(),
        "the new leader keeps running"
    );
    signal(&standby, libc::SIGTERM);
    assert!(standby.wait().expect("exits").success());
}
