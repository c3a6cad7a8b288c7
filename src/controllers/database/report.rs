//! What the apply stage did and saw, as plain data: the typed report the status stage derives the REDB status from.
//! No I/O here.

use std::fmt::Debug;

use super::dereference::bdb_summary;
use crate::api::RedisEnterpriseDatabaseStatus;
use crate::enterprise::states::DatabaseStatus;
use crate::enterprise::types::Bdb;

/// Where the database stands after the apply stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The bdb was created in this pass; its action runs.
    Created,
    /// The bdb exists but is not active (its status says what it is doing).
    Pending(DatabaseStatus),
    /// A change was sent in this pass; its action runs.
    Changed(Change),
    /// The bdb is active and as the spec says.
    Ready,
    /// Fields that cannot change after creation differ; nothing was written to the cluster.
    Immutable(Vec<String>),
    /// The cluster rejected a request (4xx): the spec or the cluster must change.
    Rejected {
        /// What was asked, for example `create database cache`.
        request: String,
        /// The cluster's `error_code`.
        error_code: String,
        /// The whole error (endpoint, HTTP status, code, description).
        message: String,
    },
    /// The cluster could not create the database (`creation-failed`).
    CreationFailed,
}

/// The one REST change a pass sent to an existing database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The default user's password (`PUT /v1/bdbs/{uid}/passwords`).
    Password,
    /// Fields of the bdb (`PUT /v1/bdbs/{uid}`).
    Update,
    /// The Redis version (`POST /v1/bdbs/{uid}/upgrade`).
    Upgrade,
    /// The alert settings (`POST /v1/bdbs/alerts/{uid}`).
    Alerts,
}

impl std::fmt::Display for Change {
    /// The word in "applying the … change", as users read it in the conditions.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Password => "password",
            Self::Update => "update",
            Self::Upgrade => "upgrade",
            Self::Alerts => "alerts",
        })
    }
}

impl Progress {
    /// Whether nothing is under way, so the next look can wait for the periodic resync.
    pub fn is_settled(&self) -> bool {
        matches!(
            self,
            Self::Ready | Self::Immutable(_) | Self::Rejected { .. } | Self::CreationFailed
        )
    }
}

/// What the apply stage did and saw. `Debug` shows only the bdb's uid, name and status (the REST API returns the
/// database password among its fields).
pub struct Applied {
    /// The bdb as last seen (the create or update answer, else the live one).
    pub bdb: Option<Bdb>,
    /// Where the database stands.
    pub progress: Progress,
    /// An action started in this pass (`action_uid`).
    pub started_action: Option<String>,
    /// The status already written in this pass by the creation protocol (intent, then uid), the base of the final
    /// comparison.
    pub recorded_status: Option<RedisEnterpriseDatabaseStatus>,
    /// Children written (created or changed), as `Kind namespace/name`.
    pub written: Vec<String>,
    /// Children deleted because they are no longer built, as `Kind namespace/name`.
    pub deleted: Vec<String>,
}

impl Debug for Applied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Applied")
            .field("bdb", &self.bdb.as_ref().map(bdb_summary))
            .field("progress", &self.progress)
            .field("started_action", &self.started_action)
            .field("written", &self.written)
            .field("deleted", &self.deleted)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_reads_as_the_word_users_saw_before() {
        let words: Vec<String> = [Change::Password, Change::Update, Change::Upgrade, Change::Alerts]
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(words, ["password", "update", "upgrade", "alerts"]);
        assert!(!Progress::Changed(Change::Update).is_settled());
        assert!(!Progress::Pending(DatabaseStatus::ActiveChangePending).is_settled());
    }
}
