//! The real `kubectl` against the sandbox API server: get, get -o yaml, client-side and server-side apply,
//! describe, delete, printer columns, explain, and get -w.

use std::time::Duration;

use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use tokio::io::AsyncBufReadExt;

use super::common::{Kubectl, Widget, client, start};

const WIDGET_YAML: &str = "apiVersion: test.sandbox.io/v1
kind: Widget
metadata:
  name: alpha
spec:
  size: 3
  color: green
";

const CONFIGMAP_YAML: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  labels:
    app: demo
data:
  mode: fast
";

const STATEFULSET_YAML: &str = "apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  replicas: 1
  serviceName: web
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: main
        image: nginx:1
        env:
        - name: A
          value: \"1\"
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_apply_describe_delete() {
    let server = start().await;
    let kubectl = Kubectl::new(&server);

    let namespaces = kubectl.ok(&["get", "namespaces"]).await;
    assert!(
        namespaces.contains("NAME") && namespaces.contains("STATUS"),
        "{namespaces}"
    );
    assert!(
        namespaces
            .lines()
            .any(|l| l.starts_with("default ") && l.contains("Active")),
        "{namespaces}"
    );

    let file = kubectl.file("cm.yaml", CONFIGMAP_YAML);
    let out = kubectl.ok(&["apply", "-f", &file.display().to_string()]).await;
    assert_eq!(out.trim(), "configmap/settings created");
    let changed = kubectl.file(
        "cm2.yaml",
        &CONFIGMAP_YAML.replace("mode: fast", "mode: slow\n  extra: more"),
    );
    // kubectl diff computes the change with a server-side dry run, which must not store anything.
    let diff = kubectl.run(&["diff", "-f", &changed.display().to_string()]).await;
    assert!(
        diff.stdout.contains("-  mode: fast") && diff.stdout.contains("+  mode: slow"),
        "{diff:?}"
    );
    let still = kubectl
        .ok(&["get", "configmap", "settings", "-o", "jsonpath={.data.mode}"])
        .await;
    assert_eq!(still, "fast");
    let out = kubectl.ok(&["apply", "-f", &changed.display().to_string()]).await;
    assert_eq!(out.trim(), "configmap/settings configured");
    let out = kubectl.ok(&["apply", "-f", &changed.display().to_string()]).await;
    assert_eq!(out.trim(), "configmap/settings unchanged");

    let yaml = kubectl.ok(&["get", "configmap", "settings", "-o", "yaml"]).await;
    assert!(yaml.contains("mode: slow") && yaml.contains("extra: more"), "{yaml}");
    assert!(
        yaml.contains("kubectl.kubernetes.io/last-applied-configuration"),
        "{yaml}"
    );
    let json_out = kubectl.ok(&["get", "configmap", "settings", "-o", "json"]).await;
    let parsed: serde_json::Value = serde_json::from_str(&json_out).expect("kubectl -o json");
    assert_eq!(parsed.pointer("/data/mode"), Some(&json!("slow")));

    let sts = kubectl.file("sts.yaml", STATEFULSET_YAML);
    let out = kubectl.ok(&["apply", "-f", &sts.display().to_string()]).await;
    assert_eq!(out.trim(), "statefulset.apps/web created");
    // A client-side apply of a built-in kind is a strategic merge patch keyed by container and env names.
    let sts2 = kubectl.file(
        "sts2.yaml",
        &STATEFULSET_YAML.replace(
            "value: \"1\"",
            "value: \"2\"\n        - name: B\n          value: \"3\"",
        ),
    );
    let out = kubectl.ok(&["apply", "-f", &sts2.display().to_string()]).await;
    assert_eq!(out.trim(), "statefulset.apps/web configured");
    let env = kubectl
        .ok(&[
            "get",
            "sts",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].env[*].value}",
        ])
        .await;
    assert_eq!(env.trim(), "2 3");

    let rollout = kubectl
        .ok(&["rollout", "status", "statefulset/web", "--timeout=30s"])
        .await;
    assert!(
        rollout.contains("roll out complete") || rollout.contains("rolling update complete"),
        "{rollout}"
    );
    let out = kubectl.ok(&["scale", "statefulset", "web", "--replicas=2"]).await;
    assert_eq!(out.trim(), "statefulset.apps/web scaled");
    let rollout = kubectl
        .ok(&["rollout", "status", "statefulset/web", "--timeout=30s"])
        .await;
    assert!(
        rollout.contains("2 new pods have been updated") || rollout.contains("complete"),
        "{rollout}"
    );
    let waited = kubectl
        .ok(&["wait", "--for=condition=Ready", "pod/web-1", "--timeout=30s"])
        .await;
    assert_eq!(waited.trim(), "pod/web-1 condition met");
    let pods = kubectl.ok(&["get", "pods", "-o", "wide"]).await;
    assert!(pods.lines().any(|l| l.starts_with("web-1")), "{pods}");
    let pod_line = pods
        .lines()
        .find(|l| l.starts_with("web-0"))
        .unwrap_or_default()
        .to_string();
    assert!(
        pod_line.contains("1/1") && pod_line.contains("Running") && pod_line.contains("127.0.0.1"),
        "{pods}"
    );
    let described = kubectl.ok(&["describe", "statefulset", "web"]).await;
    assert!(
        described.contains("Replicas:") && described.contains("2 Running"),
        "{described}"
    );
    let described = kubectl.ok(&["describe", "pod", "web-0"]).await;
    assert!(
        described.contains("Controlled By:  StatefulSet/web") && described.contains("Running"),
        "{described}"
    );

    // Typed kubectl generators send protobuf; kinds the sandbox does not decode get kube-apiserver's 415
    // (tests/sandbox_kubectl.rs covers the kinds it decodes).
    let typed = kubectl
        .run(&["create", "deployment", "scratch", "--image=nginx:1"])
        .await;
    assert!(!typed.success);
    assert!(
        typed
            .stderr
            .contains("the body of the request was in an unknown format"),
        "{}",
        typed.stderr
    );
    let ns = kubectl.file(
        "ns.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: scratch\n",
    );
    kubectl.ok(&["create", "-f", &ns.display().to_string()]).await;
    let inside = kubectl.file(
        "inside.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: inside\n  namespace: scratch\ndata:\n  a: b\n",
    );
    kubectl.ok(&["apply", "-f", &inside.display().to_string()]).await;
    let out = kubectl.ok(&["delete", "namespace", "scratch", "--timeout=20s"]).await;
    assert_eq!(out.trim(), "namespace \"scratch\" deleted");
    let gone = kubectl.run(&["get", "configmap", "inside", "-n", "scratch"]).await;
    assert!(!gone.success, "the namespace's content is deleted with it");

    let described = kubectl.ok(&["describe", "configmap", "settings"]).await;
    assert!(
        described.contains("Name:") && described.contains("settings") && described.contains("app=demo"),
        "{described}"
    );

    let ssa = kubectl.file("ssa.yaml", &CONFIGMAP_YAML.replace("settings", "applied"));
    let out = kubectl
        .ok(&["apply", "--server-side", "-f", &ssa.display().to_string()])
        .await;
    assert_eq!(out.trim(), "configmap/applied serverside-applied");
    // Moving an object from client-side to server-side apply: kubectl rewrites the client-side ownership,
    // so changing a value it applied before does not conflict.
    let moved = kubectl.file("moved.yaml", &CONFIGMAP_YAML.replace("mode: fast", "mode: moved"));
    let out = kubectl
        .ok(&["apply", "--server-side", "-f", &moved.display().to_string()])
        .await;
    assert_eq!(out.trim(), "configmap/settings serverside-applied");
    let mode = kubectl
        .ok(&["get", "configmap", "settings", "-o", "jsonpath={.data.mode}"])
        .await;
    assert_eq!(mode, "moved");
    let managers = kubectl
        .ok(&[
            "get",
            "configmap",
            "applied",
            "--show-managed-fields",
            "-o",
            "jsonpath={.metadata.managedFields[*].manager}",
        ])
        .await;
    assert_eq!(managers.trim(), "kubectl");

    let out = kubectl.ok(&["delete", "configmap", "settings"]).await;
    assert_eq!(out.trim(), "configmap \"settings\" deleted");
    let missing = kubectl.run(&["get", "configmap", "settings"]).await;
    assert!(!missing.success);
    assert!(
        missing.stderr.contains("configmaps \"settings\" not found"),
        "{}",
        missing.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_custom_resources_columns_and_explain() {
    let server = start().await;
    let kubectl = Kubectl::new(&server);
    let file = kubectl.file("widget.yaml", WIDGET_YAML);
    let out = kubectl.ok(&["apply", "-f", &file.display().to_string()]).await;
    assert_eq!(out.trim(), "widget.test.sandbox.io/alpha created");

    let api: Api<Widget> = Api::namespaced(client(&server), "default");
    api.patch_status(
        "alpha",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Building"}})),
    )
    .await
    .expect("status");
    // Events recorded through events.k8s.io/v1 (kube-runtime's Recorder) show up in kubectl describe.
    let widget = api.get("alpha").await.expect("get widget");
    let recorder = kube::runtime::events::Recorder::new(
        client(&server),
        kube::runtime::events::Reporter {
            controller: "widget-controller".into(),
            instance: None,
        },
    );
    let reference = kube::Resource::object_ref(&widget, &());
    let event = kube::runtime::events::Event {
        type_: kube::runtime::events::EventType::Normal,
        reason: "WidgetBuilt".into(),
        note: Some("built 3 parts".into()),
        action: "Build".into(),
        secondary: None,
    };
    recorder.publish(&event, &reference).await.expect("publish event");
    recorder
        .publish(&event, &reference)
        .await
        .expect("publish the event again (series patch)");
    let described = kubectl.ok(&["describe", "widget", "alpha"]).await;
    assert!(
        described.contains("Size:") && described.contains("Building"),
        "{described}"
    );
    let event_line = described
        .lines()
        .find(|l| l.contains("WidgetBuilt"))
        .unwrap_or_default()
        .to_string();
    assert!(
        event_line.contains("Normal")
            && event_line.contains("widget-controller")
            && event_line.contains("built 3 parts"),
        "{described}"
    );

    let table = kubectl.ok(&["get", "wg"]).await;
    let header: Vec<&str> = table.lines().next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(header, vec!["NAME", "SIZE", "COLOR", "PHASE", "AGE"], "{table}");
    let row: Vec<&str> = table.lines().nth(1).unwrap_or_default().split_whitespace().collect();
    assert_eq!(&row[..4], &["alpha", "3", "green", "Building"], "{table}");

    let bad = kubectl.file("bad.yaml", &WIDGET_YAML.replace("size: 3", "size: 300"));
    let out = kubectl.run(&["apply", "-f", &bad.display().to_string()]).await;
    assert!(!out.success);
    assert!(
        out.stderr
            .contains("spec.size in body should be less than or equal to 100"),
        "{}",
        out.stderr
    );

    let unknown = kubectl.file(
        "unknown.yaml",
        &WIDGET_YAML.replace("color: green", "color: green\n  sparkle: true"),
    );
    let out = kubectl.run(&["apply", "-f", &unknown.display().to_string()]).await;
    assert!(!out.success, "kubectl validates strictly by default");
    assert!(out.stderr.contains("unknown field \"spec.sparkle\""), "{}", out.stderr);

    let explained = kubectl.ok(&["explain", "widgets.spec"]).await;
    assert!(
        explained.contains("KIND:") && explained.contains("Widget"),
        "{explained}"
    );
    assert!(
        explained.contains("How many parts the widget has, between 1 and 100."),
        "{explained}"
    );
    assert!(explained.contains("color"), "{explained}");

    let out = kubectl
        .ok(&["apply", "--server-side", "-f", &file.display().to_string()])
        .await;
    assert_eq!(out.trim(), "widget.test.sandbox.io/alpha serverside-applied");
    let out = kubectl.ok(&["delete", "widget", "alpha"]).await;
    assert_eq!(out.trim(), "widget.test.sandbox.io \"alpha\" deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_watch_receives_updates() {
    let server = start().await;
    let kubectl = Kubectl::new(&server);
    let file = kubectl.file("widget.yaml", WIDGET_YAML);
    kubectl.ok(&["apply", "-f", &file.display().to_string()]).await;
    let mut child = kubectl
        .command(&["get", "widgets", "-w"])
        .spawn()
        .expect("spawn kubectl get -w");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let mut seen = Vec::new();
    // The initial listing shows the widget with size 3.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut patched = false;
    loop {
        let line = match tokio::time::timeout_at(deadline, lines.next_line()).await {
            Ok(Ok(Some(line))) => line,
            other => panic!("kubectl get -w ended early ({other:?}); saw {seen:?}"),
        };
        seen.push(line.clone());
        if !patched && line.starts_with("alpha") {
            let api: Api<Widget> = Api::namespaced(client(&server), "default");
            api.patch(
                "alpha",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"size": 42}})),
            )
            .await
            .expect("patch");
            patched = true;
        } else if patched && line.starts_with("alpha") && line.split_whitespace().nth(1) == Some("42") {
            break;
        }
    }
    child.kill().await.expect("kill kubectl");
    assert!(
        seen.iter().any(|l| l.split_whitespace().nth(1) == Some("42")),
        "{seen:?}"
    );
}
