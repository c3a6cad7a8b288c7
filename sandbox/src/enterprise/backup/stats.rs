//! `GET /v1/bdbs/stats/last[/{uid}]`: the latest statistics of the databases, read from their redis-server (INFO)
//! at the time of the request. Only the documented metrics the emulator can read are given (no_of_keys,
//! no_of_expires, used_memory, conns, ...); rates it cannot measure are left out. Read-only.

use std::time::{Duration, SystemTime};

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use crate::enterprise::actions::iso8601;
use crate::enterprise::error::ApiError;
use crate::enterprise::operations::Ops;
use crate::enterprise::process::RedisSettings;
use crate::enterprise::resp::{RespConnection, RespValue};

/// The `field:value` lines of an INFO answer.
fn info_fields(text: &str) -> Map<String, Value> {
    let mut fields = Map::new();
    for line in text.lines() {
        if let Some((key, value)) = line.trim().split_once(':') {
            fields.insert(key.to_string(), json!(value));
        }
    }
    fields
}

/// `keys` and `expires` of every `dbN:keys=…,expires=…` line.
fn keyspace_totals(info: &Map<String, Value>) -> (f64, f64) {
    let (mut keys, mut expires) = (0.0, 0.0);
    for (name, value) in info {
        if !name.starts_with("db") {
            continue;
        }
        for part in value.as_str().unwrap_or_default().split(',') {
            match part.split_once('=') {
                Some(("keys", n)) => keys += n.parse::<f64>().unwrap_or(0.0),
                Some(("expires", n)) => expires += n.parse::<f64>().unwrap_or(0.0),
                _ => {}
            }
        }
    }
    (keys, expires)
}

/// The documented metrics from an INFO answer.
fn metrics(info_text: &str, start: SystemTime, end: SystemTime) -> Map<String, Value> {
    let info = info_fields(info_text);
    let number = |key: &str| {
        info.get(key)
            .and_then(Value::as_str)
            .and_then(|text| text.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let (keys, expires) = keyspace_totals(&info);
    let fields = json!({
        "stime": iso8601(start),
        "etime": iso8601(end),
        "no_of_keys": keys,
        "no_of_expires": expires,
        "used_memory": number("used_memory"),
        "mem_size_lua": number("used_memory_lua"),
        "mem_frag_ratio": number("mem_fragmentation_ratio"),
        // The emulator's own connection is not the user's.
        "conns": (number("connected_clients") - 1.0).max(0.0),
        "instantaneous_ops_per_sec": number("instantaneous_ops_per_sec"),
        "ingress_bytes": number("instantaneous_input_kbps") * 1024.0,
        "egress_bytes": number("instantaneous_output_kbps") * 1024.0,
        "pubsub_channels": number("pubsub_channels"),
        "pubsub_patterns": number("pubsub_patterns"),
        "monitor_sessions_count": 0.0,
        "last_req_time": "1970-01-01T00:00:00Z",
        "last_res_time": "1970-01-01T00:00:00Z",
    });
    match fields {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Keeps `stime`, `etime` and the asked metrics (`?metrics=a,b`).
fn filter(mut stats: Map<String, Value>, wanted: Option<&str>) -> Map<String, Value> {
    if let Some(wanted) = wanted {
        let names: Vec<&str> = wanted.split(',').map(str::trim).collect();
        stats.retain(|key, _| key == "stime" || key == "etime" || names.contains(&key.as_str()));
    }
    stats
}

async fn read_info(settings: &RedisSettings) -> Result<String, ApiError> {
    let addr = settings.addr();
    let mut connection = RespConnection::connect(addr, settings.admin_password())
        .await
        .map_err(|error| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "bdb_unavailable", error.to_string()))?;
    match connection.command(&["INFO"]).await {
        Ok(RespValue::Bulk(Some(bytes))) => Ok(String::from_utf8_lossy(&bytes).to_string()),
        Ok(_) => Err(ApiError::internal("INFO answered no text")),
        Err(error) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "bdb_unavailable",
            error.to_string(),
        )),
    }
}

/// The interval the figures stand for (RS reports the last few seconds).
const INTERVAL: Duration = Duration::from_secs(5);

impl Ops {
    /// `GET /v1/bdbs/stats/last/{uid}` (`uid` set) or `GET /v1/bdbs/stats/last`: `{"<uid>": {stime, etime, …}}`.
    pub async fn stats_last(&self, uid: Option<u64>, metrics_filter: Option<&str>) -> Result<Value, ApiError> {
        let targets: Vec<(u64, RedisSettings)> = {
            let state = self.cluster.lock();
            match uid {
                Some(uid) => {
                    let bdb = state
                        .bdbs
                        .get(&uid)
                        .ok_or_else(|| ApiError::not_found(format!("database {uid} does not exist")))?;
                    if bdb.status == "recovery" || bdb.process.is_none() {
                        return Err(ApiError::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "bdb_in_recovery",
                            format!("database {uid} is in recovery"),
                        ));
                    }
                    if bdb.status != "active" {
                        return Err(ApiError::not_acceptable(
                            "bdb_not_active",
                            format!("database {uid} is {}", bdb.status),
                        ));
                    }
                    vec![(uid, bdb.settings(self.cluster.service_ip))]
                }
                None => {
                    if state.bdbs.is_empty() {
                        return Err(ApiError::not_found("no databases exist"));
                    }
                    state
                        .bdbs
                        .values()
                        .filter(|bdb| bdb.status == "active" && bdb.process.is_some())
                        .map(|bdb| (bdb.uid, bdb.settings(self.cluster.service_ip)))
                        .collect()
                }
            }
        };
        let listing = uid.is_none();
        let mut answer = Map::new();
        for (uid, settings) in targets {
            let end = SystemTime::now();
            let info = match read_info(&settings).await {
                Ok(info) => info,
                // One database going away during the listing leaves it out of the list.
                Err(_) if listing => continue,
                Err(error) => return Err(error),
            };
            let stats = filter(metrics(&info, end - INTERVAL, end), metrics_filter);
            answer.insert(uid.to_string(), Value::Object(stats));
        }
        Ok(Value::Object(answer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "# Memory\r\nused_memory:1048576\r\nused_memory_lua:31744\r\nmem_fragmentation_ratio:3.5\r\n\
        # Clients\r\nconnected_clients:3\r\n# Keyspace\r\ndb0:keys=12,expires=2,avg_ttl=0\r\ndb1:keys=3,expires=0\r\n";

    #[test]
    fn metrics_come_from_info() {
        let now = SystemTime::now();
        let stats = metrics(INFO, now - INTERVAL, now);
        assert_eq!(stats["no_of_keys"], 15.0);
        assert_eq!(stats["no_of_expires"], 2.0);
        assert_eq!(stats["used_memory"], 1_048_576.0);
        assert_eq!(stats["mem_size_lua"], 31_744.0);
        assert_eq!(stats["conns"], 2.0);
        let filtered = filter(stats, Some("no_of_keys,used_memory"));
        let mut keys: Vec<&str> = filtered.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["etime", "no_of_keys", "stime", "used_memory"]);
    }
}
