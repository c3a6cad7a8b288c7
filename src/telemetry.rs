//! Logs (tracing, as text or JSON) and the signals that stop long-running commands.

/// How logs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Sets up logging to standard error. The level comes from `RUST_LOG` (default `info`). Text logs are coloured only
/// when standard error is a terminal and `NO_COLOR` is unset (<https://no-color.org>): a redirected log carries no
/// escape sequences.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube_runtime=warn,kube_client=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour_logs(
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
            std::env::var_os("NO_COLOR").as_deref(),
        ))
        .with_writer(std::io::stderr);
    // A second initialisation (tests, embedding) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Whether logs may carry ANSI colour codes: only on a terminal, and not when `NO_COLOR` is set to a non-empty value
/// (the no-color.org convention).
pub fn colour_logs(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|value| value.is_empty())
}

/// Resolves on Ctrl-C or SIGTERM, whichever comes first.
pub async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops this process");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

/// The agent's Prometheus metrics. Labels are bounded: results, error categories, and for the last-applied gauge
/// the GitSync's namespace and name (one series per GitSync, which the issue asks for; never error text).
pub struct Metrics {
    registry: prometheus_client::registry::Registry,
    /// Syncs by result (`success`, `failure`).
    pub syncs: prometheus_client::metrics::family::Family<ResultLabels, prometheus_client::metrics::counter::Counter>,
    /// Failed syncs by error category.
    pub failures:
        prometheus_client::metrics::family::Family<CategoryLabels, prometheus_client::metrics::counter::Counter>,
    /// Duration of whole syncs.
    pub sync_duration: prometheus_client::metrics::histogram::Histogram,
    /// Duration of Git polls (ref listing plus any fetch).
    pub fetch_duration: prometheus_client::metrics::histogram::Histogram,
    /// When each GitSync last applied a revision (Unix seconds).
    pub last_applied: prometheus_client::metrics::family::Family<
        GitSyncLabels,
        prometheus_client::metrics::gauge::Gauge<f64, std::sync::atomic::AtomicU64>,
    >,
    /// Reconciles of the cluster and database controllers, by controller and result.
    pub reconciles: prometheus_client::metrics::family::Family<
        ControllerResultLabels,
        prometheus_client::metrics::counter::Counter,
    >,
    /// Failed reconciles of the cluster and database controllers, by controller and error category.
    pub reconcile_failures: prometheus_client::metrics::family::Family<
        ControllerCategoryLabels,
        prometheus_client::metrics::counter::Counter,
    >,
    /// Commit statuses by forge provider and result (`posted`, `failed`).
    pub commit_statuses:
        prometheus_client::metrics::family::Family<ProviderResultLabels, prometheus_client::metrics::counter::Counter>,
    /// Push-webhook deliveries by forge and result.
    pub webhook_deliveries:
        prometheus_client::metrics::family::Family<WebhookLabels, prometheus_client::metrics::counter::Counter>,
    /// From a push webhook that triggered a sync to the end of that sync, when it applied the revision.
    pub webhook_to_applied: prometheus_client::metrics::histogram::Histogram,
    /// When each schedule's database last had a successful backup (Unix seconds).
    pub backup_last_success: prometheus_client::metrics::family::Family<
        BackupLabels,
        prometheus_client::metrics::gauge::Gauge<f64, std::sync::atomic::AtomicU64>,
    >,
    /// Duration of backup runs, from the export request to its end.
    pub backup_duration: prometheus_client::metrics::histogram::Histogram,
    /// Failed backup runs by reason (the cluster's `export_failure_reason` or the agent's category).
    pub backup_failures:
        prometheus_client::metrics::family::Family<CategoryLabels, prometheus_client::metrics::counter::Counter>,
    /// Schedule slots not run (past the starting deadline, after downtime, or while the previous run went on).
    pub backup_runs_missed:
        prometheus_client::metrics::family::Family<ScheduleLabels, prometheus_client::metrics::counter::Counter>,
}

/// Labels of [`Metrics::backup_last_success`]: one series per schedule and database.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct BackupLabels {
    /// Namespace of the schedule.
    pub namespace: String,
    /// Name of the schedule (empty for on-demand backups).
    pub schedule: String,
    /// Name of the RedisEnterpriseDatabase.
    pub database: String,
}

/// Labels of [`Metrics::backup_runs_missed`].
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct ScheduleLabels {
    /// Namespace of the schedule.
    pub namespace: String,
    /// Name of the schedule.
    pub schedule: String,
}

/// Labels of [`Metrics::commit_statuses`].
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct ProviderResultLabels {
    /// `github`, `gitlab`, `gitea` or `bitbucket`.
    pub provider: &'static str,
    /// `posted` or `failed`.
    pub result: &'static str,
}

/// Labels of [`Metrics::webhook_deliveries`].
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct WebhookLabels {
    /// `github`, `gitea`, `forgejo`, `gitlab`, `bitbucket`, `generic`, or `unknown` before the sender is known.
    pub forge: &'static str,
    /// What the receiver did: `triggered`, `deferred`, `ignored_ref`, `ignored_path`, `ignored_event`, `invalid_spec`, `ping`,
    /// `duplicate`, `unauthorized`, `not_found`, `too_large`, `bad_request`, `unavailable`, `forwarded` (a standby passed it to the leader).
    pub result: &'static str,
}

/// Labels of [`Metrics::reconciles`].
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct ControllerResultLabels {
    /// `cluster` or `database`.
    pub controller: &'static str,
    /// `success`, `waiting` or `failure`.
    pub result: &'static str,
}

