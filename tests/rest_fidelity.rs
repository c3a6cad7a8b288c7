//! The agent's REST client against the emulator where a real Redis Enterprise cluster differs from a lenient one
//! (issue 18, items 6-9): trust by a pinned certificate, full alert objects compared on the fields the agent sets,
//! backup locations with their keys, shard counts that only split, create-only modules, reserved ports, and the
//! string progress of v1 actions.

#[path = "sandbox_enterprise/support.rs"]
#[allow(dead_code)]
mod support;

use std::sync::Arc;
use std::time::Duration;

use redis_gitops::controllers::database::build::alerts_to_send;
use redis_gitops::enterprise::trust::observe_certificate;
use redis_gitops::enterprise::types::Credentials;
use redis_gitops::enterprise::{ClientConfig, EnterpriseClient, EnterpriseError, RetryPolicy};
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

use support::{Harness, NAMESPACE, PASSWORD, REC, USER};

const MB100: u64 = 100 * 1024 * 1024;

fn config(harness: &Harness, url: String, ca_pem: Vec<u8>) -> ClientConfig {
    ClientConfig {
        base_url: url,
        credentials: Credentials {
            username: USER.into(),
            password: PASSWORD.into(),
        },
        ca_pem,
        timeout: Duration::from_secs(10),
        retry: RetryPolicy {
            attempts: 2,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(100),
        },
        resolver: Some(Arc::new(harness.emulator.resolver())),
    }
}

fn body(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn api_error(error: EnterpriseError) -> (u16, String, String) {
    match error {
        EnterpriseError::Api {
            status,
            error_code,
            description,
            ..
        } => (status, error_code, description),
        other => panic!("expected an API error, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_is_trusted_by_the_certificate_pinned_on_first_contact() {
    let harness = Harness::new();
    harness
        .emulator
        .add_node(&harness.key, &format!("{REC}-0"))
        .expect("add a node");
    let node = format!("https://{REC}-0.{REC}-headless.{NAMESPACE}.svc:9443");
    let observed = observe_certificate(
        &node,
        Some(Arc::new(harness.emulator.resolver())),
        Duration::from_secs(10),
    )
    .await
    .expect("first contact");
    assert!(observed.fingerprint.starts_with("sha256:"), "{observed:?}");

    // No CA at all: the pin alone is enough.
    let pinned = EnterpriseClient::with_pins(config(&harness, node.clone(), Vec::new()), vec![observed.fingerprint])
        .expect("client");
    let bootstrap = pinned.bootstrap().await.expect("the pinned node answers");
    assert_eq!(bootstrap.bootstrap_status.state.as_str(), "idle");

    let wrong = EnterpriseClient::with_pins(
        config(&harness, node, Vec::new()),
        vec!["sha256:0000000000000000000000000000000000000000000000000000000000000000".into()],
    )
    .expect("client");
    let error = wrong.bootstrap().await.expect_err("another certificate is refused");
    assert!(
        error.to_string().contains("is not the one pinned for this cluster"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_answers_alerts_backups_shards_modules_and_ports_as_documented() {
    let harness = Harness::new();
    harness.bootstrap_cluster(1).await;
    let service = format!("https://{REC}.{NAMESPACE}.svc:9443");
    let rest = EnterpriseClient::new(config(&harness, service, harness.emulator.ca_pem().as_bytes().to_vec()))
        .expect("client");
    let created = harness
        .create_database(json!({"name": "orders", "memory_size": MB100, "sharding": true, "shards_count": 2}))
        .await;
    let uid = created["uid"].as_u64().expect("uid");

    // Alerts: full alert objects come back; compared on the fields the agent sets, nothing is left to send.
    let desired = json!({"bdb_size": {"enabled": true, "threshold": "80"}});
    rest.set_database_alerts(uid, &desired).await.expect("alerts set");
    let live = rest.database_alerts(uid).await.expect("alerts read");
    for field in [
        "enabled",
        "threshold",
        "state",
        "severity",
        "change_time",
        "change_value",
    ] {
        assert!(live["bdb_size"].get(field).is_some(), "{field} missing: {live}");
    }
    assert_eq!(alerts_to_send(Some(desired), Some(&live)), None);

    // Shards split, never merge; modules are create-only.
    let (status, code, _) = api_error(
        rest.update_database(uid, &body(json!({"shards_count": 3})))
            .await
            .expect_err("3 is no multiple of 2"),
    );
    assert_eq!((status, code.as_str()), (406, "invalid_sharding"));
    let (status, _, description) = api_error(
        rest.update_database(uid, &body(json!({"module_list": [{"module_name": "search"}]})))
            .await
            .expect_err("modules are set at creation"),
    );
    assert_eq!(status, 400);
    assert!(
        description.contains("only be set when the database is created"),
        "{description}"
    );

    // Reserved ports and incomplete backup locations are refused with the documented 406s.
    let (status, code, _) = api_error(
        rest.create_database(&body(json!({"name": "reserved", "memory_size": MB100, "port": 10050})))
            .await
            .expect_err("10050 is reserved"),
    );
    assert_eq!((status, code.as_str()), (406, "port_unavailable"));
    let incomplete = json!({"name": "backed", "memory_size": MB100, "backup": true, "backup_interval": 3600,
                            "backup_location": {"type": "s3", "bucket_name": "b", "access_key_id": "AKIA-ID"}});
    let (status, code, description) = api_error(
        rest.create_database(&body(incomplete))
            .await
            .expect_err("no secret key"),
    );
    assert_eq!((status, code.as_str()), (406, "invalid_backup_location"));
    assert!(description.contains("needs secret_access_key"), "{description}");
    let complete = json!({"name": "backed", "memory_size": MB100, "backup": true, "backup_interval": 3600,
                          "backup_location": {"type": "s3", "bucket_name": "b", "access_key_id": "AKIA-ID",
                                              "secret_access_key": "s3-secret"}});
    let backed = rest
        .create_database(&body(complete))
        .await
        .expect("a complete location is accepted");
    let view = harness
        .call(Method::GET, &format!("/v1/bdbs/{}", backed.uid), None)
        .await;
    assert_eq!(view.status, StatusCode::OK);
    assert_eq!(view.body["backup"], json!(true), "{:?}", view.body);

    // v1 actions report progress as a string; the agent reads it as a number.
    let action_uid = backed.action_uid.clone().expect("an action");
    let raw = harness.wait_action(&action_uid).await;
    assert!(raw["progress"].is_string(), "{raw}");
    let action = rest.action(&action_uid).await.expect("read").expect("known");
    assert_eq!(action.progress, 100.0);
    assert!(action.is_finished());
}
