//! What a push delivery says and whether it concerns a GitSync: the refs that moved and, when the payload lists
//! them completely, the files the pushed commits changed. A push to another ref, or one whose files all lie
//! outside the GitSync's path, does not trigger a sync (one webhook for a monorepo must not resync every
//! GitSync of it). Pure: bytes in, a decision out.

use serde_json::Value;

use super::verify::Forge;
use crate::source::GitRef;

/// GitHub lists at most this many commits in a push payload; a push of more may change files not listed.
const GITHUB_MAX_COMMITS: usize = 2048;

/// A push, as far as the receiver needs it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Push {
    /// The full names of the refs that moved (`refs/heads/main`, `refs/tags/v1.2.0`).
    pub refs: Vec<String>,
    /// The files the pushed commits added, modified or removed; `None` when the payload does not list them all
    /// (Bitbucket, truncated commit lists, a new or force-pushed branch), so the path filter cannot apply.
    pub changed_files: Option<Vec<String>>,
}

/// A payload that is not a push this receiver understands.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// The body is not JSON.
    #[error("unable to read the push payload: the body is not JSON ({0}); select the content type application/json")]
    NotJson(String),
    /// No ref in it.
    #[error("unable to read the push payload: it names no ref (`ref`, `push.changes[].new` or `changes[].ref.id`)")]
    NoRef,
}

/// Reads the push payload `body` sent by `forge`.
pub fn parse_push(forge: Forge, body: &[u8]) -> Result<Push, PayloadError> {
    let payload: Value = serde_json::from_slice(body).map_err(|error| PayloadError::NotJson(error.to_string()))?;
    let push = match forge {
        Forge::Bitbucket => bitbucket(&payload),
        _ => github_like(&payload),
    };
    if push.refs.is_empty() {
        return Err(PayloadError::NoRef);
    }
    Ok(push)
}

/// GitHub, Gitea, Forgejo, GitLab and generic senders: `ref` and `commits[].{added,modified,removed}`.
fn github_like(payload: &Value) -> Push {
    let refs: Vec<String> = payload["ref"].as_str().map(str::to_string).into_iter().collect();
    let commits = payload["commits"].as_array();
    let listed = commits.map_or(0, Vec::len) as u64;
    // GitLab says how many commits the push had (`total_commits_count`), Gitea too (`total_commits`).
    let total = payload["total_commits_count"]
        .as_u64()
        .or_else(|| payload["total_commits"].as_u64())
        .unwrap_or(listed);
    let complete = commits.is_some_and(|commits| !commits.is_empty() && commits.len() < GITHUB_MAX_COMMITS)
        && total <= listed
        && payload["forced"].as_bool() != Some(true)
        && payload["created"].as_bool() != Some(true)
        && payload["deleted"].as_bool() != Some(true);
    let changed_files = complete
        .then(|| {
            let mut files = Vec::new();
            for commit in commits.into_iter().flatten() {
                for list in ["added", "modified", "removed"] {
                    files.extend(
                        commit[list]
                            .as_array()?
                            .iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string),
                    );
                }
            }
            Some(files)
        })
        .flatten();
    Push { refs, changed_files }
}

/// Bitbucket Cloud (`push.changes[].new.{type,name}`) and Server (`changes[].ref.id`); neither lists files.
fn bitbucket(payload: &Value) -> Push {
    let mut refs = Vec::new();
    for change in payload["push"]["changes"].as_array().into_iter().flatten() {
        // A deleted ref has `new: null`; its old name still tells which GitSync it concerned.
        let side = if change["new"].is_object() {
            &change["new"]
        } else {
            &change["old"]
        };
        if let Some(name) = side["name"].as_str() {
            let prefix = if side["type"].as_str() == Some("tag") {
                "refs/tags/"
            } else {
                "refs/heads/"
            };
            refs.push(format!("{prefix}{name}"));
        }
    }
    for change in payload["changes"].as_array().into_iter().flatten() {
        if let Some(id) = change["ref"]["id"].as_str().or_else(|| change["refId"].as_str()) {
            refs.push(id.to_string());
        }
    }
    Push {
        refs,
        changed_files: None,
    }
}

