//! Apply stage, Kubernetes side: server-side apply (field manager `redis-gitops/cluster`, force) of every child in
//! the order ServiceAccount → Role → RoleBinding → credentials Secret → Services → PodDisruptionBudget →
//! StatefulSet. An object whose live state already contains every desired field is not written, so a resync of a
//! healthy cluster writes nothing. A credentials Secret the user provided is never written.
//!
//! The comparison is "desired is contained in live": fields the API server adds (defaults, status) do not count as
//! drift. A field removed from the desired object is therefore only dropped at the next write of that object.
//!
//! The ServiceAccounts, Roles, RoleBindings, Services and PodDisruptionBudgets of the cluster are read with one LIST
//! per kind (its labels: `app.kubernetes.io/name=redis-enterprise`, instance, managed-by); those among them that
//! carry an owner reference to this REC and are no longer built are deleted. NEVER deleted: Secrets (the admin
//! credentials), the StatefulSet (it holds the nodes), PersistentVolumeClaims or anything else carrying data, and the
//! ServiceAccount the pods run as.

use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, Preconditions, PropagationPolicy};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::{ClusterError, kubernetes};
use crate::api::keys;
use crate::controllers::CLUSTER_FIELD_MANAGER;
use crate::desired::cluster::ClusterResources;
use crate::manifests::quantity::parse_quantity;

/// What the apply stage wrote, as `Kind/name`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Objects written (created, changed, or deleted as no longer built: `Kind/name (deleted)`).
    pub written: Vec<String>,
}

/// The owner uid and instance name of a cluster's children, from the StatefulSet that is always built.
fn owner_of(resources: &ClusterResources) -> (Option<String>, String) {
    let metadata = &resources.stateful_set.metadata;
    let uid = metadata
        .owner_references
        .iter()
        .flatten()
        .find(|owner| owner.kind == "RedisEnterpriseCluster")
        .map(|owner| owner.uid.clone());
    (uid, metadata.name.clone().unwrap_or_default())
}

/// The live children of one kind of cluster `instance`, by their labels (one LIST).
async fn live_of<K>(client: &kube::Client, namespace: &str, instance: &str) -> Result<Vec<K>, ClusterError>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + Debug + DeserializeOwned,
{
    let selector = format!(
        "{}=redis-enterprise,{}={instance},{}={}",
        keys::NAME,
        keys::INSTANCE,
        keys::MANAGED_BY,
        keys::MANAGER
    );
    let kind = K::plural(&());
    Ok(Api::<K>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(kubernetes(format!("list the {kind} of cluster {namespace}/{instance}")))?
        .items)
}

/// Applies the desired objects of one kind (compared with the live ones of their names) and deletes the live ones
/// owned by `owner` that are not desired, except `keep`.
async fn converge<K>(
    client: &kube::Client,
    namespace: &str,
    instance: &str,
    desired: Vec<K>,
    owner: Option<&str>,
    keep: Option<&str>,
    applied: &mut Applied,
) -> Result<(), ClusterError>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned,
{
    let live: Vec<K> = live_of(client, namespace, instance).await?;
    let names: Vec<String> = desired.iter().map(ResourceExt::name_any).collect();
    for object in &desired {
        let current = live.iter().find(|l| l.name_any() == object.name_any()).cloned();
        write_object(client, namespace, object, current, true, applied).await?;
    }
    let Some(owner) = owner else {
        return Ok(());
    };
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let kind = K::kind(&());
    for orphan in live.iter().filter(|l| {
        let name = l.name_any();
        !names.contains(&name)
            && keep != Some(name.as_str())
            && l.owner_references().iter().any(|reference| reference.uid == owner)
    }) {
        let name = orphan.name_any();
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(source) => {
                return Err(kubernetes(format!(
                    "delete {kind} {namespace}/{name}, which the cluster no longer has"
                ))(source));
            }
        }
        applied.written.push(format!("{kind}/{name} (deleted)"));
    }
    Ok(())
}

/// Whether the apply stage may write the admin credentials Secret, and create it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialsSecretWrite {
    /// The user owns the Secret: never written.
    Never,
    /// The Secret existed when the reconcile read it: updated in place, never created again. One deleted in the
    /// meantime stays deleted, and the next reconcile reports it (`CredentialsSecretMissing`) instead of this one
    /// bringing it back from what it read.
    UpdateOnly,
    /// No Secret existed and the cluster was never bootstrapped: created with the generated password.
    Create,
}

