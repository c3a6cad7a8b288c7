//! The `RedisBackupSchedule` controller: at each slot it creates one `RedisBackup` per database (named from the
//! schedule, the database and the slot in UTC, so a restarted agent finds the run instead of creating a second),
//! one run at a time per database (a slot whose previous run still goes is skipped and counted), one catch-up run
//! after downtime, missed slots counted; then applies retention and reports the latest results in its status.
//! RedisBackups carry no owner reference: deleting a schedule deletes no backup and no file.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::core::DeserializeGuard;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use serde_json::Value;
use tracing::{info, warn};

use super::retention::{FinishedRun, RetentionPolicy, runs_to_prune};
use super::schedule;
use super::{BackupContext, BackupError, BackupSettings, parse_time, rfc3339, write_status};
use crate::api::RedisEnterpriseDatabase;
use crate::api::backup::{
    DATABASE_LABEL, RedisBackup, RedisBackupSchedule, RedisBackupScheduleStatus, RedisBackupSpec, SCHEDULE_LABEL,
    ScheduledDatabase, phases,
};
use crate::api::conditions::{Condition, types};
use crate::controllers::ControllerContext;
use crate::runtime::{
    ConditionStatus, ErrorCategory, ShutdownSignal, api_in, guard, new_condition, object_key, set_condition,
};

/// The controller's name on events.
pub const CONTROLLER_NAME: &str = "redis-gitops-backup-schedule";
const CONTROLLER: &str = "backup-schedule";

/// Runs the schedule controller in `namespace` (or everywhere) until `shutdown` resolves.
pub async fn run_in(
    context: ControllerContext,
    settings: BackupSettings,
    namespace: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let scope = namespace.as_deref();
    let client = context.client.clone();
    let context = BackupContext::new(context, settings, CONTROLLER_NAME);
    let schedules: Api<DeserializeGuard<RedisBackupSchedule>> = api_in(&client, scope);
    let backups: Api<RedisBackup> = api_in(&client, scope);
    let shutdown = ShutdownSignal::relay(shutdown);
    info!(namespace = scope.unwrap_or("*"), "backup schedule controller started");
    Controller::new(schedules, watcher::Config::default().any_semantic())
        .watches(
            backups,
            watcher::Config::default().labels(SCHEDULE_LABEL),
            |backup: RedisBackup| {
                let schedule = backup.labels().get(SCHEDULE_LABEL).cloned()?;
                let namespace = backup.namespace()?;
                Some(ObjectRef::<DeserializeGuard<RedisBackupSchedule>>::new(&schedule).within(&namespace))
            },
        )
        .with_config(
            kube::runtime::controller::Config::default().concurrency(crate::controllers::RECONCILE_CONCURRENCY),
        )
        .graceful_shutdown_on(shutdown.stopped())
        .run(reconcile_guarded, error_policy, context)
        .for_each(|_| async {})
        .await;
}

async fn reconcile_guarded(
    schedule: Arc<DeserializeGuard<RedisBackupSchedule>>,
    context: Arc<BackupContext>,
) -> Result<Action, BackupError> {
    match guard::decoded(schedule.as_ref(), &context.events).await {
        Some(schedule) => {
            let result = reconcile(&schedule, &context, Utc::now()).await;
            let outcome = if result.is_ok() { "success" } else { "failure" };
            let failure = result.as_ref().err().map(|e| e.category());
            context.shared.metrics.record_reconcile(CONTROLLER, outcome, failure);
            if result.is_ok() {
                context.backoff.succeeded(&object_key(schedule.as_ref()));
            }
            result
        }
        None => Ok(Action::await_change()),
    }
}

fn error_policy(
    schedule: Arc<DeserializeGuard<RedisBackupSchedule>>,
    error: &BackupError,
    context: Arc<BackupContext>,
) -> Action {
    let key = object_key(schedule.as_ref());
    let delay = context.backoff.failed(&key, error.is_rate_limited());
    warn!(schedule = %key, category = error.category(), %error, ?delay, "backup schedule reconcile failed; retrying");
    Action::requeue(delay)
}

