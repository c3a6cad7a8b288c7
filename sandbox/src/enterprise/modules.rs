//! The modules the emulator can load into its databases: real Redis module files (`.so`), each probed once by
//! starting redis-server with it and reading `MODULE LIST`, so `GET /v1/modules` lists the names and versions the
//! modules themselves report, under the names Redis Enterprise uses (`search`, `ReJSON`, `bf`, `timeseries`).
//! A bdb's `module_list` is resolved against this catalogue; a module that is not in it is refused with the
//! documented `missing_module` (406), naming it. May start short-lived redis-server processes; never installs
//! anything (the sandbox's `install` module finds and installs the module files).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};

use super::error::ApiError;
use super::resp::{RespConnection, RespValue};

/// How long a probing redis-server may take to answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Redis Enterprise's names of the bundled modules: (name a module registers in Redis, RS `module_name`,
/// `display_name`). RediSearch 1.x registers as `ft`, 2.x as `search`.
const KNOWN_MODULES: [(&str, &str, &str); 6] = [
    ("ft", "search", "RediSearch"),
    ("search", "search", "RediSearch 2"),
    ("ReJSON", "ReJSON", "RedisJSON"),
    ("bf", "bf", "RedisBloom"),
    ("timeseries", "timeseries", "RedisTimeSeries"),
    ("graph", "graph", "RedisGraph"),
];

/// The `capabilities` RS lists for its bundled modules (`GET /v1/modules`).
const BUNDLED_CAPABILITIES: [&str; 10] = [
    "types",
    "no_multi_key",
    "replica_of",
    "eviction_expiry",
    "failover_migrate",
    "persistence_aof",
    "persistence_rdb",
    "clustering",
    "backup_restore",
    "hash_policy",
];

/// One module the emulator can load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleInfo {
    /// The name Redis Enterprise uses (`module_name`, what a bdb's `module_list` and a REDB's `modulesList` name).
    pub module_name: String,
    /// The name the module registers in Redis (`MODULE LIST`), e.g. `ft` for RediSearch 1.x.
    pub redis_name: String,
    /// `display_name`.
    pub display_name: String,
    /// The version the module reports, as an integer (`MODULE LIST` `ver`, e.g. 20803).
    pub version: u64,
    /// The same as `major.minor.patch` (`semantic_version`, e.g. `2.8.3`).
    pub semantic_version: String,
    /// The module file.
    pub file: PathBuf,
    /// Whether Redis Enterprise bundles a module of this name.
    pub bundled: bool,
}

impl ModuleInfo {
    /// The module object of `GET /v1/modules` (API/objects/module).
    pub fn to_json(&self, redis_version: &str) -> Value {
        let capabilities: Vec<&str> = if self.bundled {
            BUNDLED_CAPABILITIES.to_vec()
        } else {
            vec!["types"]
        };
        json!({
            "uid": module_uid(&self.module_name, &self.semantic_version),
            "module_name": self.module_name,
            "display_name": self.display_name,
            "semantic_version": self.semantic_version,
            "version": self.version,
            "capabilities": capabilities,
            "is_bundled": self.bundled,
            "module_file": self.file.file_name().map(|name| name.to_string_lossy().into_owned()),
            "min_redis_version": redis_version,
            "compatible_redis_version": redis_version,
            "command_line_args": "",
            "dependencies": {},
            "author": "RedisLabs",
            "license": "Redis Source Available License",
        })
    }
}

/// A 32-hex module uid (RS uses hash-like strings), stable for a module name and version.
fn module_uid(name: &str, version: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{name}@{version}").as_bytes());
    digest.iter().take(16).map(|byte| format!("{byte:02x}")).collect()
}

/// `major*10000 + minor*100 + patch` as `major.minor.patch`.
pub fn semantic_version(version: u64) -> String {
    format!("{}.{}.{}", version / 10000, (version / 100) % 100, version % 100)
}

/// A module file that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unable to load the module {file}: {reason}")]
pub struct ModuleProbeError {
    /// The module file.
    pub file: PathBuf,
    /// Why (redis-server's log line, or what failed).
    pub reason: String,
}

/// The modules the emulator can load, by RS `module_name`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleCatalogue {
    modules: Vec<ModuleInfo>,
}

/// A bdb `module_list` entry resolved to the file redis-server loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedModule {
    /// The module file.
    pub file: PathBuf,
    /// The module's arguments (`module_args`), split on whitespace as redis.conf's `loadmodule` takes them.
    pub args: Vec<String>,
}

impl ModuleCatalogue {
    /// Probes every file (once per file and modification time in this process) with `redis_server`. Files that do
    /// not load are returned as errors and left out; of two files with the same module name the first wins.
    pub fn probe(redis_server: &Path, files: &[PathBuf]) -> (Self, Vec<ModuleProbeError>) {
        let mut catalogue = Self::default();
        let mut errors = Vec::new();
        for file in files {
            match probe_cached(redis_server, file) {
                Ok(info) => {
                    if catalogue.get(&info.module_name).is_none() {
                        catalogue.modules.push(info);
                    }
                }
                Err(error) => errors.push(error),
            }
        }
        (catalogue, errors)
    }

