//! Authentication for the sandbox API server: bearer tokens (the admin token and the ServiceAccount tokens the
//! server issues) become an [`Identity`] {user, groups, uid}; requests without a token are `system:anonymous`;
//! the `Impersonate-*` headers are parsed here into the checks and the identity they ask for.
//!
//! It only reads headers and its own token table. It never logs, returns or stores a token in clear text: the
//! table is keyed by the token's SHA-256. Whether an identity may do something is `rbac.rs`'s business.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::http::{HeaderMap, header};
use sha2::{Digest, Sha256};

use super::rbac::Attributes;

/// The group every authenticated identity is in.
pub const AUTHENTICATED: &str = "system:authenticated";
/// The group of requests without credentials.
pub const UNAUTHENTICATED: &str = "system:unauthenticated";
/// The user of requests without credentials.
pub const ANONYMOUS: &str = "system:anonymous";
/// The group that bypasses authorization, as in Kubernetes.
pub const MASTERS: &str = "system:masters";
/// The user name of the sandbox's admin identity (the kubeconfig and `kube::Client`s of the handle).
pub const ADMIN_USER: &str = "kubernetes-admin";
/// The prefix of ServiceAccount user names.
pub const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

/// Who sent a request, after authentication and impersonation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identity {
    /// The user name, e.g. `system:serviceaccount:ns1:agent`.
    pub user: String,
    /// The groups, e.g. `system:serviceaccounts`, `system:serviceaccounts:ns1`, `system:authenticated`.
    pub groups: Vec<String>,
    /// The uid (the ServiceAccount's uid for its tokens), may be empty.
    pub uid: String,
    /// Extra attributes (from `Impersonate-Extra-*`).
    pub extra: BTreeMap<String, Vec<String>>,
}

impl Identity {
    /// `system:anonymous` in `system:unauthenticated`.
    pub fn anonymous() -> Self {
        Identity {
            user: ANONYMOUS.to_string(),
            groups: vec![UNAUTHENTICATED.to_string()],
            ..Identity::default()
        }
    }

    /// The sandbox admin: a user in `system:masters`.
    pub fn admin() -> Self {
        Identity {
            user: ADMIN_USER.to_string(),
            groups: vec![MASTERS.to_string(), AUTHENTICATED.to_string()],
            ..Identity::default()
        }
    }

    /// The identity of a ServiceAccount's tokens: `system:serviceaccount:<ns>:<name>` with the SA groups.
    pub fn service_account(namespace: &str, name: &str, uid: &str) -> Self {
        Identity {
            user: service_account_user(namespace, name),
            groups: service_account_groups(namespace),
            uid: uid.to_string(),
            extra: BTreeMap::new(),
        }
    }

    /// Whether the identity is in `system:masters` (bypasses authorization).
    pub fn is_master(&self) -> bool {
        self.groups.iter().any(|g| g == MASTERS)
    }

    /// The `(namespace, name)` of a ServiceAccount user.
    pub fn service_account_name(&self) -> Option<(&str, &str)> {
        parse_service_account_user(&self.user)
    }
}

/// `system:serviceaccount:<ns>:<name>`.
pub fn service_account_user(namespace: &str, name: &str) -> String {
    format!("{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}")
}

/// The groups of a ServiceAccount in `namespace`.
pub fn service_account_groups(namespace: &str) -> Vec<String> {
    vec![
        "system:serviceaccounts".to_string(),
        format!("system:serviceaccounts:{namespace}"),
        AUTHENTICATED.to_string(),
    ]
}

/// Splits `system:serviceaccount:<ns>:<name>` into `(ns, name)`.
pub fn parse_service_account_user(user: &str) -> Option<(&str, &str)> {
    let rest = user.strip_prefix(SERVICE_ACCOUNT_PREFIX)?;
    let (namespace, name) = rest.split_once(':')?;
    (!namespace.is_empty() && !name.is_empty() && !name.contains(':')).then_some((namespace, name))
}

/// One issued token: who it is and until when.
#[derive(Debug, Clone)]
struct TokenEntry {
    identity: Identity,
    /// The ServiceAccount `(namespace, name)` it belongs to; `None` for the admin token.
    service_account: Option<(String, String)>,
    expires: Option<SystemTime>,
}

/// What a presented token turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenOwner {
    /// The admin token.
    Admin(Identity),
    /// A ServiceAccount token: the identity and the ServiceAccount `(namespace, name)`, which must still exist.
    ServiceAccount(Identity, String, String),
}

/// The table of issued tokens, shared by the HTTP layer and the handle.
#[derive(Clone, Default)]
pub struct Tokens {
    entries: Arc<Mutex<HashMap<String, TokenEntry>>>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens").finish_non_exhaustive()
    }
}

