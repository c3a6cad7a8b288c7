//! The virtual, create-only endpoints of authorization and authentication: SelfSubjectAccessReview,
//! SubjectAccessReview and SelfSubjectRulesReview (`authorization.k8s.io/v1`, answered from `rbac.rs`), and
//! TokenRequest on `serviceaccounts/NAME/token` (`authentication.k8s.io/v1`, tokens from `auth.rs`).
//!
//! Nothing here is stored: each request body is answered with its `status` filled in (201), as kube-apiserver does.
//! It reads the store (roles, bindings, the ServiceAccount) and issues tokens; it writes no object.

use std::time::{Duration, SystemTime};

use serde_json::{Map, Value, json};

use super::auth::{Identity, Tokens};
use super::error::{ApiError, Cause};
use super::rbac::{self, Attributes, Rule};
use super::resources::GroupResource;
use super::store::State;

/// The API group of the access reviews.
pub const AUTHORIZATION_GROUP: &str = "authorization.k8s.io";
/// The API group of TokenRequest.
pub const AUTHENTICATION_GROUP: &str = "authentication.k8s.io";
/// The audience of tokens when the request names none (kube-apiserver's default `--api-audiences`).
pub const DEFAULT_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";
/// How long a TokenRequest token lives when the request does not say (one hour, as kube-apiserver).
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// The shortest lifetime a TokenRequest may ask for (ten minutes).
pub const MIN_TOKEN_LIFETIME: Duration = Duration::from_secs(600);

/// How the server decides, for reviews: RBAC, or everything allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every request is allowed (the sandbox without RBAC).
    AllowAll,
    /// RBAC.
    Rbac,
}

fn invalid(kind: &str, group: &str, name: &str, field: &str, message: String) -> ApiError {
    ApiError::Invalid {
        kind: kind.to_string(),
        group: group.to_string(),
        name: name.to_string(),
        summary: format!("{field}: {message}"),
        causes: vec![Cause {
            reason: "FieldValueInvalid".to_string(),
            message,
            field: field.to_string(),
        }],
    }
}

fn text<'a>(value: &'a Value, field: &str) -> &'a str {
    value.get(field).and_then(Value::as_str).unwrap_or_default()
}

/// The attributes a review's `spec` asks about.
fn review_attributes(kind: &str, spec: &Value) -> Result<Attributes, ApiError> {
    let resource = spec.get("resourceAttributes").filter(|v| v.is_object());
    let non_resource = spec.get("nonResourceAttributes").filter(|v| v.is_object());
    match (resource, non_resource) {
        (Some(r), None) => Ok(Attributes {
            verb: text(r, "verb").to_string(),
            resource_request: true,
            api_group: text(r, "group").to_string(),
            api_version: text(r, "version").to_string(),
            namespace: text(r, "namespace").to_string(),
            resource: text(r, "resource").to_string(),
            subresource: text(r, "subresource").to_string(),
            name: text(r, "name").to_string(),
            path: String::new(),
        }),
        (None, Some(n)) => Ok(Attributes::non_resource(text(n, "verb"), text(n, "path"))),
        (Some(_), Some(_)) => Err(invalid(
            kind,
            AUTHORIZATION_GROUP,
            "",
            "spec.resourceAttributes",
            "Invalid value: \"\": cannot be specified in combination with nonResourceAttributes".into(),
        )),
        (None, None) => Err(invalid(
            kind,
            AUTHORIZATION_GROUP,
            "",
            "spec.resourceAttributes",
            "Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified"
                .into(),
        )),
    }
}

fn decide(state: &State, mode: Mode, identity: &Identity, attributes: &Attributes) -> Value {
    match mode {
        Mode::AllowAll => json!({"allowed": true}),
        Mode::Rbac => {
            let decision = rbac::authorize(state, identity, attributes);
            let mut status = Map::new();
            status.insert("allowed".into(), json!(decision.allowed));
            if !decision.reason.is_empty() {
                status.insert("reason".into(), json!(decision.reason));
            }
            Value::Object(status)
        }
    }
}

