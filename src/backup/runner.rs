//! The `RedisBackup` controller: one export per object. `Pending` → `Running` (the run's directory is prepared,
//! the key count read, `POST /v1/bdbs/{uid}/actions/export` sent; 409 busy is retried with backoff, not a
//! failure) → `Succeeded` with the files and their sizes (listed at the location) or `Failed` with the cluster's
//! `export_failure_reason`. A restarted agent follows the export it started instead of starting another (the
//! status records the accepted request; the run's own directory tells whether an export of it finished).
//! With `spec.verify` a succeeded backup is imported into a scratch database and its key count compared.
//! Deleting a RedisBackup deletes its files only with `spec.deleteFilesOnDeletion` or the annotation
//! `redisgitops.dev/delete-backup-files: "true"` (a finalizer).

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::core::DeserializeGuard;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::watcher;
use serde_json::{Value, json};
use tracing::{info, warn};

use super::store::RunLocation;
use super::{
    BackupContext, BackupError, BackupSettings, DatabaseOnCluster, database_on_cluster, key_count, rfc3339,
    run_location, write_status,
};
use crate::api::backup::{RedisBackup, RedisBackupStatus, phases};
use crate::controllers::ControllerContext;
use crate::enterprise::EnterpriseError;
use crate::runtime::{ErrorCategory, ShutdownSignal, api_in, guard, object_key};

/// The controller's name on events.
pub const CONTROLLER_NAME: &str = "redis-gitops-backup";
/// The finalizer that deletes a RedisBackup's files before the object goes.
pub const FINALIZER: &str = "redisgitops.dev/backup-files";
const CONTROLLER: &str = "backup";

/// Runs the RedisBackup controller in `namespace` (or everywhere) until `shutdown` resolves.
pub async fn run_in(
    context: ControllerContext,
    settings: BackupSettings,
    namespace: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let scope = namespace.as_deref();
    let client = context.client.clone();
    let context = BackupContext::new(context, settings, CONTROLLER_NAME);
    let backups: Api<DeserializeGuard<RedisBackup>> = api_in(&client, scope);
    let shutdown = ShutdownSignal::relay(shutdown);
    info!(namespace = scope.unwrap_or("*"), "backup controller started");
    Controller::new(backups, watcher::Config::default().any_semantic())
        .with_config(
            kube::runtime::controller::Config::default().concurrency(crate::controllers::RECONCILE_CONCURRENCY),
        )
        .graceful_shutdown_on(shutdown.stopped())
        .run(reconcile_guarded, error_policy, context)
        .for_each(|_| async {})
        .await;
}

async fn reconcile_guarded(
    backup: Arc<DeserializeGuard<RedisBackup>>,
    context: Arc<BackupContext>,
) -> Result<Action, BackupError> {
    match guard::decoded(backup.as_ref(), &context.events).await {
        Some(backup) => {
            let result = reconcile(&backup, &context).await;
            context.record_outcome(CONTROLLER, &result);
            if result.is_ok() {
                context.backoff.succeeded(&object_key(backup.as_ref()));
            }
            result
        }
        None => Ok(Action::await_change()),
    }
}

fn error_policy(
    backup: Arc<DeserializeGuard<RedisBackup>>,
    error: &BackupError,
    context: Arc<BackupContext>,
) -> Action {
    if let BackupError::Waiting(_) = error {
        return Action::requeue(context.settings.poll * 2);
    }
    let key = object_key(backup.as_ref());
    let delay = context.backoff.failed(&key, error.is_rate_limited());
    warn!(backup = %key, category = error.category(), %error, ?delay, "backup reconcile failed; retrying");
    Action::requeue(delay)
}

/// Whether deleting this RedisBackup should delete its files.
pub fn deletes_files(backup: &RedisBackup) -> bool {
    backup.spec.delete_files_on_deletion == Some(true)
        || backup
            .annotations()
            .get(crate::api::keys::DELETE_BACKUP_FILES)
            .is_some_and(|value| value == "true")
}

