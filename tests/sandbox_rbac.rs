//! RBAC in the sandbox API server (reference/kubernetes.md §3) with real clients: `kube::Client` as the admin and
//! as ServiceAccounts, raw HTTP for exact bodies, and the real `kubectl` over HTTPS with the sandbox CA.

use std::path::PathBuf;
use std::time::Duration;

use axum::http;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use redis_gitops_sandbox::apiserver::{ApiServer, ApiServerHandle, ApiServerOptions, Authorization};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn start(tls: bool) -> ApiServerHandle {
    let options = ApiServerOptions {
        authorization: Authorization::Rbac,
        tls,
        ..ApiServerOptions::default()
    };
    match ApiServer::start(options).await {
        Ok(server) => server,
        Err(e) => panic!("the sandbox API server did not start: {e}"),
    }
}

fn create(server: &ApiServerHandle, api_version: &str, kind: &str, object: Value) {
    if let Err(e) = server.objects().create(api_version, kind, object.clone()) {
        panic!("cannot create {kind} {object}: {e}");
    }
}

/// Namespaces `ns1` and `ns2`, ServiceAccount `ns1/agent`, and a Secret `db` and a ConfigMap `settings` in both.
fn seed(server: &ApiServerHandle) {
    for ns in ["ns1", "ns2"] {
        create(server, "v1", "Namespace", json!({"metadata": {"name": ns}}));
        create(
            server,
            "v1",
            "Secret",
            json!({"metadata": {"name": "db", "namespace": ns}, "stringData": {"password": "p"}}),
        );
        create(
            server,
            "v1",
            "ConfigMap",
            json!({"metadata": {"name": "settings", "namespace": ns}, "data": {"a": "1"}}),
        );
    }
    create(
        server,
        "v1",
        "ServiceAccount",
        json!({"metadata": {"name": "agent", "namespace": "ns1"}}),
    );
}

fn cluster_role(server: &ApiServerHandle, name: &str, rules: Value) {
    create(
        server,
        "rbac.authorization.k8s.io/v1",
        "ClusterRole",
        json!({"metadata": {"name": name}, "rules": rules}),
    );
}

fn role_binding(server: &ApiServerHandle, namespace: &str, name: &str, role_kind: &str, role: &str, subjects: Value) {
    create(
        server,
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        json!({"metadata": {"name": name, "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
            "subjects": subjects}),
    );
}

fn cluster_role_binding(server: &ApiServerHandle, name: &str, role: &str, subjects: Value) {
    create(
        server,
        "rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding",
        json!({"metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": subjects}),
    );
}

fn agent_client(server: &ApiServerHandle) -> kube::Client {
    match server.client_as_service_account("ns1", "agent") {
        Ok(client) => client,
        Err(e) => panic!("no client for ns1/agent: {e}"),
    }
}

fn admin_client(server: &ApiServerHandle) -> kube::Client {
    match server.kube_client() {
        Ok(client) => client,
        Err(e) => panic!("no admin client: {e}"),
    }
}

fn api_error<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> kube::core::Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

const AGENT: &str = "system:serviceaccount:ns1:agent";

/// Sends one raw HTTP/1.1 request (plain HTTP) with optional extra headers; returns the code and body.
async fn raw(
    server: &ApiServerHandle,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut stream = match tokio::net::TcpStream::connect(server.address()).await {
        Ok(s) => s,
        Err(e) => panic!("cannot connect to the server: {e}"),
    };
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        server.address(),
        body.len()
    );
    if let Err(e) = stream.write_all(request.as_bytes()).await {
        panic!("cannot send the request: {e}");
    }
    let mut response = String::new();
    if let Err(e) = tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut response)).await {
        panic!("no response in time: {e}");
    }
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

