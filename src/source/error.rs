//! Errors of the Git source: one variant per thing a user or an operator must tell apart, each carrying the
//! url (never with credentials), the ref or revision and the operation, and a stable `category()` for metrics.

use std::time::Duration;

/// A failure of a Git source operation.
///
/// Urls in these errors are always the redacted form (no password or token), and details coming from libgit2
/// are scrubbed of every secret of the source before they are stored here.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The url is not one we accept (scheme, shape, or credentials embedded in it).
    #[error("invalid git url '{url}': {reason}")]
    InvalidUrl {
        /// The url as given, with any password removed.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// The ref specification cannot be used (bad semver range, commit that is not 40 hex digits...).
    #[error("invalid git ref {reference}: {reason}")]
    InvalidRef {
        /// The ref as configured, e.g. `semver '>=1.0 <2'`.
        reference: String,
        /// Why it was refused.
        reason: String,
    },
    /// The credentials do not fit the url (SSH key for an https url, missing known_hosts...).
    #[error("invalid credentials for {url}: {reason}")]
    InvalidCredentials {
        /// The redacted url.
        url: String,
        /// What is wrong, never the secret itself.
        reason: String,
    },
    /// The server refused our credentials, or asked for credentials we do not have.
    #[error("authentication failed for {url} while {operation}: {detail}")]
    AuthenticationFailed {
        /// The redacted url.
        url: String,
        /// What we were doing, e.g. `listing remote refs`.
        operation: &'static str,
        /// What was refused.
        detail: String,
    },
    /// The SSH server offered a host key that no `known_hosts` line lists for this host.
    #[error("unknown ssh host key for {host} ({url}): {detail}; add the host's key to known_hosts")]
    UnknownHostKey {
        /// The redacted url.
        url: String,
        /// The host as looked up in known_hosts (`[host]:port` for a port other than 22).
        host: String,
        /// The key the server offered (type and SHA256 fingerprint).
        detail: String,
    },
    /// The SSH server offered a host key that differs from the one(s) `known_hosts` lists for this host.
    #[error("ssh host key mismatch for {host} ({url}): {detail}")]
    HostKeyMismatch {
        /// The redacted url.
        url: String,
        /// The host as looked up in known_hosts.
        host: String,
        /// The key offered and what was expected (types and fingerprints).
        detail: String,
    },
    /// The TLS certificate of the server could not be verified.
    #[error("tls certificate of {url} not trusted: {detail}")]
    CertificateInvalid {
        /// The redacted url.
        url: String,
        /// Why verification failed.
        detail: String,
    },
    /// The configured branch, tag, semver range, ref name or commit does not exist on the remote.
    #[error("ref {reference} not found in {url}{detail}")]
    RefNotFound {
        /// The redacted url.
        url: String,
        /// The ref as configured, e.g. `branch 'main'`.
        reference: String,
        /// Extra context (tags considered for a semver range...), empty or starting with `: `.
        detail: String,
    },
    /// A network operation took longer than its deadline.
    #[error("timed out after {after:?} while {operation} ({url})")]
    Timeout {
        /// The redacted url.
        url: String,
        /// What we were doing.
        operation: &'static str,
        /// The deadline that was exceeded.
        after: Duration,
    },
    /// The remote could not be reached (connection refused, name resolution, reset...).
    #[error("unable to reach {url} while {operation}: {detail}")]
    Unreachable {
        /// The redacted url.
        url: String,
        /// What we were doing.
        operation: &'static str,
        /// The transport's message.
        detail: String,
    },
    /// Any other failure of a git operation against the remote.
    #[error("git operation failed for {url} while {operation}: {detail}")]
    GitOperation {
        /// The redacted url.
        url: String,
        /// What we were doing.
        operation: &'static str,
        /// libgit2's message.
        detail: String,
    },
    /// The local cache repository could not be created, opened or updated.
    #[error("git cache failure at {path} while {operation}: {detail}")]
    Cache {
        /// The cache directory of the source.
        path: String,
        /// What we were doing.
        operation: &'static str,
        /// The underlying message.
        detail: String,
    },
    /// The requested commit is not in the cache (read_tree before a poll that fetched it).
    #[error("commit {commit} is not in the local cache of {url}; poll first")]
    CommitNotCached {
        /// The redacted url.
        url: String,
        /// The 40-hex commit.
        commit: String,
    },
    /// The path asked for does not exist in the revision.
    #[error("path '{path}' not found in revision {revision}")]
    PathNotFound {
        /// The path as asked.
        path: String,
        /// The revision, Flux format.
        revision: String,
    },
    /// The path asked for is a file or link, not a directory.
    #[error("path '{path}' in revision {revision} is not a directory")]
    NotADirectory {
        /// The path as asked.
        path: String,
        /// The revision, Flux format.
        revision: String,
    },
    /// The path asked for is not a clean relative path.
    #[error("invalid path '{path}': {reason}")]
    InvalidPath {
        /// The path as asked.
        path: String,
        /// Why it was refused.
        reason: String,
    },
    /// An ignore pattern (from the spec or a `.sourceignore` file) is not valid gitignore syntax.
    #[error("invalid ignore pattern in {origin}: {detail}")]
    InvalidIgnore {
        /// `spec.ignore` or the `.sourceignore` file's path and revision.
        origin: String,
        /// What is wrong with the pattern.
        detail: String,
    },
    /// A file is larger than the configured limit.
    #[error("file '{path}' in revision {revision} is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// The file's path, relative to the repository root.
        path: String,
        /// The revision, Flux format.
        revision: String,
        /// The file's size.
        size: u64,
        /// The configured limit.
        limit: u64,
    },
    /// The YAML files under the path add up to more bytes than the revision budget.
    #[error(
        "the YAML files under '{path}' in revision {revision} add up to more than {limit} bytes (the agent's \
         --max-revision-bytes); split the repository into several GitSync paths"
    )]
    RevisionTooLarge {
        /// The path asked for.
        path: String,
        /// The revision, Flux format.
        revision: String,
        /// The budget, in bytes.
        limit: u64,
    },
    /// The directory holds more matching files than the configured limit.
    #[error("more than {limit} files under '{path}' in revision {revision}")]
    TooManyFiles {
        /// The path asked for.
        path: String,
        /// The revision, Flux format.
        revision: String,
        /// The configured limit.
        limit: usize,
    },
}

