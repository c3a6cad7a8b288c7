//! The GitSync controller end to end: a real Git repository (git CLI, served over file://), the sandbox API
//! server, the real controller, checked with kube::Client and the real kubectl. First sync, a bad commit that
//! applies nothing, the fix, drift correction, and removal with and without prune permission.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::api::{Api, Patch, PatchParams, PostParams};
use redis_gitops::api::{GitSync, RedisEnterpriseCluster, RedisEnterpriseDatabase};
use redis_gitops::sync::controller::{SyncContext, run};
use redis_gitops::telemetry::Metrics;
use redis_gitops_sandbox::{Sandbox, SandboxOptions};

mod support;
use serde_json::json;
use support::{Repo, kubectl};

const REC: &str =
    "apiVersion: app.redislabs.com/v1\nkind: RedisEnterpriseCluster\nmetadata:\n  name: rec\nspec:\n  nodes: 3\n";

fn database(name: &str, memory: &str) -> String {
    format!(
        "apiVersion: app.redislabs.com/v1alpha1\nkind: RedisEnterpriseDatabase\nmetadata:\n  name: {name}\nspec:\n  memorySize: {memory}\n  evictionPolicy: allkeys-lru\n"
    )
}

async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn ready(gitsync: &GitSync) -> Option<(String, String, String)> {
    let condition = gitsync
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?
        .clone();
    Some((condition.status, condition.reason, condition.message))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gitsync_applies_rejects_bad_commits_recovers_reverts_drift_and_prunes_only_when_allowed() {
    let temp = tempfile::tempdir().expect("temp dir");
    let sandbox = Sandbox::start(SandboxOptions::with_crds(redis_gitops::api::crds()))
        .await
        .expect("sandbox starts (needs redis-server)");
    let client = sandbox.apiserver.kube_client().expect("client");
    let kubeconfig = temp.path().join("kubeconfig");
    sandbox.apiserver.write_kubeconfig(&kubeconfig).expect("kubeconfig");

    let repo = Repo::new(temp.path());
    repo.write("clusters/rec.yaml", REC);
    repo.write("databases/cache.yaml", &database("cache", "1GB"));
    repo.write("databases/sessions.yaml", &database("sessions", "512MB"));
    let first = repo.commit("first");

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let metrics = Arc::new(Metrics::default());
    let context = Arc::new(SyncContext::new(
        client.clone(),
        temp.path().join("cache"),
        Default::default(),
        None,
        metrics.clone(),
    ));
    let controller = tokio::spawn(run(context, async move {
        let _ = stopped.await;
    }));

    let gitsyncs: Api<GitSync> = Api::namespaced(client.clone(), "default");
    let gitsync: GitSync = serde_json::from_value(json!({
        "apiVersion": "redisgitops.dev/v1alpha1", "kind": "GitSync",
        "metadata": {"name": "config", "namespace": "default"},
        "spec": {"url": repo.url(), "ref": {"branch": "main"}, "interval": "1s"}
    }))
    .expect("gitsync");
    gitsyncs
        .create(&PostParams::default(), &gitsync)
        .await
        .expect("create gitsync");

    // First sync: everything applied, labelled and annotated, status Ready with the revision.
    let revision = format!("main@sha1:{first}");
    let status = eventually("the first sync", || async {
        let current = gitsyncs.get("config").await.ok()?;
        (ready(&current)?.0 == "True").then_some(current)
    })
    .await;
    let status = status.status.expect("status");
    assert_eq!(status.last_applied_revision.as_deref(), Some(revision.as_str()));
    assert_eq!(status.inventory_entries().len(), 3);
    assert_eq!(
        ready(&gitsyncs.get("config").await.expect("get")).map(|r| r.2),
        Some(format!("Applied revision main@sha1:{}", &first[..7]))
    );
    let databases: Api<RedisEnterpriseDatabase> = Api::namespaced(client.clone(), "default");
    let cache = databases.get("cache").await.expect("cache applied");
    assert_eq!(cache.spec.memory_size.as_deref(), Some("1GB"));
    let labels = cache.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get("redisgitops.dev/gitsync-name").map(String::as_str),
        Some("config")
    );
    let annotations = cache.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        annotations.get("redisgitops.dev/source-file").map(String::as_str),
        Some("databases/cache.yaml")
    );
    assert_eq!(annotations.get("redisgitops.dev/revision"), Some(&revision));
    let synced = cache
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Synced").cloned());
    assert_eq!(
        synced.map(|c| (c.status, c.reason)),
        Some(("True".to_string(), "Applied".to_string()))
    );
    let clusters: Api<RedisEnterpriseCluster> = Api::namespaced(client.clone(), "default");
    assert_eq!(clusters.get("rec").await.expect("rec applied").spec.nodes, Some(3));

    let table = kubectl(&kubeconfig, &["get", "gitsync", "-n", "default"]);
    let row: Vec<&str> = table.lines().nth(1).expect("a row").split_whitespace().collect();
    assert_eq!(
        &row[..4],
        ["config", repo.url().as_str(), revision.as_str(), "True"],
        "{table}"
    );
    assert!(
        table.contains(&format!("Applied revision main@sha1:{}", &first[..7])),
        "{table}"
    );

    // A bad commit: nothing applied, the last good revision stays, every error in status with file:line.
    repo.write(
        "databases/cache.yaml",
        &database("cache", "2GB").replace("allkeys-lru", "illegal"),
    );
    repo.write("databases/sessions.yaml", &database("sessions", "10MB"));
    let bad = repo.commit("bad");
    let failed = eventually("the bad commit to be reported", || async {
        let current = gitsyncs.get("config").await.ok()?;
        let (status, reason, _) = ready(&current)?;
        (status == "False" && reason == "ValidationFailed").then_some(current)
    })
    .await;
    let failed_status = failed.status.expect("status");
    assert_eq!(failed_status.last_applied_revision.as_deref(), Some(revision.as_str()));
    assert_eq!(failed_status.last_attempted_revision, Some(format!("main@sha1:{bad}")));
    let errors: Vec<String> = failed_status
        .errors
        .unwrap_or_default()
        .iter()
        .map(|e| {
            format!(
                "{}:{}:{}: {}: {}",
                e.file,
                e.line,
                e.column,
                e.field.clone().unwrap_or_default(),
                e.message
            )
        })
        .collect();
    assert_eq!(
        errors,
        [
            "databases/cache.yaml:7:19: spec.evictionPolicy: \"illegal\" is not one of volatile-lru, volatile-ttl, volatile-random, allkeys-lru, allkeys-random, noeviction, volatile-lfu, allkeys-lfu",
            "databases/sessions.yaml:6:15: spec.memorySize: \"10MB\" is below the minimum of 100MB; use 100MB or more",
        ]
    );
    assert_eq!(
        databases.get("cache").await.expect("cache").spec.memory_size.as_deref(),
        Some("1GB"),
        "nothing applied"
    );

    // The fix recovers without a restart, writing only what changed.
    repo.write("databases/cache.yaml", &database("cache", "2GB"));
    repo.write("databases/sessions.yaml", &database("sessions", "512MB"));
    let fixed = repo.commit("fix");
    eventually("the fix to be applied", || async {
        let current = gitsyncs.get("config").await.ok()?;
        (current.status?.last_applied_revision? == format!("main@sha1:{fixed}")).then_some(())
    })
    .await;
    assert_eq!(
        databases.get("cache").await.expect("cache").spec.memory_size.as_deref(),
        Some("2GB")
    );
    let sessions = databases.get("sessions").await.expect("sessions");
    assert_eq!(
        sessions
            .metadata
            .annotations
            .unwrap_or_default()
            .get("redisgitops.dev/revision"),
        Some(&revision),
        "an unchanged object keeps the revision that last changed it: it was not rewritten"
    );

    // Drift: a hand edit is reverted at the next poll.
    databases
        .patch(
            "cache",
            &PatchParams::apply("someone"),
            &Patch::Merge(json!({"spec": {"memorySize": "8GB"}})),
        )
        .await
        .expect("hand edit");
    eventually("the drift to be reverted", || async {
        let current = databases.get("cache").await.ok()?;
        (current.spec.memory_size.as_deref() == Some("2GB")).then_some(())
    })
    .await;
    let events = kubectl(
        &kubeconfig,
        &["get", "events", "-n", "default", "-o", "jsonpath={.items[*].reason}"],
    );
    assert!(
        events.contains("DriftCorrected") && events.contains("ValidationFailed") && events.contains("NewRevision"),
        "{events}"
    );

    // Removing a database without prune permission keeps it and says why.
    std::fs::remove_file(repo.dir.join("databases/sessions.yaml")).expect("remove");
    let removed = repo.commit("remove sessions");
    let kept = eventually("the removal to be reported", || async {
        let current = databases.get("sessions").await.ok()?;
        let synced = current.status?.conditions?.into_iter().find(|c| c.type_ == "Synced")?;
        (synced.status == "False").then_some(synced)
    })
    .await;
    assert_eq!(kept.reason, "RemovedFromSource");
    assert_eq!(
        kept.message,
        "removed from Git; kept because pruning is off (spec.prune)"
    );
    let (_, _, message) = eventually("the GitSync to mention the kept object", || async {
        let current = gitsyncs.get("config").await.ok()?;
        (current.status.as_ref()?.last_applied_revision.as_deref()? == format!("main@sha1:{removed}"))
            .then(|| ready(&current))?
    })
    .await;
    assert!(
        message.ends_with("; 1 removed from Git but kept (see events)"),
        "{message}"
    );

    // With prune on but no permission for databases, it is still kept; with both, it goes.
    gitsyncs
        .patch(
            "config",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"prune": true}})),
        )
        .await
        .expect("prune on");
    eventually("the database-deletion reason", || async {
        let synced = databases
            .get("sessions")
            .await
            .ok()?
            .status?
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "Synced")?;
        synced
            .message
            .contains("does not allow deleting databases")
            .then_some(())
    })
    .await;
    gitsyncs
        .patch(
            "config",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"allowDatabaseDeletion": true}})),
        )
        .await
        .expect("allow");
    eventually("the database to be pruned", || async {
        databases.get_opt("sessions").await.ok()?.is_none().then_some(())
    })
    .await;
    assert!(
        databases.get_opt("cache").await.expect("get").is_some(),
        "only the removed database is pruned"
    );

    // Deletion policy Delete: the GitSync holds a finalizer; deleting it deletes what it applied, except what is
    // protected. (Orphan, the default, holds no finalizer and keeps everything.)
    assert!(
        gitsyncs.get("config").await.expect("get").metadata.finalizers.is_none(),
        "no finalizer with Orphan"
    );
    clusters
        .patch(
            "rec",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"redisgitops.dev/protect": "true"}}})),
        )
        .await
        .expect("protect the cluster");
    gitsyncs
        .patch(
            "config",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"deletionPolicy": "Delete"}})),
        )
        .await
        .expect("policy");
    eventually("the finalizer", || async {
        let finalizers = gitsyncs.get("config").await.ok()?.metadata.finalizers?;
        finalizers
            .contains(&"redisgitops.dev/delete-applied-objects".to_string())
            .then_some(())
    })
    .await;
    gitsyncs
        .delete("config", &Default::default())
        .await
        .expect("delete the gitsync");
    eventually("the gitsync to go", || async {
        gitsyncs.get_opt("config").await.ok()?.is_none().then_some(())
    })
    .await;
    assert!(
        databases.get_opt("cache").await.expect("get").is_none(),
        "its database was deleted"
    );
    assert!(
        clusters.get_opt("rec").await.expect("get").is_some(),
        "the protected cluster stays"
    );

    // The agent's metrics counted all of it.
    let text = metrics.encode();
    for expected in [
        "redis_gitops_gitsync_syncs_total{result=\"success\"}",
        "redis_gitops_gitsync_failures_total{category=\"ValidationFailed\"}",
        "redis_gitops_gitsync_last_applied_timestamp_seconds{namespace=\"default\",name=\"config\"}",
        "redis_gitops_git_fetch_duration_seconds_count",
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }

    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), controller).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_unreachable_remotes_and_missing_secrets_keep_the_last_good_state_and_say_why() {
    let temp = tempfile::tempdir().expect("temp dir");
    let sandbox = Sandbox::start(SandboxOptions::with_crds(redis_gitops::api::crds()))
        .await
        .expect("sandbox starts (needs redis-server)");
    let client = sandbox.apiserver.kube_client().expect("client");
    let repo = Repo::new(temp.path());
    repo.write("databases/cache.yaml", &database("cache", "1GB"));
    let first = repo.commit("first");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let context = Arc::new(SyncContext::new(
        client.clone(),
        temp.path().join("cache"),
        Default::default(),
        None,
        Arc::new(Metrics::default()),
    ));
    let controller = tokio::spawn(run(context, async move {
        let _ = stopped.await;
    }));
    let gitsyncs: Api<GitSync> = Api::namespaced(client.clone(), "default");
    let databases: Api<RedisEnterpriseDatabase> = Api::namespaced(client.clone(), "default");
    let create = |name: &str, spec: serde_json::Value| {
        serde_json::from_value::<GitSync>(json!({
            "apiVersion": "redisgitops.dev/v1alpha1", "kind": "GitSync",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec
        }))
        .expect("gitsync")
    };
    gitsyncs
        .create(
            &PostParams::default(),
            &create("config", json!({"url": repo.url(), "interval": "1s"})),
        )
        .await
        .expect("create");
    eventually("the first sync", || async {
        databases.get_opt("cache").await.ok()?.map(|_| ())
    })
    .await;

    // Suspended: a new commit is seen and reported, not applied.
    gitsyncs
        .patch(
            "config",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"suspend": true}})),
        )
        .await
        .expect("suspend");
    repo.write("databases/cache.yaml", &database("cache", "2GB"));
    let second = repo.commit("second");
    let (_, reason, message) = eventually("the suspension to be reported", || async {
        let current = gitsyncs.get("config").await.ok()?;
        let ready = ready(&current)?;
        (ready.1 == "Suspended" && ready.2.contains(&second)).then_some(ready)
    })
    .await;
    assert_eq!(reason, "Suspended");
    assert_eq!(
        message,
        format!("suspended: main@sha1:{first} stays applied; the source is at main@sha1:{second}")
    );
    assert_eq!(
        databases.get("cache").await.expect("get").spec.memory_size.as_deref(),
        Some("1GB")
    );
    gitsyncs
        .patch(
            "config",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"suspend": false}})),
        )
        .await
        .expect("resume");
    eventually("the resumed sync", || async {
        (databases.get("cache").await.ok()?.spec.memory_size.as_deref() == Some("2GB")).then_some(())
    })
    .await;

    // The remote goes away: Ready=False with the reason, the applied revision and objects stay.
    std::fs::rename(&repo.dir, temp.path().join("moved")).expect("move the repository away");
    let (status, reason, message) = eventually("the fetch failure", || async {
        let current = gitsyncs.get("config").await.ok()?;
        let ready = ready(&current)?;
        (ready.0 == "False").then_some(ready)
    })
    .await;
    assert_eq!(status, "False");
    assert!(
        !reason.is_empty() && message.ends_with("; the last applied revision stays"),
        "{reason}: {message}"
    );
    let current = gitsyncs.get("config").await.expect("get");
    assert_eq!(
        current.status.and_then(|s| s.last_applied_revision),
        Some(format!("main@sha1:{second}"))
    );
    assert!(
        databases.get_opt("cache").await.expect("get").is_some(),
        "nothing is pruned when the source is unreachable"
    );

    // A GitSync whose Secret does not exist is stalled with a message that says so.
    gitsyncs
        .create(
            &PostParams::default(),
            &create(
                "private",
                json!({"url": "https://example.invalid/config.git", "secretRef": {"name": "missing"}}),
            ),
        )
        .await
        .expect("create");
    let (status, reason, message) = eventually("the missing Secret", || async {
        ready(&gitsyncs.get("private").await.ok()?)
    })
    .await;
    assert_eq!((status.as_str(), reason.as_str()), ("False", "SecretNotFound"));
    assert_eq!(
        message,
        "Secret default/missing does not exist; create it or fix spec.secretRef"
    );

    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), controller).await;
}
