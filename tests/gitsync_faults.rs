//! The GitSync controller while the sandbox API server fails some writes (fault injection, HTTP 500): a revision
//! that could not be applied completely is never reported as applied, the failing object is named, and once the
//! fault is lifted the retry applies the revision and reports it.

mod support;

use std::time::Duration;

use redis_gitops::api::RedisEnterpriseDatabase;
use serde_json::json;
use support::Repo;
use support::sync::{REC, SyncHarness, database, eventually_within, ready};

fn synced_revision(database: &RedisEnterpriseDatabase) -> Option<String> {
    database.status.as_ref()?.source_revision.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_writes_leave_the_revision_unapplied_until_the_fault_is_lifted() {
    let temp = tempfile::tempdir().expect("temp dir");
    let repo = Repo::new(temp.path());
    repo.write("clusters/rec.yaml", REC);
    for name in ["alpha", "bravo", "charlie"] {
        repo.write(&format!("databases/{name}.yaml"), &database(name, "1GB"));
    }
    let first = repo.commit("first");
    let harness = SyncHarness::start().await;
    harness
        .create_gitsync("config", json!({"url": repo.url(), "interval": "1s"}))
        .await;
    let first_revision = format!("main@sha1:{first}");
    harness.wait_applied("config", &first_revision).await;

    // Every write to bravo fails with an internal error; the new revision changes all three databases.
    let bravo = "/apis/app.redislabs.com/v1alpha1/namespaces/default/redisenterprisedatabases/bravo";
    harness
        .apiserver
        .faults()
        .fail_next(Some("PATCH"), bravo, 10_000, 500, "etcdserver: request timed out");
    for name in ["alpha", "bravo", "charlie"] {
        repo.write(&format!("databases/{name}.yaml"), &database(name, "2GB"));
    }
    let second = repo.commit("2GB everywhere");
    let second_revision = format!("main@sha1:{second}");
    let (message, gitsync) = harness.wait_not_ready("config", "ApplyFailed").await;
    let status = gitsync.status.clone().expect("status");
    assert_eq!(status.last_applied_revision.as_deref(), Some(first_revision.as_str()));
    assert_eq!(
        status.last_attempted_revision.as_deref(),
        Some(second_revision.as_str())
    );
    assert!(
        message.starts_with(&format!(
            "revision {} was not fully applied (2 of 4 objects at it): failed to apply RedisEnterpriseDatabase \
             default/bravo: ",
            &second[..7]
        )),
        "{message}"
    );
    assert!(message.contains("etcdserver: request timed out"), "{message}");
    assert!(
        message.ends_with(&format!(
            "; {first_revision} stays the last applied revision, retrying with backoff"
        )),
        "{message}"
    );
    let reconciling = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Reconciling")
        .map(|c| (c.status.clone(), c.reason.clone()));
    assert_eq!(reconciling, Some(("True".into(), "ProgressingWithRetry".into())));

    // Objects say exactly where they are: alpha is at the new revision, bravo and charlie at the old one.
    let alpha = harness.databases.get("alpha").await.expect("alpha");
    assert_eq!(alpha.spec.memory_size.as_deref(), Some("2GB"));
    assert_eq!(synced_revision(&alpha), Some(second_revision.clone()));
    for name in ["bravo", "charlie"] {
        let object = harness.databases.get(name).await.expect("database");
        assert_eq!(object.spec.memory_size.as_deref(), Some("1GB"), "{name}");
        assert_eq!(synced_revision(&object), Some(first_revision.clone()), "{name}");
    }
    // The failing writes were attempted and refused with 500, and the GitSync kept retrying.
    let refused = harness
        .apiserver
        .request_counts()
        .get("patch", "redisenterprisedatabases");
    assert!(refused >= 2, "{refused} applies");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let still = harness.gitsyncs.get("config").await.expect("get");
    assert_eq!(
        still.status.and_then(|s| s.last_applied_revision),
        Some(first_revision.clone()),
        "never reported as applied while a write fails"
    );

    // The fault is lifted: the retry (with backoff) applies the rest and reports the revision.
    harness.apiserver.faults().clear();
    let applied = eventually_within("the retry after the fault", Duration::from_secs(45), || async {
        let current = harness.gitsyncs.get("config").await.ok()?;
        (current.status.as_ref()?.last_applied_revision.as_deref() == Some(second_revision.as_str())).then_some(current)
    })
    .await;
    let (ready_status, reason, message) = ready(&applied).expect("Ready");
    assert_eq!(
        (ready_status.as_str(), reason.as_str()),
        ("True", "Applied"),
        "{message}"
    );
    assert!(
        applied
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().all(|c| c.type_ != "Reconciling")),
        "Reconciling is gone"
    );
    for name in ["alpha", "bravo", "charlie"] {
        let object = harness.databases.get(name).await.expect("database");
        assert_eq!(object.spec.memory_size.as_deref(), Some("2GB"), "{name}");
        assert_eq!(synced_revision(&object), Some(second_revision.clone()), "{name}");
    }
    assert_eq!(applied.status.map(|s| s.inventory_entries().len()), Some(4));
}
