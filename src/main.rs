//! The `redis-gitops` command: parses the command line and calls the library.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use redis_gitops::api;
use redis_gitops::controllers::{ControllerContext, EnterpriseAccess};
use redis_gitops::desired::render::{self, Only};
use redis_gitops::enterprise::RetryPolicy;
use redis_gitops::enterprise::hosts::HostsFileResolver;
use redis_gitops::manifests::{Diagnostic, LoadOptions, RevisionBudget, load_directory};
use redis_gitops::sandbox::{Sandbox, SandboxOptions, default_kubeconfig_path};
use redis_gitops::sync::controller::SyncContext;
use redis_gitops::sync::lease::{FenceLayer, LeaderLease, LeaseTimings, WriteFence, install_process_fence};
use redis_gitops::telemetry::{LogFormat, Metrics, init_logging, serve_health, shutdown_signal};

/// Keep Redis Enterprise clusters and databases exactly as a Git repository describes them.
#[derive(Parser)]
#[command(name = "redis-gitops", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check every RedisEnterpriseCluster and RedisEnterpriseDatabase in a config repository.
    ///
    /// Prints one line per valid object, then every error and warning with file:line:column, the field and how
    /// to fix it. Exits 1 if there is any error; warnings alone do not fail.
    Validate {
        /// Directory of the config repository (YAML files are read recursively; hidden directories are skipped).
        #[arg(default_value = ".")]
        path: PathBuf,
        /// Namespace of objects that set none.
        #[arg(long, short = 'n', default_value = "default")]
        namespace: String,
        #[command(flatten)]
        budget: BudgetFlags,
    },
    /// Print every Kubernetes object and Redis Enterprise REST request the agent would create.
    ///
    /// Secrets are templates: their keys are shown, passwords are never (they are generated in the cluster).
    /// Nothing is contacted; the output is computed from the files alone.
    Render {
        /// Directory of the config repository.
        #[arg(default_value = ".")]
        path: PathBuf,
        /// Namespace of objects that set none.
        #[arg(long, short = 'n', default_value = "default")]
        namespace: String,
        /// Output format: a YAML stream or one JSON document `{"kubernetes": [...], "rest": [...]}`.
        #[arg(long, short = 'o', value_enum, default_value_t = Format::Yaml)]
        output: Format,
        /// Print only the Kubernetes objects (pipeable to `kubectl apply --dry-run=client -f -`) or only the REST
        /// requests.
        #[arg(long, value_enum, default_value_t = Part::All)]
        only: Part,
    },
    /// Run the agent in a Kubernetes cluster: the GitSync controller keeps RECs and REDBs as Git says.
    ///
    /// Uses the in-cluster service account, or the current kubeconfig context outside a cluster. Waits for the
    /// CRDs to be installed, then runs until SIGTERM or Ctrl-C.
    Agent {
        /// Directory for the Git caches (one bare repository per URL, reused across polls).
        #[arg(long, env = "REDIS_GITOPS_CACHE_DIR", default_value = "/tmp/redis-gitops-cache")]
        cache_dir: PathBuf,
        /// A namespace GitSyncs may write to besides their own (repeat for several).
        #[arg(long = "allow-namespace")]
        allow_namespaces: Vec<String>,
        /// Log format.
        #[arg(long, value_enum, default_value_t = LogStyle::Text)]
        log_format: LogStyle,
        /// Address of the /healthz, /readyz and /metrics endpoints.
        #[arg(long, default_value = "0.0.0.0:8080")]
        metrics_address: String,
        /// Namespace of the leader Lease `redis-gitops-agent` (one replica writes; the others wait).
        #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
        lease_namespace: String,
        /// How long the Lease holds without renewal before another replica may take over (1s to 24h). The leader
        /// renews every 2/15 of it and stops writing once 2/3 of it passed without a successful renewal.
        #[arg(long, default_value = "15s", value_parser = parse_duration_arg)]
        lease_duration: std::time::Duration,
        /// PEM file of the CA (or CAs) that signed the Redis Enterprise REST API certificates. A cluster's own
        /// `ca.crt` key in its credentials Secret is trusted as well.
        #[arg(long, env = "REDIS_GITOPS_ENTERPRISE_CA_FILE")]
        enterprise_ca_file: Option<PathBuf>,
        /// Resolve in-cluster names from this hosts file first (`<ip> <name>` lines, re-read when it changes);
        /// for running the agent outside a cluster, e.g. against `redis-gitops sandbox`, which writes one.
        #[arg(long)]
        hosts_file: Option<PathBuf>,
        /// Allow GitSyncs with `file://` urls (refused by default: a tenant could read repositories on the agent's
        /// disk). For the sandbox and tests only.
        #[arg(long)]
        allow_file_urls: bool,
        /// Time limit of one Redis Enterprise REST call.
        #[arg(long, default_value = "30s", value_parser = parse_duration_arg)]
        rest_timeout: std::time::Duration,
        #[command(flatten)]
        budget: BudgetFlags,
    },
    /// Start a local control plane: a Kubernetes API server and a Redis Enterprise emulator on loopback.
    ///
    /// The real kubectl and the agent work against it unchanged, so you can try redis-gitops without a cluster or
    /// a license. Every Redis Enterprise pod becomes an emulated node, and every database a real redis-server.
    /// Needs redis-server (Debian package redis-server). Runs until Ctrl-C or SIGTERM.
    Sandbox {
        /// Where to write the kubeconfig (default: redis-gitops-sandbox.kubeconfig in the temp directory).
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        /// Port of the API server on 127.0.0.1 (default: a free port).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Also run the agent and a GitSync for this repository: a Git URL, or the directory of a local Git
        /// checkout (`--repo .` for this project).
        #[arg(long)]
        repo: Option<String>,
        /// Directory inside the repository to sync (with --repo).
        #[arg(long, default_value = "")]
        path: String,
        /// Branch to follow (with --repo; default: the checkout's current branch, or main).
        #[arg(long = "ref")]
        git_ref: Option<String>,
        /// With --repo: sync once, wait until every object is Ready or has failed, print a summary table and exit
        /// 0 when all are Ready, 1 otherwise (for CI and pull-request previews).
        #[arg(long, requires = "repo")]
        once: bool,
        /// With --once: how long to wait for every object to settle.
        #[arg(long, default_value = "5m", value_parser = parse_duration_arg, requires = "once")]
        timeout: std::time::Duration,
    },
    /// Print the CustomResourceDefinitions (RedisEnterpriseCluster, RedisEnterpriseDatabase, GitSync) as YAML.
    Crds {
        /// Write one file per CRD into this directory instead of printing them.
        #[arg(long)]
        output_dir: Option<PathBuf>,
    },
}

