//! Real git servers on loopback for the source tests: `git daemon`, smart HTTP (`git http-backend` behind a
//! small CGI-speaking HTTP server written here, with basic or bearer auth checked) and OpenSSH's `sshd`.
//! Each stops when dropped. A missing program fails the test with the Debian package to install.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// The git CLI's directory of helper programs (`git-daemon`, `git-http-backend`).
pub fn git_exec_path() -> PathBuf {
    let output = Command::new("git")
        .arg("--exec-path")
        .output()
        .unwrap_or_else(|error| panic!("git is not installed ({error}): apt-get install git"));
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}

/// Panics with the package to install when a helper program is missing.
pub fn require_program(path: &Path, package: &str) {
    assert!(
        path.exists(),
        "{} is missing: install it with `apt-get install {package}`",
        path.display()
    );
}

/// A free loopback port (bound then released; the server binds it right after).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral loopback port");
    listener.local_addr().expect("local address").port()
}

fn wait_for_port(port: u16, child: &mut Child, what: &str) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(15) {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before listening on port {port}: {status}");
        }
        thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on port {port} within 15 s");
}

/// `git daemon` serving every repository under a root.
pub struct GitDaemon {
    child: Child,
    /// Its port.
    pub port: u16,
}

impl GitDaemon {
    /// Starts it on a free port.
    pub fn start(root: &Path) -> GitDaemon {
        // Run git-daemon itself: `git daemon` would fork it as a grandchild that outlives a kill of `git`.
        let daemon = git_exec_path().join("git-daemon");
        require_program(&daemon, "git");
        let port = free_port();
        let mut child = Command::new(&daemon)
            .arg("--reuseaddr")
            .arg("--export-all")
            .arg("--informative-errors")
            .arg(format!("--base-path={}", root.display()))
            .arg("--listen=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg(root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start git daemon");
        wait_for_port(port, &mut child, "git daemon");
        GitDaemon { child, port }
    }

    /// `git://127.0.0.1:<port>/<repo>`.
    pub fn url(&self, repo: &str) -> String {
        format!("git://127.0.0.1:{}/{repo}", self.port)
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the HTTP server demands.
#[derive(Clone)]
pub enum HttpAuth {
    /// `Authorization: Basic` with this user and password.
    Basic {
        /// Expected user.
        user: String,
        /// Expected password.
        password: String,
    },
    /// `Authorization: Bearer` with this token.
    Bearer(String),
}

/// Smart HTTP: a tiny HTTP/1.1 server that checks auth and runs `git http-backend` as a CGI per request.
pub struct HttpGitServer {
    /// Its port.
    pub port: u16,
    /// `http` or `https`.
    scheme: &'static str,
    /// Requests answered (any status).
    pub requests: Arc<AtomicUsize>,
    /// `POST .../git-upload-pack` requests, i.e. fetch negotiations (a no-op poll makes none).
    pub upload_pack_posts: Arc<AtomicUsize>,
    /// Requests refused with 401.
    pub unauthorized: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    accept_thread: Option<thread::JoinHandle<()>>,
}

impl HttpGitServer {
    /// Starts it on a free port, serving the repositories under `root` over plain HTTP.
    pub fn start(root: &Path, auth: HttpAuth) -> HttpGitServer {
        HttpGitServer::start_with_tls(root, auth, None)
    }

    /// Starts it over HTTPS with this certificate chain and key (PEM files) when `tls` is given.
    pub fn start_with_tls(root: &Path, auth: HttpAuth, tls: Option<(&Path, &Path)>) -> HttpGitServer {
        let acceptor = tls.map(|(chain, key)| {
            let mut builder = openssl::ssl::SslAcceptor::mozilla_intermediate_v5(openssl::ssl::SslMethod::tls())
                .expect("tls acceptor");
            builder
                .set_certificate_chain_file(chain)
                .expect("load certificate chain");
            builder
                .set_private_key_file(key, openssl::ssl::SslFiletype::PEM)
                .expect("load private key");
            Arc::new(builder.build())
        });
        let scheme = if acceptor.is_some() { "https" } else { "http" };
        let backend = git_exec_path().join("git-http-backend");
        require_program(&backend, "git");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the http server");
        let port = listener.local_addr().expect("local address").port();
        let requests = Arc::new(AtomicUsize::new(0));
        let upload_pack_posts = Arc::new(AtomicUsize::new(0));
        let unauthorized = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let context = Arc::new(CgiContext {
            root: root.to_path_buf(),
            backend,
            auth,
            requests: Arc::clone(&requests),
            upload_pack_posts: Arc::clone(&upload_pack_posts),
            unauthorized: Arc::clone(&unauthorized),
        });
        let stop_flag = Arc::clone(&stop);
        let accept_thread = thread::spawn(move || {
            for stream in listener.incoming() {
                if stop_flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let context = Arc::clone(&context);
                let acceptor = acceptor.clone();
                thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                    match acceptor {
                        Some(acceptor) => {
                            if let Ok(tls_stream) = acceptor.accept(stream) {
                                let _ = serve_connection(tls_stream, &context);
                            }
                        }
                        None => {
                            let _ = serve_connection(stream, &context);
                        }
                    }
                });
            }
        });
        HttpGitServer {
            port,
            scheme,
            requests,
            upload_pack_posts,
            unauthorized,
            stop,
            accept_thread: Some(accept_thread),
        }
    }

