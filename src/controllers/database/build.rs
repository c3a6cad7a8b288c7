//! Build stage (pure, no client): the validated database and what the dereference stage found → everything the
//! apply stage writes: the bdb create body, the minimal update of the live bdb, alert settings when they differ,
//! whether the password must be applied, the credentials Secret, the Services and their EndpointSlices.
//!
//! How "the password last applied" is remembered without storing it: the Secret carries the annotation
//! [`PASSWORD_DIGEST_ANNOTATION`], an HMAC-SHA256 of the password keyed with the cluster and bdb uid
//! (`<namespace>/<rec>/bdb/<uid>`), written only after the cluster accepted that password (at creation or by
//! `PUT /v1/bdbs/{uid}/passwords`). A Secret whose password no longer matches its digest is a rotation; a bdb
//! with another uid (recreated, adopted, another cluster) does not match either, so its password is set once.
//! The digest sits on the Secret itself, so whoever can read it can already read the password: it reveals nothing
//! new, and nothing password-derived is kept anywhere else.

use std::collections::BTreeMap;
use std::net::IpAddr;

use hmac::{Hmac, Mac};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Map, Value};
use sha2::Sha256;

use super::dereference::References;
use super::validate::ValidatedState;
use crate::desired::database::{
    BdbUpdate, RuntimeValues, build_alert_settings, build_bdb, build_database_secret, build_database_services, diff_bdb,
};
use crate::enterprise::states::DatabaseStatus;
use crate::enterprise::types::Bdb;

/// Annotation on the database Secret: digest of the password the cluster last accepted (see the module doc).
pub const PASSWORD_DIGEST_ANNOTATION: &str = "redisgitops.dev/applied-password-digest";
/// Label naming the Service of an EndpointSlice.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Label naming the controller of an EndpointSlice.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`] on the EndpointSlices of this controller.
pub const MANAGED_BY: &str = "redis-gitops";

/// Everything the apply stage may write for one database. `Debug` leaves out the create body and the Secret (both
/// hold the password).
#[derive(Default)]
pub struct DesiredDatabase {
    /// The body of `POST /v1/bdbs`, password included (used only when the bdb does not exist).
    pub create_body: Map<String, Value>,
    /// What differs between the spec and the live bdb (when it exists).
    pub update: BdbUpdate,
    /// The alert settings to send, when the spec sets some that the live bdb does not have.
    pub alerts: Option<Value>,
    /// The digest of the current password for the live bdb (see the module doc).
    pub password_digest: Option<String>,
    /// Whether the live bdb must be given the Secret's password (`PUT /v1/bdbs/{uid}/passwords`).
    pub rotate_password: bool,
    /// The database port, when known (spec or live bdb).
    pub port: Option<u16>,
    /// The credentials Secret (`None` with `defaultUser: false`), its `password-digest` annotation set when the
    /// live bdb already has the password.
    pub secret: Option<Secret>,
    /// The Services (once the bdb has a port).
    pub services: Vec<Service>,
    /// One EndpointSlice per Service, pointing at the bdb's endpoints.
    pub endpoint_slices: Vec<EndpointSlice>,
}

impl std::fmt::Debug for DesiredDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DesiredDatabase")
            .field("create_body", &self.create_body.keys().collect::<Vec<_>>())
            .field("update", &self.update.changes.keys().collect::<Vec<_>>())
            .field("rotate_password", &self.rotate_password)
            .field("port", &self.port)
            .field("secret", &self.secret.as_ref().map(|s| s.metadata.name.clone()))
            .field("services", &self.services.len())
            .field("endpoint_slices", &self.endpoint_slices.len())
            .finish_non_exhaustive()
    }
}

