//! Backups in the Redis Enterprise emulator, through its REST API with real redis-server databases: export to a
//! mount point, to S3 (a real moto server on loopback) and to SFTP (a real sshd), the files checked with
//! `redis-check-rdb` after gunzip, imported back into a flushed database; each failure reason; 409 while busy; the
//! cluster's periodic backup with a fast trigger; `/v1/bdbs/stats/last`.

#[allow(dead_code)]
#[path = "sandbox_enterprise/support.rs"]
mod support;

#[allow(dead_code)]
#[path = "source_git/servers.rs"]
mod servers;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use redis_gitops_sandbox::enterprise::EmulatorConfig;
use redis_gitops_sandbox::s3::S3Server;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use support::{Harness, TempDir, redis_connect, redis_get, redis_set};

const MB100: u64 = 100 * 1024 * 1024;

/// Writes `count` keys `key:<i>` into database `db` (its view) and returns a connection.
async fn fill(harness: &Harness, db: &Value, password: &str, prefix: &str, count: usize) -> redis::Connection {
    let port = db["port"].as_u64().expect("port") as u16;
    let ip = harness.resolve(&format!("{}.ns.svc", db["name"].as_str().expect("name")));
    let mut connection = redis_connect(ip, port, Some(password)).expect("connect");
    for index in 0..count {
        redis_set(&mut connection, &format!("{prefix}:{index}"), &format!("value {index}"));
    }
    connection
}

fn dbsize(connection: &mut redis::Connection) -> u64 {
    redis::cmd("DBSIZE").query(connection).expect("DBSIZE")
}

fn flush(connection: &mut redis::Connection) {
    let _: () = redis::cmd("FLUSHALL").query(connection).expect("FLUSHALL");
}

