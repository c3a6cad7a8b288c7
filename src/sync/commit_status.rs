//! Commit-status stage: posts what each sync came to on the forge that hosts the repository, beside the reconcile
//! and never in its way. The reconcile only hands over what it saw ([`CommitStatusReporter::picked_up`],
//! [`CommitStatusReporter::observe`]); one task per GitSync delivers it, retries with backoff, waits for the
//! revision's objects to be Ready, and keeps the GitSync's `CommitStatusReported` condition (its own field manager).
//! It may read Secrets and the revision's objects, write that one condition, post to the forge and count metrics;
//! it never fails or delays a sync.
//!
//! Two contexts per GitSync: `redis-gitops/<namespace>/<name>` (pending when a revision is picked up, then success
//! when applied or failure when refused) and `redis-gitops/<namespace>/<name>/ready` (pending, then success when
//! every object of the revision is Ready or failure naming the first Stalled one).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::outcome::{Fetched, SyncOutcome, same};
use super::plan::{MAX_MESSAGE_CHARS, cap_message};
use crate::api::GitSync;
use crate::api::conditions::{Condition, types};
use crate::api::gitsync::{CommitStatusSpec, InventoryEntry};
use crate::forge::{
    CommitState, Delivery, ForgeClient, ForgeClientConfig, ForgeError, ForgeTarget, StatusPost, TargetError,
    already_shown, resolve_target,
};
use crate::runtime::conditions::{carry_transition_time, find, new_condition, same_ignoring_time};
use crate::runtime::errors::kube_error_text;
use crate::runtime::{Backoff, Clock, SystemClock, api_resource};
use crate::telemetry::{Metrics, ProviderResultLabels};

/// The condition this stage keeps on the GitSync.
pub const CONDITION: &str = "CommitStatusReported";
/// The field manager of that condition (apart from the sync's, so neither removes the other's conditions).
pub const FIELD_MANAGER: &str = "redis-gitops/commit-status";

/// How the reporter paces itself.
#[derive(Clone, Debug)]
pub struct ReporterOptions {
    /// How often the revision's objects are read while the `ready` context is pending.
    pub ready_poll: Duration,
    /// First wait after a failed delivery (doubling up to `retry_max`).
    pub retry_base: Duration,
    /// Longest wait between delivery attempts (a rate limit may ask for longer).
    pub retry_max: Duration,
    /// Time limit of one forge request.
    pub request_timeout: Duration,
}

impl Default for ReporterOptions {
    fn default() -> Self {
        Self {
            ready_poll: Duration::from_secs(2),
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
            request_timeout: Duration::from_secs(15),
        }
    }
}

/// Failure to deliver a commit status. Never carries the token.
#[derive(Debug, thiserror::Error)]
pub enum CommitStatusError {
    /// `spec.commitStatus` cannot be used.
    #[error("{0}")]
    InvalidSpec(TargetError),
    /// The Secret `spec.commitStatus.secretRef` names does not exist.
    #[error("spec.commitStatus.secretRef: Secret {namespace}/{name} not found; create it with the key `token`")]
    SecretNotFound {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// The Secret has no usable `token` key.
    #[error("spec.commitStatus.secretRef: Secret {namespace}/{name} has no `token` key (UTF-8 text)")]
    MissingToken {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// The API server failed while reading a Secret.
    #[error("failed to read Secret {namespace}/{name}: {}", kube_error_text(source))]
    ReadSecret {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// The forge did not take the status.
    #[error("{0}")]
    Forge(ForgeError),
}

impl CommitStatusError {
    /// A stable name of the failure, the condition's reason.
    pub fn category(&self) -> &'static str {
        match self {
            Self::InvalidSpec(_) => "InvalidSpec",
            Self::SecretNotFound { .. } => "SecretNotFound",
            Self::MissingToken { .. } => "MissingToken",
            Self::ReadSecret { .. } => "ReadSecretFailed",
            Self::Forge(error) => error.category(),
        }
    }

    /// Whether a retry can only help after a change (spec, Secret): then the worker waits for the next sync.
    fn waits_for_change(&self) -> bool {
        matches!(self, Self::InvalidSpec(_))
    }
}

/// What a sync of one revision came to, as far as the forge is concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Fetched, not yet applied (or an apply being retried).
    Pending,
    /// Applied completely: these objects should become Ready.
    Applied(Vec<InventoryEntry>),
    /// Refused: the description says why.
    Refused(String),
}

/// The revision whose statuses are wanted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WantedRevision {
    /// The commit.
    pub sha: String,
    /// `main@sha1:<7 hex>`, for messages.
    pub short: String,
    /// Where its sync stands.
    pub verdict: Verdict,
}

