//! Push webhooks end to end: the real GitSync controller against the sandbox API server, the real receiver
//! (`redis_gitops::webhook`) on a loopback port, real Git repositories, and deliveries signed as each forge signs
//! them. GitSyncs poll once an hour here, so every sync seen within the test was triggered by a webhook. Also the
//! forge emulator: a push over smart HTTP (`git http-backend`) delivers its own signed webhooks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use kube::api::{Api, PostParams};
use redis_gitops::api::{GitSync, RedisEnterpriseDatabase};
use redis_gitops::sync::controller::{SyncContext, run};
use redis_gitops::sync::trigger::SyncTriggers;
use redis_gitops::telemetry::{Metrics, WebhookLabels};
use redis_gitops::webhook::{WebhookReceiver, serve, webhook_path};
use redis_gitops_sandbox::apiserver::{ApiServer, ApiServerHandle, ApiServerOptions};
use redis_gitops_sandbox::forge::git::GitHttp;
use redis_gitops_sandbox::forge::hooks::{HookFormat, Hooks, Subscription};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod support;
use support::Repo;
use support::sync::{database, eventually, eventually_within};

const SECRET: &str = "It's a Secret to Everybody";

/// The controller, the receiver and the API server.
struct Env {
    _apiserver: ApiServerHandle,
    client: kube::Client,
    gitsyncs: Api<GitSync>,
    databases: Api<RedisEnterpriseDatabase>,
    triggers: SyncTriggers,
    metrics: Arc<Metrics>,
    /// `http://127.0.0.1:<port>` of the receiver.
    base: String,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _cache: tempfile::TempDir,
}

impl Drop for Env {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Env {
    async fn start() -> Env {
        let apiserver = ApiServer::start(ApiServerOptions {
            crds: redis_gitops::api::crds(),
            ..ApiServerOptions::default()
        })
        .await
        .expect("the sandbox API server starts");
        let client = apiserver.kube_client().expect("client");
        let cache = tempfile::tempdir().expect("cache dir");
        let metrics = Arc::new(Metrics::default());
        let context = SyncContext::new(
            client.clone(),
            cache.path().to_path_buf(),
            Default::default(),
            None,
            metrics.clone(),
        );
        let triggers = context.triggers.clone();
        let controller = tokio::spawn(run(Arc::new(context), std::future::pending()));
        let receiver = WebhookReceiver::new(client.clone(), triggers.clone(), metrics.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the receiver");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let server = tokio::spawn(async move {
            let _ = serve(listener, receiver, std::future::pending()).await;
        });
        Env {
            _apiserver: apiserver,
            gitsyncs: Api::namespaced(client.clone(), "default"),
            databases: Api::namespaced(client.clone(), "default"),
            client,
            triggers,
            metrics,
            base,
            tasks: vec![controller, server],
            _cache: cache,
        }
    }

    async fn create_secret(&self, name: &str, token: &str) {
        let secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": "default"},
            "stringData": {"token": token},
        }))
        .expect("a Secret");
        Api::<k8s_openapi::api::core::v1::Secret>::namespaced(self.client.clone(), "default")
            .create(&PostParams::default(), &secret)
            .await
            .expect("create the Secret");
    }

    /// Creates GitSync `name` following `main` of `repo` (hourly polls) with the webhook Secret `hook`, and waits
    /// for its first revision and its webhook path.
    async fn gitsync(&self, name: &str, repo: &Repo, path: Option<&str>, first: &str) -> String {
        let mut spec = json!({"url": repo.url(), "ref": {"branch": "main"}, "interval": "1h",
                              "webhook": {"secretRef": {"name": "hook"}}});
        if let Some(path) = path {
            spec["path"] = json!(path);
        }
        let gitsync: GitSync = serde_json::from_value(json!({
            "apiVersion": "redisgitops.dev/v1alpha1", "kind": "GitSync",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec,
        }))
        .expect("a GitSync");
        self.gitsyncs
            .create(&PostParams::default(), &gitsync)
            .await
            .expect("create the GitSync");
        self.wait_applied(name, first).await;
        let gitsync = self.gitsyncs.get(name).await.expect("the GitSync");
        let path = gitsync
            .status
            .and_then(|status| status.webhook_path)
            .expect("status.webhookPath is set");
        assert_eq!(path, webhook_path(SECRET.as_bytes(), "default", name));
        path
    }

    async fn wait_applied(&self, name: &str, commit: &str) {
        let revision = format!("main@sha1:{commit}");
        eventually(&format!("{name} to apply {revision}"), || async {
            let gitsync = self.gitsyncs.get(name).await.ok()?;
            (gitsync.status?.last_applied_revision? == revision).then_some(())
        })
        .await;
    }

    async fn applied(&self, name: &str) -> Option<String> {
        self.gitsyncs.get(name).await.ok()?.status?.last_applied_revision
    }

    fn deliveries(&self, forge: &'static str, result: &'static str) -> u64 {
        self.metrics
            .webhook_deliveries
            .get_or_create(&WebhookLabels { forge, result })
            .get()
    }

    /// Whether a sync of `name` was asked for (and forgets it).
    fn triggered(&self, name: &str) -> bool {
        self.triggers.take_requested("default", name, Instant::now()).is_some()
    }
}

