//! Collecting the YAML files of a config repository from a directory: `*.yaml` and `*.yml` files, recursively,
//! skipping hidden directories such as `.git`; symlinks are followed only while they stay inside the root, and
//! files over the size limit are refused before they are read.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

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
/// returned so that every problem of the revision can be reported at once.
pub fn read_directory(root: &Path, limits: &Limits) -> (Vec<SourceFile>, Vec<Diagnostic>) {
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
    let mut visited = BTreeSet::new();
    walk(
        &canonical_root,
        &canonical_root,
        "",
        limits,
        &mut visited,
        &mut files,
        &mut diagnostics,
    );
    files.sort_by(|a, b| a.path.cmp(&b.path));
    (files, diagnostics)
}

fn whole_file(path: &str, message: &str) -> Diagnostic {
    Diagnostic::error(path, Location::default(), None, message)
}

fn walk(
    root: &Path,
    directory: &Path,
    relative: &str,
    limits: &Limits,
    visited: &mut BTreeSet<PathBuf>,
    files: &mut Vec<SourceFile>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    if !visited.insert(directory.to_path_buf()) {
        return;
    }
    let entries = match fs::read_dir(directory) {
        Ok(entries) => entries,
        Err(error) => {
            diagnostics.push(whole_file(relative, &format!("cannot be listed ({error})")));
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
                        diagnostics.push(whole_file(
                            &path_in_repo,
                            "is a symlink that points outside the repository; it is not followed (copy the file into the repository instead)",
                        ));
                    }
                    continue;
                }
                Err(_) => {
                    if is_manifest(&name) {
                        diagnostics.push(whole_file(
                            &path_in_repo,
                            "is a broken symlink; remove it or fix its target",
                        ));
                    }
                    continue;
                }
            }
        }
        if target.is_dir() {
            walk(root, &target, &path_in_repo, limits, visited, files, diagnostics);
            continue;
        }
        if !is_manifest(&name) {
            continue;
        }
        if files.len() >= limits.max_files {
            diagnostics.push(whole_file(
                &path_in_repo,
                &format!(
                    "the repository has more than {} YAML files; split it into several GitSync paths",
                    limits.max_files
                ),
            ));
            return;
        }
        match fs::metadata(&target) {
            Ok(metadata) if metadata.len() > limits.max_file_bytes => {
                diagnostics.push(whole_file(
                    &path_in_repo,
                    &format!(
                        "is {} bytes, over the limit of {} bytes; split it into smaller files",
                        metadata.len(),
                        limits.max_file_bytes
                    ),
                ));
                continue;
            }
            Ok(_) => {}
            Err(error) => {
                diagnostics.push(whole_file(&path_in_repo, &format!("cannot be read ({error})")));
                continue;
            }
        }
        match fs::read(&target) {
            Ok(content) => files.push(SourceFile {
                path: path_in_repo,
                content,
            }),
            Err(error) => diagnostics.push(whole_file(&path_in_repo, &format!("cannot be read ({error})"))),
        }
    }
}
