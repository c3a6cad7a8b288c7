//! `sandbox --once`: waits until a GitSync has applied its revision and every object it applied is Ready or has
//! failed, then summarises them in a table. It only reads.
//!
//! Objects are classified the kstatus way: `Ready=True` for the current generation is **Ready**, `Stalled=True` is
//! **Failed** (it needs a change to its spec or environment), anything else is still **InProgress**. A GitSync that
//! cannot apply its revision (invalid commit, unreachable source) fails the whole run at once.

use std::time::{Duration, Instant};

use kube::api::{Api, DynamicObject};
use kube::discovery::ApiResource;
use serde_json::Value;

use redis_gitops::api::GitSync;
use redis_gitops::api::conditions::{Condition, types};
use redis_gitops::runtime::errors::kube_error_text;

/// Where an object stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Ready for its current generation.
    Ready,
    /// Stalled: it will not become Ready without a change.
    Failed,
    /// Still being worked on (or, after the deadline, timed out).
    InProgress,
}

/// One line of the summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectSummary {
    /// Kind, for example `RedisEnterpriseDatabase`.
    pub kind: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Where it stands.
    pub outcome: Outcome,
    /// The reason of the deciding condition (`Ready`, or `Stalled` when failed).
    pub reason: String,
    /// Its message.
    pub message: String,
}

/// The result of waiting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// The GitSync itself.
    pub gitsync: ObjectSummary,
    /// The revision the GitSync applied, if any.
    pub revision: Option<String>,
    /// Every object in its inventory, in inventory order.
    pub objects: Vec<ObjectSummary>,
    /// Whether the deadline passed before everything settled.
    pub timed_out: bool,
}

impl Summary {
    /// Whether the GitSync and every object it applied are Ready.
    pub fn all_ready(&self) -> bool {
        self.gitsync.outcome == Outcome::Ready && self.objects.iter().all(|o| o.outcome == Outcome::Ready)
    }

    /// A table for people: one row per object, the GitSync first.
    pub fn table(&self) -> String {
        self.render(|_| true, "")
    }

    /// What `sandbox --once` prints: the whole [`Summary::table`] for up to `full_up_to` objects; beyond, the
    /// GitSync and only the objects that are not Ready, then the same last line (so scripts that read it keep
    /// working) preceded by how many Ready objects were left out.
    pub fn report(&self, full_up_to: usize) -> String {
        if self.objects.len() <= full_up_to {
            return self.table();
        }
        let ready = self.objects.iter().filter(|o| o.outcome == Outcome::Ready).count();
        let note = format!("({ready} Ready objects not listed)\n");
        self.render(
            |object| object.kind == "GitSync" || object.outcome != Outcome::Ready,
            &note,
        )
    }

