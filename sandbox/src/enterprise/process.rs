//! The redis-server process manager: renders a database's settings into a `redis.conf` (mode 0600,
//! so the password is not on any command line), starts `redis-server` on the cluster's loopback IP
//! and the database port, waits until it answers, applies live changes (password, maxmemory,
//! eviction, persistence, TLS) with ACL SETUSER / CONFIG SET, and kills it when asked or dropped. A database with
//! modules gets a `loadmodule` line per module (the files the module catalogue resolved); a TLS database listens
//! only on `tls-port` with the certificate dbtls.rs issued, and the emulator talks to it over TLS too.
//!
//! Processes never outlive the emulator: every child is killed when its [`RedisProcess`] is dropped,
//! and every child is spawned from one long-lived thread with `PR_SET_PDEATHSIG = SIGKILL`, so the
//! kernel kills it if the emulator's process dies without running destructors (a crash, SIGKILL).

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use super::dbtls::DatabaseTls;
use super::modules::LoadedModule;
use super::resp::{RespConnection, RespError, RespValue};

/// How long a starting redis-server may take to answer PING.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// How a database persists its data (bdb `data_persistence` + `aof_policy` + `snapshot_policy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Persistence {
    /// No persistence (`data_persistence: disabled`).
    Disabled,
    /// Append-only file; `always` is `appendfsync-always`, else every second.
    Aof {
        /// fsync on every write.
        always: bool,
    },
    /// RDB snapshots, each rule `(secs, writes)`.
    Snapshot(Vec<(u64, u64)>),
}

/// Everything redis-server needs to run one database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// The address to bind (the cluster's loopback IP).
    pub ip: IpAddr,
    /// The database port.
    pub port: u16,
    /// The default user's passwords (empty: no password).
    pub passwords: Vec<String>,
    /// `maxmemory` in bytes (0: unlimited).
    pub max_memory: u64,
    /// `maxmemory-policy`.
    pub eviction_policy: String,
    /// Persistence mode.
    pub persistence: Persistence,
    /// The working directory (RDB, AOF, log).
    pub dir: PathBuf,
    /// The modules to load at start (`loadmodule`); they cannot change while the process runs.
    pub modules: Vec<LoadedModule>,
    /// TLS for clients (`tls_mode: enabled`): the database listens on `tls-port` only.
    pub tls: Option<DatabaseTls>,
}

impl RedisSettings {
    /// The socket address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }

    /// The first password, used by the emulator to talk to the process.
    pub fn admin_password(&self) -> Option<&str> {
        self.passwords.first().map(String::as_str)
    }

    /// An authenticated connection (over TLS for a TLS database).
    pub async fn connect(&self) -> Result<RespConnection, RespError> {
        RespConnection::connect_with(
            self.addr(),
            self.admin_password(),
            self.tls.as_ref().map(|tls| tls.client.clone()),
        )
        .await
    }
}

/// A redis-server process failure.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// redis-server is not installed.
    #[error("unable to run {binary}: {source} (install it with `apt-get install redis-server`)")]
    NotInstalled {
        /// The program that was run.
        binary: PathBuf,
        /// The spawn error.
        source: std::io::Error,
    },
    /// The config file or working directory could not be written.
    #[error("failed to write {path}: {source}")]
    Files {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The process could not be spawned.
    #[error("failed to start redis-server for {addr}: {source}")]
    Spawn {
        /// The database address.
        addr: SocketAddr,
        /// The spawn error.
        source: std::io::Error,
    },
    /// The process exited while starting.
    #[error("redis-server for {addr} exited while starting ({status}); log: {log_tail}")]
    ExitedEarly {
        /// The database address.
        addr: SocketAddr,
        /// Its exit status.
        status: ExitStatus,
        /// The end of its log file.
        log_tail: String,
    },
    /// The process did not answer PING in time.
    #[error("redis-server for {addr} did not answer within {START_TIMEOUT:?}: {last_error}")]
    NotReady {
        /// The database address.
        addr: SocketAddr,
        /// The last connection error.
        last_error: String,
    },
    /// A command to the running process failed.
    #[error("failed to apply a change to the database at {addr}: {source}")]
    Command {
        /// The database address.
        addr: SocketAddr,
        /// The client error.
        source: RespError,
    },
}

