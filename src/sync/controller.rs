//! The GitSync controller: poll the source → read the tree → load and validate the whole revision → apply the
//! objects that changed (server-side apply, field manager `redis-gitops/git`, RECs first) → prune by inventory →
//! report status and events. A revision that fails validation applies nothing and the last good one stays.
//!
//! Each stage is a module: [`super::deletion`] (the deletion policy), [`super::fetch`] (Secret, fetch),
//! [`super::load`] (load and validate), [`super::apply`], [`super::prune`], and [`super::status`], which turns the
//! typed [`SyncOutcome`] into status and events through the pure [`super::outcome::next_status`]; what a sync came to
//! is also handed to [`super::commit_status`], which posts it to the forge beside the reconcile. This module holds
//! the context, the watch wiring, the error policy, and the stage list.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::core::DeserializeGuard;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use tracing::{instrument, warn};

use super::apply::{ApplyProgress, apply_objects};
use super::commit_status::CommitStatusReporter;
use super::outcome::{Applied, Fetched, SyncOutcome};
use super::plan::{DesiredObject, MAX_MESSAGE_CHARS, PrunePolicy, SyncTarget, cap_message};
use super::prune::{PruneInput, prune};
use super::settings::{Settings, settings};
use super::trigger::SyncTriggers;
use super::{deletion, fetch, load, status};
use crate::api::GitSync;
use crate::runtime::{Backoff, Clock, ErrorCategory, Publisher, ShutdownSignal, SystemClock, guard, object_key};
use crate::telemetry::{CategoryLabels, Metrics, ResultLabels};

pub use super::deletion::FINALIZER;
pub use super::error::SyncError;
pub use super::objects::FIELD_MANAGER;
pub use super::outcome::MAX_STATUS_ERRORS;

/// The controller's name on events.
pub const CONTROLLER_NAME: &str = "redis-gitops-sync";

/// What the controller needs, created once.
pub struct SyncContext {
    /// The API client.
    pub client: Client,
    /// Directory of the Git caches.
    pub cache_dir: PathBuf,
    /// Namespaces every GitSync may write to besides its own.
    pub extra_namespaces: BTreeSet<String>,
    /// The event publisher, one for the controller.
    pub events: Publisher,
    /// The agent's metrics.
    pub metrics: Arc<Metrics>,
    /// Where status timestamps come from.
    pub clock: Arc<dyn Clock>,
    /// Per-object failure backoff: 5 s, 10 s, 20 s ... up to 5 minutes, with jitter, reset by a successful sync.
    pub backoff: Backoff,
    /// Posts commit statuses beside the syncs (`spec.commitStatus`).
    pub commit_status: CommitStatusReporter,
    /// Syncs asked for by push webhooks, and the cache the webhook receiver finds GitSyncs in.
    pub triggers: SyncTriggers,
}

impl SyncContext {
    /// A context for `client`.
    pub fn new(
        client: Client,
        cache_dir: PathBuf,
        extra_namespaces: BTreeSet<String>,
        instance: Option<String>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            events: Publisher::new(client.clone(), CONTROLLER_NAME, instance),
            commit_status: CommitStatusReporter::new(client.clone(), metrics.clone()),
            client,
            cache_dir,
            extra_namespaces,
            metrics,
            clock: Arc::new(SystemClock),
            backoff: Backoff::with_base(Duration::from_secs(5), Duration::from_secs(300)),
            triggers: SyncTriggers::default(),
        }
    }

    /// Publishes an event about `gitsync`, its note cut to the length of a status message.
    pub async fn publish(&self, gitsync: &GitSync, type_: EventType, reason: &str, action: &str, note: &str) {
        let note = cap_message(note, MAX_MESSAGE_CHARS);
        self.events.publish(gitsync, type_, reason, action, &note).await;
    }

    fn record(&self, failure: Option<&'static str>, started: std::time::Instant) {
        self.metrics.sync_duration.observe(started.elapsed().as_secs_f64());
        let result = if failure.is_some() { "failure" } else { "success" };
        self.metrics.syncs.get_or_create(&ResultLabels { result }).inc();
        if let Some(category) = failure {
            self.metrics.failures.get_or_create(&CategoryLabels { category }).inc();
        }
    }
}

/// Runs the GitSync controller until `shutdown` resolves.
pub async fn run(context: Arc<SyncContext>, shutdown: impl std::future::Future<Output = ()> + Send + 'static) {
    run_in(context, None, shutdown).await;
}

