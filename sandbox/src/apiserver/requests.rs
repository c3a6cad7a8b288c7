//! Request accounting for tests and benchmarks: every request the HTTP layer receives is counted by Kubernetes verb
//! (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`, `discovery`) and resource
//! (`redisenterprisedatabases`, `gitsyncs/status`, …), and per identity: which user sent which (verb, apiGroup,
//! resource[/subresource], namespace) and whether it was allowed, with the rule that allowed it. Counting only reads
//! the request line and the authorization decision; it changes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use super::rbac::Grant;

/// What a request did: its verb and the resource it addressed (with `/<subresource>` when it named one).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestKind {
    /// The Kubernetes verb, derived from the method and path as the real API server does.
    pub verb: String,
    /// The plural resource name, `<resource>/<subresource>` for a subresource, empty for discovery.
    pub resource: String,
}

/// A snapshot of the request counts since the server started or since the last reset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestCounts {
    /// Requests per verb and resource.
    pub counts: BTreeMap<RequestKind, u64>,
}

/// The verbs that change state.
pub const WRITE_VERBS: [&str; 5] = ["create", "update", "patch", "delete", "deletecollection"];

impl RequestCounts {
    /// All requests.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// Requests with this verb, any resource.
    pub fn verb(&self, verb: &str) -> u64 {
        self.counts.iter().filter(|(k, _)| k.verb == verb).map(|(_, n)| n).sum()
    }

    /// Requests with this verb on this resource (`gitsyncs/status` for a subresource).
    pub fn get(&self, verb: &str, resource: &str) -> u64 {
        self.counts
            .iter()
            .filter(|(k, _)| k.verb == verb && k.resource == resource)
            .map(|(_, n)| n)
            .sum()
    }

    /// Writes (create, update, patch, delete) on this resource (`gitsyncs/status` for a subresource).
    pub fn writes_to(&self, resource: &str) -> u64 {
        WRITE_VERBS.iter().map(|verb| self.get(verb, resource)).sum()
    }

    /// Writes to any resource.
    pub fn writes(&self) -> u64 {
        WRITE_VERBS.iter().map(|verb| self.verb(verb)).sum()
    }

    /// Counts per verb, summed over resources.
    pub fn by_verb(&self) -> BTreeMap<String, u64> {
        let mut verbs = BTreeMap::new();
        for (kind, count) in &self.counts {
            *verbs.entry(kind.verb.clone()).or_insert(0) += count;
        }
        verbs
    }
}

/// One kind of request one identity sent, with the authorization decision.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IdentityRequest {
    /// The user the request ran as (after impersonation), e.g. `system:serviceaccount:ns1:agent`.
    pub user: String,
    /// The Kubernetes verb (`get`, `list`, `watch`, `create`, `patch`, …; the lower-case method for a non-resource
    /// request).
    pub verb: String,
    /// The API group (`""` for core and for non-resource requests).
    pub api_group: String,
    /// `resource` or `resource/subresource`; the path for a non-resource request.
    pub resource: String,
    /// The namespace, `""` for cluster-scoped and non-resource requests.
    pub namespace: String,
    /// Whether this is a non-resource request (`/version`, `/apis`, …).
    pub non_resource: bool,
    /// Whether it was allowed.
    pub allowed: bool,
    /// What allowed it: the binding, role and rule index (`binding_kind` `system:masters` for the admin); `None`
    /// when denied or when authorization is off.
    pub grant: Option<Grant>,
}

/// Requests per identity since the server started or since the last reset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityRequests {
    /// How many requests of each kind.
    pub counts: BTreeMap<IdentityRequest, u64>,
}

impl IdentityRequests {
    /// The users that sent requests.
    pub fn users(&self) -> BTreeSet<String> {
        self.counts.keys().map(|k| k.user.clone()).collect()
    }

    /// Only the requests of `user`.
    pub fn for_user(&self, user: &str) -> IdentityRequests {
        self.filtered(|k| k.user == user)
    }

    /// Only the denied requests.
    pub fn denied(&self) -> IdentityRequests {
        self.filtered(|k| !k.allowed)
    }

    /// Only the resource requests allowed by a role that is not part of the bootstrap policy (what an application's
    /// own roles granted).
    pub fn granted_by_own_roles(&self) -> IdentityRequests {
        self.filtered(|k| k.allowed && k.grant.as_ref().is_some_and(|g| !g.bootstrap))
    }

