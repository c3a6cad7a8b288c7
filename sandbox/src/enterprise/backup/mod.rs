//! Backups in the emulator: on-demand export and import (`/v1/bdbs/{uid}/actions/{export,import}`), the cluster's
//! own periodic backup (bdb `backup`, `backup_interval`, ...; a trigger that wakes every
//! [`super::EmulatorConfig::backup_trigger_interval`]) and the database statistics (`/v1/bdbs/stats/last`).
//!
//! Exports and backups write one gzip-compressed RDB per shard (`<first 30 characters of the name>_<uid>_
//! <YYYYMMDD-HHMMSS-mmm UTC>_shard-<n>.rdb.gz`; the emulator runs one shard per database) to a mount point, S3 or
//! SFTP location ([`locations`]). Failures carry the cluster's reasons. Everything here runs as bdb actions through
//! [`Ops`]; the bdb's other operations live in `operations.rs`.

mod export;
mod import;
mod locations;
mod periodic;
mod stats;

use serde_json::{Map, Value, json};

use super::cluster::{ClusterState, TransferStatus};
use super::error::ApiError;
use super::operations::Ops;

pub(crate) use periodic::trigger;

/// A failed transfer: the cluster's reason (`no-permission`, `wrong-file-path`, `general-error`, `download-error`,
/// `file-corrupted`) and a detail without secrets.
pub(crate) type Failure = (&'static str, String);

/// The periodic backup's state on one bdb.
#[derive(Debug, Clone, Default)]
pub(crate) struct BackupState {
    /// `backup_status`, `backup_progress`, `backup_failure_reason`.
    pub transfer: TransferStatus,
    /// `last_backup_time`: when the last successful backup finished.
    pub last_backup_time: Option<String>,
    /// The scheduled slot the last successful backup ran for (seconds since the epoch).
    pub last_slot: Option<u64>,
    /// When the trigger first saw `backup: true` (seconds since the epoch); None while backups are off.
    pub enabled_since: Option<u64>,
}

impl BackupState {
    /// Adds the read-only backup fields to a bdb view.
    pub(crate) fn extend_json(&self, map: &mut Map<String, Value>) {
        if let Some(status) = self.transfer.status {
            map.insert("backup_status".to_string(), json!(status));
            map.insert("backup_progress".to_string(), json!(self.transfer.progress));
        }
        if let Some(reason) = &self.transfer.failure_reason {
            map.insert("backup_failure_reason".to_string(), json!(reason));
        }
        if let Some(time) = &self.last_backup_time {
            map.insert("last_backup_time".to_string(), json!(time));
        }
    }
}

/// Checks the periodic backup fields of a complete bdb field map (create or update), as the cluster does:
/// `backup: true` needs `backup_interval` (406 `missing_backup_interval`) and a `backup_location` with its required
/// keys; the offset must be below the interval; `backup_history` is a number of days.
pub(crate) fn check_backup_fields(fields: &Map<String, Value>) -> Result<(), ApiError> {
    let enabled = match fields.get("backup") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(enabled)) => *enabled,
        Some(other) => {
            return Err(ApiError::invalid_schema(format!(
                "field 'backup' must be a boolean, got {other}"
            )));
        }
    };
    let number = |key: &str| -> Result<Option<u64>, ApiError> {
        match fields.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => value.as_u64().map(Some).ok_or_else(|| {
                ApiError::invalid_schema(format!("field '{key}' must be a non-negative integer, got {value}"))
            }),
        }
    };
    let interval = number("backup_interval")?;
    let offset = number("backup_interval_offset")?;
    number("backup_history")?;
    if let Some(location) = fields.get("backup_location").filter(|location| !location.is_null()) {
        locations::Location::parse(location)?;
    }
    if !enabled {
        return Ok(());
    }
    let Some(interval) = interval.filter(|interval| *interval > 0) else {
        return Err(ApiError::not_acceptable(
            "missing_backup_interval",
            "BDB backup is enabled but backup interval is missing",
        ));
    };
    if offset.is_some_and(|offset| offset >= interval) {
        return Err(ApiError::not_acceptable(
            "invalid_backup_interval_offset",
            format!("backup_interval_offset must be less than backup_interval ({interval} s)"),
        ));
    }
    if fields.get("backup_location").is_none_or(Value::is_null) {
        return Err(ApiError::not_acceptable(
            "missing_backup_location",
            "BDB backup is enabled but backup location is missing",
        ));
    }
    Ok(())
}

