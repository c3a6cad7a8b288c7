//! Import (`POST /v1/bdbs/{uid}/actions/import`): downloads every source (one per shard file, RDB or `.rdb.gz`,
//! from a mount point, S3 or SFTP), checks them, and replaces the database's content with them. The first file is
//! loaded as the database's snapshot; the keys of the others are copied in with MIGRATE from a scratch
//! redis-server. A source that cannot be read fails with `download-error`, one that is no RDB with
//! `file-corrupted`; the database then comes back empty, as RS leaves it after a failed import.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, TcpListener};

use serde_json::{Value, json};

use super::locations::{Location, S3Settings, Source};
use super::{Failure, s3_settings};
use crate::enterprise::actions::ActionKind;
use crate::enterprise::cluster::TransferStatus;
use crate::enterprise::error::ApiError;
use crate::enterprise::operations::{Ops, body_object, check_changeable, settle_status, start_from_snapshot};
use crate::enterprise::process::{Persistence, RedisProcess, RedisSettings};
use crate::enterprise::resp::{RespConnection, RespValue};

/// How many keys one MIGRATE moves.
const MIGRATE_BATCH: usize = 100;

/// The RDB content of a downloaded file: gunzipped when it is gzip, and checked to start with `REDIS`.
fn rdb_content(name: &str, data: Vec<u8>) -> Result<Vec<u8>, Failure> {
    let corrupted = |detail: String| ("file-corrupted", detail);
    let data = if data.starts_with(&[0x1f, 0x8b]) {
        let mut decoded = Vec::new();
        flate2::read::GzDecoder::new(data.as_slice())
            .read_to_end(&mut decoded)
            .map_err(|error| corrupted(format!("{name} is not a valid gzip file: {error}")))?;
        decoded
    } else {
        data
    };
    if !data.starts_with(b"REDIS") {
        return Err(corrupted(format!("{name} is not an RDB file")));
    }
    Ok(data)
}

impl Ops {
    /// `POST /v1/bdbs/{uid}/actions/import`: replaces the content with the files of `dataset_import_sources`.
    pub fn import(&self, uid: u64, body: &Value) -> Result<Value, ApiError> {
        let body = body_object(body)?;
        if let Some(key) = body
            .keys()
            .find(|key| !["dataset_import_sources", "email_notification"].contains(&key.as_str()))
        {
            return Err(ApiError::invalid_schema(format!(
                "field '{key}' is not allowed in an import request"
            )));
        }
        let sources = body
            .get("dataset_import_sources")
            .and_then(Value::as_array)
            .filter(|sources| !sources.is_empty())
            .ok_or_else(|| ApiError::invalid_schema("missing field 'dataset_import_sources' (a non-empty list)"))?;
        let sources = sources
            .iter()
            .map(Location::parse_source)
            .collect::<Result<Vec<Source>, ApiError>>()?;
        let mut state = self.cluster.lock();
        let s3 = s3_settings(&state);
        let bdb = state
            .bdbs
            .get_mut(&uid)
            .ok_or_else(|| ApiError::not_found(format!("database {uid} does not exist")))?;
        check_changeable(bdb)?;
        bdb.status = "import-pending";
        bdb.import = TransferStatus::running("importing");
        let action_uid = state.start_bdb_action(&self.shared, uid, "import", ActionKind::Task);
        drop(state);
        let ops = self.clone();
        self.spawn_action(uid, action_uid.clone(), async move {
            let outcome = ops.import_from(uid, &sources, &s3).await;
            if let Err((reason, detail)) = &outcome {
                tracing::warn!(bdb = uid, reason, detail, "import failed");
            }
            let mut state = ops.cluster.lock();
            if let Some(bdb) = state.bdbs.get_mut(&uid) {
                bdb.import = TransferStatus::finished(&outcome);
                settle_status(bdb);
            }
            outcome.map_err(|(_, detail)| detail)
        });
        Ok(json!({ "action_uid": action_uid }))
    }

    fn set_import_progress(&self, uid: u64, progress: f64) {
        if let Some(bdb) = self.cluster.lock().bdbs.get_mut(&uid) {
            bdb.import.progress = progress;
        }
    }

    async fn import_from(&self, uid: u64, sources: &[Source], s3: &S3Settings) -> Result<(), Failure> {
        let mut files = Vec::new();
        for source in sources {
            let data = source.location.get(s3, &source.filename).await?;
            files.push(rdb_content(&source.filename, data)?);
        }
        self.set_import_progress(uid, 40.0);
        let (process, settings) = {
            let mut state = self.cluster.lock();
            let bdb = state
                .bdbs
                .get_mut(&uid)
                .ok_or_else(|| ("general-error", format!("database {uid} vanished")))?;
            (bdb.process.take(), bdb.settings(self.cluster.service_ip))
        };
        // Killed, not stopped: the old content must not be saved over the import.
        drop(process);
        let dump = settings.dir.join("dump.rdb");
        let binary = self.shared.config.redis_server.clone();
        let mut outcome = std::fs::write(&dump, &files[0])
            .map_err(|error| ("general-error", format!("failed to write {}: {error}", dump.display())));
        let mut process = None;
        if outcome.is_ok() {
            match start_from_snapshot(&binary, &settings).await {
                Ok(started) => process = Some(started),
                Err(error) => outcome = Err(("file-corrupted", error.to_string())),
            }
        }
        if process.is_some() {
            for (index, file) in files.iter().enumerate().skip(1) {
                if let Err(failure) = self.merge_file(uid, index, file, &settings).await {
                    outcome = Err(failure);
                    // Partly imported content is no result: come back empty.
                    process = None;
                    break;
                }
            }
        }
        if process.is_none() {
            let _ = std::fs::remove_file(&dump);
            process = start_from_snapshot(&binary, &settings).await.ok();
        }
        let mut state = self.cluster.lock();
        if let Some(bdb) = state.bdbs.get_mut(&uid) {
            bdb.process = process;
        }
        outcome
    }

