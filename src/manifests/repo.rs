//! Loading a whole revision: files → YAML documents → schema checks → typed objects → semantic checks →
//! checks across objects (duplicates, cluster references, ports, Secret and Service names). All or nothing:
//! either every object is valid and a [`Repository`] comes back, or every error is returned, each located.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::OnceLock;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::budget::{BudgetUse, RevisionBudget, bytes_message, nodes_message, objects_message};
use super::diagnostics::{Diagnostic, FieldPath, Location, Severity, quote, truncate};
use super::files::{SourceFile, read_directory};
use super::schema::{self, Violation, ViolationKind};
use super::validate::{Issue, PLAINTEXT_SECRET_MESSAGE, memory_size_message, validate_cluster, validate_database};
use super::yaml::{Document, Limits, Spans, parse_documents};
use crate::api::{self, RedisBackupSchedule, RedisEnterpriseCluster, RedisEnterpriseDatabase, RedisRestore};
use crate::model::names;
use crate::model::{ValidatedCluster, ValidatedDatabase};

/// A backup kind, loaded.
enum Loaded {
    Schedule(Box<LoadedSchedule>),
    Restore(Box<LoadedRestore>),
}

/// How a revision is loaded.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Namespace of objects that name none (the GitSync's namespace; `default` on the command line).
    pub default_namespace: String,
    /// Limits against hostile input, per file.
    pub limits: Limits,
    /// Limits of the whole revision, across files (the agent's `--max-revision-*` flags).
    pub budget: RevisionBudget,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            default_namespace: "default".to_string(),
            limits: Limits::default(),
            budget: RevisionBudget::default(),
        }
    }
}

/// Where an object came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceLocation {
    /// File relative to the repository root.
    pub file: String,
    /// Where the object's document starts.
    pub location: Location,
}

/// A valid REC of the revision.
#[derive(Clone, Debug)]
pub struct LoadedCluster {
    /// The object as it will be applied (defaults are not written into it).
    pub object: RedisEnterpriseCluster,
    /// The object with every default applied.
    pub validated: ValidatedCluster,
    /// Where it came from.
    pub source: SourceLocation,
    /// Locations of its fields.
    pub spans: Spans,
}

/// A valid REDB of the revision.
#[derive(Clone, Debug)]
pub struct LoadedDatabase {
    /// The object as it will be applied.
    pub object: RedisEnterpriseDatabase,
    /// The object with every default applied.
    pub validated: ValidatedDatabase,
    /// Index into [`Repository::clusters`] of its cluster, when that cluster is in the revision.
    pub cluster: Option<usize>,
    /// Where it came from.
    pub source: SourceLocation,
    /// Locations of its fields.
    pub spans: Spans,
}

/// A valid RedisBackupSchedule of the revision.
#[derive(Clone, Debug)]
pub struct LoadedSchedule {
    /// The object as it will be applied.
    pub object: RedisBackupSchedule,
    /// Where it came from.
    pub source: SourceLocation,
    /// Locations of its fields.
    pub spans: Spans,
}

/// A valid RedisRestore of the revision.
#[derive(Clone, Debug)]
pub struct LoadedRestore {
    /// The object as it will be applied.
    pub object: RedisRestore,
    /// Where it came from.
    pub source: SourceLocation,
    /// Locations of its fields.
    pub spans: Spans,
}

/// A valid revision: its objects in file order, and the warnings found.
#[derive(Clone, Debug, Default)]
pub struct Repository {
    /// The RECs.
    pub clusters: Vec<LoadedCluster>,
    /// The REDBs.
    pub databases: Vec<LoadedDatabase>,
    /// The backup schedules.
    pub schedules: Vec<LoadedSchedule>,
    /// The restores.
    pub restores: Vec<LoadedRestore>,
    /// Warnings (nothing that blocks applying).
    pub warnings: Vec<Diagnostic>,
}

/// Loads the config repository in a directory.
pub fn load_directory(root: &Path, options: &LoadOptions) -> Result<Repository, Vec<Diagnostic>> {
    let (files, mut diagnostics) = read_directory(root, &options.limits, &options.budget);
    match load_files(&files, options) {
        Ok(repository) if diagnostics.is_empty() => Ok(repository),
        Ok(repository) => {
            diagnostics.extend(repository.warnings);
            diagnostics.sort();
            Err(diagnostics)
        }
        Err(more) => {
            diagnostics.extend(more);
            diagnostics.sort();
            Err(diagnostics)
        }
    }
}

/// Loads a revision from its files (from a directory or straight from a Git tree).
pub fn load_files(files: &[SourceFile], options: &LoadOptions) -> Result<Repository, Vec<Diagnostic>> {
    let mut loader = Loader {
        options,
        diagnostics: Vec::new(),
        clusters: Vec::new(),
        databases: Vec::new(),
        schedules: Vec::new(),
        restores: Vec::new(),
        used: BudgetUse::default(),
        exhausted: false,
    };
    for file in files {
        if loader.exhausted {
            break;
        }
        loader.load_file(file);
    }
    loader.check_across_objects();
    loader.check_backup_targets();
    let Loader {
        mut diagnostics,
        clusters,
        databases,
        schedules,
        restores,
        ..
    } = loader;
    diagnostics.sort();
    diagnostics.dedup();
    if diagnostics.iter().any(Diagnostic::is_error) {
        return Err(diagnostics);
    }
    Ok(Repository {
        clusters,
        databases,
        schedules,
        restores,
        warnings: diagnostics,
    })
}

