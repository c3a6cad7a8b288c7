//! Backup locations: `backup_location`/`export_location` objects and `dataset_import_sources` entries, checked as
//! the cluster checks them, and the stores behind them: a mount point (a directory on this machine, which every
//! emulated node sees), S3 at the cluster's `s3_url` (object_store), and SFTP (ssh2). Files are written under a
//! partial name and then renamed (S3 puts are atomic). This module reads, writes, lists and deletes files only; it
//! never touches bdb state. Secrets (keys, passwords) never appear in its errors.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};
use serde_json::Value;

use super::Failure;
use crate::enterprise::error::ApiError;

/// How long one SFTP or S3 connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where backup files go or come from.
#[derive(Debug, Clone)]
pub(crate) enum Location {
    /// A directory on this machine (`mount_point`, or a `file://` URL).
    Mount { dir: PathBuf },
    /// An S3 bucket (at the cluster's `s3_url` when set).
    S3 {
        bucket: String,
        subdir: String,
        region: Option<String>,
        access_key_id: String,
        secret_access_key: String,
    },
    /// A directory on an SFTP server.
    Sftp {
        user: String,
        password: Option<String>,
        host: String,
        port: u16,
        dir: String,
        key: Option<String>,
    },
}

/// One import source: a location and the file name in it.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub location: Location,
    pub filename: String,
}

/// The cluster-wide S3 settings (`PUT /v1/cluster {"s3_url", "s3_ca_cert"}`, `rladmin cluster config s3_url`).
#[derive(Debug, Clone, Default)]
pub(crate) struct S3Settings {
    /// The endpoint of an S3-compatible service; None: AWS.
    pub url: Option<String>,
    /// A CA certificate (PEM text, or the path of a PEM file) the endpoint's certificate chains to.
    pub ca_cert: Option<String>,
}

fn required<'a>(location: &'a Value, kind: &str, key: &str) -> Result<&'a str, ApiError> {
    match location.get(key) {
        Some(Value::String(text)) if !text.is_empty() => Ok(text),
        Some(other) if !other.is_string() => Err(ApiError::invalid_schema(format!(
            "field '{key}' of a {kind} location must be a string"
        ))),
        _ => Err(ApiError::invalid_schema(format!("a {kind} location needs '{key}'"))),
    }
}

fn optional<'a>(location: &'a Value, kind: &str, key: &str) -> Result<Option<&'a str>, ApiError> {
    match location.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.is_empty() => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(ApiError::invalid_schema(format!(
            "field '{key}' of a {kind} location must be a string"
        ))),
    }
}

fn absolute(path: &str) -> Result<PathBuf, ApiError> {
    let path = PathBuf::from(path);
    if !path.is_absolute() {
        return Err(ApiError::invalid_schema(format!(
            "location path {} must be absolute",
            path.display()
        )));
    }
    Ok(path)
}

/// Splits `sftp://user[:password]@host[:port]/path` into its parts.
fn parse_sftp_url(url: &str) -> Result<(String, Option<String>, String, u16, String), ApiError> {
    let invalid = || {
        ApiError::invalid_schema(
            "sftp_url must look like sftp://user[:password]@host[:port]/path/ (user and host required)",
        )
    };
    let rest = url.strip_prefix("sftp://").ok_or_else(invalid)?;
    let (authority, path) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, "/"),
    };
    let (credentials, host_port) = authority.rsplit_once('@').ok_or_else(invalid)?;
    let (user, password) = match credentials.split_once(':') {
        Some((user, password)) => (user, Some(password.to_string())),
        None => (credentials, None),
    };
    let (host, port) = match host_port.rsplit_once(':') {
        Some((host, port)) => (host, port.parse::<u16>().map_err(|_| invalid())?),
        None => (host_port, 22),
    };
    if user.is_empty() || host.is_empty() {
        return Err(invalid());
    }
    Ok((user.to_string(), password, host.to_string(), port, path.to_string()))
}

/// The file part and the directory part of a path (`/a/b/f.rdb` → (`/a/b/`, `f.rdb`)).
fn split_file(path: &str) -> Option<(String, String)> {
    let (dir, file) = path.rsplit_once('/')?;
    if file.is_empty() {
        return None;
    }
    Some((format!("{dir}/"), file.to_string()))
}