/// gunzips `gz` into a file and runs `redis-check-rdb` on it.
fn check_rdb(gz: &[u8], dir: &Path) {
    let mut gunzip = Command::new("gzip")
        .args(["-dc"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run gzip");
    let mut stdin = gunzip.stdin.take().expect("gzip stdin");
    let input = gz.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = gunzip.wait_with_output().expect("gzip output");
    writer.join().expect("writer thread").expect("feed gzip");
    assert!(output.status.success(), "the file is valid gzip");
    assert!(output.stdout.starts_with(b"REDIS"), "the content is an RDB file");
    let rdb = dir.join("check.rdb");
    std::fs::write(&rdb, &output.stdout).expect("write the RDB");
    let checked = Command::new("redis-check-rdb")
        .arg(&rdb)
        .output()
        .expect("run redis-check-rdb");
    let text = String::from_utf8_lossy(&checked.stdout);
    assert!(
        checked.status.success() && text.contains("RDB looks OK"),
        "redis-check-rdb: {text}"
    );
    let _ = std::fs::remove_file(&rdb);
}

async fn post_action(harness: &Harness, uid: u64, action: &str, body: Value) -> support::Answer {
    harness
        .call(Method::POST, &format!("/v1/bdbs/{uid}/actions/{action}"), Some(body))
        .await
}

/// Runs an export or import, waits for its action, and returns (action status, bdb view).
async fn run_action(harness: &Harness, uid: u64, action: &str, body: Value) -> (String, Value) {
    let answer = post_action(harness, uid, action, body).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let action = harness
        .wait_action(answer.body["action_uid"].as_str().expect("action_uid"))
        .await;
    let view = harness.call(Method::GET, &format!("/v1/bdbs/{uid}"), None).await;
    (action["status"].as_str().unwrap_or_default().to_string(), view.body)
}

fn mount(path: &Path) -> Value {
    json!({"type": "mount_point", "path": path.display().to_string()})
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(Result::ok).map(|entry| entry.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mount_point_export_import_and_failure_reasons() {
    let harness = Harness::new();
    harness.bootstrap_cluster(1).await;
    let backups = TempDir::new("mount-backups");
    let orders = harness
        .create_database(json!({"name": "orders", "memory_size": MB100, "authentication_redis_pass": "o"}))
        .await;
    let uid = orders["uid"].as_u64().expect("uid");
    let mut connection = fill(&harness, &orders, "o", "order", 50).await;

    // Export: one gzip RDB per shard, named with the database name and a timestamp.
    let (status, view) = run_action(&harness, uid, "export", json!({"export_location": mount(&backups.0)})).await;
    assert_eq!(status, "completed", "{view}");
    assert_eq!(
        (view["export_status"].as_str(), view["export_progress"].as_f64()),
        (Some("succeeded"), Some(100.0))
    );
    let files = files_in(&backups.0);
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().and_then(|n| n.to_str()).expect("name").to_string();
    assert!(
        name.starts_with(&format!("orders_{uid}_")) && name.ends_with("_shard-1.rdb.gz"),
        "{name}"
    );
    check_rdb(
        &std::fs::read(&files[0]).expect("read the export"),
        harness.emulator.work_dir(),
    );

    // Import into the flushed database: the keys are back.
    flush(&mut connection);
    assert_eq!(dbsize(&mut connection), 0);
    let source = json!({"type": "mount_point", "path": files[0].display().to_string()});
    let (status, view) = run_action(&harness, uid, "import", json!({"dataset_import_sources": [source]})).await;
    assert_eq!(status, "completed", "{view}");
    assert_eq!(view["import_status"], "succeeded");
    let mut connection = fill(&harness, &orders, "o", "unused", 0).await;
    assert_eq!(dbsize(&mut connection), 50);
    assert_eq!(redis_get(&mut connection, "order:7").as_deref(), Some("value 7"));

    // Two sources (one per shard file) are merged into one database.
    let users = harness
        .create_database(json!({"name": "users", "memory_size": MB100, "authentication_redis_pass": "u"}))
        .await;
    let users_uid = users["uid"].as_u64().expect("uid");
    fill(&harness, &users, "u", "user", 20).await;
    let users_dir = TempDir::new("users-backups");
    let (status, _) = run_action(
        &harness,
        users_uid,
        "export",
        json!({"export_location": mount(&users_dir.0)}),
    )
    .await;
    assert_eq!(status, "completed");
    let users_file = files_in(&users_dir.0).remove(0);
    let sources = json!([
        {"type": "mount_point", "path": files[0].display().to_string()},
        {"type": "mount_point", "path": users_dir.0.display().to_string(),
         "filename": users_file.file_name().and_then(|n| n.to_str()).expect("name")},
    ]);
    let (status, view) = run_action(
        &harness,
        users_uid,
        "import",
        json!({"dataset_import_sources": sources}),
    )
    .await;
    assert_eq!(status, "completed", "{view}");
    let mut users_connection = fill(&harness, &users, "u", "unused", 0).await;
    assert_eq!(dbsize(&mut users_connection), 70, "both files' keys");
    assert_eq!(redis_get(&mut users_connection, "user:3").as_deref(), Some("value 3"));
    assert_eq!(redis_get(&mut users_connection, "order:3").as_deref(), Some("value 3"));

    // 409 while another action runs on the bdb.
    harness.emulator.faults().hold_actions(true);
    let held = post_action(&harness, uid, "export", json!({"export_location": mount(&backups.0)})).await;
    assert_eq!(held.status, StatusCode::OK);
    let busy = post_action(&harness, uid, "export", json!({"export_location": mount(&backups.0)})).await;
    assert_eq!(
        (busy.status, busy.error_code()),
        (StatusCode::CONFLICT, "busy"),
        "{busy:?}"
    );
    let busy = post_action(&harness, uid, "import", json!({"dataset_import_sources": [source]})).await;
    assert_eq!(busy.status, StatusCode::CONFLICT, "{busy:?}");
    harness.emulator.faults().hold_actions(false);
    harness
        .wait_action(held.body["action_uid"].as_str().expect("uid"))
        .await;

    // Required keys: 400 invalid_schema, before anything runs.
    for location in [
        json!({"type": "s3", "bucket_name": "b", "access_key_id": "a"}),
        json!({"type": "sftp"}),
        json!({"type": "mount_point"}),
    ] {
        let refused = post_action(&harness, uid, "export", json!({"export_location": location})).await;
        assert_eq!(
            (refused.status, refused.error_code()),
            (StatusCode::BAD_REQUEST, "invalid_schema"),
            "{refused:?}"
        );
    }

    // Failure reasons, as the cluster reports them.
    let missing = backups.0.join("missing");
    let (status, view) = run_action(&harness, uid, "export", json!({"export_location": mount(&missing)})).await;
    assert_eq!(
        (status.as_str(), view["export_failure_reason"].as_str()),
        ("failed", Some("wrong-file-path"))
    );
    let read_only = TempDir::new("read-only");
    std::fs::set_permissions(&read_only.0, std::os::unix::fs::PermissionsExt::from_mode(0o555)).expect("chmod");
    let (status, view) = run_action(&harness, uid, "export", json!({"export_location": mount(&read_only.0)})).await;
    assert_eq!(
        (status.as_str(), view["export_failure_reason"].as_str()),
        ("failed", Some("no-permission"))
    );
    assert!(files_in(&read_only.0).is_empty(), "nothing written");
    let reset = harness
        .call(
            Method::PUT,
            &format!("/v1/bdbs/{uid}/actions/export_reset_status"),
            None,
        )
        .await;
    assert_eq!(reset.body["export_status"], "idle", "{reset:?}");
    assert!(reset.body.get("export_failure_reason").is_none(), "{reset:?}");

    let absent = json!({"type": "mount_point", "path": backups.0.join("absent.rdb.gz").display().to_string()});
    let (status, view) = run_action(&harness, uid, "import", json!({"dataset_import_sources": [absent]})).await;
    assert_eq!(
        (status.as_str(), view["import_failure_reason"].as_str()),
        ("failed", Some("download-error"))
    );
    let mut gz = std::fs::read(&files[0]).expect("read the export");
    let cut = gz.len() / 2;
    gz.truncate(cut);
    let corrupted = backups.0.join("corrupted.rdb.gz");
    std::fs::write(&corrupted, &gz).expect("write a corrupted copy");
    let source = json!({"type": "mount_point", "path": corrupted.display().to_string()});
    let (status, view) = run_action(&harness, uid, "import", json!({"dataset_import_sources": [source]})).await;
    assert_eq!(
        (status.as_str(), view["import_failure_reason"].as_str()),
        ("failed", Some("file-corrupted"))
    );
    assert_eq!(view["status"], "active");

    // A full disk is a general error (a 64 KiB tmpfs, where mounting is allowed).
    let small = TempDir::new("full-disk");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&small.0)
        .status()
        .is_ok_and(|status| status.success());
    if mounted {
        let mut big = fill(&harness, &orders, "o", "big", 0).await;
        let value = "x".repeat(200_000);
        let _: () = redis::cmd("SET")
            .arg("big:blob")
            .arg(&value)
            .query(&mut big)
            .expect("SET");
        let _: () = redis::cmd("SET")
            .arg("big:blob2")
            .arg(value.repeat(2))
            .query(&mut big)
            .expect("SET");
        let noise: Vec<u8> = (0..400_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let _: () = redis::cmd("SET")
            .arg("big:noise")
            .arg(noise)
            .query(&mut big)
            .expect("SET");
        let (status, view) = run_action(&harness, uid, "export", json!({"export_location": mount(&small.0)})).await;
        let _ = Command::new("umount").arg(&small.0).status();
        assert_eq!(
            (status.as_str(), view["export_failure_reason"].as_str()),
            ("failed", Some("general-error"))
        );
    } else {
        eprintln!("tmpfs cannot be mounted here: the full-disk case is not exercised");
    }
}

/// A minimal HTTP/1.1 GET against the moto server (unsigned; moto does not check signatures).
fn http_get(endpoint: &str, path: &str) -> (u16, Vec<u8>) {
    let address = endpoint.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).expect("connect to moto");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read");
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").expect("headers end");
    let head = String::from_utf8_lossy(&answer[..split]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let mut body = answer[split + 4..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        let mut decoded = Vec::new();
        let mut rest = body.as_slice();
        while let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..line_end]).trim(), 16).unwrap_or(0);
            if size == 0 {
                break;
            }
            decoded.extend_from_slice(&rest[line_end + 2..line_end + 2 + size]);
            rest = &rest[line_end + 2 + size + 2..];
        }
        body = decoded;
    }
    (status, body)
}

