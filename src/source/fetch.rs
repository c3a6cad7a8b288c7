//! The local cache (one bare repository per url under the cache directory) and the two network steps of a
//! poll: listing the remote's refs, and fetching only the one ref that moved, shallow (depth 1).
//!
//! Our fetched refs live under `refs/gitops/` in the cache so they never collide with anything git itself
//! writes, and so libgit2 can advertise them as `have`s when negotiating the next fetch.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};

use sha2::{Digest, Sha256};

use super::config::RepoUrl;
use super::error::SourceError;
use super::remote::Session;
use super::resolve::AdvertisedRef;

/// A refspec that matches nothing: used to make libgit2 connect and list refs (with our custom headers, which
/// `Remote::connect_auth` cannot send) without fetching anything.
const LIST_ONLY_REFSPEC: &str = "refs/gitops-list-only/none:refs/gitops-list-only/none";

/// One lock per cache repository, so two sources with the same url never fetch into it at once.
static CACHE_LOCKS: LazyLock<Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// The cache repository of a url: `<cache_dir>/<first 32 hex of sha256(url)>.git`.
pub(crate) fn cache_path(cache_dir: &Path, url: &RepoUrl) -> PathBuf {
    let digest = Sha256::digest(url.as_str().as_bytes());
    let hex: String = digest.iter().take(16).map(|byte| format!("{byte:02x}")).collect();
    cache_dir.join(format!("{hex}.git"))
}

/// The lock guarding one cache repository.
pub(crate) fn cache_lock(path: &Path) -> Arc<Mutex<()>> {
    let mut locks = match CACHE_LOCKS.lock() {
        Ok(locks) => locks,
        Err(poisoned) => poisoned.into_inner(),
    };
    Arc::clone(locks.entry(path.to_path_buf()).or_default())
}

fn cache_error(path: &Path, operation: &'static str, detail: impl ToString) -> SourceError {
    SourceError::Cache {
        path: path.display().to_string(),
        operation,
        detail: detail.to_string(),
    }
}

/// Opens the cache repository, creating it (or re-creating it when it is unreadable).
pub(crate) fn open_cache(path: &Path) -> Result<git2::Repository, SourceError> {
    if path.exists() {
        match git2::Repository::open_bare(path) {
            Ok(repository) => return Ok(repository),
            Err(_) => {
                // A cache is only a cache: an unreadable one is thrown away and fetched again.
                std::fs::remove_dir_all(path)
                    .map_err(|error| cache_error(path, "removing an unreadable cache repository", error))?;
            }
        }
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|error| cache_error(path, "creating the cache directory", error))?;
    }
    git2::Repository::init_bare(path)
        .map_err(|error| cache_error(path, "creating the cache repository", error.message()))
}

/// The number of pack files in the cache: each fetch adds one and libgit2 never repacks, so lookups slow down
/// as they pile up.
pub(crate) fn pack_count(path: &Path) -> usize {
    std::fs::read_dir(path.join("objects").join("pack"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|entry| entry.file_name().to_string_lossy().ends_with(".pack"))
                .count()
        })
        .unwrap_or(0)
}

/// Throws the cache away and starts an empty one (the next fetch brings a fresh shallow snapshot).
pub(crate) fn reset_cache(path: &Path) -> Result<git2::Repository, SourceError> {
    std::fs::remove_dir_all(path)
        .map_err(|error| cache_error(path, "removing a fragmented cache repository", error))?;
    open_cache(path)
}

/// The name under which we keep a fetched remote ref in the cache.
pub(crate) fn local_ref_name(remote_ref: &str) -> String {
    format!("refs/gitops/{}", remote_ref.strip_prefix("refs/").unwrap_or(remote_ref))
}

/// Lists the remote's refs (the `git ls-remote` equivalent): one connection, no objects transferred.
pub(crate) fn list_refs(
    repository: &git2::Repository,
    session: &Session<'_>,
) -> Result<Vec<AdvertisedRef>, SourceError> {
    const OPERATION: &str = "listing remote refs";
    let mut remote = repository
        .remote_anonymous(session.url.as_str())
        .map_err(|error| session.classify(OPERATION, &error))?;
    let mut options = session.fetch_options();
    remote
        .download(&[LIST_ONLY_REFSPEC], Some(&mut options))
        .map_err(|error| session.classify(OPERATION, &error))?;
    let refs = remote
        .list()
        .map_err(|error| session.classify(OPERATION, &error))?
        .iter()
        .map(|head| AdvertisedRef {
            name: head.name().to_string(),
            oid: head.oid(),
        })
        .collect();
    // Disconnecting only closes the transport; a failure there changes nothing about what we listed.
    let _ = remote.disconnect();
    if session.expired() {
        return Err(session.timeout_error(OPERATION));
    }
    Ok(refs)
}

/// What a fetch brought.
pub(crate) struct Fetched {
    /// Objects received (0 when the server had nothing new for us).
    pub received_objects: usize,
}

/// Fetches `refspecs` (forced, so rewritten history replaces what we had) with the given depth
/// (`1` shallow, `0` full, `i32::MAX` to unshallow).
pub(crate) fn fetch(
    repository: &git2::Repository,
    session: &Session<'_>,
    refspecs: &[String],
    depth: i32,
) -> Result<Fetched, SourceError> {
    const OPERATION: &str = "fetching";
    let mut remote = repository
        .remote_anonymous(session.url.as_str())
        .map_err(|error| session.classify(OPERATION, &error))?;
    let mut options = session.fetch_options();
    options.depth(depth);
    let refspecs: Vec<&str> = refspecs.iter().map(String::as_str).collect();
    remote
        .fetch(&refspecs, Some(&mut options), Some("redis-gitops fetch"))
        .map_err(|error| session.classify(OPERATION, &error))?;
    if session.expired() {
        return Err(session.timeout_error(OPERATION));
    }
    let received_objects = session.state.borrow().received_objects;
    Ok(Fetched { received_objects })
}

/// Points our local ref at `oid` unless it already does (no write in the steady state).
pub(crate) fn pin_local_ref(
    repository: &git2::Repository,
    path: &Path,
    local_ref: &str,
    oid: git2::Oid,
) -> Result<(), SourceError> {
    if repository.refname_to_id(local_ref).ok() == Some(oid) {
        return Ok(());
    }
    repository
        .reference(local_ref, oid, true, "redis-gitops: remote ref seen at this commit")
        .map(|_| ())
        .map_err(|error| cache_error(path, "updating a cached ref", error.message()))
}
