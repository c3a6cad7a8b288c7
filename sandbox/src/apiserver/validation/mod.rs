//! Validation of built-in kinds as kube-apiserver does it on create and update: `ValidateObjectMeta` for every
//! object, per-kind name rules and the per-kind rules of the kinds the agent writes (StatefulSet, Service, Secret,
//! ConfigMap, EndpointSlice, PersistentVolumeClaim, Event), plus the normalisation the real server does on decode
//! (quantities in canonical form, allocated Service IPs kept). It reads the stored object only to compare; it may
//! not write to the store.

mod endpointslice;
mod events;
pub mod names;
mod objectmeta;
pub mod quantity;
mod secret;
mod service;
mod statefulset;
mod storage;

use serde_json::Value;

use super::error::{ApiError, Cause};
use super::resources::ResourceInfo;

/// One field error, as apimachinery's `field.Error`: a type, the field path, the offending value and a detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    kind: ErrorKind,
    field: String,
    value: Option<String>,
    detail: String,
}

/// The `field.ErrorType`s the rules here use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorKind {
    Invalid,
    Required,
    Forbidden,
    TooLong,
    TooMany,
    NotSupported,
    Duplicate,
}

impl FieldError {
    /// `field.Invalid`: `<field>: Invalid value: <value>: <detail>`; `value` is already rendered (strings quoted).
    pub fn invalid(field: impl Into<String>, value: impl Into<String>, detail: impl Into<String>) -> Self {
        FieldError {
            kind: ErrorKind::Invalid,
            field: field.into(),
            value: Some(value.into()),
            detail: detail.into(),
        }
    }

    /// `field.Required`: `<field>: Required value[: <detail>]`.
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        FieldError {
            kind: ErrorKind::Required,
            field: field.into(),
            value: None,
            detail: detail.into(),
        }
    }

    /// `field.Forbidden`: `<field>: Forbidden: <detail>`.
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        FieldError {
            kind: ErrorKind::Forbidden,
            field: field.into(),
            value: None,
            detail: detail.into(),
        }
    }

    /// `field.TooLong`: `<field>: Too long: may not be more than <limit> bytes`.
    pub fn too_long(field: impl Into<String>, limit: usize) -> Self {
        FieldError {
            kind: ErrorKind::TooLong,
            field: field.into(),
            value: None,
            detail: format!("may not be more than {limit} bytes"),
        }
    }

    /// `field.TooMany`: `<field>: Too many: <count>: must have at most <limit> items`.
    pub fn too_many(field: impl Into<String>, count: usize, limit: usize) -> Self {
        FieldError {
            kind: ErrorKind::TooMany,
            field: field.into(),
            value: Some(count.to_string()),
            detail: format!("must have at most {limit} items"),
        }
    }

    /// `field.NotSupported`: `<field>: Unsupported value: "<v>": supported values: "a", "b"`.
    pub fn not_supported(field: impl Into<String>, value: &str, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
        FieldError {
            kind: ErrorKind::NotSupported,
            field: field.into(),
            value: Some(quote(value)),
            detail: format!("supported values: {}", list.join(", ")),
        }
    }

    /// `field.Duplicate`: `<field>: Duplicate value: <value>`.
    pub fn duplicate(field: impl Into<String>, value: impl Into<String>) -> Self {
        FieldError {
            kind: ErrorKind::Duplicate,
            field: field.into(),
            value: Some(value.into()),
            detail: String::new(),
        }
    }

    /// The message part of the cause (without the field), as `Status.details.causes[].message` carries it.
    pub fn message(&self) -> String {
        let with_detail = |head: String| {
            if self.detail.is_empty() {
                head
            } else {
                format!("{head}: {}", self.detail)
            }
        };
        let value = self.value.clone().unwrap_or_default();
        match self.kind {
            ErrorKind::Invalid => with_detail(format!("Invalid value: {value}")),
            ErrorKind::Required => with_detail("Required value".into()),
            ErrorKind::Forbidden => with_detail("Forbidden".into()),
            ErrorKind::TooLong => with_detail("Too long".into()),
            ErrorKind::TooMany => with_detail(format!("Too many: {value}")),
            ErrorKind::NotSupported => with_detail(format!("Unsupported value: {value}")),
            ErrorKind::Duplicate => format!("Duplicate value: {value}"),
        }
    }

    /// The `details.causes[].reason` of this error type.
    pub fn reason(&self) -> &'static str {
        match self.kind {
            ErrorKind::Invalid => "FieldValueInvalid",
            ErrorKind::Required => "FieldValueRequired",
            ErrorKind::Forbidden => "FieldValueForbidden",
            ErrorKind::TooLong => "FieldValueTooLong",
            ErrorKind::TooMany => "FieldValueTooMany",
            ErrorKind::NotSupported => "FieldValueNotSupported",
            ErrorKind::Duplicate => "FieldValueDuplicate",
        }
    }

    /// The field path, e.g. `metadata.labels`.
    pub fn field(&self) -> &str {
        &self.field
    }
}

