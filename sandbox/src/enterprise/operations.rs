//! Database operations behind the bdb endpoints: create, update, password changes, upgrade and delete,
//! each run as an async action against the database's real redis-server (export, import and backups are in
//! `backup/`); and
//! the per-cluster monitor that notices a dead process (bdb status `recovery`, shard `down`) and
//! restarts it after `EmulatorConfig::restart_dead_databases_after`.
//!
//! Every operation validates and reserves under the cluster lock before it answers, so a rejected
//! request changes nothing and an accepted one is visible at once (status `pending`,
//! `active-change-pending`, `delete-pending`, `import-pending`), with the bdb busy (409) until its
//! action ends.

use std::future::Future;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::actions::{ActionKind, ActionStatus};
use super::backup::BackupState;
use super::bdb::{BdbConfig, REDIS_VERSIONS};
use super::cluster::{Bdb, Cluster, ClusterState, Shared, TransferStatus, now, restart_delay, step};
use super::error::ApiError;
use super::process::{Persistence, ProcessError, RedisProcess, RedisSettings, apply_settings, save_snapshot};

/// How often the monitor looks for dead processes.
const MONITOR_INTERVAL: Duration = Duration::from_millis(100);

/// Shorthand for the two handles every operation needs.
#[derive(Clone)]
pub(crate) struct Ops {
    pub shared: Arc<Shared>,
    pub cluster: Arc<Cluster>,
}

fn port_free(ip: IpAddr, port: u16) -> bool {
    TcpListener::bind(SocketAddr::new(ip, port)).is_ok()
}

/// Refuses a change while the bdb is busy or not active.
pub(crate) fn check_changeable(bdb: &Bdb) -> Result<(), ApiError> {
    if let Some(action) = &bdb.busy {
        return Err(ApiError::busy(format!(
            "database {} is busy with action {action}; retry later",
            bdb.uid
        )));
    }
    if bdb.status != "active" {
        return Err(ApiError::busy(format!(
            "database {} is {}; it can change only when active",
            bdb.uid, bdb.status
        )));
    }
    Ok(())
}

/// The status that matches the process: active with one, recovery without.
pub(crate) fn settle_status(bdb: &mut Bdb) {
    if bdb.process.is_some() {
        bdb.status = "active";
        bdb.down_since = None;
    } else {
        bdb.status = "recovery";
        bdb.down_since.get_or_insert_with(Instant::now);
    }
}

pub(crate) fn body_object(body: &Value) -> Result<&Map<String, Value>, ApiError> {
    body.as_object()
        .ok_or_else(|| ApiError::invalid_schema("the request body must be a JSON object"))
}

impl Ops {
    fn view(&self, state: &ClusterState, bdb: &Bdb) -> Value {
        state.bdb_json(bdb, self.cluster.service_ip, &self.shared.redis_version)
    }

    fn register_names(&self, state: &ClusterState, name: &str, port: u16) {
        let mut names = self.cluster.database_names(name);
        if let Some(fqdn) = &state.fqdn {
            names.push(format!("redis-{port}.{fqdn}"));
        }
        for name in names {
            if let Err(error) = self.shared.names.insert(&name, self.cluster.service_ip) {
                tracing::warn!(%error, "database name not served");
            }
        }
    }

    fn unregister_names(&self, state: &ClusterState, name: &str, port: u16) {
        for name in self.cluster.database_names(name) {
            self.shared.names.remove(&name);
        }
        if let Some(fqdn) = &state.fqdn {
            self.shared.names.remove(&format!("redis-{port}.{fqdn}"));
        }
    }

