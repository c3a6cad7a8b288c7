//! The state of one emulated Redis Enterprise cluster (one REC): its nodes (one per pod), the
//! cluster identity set by bootstrap, its databases and their processes, and its actions; plus the
//! JSON views the REST API returns for them. The state sits behind a std mutex that is never held
//! across an await: long work (processes, files) runs outside it and re-locks to record results.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Map, Value, json};
use tokio::task::AbortHandle;

use super::actions::{Action, ActionKind, iso8601};
use super::bdb::{BdbConfig, ClusterFacts};
use super::faults::Faults;
use super::network::{AddressAllocator, NameTable};
use super::process::{RedisProcess, RedisSettings};
use super::requests::RequestLog;
use super::tls::CertificateAuthority;
use super::{ClusterKey, EmulatorConfig};

/// What every cluster of one emulator shares.
pub(crate) struct Shared {
    pub config: EmulatorConfig,
    pub work_dir: PathBuf,
    pub ca: CertificateAuthority,
    pub names: NameTable,
    pub addresses: AddressAllocator,
    pub faults: Faults,
    /// Every request received, for tests.
    pub requests: RequestLog,
    /// The installed redis-server's version (bdb `version`).
    pub redis_version: String,
    next_action: AtomicU64,
}

impl Shared {
    pub fn new(config: EmulatorConfig, work_dir: PathBuf, ca: CertificateAuthority, redis_version: String) -> Self {
        Self {
            config,
            work_dir,
            ca,
            names: NameTable::default(),
            addresses: AddressAllocator::default(),
            faults: Faults::default(),
            requests: RequestLog::default(),
            redis_version,
            next_action: AtomicU64::new(1),
        }
    }

    /// A new action uid (RS uses UUIDs; any unique string is valid).
    pub fn next_action_uid(&self) -> String {
        let n = self.next_action.fetch_add(1, Ordering::Relaxed);
        format!("{:08x}-0000-4000-8000-{:012x}", std::process::id(), n)
    }
}

/// The bootstrap status of one node (`GET /v1/bootstrap` → `bootstrap_status`).
#[derive(Debug, Clone)]
pub(crate) struct BootstrapStatus {
    pub state: &'static str,
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    pub error_code: Option<String>,
    pub error_details: Option<String>,
}

impl BootstrapStatus {
    pub fn idle() -> Self {
        Self {
            state: "idle",
            start_time: None,
            end_time: None,
            error_code: None,
            error_details: None,
        }
    }

    pub fn to_json(&self) -> Value {
        let mut value = json!({ "state": self.state });
        for (key, field) in [
            ("start_time", &self.start_time),
            ("end_time", &self.end_time),
            ("error_code", &self.error_code),
            ("error_details", &self.error_details),
        ] {
            if let Some(text) = field {
                value[key] = json!(text);
            }
        }
        value
    }
}

/// One node: the RS instance in one pod.
pub(crate) struct Node {
    pub pod: String,
    pub ip: IpAddr,
    /// The address the node announced (`node.identity.addr`), else its IP.
    pub addr: String,
    /// Set once the node belongs to the cluster.
    pub uid: Option<u64>,
    /// Whether the pod runs (a removed pod of a joined node stays, `down`).
    pub running: bool,
    /// A member whose pod came back and is still starting its services (`provisioning`).
    pub starting: bool,
    pub listener: Option<AbortHandle>,
    pub bootstrap: BootstrapStatus,
}

impl Node {
    /// A node that belongs to the cluster and runs.
    pub fn joined(&self) -> bool {
        self.uid.is_some() && self.running && self.bootstrap.state == "completed"
    }

    pub fn status(&self) -> &'static str {
        if !self.running {
            "down"
        } else if self.starting {
            "provisioning"
        } else if self.joined() {
            "active"
        } else {
            "provisioning"
        }
    }
}

/// Export or import progress on a bdb.
#[derive(Debug, Clone, Default)]
pub(crate) struct TransferStatus {
    pub status: Option<&'static str>,
    pub progress: f64,
    pub failure_reason: Option<String>,
}

impl TransferStatus {
    /// Under way, as `status` (`exporting`, `importing`).
    pub fn running(status: &'static str) -> Self {
        Self {
            status: Some(status),
            progress: 0.0,
            failure_reason: None,
        }
    }

    /// The outcome of a finished transfer: `succeeded` at 100%, or `failed` with its reason.
    pub fn finished<T, D>(outcome: &Result<T, (&str, D)>) -> Self {
        match outcome {
            Ok(_) => Self {
                status: Some("succeeded"),
                progress: 100.0,
                failure_reason: None,
            },
            Err((reason, _)) => Self {
                status: Some("failed"),
                progress: 0.0,
                failure_reason: Some(reason.to_string()),
            },
        }
    }
}

