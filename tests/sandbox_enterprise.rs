//! The Redis Enterprise emulator, driven only by real clients: reqwest over HTTPS (trusting the
//! emulator's CA, resolving `rec.ns.svc` names through the emulator's resolver, port 9443) and the
//! `redis` crate against the real redis-server processes behind the databases.

#[path = "sandbox_enterprise/support.rs"]
mod support;

use std::time::{Duration, Instant};

use redis_gitops_sandbox::enterprise::{ClusterKey, EmulatorConfig, EnterpriseEmulator};
use reqwest::{Method, StatusCode};
use serde_json::json;

use support::{
    Harness, NAMESPACE, PASSWORD, REC, TempDir, USER, client_for, config_get, redis_connect, redis_get, redis_set,
};

const MB100: u64 = 100 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_creates_a_cluster_and_joins_three_nodes() {
    let harness = Harness::new();
    for index in 0..3 {
        let node = harness
            .emulator
            .add_node(&harness.key, &format!("{REC}-{index}"))
            .expect("add a node");
        assert!(node.ip.is_loopback() && node.ip.to_string() != "127.0.0.1");
    }

    let node0 = harness.emulator.node(&harness.key, "rec-0").expect("rec-0 runs");
    assert_eq!(harness.resolve("rec-0.rec-headless.ns.svc"), node0.ip);
    let cluster = harness.emulator.cluster(&harness.key).expect("the cluster exists");
    assert_eq!(cluster.service_name, "rec.ns.svc");
    assert_eq!(harness.resolve("rec.ns.svc.cluster.local"), cluster.service_ip);

    // Bootstrap is open on a node that belongs to no cluster; the rest of the API is not.
    let idle = harness
        .client
        .get(harness.node_url("rec-1", "/v1/bootstrap"))
        .send()
        .await
        .expect("GET /v1/bootstrap");
    assert_eq!(idle.status(), StatusCode::OK);
    let idle: serde_json::Value = idle.json().await.expect("bootstrap JSON");
    assert_eq!(idle["bootstrap_status"]["state"], "idle");
    let not_member = harness
        .call_url(Method::GET, &harness.node_url("rec-1", "/v1/nodes"), None)
        .await;
    assert_eq!(not_member.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(not_member.error_code(), "node_not_in_cluster");

    // create_cluster moves through creating_cluster; a second request meanwhile is 409.
    let create_url = harness.node_url("rec-0", "/v1/bootstrap/create_cluster");
    let body = harness.bootstrap_body("create_cluster", &[]);
    let created = harness.call_url(Method::POST, &create_url, Some(body.clone())).await;
    assert_eq!(created.status, StatusCode::OK, "{created:?}");
    let again = harness.call_url(Method::POST, &create_url, Some(body)).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{again:?}");
    let during = harness
        .call_url(Method::GET, &harness.node_url("rec-0", "/v1/bootstrap"), None)
        .await;
    assert!(
        ["creating_cluster", "completed"].contains(&during.body["bootstrap_status"]["state"].as_str().unwrap_or("")),
        "{during:?}"
    );
    harness.wait_bootstrap("rec-0", "completed").await;

    // Joining through an address that is no cluster member ends in the error state.
    let stray = harness
        .call_url(
            Method::POST,
            &harness.node_url("rec-2", "/v1/bootstrap/join_cluster"),
            Some(harness.bootstrap_body("join_cluster", &["rec-9.rec-headless.ns.svc".to_string()])),
        )
        .await;
    assert_eq!(stray.status, StatusCode::OK);
    let failed = harness.wait_bootstrap("rec-2", "error").await;
    assert_eq!(failed["bootstrap_status"]["error_code"], "connect_error");

    // Joining through pod 0's name works (also after an error).
    let seed = vec!["rec-0.rec-headless.ns.svc.cluster.local".to_string()];
    for pod in ["rec-1", "rec-2"] {
        let joined = harness
            .call_url(
                Method::POST,
                &harness.node_url(pod, "/v1/bootstrap/join_cluster"),
                Some(harness.bootstrap_body("join_cluster", &seed)),
            )
            .await;
        assert_eq!(joined.status, StatusCode::OK, "{joined:?}");
        harness.wait_bootstrap(pod, "completed").await;
    }

    let nodes = harness.call(Method::GET, "/v1/nodes", None).await;
    assert_eq!(nodes.status, StatusCode::OK);
    let nodes = nodes.body.as_array().expect("a node list").clone();
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    let uids: Vec<u64> = nodes.iter().filter_map(|node| node["uid"].as_u64()).collect();
    assert_eq!(uids, vec![1, 2, 3]);
    for node in &nodes {
        assert_eq!(node["status"], "active");
        assert_eq!(node["software_version"], "7.22.2-43");
        assert!(node["total_memory"].as_u64().unwrap_or(0) > 0);
        assert!(node["addr"].as_str().is_some_and(|addr| addr.starts_with("127.")));
    }
    let cluster = harness.call(Method::GET, "/v1/cluster", None).await;
    assert_eq!(cluster.body["name"], "rec.ns.svc.cluster.local");

    // A member answers only with the right credentials.
    let anonymous = harness
        .client
        .get(harness.service_url("/v1/nodes"))
        .send()
        .await
        .expect("GET /v1/nodes");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let wrong = harness
        .client
        .get(harness.node_url("rec-2", "/v1/nodes"))
        .basic_auth(USER, Some("not-the-password"))
        .send()
        .await
        .expect("GET /v1/nodes");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    // A pod that goes away leaves a down node; the same pod coming back is active again.
    harness
        .emulator
        .remove_node(&harness.key, "rec-2")
        .expect("remove rec-2");
    let nodes = harness.call(Method::GET, "/v1/nodes/3", None).await;
    assert_eq!(nodes.body["status"], "down");
    assert!(harness.emulator.names().lookup("rec-2.rec-headless.ns.svc").is_none());
    harness.emulator.add_node(&harness.key, "rec-2").expect("re-add rec-2");
    // It comes back through `provisioning` (while its services start) to `active`.
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // A connection pooled to the pod's previous address may be reset once, as in Kubernetes.
        let response = harness
            .client
            .get(harness.node_url("rec-2", "/v1/nodes/3"))
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await;
        let Ok(response) = response else {
            assert!(Instant::now() < deadline, "rec-2 never answered: {response:?}");
            continue;
        };
        let back: serde_json::Value = response.json().await.expect("node JSON");
        let status = back["status"].as_str().unwrap_or_default().to_string();
        if seen.last() != Some(&status) {
            seen.push(status.clone());
        }
        if status == "active" {
            break;
        }
        assert!(Instant::now() < deadline, "rec-2 never became active: {seen:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        seen == ["provisioning", "active"] || seen == ["active"],
        "unexpected node status sequence {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_serves_redis_with_its_password() {
    let harness = Harness::new();
    harness.bootstrap_cluster(1).await;
    let bdb = harness
        .create_database(json!({
            "name": "orders", "memory_size": MB100, "authentication_redis_pass": "s3cret pass"
        }))
        .await;
    let port = bdb["port"].as_u64().expect("an assigned port") as u16;
    assert!((10000..=19999).contains(&port), "port {port}");
    assert_eq!(bdb["endpoints"][0]["port"], port);
    assert_eq!(bdb["eviction_policy"], "volatile-lru");
    let ip = harness.resolve("orders.ns.svc");
    assert_eq!(harness.resolve("orders.ns.svc.cluster.local"), ip);

    let mut connection = redis_connect(ip, port, Some("s3cret pass")).expect("connect with the password");
    redis_set(&mut connection, "order:1", "paid");
    assert_eq!(redis_get(&mut connection, "order:1").as_deref(), Some("paid"));
    assert_eq!(config_get(&mut connection, "maxmemory"), MB100.to_string());

    let wrong = redis_connect(ip, port, Some("guess"));
    let error = wrong.err().expect("a wrong password is refused");
    assert_eq!(error.kind(), redis::ErrorKind::AuthenticationFailed, "{error}");
    let mut anonymous = redis_connect(ip, port, None).expect("TCP connect without password");
    let refused = redis::cmd("GET").arg("order:1").query::<Option<String>>(&mut anonymous);
    assert!(refused.is_err(), "a client without the password must be refused");

    // Password rotation applies at once.
    let rotated = harness
        .call(
            Method::PUT,
            &format!("/v1/bdbs/{}/passwords", bdb["uid"]),
            Some(json!({"password": "n3w"})),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{rotated:?}");
    assert!(
        redis_connect(ip, port, Some("s3cret pass")).is_err(),
        "the old password must stop working"
    );
    let mut connection = redis_connect(ip, port, Some("n3w")).expect("connect with the new password");
    assert_eq!(redis_get(&mut connection, "order:1").as_deref(), Some("paid"));

    // ?fields= selects fields.
    let listed = harness.call(Method::GET, "/v1/bdbs?fields=uid,name", None).await;
    assert_eq!(listed.body, json!([{"uid": bdb["uid"], "name": "orders"}]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_changes_memory_eviction_and_persistence_live() {
    let harness = Harness::new();
    harness.bootstrap_cluster(1).await;
    let bdb = harness
        .create_database(json!({"name": "cache", "memory_size": MB100, "authentication_redis_pass": "pw"}))
        .await;
    let uid = bdb["uid"].as_u64().expect("uid");
    let port = bdb["port"].as_u64().expect("port") as u16;
    let mut connection = redis_connect(harness.resolve("cache.ns.svc"), port, Some("pw")).expect("connect");
    redis_set(&mut connection, "kept", "yes");

    let updated = harness
        .call(
            Method::PUT,
            &format!("/v1/bdbs/{uid}"),
            Some(json!({"memory_size": 2 * MB100, "eviction_policy": "allkeys-lru",
                        "data_persistence": "aof", "aof_policy": "appendfsync-always"})),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{updated:?}");
    assert_eq!(updated.body["status"], "active-change-pending");
    let action = harness
        .wait_action(updated.body["action_uid"].as_str().expect("action_uid"))
        .await;
    assert_eq!(action["status"], "completed", "{action}");
    assert_eq!(action["progress"], 100.0);

    let view = harness.call(Method::GET, &format!("/v1/bdbs/{uid}"), None).await;
    assert_eq!(view.body["status"], "active");
    assert_eq!(view.body["memory_size"], 2 * MB100);
    assert_eq!(view.body["eviction_policy"], "allkeys-lru");
    assert_eq!(config_get(&mut connection, "maxmemory"), (2 * MB100).to_string());
    assert_eq!(config_get(&mut connection, "maxmemory-policy"), "allkeys-lru");
    assert_eq!(config_get(&mut connection, "appendonly"), "yes");
    assert_eq!(config_get(&mut connection, "appendfsync"), "always");
    assert_eq!(redis_get(&mut connection, "kept").as_deref(), Some("yes"));

    // The password can also change through authentication_redis_pass in a PUT.
    let repassed = harness
        .call(
            Method::PUT,
            &format!("/v1/bdbs/{uid}"),
            Some(json!({"authentication_redis_pass": "pw2"})),
        )
        .await;
    harness
        .wait_action(repassed.body["action_uid"].as_str().expect("action_uid"))
        .await;
    assert!(redis_connect(harness.resolve("cache.ns.svc"), port, Some("pw")).is_err());
    assert!(redis_connect(harness.resolve("cache.ns.svc"), port, Some("pw2")).is_ok());

    // Upgrade keeps the data (even without persistence the snapshot carries it over).
    let upgraded = harness
        .call(
            Method::POST,
            &format!("/v1/bdbs/{uid}/upgrade"),
            Some(json!({"redis_version": "7.2"})),
        )
        .await;
    assert_eq!(upgraded.status, StatusCode::OK, "{upgraded:?}");
    let action = harness
        .wait_action(upgraded.body["action_uid"].as_str().expect("action_uid"))
        .await;
    assert_eq!(action["status"], "completed", "{action}");
    let view = harness.call(Method::GET, &format!("/v1/bdbs/{uid}"), None).await;
    assert_eq!(view.body["redis_version"], "7.2");
    let mut connection = redis_connect(harness.resolve("cache.ns.svc"), port, Some("pw2")).expect("reconnect");
    assert_eq!(redis_get(&mut connection, "kept").as_deref(), Some("yes"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_bodies_get_the_documented_errors_and_create_nothing() {
    let harness = Harness::new();
    harness.bootstrap_cluster(1).await;
    let existing = harness
        .create_database(json!({"name": "first", "memory_size": MB100, "port": 12100}))
        .await;

    let cases = [
        (json!({"memory_size": MB100}), 406, "missing_db_name"),
        (json!({"name": "x"}), 406, "missing_memory_size"),
        (
            json!({"name": "x", "memory_size": MB100, "eviction_policy": "illegal"}),
            400,
            "invalid_schema",
        ),
        (
            json!({"name": "x", "memory_size": MB100, "data_persistence": "sometimes"}),
            406,
            "invalid_data_persistence",
        ),
        (
            json!({"name": "x", "memory_size": MB100, "aof_policy": "never"}),
            406,
            "invalid_data_persistence",
        ),
        (
            json!({"name": "x", "memory_size": MB100, "shards_count": 0}),
            406,
            "invalid_sharding",
        ),
        (
            json!({"name": "x", "memory_size": MB100, "shards_count": 600, "sharding": true}),
            406,
            "invalid_sharding",
        ),
        (
            json!({"name": "x", "memory_size": MB100, "replication": true}),
            406,
            "invalid_replication",
        ),
        (
            json!({"name": "x", "memory_size": MB100, "port": 12100}),
            406,
            "port_unavailable",
        ),
        (
            json!({"name": "x", "memory_size": MB100, "port": 9443}),
            406,
            "port_unavailable",
        ),
        (
            json!({"name": "x", "memory_size": MB100, "redis_version": "4.0"}),
            406,
            "invalid_version",
        ),
        (
            json!({"name": "x", "memory_size": MB100, "module_list": [{"module_name": "graph"}]}),
            406,
            "missing_module",
        ),
        (json!({"name": "first", "memory_size": MB100}), 409, "db_name_exists"),
        (
            json!({"name": "x", "memory_size": MB100, "uid": existing["uid"]}),
            409,
            "uid_exists",
        ),
        (
            json!({"name": "x", "memory_size": MB100, "flavour": "vanilla"}),
            400,
            "invalid_schema",
        ),
        (
            json!({"name": "x", "memory_size": MB100, "tls_mode": "enabled"}),
            501,
            "not_implemented",
        ),
        (
            json!({"name": "x", "memory_size": MB100,
                   "roles_permissions": [{"role_uid": 1, "redis_acl_uid": 1}]}),
            501,
            "not_implemented",
        ),
    ];
    for (body, status, error_code) in cases {
        let answer = harness.call(Method::POST, "/v1/bdbs", Some(body.clone())).await;
        assert_eq!(
            (answer.status.as_u16(), answer.error_code()),
            (status, error_code),
            "body {body}: {answer:?}"
        );
        assert!(answer.body["description"].as_str().is_some_and(|d| !d.is_empty()));
    }
    let malformed = harness
        .client
        .post(harness.service_url("/v1/bdbs"))
        .basic_auth(USER, Some(PASSWORD))
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .expect("POST malformed");
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);

    // A bad update changes nothing either.
    let uid = existing["uid"].as_u64().expect("uid");
    let bad_update = harness
        .call(
            Method::PUT,
            &format!("/v1/bdbs/{uid}"),
            Some(json!({"eviction_policy": "sometimes"})),
        )
        .await;
    assert_eq!(
        (bad_update.status.as_u16(), bad_update.error_code()),
        (400, "invalid_schema")
    );

    let all = harness.call(Method::GET, "/v1/bdbs", None).await;
    assert_eq!(all.body.as_array().map(Vec::len), Some(1), "{all:?}");
    assert_eq!(all.body[0]["eviction_policy"], "volatile-lru");
    assert_eq!(all.body[0]["status"], "active");
    assert_eq!(harness.emulator.database_pids().len(), 1);

    let missing = harness.call(Method::GET, "/v1/bdbs/999", None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let unknown = harness.call(Method::GET, "/v1/crdbs", None).await;
    assert_eq!(unknown.status, StatusCode::NOT_IMPLEMENTED);
    assert!(
        unknown.body["description"]
            .as_str()
            .is_some_and(|d| d.contains("GET /v1/crdbs")),
        "{unknown:?}"
    );

    let dry_run = harness
        .call(
            Method::POST,
            "/v1/bdbs?dry_run=1",
            Some(json!({"name": "dry", "memory_size": MB100})),
        )
        .await;
    assert_eq!(dry_run.status, StatusCode::OK);
    assert_eq!(
        harness
            .call(Method::GET, "/v1/bdbs", None)
            .await
            .body
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    let modules = harness.call(Method::GET, "/v1/modules", None).await;
    let names: Vec<&str> = modules
        .body
        .as_array()
        .expect("modules")
        .iter()
        .filter_map(|m| m["module_name"].as_str())
        .collect();
    assert_eq!(names, vec!["search", "ReJSON", "timeseries", "bf"]);
    let license = harness.call(Method::GET, "/v1/license", None).await;
    assert_eq!(license.body["expired"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_is_busy_while_its_action_runs() {
    let harness = Harness::new();
    harness.bootstrap_cluster(3).await;
    let bdb = harness
        .create_database(json!({"name": "busy", "memory_size": MB100}))
        .await;
    let uid = bdb["uid"].as_u64().expect("uid");

    let faults = harness.emulator.faults();
    faults.hold_actions(true);
    let first = harness
        .call(
            Method::PUT,
            &format!("/v1/bdbs/{uid}"),
            Some(json!({"replication": true})),
        )
        .await;
    assert_eq!(first.status, StatusCode::OK, "{first:?}");
    let action_uid = first.body["action_uid"].as_str().expect("action_uid").to_string();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let action = harness
            .call(Method::GET, &format!("/v1/actions/{action_uid}"), None)
            .await;
        if action.body["status"] == "active" {
            break;
        }
        assert!(Instant::now() < deadline, "the action never became active: {action:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let v2 = harness
        .call(Method::GET, &format!("/v2/actions/{action_uid}"), None)
        .await;
    assert_eq!(v2.body["status"], "running", "{v2:?}");
    assert_eq!(v2.body["action_type"], "state-machine");
    assert_eq!(v2.body["additional_info"]["object_uid"], uid.to_string());
    let second = harness
        .call(
            Method::PUT,
            &format!("/v1/bdbs/{uid}"),
            Some(json!({"memory_size": 2 * MB100})),
        )
        .await;
    assert_eq!(
        (second.status.as_u16(), second.error_code()),
        (409, "busy"),
        "{second:?}"
    );
    let delete = harness.call(Method::DELETE, &format!("/v1/bdbs/{uid}"), None).await;
    assert_eq!(delete.status, StatusCode::CONFLICT);
    let listed = harness.call(Method::GET, "/v1/actions", None).await;
    assert!(
        listed.body["state-machines"]
            .as_array()
            .is_some_and(|sms| sms.iter().any(|sm| sm["action_uid"] == action_uid.as_str())),
        "{listed:?}"
    );

    faults.hold_actions(false);
    let action = harness.wait_action(&action_uid).await;
    assert_eq!(action["status"], "completed");
    let view = harness.call(Method::GET, &format!("/v1/bdbs/{uid}"), None).await;
    assert_eq!(view.body["replication"], true);
    let third = harness
        .call(
            Method::PUT,
            &format!("/v1/bdbs/{uid}"),
            Some(json!({"memory_size": 2 * MB100})),
        )
        .await;
    assert_eq!(third.status, StatusCode::OK, "{third:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_writes_an_rdb_that_import_loads_into_another_database() {
    let harness = Harness::new();
    harness.bootstrap_cluster(1).await;
    let backups = TempDir::new("backups");
    let source = harness
        .create_database(json!({"name": "source", "memory_size": MB100, "authentication_redis_pass": "a"}))
        .await;
    let target = harness
        .create_database(
            json!({"name": "target", "memory_size": MB100, "authentication_redis_pass": "b",
                                "data_persistence": "aof"}),
        )
        .await;
    let source_port = source["port"].as_u64().expect("port") as u16;
    let target_port = target["port"].as_u64().expect("port") as u16;
    let ip = harness.resolve("source.ns.svc");
    let mut source_connection = redis_connect(ip, source_port, Some("a")).expect("connect source");
    redis_set(&mut source_connection, "invoice:7", "sent");
    let mut target_connection = redis_connect(ip, target_port, Some("b")).expect("connect target");
    redis_set(&mut target_connection, "stale", "gone after import");

    let source_uid = source["uid"].as_u64().expect("uid");
    let exported = harness
        .call(
            Method::POST,
            &format!("/v1/bdbs/{source_uid}/actions/export"),
            Some(json!({"export_location": {"type": "mount_point", "path": backups.0.display().to_string()}})),
        )
        .await;
    assert_eq!(exported.status, StatusCode::OK, "{exported:?}");
    let action = harness
        .wait_action(exported.body["action_uid"].as_str().expect("action_uid"))
        .await;
    assert_eq!(action["status"], "completed", "{action}");
    let view = harness.call(Method::GET, &format!("/v1/bdbs/{source_uid}"), None).await;
    assert_eq!(view.body["export_status"], "succeeded");
    assert_eq!(view.body["export_progress"], 100.0);
    let files: Vec<_> = std::fs::read_dir(&backups.0)
        .expect("list the backup directory")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let rdb = std::fs::read(&files[0]).expect("read the export");
    assert!(
        rdb.starts_with(&[0x1f, 0x8b]),
        "the export is a gzip-compressed RDB file"
    );
    assert!(files[0].to_string_lossy().ends_with("_shard-1.rdb.gz"), "{files:?}");

    let target_uid = target["uid"].as_u64().expect("uid");
    let url = format!("file://{}", files[0].display());
    let imported = harness
        .call(
            Method::POST,
            &format!("/v1/bdbs/{target_uid}/actions/import"),
            Some(json!({"dataset_import_sources": [{"type": "url", "url": url}]})),
        )
        .await;
    assert_eq!(imported.status, StatusCode::OK, "{imported:?}");
    let action = harness
        .wait_action(imported.body["action_uid"].as_str().expect("action_uid"))
        .await;
    assert_eq!(action["status"], "completed", "{action}");
    let view = harness.call(Method::GET, &format!("/v1/bdbs/{target_uid}"), None).await;
    assert_eq!(view.body["import_status"], "succeeded");
    assert_eq!(view.body["status"], "active");
    let mut target_connection = redis_connect(ip, target_port, Some("b")).expect("reconnect target");
    assert_eq!(redis_get(&mut target_connection, "invoice:7").as_deref(), Some("sent"));
    assert_eq!(
        redis_get(&mut target_connection, "stale"),
        None,
        "import replaces the content"
    );
    assert_eq!(
        config_get(&mut target_connection, "appendonly"),
        "yes",
        "persistence comes back after import"
    );

    // Import with a mount_point source and an explicit filename works as well.
    let file_name = files[0]
        .file_name()
        .and_then(|n| n.to_str())
        .expect("file name")
        .to_string();
    let again = harness
        .call(
            Method::POST,
            &format!("/v1/bdbs/{target_uid}/actions/import"),
            Some(json!({"dataset_import_sources": [{"type": "mount_point", "path": backups.0.display().to_string(), "filename": file_name}]})),
        )
        .await;
    let action = harness
        .wait_action(again.body["action_uid"].as_str().expect("action_uid"))
        .await;
    assert_eq!(action["status"], "completed", "{action}");

    // A file that is no RDB fails the import and leaves the content alone.
    let junk = backups.0.join("junk.rdb");
    std::fs::write(&junk, b"not an rdb").expect("write a junk file");
    let bad = harness
        .call(
            Method::POST,
            &format!("/v1/bdbs/{target_uid}/actions/import"),
            Some(json!({"dataset_import_sources": [{"type": "url", "url": format!("file://{}", junk.display())}]})),
        )
        .await;
    let action = harness
        .wait_action(bad.body["action_uid"].as_str().expect("action_uid"))
        .await;
    assert_eq!(action["status"], "failed", "{action}");
    let view = harness.call(Method::GET, &format!("/v1/bdbs/{target_uid}"), None).await;
    assert_eq!(view.body["import_status"], "failed");
    assert_eq!(view.body["import_failure_reason"], "file-corrupted");
    assert_eq!(view.body["status"], "active");
    let mut target_connection = redis_connect(ip, target_port, Some("b")).expect("reconnect target");
    assert_eq!(redis_get(&mut target_connection, "invoice:7").as_deref(), Some("sent"));

    // A truncated gzip file is corrupted too.
    let gzipped = backups.0.join("dump.rdb.gz");
    std::fs::write(&gzipped, [0x1f, 0x8b, 0x08, 0x00, 0x00]).expect("write a gzip header");
    let gz = harness
        .call(
            Method::POST,
            &format!("/v1/bdbs/{target_uid}/actions/import"),
            Some(json!({"dataset_import_sources": [{"type": "url", "url": format!("file://{}", gzipped.display())}]})),
        )
        .await;
    let action = harness
        .wait_action(gz.body["action_uid"].as_str().expect("action_uid"))
        .await;
    assert_eq!(action["status"], "failed", "{action}");
    let view = harness.call(Method::GET, &format!("/v1/bdbs/{target_uid}"), None).await;
    assert_eq!(view.body["import_failure_reason"], "file-corrupted");

    // An export to a missing directory fails with the documented reason.
    let missing = harness
        .call(
            Method::POST,
            &format!("/v1/bdbs/{source_uid}/actions/export"),
            Some(json!({"export_location": {"type": "url", "url": "file:///nonexistent/backups/"}})),
        )
        .await;
    let action = harness
        .wait_action(missing.body["action_uid"].as_str().expect("action_uid"))
        .await;
    assert_eq!(action["status"], "failed");
    let view = harness.call(Method::GET, &format!("/v1/bdbs/{source_uid}"), None).await;
    assert_eq!(view.body["export_status"], "failed");
    assert_eq!(view.body["export_failure_reason"], "wrong-file-path");
    let s3 = harness
        .call(
            Method::POST,
            &format!("/v1/bdbs/{source_uid}/actions/export"),
            Some(json!({"export_location": {"type": "s3", "bucket_name": "b"}})),
        )
        .await;
    assert_eq!(
        (s3.status, s3.error_code()),
        (StatusCode::BAD_REQUEST, "invalid_schema"),
        "an s3 location without its keys: {s3:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_stops_the_process_and_frees_the_port() {
    let harness = Harness::new();
    harness.bootstrap_cluster(1).await;
    let bdb = harness
        .create_database(json!({"name": "short-lived", "memory_size": MB100, "port": 12345}))
        .await;
    let uid = bdb["uid"].as_u64().expect("uid");
    let ip = harness.resolve("short-lived.ns.svc");
    let mut connection = redis_connect(ip, 12345, None).expect("connect");
    redis_set(&mut connection, "k", "old");

    let deleted = harness.call(Method::DELETE, &format!("/v1/bdbs/{uid}"), None).await;
    assert_eq!(deleted.status, StatusCode::OK, "{deleted:?}");
    let pending = harness.call(Method::GET, &format!("/v1/bdbs/{uid}"), None).await;
    assert!(
        pending.status == StatusCode::NOT_FOUND || pending.body["status"] == "delete-pending",
        "{pending:?}"
    );
    let action = harness
        .wait_action(deleted.body["action_uid"].as_str().expect("action_uid"))
        .await;
    assert_eq!(action["status"], "completed");
    assert_eq!(
        harness.call(Method::GET, &format!("/v1/bdbs/{uid}"), None).await.status,
        StatusCode::NOT_FOUND
    );
    assert!(redis_connect(ip, 12345, None).is_err(), "the port is closed");
    assert!(harness.emulator.names().lookup("short-lived.ns.svc").is_none());

    let again = harness
        .create_database(json!({"name": "short-lived", "memory_size": MB100, "port": 12345}))
        .await;
    assert_eq!(again["port"], 12345);
    let mut connection = redis_connect(ip, 12345, None).expect("connect to the new database");
    assert_eq!(redis_get(&mut connection, "k"), None, "a new database starts empty");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_fail_delay_and_kill() {
    let harness = Harness::with_config(EmulatorConfig {
        step_delay: Duration::from_millis(20),
        restart_dead_databases_after: Some(Duration::from_secs(2)),
        ..EmulatorConfig::default()
    });
    harness.bootstrap_cluster(1).await;
    let bdb = harness
        .create_database(json!({"name": "fragile", "memory_size": MB100, "data_persistence": "aof"}))
        .await;
    let uid = bdb["uid"].as_u64().expect("uid");
    let faults = harness.emulator.faults();

    faults.fail_next(
        Some(Method::GET),
        "/v1/bdbs",
        2,
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
    );
    for _ in 0..2 {
        let failed = harness.call(Method::GET, "/v1/bdbs", None).await;
        assert_eq!((failed.status.as_u16(), failed.error_code()), (500, "internal_error"));
    }
    assert_eq!(harness.call(Method::GET, "/v1/bdbs", None).await.status, StatusCode::OK);

    faults.fail_next(
        None,
        "/v1/nodes",
        1,
        StatusCode::SERVICE_UNAVAILABLE,
        "node_unavailable",
    );
    assert_eq!(
        harness.call(Method::GET, "/v1/nodes", None).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );

    faults.busy_next(Some(Method::PUT), &format!("/v1/bdbs/{uid}"), 1);
    let busy = harness
        .call(
            Method::PUT,
            &format!("/v1/bdbs/{uid}"),
            Some(json!({"memory_size": MB100})),
        )
        .await;
    assert_eq!((busy.status.as_u16(), busy.error_code()), (409, "busy"));

    faults.delay_next(Some(Method::GET), "/v1/cluster", 1, Duration::from_secs(2));
    let impatient = client_for(&harness.emulator, Duration::from_millis(300));
    let timed_out = impatient
        .get(harness.service_url("/v1/cluster"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .expect_err("the delayed request times out");
    assert!(timed_out.is_timeout(), "{timed_out:?}");

    // A killed process is reported, restarted, and keeps its AOF data.
    let port = bdb["port"].as_u64().expect("port") as u16;
    let ip = harness.resolve("fragile.ns.svc");
    let mut connection = redis_connect(ip, port, None).expect("connect");
    redis_set(&mut connection, "survives", "yes");
    let pid = harness
        .emulator
        .kill_database_process(&harness.key, uid)
        .expect("kill the process");
    assert!(pid > 0);
    let down = harness.wait_bdb_field(uid, "status", "recovery").await;
    assert_eq!(down["uid"], uid);
    let shard = harness.call(Method::GET, &format!("/v1/shards/{uid}"), None).await;
    assert_eq!(shard.body["detailed_status"], "down", "{shard:?}");
    assert_eq!(shard.body["status"], "inactive", "{shard:?}");
    harness.wait_bdb_field(uid, "status", "active").await;
    let mut connection = redis_connect(ip, port, None).expect("reconnect after the restart");
    assert_eq!(redis_get(&mut connection, "survives").as_deref(), Some("yes"));
    assert!(!harness.emulator.database_pids().contains(&pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_leaves_no_process_behind() {
    support::require_redis_server();
    let emulator = EnterpriseEmulator::start(EmulatorConfig {
        step_delay: Duration::from_millis(10),
        ..EmulatorConfig::default()
    })
    .expect("start");
    let harness = Harness {
        client: client_for(&emulator, Duration::from_secs(20)),
        emulator,
        key: ClusterKey::new(NAMESPACE, REC),
    };
    harness.bootstrap_cluster(1).await;
    for name in ["one", "two"] {
        harness
            .create_database(json!({"name": name, "memory_size": MB100}))
            .await;
    }
    // A third database is still being created (its action held) when the emulator stops.
    let faults = harness.emulator.faults();
    faults.hold_actions(true);
    let pending = harness
        .call(
            Method::POST,
            "/v1/bdbs",
            Some(json!({"name": "three", "memory_size": MB100})),
        )
        .await;
    assert_eq!(pending.status, StatusCode::OK, "{pending:?}");
    let pids = harness.emulator.database_pids();
    assert_eq!(pids.len(), 2);
    let work_dir = harness.emulator.work_dir().to_path_buf();
    let service_ip = harness.emulator.cluster(&harness.key).expect("the cluster").service_ip;
    // redis-server retitles itself "redis-server <ip>:<port>"; find ours by the cluster's address.
    let ours = |cmdline: &str| {
        cmdline.contains(&format!("{service_ip}:")) || cmdline.contains(&work_dir.display().to_string())
    };
    let running: Vec<String> = std::fs::read_dir("/proc")
        .expect("list /proc")
        .filter_map(Result::ok)
        .filter_map(|entry| std::fs::read(entry.path().join("cmdline")).ok())
        .map(|cmdline| String::from_utf8_lossy(&cmdline).replace('\0', " "))
        .filter(|cmdline| ours(cmdline))
        .collect();
    assert_eq!(running.len(), 2, "the probe sees both databases: {running:?}");
    assert!(harness.emulator.ca_path().exists());
    assert!(harness.emulator.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));

    harness.emulator.shutdown();
    // Releasing the held action after the shutdown must not start a process.
    faults.hold_actions(false);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let survivors: Vec<String> = std::fs::read_dir("/proc")
        .expect("list /proc")
        .filter_map(Result::ok)
        .filter_map(|entry| std::fs::read(entry.path().join("cmdline")).ok())
        .map(|cmdline| String::from_utf8_lossy(&cmdline).replace('\0', " "))
        .filter(|cmdline| ours(cmdline))
        .collect();
    assert!(survivors.is_empty(), "processes outlived the emulator: {survivors:?}");
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "redis-server {pid} outlived the emulator"
        );
    }
    assert!(!work_dir.exists(), "the temporary work directory is removed");
    let refused = harness.client.get(harness.service_url("/v1/bdbs")).send().await;
    assert!(refused.is_err(), "the REST API is gone");
    assert!(harness.emulator.names().lookup("one.ns.svc").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_resolver_refuses_names_outside_the_sandbox() {
    let harness = Harness::new();
    harness.bootstrap_cluster(1).await;
    let error = harness
        .client
        .get("https://unknown.ns.svc:9443/v1/bdbs")
        .send()
        .await
        .expect_err("an unknown name cannot be resolved");
    let chain = format!("{error:?}");
    assert!(chain.contains("unknown.ns.svc"), "{chain}");
    // The same cluster answers on the service name and on each pod name, with a valid certificate.
    let by_pod = harness
        .call_url(Method::GET, &harness.node_url("rec-0", "/v1/cluster"), None)
        .await;
    let by_service = harness.call(Method::GET, "/v1/cluster", None).await;
    assert_eq!(by_pod.body["name"], by_service.body["name"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_settings_license_and_extra_passwords() {
    let harness = Harness::new();
    harness.bootstrap_cluster(1).await;

    let put = harness
        .call(Method::PUT, "/v1/cluster", Some(json!({"email_alerts": true})))
        .await;
    assert_eq!(put.status, StatusCode::OK, "{put:?}");
    let cluster = harness.call(Method::GET, "/v1/cluster", None).await;
    assert_eq!(cluster.body["email_alerts"], true);
    let rename = harness
        .call(Method::PUT, "/v1/cluster", Some(json!({"name": "other"})))
        .await;
    assert_eq!((rename.status.as_u16(), rename.error_code()), (400, "invalid_schema"));

    let v2 = harness
        .call(
            Method::POST,
            "/v2/bdbs",
            Some(json!({"bdb": {"name": "via-v2", "memory_size": MB100}})),
        )
        .await;
    assert_eq!(v2.status, StatusCode::OK, "{v2:?}");
    let action = harness
        .wait_action(v2.body["action_uid"].as_str().expect("action_uid"))
        .await;
    assert_eq!(action["status"], "completed", "{action}");
    let recovery = harness
        .call(
            Method::POST,
            "/v2/bdbs",
            Some(json!({"bdb": {"name": "recovered", "memory_size": MB100},
                        "recovery_plan": {"data_files": []}})),
        )
        .await;
    assert_eq!(recovery.status, StatusCode::NOT_IMPLEMENTED, "{recovery:?}");

    let license = harness
        .call(
            Method::PUT,
            "/v1/license",
            Some(json!({"license": "----- LICENSE -----"})),
        )
        .await;
    assert_eq!(license.status, StatusCode::OK, "{license:?}");
    assert_eq!(license.body["license"], "----- LICENSE -----");

    // POST adds a second password, DELETE removes one, the last one cannot be removed.
    let bdb = harness
        .create_database(json!({"name": "shared", "memory_size": MB100, "authentication_redis_pass": "one"}))
        .await;
    let uid = bdb["uid"].as_u64().expect("uid");
    let port = bdb["port"].as_u64().expect("port") as u16;
    let ip = harness.resolve("shared.ns.svc");
    let alerts = harness
        .call(
            Method::POST,
            &format!("/v1/bdbs/alerts/{uid}"),
            Some(json!({"bdb_size": {"enabled": true, "threshold": "80"}})),
        )
        .await;
    assert_eq!(alerts.status, StatusCode::OK, "{alerts:?}");
    let alerts = harness.call(Method::GET, &format!("/v1/bdbs/alerts/{uid}"), None).await;
    assert_eq!(alerts.body["bdb_size"]["threshold"], "80");
    let path = format!("/v1/bdbs/{uid}/passwords");
    let added = harness
        .call(Method::POST, &path, Some(json!({"password": "two"})))
        .await;
    assert_eq!(added.status, StatusCode::OK, "{added:?}");
    assert!(redis_connect(ip, port, Some("one")).is_ok());
    assert!(redis_connect(ip, port, Some("two")).is_ok());
    let removed = harness
        .call(Method::DELETE, &path, Some(json!({"password": "one"})))
        .await;
    assert_eq!(removed.status, StatusCode::OK, "{removed:?}");
    assert!(redis_connect(ip, port, Some("one")).is_err());
    assert!(redis_connect(ip, port, Some("two")).is_ok());
    let last = harness
        .call(Method::DELETE, &path, Some(json!({"password": "two"})))
        .await;
    assert_eq!(
        (last.status.as_u16(), last.error_code()),
        (406, "cannot_delete_last_password")
    );
}

#[test]
fn a_missing_redis_server_is_reported_with_the_install_hint() {
    let error = EnterpriseEmulator::start(EmulatorConfig {
        redis_server: "/nonexistent/bin/redis-server".into(),
        ..EmulatorConfig::default()
    })
    .expect_err("the emulator cannot run without redis-server");
    assert!(error.to_string().contains("apt-get install redis-server"), "{error}");
}

#[test]
fn adding_a_node_outside_a_tokio_runtime_is_an_error() {
    support::require_redis_server();
    let emulator = EnterpriseEmulator::start(EmulatorConfig::default()).expect("start");
    let error = emulator
        .add_node(&ClusterKey::new(NAMESPACE, REC), "rec-0")
        .expect_err("no runtime, no listener");
    assert_eq!(error.category(), "NoRuntime", "{error}");
    assert!(emulator.names().entries().is_empty());
}

/// Set in the child process that plays the emulator killed without running destructors.
const ORPHAN_HELPER_DIR: &str = "EMULATOR_TEST_ORPHAN_HELPER_DIR";

/// Whether process `pid` is gone (or a zombie: dead, waiting to be reaped).
fn process_dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn databases_die_with_a_killed_emulator_process() {
    if let Ok(dir) = std::env::var(ORPHAN_HELPER_DIR) {
        // The child: run an emulator with one database, report its pid, wait to be killed.
        let harness = Harness::with_config(EmulatorConfig {
            work_dir: Some(dir.into()),
            step_delay: Duration::from_millis(10),
            ..EmulatorConfig::default()
        });
        harness.bootstrap_cluster(1).await;
        harness
            .create_database(json!({"name": "orphan", "memory_size": MB100}))
            .await;
        let pids = harness.emulator.database_pids();
        println!("REDIS_PID {}", pids[0]);
        std::io::Write::flush(&mut std::io::stdout()).expect("flush stdout");
        tokio::time::sleep(Duration::from_secs(120)).await;
        return;
    }

    support::require_redis_server();
    let dir = TempDir::new("orphans");
    let exe = std::env::current_exe().expect("the test binary");
    let mut child = std::process::Command::new(exe)
        .args([
            "--exact",
            "databases_die_with_a_killed_emulator_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ORPHAN_HELPER_DIR, &dir.0)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the helper process");
    let stdout = child.stdout.take().expect("helper stdout");
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            // libtest prints "test <name> ... " before the helper's line, on the same line.
            if let Some((_, pid)) = line.split_once("REDIS_PID ") {
                let _ = sender.send(pid.trim().parse::<u32>().ok());
                return;
            }
        }
        let _ = sender.send(None);
    });
    let pid = receiver.recv_timeout(Duration::from_secs(60)).ok().flatten();
    let Some(pid) = pid else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the helper emulator never reported its redis-server pid");
    };
    assert!(!process_dead(pid), "redis-server {pid} runs while the emulator runs");

    // SIGKILL: no destructor runs; only the kernel's parent-death signal can stop redis-server.
    child.kill().expect("kill the helper");
    child.wait().expect("reap the helper");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !process_dead(pid) {
        assert!(
            Instant::now() < deadline,
            "redis-server {pid} outlived its killed emulator"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_password_rotates_without_a_gap() {
    let harness = Harness::new();
    harness.bootstrap_cluster(1).await;
    let status_with = |password: &'static str| {
        let request = harness
            .client
            .get(harness.service_url("/v1/cluster"))
            .basic_auth(USER, Some(password));
        async move { request.send().await.expect("GET /v1/cluster").status() }
    };

    let added = harness
        .call(
            Method::POST,
            "/v1/users/password",
            Some(json!({"username": USER, "old_password": PASSWORD, "new_password": "rotated"})),
        )
        .await;
    assert_eq!(added.status, StatusCode::OK, "{added:?}");
    assert_eq!(status_with(PASSWORD).await, StatusCode::OK);
    assert_eq!(status_with("rotated").await, StatusCode::OK);

    let wrong_old = harness
        .call(
            Method::POST,
            "/v1/users/password",
            Some(json!({"username": USER, "old_password": "nope", "new_password": "x"})),
        )
        .await;
    assert_eq!(wrong_old.status, StatusCode::UNAUTHORIZED);

    let removed = harness
        .call(
            Method::DELETE,
            "/v1/users/password",
            Some(json!({"username": USER, "old_password": PASSWORD})),
        )
        .await;
    assert_eq!(removed.status, StatusCode::OK, "{removed:?}");
    assert_eq!(status_with(PASSWORD).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status_with("rotated").await, StatusCode::OK);

    // The cluster policy is readable and writable with the new password.
    let policy = harness
        .client
        .put(harness.service_url("/v1/cluster/policy"))
        .basic_auth(USER, Some("rotated"))
        .json(&json!({"default_shards_placement": "sparse"}))
        .send()
        .await
        .expect("PUT /v1/cluster/policy");
    assert_eq!(policy.status(), StatusCode::OK);
    let policy: serde_json::Value = policy.json().await.expect("policy JSON");
    assert_eq!(policy["default_shards_placement"], "sparse");
}
