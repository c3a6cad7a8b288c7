//! `GitSync` (`redisgitops.dev/v1alpha1`): one Git source whose Redis Enterprise specs the agent applies, with
//! the prune and deletion policy, and a status in the style of Flux (`lastAppliedRevision`, inventory).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::conditions::Condition;

/// One Git repository path to keep applied: where it is, which revision to follow, and how to prune.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "redisgitops.dev",
    version = "v1alpha1",
    kind = "GitSync",
    plural = "gitsyncs",
    shortname = "gsync",
    namespaced,
    status = "GitSyncStatus",
    doc = "Keeps the Redis Enterprise specs under a path of a Git repository applied in the cluster.",
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".spec.url"}"#,
    printcolumn = r#"{"name":"Revision","type":"string","jsonPath":".status.lastAppliedRevision"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].message"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct GitSyncSpec {
    /// Repository URL: `https://`, `http://`, `ssh://`, `git@host:path`, `git://` (read-only, unauthenticated) or
    /// `file://`.
    #[schemars(
        regex(pattern = r"^(https?://|ssh://|git://|file://|[A-Za-z0-9._-]+@[A-Za-z0-9._-]+:)"),
        length(max = 2048)
    )]
    pub url: String,

    /// Which revision to follow. Default: the branch `main`.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<GitReference>,

    /// Directory inside the repository whose YAML files are applied (recursively). Default: the root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub path: Option<String>,

    /// How often the repository is polled, as a duration such as `30s`, `1m` or `1h`, from 1s to 24h.
    /// Default: `1m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"), length(max = 32))]
    pub interval: Option<String>,

    /// Time limit of one Git operation (connect, list refs, fetch), from 1s to 1h. Default: `60s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"), length(max = 32))]
    pub timeout: Option<String>,

    /// Secret in the GitSync's namespace with the credentials: `username` and `password` (HTTPS basic or token),
    /// `bearerToken` (HTTPS bearer), `identity` and `known_hosts` (SSH deploy key; the host key is always
    /// checked), `ca.crt` (a custom CA for HTTPS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretReference>,

    /// Stop applying and pruning; status is still reported. Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,

    /// Create the namespaces its objects need before applying them (like Argo CD's `CreateNamespace=true`). A
    /// namespace it creates is labelled `app.kubernetes.io/created-by: redis-gitops` and
    /// `redisgitops.dev/created-by-gitsync: <namespace>.<name>`, and is never deleted, not even by pruning. Needs
    /// `create` on namespaces (the ClusterRole of `deploy/` grants it; a namespaced install cannot). Default: false,
    /// and an object whose namespace does not exist is not applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_namespace: Option<bool>,

    /// Delete objects this GitSync applied that are no longer in the repository. Databases and clusters also need
    /// `allowDatabaseDeletion`, and a cluster is never deleted while a database lives on it. Default: false (removed objects are reported as orphaned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune: Option<bool>,

    /// Allow pruning to delete RedisEnterpriseDatabases, and so their data, and RedisEnterpriseClusters (only once
    /// no database lives on them any more). Objects annotated
    /// `redisgitops.dev/protect: "true"` are never deleted. Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_database_deletion: Option<bool>,

    /// What happens to the applied objects when this GitSync is deleted: `Orphan` keeps them, `Delete` deletes
    /// them (databases only with `allowDatabaseDeletion`). Default: `Orphan`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,

    /// Post a commit status for every synced revision to the forge that hosts the repository: the context
    /// `redis-gitops/<namespace>/<name>` (applied or refused) and `redis-gitops/<namespace>/<name>/ready` (every
    /// object of the revision Ready, or the first Stalled one). Delivery never blocks a sync; the
    /// `CommitStatusReported` condition shows the last delivery error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_status: Option<CommitStatusSpec>,

    /// Push webhooks: a forge (GitHub, GitLab, Gitea, Forgejo, Bitbucket or a generic HMAC sender) posts to
    /// `status.webhookPath` on the agent's webhook port, and a push to the followed ref is applied at once instead
    /// of at the next poll. Polling goes on as the fallback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookSpec>,
}

/// Where and how to post commit statuses.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommitStatusSpec {
    /// The forge's API: `github`, `gitlab`, `gitea` (also Forgejo) or `bitbucket` (Bitbucket Cloud).
    pub provider: ForgeProvider,
    /// Secret in the GitSync's namespace whose key `token` holds the API token (Bitbucket Cloud: an access token,
    /// or `<username>:<app-password>`). Its `ca.crt` key, else the one of `spec.secretRef`, is trusted for a
    /// self-hosted forge.
    pub secret_ref: SecretReference,
    /// Base URL of the forge's API, for example `https://ghe.example.com/api/v3`. `https://` only, except loopback
    /// addresses, which may use `http://`. Default: derived from `spec.url` (`https://api.github.com`,
    /// `https://<host>/api/v4` for GitLab, `https://<host>/api/v1` for Gitea, `https://api.bitbucket.org`).
    #[serde(default, rename = "apiURL", skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub api_url: Option<String>,
    /// The repository on the forge, `owner/name` (GitLab: the project path, groups included; Bitbucket:
    /// `workspace/slug`). Default: derived from `spec.url`, in its HTTPS and SSH forms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub repository: Option<String>,
}

/// A forge whose commit-status API the agent speaks.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(transform = crate::api::drop_type_description)]
pub enum ForgeProvider {
    /// GitHub and GitHub Enterprise Server.
    Github,
    /// GitLab, gitlab.com or self-managed.
    Gitlab,
    /// Gitea and Forgejo.
    Gitea,
    /// Bitbucket Cloud.
    Bitbucket,
}

impl ForgeProvider {
    /// The provider's name as the spec writes it (also the metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Github => "github",
            Self::Gitlab => "gitlab",
            Self::Gitea => "gitea",
            Self::Bitbucket => "bitbucket",
        }
    }
}

