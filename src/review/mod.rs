//! The plan engine of `redis-gitops plan`: from two validated revisions (a base and a head) to what merging the head
//! would do — per REC and REDB a create, update or delete with the fields that change, the Redis Enterprise REST
//! requests the agent would send (decided by the database controller's own `decide_mutation`), the Kubernetes
//! children that change (decided by the `desired` builders and the cluster controller's rollout), and the risks a
//! reviewer must see, each saying what happens and how to avoid it. Pure: no clients, no I/O (reading the two
//! sides is [`input`]); Secret values never enter a plan (passwords are not in Git, and REST bodies are built
//! without them).

pub mod cluster;
pub mod database;
pub mod deletion;
pub mod fields;
pub mod input;
pub mod output;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

pub use fields::FieldChange;

use crate::manifests::Repository;

/// What happens to an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// It is new in the head.
    Create,
    /// It is in both and differs.
    Update,
    /// It is only in the base.
    Delete,
}

impl Action {
    /// `create`, `update` or `delete`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
        }
    }
}

/// How bad a risk is; the most severe sorts first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// Data is deleted or becomes unreachable.
    DataLoss,
    /// Clients see restarts, failovers or changed endpoints; no data is lost.
    Disruption,
    /// Worth a look: refused changes, reduced safety margins.
    Warning,
}

impl Severity {
    /// `data-loss`, `disruption` or `warning`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DataLoss => "data-loss",
            Self::Disruption => "disruption",
            Self::Warning => "warning",
        }
    }
}

/// The risks a plan flags (the README lists them with what each means).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum RiskCode {
    /// A REDB is removed: pruning may delete the database and its data.
    DatabaseDeleted,
    /// A database would be deleted and created again, empty: moved to another cluster or namespace, or renamed.
    DatabaseRecreated,
    /// A REC is removed, with the databases on it.
    ClusterDeleted,
    /// A field that cannot change after creation changes: the agent (or Kubernetes) refuses it.
    ImmutableFieldChanged,
    /// `nodes` is lowered: removing nodes is refused, the StatefulSet keeps its replicas.
    ScaleInRefused,
    /// Every node of a cluster restarts, one at a time.
    RollingRestart,
    /// `memorySize` is lowered.
    MemoryReduced,
    /// Persistence, replication or backups are turned off or weakened.
    DurabilityReduced,
    /// A module is removed from a database.
    ModuleRemoved,
    /// The number of shards changes: the database is resharded.
    ShardCountChanged,
    /// The eviction policy changes: which keys Redis drops when memory is full.
    EvictionPolicyChanged,
    /// The TLS mode changes: clients must connect differently.
    TlsModeChanged,
    /// The Redis version of a database changes: its shards are upgraded.
    RedisVersionChanged,
    /// The database's credentials change: its Secret or its default user.
    CredentialsChanged,
    /// The OSS Cluster API is turned on or off: clients must switch between cluster and standalone mode.
    OssClusterChanged,
    /// The database's Services change name, port or type: clients must use the new endpoint.
    EndpointChanged,
}

impl RiskCode {
    /// The code as JSON and the README write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DatabaseDeleted => "DatabaseDeleted",
            Self::DatabaseRecreated => "DatabaseRecreated",
            Self::ClusterDeleted => "ClusterDeleted",
            Self::ImmutableFieldChanged => "ImmutableFieldChanged",
            Self::ScaleInRefused => "ScaleInRefused",
            Self::RollingRestart => "RollingRestart",
            Self::MemoryReduced => "MemoryReduced",
            Self::DurabilityReduced => "DurabilityReduced",
            Self::ModuleRemoved => "ModuleRemoved",
            Self::ShardCountChanged => "ShardCountChanged",
            Self::EvictionPolicyChanged => "EvictionPolicyChanged",
            Self::TlsModeChanged => "TlsModeChanged",
            Self::RedisVersionChanged => "RedisVersionChanged",
            Self::CredentialsChanged => "CredentialsChanged",
            Self::OssClusterChanged => "OssClusterChanged",
            Self::EndpointChanged => "EndpointChanged",
        }
    }
}