fn tools_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_export_and_import_through_moto() {
    let s3 = tokio::task::spawn_blocking(|| S3Server::start(&tools_dir()))
        .await
        .expect("join")
        .expect("moto_server starts");
    s3.create_bucket("backups").expect("create the bucket");
    let harness = Harness::new();
    harness.bootstrap_cluster(1).await;
    let set = harness
        .call(Method::PUT, "/v1/cluster", Some(json!({"s3_url": s3.endpoint})))
        .await;
    assert_eq!(set.status, StatusCode::OK, "{set:?}");
    assert_eq!(set.body["s3_url"], s3.endpoint.as_str());
    let db = harness
        .create_database(json!({"name": "carts", "memory_size": MB100, "authentication_redis_pass": "c"}))
        .await;
    let uid = db["uid"].as_u64().expect("uid");
    let mut connection = fill(&harness, &db, "c", "cart", 30).await;
    let location = json!({"type": "s3", "bucket_name": "backups", "subdir": "runs/slot-1",
        "region_name": s3.region, "access_key_id": s3.access_key_id, "secret_access_key": s3.secret_access_key});
    let (status, view) = run_action(&harness, uid, "export", json!({"export_location": location})).await;
    assert_eq!(status, "completed", "{view}");
    assert_eq!(view["export_status"], "succeeded");

    let (listed, body) = http_get(&s3.endpoint, "/backups?prefix=runs/slot-1/");
    assert_eq!(listed, 200);
    let listing = String::from_utf8_lossy(&body).to_string();
    let keys: Vec<&str> = listing
        .split("<Key>")
        .skip(1)
        .filter_map(|part| part.split("</Key>").next())
        .collect();
    assert_eq!(keys.len(), 1, "{listing}");
    let key = keys[0].to_string();
    assert!(
        key.starts_with(&format!("runs/slot-1/carts_{uid}_")) && key.ends_with(".rdb.gz"),
        "{key}"
    );
    let (fetched, gz) = http_get(&s3.endpoint, &format!("/backups/{key}"));
    assert_eq!(fetched, 200);
    check_rdb(&gz, harness.emulator.work_dir());

    flush(&mut connection);
    let mut source = location.clone();
    source["filename"] = json!(key.trim_start_matches("runs/slot-1/"));
    let (status, view) = run_action(&harness, uid, "import", json!({"dataset_import_sources": [source]})).await;
    assert_eq!(status, "completed", "{view}");
    let mut connection = fill(&harness, &db, "c", "unused", 0).await;
    assert_eq!(dbsize(&mut connection), 30);

    // A missing bucket is a wrong path; a missing object cannot be downloaded.
    let mut missing = location.clone();
    missing["bucket_name"] = json!("no-such-bucket");
    let (status, view) = run_action(&harness, uid, "export", json!({"export_location": missing})).await;
    assert_eq!(
        (status.as_str(), view["export_failure_reason"].as_str()),
        ("failed", Some("wrong-file-path"))
    );
    let mut absent = location.clone();
    absent["filename"] = json!("absent.rdb.gz");
    let (status, view) = run_action(&harness, uid, "import", json!({"dataset_import_sources": [absent]})).await;
    assert_eq!(
        (status.as_str(), view["import_failure_reason"].as_str()),
        ("failed", Some("download-error"))
    );
    let logged = format!("{:?}", harness.emulator.requests().all());
    assert!(
        !logged.contains(&s3.secret_access_key),
        "the request log carries no S3 secret"
    );
}

