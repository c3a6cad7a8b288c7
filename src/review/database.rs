//! REDB changes: created, updated, deleted, and probable renames or moves (a delete and a create with the same
//! spec). The REST requests come from the database controller's own `decide_mutation`, run pass after pass against
//! the base's database as if it were live (each pass sends one mutation, as the agent does); the children from
//! `desired::database`. Pure.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Map, Value, json};

use super::deletion::{Fate, ObjectKey, orphans_database};
use super::{Action, Change, ChildChange, Key, Request, Risk, RiskCode, Severity, fields, object_fields};
use crate::api::database::{EvictionPolicy, Persistence};
use crate::controllers::database::build::{Live, Mutation, Standing, decide_mutation};
use crate::controllers::database::validate::{Password, ValidatedState};
use crate::desired::database::{
    RuntimeValues, build_alert_settings, build_bdb, build_database_secret, build_database_services, runtime_fields,
};
use crate::enterprise::types::{Bdb, redact_secrets};
use crate::manifests::Repository;
use crate::manifests::repo::LoadedDatabase;
use crate::model::{ValidatedCluster, ValidatedDatabase};

const KIND: &str = "RedisEnterpriseDatabase";
/// The port children are compared with when the cluster assigns it (both sides alike, so only real differences
/// show).
const ASSIGNED_PORT: u16 = 12000;
/// More passes than any change needs (update, upgrade, alerts): a guard, not a limit users meet.
const MAX_PASSES: usize = 8;

/// The database changes from `base` to `head`, and how many databases stay as they are.
pub(crate) fn changes(
    base: &Repository,
    head: &Repository,
    changed_clusters: &BTreeSet<Key>,
    fates: &BTreeMap<ObjectKey, Fate>,
) -> (Vec<Change>, usize) {
    let key = |database: &LoadedDatabase| (database.validated.namespace.clone(), database.validated.name.clone());
    let old: BTreeMap<Key, &LoadedDatabase> = base.databases.iter().map(|d| (key(d), d)).collect();
    let new: BTreeMap<Key, &LoadedDatabase> = head.databases.iter().map(|d| (key(d), d)).collect();
    let mut changes = Vec::new();
    let mut unchanged = 0;
    for (key, before) in &old {
        if let Some(after) = new.get(key) {
            match updated(before, base, after, head, changed_clusters) {
                Some(change) => changes.push(change),
                None => unchanged += 1,
            }
        }
    }
    // Probable renames and moves: a removed and an added REDB with the same spec.
    let mut added_by_spec: HashMap<String, Vec<&Key>> = HashMap::new();
    for (key, database) in new.iter().filter(|(key, _)| !old.contains_key(*key)) {
        added_by_spec.entry(spec_text(database)).or_default().push(key);
    }
    let mut paired: BTreeMap<Key, Key> = BTreeMap::new();
    for (key, database) in old.iter().filter(|(key, _)| !new.contains_key(*key)) {
        let Some(candidates) = added_by_spec.get_mut(&spec_text(database)) else {
            continue;
        };
        let position = candidates.iter().position(|other| other.1 == key.1).unwrap_or(0);
        if position < candidates.len() {
            paired.insert(key.clone(), candidates.remove(position).clone());
        }
    }
    let renamed_from: BTreeMap<&Key, &Key> = paired.iter().map(|(from, to)| (to, from)).collect();
    for (key, database) in old.iter().filter(|(key, _)| !new.contains_key(*key)) {
        let fate = fates
            .get(&(KIND.to_string(), key.0.clone(), key.1.clone()))
            .cloned()
            .unwrap_or(Fate::Deleted);
        changes.push(deleted(database, base, &fate, paired.get(key)));
    }
    for (key, database) in new.iter().filter(|(key, _)| !old.contains_key(*key)) {
        changes.push(created(database, head, renamed_from.get(key).copied()));
    }
    changes.sort_by(|a, b| (&a.namespace, &a.name, a.action).cmp(&(&b.namespace, &b.name, b.action)));
    (changes, unchanged)
}

fn spec_text(database: &LoadedDatabase) -> String {
    serde_json::to_value(&database.object.spec)
        .map(|spec| canonical(&spec))
        .unwrap_or_default()
}

