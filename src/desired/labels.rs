//! Labels, owner references, the pod-template hash and the stored form of Secrets, shared by every builder.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use sha2::{Digest, Sha256};

use crate::api::keys;

/// The official operator's `app` label value on everything of a cluster.
pub const APP: &str = "redis-enterprise";

/// Labels that select a cluster's Redis Enterprise pods (stable: a StatefulSet selector cannot change).
pub fn node_selector_labels(cluster_name: &str) -> BTreeMap<String, String> {
    [
        ("app".to_string(), APP.to_string()),
        ("redis.io/cluster".to_string(), cluster_name.to_string()),
        ("redis.io/role".to_string(), "node".to_string()),
    ]
    .into()
}

/// Labels of a child object: the official `app` and `redis.io/cluster`, the recommended `app.kubernetes.io/*`
/// labels, and the user's extra labels (which never override ours).
pub fn child_labels(
    name: &str,
    instance: &str,
    cluster_name: Option<&str>,
    component: &str,
    extra: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut labels = extra.clone();
    labels.insert("app".to_string(), APP.to_string());
    if let Some(cluster_name) = cluster_name {
        labels.insert("redis.io/cluster".to_string(), cluster_name.to_string());
    }
    labels.insert(keys::NAME.to_string(), name.to_string());
    labels.insert(keys::INSTANCE.to_string(), instance.to_string());
    labels.insert(keys::MANAGED_BY.to_string(), keys::MANAGER.to_string());
    labels.insert(keys::COMPONENT.to_string(), component.to_string());
    labels
}

/// The owner reference that makes a child go with its REC or REDB; `None` when the owner's UID is unknown
/// (offline rendering).
pub fn owner_reference(api_version: &str, kind: &str, name: &str, uid: Option<&str>) -> Option<Vec<OwnerReference>> {
    uid.map(|uid| {
        vec![OwnerReference {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            name: name.to_string(),
            uid: uid.to_string(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]
    })
}

/// Object metadata for a child.
pub fn child_metadata(
    name: &str,
    namespace: &str,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    owner_references: Option<Vec<OwnerReference>>,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(namespace.to_string()),
        labels: Some(labels),
        annotations: (!annotations.is_empty()).then_some(annotations),
        owner_references,
        ..Default::default()
    }
}

/// A Secret in the form the API server stores it: `stringData` moved into `data`, so the applied object and the live
/// one compare field by field and field ownership is recorded on `data`. Templates for `render` keep `stringData`.
pub fn stored_secret(mut secret: Secret) -> Secret {
    if let Some(string_data) = secret.string_data.take() {
        let data = secret.data.get_or_insert_with(BTreeMap::new);
        for (key, value) in string_data {
            data.insert(key, ByteString(value.into_bytes()));
        }
    }
    secret
}

/// A short, stable content hash (sha256, 16 hex digits) of a serializable value.
pub fn content_hash<T: serde::Serialize>(value: &T) -> String {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    digest.iter().take(8).map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_stored_as_data() {
        let secret = stored_secret(Secret {
            string_data: Some([("password".to_string(), "p".to_string())].into()),
            ..Default::default()
        });
        assert!(secret.string_data.is_none());
        assert_eq!(secret.data.expect("data")["password"].0, b"p");
    }
}
