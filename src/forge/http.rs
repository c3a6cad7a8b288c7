//! The shared HTTP part of the forge clients: one reqwest client per forge target (the system's roots plus the
//! Secret's `ca.crt`), the provider's auth header (marked sensitive), dedup before writing, rate limits
//! (`Retry-After`, `X-RateLimit-Remaining`/`Reset`, secondary limits), and error messages with the token redacted.
//! It talks only to the forge.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use super::comments::{self, CommentOutcome};
use super::{
    Delivery, ExistingStatus, ForgeError, ForgeProvider, ForgeRequest, ForgeTarget, StatusPost, already_shown,
    create_request, github, gitlab, list_request, newest_status,
};

/// The largest forge answer read; a list of statuses is a few KiB.
pub const MAX_RESPONSE_BODY: usize = 1024 * 1024;
/// The wait when a forge rate-limits without saying how long.
pub const DEFAULT_RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);
/// The longest wait a forge's rate-limit headers can ask for.
pub const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(3600);

/// How to build a [`ForgeClient`].
#[derive(Clone)]
pub struct ForgeClientConfig {
    /// Where statuses go.
    pub target: ForgeTarget,
    /// The API token (Secret key `token`).
    pub token: String,
    /// Extra CA certificates (PEM) trusted besides the system's, for a self-hosted forge.
    pub ca_pem: Option<Vec<u8>>,
    /// Time limit of one request.
    pub timeout: Duration,
}

impl std::fmt::Debug for ForgeClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForgeClientConfig")
            .field("target", &self.target)
            .field("token", &"<redacted>")
            .field("ca_pem", &self.ca_pem.as_ref().map(Vec::len))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A client for one forge target and token.
