//! The pure core of a sync: from a validated revision to the server-side-apply bodies (with the ownership labels
//! and source annotations), which objects changed, which fields drifted, and what pruning may do. No clients
//! here: the GitSync controller feeds in what it read and carries out the plan.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use crate::api::gitsync::InventoryEntry;
use crate::api::keys;
use crate::manifests::diagnostics::{Diagnostic, FieldPath};
use crate::manifests::repo::{Repository, SourceLocation};
use crate::manifests::yaml::Spans;

/// Label naming the GitSync that applied an object.
pub const GITSYNC_NAME_LABEL: &str = "redisgitops.dev/gitsync-name";
/// Label naming the namespace of the GitSync that applied an object.
pub const GITSYNC_NAMESPACE_LABEL: &str = "redisgitops.dev/gitsync-namespace";
/// Annotation with the file an object came from.
pub const SOURCE_FILE_ANNOTATION: &str = "redisgitops.dev/source-file";
/// Annotation with the revision an object came from.
pub const REVISION_ANNOTATION: &str = "redisgitops.dev/revision";

/// In the allowed namespaces: every namespace (what `redis-gitops sandbox --repo` uses; a cluster admin's choice).
pub const ANY_NAMESPACE: &str = "*";

/// The GitSync a plan is made for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncTarget {
    /// Name of the GitSync.
    pub name: String,
    /// Namespace of the GitSync (and the default namespace of its objects).
    pub namespace: String,
    /// Revision being applied, `<ref>@sha1:<commit>`.
    pub revision: String,
    /// Namespaces the agent may write to besides the GitSync's own.
    pub extra_namespaces: BTreeSet<String>,
}

/// One object to apply.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredObject {
    /// Where it is and what it is.
    pub entry: InventoryEntry,
    /// The server-side-apply body: apiVersion, kind, metadata (name, namespace, labels, annotations), spec.
    pub body: Value,
}

/// The objects of a revision as apply bodies, RECs first (a REDB needs its cluster), or the errors that forbid
/// applying it (objects in namespaces the agent may not write to), located in their files.
pub fn desired_objects(repository: &Repository, target: &SyncTarget) -> Result<Vec<DesiredObject>, Vec<Diagnostic>> {
    let mut objects = Vec::new();
    let mut errors = Vec::new();
    let clusters = repository
        .clusters
        .iter()
        .map(|c| (serde_json::to_value(&c.object), &c.source, &c.spans));
    let databases = repository
        .databases
        .iter()
        .map(|d| (serde_json::to_value(&d.object), &d.source, &d.spans));
    // Backup schedules and restores come after the databases they name.
    let schedules = repository
        .schedules
        .iter()
        .map(|s| (serde_json::to_value(&s.object), &s.source, &s.spans));
    let restores = repository
        .restores
        .iter()
        .map(|r| (serde_json::to_value(&r.object), &r.source, &r.spans));
    for (value, source, spans) in clusters.chain(databases).chain(schedules).chain(restores) {
        let Ok(value) = value else { continue };
        match desired_object(value, source, target) {
            Ok(object) => objects.push(object),
            Err(message) => errors.push(namespace_error(source, spans, message)),
        }
    }
    if errors.is_empty() { Ok(objects) } else { Err(errors) }
}

fn namespace_error(source: &SourceLocation, spans: &Spans, message: String) -> Diagnostic {
    let path = FieldPath::of(&["metadata", "namespace"]);
    Diagnostic::error(&source.file, spans.value(&path), Some(path.to_string()), message)
}

