//! The REC controller end to end against the sandbox: the real controller bootstraps emulated Redis Enterprise
//! nodes (pods of the StatefulSet it applies) over HTTPS, scales out, refuses scale-in, rolls an upgrade one node at
//! a time, uses a user's credentials Secret untouched, reports an invalid spec and REST faults, and recovers.
//! Checked with kube::Client, the emulator's REST API, the real kubectl and the Kubernetes schemas.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
mod support;

use redis_gitops::api::RedisEnterpriseCluster;
use redis_gitops::controllers::cluster::{ClusterControllerSettings, run_with_settings};
use redis_gitops::controllers::{ControllerContext, EnterpriseAccess};
use redis_gitops::enterprise::states::NodeStatus;
use redis_gitops::enterprise::types::Credentials;
use redis_gitops::enterprise::{ClientConfig, EnterpriseClient, RetryPolicy};
use redis_gitops::telemetry::{ControllerCategoryLabels, ControllerResultLabels, Metrics};
use redis_gitops_sandbox::{Sandbox, SandboxOptions};
use serde_json::json;
use support::kubectl;

const NAMESPACE: &str = "default";
/// The emulator's pause between the steps of a bootstrap or of a node coming back (EmulatorConfig default).
const STEP: Duration = Duration::from_millis(100);

struct Harness {
    sandbox: Sandbox,
    client: kube::Client,
    metrics: Arc<Metrics>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    controller: Option<tokio::task::JoinHandle<()>>,
}

impl Harness {
    async fn start() -> Self {
        let sandbox = Sandbox::start(SandboxOptions {
            pod_ready_delay: Duration::from_millis(50),
            ..SandboxOptions::with_crds(redis_gitops::api::crds())
        })
        .await
        .expect("sandbox starts (needs redis-server)");
        let client = sandbox.apiserver.kube_client().expect("kube client");
        let metrics = Arc::new(Metrics::default());
        let context = ControllerContext {
            client: client.clone(),
            enterprise: EnterpriseAccess {
                ca_pem: sandbox.ca_pem().as_bytes().to_vec(),
                resolver: Some(Arc::new(sandbox.emulator.resolver())),
                timeout: Duration::from_secs(5),
                retry: RetryPolicy {
                    attempts: 2,
                    initial_backoff: Duration::from_millis(50),
                    max_backoff: Duration::from_millis(100),
                },
            },
            metrics: metrics.clone(),
            instance: Some("test".into()),
            clients: Default::default(),
        };
        let settings = ClusterControllerSettings {
            resync: Duration::from_millis(500),
            poll: Duration::from_millis(150),
            max_backoff: Duration::from_secs(2),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let controller = tokio::spawn(run_with_settings(context, settings, async move {
            let _ = stopped.await;
        }));
        Self {
            sandbox,
            client,
            metrics,
            stop: Some(stop),
            controller: Some(controller),
        }
    }

    fn recs(&self) -> Api<RedisEnterpriseCluster> {
        Api::namespaced(self.client.clone(), NAMESPACE)
    }

    async fn create(&self, yaml: &str) -> RedisEnterpriseCluster {
        let rec: RedisEnterpriseCluster = serde_saphyr::from_str(yaml).expect("REC fixture");
        self.recs()
            .create(&PostParams::default(), &rec)
            .await
            .expect("create REC")
    }

    async fn patch_spec(&self, name: &str, spec: serde_json::Value) {
        self.recs()
            .patch(name, &PatchParams::default(), &Patch::Merge(json!({ "spec": spec })))
            .await
            .expect("patch REC");
    }

    /// A REST client of the cluster's service with the admin credentials of `secret`.
    async fn cluster_client(&self, rec: &str, secret: &str) -> EnterpriseClient {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), NAMESPACE);
        let secret = secrets.get(secret).await.expect("credentials Secret");
        let value = |key: &str| String::from_utf8(secret.data.as_ref().expect("data")[key].0.clone()).expect("utf-8");
        EnterpriseClient::new(ClientConfig {
            base_url: format!("https://{rec}.{NAMESPACE}.svc:9443"),
            credentials: Credentials {
                username: value("username"),
                password: value("password"),
            },
            ca_pem: self.sandbox.ca_pem().as_bytes().to_vec(),
            timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
            resolver: Some(Arc::new(self.sandbox.emulator.resolver())),
        })
        .expect("REST client")
    }

    async fn active_nodes(&self, rec: &str, secret: &str) -> usize {
        let nodes = self
            .cluster_client(rec, secret)
            .await
            .nodes()
            .await
            .expect("GET /v1/nodes");
        nodes.iter().filter(|n| n.status == NodeStatus::Active).count()
    }

    fn successes(&self) -> u64 {
        self.metrics
            .reconciles
            .get_or_create(&ControllerResultLabels {
                controller: "cluster",
                result: "success",
            })
            .get()
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(controller) = self.controller.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), controller).await;
        }
    }
}

