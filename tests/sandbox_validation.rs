//! The sandbox API server refuses what kube-apiserver refuses, with its status code and message, checked with the
//! real `kubectl`: ObjectMeta rules (labels, annotations, owner references, finalizers), per-kind names, the
//! StatefulSet update rule, Service types and cluster IPs, Secret `type` and `immutable`, EndpointSlices,
//! events.k8s.io notes, quantities in canonical form, pod labels from the workload controller, and the `Status` a
//! deleted custom resource answers.

#[allow(dead_code)]
#[path = "sandbox_apiserver/common.rs"]
mod common;

use std::time::Duration;

use common::{Kubectl, client, eventually, raw, start};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams};
use serde_json::{Value, json};

/// Runs `kubectl create -f` on `object` and returns its stderr, failing the test if it succeeds.
async fn refused_create(kubectl: &Kubectl, object: &Value) -> String {
    let file = kubectl.file("object.json", &object.to_string());
    let out = kubectl.run(&["create", "-f", file.to_str().unwrap_or_default()]).await;
    assert!(!out.success, "kubectl create should fail for {object}: {}", out.stdout);
    out.stderr
}

async fn create(kubectl: &Kubectl, object: &Value) {
    let file = kubectl.file("object.json", &object.to_string());
    kubectl.ok(&["create", "-f", file.to_str().unwrap_or_default()]).await;
}

async fn refused_patch(kubectl: &Kubectl, what: &[&str], patch: &Value) -> String {
    let patch = patch.to_string();
    let mut args = vec!["patch"];
    args.extend_from_slice(what);
    args.extend_from_slice(&["--type", "merge", "-p", &patch]);
    let out = kubectl.run(&args).await;
    assert!(!out.success, "kubectl patch should fail: {}", out.stdout);
    out.stderr
}

fn configmap(metadata: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {"k": "v"}})
}

