//! The database controller's test harness, shared by `tests/database_controller.rs` and
//! `tests/orphaned_children.rs` (included with `#[path]`): a sandbox with a hand-bootstrapped 3-node emulated cluster
//! `rec`, its REC marked Running, its admin Secret, and the database controller running with short resyncs.
// Each test binary uses some of these helpers, not all of them.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use redis_gitops::api::{RedisEnterpriseCluster, RedisEnterpriseDatabase};
use redis_gitops::controllers::ControllerContext;
use redis_gitops::controllers::EnterpriseAccess;
use redis_gitops::controllers::database::{DatabaseSettings, run_with};
use redis_gitops::enterprise::states::BootstrapState;
use redis_gitops::enterprise::types::{BootstrapCluster, BootstrapNode, BootstrapRequest, Credentials, NodeIdentity};
use redis_gitops::enterprise::{ClientConfig, EnterpriseClient, RetryPolicy};
use redis_gitops::telemetry::Metrics;
use redis_gitops_sandbox::enterprise::{ClusterKey, EmulatorConfig, RecordedRequest};
use redis_gitops_sandbox::{Sandbox, SandboxOptions};
use serde_json::{Value, json};

pub const NAMESPACE: &str = "default";
pub const ADMIN_PASSWORD: &str = "admin-password-1";
pub const REST_TIMEOUT: Duration = Duration::from_secs(2);

pub fn admin() -> Credentials {
    Credentials {
        username: "admin@example.com".into(),
        password: ADMIN_PASSWORD.into(),
    }
}

/// A sandbox with one bootstrapped cluster `rec`, its REC Running, and the database controller running.
pub struct Environment {
    pub sandbox: Sandbox,
    pub kube: kube::Client,
    pub rest: EnterpriseClient,
    pub stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub controller: tokio::task::JoinHandle<()>,
}

impl Environment {
    pub fn key() -> ClusterKey {
        ClusterKey::new(NAMESPACE, "rec")
    }

    pub fn databases(&self) -> Api<RedisEnterpriseDatabase> {
        Api::namespaced(self.kube.clone(), NAMESPACE)
    }

    pub fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.kube.clone(), NAMESPACE)
    }

    pub fn writes(&self) -> Vec<RecordedRequest> {
        self.sandbox
            .emulator
            .requests()
            .all()
            .into_iter()
            .filter(RecordedRequest::is_write)
            .collect()
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.controller).await;
    }
}

pub fn rest_client(sandbox: &Sandbox, host: &str) -> EnterpriseClient {
    EnterpriseClient::new(ClientConfig {
        base_url: format!("https://{host}:9443"),
        credentials: admin(),
        ca_pem: sandbox.ca_pem().as_bytes().to_vec(),
        timeout: Duration::from_secs(5),
        retry: RetryPolicy::default(),
        resolver: Some(Arc::new(sandbox.emulator.resolver())),
    })
    .expect("client builds")
}

pub async fn bootstrap(client: &EnterpriseClient, action: &str, ip: &str, members: Vec<String>) {
    client
        .start_bootstrap(&BootstrapRequest {
            action: action.into(),
            cluster: BootstrapCluster {
                name: "rec.default.svc.cluster.local".into(),
                nodes: members,
            },
            node: BootstrapNode {
                identity: NodeIdentity { addr: ip.into() },
            },
            credentials: admin(),
            license: None,
        })
        .await
        .expect("bootstrap accepted");
    wait("bootstrap", || async {
        client.bootstrap().await.ok().map(|b| b.bootstrap_status.state) == Some(BootstrapState::Completed)
    })
    .await;
}

