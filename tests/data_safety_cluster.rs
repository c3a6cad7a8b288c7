//! Data safety of clusters (issue 9, items 1 and 4) against the sandbox, with the real REC and REDB controllers:
//! `kubectl delete rec` with a database on the cluster keeps the REC (finalizer), its StatefulSet, pods and data
//! until the database is deleted; a protected REC is kept until the annotation goes; a deleted admin Secret of a
//! running cluster is `Stalled` ("restore the Secret") and never replaced by a new password; the admin Secret
//! outlives the REC, so a REC deleted and created again comes back Running; a namespace deletion still ends.
//! Checked with kube::Client, the real kubectl, the emulator's REST API and a real Redis client.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
mod support;

use redis_gitops::api::{RedisEnterpriseCluster, RedisEnterpriseDatabase};
use redis_gitops::controllers::cluster::{ClusterControllerSettings, run_with_settings};
use redis_gitops::controllers::database::{DatabaseSettings, run_with};
use redis_gitops::controllers::{ControllerContext, EnterpriseAccess};
use redis_gitops::enterprise::states::NodeStatus;
use redis_gitops::enterprise::types::Credentials;
use redis_gitops::enterprise::{ClientConfig, EnterpriseClient, RetryPolicy};
use redis_gitops::telemetry::{ControllerCategoryLabels, Metrics};
use redis_gitops_sandbox::{Sandbox, SandboxOptions};
use serde_json::json;
use support::kubectl;

const NAMESPACE: &str = "default";
const TIMEOUT: Duration = Duration::from_secs(90);

struct Harness {
    sandbox: Sandbox,
    client: kube::Client,
    metrics: Arc<Metrics>,
    kubeconfig: std::path::PathBuf,
    _temp: tempfile::TempDir,
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Harness {
    /// The sandbox with the REC and REDB controllers running, and a kubeconfig for kubectl.
    async fn start() -> Self {
        let sandbox = Sandbox::start(SandboxOptions {
            pod_ready_delay: Duration::from_millis(50),
            ..SandboxOptions::with_crds(redis_gitops::api::crds())
        })
        .await
        .expect("sandbox starts (needs redis-server)");
        let client = sandbox.apiserver.kube_client().expect("kube client");
        let temp = tempfile::tempdir().expect("temp dir");
        let kubeconfig = temp.path().join("kubeconfig");
        sandbox.apiserver.write_kubeconfig(&kubeconfig).expect("kubeconfig");
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
        let mut stops = Vec::new();
        let mut tasks = Vec::new();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        stops.push(stop);
        tasks.push(tokio::spawn(run_with_settings(
            context.clone(),
            ClusterControllerSettings {
                resync: Duration::from_millis(500),
                poll: Duration::from_millis(150),
                max_backoff: Duration::from_secs(1),
            },
            async move {
                let _ = stopped.await;
            },
        )));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        stops.push(stop);
        tasks.push(tokio::spawn(run_with(
            context,
            DatabaseSettings {
                resync: Duration::from_millis(800),
                pending_poll: Duration::from_millis(200),
                max_backoff: Duration::from_secs(1),
            },
            async move {
                let _ = stopped.await;
            },
        )));
        Self {
            sandbox,
            client,
            metrics,
            kubeconfig,
            _temp: temp,
            stops,
            tasks,
        }
    }

    fn recs(&self, namespace: &str) -> Api<RedisEnterpriseCluster> {
        Api::namespaced(self.client.clone(), namespace)
    }

    fn redbs(&self, namespace: &str) -> Api<RedisEnterpriseDatabase> {
        Api::namespaced(self.client.clone(), namespace)
    }

    fn secrets(&self, namespace: &str) -> Api<Secret> {
        Api::namespaced(self.client.clone(), namespace)
    }

    fn kubectl(&self, args: &[&str]) -> String {
        kubectl(&self.kubeconfig, args)
    }

    async fn create_rec(&self, namespace: &str, name: &str) -> RedisEnterpriseCluster {
        let rec: RedisEnterpriseCluster = serde_json::from_value(json!({
            "apiVersion": "app.redislabs.com/v1", "kind": "RedisEnterpriseCluster",
            "metadata": {"name": name, "namespace": namespace}, "spec": {"nodes": 3}
        }))
        .expect("REC fixture");
        self.recs(namespace)
            .create(&PostParams::default(), &rec)
            .await
            .expect("create REC")
    }

    async fn create_redb(&self, namespace: &str, name: &str, cluster: &str) {
        let redb: RedisEnterpriseDatabase = serde_json::from_value(json!({
            "apiVersion": "app.redislabs.com/v1alpha1", "kind": "RedisEnterpriseDatabase",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"redisEnterpriseCluster": {"name": cluster}, "memorySize": "100MB"}
        }))
        .expect("REDB fixture");
        self.redbs(namespace)
            .create(&PostParams::default(), &redb)
            .await
            .expect("create REDB");
    }

