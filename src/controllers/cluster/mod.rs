//! The REC controller: makes a `RedisEnterpriseCluster` a running Redis Enterprise cluster. It may write the
//! REC's children (ServiceAccount, Role, RoleBinding, credentials Secret, Services, PodDisruptionBudget,
//! StatefulSet), the REC's status, events, and bootstrap requests to the cluster's nodes; nothing else.
//!
//! Each reconcile is a pipeline of stages, one module each: [`validate`] the spec (first, so an invalid spec
//! costs no I/O) → [`dereference`] (Secrets, StatefulSet, pods, REST state) → [`validate`] the references →
//! [`build`] (pure; [`rollout`] decides the partition) → [`apply`] (Kubernetes children) and [`nodes`] (REST
//! bootstrap) → [`status`].
//!
//! States: `PendingCreation` → `BootstrappingFirstPod` (pod 0 creates the cluster) → `Initializing` (the other pods
//! join in ordinal order) → `Running` (every node `active` in `GET /v1/nodes`). Pod-template changes roll one node
//! at a time from the highest ordinal (`RunningRollingUpdate`, or `Upgrade` when the image changes), each only
//! after the previous one is back and `active` and every other node is `active` (see [`rollout`]). Lowering
//! `nodes` is refused (`Stalled`, `ScaleDownNotSupported`): the StatefulSet keeps its replicas. An invalid spec is
//! `Invalid`, `Stalled`, and nothing is written to the children.
//!
//! Waiting is not an error: it requeues after [`ClusterControllerSettings::poll`]. Failures go to
//! `error_policy`: per-object exponential backoff, longer when the cluster answers 409 busy.
//!
//! Deletion is gated ([`deletion`]): the finalizer `redisgitops.dev/delete-cluster`, added before any child is
//! created (and to existing RECs at their next reconcile), keeps a deleted REC while a REDB lives on the cluster or
//! while it is annotated `redisgitops.dev/protect: "true"` (`DeletionBlocked`, with a Warning event saying how to
//! proceed). The children carry owner references, so they keep running until the REC is gone, then Kubernetes
//! garbage collection removes them. The admin credentials Secret has no owner reference: like the volume claims it
//! outlives the REC, and a missing Secret of a cluster that was already bootstrapped is `Stalled`
//! (`CredentialsSecretMissing`, "restore the Secret") instead of getting a new password the cluster would refuse.

pub mod apply;
pub mod build;
pub mod deletion;
pub mod dereference;
pub mod error;
pub mod nodes;
pub mod rollout;
pub mod status;
pub mod validate;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use kube::core::DeserializeGuard;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use tracing::{debug, info, instrument, warn};

pub use error::ClusterError;

use self::build::{Plan, build};
use self::nodes::{NodesProgress, Note, converge_nodes};
use self::rollout::RolloutStep;
use self::status::{ConditionValue, Report, write_status};
use super::{Backoff, ControllerContext, credentials_secret_name, resync_interval};
use crate::api::RedisEnterpriseCluster;
use crate::api::conditions::types;
use crate::enterprise::states::ClusterState;
use crate::runtime::{ConditionStatus, ErrorCategory, Publisher, ShutdownSignal, api_in, guard, object_key};

/// The controller's name on events.
pub const CONTROLLER_NAME: &str = "redis-gitops-cluster";
/// The `controller` label of this controller's metrics.
const METRICS_LABEL: &str = "cluster";

/// How often the controller looks again.
#[derive(Clone, Copy, Debug)]
pub struct ClusterControllerSettings {
    /// Requeue of a healthy cluster (the REST API is not watchable). Default: 5 minutes.
    pub resync: Duration,
    /// Requeue while waiting for pods, bootstraps and rolling updates. Default: 2 seconds.
    pub poll: Duration,
    /// Cap of the per-object failure backoff. Default: 5 minutes.
    pub max_backoff: Duration,
}

impl Default for ClusterControllerSettings {
    fn default() -> Self {
        Self {
            resync: Duration::from_secs(300),
            poll: Duration::from_secs(2),
            max_backoff: Duration::from_secs(300),
        }
    }
}

/// What a cluster's reconciles remember between passes, only to announce completions once.
#[derive(Clone, Debug, Default)]
struct Memory {
    /// Pods whose join this controller started.
    joining: BTreeSet<String>,
    /// Ordinals let go for a rolling update and not yet back as active nodes.
    upgrading: BTreeSet<i32>,
}