async fn reconcile(backup: &RedisBackup, context: &BackupContext) -> Result<Action, BackupError> {
    let client = &context.shared.client;
    let namespace = backup.namespace().unwrap_or_else(|| "default".to_string());
    let name = backup.name_any();
    let api: Api<RedisBackup> = Api::namespaced(client.clone(), &namespace);
    let has_finalizer = backup.finalizers().iter().any(|f| f == FINALIZER);
    if backup.metadata.deletion_timestamp.is_some() {
        if has_finalizer {
            if deletes_files(backup) {
                delete_files(backup, context).await?;
            }
            remove_finalizer(&api, backup).await?;
        }
        return Ok(Action::await_change());
    }
    if deletes_files(backup) && !has_finalizer {
        let mut finalizers = backup.finalizers().to_vec();
        finalizers.push(FINALIZER.to_string());
        api.patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": finalizers}})),
        )
        .await
        .map_err(|source| BackupError::kube(format!("add the finalizer to RedisBackup {namespace}/{name}"), source))?;
    }
    // The watch cache can lag behind this controller's own status writes; a run must never send a second export
    // because it saw an older copy.
    let fresh = api
        .get_opt(&name)
        .await
        .map_err(|source| BackupError::kube(format!("read RedisBackup {namespace}/{name}"), source))?;
    let Some(fresh) = fresh else {
        return Ok(Action::await_change());
    };
    let backup = &fresh;
    let status = backup.status.clone().unwrap_or_default();
    if phases::is_finished(status.phase.as_deref()) {
        if status.phase.as_deref() == Some(phases::SUCCEEDED)
            && backup.spec.verify == Some(true)
            && status.verified.is_none()
        {
            super::runner::verify(backup, context).await?;
        }
        return Ok(Action::await_change());
    }
    let database = match database_on_cluster(&context.shared, &namespace, &backup.spec.database).await {
        Ok(database) => database,
        Err(BackupError::Waiting(message)) => {
            let mut pending = status.clone();
            pending.phase = Some(phases::PENDING.to_string());
            pending.message = Some(message.clone());
            save(context, backup, &status, pending).await?;
            return Err(BackupError::Waiting(message));
        }
        Err(error) => return Err(error),
    };
    let location = run_location(
        client,
        &namespace,
        &backup.spec.location,
        &name,
        Some(&database.cluster),
    )
    .await?;
    let mut next = status.clone();
    next.location = Some(location.display());
    next.database_uid = Some(database.uid as i64);
    if status.export_requested != Some(true) {
        if status.phase.as_deref() == Some(phases::RUNNING) && adopt_export(&database, &location).await? {
            // An agent that stopped between the export request and recording it: the export is this run's.
            next.export_requested = Some(true);
            save(context, backup, &status, next).await?;
            return Ok(Action::requeue(context.settings.poll));
        }
        return start_export(backup, context, &database, &location, status, next).await;
    }
    follow_export(backup, context, &database, &location, status, next).await
}

/// Whether a run marked `Running` without a recorded request has an export of its own: one under way on the
/// database, or files already in the run's directory.
async fn adopt_export(database: &DatabaseOnCluster, location: &RunLocation) -> Result<bool, BackupError> {
    let bdb = read_bdb(database).await?;
    if matches!(
        field(&bdb, "export_status").as_deref(),
        Some("exporting" | "initializing")
    ) {
        return Ok(true);
    }
    Ok(location.list().await?.is_some_and(|files| !files.is_empty()))
}

async fn start_export(
    backup: &RedisBackup,
    context: &BackupContext,
    database: &DatabaseOnCluster,
    location: &RunLocation,
    status: RedisBackupStatus,
    mut next: RedisBackupStatus,
) -> Result<Action, BackupError> {
    let now = chrono::Utc::now();
    let first_attempt = status.phase.as_deref() != Some(phases::RUNNING);
    next.phase = Some(phases::RUNNING.to_string());
    next.start_time.get_or_insert_with(|| rfc3339(now));
    next.key_count = key_count(&database.client, database.uid).await.or(status.key_count);
    next.message = Some(format!(
        "exporting database {} to {}",
        backup.spec.database,
        location.display()
    ));
    // Recorded before the request, so a restarted agent knows a request may have been sent.
    save(context, backup, &status, next.clone()).await?;
    if let Err(error) = location.prepare() {
        return fail(backup, context, &next, "wrong-file-path", &error.to_string()).await;
    }
    match database
        .client
        .export_database(database.uid, &location.export_location())
        .await
    {
        Ok(()) => {}
        Err(EnterpriseError::Busy { .. }) => {
            // Busy is not a failed run: wait and ask again.
            let delay = context.backoff.failed(&object_key(backup), true);
            let mut busy = next.clone();
            busy.message = Some(format!(
                "the database is busy (HTTP 409); retrying the export in {}s",
                delay.as_secs()
            ));
            save(context, backup, &next, busy).await?;
            return Ok(Action::requeue(delay));
        }
        Err(error @ EnterpriseError::Api { .. }) => {
            return fail(backup, context, &next, "general-error", &error.to_string()).await;
        }
        Err(error) => {
            return Err(BackupError::Rest {
                action: format!("export database {}", backup.spec.database),
                cluster: database.cluster_key.clone(),
                source: Box::new(error),
            });
        }
    }
    let mut requested = next.clone();
    requested.export_requested = Some(true);
    save(context, backup, &next, requested).await?;
    if first_attempt {
        context
            .events
            .publish(
                backup,
                EventType::Normal,
                "BackupStarted",
                "Export",
                &format!("exporting database {} to {}", backup.spec.database, location.display()),
            )
            .await;
    }
    Ok(Action::requeue(context.settings.poll))
}

