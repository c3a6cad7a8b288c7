//! Dereference stage: reads everything a REDB refers to: its REC (named, or the only one of its namespace; one of
//! another namespace only when that REC allows it), the REC's admin credentials (a REST client), the database
//! credentials Secret, and the live bdb this REDB owns with its alerts, shards and last action. It only reads; a
//! missing or not-yet-Running cluster, or a database name taken by a database this REDB does not own, is a typed
//! "blocked" outcome. Once the bdb has a port, it also lists the Services and EndpointSlices this REDB has (by its
//! labels), which the apply stage compares with the desired ones and deletes when no longer built.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams};
use kube::{Resource, ResourceExt};
use serde_json::Value;

use super::{DatabaseContext, DatabaseError};
use crate::api::database::PendingCreation;
use crate::api::{RedisEnterpriseCluster, RedisEnterpriseDatabase, keys};
use crate::controllers::{ConnectionError, connect_to_cluster};
use crate::enterprise::EnterpriseClient;
use crate::enterprise::states::{ActionStatus, ClusterState};
use crate::enterprise::types::{Action, Bdb};
use crate::runtime::object_key;

/// How the live bdb of a REDB was found, which decides whether it is this REDB's to manage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// The bdb whose uid the status records.
    Recorded,
    /// The bdb this REDB created before the agent stopped, matched by the pending-creation marker.
    Resumed,
    /// An existing bdb adopted on the explicit `redisgitops.dev/adopt-database` annotation.
    Adopted,
    /// No bdb yet: it is to be created.
    None,
}

/// Everything a REDB refers to, read at the start of a reconcile. `Debug` shows no Secret data and no bdb fields
/// (the REST API returns the database password).
pub struct References {
    /// The REC the database lives in.
    pub cluster: RedisEnterpriseCluster,
    /// `<namespace>/<name>` of the REC.
    pub cluster_key: String,
    /// A REST client of the REC with its admin credentials.
    pub rest: EnterpriseClient,
    /// The database credentials Secret, when it exists.
    pub secret: Option<Secret>,
    /// The live bdb this REDB owns (see [`Ownership`]).
    pub bdb: Option<Bdb>,
    /// How [`Self::bdb`] was found.
    pub ownership: Ownership,
    /// The live alert settings, read only when the spec sets alerts.
    pub alerts: Option<Value>,
    /// Shard counts by status (`active: 1`).
    pub shard_statuses: Option<BTreeMap<String, i64>>,
    /// The last action the status records, when it had not finished at the last look.
    pub action: Option<Action>,
    /// The bdb uid the REDB's status records (`status.databaseUID`); gone from the cluster when [`Self::bdb`] is
    /// `None`.
    pub recorded_uid: Option<u64>,
    /// The live Services carrying this database's labels (read once the bdb has a port, else empty).
    pub services: Vec<Service>,
    /// The live EndpointSlices carrying this database's labels (read once the bdb has a port, else empty).
    pub endpoint_slices: Vec<EndpointSlice>,
    /// The cluster's proxy certificate (PEM, `GET /v1/cluster` → `proxy_certificate`), read only for a database
    /// with `tlsMode: enabled`: the CA its clients trust, published in the database Secret as `ca.crt`.
    pub proxy_certificate: Option<String>,
    /// The credential fields of the backup location, from its Secret (empty without a backup). Never shown.
    pub backup_credentials: BTreeMap<String, String>,
    /// What the cluster offers, read only when `redisVersion` is a channel (`major`, `latest`).
    pub redis_versions: Option<super::versions::RedisVersions>,
}

