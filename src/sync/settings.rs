//! What a GitSync asks for, made concrete: its ref, path, interval and time limit with their defaults, its
//! credentials from a Secret, and the files of a Git tree as the loader reads them. Pure: no client here.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::ByteString;

use crate::api::gitsync::GitSyncSpec;
use crate::manifests::diagnostics::{Diagnostic, Location, quote};
use crate::manifests::files::{SourceFile, is_manifest};
use crate::source::{Credentials, GitRef, Secret, TreeEntry};

/// How often a GitSync polls when it says nothing.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// The time limit of one Git operation when the GitSync says nothing.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// The branch followed when the GitSync names no ref.
pub const DEFAULT_BRANCH: &str = "main";
/// The longest poll interval accepted: one day (a GitSync that should not poll sets `suspend`).
pub const MAX_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// The longest time limit of one Git operation accepted: one hour.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
/// The longest duration text accepted, in characters (the CRD says the same with `maxLength`).
pub const MAX_DURATION_TEXT: usize = 32;

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
            message: format!("{} leaves the repository; use a path inside it", quote(&path)),
        });
    }
    let interval = bounded_duration("interval", spec.interval.as_deref(), DEFAULT_INTERVAL, MAX_INTERVAL)?;
    let timeout = bounded_duration("timeout", spec.timeout.as_deref(), DEFAULT_TIMEOUT, MAX_TIMEOUT)?;
    if let Some(webhook) = &spec.webhook {
        crate::webhook::validate_secret_name(&webhook.secret_ref.name).map_err(|message| SpecError {
            field: "webhook.secretRef.name".into(),
            message,
        })?;
    }
    Ok(Settings {
        reference,
        path: if path == "." { String::new() } else { path },
        interval,
        timeout,
    })
}

/// A duration field of the spec: its default when absent, else a parsed value between 1s and `maximum`.
fn bounded_duration(
    field: &str,
    text: Option<&str>,
    default: Duration,
    maximum: Duration,
) -> Result<Duration, SpecError> {
    let Some(text) = text else {
        return Ok(default);
    };
    let error = |message: String| SpecError {
        field: field.into(),
        message,
    };
    let duration = parse_duration(text).map_err(|problem| error(problem.message(text)))?;
    if duration < Duration::from_secs(1) {
        return Err(error(format!("{} is shorter than 1s; use 1s or more", quote(text))));
    }
    if duration > maximum {
        return Err(error(format!(
            "{} is longer than the maximum of {}; use {} or less",
            quote(text),
            format_duration(maximum),
            format_duration(maximum)
        )));
    }
    Ok(duration)
}

/// Why a text is not a duration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DurationError {
    /// Not the syntax of a duration.
    Syntax,
    /// Longer than [`MAX_DURATION_TEXT`] characters.
    TooLong,
    /// A well-formed duration too large to represent (over about 584 billion years).
    Overflow,
}

impl DurationError {
    /// The message for a user who wrote `text`.
    pub fn message(self, text: &str) -> String {
        match self {
            DurationError::Syntax => {
                format!("{} is not a duration; write for example 30s, 5m or 1h30m", quote(text))
            }
            DurationError::TooLong => format!(
                "{} is longer than {MAX_DURATION_TEXT} characters; write for example 30s, 5m or 1h30m",
                quote(text)
            ),
            DurationError::Overflow => format!(
                "{} is too large to be a duration; write for example 30s, 5m or 1h30m",
                quote(text)
            ),
        }
    }
}

/// Formats a whole number of seconds the way durations are written (`1h`, `90s` → `1m30s`).
pub fn format_duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    let (hours, minutes, seconds) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
    let mut text = String::new();
    if hours > 0 {
        text.push_str(&format!("{hours}h"));
    }
    if minutes > 0 {
        text.push_str(&format!("{minutes}m"));
    }
    if seconds > 0 || text.is_empty() {
        text.push_str(&format!("{seconds}s"));
    }
    text
}

