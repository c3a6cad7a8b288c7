//! The push-webhook receiver: `POST /hook/<hex>` on the agent's webhook port. It finds the GitSync whose
//! `status.webhookPath` is the path (in the GitSync controller's cache), reads its webhook Secret, verifies the
//! delivery, drops replays, decides from the payload, and hands the GitSync to the controller, at most once per
//! [`MIN_TRIGGER_INTERVAL`] per GitSync (later pushes within it are coalesced into one deferred trigger). On a
//! standby (no controller), it forwards the delivery unchanged to the leader's receiver, whose address the leader
//! publishes on the leader Lease. It reads Secrets and the Lease and writes nothing; answers and logs never carry a
//! secret.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::{Client, ResourceExt};
use serde_json::json;

use super::push::{Decision, parse_push};
use super::verify::{Event, Forge, delivery_id, event, verify};
use super::{PATH_PREFIX, SECRET_KEY, webhook_path};
use crate::api::GitSync;
use crate::sync::settings::settings;
use crate::sync::trigger::SyncTriggers;
use crate::telemetry::{Metrics, WebhookLabels};

/// The largest delivery accepted (GitHub's own cap on payloads); larger ones are refused with 413.
pub const MAX_BODY_BYTES: usize = 25 * 1024 * 1024;

/// The shortest time between two webhook-triggered syncs of one GitSync.
pub const MIN_TRIGGER_INTERVAL: Duration = Duration::from_secs(1);

/// How many delivery ids are remembered to drop replays.
const REMEMBERED_DELIVERIES: usize = 4096;

/// The receiver's state, one per agent.
pub struct WebhookReceiver {
    client: Client,
    triggers: SyncTriggers,
    metrics: Arc<Metrics>,
    seen: Mutex<SeenDeliveries>,
    limits: Mutex<HashMap<(String, String), Limit>>,
    forward: Option<LeaderForward>,
}

/// How a replica that runs no controller (a standby) passes deliveries to the leader: the leader publishes its
/// webhook base URL on the leader Lease, and the delivery is sent on unchanged (the leader verifies it).
struct LeaderForward {
    leases: Api<k8s_openapi::api::coordination::v1::Lease>,
    lease: String,
    http: reqwest::Client,
}

/// The header a forwarded delivery carries, so that it is never forwarded twice.
pub const FORWARDED_HEADER: &str = "x-redis-gitops-forwarded";

#[derive(Default)]
struct SeenDeliveries {
    order: VecDeque<(String, String)>,
    set: HashSet<(String, String)>,
}

impl SeenDeliveries {
    /// Remembers `key`; false when it was seen before.
    fn insert(&mut self, key: (String, String)) -> bool {
        if self.set.contains(&key) {
            return false;
        }
        if self.order.len() >= REMEMBERED_DELIVERIES
            && let Some(oldest) = self.order.pop_front()
        {
            self.set.remove(&oldest);
        }
        self.order.push_back(key.clone());
        self.set.insert(key);
        true
    }
}

struct Limit {
    last: Instant,
    deferred: bool,
}

/// What [`WebhookReceiver::admit`] allows.
enum Admission {
    Now,
    After(Duration),
    AlreadyDeferred,
}