impl Location {
    /// Parses an export or backup location (a directory), checking its required keys.
    pub(crate) fn parse(location: &Value) -> Result<Location, ApiError> {
        if !location.is_object() {
            return Err(ApiError::invalid_schema("a location must be a JSON object"));
        }
        let kind = location
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::invalid_schema("the location needs a 'type'"))?;
        match kind {
            "mount_point" => Ok(Location::Mount {
                dir: absolute(required(location, kind, "path")?)?,
            }),
            "url" => {
                let url = required(location, kind, "url")?;
                match url.strip_prefix("file://") {
                    Some(path) => Ok(Location::Mount { dir: absolute(path)? }),
                    None => {
                        let scheme = url.split("://").next().unwrap_or(url);
                        Err(ApiError::not_implemented(format!(
                            "{scheme}:// url locations (the emulator writes file:// URLs, mount_point, s3 and sftp)"
                        )))
                    }
                }
            }
            "s3" => Ok(Location::S3 {
                bucket: required(location, kind, "bucket_name")?.to_string(),
                subdir: optional(location, kind, "subdir")?
                    .unwrap_or_default()
                    .trim_matches('/')
                    .to_string(),
                region: optional(location, kind, "region_name")?.map(str::to_string),
                access_key_id: required(location, kind, "access_key_id")?.to_string(),
                secret_access_key: required(location, kind, "secret_access_key")?.to_string(),
            }),
            "sftp" => {
                let (user, password, host, port, dir) = parse_sftp_url(required(location, kind, "sftp_url")?)?;
                Ok(Location::Sftp {
                    user,
                    password,
                    host,
                    port,
                    dir,
                    key: optional(location, kind, "key")?.map(str::to_string),
                })
            }
            "gs" | "abs" | "swift" => Err(ApiError::not_implemented(format!(
                "{kind} backup locations (the emulator has mount_point, s3, sftp and file:// URLs)"
            ))),
            other => Err(ApiError::invalid_schema(format!(
                "unknown location type {other:?} (url, sftp, s3, gs, abs, mount_point)"
            ))),
        }
    }

    /// Parses one `dataset_import_sources` entry: the location of a file.
    pub(crate) fn parse_source(source: &Value) -> Result<Source, ApiError> {
        let kind = source.get("type").and_then(Value::as_str).unwrap_or_default();
        let missing_file = || ApiError::invalid_schema(format!("the {kind} import source names no file"));
        match kind {
            "mount_point" | "url" => {
                let Location::Mount { dir } = Location::parse(source)? else {
                    return Err(ApiError::internal("a mount location parsed as another kind"));
                };
                let path = match source.get("filename").and_then(Value::as_str) {
                    Some(filename) => dir.join(filename),
                    None => dir,
                };
                let filename = path
                    .file_name()
                    .and_then(|name| name.to_str())
                    .ok_or_else(missing_file)?
                    .to_string();
                let dir = path.parent().map(Path::to_path_buf).ok_or_else(missing_file)?;
                Ok(Source {
                    location: Location::Mount { dir },
                    filename,
                })
            }
            "s3" => {
                let location = Location::parse(source)?;
                let filename = required(source, kind, "filename")?.to_string();
                Ok(Source { location, filename })
            }
            "sftp" => {
                let Location::Sftp {
                    user,
                    password,
                    host,
                    port,
                    dir,
                    key,
                } = Location::parse(source)?
                else {
                    return Err(ApiError::internal("an sftp location parsed as another kind"));
                };
                let (dir, filename) = split_file(&dir).ok_or_else(missing_file)?;
                Ok(Source {
                    location: Location::Sftp {
                        user,
                        password,
                        host,
                        port,
                        dir,
                        key,
                    },
                    filename,
                })
            }
            _ => Err(match Location::parse(source) {
                Err(error) => error,
                Ok(_) => ApiError::invalid_schema(format!("unknown import source type {kind:?}")),
            }),
        }
    }

    /// A description without secrets (for logs and error details).
    pub(crate) fn describe(&self) -> String {
        match self {
            Location::Mount { dir } => dir.display().to_string(),
            Location::S3 { bucket, subdir, .. } => format!("s3://{bucket}/{subdir}"),
            Location::Sftp {
                user, host, port, dir, ..
            } => format!("sftp://{user}@{host}:{port}{dir}"),
        }
    }

    /// Writes `data` as file `name`, under a partial name first. The reasons are the cluster's:
    /// `wrong-file-path` (no such directory or bucket), `no-permission`, `general-error`.
    pub(crate) async fn put(&self, s3: &S3Settings, name: &str, data: Vec<u8>) -> Result<(), Failure> {
        match self {
            Location::Mount { dir } => {
                let (dir, name) = (dir.clone(), name.to_string());
                blocking(move || mount_put(&dir, &name, &data)).await
            }
            Location::S3 { .. } => {
                let (store, path) = self.s3_store(s3, name)?;
                store
                    .put(&path, PutPayload::from(data))
                    .await
                    .map(|_| ())
                    .map_err(|error| s3_failure(&error, &format!("failed to write {}", self.describe())))
            }
            Location::Sftp { .. } => {
                let (location, name) = (self.clone(), name.to_string());
                blocking(move || location.sftp_put(&name, &data)).await
            }
        }
    }

    /// Reads file `name`; every failure is `download-error`.
    pub(crate) async fn get(&self, s3: &S3Settings, name: &str) -> Result<Vec<u8>, Failure> {
        let download = |detail: String| ("download-error", detail);
        match self {
            Location::Mount { dir } => {
                let path = dir.join(name);
                std::fs::read(&path).map_err(|error| download(format!("unable to read {}: {error}", path.display())))
            }
            Location::S3 { .. } => {
                let (store, path) = self.s3_store(s3, name).map_err(|(_, detail)| download(detail))?;
                let what = format!("s3 object {path} in {}", self.describe());
                let result = store
                    .get(&path)
                    .await
                    .map_err(|error| download(format!("unable to read {what}: {error}")))?;
                let bytes = result
                    .bytes()
                    .await
                    .map_err(|error| download(format!("unable to read {what}: {error}")))?;
                Ok(bytes.to_vec())
            }
            Location::Sftp { .. } => {
                let (location, name) = (self.clone(), name.to_string());
                blocking(move || location.sftp_get(&name))
                    .await
                    .map_err(|(_, detail)| download(detail))
            }
        }
    }

    /// Deletes the files whose names start with `prefix` and were written before `before`; returns their names.
    pub(crate) async fn prune(
        &self,
        s3: &S3Settings,
        prefix: &str,
        before: SystemTime,
    ) -> Result<Vec<String>, Failure> {
        match self {
            Location::Mount { dir } => {
                let (dir, prefix) = (dir.clone(), prefix.to_string());
                blocking(move || mount_prune(&dir, &prefix, before)).await
            }
            Location::S3 { .. } => {
                let (store, path) = self.s3_store(s3, prefix)?;
                let subdir = path
                    .as_ref()
                    .rsplit_once('/')
                    .map(|(subdir, _)| ObjectPath::from(subdir));
                let listed: Vec<_> = store
                    .list(subdir.as_ref())
                    .try_collect()
                    .await
                    .map_err(|error| s3_failure(&error, &format!("failed to list {}", self.describe())))?;
                let mut pruned = Vec::new();
                for object in listed {
                    let Some(file) = object.location.filename().map(str::to_string) else {
                        continue;
                    };
                    if file.starts_with(prefix) && SystemTime::from(object.last_modified) < before {
                        store
                            .delete(&object.location)
                            .await
                            .map_err(|error| s3_failure(&error, &format!("failed to delete {}", object.location)))?;
                        pruned.push(file);
                    }
                }
                Ok(pruned)
            }
            Location::Sftp { .. } => {
                let (location, prefix) = (self.clone(), prefix.to_string());
                blocking(move || location.sftp_prune(&prefix, before)).await
            }
        }
    }

    fn s3_store(&self, s3: &S3Settings, name: &str) -> Result<(Arc<AmazonS3>, ObjectPath), Failure> {
        let Location::S3 {
            bucket,
            subdir,
            region,
            access_key_id,
            secret_access_key,
        } = self
        else {
            return Err(("general-error", "not an S3 location".to_string()));
        };
        // object_store builds its own reqwest client, which takes the process's default rustls provider; the
        // workspace builds rustls with ring only, so ring is made the default (a no-op when one is installed).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut options = ClientOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_timeout(Duration::from_secs(120));
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region(region.clone().unwrap_or_else(|| "us-east-1".to_string()))
            .with_access_key_id(access_key_id)
            .with_secret_access_key(secret_access_key)
            .with_retry(RetryConfig {
                max_retries: 1,
                retry_timeout: Duration::from_secs(10),
                ..RetryConfig::default()
            });
        if let Some(url) = &s3.url {
            builder = builder.with_endpoint(url.trim_end_matches('/'));
            options = options.with_allow_http(url.starts_with("http://"));
        }
        if let Some(ca) = &s3.ca_cert {
            let pem = if ca.contains("-----BEGIN") {
                ca.clone().into_bytes()
            } else {
                std::fs::read(ca)
                    .map_err(|error| ("general-error", format!("unable to read s3_ca_cert {ca}: {error}")))?
            };
            let certificate = object_store::Certificate::from_pem(&pem)
                .map_err(|error| ("general-error", format!("s3_ca_cert is not a PEM certificate: {error}")))?;
            options = options.with_root_certificate(certificate);
        }
        let store = builder.with_client_options(options).build().map_err(|error| {
            (
                "general-error",
                format!("invalid S3 location {}: {error}", self.describe()),
            )
        })?;
        let key = if subdir.is_empty() {
            name.to_string()
        } else {
            format!("{subdir}/{name}")
        };
        Ok((Arc::new(store), ObjectPath::from(key)))
    }

    /// An authenticated SFTP session (key, else password; without either the cluster's own key would be used,
    /// which the emulator has none of).
    fn sftp_session(&self) -> Result<(ssh2::Session, ssh2::Sftp, String), Failure> {
        let Location::Sftp {
            user,
            password,
            host,
            port,
            dir,
            key,
        } = self
        else {
            return Err(("general-error", "not an SFTP location".to_string()));
        };
        let general = |detail: String| ("general-error", detail);
        let where_ = self.describe();
        let address = (host.as_str(), *port)
            .to_socket_addrs()
            .map_err(|error| general(format!("unable to resolve {host}: {error}")))?
            .next()
            .ok_or_else(|| general(format!("{host} has no address")))?;
        let tcp = TcpStream::connect_timeout(&address, CONNECT_TIMEOUT)
            .map_err(|error| general(format!("unable to connect to {where_}: {error}")))?;
        let mut session = ssh2::Session::new().map_err(|error| general(format!("ssh session: {error}")))?;
        session.set_timeout(60_000);
        session.set_tcp_stream(tcp);
        session
            .handshake()
            .map_err(|error| general(format!("ssh handshake with {where_} failed: {error}")))?;
        let authenticated = match (key, password) {
            (Some(key), _) => session.userauth_pubkey_memory(user, None, key, None),
            (None, Some(password)) => session.userauth_password(user, password),
            (None, None) => {
                return Err((
                    "no-permission",
                    format!("{where_}: no key given and the emulated cluster has no SSH key of its own"),
                ));
            }
        };
        if authenticated.is_err() || !session.authenticated() {
            return Err(("no-permission", format!("{where_} refused the credentials")));
        }
        let sftp = session
            .sftp()
            .map_err(|error| general(format!("sftp subsystem on {where_}: {error}")))?;
        Ok((session, sftp, dir.clone()))
    }

    fn sftp_put(&self, name: &str, data: &[u8]) -> Result<(), Failure> {
        let (_session, sftp, dir) = self.sftp_session()?;
        let dir_path = Path::new(&dir);
        match sftp.stat(dir_path) {
            Ok(stat) if stat.is_dir() => {}
            Ok(_) => return Err(("wrong-file-path", format!("{} is not a directory", self.describe()))),
            Err(error) => return Err(sftp_failure(&error, &format!("{} does not exist", self.describe()))),
        }
        let partial = dir_path.join(format!(".{name}.partial"));
        let target = dir_path.join(name);
        let what = format!("failed to write {name} to {}", self.describe());
        let mut file = sftp.create(&partial).map_err(|error| sftp_failure(&error, &what))?;
        file.write_all(data)
            .map_err(|error| ("general-error", format!("{what}: {error}")))?;
        drop(file);
        sftp.rename(&partial, &target, None).map_err(|error| {
            let _ = sftp.unlink(&partial);
            sftp_failure(&error, &what)
        })
    }

    fn sftp_get(&self, name: &str) -> Result<Vec<u8>, Failure> {
        let (_session, sftp, dir) = self.sftp_session()?;
        let path = Path::new(&dir).join(name);
        let what = format!("unable to read {name} from {}", self.describe());
        let mut file = sftp.open(&path).map_err(|error| sftp_failure(&error, &what))?;
        let mut data = Vec::new();
        file.read_to_end(&mut data)
            .map_err(|error| ("general-error", format!("{what}: {error}")))?;
        Ok(data)
    }

    fn sftp_prune(&self, prefix: &str, before: SystemTime) -> Result<Vec<String>, Failure> {
        let (_session, sftp, dir) = self.sftp_session()?;
        let what = format!("failed to list {}", self.describe());
        let entries = sftp
            .readdir(Path::new(&dir))
            .map_err(|error| sftp_failure(&error, &what))?;
        let mut pruned = Vec::new();
        for (path, stat) in entries {
            let Some(file) = path.file_name().and_then(|name| name.to_str()).map(str::to_string) else {
                continue;
            };
            let modified = SystemTime::UNIX_EPOCH + Duration::from_secs(stat.mtime.unwrap_or(u64::MAX / 4));
            if stat.is_file() && file.starts_with(prefix) && modified < before {
                sftp.unlink(&path)
                    .map_err(|error| sftp_failure(&error, &format!("failed to delete {file}")))?;
                pruned.push(file);
            }
        }
        Ok(pruned)
    }
}