/// [`run`] for one watch of a [`crate::runtime::WatchScope`]: GitSyncs in `namespace` only, or in all namespaces
/// with `None`.
pub async fn run_in(
    context: Arc<SyncContext>,
    namespace: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    // One GitSync that does not decode is reported on its own and does not stop the watch of the others.
    let api: Api<DeserializeGuard<GitSync>> = crate::runtime::api_in(&context.client, namespace.as_deref());
    let controller = Controller::new(api, watcher::Config::default().any_semantic());
    // Push webhooks reach the controller as extra triggers, and find GitSyncs in its cache (no second watch).
    let triggers = context.triggers.clone();
    let webhook_triggers = triggers.attach(controller.store());
    controller
        .reconcile_on(webhook_triggers)
        .graceful_shutdown_on(ShutdownSignal::relay(shutdown).stopped())
        .run(reconcile_guarded, error_policy, context)
        .for_each(|result| async move {
            if let Err(error) = result {
                warn!(
                    error = %crate::runtime::errors::controller_error_text(&error, ToString::to_string),
                    "gitsync reconcile failed"
                );
            }
        })
        .await;
    triggers.detach();
}

/// Reconciles a GitSync that decoded; one that did not gets a Warning event and waits for a change.
async fn reconcile_guarded(
    gitsync: Arc<DeserializeGuard<GitSync>>,
    context: Arc<SyncContext>,
) -> Result<Action, SyncError> {
    match guard::decoded(gitsync.as_ref(), &context.events).await {
        Some(gitsync) => reconcile(gitsync, context).await,
        None => Ok(Action::await_change()),
    }
}

/// Reconciles one GitSync: the deletion policy, then one sync.
#[instrument(skip_all, fields(gitsync = %object_key(gitsync.as_ref())))]
pub async fn reconcile(gitsync: Arc<GitSync>, context: Arc<SyncContext>) -> Result<Action, SyncError> {
    if let Some(action) = deletion::handle_deletion_policy(&gitsync, &context).await? {
        context.commit_status.forget(&object_key(gitsync.as_ref()));
        return Ok(action);
    }
    let started = std::time::Instant::now();
    let result = sync(&gitsync, &context).await;
    match &result {
        Ok((_, handled_failure)) => context.record(*handled_failure, started),
        Err(error) => context.record(Some(error.category()), started),
    }
    let namespace = gitsync.namespace().unwrap_or_default();
    if let Some(requested) = context
        .triggers
        .take_requested(&namespace, &gitsync.name_any(), started)
        && matches!(result, Ok((_, None)))
    {
        context
            .metrics
            .webhook_to_applied
            .observe(requested.elapsed().as_secs_f64());
    }
    if result.is_ok() {
        context.backoff.succeeded(&object_key(gitsync.as_ref()));
    }
    result.map(|(action, _)| action)
}

/// Backs off per object (longer when the API server asks to slow down), reset by a successful sync.
fn error_policy(gitsync: Arc<DeserializeGuard<GitSync>>, error: &SyncError, context: Arc<SyncContext>) -> Action {
    let key = object_key(gitsync.as_ref());
    let delay = context.backoff.failed(&key, error.is_rate_limited());
    warn!(gitsync = %key, category = error.category(), %error, ?delay, "sync failed; retrying");
    Action::requeue(delay)
}

/// What a sync came to, and what follows.
pub struct Report {
    /// The outcome the status reports.
    pub outcome: SyncOutcome,
    /// The next look.
    pub requeue: Action,
    /// The failure to retry with backoff once the status is written.
    pub retry: Option<SyncError>,
    /// `status.webhookPath`: derived from the webhook Secret, `None` without `spec.webhook`.
    pub webhook_path: Option<String>,
}

/// Why the stages stopped early.
pub enum Halt {
    /// An outcome to report; the sync is done until the next look.
    Outcome(Box<SyncOutcome>),
    /// An outcome to report, then a retry with backoff.
    Retry(Box<SyncOutcome>, SyncError),
    /// A failure with nothing to report in status (the API server failed); retried with backoff.
    Fail(SyncError),
}

impl Halt {
    /// Stops with `outcome`.
    pub fn outcome(outcome: SyncOutcome) -> Self {
        Self::Outcome(Box::new(outcome))
    }
}