/// sshd with the SFTP subsystem on a free port, one authorized key.
struct SftpServer {
    child: Child,
    port: u16,
    user: String,
    private_key: String,
    _dir: tempfile::TempDir,
}

impl SftpServer {
    fn start() -> SftpServer {
        let dir = tempfile::tempdir().expect("sshd dir");
        let (_, _) = servers::generate_key(dir.path(), "host_key");
        let (private_key, public_key) = servers::generate_key(dir.path(), "client_key");
        let authorized = dir.path().join("authorized_keys");
        std::fs::write(&authorized, format!("{public_key}\n")).expect("authorized_keys");
        let user = String::from_utf8_lossy(&Command::new("id").arg("-un").output().expect("id").stdout)
            .trim()
            .to_string();
        let port = servers::free_port();
        let config = dir.path().join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "ListenAddress 127.0.0.1\nPort {port}\nHostKey {}\nPidFile none\nAuthorizedKeysFile {}\n\
                 StrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
                 PermitRootLogin prohibit-password\nUsePAM no\nSubsystem sftp internal-sftp\nLogLevel ERROR\n",
                dir.path().join("host_key").display(),
                authorized.display()
            ),
        )
        .expect("sshd_config");
        let _ = std::fs::create_dir_all("/run/sshd");
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sshd (package openssh-server)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "sshd never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
        SftpServer {
            child,
            port,
            user,
            private_key,
            _dir: dir,
        }
    }

    fn url(&self, path: &Path) -> String {
        format!("sftp://{}@127.0.0.1:{}{}/", self.user, self.port, path.display())
    }
}

