//! Error categories derived one way: every controller's error names a stable category (its variant name, or the
//! kind of the underlying failure), used as event reason and metric label, never error text. Pure.

/// An error with a stable category and a hint whether the other side asked to slow down.
pub trait ErrorCategory {
    /// A stable PascalCase name for event reasons and metric labels.
    fn category(&self) -> &'static str;

    /// Whether the failure was a request to slow down (HTTP 429, REST 409 busy): it backs off longer.
    fn is_rate_limited(&self) -> bool {
        false
    }
}

/// Whether a Kubernetes API error is the API server asking to slow down (429).
pub fn kube_rate_limited(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(response) if response.code == 429)
}

/// The reason (event, condition) and category of a request the API server refused with 403.
pub const MISSING_PERMISSION: &str = "MissingPermission";

/// The category of a Kubernetes API error: [`MISSING_PERMISSION`] for a 403, `fallback` otherwise.
pub fn kube_category(error: &kube::Error, fallback: &'static str) -> &'static str {
    if matches!(error, kube::Error::Api(status) if status.code == 403) {
        MISSING_PERMISSION
    } else {
        fallback
    }
}

/// What a 403 from the API server says the agent's account may not do, read from the Status message Kubernetes
/// writes (`User "u" cannot VERB resource "RES[/SUB]" in API group "G" in the namespace "NS"`, or `at the cluster
/// scope`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingPermission {
    /// The verb refused (`get`, `patch`, `create`, …).
    pub verb: String,
    /// The resource, with its subresource after a `/` (`secrets`, `redisenterprisedatabases/status`).
    pub resource: String,
    /// The API group (`""` for the core group).
    pub group: String,
    /// The namespace, or `None` at the cluster scope.
    pub namespace: Option<String>,
}

impl MissingPermission {
    /// Reads the refusal out of a 403 Status message; `None` when the message is not in the Kubernetes form.
    pub fn from_message(message: &str) -> Option<Self> {
        let (_, refusal) = message.split_once("\" cannot ")?;
        let (verb, rest) = refusal.split_once(" resource \"")?;
        let (resource, rest) = rest.split_once("\" in API group \"")?;
        let (group, rest) = rest.split_once('"')?;
        let namespace = match rest.trim_start().strip_prefix("in the namespace \"") {
            Some(rest) => Some(rest.split_once('"')?.0.to_string()),
            None if rest.trim_start().starts_with("at the cluster scope") => None,
            None => return None,
        };
        Some(Self {
            verb: verb.to_string(),
            resource: resource.to_string(),
            group: group.to_string(),
            namespace,
        })
    }

    /// The RBAC rule that grants it, in the YAML flow form of `deploy/base/rbac.yaml`.
    pub fn rule(&self) -> String {
        let group = if self.group.is_empty() { "\"\"" } else { &self.group };
        format!(
            "{{apiGroups: [{group}], resources: [{}], verbs: [{}]}}",
            self.resource, self.verb
        )
    }
}

impl std::fmt::Display for MissingPermission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let group = if self.group.is_empty() { "core" } else { &self.group };
        write!(
            f,
            "the agent may not {} {} (API group {group}) ",
            self.verb, self.resource
        )?;
        match &self.namespace {
            Some(namespace) => write!(f, "in namespace {namespace}")?,
            None => write!(f, "at the cluster scope")?,
        }
        write!(
            f,
            "; add the rule {} to the ClusterRole redis-gitops (deploy/base/rbac.yaml), or to the Role redis-gitops \
             of that namespace in a namespaced install",
            self.rule()
        )
    }
}

/// What a 403 says the agent may not do, if `error` is one.
pub fn missing_permission(error: &kube::Error) -> Option<MissingPermission> {
    match error {
        kube::Error::Api(status) if status.code == 403 => MissingPermission::from_message(&status.message),
        _ => None,
    }
}

/// A Kubernetes API error for people: the API server's message and code (never the Rust structure), and for a 403
/// the rule to add.
pub fn kube_error_text(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => match missing_permission(error) {
            Some(missing) => missing.to_string(),
            None if status.reason.is_empty() => format!("{} (HTTP {})", status.message, status.code),
            None => format!("{} (HTTP {} {})", status.message, status.code, status.reason),
        },
        other => other.to_string(),
    }
}

/// An error of kube's finalizer helper for people: the API server's message when adding or removing the finalizer
/// failed (kube's own text appends the Rust structure of the answer), the inner error's text otherwise.
pub fn finalizer_error_text<E: std::error::Error + 'static>(error: &kube::runtime::finalizer::Error<E>) -> String {
    use kube::runtime::finalizer::Error;
    match error {
        Error::AddFinalizer(source) => format!("failed to add the finalizer: {}", kube_error_text(source)),
        Error::RemoveFinalizer(source) => format!("failed to remove the finalizer: {}", kube_error_text(source)),
        other => other.to_string(),
    }
}