fn desired_object(mut value: Value, source: &SourceLocation, target: &SyncTarget) -> Result<DesiredObject, String> {
    let text = |value: &Value, key: &str| value.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
    let metadata = value.get("metadata").cloned().unwrap_or(Value::Null);
    let namespace = text(&metadata, "namespace");
    let allowed = namespace == target.namespace
        || target.extra_namespaces.contains(&namespace)
        || target.extra_namespaces.contains(ANY_NAMESPACE);
    if !allowed {
        return Err(format!(
            "namespace {namespace} is outside what this GitSync may write to ({}); move the object to {} or start the agent \
             with --allow-namespace {namespace}",
            std::iter::once(target.namespace.as_str())
                .chain(target.extra_namespaces.iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join(", "),
            target.namespace
        ));
    }
    let entry = InventoryEntry {
        api_version: text(&value, "apiVersion"),
        kind: text(&value, "kind"),
        namespace,
        name: text(&metadata, "name"),
        file: Some(source.file.clone()),
    };
    let mut labels: Map<String, Value> = metadata
        .get("labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    labels.insert(GITSYNC_NAME_LABEL.to_string(), json!(target.name));
    labels.insert(GITSYNC_NAMESPACE_LABEL.to_string(), json!(target.namespace));
    let mut annotations: Map<String, Value> = metadata
        .get("annotations")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    annotations.insert(SOURCE_FILE_ANNOTATION.to_string(), json!(source.file));
    annotations.insert(REVISION_ANNOTATION.to_string(), json!(target.revision));
    value["metadata"] = json!({
        "name": entry.name,
        "namespace": entry.namespace,
        "labels": labels,
        "annotations": annotations,
    });
    if let Some(fields) = value.as_object_mut() {
        fields.remove("status");
    }
    Ok(DesiredObject { entry, body: value })
}

/// The fields of `desired` (spec, labels, annotations) whose live value differs, as paths such as
/// `spec.memorySize`. Empty means the object needs no write. Fields only the live object has are not compared:
/// other writers (defaults, controllers) may own them.
pub fn drifted_fields(desired: &Value, live: &Value) -> Vec<String> {
    let mut drifted = Vec::new();
    for (section, path) in [
        (desired.get("spec"), vec!["spec"]),
        (desired.pointer("/metadata/labels"), vec!["metadata", "labels"]),
        (
            desired.pointer("/metadata/annotations"),
            vec!["metadata", "annotations"],
        ),
    ] {
        let Some(wanted) = section else { continue };
        let pointer = format!("/{}", path.join("/"));
        compare(wanted, live.pointer(&pointer), &FieldPath::of(&path), &mut drifted);
    }
    drifted
}

fn compare(wanted: &Value, live: Option<&Value>, path: &FieldPath, drifted: &mut Vec<String>) {
    match (wanted, live) {
        (Value::Object(wanted_fields), Some(Value::Object(live_fields))) => {
            for (key, value) in wanted_fields {
                compare(value, live_fields.get(key), &path.key(key), drifted);
            }
        }
        (wanted, Some(live)) if numbers_equal(wanted, live) || wanted == live => {}
        _ => drifted.push(path.to_string()),
    }
}

/// 3 and 3.0 are the same number to the API server.
fn numbers_equal(a: &Value, b: &Value) -> bool {
    matches!((a.as_f64(), b.as_f64()), (Some(x), Some(y)) if x == y)
}

/// What pruning may do with an object that was applied before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrunePolicy {
    /// `spec.prune`: delete what was removed from Git.
    pub prune: bool,
    /// `spec.allowDatabaseDeletion`: pruning may delete databases.
    pub allow_database_deletion: bool,
}

/// An object as it is in the cluster, as far as pruning cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveObject {
    /// Where it is and what it is.
    pub entry: InventoryEntry,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its annotations.
    pub annotations: BTreeMap<String, String>,
}

/// Why an object removed from Git stays in the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeepReason {
    /// `spec.prune` is off.
    PruneDisabled,
    /// A database, and the GitSync does not allow deleting databases.
    DatabaseDeletionNotAllowed,
    /// A cluster (it holds databases), and the GitSync does not allow deleting databases.
    ClusterDeletionNotAllowed,
    /// A cluster on which these databases (`namespace/name`) still live; it goes only once they are gone.
    ClusterHasDatabases {
        /// The databases on the cluster, `namespace/name`, sorted.
        databases: Vec<String>,
    },
    /// Annotated `redisgitops.dev/protect: "true"`.
    Protected,
    /// The revision has no objects at all while the last one had some: more likely a mistake (a wrong path, an
    /// emptied directory) than a wish to delete everything.
    EmptyRevision,
}

/// At most this many database names are quoted in a message.
const MAX_NAMES_QUOTED: usize = 5;

impl KeepReason {
    /// A sentence for conditions and events.
    pub fn describe(&self) -> String {
        match self {
            Self::PruneDisabled => "removed from Git; kept because pruning is off (spec.prune)".to_string(),
            Self::DatabaseDeletionNotAllowed => {
                "removed from Git; kept because the GitSync does not allow deleting databases (spec.allowDatabaseDeletion)"
                    .to_string()
            }
            Self::ClusterDeletionNotAllowed => "removed from Git; kept because deleting a cluster deletes its databases \
                 and the GitSync does not allow deleting databases (spec.allowDatabaseDeletion)"
                .to_string(),
            Self::ClusterHasDatabases { databases } => format!(
                "removed from Git; kept because databases still live on this cluster: {}; delete or move them first \
                 (deleting a cluster also needs spec.allowDatabaseDeletion)",
                quote_names(databases)
            ),
            Self::Protected => "removed from Git; kept because it is annotated redisgitops.dev/protect=true".to_string(),
            Self::EmptyRevision => {
                "the revision has no objects at all; nothing is pruned (check the GitSync's path)".to_string()
            }
        }
    }

    /// Whether pruning was asked for and refused because the object is a cluster: the GitSync reports
    /// `PruneBlocked`.
    pub fn blocks_cluster_prune(&self) -> bool {
        matches!(self, Self::ClusterDeletionNotAllowed | Self::ClusterHasDatabases { .. })
    }
}

/// `a, b, c, d, e and 7 more`.
pub fn quote_names(names: &[String]) -> String {
    let mut text = names
        .iter()
        .take(MAX_NAMES_QUOTED)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > MAX_NAMES_QUOTED {
        text.push_str(&format!(" and {} more", names.len() - MAX_NAMES_QUOTED));
    }
    text
}