/// The cluster's S3 settings (`s3_url`, `s3_ca_cert` of `PUT /v1/cluster`).
fn s3_settings(state: &ClusterState) -> locations::S3Settings {
    let text = |key: &str| {
        state
            .settings
            .get(key)
            .and_then(Value::as_str)
            .filter(|text| !text.is_empty())
            .map(str::to_string)
    };
    locations::S3Settings {
        url: text("s3_url"),
        ca_cert: text("s3_ca_cert"),
    }
}

/// The bdb's uid from its name prefix in backup file names (`<name30>_<uid>_`); names hold no underscore, so the
/// prefix of one database never matches another's files.
fn file_prefix(name: &str, uid: u64) -> String {
    let short: String = name.chars().take(30).collect();
    format!("{short}_{uid}_")
}

impl Ops {
    /// `PUT /v1/bdbs/{uid}/actions/{export,import}_reset_status`.
    pub fn reset_status(&self, uid: u64, export: bool) -> Result<Value, ApiError> {
        let mut state = self.cluster.lock();
        let bdb = state
            .bdbs
            .get_mut(&uid)
            .ok_or_else(|| ApiError::not_found(format!("database {uid} does not exist")))?;
        if bdb.busy.is_some() {
            return Err(ApiError::busy(format!("database {uid} is busy")));
        }
        if export {
            bdb.export = TransferStatus::default();
        } else {
            bdb.import = TransferStatus::default();
        }
        let view = state
            .bdbs
            .get(&uid)
            .map(|bdb| state.bdb_json(bdb, self.cluster.service_ip, &self.shared.redis_version))
            .ok_or_else(|| ApiError::internal(format!("database {uid} vanished")))?;
        Ok(view)
    }

    /// `PUT /v1/bdbs/{uid}/actions/backup_reset_status`: the periodic backup's status back to idle, unless a backup
    /// runs.
    pub fn backup_reset_status(&self, uid: u64) -> Result<Value, ApiError> {
        let mut state = self.cluster.lock();
        let bdb = state
            .bdbs
            .get_mut(&uid)
            .ok_or_else(|| ApiError::not_found(format!("database {uid} does not exist")))?;
        if bdb.backup.transfer.status == Some("exporting") {
            return Err(ApiError::busy(format!("database {uid} is running a backup")));
        }
        bdb.backup.transfer = TransferStatus::default();
        let view = state
            .bdbs
            .get(&uid)
            .map(|bdb| state.bdb_json(bdb, self.cluster.service_ip, &self.shared.redis_version))
            .unwrap_or(Value::Null);
        Ok(view)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn periodic_backup_fields_are_checked() {
        let location = json!({"type": "mount_point", "path": "/mnt/backups"});
        assert!(check_backup_fields(&fields(json!({"backup": false}))).is_ok());
        let error = check_backup_fields(&fields(json!({"backup": true, "backup_location": location})))
            .expect_err("no interval");
        assert_eq!(
            (error.status.as_u16(), error.error_code.as_str()),
            (406, "missing_backup_interval")
        );
        let error =
            check_backup_fields(&fields(json!({"backup": true, "backup_interval": 3600}))).expect_err("no location");
        assert_eq!(error.error_code, "missing_backup_location");
        let error = check_backup_fields(&fields(json!({"backup": true, "backup_interval": 3600,
            "backup_interval_offset": 3600, "backup_location": location})))
        .expect_err("offset too large");
        assert_eq!(error.status.as_u16(), 406);
        let error = check_backup_fields(&fields(json!({"backup": true, "backup_interval": 3600,
            "backup_location": {"type": "s3", "bucket_name": "b"}})))
        .expect_err("s3 keys missing");
        assert_eq!(error.error_code, "invalid_schema");
        assert!(
            check_backup_fields(&fields(json!({"backup": true, "backup_interval": 3600,
            "backup_interval_offset": 60, "backup_history": 7, "backup_location": location})))
            .is_ok()
        );
    }

    #[test]
    fn file_prefixes_are_unique_per_database() {
        assert_eq!(file_prefix("a", 1), "a_1_");
        assert!(!file_prefix("a-1", 5).starts_with(&file_prefix("a", 1)));
        let long = "x".repeat(40);
        assert_eq!(file_prefix(&long, 3), format!("{}_3_", "x".repeat(30)));
    }
}
