//! Data safety of the REDB controller against the sandbox (issue 9): a REDB owns only the database (bdb) whose uid
//! it recorded, so a REDB of the same name in another namespace neither takes over nor deletes the first team's
//! database; a REC is used from another namespace only when it allows that namespace; a deleted database Secret
//! never rotates the password; a protected REDB keeps its database when deleted with kubectl or with its namespace;
//! and an agent that dies between `POST /v1/bdbs` and the status write leaves exactly one database, which the next
//! agent recognises. A real Redis client checks that the first database's data and password survive each time.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::Method;
use k8s_openapi::api::core::v1::{Event, Namespace, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use redis_gitops::api::{RedisEnterpriseCluster, RedisEnterpriseDatabase};
use redis_gitops::controllers::database::{DatabaseSettings, FINALIZER, run_with};
use redis_gitops::controllers::{ControllerContext, EnterpriseAccess};
use redis_gitops::enterprise::states::BootstrapState;
use redis_gitops::enterprise::types::{BootstrapCluster, BootstrapNode, BootstrapRequest, Credentials, NodeIdentity};
use redis_gitops::enterprise::{ClientConfig, EnterpriseClient, RetryPolicy};
use redis_gitops::telemetry::Metrics;
use redis_gitops_sandbox::enterprise::{ClusterKey, RecordedRequest};
use redis_gitops_sandbox::{Sandbox, SandboxOptions};
use serde_json::{Value, json};
use support::kubectl;

const ADMIN_PASSWORD: &str = "admin-password-1";
const REST_TIMEOUT: Duration = Duration::from_secs(2);
/// Namespaces besides `default` that the tests use.
const TENANT_NAMESPACES: [&str; 2] = ["t3", "t4"];

fn admin() -> Credentials {
    Credentials {
        username: "admin@example.com".into(),
        password: ADMIN_PASSWORD.into(),
    }
}

/// One running database controller (the agent's part under test); aborting it is the agent dying.
struct Agent {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Agent {
    /// Stops at once, in the middle of whatever it does (the process dying).
    async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.task).await;
    }
}

/// A sandbox with one bootstrapped cluster `default/rec` (Running), the namespaces `t3` and `t4`, a kubeconfig for
/// the real kubectl, and the database controller running.
struct Environment {
    sandbox: Sandbox,
    kube: kube::Client,
    rest: EnterpriseClient,
    kubeconfig: std::path::PathBuf,
    _dir: tempfile::TempDir,
    agent: Option<Agent>,
}

impl Environment {
    fn databases(&self, namespace: &str) -> Api<RedisEnterpriseDatabase> {
        Api::namespaced(self.kube.clone(), namespace)
    }

    fn secrets(&self, namespace: &str) -> Api<Secret> {
        Api::namespaced(self.kube.clone(), namespace)
    }

    fn writes(&self) -> Vec<RecordedRequest> {
        self.sandbox
            .emulator
            .requests()
            .all()
            .into_iter()
            .filter(RecordedRequest::is_write)
            .collect()
    }

    fn kubectl(&self, args: &[&str]) -> String {
        kubectl(&self.kubeconfig, args)
    }

    /// The bdbs of this name on the cluster.
    async fn bdbs_named(&self, name: &str) -> Vec<u64> {
        self.rest
            .databases()
            .await
            .expect("list databases")
            .into_iter()
            .filter(|bdb| bdb.name == name)
            .map(|bdb| bdb.uid)
            .collect()
    }

    async fn stop(mut self) {
        if let Some(agent) = self.agent.take() {
            agent.stop().await;
        }
    }
}

fn rest_client(sandbox: &Sandbox, host: &str) -> EnterpriseClient {
    EnterpriseClient::new(ClientConfig {
        base_url: format!("https://{host}:9443"),
        credentials: admin(),
        ca_pem: sandbox.ca_pem().as_bytes().to_vec(),
        timeout: Duration::from_secs(5),
        retry: RetryPolicy::default(),
        resolver: Some(Arc::new(sandbox.emulator.resolver())),
    })
    .expect("client builds")
}

