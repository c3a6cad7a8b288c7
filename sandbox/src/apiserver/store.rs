//! The object store: every object as a JSON value keyed by group-resource, namespace and name, a global
//! resourceVersion, a bounded event history for watch resumption, watch subscribers, and the write pipeline
//! every request goes through (admission, status subresource, generation, managed fields, finalizers,
//! owner-reference garbage collection, namespace and CRD lifecycle).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::error::{ApiError, Cause};
use super::fields::{BuiltinListTypes, ListTypes, SchemaListTypes};
use super::patch::{self, PatchKind};
use super::resources::{GroupResource, Registry, ResourceInfo, resource_from_crd};
use super::schema;
use super::selector::{FieldSelector, LabelSelector};
use super::ssa;
use super::validation;

/// The kind of a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// An object was created.
    Added,
    /// An object was changed.
    Modified,
    /// An object was removed.
    Deleted,
}

impl EventType {
    /// The wire name (`ADDED`, `MODIFIED`, `DELETED`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change to one object.
#[derive(Debug, Clone)]
pub struct WatchEvent {
    /// The resourceVersion of this change.
    pub resource_version: u64,
    /// What happened.
    pub event_type: EventType,
    /// Which resource type changed.
    pub resource: GroupResource,
    /// The object's namespace (empty for cluster-scoped objects).
    pub namespace: String,
    /// The object after the change (the last state for `Deleted`).
    pub object: Arc<Value>,
    /// The object before the change, for selector transitions.
    pub old: Option<Arc<Value>>,
}

struct Subscriber {
    resource: Option<GroupResource>,
    namespace: Option<String>,
    sender: mpsc::UnboundedSender<Arc<WatchEvent>>,
}

/// How unknown fields in a write are treated (`fieldValidation` query parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Drop them silently.
    Ignore,
    /// Drop them and warn (the default).
    #[default]
    Warn,
    /// Refuse the write.
    Strict,
}

impl FieldValidation {
    /// Parses the query parameter value.
    pub fn parse(value: Option<&str>) -> Result<Self, ApiError> {
        match value {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation must be one of \"Ignore\", \"Warn\" or \"Strict\", got \"{other}\""
            ))),
        }
    }
}

/// Options of a write request.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// The field manager (`fieldManager` query parameter, or a default per client).
    pub field_manager: String,
    /// Unknown-field handling.
    pub field_validation: FieldValidation,
    /// `dryRun=All`: validate and compute, store nothing.
    pub dry_run: bool,
    /// `force=true` for server-side apply.
    pub force: bool,
}

/// The result of a write.
#[derive(Debug, Clone)]
pub struct WriteOutcome {
    /// The object as stored (or as it would be stored for a dry run).
    pub object: Value,
    /// Warnings for the `Warning` header (unknown fields).
    pub warnings: Vec<String>,
    /// Whether the object was created by this write.
    pub created: bool,
}

/// `propagationPolicy` of a delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Propagation {
    /// Delete the owner now, dependents after.
    #[default]
    Background,
    /// Delete dependents first; the owner keeps a `foregroundDeletion` finalizer until they are gone.
    Foreground,
    /// Remove the owner reference from dependents and keep them.
    Orphan,
}

/// Options of a delete request.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    /// Dependents policy.
    pub propagation: Option<Propagation>,
    /// Only delete if the uid matches.
    pub precondition_uid: Option<String>,
    /// Only delete if the resourceVersion matches.
    pub precondition_resource_version: Option<String>,
    /// Compute, store nothing.
    pub dry_run: bool,
}

/// Which part of an object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    /// The object itself.
    Main,
    /// The `/status` subresource.
    Status,
}

impl Subresource {
    fn name(self) -> &'static str {
        match self {
            Subresource::Main => "",
            Subresource::Status => "status",
        }
    }
}

type Key = (String, String);

/// Events still in history after the requested version, and the receiver of every later event.
pub type Subscription = (Vec<Arc<WatchEvent>>, mpsc::UnboundedReceiver<Arc<WatchEvent>>);

/// The mutable state behind the store lock.
pub struct State {
    /// Served resource types.
    pub registry: Registry,
    resource_version: u64,
    objects: HashMap<GroupResource, BTreeMap<Key, Value>>,
    history: VecDeque<Arc<WatchEvent>>,
    history_limit: usize,
    history_floor: u64,
    subscribers: Vec<Subscriber>,
    counter: u64,
    seed: [u8; 8],
}

/// A cloneable handle on the shared state.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Mutex<State>>,
}

/// The current time in the RFC 3339 second precision Kubernetes uses.
pub fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn meta(object: &Value) -> Option<&Map<String, Value>> {
    object.get("metadata").and_then(Value::as_object)
}

fn meta_mut(object: &mut Value) -> Option<&mut Map<String, Value>> {
    if !object.get("metadata").is_some_and(Value::is_object)
        && let Some(map) = object.as_object_mut()
    {
        map.insert("metadata".into(), Value::Object(Map::new()));
    }
    object.get_mut("metadata").and_then(Value::as_object_mut)
}

fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    meta(object).and_then(|m| m.get(field)).and_then(Value::as_str)
}