impl WebhookReceiver {
    /// A receiver that reads Secrets with `client` and triggers syncs through `triggers`.
    pub fn new(client: Client, triggers: SyncTriggers, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            client,
            triggers,
            metrics,
            seen: Mutex::new(SeenDeliveries::default()),
            limits: Mutex::new(HashMap::new()),
            forward: None,
        })
    }

    /// A receiver that, while this replica runs no controller, forwards deliveries to the holder of Lease `lease`
    /// in `namespace` (its `redisgitops.dev/webhook-endpoint` annotation), instead of answering 503.
    pub fn with_leader_forwarding(
        client: Client,
        triggers: SyncTriggers,
        metrics: Arc<Metrics>,
        lease_client: Client,
        namespace: &str,
        lease: &str,
    ) -> Arc<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .ok();
        Arc::new(Self {
            client,
            triggers,
            metrics,
            seen: Mutex::new(SeenDeliveries::default()),
            limits: Mutex::new(HashMap::new()),
            forward: http.map(|http| LeaderForward {
                leases: Api::namespaced(lease_client, namespace),
                lease: lease.to_string(),
                http,
            }),
        })
    }

    /// The HTTP routes: `POST /hook/{id}`.
    pub fn router(self: &Arc<Self>) -> axum::Router {
        axum::Router::new()
            .route("/hook/{id}", axum::routing::post(receive))
            .with_state(self.clone())
    }

    fn admit(&self, key: &(String, String)) -> Admission {
        let Ok(mut limits) = self.limits.lock() else {
            return Admission::Now;
        };
        let now = Instant::now();
        match limits.get_mut(key) {
            None => {
                limits.insert(
                    key.clone(),
                    Limit {
                        last: now,
                        deferred: false,
                    },
                );
                Admission::Now
            }
            Some(limit) if limit.deferred => Admission::AlreadyDeferred,
            Some(limit) => {
                let since = now.saturating_duration_since(limit.last);
                if since >= MIN_TRIGGER_INTERVAL {
                    limit.last = now;
                    Admission::Now
                } else {
                    limit.deferred = true;
                    Admission::After(MIN_TRIGGER_INTERVAL - since)
                }
            }
        }
    }

    /// Triggers the deferred sync of `key` after `delay`.
    fn trigger_later(self: &Arc<Self>, key: (String, String), delay: Duration) {
        let receiver = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if let Ok(mut limits) = receiver.limits.lock()
                && let Some(limit) = limits.get_mut(&key)
            {
                limit.last = Instant::now();
                limit.deferred = false;
            }
            receiver.triggers.trigger(&key.0, &key.1);
        });
    }

    fn count(&self, forge: Option<Forge>, result: &'static str) {
        let forge = forge.map_or("unknown", Forge::label);
        self.metrics
            .webhook_deliveries
            .get_or_create(&WebhookLabels { forge, result })
            .inc();
    }
}

/// Serves the receiver's routes on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    receiver: Arc<WebhookReceiver>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, receiver.router())
        .with_graceful_shutdown(shutdown)
        .await
}

/// An answer: status, a `result` word (the metric label) and a message.
fn answer(status: StatusCode, result: &'static str, message: &str) -> Response {
    (status, axum::Json(json!({"result": result, "message": message}))).into_response()
}

async fn receive(
    State(receiver): State<Arc<WebhookReceiver>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (forge, result, response) = handle(&receiver, &id, &headers, body).await;
    receiver.count(forge, result);
    response
}

