//! Cleanup of a deleted REDB (behind the finalizer). It deletes only the bdb this REDB owns: the uid its status
//! records, or the one its pending-creation marker names (created before the agent stopped; see
//! [`super::dereference::find_bdb`]); a database of the same name owned by anyone else is never touched. It keeps the
//! finalizer until the cluster no longer lists the bdb ("already gone" is done).
//!
//! Two annotations keep the data: `redisgitops.dev/deletion-policy: orphan` lets the REDB go and leaves the bdb
//! (and its Secret, whose owner reference is removed first); `redisgitops.dev/protect: "true"` without it keeps the
//! finalizer, with a `Stalled` condition and a Warning event saying how to release the database.
//!
//! When the cluster itself is gone, no longer allows the REDB's namespace, or its credentials Secret is gone, or it is
//! being deleted and can no longer be reached, nothing can be deleted: the cleanup completes and an event says why,
//! so no finalizer gets stuck. A cluster being deleted that still answers has the database deleted as usual (its own
//! deletion waits for its REDBs). A cluster that is merely unreachable is retried with backoff. The Secret, Services
//! and EndpointSlices go with the REDB by owner reference.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::dereference::{
    Blocked, ClusterLookup, cluster_key, database_secret_name, find_cluster, other_owner, pending_creation,
    recorded_uid,
};
use super::{DatabaseContext, DatabaseError, is_orphaned_on_delete, is_protected, status};
use crate::api::{RedisEnterpriseCluster, RedisEnterpriseDatabase, keys};
use crate::controllers::{ConnectionError, connect_to_cluster};
use crate::enterprise::states::DatabaseStatus;
use crate::enterprise::types::Bdb;
use crate::enterprise::{EnterpriseClient, EnterpriseError};
use crate::runtime::object_key;

/// The message of a protected REDB whose deletion is refused.
pub fn protected_message(redb: &RedisEnterpriseDatabase) -> String {
    let what = match recorded_uid(redb) {
        Some(uid) => format!("database {} (uid {uid})", redb.name_any()),
        None => format!("database {}", redb.name_any()),
    };
    format!(
        "{what} is protected ({}: \"true\") and was not deleted; to delete it and its data, remove that annotation; \
         to remove this REDB and keep the database, add the annotation {}: {}",
        keys::PROTECT,
        keys::DELETION_POLICY,
        keys::DELETION_POLICY_ORPHAN
    )
}

/// Removes this REDB's owner reference from its database Secret, so the credentials of an orphaned database stay.
async fn keep_secret(redb: &RedisEnterpriseDatabase, context: &DatabaseContext) -> Result<(), DatabaseError> {
    let namespace = redb.namespace().unwrap_or_else(|| "default".to_string());
    let name = database_secret_name(redb);
    let secrets: Api<Secret> = Api::namespaced(context.shared.client.clone(), &namespace);
    let failed = |action: String| {
        move |source: kube::Error| DatabaseError::Kubernetes {
            action,
            source: Box::new(source),
        }
    };
    let Some(secret) = secrets
        .get_opt(&name)
        .await
        .map_err(failed(format!("read the database Secret {namespace}/{name}")))?
    else {
        return Ok(());
    };
    let uid = redb.uid();
    let owners = secret.owner_references();
    if !owners.iter().any(|owner| Some(&owner.uid) == uid.as_ref()) {
        return Ok(());
    }
    let kept: Vec<_> = owners
        .iter()
        .filter(|owner| Some(&owner.uid) != uid.as_ref())
        .cloned()
        .collect();
    let patch = json!({"metadata": {
        "resourceVersion": secret.resource_version(),
        "ownerReferences": if kept.is_empty() { serde_json::Value::Null } else { json!(kept) },
    }});
    secrets
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(failed(format!("release the database Secret {namespace}/{name}")))?;
    Ok(())
}

/// The bdb this REDB owns on the cluster, if it still exists (see the module doc).
async fn owned_bdb(
    redb: &RedisEnterpriseDatabase,
    rest: &EnterpriseClient,
    cluster: &RedisEnterpriseCluster,
    context: &DatabaseContext,
) -> Result<Option<Bdb>, DatabaseError> {
    let name = redb.name_any();
    let key = cluster_key(cluster);
    let failed = |action: String| {
        let cluster = key.clone();
        move |source: crate::enterprise::EnterpriseError| DatabaseError::Rest {
            action,
            cluster,
            source: Box::new(source),
        }
    };
    if let Some(uid) = recorded_uid(redb) {
        let bdb = rest
            .database(uid)
            .await
            .map_err(failed(format!("read database {name} (uid {uid})")))?;
        return Ok(bdb.filter(|bdb| bdb.name == name));
    }
    if pending_creation(redb, &key).is_none() {
        return Ok(None);
    }
    let Some(bdb) = rest
        .database_by_name(&name)
        .await
        .map_err(failed(format!("look up database {name} by name")))?
    else {
        return Ok(None);
    };
    let kubernetes = |action: &'static str| {
        move |source: kube::Error| DatabaseError::Kubernetes {
            action: action.to_string(),
            source: Box::new(source),
        }
    };
    let client = &context.shared.client;
    let databases = Api::<RedisEnterpriseDatabase>::all(client.clone())
        .list(&Default::default())
        .await
        .map_err(kubernetes("list RedisEnterpriseDatabases"))?
        .items;
    let clusters = Api::<RedisEnterpriseCluster>::all(client.clone())
        .list(&Default::default())
        .await
        .map_err(kubernetes("list RedisEnterpriseClusters"))?
        .items;
    Ok(other_owner(redb, &name, Some(bdb.uid), cluster, &databases, &clusters)
        .is_none()
        .then_some(bdb))
}

