//! The REDB controller against the sandbox: a 3-node emulated cluster bootstrapped by hand (no REC controller), its
//! admin Secret, its REC marked Running by the test; then REDBs are created, used by a real Redis client through the
//! Secret and the Service name, changed, refused, rotated, broken by REST faults, adopted and deleted, while the
//! emulator's request log and the objects' resourceVersions show exactly which writes the controller made.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use redis_gitops::api::RedisEnterpriseCluster;
use redis_gitops::controllers::database::FINALIZER;
use serde_json::{Value, json};

#[path = "support/database_env.rs"]
mod database_env;

use database_env::*;

/// What an application does: read the Secret, resolve its Service name, connect with its password.
async fn connect_like_an_application(
    environment: &Environment,
    secret_name: &str,
) -> redis::RedisResult<redis::Connection> {
    let secret = environment.secrets().get(secret_name).await.expect("secret");
    let service = secret_text(&secret, "service_name");
    let port = secret_text(&secret, "port");
    let ip = environment
        .sandbox
        .emulator
        .names()
        .lookup(&format!("{service}.{NAMESPACE}.svc"))
        .expect("the Service name resolves");
    let password = secret_text(&secret, "password");
    connect(&ip.to_string(), &port, &password)
}

fn connect(ip: &str, port: &str, password: &str) -> redis::RedisResult<redis::Connection> {
    let mut connection =
        redis::Client::open(format!("redis://{ip}:{port}"))?.get_connection_with_timeout(Duration::from_secs(5))?;
    redis::cmd("AUTH").arg(password).query::<()>(&mut connection)?;
    Ok(connection)
}

