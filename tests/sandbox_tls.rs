//! Database TLS in the sandbox: a REDB with `tlsMode: enabled` runs its redis-server with TLS only, with a
//! certificate signed by the cluster's proxy CA; the agent puts that CA into the database Secret (`ca.crt`), and an
//! application connects with `redis-cli --tls --cacert` through the Secret and Service, while a plain connection
//! and one trusting another CA fail. Turning TLS off again serves plain connections.

#[path = "support/database_env.rs"]
mod database_env;

use std::process::Command;
use std::time::{Duration, Instant};

use database_env::*;
use serde_json::json;

/// What an application needs from the Secret and Service: address, port, password and the CA file (written from
/// `ca.crt`; empty path when the Secret has no CA).
struct Target {
    host: String,
    port: String,
    password: String,
    ca_file: Option<tempfile::NamedTempFile>,
}

async fn target(environment: &Environment, secret_name: &str) -> Target {
    let secret = environment.secrets().get(secret_name).await.expect("secret");
    let service = secret_text(&secret, "service_name");
    let host = environment
        .sandbox
        .emulator
        .names()
        .lookup(&format!("{service}.{NAMESPACE}.svc"))
        .expect("the Service name resolves")
        .to_string();
    let ca = secret_text(&secret, "ca.crt");
    let ca_file = (!ca.is_empty()).then(|| {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(file.path(), &ca).expect("CA written");
        file
    });
    Target {
        host,
        port: secret_text(&secret, "port"),
        password: secret_text(&secret, "password"),
        ca_file,
    }
}

/// Runs redis-cli against the target with `tls` arguments; returns (success, stdout + stderr). Bounded by
/// coreutils' `timeout`: a TLS client talking to a plain server waits forever for a handshake answer.
fn redis_cli(target: &Target, tls: &[&str], command: &[&str]) -> (bool, String) {
    let output = Command::new("timeout")
        .args(["10", "redis-cli"])
        .args([
            "-h",
            &target.host,
            "-p",
            &target.port,
            "--user",
            "default",
            "--pass",
            &target.password,
        ])
        .arg("--no-auth-warning")
        .args(tls)
        .args(command)
        .output()
        .expect("redis-cli runs (Debian package redis-tools)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text.trim().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_database_serves_tls_with_the_cluster_ca_from_its_secret() {
    let environment = start().await;
    create_database(
        &environment,
        "payments",
        json!({"memorySize": "100MB", "tlsMode": "enabled"}),
    )
    .await;
    wait_ready(&environment, "payments").await;

    // The Secret carries the CA, which is the cluster's proxy certificate (GET /v1/cluster/certificates).
    let proxy_ca = environment
        .sandbox
        .emulator
        .proxy_ca_pem(&Environment::key())
        .expect("the cluster has a proxy CA");
    let secret_ca = {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let secret = environment.secrets().get("redb-payments").await.expect("secret");
            let ca = secret_text(&secret, "ca.crt");
            if !ca.is_empty() {
                break ca;
            }
            assert!(Instant::now() < deadline, "the Secret never got ca.crt");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    assert_eq!(secret_ca, proxy_ca);
    let payments = target(&environment, "redb-payments").await;
    let ca_path = payments.ca_file.as_ref().expect("ca.crt").path().display().to_string();

    let tls = ["--tls", "--cacert", ca_path.as_str()];
    let (ok, out) = redis_cli(&payments, &tls, &["SET", "token", "t-1"]);
    assert!(ok && out == "OK", "SET over TLS: {out}");
    let (ok, out) = redis_cli(&payments, &tls, &["GET", "token"]);
    assert!(ok && out == "t-1", "GET over TLS: {out}");

    // Without TLS the database does not answer.
    let (_, out) = redis_cli(&payments, &[], &["PING"]);
    assert!(!out.contains("PONG"), "a plain connection must fail: {out}");
    // Trusting another CA (the REST API's) fails the handshake.
    let wrong_ca = environment.sandbox.ca_path().display().to_string();
    let (_, out) = redis_cli(&payments, &["--tls", "--cacert", wrong_ca.as_str()], &["PING"]);
    assert!(
        !out.contains("PONG") && out.contains("certificate verify failed"),
        "{out}"
    );

    // A database without TLS has no CA in its Secret and serves plain connections.
    create_database(&environment, "plain", json!({"memorySize": "100MB"})).await;
    wait_ready(&environment, "plain").await;
    let plain = target(&environment, "redb-plain").await;
    assert!(plain.ca_file.is_none(), "no ca.crt without TLS");
    let (ok, out) = redis_cli(&plain, &[], &["PING"]);
    assert!(ok && out == "PONG", "{out}");

    // Turning TLS off applies to new connections: plain works, TLS does not.
    patch_spec(&environment, "payments", json!({"tlsMode": "disabled"})).await;
    wait_ready(&environment, "payments").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (ok, out) = redis_cli(&payments, &[], &["GET", "token"]);
        if ok && out == "t-1" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "plain connections never worked after tlsMode: disabled: {out}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, out) = redis_cli(&payments, &tls, &["PING"]);
    assert!(!out.contains("PONG"), "TLS is off: {out}");
    environment.stop().await;
}
