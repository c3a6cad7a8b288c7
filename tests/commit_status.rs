//! Commit statuses end to end: the real GitSync controller against the sandbox API server, a real Git repository,
//! and the sandbox's forge emulator for GitHub, GitLab, Gitea and Bitbucket. The exact requests, pending → result on
//! both contexts, dedup (a resync posts nothing), truncation, GitLab's same-state 400, rate limits, a forge outage
//! that never blocks the sync, and the token absent from status, events and logs.
//!
//! No database controller runs here: the test writes a REDB's `Ready`/`Stalled` conditions itself, as that
//! controller would, to drive the `ready` context.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams};
use redis_gitops::api::GitSync;
use redis_gitops::sync::commit_status::{CommitStatusReporter, ReporterOptions};
use redis_gitops::sync::controller::{SyncContext, run};
use redis_gitops::telemetry::Metrics;
use redis_gitops_sandbox::apiserver::{ApiServer, ApiServerHandle, ApiServerOptions};
use redis_gitops_sandbox::forge::{Forge, ForgeEmulator, ForgeHandle, ForgeOptions, PostedStatus};
use serde_json::{Value, json};

mod support;
use support::Repo;
use support::sync::eventually;

const TOKEN: &str = "forge-token-s3cr3t-0042";

/// Everything a test needs: API server, controller, forge, repository.
struct Env {
    apiserver: ApiServerHandle,
    client: kube::Client,
    forge: ForgeHandle,
    metrics: Arc<Metrics>,
    repo: Repo,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _temp: tempfile::TempDir,
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Logs of this test binary, to check that no token reaches them.
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = buffer.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter("info,redis_gitops=debug")
            .with_writer(move || LogWriter(writer.clone()))
            .try_init();
        buffer
    })
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn log_text() -> String {
    String::from_utf8_lossy(&logs().lock().unwrap_or_else(|p| p.into_inner())).into_owned()
}