impl ProcessError {
    /// A stable category (the variant name), for logs and metric labels.
    pub fn category(&self) -> &'static str {
        match self {
            Self::NotInstalled { .. } => "NotInstalled",
            Self::Files { .. } => "Files",
            Self::Spawn { .. } => "Spawn",
            Self::ExitedEarly { .. } => "ExitedEarly",
            Self::NotReady { .. } => "NotReady",
            Self::Command { .. } => "Command",
        }
    }
}

/// Quotes a redis.conf argument (double quotes, with `\\`, `\"` and `\xHH` escapes).
fn quote(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for byte in value.bytes() {
        match byte {
            b'"' => quoted.push_str("\\\""),
            b'\\' => quoted.push_str("\\\\"),
            0x20..=0x7e => quoted.push(byte as char),
            other => quoted.push_str(&format!("\\x{other:02x}")),
        }
    }
    quoted.push('"');
    quoted
}

/// The ACL rule list of the default user for these passwords.
fn default_user_rules(passwords: &[String]) -> Vec<String> {
    let mut rules = vec!["on".to_string()];
    if passwords.is_empty() {
        rules.push("nopass".to_string());
    }
    rules.extend(passwords.iter().map(|password| format!(">{password}")));
    rules.extend(["~*", "&*", "+@all"].map(str::to_string));
    rules
}

/// The `save` lines for a persistence mode.
fn save_rules(persistence: &Persistence) -> String {
    match persistence {
        Persistence::Snapshot(rules) if !rules.is_empty() => rules
            .iter()
            .map(|(secs, writes)| format!("{secs} {writes}"))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// Renders the redis.conf of a database (pure: unit-tested).
pub fn render_config(settings: &RedisSettings, load_aof: bool) -> String {
    let dir = settings.dir.display().to_string();
    let (appendonly, appendfsync) = match &settings.persistence {
        Persistence::Aof { always } if load_aof => ("yes", if *always { "always" } else { "everysec" }),
        _ => ("no", "everysec"),
    };
    let user_rules = default_user_rules(&settings.passwords)
        .iter()
        .map(|rule| quote(rule))
        .collect::<Vec<_>>()
        .join(" ");
    let mut lines = vec![format!("bind {}", settings.ip)];
    match &settings.tls {
        None => lines.push(format!("port {}", settings.port)),
        Some(tls) => lines.extend([
            "port 0".to_string(),
            format!("tls-port {}", settings.port),
            format!("tls-cert-file {}", quote(&tls.cert_file.display().to_string())),
            format!("tls-key-file {}", quote(&tls.key_file.display().to_string())),
            format!("tls-ca-cert-file {}", quote(&tls.ca_file.display().to_string())),
            "tls-auth-clients no".to_string(),
        ]),
    }
    for module in &settings.modules {
        let mut line = format!("loadmodule {}", quote(&module.file.display().to_string()));
        for arg in &module.args {
            line.push(' ');
            line.push_str(&quote(arg));
        }
        lines.push(line);
    }
    lines.extend([
        "protected-mode no".to_string(),
        "daemonize no".to_string(),
        format!("dir {}", quote(&dir)),
        "dbfilename dump.rdb".to_string(),
        format!("logfile {}", quote(&format!("{dir}/redis.log"))),
        format!("user default {user_rules}"),
        format!("maxmemory {}", settings.max_memory),
        format!("maxmemory-policy {}", settings.eviction_policy),
        format!("appendonly {appendonly}"),
        format!("appendfsync {appendfsync}"),
        format!("save {}", quote(&save_rules(&settings.persistence))),
    ]);
    lines.join("\n") + "\n"
}

/// A request to the spawner thread.
struct SpawnRequest {
    command: Command,
    reply: tokio::sync::oneshot::Sender<std::io::Result<Child>>,
}

/// The long-lived thread that spawns every child. `PR_SET_PDEATHSIG` fires when the *thread* that
/// forked the child exits, so children are forked from a thread that lives as long as the process.
fn spawner() -> &'static Mutex<mpsc::Sender<SpawnRequest>> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (sender, receiver) = mpsc::channel::<SpawnRequest>();
        let spawned = std::thread::Builder::new()
            .name("redis-spawner".to_string())
            .spawn(move || {
                for mut request in receiver {
                    // Nobody waits for this child any more (the starting task was aborted):
                    // kill it rather than leave it running unowned.
                    if let Err(Ok(mut child)) = request.reply.send(request.command.spawn()) {
                        let _ = child.kill();
                        let _ = child.wait();
                    }
                }
            });
        if let Err(error) = spawned {
            tracing::error!(%error, "failed to start the redis-server spawner thread");
        }
        Mutex::new(sender)
    })
}

