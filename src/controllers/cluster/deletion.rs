//! Deletion gate: the finalizer `redisgitops.dev/delete-cluster` keeps a REC (and so, through the owner references,
//! its StatefulSet, pods and every database in them) until no REDB lives on the cluster any more and the REC is
//! not protected (`redisgitops.dev/protect: "true"`). While it holds, the children keep running: Kubernetes only
//! collects them once the REC is gone. It may read REDBs and RECs and write the REC's finalizers; nothing else.
//!
//! A REDB lives on a cluster when the database controller could resolve it there: in the REC's namespace when it
//! names the REC or names no cluster, in another namespace when it names the REC and its own namespace has no REC
//! of that name. The rule errs on the side of keeping the cluster.

use std::collections::BTreeSet;

use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::error::{ClusterError, kubernetes};
use crate::api::{RedisEnterpriseCluster, RedisEnterpriseDatabase, keys};

/// The finalizer that keeps a REC while databases live on it.
pub const FINALIZER: &str = "redisgitops.dev/delete-cluster";

/// How many REDB names a message lists before it says how many more there are.
const LISTED_DATABASES: usize = 10;

/// Whether the REC carries the finalizer.
pub fn has_finalizer(cluster: &RedisEnterpriseCluster) -> bool {
    cluster.finalizers().iter().any(|f| f == FINALIZER)
}

/// Whether the REC is annotated `redisgitops.dev/protect: "true"`.
pub fn is_protected(cluster: &RedisEnterpriseCluster) -> bool {
    cluster.annotations().get(keys::PROTECT).is_some_and(|v| v == "true")
}

/// The outcome of a finalizer write that raced another writer (the JSON patch `test` failed: 422, or 409).
fn raced(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if matches!(status.code, 409 | 422))
}

/// Adds the finalizer when it is missing. Returns `false` when the write raced another writer (look again soon).
pub async fn ensure_finalizer(client: &kube::Client, cluster: &RedisEnterpriseCluster) -> Result<bool, ClusterError> {
    if has_finalizer(cluster) {
        return Ok(true);
    }
    let namespace = cluster.namespace().unwrap_or_else(|| "default".to_string());
    let name = cluster.name_any();
    let api: Api<RedisEnterpriseCluster> = Api::namespaced(client.clone(), &namespace);
    // The `test` makes the patch fail instead of dropping a finalizer another writer added meanwhile.
    let patch = match cluster.meta().finalizers.as_ref() {
        None => json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
        ]),
        Some(current) => json!([
            {"op": "test", "path": "/metadata/finalizers", "value": current},
            {"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER},
        ]),
    };
    let patch: json_patch::Patch = serde_json::from_value(patch).map_err(|error| ClusterError::FinalizerPatch {
        cluster: format!("{namespace}/{name}"),
        reason: error.to_string(),
    })?;
    match api
        .patch(&name, &PatchParams::default(), &Patch::<()>::Json(patch))
        .await
    {
        Ok(_) => Ok(true),
        Err(error) if raced(&error) => Ok(false),
        Err(error) => Err(kubernetes(format!(
            "add the finalizer {FINALIZER} to RedisEnterpriseCluster {namespace}/{name}"
        ))(error)),
    }
}

/// Removes the finalizer, so the REC and then its children go. Returns `false` when the write raced another writer.
pub async fn remove_finalizer(client: &kube::Client, cluster: &RedisEnterpriseCluster) -> Result<bool, ClusterError> {
    let Some(index) = cluster.finalizers().iter().position(|f| f == FINALIZER) else {
        return Ok(true);
    };
    let namespace = cluster.namespace().unwrap_or_else(|| "default".to_string());
    let name = cluster.name_any();
    let api: Api<RedisEnterpriseCluster> = Api::namespaced(client.clone(), &namespace);
    let path = format!("/metadata/finalizers/{index}");
    let patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": path, "value": FINALIZER},
        {"op": "remove", "path": path},
    ]))
    .map_err(|error| ClusterError::FinalizerPatch {
        cluster: format!("{namespace}/{name}"),
        reason: error.to_string(),
    })?;
    match api
        .patch(&name, &PatchParams::default(), &Patch::<()>::Json(patch))
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(true),
        Err(error) if raced(&error) => Ok(false),
        Err(error) => Err(kubernetes(format!(
            "remove the finalizer {FINALIZER} from RedisEnterpriseCluster {namespace}/{name}"
        ))(error)),
    }
}