fn answer(mut body: Value, kind: &str, group: &str, status: Value) -> Value {
    if !body.is_object() {
        body = json!({});
    }
    body["kind"] = json!(kind);
    body["apiVersion"] = json!(format!("{group}/v1"));
    let metadata = body
        .get("metadata")
        .cloned()
        .filter(Value::is_object)
        .unwrap_or(json!({}));
    body["metadata"] = metadata;
    body["status"] = status;
    body
}

/// `POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews`: may the caller do this?
pub fn self_subject_access_review(
    state: &State,
    mode: Mode,
    caller: &Identity,
    body: Value,
) -> Result<Value, ApiError> {
    let spec = body.get("spec").cloned().unwrap_or(json!({}));
    let attributes = review_attributes("SelfSubjectAccessReview", &spec)?;
    let status = decide(state, mode, caller, &attributes);
    Ok(answer(body, "SelfSubjectAccessReview", AUTHORIZATION_GROUP, status))
}

/// `POST /apis/authorization.k8s.io/v1/subjectaccessreviews`: may `spec.user` / `spec.groups` do this?
pub fn subject_access_review(state: &State, mode: Mode, body: Value) -> Result<Value, ApiError> {
    let spec = body.get("spec").cloned().unwrap_or(json!({}));
    let attributes = review_attributes("SubjectAccessReview", &spec)?;
    let groups: Vec<String> = spec
        .get("groups")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|g| g.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let user = text(&spec, "user").to_string();
    if user.is_empty() && groups.is_empty() {
        return Err(invalid(
            "SubjectAccessReview",
            AUTHORIZATION_GROUP,
            "",
            "spec.user",
            "Invalid value: \"\": at least one of user or group must be specified".into(),
        ));
    }
    let subject = Identity {
        user,
        groups,
        uid: text(&spec, "uid").to_string(),
        extra: Default::default(),
    };
    let status = decide(state, mode, &subject, &attributes);
    Ok(answer(body, "SubjectAccessReview", AUTHORIZATION_GROUP, status))
}

fn resource_rule(rule: &Rule) -> Value {
    let mut out = json!({"verbs": rule.verbs, "apiGroups": rule.api_groups, "resources": rule.resources});
    if !rule.resource_names.is_empty() {
        out["resourceNames"] = json!(rule.resource_names);
    }
    out
}

/// `POST /apis/authorization.k8s.io/v1/selfsubjectrulesreviews`: what may the caller do in `spec.namespace`?
pub fn self_subject_rules_review(state: &State, mode: Mode, caller: &Identity, body: Value) -> Value {
    let namespace = body
        .pointer("/spec/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let rules = match mode {
        Mode::AllowAll => (
            vec![
                Rule {
                    verbs: vec!["*".into()],
                    api_groups: vec!["*".into()],
                    resources: vec!["*".into()],
                    ..Rule::default()
                },
                Rule {
                    verbs: vec!["*".into()],
                    non_resource_urls: vec!["*".into()],
                    ..Rule::default()
                },
            ],
            Vec::new(),
        ),
        Mode::Rbac => rbac::rules_for(state, caller, namespace),
    };
    let (rules, errors) = rules;
    let resource_rules: Vec<Value> = rules
        .iter()
        .filter(|r| !r.resources.is_empty())
        .map(resource_rule)
        .collect();
    let non_resource_rules: Vec<Value> = rules
        .iter()
        .filter(|r| !r.non_resource_urls.is_empty())
        .map(|r| json!({"verbs": r.verbs, "nonResourceURLs": r.non_resource_urls}))
        .collect();
    let mut status = json!({"resourceRules": resource_rules, "nonResourceRules": non_resource_rules,
        "incomplete": !errors.is_empty()});
    if !errors.is_empty() {
        status["evaluationError"] = json!(errors.join(", "));
    }
    answer(body, "SelfSubjectRulesReview", AUTHORIZATION_GROUP, status)
}

