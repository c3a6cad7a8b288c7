//! Apply stage: carries out what the build stage decided and reports what it did ([`Applied`]). A generated password
//! goes into the Secret before any database uses it; then the one REST mutation of this pass (a create runs the
//! crash-safe creation protocol of [`creation`](super::creation), the only status write of this stage); then
//! server-side apply of the Secret, Services and EndpointSlices, each skipped when the live object (read by the
//! dereference stage) already holds every desired field; then the deletion of the Services and EndpointSlices of
//! this REDB that are no longer built.
//!
//! Deleted as orphans are only Services and EndpointSlices: NEVER a Secret (the database credentials Secret holds
//! the password applications use, and may be the user's), a PersistentVolumeClaim or anything else carrying data.

use std::fmt::Debug;

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, Patch};
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::build::{DesiredDatabase, Mutation, PASSWORD_DIGEST_ANNOTATION, Standing, password_digest};
use super::dereference::{Ownership, References};
use super::report::{Applied, Change, Progress};
use super::validate::{Password, ValidatedState};
use super::{DatabaseContext, DatabaseError, apply_params, creation};
use crate::api::{RedisEnterpriseDatabase, RedisEnterpriseDatabaseStatus};
use crate::enterprise::EnterpriseError;
use crate::enterprise::types::Bdb;

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

/// Server-side applies `desired` unless `live` already holds all of it; returns the object as it now is and
/// whether it was written. With `precondition`, the apply carries the live resourceVersion, so a concurrent change
/// (a user editing the Secret) fails with a conflict instead of being overwritten.
pub async fn apply_object<K>(
    api: &Api<K>,
    mut desired: K,
    live: Option<K>,
    precondition: bool,
) -> Result<(K, bool), DatabaseError>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
{
    let what = kind_and_name(&desired);
    let desired_value = serde_json::to_value(&desired).unwrap_or(Value::Null);
    if let Some(live) = live {
        let live_value = serde_json::to_value(&live).unwrap_or(Value::Null);
        if contains(&live_value, &desired_value) {
            return Ok((live, false));
        }
        if precondition {
            desired.meta_mut().resource_version = live.meta().resource_version.clone();
        }
    }
    let name = desired.meta().name.clone().unwrap_or_default();
    api.patch(&name, &apply_params(), &Patch::Apply(&desired))
        .await
        .map(|written| (written, true))
        .map_err(|source| DatabaseError::Kubernetes {
            action: format!("apply {what}"),
            source: Box::new(source),
        })
}