    /// `http(s)://127.0.0.1:<port>/<repo>`.
    pub fn url(&self, repo: &str) -> String {
        format!("{}://127.0.0.1:{}/{repo}", self.scheme, self.port)
    }
}

impl Drop for HttpGitServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(handle) = self.accept_thread.take() {
            let _ = handle.join();
        }
    }
}

struct CgiContext {
    root: PathBuf,
    backend: PathBuf,
    auth: HttpAuth,
    requests: Arc<AtomicUsize>,
    upload_pack_posts: Arc<AtomicUsize>,
    unauthorized: Arc<AtomicUsize>,
}

fn serve_connection<S: Read + Write>(stream: S, context: &CgiContext) -> std::io::Result<()> {
    // BufReader only buffers reads: writes go straight to the stream through get_mut().
    let mut reader = BufReader::new(stream);
    // Serve requests until the client closes (libgit2 keeps connections alive between requests).
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("/").to_string();
        let mut headers = HashMap::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
            }
        }
        let body = read_body(&mut reader, &headers)?;
        let writer = reader.get_mut();
        context.requests.fetch_add(1, Ordering::SeqCst);
        let (path, query) = target.split_once('?').unwrap_or((target.as_str(), ""));
        let authorized = match &context.auth {
            HttpAuth::Basic { user, password } => {
                let expected = format!("Basic {}", STANDARD.encode(format!("{user}:{password}")));
                headers.get("authorization") == Some(&expected)
            }
            HttpAuth::Bearer(token) => headers.get("authorization") == Some(&format!("Bearer {token}")),
        };
        if !authorized {
            context.unauthorized.fetch_add(1, Ordering::SeqCst);
            writer.write_all(
                b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\n\r\n",
            )?;
            writer.flush()?;
            continue;
        }
        if method == "POST" && path.ends_with("/git-upload-pack") {
            context.upload_pack_posts.fetch_add(1, Ordering::SeqCst);
        }
        let response = run_cgi(context, &method, path, query, &headers, body)?;
        writer.write_all(&response)?;
        writer.flush()?;
    }
}

