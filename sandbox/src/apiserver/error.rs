//! Errors of the sandbox API server: every failed request becomes a Kubernetes `Status` body with the code and
//! reason a real API server would send, and start-up failures get their own enum.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One field-level cause of an `Invalid` (422) or `BadRequest` answer, as in `Status.details.causes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// The machine-readable reason, e.g. `FieldValueInvalid`, `FieldValueRequired`.
    pub reason: String,
    /// The human-readable message, e.g. `Invalid value: "x": must be of type integer`.
    pub message: String,
    /// The path of the offending field, e.g. `spec.replicas`.
    pub field: String,
}

/// A failed API request, rendered as a Kubernetes `Status`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// The request itself is malformed (body, query, selector).
    #[error("{message}")]
    BadRequest {
        /// What is wrong with the request.
        message: String,
    },
    /// The addressed object or resource does not exist.
    #[error("{resource} \"{name}\" not found")]
    NotFound {
        /// The group-qualified resource, e.g. `pods` or `redisdbs.example.com`.
        resource: String,
        /// The object's name (empty for a missing resource type).
        name: String,
    },
    /// No resource type matches the request path.
    #[error("the server could not find the requested resource ({path})")]
    UnknownPath {
        /// The request path.
        path: String,
    },
    /// Creating an object that already exists.
    #[error("{resource} \"{name}\" already exists")]
    AlreadyExists {
        /// The group-qualified resource.
        resource: String,
        /// The object's name.
        name: String,
    },
    /// An update based on a stale resourceVersion, a failed precondition or an SSA conflict.
    #[error("{message}")]
    Conflict {
        /// The group-qualified resource.
        resource: String,
        /// The object's name.
        name: String,
        /// What conflicted.
        message: String,
        /// Field-level causes (SSA conflicts).
        causes: Vec<Cause>,
    },
    /// The object violates its schema or metadata rules.
    #[error("{} \"{name}\" is invalid: {summary}", qualified_kind(kind, group))]
    Invalid {
        /// The object's kind.
        kind: String,
        /// The object's API group (empty for core).
        group: String,
        /// The object's name.
        name: String,
        /// All violations joined, as kube-apiserver prints them.
        summary: String,
        /// Each violation.
        causes: Vec<Cause>,
    },
    /// A watch asked for a resourceVersion older than the kept history.
    #[error("too old resource version: {requested} ({oldest})")]
    Gone {
        /// The requested resourceVersion.
        requested: u64,
        /// The oldest resourceVersion still in history.
        oldest: u64,
    },
    /// The verb is not allowed on this resource.
    #[error("{message}")]
    MethodNotAllowed {
        /// Which verb on which resource.
        message: String,
    },
    /// The request body has a content type this endpoint does not accept.
    #[error("the body of the request was in an unknown format - accepted media types include: {accepted}")]
    UnsupportedMediaType {
        /// The media types this endpoint accepts.
        accepted: String,
    },
    /// The request is valid Kubernetes but the sandbox does not implement it.
    #[error("the sandbox API server does not implement {what}")]
    NotImplemented {
        /// What was asked for.
        what: String,
    },
    /// The namespace is being deleted.
    #[error("{message}")]
    Forbidden {
        /// Why the request is refused.
        message: String,
    },
    /// A failure injected by a test through the fault handle.
    #[error("injected failure: {message}")]
    Injected {
        /// The HTTP status to answer with.
        code: u16,
        /// The message to put in the Status body.
        message: String,
    },
    /// A bug or an unexpected state inside the sandbox.
    #[error("internal error: {message}")]
    Internal {
        /// What went wrong.
        message: String,
    },
}

