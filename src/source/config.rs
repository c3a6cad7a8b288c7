//! What a Git source is made of: its url (parsed, validated, redacted), the ref to follow, the credentials the
//! caller read from the Kubernetes Secret (never printed), timeouts and the cache directory.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::error::SourceError;

/// The transport a url uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `https://`
    Https,
    /// `http://` (plain text: anonymous only; a password or bearer token in the Secret is refused).
    Http,
    /// `ssh://` or scp-like `user@host:path`.
    Ssh,
    /// `git://` (git daemon, anonymous, no encryption).
    Git,
    /// `file://` (a repository on this machine; refused by `agent` unless `--allow-file-urls`, see
    /// [`set_file_urls_allowed`]).
    File,
}

/// A parsed repository url: enough to pick credentials, match `known_hosts` and print it safely.
#[derive(Clone, PartialEq, Eq)]
pub struct RepoUrl {
    /// The url handed to libgit2 (scp-like urls are kept as given; libgit2 understands them).
    raw: String,
    /// Its transport.
    pub scheme: Scheme,
    /// The user name in the url (`git` in `git@host:path`), if any.
    pub user: Option<String>,
    /// The host, without brackets for IPv6; empty for `file://`.
    pub host: String,
    /// The port given in the url, if any.
    pub port: Option<u16>,
}

impl RepoUrl {
    /// Parses and validates a repository url. Passwords inside the url are refused: they belong in the Secret.
    pub fn parse(url: &str) -> Result<RepoUrl, SourceError> {
        let invalid = |reason: &str| SourceError::InvalidUrl {
            url: redact_userinfo(url),
            reason: reason.to_string(),
        };
        let url = url.trim();
        if url.is_empty() {
            return Err(invalid("the url is empty"));
        }
        if url.chars().any(|c| c.is_control() || c == ' ') {
            return Err(invalid("the url contains spaces or control characters"));
        }
        let Some((scheme_text, rest)) = url.split_once("://") else {
            return RepoUrl::parse_scp_like(url).ok_or_else(|| {
                invalid("expected https://, http://, ssh://, git://, file:// or scp-like user@host:path")
            });
        };
        let scheme = match scheme_text.to_ascii_lowercase().as_str() {
            "https" => Scheme::Https,
            "http" => Scheme::Http,
            "ssh" => Scheme::Ssh,
            "git" => Scheme::Git,
            "file" => Scheme::File,
            _ => {
                return Err(invalid("unsupported scheme; expected https, http, ssh, git or file"));
            }
        };
        if scheme == Scheme::File {
            if !rest.starts_with('/') {
                return Err(invalid("a file:// url needs an absolute path (file:///path/to/repo)"));
            }
            return Ok(RepoUrl {
                raw: url.to_string(),
                scheme,
                user: None,
                host: String::new(),
                port: None,
            });
        }
        let (authority, path) = match rest.find('/') {
            Some(index) => (&rest[..index], &rest[index..]),
            None => (rest, ""),
        };
        if path.len() <= 1 {
            return Err(invalid("the url has no repository path"));
        }
        let (userinfo, host_port) = match authority.rsplit_once('@') {
            Some((userinfo, host_port)) => (Some(userinfo), host_port),
            None => (None, authority),
        };
        let user = match userinfo {
            Some(info) if info.contains(':') => {
                return Err(invalid(
                    "the url embeds a password; put credentials in the referenced Secret instead",
                ));
            }
            Some(info) if matches!(scheme, Scheme::Https | Scheme::Http) => {
                return Err(invalid(&format!(
                    "the url embeds the user '{info}'; put username and password in the referenced Secret instead"
                )));
            }
            Some("") => return Err(invalid("empty user name before '@'")),
            Some(info) => Some(info.to_string()),
            None => None,
        };
        let (host, port) = split_host_port(host_port).ok_or_else(|| invalid("malformed host or port"))?;
        if host.is_empty() {
            return Err(invalid("the url has no host"));
        }
        Ok(RepoUrl {
            raw: url.to_string(),
            scheme,
            user,
            host,
            port,
        })
    }

    /// scp-like `[user@]host:path`, always SSH on port 22 (libgit2 parses it itself; we need host and user).
    fn parse_scp_like(url: &str) -> Option<RepoUrl> {
        let (user_host, path) = url.split_once(':')?;
        if path.is_empty() || user_host.contains('/') || path.starts_with("//") {
            return None;
        }
        let (user, host) = match user_host.rsplit_once('@') {
            Some((user, host)) => (Some(user.to_string()), host.to_string()),
            None => (None, user_host.to_string()),
        };
        if host.is_empty() || user.as_deref() == Some("") {
            return None;
        }
        Some(RepoUrl {
            raw: url.to_string(),
            scheme: Scheme::Ssh,
            user,
            host,
            port: None,
        })
    }