fn set_digest(secret: &mut Option<Secret>, digest: String) {
    if let Some(secret) = secret.as_mut() {
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

/// What one pass's REST mutation left behind.
struct MutationOutcome {
    progress: Progress,
    bdb: Option<Bdb>,
    started_action: Option<String>,
    recorded_status: Option<RedisEnterpriseDatabaseStatus>,
}

impl MutationOutcome {
    fn of(progress: Progress, bdb: Option<Bdb>) -> Self {
        Self {
            progress,
            bdb,
            started_action: None,
            recorded_status: None,
        }
    }
}

/// One pass of the apply stage, with what every step needs.
struct Pass<'a> {
    redb: &'a RedisEnterpriseDatabase,
    validated: &'a ValidatedState,
    references: &'a References,
    context: &'a DatabaseContext,
    name: String,
    namespace: String,
}

impl Pass<'_> {
    fn cluster(&self) -> &str {
        &self.references.cluster_key
    }

    async fn publish(&self, type_: EventType, reason: &str, action: &str, note: &str) {
        self.context.publish(self.redb, type_, reason, action, note).await;
    }

    /// An event when this pass took over a bdb it did not record (adopted on the annotation, or resumed).
    async fn announce_ownership(&self) {
        let Some(live) = &self.references.bdb else {
            return;
        };
        let (name, cluster) = (&self.name, self.cluster());
        let note = match self.references.ownership {
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
            self.publish(EventType::Normal, reason, "Adopt", &note).await;
        }
    }

    /// Sends the mutation; `secret` gets the password digest once the cluster has accepted the password.
    async fn mutate(&self, mutation: Mutation, secret: &mut Option<Secret>) -> Result<MutationOutcome, DatabaseError> {
        let live = self.references.bdb.clone();
        let (name, cluster) = (&self.name, self.cluster());
        let rest = &self.references.rest;
        match mutation {
            Mutation::Create { body, replaces } => self.create(&body, replaces, secret).await,
            Mutation::Nothing(standing) => Ok(MutationOutcome::of(
                match standing {
                    Standing::Ready => Progress::Ready,
                    Standing::Pending(status) => Progress::Pending(status),
                    Standing::CreationFailed => Progress::CreationFailed,
                    Standing::Immutable(fields) => Progress::Immutable(fields),
                },
                live,
            )),
            Mutation::SetPassword { uid, password, digest } => {
                let progress = match rest.set_database_password(uid, &password).await {
                    Ok(()) => {
                        set_digest(secret, digest);
                        let note = format!(
                            "applied the password of Secret {}/{} to database {name}",
                            self.namespace, self.validated.database.secret_name
                        );
                        self.publish(EventType::Normal, "PasswordApplied", "UpdatePassword", &note)
                            .await;
                        Progress::Changed(Change::Password)
                    }
                    Err(error) => rejected_or_retry(error, format!("set the password of database {name}"), cluster)?,
                };
                Ok(MutationOutcome::of(progress, live))
            }
            Mutation::Update { uid, changes } => {
                let fields: Vec<&str> = changes.keys().map(String::as_str).collect();
                match rest.update_database(uid, &changes).await {
                    Ok(updated) => {
                        let note = format!("changed {} of database {name}", fields.join(", "));
                        self.publish(EventType::Normal, "DatabaseUpdated", "Update", &note)
                            .await;
                        Ok(MutationOutcome {
                            started_action: updated.action_uid.clone(),
                            ..MutationOutcome::of(Progress::Changed(Change::Update), Some(updated))
                        })
                    }
                    Err(error) => {
                        let request = format!("update database {name} ({})", fields.join(", "));
                        Ok(MutationOutcome::of(rejected_or_retry(error, request, cluster)?, live))
                    }
                }
            }
            Mutation::Upgrade { uid, version } => match rest.upgrade_database(uid, &version).await {
                Ok(answer) => {
                    let note = format!("upgrading database {name} to Redis {version}");
                    self.publish(EventType::Normal, "DatabaseUpgrading", "Upgrade", &note)
                        .await;
                    Ok(MutationOutcome {
                        started_action: answer.get("action_uid").and_then(Value::as_str).map(str::to_string),
                        ..MutationOutcome::of(Progress::Changed(Change::Upgrade), live)
                    })
                }
                Err(error) => {
                    let request = format!("upgrade database {name} to {version}");
                    Ok(MutationOutcome::of(rejected_or_retry(error, request, cluster)?, live))
                }
            },
            Mutation::SetAlerts { uid, alerts } => {
                let progress = match rest.set_database_alerts(uid, &alerts).await {
                    Ok(()) => Progress::Changed(Change::Alerts),
                    Err(error) => rejected_or_retry(error, format!("set the alerts of database {name}"), cluster)?,
                };
                Ok(MutationOutcome::of(progress, live))
            }
        }
    }

    /// `POST /v1/bdbs` inside the creation protocol: intent recorded first, the uid right after the answer.
    async fn create(
        &self,
        body: &serde_json::Map<String, Value>,
        replaces: Option<u64>,
        secret: &mut Option<Secret>,
    ) -> Result<MutationOutcome, DatabaseError> {
        let (name, cluster) = (&self.name, self.cluster());
        if let Some(gone) = replaces {
            let note = format!(
                "database {name} (uid {gone}) recorded in the status is gone from cluster {cluster}; creating a new, \
                 empty database"
            );
            self.publish(EventType::Warning, "DatabaseRecreated", "Create", &note)
                .await;
        }
        let token = self.validated.creation_token.as_deref().unwrap_or_default();
        let intent = creation::record_intent(self.redb, token, self.references, self.context).await?;
        match self.references.rest.create_database(body).await {
            Ok(created) => {
                let recorded =
                    creation::record_creation(self.redb, intent, &created, self.references, self.context).await?;
                if let Some(password) = self.validated.password.value() {
                    // The one field of a child that depends on the REST answer: the uid the digest is keyed with.
                    set_digest(secret, password_digest(cluster, created.uid, password));
                }
                let note = format!("created database {name} (uid {}) on cluster {cluster}", created.uid);
                self.publish(EventType::Normal, "DatabaseCreated", "Create", &note)
                    .await;
                Ok(MutationOutcome {
                    started_action: created.action_uid.clone(),
                    recorded_status: Some(recorded),
                    ..MutationOutcome::of(Progress::Created, Some(created))
                })
            }
            Err(error) => {
                let progress = rejected_or_retry(error, format!("create database {name}"), cluster)?;
                // A refused create made nothing: the marker goes, so a database someone else creates under this
                // name later is never taken for ours.
                Ok(MutationOutcome {
                    recorded_status: Some(intent),
                    ..MutationOutcome::of(progress, None)
                })
            }
        }
    }
}

