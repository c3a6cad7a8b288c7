//! One REDB that the typed client cannot decode does not stop the database controller for the others: its
//! `spec.backup.interval` is an integer the CRD schema allows (no maximum) but that does not fit the agent's `i64`.
//! The other REDB still becomes Ready, and the undecodable one gets a Warning event naming it and nothing else.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use redis_gitops::api::{RedisEnterpriseCluster, RedisEnterpriseDatabase};
use redis_gitops::controllers::database::{DatabaseSettings, run_with};
use redis_gitops::controllers::{ControllerContext, EnterpriseAccess};
use redis_gitops::enterprise::types::{BootstrapCluster, BootstrapNode, BootstrapRequest, Credentials, NodeIdentity};
use redis_gitops::enterprise::{ClientConfig, EnterpriseClient, RetryPolicy};
use redis_gitops::telemetry::Metrics;
use redis_gitops_sandbox::enterprise::ClusterKey;
use redis_gitops_sandbox::{Sandbox, SandboxOptions};
use serde_json::json;

const NAMESPACE: &str = "default";
const ADMIN_PASSWORD: &str = "admin-password-1";

fn admin() -> Credentials {
    Credentials {
        username: "admin@example.com".into(),
        password: ADMIN_PASSWORD.into(),
    }
}

fn rest_client(sandbox: &Sandbox, host: &str) -> EnterpriseClient {
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

/// Polls `check` every 100 ms for up to 30 s.
async fn wait<F, Fut>(what: &str, mut check: F)
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

/// A one-node emulated cluster bootstrapped over REST, its REC marked Running and its admin Secret.
async fn cluster(sandbox: &Sandbox, kube: &kube::Client) {
    let key = ClusterKey::new(NAMESPACE, "rec");
    let ip = sandbox.emulator.add_node(&key, "rec-0").expect("node").ip.to_string();
    let node = rest_client(sandbox, "rec-0.rec-headless.default.svc");
    node.start_bootstrap(&BootstrapRequest {
        action: "create_cluster".into(),
        cluster: BootstrapCluster {
            name: "rec.default.svc.cluster.local".into(),
            nodes: vec![],
        },
        node: BootstrapNode {
            identity: NodeIdentity { addr: ip },
        },
        credentials: admin(),
        license: None,
    })
    .await
    .expect("bootstrap accepted");
    wait("bootstrap", || async {
        node.bootstrap().await.ok().map(|b| b.bootstrap_status.state)
            == Some(redis_gitops::enterprise::states::BootstrapState::Completed)
    })
    .await;
    let clusters: Api<RedisEnterpriseCluster> = Api::namespaced(kube.clone(), NAMESPACE);
    let rec: RedisEnterpriseCluster = serde_json::from_value(json!({
        "apiVersion": "app.redislabs.com/v1", "kind": "RedisEnterpriseCluster",
        "metadata": {"name": "rec", "namespace": NAMESPACE}, "spec": {"nodes": 1}
    }))
    .expect("rec");
    clusters
        .create(&PostParams::default(), &rec)
        .await
        .expect("rec created");
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
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "rec", "namespace": NAMESPACE},
        "stringData": {"username": "admin@example.com", "password": ADMIN_PASSWORD}
    }))
    .expect("secret");
    Api::<Secret>::namespaced(kube.clone(), NAMESPACE)
        .create(&PostParams::default(), &secret)
        .await
        .expect("admin secret created");
}

fn context(sandbox: &Sandbox, kube: &kube::Client) -> ControllerContext {
    ControllerContext {
        client: kube.clone(),
        enterprise: EnterpriseAccess {
            ca_pem: sandbox.ca_pem().as_bytes().to_vec(),
            resolver: Some(Arc::new(sandbox.emulator.resolver())),
            timeout: Duration::from_secs(2),
            retry: RetryPolicy::default(),
        },
        metrics: Arc::new(Metrics::default()),
        instance: Some("test".into()),
        clients: Default::default(),
    }
}

#[tokio::test]
async fn an_undecodable_redb_is_reported_and_the_others_still_become_ready() {
    let sandbox = Sandbox::start(SandboxOptions::with_crds(redis_gitops::api::crds()))
        .await
        .expect("sandbox starts (needs redis-server)");
    let kube = sandbox.apiserver.kube_client().expect("kube client");
    cluster(&sandbox, &kube).await;

    // Written untyped: the schema says `integer` with no maximum, the agent's type says `i64`.
    let resource = ApiResource::erase::<RedisEnterpriseDatabase>(&());
    let untyped: Api<DynamicObject> = Api::namespaced_with(kube.clone(), NAMESPACE, &resource);
    let broken: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "app.redislabs.com/v1alpha1", "kind": "RedisEnterpriseDatabase",
        "metadata": {"name": "broken", "namespace": NAMESPACE},
        "spec": {"memorySize": "100MB", "backup": {"interval": 10_000_000_000_000_000_000_u64}}
    }))
    .expect("object");
    untyped
        .create(&PostParams::default(), &broken)
        .await
        .expect("the API server accepts it: the schema allows it");
    let databases: Api<RedisEnterpriseDatabase> = Api::namespaced(kube.clone(), NAMESPACE);
    assert!(
        databases.get("broken").await.is_err(),
        "the typed client must refuse it, or the test shows nothing"
    );

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let settings = DatabaseSettings {
        resync: Duration::from_secs(5),
        pending_poll: Duration::from_millis(200),
        max_backoff: Duration::from_secs(2),
    };
    let controller = tokio::spawn(run_with(context(&sandbox, &kube), settings, async move {
        let _ = stopped.await;
    }));
    let good: RedisEnterpriseDatabase = serde_json::from_value(json!({
        "apiVersion": "app.redislabs.com/v1alpha1", "kind": "RedisEnterpriseDatabase",
        "metadata": {"name": "cache", "namespace": NAMESPACE}, "spec": {"memorySize": "100MB"}
    }))
    .expect("redb");
    databases
        .create(&PostParams::default(), &good)
        .await
        .expect("redb created");

    wait("the good REDB to become Ready", || async {
        let redb = databases.get("cache").await.expect("redb");
        redb.status
            .as_ref()
            .and_then(|status| status.conditions.as_ref())
            .is_some_and(|conditions| {
                conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True" && c.reason == "DatabaseActive")
            })
    })
    .await;

    // events.k8s.io, where the sandbox keeps the object an event is about.
    let events: Api<Event> = Api::namespaced(kube.clone(), NAMESPACE);
    wait("a Warning event on the undecodable REDB", || async {
        events
            .list(&Default::default())
            .await
            .expect("events")
            .items
            .into_iter()
            .any(|event| {
                event.type_.as_deref() == Some("Warning")
                    && event.reason.as_deref() == Some("InvalidObject")
                    && event.regarding.as_ref().is_some_and(|object| {
                        object.name.as_deref() == Some("broken")
                            && object.kind.as_deref() == Some("RedisEnterpriseDatabase")
                    })
            })
    })
    .await;
    // Nothing else was done to it: no finalizer, no status, no database on the cluster.
    let broken = untyped.get("broken").await.expect("untyped read");
    assert!(broken.metadata.finalizers.unwrap_or_default().is_empty());
    assert!(broken.data.get("status").is_none(), "{:?}", broken.data.get("status"));
    let rest = rest_client(&sandbox, "rec.default.svc");
    let names: Vec<String> = rest
        .databases()
        .await
        .expect("bdbs")
        .into_iter()
        .map(|bdb| bdb.name)
        .collect();
    assert_eq!(names, ["cache"]);

    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), controller).await;
}
