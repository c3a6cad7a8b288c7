//! A loopback S3-compatible server for tests and the sandbox: `moto_server` (PyPI `moto[server]`) on 127.0.0.1.
//!
//! [`S3Server::start`] installs moto into a virtual environment under the given tools directory when it is missing
//! (once; later starts reuse it), starts `moto_server` on a free port and waits until it answers. Dropping the
//! [`S3Server`] kills the process. moto keeps everything in memory and accepts any credentials; it does not check
//! signatures, so it cannot produce a 403. This module only runs the server: it never talks to the emulator.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The moto release installed when the tools directory has none (pinned so every run tests against the same server).
pub const MOTO_VERSION: &str = "5.2.5";

/// How long the server may take to answer after it started.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Failure to install, start or use the S3 server.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// A command of the installation failed (python3 -m venv, pip install).
    #[error("failed to install moto into {venv}: `{command}` {detail}")]
    Install {
        /// The virtual environment.
        venv: PathBuf,
        /// The command that failed.
        command: String,
        /// Its exit status and stderr, or why it could not run.
        detail: String,
    },
    /// No free loopback port.
    #[error("no free port on 127.0.0.1 for moto_server: {0}")]
    Port(#[source] std::io::Error),
    /// `moto_server` could not be started.
    #[error("failed to start {program}: {source}")]
    Spawn {
        /// The program.
        program: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `moto_server` exited or did not answer in time.
    #[error("moto_server on {endpoint} did not come up: {detail}")]
    NotReady {
        /// Its endpoint.
        endpoint: String,
        /// What happened.
        detail: String,
    },
    /// A request to the server failed.
    #[error("S3 request {request} to {endpoint} failed: {detail}")]
    Request {
        /// Method and path.
        request: String,
        /// The server.
        endpoint: String,
        /// The error or the answer's status line.
        detail: String,
    },
}

/// A running `moto_server`; dropping it kills the server (and everything stored in it).
#[derive(Debug)]
pub struct S3Server {
    /// The endpoint URL, `http://127.0.0.1:<port>` (what `PUT /v1/cluster {"s3_url": …}` takes).
    pub endpoint: String,
    /// An access key id the server accepts.
    pub access_key_id: String,
    /// The matching secret access key.
    pub secret_access_key: String,
    /// The region buckets are created in.
    pub region: String,
    address: SocketAddr,
    child: Child,
}

fn run(venv: &Path, program: &Path, args: &[&str]) -> Result<(), S3Error> {
    let command = format!("{} {}", program.display(), args.join(" "));
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|error| S3Error::Install {
            venv: venv.to_path_buf(),
            command: command.clone(),
            detail: error.to_string(),
        })?;
    if !output.status.success() {
        return Err(S3Error::Install {
            venv: venv.to_path_buf(),
            command,
            detail: format!("{}: {}", output.status, String::from_utf8_lossy(&output.stderr).trim()),
        });
    }
    Ok(())
}