async fn follow_export(
    backup: &RedisBackup,
    context: &BackupContext,
    database: &DatabaseOnCluster,
    location: &RunLocation,
    status: RedisBackupStatus,
    mut next: RedisBackupStatus,
) -> Result<Action, BackupError> {
    let bdb = read_bdb(database).await?;
    match field(&bdb, "export_status").as_deref() {
        Some("succeeded") => {
            let files = location.list().await?;
            if files.as_ref().is_some_and(Vec::is_empty) {
                return fail(
                    backup,
                    context,
                    &next,
                    "no-files",
                    &format!("the export succeeded but {} holds no files", location.display()),
                )
                .await;
            }
            let now = chrono::Utc::now();
            next.phase = Some(phases::SUCCEEDED.to_string());
            next.completion_time = Some(rfc3339(now));
            next.total_bytes = files.as_ref().map(|files| files.iter().map(|file| file.size).sum());
            next.files = files;
            next.failure_reason = None;
            next.message = Some(format!(
                "exported database {} to {}{}",
                backup.spec.database,
                location.display(),
                next.files
                    .as_ref()
                    .map(|files| format!(" ({} files)", files.len()))
                    .unwrap_or_default()
            ));
            record_duration(context, &next, now);
            save(context, backup, &status, next.clone()).await?;
            context
                .events
                .publish(
                    backup,
                    EventType::Normal,
                    "BackupSucceeded",
                    "Export",
                    next.message.as_deref().unwrap_or_default(),
                )
                .await;
            if backup.spec.verify == Some(true) {
                return Ok(Action::requeue(context.settings.poll));
            }
            Ok(Action::await_change())
        }
        Some("failed") => {
            let reason = field(&bdb, "export_failure_reason").unwrap_or_else(|| "general-error".to_string());
            fail(
                backup,
                context,
                &next,
                &reason,
                &format!("the cluster reports the export failed: {reason}"),
            )
            .await
        }
        _ => {
            if let Some(progress) = bdb.get("export_progress").and_then(Value::as_f64) {
                next.message = Some(format!("exporting database {}: {progress:.0}%", backup.spec.database));
            }
            save(context, backup, &status, next).await?;
            Ok(Action::requeue(context.settings.poll))
        }
    }
}

fn record_duration(context: &BackupContext, status: &RedisBackupStatus, now: chrono::DateTime<chrono::Utc>) {
    if let Some(start) = super::parse_time(status.start_time.as_deref()) {
        context
            .shared
            .metrics
            .backup_duration
            .observe((now - start).num_milliseconds().max(0) as f64 / 1000.0);
    }
}

/// The reasons a failed run is counted under: the cluster's documented ones, the agent's own, or `other`.
fn reason_label(reason: &str) -> &'static str {
    match reason {
        "no-permission" => "no-permission",
        "wrong-file-path" => "wrong-file-path",
        "general-error" => "general-error",
        "no-files" => "no-files",
        _ => "other",
    }
}

async fn fail(
    backup: &RedisBackup,
    context: &BackupContext,
    current: &RedisBackupStatus,
    reason: &str,
    message: &str,
) -> Result<Action, BackupError> {
    let now = chrono::Utc::now();
    let mut next = current.clone();
    next.phase = Some(phases::FAILED.to_string());
    next.completion_time = Some(rfc3339(now));
    next.failure_reason = Some(reason.to_string());
    next.message = Some(message.to_string());
    record_duration(context, &next, now);
    context
        .shared
        .metrics
        .backup_failures
        .get_or_create(&crate::telemetry::CategoryLabels {
            category: reason_label(reason),
        })
        .inc();
    save(context, backup, current, next).await?;
    context
        .events
        .publish(backup, EventType::Warning, "BackupFailed", "Export", message)
        .await;
    Ok(Action::await_change())
}