fn digest(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// 32 random bytes from the kernel, hex encoded; the time and a counter if `/dev/urandom` cannot be read.
pub fn random_hex() -> String {
    use std::io::Read as _;
    let mut bytes = [0u8; 32];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let count = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        bytes.copy_from_slice(&Sha256::digest(format!("{nanos}-{count}-{}", std::process::id())));
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Tokens {
    /// Registers `token` as the admin token.
    pub fn add_admin(&self, token: &str) {
        self.lock().insert(
            digest(token),
            TokenEntry {
                identity: Identity::admin(),
                service_account: None,
                expires: None,
            },
        );
    }

    /// Issues a new token for a ServiceAccount, valid for `lifetime`.
    pub fn issue(&self, namespace: &str, name: &str, uid: &str, lifetime: Duration) -> (String, SystemTime) {
        let token = format!("sandbox-sa.{}", random_hex());
        let expires = SystemTime::now() + lifetime;
        self.lock().insert(
            digest(&token),
            TokenEntry {
                identity: Identity::service_account(namespace, name, uid),
                service_account: Some((namespace.to_string(), name.to_string())),
                expires: Some(expires),
            },
        );
        (token, expires)
    }

    /// Who a token belongs to, if it is known and not expired at `now`.
    pub fn owner(&self, token: &str, now: SystemTime) -> Option<TokenOwner> {
        let entries = self.lock();
        let entry = entries.get(&digest(token))?;
        if entry.expires.is_some_and(|expires| expires <= now) {
            return None;
        }
        Some(match &entry.service_account {
            None => TokenOwner::Admin(entry.identity.clone()),
            Some((namespace, name)) => {
                TokenOwner::ServiceAccount(entry.identity.clone(), namespace.clone(), name.clone())
            }
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, TokenEntry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The bearer token of a request: `None` without an `Authorization` header, `Some(Err)` for a header that is not a
/// bearer token (which Kubernetes answers with 401).
pub fn bearer(headers: &HeaderMap) -> Option<Result<&str, ()>> {
    let value = headers.get(header::AUTHORIZATION)?;
    let Ok(text) = value.to_str() else {
        return Some(Err(()));
    };
    match text.strip_prefix("Bearer ") {
        Some(token) if !token.is_empty() => Some(Ok(token)),
        _ => Some(Err(())),
    }
}

/// What the `Impersonate-*` headers of a request ask for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Impersonation {
    /// `Impersonate-User`.
    pub user: Option<String>,
    /// Each `Impersonate-Group`.
    pub groups: Vec<String>,
    /// `Impersonate-Uid`.
    pub uid: Option<String>,
    /// Each `Impersonate-Extra-<key>` (key unescaped and lower-cased, as the header name is).
    pub extra: BTreeMap<String, Vec<String>>,
}

/// Why impersonation headers are malformed (a 400 in Kubernetes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImpersonationError {
    /// Groups, uid or extras without a user.
    #[error("requested {what} without impersonating a user")]
    WithoutUser {
        /// What was asked for.
        what: String,
    },
}

impl Impersonation {
    /// Reads the headers; `None` when no `Impersonate-*` header is present.
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<Self>, ImpersonationError> {
        let mut request = Impersonation::default();
        let mut any = false;
        for (name, value) in headers {
            let name = name.as_str().to_ascii_lowercase();
            let Ok(value) = value.to_str() else { continue };
            if name == "impersonate-user" {
                request.user = Some(value.to_string());
                any = true;
            } else if name == "impersonate-group" {
                request.groups.push(value.to_string());
                any = true;
            } else if name == "impersonate-uid" {
                request.uid = Some(value.to_string());
                any = true;
            } else if let Some(key) = name.strip_prefix("impersonate-extra-") {
                request.extra.entry(unescape(key)).or_default().push(value.to_string());
                any = true;
            }
        }
        if !any {
            return Ok(None);
        }
        if request.user.as_deref().is_none_or(str::is_empty) {
            let what = if !request.groups.is_empty() {
                format!("groups {:?}", request.groups)
            } else if request.uid.is_some() {
                "uid".to_string()
            } else {
                "extras".to_string()
            };
            return Err(ImpersonationError::WithoutUser { what });
        }
        Ok(Some(request))
    }

    /// The authorization checks the impersonating identity must pass, one per header value (verb `impersonate`).
    pub fn checks(&self) -> Vec<Attributes> {
        let mut checks = Vec::new();
        let user = self.user.clone().unwrap_or_default();
        match parse_service_account_user(&user) {
            Some((namespace, name)) => checks.push(Attributes::impersonate("", "serviceaccounts", namespace, name)),
            None => checks.push(Attributes::impersonate("", "users", "", &user)),
        }
        for group in &self.groups {
            checks.push(Attributes::impersonate("", "groups", "", group));
        }
        if let Some(uid) = &self.uid {
            checks.push(Attributes::impersonate("authentication.k8s.io", "uids", "", uid));
        }
        for (key, values) in &self.extra {
            for value in values {
                let mut check = Attributes::impersonate("authentication.k8s.io", "userextras", "", value);
                check.subresource = key.clone();
                checks.push(check);
            }
        }
        checks
    }

    /// The identity the request then runs as (filters/impersonation.go).
    pub fn identity(&self) -> Identity {
        let user = self.user.clone().unwrap_or_default();
        let mut groups = self.groups.clone();
        if groups.is_empty()
            && let Some((namespace, _)) = parse_service_account_user(&user)
        {
            groups = service_account_groups(namespace)
                .into_iter()
                .filter(|g| g != AUTHENTICATED)
                .collect();
        }
        if user == ANONYMOUS {
            if !groups.iter().any(|g| g == UNAUTHENTICATED) {
                groups.push(UNAUTHENTICATED.to_string());
            }
        } else if !groups.iter().any(|g| g == AUTHENTICATED || g == UNAUTHENTICATED) {
            groups.push(AUTHENTICATED.to_string());
        }
        Identity {
            user,
            groups,
            uid: self.uid.clone().unwrap_or_default(),
            extra: self.extra.clone(),
        }
    }
}

/// Undoes the percent-encoding client-go applies to extra keys in header names.
fn unescape(key: &str) -> String {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = key.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_account_names_parse_and_get_their_groups() {
        assert_eq!(
            parse_service_account_user("system:serviceaccount:ns1:agent"),
            Some(("ns1", "agent"))
        );
        assert_eq!(parse_service_account_user("system:serviceaccount:ns1"), None);
        assert_eq!(parse_service_account_user("alice"), None);
        let identity = Identity::service_account("ns1", "agent", "u1");
        assert_eq!(identity.user, "system:serviceaccount:ns1:agent");
        assert_eq!(
            identity.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:ns1",
                "system:authenticated"
            ]
        );
    }

    #[test]
    fn tokens_authenticate_until_they_expire() {
        let tokens = Tokens::default();
        tokens.add_admin("admin-token");
        let (token, expires) = tokens.issue("ns1", "agent", "u1", Duration::from_secs(600));
        assert!(token.starts_with("sandbox-sa."));
        let now = SystemTime::now();
        assert_eq!(
            tokens.owner("admin-token", now),
            Some(TokenOwner::Admin(Identity::admin()))
        );
        match tokens.owner(&token, now) {
            Some(TokenOwner::ServiceAccount(identity, ns, name)) => {
                assert_eq!(
                    (identity.user.as_str(), ns.as_str(), name.as_str()),
                    ("system:serviceaccount:ns1:agent", "ns1", "agent")
                );
            }
            other => panic!("expected a ServiceAccount token, got {other:?}"),
        }
        assert_eq!(tokens.owner(&token, expires), None);
        assert_eq!(tokens.owner("unknown", now), None);
        assert!(!format!("{tokens:?}").contains("admin-token"));
    }

    #[test]
    fn impersonation_headers_become_checks_and_an_identity() {
        let mut headers = HeaderMap::new();
        headers.insert("impersonate-user", "system:serviceaccount:ns1:agent".parse().unwrap());
        let request = Impersonation::from_headers(&headers).unwrap().unwrap();
        let checks = request.checks();
        assert_eq!(checks.len(), 1);
        assert_eq!(
            (
                checks[0].verb.as_str(),
                checks[0].resource.as_str(),
                checks[0].namespace.as_str(),
                checks[0].name.as_str()
            ),
            ("impersonate", "serviceaccounts", "ns1", "agent")
        );
        assert_eq!(request.identity(), Identity::service_account("ns1", "agent", ""));

        let mut headers = HeaderMap::new();
        headers.insert("impersonate-user", "bob".parse().unwrap());
        headers.append("impersonate-group", "team".parse().unwrap());
        headers.insert("impersonate-extra-scopes%2Fa", "x".parse().unwrap());
        let request = Impersonation::from_headers(&headers).unwrap().unwrap();
        let identity = request.identity();
        assert_eq!(identity.groups, ["team", "system:authenticated"]);
        assert_eq!(identity.extra.get("scopes/a"), Some(&vec!["x".to_string()]));
        let resources: Vec<String> = request.checks().iter().map(|c| c.resource.clone()).collect();
        assert_eq!(resources, ["users", "groups", "userextras"]);

        let mut headers = HeaderMap::new();
        headers.insert("impersonate-group", "team".parse().unwrap());
        assert_eq!(
            Impersonation::from_headers(&headers).unwrap_err().to_string(),
            "requested groups [\"team\"] without impersonating a user"
        );
        assert_eq!(Impersonation::from_headers(&HeaderMap::new()), Ok(None));
    }
}