    /// Copies every key of RDB `file` into the running database: a scratch redis-server loads the file and
    /// MIGRATEs its keys (COPY REPLACE) to the database.
    async fn merge_file(&self, uid: u64, index: usize, file: &[u8], target: &RedisSettings) -> Result<(), Failure> {
        let general = |detail: String| ("general-error", detail);
        let dir = target.dir.join(format!("import-{index}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .map_err(|error| general(format!("failed to create {}: {error}", dir.display())))?;
        std::fs::write(dir.join("dump.rdb"), file)
            .map_err(|error| general(format!("failed to write a source: {error}")))?;
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let port = TcpListener::bind((ip, 0))
            .and_then(|listener| listener.local_addr())
            .map_err(|error| general(format!("no free port for the scratch server: {error}")))?
            .port();
        let scratch = RedisSettings {
            ip,
            port,
            passwords: Vec::new(),
            max_memory: 0,
            eviction_policy: "noeviction".to_string(),
            persistence: Persistence::Disabled,
            dir: dir.clone(),
        };
        let started = RedisProcess::start(&self.shared.config.redis_server, scratch.clone(), false).await;
        let server =
            started.map_err(|error| ("file-corrupted", format!("source {} did not load: {error}", index + 1)))?;
        let result = migrate_all(&scratch, target).await;
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);
        self.set_import_progress(uid, 40.0 + 50.0 * index as f64 / (index as f64 + 1.0));
        result
    }
}

fn bulk_text(value: &RespValue) -> Option<String> {
    match value {
        RespValue::Bulk(Some(bytes)) => Some(String::from_utf8_lossy(bytes).to_string()),
        RespValue::Simple(text) => Some(text.clone()),
        _ => None,
    }
}

/// MIGRATEs every key of `source` to `target`.
async fn migrate_all(source: &RedisSettings, target: &RedisSettings) -> Result<(), Failure> {
    let general = |detail: String| ("general-error", detail);
    let mut connection = RespConnection::connect(source.addr(), None)
        .await
        .map_err(|error| general(error.to_string()))?;
    let (host, port) = (target.ip.to_string(), target.port.to_string());
    let mut cursor = "0".to_string();
    loop {
        let reply = connection
            .command(&["SCAN", &cursor, "COUNT", "1000"])
            .await
            .map_err(|error| general(error.to_string()))?;
        let RespValue::Array(Some(parts)) = reply else {
            return Err(general("SCAN answered no array".to_string()));
        };
        let (next, keys) = match parts.as_slice() {
            [next, RespValue::Array(Some(keys))] => (
                bulk_text(next).unwrap_or_else(|| "0".to_string()),
                keys.iter().filter_map(bulk_text).collect::<Vec<_>>(),
            ),
            _ => return Err(general("SCAN answered an unexpected shape".to_string())),
        };
        for batch in keys.chunks(MIGRATE_BATCH) {
            let mut args = vec!["MIGRATE", &host, &port, "", "0", "30000", "COPY", "REPLACE"];
            if let Some(password) = target.admin_password() {
                args.extend(["AUTH", password]);
            }
            args.push("KEYS");
            args.extend(batch.iter().map(String::as_str));
            connection
                .command(&args)
                .await
                .map_err(|error| general(error.to_string()))?;
        }
        if next == "0" {
            return Ok(());
        }
        cursor = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn gzip_and_plain_rdb_files_are_accepted_and_others_are_corrupted() {
        assert_eq!(
            rdb_content("a.rdb", b"REDIS0011x".to_vec()).expect("plain"),
            b"REDIS0011x"
        );
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(b"REDIS0011y").expect("compress");
        let gz = encoder.finish().expect("finish");
        assert_eq!(rdb_content("a.rdb.gz", gz.clone()).expect("gzip"), b"REDIS0011y");
        assert_eq!(
            rdb_content("junk", b"not an rdb".to_vec()).expect_err("junk").0,
            "file-corrupted"
        );
        assert_eq!(
            rdb_content("cut.gz", gz[..gz.len() / 2].to_vec()).expect_err("cut").0,
            "file-corrupted"
        );
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(b"garbage").expect("compress");
        let gz = encoder.finish().expect("finish");
        assert_eq!(rdb_content("g.gz", gz).expect_err("no rdb inside").0, "file-corrupted");
    }
}
