//! Scheduled backups and restores (issue 13): [`schedule`] and [`retention`] are the pure decisions (cron slots
//! with `now` as a parameter, which runs to prune), [`store`] lists and deletes a run's files with `object_store`,
//! and three controllers act on them: [`scheduler`] (a `RedisBackupSchedule` creates one `RedisBackup` per slot
//! and database, applies retention), [`runner`] (a `RedisBackup` exports its database, records the files, and
//! verifies them on request) and [`restorer`] (a `RedisRestore` imports a backup, once).
//!
//! This module holds what the three share: the context, the error type, and reaching a REDB's database on its
//! cluster and a run's location (with the credentials of the location's Secret, which never reach logs, status,
//! events or errors).

pub mod restorer;
pub mod retention;
pub mod runner;
pub mod schedule;
pub mod scheduler;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};

use crate::api::backup::BackupLocation;
use crate::api::{RedisEnterpriseCluster, RedisEnterpriseDatabase};
use crate::controllers::{ConnectionError, ControllerContext, connect_to_cluster, secret_value};
use crate::enterprise::{EnterpriseClient, EnterpriseError};
use crate::runtime::errors::{kube_category, kube_error_text, kube_rate_limited};
use crate::runtime::{Backoff, ErrorCategory, Publisher};
use store::{RunLocation, S3Credentials, StoreError};

/// Field manager of everything the backup controllers write (RedisBackups they create, and the status of the
/// three kinds).
pub const BACKUP_FIELD_MANAGER: &str = "redis-gitops/backup";

/// Timing of the backup controllers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackupSettings {
    /// How often an export or import under way is looked at.
    pub poll: Duration,
    /// The longest wait between two looks at a schedule (slots are computed, not watched).
    pub max_schedule_wait: Duration,
    /// The longest wait between retries after failures.
    pub max_backoff: Duration,
    /// How long a verification may take (scratch database creation, import, count).
    pub verify_timeout: Duration,
}

impl Default for BackupSettings {
    fn default() -> Self {
        Self {
            poll: Duration::from_secs(1),
            max_schedule_wait: Duration::from_secs(60),
            max_backoff: Duration::from_secs(120),
            verify_timeout: Duration::from_secs(300),
        }
    }
}

/// What every reconcile of one backup controller shares, created once.
pub struct BackupContext {
    /// The agent's shared context (clients, REST access, metrics).
    pub shared: ControllerContext,
    /// Timing.
    pub settings: BackupSettings,
    /// The one event publisher of this controller.
    pub events: Publisher,
    /// Per-object failure backoff.
    pub backoff: Backoff,
}

impl BackupContext {
    /// Records one reconcile of `controller` in the metrics: success, waiting (a transient wait, not a failure),
    /// or failure with the error's category.
    pub fn record_outcome<T>(&self, controller: &'static str, result: &Result<T, BackupError>) {
        let (outcome, failure) = match result {
            Ok(_) => ("success", None),
            Err(BackupError::Waiting(_)) => ("waiting", None),
            Err(error) => ("failure", Some(error.category())),
        };
        self.shared.metrics.record_reconcile(controller, outcome, failure);
    }

    /// A context for the controller `name`.
    pub fn new(shared: ControllerContext, settings: BackupSettings, name: &str) -> Arc<Self> {
        Arc::new(Self {
            events: Publisher::new(shared.client.clone(), name, shared.instance.clone()),
            backoff: Backoff::new(settings.max_backoff),
            settings,
            shared,
        })
    }
}

/// Why a backup reconcile failed or has to wait.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The API server refused or failed a request.
    #[error("failed to {action}: {}", kube_error_text(source))]
    Kubernetes {
        /// What was being done.
        action: String,
        /// The API error.
        #[source]
        source: Box<kube::Error>,
    },
    /// A REST call to the cluster failed.
    #[error("failed to {action} on cluster {cluster}: {source}")]
    Rest {
        /// What was being done.
        action: String,
        /// The cluster (`<namespace>/<name>`).
        cluster: String,
        /// The REST error.
        #[source]
        source: Box<EnterpriseError>,
    },
    /// The cluster's REST API could not be set up.
    #[error("unable to connect to cluster {cluster}: {source}")]
    Connection {
        /// The cluster.
        cluster: String,
        /// Why.
        #[source]
        source: Box<ConnectionError>,
    },
    /// Listing or deleting files failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// Something the run needs is not there yet (a database being created): waiting, not failing.
    #[error("{0}")]
    Waiting(String),
    /// The object cannot work as written (a missing Secret key, a bad schedule): waits for a change.
    #[error("{0}")]
    Invalid(String),
}