/// Runs blocking file or SSH work off the async threads.
async fn blocking<T, F>(work: F) -> Result<T, Failure>
where
    F: FnOnce() -> Result<T, Failure> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|error| Err(("general-error", format!("the backup task failed: {error}"))))
}

/// Whether the directory's mode lets a non-root process of this uid write into it: RS writes backups as the
/// `redislabs` user, never as root, so the emulator (often root in tests) checks the mode bits as that user would.
fn writable_unprivileged(metadata: &std::fs::Metadata) -> bool {
    // SAFETY: getuid and getgid cannot fail and touch no memory.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let mode = metadata.mode();
    if metadata.uid() == uid {
        mode & 0o200 != 0
    } else if metadata.gid() == gid {
        mode & 0o020 != 0
    } else {
        mode & 0o002 != 0
    }
}

fn io_reason(error: &std::io::Error) -> &'static str {
    match error.kind() {
        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => "no-permission",
        std::io::ErrorKind::NotFound => "wrong-file-path",
        // Disk full (ENOSPC, EDQUOT) and everything else.
        _ => "general-error",
    }
}

fn mount_put(dir: &Path, name: &str, data: &[u8]) -> Result<(), Failure> {
    let metadata = match std::fs::metadata(dir) {
        Ok(metadata) if metadata.is_dir() => metadata,
        Ok(_) => return Err(("wrong-file-path", format!("{} is not a directory", dir.display()))),
        Err(error) => {
            return Err((
                io_reason(&error),
                format!("export directory {} does not exist: {error}", dir.display()),
            ));
        }
    };
    if !writable_unprivileged(&metadata) {
        return Err((
            "no-permission",
            format!("export directory {} is not writable by the cluster", dir.display()),
        ));
    }
    let partial = dir.join(format!(".{name}.partial"));
    let target = dir.join(name);
    let written = std::fs::File::create(&partial)
        .and_then(|mut file| file.write_all(data).and_then(|()| file.sync_all()))
        .and_then(|()| std::fs::rename(&partial, &target));
    written.map_err(|error| {
        let _ = std::fs::remove_file(&partial);
        (
            io_reason(&error),
            format!("failed to write {}: {error}", target.display()),
        )
    })
}

