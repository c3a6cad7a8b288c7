//! The `RedisRestore` controller: imports a succeeded `RedisBackup` (named, or the latest successful one of a
//! schedule) into a database, one import source per file, and follows `import_status`. One-shot: a finished
//! restore never runs again, not after a restart and not when a GitSync applies it again (its status is kept).
//! A database that holds keys is refused unless `spec.overwrite: true`, because the import erases it.

use std::sync::Arc;

use futures::StreamExt;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::core::DeserializeGuard;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::watcher;
use serde_json::Value;
use tracing::{info, warn};

use super::{
    BackupContext, BackupError, BackupSettings, database_on_cluster, key_count, parse_time, rfc3339, run_location,
    write_status,
};
use crate::api::backup::{DATABASE_LABEL, RedisBackup, RedisRestore, RedisRestoreStatus, SCHEDULE_LABEL, phases};
use crate::controllers::ControllerContext;
use crate::enterprise::EnterpriseError;
use crate::runtime::{ErrorCategory, ShutdownSignal, api_in, guard, object_key};

/// The controller's name on events.
pub const CONTROLLER_NAME: &str = "redis-gitops-restore";
const CONTROLLER: &str = "restore";

/// Runs the RedisRestore controller in `namespace` (or everywhere) until `shutdown` resolves.
pub async fn run_in(
    context: ControllerContext,
    settings: BackupSettings,
    namespace: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let scope = namespace.as_deref();
    let client = context.client.clone();
    let context = BackupContext::new(context, settings, CONTROLLER_NAME);
    let restores: Api<DeserializeGuard<RedisRestore>> = api_in(&client, scope);
    let shutdown = ShutdownSignal::relay(shutdown);
    info!(namespace = scope.unwrap_or("*"), "restore controller started");
    Controller::new(restores, watcher::Config::default().any_semantic())
        .with_config(
            kube::runtime::controller::Config::default().concurrency(crate::controllers::RECONCILE_CONCURRENCY),
        )
        .graceful_shutdown_on(shutdown.stopped())
        .run(reconcile_guarded, error_policy, context)
        .for_each(|_| async {})
        .await;
}

async fn reconcile_guarded(
    restore: Arc<DeserializeGuard<RedisRestore>>,
    context: Arc<BackupContext>,
) -> Result<Action, BackupError> {
    match guard::decoded(restore.as_ref(), &context.events).await {
        Some(restore) => {
            let result = reconcile(&restore, &context).await;
            context.record_outcome(CONTROLLER, &result);
            result
        }
        None => Ok(Action::await_change()),
    }
}

fn error_policy(
    restore: Arc<DeserializeGuard<RedisRestore>>,
    error: &BackupError,
    context: Arc<BackupContext>,
) -> Action {
    if let BackupError::Waiting(_) = error {
        return Action::requeue(context.settings.poll * 2);
    }
    let key = object_key(restore.as_ref());
    let delay = context.backoff.failed(&key, error.is_rate_limited());
    warn!(restore = %key, category = error.category(), %error, ?delay, "restore reconcile failed; retrying");
    Action::requeue(delay)
}

/// The backup a restore names, or the latest successful one of its schedule and database.
async fn resolve_backup(restore: &RedisRestore, client: &kube::Client, namespace: &str) -> Result<RedisBackup, String> {
    let api: Api<RedisBackup> = Api::namespaced(client.clone(), namespace);
    match (&restore.spec.backup_name, &restore.spec.schedule) {
        (Some(name), None) => match api.get_opt(name).await {
            Ok(Some(backup)) => Ok(backup),
            Ok(None) => Err(format!("RedisBackup {namespace}/{name} does not exist")),
            Err(error) => Err(format!("failed to read RedisBackup {namespace}/{name}: {error}")),
        },
        (None, Some(schedule)) => {
            let Some(database) = &restore.spec.database else {
                return Err("spec.database is required with spec.schedule".to_string());
            };
            let list = api
                .list(
                    &ListParams::default().labels(&format!("{SCHEDULE_LABEL}={schedule},{DATABASE_LABEL}={database}")),
                )
                .await
                .map_err(|error| format!("failed to list the RedisBackups of schedule {schedule}: {error}"))?;
            list.items
                .into_iter()
                .filter(|backup| backup.status.as_ref().and_then(|s| s.phase.as_deref()) == Some(phases::SUCCEEDED))
                .max_by_key(|backup| parse_time(backup.status.as_ref().and_then(|s| s.completion_time.as_deref())))
                .ok_or_else(|| format!("schedule {schedule} has no successful RedisBackup of database {database}"))
        }
        _ => Err("set exactly one of spec.backupName and spec.schedule".to_string()),
    }
}

