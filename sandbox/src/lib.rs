//! The sandbox: a local control plane (Kubernetes API server + Redis Enterprise emulator) that the real
//! agent and the real `kubectl` talk to, for tests and for `redis-gitops sandbox` (design.md §6).
//!
//! The two halves meet at the Pods: every Pod of a Redis Enterprise StatefulSet (labels `app=redis-enterprise`,
//! `redis.io/role=node`, `redis.io/cluster=<rec>`) becomes an emulated Redis Enterprise node, and its Pod IP is that
//! node's own loopback address, where it serves the REST API on port 9443 as a real pod would.
//!
//! This crate does not depend on the agent library: the CRDs to install ([`SandboxOptions::crds`]) and the hosts-file
//! format ([`Sandbox::keep_hosts_file`]) come from the caller, so no agent module can reach into the emulator.

pub mod apiserver;
pub mod enterprise;
pub mod forge;
pub mod s3;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

use apiserver::{ApiServer, ApiServerHandle, ApiServerOptions, Authorization, PodIpAllocator};
use enterprise::{ClusterKey, EmulatorConfig, EnterpriseEmulator};

/// How to start the sandbox.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// The CustomResourceDefinitions installed (and established) before the API server answers: the agent's
    /// (`redis_gitops::api::crds()`). None by default.
    pub crds: Vec<CustomResourceDefinition>,
    /// Port of the API server on 127.0.0.1 (0: a free port).
    pub port: u16,
    /// How long an emulated Pod takes to become Ready.
    pub pod_ready_delay: Duration,
    /// The emulator's settings (redis-server program, work directory, speed).
    pub emulator: EmulatorConfig,
    /// How the API server authorizes requests: everything allowed (the default) or RBAC
    /// ([`apiserver::Authorization`]).
    pub authorization: Authorization,
    /// Serve the API server over HTTPS with a CA made at start (`Sandbox::apiserver.ca_pem()`); the kubeconfig it
    /// writes then carries the CA and the admin token, which kubectl only sends over HTTPS.
    pub tls: bool,
}

impl SandboxOptions {
    /// The default options with these CRDs installed.
    pub fn with_crds(crds: Vec<CustomResourceDefinition>) -> Self {
        Self {
            crds,
            ..Self::default()
        }
    }
}

impl Default for SandboxOptions {
    fn default() -> Self {
        Self {
            crds: Vec::new(),
            port: 0,
            pod_ready_delay: Duration::from_millis(300),
            emulator: EmulatorConfig::default(),
            authorization: Authorization::AllowAll,
            tls: false,
        }
    }
}

