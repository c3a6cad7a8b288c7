//! The GitSync controller: poll the source → read the tree → load and validate the whole revision → apply the
//! objects that changed (server-side apply, field manager `redis-gitops/git`, RECs first) → prune by inventory →
//! report status and events. A revision that fails validation applies nothing and the last good one stays.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};
use tracing::{info, warn};

use super::plan::{
    DesiredObject, GITSYNC_NAME_LABEL, GITSYNC_NAMESPACE_LABEL, KeepReason, LiveObject, MAX_INVENTORY_BYTES,
    MAX_MESSAGE_CHARS, Placements, PrunePolicy, REVISION_ANNOTATION, SyncTarget, cap_message, desired_objects,
    drifted_fields, foreign_owner, inventory_bytes, labels_of, plan_prune, quote_names,
};
use super::settings::{credentials, settings, tree_files};
use crate::api::conditions::{Condition, set_condition, types};
use crate::api::gitsync::{DeletionPolicy, GitSync, GitSyncStatus, InventoryEntry, SourceError as StatusError};
use crate::api::{RedisEnterpriseCluster, RedisEnterpriseDatabase, keys};
use crate::manifests::{Diagnostic, LoadOptions, load_files};
use crate::source::{GitSource, ReadOptions, Revision, SourceConfig, SourceError};
use crate::telemetry::{CategoryLabels, GitSyncLabels, Metrics, ResultLabels};

/// The field manager of everything the sync writes.
pub const FIELD_MANAGER: &str = "redis-gitops/git";
/// At most this many errors are kept in a GitSync's status.
pub const MAX_STATUS_ERRORS: usize = 50;

/// What the controller needs, created once.
pub struct SyncContext {
    /// The API client.
    pub client: Client,
    /// Directory of the Git caches.
    pub cache_dir: PathBuf,
    /// Namespaces every GitSync may write to besides its own.
    pub extra_namespaces: BTreeSet<String>,
    /// The event recorder, one for the controller.
    pub recorder: Recorder,
    /// The agent's metrics.
    pub metrics: Arc<Metrics>,
    failures: Mutex<HashMap<String, u32>>,
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
        let reporter = Reporter {
            controller: "redis-gitops-sync".to_string(),
            instance,
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            cache_dir,
            extra_namespaces,
            metrics,
            failures: Mutex::new(HashMap::new()),
        }
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

/// Why a sync failed in a way worth retrying.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The Git source failed (unreachable, credentials, ref).
    #[error("failed to fetch the source: {0}")]
    Source(#[source] SourceError),
    /// The API server refused or failed a request.
    #[error("failed to {action}: {source}")]
    Kubernetes {
        /// What was being done.
        action: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// A blocking task did not finish.
    #[error("failed to run the Git operation: {0}")]
    Task(String),
}

impl SyncError {
    /// A stable name for event reasons and metric labels.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Source(error) => error.category(),
            Self::Kubernetes { .. } => "KubernetesError",
            Self::Task(_) => "TaskFailed",
        }
    }
}

fn kubernetes(action: impl Into<String>) -> impl FnOnce(kube::Error) -> SyncError {
    let action = action.into();
    move |source| SyncError::Kubernetes { action, source }
}

/// Runs the GitSync controller until `shutdown` resolves.
pub async fn run(context: Arc<SyncContext>, shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static) {
    let api: Api<GitSync> = Api::all(context.client.clone());
    Controller::new(api, watcher::Config::default().any_semantic())
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, context)
        .for_each(|result| async move {
            if let Err(error) = result {
                warn!(%error, "gitsync reconcile failed");
            }
        })
        .await;
}

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
) -> Condition {
    Condition {
        type_: type_.to_string(),
        status: if status { "True" } else { "False" }.to_string(),
        reason: reason.to_string(),
        message: cap_message(&message.into(), MAX_MESSAGE_CHARS),
        observed_generation: generation,
        last_transition_time: now(),
    }
}

/// Reconciles one GitSync.
pub async fn reconcile(gitsync: Arc<GitSync>, context: Arc<SyncContext>) -> Result<Action, SyncError> {
    if let Some(action) = handle_deletion_policy(&gitsync, &context).await? {
        return Ok(action);
    }
    let started = std::time::Instant::now();
    let result = sync(&gitsync, &context).await;
    match &result {
        Ok((_, handled_failure)) => context.record(*handled_failure, started),
        Err(error) => context.record(Some(error.category()), started),
    }
    if result.is_ok()
        && let Some(uid) = gitsync.uid()
        && let Ok(mut failures) = context.failures.lock()
    {
        failures.remove(&uid);
    }
    result.map(|(action, _)| action)
}

/// The finalizer a GitSync carries while its deletion policy is `Delete`.
pub const FINALIZER: &str = "redisgitops.dev/delete-applied-objects";

