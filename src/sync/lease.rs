//! Leader election with a `coordination.k8s.io/v1` Lease, so a second agent replica waits instead of polling Git
//! and writing twice. It follows client-go's `leaderelection` rules:
//!
//! - **lease duration**: a standby takes the Lease over only when the record (holder, `renewTime`,
//!   resourceVersion) has not changed for a whole lease duration, *as timed on the standby's own monotonic
//!   clock* from the moment it last saw it change. The holder's `renewTime` is never compared with the local
//!   wall clock, so clock skew between nodes cannot shorten a lease.
//! - **renew deadline** (two thirds of the lease by default): the holder renews every retry period; each API call
//!   of a renewal is cut by a timeout (kube's read timeout is none), and if no renewal succeeds within the renew
//!   deadline of the last one, the holder gives up. That happens a third of the lease before any standby may
//!   take over, which leaves the process time to stop its controllers.
//! - **retry period** (about a seventh of the lease): how often the holder renews and a standby retries.
//!
//! Every write carries the resourceVersion it read, so two replicas can never both win a race. On top of that, the
//! [`WriteFence`] closes every write of this process (the API server through [`FenceLayer`], Redis Enterprise
//! through [`process_allows_writes`]) the moment the renew deadline passes, even when the process was frozen
//! (SIGSTOP, a long GC-like pause, a stalled node) and its controllers wake up before the lease keeper does.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{Method, Request};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use tokio::time::Instant;

/// The longest lease accepted (a day): longer ones are a typo, and the arithmetic on instants stays far from any
/// overflow.
pub const MAX_LEASE_DURATION: Duration = Duration::from_secs(24 * 60 * 60);
/// The shortest lease accepted.
pub const MIN_LEASE_DURATION: Duration = Duration::from_secs(1);

/// The three timings of leader election (client-go's `LeaseDuration`, `RenewDeadline`, `RetryPeriod`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTimings {
    /// How long a standby waits, from the last change it saw of the record, before taking the Lease over.
    pub lease_duration: Duration,
    /// How long the holder keeps writing without a successful renewal; shorter than `lease_duration`.
    pub renew_deadline: Duration,
    /// How often the holder renews and a standby retries; shorter than `renew_deadline`.
    pub retry_period: Duration,
}

/// Why lease timings were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseTimingsError {
    /// The lease duration is outside 1s..=24h.
    #[error("the lease duration {0:?} is out of range; use between 1s and 24h (default 15s)")]
    OutOfRange(Duration),
}

impl LeaseTimings {
    /// client-go's proportions (15s / 10s / 2s) for any lease duration: the renew deadline is two thirds of it,
    /// the retry period two fifteenths.
    pub fn for_lease(lease_duration: Duration) -> Result<LeaseTimings, LeaseTimingsError> {
        if !(MIN_LEASE_DURATION..=MAX_LEASE_DURATION).contains(&lease_duration) {
            return Err(LeaseTimingsError::OutOfRange(lease_duration));
        }
        Ok(LeaseTimings {
            lease_duration,
            renew_deadline: lease_duration * 2 / 3,
            retry_period: lease_duration * 2 / 15,
        })
    }

    /// The Lease's `leaseDurationSeconds` (at least 1).
    fn lease_seconds(&self) -> i32 {
        i32::try_from(self.lease_duration.as_secs()).unwrap_or(i32::MAX).max(1)
    }
}