impl std::fmt::Debug for References {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("References")
            .field("cluster_key", &self.cluster_key)
            .field("secret", &self.secret.as_ref().map(|s| s.metadata.name.clone()))
            .field("bdb", &self.bdb.as_ref().map(bdb_summary))
            .field("ownership", &self.ownership)
            .field("shard_statuses", &self.shard_statuses)
            .field("recorded_uid", &self.recorded_uid)
            .field(
                "services",
                &self.services.iter().map(ResourceExt::name_any).collect::<Vec<_>>(),
            )
            .field(
                "endpoint_slices",
                &self
                    .endpoint_slices
                    .iter()
                    .map(ResourceExt::name_any)
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// `uid name status` of a bdb: what `Debug` output may show of it.
pub fn bdb_summary(bdb: &Bdb) -> String {
    format!("uid {} {} {}", bdb.uid, bdb.name, bdb.status)
}

/// Why the pipeline cannot go on now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    /// `true`: needs a change of the spec or environment (`Stalled`); `false`: waiting (`Reconciling`).
    pub stalled: bool,
    /// Condition reason.
    pub reason: &'static str,
    /// What is wrong and what to do.
    pub message: String,
}

/// The result of the dereference stage.
#[derive(Debug)]
pub enum Dereferenced {
    /// Everything needed was found.
    Found(Box<References>),
    /// The cluster is missing, not running, ambiguous or not allowed, its credentials are not usable, or the
    /// database name is taken by a database this REDB does not own.
    Blocked(Blocked),
}

/// Which REC a REDB belongs to.
#[derive(Debug)]
pub enum ClusterLookup {
    /// Found.
    Found(Box<RedisEnterpriseCluster>),
    /// No such REC; the message says what was looked for.
    Missing(String),
    /// More than one candidate; the message says how to choose.
    Ambiguous(String),
    /// The REC exists in another namespace that does not allow the REDB's namespace; the message says how.
    NotAllowed(String),
}

/// The name of the database credentials Secret: `databaseSecretName`, else `redb-<name>`.
pub fn database_secret_name(redb: &RedisEnterpriseDatabase) -> String {
    redb.spec
        .database_secret_name
        .clone()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| format!("redb-{}", redb.name_any()))
}

/// Whether a REC in another namespace lets REDBs of `namespace` use it: its
/// `redisgitops.dev/allowed-database-namespaces` annotation lists that namespace or is `*`.
pub fn allows_namespace(cluster: &RedisEnterpriseCluster, namespace: &str) -> bool {
    if cluster.namespace().as_deref() == Some(namespace) {
        return true;
    }
    cluster
        .annotations()
        .get(keys::ALLOWED_DATABASE_NAMESPACES)
        .is_some_and(|list| list.split(',').map(str::trim).any(|n| n == "*" || n == namespace))
}

/// Resolves the REC of a REDB among `clusters` (pure): `spec.redisEnterpriseCluster.name` in the REDB's namespace,
/// else a REC of that name in another namespace that allows the REDB's namespace (see [`allows_namespace`]);
/// without a name, the only REC of the REDB's namespace. A cluster of another namespace is never used implicitly.
pub fn resolve_cluster(redb: &RedisEnterpriseDatabase, clusters: &[RedisEnterpriseCluster]) -> ClusterLookup {
    let namespace = redb.namespace().unwrap_or_else(|| "default".to_string());
    let local = |c: &RedisEnterpriseCluster| c.namespace().as_deref() == Some(namespace.as_str());
    match redb.spec.redis_enterprise_cluster.as_ref().map(|c| c.name.clone()) {
        Some(name) => {
            let named: Vec<&RedisEnterpriseCluster> = clusters.iter().filter(|c| c.name_any() == name).collect();
            if let Some(cluster) = named.iter().find(|c| local(c)) {
                return ClusterLookup::Found(Box::new((*cluster).clone()));
            }
            let allowed: Vec<&&RedisEnterpriseCluster> =
                named.iter().filter(|c| allows_namespace(c, &namespace)).collect();
            match allowed.len() {
                0 if named.is_empty() => ClusterLookup::Missing(format!(
                    "RedisEnterpriseCluster {name} does not exist in namespace {namespace}"
                )),
                0 => {
                    let namespaces: Vec<String> = named.iter().filter_map(|c| c.namespace()).collect();
                    ClusterLookup::NotAllowed(format!(
                        "RedisEnterpriseCluster {name} is not in namespace {namespace}, and the one in namespace {} does \
                         not allow databases from namespace {namespace}; its owner can allow them with the annotation \
                         {}: \"{namespace}\" (or \"*\") on that cluster, or put the database in the cluster's namespace",
                        namespaces.join(", "),
                        keys::ALLOWED_DATABASE_NAMESPACES
                    ))
                }
                1 => ClusterLookup::Found(Box::new((**allowed[0]).clone())),
                _ => {
                    let namespaces: Vec<String> = allowed.iter().filter_map(|c| c.namespace()).collect();
                    ClusterLookup::Ambiguous(format!(
                        "RedisEnterpriseCluster {name} exists in several namespaces that allow namespace {namespace} \
                         ({}); put the database in the namespace of its cluster",
                        namespaces.join(", ")
                    ))
                }
            }
        }
        None => {
            let mut found: Vec<&RedisEnterpriseCluster> = clusters.iter().filter(|c| local(c)).collect();
            match found.len() {
                0 => ClusterLookup::Missing(format!(
                    "namespace {namespace} has no RedisEnterpriseCluster; create one or set spec.redisEnterpriseCluster.name"
                )),
                1 => ClusterLookup::Found(Box::new(found.remove(0).clone())),
                _ => {
                    let names: Vec<String> = found.iter().map(|c| c.name_any()).collect();
                    ClusterLookup::Ambiguous(format!(
                        "namespace {namespace} has several clusters ({}); say which one with spec.redisEnterpriseCluster.name",
                        names.join(", ")
                    ))
                }
            }
        }
    }
}