/// What the controller shares between reconciles.
struct Shared {
    context: ControllerContext,
    settings: ClusterControllerSettings,
    events: Publisher,
    backoff: Backoff,
    memory: Mutex<HashMap<String, Memory>>,
    /// After a failure whose report changed the status: the resourceVersion of that write and when the backoff
    /// ends. The watch event of our own status write must not cut the backoff short.
    backing_off: Mutex<HashMap<String, (String, Option<Instant>)>>,
}

/// Runs the REC controller over all namespaces until `shutdown` resolves, with the default settings.
pub async fn run(context: ControllerContext, shutdown: impl std::future::Future<Output = ()> + Send + 'static) {
    run_with_settings(context, ClusterControllerSettings::default(), shutdown).await;
}

/// Runs the REC controller with `settings` (tests use short intervals).
pub async fn run_with_settings(
    context: ControllerContext,
    settings: ClusterControllerSettings,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    run_in(context, settings, None, shutdown).await;
}

/// [`run_with_settings`] for one watch of a [`crate::runtime::WatchScope`]: RECs and their children in
/// `namespace` only, or in all namespaces with `None`.
pub async fn run_in(
    context: ControllerContext,
    settings: ClusterControllerSettings,
    namespace: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let scope = namespace.as_deref();
    let client = context.client.clone();
    let shared = Arc::new(Shared {
        events: Publisher::new(client.clone(), CONTROLLER_NAME, context.instance.clone()),
        backoff: Backoff::new(settings.max_backoff),
        memory: Mutex::new(HashMap::new()),
        backing_off: Mutex::new(HashMap::new()),
        context,
        settings,
    });
    let shutdown = ShutdownSignal::relay(shutdown);
    if !wait_for_crd(&client, scope, shutdown.clone()).await {
        return;
    }
    let all = watcher::Config::default().any_semantic();
    // Children carry the official `app` label; watching only those keeps unrelated Secrets out of memory.
    let children = watcher::Config::default().any_semantic().labels("app=redis-enterprise");
    // One REC that does not decode is reported on its own and does not stop the watch of the others.
    Controller::new(api_in::<DeserializeGuard<RedisEnterpriseCluster>>(&client, scope), all)
        .owns(api_in::<StatefulSet>(&client, scope), children.clone())
        .owns(api_in::<Service>(&client, scope), children.clone())
        // The credentials Secret has no owner reference (it outlives the REC); its labels name the cluster.
        .watches(api_in::<Secret>(&client, scope), children.clone(), |secret: Secret| {
            let namespace = secret.namespace()?;
            let cluster = secret.labels().get("redis.io/cluster")?.clone();
            Some(ObjectRef::<DeserializeGuard<RedisEnterpriseCluster>>::new(&cluster).within(&namespace))
        })
        .owns(api_in::<PodDisruptionBudget>(&client, scope), children)
        .with_config(
            kube::runtime::controller::Config::default().concurrency(crate::controllers::RECONCILE_CONCURRENCY),
        )
        .graceful_shutdown_on(shutdown.stopped())
        .run(reconcile_guarded, error_policy, shared)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => debug!(cluster = %object, "cluster reconciled"),
                Err(error) => debug!(
                    error = %crate::runtime::errors::controller_error_text(&error, ToString::to_string),
                    "cluster reconcile failed"
                ),
            }
        })
        .await;
}