/// Parses a Go-style duration: a sequence of numbers with units `ms`, `s`, `m`, `h` (`1m30s`, `0.5h`, `500ms`).
/// Every step is checked: a sum or product that does not fit a [`Duration`] is [`DurationError::Overflow`],
/// never a panic.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let mut rest = text.trim();
    if rest.chars().count() > MAX_DURATION_TEXT {
        return Err(DurationError::TooLong);
    }
    if rest.is_empty() {
        return Err(DurationError::Syntax);
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let split = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or(DurationError::Syntax)?;
        let (number, tail) = rest.split_at(split);
        if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
            return Err(DurationError::Syntax);
        }
        let value: f64 = number.parse().map_err(|_| DurationError::Syntax)?;
        let (unit, remainder) = if let Some(remainder) = tail.strip_prefix("ms") {
            (0.001, remainder)
        } else if let Some(remainder) = tail.strip_prefix('s') {
            (1.0, remainder)
        } else if let Some(remainder) = tail.strip_prefix('m') {
            (60.0, remainder)
        } else if let Some(remainder) = tail.strip_prefix('h') {
            (3600.0, remainder)
        } else {
            return Err(DurationError::Syntax);
        };
        // `try_from_secs_f64` refuses infinity and values beyond `Duration::MAX`; the sum is checked as well.
        let part = Duration::try_from_secs_f64(value * unit).map_err(|_| DurationError::Overflow)?;
        total = total.checked_add(part).ok_or(DurationError::Overflow)?;
        rest = remainder;
    }
    Ok(total)
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
                    "is a symlink to {}, which is outside the synced path or not a YAML file in it; it is not \
                     followed (copy the file instead)",
                    quote(&target)
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
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("0.5h"), Ok(Duration::from_secs(1800)));
        for bad in ["", "5", "1d", "m", "1m30", ".5s", "5.s"] {
            assert_eq!(parse_duration(bad), Err(DurationError::Syntax), "{bad}");
        }
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(MAX_INTERVAL), "24h");
    }

    #[test]
    fn overflowing_durations_are_errors_not_panics() {
        for huge in [
            "10000000000000000000s10000000000000000000s",
            "18446744073709551615s1s",
            "99999999999999999999h",
            "1e400s",
        ] {
            assert!(parse_duration(huge).is_err(), "{huge}");
        }
        assert_eq!(
            parse_duration("10000000000000000000s10000000000000000000s"),
            Err(DurationError::TooLong)
        );
        // 32 characters, each part fits a Duration, the sum does not: the addition is checked.
        assert_eq!(
            parse_duration("5100000000000000h99999999999999h"),
            Err(DurationError::Overflow)
        );
        assert_eq!(parse_duration("18446744073709551615s1s"), Err(DurationError::Overflow));
        assert_eq!(parse_duration("99999999999999999999h"), Err(DurationError::Overflow));
    }

    #[test]
    fn intervals_and_timeouts_are_bounded() {
        let mut hostile = spec();
        hostile.interval = Some("10000000000000000000s10000000000000000000s".into());
        assert_eq!(
            settings(&hostile).expect_err("refused").to_string(),
            "spec.interval: \"10000000000000000000s10000000000000000000s\" is longer than 32 characters; write for \
             example 30s, 5m or 1h30m"
        );
        hostile.interval = Some("5100000000000000h99999999999999h".into());
        assert_eq!(
            settings(&hostile).expect_err("refused").to_string(),
            "spec.interval: \"5100000000000000h99999999999999h\" is too large to be a duration; write for example \
             30s, 5m or 1h30m"
        );
        hostile.interval = Some("25h".into());
        assert_eq!(
            settings(&hostile).expect_err("refused").to_string(),
            "spec.interval: \"25h\" is longer than the maximum of 24h; use 24h or less"
        );
        hostile.interval = Some("500ms".into());
        assert_eq!(
            settings(&hostile).expect_err("refused").to_string(),
            "spec.interval: \"500ms\" is shorter than 1s; use 1s or more"
        );
        hostile.interval = Some("24h".into());
        hostile.timeout = Some("61m".into());
        assert_eq!(
            settings(&hostile).expect_err("refused").to_string(),
            "spec.timeout: \"61m\" is longer than the maximum of 1h; use 1h or less"
        );
        hostile.timeout = Some("1h".into());
        let settings = settings(&hostile).expect("valid");
        assert_eq!((settings.interval, settings.timeout), (MAX_INTERVAL, MAX_TIMEOUT));
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
