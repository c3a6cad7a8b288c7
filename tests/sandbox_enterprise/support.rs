//! Shared test harness: an emulator, a reqwest client that trusts its CA and resolves through its
//! resolver (as the agent does in the sandbox), REST helpers, and a real Redis client.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis_gitops_sandbox::enterprise::{ClusterKey, EmulatorConfig, EnterpriseEmulator};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub const NAMESPACE: &str = "ns";
pub const REC: &str = "rec";
pub const USER: &str = "admin@example.com";
pub const PASSWORD: &str = "admin-secret";

/// Fails the test with the install hint when redis-server is missing.
pub fn require_redis_server() {
    let found = std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    assert!(
        found,
        "redis-server is not installed: these tests run real databases; install it with \
         `apt-get install redis-server`"
    );
}

/// A fresh temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(label: &str) -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write(label.as_bytes());
        let dir = std::env::temp_dir().join(format!(
            "emulator-test-{label}-{}-{:x}",
            std::process::id(),
            hasher.finish()
        ));
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct Harness {
    pub emulator: EnterpriseEmulator,
    pub client: reqwest::Client,
    pub key: ClusterKey,
}

/// A REST answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

impl Answer {
    pub fn error_code(&self) -> &str {
        self.body["error_code"].as_str().unwrap_or("<none>")
    }
}

impl Harness {
    pub fn new() -> Self {
        Self::with_config(EmulatorConfig {
            step_delay: Duration::from_millis(20),
            ..EmulatorConfig::default()
        })
    }

    pub fn with_config(config: EmulatorConfig) -> Self {
        require_redis_server();
        let emulator = EnterpriseEmulator::start(config).expect("start the emulator");
        let client = client_for(&emulator, Duration::from_secs(20));
        Self {
            emulator,
            client,
            key: ClusterKey::new(NAMESPACE, REC),
        }
    }

    pub fn node_url(&self, pod: &str, path: &str) -> String {
        format!("https://{pod}.{REC}-headless.{NAMESPACE}.svc:9443{path}")
    }

    pub fn service_url(&self, path: &str) -> String {
        format!("https://{REC}.{NAMESPACE}.svc:9443{path}")
    }

