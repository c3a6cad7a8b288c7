//! Diagnostics: every problem found in a config repository, located by file, line, column and field path,
//! with what is wrong and how to fix it. Errors fail a revision; warnings are reported and do not.

use std::fmt;

/// The most characters of a user's value quoted in a message; longer values are cut (with an ellipsis), so a
/// huge value never makes a huge diagnostic, event or status.
pub const MAX_QUOTED_CHARS: usize = 200;

/// `text` cut to [`MAX_QUOTED_CHARS`] characters (on a character boundary), with `…` when it was longer.
pub fn truncate(text: &str) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        None => std::borrow::Cow::Borrowed(text),
        Some((end, _)) => std::borrow::Cow::Owned(format!("{}…", &text[..end])),
    }
}

/// A user's value as messages quote it: in double quotes, cut by [`truncate`]. Use it wherever a message
/// repeats input.
pub fn quote(text: &str) -> String {
    format!("\"{}\"", truncate(text))
}

/// The most characters of a file path or field path kept in a diagnostic.
pub const MAX_PATH_CHARS: usize = 512;
/// The most characters of a diagnostic's message.
pub const MAX_MESSAGE_CHARS: usize = 2048;

fn cut(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        None => text.to_string(),
        Some((end, _)) => format!("{}…", &text[..end]),
    }
}

/// How serious a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The revision cannot be applied.
    Error,
    /// Reported, but the revision can be applied (for example a field of the official operator we do not
    /// manage yet).
    Warning,
}

/// One problem in a config repository.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// File relative to the repository root, '/'-separated.
    pub file: String,
    /// Line, from 1 (0 when the problem concerns the whole file).
    pub line: u32,
    /// Column, from 1 (0 when the problem concerns the whole file).
    pub column: u32,
    /// Field path such as `spec.modulesList[0].name`, when the problem is about one field.
    pub field: Option<String>,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl Diagnostic {
    /// An error at a location.
    pub fn error(file: &str, location: Location, field: Option<String>, message: impl Into<String>) -> Self {
        Self::new(Severity::Error, file, location, field, message)
    }

    /// A warning at a location.
    pub fn warning(file: &str, location: Location, field: Option<String>, message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, file, location, field, message)
    }

    fn new(
        severity: Severity,
        file: &str,
        location: Location,
        field: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        // A safety net under `quote`: whatever a message or a field path repeats from the input, one diagnostic
        // stays small enough for an event and a status.
        Self {
            severity,
            file: cut(file, MAX_PATH_CHARS),
            line: location.line,
            column: location.column,
            field: field.map(|field| cut(&field, MAX_PATH_CHARS)),
            message: cut(&message.into(), MAX_MESSAGE_CHARS),
        }
    }

    /// Whether this diagnostic fails the revision.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        write!(f, ": ")?;
        if self.severity == Severity::Warning {
            write!(f, "warning: ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        write!(f, "{}", self.message)
    }
}

/// A position in a source file, 1-based; 0 when unknown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    /// Line, from 1.
    pub line: u32,
    /// Column, from 1.
    pub column: u32,
}

impl Location {
    /// A location at line and column.
    pub fn new(line: u32, column: u32) -> Self {
        Self { line, column }
    }
}

/// A path to a field inside a document, displayed the way users write it: `spec.modulesList[0].name`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldPath(Vec<PathSegment>);

/// One step of a [`FieldPath`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PathSegment {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

impl FieldPath {
    /// The empty path (the document itself).
    pub fn root() -> Self {
        Self(Vec::new())
    }

    /// This path extended by a mapping key.
    pub fn key(&self, key: &str) -> Self {
        let mut segments = self.0.clone();
        segments.push(PathSegment::Key(key.to_string()));
        Self(segments)
    }

    /// This path extended by a sequence index.
    pub fn index(&self, index: usize) -> Self {
        let mut segments = self.0.clone();
        segments.push(PathSegment::Index(index));
        Self(segments)
    }

    /// A path from dotted keys, for example `FieldPath::of(&["spec", "nodes"])`.
    pub fn of(keys: &[&str]) -> Self {
        Self(keys.iter().map(|k| PathSegment::Key((*k).to_string())).collect())
    }

    /// The path without its last segment.
    pub fn parent(&self) -> Option<Self> {
        if self.0.is_empty() {
            None
        } else {
            Some(Self(self.0[..self.0.len() - 1].to_vec()))
        }
    }

    /// Whether `prefix` is this path or one of its ancestors.
    pub fn starts_with(&self, prefix: &FieldPath) -> bool {
        self.0.starts_with(&prefix.0)
    }

    /// The last mapping key of the path, if it ends in one.
    pub fn last_key(&self) -> Option<&str> {
        match self.0.last() {
            Some(PathSegment::Key(key)) => Some(key),
            _ => None,
        }
    }

    /// The segments of the path.
    pub fn segments(&self) -> &[PathSegment] {
        &self.0
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (position, segment) in self.0.iter().enumerate() {
            match segment {
                PathSegment::Key(key) if position == 0 => write!(f, "{key}")?,
                PathSegment::Key(key) if key.contains('.') || key.contains('/') => write!(f, "[{key:?}]")?,
                PathSegment::Key(key) => write!(f, ".{key}")?,
                PathSegment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_values_are_cut_on_a_character_boundary() {
        assert_eq!(quote("short"), "\"short\"");
        let exact = "x".repeat(MAX_QUOTED_CHARS);
        assert_eq!(quote(&exact), format!("\"{exact}\""));
        let long = "é".repeat(900_000);
        let quoted = quote(&long);
        assert_eq!(quoted, format!("\"{}…\"", "é".repeat(MAX_QUOTED_CHARS)));
        assert!(quoted.chars().count() <= MAX_QUOTED_CHARS + 3);
    }

    #[test]
    fn paths_display_like_users_write_them() {
        let path = FieldPath::of(&["spec", "modulesList"]).index(0).key("name");
        assert_eq!(path.to_string(), "spec.modulesList[0].name");
        let label = FieldPath::of(&["metadata", "labels"]).key("app.kubernetes.io/name");
        assert_eq!(label.to_string(), "metadata.labels[\"app.kubernetes.io/name\"]");
    }

    #[test]
    fn diagnostics_print_file_line_column_field_message() {
        let error = Diagnostic::error(
            "databases/cache.yaml",
            Location::new(7, 17),
            Some("spec.evictionPolicy".into()),
            "\"illegal\" is not one of volatile-lru, allkeys-lru",
        );
        assert_eq!(
            error.to_string(),
            "databases/cache.yaml:7:17: spec.evictionPolicy: \"illegal\" is not one of volatile-lru, allkeys-lru"
        );
        let warning = Diagnostic::warning("rec.yaml", Location::new(3, 3), None, "unused");
        assert_eq!(warning.to_string(), "rec.yaml:3:3: warning: unused");
    }
}
