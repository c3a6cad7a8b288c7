//! What a person watching a long command sees: `sandbox --once` reports progress on standard error while it waits
//! and, for a repository with many objects, prints only the objects that are not Ready before its last line; logs
//! carry ANSI colour codes only on a terminal without `NO_COLOR` (a pseudo-terminal from util-linux `script` stands in
//! for one).

use std::process::{Command, Stdio};

mod support;
use support::Repo;

const ESC: u8 = 0x1b;

/// `redis-gitops agent` with no reachable API server: it logs an error and exits, quickly.
fn failing_agent() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_redis-gitops"));
    command
        .args([
            "agent",
            "--metrics-address",
            "127.0.0.1:0",
            "--webhook-address",
            "127.0.0.1:0",
        ])
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("NO_COLOR");
    command
}

#[test]
fn a_redirected_log_has_no_escape_codes() {
    let output = failing_agent().stdout(Stdio::null()).output().expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("ERROR redis_gitops: the agent did not start"),
        "{stderr}"
    );
    assert!(!output.stderr.contains(&ESC), "no escape codes: {stderr:?}");
}

/// Runs the failing agent on a pseudo-terminal (util-linux `script`), with `NO_COLOR` set or not; returns what the
/// terminal got.
fn on_a_terminal(no_color: bool) -> Vec<u8> {
    let agent = env!("CARGO_BIN_EXE_redis-gitops");
    let mut script = Command::new("script");
    script
        .arg("-qec")
        .arg(format!(
            "{agent} agent --metrics-address 127.0.0.1:0 --webhook-address 127.0.0.1:0"
        ))
        .arg("/dev/null")
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null());
    if no_color {
        script.env("NO_COLOR", "1");
    }
    let output = script
        .output()
        .unwrap_or_else(|error| panic!("script (util-linux) is needed: {error}"));
    output.stdout
}

#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    let coloured = on_a_terminal(false);
    let text = String::from_utf8_lossy(&coloured);
    assert!(text.contains("the agent did not start"), "{text}");
    assert!(coloured.contains(&ESC), "a terminal gets colours: {text:?}");
    let plain = on_a_terminal(true);
    let text = String::from_utf8_lossy(&plain);
    assert!(text.contains("the agent did not start"), "{text}");
    assert!(!plain.contains(&ESC), "NO_COLOR: no escape codes: {text:?}");
}

#[test]
fn sandbox_once_shows_progress_on_stderr_and_lists_only_what_is_not_ready_when_there_are_many() {
    let temp = tempfile::tempdir().expect("temp dir");
    let repo = Repo::new(temp.path());
    repo.write(
        "rec.yaml",
        "apiVersion: app.redislabs.com/v1\nkind: RedisEnterpriseCluster\nmetadata:\n  name: rec\n  namespace: team\nspec:\n  nodes: 3\n",
    );
    let databases = 25;
    for index in 0..databases {
        repo.write(
            &format!("db-{index:02}.yaml"),
            &format!(
                "apiVersion: app.redislabs.com/v1alpha1\nkind: RedisEnterpriseDatabase\nmetadata:\n  name: db-{index:02}\n  \
                 namespace: team\nspec:\n  memorySize: 100MB\n"
            ),
        );
    }
    repo.commit("a cluster and 25 databases");
    let output = Command::new(env!("CARGO_BIN_EXE_redis-gitops"))
        .args(["sandbox", "--once", "--timeout", "240s", "--kubeconfig"])
        .arg(temp.path().join("kubeconfig"))
        .arg("--repo")
        .arg(&repo.dir)
        .env_remove("NO_COLOR")
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");

    // Progress, line by line (standard error is a pipe here), and never on standard output.
    let progress: Vec<&str> = stderr.lines().filter(|line| line.starts_with("waiting ")).collect();
    assert!(!progress.is_empty(), "progress lines: {stderr}");
    assert!(
        progress.iter().any(|line| line.contains(" objects Ready, ")
            && line.contains(" reconciling, ")
            && line.ends_with(" stalled")),
        "{progress:?}"
    );
    assert!(!stdout.contains("waiting "), "{stdout}");
    assert!(!output.stderr.contains(&ESC), "no escape codes in a redirected log");

    // 26 objects: the GitSync, a count of what is left out, and the summary line scripts read.
    let table: Vec<&str> = stdout.lines().skip_while(|line| !line.starts_with("KIND")).collect();
    assert_eq!(table.len(), 5, "header, GitSync, note, summary, stopped: {stdout}");
    assert!(table[1].starts_with("gitsync  default/sandbox"), "{stdout}");
    assert_eq!(table[2], "(26 Ready objects not listed)");
    assert!(
        table[3].starts_with("26/26 objects Ready, revision main@sha1:"),
        "{stdout}"
    );
    assert_eq!(table[4], "sandbox stopped");
}
