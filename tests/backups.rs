//! Scheduled backups and restores end to end in the sandbox: the database controller and the three backup
//! controllers run against an emulated cluster whose databases are real `redis-server` processes; backups land in
//! a real directory, are checked with `redis-check-rdb`, restored, pruned and verified.

#[path = "support/database_env.rs"]
mod database_env;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use database_env::*;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use redis_gitops::api::backup::{RedisBackup, RedisBackupSchedule, RedisRestore};
use redis_gitops::backup::{BackupSettings, run_in};
use redis_gitops::controllers::{ControllerContext, EnterpriseAccess};
use redis_gitops::enterprise::RetryPolicy;
use redis_gitops::telemetry::Metrics;
use serde_json::{Value, json};

/// The backup controllers, running as one task that a test can kill (as a crashed agent) and start again.
struct Controllers {
    task: tokio::task::JoinHandle<()>,
}

fn context(environment: &Environment) -> ControllerContext {
    ControllerContext {
        client: environment.kube.clone(),
        enterprise: EnterpriseAccess {
            ca_pem: environment.sandbox.ca_pem().as_bytes().to_vec(),
            resolver: Some(Arc::new(environment.sandbox.emulator.resolver())),
            timeout: REST_TIMEOUT,
            retry: RetryPolicy {
                attempts: 3,
                initial_backoff: Duration::from_millis(50),
                max_backoff: Duration::from_millis(200),
            },
        },
        metrics: Arc::new(Metrics::default()),
        instance: Some("test".into()),
        clients: Default::default(),
    }
}

impl Controllers {
    fn start(environment: &Environment) -> Self {
        let settings = BackupSettings {
            poll: Duration::from_millis(200),
            max_schedule_wait: Duration::from_secs(2),
            max_backoff: Duration::from_secs(2),
            verify_timeout: Duration::from_secs(120),
        };
        let task = tokio::spawn(run_in(
            context(environment),
            settings,
            None,
            std::future::pending::<()>(),
        ));
        Self { task }
    }

    /// Stops the controllers at once, wherever they are (an agent killed).
    async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

fn schedules(environment: &Environment) -> Api<RedisBackupSchedule> {
    Api::namespaced(environment.kube.clone(), NAMESPACE)
}

fn backups(environment: &Environment) -> Api<RedisBackup> {
    Api::namespaced(environment.kube.clone(), NAMESPACE)
}

fn restores(environment: &Environment) -> Api<RedisRestore> {
    Api::namespaced(environment.kube.clone(), NAMESPACE)
}

async fn create<K>(api: &Api<K>, value: Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let object: K = serde_json::from_value(value).expect("object");
    api.create(&PostParams::default(), &object).await.expect("created");
}

/// Polls `check` every 100 ms until it returns `Some`, for up to `limit`.
async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn phase(backup: &RedisBackup) -> Option<&str> {
    backup.status.as_ref()?.phase.as_deref()
}

async fn connect(environment: &Environment, database: &str) -> redis::Connection {
    let secret = environment
        .secrets()
        .get(&format!("redb-{database}"))
        .await
        .expect("secret");
    let service = secret_text(&secret, "service_name");
    let port = secret_text(&secret, "port");
    let ip = environment
        .sandbox
        .emulator
        .names()
        .lookup(&format!("{service}.{NAMESPACE}.svc"))
        .expect("the Service name resolves");
    let password = secret_text(&secret, "password");
    let mut connection = redis::Client::open(format!("redis://{ip}:{port}"))
        .expect("client")
        .get_connection_with_timeout(Duration::from_secs(5))
        .expect("connects");
    redis::cmd("AUTH")
        .arg(password)
        .query::<()>(&mut connection)
        .expect("AUTH");
    connection
}

fn write_keys(connection: &mut redis::Connection, count: usize) {
    for index in 0..count {
        redis::cmd("SET")
            .arg(format!("key-{index}"))
            .arg(format!("value-{index}"))
            .query::<()>(connection)
            .expect("SET");
    }
}

fn dbsize(connection: &mut redis::Connection) -> i64 {
    redis::cmd("DBSIZE").query(connection).expect("DBSIZE")
}

/// `redis-check-rdb` accepts the file (after gunzip when it is compressed).
fn check_rdb(path: &Path) {
    let bytes = std::fs::read(path).expect("backup file readable");
    let plain = if bytes.starts_with(&[0x1f, 0x8b]) {
        let unpacked = path.with_extension("unpacked.rdb");
        let output = std::process::Command::new("gzip")
            .args(["-dc"])
            .arg(path)
            .output()
            .expect("gzip runs");
        assert!(output.status.success(), "gzip -d {}", path.display());
        std::fs::write(&unpacked, output.stdout).expect("unpacked");
        unpacked
    } else {
        path.to_path_buf()
    };
    let output = std::process::Command::new("redis-check-rdb")
        .arg(&plain)
        .output()
        .expect("redis-check-rdb runs");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && text.contains("RDB looks OK"),
        "redis-check-rdb {}: {text}",
        plain.display()
    );
    if plain != path {
        std::fs::remove_file(plain).expect("unpacked file removed");
    }
}