impl SourceError {
    /// The stable name of the variant, for metric labels and event reasons (never contains data).
    pub fn category(&self) -> &'static str {
        match self {
            SourceError::InvalidUrl { .. } => "InvalidUrl",
            SourceError::InvalidRef { .. } => "InvalidRef",
            SourceError::InvalidCredentials { .. } => "InvalidCredentials",
            SourceError::AuthenticationFailed { .. } => "AuthenticationFailed",
            SourceError::UnknownHostKey { .. } => "UnknownHostKey",
            SourceError::HostKeyMismatch { .. } => "HostKeyMismatch",
            SourceError::CertificateInvalid { .. } => "CertificateInvalid",
            SourceError::RefNotFound { .. } => "RefNotFound",
            SourceError::Timeout { .. } => "Timeout",
            SourceError::Unreachable { .. } => "Unreachable",
            SourceError::GitOperation { .. } => "GitOperation",
            SourceError::Cache { .. } => "Cache",
            SourceError::CommitNotCached { .. } => "CommitNotCached",
            SourceError::PathNotFound { .. } => "PathNotFound",
            SourceError::NotADirectory { .. } => "NotADirectory",
            SourceError::InvalidPath { .. } => "InvalidPath",
            SourceError::InvalidIgnore { .. } => "InvalidIgnore",
            SourceError::TooLarge { .. } => "TooLarge",
            SourceError::TooManyFiles { .. } => "TooManyFiles",
            SourceError::RevisionTooLarge { .. } => "RevisionTooLarge",
        }
    }

    /// Whether the error needs a change by a human (spec or Secret) rather than a retry: the caller can mark
    /// the source `Stalled` for these and back off for the others.
    pub fn needs_user_action(&self) -> bool {
        matches!(
            self,
            SourceError::InvalidUrl { .. }
                | SourceError::InvalidRef { .. }
                | SourceError::InvalidCredentials { .. }
                | SourceError::InvalidPath { .. }
        )
    }
}