/// One risk of a change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Risk {
    /// Which risk.
    pub code: RiskCode,
    /// How bad it is.
    pub severity: Severity,
    /// What happens and how to avoid it.
    pub message: String,
}

impl Risk {
    /// A risk.
    pub fn new(code: RiskCode, severity: Severity, message: impl Into<String>) -> Self {
        Self {
            code,
            severity,
            message: message.into(),
        }
    }
}

/// A Redis Enterprise REST request the agent would send, in order.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    /// HTTP method.
    pub method: String,
    /// Path on the cluster's REST API; `{uid}` is the database's id, known only in the cluster.
    pub path: String,
    /// `namespace/name` of the cluster it is sent to.
    pub cluster: String,
    /// JSON body, without any secret (passwords and backup keys are filled in at apply time).
    #[serde(skip_serializing_if = "Value::is_null")]
    pub body: Value,
    /// Body fields filled in at apply time from Secrets (never shown).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filled_in_at_apply: Vec<String>,
}

/// A Kubernetes object the agent creates, changes or deletes for a REC or REDB.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChildChange {
    /// Its kind.
    pub kind: String,
    /// Its name (in the namespace of its REC or REDB).
    pub name: String,
    /// What happens to it.
    pub action: Action,
    /// The paths that change (values are not shown: the object may be a Secret).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    /// What the change means, such as the order of a rolling restart.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What happens to one REC or REDB.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// `RedisEnterpriseCluster` or `RedisEnterpriseDatabase`.
    pub kind: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Create, update or delete.
    pub action: Action,
    /// The file it is in (the head's; the base's for a delete).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// For a delete paired with a create of the same spec: the probable new `namespace/name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renamed_to: Option<String>,
    /// For a create paired with a delete of the same spec: the probable old `namespace/name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renamed_from: Option<String>,
    /// The fields that change, from the base value to the head value (all of them for a create or delete).
    pub fields: Vec<FieldChange>,
    /// REST requests, in the order the agent sends them.
    pub requests: Vec<Request>,
    /// Kubernetes children that change.
    pub children: Vec<ChildChange>,
    /// Risks, the most severe first.
    pub risks: Vec<Risk>,
}

impl Change {
    fn new(kind: &str, namespace: &str, name: &str, action: Action, file: Option<&str>) -> Self {
        Self {
            kind: kind.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
            action,
            file: file.map(str::to_string),
            renamed_to: None,
            renamed_from: None,
            fields: Vec::new(),
            requests: Vec::new(),
            children: Vec::new(),
            risks: Vec::new(),
        }
    }

    /// The most severe risk, if any.
    pub fn worst(&self) -> Option<Severity> {
        self.risks.iter().map(|risk| risk.severity).min()
    }
}

/// Counts over a plan.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Objects created.
    pub create: usize,
    /// Objects updated.
    pub update: usize,
    /// Objects deleted.
    pub delete: usize,
    /// Objects in both sides without a change.
    pub unchanged: usize,
    /// Risks in all.
    pub risks: usize,
    /// Risks of severity `data-loss`.
    pub data_loss: usize,
    /// Risks of severity `disruption`.
    pub disruption: usize,
    /// Risks of severity `warning`.
    pub warning: usize,
}

/// What merging the head does.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Plan {
    /// Every REC and REDB that changes: clusters first, each sorted by namespace and name.
    pub changes: Vec<Change>,
    /// Counts.
    pub summary: Summary,
}

/// Which risks make `--fail-on` fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailOn {
    /// Any risk of severity `data-loss`.
    DataLoss,
    /// Any risk.
    Risk,
}

impl Plan {
    /// Whether anything changes.
    pub fn has_changes(&self) -> bool {
        !self.changes.is_empty()
    }