async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn condition(rec: &RedisEnterpriseCluster, type_: &str) -> Option<(String, String, String)> {
    let c = rec
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

fn state(rec: &RedisEnterpriseCluster) -> Option<String> {
    rec.status.as_ref()?.state.clone()
}

/// Running, Ready=True and the current generation observed.
fn settled(rec: &RedisEnterpriseCluster) -> bool {
    state(rec).as_deref() == Some("Running")
        && condition(rec, "Ready").is_some_and(|c| c.0 == "True")
        && rec.status.as_ref().and_then(|s| s.observed_generation) == rec.metadata.generation
}

async fn wait_settled(harness: &Harness, name: &str) -> RedisEnterpriseCluster {
    eventually(
        &format!("REC {name} to be Running and Ready"),
        Duration::from_secs(60),
        || async { harness.recs().get(name).await.ok().filter(settled) },
    )
    .await
}

/// Records every distinct `status.state` of REC `name`, through a watch.
fn record_states(harness: &Harness, name: &str) -> Arc<Mutex<Vec<String>>> {
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let stream = watcher(harness.recs(), config).applied_objects();
    let recorder = seen.clone();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(Ok(rec)) = stream.next().await {
            if let Some(state) = state(&rec) {
                let mut seen = recorder.lock().expect("lock");
                if seen.last() != Some(&state) {
                    seen.push(state);
                }
            }
        }
    });
    seen
}

fn is_subsequence(wanted: &[&str], seen: &[String]) -> bool {
    let mut rest = seen.iter();
    wanted.iter().all(|w| rest.any(|s| s == w))
}

async fn events(harness: &Harness, rec: &str) -> Vec<(String, String, String)> {
    let api: Api<Event> = Api::namespaced(harness.client.clone(), NAMESPACE);
    api.list(&Default::default())
        .await
        .expect("list events")
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(rec))
        .map(|e| {
            (
                e.type_.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.note.unwrap_or_default(),
            )
        })
        .collect()
}