async fn reconcile(restore: &RedisRestore, context: &BackupContext) -> Result<Action, BackupError> {
    let client = &context.shared.client;
    let namespace = restore.namespace().unwrap_or_else(|| "default".to_string());
    let name = restore.name_any();
    let api: Api<RedisRestore> = Api::namespaced(client.clone(), &namespace);
    // Decide from the API server's copy: a stale cache must never start a second import.
    let Some(restore) = api
        .get_opt(&name)
        .await
        .map_err(|source| BackupError::kube(format!("read RedisRestore {namespace}/{name}"), source))?
    else {
        return Ok(Action::await_change());
    };
    let restore = &restore;
    let status = restore.status.clone().unwrap_or_default();
    if phases::is_finished(status.phase.as_deref()) {
        return Ok(Action::await_change());
    }
    let backup = match resolve_backup(restore, client, &namespace).await {
        Ok(backup) => backup,
        Err(message) => return fail(restore, context, &status, "BackupNotFound", &message).await,
    };
    let backup_status = backup.status.clone().unwrap_or_default();
    if backup_status.phase.as_deref() != Some(phases::SUCCEEDED) {
        if phases::is_finished(backup_status.phase.as_deref()) {
            let message = format!(
                "RedisBackup {} failed; only a succeeded backup can be restored",
                backup.name_any()
            );
            return fail(restore, context, &status, "BackupFailed", &message).await;
        }
        return Err(BackupError::Waiting(format!(
            "RedisBackup {} has not finished yet",
            backup.name_any()
        )));
    }
    let target = restore
        .spec
        .database
        .clone()
        .unwrap_or_else(|| backup.spec.database.clone());
    let database = database_on_cluster(&context.shared, &namespace, &target).await?;
    let mut next = status.clone();
    next.backup_name = Some(backup.name_any());
    next.database = Some(target.clone());
    if status.import_requested == Some(true) {
        return follow_import(restore, context, &database, status, next).await;
    }
    let bdb = read_bdb(&database).await?;
    if status.phase.as_deref() == Some(phases::RUNNING)
        && matches!(
            field(&bdb, "import_status").as_deref(),
            Some("importing" | "initializing")
        )
    {
        // Sent by an agent that stopped before recording it: follow it.
        next.import_requested = Some(true);
        save(context, restore, &status, next).await?;
        return Ok(Action::requeue(context.settings.poll));
    }
    if status.phase.as_deref() != Some(phases::RUNNING) && restore.spec.overwrite != Some(true) {
        match key_count(&database.client, database.uid).await {
            Some(0) => {}
            Some(keys) => {
                let message = format!(
                    "database {target} holds {keys} keys and the import would erase them; set spec.overwrite: true to \
                     restore into it anyway"
                );
                return fail(restore, context, &status, "TargetNotEmpty", &message).await;
            }
            None => {
                let message = format!(
                    "the cluster does not report how many keys database {target} holds; set spec.overwrite: true to \
                     restore into it (the import erases its content)"
                );
                return fail(restore, context, &status, "TargetNotEmpty", &message).await;
            }
        }
    }
    let files = backup_status.files.clone().unwrap_or_default();
    if files.is_empty() {
        let message = format!("RedisBackup {} records no files", backup.name_any());
        return fail(restore, context, &status, "NoFiles", &message).await;
    }
    let location = run_location(
        client,
        &namespace,
        &backup.spec.location,
        &backup.name_any(),
        Some(&database.cluster),
    )
    .await?;
    next.phase = Some(phases::RUNNING.to_string());
    next.start_time.get_or_insert_with(|| rfc3339(chrono::Utc::now()));
    next.message = Some(format!(
        "importing RedisBackup {} into database {target}",
        backup.name_any()
    ));
    save(context, restore, &status, next.clone()).await?;
    let sources: Vec<Value> = files.iter().map(|file| location.import_source(&file.name)).collect();
    match database.client.import_database(database.uid, &sources).await {
        Ok(()) => {}
        Err(EnterpriseError::Busy { .. }) => {
            let delay = context.backoff.failed(&object_key(restore), true);
            return Ok(Action::requeue(delay));
        }
        Err(error @ EnterpriseError::Api { .. }) => {
            let message = format!("the cluster refused the import: {error}");
            return fail(restore, context, &next, "ImportRefused", &message).await;
        }
        Err(error) => {
            return Err(BackupError::Rest {
                action: format!("import into database {target}"),
                cluster: database.cluster_key.clone(),
                source: Box::new(error),
            });
        }
    }
    let mut requested = next.clone();
    requested.import_requested = Some(true);
    save(context, restore, &next, requested).await?;
    Ok(Action::requeue(context.settings.poll))
}