impl Env {
    async fn start() -> Env {
        logs();
        let temp = tempfile::tempdir().expect("temp dir");
        let apiserver = ApiServer::start(ApiServerOptions {
            crds: redis_gitops::api::crds(),
            ..ApiServerOptions::default()
        })
        .await
        .expect("the sandbox API server starts");
        let client = apiserver.kube_client().expect("client");
        let forge = ForgeEmulator::start(ForgeOptions {
            tokens: vec![TOKEN.to_string()],
            ..ForgeOptions::default()
        })
        .await
        .expect("the forge emulator starts");
        let metrics = Arc::new(Metrics::default());
        let mut context = SyncContext::new(
            client.clone(),
            temp.path().join("cache"),
            Default::default(),
            None,
            metrics.clone(),
        );
        context.commit_status = CommitStatusReporter::with_options(
            client.clone(),
            metrics.clone(),
            ReporterOptions {
                ready_poll: Duration::from_millis(200),
                retry_base: Duration::from_millis(200),
                retry_max: Duration::from_secs(2),
                request_timeout: Duration::from_secs(5),
            },
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(run(Arc::new(context), async move {
            let _ = stopped.await;
        }));
        let repo = Repo::new(&temp.path().join("repo"));
        Env {
            apiserver,
            client,
            forge,
            metrics,
            repo,
            stop: Some(stop),
            _temp: temp,
        }
    }

    fn api_url(&self, provider: &str) -> String {
        match provider {
            "gitlab" => self.forge.gitlab_api_url(),
            "gitea" => self.forge.gitea_api_url(),
            _ => self.forge.url(),
        }
    }

    async fn secret(&self, name: &str, token: &str) {
        let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(self.client.clone(), "default");
        let body = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "default"},
            "stringData": {"token": token}});
        secrets
            .patch(name, &PatchParams::apply("test").force(), &Patch::Apply(&body))
            .await
            .expect("the Secret is applied");
    }

    async fn gitsync(&self, provider: &str, repository: &str) {
        let gitsyncs: Api<GitSync> = Api::namespaced(self.client.clone(), "default");
        let body = json!({"apiVersion": "redisgitops.dev/v1alpha1", "kind": "GitSync",
            "metadata": {"name": "config", "namespace": "default"},
            "spec": {"url": self.repo.url(), "interval": "1s", "commitStatus": {
                "provider": provider, "secretRef": {"name": "forge"},
                "apiURL": self.api_url(provider), "repository": repository}}});
        gitsyncs
            .patch("config", &PatchParams::apply("test").force(), &Patch::Apply(&body))
            .await
            .expect("the GitSync is applied");
    }

    async fn get(&self) -> GitSync {
        Api::<GitSync>::namespaced(self.client.clone(), "default")
            .get("config")
            .await
            .expect("the GitSync")
    }

    /// Waits until the statuses of `context` on `sha` are exactly `states`; returns them.
    async fn wait_states(
        &self,
        forge: Forge,
        repository: &str,
        sha: &str,
        context: &str,
        states: &[&str],
    ) -> Vec<PostedStatus> {
        let what = format!("{context} on {sha} to be {states:?}");
        eventually(&what, || async {
            let statuses: Vec<PostedStatus> = self
                .forge
                .state()
                .statuses(forge, repository, sha)
                .into_iter()
                .filter(|s| s.context == context)
                .collect();
            let found: Vec<&str> = statuses.iter().map(|s| s.state.as_str()).collect();
            (found == states).then_some(statuses)
        })
        .await
    }

    /// Waits until the `CommitStatusReported` condition has `status` and `reason`; returns its message.
    async fn wait_condition(&self, status: &str, reason: &str) -> String {
        eventually(&format!("CommitStatusReported={status}/{reason}"), || async {
            let gitsync = self.get().await;
            let condition = gitsync
                .status?
                .conditions?
                .into_iter()
                .find(|c| c.type_ == "CommitStatusReported")?;
            (condition.status == status && condition.reason == reason).then_some(condition.message)
        })
        .await
    }

    /// Writes a REDB's conditions as the database controller would.
    async fn set_database_conditions(&self, name: &str, conditions: Value) {
        let api: Api<redis_gitops::api::RedisEnterpriseDatabase> = Api::namespaced(self.client.clone(), "default");
        let body = json!({"apiVersion": "app.redislabs.com/v1alpha1", "kind": "RedisEnterpriseDatabase",
            "status": {"conditions": conditions}});
        api.patch_status(
            name,
            &PatchParams::apply("test-database-controller").force(),
            &Patch::Apply(&body),
        )
        .await
        .expect("the REDB status is written");
    }

    /// How many syncs the controller finished.
    fn syncs(&self) -> u64 {
        self.metrics
            .encode()
            .lines()
            .filter(|line| line.starts_with("redis_gitops_gitsync_syncs_total"))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    /// Waits until `count` more syncs finished.
    async fn wait_resyncs(&self, count: u64) {
        let start = self.syncs();
        eventually(&format!("{count} resyncs"), || async {
            (self.syncs() >= start + count).then_some(())
        })
        .await;
    }
}

fn database(name: &str) -> String {
    format!(
        "apiVersion: app.redislabs.com/v1alpha1\nkind: RedisEnterpriseDatabase\nmetadata:\n  name: {name}\nspec:\n  memorySize: 1GB\n"
    )
}

fn ready_condition() -> Value {
    json!([{"type": "Ready", "status": "True", "reason": "Active", "message": "active",
        "lastTransitionTime": "2026-01-01T00:00:00Z"}])
}

/// The expected auth header of each provider.
fn auth_header(provider: &str) -> (&'static str, String) {
    match provider {
        "github" => ("authorization", format!("Bearer {TOKEN}")),
        "gitlab" => ("private-token", TOKEN.to_string()),
        "gitea" => ("authorization", format!("token {TOKEN}")),
        _ => ("authorization", format!("Bearer {TOKEN}")),
    }
}