    /// Runs `work` as action `action_uid`: pending → active → (held?) → completed | failed, then
    /// frees the bdb. `work` records its own effect on the bdb before returning.
    pub(crate) fn spawn_action<F>(&self, bdb_uid: u64, action_uid: String, work: F)
    where
        F: Future<Output = Result<(), String>> + Send + 'static,
    {
        let ops = self.clone();
        self.cluster.spawn(async move {
            step(&ops.shared).await;
            ops.set_action(&action_uid, ActionStatus::Active, 10.0, None);
            ops.shared.faults.wait_actions_released().await;
            ops.set_action(&action_uid, ActionStatus::Active, 50.0, None);
            let outcome = work.await;
            let mut state = ops.cluster.lock();
            if let Some(bdb) = state.bdbs.get_mut(&bdb_uid)
                && bdb.busy.as_deref() == Some(action_uid.as_str())
            {
                bdb.busy = None;
            }
            if let Some(action) = state.actions.get_mut(&action_uid) {
                match outcome {
                    Ok(()) => {
                        action.status = ActionStatus::Completed;
                        action.progress = 100.0;
                    }
                    Err(error) => {
                        action.status = ActionStatus::Failed;
                        action.error = Some(error);
                    }
                }
            }
        });
    }

    fn set_action(&self, uid: &str, status: ActionStatus, progress: f64, error: Option<String>) {
        let mut state = self.cluster.lock();
        if let Some(action) = state.actions.get_mut(uid) {
            action.status = status;
            action.progress = progress;
            action.error = error;
        }
    }