/// Whether `object` carries an owner reference to the REDB of uid `owner`.
fn owned_by<K: Resource>(object: &K, owner: Option<&str>) -> bool {
    owner.is_some_and(|owner| {
        object
            .meta()
            .owner_references
            .iter()
            .flatten()
            .any(|reference| reference.uid == owner)
    })
}

/// Applies `desired` (each compared with the live one of its name in `live`), then, when `prune`, deletes the live
/// objects of `live` owned by `owner` that are not desired. Records what it wrote and deleted.
async fn converge_children<K>(
    api: &Api<K>,
    desired: Vec<K>,
    live: &[K],
    prune: Option<&str>,
    applied: &mut Applied,
) -> Result<(), DatabaseError>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
{
    let names: Vec<String> = desired.iter().map(|object| object.name_any()).collect();
    for object in desired {
        let current = live.iter().find(|l| l.name_any() == object.name_any()).cloned();
        let what = kind_and_name(&object);
        if apply_object(api, object, current, false).await?.1 {
            applied.written.push(what);
        }
    }
    let Some(owner) = prune else {
        return Ok(());
    };
    for orphan in live
        .iter()
        .filter(|l| !names.contains(&l.name_any()) && owned_by(*l, Some(owner)))
    {
        let what = kind_and_name(orphan);
        match api.delete(&orphan.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(source) => {
                return Err(DatabaseError::Kubernetes {
                    action: format!("delete {what}, which the database no longer has"),
                    source: Box::new(source),
                });
            }
        }
        tracing::info!(child = %what, "deleted a child the database no longer has");
        applied.deleted.push(what);
    }
    Ok(())
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
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let DesiredDatabase {
        mutation,
        mut secret,
        services,
        endpoint_slices,
        children_complete,
    } = desired;
    let pass = Pass {
        redb,
        validated,
        references,
        context,
        name: redb.name_any(),
        namespace: namespace.clone(),
    };
    let mut written = Vec::new();

    // A generated password is stored before the cluster sees it: a restart after the create must find it.
    let mut live_secret = references.secret.clone();
    if let (Password::Generated(_), Some(first)) = (&validated.password, &secret) {
        let what = kind_and_name(first);
        let (stored, was_written) = apply_object(&secrets, first.clone(), live_secret, true).await?;
        live_secret = Some(stored);
        if was_written {
            written.push(what);
        }
    }
    pass.announce_ownership().await;
    let outcome = pass.mutate(mutation, &mut secret).await?;
    let mut applied = Applied {
        bdb: outcome.bdb,
        progress: outcome.progress,
        started_action: outcome.started_action,
        recorded_status: outcome.recorded_status,
        written,
        deleted: Vec::new(),
    };

    // The children, in the applier's order: Secret → Services → EndpointSlices. Orphans are deleted only when the
    // desired set is complete (the bdb has a port), and never a Secret (see the module doc).
    if let Some(secret) = secret {
        let what = kind_and_name(&secret);
        if apply_object(&secrets, secret, live_secret, true).await?.1 && !applied.written.contains(&what) {
            applied.written.push(what);
        }
    }
    let owner = redb.metadata.uid.as_deref().filter(|_| children_complete);
    let service_api: Api<Service> = Api::namespaced(client.clone(), &namespace);
    converge_children(&service_api, services, &references.services, owner, &mut applied).await?;
    let slice_api: Api<EndpointSlice> = Api::namespaced(client.clone(), &namespace);
    converge_children(
        &slice_api,
        endpoint_slices,
        &references.endpoint_slices,
        owner,
        &mut applied,
    )
    .await?;
    Ok(applied)
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
}