impl From<SyncError> for Halt {
    fn from(error: SyncError) -> Self {
        Self::Fail(error)
    }
}

/// One sync. The second value names the category of a failure that was handled (reported in status) rather than
/// returned for a retry with backoff, such as an invalid revision.
async fn sync(gitsync: &GitSync, context: &SyncContext) -> Result<(Action, Option<&'static str>), SyncError> {
    // The GitSync's name becomes a label value on every object it applies, so it must be a valid one.
    let checked = match crate::model::names::label_value_problem(&gitsync.name_any()) {
        Some(problem) => Err(format!(
            "metadata.name: {problem}; it becomes the label {} of every object the GitSync applies",
            super::plan::GITSYNC_NAME_LABEL
        )),
        None => settings(&gitsync.spec).map_err(|error| error.to_string()),
    };
    let report = match checked {
        Err(message) => Report {
            outcome: SyncOutcome::InvalidSpec { message },
            requeue: Action::await_change(),
            retry: None,
            // An unusable spec keeps the path it had: the receiver still answers, and the next sync reports.
            webhook_path: gitsync.status.as_ref().and_then(|status| status.webhook_path.clone()),
        },
        Ok(settings) => {
            let requeue = Action::requeue(settings.interval);
            let (webhook_path, staged) = match fetch::read_webhook_path(gitsync, context).await {
                Ok(path) => (path, stages(gitsync, context, &settings).await),
                Err(halt) => (None, Err(halt)),
            };
            let (outcome, retry) = match staged {
                Ok(outcome) => (outcome, None),
                Err(Halt::Outcome(outcome)) => (*outcome, None),
                Err(Halt::Retry(outcome, error)) => (*outcome, Some(error)),
                Err(Halt::Fail(error)) => return Err(error),
            };
            Report {
                outcome,
                requeue,
                retry,
                webhook_path,
            }
        }
    };
    status::report(gitsync, context, report).await
}

/// The stages of a sync with usable settings: Secret → fetch → (suspend) → load → apply → prune.
async fn stages(gitsync: &GitSync, context: &SyncContext, settings: &Settings) -> Result<SyncOutcome, Halt> {
    let credentials = fetch::read_credentials(gitsync, context).await?;
    let (fetched, entries) = fetch::fetch(gitsync, context, settings, credentials).await?;
    if gitsync.spec.suspend == Some(true) {
        return Ok(SyncOutcome::Suspended(fetched));
    }
    context.commit_status.picked_up(gitsync, &fetched);
    let target = SyncTarget {
        name: gitsync.name_any(),
        namespace: gitsync.namespace().unwrap_or_else(|| "default".to_string()),
        revision: fetched.text(),
        extra_namespaces: context.extra_namespaces.clone(),
    };
    let desired = load::load(entries, &target, &fetched)?;
    let applied = apply_and_prune(gitsync, context, &desired, &target, &fetched).await?;
    Ok(SyncOutcome::Applied { fetched, applied })
}

/// Applies the revision, then prunes what left it; a failure part way is [`SyncOutcome::ApplyFailed`], retried
/// with backoff.
async fn apply_and_prune(
    gitsync: &GitSync,
    context: &SyncContext,
    desired: &[DesiredObject],
    target: &SyncTarget,
    fetched: &Fetched,
) -> Result<Applied, Halt> {
    let mut progress = ApplyProgress::default();
    let previous = gitsync
        .status
        .as_ref()
        .map(|status| status.inventory_entries())
        .unwrap_or_default();
    let input = PruneInput {
        previous: &previous,
        desired,
        target,
        policy: PrunePolicy {
            prune: gitsync.spec.prune.unwrap_or(false),
            allow_database_deletion: gitsync.spec.allow_database_deletion.unwrap_or(false),
        },
    };
    let result = match apply_objects(desired, target, context, gitsync, &mut progress).await {
        Ok(()) => prune(&input, context, gitsync).await,
        Err(error) => Err(error),
    };
    match result {
        Ok(kept) => Ok(Applied {
            entries: desired.iter().map(|object| object.entry.clone()).collect(),
            written: progress.written,
            conflicts: progress.conflicts,
            kept,
        }),
        Err(error) => Err(Halt::Retry(
            Box::new(SyncOutcome::ApplyFailed {
                fetched: fetched.clone(),
                done: progress.done,
                total: desired.len(),
                error: error.to_string(),
            }),
            error,
        )),
    }
}