/// The finalizers of an object.
pub fn finalizers(object: &Value) -> Vec<String> {
    meta(object)
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

fn owner_uids(object: &Value) -> Vec<String> {
    meta(object)
        .and_then(|m| m.get("ownerReferences"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether two objects are equal on every top-level field but the skipped ones (compared in place: this runs
/// on every write).
fn equal_except(a: &Value, b: &Value, skip: &[&str]) -> bool {
    match (a.as_object(), b.as_object()) {
        (Some(x), Some(y)) => {
            x.iter()
                .filter(|(k, _)| !skip.contains(&k.as_str()))
                .all(|(k, v)| y.get(k) == Some(v))
                && y.keys()
                    .filter(|k| !skip.contains(&k.as_str()))
                    .all(|k| x.contains_key(k))
        }
        _ => a == b,
    }
}

/// Whether a change from `old` to `new` bumps `generation`: any change but in metadata, and but in status when
/// the status subresource is enabled.
fn generation_changes(new: &Value, old: &Value, exclude_status: bool) -> bool {
    let skip: &[&str] = if exclude_status {
        &["metadata", "apiVersion", "kind", "status"]
    } else {
        &["metadata", "apiVersion", "kind"]
    };
    !equal_except(new, old, skip)
}

fn volatile_free_metadata(object: &Value) -> Value {
    let mut meta = object.get("metadata").cloned().unwrap_or(Value::Null);
    if let Some(m) = meta.as_object_mut() {
        m.remove("resourceVersion");
        if let Some(entries) = m.get_mut("managedFields").and_then(Value::as_array_mut) {
            for e in entries {
                if let Some(e) = e.as_object_mut() {
                    e.remove("time");
                }
            }
        }
    }
    meta
}

/// Whether a write changes nothing but resourceVersion and managed-field timestamps (then it is skipped, as a
/// real API server does, so no-op writes bump no version and wake no watch).
fn same_object(a: &Value, b: &Value) -> bool {
    equal_except(a, b, &["metadata"]) && volatile_free_metadata(a) == volatile_free_metadata(b)
}

impl Store {
    /// A store holding the built-in resource types and the `default` and `kube-system` namespaces.
    pub fn new(history_limit: usize) -> Self {
        let seed_source = format!(
            "{}-{}",
            std::process::id(),
            k8s_openapi::jiff::Timestamp::now().as_nanosecond()
        );
        let digest = Sha256::digest(seed_source.as_bytes());
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&digest[..8]);
        let store = Store {
            inner: Arc::new(Mutex::new(State {
                registry: Registry::with_builtins(),
                resource_version: 0,
                objects: HashMap::new(),
                history: VecDeque::new(),
                history_limit: history_limit.max(1),
                history_floor: 0,
                subscribers: Vec::new(),
                counter: 0,
                seed,
            })),
        };
        {
            let mut state = store.lock();
            for ns in ["default", "kube-system", "kube-public"] {
                let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
                let info = state.registry.get(&GroupResource::new("", "namespaces"));
                if let Some(info) = info {
                    let options = WriteOptions {
                        field_manager: "sandbox".into(),
                        ..WriteOptions::default()
                    };
                    // The built-in namespaces are valid by construction; failing here would be a bug we
                    // would see in every test.
                    let _ = state.create(&info, "v1", None, body, &options);
                }
            }
        }
        store
    }

    /// Locks the state for one operation.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl State {
    fn next_uid(&mut self) -> String {
        self.counter += 1;
        let mut hasher = Sha256::new();
        hasher.update(self.seed);
        hasher.update(self.counter.to_le_bytes());
        let d = hasher.finalize();
        format!(
            "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-4{:x}{:02x}-{:x}{:x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
            d[0],
            d[1],
            d[2],
            d[3],
            d[4],
            d[5],
            d[6] & 0x0f,
            d[7],
            8 | (d[8] & 3),
            d[8] >> 4,
            d[9],
            d[10],
            d[11],
            d[12],
            d[13],
            d[14],
            d[15]
        )
    }

    fn random_suffix(&mut self) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        let uid = self.next_uid();
        uid.bytes()
            .filter(|b| b.is_ascii_hexdigit())
            .take(5)
            .map(|b| ALPHABET[(b as usize) % ALPHABET.len()] as char)
            .collect()
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.resource_version
    }

    /// A stored object.
    pub fn get(&self, resource: &GroupResource, namespace: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(resource)
            .and_then(|objects| objects.get(&(namespace.to_string(), name.to_string())))
    }

    fn get_or_404(&self, info: &ResourceInfo, namespace: &str, name: &str) -> Result<Value, ApiError> {
        self.get(&info.storage_resource(), namespace, name)
            .cloned()
            .ok_or_else(|| ApiError::NotFound {
                resource: info.group_resource().qualified(),
                name: name.to_string(),
            })
    }

    /// Objects of a resource, optionally in one namespace, filtered by selectors, in key order after `after`.
    pub fn list(
        &self,
        resource: &GroupResource,
        namespace: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> Vec<&Value> {
        let Some(objects) = self.objects.get(resource) else {
            return Vec::new();
        };
        let matches = |v: &&Value| labels.matches(v) && fields.matches(v);
        match namespace {
            Some(ns) => objects
                .range((ns.to_string(), String::new())..)
                .take_while(|((n, _), _)| n == ns)
                .map(|(_, v)| v)
                .filter(matches)
                .collect(),
            None => objects.values().filter(matches).collect(),
        }
    }

    /// Registers a watch subscriber; returns the events after `since` still in history (or `Gone`).
    pub fn subscribe(
        &mut self,
        resource: Option<GroupResource>,
        namespace: Option<String>,
        since: Option<u64>,
    ) -> Result<Subscription, ApiError> {
        let mut replay = Vec::new();
        if let Some(since) = since {
            if since < self.history_floor {
                return Err(ApiError::Gone {
                    requested: since,
                    oldest: self.history_floor,
                });
            }
            replay = self
                .history
                .iter()
                .filter(|e| e.resource_version > since)
                .filter(|e| resource.as_ref().is_none_or(|r| *r == e.resource))
                .filter(|e| namespace.as_ref().is_none_or(|n| *n == e.namespace))
                .cloned()
                .collect();
        }
        let (sender, receiver) = mpsc::unbounded_channel();
        self.subscribers.push(Subscriber {
            resource,
            namespace,
            sender,
        });
        Ok((replay, receiver))
    }

    /// Ends every open watch (fault injection); clients reconnect.
    pub fn drop_watches(&mut self) {
        self.subscribers.clear();
    }

    fn commit(
        &mut self,
        resource: &GroupResource,
        namespace: &str,
        name: &str,
        object: Option<Value>,
        old: Option<Value>,
        event_type: EventType,
    ) -> Value {
        self.resource_version += 1;
        let rv = self.resource_version;
        let key = (namespace.to_string(), name.to_string());
        let mut stored = match object {
            Some(o) => o,
            None => old.clone().unwrap_or(Value::Null),
        };
        if let Some(m) = meta_mut(&mut stored) {
            m.insert("resourceVersion".into(), json!(rv.to_string()));
        }
        let objects = self.objects.entry(resource.clone()).or_default();
        if event_type == EventType::Deleted {
            objects.remove(&key);
        } else {
            objects.insert(key, stored.clone());
        }
        let event = Arc::new(WatchEvent {
            resource_version: rv,
            event_type,
            resource: resource.clone(),
            namespace: namespace.to_string(),
            object: Arc::new(stored.clone()),
            old: old.map(Arc::new),
        });
        self.history.push_back(event.clone());
        while self.history.len() > self.history_limit {
            if let Some(evicted) = self.history.pop_front() {
                self.history_floor = evicted.resource_version;
            }
        }
        self.subscribers.retain(|s| {
            let wanted = s.resource.as_ref().is_none_or(|r| *r == event.resource)
                && s.namespace.as_ref().is_none_or(|n| *n == event.namespace);
            if wanted {
                s.sender.send(event.clone()).is_ok()
            } else {
                !s.sender.is_closed()
            }
        });
        stored
    }

    fn list_types<'a>(info: &'a ResourceInfo, version: &str) -> Box<dyn ListTypes + 'a> {
        match info.version(version).and_then(|v| v.schema.as_ref()) {
            Some(schema) if info.custom => Box::new(SchemaListTypes { schema }),
            _ => Box::new(BuiltinListTypes),
        }
    }

    /// Schema pruning/validation of custom resources, name checks, Secret `stringData`, built-in defaults.
    fn admit(
        &self,
        info: &ResourceInfo,
        version: &str,
        object: &mut Value,
        options: &WriteOptions,
    ) -> Result<Vec<String>, ApiError> {
        let name = meta_str(object, "name").unwrap_or_default().to_string();
        let invalid = |causes: Vec<Cause>| {
            let parts: Vec<String> = causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect();
            let summary = if parts.len() == 1 {
                parts[0].clone()
            } else {
                format!("[{}]", parts.join(", "))
            };
            ApiError::Invalid {
                kind: info.kind.clone(),
                group: info.group.clone(),
                name: name.clone(),
                summary,
                causes,
            }
        };
        let mut warnings = Vec::new();
        if info.custom
            && let Some(schema) = info.version(version).and_then(|v| v.schema.as_ref())
        {
            let mut unknown = Vec::new();
            schema::prune(schema, object, "", &mut unknown);
            if !unknown.is_empty() {
                let messages: Vec<String> = unknown.iter().map(|u| format!("unknown field \"{u}\"")).collect();
                match options.field_validation {
                    FieldValidation::Strict => {
                        return Err(ApiError::bad_request(format!(
                            "strict decoding error: {}",
                            messages.join(", ")
                        )));
                    }
                    FieldValidation::Warn => warnings.extend(messages),
                    FieldValidation::Ignore => {}
                }
            }
            schema::apply_defaults(schema, object, true);
            let mut causes = Vec::new();
            schema::validate(schema, object, "", &mut causes);
            if !causes.is_empty() {
                return Err(invalid(causes));
            }
        }
        if info.group.is_empty() && info.plural == "secrets" {
            convert_string_data(object);
        }
        if info.group == "apiextensions.k8s.io" && info.plural == "customresourcedefinitions" {
            resource_from_crd(object)?;
        }
        Ok(warnings)
    }

    fn check_namespace(&self, info: &ResourceInfo, namespace: &str, name: &str) -> Result<(), ApiError> {
        if !info.namespaced {
            return Ok(());
        }
        let ns = self.get(&GroupResource::new("", "namespaces"), "", namespace);
        match ns {
            None => Err(ApiError::NotFound {
                resource: "namespaces".into(),
                name: namespace.to_string(),
            }),
            Some(ns) if meta_str(ns, "deletionTimestamp").is_some() => Err(ApiError::Forbidden {
                message: format!(
                    "{} \"{name}\" is forbidden: unable to create new content in namespace {namespace} because it is being terminated",
                    info.group_resource().qualified()
                ),
            }),
            Some(_) => Ok(()),
        }
    }

    fn check_identity(info: &ResourceInfo, version: &str, object: &mut Value, namespace: &str) -> Result<(), ApiError> {
        if !object.is_object() {
            return Err(ApiError::bad_request("the request body must be a JSON object"));
        }
        let expected_api_version = info.api_version(version);
        if let Some(kind) = object.get("kind").and_then(Value::as_str)
            && kind != info.kind
        {
            return Err(ApiError::bad_request(format!(
                "the kind of the object ({kind}) does not match the resource ({}) of the request URL",
                info.kind
            )));
        }
        if let Some(api_version) = object.get("apiVersion").and_then(Value::as_str)
            && api_version != expected_api_version
        {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({api_version}) does not match the expected API version ({expected_api_version})"
            )));
        }
        if let Some(map) = object.as_object_mut() {
            map.insert("apiVersion".into(), json!(expected_api_version));
            map.insert("kind".into(), json!(info.kind));
        }
        let body_namespace = meta_str(object, "namespace").map(str::to_string);
        match (info.namespaced, body_namespace) {
            (true, Some(ns)) if ns != namespace && !ns.is_empty() => Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            )),
            (true, _) => {
                if let Some(m) = meta_mut(object) {
                    m.insert("namespace".into(), json!(namespace));
                }
                Ok(())
            }
            (false, _) => {
                if let Some(m) = meta_mut(object) {
                    m.remove("namespace");
                }
                Ok(())
            }
        }
    }

    /// Creates an object (POST).
    pub fn create(
        &mut self,
        info: &ResourceInfo,
        version: &str,
        namespace: Option<&str>,
        mut object: Value,
        options: &WriteOptions,
    ) -> Result<WriteOutcome, ApiError> {
        let namespace = if info.namespaced {
            namespace.unwrap_or("default")
        } else {
            ""
        };
        Self::check_identity(info, version, &mut object, namespace)?;
        // An events.k8s.io Event is stored as core/v1, so that either API (and kubectl's field selectors) sees it.
        object = to_storage(info, object);
        if meta_str(&object, "name").is_none_or(str::is_empty) {
            match meta_str(&object, "generateName").map(str::to_string) {
                Some(prefix) if !prefix.is_empty() => {
                    let name = format!("{prefix}{}", self.random_suffix());
                    if let Some(m) = meta_mut(&mut object) {
                        m.insert("name".into(), json!(name));
                    }
                }
                _ => {
                    return Err(ApiError::Invalid {
                        kind: info.kind.clone(),
                        group: info.group.clone(),
                        name: String::new(),
                        summary: "metadata.name: Required value: name or generateName is required".into(),
                        causes: vec![Cause {
                            reason: "FieldValueRequired".into(),
                            message: "Required value: name or generateName is required".into(),
                            field: "metadata.name".into(),
                        }],
                    });
                }
            }
        }
        let name = meta_str(&object, "name").unwrap_or_default().to_string();
        self.check_namespace(info, namespace, &name)?;
        let resource = info.storage_resource();
        if self.get(&resource, namespace, &name).is_some() {
            return Err(ApiError::AlreadyExists {
                resource: resource.qualified(),
                name,
            });
        }
        let warnings = self.admit(info, version, &mut object, options)?;
        if info.has_status_subresource()
            && !(info.group.is_empty() && info.plural == "namespaces")
            && let Some(map) = object.as_object_mut()
        {
            map.remove("status");
        }
        let now = now_rfc3339();
        let uid = self.next_uid();
        if let Some(m) = meta_mut(&mut object) {
            m.insert("uid".into(), json!(uid));
            m.insert("creationTimestamp".into(), json!(now));
            if has_generation(info) {
                m.insert("generation".into(), json!(1));
            }
            m.remove("deletionTimestamp");
            m.remove("deletionGracePeriodSeconds");
            m.remove("managedFields");
            m.remove("resourceVersion");
            m.remove("selfLink");
        }
        default_builtin(info, &mut object, &uid);
        let list_types = Self::list_types(info, version);
        if !options.field_manager.is_empty() {
            let writer = ssa::Writer {
                manager: &options.field_manager,
                subresource: "",
                api_version: &info.api_version(version),
                now: &now,
            };
            ssa::record_update(
                None,
                &mut object,
                &writer,
                list_types.as_ref(),
                info.has_status_subresource(),
            );
        }
        self.finish_create(info, version, namespace, &name, object, options, warnings)
    }

    #[allow(clippy::too_many_arguments)]
    fn finish_create(
        &mut self,
        info: &ResourceInfo,
        version: &str,
        namespace: &str,
        name: &str,
        mut object: Value,
        options: &WriteOptions,
        warnings: Vec<String>,
    ) -> Result<WriteOutcome, ApiError> {
        validation::admit(info, version, &mut object, validation::Write::Create)?;
        if let Some(map) = object.as_object_mut() {
            map.insert("apiVersion".into(), json!(info.api_version(info.storage_version())));
        }
        if options.dry_run {
            return Ok(WriteOutcome {
                object: self.convert(info, version, object),
                warnings,
                created: true,
            });
        }
        let stored = self.commit(
            &info.storage_resource(),
            namespace,
            name,
            Some(object),
            None,
            EventType::Added,
        );
        let stored = self.after_write(info, namespace, name, stored)?;
        Ok(WriteOutcome {
            object: self.convert(info, version, stored),
            warnings,
            created: true,
        })
    }

    /// What follows every committed create or update: a CRD is established, and a dependent whose owners are all
    /// gone is collected, as Kubernetes' garbage collector does, also one written after its owner was deleted (a
    /// controller racing the deletion); dependents are otherwise only collected when an owner goes.
    fn after_write(
        &mut self,
        info: &ResourceInfo,
        namespace: &str,
        name: &str,
        stored: Value,
    ) -> Result<Value, ApiError> {
        let stored = if info.group == "apiextensions.k8s.io" && info.plural == "customresourcedefinitions" {
            self.establish_crd(&stored)?
        } else {
            stored
        };
        let owners = owner_uids(&stored);
        if !owners.is_empty() && owners.iter().all(|uid| !self.uid_exists(uid)) {
            self.delete_internal(&info.storage_resource(), namespace, name, Some(Propagation::Background))?;
        }
        Ok(stored)
    }

    /// A stored object as served in `version` (see [`convert_object`]).
    pub fn convert(&self, info: &ResourceInfo, version: &str, object: Value) -> Value {
        convert_object(info, version, object)
    }

    /// Replaces an object (PUT) or its status.
    #[allow(clippy::too_many_arguments)]
    pub fn update(
        &mut self,
        info: &ResourceInfo,
        version: &str,
        namespace: Option<&str>,
        name: &str,
        mut object: Value,
        subresource: Subresource,
        options: &WriteOptions,
    ) -> Result<WriteOutcome, ApiError> {
        let namespace = if info.namespaced {
            namespace.unwrap_or("default")
        } else {
            ""
        };
        Self::check_identity(info, version, &mut object, namespace)?;
        match meta_str(&object, "name") {
            Some(body_name) if body_name != name => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({body_name}) does not match the name on the URL ({name})"
                )));
            }
            _ => {
                if let Some(m) = meta_mut(&mut object) {
                    m.insert("name".into(), json!(name));
                }
            }
        }
        let Some(current) = self.get(&info.storage_resource(), namespace, name).cloned() else {
            if info.custom && subresource == Subresource::Main {
                return self.create(info, version, Some(namespace), object, options);
            }
            return Err(ApiError::NotFound {
                resource: info.group_resource().qualified(),
                name: name.to_string(),
            });
        };
        if let Some(requested) = meta_str(&object, "resourceVersion")
            && !requested.is_empty()
            && Some(requested) != meta_str(&current, "resourceVersion")
        {
            return Err(stale(info, name));
        }
        self.write_over(
            info,
            version,
            namespace,
            name,
            &current,
            object,
            subresource,
            options,
            false,
        )
    }

    /// Patches an object or its status with any patch type, including server-side apply (which creates).
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &mut self,
        info: &ResourceInfo,
        version: &str,
        namespace: Option<&str>,
        name: &str,
        kind: PatchKind,
        patch_body: Value,
        subresource: Subresource,
        options: &WriteOptions,
    ) -> Result<WriteOutcome, ApiError> {
        let namespace = if info.namespaced {
            namespace.unwrap_or("default")
        } else {
            ""
        };
        let current = self.get(&info.storage_resource(), namespace, name).cloned();
        let list_types = Self::list_types(info, version);
        match kind {
            PatchKind::Apply => {
                if options.field_manager.is_empty() {
                    return Err(ApiError::bad_request(
                        "PATCH requests of type application/apply-patch+yaml must include a fieldManager query parameter",
                    ));
                }
                let mut applied = patch_body;
                Self::check_identity(info, version, &mut applied, namespace)?;
                if let Some(body_name) = meta_str(&applied, "name")
                    && body_name != name
                {
                    return Err(ApiError::bad_request(format!(
                        "the name of the object ({body_name}) does not match the name on the URL ({name})"
                    )));
                }
                // Validate the applied configuration on its own first so a bad apply changes nothing.
                let mut probe = applied.clone();
                if let Some(m) = meta_mut(&mut probe) {
                    m.insert("name".into(), json!(name));
                }
                let now = now_rfc3339();
                let api_version = info.api_version(version);
                let writer = ssa::Writer {
                    manager: &options.field_manager,
                    subresource: subresource.name(),
                    api_version: &api_version,
                    now: &now,
                };
                let exclude_status = info.has_status_subresource();
                let base = match &current {
                    Some(c) => self.convert(info, version, c.clone()),
                    None => {
                        if subresource == Subresource::Status {
                            return Err(ApiError::NotFound {
                                resource: info.group_resource().qualified(),
                                name: name.to_string(),
                            });
                        }
                        json!({"apiVersion": api_version, "kind": info.kind, "metadata": {"name": name}})
                    }
                };
                if let Some(requested) = meta_str(&applied, "resourceVersion")
                    && current.is_some()
                    && Some(requested) != meta_str(&base, "resourceVersion")
                {
                    return Err(stale(info, name));
                }
                let merged = ssa::apply(
                    &base,
                    &applied,
                    &writer,
                    options.force,
                    list_types.as_ref(),
                    exclude_status,
                    &info.group_resource().qualified(),
                    name,
                )?;
                drop(list_types);
                match current {
                    None => {
                        let mut object = to_storage(info, merged);
                        self.check_namespace(info, namespace, name)?;
                        let warnings = self.admit(info, version, &mut object, options)?;
                        let uid = self.next_uid();
                        if let Some(m) = meta_mut(&mut object) {
                            m.insert("uid".into(), json!(uid));
                            m.insert("creationTimestamp".into(), json!(now));
                            if has_generation(info) {
                                m.insert("generation".into(), json!(1));
                            }
                            if info.namespaced {
                                m.insert("namespace".into(), json!(namespace));
                            }
                        }
                        if exclude_status && let Some(map) = object.as_object_mut() {
                            map.remove("status");
                        }
                        default_builtin(info, &mut object, &uid);
                        self.finish_create(info, version, namespace, name, object, options, warnings)
                    }
                    Some(current) => self.write_over(
                        info,
                        version,
                        namespace,
                        name,
                        &current,
                        merged,
                        subresource,
                        options,
                        true,
                    ),
                }
            }
            _ => {
                let Some(current) = current else {
                    return Err(ApiError::NotFound {
                        resource: info.group_resource().qualified(),
                        name: name.to_string(),
                    });
                };
                let mut object = self.convert(info, version, current.clone());
                match kind {
                    PatchKind::Merge => {
                        if !patch_body.is_object() {
                            return Err(ApiError::bad_request("a merge patch must be a JSON object"));
                        }
                        patch::merge_patch(&mut object, &patch_body)
                    }
                    PatchKind::Json => patch::json_patch(&mut object, &patch_body).map_err(|e| match e {
                        ApiError::Invalid { summary, causes, .. } => ApiError::Invalid {
                            kind: info.kind.clone(),
                            group: info.group.clone(),
                            name: name.to_string(),
                            summary,
                            causes,
                        },
                        other => other,
                    })?,
                    PatchKind::Strategic => {
                        if !patch_body.is_object() {
                            return Err(ApiError::bad_request("a strategic merge patch must be a JSON object"));
                        }
                        patch::strategic_merge(&mut object, &patch_body, list_types.as_ref())?
                    }
                    PatchKind::Apply => {}
                }
                drop(list_types);
                if let Some(requested) = patch_body.pointer("/metadata/resourceVersion").and_then(Value::as_str)
                    && Some(requested) != meta_str(&current, "resourceVersion")
                {
                    return Err(stale(info, name));
                }
                Self::check_identity(info, version, &mut object, namespace)?;
                if meta_str(&object, "name") != Some(name) {
                    return Err(ApiError::bad_request("a patch may not change metadata.name"));
                }
                self.write_over(
                    info,
                    version,
                    namespace,
                    name,
                    &current,
                    object,
                    subresource,
                    options,
                    false,
                )
            }
        }
    }

    /// The shared tail of PUT and PATCH: subresource separation, admission, generation, managed fields,
    /// no-op detection, finalizer-driven removal.
    #[allow(clippy::too_many_arguments)]
    fn write_over(
        &mut self,
        info: &ResourceInfo,
        version: &str,
        namespace: &str,
        name: &str,
        current: &Value,
        mut object: Value,
        subresource: Subresource,
        options: &WriteOptions,
        managed_fields_done: bool,
    ) -> Result<WriteOutcome, ApiError> {
        object = to_storage(info, object);
        let exclude_status = info.has_status_subresource();
        if subresource == Subresource::Status {
            let status = object.get("status").cloned();
            let mut base = current.clone();
            if let Some(map) = base.as_object_mut() {
                match status {
                    Some(s) => map.insert("status".into(), s),
                    None => map.remove("status"),
                };
            }
            if managed_fields_done
                && let (Some(m), Some(mf)) = (meta_mut(&mut base), object.pointer("/metadata/managedFields"))
            {
                m.insert("managedFields".into(), mf.clone());
            }
            object = base;
        } else if exclude_status && let Some(map) = object.as_object_mut() {
            match current.get("status") {
                Some(s) => map.insert("status".into(), s.clone()),
                None => map.remove("status"),
            };
        }
        // Identity and server-owned metadata come from the stored object.
        if let (Some(m), Some(cm)) = (meta_mut(&mut object), meta(current)) {
            for field in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ] {
                match cm.get(field) {
                    Some(v) => m.insert(field.into(), v.clone()),
                    None => m.remove(field),
                };
            }
            // A client may rewrite managedFields on purpose (kubectl does when it upgrades client-side
            // apply ownership to server-side apply); otherwise ownership comes from the stored object.
            let rewritten = m.contains_key("managedFields") && m.get("managedFields") != cm.get("managedFields");
            if !managed_fields_done && !rewritten {
                match cm.get("managedFields") {
                    Some(v) => m.insert("managedFields".into(), v.clone()),
                    None => m.remove("managedFields"),
                };
            }
            m.remove("resourceVersion");
        }
        let warnings = self.admit(info, version, &mut object, options)?;
        let write = match subresource {
            Subresource::Status => validation::Write::Status(current),
            _ => validation::Write::Update(current),
        };
        validation::admit(info, version, &mut object, write)?;
        if let Some(map) = object.as_object_mut() {
            map.insert("apiVersion".into(), json!(info.api_version(info.storage_version())));
        }
        if has_generation(info) && generation_changes(&object, current, exclude_status) {
            let generation = meta(current)
                .and_then(|m| m.get("generation"))
                .and_then(Value::as_i64)
                .unwrap_or(1);
            if let Some(m) = meta_mut(&mut object) {
                m.insert("generation".into(), json!(generation + 1));
            }
        }
        if !managed_fields_done && !options.field_manager.is_empty() {
            let now = now_rfc3339();
            let api_version = info.api_version(version);
            let writer = ssa::Writer {
                manager: &options.field_manager,
                subresource: subresource.name(),
                api_version: &api_version,
                now: &now,
            };
            let list_types = Self::list_types(info, version);
            ssa::record_update(Some(current), &mut object, &writer, list_types.as_ref(), exclude_status);
        }
        if same_object(&object, current) {
            return Ok(WriteOutcome {
                object: self.convert(info, version, current.clone()),
                warnings,
                created: false,
            });
        }
        if options.dry_run {
            return Ok(WriteOutcome {
                object: self.convert(info, version, object),
                warnings,
                created: false,
            });
        }
        let resource = info.storage_resource();
        if meta_str(&object, "deletionTimestamp").is_some() && finalizers(&object).is_empty() {
            let removed = self.commit(&resource, namespace, name, None, Some(object), EventType::Deleted);
            self.after_removal(&resource, &removed);
            return Ok(WriteOutcome {
                object: self.convert(info, version, removed),
                warnings,
                created: false,
            });
        }
        let stored = self.commit(
            &resource,
            namespace,
            name,
            Some(object),
            Some(current.clone()),
            EventType::Modified,
        );
        let stored = self.after_write(info, namespace, name, stored)?;
        Ok(WriteOutcome {
            object: self.convert(info, version, stored),
            warnings,
            created: false,
        })
    }

    /// Deletes an object: marks it when finalizers remain, removes it otherwise, then collects garbage.
    /// Returns the object and whether it is gone.
    pub fn delete(
        &mut self,
        info: &ResourceInfo,
        version: &str,
        namespace: Option<&str>,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<(Value, bool), ApiError> {
        let namespace = if info.namespaced {
            namespace.unwrap_or("default")
        } else {
            ""
        };
        let current = self.get_or_404(info, namespace, name)?;
        if let Some(uid) = &options.precondition_uid
            && Some(uid.as_str()) != meta_str(&current, "uid")
        {
            return Err(ApiError::Conflict {
                resource: info.group_resource().qualified(),
                name: name.to_string(),
                message: format!(
                    "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    info.group_resource().qualified(),
                    meta_str(&current, "uid").unwrap_or_default()
                ),
                causes: Vec::new(),
            });
        }
        if let Some(rv) = &options.precondition_resource_version
            && Some(rv.as_str()) != meta_str(&current, "resourceVersion")
        {
            return Err(stale(info, name));
        }
        if options.dry_run {
            return Ok((self.convert(info, version, current), false));
        }
        let (object, gone) = self.delete_internal(&info.storage_resource(), namespace, name, options.propagation)?;
        Ok((self.convert(info, version, object), gone))
    }

    fn dependents(&self, uid: &str) -> Vec<(GroupResource, String, String)> {
        let mut out = Vec::new();
        for (resource, objects) in &self.objects {
            for ((ns, name), object) in objects {
                if owner_uids(object).iter().any(|u| u == uid) {
                    out.push((resource.clone(), ns.clone(), name.clone()));
                }
            }
        }
        out
    }

    fn uid_exists(&self, uid: &str) -> bool {
        self.objects
            .values()
            .any(|objects| objects.values().any(|o| meta_str(o, "uid") == Some(uid)))
    }

    fn delete_internal(
        &mut self,
        resource: &GroupResource,
        namespace: &str,
        name: &str,
        propagation: Option<Propagation>,
    ) -> Result<(Value, bool), ApiError> {
        let Some(current) = self.get(resource, namespace, name).cloned() else {
            return Err(ApiError::NotFound {
                resource: resource.qualified(),
                name: name.to_string(),
            });
        };
        let uid = meta_str(&current, "uid").unwrap_or_default().to_string();
        let propagation = propagation.unwrap_or_default();
        if propagation == Propagation::Orphan {
            for (dep_resource, dep_ns, dep_name) in self.dependents(&uid) {
                if let Some(mut dep) = self.get(&dep_resource, &dep_ns, &dep_name).cloned() {
                    let old = dep.clone();
                    if let Some(refs) = meta_mut(&mut dep)
                        .and_then(|m| m.get_mut("ownerReferences"))
                        .and_then(Value::as_array_mut)
                    {
                        refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(uid.as_str()));
                    }
                    self.commit(
                        &dep_resource,
                        &dep_ns,
                        &dep_name,
                        Some(dep),
                        Some(old),
                        EventType::Modified,
                    );
                }
            }
        }
        let is_namespace = resource.group.is_empty() && resource.plural == "namespaces";
        let mut pending = finalizers(&current);
        let has_dependents = !self.dependents(&uid).is_empty();
        if propagation == Propagation::Foreground
            && has_dependents
            && !pending.iter().any(|f| f == "foregroundDeletion")
        {
            pending.push("foregroundDeletion".into());
        }
        let namespace_busy = is_namespace && self.namespace_has_content(name);
        if pending.is_empty() && !namespace_busy {
            let removed = self.commit(resource, namespace, name, None, Some(current), EventType::Deleted);
            self.after_removal(resource, &removed);
            return Ok((removed, true));
        }
        let mut marked = current.clone();
        if let Some(m) = meta_mut(&mut marked) {
            if !m.contains_key("deletionTimestamp") {
                m.insert("deletionTimestamp".into(), json!(now_rfc3339()));
                m.insert("deletionGracePeriodSeconds".into(), json!(0));
            }
            if !pending.is_empty() {
                m.insert("finalizers".into(), json!(pending));
            }
        }
        if is_namespace && let Some(map) = marked.as_object_mut() {
            map.insert("status".into(), json!({"phase": "Terminating"}));
        }
        let stored = if !same_object(&marked, &current) {
            self.commit(
                resource,
                namespace,
                name,
                Some(marked),
                Some(current),
                EventType::Modified,
            )
        } else {
            current
        };
        if propagation == Propagation::Foreground {
            for (dep_resource, dep_ns, dep_name) in self.dependents(&uid) {
                let _ = self.delete_internal(&dep_resource, &dep_ns, &dep_name, Some(Propagation::Background));
            }
            self.check_foreground(&uid);
        }
        if is_namespace {
            let mut contents = Vec::new();
            for (res, objects) in &self.objects {
                for (ns, obj_name) in objects.keys() {
                    if ns == name {
                        contents.push((res.clone(), ns.clone(), obj_name.clone()));
                    }
                }
            }
            for (res, ns, obj_name) in contents {
                let _ = self.delete_internal(&res, &ns, &obj_name, Some(Propagation::Background));
            }
            self.check_namespace_done(name);
        }
        let gone = self.get(resource, namespace, name).is_none();
        Ok((self.get(resource, namespace, name).cloned().unwrap_or(stored), gone))
    }

    fn namespace_has_content(&self, namespace: &str) -> bool {
        self.objects
            .values()
            .any(|objects| objects.keys().any(|(ns, _)| ns == namespace))
    }

    fn check_namespace_done(&mut self, namespace: &str) {
        let resource = GroupResource::new("", "namespaces");
        let Some(ns) = self.get(&resource, "", namespace).cloned() else {
            return;
        };
        if meta_str(&ns, "deletionTimestamp").is_some()
            && finalizers(&ns).is_empty()
            && !self.namespace_has_content(namespace)
        {
            let removed = self.commit(&resource, "", namespace, None, Some(ns), EventType::Deleted);
            self.after_removal(&resource, &removed);
        }
    }

    /// Removes the `foregroundDeletion` finalizer of an owner whose dependents are all gone.
    fn check_foreground(&mut self, owner_uid: &str) {
        let mut owner = None;
        for (resource, objects) in &self.objects {
            for ((ns, name), object) in objects {
                if meta_str(object, "uid") == Some(owner_uid) {
                    owner = Some((resource.clone(), ns.clone(), name.clone(), object.clone()));
                }
            }
        }
        let Some((resource, ns, name, object)) = owner else {
            return;
        };
        if meta_str(&object, "deletionTimestamp").is_none()
            || !finalizers(&object).iter().any(|f| f == "foregroundDeletion")
            || !self.dependents(owner_uid).is_empty()
        {
            return;
        }
        let mut updated = object.clone();
        let remaining: Vec<String> = finalizers(&object)
            .into_iter()
            .filter(|f| f != "foregroundDeletion")
            .collect();
        if let Some(m) = meta_mut(&mut updated) {
            if remaining.is_empty() {
                m.remove("finalizers");
            } else {
                m.insert("finalizers".into(), json!(remaining));
            }
        }
        if remaining.is_empty() {
            let removed = self.commit(&resource, &ns, &name, None, Some(updated), EventType::Deleted);
            self.after_removal(&resource, &removed);
        } else {
            self.commit(&resource, &ns, &name, Some(updated), Some(object), EventType::Modified);
        }
    }

    /// Garbage collection and lifecycle after an object is gone for good.
    fn after_removal(&mut self, resource: &GroupResource, removed: &Value) {
        let uid = meta_str(removed, "uid").unwrap_or_default().to_string();
        // Background collection: dependents whose every owner is gone are deleted.
        for (dep_resource, dep_ns, dep_name) in self.dependents(&uid) {
            let Some(dep) = self.get(&dep_resource, &dep_ns, &dep_name).cloned() else {
                continue;
            };
            let other_owner_alive = owner_uids(&dep).iter().any(|u| *u != uid && self.uid_exists(u));
            if other_owner_alive {
                let mut updated = dep.clone();
                if let Some(refs) = meta_mut(&mut updated)
                    .and_then(|m| m.get_mut("ownerReferences"))
                    .and_then(Value::as_array_mut)
                {
                    refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(uid.as_str()));
                }
                self.commit(
                    &dep_resource,
                    &dep_ns,
                    &dep_name,
                    Some(updated),
                    Some(dep),
                    EventType::Modified,
                );
            } else if meta_str(&dep, "deletionTimestamp").is_none() {
                let _ = self.delete_internal(&dep_resource, &dep_ns, &dep_name, Some(Propagation::Background));
            }
        }
        // Foreground owners waiting on this object.
        for owner in owner_uids(removed) {
            self.check_foreground(&owner);
        }
        let namespace = meta_str(removed, "namespace").unwrap_or_default().to_string();
        if !namespace.is_empty() {
            self.check_namespace_done(&namespace);
        }
        if resource.group == "apiextensions.k8s.io" && resource.plural == "customresourcedefinitions" {
            let group = removed
                .pointer("/spec/group")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let plural = removed
                .pointer("/spec/names/plural")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let defined = GroupResource::new(group, plural);
            let keys: Vec<Key> = self
                .objects
                .get(&defined)
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default();
            for (ns, name) in keys {
                if let Some(obj) = self.get(&defined, &ns, &name).cloned() {
                    self.commit(&defined, &ns, &name, None, Some(obj), EventType::Deleted);
                }
            }
            self.registry.remove(group, plural);
        }
    }

    /// Registers the resource type of a stored CRD and marks it Established/NamesAccepted.
    fn establish_crd(&mut self, crd: &Value) -> Result<Value, ApiError> {
        let info = resource_from_crd(crd)?;
        let name = meta_str(crd, "name").unwrap_or_default().to_string();
        let generation = meta(crd).and_then(|m| m.get("generation")).cloned().unwrap_or(json!(1));
        self.registry.upsert(info);
        let now = now_rfc3339();
        let condition = |kind: &str, reason: &str, message: &str| json!({"type": kind, "status": "True", "lastTransitionTime": now, "reason": reason, "message": message, "observedGeneration": generation});
        let mut names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
        if let Some(n) = names.as_object_mut()
            && !n.contains_key("singular")
            && let Some(kind) = crd.pointer("/spec/names/kind").and_then(Value::as_str)
        {
            n.insert("singular".into(), json!(kind.to_lowercase()));
        }
        let storage: Vec<Value> = crd
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .map(|vs| {
                vs.iter()
                    .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                    .filter_map(|v| v.get("name").cloned())
                    .collect()
            })
            .unwrap_or_default();
        let status = json!({
            "conditions": [
                condition("NamesAccepted", "NoConflicts", "no conflicts found"),
                condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
            ],
            "acceptedNames": names,
            "storedVersions": storage,
        });
        if crd.get("status").and_then(|s| s.get("acceptedNames")) == status.get("acceptedNames")
            && crd.pointer("/status/conditions").is_some()
        {
            return Ok(crd.clone());
        }
        let mut updated = crd.clone();
        if let Some(map) = updated.as_object_mut() {
            map.insert("status".into(), status);
        }
        let resource = GroupResource::new("apiextensions.k8s.io", "customresourcedefinitions");
        Ok(self.commit(
            &resource,
            "",
            &name,
            Some(updated),
            Some(crd.clone()),
            EventType::Modified,
        ))
    }

    /// Every namespace/name of a resource type (used by deletecollection).
    pub fn keys(&self, resource: &GroupResource) -> Vec<(String, String)> {
        self.objects
            .get(resource)
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The object with this uid, if any.
    pub fn find_uid(&self, uid: &str) -> Option<(GroupResource, Value)> {
        self.objects.iter().find_map(|(resource, objects)| {
            objects
                .values()
                .find(|o| meta_str(o, "uid") == Some(uid))
                .map(|o| (resource.clone(), o.clone()))
        })
    }
}

