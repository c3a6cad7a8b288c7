//! The agent as one runtime (design.md §6): what `redis-gitops agent` runs in a cluster and `redis-gitops sandbox`
//! runs locally, the same way. It serves the health and metrics endpoints (and push webhooks), waits for the CRDs, holds the leader
//! Lease with its write fence, and runs the GitSync, cluster and database controllers until shutdown or until the
//! Lease is lost, and the backup controllers beside them. It may do I/O (files, sockets, the API server); it reads no command line and no environment
//! besides what [`AgentConfig`] says.

use std::collections::BTreeSet;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::FutureExt;

use crate::controllers::{ControllerContext, EnterpriseAccess};
use crate::enterprise::RetryPolicy;
use crate::runtime::WatchScope;
use crate::sync::controller::SyncContext;
use crate::sync::lease::{FenceLayer, LeaderLease, LeaseTimings, LeaseTimingsError, WriteFence, install_process_fence};
use crate::sync::trigger::SyncTriggers;
use crate::telemetry::{Metrics, serve_health};
use crate::webhook::WebhookReceiver;

/// The name of the leader Lease every replica competes for.
pub const LEASE_NAME: &str = "redis-gitops-agent";

/// Where the agent finds the Kubernetes API server.
#[derive(Clone)]
pub enum KubeSource {
    /// The in-cluster service account, or else the current kubeconfig context (`KUBECONFIG`, `~/.kube/config`).
    Infer,
    /// This configuration (the sandbox's API server, or a test's).
    Config(Box<kube::Config>),
}

/// Where the agent serves `/healthz`, `/readyz` and `/metrics`.
pub enum HealthEndpoint {
    /// Listen on this address (`host:port`; port 0 picks a free one).
    Address(String),
    /// Serve on this listener, already bound by the caller (who then knows and can print the address).
    Listener(std::net::TcpListener),
}

/// Everything the agent needs to run, as plain values: the command line of `agent` and the sandbox both fill it.
pub struct AgentConfig {
    /// Where the Kubernetes API server is.
    pub kube: KubeSource,
    /// Directory for the Git caches (one bare repository per URL, reused across polls); created if missing.
    pub cache_dir: PathBuf,
    /// Namespaces GitSyncs may write to besides their own (`*`: every namespace the agent watches).
    pub allow_namespaces: Vec<String>,
    /// Where the controllers watch and write: the whole cluster (a ClusterRole) or listed namespaces (a Role in
    /// each).
    pub watch: WatchScope,
    /// Where to serve the health and metrics endpoints.
    pub health: HealthEndpoint,
    /// Namespace of the leader Lease [`LEASE_NAME`].
    pub lease_namespace: String,
    /// How long the Lease holds without renewal (1s to 24h); renewal and fence timings follow from it.
    pub lease_duration: Duration,
    /// PEM file of the CA (or CAs) that signed the Redis Enterprise REST API certificates, if any.
    pub enterprise_ca_file: Option<PathBuf>,
    /// Name resolution for the Redis Enterprise REST API instead of the system's (a hosts file outside a cluster,
    /// the sandbox's name table).
    pub resolver: Option<Arc<dyn reqwest::dns::Resolve>>,
    /// Time limit of one Redis Enterprise REST call.
    pub rest_timeout: Duration,
    /// The pod name of this replica: the Lease holder and the events' reporting instance. Without it the holder is
    /// `<hostname>-<pid>`.
    pub instance: Option<String>,
    /// Where to serve push webhooks (`POST /hook/<hex>`, its own port apart from metrics); `None`: not served.
    /// An address may leave out the host (`:9292`: every interface).
    pub webhook: Option<HealthEndpoint>,
    /// This replica's push-webhook base URL as the other replicas reach it (`http://<pod IP>:9292`): published on
    /// the leader Lease while it leads, so that a standby forwards the deliveries it receives. `None`: not
    /// published, and a standby answers 503.
    pub webhook_advertise: Option<String>,
}