fn kubernetes(action: String) -> impl FnOnce(kube::Error) -> DatabaseError {
    move |source: kube::Error| DatabaseError::Kubernetes {
        action,
        source: Box::new(source),
    }
}

/// Finds the REDB's REC (see [`resolve_cluster`]): a named REC of the REDB's namespace is read directly; other
/// namespaces are listed only when it is not there.
pub async fn find_cluster(
    client: &kube::Client,
    redb: &RedisEnterpriseDatabase,
) -> Result<ClusterLookup, DatabaseError> {
    let namespace = redb.namespace().unwrap_or_else(|| "default".to_string());
    let local: Api<RedisEnterpriseCluster> = Api::namespaced(client.clone(), &namespace);
    let clusters = match redb.spec.redis_enterprise_cluster.as_ref().map(|c| c.name.clone()) {
        Some(name) => {
            if let Some(cluster) = local
                .get_opt(&name)
                .await
                .map_err(kubernetes(format!("read RedisEnterpriseCluster {namespace}/{name}")))?
            {
                return Ok(ClusterLookup::Found(Box::new(cluster)));
            }
            Api::<RedisEnterpriseCluster>::all(client.clone())
                .list(&ListParams::default())
                .await
                .map_err(kubernetes("list RedisEnterpriseClusters".to_string()))?
                .items
        }
        None => {
            local
                .list(&ListParams::default())
                .await
                .map_err(kubernetes(format!("list RedisEnterpriseClusters in {namespace}")))?
                .items
        }
    };
    Ok(resolve_cluster(redb, &clusters))
}

/// `<namespace>/<name>` of a REC.
pub fn cluster_key(cluster: &RedisEnterpriseCluster) -> String {
    format!("{}/{}", cluster.namespace().unwrap_or_default(), cluster.name_any())
}

/// A REST client of the REC, or why there is none: a missing credentials Secret is waited for (the cluster
/// controller creates it), a Secret without its keys or an unusable CA needs a fix.
pub async fn connect(
    context: &DatabaseContext,
    cluster: &RedisEnterpriseCluster,
) -> Result<Result<EnterpriseClient, Blocked>, DatabaseError> {
    let namespace = cluster.namespace().unwrap_or_else(|| "default".to_string());
    match connect_to_cluster(&context.shared, &namespace, cluster).await {
        Ok(client) => Ok(Ok(client)),
        Err(error @ ConnectionError::SecretNotFound { .. }) => Ok(Err(Blocked {
            stalled: false,
            reason: "WaitingForClusterCredentials",
            message: format!("waiting for cluster {}: {error}", cluster.name_any()),
        })),
        Err(
            error @ (ConnectionError::SecretKeyMissing { .. }
            | ConnectionError::SecretNotText { .. }
            | ConnectionError::Client { .. }),
        ) => Ok(Err(Blocked {
            stalled: true,
            reason: error.category(),
            message: error.to_string(),
        })),
        Err(source) => Err(DatabaseError::Connection {
            cluster: cluster_key(cluster),
            source: Box::new(source),
        }),
    }
}

/// The recorded bdb uid of a REDB (`status.databaseUID`).
pub fn recorded_uid(redb: &RedisEnterpriseDatabase) -> Option<u64> {
    redb.status
        .as_ref()
        .and_then(|status| status.database_uid.as_deref())
        .and_then(|uid| uid.parse().ok())
}

/// The pending-creation marker of a REDB, when it names this database on this cluster.
pub fn pending_creation<'a>(redb: &'a RedisEnterpriseDatabase, cluster: &str) -> Option<&'a PendingCreation> {
    redb.status
        .as_ref()
        .and_then(|status| status.pending_creation.as_ref())
        .filter(|pending| pending.name == redb.name_any() && pending.cluster == cluster)
}