/// Waits until RECs can be listed where the controller watches (the CRD is installed), retrying with backoff up
/// to 30 s; false on shutdown.
async fn wait_for_crd(client: &kube::Client, namespace: Option<&str>, mut shutdown: ShutdownSignal) -> bool {
    let api = api_in::<RedisEnterpriseCluster>(client, namespace);
    let mut delay = Duration::from_millis(500);
    loop {
        match api.list(&kube::api::ListParams::default().limit(1)).await {
            Ok(_) => return true,
            Err(error) => {
                warn!(error = %crate::runtime::errors::kube_error_text(&error), ?delay, "unable to list RedisEnterpriseClusters (is the CRD installed?); retrying");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.wait() => return false,
        }
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

/// Reconciles a REC that decoded; one that did not gets a Warning event and waits for a change.
async fn reconcile_guarded(
    cluster: Arc<DeserializeGuard<RedisEnterpriseCluster>>,
    shared: Arc<Shared>,
) -> Result<Action, ClusterError> {
    match guard::decoded(cluster.as_ref(), &shared.events).await {
        Some(cluster) => reconcile(cluster, shared).await,
        None => Ok(Action::await_change()),
    }
}

#[instrument(skip_all, fields(cluster = %object_key(cluster.as_ref())))]
async fn reconcile(cluster: Arc<RedisEnterpriseCluster>, shared: Arc<Shared>) -> Result<Action, ClusterError> {
    let started = Instant::now();
    let key = object_key(cluster.as_ref());
    let backing_off = shared
        .backing_off
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&key)
        .cloned();
    if let Some((written, Some(until))) = backing_off
        && cluster.resource_version().as_deref() == Some(written.as_str())
        && let Some(remaining) = until.checked_duration_since(started)
    {
        // Only our own failure report changed since the failure: keep backing off.
        return Ok(Action::requeue(remaining));
    }
    let result = if cluster.metadata.deletion_timestamp.is_some() {
        // Nothing is applied any more (it would bring children back); the children run until the REC is gone.
        handle_deletion(&cluster, &shared).await
    } else {
        reconcile_cluster(&cluster, &shared).await
    };
    let metrics = &shared.context.metrics;
    match result {
        Ok((action, waiting)) => {
            shared.backoff.succeeded(&key);
            shared
                .backing_off
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
            let result = if waiting { "waiting" } else { "success" };
            metrics.record_reconcile(METRICS_LABEL, result, None);
            debug!(cluster = %key, elapsed = ?started.elapsed(), result, "cluster reconciled");
            Ok(action)
        }
        Err(error) => {
            metrics.record_reconcile(METRICS_LABEL, "failure", Some(error.category()));
            report_failure(&cluster, &shared, &error).await;
            Err(error)
        }
    }
}

/// Per-object backoff; rate-limited failures (409 busy, 429) start longer.
fn error_policy(
    cluster: Arc<DeserializeGuard<RedisEnterpriseCluster>>,
    error: &ClusterError,
    shared: Arc<Shared>,
) -> Action {
    let key = object_key(cluster.as_ref());
    let delay = shared.backoff.failed(&key, error.is_rate_limited());
    if let Some((_, until)) = shared
        .backing_off
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_mut(&key)
    {
        *until = Some(Instant::now() + delay);
    }
    warn!(cluster = %key, category = error.category(), %error, ?delay, "cluster reconcile failed; retrying");
    Action::requeue(delay)
}

async fn publish(shared: &Shared, cluster: &RedisEnterpriseCluster, type_: EventType, reason: &str, note: &str) {
    shared.events.publish(cluster, type_, reason, "Reconcile", note).await;
}

/// Reports a failed reconcile in status (Ready=False with the error) and, when that is news, as a Warning event.
async fn report_failure(cluster: &RedisEnterpriseCluster, shared: &Shared, error: &ClusterError) {
    let old = cluster.status.as_ref();
    let old_state = old.and_then(|s| s.state.as_deref()).map(ClusterState::from);
    let category = error.category();
    let message = error.to_string();
    let report = Report {
        state: match error {
            ClusterError::BootstrapFailed { .. } => ClusterState::Error,
            _ => old_state.unwrap_or(ClusterState::PendingCreation),
        },
        spec_status: "Valid",
        credentials_secret_name: Some(credentials_secret_name(cluster)),
        ready: ConditionValue::no(category, message.clone()),
        reconciling: if error.is_stalled() {
            ConditionValue::no(category, "waiting for a change to the referenced Secret or the spec")
        } else {
            ConditionValue::yes(
                "RetryingAfterFailure",
                format!("retrying with backoff after: {message}"),
            )
        },
        stalled: if error.is_stalled() {
            ConditionValue::yes(category, message.clone())
        } else {
            ConditionValue::no("NotStalled", "the failure may be transient; retrying")
        },
    };
    let previous = status::condition(old, types::READY);
    let news = previous.is_none_or(|c| c.reason != category || c.message != message);
    if news {
        publish(shared, cluster, EventType::Warning, category, &message).await;
    }
    match write_status(&shared.context.client, cluster, &report).await {
        Ok(Some(written)) => {
            shared
                .backing_off
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(object_key(cluster), (written, None));
        }
        Ok(None) => {}
        Err(status_error) => {
            warn!(cluster = %object_key(cluster), error = %status_error, "failed to report a failure in status");
        }
    }
}

/// A deleted REC: keeps the finalizer while a database lives on the cluster or the REC is protected (status and a
/// Warning event say why and how to proceed), removes it otherwise.
async fn handle_deletion(cluster: &RedisEnterpriseCluster, shared: &Shared) -> Result<(Action, bool), ClusterError> {
    if !deletion::has_finalizer(cluster) {
        return Ok((Action::await_change(), false));
    }
    let client = &shared.context.client;
    let key = object_key(cluster);
    let residents = deletion::residents(client, cluster).await?;
    match deletion::decide(&key, deletion::is_protected(cluster), &residents) {
        deletion::Gate::Release => {
            if !deletion::remove_finalizer(client, cluster).await? {
                return Ok((Action::requeue(shared.settings.poll), true));
            }
            shared.memory.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
            info!(cluster = %key, "no database lives on the cluster; its deletion goes ahead");
            publish(
                shared,
                cluster,
                EventType::Normal,
                "DeletionReleased",
                &format!(
                    "no database lives on cluster {key}: the cluster and its children are deleted; the admin Secret \
                     {} is kept",
                    credentials_secret_name(cluster)
                ),
            )
            .await;
            Ok((Action::await_change(), false))
        }
        deletion::Gate::Blocked {
            stalled,
            reason,
            message,
        } => {
            let old = cluster.status.as_ref();
            let report = Report {
                state: old
                    .and_then(|s| s.state.as_deref())
                    .map_or(ClusterState::PendingCreation, ClusterState::from),
                spec_status: if old.and_then(|s| s.spec_status.as_deref()) == Some("Invalid") {
                    "Invalid"
                } else {
                    "Valid"
                },
                credentials_secret_name: Some(credentials_secret_name(cluster)),
                ready: ConditionValue::no(reason, message.clone()),
                reconciling: if stalled {
                    ConditionValue::no(reason, "the deletion waits for a change by the user")
                } else {
                    ConditionValue::yes(reason, message.clone())
                },
                stalled: if stalled {
                    ConditionValue::yes(reason, message.clone())
                } else {
                    ConditionValue::no("NotStalled", "the databases on the cluster are being deleted")
                },
            };
            let previous = status::condition(old, types::READY);
            if previous.is_none_or(|c| c.reason != reason || c.message != message) {
                let type_ = if stalled { EventType::Warning } else { EventType::Normal };
                publish(shared, cluster, type_, reason, &message).await;
            }
            write_status(client, cluster, &report).await?;
            // REDBs are not watched by this controller (a REC's own changes, the annotation included, are): look
            // again soon, less often while the user has to act.
            let delay = if stalled {
                (shared.settings.poll * 10).min(shared.settings.resync.max(shared.settings.poll))
            } else {
                shared.settings.poll
            };
            Ok((Action::requeue(delay), true))
        }
    }
}

/// One reconcile. Returns the next action and whether the cluster is still converging.
async fn reconcile_cluster(cluster: &RedisEnterpriseCluster, shared: &Shared) -> Result<(Action, bool), ClusterError> {
    let client = &shared.context.client;
    // Before any child exists, so that no deletion can take the cluster's databases without the gate.
    if !deletion::ensure_finalizer(client, cluster).await? {
        return Ok((Action::requeue(shared.settings.poll), true));
    }
    let old_status = cluster.status.as_ref();
    let old_state = old_status
        .and_then(|s| s.state.as_deref())
        .map(ClusterState::from)
        .unwrap_or_default();

    let validated_cluster = match validate::validate_spec(cluster) {
        Ok(validated) => validated,
        Err(invalid) => {
            let message = format!(
                "the spec is invalid; fix it and the agent continues: {}",
                invalid.message
            );
            let report = Report {
                state: ClusterState::Invalid,
                spec_status: "Invalid",
                credentials_secret_name: old_status.and_then(|s| s.cluster_credential_secret_name.clone()),
                ready: ConditionValue::no("InvalidSpec", message.clone()),
                reconciling: ConditionValue::no("InvalidSpec", "nothing is changed until the spec is fixed"),
                stalled: ConditionValue::yes("InvalidSpec", message.clone()),
            };
            let previous = status::condition(old_status, types::STALLED);
            if previous.is_none_or(|c| c.reason != "InvalidSpec" || c.message != message) {
                publish(shared, cluster, EventType::Warning, "InvalidSpec", &message).await;
            }
            write_status(client, cluster, &report).await?;
            return Ok((Action::await_change(), false));
        }
    };

    let observed = dereference::dereference(&shared.context, cluster).await?;
    let validated = validate::validate_references(cluster, validated_cluster, &observed)?;
    let plan = build(&validated, &observed);

    let key = object_key(cluster);
    let mut memory = shared
        .memory
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&key)
        .cloned()
        .unwrap_or_default();
    let mut notes: Vec<Note> = Vec::new();
    note_rollout(cluster, &plan, &mut memory, &mut notes);
    let live_replicas = observed.live_replicas();

    let applied = apply::apply_children(
        client,
        &validated.cluster.namespace,
        plan.resources.clone(),
        match (validated.owns_credentials_secret, observed.credentials_secret.is_some()) {
            (false, _) => apply::CredentialsSecretWrite::Never,
            (true, true) => apply::CredentialsSecretWrite::UpdateOnly,
            (true, false) => apply::CredentialsSecretWrite::Create,
        },
        validated.cluster.persistence.as_ref().is_some_and(|p| p.resize_allowed),
    )
    .await?;
    if !applied.written.is_empty() {
        info!(cluster = %key, written = ?applied.written, "applied cluster children");
    }
    if live_replicas.is_some_and(|live| plan.replicas > live) {
        notes.push(Note {
            reason: "ScalingUp",
            message: format!(
                "scaling the cluster from {} to {} nodes",
                live_replicas.unwrap_or_default(),
                plan.replicas
            ),
        });
    }

    let progress = converge_nodes(
        &shared.context,
        cluster,
        &validated,
        &observed,
        plan.replicas,
        &mut memory.joining,
        &mut notes,
    )
    .await;
    shared
        .memory
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key.clone(), memory);
    let progress = progress?;
    if matches!(progress, NodesProgress::Running { .. }) {
        ensure_s3_url(shared, cluster).await?;
    }

    let report = compose_report(cluster, &plan, &progress, &old_state, observed.stateful_set.is_none());
    for note in &notes {
        publish(shared, cluster, EventType::Normal, note.reason, &note.message).await;
    }
    publish_transitions(shared, cluster, &old_state, &report, &plan).await;
    write_status(client, cluster, &report).await?;

    let settled = report.state == ClusterState::Running && plan.scale_in_refused.is_none();
    let action = if report.state == ClusterState::Running {
        Action::requeue(resync_interval(shared.settings.resync))
    } else {
        Action::requeue(shared.settings.poll)
    };
    Ok((action, !settled))
}