impl ErrorCategory for BackupError {
    fn category(&self) -> &'static str {
        match self {
            Self::Kubernetes { source, .. } => kube_category(source, "KubernetesError"),
            Self::Rest { source, .. } => match source.as_ref() {
                EnterpriseError::Busy { .. } => "ClusterBusy",
                EnterpriseError::Timeout { .. } => "RestTimeout",
                EnterpriseError::Unreachable { .. } => "ClusterUnreachable",
                EnterpriseError::Unauthorized { .. } => "ClusterCredentialsRefused",
                _ => "RestRequestFailed",
            },
            Self::Connection { source, .. } => source.category(),
            Self::Store(error) => error.category(),
            Self::Waiting(_) => "Waiting",
            Self::Invalid(_) => "InvalidSpec",
        }
    }

    fn is_rate_limited(&self) -> bool {
        match self {
            Self::Rest { source, .. } => matches!(source.as_ref(), EnterpriseError::Busy { .. }),
            Self::Kubernetes { source, .. } => kube_rate_limited(source),
            _ => false,
        }
    }
}

impl BackupError {
    /// A Kubernetes failure while doing `action`.
    pub fn kube(action: impl Into<String>, source: kube::Error) -> Self {
        Self::Kubernetes {
            action: action.into(),
            source: Box::new(source),
        }
    }
}

/// A REDB's database on its cluster: the REC, the bdb uid and a REST client.
pub struct DatabaseOnCluster {
    /// The REDB.
    pub redb: RedisEnterpriseDatabase,
    /// Its cluster.
    pub cluster: RedisEnterpriseCluster,
    /// `<namespace>/<cluster>`, for messages.
    pub cluster_key: String,
    /// The bdb uid.
    pub uid: u64,
    /// A client of the cluster's REST API.
    pub client: EnterpriseClient,
}

/// Finds the database of the REDB `name` in `namespace`: it must exist and have a bdb (the database controller
/// records its uid and cluster in the REDB's status); until then the caller waits.
pub async fn database_on_cluster(
    context: &ControllerContext,
    namespace: &str,
    name: &str,
) -> Result<DatabaseOnCluster, BackupError> {
    let redbs: Api<RedisEnterpriseDatabase> = Api::namespaced(context.client.clone(), namespace);
    let redb = redbs
        .get_opt(name)
        .await
        .map_err(|source| BackupError::kube(format!("read RedisEnterpriseDatabase {namespace}/{name}"), source))?
        .ok_or_else(|| BackupError::Waiting(format!("RedisEnterpriseDatabase {namespace}/{name} does not exist")))?;
    let status = redb.status.clone().unwrap_or_default();
    let uid = status
        .database_uid
        .as_deref()
        .and_then(|uid| uid.parse::<u64>().ok())
        .ok_or_else(|| {
            BackupError::Waiting(format!(
                "RedisEnterpriseDatabase {namespace}/{name} has no database on its cluster yet"
            ))
        })?;
    let cluster_name = status
        .redis_enterprise_cluster
        .clone()
        .or_else(|| redb.spec.redis_enterprise_cluster.as_ref().map(|c| c.name.clone()))
        .ok_or_else(|| {
            BackupError::Waiting(format!("RedisEnterpriseDatabase {namespace}/{name} has no cluster yet"))
        })?;
    let recs: Api<RedisEnterpriseCluster> = Api::namespaced(context.client.clone(), namespace);
    let cluster = recs
        .get_opt(&cluster_name)
        .await
        .map_err(|source| {
            BackupError::kube(
                format!("read RedisEnterpriseCluster {namespace}/{cluster_name}"),
                source,
            )
        })?
        .ok_or_else(|| {
            BackupError::Waiting(format!(
                "RedisEnterpriseCluster {namespace}/{cluster_name} does not exist"
            ))
        })?;
    let cluster_key = format!("{namespace}/{cluster_name}");
    let client = connect_to_cluster(context, namespace, &cluster)
        .await
        .map_err(|source| BackupError::Connection {
            cluster: cluster_key.clone(),
            source: Box::new(source),
        })?;
    Ok(DatabaseOnCluster {
        redb,
        cluster,
        cluster_key,
        uid,
        client,
    })
}

