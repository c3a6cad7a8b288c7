//! Test repositories built with the real `git` CLI: a work tree that commits and force-pushes into a bare
//! repository under a root that the servers export.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs git in `dir` with a clean environment (no user or system config) and returns its trimmed stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.invalid")
        .output()
        .unwrap_or_else(|error| panic!("git is not installed ({error}): apt-get install git"));
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// A work tree plus the bare repository `repo.git` it pushes to.
pub struct TestRepo {
    /// The work tree.
    pub work: tempfile::TempDir,
    /// The directory holding `repo.git` (what servers export).
    pub root: tempfile::TempDir,
}

impl TestRepo {
    /// The bare repository's name under the root.
    pub const NAME: &'static str = "repo.git";

    /// An empty work tree on branch `main` and an empty bare repository.
    pub fn new() -> TestRepo {
        let work = tempfile::tempdir().expect("work tree dir");
        let root = tempfile::tempdir().expect("bare root dir");
        git(root.path(), &["init", "-q", "--bare", "-b", "main", TestRepo::NAME]);
        git(work.path(), &["init", "-q", "-b", "main"]);
        let bare = root.path().join(TestRepo::NAME);
        git(work.path(), &["remote", "add", "origin", &bare.display().to_string()]);
        TestRepo { work, root }
    }

    /// The bare repository's absolute path.
    pub fn bare(&self) -> PathBuf {
        self.root.path().join(TestRepo::NAME)
    }

    /// `file://` url of the bare repository.
    pub fn file_url(&self) -> String {
        format!("file://{}", self.bare().display())
    }

    /// Writes a file (creating directories).
    pub fn write(&self, path: &str, content: &[u8]) {
        let full = self.work.path().join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).expect("create dirs");
        }
        std::fs::write(full, content).expect("write file");
    }

    /// Creates a symbolic link in the work tree.
    pub fn symlink(&self, path: &str, target: &str) {
        let full = self.work.path().join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).expect("create dirs");
        }
        std::os::unix::fs::symlink(target, full).expect("create symlink");
    }

    /// Commits everything and returns the commit id.
    pub fn commit(&self, message: &str) -> String {
        git(self.work.path(), &["add", "-A"]);
        git(self.work.path(), &["commit", "-q", "--allow-empty", "-m", message]);
        git(self.work.path(), &["rev-parse", "HEAD"])
    }

    /// Force-pushes the current branch as `main` and all tags.
    pub fn push(&self) {
        git(
            self.work.path(),
            &["push", "-q", "--force", "origin", "HEAD:refs/heads/main"],
        );
        git(self.work.path(), &["push", "-q", "--force", "--tags", "origin"]);
    }

    /// Creates an annotated tag at HEAD.
    pub fn tag(&self, name: &str) {
        git(self.work.path(), &["tag", "-a", "-m", name, name]);
    }

    /// Creates a lightweight tag at HEAD.
    pub fn lightweight_tag(&self, name: &str) {
        git(self.work.path(), &["tag", name]);
    }

    /// Replaces the history with a new root commit holding only `files`.
    pub fn rewrite_history(&self, files: &[(&str, &str)]) -> String {
        git(self.work.path(), &["checkout", "-q", "--orphan", "rewritten"]);
        git(self.work.path(), &["rm", "-q", "-r", "-f", "--cached", "."]);
        for entry in std::fs::read_dir(self.work.path()).expect("read work tree") {
            let entry = entry.expect("dir entry");
            if entry.file_name() != ".git" {
                let path = entry.path();
                if path.is_dir() && !path.is_symlink() {
                    std::fs::remove_dir_all(path).expect("remove dir");
                } else {
                    std::fs::remove_file(path).expect("remove file");
                }
            }
        }
        for (path, content) in files {
            self.write(path, content.as_bytes());
        }
        self.commit("rewritten history")
    }
}

/// Counts the objects in a repository's object database (loose objects plus packed ones, via `git count-objects`).
pub fn object_count(repository: &Path) -> u64 {
    let output = git(repository, &["count-objects", "-v"]);
    output
        .lines()
        .filter_map(|line| line.split_once(": "))
        .filter(|(key, _)| *key == "count" || *key == "in-pack")
        .map(|(_, value)| value.parse::<u64>().unwrap_or(0))
        .sum()
}
