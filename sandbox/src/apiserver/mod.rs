//! A local Kubernetes API server on loopback: discovery, CRUD, watch, patches, CRDs (design.md §6).
//!
//! [`ApiServer::start`] binds a free port on 127.0.0.1 and serves what `kube::Client` (incl. `kube::runtime`)
//! and the real `kubectl` use. [`ApiServerHandle`] gives its URL, writes kubeconfigs, exposes the in-process
//! [`Objects`] handle, the [`Faults`] injector and the request counts, and shuts everything down on drop.
//!
//! What it does not do (each answers with a `Status` naming it, or is simply absent):
//! - protobuf request bodies of kinds other than those [`protobuf`] decodes (Secret, ConfigMap, Namespace,
//!   ServiceAccount, TokenRequest and the access reviews), e.g. `kubectl run`, `kubectl create deployment`: 415;
//!   protobuf responses (every answer is JSON, which kubectl accepts);
//! - OpenAPI v2, TLS, RBAC and admission (every request is allowed; an optional static bearer token);
//! - subresources other than `status` and `scale` (`pods/log`, `exec`, `eviction`, …): 501;
//! - strategic merge keys beyond containers, initContainers, env, ports, volumes, volumeMounts,
//!   imagePullSecrets, conditions, ownerReferences (merge) and finalizers (set); other lists are replaced;
//! - CRD conversion other than `None`, Deployment/ReplicaSet/Endpoints controllers;
//! - snapshot-consistent pagination (continue tokens resume after the last key), field-selector field checks.

pub mod discovery;
pub mod error;
pub mod events;
pub mod faults;
pub mod fields;
pub mod http;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod requests;
pub mod resources;
pub mod schema;
pub mod selector;
pub mod ssa;
pub mod store;
pub mod table;
pub mod workload;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

pub use error::{ApiError, ApiServerError, Cause};
pub use faults::Faults;
pub use patch::PatchKind;
pub use requests::{RequestCounts, RequestKind};
pub use resources::GroupResource;
pub use store::{DeleteOptions, EventType, FieldValidation, Propagation, Subresource, WatchEvent, WriteOptions};
pub use workload::{LoopbackAllocator, PodIpAllocator};

use resources::ResourceInfo;
use selector::{FieldSelector, LabelSelector};
use store::Store;

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
        });
        let router = axum::Router::new().fallback(http::handle).with_state(app);
        let (shutdown, shutdown_receiver) = watch::channel(false);
        let mut server_shutdown = shutdown_receiver.clone();
        let server = tokio::spawn(async move {
            let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
                let _ = server_shutdown.changed().await;
            });
            if let Err(error) = serve.await {
                tracing::error!(%error, "sandbox API server stopped with an error");
            }
        });
        let controller =
            workload::Controller::new(store.clone(), options.pod_ip_allocator.clone(), options.pod_ready_delay);
        let controller_task = tokio::spawn(controller.run(shutdown_receiver));
        Ok(ApiServerHandle {
            url: format!("http://{address}"),
            address,
            token: options.token.or(options.secrets_token),
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

    /// The kubeconfig YAML for this server (cluster `sandbox`, context `sandbox`, namespace `default`).
    pub fn kubeconfig_yaml(&self) -> String {
        let user_block = match &self.token {
            Some(token) => format!("- name: sandbox\n  user:\n    token: {token}\n"),
            None => "- name: sandbox\n  user: {}\n".to_string(),
        };
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: sandbox\n  cluster:\n    server: {url}\ncontexts:\n- name: sandbox\n  context:\n    cluster: sandbox\n    user: sandbox\n    namespace: default\ncurrent-context: sandbox\nusers:\n{user_block}preferences: {{}}\n",
            url = self.url
        )
    }

    /// Writes the kubeconfig to a file.
    ///
    /// The file is readable by its owner only (mode 0600), as it holds the bearer token.
    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), ApiServerError> {
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
        file.write_all(self.kubeconfig_yaml().as_bytes()).map_err(failed)
    }

    /// A `kube::Config` pointing at this server with namespace `default`.
    pub fn kube_config(&self) -> Result<kube::Config, ApiServerError> {
        let uri: http_uri::Uri = self
            .url
            .parse()
            .map_err(|e: http_uri::InvalidUri| ApiServerError::ClientConfig {
                url: self.url.clone(),
                message: e.to_string(),
            })?;
        let mut config = kube::Config::new(uri);
        config.default_namespace = "default".into();
        if let Some(token) = &self.token {
            config.auth_info.token = Some(token.clone().into());
        }
        Ok(config)
    }

    /// A `kube::Client` for this server.
    pub fn kube_client(&self) -> Result<kube::Client, ApiServerError> {
        let config = self.kube_config()?;
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
