//! The Redis Enterprise REST API emulator: bootstrap, nodes, bdbs backed by real redis-server processes.
//!
//! One [`EnterpriseEmulator`] hosts any number of clusters (one per REC, keyed by [`ClusterKey`]).
//! Every node (pod) gets its own loopback address and serves the REST API over HTTPS on the real
//! port 9443, as does each cluster's API service (`<rec>.<ns>.svc`), whose address also carries the
//! databases on their real ports. The in-cluster names map to those addresses in a [`NameTable`];
//! [`SandboxResolver`] serves it to reqwest, which is how the agent reaches the emulator.
//!
//! Wiring it into the sandbox: [`EnterpriseEmulator::start`] once; [`EnterpriseEmulator::add_node`]
//! when a REC pod appears (report the returned IP as the pod IP) and
//! [`EnterpriseEmulator::remove_node`] when it goes; give the agent [`EnterpriseEmulator::resolver`]
//! and [`EnterpriseEmulator::ca_pem`] (or [`EnterpriseEmulator::client_tls_config`]); tests drive
//! [`EnterpriseEmulator::faults`]. Requests it does not implement answer 501 `not_implemented`
//! naming the method and path (or the field).
//!
//! Behaviour chosen where the documentation is silent:
//! - a removed pod leaves its node in the cluster as `down`; adding the same pod again brings the
//!   node back (new address, `active`, bootstrap `completed`), as an RS pod with its persistent
//!   volume rejoins by itself;
//! - a database whose process dies gets bdb status `recovery` and shard status `inactive`/`down`,
//!   and is restarted after [`EmulatorConfig::restart_dead_databases_after`] (data kept only as its
//!   persistence allows, as in RS without replication);
//! - one redis-server process serves a database whatever its `shards_count` and `replication`
//!   (recorded and returned, with one master shard reported);
//! - quorum is not emulated: nodes report `down`, but the API keeps answering, and pods that all
//!   come back rejoin without `recover_cluster`.
//!
//! Not implemented (answered with 501 `not_implemented` naming what was asked): database TLS,
//! memcached, modules in databases, Replica Of, scheduled backups, `roles_permissions`,
//! `default_user: false`, port changes, gzip RDB imports, export/import locations other than
//! `mount_point` and `file://` URLs, `recover_cluster`, `/v2/bdbs` recovery plans, and every path
//! not routed (roles, ACLs, users other than `/v1/users/password`, CRDBs, stats, ...).

#![warn(missing_docs)]

mod actions;
mod backup;
mod bdb;
mod bootstrap;
mod cluster;
mod error;
mod faults;
mod network;
mod operations;
mod process;
mod requests;
mod resolver;
mod resp;
mod routes;
mod server;
mod tls;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use actions::{Action, ActionKind, ActionStatus};
pub use bdb::{EVICTION_POLICIES, MODULES, REDIS_VERSIONS};
pub use error::{ApiError, EmulatorError};
pub use faults::{FaultAction, Faults};
pub use network::NameTable;
pub use process::ProcessError;
pub use requests::{RecordedRequest, RequestLog};
pub use resolver::{ResolveError, SandboxResolver};
pub use resp::RespError;
pub use tls::CertificateAuthority;

use cluster::{BootstrapStatus, Cluster, Node, Shared};
use operations::Ops;
use routes::{Endpoint, Target};

/// The REST API port of every node and of the API service.
pub const API_PORT: u16 = 9443;

/// Identifies an emulated cluster: the REC's namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClusterKey {
    /// The REC's namespace.
    pub namespace: String,
    /// The REC's name.
    pub name: String,
}

