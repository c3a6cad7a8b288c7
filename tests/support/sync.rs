//! The real GitSync controller running against the sandbox API server, for the controller-level tests: start
//! both, create GitSyncs and Secrets, and wait for what the status says.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use redis_gitops::api::{GitSync, RedisEnterpriseDatabase};
use redis_gitops::sync::controller::{SyncContext, run};
use redis_gitops::telemetry::Metrics;
use redis_gitops_sandbox::apiserver::{ApiServer, ApiServerHandle, ApiServerOptions};
use serde_json::{Value, json};

/// A REC file.
pub const REC: &str =
    "apiVersion: app.redislabs.com/v1\nkind: RedisEnterpriseCluster\nmetadata:\n  name: rec\nspec:\n  nodes: 3\n";

/// A REDB file.
pub fn database(name: &str, memory: &str) -> String {
    format!(
        "apiVersion: app.redislabs.com/v1alpha1\nkind: RedisEnterpriseDatabase\nmetadata:\n  name: {name}\nspec:\n  memorySize: {memory}\n  evictionPolicy: allkeys-lru\n"
    )
}

/// The sandbox API server with the project's CRDs and the GitSync controller running against it.
pub struct SyncHarness {
    /// The API server.
    pub apiserver: ApiServerHandle,
    /// A client of it.
    pub client: kube::Client,
    /// GitSyncs in `default`.
    pub gitsyncs: Api<GitSync>,
    /// REDBs in `default`.
    pub databases: Api<RedisEnterpriseDatabase>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    controller: Option<tokio::task::JoinHandle<()>>,
    _cache: tempfile::TempDir,
}

impl SyncHarness {
    /// Starts the API server and the controller (its Git cache in a temporary directory).
    pub async fn start() -> SyncHarness {
        let apiserver = ApiServer::start(ApiServerOptions {
            crds: redis_gitops::api::crds(),
            ..ApiServerOptions::default()
        })
        .await
        .expect("the sandbox API server starts");
        let client = apiserver.kube_client().expect("client");
        let cache = tempfile::tempdir().expect("cache dir");
        let context = Arc::new(SyncContext::new(
            client.clone(),
            cache.path().to_path_buf(),
            Default::default(),
            None,
            Arc::new(Metrics::default()),
        ));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let controller = tokio::spawn(run(context, async move {
            let _ = stopped.await;
        }));
        SyncHarness {
            gitsyncs: Api::namespaced(client.clone(), "default"),
            databases: Api::namespaced(client.clone(), "default"),
            apiserver,
            client,
            stop: Some(stop),
            controller: Some(controller),
            _cache: cache,
        }
    }

    /// Creates a GitSync `name` in `default` with this spec.
    pub async fn create_gitsync(&self, name: &str, spec: Value) {
        let gitsync: GitSync = serde_json::from_value(json!({
            "apiVersion": "redisgitops.dev/v1alpha1", "kind": "GitSync",
            "metadata": {"name": name, "namespace": "default"},
            "spec": spec,
        }))
        .expect("a GitSync");
        self.gitsyncs
            .create(&PostParams::default(), &gitsync)
            .await
            .expect("create the GitSync");
    }

    /// Creates a Secret `name` in `default` with these string values.
    pub async fn create_secret(&self, name: &str, values: &[(&str, &str)]) {
        let data: BTreeMap<String, String> = values.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let secret: Secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": "default"},
            "stringData": data,
        }))
        .expect("a Secret");
        Api::<Secret>::namespaced(self.client.clone(), "default")
            .create(&PostParams::default(), &secret)
            .await
            .expect("create the Secret");
    }

    /// Waits until the GitSync `name` has applied `revision` and is Ready; returns it.
    pub async fn wait_applied(&self, name: &str, revision: &str) -> GitSync {
        let what = format!("GitSync {name} to apply {revision}");
        eventually(&what, || async {
            let current = self.gitsyncs.get(name).await.ok()?;
            let applied = current.status.as_ref()?.last_applied_revision.as_deref()? == revision;
            (applied && ready(&current)?.0 == "True").then_some(current)
        })
        .await
    }

    /// Waits until the GitSync `name` is `Ready=False` with `reason`; returns the condition's message and the GitSync.
    pub async fn wait_not_ready(&self, name: &str, reason: &str) -> (String, GitSync) {
        let what = format!("GitSync {name} to be Ready=False/{reason}");
        eventually(&what, || async {
            let current = self.gitsyncs.get(name).await.ok()?;
            let (status, found, message) = ready(&current)?;
            (status == "False" && found == reason).then_some((message, current))
        })
        .await
    }

    /// The memory size of a REDB, if it exists.
    pub async fn memory(&self, database: &str) -> Option<String> {
        self.databases.get_opt(database).await.ok()??.spec.memory_size
    }
}

impl Drop for SyncHarness {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(controller) = self.controller.take() {
            controller.abort();
        }
    }
}

/// Polls `check` every 100 ms until it returns a value, for at most 30 s.
pub async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_within(what, Duration::from_secs(30), check).await
}

/// Polls `check` every 100 ms until it returns a value, for at most `limit`.
pub async fn eventually_within<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The Ready condition's status, reason and message.
pub fn ready(gitsync: &GitSync) -> Option<(String, String, String)> {
    let condition = gitsync
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?
        .clone();
    Some((condition.status, condition.reason, condition.message))
}