impl Drop for SftpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_export_and_import_through_sshd() {
    let sftp = SftpServer::start();
    let harness = Harness::new();
    harness.bootstrap_cluster(1).await;
    let db = harness
        .create_database(json!({"name": "sessions", "memory_size": MB100, "authentication_redis_pass": "s"}))
        .await;
    let uid = db["uid"].as_u64().expect("uid");
    let mut connection = fill(&harness, &db, "s", "session", 25).await;
    let remote = TempDir::new("sftp-target");
    let location = json!({"type": "sftp", "sftp_url": sftp.url(&remote.0), "key": sftp.private_key});
    let (status, view) = run_action(&harness, uid, "export", json!({"export_location": location})).await;
    assert_eq!(status, "completed", "{view}");
    let files = files_in(&remote.0);
    assert_eq!(files.len(), 1, "{files:?}");
    check_rdb(&std::fs::read(&files[0]).expect("read"), harness.emulator.work_dir());

    flush(&mut connection);
    let name = files[0].file_name().and_then(|n| n.to_str()).expect("name");
    let source = json!({"type": "sftp", "sftp_url": format!("{}{name}", sftp.url(&remote.0)), "key": sftp.private_key});
    let (status, view) = run_action(&harness, uid, "import", json!({"dataset_import_sources": [source]})).await;
    assert_eq!(status, "completed", "{view}");
    let mut connection = fill(&harness, &db, "s", "unused", 0).await;
    assert_eq!(dbsize(&mut connection), 25);