/// The budget of one revision across all its files (defaults: 16Mi, 1000000 nodes, 10000 objects).
#[derive(clap::Args, Clone, Copy)]
struct BudgetFlags {
    /// Most bytes of YAML in one revision, all files together (bytes, or with Ki, Mi, Gi; at most 1Gi).
    #[arg(long, default_value = "16Mi", value_parser = redis_gitops::manifests::budget::parse_size_setting)]
    max_revision_bytes: u64,
    /// Most YAML nodes in one revision after alias expansion, all files together.
    #[arg(long, default_value = "1000000", value_parser = |text: &str| redis_gitops::manifests::budget::parse_count_setting(text, redis_gitops::manifests::budget::MAX_NODES_SETTING))]
    max_revision_nodes: usize,
    /// Most objects (YAML documents) in one revision.
    #[arg(long, default_value = "10000", value_parser = |text: &str| redis_gitops::manifests::budget::parse_count_setting(text, redis_gitops::manifests::budget::MAX_OBJECTS_SETTING))]
    max_revision_objects: usize,
}

impl BudgetFlags {
    /// Makes these flags the budget of every revision this process loads.
    fn configure(self) -> RevisionBudget {
        let budget = RevisionBudget {
            max_bytes: self.max_revision_bytes,
            max_nodes: self.max_revision_nodes,
            max_objects: self.max_revision_objects,
        };
        redis_gitops::manifests::budget::configure(budget);
        budget
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Yaml,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogStyle {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum Part {
    All,
    Kubernetes,
    Rest,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate {
            path,
            namespace,
            budget,
        } => {
            budget.configure();
            validate(&path, namespace)
        }
        Command::Render {
            path,
            namespace,
            output,
            only,
        } => render_command(&path, namespace, output, only),
        Command::Crds { output_dir } => crds(output_dir),
        Command::Agent {
            cache_dir,
            allow_namespaces,
            log_format,
            metrics_address,
            lease_namespace,
            lease_duration,
            enterprise_ca_file,
            hosts_file,
            rest_timeout,
            allow_file_urls,
            budget,
        } => {
            redis_gitops::source::set_file_urls_allowed(allow_file_urls);
            budget.configure();
            let format = match log_format {
                LogStyle::Text => LogFormat::Text,
                LogStyle::Json => LogFormat::Json,
            };
            runtime().block_on(agent(AgentOptions {
                cache_dir,
                allow_namespaces,
                format,
                metrics_address,
                lease_namespace,
                lease_duration,
                enterprise_ca_file,
                hosts_file,
                rest_timeout,
            }))
        }
        Command::Sandbox {
            kubeconfig,
            port,
            repo,
            path,
            git_ref,
            once,
            timeout,
        } => {
            let source = match repo.map(|repo| sandbox_source(&repo, path, git_ref)).transpose() {
                Ok(source) => source,
                Err(message) => {
                    eprintln!("sandbox: {message}");
                    return ExitCode::FAILURE;
                }
            };
            let once = once.then_some(timeout);
            // `--repo .` is a file:// url: the sandbox is a single-user playground, so it allows them explicitly.
            redis_gitops::source::set_file_urls_allowed(true);
            runtime().block_on(sandbox(kubeconfig, port, source, once))
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("failed to start the async runtime: {error}");
            std::process::exit(1);
        }
    }
}

struct AgentOptions {
    cache_dir: PathBuf,
    allow_namespaces: Vec<String>,
    format: LogFormat,
    metrics_address: String,
    lease_namespace: String,
    lease_duration: std::time::Duration,
    enterprise_ca_file: Option<PathBuf>,
    hosts_file: Option<PathBuf>,
    rest_timeout: std::time::Duration,
}

/// A duration flag: Go syntax, checked arithmetic, from 1s to 24h.
fn parse_duration_arg(text: &str) -> Result<std::time::Duration, String> {
    let quoted = redis_gitops::manifests::quote(text);
    match redis_gitops::sync::settings::parse_duration(text) {
        Ok(duration) if (std::time::Duration::from_secs(1)..=MAX_FLAG_DURATION).contains(&duration) => Ok(duration),
        Ok(_) | Err(_) => Err(format!(
            "{quoted} is not a duration from 1s to 24h; write for example 15s or 1m"
        )),
    }
}

/// The longest duration any flag accepts.
const MAX_FLAG_DURATION: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

async fn agent(options: AgentOptions) -> ExitCode {
    let AgentOptions {
        cache_dir,
        allow_namespaces,
        format,
        metrics_address,
        lease_namespace,
        lease_duration,
        enterprise_ca_file,
        hosts_file,
        rest_timeout,
    } = options;
    init_logging(format);
    let ca_pem = match &enterprise_ca_file {
        Some(path) => match std::fs::read(path) {
            Ok(pem) => pem,
            Err(error) => {
                tracing::error!(%error, path = %path.display(), "unable to read --enterprise-ca-file");
                return ExitCode::FAILURE;
            }
        },
        None => Vec::new(),
    };
    let enterprise = EnterpriseAccess {
        ca_pem,
        resolver: hosts_file
            .map(|path| std::sync::Arc::new(HostsFileResolver::new(path)) as std::sync::Arc<dyn reqwest::dns::Resolve>),
        timeout: rest_timeout,
        retry: RetryPolicy::default(),
    };
    let metrics = std::sync::Arc::new(Metrics::default());
    let ready = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let listener = match tokio::net::TcpListener::bind(&metrics_address).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%error, address = %metrics_address, "unable to listen for /healthz, /readyz and /metrics");
            return ExitCode::FAILURE;
        }
    };
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, "serving /healthz, /readyz and /metrics");
    }
    tokio::spawn(serve_health(
        listener,
        metrics.clone(),
        ready.clone(),
        shutdown_signal(),
    ));
    let timings = match LeaseTimings::for_lease(lease_duration) {
        Ok(timings) => timings,
        Err(error) => {
            tracing::error!(%error, "invalid --lease-duration");
            return ExitCode::FAILURE;
        }
    };
    // Two clients: the Lease's own, and the controllers', whose every write is refused unless this replica holds
    // the Lease within its renew deadline (the fence also guards the Redis Enterprise REST writes).
    let fence = WriteFence::new();
    install_process_fence(fence.clone());
    let config = match kube::Config::infer().await {
        Ok(config) => config,
        Err(error) => {
            tracing::error!(%error, "unable to find a Kubernetes API server (in-cluster account or kubeconfig)");
            return ExitCode::FAILURE;
        }
    };
    let clients = kube::client::ClientBuilder::try_from(config.clone()).and_then(|lease_client| {
        let fenced = kube::client::ClientBuilder::try_from(config)?
            .with_layer(&FenceLayer::new(fence.clone()))
            .build();
        Ok((lease_client.build(), fenced))
    });
    let (lease_client, client) = match clients {
        Ok(clients) => clients,
        Err(error) => {
            tracing::error!(%error, "unable to build a Kubernetes client from the in-cluster account or kubeconfig");
            return ExitCode::FAILURE;
        }
    };
    if let Err(error) = std::fs::create_dir_all(&cache_dir) {
        tracing::error!(%error, path = %cache_dir.display(), "unable to create the Git cache directory");
        return ExitCode::FAILURE;
    }
    tokio::select! {
        () = redis_gitops::sync::wait_for_crds(&client) => {}
        () = shutdown_signal() => return ExitCode::SUCCESS,
    }
    ready.store(true, std::sync::atomic::Ordering::Relaxed);
    let instance = std::env::var("POD_NAME").ok();
    let holder = instance.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
        format!("{}-{}", host.trim(), std::process::id())
    });
    let lease = LeaderLease::new(
        lease_client,
        &lease_namespace,
        "redis-gitops-agent",
        &holder,
        timings,
        fence,
    );
    tokio::select! {
        () = lease.acquire() => {}
        () = shutdown_signal() => {
            tracing::info!("agent stopped");
            return ExitCode::SUCCESS;
        }
    }
    let namespaces = redis_gitops::sync::settings::allowed_namespaces(&allow_namespaces);
    let controllers = ControllerContext {
        client: client.clone(),
        enterprise,
        metrics: metrics.clone(),
        instance: instance.clone(),
        clients: Default::default(),
    };
    let context = std::sync::Arc::new(SyncContext::new(client, cache_dir, namespaces, instance, metrics));
    tracing::info!("agent started: GitSync, cluster and database controllers running");
    // The controllers run as tasks so that losing the lease can abort them at once, wherever they are.
    let mut running = tokio::task::JoinSet::new();
    running.spawn(redis_gitops::sync::controller::run(context, shutdown_signal()));
    running.spawn(redis_gitops::controllers::cluster::run(
        controllers.clone(),
        shutdown_signal(),
    ));
    running.spawn(redis_gitops::controllers::database::run(controllers, shutdown_signal()));
    let all_stopped = async { while running.join_next().await.is_some() {} };
    tokio::select! {
        () = all_stopped => {
            tracing::info!("agent stopped");
            ExitCode::SUCCESS
        }
        () = lease.keep() => {
            // Never write without the lease: the fence already refuses every write; stop the controllers before
            // a standby can take over (a third of a lease later at the earliest), and let the Deployment restart
            // this replica as a standby.
            running.abort_all();
            while running.join_next().await.is_some() {}
            tracing::error!("agent stopped: the leader lease was lost; controllers stopped");
            ExitCode::FAILURE
        }
    }
}