/// A watch failure for people: the API server's message (kube's own text of a failed request appends the Rust
/// structure of the answer).
pub fn watcher_error_text(error: &kube::runtime::watcher::Error) -> String {
    use kube::runtime::watcher::Error;
    match error {
        Error::InitialListFailed(source) => format!("failed to list the objects to watch: {}", kube_error_text(source)),
        Error::WatchStartFailed(source) => format!("failed to start watching: {}", kube_error_text(source)),
        Error::WatchFailed(source) => format!("the watch failed: {}", kube_error_text(source)),
        Error::WatchError(status) => format!(
            "the API server ended the watch: {} (HTTP {} {})",
            status.message, status.code, status.reason
        ),
        other => other.to_string(),
    }
}

/// A controller's error for the log: `reconcile` says how to read a reconcile failure, watch failures read as
/// [`watcher_error_text`], never with the Rust structure of an API answer.
pub fn controller_error_text<E>(
    error: &kube::runtime::controller::Error<E, kube::runtime::watcher::Error>,
    reconcile: impl Fn(&E) -> String,
) -> String {
    use kube::runtime::controller::Error;
    match error {
        Error::ReconcilerFailed(inner, object) => format!("reconcile of {object} failed: {}", reconcile(inner)),
        Error::QueueError(watch) => watcher_error_text(watch),
        Error::ObjectNotFound(object) => format!("{object} is no longer in the watch cache"),
        Error::RunnerError(runner) => format!("the controller's runner failed: {runner}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forbidden(message: &str) -> kube::Error {
        kube::Error::Api(kube::core::Status::failure(message, "Forbidden").with_code(403).boxed())
    }

    #[test]
    fn a_namespaced_refusal_names_the_rule_to_add() {
        let error = forbidden(
            "secrets \"db\" is forbidden: User \"system:serviceaccount:ns1:agent\" cannot get resource \"secrets\" \
             in API group \"\" in the namespace \"ns1\"",
        );
        let missing = missing_permission(&error).expect("a refusal");
        assert_eq!(
            missing,
            MissingPermission {
                verb: "get".into(),
                resource: "secrets".into(),
                group: String::new(),
                namespace: Some("ns1".into()),
            }
        );
        assert_eq!(
            missing.rule(),
            "{apiGroups: [\"\"], resources: [secrets], verbs: [get]}"
        );
        let text = kube_error_text(&error);
        assert!(text.starts_with("the agent may not get secrets (API group core) in namespace ns1; add the rule"));
        assert_eq!(kube_category(&error, "KubernetesError"), MISSING_PERMISSION);
    }

    #[test]
    fn a_cluster_scope_refusal_and_a_subresource() {
        let missing = MissingPermission::from_message(
            "redisenterprisedatabases.app.redislabs.com is forbidden: User \"u\" cannot patch resource \
             \"redisenterprisedatabases/status\" in API group \"app.redislabs.com\" at the cluster scope",
        )
        .expect("a refusal");
        assert_eq!(missing.resource, "redisenterprisedatabases/status");
        assert_eq!(missing.namespace, None);
        assert_eq!(
            missing.rule(),
            "{apiGroups: [app.redislabs.com], resources: [redisenterprisedatabases/status], verbs: [patch]}"
        );
    }

    #[test]
    fn other_errors_read_as_the_servers_message_without_the_rust_structure() {
        let error = kube::Error::Api(
            kube::core::Status::failure("namespaces \"prod\" not found", "NotFound")
                .with_code(404)
                .boxed(),
        );
        assert_eq!(
            kube_error_text(&error),
            "namespaces \"prod\" not found (HTTP 404 NotFound)"
        );
        assert_eq!(kube_category(&error, "KubernetesError"), "KubernetesError");
        // A 403 in another form keeps the server's words.
        let odd = forbidden("forbidden: User \"u\" cannot get path \"/metrics\"");
        assert_eq!(missing_permission(&odd), None);
        assert!(kube_error_text(&odd).starts_with("forbidden: User"));
    }

    #[test]
    fn no_error_text_carries_the_rust_structure() {
        let error = kube::Error::Api(
            kube::core::Status::failure("namespaces \"redis-production\" not found", "NotFound")
                .with_code(404)
                .boxed(),
        );
        // kube's own Display appends the Debug form of the Status; ours never does.
        assert!(error.to_string().contains("Status {"));
        let finalizer: kube::runtime::finalizer::Error<std::io::Error> =
            kube::runtime::finalizer::Error::AddFinalizer(error);
        let text = finalizer_error_text(&finalizer);
        assert_eq!(
            text,
            "failed to add the finalizer: namespaces \"redis-production\" not found (HTTP 404 NotFound)"
        );
        assert!(!text.contains("Status {") && !text.contains("Some("));
        let forbidden = forbidden(
            "redisenterpriseclusters.app.redislabs.com is forbidden: User \"u\" cannot list resource \
             \"redisenterpriseclusters\" in API group \"app.redislabs.com\" at the cluster scope",
        );
        let watch = watcher_error_text(&kube::runtime::watcher::Error::InitialListFailed(forbidden));
        assert!(
            watch.starts_with("failed to list the objects to watch: the agent may not list redisenterpriseclusters"),
            "{watch}"
        );
        assert!(!watch.contains("Status {"), "{watch}");
    }
}