fn parse(body: &str) -> Value {
    match serde_json::from_str(body) {
        Ok(v) => v,
        Err(e) => panic!("not JSON ({e}): {body}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_account_gets_exactly_what_its_bindings_grant() {
    let server = start(false).await;
    seed(&server);
    let agent = agent_client(&server);
    let secrets: Api<Secret> = Api::namespaced(agent.clone(), "ns1");

    let denied = api_error(secrets.get("db").await);
    assert_eq!((denied.code, denied.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        denied.message,
        "secrets \"db\" is forbidden: User \"system:serviceaccount:ns1:agent\" cannot get resource \"secrets\" in API group \"\" in the namespace \"ns1\""
    );
    let details = denied.details.expect("details");
    assert_eq!(
        (details.name.as_str(), details.kind.as_str(), details.group.as_str()),
        ("db", "secrets", "")
    );

    // A RoleBinding to a ClusterRole grants it in the binding's namespace only; the ServiceAccount subject without
    // a namespace means the binding's namespace.
    cluster_role(
        &server,
        "secret-reader",
        json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]}]),
    );
    role_binding(
        &server,
        "ns1",
        "read-secrets",
        "ClusterRole",
        "secret-reader",
        json!([{"kind": "ServiceAccount", "name": "agent"}]),
    );
    assert!(secrets.get("db").await.is_ok());
    let other_namespace = api_error(Api::<Secret>::namespaced(agent.clone(), "ns2").get("db").await);
    assert_eq!(
        other_namespace.message,
        "secrets \"db\" is forbidden: User \"system:serviceaccount:ns1:agent\" cannot get resource \"secrets\" in API group \"\" in the namespace \"ns2\""
    );
    let listed = api_error(secrets.list(&ListParams::default()).await);
    assert_eq!(
        listed.message,
        "secrets is forbidden: User \"system:serviceaccount:ns1:agent\" cannot list resource \"secrets\" in API group \"\" in the namespace \"ns1\""
    );
    let cluster_wide = api_error(Api::<Secret>::all(agent.clone()).list(&ListParams::default()).await);
    assert_eq!(
        cluster_wide.message,
        "secrets is forbidden: User \"system:serviceaccount:ns1:agent\" cannot list resource \"secrets\" in API group \"\" at the cluster scope"
    );

    // resourceNames allow a list (and watch) of one object through the `metadata.name=` field selector.
    cluster_role(
        &server,
        "settings-reader",
        json!([{"verbs": ["list", "watch"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["settings"]},
               {"verbs": ["create"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["settings"]}]),
    );
    role_binding(
        &server,
        "ns1",
        "read-settings",
        "ClusterRole",
        "settings-reader",
        json!([{"kind": "ServiceAccount", "name": "agent", "namespace": "ns1"}]),
    );
    let config_maps: Api<ConfigMap> = Api::namespaced(agent.clone(), "ns1");
    let one = config_maps
        .list(&ListParams::default().fields("metadata.name=settings"))
        .await
        .expect("list of one by name");
    assert_eq!(one.items.len(), 1);
    assert_eq!(api_error(config_maps.list(&ListParams::default()).await).code, 403);
    // A plain create has no name, so resourceNames never allow it.
    let new = ConfigMap {
        metadata: kube::core::ObjectMeta {
            name: Some("settings".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let created = api_error(config_maps.create(&PostParams::default(), &new).await);
    assert_eq!(
        created.message,
        "configmaps is forbidden: User \"system:serviceaccount:ns1:agent\" cannot create resource \"configmaps\" in API group \"\" in the namespace \"ns1\""
    );

    // `pods` does not cover `pods/status`; `*/status` does.
    create(
        &server,
        "v1",
        "Pod",
        json!({"metadata": {"name": "p", "namespace": "ns1"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
    );
    cluster_role(
        &server,
        "pod-patcher",
        json!([{"verbs": ["get", "patch"], "apiGroups": [""], "resources": ["pods"]}]),
    );
    role_binding(
        &server,
        "ns1",
        "patch-pods",
        "ClusterRole",
        "pod-patcher",
        json!([{"kind": "ServiceAccount", "name": "agent"}]),
    );
    let pods: Api<Pod> = Api::namespaced(agent.clone(), "ns1");
    let status_patch = Patch::Merge(json!({"status": {"message": "x"}}));
    let status = api_error(pods.patch_status("p", &PatchParams::default(), &status_patch).await);
    assert_eq!(
        status.message,
        "pods \"p\" is forbidden: User \"system:serviceaccount:ns1:agent\" cannot patch resource \"pods/status\" in API group \"\" in the namespace \"ns1\""
    );
    cluster_role(
        &server,
        "status-writer",
        json!([{"verbs": ["patch"], "apiGroups": [""], "resources": ["*/status"]}]),
    );
    role_binding(
        &server,
        "ns1",
        "write-status",
        "ClusterRole",
        "status-writer",
        json!([{"kind": "ServiceAccount", "name": "agent"}]),
    );
    assert!(
        pods.patch_status("p", &PatchParams::default(), &status_patch)
            .await
            .is_ok()
    );

    // Server-side apply that creates an object also needs `create`.
    let apply = PatchParams::apply("agent");
    let new_pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "q"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    let applied = api_error(pods.patch("q", &apply, &Patch::Apply(&new_pod)).await);
    assert_eq!(
        applied.message,
        "pods \"q\" is forbidden: User \"system:serviceaccount:ns1:agent\" cannot create resource \"pods\" in API group \"\" in the namespace \"ns1\""
    );
    assert!(
        pods.patch(
            "p",
            &apply,
            &Patch::Apply(&json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "labels": {"a": "b"}}}))
        )
        .await
        .is_ok()
    );

    // A binding to a missing role is skipped, and the denial says why.
    role_binding(
        &server,
        "ns2",
        "dangling",
        "Role",
        "gone",
        json!([{"kind": "ServiceAccount", "name": "agent", "namespace": "ns1"}]),
    );
    let missing = api_error(Api::<Secret>::namespaced(agent.clone(), "ns2").get("db").await);
    assert_eq!(
        missing.message,
        "secrets \"db\" is forbidden: User \"system:serviceaccount:ns1:agent\" cannot get resource \"secrets\" in API group \"\" in the namespace \"ns2\": RBAC: role.rbac.authorization.k8s.io \"gone\" not found"
    );

    // Every request is recorded for the identity, with the decision and the rule that allowed it.
    let records = server.identity_requests().for_user(AGENT);
    let find = |verb: &str, resource: &str, namespace: &str, allowed: bool| {
        records
            .counts
            .iter()
            .filter(|(k, _)| {
                k.verb == verb && k.resource == resource && k.namespace == namespace && k.allowed == allowed
            })
            .map(|(k, n)| (k.clone(), *n))
            .collect::<Vec<_>>()
    };
    let allowed_gets = find("get", "secrets", "ns1", true);
    assert_eq!(allowed_gets.len(), 1, "{records:?}");
    let grant = allowed_gets[0].0.grant.clone().expect("grant");
    assert_eq!(
        (
            grant.binding_kind.as_str(),
            grant.binding_name.as_str(),
            grant.role_name.as_str(),
            grant.rule,
            grant.bootstrap
        ),
        ("RoleBinding", "read-secrets", "secret-reader", 0, false)
    );
    assert_eq!(
        find("get", "secrets", "ns1", false).iter().map(|(_, n)| n).sum::<u64>(),
        1
    );
    assert_eq!(find("create", "pods", "ns1", false).len(), 1);
    assert_eq!(find("patch", "pods/status", "ns1", true).len(), 1);
    // Discovery is granted by the bootstrap policy, which the records tell apart.
    assert!(records.granted_by_own_roles().counts.keys().all(|k| !k.non_resource));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_requests_are_denied_and_bad_tokens_unauthorized() {
    let server = start(false).await;
    seed(&server);
    let (code, body) = raw(&server, "GET", "/api/v1/namespaces/ns1/secrets/db", &[], "").await;
    assert_eq!(code, 403);
    assert_eq!(
        parse(&body),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "Forbidden",
            "code": 403, "details": {"name": "db", "kind": "secrets"},
            "message": "secrets \"db\" is forbidden: User \"system:anonymous\" cannot get resource \"secrets\" in API group \"\" in the namespace \"ns1\""})
    );
    let (code, body) = raw(&server, "GET", "/apis", &[], "").await;
    assert_eq!(code, 403);
    assert_eq!(
        parse(&body)["message"],
        "forbidden: User \"system:anonymous\" cannot get path \"/apis\""
    );
    // The bootstrap policy lets anyone read /version and the health endpoints.
    assert_eq!(raw(&server, "GET", "/version", &[], "").await.0, 200);
    assert_eq!(raw(&server, "GET", "/healthz", &[], "").await.0, 200);

    let unauthorized = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "Unauthorized", "reason": "Unauthorized", "code": 401});
    for header in ["Bearer not-a-token", "Basic YTpi"] {
        let (code, body) = raw(&server, "GET", "/version", &[("Authorization", header)], "").await;
        assert_eq!((code, parse(&body)), (401, unauthorized.clone()), "{header}");
    }
    let expiring = server
        .issue_token_valid_for("ns1", "agent", Duration::from_millis(300))
        .expect("token");
    let bearer = format!("Bearer {expiring}");
    assert_eq!(
        raw(&server, "GET", "/version", &[("Authorization", &bearer)], "")
            .await
            .0,
        200
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (code, body) = raw(&server, "GET", "/version", &[("Authorization", &bearer)], "").await;
        if code == 401 {
            assert_eq!(parse(&body), unauthorized);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the token did not expire");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A token of a deleted ServiceAccount stops working.
    let token = server.issue_token("ns1", "agent").expect("token");
    let bearer = format!("Bearer {token}");
    assert_eq!(
        raw(&server, "GET", "/version", &[("Authorization", &bearer)], "")
            .await
            .0,
        200
    );
    server
        .objects()
        .delete("v1", "ServiceAccount", Some("ns1"), "agent")
        .expect("delete the ServiceAccount");
    assert_eq!(
        raw(&server, "GET", "/version", &[("Authorization", &bearer)], "")
            .await
            .0,
        401
    );
    let missing = server.issue_token("ns1", "agent").unwrap_err();
    assert_eq!(
        missing.to_string(),
        "failed to issue a token for ServiceAccount ns1/agent: serviceaccounts \"agent\" not found"
    );
}

async fn post(client: &kube::Client, path: &str, body: Value) -> Result<Value, kube::Error> {
    let request = http::Request::post(path)
        .header("Content-Type", "application/json")
        .body(body.to_string().into_bytes())
        .map_err(kube::Error::HttpError)?;
    client.request::<Value>(request).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_requests_and_reviews_answer_like_kubernetes() {
    let server = start(false).await;
    seed(&server);
    let admin = admin_client(&server);
    let answer = post(
        &admin,
        "/api/v1/namespaces/ns1/serviceaccounts/agent/token",
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 600}}),
    )
    .await
    .expect("TokenRequest");
    assert_eq!(answer["kind"], "TokenRequest");
    assert_eq!(answer["spec"]["expirationSeconds"], 600);
    assert!(
        answer["status"]["expirationTimestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    let token = answer["status"]["token"].as_str().expect("status.token").to_string();
    let too_short = api_error(
        post(
            &admin,
            "/api/v1/namespaces/ns1/serviceaccounts/agent/token",
            json!({"spec": {"expirationSeconds": 60}}),
        )
        .await,
    );
    assert_eq!(
        (too_short.code, too_short.message.as_str()),
        (
            422,
            "TokenRequest.authentication.k8s.io \"agent\" is invalid: spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes"
        )
    );
    let missing = api_error(post(&admin, "/api/v1/namespaces/ns1/serviceaccounts/nobody/token", json!({})).await);
    assert_eq!(
        (missing.code, missing.message.as_str()),
        (404, "serviceaccounts \"nobody\" not found")
    );

    let config = server.kube_config_with_token(Some(&token)).expect("config");
    let agent = kube::Client::try_from(config).expect("client");
    // The agent may not create tokens until granted `create` on serviceaccounts/token.
    let no_token = api_error(post(&agent, "/api/v1/namespaces/ns1/serviceaccounts/agent/token", json!({})).await);
    assert_eq!(
        no_token.message,
        "serviceaccounts \"agent\" is forbidden: User \"system:serviceaccount:ns1:agent\" cannot create resource \"serviceaccounts/token\" in API group \"\" in the namespace \"ns1\""
    );

    let review = |verb: &str, resource: &str, namespace: &str| {
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"verb": verb, "resource": resource, "namespace": namespace}}})
    };
    let ssar = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
    let answer = post(&agent, ssar, review("get", "secrets", "ns1")).await.expect("SSAR");
    assert_eq!(answer["status"], json!({"allowed": false}));
    cluster_role(
        &server,
        "secret-reader",
        json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["db"]}]),
    );
    role_binding(
        &server,
        "ns1",
        "read",
        "ClusterRole",
        "secret-reader",
        json!([{"kind": "ServiceAccount", "name": "agent"}]),
    );
    let answer = post(&agent, ssar, review("get", "secrets", "ns1")).await.expect("SSAR");
    // No name: the resourceNames rule does not match.
    assert_eq!(answer["status"]["allowed"], false);
    let mut named = review("get", "secrets", "ns1");
    named["spec"]["resourceAttributes"]["name"] = json!("db");
    let answer = post(&agent, ssar, named).await.expect("SSAR");
    assert_eq!(
        answer["status"],
        json!({"allowed": true, "reason": "RBAC: allowed by RoleBinding \"read/ns1\" of ClusterRole \"secret-reader\" to ServiceAccount \"agent/ns1\""})
    );

    // SubjectAccessReview needs a grant the agent lacks; the admin asks about the agent.
    let sar = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": AGENT, "groups": ["system:serviceaccounts", "system:serviceaccounts:ns1", "system:authenticated"],
                 "resourceAttributes": {"verb": "get", "resource": "secrets", "namespace": "ns1", "name": "db"}}});
    let sar_path = "/apis/authorization.k8s.io/v1/subjectaccessreviews";
    assert_eq!(api_error(post(&agent, sar_path, sar.clone()).await).code, 403);
    assert_eq!(
        post(&admin, sar_path, sar).await.expect("SAR")["status"]["allowed"],
        true
    );

    let rules = post(
        &agent,
        "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview", "spec": {"namespace": "ns1"}}),
    )
    .await
    .expect("SSRR");
    let resource_rules = rules["status"]["resourceRules"].as_array().cloned().unwrap_or_default();
    assert!(
        resource_rules
            .contains(&json!({"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["db"]})),
        "{rules}"
    );
    assert!(
        resource_rules.contains(&json!({"verbs": ["create"], "apiGroups": ["authorization.k8s.io"],
        "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]}))
    );
    assert_eq!(rules["status"]["incomplete"], false);

    // The review groups and the token subresource are in discovery.
    let discovery: Value = admin
        .request(
            http::Request::get("/apis/authorization.k8s.io/v1")
                .body(Vec::new())
                .expect("request"),
        )
        .await
        .expect("discovery");
    let names: Vec<&str> = discovery["resources"]
        .as_array()
        .map(|a| a.iter().filter_map(|r| r["name"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        names.contains(&"selfsubjectaccessreviews") && names.contains(&"selfsubjectrulesreviews"),
        "{names:?}"
    );
    let core: Value = admin
        .request(http::Request::get("/api/v1").body(Vec::new()).expect("request"))
        .await
        .expect("core discovery");
    assert!(core["resources"].as_array().is_some_and(|a| {
        a.iter()
            .any(|r| r["name"] == "serviceaccounts/token" && r["kind"] == "TokenRequest")
    }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_identities_granted_impersonate_may_impersonate() {
    let server = start(false).await;
    seed(&server);
    cluster_role(
        &server,
        "secret-reader",
        json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]}]),
    );
    role_binding(
        &server,
        "ns1",
        "read",
        "ClusterRole",
        "secret-reader",
        json!([{"kind": "User", "name": "bob"}]),
    );
    // The admin may impersonate anyone, and then has only their rights.
    let mut config = server.kube_config().expect("config");
    config.auth_info.impersonate = Some("bob".into());
    let as_bob = kube::Client::try_from(config).expect("client");
    assert!(Api::<Secret>::namespaced(as_bob.clone(), "ns1").get("db").await.is_ok());
    let bob_in_ns2 = api_error(Api::<Secret>::namespaced(as_bob, "ns2").get("db").await);
    assert_eq!(
        bob_in_ns2.message,
        "secrets \"db\" is forbidden: User \"bob\" cannot get resource \"secrets\" in API group \"\" in the namespace \"ns2\""
    );
    let mut config = server.kube_config().expect("config");
    config.auth_info.impersonate = Some(AGENT.into());
    let as_agent = kube::Client::try_from(config).expect("client");
    let agent_denied = api_error(Api::<Secret>::namespaced(as_agent, "ns1").get("db").await);
    assert_eq!(
        agent_denied.message,
        "secrets \"db\" is forbidden: User \"system:serviceaccount:ns1:agent\" cannot get resource \"secrets\" in API group \"\" in the namespace \"ns1\""
    );

    // A ServiceAccount may not, until granted `impersonate` on users.
    let mut config = server.kube_config_as_service_account("ns1", "agent").expect("config");
    config.auth_info.impersonate = Some("bob".into());
    let agent_as_bob = kube::Client::try_from(config).expect("client");
    let refused = api_error(Api::<Secret>::namespaced(agent_as_bob.clone(), "ns1").get("db").await);
    assert_eq!(
        (refused.code, refused.message.as_str()),
        (
            403,
            "users \"bob\" is forbidden: User \"system:serviceaccount:ns1:agent\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"
        )
    );
    cluster_role(
        &server,
        "impersonate-bob",
        json!([{"verbs": ["impersonate"], "apiGroups": [""], "resources": ["users"], "resourceNames": ["bob"]}]),
    );
    cluster_role_binding(
        &server,
        "agent-impersonates-bob",
        "impersonate-bob",
        json!([{"kind": "ServiceAccount", "name": "agent", "namespace": "ns1"}]),
    );
    assert!(Api::<Secret>::namespaced(agent_as_bob, "ns1").get("db").await.is_ok());
    let records = server.identity_requests();
    assert!(
        records
            .for_user("bob")
            .counts
            .keys()
            .any(|k| k.verb == "get" && k.resource == "secrets" && k.allowed)
    );
    assert!(
        records
            .for_user(AGENT)
            .counts
            .keys()
            .any(|k| k.verb == "impersonate" && k.resource == "users" && !k.allowed)
    );
}

/// The real kubectl with one kubeconfig, in a private HOME.
struct Kubectl {
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Kubectl {
    fn new(kubeconfig: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("kubeconfig");
        std::fs::write(&path, kubeconfig).expect("write kubeconfig");
        Kubectl { dir, kubeconfig: path }
    }

    async fn run(&self, args: &[&str]) -> Output {
        let child = tokio::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .env("HOME", self.dir.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("kubectl is installed (apt-get install kubernetes-client)");
        let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("kubectl finished within 60 s")
            .expect("kubectl ran");
        Output {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_over_https_with_the_sandbox_ca() {
    let server = start(true).await;
    assert!(server.url().starts_with("https://127.0.0.1:"));
    let ca = server.ca_pem().expect("a CA with TLS");
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
    seed(&server);
    let admin = Kubectl::new(&server.kubeconfig_yaml());
    let namespaces = admin.run(&["get", "namespaces", "-o", "name"]).await;
    assert_eq!(namespaces.code, Some(0), "{}", namespaces.stderr);
    assert!(namespaces.stdout.contains("namespace/ns1"), "{}", namespaces.stdout);

    let agent = Kubectl::new(
        &server
            .kubeconfig_yaml_as_service_account("ns1", "agent")
            .expect("kubeconfig"),
    );
    let denied = agent.run(&["get", "secret", "db"]).await;
    assert_eq!(denied.code, Some(1));
    assert_eq!(
        denied.stderr.trim(),
        "Error from server (Forbidden): secrets \"db\" is forbidden: User \"system:serviceaccount:ns1:agent\" cannot get resource \"secrets\" in API group \"\" in the namespace \"ns1\""
    );
    // kubectl --as sends impersonation headers; the admin may.
    let impersonated = admin.run(&["get", "secret", "db", "-n", "ns1", "--as", AGENT]).await;
    assert_eq!(impersonated.code, Some(1));
    assert!(
        impersonated
            .stderr
            .contains("User \"system:serviceaccount:ns1:agent\" cannot get resource \"secrets\""),
        "{}",
        impersonated.stderr
    );
    cluster_role(
        &server,
        "secret-reader",
        json!([{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["secrets"]}]),
    );
    role_binding(
        &server,
        "ns1",
        "read",
        "ClusterRole",
        "secret-reader",
        json!([{"kind": "ServiceAccount", "name": "agent"}]),
    );
    let allowed = agent
        .run(&["get", "secret", "db", "-o", "jsonpath={.metadata.name}"])
        .await;
    assert_eq!(
        (allowed.code, allowed.stdout.as_str()),
        (Some(0), "db"),
        "{}",
        allowed.stderr
    );

    // Without the CA, a client refuses the server.
    let untrusted = server
        .kubeconfig_yaml()
        .lines()
        .filter(|l| !l.contains("certificate-authority-data"))
        .collect::<Vec<_>>()
        .join("\n");
    let untrusted = Kubectl::new(&untrusted).run(&["get", "namespaces"]).await;
    assert_eq!(untrusted.code, Some(1));
    assert!(untrusted.stderr.contains("certificate"), "{}", untrusted.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_sandbox_runs_with_rbac_and_https() {
    use redis_gitops_sandbox::{Sandbox, SandboxOptions};
    let sandbox = Sandbox::start(SandboxOptions {
        authorization: Authorization::Rbac,
        tls: true,
        ..SandboxOptions::with_crds(redis_gitops::api::crds())
    })
    .await
    .expect("sandbox starts (needs redis-server)");
    let server = &sandbox.apiserver;
    assert_eq!(server.authorization(), Authorization::Rbac);
    assert!(server.url().starts_with("https://"));
    seed(server);
    let kind = kube::core::ApiResource {
        group: "app.redislabs.com".into(),
        version: "v1alpha1".into(),
        api_version: "app.redislabs.com/v1alpha1".into(),
        kind: "RedisEnterpriseDatabase".into(),
        plural: "redisenterprisedatabases".into(),
    };
    let admin: Api<kube::core::DynamicObject> = Api::namespaced_with(admin_client(server), "ns1", &kind);
    assert!(
        admin
            .list(&ListParams::default())
            .await
            .expect("admin lists REDBs")
            .items
            .is_empty()
    );
    // A kube::Client for a ServiceAccount over HTTPS trusts the sandbox CA and is denied what it was not granted.
    let agent: Api<kube::core::DynamicObject> = Api::namespaced_with(agent_client(server), "ns1", &kind);
    let denied = api_error(agent.list(&ListParams::default()).await);
    assert_eq!(
        denied.message,
        "redisenterprisedatabases.app.redislabs.com is forbidden: User \"system:serviceaccount:ns1:agent\" cannot list resource \"redisenterprisedatabases\" in API group \"app.redislabs.com\" in the namespace \"ns1\""
    );
    assert_eq!(denied.details.map(|d| d.group), Some("app.redislabs.com".to_string()));
    let kubectl = Kubectl::new(&server.kubeconfig_yaml());
    let out = kubectl.run(&["get", "redb", "-n", "ns1"]).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stderr.trim(), "No resources found in ns1 namespace.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_auth_can_i_and_create_token() {
    let server = start(true).await;
    seed(&server);
    cluster_role(
        &server,
        "secret-reader",
        json!([{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["db"]}]),
    );
    role_binding(
        &server,
        "ns1",
        "read",
        "ClusterRole",
        "secret-reader",
        json!([{"kind": "ServiceAccount", "name": "agent"}]),
    );
    let admin = Kubectl::new(&server.kubeconfig_yaml());

    // `auth can-i` (a protobuf SelfSubjectAccessReview) as the ServiceAccount, through impersonation.
    let yes = admin
        .run(&["auth", "can-i", "get", "secrets/db", "--as", AGENT, "-n", "ns1"])
        .await;
    assert_eq!((yes.code, yes.stdout.trim()), (Some(0), "yes"), "{}", yes.stderr);
    let no = admin
        .run(&["auth", "can-i", "get", "secrets", "--as", AGENT, "-n", "ns2"])
        .await;
    assert_eq!((no.code, no.stdout.trim()), (Some(1), "no"), "{}", no.stderr);
    let quiet = admin
        .run(&[
            "auth",
            "can-i",
            "delete",
            "secrets/db",
            "--as",
            AGENT,
            "-n",
            "ns1",
            "-q",
        ])
        .await;
    assert_eq!((quiet.code, quiet.stdout.as_str()), (Some(1), ""), "{}", quiet.stderr);
    let as_admin = admin.run(&["auth", "can-i", "delete", "namespaces"]).await;
    assert_eq!(
        (as_admin.code, as_admin.stdout.trim()),
        (Some(0), "yes"),
        "{}",
        as_admin.stderr
    );
    // A denial with a reason prints it after the "no".
    role_binding(
        &server,
        "ns2",
        "dangling",
        "ClusterRole",
        "gone",
        json!([{"kind": "ServiceAccount", "name": "agent", "namespace": "ns1"}]),
    );
    let reason = admin
        .run(&["auth", "can-i", "get", "secrets", "--as", AGENT, "-n", "ns2"])
        .await;
    assert_eq!(
        (reason.code, reason.stdout.trim()),
        (
            Some(1),
            "no - RBAC: clusterrole.rbac.authorization.k8s.io \"gone\" not found"
        ),
        "{}",
        reason.stderr
    );

    // `auth can-i --list` (a protobuf SelfSubjectRulesReview).
    let list = admin
        .run(&["auth", "can-i", "--list", "--as", AGENT, "-n", "ns1"])
        .await;
    assert_eq!(list.code, Some(0), "{}", list.stderr);
    let lines: Vec<String> = list
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        lines.first().map(String::as_str),
        Some("Resources Non-Resource URLs Resource Names Verbs"),
        "{}",
        list.stdout
    );
    assert!(
        lines.contains(&"secrets [] [db] [get list]".to_string()),
        "{}",
        list.stdout
    );
    assert!(
        lines.contains(&"selfsubjectaccessreviews.authorization.k8s.io [] [] [create]".to_string()),
        "{}",
        list.stdout
    );
    assert!(
        lines.iter().any(|l| l.starts_with("[/api/*] [] [get]")),
        "{}",
        list.stdout
    );

    // `create token` (a protobuf TokenRequest), then kubectl with that token gets the real 403.
    let token = admin.run(&["create", "token", "agent", "-n", "ns1"]).await;
    assert_eq!(token.code, Some(0), "{}", token.stderr);
    let token = token.stdout.trim().to_string();
    assert!(token.starts_with("sandbox-sa."), "{token}");
    let agent = Kubectl::new(&server.kubeconfig_yaml_with_token(Some(&token), "ns1"));
    let allowed = agent
        .run(&["get", "secret", "db", "-o", "jsonpath={.metadata.name}"])
        .await;
    assert_eq!(
        (allowed.code, allowed.stdout.as_str()),
        (Some(0), "db"),
        "{}",
        allowed.stderr
    );
    let denied = agent.run(&["get", "configmap", "settings"]).await;
    assert_eq!(denied.code, Some(1));
    assert_eq!(
        denied.stderr.trim(),
        "Error from server (Forbidden): configmaps \"settings\" is forbidden: User \"system:serviceaccount:ns1:agent\" cannot get resource \"configmaps\" in API group \"\" in the namespace \"ns1\""
    );
    let self_check = agent.run(&["auth", "can-i", "get", "configmaps"]).await;
    assert_eq!(
        (self_check.code, self_check.stdout.trim()),
        (Some(1), "no"),
        "{}",
        self_check.stderr
    );
    // The agent may not mint tokens for itself.
    let mint = agent.run(&["create", "token", "agent"]).await;
    assert_eq!(mint.code, Some(1));
    assert!(
        mint.stderr.contains(
            "serviceaccounts \"agent\" is forbidden: User \"system:serviceaccount:ns1:agent\" cannot create resource \"serviceaccounts/token\" in API group \"\" in the namespace \"ns1\""
        ),
        "{}",
        mint.stderr
    );
    let short = admin
        .run(&["create", "token", "agent", "-n", "ns1", "--duration", "1m"])
        .await;
    assert_eq!(short.code, Some(1));
    assert!(
        short.stderr.contains("may not specify a duration less than 10 minutes"),
        "{}",
        short.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_and_bindings_grant_only_what_their_writer_holds() {
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
    let server = start(false).await;
    seed(&server);
    // The agent may write roles and bindings in ns1, and holds `get pods` there; nothing more.
    cluster_role(
        &server,
        "writer",
        json!([
            {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"],
             "verbs": ["create", "patch", "get"]},
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
        ]),
    );
    let agent = json!([{"kind": "ServiceAccount", "name": "agent", "namespace": "ns1"}]);
    role_binding(&server, "ns1", "writer", "ClusterRole", "writer", agent.clone());
    let client = agent_client(&server);
    let roles: Api<Role> = Api::namespaced(client.clone(), "ns1");
    let role = |name: &str, verbs: Value| -> Role {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns1"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": verbs}],
        }))
        .expect("role")
    };
    // What it holds, it may grant (create, and server-side apply).
    roles
        .create(&PostParams::default(), &role("pods-reader", json!(["get"])))
        .await
        .expect("a Role within the writer's rights");
    let status = api_error(
        roles
            .create(&PostParams::default(), &role("pods-lister", json!(["get", "list"])))
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        status.message,
        "roles.rbac.authorization.k8s.io \"pods-lister\" is forbidden: user \"system:serviceaccount:ns1:agent\" \
         (groups=[\"system:serviceaccounts\" \"system:serviceaccounts:ns1\" \"system:authenticated\"]) is attempting \
         to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"list\"]}"
    );
    // A patch that would widen a role is refused the same way, and leaves it as it was.
    let apply = PatchParams::apply("agent").force();
    let status = api_error(
        roles
            .patch(
                "pods-reader",
                &apply,
                &Patch::Apply(json!({
                    "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                    "metadata": {"name": "pods-reader", "namespace": "ns1"},
                    "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}],
                })),
            )
            .await,
    );
    assert_eq!(status.code, 403, "{}", status.message);
    assert!(status.message.contains("Resources:[\"secrets\"]"), "{}", status.message);
    let kept = roles.get("pods-reader").await.expect("the role");
    assert_eq!(kept.rules.expect("rules")[0].resources, Some(vec!["pods".to_string()]));

    // A binding: only to a role whose rules the writer holds, unless it may `bind` that role.
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), "ns1");
    let binding = |name: &str, kind: &str, role: &str| -> RoleBinding {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns1"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "ns1"}],
        }))
        .expect("binding")
    };
    bindings
        .create(&PostParams::default(), &binding("readers", "Role", "pods-reader"))
        .await
        .expect("binding a role the writer holds");
    let status = api_error(
        bindings
            .create(
                &PostParams::default(),
                &binding("admins", "ClusterRole", "cluster-admin"),
            )
            .await,
    );
    assert_eq!(status.code, 403);
    assert!(
        status.message.starts_with(
            "rolebindings.rbac.authorization.k8s.io \"admins\" is forbidden: user \"system:serviceaccount:ns1:agent\""
        ),
        "{}",
        status.message
    );
    let status = api_error(
        bindings
            .create(&PostParams::default(), &binding("ghost", "Role", "missing"))
            .await,
    );
    assert!(
        status
            .message
            .ends_with("role.rbac.authorization.k8s.io \"missing\" not found"),
        "{}",
        status.message
    );

    // `escalate` and `bind` lift the checks, as in Kubernetes.
    cluster_role(
        &server,
        "escalator",
        json!([
            {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["escalate"]},
            {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "verbs": ["bind"],
             "resourceNames": ["cluster-admin"]},
        ]),
    );
    role_binding(&server, "ns1", "escalator", "ClusterRole", "escalator", agent);
    roles
        .create(&PostParams::default(), &role("pods-lister", json!(["get", "list"])))
        .await
        .expect("escalate allows it");
    bindings
        .create(
            &PostParams::default(),
            &binding("admins", "ClusterRole", "cluster-admin"),
        )
        .await
        .expect("bind allows it");
    // The admin (system:masters) is never checked.
    Api::<Role>::namespaced(admin_client(&server), "ns1")
        .create(&PostParams::default(), &role("admin-made", json!(["*"])))
        .await
        .expect("the admin writes any role");
}