/// What `sandbox --repo` syncs.
struct SandboxSource {
    url: String,
    branch: String,
    path: String,
    /// The local checkout, when the repository is a directory (its namespaces are created up front).
    checkout: Option<PathBuf>,
}

/// Reads `--repo`: a URL as it is, or a directory that must be a Git checkout (its current branch is the default).
fn sandbox_source(repo: &str, path: String, git_ref: Option<String>) -> Result<SandboxSource, String> {
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

async fn sandbox(
    kubeconfig: Option<PathBuf>,
    port: u16,
    source: Option<SandboxSource>,
    once: Option<std::time::Duration>,
) -> ExitCode {
    init_logging(LogFormat::Text);
    let options = SandboxOptions {
        port,
        ..SandboxOptions::default()
    };
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
    let hosts = path.with_extension("hosts");
    let hosts_writer = sandbox.keep_hosts_file(hosts.clone());
    if once.is_none() {
        println!("redis-gitops sandbox is running (Ctrl-C to stop).");
    }
    println!("  Kubernetes API server  {}", sandbox.apiserver.url());
    println!("  kubeconfig             {}", path.display());
    println!("  Redis Enterprise CA    {}", sandbox.ca_path().display());
    println!("  in-cluster names       {} (for agent --hosts-file)", hosts.display());
    if once.is_none() {
        println!();
        println!("Try:");
        println!("  export KUBECONFIG={}", path.display());
        println!("  kubectl get crds");
        println!("  kubectl explain redb.spec");
        println!("  kubectl apply --server-side -f examples-repo/clusters/staging.yaml && kubectl get rec -A");
    }
    let mut controller = None;
    if let Some(source) = source {
        match start_sync(&sandbox, &source).await {
            Ok(handle) => {
                println!();
                println!(
                    "Syncing {} (branch {}, path {:?}) with the GitSync default/sandbox:",
                    source.url, source.branch, source.path
                );
                println!("  kubectl get gitsync,rec,redb -A");
                controller = Some(handle);
            }
            Err(message) => {
                eprintln!("sandbox: {message}");
                return ExitCode::FAILURE;
            }
        }
    }
    let mut code = ExitCode::SUCCESS;
    match once {
        Some(timeout) => {
            let outcome = match sandbox.apiserver.kube_client() {
                Ok(client) => {
                    let settle = redis_gitops::sandbox::settle::wait_until_settled(
                        &client,
                        "default",
                        "sandbox",
                        timeout,
                        std::time::Duration::from_secs(1),
                    );
                    tokio::select! {
                        summary = settle => Some(summary),
                        () = shutdown_signal() => None,
                    }
                }
                Err(error) => {
                    eprintln!("sandbox: {error}");
                    None
                }
            };
            println!();
            match outcome {
                Some(summary) => {
                    print!("{}", summary.table());
                    if !summary.all_ready() {
                        code = ExitCode::FAILURE;
                    }
                }
                None => code = ExitCode::FAILURE,
            }
        }
        None => shutdown_signal().await,
    }
    hosts_writer.abort();
    let _ = std::fs::remove_file(&hosts);
    if let Some(controller) = controller {
        controller.abort();
    }
    // Standard output may be gone by now (a closed pipe); stopping must not fail because of that.
    let _ = writeln!(std::io::stdout(), "sandbox stopped");
    drop(sandbox);
    code
}

/// Starts the GitSync controller in the sandbox, creates the namespaces a local checkout uses, and the GitSync.
async fn start_sync(sandbox: &Sandbox, source: &SandboxSource) -> Result<tokio::task::JoinHandle<()>, String> {
    let objects = sandbox.apiserver.objects();
    if let Some(checkout) = &source.checkout {
        // What a platform team creates outside Git: the namespaces, and the license Secrets the clusters name.
        let (namespaces, licenses): (std::collections::BTreeSet<String>, Vec<(String, String)>) =
            match load_directory(checkout, &options("default".to_string())) {
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
                Ok(_) | Err(redis_gitops::sandbox::apiserver::ApiError::AlreadyExists { .. }) => {}
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
                Err(redis_gitops::sandbox::apiserver::ApiError::AlreadyExists { .. }) => {}
                Err(error) => {
                    return Err(format!(
                        "failed to create the license Secret {namespace}/{name}: {error}"
                    ));
                }
            }
        }
    }
    let client = sandbox.apiserver.kube_client().map_err(|error| error.to_string())?;
    let cache = std::env::temp_dir().join(format!("redis-gitops-sandbox-cache-{}", std::process::id()));
    let namespaces = [redis_gitops::sync::plan::ANY_NAMESPACE.to_string()].into();
    let metrics = std::sync::Arc::new(Metrics::default());
    let controllers = ControllerContext {
        client: client.clone(),
        enterprise: EnterpriseAccess {
            ca_pem: sandbox.ca_pem().as_bytes().to_vec(),
            resolver: Some(std::sync::Arc::new(sandbox.emulator.resolver())),
            timeout: std::time::Duration::from_secs(10),
            retry: RetryPolicy::default(),
        },
        metrics: metrics.clone(),
        instance: None,
        clients: Default::default(),
    };
    let context = std::sync::Arc::new(SyncContext::new(client, cache, namespaces, None, metrics));
    let handle = tokio::spawn(async move {
        tokio::join!(
            redis_gitops::sync::controller::run(context, std::future::pending()),
            redis_gitops::controllers::cluster::run(controllers.clone(), std::future::pending()),
            redis_gitops::controllers::database::run(controllers, std::future::pending()),
        );
    });
    let gitsync = serde_json::json!({
        "apiVersion": "redisgitops.dev/v1alpha1", "kind": "GitSync",
        "metadata": {"name": "sandbox", "namespace": "default"},
        "spec": {"url": source.url, "ref": {"branch": source.branch}, "path": source.path, "interval": "10s", "prune": true}
    });
    objects
        .create("redisgitops.dev/v1alpha1", "GitSync", gitsync)
        .map_err(|error| format!("failed to create the GitSync: {error}"))?;
    Ok(handle)
}

