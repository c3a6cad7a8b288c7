//! Git sources: fetch with git2, resolve refs, read the tree at a path, credentials (design.md §3).
//!
//! The core is synchronous (libgit2 blocks); async callers run [`GitSource::poll`] and
//! [`GitSource::read_tree`] inside `tokio::task::spawn_blocking`. A steady-state poll is one ref listing
//! (the `git ls-remote` equivalent) and no fetch when the resolved commit is already cached; a moved ref is
//! fetched alone and shallow (depth 1), forced, so force-pushes and rewritten history simply replace it.

mod config;
mod error;
mod fetch;
mod known_hosts;
mod remote;
mod resolve;
mod tree;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use config::{
    Credentials, DEFAULT_IGNORE, GitRef, ReadOptions, RepoUrl, Scheme, Secret, SourceConfig, set_file_urls_allowed,
};
pub use error::SourceError;
pub use remote::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_IO_TIMEOUT, set_network_timeouts};
pub use resolve::Revision;
pub use tree::TreeEntry;

use remote::Session;

/// The result of one poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollOutcome {
    /// The commit the ref resolves to now, in Flux's revision format.
    pub revision: Revision,
    /// Whether objects had to be fetched (false in the steady state: the commit was already cached).
    pub fetched: bool,
    /// Objects received by the fetch (0 when nothing was fetched).
    pub received_objects: usize,
    /// Wall time of the whole poll (ref listing plus any fetch).
    pub duration: Duration,
}

/// One Git repository to follow: a url, a ref, credentials and a bare cache repository on disk.
#[derive(Debug)]
pub struct GitSource {
    url: RepoUrl,
    reference: GitRef,
    credentials: Credentials,
    timeout: Duration,
    cache_path: PathBuf,
    max_cache_packs: usize,
}

/// Pack files after which the cache is rebuilt (each fetch adds one; libgit2 cannot repack).
pub const DEFAULT_MAX_CACHE_PACKS: usize = 64;

impl GitSource {
    /// Validates the configuration (url, ref shape, credentials fit the transport); touches neither disk nor
    /// network.
    pub fn new(config: SourceConfig) -> Result<GitSource, SourceError> {
        let url = RepoUrl::parse(&config.url)?;
        config::check_file_url_allowed(&url)?;
        config.credentials.validate_for(&url)?;
        match &config.reference {
            GitRef::Commit(commit) => {
                resolve::parse_commit(commit).map_err(|reason| SourceError::InvalidRef {
                    reference: config.reference.to_string(),
                    reason,
                })?;
            }
            GitRef::Semver(range) => {
                resolve::parse_range(range).map_err(|reason| SourceError::InvalidRef {
                    reference: config.reference.to_string(),
                    reason,
                })?;
            }
            GitRef::Branch(name) | GitRef::Tag(name) | GitRef::Name(name) => {
                if name.trim().is_empty() || !git2::Reference::is_valid_name(&full_ref_for_check(&config.reference)) {
                    return Err(SourceError::InvalidRef {
                        reference: config.reference.to_string(),
                        reason: "not a valid git ref name".to_string(),
                    });
                }
            }
        }
        let cache_path = fetch::cache_path(&config.cache_dir, &url);
        Ok(GitSource {
            url,
            reference: config.reference,
            credentials: config.credentials,
            timeout: config.timeout,
            cache_path,
            max_cache_packs: DEFAULT_MAX_CACHE_PACKS,
        })
    }

    /// Sets how many pack files the cache may hold before the next poll rebuilds it from a fresh fetch
    /// (default [`DEFAULT_MAX_CACHE_PACKS`]). Revisions fetched before a rebuild can no longer be read.
    pub fn with_max_cache_packs(mut self, max_cache_packs: usize) -> GitSource {
        self.max_cache_packs = max_cache_packs.max(1);
        self
    }

    /// The bare cache repository of this source.
    pub fn cache_path(&self) -> &Path {
        &self.cache_path
    }

    /// The url, safe to print.
    pub fn url(&self) -> &RepoUrl {
        &self.url
    }