impl ClusterKey {
    /// The key of REC `name` in `namespace`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// How the emulator behaves.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// The redis-server program (Debian package `redis-server`).
    pub redis_server: PathBuf,
    /// Where CA, database directories and exports go; None: a new temporary directory, removed on
    /// shutdown.
    pub work_dir: Option<PathBuf>,
    /// The pause between the steps of async operations (bootstrap takes two, actions two).
    pub step_delay: Duration,
    /// How long after its death a database process is restarted; None: never.
    pub restart_dead_databases_after: Option<Duration>,
    /// The RS version nodes report (`software_version`).
    pub software_version: String,
    /// The memory each node reports (`total_memory`, bytes).
    pub node_memory: u64,
    /// How often the periodic backup trigger wakes up to start the backups that are due (RS: every 5 minutes;
    /// tests and the sandbox make it shorter).
    pub backup_trigger_interval: Duration,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            redis_server: PathBuf::from("redis-server"),
            work_dir: None,
            step_delay: Duration::from_millis(100),
            restart_dead_databases_after: Some(Duration::from_secs(1)),
            software_version: "7.22.2-43".to_string(),
            node_memory: 16 * 1024 * 1024 * 1024,
            backup_trigger_interval: Duration::from_secs(300),
        }
    }
}

/// A node that [`EnterpriseEmulator::add_node`] started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmulatedNode {
    /// The pod name.
    pub pod: String,
    /// Its loopback address (the pod IP to report in the Pod's status).
    pub ip: IpAddr,
    /// The DNS names that resolve to it.
    pub names: Vec<String>,
}

/// A cluster that the emulator hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmulatedCluster {
    /// Its key.
    pub key: ClusterKey,
    /// The API service's and the databases' loopback address.
    pub service_ip: IpAddr,
    /// The API service's DNS name (`<rec>.<ns>.svc`).
    pub service_name: String,
}

struct ClusterHandle {
    cluster: Arc<Cluster>,
    ops: Ops,
}

/// The emulator: clusters, nodes, databases; everything stops on [`Self::shutdown`] or drop.
pub struct EnterpriseEmulator {
    shared: Arc<Shared>,
    clusters: Mutex<BTreeMap<ClusterKey, ClusterHandle>>,
    owns_work_dir: bool,
}

impl std::fmt::Debug for EnterpriseEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnterpriseEmulator")
            .field("work_dir", &self.shared.work_dir)
            .finish_non_exhaustive()
    }
}

/// Listeners and monitors are tokio tasks: refuse (instead of panicking) outside a runtime.
fn require_runtime(what: &str) -> Result<(), EmulatorError> {
    tokio::runtime::Handle::try_current()
        .map(|_| ())
        .map_err(|_| EmulatorError::NoRuntime { what: what.to_string() })
}

fn random_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.finish()
}

impl EnterpriseEmulator {
    /// Checks that redis-server runs, prepares the work directory and generates the CA.
    pub fn start(config: EmulatorConfig) -> Result<Self, EmulatorError> {
        let redis_version =
            process::installed_version(&config.redis_server).map_err(|source| EmulatorError::RedisServer { source })?;
        let (work_dir, owns_work_dir) = match &config.work_dir {
            Some(dir) => (dir.clone(), false),
            None => (
                std::env::temp_dir().join(format!(
                    "redis-gitops-emulator-{}-{:x}",
                    std::process::id(),
                    random_suffix()
                )),
                true,
            ),
        };
        std::fs::create_dir_all(&work_dir).map_err(|source| EmulatorError::WorkDir {
            path: work_dir.clone(),
            source,
        })?;
        let ca = CertificateAuthority::generate(&work_dir)?;
        Ok(Self {
            shared: Arc::new(Shared::new(config, work_dir, ca, redis_version)),
            clusters: Mutex::new(BTreeMap::new()),
            owns_work_dir,
        })
    }

    fn clusters(&self) -> std::sync::MutexGuard<'_, BTreeMap<ClusterKey, ClusterHandle>> {
        self.clusters.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn handle(&self, key: &ClusterKey) -> Result<(Arc<Cluster>, Ops), EmulatorError> {
        self.clusters()
            .get(key)
            .map(|handle| (handle.cluster.clone(), handle.ops.clone()))
            .ok_or_else(|| EmulatorError::UnknownCluster {
                namespace: key.namespace.clone(),
                name: key.name.clone(),
            })
    }

