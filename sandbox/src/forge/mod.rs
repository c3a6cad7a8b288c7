//! The forge emulator: the commit-status subsets of GitHub, GitLab, Gitea and Bitbucket Cloud on loopback (see
//! [`statuses`]) and the pull-request comments of the first three (see [`comments`]), with each forge's documented
//! validation, limits and auth, fault injection (down, rate limited), and an in-process handle to read what was posted. Its [`router`] is composable so that other forge parts (smart HTTP,
//! webhooks) can be merged into the same server. It knows nothing of the agent.

pub mod comments;
pub mod git;
pub mod hooks;
pub mod statuses;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use serde_json::Value;

pub use comments::PostedComment;
pub use statuses::{Forge, PostedStatus};

/// How to start the emulator.
#[derive(Clone, Debug)]
pub struct ForgeOptions {
    /// Port on 127.0.0.1 (0: a free port).
    pub port: u16,
    /// The API tokens accepted (every forge takes the same ones); any other token is 401.
    pub tokens: Vec<String>,
    /// Requests each token may make per hour before GitHub-style `X-RateLimit-Remaining: 0` answers (403).
    pub rate_limit: u32,
}

impl Default for ForgeOptions {
    fn default() -> Self {
        Self {
            port: 0,
            tokens: vec!["forge-token".to_string()],
            rate_limit: 5000,
        }
    }
}

/// One request the emulator received, as it came.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedRequest {
    /// `GET` or `POST`.
    pub method: String,
    /// Path and query as sent (percent-encoding kept).
    pub path: String,
    /// Headers, names lowercase.
    pub headers: BTreeMap<String, String>,
    /// The JSON body, if any.
    pub body: Option<Value>,
}

/// Failure to start the emulator.
#[derive(Debug, thiserror::Error)]
pub enum ForgeEmulatorError {
    /// The port could not be listened on.
    #[error("unable to listen on 127.0.0.1:{port} for the forge emulator: {source}")]
    Listen {
        /// The port asked for.
        port: u16,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// The emulator's shared state: posted statuses, requests, faults. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ForgeState {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    tokens: Vec<String>,
    rate_limit: u32,
    next_id: i64,
    /// (forge, repository, sha) → statuses, oldest first.
    statuses: HashMap<(Forge, String, String), Vec<PostedStatus>>,
    /// (forge, repository, pull request number) → comments, oldest first; a pull request exists once opened.
    comments: HashMap<(Forge, String, u64), Vec<PostedComment>>,
    requests: Vec<RecordedRequest>,
    down: bool,
    /// The next this many requests are answered 429 with `Retry-After`.
    throttled: u32,
    retry_after: u64,
    /// Requests per token in the current hour.
    used: HashMap<String, u32>,
}

impl ForgeState {
    /// A state accepting `options.tokens`.
    pub fn new(options: &ForgeOptions) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                tokens: options.tokens.clone(),
                rate_limit: options.rate_limit,
                next_id: 1,
                ..Inner::default()
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The statuses posted to `forge` for `repository` (`owner/name`, GitLab's project path) and `sha`, oldest first.
    pub fn statuses(&self, forge: Forge, repository: &str, sha: &str) -> Vec<PostedStatus> {
        self.lock()
            .statuses
            .get(&(forge, repository.to_string(), sha.to_string()))
            .cloned()
            .unwrap_or_default()
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// The `POST` requests received, in order.
    pub fn posts(&self) -> Vec<RecordedRequest> {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.method == "POST")
            .cloned()
            .collect()
    }

    /// Opens pull request `number` of `repository` on `forge` (GitLab: merge request iid), so comments can be
    /// posted on it; comments on a pull request that was not opened are 404.
    pub fn open_pull_request(&self, forge: Forge, repository: &str, number: u64) {
        self.lock()
            .comments
            .entry((forge, repository.to_string(), number))
            .or_default();
    }

    /// The comments of pull request `number`, oldest first.
    pub fn comments(&self, forge: Forge, repository: &str, number: u64) -> Vec<PostedComment> {
        self.lock()
            .comments
            .get(&(forge, repository.to_string(), number))
            .cloned()
            .unwrap_or_default()
    }

    /// Adds a comment as another user would (opening the pull request if needed) and returns its id.
    pub fn add_comment(&self, forge: Forge, repository: &str, number: u64, body: &str) -> u64 {
        comments::store(self, forge, repository, number, body).id
    }

    /// Makes the forge answer 503 to everything (`true`) or serve again (`false`).
    pub fn set_down(&self, down: bool) {
        self.lock().down = down;
    }

    /// Answers the next `count` requests with 429 and `Retry-After: <seconds>`.
    pub fn throttle_next(&self, count: u32, retry_after: Duration) {
        let mut inner = self.lock();
        inner.throttled = count;
        inner.retry_after = retry_after.as_secs();
    }

    /// Adds an accepted token (a rotated one).
    pub fn add_token(&self, token: &str) {
        self.lock().tokens.push(token.to_string());
    }
}

/// The emulator's routes on `state`, to serve alone or merged with other forge routes.
pub fn router(state: ForgeState) -> Router {
    statuses::routes().merge(comments::routes()).with_state(state)
}

/// Starts forge emulators.
pub struct ForgeEmulator;

impl ForgeEmulator {
    /// Starts the emulator on 127.0.0.1; it stops when the handle is dropped.
    pub async fn start(options: ForgeOptions) -> Result<ForgeHandle, ForgeEmulatorError> {
        let state = ForgeState::new(&options);
        ForgeHandle::serve(options.port, state.clone(), router(state)).await
    }
}

/// A running emulator.
pub struct ForgeHandle {
    address: SocketAddr,
    state: ForgeState,
    task: tokio::task::JoinHandle<()>,
}

impl ForgeHandle {
    /// Serves `router` (built on `state`, perhaps with more routes merged) on 127.0.0.1:`port`.
    pub async fn serve(port: u16, state: ForgeState, router: Router) -> Result<ForgeHandle, ForgeEmulatorError> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|source| ForgeEmulatorError::Listen { port, source })?;
        let address = listener
            .local_addr()
            .map_err(|source| ForgeEmulatorError::Listen { port, source })?;
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                tracing::warn!(%error, "the forge emulator stopped");
            }
        });
        Ok(ForgeHandle { address, state, task })
    }

    /// `http://127.0.0.1:<port>`: GitHub's API URL, and Bitbucket's (paths start with `/2.0`).
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// GitLab's API URL (`/api/v4`).
    pub fn gitlab_api_url(&self) -> String {
        format!("{}/api/v4", self.url())
    }

    /// Gitea's API URL (`/api/v1`).
    pub fn gitea_api_url(&self) -> String {
        format!("{}/api/v1", self.url())
    }

    /// The address served.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The shared state: what was posted, faults.
    pub fn state(&self) -> &ForgeState {
        &self.state
    }
}

impl Drop for ForgeHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