    /// The url as handed to libgit2.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The host the way `known_hosts` names it: `host` on port 22, `[host]:port` otherwise.
    pub fn known_hosts_name(&self) -> String {
        match self.port {
            Some(port) if port != 22 => format!("[{}]:{port}", self.host),
            _ => self.host.clone(),
        }
    }
}

impl fmt::Display for RepoUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Parsing refused passwords, so the url holds nothing secret; redact anyway in case of future changes.
        f.write_str(&redact_userinfo(&self.raw))
    }
}

impl fmt::Debug for RepoUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RepoUrl({self})")
    }
}

/// Splits `host:port` / `[v6]:port`; `None` when the port is not a number.
fn split_host_port(host_port: &str) -> Option<(String, Option<u16>)> {
    if let Some(rest) = host_port.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host.to_string(), None)),
            _ => Some((host.to_string(), Some(after.strip_prefix(':')?.parse().ok()?))),
        };
    }
    match host_port.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() => Some((host.to_string(), Some(port.parse().ok()?))),
        Some((host, _)) => Some((host.to_string(), None)),
        None => Some((host_port.to_string(), None)),
    }
}

/// Replaces `user:password@` by `user:***@` in something that looks like a url.
pub(crate) fn redact_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_string()
            };
            format!("{scheme}://{masked}@{host}{}", &rest[authority_end..])
        }
        None => url.to_string(),
    }
}

static FILE_URLS_ALLOWED: AtomicBool = AtomicBool::new(true);

/// Whether `file://` urls may be followed by this process (default: yes, for the library, the sandbox and
/// tests). `redis-gitops agent` turns them off unless started with `--allow-file-urls`: in a shared agent, a
/// tenant's GitSync could otherwise read any repository on the agent's disk, such as another tenant's Git cache.
pub fn set_file_urls_allowed(allowed: bool) {
    FILE_URLS_ALLOWED.store(allowed, Ordering::SeqCst);
}

/// Refuses a `file://` url when this process does not allow them.
pub(crate) fn check_file_url_allowed(url: &RepoUrl) -> Result<(), SourceError> {
    if url.scheme == Scheme::File && !FILE_URLS_ALLOWED.load(Ordering::SeqCst) {
        return Err(SourceError::InvalidUrl {
            url: url.to_string(),
            reason: "file:// urls are refused by this agent, as a GitSync could read any repository on the agent's \
                     disk; serve the repository over https:// or ssh:// (file:// is for the sandbox and tests: \
                     agent --allow-file-urls)"
                .to_string(),
        });
    }
    Ok(())
}

/// Which commit of the repository to follow. Precedence as in Flux is the caller's business: this is one choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitRef {
    /// The head of a branch, e.g. `main` (or `refs/heads/main`).
    Branch(String),
    /// A tag, e.g. `v1.2.3` (annotated tags are peeled to their commit).
    Tag(String),
    /// The highest tag matching a semver range (Masterminds syntax as in Flux: `>=1.0.0 <2.0.0`, `~1.2`,
    /// `1.x`, `^1 || ^2`, `1.2 - 1.4`); a leading `v` on tags is ignored.
    Semver(String),
    /// A full ref name, e.g. `refs/pull/420/head`.
    Name(String),
    /// An exact commit (40 hex digits).
    Commit(String),
}

impl Default for GitRef {
    /// Flux's default: branch `master`.
    fn default() -> Self {
        GitRef::Branch("master".to_string())
    }
}

impl fmt::Display for GitRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GitRef::Branch(name) => write!(f, "branch '{name}'"),
            GitRef::Tag(name) => write!(f, "tag '{name}'"),
            GitRef::Semver(range) => write!(f, "semver '{range}'"),
            GitRef::Name(name) => write!(f, "ref '{name}'"),
            GitRef::Commit(commit) => write!(f, "commit '{commit}'"),
        }
    }
}

/// A secret string: never printed by `Debug`, compared and used only where needed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret value, for handing to libgit2 only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Secret {
        Secret(value.to_string())
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret(value)
    }
}

/// How to authenticate to the remote, as read from the Secret by the caller.
#[derive(Clone, Default)]
pub struct Credentials {
    /// HTTPS basic auth user (`username` key). A forge token goes in `password` with any user name.
    pub username: Option<String>,
    /// HTTPS basic auth password or token (`password` key); for SSH, the passphrase of `identity`.
    pub password: Option<Secret>,
    /// HTTPS bearer token (`bearerToken` key), sent as an `Authorization: Bearer` header.
    pub bearer_token: Option<Secret>,
    /// PEM CA bundle (`ca.crt` key) the HTTPS server's certificate must chain to (intermediates may be included).
    pub ca_cert: Option<Vec<u8>>,
    /// SSH private key (`identity` key), OpenSSH or PEM format.
    pub identity: Option<Secret>,
    /// SSH `known_hosts` content (`known_hosts` key); required for SSH: unknown hosts are refused.
    pub known_hosts: Option<String>,
}