/// The digest of `password` for bdb `uid` of cluster `cluster` (`<namespace>/<name>`), hex.
pub fn password_digest(cluster: &str, uid: u64, password: &str) -> String {
    let key = format!("{cluster}/bdb/{uid}");
    // HMAC accepts keys of any length, so this never fails; an empty digest would only force one more rotation.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key.as_bytes()) else {
        return String::new();
    };
    mac.update(password.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The alert settings to send: the ones the spec sets (unset alerts are left as they are), when any of them
/// differs from the live ones.
pub fn alerts_to_send(desired: Option<Value>, live: Option<&Value>) -> Option<Value> {
    let fields: Map<String, Value> = desired?
        .as_object()?
        .iter()
        .filter(|(_, setting)| !setting.is_null())
        .map(|(name, setting)| (name.clone(), setting.clone()))
        .collect();
    let differs = fields
        .iter()
        .any(|(name, setting)| live.and_then(|live| live.get(name)) != Some(setting));
    differs.then_some(Value::Object(fields))
}

/// Moves a Secret's `stringData` into `data`, as the API server stores it, so the applied object and the live one
/// compare field by field and field ownership is recorded on `data`.
pub fn normalise_secret(mut secret: Secret) -> Secret {
    if let Some(string_data) = secret.string_data.take() {
        let data = secret.data.get_or_insert_with(BTreeMap::new);
        for (key, value) in string_data {
            data.insert(key, ByteString(value.into_bytes()));
        }
    }
    secret
}

/// The bdb's endpoint addresses (one address family, IPv4 preferred) and port, from `endpoints[].addr`.
pub fn endpoint_addresses(bdb: &Bdb) -> (Option<&'static str>, Vec<String>) {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for endpoint in bdb
        .other
        .get("endpoints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for addr in endpoint.get("addr").and_then(Value::as_array).into_iter().flatten() {
            match addr.as_str().and_then(|text| text.parse::<IpAddr>().ok()) {
                Some(IpAddr::V4(ip)) if !v4.contains(&ip.to_string()) => v4.push(ip.to_string()),
                Some(IpAddr::V6(ip)) if !v6.contains(&ip.to_string()) => v6.push(ip.to_string()),
                _ => {}
            }
        }
    }
    if !v4.is_empty() {
        (Some("IPv4"), v4)
    } else if !v6.is_empty() {
        (Some("IPv6"), v6)
    } else {
        (None, Vec::new())
    }
}

/// One EndpointSlice per Service (same name, namespace, labels and owner), listing the bdb's endpoint addresses on
/// the database port; the endpoints are ready while the database is active.
pub fn build_endpoint_slices(services: &[Service], bdb: &Bdb) -> Vec<EndpointSlice> {
    let (Some(address_type), addresses) = endpoint_addresses(bdb) else {
        return Vec::new();
    };
    let ready = matches!(bdb.status, DatabaseStatus::Active | DatabaseStatus::ActiveChangePending);
    services
        .iter()
        .filter_map(|service| {
            let name = service.metadata.name.clone()?;
            let mut labels = service.metadata.labels.clone().unwrap_or_default();
            labels.insert(SERVICE_NAME_LABEL.to_string(), name.clone());
            labels.insert(MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string());
            Some(EndpointSlice {
                metadata: ObjectMeta {
                    name: Some(name),
                    namespace: service.metadata.namespace.clone(),
                    labels: Some(labels),
                    owner_references: service.metadata.owner_references.clone(),
                    ..Default::default()
                },
                address_type: address_type.to_string(),
                endpoints: vec![Endpoint {
                    addresses: addresses.clone(),
                    conditions: Some(EndpointConditions {
                        ready: Some(ready),
                        serving: Some(ready),
                        terminating: Some(false),
                    }),
                    ..Default::default()
                }],
                ports: Some(vec![EndpointPort {
                    name: Some("redis".to_string()),
                    port: Some(i32::from(bdb.port)),
                    protocol: Some("TCP".to_string()),
                    ..Default::default()
                }]),
            })
        })
        .collect()
}

