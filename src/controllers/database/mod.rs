//! The REDB controller: turns each `RedisEnterpriseDatabase` into a database (bdb) on its cluster through the REST
//! API, plus its credentials Secret, its Services and their EndpointSlices, and reports what it did in the REDB's
//! status. One reconcile is a pipeline of stages, each in its own module:
//! [`dereference`] (REC, admin credentials, database Secret, live bdb) → [`validate`] (spec → validated database,
//! password choice) → [`build`] (pure: bdb body and minimal update, Secret, Services, EndpointSlices) → [`apply`]
//! (REST writes, then server-side apply of the children) → [`status`] (conditions and official status fields).
//! Deletion goes through the finalizer `redisgitops.dev/delete-database` ([`cleanup`]).
//!
//! A REDB owns exactly the bdb whose uid its status records (`status.databaseUID`). Another database of its name is
//! taken over only on the explicit annotation `redisgitops.dev/adopt-database`, or when the REDB's own
//! `status.pendingCreation` marker (written before `POST /v1/bdbs`) names it and no other REDB owns it.
//!
//! The passwords this controller handles never reach logs, events, status or errors. It writes REDB status with
//! its own field manager ([`DATABASE_FIELD_MANAGER`]) and never touches the `Synced` condition or
//! `sourceRevision`, which belong to the GitSync controller.

pub mod apply;
pub mod backup;
pub mod build;
pub mod cleanup;
pub mod creation;
pub mod dereference;
pub mod report;
pub mod status;
pub mod validate;
pub mod versions;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;
use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{self, finalizer};
use kube::runtime::watcher;
use tracing::{info, instrument, warn};

use super::{Backoff, ConnectionError, ControllerContext, DATABASE_FIELD_MANAGER, resync_interval};
use crate::api::RedisEnterpriseDatabase;
use crate::enterprise::EnterpriseError;
use crate::runtime::errors::{kube_category, kube_error_text, kube_rate_limited};
use crate::runtime::{ErrorCategory, Publisher, ShutdownSignal, api_in, guard, object_key};

/// The finalizer that keeps a REDB until its bdb is deleted from the cluster.
pub const FINALIZER: &str = "redisgitops.dev/delete-database";
/// The `controller` label value of this controller's metrics.
const CONTROLLER: &str = "database";
/// The controller's name on events.
pub const CONTROLLER_NAME: &str = "redis-gitops-database";

/// Timing of the database controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DatabaseSettings {
    /// How often a healthy database is looked at again (the REST API is not watchable), before jitter.
    pub resync: Duration,
    /// How soon a database that is being created, changed or deleted, or waits for its cluster, is looked at again.
    pub pending_poll: Duration,
    /// The longest wait between retries after failures.
    pub max_backoff: Duration,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            resync: Duration::from_secs(300),
            pending_poll: Duration::from_secs(2),
            max_backoff: Duration::from_secs(300),
        }
    }
}

/// What every reconcile of this controller shares, created once.
pub struct DatabaseContext {
    /// The agent's shared context (clients, REST access, metrics).
    pub shared: ControllerContext,
    /// Timing.
    pub settings: DatabaseSettings,
    /// The one event publisher of this controller.
    pub events: Publisher,
    /// Per-object failure backoff.
    pub backoff: Backoff,
}

impl DatabaseContext {
    /// Publishes an event about `redb`; a failure to publish is logged, never fatal.
    pub async fn publish(
        &self,
        redb: &RedisEnterpriseDatabase,
        type_: EventType,
        reason: &str,
        action: &str,
        note: &str,
    ) {
        self.events.publish(redb, type_, reason, action, note).await;
    }
}

/// Why a reconcile failed (or, for [`DatabaseError::DeletionPending`], has to come back soon).
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    /// A REST call to the cluster failed.
    #[error("failed to {action} on cluster {cluster}: {source}")]
    Rest {
        /// What was being done, for example `create database cache`.
        action: String,
        /// The cluster (`<namespace>/<name>`).
        cluster: String,
        /// The REST error (endpoint, status, error_code).
        #[source]
        source: Box<EnterpriseError>,
    },
    /// The API server refused or failed a request.
    #[error("failed to {action}: {}", kube_error_text(source))]
    Kubernetes {
        /// What was being done, for example `apply Secret ns/redb-cache`.
        action: String,
        /// The API error.
        #[source]
        source: Box<kube::Error>,
    },
    /// The cluster's REST API could not be set up (credentials Secret unreadable, bad CA).
    #[error("unable to connect to cluster {cluster}: {source}")]
    Connection {
        /// The cluster (`<namespace>/<name>`).
        cluster: String,
        /// Why.
        #[source]
        source: Box<ConnectionError>,
    },
    /// The bdb is being deleted; the finalizer stays until it is gone (waiting, not a failure).
    #[error("database {database} (uid {uid}) is still being deleted from cluster {cluster}")]
    DeletionPending {
        /// The REDB (`<namespace>/<name>`).
        database: String,
        /// The bdb uid.
        uid: u64,
        /// The cluster (`<namespace>/<name>`).
        cluster: String,
    },
    /// The REDB is deleted but its database is protected: the finalizer stays until the user releases it
    /// (waiting for a change, not a failure).
    #[error("{message}")]
    DeletionRefused {
        /// What is kept and how to release it.
        message: String,
    },
}