fn resource_versions<K: Resource>(objects: &[K]) -> Vec<Option<String>> {
    objects.iter().map(|o| o.meta().resource_version.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_is_created_used_changed_rotated_resynced_without_writes_and_deleted() {
    let environment = start().await;
    create_database(&environment, "cache", json!({"memorySize": "100MB"})).await;
    let redb = wait_ready(&environment, "cache").await;

    // Status: the official fields and our conditions.
    assert!(
        redb.finalizers().iter().any(|f| f == FINALIZER),
        "{:?}",
        redb.finalizers()
    );
    let status = redb.status.clone().expect("status");
    assert_eq!(status.status.as_deref(), Some("active"));
    assert_eq!(status.spec_status.as_deref(), Some("Valid"));
    assert_eq!(status.redis_enterprise_cluster.as_deref(), Some("rec"));
    let uid: u64 = status
        .database_uid
        .as_deref()
        .expect("uid")
        .parse()
        .expect("numeric uid");
    let live = environment.rest.database(uid).await.expect("get").expect("bdb exists");
    assert_eq!(live.name, "cache");
    let endpoints = status.internal_endpoints.clone().expect("internal endpoints");
    assert_eq!(endpoints[0].port, Some(i64::from(live.port)));
    assert!(
        endpoints[0].host.as_deref().is_some_and(|h| h.starts_with("redis-")),
        "{endpoints:?}"
    );
    assert_eq!(status.shard_statuses.clone().expect("shards").get("active"), Some(&1));
    assert!(status.version.is_some() && status.last_action_uid.is_some());
    assert_eq!(status.last_action_status.as_deref(), Some("completed"));

    // The Secret, the Services and their EndpointSlices.
    let secret = environment.secrets().get("redb-cache").await.expect("secret");
    assert_eq!(secret_text(&secret, "port"), live.port.to_string());
    assert_eq!(secret_text(&secret, "service_names"), "cache,cache-headless");
    assert_eq!(secret_text(&secret, "service_name"), "cache");
    assert_eq!(secret_text(&secret, "password").len(), 32, "a generated password");
    assert_eq!(secret.owner_references()[0].uid, redb.uid().expect("uid"));
    let services: Api<Service> = Api::namespaced(environment.kube.clone(), NAMESPACE);
    let slices: Api<EndpointSlice> = Api::namespaced(environment.kube.clone(), NAMESPACE);
    let cluster_ip = environment
        .sandbox
        .emulator
        .cluster(&Environment::key())
        .expect("cluster")
        .service_ip
        .to_string();
    let mut children_services = Vec::new();
    let mut children_slices = Vec::new();
    for name in ["cache", "cache-headless"] {
        let service = services.get(name).await.expect("service");
        let spec = service.spec.clone().expect("spec");
        assert!(spec.selector.is_none(), "endpoints come from the controller");
        let port = &spec.ports.as_ref().expect("ports")[0];
        assert_eq!((port.name.as_deref(), port.port), (Some("redis"), i32::from(live.port)));
        let slice = slices.get(name).await.expect("endpointslice");
        let labels = slice.labels();
        assert_eq!(labels.get("kubernetes.io/service-name").map(String::as_str), Some(name));
        assert_eq!(
            labels.get("endpointslice.kubernetes.io/managed-by").map(String::as_str),
            Some("redis-gitops")
        );
        assert_eq!(slice.address_type, "IPv4");
        assert_eq!(slice.endpoints[0].addresses, std::slice::from_ref(&cluster_ip));
        assert_eq!(slice.endpoints[0].conditions.as_ref().and_then(|c| c.ready), Some(true));
        assert_eq!(slice.ports.as_ref().expect("ports")[0].port, Some(i32::from(live.port)));
        children_services.push(service);
        children_slices.push(slice);
    }
    if let Ok(path) = std::env::var("REDB_CHILDREN_DUMP") {
        let objects: Vec<Value> = std::iter::once(serde_json::to_value(&secret).expect("json"))
            .chain(children_services.iter().map(|s| serde_json::to_value(s).expect("json")))
            .chain(children_slices.iter().map(|s| serde_json::to_value(s).expect("json")))
            .collect();
        let text: Vec<String> = objects.iter().map(|o| format!("---\n{o}\n")).collect();
        std::fs::write(path, text.concat()).expect("dump written");
    }

    // An application reads the Secret, resolves the Service name and uses the database.
    let mut connection = connect_like_an_application(&environment, "redb-cache")
        .await
        .expect("the application connects");
    redis::cmd("SET")
        .arg("greeting")
        .arg("hello")
        .query::<()>(&mut connection)
        .expect("SET");
    let value: String = redis::cmd("GET").arg("greeting").query(&mut connection).expect("GET");
    assert_eq!(value, "hello");

    // A resync of a healthy database writes nothing: not to the REST API, not to the API server.
    environment.sandbox.emulator.requests().clear();
    let before = (
        environment
            .databases()
            .get("cache")
            .await
            .expect("redb")
            .resource_version(),
        environment
            .secrets()
            .get("redb-cache")
            .await
            .expect("secret")
            .resource_version(),
        resource_versions(&children_services),
        resource_versions(&children_slices),
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let reads = environment.sandbox.emulator.requests().all();
    assert!(
        reads.iter().filter(|r| r.path == format!("/v1/bdbs/{uid}")).count() >= 2,
        "resyncs happened: {reads:?}"
    );
    assert_eq!(environment.writes(), [], "no REST writes on resync");
    let mut services_now = Vec::new();
    let mut slices_now = Vec::new();
    for name in ["cache", "cache-headless"] {
        services_now.push(services.get(name).await.expect("service"));
        slices_now.push(slices.get(name).await.expect("slice"));
    }
    let after = (
        environment
            .databases()
            .get("cache")
            .await
            .expect("redb")
            .resource_version(),
        environment
            .secrets()
            .get("redb-cache")
            .await
            .expect("secret")
            .resource_version(),
        resource_versions(&services_now),
        resource_versions(&slices_now),
    );
    assert_eq!(before, after, "no API writes on resync");

    // A memory change is exactly one PUT with exactly that field.
    environment.sandbox.emulator.requests().clear();
    patch_spec(&environment, "cache", json!({"memorySize": "200MB"})).await;
    wait_ready(&environment, "cache").await;
    let writes = environment.writes();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(
        (writes[0].method.as_str(), writes[0].path.as_str(), &writes[0].body),
        (
            "PUT",
            format!("/v1/bdbs/{uid}").as_str(),
            &json!({"memory_size": 209_715_200u64})
        )
    );
    let maxmemory: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory")
        .query(&mut connection)
        .expect("CONFIG GET");
    assert_eq!(maxmemory[1], "209715200");

    // A port change is refused with a reason, and nothing is written.
    environment.sandbox.emulator.requests().clear();
    let other_port = live.port + 1;
    patch_spec(&environment, "cache", json!({"databasePort": other_port})).await;
    let databases = environment.databases();
    wait("the port change to be refused", || async {
        let redb = databases.get("cache").await.expect("redb");
        condition(&redb, "Stalled")
            .is_some_and(|(status, reason, _)| status == "True" && reason == "ImmutableFieldChanged")
    })
    .await;
    let redb = databases.get("cache").await.expect("redb");
    let (_, _, message) = condition(&redb, "Stalled").expect("stalled");
    assert_eq!(
        message,
        format!(
            "databasePort is {} on the cluster and {other_port} in the spec cannot change after creation; set it back, or \
             delete and recreate the database (its data is lost) to change it; other changes wait until then",
            live.port
        )
    );
    assert_eq!(condition(&redb, "Ready").map(|c| c.0), Some("False".to_string()));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(environment.writes(), [], "nothing written for a refused change");
    patch_spec(&environment, "cache", json!({"databasePort": null})).await;
    let redb = wait_ready(&environment, "cache").await;
    assert!(condition(&redb, "Stalled").is_none());

    // Rotation: editing the Secret's password applies it once; the old one stops working.
    environment.sandbox.emulator.requests().clear();
    let old_password = secret_text(
        &environment.secrets().get("redb-cache").await.expect("secret"),
        "password",
    );
    environment
        .secrets()
        .patch(
            "redb-cache",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"password": "rotated-password-1"}})),
        )
        .await
        .expect("secret edited");
    let port = live.port.to_string();
    wait("the new password to work", || async {
        connect(&cluster_ip, &port, "rotated-password-1").is_ok()
    })
    .await;
    assert!(
        connect(&cluster_ip, &port, &old_password).is_err(),
        "the old password fails"
    );
    connect_like_an_application(&environment, "redb-cache")
        .await
        .expect("the application connects with the Secret as it is now");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let writes = environment.writes();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(
        (writes[0].method.as_str(), writes[0].path.as_str(), &writes[0].body),
        (
            "PUT",
            format!("/v1/bdbs/{uid}/passwords").as_str(),
            &json!({"password": "<redacted>"})
        )
    );

    // Deletion: the bdb goes, then the finalizer, then the children by owner reference.
    environment
        .databases()
        .delete("cache", &DeleteParams::default())
        .await
        .expect("delete");
    let databases = environment.databases();
    wait("the REDB to go", || async {
        databases.get_opt("cache").await.expect("get").is_none()
    })
    .await;
    assert!(
        environment.rest.database(uid).await.expect("get").is_none(),
        "the bdb is gone"
    );
    let secrets = environment.secrets();
    wait("the children to go", || async {
        secrets.get_opt("redb-cache").await.expect("get").is_none()
            && services.get_opt("cache").await.expect("get").is_none()
            && services.get_opt("cache-headless").await.expect("get").is_none()
            && slices.get_opt("cache").await.expect("get").is_none()
    })
    .await;
    environment.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_adoption_a_crashed_process_and_a_deleted_cluster_end_with_one_database_each() {
    let environment = start().await;
    let count = |name: &'static str| {
        let rest = environment.rest.clone();
        async move {
            rest.databases()
                .await
                .expect("list")
                .into_iter()
                .filter(|bdb| bdb.name == name)
                .count()
        }
    };

    // A bdb with the REDB's name already exists and nothing says it is this REDB's: it is not taken over.
    let body = serde_json::from_value(
        json!({"name": "adopted", "memory_size": 104_857_600u64, "authentication_redis_pass": "unknown-1"}),
    )
    .expect("body");
    let existing = environment.rest.create_database(&body).await.expect("created by hand");
    environment.sandbox.emulator.requests().clear();
    create_database(&environment, "adopted", json!({"memorySize": "100MB"})).await;
    let databases = environment.databases();
    wait("the taken name to be refused", || async {
        let redb = databases.get("adopted").await.expect("redb");
        condition(&redb, "Stalled").is_some_and(|(_, reason, _)| reason == "DatabaseNameTaken")
    })
    .await;
    let redb = databases.get("adopted").await.expect("redb");
    assert_eq!(
        condition(&redb, "Stalled").map(|c| c.2),
        Some(format!(
            "database name adopted on cluster default/rec is taken by database uid {} (a database not managed by \
             redis-gitops); to manage that database with this REDB, add the annotation \
             redisgitops.dev/adopt-database: \"adopted\"; otherwise rename this REDB",
            existing.uid
        ))
    );
    assert_eq!(redb.status.as_ref().and_then(|s| s.database_uid.clone()), None);
    assert_eq!(
        environment.writes(),
        [],
        "nothing written to a database this REDB does not own"
    );
    assert!(
        environment
            .secrets()
            .get_opt("redb-adopted")
            .await
            .expect("get")
            .is_none(),
        "no password generated for a database that exists"
    );

    // Explicit adoption: the annotation and a Secret with the database's password.
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "redb-adopted", "namespace": NAMESPACE},
        "stringData": {"password": "unknown-1"}
    }))
    .expect("secret");
    environment
        .secrets()
        .create(&PostParams::default(), &secret)
        .await
        .expect("secret created");
    environment
        .databases()
        .patch(
            "adopted",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"redisgitops.dev/adopt-database": "adopted"}}})),
        )
        .await
        .expect("annotated");
    let redb = wait_ready(&environment, "adopted").await;
    let status = redb.status.clone().expect("status");
    assert_eq!(status.database_uid, Some(existing.uid.to_string()));
    assert_eq!(count("adopted").await, 1);
    assert!(
        !environment
            .writes()
            .iter()
            .any(|r| r.method == "POST" && r.path == "/v1/bdbs"),
        "no second create: {:?}",
        environment.writes()
    );
    connect_like_an_application(&environment, "redb-adopted")
        .await
        .expect("the adopted database keeps the Secret's password");

    // REST faults on the way to a new database: server errors, a busy cluster and a timeout.
    let faults = environment.sandbox.emulator.faults();
    faults.fail_next(
        Some(Method::POST),
        "/v1/bdbs",
        2,
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
    );
    faults.busy_next(Some(Method::GET), "/v1/shards", 4);
    faults.delay_next(Some(Method::GET), "/v1/bdbs", 1, REST_TIMEOUT + Duration::from_secs(1));
    create_database(&environment, "flaky", json!({"memorySize": "100MB"})).await;
    let redb = wait_ready(&environment, "flaky").await;
    assert_eq!(count("flaky").await, 1, "no duplicate after the faults");
    let uid: u64 = redb
        .status
        .as_ref()
        .and_then(|s| s.database_uid.clone())
        .expect("uid")
        .parse()
        .expect("numeric");
    connect_like_an_application(&environment, "redb-flaky")
        .await
        .expect("the application connects");

    // A crashed database process: the status follows the cluster (recovery), then Ready again.
    let databases = environment.databases();
    environment
        .sandbox
        .emulator
        .kill_database_process(&Environment::key(), uid)
        .expect("killed");
    wait("the crash to show", || async {
        let redb = databases.get("flaky").await.expect("redb");
        condition(&redb, "Ready").is_some_and(|(status, _, _)| status == "False")
    })
    .await;
    wait_ready(&environment, "flaky").await;
    assert_eq!(count("flaky").await, 1);
    connect_like_an_application(&environment, "redb-flaky")
        .await
        .expect("the application connects after the restart");

    // A rejected request is reported with the cluster's error code, and a Warning event.
    faults.fail_next(
        Some(Method::PUT),
        "/v1/bdbs/",
        2,
        StatusCode::NOT_ACCEPTABLE,
        "insufficient_resources",
    );
    patch_spec(&environment, "flaky", json!({"memorySize": "300MB"})).await;
    wait("the rejection to show", || async {
        let redb = databases.get("flaky").await.expect("redb");
        condition(&redb, "Ready").is_some_and(|(_, reason, message)| {
            reason == "RequestRejected" && message.contains("insufficient_resources")
        })
    })
    .await;
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(environment.kube.clone(), NAMESPACE);
    // The sandbox loses the note of a newly created events.k8s.io Event (it keeps it on series updates), so
    // only the reason is checked here; the message is in the Ready condition above.
    wait("a Warning event with the cluster's error", || async {
        events
            .list(&Default::default())
            .await
            .expect("events")
            .items
            .into_iter()
            .any(|e| e.type_.as_deref() == Some("Warning") && e.reason.as_deref() == Some("RequestRejected"))
    })
    .await;
    // The rejection is retried at the next resync, which succeeds.
    wait_ready(&environment, "flaky").await;

    // The cluster's REC is deleted before the REDB: deleting the REDB still completes.
    let clusters: Api<RedisEnterpriseCluster> = Api::namespaced(environment.kube.clone(), NAMESPACE);
    clusters
        .delete("rec", &DeleteParams::default())
        .await
        .expect("rec deleted");
    environment
        .databases()
        .delete("flaky", &DeleteParams::default())
        .await
        .expect("redb deleted");
    wait("the REDB to go without its cluster", || async {
        databases.get_opt("flaky").await.expect("get").is_none()
    })
    .await;
    let reasons: BTreeMap<String, usize> = events
        .list(&Default::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter_map(|e| e.reason)
        .fold(BTreeMap::new(), |mut counts, reason| {
            *counts.entry(reason).or_insert(0) += 1;
            counts
        });
    assert!(reasons.contains_key("ClusterGone"), "{reasons:?}");
    assert!(
        reasons.contains_key("DatabaseCreated") && reasons.contains_key("DatabaseAdopted"),
        "{reasons:?}"
    );
    environment.stop().await;
}