async fn bootstrap(client: &EnterpriseClient, action: &str, ip: &str, members: Vec<String>) {
    client
        .start_bootstrap(&BootstrapRequest {
            action: action.into(),
            cluster: BootstrapCluster {
                name: "rec.default.svc.cluster.local".into(),
                nodes: members,
            },
            node: BootstrapNode {
                identity: NodeIdentity { addr: ip.into() },
            },
            credentials: admin(),
            license: None,
        })
        .await
        .expect("bootstrap accepted");
    wait("bootstrap", || async {
        client.bootstrap().await.ok().map(|b| b.bootstrap_status.state) == Some(BootstrapState::Completed)
    })
    .await;
}

/// Polls `check` every 50 ms for up to 30 s.
async fn wait<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts a database controller against the sandbox.
fn start_agent(sandbox: &Sandbox, kube: &kube::Client) -> Agent {
    let context = ControllerContext {
        client: kube.clone(),
        enterprise: EnterpriseAccess {
            ca_pem: sandbox.ca_pem().as_bytes().to_vec(),
            resolver: Some(Arc::new(sandbox.emulator.resolver())),
            timeout: REST_TIMEOUT,
            retry: RetryPolicy {
                attempts: 3,
                initial_backoff: Duration::from_millis(50),
                max_backoff: Duration::from_millis(200),
            },
        },
        metrics: Arc::new(Metrics::default()),
        instance: Some("test".into()),
        clients: Default::default(),
    };
    let settings = DatabaseSettings {
        resync: Duration::from_millis(800),
        pending_poll: Duration::from_millis(200),
        max_backoff: Duration::from_secs(2),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(run_with(context, settings, async move {
        let _ = stopped.await;
    }));
    Agent { stop: Some(stop), task }
}

async fn start() -> Environment {
    let sandbox = Sandbox::start(SandboxOptions::with_crds(redis_gitops::api::crds()))
        .await
        .expect("sandbox starts (needs redis-server)");
    let kube = sandbox.apiserver.kube_client().expect("kube client");
    let key = ClusterKey::new("default", "rec");
    let mut ips = Vec::new();
    for pod in ["rec-0", "rec-1", "rec-2"] {
        ips.push(sandbox.emulator.add_node(&key, pod).expect("node").ip.to_string());
    }
    bootstrap(
        &rest_client(&sandbox, "rec-0.rec-headless.default.svc"),
        "create_cluster",
        &ips[0],
        vec![],
    )
    .await;
    for (index, ip) in ips.iter().enumerate().skip(1) {
        bootstrap(
            &rest_client(&sandbox, &format!("rec-{index}.rec-headless.default.svc")),
            "join_cluster",
            ip,
            vec!["rec-0.rec-headless.default.svc".into()],
        )
        .await;
    }
    let namespaces: Api<Namespace> = Api::all(kube.clone());
    for namespace in TENANT_NAMESPACES {
        let object: Namespace = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}
        }))
        .expect("namespace");
        namespaces
            .create(&PostParams::default(), &object)
            .await
            .expect("namespace created");
    }
    let clusters: Api<RedisEnterpriseCluster> = Api::namespaced(kube.clone(), "default");
    let rec: RedisEnterpriseCluster = serde_json::from_value(json!({
        "apiVersion": "app.redislabs.com/v1", "kind": "RedisEnterpriseCluster",
        "metadata": {"name": "rec", "namespace": "default"}, "spec": {"nodes": 3}
    }))
    .expect("rec");
    clusters
        .create(&PostParams::default(), &rec)
        .await
        .expect("rec created");
    clusters
        .patch_status(
            "rec",
            &PatchParams::apply("test/cluster-state").force(),
            &Patch::Apply(json!({
                "apiVersion": "app.redislabs.com/v1", "kind": "RedisEnterpriseCluster",
                "status": {"state": "Running"}
            })),
        )
        .await
        .expect("REC marked Running");
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "rec", "namespace": "default"},
        "stringData": {"username": "admin@example.com", "password": ADMIN_PASSWORD}
    }))
    .expect("secret");
    Api::<Secret>::namespaced(kube.clone(), "default")
        .create(&PostParams::default(), &secret)
        .await
        .expect("admin secret created");
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    sandbox.apiserver.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let agent = start_agent(&sandbox, &kube);
    Environment {
        rest: rest_client(&sandbox, "rec.default.svc"),
        sandbox,
        kube,
        kubeconfig,
        _dir: dir,
        agent: Some(agent),
    }
}