/// Rolling-update bookkeeping: remembers the pod let go, announces pods that came back active.
fn note_rollout(cluster: &RedisEnterpriseCluster, plan: &Plan, memory: &mut Memory, notes: &mut Vec<Note>) {
    let name = cluster.name_any();
    let back: Vec<i32> = memory
        .upgrading
        .iter()
        .copied()
        .filter(|&ordinal| {
            usize::try_from(ordinal)
                .ok()
                .and_then(|index| plan.pods.get(index))
                .is_some_and(|pod| pod.updated && pod.ready && pod.node_active)
        })
        .collect();
    for ordinal in back {
        memory.upgrading.remove(&ordinal);
        notes.push(Note {
            reason: "NodeUpgraded",
            message: format!("pod {name}-{ordinal} runs the new pod template and its node is active"),
        });
    }
    if let RolloutStep::Replace { ordinal } = plan.rollout.step {
        memory.upgrading.insert(ordinal);
    }
}

fn compose_report(
    cluster: &RedisEnterpriseCluster,
    plan: &Plan,
    progress: &NodesProgress,
    old_state: &ClusterState,
    first_pass: bool,
) -> Report {
    let name = cluster.name_any();
    let replicas = plan.replicas;
    let converging = !matches!(progress, NodesProgress::Running { .. });
    let rolling = plan.rollout.outdated > 0 || (old_state.is_rolling() && converging);
    let (state, reconciling) = if rolling {
        let upgrade = plan.upgrade || (plan.rollout.outdated == 0 && *old_state == ClusterState::Upgrade);
        let updated = usize::try_from(replicas).unwrap_or_default() - plan.rollout.outdated;
        let message = match &plan.rollout.step {
            RolloutStep::Replace { ordinal } => {
                format!("replacing pod {name}-{ordinal} ({updated} of {replicas} pods updated)")
            }
            RolloutStep::Waiting { next, blocker } => format!(
                "pod {name}-{next} waits for pod {name}-{blocker} to be Ready with an active node ({updated} of \
                 {replicas} pods updated)"
            ),
            RolloutStep::Complete => {
                format!("all {replicas} pods updated; waiting for the last replaced node to become active")
            }
        };
        let (state, reason) = if upgrade {
            (ClusterState::Upgrade, "Upgrade")
        } else {
            (ClusterState::RunningRollingUpdate, "RollingUpdate")
        };
        (state, ConditionValue::yes(reason, message))
    } else {
        match progress {
            NodesProgress::Waiting { state, reason, message } => {
                let state = if first_pass {
                    ClusterState::PendingCreation
                } else {
                    state.clone()
                };
                (state, ConditionValue::yes(reason, message.clone()))
            }
            NodesProgress::Running { .. } => (
                ClusterState::Running,
                ConditionValue::no("ReconciliationSucceeded", "the cluster matches the spec"),
            ),
        }
    };
    let stalled = match plan.scale_in_refused {
        Some((asked, kept)) => ConditionValue::yes(
            "ScaleDownNotSupported",
            format!(
                "spec.nodes is {asked} but the cluster has {kept} nodes; removing nodes is not supported, so the \
                 StatefulSet keeps {kept} replicas: restore `nodes: {kept}` in the spec"
            ),
        ),
        None => ConditionValue::no("NotStalled", "nothing blocks progress"),
    };
    let ready = if stalled.status {
        ConditionValue::no(&stalled.reason, stalled.message.clone())
    } else if state == ClusterState::Running {
        ConditionValue::yes("ClusterRunning", format!("all {replicas} nodes are active"))
    } else {
        ConditionValue::no(&reconciling.reason, reconciling.message.clone())
    };
    Report {
        state,
        spec_status: "Valid",
        credentials_secret_name: Some(credentials_secret_name(cluster)),
        ready,
        reconciling,
        stalled,
    }
}