/// What a push means for one GitSync.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Sync now.
    Trigger,
    /// No moved ref is the one the GitSync follows.
    IgnoredRef,
    /// The GitSync's ref moved, but no changed file lies under its path.
    IgnoredPath,
}

/// Whether `push` concerns a GitSync that follows `reference` under `path` (no leading or trailing '/', empty for
/// the root).
pub fn decide(push: &Push, reference: &GitRef, path: &str) -> Decision {
    if !push.refs.iter().any(|name| follows(reference, name)) {
        return Decision::IgnoredRef;
    }
    match &push.changed_files {
        Some(files) if !path.is_empty() && !files.iter().any(|file| under(file, path)) => Decision::IgnoredPath,
        _ => Decision::Trigger,
    }
}

/// Whether a GitSync following `reference` follows the ref `name` (a full ref name).
fn follows(reference: &GitRef, name: &str) -> bool {
    match reference {
        GitRef::Branch(branch) => {
            name.strip_prefix("refs/heads/") == Some(branch.strip_prefix("refs/heads/").unwrap_or(branch))
        }
        GitRef::Tag(tag) => name.strip_prefix("refs/tags/") == Some(tag.strip_prefix("refs/tags/").unwrap_or(tag)),
        // Any new version tag may be the highest match; the sync resolves the range.
        GitRef::Semver(_) => name
            .strip_prefix("refs/tags/")
            .is_some_and(|tag| semver::Version::parse(tag.strip_prefix('v').unwrap_or(tag)).is_ok()),
        GitRef::Name(full) => name == full,
        // A pinned commit does not move.
        GitRef::Commit(_) => false,
    }
}