    fn listen(
        &self,
        ops: &Ops,
        target: Target,
        names: &[String],
        what: &str,
    ) -> Result<(IpAddr, tokio::task::AbortHandle), EmulatorError> {
        let listener = self.shared.addresses.bind_fresh(API_PORT, what)?;
        let ip = listener
            .local_addr()
            .map_err(|source| EmulatorError::Bind {
                addr: std::net::SocketAddr::from(([127, 0, 0, 1], API_PORT)),
                what: what.to_string(),
                source,
            })?
            .ip();
        let mut cert_names = names.to_vec();
        cert_names.extend(
            names
                .iter()
                .filter(|name| name.ends_with(".svc"))
                .map(|name| format!("{name}.cluster.local")),
        );
        let tls = self.shared.ca.server_config(what, &cert_names, &[ip])?;
        let endpoint = Arc::new(Endpoint {
            ops: ops.clone(),
            target,
        });
        let task = server::serve(listener, tls, routes::router(endpoint), what)?;
        Ok((ip, task.abort_handle()))
    }

    /// Starts hosting the cluster of REC `key`: its API service listens on `<rec>.<ns>.svc:9443`
    /// (answering 503 until a node has joined). Must run inside a tokio runtime.
    pub fn add_cluster(&self, key: &ClusterKey) -> Result<EmulatedCluster, EmulatorError> {
        require_runtime(&format!("add cluster {key}"))?;
        if self.clusters().contains_key(key) {
            return Err(EmulatorError::ClusterExists {
                namespace: key.namespace.clone(),
                name: key.name.clone(),
            });
        }
        let service_name = format!("{}.{}.svc", key.name, key.namespace);
        let what = format!("cluster {key} API service");
        // The service address is known only once bound; bind first, then build the cluster.
        let listener = self.shared.addresses.bind_fresh(API_PORT, &what)?;
        let service_ip = listener
            .local_addr()
            .map_err(|source| EmulatorError::Bind {
                addr: std::net::SocketAddr::from(([127, 0, 0, 1], API_PORT)),
                what: what.clone(),
                source,
            })?
            .ip();
        let dir = self.shared.work_dir.join(format!("{}-{}", key.namespace, key.name));
        std::fs::create_dir_all(&dir).map_err(|source| EmulatorError::WorkDir {
            path: dir.clone(),
            source,
        })?;
        let cluster = Arc::new(Cluster::new(key.clone(), service_ip, dir));
        let ops = Ops {
            shared: self.shared.clone(),
            cluster: cluster.clone(),
        };
        let names = vec![service_name.clone()];
        let mut cert_names = names.clone();
        cert_names.push(format!("{service_name}.cluster.local"));
        let tls = self.shared.ca.server_config(&what, &cert_names, &[service_ip])?;
        let endpoint = Arc::new(Endpoint {
            ops: ops.clone(),
            target: Target::Service,
        });
        let service_task = server::serve(listener, tls, routes::router(endpoint), &what)?;
        let monitor_task = tokio::spawn(ops.clone().monitor());
        let backup_task = tokio::spawn(backup::trigger(ops.clone()));
        {
            let mut tasks = cluster.tasks.lock().unwrap_or_else(|p| p.into_inner());
            tasks.push(service_task.abort_handle());
            tasks.push(monitor_task.abort_handle());
            tasks.push(backup_task.abort_handle());
        }
        for name in &names {
            self.shared.names.insert(name, service_ip)?;
        }
        self.clusters().insert(key.clone(), ClusterHandle { cluster, ops });
        Ok(EmulatedCluster {
            key: key.clone(),
            service_ip,
            service_name,
        })
    }