/// Sends `spec.backup.s3.url` to the cluster as its `s3_url` (the S3-compatible endpoint of backups of type s3),
/// when the cluster has another one.
async fn ensure_s3_url(shared: &Shared, cluster: &RedisEnterpriseCluster) -> Result<(), ClusterError> {
    let Some(url) = cluster
        .spec
        .backup
        .as_ref()
        .and_then(|backup| backup.s3.as_ref())
        .and_then(|s3| s3.url.clone())
        .filter(|url| !url.is_empty())
    else {
        return Ok(());
    };
    let namespace = cluster.namespace().unwrap_or_default();
    let rest = crate::controllers::connect_to_cluster(&shared.context, &namespace, cluster)
        .await
        .map_err(|error| ClusterError::Rest {
            action: format!("connect to cluster {namespace}/{}", cluster.name_any()),
            source: crate::enterprise::EnterpriseError::Configuration {
                reason: error.to_string(),
            },
        })?;
    let rest_error = |action: &str| {
        let action = format!("{action} of cluster {namespace}/{}", cluster.name_any());
        move |source| ClusterError::Rest { action, source }
    };
    let live = rest.cluster().await.map_err(rest_error("read the settings"))?;
    if live.get("s3_url").and_then(serde_json::Value::as_str) != Some(url.as_str()) {
        rest.update_cluster(&serde_json::json!({ "s3_url": url }))
            .await
            .map_err(rest_error("set the S3 endpoint (s3_url)"))?;
    }
    Ok(())
}