/// Polls `check` every 100 ms for up to 30 s.
pub async fn wait<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The cluster's side of the setup, done by hand: three emulated nodes bootstrapped over REST, the REC object, its
/// admin Secret, and its status set to Running under a test field manager.
pub async fn start() -> Environment {
    // Crashed database processes come back after 3 s, long enough for a resync to see the crash.
    let options = SandboxOptions {
        emulator: EmulatorConfig {
            restart_dead_databases_after: Some(Duration::from_secs(3)),
            ..EmulatorConfig::default()
        },
        ..SandboxOptions::with_crds(redis_gitops::api::crds())
    };
    let sandbox = Sandbox::start(options)
        .await
        .expect("sandbox starts (needs redis-server)");
    let kube = sandbox.apiserver.kube_client().expect("kube client");
    let key = Environment::key();
    let mut ips = Vec::new();
    for pod in ["rec-0", "rec-1", "rec-2"] {
        ips.push(sandbox.emulator.add_node(&key, pod).expect("node").ip.to_string());
    }
    bootstrap(
        &rest_client(&sandbox, "rec-0.rec-headless.default.svc"),
        "create_cluster",
        &ips[0],
        vec![],
    )
    .await;
    for (index, ip) in ips.iter().enumerate().skip(1) {
        bootstrap(
            &rest_client(&sandbox, &format!("rec-{index}.rec-headless.default.svc")),
            "join_cluster",
            ip,
            vec!["rec-0.rec-headless.default.svc".into()],
        )
        .await;
    }

    let clusters: Api<RedisEnterpriseCluster> = Api::namespaced(kube.clone(), NAMESPACE);
    let rec: RedisEnterpriseCluster = serde_json::from_value(json!({
        "apiVersion": "app.redislabs.com/v1", "kind": "RedisEnterpriseCluster",
        "metadata": {"name": "rec", "namespace": NAMESPACE}, "spec": {"nodes": 3}
    }))
    .expect("rec");
    clusters
        .create(&PostParams::default(), &rec)
        .await
        .expect("rec created");
    mark_running(&kube).await;
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "rec", "namespace": NAMESPACE},
        "stringData": {"username": "admin@example.com", "password": ADMIN_PASSWORD}
    }))
    .expect("secret");
    Api::<Secret>::namespaced(kube.clone(), NAMESPACE)
        .create(&PostParams::default(), &secret)
        .await
        .expect("admin secret created");

    let context = ControllerContext {
        client: kube.clone(),
        enterprise: EnterpriseAccess {
            ca_pem: sandbox.ca_pem().as_bytes().to_vec(),
            resolver: Some(Arc::new(sandbox.emulator.resolver())),
            timeout: REST_TIMEOUT,
            retry: RetryPolicy {
                attempts: 3,
                initial_backoff: Duration::from_millis(50),
                max_backoff: Duration::from_millis(200),
            },
        },
        metrics: Arc::new(Metrics::default()),
        instance: Some("test".into()),
        clients: Default::default(),
    };
    let settings = DatabaseSettings {
        resync: Duration::from_millis(800),
        pending_poll: Duration::from_millis(200),
        max_backoff: Duration::from_secs(2),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(run_with(context, settings, async move {
        let _ = stopped.await;
    }));
    Environment {
        rest: rest_client(&sandbox, "rec.default.svc"),
        sandbox,
        kube,
        stop: Some(stop),
        controller,
    }
}

pub async fn mark_running(kube: &kube::Client) {
    let clusters: Api<RedisEnterpriseCluster> = Api::namespaced(kube.clone(), NAMESPACE);
    clusters
        .patch_status(
            "rec",
            &PatchParams::apply("test/cluster-state").force(),
            &Patch::Apply(json!({
                "apiVersion": "app.redislabs.com/v1", "kind": "RedisEnterpriseCluster",
                "status": {"state": "Running"}
            })),
        )
        .await
        .expect("REC marked Running");
}

pub async fn create_database(environment: &Environment, name: &str, spec: Value) {
    let redb: RedisEnterpriseDatabase = serde_json::from_value(json!({
        "apiVersion": "app.redislabs.com/v1alpha1", "kind": "RedisEnterpriseDatabase",
        "metadata": {"name": name, "namespace": NAMESPACE}, "spec": spec
    }))
    .expect("redb");
    environment
        .databases()
        .create(&PostParams::default(), &redb)
        .await
        .expect("redb created");
}

pub async fn patch_spec(environment: &Environment, name: &str, spec: Value) {
    environment
        .databases()
        .patch(name, &PatchParams::default(), &Patch::Merge(json!({ "spec": spec })))
        .await
        .expect("spec patched");
}

pub fn condition(redb: &RedisEnterpriseDatabase, type_: &str) -> Option<(String, String, String)> {
    redb.status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Waits until the REDB is Ready for its current generation and returns it.
pub async fn wait_ready(environment: &Environment, name: &str) -> RedisEnterpriseDatabase {
    let databases = environment.databases();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let redb = databases.get(name).await.expect("redb");
        let ready = condition(&redb, "Ready").is_some_and(|(status, _, _)| status == "True");
        let current = redb.status.as_ref().and_then(|s| s.observed_generation) == redb.metadata.generation;
        if ready && current {
            return redb;
        }
        assert!(
            Instant::now() < deadline,
            "{name} did not become Ready: {:?}",
            redb.status
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn secret_text(secret: &Secret, key: &str) -> String {
    secret
        .data
        .as_ref()
        .and_then(|data| data.get(key))
        .map(|bytes| String::from_utf8_lossy(&bytes.0).into_owned())
        .unwrap_or_default()
}