/// Spawns `command` from the spawner thread, with `PR_SET_PDEATHSIG = SIGKILL` in the child.
async fn spawn_child(mut command: Command) -> std::io::Result<Child> {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs between fork and exec and only calls the async-signal-safe
    // functions prctl, getppid and _exit.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl: then nobody would kill us.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let (reply, answer) = tokio::sync::oneshot::channel();
    spawner()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .send(SpawnRequest { command, reply })
        .map_err(|_| std::io::Error::other("the redis-server spawner thread is gone"))?;
    answer
        .await
        .map_err(|_| std::io::Error::other("the redis-server spawner thread dropped the request"))?
}

/// A running redis-server; killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct RedisProcess {
    child: Child,
    settings: RedisSettings,
}

impl RedisProcess {
    /// Writes the config and starts redis-server; returns once it answers PING with the password.
    /// With `load_aof` false an AOF database starts without its AOF (used to load an imported RDB).
    pub async fn start(binary: &Path, settings: RedisSettings, load_aof: bool) -> Result<Self, ProcessError> {
        let files_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ProcessError::Files { path, source }
        };
        std::fs::create_dir_all(&settings.dir).map_err(files_error(&settings.dir))?;
        let config_path = settings.dir.join("redis.conf");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&config_path)
            .map_err(files_error(&config_path))?;
        file.write_all(render_config(&settings, load_aof).as_bytes())
            .map_err(files_error(&config_path))?;
        drop(file);

        let mut command = Command::new(binary);
        command
            .arg(&config_path)
            .current_dir(&settings.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = spawn_child(command).await.map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                ProcessError::NotInstalled {
                    binary: binary.to_path_buf(),
                    source,
                }
            } else {
                ProcessError::Spawn {
                    addr: settings.addr(),
                    source,
                }
            }
        })?;
        let mut process = Self { child, settings };
        process.wait_ready().await?;
        Ok(process)
    }

    async fn wait_ready(&mut self) -> Result<(), ProcessError> {
        let addr = self.settings.addr();
        let started = Instant::now();
        let mut last_error = String::from("not tried");
        while started.elapsed() < START_TIMEOUT {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(ProcessError::ExitedEarly {
                    addr,
                    status,
                    log_tail: self.log_tail(),
                });
            }
            match self.connect().await {
                Ok(mut connection) => match connection.command(&["PING"]).await {
                    Ok(_) => return Ok(()),
                    Err(error) => last_error = error.to_string(),
                },
                Err(error) => last_error = error.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Err(ProcessError::NotReady { addr, last_error })
    }

    /// The last lines of the process's log file.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.settings.dir.join("redis.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(5)..].join(" | ")
    }

    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// An authenticated connection to the process.
    pub async fn connect(&self) -> Result<RespConnection, RespError> {
        self.settings.connect().await
    }

    /// Records the settings the process now runs with (after [`apply_settings`]).
    pub fn set_settings(&mut self, settings: RedisSettings) {
        self.settings = settings;
    }

    /// Whether the process has exited (reaps it if so).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends SIGKILL (used by fault injection: the process dies as if crashed).
    pub fn kill_signal(&self) -> std::io::Result<()> {
        // SAFETY: kill(2) with a pid we own (our child, not yet reaped while `self` exists).
        let result = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGKILL) };
        if result != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Kills the process and reaps it.
    pub fn kill(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs one command on the database at `settings` (authenticating with its first password).
async fn run(settings: &RedisSettings, args: &[&str]) -> Result<RespValue, ProcessError> {
    let addr = settings.addr();
    let mut connection = settings
        .connect()
        .await
        .map_err(|source| ProcessError::Command { addr, source })?;
    connection
        .command(args)
        .await
        .map_err(|source| ProcessError::Command { addr, source })
}

/// Applies the difference between `old` (what the process runs with) and `new` to a running
/// process: memory, eviction, persistence and passwords. IP, port and directory cannot change live.
pub async fn apply_settings(old: &RedisSettings, new: &RedisSettings) -> Result<(), ProcessError> {
    if new.max_memory != old.max_memory {
        run(old, &["CONFIG", "SET", "maxmemory", &new.max_memory.to_string()]).await?;
    }
    if new.eviction_policy != old.eviction_policy {
        run(old, &["CONFIG", "SET", "maxmemory-policy", &new.eviction_policy]).await?;
    }
    if new.persistence != old.persistence {
        let (appendonly, appendfsync) = match &new.persistence {
            Persistence::Aof { always: true } => ("yes", "always"),
            Persistence::Aof { always: false } => ("yes", "everysec"),
            _ => ("no", "everysec"),
        };
        run(old, &["CONFIG", "SET", "appendfsync", appendfsync]).await?;
        run(old, &["CONFIG", "SET", "appendonly", appendonly]).await?;
        run(old, &["CONFIG", "SET", "save", &save_rules(&new.persistence)]).await?;
    }
    if new.tls != old.tls {
        apply_tls(old, new).await?;
    }
    if new.passwords != old.passwords {
        // Last: the commands above authenticate with the old password.
        let old = &RedisSettings {
            tls: new.tls.clone(),
            ..old.clone()
        };
        let rules = default_user_rules(&new.passwords);
        let mut args = vec!["ACL", "SETUSER", "default", "resetpass"];
        args.extend(rules.iter().map(String::as_str));
        run(old, &args).await?;
    }
    Ok(())
}

/// Turns TLS on or off in a running process (as RS applies `tls_mode` to new connections): the certificate files,
/// then the listener (the plain port closes before the TLS port opens on the same number, and back).
async fn apply_tls(old: &RedisSettings, new: &RedisSettings) -> Result<(), ProcessError> {
    let port = new.port.to_string();
    match &new.tls {
        Some(tls) => {
            let (cert, key, ca) = (
                tls.cert_file.display().to_string(),
                tls.key_file.display().to_string(),
                tls.ca_file.display().to_string(),
            );
            let mut connection = old.connect().await.map_err(|source| ProcessError::Command {
                addr: old.addr(),
                source,
            })?;
            for args in [
                ["CONFIG", "SET", "tls-cert-file", cert.as_str()],
                ["CONFIG", "SET", "tls-key-file", key.as_str()],
                ["CONFIG", "SET", "tls-ca-cert-file", ca.as_str()],
                ["CONFIG", "SET", "tls-auth-clients", "no"],
                ["CONFIG", "SET", "port", "0"],
                ["CONFIG", "SET", "tls-port", port.as_str()],
            ] {
                connection
                    .command(&args)
                    .await
                    .map_err(|source| ProcessError::Command {
                        addr: old.addr(),
                        source,
                    })?;
            }
        }
        None => {
            let mut connection = old.connect().await.map_err(|source| ProcessError::Command {
                addr: old.addr(),
                source,
            })?;
            for args in [
                ["CONFIG", "SET", "tls-port", "0"],
                ["CONFIG", "SET", "port", port.as_str()],
            ] {
                connection
                    .command(&args)
                    .await
                    .map_err(|source| ProcessError::Command {
                        addr: old.addr(),
                        source,
                    })?;
            }
        }
    }
    Ok(())
}

/// Writes a synchronous RDB snapshot (`SAVE`) and returns the path of the dump file.
pub async fn save_snapshot(settings: &RedisSettings) -> Result<PathBuf, ProcessError> {
    run(settings, &["SAVE"]).await?;
    Ok(settings.dir.join("dump.rdb"))
}

/// The version of the installed redis-server (`redis-server --version`), e.g. `7.0.15`.
pub fn installed_version(binary: &Path) -> Result<String, ProcessError> {
    let output = Command::new(binary)
        .arg("--version")
        .output()
        .map_err(|source| ProcessError::NotInstalled {
            binary: binary.to_path_buf(),
            source,
        })?;
    let text = String::from_utf8_lossy(&output.stdout);
    let version = text
        .split_whitespace()
        .find_map(|word| word.strip_prefix("v="))
        .unwrap_or("0.0.0")
        .to_string();
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(persistence: Persistence, passwords: &[&str]) -> RedisSettings {
        RedisSettings {
            ip: "127.9.8.7".parse().expect("literal ip"),
            port: 12000,
            passwords: passwords.iter().map(|p| p.to_string()).collect(),
            max_memory: 104857600,
            eviction_policy: "volatile-lru".to_string(),
            persistence,
            dir: PathBuf::from("/tmp/db 1"),
            modules: Vec::new(),
            tls: None,
        }
    }

    #[test]
    fn config_loads_modules_with_their_arguments() {
        let mut with_modules = settings(Persistence::Disabled, &["x"]);
        with_modules.modules = vec![LoadedModule {
            file: PathBuf::from("/usr/lib/redis/modules/redisearch.so"),
            args: vec!["MAXDOCTABLESIZE".to_string(), "1000".to_string()],
        }];
        let config = render_config(&with_modules, true);
        assert!(config.contains("loadmodule \"/usr/lib/redis/modules/redisearch.so\" \"MAXDOCTABLESIZE\" \"1000\"\n"));
        assert!(config.contains("port 12000\n"));
    }

    #[test]
    fn a_tls_database_listens_on_the_tls_port_only() {
        let ca = super::super::dbtls::ProxyCa::generate("test").expect("CA");
        let dir = std::env::temp_dir().join(format!("process-tls-test-{}", std::process::id()));
        let mut with_tls = settings(Persistence::Disabled, &["x"]);
        with_tls.tls = Some(ca.issue(&dir, &["db.default.svc".to_string()], &[]).expect("issued"));
        let config = render_config(&with_tls, true);
        assert!(config.contains("port 0\ntls-port 12000\n"), "{config}");
        assert!(config.contains("tls-auth-clients no\n"));
        assert!(config.contains(&format!("tls-key-file \"{}\"", dir.join("tls-key.pem").display())));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn config_quotes_password_and_sets_limits() {
        let config = render_config(&settings(Persistence::Disabled, &["pa\"ss word"]), true);
        assert!(config.contains("bind 127.9.8.7\n"));
        assert!(config.contains("port 12000\n"));
        assert!(config.contains(r#"user default "on" ">pa\"ss word" "~*" "&*" "+@all""#));
        assert!(config.contains("maxmemory 104857600\n"));
        assert!(config.contains("maxmemory-policy volatile-lru\n"));
        assert!(config.contains("appendonly no\n"));
        assert!(config.contains("save \"\"\n"));
        assert!(config.contains("dir \"/tmp/db 1\"\n"));
    }

    #[test]
    fn config_without_password_is_nopass() {
        let config = render_config(&settings(Persistence::Disabled, &[]), true);
        assert!(config.contains(r#"user default "on" "nopass" "~*""#));
    }

    #[test]
    fn config_persistence_modes() {
        let aof = render_config(&settings(Persistence::Aof { always: true }, &["x"]), true);
        assert!(aof.contains("appendonly yes\nappendfsync always\n"));
        let aof_skipped = render_config(&settings(Persistence::Aof { always: true }, &["x"]), false);
        assert!(aof_skipped.contains("appendonly no\n"));
        let snapshot = render_config(
            &settings(Persistence::Snapshot(vec![(3600, 1), (60, 1000)]), &["x"]),
            true,
        );
        assert!(snapshot.contains("save \"3600 1 60 1000\"\n"));
    }

    #[test]
    fn quote_escapes_control_bytes() {
        assert_eq!(quote("a\nb\\"), "\"a\\x0ab\\\\\"");
    }
}
