//! Orphaned children against the sandbox: after a change of the REC's `servicesRiggerSpec.serviceNaming` and then of
//! its `databaseServiceType`, the database controller deletes the Services and EndpointSlices it no longer builds,
//! keeps the credentials Secret, writes nothing on the resyncs in between, and a real Redis client still reaches the
//! database through the new Service (Service → its EndpointSlice → address and port, as kube-proxy routes it).
//! The harness (a hand-bootstrapped 3-node emulated cluster, its REC marked Running) is `tests/support/database_env.rs`,
//! shared with `tests/database_controller.rs`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use redis_gitops::api::RedisEnterpriseCluster;
use serde_json::{Value, json};

#[path = "support/database_env.rs"]
mod database_env;

use database_env::*;

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