    /// Whether a risk matches `fail_on`.
    pub fn fails(&self, fail_on: FailOn) -> bool {
        match fail_on {
            FailOn::DataLoss => self.summary.data_loss > 0,
            FailOn::Risk => self.summary.risks > 0,
        }
    }
}

/// What the GitSync that applies the repository allows pruning to do, when known (`--gitsync FILE` or flags);
/// `None` means unknown, and a plan then says what each setting would do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PruneSettings {
    /// `spec.prune`.
    pub prune: Option<bool>,
    /// `spec.allowDatabaseDeletion`.
    pub allow_database_deletion: Option<bool>,
}

impl PruneSettings {
    /// The settings of a GitSync spec (unset fields take their defaults, `false`).
    pub fn of_gitsync(spec: &crate::api::gitsync::GitSyncSpec) -> Self {
        Self {
            prune: Some(spec.prune.unwrap_or(false)),
            allow_database_deletion: Some(spec.allow_database_deletion.unwrap_or(false)),
        }
    }
}

/// `(namespace, name)`.
pub(crate) type Key = (String, String);

/// Plans the change from `base` to `head`.
pub fn plan(base: &Repository, head: &Repository, settings: &PruneSettings) -> Plan {
    let fates = deletion::fates(base, head, settings);
    let mut changes = Vec::new();
    let base_clusters: BTreeMap<Key, usize> = index(
        base.clusters
            .iter()
            .map(|c| &c.validated)
            .map(|v| (&v.namespace, &v.name)),
    );
    let head_clusters: BTreeMap<Key, usize> = index(
        head.clusters
            .iter()
            .map(|c| &c.validated)
            .map(|v| (&v.namespace, &v.name)),
    );
    let mut changed_clusters = BTreeSet::new();
    let mut unchanged = 0;
    let keys: BTreeSet<&Key> = base_clusters.keys().chain(head_clusters.keys()).collect();
    for key in keys {
        match (base_clusters.get(key), head_clusters.get(key)) {
            (Some(&old), Some(&new)) => match cluster::updated(&base.clusters[old], &head.clusters[new]) {
                Some(change) => {
                    changed_clusters.insert(key.clone());
                    changes.push(change);
                }
                None => unchanged += 1,
            },
            (None, Some(&new)) => changes.push(cluster::created(&head.clusters[new])),
            (Some(&old), None) => changes.push(cluster::deleted(&base.clusters[old], base, &fates)),
            (None, None) => {}
        }
    }
    let (database_changes, unchanged_databases) = database::changes(base, head, &changed_clusters, &fates);
    changes.extend(database_changes);
    unchanged += unchanged_databases;
    for change in &mut changes {
        change.risks.sort_by_key(|risk| (risk.severity, risk.code));
    }
    let mut summary = Summary {
        unchanged,
        ..Summary::default()
    };
    for change in &changes {
        match change.action {
            Action::Create => summary.create += 1,
            Action::Update => summary.update += 1,
            Action::Delete => summary.delete += 1,
        }
        for risk in &change.risks {
            summary.risks += 1;
            match risk.severity {
                Severity::DataLoss => summary.data_loss += 1,
                Severity::Disruption => summary.disruption += 1,
                Severity::Warning => summary.warning += 1,
            }
        }
    }
    Plan { changes, summary }
}

fn index<'a>(keys: impl Iterator<Item = (&'a String, &'a String)>) -> BTreeMap<Key, usize> {
    keys.enumerate()
        .map(|(position, (namespace, name))| ((namespace.clone(), name.clone()), position))
        .collect()
}

