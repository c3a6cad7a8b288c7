//! Reading the files under a path of a commit straight from the tree and blob objects (no checkout): only
//! `*.yaml`/`*.yml` files, symlinks reported as links (never followed), with size and count limits.

use super::config::TreeLimits;
use super::error::SourceError;
use super::resolve::Revision;

/// One entry found under the requested path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeEntry {
    /// A regular (or executable) `*.yaml`/`*.yml` file.
    File {
        /// Path relative to the requested directory, `/`-separated.
        path: String,
        /// The file's bytes.
        content: Vec<u8>,
    },
    /// A symbolic link (any name): reported, not followed, so the loader can refuse links leaving the root.
    Symlink {
        /// Path relative to the requested directory, `/`-separated.
        path: String,
        /// The link's target as stored in Git.
        target: String,
    },
}

impl TreeEntry {
    /// The entry's path relative to the requested directory.
    pub fn path(&self) -> &str {
        match self {
            TreeEntry::File { path, .. } | TreeEntry::Symlink { path, .. } => path,
        }
    }
}

const MODE_TREE: i32 = 0o040000;
const MODE_BLOB: i32 = 0o100644;
const MODE_BLOB_EXECUTABLE: i32 = 0o100755;
const MODE_LINK: i32 = 0o120000;

/// Normalises a user path: `""`, `"."`, `"./a/b/"` are fine; `..`, absolute paths and backslashes are not.
pub(crate) fn normalize_path(path: &str) -> Result<String, SourceError> {
    let invalid = |reason: &str| SourceError::InvalidPath {
        path: path.to_string(),
        reason: reason.to_string(),
    };
    if path.starts_with('/') {
        return Err(invalid("the path must be relative to the repository root"));
    }
    if path.contains('\\') || path.contains('\0') {
        return Err(invalid("the path must use '/' separators"));
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(invalid("'..' is not allowed")),
            other => parts.push(other),
        }
    }
    Ok(parts.join("/"))
}

fn is_yaml(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".yaml") || lower.ends_with(".yml")
}

/// Reads the entries under `path` in `commit`'s tree.
pub(crate) fn read_tree(
    repository: &git2::Repository,
    revision: &Revision,
    commit: &git2::Commit<'_>,
    path: &str,
    limits: &TreeLimits,
) -> Result<Vec<TreeEntry>, SourceError> {
    let normalized = normalize_path(path)?;
    let revision_text = revision.to_string();
    let cache = |operation: &'static str, error: git2::Error| SourceError::Cache {
        path: repository.path().display().to_string(),
        operation,
        detail: error.message().to_string(),
    };
    let root_tree = commit
        .tree()
        .map_err(|error| cache("reading the commit's tree", error))?;
    let start = if normalized.is_empty() {
        root_tree
    } else {
        let entry = root_tree
            .get_path(std::path::Path::new(&normalized))
            .map_err(|_| SourceError::PathNotFound {
                path: normalized.clone(),
                revision: revision_text.clone(),
            })?;
        if entry.filemode() != MODE_TREE {
            return Err(SourceError::NotADirectory {
                path: normalized,
                revision: revision_text,
            });
        }
        repository
            .find_tree(entry.id())
            .map_err(|error| cache("reading a tree object", error))?
    };
    let odb = repository
        .odb()
        .map_err(|error| cache("opening the object database", error))?;
    let mut entries = Vec::new();
    // Depth-first over (tree, its path relative to the start); sorted output follows from Git's tree order.
    let mut pending: Vec<(git2::Tree<'_>, String)> = vec![(start, String::new())];
    while let Some((tree, prefix)) = pending.pop() {
        let mut subtrees = Vec::new();
        for entry in tree.iter() {
            let Ok(name) = entry.name() else {
                // Git allows non-UTF-8 names; YAML file names we accept are UTF-8.
                continue;
            };
            let relative = if prefix.is_empty() {
                name.to_string()
            } else {
                format!("{prefix}/{name}")
            };
            let mode = entry.filemode();
            let wanted = match mode {
                MODE_TREE => {
                    let subtree = repository
                        .find_tree(entry.id())
                        .map_err(|error| cache("reading a tree object", error))?;
                    subtrees.push((subtree, relative));
                    continue;
                }
                MODE_LINK => true,
                MODE_BLOB | MODE_BLOB_EXECUTABLE => is_yaml(name),
                // Submodules (0o160000) have no content here.
                _ => false,
            };
            if !wanted {
                continue;
            }
            if entries.len() >= limits.max_files {
                return Err(SourceError::TooManyFiles {
                    path: normalized,
                    revision: revision_text,
                    limit: limits.max_files,
                });
            }
            // Check the size from the object header before loading the content.
            let (size, _) = odb
                .read_header(entry.id())
                .map_err(|error| cache("reading a blob header", error))?;
            let size = size as u64;
            if size > limits.max_file_size {
                let full = if normalized.is_empty() {
                    relative
                } else {
                    format!("{normalized}/{relative}")
                };
                return Err(SourceError::TooLarge {
                    path: full,
                    revision: revision_text,
                    size,
                    limit: limits.max_file_size,
                });
            }
            let blob = repository
                .find_blob(entry.id())
                .map_err(|error| cache("reading a blob", error))?;
            if mode == MODE_LINK {
                entries.push(TreeEntry::Symlink {
                    path: relative,
                    target: String::from_utf8_lossy(blob.content()).into_owned(),
                });
            } else {
                entries.push(TreeEntry::File {
                    path: relative,
                    content: blob.content().to_vec(),
                });
            }
        }
        // Reverse so the stack visits subdirectories in tree order.
        pending.extend(subtrees.into_iter().rev());
    }
    entries.sort_by(|left, right| left.path().cmp(right.path()));
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised_and_escapes_refused() {
        assert_eq!(normalize_path("./clusters//prod/").unwrap(), "clusters/prod");
        assert_eq!(normalize_path(".").unwrap(), "");
        assert_eq!(normalize_path("a/../../etc").unwrap_err().category(), "InvalidPath");
        assert_eq!(normalize_path("/etc").unwrap_err().category(), "InvalidPath");
    }

    #[test]
    fn yaml_names() {
        assert!(is_yaml("db.yaml") && is_yaml("DB.YML") && !is_yaml("README.md") && !is_yaml("yaml"));
    }
}
