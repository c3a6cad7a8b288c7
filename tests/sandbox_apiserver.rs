//! Tests of the sandbox Kubernetes API server with real clients only: `kube::Client` (incl. kube-runtime's
//! watcher and reflector) and the real `kubectl`.

#[path = "sandbox_apiserver/common.rs"]
mod common;
#[path = "sandbox_apiserver/extra.rs"]
mod extra;
#[path = "sandbox_apiserver/kubectl.rs"]
mod kubectl;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Widget, WidgetPort, WidgetSpec, WidgetStatus, client, eventually, raw, start, start_with};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy, WatchEvent, WatchParams,
};
use kube::core::ObjectMeta;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use redis_gitops_sandbox::apiserver::ApiServerOptions;
use serde_json::json;

fn api_error(result: Result<impl std::fmt::Debug, kube::Error>) -> kube::core::Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn config_map(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(data.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
        ..Default::default()
    }
}

fn widget(name: &str, size: i64) -> Widget {
    Widget::new(
        name,
        WidgetSpec {
            size,
            color: "red".into(),
            mode: None,
            ports: Vec::new(),
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crud_with_kube_client() {
    let server = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client(&server), "default");
    let created = api
        .create(&PostParams::default(), &config_map("one", &[("a", "1")]))
        .await
        .expect("create");
    assert!(created.metadata.uid.as_deref().is_some_and(|u| u.len() == 36));
    assert!(created.metadata.creation_timestamp.is_some());
    let rv: u64 = created
        .metadata
        .resource_version
        .as_deref()
        .and_then(|r| r.parse().ok())
        .expect("rv");
    assert!(rv > 0);

    let fetched = api.get("one").await.expect("get");
    assert_eq!(fetched.data, created.data);

    let again = api_error(api.create(&PostParams::default(), &config_map("one", &[])).await);
    assert_eq!((again.code, again.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(again.message, "configmaps \"one\" already exists");

    let mut changed = fetched.clone();
    changed.data = Some(BTreeMap::from([("a".to_string(), "2".to_string())]));
    let replaced = api
        .replace("one", &PostParams::default(), &changed)
        .await
        .expect("replace");
    assert_eq!(
        replaced.data.as_ref().and_then(|d| d.get("a")).map(String::as_str),
        Some("2")
    );
    let new_rv: u64 = replaced
        .metadata
        .resource_version
        .as_deref()
        .and_then(|r| r.parse().ok())
        .expect("rv");
    assert!(new_rv > rv);

    api.create(&PostParams::default(), &config_map("two", &[]))
        .await
        .expect("create two");
    let names: Vec<String> = api
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert_eq!(names, vec!["one", "two"]);

    api.delete("one", &DeleteParams::default()).await.expect("delete");
    let gone = api_error(api.get("one").await);
    assert_eq!((gone.code, gone.reason.as_str()), (404, "NotFound"));
    assert_eq!(gone.message, "configmaps \"one\" not found");

    let missing_ns: Api<ConfigMap> = Api::namespaced(client(&server), "nowhere");
    let err = api_error(missing_ns.create(&PostParams::default(), &config_map("x", &[])).await);
    assert_eq!(
        (err.code, err.message.as_str()),
        (404, "namespaces \"nowhere\" not found")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_update_is_a_conflict() {
    let server = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client(&server), "default");
    let first = api
        .create(&PostParams::default(), &config_map("c", &[("k", "1")]))
        .await
        .expect("create");
    let mut newer = first.clone();
    newer.data = Some(BTreeMap::from([("k".to_string(), "2".to_string())]));
    api.replace("c", &PostParams::default(), &newer)
        .await
        .expect("first replace");
    let mut stale = first.clone();
    stale.data = Some(BTreeMap::from([("k".to_string(), "3".to_string())]));
    let err = api_error(api.replace("c", &PostParams::default(), &stale).await);
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert!(err.message.contains("the object has been modified"), "{}", err.message);
    let now = api.get("c").await.expect("get");
    assert_eq!(now.data.and_then(|d| d.get("k").cloned()).as_deref(), Some("2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_selectors() {
    let server = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client(&server), "default");
    for (name, tier) in [("a", Some("web")), ("b", Some("db")), ("c", None)] {
        let mut cm = config_map(name, &[]);
        if let Some(tier) = tier {
            cm.metadata.labels = Some(BTreeMap::from([("tier".to_string(), tier.to_string())]));
        }
        api.create(&PostParams::default(), &cm).await.expect("create");
    }
    let names = |list: kube::core::ObjectList<ConfigMap>| -> Vec<String> {
        list.items.into_iter().filter_map(|c| c.metadata.name).collect()
    };
    for (selector, expected) in [
        ("tier=web", vec!["a"]),
        ("tier==db", vec!["b"]),
        ("tier!=web", vec!["b", "c"]),
        ("tier in (web,db)", vec!["a", "b"]),
        ("tier notin (web)", vec!["b", "c"]),
        ("tier", vec!["a", "b"]),
        ("!tier", vec!["c"]),
    ] {
        let list = api.list(&ListParams::default().labels(selector)).await.expect("list");
        assert_eq!(names(list), expected, "selector {selector}");
    }
    let list = api
        .list(&ListParams::default().fields("metadata.name=b"))
        .await
        .expect("field list");
    assert_eq!(names(list), vec!["b"]);
    let all: Api<ConfigMap> = Api::all(client(&server));
    let list = all
        .list(&ListParams::default().fields("metadata.namespace=default"))
        .await
        .expect("all");
    assert_eq!(names(list).len(), 3);
    let err = api_error(api.list(&ListParams::default().labels("tier in web")).await);
    assert_eq!(err.code, 400);
    assert!(err.message.contains("unable to parse requirement"), "{}", err.message);
    let list = api.list(&ListParams::default().limit(2)).await.expect("page 1");
    let token = list.metadata.continue_.clone().expect("continue token");
    assert_eq!(names(list), vec!["a", "b"]);
    let list = api
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .expect("page 2");
    assert_eq!(names(list), vec!["c"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_after_gone() {
    let server = start_with(ApiServerOptions {
        history_limit: 5,
        ..ApiServerOptions::default()
    })
    .await;
    let api: Api<ConfigMap> = Api::namespaced(client(&server), "default");
    let first = api
        .create(&PostParams::default(), &config_map("w", &[]))
        .await
        .expect("create");
    let old_rv = first.metadata.resource_version.clone().expect("rv");

    // Within history: a watch from the create's version sees the next change.
    let mut stream = api
        .watch(&WatchParams::default().timeout(10), &old_rv)
        .await
        .expect("watch")
        .boxed();
    api.patch("w", &PatchParams::default(), &Patch::Merge(json!({"data": {"n": "0"}})))
        .await
        .expect("patch");
    match tokio::time::timeout(Duration::from_secs(5), stream.try_next()).await {
        Ok(Ok(Some(WatchEvent::Modified(cm)))) => {
            assert_eq!(cm.data.and_then(|d| d.get("n").cloned()).as_deref(), Some("0"))
        }
        other => panic!("expected MODIFIED, got {other:?}"),
    }
    drop(stream);

    for i in 1..=10 {
        api.patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"n": i.to_string()}})),
        )
        .await
        .expect("patch");
    }
    let mut stream = api
        .watch(&WatchParams::default().timeout(10), &old_rv)
        .await
        .expect("watch")
        .boxed();
    match tokio::time::timeout(Duration::from_secs(5), stream.try_next()).await {
        Ok(Ok(Some(WatchEvent::Error(status)))) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
        }
        other => panic!("expected a 410 error event, got {other:?}"),
    }
    // Resume the way clients do: list, then watch from the list's version.
    let list = api.list(&ListParams::default()).await.expect("list");
    let rv = list.metadata.resource_version.expect("list rv");
    let mut stream = api
        .watch(&WatchParams::default().timeout(10), &rv)
        .await
        .expect("watch")
        .boxed();
    api.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"n": "last"}})),
    )
    .await
    .expect("patch");
    match tokio::time::timeout(Duration::from_secs(5), stream.try_next()).await {
        Ok(Ok(Some(WatchEvent::Modified(cm)))) => {
            assert_eq!(cm.data.and_then(|d| d.get("n").cloned()).as_deref(), Some("last"))
        }
        other => panic!("expected MODIFIED after resuming, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_bookmarks_and_timeout() {
    let server = start_with(ApiServerOptions {
        bookmark_interval: Duration::from_millis(100),
        ..ApiServerOptions::default()
    })
    .await;
    let api: Api<ConfigMap> = Api::namespaced(client(&server), "default");
    let list = api.list(&ListParams::default()).await.expect("list");
    let rv = list.metadata.resource_version.expect("rv");
    let events: Vec<_> = api
        .watch(&WatchParams::default().timeout(1), &rv)
        .await
        .expect("watch")
        .collect()
        .await;
    assert!(
        events.iter().any(|e| matches!(e, Ok(WatchEvent::Bookmark(_)))),
        "no bookmark in {events:?}"
    );
    // The stream ended by itself after timeoutSeconds (collect returned).
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_and_reflector_see_updates() {
    let server = start().await;
    let api: Api<Widget> = Api::namespaced(client(&server), "default");
    api.create(&PostParams::default(), &widget("seen", 1))
        .await
        .expect("create");
    let (reader, writer) = reflector::store::<Widget>();
    let stream = reflector(writer, watcher(api.clone(), watcher::Config::default())).applied_objects();
    let task = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while stream.next().await.is_some() {}
    });
    eventually("the reflector to list the widget", Duration::from_secs(10), || {
        let found = reader
            .state()
            .iter()
            .any(|w| w.metadata.name.as_deref() == Some("seen"));
        async move { found.then_some(()) }
    })
    .await;
    api.patch(
        "seen",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"size": 7}})),
    )
    .await
    .expect("patch");
    api.create(&PostParams::default(), &widget("later", 2))
        .await
        .expect("create later");
    eventually("the reflector to see the update", Duration::from_secs(10), || {
        let state = reader.state();
        let updated = state
            .iter()
            .any(|w| w.metadata.name.as_deref() == Some("seen") && w.spec.size == 7);
        let added = state.iter().any(|w| w.metadata.name.as_deref() == Some("later"));
        async move { (updated && added).then_some(()) }
    })
    .await;
    // Dropping every watch (fault injection) does not lose later updates: the watcher reconnects.
    server.drop_watches();
    api.patch(
        "later",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"size": 9}})),
    )
    .await
    .expect("patch after drop");
    eventually(
        "the reflector to recover after dropped watches",
        Duration::from_secs(15),
        || {
            let ok = reader
                .state()
                .iter()
                .any(|w| w.metadata.name.as_deref() == Some("later") && w.spec.size == 9);
            async move { ok.then_some(()) }
        },
    )
    .await;
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_removes_dropped_fields() {
    let server = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client(&server), "default");
    let apply = |manager: &'static str, data: serde_json::Value| {
        let api = api.clone();
        async move {
            api.patch(
                "ssa",
                &PatchParams::apply(manager),
                &Patch::Apply(
                    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": data}),
                ),
            )
            .await
        }
    };
    let created = apply("first", json!({"a": "1", "b": "2", "c": "3"}))
        .await
        .expect("create on apply");
    assert_eq!(created.data.as_ref().map(|d| d.len()), Some(3));
    apply("second", json!({"b": "2"})).await.expect("shared field");
    let after = apply("first", json!({"c": "3"})).await.expect("drop a and b");
    let data = after.data.clone().unwrap_or_default();
    assert_eq!(data.get("a"), None, "a was only owned by first and must be removed");
    assert_eq!(
        data.get("b").map(String::as_str),
        Some("2"),
        "b is still owned by second"
    );
    assert_eq!(data.get("c").map(String::as_str), Some("3"));
    let managers: Vec<String> = after
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert_eq!(managers, vec!["first", "second"]);
    // Re-applying the same configuration is a no-op: no new resourceVersion, no watch event.
    let again = apply("first", json!({"c": "3"})).await.expect("same apply");
    assert_eq!(again.metadata.resource_version, after.metadata.resource_version);
    let merged = api
        .patch(
            "ssa",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"c": "3"}})),
        )
        .await
        .expect("no-op merge patch");
    assert_eq!(merged.metadata.resource_version, after.metadata.resource_version);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_conflicts_without_force() {
    let server = start().await;
    let api: Api<Widget> = Api::namespaced(client(&server), "default");
    let body = |size: i64, ports: serde_json::Value| {
        json!({"apiVersion": "test.sandbox.io/v1", "kind": "Widget", "metadata": {"name": "w"},
               "spec": {"size": size, "color": "blue", "ports": ports}})
    };
    api.patch(
        "w",
        &PatchParams::apply("owner"),
        &Patch::Apply(body(1, json!([{"name": "http", "port": 80}]))),
    )
    .await
    .expect("first apply");
    let err = api_error(
        api.patch(
            "w",
            &PatchParams::apply("intruder"),
            &Patch::Apply(body(2, json!([{"name": "http", "port": 80}]))),
        )
        .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        err.message,
        "Apply failed with 1 conflict: conflict with \"owner\" using test.sandbox.io/v1: .spec.size"
    );
    assert_eq!(api.get("w").await.expect("get").spec.size, 1);
    // A list-map item added by another manager is merged by key, not replacing the owner's items.
    let merged = api
        .patch(
            "w",
            &PatchParams::apply("intruder"),
            &Patch::Apply(
                json!({"apiVersion": "test.sandbox.io/v1", "kind": "Widget", "metadata": {"name": "w"},
                "spec": {"ports": [{"name": "metrics", "port": 9090}]}}),
            ),
        )
        .await
        .expect("merge ports");
    assert_eq!(
        merged.spec.ports,
        vec![
            WidgetPort {
                name: "http".into(),
                port: 80
            },
            WidgetPort {
                name: "metrics".into(),
                port: 9090
            }
        ]
    );
    let forced = api
        .patch(
            "w",
            &PatchParams::apply("intruder").force(),
            &Patch::Apply(body(2, json!([{"name": "metrics", "port": 9090}]))),
        )
        .await
        .expect("forced apply");
    assert_eq!(forced.spec.size, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_subresource_and_generation() {
    let server = start().await;
    let api: Api<Widget> = Api::namespaced(client(&server), "default");
    let mut w = widget("g", 1);
    w.status = Some(WidgetStatus {
        phase: Some("Ignored".into()),
    });
    let created = api.create(&PostParams::default(), &w).await.expect("create");
    assert_eq!(created.metadata.generation, Some(1));
    assert_eq!(created.status, None, "status is ignored on create");

    let after_status = api
        .patch_status(
            "g",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Ready"}, "spec": {"size": 50}})),
        )
        .await
        .expect("status patch");
    assert_eq!(after_status.status.and_then(|s| s.phase).as_deref(), Some("Ready"));
    assert_eq!(after_status.spec.size, 1, "spec is ignored on /status");
    assert_eq!(
        after_status.metadata.generation,
        Some(1),
        "status writes do not bump generation"
    );

    let main = api
        .patch(
            "g",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Hacked"}})),
        )
        .await
        .expect("main patch with status only");
    assert_eq!(
        main.status.and_then(|s| s.phase).as_deref(),
        Some("Ready"),
        "status is ignored on the main resource"
    );
    assert_eq!(main.metadata.generation, Some(1));
    let labelled = api
        .patch(
            "g",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .expect("label patch");
    assert_eq!(
        labelled.metadata.generation,
        Some(1),
        "metadata changes do not bump generation"
    );
    let spec = api
        .patch(
            "g",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 3}})),
        )
        .await
        .expect("spec patch");
    assert_eq!(spec.metadata.generation, Some(2));
    let ssa_status = api
        .patch_status(
            "g",
            &PatchParams::apply("status-writer").force(),
            &Patch::Apply(
                json!({"apiVersion": "test.sandbox.io/v1", "kind": "Widget", "metadata": {"name": "g"},
                "status": {"phase": "Applied"}}),
            ),
        )
        .await
        .expect("status apply");
    assert_eq!(ssa_status.status.and_then(|s| s.phase).as_deref(), Some("Applied"));
    assert_eq!(ssa_status.metadata.generation, Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalizers_hold_deletion() {
    let server = start().await;
    let api: Api<Widget> = Api::namespaced(client(&server), "default");
    let mut w = widget("f", 1);
    w.metadata.finalizers = Some(vec!["test.sandbox.io/cleanup".into()]);
    api.create(&PostParams::default(), &w).await.expect("create");
    api.delete("f", &DeleteParams::default()).await.expect("delete");
    let marked = api.get("f").await.expect("still there");
    assert!(marked.metadata.deletion_timestamp.is_some());
    let err = api_error(
        api.patch(
            "f",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 0}})),
        )
        .await,
    );
    assert_eq!(err.code, 422, "validation still applies while terminating");
    api.patch(
        "f",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("remove finalizer");
    let gone = api_error(api.get("f").await);
    assert_eq!(gone.code, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_runtime_finalizer_helper_runs_its_json_patches() {
    use kube::runtime::controller::Action;
    use kube::runtime::finalizer::{Event, finalizer};
    let server = start().await;
    let api: Api<Widget> = Api::namespaced(client(&server), "default");
    api.create(&PostParams::default(), &widget("fin", 1))
        .await
        .expect("create");
    let run = |obj: Widget| {
        let api = api.clone();
        async move {
            finalizer(
                &api,
                "test.sandbox.io/cleanup",
                std::sync::Arc::new(obj),
                |event| async move {
                    match event {
                        Event::Apply(_) => Ok::<_, std::convert::Infallible>(Action::await_change()),
                        Event::Cleanup(_) => Ok(Action::await_change()),
                    }
                },
            )
            .await
        }
    };
    run(api.get("fin").await.expect("get"))
        .await
        .expect("the helper adds its finalizer");
    let with = api.get("fin").await.expect("get");
    assert_eq!(
        with.metadata.finalizers,
        Some(vec!["test.sandbox.io/cleanup".to_string()])
    );
    api.delete("fin", &DeleteParams::default()).await.expect("delete");
    run(api.get("fin").await.expect("terminating"))
        .await
        .expect("the helper cleans up and removes its finalizer");
    assert_eq!(api_error(api.get("fin").await).code, 404);

    // A JSON patch whose test fails is refused and changes nothing.
    let cm_api: Api<ConfigMap> = Api::namespaced(client(&server), "default");
    cm_api
        .create(&PostParams::default(), &config_map("jp", &[("k", "v")]))
        .await
        .expect("create");
    let patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/data/k", "value": "other"},
        {"op": "replace", "path": "/data/k", "value": "new"}
    ]))
    .expect("patch");
    let err = api_error(
        cm_api
            .patch("jp", &PatchParams::default(), &Patch::Json::<()>(patch))
            .await,
    );
    assert_eq!(err.code, 422, "{}", err.message);
    let unchanged = cm_api.get("jp").await.expect("get");
    assert_eq!(unchanged.data.and_then(|d| d.get("k").cloned()).as_deref(), Some("v"));
}

