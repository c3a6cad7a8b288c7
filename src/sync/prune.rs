//! Prune stage: deletes what the previous inventory had and this revision does not, as far as the plan allows
//! (`plan::plan_prune` decides), and marks the objects it keeps `Synced=False`. It may read RECs and REDBs, delete
//! them, write their `Synced` condition, and publish `Pruned` and `PruneBlocked` events.

use std::collections::{BTreeMap, BTreeSet};

use kube::api::{Api, DeleteParams, ListParams};
use kube::runtime::events::EventType;
use kube::{Client, Resource, ResourceExt};
use serde_json::Value;

use super::apply::{SyncedMark, set_synced};
use super::controller::SyncContext;
use super::error::{SyncError, kubernetes};
use super::objects::api_for;
use super::outcome::same;
use super::plan::{
    DatabasePlacement, DesiredObject, KeepReason, LiveObject, MAX_MESSAGE_CHARS, Placements, PrunePolicy, SyncTarget,
    cap_message, plan_prune,
};
use crate::api::gitsync::InventoryEntry;
use crate::api::{GitSync, RedisEnterpriseCluster, RedisEnterpriseDatabase};

/// What the prune stage needs besides the objects.
pub struct PruneInput<'a> {
    /// The inventory of the last sync.
    pub previous: &'a [InventoryEntry],
    /// The objects of this revision.
    pub desired: &'a [DesiredObject],
    /// Who syncs.
    pub target: &'a SyncTarget,
    /// What pruning may delete.
    pub policy: PrunePolicy,
}

/// Prunes what the previous inventory had and this revision does not; returns the entries kept (orphaned) and why.
pub async fn prune(
    input: &PruneInput<'_>,
    context: &SyncContext,
    gitsync: &GitSync,
) -> Result<Vec<(InventoryEntry, KeepReason)>, SyncError> {
    let desired: Vec<InventoryEntry> = input.desired.iter().map(|object| object.entry.clone()).collect();
    let gone: Vec<&InventoryEntry> = input
        .previous
        .iter()
        .filter(|entry| !desired.iter().any(|d| same(d, entry)))
        .collect();
    if gone.is_empty() {
        return Ok(Vec::new());
    }
    let (live, live_values) = read_gone(&gone, &context.client).await?;
    // Only a cluster that pruning may otherwise delete needs to know which databases live on it.
    let mut placements = Placements::default();
    if input.policy.prune && gone.iter().any(|entry| entry.kind == "RedisEnterpriseCluster") {
        placements = live_placements(&context.client, gone.iter().map(|entry| entry.namespace.as_str())).await?;
        placements.add_desired(input.desired);
    }
    let plan = plan_prune(input.previous, &desired, &live, &placements, input.target, input.policy);
    for entry in &plan.delete {
        delete(entry, context, gitsync).await?;
    }
    for (entry, reason) in &plan.keep {
        let live = live_values.get(&(entry.kind.clone(), entry.namespace.clone(), entry.name.clone()));
        keep(entry, reason, live, context, gitsync).await?;
    }
    Ok(plan.keep)
}

/// The objects removed from Git that still exist, as the planner sees them and as JSON.
async fn read_gone(
    gone: &[&InventoryEntry],
    client: &Client,
) -> Result<(Vec<LiveObject>, BTreeMap<(String, String, String), Value>), SyncError> {
    let mut live = Vec::new();
    let mut live_values = BTreeMap::new();
    for entry in gone {
        let api = api_for(client, entry)?;
        if let Some(object) = api
            .get_opt(&entry.name)
            .await
            .map_err(kubernetes(format!("read {} {}", entry.kind, entry.name)))?
        {
            let value = serde_json::to_value(&object).unwrap_or(Value::Null);
            live.push(LiveObject {
                entry: (*entry).clone(),
                labels: object.labels().clone(),
                annotations: object.annotations().clone(),
            });
            live_values.insert((entry.kind.clone(), entry.namespace.clone(), entry.name.clone()), value);
        }
    }
    Ok((live, live_values))
}