    async fn wait_settled(&self, namespace: &str, name: &str) -> RedisEnterpriseCluster {
        let recs = self.recs(namespace);
        eventually(&format!("REC {namespace}/{name} to be Running and Ready"), || async {
            recs.get(name).await.ok().filter(settled)
        })
        .await
    }

    async fn wait_database_ready(&self, namespace: &str, name: &str) {
        let redbs = self.redbs(namespace);
        eventually(&format!("REDB {namespace}/{name} to be Ready"), || async {
            let redb = redbs.get(name).await.ok()?;
            let ready = redb
                .status
                .as_ref()?
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            ready.then_some(())
        })
        .await;
    }

    /// A REST client of the cluster's service with `credentials`.
    fn cluster_client(&self, rec: &str, credentials: Credentials) -> EnterpriseClient {
        EnterpriseClient::new(ClientConfig {
            base_url: format!("https://{rec}.{NAMESPACE}.svc:9443"),
            credentials,
            ca_pem: self.sandbox.ca_pem().as_bytes().to_vec(),
            timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
            resolver: Some(Arc::new(self.sandbox.emulator.resolver())),
        })
        .expect("REST client")
    }

    /// A Redis connection to database `name` as an application makes it: address and port from the REST API's
    /// endpoint of the Service name, password from the database Secret.
    fn redis(
        &self,
        namespace: &str,
        service: &str,
        port: &str,
        password: &str,
    ) -> redis::RedisResult<redis::Connection> {
        let ip = self
            .sandbox
            .emulator
            .names()
            .lookup(&format!("{service}.{namespace}.svc"))
            .expect("the Service name resolves");
        let mut connection =
            redis::Client::open(format!("redis://{ip}:{port}"))?.get_connection_with_timeout(Duration::from_secs(5))?;
        redis::cmd("AUTH").arg(password).query::<()>(&mut connection)?;
        Ok(connection)
    }

    fn failures(&self, category: &'static str) -> u64 {
        self.metrics
            .reconcile_failures
            .get_or_create(&ControllerCategoryLabels {
                controller: "cluster",
                category,
            })
            .get()
    }