/// Carries out `spec.deletionPolicy`. With `Delete`, the GitSync holds a finalizer, and when it is deleted the
/// objects of its inventory are deleted under the same rules as pruning (databases and clusters only with
/// `allowDatabaseDeletion`, protected objects never, objects now owned by another GitSync never); with `Orphan` (the
/// default) it holds none and its objects stay. Returns an action when the GitSync is being deleted.
async fn handle_deletion_policy(gitsync: &GitSync, context: &SyncContext) -> Result<Option<Action>, SyncError> {
    let namespace = gitsync.namespace().unwrap_or_else(|| "default".to_string());
    let api: Api<GitSync> = Api::namespaced(context.client.clone(), &namespace);
    let name = gitsync.name_any();
    let wants_finalizer = gitsync.spec.deletion_policy == Some(DeletionPolicy::Delete);
    let has_finalizer = gitsync.finalizers().iter().any(|f| f == FINALIZER);
    if gitsync.metadata.deletion_timestamp.is_some() {
        if has_finalizer {
            if wants_finalizer && !delete_inventory(gitsync, context).await? {
                // Its databases are still being deleted; the clusters go once they are gone.
                return Ok(Some(Action::requeue(Duration::from_secs(2))));
            }
            let remaining: Vec<&String> = gitsync.finalizers().iter().filter(|f| *f != FINALIZER).collect();
            api.patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"finalizers": remaining}})),
            )
            .await
            .map_err(kubernetes(format!("remove the finalizer of GitSync {name}")))?;
        }
        return Ok(Some(Action::await_change()));
    }
    if wants_finalizer != has_finalizer {
        let mut finalizers: Vec<String> = gitsync
            .finalizers()
            .iter()
            .filter(|f| *f != FINALIZER)
            .cloned()
            .collect();
        if wants_finalizer {
            finalizers.push(FINALIZER.to_string());
        }
        api.patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": finalizers}})),
        )
        .await
        .map_err(kubernetes(format!("update the finalizers of GitSync {name}")))?;
    }
    Ok(None)
}

/// Deletes what the inventory lists, as far as the rules allow; returns `false` while a cluster waits for its
/// databases (deleted in this pass or an earlier one) to be gone.
async fn delete_inventory(gitsync: &GitSync, context: &SyncContext) -> Result<bool, SyncError> {
    let mut inventory = gitsync
        .status
        .as_ref()
        .map(GitSyncStatus::inventory_entries)
        .unwrap_or_default();
    let mut deleting: BTreeSet<String> = BTreeSet::new();
    let mut waiting = false;
    // Read once, at the first cluster (after this pass deleted the databases, which are listed until they are gone).
    let mut placements: Option<Placements> = None;
    let namespace = gitsync.namespace().unwrap_or_else(|| "default".to_string());
    // Deleting a cluster deletes its databases, so both need the GitSync's permission.
    let allow = gitsync.spec.allow_database_deletion.unwrap_or(false);
    // Databases go before the clusters they live in.
    inventory.sort_by_key(|entry| entry.kind != "RedisEnterpriseDatabase");
    for entry in &inventory {
        let api = api_for(&context.client, entry);
        let Some(object) = api
            .get_opt(&entry.name)
            .await
            .map_err(kubernetes(format!("read {} {}", entry.kind, entry.name)))?
        else {
            continue;
        };
        let labels = object.labels();
        let ours = labels.get(GITSYNC_NAME_LABEL) == Some(&gitsync.name_any())
            && labels.get(GITSYNC_NAMESPACE_LABEL) == Some(&namespace);
        let protected = object.annotations().get(keys::PROTECT).is_some_and(|v| v == "true");
        let why_kept = if !ours {
            continue;
        } else if protected {
            Some("it is annotated redisgitops.dev/protect=true")
        } else if !allow {
            Some("the GitSync does not allow deleting databases (spec.allowDatabaseDeletion)")
        } else {
            None
        };
        if let Some(why) = why_kept {
            let note = format!("kept {} {}/{}: {why}", entry.kind, entry.namespace, entry.name);
            publish(context, gitsync, EventType::Warning, "DeletionBlocked", "Delete", &note).await;
            continue;
        }
        if entry.kind == "RedisEnterpriseCluster" {
            if placements.is_none() {
                let namespaces = inventory
                    .iter()
                    .filter(|entry| entry.kind == "RedisEnterpriseCluster")
                    .map(|entry| entry.namespace.as_str());
                placements = Some(live_placements(&context.client, namespaces).await?);
            }
            let databases = placements
                .as_ref()
                .map(|placements| placements.databases_on(&entry.namespace, &entry.name))
                .unwrap_or_default();
            if !databases.is_empty() {
                if databases.iter().any(|database| deleting.contains(database)) {
                    waiting = true;
                } else {
                    let note = format!(
                        "kept {} {}/{}: databases still live on it: {}",
                        entry.kind,
                        entry.namespace,
                        entry.name,
                        quote_names(&databases)
                    );
                    publish(context, gitsync, EventType::Warning, "DeletionBlocked", "Delete", &note).await;
                }
                continue;
            }
        }
        match api.delete(&entry.name, &DeleteParams::default()).await {
            Ok(_) => {
                deleting.insert(format!("{}/{}", entry.namespace, entry.name));
            }
            Err(kube::Error::Api(response)) if response.code == 404 => {}
            Err(source) => {
                return Err(SyncError::Kubernetes {
                    action: format!("delete {} {}", entry.kind, entry.name),
                    source,
                });
            }
        }
    }
    Ok(!waiting)
}

/// Backs off per object: 5 s, 10 s, 20 s... up to 5 minutes, reset by a successful sync.
pub fn error_policy(gitsync: Arc<GitSync>, error: &SyncError, context: Arc<SyncContext>) -> Action {
    let attempts = gitsync.uid().and_then(|uid| {
        let mut failures = context.failures.lock().ok()?;
        let count = failures.entry(uid).or_insert(0);
        *count += 1;
        Some(*count)
    });
    let attempts = attempts.unwrap_or(1);
    let delay = Duration::from_secs(5)
        .saturating_mul(2u32.saturating_pow(attempts.saturating_sub(1).min(6)))
        .min(Duration::from_secs(300));
    warn!(gitsync = %gitsync.name_any(), category = error.category(), attempts, ?delay, "sync failed; retrying");
    Action::requeue(delay)
}

