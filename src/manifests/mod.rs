//! Reading a config repository: a tree of YAML files becomes typed, validated REC and REDB objects, each with
//! the file and line it came from. Every problem of a revision is collected (not just the first), located by
//! file, line, column and field, with a fix hint. Nothing here does I/O beyond reading the given directory.

pub mod backup;
pub mod budget;
pub mod diagnostics;
pub mod files;
pub mod quantity;
pub mod repo;
pub mod schema;
pub mod validate;
pub mod yaml;

pub use budget::RevisionBudget;
pub use diagnostics::{Diagnostic, FieldPath, Location, Severity, quote, truncate};
pub use files::SourceFile;
pub use repo::{LoadOptions, Repository, load_directory, load_files};
