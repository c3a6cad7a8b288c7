//! Flux-style verbs against the cluster of the current kubeconfig, so nobody has to remember annotations:
//! `reconcile gitsync` (sets `redisgitops.dev/reconcile-requested-at`, optionally waits for the sync it asked for),
//! `suspend`/`resume gitsync` (`spec.suspend`), and `get` (GitSyncs, RECs and REDBs with revision, ready and
//! message, like `flux get`). They patch only those two fields of a GitSync and otherwise only read.

use std::time::{Duration, Instant};

use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

use redis_gitops::api::conditions::{Condition, types};
use redis_gitops::api::{GitSync, keys};
use redis_gitops::runtime::errors::kube_error_text;

/// The field manager of the verbs' patches (apart from the agent's own).
pub const FIELD_MANAGER: &str = "redis-gitops/cli";

/// Exit code: the sync ran and the GitSync is Ready (or, without `--wait`, the request was recorded).
pub const EXIT_READY: u8 = 0;
/// Exit code: the request failed (no such GitSync, no permission, suspended), or the sync ran and the GitSync is not
/// Ready.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: `--wait` and the agent did not handle the request within `--timeout` (is the agent running?).
pub const EXIT_TIMED_OUT: u8 = 2;

/// Why a verb failed; each names the object and what to do.
#[derive(Debug, thiserror::Error)]
pub enum VerbError {
    /// No Kubernetes client from the current kubeconfig.
    #[error("unable to reach a Kubernetes API server with the current kubeconfig: {0}")]
    Client(String),
    /// The GitSync does not exist.
    #[error("GitSync {namespace}/{name} not found; list them with `redis-gitops get gitsyncs -A`")]
    NotFound {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// The GitSync is suspended, so a requested sync would apply nothing.
    #[error("GitSync {namespace}/{name} is suspended; run `redis-gitops resume gitsync {name} -n {namespace}` first")]
    Suspended {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// The API server refused or failed a request.
    #[error("failed to {action}: {message}")]
    Request {
        /// What was being done, naming the object.
        action: String,
        /// The API server's answer, for people.
        message: String,
    },
}

/// The namespace of the verbs: `-n`, else the kubeconfig context's, else `default`.
pub fn namespace_or_default(client: &Client, namespace: Option<String>) -> String {
    namespace.unwrap_or_else(|| client.default_namespace().to_string())
}

/// A client from the current kubeconfig (or the in-cluster account).
pub async fn client() -> Result<Client, VerbError> {
    Client::try_default()
        .await
        .map_err(|error| VerbError::Client(kube_error_text(&error)))
}

fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    }
}

fn request(action: String) -> impl FnOnce(kube::Error) -> VerbError {
    move |error| VerbError::Request {
        action,
        message: kube_error_text(&error),
    }
}

