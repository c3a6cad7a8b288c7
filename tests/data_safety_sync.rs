//! Issue 9 on the GitSync side, end to end: the sandbox (API server and Redis Enterprise emulator with real
//! redis-server databases), the real GitSync, cluster and database controllers, a real Git repository, checked
//! with kube::Client, the real kubectl and a real Redis client.
//! - Removing a REC's YAML together with its REDBs with `prune: true` alone deletes nothing: the REC, its
//!   StatefulSet, its admin Secret and the database stay, the data and the password still work, and the GitSync
//!   says why (`PruneBlocked`).
//! - Two GitSyncs claiming one REDB: the second one reports `Conflict` naming the owner, applies the rest of its
//!   revision, and over several polls nothing flaps (the live REDB and the REST-side memory keep the first value).

mod support;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use redis_gitops::api::{GitSync, RedisEnterpriseCluster, RedisEnterpriseDatabase};
use redis_gitops::controllers::{ControllerContext, EnterpriseAccess, connect_to_cluster};
use redis_gitops::enterprise::RetryPolicy;
use redis_gitops::sync::controller::SyncContext;
use redis_gitops::telemetry::Metrics;
use redis_gitops_sandbox::{Sandbox, SandboxOptions};
use serde_json::{Value, json};
use support::sync::{REC, database, eventually_within, ready};
use support::{Repo, kubectl};

const NAMESPACE: &str = "default";
/// Bootstrapping a cluster and creating databases on a loaded machine takes a while.
const LIMIT: Duration = Duration::from_secs(120);