struct Loader<'a> {
    options: &'a LoadOptions,
    diagnostics: Vec<Diagnostic>,
    clusters: Vec<LoadedCluster>,
    databases: Vec<LoadedDatabase>,
    schedules: Vec<LoadedSchedule>,
    restores: Vec<LoadedRestore>,
    /// What the revision has used of [`LoadOptions::budget`].
    used: BudgetUse,
    /// Whether the budget is used up: the files after the one that exceeded it are not read.
    exhausted: bool,
}

const CLUSTER_KIND: &str = "RedisEnterpriseCluster";
const DATABASE_KIND: &str = "RedisEnterpriseDatabase";
const SCHEDULE_KIND: &str = "RedisBackupSchedule";
const RESTORE_KIND: &str = "RedisRestore";
const BACKUP_VERSION: &str = "redisgitops.dev/v1alpha1";

impl Loader<'_> {
    fn load_file(&mut self, file: &SourceFile) {
        if file.content.len() as u64 > self.options.limits.max_file_bytes {
            self.error(
                &file.path,
                Location::default(),
                None,
                format!(
                    "is {} bytes, over the limit of {} bytes; split it into smaller files",
                    file.content.len(),
                    self.options.limits.max_file_bytes
                ),
            );
            return;
        }
        let budget = self.options.budget;
        let size = file.content.len() as u64;
        self.used.bytes = self.used.bytes.saturating_add(size);
        if self.used.bytes > budget.max_bytes {
            self.error(&file.path, Location::default(), None, bytes_message(&budget));
            self.exhausted = true;
            return;
        }
        let Ok(text) = std::str::from_utf8(&file.content) else {
            self.error(
                &file.path,
                Location::default(),
                None,
                "is not UTF-8 text; save it as UTF-8".to_string(),
            );
            return;
        };
        // The parser stops at the per-file node limit or at what is left of the revision's, whichever is lower.
        let remaining_nodes = budget.max_nodes.saturating_sub(self.used.nodes);
        let revision_bound = remaining_nodes < self.options.limits.max_nodes;
        let limits = Limits {
            max_nodes: remaining_nodes.min(self.options.limits.max_nodes),
            ..self.options.limits.clone()
        };
        match parse_documents(text, &limits) {
            Ok(documents) => {
                let nodes: usize = documents.iter().map(|document| document.nodes).sum();
                self.used.nodes = self.used.nodes.saturating_add(nodes);
                if self.used.nodes > budget.max_nodes {
                    self.error(&file.path, Location::default(), None, nodes_message(&budget));
                    self.exhausted = true;
                    return;
                }
                for document in documents {
                    self.used.objects += 1;
                    if self.used.objects > budget.max_objects {
                        self.error(&file.path, document.start, None, objects_message(&budget));
                        self.exhausted = true;
                        return;
                    }
                    self.load_document(&file.path, document);
                }
            }
            Err(error) if error.nodes_exceeded && revision_bound => {
                self.error(&file.path, error.location, None, nodes_message(&budget));
                self.exhausted = true;
            }
            Err(error) => self.error(
                &file.path,
                error.location,
                None,
                format!("invalid YAML: {}", error.message),
            ),
        }
    }

    fn load_document(&mut self, file: &str, document: Document) {
        let Value::Object(fields) = &document.value else {
            self.error(
                file,
                document.start,
                None,
                "this document is not a Kubernetes object; expected a mapping with apiVersion, kind, metadata and spec"
                    .to_string(),
            );
            return;
        };
        let api_version = fields.get("apiVersion").and_then(Value::as_str);
        let kind = fields.get("kind").and_then(Value::as_str);
        let (Some(api_version), Some(kind)) = (api_version, kind) else {
            let missing = if api_version.is_none() { "apiVersion" } else { "kind" };
            self.error(
                file,
                document.start,
                None,
                format!(
                    "this document has no {missing}, so it is not a Kubernetes object; add apiVersion: app.redislabs.com/v1alpha1 \
                     and kind: RedisEnterpriseDatabase (or RedisEnterpriseCluster with app.redislabs.com/v1)"
                ),
            );
            return;
        };
        let kind_path = FieldPath::of(&["kind"]);
        let version_path = FieldPath::of(&["apiVersion"]);
        match (api_version, kind) {
            ("app.redislabs.com/v1" | "app.redislabs.com/v1alpha1", CLUSTER_KIND) => {
                if let Some((object, removed)) = self.typed::<RedisEnterpriseCluster>(file, &document, "app.redislabs.com/v1") {
                    self.add_cluster(file, document, object, &removed);
                }
            }
            ("app.redislabs.com/v1alpha1", DATABASE_KIND) => {
                if let Some((object, removed)) =
                    self.typed::<RedisEnterpriseDatabase>(file, &document, "app.redislabs.com/v1alpha1")
                {
                    self.add_database(file, document, object, &removed);
                }
            }
            (BACKUP_VERSION, SCHEDULE_KIND) => {
                if let Some((object, removed)) = self.typed::<RedisBackupSchedule>(file, &document, BACKUP_VERSION) {
                    let issues = super::backup::validate_schedule(&object);
                    self.add_backup_kind(file, document, issues, &removed, |source, spans| {
                        Loaded::Schedule(Box::new(LoadedSchedule { object, source, spans }))
                    });
                }
            }
            (BACKUP_VERSION, RESTORE_KIND) => {
                if let Some((object, removed)) = self.typed::<RedisRestore>(file, &document, BACKUP_VERSION) {
                    let issues = super::backup::validate_restore(&object);
                    self.add_backup_kind(file, document, issues, &removed, |source, spans| {
                        Loaded::Restore(Box::new(LoadedRestore { object, source, spans }))
                    });
                }
            }
            (_, SCHEDULE_KIND | RESTORE_KIND) => self.error(
                file,
                document.spans.value(&version_path),
                Some(version_path),
                format!("{kind} is not served as {}; use apiVersion {BACKUP_VERSION}", quote(api_version)),
            ),
            (_, "RedisBackup") => self.error(
                file,
                document.spans.value(&kind_path),
                Some(kind_path),
                "a RedisBackup is one run of a backup, created by the agent (or with kubectl for an on-demand backup), \
                 never applied from Git; commit a RedisBackupSchedule instead"
                    .to_string(),
            ),
            (_, CLUSTER_KIND | DATABASE_KIND) => {
                let served = if kind == CLUSTER_KIND { "app.redislabs.com/v1 or app.redislabs.com/v1alpha1" } else { "app.redislabs.com/v1alpha1" };
                self.error(
                    file,
                    document.spans.value(&version_path),
                    Some(version_path),
                    format!("{} is not served as {}; use apiVersion {served}", truncate(kind), quote(api_version)),
                );
            }
            (_, "RedisEnterpriseActiveActiveDatabase" | "RedisEnterpriseRemoteCluster") => self.error(
                file,
                document.spans.value(&kind_path),
                Some(kind_path),
                format!(
                    "{kind} is a kind of the official operator that redis-gitops does not manage yet; keep it out of this \
                     path (manage it with the official operator)"
                ),
            ),
            (_, "GitSync") => self.error(
                file,
                document.spans.value(&kind_path),
                Some(kind_path),
                "a GitSync is not applied from Git; apply it with kubectl, and keep only RedisEnterpriseCluster and \
                 RedisEnterpriseDatabase objects in its path"
                    .to_string(),
            ),
            _ => self.error(
                file,
                document.spans.value(&kind_path),
                Some(kind_path),
                format!(
                    "{kind} ({api_version}) is not managed by redis-gitops; this path may only hold \
                     RedisEnterpriseCluster and RedisEnterpriseDatabase objects"
                ),
            ),
        }
    }

    /// Checks the document's top level, metadata and spec schema, then builds the typed object.
    /// Fields the schema rejects are reported and left out, so the rest of the object is still checked and every
    /// error of the revision is reported at once; the paths left out come back with the object.
    fn typed<K: DeserializeOwned + kube::Resource<DynamicType = ()>>(
        &mut self,
        file: &str,
        document: &Document,
        api_version: &str,
    ) -> Option<(K, Vec<FieldPath>)> {
        let Value::Object(fields) = &document.value else {
            return None;
        };
        let errors_before = self.error_count();
        let mut clean = Map::new();
        for (key, value) in fields {
            let path = FieldPath::of(&[key]);
            match key.as_str() {
                "apiVersion" => {
                    clean.insert(key.clone(), Value::String(api_version.to_string()));
                }
                "kind" => {
                    clean.insert(key.clone(), value.clone());
                }
                "metadata" => {
                    clean.insert(key.clone(), self.clean_metadata(file, document, value));
                }
                "spec" => {
                    clean.insert(key.clone(), value.clone());
                }
                "status" => self.warning(
                    file,
                    document.spans.key(&path),
                    Some(path),
                    "status is written by the agent and ignored in Git; remove it".to_string(),
                ),
                _ => self.unknown_field(file, document, path, &["apiVersion", "kind", "metadata", "spec"]),
            }
        }
        if !clean.contains_key("metadata") {
            self.error(
                file,
                document.start,
                Some(FieldPath::of(&["metadata"])),
                "missing metadata; add metadata.name".to_string(),
            );
        }
        let spec = clean.entry("spec").or_insert_with(|| Value::Object(Map::new()));
        if spec.is_null() {
            *spec = Value::Object(Map::new());
        }
        // The kind from the type's constants: generating the whole CRD per document would dominate loading time.
        let kind = K::kind(&()).to_string();
        let spec_schema = spec_schema(&kind);
        let violations = schema::validate(spec, spec_schema, &FieldPath::of(&["spec"]));
        let mut removed = Vec::new();
        for violation in violations {
            let culprit = match violation.kind {
                ViolationKind::MissingField => violation.path.parent().unwrap_or_default(),
                _ => violation.path.clone(),
            };
            removed.push(culprit);
            self.report_violation(file, document, &kind, violation);
        }
        let mut object = Value::Object(clean);
        let removed: Vec<FieldPath> = removed.iter().map(|path| remove_path(&mut object, path)).collect();
        match serde_json::from_value::<K>(object) {
            Ok(object) => Some((object, removed)),
            Err(error) => {
                if self.error_count() == errors_before {
                    self.error(file, document.start, None, format!("cannot be read as {kind}: {error}"));
                }
                None
            }
        }
    }

    fn clean_metadata(&mut self, file: &str, document: &Document, metadata: &Value) -> Value {
        let path = FieldPath::of(&["metadata"]);
        let Value::Object(fields) = metadata else {
            self.error(
                file,
                document.spans.value(&path),
                Some(path),
                "metadata must be a mapping with name (and namespace, labels, annotations)".to_string(),
            );
            return Value::Object(Map::new());
        };
        let mut clean = Map::new();
        for (key, value) in fields {
            let field = path.key(key);
            match key.as_str() {
                "name" | "namespace" => match value {
                    Value::String(_) => {
                        clean.insert(key.clone(), value.clone());
                    }
                    other => self.error(
                        file,
                        document.spans.value(&field),
                        Some(field),
                        format!("expected a string, found {}", describe(other)),
                    ),
                },
                "labels" | "annotations" => match value {
                    Value::Object(entries) => {
                        let mut strings = Map::new();
                        for (entry_key, entry_value) in entries {
                            if let Value::String(_) = entry_value {
                                strings.insert(entry_key.clone(), entry_value.clone());
                            } else {
                                let entry_path = field.key(entry_key);
                                self.error(
                                    file,
                                    document.spans.value(&entry_path),
                                    Some(entry_path),
                                    format!(
                                        "{} values are strings; found {}, quote it",
                                        truncate(key),
                                        describe(entry_value)
                                    ),
                                );
                            }
                        }
                        clean.insert(key.clone(), Value::Object(strings));
                    }
                    other => self.error(
                        file,
                        document.spans.value(&field),
                        Some(field),
                        format!("expected a mapping of strings, found {}", describe(other)),
                    ),
                },
                "generateName" => self.error(
                    file,
                    document.spans.key(&field),
                    Some(field),
                    "generateName cannot be used in Git: every sync would create a new object; set metadata.name"
                        .to_string(),
                ),
                "uid" | "resourceVersion" | "generation" | "creationTimestamp" | "managedFields" | "selfLink"
                | "ownerReferences" | "finalizers" | "deletionTimestamp" => self.warning(
                    file,
                    document.spans.key(&field),
                    Some(field),
                    format!("{key} is set by the cluster and ignored in Git; remove it"),
                ),
                _ => self.unknown_field(file, document, field, &["name", "namespace", "labels", "annotations"]),
            }
        }
        if !clean.contains_key("namespace") {
            clean.insert(
                "namespace".to_string(),
                Value::String(self.options.default_namespace.clone()),
            );
        }
        Value::Object(clean)
    }

    fn report_violation(&mut self, file: &str, document: &Document, kind: &str, violation: Violation) {
        let Violation {
            path,
            kind: violation_kind,
        } = violation;
        let location = document.spans.value(&path);
        let field = Some(path.clone());
        match violation_kind {
            ViolationKind::UnknownField { suggestions } => {
                let key_location = document.spans.key(&path);
                let name = path.last_key().unwrap_or_default().to_string();
                if let Some(message) = unsupported_field_message(kind, &path, &name) {
                    self.warning(file, key_location, field, message);
                } else if looks_like_password(&name) {
                    self.error(file, key_location, field, PLAINTEXT_SECRET_MESSAGE.to_string());
                } else {
                    self.error(file, key_location, field, unknown_field_message(&name, &suggestions));
                }
            }
            ViolationKind::MissingField => {
                let parent = path.parent().unwrap_or_default();
                let name = path.last_key().unwrap_or_default().to_string();
                self.error(
                    file,
                    document.spans.key(&parent),
                    Some(parent),
                    format!("missing required field {}", quote(&name)),
                );
            }
            ViolationKind::WrongType { expected, found } => {
                self.error(file, location, field, wrong_type_message(&expected, &found));
            }
            ViolationKind::NotInEnum { found, allowed } => {
                let allowed: Vec<String> = allowed
                    .iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                    .collect();
                self.error(
                    file,
                    location,
                    field,
                    format!("{} is not one of {}", display_value(&found), allowed.join(", ")),
                );
            }
            ViolationKind::PatternMismatch { found, pattern } => {
                let message = if path.to_string() == "spec.memorySize" {
                    memory_size_message(&found)
                } else if path.to_string() == "spec.servicesRiggerSpec.databaseServiceType" {
                    format!(
                        "{} is not a comma-separated list of cluster_ip, headless and load_balancer (no spaces)",
                        quote(&found)
                    )
                } else {
                    format!(
                        "{} does not have the expected format (it must match {pattern})",
                        quote(&found)
                    )
                };
                self.error(file, location, field, message);
            }
            ViolationKind::TooLong { length, max_length } => {
                self.error(
                    file,
                    location,
                    field,
                    format!("is {length} characters long, over the maximum of {max_length}; shorten it"),
                );
            }
            ViolationKind::BelowMinimum { found, minimum } => {
                self.error(
                    file,
                    location,
                    field,
                    format!("{found} is below the minimum of {minimum}"),
                );
            }
            ViolationKind::AboveMaximum { found, maximum } => {
                self.error(
                    file,
                    location,
                    field,
                    format!("{found} is above the maximum of {maximum}"),
                );
            }
        }
    }

    fn add_cluster(&mut self, file: &str, document: Document, object: RedisEnterpriseCluster, removed: &[FieldPath]) {
        match validate_cluster(&object) {
            Ok((validated, issues)) => {
                self.report_issues(file, &document.spans, issues, removed);
                self.clusters.push(LoadedCluster {
                    object,
                    validated,
                    source: SourceLocation {
                        file: file.to_string(),
                        location: document.start,
                    },
                    spans: document.spans,
                });
            }
            Err(issues) => self.report_issues(file, &document.spans, issues, removed),
        }
    }

    fn add_database(&mut self, file: &str, document: Document, object: RedisEnterpriseDatabase, removed: &[FieldPath]) {
        match validate_database(&object) {
            Ok((validated, issues)) => {
                self.report_issues(file, &document.spans, issues, removed);
                self.databases.push(LoadedDatabase {
                    object,
                    validated,
                    cluster: None,
                    source: SourceLocation {
                        file: file.to_string(),
                        location: document.start,
                    },
                    spans: document.spans,
                });
            }
            Err(issues) => self.report_issues(file, &document.spans, issues, removed),
        }
    }

    /// The backup kinds' references: names unique per kind and namespace, the databases a schedule names and the
    /// schedules and databases a restore names are in the revision (same namespace).
    fn check_backup_targets(&mut self) {
        let name_path = FieldPath::of(&["metadata", "name"]);
        let namespace_of = |object: &kube::api::ObjectMeta| object.namespace.clone().unwrap_or_default();
        let databases: std::collections::BTreeSet<(String, String)> = self
            .databases
            .iter()
            .map(|d| (d.validated.namespace.clone(), d.validated.name.clone()))
            .collect();
        let mut found = Vec::new();
        let mut seen: HashMap<(&str, String, String), SourceLocation> = HashMap::new();
        let mut keep_schedules = Vec::new();
        for schedule in std::mem::take(&mut self.schedules) {
            let key = (
                SCHEDULE_KIND,
                namespace_of(&schedule.object.metadata),
                schedule.object.metadata.name.clone().unwrap_or_default(),
            );
            if let Some(first) = seen.get(&key) {
                found.push(error_at(
                    &schedule.source,
                    &schedule.spans,
                    &name_path,
                    format!(
                        "{SCHEDULE_KIND} {}/{} is also defined in {}:{}; names must be unique per kind and namespace",
                        key.1, key.2, first.file, first.location.line
                    ),
                ));
                continue;
            }
            seen.insert(key.clone(), schedule.source.clone());
            for (index, database) in schedule.object.spec.databases.iter().flatten().enumerate() {
                if !databases.contains(&(key.1.clone(), database.clone())) {
                    found.push(error_at(&schedule.source, &schedule.spans, &FieldPath::of(&["spec", "databases"]).index(index), format!(
                        "RedisEnterpriseDatabase {}/{database} is not in this revision; add it, or back up only databases \
                         this repository defines",
                        key.1
                    )));
                }
            }
            keep_schedules.push(schedule);
        }
        self.schedules = keep_schedules;
        let schedules: std::collections::BTreeSet<(String, String)> = self
            .schedules
            .iter()
            .map(|s| {
                (
                    namespace_of(&s.object.metadata),
                    s.object.metadata.name.clone().unwrap_or_default(),
                )
            })
            .collect();
        let mut keep_restores = Vec::new();
        for restore in std::mem::take(&mut self.restores) {
            let key = (
                RESTORE_KIND,
                namespace_of(&restore.object.metadata),
                restore.object.metadata.name.clone().unwrap_or_default(),
            );
            if let Some(first) = seen.get(&key) {
                found.push(error_at(
                    &restore.source,
                    &restore.spans,
                    &name_path,
                    format!(
                        "{RESTORE_KIND} {}/{} is also defined in {}:{}; names must be unique per kind and namespace",
                        key.1, key.2, first.file, first.location.line
                    ),
                ));
                continue;
            }
            seen.insert(key.clone(), restore.source.clone());
            if let Some(schedule) = &restore.object.spec.schedule
                && !schedules.contains(&(key.1.clone(), schedule.clone()))
            {
                found.push(error_at(
                    &restore.source,
                    &restore.spans,
                    &FieldPath::of(&["spec", "schedule"]),
                    format!("{SCHEDULE_KIND} {}/{schedule} is not in this revision", key.1),
                ));
            }
            if let Some(database) = &restore.object.spec.database
                && !databases.contains(&(key.1.clone(), database.clone()))
            {
                found.push(error_at(
                    &restore.source,
                    &restore.spans,
                    &FieldPath::of(&["spec", "database"]),
                    format!("RedisEnterpriseDatabase {}/{database} is not in this revision", key.1),
                ));
            }
            keep_restores.push(restore);
        }
        self.restores = keep_restores;
        self.diagnostics.extend(found);
    }

    /// Adds a backup kind whose semantic `issues` are known, unless one of them is an error.
    fn add_backup_kind(
        &mut self,
        file: &str,
        document: Document,
        issues: Vec<Issue>,
        removed: &[FieldPath],
        build: impl FnOnce(SourceLocation, Spans) -> Loaded,
    ) {
        let failed = issues.iter().any(|issue| issue.severity == Severity::Error) || !removed.is_empty();
        self.report_issues(file, &document.spans, issues, removed);
        if failed {
            return;
        }
        let source = SourceLocation {
            file: file.to_string(),
            location: document.start,
        };
        match build(source, document.spans) {
            Loaded::Schedule(schedule) => self.schedules.push(*schedule),
            Loaded::Restore(restore) => self.restores.push(*restore),
        }
    }

    /// Reports semantic issues, except those about fields the schema already rejected (or their parents and
    /// children), which would only repeat the same mistake.
    fn report_issues(&mut self, file: &str, spans: &Spans, issues: Vec<Issue>, removed: &[FieldPath]) {
        for issue in issues {
            if removed
                .iter()
                .any(|path| issue.path.starts_with(path) || path.starts_with(&issue.path))
            {
                continue;
            }
            let location = spans.value(&issue.path);
            let diagnostic = match issue.severity {
                Severity::Error => Diagnostic::error(file, location, Some(issue.path.to_string()), issue.message),
                Severity::Warning => Diagnostic::warning(file, location, Some(issue.path.to_string()), issue.message),
            };
            self.diagnostics.push(diagnostic);
        }
    }

    /// Checks that need several objects: unique names, cluster references, ports, Secret and Service names.
    fn check_across_objects(&mut self) {
        let name_path = FieldPath::of(&["metadata", "name"]);
        let mut found = Vec::new();

        // Unique names per kind and namespace. A duplicate is reported once and left out of the checks below,
        // which would otherwise repeat it as Secret and Service collisions.
        let mut seen: HashMap<(&str, String, String), SourceLocation> = HashMap::new();
        let mut duplicate = |kind: &'static str,
                             validated_namespace: &str,
                             validated_name: &str,
                             source: &SourceLocation,
                             spans: &Spans| {
            let key = (kind, validated_namespace.to_string(), validated_name.to_string());
            match seen.get(&key) {
                Some(first) => {
                    found.push(error_at(
                        source,
                        spans,
                        &name_path,
                        format!(
                            "{kind} {validated_namespace}/{validated_name} is also defined in {}:{}; names must be unique per \
                             kind and namespace",
                            first.file, first.location.line
                        ),
                    ));
                    true
                }
                None => {
                    seen.insert(key, source.clone());
                    false
                }
            }
        };
        self.clusters.retain(|c| {
            !duplicate(
                CLUSTER_KIND,
                &c.validated.namespace,
                &c.validated.name,
                &c.source,
                &c.spans,
            )
        });
        self.databases.retain(|d| {
            !duplicate(
                DATABASE_KIND,
                &d.validated.namespace,
                &d.validated.name,
                &d.source,
                &d.spans,
            )
        });

        // Each database's cluster: the named one (its own namespace first), else the one REC of its namespace.
        let mut by_namespace: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (index, cluster) in self.clusters.iter().enumerate() {
            by_namespace
                .entry(cluster.validated.namespace.as_str())
                .or_default()
                .push(index);
        }
        let cluster_path = FieldPath::of(&["spec", "redisEnterpriseCluster", "name"]);
        let mut resolved = Vec::with_capacity(self.databases.len());
        for database in &self.databases {
            let namespace = database.validated.namespace.as_str();
            let cluster = match &database.validated.cluster_reference {
                Some(name) => {
                    let same_namespace = self
                        .clusters
                        .iter()
                        .position(|c| &c.validated.name == name && c.validated.namespace == namespace);
                    let elsewhere: Vec<usize> = self
                        .clusters
                        .iter()
                        .enumerate()
                        .filter(|(_, c)| &c.validated.name == name)
                        .map(|(i, _)| i)
                        .collect();
                    match (same_namespace, elsewhere.as_slice()) {
                        (Some(index), _) => Some(index),
                        (None, [index]) => Some(*index),
                        (None, []) => {
                            found.push(warning_at(
                                &database.source,
                                &database.spans,
                                &cluster_path,
                                format!("RedisEnterpriseCluster {} is not in this repository; it must already exist in the cluster", quote(name)),
                            ));
                            None
                        }
                        (None, several) => {
                            let namespaces: Vec<&str> = several
                                .iter()
                                .map(|i| self.clusters[*i].validated.namespace.as_str())
                                .collect();
                            found.push(error_at(
                                &database.source,
                                &database.spans,
                                &cluster_path,
                                format!(
                                    "RedisEnterpriseCluster {} exists in several namespaces ({}); put the database in the namespace of its cluster",
                                    quote(name),
                                    namespaces.join(", ")
                                ),
                            ));
                            None
                        }
                    }
                }
                None => match by_namespace.get(namespace).map(Vec::as_slice) {
                    Some([index]) => Some(*index),
                    Some(several) => {
                        let names: Vec<&str> = several
                            .iter()
                            .map(|i| self.clusters[*i].validated.name.as_str())
                            .collect();
                        found.push(error_at(
                            &database.source,
                            &database.spans,
                            &FieldPath::of(&["spec"]),
                            format!(
                                "namespace {namespace} has several clusters ({}); say which one with spec.redisEnterpriseCluster.name",
                                names.join(", ")
                            ),
                        ));
                        None
                    }
                    None => {
                        found.push(warning_at(
                            &database.source,
                            &database.spans,
                            &FieldPath::of(&["spec"]),
                            format!(
                                "no RedisEnterpriseCluster in namespace {namespace} in this repository; the database goes to the \
                                 cluster of that namespace, which must already exist"
                            ),
                        ));
                        None
                    }
                },
            };
            resolved.push(cluster);
        }
        for (database, cluster) in self.databases.iter_mut().zip(resolved) {
            database.cluster = cluster;
        }

        // Database ports are unique per cluster.
        let mut ports: HashMap<(usize, u16), &LoadedDatabase> = HashMap::new();
        let port_path = FieldPath::of(&["spec", "databasePort"]);
        for database in &self.databases {
            if let (Some(cluster), Some(port)) = (database.cluster, database.validated.port) {
                if let Some(first) = ports.get(&(cluster, port)) {
                    found.push(error_at(
                        &database.source,
                        &database.spans,
                        &port_path,
                        format!(
                            "port {port} is already used by database {} ({}:{}) in cluster {}; pick a free port or omit databasePort",
                            first.validated.name, first.source.file, first.source.location.line, self.clusters[cluster].validated.name
                        ),
                    ));
                } else {
                    ports.insert((cluster, port), database);
                }
            }
        }

        // Secret and Service names are unique per namespace across clusters and databases.
        let mut secrets: HashMap<(String, String), String> = HashMap::new();
        let mut services: HashMap<(String, String), String> = HashMap::new();
        for cluster in &self.clusters {
            let owner = format!("cluster {}", cluster.validated.name);
            secrets.insert(
                (
                    cluster.validated.namespace.clone(),
                    cluster.validated.credentials_secret_name.clone(),
                ),
                owner.clone(),
            );
            for service in names::cluster_service_names(&cluster.validated) {
                services.insert((cluster.validated.namespace.clone(), service), owner.clone());
            }
        }
        for database in &self.databases {
            let namespace = database.validated.namespace.clone();
            let owner = format!("database {}", database.validated.name);
            let secret_path = if database.object.spec.database_secret_name.is_some() {
                FieldPath::of(&["spec", "databaseSecretName"])
            } else {
                name_path.clone()
            };
            if let Some(other) = secrets.insert(
                (namespace.clone(), database.validated.secret_name.clone()),
                owner.clone(),
            ) {
                found.push(error_at(
                    &database.source,
                    &database.spans,
                    &secret_path,
                    format!(
                        "Secret {} is also the Secret of {other} in namespace {namespace}; give this database its own databaseSecretName",
                        database.validated.secret_name
                    ),
                ));
            }
            let settings = database.cluster.map(|index| &self.clusters[index].validated);
            for service in names::database_service_names(&database.validated, settings, database.validated.port) {
                if let Some(other) = services.insert((namespace.clone(), service.clone()), owner.clone()) {
                    found.push(error_at(
                        &database.source,
                        &database.spans,
                        &name_path,
                        format!("Service {service} would also be a Service of {other} in namespace {namespace}; rename the database"),
                    ));
                }
                if let Some(problem) = names::service_name_problem(&service) {
                    found.push(error_at(&database.source, &database.spans, &name_path, problem));
                }
            }
        }
        self.diagnostics.extend(found);
    }

    fn error(&mut self, file: &str, location: Location, field: Option<FieldPath>, message: String) {
        self.diagnostics
            .push(Diagnostic::error(file, location, field.map(|f| f.to_string()), message));
    }

    fn warning(&mut self, file: &str, location: Location, field: Option<FieldPath>, message: String) {
        self.diagnostics.push(Diagnostic::warning(
            file,
            location,
            field.map(|f| f.to_string()),
            message,
        ));
    }

    /// Reports a field that is not in `known`, suggesting the closest known name.
    fn unknown_field(&mut self, file: &str, document: &Document, path: FieldPath, known: &[&str]) {
        let name = path.last_key().unwrap_or_default().to_string();
        let suggestions = schema::similar_names(&name, known);
        self.error(
            file,
            document.spans.key(&path),
            Some(path),
            unknown_field_message(&name, &suggestions),
        );
    }

    fn error_count(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }
}