/// A string value as `field.Invalid` prints it: in double quotes, with quotes and backslashes escaped.
pub fn quote(value: &str) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| format!("\"{value}\""))
}

/// The 422 `Invalid` error for a list of field errors, worded as kube-apiserver words it.
pub fn invalid(info: &ResourceInfo, name: &str, errors: &[FieldError]) -> ApiError {
    let causes: Vec<Cause> = errors
        .iter()
        .map(|e| Cause {
            reason: e.reason().into(),
            message: e.message(),
            field: e.field.clone(),
        })
        .collect();
    let parts: Vec<String> = causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect();
    let summary = if parts.len() == 1 {
        parts[0].clone()
    } else {
        format!("[{}]", parts.join(", "))
    };
    ApiError::Invalid {
        kind: info.kind.clone(),
        group: info.group.clone(),
        name: name.to_string(),
        summary,
        causes,
    }
}

/// What kind of write is being admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write<'a> {
    /// A new object.
    Create,
    /// A change of the main resource; holds the stored object.
    Update(&'a Value),
    /// A change through the `/status` subresource; holds the stored object.
    Status(&'a Value),
}

/// Normalises and validates a new object version of a built-in kind, as the real server does after decoding and
/// defaulting: quantities become canonical, a Service keeps its allocated IPs, then every rule of the kind runs.
/// `version` is the API version of the request (events differ between `v1` and `events.k8s.io/v1`). Custom
/// resources get only the metadata rules (their schema was checked before).
pub fn admit(info: &ResourceInfo, version: &str, object: &mut Value, write: Write<'_>) -> Result<(), ApiError> {
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut errors = Vec::new();
    if !info.custom {
        quantity::canonicalize_object(info, object).map_err(ApiError::bad_request)?;
        if info.group.is_empty()
            && info.plural == "secrets"
            && let Some(map) = object.as_object_mut()
            && map.get("type").is_none_or(|t| t.is_null() || t.as_str() == Some(""))
        {
            // SetDefaults_Secret runs on every decode, so an update without `type` keeps `Opaque`.
            map.insert("type".into(), Value::from("Opaque"));
        }
        if let (Write::Update(old), ("", "services")) = (write, (info.group.as_str(), info.plural.as_str())) {
            service::keep_allocated(object, old);
        }
    }
    let old = match write {
        Write::Create => None,
        Write::Update(old) | Write::Status(old) => Some(old),
    };
    objectmeta::validate(info, object, old, &mut errors);
    let stored = info.storage_resource();
    if !info.custom {
        match (stored.group.as_str(), stored.plural.as_str()) {
            ("apps", "statefulsets") => statefulset::validate(object, write, &mut errors),
            ("", "services") => service::validate(object, old, &mut errors),
            ("", "secrets") => secret::validate_secret(object, old, &mut errors),
            ("", "configmaps") => secret::validate_configmap(object, old, &mut errors),
            ("", "persistentvolumeclaims") => storage::validate_claim(object, write, &mut errors),
            ("discovery.k8s.io", "endpointslices") => endpointslice::validate(object, &mut errors),
            ("", "events") if write == Write::Create => {
                events::validate_create(object, info.is_event_alias(), version, &mut errors)
            }
            _ => {}
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(invalid(info, &name, &errors))
    }
}

/// The string at a JSON pointer, or "".
fn text<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
}

/// The `Status` a registry store without `ReturnDeletedObject` (custom resources) answers for an object deleted
/// at once: Success, with the name, group, plural resource (in `kind`, as Kubernetes puts it) and uid.
pub fn deleted_status(info: &ResourceInfo, object: &Value) -> Value {
    let mut details = serde_json::Map::new();
    details.insert("name".into(), Value::from(text(object, "/metadata/name")));
    if !info.group.is_empty() {
        details.insert("group".into(), Value::from(info.group.clone()));
    }
    details.insert("kind".into(), Value::from(info.plural.clone()));
    details.insert("uid".into(), Value::from(text(object, "/metadata/uid")));
    serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
        "details": Value::Object(details)})
}