fn rfc3339(time: SystemTime) -> String {
    k8s_openapi::jiff::Timestamp::try_from(time)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// `POST /api/v1/namespaces/NS/serviceaccounts/NAME/token`: a token for an existing ServiceAccount.
pub fn token_request(
    state: &State,
    tokens: &Tokens,
    namespace: &str,
    name: &str,
    body: Value,
) -> Result<Value, ApiError> {
    let account = state
        .get(&GroupResource::new("", "serviceaccounts"), namespace, name)
        .ok_or_else(|| ApiError::NotFound {
            resource: "serviceaccounts".into(),
            name: name.to_string(),
        })?;
    let uid = account
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let seconds = match body.pointer("/spec/expirationSeconds") {
        None | Some(Value::Null) => DEFAULT_TOKEN_LIFETIME.as_secs(),
        Some(value) => {
            let seconds = value.as_i64().unwrap_or(-1);
            let field = "spec.expirationSeconds";
            if seconds < MIN_TOKEN_LIFETIME.as_secs() as i64 {
                return Err(invalid(
                    "TokenRequest",
                    AUTHENTICATION_GROUP,
                    name,
                    field,
                    format!("Invalid value: {value}: may not specify a duration less than 10 minutes"),
                ));
            }
            if seconds > 1 << 32 {
                return Err(invalid(
                    "TokenRequest",
                    AUTHENTICATION_GROUP,
                    name,
                    field,
                    format!("Invalid value: {value}: may not specify a duration larger than 2^32 seconds"),
                ));
            }
            seconds as u64
        }
    };
    let (token, expires) = tokens.issue(namespace, name, uid, Duration::from_secs(seconds));
    let audiences = body
        .pointer("/spec/audiences")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .cloned()
        .unwrap_or_else(|| vec![json!(DEFAULT_AUDIENCE)]);
    let mut spec = json!({"audiences": audiences, "expirationSeconds": seconds});
    if let Some(bound) = body.pointer("/spec/boundObjectRef").filter(|b| b.is_object()) {
        spec["boundObjectRef"] = bound.clone();
    }
    Ok(json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": super::store::now_rfc3339()},
        "spec": spec,
        "status": {"token": token, "expirationTimestamp": rfc3339(expires)},
    }))
}

/// The `APIResourceList` of `authorization.k8s.io/v1` and `authentication.k8s.io/v1` (`None` for other groups).
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    if version != "v1" {
        return None;
    }
    let entry = |name: &str, kind: &str, namespaced: bool| {
        json!({"name": name, "singularName": kind.to_ascii_lowercase(), "namespaced": namespaced, "kind": kind,
            "verbs": ["create"]})
    };
    let resources = match group {
        AUTHORIZATION_GROUP => vec![
            entry("localsubjectaccessreviews", "LocalSubjectAccessReview", true),
            entry("selfsubjectaccessreviews", "SelfSubjectAccessReview", false),
            entry("selfsubjectrulesreviews", "SelfSubjectRulesReview", false),
            entry("subjectaccessreviews", "SubjectAccessReview", false),
        ],
        AUTHENTICATION_GROUP => vec![
            entry("selfsubjectreviews", "SelfSubjectReview", false),
            entry("tokenreviews", "TokenReview", false),
        ],
        _ => return None,
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": format!("{group}/v1"),
        "resources": resources}),
    )
}

