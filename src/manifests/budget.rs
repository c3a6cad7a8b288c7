//! The budget of one revision, across all its files: total bytes, YAML nodes after alias expansion and objects.
//! The per-file limits of [`super::yaml::Limits`] stay; this bounds what many files together may cost, so one
//! commit cannot exhaust the memory of an agent shared by every tenant. The agent sets the budget once from its
//! command line ([`configure`]); every loader and tree reader built with defaults then uses it.

use std::sync::OnceLock;

/// Default most bytes of YAML in one revision: 16 MiB.
pub const DEFAULT_MAX_REVISION_BYTES: u64 = 16 << 20;
/// Default most YAML nodes in one revision, counting every alias expansion: 1 000 000.
pub const DEFAULT_MAX_REVISION_NODES: usize = 1_000_000;
/// Default most objects (documents) in one revision: 10 000.
pub const DEFAULT_MAX_REVISION_OBJECTS: usize = 10_000;

/// What one revision may cost, summed over all its files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RevisionBudget {
    /// Most bytes of YAML files, checked before a file's content is read.
    pub max_bytes: u64,
    /// Most YAML nodes (mappings, sequences, scalars, keys), after alias expansion.
    pub max_nodes: usize,
    /// Most objects (non-empty YAML documents).
    pub max_objects: usize,
}

impl RevisionBudget {
    /// The built-in defaults: 16 MiB, 1 000 000 nodes, 10 000 objects.
    pub const BUILT_IN: RevisionBudget = RevisionBudget {
        max_bytes: DEFAULT_MAX_REVISION_BYTES,
        max_nodes: DEFAULT_MAX_REVISION_NODES,
        max_objects: DEFAULT_MAX_REVISION_OBJECTS,
    };
}

impl Default for RevisionBudget {
    /// The budget set with [`configure`], else [`RevisionBudget::BUILT_IN`].
    fn default() -> Self {
        *CONFIGURED.get().unwrap_or(&RevisionBudget::BUILT_IN)
    }
}

static CONFIGURED: OnceLock<RevisionBudget> = OnceLock::new();

/// Sets the budget of every revision this process loads (the agent's `--max-revision-*` flags). Only the first
/// call counts; it returns false when a budget was already set.
pub fn configure(budget: RevisionBudget) -> bool {
    CONFIGURED.set(budget).is_ok()
}

/// What a revision has used of its budget so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BudgetUse {
    /// Bytes of the files read.
    pub bytes: u64,
    /// YAML nodes parsed.
    pub nodes: usize,
    /// Objects found.
    pub objects: usize,
}

/// The error for a revision whose files together exceed [`RevisionBudget::max_bytes`].
pub fn bytes_message(budget: &RevisionBudget) -> String {
    format!(
        "the revision has more than {} bytes of YAML in total (the agent's --max-revision-bytes); the files from here \
         on are not read; split the repository into several GitSync paths",
        budget.max_bytes
    )
}

/// The error for a revision whose files together exceed [`RevisionBudget::max_nodes`].
pub fn nodes_message(budget: &RevisionBudget) -> String {
    format!(
        "the revision expands to more than {} YAML nodes in total (aliases count each time they are used; the agent's \
         --max-revision-nodes); the files from here on are not read; remove aliases or split the repository",
        budget.max_nodes
    )
}

/// The error for a revision with more than [`RevisionBudget::max_objects`] objects.
pub fn objects_message(budget: &RevisionBudget) -> String {
    format!(
        "the revision has more than {} objects (the agent's --max-revision-objects); the objects from here on are not \
         read; split the repository into several GitSync paths",
        budget.max_objects
    )
}

/// Largest `--max-revision-bytes` accepted: 1 GiB.
pub const MAX_BYTES_SETTING: u64 = 1 << 30;
/// Largest `--max-revision-nodes` accepted: 100 000 000.
pub const MAX_NODES_SETTING: usize = 100_000_000;
/// Largest `--max-revision-objects` accepted: 1 000 000.
pub const MAX_OBJECTS_SETTING: usize = 1_000_000;

/// Parses a size flag: bytes, or a number with `Ki`, `Mi` or `Gi` (`16Mi`), from 1 byte to [`MAX_BYTES_SETTING`].
pub fn parse_size_setting(text: &str) -> Result<u64, String> {
    let invalid = || {
        format!(
            "{} is not a size from 1 to 1Gi; write bytes or a number with Ki, Mi or Gi, for example 16Mi",
            super::diagnostics::quote(text)
        )
    };
    let text = text.trim();
    let (number, multiplier) = [("Ki", 1u64 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30)]
        .iter()
        .find_map(|(suffix, multiplier)| text.strip_suffix(suffix).map(|number| (number, *multiplier)))
        .unwrap_or((text, 1));
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let bytes = number
        .parse::<u64>()
        .ok()
        .and_then(|number| number.checked_mul(multiplier))
        .ok_or_else(invalid)?;
    if bytes == 0 || bytes > MAX_BYTES_SETTING {
        return Err(invalid());
    }
    Ok(bytes)
}

/// Parses a count flag: a whole number from 1 to `maximum` (underscores allowed: `1_000_000`).
pub fn parse_count_setting(text: &str, maximum: usize) -> Result<usize, String> {
    let digits: String = text.trim().chars().filter(|c| *c != '_').collect();
    digits
        .parse::<usize>()
        .ok()
        .filter(|count| (1..=maximum).contains(count))
        .ok_or_else(|| {
            format!(
                "{} is not a whole number from 1 to {maximum}",
                super::diagnostics::quote(text)
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_settings_are_bounded() {
        assert_eq!(parse_size_setting("16Mi"), Ok(16 << 20));
        assert_eq!(parse_size_setting("4096"), Ok(4096));
        assert_eq!(parse_size_setting("1Gi"), Ok(1 << 30));
        for bad in [
            "",
            "0",
            "2Gi",
            "18446744073709551615Gi",
            "99999999999999999999999",
            "1.5Mi",
            "-1",
            "16MB",
        ] {
            assert_eq!(
                parse_size_setting(bad),
                Err(format!(
                    "\"{bad}\" is not a size from 1 to 1Gi; write bytes or a number with Ki, Mi or Gi, for example 16Mi"
                )),
                "{bad}"
            );
        }
    }

    #[test]
    fn count_settings_are_bounded() {
        assert_eq!(parse_count_setting("1_000_000", MAX_NODES_SETTING), Ok(1_000_000));
        assert_eq!(
            parse_count_setting("2147483648000", MAX_OBJECTS_SETTING),
            Err("\"2147483648000\" is not a whole number from 1 to 1000000".to_string())
        );
        assert!(parse_count_setting("0", MAX_OBJECTS_SETTING).is_err());
    }
}