fn owned_config_map(name: &str, owner: &ConfigMap) -> ConfigMap {
    let mut cm = config_map(name, &[]);
    cm.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: owner.metadata.name.clone().unwrap_or_default(),
        uid: owner.metadata.uid.clone().unwrap_or_default(),
        block_owner_deletion: Some(true),
        controller: Some(true),
    }]);
    cm
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_collection_background_foreground_orphan() {
    let server = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client(&server), "default");
    let pp = PostParams::default();

    let owner = api.create(&pp, &config_map("owner-bg", &[])).await.expect("owner");
    api.create(&pp, &owned_config_map("child-bg", &owner))
        .await
        .expect("child");
    api.delete("owner-bg", &DeleteParams::background())
        .await
        .expect("delete bg");
    assert_eq!(
        api_error(api.get("child-bg").await).code,
        404,
        "background GC deletes the dependent"
    );

    let owner = api.create(&pp, &config_map("owner-fg", &[])).await.expect("owner");
    let mut child = owned_config_map("child-fg", &owner);
    child.metadata.finalizers = Some(vec!["test/hold".into()]);
    api.create(&pp, &child).await.expect("child");
    api.delete("owner-fg", &DeleteParams::foreground())
        .await
        .expect("delete fg");
    let waiting = api.get("owner-fg").await.expect("owner waits for its dependents");
    assert!(
        waiting
            .metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"foregroundDeletion".to_string())
    );
    assert!(
        api.get("child-fg")
            .await
            .expect("child marked")
            .metadata
            .deletion_timestamp
            .is_some()
    );
    api.patch(
        "child-fg",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("release child");
    assert_eq!(api_error(api.get("child-fg").await).code, 404);
    assert_eq!(
        api_error(api.get("owner-fg").await).code,
        404,
        "owner goes once its dependents are gone"
    );

    let owner = api.create(&pp, &config_map("owner-or", &[])).await.expect("owner");
    api.create(&pp, &owned_config_map("child-or", &owner))
        .await
        .expect("child");
    let orphan = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Orphan),
        ..DeleteParams::default()
    };
    api.delete("owner-or", &orphan).await.expect("delete orphan");
    let kept = api.get("child-or").await.expect("orphan survives");
    assert!(kept.metadata.owner_references.unwrap_or_default().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_violations_are_rejected_and_change_nothing() {
    let server = start().await;
    let api: Api<Widget> = Api::namespaced(client(&server), "default");
    let err = api_error(api.create(&PostParams::default(), &widget("bad", 0)).await);
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        err.message,
        "Widget.test.sandbox.io \"bad\" is invalid: spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1"
    );
    let causes = err.details.map(|d| d.causes).unwrap_or_default();
    assert_eq!(causes.first().map(|c| c.field.clone()).as_deref(), Some("spec.size"));
    assert_eq!(api_error(api.get("bad").await).code, 404, "nothing was stored");

    let good = api
        .create(&PostParams::default(), &widget("good", 5))
        .await
        .expect("create");
    let err = api_error(
        api.patch(
            "good",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"color": "Red!", "mode": "Sloppy"}})),
        )
        .await,
    );
    assert_eq!(err.code, 422);
    assert!(
        err.message.contains("spec.color in body should match '^[a-z]+$'"),
        "{}",
        err.message
    );
    assert!(
        err.message
            .contains("spec.mode: Unsupported value: \"Sloppy\": supported values: \"Fast\", \"Careful\""),
        "{}",
        err.message
    );
    let err = api_error(
        api.patch(
            "good",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": "big"}})),
        )
        .await,
    );
    assert!(
        err.message
            .contains("spec.size in body must be of type integer: \"string\""),
        "{}",
        err.message
    );
    let err = api_error(
        api.patch(
            "good",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"color": null}})),
        )
        .await,
    );
    assert!(err.message.contains("spec.color: Required value"), "{}", err.message);
    let unchanged = api.get("good").await.expect("get");
    assert_eq!(unchanged.metadata.resource_version, good.metadata.resource_version);
    assert_eq!(unchanged.spec, good.spec);

    // Malformed bodies, unknown resources and bad selectors answer with a Status and change nothing.
    let (code, body) = raw(
        &server,
        "POST",
        "/apis/test.sandbox.io/v1/namespaces/default/widgets",
        "application/json",
        "{not json",
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("\"kind\":\"Status\"") && body.contains("json parse error"),
        "{body}"
    );
    let (code, body) = raw(
        &server,
        "GET",
        "/apis/test.sandbox.io/v1/namespaces/default/gadgets",
        "application/json",
        "",
    )
    .await;
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("gadgets.test.sandbox.io"), "{body}");
    let (code, body) = raw(
        &server,
        "PATCH",
        "/apis/test.sandbox.io/v1/namespaces/default/widgets/good",
        "text/plain",
        "{}",
    )
    .await;
    assert_eq!(code, 415, "{body}");
    let (code, body) = raw(
        &server,
        "GET",
        "/api/v1/namespaces/default/pods/x/log",
        "application/json",
        "",
    )
    .await;
    assert_eq!(code, 501, "{body}");
    assert!(body.contains("does not implement the pods/log subresource"), "{body}");
    let after = api.get("good").await.expect("get");
    assert_eq!(after.metadata.resource_version, good.metadata.resource_version);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_fields_are_pruned_or_rejected_when_strict() {
    let server = start().await;
    let (code, body) = raw(
        &server,
        "POST",
        "/apis/test.sandbox.io/v1/namespaces/default/widgets",
        "application/json",
        r#"{"apiVersion":"test.sandbox.io/v1","kind":"Widget","metadata":{"name":"p"},"spec":{"size":1,"color":"red","extra":true},"junk":1}"#,
    )
    .await;
    assert_eq!(code, 201, "{body}");
    let api: Api<Widget> = Api::namespaced(client(&server), "default");
    let (code, body) = raw(
        &server,
        "GET",
        "/apis/test.sandbox.io/v1/namespaces/default/widgets/p",
        "application/json",
        "",
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let stored: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(stored.pointer("/spec/size"), Some(&json!(1)));
    assert_eq!(stored.pointer("/spec/extra"), None);
    assert_eq!(stored.get("junk"), None);
    let (code, body) = raw(
        &server,
        "POST",
        "/apis/test.sandbox.io/v1/namespaces/default/widgets?fieldValidation=Strict",
        "application/json",
        r#"{"apiVersion":"test.sandbox.io/v1","kind":"Widget","metadata":{"name":"q"},"spec":{"size":1,"color":"red","extra":true}}"#,
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("strict decoding error: unknown field \\\"spec.extra\\\""),
        "{body}"
    );
    assert_eq!(api_error(api.get("q").await).code, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_string_data_becomes_data() {
    let server = start().await;
    let api: Api<Secret> = Api::namespaced(client(&server), "default");
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("s".into()),
            ..Default::default()
        },
        string_data: Some(BTreeMap::from([("password".to_string(), "hunter2".to_string())])),
        ..Default::default()
    };
    let created = api.create(&PostParams::default(), &secret).await.expect("create");
    assert_eq!(created.string_data, None);
    let data = created.data.unwrap_or_default();
    assert_eq!(
        data.get("password").map(|b| b.0.as_slice()),
        Some(b"hunter2".as_slice())
    );
    assert_eq!(created.type_.as_deref(), Some("Opaque"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulset_pods_become_ready_roll_and_scale() {
    let server = start_with(ApiServerOptions {
        pod_ready_delay: Duration::from_millis(50),
        ..ApiServerOptions::default()
    })
    .await;
    let sts_api: Api<StatefulSet> = Api::namespaced(client(&server), "default");
    let pods: Api<Pod> = Api::namespaced(client(&server), "default");
    let sts = json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
        "spec": {"replicas": 3, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "main", "image": "redis:1"}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}
    });
    sts_api
        .patch("db", &PatchParams::apply("test"), &Patch::Apply(sts))
        .await
        .expect("apply sts");
    let ready = eventually("3 ready replicas", Duration::from_secs(15), || {
        let api = sts_api.clone();
        async move {
            let s = api.get("db").await.ok()?;
            let st = s.status.clone()?;
            (st.ready_replicas == Some(3) && st.updated_replicas == Some(3) && st.current_replicas == Some(3))
                .then_some(s)
        }
    })
    .await;
    let status = ready.status.clone().unwrap_or_default();
    assert_eq!(status.current_revision, status.update_revision);
    assert_eq!(status.observed_generation, Some(1));
    let pod = pods.get("db-0").await.expect("pod db-0");
    assert_eq!(pod.status.as_ref().and_then(|s| s.pod_ip.as_deref()), Some("127.0.0.1"));
    assert_eq!(
        pod.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("app"))
            .map(String::as_str),
        Some("db")
    );
    let claims: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> = Api::namespaced(client(&server), "default");
    let claim = claims.get("data-db-0").await.expect("claim from volumeClaimTemplates");
    assert_eq!(claim.status.and_then(|s| s.phase).as_deref(), Some("Bound"));
    let mounted = pod.spec.as_ref().and_then(|s| s.volumes.clone()).unwrap_or_default();
    assert!(
        mounted
            .iter()
            .any(|v| { v.persistent_volume_claim.as_ref().map(|c| c.claim_name.as_str()) == Some("data-db-0") })
    );
    let owner = pod.metadata.owner_references.unwrap_or_default();
    assert_eq!(owner.first().map(|o| o.uid.clone()), ready.metadata.uid.clone());
    let order: Vec<String> = {
        let mut ps = pods
            .list(&ListParams::default().labels("app=db"))
            .await
            .expect("pods")
            .items;
        ps.sort_by_key(|p| p.metadata.creation_timestamp.clone().map(|t| t.0));
        ps.into_iter().filter_map(|p| p.metadata.name).collect()
    };
    assert_eq!(order.len(), 3);

    let budgets: Api<k8s_openapi::api::policy::v1::PodDisruptionBudget> = Api::namespaced(client(&server), "default");
    budgets
        .patch(
            "db",
            &PatchParams::apply("test"),
            &Patch::Apply(json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "db"}, "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "db"}}}})),
        )
        .await
        .expect("pdb");
    eventually("the PDB to count healthy pods", Duration::from_secs(10), || {
        let budgets = budgets.clone();
        async move {
            let status = budgets.get("db").await.ok()?.status?;
            (status.current_healthy == 3 && status.desired_healthy == 2 && status.disruptions_allowed == 1)
                .then_some(())
        }
    })
    .await;

    // A template change rolls every pod to the new revision.
    sts_api
        .patch("db", &PatchParams::apply("test"), &Patch::Apply(json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
            "spec": {"replicas": 3, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "main", "image": "redis:2"}]}},
                // Claim templates cannot change (or be dropped) in an update: the same ones again.
                "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}
        })))
        .await
        .expect("new template");
    eventually("the rolling update to finish", Duration::from_secs(20), || {
        let api = sts_api.clone();
        async move {
            let s = api.get("db").await.ok()?;
            let st = s.status?;
            (st.observed_generation == Some(2)
                && st.updated_replicas == Some(3)
                && st.ready_replicas == Some(3)
                && st.current_revision == st.update_revision)
                .then_some(())
        }
    })
    .await;
    let image = pods
        .get("db-0")
        .await
        .expect("pod")
        .spec
        .and_then(|s| s.containers.first().and_then(|c| c.image.clone()));
    assert_eq!(image.as_deref(), Some("redis:2"));

    sts_api
        .patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 1}})),
        )
        .await
        .expect("scale");
    eventually("scale down to 1", Duration::from_secs(15), || {
        let pods = pods.clone();
        async move {
            let names: Vec<String> = pods
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .into_iter()
                .filter_map(|p| p.metadata.name)
                .collect();
            (names == vec!["db-0".to_string()]).then_some(())
        }
    })
    .await;
    sts_api
        .delete("db", &DeleteParams::default())
        .await
        .expect("delete sts");
    eventually("pods collected with their StatefulSet", Duration::from_secs(5), || {
        let pods = pods.clone();
        async move {
            pods.list(&ListParams::default())
                .await
                .ok()?
                .items
                .is_empty()
                .then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_faults_fail_and_delay_requests() {
    let server = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client(&server), "default");
    api.create(&PostParams::default(), &config_map("f", &[]))
        .await
        .expect("create");
    // 500 is not retried by kube's client (503 would be, consuming the injected failures silently).
    server.faults().fail_next(
        Some("GET"),
        "/api/v1/namespaces/default/configmaps",
        2,
        500,
        "planned outage",
    );
    for _ in 0..2 {
        let err = api_error(api.get("f").await);
        assert_eq!((err.code, err.reason.as_str()), (500, "InternalError"));
        assert_eq!(err.message, "injected failure: planned outage");
    }
    api.get("f").await.expect("third request passes");
    server.faults().delay(
        None,
        "/api/v1/namespaces/default/configmaps",
        Duration::from_millis(300),
    );
    let started = std::time::Instant::now();
    api.get("f").await.expect("delayed get");
    assert!(started.elapsed() >= Duration::from_millis(300));
    server.faults().clear();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_handle_sees_and_makes_changes() {
    let server = start().await;
    let objects = server.objects();
    let mut events = objects.subscribe(Some(("v1", "ConfigMap"))).expect("subscribe");
    let api: Api<ConfigMap> = Api::namespaced(client(&server), "default");
    api.create(&PostParams::default(), &config_map("h", &[("k", "v")]))
        .await
        .expect("create");
    let event = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("event in time")
        .expect("event");
    assert_eq!(event.object.pointer("/metadata/name"), Some(&json!("h")));
    objects
        .patch(
            "v1",
            "ConfigMap",
            Some("default"),
            "h",
            redis_gitops_sandbox::apiserver::PatchKind::Merge,
            json!({"data": {"k": "changed"}}),
            redis_gitops_sandbox::apiserver::Subresource::Main,
            "glue",
        )
        .expect("patch in process");
    let fetched = api.get("h").await.expect("get");
    assert_eq!(
        fetched.data.and_then(|d| d.get("k").cloned()).as_deref(),
        Some("changed")
    );
    let listed = objects.list("v1", "ConfigMap", Some("default"), "").expect("list");
    assert_eq!(listed.len(), 1);
}
