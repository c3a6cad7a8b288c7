//! The agent as the Deployment runs it, against a sandbox that enforces RBAC over HTTPS: `deploy/` applied with
//! kubectl, the agent process started with only what a pod gets (the service environment variables and the token,
//! CA and namespace files at the service-account path, in a mount namespace of its own), and no kubeconfig. With
//! the shipped permissions only, examples-repo syncs to all Ready, a database is changed and deleted, and the
//! Lease works; every permission the ClusterRole grants is used, or is listed (here and in the README) with the
//! path that needs it; and a rule taken away is a `MissingPermission` condition on the object it was for, while
//! the agent keeps serving the rest.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use redis_gitops::api::{GitSync, RedisEnterpriseCluster, RedisEnterpriseDatabase};
use redis_gitops_sandbox::apiserver::Authorization;
use redis_gitops_sandbox::{Sandbox, SandboxOptions};
use serde_json::{Value, json};
use support::{Repo, kubectl};

const AGENT_NAMESPACE: &str = "redis-gitops-system";
const AGENT_USER: &str = "system:serviceaccount:redis-gitops-system:redis-gitops";

/// Grants of `deploy/base/rbac.yaml` that one sync loop does not exercise, each with the path that needs it. The
/// README's "Permissions" list says the same.
const USED_ELSEWHERE: &[(&str, &str, &str, &str)] = &[
    // The Role of each REC's pods (src/desired/cluster.rs `build_role`): Kubernetes lets the agent create a Role
    // only with rules it holds itself.
    ("create", "", "configmaps", "granted onward to REC pods"),
    ("get", "", "configmaps", "granted onward to REC pods"),
    ("list", "", "configmaps", "granted onward to REC pods"),
    ("patch", "", "configmaps", "granted onward to REC pods"),
    ("update", "", "configmaps", "granted onward to REC pods"),
    ("watch", "", "configmaps", "granted onward to REC pods"),
    ("get", "", "endpoints", "granted onward to REC pods"),
    ("list", "", "endpoints", "granted onward to REC pods"),
    ("watch", "", "endpoints", "granted onward to REC pods"),
    ("get", "", "pods", "granted onward to REC pods"),
    ("watch", "", "pods", "granted onward to REC pods"),
    ("get", "", "services", "granted onward to REC pods"),
    // A child its REC or REDB no longer has is deleted; under OwnerReferencesPermissionEnforcement (OpenShift),
    // setting an owner reference on an object needs delete on it.
    ("delete", "", "services", "a child the REC or REDB no longer has"),
    ("delete", "", "serviceaccounts", "a child the REC no longer has"),
    (
        "delete",
        "discovery.k8s.io",
        "endpointslices",
        "a child the REDB no longer has",
    ),
    (
        "delete",
        "policy",
        "poddisruptionbudgets",
        "a child the REC no longer has",
    ),
    (
        "delete",
        "rbac.authorization.k8s.io",
        "roles",
        "a child the REC no longer has",
    ),
    (
        "delete",
        "rbac.authorization.k8s.io",
        "rolebindings",
        "a child the REC no longer has",
    ),
    (
        "delete",
        "apps",
        "statefulsets",
        "OwnerReferencesPermissionEnforcement only: never deleted by the agent",
    ),
    (
        "update",
        "app.redislabs.com",
        "redisenterpriseclusters/finalizers",
        "OwnerReferencesPermissionEnforcement",
    ),
    (
        "update",
        "app.redislabs.com",
        "redisenterprisedatabases/finalizers",
        "OwnerReferencesPermissionEnforcement",
    ),
    // GitSync paths this loop does not take.
    (
        "delete",
        "app.redislabs.com",
        "redisenterpriseclusters",
        "pruning a REC, with allowDatabaseDeletion",
    ),
    (
        "get",
        "redisgitops.dev",
        "gitsyncs",
        "an object two GitSyncs claim: the other one is read",
    ),
    (
        "patch",
        "redisgitops.dev",
        "gitsyncs",
        "deletionPolicy Delete: the GitSync's finalizer",
    ),
    (
        "create",
        "",
        "namespaces",
        "spec.createNamespace: the namespaces of new objects",
    ),
    // Backup paths: examples-repo's schedule runs nightly, so the loop sees it applied and watched only.
    (
        "delete",
        "redisgitops.dev",
        "redisbackupschedules",
        "pruning a schedule",
    ),
    (
        "get",
        "redisgitops.dev",
        "redisrestores",
        "a RedisRestore read fresh before its import",
    ),
    ("create", "redisgitops.dev", "redisrestores", "a RedisRestore from Git"),
    ("patch", "redisgitops.dev", "redisrestores", "a RedisRestore from Git"),
    ("delete", "redisgitops.dev", "redisrestores", "pruning a RedisRestore"),
    (
        "patch",
        "redisgitops.dev",
        "redisrestores/status",
        "a restore's progress",
    ),
    ("get", "redisgitops.dev", "redisbackups", "a run read fresh"),
    ("create", "redisgitops.dev", "redisbackups", "a schedule's slot"),
    ("patch", "redisgitops.dev", "redisbackups", "the files finalizer"),
    ("delete", "redisgitops.dev", "redisbackups", "retention"),
    ("patch", "redisgitops.dev", "redisbackups/status", "a run's progress"),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Copies examples-repo into a fresh Git repository and commits it.
fn examples_repository(directory: &Path) -> Repo {
    let repo = Repo::new(directory);
    let source = root().join("examples-repo");
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        for entry in std::fs::read_dir(source.join(&relative)).expect("read examples-repo") {
            let entry = entry.expect("entry");
            let path = relative.join(entry.file_name());
            if entry.file_type().expect("type").is_dir() {
                pending.push(path);
            } else {
                let text = std::fs::read_to_string(entry.path()).expect("read");
                repo.write(&path.to_string_lossy(), &text);
            }
        }
    }
    repo.commit("examples-repo");
    repo
}