/// Applies every child of a cluster. `volume_resize` is `enablePersistentVolumeResize`: whether a larger volume
/// size may grow the existing claims.
pub async fn apply_children(
    client: &kube::Client,
    namespace: &str,
    resources: ClusterResources,
    credentials_secret_write: CredentialsSecretWrite,
    volume_resize: bool,
) -> Result<Applied, ClusterError> {
    let (owner, instance) = owner_of(&resources);
    let ClusterResources {
        service_account,
        role,
        role_binding,
        credentials_secret,
        services,
        pod_disruption_budget,
        stateful_set,
    } = resources;
    let mut applied = Applied::default();
    let owner = owner.as_deref();
    // The pods run as this ServiceAccount whether the agent creates it or the user does: never deleted.
    let pods_account = stateful_set
        .spec
        .as_ref()
        .and_then(|spec| spec.template.spec.as_ref())
        .and_then(|pod| pod.service_account_name.clone());
    let pods_account = pods_account.as_deref();
    let (ns, name) = (namespace, instance.as_str());
    converge(
        client,
        ns,
        name,
        Vec::from_iter(service_account),
        owner,
        pods_account,
        &mut applied,
    )
    .await?;
    converge(client, ns, name, Vec::from_iter(role), owner, None, &mut applied).await?;
    converge(
        client,
        ns,
        name,
        Vec::from_iter(role_binding),
        owner,
        None,
        &mut applied,
    )
    .await?;
    if credentials_secret_write != CredentialsSecretWrite::Never {
        release_credentials_secret(client, namespace, &credentials_secret, &mut applied).await?;
        let may_create = credentials_secret_write == CredentialsSecretWrite::Create;
        apply_secret(client, namespace, &credentials_secret, may_create, &mut applied).await?;
    }
    converge(client, ns, name, services, owner, None, &mut applied).await?;
    converge(client, ns, name, vec![pod_disruption_budget], owner, None, &mut applied).await?;
    apply_stateful_set(client, namespace, &stateful_set, volume_resize, &mut applied).await?;
    Ok(applied)
}

