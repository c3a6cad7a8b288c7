//! Build stage (pure, no client): the validated database and what the dereference stage found → everything the
//! apply stage does: the one REST mutation of this pass ([`decide_mutation`]: create, set the password, update
//! which fields, upgrade, set the alerts, or nothing and why), and the finished children from `desired::database`
//! (the credentials Secret, the Services and their EndpointSlices).
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
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{Map, Value};
use sha2::Sha256;

use super::dereference::References;
use super::validate::ValidatedState;
use super::versions::{RedisVersions, is_channel};
pub use crate::desired::database::PASSWORD_DIGEST_ANNOTATION;
use crate::desired::database::{
    DatabaseEndpoints, RuntimeValues, build_alert_settings, build_applied_database_secret, build_bdb,
    build_database_services, build_endpoint_slices, diff_bdb, with_ca_certificate,
};
use crate::enterprise::states::DatabaseStatus;
use crate::enterprise::types::Bdb;
use crate::model::ValidatedDatabase;

/// Why no REST mutation is sent in this pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// The bdb is active and as the spec says.
    Ready,
    /// The bdb exists but is not active (its status says what it is doing); changes wait.
    Pending(DatabaseStatus),
    /// The cluster could not create the database (`creation-failed`).
    CreationFailed,
    /// Fields that cannot change after creation differ (bdb field names); other changes wait.
    Immutable(Vec<String>),
}

/// The one REST mutation of a pass: each makes the bdb busy until its action ends, so the next one waits for the
/// next pass. `Debug` leaves out the create body and the password.
#[derive(Clone, PartialEq)]
pub enum Mutation {
    /// `POST /v1/bdbs` with `body` (password included). `replaces`: the uid the status recorded, gone from the
    /// cluster (the new database is empty).
    Create {
        /// The create body.
        body: Map<String, Value>,
        /// The recorded uid that is gone, when this is a re-creation.
        replaces: Option<u64>,
    },
    /// `PUT /v1/bdbs/{uid}/passwords` with the Secret's password; on success the Secret gets `digest`.
    SetPassword {
        /// The bdb.
        uid: u64,
        /// The password to set.
        password: String,
        /// Its digest for this bdb (see the module doc).
        digest: String,
    },
    /// `PUT /v1/bdbs/{uid}` with exactly the fields that differ.
    Update {
        /// The bdb.
        uid: u64,
        /// The fields to change.
        changes: Map<String, Value>,
    },
    /// `POST /v1/bdbs/{uid}/upgrade` to a Redis version.
    Upgrade {
        /// The bdb.
        uid: u64,
        /// The version the spec asks for.
        version: String,
    },
    /// `POST /v1/bdbs/alerts/{uid}` with the alert settings the spec sets.
    SetAlerts {
        /// The bdb.
        uid: u64,
        /// The settings to send.
        alerts: Value,
    },
    /// Nothing to send, and why.
    Nothing(Standing),
}

impl std::fmt::Debug for Mutation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Create { body, replaces } => f
                .debug_struct("Create")
                .field("body", &body.keys().collect::<Vec<_>>())
                .field("replaces", replaces)
                .finish(),
            Self::SetPassword { uid, .. } => f.debug_struct("SetPassword").field("uid", uid).finish_non_exhaustive(),
            Self::Update { uid, changes } => f
                .debug_struct("Update")
                .field("uid", uid)
                .field("changes", &changes.keys().collect::<Vec<_>>())
                .finish(),
            Self::Upgrade { uid, version } => f
                .debug_struct("Upgrade")
                .field("uid", uid)
                .field("version", version)
                .finish(),
            Self::SetAlerts { uid, .. } => f.debug_struct("SetAlerts").field("uid", uid).finish_non_exhaustive(),
            Self::Nothing(standing) => f.debug_tuple("Nothing").field(standing).finish(),
        }
    }
}

/// Everything the apply stage does for one database. `Debug` leaves out the create body and the Secret (both hold
/// the password).
pub struct DesiredDatabase {
    /// The REST mutation of this pass.
    pub mutation: Mutation,
    /// The credentials Secret as applied when the mutation changes no password (`None` with `defaultUser: false`).
    pub secret: Option<Secret>,
    /// The Services (once the bdb has a port).
    pub services: Vec<Service>,
    /// One EndpointSlice per Service, pointing at the bdb's endpoints.
    pub endpoint_slices: Vec<EndpointSlice>,
    /// Whether [`Self::services`] and [`Self::endpoint_slices`] are every one this database should have (the bdb's
    /// port is known): only then are other live ones of this REDB deleted as orphans.
    pub children_complete: bool,
}