fn mount_prune(dir: &Path, prefix: &str, before: SystemTime) -> Result<Vec<String>, Failure> {
    let entries = std::fs::read_dir(dir)
        .map_err(|error| (io_reason(&error), format!("failed to list {}: {error}", dir.display())))?;
    let mut pruned = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let Some(file) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let old = entry
            .metadata()
            .and_then(|metadata| metadata.modified())
            .is_ok_and(|modified| modified < before);
        if file.starts_with(prefix) && old {
            std::fs::remove_file(entry.path())
                .map_err(|error| (io_reason(&error), format!("failed to delete {file}: {error}")))?;
            pruned.push(file);
        }
    }
    Ok(pruned)
}

fn s3_failure(error: &object_store::Error, what: &str) -> Failure {
    let text = error.to_string();
    let reason = match error {
        object_store::Error::NotFound { .. } => "wrong-file-path",
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => "no-permission",
        _ if text.contains("NoSuchBucket") => "wrong-file-path",
        _ if text.contains("AccessDenied") || text.contains("403") || text.contains("InvalidAccessKeyId") => {
            "no-permission"
        }
        _ => "general-error",
    };
    (reason, format!("{what}: {text}"))
}

/// libssh2's SFTP status codes (LIBSSH2_FX_*).
const FX_NO_SUCH_FILE: i32 = 2;
const FX_PERMISSION_DENIED: i32 = 3;
const FX_NO_SUCH_PATH: i32 = 10;
const FX_WRITE_PROTECT: i32 = 12;
const FX_NO_SPACE_ON_FILESYSTEM: i32 = 14;
const FX_QUOTA_EXCEEDED: i32 = 15;

