//! The two sides of a plan: a directory, or a revision of a local Git repository read straight from its objects
//! with git2 (no checkout, the same limits and ignore rules as a sync), loaded and validated as a sync loads them.
//! Reads only the given directory or repository; writes nothing.

use std::path::{Path, PathBuf};

use crate::manifests::{Diagnostic, LoadOptions, Repository, load_directory, load_files};
use crate::source::{ReadOptions, read_commit_tree};
use crate::sync::settings::tree_files;

/// Where one side of a plan comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Side {
    /// A directory on disk (its `path` subdirectory when one is given).
    Directory(PathBuf),
    /// A revision (`main`, `HEAD~1`, `origin/main`, a commit id) of the repository at `repository`.
    Revision {
        /// A checkout or a bare repository.
        repository: PathBuf,
        /// Anything `git rev-parse` accepts that names a commit.
        revision: String,
    },
}

impl Side {
    /// `text` as a directory when one exists at that path, else as a revision of `repository`.
    pub fn parse(text: &str, repository: &Path) -> Side {
        let path = Path::new(text);
        if path.is_dir() {
            Side::Directory(path.to_path_buf())
        } else {
            Side::Revision {
                repository: repository.to_path_buf(),
                revision: text.to_string(),
            }
        }
    }

    /// How the side is named in messages: the directory, or `revision` (with the commit once resolved).
    pub fn describe(&self) -> String {
        match self {
            Side::Directory(path) => path.display().to_string(),
            Side::Revision { revision, .. } => revision.clone(),
        }
    }
}

/// Why a side could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The Git repository could not be opened.
    #[error("unable to open the Git repository {repository}: {detail}")]
    OpenRepository {
        /// The path given.
        repository: String,
        /// What libgit2 said.
        detail: String,
    },
    /// The revision names no commit of the repository.
    #[error(
        "unable to resolve {revision:?} in the Git repository {repository} to a commit (and no directory of that name exists): {detail}"
    )]
    UnknownRevision {
        /// The path of the repository.
        repository: String,
        /// The revision given.
        revision: String,
        /// What libgit2 said.
        detail: String,
    },
    /// The tree of the commit could not be read.
    #[error("failed to read the files of {revision} (commit {commit}): {detail}")]
    ReadTree {
        /// The revision given.
        revision: String,
        /// The commit it resolved to.
        commit: String,
        /// What went wrong.
        detail: String,
    },
    /// The directory does not exist.
    #[error("{path} is not a directory")]
    NotADirectory {
        /// The path given.
        path: String,
    },
    /// The side does not validate: every error, located in its files (as `redis-gitops validate` prints them).
    #[error("{side} does not validate ({} errors)", .diagnostics.iter().filter(|d| d.is_error()).count())]
    Invalid {
        /// How the side is named.
        side: String,
        /// Errors and warnings, sorted.
        diagnostics: Vec<Diagnostic>,
    },
}

impl InputError {
    /// The variant name, stable, for callers that branch on the kind of failure.
    pub fn category(&self) -> &'static str {
        match self {
            Self::OpenRepository { .. } => "OpenRepository",
            Self::UnknownRevision { .. } => "UnknownRevision",
            Self::ReadTree { .. } => "ReadTree",
            Self::NotADirectory { .. } => "NotADirectory",
            Self::Invalid { .. } => "Invalid",
        }
    }
}

/// A loaded side: the validated revision and, for a Git revision, the commit it resolved to.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The validated objects.
    pub repository: Repository,
    /// The commit, 40 hex digits, when the side is a Git revision.
    pub commit: Option<String>,
}

/// Loads one side: the files under `path` (a subdirectory; empty is the root), validated with `options`.
pub fn load_side(side: &Side, path: &str, options: &LoadOptions) -> Result<Loaded, InputError> {
    match side {
        Side::Directory(directory) => {
            let root = if path.trim_matches('/').is_empty() {
                directory.clone()
            } else {
                directory.join(path.trim_matches('/'))
            };
            if !root.is_dir() {
                return Err(InputError::NotADirectory {
                    path: root.display().to_string(),
                });
            }
            let repository = load_directory(&root, options).map_err(|diagnostics| InputError::Invalid {
                side: side.describe(),
                diagnostics,
            })?;
            Ok(Loaded {
                repository,
                commit: None,
            })
        }
        Side::Revision { repository, revision } => {
            let git = git2::Repository::open(repository).map_err(|error| InputError::OpenRepository {
                repository: repository.display().to_string(),
                detail: error.message().to_string(),
            })?;
            let commit = git
                .revparse_single(revision)
                .and_then(|object| object.peel_to_commit())
                .map_err(|error| InputError::UnknownRevision {
                    repository: repository.display().to_string(),
                    revision: revision.clone(),
                    detail: error.message().to_string(),
                })?;
            let commit_id = commit.id().to_string();
            let entries = read_commit_tree(&git, &commit, path, &ReadOptions::default()).map_err(|error| {
                InputError::ReadTree {
                    revision: revision.clone(),
                    commit: commit_id.clone(),
                    detail: error.to_string(),
                }
            })?;
            let (files, mut diagnostics) = tree_files(entries);
            let invalid = |diagnostics: Vec<Diagnostic>| InputError::Invalid {
                side: format!("{revision} ({})", &commit_id[..commit_id.len().min(12)]),
                diagnostics,
            };
            match load_files(&files, options) {
                Ok(loaded) if diagnostics.is_empty() => Ok(Loaded {
                    repository: loaded,
                    commit: Some(commit_id),
                }),
                Ok(loaded) => {
                    diagnostics.extend(loaded.warnings);
                    diagnostics.sort();
                    Err(invalid(diagnostics))
                }
                Err(more) => {
                    diagnostics.extend(more);
                    diagnostics.sort();
                    Err(invalid(diagnostics))
                }
            }
        }
    }
}