/// JSON text with sorted keys, so equal specs give equal text however they were written.
fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let items: Vec<String> = keys
                .iter()
                .map(|key| format!("{key:?}:{}", canonical(&map[*key])))
                .collect();
            format!("{{{}}}", items.join(","))
        }
        Value::Array(items) => format!("[{}]", items.iter().map(canonical).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

/// The cluster a database is on: `namespace/name` and its validated spec when the revision has it.
fn cluster_of<'a>(database: &LoadedDatabase, repository: &'a Repository) -> (String, Option<&'a ValidatedCluster>) {
    let validated = &database.validated;
    match database.cluster.and_then(|index| repository.clusters.get(index)) {
        Some(cluster) => (
            format!("{}/{}", cluster.validated.namespace, cluster.validated.name),
            Some(&cluster.validated),
        ),
        None => match &validated.cluster_reference {
            Some(name) => (format!("{}/{name}", validated.namespace), None),
            None => (format!("{}/<the cluster of the namespace>", validated.namespace), None),
        },
    }
}

fn object_value(database: &LoadedDatabase) -> Value {
    serde_json::to_value(&database.object).unwrap_or(Value::Null)
}

fn state(database: &ValidatedDatabase, cluster: Option<&ValidatedCluster>) -> ValidatedState {
    ValidatedState {
        database: database.clone(),
        cluster: cluster.cloned(),
        // No password: a plan never holds one, and the controller sets a password only when the Secret's changed.
        password: Password::None,
        warnings: Vec::new(),
        creation_token: None,
    }
}

fn create_requests(
    database: &ValidatedDatabase,
    cluster: Option<&ValidatedCluster>,
    cluster_key: &str,
) -> Vec<Request> {
    let mut requests = Vec::new();
    let live = Live {
        cluster_key,
        bdb: None,
        secret: None,
        alerts: None,
        backup_credentials: &std::collections::BTreeMap::new(),
        redis_versions: None,
    };
    if let Mutation::Create { body, .. } = decide_mutation(&state(database, cluster), &live, None) {
        requests.push(request(
            "POST",
            "/v1/bdbs",
            cluster_key,
            Value::Object(body),
            runtime_fields(database),
        ));
    }
    if let Some(alerts) = build_alert_settings(database) {
        requests.push(request(
            "POST",
            "/v1/bdbs/alerts/{uid}",
            cluster_key,
            alerts,
            Vec::new(),
        ));
    }
    requests
}

fn request(method: &str, path: &str, cluster: &str, body: Value, filled: Vec<&str>) -> Request {
    Request {
        method: method.to_string(),
        path: path.to_string(),
        cluster: cluster.to_string(),
        body: redact_secrets(&body),
        filled_in_at_apply: filled.into_iter().map(str::to_string).collect(),
    }
}

/// The base's database as the cluster would report it: active, with the base's body.
fn live_body(database: &ValidatedDatabase) -> Map<String, Value> {
    let mut body = build_bdb(database, &RuntimeValues::default());
    body.insert("uid".to_string(), json!(1));
    body.insert("status".to_string(), json!("active"));
    // A port the cluster assigned is unknown here; 0 stands for "some port", so fixing one later shows as refused.
    body.entry("port".to_string()).or_insert(json!(0));
    body
}

/// The requests of an update, pass by pass, and the bdb fields refused as immutable.
fn update_requests(
    before: &ValidatedDatabase,
    after: &ValidatedDatabase,
    cluster: Option<&ValidatedCluster>,
    cluster_key: &str,
) -> (Vec<Request>, Vec<String>) {
    let wanted = state(after, cluster);
    let mut live = live_body(before);
    let mut alerts = build_alert_settings(before);
    let mut requests = Vec::new();
    for _ in 0..MAX_PASSES {
        let Ok(bdb) = serde_json::from_value::<Bdb>(Value::Object(live.clone())) else {
            break;
        };
        let state = Live {
            cluster_key,
            bdb: Some(&bdb),
            secret: None,
            alerts: alerts.as_ref(),
            backup_credentials: &std::collections::BTreeMap::new(),
            redis_versions: None,
        };
        match decide_mutation(&wanted, &state, None) {
            Mutation::Update { changes, .. } => {
                requests.push(request(
                    "PUT",
                    "/v1/bdbs/{uid}",
                    cluster_key,
                    Value::Object(changes.clone()),
                    Vec::new(),
                ));
                live.extend(changes);
            }
            Mutation::Upgrade { version, .. } => {
                requests.push(request(
                    "POST",
                    "/v1/bdbs/{uid}/upgrade",
                    cluster_key,
                    json!({ "redis_version": version }),
                    Vec::new(),
                ));
                live.insert("redis_version".to_string(), json!(version));
            }
            Mutation::SetAlerts { alerts: sent, .. } => {
                requests.push(request(
                    "POST",
                    "/v1/bdbs/alerts/{uid}",
                    cluster_key,
                    sent.clone(),
                    Vec::new(),
                ));
                let mut merged = alerts.and_then(|value| value.as_object().cloned()).unwrap_or_default();
                if let Value::Object(sent) = sent {
                    merged.extend(sent);
                }
                alerts = Some(Value::Object(merged));
            }
            Mutation::Nothing(Standing::Immutable(fields)) => return (requests, fields),
            Mutation::Nothing(_) | Mutation::Create { .. } | Mutation::SetPassword { .. } => break,
        }
    }
    (requests, Vec::new())
}