/// Removes the field at `path` (a whole list when the path ends in a list item, so indices stay valid) and returns
/// the path actually removed.
fn remove_path(value: &mut Value, path: &FieldPath) -> FieldPath {
    use super::diagnostics::PathSegment;
    let mut target = path.clone();
    while let Some(PathSegment::Index(_)) = target.segments().last() {
        target = target.parent().unwrap_or_default();
    }
    let Some((PathSegment::Key(last), parents)) = target.segments().split_last() else {
        return target;
    };
    let mut current = &mut *value;
    for segment in parents {
        let next = match (segment, current) {
            (PathSegment::Key(key), Value::Object(fields)) => fields.get_mut(key),
            (PathSegment::Index(index), Value::Array(items)) => items.get_mut(*index),
            _ => None,
        };
        match next {
            Some(next) => current = next,
            None => return target,
        }
    }
    if let Value::Object(fields) = current {
        fields.remove(last);
    }
    target
}

fn error_at(source: &SourceLocation, spans: &Spans, path: &FieldPath, message: String) -> Diagnostic {
    Diagnostic::error(&source.file, spans.value(path), Some(path.to_string()), message)
}

fn warning_at(source: &SourceLocation, spans: &Spans, path: &FieldPath, message: String) -> Diagnostic {
    Diagnostic {
        severity: Severity::Warning,
        ..error_at(source, spans, path, message)
    }
}