/// Who owns the database `name` (uid `uid`, when it exists) on cluster `cluster`, other than `redb`: the
/// `<namespace>/<name>` of another REDB that recorded that uid on that cluster, or that is creating a database of
/// that name there (its pending-creation marker). A REDB whose cluster cannot be resolved now counts as the owner
/// when the cluster name it recorded matches, so doubt never hands a database over.
pub fn other_owner(
    redb: &RedisEnterpriseDatabase,
    name: &str,
    uid: Option<u64>,
    cluster: &RedisEnterpriseCluster,
    databases: &[RedisEnterpriseDatabase],
    clusters: &[RedisEnterpriseCluster],
) -> Option<String> {
    let key = cluster_key(cluster);
    databases
        .iter()
        .filter(|other| other.metadata.uid != redb.metadata.uid)
        .find(|other| {
            let Some(status) = other.status.as_ref() else {
                return false;
            };
            if status
                .pending_creation
                .as_ref()
                .is_some_and(|pending| pending.name == name && pending.cluster == key)
            {
                return true;
            }
            let Some(uid) = uid else {
                return false;
            };
            if recorded_uid(other) != Some(uid) {
                return false;
            }
            match resolve_cluster(other, clusters) {
                ClusterLookup::Found(found) => cluster_key(&found) == key,
                _ => status.redis_enterprise_cluster.as_deref() == Some(cluster.name_any().as_str()),
            }
        })
        .map(object_key)
}

/// The live bdb a REDB may manage, or why the database name is not its to use.
pub enum BdbLookup {
    /// The bdb, and how it was found.
    Found(Bdb, Ownership),
    /// No database of this name exists (and none is recorded): it is to be created.
    Missing,
    /// The name is taken, or the adoption asked for cannot be done; the message names the owner and what to do.
    Refused(Blocked),
}

/// Finds the bdb this REDB owns: the recorded uid when it still exists under the REDB's name; else the database
/// of that name when this REDB's pending-creation marker names it (the agent stopped between the create request
/// and the status write) or the `redisgitops.dev/adopt-database` annotation asks for it, and no other REDB owns
/// it. Any other database of that name is refused, naming its owner.
pub async fn find_bdb(
    context: &DatabaseContext,
    rest: &EnterpriseClient,
    redb: &RedisEnterpriseDatabase,
    cluster: &RedisEnterpriseCluster,
) -> Result<BdbLookup, DatabaseError> {
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
    if let Some(uid) = recorded_uid(redb)
        && let Some(bdb) = rest
            .database(uid)
            .await
            .map_err(failed(format!("read database {name} (uid {uid})")))?
        && bdb.name == name
    {
        return Ok(BdbLookup::Found(bdb, Ownership::Recorded));
    }
    let adopt = redb.annotations().get(keys::ADOPT_DATABASE).cloned();
    let bdb = rest
        .database_by_name(&name)
        .await
        .map_err(failed(format!("look up database {name} by name")))?;
    let refused = |reason: &'static str, message: String| {
        Ok(BdbLookup::Refused(Blocked {
            stalled: true,
            reason,
            message,
        }))
    };
    // No other REDB is consulted before a create (that would list every REDB for every new database): two REDBs
    // creating one name at once race on the cluster, which refuses the second `POST`; that REDB then finds the
    // first one's database below and is refused.
    let Some(bdb) = bdb else {
        if let Some(value) = adopt {
            return refused(
                "AdoptionTargetMissing",
                format!(
                    "the annotation {}: \"{}\" asks to adopt database {name}, but cluster {key} has no database named \
                     {name}; remove the annotation to create a new database",
                    keys::ADOPT_DATABASE,
                    crate::controllers::database::cut(&value)
                ),
            );
        }
        return Ok(BdbLookup::Missing);
    };
    // Only a database of this name that this REDB did not record needs a look at the other REDBs.
    let client = &context.shared.client;
    let databases = Api::<RedisEnterpriseDatabase>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(kubernetes("list RedisEnterpriseDatabases".to_string()))?
        .items;
    let clusters = Api::<RedisEnterpriseCluster>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(kubernetes("list RedisEnterpriseClusters".to_string()))?
        .items;
    if let Some(owner) = other_owner(redb, &name, Some(bdb.uid), cluster, &databases, &clusters) {
        return refused(
            "DatabaseNameTaken",
            format!(
                "database name {name} on cluster {key} is taken by database uid {} of RedisEnterpriseDatabase \
                 {owner}; a database name is unique in a cluster: rename this REDB or use another cluster",
                bdb.uid
            ),
        );
    }
    if let Some(pending) = pending_creation(redb, &key) {
        let password = redb_password_mismatch(context, redb, &bdb).await?;
        if !password {
            tracing::info!(database = %object_key(redb), token = %pending.token, uid = bdb.uid, "resuming an interrupted creation");
            return Ok(BdbLookup::Found(bdb, Ownership::Resumed));
        }
    }
    match adopt {
        Some(value) if value == name || value == bdb.uid.to_string() => Ok(BdbLookup::Found(bdb, Ownership::Adopted)),
        Some(value) => refused(
            "DatabaseNameTaken",
            format!(
                "database name {name} on cluster {key} is taken by database uid {} (a database not managed by \
                 redis-gitops), and the annotation {}: \"{}\" does not name it; set it to \"{name}\" to adopt that \
                 database, or rename this REDB",
                bdb.uid,
                keys::ADOPT_DATABASE,
                crate::controllers::database::cut(&value)
            ),
        ),
        None => refused(
            "DatabaseNameTaken",
            format!(
                "database name {name} on cluster {key} is taken by database uid {} (a database not managed by \
                 redis-gitops); to manage that database with this REDB, add the annotation {}: \"{name}\"; \
                 otherwise rename this REDB",
                bdb.uid,
                keys::ADOPT_DATABASE
            ),
        ),
    }
}

