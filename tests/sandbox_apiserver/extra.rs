//! CRD registration at run time (discovery, multiple versions, removal), streaming-list watches, pod IP
//! allocation, OrderedReady creation order, bearer tokens and method errors.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::runtime::{reflector, watcher};
use redis_gitops_sandbox::apiserver::{ApiServerOptions, EventType, PodIpAllocator};
use serde_json::{Value, json};

use super::common::{client, eventually, raw, start, start_with};

fn gizmo_crd() -> CustomResourceDefinition {
    let schema = json!({"openAPIV3Schema": {"type": "object", "properties": {
        "spec": {"type": "object", "properties": {"level": {"type": "integer", "description": "How high."}}},
        "status": {"type": "object", "properties": {"ok": {"type": "boolean"}}}
    }}});
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gizmos.extra.sandbox.io"},
        "spec": {"group": "extra.sandbox.io", "scope": "Cluster",
            "names": {"plural": "gizmos", "singular": "gizmo", "kind": "Gizmo", "shortNames": ["gz"]},
            "versions": [
                {"name": "v1alpha1", "served": true, "storage": false, "schema": schema},
                {"name": "v1", "served": true, "storage": true, "schema": schema, "subresources": {"status": {}},
                 "additionalPrinterColumns": [{"name": "Level", "type": "integer", "jsonPath": ".spec.level"}]}
            ]}
    }))
    .expect("valid CRD")
}

fn gizmo_api(client: kube::Client, version: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("extra.sandbox.io", version, "Gizmo");
    Api::all_with(client, &ApiResource::from_gvk_with_plural(&gvk, "gizmos"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crd_registered_at_runtime_serves_every_version() {
    let server = start().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client(&server));
    crds.create(&PostParams::default(), &gizmo_crd())
        .await
        .expect("create CRD");
    let crd = crds.get("gizmos.extra.sandbox.io").await.expect("get CRD");
    let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
    let established = conditions
        .iter()
        .any(|c| c.type_ == "Established" && c.status == "True");
    let names_accepted = conditions
        .iter()
        .any(|c| c.type_ == "NamesAccepted" && c.status == "True");
    assert!(established && names_accepted, "{conditions:?}");

    let discovery = kube::discovery::Discovery::new(client(&server))
        .run()
        .await
        .expect("discovery");
    let group = discovery
        .groups()
        .find(|g| g.name() == "extra.sandbox.io")
        .expect("the CRD's group is discovered");
    let versions: Vec<String> = group.versions().map(str::to_string).collect();
    assert_eq!(
        versions,
        vec!["v1", "v1alpha1"],
        "discovery lists the preferred (GA) version first"
    );
    let (resource, capabilities) = group
        .recommended_resources()
        .into_iter()
        .find(|(r, _)| r.kind == "Gizmo")
        .expect("Gizmo resource");
    assert_eq!(resource.plural, "gizmos");
    assert_eq!(capabilities.scope, kube::discovery::Scope::Cluster);
    assert!(
        capabilities
            .subresources
            .iter()
            .any(|(r, _)| r.plural == "gizmos/status" || r.plural == "status")
    );

    let old: Api<DynamicObject> = gizmo_api(client(&server), "v1alpha1");
    let mut gizmo = DynamicObject::new(
        "g1",
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("extra.sandbox.io", "v1alpha1", "Gizmo"),
            "gizmos",
        ),
    );
    gizmo.data = json!({"spec": {"level": 4, "unknown": 1}});
    let created = old
        .create(&PostParams::default(), &gizmo)
        .await
        .expect("create via v1alpha1");
    assert_eq!(
        created.types.as_ref().map(|t| t.api_version.as_str()),
        Some("extra.sandbox.io/v1alpha1")
    );
    assert_eq!(created.data.pointer("/spec/unknown"), None, "unknown fields are pruned");
    let new = gizmo_api(client(&server), "v1");
    let read = new.get("g1").await.expect("read via v1");
    assert_eq!(
        read.types.as_ref().map(|t| t.api_version.as_str()),
        Some("extra.sandbox.io/v1")
    );
    assert_eq!(read.data.pointer("/spec/level"), Some(&json!(4)));

    crds.delete("gizmos.extra.sandbox.io", &DeleteParams::default())
        .await
        .expect("delete CRD");
    let (code, body) = raw(
        &server,
        "GET",
        "/apis/extra.sandbox.io/v1/gizmos",
        "application/json",
        "",
    )
    .await;
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("the server doesn't have a resource type"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_list_watch_sends_initial_events() {
    let server = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client(&server), "default");
    for name in ["s1", "s2"] {
        let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": name}})).expect("cm");
        api.create(&PostParams::default(), &cm).await.expect("create");
    }
    let (reader, writer) = reflector::store::<ConfigMap>();
    let stream = reflector(
        writer,
        watcher(api.clone(), watcher::Config::default().streaming_lists()),
    );
    let task = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while stream.next().await.is_some() {}
    });
    tokio::time::timeout(Duration::from_secs(10), reader.wait_until_ready())
        .await
        .expect("initial events end in time")
        .expect("store ready");
    let mut names: Vec<String> = reader.state().iter().filter_map(|c| c.metadata.name.clone()).collect();
    names.sort();
    assert_eq!(names, vec!["s1", "s2"]);
    task.abort();
}