/// Whether `file` (relative to the repository root) lies under `path`.
fn under(file: &str, path: &str) -> bool {
    let file = file.trim_start_matches('/');
    file == path || file.strip_prefix(path).is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn github(reference: &str, files: &[&str]) -> Vec<u8> {
        serde_json::json!({
            "ref": reference, "before": "a".repeat(40), "after": "b".repeat(40),
            "created": false, "deleted": false, "forced": false,
            "commits": [{"id": "b".repeat(40), "added": [], "modified": files, "removed": []}],
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn a_push_to_the_branch_triggers_and_another_branch_does_not() {
        let main = GitRef::Branch("main".into());
        let push = parse_push(Forge::GitHub, &github("refs/heads/main", &["databases/a.yaml"])).expect("a push");
        assert_eq!(decide(&push, &main, ""), Decision::Trigger);
        let push = parse_push(Forge::GitHub, &github("refs/heads/dev", &["databases/a.yaml"])).expect("a push");
        assert_eq!(decide(&push, &main, ""), Decision::IgnoredRef);
        let push = parse_push(Forge::GitHub, &github("refs/tags/main", &["databases/a.yaml"])).expect("a push");
        assert_eq!(decide(&push, &main, ""), Decision::IgnoredRef);
        assert_eq!(decide(&push, &GitRef::Commit("c".repeat(40)), ""), Decision::IgnoredRef);
    }

    #[test]
    fn files_outside_the_path_do_not_trigger() {
        let main = GitRef::Branch("main".into());
        let push = parse_push(
            Forge::GitHub,
            &github("refs/heads/main", &["apps/web.yaml", "README.md"]),
        )
        .expect("a push");
        assert_eq!(decide(&push, &main, "databases"), Decision::IgnoredPath);
        assert_eq!(decide(&push, &main, "apps"), Decision::Trigger);
        assert_eq!(decide(&push, &main, ""), Decision::Trigger);
        // `databases-old/` is not under `databases`.
        let push = parse_push(Forge::GitHub, &github("refs/heads/main", &["databases-old/a.yaml"])).expect("a push");
        assert_eq!(decide(&push, &main, "databases"), Decision::IgnoredPath);
        let push = parse_push(Forge::GitHub, &github("refs/heads/main", &["team/databases/a.yaml"])).expect("a push");
        assert_eq!(decide(&push, &main, "team/databases"), Decision::Trigger);
    }

    #[test]
    fn incomplete_file_lists_always_trigger() {
        let main = GitRef::Branch("main".into());
        // GitLab lists at most 20 commits and says how many there were.
        let body = serde_json::json!({
            "object_kind": "push", "ref": "refs/heads/main", "total_commits_count": 30,
            "commits": [{"added": ["apps/x.yaml"], "modified": [], "removed": []}],
        });
        let push = parse_push(Forge::GitLab, body.to_string().as_bytes()).expect("a push");
        assert_eq!(push.changed_files, None);
        assert_eq!(decide(&push, &main, "databases"), Decision::Trigger);
        // A force push.
        let body = serde_json::json!({"ref": "refs/heads/main", "forced": true,
            "commits": [{"added": ["apps/x.yaml"], "modified": [], "removed": []}]});
        let push = parse_push(Forge::GitHub, body.to_string().as_bytes()).expect("a push");
        assert_eq!(decide(&push, &main, "databases"), Decision::Trigger);
        // No commits at all (a branch moved to an existing commit).
        let body = serde_json::json!({"ref": "refs/heads/main", "commits": []});
        let push = parse_push(Forge::Gitea, body.to_string().as_bytes()).expect("a push");
        assert_eq!(decide(&push, &main, "databases"), Decision::Trigger);
    }

    #[test]
    fn tags_and_semver_ranges() {
        let body = serde_json::json!({"ref": "refs/tags/v1.4.0", "commits": []}).to_string();
        let push = parse_push(Forge::GitLab, body.as_bytes()).expect("a push");
        assert_eq!(decide(&push, &GitRef::Tag("v1.4.0".into()), ""), Decision::Trigger);
        assert_eq!(decide(&push, &GitRef::Tag("v1.3.0".into()), ""), Decision::IgnoredRef);
        assert_eq!(decide(&push, &GitRef::Semver(">=1.0.0".into()), ""), Decision::Trigger);
        let body = serde_json::json!({"ref": "refs/tags/latest", "commits": []}).to_string();
        let push = parse_push(Forge::GitLab, body.as_bytes()).expect("a push");
        assert_eq!(
            decide(&push, &GitRef::Semver(">=1.0.0".into()), ""),
            Decision::IgnoredRef
        );
    }

    #[test]
    fn bitbucket_cloud_and_server_payloads() {
        let cloud = serde_json::json!({"push": {"changes": [
            {"new": {"type": "branch", "name": "main", "target": {"hash": "b".repeat(40)}}, "old": null}
        ]}});
        let push = parse_push(Forge::Bitbucket, cloud.to_string().as_bytes()).expect("a push");
        assert_eq!(push.refs, vec!["refs/heads/main".to_string()]);
        assert_eq!(push.changed_files, None);
        let server = serde_json::json!({"eventKey": "repo:refs_changed",
            "changes": [{"ref": {"id": "refs/tags/v2.0.0", "type": "TAG"}, "toHash": "c".repeat(40)}]});
        let push = parse_push(Forge::Bitbucket, server.to_string().as_bytes()).expect("a push");
        assert_eq!(push.refs, vec!["refs/tags/v2.0.0".to_string()]);
    }

    #[test]
    fn payloads_that_are_not_pushes() {
        assert_eq!(
            parse_push(Forge::GitHub, b"not json").map_err(|e| matches!(e, PayloadError::NotJson(_))),
            Err(true)
        );
        assert_eq!(
            parse_push(Forge::GitHub, b"{\"zen\": \"hi\"}"),
            Err(PayloadError::NoRef)
        );
    }
}
