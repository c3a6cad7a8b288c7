//! Talking to the remote: libgit2 callbacks for credentials, SSH host keys (known_hosts enforced), TLS with a
//! custom CA, the per-poll deadline, and turning libgit2 failures into [`SourceError`]s without secrets.
//!
//! Timeouts: libgit2 has two process-wide knobs, the connect timeout and the server (read/write) timeout,
//! which its socket stream, its HTTP client and its libssh2 session all honour; [`set_network_timeouts`] sets
//! them (defaults are applied on first use). On top, every poll has an overall deadline checked in every
//! callback libgit2 makes (credentials, certificate check, transfer and sideband progress, update tips):
//! returning an error from a callback aborts the operation, which is then reported as [`SourceError::Timeout`].

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use git2::{CertificateCheckStatus, Cred, CredentialType, FetchOptions, RemoteCallbacks};

use super::config::{Credentials, RepoUrl, Scheme};
use super::error::SourceError;
use super::known_hosts::{self, HostKeyVerdict, OfferedKey};

/// Default connect timeout applied to libgit2 when the caller set none.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default read/write (server) timeout applied to libgit2 when the caller set none.
pub const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(30);

static TIMEOUTS_SET: AtomicBool = AtomicBool::new(false);
static DEFAULT_TIMEOUTS: Once = Once::new();

/// Sets libgit2's process-wide connect and read/write timeouts (they apply to every source at once).
///
/// Call it once at start-up; without a call, [`DEFAULT_CONNECT_TIMEOUT`] and [`DEFAULT_IO_TIMEOUT`] apply.
pub fn set_network_timeouts(connect: Duration, io: Duration) -> Result<(), SourceError> {
    let to_millis = |duration: Duration| i32::try_from(duration.as_millis()).unwrap_or(i32::MAX).max(1);
    // SAFETY: these only store an integer in libgit2's global settings; libgit2 is initialised by git2.
    let result = unsafe {
        git2::opts::set_server_connect_timeout_in_milliseconds(to_millis(connect))
            .and_then(|()| git2::opts::set_server_timeout_in_milliseconds(to_millis(io)))
    };
    result.map_err(|error| SourceError::Cache {
        path: String::new(),
        operation: "setting libgit2 network timeouts",
        detail: error.message().to_string(),
    })?;
    TIMEOUTS_SET.store(true, Ordering::SeqCst);
    Ok(())
}

/// Applies the default timeouts unless the caller already chose some.
pub(crate) fn ensure_network_timeouts() {
    DEFAULT_TIMEOUTS.call_once(|| {
        if !TIMEOUTS_SET.load(Ordering::SeqCst) {
            // A failure leaves libgit2's own defaults; the per-poll deadline still holds.
            let _ = set_network_timeouts(DEFAULT_CONNECT_TIMEOUT, DEFAULT_IO_TIMEOUT);
        }
    });
}

/// What the callbacks observed, to classify the failure libgit2 then returns.
#[derive(Default)]
pub(crate) struct CallbackState {
    /// Set when the deadline passed inside a callback.
    timed_out: bool,
    /// Set when our credentials were refused (asked twice) or none were configured.
    auth_failure: Option<String>,
    /// Set when the SSH host key was refused.
    host_key_failure: Option<SourceError>,
    /// Set when the TLS certificate was refused by our CA check.
    certificate_failure: Option<String>,
    /// Credential types already handed out (libgit2 asks again after a refusal).
    credentials_given: Vec<CredentialType>,
    /// Objects received by the last fetch.
    pub received_objects: usize,
}

/// One poll's connection context: url, credentials, deadline and the state the callbacks fill.
pub(crate) struct Session<'a> {
    /// The remote's url.
    pub url: &'a RepoUrl,
    credentials: &'a Credentials,
    started: Instant,
    /// Overall deadline of the poll.
    pub timeout: Duration,
    /// Shared with the callbacks of the current libgit2 call.
    pub state: Rc<RefCell<CallbackState>>,
}