/// What pruning does after a revision is applied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrunePlan {
    /// Objects to delete.
    pub delete: Vec<InventoryEntry>,
    /// Objects removed from Git that stay, and why (reported as orphaned: `Synced=False`, `RemovedFromSource`).
    pub keep: Vec<(InventoryEntry, KeepReason)>,
    /// Objects of the old inventory that now belong to someone else (their labels point elsewhere) or are gone:
    /// they are dropped from the inventory and left alone.
    pub released: Vec<InventoryEntry>,
}

/// A REDB as the cluster guard sees it: where it is and the REC it names (`spec.redisEnterpriseCluster.name`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabasePlacement {
    /// Namespace of the REDB.
    pub namespace: String,
    /// Name of the REDB.
    pub name: String,
    /// The REC it names, if it names one.
    pub cluster: Option<String>,
}

/// Which databases may live on which cluster: every live REDB (any namespace the agent can read) and every REDB
/// of the new revision, and every REC (`namespace`, `name`) live or in the revision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Placements {
    /// The REDBs.
    pub databases: Vec<DatabasePlacement>,
    /// The RECs, `(namespace, name)`.
    pub clusters: BTreeSet<(String, String)>,
}

impl Placements {
    /// The databases (`namespace/name`, sorted) that live or may live on the REC `namespace/name`, resolved as the
    /// database controller does and erring on the side of keeping: a REDB of the same namespace that names it or
    /// names no REC at all, and a REDB of another namespace that names it when its own namespace has no REC of
    /// that name.
    pub fn databases_on(&self, namespace: &str, name: &str) -> Vec<String> {
        let mut found: Vec<String> = self
            .databases
            .iter()
            .filter(|database| {
                if database.namespace == namespace {
                    database.cluster.as_deref().is_none_or(|cluster| cluster == name)
                } else {
                    database.cluster.as_deref() == Some(name)
                        && !self.clusters.contains(&(database.namespace.clone(), name.to_string()))
                }
            })
            .map(|database| format!("{}/{}", database.namespace, database.name))
            .collect();
        found.sort();
        found.dedup();
        found
    }

    /// Adds the REDBs and RECs of apply bodies (the new revision).
    pub fn add_desired(&mut self, desired: &[DesiredObject]) {
        for object in desired {
            self.add_value(&object.entry, &object.body);
        }
    }

    /// Adds one object, live or desired, given as JSON.
    pub fn add_value(&mut self, entry: &InventoryEntry, value: &Value) {
        match entry.kind.as_str() {
            "RedisEnterpriseCluster" => {
                self.clusters.insert((entry.namespace.clone(), entry.name.clone()));
            }
            "RedisEnterpriseDatabase" => self.databases.push(DatabasePlacement {
                namespace: entry.namespace.clone(),
                name: entry.name.clone(),
                cluster: value
                    .pointer("/spec/redisEnterpriseCluster/name")
                    .and_then(Value::as_str)
                    .filter(|name| !name.is_empty())
                    .map(str::to_string),
            }),
            _ => {}
        }
    }
}

/// The GitSync (`namespace/name`) that owns an object according to its ownership labels, when that is not
/// `target`. An object without the labels (created with kubectl) belongs to no one and may be adopted.
pub fn foreign_owner(labels: &BTreeMap<String, String>, target: &SyncTarget) -> Option<String> {
    let name = labels.get(GITSYNC_NAME_LABEL).filter(|name| !name.is_empty())?;
    let namespace = labels
        .get(GITSYNC_NAMESPACE_LABEL)
        .map(String::as_str)
        .unwrap_or_default();
    (name != &target.name || namespace != target.namespace).then(|| format!("{namespace}/{name}"))
}