/// Whether objects of this kind carry `metadata.generation` (custom resources and kinds with a spec that a
/// controller observes).
fn has_generation(info: &ResourceInfo) -> bool {
    info.custom
        || matches!(
            (info.group.as_str(), info.plural.as_str()),
            ("apps", _) | ("policy", _) | ("apiextensions.k8s.io", _) | ("", "pods")
        )
}

/// Turns a stored object into its served form: the requested apiVersion (CRD conversion `None`), and for
/// `events.k8s.io` the field names of that API.
pub fn convert_object(info: &ResourceInfo, version: &str, object: Value) -> Value {
    let mut object = if info.is_event_alias() {
        super::events::to_events_v1(object)
    } else {
        object
    };
    if let Some(map) = object.as_object_mut() {
        map.insert("apiVersion".into(), json!(info.api_version(version)));
        map.insert("kind".into(), json!(info.kind));
    }
    object
}

/// Turns a served-form object into its stored form (only events differ).
fn to_storage(info: &ResourceInfo, object: Value) -> Value {
    if info.is_event_alias() {
        super::events::to_core(object)
    } else {
        object
    }
}

fn stale(info: &ResourceInfo, name: &str) -> ApiError {
    ApiError::Conflict {
        resource: info.group_resource().qualified(),
        name: name.to_string(),
        message: format!(
            "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
            info.group_resource().qualified()
        ),
        causes: Vec::new(),
    }
}

