//! Apply stage: server-side applies the objects of a revision whose content differs from the live ones (RECs
//! first), never over an object another existing GitSync owns, and marks each applied object `Synced`. It may read
//! and write RECs and REDBs (spec with the sync's field manager, and their `Synced` condition and
//! `sourceRevision`), read GitSyncs, create missing namespaces with `spec.createNamespace` (through
//! [`super::namespaces`]), and publish `Adopted` and `DriftCorrected` events.

use std::collections::HashMap;

use kube::api::{Api, DynamicObject, ListParams, Patch};
use kube::runtime::events::EventType;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tracing::info;

use super::controller::SyncContext;
use super::error::{SyncError, kubernetes};
use super::namespaces;
use super::objects::{annotation_pointer, api_for, apply_params};
use super::outcome::Conflict;
use super::plan::{DesiredObject, REVISION_ANNOTATION, SyncTarget, drifted_fields, foreign_owner, labels_of};
use crate::api::GitSync;
use crate::api::conditions::{Condition, types};
use crate::api::gitsync::InventoryEntry;
use crate::runtime::conditions::{ConditionStatus, carry_transition_time, find, new_condition};

/// How far an apply got: objects written, and every object that is now at the revision (written or unchanged).
#[derive(Debug, Default)]
pub struct ApplyProgress {
    /// How many objects were written.
    pub written: usize,
    /// Every object now at the revision.
    pub done: Vec<InventoryEntry>,
    /// Objects not applied because another GitSync owns them.
    pub conflicts: Vec<Conflict>,
}

/// Live objects keyed by kind, namespace and name.
type LiveObjects = HashMap<(String, String, String), Value>;

/// Applies the objects whose content differs from the live ones, in order (RECs first), recording in `progress`
/// what was written and what is at the revision, so that a failure part way can be reported exactly.
pub async fn apply_objects(
    desired: &[DesiredObject],
    target: &SyncTarget,
    context: &SyncContext,
    gitsync: &GitSync,
    progress: &mut ApplyProgress,
) -> Result<(), SyncError> {
    let mut live_objects = live_objects(desired, &context.client).await?;
    if gitsync.spec.create_namespace == Some(true) {
        // Only objects that do not exist yet can be missing their namespace: a sync with nothing new asks nothing.
        let new_namespaces = desired
            .iter()
            .map(|object| &object.entry)
            .filter(|entry| {
                !live_objects.contains_key(&(entry.kind.clone(), entry.namespace.clone(), entry.name.clone()))
            })
            .map(|entry| entry.namespace.clone())
            .filter(|namespace| !namespace.is_empty())
            .collect();
        namespaces::create_missing(&context.client, &new_namespaces, gitsync, context).await?;
    }
    let mut owners = OwnerCache::default();
    for object in desired {
        let entry = &object.entry;
        let live = live_objects.remove(&(entry.kind.clone(), entry.namespace.clone(), entry.name.clone()));
        // Never force-apply over an object another GitSync owns: that is how two GitSyncs fight over it.
        if let Some(owner) = live.as_ref().and_then(|live| foreign_owner(&labels_of(live), target)) {
            if owners.exists(&context.client, &owner).await? {
                progress.conflicts.push(Conflict {
                    entry: entry.clone(),
                    owner,
                });
                continue;
            }
            let note = format!(
                "{} {}/{} was applied by GitSync {owner}, which no longer exists; adopted",
                entry.kind, entry.namespace, entry.name
            );
            context
                .publish(gitsync, EventType::Normal, "Adopted", "Apply", &note)
                .await;
        }
        apply_one(object, live.as_ref(), target, context, gitsync, progress).await?;
        progress.done.push(entry.clone());
    }
    Ok(())
}

/// Applies one object unless it matches the live one, reporting drift it reverted; marks it `Synced`.
async fn apply_one(
    object: &DesiredObject,
    live: Option<&Value>,
    target: &SyncTarget,
    context: &SyncContext,
    gitsync: &GitSync,
    progress: &mut ApplyProgress,
) -> Result<(), SyncError> {
    let api = api_for(&context.client, &object.entry)?;
    let entry = &object.entry;
    // The revision annotation records the revision that last changed the object, so an unchanged object is not
    // rewritten by every new commit.
    let mut comparable = object.body.clone();
    if let Some(annotations) = comparable
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        annotations.remove(REVISION_ANNOTATION);
    }
    let drift = live.map(|live| drifted_fields(&comparable, live));
    if drift.as_ref().is_some_and(Vec::is_empty) {
        return ensure_synced(&api, object, live, context).await;
    }
    let applied = api
        .patch(&entry.name, &apply_params(), &Patch::Apply(&object.body))
        .await
        .map_err(|source| {
            let object = format!("{} {}/{}", entry.kind, entry.namespace, entry.name);
            match namespaces::missing_namespace(&source) {
                Some(namespace) => SyncError::NamespaceMissing { object, namespace },
                None => kubernetes(format!("apply {object}"))(source),
            }
        })?;
    progress.written += 1;
    let same_revision = live
        .and_then(|live| live.pointer(&annotation_pointer(REVISION_ANNOTATION)))
        .and_then(Value::as_str)
        == Some(target.revision.as_str());
    if let (Some(fields), true) = (drift, same_revision) {
        let note = format!(
            "{} {}/{} was changed outside Git; reverted {}",
            entry.kind,
            entry.namespace,
            entry.name,
            fields.join(", ")
        );
        info!(%note, "drift corrected");
        context
            .publish(gitsync, EventType::Normal, "DriftCorrected", "Apply", &note)
            .await;
    }
    let applied_value = serde_json::to_value(&applied).unwrap_or(Value::Null);
    ensure_synced(&api, object, Some(&applied_value), context).await
}