async fn read_gitsync(api: &Api<GitSync>, namespace: &str, name: &str) -> Result<GitSync, VerbError> {
    api.get_opt(name)
        .await
        .map_err(request(format!("read GitSync {namespace}/{name}")))?
        .ok_or_else(|| VerbError::NotFound {
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
}

/// What `reconcile gitsync --wait` found once the agent handled the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reconciled {
    /// Whether the GitSync is Ready after the sync.
    pub ready: bool,
    /// `status.lastAppliedRevision`.
    pub revision: Option<String>,
    /// The Ready condition's message.
    pub message: String,
}

/// Sets `redisgitops.dev/reconcile-requested-at` on the GitSync to a new value (now, RFC 3339 with nanoseconds) and
/// returns it. A suspended GitSync is refused: its sync would apply nothing.
pub async fn request_reconcile(client: &Client, namespace: &str, name: &str) -> Result<String, VerbError> {
    let api: Api<GitSync> = Api::namespaced(client.clone(), namespace);
    let gitsync = read_gitsync(&api, namespace, name).await?;
    if gitsync.spec.suspend == Some(true) {
        return Err(VerbError::Suspended {
            namespace: namespace.to_string(),
            name: name.to_string(),
        });
    }
    let requested = k8s_openapi::jiff::Timestamp::now().to_string();
    annotate(&api, namespace, name, &requested).await?;
    Ok(requested)
}

async fn annotate(api: &Api<GitSync>, namespace: &str, name: &str, requested: &str) -> Result<(), VerbError> {
    let patch = json!({"metadata": {"annotations": {keys::RECONCILE_REQUESTED_AT: requested}}});
    api.patch(name, &patch_params(), &Patch::Merge(&patch))
        .await
        .map_err(request(format!(
            "set the {} annotation of GitSync {namespace}/{name}",
            keys::RECONCILE_REQUESTED_AT
        )))?;
    Ok(())
}

/// Waits until the GitSync's `status.lastHandledReconcileAt` is `requested` (the agent ran the sync asked for),
/// polling every `poll`; `None` when `timeout` passed first.
pub async fn wait_for_reconcile(
    client: &Client,
    namespace: &str,
    name: &str,
    requested: &str,
    timeout: Duration,
    poll: Duration,
) -> Result<Option<Reconciled>, VerbError> {
    let api: Api<GitSync> = Api::namespaced(client.clone(), namespace);
    let deadline = Instant::now() + timeout;
    loop {
        let gitsync = read_gitsync(&api, namespace, name).await?;
        let status = gitsync.status.clone().unwrap_or_default();
        if status.last_handled_reconcile_at.as_deref() == Some(requested) {
            let ready = find(status.conditions.as_deref().unwrap_or_default(), types::READY);
            return Ok(Some(Reconciled {
                ready: ready.is_some_and(|c| c.status == "True"),
                revision: status.last_applied_revision.clone(),
                message: ready.map(|c| c.message.clone()).unwrap_or_default(),
            }));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(poll).await;
    }
}

/// Sets `spec.suspend` of the GitSync (`false` on resume, which also requests a sync at once; its value is
/// returned).
pub async fn set_suspended(
    client: &Client,
    namespace: &str,
    name: &str,
    suspend: bool,
) -> Result<Option<String>, VerbError> {
    let api: Api<GitSync> = Api::namespaced(client.clone(), namespace);
    read_gitsync(&api, namespace, name).await?;
    let patch = json!({"spec": {"suspend": suspend}});
    api.patch(name, &patch_params(), &Patch::Merge(&patch))
        .await
        .map_err(request(format!("set spec.suspend of GitSync {namespace}/{name}")))?;
    if suspend {
        return Ok(None);
    }
    let requested = k8s_openapi::jiff::Timestamp::now().to_string();
    annotate(&api, namespace, name, &requested).await?;
    Ok(Some(requested))
}

/// What `get` lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listing {
    /// GitSyncs.
    GitSyncs,
    /// RedisEnterpriseClusters.
    Clusters,
    /// RedisEnterpriseDatabases.
    Databases,
    /// All three, each under its own header.
    All,
}

/// One row of `get`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
    /// `status.lastAppliedRevision` of a GitSync, `status.sourceRevision` of a REC or REDB.
    pub revision: String,
    /// `spec.suspend` of a GitSync (`None` for RECs and REDBs).
    pub suspended: Option<bool>,
    /// `True`, `False` or `Unknown`.
    pub ready: String,
    /// The message of the deciding condition (`Stalled` when stalled, else `Ready`).
    pub message: String,
}

