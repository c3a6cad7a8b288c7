//! `plan --live` against the sandbox API server with RBAC: the head compared with the RECs and REDBs in the cluster
//! now, through a kubeconfig whose ServiceAccount may only get and list them. Live drift shows as a change from the
//! live value, the agent's labels and annotations are no change, with `--gitsync` a live object the head no longer
//! has shows what pruning does, and nothing but lists is sent.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use redis_gitops_sandbox::apiserver::{ApiServer, ApiServerHandle, ApiServerOptions, Authorization};
use serde_json::{Value, json};

const READER: &str = "system:serviceaccount:ci:plan-reader";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/plan")
}

fn create(server: &ApiServerHandle, api_version: &str, kind: &str, object: Value) {
    if let Err(error) = server.objects().create(api_version, kind, object.clone()) {
        panic!("cannot create {kind} {object}: {error}");
    }
}

/// The API server with the CRDs, namespaces `redis` and `ci`, and ServiceAccount `ci/plan-reader` that may get and
/// list RECs and REDBs, nothing else.
async fn server() -> ApiServerHandle {
    let server = ApiServer::start(ApiServerOptions {
        crds: redis_gitops::api::crds(),
        authorization: Authorization::Rbac,
        tls: true,
        ..ApiServerOptions::default()
    })
    .await
    .expect("the sandbox API server starts");
    for namespace in ["redis", "ci"] {
        create(&server, "v1", "Namespace", json!({"metadata": {"name": namespace}}));
    }
    create(
        &server,
        "v1",
        "ServiceAccount",
        json!({"metadata": {"name": "plan-reader", "namespace": "ci"}}),
    );
    create(
        &server,
        "rbac.authorization.k8s.io/v1",
        "ClusterRole",
        json!({"metadata": {"name": "plan-reader"}, "rules": [{
            "apiGroups": ["app.redislabs.com"],
            "resources": ["redisenterpriseclusters", "redisenterprisedatabases"],
            "verbs": ["get", "list"],
        }]}),
    );
    create(
        &server,
        "rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding",
        json!({"metadata": {"name": "plan-reader"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "plan-reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "plan-reader", "namespace": "ci"}]}),
    );
    server
}

/// Every object of the base fixture, created live as the agent applies it: with the GitSync's labels and the
/// source-file and revision annotations. `edit` changes an object before it is created.
fn apply_fixture(server: &ApiServerHandle, edit: impl Fn(&str, &mut Value)) {
    let mut files = vec!["cluster.yaml".to_string()];
    for entry in std::fs::read_dir(fixtures().join("base/databases")).expect("fixture directory") {
        let name = entry.expect("entry").file_name().to_string_lossy().into_owned();
        files.push(format!("databases/{name}"));
    }
    for file in files {
        let text = std::fs::read_to_string(fixtures().join("base").join(&file)).expect("fixture file");
        let mut object: Value = serde_saphyr::from_str(&text).expect("fixture YAML");
        let labels = &mut object["metadata"]["labels"];
        if labels.is_null() {
            *labels = json!({});
        }
        labels["redisgitops.dev/gitsync-name"] = json!("config");
        labels["redisgitops.dev/gitsync-namespace"] = json!("ci");
        object["metadata"]["annotations"] = json!({
            "redisgitops.dev/source-file": file,
            "redisgitops.dev/revision": "main@sha1:0123456789abcdef0123456789abcdef01234567",
        });
        let name = object["metadata"]["name"].as_str().expect("name").to_string();
        edit(&name, &mut object);
        let api_version = object["apiVersion"].as_str().expect("apiVersion").to_string();
        let kind = object["kind"].as_str().expect("kind").to_string();
        create(server, &api_version, &kind, object);
    }
}

async fn plan(kubeconfig: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_redis-gitops"));
    command
        .arg("plan")
        .args(["--live", "-o", "json"])
        .args(args)
        .current_dir(fixtures())
        .env("KUBECONFIG", kubeconfig);
    tokio::task::spawn_blocking(move || command.output().expect("the binary runs"))
        .await
        .expect("the plan process is awaited")
}

fn json_of(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "{error}: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn changed(plan: &Value) -> Vec<(String, String)> {
    plan["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|change| {
            (
                change["name"].as_str().unwrap_or_default().to_string(),
                change["action"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_drift_shows_as_a_change_from_the_live_value_with_read_only_access() {
    let server = server().await;
    // Someone raised the cache's memory by hand.
    apply_fixture(&server, |name, object| {
        if name == "cache" {
            object["spec"]["memorySize"] = json!("3GB");
        }
    });
    let directory = tempfile::tempdir().expect("temp dir");
    let kubeconfig = directory.path().join("reader.kubeconfig");
    server
        .write_kubeconfig_as_service_account(&kubeconfig, "ci", "plan-reader")
        .expect("kubeconfig written");
    server.reset_request_counts();

    let output = plan(&kubeconfig, &["--head", "base"]).await;
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let document = json_of(&output);
    assert_eq!(changed(&document), vec![("cache".to_string(), "update".to_string())]);
    let fields = &document["changes"][0]["fields"];
    assert_eq!(
        fields,
        &json!([{"path": "spec.memorySize", "from": "3GB", "to": "2GB"}]),
        "from the live value to the head's"
    );
    let risks: Vec<&str> = document["changes"][0]["risks"]
        .as_array()
        .expect("risks")
        .iter()
        .filter_map(|risk| risk["code"].as_str())
        .collect();
    assert!(risks.contains(&"MemoryReduced"), "{risks:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("comparing the head with the live cluster"));

    let reader = server.identity_requests().for_user(READER);
    let verbs: Vec<String> = reader
        .verbs_and_resources()
        .into_iter()
        .map(|(verb, _, _)| verb)
        .collect();
    assert!(!verbs.is_empty(), "the reader was used");
    assert!(verbs.iter().all(|verb| verb == "list"), "read-only: {verbs:?}");
    assert!(
        server
            .identity_requests()
            .denied()
            .for_user(READER)
            .verbs_and_resources()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_gitsync_a_live_object_the_head_lacks_shows_what_pruning_does() {
    let server = server().await;
    apply_fixture(&server, |_, _| {});
    let directory = tempfile::tempdir().expect("temp dir");
    let kubeconfig = directory.path().join("reader.kubeconfig");
    server
        .write_kubeconfig_as_service_account(&kubeconfig, "ci", "plan-reader")
        .expect("kubeconfig written");
    let gitsync = directory.path().join("gitsync.yaml");
    std::fs::write(
        &gitsync,
        "apiVersion: redisgitops.dev/v1alpha1\nkind: GitSync\nmetadata:\n  name: config\n  namespace: ci\n\
         spec:\n  url: https://git.example/team/config.git\n  prune: true\n",
    )
    .expect("GitSync file");
    let head = directory.path().join("head");
    std::fs::create_dir_all(head.join("databases")).expect("head directory");
    for file in [
        "cluster.yaml",
        "databases/cache.yaml",
        "databases/orders.yaml",
        "databases/sessions.yaml",
    ] {
        std::fs::copy(fixtures().join("base").join(file), head.join(file)).expect("copy fixture");
    }

    // The same as live: no change, the agent's labels and annotations included.
    let same = plan(
        &kubeconfig,
        &["--head", "base", "--gitsync", gitsync.to_str().expect("UTF-8 path")],
    )
    .await;
    assert_eq!(same.status.code(), Some(0), "{}", String::from_utf8_lossy(&same.stdout));

    // legacy.yaml removed in the head: a delete, and whether the GitSync lets pruning delete the database.
    let pruned = plan(
        &kubeconfig,
        &[
            "--head",
            head.to_str().expect("UTF-8 path"),
            "--gitsync",
            gitsync.to_str().expect("UTF-8 path"),
        ],
    )
    .await;
    assert_eq!(
        pruned.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&pruned.stderr)
    );
    let document = json_of(&pruned);
    assert_eq!(changed(&document), vec![("legacy".to_string(), "delete".to_string())]);
    let risk = &document["changes"][0]["risks"][0];
    assert_eq!(risk["code"], "DatabaseDeleted");
    assert!(
        risk["message"]
            .as_str()
            .unwrap_or_default()
            .contains("allowDatabaseDeletion"),
        "{risk}"
    );

    // Without the GitSync, only what the head has is compared: no delete.
    let head_only = plan(&kubeconfig, &["--head", head.to_str().expect("UTF-8 path")]).await;
    assert_eq!(
        head_only.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&head_only.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_list_permission_the_missing_grant_is_named() {
    let server = server().await;
    create(
        &server,
        "v1",
        "ServiceAccount",
        json!({"metadata": {"name": "nobody", "namespace": "ci"}}),
    );
    let directory = tempfile::tempdir().expect("temp dir");
    let kubeconfig = directory.path().join("nobody.kubeconfig");
    server
        .write_kubeconfig_as_service_account(&kubeconfig, "ci", "nobody")
        .expect("kubeconfig written");
    let output = plan(&kubeconfig, &["--head", "base"]).await;
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--live needs `list` on redisenterpriseclusters.app.redislabs.com in redis"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
}
