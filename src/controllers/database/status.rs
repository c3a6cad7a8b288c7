//! Status stage: derives the REDB status (the official fields from the bdb, plus `Ready`, `Reconciling` and
//! `Stalled` conditions and `observedGeneration`) from what was observed and applied, and writes it with server-side
//! apply under this controller's field manager, only when something changed. Conditions and fields of other writers
//! (`Synced`, `sourceRevision`) are never sent. Warning events go with transitions into a failed condition. The status
//! after a pass is derived from the apply stage's report ([`Applied`]); the only writes before it are the creation
//! protocol's (`creation`), which use [`write_if_changed`] from here.

use kube::api::{Api, Patch};
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use super::dereference::{Blocked, References};
use super::report::{Applied, Progress};
use super::validate::ValidatedState;
use super::{DatabaseContext, DatabaseError, apply_params};
use crate::api::conditions::{Condition, types};
use crate::api::database::InternalEndpoint;
use crate::api::{RedisEnterpriseDatabase, RedisEnterpriseDatabaseStatus};
use crate::enterprise::states::ActionStatus;
use crate::enterprise::types::Bdb;
use crate::runtime::ErrorCategory;
use crate::runtime::conditions::{Clock, SystemClock, new_condition, set_condition};

const OWN_CONDITIONS: [&str; 3] = [types::READY, types::RECONCILING, types::STALLED];

/// The part of a status this controller owns: everything but `sourceRevision` and other writers' conditions.
pub fn owned_part(status: &RedisEnterpriseDatabaseStatus) -> RedisEnterpriseDatabaseStatus {
    let mut owned = status.clone();
    owned.source_revision = None;
    if owned
        .pending_creation
        .as_ref()
        .is_some_and(|pending| pending.name.is_empty())
    {
        owned.pending_creation = None;
    }
    if let Some(conditions) = owned.conditions.as_mut() {
        conditions.retain(|c| OWN_CONDITIONS.contains(&c.type_.as_str()));
    }
    owned
}