    /// A catalogue of already-probed modules.
    pub fn from_modules(modules: Vec<ModuleInfo>) -> Self {
        Self { modules }
    }

    /// Every module, in the order they were given.
    pub fn modules(&self) -> &[ModuleInfo] {
        &self.modules
    }

    /// The module RS calls `module_name`.
    pub fn get(&self, module_name: &str) -> Option<&ModuleInfo> {
        self.modules.iter().find(|module| module.module_name == module_name)
    }

    /// `GET /v1/modules`.
    pub fn to_json(&self, redis_version: &str) -> Value {
        Value::Array(
            self.modules
                .iter()
                .map(|module| module.to_json(redis_version))
                .collect(),
        )
    }

    /// The module object of `GET /v1/modules/{uid}`.
    pub fn by_uid(&self, uid: &str, redis_version: &str) -> Option<Value> {
        self.modules
            .iter()
            .find(|module| module_uid(&module.module_name, &module.semantic_version) == uid)
            .map(|module| module.to_json(redis_version))
    }

    /// Resolves a validated bdb `module_list` (entries with `module_name`, optional `module_args`) to the files to
    /// load; a module the cluster does not have is 406 `missing_module`, naming every missing one.
    pub fn resolve(&self, module_list: &[Value]) -> Result<Vec<LoadedModule>, ApiError> {
        let mut loaded = Vec::new();
        let mut missing = Vec::new();
        for entry in module_list {
            let name = entry.get("module_name").and_then(Value::as_str).unwrap_or_default();
            match self.get(name) {
                Some(module) => loaded.push(LoadedModule {
                    file: module.file.clone(),
                    args: entry
                        .get("module_args")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .split_whitespace()
                        .map(str::to_string)
                        .collect(),
                }),
                None => {
                    let version = entry
                        .get("semantic_version")
                        .and_then(Value::as_str)
                        .map(|version| format!(" version {version}"))
                        .unwrap_or_default();
                    missing.push(format!("{name}{version}"));
                }
            }
        }
        if !missing.is_empty() {
            let available: Vec<&str> = self.modules.iter().map(|module| module.module_name.as_str()).collect();
            return Err(ApiError::not_acceptable(
                "missing_module",
                format!(
                    "Modules missing from the cluster: {} (the cluster has: {})",
                    missing.join(", "),
                    if available.is_empty() {
                        "no modules".to_string()
                    } else {
                        available.join(", ")
                    }
                ),
            ));
        }
        Ok(loaded)
    }
}

type ProbeCache = Mutex<HashMap<(PathBuf, Option<SystemTime>), Result<ModuleInfo, ModuleProbeError>>>;

fn probe_cached(redis_server: &Path, file: &Path) -> Result<ModuleInfo, ModuleProbeError> {
    static CACHE: OnceLock<ProbeCache> = OnceLock::new();
    let modified = std::fs::metadata(file).and_then(|meta| meta.modified()).ok();
    let key = (file.to_path_buf(), modified);
    let cache = CACHE.get_or_init(ProbeCache::default);
    if let Some(result) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return result.clone();
    }
    let result = probe(redis_server, file);
    cache
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key, result.clone());
    result
}

/// Starts redis-server with only `file` loaded on a free loopback port and reads `MODULE LIST`.
fn probe(redis_server: &Path, file: &Path) -> Result<ModuleInfo, ModuleProbeError> {
    let failed = |reason: String| ModuleProbeError {
        file: file.to_path_buf(),
        reason,
    };
    if !file.is_file() {
        return Err(failed("no such file".to_string()));
    }
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map_err(|error| failed(format!("no free loopback port: {error}")))?
        .port();
    let mut child = Command::new(redis_server)
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args([
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--protected-mode",
            "no",
        ])
        .arg("--dir")
        .arg(std::env::temp_dir())
        .arg("--loadmodule")
        .arg(file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|error| failed(format!("failed to start {}: {error}", redis_server.display())))?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let listed = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|error| format!("failed to start a runtime: {error}"))?;
                runtime.block_on(module_list(addr))
            })
            .join()
            .unwrap_or_else(|_| Err("the probe thread panicked".to_string()))
    });
    let _ = child.kill();
    let output = child.wait_with_output();
    let listed = listed.map_err(|error| {
        let log = output
            .ok()
            .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
            .unwrap_or_default();
        let reason = log
            .lines()
            .find(|line| line.contains("failed to load") || line.contains("Can't load") || line.contains("Module"))
            .map(|line| line.split(" # ").last().unwrap_or(line).trim().to_string())
            .unwrap_or(error);
        failed(reason)
    })?;
    let (redis_name, version) = listed
        .into_iter()
        .next()
        .ok_or_else(|| failed("redis-server loaded it but lists no module".to_string()))?;
    let known = KNOWN_MODULES
        .iter()
        .find(|(registered, _, _)| *registered == redis_name);
    Ok(ModuleInfo {
        module_name: known.map_or(redis_name.clone(), |(_, rs_name, _)| rs_name.to_string()),
        display_name: known.map_or(redis_name.clone(), |(_, _, display)| display.to_string()),
        bundled: known.is_some(),
        redis_name,
        version,
        semantic_version: semantic_version(version),
        file: file.to_path_buf(),
    })
}

