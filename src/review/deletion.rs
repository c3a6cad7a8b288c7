//! What pruning does with the objects the head removes, decided by the sync's own pure planner
//! (`sync::plan::plan_prune`) as if the base were what is live: under the GitSync's settings when they are known,
//! or under both the permissive and the default settings when they are not (then the plan says what each does).
//! Pure.

use std::collections::BTreeMap;

use serde_json::Value;

use super::PruneSettings;
use crate::api::gitsync::InventoryEntry;
use crate::api::keys;
use crate::manifests::Repository;
use crate::sync::plan::{
    GITSYNC_NAME_LABEL, GITSYNC_NAMESPACE_LABEL, LiveObject, Placements, PrunePlan, PrunePolicy, SyncTarget, labels_of,
    plan_prune,
};

/// `(kind, namespace, name)`.
pub type ObjectKey = (String, String, String);

/// What happens to one removed object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Pruning deletes it.
    Deleted,
    /// It stays; the sentence says why.
    Kept(String),
    /// It depends on settings that are not known: deleted with the permissive ones, kept (and why) otherwise.
    Depends(String),
}

/// The fate of every object of `base` that `head` does not have.
pub fn fates(base: &Repository, head: &Repository, settings: &PruneSettings) -> BTreeMap<ObjectKey, Fate> {
    let target = SyncTarget {
        name: "plan".to_string(),
        namespace: String::new(),
        revision: String::new(),
        extra_namespaces: Default::default(),
    };
    let previous = entries(base);
    let desired = entries(head);
    let live: Vec<LiveObject> = objects(base)
        .into_iter()
        .map(|(entry, value)| {
            let mut labels = labels_of(&value);
            labels.insert(GITSYNC_NAME_LABEL.to_string(), target.name.clone());
            labels.insert(GITSYNC_NAMESPACE_LABEL.to_string(), target.namespace.clone());
            let annotations = value
                .pointer("/metadata/annotations")
                .and_then(Value::as_object)
                .map(|map| {
                    map.iter()
                        .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_string())))
                        .collect()
                })
                .unwrap_or_default();
            LiveObject {
                entry,
                labels,
                annotations,
            }
        })
        .collect();
    let mut placements = Placements::default();
    for (entry, value) in objects(base).into_iter().chain(objects(head)) {
        placements.add_value(&entry, &value);
    }
    let run = |prune: bool, allow: bool| {
        plan_prune(
            &previous,
            &desired,
            &live,
            &placements,
            &target,
            PrunePolicy {
                prune,
                allow_database_deletion: allow,
            },
        )
    };
    let strict = run(
        settings.prune.unwrap_or(false),
        settings.allow_database_deletion.unwrap_or(false),
    );
    let permissive = run(
        settings.prune.unwrap_or(true),
        settings.allow_database_deletion.unwrap_or(true),
    );
    let decided = |plan: &PrunePlan| -> BTreeMap<ObjectKey, Option<String>> {
        let mut map = BTreeMap::new();
        for entry in &plan.delete {
            map.insert(key(entry), None);
        }
        for (entry, reason) in &plan.keep {
            map.insert(key(entry), Some(reason.describe()));
        }
        map
    };
    let strict = decided(&strict);
    let permissive = decided(&permissive);
    strict
        .into_iter()
        .map(|(key, kept)| {
            // `describe` speaks to a condition of an object already removed; a plan says what would happen.
            let kept = kept.map(|reason| reason.strip_prefix("removed from Git; ").unwrap_or(&reason).to_string());
            let fate = match (kept, permissive.get(&key)) {
                (None, _) => Fate::Deleted,
                (Some(reason), Some(Some(_))) => Fate::Kept(reason),
                (Some(reason), _) => Fate::Depends(reason),
            };
            (key, fate)
        })
        .collect()
}

/// Whether the base object carries `annotation: value`.
pub fn annotated(value: &Value, annotation: &str, expected: &str) -> bool {
    value
        .pointer("/metadata/annotations")
        .and_then(|annotations| annotations.get(annotation))
        .and_then(Value::as_str)
        .is_some_and(|text| text.eq_ignore_ascii_case(expected))
}

/// Whether the REDB's deletion keeps its database (`redisgitops.dev/deletion-policy: orphan`).
pub fn orphans_database(value: &Value) -> bool {
    annotated(value, keys::DELETION_POLICY, keys::DELETION_POLICY_ORPHAN)
}

fn key(entry: &InventoryEntry) -> ObjectKey {
    (entry.kind.clone(), entry.namespace.clone(), entry.name.clone())
}

fn entries(repository: &Repository) -> Vec<InventoryEntry> {
    objects(repository).into_iter().map(|(entry, _)| entry).collect()
}

fn objects(repository: &Repository) -> Vec<(InventoryEntry, Value)> {
    let clusters = repository.clusters.iter().map(|cluster| {
        (
            "app.redislabs.com/v1",
            "RedisEnterpriseCluster",
            &cluster.validated.namespace,
            &cluster.validated.name,
            &cluster.source.file,
            serde_json::to_value(&cluster.object),
        )
    });
    let databases = repository.databases.iter().map(|database| {
        (
            "app.redislabs.com/v1alpha1",
            "RedisEnterpriseDatabase",
            &database.validated.namespace,
            &database.validated.name,
            &database.source.file,
            serde_json::to_value(&database.object),
        )
    });
    clusters
        .chain(databases)
        .map(|(api_version, kind, namespace, name, file, value)| {
            (
                InventoryEntry {
                    api_version: api_version.to_string(),
                    kind: kind.to_string(),
                    namespace: namespace.clone(),
                    name: name.clone(),
                    file: Some(file.clone()),
                },
                value.unwrap_or(Value::Null),
            )
        })
        .collect()
}