impl ErrorCategory for DatabaseError {
    /// A stable name of the variant (or of the REST error's kind), for event reasons and metric labels.
    fn category(&self) -> &'static str {
        match self {
            Self::Rest { source, .. } => match source.as_ref() {
                EnterpriseError::Busy { .. } => "ClusterBusy",
                EnterpriseError::Timeout { .. } => "RestTimeout",
                EnterpriseError::Unreachable { .. } => "ClusterUnreachable",
                EnterpriseError::Unauthorized { .. } => "ClusterCredentialsRefused",
                _ => "RestRequestFailed",
            },
            Self::Kubernetes { source, .. } => kube_category(source, "KubernetesError"),
            Self::Connection { source, .. } => source.category(),
            Self::DeletionPending { .. } => "DeletionPending",
            Self::DeletionRefused { .. } => "DeletionProtected",
        }
    }

    /// Whether the cluster asked to slow down (409 busy): such failures back off longer.
    fn is_rate_limited(&self) -> bool {
        match self {
            Self::Rest { source, .. } => matches!(source.as_ref(), EnterpriseError::Busy { .. }),
            Self::Kubernetes { source, .. } => kube_rate_limited(source),
            _ => false,
        }
    }
}

impl DatabaseError {
    /// Whether this is waiting rather than failing.
    pub fn is_waiting(&self) -> bool {
        matches!(self, Self::DeletionPending { .. } | Self::DeletionRefused { .. })
    }
}

/// The error of one reconcile, as the finalizer helper wraps it.
pub type ReconcileError = finalizer::Error<DatabaseError>;

fn inner(error: &ReconcileError) -> Option<&DatabaseError> {
    match error {
        finalizer::Error::ApplyFailed(error) | finalizer::Error::CleanupFailed(error) => Some(error),
        _ => None,
    }
}

/// Whether adding or removing the finalizer failed only because the watch cache was behind the API server (its
/// JSON patch `test` saw an older finalizer list: 422, or a conflict: 409). The next event brings the fresh object,
/// so this is neither a failure nor a reason to back off.
fn is_stale_cache(error: &ReconcileError) -> bool {
    match error {
        finalizer::Error::AddFinalizer(kube::Error::Api(status))
        | finalizer::Error::RemoveFinalizer(kube::Error::Api(status)) => matches!(status.code, 409 | 422),
        _ => false,
    }
}

impl ErrorCategory for ReconcileError {
    fn category(&self) -> &'static str {
        match self {
            finalizer::Error::ApplyFailed(error) | finalizer::Error::CleanupFailed(error) => error.category(),
            finalizer::Error::AddFinalizer(_) => "AddFinalizerFailed",
            finalizer::Error::RemoveFinalizer(_) => "RemoveFinalizerFailed",
            finalizer::Error::UnnamedObject => "UnnamedObject",
            finalizer::Error::InvalidFinalizer => "InvalidFinalizer",
        }
    }

    fn is_rate_limited(&self) -> bool {
        inner(self).is_some_and(DatabaseError::is_rate_limited)
    }
}

/// The longest quoted user value in a message, in characters.
const QUOTE_LIMIT: usize = 200;

/// `value` cut to [`QUOTE_LIMIT`] characters (with `…` when cut), for quoting user input in messages.
pub(crate) fn cut(value: &str) -> String {
    if value.chars().count() <= QUOTE_LIMIT {
        return value.to_string();
    }
    let mut cut: String = value.chars().take(QUOTE_LIMIT).collect();
    cut.push('…');
    cut
}

/// Whether the REDB carries `redisgitops.dev/protect: "true"`.
pub(crate) fn is_protected(redb: &RedisEnterpriseDatabase) -> bool {
    redb.annotations()
        .get(crate::api::keys::PROTECT)
        .is_some_and(|v| v == "true")
}

