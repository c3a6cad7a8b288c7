//! Cleanup of a deleted REDB (behind the finalizer): deletes its bdb from the cluster (idempotent: "already gone" is
//! done) and keeps the finalizer until the cluster no longer lists it. When the cluster itself is gone, being
//! deleted, or its credentials Secret is gone, there is nothing left to delete: the cleanup completes and an event
//! says why, so no finalizer gets stuck. A cluster that is merely unreachable is retried with backoff. The Secret,
//! Services and EndpointSlices go with the REDB by owner reference.

use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};

use super::dereference::{ClusterLookup, cluster_key, find_bdb, find_cluster};
use super::{DatabaseContext, DatabaseError, key_of};
use crate::api::RedisEnterpriseDatabase;
use crate::controllers::{ConnectionError, connect_to_cluster};

/// Runs the cleanup; `Ok` lets the finalizer go, [`DatabaseError::DeletionPending`] comes back soon.
pub async fn delete_database(
    redb: &RedisEnterpriseDatabase,
    context: &DatabaseContext,
) -> Result<Action, DatabaseError> {
    let name = redb.name_any();
    let done = |reason: &'static str, note: String| async move {
        context.publish(redb, EventType::Normal, reason, "Delete", &note).await;
        Ok::<Action, DatabaseError>(Action::await_change())
    };
    let cluster = match find_cluster(&context.shared.client, redb).await? {
        ClusterLookup::Found(cluster) => *cluster,
        ClusterLookup::Missing(message) => {
            return done(
                "ClusterGone",
                format!("nothing to delete for database {name}: {message}; its data went with the cluster"),
            )
            .await;
        }
        ClusterLookup::Ambiguous(message) => {
            return done(
                "ClusterUnknown",
                format!("cannot tell which cluster holds database {name} ({message}); removed the finalizer without deleting it"),
            )
            .await;
        }
    };
    let key = cluster_key(&cluster);
    if cluster.meta().deletion_timestamp.is_some() {
        return done(
            "ClusterDeleting",
            format!("cluster {key} is being deleted and takes database {name} with it"),
        )
        .await;
    }
    let namespace = cluster.namespace().unwrap_or_else(|| "default".to_string());
    let rest = match connect_to_cluster(&context.shared, &namespace, &cluster).await {
        Ok(rest) => rest,
        Err(error @ ConnectionError::SecretNotFound { .. }) => {
            return done(
                "ClusterCredentialsGone",
                format!("cannot delete database {name} from cluster {key}: {error}; removed the finalizer"),
            )
            .await;
        }
        // A Secret without its keys or an unusable CA can be fixed: keep the finalizer and retry.
        Err(source) => {
            return Err(DatabaseError::Connection {
                cluster: key,
                source: Box::new(source),
            });
        }
    };
    let (bdb, _) = find_bdb(&rest, redb, &key).await?;
    let Some(bdb) = bdb else {
        return done("DatabaseDeleted", format!("database {name} is gone from cluster {key}")).await;
    };
    if bdb.status != "delete-pending" {
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
        database: key_of(redb),
        uid: bdb.uid,
        cluster: key,
    })
}
