//! Which forge API and repository a GitSync's statuses go to: `spec.commitStatus` checked (the API URL must be
//! `https://` except on loopback) and completed from `spec.url` in its HTTPS and SSH forms. Pure: no I/O.

use std::net::IpAddr;

use super::ForgeProvider;
use crate::api::gitsync::CommitStatusSpec;

/// The forge API and repository of one GitSync.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForgeTarget {
    /// The provider.
    pub provider: ForgeProvider,
    /// Base URL of the API, without a trailing `/`.
    pub api_url: String,
    /// `owner/name` (GitLab: the project path with its groups; Bitbucket: `workspace/slug`).
    pub repository: String,
}

/// A `spec.commitStatus` that cannot be used, located at its field like the GitSync's other spec errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("spec.commitStatus.{field}: {message}")]
pub struct TargetError {
    /// The field at fault, below `spec.commitStatus`.
    pub field: &'static str,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// Resolves `spec` (with the GitSync's `spec.url`) into the API URL and repository statuses are posted to.
pub fn resolve_target(spec: &CommitStatusSpec, url: &str) -> Result<ForgeTarget, TargetError> {
    let provider = spec.provider;
    let remote = parse_remote(url);
    let api_url = match spec.api_url.as_deref() {
        Some(api_url) => checked_api_url(api_url)?,
        None => {
            let Some(remote) = &remote else {
                return Err(TargetError {
                    field: "apiURL",
                    message: format!(
                        "cannot be derived from spec.url \"{url}\" (not an https:// or SSH URL of a forge); set it"
                    ),
                });
            };
            default_api_url(provider, remote)
        }
    };
    let repository = match spec.repository.as_deref() {
        Some(repository) => repository.trim_matches('/').trim_end_matches(".git").to_string(),
        None => match &remote {
            Some(remote) => remote.path.clone(),
            None => {
                return Err(TargetError {
                    field: "repository",
                    message: format!("cannot be derived from spec.url \"{url}\"; set it, for example team/config"),
                });
            }
        },
    };
    check_repository(provider, &repository)?;
    Ok(ForgeTarget {
        provider,
        api_url,
        repository,
    })
}

/// The host and repository path of a Git URL, when it is an HTTPS or SSH URL of a forge.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Remote {
    scheme: &'static str,
    host: String,
    path: String,
}

fn parse_remote(url: &str) -> Option<Remote> {
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("https://") {
        ("https", rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        ("http", rest)
    } else if let Some(rest) = url.strip_prefix("ssh://") {
        ("ssh", rest)
    } else {
        // scp-like `git@host:owner/repo.git`.
        let (user_host, path) = url.split_once(':')?;
        let (_, host) = user_host.split_once('@')?;
        if host.is_empty() || host.contains('/') {
            return None;
        }
        return Some(Remote {
            scheme: "ssh",
            host: host.to_string(),
            path: clean_path(path)?,
        });
    };
    let (authority, path) = rest.split_once('/')?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    // The SSH port is not the API's; an HTTPS port is kept.
    let host = if scheme == "ssh" {
        host_port.split(':').next().unwrap_or(host_port).to_string()
    } else {
        host_port.to_string()
    };
    if host.is_empty() {
        return None;
    }
    // http:// is a forge only on loopback (the sandbox's emulator); elsewhere the API would need https anyway.
    if scheme == "http" && !is_loopback_host(&host) {
        return None;
    }
    Some(Remote {
        scheme,
        host,
        path: clean_path(path)?,
    })
}

fn clean_path(path: &str) -> Option<String> {
    let path = path.trim_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path).trim_end_matches('/');
    (path.contains('/')).then(|| path.to_string())
}

fn default_api_url(provider: ForgeProvider, remote: &Remote) -> String {
    let scheme = if remote.scheme == "http" { "http" } else { "https" };
    let host = &remote.host;
    match provider {
        ForgeProvider::Github if host == "github.com" => "https://api.github.com".to_string(),
        ForgeProvider::Github => format!("{scheme}://{host}/api/v3"),
        ForgeProvider::Gitlab => format!("{scheme}://{host}/api/v4"),
        ForgeProvider::Gitea => format!("{scheme}://{host}/api/v1"),
        ForgeProvider::Bitbucket if host == "bitbucket.org" => "https://api.bitbucket.org".to_string(),
        ForgeProvider::Bitbucket => format!("{scheme}://{host}"),
    }
}

/// Whether `host` (with an optional port) is a loopback address or `localhost`.
pub fn is_loopback_host(host: &str) -> bool {
    let bare = if let Some(inner) = host.strip_prefix('[') {
        inner.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map_or(host, |(name, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                name
            } else {
                host
            }
        })
    };
    bare == "localhost" || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn checked_api_url(api_url: &str) -> Result<String, TargetError> {
    let error = |message: String| TargetError {
        field: "apiURL",
        message,
    };
    let trimmed = api_url.trim_end_matches('/');
    let (scheme, rest) = trimmed.split_once("://").ok_or_else(|| {
        error(format!(
            "\"{api_url}\" is not a URL; write for example https://ghe.example.com/api/v3"
        ))
    })?;
    let host = rest.split('/').next().unwrap_or_default();
    let host = host.rsplit_once('@').map_or(host, |(_, host)| host);
    if host.is_empty() {
        return Err(error(format!("\"{api_url}\" names no host")));
    }
    if rest.contains('@') {
        return Err(error(
            "must not carry credentials; put the token in the Secret's `token` key".to_string(),
        ));
    }
    match scheme {
        "https" => Ok(trimmed.to_string()),
        "http" if is_loopback_host(host) => Ok(trimmed.to_string()),
        "http" => Err(error(format!(
            "\"{api_url}\" uses http://, which would send the token in clear text; use https:// (http:// is \
             accepted only for loopback addresses)"
        ))),
        other => Err(error(format!("\"{api_url}\" uses {other}://; use https://"))),
    }
}

