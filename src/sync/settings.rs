//! What a GitSync asks for, made concrete: its ref, path, interval and time limit with their defaults, its
//! credentials from a Secret, and the files of a Git tree as the loader reads them. Pure: no client here.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::ByteString;

use crate::api::gitsync::GitSyncSpec;
use crate::manifests::diagnostics::{Diagnostic, Location};
use crate::manifests::files::{SourceFile, is_manifest};
use crate::source::{Credentials, GitRef, Secret, TreeEntry};

/// How often a GitSync polls when it says nothing.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// The time limit of one Git operation when the GitSync says nothing.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// The branch followed when the GitSync names no ref.
pub const DEFAULT_BRANCH: &str = "main";

/// A GitSync spec that cannot be used as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("spec.{field}: {message}")]
pub struct SpecError {
    /// The field at fault.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// The GitSync's settings with defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Which commit to follow.
    pub reference: GitRef,
    /// Directory in the repository, without leading or trailing '/'; empty is the root.
    pub path: String,
    /// Poll interval.
    pub interval: Duration,
    /// Time limit of one poll.
    pub timeout: Duration,
}

/// Reads a GitSync spec, refusing what cannot work (two refs at once, a path that leaves the repository, a
/// duration that does not parse).
pub fn settings(spec: &GitSyncSpec) -> Result<Settings, SpecError> {
    let reference = match &spec.git_ref {
        None => GitRef::Branch(DEFAULT_BRANCH.to_string()),
        Some(reference) => {
            let set: Vec<&str> = [
                ("commit", reference.commit.is_some()),
                ("semver", reference.semver.is_some()),
                ("tag", reference.tag.is_some()),
                ("branch", reference.branch.is_some()),
            ]
            .into_iter()
            .filter_map(|(name, present)| present.then_some(name))
            .collect();
            // As in Flux, a commit may name its branch; otherwise exactly one field.
            let combined_commit = set == ["commit", "branch"];
            if set.len() > 1 && !combined_commit {
                return Err(SpecError {
                    field: "ref".into(),
                    message: format!(
                        "sets {}; set exactly one of branch, tag, semver or commit",
                        set.join(" and ")
                    ),
                });
            }
            if let Some(commit) = &reference.commit {
                GitRef::Commit(commit.clone())
            } else if let Some(range) = &reference.semver {
                GitRef::Semver(range.clone())
            } else if let Some(tag) = &reference.tag {
                GitRef::Tag(tag.clone())
            } else {
                GitRef::Branch(reference.branch.clone().unwrap_or_else(|| DEFAULT_BRANCH.to_string()))
            }
        }
    };
    let path = spec.path.as_deref().unwrap_or_default().trim_matches('/').to_string();
    let path = path.strip_prefix("./").unwrap_or(&path).to_string();
    if path.split('/').any(|segment| segment == "..") {
        return Err(SpecError {
            field: "path".into(),
            message: format!("\"{path}\" leaves the repository; use a path inside it"),
        });
    }
    let interval = match &spec.interval {
        None => DEFAULT_INTERVAL,
        Some(text) => parse_duration(text).ok_or_else(|| duration_error("interval", text))?,
    };
    if interval < Duration::from_secs(1) {
        return Err(SpecError {
            field: "interval".into(),
            message: "is shorter than 1s; poll at most once a second".into(),
        });
    }
    let timeout = match &spec.timeout {
        None => DEFAULT_TIMEOUT,
        Some(text) => parse_duration(text).ok_or_else(|| duration_error("timeout", text))?,
    };
    Ok(Settings {
        reference,
        path: if path == "." { String::new() } else { path },
        interval,
        timeout,
    })
}

fn duration_error(field: &str, text: &str) -> SpecError {
    SpecError {
        field: field.into(),
        message: format!("\"{text}\" is not a duration; write for example 30s, 5m or 1h30m"),
    }
}

/// Parses a Go-style duration: a sequence of numbers with units `ms`, `s`, `m`, `h` (`1m30s`, `0.5h`, `500ms`).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let split = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let (number, tail) = rest.split_at(split);
        let value: f64 = number.parse().ok()?;
        let (unit, remainder) = if let Some(remainder) = tail.strip_prefix("ms") {
            (0.001, remainder)
        } else if let Some(remainder) = tail.strip_prefix('s') {
            (1.0, remainder)
        } else if let Some(remainder) = tail.strip_prefix('m') {
            (60.0, remainder)
        } else if let Some(remainder) = tail.strip_prefix('h') {
            (3600.0, remainder)
        } else {
            return None;
        };
        total += Duration::try_from_secs_f64(value * unit).ok()?;
        rest = remainder;
    }
    Some(total)
}

/// The credentials in a GitSync's Secret: `username`/`password`, `bearerToken`, `identity`/`known_hosts`, `ca.crt`.
pub fn credentials(data: &BTreeMap<String, ByteString>) -> Credentials {
    let text = |key: &str| {
        data.get(key)
            .map(|value| String::from_utf8_lossy(&value.0).into_owned())
    };
    Credentials {
        username: text("username"),
        password: text("password").map(Secret::new),
        bearer_token: text("bearerToken").map(Secret::new),
        ca_cert: data.get("ca.crt").map(|value| value.0.clone()),
        identity: text("identity").map(Secret::new),
        known_hosts: text("known_hosts"),
    }
}

