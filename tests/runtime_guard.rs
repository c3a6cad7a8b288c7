//! One REDB that the typed client cannot decode does not stop the database controller for the others: its
//! `spec.backup.interval` is an integer the CRD schema allows (no maximum) but that does not fit the agent's `i64`.
//! The other REDB still becomes Ready, and the undecodable one gets a Warning event naming it and nothing else.
//! The harness is the database controller's (`tests/support/database_env.rs`).

use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use redis_gitops::api::RedisEnterpriseDatabase;
use serde_json::json;

#[path = "support/database_env.rs"]
mod database_env;

use database_env::*;

#[tokio::test]
async fn an_undecodable_redb_is_reported_and_the_others_still_become_ready() {
    let environment = start().await;
    let kube = environment.kube.clone();
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

    let good: RedisEnterpriseDatabase = serde_json::from_value(json!({
        "apiVersion": "app.redislabs.com/v1alpha1", "kind": "RedisEnterpriseDatabase",
        "metadata": {"name": "cache", "namespace": NAMESPACE}, "spec": {"memorySize": "100MB"}
    }))
    .expect("redb");
    databases
        .create(&PostParams::default(), &good)
        .await
        .expect("redb created");

    let ready = wait_ready(&environment, "cache").await;
    assert_eq!(
        condition(&ready, "Ready").map(|(_, reason, _)| reason).as_deref(),
        Some("DatabaseActive")
    );

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
    let names: Vec<String> = environment
        .rest
        .databases()
        .await
        .expect("bdbs")
        .into_iter()
        .map(|bdb| bdb.name)
        .collect();
    assert_eq!(names, ["cache"]);

    environment.stop().await;
}