async fn handle(
    receiver: &Arc<WebhookReceiver>,
    id: &str,
    headers: &HeaderMap,
    body: Body,
) -> (Option<Forge>, &'static str, Response) {
    let path = format!("{PATH_PREFIX}{id}");
    let gitsync = match receiver.triggers.find_by_webhook_path(&path) {
        Err(()) if receiver.forward.is_some() && !headers.contains_key(FORWARDED_HEADER) => {
            return forward_to_leader(receiver, &path, headers, body).await;
        }
        Err(()) => {
            let message = "the GitSync controller is not running on this replica (not the leader, or starting)";
            return (
                None,
                "unavailable",
                answer(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message),
            );
        }
        Ok(None) => {
            let message = "no GitSync has this webhook path; copy status.webhookPath of the GitSync";
            return (None, "not_found", answer(StatusCode::NOT_FOUND, "not_found", message));
        }
        Ok(Some(gitsync)) => gitsync,
    };
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return (None, "too_large", too_large());
    }
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(_) => return (None, "too_large", too_large()),
    };
    let namespace = gitsync.namespace().unwrap_or_else(|| "default".to_string());
    let name = gitsync.name_any();
    let secret = match read_secret(&receiver.client, &gitsync, &namespace).await {
        Ok(secret) => secret,
        Err(message) => {
            return (
                None,
                "unavailable",
                answer(StatusCode::SERVICE_UNAVAILABLE, "unavailable", &message),
            );
        }
    };
    // The cache may hold a path made with a secret since rotated: only the current secret's path is valid.
    if webhook_path(&secret, &namespace, &name) != path {
        let message = "no GitSync has this webhook path; copy status.webhookPath of the GitSync";
        return (None, "not_found", answer(StatusCode::NOT_FOUND, "not_found", message));
    }
    let forge = match verify(headers, &body, &secret) {
        Ok(forge) => forge,
        Err(error) => {
            tracing::info!(gitsync = %format!("{namespace}/{name}"), reason = error.category(), "webhook refused");
            return (
                None,
                "unauthorized",
                answer(StatusCode::UNAUTHORIZED, "unauthorized", &error.to_string()),
            );
        }
    };
    let key = (namespace, name);
    if let Some(delivery) = delivery_id(forge, headers) {
        let fresh = receiver
            .seen
            .lock()
            .map(|mut seen| seen.insert((format!("{}/{}", key.0, key.1), delivery)))
            .unwrap_or(true);
        if !fresh {
            let message = "this delivery was received before; ignored";
            return (Some(forge), "duplicate", answer(StatusCode::OK, "duplicate", message));
        }
    }
    let (result, status, message) = decide_and_trigger(receiver, forge, headers, &body, &gitsync, &key);
    tracing::info!(gitsync = %format!("{}/{}", key.0, key.1), forge = forge.label(), result, "webhook delivery");
    (Some(forge), result, answer(status, result, &message))
}

/// The event, the payload and the GitSync's ref and path decide; then the trigger, rate-limited.
fn decide_and_trigger(
    receiver: &Arc<WebhookReceiver>,
    forge: Forge,
    headers: &HeaderMap,
    body: &[u8],
    gitsync: &GitSync,
    key: &(String, String),
) -> (&'static str, StatusCode, String) {
    match event(forge, headers) {
        Event::Ping => return ("ping", StatusCode::OK, "pong".to_string()),
        Event::Other(name) => {
            let message = format!("event \"{name}\" ignored; only push events trigger a sync");
            return ("ignored_event", StatusCode::OK, message);
        }
        Event::Push => {}
    }
    let push = match parse_push(forge, body) {
        Ok(push) => push,
        Err(error) => return ("bad_request", StatusCode::BAD_REQUEST, error.to_string()),
    };
    let settings = match settings(&gitsync.spec) {
        Ok(settings) => settings,
        Err(error) => {
            let message = format!("the GitSync's spec is not usable ({error}); the push is ignored");
            return ("invalid_spec", StatusCode::OK, message);
        }
    };
    match super::push::decide(&push, &settings.reference, &settings.path) {
        Decision::IgnoredRef => (
            "ignored_ref",
            StatusCode::OK,
            format!(
                "the push moved {}; the GitSync follows {}",
                push.refs.join(", "),
                settings.reference
            ),
        ),
        Decision::IgnoredPath => (
            "ignored_path",
            StatusCode::OK,
            format!("no changed file is under the GitSync's path {}", settings.path),
        ),
        Decision::Trigger => match receiver.admit(key) {
            Admission::Now => {
                if receiver.triggers.trigger(&key.0, &key.1) {
                    ("triggered", StatusCode::ACCEPTED, "sync triggered".to_string())
                } else {
                    let message = "the GitSync controller is not running on this replica";
                    ("unavailable", StatusCode::SERVICE_UNAVAILABLE, message.to_string())
                }
            }
            Admission::After(delay) => {
                receiver.trigger_later(key.clone(), delay);
                let message = format!("sync triggered in {} ms (rate limit)", delay.as_millis());
                ("deferred", StatusCode::ACCEPTED, message)
            }
            Admission::AlreadyDeferred => (
                "deferred",
                StatusCode::ACCEPTED,
                "a sync is already due shortly; this push is part of it".to_string(),
            ),
        },
    }
}