/// Lets REDBs of `namespaces` (comma-separated, or `*`) use `default/rec`.
async fn allow_namespaces(environment: &Environment, namespaces: &str) {
    Api::<RedisEnterpriseCluster>::namespaced(environment.kube.clone(), "default")
        .patch(
            "rec",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {
                "redisgitops.dev/allowed-database-namespaces": namespaces
            }}})),
        )
        .await
        .expect("REC annotated");
}

async fn create_database(environment: &Environment, namespace: &str, name: &str, annotations: Value, spec: Value) {
    let redb: RedisEnterpriseDatabase = serde_json::from_value(json!({
        "apiVersion": "app.redislabs.com/v1alpha1", "kind": "RedisEnterpriseDatabase",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations}, "spec": spec
    }))
    .expect("redb");
    environment
        .databases(namespace)
        .create(&PostParams::default(), &redb)
        .await
        .expect("redb created");
}

fn condition(redb: &RedisEnterpriseDatabase, type_: &str) -> Option<(String, String, String)> {
    redb.status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Waits until the REDB is Ready for its current generation and returns it.
async fn wait_ready(environment: &Environment, namespace: &str, name: &str) -> RedisEnterpriseDatabase {
    let databases = environment.databases(namespace);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let redb = databases.get(name).await.expect("redb");
        let ready = condition(&redb, "Ready").is_some_and(|(status, _, _)| status == "True");
        let current = redb.status.as_ref().and_then(|s| s.observed_generation) == redb.metadata.generation;
        if ready && current {
            return redb;
        }
        assert!(
            Instant::now() < deadline,
            "{namespace}/{name} did not become Ready: {:?}",
            redb.status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the REDB is Stalled with `reason` and returns the condition's message.
async fn wait_stalled(environment: &Environment, namespace: &str, name: &str, reason: &str) -> String {
    let databases = environment.databases(namespace);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let redb = databases.get(name).await.expect("redb");
        if let Some((status, found, message)) = condition(&redb, "Stalled")
            && status == "True"
            && found == reason
        {
            return message;
        }
        assert!(
            Instant::now() < deadline,
            "{namespace}/{name} did not become Stalled ({reason}): {:?}",
            redb.status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for a Warning event with `reason` about `name` in `namespace`.
async fn wait_warning(environment: &Environment, namespace: &str, name: &str, reason: &str) {
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(environment.kube.clone(), namespace);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen: Vec<(Option<String>, Option<String>, Option<String>)> = events
            .list(&Default::default())
            .await
            .expect("events")
            .items
            .into_iter()
            .map(|e| (e.type_, e.reason, e.regarding.and_then(|r| r.name)))
            .collect();
        let wanted = (
            Some("Warning".to_string()),
            Some(reason.to_string()),
            Some(name.to_string()),
        );
        if seen.contains(&wanted) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no Warning event {reason} about {namespace}/{name}: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn uid_of(redb: &RedisEnterpriseDatabase) -> u64 {
    redb.status
        .as_ref()
        .and_then(|s| s.database_uid.as_deref())
        .expect("uid recorded")
        .parse()
        .expect("numeric uid")
}

fn secret_text(secret: &Secret, key: &str) -> String {
    secret
        .data
        .as_ref()
        .and_then(|data| data.get(key))
        .map(|bytes| String::from_utf8_lossy(&bytes.0).into_owned())
        .unwrap_or_default()
}

/// Where and how an application reaches a database: the Service's address, the port and the password.
struct Access {
    ip: String,
    port: String,
    password: String,
}

/// What an application reads from the database Secret (and the Service name it resolves).
async fn application_view(environment: &Environment, namespace: &str, secret_name: &str) -> Access {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let secret = environment.secrets(namespace).get(secret_name).await.expect("secret");
        let service = secret_text(&secret, "service_name");
        // The emulator serves database names in its cluster's namespace (`default`), whatever the REDB's.
        let name = format!("{service}.default.svc");
        if let Some(ip) = environment.sandbox.emulator.names().lookup(&name) {
            return Access {
                ip: ip.to_string(),
                port: secret_text(&secret, "port"),
                password: secret_text(&secret, "password"),
            };
        }
        assert!(Instant::now() < deadline, "the Service name {name:?} does not resolve");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn connect(credentials: &Access) -> redis::RedisResult<redis::Connection> {
    let mut connection = redis::Client::open(format!("redis://{}:{}", credentials.ip, credentials.port))?
        .get_connection_with_timeout(Duration::from_secs(5))?;
    redis::cmd("AUTH")
        .arg(&credentials.password)
        .query::<()>(&mut connection)?;
    Ok(connection)
}

fn write_value(credentials: &Access, key: &str, value: &str) {
    let mut connection = connect(credentials).expect("the application connects");
    redis::cmd("SET")
        .arg(key)
        .arg(value)
        .query::<()>(&mut connection)
        .expect("SET");
}

fn read_value(credentials: &Access, key: &str) -> String {
    let mut connection = connect(credentials).expect("the application still connects with its password");
    redis::cmd("GET").arg(key).query(&mut connection).expect("GET")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redb_of_a_taken_name_in_another_namespace_is_stalled_and_never_touches_the_first_database() {
    let environment = start().await;
    create_database(
        &environment,
        "default",
        "orders",
        json!({}),
        json!({"memorySize": "100MB"}),
    )
    .await;
    let first = wait_ready(&environment, "default", "orders").await;
    let uid = uid_of(&first);
    let credentials = application_view(&environment, "default", "redb-orders").await;
    write_value(&credentials, "order:1", "paid");
    environment.sandbox.emulator.requests().clear();

    // A REC of another namespace is not used without its owner's consent.
    create_database(
        &environment,
        "t3",
        "orders",
        json!({}),
        json!({"memorySize": "300MB", "redisEnterpriseCluster": {"name": "rec"}}),
    )
    .await;
    let message = wait_stalled(&environment, "t3", "orders", "ClusterNotAllowed").await;
    assert_eq!(
        message,
        "RedisEnterpriseCluster rec is not in namespace t3, and the one in namespace default does not allow \
         databases from namespace t3; its owner can allow them with the annotation \
         redisgitops.dev/allowed-database-namespaces: \"t3\" (or \"*\") on that cluster, or put the database in the \
         cluster's namespace"
    );

    // Allowed, the name is still taken by default/orders' database: Stalled, naming the owner.
    allow_namespaces(&environment, "t3, t4").await;
    let message = wait_stalled(&environment, "t3", "orders", "DatabaseNameTaken").await;
    assert_eq!(
        message,
        format!(
            "database name orders on cluster default/rec is taken by database uid {uid} of RedisEnterpriseDatabase \
             default/orders; a database name is unique in a cluster: rename this REDB or use another cluster"
        )
    );
    wait_warning(&environment, "t3", "orders", "DatabaseNameTaken").await;
    let second = environment.databases("t3").get("orders").await.expect("redb");
    assert_eq!(second.status.as_ref().and_then(|s| s.database_uid.clone()), None);
    assert!(
        environment
            .secrets("t3")
            .get_opt("redb-orders")
            .await
            .expect("get")
            .is_none(),
        "no Secret (and no password) for a database t3 does not own"
    );

    // Explicit adoption cannot take a database another REDB owns (a spec change too, to see the reconcile).
    let generation = environment
        .databases("t3")
        .patch(
            "orders",
            &PatchParams::default(),
            &Patch::Merge(json!({
                "metadata": {"annotations": {"redisgitops.dev/adopt-database": uid.to_string()}},
                "spec": {"memorySize": "200MB"}
            })),
        )
        .await
        .expect("annotated")
        .metadata
        .generation;
    let databases = environment.databases("t3");
    wait("t3/orders to be looked at again", || async {
        let redb = databases.get("orders").await.expect("redb");
        redb.status
            .iter()
            .flat_map(|s| s.conditions.iter().flatten())
            .any(|c| c.type_ == "Stalled" && c.observed_generation == generation)
    })
    .await;
    assert_eq!(
        wait_stalled(&environment, "t3", "orders", "DatabaseNameTaken").await,
        message
    );
    assert_eq!(
        environment.writes(),
        [],
        "nothing written to the REST API since default/orders was Ready"
    );
    assert_eq!(
        read_value(&credentials, "order:1"),
        "paid",
        "default's data and password survive"
    );
    let live = environment.rest.database(uid).await.expect("get").expect("bdb");
    assert_eq!(
        live.other.get("memory_size"),
        Some(&json!(104_857_600u64)),
        "default's memory size is unchanged"
    );

    // Deleting t3/orders deletes nothing on the cluster.
    environment
        .databases("t3")
        .delete("orders", &DeleteParams::default())
        .await
        .expect("deleted");
    wait("t3/orders to go", || async {
        databases.get_opt("orders").await.expect("get").is_none()
    })
    .await;
    assert_eq!(environment.bdbs_named("orders").await, [uid]);
    assert!(
        !environment.writes().iter().any(|r| r.method == "DELETE"),
        "{:?}",
        environment.writes()
    );
    assert_eq!(read_value(&credentials, "order:1"), "paid");
    let first = wait_ready(&environment, "default", "orders").await;
    assert_eq!(uid_of(&first), uid);
    environment.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_secret_of_an_existing_database_stalls_and_never_rotates_the_password() {
    let environment = start().await;
    create_database(
        &environment,
        "default",
        "payments",
        json!({}),
        json!({"memorySize": "100MB"}),
    )
    .await;
    let uid = uid_of(&wait_ready(&environment, "default", "payments").await);
    let credentials = application_view(&environment, "default", "redb-payments").await;
    write_value(&credentials, "balance", "42");
    environment.sandbox.emulator.requests().clear();

    environment
        .secrets("default")
        .delete("redb-payments", &DeleteParams::default())
        .await
        .expect("secret deleted");
    let message = wait_stalled(&environment, "default", "payments", "DatabaseSecretMissing").await;
    assert_eq!(
        message,
        format!(
            "database payments (uid {uid}) exists on cluster default/rec but its Secret default/redb-payments is \
             missing; restore the Secret redb-payments (key password) with the database's current password: a new \
             password is never generated for a database that exists"
        )
    );
    wait_warning(&environment, "default", "payments", "DatabaseSecretMissing").await;
    assert_eq!(environment.writes(), [], "no PUT /passwords, no write at all");
    assert!(
        environment
            .secrets("default")
            .get_opt("redb-payments")
            .await
            .expect("get")
            .is_none(),
        "no new password was stored"
    );
    assert_eq!(
        read_value(&credentials, "balance"),
        "42",
        "the old password still works"
    );

    // A Secret without the key is refused the same way.
    let restore = |data: Value| {
        serde_json::from_value::<Secret>(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "redb-payments", "namespace": "default"}, "stringData": data
        }))
        .expect("secret")
    };
    environment
        .secrets("default")
        .create(&PostParams::default(), &restore(json!({"pass": "wrong key"})))
        .await
        .expect("secret created");
    // A Secret the user creates is not watched: the resync sees it.
    let databases = environment.databases("default");
    wait("the Secret without its key to show", || async {
        let redb = databases.get("payments").await.expect("redb");
        condition(&redb, "Stalled").is_some_and(|(_, _, message)| message.contains("no key password"))
    })
    .await;
    let message = wait_stalled(&environment, "default", "payments", "DatabaseSecretMissing").await;
    assert_eq!(
        message,
        format!(
            "database payments (uid {uid}) exists on cluster default/rec but its Secret default/redb-payments has \
             no key password; restore the Secret redb-payments (key password) with the database's current \
             password: a new password is never generated for a database that exists"
        )
    );
    assert_eq!(environment.writes(), []);

    // Restored with the current password: Ready again, still without a password change.
    environment
        .secrets("default")
        .delete("redb-payments", &DeleteParams::default())
        .await
        .expect("secret deleted");
    environment
        .secrets("default")
        .create(
            &PostParams::default(),
            &restore(json!({"password": credentials.password.clone()})),
        )
        .await
        .expect("secret restored");
    wait("Ready after the restore", || async {
        let redb = databases.get("payments").await.expect("redb");
        condition(&redb, "Ready").is_some_and(|(status, _, _)| status == "True")
    })
    .await;
    // The restored Secret lacks the digest of the password the database has, so its password is given to the
    // database once: it is the same, and the clients keep working.
    let writes = environment.writes();
    assert!(
        writes.iter().all(|r| r.path == format!("/v1/bdbs/{uid}/passwords")) && writes.len() <= 1,
        "{writes:?}"
    );
    assert_eq!(read_value(&credentials, "balance"), "42");
    environment.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protected_redb_deleted_with_kubectl_or_its_namespace_keeps_its_database() {
    let environment = start().await;
    let protect = json!({"redisgitops.dev/protect": "true"});
    create_database(
        &environment,
        "default",
        "vault",
        protect.clone(),
        json!({"memorySize": "100MB"}),
    )
    .await;
    let uid = uid_of(&wait_ready(&environment, "default", "vault").await);
    let credentials = application_view(&environment, "default", "redb-vault").await;
    write_value(&credentials, "gold", "1kg");
    environment.sandbox.emulator.requests().clear();

    environment.kubectl(&["delete", "redb", "vault", "-n", "default", "--wait=false"]);
    let message = wait_stalled(&environment, "default", "vault", "DeletionProtected").await;
    assert_eq!(
        message,
        format!(
            "database vault (uid {uid}) is protected (redisgitops.dev/protect: \"true\") and was not deleted; to \
             delete it and its data, remove that annotation; to remove this REDB and keep the database, add the \
             annotation redisgitops.dev/deletion-policy: orphan"
        )
    );
    wait_warning(&environment, "default", "vault", "DeletionProtected").await;
    let redb = environment
        .databases("default")
        .get("vault")
        .await
        .expect("the REDB stays");
    assert!(redb.meta().deletion_timestamp.is_some());
    assert!(redb.finalizers().iter().any(|f| f == FINALIZER));
    assert_eq!(environment.bdbs_named("vault").await, [uid]);
    assert_eq!(environment.writes(), [], "nothing deleted");
    assert_eq!(read_value(&credentials, "gold"), "1kg");

    // The orphan annotation lets the REDB go; the database and its Secret stay.
    environment.kubectl(&[
        "annotate",
        "redb",
        "vault",
        "-n",
        "default",
        "redisgitops.dev/deletion-policy=orphan",
    ]);
    let databases = environment.databases("default");
    wait("the orphaned REDB to go", || async {
        databases.get_opt("vault").await.expect("get").is_none()
    })
    .await;
    assert_eq!(environment.bdbs_named("vault").await, [uid]);
    assert_eq!(environment.writes(), []);
    let secret = environment
        .secrets("default")
        .get("redb-vault")
        .await
        .expect("the Secret stays");
    assert!(secret.owner_references().is_empty(), "{:?}", secret.owner_references());
    assert_eq!(read_value(&credentials, "gold"), "1kg");

    // Removing the protection of a deleted REDB is how its database is deleted on purpose.
    create_database(
        &environment,
        "default",
        "scratch",
        protect.clone(),
        json!({"memorySize": "100MB"}),
    )
    .await;
    let scratch = uid_of(&wait_ready(&environment, "default", "scratch").await);
    environment.kubectl(&["delete", "redb", "scratch", "-n", "default", "--wait=false"]);
    wait_stalled(&environment, "default", "scratch", "DeletionProtected").await;
    assert_eq!(environment.bdbs_named("scratch").await, [scratch]);
    environment.kubectl(&[
        "annotate",
        "redb",
        "scratch",
        "-n",
        "default",
        "redisgitops.dev/protect-",
    ]);
    wait("the released REDB and its database to go", || async {
        databases.get_opt("scratch").await.expect("get").is_none()
    })
    .await;
    assert_eq!(environment.bdbs_named("scratch").await, Vec::<u64>::new());

    // Deleting the namespace of a protected REDB keeps its database too.
    allow_namespaces(&environment, "t4").await;
    create_database(
        &environment,
        "t4",
        "ledger",
        protect,
        json!({"memorySize": "100MB", "redisEnterpriseCluster": {"name": "rec"}}),
    )
    .await;
    let ledger = uid_of(&wait_ready(&environment, "t4", "ledger").await);
    let ledger_credentials = application_view(&environment, "t4", "redb-ledger").await;
    write_value(&ledger_credentials, "entry", "1");
    environment.kubectl(&["delete", "namespace", "t4", "--wait=false"]);
    wait_stalled(&environment, "t4", "ledger", "DeletionProtected").await;
    let namespaces: Api<Namespace> = Api::all(environment.kube.clone());
    assert!(
        namespaces.get_opt("t4").await.expect("get").is_some(),
        "the namespace waits for the REDB"
    );
    assert_eq!(environment.bdbs_named("ledger").await, [ledger]);
    assert_eq!(read_value(&ledger_credentials, "entry"), "1");
    environment.kubectl(&[
        "annotate",
        "redb",
        "ledger",
        "-n",
        "t4",
        "redisgitops.dev/deletion-policy=orphan",
    ]);
    wait("the namespace to go", || async {
        namespaces.get_opt("t4").await.expect("get").is_none()
    })
    .await;
    assert_eq!(environment.bdbs_named("ledger").await, [ledger]);
    assert_eq!(read_value(&ledger_credentials, "entry"), "1");
    environment.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_dying_between_the_create_request_and_the_status_write_leaves_one_database() {
    let mut environment = start().await;
    let status_path = "/apis/app.redislabs.com/v1alpha1/namespaces/default/redisenterprisedatabases/crash/status";
    // The create request is answered slowly, so the test sees the intent recorded before the database exists.
    environment
        .sandbox
        .emulator
        .faults()
        .delay_next(Some(Method::POST), "/v1/bdbs", 1, Duration::from_millis(1500));
    create_database(
        &environment,
        "default",
        "crash",
        json!({}),
        json!({"memorySize": "100MB"}),
    )
    .await;
    let databases = environment.databases("default");
    wait("the creation intent to be recorded", || async {
        let redb = databases.get("crash").await.expect("redb");
        redb.status.as_ref().is_some_and(|s| s.pending_creation.is_some())
    })
    .await;
    assert_eq!(
        environment.bdbs_named("crash").await,
        Vec::<u64>::new(),
        "recorded before the POST"
    );
    // From now on no status write reaches the API server, and once the database exists the agent dies.
    environment.sandbox.apiserver.faults().fail_next(
        Some("PATCH"),
        status_path,
        100_000,
        500,
        "the API server is down",
    );
    wait("the database to be created", || async {
        !environment.bdbs_named("crash").await.is_empty()
    })
    .await;
    environment.agent.take().expect("agent").kill().await;
    environment.sandbox.apiserver.faults().clear();
    let redb = databases.get("crash").await.expect("redb");
    let status = redb.status.clone().expect("status");
    let pending = status.pending_creation.clone().expect("the intent survives the agent");
    assert_eq!(
        (pending.name.as_str(), pending.cluster.as_str()),
        ("crash", "default/rec")
    );
    assert_eq!(status.database_uid, None, "the agent died before recording the uid");
    let created = environment.bdbs_named("crash").await;
    assert_eq!(created.len(), 1);

    // The next agent recognises the database it created: no second POST, uid recorded, the Secret's password works.
    environment.sandbox.emulator.requests().clear();
    environment.agent = Some(start_agent(&environment.sandbox, &environment.kube));
    let redb = wait_ready(&environment, "default", "crash").await;
    assert_eq!(uid_of(&redb), created[0]);
    // The marker is gone (server-side apply may leave an empty object, which means none).
    assert_eq!(
        redb.status
            .as_ref()
            .and_then(|s| s.pending_creation.clone())
            .filter(|pending| !pending.name.is_empty()),
        None
    );
    assert_eq!(environment.bdbs_named("crash").await, created, "no duplicate");
    assert!(
        !environment
            .writes()
            .iter()
            .any(|r| r.method == "POST" && r.path == "/v1/bdbs"),
        "{:?}",
        environment.writes()
    );
    let credentials = application_view(&environment, "default", "redb-crash").await;
    write_value(&credentials, "survived", "yes");
    assert_eq!(read_value(&credentials, "survived"), "yes");
    let events: Api<Event> = Api::namespaced(environment.kube.clone(), "default");
    wait("the resumed creation to be reported", || async {
        events
            .list(&Default::default())
            .await
            .expect("events")
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some("DatabaseCreationResumed"))
    })
    .await;

    // Deleting it deletes that one database (its uid is recorded now).
    databases
        .delete("crash", &DeleteParams::default())
        .await
        .expect("deleted");
    wait("the REDB to go", || async {
        databases.get_opt("crash").await.expect("get").is_none()
    })
    .await;
    assert_eq!(environment.bdbs_named("crash").await, Vec::<u64>::new());
    environment.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redb_deleted_while_its_cluster_waits_to_be_deleted_deletes_its_database() {
    let environment = start().await;
    create_database(
        &environment,
        "default",
        "session",
        json!({}),
        json!({"memorySize": "100MB"}),
    )
    .await;
    let uid = uid_of(&wait_ready(&environment, "default", "session").await);
    // The REC is deleted but held by a finalizer (as the cluster controller holds it while REDBs live on it); its
    // cluster still runs.
    let clusters: Api<RedisEnterpriseCluster> = Api::namespaced(environment.kube.clone(), "default");
    clusters
        .patch(
            "rec",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["test/hold"]}})),
        )
        .await
        .expect("finalizer added");
    clusters
        .delete("rec", &DeleteParams::default())
        .await
        .expect("rec deleted");
    environment
        .databases("default")
        .delete("session", &DeleteParams::default())
        .await
        .expect("redb deleted");
    let databases = environment.databases("default");
    wait("the REDB to go", || async {
        databases.get_opt("session").await.expect("get").is_none()
    })
    .await;
    assert_eq!(
        environment.bdbs_named("session").await,
        Vec::<u64>::new(),
        "database {uid} deleted, not left behind on the cluster"
    );
    clusters
        .patch(
            "rec",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .expect("finalizer removed");
    environment.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adoption_annotation_that_names_no_database_or_another_one_creates_and_changes_nothing() {
    let environment = start().await;
    let body = serde_json::from_value(
        json!({"name": "legacy", "memory_size": 104_857_600u64, "authentication_redis_pass": "legacy-password"}),
    )
    .expect("body");
    let legacy = environment.rest.create_database(&body).await.expect("created by hand");
    environment.sandbox.emulator.requests().clear();

    create_database(
        &environment,
        "default",
        "legacy",
        json!({"redisgitops.dev/adopt-database": "someone-else"}),
        json!({"memorySize": "300MB"}),
    )
    .await;
    assert_eq!(
        wait_stalled(&environment, "default", "legacy", "DatabaseNameTaken").await,
        format!(
            "database name legacy on cluster default/rec is taken by database uid {} (a database not managed by \
             redis-gitops), and the annotation redisgitops.dev/adopt-database: \"someone-else\" does not name it; \
             set it to \"legacy\" to adopt that database, or rename this REDB",
            legacy.uid
        )
    );

    create_database(
        &environment,
        "default",
        "fresh",
        json!({"redisgitops.dev/adopt-database": "fresh"}),
        json!({"memorySize": "100MB"}),
    )
    .await;
    assert_eq!(
        wait_stalled(&environment, "default", "fresh", "AdoptionTargetMissing").await,
        "the annotation redisgitops.dev/adopt-database: \"fresh\" asks to adopt database fresh, but cluster \
         default/rec has no database named fresh; remove the annotation to create a new database"
    );
    assert_eq!(environment.writes(), [], "nothing created, nothing changed");
    assert!(
        environment
            .secrets("default")
            .get_opt("redb-fresh")
            .await
            .expect("get")
            .is_none()
    );

    // Without the annotation the database is created.
    environment
        .databases("default")
        .patch(
            "fresh",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"redisgitops.dev/adopt-database": null}}})),
        )
        .await
        .expect("annotation removed");
    let fresh = uid_of(&wait_ready(&environment, "default", "fresh").await);
    assert_eq!(environment.bdbs_named("fresh").await, [fresh]);
    let live = environment.rest.database(legacy.uid).await.expect("get").expect("bdb");
    assert_eq!(live.other.get("memory_size"), Some(&json!(104_857_600u64)));
    environment.stop().await;
}
