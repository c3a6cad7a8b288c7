//! Dereference stage: reads everything a REDB refers to: its REC (named, or the only one of its namespace), the
//! REC's admin credentials (a REST client), the database credentials Secret, and the live bdb with its alerts,
//! shards and last action. It only reads; a missing or not-yet-Running cluster is a typed "blocked" outcome.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use kube::{Resource, ResourceExt};
use serde_json::Value;

use super::{DatabaseContext, DatabaseError};
use crate::api::{RedisEnterpriseCluster, RedisEnterpriseDatabase};
use crate::controllers::{ConnectionError, connect_to_cluster};
use crate::enterprise::EnterpriseClient;
use crate::enterprise::types::{Action, Bdb};

/// The REC state in which databases can be managed.
pub const CLUSTER_RUNNING: &str = "Running";

/// Everything a REDB refers to, read at the start of a reconcile.
#[derive(Debug)]
pub struct References {
    /// The REC the database lives in.
    pub cluster: RedisEnterpriseCluster,
    /// `<namespace>/<name>` of the REC.
    pub cluster_key: String,
    /// A REST client of the REC with its admin credentials.
    pub rest: EnterpriseClient,
    /// The database credentials Secret, when it exists.
    pub secret: Option<Secret>,
    /// The live bdb: the one the status records, else the one with the REDB's name.
    pub bdb: Option<Bdb>,
    /// Whether the bdb was found by name rather than by the recorded uid (adoption).
    pub adopted: bool,
    /// The live alert settings, read only when the spec sets alerts.
    pub alerts: Option<Value>,
    /// Shard counts by status (`active: 1`).
    pub shard_statuses: Option<BTreeMap<String, i64>>,
    /// The last action the status records, when it had not finished at the last look.
    pub action: Option<Action>,
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
    /// The cluster is missing, not running, ambiguous, or its credentials are not usable.
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
}

/// The name of the database credentials Secret: `databaseSecretName`, else `redb-<name>`.
pub fn database_secret_name(redb: &RedisEnterpriseDatabase) -> String {
    redb.spec
        .database_secret_name
        .clone()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| format!("redb-{}", redb.name_any()))
}