fn check_repository(provider: ForgeProvider, repository: &str) -> Result<(), TargetError> {
    let segments: Vec<&str> = repository.split('/').collect();
    let valid_segment = |segment: &&str| {
        !segment.is_empty()
            && *segment != "."
            && *segment != ".."
            && segment.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    let shape_ok = match provider {
        // GitLab projects live in nested groups.
        ForgeProvider::Gitlab => segments.len() >= 2,
        _ => segments.len() == 2,
    };
    if !shape_ok || !segments.iter().all(valid_segment) {
        let expected = match provider {
            ForgeProvider::Gitlab => "group/project or group/subgroup/project",
            ForgeProvider::Bitbucket => "workspace/slug",
            _ => "owner/name",
        };
        return Err(TargetError {
            field: "repository",
            message: format!("\"{repository}\" is not a repository path; write {expected}"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::gitsync::SecretReference;

    fn spec(provider: ForgeProvider) -> CommitStatusSpec {
        CommitStatusSpec {
            provider,
            secret_ref: SecretReference { name: "forge".into() },
            api_url: None,
            repository: None,
        }
    }

    #[test]
    fn derives_the_api_and_repository_from_https_and_ssh_urls() {
        let cases = [
            (
                ForgeProvider::Github,
                "https://github.com/team/config.git",
                "https://api.github.com",
                "team/config",
            ),
            (
                ForgeProvider::Github,
                "git@github.com:team/config.git",
                "https://api.github.com",
                "team/config",
            ),
            (
                ForgeProvider::Github,
                "https://ghe.example.com/team/config",
                "https://ghe.example.com/api/v3",
                "team/config",
            ),
            (
                ForgeProvider::Gitlab,
                "ssh://git@gitlab.example.com:2222/group/sub/config.git",
                "https://gitlab.example.com/api/v4",
                "group/sub/config",
            ),
            (
                ForgeProvider::Gitea,
                "https://user@gitea.example.com:3000/team/config.git",
                "https://gitea.example.com:3000/api/v1",
                "team/config",
            ),
            (
                ForgeProvider::Bitbucket,
                "git@bitbucket.org:work/config.git",
                "https://api.bitbucket.org",
                "work/config",
            ),
            (
                ForgeProvider::Gitea,
                "http://127.0.0.1:8080/team/config.git",
                "http://127.0.0.1:8080/api/v1",
                "team/config",
            ),
        ];
        for (provider, url, api, repository) in cases {
            let target = resolve_target(&spec(provider), url).expect(url);
            assert_eq!(
                (target.api_url.as_str(), target.repository.as_str()),
                (api, repository),
                "{url}"
            );
        }
    }

    #[test]
    fn api_url_is_https_except_on_loopback() {
        let mut spec = spec(ForgeProvider::Github);
        spec.repository = Some("team/config".into());
        for ok in [
            "https://ghe.example.com/api/v3/",
            "http://127.0.0.1:9000",
            "http://localhost:80",
            "http://[::1]:81",
        ] {
            spec.api_url = Some(ok.into());
            assert!(resolve_target(&spec, "file:///repo").is_ok(), "{ok}");
        }
        spec.api_url = Some("http://ghe.example.com/api/v3".into());
        let error = resolve_target(&spec, "file:///repo").unwrap_err();
        assert_eq!(error.field, "apiURL");
        assert!(
            error
                .to_string()
                .starts_with("spec.commitStatus.apiURL: \"http://ghe.example.com/api/v3\" uses http://")
        );
        spec.api_url = Some("https://user:secret@ghe.example.com".into());
        assert!(
            resolve_target(&spec, "file:///repo")
                .unwrap_err()
                .message
                .contains("must not carry credentials")
        );
    }

    #[test]
    fn an_underivable_target_names_the_field_to_set() {
        let error = resolve_target(&spec(ForgeProvider::Github), "file:///srv/config").unwrap_err();
        assert_eq!(
            error.to_string(),
            "spec.commitStatus.apiURL: cannot be derived from spec.url \"file:///srv/config\" (not an https:// or SSH \
             URL of a forge); set it"
        );
        let mut with_api = spec(ForgeProvider::Github);
        with_api.api_url = Some("https://api.github.com".into());
        assert_eq!(
            resolve_target(&with_api, "git://127.0.0.1/config").unwrap_err().field,
            "repository"
        );
        with_api.repository = Some("a/b/c".into());
        assert_eq!(
            resolve_target(&with_api, "git://x/y").unwrap_err().to_string(),
            "spec.commitStatus.repository: \"a/b/c\" is not a repository path; write owner/name"
        );
    }
}