impl<'a> Session<'a> {
    /// Starts the clock for one poll.
    pub fn new(url: &'a RepoUrl, credentials: &'a Credentials, timeout: Duration) -> Session<'a> {
        Session {
            url,
            credentials,
            started: Instant::now(),
            timeout,
            state: Rc::new(RefCell::new(CallbackState::default())),
        }
    }

    /// Whether the deadline has passed.
    pub fn expired(&self) -> bool {
        self.started.elapsed() > self.timeout
    }

    /// A timeout error for `operation`.
    pub fn timeout_error(&self, operation: &'static str) -> SourceError {
        SourceError::Timeout {
            url: self.url.to_string(),
            operation,
            after: self.timeout,
        }
    }

    /// Fetch options for one new libgit2 operation (a new connection): carrying our callbacks and, for bearer
    /// tokens, the Authorization header. Credentials may be handed out once more for the new connection.
    pub fn fetch_options(&self) -> FetchOptions<'a> {
        self.state.borrow_mut().credentials_given.clear();
        let mut options = FetchOptions::new();
        options.remote_callbacks(self.callbacks());
        options.download_tags(git2::AutotagOption::None);
        options.update_fetchhead(false);
        if self.credentials.password.is_some() || self.credentials.bearer_token.is_some() {
            // Never carry credentials (or the bearer header, which libgit2 sends on every request) to another
            // host: off-site redirects are refused, same-site ones still followed.
            options.follow_redirects(git2::RemoteRedirect::None);
        }
        if let Some(token) = &self.credentials.bearer_token {
            let header = format!("Authorization: Bearer {}", token.expose());
            options.custom_headers(&[header.as_str()]);
        }
        options
    }

    fn callbacks(&self) -> RemoteCallbacks<'a> {
        let mut callbacks = RemoteCallbacks::new();
        let deadline = self.started + self.timeout;
        let credentials = self.credentials;
        let url = self.url;

        let state = Rc::clone(&self.state);
        callbacks.credentials(move |_url, username_from_url, allowed| {
            let mut state = state.borrow_mut();
            if Instant::now() > deadline {
                state.timed_out = true;
                return Err(git2::Error::from_str("deadline exceeded"));
            }
            provide_credentials(&mut state, credentials, url, username_from_url, allowed)
        });

        let state = Rc::clone(&self.state);
        callbacks.certificate_check(move |certificate, host| {
            let mut state = state.borrow_mut();
            if Instant::now() > deadline {
                state.timed_out = true;
                return Err(git2::Error::from_str("deadline exceeded"));
            }
            check_certificate(&mut state, credentials, url, certificate, host)
        });

        let state = Rc::clone(&self.state);
        callbacks.transfer_progress(move |progress| {
            let mut state = state.borrow_mut();
            state.received_objects = progress.received_objects();
            if Instant::now() > deadline {
                state.timed_out = true;
                return false;
            }
            true
        });

        let state = Rc::clone(&self.state);
        callbacks.sideband_progress(move |_| {
            if Instant::now() > deadline {
                state.borrow_mut().timed_out = true;
                return false;
            }
            true
        });

        let state = Rc::clone(&self.state);
        callbacks.update_tips(move |_, _, _| {
            if Instant::now() > deadline {
                state.borrow_mut().timed_out = true;
                return false;
            }
            true
        });
        callbacks
    }

    /// Turns a libgit2 failure of `operation` into our error, using what the callbacks saw first.
    pub fn classify(&self, operation: &'static str, error: &git2::Error) -> SourceError {
        let url = self.url.to_string();
        let mut state = self.state.borrow_mut();
        let detail = scrub(error.message(), self.credentials);
        if let Some(host_key_error) = state.host_key_failure.take() {
            return host_key_error;
        }
        if let Some(detail) = state.certificate_failure.take() {
            return SourceError::CertificateInvalid { url, detail };
        }
        if let Some(detail) = state.auth_failure.take() {
            return SourceError::AuthenticationFailed { url, operation, detail };
        }
        let lower = detail.to_ascii_lowercase();
        if state.timed_out || lower.contains("timed out") || lower.contains("timeout") {
            drop(state);
            return self.timeout_error(operation);
        }
        if self.url.scheme == Scheme::Ssh && lower.contains("private key") {
            // libssh2 only decrypts the key when authenticating: a wrong passphrase surfaces here.
            return SourceError::AuthenticationFailed {
                url,
                operation,
                detail: format!("the private key in 'identity' could not be used (wrong passphrase?): {detail}"),
            };
        }
        if error.code() == git2::ErrorCode::Auth
            || lower.contains("authenticat")
            || lower.contains("status code: 401")
            || lower.contains("status code: 403")
        {
            return SourceError::AuthenticationFailed { url, operation, detail };
        }
        if error.code() == git2::ErrorCode::Certificate
            || error.class() == git2::ErrorClass::Ssl
            || lower.contains("certificate")
        {
            return SourceError::CertificateInvalid { url, detail };
        }
        let network_class = matches!(
            error.class(),
            git2::ErrorClass::Net | git2::ErrorClass::Os | git2::ErrorClass::Ssh | git2::ErrorClass::Http
        );
        let unreachable_words = [
            "failed to connect",
            "connection refused",
            "could not resolve",
            "failed to resolve",
            "unreachable",
            "connection reset",
            "early eof",
            "failed to start ssh session",
            "unexpected http status code: 5",
            "could not find repository",
            "does not appear to be a git repository",
            "not found",
        ];
        if network_class || unreachable_words.iter().any(|word| lower.contains(word)) {
            return SourceError::Unreachable { url, operation, detail };
        }
        SourceError::GitOperation { url, operation, detail }
    }
}