fn options(namespace: String) -> LoadOptions {
    LoadOptions {
        default_namespace: namespace,
        ..LoadOptions::default()
    }
}

fn print_diagnostics(diagnostics: &[Diagnostic]) {
    for diagnostic in diagnostics {
        println!("{diagnostic}");
    }
}

fn validate(path: &std::path::Path, namespace: String) -> ExitCode {
    match load_directory(path, &options(namespace)) {
        Ok(repository) => {
            for cluster in &repository.clusters {
                println!("ok {}", cluster.summary());
            }
            for database in &repository.databases {
                println!("ok {}", database.summary(&repository));
            }
            print_diagnostics(&repository.warnings);
            println!(
                "{} clusters, {} databases: valid, {} warnings",
                repository.clusters.len(),
                repository.databases.len(),
                repository.warnings.len()
            );
            ExitCode::SUCCESS
        }
        Err(diagnostics) => {
            print_diagnostics(&diagnostics);
            let errors = diagnostics.iter().filter(|d| d.is_error()).count();
            println!(
                "invalid: {errors} errors, {} warnings; nothing would be applied",
                diagnostics.len() - errors
            );
            ExitCode::FAILURE
        }
    }
}

fn render_command(path: &std::path::Path, namespace: String, output: Format, only: Part) -> ExitCode {
    let repository = match load_directory(path, &options(namespace)) {
        Ok(repository) => repository,
        Err(diagnostics) => {
            for diagnostic in &diagnostics {
                eprintln!("{diagnostic}");
            }
            eprintln!(
                "render: the repository is invalid; fix the errors above (`redis-gitops validate` lists them too)"
            );
            return ExitCode::FAILURE;
        }
    };
    for warning in &repository.warnings {
        eprintln!("{warning}");
    }
    let mut rendered = render::render(&repository);
    let only = match only {
        Part::All => Only::All,
        Part::Kubernetes => Only::Kubernetes,
        Part::Rest => Only::Rest,
    };
    match output {
        Format::Yaml => match render::to_yaml_stream(&rendered, only) {
            Ok(text) => print!("{text}"),
            Err(error) => {
                eprintln!("render: failed to write YAML: {error}");
                return ExitCode::FAILURE;
            }
        },
        Format::Json => {
            if only == Only::Kubernetes {
                rendered.rest.clear();
            } else if only == Only::Rest {
                rendered.kubernetes.clear();
            }
            match serde_json::to_string_pretty(&render::to_json(&rendered)) {
                Ok(text) => println!("{text}"),
                Err(error) => {
                    eprintln!("render: failed to write JSON: {error}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    ExitCode::SUCCESS
}

fn crds(output_dir: Option<PathBuf>) -> ExitCode {
    let Some(directory) = output_dir else {
        match api::crds_yaml() {
            Ok(text) => {
                print!("{text}");
                return ExitCode::SUCCESS;
            }
            Err(error) => {
                eprintln!("crds: {error}");
                return ExitCode::FAILURE;
            }
        }
    };
    match api::write_crds(&directory) {
        Ok(files) => {
            for file in files {
                println!("wrote {}", file.display());
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("crds: {error}");
            ExitCode::FAILURE
        }
    }
}
