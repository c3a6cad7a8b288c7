//! The smaller data-safety guards of the runtime (issue 9, item 11): no credentials over plain http://, no
//! file:// urls in agent mode unless allowed, and an API server's Secrets behind a bearer token when one is set.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kube::api::{Api, PostParams};
use redis_gitops::api::GitSync;
use redis_gitops::source::{Credentials, GitRef, GitSource, SourceConfig};
use redis_gitops_sandbox::apiserver::{ApiServer, ApiServerOptions};
use redis_gitops_sandbox::{Sandbox, SandboxOptions};

mod support;
use support::{Repo, kubectl};

fn source_config(url: &str, credentials: Credentials) -> SourceConfig {
    SourceConfig {
        url: url.to_string(),
        reference: GitRef::Branch("main".into()),
        credentials,
        cache_dir: std::env::temp_dir().join("redis-gitops-data-safety-runtime"),
        timeout: Duration::from_secs(5),
    }
}

#[test]
fn credentials_over_plain_http_are_refused_naming_the_field_and_the_fix() {
    let basic = Credentials {
        username: Some("deploy".into()),
        password: Some("correct-horse".into()),
        ..Credentials::default()
    };
    let error = GitSource::new(source_config("http://git.example.com/org/config.git", basic)).unwrap_err();
    assert_eq!(error.category(), "InvalidCredentials");
    assert_eq!(
        error.to_string(),
        "invalid credentials for http://git.example.com/org/config.git: the Secret sets 'password', which an \
         http:// url would send in cleartext; use the https:// url of the repository (plain http:// is for \
         anonymous access only)"
    );
    assert!(!format!("{error} {error:?}").contains("correct-horse"));
    let bearer = Credentials {
        bearer_token: Some("tok-0123456789".into()),
        ..Credentials::default()
    };
    let error = GitSource::new(source_config("HTTP://git.example.com/org/config.git", bearer)).unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid credentials for HTTP://git.example.com/org/config.git: the Secret sets 'bearerToken', which an \
         http:// url would send in cleartext; use the https:// url of the repository (plain http:// is for \
         anonymous access only)"
    );
    // Anonymous http:// stays allowed (a public mirror), and https:// takes the same credentials.
    assert!(
        GitSource::new(source_config(
            "http://git.example.com/org/config.git",
            Credentials::none()
        ))
        .is_ok()
    );
    let basic = Credentials {
        username: Some("deploy".into()),
        password: Some("correct-horse".into()),
        ..Credentials::default()
    };
    assert!(GitSource::new(source_config("https://git.example.com/org/config.git", basic)).is_ok());
}

/// Starts `redis-gitops agent` with these extra arguments; returns it and its collected logs.
fn start_agent(
    kubeconfig: &std::path::Path,
    cache: &std::path::Path,
    extra: &[&str],
) -> (std::process::Child, std::sync::Arc<std::sync::Mutex<String>>) {
    use std::io::BufRead;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("address")
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_redis-gitops"))
        .arg("agent")
        .args(extra)
        .args(["--webhook-address", "127.0.0.1:0"])
        .args(["--metrics-address", &format!("127.0.0.1:{port}"), "--cache-dir"])
        .arg(cache)
        .env("KUBECONFIG", kubeconfig)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the agent starts");
    let logs = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
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

/// The Ready condition of a GitSync, once its reason is `reason`.
async fn wait_for_ready_reason(gitsyncs: &Api<GitSync>, name: &str, reason: &str) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = gitsyncs
            .get(name)
            .await
            .expect("get gitsync")
            .status
            .and_then(|status| status.conditions)
            .and_then(|conditions| conditions.into_iter().find(|condition| condition.type_ == "Ready"));
        if let Some(ready) = &ready
            && ready.reason == reason
        {
            return (ready.status.clone(), ready.message.clone());
        }
        assert!(
            Instant::now() < deadline,
            "no Ready reason {reason} on {name}: {ready:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_refuses_file_urls_unless_started_with_allow_file_urls() {
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

    let (mut agent, logs) = start_agent(&kubeconfig, &temp.path().join("cache"), &[]);
    let client = sandbox.apiserver.kube_client().expect("client");
    let gitsyncs: Api<GitSync> = Api::namespaced(client.clone(), "default");
    let gitsync: GitSync = serde_json::from_value(serde_json::json!({
        "apiVersion": "redisgitops.dev/v1alpha1", "kind": "GitSync",
        "metadata": {"name": "local", "namespace": "default"},
        "spec": {"url": repo.url(), "interval": "1s"}
    }))
    .expect("gitsync");
    gitsyncs.create(&PostParams::default(), &gitsync).await.expect("create");
    let (status, message) = wait_for_ready_reason(&gitsyncs, "local", "InvalidUrl").await;
    assert_eq!(status, "False");
    assert_eq!(
        message,
        format!(
            "invalid git url '{}': file:// urls are refused by this agent, as a GitSync could read any repository \
             on the agent's disk; serve the repository over https:// or ssh:// (file:// is for the sandbox and \
             tests: agent --allow-file-urls); the last applied revision stays",
            repo.url()
        )
    );
    let databases: Api<redis_gitops::api::RedisEnterpriseDatabase> = Api::namespaced(client.clone(), "default");
    assert!(
        databases.get_opt("cache").await.expect("get").is_none(),
        "nothing applied"
    );
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) }, 0);
    assert!(
        agent.wait().expect("exits").success(),
        "{}",
        logs.lock().map(|l| l.clone()).unwrap_or_default()
    );

    // The same GitSync syncs with the explicit opt-in.
    let (mut agent, _logs) = start_agent(&kubeconfig, &temp.path().join("cache"), &["--allow-file-urls"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while databases.get_opt("cache").await.expect("get").is_none() {
        assert!(
            Instant::now() < deadline,
            "the agent with --allow-file-urls did not apply the database"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) }, 0);
    assert!(agent.wait().expect("exits").success());
}

