//! Orphaned children against the sandbox: after a change of the REC's `servicesRiggerSpec.serviceNaming` and then of
//! its `databaseServiceType`, the database controller deletes the Services and EndpointSlices it no longer builds,
//! keeps the credentials Secret, writes nothing on the resyncs in between, and a real Redis client still reaches the
//! database through the new Service (Service → its EndpointSlice → address and port, as kube-proxy routes it).
//! The harness (a hand-bootstrapped 3-node emulated cluster, its REC marked Running) is the one of
//! `tests/database_controller.rs`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use redis_gitops::api::{RedisEnterpriseCluster, RedisEnterpriseDatabase};
use redis_gitops::controllers::ControllerContext;
use redis_gitops::controllers::EnterpriseAccess;
use redis_gitops::controllers::database::{DatabaseSettings, run_with};
use redis_gitops::enterprise::types::{BootstrapCluster, BootstrapNode, BootstrapRequest, Credentials, NodeIdentity};
use redis_gitops::enterprise::{ClientConfig, EnterpriseClient, RetryPolicy};
use redis_gitops::telemetry::Metrics;
use redis_gitops_sandbox::enterprise::{ClusterKey, EmulatorConfig, RecordedRequest};
use redis_gitops_sandbox::{Sandbox, SandboxOptions};
use serde_json::{Value, json};

const NAMESPACE: &str = "default";
const ADMIN_PASSWORD: &str = "admin-password-1";
const REST_TIMEOUT: Duration = Duration::from_secs(2);

fn admin() -> Credentials {
    Credentials {
        username: "admin@example.com".into(),
        password: ADMIN_PASSWORD.into(),
    }
}

/// A sandbox with one bootstrapped cluster `rec`, its REC Running, and the database controller running.
struct Environment {
    sandbox: Sandbox,
    kube: kube::Client,
    rest: EnterpriseClient,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    controller: tokio::task::JoinHandle<()>,
}

impl Environment {
    fn key() -> ClusterKey {
        ClusterKey::new(NAMESPACE, "rec")
    }

    fn databases(&self) -> Api<RedisEnterpriseDatabase> {
        Api::namespaced(self.kube.clone(), NAMESPACE)
    }

    fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.kube.clone(), NAMESPACE)
    }

    fn writes(&self) -> Vec<RecordedRequest> {
        self.sandbox
            .emulator
            .requests()
            .all()
            .into_iter()
            .filter(RecordedRequest::is_write)
            .collect()
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.controller).await;
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

async fn bootstrap(client: &EnterpriseClient, action: &str, ip: &str, members: Vec<String>) {
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
        client.bootstrap().await.ok().map(|b| b.bootstrap_status.state)
            == Some(redis_gitops::enterprise::states::BootstrapState::Completed)
    })
    .await;
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