async fn delete(entry: &InventoryEntry, context: &SyncContext, gitsync: &GitSync) -> Result<(), SyncError> {
    api_for(&context.client, entry)?
        .delete(&entry.name, &DeleteParams::default())
        .await
        .map_err(kubernetes(format!(
            "delete {} {}/{}",
            entry.kind, entry.namespace, entry.name
        )))?;
    let note = format!(
        "deleted {} {}/{} (removed from Git)",
        entry.kind, entry.namespace, entry.name
    );
    context
        .publish(gitsync, EventType::Normal, "Pruned", "Prune", &note)
        .await;
    Ok(())
}

/// Marks a kept object `Synced=False` (`RemovedFromSource`) and says why it stays.
async fn keep(
    entry: &InventoryEntry,
    reason: &KeepReason,
    live: Option<&Value>,
    context: &SyncContext,
    gitsync: &GitSync,
) -> Result<(), SyncError> {
    let api = api_for(&context.client, entry)?;
    let revision = live
        .and_then(|l| l.pointer("/status/sourceRevision"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mark = SyncedMark {
        synced: false,
        reason: "RemovedFromSource",
        message: cap_message(&reason.describe(), MAX_MESSAGE_CHARS),
        revision,
    };
    set_synced(&api, entry, live, &mark, context).await?;
    let note = format!(
        "{} {}/{}: {}",
        entry.kind,
        entry.namespace,
        entry.name,
        reason.describe()
    );
    context
        .publish(gitsync, EventType::Warning, "PruneBlocked", "Prune", &note)
        .await;
    Ok(())
}

/// Every live REC and REDB, read with one LIST per kind over all namespaces; where the agent may not list across
/// namespaces (HTTP 403), the namespaces of `fallback` instead (the clusters' own namespaces, where their
/// databases live unless they name them from elsewhere).
pub async fn live_placements(client: &Client, fallback: impl Iterator<Item = &str>) -> Result<Placements, SyncError> {
    let fallback: BTreeSet<String> = fallback.map(str::to_string).collect();
    let mut placements = Placements::default();
    for cluster in list_everywhere::<RedisEnterpriseCluster>(client, &fallback).await? {
        placements
            .clusters
            .insert((cluster.namespace().unwrap_or_default(), cluster.name_any()));
    }
    for database in list_everywhere::<RedisEnterpriseDatabase>(client, &fallback).await? {
        placements.databases.push(DatabasePlacement {
            namespace: database.namespace().unwrap_or_default(),
            name: database.name_any(),
            cluster: database
                .spec
                .redis_enterprise_cluster
                .as_ref()
                .map(|reference| reference.name.clone())
                .filter(|name| !name.is_empty()),
        });
    }
    Ok(placements)
}

/// Every object of kind `K`, with one LIST over all namespaces, or one per namespace of `fallback` where the agent
/// may not list across namespaces (HTTP 403).
async fn list_everywhere<K>(client: &Client, fallback: &BTreeSet<String>) -> Result<Vec<K>, SyncError>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned,
{
    let kind = K::kind(&());
    let params = ListParams::default();
    match Api::<K>::all(client.clone()).list(&params).await {
        Ok(list) => Ok(list.items),
        Err(kube::Error::Api(response)) if response.code == 403 => {
            let mut items = Vec::new();
            for namespace in fallback {
                let list = Api::<K>::namespaced(client.clone(), namespace)
                    .list(&params)
                    .await
                    .map_err(kubernetes(format!("list {kind}s in namespace {namespace}")))?;
                items.extend(list.items);
            }
            Ok(items)
        }
        Err(source) => Err(SyncError::Kubernetes {
            action: format!("list {kind}s in all namespaces"),
            source,
        }),
    }
}