/// `POST /apis/authentication.k8s.io/v1/selfsubjectreviews` (`kubectl auth whoami`): the caller's identity.
pub fn self_subject_review(caller: &Identity, body: Value) -> Value {
    let mut user = json!({"username": caller.user, "groups": caller.groups});
    if !caller.uid.is_empty() {
        user["uid"] = json!(caller.uid);
    }
    if !caller.extra.is_empty() {
        user["extra"] = json!(caller.extra);
    }
    answer(
        body,
        "SelfSubjectReview",
        AUTHENTICATION_GROUP,
        json!({"userInfo": user}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::store::{Store, WriteOptions};

    fn store_with_account() -> Store {
        let store = Store::new(100);
        {
            let mut state = store.lock();
            let options = WriteOptions {
                field_manager: "test".into(),
                ..WriteOptions::default()
            };
            let namespace = state.registry.find_kind("v1", "Namespace").expect("namespaces");
            state
                .create(&namespace, "v1", None, json!({"metadata": {"name": "ns1"}}), &options)
                .expect("namespace");
            let account = state
                .registry
                .find_kind("v1", "ServiceAccount")
                .expect("serviceaccounts");
            state
                .create(
                    &account,
                    "v1",
                    Some("ns1"),
                    json!({"metadata": {"name": "agent"}}),
                    &options,
                )
                .expect("serviceaccount");
        }
        store
    }

    #[test]
    fn token_requests_issue_tokens_for_existing_accounts_only() {
        let store = store_with_account();
        let state = store.lock();
        let tokens = Tokens::default();
        let answer = token_request(&state, &tokens, "ns1", "agent", json!({"spec": {}})).expect("token");
        let token = answer
            .pointer("/status/token")
            .and_then(Value::as_str)
            .expect("status.token");
        assert!(
            answer
                .pointer("/status/expirationTimestamp")
                .and_then(Value::as_str)
                .is_some_and(|t| t.ends_with('Z'))
        );
        assert_eq!(answer.pointer("/spec/expirationSeconds"), Some(&json!(3600)));
        assert!(tokens.owner(token, SystemTime::now()).is_some());
        let missing = token_request(&state, &tokens, "ns1", "nobody", json!({})).unwrap_err();
        assert_eq!(missing.to_string(), "serviceaccounts \"nobody\" not found");
        let short = token_request(
            &state,
            &tokens,
            "ns1",
            "agent",
            json!({"spec": {"expirationSeconds": 60}}),
        )
        .unwrap_err();
        assert_eq!(
            short.to_string(),
            "TokenRequest.authentication.k8s.io \"agent\" is invalid: spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes"
        );
    }

    #[test]
    fn access_reviews_answer_for_the_caller_or_the_subject() {
        let store = store_with_account();
        let state = store.lock();
        let agent = Identity::service_account("ns1", "agent", "");
        let body = json!({"spec": {"resourceAttributes": {"namespace": "ns1", "verb": "get", "resource": "secrets"}}});
        let answer = self_subject_access_review(&state, Mode::Rbac, &agent, body.clone()).expect("review");
        assert_eq!(answer["status"], json!({"allowed": false}));
        assert_eq!(answer["kind"], "SelfSubjectAccessReview");
        let answer = self_subject_access_review(&state, Mode::AllowAll, &agent, body).expect("review");
        assert_eq!(answer["status"], json!({"allowed": true}));
        let masters = json!({"spec": {"user": "root", "groups": ["system:masters"],
            "nonResourceAttributes": {"path": "/metrics", "verb": "get"}}});
        assert_eq!(
            subject_access_review(&state, Mode::Rbac, masters).expect("review")["status"]["allowed"],
            true
        );
        let nobody = json!({"spec": {"nonResourceAttributes": {"path": "/metrics", "verb": "get"}}});
        assert_eq!(
            subject_access_review(&state, Mode::Rbac, nobody)
                .unwrap_err()
                .to_string(),
            "SubjectAccessReview.authorization.k8s.io \"\" is invalid: spec.user: Invalid value: \"\": at least one of user or group must be specified"
        );
        let empty = self_subject_access_review(&state, Mode::Rbac, &agent, json!({"spec": {}})).unwrap_err();
        assert_eq!(empty.code(), 422);
        let rules = self_subject_rules_review(
            &state,
            Mode::Rbac,
            &Identity::admin(),
            json!({"spec": {"namespace": "ns1"}}),
        );
        assert_eq!(
            rules["status"]["resourceRules"][0],
            json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})
        );
        assert_eq!(rules["status"]["incomplete"], false);
    }
}
