//! The REST client: HTTPS with the cluster's CA, basic auth, a time limit on every call, and retries with
//! exponential backoff where the documentation says to try again (409 busy, 5xx). Non-idempotent calls (POST) are
//! not retried after a server error or a lost answer: the caller looks the object up again instead, so a
//! database is never created twice.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::error::{EnterpriseError, cap_cluster_text, parse_error_body};
use super::states::ActionStatus;
use super::types::{Action, Bdb, Bootstrap, BootstrapRequest, Credentials, Node};

/// How often and how patiently a call is retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, including the first.
    pub attempts: u32,
    /// Wait before the second attempt; doubled each time.
    pub initial_backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1` (from 1), with up to 25% jitter so many objects do not retry in step.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exponential = self
            .initial_backoff
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
        let capped = exponential.min(self.max_backoff);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let jitter = capped.mul_f64(f64::from(nanos % 250) / 1000.0);
        capped.saturating_sub(jitter)
    }
}

/// How to reach one cluster's REST API.
#[derive(Clone)]
pub struct ClientConfig {
    /// Base URL, for example `https://rec.ns.svc:9443`.
    pub base_url: String,
    /// Administrator credentials (from the cluster's credentials Secret).
    pub credentials: Credentials,
    /// PEM of the CA that signed the cluster's API certificate.
    pub ca_pem: Vec<u8>,
    /// Time limit of one HTTP call.
    pub timeout: Duration,
    /// Retries.
    pub retry: RetryPolicy,
    /// Name resolution to use instead of the system's (the sandbox maps in-cluster names to loopback addresses).
    pub resolver: Option<Arc<dyn reqwest::dns::Resolve>>,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("base_url", &self.base_url)
            .field("credentials", &self.credentials)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("resolver", &self.resolver.is_some())
            .finish()
    }
}

/// A client of one Redis Enterprise cluster.
#[derive(Clone)]
pub struct EnterpriseClient {
    http: reqwest::Client,
    base_url: String,
    credentials: Credentials,
    timeout: Duration,
    retry: RetryPolicy,
}

impl std::fmt::Debug for EnterpriseClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnterpriseClient")
            .field("base_url", &self.base_url)
            .field("credentials", &self.credentials)
            .finish()
    }
}