    /// Resolves the ref on the remote and makes sure its commit is in the cache, fetching only when it is not.
    pub fn poll(&self) -> Result<PollOutcome, SourceError> {
        remote::ensure_network_timeouts();
        let started = Instant::now();
        let lock = fetch::cache_lock(&self.cache_path);
        let _guard = match lock.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut repository = fetch::open_cache(&self.cache_path)?;
        if fetch::pack_count(&self.cache_path) >= self.max_cache_packs {
            // Once every `max_cache_packs` fetches: one fresh fetch instead of ever slower object lookups.
            drop(repository);
            repository = fetch::reset_cache(&self.cache_path)?;
        }
        let session = Session::new(&self.url, &self.credentials, self.timeout);
        let advertised = fetch::list_refs(&repository, &session)?;
        let url_text = self.url.to_string();
        let resolved = resolve::resolve(&self.reference, &advertised, &url_text)?;

        let mut fetched = false;
        let mut received_objects = 0;
        let commit_id = match &resolved.remote_ref {
            Some(remote_ref) => {
                let local_ref = fetch::local_ref_name(remote_ref);
                match self.peel_cached(&repository, resolved.oid) {
                    Some(commit) => {
                        fetch::pin_local_ref(&repository, &self.cache_path, &local_ref, resolved.oid)?;
                        commit
                    }
                    None => {
                        let refspec = format!("+{remote_ref}:{local_ref}");
                        // libgit2's local (file://) transport cannot fetch shallow; it copies objects locally.
                        let depth = if self.url.scheme == Scheme::File { 0 } else { 1 };
                        let result = fetch::fetch(&repository, &session, &[refspec], depth)?;
                        fetched = true;
                        received_objects = result.received_objects;
                        // The ref may have moved again since we listed it: what we fetched is the truth.
                        let fetched_oid =
                            repository
                                .refname_to_id(&local_ref)
                                .map_err(|_| SourceError::RefNotFound {
                                    url: url_text.clone(),
                                    reference: self.reference.to_string(),
                                    detail: ": it disappeared while fetching".to_string(),
                                })?;
                        self.peel_cached(&repository, fetched_oid)
                            .ok_or_else(|| SourceError::GitOperation {
                                url: url_text.clone(),
                                operation: "fetching",
                                detail: format!("{remote_ref} does not point to a commit"),
                            })?
                    }
                }
            }
            None => match self.peel_cached(&repository, resolved.oid) {
                Some(commit) => commit,
                None => {
                    // An exact commit cannot be asked for by id from most servers: fetch every branch and tag,
                    // in full (unshallowing a cache shared with shallow followers of the same url).
                    let depth = if repository.is_shallow() { i32::MAX } else { 0 };
                    let refspecs = [
                        "+refs/heads/*:refs/gitops/heads/*".to_string(),
                        "+refs/tags/*:refs/gitops/tags/*".to_string(),
                    ];
                    let result = fetch::fetch(&repository, &session, &refspecs, depth)?;
                    fetched = true;
                    received_objects = result.received_objects;
                    let commit =
                        self.peel_cached(&repository, resolved.oid)
                            .ok_or_else(|| SourceError::RefNotFound {
                                url: url_text.clone(),
                                reference: self.reference.to_string(),
                                detail: ": no branch or tag of the remote contains it".to_string(),
                            })?;
                    fetch::pin_local_ref(
                        &repository,
                        &self.cache_path,
                        &format!("refs/gitops/commits/{commit}"),
                        commit,
                    )?;
                    commit
                }
            },
        };
        Ok(PollOutcome {
            revision: Revision {
                ref_name: resolved.ref_name,
                commit: commit_id.to_string(),
            },
            fetched,
            received_objects,
            duration: started.elapsed(),
        })
    }

    /// The commit an object peels to, if that object is in the cache.
    fn peel_cached(&self, repository: &git2::Repository, oid: git2::Oid) -> Option<git2::Oid> {
        let odb = repository.odb().ok()?;
        if !odb.exists(oid) {
            return None;
        }
        let object = repository.find_object(oid, None).ok()?;
        object.peel_to_commit().ok().map(|commit| commit.id())
    }

    /// The `*.yaml`/`*.yml` files and the symlinks under `path` at `revision` (which a poll has fetched),
    /// read from the cached objects.
    pub fn read_tree(
        &self,
        revision: &Revision,
        path: &str,
        limits: &ReadOptions,
    ) -> Result<Vec<TreeEntry>, SourceError> {
        let lock = fetch::cache_lock(&self.cache_path);
        let _guard = match lock.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let not_cached = || SourceError::CommitNotCached {
            url: self.url.to_string(),
            commit: revision.commit.clone(),
        };
        if !self.cache_path.exists() {
            return Err(not_cached());
        }
        let repository = fetch::open_cache(&self.cache_path)?;
        let oid = resolve::parse_commit(&revision.commit).map_err(|reason| SourceError::InvalidRef {
            reference: format!("revision '{revision}'"),
            reason,
        })?;
        let commit = repository.find_commit(oid).map_err(|_| not_cached())?;
        tree::read_tree(&repository, revision, &commit, path, limits)
    }
}

/// The `*.yaml`/`*.yml` files and the symlinks under `path` of `commit` in any local repository (a checkout or a
/// bare one), read from its objects without a checkout, with the same limits and ignore rules as a sync: what
/// `redis-gitops plan` compares.
pub fn read_commit_tree(
    repository: &git2::Repository,
    commit: &git2::Commit<'_>,
    path: &str,
    limits: &ReadOptions,
) -> Result<Vec<TreeEntry>, SourceError> {
    let revision = Revision {
        ref_name: None,
        commit: commit.id().to_string(),
    };
    tree::read_tree(repository, &revision, commit, path, limits)
}

/// The full ref name used to check a branch/tag/name for validity.
fn full_ref_for_check(reference: &GitRef) -> String {
    match reference {
        GitRef::Branch(name) if !name.starts_with("refs/") => format!("refs/heads/{name}"),
        GitRef::Tag(name) if !name.starts_with("refs/") => format!("refs/tags/{name}"),
        GitRef::Branch(name) | GitRef::Tag(name) | GitRef::Name(name) => name.clone(),
        GitRef::Semver(_) | GitRef::Commit(_) => String::new(),
    }
}
