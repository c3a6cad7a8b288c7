//! The agent's Redis Enterprise REST client against the sandbox, the way the controllers will use it: the REC's
//! rendered objects are applied, its pods become emulated nodes, the client bootstraps them by their in-cluster
//! names over HTTPS (the cluster's CA, the sandbox resolver), creates a database from the builder's body, and a real
//! Redis client connects with the password. Also: retries on 409 busy, documented errors, idempotent delete.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::ApiResource;
use redis_gitops::api::{RedisEnterpriseCluster, RedisEnterpriseDatabase};
use redis_gitops::desired::cluster::build_cluster;
use redis_gitops::desired::database::{RuntimeValues, build_bdb, diff_bdb};
use redis_gitops::enterprise::states::{BootstrapState, NodeStatus};
use redis_gitops::enterprise::types::{BootstrapCluster, BootstrapNode, BootstrapRequest, Credentials, NodeIdentity};
use redis_gitops::enterprise::{ClientConfig, EnterpriseClient, EnterpriseError, RetryPolicy};
use redis_gitops::manifests::validate::{validate_cluster, validate_database};
use redis_gitops_sandbox::{Sandbox, SandboxOptions};
use serde_json::{Value, json};

const NAMESPACE: &str = "default";

fn admin() -> Credentials {
    Credentials {
        username: "admin@example.com".into(),
        password: "admin-password-1".into(),
    }
}

fn client(sandbox: &Sandbox, host: &str) -> EnterpriseClient {
    EnterpriseClient::new(ClientConfig {
        base_url: format!("https://{host}:9443"),
        credentials: admin(),
        ca_pem: sandbox.ca_pem().as_bytes().to_vec(),
        timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            attempts: 4,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(200),
        },
        resolver: Some(Arc::new(sandbox.emulator.resolver())),
    })
    .expect("client builds")
}

async fn apply(client: &kube::Client, value: Value) {
    let api_version = value["apiVersion"].as_str().expect("apiVersion").to_string();
    let kind = value["kind"].as_str().expect("kind").to_string();
    let name = value["metadata"]["name"].as_str().expect("name").to_string();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version.as_str()));
    let plural = match kind.as_str() {
        "PodDisruptionBudget" => "poddisruptionbudgets".to_string(),
        other => format!("{}s", other.to_lowercase()),
    };
    let resource = ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: api_version.clone(),
        kind,
        plural,
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), NAMESPACE, &resource);
    api.patch(
        &name,
        &PatchParams::apply("redis-gitops/cluster").force(),
        &Patch::Apply(&value),
    )
    .await
    .expect("apply");
}