/// Runs the cleanup; `Ok` lets the finalizer go, [`DatabaseError::DeletionPending`] comes back soon and
/// [`DatabaseError::DeletionRefused`] waits for the protection to be released.
pub async fn delete_database(
    redb: &RedisEnterpriseDatabase,
    context: &DatabaseContext,
) -> Result<Action, DatabaseError> {
    let refreshed;
    let redb = if recorded_uid(redb).is_none() {
        refreshed = super::fresh(redb, context).await?;
        &refreshed
    } else {
        redb
    };
    let name = redb.name_any();
    let done = |type_: EventType, reason: &'static str, note: String| async move {
        context.publish(redb, type_, reason, "Delete", &note).await;
        Ok::<Action, DatabaseError>(Action::await_change())
    };
    if is_orphaned_on_delete(redb) {
        keep_secret(redb, context).await?;
        let what = match recorded_uid(redb) {
            Some(uid) => format!("database {name} (uid {uid})"),
            None => format!("database {name}"),
        };
        return done(
            EventType::Normal,
            "DatabaseOrphaned",
            format!(
                "left {what} and its Secret {} in place, as {}: {} asks; the database is no longer managed",
                database_secret_name(redb),
                keys::DELETION_POLICY,
                keys::DELETION_POLICY_ORPHAN
            ),
        )
        .await;
    }
    if is_protected(redb) {
        let message = protected_message(redb);
        let blocked = Blocked {
            stalled: true,
            reason: "DeletionProtected",
            message: message.clone(),
        };
        // The Stalled condition and its Warning event (published on the transition) say how to release it.
        status::write_blocked(redb, &blocked, context).await?;
        return Err(DatabaseError::DeletionRefused { message });
    }
    let cluster = match find_cluster(&context.shared.client, redb).await? {
        ClusterLookup::Found(cluster) => *cluster,
        ClusterLookup::Missing(message) => {
            return done(
                EventType::Normal,
                "ClusterGone",
                format!("nothing to delete for database {name}: {message}; its data went with the cluster"),
            )
            .await;
        }
        ClusterLookup::Ambiguous(message) => {
            return done(
                EventType::Warning,
                "ClusterUnknown",
                format!("cannot tell which cluster holds database {name} ({message}); removed the finalizer without deleting it"),
            )
            .await;
        }
        ClusterLookup::NotAllowed(message) => {
            return done(
                EventType::Warning,
                "ClusterNotAllowed",
                format!(
                    "did not delete database {name}: {message}; removed the finalizer and left any database in place"
                ),
            )
            .await;
        }
    };
    let key = cluster_key(&cluster);
    // A cluster being deleted may still be running (its deletion waits for the REDBs on it): its database is
    // deleted like any other. Only when it can no longer be reached does the database go with it.
    let cluster_deleting = cluster.meta().deletion_timestamp.is_some();
    let gone_with_cluster = || {
        done(
            EventType::Normal,
            "ClusterDeleting",
            format!("cluster {key} is being deleted and cannot be reached; database {name} goes with it"),
        )
    };
    let namespace = cluster.namespace().unwrap_or_else(|| "default".to_string());
    let rest = match connect_to_cluster(&context.shared, &namespace, &cluster).await {
        Ok(rest) => rest,
        Err(error @ ConnectionError::SecretNotFound { .. }) => {
            return done(
                EventType::Warning,
                "ClusterCredentialsGone",
                format!("cannot delete database {name} from cluster {key}: {error}; removed the finalizer"),
            )
            .await;
        }
        Err(_) if cluster_deleting => return gone_with_cluster().await,
        // A Secret without its keys or an unusable CA can be fixed: keep the finalizer and retry.
        Err(source) => {
            return Err(DatabaseError::Connection {
                cluster: key,
                source: Box::new(source),
            });
        }
    };
    match delete_owned(redb, &rest, &cluster, context).await {
        Err(DatabaseError::Rest { source, .. })
            if cluster_deleting
                && matches!(
                    source.as_ref(),
                    EnterpriseError::Unreachable { .. } | EnterpriseError::Timeout { .. }
                ) =>
        {
            gone_with_cluster().await
        }
        result => result,
    }
}

/// Deletes the bdb this REDB owns from a reachable cluster; `Ok` once it is gone.
async fn delete_owned(
    redb: &RedisEnterpriseDatabase,
    rest: &EnterpriseClient,
    cluster: &RedisEnterpriseCluster,
    context: &DatabaseContext,
) -> Result<Action, DatabaseError> {
    let name = redb.name_any();
    let key = cluster_key(cluster);
    let done = |type_: EventType, reason: &'static str, note: String| async move {
        context.publish(redb, type_, reason, "Delete", &note).await;
        Ok::<Action, DatabaseError>(Action::await_change())
    };
    let Some(bdb) = owned_bdb(redb, rest, cluster, context).await? else {
        return done(
            EventType::Normal,
            "DatabaseDeleted",
            format!("database {name} of this REDB is gone from cluster {key} (or was never created)"),
        )
        .await;
    };
    if bdb.status != DatabaseStatus::DeletePending {
        rest.delete_database(bdb.uid)
            .await
            .map_err(|source| DatabaseError::Rest {
                action: format!("delete database {name} (uid {})", bdb.uid),
                cluster: key.clone(),
                source: Box::new(source),
            })?;
        context
            .publish(
                redb,
                EventType::Normal,
                "DeletingDatabase",
                "Delete",
                &format!("deleting database {name} (uid {}) from cluster {key}", bdb.uid),
            )
            .await;
    }
    Err(DatabaseError::DeletionPending {
        database: object_key(redb),
        uid: bdb.uid,
        cluster: key,
    })
}