impl Default for LeaseTimings {
    /// 15s / 10s / 2s, client-go's defaults.
    fn default() -> Self {
        LeaseTimings {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// Whether this process may write: open until the renew deadline of its last successful renewal, closed before the
/// Lease is first held and for good once it is lost. Cheap to clone; every clone sees the same state.
#[derive(Clone, Default)]
pub struct WriteFence {
    open_until: Arc<Mutex<Option<Instant>>>,
}

impl WriteFence {
    /// A closed fence.
    pub fn new() -> WriteFence {
        WriteFence::default()
    }

    /// Whether writes are allowed right now.
    pub fn allows_writes(&self) -> bool {
        self.deadline().is_some_and(|until| Instant::now() < until)
    }

    /// Until when writes are allowed, if the fence is open.
    fn deadline(&self) -> Option<Instant> {
        self.open_until
            .lock()
            .map(|guard| *guard)
            .unwrap_or_else(|p| *p.into_inner())
    }

    fn open_until(&self, until: Instant) {
        match self.open_until.lock() {
            Ok(mut guard) => *guard = Some(until),
            Err(poisoned) => *poisoned.into_inner() = Some(until),
        }
    }

    fn close(&self) {
        match self.open_until.lock() {
            Ok(mut guard) => *guard = None,
            Err(poisoned) => *poisoned.into_inner() = None,
        }
    }
}

static PROCESS_FENCE: OnceLock<WriteFence> = OnceLock::new();

/// Makes `fence` the fence of every write of this process that does not go through a fenced kube client (the
/// Redis Enterprise REST client checks [`process_allows_writes`]). Only the first call counts.
pub fn install_process_fence(fence: WriteFence) {
    let _ = PROCESS_FENCE.set(fence);
}

/// Whether this process may write: always, when no fence was installed (the sandbox, tests, one replica
/// without election), else what the installed fence says.
pub fn process_allows_writes() -> bool {
    PROCESS_FENCE.get().is_none_or(WriteFence::allows_writes)
}

/// A write refused by the fence: this replica does not hold the leader Lease (any more).
#[derive(Debug, thiserror::Error)]
#[error("refused to {method} {path}: this replica does not hold the leader lease")]
pub struct NotLeader {
    /// The HTTP method of the refused request.
    pub method: String,
    /// The path of the refused request.
    pub path: String,
}

/// A tower layer for `kube::client::ClientBuilder` that refuses every write request (anything but GET, HEAD and
/// OPTIONS: watches and lists still work) while the [`WriteFence`] is closed. The request never leaves the process.
#[derive(Clone)]
pub struct FenceLayer {
    fence: WriteFence,
}

impl FenceLayer {
    /// A layer guarded by `fence`.
    pub fn new(fence: WriteFence) -> FenceLayer {
        FenceLayer { fence }
    }
}

impl<S> tower::Layer<S> for FenceLayer {
    type Service = Fenced<S>;

    fn layer(&self, inner: S) -> Fenced<S> {
        Fenced {
            inner,
            fence: self.fence.clone(),
        }
    }
}

/// The service [`FenceLayer`] makes.
#[derive(Clone)]
pub struct Fenced<S> {
    inner: S,
    fence: WriteFence,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, B> tower::Service<Request<B>> for Fenced<S>
where
    S: tower::Service<Request<B>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(context).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let reads = [Method::GET, Method::HEAD, Method::OPTIONS];
        if !reads.contains(request.method()) && !self.fence.allows_writes() {
            let refused = NotLeader {
                method: request.method().to_string(),
                path: request.uri().path().to_string(),
            };
            tracing::warn!(method = %refused.method, path = %refused.path, "refused a write: not the leader");
            return Box::pin(async move { Err(Box::new(refused) as BoxError) });
        }
        let future = self.inner.call(request);
        Box::pin(async move { future.await.map_err(Into::into) })
    }
}

/// One replica's claim on a Lease.
pub struct LeaderLease {
    api: Api<Lease>,
    name: String,
    holder: String,
    timings: LeaseTimings,
    fence: WriteFence,
    observed: Mutex<Option<Observed>>,
    /// Where this replica receives push webhooks, published on the Lease while it leads.
    webhook_endpoint: Option<String>,
}

/// The Lease annotation with the leader's push-webhook base URL (`http://<pod IP>:9292`): a standby forwards the
/// deliveries it receives there, since only the leader syncs.
pub const WEBHOOK_ENDPOINT_ANNOTATION: &str = "redisgitops.dev/webhook-endpoint";

/// The push-webhook base URL the holder of Lease `name` published, if it did.
pub async fn leader_webhook_endpoint(leases: &Api<Lease>, name: &str) -> Option<String> {
    let lease = leases.get_opt(name).await.ok()??;
    lease.metadata.annotations?.remove(WEBHOOK_ENDPOINT_ANNOTATION)
}

/// The last version of the Lease record this replica saw, and when (on the local monotonic clock) it changed.
#[derive(Clone, PartialEq, Eq)]
struct Record {
    holder: String,
    renew_time: Option<Timestamp>,
    resource_version: Option<String>,
}

struct Observed {
    record: Record,
    changed_at: Instant,
}

/// What a try to hold the Lease found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseState {
    /// This replica holds the Lease (it created, renewed or took it over).
    Held,
    /// Another replica holds it, until its record stays unchanged for a whole lease duration.
    HeldBy(String),
}

/// Why one try to hold the Lease failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// The API server refused or failed a request.
    #[error(
        "failed to {action} the lease {name}: {}",
        crate::runtime::errors::kube_error_text(source)
    )]
    Api {
        /// What was being done: `read`, `create` or `update`.
        action: &'static str,
        /// The Lease name.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// The API server did not answer in time.
    #[error("unable to {action} the lease {name}: no answer within {timeout:?}")]
    Timeout {
        /// What was being done.
        action: &'static str,
        /// The Lease name.
        name: String,
        /// The time limit.
        timeout: Duration,
    },
}

