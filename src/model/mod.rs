//! The low layer every other one builds on: the validated model of a REC and a REDB ([`validated`]) and the naming
//! rules of the objects created for them ([`names`]). Pure data and naming: no I/O, and it imports nothing of this
//! crate but the CRD types of `api`, so `manifests`, `desired` and the controllers all import it and it imports none
//! of them.

pub mod names;
pub mod validated;

pub use validated::{
    BackupLocation, DatabaseServiceKinds, ValidatedBackup, ValidatedCluster, ValidatedDatabase, ValidatedPersistence,
};
