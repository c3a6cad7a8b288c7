//! The GitSync controller end to end over real Git servers on loopback: `git daemon` (with a force-push), smart
//! HTTP with basic auth from the GitSync's Secret, SSH with a deploy key and `known_hosts` from the Secret (a wrong
//! host key refused), wrong credentials, tag and semver refs, and the `reconcile-requested-at` annotation.

#[path = "source_git/repo.rs"]
#[allow(dead_code)]
mod repo;
#[path = "source_git/servers.rs"]
#[allow(dead_code)]
mod servers;
mod support;

use std::time::Duration;

use kube::api::{Patch, PatchParams};
use repo::{TestRepo, git};
use serde_json::json;
use servers::{GitDaemon, HttpAuth, HttpGitServer, Sshd, generate_key};
use support::sync::{REC, SyncHarness, database, eventually_within, ready};

/// A repository with a REC and one database, pushed; returns it and the commit.
fn pushed_repo(memory: &str) -> (TestRepo, String) {
    let repo = TestRepo::new();
    repo.write("clusters/rec.yaml", REC.as_bytes());
    repo.write("databases/cache.yaml", database("cache", memory).as_bytes());
    let commit = repo.commit("first");
    repo.push();
    (repo, commit)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_daemon_first_sync_new_commit_and_force_push() {
    let (repo, first) = pushed_repo("1GB");
    let daemon = GitDaemon::start(repo.root.path());
    let harness = SyncHarness::start().await;
    harness
        .create_gitsync(
            "config",
            json!({"url": daemon.url(TestRepo::NAME), "ref": {"branch": "main"}, "interval": "1s"}),
        )
        .await;
    let applied = harness.wait_applied("config", &format!("main@sha1:{first}")).await;
    assert_eq!(applied.status.map(|s| s.inventory_entries().len()), Some(2));
    assert_eq!(harness.memory("cache").await.as_deref(), Some("1GB"));

    repo.write("databases/cache.yaml", database("cache", "2GB").as_bytes());
    let second = repo.commit("2GB");
    repo.push();
    harness.wait_applied("config", &format!("main@sha1:{second}")).await;
    assert_eq!(harness.memory("cache").await.as_deref(), Some("2GB"));

    // A force-push to an unrelated history: the new head is applied like any other commit.
    let rewritten = repo.rewrite_history(&[
        ("clusters/rec.yaml", REC),
        ("databases/cache.yaml", &database("cache", "3GB")),
    ]);
    repo.push();
    harness.wait_applied("config", &format!("main@sha1:{rewritten}")).await;
    assert_eq!(harness.memory("cache").await.as_deref(), Some("3GB"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smart_http_basic_auth_from_the_secret_and_a_wrong_password_is_a_clear_secret_free_reason() {
    let (repo, first) = pushed_repo("1GB");
    // Credentials only ever go over https (http:// with a password is refused before any network use).
    let pki = servers::TestPki::generate();
    let server = HttpGitServer::start_with_tls(
        repo.root.path(),
        HttpAuth::Basic {
            user: "deploy".into(),
            password: "correct-horse".into(),
        },
        Some((&pki.server_cert, &pki.server_key)),
    );
    let url = server.url(TestRepo::NAME);
    let ca = String::from_utf8(pki.ca_pem.clone()).expect("PEM text");
    let harness = SyncHarness::start().await;
    harness
        .create_secret(
            "git-auth",
            &[
                ("username", "deploy"),
                ("password", "correct-horse"),
                ("ca.crt", ca.as_str()),
            ],
        )
        .await;
    harness
        .create_secret(
            "git-wrong",
            &[
                ("username", "deploy"),
                ("password", "battery-staple-WRONG"),
                ("ca.crt", ca.as_str()),
            ],
        )
        .await;
    harness
        .create_gitsync(
            "good",
            json!({"url": url, "interval": "1s", "secretRef": {"name": "git-auth"}}),
        )
        .await;
    harness.wait_applied("good", &format!("main@sha1:{first}")).await;
    assert_eq!(harness.memory("cache").await.as_deref(), Some("1GB"));

    harness
        .create_gitsync(
            "wrong",
            json!({"url": url, "interval": "1s", "path": "databases", "secretRef": {"name": "git-wrong"}}),
        )
        .await;
    let (message, gitsync) = harness.wait_not_ready("wrong", "AuthenticationFailed").await;
    assert_eq!(
        message,
        format!(
            "authentication failed for {url} while listing remote refs: the server refused the username/password; \
             the last applied revision stays"
        )
    );
    let status = serde_json::to_string(&gitsync.status).expect("status as JSON");
    assert!(
        !status.contains("battery-staple-WRONG"),
        "the password leaked into the status: {status}"
    );
    assert!(gitsync.status.and_then(|s| s.last_applied_revision).is_none());
    assert!(server.unauthorized.load(std::sync::atomic::Ordering::SeqCst) > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_deploy_key_and_known_hosts_from_the_secret_and_a_wrong_host_key_is_refused() {
    let (repo, first) = pushed_repo("1GB");
    let sshd = Sshd::start();
    let url = sshd.url(&repo.bare());
    let keys = tempfile::tempdir().expect("key dir");
    let (_, other_host_key) = generate_key(keys.path(), "other");
    let harness = SyncHarness::start().await;
    harness
        .create_secret(
            "deploy-key",
            &[
                ("identity", sshd.client_private_key.as_str()),
                ("known_hosts", sshd.known_hosts_line().as_str()),
            ],
        )
        .await;
    let impostor = format!("[127.0.0.1]:{} {other_host_key}\n", sshd.port);
    harness
        .create_secret(
            "wrong-host",
            &[
                ("identity", sshd.client_private_key.as_str()),
                ("known_hosts", impostor.as_str()),
            ],
        )
        .await;
    harness
        .create_gitsync(
            "good",
            json!({"url": url, "interval": "1s", "secretRef": {"name": "deploy-key"}}),
        )
        .await;
    harness.wait_applied("good", &format!("main@sha1:{first}")).await;
    assert_eq!(harness.memory("cache").await.as_deref(), Some("1GB"));

    harness
        .create_gitsync(
            "impostor",
            json!({"url": url, "interval": "1s", "path": "databases", "secretRef": {"name": "wrong-host"}}),
        )
        .await;
    let (message, gitsync) = harness.wait_not_ready("impostor", "HostKeyMismatch").await;
    assert!(
        message.starts_with(&format!(
            "ssh host key mismatch for [127.0.0.1]:{} ({url}): server offered ssh-ed25519 SHA256:",
            sshd.port
        )),
        "{message}"
    );
    assert!(message.contains("known_hosts expects ssh-ed25519 SHA256:"), "{message}");
    let status = serde_json::to_string(&gitsync.status).expect("status as JSON");
    assert!(!status.contains("PRIVATE KEY"), "{status}");
    assert!(gitsync.status.and_then(|s| s.last_applied_revision).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_and_semver_refs_apply_the_matching_tag_and_follow_a_new_one() {
    let (repo, first) = pushed_repo("1GB");
    repo.tag("v1.0.0");
    repo.write("databases/cache.yaml", database("cache", "2GB").as_bytes());
    let second = repo.commit("2GB");
    repo.tag("v1.1.0");
    repo.push();
    let url = repo.file_url();
    let harness = SyncHarness::start().await;
    harness
        .create_gitsync(
            "pinned",
            json!({"url": url, "interval": "1s", "ref": {"tag": "v1.0.0"}, "path": "clusters"}),
        )
        .await;
    harness
        .create_gitsync(
            "ranged",
            json!({"url": url, "interval": "1s", "ref": {"semver": ">=1.0.0, <2.0.0"}, "path": "databases"}),
        )
        .await;
    // Two GitSyncs of one repository own different paths (each object has one owner).
    harness.wait_applied("pinned", &format!("v1.0.0@sha1:{first}")).await;
    harness.wait_applied("ranged", &format!("v1.1.0@sha1:{second}")).await;
    assert_eq!(harness.memory("cache").await.as_deref(), Some("2GB"));

    // A new tag in the range is applied; one outside it is not.
    repo.write("databases/cache.yaml", database("cache", "3GB").as_bytes());
    let third = repo.commit("3GB");
    repo.tag("v1.2.0");
    repo.push();
    harness.wait_applied("ranged", &format!("v1.2.0@sha1:{third}")).await;
    assert_eq!(harness.memory("cache").await.as_deref(), Some("3GB"));
    repo.write("databases/cache.yaml", database("cache", "4GB").as_bytes());
    repo.commit("4GB");
    repo.tag("v2.0.0");
    repo.push();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ranged = harness.gitsyncs.get("ranged").await.expect("get");
    assert_eq!(
        ranged.status.and_then(|s| s.last_applied_revision),
        Some(format!("v1.2.0@sha1:{third}")),
        "v2.0.0 is outside the range"
    );
    assert_eq!(harness.memory("cache").await.as_deref(), Some("3GB"));
    let pinned = harness.gitsyncs.get("pinned").await.expect("get");
    assert_eq!(
        pinned.status.and_then(|s| s.last_applied_revision),
        Some(format!("v1.0.0@sha1:{first}")),
        "a tag ref stays on its tag"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_requested_at_syncs_at_once_despite_a_long_interval_and_is_recorded() {
    let (repo, first) = pushed_repo("1GB");
    let harness = SyncHarness::start().await;
    harness
        .create_gitsync("config", json!({"url": repo.file_url(), "interval": "1h"}))
        .await;
    harness.wait_applied("config", &format!("main@sha1:{first}")).await;
    // Let the reconcile that follows the controller's own status write settle.
    tokio::time::sleep(Duration::from_secs(1)).await;

    repo.write("databases/cache.yaml", database("cache", "2GB").as_bytes());
    let second = repo.commit("2GB");
    repo.push();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let waiting = harness.gitsyncs.get("config").await.expect("get");
    assert_eq!(
        waiting.status.and_then(|s| s.last_applied_revision),
        Some(format!("main@sha1:{first}")),
        "with a 1h interval nothing polls before the annotation"
    );

    let requested = "2026-11-24T16:00:00Z";
    harness
        .gitsyncs
        .patch(
            "config",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"redisgitops.dev/reconcile-requested-at": requested}}})),
        )
        .await
        .expect("annotate");
    let revision = format!("main@sha1:{second}");
    let synced = eventually_within("the annotation to trigger a sync", Duration::from_secs(10), || async {
        let current = harness.gitsyncs.get("config").await.ok()?;
        let status = current.status.as_ref()?;
        (status.last_applied_revision.as_deref() == Some(revision.as_str())
            && status.last_handled_reconcile_at.as_deref() == Some(requested))
        .then_some(current)
    })
    .await;
    assert_eq!(ready(&synced).map(|r| r.0).as_deref(), Some("True"));
    assert_eq!(harness.memory("cache").await.as_deref(), Some("2GB"));
    assert_eq!(git(repo.work.path(), &["rev-parse", "HEAD"]), second);
}