/// What the reconcile last told the worker of one GitSync.
#[derive(Clone, Debug, PartialEq)]
struct Wanted {
    namespace: String,
    name: String,
    generation: Option<i64>,
    url: String,
    spec: CommitStatusSpec,
    git_secret: Option<String>,
    revision: Option<WantedRevision>,
    /// The `CommitStatusReported` condition on the object, for its transition time.
    condition: Option<Condition>,
}

/// The contexts of a GitSync: the sync's and the readiness one.
pub fn contexts(namespace: &str, name: &str) -> (String, String) {
    let sync = format!("redis-gitops/{namespace}/{name}");
    let ready = format!("{sync}/ready");
    (sync, ready)
}

/// The verdict of `outcome`, when it concerns a revision (`None`: nothing new to say, such as a fetch failure).
pub fn verdict(outcome: &SyncOutcome) -> Option<WantedRevision> {
    let fetched = outcome.fetched()?;
    let verdict = match outcome {
        SyncOutcome::Suspended(_)
        | SyncOutcome::InvalidSpec { .. }
        | SyncOutcome::SecretNotFound { .. }
        | SyncOutcome::FetchFailed { .. } => return None,
        SyncOutcome::ValidationFailed { errors, .. } => {
            let count = match errors.len() {
                1 => "1 error".to_string(),
                count => format!("{count} errors"),
            };
            let first = errors.first().map(ToString::to_string).unwrap_or_default();
            Verdict::Refused(format!("{count}; {first}"))
        }
        SyncOutcome::InventoryTooLarge { objects, .. } => Verdict::Refused(format!(
            "refused: {objects} objects are too many for one GitSync; split them with spec.path"
        )),
        SyncOutcome::ApplyFailed { .. } => Verdict::Pending,
        SyncOutcome::Applied { applied, .. } => match applied.conflicts.first() {
            Some(conflict) => Verdict::Refused(format!(
                "{} {}/{} belongs to GitSync {}; not applied",
                conflict.entry.kind, conflict.entry.namespace, conflict.entry.name, conflict.owner
            )),
            None => Verdict::Applied(
                applied
                    .entries
                    .iter()
                    .filter(|entry| !applied.conflicts.iter().any(|c| same(&c.entry, entry)))
                    .cloned()
                    .collect(),
            ),
        },
    };
    Some(wanted_revision(fetched, verdict))
}

fn wanted_revision(fetched: &Fetched, verdict: Verdict) -> WantedRevision {
    WantedRevision {
        sha: fetched.revision.commit.clone(),
        short: fetched.short(),
        verdict,
    }
}

/// The sync context's state and description for `revision`.
pub fn sync_status(revision: &WantedRevision) -> (CommitState, String) {
    match &revision.verdict {
        Verdict::Pending => (CommitState::Pending, format!("applying revision {}", revision.short)),
        Verdict::Applied(entries) => (CommitState::Success, format!("applied {} objects", entries.len())),
        Verdict::Refused(description) => (CommitState::Failure, description.clone()),
    }
}

/// Where one object of the revision stands, the kstatus way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// `Ready=True` for its current generation.
    Ready,
    /// `Stalled=True`: it needs a change.
    Stalled(String),
    /// Anything else, or not there yet.
    InProgress,
}

/// Classifies an object from its conditions and generation.
pub fn readiness(object: &Value) -> Readiness {
    let conditions: Vec<Condition> = object
        .pointer("/status/conditions")
        .and_then(|c| serde_json::from_value(c.clone()).ok())
        .unwrap_or_default();
    let generation = object.pointer("/metadata/generation").and_then(Value::as_i64);
    if let Some(stalled) = find(&conditions, types::STALLED).filter(|c| c.status == "True") {
        return Readiness::Stalled(format!("{}: {}", stalled.reason, stalled.message));
    }
    match find(&conditions, types::READY) {
        Some(ready)
            if ready.status == "True"
                && (generation.is_none()
                    || ready.observed_generation.is_none()
                    || ready.observed_generation == generation) =>
        {
            Readiness::Ready
        }
        _ => Readiness::InProgress,
    }
}