/// Writes the status when it changed.
async fn save(
    context: &BackupContext,
    backup: &RedisBackup,
    current: &RedisBackupStatus,
    next: RedisBackupStatus,
) -> Result<(), BackupError> {
    if *current == next && backup.status.is_some() {
        return Ok(());
    }
    let value = serde_json::to_value(&next).unwrap_or(Value::Null);
    write_status(&context.shared.client, backup, None, value).await
}

async fn read_bdb(database: &DatabaseOnCluster) -> Result<Value, BackupError> {
    match database.client.database(database.uid).await {
        Ok(Some(bdb)) => Ok(bdb.to_value()),
        Ok(None) => Err(BackupError::Waiting(format!(
            "database uid {} of RedisEnterpriseDatabase {} is gone from cluster {}",
            database.uid,
            database.redb.name_any(),
            database.cluster_key
        ))),
        Err(error) => Err(BackupError::Rest {
            action: format!("read database {}", database.uid),
            cluster: database.cluster_key.clone(),
            source: Box::new(error),
        }),
    }
}

fn field(bdb: &Value, name: &str) -> Option<String> {
    bdb.get(name).and_then(Value::as_str).map(str::to_string)
}

/// The location of a recorded backup's run.
pub async fn backup_location(backup: &RedisBackup, context: &ControllerContext) -> Result<RunLocation, BackupError> {
    let namespace = backup.namespace().unwrap_or_else(|| "default".to_string());
    let cluster = match database_on_cluster(context, &namespace, &backup.spec.database).await {
        Ok(database) => Some(database.cluster),
        Err(_) => None,
    };
    run_location(
        &context.client,
        &namespace,
        &backup.spec.location,
        &backup.name_any(),
        cluster.as_ref(),
    )
    .await
}

/// Deletes a backup's files (already gone counts as deleted).
pub async fn delete_files(backup: &RedisBackup, context: &BackupContext) -> Result<(), BackupError> {
    let location = backup_location(backup, &context.shared).await?;
    location.delete_all().await?;
    Ok(())
}

async fn remove_finalizer(api: &Api<RedisBackup>, backup: &RedisBackup) -> Result<(), BackupError> {
    let finalizers: Vec<String> = backup
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    let name = backup.name_any();
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": finalizers}})),
    )
    .await
    .map(drop)
    .or_else(|error| match &error {
        kube::Error::Api(status) if status.code == 404 => Ok(()),
        _ => Err(BackupError::kube(
            format!("remove the finalizer of RedisBackup {name}"),
            error,
        )),
    })
}

/// The name of the scratch database that verifies `backup` (stable, so a restarted agent finds and removes it).
pub fn scratch_name(backup: &RedisBackup) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!(
        "{}/{}",
        backup.namespace().unwrap_or_default(),
        backup.name_any()
    ));
    let hash: String = digest[..6].iter().map(|byte| format!("{byte:02x}")).collect();
    format!("verify-{hash}")
}

/// Verifies a succeeded backup: imports its files into a scratch database on the same cluster, compares the key
/// count with the one recorded at backup time, records `status.verified`, and deletes the scratch database.
pub async fn verify(backup: &RedisBackup, context: &BackupContext) -> Result<(), BackupError> {
    let namespace = backup.namespace().unwrap_or_else(|| "default".to_string());
    let database = database_on_cluster(&context.shared, &namespace, &backup.spec.database).await?;
    let status = backup.status.clone().unwrap_or_default();
    let location = run_location(
        &context.shared.client,
        &namespace,
        &backup.spec.location,
        &backup.name_any(),
        Some(&database.cluster),
    )
    .await?;
    let scratch = scratch_name(backup);
    let outcome = verify_in_scratch(&database, &location, &status, &scratch, context).await;
    // The scratch database goes whatever the outcome.
    let cleanup = remove_scratch(&database, &scratch).await;
    let (verified, message) = match outcome {
        Ok(message) => (true, message),
        Err(VerifyFailure::Failed(message)) => (false, message),
        Err(VerifyFailure::Error(error)) => return Err(error),
    };
    cleanup?;
    let mut next = status.clone();
    next.verified = Some(verified);
    next.verify_message = Some(message.clone());
    save(context, backup, &status, next).await?;
    let (type_, reason) = if verified {
        (EventType::Normal, "BackupVerified")
    } else {
        (EventType::Warning, "BackupVerificationFailed")
    };
    context.events.publish(backup, type_, reason, "Verify", &message).await;
    Ok(())
}

enum VerifyFailure {
    /// The backup did not prove restorable.
    Failed(String),
    /// The verification itself could not run (retried).
    Error(BackupError),
}

impl From<BackupError> for VerifyFailure {
    fn from(error: BackupError) -> Self {
        Self::Error(error)
    }
}