async fn bootstrap(client: &EnterpriseClient, request: BootstrapRequest) {
    client.start_bootstrap(&request).await.expect("bootstrap accepted");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let state = client
            .bootstrap()
            .await
            .expect("bootstrap status")
            .bootstrap_status
            .state;
        if state == BootstrapState::Completed {
            return;
        }
        assert!(
            state != BootstrapState::Error && Instant::now() < deadline,
            "bootstrap ended in {state}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn request(action: &str, pod_ip: &str, members: Vec<String>) -> BootstrapRequest {
    BootstrapRequest {
        action: action.into(),
        cluster: BootstrapCluster {
            name: "rec.default.svc.cluster.local".into(),
            nodes: members,
        },
        node: BootstrapNode {
            identity: NodeIdentity { addr: pod_ip.into() },
        },
        credentials: admin(),
        license: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_bootstraps_a_cluster_and_manages_a_database_that_applications_can_use() {
    let sandbox = Sandbox::start(SandboxOptions::with_crds(redis_gitops::api::crds()))
        .await
        .expect("sandbox starts (needs redis-server)");
    let kube = sandbox.apiserver.kube_client().expect("kube client");

    // The cluster's objects, as the REC controller will apply them.
    let rec: RedisEnterpriseCluster = serde_saphyr::from_str(
        "apiVersion: app.redislabs.com/v1\nkind: RedisEnterpriseCluster\nmetadata: {name: rec, namespace: default}\nspec: {nodes: 3}\n",
    )
    .expect("rec");
    let (validated, _) = validate_cluster(&rec).expect("valid");
    let resources = build_cluster(&validated, Some("admin-password-1"), 0);
    for service in &resources.services {
        apply(&kube, serde_json::to_value(service).expect("json")).await;
    }
    apply(&kube, serde_json::to_value(&resources.stateful_set).expect("json")).await;

    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(kube.clone(), NAMESPACE);
    let deadline = Instant::now() + Duration::from_secs(20);
    let ips = loop {
        let ips: Vec<Option<String>> = futures::future::join_all((0..3).map(|i| {
            let pods = pods.clone();
            async move {
                pods.get_opt(&format!("rec-{i}"))
                    .await
                    .ok()
                    .flatten()
                    .and_then(|p| p.status?.pod_ip)
            }
        }))
        .await;
        if ips.iter().all(Option::is_some) {
            break ips.into_iter().flatten().collect::<Vec<_>>();
        }
        assert!(Instant::now() < deadline, "pods did not get their IPs: {ips:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        ips.iter().all(|ip| ip.starts_with("127.") && ip != "127.0.0.1"),
        "each node has its own loopback address: {ips:?}"
    );

    // Bootstrap through each pod's own DNS name, as the REC controller will.
    let pod = |i: usize| client(&sandbox, &format!("rec-{i}.rec-headless.default.svc"));
    bootstrap(&pod(0), request("create_cluster", &ips[0], vec![])).await;
    for (i, ip) in ips.iter().enumerate().skip(1) {
        bootstrap(
            &pod(i),
            request("join_cluster", ip, vec!["rec-0.rec-headless.default.svc".into()]),
        )
        .await;
    }
    let api = client(&sandbox, "rec.default.svc");
    let nodes = api.nodes().await.expect("nodes");
    assert_eq!(
        nodes.iter().filter(|n| n.status == NodeStatus::Active).count(),
        3,
        "{nodes:?}"
    );

    // A database from the builder's body; a busy cluster is retried, not reported.
    sandbox.emulator.faults().busy_next(Some(Method::POST), "/v1/bdbs", 2);
    let redb: RedisEnterpriseDatabase = serde_saphyr::from_str(
        "apiVersion: app.redislabs.com/v1alpha1\nkind: RedisEnterpriseDatabase\nmetadata: {name: cache, namespace: default}\n\
         spec: {memorySize: 200MB, evictionPolicy: allkeys-lru, databasePort: 12001}\n",
    )
    .expect("redb");
    let (database, _) = validate_database(&redb).expect("valid");
    let runtime = RuntimeValues {
        password: Some("db-password-1"),
        ..RuntimeValues::default()
    };
    let created = api
        .create_database(&build_bdb(&database, &runtime))
        .await
        .expect("created after the busy answers");
    if let Some(action) = &created.action_uid {
        api.wait_for_action(action, Duration::from_secs(20), Duration::from_millis(100))
            .await
            .expect("action completes");
    }
    let live = api.database(created.uid).await.expect("get").expect("exists");
    assert_eq!((live.name.as_str(), live.port), ("cache", 12001));
    assert!(api.database_by_name("cache").await.expect("list").is_some());

    // An application connects with the password to the database's Service name.
    let ip = sandbox
        .emulator
        .names()
        .lookup("cache.default.svc")
        .expect("the database service name resolves");
    let url = format!("redis://:db-password-1@{ip}:12001");
    let mut connection = redis::Client::open(url)
        .expect("url")
        .get_connection_with_timeout(Duration::from_secs(5))
        .expect("connects");
    let _: () = redis::cmd("SET")
        .arg("greeting")
        .arg("hello")
        .query(&mut connection)
        .expect("SET");
    let value: String = redis::cmd("GET").arg("greeting").query(&mut connection).expect("GET");
    assert_eq!(value, "hello");

    // The minimal update changes what it should, and nothing when nothing changed.
    let desired = build_bdb(
        &validate_database(&{
            let mut bigger = redb.clone();
            bigger.spec.memory_size = Some("300MB".into());
            bigger
        })
        .expect("valid")
        .0,
        &RuntimeValues::default(),
    );
    let live_value = api
        .database(created.uid)
        .await
        .expect("get")
        .expect("exists")
        .to_value();
    let update = diff_bdb(&desired, &live_value);
    assert_eq!(
        Value::Object(update.changes.clone()),
        json!({"memory_size": 314_572_800u64})
    );
    api.update_database(created.uid, &update.changes)
        .await
        .expect("updated");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let maxmemory: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("maxmemory")
            .query(&mut connection)
            .expect("CONFIG GET");
        if maxmemory.get(1).map(String::as_str) == Some("314572800") {
            break;
        }
        assert!(Instant::now() < deadline, "maxmemory did not follow: {maxmemory:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The cluster's validation errors come back with their error_code.
    let mut invalid = build_bdb(&database, &runtime);
    invalid.insert("name".into(), json!("other"));
    match api.create_database(&invalid).await {
        Err(EnterpriseError::Api { status, error_code, .. }) => {
            assert_eq!((status, error_code.as_str()), (406, "port_unavailable"))
        }
        other => panic!("expected port_unavailable, got {other:?}"),
    }
    // A server error on a create is not retried (the outcome is unknown); the caller looks again instead.
    sandbox.emulator.faults().fail_next(
        Some(Method::POST),
        "/v1/bdbs",
        1,
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
    );
    let mut another = build_bdb(&database, &runtime);
    another.insert("name".into(), json!("another"));
    another.remove("port");
    let error = api.create_database(&another).await.expect_err("the 500 is reported");
    assert_eq!((error.category(), error.is_transient()), ("Api", true));
    assert!(
        api.database_by_name("another").await.expect("list").is_none(),
        "nothing was created twice"
    );

    // Wrong credentials are named as such.
    let mut wrong = ClientConfig {
        base_url: "https://rec.default.svc:9443".into(),
        credentials: Credentials {
            username: "admin@example.com".into(),
            password: "wrong".into(),
        },
        ca_pem: sandbox.ca_pem().as_bytes().to_vec(),
        timeout: Duration::from_secs(5),
        retry: RetryPolicy::default(),
        resolver: Some(Arc::new(sandbox.emulator.resolver())),
    };
    let error = EnterpriseClient::new(wrong.clone())
        .expect("client")
        .nodes()
        .await
        .expect_err("refused");
    assert_eq!(error.category(), "Unauthorized");
    assert!(!error.to_string().contains("wrong"), "{error}");
    wrong.ca_pem = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec();
    assert!(
        EnterpriseClient::new(wrong).is_err(),
        "an unusable CA is refused up front"
    );

    // Delete, then delete again: already gone counts as deleted.
    api.delete_database(created.uid).await.expect("deleted");
    let deadline = Instant::now() + Duration::from_secs(20);
    while api.database(created.uid).await.expect("get").is_some() {
        assert!(Instant::now() < deadline, "the database did not go");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    api.delete_database(created.uid).await.expect("a second delete is fine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_that_stays_busy_is_reported_as_busy_and_conflicts_are_not_retried() {
    let sandbox = Sandbox::start(SandboxOptions::with_crds(redis_gitops::api::crds()))
        .await
        .expect("sandbox starts (needs redis-server)");
    let node = sandbox
        .emulator
        .add_node(
            &redis_gitops_sandbox::enterprise::ClusterKey::new("default", "rec"),
            "rec-0",
        )
        .expect("node");
    let pod = client(&sandbox, "rec-0.rec-headless.default.svc");
    bootstrap(&pod, request("create_cluster", &node.ip.to_string(), vec![])).await;

    sandbox.emulator.faults().busy_next(Some(Method::GET), "/v1/nodes", 10);
    let error = pod.nodes().await.expect_err("stays busy");
    assert_eq!(error.category(), "Busy");
    assert_eq!(
        error.to_string(),
        "GET /v1/nodes failed: the cluster stayed busy (HTTP 409) after 4 attempts: fault injected by the test on /v1/nodes"
    );
    sandbox.emulator.faults().clear();

    let body = serde_json::from_value(json!({"name": "twice", "memory_size": 104_857_600u64})).expect("body");
    pod.create_database(&body).await.expect("first create");
    let error = pod
        .create_database(&body)
        .await
        .expect_err("a duplicate name is refused");
    assert!(
        matches!(&error, EnterpriseError::Api { status: 409, .. }),
        "not retried as busy: {error:?}"
    );
}
