//! `plan --comment`: posts the plan's Markdown as one comment on the pull request, updated in place on every later
//! run (the forge client's `upsert_comment`). Where to post comes from the flags, else from the CI's own variables
//! (GitHub Actions, GitLab CI, Gitea Actions), else from the repository's `origin` URL; the token only from the
//! environment, never from a flag (a flag shows in the process list). Binary-private.

use std::path::{Path, PathBuf};
use std::time::Duration;

use redis_gitops::api::gitsync::{CommitStatusSpec, ForgeProvider, SecretReference};
use redis_gitops::forge::comments::CommentOutcome;
use redis_gitops::forge::{ForgeClient, ForgeClientConfig, ForgeTarget, resolve_target};
use redis_gitops::review::output::COMMENT_MARKER;

/// The environment variables the token is read from, first found wins.
pub const TOKEN_VARIABLES: &str = "REDIS_GITOPS_FORGE_TOKEN, else GITHUB_TOKEN (github, gitea), GITLAB_TOKEN \
                                   (gitlab) or GITEA_TOKEN (gitea)";

/// The flags of `plan --comment`.
#[derive(Clone, Debug, Default)]
pub struct CommentFlags {
    /// `--forge`.
    pub forge: Option<ForgeProvider>,
    /// `--forge-api-url`.
    pub api_url: Option<String>,
    /// `--forge-repository`.
    pub repository: Option<String>,
    /// `--pull-request`.
    pub pull_request: Option<u64>,
    /// `--comment-key`.
    pub key: Option<String>,
    /// `--forge-ca-file`.
    pub ca_file: Option<PathBuf>,
}

/// Where the comment goes, resolved.
pub struct CommentTarget {
    target: ForgeTarget,
    number: u64,
    marker: String,
    token: String,
    ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for CommentTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommentTarget")
            .field("target", &self.target)
            .field("number", &self.number)
            .field("marker", &self.marker)
            .finish_non_exhaustive()
    }
}

/// The comment's first line: the plan's marker, with the key when there is one.
pub fn marker(key: Option<&str>) -> String {
    match key.map(str::trim).filter(|key| !key.is_empty()) {
        None => COMMENT_MARKER.to_string(),
        Some(key) => format!("<!-- redis-gitops-plan:{} -->", key.replace("--", "-")),
    }
}

/// The provider the CI runs on, from its documented variables.
fn detected_forge(env: &dyn Fn(&str) -> Option<String>) -> Option<ForgeProvider> {
    let set = |name: &str| env(name).is_some_and(|value| value == "true");
    if set("GITEA_ACTIONS") {
        Some(ForgeProvider::Gitea)
    } else if set("GITHUB_ACTIONS") {
        Some(ForgeProvider::Github)
    } else if set("GITLAB_CI") {
        Some(ForgeProvider::Gitlab)
    } else {
        None
    }
}

/// The pull request the CI job runs for: GitLab's `CI_MERGE_REQUEST_IID`; on GitHub and Gitea the event file's
/// `pull_request.number`, else `refs/pull/N/...` in `GITHUB_REF`.
fn detected_pull_request(provider: ForgeProvider, env: &dyn Fn(&str) -> Option<String>) -> Option<u64> {
    if provider == ForgeProvider::Gitlab {
        return env("CI_MERGE_REQUEST_IID")?.trim().parse().ok();
    }
    let from_event = env("GITHUB_EVENT_PATH")
        .and_then(|path| std::fs::read_to_string(path).ok())
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|event| {
            event
                .pointer("/pull_request/number")
                .or_else(|| event.pointer("/number"))
                .and_then(serde_json::Value::as_u64)
        });
    from_event.or_else(|| {
        let reference = env("GITHUB_REF")?;
        reference.strip_prefix("refs/pull/")?.split('/').next()?.parse().ok()
    })
}

fn token(provider: ForgeProvider, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let forge_own: &[&str] = match provider {
        ForgeProvider::Github => &["GITHUB_TOKEN"],
        ForgeProvider::Gitlab => &["GITLAB_TOKEN"],
        ForgeProvider::Gitea => &["GITEA_TOKEN", "GITHUB_TOKEN"],
        ForgeProvider::Bitbucket => &[],
    };
    std::iter::once("REDIS_GITOPS_FORGE_TOKEN")
        .chain(forge_own.iter().copied())
        .filter_map(env)
        .map(|value| value.trim().to_string())
        .find(|value| !value.is_empty())
}