/// The row of one object: its revision, and Ready the kstatus way (a Ready condition for an older generation, or
/// none, is `Unknown`; `Stalled=True` is `False` with the stall's message).
pub fn row_of(object: &Value, revision_pointer: &str, suspend_pointer: Option<&str>) -> Row {
    let text = |pointer: &str| object.pointer(pointer).and_then(Value::as_str).unwrap_or_default();
    let conditions: Vec<Condition> = object
        .pointer("/status/conditions")
        .and_then(|c| serde_json::from_value(c.clone()).ok())
        .unwrap_or_default();
    let generation = object.pointer("/metadata/generation").and_then(Value::as_i64);
    let stalled = find(&conditions, types::STALLED).filter(|c| c.status == "True");
    let ready = find(&conditions, types::READY);
    let (ready, message) = match (stalled, ready) {
        (Some(stalled), _) => ("False".to_string(), stalled.message.clone()),
        (None, Some(ready))
            if ready.observed_generation.is_some()
                && generation.is_some()
                && ready.observed_generation != generation =>
        {
            (
                "Unknown".to_string(),
                format!("reconciling generation {}", generation.unwrap_or_default()),
            )
        }
        (None, Some(ready)) => (ready.status.clone(), ready.message.clone()),
        (None, None) => ("Unknown".to_string(), "not reconciled yet".to_string()),
    };
    Row {
        namespace: text("/metadata/namespace").to_string(),
        name: text("/metadata/name").to_string(),
        revision: text(revision_pointer).to_string(),
        suspended: suspend_pointer.map(|pointer| object.pointer(pointer).and_then(Value::as_bool).unwrap_or(false)),
        ready,
        // One line per object: a multi-line message keeps its first line's meaning.
        message: message.split_whitespace().collect::<Vec<_>>().join(" "),
    }
}

fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// A `flux get`-style table: `NAME REVISION SUSPENDED READY MESSAGE` (no SUSPENDED column for RECs and REDBs),
/// `NAMESPACE` first with `all_namespaces`, names prefixed with `prefix` (`gitsync/` in `get all`).
pub fn table(rows: &[Row], all_namespaces: bool, prefix: &str) -> String {
    let suspended = rows.iter().any(|row| row.suspended.is_some());
    let mut header = Vec::new();
    if all_namespaces {
        header.push("NAMESPACE");
    }
    header.extend(["NAME", "REVISION"]);
    if suspended {
        header.push("SUSPENDED");
    }
    header.extend(["READY", "MESSAGE"]);
    let mut lines: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for row in rows {
        let mut line = Vec::new();
        if all_namespaces {
            line.push(row.namespace.clone());
        }
        line.push(format!("{prefix}{}", row.name));
        line.push(row.revision.clone());
        if suspended {
            line.push(match row.suspended {
                Some(true) => "True".to_string(),
                _ => "False".to_string(),
            });
        }
        line.push(row.ready.clone());
        line.push(row.message.clone());
        lines.push(line);
    }
    let columns = header.len();
    let widths: Vec<usize> = (0..columns)
        .map(|column| lines.iter().map(|line| line[column].chars().count()).max().unwrap_or(0))
        .collect();
    let mut text = String::new();
    for line in &lines {
        let mut out = String::new();
        for (column, cell) in line.iter().enumerate() {
            if column + 1 == columns {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:width$}  ", width = widths[column]));
            }
        }
        text.push_str(out.trim_end());
        text.push('\n');
    }
    text
}