/// Whether the bdb reports a password (the REST API shows `authentication_redis_pass`) that differs from the one in
/// the REDB's Secret: such a database was not created by this REDB's interrupted request.
async fn redb_password_mismatch(
    context: &DatabaseContext,
    redb: &RedisEnterpriseDatabase,
    bdb: &Bdb,
) -> Result<bool, DatabaseError> {
    let Some(live) = bdb
        .other
        .get("authentication_redis_pass")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
    else {
        return Ok(false);
    };
    let namespace = redb.namespace().unwrap_or_else(|| "default".to_string());
    let secret_name = database_secret_name(redb);
    let secret = Api::<Secret>::namespaced(context.shared.client.clone(), &namespace)
        .get_opt(&secret_name)
        .await
        .map_err(kubernetes(format!(
            "read the database Secret {namespace}/{secret_name}"
        )))?;
    Ok(secret
        .as_ref()
        .and_then(|secret| crate::controllers::secret_value(secret, "password"))
        .is_some_and(|ours| ours != live.as_bytes()))
}

/// The label selector of the children of database `name` (Services, EndpointSlices; the Secret carries it too
/// but is never listed for deletion).
pub fn children_selector(name: &str) -> String {
    format!(
        "{}={name},{}={},redis.io/bdb={name}",
        keys::INSTANCE,
        keys::MANAGED_BY,
        keys::MANAGER
    )
}