/// The Python interpreter of the virtual environment `tools_dir/moto`, with moto installed there first when missing.
/// The server then runs as `python -m moto.server`, which (unlike the `moto_server` script and its absolute shebang)
/// keeps working after the environment was moved into place.
pub fn install_moto(tools_dir: &Path) -> Result<PathBuf, S3Error> {
    let venv = tools_dir.join("moto");
    let python = venv.join("bin/python3");
    let marker = venv.join(".installed");
    if marker.is_file() {
        return Ok(python);
    }
    let mkdir_failed = |error: std::io::Error| S3Error::Install {
        venv: venv.clone(),
        command: format!("mkdir -p {}", tools_dir.display()),
        detail: error.to_string(),
    };
    std::fs::create_dir_all(tools_dir).map_err(mkdir_failed)?;
    // Installed into a scratch venv, then renamed: tests starting at once never see half an installation.
    let scratch = tools_dir.join(format!("moto.installing-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let scratch_text = scratch.to_string_lossy().to_string();
    run(&venv, Path::new("python3"), &["-m", "venv", &scratch_text])?;
    let requirement = format!("moto[server]=={MOTO_VERSION}");
    run(&venv, &scratch.join("bin/pip"), &["install", "-q", &requirement])?;
    std::fs::write(scratch.join(".installed"), &requirement).map_err(|error| S3Error::Install {
        venv: venv.clone(),
        command: format!("write {}/.installed", scratch.display()),
        detail: error.to_string(),
    })?;
    if marker.is_file() {
        // Another test installed it meanwhile.
        let _ = std::fs::remove_dir_all(&scratch);
        return Ok(python);
    }
    // What is there is a stale, unfinished installation.
    let _ = std::fs::remove_dir_all(&venv);
    match std::fs::rename(&scratch, &venv) {
        Ok(()) => Ok(python),
        // Another test installed it meanwhile.
        Err(_) if marker.is_file() => {
            let _ = std::fs::remove_dir_all(&scratch);
            Ok(python)
        }
        Err(error) => Err(S3Error::Install {
            venv: venv.clone(),
            command: format!("mv {scratch_text} {}", venv.display()),
            detail: error.to_string(),
        }),
    }
}

impl S3Server {
    /// Installs moto under `tools_dir/moto` if needed (the project uses `target/tools`), starts `moto_server` on a
    /// free port of 127.0.0.1 and waits until it answers. Blocking (the first installation takes a minute or two).
    pub fn start(tools_dir: &Path) -> Result<S3Server, S3Error> {
        let program = install_moto(tools_dir)?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map_err(S3Error::Port)?
            .port();
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let endpoint = format!("http://{address}");
        let child = Command::new(&program)
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| S3Error::Spawn {
                program: program.clone(),
                source,
            })?;
        let mut server = S3Server {
            endpoint,
            access_key_id: "AKIAIOSFODNN7EXAMPLE".to_string(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".to_string(),
            region: "us-east-1".to_string(),
            address,
            child,
        };
        server.wait_ready()?;
        Ok(server)
    }

    fn wait_ready(&mut self) -> Result<(), S3Error> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(S3Error::NotReady {
                    endpoint: self.endpoint.clone(),
                    detail: format!("it exited with {status}"),
                });
            }
            match self.request("GET", "/") {
                Ok(_) => return Ok(()),
                Err(error) if Instant::now() >= deadline => {
                    return Err(S3Error::NotReady {
                        endpoint: self.endpoint.clone(),
                        detail: format!("no answer within {START_TIMEOUT:?}: {error}"),
                    });
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Sends an unsigned request (moto does not check signatures) and returns the status code.
    fn request(&self, method: &str, path: &str) -> Result<u16, S3Error> {
        let failed = |detail: String| S3Error::Request {
            request: format!("{method} {path}"),
            endpoint: self.endpoint.clone(),
            detail,
        };
        let mut stream =
            TcpStream::connect_timeout(&self.address, Duration::from_secs(5)).map_err(|e| failed(e.to_string()))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| failed(e.to_string()))?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.address
        );
        stream
            .write_all(request.as_bytes())
            .map_err(|e| failed(e.to_string()))?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).map_err(|e| failed(e.to_string()))?;
        let answer = String::from_utf8_lossy(&answer);
        let status_line = answer.lines().next().unwrap_or_default().to_string();
        status_line
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| failed(format!("unexpected answer {status_line:?}")))
    }

    /// Creates bucket `name` (in [`Self::region`]); an existing bucket is fine.
    pub fn create_bucket(&self, name: &str) -> Result<(), S3Error> {
        let path = format!("/{name}");
        match self.request("PUT", &path)? {
            200..=299 | 409 => Ok(()),
            status => Err(S3Error::Request {
                request: format!("PUT {path}"),
                endpoint: self.endpoint.clone(),
                detail: format!("status {status}"),
            }),
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The workspace's `target/tools`, shared with the other installed test tools.
    fn tools_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tools")
    }

    #[test]
    fn moto_serves_buckets_on_loopback() {
        let server = S3Server::start(&tools_dir()).expect("moto_server starts");
        assert!(server.endpoint.starts_with("http://127.0.0.1:"), "{}", server.endpoint);
        assert_eq!(server.request("GET", "/missing-bucket").expect("GET"), 404);
        server.create_bucket("backups").expect("create bucket");
        server.create_bucket("backups").expect("creating it again is fine");
        assert_eq!(server.request("GET", "/backups").expect("GET"), 200);
        let pid = server.child.id();
        drop(server);
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| stat.contains(") Z")),
            "moto_server is gone after the drop"
        );
    }
}