/// The databases a schedule names (`spec.databases`) or selects (`spec.selector`), sorted.
async fn target_databases(
    schedule: &RedisBackupSchedule,
    client: &kube::Client,
    namespace: &str,
) -> Result<Vec<String>, BackupError> {
    if let Some(names) = &schedule.spec.databases {
        let mut names = names.clone();
        names.sort();
        names.dedup();
        return Ok(names);
    }
    let Some(selector) = &schedule.spec.selector else {
        return Ok(Vec::new());
    };
    let mut parts: Vec<String> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    for expression in selector.match_expressions.iter().flatten() {
        let values = expression.values.clone().unwrap_or_default().join(",");
        parts.push(match expression.operator.as_str() {
            "In" => format!("{} in ({values})", expression.key),
            "NotIn" => format!("{} notin ({values})", expression.key),
            "Exists" => expression.key.clone(),
            _ => format!("!{}", expression.key),
        });
    }
    let redbs: Api<RedisEnterpriseDatabase> = Api::namespaced(client.clone(), namespace);
    let list = redbs
        .list(&ListParams::default().labels(&parts.join(",")))
        .await
        .map_err(|source| BackupError::kube(format!("list RedisEnterpriseDatabases in {namespace}"), source))?;
    let mut names: Vec<String> = list.items.iter().map(|redb| redb.name_any()).collect();
    names.sort();
    Ok(names)
}

