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
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::{ClusterError, kubernetes};
use crate::api::keys;
use crate::controllers::CLUSTER_FIELD_MANAGER;
use crate::desired::cluster::ClusterResources;

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

/// Applies every child of a cluster.
pub async fn apply_children(
    client: &kube::Client,
    namespace: &str,
    resources: ClusterResources,
    credentials_secret_write: CredentialsSecretWrite,
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
    apply(client, namespace, &stateful_set, &mut applied).await?;
    Ok(applied)
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

async fn apply<K>(
    client: &kube::Client,
    namespace: &str,
    desired: &K,
    applied: &mut Applied,
) -> Result<(), ClusterError>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned,
{
    apply_object(client, namespace, desired, true, applied).await
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
pub fn contains(live: &Value, desired: &Value) -> bool {
    match (live, desired) {
        (_, Value::Null) => true,
        (Value::Object(live), Value::Object(desired)) => desired
            .iter()
            .all(|(key, value)| value.is_null() || live.get(key).is_some_and(|l| contains(l, value))),
        (Value::Array(live), Value::Array(desired)) => {
            live.len() == desired.len() && live.iter().zip(desired).all(|(l, d)| contains(l, d))
        }
        (live, desired) => live == desired,
    }
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
}
