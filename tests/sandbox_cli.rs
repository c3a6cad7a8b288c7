//! `redis-gitops sandbox` as a user runs it: it starts, writes a kubeconfig, the real kubectl works against it
//! (our CRDs with their docs, pods of a Redis Enterprise StatefulSet getting their own node addresses), and SIGTERM
//! stops it cleanly; with `--repo` it runs the agent as a cluster does (Lease, health endpoints).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod support;
use support::Repo;

fn kubectl(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| {
            panic!("kubectl is needed ({error}); install it with apt-get install kubernetes-client")
        });
    if let (Some(text), Some(mut input)) = (stdin, child.stdin.take()) {
        std::io::Write::write_all(&mut input, text.as_bytes()).expect("stdin");
    }
    let output = child.wait_with_output().expect("kubectl finishes");
    assert!(
        output.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_sandbox_command_serves_kubectl_and_stops_on_sigterm() {
    let temp = tempfile::tempdir().expect("temp dir");
    let kubeconfig = temp.path().join("kubeconfig");
    let mut sandbox = Command::new(env!("CARGO_BIN_EXE_redis-gitops"))
        .args(["sandbox", "--kubeconfig"])
        .arg(&kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the sandbox starts");
    let mut lines = BufReader::new(sandbox.stdout.take().expect("stdout")).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    assert_eq!(first, "redis-gitops sandbox is running (Ctrl-C to stop).");
    let banner: Vec<String> = lines.by_ref().take(3).map_while(Result::ok).collect();
    assert!(banner[1].contains(&kubeconfig.display().to_string()), "{banner:?}");

    let crds = kubectl(&kubeconfig, &["get", "crds", "-o", "name"], None);
    assert_eq!(
        crds.lines().collect::<Vec<_>>(),
        [
            "customresourcedefinition.apiextensions.k8s.io/gitsyncs.redisgitops.dev",
            "customresourcedefinition.apiextensions.k8s.io/redisbackups.redisgitops.dev",
            "customresourcedefinition.apiextensions.k8s.io/redisbackupschedules.redisgitops.dev",
            "customresourcedefinition.apiextensions.k8s.io/redisenterpriseclusters.app.redislabs.com",
            "customresourcedefinition.apiextensions.k8s.io/redisenterprisedatabases.app.redislabs.com",
            "customresourcedefinition.apiextensions.k8s.io/redisrestores.redisgitops.dev",
        ]
    );
    let explain = kubectl(&kubeconfig, &["explain", "redb.spec.memorySize"], None);
    assert!(explain.contains("Memory limit of the database"), "{explain}");

    // A cluster and its rendered objects, applied with kubectl: its pods become emulated nodes.
    let repository = temp.path().join("repo");
    std::fs::create_dir_all(&repository).expect("dir");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/official/simple.yaml"),
        repository.join("rec.yaml"),
    )
    .expect("copy");
    let rendered = Command::new(env!("CARGO_BIN_EXE_redis-gitops"))
        .args(["render", "--only", "kubernetes"])
        .arg(&repository)
        .output()
        .expect("render runs");
    assert!(rendered.status.success());
    kubectl(
        &kubeconfig,
        &["apply", "--server-side", "-f", "-"],
        Some(&String::from_utf8_lossy(&rendered.stdout)),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ips = kubectl(
            &kubeconfig,
            &["get", "pods", "-o", "jsonpath={.items[*].status.podIP}"],
            None,
        );
        let ips: Vec<&str> = ips.split_whitespace().collect();
        if ips.len() == 3 {
            assert!(
                ips.iter().all(|ip| ip.starts_with("127.") && *ip != "127.0.0.1"),
                "{ips:?}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "the pods did not start: {ips:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let rec = repository.join("rec.yaml");
    kubectl(
        &kubeconfig,
        &["apply", "--server-side", "-f", rec.to_str().expect("utf-8 path")],
        None,
    );
    let table = kubectl(&kubeconfig, &["get", "rec"], None);
    let row: Vec<&str> = table.lines().nth(1).unwrap_or_default().split_whitespace().collect();
    assert_eq!(row.first().copied(), Some("redis-enterprise"), "{table}");
    assert_eq!(row.get(1).copied(), Some("3"), "the NODES printer column: {table}");

    // SAFETY: sending a signal to our own child process.
    let sent = unsafe { libc::kill(sandbox.id() as i32, libc::SIGTERM) };
    assert_eq!(sent, 0);
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = sandbox.wait().expect("exits");
    assert!(status.success(), "{status:?}");
    assert_eq!(rest.last().map(String::as_str), Some("sandbox stopped"));
}

#[test]
fn a_plain_directory_is_refused_with_a_hint() {
    let temp = tempfile::tempdir().expect("temp dir");
    let output = Command::new(env!("CARGO_BIN_EXE_redis-gitops"))
        .args(["sandbox", "--repo"])
        .arg(temp.path())
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("is a directory but not a Git repository; the sandbox syncs commits, not files: run `git init && git add -A && git commit -m init` there"),
        "{stderr}"
    );
}

#[test]
fn sandbox_repo_syncs_a_local_checkout_with_one_command() {
    let temp = tempfile::tempdir().expect("temp dir");
    let repo = Repo::with_branch(temp.path(), "trunk");
    repo.write(
        "team/cache.yaml",
        "apiVersion: app.redislabs.com/v1alpha1\nkind: RedisEnterpriseDatabase\nmetadata:\n  name: cache\n  namespace: team-a\nspec:\n  memorySize: 1GB\n",
    );
    repo.commit("init");
    let checkout = repo.dir.clone();
    let kubeconfig = temp.path().join("kubeconfig");
    let mut sandbox = Command::new(env!("CARGO_BIN_EXE_redis-gitops"))
        .args(["sandbox", "--path", "team", "--kubeconfig"])
        .arg(&kubeconfig)
        .arg("--repo")
        .arg(&checkout)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    let mut lines = BufReader::new(sandbox.stdout.take().expect("stdout")).lines();
    let syncing = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|line| line.starts_with("Syncing "))
        .expect("the sync is announced");
    assert!(syncing.contains("(branch trunk, path \"team\")"), "{syncing}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let table = loop {
        let table = kubectl(&kubeconfig, &["get", "redb", "-n", "team-a"], None);
        if table.contains("cache") {
            break table;
        }
        assert!(Instant::now() < deadline, "the database was not applied: {table}");
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(table.starts_with("NAME"), "{table}");
    let ready = kubectl(
        &kubeconfig,
        &[
            "get",
            "gitsync",
            "sandbox",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ],
        None,
    );
    assert_eq!(ready, "True");
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(sandbox.id() as i32, libc::SIGTERM) }, 0);
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(sandbox.wait().expect("exits").success());
    assert_eq!(rest.last().map(String::as_str), Some("sandbox stopped"));
}

#[test]
fn sandbox_once_runs_the_whole_loop_on_examples_repo_and_exits_zero_when_everything_is_ready() {
    // The README's first command, in its CI form: sandbox + GitSync + cluster and database controllers.
    let temp = tempfile::tempdir().expect("temp dir");
    let output = Command::new(env!("CARGO_BIN_EXE_redis-gitops"))
        .args([
            "sandbox",
            "--repo",
            ".",
            "--path",
            "examples-repo",
            "--once",
            "--timeout",
            "120s",
        ])
        .arg("--kubeconfig")
        .arg(temp.path().join("kubeconfig"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::null())
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{text}");
    let table: Vec<&str> = text.lines().skip_while(|line| !line.starts_with("KIND")).collect();
    assert_eq!(
        table.len(),
        15,
        "header, GitSync, 2 RECs, 8 REDBs, 1 backup schedule, summary, stopped: {text}"
    );
    assert!(table[1].starts_with("gitsync  default/sandbox"), "{text}");
    assert!(
        table[12].starts_with("rbs      redis-staging/sessions-nightly"),
        "{text}"
    );
    for row in &table[1..13] {
        assert!(row.contains(" Ready "), "every object is Ready: {row}");
    }
    assert!(
        table
            .iter()
            .any(|row| row.contains("redis-production/prod") && row.contains("all 5 nodes are active")),
        "{text}"
    );
    assert!(table[13].starts_with("11/11 objects Ready, revision "), "{text}");
    assert!(
        text.contains("Created the license Secret redis-production/redis-enterprise-license"),
        "{text}"
    );
}

#[test]
fn sandbox_once_exits_one_and_says_why_when_an_object_fails() {
    let temp = tempfile::tempdir().expect("temp dir");
    let repo = Repo::with_branch(temp.path(), "main");
    repo.write(
        "rec.yaml",
        "apiVersion: app.redislabs.com/v1\nkind: RedisEnterpriseCluster\nmetadata:\n  name: rec\n  namespace: team-b\nspec:\n  nodes: 3\n",
    );
    // The database asks for a module the sandbox's cluster does not have (RedisTimeSeries does not load on Debian
    // 12), which it refuses as a real cluster does (406 missing_module): the REDB fails, it does not hang.
    repo.write(
        "cache.yaml",
        "apiVersion: app.redislabs.com/v1alpha1\nkind: RedisEnterpriseDatabase\nmetadata:\n  name: cache\n  namespace: team-b\nspec:\n  memorySize: 100MB\n  modulesList:\n    - name: timeseries\n",
    );
    repo.commit("init");
    let output = Command::new(env!("CARGO_BIN_EXE_redis-gitops"))
        .args(["sandbox", "--once", "--timeout", "60s", "--kubeconfig"])
        .arg(temp.path().join("kubeconfig"))
        .arg("--repo")
        .arg(&repo.dir)
        .stderr(Stdio::null())
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let row = text
        .lines()
        .find(|line| line.starts_with("redb     team-b/cache"))
        .unwrap_or_else(|| panic!("a row for the database: {text}"));
    assert!(row.contains("Failed"), "{row}");
    assert!(
        row.contains("missing_module") && row.contains("timeseries"),
        "the cluster's error_code and the module are shown: {row}"
    );
    assert!(text.contains("1/2 objects Ready"), "{text}");
    assert!(
        !text.contains("timed out"),
        "a failure is reported without waiting for the deadline: {text}"
    );
}

/// `GET path` on `address` over plain HTTP/1.0: the status and the body.
fn http_get(address: &str, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).ok()?;
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

#[test]
fn sandbox_repo_runs_the_agent_as_a_cluster_does_with_its_lease_and_health_endpoints() {
    let temp = tempfile::tempdir().expect("temp dir");
    let repo = Repo::with_branch(temp.path(), "main");
    repo.write(
        "cache.yaml",
        "apiVersion: app.redislabs.com/v1alpha1\nkind: RedisEnterpriseDatabase\nmetadata:\n  name: cache\nspec:\n  memorySize: 1GB\n",
    );
    repo.commit("init");
    let kubeconfig = temp.path().join("kubeconfig");
    let mut sandbox = Command::new(env!("CARGO_BIN_EXE_redis-gitops"))
        .args(["sandbox", "--kubeconfig"])
        .arg(&kubeconfig)
        .arg("--repo")
        .arg(&repo.dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    let mut lines = BufReader::new(sandbox.stdout.take().expect("stdout")).lines();
    // The agent's endpoints are on a free loopback port, printed in the banner.
    let endpoints = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|line| line.starts_with("  agent endpoints "))
        .expect("the agent's endpoints are printed");
    let address = endpoints
        .split_whitespace()
        .find_map(|word| word.strip_prefix("http://"))
        .and_then(|url| url.strip_suffix("/readyz"))
        .unwrap_or_else(|| panic!("an http://<address>/readyz url: {endpoints}"))
        .to_string();
    assert!(address.starts_with("127.0.0.1:"), "{endpoints}");
    assert!(!address.ends_with(":0"), "a real port: {endpoints}");

    let deadline = Instant::now() + Duration::from_secs(30);
    while http_get(&address, "/readyz") != Some((200, "ready".to_string())) {
        assert!(Instant::now() < deadline, "the agent did not become ready");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(http_get(&address, "/healthz"), Some((200, "ok".to_string())));
    // The agent holds the leader Lease a cluster's replicas compete for, as this process (`<hostname>-<pid>`).
    let holder = loop {
        let holder = kubectl(
            &kubeconfig,
            &[
                "get",
                "lease",
                "redis-gitops-agent",
                "-n",
                "default",
                "--ignore-not-found",
                "-o",
                "jsonpath={.spec.holderIdentity}",
            ],
            None,
        );
        if !holder.is_empty() {
            break holder;
        }
        assert!(Instant::now() < deadline, "no leader Lease redis-gitops-agent");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        holder.ends_with(&format!("-{}", sandbox.id())),
        "the sandbox process holds the lease: {holder}"
    );
    // And it syncs through that runtime: the database is applied and the sync is counted in /metrics.
    loop {
        let table = kubectl(&kubeconfig, &["get", "redb", "-n", "default"], None);
        if table.contains("cache") {
            break;
        }
        assert!(Instant::now() < deadline, "the database was not applied: {table}");
        std::thread::sleep(Duration::from_millis(300));
    }
    loop {
        let (status, metrics) = http_get(&address, "/metrics").expect("metrics answer");
        assert_eq!(status, 200);
        if metrics.contains("redis_gitops_gitsync_syncs_total{result=\"success\"}") {
            break;
        }
        assert!(Instant::now() < deadline, "no successful sync in /metrics: {metrics}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(sandbox.id() as i32, libc::SIGTERM) }, 0);
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(sandbox.wait().expect("exits").success());
    assert_eq!(rest.last().map(String::as_str), Some("sandbox stopped"));
}
