//! Claim-template changes of a REC against the sandbox, which refuses StatefulSet updates outside the mutable
//! fields as kube-apiserver does: with `enablePersistentVolumeResize` a larger `volumeSize` grows every claim and
//! re-creates the StatefulSet around its running pods (orphan deletion, no pod restarted); without it, or for a
//! shrink, the REC is Stalled naming the field and the StatefulSet is left as it is.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use redis_gitops::api::RedisEnterpriseCluster;
use redis_gitops::controllers::cluster::{ClusterControllerSettings, run_with_settings};
use redis_gitops::controllers::{ControllerContext, EnterpriseAccess};
use redis_gitops::enterprise::RetryPolicy;
use redis_gitops::telemetry::Metrics;
use redis_gitops_sandbox::{Sandbox, SandboxOptions};
use serde_json::json;
use std::sync::Arc;

const NAMESPACE: &str = "default";

struct Harness {
    _sandbox: Sandbox,
    client: kube::Client,
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
            metrics: Arc::new(Metrics::default()),
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
            _sandbox: sandbox,
            client,
            stop: Some(stop),
            controller: Some(controller),
        }
    }

    fn recs(&self) -> Api<RedisEnterpriseCluster> {
        Api::namespaced(self.client.clone(), NAMESPACE)
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

fn settled(rec: &RedisEnterpriseCluster) -> bool {
    rec.status.as_ref().and_then(|s| s.state.as_deref()) == Some("Running")
        && condition(rec, "Ready").is_some_and(|c| c.0 == "True")
        && rec.status.as_ref().and_then(|s| s.observed_generation) == rec.metadata.generation
}

async fn wait_settled(harness: &Harness, name: &str) -> RedisEnterpriseCluster {
    eventually(
        &format!("REC {name} Running and Ready"),
        Duration::from_secs(90),
        || async { harness.recs().get(name).await.ok().filter(settled) },
    )
    .await
}

async fn create(harness: &Harness, name: &str, persistent: serde_json::Value) {
    let rec: RedisEnterpriseCluster = serde_json::from_value(json!({
        "apiVersion": "app.redislabs.com/v1", "kind": "RedisEnterpriseCluster",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"nodes": 3, "persistentSpec": persistent}}))
    .expect("REC fixture");
    harness
        .recs()
        .create(&PostParams::default(), &rec)
        .await
        .expect("create REC");
}

async fn patch_persistent(harness: &Harness, name: &str, persistent: serde_json::Value) {
    harness
        .recs()
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"persistentSpec": persistent}})),
        )
        .await
        .expect("patch REC");
}

fn template_size(sts: &StatefulSet) -> Option<String> {
    sts.spec
        .as_ref()?
        .volume_claim_templates
        .as_ref()?
        .first()?
        .spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")
        .map(|q| q.0.clone())
}

fn claim_size(claim: &PersistentVolumeClaim) -> Option<String> {
    claim
        .spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")
        .map(|q| q.0.clone())
}

async fn pod_uids(harness: &Harness, name: &str) -> Vec<String> {
    let pods: Api<Pod> = Api::namespaced(harness.client.clone(), NAMESPACE);
    let mut uids = Vec::new();
    for i in 0..3 {
        let pod = pods.get(&format!("{name}-{i}")).await.expect("pod");
        uids.push(pod.metadata.uid.unwrap_or_default());
    }
    uids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_larger_volume_grows_the_claims_and_keeps_the_pods_when_resize_is_enabled() {
    let harness = Harness::start().await;
    create(
        &harness,
        "grow",
        json!({"enabled": true, "volumeSize": "20Gi", "enablePersistentVolumeResize": true}),
    )
    .await;
    wait_settled(&harness, "grow").await;
    let sets: Api<StatefulSet> = Api::namespaced(harness.client.clone(), NAMESPACE);
    let before = sets.get("grow").await.expect("StatefulSet");
    let pods_before = pod_uids(&harness, "grow").await;

    patch_persistent(&harness, "grow", json!({"volumeSize": "40Gi"})).await;
    let after = eventually(
        "the StatefulSet re-created with 40Gi claims",
        Duration::from_secs(60),
        || async {
            sets.get_opt("grow")
                .await
                .ok()
                .flatten()
                .filter(|s| template_size(s).as_deref() == Some("40Gi"))
        },
    )
    .await;
    assert_ne!(
        after.metadata.uid, before.metadata.uid,
        "the StatefulSet was re-created"
    );
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(harness.client.clone(), NAMESPACE);
    for i in 0..3 {
        let claim = claims
            .get(&format!("redis-enterprise-storage-grow-{i}"))
            .await
            .expect("claim");
        assert_eq!(claim_size(&claim).as_deref(), Some("40Gi"), "claim {i} grown");
    }
    wait_settled(&harness, "grow").await;
    assert_eq!(pod_uids(&harness, "grow").await, pods_before, "no pod was restarted");
    let pods: Api<Pod> = Api::namespaced(harness.client.clone(), NAMESPACE);
    let owner = pods
        .get("grow-0")
        .await
        .expect("pod")
        .metadata
        .owner_references
        .unwrap_or_default();
    assert_eq!(
        owner.first().map(|o| o.uid.clone()),
        after.metadata.uid,
        "pods adopted by the new StatefulSet"
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volume_changes_the_agent_cannot_do_stall_naming_the_field() {
    let harness = Harness::start().await;
    create(&harness, "fixed", json!({"enabled": true, "volumeSize": "20Gi"})).await;
    wait_settled(&harness, "fixed").await;
    let sets: Api<StatefulSet> = Api::namespaced(harness.client.clone(), NAMESPACE);
    let before = sets.get("fixed").await.expect("StatefulSet");

    patch_persistent(&harness, "fixed", json!({"volumeSize": "40Gi"})).await;
    let stalled = eventually("Stalled for the resize", Duration::from_secs(60), || async {
        let rec = harness.recs().get("fixed").await.ok()?;
        condition(&rec, "Stalled").filter(|c| c.0 == "True")
    })
    .await;
    assert_eq!(stalled.1, "VolumeChangeRefused");
    assert!(
        stalled.2.starts_with(
            "cannot change the volumes of StatefulSet default/fixed: spec.persistentSpec.volumeSize grows the claims, \
             but spec.persistentSpec.enablePersistentVolumeResize is not true"
        ),
        "{}",
        stalled.2
    );

    patch_persistent(
        &harness,
        "fixed",
        json!({"volumeSize": "10Gi", "enablePersistentVolumeResize": true}),
    )
    .await;
    let shrink = eventually("Stalled for the shrink", Duration::from_secs(60), || async {
        let rec = harness.recs().get("fixed").await.ok()?;
        condition(&rec, "Stalled").filter(|c| c.0 == "True" && c.2.contains("shrinks"))
    })
    .await;
    assert!(
        shrink
            .2
            .contains("spec.persistentSpec.volumeSize shrinks the claims from 20Gi to 10Gi; volumes can only grow"),
        "{}",
        shrink.2
    );
    let after = sets.get("fixed").await.expect("StatefulSet");
    assert_eq!(
        after.metadata.uid, before.metadata.uid,
        "the StatefulSet is left as it is"
    );
    assert_eq!(template_size(&after).as_deref(), Some("20Gi"));

    // Back to the applied size: the cluster settles again.
    patch_persistent(&harness, "fixed", json!({"volumeSize": "20Gi"})).await;
    wait_settled(&harness, "fixed").await;
    harness.stop().await;
}
