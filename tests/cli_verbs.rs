//! The Flux-style verbs as a user runs them: the real binary against the sandbox API server through a kubeconfig,
//! with the real GitSync controller. `reconcile gitsync --wait` applies the new commit and prints its revision,
//! `suspend`/`resume` flip `spec.suspend`, `get` prints revision, ready and message, and every failure exits with
//! its documented code and a message that says what to do.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use kube::api::{Api, PostParams};
use redis_gitops::api::GitSync;
use redis_gitops_sandbox::apiserver::{ApiServer, ApiServerOptions};
use serde_json::json;
use support::Repo;
use support::sync::{SyncHarness, database};

/// Runs `redis-gitops ARGS` with `KUBECONFIG=kubeconfig`.
fn cli(kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_redis-gitops"))
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("NO_COLOR", "1")
        .output()
        .expect("the binary runs")
}

fn out(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn err(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_suspend_resume_and_get_drive_a_gitsync_from_the_command_line() {
    let temp = tempfile::tempdir().expect("temp dir");
    let repo = Repo::new(temp.path());
    repo.write("databases/cache.yaml", &database("cache", "1GB"));
    let first = repo.commit("first");
    let harness = SyncHarness::start().await;
    let kubeconfig = temp.path().join("kubeconfig");
    harness.apiserver.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    // An interval of an hour: only the verbs make it sync again.
    harness
        .create_gitsync("team", json!({"url": repo.url(), "interval": "1h"}))
        .await;
    let first_revision = format!("main@sha1:{first}");
    harness.wait_applied("team", &first_revision).await;

    let listed = cli(&kubeconfig, &["get", "gitsyncs"]);
    assert_eq!(listed.status.code(), Some(0), "{}", err(&listed));
    let text = out(&listed);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with("NAME  REVISION") && lines[0].ends_with("SUSPENDED  READY  MESSAGE"),
        "{text}"
    );
    assert!(
        lines[1].starts_with(&format!("team  {first_revision}  False      True   ")),
        "{text}"
    );

    // A new commit is applied at once on request, and its revision printed.
    repo.write("databases/cache.yaml", &database("cache", "2GB"));
    let second = repo.commit("2GB");
    let reconciled = cli(
        &kubeconfig,
        &["reconcile", "gitsync", "team", "--wait", "--timeout", "60s"],
    );
    assert_eq!(reconciled.status.code(), Some(0), "{}", err(&reconciled));
    assert_eq!(
        out(&reconciled),
        format!("GitSync default/team: a sync was requested\napplied revision main@sha1:{second}\n")
    );
    assert_eq!(harness.memory("cache").await.as_deref(), Some("2GB"));

    // Suspended: the spec says so, get shows it, and a reconcile is refused with what to do.
    let suspended = cli(&kubeconfig, &["suspend", "gitsync", "team", "-n", "default"]);
    assert_eq!(suspended.status.code(), Some(0), "{}", err(&suspended));
    let gitsync = harness.gitsyncs.get("team").await.expect("the GitSync");
    assert_eq!(gitsync.spec.suspend, Some(true));
    let everywhere = out(&cli(&kubeconfig, &["get", "gitsync", "-A"]));
    let row = everywhere
        .lines()
        .find(|line| line.starts_with("default    team"))
        .unwrap_or_else(|| panic!("a row with its namespace: {everywhere}"));
    assert!(row.contains(" True       "), "SUSPENDED True: {row}");
    let refused = cli(&kubeconfig, &["reconcile", "gitsync", "team", "--wait"]);
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        err(&refused),
        "reconcile: GitSync default/team is suspended; run `redis-gitops resume gitsync team -n default` first\n"
    );

    // Resumed: the commit made meanwhile is applied at once.
    repo.write("databases/cache.yaml", &database("cache", "3GB"));
    let third = repo.commit("3GB");
    let resumed = cli(
        &kubeconfig,
        &["resume", "gitsync", "team", "--wait", "--timeout", "60s"],
    );
    assert_eq!(resumed.status.code(), Some(0), "{}", err(&resumed));
    assert!(
        out(&resumed).ends_with(&format!("applied revision main@sha1:{third}\n")),
        "{}",
        out(&resumed)
    );
    assert_eq!(harness.memory("cache").await.as_deref(), Some("3GB"));
    let gitsync = harness.gitsyncs.get("team").await.expect("the GitSync");
    assert_eq!(gitsync.spec.suspend, Some(false));

    // The databases with the revision that last changed them (no database controller runs here, so not Ready).
    let databases = out(&cli(&kubeconfig, &["get", "redbs"]));
    assert_eq!(
        databases,
        format!(
            "NAME   REVISION{}  READY    MESSAGE\ncache  main@sha1:{third}  Unknown  not reconciled yet\n",
            " ".repeat(format!("main@sha1:{third}").len() - "REVISION".len())
        )
    );
    let all = out(&cli(&kubeconfig, &["get", "all"]));
    assert!(all.contains("\ngitsync/team  "), "{all}");
    assert!(all.contains("\nredb/cache  "), "{all}");

    // A GitSync that does not exist.
    let missing = cli(&kubeconfig, &["reconcile", "gitsync", "nope"]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(
        err(&missing),
        "reconcile: GitSync default/nope not found; list them with `redis-gitops get gitsyncs -A`\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_wait_without_an_agent_times_out_with_exit_code_two() {
    let temp = tempfile::tempdir().expect("temp dir");
    let apiserver = ApiServer::start(ApiServerOptions {
        crds: redis_gitops::api::crds(),
        ..ApiServerOptions::default()
    })
    .await
    .expect("the sandbox API server starts");
    let kubeconfig = temp.path().join("kubeconfig");
    apiserver.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let client = apiserver.kube_client().expect("client");
    let gitsync: GitSync = serde_json::from_value(json!({
        "apiVersion": "redisgitops.dev/v1alpha1", "kind": "GitSync",
        "metadata": {"name": "idle", "namespace": "default"},
        "spec": {"url": "https://example.com/config.git"},
    }))
    .expect("a GitSync");
    Api::<GitSync>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &gitsync)
        .await
        .expect("create");
    let output = cli(
        &kubeconfig,
        &["reconcile", "gitsync", "idle", "--wait", "--timeout", "2s"],
    );
    assert_eq!(output.status.code(), Some(2), "{}", err(&output));
    assert_eq!(
        err(&output),
        "reconcile: GitSync default/idle did not handle the request within 2s; is the agent running? (kubectl get \
         pods -n redis-gitops-system)\n"
    );
    // The request itself was recorded, for the agent to pick up when it runs.
    let annotated = Api::<GitSync>::namespaced(client, "default")
        .get("idle")
        .await
        .expect("the GitSync");
    assert!(
        annotated
            .metadata
            .annotations
            .unwrap_or_default()
            .contains_key(redis_gitops::api::keys::RECONCILE_REQUESTED_AT)
    );
    // Nothing to list in an empty namespace says so.
    let empty = cli(&kubeconfig, &["get", "redbs"]);
    assert_eq!(out(&empty), "no redisenterprisedatabases found in namespace default\n");
}