/// Failure to start the sandbox.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The Redis Enterprise emulator could not start (for example redis-server is missing).
    #[error("failed to start the Redis Enterprise emulator: {0}")]
    Emulator(#[from] enterprise::EmulatorError),
    /// The API server could not start.
    #[error("failed to start the API server: {0}")]
    ApiServer(#[from] apiserver::ApiServerError),
}

/// A running sandbox; dropping it stops the API server and every emulated database process.
pub struct Sandbox {
    /// The Kubernetes API server.
    pub apiserver: ApiServerHandle,
    /// The Redis Enterprise emulator.
    pub emulator: Arc<EnterpriseEmulator>,
}

impl Sandbox {
    /// Starts the emulator, then the API server with [`SandboxOptions::crds`] installed.
    pub async fn start(options: SandboxOptions) -> Result<Self, SandboxError> {
        let emulator = Arc::new(EnterpriseEmulator::start(options.emulator)?);
        let apiserver = ApiServer::start(ApiServerOptions {
            crds: options.crds,
            pod_ready_delay: options.pod_ready_delay,
            pod_ip_allocator: Arc::new(RedisEnterpriseNodes {
                emulator: emulator.clone(),
            }),
            port: options.port,
            authorization: options.authorization,
            tls: options.tls,
            // No Secret token here: kubectl (client-go's clientcmd) sends no credentials at all to a plain-http
            // server, so requiring one would break `kubectl get secret` against the sandbox. See
            // `ApiServerOptions::secrets_token`.
            ..ApiServerOptions::default()
        })
        .await?;
        Ok(Self { apiserver, emulator })
    }

    /// The PEM of the CA that signed every emulated node's certificate.
    pub fn ca_pem(&self) -> &str {
        self.emulator.ca_pem()
    }

    /// Where that CA is written.
    pub fn ca_path(&self) -> &Path {
        self.emulator.ca_path()
    }

    /// The in-cluster names the emulator serves (`rec.ns.svc`, `rec-0.rec-headless.ns.svc`, database Services), as
    /// text in the format `render` writes (the agent's `--hosts-file` format: `redis_gitops::enterprise::hosts`).
    pub fn hosts(&self, render: HostsRenderer) -> String {
        render(&self.emulator.names().entries())
    }

    /// Keeps `path` equal to [`Sandbox::hosts`] rendered by `render`, rewriting it (atomically) when names come or
    /// go, until the returned task is aborted.
    pub fn keep_hosts_file(&self, path: PathBuf, render: HostsRenderer) -> tokio::task::JoinHandle<()> {
        let names = self.emulator.names();
        tokio::spawn(async move {
            let mut written = None;
            loop {
                let text = render(&names.entries());
                if written.as_ref() != Some(&text) {
                    let temporary = path.with_extension("tmp");
                    let result = std::fs::write(&temporary, &text).and_then(|()| std::fs::rename(&temporary, &path));
                    match result {
                        Ok(()) => written = Some(text),
                        Err(error) => tracing::warn!(%error, path = %path.display(), "failed to write the hosts file"),
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    }
}

/// Renders `(name, address)` pairs as the text of a hosts file.
pub type HostsRenderer = fn(&[(String, IpAddr)]) -> String;

/// Turns Redis Enterprise Pods into emulated nodes: the Pod IP is the node's loopback address.
struct RedisEnterpriseNodes {
    emulator: Arc<EnterpriseEmulator>,
}

/// The cluster a Pod is a Redis Enterprise node of, from its labels and namespace.
fn cluster_of(pod: &Value) -> Option<(ClusterKey, String)> {
    let metadata = pod.get("metadata")?;
    let labels = metadata.get("labels")?;
    let label = |key: &str| labels.get(key).and_then(Value::as_str);
    if label("app") != Some("redis-enterprise") || label("redis.io/role") != Some("node") {
        return None;
    }
    let cluster = label("redis.io/cluster")?;
    let namespace = metadata.get("namespace").and_then(Value::as_str).unwrap_or("default");
    let name = metadata.get("name").and_then(Value::as_str)?;
    Some((ClusterKey::new(namespace, cluster), name.to_string()))
}

impl PodIpAllocator for RedisEnterpriseNodes {
    fn allocate(&self, pod: &Value) -> String {
        let Some((key, name)) = cluster_of(pod) else {
            return "127.0.0.1".to_string();
        };
        match self.emulator.add_node(&key, &name) {
            Ok(node) => node.ip.to_string(),
            Err(error) => {
                tracing::warn!(%error, pod = %name, cluster = %key, "the emulated Redis Enterprise node did not start");
                "127.0.0.1".to_string()
            }
        }
    }

    fn release(&self, pod: &Value) {
        if let Some((key, name)) = cluster_of(pod)
            && let Err(error) = self.emulator.remove_node(&key, &name)
        {
            tracing::warn!(%error, pod = %name, cluster = %key, "the emulated Redis Enterprise node did not stop cleanly");
        }
    }

    fn may_become_ready(&self, pod: &Value) -> bool {
        // A node pod is Ready once its emulated node answers; other pods as soon as their delay passed.
        cluster_of(pod).is_none_or(|(key, name)| self.emulator.node(&key, &name).is_some())
    }
}

/// The default kubeconfig path of `redis-gitops sandbox`.
pub fn default_kubeconfig_path() -> PathBuf {
    std::env::temp_dir().join("redis-gitops-sandbox.kubeconfig")
}