/// Whether the REDB carries `redisgitops.dev/deletion-policy: orphan`.
pub(crate) fn is_orphaned_on_delete(redb: &RedisEnterpriseDatabase) -> bool {
    redb.annotations()
        .get(crate::api::keys::DELETION_POLICY)
        .is_some_and(|v| v == crate::api::keys::DELETION_POLICY_ORPHAN)
}

/// Runs the database controller with the default settings until `shutdown` resolves.
pub async fn run(context: ControllerContext, shutdown: impl std::future::Future<Output = ()> + Send + 'static) {
    run_with(context, DatabaseSettings::default(), shutdown).await;
}

/// Runs the database controller with `settings` until `shutdown` resolves: REDBs in all namespaces, owning their
/// Secrets, Services and EndpointSlices (watched by the `app.kubernetes.io/managed-by=redis-gitops` label).
pub async fn run_with(
    context: ControllerContext,
    settings: DatabaseSettings,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    run_in(context, settings, None, shutdown).await;
}

/// [`run_with`] for one watch of a [`crate::runtime::WatchScope`]: REDBs and their children in `namespace`
/// only, or in all namespaces with `None`.
pub async fn run_in(
    context: ControllerContext,
    settings: DatabaseSettings,
    namespace: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let scope = namespace.as_deref();
    let client = context.client.clone();
    let context = Arc::new(DatabaseContext {
        events: Publisher::new(client.clone(), CONTROLLER_NAME, context.instance.clone()),
        backoff: Backoff::new(settings.max_backoff),
        settings,
        shared: context,
    });
    // One REDB that does not decode is reported on its own and does not stop the watch of the others.
    let databases: Api<DeserializeGuard<RedisEnterpriseDatabase>> = api_in(&client, scope);
    let children = watcher::Config::default().labels(&format!(
        "{}={}",
        crate::api::keys::MANAGED_BY,
        crate::api::keys::MANAGER
    ));
    let shutdown = ShutdownSignal::relay(shutdown);
    info!(namespace = scope.unwrap_or("*"), "database controller started");
    // Status writes (ours and the GitSync's) start a reconcile too (a generation predicate needs kube's unstable
    // `for_stream`); such a reconcile finds nothing to change and writes nothing.
    Controller::new(databases, watcher::Config::default().any_semantic())
        .owns(api_in::<Secret>(&client, scope), children.clone())
        .owns(api_in::<Service>(&client, scope), children.clone())
        .owns(api_in::<EndpointSlice>(&client, scope), children)
        .with_config(
            kube::runtime::controller::Config::default().concurrency(crate::controllers::RECONCILE_CONCURRENCY),
        )
        .graceful_shutdown_on(shutdown.stopped())
        .run(reconcile_guarded, error_policy, context)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(
                    error = %crate::runtime::errors::controller_error_text(&error, crate::runtime::errors::finalizer_error_text),
                    "database reconcile ended with an error"
                );
            }
        })
        .await;
}

/// Reconciles a REDB that decoded; one that did not gets a Warning event and waits for a change.
async fn reconcile_guarded(
    redb: Arc<DeserializeGuard<RedisEnterpriseDatabase>>,
    context: Arc<DatabaseContext>,
) -> Result<Action, ReconcileError> {
    match guard::decoded(redb.as_ref(), &context.events).await {
        Some(redb) => reconcile(redb, context).await,
        None => Ok(Action::await_change()),
    }
}

/// One reconcile: the finalizer first, then the pipeline (or the cleanup of a deleted REDB).
#[instrument(skip_all, fields(database = %object_key(redb.as_ref())))]
pub async fn reconcile(
    redb: Arc<RedisEnterpriseDatabase>,
    context: Arc<DatabaseContext>,
) -> Result<Action, ReconcileError> {
    let namespace = redb.namespace().unwrap_or_else(|| "default".to_string());
    let api: Api<RedisEnterpriseDatabase> = Api::namespaced(context.shared.client.clone(), &namespace);
    let stages = context.clone();
    let result = finalizer(&api, FINALIZER, redb.clone(), move |event| async move {
        match event {
            finalizer::Event::Apply(redb) => reconcile_database(&redb, &stages).await,
            finalizer::Event::Cleanup(redb) => cleanup::delete_database(&redb, &stages).await,
        }
    })
    .await;
    let metrics = &context.shared.metrics;
    let outcome = match &result {
        Ok(_) => "success",
        Err(error) if inner(error).is_some_and(DatabaseError::is_waiting) || is_stale_cache(error) => "waiting",
        Err(_) => "failure",
    };
    let failure = match &result {
        Err(error) if outcome == "failure" => Some(error.category()),
        _ => None,
    };
    metrics.record_reconcile(CONTROLLER, outcome, failure);
    match &result {
        Ok(_) => context.backoff.succeeded(&object_key(redb.as_ref())),
        Err(error) if outcome == "failure" => {
            if let Some(error) = inner(error)
                && redb.metadata.deletion_timestamp.is_none()
            {
                status::report_failure(&redb, error, &context).await;
            }
        }
        Err(_) => {}
    }
    result
}