/// Lists `listing` in `namespace` (every namespace with `None`) as `flux get` tables; one kind with no object says
/// so like kubectl.
pub async fn get(client: &Client, listing: Listing, namespace: Option<&str>) -> Result<String, VerbError> {
    let kinds: &[(&str, &str, &str, &str, Option<&str>)] = &[
        (
            "redisgitops.dev/v1alpha1",
            "GitSync",
            "gitsyncs",
            "/status/lastAppliedRevision",
            Some("/spec/suspend"),
        ),
        (
            "app.redislabs.com/v1",
            "RedisEnterpriseCluster",
            "redisenterpriseclusters",
            "/status/sourceRevision",
            None,
        ),
        (
            "app.redislabs.com/v1alpha1",
            "RedisEnterpriseDatabase",
            "redisenterprisedatabases",
            "/status/sourceRevision",
            None,
        ),
    ];
    let chosen: Vec<_> = kinds
        .iter()
        .filter(|(_, kind, ..)| match listing {
            Listing::GitSyncs => *kind == "GitSync",
            Listing::Clusters => *kind == "RedisEnterpriseCluster",
            Listing::Databases => *kind == "RedisEnterpriseDatabase",
            Listing::All => true,
        })
        .collect();
    let mut sections = Vec::new();
    for (api_version, kind, plural, revision, suspend) in chosen {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let resource = ApiResource {
            group: group.to_string(),
            version: version.to_string(),
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            plural: plural.to_string(),
        };
        let api: Api<DynamicObject> = match namespace {
            Some(namespace) => Api::namespaced_with(client.clone(), namespace, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        let where_ = namespace.map_or("every namespace".to_string(), |ns| format!("namespace {ns}"));
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(request(format!("list {plural} in {where_}")))?;
        let mut rows: Vec<Row> = list
            .items
            .iter()
            .map(|object| row_of(&serde_json::to_value(object).unwrap_or(Value::Null), revision, *suspend))
            .collect();
        rows.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        if rows.is_empty() {
            if listing != Listing::All {
                sections.push(format!("no {plural} found in {where_}\n"));
            }
            continue;
        }
        let prefix = match (listing, *kind) {
            (Listing::All, "GitSync") => "gitsync/",
            (Listing::All, "RedisEnterpriseCluster") => "rec/",
            (Listing::All, _) => "redb/",
            _ => "",
        };
        sections.push(table(&rows, namespace.is_none(), prefix));
    }
    if sections.is_empty() {
        let where_ = namespace.map_or("every namespace".to_string(), |ns| format!("namespace {ns}"));
        return Ok(format!("no GitSyncs, RECs or REDBs found in {where_}\n"));
    }
    Ok(sections.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(conditions: Value, generation: i64) -> Value {
        json!({
            "metadata": {"namespace": "default", "name": "sandbox", "generation": generation},
            "spec": {"suspend": true},
            "status": {"lastAppliedRevision": "main@sha1:abc", "conditions": conditions}
        })
    }

    #[test]
    fn rows_read_ready_the_kstatus_way() {
        let ready = json!([{"type": "Ready", "status": "True", "reason": "Applied", "message": "applied\n  main",
            "observedGeneration": 2, "lastTransitionTime": "2026-12-01T00:00:00Z"}]);
        let row = row_of(
            &object(ready.clone(), 2),
            "/status/lastAppliedRevision",
            Some("/spec/suspend"),
        );
        assert_eq!(
            row,
            Row {
                namespace: "default".into(),
                name: "sandbox".into(),
                revision: "main@sha1:abc".into(),
                suspended: Some(true),
                ready: "True".into(),
                message: "applied main".into(),
            }
        );
        // Ready for an older generation is not trusted.
        let row = row_of(&object(ready, 3), "/status/lastAppliedRevision", None);
        assert_eq!(
            (row.ready.as_str(), row.message.as_str()),
            ("Unknown", "reconciling generation 3")
        );
        let stalled = json!([{"type": "Stalled", "status": "True", "reason": "Invalid", "message": "bad spec",
            "lastTransitionTime": "2026-12-01T00:00:00Z"}]);
        let row = row_of(&object(stalled, 1), "/status/lastAppliedRevision", None);
        assert_eq!((row.ready.as_str(), row.message.as_str()), ("False", "bad spec"));
    }

    #[test]
    fn the_table_is_flux_shaped() {
        let row = |name: &str, suspended| Row {
            namespace: "default".into(),
            name: name.into(),
            revision: "main@sha1:abc".into(),
            suspended,
            ready: "True".into(),
            message: "ok".into(),
        };
        assert_eq!(
            table(&[row("a", Some(false)), row("bb", Some(true))], true, ""),
            "NAMESPACE  NAME  REVISION       SUSPENDED  READY  MESSAGE\n\
             default    a     main@sha1:abc  False      True   ok\n\
             default    bb    main@sha1:abc  True       True   ok\n"
        );
        assert_eq!(
            table(&[row("cache", None)], false, "redb/"),
            "NAME        REVISION       READY  MESSAGE\nredb/cache  main@sha1:abc  True   ok\n"
        );
    }
}