    /// All requests counted.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// The distinct (verb, apiGroup, resource) triples of resource requests, any namespace.
    pub fn verbs_and_resources(&self) -> BTreeSet<(String, String, String)> {
        self.counts
            .keys()
            .filter(|k| !k.non_resource)
            .map(|k| (k.verb.clone(), k.api_group.clone(), k.resource.clone()))
            .collect()
    }

    fn filtered(&self, keep: impl Fn(&IdentityRequest) -> bool) -> IdentityRequests {
        IdentityRequests {
            counts: self
                .counts
                .iter()
                .filter(|(k, _)| keep(k))
                .map(|(k, n)| (k.clone(), *n))
                .collect(),
        }
    }
}

/// The shared counter the HTTP layer records into.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter {
    counts: Arc<Mutex<BTreeMap<RequestKind, u64>>>,
    identities: Arc<Mutex<BTreeMap<IdentityRequest, u64>>>,
}

impl RequestCounter {
    /// Counts one request.
    pub fn record(&self, method: &str, path: &str, query: Option<&str>) {
        let kind = classify(method, path, query);
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        *counts.entry(kind).or_insert(0) += 1;
    }

    /// Counts one request of an identity.
    pub fn record_identity(&self, request: IdentityRequest) {
        let mut identities = self.identities.lock().unwrap_or_else(|p| p.into_inner());
        *identities.entry(request).or_insert(0) += 1;
    }