    /// Starts the RS node of pod `pod` (e.g. `rec-0`) on a fresh loopback address, serving
    /// `<pod>.<rec>-headless.<ns>.svc:9443`. The cluster is added first if needed. A new pod starts
    /// `idle` (bootstrap it); a pod whose node had joined and was removed comes back joined.
    pub fn add_node(&self, key: &ClusterKey, pod: &str) -> Result<EmulatedNode, EmulatorError> {
        require_runtime(&format!("add node {pod} to cluster {key}"))?;
        if !self.clusters().contains_key(key) {
            self.add_cluster(key)?;
        }
        let (cluster, ops) = self.handle(key)?;
        if cluster.lock().nodes.get(pod).is_some_and(|node| node.running) {
            return Err(EmulatorError::NodeExists {
                cluster: key.to_string(),
                pod: pod.to_string(),
            });
        }
        let names = cluster.pod_names(pod);
        let mut cert_names = names.clone();
        cert_names.push(cluster.service_name());
        let what = format!("node {pod} of cluster {key}");
        let (ip, listener) = self.listen(&ops, Target::Node(pod.to_string()), &cert_names, &what)?;
        {
            let mut state = cluster.lock();
            match state.nodes.get_mut(pod) {
                Some(node) => {
                    node.ip = ip;
                    node.addr = ip.to_string();
                    node.running = true;
                    node.listener = Some(listener);
                    if node.uid.is_none() {
                        node.bootstrap = BootstrapStatus::idle();
                    } else {
                        // A member coming back is `provisioning` for a moment, as RS nodes are
                        // while their services start, then `active`.
                        node.starting = true;
                        let (cluster, shared, pod) = (cluster.clone(), self.shared.clone(), pod.to_string());
                        let starting = cluster.clone();
                        starting.spawn(async move {
                            cluster::step(&shared).await;
                            cluster::step(&shared).await;
                            if let Some(node) = cluster.lock().nodes.get_mut(&pod) {
                                node.starting = false;
                            }
                        });
                    }
                }
                None => {
                    state.nodes.insert(
                        pod.to_string(),
                        Node {
                            pod: pod.to_string(),
                            ip,
                            addr: ip.to_string(),
                            uid: None,
                            running: true,
                            starting: false,
                            listener: Some(listener),
                            bootstrap: BootstrapStatus::idle(),
                        },
                    );
                }
            }
        }
        for name in &names {
            self.shared.names.insert(name, ip)?;
        }
        Ok(EmulatedNode {
            pod: pod.to_string(),
            ip,
            names,
        })
    }

    /// The cluster of REC `key`, if the emulator hosts it.
    pub fn cluster(&self, key: &ClusterKey) -> Option<EmulatedCluster> {
        self.clusters().get(key).map(|handle| EmulatedCluster {
            key: key.clone(),
            service_ip: handle.cluster.service_ip,
            service_name: handle.cluster.service_name(),
        })
    }

    /// The node of pod `pod`, if it runs.
    pub fn node(&self, key: &ClusterKey, pod: &str) -> Option<EmulatedNode> {
        let clusters = self.clusters();
        let cluster = &clusters.get(key)?.cluster;
        let state = cluster.lock();
        let node = state.nodes.get(pod).filter(|node| node.running)?;
        Some(EmulatedNode {
            pod: pod.to_string(),
            ip: node.ip,
            names: cluster.pod_names(pod),
        })
    }

    /// Stops the node of pod `pod` (the pod is gone): its address stops answering; a joined node
    /// stays in the cluster as `down`, a node that never joined is forgotten.
    pub fn remove_node(&self, key: &ClusterKey, pod: &str) -> Result<(), EmulatorError> {
        let (cluster, _) = self.handle(key)?;
        let mut state = cluster.lock();
        let unknown = || EmulatorError::UnknownNode {
            cluster: key.to_string(),
            pod: pod.to_string(),
        };
        let node = state.nodes.get_mut(pod).ok_or_else(unknown)?;
        if !node.running {
            return Err(unknown());
        }
        if let Some(listener) = node.listener.take() {
            listener.abort();
        }
        node.running = false;
        if node.uid.is_none() {
            state.nodes.remove(pod);
        }
        for name in cluster.pod_names(pod) {
            self.shared.names.remove(&name);
        }
        Ok(())
    }

    /// Stops a whole cluster: its listeners and every database process.
    pub fn remove_cluster(&self, key: &ClusterKey) -> Result<(), EmulatorError> {
        let handle = self
            .clusters()
            .remove(key)
            .ok_or_else(|| EmulatorError::UnknownCluster {
                namespace: key.namespace.clone(),
                name: key.name.clone(),
            })?;
        self.stop_cluster(&handle);
        Ok(())
    }

