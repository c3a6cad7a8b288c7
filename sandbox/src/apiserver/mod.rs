//! A local Kubernetes API server on loopback: discovery, CRUD, watch, patches, CRDs, and optionally RBAC and
//! HTTPS (design.md §6).
//!
//! [`ApiServer::start`] binds a free port on 127.0.0.1 and serves what `kube::Client` (incl. `kube::runtime`)
//! and the real `kubectl` use. [`ApiServerHandle`] gives its URL, writes kubeconfigs, exposes the in-process
//! [`Objects`] handle, the [`Faults`] injector and the request counts, and shuts everything down on drop.
//!
//! With [`Authorization::Rbac`] every request is authenticated (the admin token of the handle's kubeconfig and
//! clients, a user in `system:masters`; ServiceAccount tokens from TokenRequest or [`ApiServerHandle::issue_token`];
//! no token is `system:anonymous`), impersonation headers are authorized and applied, and the request is authorized
//! by the Roles and bindings in the store (`rbac.rs`), with the bootstrap policy of a real cluster seeded at start.
//! Requests are also counted per identity ([`ApiServerHandle::identity_requests`]).
//!
//! What it does not do (each answers with a `Status` naming it, or is simply absent):
//! - protobuf request bodies of kinds other than those [`protobuf`] decodes (Secret, ConfigMap, Namespace,
//!   ServiceAccount, TokenRequest and the access reviews), e.g. `kubectl run`, `kubectl create deployment`: 415;
//!   protobuf responses (every answer is JSON, which kubectl accepts);
//! - OpenAPI v2 and admission; with `AllowAll` (the default) every request is allowed (an optional static bearer
//!   token); with RBAC: no aggregated ClusterRoles (`aggregationRule`), no client certificates, OIDC or webhook authentication, tokens are opaque (not JWTs) and live in memory;
//! - subresources other than `status`, `scale` and `serviceaccounts/token` (`pods/log`, `exec`, `eviction`, …): 501;
//! - strategic merge keys beyond containers, initContainers, env, ports, volumes, volumeMounts,
//!   imagePullSecrets, conditions, ownerReferences (merge) and finalizers (set); other lists are replaced;
//! - CRD conversion other than `None`, Deployment/ReplicaSet/Endpoints controllers;
//! - snapshot-consistent pagination (continue tokens resume after the last key), field-selector field checks.

pub mod auth;
pub mod discovery;
pub mod error;
pub mod escalation;
pub mod events;
pub mod faults;
pub mod fields;
pub mod http;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod rbac;
pub mod requests;
pub mod resources;
pub mod reviews;
pub mod schema;
pub mod selector;
pub mod ssa;
pub mod store;
pub mod table;
pub mod tls;
pub mod validation;
pub mod workload;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

pub use auth::Identity;
pub use error::{ApiError, ApiServerError, Cause};
pub use faults::Faults;
pub use patch::PatchKind;
pub use rbac::Grant;
pub use requests::{IdentityRequest, IdentityRequests, RequestCounts, RequestKind};
pub use resources::GroupResource;
pub use store::{DeleteOptions, EventType, FieldValidation, Propagation, Subresource, WatchEvent, WriteOptions};
pub use workload::{LoopbackAllocator, PodIpAllocator};

use resources::ResourceInfo;
use selector::{FieldSelector, LabelSelector};
use store::Store;

/// How the server authorizes requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Authorization {
    /// Every request is allowed (only `token` / `secrets_token` are checked, when set): the default.
    #[default]
    AllowAll,
    /// Kubernetes RBAC: bearer-token authentication, impersonation, and the Roles and bindings in the store.
    Rbac,
}

/// How to start the server.
pub struct ApiServerOptions {
    /// CRDs installed before the server answers its first request (the product's CRDs).
    pub crds: Vec<CustomResourceDefinition>,
    /// How many events the watch history keeps; older resourceVersions answer 410 Gone.
    pub history_limit: usize,
    /// How long an emulated Pod takes to become Ready.
    pub pod_ready_delay: Duration,
    /// Chooses emulated Pod IPs.
    pub pod_ip_allocator: Arc<dyn PodIpAllocator>,
    /// A bearer token clients must send; `None` accepts anonymous requests.
    pub token: Option<String>,
    /// A bearer token that requests for Secrets (any verb, any namespace) must send, even when `token` is `None`:
    /// the API server listens on loopback, where every local user can connect, and Secrets hold the databases'
    /// passwords. The kubeconfig and the `kube::Client`s this handle makes carry it. `None` (the default, and what
    /// `Sandbox::start` uses) serves Secrets to anyone: kubectl sends no credentials to a plain-http server, so
    /// the real kubectl cannot read Secrets while this is set.
    pub secrets_token: Option<String>,
    /// The port to bind on 127.0.0.1 (0: a free port).
    pub port: u16,
    /// How often watches that allow bookmarks receive one.
    pub bookmark_interval: Duration,
    /// How requests are authorized. With [`Authorization::Rbac`], `token` (or a random token when `None`) is the
    /// admin token and `secrets_token` is not used.
    pub authorization: Authorization,
    /// Serve HTTPS with a CA made at start ([`ApiServerHandle::ca_pem`]) instead of plain HTTP.
    pub tls: bool,
}