/// Labels of [`Metrics::reconcile_failures`].
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct ControllerCategoryLabels {
    /// `cluster` or `database`.
    pub controller: &'static str,
    /// The error's stable category.
    pub category: &'static str,
}

/// Labels of [`Metrics::syncs`].
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct ResultLabels {
    /// `success` or `failure`.
    pub result: &'static str,
}

/// Labels of [`Metrics::failures`].
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct CategoryLabels {
    /// The error's stable category.
    pub category: &'static str,
}

/// Labels of [`Metrics::last_applied`].
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct GitSyncLabels {
    /// Namespace of the GitSync.
    pub namespace: String,
    /// Name of the GitSync.
    pub name: String,
}

impl Default for Metrics {
    fn default() -> Self {
        use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
        let mut registry = prometheus_client::registry::Registry::with_prefix("redis_gitops");
        let metrics = Self {
            registry: prometheus_client::registry::Registry::default(),
            syncs: Default::default(),
            failures: Default::default(),
            sync_duration: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            fetch_duration: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            last_applied: Default::default(),
            reconciles: Default::default(),
            reconcile_failures: Default::default(),
            commit_statuses: Default::default(),
            webhook_deliveries: Default::default(),
            webhook_to_applied: Histogram::new(exponential_buckets(0.01, 2.0, 12)),
            backup_last_success: Default::default(),
            backup_duration: Histogram::new(exponential_buckets(0.5, 2.0, 14)),
            backup_failures: Default::default(),
            backup_runs_missed: Default::default(),
        };
        registry.register("gitsync_syncs", "GitSync syncs by result", metrics.syncs.clone());
        registry.register(
            "gitsync_failures",
            "Failed GitSync syncs by error category",
            metrics.failures.clone(),
        );
        registry.register_with_unit(
            "gitsync_sync_duration",
            "Duration of GitSync syncs",
            prometheus_client::registry::Unit::Seconds,
            metrics.sync_duration.clone(),
        );
        registry.register_with_unit(
            "git_fetch_duration",
            "Duration of Git polls: ref listing plus any fetch",
            prometheus_client::registry::Unit::Seconds,
            metrics.fetch_duration.clone(),
        );
        registry.register(
            "gitsync_last_applied_timestamp_seconds",
            "When each GitSync last applied a revision, in Unix seconds",
            metrics.last_applied.clone(),
        );
        registry.register(
            "controller_reconciles",
            "Reconciles of the cluster and database controllers by result",
            metrics.reconciles.clone(),
        );
        registry.register(
            "controller_reconcile_failures",
            "Failed reconciles of the cluster and database controllers by error category",
            metrics.reconcile_failures.clone(),
        );
        registry.register(
            "commit_statuses",
            "Commit statuses posted to and failed on the forge, by provider",
            metrics.commit_statuses.clone(),
        );
        registry.register(
            "webhook_deliveries",
            "Push-webhook deliveries by forge and result",
            metrics.webhook_deliveries.clone(),
        );
        registry.register_with_unit(
            "webhook_to_applied",
            "From a push webhook to the end of the sync that applied it",
            prometheus_client::registry::Unit::Seconds,
            metrics.webhook_to_applied.clone(),
        );
        registry.register(
            "backup_last_success_timestamp_seconds",
            "When each schedule's database last had a successful backup, in Unix seconds",
            metrics.backup_last_success.clone(),
        );
        registry.register_with_unit(
            "backup_duration",
            "Duration of backup runs",
            prometheus_client::registry::Unit::Seconds,
            metrics.backup_duration.clone(),
        );
        registry.register(
            "backup_failures",
            "Failed backup runs by reason",
            metrics.backup_failures.clone(),
        );
        registry.register(
            "backup_runs_missed",
            "Schedule slots that did not run, by schedule",
            metrics.backup_runs_missed.clone(),
        );
        Self { registry, ..metrics }
    }
}

impl Metrics {
    /// Counts one reconcile of `controller` (`success`, `waiting` or `failure`), and a failure by its category.
    pub fn record_reconcile(&self, controller: &'static str, result: &'static str, failure: Option<&'static str>) {
        self.reconciles
            .get_or_create(&ControllerResultLabels { controller, result })
            .inc();
        if let Some(category) = failure {
            self.reconcile_failures
                .get_or_create(&ControllerCategoryLabels { controller, category })
                .inc();
        }
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::warn!(%error, "failed to encode metrics");
        }
        text
    }
}

/// Serves `/healthz` (the process runs), `/readyz` (the controllers run; 503 before) and `/metrics` until
/// `shutdown` resolves.
pub async fn serve_health(
    listener: tokio::net::TcpListener,
    metrics: std::sync::Arc<Metrics>,
    ready: std::sync::Arc<std::sync::atomic::AtomicBool>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::http::StatusCode;
    use axum::routing::get;
    let router = axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let ready = ready.clone();
                async move {
                    if ready.load(std::sync::atomic::Ordering::Relaxed) {
                        (StatusCode::OK, "ready")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "waiting for the CRDs")
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [(
                            "content-type",
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        metrics.encode(),
                    )
                }
            }),
        );
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}

#[cfg(test)]
mod colour_tests {
    use super::colour_logs;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour_logs(true, None));
        assert!(!colour_logs(false, None));
        assert!(!colour_logs(true, Some(std::ffi::OsStr::new("1"))));
        // An empty NO_COLOR does not count (no-color.org).
        assert!(colour_logs(true, Some(std::ffi::OsStr::new(""))));
    }
}
