//! Signed push webhooks of the forge emulator: when a ref of a repository moves (a push over smart HTTP, or a
//! commit in a local checkout that [`Hooks::watch`] polls), every subscription of that repository gets a delivery
//! in its forge's format: GitHub (`X-Hub-Signature-256`), Gitea (`X-Gitea-Signature`, plus the GitHub headers as
//! Gitea sends them) or GitLab (`X-Gitlab-Token`), with the pushed commits and their added, modified and removed
//! files. It runs `git` on the repository and posts over plain HTTP to loopback receivers; it keeps a record of
//! every delivery for tests.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The id of a ref that does not exist (before a creation, after a deletion).
pub const ZERO_ID: &str = "0000000000000000000000000000000000000000";

/// GitLab lists at most this many commits in a push payload (`total_commits_count` says how many there were).
const GITLAB_MAX_COMMITS: usize = 20;
/// The most commits described in a GitHub or Gitea payload.
const MAX_COMMITS: usize = 2048;

/// The format of a delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookFormat {
    /// GitHub: `X-GitHub-Event: push`, `X-Hub-Signature-256: sha256=<hex>`.
    GitHub,
    /// Gitea: `X-Gitea-Event: push`, `X-Gitea-Signature: <hex>`, plus GitHub's headers.
    Gitea,
    /// GitLab: `X-Gitlab-Event: Push Hook` (`Tag Push Hook`), `X-Gitlab-Token: <secret>`.
    GitLab,
}

/// Where and how one repository's pushes are delivered.
#[derive(Clone, Debug)]
pub struct Subscription {
    /// The receiver's URL, `http://host:port/path` (plain HTTP, as on loopback).
    pub url: String,
    /// The webhook secret (GitHub and Gitea HMAC key, GitLab token).
    pub secret: Vec<u8>,
    /// The payload and header format.
    pub format: HookFormat,
}

/// A ref that moved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefUpdate {
    /// Its full name, `refs/heads/main`.
    pub name: String,
    /// The id before ([`ZERO_ID`] for a new ref).
    pub before: String,
    /// The id after ([`ZERO_ID`] for a deleted ref).
    pub after: String,
}

/// One delivery made.
#[derive(Clone, Debug)]
pub struct DeliveryRecord {
    /// The receiver's URL.
    pub url: String,
    /// The format.
    pub format: HookFormat,
    /// The delivery id sent.
    pub id: String,
    /// The ref that moved.
    pub update: RefUpdate,
    /// The HTTP status answered, or the error of the request.
    pub status: Result<u16, String>,
}

/// Why the repository could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// `git` failed on the repository.
    #[error("failed to run git {args} in {repository}: {message}")]
    Git {
        /// The repository.
        repository: PathBuf,
        /// The arguments.
        args: String,
        /// What git said.
        message: String,
    },
}

/// The subscriptions, the last refs seen per repository, and the delivery log.
#[derive(Default)]
pub struct Hooks {
    subscriptions: Mutex<HashMap<PathBuf, Vec<Subscription>>>,
    refs: tokio::sync::Mutex<HashMap<PathBuf, BTreeMap<String, String>>>,
    deliveries: Mutex<Vec<DeliveryRecord>>,
    next_id: AtomicU64,
}

impl Hooks {
    /// No subscriptions yet.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Takes the current refs of `repository` as the starting point, if it has none yet: moves after this are
    /// delivered to the subscriptions made later.
    pub async fn track(&self, repository: &Path) -> Result<(), HookError> {
        let current = read_refs(repository).await?;
        self.refs
            .lock()
            .await
            .entry(repository.to_path_buf())
            .or_insert(current);
        Ok(())
    }

    /// Adds a subscription to the pushes of `repository` (a bare repository or a checkout); its current refs are
    /// the starting point unless [`Hooks::track`] took one before.
    pub async fn subscribe(&self, repository: &Path, subscription: Subscription) -> Result<(), HookError> {
        let current = read_refs(repository).await?;
        self.refs
            .lock()
            .await
            .entry(repository.to_path_buf())
            .or_insert(current);
        if let Ok(mut subscriptions) = self.subscriptions.lock() {
            subscriptions
                .entry(repository.to_path_buf())
                .or_default()
                .push(subscription);
        }
        Ok(())
    }