/// One database.
pub(crate) struct Bdb {
    pub uid: u64,
    pub config: BdbConfig,
    /// The port in use (assigned when `config.port` is None).
    pub port: u16,
    pub dir: PathBuf,
    pub status: &'static str,
    pub created_time: String,
    pub last_changed_time: String,
    pub action_uid: Option<String>,
    /// The action that makes the bdb busy (409 `busy` for other changes).
    pub busy: Option<String>,
    pub process: Option<RedisProcess>,
    /// When the process was found dead (for the automatic restart).
    pub down_since: Option<Instant>,
    pub export: TransferStatus,
    pub import: TransferStatus,
    /// The cluster's periodic backup of this database (`backup_status`, `last_backup_time`, ...).
    pub backup: super::backup::BackupState,
    /// The alert settings (`/v1/bdbs/alerts/{uid}`), recorded: the sandbox sends no alerts.
    pub alerts: Map<String, Value>,
}

impl Bdb {
    /// The settings its redis-server runs with.
    pub fn settings(&self, ip: IpAddr) -> RedisSettings {
        RedisSettings {
            ip,
            port: self.port,
            passwords: self.config.passwords.clone(),
            max_memory: self.config.memory_size,
            eviction_policy: self.config.eviction_policy.clone(),
            persistence: self.config.persistence(),
            dir: self.dir.clone(),
        }
    }
}

/// Everything that changes in a cluster.
pub(crate) struct ClusterState {
    /// The cluster FQDN (`cluster.name` of create_cluster); None until created.
    pub fqdn: Option<String>,
    pub credentials: Option<Credentials>,
    /// The object of `PUT /v1/cluster/policy` (recorded).
    pub policy: Map<String, Value>,
    pub created_time: Option<String>,
    /// Fields set with `PUT /v1/cluster`.
    pub settings: Map<String, Value>,
    pub license: Option<String>,
    pub nodes: BTreeMap<String, Node>,
    pub next_node_uid: u64,
    pub bdbs: BTreeMap<u64, Bdb>,
    pub next_bdb_uid: u64,
    pub actions: BTreeMap<String, Action>,
}

/// The cluster admin user and its passwords (RS lets a user hold several during a rotation).
#[derive(Debug, Clone)]
pub(crate) struct Credentials {
    pub username: String,
    pub passwords: Vec<String>,
}

impl Credentials {
    pub fn accepts(&self, username: &str, password: &str) -> bool {
        self.username == username && self.passwords.iter().any(|known| known == password)
    }
}

/// One emulated cluster.
pub(crate) struct Cluster {
    pub key: ClusterKey,
    /// The address of `<rec>.<ns>.svc` (API service and databases).
    pub service_ip: IpAddr,
    pub dir: PathBuf,
    state: Mutex<ClusterState>,
    pub tasks: Mutex<Vec<AbortHandle>>,
}

/// How many finished actions are kept for `GET /v1/actions`.
const KEPT_ACTIONS: usize = 1000;

impl Cluster {
    pub fn new(key: ClusterKey, service_ip: IpAddr, dir: PathBuf) -> Self {
        Self {
            key,
            service_ip,
            dir,
            state: Mutex::new(ClusterState {
                fqdn: None,
                credentials: None,
                policy: Map::new(),
                created_time: None,
                settings: Map::new(),
                license: None,
                nodes: BTreeMap::new(),
                next_node_uid: 1,
                bdbs: BTreeMap::new(),
                next_bdb_uid: 1,
                actions: BTreeMap::new(),
            }),
            tasks: Mutex::new(Vec::new()),
        }
    }

    /// Spawns a background task that [`super::EnterpriseEmulator::shutdown`] aborts with the
    /// cluster (so no action can start a process after the shutdown).
    pub fn spawn<F>(&self, future: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let handle = tokio::spawn(future).abort_handle();
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        tasks.retain(|task| !task.is_finished());
        tasks.push(handle);
    }

    pub fn lock(&self) -> MutexGuard<'_, ClusterState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The `<rec>.<ns>.svc` name.
    pub fn service_name(&self) -> String {
        format!("{}.{}.svc", self.key.name, self.key.namespace)
    }

    /// The DNS names of a pod's node.
    pub fn pod_names(&self, pod: &str) -> Vec<String> {
        vec![format!("{pod}.{}-headless.{}.svc", self.key.name, self.key.namespace)]
    }

    /// The DNS names of a database's services in the REC namespace.
    pub fn database_names(&self, db: &str) -> Vec<String> {
        vec![
            format!("{db}.{}.svc", self.key.namespace),
            format!("{db}-headless.{}.svc", self.key.namespace),
        ]
    }
}

impl ClusterState {
    pub fn facts(&self) -> ClusterFacts {
        ClusterFacts {
            active_nodes: self.nodes.values().filter(|node| node.joined()).count(),
        }
    }

    /// The uid of the node that hosts every shard: the lowest running member.
    pub fn master_node_uid(&self) -> Option<u64> {
        self.nodes
            .values()
            .filter(|node| node.joined())
            .filter_map(|node| node.uid)
            .min()
    }

    /// Records a new action and returns its uid.
    pub fn add_action(&mut self, action: Action) -> String {
        let uid = action.uid.clone();
        self.actions.insert(uid.clone(), action);
        if self.actions.len() > KEPT_ACTIONS {
            let finished: Vec<String> = self
                .actions
                .values()
                .filter(|a| a.status.as_str() == "completed" || a.status.as_str() == "failed")
                .map(|a| a.uid.clone())
                .take(self.actions.len() - KEPT_ACTIONS)
                .collect();
            for uid in finished {
                self.actions.remove(&uid);
            }
        }
        uid
    }