impl std::fmt::Debug for DesiredDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DesiredDatabase")
            .field("mutation", &self.mutation)
            .field("secret", &self.secret.as_ref().map(|s| s.metadata.name.clone()))
            .field("services", &self.services.len())
            .field("endpoint_slices", &self.endpoint_slices.len())
            .field("children_complete", &self.children_complete)
            .finish()
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
/// differs from the live ones. A live alert is a full alert object (`enabled`, `threshold`, plus the read-only
/// `state`, `severity`, `change_time`, `change_value`), so only the fields the spec sets are compared
/// ([`alert_matches`]).
pub fn alerts_to_send(desired: Option<Value>, live: Option<&Value>) -> Option<Value> {
    let fields: Map<String, Value> = desired?
        .as_object()?
        .iter()
        .filter(|(_, setting)| !setting.is_null())
        .map(|(name, setting)| (name.clone(), setting.clone()))
        .collect();
    let differs = fields
        .iter()
        .any(|(name, setting)| !alert_matches(setting, live.and_then(|live| live.get(name))));
    differs.then_some(Value::Object(fields))
}

/// Whether a live alert object has every field the desired setting sets, with the same value. A threshold is a
/// string in the documented object, but a cluster may report a number: `"80"` and `80` match.
pub fn alert_matches(desired: &Value, live: Option<&Value>) -> bool {
    let (Some(desired), Some(live)) = (desired.as_object(), live.and_then(Value::as_object)) else {
        return false;
    };
    desired
        .iter()
        .filter(|(_, value)| !value.is_null())
        .all(|(field, wanted)| match (live.get(field), wanted) {
            (Some(current), wanted) if current == wanted => true,
            (Some(Value::Number(current)), Value::String(wanted)) => {
                wanted.trim().parse::<f64>().ok() == current.as_f64()
            }
            _ => false,
        })
}

/// The bdb's endpoints (one address family, IPv4 preferred, from `endpoints[].addr`) on its port; `None` without
/// addresses. They are ready while the database is active.
pub fn database_endpoints(bdb: &Bdb) -> Option<DatabaseEndpoints> {
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
    let (address_type, addresses) = if !v4.is_empty() {
        ("IPv4", v4)
    } else if !v6.is_empty() {
        ("IPv6", v6)
    } else {
        return None;
    };
    Some(DatabaseEndpoints {
        address_type,
        addresses,
        port: bdb.port,
        ready: matches!(bdb.status, DatabaseStatus::Active | DatabaseStatus::ActiveChangePending),
    })
}

/// What the mutation is decided from, as read by the dereference stage (the part of [`References`] that is data).
#[derive(Clone, Copy)]
pub struct Live<'a> {
    /// `<namespace>/<name>` of the REC.
    pub cluster_key: &'a str,
    /// The live bdb this REDB owns.
    pub bdb: Option<&'a Bdb>,
    /// The database credentials Secret.
    pub secret: Option<&'a Secret>,
    /// The live alert settings (read only when the spec sets alerts).
    pub alerts: Option<&'a Value>,
    /// The credential fields of the backup location, from its Secret.
    pub backup_credentials: &'a BTreeMap<String, String>,
    /// What the cluster offers, to resolve a `redisVersion` channel (`None`: not read, or no channel).
    pub redis_versions: Option<&'a RedisVersions>,
}

impl<'a> Live<'a> {
    /// The live state in `references`.
    pub fn of(references: &'a References) -> Self {
        Self {
            cluster_key: &references.cluster_key,
            bdb: references.bdb.as_ref(),
            secret: references.secret.as_ref(),
            alerts: references.alerts.as_ref(),
            backup_credentials: &references.backup_credentials,
            redis_versions: references.redis_versions.as_ref(),
        }
    }
}

/// The digest the Secret's password has for the live bdb, when both exist.
fn current_digest(validated: &ValidatedState, live: &Live<'_>) -> Option<String> {
    let bdb = live.bdb?;
    let password = validated.password.value()?;
    Some(password_digest(live.cluster_key, bdb.uid, password))
}