fn schedule_spec(path: &Path, extra: Value) -> Value {
    let mut spec = json!({
        "schedule": "*/2 * * * * *",
        "databases": ["cache"],
        "location": {"mount": {"path": path.display().to_string()}},
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        for (key, value) in extra {
            spec.insert(key.clone(), value.clone());
        }
    }
    spec
}

async fn create_schedule(environment: &Environment, name: &str, spec: Value) {
    create(
        &schedules(environment),
        json!({"apiVersion": "redisgitops.dev/v1alpha1", "kind": "RedisBackupSchedule",
               "metadata": {"name": name, "namespace": NAMESPACE}, "spec": spec}),
    )
    .await;
}

async fn suspend(environment: &Environment, name: &str) {
    schedules(environment)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"suspend": true}})),
        )
        .await
        .expect("suspended");
}

async fn runs_of(environment: &Environment, schedule: &str) -> Vec<RedisBackup> {
    let list = backups(environment)
        .list(&kube::api::ListParams::default().labels(&format!("redisgitops.dev/backup-schedule={schedule}")))
        .await
        .expect("list");
    let mut runs = list.items;
    runs.sort_by_key(|run| run.spec.scheduled_time.clone());
    runs
}

async fn first_success(environment: &Environment, schedule: &str) -> RedisBackup {
    eventually("a successful backup", Duration::from_secs(60), || async {
        runs_of(environment, schedule)
            .await
            .into_iter()
            .find(|run| phase(run) == Some("Succeeded"))
    })
    .await
}

async fn ready_database(environment: &Environment, name: &str) {
    create_database(environment, name, json!({"memorySize": "100MB"})).await;
    wait_ready(environment, name).await;
}