    /// `POST /v1/bdbs[?dry_run]`.
    pub fn create(&self, body: &Value, dry_run: bool) -> Result<Value, ApiError> {
        let body = body_object(body)?;
        let mut state = self.cluster.lock();
        let config = BdbConfig::from_create(body, state.facts())?;
        let uid = match body.get("uid") {
            None => {
                let mut uid = state.next_bdb_uid;
                while state.bdbs.contains_key(&uid) {
                    uid += 1;
                }
                uid
            }
            Some(value) => {
                let uid = value
                    .as_u64()
                    .filter(|uid| *uid > 0)
                    .ok_or_else(|| ApiError::invalid_schema(format!("invalid uid {value}")))?;
                if state.bdbs.contains_key(&uid) {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        "uid_exists",
                        format!("database uid {uid} is already in use"),
                    ));
                }
                uid
            }
        };
        if state.bdbs.values().any(|bdb| bdb.config.name == config.name) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "db_name_exists",
                format!("a database named {:?} already exists", config.name),
            ));
        }
        let ip = self.cluster.service_ip;
        let used = |port: u16| state.bdbs.values().any(|bdb| bdb.port == port);
        let port = match config.port {
            Some(port) => {
                if used(port) || !port_free(ip, port) {
                    return Err(ApiError::not_acceptable(
                        "port_unavailable",
                        format!("port {port} is already in use"),
                    ));
                }
                port
            }
            None => (12000..=19999)
                .chain(10000..12000)
                .find(|port| !used(*port) && port_free(ip, *port))
                .ok_or_else(|| ApiError::not_acceptable("port_unavailable", "no free database port left"))?,
        };
        if dry_run {
            let mut view = config.to_json();
            view.insert("uid".to_string(), json!(uid));
            view.insert("port".to_string(), json!(port));
            return Ok(Value::Object(view));
        }
        let time = now();
        let name = config.name.clone();
        state.bdbs.insert(
            uid,
            Bdb {
                uid,
                config,
                port,
                dir: self.cluster.dir.join(format!("bdb-{uid}")),
                status: "pending",
                created_time: time.clone(),
                last_changed_time: time,
                action_uid: None,
                busy: None,
                process: None,
                down_since: None,
                export: TransferStatus::default(),
                import: TransferStatus::default(),
                backup: BackupState::default(),
                alerts: Map::new(),
            },
        );
        state.next_bdb_uid = state.next_bdb_uid.max(uid + 1);
        let action_uid = state.start_bdb_action(&self.shared, uid, "SMCreateBDB", ActionKind::StateMachine);
        self.register_names(&state, &name, port);
        let view = state
            .bdbs
            .get(&uid)
            .map(|bdb| self.view(&state, bdb))
            .unwrap_or(Value::Null);
        drop(state);

        let ops = self.clone();
        self.spawn_action(uid, action_uid, async move {
            let settings = {
                let state = ops.cluster.lock();
                state.bdbs.get(&uid).map(|bdb| bdb.settings(ip))
            }
            .ok_or_else(|| format!("database {uid} vanished while being created"))?;
            let started = RedisProcess::start(&ops.shared.config.redis_server, settings, true).await;
            let mut state = ops.cluster.lock();
            let bdb = state
                .bdbs
                .get_mut(&uid)
                .ok_or_else(|| format!("database {uid} vanished while being created"))?;
            match started {
                Ok(process) => {
                    bdb.process = Some(process);
                    bdb.status = "active";
                    Ok(())
                }
                Err(error) => {
                    bdb.status = "creation-failed";
                    Err(error.to_string())
                }
            }
        });
        Ok(view)
    }

    /// `PUT /v1/bdbs/{uid}[?dry_run]`: a partial update applied live to the process.
    pub fn update(&self, uid: u64, body: &Value, dry_run: bool) -> Result<Value, ApiError> {
        let body = body_object(body)?;
        let mut state = self.cluster.lock();
        let facts = state.facts();
        let names_in_use: Vec<(u64, String)> = state
            .bdbs
            .values()
            .map(|bdb| (bdb.uid, bdb.config.name.clone()))
            .collect();
        let bdb = state
            .bdbs
            .get_mut(&uid)
            .ok_or_else(|| ApiError::not_found(format!("database {uid} does not exist")))?;
        check_changeable(bdb)?;
        let updated = bdb.config.updated(body, facts)?;
        if updated.port.is_some_and(|port| port != bdb.port) {
            return Err(ApiError::not_implemented(
                "changing the port of an existing database (port)",
            ));
        }
        if updated.name != bdb.config.name
            && names_in_use
                .iter()
                .any(|(other, name)| *other != uid && *name == updated.name)
        {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "db_name_exists",
                format!("a database named {:?} already exists", updated.name),
            ));
        }
        if dry_run {
            let mut view = updated.to_json();
            view.insert("uid".to_string(), json!(uid));
            view.insert("port".to_string(), json!(bdb.port));
            return Ok(Value::Object(view));
        }
        let ip = self.cluster.service_ip;
        let old_settings = bdb.settings(ip);
        let old_config = std::mem::replace(&mut bdb.config, updated);
        let new_settings = bdb.settings(ip);
        let (old_name, new_name, port) = (old_config.name.clone(), bdb.config.name.clone(), bdb.port);
        bdb.status = "active-change-pending";
        bdb.last_changed_time = now();
        if old_name != new_name {
            self.unregister_names(&state, &old_name, port);
            self.register_names(&state, &new_name, port);
        }
        let action_uid = state.start_bdb_action(&self.shared, uid, "SMUpdateBDB", ActionKind::StateMachine);
        let view = state
            .bdbs
            .get(&uid)
            .map(|bdb| self.view(&state, bdb))
            .unwrap_or(Value::Null);
        drop(state);

        let ops = self.clone();
        self.spawn_action(uid, action_uid, async move {
            let applied = apply_settings(&old_settings, &new_settings).await;
            let mut state = ops.cluster.lock();
            let bdb = state
                .bdbs
                .get_mut(&uid)
                .ok_or_else(|| format!("database {uid} vanished while being updated"))?;
            let outcome = match applied {
                Ok(()) => {
                    if let Some(process) = &mut bdb.process {
                        process.set_settings(new_settings);
                    }
                    Ok(())
                }
                Err(error) => {
                    bdb.config = old_config;
                    Err(error.to_string())
                }
            };
            settle_status(bdb);
            outcome
        });
        Ok(view)
    }

    /// `PUT|POST|DELETE /v1/bdbs/{uid}/passwords`: replace, add or remove a default-user password.
    /// Applied before answering, so the next connection sees it.
    pub async fn change_password(
        &self,
        uid: u64,
        method: &axum::http::Method,
        body: &Value,
    ) -> Result<Value, ApiError> {
        let password = body
            .get("password")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::invalid_schema("missing field 'password' (a string)"))?
            .to_string();
        let ip = self.cluster.service_ip;
        let (old_settings, new_settings, new_passwords) = {
            let mut state = self.cluster.lock();
            let bdb = state
                .bdbs
                .get_mut(&uid)
                .ok_or_else(|| ApiError::not_found(format!("database {uid} does not exist")))?;
            check_changeable(bdb)?;
            let mut passwords = bdb.config.passwords.clone();
            match method.as_str() {
                "PUT" => passwords = vec![password],
                "POST" => {
                    if !passwords.contains(&password) {
                        passwords.push(password);
                    }
                }
                _ => {
                    if !passwords.contains(&password) {
                        return Err(ApiError::not_found("no such password for the default user"));
                    }
                    if passwords.len() == 1 {
                        return Err(ApiError::not_acceptable(
                            "cannot_delete_last_password",
                            "the default user's only password cannot be deleted",
                        ));
                    }
                    passwords.retain(|p| *p != password);
                }
            }
            let old_settings = bdb.settings(ip);
            let mut new_settings = old_settings.clone();
            new_settings.passwords = passwords.clone();
            bdb.busy = Some("password change".to_string());
            (old_settings, new_settings, passwords)
        };
        let applied = apply_settings(&old_settings, &new_settings).await;
        let mut state = self.cluster.lock();
        let bdb = state
            .bdbs
            .get_mut(&uid)
            .ok_or_else(|| ApiError::internal(format!("database {uid} vanished")))?;
        bdb.busy = None;
        applied.map_err(|error| ApiError::internal(error.to_string()))?;
        bdb.config.passwords = new_passwords;
        bdb.last_changed_time = now();
        if let Some(process) = &mut bdb.process {
            process.set_settings(new_settings);
        }
        Ok(json!({}))
    }

    /// `DELETE /v1/bdbs/{uid}`: delete-pending, then the process is killed, the port freed and the
    /// bdb gone.
    pub fn delete(&self, uid: u64) -> Result<Value, ApiError> {
        let mut state = self.cluster.lock();
        let bdb = state
            .bdbs
            .get_mut(&uid)
            .ok_or_else(|| ApiError::not_found(format!("database {uid} does not exist")))?;
        if let Some(action) = &bdb.busy {
            return Err(ApiError::busy(format!(
                "database {uid} is busy with action {action}; retry later"
            )));
        }
        if !matches!(bdb.status, "active" | "creation-failed" | "recovery") {
            return Err(ApiError::busy(format!(
                "database {uid} is {} and cannot be deleted now",
                bdb.status
            )));
        }
        bdb.status = "delete-pending";
        let action_uid = state.start_bdb_action(&self.shared, uid, "SMDeleteBDB", ActionKind::StateMachine);
        drop(state);
        let ops = self.clone();
        self.spawn_action(uid, action_uid.clone(), async move {
            let (process, dir) = {
                let mut state = ops.cluster.lock();
                let Some(bdb) = state.bdbs.get_mut(&uid) else {
                    return Ok(());
                };
                let taken = (bdb.process.take(), bdb.dir.clone());
                let (name, port) = (bdb.config.name.clone(), bdb.port);
                ops.unregister_names(&state, &name, port);
                taken
            };
            drop(process);
            let _ = std::fs::remove_dir_all(&dir);
            ops.cluster.lock().bdbs.remove(&uid);
            Ok(())
        });
        Ok(json!({ "uid": uid, "action_uid": action_uid }))
    }

    /// `POST /v1/bdbs/{uid}/upgrade`: records the new `redis_version` and restarts the process,
    /// keeping the data (SAVE, restart, load).
    pub fn upgrade(&self, uid: u64, body: &Value) -> Result<Value, ApiError> {
        const OPTIONS: [&str; 9] = [
            "redis_version",
            "preserve_roles",
            "may_discard_data",
            "force_discard",
            "force_restart",
            "keep_redis_version",
            "latest_with_modules",
            "parallel_shards_upgrade",
            "keep_crdt_protocol_version",
        ];
        let body = body_object(body)?;
        if let Some(key) = body.keys().find(|key| !OPTIONS.contains(&key.as_str())) {
            return Err(ApiError::invalid_schema(format!("unknown upgrade option '{key}'")));
        }
        let version = match body.get("redis_version") {
            None => REDIS_VERSIONS[REDIS_VERSIONS.len() - 1].to_string(),
            Some(value) => value
                .as_str()
                .ok_or_else(|| ApiError::invalid_schema("redis_version must be a string"))?
                .to_string(),
        };
        if !REDIS_VERSIONS.contains(&version.as_str()) {
            return Err(ApiError::not_acceptable(
                "invalid_version",
                format!(
                    "redis_version {version:?} is not available; available: {}",
                    REDIS_VERSIONS.join(", ")
                ),
            ));
        }
        let mut state = self.cluster.lock();
        let bdb = state
            .bdbs
            .get_mut(&uid)
            .ok_or_else(|| ApiError::not_found(format!("database {uid} does not exist")))?;
        check_changeable(bdb)?;
        bdb.config.redis_version = version;
        bdb.status = "active-change-pending";
        bdb.last_changed_time = now();
        let action_uid = state.start_bdb_action(&self.shared, uid, "SMUpgradeBDB", ActionKind::StateMachine);
        let view = state
            .bdbs
            .get(&uid)
            .map(|bdb| self.view(&state, bdb))
            .unwrap_or(Value::Null);
        drop(state);
        let ops = self.clone();
        self.spawn_action(uid, action_uid, async move { ops.restart_keeping_data(uid).await });
        Ok(view)
    }

    /// SAVE, stop, start again (loading the snapshot or the AOF).
    async fn restart_keeping_data(&self, uid: u64) -> Result<(), String> {
        let ip = self.cluster.service_ip;
        let (process, settings) = {
            let mut state = self.cluster.lock();
            let bdb = state
                .bdbs
                .get_mut(&uid)
                .ok_or_else(|| format!("database {uid} vanished"))?;
            (bdb.process.take(), bdb.settings(ip))
        };
        let Some(process) = process else {
            let mut state = self.cluster.lock();
            if let Some(bdb) = state.bdbs.get_mut(&uid) {
                settle_status(bdb);
            }
            return Err(format!("database {uid} has no running process"));
        };
        if let Err(error) = save_snapshot(&settings).await {
            let mut state = self.cluster.lock();
            if let Some(bdb) = state.bdbs.get_mut(&uid) {
                bdb.process = Some(process);
                settle_status(bdb);
            }
            return Err(error.to_string());
        }
        drop(process);
        let started = start_from_snapshot(&self.shared.config.redis_server, &settings).await;
        let mut state = self.cluster.lock();
        let bdb = state
            .bdbs
            .get_mut(&uid)
            .ok_or_else(|| format!("database {uid} vanished"))?;
        let outcome = started
            .map(|process| {
                bdb.process = Some(process);
            })
            .map_err(|error| error.to_string());
        settle_status(bdb);
        outcome
    }

    /// Fault injection: SIGKILL the database's process (the monitor then notices it).
    pub fn kill_process(&self, uid: u64) -> Result<u32, super::EmulatorError> {
        let state = self.cluster.lock();
        let cluster = self.cluster.key.to_string();
        let bdb = state.bdbs.get(&uid).ok_or(super::EmulatorError::UnknownDatabase {
            cluster: cluster.clone(),
            uid,
        })?;
        let process = bdb
            .process
            .as_ref()
            .ok_or(super::EmulatorError::NoProcess { cluster, uid })?;
        let pid = process.pid();
        process
            .kill_signal()
            .map_err(|source| super::EmulatorError::Signal { pid, source })?;
        Ok(pid)
    }

    /// Kills every process of the cluster (shutdown).
    pub fn kill_all(&self) {
        let processes: Vec<RedisProcess> = {
            let mut state = self.cluster.lock();
            state.bdbs.values_mut().filter_map(|bdb| bdb.process.take()).collect()
        };
        drop(processes);
    }

    /// The monitor: finds dead processes and restarts them after the configured delay.
    pub async fn monitor(self) {
        let mut interval = tokio::time::interval(MONITOR_INTERVAL);
        loop {
            interval.tick().await;
            let delay = restart_delay(&self.shared);
            let ip = self.cluster.service_ip;
            let mut restarts = Vec::new();
            {
                let mut state = self.cluster.lock();
                for bdb in state.bdbs.values_mut() {
                    if let Some(process) = &mut bdb.process {
                        if let Some(status) = process.exited() {
                            tracing::warn!(bdb = bdb.uid, %status, "database process died");
                            bdb.process = None;
                            if bdb.status == "active" {
                                settle_status(bdb);
                            }
                            bdb.down_since = Some(Instant::now());
                        }
                        continue;
                    }
                    if bdb.busy.is_none() && bdb.down_since.is_some() && bdb.status == "active" {
                        // Died while an action ran; the action ended without noticing.
                        bdb.status = "recovery";
                    }
                    let due = match (delay, bdb.down_since) {
                        (Some(delay), Some(since)) => since.elapsed() >= delay,
                        _ => false,
                    };
                    if due && bdb.busy.is_none() && bdb.status == "recovery" {
                        bdb.busy = Some("restart".to_string());
                        restarts.push((bdb.uid, bdb.settings(ip)));
                    }
                }
            }
            for (uid, settings) in restarts {
                let ops = self.clone();
                self.cluster.spawn(async move {
                    let started = RedisProcess::start(&ops.shared.config.redis_server, settings, true).await;
                    let mut state = ops.cluster.lock();
                    if let Some(bdb) = state.bdbs.get_mut(&uid) {
                        bdb.busy = None;
                        match started {
                            Ok(process) => {
                                bdb.process = Some(process);
                                settle_status(bdb);
                            }
                            Err(error) => {
                                tracing::warn!(bdb = uid, %error, "database restart failed");
                                bdb.down_since = Some(Instant::now());
                            }
                        }
                    }
                });
            }
        }
    }
}

/// Starts a database from `dir/dump.rdb` alone (never from an older AOF), then turns its AOF on
/// when it has AOF persistence, which rewrites the AOF from what was loaded. Used after an import
/// and for upgrades, so the loaded data never depends on an AOF rewrite having finished.
pub(crate) async fn start_from_snapshot(binary: &Path, settings: &RedisSettings) -> Result<RedisProcess, ProcessError> {
    let dir = &settings.dir;
    let _ = std::fs::remove_dir_all(dir.join("appendonlydir"));
    let _ = std::fs::remove_file(dir.join("appendonly.aof"));
    let process = RedisProcess::start(binary, settings.clone(), false).await?;
    if matches!(settings.persistence, Persistence::Aof { .. }) {
        let mut without_aof = settings.clone();
        without_aof.persistence = Persistence::Disabled;
        apply_settings(&without_aof, settings).await?;
    }
    if settings.persistence == Persistence::Disabled {
        // A database without persistence must not find this snapshot when it restarts.
        let _ = std::fs::remove_file(dir.join("dump.rdb"));
    }
    Ok(process)
}