/// A REDB that keeps the cluster, as `namespace/name`, and whether it is being deleted itself.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Resident {
    /// `namespace/name` of the REDB.
    pub key: String,
    /// Whether the REDB has a deletionTimestamp (its own finalizer is at work).
    pub deleting: bool,
}

/// Whether `redb` lives on the REC `cluster_namespace/cluster_name`. `clusters` holds `(namespace, name)` of every
/// REC, to tell whether a REDB in another namespace resolves to a REC of its own namespace instead.
pub fn lives_on(
    redb: &RedisEnterpriseDatabase,
    cluster_namespace: &str,
    cluster_name: &str,
    clusters: &BTreeSet<(String, String)>,
) -> bool {
    let namespace = redb.namespace().unwrap_or_else(|| "default".to_string());
    let named = redb
        .spec
        .redis_enterprise_cluster
        .as_ref()
        .map(|reference| reference.name.as_str())
        .filter(|name| !name.is_empty());
    if namespace == cluster_namespace {
        return named.is_none_or(|name| name == cluster_name);
    }
    named == Some(cluster_name) && !clusters.contains(&(namespace, cluster_name.to_string()))
}

/// Every REDB that lives on `cluster`, sorted.
pub async fn residents(client: &kube::Client, cluster: &RedisEnterpriseCluster) -> Result<Vec<Resident>, ClusterError> {
    let namespace = cluster.namespace().unwrap_or_else(|| "default".to_string());
    let name = cluster.name_any();
    let redbs = Api::<RedisEnterpriseDatabase>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(kubernetes(format!(
            "list the RedisEnterpriseDatabases that may live on cluster {namespace}/{name}"
        )))?
        .items;
    // Only REDBs elsewhere that name this cluster need the list of RECs.
    let elsewhere = redbs.iter().any(|redb| {
        redb.namespace().as_deref() != Some(namespace.as_str())
            && redb
                .spec
                .redis_enterprise_cluster
                .as_ref()
                .is_some_and(|c| c.name == name)
    });
    let clusters: BTreeSet<(String, String)> = if elsewhere {
        Api::<RedisEnterpriseCluster>::all(client.clone())
            .list(&ListParams::default())
            .await
            .map_err(kubernetes("list RedisEnterpriseClusters".to_string()))?
            .items
            .iter()
            .map(|c| (c.namespace().unwrap_or_default(), c.name_any()))
            .collect()
    } else {
        BTreeSet::new()
    };
    let mut found: Vec<Resident> = redbs
        .iter()
        .filter(|redb| lives_on(redb, &namespace, &name, &clusters))
        .map(|redb| Resident {
            key: format!("{}/{}", redb.namespace().unwrap_or_default(), redb.name_any()),
            deleting: redb.metadata.deletion_timestamp.is_some(),
        })
        .collect();
    found.sort();
    Ok(found)
}

/// What the deletion of a REC may do now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Nothing lives on the cluster and it is not protected: remove the finalizer.
    Release,
    /// The deletion waits.
    Blocked {
        /// `true` when only the user can unblock it (`Stalled`); `false` while the REDBs are being deleted.
        stalled: bool,
        /// Condition and event reason.
        reason: &'static str,
        /// Why, and how to proceed.
        message: String,
    },
}

/// The condition and event reason of a held deletion.
pub const DELETION_BLOCKED: &str = "DeletionBlocked";

fn listed(residents: &[Resident]) -> String {
    let mut names: Vec<&str> = residents
        .iter()
        .take(LISTED_DATABASES)
        .map(|r| r.key.as_str())
        .collect();
    let more;
    if residents.len() > LISTED_DATABASES {
        more = format!("and {} more", residents.len() - LISTED_DATABASES);
        names.push(&more);
    }
    names.join(", ")
}

