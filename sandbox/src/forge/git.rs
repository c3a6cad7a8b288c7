//! The forge emulator's repositories over smart HTTP: `git http-backend` (the git CLI's own server side) run as a
//! CGI per request behind an axum router, for fetches (`git-upload-pack`) and pushes (`git-receive-pack`). After a
//! push is received, the repository's [`Hooks`] deliver the ref moves. It runs `git http-backend` on repositories
//! under its root and nothing else.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::io::AsyncWriteExt;

use super::hooks::Hooks;

/// The largest request body accepted (a push of a big repository).
pub const MAX_REQUEST_BYTES: usize = 512 * 1024 * 1024;

/// Why the smart-HTTP server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum GitHttpError {
    /// `git --exec-path` did not name a directory with `git-http-backend`.
    #[error("unable to find git-http-backend (install git: apt-get install git): {0}")]
    Backend(String),
}

/// Repositories under a root served over smart HTTP, optionally announcing pushes through [`Hooks`].
pub struct GitHttp {
    root: PathBuf,
    backend: PathBuf,
    hooks: Option<Arc<Hooks>>,
    requests: AtomicU64,
}

impl GitHttp {
    /// Serves the repositories under `root` (`http://host:port/<dir under root>`); pushes are announced through
    /// `hooks` when given.
    pub fn new(root: PathBuf, hooks: Option<Arc<Hooks>>) -> Result<Arc<Self>, GitHttpError> {
        let output = std::process::Command::new("git")
            .arg("--exec-path")
            .output()
            .map_err(|error| GitHttpError::Backend(error.to_string()))?;
        let backend = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()).join("git-http-backend");
        if !backend.exists() {
            return Err(GitHttpError::Backend(format!("{} does not exist", backend.display())));
        }
        Ok(Arc::new(Self {
            root,
            backend,
            hooks,
            requests: AtomicU64::new(0),
        }))
    }

    /// The router: every path is a smart-HTTP request for a repository under the root.
    pub fn router(self: &Arc<Self>) -> axum::Router {
        axum::Router::new().fallback(serve).with_state(self.clone())
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The repository directory a request path names (`/config.git/info/refs` → `<root>/config.git`), if it
    /// stays under the root.
    fn repository(&self, path: &str) -> Option<PathBuf> {
        let relative = ["/info/refs", "/git-upload-pack", "/git-receive-pack"]
            .iter()
            .find_map(|suffix| path.strip_suffix(suffix))?
            .trim_start_matches('/');
        if relative.is_empty() || relative.split('/').any(|segment| segment == ".." || segment.is_empty()) {
            return None;
        }
        Some(self.root.join(relative))
    }
}

fn plain(status: StatusCode, message: &str) -> Response {
    (status, message.to_string()).into_response()
}

async fn serve(State(git): State<Arc<GitHttp>>, request: Request) -> Response {
    git.requests.fetch_add(1, Ordering::Relaxed);
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or_default().to_string();
    let Some(repository) = git.repository(&path) else {
        return plain(StatusCode::NOT_FOUND, "not a repository path");
    };
    let body = match axum::body::to_bytes(body, MAX_REQUEST_BYTES).await {
        Ok(body) => body,
        Err(_) => return plain(StatusCode::PAYLOAD_TOO_LARGE, "request too large"),
    };
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
    };
    let mut command = tokio::process::Command::new(&git.backend);
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", &git.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("PATH_INFO", &path)
        .env("QUERY_STRING", &query)
        .env("CONTENT_TYPE", header("content-type"))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
        .env("GIT_PROTOCOL", header("git-protocol"))
        .env("REMOTE_ADDR", "127.0.0.1")
        // A remote user enables git-receive-pack (pushes) in http-backend.
        .env("REMOTE_USER", "sandbox")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) => return plain(StatusCode::INTERNAL_SERVER_ERROR, &format!("git http-backend: {error}")),
    };
    if let Some(mut stdin) = child.stdin.take() {
        // Written on its own task so a large answer on stdout cannot block a large body on stdin.
        let body = body.clone();
        tokio::spawn(async move {
            let _ = stdin.write_all(&body).await;
        });
    }
    let output = match child.wait_with_output().await {
        Ok(output) => output,
        Err(error) => return plain(StatusCode::INTERNAL_SERVER_ERROR, &format!("git http-backend: {error}")),
    };
    let response = cgi_response(&output.stdout);
    if path.ends_with("/git-receive-pack")
        && response.status().is_success()
        && let Some(hooks) = &git.hooks
        && let Err(error) = hooks.refs_changed(&repository).await
    {
        tracing::warn!(%error, "forge emulator: unable to announce the push");
    }
    response
}

/// A CGI answer (headers, a blank line, the body) as an HTTP response.
fn cgi_response(output: &[u8]) -> Response {
    let split = output
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .map(|index| (index, 4))
        .or_else(|| {
            output
                .windows(2)
                .position(|window| window == b"\n\n")
                .map(|index| (index, 2))
        });
    let Some((index, separator)) = split else {
        return plain(StatusCode::BAD_GATEWAY, "git http-backend gave no CGI headers");
    };
    let head = String::from_utf8_lossy(&output[..index]);
    let mut response = Response::new(Body::from(output[index + separator..].to_vec()));
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            if let Some(code) = value.split_whitespace().next().and_then(|code| code.parse().ok())
                && let Ok(status) = StatusCode::from_u16(code)
            {
                *response.status_mut() = status;
            }
        } else if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::try_from(name.trim()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgi_headers_become_the_status_and_headers() {
        let response = cgi_response(b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nmissing");
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(response.headers()["content-type"], "text/plain");
        let response = cgi_response(b"Content-Type: application/x-git-upload-pack-advertisement\n\n001e#");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(cgi_response(b"no headers").status(), StatusCode::BAD_GATEWAY);
    }

    #[test]
    fn only_repository_paths_under_the_root_are_served() {
        let git = GitHttp {
            root: PathBuf::from("/srv/git"),
            backend: PathBuf::from("/bin/false"),
            hooks: None,
            requests: AtomicU64::new(0),
        };
        assert_eq!(
            git.repository("/config.git/info/refs"),
            Some(PathBuf::from("/srv/git/config.git"))
        );
        assert_eq!(
            git.repository("/team/config/git-upload-pack"),
            Some(PathBuf::from("/srv/git/team/config"))
        );
        assert_eq!(git.repository("/../etc/info/refs"), None);
        assert_eq!(git.repository("/info/refs"), None);
        assert_eq!(git.repository("/config.git/objects/info/packs"), None);
    }
}