impl Credentials {
    /// No credentials at all (public repositories, `file://`, `git://`).
    pub fn none() -> Credentials {
        Credentials::default()
    }

    /// Every secret value, to scrub from messages produced by libgit2 or servers.
    pub(crate) fn secret_values(&self) -> Vec<&str> {
        [&self.password, &self.bearer_token, &self.identity]
            .into_iter()
            .flatten()
            .map(Secret::expose)
            .filter(|value| value.len() >= 3)
            .collect()
    }

    /// Refuses combinations that cannot work for the url's transport, before any network use.
    pub(crate) fn validate_for(&self, url: &RepoUrl) -> Result<(), SourceError> {
        let invalid = |reason: &str| SourceError::InvalidCredentials {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        match url.scheme {
            Scheme::Ssh => {
                if self.known_hosts.as_deref().is_none_or(|text| text.trim().is_empty()) {
                    return Err(invalid(
                        "ssh needs 'known_hosts' in the Secret (host keys are never trusted on first use)",
                    ));
                }
                if self.identity.is_none() {
                    return Err(invalid("ssh needs a private key under 'identity' in the Secret"));
                }
                if self.bearer_token.is_some() || self.username.is_some() {
                    return Err(invalid("'username' and 'bearerToken' are for https, not ssh"));
                }
            }
            Scheme::Https | Scheme::Http => {
                if url.scheme == Scheme::Http {
                    // Basic auth and bearer tokens would cross the network in cleartext: refuse, not warn.
                    let field = match (&self.password, &self.bearer_token) {
                        (Some(_), _) => Some("password"),
                        (None, Some(_)) => Some("bearerToken"),
                        (None, None) => None,
                    };
                    if let Some(field) = field {
                        return Err(invalid(&format!(
                            "the Secret sets '{field}', which an http:// url would send in cleartext; use the \
                             https:// url of the repository (plain http:// is for anonymous access only)"
                        )));
                    }
                }
                if self.identity.is_some() || self.known_hosts.is_some() {
                    return Err(invalid("'identity' and 'known_hosts' are for ssh urls, not http(s)"));
                }
                if self.bearer_token.is_some() && (self.username.is_some() || self.password.is_some()) {
                    return Err(invalid("use either 'bearerToken' or 'username'/'password', not both"));
                }
                if self.username.is_some() && self.password.is_none() {
                    return Err(invalid("'username' is set but 'password' is missing"));
                }
                if self.ca_cert.is_some() && url.scheme == Scheme::Http {
                    return Err(invalid("'ca.crt' is set but the url is plain http://"));
                }
            }
            Scheme::Git | Scheme::File => {
                if self.has_any() {
                    return Err(invalid("git:// and file:// urls take no credentials"));
                }
            }
        }
        Ok(())
    }

    fn has_any(&self) -> bool {
        self.username.is_some()
            || self.password.is_some()
            || self.bearer_token.is_some()
            || self.ca_cert.is_some()
            || self.identity.is_some()
            || self.known_hosts.is_some()
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Say which keys are present, never their values (user names included: they can be tokens too).
        let present = |set: bool| if set { "<set>" } else { "<unset>" };
        f.debug_struct("Credentials")
            .field("username", &present(self.username.is_some()))
            .field("password", &present(self.password.is_some()))
            .field("bearer_token", &present(self.bearer_token.is_some()))
            .field("ca_cert", &present(self.ca_cert.is_some()))
            .field("identity", &present(self.identity.is_some()))
            .field("known_hosts", &present(self.known_hosts.is_some()))
            .finish()
    }
}

/// Everything a [`super::GitSource`] needs.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// The repository url.
    pub url: String,
    /// The commit to follow.
    pub reference: GitRef,
    /// Credentials from the Secret (empty for public repositories).
    pub credentials: Credentials,
    /// Directory holding one bare cache repository per url; created if missing.
    pub cache_dir: PathBuf,
    /// Deadline for a whole poll (ref lookup plus fetch); Flux's default is 60 s.
    pub timeout: Duration,
}

/// What [`super::GitSource::read_tree`] skips and how much it accepts.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// Largest accepted file (and symlink target), in bytes.
    pub max_file_size: u64,
    /// Most files (plus symlinks) accepted under the path.
    pub max_files: usize,
    /// `.gitignore`-syntax patterns, relative to the repository root, that replace the default exclusions
    /// (Flux's `spec.ignore`). `None` keeps the defaults ([`DEFAULT_IGNORE`]). `.sourceignore` files in the
    /// tree apply on top, each relative to its own directory.
    pub ignore: Option<String>,
}

