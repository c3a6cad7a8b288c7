//! Apply stage: the writes. A generated password goes into the Secret before any database uses it; then at most
//! one REST mutation per reconcile (create, password, update, upgrade or alerts: each makes the bdb busy until its
//! action ends, so the next one waits for the next pass); then server-side apply of the Secret, Services and
//! EndpointSlices, each skipped when the live object already holds every desired field.

use std::fmt::Debug;

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, Patch};
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::build::{DesiredDatabase, PASSWORD_DIGEST_ANNOTATION, password_digest};
use super::dereference::{Ownership, References, bdb_summary, recorded_uid};
use super::validate::{Password, ValidatedState};
use super::{DatabaseContext, DatabaseError, apply_params, status};
use crate::api::{RedisEnterpriseDatabase, RedisEnterpriseDatabaseStatus};
use crate::enterprise::EnterpriseError;
use crate::enterprise::states::DatabaseStatus;
use crate::enterprise::types::Bdb;

/// Where the database stands after the apply stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The bdb was created in this pass; its action runs.
    Created,
    /// The bdb exists but is not active (its status says what it is doing).
    Pending(DatabaseStatus),
    /// A change was sent in this pass; its action runs.
    Changed(Change),
    /// The bdb is active and as the spec says.
    Ready,
    /// Fields that cannot change after creation differ; nothing was written to the cluster.
    Immutable(Vec<String>),
    /// The cluster rejected a request (4xx): the spec or the cluster must change.
    Rejected {
        /// What was asked, for example `create database cache`.
        request: String,
        /// The cluster's `error_code`.
        error_code: String,
        /// The whole error (endpoint, HTTP status, code, description).
        message: String,
    },
    /// The cluster could not create the database (`creation-failed`).
    CreationFailed,
}

/// The one REST change a pass sent to an existing database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The default user's password (`PUT /v1/bdbs/{uid}/passwords`).
    Password,
    /// Fields of the bdb (`PUT /v1/bdbs/{uid}`).
    Update,
    /// The Redis version (`POST /v1/bdbs/{uid}/upgrade`).
    Upgrade,
    /// The alert settings (`POST /v1/bdbs/alerts/{uid}`).
    Alerts,
}

impl std::fmt::Display for Change {
    /// The word in "applying the … change", as users read it in the conditions.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Password => "password",
            Self::Update => "update",
            Self::Upgrade => "upgrade",
            Self::Alerts => "alerts",
        })
    }
}

impl Progress {
    /// Whether nothing is under way, so the next look can wait for the periodic resync.
    pub fn is_settled(&self) -> bool {
        matches!(
            self,
            Self::Ready | Self::Immutable(_) | Self::Rejected { .. } | Self::CreationFailed
        )
    }
}

/// What the apply stage did and saw. `Debug` shows only the bdb's uid, name and status (the REST API returns the
/// database password among its fields).
pub struct Applied {
    /// The bdb as last seen (the create or update answer, else the live one).
    pub bdb: Option<Bdb>,
    /// Where the database stands.
    pub progress: Progress,
    /// An action started in this pass (`action_uid`).
    pub started_action: Option<String>,
    /// The status already written in this pass (right after a create), the base of the final comparison.
    pub recorded_status: Option<RedisEnterpriseDatabaseStatus>,
}

impl Debug for Applied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Applied")
            .field("bdb", &self.bdb.as_ref().map(bdb_summary))
            .field("progress", &self.progress)
            .field("started_action", &self.started_action)
            .finish_non_exhaustive()
    }
}

/// Whether `live` holds every field of `desired` with the same value (objects by key, lists element by element).
pub fn contains(live: &Value, desired: &Value) -> bool {
    match (live, desired) {
        (_, Value::Null) => true,
        (Value::Object(live), Value::Object(desired)) => desired.iter().all(|(key, value)| {
            live.get(key)
                .map_or(value.is_null(), |current| contains(current, value))
        }),
        (Value::Array(live), Value::Array(desired)) => {
            live.len() == desired.len() && live.iter().zip(desired).all(|(l, d)| contains(l, d))
        }
        (live, desired) => live == desired,
    }
}

fn kind_and_name<K: Resource<DynamicType = ()>>(object: &K) -> String {
    format!(
        "{} {}/{}",
        K::kind(&()),
        object.meta().namespace.as_deref().unwrap_or_default(),
        object.meta().name.as_deref().unwrap_or_default()
    )
}