/// How the desired StatefulSet's fields that an update may not change differ from the live ones.
#[derive(Debug, PartialEq)]
enum FrozenChange {
    /// Nothing the API server would refuse.
    None,
    /// Only claim sizes grow: template name → new size.
    Grow(Vec<(String, Quantity)>),
    /// Anything else: the REC field at its origin and why.
    Refused(&'static str, String),
}

fn storage_request(claim: &PersistentVolumeClaim) -> Option<&Quantity> {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
}

/// Compares what a StatefulSet update may not change (`spec` but for replicas, ordinals, template, updateStrategy,
/// revisionHistoryLimit, persistentVolumeClaimRetentionPolicy and minReadySeconds) in the fields the agent sets.
fn frozen_change(live: &StatefulSet, desired: &StatefulSet) -> FrozenChange {
    let (Some(live), Some(desired)) = (live.spec.as_ref(), desired.spec.as_ref()) else {
        return FrozenChange::None;
    };
    if desired.service_name.is_some() && desired.service_name != live.service_name
        || desired.selector != live.selector
        || desired.pod_management_policy.is_some() && desired.pod_management_policy != live.pod_management_policy
    {
        return FrozenChange::Refused(
            "metadata.name",
            "the StatefulSet's service name, selector or pod management policy differs from the live one (made by \
             another version or by hand); delete the StatefulSet with --cascade=orphan to have it re-created"
                .into(),
        );
    }
    let live_claims = live.volume_claim_templates.clone().unwrap_or_default();
    let desired_claims = desired.volume_claim_templates.clone().unwrap_or_default();
    let names = |claims: &[PersistentVolumeClaim]| -> Vec<String> {
        claims
            .iter()
            .map(|c| c.metadata.name.clone().unwrap_or_default())
            .collect()
    };
    if names(&live_claims) != names(&desired_claims) {
        return FrozenChange::Refused(
            "spec.persistentSpec.enabled",
            "turns persistence on or off, which an existing cluster cannot do; restore the previous value, or \
             create a new cluster and move the databases"
                .into(),
        );
    }
    let mut grow = Vec::new();
    for (live_claim, desired_claim) in live_claims.iter().zip(&desired_claims) {
        let name = desired_claim.metadata.name.clone().unwrap_or_default();
        let class = |c: &PersistentVolumeClaim| c.spec.as_ref().and_then(|s| s.storage_class_name.clone());
        if class(desired_claim).is_some() && class(desired_claim) != class(live_claim) {
            return FrozenChange::Refused(
                "spec.persistentSpec.storageClassName",
                format!(
                    "changes the storage class of the claims from {} to {}, which cannot change after creation; \
                     restore the previous value",
                    class(live_claim).unwrap_or_else(|| "the default".into()),
                    class(desired_claim).unwrap_or_default()
                ),
            );
        }
        let (Some(live_size), Some(desired_size)) = (storage_request(live_claim), storage_request(desired_claim))
        else {
            continue;
        };
        match (parse_quantity(&live_size.0), parse_quantity(&desired_size.0)) {
            (Some(before), Some(after)) if after < before => {
                return FrozenChange::Refused(
                    "spec.persistentSpec.volumeSize",
                    format!(
                        "shrinks the claims from {} to {}; volumes can only grow: restore a size of at least {} \
                         (without volumeSize the size is five times the node memory limit)",
                        live_size.0, desired_size.0, live_size.0
                    ),
                );
            }
            (Some(before), Some(after)) if after > before => grow.push((name, desired_size.clone())),
            _ => {}
        }
    }
    if grow.is_empty() {
        FrozenChange::None
    } else {
        FrozenChange::Grow(grow)
    }
}

/// Applies the StatefulSet. A claim-template change, which the API server refuses in an update, is done as the
/// official operator does it when `enablePersistentVolumeResize` allows: each existing claim's request is patched
/// to the new size, then the StatefulSet is deleted with orphan propagation (its pods keep running) and created
/// again with the new templates, adopting the pods. Any other change is refused with the field to fix.
async fn apply_stateful_set(
    client: &kube::Client,
    namespace: &str,
    desired: &StatefulSet,
    volume_resize: bool,
    applied: &mut Applied,
) -> Result<(), ClusterError> {
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
    let name = desired.name_any();
    let live = api
        .get_opt(&name)
        .await
        .map_err(kubernetes(format!("read StatefulSet {namespace}/{name}")))?;
    let refused = |field: &'static str, reason: String| ClusterError::ClaimTemplateChange {
        namespace: namespace.to_string(),
        name: name.clone(),
        field,
        reason,
    };
    let Some(current) = live.as_ref() else {
        return write_object(client, namespace, desired, live, true, applied).await;
    };
    if current.metadata.deletion_timestamp.is_some() {
        // Re-created once the orphaning deletion has finished.
        return Ok(());
    }
    match frozen_change(current, desired) {
        FrozenChange::None => write_object(client, namespace, desired, live, true, applied).await,
        FrozenChange::Refused(field, reason) => Err(refused(field, reason)),
        FrozenChange::Grow(_) if !volume_resize => Err(refused(
            "spec.persistentSpec.volumeSize",
            "grows the claims, but spec.persistentSpec.enablePersistentVolumeResize is not true; set it to true to \
             resize the volumes (the storage class must allow expansion), or restore the previous size (without \
             volumeSize the size is five times the node memory limit)"
                .into(),
        )),
        FrozenChange::Grow(claims) => {
            grow_claims(client, namespace, current, &claims, applied).await?;
            let uid = current.metadata.uid.clone();
            let params = DeleteParams {
                propagation_policy: Some(PropagationPolicy::Orphan),
                preconditions: uid.map(|uid| Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
                ..Default::default()
            };
            match api.delete(&name, &params).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
                Err(source) => {
                    return Err(kubernetes(format!(
                        "delete StatefulSet {namespace}/{name} with orphan propagation to change its claim templates"
                    ))(source));
                }
            }
            applied
                .written
                .push(format!("StatefulSet/{name} (deleted, pods orphaned)"));
            let gone = api
                .get_opt(&name)
                .await
                .map_err(kubernetes(format!("read StatefulSet {namespace}/{name}")))?;
            match gone {
                None => write_object(client, namespace, desired, None, true, applied).await,
                // Still being deleted (the garbage collector orphans the pods first): the next pass creates it.
                Some(_) => Ok(()),
            }
        }
    }
}