/// Flux's default exclusions, reduced to what can hold YAML: CI and tool configuration that is not ours.
pub const DEFAULT_IGNORE: &str = ".git/\n.github/\n.circleci/\n.travis.yml\n.gitlab-ci.yml\nappveyor.yml\n\
                                  .drone.yml\ncloudbuild.yaml\ncodeship-*.yml\n.goreleaser.yml\n.sops.yaml\n.flux.yaml\n";

impl Default for ReadOptions {
    /// 1 MiB per file, 10 000 files, Flux's default exclusions.
    fn default() -> Self {
        ReadOptions {
            max_file_size: 1024 * 1024,
            max_files: 10_000,
            ignore: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_url_shape() {
        let url = RepoUrl::parse("ssh://git@example.com:2222/org/repo.git").unwrap();
        assert_eq!(url.scheme, Scheme::Ssh);
        assert_eq!(url.user.as_deref(), Some("git"));
        assert_eq!(url.known_hosts_name(), "[example.com]:2222");
        let url = RepoUrl::parse("git@github.com:org/repo.git").unwrap();
        assert_eq!(
            (url.scheme, url.host.as_str(), url.port),
            (Scheme::Ssh, "github.com", None)
        );
        assert_eq!(url.known_hosts_name(), "github.com");
        let url = RepoUrl::parse("https://[::1]:8443/repo.git").unwrap();
        assert_eq!((url.host.as_str(), url.port), ("::1", Some(8443)));
        assert_eq!(RepoUrl::parse("file:///srv/repo.git").unwrap().scheme, Scheme::File);
        assert_eq!(RepoUrl::parse("git://127.0.0.1:9418/repo").unwrap().scheme, Scheme::Git);
    }

    #[test]
    fn refuses_embedded_passwords_without_echoing_them() {
        let error = RepoUrl::parse("https://bob:hunter2@example.com/repo.git").unwrap_err();
        let text = error.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("https://bob:***@example.com/repo.git"), "{text}");
        assert_eq!(error.category(), "InvalidUrl");
    }

    #[test]
    fn refuses_unknown_schemes_and_missing_paths() {
        assert!(RepoUrl::parse("ftp://example.com/repo").is_err());
        assert!(RepoUrl::parse("https://example.com").is_err());
        assert!(RepoUrl::parse("file://relative/path").is_err());
        assert!(RepoUrl::parse("").is_err());
    }

    #[test]
    fn debug_never_shows_secret_values() {
        let credentials = Credentials {
            username: Some("robot".into()),
            password: Some("s3cr3t-pass".into()),
            bearer_token: Some("tok-123456".into()),
            identity: Some("-----BEGIN OPENSSH PRIVATE KEY-----".into()),
            ..Credentials::default()
        };
        let text = format!("{credentials:?}");
        for secret in ["robot", "s3cr3t-pass", "tok-123456", "PRIVATE KEY"] {
            assert!(!text.contains(secret), "{text}");
        }
        assert!(text.contains("password: \"<set>\""), "{text}");
    }

    #[test]
    fn http_with_a_password_or_token_is_refused_and_anonymous_http_is_not() {
        let url = RepoUrl::parse("http://git.example.com/org/repo.git").unwrap();
        let basic = Credentials {
            username: Some("robot".into()),
            password: Some("s3cr3t-pass".into()),
            ..Credentials::default()
        };
        assert_eq!(
            basic.validate_for(&url).unwrap_err().to_string(),
            "invalid credentials for http://git.example.com/org/repo.git: the Secret sets 'password', which an \
             http:// url would send in cleartext; use the https:// url of the repository (plain http:// is for \
             anonymous access only)"
        );
        let bearer = Credentials {
            bearer_token: Some("tok-123456".into()),
            ..Credentials::default()
        };
        let error = bearer.validate_for(&url).unwrap_err();
        assert_eq!(error.category(), "InvalidCredentials");
        assert_eq!(
            error.to_string(),
            "invalid credentials for http://git.example.com/org/repo.git: the Secret sets 'bearerToken', which an \
             http:// url would send in cleartext; use the https:// url of the repository (plain http:// is for \
             anonymous access only)"
        );
        assert!(Credentials::none().validate_for(&url).is_ok());
        let https = RepoUrl::parse("https://git.example.com/org/repo.git").unwrap();
        assert!(basic.validate_for(&https).is_ok());
        assert!(bearer.validate_for(&https).is_ok());
    }

    #[test]
    fn ssh_requires_known_hosts() {
        let url = RepoUrl::parse("ssh://git@host/repo").unwrap();
        let credentials = Credentials {
            identity: Some("key".into()),
            ..Credentials::default()
        };
        let error = credentials.validate_for(&url).unwrap_err();
        assert!(error.to_string().contains("known_hosts"), "{error}");
    }
}