    /// Compares the refs of `repository` with the last ones seen and delivers a push for each ref that moved, to
    /// every subscription; returns the deliveries made.
    pub async fn refs_changed(&self, repository: &Path) -> Result<Vec<DeliveryRecord>, HookError> {
        // One comparison at a time per Hooks, so two pushes never announce the same move twice.
        let mut known = self.refs.lock().await;
        let current = read_refs(repository).await?;
        let previous = known
            .insert(repository.to_path_buf(), current.clone())
            .unwrap_or_default();
        drop(known);
        let updates = moved(&previous, &current);
        let subscriptions = self
            .subscriptions
            .lock()
            .map(|subscriptions| subscriptions.get(repository).cloned().unwrap_or_default())
            .unwrap_or_default();
        let mut made = Vec::new();
        if subscriptions.is_empty() {
            return Ok(made);
        }
        let name = repository_name(repository);
        for update in updates {
            let commits = describe_commits(repository, &update).await?;
            for subscription in &subscriptions {
                let id = format!(
                    "sandbox-{}-{}",
                    std::process::id(),
                    self.next_id.fetch_add(1, Ordering::Relaxed)
                );
                let (headers, body) = render(subscription, &update, &commits, &name, &id);
                let status = post(&subscription.url, &headers, &body).await;
                let record = DeliveryRecord {
                    url: subscription.url.clone(),
                    format: subscription.format,
                    id,
                    update: update.clone(),
                    status,
                };
                if let Ok(mut deliveries) = self.deliveries.lock() {
                    deliveries.push(record.clone());
                }
                made.push(record);
            }
        }
        Ok(made)
    }

    /// Polls the refs of `repository` every `interval` and delivers what moved (for a local checkout, where
    /// commits do not pass through the emulator). Stops when the task is aborted.
    pub fn watch(self: &Arc<Self>, repository: PathBuf, interval: Duration) -> tokio::task::JoinHandle<()> {
        let hooks = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                if let Err(error) = hooks.refs_changed(&repository).await {
                    tracing::warn!(%error, "forge emulator: unable to read the refs");
                }
            }
        })
    }

    /// Every delivery made so far.
    pub fn deliveries(&self) -> Vec<DeliveryRecord> {
        self.deliveries
            .lock()
            .map(|deliveries| deliveries.clone())
            .unwrap_or_default()
    }
}

/// The refs that differ between two snapshots.
fn moved(previous: &BTreeMap<String, String>, current: &BTreeMap<String, String>) -> Vec<RefUpdate> {
    let mut updates = Vec::new();
    for (name, after) in current {
        let before = previous.get(name).cloned().unwrap_or_else(|| ZERO_ID.to_string());
        if before != *after {
            updates.push(RefUpdate {
                name: name.clone(),
                before,
                after: after.clone(),
            });
        }
    }
    for (name, before) in previous {
        if !current.contains_key(name) {
            updates.push(RefUpdate {
                name: name.clone(),
                before: before.clone(),
                after: ZERO_ID.to_string(),
            });
        }
    }
    updates
}

/// The repository's name as a forge shows it: `sandbox/<directory without .git>`.
fn repository_name(repository: &Path) -> String {
    let name = repository
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config".to_string());
    format!("sandbox/{}", name.strip_suffix(".git").unwrap_or(&name))
}