/// `(resourceVersion of every child and of the REC)`, to prove a resync wrote nothing.
async fn resource_versions(harness: &Harness, rec: &str) -> BTreeMap<String, String> {
    let client = &harness.client;
    let mut versions = BTreeMap::new();
    let mut put = |what: &str, object: Option<ObjectMeta>| {
        versions.insert(
            what.to_string(),
            object.and_then(|m| m.resource_version).unwrap_or_default(),
        );
    };
    put("rec", harness.recs().get(rec).await.ok().map(|o| o.metadata));
    put(
        "sts",
        Api::<StatefulSet>::namespaced(client.clone(), NAMESPACE)
            .get(rec)
            .await
            .ok()
            .map(|o| o.metadata),
    );
    put(
        "secret",
        Api::<Secret>::namespaced(client.clone(), NAMESPACE)
            .get(rec)
            .await
            .ok()
            .map(|o| o.metadata),
    );
    put(
        "pdb",
        Api::<PodDisruptionBudget>::namespaced(client.clone(), NAMESPACE)
            .get(rec)
            .await
            .ok()
            .map(|o| o.metadata),
    );
    put(
        "sa",
        Api::<ServiceAccount>::namespaced(client.clone(), NAMESPACE)
            .get(rec)
            .await
            .ok()
            .map(|o| o.metadata),
    );
    put(
        "role",
        Api::<Role>::namespaced(client.clone(), NAMESPACE)
            .get(rec)
            .await
            .ok()
            .map(|o| o.metadata),
    );
    put(
        "binding",
        Api::<RoleBinding>::namespaced(client.clone(), NAMESPACE)
            .get(rec)
            .await
            .ok()
            .map(|o| o.metadata),
    );
    for service in [
        rec.to_string(),
        format!("{rec}-ui"),
        format!("{rec}-prom"),
        format!("{rec}-headless"),
    ] {
        let meta = Api::<Service>::namespaced(client.clone(), NAMESPACE)
            .get(&service)
            .await
            .ok()
            .map(|o| o.metadata);
        put(&format!("svc/{service}"), meta);
    }
    versions
}

fn password(secret: &Secret) -> Vec<u8> {
    secret.data.as_ref().expect("data")["password"].0.clone()
}

/// One pod incarnation as a watch saw it.
#[derive(Clone, Debug)]
struct Incarnation {
    name: String,
    uid: String,
    first_seen: Instant,
    deleted: Option<Instant>,
}