/// Moves Secret `stringData` into base64 `data`, as the API server does on write.
fn convert_string_data(object: &mut Value) {
    let Some(map) = object.as_object_mut() else {
        return;
    };
    let Some(Value::Object(string_data)) = map.remove("stringData") else {
        return;
    };
    let data = map.entry("data").or_insert_with(|| Value::Object(Map::new()));
    if !data.is_object() {
        *data = Value::Object(Map::new());
    }
    if let Some(data) = data.as_object_mut() {
        for (k, v) in string_data {
            let text = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
            data.insert(k, json!(base64::engine::general_purpose::STANDARD.encode(text)));
        }
    }
}

/// Defaults the built-in kinds get on create (phases, cluster IPs, StatefulSet defaults, Secret type).
fn default_builtin(info: &ResourceInfo, object: &mut Value, uid: &str) {
    let Some(map) = object.as_object_mut() else {
        return;
    };
    match (info.group.as_str(), info.plural.as_str()) {
        ("", "namespaces") => {
            map.insert("status".into(), json!({"phase": "Active"}));
            map.entry("spec")
                .or_insert_with(|| json!({"finalizers": ["kubernetes"]}));
        }
        ("", "pods") => {
            map.entry("status")
                .or_insert_with(|| json!({"phase": "Pending", "qosClass": "BestEffort"}));
        }
        ("", "secrets") => {
            map.entry("type").or_insert_with(|| json!("Opaque"));
        }
        ("", "services") => {
            let spec = map.entry("spec").or_insert_with(|| json!({}));
            if let Some(spec) = spec.as_object_mut() {
                spec.entry("type").or_insert_with(|| json!("ClusterIP"));
                let external = spec.get("type").and_then(Value::as_str) == Some("ExternalName");
                if !external && !spec.contains_key("clusterIP") {
                    let bytes = uid.as_bytes();
                    let ip = format!("10.96.{}.{}", bytes[0] % 250 + 1, bytes[1] % 250 + 1);
                    spec.insert("clusterIP".into(), json!(ip));
                    spec.insert("clusterIPs".into(), json!([ip]));
                }
                spec.entry("sessionAffinity").or_insert_with(|| json!("None"));
                spec.entry("ipFamilies").or_insert_with(|| json!(["IPv4"]));
                spec.entry("ipFamilyPolicy").or_insert_with(|| json!("SingleStack"));
                spec.entry("internalTrafficPolicy").or_insert_with(|| json!("Cluster"));
                if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                    for port in ports.iter_mut().filter_map(Value::as_object_mut) {
                        port.entry("protocol").or_insert_with(|| json!("TCP"));
                        if let Some(number) = port.get("port").cloned() {
                            port.entry("targetPort").or_insert(number);
                        }
                    }
                }
            }
            map.entry("status").or_insert_with(|| json!({"loadBalancer": {}}));
        }
        ("apps", "statefulsets") => {
            let spec = map.entry("spec").or_insert_with(|| json!({}));
            if let Some(spec) = spec.as_object_mut() {
                spec.entry("replicas").or_insert_with(|| json!(1));
                spec.entry("podManagementPolicy")
                    .or_insert_with(|| json!("OrderedReady"));
                spec.entry("updateStrategy")
                    .or_insert_with(|| json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}));
                spec.entry("revisionHistoryLimit").or_insert_with(|| json!(10));
            }
        }
        _ => {}
    }
}
