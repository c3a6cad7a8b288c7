//! A GitSync whose objects live in a namespace that does not exist: without `spec.createNamespace` its condition and
//! event name the namespace and the two ways out, with no Rust `Debug` dump; with it the sync creates the namespace
//! (labelled as created by redis-gitops), applies, and never deletes the namespace, not even when pruning.

mod support;

use std::sync::Arc;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use redis_gitops::api::{GitSync, RedisEnterpriseDatabase};
use redis_gitops::sync::controller::{SyncContext, run};
use redis_gitops::telemetry::Metrics;
use redis_gitops_sandbox::apiserver::{ApiServer, ApiServerOptions};
use serde_json::json;
use support::Repo;
use support::sync::{eventually, ready};

fn database(namespace: &str) -> String {
    format!(
        "apiVersion: app.redislabs.com/v1alpha1\nkind: RedisEnterpriseDatabase\nmetadata:\n  name: orders\n  namespace: \
         {namespace}\nspec:\n  memorySize: 1GB\n"
    )
}

/// The notes of the events about the GitSync `name`.
async fn event_notes(client: &kube::Client, name: &str) -> Vec<(String, String)> {
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    events
        .list(&ListParams::default())
        .await
        .expect("list events")
        .items
        .into_iter()
        .filter(|event| event.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .map(|event| (event.reason.unwrap_or_default(), event.note.unwrap_or_default()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_namespace_is_named_with_what_to_do_and_create_namespace_creates_it() {
    let temp = tempfile::tempdir().expect("temp dir");
    let repo = Repo::new(temp.path());
    repo.write("orders.yaml", &database("redis-production"));
    let first = repo.commit("orders");
    let apiserver = ApiServer::start(ApiServerOptions {
        crds: redis_gitops::api::crds(),
        ..ApiServerOptions::default()
    })
    .await
    .expect("the sandbox API server starts");
    let client = apiserver.kube_client().expect("client");
    let cache = tempfile::tempdir().expect("cache dir");
    // The GitSync may write to any namespace, as `--allow-namespace '*'` (the sandbox's own setting) allows.
    let context = Arc::new(SyncContext::new(
        client.clone(),
        cache.path().to_path_buf(),
        ["*".to_string()].into(),
        None,
        Arc::new(Metrics::default()),
    ));
    let controller = tokio::spawn(run(context, std::future::pending()));
    let gitsyncs: Api<GitSync> = Api::namespaced(client.clone(), "default");
    let gitsync: GitSync = serde_json::from_value(json!({
        "apiVersion": "redisgitops.dev/v1alpha1", "kind": "GitSync",
        "metadata": {"name": "prod", "namespace": "default"},
        "spec": {"url": repo.url(), "interval": "1s", "prune": true, "allowDatabaseDeletion": true},
    }))
    .expect("a GitSync");
    gitsyncs.create(&PostParams::default(), &gitsync).await.expect("create");
    let ready_as = |status: &'static str, reason: &'static str| {
        let gitsyncs = gitsyncs.clone();
        move || {
            let gitsyncs = gitsyncs.clone();
            async move {
                let current = gitsyncs.get("prod").await.ok()?;
                let (found, found_reason, message) = ready(&current)?;
                (found == status && (reason.is_empty() || found_reason == reason)).then_some((message, current))
            }
        }
    };

    let (message, _) = eventually("Ready=False/ApplyFailed", ready_as("False", "ApplyFailed")).await;
    assert_eq!(
        message,
        format!(
            "revision {} was not fully applied (0 of 1 objects at it): unable to apply RedisEnterpriseDatabase \
             redis-production/orders: namespace \"redis-production\" does not exist: create it or set \
             spec.createNamespace; nothing stays the last applied revision, retrying with backoff",
            &first[..7]
        )
    );
    for needle in ["Status {", "Some(", "ApiError"] {
        assert!(!message.contains(needle), "no Debug dump in the condition: {message}");
    }
    let notes = eventually("the ApplyFailed event", || async {
        let notes = event_notes(&client, "prod").await;
        notes.iter().any(|(reason, _)| reason == "ApplyFailed").then_some(notes)
    })
    .await;
    for (reason, note) in &notes {
        for needle in ["Status {", "Some(", "ApiError"] {
            assert!(!note.contains(needle), "no Debug dump in event {reason}: {note}");
        }
    }
    assert!(
        notes.iter().any(|(_, note)| note
            .contains("namespace \"redis-production\" does not exist: create it or set spec.createNamespace")),
        "{notes:?}"
    );

    // With the option the sync creates the namespace and applies.
    gitsyncs
        .patch(
            "prod",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"createNamespace": true}})),
        )
        .await
        .expect("set createNamespace");
    let applied = |revision: String| {
        let gitsyncs = gitsyncs.clone();
        move || {
            let gitsyncs = gitsyncs.clone();
            let revision = revision.clone();
            async move {
                let current = gitsyncs.get("prod").await.ok()?;
                let at = current.status.as_ref()?.last_applied_revision.as_deref() == Some(revision.as_str());
                (at && ready(&current)?.0 == "True").then_some(())
            }
        }
    };
    eventually("the first revision applied", applied(format!("main@sha1:{first}"))).await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let created = namespaces.get("redis-production").await.expect("the namespace exists");
    assert_eq!(
        created
            .metadata
            .labels
            .unwrap_or_default()
            .get("app.kubernetes.io/created-by")
            .map(String::as_str),
        Some("redis-gitops")
    );
    assert_eq!(
        created
            .metadata
            .annotations
            .unwrap_or_default()
            .get("redisgitops.dev/created-by-gitsync")
            .map(String::as_str),
        Some("default/prod")
    );
    let databases: Api<RedisEnterpriseDatabase> = Api::namespaced(client.clone(), "redis-production");
    assert!(databases.get_opt("orders").await.expect("read").is_some());
    let notes = event_notes(&client, "prod").await;
    assert!(
        notes.iter().any(|(reason, note)| reason == "NamespaceCreated"
            && note
                == "created namespace redis-production for the objects of GitSync default/prod (spec.createNamespace)"),
        "{notes:?}"
    );

    // The database leaves Git and is pruned; the namespace stays.
    // (A revision with no objects at all prunes nothing, so another database stays.)
    repo.git(&["rm", "-q", "orders.yaml"]);
    repo.write(
        "sessions.yaml",
        "apiVersion: app.redislabs.com/v1alpha1\nkind: RedisEnterpriseDatabase\nmetadata:\n  name: sessions\nspec:\n  \
         memorySize: 1GB\n",
    );
    let second = repo.commit("remove orders");
    eventually("the second revision applied", applied(format!("main@sha1:{second}"))).await;
    eventually("the database to be pruned", || async {
        databases.get_opt("orders").await.ok()?.is_none().then_some(())
    })
    .await;
    let kept = namespaces.get_opt("redis-production").await.expect("read");
    assert!(
        kept.is_some_and(|namespace| namespace.metadata.deletion_timestamp.is_none()),
        "the namespace is never deleted"
    );
    controller.abort();
}