/// Finds the REDB's REC the way the loader resolves it: `spec.redisEnterpriseCluster.name` in the REDB's namespace,
/// else the only REC of that name in another namespace; without a name, the only REC of the REDB's namespace.
pub async fn find_cluster(
    client: &kube::Client,
    redb: &RedisEnterpriseDatabase,
) -> Result<ClusterLookup, DatabaseError> {
    let namespace = redb.namespace().unwrap_or_else(|| "default".to_string());
    let kubernetes = |action: String| {
        move |source: kube::Error| DatabaseError::Kubernetes {
            action,
            source: Box::new(source),
        }
    };
    let local: Api<RedisEnterpriseCluster> = Api::namespaced(client.clone(), &namespace);
    match redb.spec.redis_enterprise_cluster.as_ref().map(|c| c.name.clone()) {
        Some(name) => {
            if let Some(cluster) = local
                .get_opt(&name)
                .await
                .map_err(kubernetes(format!("read RedisEnterpriseCluster {namespace}/{name}")))?
            {
                return Ok(ClusterLookup::Found(Box::new(cluster)));
            }
            let all: Api<RedisEnterpriseCluster> = Api::all(client.clone());
            let mut found: Vec<RedisEnterpriseCluster> = all
                .list(&ListParams::default())
                .await
                .map_err(kubernetes("list RedisEnterpriseClusters".to_string()))?
                .items
                .into_iter()
                .filter(|c| c.name_any() == name)
                .collect();
            match found.len() {
                0 => Ok(ClusterLookup::Missing(format!(
                    "RedisEnterpriseCluster {name} does not exist in namespace {namespace} (nor elsewhere)"
                ))),
                1 => Ok(ClusterLookup::Found(Box::new(found.remove(0)))),
                _ => {
                    let namespaces: Vec<String> = found.iter().filter_map(|c| c.namespace()).collect();
                    Ok(ClusterLookup::Ambiguous(format!(
                        "RedisEnterpriseCluster {name} exists in several namespaces ({}); put the database in the namespace of its cluster",
                        namespaces.join(", ")
                    )))
                }
            }
        }
        None => {
            let mut found = local
                .list(&ListParams::default())
                .await
                .map_err(kubernetes(format!("list RedisEnterpriseClusters in {namespace}")))?
                .items;
            match found.len() {
                0 => Ok(ClusterLookup::Missing(format!(
                    "namespace {namespace} has no RedisEnterpriseCluster; create one or set spec.redisEnterpriseCluster.name"
                ))),
                1 => Ok(ClusterLookup::Found(Box::new(found.remove(0)))),
                _ => {
                    let names: Vec<String> = found.iter().map(ResourceExt::name_any).collect();
                    Ok(ClusterLookup::Ambiguous(format!(
                        "namespace {namespace} has several clusters ({}); say which one with spec.redisEnterpriseCluster.name",
                        names.join(", ")
                    )))
                }
            }
        }
    }
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
        Err(error @ (ConnectionError::SecretKeyMissing { .. } | ConnectionError::Client { .. })) => Ok(Err(Blocked {
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

/// The live bdb of a REDB: by the recorded uid when it still exists under the REDB's name, else by name. The second
/// value says whether it was found by name (an adoption, for example after a restart in the middle of a creation).
pub async fn find_bdb(
    rest: &EnterpriseClient,
    redb: &RedisEnterpriseDatabase,
    cluster: &str,
) -> Result<(Option<Bdb>, bool), DatabaseError> {
    let name = redb.name_any();
    let failed = |action: String| {
        let cluster = cluster.to_string();
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
        return Ok((Some(bdb), false));
    }
    let bdb = rest
        .database_by_name(&name)
        .await
        .map_err(failed(format!("look up database {name} by name")))?;
    Ok((bdb, true))
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
    };
    let cluster_name = cluster.name_any();
    let state = cluster.status.as_ref().and_then(|s| s.state.clone());
    if cluster.meta().deletion_timestamp.is_some() || state.as_deref() != Some(CLUSTER_RUNNING) {
        let why = if cluster.meta().deletion_timestamp.is_some() {
            "it is being deleted".to_string()
        } else {
            format!("state {}", state.as_deref().unwrap_or("unknown"))
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

    let (bdb, adopted) = find_bdb(&rest, redb, &key).await?;
    let rest_failed = |action: String| {
        let cluster = key.clone();
        move |source: crate::enterprise::EnterpriseError| DatabaseError::Rest {
            action,
            cluster,
            source: Box::new(source),
        }
    };
    let mut alerts = None;
    let mut shard_statuses = None;
    if let Some(bdb) = &bdb {
        if redb.spec.alert_settings.is_some() {
            alerts = Some(
                rest.database_alerts(bdb.uid)
                    .await
                    .map_err(rest_failed(format!("read the alert settings of database {}", bdb.name)))?,
            );
        }
        let shards = rest.shards().await.map_err(rest_failed("list shards".to_string()))?;
        let mut counts = BTreeMap::new();
        for shard in shards
            .iter()
            .filter(|shard| shard.get("bdb_uid").and_then(Value::as_u64) == Some(bdb.uid))
        {
            let status = shard.get("status").and_then(Value::as_str).unwrap_or("unknown");
            *counts.entry(status.to_string()).or_insert(0) += 1;
        }
        shard_statuses = (!counts.is_empty()).then_some(counts);
    }
    let mut action = None;
    let status = redb.status.as_ref();
    if let Some(action_uid) = status.and_then(|s| s.last_action_uid.as_deref())
        && !matches!(
            status.and_then(|s| s.last_action_status.as_deref()),
            Some("completed" | "failed")
        )
    {
        action = rest
            .action(action_uid)
            .await
            .map_err(rest_failed(format!("read action {action_uid}")))?;
    }
    Ok(Dereferenced::Found(Box::new(References {
        cluster,
        cluster_key: key,
        rest,
        secret,
        bdb,
        adopted,
        alerts,
        shard_statuses,
        action,
    })))
}
