//! Deletion policy stage: keeps the GitSync's finalizer in line with `spec.deletionPolicy`, and when a GitSync with
//! `Delete` is deleted, deletes the objects of its inventory under the same rules as pruning. It may patch the
//! GitSync's finalizers, read and delete RECs and REDBs, and publish `DeletionBlocked` events.

use std::collections::BTreeSet;
use std::time::Duration;

use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use serde_json::json;

use super::controller::SyncContext;
use super::error::{SyncError, kubernetes};
use super::objects::api_for;
use super::plan::{GITSYNC_NAME_LABEL, GITSYNC_NAMESPACE_LABEL, Placements, quote_names};
use super::prune::live_placements;
use crate::api::gitsync::{DeletionPolicy, GitSync, GitSyncStatus, InventoryEntry};
use crate::api::keys;

/// The finalizer a GitSync carries while its deletion policy is `Delete`.
pub const FINALIZER: &str = "redisgitops.dev/delete-applied-objects";

/// Carries out `spec.deletionPolicy`. With `Delete`, the GitSync holds a finalizer, and when it is deleted the
/// objects of its inventory are deleted under the same rules as pruning (databases and clusters only with
/// `allowDatabaseDeletion`, protected objects never, objects now owned by another GitSync never); with `Orphan` (the
/// default) it holds none and its objects stay. Returns an action when the GitSync is being deleted.
pub async fn handle_deletion_policy(gitsync: &GitSync, context: &SyncContext) -> Result<Option<Action>, SyncError> {
    let wants_finalizer = gitsync.spec.deletion_policy == Some(DeletionPolicy::Delete);
    let has_finalizer = gitsync.finalizers().iter().any(|f| f == FINALIZER);
    let others: Vec<String> = gitsync
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    if gitsync.metadata.deletion_timestamp.is_some() {
        if has_finalizer {
            if wants_finalizer && !delete_inventory(gitsync, context).await? {
                // Its databases are still being deleted; the clusters go once they are gone.
                return Ok(Some(Action::requeue(Duration::from_secs(2))));
            }
            set_finalizers(gitsync, context, others, "remove the finalizer").await?;
        }
        return Ok(Some(Action::await_change()));
    }
    if wants_finalizer != has_finalizer {
        let mut finalizers = others;
        if wants_finalizer {
            finalizers.push(FINALIZER.to_string());
        }
        set_finalizers(gitsync, context, finalizers, "update the finalizers").await?;
    }
    Ok(None)
}

async fn set_finalizers(
    gitsync: &GitSync,
    context: &SyncContext,
    finalizers: Vec<String>,
    what: &str,
) -> Result<(), SyncError> {
    let namespace = gitsync.namespace().unwrap_or_else(|| "default".to_string());
    let api: Api<GitSync> = Api::namespaced(context.client.clone(), &namespace);
    let name = gitsync.name_any();
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": finalizers}})),
    )
    .await
    .map_err(kubernetes(format!("{what} of GitSync {name}")))?;
    Ok(())
}

/// One pass over the inventory of a deleted GitSync.
struct DeletionPass<'a> {
    gitsync: &'a GitSync,
    context: &'a SyncContext,
    inventory: Vec<InventoryEntry>,
    /// `namespace/name` of the databases deleted in this pass.
    deleting: BTreeSet<String>,
    /// Read once, at the first cluster (after this pass deleted the databases, which are listed until they are gone).
    placements: Option<Placements>,
    /// Whether a cluster waits for its databases to be gone.
    waiting: bool,
}

/// Deletes what the inventory lists, as far as the rules allow; returns `false` while a cluster waits for its
/// databases (deleted in this pass or an earlier one) to be gone.
async fn delete_inventory(gitsync: &GitSync, context: &SyncContext) -> Result<bool, SyncError> {
    let mut inventory = gitsync
        .status
        .as_ref()
        .map(GitSyncStatus::inventory_entries)
        .unwrap_or_default();
    // Databases go before the clusters they live in.
    inventory.sort_by_key(|entry| entry.kind != "RedisEnterpriseDatabase");
    let mut pass = DeletionPass {
        gitsync,
        context,
        inventory: inventory.clone(),
        deleting: BTreeSet::new(),
        placements: None,
        waiting: false,
    };
    for entry in &inventory {
        pass.delete_entry(entry).await?;
    }
    Ok(!pass.waiting)
}

impl DeletionPass<'_> {
    async fn delete_entry(&mut self, entry: &InventoryEntry) -> Result<(), SyncError> {
        let api = api_for(&self.context.client, entry)?;
        let Some(object) = api
            .get_opt(&entry.name)
            .await
            .map_err(kubernetes(format!("read {} {}", entry.kind, entry.name)))?
        else {
            return Ok(());
        };
        let namespace = self.gitsync.namespace().unwrap_or_else(|| "default".to_string());
        let labels = object.labels();
        let ours = labels.get(GITSYNC_NAME_LABEL) == Some(&self.gitsync.name_any())
            && labels.get(GITSYNC_NAMESPACE_LABEL) == Some(&namespace);
        if !ours {
            return Ok(());
        }
        let protected = object.annotations().get(keys::PROTECT).is_some_and(|v| v == "true");
        // Deleting a cluster deletes its databases, so both need the GitSync's permission.
        let allow = self.gitsync.spec.allow_database_deletion.unwrap_or(false);
        let why_kept = if protected {
            Some("it is annotated redisgitops.dev/protect=true")
        } else if !allow {
            Some("the GitSync does not allow deleting databases (spec.allowDatabaseDeletion)")
        } else {
            None
        };
        if let Some(why) = why_kept {
            let note = format!("kept {} {}/{}: {why}", entry.kind, entry.namespace, entry.name);
            self.blocked(&note).await;
            return Ok(());
        }
        if entry.kind == "RedisEnterpriseCluster" && !self.cluster_is_empty(entry).await? {
            return Ok(());
        }
        match api.delete(&entry.name, &DeleteParams::default()).await {
            Ok(_) => {
                self.deleting.insert(format!("{}/{}", entry.namespace, entry.name));
                Ok(())
            }
            Err(kube::Error::Api(response)) if response.code == 404 => Ok(()),
            Err(source) => Err(SyncError::Kubernetes {
                action: format!("delete {} {}", entry.kind, entry.name),
                source,
            }),
        }
    }

    /// Whether no database lives on the cluster; otherwise waits for the ones this pass deletes, or says which
    /// databases keep it.
    async fn cluster_is_empty(&mut self, entry: &InventoryEntry) -> Result<bool, SyncError> {
        if self.placements.is_none() {
            let namespaces = self
                .inventory
                .iter()
                .filter(|entry| entry.kind == "RedisEnterpriseCluster")
                .map(|entry| entry.namespace.as_str());
            self.placements = Some(live_placements(&self.context.client, namespaces).await?);
        }
        let databases = self
            .placements
            .as_ref()
            .map(|placements| placements.databases_on(&entry.namespace, &entry.name))
            .unwrap_or_default();
        if databases.is_empty() {
            return Ok(true);
        }
        if databases.iter().any(|database| self.deleting.contains(database)) {
            self.waiting = true;
        } else {
            let note = format!(
                "kept {} {}/{}: databases still live on it: {}",
                entry.kind,
                entry.namespace,
                entry.name,
                quote_names(&databases)
            );
            self.blocked(&note).await;
        }
        Ok(false)
    }

    async fn blocked(&self, note: &str) {
        self.context
            .publish(self.gitsync, EventType::Warning, "DeletionBlocked", "Delete", note)
            .await;
    }
}