/// Answers libgit2's request for credentials, once per type: a second request means the first was refused.
fn provide_credentials(
    state: &mut CallbackState,
    credentials: &Credentials,
    url: &RepoUrl,
    username_from_url: Option<&str>,
    allowed: CredentialType,
) -> Result<Cred, git2::Error> {
    let refuse = |state: &mut CallbackState, reason: &str| {
        state.auth_failure = Some(reason.to_string());
        Err(git2::Error::from_str(reason))
    };
    if url.scheme == Scheme::Ssh {
        let user = username_from_url.or(url.user.as_deref()).unwrap_or("git");
        if allowed.contains(CredentialType::USERNAME) {
            if state.credentials_given.contains(&CredentialType::USERNAME) {
                return refuse(state, "the ssh server refused the user name");
            }
            state.credentials_given.push(CredentialType::USERNAME);
            return Cred::username(user);
        }
        if allowed.contains(CredentialType::SSH_KEY) || allowed.contains(CredentialType::SSH_MEMORY) {
            if state.credentials_given.contains(&CredentialType::SSH_KEY) {
                return refuse(
                    state,
                    &format!("the ssh server refused the private key for user '{user}'"),
                );
            }
            let Some(identity) = &credentials.identity else {
                return refuse(state, "the ssh server asks for a key and the Secret has no 'identity'");
            };
            state.credentials_given.push(CredentialType::SSH_KEY);
            let passphrase = credentials.password.as_ref().map(|secret| secret.expose());
            return Cred::ssh_key_from_memory(user, None, identity.expose(), passphrase).or_else(|_| {
                refuse(
                    state,
                    "the private key in 'identity' could not be loaded (wrong format or passphrase)",
                )
            });
        }
        return refuse(
            state,
            "the ssh server offers no authentication method we support (public key)",
        );
    }
    if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
        let Some(password) = &credentials.password else {
            let reason = if credentials.bearer_token.is_some() {
                "the server refused the bearer token and asks for basic authentication"
            } else {
                "the server requires authentication and the Secret has no 'username'/'password'"
            };
            return refuse(state, reason);
        };
        if state.credentials_given.contains(&CredentialType::USER_PASS_PLAINTEXT) {
            return refuse(state, "the server refused the username/password");
        }
        state.credentials_given.push(CredentialType::USER_PASS_PLAINTEXT);
        // Forges accept any user name with a token as password; git uses "git" in that case.
        let user = credentials.username.as_deref().unwrap_or("git");
        return Cred::userpass_plaintext(user, password.expose());
    }
    refuse(state, "the server asks for an authentication method we do not support")
}