/// The database's children by `(kind, name)`, as JSON.
fn children(database: &ValidatedDatabase, cluster: Option<&ValidatedCluster>) -> BTreeMap<(String, String), Value> {
    let port = database.port.unwrap_or(ASSIGNED_PORT);
    let mut objects = BTreeMap::new();
    if let Some(secret) = build_database_secret(database, cluster, Some(port), None)
        && let Ok(value) = serde_json::to_value(&secret)
    {
        objects.insert(("Secret".to_string(), database.secret_name.clone()), value);
    }
    for service in build_database_services(database, cluster, port) {
        let name = service.metadata.name.clone().unwrap_or_default();
        if let Ok(value) = serde_json::to_value(&service) {
            objects.insert(("Service".to_string(), name), value);
        }
    }
    objects
}

/// The children that differ between two sets, by path only (the Secret's values are never shown).
pub(crate) fn child_changes(
    before: &BTreeMap<(String, String), Value>,
    after: &BTreeMap<(String, String), Value>,
) -> Vec<ChildChange> {
    let keys: BTreeSet<&(String, String)> = before.keys().chain(after.keys()).collect();
    let mut out = Vec::new();
    for key in keys {
        let (action, paths) = match (before.get(key), after.get(key)) {
            (Some(old), Some(new)) => {
                let paths = fields::changed_paths(old, new);
                if paths.is_empty() {
                    continue;
                }
                (Action::Update, paths)
            }
            (None, Some(_)) => (Action::Create, Vec::new()),
            (Some(_), None) => (Action::Delete, Vec::new()),
            (None, None) => continue,
        };
        out.push(ChildChange {
            kind: key.0.clone(),
            name: key.1.clone(),
            action,
            fields: paths,
            note: None,
        });
    }
    out
}

fn created(database: &LoadedDatabase, head: &Repository, renamed_from: Option<&Key>) -> Change {
    let validated = &database.validated;
    let (cluster_key, cluster) = cluster_of(database, head);
    let mut change = Change::new(
        KIND,
        &validated.namespace,
        &validated.name,
        Action::Create,
        Some(&database.source.file),
    );
    change.fields = object_fields(None, Some(&object_value(database)));
    change.requests = create_requests(validated, cluster, &cluster_key);
    change.children = child_changes(&BTreeMap::new(), &children(validated, cluster));
    change.renamed_from = renamed_from.map(|(namespace, name)| format!("{namespace}/{name}"));
    change
}