pub struct ForgeClient {
    http: reqwest::Client,
    target: ForgeTarget,
    token: String,
    auth: (HeaderName, HeaderValue),
    /// Until when the forge said no request may be made (`X-RateLimit-Remaining: 0` with its reset time).
    paused_until: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for ForgeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForgeClient")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl ForgeClient {
    /// Builds a client. Fails on an unusable CA certificate or a token that cannot be a header.
    pub fn new(config: ForgeClientConfig) -> Result<Self, ForgeError> {
        let provider = config.target.provider.as_str();
        let configuration = |reason: String| ForgeError::Configuration { provider, reason };
        let tls = tls_config(config.ca_pem.as_deref()).map_err(configuration)?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("redis-gitops/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| configuration(format!("failed to build the HTTP client: {error}")))?;
        let auth = auth_header(config.target.provider, config.token.trim()).ok_or_else(|| {
            configuration("the token in the Secret's `token` key is empty or not a valid header value".to_string())
        })?;
        Ok(Self {
            http,
            target: config.target,
            token: config.token.trim().to_string(),
            auth,
            paused_until: Mutex::new(None),
        })
    }

    /// Where this client posts.
    pub fn target(&self) -> &ForgeTarget {
        &self.target
    }

    /// The newest status the forge shows for `context` on `sha`.
    pub async fn existing(&self, sha: &str, context: &str) -> Result<Option<ExistingStatus>, ForgeError> {
        let request = list_request(&self.target, sha, context);
        let answer = self.send(&request).await?;
        match answer {
            Answer::NotFound if self.target.provider == ForgeProvider::Bitbucket => Ok(None),
            Answer::NotFound => Err(ForgeError::Unauthorized {
                provider: self.target.provider.as_str(),
                endpoint: endpoint(&request),
                status: 404,
                message: "repository or commit not found".to_string(),
            }),
            Answer::Ok(body) => Ok(newest_status(self.target.provider, &body, context)),
            Answer::SameState => Ok(None),
        }
    }

    /// Posts `post` unless the forge already shows it as the newest status of its context.
    pub async fn deliver(&self, post: &StatusPost) -> Result<Delivery, ForgeError> {
        let existing = self.existing(&post.sha, &post.context).await?;
        if already_shown(&self.target, existing.as_ref(), post) {
            return Ok(Delivery::AlreadyThere);
        }
        self.create(post).await
    }

    /// Posts `post` without looking first.
    pub async fn create(&self, post: &StatusPost) -> Result<Delivery, ForgeError> {
        let provider = self.target.provider.as_str();
        // A replica that lost the leader Lease writes nowhere, the forge included.
        if !crate::sync::lease::process_allows_writes() {
            return Err(ForgeError::NotLeader { provider });
        }
        let request = create_request(&self.target, post);
        match self.send(&request).await? {
            Answer::Ok(_) => Ok(Delivery::Posted),
            Answer::SameState => Ok(Delivery::AlreadyThere),
            Answer::NotFound => Err(ForgeError::Unauthorized {
                provider,
                endpoint: endpoint(&request),
                status: 404,
                message: "repository or commit not found".to_string(),
            }),
        }
    }

    /// Posts `body` as the pull request's one comment marked by `marker` (its first line): updates the oldest
    /// comment that starts with the marker, or creates one. A comment that already says `body` is left alone.
    pub async fn upsert_comment(&self, number: u64, marker: &str, body: &str) -> Result<CommentOutcome, ForgeError> {
        let provider = self.target.provider.as_str();
        if !comments::supported(self.target.provider) {
            return Err(ForgeError::Configuration {
                provider,
                reason: "pull-request comments are supported on github, gitlab and gitea".to_string(),
            });
        }
        let body = comments::fit(self.target.provider, body);
        let mut found = None;
        for page in 1..=comments::MAX_PAGES {
            let request = comments::list(&self.target, number, page);
            let listed = match self.send(&request).await? {
                Answer::Ok(value) => comments::listed(&value),
                Answer::NotFound | Answer::SameState => return Err(self.no_pull_request(&request, number)),
            };
            let full = listed.len() >= comments::PAGE_SIZE;
            if let Some(comment) = comments::find_marked(&listed, marker) {
                found = Some(comment.clone());
                break;
            }
            if !full {
                break;
            }
        }
        let request = match &found {
            Some(comment) if comment.body == body => return Ok(CommentOutcome::Unchanged { id: comment.id }),
            Some(comment) => comments::update(&self.target, number, comment.id, &body),
            None => comments::create(&self.target, number, &body),
        };
        match self.send(&request).await? {
            Answer::Ok(value) => Ok(match found {
                Some(comment) => CommentOutcome::Updated { id: comment.id },
                None => CommentOutcome::Created {
                    id: value.get("id").and_then(Value::as_u64).unwrap_or_default(),
                },
            }),
            Answer::NotFound | Answer::SameState => Err(self.no_pull_request(&request, number)),
        }
    }

    fn no_pull_request(&self, request: &ForgeRequest, number: u64) -> ForgeError {
        ForgeError::Unauthorized {
            provider: self.target.provider.as_str(),
            endpoint: endpoint(request),
            status: 404,
            message: format!(
                "pull request {number} of {} not found, or not visible to the token",
                self.target.repository
            ),
        }
    }

    async fn send(&self, request: &ForgeRequest) -> Result<Answer, ForgeError> {
        let provider = self.target.provider.as_str();
        let endpoint = endpoint(request);
        if let Some(wait) = self.paused_for() {
            return Err(ForgeError::RateLimited {
                provider,
                endpoint,
                retry_after: wait,
            });
        }
        let mut builder = self
            .http
            .request(
                request.method.clone(),
                format!("{}{}", self.target.api_url, request.path),
            )
            .header(self.auth.0.clone(), self.auth.1.clone());
        if self.target.provider == ForgeProvider::Github {
            for (name, value) in github::HEADERS {
                builder = builder.header(name, value);
            }
        } else {
            builder = builder.header("accept", "application/json");
        }
        if let Some(body) = &request.body {
            builder = builder.json(body);
        }
        let response = builder.send().await.map_err(|error| ForgeError::Transport {
            provider,
            endpoint: endpoint.clone(),
            reason: self.redact(&transport_reason(&error)),
        })?;
        let status = response.status();
        let headers = response.headers().clone();
        self.note_remaining(&headers);
        let body = read_body(response).await.map_err(|reason| ForgeError::Transport {
            provider,
            endpoint: endpoint.clone(),
            reason: self.redact(&reason),
        })?;
        if status.is_success() {
            let value = if body.trim().is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&body).map_err(|error| ForgeError::InvalidResponse {
                    provider,
                    endpoint: endpoint.clone(),
                    reason: error.to_string(),
                })?
            };
            return Ok(Answer::Ok(value));
        }
        let message = self.redact(&forge_message(&body));
        if let Some(retry_after) = rate_limit_wait(status, &headers, &body) {
            return Err(ForgeError::RateLimited {
                provider,
                endpoint,
                retry_after,
            });
        }
        if self.target.provider == ForgeProvider::Gitlab && gitlab::is_same_state_transition(status.as_u16(), &body) {
            return Ok(Answer::SameState);
        }
        match status {
            StatusCode::NOT_FOUND => Ok(Answer::NotFound),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(ForgeError::Unauthorized {
                provider,
                endpoint,
                status: status.as_u16(),
                message,
            }),
            _ => Err(ForgeError::Rejected {
                provider,
                endpoint,
                status: status.as_u16(),
                message,
            }),
        }
    }

    fn paused_for(&self) -> Option<Duration> {
        let mut paused = self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
        let until = (*paused)?;
        let now = Instant::now();
        if until <= now {
            *paused = None;
            return None;
        }
        Some(until - now)
    }

    /// Remembers a primary limit that is used up, so that no request is made before it resets.
    fn note_remaining(&self, headers: &HeaderMap) {
        if header_number(headers, "x-ratelimit-remaining") == Some(0) {
            let wait = reset_wait(headers).unwrap_or(DEFAULT_RATE_LIMIT_WAIT);
            *self.paused_until.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now() + wait);
        }
    }

    fn redact(&self, text: &str) -> String {
        redact(text, &self.token)
    }
}