    /// The table of the GitSync and the objects `keep` keeps, `note` before the last line.
    fn render(&self, keep: impl Fn(&ObjectSummary) -> bool, note: &str) -> String {
        let rows: Vec<[String; 4]> = std::iter::once(&self.gitsync)
            .chain(&self.objects)
            .filter(|object| keep(object))
            .map(|object| {
                let status = match (object.outcome, self.timed_out) {
                    (Outcome::Ready, _) => "Ready",
                    (Outcome::Failed, _) => "Failed",
                    (Outcome::InProgress, true) => "TimedOut",
                    (Outcome::InProgress, false) => "InProgress",
                };
                let detail = match (object.reason.is_empty(), object.message.is_empty()) {
                    (true, _) => object.message.clone(),
                    (false, true) => object.reason.clone(),
                    (false, false) => format!("{}: {}", object.reason, object.message),
                };
                [
                    short_kind(&object.kind).to_string(),
                    format!("{}/{}", object.namespace, object.name),
                    status.to_string(),
                    detail,
                ]
            })
            .collect();
        let header = ["KIND", "NAME", "STATUS", "DETAIL"].map(String::from);
        let widths: Vec<usize> = (0..3)
            .map(|column| {
                std::iter::once(&header)
                    .chain(&rows)
                    .map(|row| row[column].len())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut text = String::new();
        for row in std::iter::once(&header).chain(&rows) {
            let line = format!(
                "{:w0$}  {:w1$}  {:w2$}  {}",
                row[0],
                row[1],
                row[2],
                row[3],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2]
            );
            text.push_str(line.trim_end());
            text.push('\n');
        }
        text.push_str(note);
        let ready = self.objects.iter().filter(|o| o.outcome == Outcome::Ready).count();
        text.push_str(&format!(
            "{ready}/{} objects Ready{}{}\n",
            self.objects.len(),
            self.revision
                .as_deref()
                .map(|r| format!(", revision {r}"))
                .unwrap_or_default(),
            if self.timed_out { " (timed out waiting)" } else { "" }
        ));
        text
    }
}

fn short_kind(kind: &str) -> &str {
    match kind {
        "RedisEnterpriseCluster" => "rec",
        "RedisEnterpriseDatabase" => "redb",
        "GitSync" => "gitsync",
        "RedisBackupSchedule" => "rbs",
        "RedisRestore" => "rrs",
        other => other,
    }
}

/// Classifies an object from its conditions and generation.
pub fn classify(conditions: &[Condition], generation: Option<i64>) -> (Outcome, String, String) {
    let find = |type_: &str| conditions.iter().find(|c| c.type_ == type_);
    if let Some(stalled) = find(types::STALLED).filter(|c| c.status == "True") {
        return (Outcome::Failed, stalled.reason.clone(), stalled.message.clone());
    }
    match find(types::READY) {
        Some(ready)
            if ready.status == "True"
                && (generation.is_none()
                    || ready.observed_generation.is_none()
                    || ready.observed_generation == generation) =>
        {
            (Outcome::Ready, ready.reason.clone(), ready.message.clone())
        }
        Some(ready) => (Outcome::InProgress, ready.reason.clone(), ready.message.clone()),
        None => (
            Outcome::InProgress,
            "Pending".to_string(),
            "no Ready condition yet".to_string(),
        ),
    }
}

fn conditions_of(object: &Value) -> Vec<Condition> {
    object
        .pointer("/status/conditions")
        .and_then(|c| serde_json::from_value(c.clone()).ok())
        .unwrap_or_default()
}

/// Classifies the GitSync: Ready once it applied the revision it last attempted; Failed when that revision was
/// rejected or the source cannot be read (the agent keeps retrying, but `--once` has its answer).
fn classify_gitsync(gitsync: &GitSync) -> (Outcome, String, String) {
    let status = gitsync.status.clone().unwrap_or_default();
    let conditions = status.conditions.clone().unwrap_or_default();
    let (outcome, reason, message) = classify(&conditions, gitsync.metadata.generation);
    let applied_current =
        status.last_applied_revision.is_some() && status.last_applied_revision == status.last_attempted_revision;
    let ready = conditions
        .iter()
        .find(|c| c.type_ == types::READY)
        .filter(|c| c.status == "False");
    match (outcome, ready) {
        (Outcome::Ready, _) if !applied_current => (Outcome::InProgress, reason, message),
        // A sync that finished without applying (validation failed, source unreachable, Secret missing).
        (Outcome::InProgress, Some(ready)) => {
            let mut message = ready.message.clone();
            for error in status.errors.iter().flatten() {
                message.push_str(&format!(
                    "\n    {}:{}:{}: {}",
                    error.file, error.line, error.column, error.message
                ));
            }
            (Outcome::Failed, ready.reason.clone(), message)
        }
        (outcome, _) => (outcome, reason, message),
    }
}

/// How many objects `sandbox --once` lists in full; beyond, only those that are not Ready ([`Summary::report`]).
pub const FULL_TABLE_UP_TO: usize = 25;

/// Polls until the GitSync `namespace/name` applied a revision and every object of its inventory is Ready or
/// Failed, or until `timeout`, handing every snapshot to `on_poll` (the progress display). Failures to read are
/// retried until the deadline.
pub async fn wait_until_settled(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
    poll: Duration,
    mut on_poll: impl FnMut(&Summary),
) -> Summary {
    let deadline = Instant::now() + timeout;
    let gitsyncs: Api<GitSync> = Api::namespaced(client.clone(), namespace);
    loop {
        let summary = snapshot(client, &gitsyncs, namespace, name).await;
        on_poll(&summary);
        let settled = summary.gitsync.outcome == Outcome::Failed
            || (summary.gitsync.outcome == Outcome::Ready
                && summary.objects.iter().all(|o| o.outcome != Outcome::InProgress));
        if settled {
            return summary;
        }
        if Instant::now() >= deadline {
            return Summary {
                timed_out: true,
                ..summary
            };
        }
        tokio::time::sleep(poll).await;
    }
}

async fn snapshot(client: &kube::Client, gitsyncs: &Api<GitSync>, namespace: &str, name: &str) -> Summary {
    let line =
        |kind: &str, ns: &str, object: &str, (outcome, reason, message): (Outcome, String, String)| ObjectSummary {
            kind: kind.to_string(),
            namespace: ns.to_string(),
            name: object.to_string(),
            outcome,
            reason,
            message,
        };
    let gitsync = match gitsyncs.get_opt(name).await {
        Ok(Some(gitsync)) => gitsync,
        Ok(None) => {
            let verdict = (
                Outcome::InProgress,
                "NotFound".to_string(),
                "the GitSync does not exist".to_string(),
            );
            return Summary {
                gitsync: line("GitSync", namespace, name, verdict),
                revision: None,
                objects: Vec::new(),
                timed_out: false,
            };
        }
        Err(error) => {
            let verdict = (Outcome::InProgress, "ReadFailed".to_string(), kube_error_text(&error));
            return Summary {
                gitsync: line("GitSync", namespace, name, verdict),
                revision: None,
                objects: Vec::new(),
                timed_out: false,
            };
        }
    };
    let status = gitsync.status.clone().unwrap_or_default();
    let mut objects = Vec::new();
    for entry in &status.inventory_entries() {
        let (group, version) = entry
            .api_version
            .split_once('/')
            .unwrap_or(("", entry.api_version.as_str()));
        let resource = ApiResource {
            group: group.to_string(),
            version: version.to_string(),
            api_version: entry.api_version.clone(),
            kind: entry.kind.clone(),
            plural: format!("{}s", entry.kind.to_lowercase()),
        };
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &entry.namespace, &resource);
        let verdict = match api.get_opt(&entry.name).await {
            Ok(Some(object)) => {
                let value = serde_json::to_value(&object).unwrap_or(Value::Null);
                classify(&conditions_of(&value), object.metadata.generation)
            }
            Ok(None) => (
                Outcome::InProgress,
                "NotFound".to_string(),
                "not created yet".to_string(),
            ),
            Err(error) => (Outcome::InProgress, "ReadFailed".to_string(), kube_error_text(&error)),
        };
        objects.push(line(&entry.kind, &entry.namespace, &entry.name, verdict));
    }
    Summary {
        gitsync: line("GitSync", namespace, name, classify_gitsync(&gitsync)),
        revision: status.last_applied_revision.clone(),
        objects,
        timed_out: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn condition(type_: &str, status: &str, reason: &str, generation: Option<i64>) -> Condition {
        Condition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: reason.to_string(),
            message: format!("{reason} message"),
            observed_generation: generation,
            last_transition_time: "2026-11-24T00:00:00Z".to_string(),
        }
    }