/// Decides the deletion of the REC `key` (`namespace/name`): protected first, then the REDBs still on it.
pub fn decide(key: &str, protected: bool, residents: &[Resident]) -> Gate {
    let name = key.split_once('/').map_or(key, |(_, name)| name);
    let namespace = key.split_once('/').map_or("default", |(namespace, _)| namespace);
    if protected {
        return Gate::Blocked {
            stalled: true,
            reason: DELETION_BLOCKED,
            message: format!(
                "cluster {key} is protected (annotation {}: \"true\") and is kept with every database on it; to \
                 delete it, remove the annotation: kubectl annotate rec {name} -n {namespace} {}-",
                keys::PROTECT,
                keys::PROTECT
            ),
        };
    }
    if residents.is_empty() {
        return Gate::Release;
    }
    let count = residents.len();
    let databases = if count == 1 { "database" } else { "databases" };
    if residents.iter().all(|r| r.deleting) {
        let verb = if count == 1 { "is" } else { "are" };
        return Gate::Blocked {
            stalled: false,
            reason: DELETION_BLOCKED,
            message: format!(
                "cluster {key} is kept until the {count} {databases} being deleted on it {verb} gone: {}",
                listed(residents)
            ),
        };
    }
    let live = if count == 1 { "lives" } else { "live" };
    Gate::Blocked {
        stalled: true,
        reason: DELETION_BLOCKED,
        message: format!(
            "cluster {key} is not deleted while {count} {databases} {live} on it ({}): deleting the cluster would \
             delete their data; delete the RedisEnterpriseDatabases first (kubectl delete redb), then the cluster \
             goes",
            listed(residents)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redb(namespace: &str, name: &str, cluster: Option<&str>) -> RedisEnterpriseDatabase {
        let spec = match cluster {
            Some(cluster) => json!({"redisEnterpriseCluster": {"name": cluster}}),
            None => json!({}),
        };
        serde_json::from_value(json!({
            "apiVersion": "app.redislabs.com/v1alpha1", "kind": "RedisEnterpriseDatabase",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec
        }))
        .expect("fixture")
    }

    #[test]
    fn a_redb_lives_where_the_database_controller_would_resolve_it() {
        let none = BTreeSet::new();
        assert!(lives_on(&redb("prod", "a", Some("rec")), "prod", "rec", &none));
        assert!(
            lives_on(&redb("prod", "a", None), "prod", "rec", &none),
            "no name: any REC of the namespace"
        );
        assert!(!lives_on(&redb("prod", "a", Some("other")), "prod", "rec", &none));
        assert!(
            lives_on(&redb("apps", "a", Some("rec")), "prod", "rec", &none),
            "named from elsewhere"
        );
        let local = [("apps".to_string(), "rec".to_string())].into();
        assert!(
            !lives_on(&redb("apps", "a", Some("rec")), "prod", "rec", &local),
            "a REC of that name in its own namespace takes it"
        );
        assert!(!lives_on(&redb("apps", "a", None), "prod", "rec", &none));
    }

    #[test]
    fn deletion_waits_for_protection_and_databases_with_a_way_out() {
        assert_eq!(decide("prod/rec", false, &[]), Gate::Release);
        assert_eq!(
            decide("prod/rec", true, &[]),
            Gate::Blocked {
                stalled: true,
                reason: "DeletionBlocked",
                message: "cluster prod/rec is protected (annotation redisgitops.dev/protect: \"true\") and is kept \
                          with every database on it; to delete it, remove the annotation: kubectl annotate rec rec \
                          -n prod redisgitops.dev/protect-"
                    .into(),
            }
        );
        let live = |key: &str, deleting| Resident {
            key: key.into(),
            deleting,
        };
        assert_eq!(
            decide(
                "prod/rec",
                false,
                &[live("prod/cache", false), live("prod/orders", true)]
            ),
            Gate::Blocked {
                stalled: true,
                reason: "DeletionBlocked",
                message: "cluster prod/rec is not deleted while 2 databases live on it (prod/cache, prod/orders): \
                          deleting the cluster would delete their data; delete the RedisEnterpriseDatabases first \
                          (kubectl delete redb), then the cluster goes"
                    .into(),
            }
        );
        assert_eq!(
            decide("prod/rec", false, &[live("prod/orders", true)]),
            Gate::Blocked {
                stalled: false,
                reason: "DeletionBlocked",
                message: "cluster prod/rec is kept until the 1 database being deleted on it is gone: prod/orders"
                    .into(),
            }
        );
        let many: Vec<Resident> = (0..12).map(|i| live(&format!("prod/db{i:02}"), false)).collect();
        let Gate::Blocked { message, .. } = decide("prod/rec", false, &many) else {
            panic!("blocked");
        };
        assert!(message.contains("prod/db09, and 2 more)"), "{message}");
    }
}
