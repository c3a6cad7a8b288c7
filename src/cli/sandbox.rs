//! `redis-gitops sandbox`: starts the local control plane (the `redis-gitops-sandbox` crate) and, with `--repo`, the
//! real agent against it through [`redis_gitops::agent::run`], the same runtime as in a cluster (Lease, CRD wait,
//! health endpoints, write fence). It creates what a platform team creates outside Git (namespaces, license
//! Secrets) and the GitSync, prints how to reach everything, and with `--once` waits and prints a summary.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use redis_gitops::agent::{AgentConfig, AgentExit, HealthEndpoint, KubeSource};
use redis_gitops::manifests::{LoadOptions, load_directory};
use redis_gitops::telemetry::{LogFormat, init_logging, shutdown_signal};
use redis_gitops_sandbox::apiserver::{ApiError, Objects};
use redis_gitops_sandbox::forge::{ForgeEmulator, ForgeOptions};
use redis_gitops_sandbox::{Sandbox, SandboxOptions, default_kubeconfig_path};
use tokio::sync::oneshot;

use super::settle;

/// The token the sandbox's forge emulator accepts (it serves loopback only).
pub const SANDBOX_FORGE_TOKEN: &str = "sandbox-forge-token";
/// The repository the sandbox's GitSync posts its commit statuses to on the forge emulator.
pub const SANDBOX_FORGE_REPOSITORY: &str = "sandbox/config";

/// What `sandbox --repo` syncs.
pub struct SandboxSource {
    /// The Git URL (`file://` for a local checkout).
    pub url: String,
    /// The branch to follow.
    pub branch: String,
    /// The directory inside the repository.
    pub path: String,
    /// The local checkout, when the repository is a directory (its namespaces are created up front).
    pub checkout: Option<PathBuf>,
}

/// How to run the sandbox command.
pub struct SandboxCommand {
    /// Where to write the kubeconfig (default: [`default_kubeconfig_path`]).
    pub kubeconfig: Option<PathBuf>,
    /// Port of the API server (0: a free one).
    pub port: u16,
    /// What the agent syncs; no agent runs without it.
    pub source: Option<SandboxSource>,
    /// Where the agent serves /healthz, /readyz and /metrics (port 0: a free one).
    pub metrics_address: String,
    /// Where the agent serves push webhooks (port 0: a free one).
    pub webhook_address: String,
    /// With `--once`: how long to wait for every object to settle.
    pub once: Option<Duration>,
    /// Directories of the user's Redis module builds (`--module-dir`), loaded besides the installed modules.
    pub module_dirs: Vec<PathBuf>,
}

/// Reads `--repo`: a URL as it is, or a directory that must be a Git checkout (its current branch is the default).
pub fn sandbox_source(repo: &str, path: String, git_ref: Option<String>) -> Result<SandboxSource, String> {
    let looks_like_url = repo.contains("://") || (repo.contains('@') && repo.contains(':'));
    if looks_like_url {
        return Ok(SandboxSource {
            url: repo.to_string(),
            branch: git_ref.unwrap_or_else(|| "main".to_string()),
            path,
            checkout: None,
        });
    }
    let directory = std::fs::canonicalize(repo).map_err(|error| format!("--repo {repo}: {error}"))?;
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(&directory)
            .output()
            .ok()
            .filter(|output| output.status.success())
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string())
    };
    let Some(top) = git(&["rev-parse", "--show-toplevel"]) else {
        return Err(format!(
            "--repo {repo} is a directory but not a Git repository; the sandbox syncs commits, not files: run `git init && git add -A \
             && git commit -m init` there, or point --repo at a Git URL"
        ));
    };
    let branch = match git_ref {
        Some(branch) => branch,
        None => git(&["rev-parse", "--abbrev-ref", "HEAD"])
            .filter(|b| b != "HEAD")
            .unwrap_or_else(|| "main".to_string()),
    };
    let top = PathBuf::from(top);
    // A subdirectory of the checkout means that path inside the repository.
    let inner = directory
        .strip_prefix(&top)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let path = [inner.as_str(), path.trim_matches('/')]
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("/");
    Ok(SandboxSource {
        url: format!("file://{}", top.display()),
        branch,
        checkout: Some(top.join(&path)),
        path,
    })
}