fn deleted(database: &LoadedDatabase, base: &Repository, fate: &Fate, renamed_to: Option<&Key>) -> Change {
    let validated = &database.validated;
    let (cluster_key, cluster) = cluster_of(database, base);
    let value = object_value(database);
    let mut change = Change::new(
        KIND,
        &validated.namespace,
        &validated.name,
        Action::Delete,
        Some(&database.source.file),
    );
    change.fields = object_fields(Some(&value), None);
    let orphan = orphans_database(&value);
    let what = format!(
        "database {}/{} on cluster {cluster_key}",
        validated.namespace, validated.name
    );
    let keep_hint = "to keep it, restore the YAML, or annotate the REDB redisgitops.dev/protect: \"true\" (never pruned) \
                     or redisgitops.dev/deletion-policy: orphan (the REDB goes, the database stays) in an earlier change";
    let (severity, outcome) = match (fate, orphan) {
        (Fate::Kept(reason), _) => (
            Severity::Warning,
            format!("{reason}: the REDB and its database stay, reported as orphaned (Synced=False, RemovedFromSource)"),
        ),
        (Fate::Deleted, true) => (
            Severity::Warning,
            "pruning deletes the REDB, but its deletion policy is orphan: the database and its Secret stay in the \
             cluster, no longer managed"
                .to_string(),
        ),
        (Fate::Deleted, false) => (
            Severity::DataLoss,
            format!(
                "the GitSync prunes it (prune and allowDatabaseDeletion are on): the agent deletes the {what} and all its data; {keep_hint}"
            ),
        ),
        (Fate::Depends(reason), _) => (
            if orphan { Severity::Warning } else { Severity::DataLoss },
            format!(
                "with the GitSync's prune: true and allowDatabaseDeletion: true the agent deletes the {what}{}; with \
                 prune or allowDatabaseDeletion false (the defaults) it is {reason}; pass --gitsync FILE (or --prune and \
                 --allow-database-deletion) to know which; {keep_hint}",
                if orphan {
                    " REDB but keeps the database (deletion policy orphan)"
                } else {
                    " and all its data"
                }
            ),
        ),
    };
    if matches!(fate, Fate::Deleted) {
        change.children = child_changes(&children(validated, cluster), &BTreeMap::new());
        if !orphan {
            change.requests.push(request(
                "DELETE",
                "/v1/bdbs/{uid}",
                &cluster_key,
                Value::Null,
                Vec::new(),
            ));
        }
    }
    match renamed_to {
        Some((namespace, name)) => {
            change.renamed_to = Some(format!("{namespace}/{name}"));
            let moved = if *name == validated.name {
                format!("moved from namespace {} to {namespace}", validated.namespace)
            } else {
                format!("probably renamed to {namespace}/{name} (a REDB with the same spec is added)")
            };
            change.risks.push(Risk::new(
                RiskCode::DatabaseRecreated,
                severity,
                format!(
                    "{moved}: a database cannot be renamed or moved, so the new REDB gets a new, empty database and \
                     the old one is pruned: {outcome}. To keep the data, keep the old name, or copy the data (backup \
                     and restore, or Replica Of) before removing the old REDB"
                ),
            ));
        }
        None => change.risks.push(Risk::new(
            RiskCode::DatabaseDeleted,
            severity,
            format!("REDB removed: {outcome}"),
        )),
    }
    change
}

fn updated(
    before: &LoadedDatabase,
    base: &Repository,
    after: &LoadedDatabase,
    head: &Repository,
    changed_clusters: &BTreeSet<Key>,
) -> Option<Change> {
    let old_value = object_value(before);
    let new_value = object_value(after);
    let field_changes = object_fields(Some(&old_value), Some(&new_value));
    let (old_cluster_key, old_cluster) = cluster_of(before, base);
    let (new_cluster_key, new_cluster) = cluster_of(after, head);
    let cluster_changed = after
        .cluster
        .and_then(|index| head.clusters.get(index))
        .is_some_and(|c| changed_clusters.contains(&(c.validated.namespace.clone(), c.validated.name.clone())));
    if field_changes.is_empty() && !cluster_changed && old_cluster_key == new_cluster_key {
        return None;
    }
    let (old, new) = (&before.validated, &after.validated);
    let children = child_changes(&children(old, old_cluster), &children(new, new_cluster));
    if field_changes.is_empty() && children.is_empty() {
        return None;
    }
    let mut change = Change::new(
        KIND,
        &new.namespace,
        &new.name,
        Action::Update,
        Some(&after.source.file),
    );
    change.fields = field_changes;
    if old_cluster_key != new_cluster_key {
        change.requests = create_requests(new, new_cluster, &new_cluster_key);
        change.risks.push(Risk::new(
            RiskCode::DatabaseRecreated,
            Severity::DataLoss,
            format!(
                "the REDB moves from cluster {old_cluster_key} to {new_cluster_key}: the agent creates a new, empty \
                 database on {new_cluster_key}; the data on {old_cluster_key} does not move with it. Copy it first \
                 (backup and restore, or Replica Of), or keep the cluster reference"
            ),
        ));
    } else {
        let (requests, immutable) = update_requests(old, new, new_cluster, &new_cluster_key);
        change.requests = requests;
        if !immutable.is_empty() {
            let fields: Vec<&str> = immutable
                .iter()
                .map(|field| match field.as_str() {
                    "port" => "spec.databasePort",
                    "type" => "spec.type",
                    "name" => "metadata.name",
                    other => other,
                })
                .collect();
            change.risks.push(Risk::new(
                RiskCode::ImmutableFieldChanged,
                Severity::Warning,
                format!(
                    "{} cannot change after the database is created: the agent refuses the change (the REDB turns \
                     Stalled) and applies none of its other changes until the field is restored{}; to change it, \
                     create a new database and move the data",
                    fields.join(", "),
                    if immutable.iter().any(|f| f == "port") && old.port.is_none() {
                        " (the cluster assigned the port at creation; setting it is accepted only with that port)"
                    } else {
                        ""
                    }
                ),
            ));
        }
    }
    if old_cluster_key == new_cluster_key {
        // A database created anew has no previous settings to weaken: only the recreation matters.
        risks(old, new, &children, &mut change.risks);
    }
    change.children = children;
    Some(change)
}