/// One sync. The second value names the category of a failure that was handled (reported in status) rather than
/// returned for a retry with backoff, such as an invalid revision.
async fn sync(gitsync: &GitSync, context: &SyncContext) -> Result<(Action, Option<&'static str>), SyncError> {
    let namespace = gitsync.namespace().unwrap_or_else(|| "default".to_string());
    let generation = gitsync.metadata.generation;
    let old_status = gitsync.status.clone().unwrap_or_default();
    let mut status = old_status.clone();
    status.observed_generation = generation;
    // Any new value of the annotation triggered this sync through the watch; record it as handled, like Flux.
    if let Some(requested) = gitsync.annotations().get(keys::RECONCILE_REQUESTED_AT) {
        status.last_handled_reconcile_at = Some(requested.clone());
    }
    let settings = match settings(&gitsync.spec) {
        Ok(settings) => settings,
        Err(error) => {
            stalled(&mut status, "InvalidSpec", &error.to_string(), generation);
            write_status(gitsync, context, &old_status, status).await?;
            return Ok((Action::await_change(), Some("InvalidSpec")));
        }
    };
    let requeue = Action::requeue(settings.interval);

    let credentials = match &gitsync.spec.secret_ref {
        None => crate::source::Credentials::none(),
        Some(reference) => {
            let secrets: Api<Secret> = Api::namespaced(context.client.clone(), &namespace);
            match secrets
                .get_opt(&reference.name)
                .await
                .map_err(kubernetes(format!("read Secret {}", reference.name)))?
            {
                Some(secret) => credentials(&secret.data.unwrap_or_default()),
                None => {
                    let message = format!(
                        "Secret {namespace}/{} does not exist; create it or fix spec.secretRef",
                        reference.name
                    );
                    stalled(&mut status, "SecretNotFound", &message, generation);
                    write_status(gitsync, context, &old_status, status).await?;
                    return Ok((requeue, Some("SecretNotFound")));
                }
            }
        }
    };
    let config = SourceConfig {
        url: gitsync.spec.url.clone(),
        reference: settings.reference.clone(),
        credentials,
        cache_dir: context.cache_dir.clone(),
        timeout: settings.timeout,
    };
    let fetched = fetch(config, settings.path.clone(), &context.metrics).await;
    let (revision, entries) = match fetched {
        Ok(fetched) => fetched,
        Err(SyncError::Source(error)) => {
            let reason = error.category();
            let message = format!("{error}; the last applied revision stays");
            set_condition(
                status.conditions.get_or_insert_with(Vec::new),
                condition(types::READY, false, reason, &message, generation),
            );
            set_condition(
                status.conditions.get_or_insert_with(Vec::new),
                condition(types::RECONCILING, false, reason, "", generation),
            );
            publish(context, gitsync, EventType::Warning, reason, "Fetch", &message).await;
            write_status(gitsync, context, &old_status, status).await?;
            return Err(SyncError::Source(error));
        }
        Err(other) => return Err(other),
    };
    let revision_text = revision.to_string();
    status.last_attempted_revision = Some(revision_text.clone());
    let is_new = old_status.last_attempted_revision.as_deref() != Some(revision_text.as_str());
    if is_new {
        publish(
            context,
            gitsync,
            EventType::Normal,
            "NewRevision",
            "Fetch",
            &format!("new revision {revision_text}"),
        )
        .await;
    }

    if gitsync.spec.suspend == Some(true) {
        let applied = old_status
            .last_applied_revision
            .clone()
            .unwrap_or_else(|| "nothing".to_string());
        let ready = old_status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == types::READY)
            .is_some_and(|c| c.status == "True");
        let message = format!("suspended: {applied} stays applied; the source is at {revision_text}");
        set_condition(
            status.conditions.get_or_insert_with(Vec::new),
            condition(types::READY, ready, "Suspended", message, generation),
        );
        write_status(gitsync, context, &old_status, status).await?;
        return Ok((requeue, None));
    }

    let target = SyncTarget {
        name: gitsync.name_any(),
        namespace: namespace.clone(),
        revision: revision_text.clone(),
        extra_namespaces: context.extra_namespaces.clone(),
    };
    let desired = match load_revision(entries, &target) {
        Ok(desired) => desired,
        Err(diagnostics) => {
            let errors: Vec<&Diagnostic> = diagnostics.iter().filter(|d| d.is_error()).collect();
            let not_listed = match errors.len().saturating_sub(MAX_STATUS_ERRORS) {
                0 => String::new(),
                more => format!("; status.errors lists the first {MAX_STATUS_ERRORS}, {more} more not shown"),
            };
            let message = format!(
                "revision {} is invalid ({} errors{not_listed}), nothing was applied; the last applied revision stays. \
                 First: {}",
                revision.short_commit(),
                errors.len(),
                errors.first().map(ToString::to_string).unwrap_or_default()
            );
            status.errors = Some(errors.iter().take(MAX_STATUS_ERRORS).map(|d| status_error(d)).collect());
            set_condition(
                status.conditions.get_or_insert_with(Vec::new),
                condition(types::READY, false, "ValidationFailed", &message, generation),
            );
            set_condition(
                status.conditions.get_or_insert_with(Vec::new),
                condition(
                    types::STALLED,
                    true,
                    "ValidationFailed",
                    "fix the errors in Git",
                    generation,
                ),
            );
            if is_new {
                let listed: Vec<String> = errors
                    .iter()
                    .take(3)
                    .map(|d| cap_message(&d.to_string(), MAX_MESSAGE_CHARS / 3))
                    .collect();
                publish(
                    context,
                    gitsync,
                    EventType::Warning,
                    "ValidationFailed",
                    "Validate",
                    &listed.join("\n"),
                )
                .await;
            }
            write_status(gitsync, context, &old_status, status).await?;
            return Ok((requeue, Some("ValidationFailed")));
        }
    };

    let entries: Vec<InventoryEntry> = desired.iter().map(|object| object.entry.clone()).collect();
    let inventory_size = inventory_bytes(&entries);
    if inventory_size > MAX_INVENTORY_BYTES {
        let message = format!(
            "revision {} is too large to track: the inventory of its {} objects would take {inventory_size} bytes of \
             status, more than the {MAX_INVENTORY_BYTES} a GitSync may hold; nothing was applied; split the objects \
             across several GitSyncs (spec.path)",
            revision.short_commit(),
            entries.len()
        );
        stalled(&mut status, "InventoryTooLarge", &message, generation);
        if is_new {
            publish(
                context,
                gitsync,
                EventType::Warning,
                "InventoryTooLarge",
                "Validate",
                &message,
            )
            .await;
        }
        write_status(gitsync, context, &old_status, status).await?;
        return Ok((requeue, Some("InventoryTooLarge")));
    }

    let mut progress = ApplyProgress::default();
    let previous = old_status.inventory_entries();
    let policy = PrunePolicy {
        prune: gitsync.spec.prune.unwrap_or(false),
        allow_database_deletion: gitsync.spec.allow_database_deletion.unwrap_or(false),
    };
    let outcome = match apply_objects(&desired, &target, context, gitsync, &mut progress).await {
        Ok(()) => prune(&previous, &desired, &target, policy, context, gitsync).await,
        Err(error) => Err(error),
    };
    let kept = match outcome {
        Ok(kept) => kept,
        Err(error) => {
            let failure = ApplyFailure {
                revision: &revision,
                error: &error,
                progress: &progress,
                total: desired.len(),
            };
            report_apply_failure(gitsync, context, &old_status, status, &failure).await?;
            return Err(error);
        }
    };
    let written = progress.written;
    let conflicts = std::mem::take(&mut progress.conflicts);

    status.errors = None;
    let mut inventory: Vec<InventoryEntry> = entries
        .into_iter()
        .filter(|entry| !conflicts.iter().any(|conflict| same(&conflict.entry, entry)))
        .collect();
    let untracked = add_kept_within_budget(&mut inventory, &kept);
    status.set_inventory(&inventory);
    let short = match &revision.ref_name {
        Some(name) => format!("{name}@sha1:{}", revision.short_commit()),
        None => format!("sha1:{}", revision.short_commit()),
    };
    let old_ready_message = old_status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == types::READY)
        .map(|c| c.message.clone());
    if let Some(first) = conflicts.first() {
        // A revision with a conflict is not applied completely, so like Flux we report it as failed: the last
        // applied revision stays, the rest of the revision is applied and tracked, and the GitSync is Stalled until
        // the other GitSync lets go of the object or this one stops claiming it.
        let stays = match &old_status.last_applied_revision {
            Some(applied) => format!("{applied} stays the last applied revision"),
            None => "no revision is applied completely yet".to_string(),
        };
        let more = match conflicts.len() {
            1 => String::new(),
            count => format!(" (and {} more objects owned elsewhere)", count - 1),
        };
        let message = format!(
            "{} {}/{} belongs to GitSync {}; not applied{more}; the rest of revision {short} was applied; {stays}; \
             remove the object from one of the two GitSyncs",
            first.entry.kind, first.entry.namespace, first.entry.name, first.owner
        );
        stalled(&mut status, "Conflict", &message, generation);
        if let Some(conditions) = status.conditions.as_mut() {
            conditions.retain(|c| c.type_ != types::RECONCILING);
        }
        let message = cap_message(&message, MAX_MESSAGE_CHARS);
        if old_ready_message.as_deref() != Some(message.as_str()) {
            publish(context, gitsync, EventType::Warning, "Conflict", "Apply", &message).await;
        }
        if written > 0 || is_new {
            status.last_sync_time = Some(now());
        }
        write_status(gitsync, context, &old_status, status).await?;
        return Ok((requeue, Some("Conflict")));
    }
    status.last_applied_revision = Some(revision_text.clone());
    let blocked: Vec<String> = kept
        .iter()
        .filter(|(_, reason)| reason.blocks_cluster_prune())
        .map(|(entry, reason)| match reason {
            KeepReason::ClusterHasDatabases { databases } => format!(
                "{} {}/{} still holds databases {}",
                entry.kind,
                entry.namespace,
                entry.name,
                quote_names(databases)
            ),
            _ => format!(
                "{} {}/{} needs spec.allowDatabaseDeletion",
                entry.kind, entry.namespace, entry.name
            ),
        })
        .collect();
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    if blocked.is_empty() {
        let mut message = format!("Applied revision {short}");
        if !kept.is_empty() {
            message.push_str(&format!("; {} removed from Git but kept (see events)", kept.len()));
        }
        if untracked > 0 {
            message.push_str(&format!("; {untracked} of them no longer tracked (inventory full)"));
        }
        set_condition(
            conditions,
            condition(types::READY, true, "Applied", message, generation),
        );
        conditions.retain(|c| c.type_ != types::STALLED && c.type_ != types::RECONCILING);
    } else {
        let message = format!(
            "Applied revision {short}; pruning blocked: {}; a cluster is deleted only with spec.prune and \
             spec.allowDatabaseDeletion once no database lives on it",
            blocked.join("; ")
        );
        set_condition(
            conditions,
            condition(types::READY, false, "PruneBlocked", &message, generation),
        );
        set_condition(
            conditions,
            condition(types::STALLED, true, "PruneBlocked", &message, generation),
        );
        conditions.retain(|c| c.type_ != types::RECONCILING);
    }
    if written > 0 || is_new || old_status.last_applied_revision.as_deref() != Some(revision_text.as_str()) {
        status.last_sync_time = Some(now());
        publish(
            context,
            gitsync,
            EventType::Normal,
            "Applied",
            "Apply",
            &format!("revision {revision_text}: {written} objects written"),
        )
        .await;
    }
    {
        let labels = GitSyncLabels {
            namespace: namespace.clone(),
            name: gitsync.name_any(),
        };
        let gauge = context.metrics.last_applied.get_or_create(&labels);
        if old_status.last_applied_revision.as_deref() != Some(revision_text.as_str()) || gauge.get() == 0.0 {
            gauge.set(k8s_openapi::jiff::Timestamp::now().as_millisecond() as f64 / 1000.0);
        }
    }
    write_status(gitsync, context, &old_status, status).await?;
    Ok((requeue, None))
}