/// The OpenAPI schema of `spec` for one of our kinds, taken from the generated CRD (computed once).
fn spec_schema(kind: &str) -> &'static Value {
    static SCHEMAS: OnceLock<HashMap<String, Value>> = OnceLock::new();
    static EMPTY: Value = Value::Null;
    let schemas = SCHEMAS.get_or_init(|| {
        api::crds()
            .into_iter()
            .filter_map(|crd| {
                let schema = crd
                    .spec
                    .versions
                    .first()?
                    .schema
                    .as_ref()?
                    .open_api_v3_schema
                    .as_ref()?;
                let spec = serde_json::to_value(schema)
                    .ok()?
                    .get("properties")?
                    .get("spec")?
                    .clone();
                Some((crd.spec.names.kind, spec))
            })
            .collect()
    });
    schemas.get(kind).unwrap_or(&EMPTY)
}

fn unsupported_field_message(kind: &str, path: &FieldPath, name: &str) -> Option<String> {
    let depth = path.segments().len();
    let parent = path.parent().map(|p| p.to_string()).unwrap_or_default();
    let known = match kind {
        CLUSTER_KIND if depth == 2 => api::cluster::UNSUPPORTED_OFFICIAL_FIELDS.contains(&name),
        DATABASE_KIND if depth == 2 => api::database::UNSUPPORTED_OFFICIAL_FIELDS.contains(&name),
        DATABASE_KIND if parent == "spec.backup" => api::database::UNSUPPORTED_BACKUP_FIELDS.contains(&name),
        _ => false,
    };
    known.then(|| {
        format!("{name} is a field of the official operator that redis-gitops does not manage yet; it is ignored (not applied)")
    })
}