/// The conditions this controller asserts, as (type, status, reason, message); the rest of its own are dropped.
struct Assertions {
    ready: (bool, &'static str, String),
    reconciling: Option<(&'static str, String)>,
    stalled: Option<(&'static str, String)>,
}

fn apply_assertions(status: &mut RedisEnterpriseDatabaseStatus, assertions: Assertions, generation: Option<i64>) {
    let now = SystemClock.now();
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let condition = |type_: &str, value: bool, reason: &str, message: String| {
        new_condition(type_, value, reason, message, generation, now)
    };
    let (ready, reason, message) = assertions.ready;
    set_condition(conditions, condition(types::READY, ready, reason, message));
    for (type_, assertion) in [
        (types::RECONCILING, assertions.reconciling),
        (types::STALLED, assertions.stalled),
    ] {
        match assertion {
            Some((reason, message)) => {
                set_condition(conditions, condition(type_, true, reason, message));
            }
            None => conditions.retain(|c| c.type_ != type_),
        }
    }
}

/// The spec field of a bdb field that cannot change.
fn spec_field(bdb_field: &str) -> &str {
    match bdb_field {
        "port" => "databasePort",
        "type" => "type",
        "name" => "metadata.name",
        "module_list" => "modulesList",
        "shards_count" => "shardCount",
        other => other,
    }
}

fn immutable_message(fields: &[String], bdb: Option<&Bdb>, validated: &ValidatedState) -> String {
    let live_shards = bdb.and_then(|bdb| bdb.to_value().get("shards_count").and_then(Value::as_u64));
    let shards = fields.iter().any(|field| field == "shards_count").then(|| {
        let current = live_shards.map_or_else(|| "unknown".to_string(), |count| count.to_string());
        format!(
            "shardCount is {current} on the cluster and {} in the spec, but the cluster only splits shards: the count \
             can grow to a multiple of {current}, never shrink; set it back or to a multiple, or delete and recreate \
             the database (its data is lost); other changes wait until then",
            validated.database.shard_count
        )
    });
    let create_only: Vec<&String> = fields.iter().filter(|field| *field != "shards_count").collect();
    if create_only.is_empty() {
        return shards.unwrap_or_default();
    }
    let parts: Vec<String> = create_only
        .into_iter()
        .map(|field| {
            let live = bdb
                .and_then(|bdb| bdb.to_value().get(field).cloned())
                .map(|value| value.to_string())
                .unwrap_or_else(|| "unknown".to_string());
            let wanted = match field.as_str() {
                "port" => validated.database.port.map(|p| p.to_string()),
                "type" => Some(validated.database.database_type.as_str().to_string()),
                "module_list" => Some(
                    validated
                        .database
                        .modules
                        .iter()
                        .map(|module| module.name.as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                ),
                _ => None,
            }
            .unwrap_or_else(|| "unset".to_string());
            format!(
                "{} is {live} on the cluster and {wanted} in the spec",
                spec_field(field)
            )
        })
        .collect();
    let message = format!(
        "{} cannot change after creation; set it back, or delete and recreate the database (its data is lost) to change it; \
         other changes wait until then",
        parts.join(", ")
    );
    match shards {
        Some(shards) => format!("{message}; {shards}"),
        None => message,
    }
}

/// The status after a pass of the pipeline.
pub fn next_status(
    old: &RedisEnterpriseDatabaseStatus,
    redb: &RedisEnterpriseDatabase,
    validated: &ValidatedState,
    references: &References,
    applied: &Applied,
) -> RedisEnterpriseDatabaseStatus {
    let mut status = old.clone();
    let generation = redb.meta().generation;
    let name = redb.name_any();
    let cluster_name = references.cluster.name_any();
    status.spec_status = Some("Valid".to_string());
    status.redis_enterprise_cluster = Some(cluster_name.clone());
    if applied.bdb.is_some() || matches!(applied.progress, Progress::Rejected { .. }) {
        status.pending_creation = None;
    }
    if let Some(bdb) = &applied.bdb {
        let text = |key: &str| bdb.other.get(key).and_then(Value::as_str).map(str::to_string);
        status.status = Some(bdb.status.to_string());
        status.database_uid = Some(bdb.uid.to_string());
        status.version = text("version").or(status.version);
        status.created_time = text("created_time").or(status.created_time);
        status.last_updated = text("last_changed_time").or(status.last_updated);
        let endpoints: Vec<InternalEndpoint> = bdb
            .other
            .get("endpoints")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|endpoint| {
                let host = endpoint.get("dns_name").and_then(Value::as_str)?;
                Some(InternalEndpoint {
                    host: Some(host.to_string()),
                    port: endpoint
                        .get("port")
                        .and_then(Value::as_i64)
                        .or(Some(i64::from(bdb.port))),
                })
            })
            .collect();
        if !endpoints.is_empty() {
            status.internal_endpoints = Some(endpoints);
        }
        status.backup_info = super::backup::backup_info(bdb);
    }
    if let Some(shards) = &references.shard_statuses {
        status.shard_statuses = Some(shards.clone());
    }
    if let Some(action) = &applied.started_action {
        status.last_action_uid = Some(action.clone());
        status.last_action_status = Some(ActionStatus::Pending.to_string());
    } else if let Some(action) = &references.action {
        status.last_action_status = Some(action.status.to_string());
    }
    let uid = applied.bdb.as_ref().map_or_else(String::new, |bdb| bdb.uid.to_string());
    let assertions = match &applied.progress {
        Progress::Ready => {
            status.observed_generation = generation;
            Assertions {
                ready: (
                    true,
                    "DatabaseActive",
                    format!("database {name} (uid {uid}) is active on cluster {cluster_name}"),
                ),
                reconciling: None,
                stalled: None,
            }
        }
        Progress::Created => {
            let message = format!("creating database {name} (uid {uid}) on cluster {cluster_name}");
            Assertions {
                ready: (false, "Creating", message.clone()),
                reconciling: Some(("Creating", message)),
                stalled: None,
            }
        }
        Progress::Pending(state) => {
            let message = format!("database {name} (uid {uid}) is {state}; waiting for it to be active");
            Assertions {
                ready: (false, "DatabasePending", message.clone()),
                reconciling: Some(("DatabasePending", message)),
                stalled: None,
            }
        }
        Progress::Changed(what) => {
            let message = format!("applying the {what} change to database {name} (uid {uid})");
            Assertions {
                ready: (false, "Updating", message.clone()),
                reconciling: Some(("Updating", message)),
                stalled: None,
            }
        }
        Progress::Immutable(fields) => {
            let message = immutable_message(fields, applied.bdb.as_ref(), validated);
            Assertions {
                ready: (false, "ImmutableFieldChanged", message.clone()),
                reconciling: None,
                stalled: Some(("ImmutableFieldChanged", message)),
            }
        }
        Progress::Rejected { message, .. } => Assertions {
            ready: (false, "RequestRejected", message.clone()),
            reconciling: None,
            stalled: Some(("RequestRejected", message.clone())),
        },
        Progress::CreationFailed => {
            let message = format!(
                "the cluster failed to create database {name} (uid {uid}); check the cluster's resources and the spec, \
                 then delete the database in the cluster or the REDB to try again"
            );
            Assertions {
                ready: (false, "CreationFailed", message.clone()),
                reconciling: None,
                stalled: Some(("CreationFailed", message)),
            }
        }
    };
    apply_assertions(&mut status, assertions, generation);
    status
}

/// Writes `new` when its owned part differs from `old`'s; returns the owned part written (or unchanged).
pub(crate) async fn write_if_changed(
    redb: &RedisEnterpriseDatabase,
    old: &RedisEnterpriseDatabaseStatus,
    new: &RedisEnterpriseDatabaseStatus,
    context: &DatabaseContext,
) -> Result<RedisEnterpriseDatabaseStatus, DatabaseError> {
    let owned = owned_part(new);
    if owned_part(old) == owned {
        return Ok(owned);
    }
    let namespace = redb.namespace().unwrap_or_else(|| "default".to_string());
    let api: Api<RedisEnterpriseDatabase> = Api::namespaced(context.shared.client.clone(), &namespace);
    let body = json!({
        "apiVersion": RedisEnterpriseDatabase::api_version(&()),
        "kind": RedisEnterpriseDatabase::kind(&()),
        "status": owned,
    });
    api.patch_status(&redb.name_any(), &apply_params(), &Patch::Apply(&body))
        .await
        .map_err(|source| DatabaseError::Kubernetes {
            action: format!(
                "write the status of RedisEnterpriseDatabase {namespace}/{}",
                redb.name_any()
            ),
            source: Box::new(source),
        })?;
    warn_on_transition(redb, old, new, context).await;
    Ok(owned)
}

fn condition<'a>(status: &'a RedisEnterpriseDatabaseStatus, type_: &str) -> Option<&'a Condition> {
    status.conditions.iter().flatten().find(|c| c.type_ == type_)
}

/// A Warning event when the database becomes stalled or its stall reason changes.
async fn warn_on_transition(
    redb: &RedisEnterpriseDatabase,
    old: &RedisEnterpriseDatabaseStatus,
    new: &RedisEnterpriseDatabaseStatus,
    context: &DatabaseContext,
) {
    let Some(stalled) = condition(new, types::STALLED) else {
        return;
    };
    let before = condition(old, types::STALLED);
    if before.is_some_and(|b| b.reason == stalled.reason && b.message == stalled.message) {
        return;
    }
    context
        .publish(redb, EventType::Warning, &stalled.reason, "Reconcile", &stalled.message)
        .await;
}

/// Writes the status after a pass of the pipeline.
pub async fn write(
    redb: &RedisEnterpriseDatabase,
    validated: &ValidatedState,
    references: &References,
    applied: &Applied,
    context: &DatabaseContext,
) -> Result<(), DatabaseError> {
    let old = match &applied.recorded_status {
        Some(recorded) => {
            let mut old = redb.status.clone().unwrap_or_default();
            let foreign: Vec<Condition> = old
                .conditions
                .iter()
                .flatten()
                .filter(|c| !OWN_CONDITIONS.contains(&c.type_.as_str()))
                .cloned()
                .collect();
            old = recorded.clone();
            old.conditions.get_or_insert_with(Vec::new).extend(foreign);
            old
        }
        None => redb.status.clone().unwrap_or_default(),
    };
    let new = next_status(&old, redb, validated, references, applied);
    write_if_changed(redb, &old, &new, context).await.map(drop)
}

/// Writes the status of a REDB whose pipeline stopped before the apply stage (cluster missing or not running,
/// ambiguous, credentials unusable, invalid spec).
pub async fn write_blocked(
    redb: &RedisEnterpriseDatabase,
    blocked: &Blocked,
    context: &DatabaseContext,
) -> Result<(), DatabaseError> {
    let old = redb.status.clone().unwrap_or_default();
    let mut new = old.clone();
    if blocked.reason == "InvalidSpec" {
        new.spec_status = Some("Invalid".to_string());
    }
    let message = blocked.message.clone();
    let assertions = if blocked.stalled {
        Assertions {
            ready: (false, blocked.reason, message.clone()),
            reconciling: None,
            stalled: Some((blocked.reason, message)),
        }
    } else {
        Assertions {
            ready: (false, blocked.reason, message.clone()),
            reconciling: Some((blocked.reason, message)),
            stalled: None,
        }
    };
    apply_assertions(&mut new, assertions, redb.meta().generation);
    write_if_changed(redb, &old, &new, context).await.map(drop)
}

/// Reports a failed reconcile (to be retried with backoff): `Ready=False` with the error's category and text,
/// `Reconciling=True`, and a Warning event. Failing to write this is only logged.
pub async fn report_failure(redb: &RedisEnterpriseDatabase, error: &DatabaseError, context: &DatabaseContext) {
    // This reconcile may have written the status (a pending-creation marker) after `redb` was read: start from
    // the object as it is now, so the marker is kept.
    let redb = &super::fresh(redb, context).await.unwrap_or_else(|_| redb.clone());
    let old = redb.status.clone().unwrap_or_default();
    let mut new = old.clone();
    let message = format!("{error}; retrying with backoff");
    let assertions = Assertions {
        ready: (false, error.category(), message.clone()),
        reconciling: Some(("RetryingAfterFailure", message.clone())),
        stalled: None,
    };
    apply_assertions(&mut new, assertions, redb.meta().generation);
    if let Err(write_error) = write_if_changed(redb, &old, &new, context).await {
        tracing::warn!(error = %write_error, "failed to report a failure in the REDB status");
    }
    context
        .publish(redb, EventType::Warning, error.category(), "Reconcile", &message)
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owned_part_leaves_out_other_writers_fields() {
        let status = RedisEnterpriseDatabaseStatus {
            source_revision: Some("main@sha1:abc".into()),
            conditions: Some(vec![
                Condition {
                    type_: types::SYNCED.into(),
                    status: "True".into(),
                    ..Default::default()
                },
                Condition {
                    type_: types::READY.into(),
                    status: "True".into(),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        };
        let owned = owned_part(&status);
        assert_eq!(owned.source_revision, None);
        let types: Vec<&str> = owned.conditions.iter().flatten().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, [types::READY]);
    }
}