    let missing = json!({"type": "sftp", "sftp_url": sftp.url(&remote.0.join("missing")), "key": sftp.private_key});
    let (status, view) = run_action(&harness, uid, "export", json!({"export_location": missing})).await;
    assert_eq!(
        (status.as_str(), view["export_failure_reason"].as_str()),
        ("failed", Some("wrong-file-path"))
    );
    let (other_key, _) = servers::generate_key(remote.0.as_path(), "stranger");
    let refused = json!({"type": "sftp", "sftp_url": sftp.url(&remote.0), "key": other_key});
    let (status, view) = run_action(&harness, uid, "export", json!({"export_location": refused})).await;
    assert_eq!(
        (status.as_str(), view["export_failure_reason"].as_str()),
        ("failed", Some("no-permission"))
    );
}

/// Polls the bdb until `check` holds.
async fn wait_bdb(harness: &Harness, uid: u64, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let view = harness.call(Method::GET, &format!("/v1/bdbs/{uid}"), None).await.body;
        if check(&view) {
            return view;
        }
        assert!(Instant::now() < deadline, "bdb {uid} never got {what}: {view}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_backup_runs_retries_and_prunes() {
    let harness = Harness::with_config(EmulatorConfig {
        step_delay: Duration::from_millis(20),
        backup_trigger_interval: Duration::from_millis(200),
        ..EmulatorConfig::default()
    });
    harness.bootstrap_cluster(1).await;
    let root = TempDir::new("periodic");
    let dir = root.0.join("not-yet");
    let refused = harness
        .call(
            Method::POST,
            "/v1/bdbs",
            Some(json!({"name": "ledger", "memory_size": MB100, "backup": true, "backup_location": mount(&dir)})),
        )
        .await;
    assert_eq!(
        (refused.status, refused.error_code()),
        (StatusCode::NOT_ACCEPTABLE, "missing_backup_interval")
    );
    let db = harness
        .create_database(
            json!({"name": "ledger", "memory_size": MB100, "authentication_redis_pass": "l",
            "backup": true, "backup_interval": 1, "backup_history": 1, "backup_location": mount(&dir)}),
        )
        .await;
    let uid = db["uid"].as_u64().expect("uid");
    assert_eq!(
        (db["backup"].as_bool(), db["backup_interval"].as_u64()),
        (Some(true), Some(1))
    );
    fill(&harness, &db, "l", "entry", 10).await;

    // The directory is missing: the backup fails with the cluster's reason, and is retried.
    let failed = wait_bdb(&harness, uid, "a failed backup", |view| {
        view["backup_status"] == "failed"
    })
    .await;
    assert_eq!(failed["backup_failure_reason"], "wrong-file-path", "{failed}");
    assert!(failed.get("last_backup_time").is_none(), "{failed}");
    std::fs::create_dir_all(&dir).expect("create the backup directory");
    // An old backup of this database and a stranger's file: only the first is pruned (backup_history: 1 day).
    let old = dir.join(format!("ledger_{uid}_20200101-000000-000_shard-1.rdb.gz"));
    let stranger = dir.join("ledger_999_20200101-000000-000_shard-1.rdb.gz");
    for file in [&old, &stranger] {
        let written = std::fs::File::create(file).expect("create an old file");
        written
            .set_modified(SystemTime::now() - Duration::from_secs(3 * 86_400))
            .expect("age it");
    }
    let succeeded = wait_bdb(&harness, uid, "a successful backup", |view| {
        view["backup_status"] == "succeeded"
    })
    .await;
    assert_eq!(succeeded["backup_progress"], 100.0);
    assert!(
        succeeded["last_backup_time"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{succeeded}"
    );
    assert!(succeeded.get("backup_failure_reason").is_none(), "{succeeded}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while old.exists() {
        assert!(Instant::now() < deadline, "the old backup was never pruned");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(stranger.exists(), "another database's file stays");
    let ours: Vec<PathBuf> = files_in(&dir)
        .into_iter()
        .filter(|f| f.to_string_lossy().contains(&format!("ledger_{uid}_")))
        .collect();
    assert!(!ours.is_empty(), "{ours:?}");
    check_rdb(&std::fs::read(&ours[0]).expect("read"), harness.emulator.work_dir());

    // Every slot gets its own file (nothing overwritten), and turning backups off stops them.
    let deadline = Instant::now() + Duration::from_secs(15);
    while files_in(&dir).len() < 3 {
        assert!(
            Instant::now() < deadline,
            "no second periodic backup: {:?}",
            files_in(&dir)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A running backup makes the bdb busy (409): retry, as a client must.
    let deadline = Instant::now() + Duration::from_secs(10);
    let updated = loop {
        let answer = harness
            .call(Method::PUT, &format!("/v1/bdbs/{uid}"), Some(json!({"backup": false})))
            .await;
        if answer.status != StatusCode::CONFLICT || Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    };
    assert_eq!(updated.status, StatusCode::OK, "{updated:?}");
    harness
        .wait_action(updated.body["action_uid"].as_str().expect("action"))
        .await;
    wait_bdb(&harness, uid, "no backup running", |view| {
        view["backup_status"] != "exporting"
    })
    .await;
    let reset = harness
        .call(
            Method::PUT,
            &format!("/v1/bdbs/{uid}/actions/backup_reset_status"),
            None,
        )
        .await;
    assert_eq!(reset.status, StatusCode::OK, "{reset:?}");
    assert!(reset.body.get("backup_status").is_none(), "{reset:?}");
    let count = files_in(&dir).len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(files_in(&dir).len(), count, "no backup after backup: false");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_last_reads_the_databases() {
    let harness = Harness::new();
    harness.bootstrap_cluster(1).await;
    let none = harness.call(Method::GET, "/v1/bdbs/stats/last", None).await;
    assert_eq!(none.status, StatusCode::NOT_FOUND, "{none:?}");
    let a = harness
        .create_database(json!({"name": "stats-a", "memory_size": MB100, "authentication_redis_pass": "a"}))
        .await;
    let b = harness
        .create_database(json!({"name": "stats-b", "memory_size": MB100}))
        .await;
    let (a_uid, b_uid) = (a["uid"].as_u64().expect("uid"), b["uid"].as_u64().expect("uid"));
    let mut connection = fill(&harness, &a, "a", "k", 12).await;
    let _: () = redis::cmd("SET")
        .arg("ttl")
        .arg("v")
        .arg("EX")
        .arg(600)
        .query(&mut connection)
        .expect("SET EX");

    let one = harness
        .call(Method::GET, &format!("/v1/bdbs/stats/last/{a_uid}"), None)
        .await;
    assert_eq!(one.status, StatusCode::OK, "{one:?}");
    let stats = &one.body[a_uid.to_string()];
    assert_eq!(stats["no_of_keys"], 13.0, "{stats}");
    assert_eq!(stats["no_of_expires"], 1.0, "{stats}");
    assert!(stats["used_memory"].as_f64().is_some_and(|m| m > 0.0), "{stats}");
    assert!(
        stats["conns"].as_f64().is_some_and(|c| c >= 1.0),
        "our connection is counted: {stats}"
    );
    assert!(
        stats["stime"].as_str().is_some() && stats["etime"].as_str().is_some(),
        "{stats}"
    );

    let filtered = harness
        .call(Method::GET, "/v1/bdbs/stats/last?metrics=no_of_keys,used_memory", None)
        .await;
    assert_eq!(filtered.status, StatusCode::OK, "{filtered:?}");
    let mut keys: Vec<String> = filtered.body[b_uid.to_string()]
        .as_object()
        .expect("stats of b")
        .keys()
        .cloned()
        .collect();
    keys.sort();
    assert_eq!(keys, ["etime", "no_of_keys", "stime", "used_memory"]);
    assert_eq!(filtered.body[a_uid.to_string()]["no_of_keys"], 13.0);
    assert_eq!(filtered.body[b_uid.to_string()]["no_of_keys"], 0.0);
    let unknown = harness.call(Method::GET, "/v1/bdbs/stats/last/99", None).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}