fn looks_like_password(name: &str) -> bool {
    let lowered = name.to_ascii_lowercase();
    [
        "password",
        "passwd",
        "pass",
        "secret",
        "token",
        "apikey",
        "accesskey",
        "privatekey",
    ]
    .iter()
    .any(|word| lowered == *word || lowered.ends_with(word) && !lowered.ends_with("secretname"))
}

fn unknown_field_message(name: &str, suggestions: &[String]) -> String {
    match suggestions.first() {
        Some(suggestion) => format!("unknown field {}; did you mean \"{suggestion}\"?", quote(name)),
        None => format!(
            "unknown field {}; remove it (`kubectl explain` lists the fields)",
            quote(name)
        ),
    }
}

fn wrong_type_message(expected: &str, found: &Value) -> String {
    let wanted = match expected {
        "integer" => "an integer",
        "number" => "a number",
        "string" => "a string",
        "boolean" => "true or false",
        "object" => "a mapping",
        "array" => "a list",
        "int-or-string" => "a number or a string",
        other => other,
    };
    let hint = match (expected, found) {
        ("integer" | "number", Value::String(text)) if text.parse::<f64>().is_ok() => {
            format!("; write {} without quotes", truncate(text))
        }
        ("boolean", Value::String(text)) if matches!(text.as_str(), "true" | "false") => {
            format!("; write {text} without quotes")
        }
        ("string", Value::Number(number)) => format!("; quote it: \"{number}\""),
        ("string", Value::Bool(flag)) => format!("; quote it: \"{flag}\""),
        ("array", Value::Object(_) | Value::String(_)) => {
            "; write each entry on its own line starting with \"- \"".to_string()
        }
        _ => String::new(),
    };
    format!("expected {wanted}, found {}{hint}", describe(found))
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "nothing (null)".to_string(),
        Value::Bool(flag) => format!("the boolean {flag}"),
        Value::Number(number) => format!("the number {number}"),
        Value::String(text) => format!("the string {}", quote(text)),
        Value::Array(_) => "a list".to_string(),
        Value::Object(_) => "a mapping".to_string(),
    }
}

