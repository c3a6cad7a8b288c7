//! Shared helpers of the sandbox API server tests: a test CRD, server start-up, raw HTTP, and running the
//! real `kubectl` against the server with a bounded time.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::CustomResource;
use kube::CustomResourceExt;
use redis_gitops_sandbox::apiserver::{ApiServer, ApiServerHandle, ApiServerOptions};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How a widget is built.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
pub enum Mode {
    /// Quickly.
    Fast,
    /// Carefully.
    Careful,
}

/// One named port of a widget.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct WidgetPort {
    /// The port name, the list key.
    pub name: String,
    /// The port number.
    pub port: i32,
}

/// A widget the tests create: a CRD with validation rules, printer columns and a status subresource.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "test.sandbox.io",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus",
    shortname = "wg",
    printcolumn = r#"{"name":"Size","type":"integer","jsonPath":".spec.size"}"#,
    printcolumn = r#"{"name":"Color","type":"string","jsonPath":".spec.color"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#
)]
pub struct WidgetSpec {
    /// How many parts the widget has, between 1 and 100.
    #[schemars(range(min = 1, max = 100))]
    pub size: i64,
    /// The widget's colour, lowercase letters only.
    #[schemars(regex(pattern = r"^[a-z]+$"))]
    pub color: String,
    /// How the widget is built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// Named ports, merged by name in server-side apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub ports: Vec<WidgetPort>,
}

/// The observed state of a widget.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct WidgetStatus {
    /// Where the widget is in its life.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
}

/// Starts a server with the Widget CRD installed.
pub async fn start() -> ApiServerHandle {
    start_with(ApiServerOptions::default()).await
}

/// Starts a server with the Widget CRD installed and the given options otherwise.
pub async fn start_with(mut options: ApiServerOptions) -> ApiServerHandle {
    options.crds.push(Widget::crd());
    match ApiServer::start(options).await {
        Ok(handle) => handle,
        Err(e) => panic!("the sandbox API server did not start: {e}"),
    }
}

/// A kube client for the server.
pub fn client(server: &ApiServerHandle) -> kube::Client {
    match server.kube_client() {
        Ok(c) => c,
        Err(e) => panic!("no kube client: {e}"),
    }
}

/// Sends one raw HTTP/1.1 request and returns the status code and body.
pub async fn raw(server: &ApiServerHandle, method: &str, path: &str, content_type: &str, body: &str) -> (u16, String) {
    let mut stream = match tokio::net::TcpStream::connect(server.address()).await {
        Ok(s) => s,
        Err(e) => panic!("cannot connect to the server: {e}"),
    };
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        server.address(),
        body.len()
    );
    if let Err(e) = stream.write_all(request.as_bytes()).await {
        panic!("cannot send the request: {e}");
    }
    let mut response = String::new();
    if let Err(e) = tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut response)).await {
        panic!("no response in time: {e}");
    }
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

/// The real kubectl with a kubeconfig for one server.
pub struct Kubectl {
    /// Holds the kubeconfig and kubectl's cache.
    pub dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    binary: PathBuf,
}

/// Finds kubectl or fails with the install hint.
pub fn kubectl_binary() -> PathBuf {
    let candidates = ["/usr/bin/kubectl", "/usr/local/bin/kubectl"];
    for c in candidates {
        if Path::new(c).exists() {
            return PathBuf::from(c);
        }
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join("kubectl");
            if candidate.exists() {
                return candidate;
            }
        }
    }
    panic!("kubectl is not installed: run `apt-get install kubernetes-client` (the CI script installs it)");
}

/// The output of one kubectl run.
#[derive(Debug)]
pub struct Output {
    /// Exit status success.
    pub success: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Kubectl {
    /// Writes a kubeconfig for the server into a temp dir.
    pub fn new(server: &ApiServerHandle) -> Self {
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => panic!("no temp dir: {e}"),
        };
        let kubeconfig = dir.path().join("kubeconfig");
        if let Err(e) = server.write_kubeconfig(&kubeconfig) {
            panic!("cannot write kubeconfig: {e}");
        }
        Kubectl {
            dir,
            kubeconfig,
            binary: kubectl_binary(),
        }
    }

    /// Writes a file into the temp dir and returns its path.
    pub fn file(&self, name: &str, content: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        if let Err(e) = std::fs::write(&path, content) {
            panic!("cannot write {name}: {e}");
        }
        path
    }

    /// A command with the kubeconfig and a private cache dir.
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&self.binary);
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .env("HOME", self.dir.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        command
    }

    /// Runs kubectl to completion within 60 seconds.
    pub async fn run(&self, args: &[&str]) -> Output {
        let child = match self.command(args).spawn() {
            Ok(c) => c,
            Err(e) => panic!("cannot run kubectl: {e}"),
        };
        let output = match tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => panic!("kubectl failed to run: {e}"),
            Err(_) => panic!("kubectl {args:?} did not finish within 60s"),
        };
        Output {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs kubectl and fails the test unless it succeeds; returns stdout.
    pub async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            out.success,
            "kubectl {args:?} failed:\nstdout: {}\nstderr: {}",
            out.stdout, out.stderr
        );
        out.stdout
    }
}

/// Polls `check` every 20 ms until it returns `Some`, failing after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