async fn a_provider_gets_both_contexts_and_a_resync_posts_nothing(provider: &str, forge: Forge, repository: &str) {
    let env = Env::start().await;
    env.repo.write("databases/cache.yaml", &database("cache"));
    let sha = env.repo.commit("first");
    env.secret("forge", TOKEN).await;
    env.gitsync(provider, repository).await;
    let sync_context = "redis-gitops/default/config";
    let ready_context = "redis-gitops/default/config/ready";

    // Bitbucket keeps one status per key (the same key overwrites); the others keep every status.
    let statuses = env
        .wait_states(
            forge,
            repository,
            &sha,
            sync_context,
            &stored(provider, &["pending", "success"]),
        )
        .await;
    assert_eq!(
        statuses.last().map(|s| s.description.as_str()),
        Some("applied 1 objects")
    );
    let pending = env
        .wait_states(
            forge,
            repository,
            &sha,
            ready_context,
            &state_names(provider, &["pending"]),
        )
        .await;
    assert_eq!(pending[0].description, "waiting for 1 objects to be Ready");

    // The exact requests: path, auth header, body.
    let posts = env.forge.state().posts();
    let first = posts.first().expect("a POST");
    let (header, value) = auth_header(provider);
    assert_eq!(first.headers.get(header), Some(&value), "{provider} auth header");
    let body = first.body.clone().expect("a JSON body");
    match provider {
        "github" => {
            assert_eq!(first.path, format!("/repos/{repository}/statuses/{sha}"));
            assert_eq!(
                first.headers.get("accept").map(String::as_str),
                Some("application/vnd.github+json")
            );
            assert_eq!(
                first.headers.get("x-github-api-version").map(String::as_str),
                Some("2022-11-28")
            );
            assert_eq!(
                body,
                json!({"state": "pending", "context": sync_context,
                "description": format!("applying revision main@sha1:{}", &sha[..7])})
            );
        }
        "gitlab" => {
            assert_eq!(
                first.path,
                format!("/api/v4/projects/{}/statuses/{sha}", repository.replace('/', "%2F"))
            );
            assert_eq!(
                body,
                json!({"state": "pending", "name": sync_context,
                "description": format!("applying revision main@sha1:{}", &sha[..7])})
            );
        }
        "gitea" => {
            assert_eq!(first.path, format!("/api/v1/repos/{repository}/statuses/{sha}"));
            assert_eq!(
                body,
                json!({"state": "pending", "context": sync_context, "target_url": "",
                "description": format!("applying revision main@sha1:{}", &sha[..7])})
            );
        }
        _ => {
            assert_eq!(
                first.path,
                format!("/2.0/repositories/{repository}/commit/{sha}/statuses/build")
            );
            assert_eq!(body["state"], "INPROGRESS");
            assert_eq!(body["name"], sync_context);
            assert_eq!(body["key"].as_str().map(str::len), Some(40));
            assert_eq!(body["url"], format!("https://bitbucket.org/{repository}/commits/{sha}"));
        }
    }

    // The database becomes Ready: the ready context follows.
    env.set_database_conditions("cache", ready_condition()).await;
    let statuses = env
        .wait_states(
            forge,
            repository,
            &sha,
            ready_context,
            &stored(provider, &["pending", "success"]),
        )
        .await;
    assert_eq!(
        statuses.last().map(|s| s.description.as_str()),
        Some("all 1 objects Ready")
    );
    // Each context went pending → success on the wire.
    let context_field = if provider == "github" || provider == "gitea" {
        "context"
    } else {
        "name"
    };
    for context in [sync_context, ready_context] {
        let sent: Vec<String> = env
            .forge
            .state()
            .posts()
            .iter()
            .filter_map(|p| p.body.clone())
            .filter(|b| b[context_field] == context)
            .filter_map(|b| b["state"].as_str().map(str::to_string))
            .collect();
        assert_eq!(sent, state_names(provider, &["pending", "success"]), "{context}");
    }
    let message = env.wait_condition("True", "Delivered").await;
    assert_eq!(
        message,
        format!("statuses of revision main@sha1:{} delivered to {provider}", &sha[..7])
    );

    // Resyncs post nothing more.
    let posted = env.forge.state().posts().len();
    env.wait_resyncs(3).await;
    assert_eq!(env.forge.state().posts().len(), posted, "a resync posts nothing");
    let metrics = env.metrics.encode();
    assert!(
        metrics.contains(&format!(
            "redis_gitops_commit_statuses_total{{provider=\"{provider}\",result=\"posted\"}} 4"
        )),
        "{metrics}"
    );
    assert!(env.apiserver.kube_client().is_ok());
}