impl AgentConfig {
    /// The defaults of `redis-gitops agent` (in-cluster or kubeconfig, port 8080, Lease in `default`, 15s Lease,
    /// 30s REST timeout, no CA file, the system's resolver), without the webhook port (the command line sets it).
    pub fn new(cache_dir: PathBuf) -> Self {
        Self {
            kube: KubeSource::Infer,
            cache_dir,
            allow_namespaces: Vec::new(),
            watch: WatchScope::Cluster,
            health: HealthEndpoint::Address("0.0.0.0:8080".to_string()),
            lease_namespace: "default".to_string(),
            lease_duration: Duration::from_secs(15),
            enterprise_ca_file: None,
            resolver: None,
            rest_timeout: Duration::from_secs(30),
            instance: None,
            webhook: None,
            webhook_advertise: None,
        }
    }
}

/// How a run of the agent ended, when it started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentExit {
    /// Shutdown was asked for, and everything stopped (before or after the controllers started).
    Stopped,
    /// The leader Lease was lost: the fence refused further writes and the controllers were aborted. The process
    /// should exit non-zero so that it restarts as a standby.
    LeaseLost,
}

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The Redis Enterprise CA file could not be read.
    #[error("unable to read the Redis Enterprise CA file {path}: {source}")]
    ReadCaFile {
        /// The file.
        path: PathBuf,
        /// What reading it said.
        #[source]
        source: std::io::Error,
    },
    /// The health and metrics address could not be listened on.
    #[error("unable to listen on {address} for /healthz, /readyz and /metrics: {source}")]
    Listen {
        /// The address.
        address: String,
        /// What binding said.
        #[source]
        source: std::io::Error,
    },
    /// The webhook address could not be listened on.
    #[error("unable to listen on {address} for push webhooks: {source}")]
    ListenWebhook {
        /// The address.
        address: String,
        /// What binding said.
        #[source]
        source: std::io::Error,
    },
    /// The Lease duration is out of range.
    #[error("invalid lease duration: {0}")]
    LeaseDuration(#[source] LeaseTimingsError),
    /// No API server was found (neither an in-cluster account nor a kubeconfig).
    #[error("unable to find a Kubernetes API server (in-cluster account or kubeconfig): {0}")]
    FindApiServer(#[source] kube::config::InferConfigError),
    /// The Kubernetes clients could not be built from the configuration.
    #[error("unable to build a Kubernetes client from the in-cluster account or kubeconfig: {0}")]
    BuildClient(#[source] kube::Error),
    /// The Git cache directory could not be created.
    #[error("unable to create the Git cache directory {path}: {source}")]
    CacheDir {
        /// The directory.
        path: PathBuf,
        /// What creating it said.
        #[source]
        source: std::io::Error,
    },
}

impl AgentError {
    /// A stable name of the failure (the variant name), for logs and metrics.
    pub fn category(&self) -> &'static str {
        match self {
            Self::ReadCaFile { .. } => "ReadCaFile",
            Self::Listen { .. } => "Listen",
            Self::ListenWebhook { .. } => "ListenWebhook",
            Self::LeaseDuration(_) => "LeaseDuration",
            Self::FindApiServer(_) => "FindApiServer",
            Self::BuildClient(_) => "BuildClient",
            Self::CacheDir { .. } => "CacheDir",
        }
    }
}

/// Runs the agent until `shutdown` resolves or the leader Lease is lost: serves the health endpoints (`/readyz`
/// turns ready once the CRDs are established), waits for the Lease, then runs the three controllers as tasks.
///
/// Installs the Lease's write fence for the whole process (the Redis Enterprise REST client checks it), so call
/// it once per process.
pub async fn run(
    config: AgentConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<AgentExit, AgentError> {
    let AgentConfig {
        kube,
        cache_dir,
        allow_namespaces,
        watch,
        health,
        lease_namespace,
        lease_duration,
        enterprise_ca_file,
        resolver,
        rest_timeout,
        instance,
        webhook,
        webhook_advertise,
    } = config;
    // Every stage below stops on the same shutdown; `Shared` lets each of them hold a copy.
    let shutdown = shutdown.boxed().shared();
    let ca_pem = match &enterprise_ca_file {
        Some(path) => std::fs::read(path).map_err(|source| AgentError::ReadCaFile {
            path: path.clone(),
            source,
        })?,
        None => Vec::new(),
    };
    let enterprise = EnterpriseAccess {
        ca_pem,
        resolver,
        timeout: rest_timeout,
        retry: RetryPolicy::default(),
    };
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let listener = bind_health(health).await?;
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, "serving /healthz, /readyz and /metrics");
    }
    // The endpoints end with the run, whichever way it ends.
    let _health = AbortOnDrop(tokio::spawn(serve_health(
        listener,
        metrics.clone(),
        ready.clone(),
        shutdown.clone(),
    )));
    let webhook_listener = match webhook {
        Some(endpoint) => Some(bind_webhook(endpoint).await?),
        None => None,
    };
    let timings = LeaseTimings::for_lease(lease_duration).map_err(AgentError::LeaseDuration)?;
    // Two clients: the Lease's own, and the controllers', whose every write is refused unless this replica holds
    // the Lease within its renew deadline (the fence also guards the Redis Enterprise REST writes).
    let fence = WriteFence::new();
    install_process_fence(fence.clone());
    let config = match kube {
        KubeSource::Infer => kube::Config::infer().await.map_err(AgentError::FindApiServer)?,
        KubeSource::Config(config) => *config,
    };
    let lease_client = kube::client::ClientBuilder::try_from(config.clone())
        .map_err(AgentError::BuildClient)?
        .build();
    let client = kube::client::ClientBuilder::try_from(config)
        .map_err(AgentError::BuildClient)?
        .with_layer(&FenceLayer::new(fence.clone()))
        .build();
    // The receiver answers from the start (503 until this replica runs the GitSync controller) and hands pushes to
    // the controller through `triggers`.
    let triggers = SyncTriggers::default();
    let _webhook = match webhook_listener {
        Some(listener) => {
            if let Ok(address) = listener.local_addr() {
                tracing::info!(%address, "serving push webhooks on /hook/<status.webhookPath>");
            }
            let receiver = WebhookReceiver::with_leader_forwarding(
                client.clone(),
                triggers.clone(),
                metrics.clone(),
                lease_client.clone(),
                &lease_namespace,
                LEASE_NAME,
            );
            Some(AbortOnDrop(tokio::spawn(crate::webhook::serve(
                listener,
                receiver,
                shutdown.clone(),
            ))))
        }
        None => None,
    };
    std::fs::create_dir_all(&cache_dir).map_err(|source| AgentError::CacheDir {
        path: cache_dir.clone(),
        source,
    })?;
    tokio::select! {
        () = crate::sync::wait_for_crds(&client, &watch) => {}
        () = shutdown.clone() => return Ok(AgentExit::Stopped),
    }
    ready.store(true, Ordering::Relaxed);
    let holder = instance.clone().unwrap_or_else(default_holder);
    let lease = LeaderLease::new(lease_client, &lease_namespace, LEASE_NAME, &holder, timings, fence)
        .with_webhook_endpoint(webhook_advertise);
    tokio::select! {
        () = lease.acquire() => {}
        () = shutdown.clone() => {
            tracing::info!("agent stopped");
            return Ok(AgentExit::Stopped);
        }
    }
    let namespaces = scoped_namespaces(crate::sync::settings::allowed_namespaces(&allow_namespaces), &watch);
    let controllers = ControllerContext {
        client: client.clone(),
        enterprise,
        metrics: metrics.clone(),
        instance: instance.clone(),
        clients: Default::default(),
    };
    let mut context = SyncContext::new(client, cache_dir, namespaces, instance, metrics);
    context.triggers = triggers;
    let context = Arc::new(context);
    tracing::info!(
        namespaces = %match &watch {
            WatchScope::Cluster => "*".to_string(),
            WatchScope::Namespaces(list) => list.join(","),
        },
        "agent started: GitSync, cluster, database and backup controllers running"
    );
    // The controllers run as tasks so that losing the lease can abort them at once, wherever they are; one set
    // per watched namespace in a namespaced install.
    let mut running = tokio::task::JoinSet::new();
    for namespace in watch.watches() {
        running.spawn(crate::sync::controller::run_in(
            context.clone(),
            namespace.clone(),
            shutdown.clone(),
        ));
        running.spawn(crate::controllers::cluster::run_in(
            controllers.clone(),
            Default::default(),
            namespace.clone(),
            shutdown.clone(),
        ));
        running.spawn(crate::controllers::database::run_in(
            controllers.clone(),
            Default::default(),
            namespace.clone(),
            shutdown.clone(),
        ));
        running.spawn(crate::backup::run_in(
            controllers.clone(),
            Default::default(),
            namespace,
            shutdown.clone(),
        ));
    }
    let all_stopped = async { while running.join_next().await.is_some() {} };
    tokio::select! {
        () = all_stopped => {
            tracing::info!("agent stopped");
            Ok(AgentExit::Stopped)
        }
        () = lease.keep() => {
            // Never write without the lease: the fence already refuses every write; stop the controllers before
            // a standby can take over (a third of a lease later at the earliest), and let the Deployment restart
            // this replica as a standby.
            running.abort_all();
            while running.join_next().await.is_some() {}
            tracing::error!("agent stopped: the leader lease was lost; controllers stopped");
            Ok(AgentExit::LeaseLost)
        }
    }
}