/// The digest the live Secret carries (the password the cluster last accepted).
fn recorded_digest<'a>(live: &Live<'a>) -> Option<&'a str> {
    live.secret?
        .metadata
        .annotations
        .as_ref()?
        .get(PASSWORD_DIGEST_ANNOTATION)
        .map(String::as_str)
}

/// Decides the one REST mutation of this pass (pure): a missing bdb is created (`recorded_uid`: the uid the status
/// records, gone when the bdb is missing); a bdb that is not active waits; then, in order, a new password, a
/// refused immutable change, the fields that differ, a version upgrade, the alert settings; else nothing.
pub fn decide_mutation(validated: &ValidatedState, state: &Live<'_>, recorded_uid: Option<u64>) -> Mutation {
    let resolved = resolve_redis_version(&validated.database, state);
    let database = resolved.as_ref().unwrap_or(&validated.database);
    let password = validated.password.value();
    let Some(live) = state.bdb else {
        return Mutation::Create {
            body: build_bdb(
                database,
                &RuntimeValues {
                    password,
                    backup_credentials: state.backup_credentials.clone(),
                    ..RuntimeValues::default()
                },
            ),
            replaces: recorded_uid,
        };
    };
    if live.status == DatabaseStatus::CreationFailed {
        return Mutation::Nothing(Standing::CreationFailed);
    }
    if live.status != DatabaseStatus::Active {
        return Mutation::Nothing(Standing::Pending(live.status.clone()));
    }
    let uid = live.uid;
    if let (Some(digest), Some(password)) = (current_digest(validated, state), password)
        && recorded_digest(state) != Some(digest.as_str())
    {
        return Mutation::SetPassword {
            uid,
            password: password.to_string(),
            digest,
        };
    }
    // The credentials go along when the location changes (a location without them is refused).
    let runtime = RuntimeValues {
        backup_credentials: state.backup_credentials.clone(),
        ..RuntimeValues::default()
    };
    let update = diff_bdb(&build_bdb(database, &runtime), &live.to_value());
    if !update.immutable.is_empty() {
        return Mutation::Nothing(Standing::Immutable(update.immutable));
    }
    if !update.changes.is_empty() {
        return Mutation::Update {
            uid,
            changes: update.changes,
        };
    }
    if let Some(version) = update.upgrade_to {
        return Mutation::Upgrade { uid, version };
    }
    match alerts_to_send(build_alert_settings(database), state.alerts) {
        Some(alerts) => Mutation::SetAlerts { uid, alerts },
        None => Mutation::Nothing(Standing::Ready),
    }
}

/// The database with a `redisVersion` channel (`major`, `latest`) replaced by the version it stands for on this
/// cluster (or left out, so the cluster's default applies, when the cluster does not say); `None` without a
/// channel.
fn resolve_redis_version(database: &ValidatedDatabase, state: &Live<'_>) -> Option<ValidatedDatabase> {
    let channel = database
        .redis_version
        .as_deref()
        .filter(|version| is_channel(version))?;
    let live = state
        .bdb
        .and_then(|bdb| bdb.other.get("redis_version"))
        .and_then(Value::as_str);
    let mut resolved = database.clone();
    resolved.redis_version = state
        .redis_versions
        .and_then(|versions| versions.resolve(channel, live));
    Some(resolved)
}

/// Whether the live database Secret is this REDB's (no Secret yet, or one it owns): a Secret the user created stays
/// theirs, with our keys but no owner reference, so it outlives the REDB.
fn secret_owned(validated: &ValidatedState, live: &Live<'_>) -> bool {
    live.secret.is_none_or(|secret| {
        let uid = validated.database.uid.as_deref();
        secret
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|owner| Some(owner.uid.as_str()) == uid)
    })
}