/// What the forge keeps of these states, in order: Bitbucket only the last (one status per key).
fn stored(provider: &str, states: &[&str]) -> Vec<&'static str> {
    let mut names = state_names(provider, states);
    if provider == "bitbucket" {
        names.drain(..names.len().saturating_sub(1));
    }
    names
}

/// The forge's names of the agent's states.
fn state_names(provider: &str, states: &[&str]) -> Vec<&'static str> {
    states
        .iter()
        .map(|state| match (provider, *state) {
            ("bitbucket", "pending") => "INPROGRESS",
            ("bitbucket", "success") => "SUCCESSFUL",
            ("bitbucket", _) => "FAILED",
            ("gitlab", "failure") => "failed",
            (_, "pending") => "pending",
            (_, "success") => "success",
            _ => "failure",
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_gets_both_contexts_and_a_resync_posts_nothing() {
    a_provider_gets_both_contexts_and_a_resync_posts_nothing("github", Forge::Github, "team/config").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_gets_both_contexts_with_the_encoded_project_path() {
    a_provider_gets_both_contexts_and_a_resync_posts_nothing("gitlab", Forge::Gitlab, "group/sub/config").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitea_gets_both_contexts_and_a_resync_posts_nothing() {
    a_provider_gets_both_contexts_and_a_resync_posts_nothing("gitea", Forge::Gitea, "team/config").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bitbucket_gets_both_contexts_under_their_keys() {
    a_provider_gets_both_contexts_and_a_resync_posts_nothing("bitbucket", Forge::Bitbucket, "work/config").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_revision_fails_with_its_first_error_cut_to_githubs_limit_and_a_stalled_object_fails_ready() {
    let env = Env::start().await;
    let long = format!("databases/{}.yaml", "a-very-long-file-name".repeat(6));
    env.repo.write(&long, "apiVersion: app.redislabs.com/v1alpha1\nkind: RedisEnterpriseDatabase\nmetadata:\n  name: bad\nspec:\n  memorySize: lots\n");
    let bad = env.repo.commit("bad");
    env.secret("forge", TOKEN).await;
    env.gitsync("github", "team/config").await;
    let statuses = env
        .wait_states(
            Forge::Github,
            "team/config",
            &bad,
            "redis-gitops/default/config",
            &["pending", "failure"],
        )
        .await;
    let description = &statuses[1].description;
    assert_eq!(description.chars().count(), 140, "{description}");
    assert!(
        description.starts_with("1 error; databases/a-very-long-file-name"),
        "{description}"
    );
    assert!(description.ends_with('…'));
    // A refused revision has no ready context.
    assert!(
        env.forge
            .state()
            .statuses(Forge::Github, "team/config", &bad)
            .iter()
            .all(|s| !s.context.ends_with("/ready"))
    );

    // Fixed, applied, and the database Stalled: the ready context names it.
    std::fs::remove_file(env.repo.dir.join(&long)).expect("remove the bad file");
    env.repo.write("databases/cache.yaml", &database("cache"));
    let good = env.repo.commit("good");
    env.wait_states(
        Forge::Github,
        "team/config",
        &good,
        "redis-gitops/default/config",
        &["pending", "success"],
    )
    .await;
    env.set_database_conditions("cache", json!([
        {"type": "Ready", "status": "False", "reason": "InvalidSpec", "message": "no cluster", "lastTransitionTime": "2026-01-01T00:00:00Z"},
        {"type": "Stalled", "status": "True", "reason": "InvalidSpec", "message": "no cluster", "lastTransitionTime": "2026-01-01T00:00:00Z"}]))
        .await;
    let ready = env
        .wait_states(
            Forge::Github,
            "team/config",
            &good,
            "redis-gitops/default/config/ready",
            &["pending", "failure"],
        )
        .await;
    assert_eq!(
        ready[1].description,
        "RedisEnterpriseDatabase default/cache is Stalled: InvalidSpec: no cluster"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forge_outage_or_a_refused_token_never_blocks_the_sync_and_the_token_stays_secret() {
    let env = Env::start().await;
    env.repo.write("databases/cache.yaml", &database("cache"));
    let sha = env.repo.commit("first");
    let wrong = "wrong-token-do-not-leak-77";
    env.secret("forge", wrong).await;
    env.forge.state().set_down(true);
    env.gitsync("gitea", "team/config").await;

    // The sync applies while the forge is down.
    let revision = format!("main@sha1:{sha}");
    eventually("the revision applied", || async {
        let gitsync = env.get().await;
        (gitsync.status?.last_applied_revision? == revision).then_some(())
    })
    .await;
    let message = env.wait_condition("False", "Rejected").await;
    assert!(
        message.starts_with("gitea answered 503 to GET /repos/team/config/commits/"),
        "{message}"
    );
    assert!(message.ends_with("; the sync is not affected, retrying"), "{message}");

    // Back up, with a token it refuses.
    env.forge.state().set_down(false);
    let message = env.wait_condition("False", "Unauthorized").await;
    assert!(
        message.starts_with("gitea refused the token for GET /repos/team/config/commits/"),
        "{message}"
    );

    // The right token: delivered without any change to the GitSync.
    env.secret("forge", TOKEN).await;
    env.wait_states(
        Forge::Gitea,
        "team/config",
        &sha,
        "redis-gitops/default/config",
        &["pending", "success"],
    )
    .await;
    env.wait_condition("True", "Delivered").await;
    let ready = env.get().await.status.and_then(|s| s.conditions).unwrap_or_default();
    assert!(
        ready.iter().any(|c| c.type_ == "Ready" && c.status == "True"),
        "{ready:?}"
    );

    // Neither token anywhere a user or a log collector reads.
    let status = serde_json::to_string(&env.get().await).expect("json");
    let events: Api<Event> = Api::namespaced(env.client.clone(), "default");
    let events =
        serde_json::to_string(&events.list(&ListParams::default()).await.expect("events").items).expect("json");
    let logs = log_text();
    assert!(logs.contains("commit status not delivered"), "the logs are captured");
    for token in [wrong, TOKEN] {
        assert!(!status.contains(token), "status holds the token");
        assert!(!events.contains(token), "an event holds the token");
        assert!(!logs.contains(token), "the logs hold the token");
    }

    // Reporting turned off: the condition goes, the sync stays Ready.
    let gitsyncs: Api<GitSync> = Api::namespaced(env.client.clone(), "default");
    gitsyncs
        .patch(
            "config",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"commitStatus": null}})),
        )
        .await
        .expect("the GitSync is patched");
    eventually("the CommitStatusReported condition to go", || async {
        let conditions = env.get().await.status?.conditions?;
        let ready = conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True");
        (ready && conditions.iter().all(|c| c.type_ != "CommitStatusReported")).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_same_state_400_counts_as_delivered_and_a_rate_limit_is_waited_out() {
    let env = Env::start().await;
    env.repo.write("databases/cache.yaml", &database("cache"));
    let sha = env.repo.commit("first");
    env.secret("forge", TOKEN).await;
    // Someone already set the sync context to success with another description.
    let http = reqwest::Client::builder().build().expect("client");
    let answer = http
        .post(format!(
            "{}/projects/team%2Fconfig/statuses/{sha}",
            env.forge.gitlab_api_url()
        ))
        .header("private-token", TOKEN)
        .json(&json!({"state": "success", "name": "redis-gitops/default/config", "description": "by hand"}))
        .send()
        .await
        .expect("the forge answers");
    assert_eq!(answer.status().as_u16(), 201);
    // Five seconds of rate limit: long enough for the RateLimited condition to be seen on a loaded machine
    // before the agent, having waited it out, reports Delivered.
    env.forge.state().throttle_next(2, Duration::from_secs(5));
    env.gitsync("gitlab", "team/config").await;
    let message = env.wait_condition("False", "RateLimited").await;
    assert!(
        message.starts_with("gitlab rate-limited GET /projects/team%2Fconfig/repository/commits/"),
        "{message}"
    );
    env.wait_condition("True", "Delivered").await;
    // GitLab refused the same-state transition with 400; the agent took it as done and stored nothing new.
    let statuses = env.forge.state().statuses(Forge::Gitlab, "team/config", &sha);
    let sync: Vec<&PostedStatus> = statuses
        .iter()
        .filter(|s| s.context == "redis-gitops/default/config")
        .collect();
    assert_eq!(sync.len(), 1);
    assert_eq!(sync[0].description, "by hand");
    assert!(env.forge.state().posts().iter().any(|p| {
        p.path.starts_with("/api/v4/projects/team%2Fconfig/statuses/")
            && p.body
                .as_ref()
                .is_some_and(|b| b["state"] == "success" && b["description"] == "applied 1 objects")
    }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_commit_status_spec_is_a_located_condition_and_the_sync_goes_on() {
    let env = Env::start().await;
    env.repo.write("databases/cache.yaml", &database("cache"));
    let sha = env.repo.commit("first");
    env.secret("forge", TOKEN).await;
    let gitsyncs: Api<GitSync> = Api::namespaced(env.client.clone(), "default");
    let body = json!({"apiVersion": "redisgitops.dev/v1alpha1", "kind": "GitSync",
        "metadata": {"name": "config", "namespace": "default"},
        "spec": {"url": env.repo.url(), "interval": "1s", "commitStatus": {
            "provider": "github", "secretRef": {"name": "forge"},
            "apiURL": "http://ghe.example.com/api/v3", "repository": "team/config"}}});
    gitsyncs
        .patch("config", &PatchParams::apply("test").force(), &Patch::Apply(&body))
        .await
        .expect("the GitSync is applied");
    let message = env.wait_condition("False", "InvalidSpec").await;
    assert_eq!(
        message,
        "spec.commitStatus.apiURL: \"http://ghe.example.com/api/v3\" uses http://, which would send the token in clear \
         text; use https:// (http:// is accepted only for loopback addresses); the sync is not affected, fix it to \
         report"
    );
    let revision = format!("main@sha1:{sha}");
    eventually("the revision applied", || async {
        (env.get().await.status?.last_applied_revision? == revision).then_some(())
    })
    .await;
    assert!(env.forge.state().requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulator_enforces_githubs_documented_limits() {
    let forge = ForgeEmulator::start(ForgeOptions {
        tokens: vec![TOKEN.to_string()],
        ..ForgeOptions::default()
    })
    .await
    .expect("the forge emulator starts");
    let http = reqwest::Client::builder().build().expect("client");
    let sha = "0123456789abcdef0123456789abcdef01234567";
    let post = |body: Value, token: &str| {
        http.post(format!("{}/repos/team/config/statuses/{sha}", forge.url()))
            .header("authorization", format!("Bearer {token}"))
            .json(&body)
            .send()
    };
    let answer = post(json!({"state": "success", "context": "c"}), "nope")
        .await
        .expect("answer");
    assert_eq!(answer.status().as_u16(), 401);
    let answer = post(json!({"state": "done", "context": "c"}), TOKEN)
        .await
        .expect("answer");
    assert_eq!(answer.status().as_u16(), 422);
    let answer = post(
        json!({"state": "success", "context": "c", "description": "x".repeat(141)}),
        TOKEN,
    )
    .await
    .expect("answer");
    assert_eq!(answer.status().as_u16(), 422);
    let text = answer.text().await.expect("body");
    assert!(
        text.contains("description is too long (maximum is 140 characters)"),
        "{text}"
    );
    for _ in 0..1000 {
        let answer = post(json!({"state": "pending", "context": "c"}), TOKEN)
            .await
            .expect("answer");
        assert_eq!(answer.status().as_u16(), 201);
        assert!(answer.headers().contains_key("x-ratelimit-remaining"));
    }
    let answer = post(json!({"state": "pending", "context": "C"}), TOKEN)
        .await
        .expect("answer");
    assert_eq!(
        answer.status().as_u16(),
        422,
        "1000 statuses per sha and context (case-insensitive)"
    );
    let answer = post(json!({"state": "pending", "context": "other"}), TOKEN)
        .await
        .expect("answer");
    assert_eq!(answer.status().as_u16(), 201);
}