/// The sections of an object a change is about: `spec`, `metadata.labels`, `metadata.annotations`.
pub(crate) fn object_fields(from: Option<&Value>, to: Option<&Value>) -> Vec<FieldChange> {
    let mut out = Vec::new();
    for (path, pointer) in [
        ("spec", "/spec"),
        ("metadata.labels", "/metadata/labels"),
        ("metadata.annotations", "/metadata/annotations"),
    ] {
        fields::diff(
            path,
            from.and_then(|value| value.pointer(pointer)),
            to.and_then(|value| value.pointer(pointer)),
            &mut out,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifests::{LoadOptions, SourceFile, load_files};

    fn repository(files: &[(&str, &str)]) -> Repository {
        let files: Vec<SourceFile> = files
            .iter()
            .map(|(path, text)| SourceFile {
                path: (*path).into(),
                content: text.as_bytes().to_vec(),
            })
            .collect();
        load_files(&files, &LoadOptions::default()).unwrap_or_else(|errors| panic!("{errors:?}"))
    }

    const REC: &str =
        "apiVersion: app.redislabs.com/v1\nkind: RedisEnterpriseCluster\nmetadata: {name: rec}\nspec: {nodes: 3}\n";

    fn redb(name: &str, spec: &str) -> String {
        format!(
            "apiVersion: app.redislabs.com/v1alpha1\nkind: RedisEnterpriseDatabase\nmetadata: {{name: {name}}}\nspec: {spec}\n"
        )
    }

    #[test]
    fn the_same_objects_written_differently_are_no_change() {
        let base = repository(&[
            ("rec.yaml", REC),
            ("db.yaml", &redb("cache", "{memorySize: 1GB, replication: true}")),
        ]);
        let head = repository(&[
            (
                "a/rec.yaml",
                "# comment\nkind: RedisEnterpriseCluster\napiVersion: app.redislabs.com/v1\nspec:\n  nodes: 3\nmetadata:\n  name: rec\n",
            ),
            ("b/db.yaml", &redb("cache", "{replication: true, memorySize: 1GB}")),
        ]);
        let plan = plan(&base, &head, &PruneSettings::default());
        assert!(!plan.has_changes(), "{plan:#?}");
        assert_eq!(plan.summary.unchanged, 2);
        assert!(!plan.fails(FailOn::Risk));
    }

    #[test]
    fn summary_counts_actions_and_severities_and_fail_on_follows_them() {
        let base = repository(&[
            ("rec.yaml", REC),
            ("a.yaml", &redb("a", "{memorySize: 2GB, evictionPolicy: noeviction}")),
            ("b.yaml", &redb("b", "{memorySize: 1GB}")),
        ]);
        let head = repository(&[
            ("rec.yaml", REC),
            ("a.yaml", &redb("a", "{memorySize: 1GB, evictionPolicy: noeviction}")),
            ("c.yaml", &redb("c", "{memorySize: 3GB}")),
        ]);
        let settings = PruneSettings {
            prune: Some(true),
            allow_database_deletion: Some(true),
        };
        let plan = plan(&base, &head, &settings);
        let actions: Vec<(&str, Action)> = plan.changes.iter().map(|c| (c.name.as_str(), c.action)).collect();
        assert_eq!(
            actions,
            [("a", Action::Update), ("b", Action::Delete), ("c", Action::Create)]
        );
        assert_eq!(
            (
                plan.summary.create,
                plan.summary.update,
                plan.summary.delete,
                plan.summary.unchanged
            ),
            (1, 1, 1, 1)
        );
        assert_eq!(
            (plan.summary.data_loss, plan.summary.warning, plan.summary.risks),
            (1, 1, 2)
        );
        assert_eq!(plan.changes[1].worst(), Some(Severity::DataLoss));
        assert_eq!(plan.changes[1].risks[0].code, RiskCode::DatabaseDeleted);
        assert_eq!(plan.changes[0].risks[0].code, RiskCode::MemoryReduced);
        assert!(plan.fails(FailOn::DataLoss) && plan.fails(FailOn::Risk));
        let kept = super::plan(
            &base,
            &head,
            &PruneSettings {
                prune: Some(false),
                allow_database_deletion: None,
            },
        );
        assert!(!kept.fails(FailOn::DataLoss), "pruning is off: nothing is deleted");
        assert!(kept.changes[1].requests.is_empty());
    }
}