/// Adds the objects kept by pruning to `inventory` while the inventory stays within [`MAX_INVENTORY_BYTES`]
/// (counted generously: each entry as if it opened its own group); returns how many no longer fit. Those stay in
/// the cluster, labelled, and are simply no longer tracked: they can never be pruned by accident.
fn add_kept_within_budget(inventory: &mut Vec<InventoryEntry>, kept: &[(InventoryEntry, KeepReason)]) -> usize {
    let mut size = inventory_bytes(inventory);
    let mut untracked = 0;
    let key = |entry: &InventoryEntry| (entry.kind.clone(), entry.namespace.clone(), entry.name.clone());
    let mut tracked: BTreeSet<_> = inventory.iter().map(key).collect();
    for (entry, _) in kept {
        if !tracked.insert(key(entry)) {
            continue;
        }
        let cost = entry.name.len() + entry.namespace.len() + entry.kind.len() + entry.api_version.len() + 64;
        if size + cost > MAX_INVENTORY_BYTES {
            untracked += 1;
            continue;
        }
        size += cost;
        inventory.push(entry.clone());
    }
    untracked
}

fn status_error(diagnostic: &Diagnostic) -> StatusError {
    StatusError {
        file: cap_message(&diagnostic.file, MAX_MESSAGE_CHARS),
        line: diagnostic.line,
        column: diagnostic.column,
        field: diagnostic
            .field
            .as_deref()
            .map(|field| cap_message(field, MAX_MESSAGE_CHARS)),
        message: cap_message(&diagnostic.message, MAX_MESSAGE_CHARS),
    }
}