/// What the kubelet gives the agent's pod.
struct Pod<'a> {
    /// The pod's namespace (the `namespace` file and `POD_NAMESPACE`).
    namespace: &'a str,
    /// More environment variables, as the Deployment sets them.
    env: &'a [(&'a str, &'a str)],
    /// `KUBERNETES_SERVICE_PORT` (the host is 127.0.0.1).
    port: u16,
    /// The ServiceAccount token.
    token: &'a str,
    /// The CA of the API server's certificate.
    ca_pem: &'a str,
    /// The sandbox's name table for the REST API (what cluster DNS resolves in a cluster).
    hosts_file: &'a Path,
    /// The CA of the Redis Enterprise REST API.
    enterprise_ca: &'a Path,
}

/// The agent started as a pod starts it: `KUBERNETES_SERVICE_HOST`/`_PORT`, the token, CA and namespace files at
/// `/var/run/secrets/kubernetes.io/serviceaccount/` (a tmpfs over /run in a mount namespace of its own, so nothing on
/// this machine changes), no kubeconfig and an empty home.
fn start_in_cluster_agent(temp: &Path, pod: &Pod) -> (Child, Arc<Mutex<String>>) {
    let account = temp.join("serviceaccount");
    std::fs::create_dir_all(&account).expect("account dir");
    // Written as the kubelet writes them: no trailing newline (kube-rs sends the token file as is).
    std::fs::write(account.join("token"), pod.token).expect("token");
    std::fs::write(account.join("ca.crt"), pod.ca_pem).expect("ca");
    std::fs::write(account.join("namespace"), pod.namespace).expect("namespace");
    let home = temp.join("home");
    std::fs::create_dir_all(&home).expect("home");
    let script = "mount -t tmpfs tmpfs /run && mkdir -p /run/secrets/kubernetes.io/serviceaccount && \
                  cp \"$ACCOUNT\"/token \"$ACCOUNT\"/ca.crt \"$ACCOUNT\"/namespace /run/secrets/kubernetes.io/serviceaccount/ && \
                  exec \"$AGENT\" \"$@\"";
    let mut child = Command::new("unshare")
        .args(["--mount", "--map-root-user", "sh", "-c", script, "agent"])
        .args([
            "agent",
            "--allow-file-urls",
            "--allow-namespace",
            "*",
            "--lease-duration",
            "3s",
            "--metrics-address",
            "127.0.0.1:0",
            "--webhook-address",
            "127.0.0.1:0",
            "--cache-dir",
        ])
        .arg(temp.join("cache"))
        .arg("--hosts-file")
        .arg(pod.hosts_file)
        .arg("--enterprise-ca-file")
        .arg(pod.enterprise_ca)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("ACCOUNT", &account)
        .env("AGENT", env!("CARGO_BIN_EXE_redis-gitops"))
        .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        .env("KUBERNETES_SERVICE_PORT", pod.port.to_string())
        .env("POD_NAME", "redis-gitops-0")
        .env("POD_NAMESPACE", pod.namespace)
        .env("NO_COLOR", "1")
        .envs(pod.env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("unshare runs (util-linux; needs user and mount namespaces)");
    let logs = support::collect_stderr(&mut child);
    (child, logs)
}

/// The port the sandbox's API server listens on.
fn api_port(sandbox: &Sandbox) -> u16 {
    sandbox
        .apiserver
        .url()
        .rsplit(':')
        .next()
        .and_then(|port| port.trim_end_matches('/').parse::<u16>().ok())
        .expect("the API server's port")
}

fn ready(conditions: Option<&Vec<redis_gitops::api::conditions::Condition>>) -> bool {
    conditions
        .into_iter()
        .flatten()
        .any(|condition| condition.type_ == "Ready" && condition.status == "True")
}

/// Waits until every REC and REDB is Ready and there are `databases` REDBs, failing with what is not.
async fn wait_all_ready(client: &kube::Client, databases: usize, agent: &mut Child, logs: &Arc<Mutex<String>>) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let clusters = Api::<RedisEnterpriseCluster>::all(client.clone())
            .list(&Default::default())
            .await
            .expect("list RECs");
        let redbs = Api::<RedisEnterpriseDatabase>::all(client.clone())
            .list(&Default::default())
            .await
            .expect("list REDBs");
        let mut waiting: Vec<String> = Vec::new();
        for cluster in &clusters.items {
            if !ready(cluster.status.as_ref().and_then(|s| s.conditions.as_ref())) {
                waiting.push(format!("REC {:?}", cluster.metadata.name));
            }
        }
        for redb in &redbs.items {
            if !ready(redb.status.as_ref().and_then(|s| s.conditions.as_ref())) {
                waiting.push(format!(
                    "REDB {:?}: {:?}",
                    redb.metadata.name,
                    redb.status.as_ref().and_then(|s| s.conditions.clone())
                ));
            }
        }
        if waiting.is_empty() && !clusters.items.is_empty() && redbs.items.len() == databases {
            return;
        }
        if let Ok(Some(status)) = agent.try_wait() {
            panic!("the agent exited ({status}):\n{}", logs.lock().expect("logs"));
        }
        assert!(
            Instant::now() < deadline,
            "not Ready ({} REDBs): {waiting:#?}\nagent logs:\n{}",
            redbs.items.len(),
            logs.lock().expect("logs")
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The (verb, apiGroup, resource) triples the rules grant, expanded.
fn granted(rules: &Value) -> BTreeSet<(String, String, String)> {
    let mut triples = BTreeSet::new();
    for rule in rules.as_array().expect("rules") {
        let list = |key: &str| -> Vec<String> {
            rule[key]
                .as_array()
                .map(|items| items.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default()
        };
        for verb in list("verbs") {
            for group in list("apiGroups") {
                for resource in list("resources") {
                    triples.insert((verb.clone(), group.clone(), resource));
                }
            }
        }
    }
    triples
}

/// One `verb group resource` per line.
fn lines<'a>(triples: impl Iterator<Item = &'a (String, String, String)>) -> String {
    triples
        .map(|(verb, group, resource)| format!("  {verb} {group:?} {resource}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The rules of a role in the kustomize output of `deploy/`.
fn rules_of(yaml: &str, kind: &str, name: &str) -> Value {
    for document in yaml.split("\n---\n") {
        let value: Value = serde_saphyr::from_str(document.trim_start_matches("---\n")).expect("YAML");
        if value["kind"] == kind && value["metadata"]["name"] == name {
            return value["rules"].clone();
        }
    }
    panic!("no {kind} {name} in deploy/");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_only_the_shipped_rbac_the_agent_syncs_examples_repo_changes_and_deletes_and_reports_a_missing_rule() {
    let temp = tempfile::tempdir().expect("temp dir");
    let sandbox = Sandbox::start(SandboxOptions {
        authorization: Authorization::Rbac,
        tls: true,
        // A blank cluster: the CRDs come from deploy/.
        ..SandboxOptions::default()
    })
    .await
    .expect("sandbox starts (needs redis-server)");
    let kubeconfig = temp.path().join("kubeconfig");
    sandbox.apiserver.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let admin = sandbox.apiserver.kube_client().expect("admin client");

    // The install, as the README says (the sandbox has no Deployment controller: the agent process below is the
    // pod the Deployment would run).
    let deploy = root().join("deploy");
    kubectl(
        &kubeconfig,
        &[
            "apply",
            "--server-side",
            "--validate=false",
            "-k",
            &deploy.to_string_lossy(),
        ],
    );
    let kustomized = kubectl(&kubeconfig, &["kustomize", &deploy.to_string_lossy()]);
    for name in ["redis-production", "redis-staging"] {
        let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).expect("namespace");
        Api::<Namespace>::all(admin.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .expect("create the namespace");
    }
    // What the platform team creates outside Git: the production cluster's license Secret.
    let license: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
        "metadata": {"name": "redis-enterprise-license", "namespace": "redis-production"},
        "stringData": {"license": "sandbox placeholder"}
    }))
    .expect("secret");
    Api::<k8s_openapi::api::core::v1::Secret>::namespaced(admin.clone(), "redis-production")
        .create(&PostParams::default(), &license)
        .await
        .expect("create the license Secret");
    let databases_in_git = std::fs::read_dir(root().join("examples-repo/databases"))
        .expect("databases")
        .flat_map(|dir| std::fs::read_dir(dir.expect("entry").path()).expect("read"))
        .count();
    let repo = examples_repository(&temp.path().join("config"));
    let gitsync: GitSync = serde_json::from_value(json!({
        "apiVersion": "redisgitops.dev/v1alpha1", "kind": "GitSync",
        "metadata": {"name": "examples", "namespace": AGENT_NAMESPACE},
        "spec": {"url": repo.url(), "interval": "1s", "prune": true, "allowDatabaseDeletion": true}
    }))
    .expect("gitsync");
    Api::<GitSync>::namespaced(admin.clone(), AGENT_NAMESPACE)
        .create(&PostParams::default(), &gitsync)
        .await
        .expect("create the GitSync");

    let hosts = temp.path().join("hosts");
    let _hosts_writer = sandbox.keep_hosts_file(hosts.clone(), redis_gitops::enterprise::hosts::render_hosts);
    let token = sandbox
        .apiserver
        .issue_token(AGENT_NAMESPACE, "redis-gitops")
        .expect("a token for the agent's ServiceAccount");
    let ca = sandbox.apiserver.ca_pem().expect("the sandbox serves HTTPS");
    sandbox.apiserver.reset_request_counts();
    let pod = Pod {
        namespace: AGENT_NAMESPACE,
        env: &[],
        port: api_port(&sandbox),
        token: &token,
        ca_pem: &ca,
        hosts_file: &hosts,
        enterprise_ca: sandbox.ca_path(),
    };
    let (mut agent, logs) = start_in_cluster_agent(temp.path(), &pod);

    // 1. examples-repo to all Ready, with the shipped permissions only.
    wait_all_ready(&admin, databases_in_git, &mut agent, &logs).await;
    let lease = Api::<Lease>::namespaced(admin.clone(), AGENT_NAMESPACE)
        .get("redis-gitops-agent")
        .await
        .expect("the leader Lease");
    assert_eq!(
        lease.spec.and_then(|spec| spec.holder_identity).as_deref(),
        Some("redis-gitops-0"),
        "the agent holds the Lease as its pod"
    );

    // 2. A database changed, then one deleted, through Git.
    let production = Api::<RedisEnterpriseDatabase>::namespaced(admin.clone(), "redis-production");
    let sessions = "databases/production/sessions.yaml";
    let text = std::fs::read_to_string(root().join("examples-repo").join(sessions)).expect("read");
    let old_memory = production
        .get("sessions")
        .await
        .expect("sessions")
        .spec
        .memory_size
        .expect("memorySize");
    let new_memory = if old_memory == "2GB" { "3GB" } else { "2GB" };
    repo.write(
        sessions,
        &text.replace(
            &format!("memorySize: {old_memory}"),
            &format!("memorySize: {new_memory}"),
        ),
    );
    repo.commit("sessions: more memory");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let redb = production.get("sessions").await.expect("sessions");
        let status = redb.status.clone().unwrap_or_default();
        let settled = redb.spec.memory_size.as_deref() == Some(new_memory)
            && status.observed_generation == redb.metadata.generation
            && ready(status.conditions.as_ref());
        if settled {
            break;
        }
        assert!(Instant::now() < deadline, "the change was not applied: {status:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    repo.git(&["rm", "-q", "databases/production/rate-limiter.yaml"]);
    repo.commit("rate-limiter is gone");
    let deadline = Instant::now() + Duration::from_secs(60);
    while production.get_opt("rate-limiter").await.expect("get").is_some() {
        assert!(
            Instant::now() < deadline,
            "the database was not deleted:\n{}",
            logs.lock().expect("logs")
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // 3. Every grant is used, or listed with the path that needs it; nothing was refused.
    let requests = sandbox.apiserver.identity_requests().for_user(AGENT_USER);
    let denied = requests.denied();
    assert_eq!(denied.total(), 0, "requests the shipped RBAC refused: {denied:#?}");
    let used = requests.verbs_and_resources();
    let mut grants = granted(&rules_of(&kustomized, "ClusterRole", "redis-gitops"));
    grants.extend(granted(&rules_of(&kustomized, "Role", "redis-gitops-leader")));
    let elsewhere: BTreeSet<(String, String, String)> = USED_ELSEWHERE
        .iter()
        .map(|(verb, group, resource, _)| (verb.to_string(), group.to_string(), resource.to_string()))
        .collect();
    let unused: Vec<&(String, String, String)> = grants
        .iter()
        .filter(|grant| !used.contains(*grant) && !elsewhere.contains(*grant))
        .collect();
    assert!(
        unused.is_empty(),
        "granted but not used in the loop and not listed in USED_ELSEWHERE:\n{}\nused:\n{}",
        lines(unused.iter().copied()),
        lines(used.iter())
    );
    let listed_but_used: Vec<&(String, String, String)> =
        elsewhere.iter().filter(|grant| used.contains(*grant)).collect();
    assert!(
        listed_but_used.is_empty(),
        "USED_ELSEWHERE lists grants the loop used:\n{}",
        lines(listed_but_used.into_iter())
    );
    let not_granted: Vec<&(String, String, String)> =
        elsewhere.iter().filter(|grant| !grants.contains(*grant)).collect();
    assert!(
        not_granted.is_empty(),
        "USED_ELSEWHERE lists what the ClusterRole does not grant:\n{}",
        lines(not_granted.into_iter())
    );

    // 4. A rule taken away: the object it was for says which rule to add; the rest keeps being served.
    let cluster_roles = Api::<k8s_openapi::api::rbac::v1::ClusterRole>::all(admin.clone());
    let mut role = cluster_roles.get("redis-gitops").await.expect("the ClusterRole");
    let original = role.clone();
    role.rules = role.rules.map(|rules| {
        rules
            .into_iter()
            .filter(|rule| {
                !rule
                    .api_groups
                    .iter()
                    .flatten()
                    .any(|group| group == "discovery.k8s.io")
            })
            .collect()
    });
    role.metadata.managed_fields = None;
    cluster_roles
        .replace("redis-gitops", &PostParams::default(), &role)
        .await
        .expect("take the EndpointSlice rule away");
    repo.write(
        "databases/staging/reports.yaml",
        "apiVersion: app.redislabs.com/v1alpha1\nkind: RedisEnterpriseDatabase\nmetadata:\n  name: reports\n  \
         namespace: redis-staging\nspec:\n  memorySize: 100MB\n",
    );
    repo.commit("reports database");
    let staging = Api::<RedisEnterpriseDatabase>::namespaced(admin.clone(), "redis-staging");
    let deadline = Instant::now() + Duration::from_secs(60);
    let message = loop {
        let condition = staging.get_opt("reports").await.expect("get").and_then(|redb| {
            redb.status
                .and_then(|status| status.conditions)
                .into_iter()
                .flatten()
                .find(|condition| condition.type_ == "Ready" && condition.reason == "MissingPermission")
        });
        if let Some(condition) = condition {
            break condition.message;
        }
        assert!(
            Instant::now() < deadline,
            "no MissingPermission condition on REDB reports"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(message.contains("endpointslices"), "{message}");
    assert!(message.contains("in namespace redis-staging"), "{message}");
    assert!(
        message.contains("add the rule {apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: ["),
        "{message}"
    );
    let events = kubectl(
        &kubeconfig,
        &["get", "events.events.k8s.io", "-n", "redis-staging", "-o", "json"],
    );
    let events: Value = serde_json::from_str(&events).expect("events JSON");
    assert!(
        events["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|event| event["reason"] == "MissingPermission" && event["regarding"]["name"] == "reports"),
        "a MissingPermission event on reports: {events:#}"
    );
    assert!(agent.try_wait().expect("wait").is_none(), "the agent keeps running");
    // The others stay Ready (their children are unchanged, so nothing they need was refused).
    let sessions = production.get("sessions").await.expect("sessions");
    assert!(ready(sessions.status.as_ref().and_then(|s| s.conditions.as_ref())));

    // The rule back: the database gets its EndpointSlice and turns Ready without a restart of the agent.
    let mut restored = original;
    restored.metadata.managed_fields = None;
    restored.metadata.resource_version = None;
    cluster_roles
        .replace("redis-gitops", &PostParams::default(), &restored)
        .await
        .expect("give the rule back");
    wait_all_ready(&admin, databases_in_git, &mut agent, &logs).await;

    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) }, 0);
    let status = agent.wait().expect("exits");
    let logs = logs.lock().expect("logs").clone();
    assert!(status.success(), "{logs}");
    assert!(!logs.contains(&token), "the token never appears in the logs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_namespaced_install_runs_with_roles_only_and_never_asks_for_anything_cluster_wide() {
    let temp = tempfile::tempdir().expect("temp dir");
    let sandbox = Sandbox::start(SandboxOptions {
        authorization: Authorization::Rbac,
        tls: true,
        ..SandboxOptions::default()
    })
    .await
    .expect("sandbox starts (needs redis-server)");
    let kubeconfig = temp.path().join("kubeconfig");
    sandbox.apiserver.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let admin = sandbox.apiserver.kube_client().expect("admin client");
    // The cluster admin's part: the CRDs and the namespaces. The team's part: deploy/namespaced.
    kubectl(
        &kubeconfig,
        &[
            "apply",
            "--server-side",
            "--validate=false",
            "-k",
            &root().join("crds").to_string_lossy(),
        ],
    );
    for name in ["team-a", "team-b"] {
        let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).expect("namespace");
        Api::<Namespace>::all(admin.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .expect("create the namespace");
    }
    let overlay = root().join("deploy/namespaced");
    kubectl(
        &kubeconfig,
        &[
            "apply",
            "--server-side",
            "--validate=false",
            "-k",
            &overlay.to_string_lossy(),
        ],
    );

    // A cluster and a database in team-b, applied by a GitSync in team-a (where the agent runs).
    let repo = Repo::new(&temp.path().join("config"));
    let cluster = std::fs::read_to_string(root().join("examples-repo/clusters/staging.yaml")).expect("read");
    repo.write(
        "cluster.yaml",
        &cluster.replace("namespace: redis-staging", "namespace: team-b"),
    );
    repo.write(
        "sessions.yaml",
        "apiVersion: app.redislabs.com/v1alpha1\nkind: RedisEnterpriseDatabase\nmetadata:\n  name: sessions\n  \
         namespace: team-b\nspec:\n  memorySize: 256MB\n",
    );
    repo.commit("team-b's cluster and database");
    let gitsync: GitSync = serde_json::from_value(json!({
        "apiVersion": "redisgitops.dev/v1alpha1", "kind": "GitSync",
        "metadata": {"name": "team", "namespace": "team-a"},
        "spec": {"url": repo.url(), "interval": "1s"}
    }))
    .expect("gitsync");
    Api::<GitSync>::namespaced(admin.clone(), "team-a")
        .create(&PostParams::default(), &gitsync)
        .await
        .expect("create the GitSync");

    let hosts = temp.path().join("hosts");
    let _hosts_writer = sandbox.keep_hosts_file(hosts.clone(), redis_gitops::enterprise::hosts::render_hosts);
    let token = sandbox.apiserver.issue_token("team-a", "redis-gitops").expect("token");
    let ca = sandbox.apiserver.ca_pem().expect("HTTPS");
    // WATCH_NAMESPACE as deploy/namespaced sets it on the Deployment.
    let kustomized = kubectl(&kubeconfig, &["kustomize", &overlay.to_string_lossy()]);
    assert!(
        kustomized.contains("value: team-a,team-b"),
        "the overlay sets WATCH_NAMESPACE"
    );
    sandbox.apiserver.reset_request_counts();
    let pod = Pod {
        namespace: "team-a",
        env: &[("WATCH_NAMESPACE", "team-a,team-b")],
        port: api_port(&sandbox),
        token: &token,
        ca_pem: &ca,
        hosts_file: &hosts,
        enterprise_ca: sandbox.ca_path(),
    };
    let (mut agent, logs) = start_in_cluster_agent(temp.path(), &pod);
    wait_all_ready(&admin, 1, &mut agent, &logs).await;

    let user = "system:serviceaccount:team-a:redis-gitops";
    let requests = sandbox.apiserver.identity_requests().for_user(user);
    assert_eq!(requests.denied().total(), 0, "refused: {:#?}", requests.denied());
    let outside: Vec<String> = requests
        .counts
        .keys()
        .filter(|request| !request.non_resource && !["team-a", "team-b"].contains(&request.namespace.as_str()))
        .map(|request| format!("{} {} {:?}", request.verb, request.resource, request.namespace))
        .collect();
    assert!(
        outside.is_empty(),
        "requests outside the managed namespaces: {outside:#?}"
    );

    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) }, 0);
    assert!(agent.wait().expect("exits").success(), "{}", logs.lock().expect("logs"));
}
