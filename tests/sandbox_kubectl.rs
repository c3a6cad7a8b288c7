//! What kubectl users do against the sandbox API server, with the real `kubectl`: imperative `kubectl create`
//! (protobuf request bodies) and events through both events APIs.

#[allow(dead_code)]
#[path = "sandbox_apiserver/common.rs"]
mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::{Kubectl, client, raw, start, start_with};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use redis_gitops_sandbox::apiserver::ApiServerOptions;
use serde_json::json;

/// The 415 kube-apiserver answers for a body in a media type it does not decode.
const UNSUPPORTED_MEDIA: &str = "the body of the request was in an unknown format - accepted media types include: \
                                 application/json, application/yaml";

fn bytes(data: &Option<BTreeMap<String, ByteString>>, key: &str) -> Option<Vec<u8>> {
    data.as_ref().and_then(|d| d.get(key)).map(|b| b.0.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_create_secret_generic_and_tls() {
    let server = start().await;
    let kubectl = Kubectl::new(&server);
    let secrets: Api<Secret> = Api::namespaced(client(&server), "default");

    let out = kubectl
        .ok(&[
            "create",
            "secret",
            "generic",
            "git-credentials",
            "--from-literal=username=git",
            "--from-literal=password=s3cret with spaces",
        ])
        .await;
    assert_eq!(out.trim(), "secret/git-credentials created");
    let secret = secrets.get("git-credentials").await.expect("the Secret is stored");
    assert_eq!(bytes(&secret.data, "username"), Some(b"git".to_vec()));
    assert_eq!(bytes(&secret.data, "password"), Some(b"s3cret with spaces".to_vec()));
    assert_eq!(secret.type_.as_deref(), Some("Opaque"), "an empty type is defaulted");
    assert!(secret.metadata.uid.is_some() && secret.metadata.creation_timestamp.is_some());
    let listed = kubectl.ok(&["get", "secret", "git-credentials"]).await;
    let row = listed.lines().nth(1).unwrap_or_default().to_string();
    assert!(
        row.starts_with("git-credentials") && row.contains("Opaque") && row.split_whitespace().nth(2) == Some("2"),
        "{listed}"
    );
    let username = kubectl
        .ok(&["get", "secret", "git-credentials", "-o", "jsonpath={.data.username}"])
        .await;
    assert_eq!(username, "Z2l0");

    let cert = kubectl.dir.path().join("tls.crt");
    let key = kubectl.dir.path().join("tls.key");
    let openssl = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=db.example",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(openssl.status.success(), "{}", String::from_utf8_lossy(&openssl.stderr));
    let out = kubectl
        .ok(&[
            "create",
            "secret",
            "tls",
            "db-tls",
            "--cert",
            &cert.display().to_string(),
            "--key",
            &key.display().to_string(),
        ])
        .await;
    assert_eq!(out.trim(), "secret/db-tls created");
    let secret = secrets.get("db-tls").await.expect("the TLS Secret is stored");
    assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
    assert_eq!(bytes(&secret.data, "tls.crt"), std::fs::read(&cert).ok());
    assert_eq!(bytes(&secret.data, "tls.key"), std::fs::read(&key).ok());

    // The same name again is the API server's AlreadyExists, as for JSON.
    let again = kubectl
        .run(&["create", "secret", "generic", "git-credentials", "--from-literal=a=b"])
        .await;
    assert!(!again.success);
    assert!(
        again.stderr.contains("secrets \"git-credentials\" already exists"),
        "{}",
        again.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_create_namespace_configmap_and_serviceaccount() {
    let server = start().await;
    let kubectl = Kubectl::new(&server);

    let out = kubectl.ok(&["create", "namespace", "team-a"]).await;
    assert_eq!(out.trim(), "namespace/team-a created");
    let namespace = Api::<Namespace>::all(client(&server))
        .get("team-a")
        .await
        .expect("the Namespace is stored");
    assert_eq!(namespace.status.and_then(|s| s.phase).as_deref(), Some("Active"));
    let phase = kubectl
        .ok(&["get", "namespace", "team-a", "-o", "jsonpath={.status.phase}"])
        .await;
    assert_eq!(phase, "Active");

    let text = kubectl.file("app.conf", "mode = fast\n");
    let binary = kubectl.dir.path().join("blob.bin");
    std::fs::write(&binary, [0u8, 159, 146, 150, 255]).expect("binary file written");
    let out = kubectl
        .ok(&[
            "create",
            "configmap",
            "settings",
            "-n",
            "team-a",
            "--from-literal=replicas=3",
            &format!("--from-file={}", text.display()),
            &format!("--from-file={}", binary.display()),
        ])
        .await;
    assert_eq!(out.trim(), "configmap/settings created");
    let config_map = Api::<ConfigMap>::namespaced(client(&server), "team-a")
        .get("settings")
        .await
        .expect("the ConfigMap is stored");
    assert_eq!(
        config_map.data,
        Some(BTreeMap::from([
            ("app.conf".to_string(), "mode = fast\n".to_string()),
            ("replicas".to_string(), "3".to_string()),
        ]))
    );
    assert_eq!(
        bytes(&config_map.binary_data, "blob.bin"),
        Some(vec![0u8, 159, 146, 150, 255])
    );
    let literal = kubectl
        .ok(&[
            "get",
            "configmap",
            "settings",
            "-n",
            "team-a",
            "-o",
            "jsonpath={.data.replicas}",
        ])
        .await;
    assert_eq!(literal, "3");

    let out = kubectl.ok(&["create", "serviceaccount", "agent", "-n", "team-a"]).await;
    assert_eq!(out.trim(), "serviceaccount/agent created");
    let account = Api::<ServiceAccount>::namespaced(client(&server), "team-a")
        .get("agent")
        .await
        .expect("the ServiceAccount is stored");
    assert_eq!(account.metadata.namespace.as_deref(), Some("team-a"));
    let listed = kubectl.ok(&["get", "serviceaccounts", "-n", "team-a"]).await;
    assert!(listed.lines().any(|l| l.starts_with("agent ")), "{listed}");

    // A namespace that does not exist is the API server's NotFound, as for JSON.
    let missing = kubectl.run(&["create", "configmap", "x", "-n", "nowhere"]).await;
    assert!(!missing.success);
    assert!(
        missing.stderr.contains("namespaces \"nowhere\" not found"),
        "{}",
        missing.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_bodies_the_sandbox_does_not_decode_get_the_upstream_answers() {
    let server = start().await;
    let kubectl = Kubectl::new(&server);

    // A kind without a conversion (kubectl create deployment sends an apps/v1 Deployment) is refused with 415.
    let deployment = kubectl.run(&["create", "deployment", "web", "--image=nginx:1"]).await;
    assert!(!deployment.success);
    assert!(
        deployment
            .stderr
            .contains(&format!("failed to create deployment: {UNSUPPORTED_MEDIA}")),
        "{}",
        deployment.stderr
    );
    let (code, body) = raw(
        &server,
        "POST",
        "/apis/apps/v1/namespaces/default/deployments",
        "application/x-protobuf",
        "\u{8}\u{1}",
    )
    .await;
    assert_eq!(code, 415, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).expect("a Status");
    assert_eq!(status["reason"], "UnsupportedMediaType");
    assert_eq!(status["message"], UNSUPPORTED_MEDIA);

    // A body without the `k8s\0` prefix gets the upstream serializer's message.
    let (code, body) = raw(
        &server,
        "POST",
        "/api/v1/namespaces/default/secrets",
        "application/vnd.kubernetes.protobuf",
        "{\"kind\":\"Secret\"}",
    )
    .await;
    assert_eq!(code, 400, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).expect("a Status");
    assert_eq!(status["reason"], "BadRequest");
    assert_eq!(
        status["message"],
        "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]"
    );
    let names = kubectl.ok(&["get", "secrets", "-o", "name"]).await;
    assert_eq!(names.trim(), "", "nothing was stored");
}

const REDB_YAML: &str = "apiVersion: app.redislabs.com/v1alpha1
kind: RedisEnterpriseDatabase
metadata:
  name: cache
  namespace: default
spec:
  memorySize: 100MB
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_written_through_events_k8s_io_show_in_kubectl_get_events_and_describe() {
    let server = start_with(ApiServerOptions {
        crds: redis_gitops::api::crds(),
        ..Default::default()
    })
    .await;
    let kubectl = Kubectl::new(&server);
    let file = kubectl.file("redb.yaml", REDB_YAML);
    kubectl.ok(&["apply", "-f", &file.display().to_string()]).await;
    let gvk = GroupVersionKind::gvk("app.redislabs.com", "v1alpha1", "RedisEnterpriseDatabase");
    let databases: Api<DynamicObject> = Api::namespaced_with(client(&server), "default", &ApiResource::from_gvk(&gvk));
    let database = databases.get("cache").await.expect("the REDB is stored");
    let reference = kube::Resource::object_ref(&database, &ApiResource::from_gvk(&gvk));
    assert!(reference.uid.is_some(), "describe matches on the uid");

    // As the agent's controllers record: kube-runtime's Recorder writes events.k8s.io/v1 (then a series patch).
    let recorder = Recorder::new(
        client(&server),
        Reporter {
            controller: "redis-gitops-database".into(),
            instance: None,
        },
    );
    let event = Event {
        type_: EventType::Normal,
        reason: "DatabaseCreated".into(),
        note: Some("created database cache (uid 1) on cluster rec".into()),
        action: "Create".into(),
        secondary: None,
    };
    recorder.publish(&event, &reference).await.expect("event recorded");
    recorder
        .publish(&event, &reference)
        .await
        .expect("event recorded again");
    let warning = Event {
        type_: EventType::Warning,
        reason: "ReconcileFailed".into(),
        note: Some("unable to reach the cluster's REST API".into()),
        action: "Reconcile".into(),
        secondary: None,
    };
    recorder.publish(&warning, &reference).await.expect("warning recorded");

    let listed = kubectl.ok(&["get", "events"]).await;
    let header: Vec<&str> = listed.lines().next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(
        header,
        ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
        "{listed}"
    );
    let created = listed
        .lines()
        .find(|l| l.contains("DatabaseCreated"))
        .unwrap_or_default()
        .to_string();
    assert!(
        created.contains("Normal")
            && created.contains("redisenterprisedatabase/cache")
            && created.ends_with("created database cache (uid 1) on cluster rec"),
        "{listed}"
    );
    assert!(
        listed.lines().any(|l| l.contains("Warning")
            && l.contains("ReconcileFailed")
            && l.contains("unable to reach the cluster's REST API")),
        "{listed}"
    );
    let wide = kubectl.ok(&["get", "events", "-o", "wide"]).await;
    let wide_row = wide
        .lines()
        .find(|l| l.contains("DatabaseCreated"))
        .unwrap_or_default()
        .to_string();
    assert!(
        wide.lines()
            .next()
            .is_some_and(|h| h.contains("SOURCE") && h.contains("COUNT"))
            && wide_row.contains("redis-gitops-database")
            && wide_row.split_whitespace().any(|cell| cell == "2"),
        "{wide}"
    );

    let selected = kubectl
        .ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=cache,type=Warning",
        ])
        .await;
    assert_eq!(selected.lines().count(), 2, "{selected}");
    assert!(selected.contains("ReconcileFailed"), "{selected}");
    let none = kubectl
        .run(&["get", "events", "--field-selector", "involvedObject.name=other"])
        .await;
    assert!(none.success && none.stdout.is_empty(), "{none:?}");
    assert!(
        none.stderr.contains("No resources found in default namespace."),
        "{none:?}"
    );

    // kubectl describe lists core/v1 events with involvedObject.{name,namespace,kind,uid} in any order.
    let described = kubectl.ok(&["describe", "redb", "cache"]).await;
    let events_section = described.split("Events:").nth(1).unwrap_or_default().to_string();
    let created = events_section
        .lines()
        .find(|l| l.contains("DatabaseCreated"))
        .unwrap_or_default()
        .to_string();
    assert!(
        created.contains("Normal")
            && created.contains("(x2 over")
            && created.contains("redis-gitops-database")
            && created.contains("created database cache (uid 1) on cluster rec"),
        "{described}"
    );
    assert!(events_section.contains("ReconcileFailed"), "{described}");
    let uid = reference.uid.clone().unwrap_or_default();
    for selector in [
        format!("involvedObject.uid={uid},involvedObject.kind=RedisEnterpriseDatabase,involvedObject.name=cache"),
        format!("involvedObject.namespace=default,involvedObject.name=cache,involvedObject.uid={uid}"),
    ] {
        let out = kubectl
            .ok(&["get", "events", "--field-selector", &selector, "-o", "name"])
            .await;
        assert_eq!(out.lines().count(), 2, "{selector}: {out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_core_v1_event_reads_back_through_events_k8s_io() {
    let server = start().await;
    let core: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client(&server), "default");
    let written: k8s_openapi::api::core::v1::Event = serde_json::from_value(json!({
        "metadata": {"name": "settings.1"},
        "involvedObject": {"kind": "ConfigMap", "name": "settings", "namespace": "default", "uid": "u-1"},
        "reason": "Updated", "message": "settings changed", "type": "Normal",
        "source": {"component": "legacy-recorder", "host": "node-1"},
        "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:01:00Z", "count": 4,
    }))
    .expect("a core/v1 Event");
    core.create(&PostParams::default(), &written)
        .await
        .expect("created through core/v1");

    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client(&server), "default");
    let read = events.get("settings.1").await.expect("read through events.k8s.io/v1");
    assert_eq!(
        read.regarding.as_ref().and_then(|r| r.name.as_deref()),
        Some("settings")
    );
    assert_eq!(read.regarding.as_ref().and_then(|r| r.uid.as_deref()), Some("u-1"));
    assert_eq!(read.note.as_deref(), Some("settings changed"));
    assert_eq!(read.reason.as_deref(), Some("Updated"));
    assert_eq!(read.deprecated_count, Some(4));
    let source = read.deprecated_source.clone().unwrap_or_default();
    assert_eq!(
        (source.component.as_deref(), source.host.as_deref()),
        (Some("legacy-recorder"), Some("node-1"))
    );
    assert!(read.deprecated_last_timestamp.is_some() && read.deprecated_first_timestamp.is_some());

    // events.k8s.io's own selector labels.
    let by_regarding = events
        .list(&ListParams::default().fields("regarding.name=settings,source=legacy-recorder"))
        .await
        .expect("list by regarding.name");
    assert_eq!(by_regarding.items.len(), 1);
    let other = events
        .list(&ListParams::default().fields("regarding.name=other"))
        .await
        .expect("list by another name");
    assert!(other.items.is_empty());

    let kubectl = Kubectl::new(&server);
    let listed = kubectl.ok(&["get", "events"]).await;
    assert!(
        listed
            .lines()
            .any(|l| l.contains("configmap/settings") && l.contains("Updated") && l.ends_with("settings changed")),
        "{listed}"
    );
}