impl ApiError {
    /// Shorthand for a `BadRequest` with a message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            message: message.into(),
        }
    }

    /// A stable category (the variant name), for logs and metric labels.
    pub fn category(&self) -> &'static str {
        match self {
            ApiError::BadRequest { .. } => "BadRequest",
            ApiError::NotFound { .. } => "NotFound",
            ApiError::UnknownPath { .. } => "UnknownPath",
            ApiError::AlreadyExists { .. } => "AlreadyExists",
            ApiError::Conflict { .. } => "Conflict",
            ApiError::Invalid { .. } => "Invalid",
            ApiError::Gone { .. } => "Gone",
            ApiError::MethodNotAllowed { .. } => "MethodNotAllowed",
            ApiError::UnsupportedMediaType { .. } => "UnsupportedMediaType",
            ApiError::NotImplemented { .. } => "NotImplemented",
            ApiError::Forbidden { .. } => "Forbidden",
            ApiError::Injected { .. } => "Injected",
            ApiError::Internal { .. } => "Internal",
        }
    }

    /// The HTTP status code of this error.
    pub fn code(&self) -> u16 {
        match self {
            ApiError::BadRequest { .. } => 400,
            ApiError::NotFound { .. } | ApiError::UnknownPath { .. } => 404,
            ApiError::AlreadyExists { .. } | ApiError::Conflict { .. } => 409,
            ApiError::Invalid { .. } => 422,
            ApiError::Gone { .. } => 410,
            ApiError::MethodNotAllowed { .. } => 405,
            ApiError::UnsupportedMediaType { .. } => 415,
            ApiError::NotImplemented { .. } => 501,
            ApiError::Forbidden { .. } => 403,
            ApiError::Injected { code, .. } => *code,
            ApiError::Internal { .. } => 500,
        }
    }

    /// The `Status.reason` of this error, the variant's stable category.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::BadRequest { .. } => "BadRequest",
            ApiError::NotFound { .. } | ApiError::UnknownPath { .. } => "NotFound",
            ApiError::AlreadyExists { .. } => "AlreadyExists",
            ApiError::Conflict { .. } => "Conflict",
            ApiError::Invalid { .. } => "Invalid",
            ApiError::Gone { .. } => "Expired",
            ApiError::MethodNotAllowed { .. } => "MethodNotAllowed",
            ApiError::UnsupportedMediaType { .. } => "UnsupportedMediaType",
            ApiError::NotImplemented { .. } => "NotImplemented",
            ApiError::Forbidden { .. } => "Forbidden",
            ApiError::Injected { code, .. } => reason_for_code(*code),
            ApiError::Internal { .. } => "InternalError",
        }
    }

    /// The Kubernetes `Status` object describing this error.
    pub fn to_status(&self) -> Value {
        let mut details = serde_json::Map::new();
        match self {
            ApiError::NotFound { resource, name } | ApiError::AlreadyExists { resource, name } => {
                let (kind, group) = split_resource(resource);
                details.insert("name".into(), json!(name));
                details.insert("group".into(), json!(group));
                details.insert("kind".into(), json!(kind));
            }
            ApiError::Conflict {
                resource, name, causes, ..
            } => {
                let (kind, group) = split_resource(resource);
                details.insert("name".into(), json!(name));
                details.insert("group".into(), json!(group));
                details.insert("kind".into(), json!(kind));
                if !causes.is_empty() {
                    details.insert("causes".into(), causes_json(causes));
                }
            }
            ApiError::Invalid {
                kind,
                group,
                name,
                causes,
                ..
            } => {
                details.insert("name".into(), json!(name));
                details.insert("group".into(), json!(group));
                details.insert("kind".into(), json!(kind));
                details.insert("causes".into(), causes_json(causes));
            }
            _ => {}
        }
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code(),
        });
        if !details.is_empty()
            && let Some(map) = status.as_object_mut()
        {
            map.insert("details".into(), Value::Object(details));
        }
        status
    }
}

/// A kind with its group as kube-apiserver prints it (`Service`, `StatefulSet.apps`).
fn qualified_kind(kind: &str, group: &str) -> String {
    if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    }
}

fn causes_json(causes: &[Cause]) -> Value {
    Value::Array(
        causes
            .iter()
            .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
            .collect(),
    )
}

/// Splits `redisdbs.example.com` into (`redisdbs`, `example.com`).
fn split_resource(resource: &str) -> (&str, &str) {
    match resource.split_once('.') {
        Some((plural, group)) => (plural, group),
        None => (resource, ""),
    }
}

/// The `Status.reason` a real API server uses for an HTTP code.
pub fn reason_for_code(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        410 => "Expired",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = self.to_status().to_string();
        (code, [(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}

/// Failures to start or drive the sandbox API server itself (not request failures).
#[derive(Debug, thiserror::Error)]
pub enum ApiServerError {
    /// The loopback listener could not be bound.
    #[error("failed to bind the sandbox API server to {address}: {source}")]
    Bind {
        /// The address tried.
        address: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A CRD given at start could not be installed.
    #[error("failed to install CRD {name} at start: {source}")]
    InstallCrd {
        /// The CRD's name.
        name: String,
        /// Why it was refused.
        source: Box<ApiError>,
    },
    /// A CRD given at start could not be serialized.
    #[error("failed to serialize CRD {name}: {source}")]
    SerializeCrd {
        /// The CRD's name.
        name: String,
        /// The serde error.
        source: serde_json::Error,
    },
    /// The kubeconfig file could not be written.
    #[error("failed to write kubeconfig {path}: {source}")]
    WriteKubeconfig {
        /// The file path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The server URL could not be turned into a kube client config.
    #[error("failed to build a kube client config for {url}: {message}")]
    ClientConfig {
        /// The server URL.
        url: String,
        /// Why.
        message: String,
    },
    /// The HTTPS certificates or configuration could not be made.
    #[error("failed to make {what}: {message}")]
    Tls {
        /// What was being made.
        what: String,
        /// Why.
        message: String,
    },
    /// A ServiceAccount token could not be issued.
    #[error("failed to issue a token for ServiceAccount {namespace}/{name}: {source}")]
    IssueToken {
        /// The ServiceAccount's namespace.
        namespace: String,
        /// The ServiceAccount's name.
        name: String,
        /// Why.
        source: Box<ApiError>,
    },
}

impl ApiServerError {
    /// A stable category name (the variant name) for events and metrics.
    pub fn category(&self) -> &'static str {
        match self {
            ApiServerError::Bind { .. } => "Bind",
            ApiServerError::InstallCrd { .. } => "InstallCrd",
            ApiServerError::SerializeCrd { .. } => "SerializeCrd",
            ApiServerError::WriteKubeconfig { .. } => "WriteKubeconfig",
            ApiServerError::ClientConfig { .. } => "ClientConfig",
            ApiServerError::Tls { .. } => "Tls",
            ApiServerError::IssueToken { .. } => "IssueToken",
        }
    }
}
