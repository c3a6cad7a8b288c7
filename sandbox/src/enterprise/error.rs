//! Errors of the Redis Enterprise emulator: [`EmulatorError`] for the embedding code (starting the
//! emulator, adding nodes, managing processes) and [`ApiError`], the REST error answer
//! (`{"error_code": ..., "description": ...}` with an HTTP status) that clients see.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A failure of the emulator itself (not of a REST request).
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// The emulator's working directory could not be prepared.
    #[error("failed to prepare the emulator work directory {path}: {source}")]
    WorkDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// redis-server cannot be run (not installed?).
    #[error("unable to use redis-server for the emulated databases: {source}")]
    RedisServer {
        /// The process error (it says how to install redis-server).
        source: super::process::ProcessError,
    },
    /// The self-signed CA or a server certificate could not be generated.
    #[error("failed to generate the {what} certificate: {source}")]
    Certificate {
        /// Which certificate (CA or the node it was for).
        what: String,
        /// The generator's error.
        source: rcgen::Error,
    },
    /// rustls refused the generated certificate.
    #[error("failed to build the TLS configuration for {what}: {source}")]
    TlsConfig {
        /// Which listener.
        what: String,
        /// The rustls error.
        source: rustls::Error,
    },
    /// No free loopback address could be bound.
    #[error("unable to find a free loopback address for {what} after {attempts} attempts: {last_error}")]
    NoFreeAddress {
        /// What the address was for.
        what: String,
        /// How many addresses were tried.
        attempts: usize,
        /// The last bind error.
        last_error: std::io::Error,
    },
    /// A listener could not be bound.
    #[error("failed to listen on {addr} for {what}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What it was for.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A method that starts listeners was called outside a tokio runtime.
    #[error("unable to {what}: the emulator must be driven from inside a tokio runtime")]
    NoRuntime {
        /// What was being done.
        what: String,
    },
    /// The cluster key names no cluster.
    #[error("unknown cluster {namespace}/{name}")]
    UnknownCluster {
        /// The REC namespace.
        namespace: String,
        /// The REC name.
        name: String,
    },
    /// A cluster with that key already exists.
    #[error("cluster {namespace}/{name} already exists")]
    ClusterExists {
        /// The REC namespace.
        namespace: String,
        /// The REC name.
        name: String,
    },
    /// The pod is already a node of the cluster and is running.
    #[error("pod {pod} of cluster {cluster} is already running as a node")]
    NodeExists {
        /// The cluster (namespace/name).
        cluster: String,
        /// The pod name.
        pod: String,
    },
    /// The pod is not a running node of the cluster.
    #[error("pod {pod} is not a running node of cluster {cluster}")]
    UnknownNode {
        /// The cluster (namespace/name).
        cluster: String,
        /// The pod name.
        pod: String,
    },
    /// The bdb does not exist.
    #[error("database {uid} does not exist in cluster {cluster}")]
    UnknownDatabase {
        /// The cluster (namespace/name).
        cluster: String,
        /// The bdb uid.
        uid: u64,
    },
    /// The bdb has no running redis-server process.
    #[error("database {uid} of cluster {cluster} has no running process")]
    NoProcess {
        /// The cluster (namespace/name).
        cluster: String,
        /// The bdb uid.
        uid: u64,
    },
    /// A signal could not be sent to a process.
    #[error("failed to signal redis-server process {pid}: {source}")]
    Signal {
        /// The process id.
        pid: u32,
        /// The OS error.
        source: std::io::Error,
    },
    /// A name to register is not a valid DNS name.
    #[error("unable to register name {name:?} for {ip}: not a DNS name")]
    InvalidName {
        /// The name.
        name: String,
        /// The address it was for.
        ip: IpAddr,
    },
}

impl EmulatorError {
    /// A stable category (the variant name), for logs and metric labels.
    pub fn category(&self) -> &'static str {
        match self {
            Self::WorkDir { .. } => "WorkDir",
            Self::RedisServer { .. } => "RedisServer",
            Self::Certificate { .. } => "Certificate",
            Self::TlsConfig { .. } => "TlsConfig",
            Self::NoFreeAddress { .. } => "NoFreeAddress",
            Self::Bind { .. } => "Bind",
            Self::NoRuntime { .. } => "NoRuntime",
            Self::UnknownCluster { .. } => "UnknownCluster",
            Self::ClusterExists { .. } => "ClusterExists",
            Self::NodeExists { .. } => "NodeExists",
            Self::UnknownNode { .. } => "UnknownNode",
            Self::UnknownDatabase { .. } => "UnknownDatabase",
            Self::NoProcess { .. } => "NoProcess",
            Self::Signal { .. } => "Signal",
            Self::InvalidName { .. } => "InvalidName",
        }
    }
}

/// A REST error answer: HTTP status plus the documented body `{"error_code", "description"}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {error_code}: {description}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The machine-readable code (`missing_db_name`, `busy`, ...).
    pub error_code: String,
    /// The human-readable explanation.
    pub description: String,
}

impl ApiError {
    /// An error with any status and code.
    pub fn new(status: StatusCode, error_code: &str, description: impl Into<String>) -> Self {
        Self {
            status,
            error_code: error_code.to_string(),
            description: description.into(),
        }
    }

    /// 400: the body does not match the object's schema.
    pub fn invalid_schema(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_schema", description)
    }

    /// 406: the configuration is invalid (`error_code` names why).
    pub fn not_acceptable(error_code: &str, description: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_ACCEPTABLE, error_code, description)
    }

    /// 404: the object does not exist.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    /// 409 `busy`: another change is in progress; retry later.
    pub fn busy(description: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "busy", description)
    }

    /// 401: missing or wrong credentials.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong basic-auth credentials",
        )
    }

    /// 501: the emulator does not implement this request (names it).
    pub fn not_implemented(what: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::NOT_IMPLEMENTED,
            "not_implemented",
            format!("the Redis Enterprise emulator does not implement {what}"),
        )
    }

    /// 500: the emulator failed internally while serving the request.
    pub fn internal(description: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", description)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error_code": self.error_code, "description": self.description });
        (self.status, axum::Json(body)).into_response()
    }
}