fn sftp_failure(error: &ssh2::Error, what: &str) -> Failure {
    let reason = match error.code() {
        ssh2::ErrorCode::SFTP(FX_NO_SUCH_FILE | FX_NO_SUCH_PATH) => "wrong-file-path",
        ssh2::ErrorCode::SFTP(FX_PERMISSION_DENIED | FX_WRITE_PROTECT) => "no-permission",
        ssh2::ErrorCode::SFTP(FX_NO_SPACE_ON_FILESYSTEM | FX_QUOTA_EXCEEDED) => "general-error",
        _ => "general-error",
    };
    (reason, format!("{what}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn required_keys_are_checked_with_invalid_schema() {
        for (location, missing) in [
            (
                json!({"type": "s3", "access_key_id": "a", "secret_access_key": "s"}),
                "bucket_name",
            ),
            (
                json!({"type": "s3", "bucket_name": "b", "secret_access_key": "s"}),
                "access_key_id",
            ),
            (
                json!({"type": "s3", "bucket_name": "b", "access_key_id": "a"}),
                "secret_access_key",
            ),
            (json!({"type": "sftp"}), "sftp_url"),
            (json!({"type": "mount_point"}), "path"),
            (json!({"type": "url"}), "url"),
        ] {
            let error = Location::parse(&location).expect_err("a required key is missing");
            assert_eq!(error.status.as_u16(), 400, "{location}");
            assert_eq!(error.error_code, "invalid_schema", "{location}");
            assert!(error.description.contains(missing), "{}", error.description);
        }
        assert_eq!(
            Location::parse(&json!({"type": "gs", "bucket_name": "b"}))
                .expect_err("gs is not implemented")
                .status
                .as_u16(),
            501
        );
    }

    #[test]
    fn sftp_urls_and_sources_split_into_their_parts() {
        let (user, password, host, port, path) =
            parse_sftp_url("sftp://backup:pw@files.example:2222/srv/backups/").expect("a valid URL");
        assert_eq!(
            (user.as_str(), password.as_deref(), host.as_str(), port, path.as_str()),
            ("backup", Some("pw"), "files.example", 2222, "/srv/backups/")
        );
        assert_eq!(parse_sftp_url("sftp://root@h").expect("valid").3, 22);
        assert!(parse_sftp_url("sftp://host/path").is_err(), "a user is required");
        let source = Location::parse_source(&json!({"type": "sftp", "sftp_url": "sftp://root@h/a/b/db.rdb.gz"}))
            .expect("a valid source");
        assert_eq!(source.filename, "db.rdb.gz");
        assert!(matches!(source.location, Location::Sftp { ref dir, .. } if dir == "/a/b/"));
        let mount = Location::parse_source(&json!({"type": "mount_point", "path": "/mnt/b/x.rdb"})).expect("valid");
        assert_eq!(mount.filename, "x.rdb");
        assert!(matches!(mount.location, Location::Mount { ref dir } if dir == Path::new("/mnt/b")));
        let s3 = Location::parse_source(&json!({"type": "s3", "bucket_name": "b", "access_key_id": "a",
            "secret_access_key": "s", "subdir": "/runs/1/"}));
        assert_eq!(s3.expect_err("filename is required").error_code, "invalid_schema");
    }

    #[test]
    fn descriptions_carry_no_secrets() {
        let location = Location::parse(&json!({"type": "sftp", "sftp_url": "sftp://u:hunter2@h/p/", "key": "KEY"}))
            .expect("valid");
        assert!(!location.describe().contains("hunter2"), "{}", location.describe());
        let s3 = Location::parse(&json!({"type": "s3", "bucket_name": "b", "access_key_id": "AKIA",
            "secret_access_key": "s3cr3t"}))
        .expect("valid");
        assert!(!s3.describe().contains("s3cr3t") && !s3.describe().contains("AKIA"));
    }
}
