//! Collecting the YAML files of a config repository from a directory: `*.yaml` and `*.yml` files, recursively,
//! skipping hidden directories such as `.git`; symlinks are followed only while they stay inside the root, and
//! files over the size limit are refused before they are read.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use super::budget::{RevisionBudget, bytes_message};
use super::diagnostics::{Diagnostic, Location};
use super::yaml::Limits;

/// A file of a config repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFile {
    /// Path relative to the repository root, '/'-separated.
    pub path: String,
    /// Content, as read.
    pub content: Vec<u8>,
}

/// Whether a file name is one the loader reads.
pub fn is_manifest(name: &str) -> bool {
    name.ends_with(".yaml") || name.ends_with(".yml")
}

/// Reads every manifest file under `root`. Problems with single files are diagnostics; the other files are still
/// returned so that every problem of the revision can be reported at once. Files are sized before they are read:
/// once their total passes `budget.max_bytes`, reading stops with one error, so memory stays bounded.
pub fn read_directory(root: &Path, limits: &Limits, budget: &RevisionBudget) -> (Vec<SourceFile>, Vec<Diagnostic>) {
    let mut files = Vec::new();
    let mut diagnostics = Vec::new();
    let canonical_root = match fs::canonicalize(root) {
        Ok(path) if path.is_dir() => path,
        Ok(_) => {
            diagnostics.push(whole_file(
                &root.display().to_string(),
                "is not a directory; give the directory of the config repository",
            ));
            return (files, diagnostics);
        }
        Err(error) => {
            diagnostics.push(whole_file(
                &root.display().to_string(),
                &format!("cannot be read ({error}); check the path"),
            ));
            return (files, diagnostics);
        }
    };
    let mut walker = Walker {
        root: &canonical_root,
        limits,
        budget,
        total_bytes: 0,
        stopped: false,
        visited: BTreeSet::new(),
        files: &mut files,
        diagnostics: &mut diagnostics,
    };
    walker.walk(&canonical_root, "");
    files.sort_by(|a, b| a.path.cmp(&b.path));
    (files, diagnostics)
}

fn whole_file(path: &str, message: &str) -> Diagnostic {
    Diagnostic::error(path, Location::default(), None, message)
}

struct Walker<'a> {
    root: &'a Path,
    limits: &'a Limits,
    budget: &'a RevisionBudget,
    /// Bytes of the files read so far.
    total_bytes: u64,
    /// Whether the budget stopped the walk.
    stopped: bool,
    visited: BTreeSet<PathBuf>,
    files: &'a mut Vec<SourceFile>,
    diagnostics: &'a mut Vec<Diagnostic>,
}

impl Walker<'_> {
    fn walk(&mut self, directory: &Path, relative: &str) {
        let (root, limits) = (self.root, self.limits);
        if self.stopped || !self.visited.insert(directory.to_path_buf()) {
            return;
        }
        let entries = match fs::read_dir(directory) {
            Ok(entries) => entries,
            Err(error) => {
                self.diagnostics
                    .push(whole_file(relative, &format!("cannot be listed ({error})")));
                return;
            }
        };
        let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
        entries.sort_by_key(|entry| entry.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let path_in_repo = if relative.is_empty() {
                name.clone()
            } else {
                format!("{relative}/{name}")
            };
            let Ok(file_type) = entry.file_type() else { continue };
            let mut target = entry.path();
            if file_type.is_symlink() {
                match fs::canonicalize(entry.path()) {
                    Ok(resolved) if resolved.starts_with(root) => target = resolved,
                    Ok(_) => {
                        if is_manifest(&name) || entry.path().is_dir() {
                            self.diagnostics.push(whole_file(
                            &path_in_repo,
                            "is a symlink that points outside the repository; it is not followed (copy the file into the repository instead)",
                        ));
                        }
                        continue;
                    }
                    Err(_) => {
                        if is_manifest(&name) {
                            self.diagnostics.push(whole_file(
                                &path_in_repo,
                                "is a broken symlink; remove it or fix its target",
                            ));
                        }
                        continue;
                    }
                }
            }
            if target.is_dir() {
                self.walk(&target, &path_in_repo);
                continue;
            }
            if !is_manifest(&name) {
                continue;
            }
            if self.files.len() >= limits.max_files {
                self.diagnostics.push(whole_file(
                    &path_in_repo,
                    &format!(
                        "the repository has more than {} YAML files; split it into several GitSync paths",
                        limits.max_files
                    ),
                ));
                return;
            }
            match fs::metadata(&target) {
                Ok(metadata) if metadata.len() <= limits.max_file_bytes => {
                    self.total_bytes = self.total_bytes.saturating_add(metadata.len());
                    if self.total_bytes > self.budget.max_bytes {
                        self.diagnostics
                            .push(whole_file(&path_in_repo, &bytes_message(self.budget)));
                        self.stopped = true;
                        return;
                    }
                }
                Ok(metadata) => {
                    self.diagnostics.push(whole_file(
                        &path_in_repo,
                        &format!(
                            "is {} bytes, over the limit of {} bytes; split it into smaller files",
                            metadata.len(),
                            limits.max_file_bytes
                        ),
                    ));
                    continue;
                }
                Err(error) => {
                    self.diagnostics
                        .push(whole_file(&path_in_repo, &format!("cannot be read ({error})")));
                    continue;
                }
            }
            match fs::read(&target) {
                Ok(content) => self.files.push(SourceFile {
                    path: path_in_repo,
                    content,
                }),
                Err(error) => self
                    .diagnostics
                    .push(whole_file(&path_in_repo, &format!("cannot be read ({error})"))),
            }
        }
    }
}
