//! The crash-safe creation protocol (issue 9), the one place the apply stage writes status: the intent
//! (`status.pendingCreation`: name, cluster, a random token) is written BEFORE `POST /v1/bdbs`, and the uid the
//! cluster returns right after it. An agent that stops in between recognises its database by the marker instead of
//! creating a second one or leaving it orphaned; from the recorded uid on, only that bdb is this REDB's.

use kube::ResourceExt;

use super::dereference::{References, pending_creation};
use super::status::write_if_changed;
use super::{DatabaseContext, DatabaseError};
use crate::api::database::PendingCreation;
use crate::api::{RedisEnterpriseDatabase, RedisEnterpriseDatabaseStatus};
use crate::enterprise::states::ActionStatus;
use crate::enterprise::types::Bdb;

/// Step 1, before the create request: records the intent to create the bdb; an intent already recorded for this
/// name and cluster is kept, and a uid recorded for a bdb that is gone is dropped. Returns the owned status written.
pub async fn record_intent(
    redb: &RedisEnterpriseDatabase,
    token: &str,
    references: &References,
    context: &DatabaseContext,
) -> Result<RedisEnterpriseDatabaseStatus, DatabaseError> {
    let old = redb.status.clone().unwrap_or_default();
    let mut status = old.clone();
    if pending_creation(redb, &references.cluster_key).is_none() {
        status.pending_creation = Some(PendingCreation {
            name: redb.name_any(),
            cluster: references.cluster_key.clone(),
            token: token.to_string(),
        });
    }
    status.database_uid = None;
    write_if_changed(redb, &old, &status, context).await
}

/// Step 2, right after the create answer: records the new bdb (uid, action, `pending`) and drops the marker, so a
/// restart finds it by uid. `base` is the status as step 1 wrote it.
pub async fn record_creation(
    redb: &RedisEnterpriseDatabase,
    base: RedisEnterpriseDatabaseStatus,
    created: &Bdb,
    references: &References,
    context: &DatabaseContext,
) -> Result<RedisEnterpriseDatabaseStatus, DatabaseError> {
    let old = base;
    let mut status = old.clone();
    status.pending_creation = None;
    status.database_uid = Some(created.uid.to_string());
    status.status = Some(created.status.to_string());
    status.redis_enterprise_cluster = Some(references.cluster.name_any());
    if let Some(action) = &created.action_uid {
        status.last_action_uid = Some(action.clone());
        status.last_action_status = Some(ActionStatus::Pending.to_string());
    }
    write_if_changed(redb, &old, &status, context).await
}