/// The labels of an object given as JSON.
pub fn labels_of(value: &Value) -> BTreeMap<String, String> {
    value
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Plans pruning: what the last inventory had and the new revision does not. Only objects whose live labels still
/// point at this GitSync are ever deleted; databases need the GitSync's permission; a cluster needs the same
/// permission and no database left on it (`placements`); protected objects never go.
pub fn plan_prune(
    previous: &[InventoryEntry],
    desired: &[InventoryEntry],
    live: &[LiveObject],
    placements: &Placements,
    target: &SyncTarget,
    policy: PrunePolicy,
) -> PrunePlan {
    let key = |entry: &InventoryEntry| (entry.kind.clone(), entry.namespace.clone(), entry.name.clone());
    let wanted: BTreeSet<_> = desired.iter().map(key).collect();
    let live_by_key: BTreeMap<_, &LiveObject> = live.iter().map(|object| (key(&object.entry), object)).collect();
    let mut plan = PrunePlan::default();
    for entry in previous.iter().filter(|entry| !wanted.contains(&key(entry))) {
        let Some(object) = live_by_key.get(&key(entry)) else {
            plan.released.push(entry.clone());
            continue;
        };
        let ours = object.labels.get(GITSYNC_NAME_LABEL) == Some(&target.name)
            && object.labels.get(GITSYNC_NAMESPACE_LABEL) == Some(&target.namespace);
        if !ours {
            plan.released.push(entry.clone());
            continue;
        }
        let reason = if desired.is_empty() {
            Some(KeepReason::EmptyRevision)
        } else if object.annotations.get(keys::PROTECT).is_some_and(|v| v == "true") {
            Some(KeepReason::Protected)
        } else if !policy.prune {
            Some(KeepReason::PruneDisabled)
        } else if entry.kind == "RedisEnterpriseDatabase" && !policy.allow_database_deletion {
            Some(KeepReason::DatabaseDeletionNotAllowed)
        } else if entry.kind == "RedisEnterpriseCluster" {
            let databases = placements.databases_on(&entry.namespace, &entry.name);
            if !databases.is_empty() {
                Some(KeepReason::ClusterHasDatabases { databases })
            } else if !policy.allow_database_deletion {
                Some(KeepReason::ClusterDeletionNotAllowed)
            } else {
                None
            }
        } else {
            None
        };
        match reason {
            Some(reason) => plan.keep.push((entry.clone(), reason)),
            None => plan.delete.push(entry.clone()),
        }
    }
    // Databases go before the clusters they live in.
    plan.delete.sort_by_key(|entry| entry.kind != "RedisEnterpriseDatabase");
    plan
}

/// At most this many characters of a message go into a condition, an event or a status error.
pub const MAX_MESSAGE_CHARS: usize = 300;

/// `text` cut to at most `max` characters, on a character boundary, ending with `…` when cut.
pub fn cap_message(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some(_) => {
            let kept: String = text.chars().take(max.saturating_sub(1)).collect();
            format!("{kept}…")
        }
    }
}

/// At most this many bytes of inventory (`status.objects` as JSON) per GitSync: 10 000 objects with names of 63
/// characters in one namespace take about 660 000; the whole status then stays under 0.75 MiB.
pub const MAX_INVENTORY_BYTES: usize = 700_000;