fn files_of(root: &Path, backup: &RedisBackup) -> Vec<PathBuf> {
    backup
        .status
        .as_ref()
        .and_then(|status| status.files.clone())
        .unwrap_or_default()
        .iter()
        .map(|file| root.join(backup.name_any()).join(&file.name))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_backup_is_a_valid_rdb_and_restores_the_keys_after_a_flush() {
    let environment = start().await;
    let controllers = Controllers::start(&environment);
    let root = tempfile::tempdir().expect("tempdir");
    ready_database(&environment, "cache").await;
    let mut connection = connect(&environment, "cache").await;
    write_keys(&mut connection, 25);

    create_schedule(&environment, "every-two-seconds", schedule_spec(root.path(), json!({}))).await;
    let backup = first_success(&environment, "every-two-seconds").await;
    suspend(&environment, "every-two-seconds").await;

    // One run, named from the schedule, the database and the UTC slot; its files, sizes and location recorded.
    let slot = backup.spec.scheduled_time.clone().expect("slot");
    let stamp: String = slot.chars().filter(char::is_ascii_digit).collect();
    assert_eq!(backup.name_any(), format!("every-two-seconds-cache-{stamp}"));
    assert!(backup.owner_references().is_empty(), "a backup outlives its schedule");
    let status = backup.status.clone().expect("status");
    assert_eq!(
        status.location.as_deref(),
        Some(root.path().join(backup.name_any()).to_str().expect("utf-8"))
    );
    let files = files_of(root.path(), &backup);
    assert!(!files.is_empty(), "files recorded: {status:?}");
    for (file, recorded) in files.iter().zip(status.files.iter().flatten()) {
        assert_eq!(
            std::fs::metadata(file).expect("file exists").len() as i64,
            recorded.size
        );
        check_rdb(file);
    }
    assert_eq!(
        status.total_bytes,
        Some(status.files.iter().flatten().map(|f| f.size).sum())
    );

    // The schedule shows the result.
    let schedule = eventually("the schedule's status", Duration::from_secs(20), || async {
        let schedule = schedules(&environment).get("every-two-seconds").await.ok()?;
        let status = schedule.status.clone()?;
        status.last_successful_time.is_some().then_some(schedule)
    })
    .await;
    let status = schedule.status.expect("status");
    assert!(status.last_schedule_time.is_some());
    assert!(status.last_result.is_some());

    // Flush, restore, and the keys are back.
    redis::cmd("FLUSHALL").query::<()>(&mut connection).expect("FLUSHALL");
    assert_eq!(dbsize(&mut connection), 0);
    create(
        &restores(&environment),
        json!({"apiVersion": "redisgitops.dev/v1alpha1", "kind": "RedisRestore",
               "metadata": {"name": "after-flush", "namespace": NAMESPACE},
               "spec": {"backupName": backup.name_any(), "overwrite": true}}),
    )
    .await;
    let restore = eventually("the restore to finish", Duration::from_secs(60), || async {
        let restore = restores(&environment).get("after-flush").await.ok()?;
        let phase = restore.status.as_ref()?.phase.clone()?;
        (phase == "Succeeded" || phase == "Failed").then_some(restore)
    })
    .await;
    let status = restore.status.expect("status");
    assert_eq!(status.phase.as_deref(), Some("Succeeded"), "{status:?}");
    assert_eq!(status.backup_name, Some(backup.name_any()));
    assert_eq!(status.database.as_deref(), Some("cache"));
    let mut connection = connect(&environment, "cache").await;
    assert_eq!(dbsize(&mut connection), 25);
    let value: String = redis::cmd("GET").arg("key-7").query(&mut connection).expect("GET");
    assert_eq!(value, "value-7");

    // A database that holds keys is not overwritten without spec.overwrite.
    create(
        &restores(&environment),
        json!({"apiVersion": "redisgitops.dev/v1alpha1", "kind": "RedisRestore",
               "metadata": {"name": "refused", "namespace": NAMESPACE},
               "spec": {"backupName": backup.name_any()}}),
    )
    .await;
    let refused = eventually("the restore to be refused", Duration::from_secs(120), || async {
        let status = restores(&environment).get("refused").await.ok()?.status?;
        (status.phase.as_deref() == Some("Failed")).then_some(status)
    })
    .await;
    assert_eq!(refused.failure_reason.as_deref(), Some("TargetNotEmpty"));
    assert!(
        refused
            .message
            .as_deref()
            .is_some_and(|m| m.contains("set spec.overwrite: true")),
        "{refused:?}"
    );
    assert_eq!(dbsize(&mut connection), 25);

    // One-shot: a restarted agent does not import again.
    let imports_before = count_requests(&environment, "/actions/import");
    controllers.kill().await;
    let controllers = Controllers::start(&environment);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        count_requests(&environment, "/actions/import"),
        imports_before,
        "a finished restore never runs again"
    );
    controllers.kill().await;
    environment.stop().await;
}