/// Runs the build stage: the mutation and the finished children.
pub fn build(validated: &ValidatedState, references: &References) -> DesiredDatabase {
    let database = &validated.database;
    let cluster = validated.cluster.as_ref();
    let state = Live::of(references);
    let mutation = decide_mutation(validated, &state, references.recorded_uid);
    let live = state.bdb;
    let port = live.map(|bdb| bdb.port).filter(|port| *port != 0).or(database.port);
    // A password not yet applied gets its digest only once the cluster accepted it (the apply stage adds it).
    let digest = current_digest(validated, &state).filter(|digest| recorded_digest(&state) == Some(digest));
    let secret = build_applied_database_secret(
        database,
        cluster,
        port,
        validated.password.value(),
        secret_owned(validated, &state),
        digest.as_deref(),
    )
    .map(|secret| with_ca_certificate(secret, references.proxy_certificate.as_deref()));
    let (services, endpoint_slices, children_complete) = match live.filter(|bdb| bdb.port != 0) {
        Some(bdb) => {
            let services = build_database_services(database, cluster, bdb.port);
            let slices = database_endpoints(bdb)
                .map(|endpoints| build_endpoint_slices(&services, &endpoints))
                .unwrap_or_default();
            (services, slices, true)
        }
        None => (Vec::new(), Vec::new(), false),
    };
    DesiredDatabase {
        mutation,
        secret,
        services,
        endpoint_slices,
        children_complete,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::RedisEnterpriseDatabase;
    use crate::controllers::database::validate::Password;
    use crate::desired::database::{MANAGED_BY_LABEL, SERVICE_NAME_LABEL};
    use crate::manifests::validate::validate_database;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use serde_json::json;

    fn bdb(value: Value) -> Bdb {
        serde_json::from_value(value).expect("bdb fixture")
    }

    fn validated(spec: &str, password: Password) -> ValidatedState {
        let yaml = format!(
            "apiVersion: app.redislabs.com/v1alpha1\nkind: RedisEnterpriseDatabase\nmetadata: {{name: cache, namespace: ns, uid: u1}}\nspec: {spec}\n"
        );
        let object: RedisEnterpriseDatabase = serde_saphyr::from_str(&yaml).expect("fixture parses");
        ValidatedState {
            database: validate_database(&object).expect("fixture is valid").0,
            cluster: None,
            password,
            warnings: Vec::new(),
            creation_token: None,
        }
    }

    /// A live bdb exactly as `validated` describes it (with uid 7 and port 12000), in `status`.
    fn live_bdb(validated: &ValidatedState, status: &str) -> Bdb {
        let mut value = Value::Object(build_bdb(&validated.database, &RuntimeValues::default()));
        value["uid"] = json!(7);
        value["status"] = json!(status);
        value["port"] = json!(12000);
        bdb(value)
    }

    fn secret_with_digest(digest: Option<String>) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some("redb-cache".into()),
                annotations: digest.map(|d| [(PASSWORD_DIGEST_ANNOTATION.to_string(), d)].into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    static NO_CREDENTIALS: BTreeMap<String, String> = BTreeMap::new();

    fn live<'a>(bdb: Option<&'a Bdb>, secret: Option<&'a Secret>, alerts: Option<&'a Value>) -> Live<'a> {
        Live {
            cluster_key: "ns/rec",
            bdb,
            secret,
            alerts,
            backup_credentials: &NO_CREDENTIALS,
            redis_versions: None,
        }
    }

    #[test]
    fn a_missing_bdb_is_created_with_the_password_and_a_gone_uid_is_named() {
        let state = validated("{memorySize: 200MB}", Password::Generated("hunter2".into()));
        let Mutation::Create { body, replaces } = decide_mutation(&state, &live(None, None, None), Some(3)) else {
            panic!("expected a create");
        };
        assert_eq!(body["memory_size"], json!(209_715_200u64));
        assert_eq!(body["authentication_redis_pass"], json!("hunter2"));
        assert_eq!(replaces, Some(3));
        let debug = format!("{:?}", decide_mutation(&state, &live(None, None, None), None));
        assert!(!debug.contains("hunter2") && debug.contains("memory_size"), "{debug}");
    }

    #[test]
    fn a_bdb_that_is_not_active_gets_no_mutation() {
        let state = validated("{memorySize: 200MB}", Password::FromSecret("p".into()));
        let pending = live_bdb(&state, "pending");
        assert_eq!(
            decide_mutation(&state, &live(Some(&pending), None, None), None),
            Mutation::Nothing(Standing::Pending(DatabaseStatus::Pending))
        );
        let failed = live_bdb(&state, "creation-failed");
        assert_eq!(
            decide_mutation(&state, &live(Some(&failed), None, None), None),
            Mutation::Nothing(Standing::CreationFailed)
        );
    }

    #[test]
    fn a_password_the_cluster_has_not_accepted_goes_first_then_the_fields_that_differ() {
        let state = validated("{memorySize: 200MB}", Password::FromSecret("p".into()));
        let mut active = live_bdb(&state, "active");
        active.other.insert("memory_size".into(), json!(104_857_600u64));
        let digest = password_digest("ns/rec", 7, "p");
        let unapplied = secret_with_digest(None);
        assert_eq!(
            decide_mutation(&state, &live(Some(&active), Some(&unapplied), None), None),
            Mutation::SetPassword {
                uid: 7,
                password: "p".into(),
                digest: digest.clone()
            }
        );
        let applied = secret_with_digest(Some(digest));
        assert_eq!(
            decide_mutation(&state, &live(Some(&active), Some(&applied), None), None),
            Mutation::Update {
                uid: 7,
                changes: json!({"memory_size": 209_715_200u64})
                    .as_object()
                    .cloned()
                    .expect("object")
            }
        );
    }

    #[test]
    fn immutable_fields_block_every_other_change_and_a_bdb_as_specified_is_ready() {
        let state = validated("{memorySize: 200MB, databasePort: 12001}", Password::None);
        let mut active = live_bdb(&state, "active");
        assert_eq!(
            decide_mutation(&state, &live(Some(&active), None, None), None),
            Mutation::Nothing(Standing::Immutable(vec!["port".into()]))
        );
        active.port = 12001;
        active.other.remove("port");
        assert_eq!(
            decide_mutation(&state, &live(Some(&active), None, None), None),
            Mutation::Nothing(Standing::Ready)
        );
    }

    #[test]
    fn upgrades_and_alerts_come_last() {
        let state = validated(
            "{redisVersion: \"8.0\", alertSettings: {bdb_size: {enabled: true, threshold: \"80\"}}}",
            Password::None,
        );
        let mut active = live_bdb(&state, "active");
        active.other.insert("redis_version".into(), json!("7.4"));
        assert_eq!(
            decide_mutation(&state, &live(Some(&active), None, None), None),
            Mutation::Upgrade {
                uid: 7,
                version: "8.0".into()
            }
        );
        active.other.insert("redis_version".into(), json!("8.0.2"));
        let Mutation::SetAlerts { uid: 7, alerts } = decide_mutation(&state, &live(Some(&active), None, None), None)
        else {
            panic!("expected the alerts");
        };
        assert_eq!(alerts["bdb_size"]["threshold"], json!("80"));
        let same = alerts.clone();
        assert_eq!(
            decide_mutation(&state, &live(Some(&active), None, Some(&same)), None),
            Mutation::Nothing(Standing::Ready)
        );
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
    fn backup_credentials_go_out_at_creation_and_with_a_changed_location_only() {
        let state = validated(
            "{backup: {interval: 3600, s3: {awsSecretName: keys, bucketName: b}}}",
            Password::FromSecret("p".into()),
        );
        let credentials = BTreeMap::from([
            ("access_key_id".to_string(), "AKIA-ID".to_string()),
            ("secret_access_key".to_string(), "s3-secret".to_string()),
        ]);
        let with = |bdb: Option<&'static Bdb>, secret: Option<&'static Secret>| Live {
            backup_credentials: Box::leak(Box::new(credentials.clone())),
            ..live(bdb, secret, None)
        };
        let Mutation::Create { body, .. } = decide_mutation(&state, &with(None, None), None) else {
            panic!("expected a create");
        };
        assert_eq!(body["backup"], json!(true));
        assert_eq!(body["backup_interval"], json!(3600));
        assert_eq!(
            body["backup_location"],
            json!({"type": "s3", "bucket_name": "b", "access_key_id": "AKIA-ID", "secret_access_key": "s3-secret"})
        );
        let debug = format!("{:?}", decide_mutation(&state, &with(None, None), None));
        assert!(!debug.contains("s3-secret") && !debug.contains("AKIA-ID"), "{debug}");

        // The live location does not show the keys: the same bucket is no change.
        let mut active = live_bdb(&state, "active");
        active
            .other
            .insert("backup_location".into(), json!({"type": "s3", "bucket_name": "b"}));
        let active: &'static Bdb = Box::leak(Box::new(active));
        let digest = password_digest("ns/rec", 7, "p");
        let secret: &'static Secret = Box::leak(Box::new(secret_with_digest(Some(digest))));
        assert_eq!(
            decide_mutation(&state, &with(Some(active), Some(secret)), None),
            Mutation::Nothing(Standing::Ready)
        );
        let mut moved = active.clone();
        moved
            .other
            .insert("backup_location".into(), json!({"type": "s3", "bucket_name": "old"}));
        let moved: &'static Bdb = Box::leak(Box::new(moved));
        let Mutation::Update { changes, .. } = decide_mutation(&state, &with(Some(moved), Some(secret)), None) else {
            panic!("expected an update");
        };
        assert_eq!(changes["backup_location"]["secret_access_key"], json!("s3-secret"));
    }

    #[test]
    fn a_redis_version_channel_is_sent_as_the_version_it_stands_for() {
        let versions = RedisVersions {
            default: Some("7.4".into()),
            supported: vec!["7.2".into(), "7.4".into(), "8.2".into()],
        };
        let state = validated("{redisVersion: latest}", Password::FromSecret("p".into()));
        let with_versions = Live {
            redis_versions: Some(&versions),
            ..live(None, None, None)
        };
        let Mutation::Create { body, .. } = decide_mutation(&state, &with_versions, None) else {
            panic!("expected a create");
        };
        assert_eq!(body["redis_version"], json!("8.2"));
        let Mutation::Create { body, .. } = decide_mutation(&state, &live(None, None, None), None) else {
            panic!("expected a create");
        };
        assert!(
            body.get("redis_version").is_none(),
            "unknown: the cluster's default applies"
        );

        let mut active = live_bdb(&state, "active");
        active.other.insert("redis_version".into(), json!("7.4"));
        let secret = secret_with_digest(Some(password_digest("ns/rec", 7, "p")));
        let state_live = Live {
            redis_versions: Some(&versions),
            ..live(Some(&active), Some(&secret), None)
        };
        assert_eq!(
            decide_mutation(&state, &state_live, None),
            Mutation::Upgrade {
                uid: 7,
                version: "8.2".into()
            }
        );
        let major = validated("{redisVersion: major}", Password::FromSecret("p".into()));
        assert_eq!(
            decide_mutation(&major, &state_live, None),
            Mutation::Nothing(Standing::Ready),
            "7.4 is the default"
        );
    }

    #[test]
    fn full_live_alert_objects_match_on_the_fields_the_spec_sets() {
        let desired = json!({"bdb_size": {"enabled": true, "threshold": "80"}, "bdb_high_latency": {"enabled": false}});
        // What a cluster answers: the documented alert object, with the read-only state fields.
        let live = json!({
            "bdb_size": {"enabled": true, "threshold": "80", "state": false, "severity": "WARNING",
                         "change_time": "2026-12-01T10:00:00Z", "change_value": {}},
            "bdb_high_latency": {"enabled": false, "threshold": "10000", "state": false, "severity": "WARNING"},
            "bdb_low_throughput": {"enabled": false, "state": false, "severity": "WARNING"}
        });
        assert_eq!(alerts_to_send(Some(desired.clone()), Some(&live)), None);
        let numeric = json!({"bdb_size": {"enabled": true, "threshold": 80}, "bdb_high_latency": {"enabled": false}});
        assert_eq!(alerts_to_send(Some(desired.clone()), Some(&numeric)), None);
        let triggered_and_changed = json!({
            "bdb_size": {"enabled": false, "threshold": "80", "state": true, "severity": "WARNING"},
            "bdb_high_latency": {"enabled": false}
        });
        assert_eq!(
            alerts_to_send(Some(desired.clone()), Some(&triggered_and_changed)),
            Some(desired)
        );
        assert!(!alert_matches(&json!({"enabled": true}), Some(&json!("on"))));
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
        let endpoints = database_endpoints(&live).expect("addresses");
        let slices = build_endpoint_slices(std::slice::from_ref(&service), &endpoints);
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
        assert!(database_endpoints(&no_addresses).is_none());
    }

    #[test]
    fn debug_output_never_shows_the_password_of_a_create_body_or_secret() {
        let state = validated("{}", Password::Generated("hunter2".into()));
        let desired = DesiredDatabase {
            mutation: decide_mutation(&state, &live(None, None, None), None),
            secret: build_applied_database_secret(&state.database, None, None, Some("hunter2"), true, None),
            services: Vec::new(),
            endpoint_slices: Vec::new(),
            children_complete: false,
        };
        let debug = format!("{desired:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(!debug.contains("[104, 117"), "{debug}");
        assert!(
            debug.contains("authentication_redis_pass") && debug.contains("redb-cache"),
            "{debug}"
        );
    }
}