impl Default for ApiServerOptions {
    fn default() -> Self {
        ApiServerOptions {
            crds: Vec::new(),
            history_limit: 10_000,
            pod_ready_delay: Duration::from_millis(300),
            pod_ip_allocator: Arc::new(LoopbackAllocator),
            token: None,
            secrets_token: None,
            port: 0,
            bookmark_interval: Duration::from_secs(10),
            authorization: Authorization::AllowAll,
            tls: false,
        }
    }
}

/// The sandbox API server; see [`ApiServer::start`].
pub struct ApiServer;

/// A running server; dropping it stops the server, its watches and the workload controller.
pub struct ApiServerHandle {
    url: String,
    address: SocketAddr,
    token: Option<String>,
    authorization: Authorization,
    ca: Option<(String, Vec<u8>)>,
    tokens: auth::Tokens,
    objects: Objects,
    faults: Faults,
    requests: requests::RequestCounter,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl ApiServer {
    /// Binds 127.0.0.1, installs the given CRDs, starts serving and the StatefulSet controller.
    pub async fn start(options: ApiServerOptions) -> Result<ApiServerHandle, ApiServerError> {
        let bind = format!("127.0.0.1:{}", options.port);
        let listener = tokio::net::TcpListener::bind(&bind)
            .await
            .map_err(|source| ApiServerError::Bind {
                address: bind.clone(),
                source,
            })?;
        let address = listener.local_addr().map_err(|source| ApiServerError::Bind {
            address: bind.clone(),
            source,
        })?;
        let store = Store::new(options.history_limit);
        let objects = Objects { store: store.clone() };
        for crd in &options.crds {
            let name = crd.metadata.name.clone().unwrap_or_default();
            let body = serde_json::to_value(crd).map_err(|source| ApiServerError::SerializeCrd {
                name: name.clone(),
                source,
            })?;
            objects
                .create("apiextensions.k8s.io/v1", "CustomResourceDefinition", body)
                .map_err(|e| ApiServerError::InstallCrd {
                    name,
                    source: Box::new(e),
                })?;
        }
        let tokens = auth::Tokens::default();
        let admin_token = match options.authorization {
            Authorization::Rbac => {
                for (api_version, kind, object) in rbac::bootstrap_policy() {
                    let name = object
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                    objects
                        .create(api_version, kind, object)
                        .map_err(|e| ApiServerError::InstallCrd {
                            name: format!("bootstrap {kind} {name}"),
                            source: Box::new(e),
                        })?;
                }
                Some(
                    options
                        .token
                        .clone()
                        .unwrap_or_else(|| format!("sandbox-admin.{}", auth::random_hex())),
                )
            }
            Authorization::AllowAll => options.token.clone().or(options.secrets_token.clone()),
        };
        // Without RBAC both static tokens name the admin (for the per-identity records); with RBAC only the admin
        // token does, and `secrets_token` is not used.
        let static_tokens = match options.authorization {
            Authorization::Rbac => vec![&admin_token],
            Authorization::AllowAll => vec![&options.token, &options.secrets_token],
        };
        for token in static_tokens.into_iter().flatten() {
            tokens.add_admin(token);
        }
        let certificates = if options.tls { Some(tls::generate()?) } else { None };
        let faults = Faults::default();
        let requests = requests::RequestCounter::default();
        let app = Arc::new(http::AppState {
            store: store.clone(),
            faults: faults.clone(),
            requests: requests.clone(),
            address: address.to_string(),
            token: options.token.clone(),
            secrets_token: options.secrets_token.clone(),
            bookmark_interval: options.bookmark_interval,
            authorization: options.authorization,
            tokens: tokens.clone(),
        });
        let router = axum::Router::new().fallback(http::handle).with_state(app);
        let (shutdown, shutdown_receiver) = watch::channel(false);
        let mut server_shutdown = shutdown_receiver.clone();
        let server = match &certificates {
            Some(certificates) => tls::serve(
                listener,
                certificates.server_config.clone(),
                router,
                shutdown_receiver.clone(),
            ),
            None => tokio::spawn(async move {
                let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
                    let _ = server_shutdown.changed().await;
                });
                if let Err(error) = serve.await {
                    tracing::error!(%error, "sandbox API server stopped with an error");
                }
            }),
        };
        let controller =
            workload::Controller::new(store.clone(), options.pod_ip_allocator.clone(), options.pod_ready_delay);
        let controller_task = tokio::spawn(controller.run(shutdown_receiver));
        let scheme = if certificates.is_some() { "https" } else { "http" };
        Ok(ApiServerHandle {
            url: format!("{scheme}://{address}"),
            address,
            token: admin_token,
            authorization: options.authorization,
            ca: certificates.map(|c| (c.ca_pem, c.ca_der.to_vec())),
            tokens,
            objects,
            faults,
            requests,
            shutdown,
            tasks: vec![server, controller_task],
        })
    }
}