/// A raw HTTP/1.0 GET to the sandbox API server; returns the status code and body.
fn raw_get(address: std::net::SocketAddr, path: &str, token: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let authorization = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n{authorization}\r\n").expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_server_with_a_secrets_token_serves_secrets_only_with_it() {
    use std::os::unix::fs::PermissionsExt as _;
    let temp = tempfile::tempdir().expect("temp dir");
    let token = "0123456789abcdef0123456789abcdef0123456789abcdef";
    let server = ApiServer::start(ApiServerOptions {
        secrets_token: Some(token.to_string()),
        ..ApiServerOptions::default()
    })
    .await
    .expect("the API server starts");
    let kubeconfig = temp.path().join("kubeconfig");
    std::fs::write(&kubeconfig, "stale, world-readable").expect("stale file");
    std::fs::set_permissions(&kubeconfig, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    server.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let mode = std::fs::metadata(&kubeconfig).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the kubeconfig may hold a token: owner only");
    let yaml = std::fs::read_to_string(&kubeconfig).expect("kubeconfig");
    assert!(yaml.contains(&format!("token: {token}")), "{yaml}");

    let client = server.kube_client().expect("client");
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client, "default");
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db-password"},
        "stringData": {"password": "hunter2"}
    }))
    .expect("secret");
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("kube::Client writes the Secret");
    let address = server.address();
    let unauthorized = "Unauthorized: Secrets need the sandbox's bearer token; use the kubeconfig the sandbox wrote";
    for path in [
        "/api/v1/namespaces/default/secrets/db-password",
        "/api/v1/namespaces/default/secrets",
        "/api/v1/secrets",
        "/api/v1/secrets?watch=true",
    ] {
        let (status, body) = raw_get(address, path, None);
        assert_eq!(status, 401, "{path}: {body}");
        assert!(!body.contains("aHVudGVyMg"), "{path}: {body}");
        let message: serde_json::Value = serde_json::from_str(&body).expect("a Status");
        assert_eq!(message["message"], unauthorized, "{path}");
        let (status, _) = raw_get(address, path, Some("wrong-token-of-the-same-size-000000000000000000"));
        assert_eq!(status, 401, "{path} with a wrong token");
    }
    let (status, body) = raw_get(address, "/api/v1/namespaces/default/secrets/db-password", Some(token));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("aHVudGVyMg"), "{body}");
    // Everything but Secrets stays open, as before.
    let (status, _) = raw_get(address, "/api/v1/namespaces/default/configmaps", None);
    assert_eq!(status, 200);
    let read = secrets.get("db-password").await.expect("kube::Client reads the Secret");
    assert_eq!(
        read.data
            .and_then(|data| data.get("password").map(|value| value.0.clone())),
        Some(b"hunter2".to_vec())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_kubeconfig_is_owner_only_and_kubectl_still_reads_secrets() {
    use std::os::unix::fs::PermissionsExt as _;
    let temp = tempfile::tempdir().expect("temp dir");
    let sandbox = Sandbox::start(SandboxOptions::with_crds(redis_gitops::api::crds()))
        .await
        .expect("sandbox starts (needs redis-server)");
    let kubeconfig = temp.path().join("kubeconfig");
    sandbox.apiserver.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let mode = std::fs::metadata(&kubeconfig).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let manifest = temp.path().join("secret.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db-password\n  namespace: default\nstringData:\n  password: hunter2\n",
    )
    .expect("manifest");
    kubectl(&kubeconfig, &["apply", "-f", manifest.to_str().expect("utf-8 path")]);
    assert_eq!(
        kubectl(
            &kubeconfig,
            &["get", "secret", "db-password", "-o", "jsonpath={.data.password}"]
        ),
        "aHVudGVyMg=="
    );
}