/// Waits for the probing server and returns its `MODULE LIST` as (name, ver).
async fn module_list(addr: SocketAddr) -> Result<Vec<(String, u64)>, String> {
    let started = Instant::now();
    let mut last_error = String::from("not tried");
    while started.elapsed() < PROBE_TIMEOUT {
        match RespConnection::connect(addr, None).await {
            Ok(mut connection) => {
                let reply = connection
                    .command(&["MODULE", "LIST"])
                    .await
                    .map_err(|error| error.to_string())?;
                return Ok(parse_module_list(&reply));
            }
            Err(error) => last_error = error.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!("redis-server did not start: {last_error}"))
}

fn text(value: &RespValue) -> Option<String> {
    match value {
        RespValue::Bulk(Some(bytes)) => Some(String::from_utf8_lossy(bytes).into_owned()),
        RespValue::Simple(text) => Some(text.clone()),
        _ => None,
    }
}

/// `MODULE LIST`: an array of flat `[name, <n>, ver, <v>, path, …]` arrays.
fn parse_module_list(reply: &RespValue) -> Vec<(String, u64)> {
    let RespValue::Array(Some(modules)) = reply else {
        return Vec::new();
    };
    modules
        .iter()
        .filter_map(|module| {
            let RespValue::Array(Some(fields)) = module else {
                return None;
            };
            let mut name = None;
            let mut version = 0;
            for pair in fields.chunks(2) {
                match (pair.first().and_then(text).as_deref(), pair.get(1)) {
                    (Some("name"), Some(value)) => name = text(value),
                    (Some("ver"), Some(RespValue::Integer(ver))) => version = u64::try_from(*ver).unwrap_or(0),
                    _ => {}
                }
            }
            name.map(|name| (name, version))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(name: &str) -> ModuleInfo {
        ModuleInfo {
            module_name: name.to_string(),
            redis_name: name.to_string(),
            display_name: name.to_string(),
            version: 20803,
            semantic_version: "2.8.3".to_string(),
            file: PathBuf::from(format!("/m/{name}.so")),
            bundled: true,
        }
    }

    #[test]
    fn versions_are_major_minor_patch() {
        assert_eq!(semantic_version(20803), "2.8.3");
        assert_eq!(semantic_version(10200), "1.2.0");
        assert_eq!(semantic_version(21010), "2.10.10");
    }

    #[test]
    fn module_list_resolves_to_files_and_a_missing_module_is_named() {
        let catalogue = ModuleCatalogue::from_modules(vec![module("search"), module("ReJSON")]);
        let loaded = catalogue
            .resolve(&[json!({"module_name": "search", "module_args": "MAXDOCTABLESIZE 1000"})])
            .expect("search is there");
        assert_eq!(loaded[0].file, PathBuf::from("/m/search.so"));
        assert_eq!(loaded[0].args, ["MAXDOCTABLESIZE", "1000"]);
        let error = catalogue
            .resolve(&[
                json!({"module_name": "ReJSON"}),
                json!({"module_name": "timeseries", "semantic_version": "1.12.5"}),
            ])
            .expect_err("timeseries is missing");
        assert_eq!(
            (error.status.as_u16(), error.error_code.as_str()),
            (406, "missing_module")
        );
        assert_eq!(
            error.description,
            "Modules missing from the cluster: timeseries version 1.12.5 (the cluster has: search, ReJSON)"
        );
    }

    #[test]
    fn module_objects_carry_the_documented_fields() {
        let value = module("bf").to_json("7.0.15");
        assert_eq!(value["module_name"], "bf");
        assert_eq!(value["semantic_version"], "2.8.3");
        assert_eq!(value["version"], 20803);
        assert_eq!(value["uid"].as_str().map(str::len), Some(32));
        assert!(value["capabilities"].as_array().is_some_and(|c| !c.is_empty()));
    }

    #[test]
    fn a_file_that_is_not_there_is_reported() {
        let (catalogue, errors) =
            ModuleCatalogue::probe(Path::new("redis-server"), &[PathBuf::from("/nonexistent.so")]);
        assert!(catalogue.modules().is_empty());
        assert_eq!(
            errors[0].to_string(),
            "unable to load the module /nonexistent.so: no such file"
        );
    }

    #[test]
    fn module_list_replies_parse() {
        let reply = RespValue::Array(Some(vec![RespValue::Array(Some(vec![
            RespValue::Bulk(Some(b"name".to_vec())),
            RespValue::Bulk(Some(b"ft".to_vec())),
            RespValue::Bulk(Some(b"ver".to_vec())),
            RespValue::Integer(10200),
        ]))]));
        assert_eq!(parse_module_list(&reply), [("ft".to_string(), 10200)]);
    }
}