/// A revision that was not applied completely.
struct ApplyFailure<'a> {
    revision: &'a Revision,
    error: &'a SyncError,
    progress: &'a ApplyProgress,
    total: usize,
}

/// Reports an apply or prune that failed part way: `Ready=False` naming the object and the error, the last applied
/// revision unchanged (the new one is only attempted), and the inventory extended with the objects that did reach
/// the new revision, so a later prune still knows them. The caller retries with backoff.
async fn report_apply_failure(
    gitsync: &GitSync,
    context: &SyncContext,
    old_status: &GitSyncStatus,
    mut status: GitSyncStatus,
    failure: &ApplyFailure<'_>,
) -> Result<(), SyncError> {
    let generation = gitsync.metadata.generation;
    let mut inventory = old_status.inventory_entries();
    inventory.extend(failure.progress.done.iter().cloned());
    inventory.sort();
    inventory.dedup();
    status.set_inventory(&inventory);
    let stays = old_status.last_applied_revision.as_deref().unwrap_or("nothing");
    let message = |error: &str| {
        format!(
            "revision {} was not fully applied ({} of {} objects at it): {error}; {stays} stays the last applied \
             revision, retrying with backoff",
            failure.revision.short_commit(),
            failure.progress.done.len(),
            failure.total,
        )
    };
    // The error (which may quote an API server's long answer) is what gets cut, so the message keeps its end.
    let room = MAX_MESSAGE_CHARS.saturating_sub(message("").chars().count()).max(80);
    let message = message(&cap_message(&failure.error.to_string(), room));
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    set_condition(
        conditions,
        condition(types::READY, false, "ApplyFailed", &message, generation),
    );
    set_condition(
        conditions,
        condition(
            types::RECONCILING,
            true,
            "ProgressingWithRetry",
            "retrying the apply",
            generation,
        ),
    );
    publish(context, gitsync, EventType::Warning, "ApplyFailed", "Apply", &message).await;
    write_status(gitsync, context, old_status, status).await
}

fn stalled(status: &mut GitSyncStatus, reason: &str, message: &str, generation: Option<i64>) {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    set_condition(conditions, condition(types::READY, false, reason, message, generation));
    set_condition(conditions, condition(types::STALLED, true, reason, message, generation));
}