/// Waiting comes back after the pending poll; failures back off per object (longer when the cluster is busy).
pub fn error_policy(
    redb: Arc<DeserializeGuard<RedisEnterpriseDatabase>>,
    error: &ReconcileError,
    context: Arc<DatabaseContext>,
) -> Action {
    let key = object_key(redb.as_ref());
    if let Some(DatabaseError::DeletionRefused { .. }) = inner(error) {
        // Releasing it is an annotation change, which starts a reconcile at once.
        return Action::requeue(resync_interval(context.settings.resync));
    }
    if inner(error).is_some_and(DatabaseError::is_waiting) {
        return Action::requeue(context.settings.pending_poll);
    }
    if is_stale_cache(error) {
        tracing::debug!(database = %key, error = %crate::runtime::errors::finalizer_error_text(error), "finalizer update raced the watch cache; retrying");
        return Action::requeue(std::time::Duration::from_millis(200));
    }
    let delay = context.backoff.failed(&key, error.is_rate_limited());
    warn!(database = %key, category = error.category(), error = %crate::runtime::errors::finalizer_error_text(error), ?delay, "database reconcile failed; retrying");
    Action::requeue(delay)
}

/// The REDB as the API server has it now. The watch cache can lag behind this controller's own status writes, and
/// a REDB whose status has no uid yet must not decide about ownership (or write its status) from an older copy.
pub(crate) async fn fresh(
    redb: &RedisEnterpriseDatabase,
    context: &DatabaseContext,
) -> Result<RedisEnterpriseDatabase, DatabaseError> {
    let namespace = redb.namespace().unwrap_or_else(|| "default".to_string());
    let api: Api<RedisEnterpriseDatabase> = Api::namespaced(context.shared.client.clone(), &namespace);
    let name = redb.name_any();
    let live = api.get_opt(&name).await.map_err(|source| DatabaseError::Kubernetes {
        action: format!("read RedisEnterpriseDatabase {namespace}/{name}"),
        source: Box::new(source),
    })?;
    Ok(live.unwrap_or_else(|| redb.clone()))
}

/// The pipeline for a REDB that is not being deleted.
async fn reconcile_database(
    redb: &RedisEnterpriseDatabase,
    context: &DatabaseContext,
) -> Result<Action, DatabaseError> {
    let refreshed;
    let redb = if dereference::recorded_uid(redb).is_none() {
        refreshed = fresh(redb, context).await?;
        &refreshed
    } else {
        redb
    };
    let references = match dereference::dereference(redb, context).await? {
        dereference::Dereferenced::Found(references) => references,
        dereference::Dereferenced::Blocked(blocked) => {
            status::write_blocked(redb, &blocked, context).await?;
            return Ok(Action::requeue(if blocked.stalled {
                resync_interval(context.settings.resync)
            } else {
                context.settings.pending_poll
            }));
        }
    };
    let validated = match validate::validate(redb, &references) {
        Ok(validated) => validated,
        Err(refused) => {
            let invalid = matches!(refused, validate::Refused::Invalid(_));
            status::write_blocked(redb, &refused.into_blocked(), context).await?;
            // A restored Secret the user created is not watched: look again at the resync.
            return Ok(if invalid {
                Action::await_change()
            } else {
                Action::requeue(resync_interval(context.settings.resync))
            });
        }
    };
    let desired = build::build(&validated, &references);
    let applied = apply::apply(redb, &validated, desired, &references, context).await?;
    let requeue = if applied.progress.is_settled() {
        resync_interval(context.settings.resync)
    } else {
        context.settings.pending_poll
    };
    status::write(redb, &validated, &references, &applied, context).await?;
    Ok(Action::requeue(requeue))
}

/// The SSA parameters of everything this controller writes.
pub(crate) fn apply_params() -> kube::api::PatchParams {
    kube::api::PatchParams::apply(DATABASE_FIELD_MANAGER).force()
}