async fn follow_import(
    restore: &RedisRestore,
    context: &BackupContext,
    database: &super::DatabaseOnCluster,
    status: RedisRestoreStatus,
    mut next: RedisRestoreStatus,
) -> Result<Action, BackupError> {
    let bdb = read_bdb(database).await?;
    match field(&bdb, "import_status").as_deref() {
        Some("succeeded") => {
            next.phase = Some(phases::SUCCEEDED.to_string());
            next.completion_time = Some(rfc3339(chrono::Utc::now()));
            next.key_count = key_count(&database.client, database.uid).await;
            next.failure_reason = None;
            next.message = Some(format!(
                "restored RedisBackup {} into database {}",
                next.backup_name.clone().unwrap_or_default(),
                next.database.clone().unwrap_or_default()
            ));
            save(context, restore, &status, next.clone()).await?;
            context
                .events
                .publish(
                    restore,
                    EventType::Normal,
                    "Restored",
                    "Import",
                    next.message.as_deref().unwrap_or_default(),
                )
                .await;
            Ok(Action::await_change())
        }
        Some("failed") => {
            let reason = field(&bdb, "import_failure_reason").unwrap_or_else(|| "general-error".to_string());
            let message = format!("the cluster reports the import failed: {reason}");
            fail(restore, context, &next, &reason, &message).await
        }
        _ => {
            save(context, restore, &status, next).await?;
            Ok(Action::requeue(context.settings.poll))
        }
    }
}

async fn fail(
    restore: &RedisRestore,
    context: &BackupContext,
    current: &RedisRestoreStatus,
    reason: &str,
    message: &str,
) -> Result<Action, BackupError> {
    let mut next = current.clone();
    next.phase = Some(phases::FAILED.to_string());
    next.completion_time = Some(rfc3339(chrono::Utc::now()));
    next.failure_reason = Some(reason.to_string());
    next.message = Some(message.to_string());
    save(context, restore, current, next).await?;
    context
        .events
        .publish(restore, EventType::Warning, "RestoreFailed", "Import", message)
        .await;
    Ok(Action::await_change())
}

async fn save(
    context: &BackupContext,
    restore: &RedisRestore,
    current: &RedisRestoreStatus,
    next: RedisRestoreStatus,
) -> Result<(), BackupError> {
    if *current == next && restore.status.is_some() {
        return Ok(());
    }
    let value = serde_json::to_value(&next).unwrap_or(Value::Null);
    write_status(&context.shared.client, restore, None, value).await
}

async fn read_bdb(database: &super::DatabaseOnCluster) -> Result<Value, BackupError> {
    match database.client.database(database.uid).await {
        Ok(Some(bdb)) => Ok(bdb.to_value()),
        Ok(None) => Err(BackupError::Waiting(format!(
            "database uid {} is gone from cluster {}",
            database.uid, database.cluster_key
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