/// The directory (prefix) of the run `run` at `location`, with the credentials from the location's Secret and the
/// cluster's S3-compatible endpoint (`spec.backup.s3.url` of the REC).
pub async fn run_location(
    client: &kube::Client,
    namespace: &str,
    location: &BackupLocation,
    run: &str,
    cluster: Option<&RedisEnterpriseCluster>,
) -> Result<RunLocation, BackupError> {
    match (&location.mount, &location.s3, &location.sftp) {
        (Some(mount), None, None) => Ok(RunLocation::Mount {
            directory: std::path::Path::new(&mount.path).join(run),
        }),
        (None, Some(s3), None) => {
            let secret = read_secret(client, namespace, &s3.secret_name).await?;
            let key = |name: &str| {
                secret_value(&secret, name)
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .map(|text| text.trim().to_string())
                    .ok_or_else(|| {
                        BackupError::Invalid(format!(
                            "the Secret {namespace}/{} has no `{name}` key (it needs AWS_ACCESS_KEY_ID and \
                             AWS_SECRET_ACCESS_KEY)",
                            s3.secret_name
                        ))
                    })
            };
            let credentials = S3Credentials {
                access_key_id: key("AWS_ACCESS_KEY_ID")?,
                secret_access_key: key("AWS_SECRET_ACCESS_KEY")?,
            };
            let subdir = s3.subdir.as_deref().unwrap_or_default().trim_matches('/');
            let prefix = if subdir.is_empty() {
                run.to_string()
            } else {
                format!("{subdir}/{run}")
            };
            let endpoint = cluster
                .and_then(|cluster| cluster.spec.backup.as_ref())
                .and_then(|backup| backup.s3.as_ref())
                .and_then(|s3| s3.url.clone())
                .filter(|url| !url.is_empty());
            Ok(RunLocation::S3 {
                bucket: s3.bucket_name.clone(),
                region: s3.region_name.clone().unwrap_or_else(|| "us-east-1".to_string()),
                prefix,
                endpoint,
                credentials,
            })
        }
        (None, None, Some(sftp)) => {
            let secret = read_secret(client, namespace, &sftp.secret_name).await?;
            let key = secret_value(&secret, "Key").and_then(|bytes| String::from_utf8(bytes).ok());
            Ok(RunLocation::Sftp {
                url: format!("{}/{run}/", sftp.url.trim_end_matches('/')),
                key,
            })
        }
        _ => Err(BackupError::Invalid(
            "spec.location must set exactly one of mount, s3 and sftp".to_string(),
        )),
    }
}

async fn read_secret(client: &kube::Client, namespace: &str, name: &str) -> Result<Secret, BackupError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    secrets
        .get_opt(name)
        .await
        .map_err(|source| BackupError::kube(format!("read Secret {namespace}/{name}"), source))?
        .ok_or_else(|| {
            BackupError::Invalid(format!(
                "the Secret {namespace}/{name} of the backup location does not exist"
            ))
        })
}

/// The key count of a database from `GET /v1/bdbs/stats/last/{uid}` (`no_of_keys`); `None` when the cluster does
/// not report it.
pub async fn key_count(client: &EnterpriseClient, uid: u64) -> Option<i64> {
    let stats = client.database_last_stats(uid).await.ok().flatten()?;
    let value = stats
        .get("no_of_keys")
        .or_else(|| stats.get(uid.to_string()).and_then(|entry| entry.get("no_of_keys")))?;
    value.as_i64().or_else(|| value.as_f64().map(|number| number as i64))
}

/// Writes `status` of `object` with server-side apply (this controllers' field manager), unless it is unchanged.
pub async fn write_status<K>(
    client: &kube::Client,
    object: &K,
    current: Option<&serde_json::Value>,
    status: serde_json::Value,
) -> Result<(), BackupError>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    if current == Some(&status) {
        return Ok(());
    }
    // Only the backup controllers' fields: the Synced condition and sourceRevision belong to the GitSync.
    let mut status = status;
    if let Some(fields) = status.as_object_mut() {
        fields.remove("sourceRevision");
        if let Some(serde_json::Value::Array(conditions)) = fields.get_mut("conditions") {
            conditions.retain(|condition| {
                condition.get("type").and_then(serde_json::Value::as_str) != Some(crate::api::conditions::types::SYNCED)
            });
        }
    }
    let namespace = object.namespace().unwrap_or_default();
    let name = object.name_any();
    let api: Api<K> = Api::namespaced(client.clone(), &namespace);
    let body = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        &name,
        &PatchParams::apply(BACKUP_FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(|source| {
        BackupError::kube(
            format!("write the status of {} {namespace}/{name}", K::kind(&())),
            source,
        )
    })?;
    Ok(())
}

/// The current time as RFC 3339 in UTC, seconds precision.
pub fn rfc3339(time: chrono::DateTime<chrono::Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Parses an RFC 3339 time of a status.
pub fn parse_time(text: Option<&str>) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(text?)
        .ok()
        .map(|time| time.with_timezone(&chrono::Utc))
}

/// Runs the three backup controllers in `namespace` (or everywhere with `None`) until `shutdown` resolves.
pub async fn run_in(
    context: ControllerContext,
    settings: BackupSettings,
    namespace: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    use futures::FutureExt;
    let shutdown = shutdown.boxed().shared();
    tokio::join!(
        scheduler::run_in(context.clone(), settings, namespace.clone(), shutdown.clone()),
        runner::run_in(context.clone(), settings, namespace.clone(), shutdown.clone()),
        restorer::run_in(context, settings, namespace, shutdown),
    );
}