    #[test]
    fn kstatus_classification() {
        let ready = condition(types::READY, "True", "DatabaseActive", Some(2));
        assert_eq!(classify(std::slice::from_ref(&ready), Some(2)).0, Outcome::Ready);
        // Ready for an older generation is still in progress.
        assert_eq!(classify(std::slice::from_ref(&ready), Some(3)).0, Outcome::InProgress);
        let stalled = condition(types::STALLED, "True", "ImmutableFieldChanged", Some(3));
        let (outcome, reason, _) = classify(&[ready, stalled], Some(3));
        assert_eq!((outcome, reason.as_str()), (Outcome::Failed, "ImmutableFieldChanged"));
        let waiting = condition(types::READY, "False", "WaitingForCluster", Some(1));
        assert_eq!(classify(&[waiting], Some(1)).0, Outcome::InProgress);
        assert_eq!(classify(&[], Some(1)).0, Outcome::InProgress);
    }

    #[test]
    fn the_table_lines_up_and_counts() {
        let object = |name: &str, outcome| ObjectSummary {
            kind: "RedisEnterpriseDatabase".to_string(),
            namespace: "prod".to_string(),
            name: name.to_string(),
            outcome,
            reason: "Reason".to_string(),
            message: String::new(),
        };
        let summary = Summary {
            gitsync: ObjectSummary {
                kind: "GitSync".to_string(),
                ..object("sandbox", Outcome::Ready)
            },
            revision: Some("main@sha1:abc".to_string()),
            objects: vec![
                object("cache", Outcome::Ready),
                object("sessions-long", Outcome::InProgress),
            ],
            timed_out: true,
        };
        assert!(!summary.all_ready());
        assert_eq!(
            summary.table(),
            "KIND     NAME                STATUS    DETAIL\n\
             gitsync  prod/sandbox        Ready     Reason\n\
             redb     prod/cache          Ready     Reason\n\
             redb     prod/sessions-long  TimedOut  Reason\n\
             1/2 objects Ready, revision main@sha1:abc (timed out waiting)\n"
        );
        // Small repositories get the whole table; large ones only what is not Ready.
        assert_eq!(summary.report(2), summary.table());
        assert_eq!(
            summary.report(1),
            "KIND     NAME                STATUS    DETAIL\n\
             gitsync  prod/sandbox        Ready     Reason\n\
             redb     prod/sessions-long  TimedOut  Reason\n\
             (1 Ready objects not listed)\n\
             1/2 objects Ready, revision main@sha1:abc (timed out waiting)\n"
        );
    }
}