/// The namespaces GitSyncs may write to besides their own, within what the agent watches: in a namespaced install
/// `*` means the watched namespaces, and a namespace outside them is dropped (the agent holds no rights there, so
/// its objects are refused with their location instead of failing with 403 at apply).
fn scoped_namespaces(allowed: BTreeSet<String>, watch: &WatchScope) -> BTreeSet<String> {
    match watch {
        WatchScope::Cluster => allowed,
        WatchScope::Namespaces(list) if allowed.contains(crate::sync::plan::ANY_NAMESPACE) => {
            list.iter().cloned().collect()
        }
        WatchScope::Namespaces(_) => allowed
            .into_iter()
            .filter(|namespace| watch.includes(namespace))
            .collect(),
    }
}

/// Listens where `health` says.
async fn bind_health(health: HealthEndpoint) -> Result<tokio::net::TcpListener, AgentError> {
    match health {
        HealthEndpoint::Address(address) => tokio::net::TcpListener::bind(&address)
            .await
            .map_err(|source| AgentError::Listen { address, source }),
        HealthEndpoint::Listener(listener) => {
            let address = listener.local_addr().map_or_else(
                |_| "the given listener".to_string(),
                |address: SocketAddr| address.to_string(),
            );
            listener
                .set_nonblocking(true)
                .and_then(|()| tokio::net::TcpListener::from_std(listener))
                .map_err(|source| AgentError::Listen { address, source })
        }
    }
}