    fn stop_cluster(&self, handle: &ClusterHandle) {
        let cluster = &handle.cluster;
        for task in cluster.tasks.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            task.abort();
        }
        let names: Vec<String> = {
            let mut state = cluster.lock();
            let mut names = Vec::new();
            for node in state.nodes.values_mut() {
                if let Some(listener) = node.listener.take() {
                    listener.abort();
                }
                node.running = false;
                names.extend(cluster.pod_names(&node.pod));
            }
            for bdb in state.bdbs.values() {
                names.extend(cluster.database_names(&bdb.config.name));
                if let Some(fqdn) = &state.fqdn {
                    names.push(format!("redis-{}.{fqdn}", bdb.port));
                }
            }
            names.push(cluster.service_name());
            names
        };
        for name in names {
            self.shared.names.remove(&name);
        }
        handle.ops.kill_all();
    }

    /// Stops everything: listeners, monitors and every redis-server process; removes the
    /// temporary work directory. Idempotent.
    pub fn shutdown(&self) {
        let handles: Vec<ClusterHandle> = {
            let mut clusters = self.clusters();
            std::mem::take(&mut *clusters).into_values().collect()
        };
        for handle in &handles {
            self.stop_cluster(handle);
        }
        if self.owns_work_dir {
            let _ = std::fs::remove_dir_all(&self.shared.work_dir);
        }
    }

    /// The CA certificate (PEM) that signed every node's certificate.
    pub fn ca_pem(&self) -> &str {
        self.shared.ca.pem()
    }

    /// Where the CA certificate (PEM) is written.
    pub fn ca_path(&self) -> &Path {
        self.shared.ca.pem_path()
    }

    /// A rustls client config trusting only the emulator's CA, for reqwest's
    /// `tls_backend_preconfigured`.
    pub fn client_tls_config(&self) -> Result<rustls::ClientConfig, EmulatorError> {
        self.shared.ca.client_config()
    }

    /// The name table (name → loopback IP) the sandbox's resolver serves.
    pub fn names(&self) -> NameTable {
        self.shared.names.clone()
    }

    /// A reqwest resolver for the sandbox's names (issue 3 §4).
    pub fn resolver(&self) -> SandboxResolver {
        SandboxResolver::new(self.shared.names.clone())
    }

    /// Serves `name` at the address of a cluster's databases (e.g. a database Service in another
    /// namespace than the REC).
    pub fn register_database_name(&self, key: &ClusterKey, name: &str) -> Result<(), EmulatorError> {
        let (cluster, _) = self.handle(key)?;
        self.shared.names.insert(name, cluster.service_ip)
    }

    /// The fault-injection handle.
    pub fn faults(&self) -> Faults {
        self.shared.faults.clone()
    }

    /// Every REST request received on any listener since the start or the last [`RequestLog::clear`]
    /// (secrets redacted), for tests that count writes.
    pub fn requests(&self) -> RequestLog {
        self.shared.requests.clone()
    }

    /// Fault injection: kills (SIGKILL) the redis-server of database `uid`, as a crash would.
    /// Returns the killed pid.
    pub fn kill_database_process(&self, key: &ClusterKey, uid: u64) -> Result<u32, EmulatorError> {
        let (_, ops) = self.handle(key)?;
        ops.kill_process(uid)
    }

    /// The pids of every running redis-server the emulator owns.
    pub fn database_pids(&self) -> Vec<u32> {
        let clusters = self.clusters();
        let mut pids = Vec::new();
        for handle in clusters.values() {
            let state = handle.cluster.lock();
            pids.extend(
                state
                    .bdbs
                    .values()
                    .filter_map(|bdb| bdb.process.as_ref().map(process::RedisProcess::pid)),
            );
        }
        pids
    }

    /// The emulator's work directory.
    pub fn work_dir(&self) -> &Path {
        &self.shared.work_dir
    }

    /// The version of the installed redis-server that runs the databases.
    pub fn redis_version(&self) -> &str {
        &self.shared.redis_version
    }
}

impl Drop for EnterpriseEmulator {
    fn drop(&mut self) {
        self.shutdown();
    }
}