/// The URL of the `origin` remote of `repo`, if it has one.
fn origin_url(repo: &Path) -> Option<String> {
    let repository = git2::Repository::open(repo).ok()?;
    let remote = repository.find_remote("origin").ok()?;
    remote.url().ok().map(str::to_string)
}

/// Resolves where to post, or says which flag or variable is missing.
pub fn resolve(
    flags: &CommentFlags,
    repo: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<CommentTarget, String> {
    let provider = flags.forge.or_else(|| detected_forge(env)).ok_or_else(|| {
        "--comment needs the forge: give --forge github|gitlab|gitea (it is detected only inside GitHub Actions, \
         GitLab CI and Gitea Actions)"
            .to_string()
    })?;
    if provider == ForgeProvider::Bitbucket {
        return Err("--comment supports github, gitlab and gitea; Bitbucket is not supported".to_string());
    }
    let api_url = flags.api_url.clone().or_else(|| match provider {
        ForgeProvider::Gitlab => env("CI_API_V4_URL"),
        _ => env("GITHUB_API_URL"),
    });
    let repository = flags.repository.clone().or_else(|| match provider {
        ForgeProvider::Gitlab => env("CI_PROJECT_PATH"),
        _ => env("GITHUB_REPOSITORY"),
    });
    let url = origin_url(repo);
    if url.is_none() {
        let missing = if api_url.is_none() {
            Some("--forge-api-url")
        } else if repository.is_none() {
            Some("--forge-repository")
        } else {
            None
        };
        if let Some(flag) = missing {
            return Err(format!(
                "--comment needs {flag}: it is not given, and {} has no `origin` remote to derive it from",
                repo.display()
            ));
        }
    }
    let spec = CommitStatusSpec {
        provider,
        secret_ref: SecretReference::default(),
        api_url,
        repository,
    };
    let target = resolve_target(&spec, url.as_deref().unwrap_or_default()).map_err(|error| {
        let flag = if error.field == "apiURL" {
            "--forge-api-url"
        } else {
            "--forge-repository"
        };
        format!("{flag}: {}", error.message.replace("spec.url", "the origin remote"))
    })?;
    let number = flags
        .pull_request
        .or_else(|| detected_pull_request(provider, env))
        .ok_or_else(|| "--comment needs the pull request: give --pull-request N".to_string())?;
    let token = token(provider, env)
        .ok_or_else(|| format!("--comment needs a token with write access to pull requests in {TOKEN_VARIABLES}"))?;
    let ca_pem = flags
        .ca_file
        .as_deref()
        .map(|path| std::fs::read(path).map_err(|error| format!("--forge-ca-file {}: {error}", path.display())))
        .transpose()?;
    Ok(CommentTarget {
        target,
        number,
        marker: marker(flags.key.as_deref()),
        token,
        ca_pem,
    })
}

/// `markdown` (the plan's comment, its first line the plain marker) with the target's marker first.
fn with_marker(markdown: &str, marker: &str) -> String {
    match markdown.strip_prefix(COMMENT_MARKER) {
        Some(rest) => format!("{marker}{rest}"),
        None => format!("{marker}\n{markdown}"),
    }
}

/// Posts or updates the comment and returns a line saying what was done.
pub fn post(target: &CommentTarget, markdown: &str) -> Result<String, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("unable to start the HTTP runtime: {error}"))?;
    let client = ForgeClient::new(ForgeClientConfig {
        target: target.target.clone(),
        token: target.token.clone(),
        ca_pem: target.ca_pem.clone(),
        timeout: Duration::from_secs(30),
    })
    .map_err(|error| error.to_string())?;
    let body = with_marker(markdown, &target.marker);
    let outcome = runtime
        .block_on(client.upsert_comment(target.number, &target.marker, &body))
        .map_err(|error| error.to_string())?;
    let what = match outcome {
        CommentOutcome::Created { id } => format!("posted comment {id}"),
        CommentOutcome::Updated { id } => format!("updated comment {id}"),
        CommentOutcome::Unchanged { id } => format!("comment {id} already shows this plan"),
    };
    Ok(format!(
        "{what} on {} pull request {} of {}",
        target.target.provider.as_str(),
        target.number,
        target.target.repository
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name: &str| map.get(name).cloned()
    }

    #[test]
    fn github_actions_variables_are_enough() {
        let dir = tempfile::tempdir().expect("temp dir");
        let event = dir.path().join("event.json");
        std::fs::write(&event, r#"{"pull_request": {"number": 42}}"#).expect("write event");
        let env = env_of(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_API_URL", "https://api.github.com"),
            ("GITHUB_REPOSITORY", "team/config"),
            ("GITHUB_EVENT_PATH", event.to_str().expect("utf-8 path")),
            ("GITHUB_TOKEN", "ghs_secret"),
        ]);
        let target = resolve(&CommentFlags::default(), dir.path(), &env).expect("resolved");
        assert_eq!(target.target.provider, ForgeProvider::Github);
        assert_eq!(target.target.repository, "team/config");
        assert_eq!(target.number, 42);
        assert_eq!(target.token, "ghs_secret");
        assert!(!format!("{target:?}").contains("ghs_secret"), "Debug hides the token");
    }

    #[test]
    fn gitlab_and_gitea_variables_and_flags() {
        let dir = tempfile::tempdir().expect("temp dir");
        let env = env_of(&[
            ("GITLAB_CI", "true"),
            ("CI_API_V4_URL", "https://gitlab.example/api/v4"),
            ("CI_PROJECT_PATH", "group/sub/config"),
            ("CI_MERGE_REQUEST_IID", "7"),
            ("GITLAB_TOKEN", "glpat"),
        ]);
        let target = resolve(&CommentFlags::default(), dir.path(), &env).expect("resolved");
        assert_eq!(
            (target.target.provider, target.target.api_url.as_str(), target.number),
            (ForgeProvider::Gitlab, "https://gitlab.example/api/v4", 7)
        );
        let env = env_of(&[
            ("GITEA_ACTIONS", "true"),
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_REF", "refs/pull/9/merge"),
            ("GITHUB_API_URL", "https://gitea.example/api/v1"),
            ("GITHUB_REPOSITORY", "team/config"),
            ("REDIS_GITOPS_FORGE_TOKEN", "mine"),
            ("GITEA_TOKEN", "other"),
        ]);
        let target = resolve(&CommentFlags::default(), dir.path(), &env).expect("resolved");
        assert_eq!(
            (target.target.provider, target.number, target.token.as_str()),
            (ForgeProvider::Gitea, 9, "mine")
        );
        let flags = CommentFlags {
            pull_request: Some(3),
            key: Some("staging".to_string()),
            ..CommentFlags::default()
        };
        let target = resolve(&flags, dir.path(), &env).expect("flags win");
        assert_eq!(
            (target.number, target.marker.as_str()),
            (3, "<!-- redis-gitops-plan:staging -->")
        );
    }

    #[test]
    fn what_is_missing_is_named() {
        let dir = tempfile::tempdir().expect("temp dir");
        let none = env_of(&[]);
        let error = resolve(&CommentFlags::default(), dir.path(), &none).expect_err("no forge");
        assert!(error.contains("--forge"), "{error}");
        let flags = CommentFlags {
            forge: Some(ForgeProvider::Github),
            ..CommentFlags::default()
        };
        let error = resolve(&flags, dir.path(), &none).expect_err("no repository");
        assert!(error.contains("--forge-api-url"), "{error}");
        let flags = CommentFlags {
            forge: Some(ForgeProvider::Github),
            api_url: Some("http://forge.example".to_string()),
            repository: Some("team/config".to_string()),
            pull_request: Some(1),
            ..CommentFlags::default()
        };
        let error = resolve(&flags, dir.path(), &none).expect_err("plain http off loopback");
        assert!(error.contains("https"), "{error}");
        let flags = CommentFlags {
            api_url: Some("https://forge.example".to_string()),
            ..flags
        };
        let error = resolve(&flags, dir.path(), &none).expect_err("no token");
        assert!(error.contains("REDIS_GITOPS_FORGE_TOKEN"), "{error}");
    }

    #[test]
    fn the_marker_replaces_the_plain_one() {
        assert_eq!(
            with_marker("<!-- redis-gitops-plan -->\n### plan\n", "<!-- redis-gitops-plan:a -->"),
            "<!-- redis-gitops-plan:a -->\n### plan\n"
        );
        assert_eq!(marker(Some("  ")), COMMENT_MARKER);
        assert_eq!(
            marker(Some("x--y")),
            "<!-- redis-gitops-plan:x-y -->",
            "no comment terminator inside"
        );
    }
}
