//! Git sources: fetch with git2, resolve refs, read the tree at a path, credentials (design.md §3).