/// Listens where `webhook` says; an address without a host (`:9292`) listens on every interface.
async fn bind_webhook(webhook: HealthEndpoint) -> Result<tokio::net::TcpListener, AgentError> {
    let endpoint = match webhook {
        HealthEndpoint::Address(address) if address.starts_with(':') => {
            HealthEndpoint::Address(format!("0.0.0.0{address}"))
        }
        other => other,
    };
    bind_health(endpoint).await.map_err(|error| match error {
        AgentError::Listen { address, source } => AgentError::ListenWebhook { address, source },
        other => other,
    })
}

/// Aborts a task when dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The Lease holder of a replica without a pod name: `<hostname>-<pid>`.
fn default_holder() -> String {
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    format!("{}-{}", host.trim(), std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespaced_install_allows_only_the_namespaces_it_watches() {
        let allowed = |names: &[&str]| names.iter().map(|name| name.to_string()).collect::<BTreeSet<_>>();
        let watch = WatchScope::from_list(&["team-a,team-b".to_string()]);
        assert_eq!(
            scoped_namespaces(allowed(&["*"]), &watch),
            allowed(&["team-a", "team-b"])
        );
        assert_eq!(
            scoped_namespaces(allowed(&["team-b", "other"]), &watch),
            allowed(&["team-b"])
        );
        assert_eq!(
            scoped_namespaces(allowed(&["*"]), &WatchScope::Cluster),
            allowed(&["*"])
        );
    }
}