/// The files of a Git tree as the loader reads them. A symlink to a file inside the tree stands for that file;
/// one that points outside it, or nowhere, is an error in that file's place.
pub fn tree_files(entries: Vec<TreeEntry>) -> (Vec<SourceFile>, Vec<Diagnostic>) {
    let mut files = BTreeMap::new();
    let mut links = Vec::new();
    for entry in entries {
        match entry {
            TreeEntry::File { path, content } => {
                files.insert(path, content);
            }
            TreeEntry::Symlink { path, target } => links.push((path, target)),
        }
    }
    let mut diagnostics = Vec::new();
    let mut resolved = Vec::new();
    for (path, target) in links {
        if !is_manifest(&path) {
            continue;
        }
        match resolve_link(&path, &target, &files) {
            Some(content) => resolved.push((path, content)),
            None => diagnostics.push(Diagnostic::error(
                &path,
                Location::default(),
                None,
                format!(
                    "is a symlink to \"{target}\", which is outside the synced path or not a YAML file in it; it is not \
                     followed (copy the file instead)"
                ),
            )),
        }
    }
    files.extend(resolved);
    (
        files
            .into_iter()
            .map(|(path, content)| SourceFile { path, content })
            .collect(),
        diagnostics,
    )
}

fn resolve_link(path: &str, target: &str, files: &BTreeMap<String, Vec<u8>>) -> Option<Vec<u8>> {
    if target.starts_with('/') {
        return None;
    }
    let mut segments: Vec<&str> = path.split('/').collect();
    segments.pop();
    for segment in target.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop()?;
            }
            other => segments.push(other),
        }
    }
    files.get(&segments.join("/")).cloned()
}

/// Namespaces named with `--allow-namespace`, besides each GitSync's own.
pub fn allowed_namespaces(names: &[String]) -> BTreeSet<String> {
    names
        .iter()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::gitsync::GitReference;

    fn spec() -> GitSyncSpec {
        GitSyncSpec {
            url: "https://example.com/config.git".into(),
            ..GitSyncSpec::default()
        }
    }

    #[test]
    fn defaults_follow_main_every_minute_from_the_root() {
        let settings = settings(&spec()).expect("valid");
        assert_eq!(settings.reference, GitRef::Branch("main".into()));
        assert_eq!(
            (settings.path.as_str(), settings.interval, settings.timeout),
            ("", DEFAULT_INTERVAL, DEFAULT_TIMEOUT)
        );
    }

    #[test]
    fn one_ref_at_a_time_except_a_commit_with_its_branch() {
        let mut both = spec();
        both.git_ref = Some(GitReference {
            tag: Some("v1".into()),
            branch: Some("main".into()),
            ..GitReference::default()
        });
        assert_eq!(
            settings(&both).expect_err("refused").to_string(),
            "spec.ref: sets tag and branch; set exactly one of branch, tag, semver or commit"
        );
        let commit = "0123456789abcdef0123456789abcdef01234567";
        both.git_ref = Some(GitReference {
            commit: Some(commit.into()),
            branch: Some("main".into()),
            ..GitReference::default()
        });
        assert_eq!(settings(&both).expect("valid").reference, GitRef::Commit(commit.into()));
    }

    #[test]
    fn paths_stay_inside_the_repository() {
        let mut escaping = spec();
        escaping.path = Some("./clusters/../../etc".into());
        assert!(settings(&escaping).is_err());
        escaping.path = Some("./examples-repo/".into());
        assert_eq!(settings(&escaping).expect("valid").path, "examples-repo");
    }

    #[test]
    fn durations_read_like_go() {
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("0.5h"), Some(Duration::from_secs(1800)));
        for bad in ["", "5", "1d", "m", "1m30"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn secret_keys_become_credentials() {
        let data: BTreeMap<String, ByteString> = [
            ("username".to_string(), ByteString(b"git".to_vec())),
            ("password".to_string(), ByteString(b"token".to_vec())),
            ("ca.crt".to_string(), ByteString(b"PEM".to_vec())),
        ]
        .into();
        let credentials = credentials(&data);
        assert_eq!(credentials.username.as_deref(), Some("git"));
        assert_eq!(credentials.password.as_ref().map(Secret::expose), Some("token"));
        assert_eq!(credentials.ca_cert.as_deref(), Some(&b"PEM"[..]));
        assert!(credentials.identity.is_none());
    }

    #[test]
    fn symlinks_resolve_inside_the_tree_only() {
        let entries = vec![
            TreeEntry::File {
                path: "databases/cache.yaml".into(),
                content: b"a: 1".to_vec(),
            },
            TreeEntry::Symlink {
                path: "alias.yaml".into(),
                target: "databases/cache.yaml".into(),
            },
            TreeEntry::Symlink {
                path: "databases/up.yaml".into(),
                target: "../../outside.yaml".into(),
            },
            TreeEntry::Symlink {
                path: "abs.yaml".into(),
                target: "/etc/passwd".into(),
            },
        ];
        let (files, diagnostics) = tree_files(entries);
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["alias.yaml", "databases/cache.yaml"]);
        assert_eq!(files[0].content, b"a: 1");
        let failed: Vec<&str> = diagnostics.iter().map(|d| d.file.as_str()).collect();
        assert_eq!(failed, ["databases/up.yaml", "abs.yaml"]);
    }
}