/// The ready context's state and description, from the readiness of each object in revision order.
pub fn ready_status(objects: &[(&InventoryEntry, Readiness)]) -> (CommitState, String) {
    if let Some((entry, Readiness::Stalled(why))) = objects
        .iter()
        .find(|(_, readiness)| matches!(readiness, Readiness::Stalled(_)))
    {
        return (
            CommitState::Failure,
            format!("{} {}/{} is Stalled: {why}", entry.kind, entry.namespace, entry.name),
        );
    }
    if objects.iter().all(|(_, readiness)| *readiness == Readiness::Ready) {
        return (CommitState::Success, format!("all {} objects Ready", objects.len()));
    }
    (
        CommitState::Pending,
        format!("waiting for {} objects to be Ready", objects.len()),
    )
}

/// Hands each GitSync's sync results to its delivery task. Dropping it stops every task.
pub struct CommitStatusReporter {
    client: Client,
    metrics: Arc<Metrics>,
    options: ReporterOptions,
    clock: Arc<dyn Clock>,
    workers: Mutex<HashMap<String, WorkerHandle>>,
}

struct WorkerHandle {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Shared {
    wanted: Mutex<Wanted>,
    wake: Notify,
}

impl CommitStatusReporter {
    /// A reporter with the default pacing.
    pub fn new(client: Client, metrics: Arc<Metrics>) -> Self {
        Self::with_options(client, metrics, ReporterOptions::default())
    }

    /// A reporter with this pacing.
    pub fn with_options(client: Client, metrics: Arc<Metrics>, options: ReporterOptions) -> Self {
        Self {
            client,
            metrics,
            options,
            clock: Arc::new(SystemClock),
            workers: Mutex::new(HashMap::new()),
        }
    }

    /// A new revision was fetched: its sync context goes `pending`.
    pub fn picked_up(&self, gitsync: &GitSync, fetched: &Fetched) {
        if !fetched.is_new {
            return;
        }
        self.update(gitsync, |revision| match revision {
            Some(current) if current.sha == fetched.revision.commit => None,
            _ => Some(wanted_revision(fetched, Verdict::Pending)),
        });
    }

    /// A sync finished with `outcome`.
    pub fn observe(&self, gitsync: &GitSync, outcome: &SyncOutcome) {
        let wanted = verdict(outcome);
        self.update(gitsync, |_| wanted.clone());
    }

    /// Stops the task of the GitSync `key` (`namespace/name`), which is being deleted.
    pub fn forget(&self, key: &str) {
        self.workers.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }

    /// Updates what the GitSync's task should deliver (`revision` returns the new revision, or `None` to keep it),
    /// starting the task when needed, and wakes it when anything changed.
    fn update(&self, gitsync: &GitSync, revision: impl FnOnce(&Option<WantedRevision>) -> Option<WantedRevision>) {
        let key = crate::runtime::object_key(gitsync);
        let condition = gitsync
            .status
            .as_ref()
            .and_then(|status| status.conditions.as_deref())
            .and_then(|conditions| find(conditions, CONDITION))
            .cloned();
        let Some(spec) = gitsync.spec.commit_status.clone() else {
            self.forget(&key);
            if condition.is_some() {
                // Reporting was turned off: this stage's condition goes (applying nothing releases it).
                tokio::spawn(release_condition(
                    self.client.clone(),
                    gitsync.namespace().unwrap_or_else(|| "default".to_string()),
                    gitsync.name_any(),
                ));
            }
            return;
        };
        let mut workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        let handle = workers.entry(key).or_insert_with(|| {
            let shared = Arc::new(Shared {
                wanted: Mutex::new(Wanted {
                    namespace: gitsync.namespace().unwrap_or_else(|| "default".to_string()),
                    name: gitsync.name_any(),
                    generation: gitsync.metadata.generation,
                    url: gitsync.spec.url.clone(),
                    spec: spec.clone(),
                    git_secret: None,
                    revision: None,
                    condition: condition.clone(),
                }),
                wake: Notify::new(),
            });
            let worker = Worker {
                client: self.client.clone(),
                metrics: self.metrics.clone(),
                options: self.options.clone(),
                clock: self.clock.clone(),
                shared: shared.clone(),
                delivered: HashMap::new(),
                forge: None,
                written: None,
                backoff: Backoff::with_base(self.options.retry_base, self.options.retry_max),
            };
            WorkerHandle {
                shared,
                task: tokio::spawn(worker.run()),
            }
        });
        let mut wanted = handle.shared.wanted.lock().unwrap_or_else(|p| p.into_inner());
        let before = wanted.clone();
        wanted.generation = gitsync.metadata.generation;
        wanted.url = gitsync.spec.url.clone();
        wanted.spec = spec;
        wanted.git_secret = gitsync.spec.secret_ref.as_ref().map(|s| s.name.clone());
        if wanted.condition.is_none() {
            wanted.condition = condition;
        }
        if let Some(revision) = revision(&wanted.revision) {
            wanted.revision = Some(revision);
        }
        if *wanted != before {
            handle.shared.wake.notify_one();
        }
    }
}

/// The delivery task of one GitSync.
struct Worker {
    client: Client,
    metrics: Arc<Metrics>,
    options: ReporterOptions,
    clock: Arc<dyn Clock>,
    shared: Arc<Shared>,
    /// What this task delivered (or found on the forge), per commit and context.
    delivered: HashMap<(String, String), (CommitState, String)>,
    /// The client of the current target and Secret.
    forge: Option<(ForgeClientConfigKey, Arc<ForgeClient>)>,
    /// The condition last written: (status, reason, message).
    written: Option<(bool, String, String)>,
    backoff: Backoff,
}

/// What a forge client was built from (compared to reuse it).
#[derive(Clone, PartialEq, Eq)]
struct ForgeClientConfigKey {
    target: ForgeTarget,
    token: String,
    ca_pem: Option<Vec<u8>>,
}

/// How a delivery round ended.
enum Round {
    /// Everything wanted is on the forge; `waiting` when the ready context is still pending.
    Done { waiting: bool },
    /// Nothing to deliver yet.
    Idle,
    /// A delivery failed.
    Failed(CommitStatusError),
}

impl Worker {
    async fn run(mut self) {
        loop {
            let wanted = self.shared.wanted.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let round = self.round(&wanted).await;
            let key = format!("{}/{}", wanted.namespace, wanted.name);
            let wait = match &round {
                Round::Idle => None,
                Round::Done { waiting } => {
                    self.backoff.succeeded(&key);
                    if let Some(revision) = &wanted.revision {
                        let provider = wanted.spec.provider.as_str();
                        let message = format!("statuses of revision {} delivered to {provider}", revision.short);
                        self.write_condition(&wanted, true, "Delivered", &message).await;
                    }
                    waiting.then_some(self.options.ready_poll)
                }
                Round::Failed(error) => {
                    tracing::warn!(gitsync = %key, category = error.category(), %error, "commit status not delivered");
                    let next = if error.waits_for_change() {
                        "fix it to report"
                    } else {
                        "retrying"
                    };
                    let message = format!("{error}; the sync is not affected, {next}");
                    self.write_condition(&wanted, false, error.category(), &message).await;
                    if error.waits_for_change() {
                        None
                    } else {
                        let retry_after = match error {
                            CommitStatusError::Forge(forge) => forge.retry_after(),
                            _ => None,
                        };
                        let backoff = self.backoff.failed(&key, retry_after.is_some());
                        Some(retry_after.map_or(backoff, |wait| wait.max(self.options.retry_base)))
                    }
                }
            };
            match wait {
                None => self.shared.wake.notified().await,
                Some(wait) => {
                    tokio::select! {
                        () = self.shared.wake.notified() => {}
                        () = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }

    /// Delivers what `wanted` asks for that the forge does not show yet.
    async fn round(&mut self, wanted: &Wanted) -> Round {
        let target = match resolve_target(&wanted.spec, &wanted.url) {
            Ok(target) => target,
            Err(error) => return Round::Failed(CommitStatusError::InvalidSpec(error)),
        };
        let Some(revision) = &wanted.revision else {
            return Round::Idle;
        };
        self.delivered.retain(|(sha, _), _| *sha == revision.sha);
        let (sync_context, ready_context) = contexts(&wanted.namespace, &wanted.name);
        let mut posts = vec![(sync_context, sync_status(revision))];
        let mut waiting = false;
        if let Verdict::Applied(entries) = &revision.verdict {
            match self.ready_of(entries).await {
                Some(status) => {
                    waiting = status.0 == CommitState::Pending;
                    posts.push((ready_context, status));
                }
                // The objects could not be read: look again soon.
                None => waiting = true,
            }
        }
        for (context, (state, description)) in posts {
            let key = (revision.sha.clone(), context.clone());
            if self.delivered.get(&key) == Some(&(state, description.clone())) {
                continue;
            }
            let post = StatusPost {
                sha: revision.sha.clone(),
                context,
                state,
                description,
            };
            let provider = target.provider.as_str();
            match self.deliver(wanted, &target, &post).await {
                Ok(()) => {
                    self.delivered.insert(key, (post.state, post.description));
                }
                Err(error) => {
                    if matches!(error, CommitStatusError::Forge(_)) {
                        self.metrics
                            .commit_statuses
                            .get_or_create(&ProviderResultLabels {
                                provider,
                                result: "failed",
                            })
                            .inc();
                    }
                    return Round::Failed(error);
                }
            }
        }
        Round::Done { waiting }
    }

    /// Posts `post` unless the forge shows it already; a context the forge shows nothing for gets `pending` first,
    /// so that every context goes pending → its result.
    async fn deliver(
        &mut self,
        wanted: &Wanted,
        target: &ForgeTarget,
        post: &StatusPost,
    ) -> Result<(), CommitStatusError> {
        let forge = self.forge_client(wanted, target).await?;
        let existing = forge
            .existing(&post.sha, &post.context)
            .await
            .map_err(CommitStatusError::Forge)?;
        if already_shown(target, existing.as_ref(), post) {
            return Ok(());
        }
        let labels = ProviderResultLabels {
            provider: target.provider.as_str(),
            result: "posted",
        };
        if existing.is_none() && post.state != CommitState::Pending {
            let pending = StatusPost {
                state: CommitState::Pending,
                description: match &wanted.revision {
                    Some(revision) if post.context.ends_with("/ready") => match &revision.verdict {
                        Verdict::Applied(entries) => format!("waiting for {} objects to be Ready", entries.len()),
                        _ => format!("applying revision {}", revision.short),
                    },
                    Some(revision) => format!("applying revision {}", revision.short),
                    None => String::new(),
                },
                ..post.clone()
            };
            if forge.create(&pending).await.map_err(CommitStatusError::Forge)? == Delivery::Posted {
                self.metrics.commit_statuses.get_or_create(&labels).inc();
            }
        }
        if forge.create(post).await.map_err(CommitStatusError::Forge)? == Delivery::Posted {
            self.metrics.commit_statuses.get_or_create(&labels).inc();
        }
        Ok(())
    }

    /// The forge client for the current target and Secret, reading the Secret each round (a rotated token is used
    /// at once) and building a client only when something changed.
    async fn forge_client(
        &mut self,
        wanted: &Wanted,
        target: &ForgeTarget,
    ) -> Result<Arc<ForgeClient>, CommitStatusError> {
        let secret_name = &wanted.spec.secret_ref.name;
        let data = self.secret_data(&wanted.namespace, secret_name).await?.ok_or_else(|| {
            CommitStatusError::SecretNotFound {
                namespace: wanted.namespace.clone(),
                name: secret_name.clone(),
            }
        })?;
        let token = data
            .get("token")
            .and_then(|token| String::from_utf8(token.clone()).ok())
            .filter(|token| !token.trim().is_empty())
            .ok_or_else(|| CommitStatusError::MissingToken {
                namespace: wanted.namespace.clone(),
                name: secret_name.clone(),
            })?;
        let mut ca_pem = data.get("ca.crt").cloned();
        if ca_pem.is_none()
            && let Some(git_secret) = &wanted.git_secret
        {
            ca_pem = self
                .secret_data(&wanted.namespace, git_secret)
                .await?
                .and_then(|data| data.get("ca.crt").cloned());
        }
        let key = ForgeClientConfigKey {
            target: target.clone(),
            token,
            ca_pem,
        };
        if let Some((built, client)) = &self.forge
            && *built == key
        {
            return Ok(client.clone());
        }
        let client = Arc::new(
            ForgeClient::new(ForgeClientConfig {
                target: key.target.clone(),
                token: key.token.clone(),
                ca_pem: key.ca_pem.clone(),
                timeout: self.options.request_timeout,
            })
            .map_err(CommitStatusError::Forge)?,
        );
        self.forge = Some((key, client.clone()));
        Ok(client)
    }

    async fn secret_data(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<BTreeMap<String, Vec<u8>>>, CommitStatusError> {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let secret = secrets
            .get_opt(name)
            .await
            .map_err(|source| CommitStatusError::ReadSecret {
                namespace: namespace.to_string(),
                name: name.to_string(),
                source,
            })?;
        Ok(secret.map(|secret| {
            secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(key, value)| (key, value.0))
                .collect()
        }))
    }

    /// The ready context's status, reading the objects one list per kind and namespace; `None` when the API server
    /// could not be read.
    async fn ready_of(&self, entries: &[InventoryEntry]) -> Option<(CommitState, String)> {
        let mut groups: BTreeMap<(&str, &str, &str), Vec<&InventoryEntry>> = BTreeMap::new();
        for entry in entries {
            groups
                .entry((&entry.api_version, &entry.kind, &entry.namespace))
                .or_default()
                .push(entry);
        }
        let mut found: HashMap<(&str, &str, &str), Readiness> = HashMap::new();
        for ((api_version, kind, namespace), members) in groups {
            let Ok((resource, namespaced)) = api_resource(api_version, kind) else {
                // A kind the agent does not know has no readiness to wait for.
                for entry in members {
                    found.insert((kind, namespace, &entry.name), Readiness::Ready);
                }
                continue;
            };
            let api: Api<DynamicObject> = if namespaced {
                Api::namespaced_with(self.client.clone(), namespace, &resource)
            } else {
                Api::all_with(self.client.clone(), &resource)
            };
            let listed = match api.list(&ListParams::default()).await {
                Ok(listed) => listed,
                Err(error) => {
                    tracing::debug!(error = %kube_error_text(&error), kind, namespace, "unable to read the revision's objects");
                    return None;
                }
            };
            let by_name: HashMap<String, Value> = listed
                .items
                .into_iter()
                .filter_map(|object| {
                    let name = object.metadata.name.clone()?;
                    Some((name, serde_json::to_value(&object).ok()?))
                })
                .collect();
            for entry in members {
                let state = by_name.get(&entry.name).map_or(Readiness::InProgress, readiness);
                found.insert((kind, namespace, &entry.name), state);
            }
        }
        let objects: Vec<(&InventoryEntry, Readiness)> = entries
            .iter()
            .map(|entry| {
                let state = found
                    .get(&(entry.kind.as_str(), entry.namespace.as_str(), entry.name.as_str()))
                    .cloned()
                    .unwrap_or(Readiness::InProgress);
                (entry, state)
            })
            .collect();
        Some(ready_status(&objects))
    }

    /// Writes the `CommitStatusReported` condition when it changed, with this stage's own field manager.
    async fn write_condition(&mut self, wanted: &Wanted, status: bool, reason: &str, message: &str) {
        let message = cap_message(message, MAX_MESSAGE_CHARS);
        let said = (status, reason.to_string(), message.clone());
        if self.written.as_ref() == Some(&said) {
            return;
        }
        let condition = new_condition(CONDITION, status, reason, message, wanted.generation, self.clock.now());
        let existing = wanted.condition.as_ref();
        if self.written.is_none() && existing.is_some_and(|existing| same_ignoring_time(existing, &condition)) {
            self.written = Some(said);
            return;
        }
        let condition = carry_transition_time(existing, condition);
        let api: Api<GitSync> = Api::namespaced(self.client.clone(), &wanted.namespace);
        let body = json!({
            "apiVersion": GitSync::api_version(&()),
            "kind": GitSync::kind(&()),
            "status": { "conditions": [condition] },
        });
        let params = PatchParams::apply(FIELD_MANAGER).force();
        match api.patch_status(&wanted.name, &params, &Patch::Apply(&body)).await {
            Ok(_) => {
                self.written = Some(said);
                self.shared.wanted.lock().unwrap_or_else(|p| p.into_inner()).condition = Some(condition);
            }
            Err(error) => {
                tracing::warn!(gitsync = %format!("{}/{}", wanted.namespace, wanted.name), error = %kube_error_text(&error),
                    "unable to write the CommitStatusReported condition");
            }
        }
    }
}

/// Removes the `CommitStatusReported` condition by applying an empty status with this stage's field manager.
async fn release_condition(client: Client, namespace: String, name: String) {
    let api: Api<GitSync> = Api::namespaced(client, &namespace);
    let body = json!({ "apiVersion": GitSync::api_version(&()), "kind": GitSync::kind(&()), "status": {} });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    if let Err(error) = api.patch_status(&name, &params, &Patch::Apply(&body)).await {
        tracing::warn!(gitsync = %format!("{namespace}/{name}"), error = %kube_error_text(&error), "unable to remove the CommitStatusReported condition");
    }
}

/// The conditions the sync's own status write leaves out: this stage's, which another field manager owns.
pub fn strip_condition(conditions: &mut Option<Vec<Condition>>) {
    if let Some(list) = conditions {
        list.retain(|condition| condition.type_ != CONDITION);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Revision;

    fn entry(kind: &str, name: &str) -> InventoryEntry {
        InventoryEntry {
            api_version: "app.redislabs.com/v1alpha1".into(),
            kind: kind.into(),
            namespace: "default".into(),
            name: name.into(),
            file: None,
        }
    }

    fn fetched() -> Fetched {
        Fetched {
            revision: Revision {
                ref_name: Some("main".into()),
                commit: "0123456789abcdef0123456789abcdef01234567".into(),
            },
            is_new: true,
        }
    }

    #[test]
    fn a_refused_revision_counts_its_errors_and_names_the_first() {
        let diagnostic = crate::manifests::Diagnostic::error(
            "databases/cache.yaml",
            crate::manifests::diagnostics::Location::new(7, 3),
            Some("spec.evictionPolicy".into()),
            "\"illegal\" is not a valid policy",
        );
        let outcome = SyncOutcome::ValidationFailed {
            fetched: fetched(),
            errors: vec![diagnostic.clone(), diagnostic.clone(), diagnostic],
        };
        let wanted = verdict(&outcome).expect("a verdict");
        assert_eq!(wanted.sha, "0123456789abcdef0123456789abcdef01234567");
        assert_eq!(
            sync_status(&wanted),
            (
                CommitState::Failure,
                "3 errors; databases/cache.yaml:7:3: spec.evictionPolicy: \"illegal\" is not a valid policy".into()
            )
        );
        assert_eq!(verdict(&SyncOutcome::Suspended(fetched())), None);
    }

    #[test]
    fn readiness_waits_for_every_object_and_names_the_first_stalled() {
        let (a, b) = (
            entry("RedisEnterpriseDatabase", "a"),
            entry("RedisEnterpriseDatabase", "b"),
        );
        let ready = json!({"metadata": {"generation": 2}, "status": {"conditions": [
            {"type": "Ready", "status": "True", "reason": "Active", "observedGeneration": 2, "lastTransitionTime": "t"}]}});
        let stale = json!({"metadata": {"generation": 3}, "status": {"conditions": [
            {"type": "Ready", "status": "True", "reason": "Active", "observedGeneration": 2, "lastTransitionTime": "t"}]}});
        let stalled = json!({"status": {"conditions": [
            {"type": "Stalled", "status": "True", "reason": "InvalidSpec", "message": "memorySize too small",
             "lastTransitionTime": "t"}]}});
        assert_eq!(readiness(&ready), Readiness::Ready);
        assert_eq!(readiness(&stale), Readiness::InProgress);
        assert_eq!(readiness(&json!({})), Readiness::InProgress);
        assert_eq!(
            ready_status(&[(&a, Readiness::Ready), (&b, readiness(&stalled))]),
            (
                CommitState::Failure,
                "RedisEnterpriseDatabase default/b is Stalled: InvalidSpec: memorySize too small".into()
            )
        );
        assert_eq!(
            ready_status(&[(&a, Readiness::Ready), (&b, Readiness::InProgress)]),
            (CommitState::Pending, "waiting for 2 objects to be Ready".into())
        );
        assert_eq!(
            ready_status(&[(&a, Readiness::Ready), (&b, Readiness::Ready)]),
            (CommitState::Success, "all 2 objects Ready".into())
        );
    }

    #[test]
    fn the_sync_write_leaves_this_condition_to_its_own_manager() {
        let condition = |type_: &str| Condition {
            type_: type_.into(),
            status: "True".into(),
            ..Condition::default()
        };
        let mut conditions = Some(vec![condition("Ready"), condition(CONDITION)]);
        strip_condition(&mut conditions);
        assert_eq!(conditions.map(|c| c.len()), Some(1));
        assert_eq!(
            contexts("team", "config"),
            (
                "redis-gitops/team/config".into(),
                "redis-gitops/team/config/ready".into()
            )
        );
    }
}