async fn fetch(
    config: SourceConfig,
    path: String,
    metrics: &Metrics,
) -> Result<(Revision, Vec<crate::source::TreeEntry>), SyncError> {
    let histogram = metrics.fetch_duration.clone();
    tokio::task::spawn_blocking(move || {
        let source = GitSource::new(config).map_err(SyncError::Source)?;
        let started = std::time::Instant::now();
        let outcome = source.poll();
        histogram.observe(started.elapsed().as_secs_f64());
        let outcome = outcome.map_err(SyncError::Source)?;
        let entries = source
            .read_tree(&outcome.revision, &path, &ReadOptions::default())
            .map_err(SyncError::Source)?;
        Ok((outcome.revision, entries))
    })
    .await
    .map_err(|error| SyncError::Task(error.to_string()))?
}

fn load_revision(
    entries: Vec<crate::source::TreeEntry>,
    target: &SyncTarget,
) -> Result<Vec<DesiredObject>, Vec<Diagnostic>> {
    let (files, mut diagnostics) = tree_files(entries);
    let options = LoadOptions {
        default_namespace: target.namespace.clone(),
        ..LoadOptions::default()
    };
    let repository = match load_files(&files, &options) {
        Ok(repository) => repository,
        Err(more) => {
            diagnostics.extend(more);
            return Err(diagnostics);
        }
    };
    if !diagnostics.is_empty() {
        return Err(diagnostics);
    }
    desired_objects(&repository, target)
}

/// A typed API for one of the kinds we apply.
fn api_for(client: &Client, entry: &InventoryEntry) -> Api<kube::api::DynamicObject> {
    let (group, version) = entry
        .api_version
        .split_once('/')
        .unwrap_or(("", entry.api_version.as_str()));
    let plural = match entry.kind.as_str() {
        "RedisEnterpriseCluster" => RedisEnterpriseCluster::plural(&()).to_string(),
        _ => RedisEnterpriseDatabase::plural(&()).to_string(),
    };
    let resource = kube::api::ApiResource {
        group: group.to_string(),
        version: version.to_string(),
        api_version: entry.api_version.clone(),
        kind: entry.kind.clone(),
        plural,
    };
    Api::namespaced_with(client.clone(), &entry.namespace, &resource)
}

/// How far an apply got: objects written, and every object that is now at the revision (written or unchanged).
#[derive(Debug, Default)]
struct ApplyProgress {
    written: usize,
    done: Vec<InventoryEntry>,
    /// Objects not applied because another GitSync owns them.
    conflicts: Vec<Conflict>,
}

/// An object of the revision that another GitSync owns (its ownership labels name it).
#[derive(Debug)]
struct Conflict {
    entry: InventoryEntry,
    /// `namespace/name` of the owning GitSync.
    owner: String,
}

/// The live objects of every kind and namespace in `desired`, read with one LIST per kind and namespace (a GET
/// per object would cost 1000 requests per poll for 1000 databases). Keyed by kind, namespace and name.
async fn live_objects(
    desired: &[DesiredObject],
    client: &Client,
) -> Result<HashMap<(String, String, String), Value>, SyncError> {
    let mut groups: Vec<&InventoryEntry> = Vec::new();
    for object in desired {
        let entry = &object.entry;
        if !groups
            .iter()
            .any(|g| g.api_version == entry.api_version && g.kind == entry.kind && g.namespace == entry.namespace)
        {
            groups.push(entry);
        }
    }
    let mut live = HashMap::new();
    for group in groups {
        let list = api_for(client, group)
            .list(&ListParams::default())
            .await
            .map_err(kubernetes(format!(
                "list {} in namespace {}",
                group.kind, group.namespace
            )))?;
        for object in list.items {
            let name = object.name_any();
            let value = serde_json::to_value(&object).unwrap_or(Value::Null);
            live.insert((group.kind.clone(), group.namespace.clone(), name), value);
        }
    }
    Ok(live)
}

/// Applies the objects whose content differs from the live ones, in order (RECs first), recording in `progress`
/// what was written and what is at the revision, so that a failure part way can be reported exactly.
async fn apply_objects(
    desired: &[DesiredObject],
    target: &SyncTarget,
    context: &SyncContext,
    gitsync: &GitSync,
    progress: &mut ApplyProgress,
) -> Result<(), SyncError> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut live_objects = live_objects(desired, &context.client).await?;
    let mut owners_exist: HashMap<String, bool> = HashMap::new();
    for object in desired {
        let api = api_for(&context.client, &object.entry);
        let name = &object.entry.name;
        let live_value =
            live_objects.remove(&(object.entry.kind.clone(), object.entry.namespace.clone(), name.clone()));
        // Never force-apply over an object another GitSync owns: that is how two GitSyncs fight over it.
        if let Some(owner) = live_value
            .as_ref()
            .and_then(|live| foreign_owner(&labels_of(live), target))
        {
            let exists = match owners_exist.get(&owner) {
                Some(exists) => *exists,
                None => {
                    let exists = gitsync_exists(&context.client, &owner).await?;
                    owners_exist.insert(owner.clone(), exists);
                    exists
                }
            };
            if exists {
                progress.conflicts.push(Conflict {
                    entry: object.entry.clone(),
                    owner,
                });
                continue;
            }
            let note = format!(
                "{} {}/{name} was applied by GitSync {owner}, which no longer exists; adopted",
                object.entry.kind, object.entry.namespace
            );
            publish(context, gitsync, EventType::Normal, "Adopted", "Apply", &note).await;
        }
        // The revision annotation records the revision that last changed the object, so an unchanged object is not
        // rewritten by every new commit.
        let mut comparable = object.body.clone();
        if let Some(annotations) = comparable
            .pointer_mut("/metadata/annotations")
            .and_then(Value::as_object_mut)
        {
            annotations.remove(REVISION_ANNOTATION);
        }
        let drift = live_value.as_ref().map(|live| drifted_fields(&comparable, live));
        if drift.as_ref().is_some_and(Vec::is_empty) {
            ensure_synced(&api, object, live_value.as_ref()).await?;
            progress.done.push(object.entry.clone());
            continue;
        }
        let applied = api
            .patch(name, &params, &Patch::Apply(&object.body))
            .await
            .map_err(kubernetes(format!(
                "apply {} {}/{name}",
                object.entry.kind, object.entry.namespace
            )))?;
        progress.written += 1;
        let same_revision = live_value
            .as_ref()
            .and_then(|live| {
                live.pointer(&format!(
                    "/metadata/annotations/{}",
                    REVISION_ANNOTATION.replace('/', "~1")
                ))
            })
            .and_then(Value::as_str)
            == Some(target.revision.as_str());
        if let (Some(fields), true) = (drift, same_revision) {
            let note = format!(
                "{} {}/{name} was changed outside Git; reverted {}",
                object.entry.kind,
                object.entry.namespace,
                fields.join(", ")
            );
            info!(%note, "drift corrected");
            publish(context, gitsync, EventType::Normal, "DriftCorrected", "Apply", &note).await;
        }
        let applied_value = serde_json::to_value(&applied).unwrap_or(Value::Null);
        ensure_synced(&api, object, Some(&applied_value)).await?;
        progress.done.push(object.entry.clone());
    }
    Ok(())
}