/// The agent running inside the sandbox: its task and how to stop it.
struct RunningAgent {
    task: tokio::task::JoinHandle<Result<AgentExit, redis_gitops::agent::AgentError>>,
    stop: oneshot::Sender<()>,
    /// The forge emulator's watch of a local checkout, which posts a signed push webhook when a ref moves.
    hooks: Option<tokio::task::JoinHandle<()>>,
}

impl RunningAgent {
    /// Asks the agent to stop and waits a bounded time for it (a reconcile in flight may hold it up); then aborts.
    async fn stop(self) {
        let Self { mut task, stop, hooks } = self;
        if let Some(hooks) = hooks {
            hooks.abort();
        }
        let _ = stop.send(());
        if tokio::time::timeout(Duration::from_secs(10), &mut task).await.is_err() {
            task.abort();
        }
    }
}

/// Why the sandbox stopped waiting.
enum Ended {
    /// Ctrl-C or SIGTERM.
    Signal,
    /// `--once` finished waiting.
    Settled(Option<settle::Summary>),
    /// The agent stopped by itself: its error, or the Lease was lost.
    Agent(String),
}

/// Runs `redis-gitops sandbox` until Ctrl-C or SIGTERM (or, with `--once`, until everything settled).
pub async fn run(command: SandboxCommand) -> ExitCode {
    let SandboxCommand {
        kubeconfig,
        port,
        source,
        metrics_address,
        webhook_address,
        once,
        module_dirs,
    } = command;
    init_logging(LogFormat::Text);
    let programs = match super::prerequisites::prepare(&module_dirs) {
        Ok(programs) => programs,
        Err(message) => {
            eprintln!("sandbox: {message}");
            return ExitCode::FAILURE;
        }
    };
    let mut options = SandboxOptions {
        port,
        ..SandboxOptions::with_crds(redis_gitops::api::crds())
    };
    options.emulator.redis_server = programs.redis_server;
    options.emulator.module_files = programs.module_files;
    let sandbox = match Sandbox::start(options).await {
        Ok(sandbox) => sandbox,
        Err(error) => {
            eprintln!("sandbox: {error}");
            return ExitCode::FAILURE;
        }
    };
    let path = kubeconfig.unwrap_or_else(default_kubeconfig_path);
    if let Err(error) = sandbox.apiserver.write_kubeconfig(&path) {
        eprintln!("sandbox: {error}");
        return ExitCode::FAILURE;
    }
    // The agent's endpoints get their own port (a free one by default), so two sandboxes never collide.
    let health = match &source {
        Some(_) => match std::net::TcpListener::bind(&metrics_address) {
            Ok(listener) => Some(listener),
            Err(error) => {
                eprintln!(
                    "sandbox: unable to listen on {metrics_address} for the agent's /healthz, /readyz and /metrics: {error}"
                );
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let webhook = match &source {
        Some(_) => match std::net::TcpListener::bind(&webhook_address) {
            Ok(listener) => Some(listener),
            Err(error) => {
                eprintln!("sandbox: unable to listen on {webhook_address} for push webhooks: {error}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let hosts = path.with_extension("hosts");
    let hosts_writer = sandbox.keep_hosts_file(hosts.clone(), redis_gitops::enterprise::hosts::render_hosts);
    if once.is_none() {
        println!("redis-gitops sandbox is running (Ctrl-C to stop).");
    }
    println!("  Kubernetes API server  {}", sandbox.apiserver.url());
    println!("  kubeconfig             {}", path.display());
    println!("  Redis Enterprise CA    {}", sandbox.ca_path().display());
    println!(
        "  Redis modules          {}",
        module_summary(sandbox.emulator.modules())
    );
    for error in sandbox.emulator.module_errors() {
        eprintln!("sandbox: warning: {error}");
    }
    println!("  in-cluster names       {} (for agent --hosts-file)", hosts.display());
    if let Some(address) = health.as_ref().and_then(|listener| listener.local_addr().ok()) {
        println!("  agent endpoints        http://{address}/readyz (and /healthz, /metrics)");
    }
    if let Some(address) = webhook.as_ref().and_then(|listener| listener.local_addr().ok()) {
        println!("  push webhooks          http://{address} (POST to status.webhookPath of a GitSync)");
    }
    if once.is_none() {
        println!();
        println!("Try:");
        println!("  export KUBECONFIG={}", path.display());
        println!("  kubectl get crds");
        println!("  kubectl explain redb.spec");
        println!("  kubectl apply --server-side -f examples-repo/clusters/staging.yaml && kubectl get rec -A");
    }
    let mut agent = None;
    let mut forge_emulator = None;
    if let (Some(source), Some(health)) = (source, health) {
        // The GitSync posts its commit statuses to a GitHub-style forge emulator on loopback.
        let forge = match ForgeEmulator::start(ForgeOptions {
            tokens: vec![SANDBOX_FORGE_TOKEN.to_string()],
            ..ForgeOptions::default()
        })
        .await
        {
            Ok(forge) => forge,
            Err(error) => {
                eprintln!("sandbox: {error}");
                return ExitCode::FAILURE;
            }
        };
        match start_agent(&sandbox, &source, health, &forge.url(), webhook) {
            Ok(running) => {
                println!();
                println!(
                    "Syncing {} (branch {}, path {:?}) with the GitSync default/sandbox:",
                    source.url, source.branch, source.path
                );
                println!("  kubectl get gitsync,rec,redb -A");
                println!("The commit statuses the agent posted (forge emulator, GitHub API):");
                println!(
                    "  curl -s -H 'Authorization: Bearer {SANDBOX_FORGE_TOKEN}' {}/repos/{SANDBOX_FORGE_REPOSITORY}/commits/$(git rev-parse HEAD)/statuses",
                    forge.url()
                );
                if running.hooks.is_some() {
                    println!(
                        "A commit on that branch is delivered as a signed push webhook and applied within a second."
                    );
                }
                agent = Some(running);
                forge_emulator = Some(forge);
            }
            Err(message) => {
                eprintln!("sandbox: {message}");
                return ExitCode::FAILURE;
            }
        }
    }
    let ended = {
        let agent_ended = async {
            match agent.as_mut() {
                Some(running) => agent_outcome((&mut running.task).await),
                None => std::future::pending().await,
            }
        };
        let waited = async {
            match once {
                Some(timeout) => Ended::Settled(settle_once(&sandbox, timeout).await),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ended = waited => ended,
            message = agent_ended => Ended::Agent(message),
            () = shutdown_signal() => Ended::Signal,
        }
    };
    let mut code = ExitCode::SUCCESS;
    match ended {
        Ended::Signal if once.is_some() => {
            println!();
            code = ExitCode::FAILURE;
        }
        Ended::Signal => {}
        Ended::Settled(outcome) => {
            println!();
            match outcome {
                Some(summary) => {
                    print!("{}", summary.report(settle::FULL_TABLE_UP_TO));
                    if !summary.all_ready() {
                        code = ExitCode::FAILURE;
                    }
                }
                None => code = ExitCode::FAILURE,
            }
        }
        Ended::Agent(message) => {
            eprintln!("sandbox: {message}");
            agent = None;
            code = ExitCode::FAILURE;
        }
    }
    if let Some(running) = agent {
        running.stop().await;
    }
    hosts_writer.abort();
    let _ = std::fs::remove_file(&hosts);
    // Standard output may be gone by now (a closed pipe); stopping must not fail because of that.
    let _ = writeln!(std::io::stdout(), "sandbox stopped");
    drop(forge_emulator);
    drop(sandbox);
    code
}

/// What the user is told when the agent ended by itself.
fn agent_outcome(joined: Result<Result<AgentExit, redis_gitops::agent::AgentError>, tokio::task::JoinError>) -> String {
    match joined {
        Ok(Ok(AgentExit::Stopped)) => "the agent stopped".to_string(),
        Ok(Ok(AgentExit::LeaseLost)) => "the agent lost its leader lease and stopped".to_string(),
        Ok(Err(error)) => format!("the agent did not start: {error}"),
        Err(error) => format!("the agent failed: {error}"),
    }
}

/// `--once`: waits until the GitSync and everything it applied settled, showing progress on standard error;
/// `None` when no client could be made.
async fn settle_once(sandbox: &Sandbox, timeout: Duration) -> Option<settle::Summary> {
    match sandbox.apiserver.kube_client() {
        Ok(client) => {
            let mut progress = super::progress::Reporter::for_stderr();
            let summary = settle::wait_until_settled(
                &client,
                "default",
                "sandbox",
                timeout,
                Duration::from_secs(1),
                |summary| progress.report(summary),
            )
            .await;
            progress.finish();
            Some(summary)
        }
        Err(error) => {
            eprintln!("sandbox: {error}");
            None
        }
    }
}

/// Creates the namespaces and license Secrets a local checkout uses, starts the agent (as in a cluster: Lease, CRD
/// wait, health endpoints, all three controllers) and creates the GitSync.
fn start_agent(
    sandbox: &Sandbox,
    source: &SandboxSource,
    health: std::net::TcpListener,
    forge_url: &str,
    webhook: Option<std::net::TcpListener>,
) -> Result<RunningAgent, String> {
    let objects = sandbox.apiserver.objects();
    if let Some(checkout) = &source.checkout {
        create_prerequisites(objects, checkout)?;
    }
    let kube = sandbox.apiserver.kube_config().map_err(|error| error.to_string())?;
    let webhook_address = webhook.as_ref().and_then(|listener| listener.local_addr().ok());
    let config = AgentConfig {
        kube: KubeSource::Config(Box::new(kube)),
        allow_namespaces: vec![redis_gitops::sync::plan::ANY_NAMESPACE.to_string()],
        health: HealthEndpoint::Listener(health),
        enterprise_ca_file: Some(sandbox.ca_path().to_path_buf()),
        // The one difference to a cluster: in-cluster names resolve to the emulated nodes' loopback addresses.
        resolver: Some(Arc::new(sandbox.emulator.resolver())),
        rest_timeout: Duration::from_secs(10),
        webhook: webhook.map(HealthEndpoint::Listener),
        ..AgentConfig::new(std::env::temp_dir().join(format!("redis-gitops-sandbox-cache-{}", std::process::id())))
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(redis_gitops::agent::run(config, async move {
        // A dropped sender stops the agent too.
        let _ = stopped.await;
    }));
    let mut gitsync = serde_json::json!({
        "apiVersion": "redisgitops.dev/v1alpha1", "kind": "GitSync",
        "metadata": {"name": "sandbox", "namespace": "default"},
        "spec": {"url": source.url, "ref": {"branch": source.branch}, "path": source.path, "interval": "10s", "prune": true,
            "commitStatus": {"provider": "github", "secretRef": {"name": "sandbox-forge"}, "apiURL": forge_url,
                "repository": SANDBOX_FORGE_REPOSITORY}}
    });
    let forge_secret = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "sandbox-forge", "namespace": "default"},
        "stringData": {"token": SANDBOX_FORGE_TOKEN}
    });
    match objects.create("v1", "Secret", forge_secret) {
        Ok(_) | Err(ApiError::AlreadyExists { .. }) => {}
        Err(error) => {
            return Err(format!(
                "failed to create the forge Secret default/sandbox-forge: {error}"
            ));
        }
    }
    // A local checkout gets push webhooks: the forge emulator watches its refs and posts a signed GitHub push to
    // the agent's receiver when a commit lands, so it is applied within a second instead of at the next poll.
    let mut hooks = None;
    if let (Some(address), Some(repository)) = (webhook_address, source.url.strip_prefix("file://")) {
        let token = random_token();
        let secret = serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": WEBHOOK_SECRET, "namespace": "default"},
            "stringData": {"token": token}
        });
        match objects.create("v1", "Secret", secret) {
            Ok(_) | Err(ApiError::AlreadyExists { .. }) => {
                gitsync["spec"]["webhook"] = serde_json::json!({"secretRef": {"name": WEBHOOK_SECRET}});
                hooks = Some(tokio::spawn(watch_checkout(
                    objects.clone(),
                    std::path::PathBuf::from(repository),
                    format!("http://{address}"),
                    token.into_bytes(),
                )));
            }
            Err(error) => eprintln!("sandbox: no push webhooks, polling only ({error})"),
        }
    }
    let running = RunningAgent { task, stop, hooks };
    if let Err(error) = objects.create("redisgitops.dev/v1alpha1", "GitSync", gitsync) {
        running.task.abort();
        return Err(format!("failed to create the GitSync: {error}"));
    }
    Ok(running)
}

/// The Secret of the sandbox GitSync's webhook.
const WEBHOOK_SECRET: &str = "sandbox-webhook";

/// `search 1.2.0, ReJSON 2.8.3, bf 2.8.2` (or `none`): the modules databases can load.
fn module_summary(modules: &redis_gitops_sandbox::enterprise::ModuleCatalogue) -> String {
    let names: Vec<String> = modules
        .modules()
        .iter()
        .map(|module| format!("{} {}", module.module_name, module.semantic_version))
        .collect();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

/// How often the forge emulator looks at the refs of a local checkout.
const CHECKOUT_POLL: Duration = Duration::from_millis(200);

/// A webhook secret for this run: 32 random bytes in hex (from the kernel; the clock and pid if unavailable).
fn random_token() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    let random = std::fs::File::open("/dev/urandom").and_then(|mut file| file.read_exact(&mut bytes));
    if random.is_err() {
        let seed = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
        for (index, byte) in seed.bytes().enumerate() {
            bytes[index % 32] ^= byte;
        }
    }
    redis_gitops::webhook::to_hex(&bytes)
}

/// Waits for the sandbox GitSync's `status.webhookPath`, then lets the forge emulator deliver a signed push
/// webhook to `receiver` whenever a ref of the checkout moves.
async fn watch_checkout(objects: Objects, repository: std::path::PathBuf, receiver: String, secret: Vec<u8>) {
    use redis_gitops_sandbox::forge::hooks::{HookFormat, Hooks, Subscription};
    let hooks = Hooks::new();
    // Commits made from now on are delivered, even those before the GitSync has its webhook path.
    if let Err(error) = hooks.track(&repository).await {
        eprintln!("sandbox: no push webhooks, polling only ({error})");
        return;
    }
    let path = loop {
        let path = objects
            .get("redisgitops.dev/v1alpha1", "GitSync", Some("default"), "sandbox")
            .ok()
            .and_then(|gitsync| gitsync.pointer("/status/webhookPath")?.as_str().map(str::to_string));
        if let Some(path) = path {
            break path;
        }
        tokio::time::sleep(CHECKOUT_POLL).await;
    };
    let subscription = Subscription {
        url: format!("{receiver}{path}"),
        secret,
        format: HookFormat::GitHub,
    };
    if let Err(error) = hooks.subscribe(&repository, subscription).await {
        eprintln!("sandbox: no push webhooks, polling only ({error})");
        return;
    }
    // Runs until the sandbox stops (this task is aborted with the agent).
    loop {
        tokio::time::sleep(CHECKOUT_POLL).await;
        if let Err(error) = hooks.refs_changed(&repository).await {
            tracing::warn!(%error, "forge emulator: unable to read the checkout's refs");
        }
    }
}

/// What a platform team creates outside Git: the namespaces of a local checkout's objects, and the license Secrets
/// its clusters name (with a placeholder; the emulator runs every cluster as a trial).
fn create_prerequisites(objects: &Objects, checkout: &std::path::Path) -> Result<(), String> {
    let options = LoadOptions {
        default_namespace: "default".to_string(),
        ..LoadOptions::default()
    };
    let (namespaces, licenses): (BTreeSet<String>, Vec<(String, String)>) = match load_directory(checkout, &options) {
        Ok(repository) => (
            repository
                .clusters
                .iter()
                .map(|c| c.validated.namespace.clone())
                .chain(repository.databases.iter().map(|d| d.validated.namespace.clone()))
                .collect(),
            repository
                .clusters
                .iter()
                .filter_map(|c| {
                    let secret = c.validated.license_secret_name.clone()?;
                    Some((c.validated.namespace.clone(), secret))
                })
                .collect(),
        ),
        // An invalid checkout is reported by the GitSync itself, like any bad commit.
        Err(_) => Default::default(),
    };
    for namespace in namespaces {
        let body = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}});
        match objects.create("v1", "Namespace", body) {
            Ok(_) | Err(ApiError::AlreadyExists { .. }) => {}
            Err(error) => return Err(format!("failed to create namespace {namespace}: {error}")),
        }
    }
    for (namespace, name) in licenses {
        let body = serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "stringData": {"license": "sandbox placeholder: the emulator runs every cluster as a trial"}
        });
        match objects.create("v1", "Secret", body) {
            Ok(_) => println!(
                "Created the license Secret {namespace}/{name} with a placeholder (a real cluster needs your license)."
            ),
            Err(ApiError::AlreadyExists { .. }) => {}
            Err(error) => {
                return Err(format!(
                    "failed to create the license Secret {namespace}/{name}: {error}"
                ));
            }
        }
    }
    Ok(())
}