fn count_requests(environment: &Environment, suffix: &str) -> usize {
    environment
        .sandbox
        .emulator
        .requests()
        .all()
        .iter()
        .filter(|request| request.method == "POST" && request.path.ends_with(suffix))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_the_last_good_backup_while_runs_fail() {
    let environment = start().await;
    let controllers = Controllers::start(&environment);
    let root = tempfile::tempdir().expect("tempdir");
    let location = root.path().join("location");
    std::fs::create_dir(&location).expect("location");
    ready_database(&environment, "cache").await;
    write_keys(&mut connect(&environment, "cache").await, 3);
    create_schedule(
        &environment,
        "kept",
        schedule_spec(&location, json!({"retention": {"keepLast": 1}})),
    )
    .await;
    let good = first_success(&environment, "kept").await;

    // The location breaks: runs fail, and the only good backup stays with its files.
    let away = root.path().join("away");
    std::fs::rename(&location, &away).expect("moved away");
    std::fs::write(&location, "not a directory").expect("blocked");
    let failed = eventually("two failed runs", Duration::from_secs(60), || async {
        let runs = runs_of(&environment, "kept").await;
        let failed: Vec<RedisBackup> = runs.into_iter().filter(|run| phase(run) == Some("Failed")).collect();
        (failed.len() >= 2).then_some(failed)
    })
    .await;
    assert!(
        failed
            .iter()
            .all(|run| run.status.as_ref().and_then(|s| s.failure_reason.clone()).is_some())
    );
    let runs = runs_of(&environment, "kept").await;
    assert!(
        runs.iter().any(|run| run.name_any() == good.name_any()),
        "the last good backup is kept while runs fail: {:?}",
        runs.iter()
            .map(|r| (r.name_any(), phase(r).map(str::to_string)))
            .collect::<Vec<_>>()
    );

    // The location is back: a new success prunes the older good one (files first, then the object).
    std::fs::remove_file(&location).expect("unblocked");
    std::fs::rename(&away, &location).expect("moved back");
    let newer = eventually(
        "a newer success and the older one pruned",
        Duration::from_secs(60),
        || async {
            let runs = runs_of(&environment, "kept").await;
            let newer = runs
                .iter()
                .find(|run| phase(run) == Some("Succeeded") && run.name_any() != good.name_any())?
                .clone();
            let pruned = !runs.iter().any(|run| run.name_any() == good.name_any());
            pruned.then_some(newer)
        },
    )
    .await;
    assert!(
        !location.join(good.name_any()).exists(),
        "the pruned run's files are deleted"
    );
    assert!(location.join(newer.name_any()).is_dir(), "the new run's files stay");
    suspend(&environment, "kept").await;

    // Deleting the schedule deletes no backup.
    schedules(&environment)
        .delete("kept", &DeleteParams::default())
        .await
        .expect("deleted");
    eventually("the schedule gone", Duration::from_secs(10), || async {
        schedules(&environment)
            .get_opt("kept")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    assert!(
        backups(&environment)
            .get_opt(&newer.name_any())
            .await
            .expect("read")
            .is_some()
    );
    assert!(location.join(newer.name_any()).is_dir());
    controllers.kill().await;
    environment.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_agent_adopts_the_run_it_started_instead_of_starting_another() {
    let environment = start().await;
    let root = tempfile::tempdir().expect("tempdir");
    ready_database(&environment, "cache").await;
    write_keys(&mut connect(&environment, "cache").await, 5);

    // What an agent did before it was killed: the run of a slot created, marked Running, its export requested,
    // and nothing more recorded.
    let name = "adopted-cache-20260101000000";
    create(
        &backups(&environment),
        json!({"apiVersion": "redisgitops.dev/v1alpha1", "kind": "RedisBackup",
               "metadata": {"name": name, "namespace": NAMESPACE,
                            "labels": {"redisgitops.dev/backup-schedule": "adopted", "redisgitops.dev/backup-database": "cache"}},
               "spec": {"database": "cache", "schedule": "adopted", "scheduledTime": "2026-01-01T00:00:00Z",
                        "location": {"mount": {"path": root.path().display().to_string()}}}}),
    )
    .await;
    backups(&environment)
        .patch_status(
            name,
            &PatchParams::apply("redis-gitops/backup").force(),
            &Patch::Apply(json!({"apiVersion": "redisgitops.dev/v1alpha1", "kind": "RedisBackup",
                                 "status": {"phase": "Running", "startTime": "2026-01-01T00:00:01Z"}})),
        )
        .await
        .expect("status");
    std::fs::create_dir(root.path().join(name)).expect("run directory");
    let uid: u64 = wait_ready(&environment, "cache")
        .await
        .status
        .and_then(|s| s.database_uid)
        .and_then(|uid| uid.parse().ok())
        .expect("uid");
    environment
        .rest
        .export_database(
            uid,
            &json!({"type": "mount_point", "path": root.path().join(name).display().to_string()}),
        )
        .await
        .expect("export sent");
    let exports_before = count_requests(&environment, "/actions/export");

    let controllers = Controllers::start(&environment);
    let adopted = eventually("the adopted run to finish", Duration::from_secs(120), || async {
        let backup = backups(&environment).get(name).await.ok()?;
        matches!(phase(&backup), Some("Succeeded" | "Failed")).then_some(backup)
    })
    .await;
    let status = adopted.status.clone().expect("status");
    assert_eq!(status.phase.as_deref(), Some("Succeeded"), "{status:?}");
    assert_eq!(
        count_requests(&environment, "/actions/export"),
        exports_before,
        "one export, not two"
    );
    assert_eq!(
        std::fs::read_dir(root.path().join(name)).expect("dir").count(),
        status.files.iter().flatten().count()
    );
    controllers.kill().await;
    environment.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_proves_a_good_backup_and_catches_a_corrupted_file() {
    let environment = start().await;
    let controllers = Controllers::start(&environment);
    let root = tempfile::tempdir().expect("tempdir");
    ready_database(&environment, "cache").await;
    write_keys(&mut connect(&environment, "cache").await, 10);
    for name in ["good", "bad"] {
        create(
            &backups(&environment),
            json!({"apiVersion": "redisgitops.dev/v1alpha1", "kind": "RedisBackup",
                   "metadata": {"name": name, "namespace": NAMESPACE},
                   "spec": {"database": "cache", "location": {"mount": {"path": root.path().display().to_string()}}}}),
        )
        .await;
    }
    for name in ["good", "bad"] {
        let backup = eventually("the on-demand backup", Duration::from_secs(120), || async {
            let backup = backups(&environment).get(name).await.ok()?;
            (phase(&backup) == Some("Succeeded")).then_some(backup)
        })
        .await;
        if name == "bad" {
            for file in files_of(root.path(), &backup) {
                std::fs::write(&file, b"REDIS0011 this is not a snapshot any more").expect("corrupted");
            }
        }
        backups(&environment)
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"verify": true}})),
            )
            .await
            .expect("verify asked");
    }
    let verified = |name: &'static str| {
        let environment = &environment;
        async move {
            eventually("the verification", Duration::from_secs(60), || async {
                let backup = backups(environment).get(name).await.ok()?;
                let status = backup.status?;
                Some((status.verified?, status.verify_message.unwrap_or_default()))
            })
            .await
        }
    };
    let (good, good_message) = verified("good").await;
    assert!(good, "{good_message}");
    let (bad, bad_message) = verified("bad").await;
    assert!(!bad, "a corrupted file is caught: {bad_message}");
    assert!(
        bad_message.contains("import into a scratch database failed"),
        "{bad_message}"
    );
    // The scratch databases are deleted.
    eventually("the scratch databases gone", Duration::from_secs(120), || async {
        let names: Vec<String> = environment
            .rest
            .databases()
            .await
            .ok()?
            .into_iter()
            .map(|bdb| bdb.name)
            .collect();
        (names == ["cache"]).then_some(())
    })
    .await;
    controllers.kill().await;
    environment.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_shows_the_printer_columns_of_schedules_backups_and_restores() {
    let environment = start().await;
    let controllers = Controllers::start(&environment);
    let root = tempfile::tempdir().expect("tempdir");
    ready_database(&environment, "cache").await;
    create_schedule(&environment, "shown", schedule_spec(root.path(), json!({}))).await;
    let backup = first_success(&environment, "shown").await;
    suspend(&environment, "shown").await;
    create(
        &restores(&environment),
        json!({"apiVersion": "redisgitops.dev/v1alpha1", "kind": "RedisRestore",
               "metadata": {"name": "shown", "namespace": NAMESPACE},
               "spec": {"backupName": backup.name_any(), "overwrite": true}}),
    )
    .await;
    eventually("the restore to succeed", Duration::from_secs(120), || async {
        let restore = restores(&environment).get("shown").await.ok()?;
        (restore.status?.phase? == "Succeeded").then_some(())
    })
    .await;
    let kubeconfig = root.path().join("kubeconfig");
    environment
        .sandbox
        .apiserver
        .write_kubeconfig(&kubeconfig)
        .expect("kubeconfig");
    let get = |resource: &str| {
        let output = std::process::Command::new("kubectl")
            .args(["get", resource, "-n", NAMESPACE])
            .env("KUBECONFIG", &kubeconfig)
            .output()
            .expect("kubectl runs");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let header = |text: &str| {
        text.lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let rbs = get("rbs");
    assert_eq!(header(&rbs), "NAME SCHEDULE LAST SUCCESS LAST RESULT NEXT AGE", "{rbs}");
    assert!(rbs.contains("shown") && rbs.contains("*/2 * * * * *"), "{rbs}");
    let rbk = get("rbk");
    assert_eq!(
        header(&rbk),
        "NAME DATABASE PHASE KEYS SIZE VERIFIED COMPLETED REASON AGE",
        "{rbk}"
    );
    assert!(rbk.contains(&backup.name_any()) && rbk.contains("Succeeded"), "{rbk}");
    let rrs = get("rrs");
    assert_eq!(
        header(&rrs),
        "NAME BACKUP DATABASE PHASE COMPLETED MESSAGE AGE",
        "{rrs}"
    );
    assert!(rrs.contains(&backup.name_any()) && rrs.contains("Succeeded"), "{rrs}");
    controllers.kill().await;
    environment.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_schedule_backs_up_to_the_clusters_s3_endpoint_and_restores_from_it() {
    use redis_gitops_sandbox::s3::S3Server;
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools");
    let s3 = tokio::task::spawn_blocking(move || S3Server::start(&tools))
        .await
        .expect("join")
        .expect("moto_server starts");
    s3.create_bucket("backups").expect("bucket");
    let environment = start().await;
    // What the cluster controller does for `spec.backup.s3.url`; the agent lists the same endpoint.
    environment
        .rest
        .update_cluster(&json!({"s3_url": s3.endpoint}))
        .await
        .expect("s3_url set");
    Api::<redis_gitops::api::RedisEnterpriseCluster>::namespaced(environment.kube.clone(), NAMESPACE)
        .patch(
            "rec",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"backup": {"s3": {"url": s3.endpoint}}}})),
        )
        .await
        .expect("REC patched");
    create(
        &environment.secrets(),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "backup-s3", "namespace": NAMESPACE},
               "stringData": {"AWS_ACCESS_KEY_ID": s3.access_key_id, "AWS_SECRET_ACCESS_KEY": s3.secret_access_key}}),
    )
    .await;
    let controllers = Controllers::start(&environment);
    ready_database(&environment, "cache").await;
    let mut connection = connect(&environment, "cache").await;
    write_keys(&mut connection, 12);
    create_schedule(
        &environment,
        "to-s3",
        json!({"schedule": "*/2 * * * * *", "databases": ["cache"],
               "location": {"s3": {"bucketName": "backups", "subdir": "prod", "regionName": s3.region, "secretName": "backup-s3"}}}),
    )
    .await;
    let backup = first_success(&environment, "to-s3").await;
    suspend(&environment, "to-s3").await;
    let status = backup.status.clone().expect("status");
    assert_eq!(
        status.location,
        Some(format!("s3://backups/prod/{}/", backup.name_any()))
    );
    let files = status.files.clone().unwrap_or_default();
    assert!(
        !files.is_empty() && files.iter().all(|file| file.size > 0 && file.name.ends_with(".rdb.gz")),
        "{files:?}"
    );
    assert_eq!(status.key_count, Some(12), "the key count at backup time");
    let recorded = format!("{:?}", environment.sandbox.emulator.requests().all());
    assert!(
        !recorded.contains(&s3.secret_access_key),
        "no secret in what the cluster logged"
    );
    let shown = serde_json::to_string(&backup).expect("json");
    assert!(!shown.contains(&s3.secret_access_key), "no secret in the RedisBackup");

    redis::cmd("FLUSHALL").query::<()>(&mut connection).expect("FLUSHALL");
    create(
        &restores(&environment),
        json!({"apiVersion": "redisgitops.dev/v1alpha1", "kind": "RedisRestore",
               "metadata": {"name": "from-s3", "namespace": NAMESPACE},
               "spec": {"schedule": "to-s3", "database": "cache"}}),
    )
    .await;
    let status = eventually("the restore from S3", Duration::from_secs(60), || async {
        let status = restores(&environment).get("from-s3").await.ok()?.status?;
        matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")).then_some(status)
    })
    .await;
    assert_eq!(status.phase.as_deref(), Some("Succeeded"), "{status:?}");
    assert_eq!(status.key_count, Some(12));
    assert_eq!(dbsize(&mut connect(&environment, "cache").await), 12);
    controllers.kill().await;
    environment.stop().await;
}