struct CountingAllocator {
    next: AtomicU8,
}

impl PodIpAllocator for CountingAllocator {
    fn allocate(&self, _pod: &Value) -> String {
        format!("127.0.0.{}", 10 + self.next.fetch_add(1, Ordering::SeqCst))
    }
}

/// Holds pods un-Ready until the test opens the gate (as the Redis Enterprise emulator does until a node runs).
struct GatedReadiness {
    open: Arc<std::sync::atomic::AtomicBool>,
}

impl PodIpAllocator for GatedReadiness {
    fn allocate(&self, _pod: &Value) -> String {
        "127.0.0.1".into()
    }
    fn may_become_ready(&self, _pod: &Value) -> bool {
        self.open.load(Ordering::SeqCst)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_can_wait_for_an_external_signal() {
    let open = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let server = start_with(ApiServerOptions {
        pod_ready_delay: Duration::from_millis(10),
        pod_ip_allocator: Arc::new(GatedReadiness { open: open.clone() }),
        ..ApiServerOptions::default()
    })
    .await;
    let sts: Api<StatefulSet> = Api::namespaced(client(&server), "default");
    sts.patch(
        "gate",
        &PatchParams::apply("test"),
        &Patch::Apply(json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "gate"},
            "spec": {"replicas": 1, "serviceName": "gate", "selector": {"matchLabels": {"app": "gate"}},
              "template": {"metadata": {"labels": {"app": "gate"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}})),
    )
    .await
    .expect("apply");
    let pods: Api<Pod> = Api::namespaced(client(&server), "default");
    let pod = eventually("the pod to exist", Duration::from_secs(10), || {
        let pods = pods.clone();
        async move { pods.get("gate-0").await.ok() }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pending = pods.get("gate-0").await.expect("pod");
    assert_eq!(
        pending.status.and_then(|s| s.phase).as_deref(),
        Some("Pending"),
        "{pod:?}"
    );
    open.store(true, Ordering::SeqCst);
    eventually("the pod to become Ready once allowed", Duration::from_secs(10), || {
        let pods = pods.clone();
        async move {
            let phase = pods.get("gate-0").await.ok()?.status?.phase?;
            (phase == "Running").then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_get_allocated_ips_in_ordinal_order() {
    let server = start_with(ApiServerOptions {
        pod_ready_delay: Duration::from_millis(30),
        pod_ip_allocator: Arc::new(CountingAllocator { next: AtomicU8::new(0) }),
        ..ApiServerOptions::default()
    })
    .await;
    let mut events = server.objects().subscribe(Some(("v1", "Pod"))).expect("subscribe");
    let sts: Api<StatefulSet> = Api::namespaced(client(&server), "default");
    sts.patch(
        "rec",
        &PatchParams::apply("test"),
        &Patch::Apply(json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "rec"},
            "spec": {"replicas": 3, "serviceName": "rec", "selector": {"matchLabels": {"app": "rec"}},
              "template": {"metadata": {"labels": {"app": "rec"}}, "spec": {"containers": [{"name": "node", "image": "re:1"}]}}}})),
    )
    .await
    .expect("apply");
    let mut added = Vec::new();
    while added.len() < 3 {
        let event = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .expect("pod events in time")
            .expect("event");
        if event.event_type == EventType::Added {
            added.push(
                event
                    .object
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            );
        }
    }
    assert_eq!(
        added,
        vec!["rec-0", "rec-1", "rec-2"],
        "OrderedReady creates pods one after another"
    );
    let pods: Api<Pod> = Api::namespaced(client(&server), "default");
    let ips = eventually("three running pods", Duration::from_secs(10), || {
        let pods = pods.clone();
        async move {
            let mut ips = Vec::new();
            for name in ["rec-0", "rec-1", "rec-2"] {
                let pod = pods.get(name).await.ok()?;
                let status = pod.status?;
                if status.phase.as_deref() != Some("Running") {
                    return None;
                }
                ips.push(status.pod_ip?);
            }
            Some(ips)
        }
    })
    .await;
    assert_eq!(ips, vec!["127.0.0.10", "127.0.0.11", "127.0.0.12"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_is_required_when_configured() {
    let server = start_with(ApiServerOptions {
        token: Some("sandbox-token".into()),
        ..ApiServerOptions::default()
    })
    .await;
    let (code, body) = raw(&server, "GET", "/api/v1/namespaces", "application/json", "").await;
    assert_eq!(code, 401, "{body}");
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client(&server));
    let names: Vec<String> = namespaces
        .list(&Default::default())
        .await
        .expect("list with the token")
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    assert_eq!(names, vec!["default", "kube-public", "kube-system"]);
    assert!(server.kubeconfig_yaml().contains("token: sandbox-token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_methods_and_paths_get_status_errors() {
    let server = start().await;
    let (code, body) = raw(
        &server,
        "POST",
        "/api/v1/namespaces/default/configmaps/named",
        "application/json",
        "{}",
    )
    .await;
    assert_eq!(code, 405, "{body}");
    assert!(body.contains("\"reason\":\"MethodNotAllowed\""), "{body}");
    let (code, body) = raw(&server, "GET", "/apis/nothing.example.com/v1", "application/json", "").await;
    assert_eq!(code, 404, "{body}");
    let (code, body) = raw(
        &server,
        "GET",
        "/api/v1/namespaces/default/configmaps?labelSelector=a%20in%20b",
        "application/json",
        "",
    )
    .await;
    assert_eq!(code, 400, "{body}");
    let (code, body) = raw(
        &server,
        "GET",
        "/api/v1/namespaces/default/configmaps?fieldSelector=metadata.name",
        "application/json",
        "",
    )
    .await;
    assert_eq!(code, 400, "{body}");
    let (code, body) = raw(&server, "GET", "/openapi/v3", "application/json", "").await;
    assert_eq!(code, 200, "{body}");
    let index: Value = serde_json::from_str(&body).expect("index json");
    assert!(
        index
            .pointer("/paths/apis~1test.sandbox.io~1v1/serverRelativeURL")
            .is_some(),
        "{body}"
    );
    let (code, body) = raw(
        &server,
        "GET",
        "/openapi/v3/apis/test.sandbox.io/v1",
        "application/json",
        "",
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let doc: Value = serde_json::from_str(&body).expect("doc json");
    let patch = doc
        .pointer("/paths/~1apis~1test.sandbox.io~1v1~1namespaces~1{namespace}~1widgets~1{name}/patch/parameters")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    assert!(
        patch.iter().any(|p| p.get("name") == Some(&json!("fieldValidation"))),
        "{patch:?}"
    );
    let description = doc
        .pointer("/components/schemas/io.sandbox.test.v1.Widget/properties/spec/properties/size/description")
        .and_then(Value::as_str);
    assert_eq!(description, Some("How many parts the widget has, between 1 and 100."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_api_and_metadata_watcher() {
    let server = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client(&server), "default");
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "meta", "labels": {"a": "b"}}, "data": {"big": "x"}}))
            .expect("cm");
    api.create(&PostParams::default(), &cm).await.expect("create");
    let one = api.get_metadata("meta").await.expect("get_metadata");
    assert_eq!(
        one.metadata.labels.and_then(|l| l.get("a").cloned()).as_deref(),
        Some("b")
    );
    let list = api.list_metadata(&Default::default()).await.expect("list_metadata");
    let names: Vec<String> = list.items.into_iter().filter_map(|m| m.metadata.name).collect();
    assert_eq!(names, vec!["meta"]);
    let (code, body) = raw(
        &server,
        "GET",
        "/api/v1/namespaces/default/configmaps/meta",
        "application/json",
        "",
    )
    .await;
    assert_eq!(code, 200);
    assert!(
        body.contains("\"big\""),
        "full objects without the metadata Accept header: {body}"
    );

    let metadata_api: Api<kube::core::PartialObjectMeta<ConfigMap>> = Api::namespaced(client(&server), "default");
    let (reader, writer) = reflector::store();
    let stream = reflector(writer, watcher(metadata_api, watcher::Config::default()));
    let task = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while stream.next().await.is_some() {}
    });
    api.patch(
        "meta",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"a": "c"}}})),
    )
    .await
    .expect("patch");
    eventually(
        "the metadata watcher to see the label change",
        Duration::from_secs(10),
        || {
            let seen = reader
                .state()
                .iter()
                .any(|m| m.metadata.labels.as_ref().and_then(|l| l.get("a")).map(String::as_str) == Some("c"));
            async move { seen.then_some(()) }
        },
    )
    .await;
    task.abort();
}

#[derive(Debug, thiserror::Error)]
#[error("reconcile failed: {0}")]
struct ReconcileError(#[from] kube::Error);

/// A kube-runtime Controller that owns ConfigMaps runs against the sandbox: it reconciles, its children are
/// applied with owner references, and deleting the parent collects them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_runtime_controller_reconciles_and_owns_children() {
    use super::common::Widget;
    use kube::Resource;
    use kube::runtime::Controller;
    use kube::runtime::controller::Action;

    let server = start().await;
    let widgets: Api<Widget> = Api::namespaced(client(&server), "default");
    let config_maps: Api<ConfigMap> = Api::namespaced(client(&server), "default");
    let reconcile_client = client(&server);
    let controller = Controller::new(widgets.clone(), watcher::Config::default())
        .owns(config_maps.clone(), watcher::Config::default())
        .run(
            move |widget: Arc<Widget>, _ctx: Arc<()>| {
                let client = reconcile_client.clone();
                async move {
                    let name = widget.metadata.name.clone().unwrap_or_default();
                    let owner = widget.controller_owner_ref(&()).into_iter().collect::<Vec<_>>();
                    let child = json!({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": format!("{name}-config"), "ownerReferences": owner},
                        "data": {"size": widget.spec.size.to_string()}});
                    let api: Api<ConfigMap> = Api::namespaced(client, "default");
                    api.patch(
                        &format!("{name}-config"),
                        &PatchParams::apply("widget-controller").force(),
                        &Patch::Apply(child),
                    )
                    .await?;
                    Ok::<_, ReconcileError>(Action::await_change())
                }
            },
            |_widget, _error: &ReconcileError, _ctx| Action::requeue(Duration::from_millis(200)),
            Arc::new(()),
        )
        .for_each(|_| async {});
    let task = tokio::spawn(controller);

    widgets
        .create(
            &PostParams::default(),
            &super::common::Widget::new(
                "ctl",
                super::common::WidgetSpec {
                    size: 2,
                    color: "red".into(),
                    mode: None,
                    ports: Vec::new(),
                },
            ),
        )
        .await
        .expect("create widget");
    eventually("the controller to create the child", Duration::from_secs(15), || {
        let api = config_maps.clone();
        async move {
            let cm = api.get("ctl-config").await.ok()?;
            (cm.data?.get("size").map(String::as_str) == Some("2")).then_some(())
        }
    })
    .await;
    widgets
        .patch(
            "ctl",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 5}})),
        )
        .await
        .expect("change widget");
    eventually("the controller to update the child", Duration::from_secs(15), || {
        let api = config_maps.clone();
        async move {
            let cm = api.get("ctl-config").await.ok()?;
            (cm.data?.get("size").map(String::as_str) == Some("5")).then_some(())
        }
    })
    .await;
    widgets
        .delete("ctl", &DeleteParams::default())
        .await
        .expect("delete widget");
    eventually("the child to be garbage collected", Duration::from_secs(15), || {
        let api = config_maps.clone();
        async move { api.get("ctl-config").await.is_err().then_some(()) }
    })
    .await;
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_handle_stops_the_server() {
    let server = start().await;
    let address = server.address();
    let api: Api<ConfigMap> = Api::namespaced(client(&server), "default");
    api.list(&Default::default()).await.expect("serving before drop");
    drop(server);
    eventually("the port to close", Duration::from_secs(5), || async move {
        tokio::net::TcpStream::connect(address).await.is_err().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_partition_keeps_lower_ordinals() {
    let server = start_with(ApiServerOptions {
        pod_ready_delay: Duration::from_millis(30),
        ..ApiServerOptions::default()
    })
    .await;
    let sts: Api<StatefulSet> = Api::namespaced(client(&server), "default");
    let body = |image: &str| {
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "part"},
            "spec": {"replicas": 2, "serviceName": "part", "selector": {"matchLabels": {"app": "part"}},
              "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}},
              "template": {"metadata": {"labels": {"app": "part"}}, "spec": {"containers": [{"name": "c", "image": image}]}}}})
    };
    sts.patch("part", &PatchParams::apply("test"), &Patch::Apply(body("img:1")))
        .await
        .expect("apply");
    let ready = |generation: i64, updated: i32| {
        let sts = sts.clone();
        move || {
            let sts = sts.clone();
            async move {
                let status = sts.get("part").await.ok()?.status?;
                (status.observed_generation == Some(generation)
                    && status.ready_replicas == Some(2)
                    && status.updated_replicas == Some(updated))
                .then_some(())
            }
        }
    };
    eventually("two ready pods", Duration::from_secs(10), ready(1, 2)).await;
    sts.patch("part", &PatchParams::apply("test"), &Patch::Apply(body("img:2")))
        .await
        .expect("new template");
    eventually("only the partitioned pod updated", Duration::from_secs(10), ready(2, 1)).await;
    let pods: Api<Pod> = Api::namespaced(client(&server), "default");
    let image = |pod: Pod| {
        pod.spec
            .and_then(|s| s.containers.first().and_then(|c| c.image.clone()))
    };
    assert_eq!(
        image(pods.get("part-0").await.expect("pod 0")).as_deref(),
        Some("img:1")
    );
    assert_eq!(
        image(pods.get("part-1").await.expect("pod 1")).as_deref(),
        Some("img:2")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependent_whose_owner_is_gone_is_garbage_collected() {
    let server = start().await;
    let config_maps: Api<ConfigMap> = Api::namespaced(client(&server), "default");
    let orphan: ConfigMap = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "orphan", "ownerReferences": [{
            "apiVersion": "v1", "kind": "ConfigMap", "name": "deleted-owner",
            "uid": "6b1c7c56-0000-4000-8000-000000000000", "controller": true
        }]},
        "data": {"a": "b"}
    }))
    .expect("config map");
    config_maps
        .create(&PostParams::default(), &orphan)
        .await
        .expect("the create itself succeeds");
    eventually(
        "the dependent of a missing owner to be collected",
        Duration::from_secs(5),
        || {
            let api = config_maps.clone();
            async move { api.get_opt("orphan").await.ok()?.is_none().then_some(()) }
        },
    )
    .await;
}