    async fn events(&self, namespace: &str, object: &str) -> Vec<(String, String, String)> {
        Api::<Event>::namespaced(self.client.clone(), namespace)
            .list(&Default::default())
            .await
            .expect("list events")
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(object))
            .map(|e| {
                (
                    e.type_.unwrap_or_default(),
                    e.reason.unwrap_or_default(),
                    e.note.unwrap_or_default(),
                )
            })
            .collect()
    }

    async fn stop(mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
        for task in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + TIMEOUT;
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

fn text(secret: &Secret, key: &str) -> String {
    secret
        .data
        .as_ref()
        .and_then(|data| data.get(key))
        .map(|bytes| String::from_utf8_lossy(&bytes.0).into_owned())
        .unwrap_or_default()
}

fn admin(secret: &Secret) -> Credentials {
    Credentials {
        username: text(secret, "username"),
        password: text(secret, "password"),
    }
}

async fn pods(harness: &Harness, namespace: &str, rec: &str) -> Vec<Pod> {
    Api::<Pod>::namespaced(harness.client.clone(), namespace)
        .list(&ListParams::default().labels(&format!("redis.io/cluster={rec}")))
        .await
        .expect("list pods")
        .items
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_delete_of_a_cluster_with_a_database_keeps_cluster_and_data_until_the_database_is_deleted() {
    let harness = Harness::start().await;
    harness.create_rec(NAMESPACE, "rec").await;
    let rec = harness.wait_settled(NAMESPACE, "rec").await;
    assert!(
        rec.finalizers().iter().any(|f| f == "redisgitops.dev/delete-cluster"),
        "{:?}",
        rec.finalizers()
    );
    harness.create_redb(NAMESPACE, "cache", "rec").await;
    harness.wait_database_ready(NAMESPACE, "cache").await;
    let secret = harness
        .secrets(NAMESPACE)
        .get("redb-cache")
        .await
        .expect("database Secret");
    let (service, port, password) = (
        text(&secret, "service_name"),
        text(&secret, "port"),
        text(&secret, "password"),
    );
    let mut connection = harness.redis(NAMESPACE, &service, &port, &password).expect("connect");
    redis::cmd("SET")
        .arg("greeting")
        .arg("hello")
        .query::<()>(&mut connection)
        .expect("SET");

    // kubectl delete: the REC stays, says why, and tells how to proceed.
    let out = harness.kubectl(&["delete", "rec", "rec", "-n", NAMESPACE, "--wait=false"]);
    assert!(out.contains("deleted"), "{out}");
    let expected = "cluster default/rec is not deleted while 1 database lives on it (default/cache): deleting the \
                    cluster would delete their data; delete the RedisEnterpriseDatabases first (kubectl delete \
                    redb), then the cluster goes";
    let recs = harness.recs(NAMESPACE);
    let held = eventually("the deletion of REC rec to be blocked", || async {
        let rec = recs.get("rec").await.ok()?;
        (condition(&rec, "Stalled")? == ("True".into(), "DeletionBlocked".into(), expected.into())).then_some(rec)
    })
    .await;
    assert!(held.metadata.deletion_timestamp.is_some());
    assert_eq!(
        condition(&held, "Ready"),
        Some(("False".into(), "DeletionBlocked".into(), expected.into()))
    );
    let events = harness.events(NAMESPACE, "rec").await;
    assert!(
        events.contains(&("Warning".into(), "DeletionBlocked".into(), expected.into())),
        "{events:?}"
    );
    let shown = harness.kubectl(&[
        "get",
        "rec",
        "rec",
        "-n",
        NAMESPACE,
        "-o",
        "jsonpath={.status.conditions}",
    ]);
    assert!(shown.contains("DeletionBlocked"), "{shown}");

    // While the finalizer holds, the nodes and the data are there, with the old password.
    let sts = Api::<StatefulSet>::namespaced(harness.client.clone(), NAMESPACE)
        .get("rec")
        .await
        .expect("the StatefulSet is kept");
    assert!(sts.metadata.deletion_timestamp.is_none());
    assert_eq!(pods(&harness, NAMESPACE, "rec").await.len(), 3);
    let mut connection = harness.redis(NAMESPACE, &service, &port, &password).expect("reconnect");
    let value: String = redis::cmd("GET").arg("greeting").query(&mut connection).expect("GET");
    assert_eq!(value, "hello");
    assert!(
        harness.redbs(NAMESPACE).get("cache").await.is_ok(),
        "the database is untouched"
    );

    // Deleting the database lets the cluster go; its children follow, the admin Secret stays.
    harness.kubectl(&["delete", "redb", "cache", "-n", NAMESPACE, "--wait=false"]);
    eventually("REC rec to be gone", || async {
        recs.get_opt("rec").await.ok()?.is_none().then_some(())
    })
    .await;
    let stateful_sets = Api::<StatefulSet>::namespaced(harness.client.clone(), NAMESPACE);
    eventually("the StatefulSet to be collected", || async {
        stateful_sets.get_opt("rec").await.ok()?.is_none().then_some(())
    })
    .await;
    assert!(harness.secrets(NAMESPACE).get_opt("rec").await.expect("get").is_some());
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_admin_secret_of_a_running_cluster_is_stalled_and_never_replaced_by_a_new_password() {
    let harness = Harness::start().await;
    harness.create_rec(NAMESPACE, "rec").await;
    harness.wait_settled(NAMESPACE, "rec").await;
    let secrets = harness.secrets(NAMESPACE);
    let original = secrets.get("rec").await.expect("admin Secret");
    let credentials = admin(&original);
    assert!(
        original.owner_references().is_empty(),
        "the admin Secret outlives the REC"
    );

    secrets
        .delete("rec", &DeleteParams::default())
        .await
        .expect("delete the admin Secret");
    let expected = "the admin credentials Secret default/rec does not exist but cluster default/rec was already \
                    bootstrapped (its status.state is Running); restore the Secret rec (keys `username` and \
                    `password`, with the cluster's current admin password, for example from a backup): the agent \
                    never generates a new admin password for an existing cluster";
    let recs = harness.recs(NAMESPACE);
    eventually("REC rec to be Stalled on the missing Secret", || async {
        let rec = recs.get("rec").await.ok()?;
        (condition(&rec, "Stalled")? == ("True".into(), "CredentialsSecretMissing".into(), expected.into()))
            .then_some(())
    })
    .await;
    let events = harness.events(NAMESPACE, "rec").await;
    assert!(
        events.contains(&("Warning".into(), "CredentialsSecretMissing".into(), expected.into())),
        "{events:?}"
    );
    // Several more reconciles later, still no Secret (so no new password) and the cluster still has the old one.
    let seen = harness.failures("CredentialsSecretMissing");
    eventually("two more reconciles", || async {
        (harness.failures("CredentialsSecretMissing") >= seen + 2).then_some(())
    })
    .await;
    assert!(
        secrets.get_opt("rec").await.expect("get").is_none(),
        "no new Secret appeared"
    );
    let nodes = harness
        .cluster_client("rec", credentials.clone())
        .nodes()
        .await
        .expect("the old password still works");
    assert_eq!(nodes.len(), 3);

    // Restored from a backup (its data and labels): the cluster is Ready again with the same password.
    let restored: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "rec", "namespace": NAMESPACE, "labels": original.labels()},
        "data": original.data,
    }))
    .expect("restored Secret");
    secrets
        .create(&PostParams::default(), &restored)
        .await
        .expect("restore the Secret");
    let rec = harness.wait_settled(NAMESPACE, "rec").await;
    assert_eq!(condition(&rec, "Stalled").map(|c| c.0), Some("False".into()));
    assert_eq!(admin(&secrets.get("rec").await.expect("Secret")), credentials);
    let nodes = harness
        .cluster_client("rec", credentials)
        .nodes()
        .await
        .expect("REST API with the old password");
    assert_eq!(nodes.iter().filter(|n| n.status == NodeStatus::Active).count(), 3);
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_without_databases_deleted_and_created_again_runs_with_the_admin_secret_it_kept() {
    let harness = Harness::start().await;
    let created = harness.create_rec(NAMESPACE, "rec").await;
    harness.wait_settled(NAMESPACE, "rec").await;
    let secrets = harness.secrets(NAMESPACE);
    let credentials = admin(&secrets.get("rec").await.expect("admin Secret"));

    // An owner reference left by an older agent is removed.
    let legacy = json!({"metadata": {"ownerReferences": [{
        "apiVersion": "app.redislabs.com/v1", "kind": "RedisEnterpriseCluster", "name": "rec",
        "uid": created.uid().expect("uid"), "controller": true, "blockOwnerDeletion": true
    }]}});
    secrets
        .patch("rec", &PatchParams::default(), &Patch::Merge(&legacy))
        .await
        .expect("add a legacy owner reference");
    eventually("the legacy owner reference to be removed", || async {
        secrets
            .get("rec")
            .await
            .ok()?
            .owner_references()
            .is_empty()
            .then_some(())
    })
    .await;

    // Protected: kubectl delete is refused until the annotation goes.
    harness.kubectl(&[
        "annotate",
        "rec",
        "rec",
        "-n",
        NAMESPACE,
        "redisgitops.dev/protect=true",
    ]);
    harness.kubectl(&["delete", "rec", "rec", "-n", NAMESPACE, "--wait=false"]);
    let expected = "cluster default/rec is protected (annotation redisgitops.dev/protect: \"true\") and is kept with \
                    every database on it; to delete it, remove the annotation: kubectl annotate rec rec -n default \
                    redisgitops.dev/protect-";
    let recs = harness.recs(NAMESPACE);
    eventually("the protected REC to be kept", || async {
        let rec = recs.get("rec").await.ok()?;
        (condition(&rec, "Stalled")? == ("True".into(), "DeletionBlocked".into(), expected.into())).then_some(())
    })
    .await;
    let events = harness.events(NAMESPACE, "rec").await;
    assert!(
        events.contains(&("Warning".into(), "DeletionBlocked".into(), expected.into())),
        "{events:?}"
    );
    assert_eq!(pods(&harness, NAMESPACE, "rec").await.len(), 3);
    harness.kubectl(&["annotate", "rec", "rec", "-n", NAMESPACE, "redisgitops.dev/protect-"]);

    // Released: the REC and its children go, the admin Secret stays.
    eventually("REC rec to be gone", || async {
        recs.get_opt("rec").await.ok()?.is_none().then_some(())
    })
    .await;
    let stateful_sets = Api::<StatefulSet>::namespaced(harness.client.clone(), NAMESPACE);
    eventually("the StatefulSet to be collected", || async {
        stateful_sets.get_opt("rec").await.ok()?.is_none().then_some(())
    })
    .await;
    assert_eq!(
        admin(&secrets.get("rec").await.expect("the admin Secret survived")),
        credentials
    );

    // Applied again (as from Git): the nodes come back with their old cluster and the kept password: Running.
    harness.create_rec(NAMESPACE, "rec").await;
    let rec = harness.wait_settled(NAMESPACE, "rec").await;
    assert_eq!(condition(&rec, "Ready").map(|c| c.1), Some("ClusterRunning".into()));
    assert_eq!(admin(&secrets.get("rec").await.expect("admin Secret")), credentials);
    let nodes = harness
        .cluster_client("rec", credentials)
        .nodes()
        .await
        .expect("REST API with the kept password");
    assert_eq!(nodes.iter().filter(|n| n.status == NodeStatus::Active).count(), 3);
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_namespace_of_a_cluster_and_its_database_still_ends() {
    let harness = Harness::start().await;
    let namespace: Namespace = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}
    }))
    .expect("namespace");
    let namespaces: Api<Namespace> = Api::all(harness.client.clone());
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .expect("create namespace");
    harness.create_rec("team", "rec").await;
    harness.wait_settled("team", "rec").await;
    harness.create_redb("team", "cache", "rec").await;
    harness.wait_database_ready("team", "cache").await;

    harness.kubectl(&["delete", "namespace", "team", "--wait=false"]);
    eventually("namespace team to be gone", || async {
        namespaces.get_opt("team").await.ok()?.is_none().then_some(())
    })
    .await;
    assert!(harness.recs("team").get_opt("rec").await.expect("get").is_none());
    harness.stop().await;
}