/// Runs the build stage.
pub fn build(validated: &ValidatedState, references: &References) -> DesiredDatabase {
    let database = &validated.database;
    let cluster = validated.cluster.as_ref();
    let password = validated.password.value();
    let create_body = build_bdb(
        database,
        &RuntimeValues {
            password,
            ..RuntimeValues::default()
        },
    );
    let live = references.bdb.as_ref();
    let update = live
        .map(|bdb| diff_bdb(&build_bdb(database, &RuntimeValues::default()), &bdb.to_value()))
        .unwrap_or_default();
    let alerts = live.and_then(|_| alerts_to_send(build_alert_settings(database), references.alerts.as_ref()));
    let port = live.map(|bdb| bdb.port).filter(|port| *port != 0).or(database.port);

    let password_digest = live
        .zip(password)
        .map(|(bdb, password)| password_digest(&references.cluster_key, bdb.uid, password));
    let live_digest = references
        .secret
        .as_ref()
        .and_then(|secret| secret.metadata.annotations.as_ref())
        .and_then(|annotations| annotations.get(PASSWORD_DIGEST_ANNOTATION))
        .cloned();
    let rotate_password = password_digest.is_some() && password_digest != live_digest;

    // A Secret the user created stays theirs: it gets our keys but no owner reference, so it outlives the REDB.
    let secret_owned = references.secret.as_ref().is_none_or(|secret| {
        let uid = database.uid.as_deref();
        secret
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|owner| Some(owner.uid.as_str()) == uid)
    });
    let secret = build_database_secret(database, cluster, port, password).map(|secret| {
        let mut secret = normalise_secret(secret);
        if !secret_owned {
            secret.metadata.owner_references = None;
        }
        if !rotate_password && let Some(digest) = &password_digest {
            secret
                .metadata
                .annotations
                .get_or_insert_with(BTreeMap::new)
                .insert(PASSWORD_DIGEST_ANNOTATION.to_string(), digest.clone());
        }
        secret
    });

    let (services, endpoint_slices) = match live.filter(|bdb| bdb.port != 0) {
        Some(bdb) => {
            let services = build_database_services(database, cluster, bdb.port);
            let slices = build_endpoint_slices(&services, bdb);
            (services, slices)
        }
        None => (Vec::new(), Vec::new()),
    };
    DesiredDatabase {
        create_body,
        update,
        alerts,
        password_digest,
        rotate_password,
        port,
        secret,
        services,
        endpoint_slices,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bdb(value: Value) -> Bdb {
        serde_json::from_value(value).expect("bdb fixture")
    }

    #[test]
    fn the_digest_depends_on_password_cluster_and_uid_and_is_not_the_password() {
        let digest = password_digest("ns/rec", 1, "hunter2");
        assert_eq!(digest.len(), 64);
        assert!(!digest.contains("hunter2"));
        assert_eq!(digest, password_digest("ns/rec", 1, "hunter2"));
        assert_ne!(digest, password_digest("ns/rec", 2, "hunter2"));
        assert_ne!(digest, password_digest("other/rec", 1, "hunter2"));
        assert_ne!(digest, password_digest("ns/rec", 1, "hunter3"));
    }

    #[test]
    fn alerts_are_sent_only_when_one_differs() {
        let desired = json!({"bdb_size": {"enabled": true, "threshold": "80"}});
        assert_eq!(alerts_to_send(None, None), None);
        assert_eq!(alerts_to_send(Some(desired.clone()), None), Some(desired.clone()));
        let live = json!({"bdb_size": {"enabled": true, "threshold": "80"}, "bdb_high_latency": {"enabled": false}});
        assert_eq!(alerts_to_send(Some(desired.clone()), Some(&live)), None);
        let with_unset = json!({"bdb_size": {"enabled": true, "threshold": "80"}, "bdb_high_latency": null});
        assert_eq!(alerts_to_send(Some(with_unset), Some(&live)), None);
        let changed = json!({"bdb_size": {"enabled": true, "threshold": "90"}});
        assert_eq!(alerts_to_send(Some(desired.clone()), Some(&changed)), Some(desired));
    }

    #[test]
    fn endpoint_slices_follow_the_bdb_endpoints() {
        let service: Service = serde_json::from_value(json!({
            "metadata": {"name": "cache", "namespace": "ns", "labels": {"app.kubernetes.io/managed-by": "redis-gitops"}},
            "spec": {"ports": [{"name": "redis", "port": 6379, "targetPort": 12000}]}
        }))
        .expect("service");
        let live = bdb(json!({
            "uid": 1, "name": "cache", "status": "active", "port": 12000,
            "endpoints": [{"addr": ["127.1.2.3", "not-an-ip"], "port": 12000}, {"addr": ["127.1.2.3"]}]
        }));
        let slices = build_endpoint_slices(std::slice::from_ref(&service), &live);
        assert_eq!(slices.len(), 1);
        let value = serde_json::to_value(&slices[0]).expect("json");
        assert_eq!(value["apiVersion"], json!("discovery.k8s.io/v1"));
        assert_eq!(value["addressType"], json!("IPv4"));
        assert_eq!(value["metadata"]["labels"][SERVICE_NAME_LABEL], json!("cache"));
        assert_eq!(value["metadata"]["labels"][MANAGED_BY_LABEL], json!("redis-gitops"));
        assert_eq!(
            value["endpoints"],
            json!([{"addresses": ["127.1.2.3"], "conditions": {"ready": true, "serving": true, "terminating": false}}])
        );
        assert_eq!(
            value["ports"],
            json!([{"name": "redis", "port": 12000, "protocol": "TCP"}])
        );

        let no_addresses = bdb(json!({"uid": 1, "name": "cache", "status": "pending", "port": 12000}));
        assert!(build_endpoint_slices(&[service], &no_addresses).is_empty());
    }

    #[test]
    fn debug_output_never_shows_the_password_of_a_create_body_or_secret() {
        let mut desired = DesiredDatabase::default();
        desired
            .create_body
            .insert("authentication_redis_pass".into(), json!("hunter2"));
        desired.secret = Some(normalise_secret(Secret {
            metadata: ObjectMeta {
                name: Some("redb-a".into()),
                ..Default::default()
            },
            string_data: Some([("password".to_string(), "hunter2".to_string())].into()),
            ..Default::default()
        }));
        let debug = format!("{desired:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(!debug.contains("[104, 117"), "{debug}");
        assert!(
            debug.contains("authentication_redis_pass") && debug.contains("redb-a"),
            "{debug}"
        );
    }

    #[test]
    fn secrets_are_stored_as_data() {
        let secret = Secret {
            string_data: Some([("password".to_string(), "p".to_string())].into()),
            ..Default::default()
        };
        let secret = normalise_secret(secret);
        assert!(secret.string_data.is_none());
        assert_eq!(secret.data.expect("data")["password"].0, b"p");
    }
}