async fn verify_in_scratch(
    database: &DatabaseOnCluster,
    location: &RunLocation,
    status: &RedisBackupStatus,
    scratch: &str,
    context: &BackupContext,
) -> Result<String, VerifyFailure> {
    let rest = |action: String| {
        let cluster = database.cluster_key.clone();
        move |error: EnterpriseError| {
            VerifyFailure::Error(BackupError::Rest {
                action,
                cluster,
                source: Box::new(error),
            })
        }
    };
    let files = status.files.clone().unwrap_or_default();
    if files.is_empty() {
        return Err(VerifyFailure::Failed(
            "the backup records no files to import".to_string(),
        ));
    }
    let source = read_bdb(database).await?;
    let memory = source
        .get("memory_size")
        .and_then(Value::as_u64)
        .unwrap_or(100 * 1024 * 1024);
    let deadline = Instant::now() + context.settings.verify_timeout;
    let existing = database
        .client
        .database_by_name(scratch)
        .await
        .map_err(rest(format!("look up scratch database {scratch}")))?;
    let uid = match existing {
        Some(bdb) => bdb.uid,
        None => {
            let mut body = serde_json::Map::new();
            body.insert("name".into(), json!(scratch));
            body.insert("memory_size".into(), json!(memory));
            database
                .client
                .create_database(&body)
                .await
                .map_err(rest(format!("create scratch database {scratch}")))?
                .uid
        }
    };
    loop {
        let bdb = database
            .client
            .database(uid)
            .await
            .map_err(rest(format!("read scratch database {scratch}")))?;
        if bdb
            .as_ref()
            .is_some_and(|bdb| bdb.to_value().get("status").and_then(Value::as_str) == Some("active"))
        {
            break;
        }
        if Instant::now() > deadline {
            return Err(VerifyFailure::Error(BackupError::Waiting(format!(
                "scratch database {scratch} did not become active"
            ))));
        }
        tokio::time::sleep(context.settings.poll).await;
    }
    let sources: Vec<Value> = files.iter().map(|file| location.import_source(&file.name)).collect();
    loop {
        match database.client.import_database(uid, &sources).await {
            Ok(()) => break,
            Err(EnterpriseError::Busy { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(context.settings.poll).await;
            }
            Err(EnterpriseError::Api {
                description,
                error_code,
                ..
            }) => {
                return Err(VerifyFailure::Failed(format!(
                    "the cluster refused the import: {error_code} {description}"
                )));
            }
            Err(error) => return Err(rest(format!("import into scratch database {scratch}"))(error)),
        }
    }
    loop {
        let bdb = database
            .client
            .database(uid)
            .await
            .map_err(rest(format!("read scratch database {scratch}")))?;
        let value = bdb.map(|bdb| bdb.to_value()).unwrap_or(Value::Null);
        match value.get("import_status").and_then(Value::as_str) {
            Some("succeeded") => break,
            Some("failed") => {
                let reason = field(&value, "import_failure_reason").unwrap_or_else(|| "general-error".to_string());
                return Err(VerifyFailure::Failed(format!(
                    "the import into a scratch database failed: {reason}"
                )));
            }
            _ if Instant::now() > deadline => {
                return Err(VerifyFailure::Failed(
                    "the import into a scratch database did not finish in time".to_string(),
                ));
            }
            _ => tokio::time::sleep(context.settings.poll).await,
        }
    }
    let recorded = status.key_count;
    let restored = key_count(&database.client, uid).await;
    match (recorded, restored) {
        (Some(recorded), Some(restored)) if recorded != restored => Err(VerifyFailure::Failed(format!(
            "the scratch database holds {restored} keys after the import; the backup recorded {recorded}"
        ))),
        (Some(recorded), Some(_)) => Ok(format!(
            "imported into a scratch database with the recorded {recorded} keys"
        )),
        _ => Ok("imported into a scratch database (the cluster reports no key counts to compare)".to_string()),
    }
}

async fn remove_scratch(database: &DatabaseOnCluster, scratch: &str) -> Result<(), BackupError> {
    let rest = |error| BackupError::Rest {
        action: format!("delete scratch database {scratch}"),
        cluster: database.cluster_key.clone(),
        source: Box::new(error),
    };
    if let Some(bdb) = database.client.database_by_name(scratch).await.map_err(rest)? {
        match database.client.delete_database(bdb.uid).await {
            Ok(()) => {}
            Err(error) if error.is_not_found() => {}
            Err(error) => return Err(rest(error)),
        }
    }
    Ok(())
}