/// POSTs to the receiver; the status and the JSON answer.
async fn post(url: &str, headers: &[(&str, String)], body: &[u8]) -> (u16, Value) {
    let rest = url.strip_prefix("http://").expect("an http url");
    let (authority, path) = rest.split_at(rest.find('/').expect("a path"));
    let mut stream = tokio::net::TcpStream::connect(authority)
        .await
        .expect("connect to the receiver");
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.expect("send the head");
    // The receiver refuses an oversized delivery from its Content-Length alone, before reading it; sending the
    // body anyway could reset the connection before the answer is read.
    if body.len() <= 1024 * 1024 {
        stream.write_all(body).await.expect("send the body");
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    let json = text
        .split_once("\r\n\r\n")
        .and_then(|(_, body)| serde_json::from_str(body).ok())
        .unwrap_or(Value::Null);
    (status, json)
}

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("a key");
    mac.update(body);
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// A GitHub push payload for `commit` on `reference` that modified `files`.
fn push_body(reference: &str, commit: &str, files: &[&str]) -> Vec<u8> {
    json!({"ref": reference, "before": "0".repeat(40), "after": commit, "created": false, "deleted": false,
           "forced": false, "commits": [{"id": commit, "added": [], "modified": files, "removed": []}],
           "repository": {"full_name": "team/config"}})
    .to_string()
    .into_bytes()
}

fn github_headers(body: &[u8], delivery: &str, secret: &str) -> Vec<(&'static str, String)> {
    vec![
        ("Content-Type", "application/json".to_string()),
        ("X-GitHub-Event", "push".to_string()),
        ("X-GitHub-Delivery", delivery.to_string()),
        ("X-Hub-Signature-256", format!("sha256={}", hmac_hex(secret, body))),
    ]
}

fn repository(root: &std::path::Path) -> (Repo, String) {
    let repo = Repo::new(root);
    repo.write("databases/cache.yaml", &database("cache", "1GB"));
    repo.write("apps/web.yaml", "not: applied\n");
    let first = repo.commit("first");
    (repo, first)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_github_push_applies_the_commit_at_once() {
    let env = Env::start().await;
    env.create_secret("hook", SECRET).await;
    let root = tempfile::tempdir().expect("temp dir");
    let (repo, first) = repository(root.path());
    let path = env.gitsync("config", &repo, Some("databases"), &first).await;
    let url = format!("{}{path}", env.base);

    // ping is answered.
    let ping = b"{\"zen\":\"Keep it logically awesome.\"}";
    let mut headers = github_headers(ping, "p-1", SECRET);
    headers[1].1 = "ping".to_string();
    assert_eq!(
        post(&url, &headers, ping).await,
        (200, json!({"result": "ping", "message": "pong"}))
    );

    repo.write("databases/cache.yaml", &database("cache", "2GB"));
    let second = repo.commit("cache: 2GB");
    let body = push_body("refs/heads/main", &second, &["databases/cache.yaml"]);
    let started = Instant::now();
    let (status, answer) = post(&url, &github_headers(&body, "d-1", SECRET), &body).await;
    assert_eq!((status, answer["result"].as_str()), (202, Some("triggered")));
    env.wait_applied("config", &second).await;
    let waited = started.elapsed();
    assert_eq!(
        env.databases
            .get("cache")
            .await
            .expect("cache")
            .spec
            .memory_size
            .as_deref(),
        Some("2GB")
    );
    // Well under the hourly poll: the webhook did it.
    assert!(waited < Duration::from_secs(30), "applied after {waited:?}");
    assert_eq!(env.deliveries("github", "triggered"), 1);
    assert_eq!(env.deliveries("github", "ping"), 1);
    let metrics = env.metrics.encode();
    assert!(
        metrics.contains("redis_gitops_webhook_to_applied_seconds_count 1"),
        "{metrics}"
    );

    // The same delivery again is a replay: acknowledged, nothing triggered.
    let (status, answer) = post(&url, &github_headers(&body, "d-1", SECRET), &body).await;
    assert_eq!((status, answer["result"].as_str()), (200, Some("duplicate")));
    assert!(!env.triggered("config"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signatures_other_refs_other_paths_and_big_bodies_trigger_nothing() {
    let env = Env::start().await;
    env.create_secret("hook", SECRET).await;
    let root = tempfile::tempdir().expect("temp dir");
    let (repo, first) = repository(root.path());
    let path = env.gitsync("config", &repo, Some("databases"), &first).await;
    let url = format!("{}{path}", env.base);
    let commit = "c".repeat(40);
    let body = push_body("refs/heads/main", &commit, &["databases/cache.yaml"]);

    // A wrong secret, a changed body, no signature: 401.
    let (status, answer) = post(&url, &github_headers(&body, "w-1", "wrong secret"), &body).await;
    assert_eq!(status, 401);
    assert_eq!(
        answer["message"],
        "the X-Hub-Signature-256 header does not match the body and the webhook secret; check the secret on the forge"
    );
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    assert_eq!(
        post(&url, &github_headers(&body, "w-2", SECRET), &tampered).await.0,
        401
    );
    let (status, answer) = post(&url, &[("X-GitHub-Event", "push".to_string())], &body).await;
    assert_eq!(status, 401);
    assert!(
        answer["message"]
            .as_str()
            .is_some_and(|m| m.contains("no X-Hub-Signature-256")),
        "{answer}"
    );
    assert_eq!(env.deliveries("unknown", "unauthorized"), 3);
    assert!(!env.triggered("config"));

    // An unknown path: 404.
    let unknown = format!("{}/hook/{}", env.base, "0".repeat(64));
    assert_eq!(
        post(&unknown, &github_headers(&body, "n-1", SECRET), &body).await.0,
        404
    );

    // Another branch: acknowledged and ignored.
    let other = push_body("refs/heads/dev", &commit, &["databases/cache.yaml"]);
    let (status, answer) = post(&url, &github_headers(&other, "r-1", SECRET), &other).await;
    assert_eq!((status, answer["result"].as_str()), (200, Some("ignored_ref")));
    assert_eq!(
        answer["message"],
        "the push moved refs/heads/dev; the GitSync follows branch 'main'"
    );
    assert!(!env.triggered("config"));

    // Files outside the GitSync's path: ignored.
    let elsewhere = push_body("refs/heads/main", &commit, &["apps/web.yaml", "README.md"]);
    let (status, answer) = post(&url, &github_headers(&elsewhere, "f-1", SECRET), &elsewhere).await;
    assert_eq!((status, answer["result"].as_str()), (200, Some("ignored_path")));
    assert!(!env.triggered("config"));

    // Over 25 MB: 413.
    let huge = vec![b' '; 25 * 1024 * 1024 + 1];
    let (status, answer) = post(&url, &github_headers(&huge, "s-1", SECRET), &huge).await;
    assert_eq!((status, answer["result"].as_str()), (413, Some("too_large")));
    assert!(!env.triggered("config"));
    assert_eq!(env.applied("config").await, Some(format!("main@sha1:{first}")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_gitea_and_forgejo_deliveries_trigger_and_pushes_are_rate_limited() {
    let env = Env::start().await;
    env.create_secret("hook", SECRET).await;
    let root = tempfile::tempdir().expect("temp dir");
    let (repo, first) = repository(root.path());
    let path = env.gitsync("config", &repo, Some("databases"), &first).await;
    let url = format!("{}{path}", env.base);

    repo.write("databases/cache.yaml", &database("cache", "3GB"));
    let second = repo.commit("cache: 3GB");
    let body = json!({"object_kind": "push", "ref": "refs/heads/main", "after": second, "total_commits_count": 1,
                      "commits": [{"id": second, "added": [], "modified": ["databases/cache.yaml"], "removed": []}]})
    .to_string()
    .into_bytes();
    let gitlab = |token: &str, id: &str| {
        vec![
            ("X-Gitlab-Event", "Push Hook".to_string()),
            ("X-Gitlab-Event-UUID", id.to_string()),
            ("X-Gitlab-Token", token.to_string()),
        ]
    };
    assert_eq!(post(&url, &gitlab("not it", "g-0"), &body).await.0, 401);
    let (status, answer) = post(&url, &gitlab(SECRET, "g-1"), &body).await;
    assert_eq!((status, answer["result"].as_str()), (202, Some("triggered")));
    env.wait_applied("config", &second).await;

    // Within a second of that trigger, a Gitea push is deferred (coalesced), not dropped.
    repo.write("databases/cache.yaml", &database("cache", "4GB"));
    let third = repo.commit("cache: 4GB");
    let body = push_body("refs/heads/main", &third, &["databases/cache.yaml"]);
    let gitea = |body: &[u8], id: &str| {
        vec![
            ("X-Gitea-Event", "push".to_string()),
            ("X-Gitea-Delivery", id.to_string()),
            ("X-Gitea-Signature", hmac_hex(SECRET, body)),
        ]
    };
    let (status, answer) = post(&url, &gitea(&body, "t-1"), &body).await;
    assert_eq!(status, 202);
    assert!(
        matches!(answer["result"].as_str(), Some("triggered" | "deferred")),
        "{answer}"
    );
    env.wait_applied("config", &third).await;

    // Forgejo signs like Gitea, in its own header.
    repo.write("databases/cache.yaml", &database("cache", "5GB"));
    let fourth = repo.commit("cache: 5GB");
    let body = push_body("refs/heads/main", &fourth, &["databases/cache.yaml"]);
    let headers = vec![
        ("X-Forgejo-Event", "push".to_string()),
        ("X-Forgejo-Delivery", "fj-1".to_string()),
        ("X-Forgejo-Signature", hmac_hex(SECRET, &body)),
    ];
    assert_eq!(post(&url, &headers, &body).await.0, 202);
    env.wait_applied("config", &fourth).await;
    assert_eq!(env.deliveries("gitlab", "triggered"), 1);
    assert_eq!(
        env.deliveries("forgejo", "triggered") + env.deliveries("forgejo", "deferred"),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_webhook_secret_is_reported_in_the_ready_condition() {
    let env = Env::start().await;
    let root = tempfile::tempdir().expect("temp dir");
    let (repo, _first) = repository(root.path());
    let gitsync: GitSync = serde_json::from_value(json!({
        "apiVersion": "redisgitops.dev/v1alpha1", "kind": "GitSync",
        "metadata": {"name": "config", "namespace": "default"},
        "spec": {"url": repo.url(), "interval": "1h", "webhook": {"secretRef": {"name": "hook"}}},
    }))
    .expect("a GitSync");
    env.gitsyncs
        .create(&PostParams::default(), &gitsync)
        .await
        .expect("create");
    let message = eventually("the SecretNotFound condition", || async {
        let gitsync = env.gitsyncs.get("config").await.ok()?;
        let ready = gitsync.status?.conditions?.into_iter().find(|c| c.type_ == "Ready")?;
        (ready.reason == "SecretNotFound").then_some(ready.message)
    })
    .await;
    assert_eq!(
        message,
        "Secret default/hook (spec.webhook.secretRef) does not exist or has no key `token`; create it with the \
         webhook secret or fix spec.webhook.secretRef"
    );
    // A bad Secret name is a located spec error.
    let bad: GitSync = serde_json::from_value(json!({
        "apiVersion": "redisgitops.dev/v1alpha1", "kind": "GitSync",
        "metadata": {"name": "bad", "namespace": "default"},
        "spec": {"url": repo.url(), "webhook": {"secretRef": {"name": "Hook"}}},
    }))
    .expect("a GitSync");
    env.gitsyncs.create(&PostParams::default(), &bad).await.expect("create");
    let message = eventually("the InvalidSpec condition", || async {
        let gitsync = env.gitsyncs.get("bad").await.ok()?;
        let ready = gitsync.status?.conditions?.into_iter().find(|c| c.type_ == "Ready")?;
        (ready.reason == "InvalidSpec").then_some(ready.message)
    })
    .await;
    assert_eq!(
        message,
        "spec.webhook.secretRef.name: \"Hook\" is not a Secret name (lowercase letters, digits, '-' and '.', at \
         most 253 characters)"
    );
}

/// The forge emulator end to end: the GitSync fetches over smart HTTP, a `git push` to the emulator makes it
/// deliver signed GitHub and GitLab webhooks, and the receiver applies the pushed commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_to_the_forge_emulator_is_delivered_and_applied() {
    let env = Env::start().await;
    env.create_secret("hook", SECRET).await;
    let root = tempfile::tempdir().expect("temp dir");
    let (work, _) = repository(root.path());
    let served = root.path().join("served");
    std::fs::create_dir_all(&served).expect("served dir");
    let bare = served.join("config.git");
    let output = std::process::Command::new("git")
        .args(["clone", "-q", "--bare"])
        .arg(&work.dir)
        .arg(&bare)
        .output()
        .expect("git clone");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let hooks = Hooks::new();
    let git = GitHttp::new(served.clone(), Some(hooks.clone())).expect("git http-backend");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the forge");
    let forge = format!("http://{}", listener.local_addr().expect("address"));
    let router = git.router();
    let _forge = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let remote = format!("{forge}/config.git");
    work.git(&["remote", "add", "forge", &remote]);

    let gitsync: GitSync = serde_json::from_value(json!({
        "apiVersion": "redisgitops.dev/v1alpha1", "kind": "GitSync",
        "metadata": {"name": "config", "namespace": "default"},
        "spec": {"url": remote, "interval": "1h", "path": "databases", "webhook": {"secretRef": {"name": "hook"}}},
    }))
    .expect("a GitSync");
    env.gitsyncs
        .create(&PostParams::default(), &gitsync)
        .await
        .expect("create");
    let head = work.git(&["rev-parse", "HEAD"]);
    env.wait_applied("config", &head).await;
    let path = env
        .gitsyncs
        .get("config")
        .await
        .expect("get")
        .status
        .and_then(|s| s.webhook_path)
        .expect("path");
    for format in [HookFormat::GitHub, HookFormat::GitLab] {
        hooks
            .subscribe(
                &bare,
                Subscription {
                    url: format!("{}{path}", env.base),
                    secret: SECRET.as_bytes().to_vec(),
                    format,
                },
            )
            .await
            .expect("subscribe");
    }

    work.write("databases/cache.yaml", &database("cache", "6GB"));
    let pushed = work.commit("cache: 6GB");
    work.git(&["push", "-q", "forge", "main"]);
    env.wait_applied("config", &pushed).await;
    let deliveries = hooks.deliveries();
    assert_eq!(deliveries.len(), 2, "{deliveries:?}");
    for delivery in &deliveries {
        assert_eq!(delivery.update.name, "refs/heads/main");
        assert_eq!(delivery.update.after, pushed);
        // The first delivery triggers; the second is within the rate limit, so it is coalesced.
        assert_eq!(delivery.status, Ok(202), "{delivery:?}");
    }
    assert!(git.requests() > 0);

    // A push that changes only files outside the path is delivered and ignored.
    work.write("apps/web.yaml", "still: not applied\n");
    work.commit("apps only");
    work.git(&["push", "-q", "forge", "main"]);
    let ignored = eventually("the apps-only push to be delivered", || async {
        let deliveries = hooks.deliveries();
        (deliveries.len() == 4).then_some(deliveries)
    })
    .await;
    assert!(
        ignored[2..].iter().all(|delivery| delivery.status == Ok(200)),
        "{ignored:?}"
    );
    assert_eq!(env.applied("config").await, Some(format!("main@sha1:{pushed}")));
}

/// `redis-gitops sandbox --repo <checkout>`: a commit in the checkout is delivered by the forge emulator as a
/// signed push webhook and applied without waiting for the 10 s poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_delivers_a_local_commit_as_a_push_webhook() {
    use std::io::{BufRead, BufReader};
    let temp = tempfile::tempdir().expect("temp dir");
    let repo = Repo::new(temp.path());
    repo.write("databases/cache.yaml", &database("cache", "1GB"));
    repo.commit("init");
    let kubeconfig = temp.path().join("kubeconfig");
    let mut sandbox = std::process::Command::new(env!("CARGO_BIN_EXE_redis-gitops"))
        .args(["sandbox", "--path", "databases", "--kubeconfig"])
        .arg(&kubeconfig)
        .arg("--repo")
        .arg(&repo.dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the sandbox starts");
    let mut lines = BufReader::new(sandbox.stdout.take().expect("stdout")).lines();
    let mut printed = Vec::new();
    for line in lines.by_ref().map_while(Result::ok) {
        let done = line.starts_with("A commit on that branch");
        printed.push(line);
        if done {
            break;
        }
    }
    let find = |prefix: &str| {
        printed
            .iter()
            .find_map(|line| line.trim().strip_prefix(prefix).map(|rest| rest.trim().to_string()))
            .unwrap_or_else(|| panic!("no line {prefix:?} in {printed:#?}"))
    };
    let webhooks = find("push webhooks");
    assert!(webhooks.starts_with("http://127.0.0.1:"), "{webhooks}");
    let metrics_url = find("agent endpoints").replace("/readyz (and /healthz, /metrics)", "/metrics");
    let memory = |kubeconfig: &std::path::Path| {
        let output = std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["get", "redb", "cache", "-o", "jsonpath={.spec.memorySize}"])
            .output()
            .expect("kubectl runs (apt-get install kubernetes-client)");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let kubeconfig_path = kubeconfig.clone();
    eventually("the first commit to be applied", || {
        let kubeconfig = kubeconfig_path.clone();
        async move { (memory(&kubeconfig) == "1GB").then_some(()) }
    })
    .await;
    // The first sync also sets the webhook path, which the emulator waits for before it watches the refs.
    eventually("status.webhookPath", || {
        let kubeconfig = kubeconfig_path.clone();
        async move {
            let output = std::process::Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .args(["get", "gitsync", "sandbox", "-o", "jsonpath={.status.webhookPath}"])
                .output()
                .ok()?;
            String::from_utf8_lossy(&output.stdout)
                .starts_with("/hook/")
                .then_some(())
        }
    })
    .await;
    repo.write("databases/cache.yaml", &database("cache", "2GB"));
    repo.commit("cache: 2GB");
    let started = Instant::now();
    eventually_within("the commit to be applied", Duration::from_secs(8), || {
        let kubeconfig = kubeconfig_path.clone();
        async move { (memory(&kubeconfig) == "2GB").then_some(()) }
    })
    .await;
    let waited = started.elapsed();
    let metrics = http_get(&metrics_url).await;
    assert!(
        metrics.contains("redis_gitops_webhook_deliveries_total{forge=\"github\",result=\"triggered\"} 1"),
        "applied after {waited:?} but not by the webhook: {metrics}"
    );
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(sandbox.id() as i32, libc::SIGTERM) }, 0);
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(sandbox.wait().expect("exits").success());
    assert_eq!(rest.last().map(String::as_str), Some("sandbox stopped"));
}

async fn http_get(url: &str) -> String {
    let rest = url.strip_prefix("http://").expect("an http url");
    let (authority, path) = rest.split_at(rest.find('/').expect("a path"));
    let mut stream = tokio::net::TcpStream::connect(authority).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// Starts `redis-gitops agent` against `kubeconfig`, its webhook receiver on `webhook_port` and published as
/// `http://127.0.0.1:<webhook_port>`; its logs are collected as it runs.
fn start_replica(
    kubeconfig: &std::path::Path,
    cache: &std::path::Path,
    pod: &str,
    webhook_port: u16,
) -> (std::process::Child, Arc<std::sync::Mutex<String>>) {
    let webhook = format!("127.0.0.1:{webhook_port}");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_redis-gitops"))
        .args([
            "agent",
            "--allow-file-urls",
            "--lease-duration",
            "3s",
            "--metrics-address",
            "127.0.0.1:0",
        ])
        .args([
            "--webhook-address",
            &webhook,
            "--webhook-advertise-url",
            &format!("http://{webhook}"),
        ])
        .arg("--cache-dir")
        .arg(cache)
        .env("KUBECONFIG", kubeconfig)
        .env("POD_NAME", pod)
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the agent starts");
    let logs = support::collect_stderr(&mut child);
    (child, logs)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("address")
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_to_the_standby_replica_is_forwarded_to_the_leader_and_applied() {
    let temp = tempfile::tempdir().expect("temp dir");
    let apiserver = ApiServer::start(ApiServerOptions {
        crds: redis_gitops::api::crds(),
        ..ApiServerOptions::default()
    })
    .await
    .expect("the API server starts");
    let kubeconfig = temp.path().join("kubeconfig");
    apiserver.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let client = apiserver.kube_client().expect("client");
    let repo = Repo::new(&temp.path().join("config"));
    repo.write("cache.yaml", &database("cache", "1GB"));
    repo.commit("first");
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
        "metadata": {"name": "hook", "namespace": "default"}, "stringData": {"token": SECRET}
    }))
    .expect("secret");
    Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &secret)
        .await
        .expect("the webhook Secret");

    let wait_log = |logs: Arc<std::sync::Mutex<String>>, text: &'static str| async move {
        eventually(text, || {
            let found = logs.lock().map(|l| l.contains(text)).unwrap_or(false);
            async move { found.then_some(()) }
        })
        .await;
    };
    let (leader_port, standby_port) = (free_port(), free_port());
    let (mut leader, leader_logs) = start_replica(&kubeconfig, &temp.path().join("a"), "agent-a", leader_port);
    wait_log(leader_logs.clone(), "leading: this replica holds the lease").await;
    let (mut standby, standby_logs) = start_replica(&kubeconfig, &temp.path().join("b"), "agent-b", standby_port);
    wait_log(standby_logs.clone(), "waiting: another replica holds the lease").await;

    // The GitSync polls once an hour: only the webhook can bring the second commit in time.
    let gitsync: GitSync = serde_json::from_value(json!({
        "apiVersion": "redisgitops.dev/v1alpha1", "kind": "GitSync",
        "metadata": {"name": "config", "namespace": "default"},
        "spec": {"url": repo.url(), "interval": "1h", "webhook": {"secretRef": {"name": "hook"}}}
    }))
    .expect("gitsync");
    let gitsyncs: Api<GitSync> = Api::namespaced(client.clone(), "default");
    gitsyncs.create(&PostParams::default(), &gitsync).await.expect("create");
    let path = eventually("the first sync and the webhook path", || async {
        let status = gitsyncs.get("config").await.ok()?.status?;
        status.last_applied_revision.as_ref()?;
        status.webhook_path
    })
    .await;
    repo.write("cache.yaml", &database("cache", "2GB"));
    let second = repo.commit("more memory");
    let body = push_body("refs/heads/main", &second, &["cache.yaml"]);
    let (status, answer) = post(
        &format!("http://127.0.0.1:{standby_port}{path}"),
        &github_headers(&body, "forwarded-1", SECRET),
        &body,
    )
    .await;
    assert_eq!(status, 202, "the leader's answer, through the standby: {answer}");
    assert_eq!(answer["result"], "triggered", "{answer}");
    let databases: Api<RedisEnterpriseDatabase> = Api::namespaced(client, "default");
    eventually("the pushed commit applied by the leader", || async {
        (databases.get("cache").await.ok()?.spec.memory_size.as_deref() == Some("2GB")).then_some(())
    })
    .await;
    assert!(
        !standby_logs.lock().expect("logs").contains("leading"),
        "the standby stayed a standby"
    );
    for child in [&mut leader, &mut standby] {
        // SAFETY: sending a signal to our own child process.
        assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
        assert!(child.wait().expect("exits").success());
    }
}