/// The live Services and EndpointSlices of database `name` in `namespace` (one LIST each).
async fn live_children(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<(Vec<Service>, Vec<EndpointSlice>), DatabaseError> {
    let params = ListParams::default().labels(&children_selector(name));
    let services = Api::<Service>::namespaced(client.clone(), namespace)
        .list(&params)
        .await
        .map_err(kubernetes(format!("list the Services of database {namespace}/{name}")))?
        .items;
    let slices = Api::<EndpointSlice>::namespaced(client.clone(), namespace)
        .list(&params)
        .await
        .map_err(kubernetes(format!(
            "list the EndpointSlices of database {namespace}/{name}"
        )))?
        .items;
    Ok((services, slices))
}

/// A REST failure while reading `action` on cluster `cluster`.
fn rest_failed(action: String, cluster: &str) -> impl FnOnce(crate::enterprise::EnterpriseError) -> DatabaseError {
    let cluster = cluster.to_string();
    move |source| DatabaseError::Rest {
        action,
        cluster,
        source: Box::new(source),
    }
}

/// The live bdb's alert settings (only when the spec sets alerts) and its shard counts by status.
async fn read_bdb_state(
    rest: &EnterpriseClient,
    redb: &RedisEnterpriseDatabase,
    bdb: &Bdb,
    cluster: &str,
) -> Result<(Option<Value>, Option<BTreeMap<String, i64>>), DatabaseError> {
    let mut alerts = None;
    if redb.spec.alert_settings.is_some() {
        let what = format!("read the alert settings of database {}", bdb.name);
        alerts = Some(
            rest.database_alerts(bdb.uid)
                .await
                .map_err(rest_failed(what, cluster))?,
        );
    }
    let shards = rest
        .shards()
        .await
        .map_err(rest_failed("list shards".to_string(), cluster))?;
    let mut counts = BTreeMap::new();
    for shard in shards
        .iter()
        .filter(|shard| shard.get("bdb_uid").and_then(Value::as_u64) == Some(bdb.uid))
    {
        let status = shard.get("status").and_then(Value::as_str).unwrap_or("unknown");
        *counts.entry(status.to_string()).or_insert(0) += 1;
    }
    Ok((alerts, (!counts.is_empty()).then_some(counts)))
}

/// The last action the status records, when it had not finished at the last look.
async fn read_last_action(
    rest: &EnterpriseClient,
    redb: &RedisEnterpriseDatabase,
    cluster: &str,
) -> Result<Option<Action>, DatabaseError> {
    let status = redb.status.as_ref();
    match status.and_then(|s| s.last_action_uid.as_deref()) {
        Some(action_uid)
            if !status
                .and_then(|s| s.last_action_status.as_deref())
                .is_some_and(|recorded| ActionStatus::from(recorded).is_finished()) =>
        {
            let what = format!("read action {action_uid}");
            // A finished action is forgotten after a while (404): it counts as finished, not as still running.
            let action = rest.action(action_uid).await.map_err(rest_failed(what, cluster))?;
            Ok(Some(action.unwrap_or_else(|| Action::forgotten(action_uid))))
        }
        _ => Ok(None),
    }
}

/// Runs the dereference stage.
pub async fn dereference(
    redb: &RedisEnterpriseDatabase,
    context: &DatabaseContext,
) -> Result<Dereferenced, DatabaseError> {
    let client = &context.shared.client;
    let cluster = match find_cluster(client, redb).await? {
        ClusterLookup::Found(cluster) => *cluster,
        ClusterLookup::Missing(message) => {
            let name = redb
                .spec
                .redis_enterprise_cluster
                .as_ref()
                .map_or_else(|| "of this namespace".to_string(), |c| c.name.clone());
            return Ok(Dereferenced::Blocked(Blocked {
                stalled: false,
                reason: "WaitingForCluster",
                message: format!("waiting for cluster {name}: {message}"),
            }));
        }
        ClusterLookup::Ambiguous(message) => {
            return Ok(Dereferenced::Blocked(Blocked {
                stalled: true,
                reason: "AmbiguousCluster",
                message,
            }));
        }
        ClusterLookup::NotAllowed(message) => {
            return Ok(Dereferenced::Blocked(Blocked {
                stalled: true,
                reason: "ClusterNotAllowed",
                message,
            }));
        }
    };
    let cluster_name = cluster.name_any();
    let state = cluster
        .status
        .as_ref()
        .and_then(|s| s.state.as_deref())
        .map(ClusterState::from);
    if cluster.meta().deletion_timestamp.is_some() || state != Some(ClusterState::Running) {
        let why = if cluster.meta().deletion_timestamp.is_some() {
            "it is being deleted".to_string()
        } else {
            format!("state {}", state.as_ref().map_or("unknown", ClusterState::as_str))
        };
        return Ok(Dereferenced::Blocked(Blocked {
            stalled: false,
            reason: "WaitingForCluster",
            message: format!("waiting for cluster {cluster_name} to be Running ({why})"),
        }));
    }
    let rest = match connect(context, &cluster).await? {
        Ok(rest) => rest,
        Err(blocked) => return Ok(Dereferenced::Blocked(blocked)),
    };
    let key = cluster_key(&cluster);

    let namespace = redb.namespace().unwrap_or_else(|| "default".to_string());
    let secret_name = database_secret_name(redb);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let secret = secrets
        .get_opt(&secret_name)
        .await
        .map_err(|source| DatabaseError::Kubernetes {
            action: format!("read the database Secret {namespace}/{secret_name}"),
            source: Box::new(source),
        })?;

    let location = crate::manifests::validate::validate_database(redb)
        .ok()
        .and_then(|(database, _)| database.backup)
        .map(|backup| backup.location);
    let backup_credentials = match super::backup::read_backup_credentials(client, &namespace, location.as_ref()).await?
    {
        Ok(credentials) => credentials,
        Err(blocked) => return Ok(Dereferenced::Blocked(blocked)),
    };

    let (bdb, ownership) = match find_bdb(context, &rest, redb, &cluster).await? {
        BdbLookup::Found(bdb, ownership) => (Some(bdb), ownership),
        BdbLookup::Missing => (None, Ownership::None),
        BdbLookup::Refused(blocked) => return Ok(Dereferenced::Blocked(blocked)),
    };
    let (alerts, shard_statuses) = match &bdb {
        Some(bdb) => read_bdb_state(&rest, redb, bdb, &key).await?,
        None => (None, None),
    };
    let (services, endpoint_slices) = match bdb.as_ref().filter(|bdb| bdb.port != 0) {
        Some(_) => live_children(client, &namespace, &redb.name_any()).await?,
        None => (Vec::new(), Vec::new()),
    };
    let action = read_last_action(&rest, redb, &key).await?;
    let proxy_certificate = read_proxy_certificate(&rest, redb, &key).await?;
    let redis_versions = match redb.spec.redis_version.as_deref() {
        Some(channel) if super::versions::is_channel(channel) => {
            Some(super::versions::read_redis_versions(&rest).await.map_err(rest_failed(
                "read the Redis versions the cluster offers".to_string(),
                &key,
            ))?)
        }
        _ => None,
    };
    Ok(Dereferenced::Found(Box::new(References {
        cluster,
        cluster_key: key,
        rest,
        secret,
        bdb,
        ownership,
        alerts,
        shard_statuses,
        action,
        recorded_uid: recorded_uid(redb),
        services,
        endpoint_slices,
        proxy_certificate,
        backup_credentials,
        redis_versions,
    })))
}

/// The cluster's proxy certificate, for a database whose clients use TLS (`tlsMode: enabled`); None otherwise
/// or when the cluster does not show one.
async fn read_proxy_certificate(
    rest: &EnterpriseClient,
    redb: &RedisEnterpriseDatabase,
    cluster: &str,
) -> Result<Option<String>, DatabaseError> {
    if redb.spec.tls_mode != Some(crate::api::database::TlsMode::Enabled) {
        return Ok(None);
    }
    let object = rest
        .cluster()
        .await
        .map_err(rest_failed("read the cluster's proxy certificate".to_string(), cluster))?;
    Ok(object
        .get("proxy_certificate")
        .and_then(Value::as_str)
        .filter(|pem| !pem.trim().is_empty())
        .map(str::to_string))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn cluster(namespace: &str, name: &str, allowed: Option<&str>) -> RedisEnterpriseCluster {
        let annotations = allowed.map_or_else(|| json!({}), |a| json!({keys::ALLOWED_DATABASE_NAMESPACES: a}));
        serde_json::from_value(json!({
            "apiVersion": "app.redislabs.com/v1", "kind": "RedisEnterpriseCluster",
            "metadata": {"name": name, "namespace": namespace, "annotations": annotations}, "spec": {"nodes": 3}
        }))
        .expect("rec")
    }

    fn redb(namespace: &str, name: &str, cluster: Option<&str>, status: Value) -> RedisEnterpriseDatabase {
        let spec = cluster.map_or_else(|| json!({}), |c| json!({"redisEnterpriseCluster": {"name": c}}));
        serde_json::from_value(json!({
            "apiVersion": "app.redislabs.com/v1alpha1", "kind": "RedisEnterpriseDatabase",
            "metadata": {"name": name, "namespace": namespace, "uid": format!("{namespace}-{name}")},
            "spec": spec, "status": status
        }))
        .expect("redb")
    }

    fn found(lookup: ClusterLookup) -> String {
        match lookup {
            ClusterLookup::Found(cluster) => cluster_key(&cluster),
            ClusterLookup::Missing(message) => format!("missing: {message}"),
            ClusterLookup::Ambiguous(message) => format!("ambiguous: {message}"),
            ClusterLookup::NotAllowed(message) => format!("not allowed: {message}"),
        }
    }

    #[test]
    fn a_cluster_of_another_namespace_is_used_only_when_it_allows_that_namespace() {
        let t3 = redb("t3", "orders", Some("rec"), json!({}));
        let refused = "not allowed: RedisEnterpriseCluster rec is not in namespace t3, and the one in namespace \
                       default does not allow databases from namespace t3; its owner can allow them with the \
                       annotation redisgitops.dev/allowed-database-namespaces: \"t3\" (or \"*\") on that cluster, or \
                       put the database in the cluster's namespace";
        let cases = [
            (None, refused),
            (Some(""), refused),
            (Some("t4"), refused),
            (Some("t30"), refused),
            (Some("t3"), "default/rec"),
            (Some(" t4 , t3 "), "default/rec"),
            (Some("*"), "default/rec"),
        ];
        for (allowed, expected) in cases {
            let clusters = [cluster("default", "rec", allowed)];
            assert_eq!(found(resolve_cluster(&t3, &clusters)), expected, "{allowed:?}");
        }
        // The REDB's own namespace wins, allowed or not.
        let clusters = [cluster("default", "rec", Some("*")), cluster("t3", "rec", None)];
        assert_eq!(found(resolve_cluster(&t3, &clusters)), "t3/rec");
        // Two clusters that allow it: ambiguous.
        let clusters = [cluster("a", "rec", Some("t3")), cluster("b", "rec", Some("*"))];
        assert_eq!(
            found(resolve_cluster(&t3, &clusters)),
            "ambiguous: RedisEnterpriseCluster rec exists in several namespaces that allow namespace t3 (a, b); put \
             the database in the namespace of its cluster"
        );
        assert_eq!(
            found(resolve_cluster(&t3, &[])),
            "missing: RedisEnterpriseCluster rec does not exist in namespace t3"
        );
        // Without a cluster name only the REDB's namespace is looked at, even when another cluster allows it.
        let unnamed = redb("t3", "orders", None, json!({}));
        assert_eq!(
            found(resolve_cluster(&unnamed, &[cluster("default", "rec", Some("*"))])),
            "missing: namespace t3 has no RedisEnterpriseCluster; create one or set spec.redisEnterpriseCluster.name"
        );
    }

    #[test]
    fn the_owner_of_a_database_is_the_redb_that_recorded_its_uid_on_that_cluster() {
        let clusters = [cluster("default", "rec", Some("t3")), cluster("other", "rec", None)];
        let rec = &clusters[0];
        let newcomer = redb("t3", "orders", Some("rec"), json!({}));
        let first = redb("default", "orders", Some("rec"), json!({"databaseUID": "7"}));
        assert_eq!(
            other_owner(
                &newcomer,
                "orders",
                Some(7),
                rec,
                std::slice::from_ref(&first),
                &clusters
            ),
            Some("default/orders".to_string())
        );
        // Another uid, or the same uid on another cluster, is someone else's database.
        assert_eq!(
            other_owner(
                &newcomer,
                "orders",
                Some(8),
                rec,
                std::slice::from_ref(&first),
                &clusters
            ),
            None
        );
        let elsewhere = redb("other", "orders", Some("rec"), json!({"databaseUID": "7"}));
        assert_eq!(
            other_owner(&newcomer, "orders", Some(7), rec, &[elsewhere], &clusters),
            None
        );
        // A REDB never owns against itself.
        assert_eq!(
            other_owner(&first, "orders", Some(7), rec, std::slice::from_ref(&first), &clusters),
            None
        );
        // A creation under way (its marker) owns the name before any uid exists.
        let creating = redb(
            "default",
            "orders",
            Some("rec"),
            json!({"pendingCreation": {"name": "orders", "cluster": "default/rec", "token": "ab"}}),
        );
        assert_eq!(
            other_owner(
                &newcomer,
                "orders",
                None,
                rec,
                std::slice::from_ref(&creating),
                &clusters
            ),
            Some("default/orders".to_string())
        );
        // The empty marker server-side apply can leave behind owns nothing.
        let done = redb("default", "orders", Some("rec"), json!({"pendingCreation": {}}));
        assert_eq!(other_owner(&newcomer, "orders", None, rec, &[done], &clusters), None);
        // A REDB whose cluster cannot be resolved now still owns its uid when the cluster name it recorded matches.
        let orphan = redb(
            "gone",
            "orders",
            Some("rec"),
            json!({"databaseUID": "7", "redisEnterpriseCluster": "rec"}),
        );
        assert_eq!(
            other_owner(&newcomer, "orders", Some(7), rec, &[orphan], &clusters),
            Some("gone/orders".to_string())
        );
    }

    #[test]
    fn a_pending_creation_marker_counts_only_for_its_name_and_cluster() {
        let marker = json!({"pendingCreation": {"name": "orders", "cluster": "default/rec", "token": "ab"}});
        let creating = redb("default", "orders", None, marker);
        assert!(pending_creation(&creating, "default/rec").is_some());
        assert!(pending_creation(&creating, "other/rec").is_none());
        let renamed = redb(
            "default",
            "orders2",
            None,
            json!({"pendingCreation": {"name": "orders", "cluster": "default/rec", "token": "ab"}}),
        );
        assert!(pending_creation(&renamed, "default/rec").is_none());
    }
}