/// Sends a delivery on to the leader's receiver as it came (headers and body), and answers with the leader's answer;
/// 503 when no leader published an endpoint or it cannot be reached.
async fn forward_to_leader(
    receiver: &Arc<WebhookReceiver>,
    path: &str,
    headers: &HeaderMap,
    body: Body,
) -> (Option<Forge>, &'static str, Response) {
    let unavailable = |message: &str| {
        (
            None,
            "unavailable",
            answer(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message),
        )
    };
    let Some(forward) = &receiver.forward else {
        return unavailable("this replica does not forward deliveries");
    };
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return (None, "too_large", too_large());
    }
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return (None, "too_large", too_large());
    };
    let Some(endpoint) = crate::sync::lease::leader_webhook_endpoint(&forward.leases, &forward.lease).await else {
        return unavailable("this replica is a standby and no leader has published its webhook endpoint yet");
    };
    let mut request = forward
        .http
        .post(format!("{}{path}", endpoint.trim_end_matches('/')))
        .header(FORWARDED_HEADER, "1")
        .body(body);
    for (name, value) in headers {
        let skip = [
            axum::http::header::HOST,
            axum::http::header::CONTENT_LENGTH,
            axum::http::header::CONNECTION,
            axum::http::header::TRANSFER_ENCODING,
        ];
        if !skip.contains(name) {
            request = request.header(name.as_str(), value.as_bytes());
        }
    }
    match request.send().await {
        Ok(answer) => {
            let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let text = answer.text().await.unwrap_or_default();
            let response = (status, [(axum::http::header::CONTENT_TYPE, "application/json")], text).into_response();
            (None, "forwarded", response)
        }
        Err(error) => {
            tracing::warn!(error = %error.without_url(), "unable to forward a push webhook to the leader");
            unavailable("this replica is a standby and the leader's webhook endpoint did not answer")
        }
    }
}

fn too_large() -> Response {
    let message = format!("the delivery is larger than {} MB", MAX_BODY_BYTES / (1024 * 1024));
    answer(StatusCode::PAYLOAD_TOO_LARGE, "too_large", &message)
}

/// The webhook secret of `gitsync`; the error says which Secret is missing, never a value.
async fn read_secret(client: &Client, gitsync: &GitSync, namespace: &str) -> Result<Vec<u8>, String> {
    let Some(webhook) = &gitsync.spec.webhook else {
        return Err("the GitSync has no spec.webhook any more".to_string());
    };
    let name = &webhook.secret_ref.name;
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = api.get_opt(name).await.map_err(|error| {
        format!(
            "unable to read the webhook Secret {namespace}/{name}: {}",
            crate::runtime::errors::kube_error_text(&error)
        )
    })?;
    secret
        .and_then(|secret| secret.data?.remove(SECRET_KEY))
        .map(|token| token.0)
        .filter(|token| !token.is_empty())
        .ok_or_else(|| format!("the webhook Secret {namespace}/{name} does not exist or has no key `{SECRET_KEY}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_are_remembered_within_a_bound() {
        let mut seen = SeenDeliveries::default();
        assert!(seen.insert(("a".into(), "1".into())));
        assert!(!seen.insert(("a".into(), "1".into())));
        assert!(seen.insert(("b".into(), "1".into())));
        for index in 0..REMEMBERED_DELIVERIES {
            seen.insert(("c".into(), index.to_string()));
        }
        assert_eq!(seen.set.len(), REMEMBERED_DELIVERIES);
        // The oldest were forgotten.
        assert!(seen.insert(("a".into(), "1".into())));
    }
}