async fn git(repository: &Path, args: &[&str]) -> Result<String, HookError> {
    let output = tokio::process::Command::new("git")
        .args(args)
        .current_dir(repository)
        .output()
        .await
        .map_err(|error| HookError::Git {
            repository: repository.to_path_buf(),
            args: args.join(" "),
            message: error.to_string(),
        })?;
    if !output.status.success() {
        return Err(HookError::Git {
            repository: repository.to_path_buf(),
            args: args.join(" "),
            message: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Every branch and tag of the repository with its id.
async fn read_refs(repository: &Path) -> Result<BTreeMap<String, String>, HookError> {
    let listing = git(
        repository,
        &[
            "for-each-ref",
            "--format=%(objectname) %(refname)",
            "refs/heads",
            "refs/tags",
        ],
    )
    .await?;
    Ok(listing
        .lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(id, name)| (name.to_string(), id.to_string()))
        .collect())
}

/// A pushed commit with its files.
#[derive(Clone, Debug, Default)]
struct Commit {
    id: String,
    message: String,
    added: Vec<String>,
    modified: Vec<String>,
    removed: Vec<String>,
}

/// The commits a ref update brought, oldest first, with their files.
async fn describe_commits(repository: &Path, update: &RefUpdate) -> Result<Vec<Commit>, HookError> {
    if update.after == ZERO_ID {
        return Ok(Vec::new());
    }
    let range = if update.before == ZERO_ID {
        update.after.clone()
    } else {
        format!("{}..{}", update.before, update.after)
    };
    let max = format!("--max-count={MAX_COMMITS}");
    let listing = git(repository, &["rev-list", "--reverse", &max, &range]).await?;
    let mut commits = Vec::new();
    for id in listing.lines().filter(|line| !line.is_empty()) {
        let message = git(repository, &["log", "-1", "--format=%s", id])
            .await?
            .trim()
            .to_string();
        let changes = git(
            repository,
            &["diff-tree", "--root", "--no-commit-id", "--name-status", "-r", id],
        )
        .await?;
        let mut commit = Commit {
            id: id.to_string(),
            message,
            ..Commit::default()
        };
        for line in changes.lines() {
            let mut fields = line.split('\t');
            let (Some(status), Some(file)) = (fields.next(), fields.next()) else {
                continue;
            };
            let file = file.to_string();
            match status.chars().next() {
                Some('A') => commit.added.push(file),
                Some('D') => commit.removed.push(file),
                _ => commit.modified.push(file),
            }
        }
        commits.push(commit);
    }
    Ok(commits)
}

fn hmac_sha256_hex(secret: &[u8], body: &[u8]) -> String {
    match <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(body);
            mac.finalize()
                .into_bytes()
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect()
        }
        Err(_) => String::new(),
    }
}

/// The headers and body of one delivery.
fn render(
    subscription: &Subscription,
    update: &RefUpdate,
    commits: &[Commit],
    repository: &str,
    id: &str,
) -> (Vec<(String, String)>, Vec<u8>) {
    let commit_json = |commit: &Commit| {
        json!({"id": commit.id, "message": commit.message, "added": commit.added,
               "modified": commit.modified, "removed": commit.removed})
    };
    let tag = update.name.starts_with("refs/tags/");
    let mut headers = vec![("Content-Type".to_string(), "application/json".to_string())];
    let body: Value = match subscription.format {
        HookFormat::GitHub | HookFormat::Gitea => json!({
            "ref": update.name, "before": update.before, "after": update.after,
            "created": update.before == ZERO_ID, "deleted": update.after == ZERO_ID, "forced": false,
            "commits": commits.iter().map(commit_json).collect::<Vec<_>>(),
            "total_commits": commits.len(),
            "head_commit": commits.last().map(commit_json),
            "repository": {"full_name": repository, "name": repository.rsplit('/').next()},
        }),
        HookFormat::GitLab => json!({
            "object_kind": if tag { "tag_push" } else { "push" },
            "event_name": if tag { "tag_push" } else { "push" },
            "ref": update.name, "before": update.before, "after": update.after,
            "checkout_sha": if update.after == ZERO_ID { Value::Null } else { json!(update.after) },
            "project": {"path_with_namespace": repository},
            "commits": commits.iter().rev().take(GITLAB_MAX_COMMITS).map(commit_json).collect::<Vec<_>>(),
            "total_commits_count": commits.len(),
        }),
    };
    let body = body.to_string().into_bytes();
    let mut header = |name: &str, value: String| headers.push((name.to_string(), value));
    match subscription.format {
        HookFormat::GitHub => {
            header("X-GitHub-Event", "push".to_string());
            header("X-GitHub-Delivery", id.to_string());
            header(
                "X-Hub-Signature-256",
                format!("sha256={}", hmac_sha256_hex(&subscription.secret, &body)),
            );
        }
        HookFormat::Gitea => {
            let signature = hmac_sha256_hex(&subscription.secret, &body);
            header("X-Gitea-Event", "push".to_string());
            header("X-Gitea-Delivery", id.to_string());
            header("X-Gitea-Signature", signature.clone());
            header("X-GitHub-Event", "push".to_string());
            header("X-GitHub-Delivery", id.to_string());
            header("X-Hub-Signature-256", format!("sha256={signature}"));
        }
        HookFormat::GitLab => {
            header(
                "X-Gitlab-Event",
                if tag { "Tag Push Hook" } else { "Push Hook" }.to_string(),
            );
            header("X-Gitlab-Event-UUID", id.to_string());
            header(
                "X-Gitlab-Token",
                String::from_utf8_lossy(&subscription.secret).into_owned(),
            );
        }
    }
    (headers, body)
}

/// POSTs `body` to a plain-HTTP `url` (HTTP/1.1, one request per connection); the status code answered.
async fn post(url: &str, headers: &[(String, String)], body: &[u8]) -> Result<u16, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// receivers are supported by the emulator"))?;
    let (authority, path) = match rest.find('/') {
        Some(index) => (&rest[..index], &rest[index..]),
        None => (rest, "/"),
    };
    let connect = tokio::net::TcpStream::connect(authority);
    let mut stream = tokio::time::timeout(Duration::from_secs(10), connect)
        .await
        .map_err(|_| format!("{url}: connect timed out"))?
        .map_err(|error| format!("{url}: {error}"))?;
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: redis-gitops-sandbox-forge\r\nContent-Length: {}\r\n\
         Connection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let exchange = async {
        stream.write_all(request.as_bytes()).await?;
        stream.write_all(body).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    let answer = tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .map_err(|_| format!("{url}: no answer within 30 s"))?
        .map_err(|error| format!("{url}: {error}"))?;
    let status_line = answer.split(|byte| *byte == b'\n').next().unwrap_or_default();
    String::from_utf8_lossy(status_line)
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("{url}: not an HTTP answer"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moved_refs_include_creations_and_deletions() {
        let before: BTreeMap<String, String> = [
            ("refs/heads/main".to_string(), "a".repeat(40)),
            ("refs/heads/old".to_string(), "b".repeat(40)),
        ]
        .into();
        let after: BTreeMap<String, String> = [
            ("refs/heads/main".to_string(), "c".repeat(40)),
            ("refs/tags/v1".to_string(), "d".repeat(40)),
        ]
        .into();
        let updates = moved(&before, &after);
        assert_eq!(updates.len(), 3);
        assert_eq!(
            updates[0],
            RefUpdate {
                name: "refs/heads/main".into(),
                before: "a".repeat(40),
                after: "c".repeat(40)
            }
        );
        assert_eq!(updates[1].before, ZERO_ID);
        assert_eq!(
            updates[2],
            RefUpdate {
                name: "refs/heads/old".into(),
                before: "b".repeat(40),
                after: ZERO_ID.into()
            }
        );
    }

    #[test]
    fn github_delivery_is_signed_over_the_exact_body() {
        let subscription = Subscription {
            url: "http://127.0.0.1:1/hook/x".into(),
            secret: b"It's a Secret to Everybody".to_vec(),
            format: HookFormat::GitHub,
        };
        let update = RefUpdate {
            name: "refs/heads/main".into(),
            before: ZERO_ID.into(),
            after: "a".repeat(40),
        };
        let (headers, body) = render(&subscription, &update, &[], "sandbox/config", "d-1");
        let signature = headers
            .iter()
            .find(|(name, _)| name == "X-Hub-Signature-256")
            .map(|(_, v)| v.clone());
        assert_eq!(
            signature,
            Some(format!("sha256={}", hmac_sha256_hex(&subscription.secret, &body)))
        );
        // GitHub's published vector, through the same function.
        assert_eq!(
            hmac_sha256_hex(b"It's a Secret to Everybody", b"Hello, World!"),
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
        let payload: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(payload["ref"], "refs/heads/main");
        assert_eq!(payload["created"], true);
    }

    #[test]
    fn gitlab_delivery_carries_the_token_and_tag_events() {
        let subscription = Subscription {
            url: "http://127.0.0.1:1/hook/x".into(),
            secret: b"tok".to_vec(),
            format: HookFormat::GitLab,
        };
        let update = RefUpdate {
            name: "refs/tags/v1.0.0".into(),
            before: ZERO_ID.into(),
            after: "a".repeat(40),
        };
        let (headers, body) = render(&subscription, &update, &[], "sandbox/config", "d-2");
        let get = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        assert_eq!(get("X-Gitlab-Token"), Some("tok"));
        assert_eq!(get("X-Gitlab-Event"), Some("Tag Push Hook"));
        let payload: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(payload["object_kind"], "tag_push");
    }
}