fn read_body<S: Read>(reader: &mut BufReader<S>, headers: &HashMap<String, String>) -> std::io::Result<Vec<u8>> {
    if let Some(length) = headers.get("content-length") {
        let length: usize = length.parse().unwrap_or(0);
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        return Ok(body);
    }
    if headers
        .get("transfer-encoding")
        .is_some_and(|value| value.eq_ignore_ascii_case("chunked"))
    {
        let mut body = Vec::new();
        loop {
            let mut size_line = String::new();
            reader.read_line(&mut size_line)?;
            let size = usize::from_str_radix(size_line.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            if size == 0 {
                return Ok(body);
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
    Ok(Vec::new())
}

fn run_cgi(
    context: &CgiContext,
    method: &str,
    path: &str,
    query: &str,
    headers: &HashMap<String, String>,
    body: Vec<u8>,
) -> std::io::Result<Vec<u8>> {
    let mut command = Command::new(&context.backend);
    command
        .env("GIT_PROJECT_ROOT", &context.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("REMOTE_USER", "tester")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(content_type) = headers.get("content-type") {
        command.env("CONTENT_TYPE", content_type);
    }
    if let Some(encoding) = headers.get("content-encoding") {
        command.env("HTTP_CONTENT_ENCODING", encoding);
    }
    if let Some(protocol) = headers.get("git-protocol") {
        command.env("GIT_PROTOCOL", protocol);
    }
    let mut child = command.spawn()?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let writer = thread::spawn(move || {
        let _ = stdin.write_all(&body);
    });
    let output = child.wait_with_output()?;
    let _ = writer.join();
    let raw = output.stdout;
    let split = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .map(|index| (index, 4))
        .or_else(|| {
            raw.windows(2)
                .position(|window| window == b"\n\n")
                .map(|index| (index, 2))
        });
    let (header_end, separator) = split.unwrap_or((0, 0));
    let cgi_headers = String::from_utf8_lossy(&raw[..header_end]).to_string();
    let cgi_body = &raw[header_end + separator..];
    let mut status = "200 OK".to_string();
    let mut response_headers = String::new();
    for line in cgi_headers.lines() {
        let line = line.trim_end();
        if let Some(value) = line.strip_prefix("Status:") {
            status = value.trim().to_string();
        } else if !line.is_empty() {
            response_headers.push_str(line);
            response_headers.push_str("\r\n");
        }
    }
    let mut response = format!(
        "HTTP/1.1 {status}\r\n{response_headers}Content-Length: {}\r\n\r\n",
        cgi_body.len()
    )
    .into_bytes();
    response.extend_from_slice(cgi_body);
    Ok(response)
}

/// OpenSSH's sshd on a free port with a generated ed25519 host key and one authorized deploy key.
pub struct Sshd {
    child: Child,
    /// Its port.
    pub port: u16,
    /// `ssh-ed25519 AAAA...` of the host key.
    pub host_public_key: String,
    /// The deploy key's private half (OpenSSH format).
    pub client_private_key: String,
    /// The user tests log in as.
    pub user: String,
    _dir: tempfile::TempDir,
}

/// Generates an ed25519 key pair; returns (private key text, `type base64` public key).
pub fn generate_key(dir: &Path, name: &str) -> (String, String) {
    let keygen = Path::new("/usr/bin/ssh-keygen");
    require_program(keygen, "openssh-client");
    let path = dir.join(name);
    let status = Command::new(keygen)
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "", "-f"])
        .arg(&path)
        .status()
        .expect("run ssh-keygen");
    assert!(status.success(), "ssh-keygen failed");
    let private = std::fs::read_to_string(&path).expect("read private key");
    let public = std::fs::read_to_string(path.with_extension("pub")).expect("read public key");
    let public = public.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    (private, public)
}

impl Sshd {
    /// Starts sshd (needs root to log in as root, which these tests are).
    pub fn start() -> Sshd {
        let sshd = Path::new("/usr/sbin/sshd");
        require_program(sshd, "openssh-server");
        let dir = tempfile::tempdir().expect("sshd temp dir");
        let (_, host_public_key) = generate_key(dir.path(), "host_key");
        let (client_private_key, client_public_key) = generate_key(dir.path(), "deploy_key");
        let authorized = dir.path().join("authorized_keys");
        std::fs::write(&authorized, format!("{client_public_key}\n")).expect("write authorized_keys");
        let user = String::from_utf8_lossy(&Command::new("id").arg("-un").output().expect("id -un").stdout)
            .trim()
            .to_string();
        let port = free_port();
        let config = dir.path().join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "ListenAddress 127.0.0.1\nPort {port}\nHostKey {host_key}\nPidFile none\nAuthorizedKeysFile {authorized}\n\
                 StrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
                 PermitRootLogin prohibit-password\nUsePAM no\nAllowTcpForwarding no\nX11Forwarding no\nPrintMotd no\n\
                 LogLevel ERROR\n",
                host_key = dir.path().join("host_key").display(),
                authorized = authorized.display(),
            ),
        )
        .expect("write sshd_config");
        // sshd insists on its privilege separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let mut child = Command::new(sshd)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sshd");
        wait_for_port(port, &mut child, "sshd");
        Sshd {
            child,
            port,
            host_public_key,
            client_private_key,
            user,
            _dir: dir,
        }
    }

    /// The deploy key re-encrypted with a passphrase (OpenSSH format), for passphrase tests.
    pub fn client_private_key_encrypted(&self, passphrase: &str) -> String {
        let path = self
            ._dir
            .path()
            .join(format!("deploy_key_encrypted_{}", passphrase.len()));
        std::fs::write(&path, &self.client_private_key).expect("write key copy");
        let mut permissions = std::fs::metadata(&path).expect("key metadata").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o600);
        std::fs::set_permissions(&path, permissions).expect("chmod key");
        let status = Command::new("/usr/bin/ssh-keygen")
            .args(["-q", "-p", "-N", passphrase, "-P", "", "-f"])
            .arg(&path)
            .stdout(Stdio::null())
            .status()
            .expect("run ssh-keygen -p");
        assert!(status.success(), "ssh-keygen -p failed");
        std::fs::read_to_string(&path).expect("read encrypted key")
    }

    /// The known_hosts line for this server.
    pub fn known_hosts_line(&self) -> String {
        format!("[127.0.0.1]:{} {}\n", self.port, self.host_public_key)
    }

    /// `ssh://<user>@127.0.0.1:<port><absolute path>`.
    pub fn url(&self, repository: &Path) -> String {
        format!("ssh://{}@127.0.0.1:{}{}", self.user, self.port, repository.display())
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP server that accepts connections and never answers, to exercise timeouts.
pub struct Blackhole {
    /// Its port.
    pub port: u16,
    stop: Arc<AtomicBool>,
}

impl Blackhole {
    /// Starts it.
    pub fn start() -> Blackhole {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind blackhole");
        let port = listener.local_addr().expect("local address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = Arc::clone(&stop);
        thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                if stop_flag.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    held.push(stream);
                }
            }
        });
        Blackhole { port, stop }
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// A test CA and a server certificate for 127.0.0.1 signed by it, made with the `openssl` CLI.
pub struct TestPki {
    /// The CA certificate, PEM.
    pub ca_pem: Vec<u8>,
    /// The server's certificate file.
    pub server_cert: PathBuf,
    /// The server's private key file.
    pub server_key: PathBuf,
    _dir: tempfile::TempDir,
}

fn openssl(dir: &Path, args: &[&str]) {
    let openssl = Path::new("/usr/bin/openssl");
    require_program(openssl, "openssl");
    let output = Command::new(openssl)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

impl TestPki {
    /// Generates the CA and the server certificate (IP SAN 127.0.0.1).
    pub fn generate() -> TestPki {
        let dir = tempfile::tempdir().expect("pki dir");
        let path = dir.path();
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        let mut ca_args = vec!["req", "-x509"];
        ca_args.extend(ec);
        ca_args.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=redis-gitops test CA",
        ]);
        openssl(path, &ca_args);
        let mut csr_args = vec!["req"];
        csr_args.extend(ec);
        csr_args.extend(["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"]);
        openssl(path, &csr_args);
        std::fs::write(
            path.join("server.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write extensions");
        openssl(
            path,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.crt",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
        );
        TestPki {
            ca_pem: std::fs::read(path.join("ca.crt")).expect("read CA"),
            server_cert: path.join("server.crt"),
            server_key: path.join("server.key"),
            _dir: dir,
        }
    }
}

/// A byte stream, plain or TLS.
trait ReadWrite: Read + Write + Send {}
impl<T: Read + Write + Send> ReadWrite for T {}

/// An HTTP server that answers every request with a 302 to the same path on `target` (another host name).
pub struct RedirectServer {
    /// Its port.
    pub port: u16,
    stop: Arc<AtomicBool>,
}

impl RedirectServer {
    /// Starts it (over HTTPS with this certificate chain and key, PEM files, when `tls` is given); `target` is like
    /// `https://localhost:1234`.
    pub fn start_with_tls(target: String, tls: Option<(&Path, &Path)>) -> RedirectServer {
        let acceptor = tls.map(|(chain, key)| {
            let mut builder = openssl::ssl::SslAcceptor::mozilla_intermediate_v5(openssl::ssl::SslMethod::tls())
                .expect("tls acceptor");
            builder
                .set_certificate_chain_file(chain)
                .expect("load certificate chain");
            builder
                .set_private_key_file(key, openssl::ssl::SslFiletype::PEM)
                .expect("load private key");
            Arc::new(builder.build())
        });
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind redirect server");
        let port = listener.local_addr().expect("local address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = Arc::clone(&stop);
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stop_flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let stream: Box<dyn ReadWrite> = match &acceptor {
                    Some(acceptor) => match acceptor.accept(stream) {
                        Ok(tls_stream) => Box::new(tls_stream),
                        Err(_) => continue,
                    },
                    None => Box::new(stream),
                };
                let mut reader = BufReader::new(stream);
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim_end().is_empty() {
                        break;
                    }
                }
                let path = request_line.split_whitespace().nth(1).unwrap_or("/").to_string();
                let response = format!(
                    "HTTP/1.1 302 Found\r\nLocation: {target}{path}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = reader.get_mut().write_all(response.as_bytes());
            }
        });
        RedirectServer { port, stop }
    }
}

impl Drop for RedirectServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}
