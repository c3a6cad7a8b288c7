//! Load stage: the tree of a revision → validated desired objects, all or nothing. A revision with any error, or
//! one whose inventory would not fit in the status, stops the sync before anything is applied. Pure: no I/O.

use super::controller::Halt;
use super::outcome::{Fetched, SyncOutcome};
use super::plan::{DesiredObject, MAX_INVENTORY_BYTES, SyncTarget, desired_objects, inventory_bytes};
use super::settings::tree_files;
use crate::api::gitsync::InventoryEntry;
use crate::manifests::{Diagnostic, LoadOptions, load_files};
use crate::source::TreeEntry;

/// The desired objects of the revision, or the outcome that stops the sync:
/// [`SyncOutcome::ValidationFailed`] or [`SyncOutcome::InventoryTooLarge`].
pub fn load(entries: Vec<TreeEntry>, target: &SyncTarget, fetched: &Fetched) -> Result<Vec<DesiredObject>, Halt> {
    let desired = load_revision(entries, target).map_err(|diagnostics| {
        Halt::outcome(SyncOutcome::ValidationFailed {
            fetched: fetched.clone(),
            errors: diagnostics.into_iter().filter(Diagnostic::is_error).collect(),
        })
    })?;
    let entries: Vec<InventoryEntry> = desired.iter().map(|object| object.entry.clone()).collect();
    let bytes = inventory_bytes(&entries);
    if bytes > MAX_INVENTORY_BYTES {
        return Err(Halt::outcome(SyncOutcome::InventoryTooLarge {
            fetched: fetched.clone(),
            objects: entries.len(),
            bytes,
        }));
    }
    Ok(desired)
}

fn load_revision(entries: Vec<TreeEntry>, target: &SyncTarget) -> Result<Vec<DesiredObject>, Vec<Diagnostic>> {
    let (files, mut diagnostics) = tree_files(entries);
    let options = LoadOptions {
        default_namespace: target.namespace.clone(),
        ..LoadOptions::default()
    };
    let repository = match load_files(&files, &options) {
        Ok(repository) => repository,
        Err(more) => {
            diagnostics.extend(more);
            return Err(diagnostics);
        }
    };
    if !diagnostics.is_empty() {
        return Err(diagnostics);
    }
    desired_objects(&repository, target)
}