    /// A request with the admin credentials, by URL.
    pub async fn call_url(&self, method: Method, url: &str, body: Option<Value>) -> Answer {
        let mut request = self
            .client
            .request(method.clone(), url)
            .basic_auth(USER, Some(PASSWORD));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|error| panic!("{method} {url} failed: {error:?}"));
        let status = response.status();
        let text = response.text().await.expect("read the response body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|error| panic!("{method} {url}: body is not JSON ({error}): {text}"))
        };
        Answer { status, body }
    }

    /// A request to the API service `rec.ns.svc:9443`.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.call_url(method, &self.service_url(path), body).await
    }

    /// Polls `GET /v1/bootstrap` on `pod` until `state` (or panics after 10 s).
    pub async fn wait_bootstrap(&self, pod: &str, state: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let answer = self
                .call_url(Method::GET, &self.node_url(pod, "/v1/bootstrap"), None)
                .await;
            if answer.body["bootstrap_status"]["state"] == state {
                return answer.body;
            }
            assert!(
                Instant::now() < deadline,
                "{pod} never reached bootstrap state {state}: {:?}",
                answer
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn bootstrap_body(&self, action: &str, nodes: &[String]) -> Value {
        json!({
            "action": action,
            "cluster": { "name": format!("{REC}.{NAMESPACE}.svc.cluster.local"), "nodes": nodes },
            "node": { "paths": { "persistent_path": "/var/opt/redislabs/persist" } },
            "credentials": { "username": USER, "password": PASSWORD },
        })
    }

    /// Adds `count` pods, creates the cluster on pod 0 and joins the others through pod 0's name.
    pub async fn bootstrap_cluster(&self, count: usize) {
        for index in 0..count {
            self.emulator
                .add_node(&self.key, &format!("{REC}-{index}"))
                .expect("add a node");
        }
        let first = format!("{REC}-0");
        let created = self
            .call_url(
                Method::POST,
                &self.node_url(&first, "/v1/bootstrap/create_cluster"),
                Some(self.bootstrap_body("create_cluster", &[])),
            )
            .await;
        assert_eq!(created.status, StatusCode::OK, "{created:?}");
        self.wait_bootstrap(&first, "completed").await;
        let seed = vec![format!("{first}.{REC}-headless.{NAMESPACE}.svc.cluster.local")];
        for index in 1..count {
            let pod = format!("{REC}-{index}");
            let joined = self
                .call_url(
                    Method::POST,
                    &self.node_url(&pod, "/v1/bootstrap/join_cluster"),
                    Some(self.bootstrap_body("join_cluster", &seed)),
                )
                .await;
            assert_eq!(joined.status, StatusCode::OK, "{joined:?}");
            self.wait_bootstrap(&pod, "completed").await;
        }
    }

    /// Polls an action until it ends; returns its final view.
    pub async fn wait_action(&self, action_uid: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let answer = self.call(Method::GET, &format!("/v1/actions/{action_uid}"), None).await;
            assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
            let status = answer.body["status"].as_str().unwrap_or_default().to_string();
            if status == "completed" || status == "failed" {
                return answer.body;
            }
            assert!(Instant::now() < deadline, "action {action_uid} never ended: {answer:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Creates a database and waits until it is active; returns its view.
    pub async fn create_database(&self, body: Value) -> Value {
        let created = self.call(Method::POST, "/v1/bdbs", Some(body)).await;
        assert_eq!(created.status, StatusCode::OK, "{created:?}");
        let action_uid = created.body["action_uid"]
            .as_str()
            .expect("a created bdb carries action_uid")
            .to_string();
        let action = self.wait_action(&action_uid).await;
        assert_eq!(action["status"], "completed", "{action}");
        let uid = created.body["uid"].as_u64().expect("bdb uid");
        let view = self.call(Method::GET, &format!("/v1/bdbs/{uid}"), None).await;
        assert_eq!(view.body["status"], "active", "{view:?}");
        view.body
    }

    /// Polls `GET /v1/bdbs/{uid}` until `field` equals `value`.
    pub async fn wait_bdb_field(&self, uid: u64, field: &str, value: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let answer = self.call(Method::GET, &format!("/v1/bdbs/{uid}"), None).await;
            if answer.body[field] == value {
                return answer.body;
            }
            assert!(
                Instant::now() < deadline,
                "bdb {uid} never got {field} = {value}: {answer:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The address a database service name resolves to (what the agent's resolver returns).
    pub fn resolve(&self, name: &str) -> IpAddr {
        self.emulator
            .names()
            .lookup(name)
            .unwrap_or_else(|| panic!("the sandbox serves no name {name}"))
    }
}

/// A reqwest client as the agent builds it in the sandbox: the emulator's CA, its resolver.
pub fn client_for(emulator: &EnterpriseEmulator, timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_backend_preconfigured(emulator.client_tls_config().expect("client TLS config"))
        .dns_resolver(Arc::new(emulator.resolver()))
        .timeout(timeout)
        .build()
        .expect("build the reqwest client")
}

/// A real Redis connection (the `redis` crate) to `ip:port`, authenticating with `password`.
pub fn redis_connect(ip: IpAddr, port: u16, password: Option<&str>) -> redis::RedisResult<redis::Connection> {
    let url = match password {
        Some(password) => format!("redis://:{password}@{ip}:{port}/"),
        None => format!("redis://{ip}:{port}/"),
    };
    redis::Client::open(url)?.get_connection_with_timeout(Duration::from_secs(5))
}

pub fn redis_get(connection: &mut redis::Connection, key: &str) -> Option<String> {
    redis::cmd("GET").arg(key).query(connection).expect("GET succeeds")
}

pub fn redis_set(connection: &mut redis::Connection, key: &str, value: &str) {
    redis::cmd("SET")
        .arg(key)
        .arg(value)
        .query::<()>(connection)
        .expect("SET succeeds");
}

pub fn config_get(connection: &mut redis::Connection, parameter: &str) -> String {
    let pair: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg(parameter)
        .query(connection)
        .expect("CONFIG GET succeeds");
    pair.get(1).cloned().unwrap_or_default()
}