/// Server-side applies `desired` unless `live` already holds all of it; returns the object as it now is. With
/// `precondition`, the apply carries the live resourceVersion, so a concurrent change (a user editing the Secret)
/// fails with a conflict instead of being overwritten.
pub async fn apply_object<K>(
    api: &Api<K>,
    mut desired: K,
    live: Option<K>,
    precondition: bool,
) -> Result<K, DatabaseError>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
{
    let what = kind_and_name(&desired);
    let desired_value = serde_json::to_value(&desired).unwrap_or(Value::Null);
    if let Some(live) = live {
        let live_value = serde_json::to_value(&live).unwrap_or(Value::Null);
        if contains(&live_value, &desired_value) {
            return Ok(live);
        }
        if precondition {
            desired.meta_mut().resource_version = live.meta().resource_version.clone();
        }
    }
    let name = desired.meta().name.clone().unwrap_or_default();
    api.patch(&name, &apply_params(), &Patch::Apply(&desired))
        .await
        .map_err(|source| DatabaseError::Kubernetes {
            action: format!("apply {what}"),
            source: Box::new(source),
        })
}

fn set_digest(secret: &mut Option<Secret>, digest: Option<String>) {
    if let (Some(secret), Some(digest)) = (secret.as_mut(), digest) {
        secret
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(PASSWORD_DIGEST_ANNOTATION.to_string(), digest);
    }
}

/// A REST failure: transient ones are returned for a retry with backoff, rejections become [`Progress::Rejected`].
fn rejected_or_retry(error: EnterpriseError, request: String, cluster: &str) -> Result<Progress, DatabaseError> {
    if error.is_transient() {
        return Err(DatabaseError::Rest {
            action: request,
            cluster: cluster.to_string(),
            source: Box::new(error),
        });
    }
    Ok(Progress::Rejected {
        error_code: error.error_code().unwrap_or(error.category()).to_string(),
        message: format!("the cluster rejected the request to {request}: {error}"),
        request,
    })
}