/// One reconcile at `now`.
pub async fn reconcile(
    schedule: &RedisBackupSchedule,
    context: &BackupContext,
    now: DateTime<Utc>,
) -> Result<Action, BackupError> {
    let client = &context.shared.client;
    let namespace = schedule.namespace().unwrap_or_else(|| "default".to_string());
    let name = schedule.name_any();
    // Decide from the API server's copy: the watch cache can lag behind this controller's last status write, and
    // deciding twice from an old one would count missed slots twice.
    let api: Api<RedisBackupSchedule> = Api::namespaced(client.clone(), &namespace);
    let Some(fresh) = api
        .get_opt(&name)
        .await
        .map_err(|source| BackupError::kube(format!("read RedisBackupSchedule {namespace}/{name}"), source))?
    else {
        return Ok(Action::await_change());
    };
    let schedule = &fresh;
    let current = schedule.status.clone().unwrap_or_default();
    let mut status = current.clone();
    status.observed_generation = schedule.metadata.generation;
    let parsed = match schedule::parse(&schedule.spec.schedule, schedule.spec.time_zone.as_deref()) {
        Ok(parsed) => parsed,
        Err(error) => {
            set_ready(
                &mut status,
                schedule,
                ConditionStatus::False,
                "InvalidSchedule",
                &error.to_string(),
                now,
            );
            save(context, schedule, &current, status).await?;
            return Ok(Action::await_change());
        }
    };
    let databases = target_databases(schedule, client, &namespace).await?;
    let backups_api: Api<RedisBackup> = Api::namespaced(client.clone(), &namespace);
    let runs = backups_api
        .list(&ListParams::default().labels(&format!("{SCHEDULE_LABEL}={name}")))
        .await
        .map_err(|source| BackupError::kube(format!("list the RedisBackups of schedule {namespace}/{name}"), source))?
        .items;
    let mut by_database: BTreeMap<String, Vec<RedisBackup>> = BTreeMap::new();
    for run in runs {
        by_database.entry(run.spec.database.clone()).or_default().push(run);
    }
    let suspended = schedule.spec.suspend == Some(true);
    let created = schedule
        .metadata
        .creation_timestamp
        .as_ref()
        .and_then(|time| DateTime::from_timestamp(time.0.as_second(), 0))
        .unwrap_or(now);
    // Resuming decides from now: the slots passed while suspended never run and are not counted.
    if current.suspended == Some(true) && !suspended {
        status.last_check_time = Some(rfc3339(now));
    }
    status.suspended = Some(suspended);
    let floor = parse_time(status.last_check_time.as_deref())
        .unwrap_or(created)
        .max(created);
    let deadline = schedule.spec.starting_deadline_seconds.map(chrono::Duration::seconds);
    let previous: BTreeMap<String, ScheduledDatabase> = current
        .databases
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|entry| (entry.name.clone(), entry))
        .collect();
    let mut entries = Vec::new();
    let mut wake: Option<DateTime<Utc>> = None;
    let mut next_slot: Option<DateTime<Utc>> = None;
    let mut missed_total = 0u64;
    let mut skipped_total = 0u64;
    for database in &databases {
        let mut entry = previous.get(database).cloned().unwrap_or_else(|| ScheduledDatabase {
            name: database.clone(),
            ..Default::default()
        });
        let runs = by_database.remove(database).unwrap_or_default();
        if !suspended {
            let offset =
                schedule::jitter_offset(&namespace, &name, database, schedule.spec.jitter_seconds.unwrap_or(0));
            let since = parse_time(entry.last_schedule_time.as_deref()).map_or(floor, |last| last.max(floor));
            let decision = schedule::decide(&parsed, since, now, deadline, offset);
            missed_total += decision.missed;
            if let Some(slot) = decision.run {
                let run_name = schedule::run_name(&name, database, slot);
                let exists = runs.iter().any(|run| run.name_any() == run_name);
                let busy = runs.iter().any(|run| {
                    run.name_any() != run_name
                        && !phases::is_finished(run.status.as_ref().and_then(|s| s.phase.as_deref()))
                });
                if exists {
                    // Created before a restart: adopted, not repeated.
                } else if busy {
                    skipped_total += 1;
                    context
                        .events
                        .publish(
                            schedule,
                            EventType::Warning,
                            "BackupSkipped",
                            "Schedule",
                            &format!(
                                "the slot {} of database {database} was skipped: the previous run still goes",
                                rfc3339(slot)
                            ),
                        )
                        .await;
                } else {
                    create_run(schedule, context, &backups_api, database, &run_name, slot).await?;
                }
            }
            if let Some(decided) = decision.decided {
                entry.last_schedule_time = Some(rfc3339(decided));
            }
            wake = min_time(wake, decision.next_due);
            next_slot = min_time(next_slot, decision.next_slot);
        }
        apply_retention(schedule, context, &backups_api, &mut entry, &runs, now).await?;
        let latest = runs.iter().max_by_key(|run| run_time(run));
        entry.last_result = latest.map(|run| {
            run.status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_else(|| phases::PENDING.to_string())
        });
        if let Some(success) = newest_success(&runs) {
            entry.last_successful_time = Some(rfc3339(success.1));
            context
                .shared
                .metrics
                .backup_last_success
                .get_or_create(&crate::telemetry::BackupLabels {
                    namespace: namespace.clone(),
                    schedule: name.clone(),
                    database: database.clone(),
                })
                .set(success.1.timestamp() as f64);
        }
        entries.push(entry);
    }
    if missed_total + skipped_total > 0 {
        context
            .shared
            .metrics
            .backup_runs_missed
            .get_or_create(&crate::telemetry::ScheduleLabels {
                namespace: namespace.clone(),
                schedule: name.clone(),
            })
            .inc_by(missed_total + skipped_total);
    }
    status.missed_runs = Some(current.missed_runs.unwrap_or(0) + missed_total as i64);
    status.skipped_runs = Some(current.skipped_runs.unwrap_or(0) + skipped_total as i64);
    status.last_schedule_time = entries.iter().filter_map(|e| e.last_schedule_time.clone()).max();
    status.last_successful_time = entries.iter().filter_map(|e| e.last_successful_time.clone()).max();
    status.last_result = latest_result(&entries);
    status.next_schedule_time = next_slot.map(rfc3339);
    status.databases = Some(entries);
    let missing = missing_databases(client, &namespace, &databases).await?;
    if databases.is_empty() {
        set_ready(
            &mut status,
            schedule,
            ConditionStatus::False,
            "NoDatabases",
            "the schedule names or selects no database",
            now,
        );
    } else if !missing.is_empty() {
        set_ready(
            &mut status,
            schedule,
            ConditionStatus::False,
            "DatabaseNotFound",
            &format!(
                "RedisEnterpriseDatabase {} does not exist in {namespace}",
                missing.join(", ")
            ),
            now,
        );
    } else if suspended {
        set_ready(
            &mut status,
            schedule,
            ConditionStatus::True,
            "Suspended",
            "the schedule is suspended",
            now,
        );
    } else {
        set_ready(
            &mut status,
            schedule,
            ConditionStatus::True,
            "Scheduled",
            &format!("{} databases scheduled", databases.len()),
            now,
        );
    }
    save(context, schedule, &current, status).await?;
    let max_wait = context.settings.max_schedule_wait;
    let wait = wake
        .map(|wake| (wake - now).to_std().unwrap_or_default())
        .unwrap_or(max_wait)
        .clamp(std::time::Duration::from_millis(100), max_wait);
    Ok(Action::requeue(wait))
}