/// A rustls client configuration that trusts exactly the CAs in `pem`.
pub fn tls_config(pem: &[u8]) -> Result<rustls::ClientConfig, EnterpriseError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(pem) {
        let certificate = certificate.map_err(|error| EnterpriseError::Configuration {
            reason: format!("the CA certificate is not valid PEM: {error}"),
        })?;
        roots.add(certificate).map_err(|error| EnterpriseError::Configuration {
            reason: format!("the CA certificate cannot be trusted: {error}"),
        })?;
    }
    if roots.is_empty() {
        return Err(EnterpriseError::Configuration {
            reason: "no CA certificate found in the PEM; give the cluster's CA (ca.crt)".to_string(),
        });
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| EnterpriseError::Configuration {
            reason: format!("failed to set up TLS: {error}"),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl EnterpriseClient {
    /// Builds a client. Fails on an unusable CA certificate.
    pub fn new(config: ClientConfig) -> Result<Self, EnterpriseError> {
        let mut builder = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config(&config.ca_pem)?)
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)));
        if let Some(resolver) = config.resolver {
            builder = builder.dns_resolver(resolver);
        }
        let http = builder.build().map_err(|error| EnterpriseError::Configuration {
            reason: format!("failed to build the HTTP client: {error}"),
        })?;
        Ok(Self {
            http,
            base_url: config.base_url.trim_end_matches('/').to_string(),
            credentials: config.credentials,
            timeout: config.timeout,
            retry: config.retry,
        })
    }

    /// Builds a client that trusts the CA of `config` (may be empty) and the certificates pinned in `pins`
    /// (see [`super::trust`]): how the agent reaches a cluster whose certificates are self-signed.
    pub fn with_pins(config: ClientConfig, pins: Vec<String>) -> Result<Self, EnterpriseError> {
        let tls = super::trust::TrustVerifier::new(&config.ca_pem, pins)?.into_client_config()?;
        let mut builder = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)));
        if let Some(resolver) = config.resolver {
            builder = builder.dns_resolver(resolver);
        }
        let http = builder.build().map_err(|error| EnterpriseError::Configuration {
            reason: format!("failed to build the HTTP client: {error}"),
        })?;
        Ok(Self {
            http,
            base_url: config.base_url.trim_end_matches('/').to_string(),
            credentials: config.credentials,
            timeout: config.timeout,
            retry: config.retry,
        })
    }

    /// `GET /v1/cluster/certificates`: the PEM of the cluster's REST API certificate (`api_cert`). The answer also
    /// holds private keys; only `api_cert` is kept, the rest is dropped here.
    pub async fn cluster_api_certificate(&self) -> Result<Option<String>, EnterpriseError> {
        let certificates = self.call(Method::GET, "/v1/cluster/certificates", None).await?;
        Ok(certificates.get("api_cert").and_then(Value::as_str).map(str::to_string))
    }

    /// The base URL this client talks to.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value, EnterpriseError> {
        let endpoint = format!("{method} {path}");
        // An agent replica that lost the leader Lease must not change any cluster, even if a controller woke up
        // before it was stopped.
        if method != Method::GET && !crate::sync::lease::process_allows_writes() {
            return Err(EnterpriseError::NotLeader { endpoint });
        }
        let idempotent = method != Method::POST;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = self
                .http
                .request(method.clone(), format!("{}{path}", self.base_url))
                .basic_auth(&self.credentials.username, Some(&self.credentials.password));
            if let Some(body) = body {
                request = request.json(body);
            }
            let last_attempt = attempt >= self.retry.attempts;
            let response = match request.send().await {
                Ok(response) => response,
                Err(error) => {
                    let failure = if error.is_timeout() {
                        EnterpriseError::Timeout {
                            endpoint: endpoint.clone(),
                            seconds: self.timeout.as_secs(),
                        }
                    } else {
                        EnterpriseError::Unreachable {
                            endpoint: endpoint.clone(),
                            reason: transport_reason(&error),
                        }
                    };
                    // A POST whose answer was lost may have been done; the caller checks instead of repeating it.
                    if last_attempt || !(idempotent || error.is_connect()) {
                        return Err(failure);
                    }
                    tracing::debug!(%endpoint, attempt, category = failure.category(), "retrying REST call");
                    tokio::time::sleep(self.retry.backoff(attempt)).await;
                    continue;
                }
            };
            let status = response.status();
            let text = read_body(response, MAX_RESPONSE_BODY)
                .await
                .map_err(|reason| EnterpriseError::Decode {
                    endpoint: endpoint.clone(),
                    reason,
                })?;
            if status.is_success() {
                if text.trim().is_empty() {
                    return Ok(Value::Null);
                }
                return serde_json::from_str(&text).map_err(|error| EnterpriseError::Decode {
                    endpoint: endpoint.clone(),
                    reason: error.to_string(),
                });
            }
            if status == StatusCode::UNAUTHORIZED {
                return Err(EnterpriseError::Unauthorized { endpoint });
            }
            let (error_code, description) = parse_error_body(&text);
            // 409 means "busy, try later" only with that code (or no body); other conflicts, such as a name or uid that
            // exists, will not go away by waiting.
            let busy = status == StatusCode::CONFLICT && matches!(error_code.as_str(), "busy" | "unknown");
            let retryable = busy
                || status == StatusCode::SERVICE_UNAVAILABLE
                || status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED && idempotent;
            if !retryable || last_attempt {
                if busy {
                    return Err(EnterpriseError::Busy {
                        endpoint,
                        attempts: attempt,
                        description,
                    });
                }
                return Err(EnterpriseError::Api {
                    endpoint,
                    status: status.as_u16(),
                    error_code,
                    description,
                });
            }
            tracing::debug!(%endpoint, attempt, status = status.as_u16(), %error_code, "retrying REST call");
            tokio::time::sleep(self.retry.backoff(attempt)).await;
        }
    }

    async fn call_typed<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T, EnterpriseError> {
        let value = self.call(method.clone(), path, body).await?;
        serde_json::from_value(value).map_err(|error| EnterpriseError::Decode {
            endpoint: format!("{method} {path}"),
            reason: error.to_string(),
        })
    }

    /// `GET /v1/bootstrap`: where this node's bootstrap stands.
    pub async fn bootstrap(&self) -> Result<Bootstrap, EnterpriseError> {
        self.call_typed(Method::GET, "/v1/bootstrap", None).await
    }

    /// `POST /v1/bootstrap/<action>`: create or join the cluster (asynchronous; poll [`Self::bootstrap`]).
    pub async fn start_bootstrap(&self, request: &BootstrapRequest) -> Result<(), EnterpriseError> {
        let body = serde_json::to_value(request).map_err(|error| EnterpriseError::Configuration {
            reason: format!("failed to encode the bootstrap request: {error}"),
        })?;
        self.call(Method::POST, &format!("/v1/bootstrap/{}", request.action), Some(&body))
            .await
            .map(drop)
    }

    /// `GET /v1/cluster`.
    pub async fn cluster(&self) -> Result<Value, EnterpriseError> {
        self.call(Method::GET, "/v1/cluster", None).await
    }

    /// `GET /v1/cluster/policy`: the cluster's defaults for new databases (`default_redis_version`, ...).
    pub async fn cluster_policy(&self) -> Result<Value, EnterpriseError> {
        self.call(Method::GET, "/v1/cluster/policy", None).await
    }

    /// `GET /v1/nodes`.
    pub async fn nodes(&self) -> Result<Vec<Node>, EnterpriseError> {
        self.call_typed(Method::GET, "/v1/nodes", None).await
    }

    /// `GET /v1/bdbs`.
    pub async fn databases(&self) -> Result<Vec<Bdb>, EnterpriseError> {
        self.call_typed(Method::GET, "/v1/bdbs", None).await
    }

    /// `GET /v1/bdbs/{uid}`; `None` when the database does not exist.
    pub async fn database(&self, uid: u64) -> Result<Option<Bdb>, EnterpriseError> {
        match self.call_typed(Method::GET, &format!("/v1/bdbs/{uid}"), None).await {
            Ok(bdb) => Ok(Some(bdb)),
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The database with this name, if any (names are unique in a cluster).
    pub async fn database_by_name(&self, name: &str) -> Result<Option<Bdb>, EnterpriseError> {
        Ok(self.databases().await?.into_iter().find(|bdb| bdb.name == name))
    }

    /// `POST /v1/bdbs`: creates a database (asynchronous; follow its `action_uid`).
    pub async fn create_database(&self, body: &Map<String, Value>) -> Result<Bdb, EnterpriseError> {
        self.call_typed(Method::POST, "/v1/bdbs", Some(&Value::Object(body.clone())))
            .await
    }

    /// `PUT /v1/bdbs/{uid}` with exactly the fields to change.
    pub async fn update_database(&self, uid: u64, changes: &Map<String, Value>) -> Result<Bdb, EnterpriseError> {
        self.call_typed(
            Method::PUT,
            &format!("/v1/bdbs/{uid}"),
            Some(&Value::Object(changes.clone())),
        )
        .await
    }

    /// `DELETE /v1/bdbs/{uid}`. A database that is already gone counts as deleted.
    pub async fn delete_database(&self, uid: u64) -> Result<(), EnterpriseError> {
        match self.call(Method::DELETE, &format!("/v1/bdbs/{uid}"), None).await {
            Ok(_) => Ok(()),
            Err(error) if error.is_not_found() => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// `PUT /v1/bdbs/{uid}/passwords`: replaces the default user's password.
    pub async fn set_database_password(&self, uid: u64, password: &str) -> Result<(), EnterpriseError> {
        self.call(
            Method::PUT,
            &format!("/v1/bdbs/{uid}/passwords"),
            Some(&json!({ "password": password })),
        )
        .await
        .map(drop)
    }

    /// `POST /v1/bdbs/{uid}/upgrade`: moves the database to another Redis version.
    pub async fn upgrade_database(&self, uid: u64, redis_version: &str) -> Result<Value, EnterpriseError> {
        self.call(
            Method::POST,
            &format!("/v1/bdbs/{uid}/upgrade"),
            Some(&json!({ "redis_version": redis_version })),
        )
        .await
    }

    /// `POST /v1/bdbs/alerts/{uid}`: sets the database's alert thresholds.
    pub async fn set_database_alerts(&self, uid: u64, alerts: &Value) -> Result<(), EnterpriseError> {
        self.call(Method::POST, &format!("/v1/bdbs/alerts/{uid}"), Some(alerts))
            .await
            .map(drop)
    }

    /// `GET /v1/bdbs/alerts/{uid}`: the database's alert settings (an object of `{enabled, threshold}` per alert).
    pub async fn database_alerts(&self, uid: u64) -> Result<Value, EnterpriseError> {
        self.call(Method::GET, &format!("/v1/bdbs/alerts/{uid}"), None).await
    }

    /// `GET /v1/shards`: every shard of the cluster (`uid`, `bdb_uid`, `role`, `status`, ...).
    pub async fn shards(&self) -> Result<Vec<Value>, EnterpriseError> {
        self.call_typed(Method::GET, "/v1/shards", None).await
    }

    /// `POST /v1/bdbs/{uid}/actions/export` with an `export_location` (which holds credentials: never logged);
    /// progress is in the bdb's `export_status`. 409 (busy) comes back as [`EnterpriseError::Busy`].
    pub async fn export_database(&self, uid: u64, location: &Value) -> Result<(), EnterpriseError> {
        let body = serde_json::json!({ "export_location": location, "email_notification": false });
        self.call(Method::POST, &format!("/v1/bdbs/{uid}/actions/export"), Some(&body))
            .await
            .map(drop)
    }

    /// `POST /v1/bdbs/{uid}/actions/import` with one source per shard file (which hold credentials: never
    /// logged); it erases the database's content. Progress is in the bdb's `import_status`.
    pub async fn import_database(&self, uid: u64, sources: &[Value]) -> Result<(), EnterpriseError> {
        let body = serde_json::json!({ "dataset_import_sources": sources, "email_notification": false });
        self.call(Method::POST, &format!("/v1/bdbs/{uid}/actions/import"), Some(&body))
            .await
            .map(drop)
    }

    /// `GET /v1/bdbs/stats/last/{uid}`: the database's latest statistics (`no_of_keys`, ...); `None` when the
    /// cluster has none (404).
    pub async fn database_last_stats(&self, uid: u64) -> Result<Option<Value>, EnterpriseError> {
        match self
            .call(Method::GET, &format!("/v1/bdbs/stats/last/{uid}"), None)
            .await
        {
            Ok(stats) => Ok(Some(stats)),
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// `PUT /v1/cluster` with the fields to change (for example `s3_url`).
    pub async fn update_cluster(&self, changes: &Value) -> Result<(), EnterpriseError> {
        self.call(Method::PUT, "/v1/cluster", Some(changes)).await.map(drop)
    }

    /// `GET /v1/actions/{uid}`; `None` when the cluster no longer knows the action.
    pub async fn action(&self, action_uid: &str) -> Result<Option<Action>, EnterpriseError> {
        match self
            .call_typed(Method::GET, &format!("/v1/actions/{action_uid}"), None)
            .await
        {
            Ok(action) => Ok(Some(action)),
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Polls an action until it finishes or `limit` passes. `Ok(None)` when the cluster forgot the action (it
    /// finished long ago) or the time ran out with the action still running; a failed action is an error.
    pub async fn wait_for_action(
        &self,
        action_uid: &str,
        limit: Duration,
        poll: Duration,
    ) -> Result<Option<Action>, EnterpriseError> {
        let deadline = Instant::now() + limit;
        loop {
            let Some(action) = self.action(action_uid).await? else {
                return Ok(None);
            };
            if action.status.is_unsuccessful() {
                let reason = action
                    .other
                    .get("error")
                    .or_else(|| action.other.get("additional_info").and_then(|info| info.get("error")))
                    .map_or_else(
                        || match action.status {
                            ActionStatus::Failed => "no reason given".to_string(),
                            _ => format!("the action was {}", action.status),
                        },
                        |error| error.as_str().map_or_else(|| error.to_string(), str::to_string),
                    );
                return Err(EnterpriseError::ActionFailed {
                    action_uid: cap_cluster_text(&action.action_uid),
                    name: cap_cluster_text(&action.name),
                    reason: cap_cluster_text(&reason),
                });
            }
            if action.is_finished() {
                return Ok(Some(action));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(poll).await;
        }
    }
}

/// The largest REST response body read (a list of 1000 databases is about 2 MiB); a larger one is refused
/// without being held in memory whole.
pub const MAX_RESPONSE_BODY: usize = 8 * 1024 * 1024;

/// Reads a response body as text, chunk by chunk, refusing it once it exceeds `limit` bytes.
async fn read_body(mut response: reqwest::Response, limit: usize) -> Result<String, String> {
    let too_large = || format!("the body exceeds the limit of {} MiB", limit / (1024 * 1024));
    if response
        .content_length()
        .is_some_and(|length| usize::try_from(length).map_or(true, |length| length > limit))
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|error| transport_reason(&error))? {
        if body.len().saturating_add(chunk.len()) > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    String::from_utf8(body).map_err(|_| "the body is not UTF-8 text".to_string())
}

fn transport_reason(error: &reqwest::Error) -> String {
    use std::error::Error;
    // The innermost cause says what happened (connection refused, certificate unknown...); URLs carry no secrets.
    let mut reason = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        reason = cause.to_string();
        source = cause.source();
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_bounded_jitter() {
        let policy = RetryPolicy {
            attempts: 6,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
        };
        for (attempt, full) in [(1, 100), (2, 200), (3, 400), (4, 500), (9, 500)] {
            let wait = policy.backoff(attempt);
            let full = Duration::from_millis(full);
            assert!(
                wait <= full && wait >= full.mul_f64(0.75),
                "attempt {attempt}: {wait:?}"
            );
        }
    }

    #[test]
    fn a_ca_that_is_not_pem_is_a_configuration_error() {
        let error = tls_config(b"not a certificate").expect_err("refused");
        assert_eq!(error.category(), "Configuration");
        assert!(error.to_string().contains("no CA certificate found"), "{error}");
    }

    fn response(body: Vec<u8>) -> reqwest::Response {
        reqwest::Response::from(axum::http::Response::new(body))
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_and_one_at_the_limit_is_read() {
        let limit = 1024 * 1024;
        let error = read_body(response(vec![b'x'; limit + 1]), limit).await.unwrap_err();
        assert_eq!(error, "the body exceeds the limit of 1 MiB");
        let body = read_body(response(vec![b'x'; limit]), limit).await.unwrap();
        assert_eq!(body.len(), limit);
        assert_eq!(
            read_body(response(vec![0xff, 0xfe]), limit).await.unwrap_err(),
            "the body is not UTF-8 text"
        );
        assert_eq!(MAX_RESPONSE_BODY, 8 * 1024 * 1024);
        let error = read_body(response(vec![b' '; MAX_RESPONSE_BODY + 1]), MAX_RESPONSE_BODY)
            .await
            .unwrap_err();
        assert_eq!(error, "the body exceeds the limit of 8 MiB");
    }

    #[test]
    fn debug_output_never_shows_the_password() {
        let credentials = Credentials {
            username: "admin@example.com".into(),
            password: "hunter2".into(),
        };
        let debug = format!("{credentials:?}");
        assert!(
            debug.contains("admin@example.com") && !debug.contains("hunter2"),
            "{debug}"
        );
    }
}
