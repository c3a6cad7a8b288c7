//! Dynamic access to the objects a GitSync applies: the API of an inventory entry through the runtime's kind table
//! (an unknown kind is an error), and the patch parameters of the sync's field manager. No decisions.

use kube::Client;
use kube::api::{Api, DynamicObject, PatchParams};

use super::error::SyncError;
use crate::api::gitsync::InventoryEntry;
use crate::runtime::kinds::api_resource;

/// The field manager of everything the sync writes.
pub const FIELD_MANAGER: &str = "redis-gitops/git";

/// Server-side apply with the sync's field manager, forced.
pub fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

/// The API of the object `entry` names.
pub fn api_for(client: &Client, entry: &InventoryEntry) -> Result<Api<DynamicObject>, SyncError> {
    let (resource, namespaced) =
        api_resource(&entry.api_version, &entry.kind).map_err(|source| SyncError::UnknownKind {
            name: format!("{} {}/{}", entry.kind, entry.namespace, entry.name),
            source,
        })?;
    Ok(if namespaced {
        Api::namespaced_with(client.clone(), &entry.namespace, &resource)
    } else {
        Api::all_with(client.clone(), &resource)
    })
}

/// `/metadata/annotations/<key>` as a JSON pointer.
pub fn annotation_pointer(key: &str) -> String {
    format!("/metadata/annotations/{}", key.replace('~', "~0").replace('/', "~1"))
}
