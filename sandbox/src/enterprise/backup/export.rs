//! Export (`POST /v1/bdbs/{uid}/actions/export`) and the file writing shared with the periodic backup: a SAVE of the
//! database's redis-server, gzip-compressed, written per shard to the location. It changes only the bdb's export or
//! backup status; it never stops or restarts the database.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::locations::{Location, S3Settings};
use super::{Failure, file_prefix, s3_settings};
use crate::enterprise::actions::{ActionKind, iso8601};
use crate::enterprise::cluster::TransferStatus;
use crate::enterprise::error::ApiError;
use crate::enterprise::operations::{Ops, body_object, check_changeable};
use crate::enterprise::process::{Persistence, save_snapshot};

/// Which status a write reports its progress to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Progress {
    /// `export_status`/`export_progress`.
    Export,
    /// `backup_status`/`backup_progress`.
    Backup,
}

/// The file name of shard `shard`'s backup taken at `time`: `<name30>_<uid>_<YYYYMMDD-HHMMSS-mmm>_shard-<n>.rdb.gz`
/// (UTC, milliseconds so that two backups in one second do not collide).
pub(crate) fn file_name(name: &str, uid: u64, time: SystemTime, shard: u64) -> String {
    // iso8601 gives 2026-12-01T19:08:32Z.
    let stamp: String = iso8601(time)
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .map(|c| if c == 'T' { '-' } else { c })
        .collect();
    let millis = time.duration_since(UNIX_EPOCH).map(|d| d.subsec_millis()).unwrap_or(0);
    format!("{}{stamp}-{millis:03}_shard-{shard}.rdb.gz", file_prefix(name, uid))
}

/// gzip-compresses `data`.
fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data)?;
    encoder.finish()
}

impl Ops {
    fn set_progress(&self, uid: u64, which: Progress, progress: f64) {
        let mut state = self.cluster.lock();
        if let Some(bdb) = state.bdbs.get_mut(&uid) {
            match which {
                Progress::Export => bdb.export.progress = progress,
                Progress::Backup => bdb.backup.transfer.progress = progress,
            }
        }
    }

    /// Snapshots database `uid` and writes one `.rdb.gz` per shard to `location`; returns the file names.
    pub(crate) async fn write_backup(
        &self,
        uid: u64,
        location: &Location,
        s3: &S3Settings,
        which: Progress,
    ) -> Result<Vec<String>, Failure> {
        let general = |detail: String| ("general-error", detail);
        let (settings, name) = {
            let state = self.cluster.lock();
            let bdb = state
                .bdbs
                .get(&uid)
                .ok_or_else(|| general(format!("database {uid} vanished")))?;
            if bdb.process.is_none() {
                return Err(general(format!("database {uid} has no running process")));
            }
            (bdb.settings(self.cluster.service_ip), bdb.config.name.clone())
        };
        let dump = save_snapshot(&settings)
            .await
            .map_err(|error| general(error.to_string()))?;
        let data = std::fs::read(&dump);
        if settings.persistence == Persistence::Disabled {
            // A database without persistence must not find this snapshot when it restarts.
            let _ = std::fs::remove_file(&dump);
        }
        let data = data.map_err(|error| general(format!("failed to read the snapshot {}: {error}", dump.display())))?;
        self.set_progress(uid, which, 30.0);
        let compressed = tokio::task::spawn_blocking(move || gzip(&data))
            .await
            .map_err(|error| general(format!("the compression task failed: {error}")))?
            .map_err(|error| general(format!("failed to compress the snapshot: {error}")))?;
        self.set_progress(uid, which, 60.0);
        // One redis-server serves every shard of an emulated database: one file, shard 1.
        let file = file_name(&name, uid, SystemTime::now(), 1);
        location.put(s3, &file, compressed).await?;
        Ok(vec![file])
    }

    /// `POST /v1/bdbs/{uid}/actions/export`: writes the database's RDB files (gzip) to `export_location`.
    pub fn export(&self, uid: u64, body: &Value) -> Result<Value, ApiError> {
        let body = body_object(body)?;
        if let Some(key) = body
            .keys()
            .find(|key| !["export_location", "email_notification"].contains(&key.as_str()))
        {
            return Err(ApiError::invalid_schema(format!(
                "field '{key}' is not allowed in an export request"
            )));
        }
        let location = body
            .get("export_location")
            .ok_or_else(|| ApiError::invalid_schema("missing field 'export_location'"))?;
        let location = Location::parse(location)?;
        let mut state = self.cluster.lock();
        let s3 = s3_settings(&state);
        let bdb = state
            .bdbs
            .get_mut(&uid)
            .ok_or_else(|| ApiError::not_found(format!("database {uid} does not exist")))?;
        check_changeable(bdb)?;
        bdb.export = TransferStatus::running("exporting");
        let action_uid = state.start_bdb_action(&self.shared, uid, "export", ActionKind::Task);
        drop(state);
        let ops = self.clone();
        self.spawn_action(uid, action_uid.clone(), async move {
            let outcome = ops.write_backup(uid, &location, &s3, Progress::Export).await;
            if let Err((reason, detail)) = &outcome {
                tracing::warn!(bdb = uid, reason, detail, "export failed");
            }
            let mut state = ops.cluster.lock();
            if let Some(bdb) = state.bdbs.get_mut(&uid) {
                bdb.export = TransferStatus::finished(&outcome);
            }
            outcome.map(|_| ()).map_err(|(_, detail)| detail)
        });
        Ok(json!({ "action_uid": action_uid }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn file_names_carry_name_uid_time_and_shard() {
        let time = UNIX_EPOCH + Duration::from_millis(1_796_152_112_045);
        assert_eq!(
            file_name("orders", 3, time, 1),
            "orders_3_20261201-190832-045_shard-1.rdb.gz"
        );
        let long = "a-very-long-database-name-that-goes-on-and-on";
        let name = file_name(long, 1, time, 2);
        assert!(name.starts_with("a-very-long-database-name-that_1_"), "{name}");
        assert!(name.ends_with("_shard-2.rdb.gz"), "{name}");
    }

    #[test]
    fn gzip_output_is_gzip() {
        let compressed = gzip(b"REDIS0011 payload").expect("compress");
        assert_eq!(&compressed[..2], &[0x1f, 0x8b]);
    }
}