async fn publish_transitions(
    shared: &Shared,
    cluster: &RedisEnterpriseCluster,
    old_state: &ClusterState,
    report: &Report,
    plan: &Plan,
) {
    if report.state != *old_state {
        if report.state.is_rolling() && !old_state.is_rolling() {
            let image = plan
                .resources
                .stateful_set
                .spec
                .as_ref()
                .and_then(|spec| spec.template.spec.as_ref())
                .and_then(|pod| pod.containers.first())
                .and_then(|container| container.image.clone())
                .unwrap_or_default();
            let what = if report.state == ClusterState::Upgrade {
                format!("upgrading to {image}")
            } else {
                "applying a pod-template change".to_string()
            };
            let note = format!("{what}, one node at a time from the highest ordinal");
            publish(shared, cluster, EventType::Normal, "RollingUpdateStarted", &note).await;
        }
        if report.state == ClusterState::Running {
            publish(
                shared,
                cluster,
                EventType::Normal,
                "ClusterRunning",
                &report.ready.message,
            )
            .await;
        }
    }
    let previous = status::condition(cluster.status.as_ref(), types::STALLED);
    if report.stalled.status
        && previous.is_none_or(|c| c.reason != report.stalled.reason || ConditionStatus::of(c) != ConditionStatus::True)
    {
        publish(
            shared,
            cluster,
            EventType::Warning,
            "ScaleDownRefused",
            &report.stalled.message,
        )
        .await;
    }
}