impl LeaderLease {
    /// A claim on Lease `name` in `namespace` for `holder` (the pod name) with these timings. `client` must not be
    /// fenced (the Lease itself is written while the fence is closed); `fence` is opened while this replica holds
    /// the Lease.
    pub fn new(
        client: kube::Client,
        namespace: &str,
        name: &str,
        holder: &str,
        timings: LeaseTimings,
        fence: WriteFence,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            holder: holder.to_string(),
            timings,
            fence,
            observed: Mutex::new(None),
            webhook_endpoint: None,
        }
    }

    /// Publishes `endpoint` (this replica's push-webhook base URL) on the Lease while this replica holds it.
    pub fn with_webhook_endpoint(mut self, endpoint: Option<String>) -> Self {
        self.webhook_endpoint = endpoint;
        self
    }

    /// The Lease's annotations with this replica's webhook endpoint (or without any, when it publishes none).
    fn publish_endpoint(&self, metadata: &mut ObjectMeta) {
        match &self.webhook_endpoint {
            Some(endpoint) => {
                metadata
                    .annotations
                    .get_or_insert_with(Default::default)
                    .insert(WEBHOOK_ENDPOINT_ANNOTATION.to_string(), endpoint.clone());
            }
            None => {
                if let Some(annotations) = metadata.annotations.as_mut() {
                    annotations.remove(WEBHOOK_ENDPOINT_ANNOTATION);
                }
            }
        }
    }

    /// The fence this lease opens and closes.
    pub fn fence(&self) -> &WriteFence {
        &self.fence
    }

    async fn within<T>(
        &self,
        action: &'static str,
        timeout: Duration,
        call: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, LeaseError> {
        match tokio::time::timeout(timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(source)) => Err(LeaseError::Api {
                action,
                name: self.name.clone(),
                source,
            }),
            Err(_) => Err(LeaseError::Timeout {
                action,
                name: self.name.clone(),
                timeout,
            }),
        }
    }

    /// Remembers `record` and returns when it last changed, on the local clock.
    fn observe(&self, record: Record, now: Instant) -> Instant {
        let mut observed = match self.observed.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        match observed.as_ref() {
            Some(last) if last.record == record => last.changed_at,
            _ => {
                *observed = Some(Observed {
                    record,
                    changed_at: now,
                });
                now
            }
        }
    }

    /// Tries once to create, renew or take over the Lease; every API call gets at most `timeout`.
    pub async fn try_hold(&self, timeout: Duration) -> Result<LeaseState, LeaseError> {
        let started = Instant::now();
        let now = Timestamp::now();
        let seconds = self.timings.lease_seconds();
        let read = self.within("read", timeout, self.api.get_opt(&self.name)).await?;
        let Some(mut lease) = read else {
            let mut lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.holder.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            self.publish_endpoint(&mut lease.metadata);
            let remaining = timeout.saturating_sub(started.elapsed());
            return match self
                .within("create", remaining, self.api.create(&PostParams::default(), &lease))
                .await
            {
                Ok(_) => Ok(LeaseState::Held),
                Err(LeaseError::Api {
                    source: kube::Error::Api(response),
                    ..
                }) if response.code == 409 => Ok(LeaseState::HeldBy("another replica".into())),
                Err(error) => Err(error),
            };
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let current = spec.holder_identity.clone().unwrap_or_default();
        let record = Record {
            holder: current.clone(),
            renew_time: spec.renew_time.as_ref().map(|time| time.0),
            resource_version: lease.metadata.resource_version.clone(),
        };
        let changed_at = self.observe(record, started);
        // The holder's own lease duration, as it wrote it (a replica started with another flag value is honoured).
        let valid_for = spec
            .lease_duration_seconds
            .and_then(|seconds| u64::try_from(seconds).ok())
            .map_or(self.timings.lease_duration, Duration::from_secs)
            .min(MAX_LEASE_DURATION);
        let expired = started.saturating_duration_since(changed_at) >= valid_for;
        if current != self.holder && !current.is_empty() && !expired {
            return Ok(LeaseState::HeldBy(current));
        }
        if current != self.holder {
            spec.acquire_time = Some(MicroTime(now));
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
        }
        spec.holder_identity = Some(self.holder.clone());
        spec.lease_duration_seconds = Some(seconds);
        spec.renew_time = Some(MicroTime(now));
        self.publish_endpoint(&mut lease.metadata);
        // The replace carries the resourceVersion just read: of two replicas racing, one gets 409 Conflict.
        let remaining = timeout.saturating_sub(started.elapsed());
        match self
            .within(
                "update",
                remaining,
                self.api.replace(&self.name, &PostParams::default(), &lease),
            )
            .await
        {
            Ok(_) => Ok(LeaseState::Held),
            Err(LeaseError::Api {
                source: kube::Error::Api(response),
                ..
            }) if response.code == 409 => Ok(LeaseState::HeldBy(current)),
            Err(error) => Err(error),
        }
    }

    /// Waits until this replica holds the Lease, trying every retry period, and opens the fence.
    pub async fn acquire(&self) {
        let mut reported = None;
        loop {
            let started = Instant::now();
            match self.try_hold(self.timings.renew_deadline).await {
                Ok(LeaseState::Held) => {
                    self.fence.open_until(started + self.timings.renew_deadline);
                    tracing::info!(lease = %self.name, holder = %self.holder, "leading: this replica holds the lease");
                    return;
                }
                Ok(LeaseState::HeldBy(other)) => {
                    if reported.as_ref() != Some(&other) {
                        tracing::info!(lease = %self.name, holder = %other, "waiting: another replica holds the lease");
                        reported = Some(other);
                    }
                }
                Err(error) => tracing::warn!(%error, "unable to acquire the lease; retrying"),
            }
            tokio::time::sleep_until(started + self.timings.retry_period).await;
        }
    }

    /// Renews the Lease every retry period and keeps the fence open until the renew deadline of the last
    /// successful renewal. Returns when leadership is lost (another replica holds the Lease, or no renewal
    /// succeeded within the renew deadline, e.g. after the process was frozen): the fence is closed by then, and
    /// the caller must stop its controllers. A standby can take over a third of a lease duration later at the
    /// earliest.
    pub async fn keep(&self) {
        let renew_deadline = self.timings.renew_deadline;
        let retry_period = self.timings.retry_period;
        // `acquire` opened the fence until the renew deadline of its successful try.
        let mut deadline = self.fence.deadline().unwrap_or_else(Instant::now);
        let mut next_attempt = deadline
            .checked_sub(renew_deadline)
            .map_or_else(Instant::now, |renewed| renewed + retry_period);
        loop {
            tokio::time::sleep_until(next_attempt.min(deadline)).await;
            let started = Instant::now();
            if started >= deadline {
                self.fence.close();
                tracing::error!(
                    lease = %self.name,
                    ?renew_deadline,
                    "lost the lease: it was not renewed within the renew deadline"
                );
                return;
            }
            match self.try_hold(deadline - started).await {
                Ok(LeaseState::Held) => {
                    deadline = started + renew_deadline;
                    self.fence.open_until(deadline);
                }
                Ok(LeaseState::HeldBy(other)) => {
                    self.fence.close();
                    tracing::error!(lease = %self.name, holder = %other, "lost the lease to another replica");
                    return;
                }
                Err(error) => tracing::warn!(%error, "unable to renew the lease; retrying until the renew deadline"),
            }
            next_attempt = started + retry_period;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timings_follow_client_go_proportions_and_are_bounded() {
        let timings = LeaseTimings::for_lease(Duration::from_secs(15)).unwrap();
        assert_eq!(timings, LeaseTimings::default());
        let short = LeaseTimings::for_lease(Duration::from_secs(3)).unwrap();
        assert_eq!(short.renew_deadline, Duration::from_secs(2));
        assert_eq!(short.retry_period, Duration::from_millis(400));
        assert!(short.retry_period < short.renew_deadline && short.renew_deadline < short.lease_duration);
        assert_eq!(
            LeaseTimings::for_lease(Duration::from_secs(10_000_000_000_000_000_000))
                .unwrap_err()
                .to_string(),
            "the lease duration 10000000000000000000s is out of range; use between 1s and 24h (default 15s)"
        );
        assert_eq!(
            LeaseTimings::for_lease(Duration::from_millis(500))
                .unwrap_err()
                .to_string(),
            "the lease duration 500ms is out of range; use between 1s and 24h (default 15s)"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_fence_closes_at_the_renew_deadline_even_when_nobody_looks() {
        let fence = WriteFence::new();
        assert!(!fence.allows_writes(), "closed before the lease is held");
        fence.open_until(Instant::now() + Duration::from_secs(10));
        assert!(fence.allows_writes());
        // A frozen process: time passes and nothing runs. The first write after waking is refused.
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(!fence.allows_writes());
        fence.open_until(Instant::now() + Duration::from_secs(10));
        fence.close();
        assert!(!fence.allows_writes());
    }

    #[tokio::test(start_paused = true)]
    async fn the_fenced_service_refuses_writes_but_not_reads() {
        use tower::{Layer, Service};
        let fence = WriteFence::new();
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = calls.clone();
        let inner = tower::service_fn(move |_request: Request<()>| {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async { Ok::<_, std::io::Error>("answer") }
        });
        let mut service = FenceLayer::new(fence.clone()).layer(inner);
        let request = |method: Method| {
            Request::builder()
                .method(method)
                .uri("/apis/app.redislabs.com/v1alpha1/namespaces/default/redisenterprisedatabases/cache")
                .body(())
                .unwrap()
        };
        assert_eq!(service.call(request(Method::GET)).await.unwrap(), "answer");
        for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            let error = service.call(request(method.clone())).await.unwrap_err();
            assert_eq!(
                error.to_string(),
                format!(
                    "refused to {method} /apis/app.redislabs.com/v1alpha1/namespaces/default/redisenterprisedatabases/cache: \
                     this replica does not hold the leader lease"
                )
            );
        }
        assert_eq!(
            calls.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "refused writes never leave"
        );
        fence.open_until(Instant::now() + Duration::from_secs(1));
        assert_eq!(service.call(request(Method::PATCH)).await.unwrap(), "answer");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(service.call(request(Method::PATCH)).await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn expiry_is_timed_locally_from_the_last_change_of_the_record() {
        let lease = LeaderLease {
            api: Api::namespaced(unreachable_client(), "default"),
            name: "redis-gitops-agent".into(),
            holder: "b".into(),
            timings: LeaseTimings::for_lease(Duration::from_secs(15)).unwrap(),
            fence: WriteFence::new(),
            observed: Mutex::new(None),
            webhook_endpoint: None,
        };
        let record = |rv: &str, renew: Timestamp| Record {
            holder: "a".into(),
            renew_time: Some(renew),
            resource_version: Some(rv.into()),
        };
        // The other replica's renewTime is far in the past by our wall clock (skew): irrelevant.
        let old = Timestamp::from_second(0).unwrap();
        let first = Instant::now();
        assert_eq!(lease.observe(record("1", old), first), first);
        tokio::time::advance(Duration::from_secs(14)).await;
        assert_eq!(
            lease.observe(record("1", old), Instant::now()),
            first,
            "unchanged record"
        );
        // The holder renewed (new resourceVersion): the clock starts again from now.
        let renewed = Instant::now();
        assert_eq!(lease.observe(record("2", old), renewed), renewed);
        tokio::time::advance(Duration::from_secs(20)).await;
        assert_eq!(lease.observe(record("2", old), Instant::now()), renewed);
    }

    /// An in-memory API server holding one Lease: GET, POST and PUT (with resourceVersion checks); while `hang` is
    /// set, no request is ever answered (a partitioned or overloaded API server).
    #[derive(Clone, Default)]
    struct FakeLeases {
        lease: Arc<Mutex<Option<serde_json::Value>>>,
        version: Arc<std::sync::atomic::AtomicU64>,
        hang: Arc<std::sync::atomic::AtomicBool>,
    }

    impl FakeLeases {
        fn client(&self) -> kube::Client {
            let fake = self.clone();
            let service = tower::service_fn(move |request: Request<kube::client::Body>| {
                let fake = fake.clone();
                async move {
                    if fake.hang.load(std::sync::atomic::Ordering::SeqCst) {
                        std::future::pending::<()>().await;
                    }
                    let method = request.method().clone();
                    let body = request
                        .into_body()
                        .collect_bytes()
                        .await
                        .map_err(|e| Box::new(e) as BoxError)?;
                    let (status, answer) = fake.answer(&method, &body);
                    let response = axum::http::Response::builder()
                        .status(status)
                        .header("content-type", "application/json")
                        .body(kube::client::Body::from(answer.to_string().into_bytes()))
                        .map_err(|e| Box::new(e) as BoxError)?;
                    Ok::<_, BoxError>(response)
                }
            });
            kube::Client::new(service, "default")
        }

        fn answer(&self, method: &Method, body: &[u8]) -> (u16, serde_json::Value) {
            let mut lease = self.lease.lock().unwrap();
            let not_found = serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "reason": "NotFound", "code": 404, "message": "not found"});
            let conflict = serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "reason": "Conflict", "code": 409, "message": "conflict"});
            match *method {
                Method::GET => match lease.as_ref() {
                    Some(current) => (200, current.clone()),
                    None => (404, not_found),
                },
                Method::POST | Method::PUT => {
                    let mut written: serde_json::Value = serde_json::from_slice(body).unwrap();
                    let current_version = lease.as_ref().map(|l| l["metadata"]["resourceVersion"].clone());
                    let sent_version = written["metadata"].get("resourceVersion").cloned();
                    if (*method == Method::POST && lease.is_some())
                        || (*method == Method::PUT && current_version != sent_version)
                    {
                        return (409, conflict);
                    }
                    let version = self.version.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    written["metadata"]["resourceVersion"] = serde_json::json!(version.to_string());
                    written["apiVersion"] = serde_json::json!("coordination.k8s.io/v1");
                    written["kind"] = serde_json::json!("Lease");
                    *lease = Some(written.clone());
                    (if *method == Method::POST { 201 } else { 200 }, written)
                }
                _ => (405, not_found),
            }
        }

        fn holder(&self) -> Option<String> {
            let lease = self.lease.lock().unwrap();
            lease.as_ref()?["spec"]["holderIdentity"].as_str().map(str::to_string)
        }
    }

    fn lease_for(fake: &FakeLeases, holder: &str) -> LeaderLease {
        LeaderLease::new(
            fake.client(),
            "default",
            "redis-gitops-agent",
            holder,
            LeaseTimings::for_lease(Duration::from_secs(15)).unwrap(),
            WriteFence::new(),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_leader_whose_renewals_hang_gives_up_at_the_renew_deadline_before_the_lease_can_expire() {
        let fake = FakeLeases::default();
        let leader = lease_for(&fake, "a");
        leader.acquire().await;
        assert!(leader.fence().allows_writes());
        assert_eq!(fake.holder().as_deref(), Some("a"));
        let keeper = async {
            leader.keep().await;
            Instant::now()
        };
        tokio::pin!(keeper);
        // A minute of healthy renewals: the lease stays held and the fence open.
        tokio::select! {
            _ = &mut keeper => panic!("the lease was lost while the API server answered"),
            () = tokio::time::sleep(Duration::from_secs(60)) => {}
        }
        assert!(leader.fence().allows_writes());
        let versions_before = fake.version.load(std::sync::atomic::Ordering::SeqCst);
        assert!(
            versions_before >= 25,
            "renewed every retry period: {versions_before} writes"
        );
        // The API server stops answering (kube has no read timeout): the renewal is cut at the renew deadline.
        let hung_at = Instant::now();
        fake.hang.store(true, std::sync::atomic::Ordering::SeqCst);
        let gave_up_at = keeper.await;
        assert!(!leader.fence().allows_writes(), "the fence is closed once keep returns");
        let last_renewal_at_most = Duration::from_secs(2);
        let after_hang = gave_up_at - hung_at;
        assert!(
            after_hang <= Duration::from_secs(10) && after_hang + last_renewal_at_most > Duration::from_secs(8),
            "gave up {after_hang:?} after the API server hung, i.e. at the renew deadline (10s) of the last renewal"
        );
        // A standby that saw that last renewal may take over 15s after it at the earliest: 5s of margin or more.
    }

    #[tokio::test(start_paused = true)]
    async fn a_standby_takes_over_only_after_a_whole_lease_of_no_change_seen_locally() {
        let fake = FakeLeases::default();
        let leader = lease_for(&fake, "a");
        leader.acquire().await;
        // The leader's renewTime says 1970 (a skewed clock): the standby does not care.
        {
            let mut lease = fake.lease.lock().unwrap();
            lease.as_mut().unwrap()["spec"]["renewTime"] = serde_json::json!("1970-01-01T00:00:00.000000Z");
        }
        let standby = lease_for(&fake, "b");
        let timeout = Duration::from_secs(10);
        assert_eq!(standby.try_hold(timeout).await.unwrap(), LeaseState::HeldBy("a".into()));
        tokio::time::advance(Duration::from_secs(14)).await;
        assert_eq!(standby.try_hold(timeout).await.unwrap(), LeaseState::HeldBy("a".into()));
        // The leader renews: the standby's count starts again from when it sees the change.
        assert_eq!(leader.try_hold(timeout).await.unwrap(), LeaseState::Held);
        assert_eq!(standby.try_hold(timeout).await.unwrap(), LeaseState::HeldBy("a".into()));
        tokio::time::advance(Duration::from_secs(14)).await;
        assert_eq!(standby.try_hold(timeout).await.unwrap(), LeaseState::HeldBy("a".into()));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(standby.try_hold(timeout).await.unwrap(), LeaseState::Held);
        assert_eq!(fake.holder().as_deref(), Some("b"));
        // The old leader, back, finds another holder and must not win it back.
        assert_eq!(leader.try_hold(timeout).await.unwrap(), LeaseState::HeldBy("b".into()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_leader_frozen_past_its_renew_deadline_stops_without_writing_the_lease() {
        let fake = FakeLeases::default();
        let leader = lease_for(&fake, "a");
        leader.acquire().await;
        let writes = fake.version.load(std::sync::atomic::Ordering::SeqCst);
        // Frozen (SIGSTOP): the clock runs, no task does. On waking, the fence is already closed and `keep`
        // returns at once, without trying to renew.
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(!leader.fence().allows_writes());
        let woke = Instant::now();
        leader.keep().await;
        assert_eq!(Instant::now(), woke);
        assert_eq!(fake.version.load(std::sync::atomic::Ordering::SeqCst), writes);
    }

    /// A client whose requests never reach anything (only its type is needed).
    fn unreachable_client() -> kube::Client {
        let service = tower::service_fn(|_request: Request<kube::client::Body>| async {
            Err::<axum::http::Response<kube::client::Body>, BoxError>("no API server in this test".into())
        });
        kube::Client::new(service, "default")
    }
}