/// Whether GitSyncs exist, each looked up once per sync.
#[derive(Default)]
struct OwnerCache {
    known: HashMap<String, bool>,
}

impl OwnerCache {
    /// Whether the GitSync `namespace/name` exists (an object whose owner is gone may be adopted).
    async fn exists(&mut self, client: &Client, owner: &str) -> Result<bool, SyncError> {
        if let Some(exists) = self.known.get(owner) {
            return Ok(*exists);
        }
        let (namespace, name) = owner.split_once('/').unwrap_or(("", owner));
        // Labels that name no GitSync properly: treat the owner as present rather than take the object over.
        let exists = if namespace.is_empty() || name.is_empty() {
            true
        } else {
            let api: Api<GitSync> = Api::namespaced(client.clone(), namespace);
            api.get_opt(name)
                .await
                .map_err(kubernetes(format!("read GitSync {owner}")))?
                .is_some()
        };
        self.known.insert(owner.to_string(), exists);
        Ok(exists)
    }
}

/// The live objects of every kind and namespace in `desired`, read with one LIST per kind and namespace (a GET
/// per object would cost 1000 requests per poll for 1000 databases).
async fn live_objects(desired: &[DesiredObject], client: &Client) -> Result<LiveObjects, SyncError> {
    let mut groups: Vec<&InventoryEntry> = Vec::new();
    for object in desired {
        let entry = &object.entry;
        if !groups
            .iter()
            .any(|g| g.api_version == entry.api_version && g.kind == entry.kind && g.namespace == entry.namespace)
        {
            groups.push(entry);
        }
    }
    let mut live = HashMap::new();
    for group in groups {
        let list = api_for(client, group)?
            .list(&ListParams::default())
            .await
            .map_err(kubernetes(format!(
                "list {} in namespace {}",
                group.kind, group.namespace
            )))?;
        for object in list.items {
            let name = object.name_any();
            let value = serde_json::to_value(&object).unwrap_or(Value::Null);
            live.insert((group.kind.clone(), group.namespace.clone(), name), value);
        }
    }
    Ok(live)
}

/// Sets `Synced=True` and `sourceRevision` on an applied object, unless they already say so.
async fn ensure_synced(
    api: &Api<DynamicObject>,
    object: &DesiredObject,
    live: Option<&Value>,
    context: &SyncContext,
) -> Result<(), SyncError> {
    let revision = live
        .and_then(|live| live.pointer(&annotation_pointer(REVISION_ANNOTATION)))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let synced = SyncedMark {
        synced: true,
        reason: "Applied",
        message: format!("applied from {revision}"),
        revision,
    };
    set_synced(api, &object.entry, live, &synced, context).await
}

/// What the `Synced` condition and `sourceRevision` of an object should say.
pub struct SyncedMark {
    /// `Synced` is `True`.
    pub synced: bool,
    /// Its reason.
    pub reason: &'static str,
    /// Its message.
    pub message: String,
    /// `status.sourceRevision`.
    pub revision: String,
}

/// Writes `mark` into the status of the object `entry` names (live as `live`), unless it already says so; the
/// transition time follows the shared rule.
pub async fn set_synced(
    api: &Api<DynamicObject>,
    entry: &InventoryEntry,
    live: Option<&Value>,
    mark: &SyncedMark,
    context: &SyncContext,
) -> Result<(), SyncError> {
    let current: Vec<Condition> = live
        .and_then(|live| live.pointer("/status/conditions"))
        .and_then(|c| serde_json::from_value(c.clone()).ok())
        .unwrap_or_default();
    let current_synced = find(&current, types::SYNCED);
    let current_revision = live
        .and_then(|live| live.pointer("/status/sourceRevision"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let status = ConditionStatus::from(mark.synced);
    if current_synced
        .is_some_and(|c| ConditionStatus::of(c) == status && c.reason == mark.reason && c.message == mark.message)
        && current_revision == mark.revision
    {
        return Ok(());
    }
    let generation = live
        .and_then(|l| l.pointer("/metadata/generation"))
        .and_then(Value::as_i64);
    let new = new_condition(
        types::SYNCED,
        status,
        mark.reason,
        super::plan::cap_message(&mark.message, super::plan::MAX_MESSAGE_CHARS),
        generation,
        context.clock.now(),
    );
    let new = carry_transition_time(current_synced, new);
    let body = json!({
        "apiVersion": entry.api_version,
        "kind": entry.kind,
        "status": { "conditions": [new], "sourceRevision": mark.revision },
    });
    api.patch_status(&entry.name, &apply_params(), &Patch::Apply(&body))
        .await
        .map_err(kubernetes(format!("write the status of {} {}", entry.kind, entry.name)))?;
    Ok(())
}