impl ApiServerHandle {
    /// The base URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The bound address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The in-process object handle (no HTTP).
    pub fn objects(&self) -> &Objects {
        &self.objects
    }

    /// The fault injector.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// How many requests the server received, by verb and resource, since it started or since the last
    /// [`ApiServerHandle::reset_request_counts`] (injected failures included).
    pub fn request_counts(&self) -> RequestCounts {
        self.requests.snapshot()
    }

    /// Starts counting requests from zero.
    pub fn reset_request_counts(&self) {
        self.requests.reset();
    }

    /// Ends every open watch; clients see their stream close and reconnect.
    pub fn drop_watches(&self) {
        self.objects.store.lock().drop_watches();
    }

    /// The kubeconfig YAML for this server (cluster `sandbox`, context `sandbox`, namespace `default`), with the
    /// admin token (when there is one) and, with TLS, the CA.
    pub fn kubeconfig_yaml(&self) -> String {
        self.kubeconfig_yaml_with_token(self.token.as_deref(), "default")
    }

    /// The kubeconfig YAML for this server with `token` as the credentials (none when `None`) and `namespace` as
    /// the context's namespace, e.g. for a token from `kubectl create token`.
    pub fn kubeconfig_yaml_with_token(&self, token: Option<&str>, namespace: &str) -> String {
        use base64::Engine as _;
        let user_block = match token {
            Some(token) => format!("- name: sandbox\n  user:\n    token: {token}\n"),
            None => "- name: sandbox\n  user: {}\n".to_string(),
        };
        let ca = match &self.ca {
            Some((pem, _)) => format!(
                "    certificate-authority-data: {}\n",
                base64::engine::general_purpose::STANDARD.encode(pem)
            ),
            None => String::new(),
        };
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: sandbox\n  cluster:\n    server: {url}\n{ca}contexts:\n- name: sandbox\n  context:\n    cluster: sandbox\n    user: sandbox\n    namespace: {namespace}\ncurrent-context: sandbox\nusers:\n{user_block}preferences: {{}}\n",
            url = self.url
        )
    }

    /// A kubeconfig YAML for a ServiceAccount: a new token of it ([`ApiServerHandle::issue_token`]) and its
    /// namespace as the context's namespace.
    pub fn kubeconfig_yaml_as_service_account(&self, namespace: &str, name: &str) -> Result<String, ApiServerError> {
        let token = self.issue_token(namespace, name)?;
        Ok(self.kubeconfig_yaml_with_token(Some(&token), namespace))
    }

    /// How requests are authorized.
    pub fn authorization(&self) -> Authorization {
        self.authorization
    }

    /// The PEM of the CA that signed the serving certificate, when serving HTTPS.
    pub fn ca_pem(&self) -> Option<String> {
        self.ca.as_ref().map(|(pem, _)| pem.clone())
    }

    /// Issues a token for an existing ServiceAccount, as TokenRequest does (valid one hour); it authenticates as
    /// `system:serviceaccount:<namespace>:<name>` while the ServiceAccount exists.
    pub fn issue_token(&self, namespace: &str, name: &str) -> Result<String, ApiServerError> {
        self.issue_token_valid_for(namespace, name, reviews::DEFAULT_TOKEN_LIFETIME)
    }

    /// Issues a token for an existing ServiceAccount valid for `lifetime` (any length, e.g. seconds for a test
    /// of expiry; TokenRequest refuses less than ten minutes).
    pub fn issue_token_valid_for(
        &self,
        namespace: &str,
        name: &str,
        lifetime: Duration,
    ) -> Result<String, ApiServerError> {
        let account = self
            .objects
            .get("v1", "ServiceAccount", Some(namespace), name)
            .map_err(|e| ApiServerError::IssueToken {
                namespace: namespace.to_string(),
                name: name.to_string(),
                source: Box::new(e),
            })?;
        let uid = account
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or_default();
        Ok(self.tokens.issue(namespace, name, uid, lifetime).0)
    }

    /// A `kube::Config` authenticating as a ServiceAccount (a new token), with its namespace as default.
    pub fn kube_config_as_service_account(&self, namespace: &str, name: &str) -> Result<kube::Config, ApiServerError> {
        let token = self.issue_token(namespace, name)?;
        let mut config = self.kube_config_with_token(Some(&token))?;
        config.default_namespace = namespace.to_string();
        Ok(config)
    }

    /// A `kube::Client` authenticating as a ServiceAccount (a new token), with its namespace as default: what an
    /// agent running as that ServiceAccount in a cluster would have.
    pub fn client_as_service_account(&self, namespace: &str, name: &str) -> Result<kube::Client, ApiServerError> {
        let config = self.kube_config_as_service_account(namespace, name)?;
        self.client_from(config)
    }

    /// Requests counted per identity (user, verb, apiGroup, resource, namespace, decision) since start or the last
    /// [`ApiServerHandle::reset_request_counts`].
    pub fn identity_requests(&self) -> IdentityRequests {
        self.requests.identities()
    }

    /// Writes the kubeconfig to a file.
    ///
    /// The file is readable by its owner only (mode 0600), as it holds the bearer token.
    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), ApiServerError> {
        write_private(path, &self.kubeconfig_yaml())
    }

    /// Writes a kubeconfig for a ServiceAccount ([`ApiServerHandle::kubeconfig_yaml_as_service_account`]) to a
    /// file readable by its owner only.
    pub fn write_kubeconfig_as_service_account(
        &self,
        path: &Path,
        namespace: &str,
        name: &str,
    ) -> Result<(), ApiServerError> {
        write_private(path, &self.kubeconfig_yaml_as_service_account(namespace, name)?)
    }

    /// A `kube::Config` pointing at this server with namespace `default`, as the admin.
    pub fn kube_config(&self) -> Result<kube::Config, ApiServerError> {
        self.kube_config_with_token(self.token.as_deref())
    }

    /// A `kube::Config` pointing at this server with namespace `default` and `token` (none when `None`).
    pub fn kube_config_with_token(&self, token: Option<&str>) -> Result<kube::Config, ApiServerError> {
        let uri: http_uri::Uri = self
            .url
            .parse()
            .map_err(|e: http_uri::InvalidUri| ApiServerError::ClientConfig {
                url: self.url.clone(),
                message: e.to_string(),
            })?;
        let mut config = kube::Config::new(uri);
        config.default_namespace = "default".into();
        if let Some(token) = token {
            config.auth_info.token = Some(token.to_string().into());
        }
        if let Some((_, der)) = &self.ca {
            config.root_cert = Some(vec![der.clone()]);
        }
        Ok(config)
    }

    /// A `kube::Client` for this server, as the admin.
    pub fn kube_client(&self) -> Result<kube::Client, ApiServerError> {
        let config = self.kube_config()?;
        self.client_from(config)
    }

    fn client_from(&self, config: kube::Config) -> Result<kube::Client, ApiServerError> {
        kube::Client::try_from(config).map_err(|e| ApiServerError::ClientConfig {
            url: self.url.clone(),
            message: e.to_string(),
        })
    }

    /// Stops serving now (also done on drop).
    pub fn shutdown(&mut self) {
        let _ = self.shutdown.send(true);
        self.objects.store.lock().drop_watches();
        for task in self.tasks.drain(..) {
            task.abort();
        }
    }
}