fn min_time(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// When a run happened: its slot, else its creation.
fn run_time(run: &RedisBackup) -> Option<DateTime<Utc>> {
    parse_time(run.spec.scheduled_time.as_deref()).or_else(|| {
        run.metadata
            .creation_timestamp
            .as_ref()
            .and_then(|t| DateTime::from_timestamp(t.0.as_second(), 0))
    })
}

fn finish_time(run: &RedisBackup) -> Option<DateTime<Utc>> {
    parse_time(run.status.as_ref().and_then(|s| s.completion_time.as_deref())).or_else(|| run_time(run))
}

fn newest_success(runs: &[RedisBackup]) -> Option<(String, DateTime<Utc>)> {
    runs.iter()
        .filter(|run| run.status.as_ref().and_then(|s| s.phase.as_deref()) == Some(phases::SUCCEEDED))
        .filter_map(|run| Some((run.name_any(), finish_time(run)?)))
        .max_by_key(|(_, time)| *time)
}

fn latest_result(entries: &[ScheduledDatabase]) -> Option<String> {
    // Failed wins over Running over Succeeded when several databases ran at the latest slot.
    let latest = entries.iter().filter_map(|e| e.last_schedule_time.clone()).max()?;
    let results: Vec<&str> = entries
        .iter()
        .filter(|e| e.last_schedule_time.as_deref() == Some(latest.as_str()))
        .filter_map(|e| e.last_result.as_deref())
        .collect();
    for phase in [phases::FAILED, phases::RUNNING, phases::PENDING, phases::SUCCEEDED] {
        if results.contains(&phase) {
            return Some(phase.to_string());
        }
    }
    entries.iter().find_map(|e| e.last_result.clone())
}

async fn missing_databases(
    client: &kube::Client,
    namespace: &str,
    names: &[String],
) -> Result<Vec<String>, BackupError> {
    let redbs: Api<RedisEnterpriseDatabase> = Api::namespaced(client.clone(), namespace);
    let mut missing = Vec::new();
    for name in names {
        let found = redbs
            .get_opt(name)
            .await
            .map_err(|source| BackupError::kube(format!("read RedisEnterpriseDatabase {namespace}/{name}"), source))?;
        if found.is_none() {
            missing.push(name.clone());
        }
    }
    Ok(missing)
}

async fn create_run(
    schedule: &RedisBackupSchedule,
    context: &BackupContext,
    api: &Api<RedisBackup>,
    database: &str,
    run_name: &str,
    slot: DateTime<Utc>,
) -> Result<(), BackupError> {
    let mut backup = RedisBackup::new(
        run_name,
        RedisBackupSpec {
            database: database.to_string(),
            location: schedule.spec.location.clone(),
            schedule: Some(schedule.name_any()),
            scheduled_time: Some(rfc3339(slot)),
            verify: schedule.spec.verify,
            delete_files_on_deletion: None,
        },
    );
    let labels = backup.metadata.labels.get_or_insert_with(Default::default);
    labels.insert(SCHEDULE_LABEL.to_string(), schedule.name_any());
    labels.insert(DATABASE_LABEL.to_string(), database.to_string());
    labels.insert(
        crate::api::keys::MANAGED_BY.to_string(),
        crate::api::keys::MANAGER.to_string(),
    );
    match api.create(&PostParams::default(), &backup).await {
        Ok(_) => {
            context
                .events
                .publish(
                    schedule,
                    EventType::Normal,
                    "BackupScheduled",
                    "Schedule",
                    &format!(
                        "created RedisBackup {run_name} for database {database} at slot {}",
                        rfc3339(slot)
                    ),
                )
                .await;
            Ok(())
        }
        // Created by an earlier agent that stopped before recording it: adopted.
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(source) => Err(BackupError::kube(format!("create RedisBackup {run_name}"), source)),
    }
}

/// Prunes the runs of one database that retention no longer keeps: the files first, then the object.
async fn apply_retention(
    schedule: &RedisBackupSchedule,
    context: &BackupContext,
    api: &Api<RedisBackup>,
    entry: &mut ScheduledDatabase,
    runs: &[RedisBackup],
    now: DateTime<Utc>,
) -> Result<(), BackupError> {
    let Some(retention) = &schedule.spec.retention else {
        return Ok(());
    };
    let policy = RetentionPolicy {
        keep_last: retention.keep_last.map(|count| count.max(1) as usize),
        max_age: retention
            .max_age
            .as_ref()
            .and_then(|age| chrono::Duration::from_std(std::time::Duration::from(*age)).ok()),
    };
    let finished: Vec<FinishedRun> = runs
        .iter()
        .filter(|run| run.metadata.deletion_timestamp.is_none())
        .filter_map(|run| {
            let phase = run.status.as_ref().and_then(|s| s.phase.as_deref());
            if !phases::is_finished(phase) {
                return None;
            }
            Some(FinishedRun {
                name: run.name_any(),
                succeeded: phase == Some(phases::SUCCEEDED),
                time: finish_time(run)?,
            })
        })
        .collect();
    let Some((_, newest)) = newest_success(runs) else {
        return Ok(());
    };
    let pruned = runs_to_prune(&finished, policy, now, parse_time(entry.pruned_after.as_deref()));
    for name in &pruned {
        let Some(run) = runs.iter().find(|run| run.name_any() == *name) else {
            continue;
        };
        let location = super::runner::backup_location(run, &context.shared).await?;
        location.delete_all().await?;
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(source) => return Err(BackupError::kube(format!("delete RedisBackup {name}"), source)),
        }
        context
            .events
            .publish(
                schedule,
                EventType::Normal,
                "BackupPruned",
                "Prune",
                &format!("deleted RedisBackup {name} and its files at {}", location.display()),
            )
            .await;
    }
    entry.pruned_after = Some(rfc3339(newest));
    Ok(())
}

fn set_ready(
    status: &mut RedisBackupScheduleStatus,
    schedule: &RedisBackupSchedule,
    value: ConditionStatus,
    reason: &str,
    message: &str,
    now: DateTime<Utc>,
) {
    let mut conditions: Vec<Condition> = status.conditions.clone().unwrap_or_default();
    let stamp =
        k8s_openapi::jiff::Timestamp::from_second(now.timestamp()).unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
    set_condition(
        &mut conditions,
        new_condition(
            types::READY,
            value,
            reason,
            message,
            schedule.metadata.generation,
            stamp,
        ),
    );
    status.conditions = Some(conditions);
}

async fn save(
    context: &BackupContext,
    schedule: &RedisBackupSchedule,
    current: &RedisBackupScheduleStatus,
    next: RedisBackupScheduleStatus,
) -> Result<(), BackupError> {
    if *current == next && schedule.status.is_some() {
        return Ok(());
    }
    let value = serde_json::to_value(&next).unwrap_or(Value::Null);
    write_status(&context.shared.client, schedule, None, value).await
}