fn display_value(value: &Value) -> String {
    match value {
        Value::String(text) => quote(text),
        other => other.to_string(),
    }
}

impl LoadedCluster {
    /// One line for `validate`: what the cluster is and where it came from.
    pub fn summary(&self) -> String {
        let cluster = &self.validated;
        let storage = cluster.persistence.as_ref().map_or_else(
            || "no persistence".to_string(),
            |p| format!("{} per node", p.volume_size.0),
        );
        format!(
            "RedisEnterpriseCluster {}/{} ({}:{}): {} nodes, {}, {storage}",
            cluster.namespace, cluster.name, self.source.file, self.source.location.line, cluster.nodes, cluster.image
        )
    }
}

impl LoadedDatabase {
    /// One line for `validate`: what the database is and where it came from.
    pub fn summary(&self, repository: &Repository) -> String {
        let database = &self.validated;
        let cluster = match self.cluster {
            Some(index) => repository.clusters[index].validated.name.clone(),
            None => database
                .cluster_reference
                .clone()
                .unwrap_or_else(|| "the namespace's cluster".to_string()),
        };
        let mut traits = vec![
            format!("cluster {cluster}"),
            super::quantity::format_memory_size(database.memory_size_bytes),
            format!(
                "{} shard{}",
                database.shard_count,
                if database.shard_count == 1 { "" } else { "s" }
            ),
        ];
        if database.replication {
            traits.push("replication".to_string());
        }
        let persistence = serde_json::to_value(database.persistence)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string));
        traits.push(format!("persistence {}", persistence.unwrap_or_default()));
        if !database.modules.is_empty() {
            traits.push(format!(
                "modules {}",
                database
                    .modules
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join("+")
            ));
        }
        if database.tls_mode != crate::api::database::TlsMode::Disabled {
            traits.push(format!("tls {}", database.tls_mode.as_str()));
        }
        if database.backup.is_some() {
            traits.push("backup".to_string());
        }
        traits.push(
            database
                .port
                .map_or_else(|| "port assigned by the cluster".to_string(), |p| format!("port {p}")),
        );
        format!(
            "RedisEnterpriseDatabase {}/{} ({}:{}): {}",
            database.namespace,
            database.name,
            self.source.file,
            self.source.location.line,
            traits.join(", ")
        )
    }
}