/// What a forge answered, when it is not an error.
enum Answer {
    Ok(Value),
    NotFound,
    /// GitLab's 400 on re-posting the current state.
    SameState,
}

/// `text` with every occurrence of `token` (and of its halves around a `:`, for Bitbucket's `user:password`)
/// replaced.
pub fn redact(text: &str, token: &str) -> String {
    let mut text = text.to_string();
    let mut secrets: Vec<&str> = vec![token];
    if let Some((_, password)) = token.split_once(':') {
        secrets.push(password);
    }
    for secret in secrets {
        if secret.len() >= 4 {
            text = text.replace(secret, "<redacted>");
        }
    }
    text
}

fn endpoint(request: &ForgeRequest) -> String {
    let path = request.path.split('?').next().unwrap_or_default();
    format!("{} {path}", request.method)
}

fn auth_header(provider: ForgeProvider, token: &str) -> Option<(HeaderName, HeaderValue)> {
    use base64::Engine;
    if token.is_empty() {
        return None;
    }
    let (name, value) = match provider {
        ForgeProvider::Github => (reqwest::header::AUTHORIZATION, format!("Bearer {token}")),
        ForgeProvider::Gitlab => (HeaderName::from_static("private-token"), token.to_string()),
        ForgeProvider::Gitea => (reqwest::header::AUTHORIZATION, format!("token {token}")),
        ForgeProvider::Bitbucket if token.contains(':') => (
            reqwest::header::AUTHORIZATION,
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(token)),
        ),
        ForgeProvider::Bitbucket => (reqwest::header::AUTHORIZATION, format!("Bearer {token}")),
    };
    let mut value = HeaderValue::from_str(&value).ok()?;
    value.set_sensitive(true);
    Some((name, value))
}

/// How long to wait when the answer is a rate limit: 429, or 403 with `Retry-After`, an exhausted
/// `X-RateLimit-Remaining`, or GitHub's secondary-limit message.
fn rate_limit_wait(status: StatusCode, headers: &HeaderMap, body: &str) -> Option<Duration> {
    let retry_after = header_number(headers, "retry-after").map(Duration::from_secs);
    let exhausted = header_number(headers, "x-ratelimit-remaining") == Some(0);
    let limited = status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::FORBIDDEN
            && (retry_after.is_some() || exhausted || body.to_ascii_lowercase().contains("rate limit"));
    if !limited {
        return None;
    }
    let wait = retry_after
        .or_else(|| exhausted.then(|| reset_wait(headers)).flatten())
        .unwrap_or(DEFAULT_RATE_LIMIT_WAIT);
    Some(wait.clamp(Duration::from_secs(1), MAX_RATE_LIMIT_WAIT))
}

/// The time until `X-RateLimit-Reset` (Unix seconds).
fn reset_wait(headers: &HeaderMap) -> Option<Duration> {
    let reset = header_number(headers, "x-ratelimit-reset")?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(reset.saturating_sub(now).max(1)).min(MAX_RATE_LIMIT_WAIT))
}

