//! Reading the files under a path of a commit straight from the tree and blob objects (no checkout): only
//! `*.yaml`/`*.yml` files, symlinks reported as links (never followed), with size and count limits, and
//! Flux's ignore rules (spec patterns or the defaults, plus `.sourceignore` files).

use std::rc::Rc;

use ignore::gitignore::{Gitignore, GitignoreBuilder};

use super::config::{DEFAULT_IGNORE, ReadOptions};
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

/// The name of the per-directory ignore file, as in Flux.
const SOURCE_IGNORE: &str = ".sourceignore";

/// Ignore matchers from the outermost (spec or defaults) to the innermost `.sourceignore`.
type IgnoreChain = Rc<Vec<Rc<Gitignore>>>;

/// Builds a matcher for gitignore-syntax `text` whose patterns are relative to `directory` (repo-relative).
fn build_matcher(directory: &str, text: &str, origin: &str) -> Result<Gitignore, SourceError> {
    let invalid = |detail: String| SourceError::InvalidIgnore {
        origin: origin.to_string(),
        detail,
    };
    let mut builder = GitignoreBuilder::new(directory);
    for line in text.lines() {
        builder
            .add_line(None, line)
            .map_err(|error| invalid(error.to_string()))?;
    }
    builder.build().map_err(|error| invalid(error.to_string()))
}

/// Whether the innermost matcher with an opinion ignores `path` (repo-relative).
fn is_ignored(chain: &IgnoreChain, path: &str, is_dir: bool) -> bool {
    for matcher in chain.iter().rev() {
        let verdict = matcher.matched(path, is_dir);
        if verdict.is_ignore() {
            return true;
        }
        if verdict.is_whitelist() {
            return false;
        }
    }
    false
}

fn join(directory: &str, name: &str) -> String {
    if directory.is_empty() {
        name.to_string()
    } else {
        format!("{directory}/{name}")
    }
}

/// Reads the entries under `path` in `commit`'s tree.
pub(crate) fn read_tree(
    repository: &git2::Repository,
    revision: &Revision,
    commit: &git2::Commit<'_>,
    path: &str,
    limits: &ReadOptions,
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
    let (base_text, base_origin) = match &limits.ignore {
        Some(text) => (text.as_str(), "spec.ignore"),
        None => (DEFAULT_IGNORE, "the default exclusions"),
    };
    let mut chain: IgnoreChain = Rc::new(vec![Rc::new(build_matcher("", base_text, base_origin)?)]);
    // A `.sourceignore` in a tree extends the chain for everything below it.
    let extend = |chain: &IgnoreChain, tree: &git2::Tree<'_>, directory: &str| -> Result<IgnoreChain, SourceError> {
        let Some(entry) = tree.get_name(SOURCE_IGNORE) else {
            return Ok(Rc::clone(chain));
        };
        let Ok(blob) = repository.find_blob(entry.id()) else {
            return Ok(Rc::clone(chain));
        };
        let origin = format!("{} in revision {revision_text}", join(directory, SOURCE_IGNORE));
        if blob.size() as u64 > limits.max_file_size {
            return Err(SourceError::InvalidIgnore {
                origin,
                detail: format!("larger than {} bytes", limits.max_file_size),
            });
        }
        let text = String::from_utf8_lossy(blob.content());
        let matcher = build_matcher(directory, &text, &origin)?;
        let mut extended: Vec<Rc<Gitignore>> = chain.iter().cloned().collect();
        extended.push(Rc::new(matcher));
        Ok(Rc::new(extended))
    };
    // `.sourceignore` files of the directories above the requested path apply too.
    if !normalized.is_empty() {
        let mut directory = String::new();
        let mut tree = root_tree.clone();
        for part in normalized.split('/') {
            chain = extend(&chain, &tree, &directory)?;
            directory = join(&directory, part);
            let next_id = match tree.get_name(part) {
                Some(entry) if entry.filemode() == MODE_TREE => entry.id(),
                _ => break,
            };
            let Ok(next) = repository.find_tree(next_id) else {
                break;
            };
            tree = next;
        }
    }
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
    // The whole revision's bytes are bounded too (the agent's --max-revision-bytes), checked from blob headers so a
    // huge revision is refused before its contents are in memory.
    let max_revision_bytes = crate::manifests::RevisionBudget::default().max_bytes;
    let mut revision_bytes: u64 = 0;
    // Depth-first over (tree, its path relative to the start); sorted output follows from Git's tree order.
    let mut pending: Vec<(git2::Tree<'_>, String, IgnoreChain)> = vec![(start, String::new(), chain)];
    while let Some((tree, prefix, chain)) = pending.pop() {
        let chain = extend(&chain, &tree, &join(&normalized, &prefix))?;
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
            if is_ignored(&chain, &join(&normalized, &relative), mode == MODE_TREE) {
                continue;
            }
            let wanted = match mode {
                MODE_TREE => {
                    let subtree = repository
                        .find_tree(entry.id())
                        .map_err(|error| cache("reading a tree object", error))?;
                    subtrees.push((subtree, relative, Rc::clone(&chain)));
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
            revision_bytes = revision_bytes.saturating_add(size);
            if revision_bytes > max_revision_bytes {
                return Err(SourceError::RevisionTooLarge {
                    path: normalized,
                    revision: revision_text,
                    limit: max_revision_bytes,
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