/// Push webhooks of a GitSync.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookSpec {
    /// Secret in the GitSync's namespace whose key `token` holds the webhook secret: the HMAC key of GitHub,
    /// Gitea, Forgejo, Bitbucket and generic senders, or GitLab's secret token. It also keys `status.webhookPath`.
    pub secret_ref: SecretReference,
}

/// A Git revision to follow. Set exactly one field; `commit` may be combined with `branch` to name the branch
/// in the revision string.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct GitReference {
    /// A branch, for example `main`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub branch: Option<String>,
    /// A tag, for example `v1.4.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub tag: Option<String>,
    /// A semantic-version range over the tags, for example `>=1.0.0, <2.0.0`: the highest matching tag is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub semver: Option<String>,
    /// An exact commit (40 hex digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9a-f]{40}$"))]
    pub commit: Option<String>,
}

/// A reference to a Secret in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct SecretReference {
    /// Name of the Secret.
    pub name: String,
}

/// What happens to applied objects when their GitSync is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[schemars(transform = crate::api::drop_type_description)]
pub enum DeletionPolicy {
    /// Keep them, without the GitSync's labels pointing at them.
    Orphan,
    /// Delete them.
    Delete,
}

/// The observed state of a GitSync.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitSyncStatus {
    /// Conditions: `Ready`, `Reconciling` and `Stalled`, kstatus style, and `CommitStatusReported` when
    /// `spec.commitStatus` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Option<Vec<Condition>>,
    /// The generation of the spec that the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The last revision that was applied completely, `<ref>@sha1:<commit>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_revision: Option<String>,
    /// The last revision the agent tried to apply, whether or not it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempted_revision: Option<String>,
    /// When the last sync finished (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<String>,
    /// The objects this GitSync applied and still tracks (for pruning), grouped by apiVersion, kind and
    /// namespace so that 10 000 objects stay far below the API server's object size limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects: Option<Vec<InventoryGroup>>,
    /// The inventory as older agents wrote it, one entry per object. Still read (merged with `objects`), no longer
    /// written: the next sync moves it to `objects`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory: Option<Vec<InventoryEntry>>,
    /// The value of the `redisgitops.dev/reconcile-requested-at` annotation that the last sync handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
    /// Where the forge posts push webhooks on the agent's webhook port: `/hook/<64 hex>`, an HMAC-SHA256 of the
    /// namespace and name keyed by the webhook secret, so it cannot be guessed and changes with the secret. Set
    /// only with `spec.webhook`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_path: Option<String>,
    /// Errors of the last attempted revision, at most 50 (the Ready condition counts the rest), each with its file
    /// and line; messages are cut at 300 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<SourceError>>,
}

impl GitSyncStatus {
    /// Every object of the inventory, from `objects` and from the older `inventory` field, sorted, without
    /// duplicates.
    pub fn inventory_entries(&self) -> Vec<InventoryEntry> {
        let mut entries: Vec<InventoryEntry> = self
            .inventory
            .iter()
            .flatten()
            .map(|entry| InventoryEntry {
                file: None,
                ..entry.clone()
            })
            .chain(self.objects.iter().flatten().flat_map(InventoryGroup::entries))
            .collect();
        entries.sort();
        entries.dedup();
        entries
    }

    /// Sets the inventory to `entries` in the compact shape (`objects`) and clears the older `inventory` field.
    pub fn set_inventory(&mut self, entries: &[InventoryEntry]) {
        self.objects = Some(InventoryGroup::group(entries));
        self.inventory = None;
    }
}

/// Objects of one apiVersion, kind and namespace applied by a GitSync.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InventoryGroup {
    /// `apiVersion` of the objects.
    pub api_version: String,
    /// Kind of the objects.
    pub kind: String,
    /// Namespace of the objects.
    pub namespace: String,
    /// Names of the objects, sorted.
    pub names: Vec<String>,
}

impl InventoryGroup {
    /// Groups `entries` by apiVersion, kind and namespace (the `file` of an entry is not kept: the object's
    /// `redisgitops.dev/source-file` annotation says it).
    pub fn group(entries: &[InventoryEntry]) -> Vec<InventoryGroup> {
        let mut groups: std::collections::BTreeMap<(&str, &str, &str), Vec<String>> = Default::default();
        for entry in entries {
            groups
                .entry((&entry.api_version, &entry.kind, &entry.namespace))
                .or_default()
                .push(entry.name.clone());
        }
        groups
            .into_iter()
            .map(|((api_version, kind, namespace), mut names)| {
                names.sort();
                names.dedup();
                InventoryGroup {
                    api_version: api_version.to_string(),
                    kind: kind.to_string(),
                    namespace: namespace.to_string(),
                    names,
                }
            })
            .collect()
    }

    /// The objects of the group, one entry each.
    pub fn entries(&self) -> impl Iterator<Item = InventoryEntry> + '_ {
        self.names.iter().map(|name| InventoryEntry {
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
            namespace: self.namespace.clone(),
            name: name.clone(),
            file: None,
        })
    }
}

/// An object applied by a GitSync.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InventoryEntry {
    /// `apiVersion` of the object.
    pub api_version: String,
    /// Kind of the object.
    pub kind: String,
    /// Namespace of the object.
    pub namespace: String,
    /// Name of the object.
    pub name: String,
    /// File in the repository the object came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// An error found in a revision, located in its source file.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct SourceError {
    /// File, relative to the GitSync's path.
    pub file: String,
    /// Line, from 1.
    pub line: u32,
    /// Column, from 1.
    pub column: u32,
    /// Field path, for example `spec.memorySize`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What is wrong and how to fix it.
    pub message: String,
}