/// The size of `entries` as the compact inventory in JSON.
pub fn inventory_bytes(entries: &[InventoryEntry]) -> usize {
    serde_json::to_vec(&crate::api::gitsync::InventoryGroup::group(entries)).map_or(usize::MAX, |json| json.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifests::{LoadOptions, SourceFile, load_files};

    fn target() -> SyncTarget {
        SyncTarget {
            name: "config".into(),
            namespace: "redis".into(),
            revision: "main@sha1:0123456789abcdef0123456789abcdef01234567".into(),
            extra_namespaces: BTreeSet::new(),
        }
    }

    fn repository(files: &[(&str, &str)]) -> Repository {
        let files: Vec<SourceFile> = files
            .iter()
            .map(|(path, text)| SourceFile {
                path: (*path).into(),
                content: text.as_bytes().to_vec(),
            })
            .collect();
        let options = LoadOptions {
            default_namespace: "redis".into(),
            ..LoadOptions::default()
        };
        load_files(&files, &options).unwrap_or_else(|errors| panic!("{errors:?}"))
    }

    const REC: &str = "apiVersion: app.redislabs.com/v1alpha1\nkind: RedisEnterpriseCluster\nmetadata: {name: rec}\nspec: {nodes: 3}\n";
    const REDB: &str = "apiVersion: app.redislabs.com/v1alpha1\nkind: RedisEnterpriseDatabase\nmetadata: {name: cache, labels: {team: a}}\nspec: {memorySize: 1GB}\n";

    fn entry(kind: &str, name: &str) -> InventoryEntry {
        let api_version = if kind == "RedisEnterpriseCluster" {
            "app.redislabs.com/v1"
        } else {
            "app.redislabs.com/v1alpha1"
        };
        InventoryEntry {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: "redis".into(),
            name: name.into(),
            file: None,
        }
    }

    fn live(kind: &str, name: &str, owner: &str, protected: bool) -> LiveObject {
        LiveObject {
            entry: entry(kind, name),
            labels: [
                (GITSYNC_NAME_LABEL.to_string(), owner.to_string()),
                (GITSYNC_NAMESPACE_LABEL.to_string(), "redis".to_string()),
            ]
            .into(),
            annotations: if protected {
                [(keys::PROTECT.to_string(), "true".to_string())].into()
            } else {
                BTreeMap::new()
            },
        }
    }

    #[test]
    fn apply_bodies_carry_ownership_labels_source_annotations_and_no_status() {
        let objects =
            desired_objects(&repository(&[("db.yaml", REDB), ("rec.yaml", REC)]), &target()).expect("allowed");
        assert_eq!(
            objects.iter().map(|o| o.entry.kind.as_str()).collect::<Vec<_>>(),
            ["RedisEnterpriseCluster", "RedisEnterpriseDatabase"]
        );
        let database = &objects[1];
        assert_eq!(database.entry.file.as_deref(), Some("db.yaml"));
        let metadata = &database.body["metadata"];
        assert_eq!(metadata["labels"]["team"], "a", "the user's labels stay");
        assert_eq!(metadata["labels"][GITSYNC_NAME_LABEL], "config");
        assert_eq!(metadata["annotations"][SOURCE_FILE_ANNOTATION], "db.yaml");
        assert_eq!(metadata["annotations"][REVISION_ANNOTATION], target().revision);
        assert_eq!(database.body["apiVersion"], "app.redislabs.com/v1alpha1");
        assert_eq!(
            objects[0].body["apiVersion"], "app.redislabs.com/v1",
            "v1alpha1 RECs are applied as the storage version"
        );
        assert!(database.body.get("status").is_none());
    }

    #[test]
    fn objects_outside_the_allowed_namespaces_are_refused_with_their_location() {
        let elsewhere = REDB.replace("metadata: {name: cache,", "metadata: {name: cache, namespace: other,");
        let errors = desired_objects(&repository(&[("db.yaml", &elsewhere)]), &target()).expect_err("refused");
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0].to_string(),
            "db.yaml:3:36: metadata.namespace: namespace other is outside what this GitSync may write to (redis); move the \
             object to redis or start the agent with --allow-namespace other"
        );
        let mut allowed = target();
        allowed.extra_namespaces.insert("other".into());
        assert!(desired_objects(&repository(&[("db.yaml", &elsewhere)]), &allowed).is_ok());
        let mut any = target();
        any.extra_namespaces.insert(ANY_NAMESPACE.into());
        assert!(desired_objects(&repository(&[("db.yaml", &elsewhere)]), &any).is_ok());
    }

    #[test]
    fn drift_names_the_fields_that_differ_and_ignores_fields_others_own() {
        let objects = desired_objects(&repository(&[("db.yaml", REDB)]), &target()).expect("allowed");
        let desired = &objects[0].body;
        let mut live = desired.clone();
        live["spec"]["shardCount"] = json!(1);
        live["metadata"]["labels"]["added-by-someone"] = json!("x");
        live["status"] = json!({"status": "active"});
        assert!(
            drifted_fields(desired, &live).is_empty(),
            "extra live fields are not drift"
        );
        live["spec"]["memorySize"] = json!("2GB");
        live["metadata"]["labels"]["team"] = json!("b");
        assert_eq!(
            drifted_fields(desired, &live),
            ["spec.memorySize", "metadata.labels.team"]
        );
    }

    #[test]
    fn pruning_deletes_only_what_it_may() {
        let previous = [
            entry("RedisEnterpriseCluster", "rec"),
            entry("RedisEnterpriseDatabase", "gone"),
            entry("RedisEnterpriseDatabase", "kept"),
        ];
        let desired = [
            entry("RedisEnterpriseCluster", "rec"),
            entry("RedisEnterpriseDatabase", "kept"),
        ];
        let live_objects = [
            live("RedisEnterpriseCluster", "rec", "config", false),
            live("RedisEnterpriseDatabase", "gone", "config", false),
        ];
        let all = PrunePolicy {
            prune: true,
            allow_database_deletion: true,
        };
        let plan = plan_prune(
            &previous,
            &desired,
            &live_objects,
            &Placements::default(),
            &target(),
            all,
        );
        assert_eq!(plan.delete, [entry("RedisEnterpriseDatabase", "gone")]);

        let no_database_deletion = PrunePolicy {
            prune: true,
            allow_database_deletion: false,
        };
        let plan = plan_prune(
            &previous,
            &desired,
            &live_objects,
            &Placements::default(),
            &target(),
            no_database_deletion,
        );
        assert!(plan.delete.is_empty());
        assert_eq!(
            plan.keep,
            [(
                entry("RedisEnterpriseDatabase", "gone"),
                KeepReason::DatabaseDeletionNotAllowed
            )]
        );

        let plan = plan_prune(
            &previous,
            &desired,
            &live_objects,
            &Placements::default(),
            &target(),
            PrunePolicy {
                prune: false,
                allow_database_deletion: true,
            },
        );
        assert_eq!(plan.keep[0].1, KeepReason::PruneDisabled);
    }

    #[test]
    fn protected_foreign_and_missing_objects_are_never_deleted() {
        let previous = [
            entry("RedisEnterpriseDatabase", "protected"),
            entry("RedisEnterpriseDatabase", "taken"),
            entry("RedisEnterpriseDatabase", "missing"),
        ];
        let desired = [entry("RedisEnterpriseCluster", "rec")];
        let live_objects = [
            live("RedisEnterpriseDatabase", "protected", "config", true),
            live("RedisEnterpriseDatabase", "taken", "another-gitsync", false),
        ];
        let plan = plan_prune(
            &previous,
            &desired,
            &live_objects,
            &Placements::default(),
            &target(),
            PrunePolicy {
                prune: true,
                allow_database_deletion: true,
            },
        );
        assert!(plan.delete.is_empty());
        assert_eq!(
            plan.keep,
            [(entry("RedisEnterpriseDatabase", "protected"), KeepReason::Protected)]
        );
        assert_eq!(
            plan.released,
            [
                entry("RedisEnterpriseDatabase", "taken"),
                entry("RedisEnterpriseDatabase", "missing")
            ]
        );
    }

    #[test]
    fn an_empty_revision_never_prunes_everything() {
        let previous = [
            entry("RedisEnterpriseCluster", "rec"),
            entry("RedisEnterpriseDatabase", "cache"),
        ];
        let live_objects = [
            live("RedisEnterpriseCluster", "rec", "config", false),
            live("RedisEnterpriseDatabase", "cache", "config", false),
        ];
        let plan = plan_prune(
            &previous,
            &[],
            &live_objects,
            &Placements::default(),
            &target(),
            PrunePolicy {
                prune: true,
                allow_database_deletion: true,
            },
        );
        assert!(plan.delete.is_empty());
        assert!(plan.keep.iter().all(|(_, reason)| *reason == KeepReason::EmptyRevision));
    }

    #[test]
    fn databases_are_deleted_before_their_clusters() {
        let previous = [
            entry("RedisEnterpriseCluster", "rec"),
            entry("RedisEnterpriseDatabase", "cache"),
        ];
        let desired = [entry("RedisEnterpriseCluster", "other")];
        let live_objects = [
            live("RedisEnterpriseCluster", "rec", "config", false),
            live("RedisEnterpriseDatabase", "cache", "config", false),
        ];
        let plan = plan_prune(
            &previous,
            &desired,
            &live_objects,
            &Placements::default(),
            &target(),
            PrunePolicy {
                prune: true,
                allow_database_deletion: true,
            },
        );
        assert_eq!(
            plan.delete,
            [
                entry("RedisEnterpriseDatabase", "cache"),
                entry("RedisEnterpriseCluster", "rec")
            ]
        );
    }

    fn policy(prune: bool, allow_database_deletion: bool) -> PrunePolicy {
        PrunePolicy {
            prune,
            allow_database_deletion,
        }
    }

    fn placement(namespace: &str, name: &str, cluster: Option<&str>) -> DatabasePlacement {
        DatabasePlacement {
            namespace: namespace.into(),
            name: name.into(),
            cluster: cluster.map(str::to_string),
        }
    }

    fn placements(databases: Vec<DatabasePlacement>, clusters: &[(&str, &str)]) -> Placements {
        Placements {
            databases,
            clusters: clusters.iter().map(|(n, c)| (n.to_string(), c.to_string())).collect(),
        }
    }

    #[test]
    fn a_cluster_with_databases_is_never_pruned_and_names_them() {
        let previous = [
            entry("RedisEnterpriseCluster", "rec"),
            entry("RedisEnterpriseDatabase", "cache"),
            entry("RedisEnterpriseDatabase", "sessions"),
        ];
        let desired = [entry("RedisEnterpriseCluster", "other")];
        let live_objects = [
            live("RedisEnterpriseCluster", "rec", "config", false),
            live("RedisEnterpriseDatabase", "cache", "config", false),
            live("RedisEnterpriseDatabase", "sessions", "config", false),
        ];
        let on_rec = placements(
            vec![
                placement("redis", "cache", Some("rec")),
                placement("redis", "sessions", Some("rec")),
            ],
            &[("redis", "rec"), ("redis", "other")],
        );
        let has_databases = KeepReason::ClusterHasDatabases {
            databases: vec!["redis/cache".into(), "redis/sessions".into()],
        };

        // prune: true alone (issue 9, item 1): nothing goes, the cluster says which databases hold it.
        let plan = plan_prune(
            &previous,
            &desired,
            &live_objects,
            &on_rec,
            &target(),
            policy(true, false),
        );
        assert!(plan.delete.is_empty());
        assert_eq!(
            plan.keep,
            [
                (entry("RedisEnterpriseCluster", "rec"), has_databases.clone()),
                (
                    entry("RedisEnterpriseDatabase", "cache"),
                    KeepReason::DatabaseDeletionNotAllowed
                ),
                (
                    entry("RedisEnterpriseDatabase", "sessions"),
                    KeepReason::DatabaseDeletionNotAllowed
                ),
            ]
        );
        assert_eq!(
            has_databases.describe(),
            "removed from Git; kept because databases still live on this cluster: redis/cache, redis/sessions; \
             delete or move them first (deleting a cluster also needs spec.allowDatabaseDeletion)"
        );
        assert!(has_databases.blocks_cluster_prune());

        // Both opt-ins: the databases go now, the cluster only at a later sync once they are gone.
        let plan = plan_prune(
            &previous,
            &desired,
            &live_objects,
            &on_rec,
            &target(),
            policy(true, true),
        );
        assert_eq!(
            plan.delete,
            [
                entry("RedisEnterpriseDatabase", "cache"),
                entry("RedisEnterpriseDatabase", "sessions")
            ]
        );
        assert_eq!(plan.keep, [(entry("RedisEnterpriseCluster", "rec"), has_databases)]);
        let gone = placements(Vec::new(), &[("redis", "rec"), ("redis", "other")]);
        let plan = plan_prune(
            &previous[..1],
            &desired,
            &live_objects[..1],
            &gone,
            &target(),
            policy(true, true),
        );
        assert_eq!(plan.delete, [entry("RedisEnterpriseCluster", "rec")]);
    }

    #[test]
    fn an_empty_cluster_needs_both_opt_ins_and_a_protected_one_never_goes() {
        let previous = [entry("RedisEnterpriseCluster", "rec")];
        let desired = [entry("RedisEnterpriseCluster", "other")];
        let empty = Placements::default();
        let unprotected = [live("RedisEnterpriseCluster", "rec", "config", false)];
        let plan = plan_prune(
            &previous,
            &desired,
            &unprotected,
            &empty,
            &target(),
            policy(true, false),
        );
        assert!(plan.delete.is_empty());
        assert_eq!(
            plan.keep,
            [(
                entry("RedisEnterpriseCluster", "rec"),
                KeepReason::ClusterDeletionNotAllowed
            )]
        );
        assert_eq!(
            KeepReason::ClusterDeletionNotAllowed.describe(),
            "removed from Git; kept because deleting a cluster deletes its databases and the GitSync does not allow \
             deleting databases (spec.allowDatabaseDeletion)"
        );
        let plan = plan_prune(
            &previous,
            &desired,
            &unprotected,
            &empty,
            &target(),
            policy(false, true),
        );
        assert_eq!(plan.keep[0].1, KeepReason::PruneDisabled);
        assert!(!plan.keep[0].1.blocks_cluster_prune());
        let protected = [live("RedisEnterpriseCluster", "rec", "config", true)];
        let plan = plan_prune(&previous, &desired, &protected, &empty, &target(), policy(true, true));
        assert_eq!(plan.keep[0].1, KeepReason::Protected);
    }

    #[test]
    fn databases_on_a_cluster_are_found_as_the_database_controller_resolves_them() {
        let all = placements(
            vec![
                placement("redis", "named", Some("rec")),
                placement("redis", "unnamed", None),
                placement("redis", "elsewhere", Some("other")),
                placement("team-a", "remote", Some("rec")),
                placement("team-b", "local", Some("rec")),
                placement("team-c", "unnamed", None),
            ],
            &[("redis", "rec"), ("redis", "other"), ("team-b", "rec")],
        );
        assert_eq!(
            all.databases_on("redis", "rec"),
            ["redis/named", "redis/unnamed", "team-a/remote"]
        );
        // team-a/remote could be on either REC named rec: both keep it (erring on the side of keeping).
        assert_eq!(all.databases_on("team-b", "rec"), ["team-a/remote", "team-b/local"]);

        // A REDB the new revision still wants counts even before it exists.
        let mut wanted = Placements::default();
        let revision = repository(&[(
            "db.yaml",
            "apiVersion: app.redislabs.com/v1alpha1\nkind: RedisEnterpriseDatabase\nmetadata: {name: cache}\n\
             spec: {memorySize: 1GB, redisEnterpriseCluster: {name: rec}}\n",
        )]);
        wanted.add_desired(&desired_objects(&revision, &target()).expect("allowed"));
        assert_eq!(wanted.databases_on("redis", "rec"), ["redis/cache"]);
        assert!(wanted.databases_on("redis", "other").is_empty());
    }

    #[test]
    fn names_in_messages_are_limited() {
        let names: Vec<String> = (1..=8).map(|i| format!("ns/db{i}")).collect();
        assert_eq!(quote_names(&names), "ns/db1, ns/db2, ns/db3, ns/db4, ns/db5 and 3 more");
        assert_eq!(quote_names(&names[..2]), "ns/db1, ns/db2");
    }

    #[test]
    fn ownership_labels_of_another_gitsync_are_a_foreign_owner() {
        let labels = |name: &str, namespace: &str| -> BTreeMap<String, String> {
            [
                (GITSYNC_NAME_LABEL.to_string(), name.to_string()),
                (GITSYNC_NAMESPACE_LABEL.to_string(), namespace.to_string()),
            ]
            .into()
        };
        assert_eq!(
            foreign_owner(&BTreeMap::new(), &target()),
            None,
            "unlabelled: adoptable"
        );
        assert_eq!(foreign_owner(&labels("config", "redis"), &target()), None);
        assert_eq!(
            foreign_owner(&labels("first", "redis"), &target()).as_deref(),
            Some("redis/first")
        );
        assert_eq!(
            foreign_owner(&labels("config", "team-a"), &target()).as_deref(),
            Some("team-a/config"),
            "same name, other namespace"
        );
        let value = json!({"metadata": {"labels": {GITSYNC_NAME_LABEL: "first", GITSYNC_NAMESPACE_LABEL: "redis"}}});
        assert_eq!(labels_of(&value), labels("first", "redis"));
    }

    #[test]
    fn messages_are_cut_on_a_character_boundary() {
        assert_eq!(cap_message("short", 10), "short");
        assert_eq!(cap_message("exactly10!", 10), "exactly10!");
        assert_eq!(cap_message("ééééééééééé", 5), "éééé…");
        let long = "x".repeat(1_000_000);
        assert_eq!(cap_message(&long, MAX_MESSAGE_CHARS).chars().count(), MAX_MESSAGE_CHARS);
    }

    /// Issue 9, item 9: whatever the input, the status stays far below 1 MiB (etcd refuses objects over ~1.5 MiB).
    #[test]
    fn the_worst_case_status_stays_far_below_one_mebibyte() {
        use crate::api::conditions::Condition;
        use crate::api::gitsync::{GitSyncStatus, SourceError};
        // 10 000 objects (the default object budget of a revision) with the longest names a REDB may have, in a
        // namespace with the longest name: the largest inventory a default agent accepts.
        let namespace = "n".repeat(63);
        let entries: Vec<InventoryEntry> = (0..10_000)
            .map(|i| InventoryEntry {
                api_version: "app.redislabs.com/v1alpha1".into(),
                kind: "RedisEnterpriseDatabase".into(),
                namespace: namespace.clone(),
                name: format!("{i:05}{}", "d".repeat(58)),
                file: Some(format!("{}/{i}.yaml", "f".repeat(4000))),
            })
            .collect();
        let inventory = inventory_bytes(&entries);
        assert!(inventory <= MAX_INVENTORY_BYTES, "{inventory} bytes of inventory");
        let huge = "v".repeat(900_000);
        let mut status = GitSyncStatus {
            conditions: Some(
                ["Ready", "Reconciling", "Stalled"]
                    .iter()
                    .map(|type_| Condition {
                        type_: type_.to_string(),
                        status: "False".into(),
                        reason: "ValidationFailed".into(),
                        message: cap_message(&huge, MAX_MESSAGE_CHARS),
                        observed_generation: Some(1),
                        last_transition_time: "2026-12-01T10:00:00Z".into(),
                    })
                    .collect(),
            ),
            observed_generation: Some(i64::MAX),
            last_applied_revision: Some(format!("{}@sha1:{}", "r".repeat(255), "0".repeat(40))),
            last_attempted_revision: Some(format!("{}@sha1:{}", "r".repeat(255), "0".repeat(40))),
            last_sync_time: Some("2026-12-01T10:00:00Z".into()),
            last_handled_reconcile_at: Some("a".repeat(63)),
            errors: Some(
                (0..50)
                    .map(|_| SourceError {
                        file: cap_message(&huge, MAX_MESSAGE_CHARS),
                        line: u32::MAX,
                        column: u32::MAX,
                        field: Some(cap_message(&huge, MAX_MESSAGE_CHARS)),
                        message: cap_message(&huge, MAX_MESSAGE_CHARS),
                    })
                    .collect(),
            ),
            ..GitSyncStatus::default()
        };
        status.set_inventory(&entries);
        let size = serde_json::to_vec(&status).expect("serializes").len();
        println!("worst-case status: {size} bytes, of which {inventory} bytes of inventory");
        assert!(size < 800 * 1024, "the worst-case status takes {size} bytes");
        assert_eq!(status.inventory_entries().len(), 10_000);

        // The same objects spread over 10 000 namespaces would not fit: such a revision is refused before anything
        // is applied (InventoryTooLarge), so the status never grows past the budget.
        let spread: Vec<InventoryEntry> = entries
            .iter()
            .enumerate()
            .map(|(i, entry)| InventoryEntry {
                namespace: format!("{i:05}{}", "n".repeat(58)),
                ..entry.clone()
            })
            .collect();
        assert!(inventory_bytes(&spread) > MAX_INVENTORY_BYTES);
    }

    #[test]
    fn the_inventory_of_older_agents_is_still_read() {
        let old: crate::api::gitsync::GitSyncStatus = serde_json::from_value(json!({
            "inventory": [
                {"apiVersion": "app.redislabs.com/v1", "kind": "RedisEnterpriseCluster", "namespace": "redis",
                 "name": "rec", "file": "rec.yaml"},
                {"apiVersion": "app.redislabs.com/v1alpha1", "kind": "RedisEnterpriseDatabase", "namespace": "redis",
                 "name": "cache", "file": "db.yaml"}
            ]
        }))
        .expect("the old shape");
        let entries = old.inventory_entries();
        assert_eq!(
            entries,
            [
                entry("RedisEnterpriseCluster", "rec"),
                entry("RedisEnterpriseDatabase", "cache")
            ]
        );
        let mut new = old.clone();
        new.set_inventory(&entries);
        assert_eq!(
            serde_json::to_value(&new).expect("json"),
            json!({"objects": [
                {"apiVersion": "app.redislabs.com/v1", "kind": "RedisEnterpriseCluster", "namespace": "redis",
                 "names": ["rec"]},
                {"apiVersion": "app.redislabs.com/v1alpha1", "kind": "RedisEnterpriseDatabase", "namespace": "redis",
                 "names": ["cache"]}
            ]})
        );
        assert_eq!(new.inventory_entries(), entries);
    }
}