    /// The per-identity counts so far.
    pub fn identities(&self) -> IdentityRequests {
        IdentityRequests {
            counts: self.identities.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }

    /// The counts so far.
    pub fn snapshot(&self) -> RequestCounts {
        RequestCounts {
            counts: self.counts.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }

    /// Forgets every count.
    pub fn reset(&self) {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.identities.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// The verb and resource of a request, from its method, path and query.
pub fn classify(method: &str, path: &str, query: Option<&str>) -> RequestKind {
    let segments: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let rest: &[&str] = match segments.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => &[],
    };
    let discovery = || RequestKind {
        verb: "discovery".to_string(),
        resource: String::new(),
    };
    if rest.is_empty() {
        return discovery();
    }
    // `namespaces/<ns>/<resource>...` addresses a namespaced resource; `namespaces[/<name>]` the Namespaces.
    let rest = match rest {
        ["namespaces", _namespace, tail @ ..] if !tail.is_empty() => tail,
        _ => rest,
    };
    let (watch_path, rest) = match rest {
        ["watch", tail @ ..] => (true, tail),
        _ => (false, rest),
    };
    let rest = match rest {
        ["namespaces", _namespace, tail @ ..] if !tail.is_empty() => tail,
        _ => rest,
    };
    let Some(resource) = rest.first() else {
        return discovery();
    };
    let named = rest.len() > 1;
    let resource = match rest.get(2) {
        Some(subresource) => format!("{resource}/{subresource}"),
        None => resource.to_string(),
    };
    let watch_query = query.is_some_and(|q| q.split('&').any(|pair| pair == "watch=true" || pair == "watch=1"));
    let verb = match method.to_ascii_uppercase().as_str() {
        "GET" if watch_path || watch_query => "watch",
        "GET" if named => "get",
        "GET" => "list",
        "POST" => "create",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" if named => "delete",
        "DELETE" => "deletecollection",
        _ => "other",
    };
    RequestKind {
        verb: verb.to_string(),
        resource,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(method: &str, path: &str, query: Option<&str>) -> (String, String) {
        let kind = classify(method, path, query);
        (kind.verb, kind.resource)
    }

    #[test]
    fn verbs_and_resources_follow_the_api_server() {
        let redb = "/apis/app.redislabs.com/v1alpha1/namespaces/default/redisenterprisedatabases";
        let cases = [
            (
                "GET",
                format!("{redb}/cache"),
                None,
                ("get", "redisenterprisedatabases"),
            ),
            ("GET", redb.to_string(), None, ("list", "redisenterprisedatabases")),
            (
                "GET",
                redb.to_string(),
                Some("watch=true&resourceVersion=1"),
                ("watch", "redisenterprisedatabases"),
            ),
            (
                "PATCH",
                format!("{redb}/cache"),
                Some("fieldManager=x"),
                ("patch", "redisenterprisedatabases"),
            ),
            (
                "PATCH",
                format!("{redb}/cache/status"),
                None,
                ("patch", "redisenterprisedatabases/status"),
            ),
            ("POST", redb.to_string(), None, ("create", "redisenterprisedatabases")),
            (
                "PUT",
                format!("{redb}/cache"),
                None,
                ("update", "redisenterprisedatabases"),
            ),
            (
                "DELETE",
                format!("{redb}/cache"),
                None,
                ("delete", "redisenterprisedatabases"),
            ),
            (
                "DELETE",
                redb.to_string(),
                None,
                ("deletecollection", "redisenterprisedatabases"),
            ),
            ("GET", "/api/v1/namespaces".to_string(), None, ("list", "namespaces")),
            (
                "GET",
                "/api/v1/namespaces/default".to_string(),
                None,
                ("get", "namespaces"),
            ),
            (
                "GET",
                "/api/v1/watch/namespaces/default/secrets".to_string(),
                None,
                ("watch", "secrets"),
            ),
            (
                "GET",
                "/apis/redisgitops.dev/v1alpha1/gitsyncs".to_string(),
                None,
                ("list", "gitsyncs"),
            ),
            (
                "GET",
                "/apis/redisgitops.dev/v1alpha1".to_string(),
                None,
                ("discovery", ""),
            ),
            ("GET", "/version".to_string(), None, ("discovery", "")),
        ];
        for (method, path, query, (verb, resource)) in cases {
            assert_eq!(
                kind(method, &path, query),
                (verb.to_string(), resource.to_string()),
                "{method} {path}"
            );
        }
    }

    #[test]
    fn counts_sum_by_verb_and_reset() {
        let counter = RequestCounter::default();
        let redb = "/apis/app.redislabs.com/v1alpha1/namespaces/default/redisenterprisedatabases";
        counter.record("GET", redb, None);
        counter.record("PATCH", &format!("{redb}/a"), None);
        counter.record("PATCH", &format!("{redb}/a/status"), None);
        counter.record("PATCH", &format!("{redb}/b"), None);
        let counts = counter.snapshot();
        assert_eq!(counts.total(), 4);
        assert_eq!(counts.verb("patch"), 3);
        assert_eq!(counts.writes_to("redisenterprisedatabases"), 2);
        assert_eq!(counts.writes_to("redisenterprisedatabases/status"), 1);
        assert_eq!(counts.writes(), 3);
        assert_eq!(counts.by_verb().get("list"), Some(&1));
        counter.reset();
        assert_eq!(counter.snapshot(), RequestCounts::default());
    }

    #[test]
    fn identity_requests_filter_by_user_and_decision() {
        let counter = RequestCounter::default();
        let request = |user: &str, verb: &str, allowed: bool, bootstrap: bool| IdentityRequest {
            user: user.into(),
            verb: verb.into(),
            api_group: "apps".into(),
            resource: "statefulsets".into(),
            namespace: "ns1".into(),
            non_resource: false,
            allowed,
            grant: allowed.then(|| Grant {
                binding_kind: "ClusterRoleBinding".into(),
                binding_name: "b".into(),
                binding_namespace: String::new(),
                role_kind: "ClusterRole".into(),
                role_name: "r".into(),
                rule: 0,
                bootstrap,
            }),
        };
        counter.record_identity(request("agent", "get", true, false));
        counter.record_identity(request("agent", "get", true, false));
        counter.record_identity(request("agent", "delete", false, false));
        counter.record_identity(request("other", "list", true, true));
        let all = counter.identities();
        assert_eq!(all.total(), 4);
        assert_eq!(all.users().into_iter().collect::<Vec<_>>(), ["agent", "other"]);
        let agent = all.for_user("agent");
        assert_eq!(agent.total(), 3);
        assert_eq!(agent.denied().total(), 1);
        assert_eq!(all.granted_by_own_roles().total(), 2);
        let triples: Vec<_> = agent.verbs_and_resources().into_iter().map(|(v, _, _)| v).collect();
        assert_eq!(triples, ["delete", "get"]);
        counter.reset();
        assert_eq!(counter.identities().total(), 0);
    }
}