/// Records pod incarnations (by uid) of cluster `rec` through a watch.
fn record_pods(harness: &Harness, rec: &str) -> Arc<Mutex<Vec<Incarnation>>> {
    let seen = Arc::new(Mutex::new(Vec::<Incarnation>::new()));
    let api: Api<Pod> = Api::namespaced(harness.client.clone(), NAMESPACE);
    let config = watcher::Config::default().labels(&format!("redis.io/cluster={rec}"));
    let recorder = seen.clone();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(watcher(api, config));
        while let Some(Ok(event)) = stream.next().await {
            let now = Instant::now();
            let mut seen = recorder.lock().expect("lock");
            match event {
                watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => {
                    let uid = pod.uid().unwrap_or_default();
                    if !seen.iter().any(|i| i.uid == uid) {
                        seen.push(Incarnation {
                            name: pod.name_any(),
                            uid,
                            first_seen: now,
                            deleted: None,
                        });
                    }
                }
                watcher::Event::Delete(pod) => {
                    let uid = pod.uid().unwrap_or_default();
                    if let Some(incarnation) = seen.iter_mut().find(|i| i.uid == uid) {
                        incarnation.deleted.get_or_insert(now);
                    }
                }
                _ => {}
            }
        }
    });
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_bootstraps_resyncs_without_writes_scales_out_refuses_scale_in_and_upgrades_one_node_at_a_time() {
    let temp = tempfile::tempdir().expect("temp dir");
    let harness = Harness::start().await;
    let kubeconfig = temp.path().join("kubeconfig");
    harness
        .sandbox
        .apiserver
        .write_kubeconfig(&kubeconfig)
        .expect("kubeconfig");
    let states = record_states(&harness, "rec");

    // 1. Bootstrap: pod 0 creates the cluster, the others join, the cluster runs.
    let created = harness
        .create("apiVersion: app.redislabs.com/v1\nkind: RedisEnterpriseCluster\nmetadata: {name: rec, namespace: default}\nspec: {nodes: 3}\n")
        .await;
    let rec = wait_settled(&harness, "rec").await;
    let seen = states.lock().expect("lock").clone();
    assert!(
        is_subsequence(&["BootstrappingFirstPod", "Initializing", "Running"], &seen),
        "states seen: {seen:?}"
    );
    let status = rec.status.clone().expect("status");
    assert_eq!(status.spec_status.as_deref(), Some("Valid"));
    assert_eq!(status.cluster_credential_secret_name.as_deref(), Some("rec"));
    assert_eq!(condition(&rec, "Ready").map(|c| c.1), Some("ClusterRunning".into()));
    assert_eq!(condition(&rec, "Reconciling").map(|c| c.0), Some("False".into()));
    assert_eq!(condition(&rec, "Stalled").map(|c| c.0), Some("False".into()));
    assert_eq!(harness.active_nodes("rec", "rec").await, 3);

    let uid = created.uid().expect("uid");
    let client = harness.client.clone();
    let owned = |meta: &ObjectMeta| {
        let owner = meta.owner_references.as_ref().and_then(|o| o.first()).cloned();
        let labels = meta.labels.clone().unwrap_or_default();
        owner.is_some_and(|o| o.uid == uid && o.kind == "RedisEnterpriseCluster" && o.controller == Some(true))
            && labels.get("app").map(String::as_str) == Some("redis-enterprise")
            && labels.get("redis.io/cluster").map(String::as_str) == Some("rec")
    };
    let sts = Api::<StatefulSet>::namespaced(client.clone(), NAMESPACE)
        .get("rec")
        .await
        .expect("sts");
    assert!(owned(&sts.metadata), "{:?}", sts.metadata);
    let sts_spec = sts.spec.clone().expect("spec");
    assert_eq!(sts_spec.replicas, Some(3));
    assert_eq!(sts_spec.pod_management_policy.as_deref(), Some("OrderedReady"));
    let pod_labels = sts_spec.template.metadata.and_then(|m| m.labels).unwrap_or_default();
    assert_eq!(pod_labels.get("redis.io/role").map(String::as_str), Some("node"));
    for service in ["rec", "rec-ui", "rec-prom", "rec-headless"] {
        let svc = Api::<Service>::namespaced(client.clone(), NAMESPACE)
            .get(service)
            .await
            .expect("service");
        assert!(owned(&svc.metadata), "service {service}");
    }
    let pdb = Api::<PodDisruptionBudget>::namespaced(client.clone(), NAMESPACE)
        .get("rec")
        .await
        .expect("pdb");
    assert!(owned(&pdb.metadata));
    let secret = Api::<Secret>::namespaced(client.clone(), NAMESPACE)
        .get("rec")
        .await
        .expect("secret");
    // The admin Secret has the cluster's labels but no owner reference: it outlives the REC (issue 9).
    let secret_labels = secret.metadata.labels.clone().unwrap_or_default();
    assert!(secret.metadata.owner_references.is_none(), "{:?}", secret.metadata);
    assert_eq!(secret_labels.get("redis.io/cluster").map(String::as_str), Some("rec"));
    assert_eq!(
        secret_labels.get("app.kubernetes.io/component").map(String::as_str),
        Some("credentials")
    );
    let first_password = password(&secret);
    assert!(first_password.len() >= 32, "a generated password");
    for (kind, meta) in [
        (
            "ServiceAccount",
            Api::<ServiceAccount>::namespaced(client.clone(), NAMESPACE)
                .get("rec")
                .await
                .expect("sa")
                .metadata,
        ),
        (
            "Role",
            Api::<Role>::namespaced(client.clone(), NAMESPACE)
                .get("rec")
                .await
                .expect("role")
                .metadata,
        ),
        (
            "RoleBinding",
            Api::<RoleBinding>::namespaced(client.clone(), NAMESPACE)
                .get("rec")
                .await
                .expect("binding")
                .metadata,
        ),
    ] {
        assert!(owned(&meta), "{kind}");
    }

    // The children as kubectl reads them back are valid Kubernetes objects; the REC reads Running.
    let yaml = kubectl(
        &kubeconfig,
        &[
            "get",
            "statefulset,service,poddisruptionbudget,secret,serviceaccount,role,rolebinding",
            "-l",
            "redis.io/cluster=rec",
            "-o",
            "yaml",
        ],
    );
    let children = temp.path().join("children.yaml");
    let documents: Vec<serde_json::Value> =
        serde_saphyr::from_str::<serde_json::Value>(&yaml).expect("kubectl yaml")["items"]
            .as_array()
            .cloned()
            .expect("items");
    assert_eq!(documents.len(), 10, "sts, 4 services, pdb, secret, sa, role, binding");
    let stream: String = documents
        .iter()
        .map(|d| format!("---\n{}\n", serde_json::to_string(d).expect("json")))
        .collect();
    std::fs::write(&children, stream).expect("write children");
    let check = Command::new("/work/shared/tools/check-k8s-schemas")
        .arg(&children)
        .output()
        .expect("check-k8s-schemas runs");
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success() && report.contains("10 objects checked") && report.contains(", 0 invalid"),
        "{report}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let table = kubectl(&kubeconfig, &["get", "rec", "rec", "-n", NAMESPACE]);
    assert!(
        table
            .lines()
            .nth(1)
            .is_some_and(|row| row.contains("Running") && row.contains("True")),
        "{table}"
    );

    // A forced re-reconcile (an annotation) and later resyncs change nothing: no write to the API server, no REST
    // write (every REST POST or PUT would fail now and show up in status), the password stays.
    harness
        .recs()
        .patch(
            "rec",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"test/poke": "1"}}})),
        )
        .await
        .expect("annotate");
    harness.sandbox.emulator.faults().fail_next(
        Some(Method::POST),
        "/v1",
        1000,
        StatusCode::INTERNAL_SERVER_ERROR,
        "test_no_writes",
    );
    harness.sandbox.emulator.faults().fail_next(
        Some(Method::PUT),
        "/v1",
        1000,
        StatusCode::INTERNAL_SERVER_ERROR,
        "test_no_writes",
    );
    let before = resource_versions(&harness, "rec").await;
    let reconciles = harness.successes();
    eventually("three more reconciles", Duration::from_secs(20), || async {
        (harness.successes() >= reconciles + 3).then_some(())
    })
    .await;
    assert_eq!(
        resource_versions(&harness, "rec").await,
        before,
        "a resync of a healthy cluster writes nothing"
    );
    harness.sandbox.emulator.faults().clear();
    let secret = Api::<Secret>::namespaced(client.clone(), NAMESPACE)
        .get("rec")
        .await
        .expect("secret");
    assert_eq!(password(&secret), first_password, "the password is never regenerated");

    // 2. Scale out 3 → 5: the new pods join.
    harness.patch_spec("rec", json!({"nodes": 5})).await;
    let rec = wait_settled(&harness, "rec").await;
    assert_eq!(
        condition(&rec, "Ready").map(|c| c.2),
        Some("all 5 nodes are active".into())
    );
    assert_eq!(harness.active_nodes("rec", "rec").await, 5);

    // 3. Scale in 5 → 3 is refused: the StatefulSet keeps 5 replicas, the cluster keeps running.
    harness.patch_spec("rec", json!({"nodes": 3})).await;
    let refused = eventually("the scale-in to be refused", Duration::from_secs(20), || async {
        let rec = harness.recs().get("rec").await.ok()?;
        (condition(&rec, "Stalled")?.1 == "ScaleDownNotSupported"
            && rec.status.as_ref()?.observed_generation == rec.metadata.generation)
            .then_some(rec)
    })
    .await;
    let (stalled, _, message) = condition(&refused, "Stalled").expect("stalled");
    assert_eq!(stalled, "True");
    assert!(message.contains("restore `nodes: 5`"), "{message}");
    assert_eq!(
        condition(&refused, "Ready").map(|c| (c.0, c.1)),
        Some(("False".into(), "ScaleDownNotSupported".into()))
    );
    assert_eq!(state(&refused).as_deref(), Some("Running"));
    let sts = Api::<StatefulSet>::namespaced(client.clone(), NAMESPACE)
        .get("rec")
        .await
        .expect("sts");
    assert_eq!(sts.spec.and_then(|s| s.replicas), Some(5));
    assert_eq!(harness.active_nodes("rec", "rec").await, 5);
    assert!(
        events(&harness, "rec")
            .await
            .iter()
            .any(|e| e.0 == "Warning" && e.1 == "ScaleDownRefused"),
        "a Warning event"
    );
    harness.patch_spec("rec", json!({"nodes": 5})).await;
    wait_settled(&harness, "rec").await;

    // 4. Upgrade: a new versionTag replaces the pods one at a time from the highest ordinal, each only after the
    // previous one's node is active again.
    let pods = record_pods(&harness, "rec");
    eventually("the pod watch to list the pods", Duration::from_secs(10), || async {
        (pods.lock().expect("lock").len() == 5).then_some(())
    })
    .await;
    harness
        .patch_spec("rec", json!({"redisEnterpriseImageSpec": {"versionTag": "8.2.0-1"}}))
        .await;
    let upgraded = eventually("the upgrade to finish", Duration::from_secs(60), || async {
        let rec = harness.recs().get("rec").await.ok().filter(settled)?;
        let pods: Api<Pod> = Api::namespaced(harness.client.clone(), NAMESPACE);
        let list = pods
            .list(&kube::api::ListParams::default().labels("redis.io/cluster=rec"))
            .await
            .ok()?;
        let images: Vec<String> = list
            .items
            .iter()
            .filter_map(|p| p.spec.as_ref()?.containers.first()?.image.clone())
            .collect();
        (images.len() == 5 && images.iter().all(|i| i == "redislabs/redis:8.2.0-1")).then_some(rec)
    })
    .await;
    assert_eq!(harness.active_nodes("rec", "rec").await, 5);
    let seen = states.lock().expect("lock").clone();
    assert!(is_subsequence(&["Upgrade", "Running"], &seen), "states seen: {seen:?}");
    assert!(settled(&upgraded));
    let incarnations = pods.lock().expect("lock").clone();
    let mut replaced: Vec<&Incarnation> = incarnations.iter().filter(|i| i.deleted.is_some()).collect();
    replaced.sort_by_key(|i| i.deleted);
    let order: Vec<&str> = replaced.iter().map(|i| i.name.as_str()).collect();

    assert_eq!(
        order,
        ["rec-4", "rec-3", "rec-2", "rec-1", "rec-0"],
        "highest ordinal first, each once"
    );
    for pair in replaced.windows(2) {
        let (previous, next) = (pair[0], pair[1]);
        let comeback = incarnations
            .iter()
            .find(|i| i.name == previous.name && i.uid != previous.uid)
            .expect("the replaced pod came back");
        let next_deleted = next.deleted.expect("deleted");
        assert!(
            comeback.first_seen < next_deleted,
            "{} was replaced before {} came back",
            next.name,
            previous.name
        );
        // A node that comes back is `provisioning` for two emulator steps (from its pod's creation) before it is
        // `active`, while its pod is Ready after 50 ms; replacing the next pod sooner than 1.5 steps after the watch
        // saw the new pod means the controller did not wait for the node (a margin for watch latency).
        assert!(
            next_deleted.duration_since(comeback.first_seen) >= STEP * 3 / 2,
            "{} was replaced {:?} after {} came back, before its node could be active",
            next.name,
            next_deleted.duration_since(comeback.first_seen),
            previous.name
        );
    }
    let reasons: Vec<String> = events(&harness, "rec").await.into_iter().map(|e| e.1).collect();
    for reason in [
        "ClusterBootstrapping",
        "NodeJoined",
        "ClusterRunning",
        "ScalingUp",
        "RollingUpdateStarted",
        "NodeUpgraded",
    ] {
        assert!(reasons.iter().any(|r| r == reason), "event {reason} in {reasons:?}");
    }
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_credentials_secret_is_used_untouched_and_bad_secrets_and_specs_are_reported() {
    let temp = tempfile::tempdir().expect("temp dir");
    let harness = Harness::start().await;
    let kubeconfig = temp.path().join("kubeconfig");
    harness
        .sandbox
        .apiserver
        .write_kubeconfig(&kubeconfig)
        .expect("kubeconfig");
    let secrets: Api<Secret> = Api::namespaced(harness.client.clone(), NAMESPACE);
    let user_secret = |name: &str, data: serde_json::Value| -> Secret {
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": NAMESPACE}, "stringData": data}))
        .expect("secret")
    };
    let mine = secrets
        .create(
            &PostParams::default(),
            &user_secret(
                "byo-admin",
                json!({"username": "ops@example.com", "password": "user-chosen-1"}),
            ),
        )
        .await
        .expect("create user secret");
    secrets
        .create(
            &PostParams::default(),
            &user_secret("nokey-admin", json!({"username": "ops@example.com"})),
        )
        .await
        .expect("create incomplete secret");

    harness
        .create("apiVersion: app.redislabs.com/v1\nkind: RedisEnterpriseCluster\nmetadata: {name: byo, namespace: default}\nspec: {nodes: 3, clusterCredentialSecretName: byo-admin}\n")
        .await;
    harness
        .create("apiVersion: app.redislabs.com/v1\nkind: RedisEnterpriseCluster\nmetadata: {name: nokey, namespace: default}\nspec: {nodes: 3, clusterCredentialSecretName: nokey-admin}\n")
        .await;
    harness
        .create("apiVersion: app.redislabs.com/v1\nkind: RedisEnterpriseCluster\nmetadata: {name: even, namespace: default}\nspec: {nodes: 4}\n")
        .await;

    // The user's Secret: the cluster runs with its credentials, and the Secret is exactly as the user wrote it.
    let byo = wait_settled(&harness, "byo").await;
    assert_eq!(
        byo.status.and_then(|s| s.cluster_credential_secret_name).as_deref(),
        Some("byo-admin")
    );
    assert_eq!(harness.active_nodes("byo", "byo-admin").await, 3);
    let after = secrets.get("byo-admin").await.expect("secret");
    assert_eq!(
        after.resource_version(),
        mine.resource_version(),
        "the user's Secret is never written"
    );
    assert!(after.owner_references().is_empty());
    assert!(
        secrets.get_opt("byo").await.expect("get").is_none(),
        "no Secret of our own"
    );

    // A Secret without a password: a clear Ready=False, nothing else created, recovery once it is fixed.
    let nokey = eventually("the missing key to be reported", Duration::from_secs(20), || async {
        let rec = harness.recs().get("nokey").await.ok()?;
        (condition(&rec, "Ready")?.1 == "CredentialsSecretInvalid").then_some(rec)
    })
    .await;
    assert_eq!(
        condition(&nokey, "Ready"),
        Some((
            "False".into(),
            "CredentialsSecretInvalid".into(),
            "the credentials Secret default/nokey-admin has no `password` key; add `username` and `password` to it, \
             or delete it to have the agent generate one"
                .into()
        ))
    );
    assert_eq!(condition(&nokey, "Stalled").map(|c| c.0), Some("True".into()));
    let statefulsets: Api<StatefulSet> = Api::namespaced(harness.client.clone(), NAMESPACE);
    assert!(statefulsets.get_opt("nokey").await.expect("get").is_none());
    secrets
        .patch(
            "nokey-admin",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"password": "fixed-1"}})),
        )
        .await
        .expect("fix the secret");
    wait_settled(&harness, "nokey").await;

    // An invalid spec: Invalid, Stalled with the validation message, nothing written, shown by kubectl.
    let even = eventually("the invalid spec to be reported", Duration::from_secs(20), || async {
        let rec = harness.recs().get("even").await.ok()?;
        (state(&rec).as_deref() == Some("Invalid")).then_some(rec)
    })
    .await;
    assert_eq!(
        even.status.as_ref().and_then(|s| s.spec_status.as_deref()),
        Some("Invalid")
    );
    let (stalled, reason, message) = condition(&even, "Stalled").expect("stalled");
    assert_eq!((stalled.as_str(), reason.as_str()), ("True", "InvalidSpec"));
    assert!(
        message.ends_with("spec.nodes: a cluster of 4 nodes cannot keep a quorum; use an odd number of at least 3 (3, 5, 7...) so the cluster survives losing a minority of nodes"),
        "{message}"
    );
    assert!(statefulsets.get_opt("even").await.expect("get").is_none());
    assert!(secrets.get_opt("even").await.expect("get").is_none());
    let shown = kubectl(
        &kubeconfig,
        &[
            "get",
            "rec",
            "even",
            "-n",
            NAMESPACE,
            "-o",
            "jsonpath={.status.state}/{.status.specStatus}",
        ],
    );
    assert_eq!(shown, "Invalid/Invalid");
    assert!(
        events(&harness, "even")
            .await
            .iter()
            .any(|e| e.0 == "Warning" && e.1 == "InvalidSpec")
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_failures_during_bootstrap_are_reported_and_retried_with_backoff() {
    let harness = Harness::start().await;
    let readiness = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    {
        let readiness = readiness.clone();
        let config = watcher::Config::default().fields("metadata.name=flaky");
        let stream = watcher(harness.recs(), config).applied_objects();
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(Ok(rec)) = stream.next().await {
                if let Some((_, reason, message)) = condition(&rec, "Ready") {
                    readiness.lock().expect("lock").push((reason, message));
                }
            }
        });
    }
    // The first three bootstrap requests fail with 500, whichever node they go to.
    harness.sandbox.emulator.faults().fail_next(
        Some(Method::POST),
        "/v1/bootstrap",
        3,
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
    );
    let created = Instant::now();
    harness
        .create("apiVersion: app.redislabs.com/v1\nkind: RedisEnterpriseCluster\nmetadata: {name: flaky, namespace: default}\nspec: {nodes: 3}\n")
        .await;
    let rec = wait_settled(&harness, "flaky").await;
    // Three failures back off about 1 s, 2 s and 2 s (the test's cap), less up to 20% jitter, so at least 4 s in all;
    // the controller's own failure reports in status must not cut the backoff short.
    assert!(
        created.elapsed() >= Duration::from_secs(4),
        "recovered after {:?}",
        created.elapsed()
    );
    assert_eq!(harness.active_nodes("flaky", "flaky").await, 3);
    assert_eq!(condition(&rec, "Stalled").map(|c| c.0), Some("False".into()));
    let seen = readiness.lock().expect("lock").clone();
    assert!(
        seen.iter().any(|(reason, message)| reason == "RestApiUnavailable"
            && message.starts_with("failed to create the cluster on pod flaky-0: POST /v1/bootstrap/create_cluster failed with HTTP 500: internal_error")),
        "the failure was reported in Ready: {seen:?}"
    );
    let failures = harness
        .metrics
        .reconcile_failures
        .get_or_create(&ControllerCategoryLabels {
            controller: "cluster",
            category: "RestApiUnavailable",
        })
        .get();
    assert_eq!(failures, 3, "one failed reconcile per injected fault");
    let events = events(&harness, "flaky").await;
    assert!(
        events.iter().any(|e| e.0 == "Warning" && e.1 == "RestApiUnavailable"),
        "{events:?}"
    );
    assert!(
        events.iter().any(|e| e.0 == "Normal" && e.1 == "ClusterRunning"),
        "{events:?}"
    );
    assert!(
        events.iter().all(|e| e.0 == "Normal" || e.1 == "RestApiUnavailable"),
        "Warnings only for failures: {events:?}"
    );
    harness.stop().await;
}