/// The cluster's side of the setup, done by hand: three emulated nodes bootstrapped over REST, the REC object, its
/// admin Secret, and its status set to Running under a test field manager.
async fn start() -> Environment {
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

async fn mark_running(kube: &kube::Client) {
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

async fn create_database(environment: &Environment, name: &str, spec: Value) {
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

fn condition(redb: &RedisEnterpriseDatabase, type_: &str) -> Option<(String, String, String)> {
    redb.status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Waits until the REDB is Ready for its current generation and returns it.
async fn wait_ready(environment: &Environment, name: &str) -> RedisEnterpriseDatabase {
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

fn secret_text(secret: &Secret, key: &str) -> String {
    secret
        .data
        .as_ref()
        .and_then(|data| data.get(key))
        .map(|bytes| String::from_utf8_lossy(&bytes.0).into_owned())
        .unwrap_or_default()
}

/// The names of the Services and of the EndpointSlices of database `name`.
async fn children(environment: &Environment, name: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let params = ListParams::default().labels(&format!("redis.io/bdb={name}"));
    let services: Api<Service> = Api::namespaced(environment.kube.clone(), NAMESPACE);
    let slices: Api<EndpointSlice> = Api::namespaced(environment.kube.clone(), NAMESPACE);
    let services = services.list(&params).await.expect("list services").items;
    let slices = slices.list(&params).await.expect("list slices").items;
    (
        services.iter().map(ResourceExt::name_any).collect(),
        slices.iter().map(ResourceExt::name_any).collect(),
    )
}

/// Waits until database `name` has exactly the Services (and EndpointSlices of the same names) `expected`.
async fn wait_children(environment: &Environment, name: &str, expected: &[String]) {
    let expected: BTreeSet<String> = expected.iter().cloned().collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (services, slices) = children(environment, name).await;
        if services == expected && slices == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "database {name} has Services {services:?} and EndpointSlices {slices:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn patch_rigger(environment: &Environment, rigger: Value) {
    Api::<RedisEnterpriseCluster>::namespaced(environment.kube.clone(), NAMESPACE)
        .patch(
            "rec",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"servicesRiggerSpec": rigger}})),
        )
        .await
        .expect("REC patched");
}

/// What kube-proxy does for an application: the Secret names the Service; the Service's EndpointSlice (label
/// `kubernetes.io/service-name`) gives the address and the target port; the client authenticates with the
/// Secret's password.
async fn connect_through_the_service(environment: &Environment) -> redis::Connection {
    let secret = environment.secrets().get("redb-cache").await.expect("secret");
    let service_name = secret_text(&secret, "service_name");
    let service: Api<Service> = Api::namespaced(environment.kube.clone(), NAMESPACE);
    let service = service
        .get(&service_name)
        .await
        .expect("the Service the Secret names exists");
    let slices: Api<EndpointSlice> = Api::namespaced(environment.kube.clone(), NAMESPACE);
    let params = ListParams::default().labels(&format!("kubernetes.io/service-name={}", service.name_any()));
    let slice = slices
        .list(&params)
        .await
        .expect("list slices")
        .items
        .into_iter()
        .next()
        .expect("the Service has an EndpointSlice");
    let address = slice.endpoints[0].addresses[0].clone();
    let port = slice.ports.as_ref().expect("ports")[0].port.expect("port");
    let mut connection = redis::Client::open(format!("redis://{address}:{port}"))
        .expect("url")
        .get_connection_with_timeout(Duration::from_secs(5))
        .expect("the client connects");
    redis::cmd("AUTH")
        .arg(secret_text(&secret, "password"))
        .query::<()>(&mut connection)
        .expect("AUTH");
    connection
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renamed_and_retyped_database_services_replace_the_old_ones_and_the_database_keeps_working() {
    let environment = start().await;
    create_database(&environment, "cache", json!({"memorySize": "100MB"})).await;
    let redb = wait_ready(&environment, "cache").await;
    let uid = redb.status.as_ref().and_then(|s| s.database_uid.clone()).expect("uid");
    let port = environment
        .rest
        .database(uid.parse().expect("numeric uid"))
        .await
        .expect("get")
        .expect("bdb")
        .port;
    wait_children(&environment, "cache", &["cache".into(), "cache-headless".into()]).await;
    let mut connection = connect_through_the_service(&environment).await;
    redis::cmd("SET")
        .arg("greeting")
        .arg("hello")
        .query::<()>(&mut connection)
        .expect("SET");

    // serviceNaming: redis-port renames both Services; the old ones and their EndpointSlices go.
    patch_rigger(&environment, json!({"serviceNaming": "redis-port"})).await;
    let base = format!("redis-{port}");
    wait_children(&environment, "cache", &[base.clone(), format!("{base}-headless")]).await;
    let secret = environment
        .secrets()
        .get("redb-cache")
        .await
        .expect("the Secret is kept");
    assert_eq!(secret_text(&secret, "service_name"), base);
    assert_eq!(secret_text(&secret, "service_names"), format!("{base},{base}-headless"));
    let mut connection = connect_through_the_service(&environment).await;
    let value: String = redis::cmd("GET").arg("greeting").query(&mut connection).expect("GET");
    assert_eq!(value, "hello", "the same database, reached through the new Service");

    // A steady-state resync deletes nothing and writes nothing.
    environment.sandbox.emulator.requests().clear();
    environment.sandbox.apiserver.reset_request_counts();
    let bdb_path = format!("/v1/bdbs/{uid}");
    wait("two resyncs", || async {
        environment
            .sandbox
            .emulator
            .requests()
            .all()
            .iter()
            .filter(|r| r.path == bdb_path)
            .count()
            >= 2
    })
    .await;
    let counts = environment.sandbox.apiserver.request_counts();
    assert_eq!(counts.writes(), 0, "no API writes on resync: {counts:?}");
    assert_eq!(environment.writes(), [], "no REST writes on resync");
    assert!(
        counts.get("list", "services") >= 2 && counts.get("get", "services") == 0,
        "the live Services are read with one LIST per reconcile: {counts:?}"
    );

    // databaseServiceType without headless, with a load balancer: the headless Service goes, the other stays.
    patch_rigger(
        &environment,
        json!({"serviceNaming": "redis-port", "databaseServiceType": "cluster_ip,load_balancer"}),
    )
    .await;
    wait_children(&environment, "cache", &[base.clone(), format!("{base}-load-balancer")]).await;
    let services: Api<Service> = Api::namespaced(environment.kube.clone(), NAMESPACE);
    let balancer = services
        .get(&format!("{base}-load-balancer"))
        .await
        .expect("load balancer");
    assert_eq!(balancer.spec.and_then(|s| s.type_).as_deref(), Some("LoadBalancer"));
    let mut connection = connect_through_the_service(&environment).await;
    let value: String = redis::cmd("GET").arg("greeting").query(&mut connection).expect("GET");
    assert_eq!(value, "hello");
    // Secrets are never deleted as orphans: the credentials Secret and the REC's admin Secret are still there.
    for secret in ["redb-cache", "rec"] {
        assert!(
            environment.secrets().get_opt(secret).await.expect("read").is_some(),
            "{secret} is kept"
        );
    }
    environment.stop().await;
}