/// Patches the storage request of every existing claim `<template>-<statefulset>-<ordinal>` that is smaller than
/// the new size.
async fn grow_claims(
    client: &kube::Client,
    namespace: &str,
    live: &StatefulSet,
    claims: &[(String, Quantity)],
    applied: &mut Applied,
) -> Result<(), ClusterError> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let name = live.name_any();
    let replicas = live.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1).max(0);
    for (template, size) in claims {
        for ordinal in 0..replicas {
            let claim_name = format!("{template}-{name}-{ordinal}");
            let Some(claim) = api.get_opt(&claim_name).await.map_err(kubernetes(format!(
                "read PersistentVolumeClaim {namespace}/{claim_name}"
            )))?
            else {
                continue;
            };
            let smaller = storage_request(&claim)
                .and_then(|q| parse_quantity(&q.0))
                .zip(parse_quantity(&size.0))
                .is_some_and(|(current, wanted)| current < wanted);
            if !smaller {
                continue;
            }
            let patch = serde_json::json!({"spec": {"resources": {"requests": {"storage": size.0}}}});
            api.patch(&claim_name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(kubernetes(format!(
                    "grow PersistentVolumeClaim {namespace}/{claim_name} to {}",
                    size.0
                )))?;
            applied
                .written
                .push(format!("PersistentVolumeClaim/{claim_name} (grown to {})", size.0));
        }
    }
    Ok(())
}

/// Drops the owner references to a REC that agents before this one put on the credentials Secret, so the Secret is
/// not garbage-collected with the REC (the desired Secret has none; "desired is contained in live" would never
/// notice an extra reference). A JSON merge patch with the resourceVersion, so a concurrent change is not lost.
async fn release_credentials_secret(
    client: &kube::Client,
    namespace: &str,
    desired: &Secret,
    applied: &mut Applied,
) -> Result<(), ClusterError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let name = desired.name_any();
    let Some(live) = api
        .get_opt(&name)
        .await
        .map_err(kubernetes(format!("read Secret {namespace}/{name}")))?
    else {
        return Ok(());
    };
    let owners = live.owner_references();
    let kept: Vec<_> = owners
        .iter()
        .filter(|owner| owner.kind != "RedisEnterpriseCluster")
        .cloned()
        .collect();
    if kept.len() == owners.len() {
        return Ok(());
    }
    let patch = serde_json::json!({"metadata": {
        "resourceVersion": live.resource_version(),
        "ownerReferences": if kept.is_empty() { Value::Null } else { serde_json::to_value(&kept).unwrap_or(Value::Null) },
    }});
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(kubernetes(format!(
            "remove the owner reference of the credentials Secret {namespace}/{name}"
        )))?;
    applied.written.push(format!("Secret/{name} (owner reference removed)"));
    Ok(())
}

/// The admin Secret is created only when `may_create`; otherwise a Secret gone since it was read is left gone.
async fn apply_secret(
    client: &kube::Client,
    namespace: &str,
    desired: &Secret,
    may_create: bool,
    applied: &mut Applied,
) -> Result<(), ClusterError> {
    apply_object(client, namespace, desired, may_create, applied).await
}

async fn apply_object<K>(
    client: &kube::Client,
    namespace: &str,
    desired: &K,
    may_create: bool,
    applied: &mut Applied,
) -> Result<(), ClusterError>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let name = desired.name_any();
    let kind = K::kind(&());
    let live = api
        .get_opt(&name)
        .await
        .map_err(kubernetes(format!("read {kind} {namespace}/{name}")))?;
    write_object(client, namespace, desired, live, may_create, applied).await
}