impl Drop for ApiServerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

use axum::http::uri as http_uri;

/// Writes `text` to `path`, readable by its owner only (mode 0600): kubeconfigs hold bearer tokens.
fn write_private(path: &Path, text: &str) -> Result<(), ApiServerError> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let failed = |source| ApiServerError::WriteKubeconfig {
        path: path.display().to_string(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(failed)?;
    // An existing file keeps its mode on open: tighten it before writing the token.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(failed)?;
    file.write_all(text.as_bytes()).map_err(failed)
}

/// In-process access to the stored objects, for sandbox glue code: the same write pipeline as HTTP requests
/// (validation, managed fields, watches, garbage collection), addressed by apiVersion + kind.
#[derive(Clone)]
pub struct Objects {
    store: Store,
}

fn options(manager: &str) -> WriteOptions {
    WriteOptions {
        field_manager: manager.to_string(),
        ..WriteOptions::default()
    }
}

const MANAGER: &str = "sandbox";

impl Objects {
    fn resource(&self, api_version: &str, kind: &str) -> Result<(Arc<ResourceInfo>, String), ApiError> {
        let version = api_version.rsplit('/').next().unwrap_or(api_version).to_string();
        self.store
            .lock()
            .registry
            .find_kind(api_version, kind)
            .map(|info| (info, version))
            .ok_or_else(|| ApiError::NotFound {
                resource: format!("{kind}.{api_version}"),
                name: String::new(),
            })
    }

    /// One object.
    pub fn get(&self, api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> Result<Value, ApiError> {
        let (info, version) = self.resource(api_version, kind)?;
        let state = self.store.lock();
        let object = state
            .get(&info.storage_resource(), namespace.unwrap_or(""), name)
            .cloned()
            .ok_or_else(|| ApiError::NotFound {
                resource: info.group_resource().qualified(),
                name: name.to_string(),
            })?;
        Ok(state.convert(&info, &version, object))
    }

    /// Objects of a kind, optionally in one namespace, filtered by a label selector (`""`: all).
    pub fn list(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        label_selector: &str,
    ) -> Result<Vec<Value>, ApiError> {
        let (info, version) = self.resource(api_version, kind)?;
        let labels = LabelSelector::parse(label_selector)?;
        let state = self.store.lock();
        Ok(state
            .list(&info.storage_resource(), namespace, &labels, &FieldSelector::default())
            .into_iter()
            .map(|o| state.convert(&info, &version, o.clone()))
            .collect())
    }

    /// Creates an object (namespace taken from its metadata).
    pub fn create(&self, api_version: &str, kind: &str, object: Value) -> Result<Value, ApiError> {
        let (info, version) = self.resource(api_version, kind)?;
        let namespace = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_string);
        Ok(self
            .store
            .lock()
            .create(&info, &version, namespace.as_deref(), object, &options(MANAGER))?
            .object)
    }

    /// Patches an object (or its status) with any patch type; `Apply` uses `manager` and force.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        patch_kind: PatchKind,
        patch: Value,
        subresource: Subresource,
        manager: &str,
    ) -> Result<Value, ApiError> {
        let (info, version) = self.resource(api_version, kind)?;
        let mut opts = options(manager);
        opts.force = patch_kind == PatchKind::Apply;
        Ok(self
            .store
            .lock()
            .patch(&info, &version, namespace, name, patch_kind, patch, subresource, &opts)?
            .object)
    }

    /// Deletes an object (background propagation); returns whether it is gone (no finalizers held it).
    pub fn delete(&self, api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> Result<bool, ApiError> {
        let (info, version) = self.resource(api_version, kind)?;
        let (_, gone) = self
            .store
            .lock()
            .delete(&info, &version, namespace, name, &DeleteOptions::default())?;
        Ok(gone)
    }

    /// Subscribes to changes of one kind (or of everything when `kind` is `None`), from now on.
    pub fn subscribe(
        &self,
        api_version_and_kind: Option<(&str, &str)>,
    ) -> Result<mpsc::UnboundedReceiver<Arc<WatchEvent>>, ApiError> {
        let resource = match api_version_and_kind {
            Some((api_version, kind)) => Some(self.resource(api_version, kind)?.0.storage_resource()),
            None => None,
        };
        let (_, receiver) = self.store.lock().subscribe(resource, None, None)?;
        Ok(receiver)
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.store.lock().resource_version()
    }

    /// A quick summary used in logs: how many objects of each kind exist.
    pub fn summary(&self) -> Value {
        let state = self.store.lock();
        let mut counts = serde_json::Map::new();
        for info in state.registry.all() {
            let n = state
                .list(
                    &info.storage_resource(),
                    None,
                    &LabelSelector::default(),
                    &FieldSelector::default(),
                )
                .len();
            if n > 0 {
                counts.insert(info.group_resource().qualified(), json!(n));
            }
        }
        Value::Object(counts)
    }
}