fn evicts(policy: EvictionPolicy) -> bool {
    policy != EvictionPolicy::Noeviction
}

fn durability(persistence: Persistence) -> u8 {
    match persistence {
        Persistence::Disabled => 0,
        Persistence::SnapshotEvery12Hour => 1,
        Persistence::SnapshotEvery6Hour => 2,
        Persistence::SnapshotEvery1Hour => 3,
        Persistence::AofEverySecond => 4,
        Persistence::AofAlways => 5,
    }
}

fn persistence_name(persistence: Persistence) -> String {
    serde_json::to_value(persistence)
        .ok()
        .and_then(|value| value.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn bytes(value: u64) -> String {
    const UNITS: [(&str, u64); 4] = [("TB", 1 << 40), ("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)];
    for (unit, size) in UNITS {
        if value >= size && value.is_multiple_of(size) {
            return format!("{}{unit}", value / size);
        }
    }
    format!("{value} bytes")
}

/// The risks of an update, from the validated specs.
fn risks(old: &ValidatedDatabase, new: &ValidatedDatabase, children: &[ChildChange], out: &mut Vec<Risk>) {
    if new.memory_size_bytes < old.memory_size_bytes {
        let (from, to) = (bytes(old.memory_size_bytes), bytes(new.memory_size_bytes));
        let policy = new.eviction_policy.as_str();
        out.push(if evicts(new.eviction_policy) {
            Risk::new(
                RiskCode::MemoryReduced,
                Severity::DataLoss,
                format!(
                    "memorySize goes down from {from} to {to} with eviction policy {policy}: if the data takes more \
                     than {to}, Redis evicts keys until it fits, and they are gone. Check the database's used memory \
                     first, or lower the limit in steps"
                ),
            )
        } else {
            Risk::new(
                RiskCode::MemoryReduced,
                Severity::Warning,
                format!(
                    "memorySize goes down from {from} to {to} with eviction policy noeviction: nothing is evicted, but \
                     once the data reaches {to} every write fails with an out-of-memory error (and the cluster may \
                     refuse the change while the data is larger). Check the database's used memory first"
                ),
            )
        });
    }
    let mut weaker = Vec::new();
    if durability(new.persistence) < durability(old.persistence) {
        weaker.push(format!(
            "persistence goes from {} to {}{}",
            persistence_name(old.persistence),
            persistence_name(new.persistence),
            if new.persistence == Persistence::Disabled {
                ": a restart of a shard without a replica loses its data"
            } else {
                ": a failure loses more recent writes"
            }
        ));
    }
    if old.replication && !new.replication {
        weaker.push(
            "replication is turned off: a node failure loses the shards it held until they are restored".to_string(),
        );
    }
    if old.backup.is_some() && new.backup.is_none() {
        weaker.push("periodic backups are turned off".to_string());
    }
    if !weaker.is_empty() {
        out.push(Risk::new(
            RiskCode::DurabilityReduced,
            Severity::Warning,
            format!(
                "{}; keep the previous setting unless the data can be rebuilt",
                weaker.join("; ")
            ),
        ));
    }
    let names = |database: &ValidatedDatabase| -> BTreeSet<String> {
        database
            .modules
            .iter()
            .map(|module| module.name.to_ascii_lowercase())
            .collect()
    };
    let removed: Vec<String> = names(old).difference(&names(new)).cloned().collect();
    if !removed.is_empty() {
        out.push(Risk::new(
            RiskCode::ModuleRemoved,
            Severity::DataLoss,
            format!(
                "module {} is removed: keys of its data types and its indexes cannot be used without it, and Redis \
                 Enterprise refuses to drop a module from a database that holds its data; keep the module, or move \
                 the data to a new database",
                removed.join(", ")
            ),
        ));
    }
    if new.shard_count != old.shard_count {
        let message = if new.shard_count > old.shard_count {
            format!(
                "shardCount goes from {} to {}: the database is resharded online, which moves keys between shards, \
                 needs free memory on the nodes and slows the database while it runs; do it outside peak hours",
                old.shard_count, new.shard_count
            )
        } else {
            format!(
                "shardCount goes down from {} to {}: Redis Enterprise cannot merge shards of most databases and \
                 refuses the change; to shrink, create a database with fewer shards and move the data",
                old.shard_count, new.shard_count
            )
        };
        out.push(Risk::new(RiskCode::ShardCountChanged, Severity::Disruption, message));
    }
    if new.eviction_policy != old.eviction_policy {
        let (from, to) = (old.eviction_policy.as_str(), new.eviction_policy.as_str());
        let consequence = match (evicts(old.eviction_policy), evicts(new.eviction_policy)) {
            (false, true) => "once memory is full Redis now deletes keys to make room instead of refusing writes; \
                              keep noeviction if this data must not disappear"
                .to_string(),
            (true, false) => "once memory is full writes now fail with an out-of-memory error instead of evicting \
                              keys; applications used to a cache must handle that"
                .to_string(),
            _ => "other keys are evicted once memory is full".to_string(),
        };
        out.push(Risk::new(
            RiskCode::EvictionPolicyChanged,
            Severity::Warning,
            format!("evictionPolicy goes from {from} to {to}: {consequence}"),
        ));
    }
    if new.tls_mode != old.tls_mode {
        out.push(Risk::new(
            RiskCode::TlsModeChanged,
            Severity::Disruption,
            format!(
                "tlsMode goes from {} to {}: clients that connect the old way are refused until they change; roll \
                 the clients first where the new mode allows it",
                old.tls_mode.as_str(),
                new.tls_mode.as_str()
            ),
        ));
    }
    if new.redis_version != old.redis_version && new.redis_version.is_some() {
        out.push(Risk::new(
            RiskCode::RedisVersionChanged,
            Severity::Disruption,
            format!(
                "redisVersion goes from {} to {}: the agent upgrades the database, restarting its shards one at a \
                 time (replicas fail over; without replication the database is briefly unavailable); a downgrade is \
                 not possible afterwards",
                old.redis_version.as_deref().unwrap_or("the cluster's default"),
                new.redis_version.as_deref().unwrap_or_default()
            ),
        ));
    }
    if new.secret_name != old.secret_name {
        out.push(Risk::new(
            RiskCode::CredentialsChanged,
            Severity::Disruption,
            format!(
                "databaseSecretName goes from {} to {}: the agent takes the password from the new Secret; if it \
                 does not exist the REDB is refused (DatabaseSecretMissing), and if it holds another password the \
                 database's password changes and clients using {} are locked out; copy the Secret first",
                old.secret_name, new.secret_name, old.secret_name
            ),
        ));
    }
    if old.default_user && !new.default_user {
        out.push(Risk::new(
            RiskCode::CredentialsChanged,
            Severity::Disruption,
            "defaultUser is turned off: clients that authenticate with the default user's password are refused; move \
             them to ACL users first",
        ));
    }
    if new.oss_cluster != old.oss_cluster {
        out.push(Risk::new(
            RiskCode::OssClusterChanged,
            Severity::Disruption,
            format!(
                "ossCluster is turned {}: clients must {} cluster mode, and reconnect",
                if new.oss_cluster { "on" } else { "off" },
                if new.oss_cluster { "use" } else { "stop using" }
            ),
        ));
    }
    let services: Vec<String> = children
        .iter()
        .filter(|child| child.kind == "Service")
        .map(|child| format!("{} ({})", child.name, child.action.as_str()))
        .collect();
    if !services.is_empty() {
        out.push(Risk::new(
            RiskCode::EndpointChanged,
            Severity::Disruption,
            format!(
                "the database's Services change: {}; clients that connect through them must use the new name or \
                 port (the Secret's service_name and port keys follow)",
                services.join(", ")
            ),
        ));
    }
}