    /// Starts an action on a bdb: marks it busy and returns the action uid.
    pub fn start_bdb_action(&mut self, shared: &Shared, bdb_uid: u64, name: &str, kind: ActionKind) -> String {
        let mut action = Action::new(shared.next_action_uid(), name, format!("bdb:{bdb_uid}"), kind);
        action.node_uid = self.master_node_uid();
        let uid = self.add_action(action);
        if let Some(bdb) = self.bdbs.get_mut(&bdb_uid) {
            bdb.busy = Some(uid.clone());
            if kind == ActionKind::StateMachine {
                bdb.action_uid = Some(uid.clone());
            }
        }
        uid
    }

    /// The `GET /v1/cluster` view.
    pub fn cluster_json(&self) -> Value {
        let mut value = json!({
            "name": self.fqdn.clone().unwrap_or_default(),
            "created_time": self.created_time.clone().unwrap_or_default(),
            "cm_port": 8443,
            "cnm_http_port": 8080,
            "cnm_https_port": 9443,
            "rack_aware": false,
            "upgrade_mode": false,
            "email_alerts": false,
        });
        for (key, field) in &self.settings {
            value[key] = field.clone();
        }
        value
    }

    /// The `GET /v1/nodes/{uid}` view.
    pub fn node_json(&self, node: &Node, config: &EmulatorConfig) -> Value {
        let shard_count = if node.uid.is_some() && node.uid == self.master_node_uid() {
            self.bdbs.values().filter(|bdb| bdb.process.is_some()).count()
        } else {
            0
        };
        json!({
            "uid": node.uid.unwrap_or(0),
            "addr": node.addr,
            "external_addr": [node.ip.to_string()],
            "status": node.status(),
            "software_version": config.software_version,
            "total_memory": config.node_memory,
            "cores": 2,
            "shard_count": shard_count,
            "rack_id": "",
            "accept_servers": true,
            "os_version": "sandbox emulator",
            "ephemeral_storage_path": "/var/opt/redislabs/tmp",
            "persistent_storage_path": "/var/opt/redislabs/persist",
        })
    }

    /// The bdb view (`GET /v1/bdbs/{uid}`).
    pub fn bdb_json(&self, bdb: &Bdb, service_ip: IpAddr, version: &str) -> Value {
        let mut map = bdb.config.to_json();
        let fqdn = self.fqdn.clone().unwrap_or_default();
        let shard_uid = bdb.uid.to_string();
        let fields = json!({
            "uid": bdb.uid,
            "port": bdb.port,
            "status": bdb.status,
            "version": version,
            "created_time": bdb.created_time,
            "last_changed_time": bdb.last_changed_time,
            "endpoints": [{
                "uid": format!("{}:1", bdb.uid),
                "dns_name": format!("redis-{}.{fqdn}", bdb.port),
                "port": bdb.port,
                "addr": [service_ip.to_string()],
                "addr_type": "internal",
                "proxy_policy": "single",
            }],
            "shard_list": [shard_uid],
            "export_status": bdb.export.status.unwrap_or("idle"),
            "export_progress": bdb.export.progress,
            "import_status": bdb.import.status.unwrap_or("idle"),
            "import_progress": bdb.import.progress,
        });
        if let Value::Object(fields) = fields {
            map.extend(fields);
        }
        if let Some(action_uid) = &bdb.action_uid {
            map.insert("action_uid".to_string(), json!(action_uid));
        }
        if let Some(reason) = &bdb.export.failure_reason {
            map.insert("export_failure_reason".to_string(), json!(reason));
        }
        if let Some(reason) = &bdb.import.failure_reason {
            map.insert("import_failure_reason".to_string(), json!(reason));
        }
        bdb.backup.extend_json(&mut map);
        Value::Object(map)
    }

    /// The shard view (`GET /v1/shards/{uid}`): one master shard per database, its process.
    pub fn shard_json(&self, bdb: &Bdb) -> Value {
        let running = bdb.process.is_some();
        json!({
            "uid": bdb.uid.to_string(),
            "bdb_uid": bdb.uid,
            "node_uid": self.master_node_uid().unwrap_or(0).to_string(),
            "role": "master",
            "assigned_slots": "0-16383",
            "status": if running { "active" } else { "inactive" },
            "detailed_status": if running { "ok" } else { "down" },
        })
    }
}

/// Now, as the API formats times.
pub(crate) fn now() -> String {
    iso8601(SystemTime::now())
}

/// A short pause used between the steps of async operations.
pub(crate) async fn step(shared: &Arc<Shared>) {
    tokio::time::sleep(shared.config.step_delay).await;
}

/// How long after its death a database's process is restarted (None: never).
pub(crate) fn restart_delay(shared: &Shared) -> Option<Duration> {
    shared.config.restart_dead_databases_after
}