/// Runs the apply stage.
pub async fn apply(
    redb: &RedisEnterpriseDatabase,
    validated: &ValidatedState,
    desired: DesiredDatabase,
    references: &References,
    context: &DatabaseContext,
) -> Result<Applied, DatabaseError> {
    let client = &context.shared.client;
    let namespace = redb.namespace().unwrap_or_else(|| "default".to_string());
    let name = redb.name_any();
    let cluster = references.cluster_key.as_str();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let DesiredDatabase {
        create_body,
        update,
        alerts,
        password_digest: digest,
        rotate_password,
        port: _,
        mut secret,
        services,
        endpoint_slices,
    } = desired;

    // A generated password is stored before the cluster sees it: a restart after the create must find it.
    let mut live_secret = references.secret.clone();
    if let (Password::Generated(_), Some(first)) = (&validated.password, &secret) {
        live_secret = Some(apply_object(&secrets, first.clone(), live_secret, true).await?);
    }

    let rest = &references.rest;
    let mut bdb = references.bdb.clone();
    let mut started_action = None;
    let mut recorded_status = None;
    if let Some(live) = &references.bdb {
        let note = match references.ownership {
            Ownership::Adopted => Some((
                "DatabaseAdopted",
                format!(
                    "adopted database {name} (uid {}) on cluster {cluster}, as the annotation {} asks",
                    live.uid,
                    crate::api::keys::ADOPT_DATABASE
                ),
            )),
            Ownership::Resumed => Some((
                "DatabaseCreationResumed",
                format!(
                    "database {name} (uid {}) on cluster {cluster} was created by this REDB before the agent stopped; \
                     recorded it",
                    live.uid
                ),
            )),
            Ownership::Recorded | Ownership::None => None,
        };
        if let Some((reason, note)) = note {
            context.publish(redb, EventType::Normal, reason, "Adopt", &note).await;
        }
    }
    let progress = match &references.bdb {
        None => {
            if let Some(gone) = recorded_uid(redb) {
                context
                    .publish(
                        redb,
                        EventType::Warning,
                        "DatabaseRecreated",
                        "Create",
                        &format!(
                            "database {name} (uid {gone}) recorded in the status is gone from cluster {cluster}; \
                             creating a new, empty database"
                        ),
                    )
                    .await;
            }
            // The intent goes into the status before the request: an agent that stops before recording the
            // uid recognises this database afterwards instead of creating a second one or leaving it orphaned.
            let intent = status::record_intent(redb, references, context).await?;
            match rest.create_database(&create_body).await {
                Ok(created) => {
                    started_action = created.action_uid.clone();
                    recorded_status = Some(status::record_creation(redb, intent, &created, references, context).await?);
                    if let Some(password) = validated.password.value() {
                        set_digest(&mut secret, Some(password_digest(cluster, created.uid, password)));
                    }
                    context
                        .publish(
                            redb,
                            EventType::Normal,
                            "DatabaseCreated",
                            "Create",
                            &format!("created database {name} (uid {}) on cluster {cluster}", created.uid),
                        )
                        .await;
                    bdb = Some(created);
                    Progress::Created
                }
                Err(error) => {
                    let progress = rejected_or_retry(error, format!("create database {name}"), cluster)?;
                    // A refused create made nothing: the marker goes, so a database someone else creates under
                    // this name later is never taken for ours.
                    recorded_status = Some(intent);
                    progress
                }
            }
        }
        Some(live) if live.status == DatabaseStatus::CreationFailed => Progress::CreationFailed,
        Some(live) if live.status != DatabaseStatus::Active => Progress::Pending(live.status.clone()),
        Some(live) => {
            let uid = live.uid;
            if rotate_password && let Some(password) = validated.password.value() {
                match rest.set_database_password(uid, password).await {
                    Ok(()) => {
                        set_digest(&mut secret, digest);
                        context
                            .publish(
                                redb,
                                EventType::Normal,
                                "PasswordApplied",
                                "UpdatePassword",
                                &format!(
                                    "applied the password of Secret {namespace}/{} to database {name}",
                                    validated.database.secret_name
                                ),
                            )
                            .await;
                        Progress::Changed(Change::Password)
                    }
                    Err(error) => rejected_or_retry(error, format!("set the password of database {name}"), cluster)?,
                }
            } else if !update.immutable.is_empty() {
                Progress::Immutable(update.immutable.clone())
            } else if !update.changes.is_empty() {
                let fields: Vec<&str> = update.changes.keys().map(String::as_str).collect();
                match rest.update_database(uid, &update.changes).await {
                    Ok(updated) => {
                        started_action = updated.action_uid.clone();
                        context
                            .publish(
                                redb,
                                EventType::Normal,
                                "DatabaseUpdated",
                                "Update",
                                &format!("changed {} of database {name}", fields.join(", ")),
                            )
                            .await;
                        bdb = Some(updated);
                        Progress::Changed(Change::Update)
                    }
                    Err(error) => rejected_or_retry(
                        error,
                        format!("update database {name} ({})", fields.join(", ")),
                        cluster,
                    )?,
                }
            } else if let Some(version) = &update.upgrade_to {
                match rest.upgrade_database(uid, version).await {
                    Ok(answer) => {
                        started_action = answer.get("action_uid").and_then(Value::as_str).map(str::to_string);
                        context
                            .publish(
                                redb,
                                EventType::Normal,
                                "DatabaseUpgrading",
                                "Upgrade",
                                &format!("upgrading database {name} to Redis {version}"),
                            )
                            .await;
                        Progress::Changed(Change::Upgrade)
                    }
                    Err(error) => rejected_or_retry(error, format!("upgrade database {name} to {version}"), cluster)?,
                }
            } else if let Some(alerts) = &alerts {
                match rest.set_database_alerts(uid, alerts).await {
                    Ok(()) => Progress::Changed(Change::Alerts),
                    Err(error) => rejected_or_retry(error, format!("set the alerts of database {name}"), cluster)?,
                }
            } else {
                Progress::Ready
            }
        }
    };

    // The children, in the applier's order: Secret → Services → EndpointSlices.
    if let Some(secret) = secret {
        apply_object(&secrets, secret, live_secret, true).await?;
    }
    let service_api: Api<Service> = Api::namespaced(client.clone(), &namespace);
    for service in services {
        let live = service_api
            .get_opt(service.metadata.name.as_deref().unwrap_or_default())
            .await
            .map_err(|source| DatabaseError::Kubernetes {
                action: format!("read {}", kind_and_name(&service)),
                source: Box::new(source),
            })?;
        apply_object(&service_api, service, live, false).await?;
    }
    let slice_api: Api<EndpointSlice> = Api::namespaced(client.clone(), &namespace);
    for slice in endpoint_slices {
        let live = slice_api
            .get_opt(slice.metadata.name.as_deref().unwrap_or_default())
            .await
            .map_err(|source| DatabaseError::Kubernetes {
                action: format!("read {}", kind_and_name(&slice)),
                source: Box::new(source),
            })?;
        apply_object(&slice_api, slice, live, false).await?;
    }
    Ok(Applied {
        bdb,
        progress,
        started_action,
        recorded_status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn live_objects_with_defaults_contain_what_was_applied() {
        let live = json!({"metadata": {"name": "a", "resourceVersion": "7"}, "spec": {"clusterIP": "10.0.0.1", "ports": [{"port": 1, "protocol": "TCP", "name": "redis"}]}});
        assert!(contains(
            &live,
            &json!({"metadata": {"name": "a"}, "spec": {"ports": [{"port": 1, "name": "redis"}]}})
        ));
        assert!(!contains(&live, &json!({"spec": {"ports": [{"port": 2}]}})));
        assert!(!contains(
            &live,
            &json!({"spec": {"ports": [{"port": 1}, {"port": 2}]}})
        ));
        assert!(!contains(&live, &json!({"metadata": {"labels": {"a": "b"}}})));
    }

    #[test]
    fn a_change_reads_as_the_word_users_saw_before() {
        let words: Vec<String> = [Change::Password, Change::Update, Change::Upgrade, Change::Alerts]
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(words, ["password", "update", "upgrade", "alerts"]);
        assert!(!Progress::Changed(Change::Update).is_settled());
        assert!(!Progress::Pending(DatabaseStatus::ActiveChangePending).is_settled());
    }
}