fn statefulset(name: &str, storage: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name},
        "spec": {"replicas": 1, "serviceName": name, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "redis",
                    "resources": {"requests": {"cpu": "4000m", "memory": "4096Mi"}}}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": storage}}}}]}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_metadata_is_validated_on_every_write() {
    let server = start().await;
    let kubectl = Kubectl::new(&server);

    let long = "v".repeat(64);
    let err = refused_create(&kubectl, &configmap(json!({"name": "a", "labels": {"team": long}}))).await;
    assert!(
        err.contains(&format!(
            "The ConfigMap \"a\" is invalid: metadata.labels: Invalid value: \"{long}\": must be no more than 63 characters"
        )),
        "{err}"
    );
    let err = refused_create(&kubectl, &configmap(json!({"name": "a", "labels": {"a b": "x"}}))).await;
    assert!(
        err.contains("metadata.labels: Invalid value: \"a b\": name part must consist of alphanumeric characters"),
        "{err}"
    );
    let err = refused_create(&kubectl, &configmap(json!({"name": "a", "labels": {"k": "a/b"}}))).await;
    assert!(
        err.contains("a valid label must be an empty string or consist of alphanumeric characters"),
        "{err}"
    );
    let big = "x".repeat(256 * 1024);
    let err = refused_create(&kubectl, &configmap(json!({"name": "a", "annotations": {"big": big}}))).await;
    assert!(
        err.contains("metadata.annotations: Too long: may not be more than 262144 bytes"),
        "{err}"
    );
    let owner = |name: &str, uid: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "name": name, "uid": uid, "controller": true});
    let err = refused_create(
        &kubectl,
        &configmap(json!({"name": "a", "ownerReferences": [owner("one", "1"), owner("two", "2")]})),
    )
    .await;
    assert!(
        err.contains(
            "Only one reference can have Controller set to true. Found \"true\" in references for ConfigMap/one and ConfigMap/two"
        ),
        "{err}"
    );
    let err = refused_create(&kubectl, &configmap(json!({"name": "a", "finalizers": ["not valid"]}))).await;
    assert!(
        err.contains("metadata.finalizers: Invalid value: \"not valid\""),
        "{err}"
    );

    // The same rules hold on update, and on custom resources.
    create(
        &kubectl,
        &configmap(json!({"name": "ok", "labels": {"app.kubernetes.io/name": "x"}})),
    )
    .await;
    let err = refused_patch(
        &kubectl,
        &["configmap", "ok"],
        &json!({"metadata": {"labels": {"bad key": "v"}}}),
    )
    .await;
    assert!(
        err.contains("The ConfigMap \"ok\" is invalid: metadata.labels: Invalid value: \"bad key\""),
        "{err}"
    );
    let widget = json!({"apiVersion": "test.sandbox.io/v1", "kind": "Widget",
        "metadata": {"name": "w", "labels": {"k": long}}, "spec": {"size": 1, "color": "red"}});
    let err = refused_create(&kubectl, &widget).await;
    assert!(err.contains("metadata.labels: Invalid value"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_follow_their_name_type_and_cluster_ip_rules() {
    let server = start().await;
    let kubectl = Kubectl::new(&server);
    let service = |name: &str, spec: Value| json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec});

    let err = refused_create(&kubectl, &service("1orders", json!({"ports": [{"port": 6379}]}))).await;
    assert!(
        err.contains(
            "The Service \"1orders\" is invalid: metadata.name: Invalid value: \"1orders\": a DNS-1035 label must consist \
             of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an \
             alphanumeric character"
        ),
        "{err}"
    );
    let long = format!("{}-load-balancer", "a".repeat(50));
    let err = refused_create(&kubectl, &service(&long, json!({"ports": [{"port": 6379}]}))).await;
    assert!(err.contains("must be no more than 63 characters"), "{err}");
    let err = refused_create(&kubectl, &service("ext", json!({"type": "ExternalName"}))).await;
    assert!(
        err.contains("The Service \"ext\" is invalid: spec.externalName: Required value"),
        "{err}"
    );
    let err = refused_create(&kubectl, &service("noports", json!({}))).await;
    assert!(err.contains("spec.ports: Required value"), "{err}");
    let err = refused_create(&kubectl, &service("two", json!({"ports": [{"port": 1}, {"port": 2}]}))).await;
    assert!(err.contains("spec.ports[0].name: Required value"), "{err}");

    create(
        &kubectl,
        &service("ext", json!({"type": "ExternalName", "externalName": "db.example.com"})),
    )
    .await;
    let ip = kubectl
        .ok(&["get", "service", "ext", "-o", "jsonpath={.spec.clusterIP}"])
        .await;
    assert_eq!(ip, "", "an ExternalName Service gets no cluster IP");

    create(&kubectl, &service("db", json!({"ports": [{"port": 6379}]}))).await;
    let ip = kubectl
        .ok(&["get", "service", "db", "-o", "jsonpath={.spec.clusterIP}"])
        .await;
    assert!(ip.starts_with("10.96."), "{ip}");
    // An update that leaves the cluster IP out keeps it; changing it is refused.
    let db = kubectl.ok(&["get", "service", "db", "-o", "json"]).await;
    let mut db: Value = serde_json::from_str(&db).unwrap_or(Value::Null);
    if let Some(spec) = db["spec"].as_object_mut() {
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
    }
    let file = kubectl.file("db.json", &db.to_string());
    kubectl.ok(&["replace", "-f", file.to_str().unwrap_or_default()]).await;
    let kept = kubectl
        .ok(&["get", "service", "db", "-o", "jsonpath={.spec.clusterIP}"])
        .await;
    assert_eq!(kept, ip);
    let err = refused_patch(
        &kubectl,
        &["service", "db"],
        &json!({"spec": {"clusterIP": "None", "clusterIPs": ["None"]}}),
    )
    .await;
    assert!(
        err.contains(
            "The Service \"db\" is invalid: spec.clusterIPs[0]: Invalid value: [\"None\"]: may not change once set"
        ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulset_updates_touch_only_the_mutable_fields_and_quantities_are_canonical() {
    let server = start().await;
    let kubectl = Kubectl::new(&server);
    create(&kubectl, &statefulset("web", "20480Mi")).await;
    let stored = kubectl.ok(&["get", "statefulset", "web", "-o", "json"]).await;
    let stored: Value = serde_json::from_str(&stored).unwrap_or(Value::Null);
    assert_eq!(
        stored.pointer("/spec/template/spec/containers/0/resources/requests"),
        Some(&json!({"cpu": "4", "memory": "4Gi"})),
        "{stored}"
    );
    assert_eq!(
        stored.pointer("/spec/volumeClaimTemplates/0/spec/resources/requests/storage"),
        Some(&json!("20Gi"))
    );

    kubectl.ok(&["scale", "statefulset", "web", "--replicas=2"]).await;
    let err = refused_patch(
        &kubectl,
        &["statefulset", "web"],
        &json!({"spec": {"volumeClaimTemplates": [{"metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "40Gi"}}}}]}}),
    )
    .await;
    assert!(
        err.contains(
            "The StatefulSet \"web\" is invalid: spec: Forbidden: updates to statefulset spec for fields other than \
             'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', \
             'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
        ),
        "{err}"
    );
    let err = refused_patch(
        &kubectl,
        &["statefulset", "web"],
        &json!({"spec": {"serviceName": "other"}}),
    )
    .await;
    assert!(err.contains("spec: Forbidden: updates to statefulset spec"), "{err}");
    let bad = kubectl
        .run(&[
            "patch",
            "statefulset",
            "web",
            "--type",
            "json",
            "-p",
            r#"[{"op":"replace","path":"/spec/template/spec/containers/0/resources/requests/cpu","value":"lots"}]"#,
        ])
        .await;
    assert!(!bad.success);
    assert!(
        bad.stderr.contains("quantities must match the regular expression"),
        "{}",
        bad.stderr
    );

    // A claim request of a bound PVC may grow, never shrink; the rest of its spec is frozen.
    let claims: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> = Api::namespaced(client(&server), "default");
    eventually("the claim of web-0", Duration::from_secs(20), || {
        let claims = claims.clone();
        async move { claims.get_opt("data-web-0").await.ok().flatten() }
    })
    .await;
    kubectl
        .ok(&[
            "patch",
            "pvc",
            "data-web-0",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"resources":{"requests":{"storage":"40Gi"}}}}"#,
        ])
        .await;
    let err = refused_patch(
        &kubectl,
        &["pvc", "data-web-0"],
        &json!({"spec": {"resources": {"requests": {"storage": "1Gi"}}}}),
    )
    .await;
    assert!(
        err.contains("spec.resources.requests.storage: Forbidden: field can not be less than previous value"),
        "{err}"
    );
    let err = refused_patch(
        &kubectl,
        &["pvc", "data-web-0"],
        &json!({"spec": {"storageClassName": "fast"}}),
    )
    .await;
    assert!(
        err.contains("spec: Forbidden: spec is immutable after creation"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphaned_pods_are_adopted_and_long_names_fail_pod_creation() {
    let server = start().await;
    let kubectl = Kubectl::new(&server);
    let pods: Api<Pod> = Api::namespaced(client(&server), "default");
    create(&kubectl, &statefulset("web", "1Gi")).await;
    let first = eventually("pod web-0", Duration::from_secs(20), || {
        let pods = pods.clone();
        async move { pods.get_opt("web-0").await.ok().flatten() }
    })
    .await;
    kubectl.ok(&["delete", "statefulset", "web", "--cascade=orphan"]).await;
    create(&kubectl, &statefulset("web", "2Gi")).await;
    let sets: Api<StatefulSet> = Api::namespaced(client(&server), "default");
    let new_uid = sets
        .get("web")
        .await
        .ok()
        .and_then(|s| s.metadata.uid)
        .unwrap_or_default();
    let adopted = eventually("web-0 adopted by the new StatefulSet", Duration::from_secs(20), || {
        let pods = pods.clone();
        let new_uid = new_uid.clone();
        async move {
            let pod = pods.get_opt("web-0").await.ok().flatten()?;
            pod.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|r| r.uid == new_uid && r.controller == Some(true))
                .then_some(pod)
        }
    })
    .await;
    assert_eq!(
        adopted.metadata.uid, first.metadata.uid,
        "the running pod is kept, not replaced"
    );

    // The controller-revision-hash label is <name>-<10 characters>: a 53-character name makes it 64.
    let name = format!("a{}", "b".repeat(52));
    create(&kubectl, &statefulset(&name, "1Gi")).await;
    let events: Api<Event> = Api::namespaced(client(&server), "default");
    let event = eventually("the FailedCreate event", Duration::from_secs(20), || {
        let events = events.clone();
        let name = name.clone();
        async move {
            let listed = events.list(&ListParams::default()).await.ok()?;
            listed.items.into_iter().find(|e| {
                e.reason.as_deref() == Some("FailedCreate") && e.involved_object.name.as_deref() == Some(&name)
            })
        }
    })
    .await;
    let message = event.message.unwrap_or_default();
    assert!(
        message.contains(&format!(
            "create Pod {name}-0 in StatefulSet {name} failed error: Pod \"{name}-0\" is invalid"
        )) && message.contains("metadata.labels: Invalid value")
            && message.contains("must be no more than 63 characters"),
        "{message}"
    );
    assert!(pods.get_opt(&format!("{name}-0")).await.ok().flatten().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_keep_their_type_and_immutable_ones_their_data() {
    let server = start().await;
    let kubectl = Kubectl::new(&server);
    kubectl
        .ok(&["create", "secret", "generic", "creds", "--from-literal=password=p"])
        .await;
    let err = refused_patch(
        &kubectl,
        &["secret", "creds"],
        &json!({"type": "kubernetes.io/basic-auth"}),
    )
    .await;
    assert!(
        err.contains(
            "The Secret \"creds\" is invalid: type: Invalid value: \"kubernetes.io/basic-auth\": field is immutable"
        ),
        "{err}"
    );
    let frozen = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "frozen"}, "immutable": true,
        "stringData": {"password": "p"}});
    create(&kubectl, &frozen).await;
    let err = refused_patch(
        &kubectl,
        &["secret", "frozen"],
        &json!({"stringData": {"password": "q"}}),
    )
    .await;
    assert!(
        err.contains("data: Forbidden: field is immutable when `immutable` is set"),
        "{err}"
    );
    let tls = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tls"}, "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": "x"}});
    let err = refused_create(&kubectl, &tls).await;
    assert!(err.contains("data[tls.key]: Required value"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_slices_and_events_are_validated() {
    let server = start().await;
    let kubectl = Kubectl::new(&server);
    let slice = |endpoints: Value| {
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "db"},
            "addressType": "IPv4", "endpoints": endpoints, "ports": [{"name": "redis", "port": 6379}]})
    };
    let err = refused_create(&kubectl, &slice(json!([{"addresses": ["not-an-ip"]}]))).await;
    assert!(
        err.contains("endpoints[0].addresses[0]: Invalid value: \"not-an-ip\": must be a valid IPv4 address"),
        "{err}"
    );
    let err = refused_create(&kubectl, &slice(json!([{"addresses": []}]))).await;
    assert!(
        err.contains("endpoints[0].addresses: Required value: must contain at least 1 address"),
        "{err}"
    );
    create(
        &kubectl,
        &slice(json!([{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}])),
    )
    .await;

    let event = |note: String, reason: &str| {
        json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e1"},
            "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "redis-gitops",
            "reportingInstance": "agent-0", "action": "Reconcile", "reason": reason, "type": "Normal",
            "regarding": {"kind": "ConfigMap", "name": "c", "namespace": "default"}, "note": note})
    };
    let err = refused_create(&kubectl, &event("é".repeat(513), "Synced")).await;
    assert!(
        err.contains("message: Invalid value: \"\": can have at most 1024 characters"),
        "{err}"
    );
    let err = refused_create(&kubectl, &event("ok".into(), &"R".repeat(129))).await;
    assert!(
        err.contains("reason: Invalid value: \"\": can have at most 128 characters"),
        "{err}"
    );
    create(&kubectl, &event("é".repeat(512), "Synced")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_custom_resource_answers_a_status() {
    let server = start().await;
    let kubectl = Kubectl::new(&server);
    create(
        &kubectl,
        &json!({"apiVersion": "test.sandbox.io/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1, "color": "red"}}),
    )
    .await;
    let uid = kubectl
        .ok(&["get", "widget", "w", "-o", "jsonpath={.metadata.uid}"])
        .await;
    let (code, body) = raw(
        &server,
        "DELETE",
        "/apis/test.sandbox.io/v1/namespaces/default/widgets/w",
        "application/json",
        "",
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    assert_eq!(
        body,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": {"name": "w", "group": "test.sandbox.io", "kind": "widgets", "uid": uid}})
    );
}