/// The sandbox with the three controllers of the agent running in this process, as `redis-gitops sandbox` runs them.
struct Agent {
    sandbox: Sandbox,
    client: kube::Client,
    controllers: ControllerContext,
    metrics: Arc<Metrics>,
    kubeconfig: std::path::PathBuf,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Agent {
    async fn start(temp: &std::path::Path) -> Agent {
        let sandbox = Sandbox::start(SandboxOptions::with_crds(redis_gitops::api::crds()))
            .await
            .expect("sandbox starts (needs redis-server)");
        let client = sandbox.apiserver.kube_client().expect("client");
        let kubeconfig = temp.join("kubeconfig");
        sandbox.apiserver.write_kubeconfig(&kubeconfig).expect("kubeconfig");
        let metrics = Arc::new(Metrics::default());
        let controllers = ControllerContext {
            client: client.clone(),
            enterprise: EnterpriseAccess {
                ca_pem: sandbox.ca_pem().as_bytes().to_vec(),
                resolver: Some(Arc::new(sandbox.emulator.resolver())),
                timeout: Duration::from_secs(10),
                retry: RetryPolicy::default(),
            },
            metrics: metrics.clone(),
            instance: None,
            clients: Default::default(),
        };
        let sync = Arc::new(SyncContext::new(
            client.clone(),
            temp.join("cache"),
            Default::default(),
            None,
            metrics.clone(),
        ));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let until_stopped = move || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            }
        };
        let tasks = vec![
            tokio::spawn(redis_gitops::sync::controller::run(sync, until_stopped())),
            tokio::spawn(redis_gitops::controllers::cluster::run(
                controllers.clone(),
                until_stopped(),
            )),
            tokio::spawn(redis_gitops::controllers::database::run(
                controllers.clone(),
                until_stopped(),
            )),
        ];
        Agent {
            sandbox,
            client,
            controllers,
            metrics,
            kubeconfig,
            stop: Some(stop),
            tasks,
        }
    }

    fn gitsyncs(&self) -> Api<GitSync> {
        Api::namespaced(self.client.clone(), NAMESPACE)
    }

    fn databases(&self) -> Api<RedisEnterpriseDatabase> {
        Api::namespaced(self.client.clone(), NAMESPACE)
    }

    fn clusters(&self) -> Api<RedisEnterpriseCluster> {
        Api::namespaced(self.client.clone(), NAMESPACE)
    }

    fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), NAMESPACE)
    }

    async fn create_gitsync(&self, name: &str, spec: Value) {
        let gitsync: GitSync = serde_json::from_value(json!({
            "apiVersion": "redisgitops.dev/v1alpha1", "kind": "GitSync",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": spec,
        }))
        .expect("a GitSync");
        self.gitsyncs()
            .create(&PostParams::default(), &gitsync)
            .await
            .expect("create the GitSync");
    }

    /// Waits until the REDB `name` is Ready (its database active on the cluster).
    async fn wait_database_ready(&self, name: &str) -> RedisEnterpriseDatabase {
        eventually_within(&format!("REDB {name} to be Ready"), LIMIT, || async {
            let database = self.databases().get_opt(name).await.ok()??;
            let ready = database
                .status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            ready.then_some(database)
        })
        .await
    }

    /// The memory size of the bdb `name` as the cluster `rec`'s REST API reports it.
    async fn rest_memory(&self, name: &str) -> Option<Value> {
        let cluster = self.clusters().get("rec").await.expect("the REC");
        let rest = connect_to_cluster(&self.controllers, NAMESPACE, &cluster)
            .await
            .expect("a REST client of rec");
        let bdb = rest.database_by_name(name).await.expect("GET /v1/bdbs")?;
        bdb.other.get("memory_size").cloned()
    }

    /// How many syncs failed with `category` so far (the agent's metrics).
    fn failures(&self, category: &str) -> u64 {
        let prefix = format!("redis_gitops_gitsync_failures_total{{category=\"{category}\"}} ");
        self.metrics
            .encode()
            .lines()
            .find_map(|line| line.strip_prefix(&prefix)?.trim().parse::<f64>().ok())
            .map_or(0, |count| count as u64)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn secret_text(secret: &Secret, key: &str) -> String {
    secret
        .data
        .as_ref()
        .and_then(|data| data.get(key))
        .map(|bytes| String::from_utf8_lossy(&bytes.0).into_owned())
        .unwrap_or_default()
}

/// What an application does: read the database's Secret, resolve its Service, connect with its password.
async fn connect(agent: &Agent, database: &str) -> redis::RedisResult<redis::Connection> {
    let secret = agent
        .secrets()
        .get(&format!("redb-{database}"))
        .await
        .expect("the database Secret");
    let service = secret_text(&secret, "service_name");
    let ip = agent
        .sandbox
        .emulator
        .names()
        .lookup(&format!("{service}.{NAMESPACE}.svc"))
        .expect("the Service name resolves");
    let mut connection = redis::Client::open(format!("redis://{ip}:{}", secret_text(&secret, "port")))?
        .get_connection_with_timeout(Duration::from_secs(5))?;
    redis::cmd("AUTH")
        .arg(secret_text(&secret, "password"))
        .query::<()>(&mut connection)?;
    Ok(connection)
}

fn on_rec(name: &str, memory: &str) -> String {
    format!("{}  redisEnterpriseCluster:\n    name: rec\n", database(name, memory))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_a_cluster_with_databases_needs_both_opt_ins_and_keeps_the_data() {
    let temp = tempfile::tempdir().expect("temp dir");
    let agent = Agent::start(temp.path()).await;
    let repo = Repo::new(temp.path());
    repo.write("clusters/rec.yaml", REC);
    repo.write("databases/cache.yaml", &on_rec("cache", "1GB"));
    repo.write("databases/sessions.yaml", &on_rec("sessions", "512MB"));
    let first = repo.commit("first");
    agent
        .create_gitsync("config", json!({"url": repo.url(), "interval": "1s", "prune": true}))
        .await;
    let cache = agent.wait_database_ready("cache").await;
    agent.wait_database_ready("sessions").await;
    let uid = cache.status.as_ref().and_then(|s| s.database_uid.clone());
    assert!(uid.is_some(), "the database has a uid");
    let mut connection = connect(&agent, "cache").await.expect("connect to cache");
    redis::cmd("SET")
        .arg("greeting")
        .arg("hello")
        .query::<()>(&mut connection)
        .expect("SET");
    let admin_before = agent.secrets().get("rec").await.expect("the admin Secret");
    eventually_within("the first revision to be applied", LIMIT, || async {
        let current = agent.gitsyncs().get("config").await.ok()?;
        (current.status?.last_applied_revision? == format!("main@sha1:{first}")).then_some(())
    })
    .await;

    // The REC and its REDBs leave Git; another cluster keeps the revision from being empty (an empty revision
    // never prunes anything, which would hide the guard under test).
    std::fs::remove_file(repo.dir.join("clusters/rec.yaml")).expect("remove the REC");
    std::fs::remove_file(repo.dir.join("databases/cache.yaml")).expect("remove cache");
    std::fs::remove_file(repo.dir.join("databases/sessions.yaml")).expect("remove sessions");
    repo.write("clusters/spare.yaml", &REC.replace("name: rec", "name: spare"));
    let removed = repo.commit("remove rec and its databases");
    let (message, gitsync) = eventually_within("the GitSync to report PruneBlocked", LIMIT, || async {
        let current = agent.gitsyncs().get("config").await.ok()?;
        let (status, reason, message) = ready(&current)?;
        (status == "False" && reason == "PruneBlocked").then_some((message, current))
    })
    .await;
    assert_eq!(
        message,
        format!(
            "Applied revision main@sha1:{}; pruning blocked: RedisEnterpriseCluster default/rec still holds databases \
             default/cache, default/sessions; a cluster is deleted only with spec.prune and spec.allowDatabaseDeletion \
             once no database lives on it",
            &removed[..7]
        )
    );
    let status = gitsync.status.expect("status");
    assert_eq!(
        status.last_applied_revision,
        Some(format!("main@sha1:{removed}")),
        "everything else of the revision was applied"
    );
    let stalled = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Stalled")
        .map(|c| (c.status.clone(), c.reason.clone()));
    assert_eq!(stalled, Some(("True".to_string(), "PruneBlocked".to_string())));
    let inventory = status.inventory_entries();
    for name in ["rec", "cache", "sessions", "spare"] {
        assert!(
            inventory.iter().any(|entry| entry.name == name),
            "{name} is still tracked: {inventory:?}"
        );
    }

    // Nothing was deleted: the REC, its StatefulSet, its admin Secret (same password), the databases and the data.
    let cluster = agent.clusters().get("rec").await.expect("the REC stays");
    assert!(cluster.metadata.deletion_timestamp.is_none());
    let synced = cluster
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Synced").cloned());
    assert_eq!(
        synced.map(|c| (c.reason, c.message)),
        Some((
            "RemovedFromSource".to_string(),
            "removed from Git; kept because databases still live on this cluster: default/cache, default/sessions; \
             delete or move them first (deleting a cluster also needs spec.allowDatabaseDeletion)"
                .to_string()
        ))
    );
    let statefulsets: Api<StatefulSet> = Api::namespaced(agent.client.clone(), NAMESPACE);
    assert!(
        statefulsets.get_opt("rec").await.expect("get").is_some(),
        "the StatefulSet stays"
    );
    let admin_after = agent.secrets().get("rec").await.expect("the admin Secret stays");
    assert_eq!(
        secret_text(&admin_after, "password"),
        secret_text(&admin_before, "password"),
        "the admin password is unchanged"
    );
    for name in ["cache", "sessions"] {
        let kept = agent.databases().get(name).await.expect("the REDB stays");
        assert!(
            kept.metadata.deletion_timestamp.is_none(),
            "{name} is not being deleted"
        );
    }
    assert_eq!(
        agent
            .databases()
            .get("cache")
            .await
            .expect("cache")
            .status
            .and_then(|s| s.database_uid),
        uid
    );
    assert!(agent.rest_memory("cache").await.is_some(), "the bdb still exists");
    let mut connection = connect(&agent, "cache").await.expect("the old password still works");
    let value: String = redis::cmd("GET").arg("greeting").query(&mut connection).expect("GET");
    assert_eq!(value, "hello");

    // kubectl shows the reason.
    let table = kubectl(&agent.kubeconfig, &["get", "gitsync", "-n", NAMESPACE]);
    let header: Vec<&str> = table.lines().next().expect("a header").split_whitespace().collect();
    assert_eq!(&header[..5], ["NAME", "URL", "REVISION", "READY", "REASON"], "{table}");
    let row: Vec<&str> = table.lines().nth(1).expect("a row").split_whitespace().collect();
    assert_eq!(&row[3..5], ["False", "PruneBlocked"], "{table}");
    assert!(
        table.contains("pruning blocked: RedisEnterpriseCluster default/rec"),
        "{table}"
    );
    let events = kubectl(
        &agent.kubeconfig,
        &["get", "events", "-n", NAMESPACE, "-o", "jsonpath={.items[*].reason}"],
    );
    assert!(events.contains("PruneBlocked"), "{events}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_gitsync_claiming_an_owned_database_reports_a_conflict_and_nothing_flaps() {
    let temp = tempfile::tempdir().expect("temp dir");
    let agent = Agent::start(temp.path()).await;
    let first_repo = Repo::new(&temp.path().join("first"));
    first_repo.write("clusters/rec.yaml", REC);
    first_repo.write("databases/orders.yaml", &on_rec("orders", "1GB"));
    let first = first_repo.commit("first team");
    agent
        .create_gitsync("first", json!({"url": first_repo.url(), "interval": "1s"}))
        .await;
    agent.wait_database_ready("orders").await;
    let memory_before = agent.rest_memory("orders").await.expect("the bdb exists");
    assert_eq!(memory_before, json!(1024u64 * 1024 * 1024));

    // The second GitSync claims orders with another size, and brings a database of its own.
    let second_repo = Repo::new(&temp.path().join("second"));
    second_repo.write("databases/orders.yaml", &on_rec("orders", "2GB"));
    second_repo.write("databases/billing.yaml", &on_rec("billing", "512MB"));
    let second = second_repo.commit("second team");
    agent
        .create_gitsync("second", json!({"url": second_repo.url(), "interval": "1s"}))
        .await;
    let (message, gitsync) = eventually_within("the second GitSync to report Conflict", LIMIT, || async {
        let current = agent.gitsyncs().get("second").await.ok()?;
        let (status, reason, message) = ready(&current)?;
        (status == "False" && reason == "Conflict").then_some((message, current))
    })
    .await;
    assert_eq!(
        message,
        format!(
            "RedisEnterpriseDatabase default/orders belongs to GitSync default/first; not applied; the rest of \
             revision main@sha1:{} was applied; no revision is applied completely yet; remove the object from one of \
             the two GitSyncs",
            &second[..7]
        )
    );
    let status = gitsync.status.expect("status");
    assert_eq!(
        status.last_applied_revision, None,
        "a revision with a conflict is not applied"
    );
    assert_eq!(status.last_attempted_revision, Some(format!("main@sha1:{second}")));
    let names: Vec<String> = status.inventory_entries().into_iter().map(|e| e.name).collect();
    assert_eq!(
        names,
        ["billing"],
        "the conflicting object is not in the second inventory"
    );

    // The rest of the revision was applied: billing belongs to the second GitSync and becomes a database.
    let billing = agent.wait_database_ready("billing").await;
    let labels = billing.metadata.labels.unwrap_or_default();
    assert_eq!(
        labels.get("redisgitops.dev/gitsync-name").map(String::as_str),
        Some("second")
    );

    // Several polls later nothing has flapped: orders is unchanged, its owner too, and the REST side as well.
    let orders = agent.databases().get("orders").await.expect("orders");
    let version = orders.metadata.resource_version.clone();
    let polls = agent.failures("Conflict");
    eventually_within("five more polls of the second GitSync", LIMIT, || async {
        (agent.failures("Conflict") >= polls + 5).then_some(())
    })
    .await;
    let orders = agent.databases().get("orders").await.expect("orders");
    assert_eq!(orders.spec.memory_size.as_deref(), Some("1GB"));
    assert_eq!(orders.metadata.resource_version, version, "no write to orders at all");
    let labels = orders.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get("redisgitops.dev/gitsync-name").map(String::as_str),
        Some("first")
    );
    assert_eq!(agent.rest_memory("orders").await, Some(memory_before));
    let first_status = agent
        .gitsyncs()
        .get("first")
        .await
        .expect("first")
        .status
        .expect("status");
    assert_eq!(first_status.last_applied_revision, Some(format!("main@sha1:{first}")));
    let table = kubectl(&agent.kubeconfig, &["get", "gitsync", "second", "-n", NAMESPACE]);
    let row: Vec<&str> = table.lines().nth(1).expect("a row").split_whitespace().collect();
    // The REVISION column is empty: nothing was applied completely yet.
    assert_eq!(&row[2..4], ["False", "Conflict"], "{table}");
    let events = kubectl(
        &agent.kubeconfig,
        &[
            "get",
            "events",
            "-n",
            NAMESPACE,
            "-o",
            "jsonpath={range .items[*]}{.involvedObject.name}{.regarding.name}/{.reason}{\"\\n\"}{end}",
        ],
    );
    assert!(events.lines().any(|line| line == "second/Conflict"), "{events}");
    assert!(
        !events.lines().any(|line| line == "first/Conflict"),
        "the owner sees no conflict: {events}"
    );
}