/// Whether the GitSync `namespace/name` exists (an object whose owner is gone may be adopted).
async fn gitsync_exists(client: &Client, owner: &str) -> Result<bool, SyncError> {
    let (namespace, name) = owner.split_once('/').unwrap_or(("", owner));
    if namespace.is_empty() || name.is_empty() {
        // Labels that name no GitSync properly: treat the owner as present rather than take the object over.
        return Ok(true);
    }
    let api: Api<GitSync> = Api::namespaced(client.clone(), namespace);
    let found = api
        .get_opt(name)
        .await
        .map_err(kubernetes(format!("read GitSync {owner}")))?;
    Ok(found.is_some())
}

/// Sets `Synced=True` and `sourceRevision` on an applied object, unless they already say so.
async fn ensure_synced(
    api: &Api<kube::api::DynamicObject>,
    object: &DesiredObject,
    live: Option<&Value>,
) -> Result<(), SyncError> {
    let revision = live
        .and_then(|live| {
            live.pointer(&format!(
                "/metadata/annotations/{}",
                REVISION_ANNOTATION.replace('/', "~1")
            ))
        })
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let message = format!("applied from {revision}");
    set_synced(api, object, live, true, "Applied", &message, &revision).await
}

#[allow(clippy::too_many_arguments)]
async fn set_synced(
    api: &Api<kube::api::DynamicObject>,
    object: &DesiredObject,
    live: Option<&Value>,
    synced: bool,
    reason: &str,
    message: &str,
    revision: &str,
) -> Result<(), SyncError> {
    let current: Vec<Condition> = live
        .and_then(|live| live.pointer("/status/conditions"))
        .and_then(|c| serde_json::from_value(c.clone()).ok())
        .unwrap_or_default();
    let current_synced = current.iter().find(|c| c.type_ == types::SYNCED);
    let current_revision = live
        .and_then(|live| live.pointer("/status/sourceRevision"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let status = if synced { "True" } else { "False" };
    if current_synced.is_some_and(|c| c.status == status && c.reason == reason && c.message == message)
        && current_revision == revision
    {
        return Ok(());
    }
    let mut new = condition(
        types::SYNCED,
        synced,
        reason,
        message,
        live.and_then(|l| l.pointer("/metadata/generation"))
            .and_then(Value::as_i64),
    );
    if let Some(existing) = current_synced
        && existing.status == new.status
    {
        new.last_transition_time = existing.last_transition_time.clone();
    }
    let body = json!({
        "apiVersion": object.entry.api_version,
        "kind": object.entry.kind,
        "status": { "conditions": [new], "sourceRevision": revision },
    });
    api.patch_status(
        &object.entry.name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(kubernetes(format!(
        "write the status of {} {}",
        object.entry.kind, object.entry.name
    )))?;
    Ok(())
}

/// Prunes what the previous inventory had and this revision does not; returns the entries kept (orphaned) and why.
async fn prune(
    previous: &[InventoryEntry],
    desired_objects: &[DesiredObject],
    target: &SyncTarget,
    policy: PrunePolicy,
    context: &SyncContext,
    gitsync: &GitSync,
) -> Result<Vec<(InventoryEntry, KeepReason)>, SyncError> {
    let desired: Vec<InventoryEntry> = desired_objects.iter().map(|object| object.entry.clone()).collect();
    let desired = desired.as_slice();
    let gone: Vec<&InventoryEntry> = previous
        .iter()
        .filter(|entry| !desired.iter().any(|d| same(d, entry)))
        .collect();
    if gone.is_empty() {
        return Ok(Vec::new());
    }
    let mut live = Vec::new();
    let mut live_values = BTreeMap::new();
    for entry in &gone {
        let api = api_for(&context.client, entry);
        if let Some(object) = api
            .get_opt(&entry.name)
            .await
            .map_err(kubernetes(format!("read {} {}", entry.kind, entry.name)))?
        {
            let value = serde_json::to_value(&object).unwrap_or(Value::Null);
            live.push(LiveObject {
                entry: (*entry).clone(),
                labels: object.labels().clone(),
                annotations: object.annotations().clone(),
            });
            live_values.insert((entry.kind.clone(), entry.namespace.clone(), entry.name.clone()), value);
        }
    }
    // Only a cluster that pruning may otherwise delete needs to know which databases live on it.
    let mut placements = Placements::default();
    if policy.prune && gone.iter().any(|entry| entry.kind == "RedisEnterpriseCluster") {
        placements = live_placements(&context.client, gone.iter().map(|entry| entry.namespace.as_str())).await?;
        placements.add_desired(desired_objects);
    }
    let plan = plan_prune(previous, desired, &live, &placements, target, policy);
    for entry in &plan.delete {
        let api = api_for(&context.client, entry);
        api.delete(&entry.name, &DeleteParams::default())
            .await
            .map_err(kubernetes(format!(
                "delete {} {}/{}",
                entry.kind, entry.namespace, entry.name
            )))?;
        publish(
            context,
            gitsync,
            EventType::Normal,
            "Pruned",
            "Prune",
            &format!(
                "deleted {} {}/{} (removed from Git)",
                entry.kind, entry.namespace, entry.name
            ),
        )
        .await;
    }
    for (entry, reason) in &plan.keep {
        let api = api_for(&context.client, entry);
        let live = live_values.get(&(entry.kind.clone(), entry.namespace.clone(), entry.name.clone()));
        let revision = live
            .and_then(|l| l.pointer("/status/sourceRevision"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let object = DesiredObject {
            entry: entry.clone(),
            body: Value::Null,
        };
        set_synced(
            &api,
            &object,
            live,
            false,
            "RemovedFromSource",
            &cap_message(&reason.describe(), MAX_MESSAGE_CHARS),
            &revision,
        )
        .await?;
        let note = format!(
            "{} {}/{}: {}",
            entry.kind,
            entry.namespace,
            entry.name,
            reason.describe()
        );
        publish(context, gitsync, EventType::Warning, "PruneBlocked", "Prune", &note).await;
    }
    Ok(plan.keep)
}

/// Every live REC and REDB, read with one LIST per kind over all namespaces; where the agent may not list across
/// namespaces (HTTP 403), the namespaces of `fallback` instead (the clusters' own namespaces, where their
/// databases live unless they name them from elsewhere).
async fn live_placements(client: &Client, fallback: impl Iterator<Item = &str>) -> Result<Placements, SyncError> {
    let fallback: BTreeSet<String> = fallback.map(str::to_string).collect();
    let mut placements = Placements::default();
    for cluster in list_everywhere::<RedisEnterpriseCluster>(client, &fallback).await? {
        placements
            .clusters
            .insert((cluster.namespace().unwrap_or_default(), cluster.name_any()));
    }
    let databases = list_everywhere::<RedisEnterpriseDatabase>(client, &fallback).await?;
    for database in databases {
        placements.databases.push(super::plan::DatabasePlacement {
            namespace: database.namespace().unwrap_or_default(),
            name: database.name_any(),
            cluster: database
                .spec
                .redis_enterprise_cluster
                .as_ref()
                .map(|reference| reference.name.clone())
                .filter(|name| !name.is_empty()),
        });
    }
    Ok(placements)
}

/// Every object of kind `K`, with one LIST over all namespaces, or one per namespace of `fallback` where the agent
/// may not list across namespaces (HTTP 403).
async fn list_everywhere<K>(client: &Client, fallback: &BTreeSet<String>) -> Result<Vec<K>, SyncError>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned,
{
    let kind = K::kind(&());
    let params = ListParams::default();
    match Api::<K>::all(client.clone()).list(&params).await {
        Ok(list) => Ok(list.items),
        Err(kube::Error::Api(response)) if response.code == 403 => {
            let mut items = Vec::new();
            for namespace in fallback {
                let list = Api::<K>::namespaced(client.clone(), namespace)
                    .list(&params)
                    .await
                    .map_err(kubernetes(format!("list {kind}s in namespace {namespace}")))?;
                items.extend(list.items);
            }
            Ok(items)
        }
        Err(source) => Err(SyncError::Kubernetes {
            action: format!("list {kind}s in all namespaces"),
            source,
        }),
    }
}

fn same(a: &InventoryEntry, b: &InventoryEntry) -> bool {
    a.kind == b.kind && a.namespace == b.namespace && a.name == b.name
}

async fn write_status(
    gitsync: &GitSync,
    context: &SyncContext,
    old: &GitSyncStatus,
    new: GitSyncStatus,
) -> Result<(), SyncError> {
    if *old == new {
        return Ok(());
    }
    let api: Api<GitSync> = Api::namespaced(context.client.clone(), &gitsync.namespace().unwrap_or_default());
    let body = json!({ "apiVersion": GitSync::api_version(&()), "kind": GitSync::kind(&()), "status": new });
    api.patch_status(
        &gitsync.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(kubernetes(format!(
        "write the status of GitSync {}",
        gitsync.name_any()
    )))?;
    Ok(())
}

async fn publish(context: &SyncContext, gitsync: &GitSync, type_: EventType, reason: &str, action: &str, note: &str) {
    let note = cap_message(note, MAX_MESSAGE_CHARS);
    let event = Event {
        type_,
        reason: reason.to_string(),
        note: Some(note),
        action: action.to_string(),
        secondary: None,
    };
    if let Err(error) = context.recorder.publish(&event, &gitsync.object_ref(&())).await {
        warn!(%error, reason, "failed to publish an event");
    }
}