/// SSH: known_hosts decides. HTTPS: with a CA in the Secret, we verify the leaf against it (plus the system
/// store); without one, libgit2's own verification stands.
fn check_certificate(
    state: &mut CallbackState,
    credentials: &Credentials,
    url: &RepoUrl,
    certificate: &git2::cert::Cert<'_>,
    host: &str,
) -> Result<CertificateCheckStatus, git2::Error> {
    if let Some(host_key) = certificate.as_hostkey() {
        let known_hosts_text = credentials.known_hosts.as_deref().unwrap_or("");
        let host_name = url.known_hosts_name();
        let key_type = host_key.hostkey_type().map(|kind| kind.name());
        let offered = match (host_key.hostkey(), key_type, host_key.hash_sha256()) {
            (Some(blob), Some(key_type), _) => OfferedKey::Blob { key_type, blob },
            (_, _, Some(digest)) => OfferedKey::Sha256(digest),
            _ => {
                state.host_key_failure = Some(SourceError::HostKeyMismatch {
                    url: url.to_string(),
                    host: host_name,
                    detail: "the ssh library gave no usable host key to check".to_string(),
                });
                return Err(git2::Error::from_str("host key could not be checked"));
            }
        };
        return match known_hosts::check(known_hosts_text, &host_name, offered) {
            HostKeyVerdict::Trusted => Ok(CertificateCheckStatus::CertificateOk),
            HostKeyVerdict::Unknown { offered } => {
                state.host_key_failure = Some(SourceError::UnknownHostKey {
                    url: url.to_string(),
                    host: host_name,
                    detail: format!("server offered {offered}, known_hosts has no entry for this host"),
                });
                Err(git2::Error::from_str("unknown ssh host key"))
            }
            HostKeyVerdict::Mismatch { offered, expected } => {
                let expected = if expected.is_empty() {
                    "a revoked key".to_string()
                } else {
                    expected.join(", ")
                };
                state.host_key_failure = Some(SourceError::HostKeyMismatch {
                    url: url.to_string(),
                    host: host_name,
                    detail: format!("server offered {offered}, known_hosts expects {expected}"),
                });
                Err(git2::Error::from_str("ssh host key mismatch"))
            }
        };
    }
    let Some(ca_pem) = &credentials.ca_cert else {
        return Ok(CertificateCheckStatus::CertificatePassthrough);
    };
    let Some(x509) = certificate.as_x509() else {
        return Ok(CertificateCheckStatus::CertificatePassthrough);
    };
    match verify_with_ca(ca_pem, x509.data(), host) {
        Ok(()) => Ok(CertificateCheckStatus::CertificateOk),
        Err(reason) => {
            state.certificate_failure = Some(reason.clone());
            Err(git2::Error::from_str(&reason))
        }
    }
}

/// Verifies a DER leaf certificate against a PEM CA bundle and the host name. libgit2 gives us only the leaf,
/// so intermediates must be in `ca.crt` (partial chains to a trusted intermediate are accepted).
fn verify_with_ca(ca_pem: &[u8], leaf_der: &[u8], host: &str) -> Result<(), String> {
    use openssl::x509::store::X509StoreBuilder;
    use openssl::x509::verify::X509VerifyFlags;
    use openssl::x509::{X509, X509StoreContext};

    let leaf = X509::from_der(leaf_der).map_err(|_| "the server's certificate could not be parsed".to_string())?;
    let authorities = X509::stack_from_pem(ca_pem)
        .map_err(|_| "'ca.crt' in the Secret is not a PEM certificate bundle".to_string())?;
    if authorities.is_empty() {
        return Err("'ca.crt' in the Secret holds no certificate".to_string());
    }
    let mut builder = X509StoreBuilder::new().map_err(|error| error.to_string())?;
    for authority in authorities {
        builder.add_cert(authority).map_err(|error| error.to_string())?;
    }
    builder
        .set_flags(X509VerifyFlags::PARTIAL_CHAIN)
        .map_err(|error| error.to_string())?;
    let mut param = openssl::x509::verify::X509VerifyParam::new().map_err(|error| error.to_string())?;
    match host.parse::<std::net::IpAddr>() {
        Ok(address) => param.set_ip(address).map_err(|error| error.to_string())?,
        Err(_) => param.set_host(host).map_err(|error| error.to_string())?,
    }
    builder.set_param(&param).map_err(|error| error.to_string())?;
    let store = builder.build();
    let chain = openssl::stack::Stack::new().map_err(|error| error.to_string())?;
    let mut context = X509StoreContext::new().map_err(|error| error.to_string())?;
    let verdict = context
        .init(&store, &leaf, &chain, |context| {
            let valid = context.verify_cert()?;
            Ok((valid, context.error().error_string().to_string()))
        })
        .map_err(|error| error.to_string())?;
    match verdict {
        (true, _) => Ok(()),
        (false, reason) => Err(format!(
            "certificate for '{host}' does not verify against 'ca.crt': {reason}"
        )),
    }
}

/// Removes every secret value of the source from a message (defence in depth: libgit2 should not echo them).
pub(crate) fn scrub(message: &str, credentials: &Credentials) -> String {
    let mut text = message.trim().to_string();
    for secret in credentials.secret_values() {
        text = text.replace(secret, "***");
    }
    text
}