fn header_number(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// The forge's own message from an error body (`message`, GitLab's `message`/`error`), else the start of the body.
fn forge_message(body: &str) -> String {
    let from_json = serde_json::from_str::<Value>(body).ok().and_then(|value| {
        let message = value.get("message").or_else(|| value.get("error"))?;
        Some(match message {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        })
    });
    let message = from_json.unwrap_or_else(|| body.trim().to_string());
    super::truncate(&message, 300)
}

/// Reads a body, refusing one over [`MAX_RESPONSE_BODY`].
async fn read_body(mut response: reqwest::Response) -> Result<String, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|error| transport_reason(&error))? {
        if body.len().saturating_add(chunk.len()) > MAX_RESPONSE_BODY {
            return Err(format!("the answer exceeds {} KiB", MAX_RESPONSE_BODY / 1024));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

fn transport_reason(error: &reqwest::Error) -> String {
    use std::error::Error;
    let mut reason = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        reason = cause.to_string();
        source = cause.source();
    }
    reason
}

/// A rustls configuration trusting the system's roots and the CAs of `pem`.
fn tls_config(pem: Option<&[u8]>) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    // Unreadable system certificates are skipped: a self-hosted forge brings its own CA.
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(pem) = pem {
        let mut added = 0;
        for certificate in CertificateDer::pem_slice_iter(pem) {
            let certificate =
                certificate.map_err(|error| format!("'ca.crt' in the Secret is not valid PEM: {error}"))?;
            roots
                .add(certificate)
                .map_err(|error| format!("'ca.crt' in the Secret cannot be trusted: {error}"))?;
            added += 1;
        }
        if added == 0 {
            return Err("'ca.crt' in the Secret holds no certificate".to_string());
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| format!("failed to set up TLS: {error}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).expect("header"));
        }
        map
    }

    #[test]
    fn rate_limits_are_recognised_with_their_wait() {
        assert_eq!(
            rate_limit_wait(StatusCode::TOO_MANY_REQUESTS, &headers(&[("retry-after", "7")]), ""),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            rate_limit_wait(
                StatusCode::FORBIDDEN,
                &headers(&[]),
                "You have exceeded a secondary rate limit"
            ),
            Some(DEFAULT_RATE_LIMIT_WAIT)
        );
        let reset = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs() + 30;
        let wait = rate_limit_wait(
            StatusCode::FORBIDDEN,
            &headers(&[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", &reset.to_string()),
            ]),
            "",
        )
        .expect("limited");
        assert!(
            wait <= Duration::from_secs(30) && wait >= Duration::from_secs(28),
            "{wait:?}"
        );
        assert_eq!(
            rate_limit_wait(StatusCode::FORBIDDEN, &headers(&[]), "Resource not accessible"),
            None
        );
        assert_eq!(
            rate_limit_wait(StatusCode::UNPROCESSABLE_ENTITY, &headers(&[]), ""),
            None
        );
    }

    #[test]
    fn the_token_is_redacted_and_never_in_debug_output() {
        assert_eq!(
            redact("bad token ghp_secret123 here", "ghp_secret123"),
            "bad token <redacted> here"
        );
        assert_eq!(
            redact("user:app-pass and app-pass", "user:app-pass"),
            "<redacted> and <redacted>"
        );
        let (_, value) = auth_header(ForgeProvider::Github, "ghp_secret123").expect("header");
        assert!(value.is_sensitive());
        assert!(!format!("{value:?}").contains("ghp_secret123"));
        let config = ForgeClientConfig {
            target: ForgeTarget {
                provider: ForgeProvider::Github,
                api_url: "https://api.github.com".into(),
                repository: "a/b".into(),
            },
            token: "ghp_secret123".into(),
            ca_pem: None,
            timeout: Duration::from_secs(1),
        };
        assert!(!format!("{config:?}").contains("ghp_secret123"));
    }

    #[test]
    fn each_provider_has_its_auth_header() {
        let value = |provider, token| {
            let (name, value) = auth_header(provider, token).expect("header");
            (name.to_string(), value.to_str().expect("ascii").to_string())
        };
        assert_eq!(
            value(ForgeProvider::Github, "t1"),
            ("authorization".into(), "Bearer t1".into())
        );
        assert_eq!(
            value(ForgeProvider::Gitlab, "t1"),
            ("private-token".into(), "t1".into())
        );
        assert_eq!(
            value(ForgeProvider::Gitea, "t1"),
            ("authorization".into(), "token t1".into())
        );
        assert_eq!(
            value(ForgeProvider::Bitbucket, "t1"),
            ("authorization".into(), "Bearer t1".into())
        );
        assert_eq!(
            value(ForgeProvider::Bitbucket, "u:p"),
            ("authorization".into(), "Basic dTpw".into())
        );
        assert!(auth_header(ForgeProvider::Github, "").is_none());
    }
}