/// Server-side applies `desired` unless `live` already holds all of it (or it is gone and may not be created).
async fn write_object<K>(
    client: &kube::Client,
    namespace: &str,
    desired: &K,
    live: Option<K>,
    may_create: bool,
    applied: &mut Applied,
) -> Result<(), ClusterError>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let name = desired.name_any();
    let kind = K::kind(&());
    let body = serde_json::to_value(desired).unwrap_or(Value::Null);
    match live {
        Some(live) if contains(&serde_json::to_value(&live).unwrap_or(Value::Null), &body) => return Ok(()),
        None if !may_create => return Ok(()),
        _ => {}
    }
    api.patch(
        &name,
        &PatchParams::apply(CLUSTER_FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(kubernetes(format!("apply {kind} {namespace}/{name}")))?;
    applied.written.push(format!("{kind}/{name}"));
    Ok(())
}

/// Whether `live` already holds every field of `desired`: maps by key, lists element by element (same length).
/// Quantities (the values of `requests`, `limits` and `capacity` maps) compare by value, since the API server
/// stores them in canonical form (`4000m` comes back as `4`).
pub fn contains(live: &Value, desired: &Value) -> bool {
    contains_in(live, desired, false)
}

fn contains_in(live: &Value, desired: &Value, quantity_map: bool) -> bool {
    match (live, desired) {
        (_, Value::Null) => true,
        (Value::Object(live), Value::Object(desired)) => desired.iter().all(|(key, value)| {
            value.is_null()
                || live.get(key).is_some_and(|l| {
                    if quantity_map {
                        same_quantity_text(l, value)
                    } else {
                        contains_in(l, value, matches!(key.as_str(), "requests" | "limits" | "capacity"))
                    }
                })
        }),
        (Value::Array(live), Value::Array(desired)) => {
            live.len() == desired.len() && live.iter().zip(desired).all(|(l, d)| contains_in(l, d, false))
        }
        (live, desired) => live == desired,
    }
}

/// Whether two quantity values are equal as text or as values.
fn same_quantity_text(live: &Value, desired: &Value) -> bool {
    if live == desired {
        return true;
    }
    match (live.as_str(), desired.as_str()) {
        (Some(l), Some(d)) => parse_quantity(l)
            .zip(parse_quantity(d))
            .is_some_and(|(l, d)| same_quantity(l, d)),
        _ => false,
    }
}

/// Whether two parsed quantities are the same value (they come from decimal text, so allow rounding).
fn same_quantity(a: f64, b: f64) -> bool {
    (a - b).abs() <= f64::EPSILON * 16.0 * a.abs().max(b.abs()).max(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn added_server_fields_are_not_drift_but_changed_or_missing_fields_are() {
        let desired = json!({"metadata": {"name": "rec", "labels": {"app": "redis-enterprise"}},
            "spec": {"ports": [{"port": 9443}], "type": "ClusterIP"}});
        let live = json!({"metadata": {"name": "rec", "uid": "1", "resourceVersion": "7",
            "labels": {"app": "redis-enterprise", "extra": "x"}},
            "spec": {"ports": [{"port": 9443, "protocol": "TCP"}], "type": "ClusterIP", "clusterIP": "10.0.0.1"},
            "status": {}});
        assert!(contains(&live, &desired));
        let mut changed = live.clone();
        changed["spec"]["type"] = json!("NodePort");
        assert!(!contains(&changed, &desired));
        let mut more_ports = desired.clone();
        more_ports["spec"]["ports"] = json!([{"port": 9443}, {"port": 8001}]);
        assert!(!contains(&live, &more_ports));
        let mut no_labels = live.clone();
        no_labels["metadata"].as_object_mut().expect("object").remove("labels");
        assert!(!contains(&no_labels, &desired));
    }

    #[test]
    fn quantities_in_canonical_form_are_not_drift() {
        let desired = json!({"spec": {"resources": {"requests": {"cpu": "4000m", "memory": "4096Mi"}}}});
        let live = json!({"spec": {"resources": {"requests": {"cpu": "4", "memory": "4Gi"}}}});
        assert!(contains(&live, &desired));
        let grown = json!({"spec": {"resources": {"requests": {"cpu": "4", "memory": "8Gi"}}}});
        assert!(!contains(&grown, &desired));
        // Outside resource maps text stays text.
        assert!(!contains(&json!({"name": "4"}), &json!({"name": "4000m"})));
    }

    fn statefulset(size: &str, class: Option<&str>, claims: bool) -> StatefulSet {
        let templates = if claims {
            json!([{"metadata": {"name": "redis-enterprise-storage"},
                "spec": {"storageClassName": class, "resources": {"requests": {"storage": size}}}}])
        } else {
            json!(null)
        };
        serde_json::from_value(
            json!({"metadata": {"name": "rec"}, "spec": {"serviceName": "rec-headless",
            "selector": {"matchLabels": {"app": "redis-enterprise"}}, "template": {},
            "volumeClaimTemplates": templates}}),
        )
        .expect("a StatefulSet")
    }

    #[test]
    fn claim_template_changes_are_grown_or_refused_naming_the_field() {
        let live = statefulset("20Gi", None, true);
        assert_eq!(
            frozen_change(&live, &statefulset("20480Mi", None, true)),
            FrozenChange::None
        );
        assert_eq!(
            frozen_change(&live, &statefulset("40Gi", None, true)),
            FrozenChange::Grow(vec![("redis-enterprise-storage".into(), Quantity("40Gi".into()))])
        );
        let field = |change| match change {
            FrozenChange::Refused(field, _) => field,
            other => panic!("expected a refusal, got {other:?}"),
        };
        assert_eq!(
            field(frozen_change(&live, &statefulset("10Gi", None, true))),
            "spec.persistentSpec.volumeSize"
        );
        assert_eq!(
            field(frozen_change(&live, &statefulset("20Gi", Some("fast"), true))),
            "spec.persistentSpec.storageClassName"
        );
        assert_eq!(
            field(frozen_change(&live, &statefulset("20Gi", None, false))),
            "spec.persistentSpec.enabled"
        );
    }
}
