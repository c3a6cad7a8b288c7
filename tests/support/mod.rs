//! Helpers shared by the integration tests: a real Git repository made with the git CLI, and (in `sync`) the real
//! GitSync controller running against the sandbox API server.
// Each test binary uses some of these helpers, not all of them.
#![allow(dead_code)]

pub mod sync;

use std::path::{Path, PathBuf};
use std::process::Command;

/// A Git repository in a directory, committed to with the real `git` CLI and served over `file://`.
pub struct Repo {
    /// The working directory.
    pub dir: PathBuf,
}

impl Repo {
    /// A new repository `config` under `root`, on branch `main`.
    pub fn new(root: &Path) -> Self {
        Self::with_branch(root, "main")
    }

    /// A new repository `config` under `root`, on `branch`.
    pub fn with_branch(root: &Path, branch: &str) -> Self {
        let dir = root.join("config");
        std::fs::create_dir_all(&dir).expect("repo dir");
        let repo = Self { dir };
        repo.git(&["init", "-q", "-b", branch]);
        repo.git(&["config", "user.email", "test@example.com"]);
        repo.git(&["config", "user.name", "test"]);
        repo
    }

    /// Runs git in the repository and returns its output.
    pub fn git(&self, args: &[&str]) -> String {
        let output = Command::new("git")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .expect("git runs");
        assert!(
            output.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// Writes a file, creating its directories.
    pub fn write(&self, path: &str, content: &str) {
        let file = self.dir.join(path);
        std::fs::create_dir_all(file.parent().expect("parent")).expect("dirs");
        std::fs::write(file, content).expect("write");
    }

    /// Commits everything and returns the commit id.
    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }

    /// The `file://` URL of the repository.
    pub fn url(&self) -> String {
        format!("file://{}", self.dir.display())
    }
}

/// Runs the real `kubectl` against `kubeconfig` and returns its standard output; fails the test on an error.
pub fn kubectl(kubeconfig: &Path, args: &[&str]) -> String {
    let output = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .unwrap_or_else(|error| {
            panic!("kubectl is needed for this test ({error}); install it with apt-get install kubernetes-client")
        });
    assert!(
        output.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The standard error of `child` (spawned with `Stdio::piped()`), collected line by line as it runs, so a test can
/// wait for a log line and print the logs when it fails.
pub fn collect_stderr(child: &mut std::process::Child) -> std::sync::Arc<std::sync::Mutex<String>> {
    use std::io::BufRead;
    let logs = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = logs.clone();
    if let Some(stderr) = child.stderr.take() {
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut logs) = sink.lock() {
                    logs.push_str(&line);
                    logs.push('\n');
                }
            }
        });
    }
    logs
}
