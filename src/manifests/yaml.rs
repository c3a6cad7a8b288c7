//! YAML documents with the location of every node: a file is parsed (with limits against hostile input) into
//! JSON values plus an index from field path to line and column, so every later check can point at the exact
//! place a user has to edit.

use std::collections::HashMap;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use serde_saphyr::{Budget, Options, Spanned};

use super::diagnostics::{FieldPath, Location};

/// Limits that protect the loader against hostile or accidental huge input.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest file read, in bytes.
    pub max_file_bytes: u64,
    /// Most documents in one file.
    pub max_documents: usize,
    /// Deepest nesting of mappings and sequences.
    pub max_depth: usize,
    /// Most YAML nodes in one file, counting every alias expansion.
    pub max_nodes: usize,
    /// Most files in one repository.
    pub max_files: usize,
    /// Most bytes of scalars in one file, counting every alias expansion (an alias of a long string repeats it).
    pub max_scalar_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_file_bytes: 1024 * 1024,
            max_documents: 500,
            max_depth: 48,
            max_nodes: 200_000,
            max_files: 20_000,
            max_scalar_bytes: 4 * 1024 * 1024,
        }
    }
}

/// One YAML document as JSON, with locations.
#[derive(Clone, Debug)]
pub struct Document {
    /// The document's content.
    pub value: Value,
    /// Where the document starts.
    pub start: Location,
    /// Locations of every node, by field path.
    pub spans: Spans,
    /// How many YAML nodes the document holds after alias expansion (mapping keys included).
    pub nodes: usize,
}

/// Where each field of a document is: its key and its value.
#[derive(Clone, Debug, Default)]
pub struct Spans {
    values: HashMap<FieldPath, Location>,
    keys: HashMap<FieldPath, Location>,
}

impl Spans {
    /// Where the value at `path` is; falls back to the closest parent that has a location.
    pub fn value(&self, path: &FieldPath) -> Location {
        let mut current = Some(path.clone());
        while let Some(path) = current {
            if let Some(location) = self.values.get(&path) {
                return *location;
            }
            current = path.parent();
        }
        Location::default()
    }

    /// Where the key of the field at `path` is (its value's location for sequence items).
    pub fn key(&self, path: &FieldPath) -> Location {
        self.keys.get(path).copied().unwrap_or_else(|| self.value(path))
    }
}

/// A YAML syntax or limit error, located.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    /// Where the parser stopped.
    pub location: Location,
    /// What the parser said.
    pub message: String,
    /// Whether the error is the node limit ([`Limits::max_nodes`]) being reached.
    pub nodes_exceeded: bool,
}

/// Parses every document of a YAML file. Empty documents (only comments) are skipped.
pub fn parse_documents(text: &str, limits: &Limits) -> Result<Vec<Document>, SyntaxError> {
    let mut options = Options::default();
    options.with_snippet = false;
    let mut budget = Budget::default();
    budget.max_depth = limits.max_depth;
    budget.max_documents = limits.max_documents;
    budget.max_nodes = limits.max_nodes;
    budget.max_aliases = 10_000;
    budget.max_total_scalar_bytes = limits.max_scalar_bytes;
    options.budget = Some(budget);
    let documents: Vec<Option<Spanned<Node>>> =
        serde_saphyr::from_str_multiple_with_options(text, options).map_err(|error| syntax_error(&error, limits))?;
    let mut parsed = Vec::with_capacity(documents.len());
    for document in documents.into_iter().flatten() {
        let start = to_location(&document.referenced);
        let mut spans = Spans::default();
        let value = into_json(document, &FieldPath::root(), &mut spans).map_err(|(location, message)| SyntaxError {
            location,
            message,
            nodes_exceeded: false,
        })?;
        if value.is_null() {
            continue;
        }
        let nodes = spans.values.len() + spans.keys.len();
        parsed.push(Document {
            value,
            start,
            spans,
            nodes,
        });
    }
    Ok(parsed)
}

fn syntax_error(error: &serde_saphyr::Error, limits: &Limits) -> SyntaxError {
    let location = error.location().map(|l| to_location(&l)).unwrap_or_default();
    let text = error.to_string();
    // The parser's text carries its own location ("error: line L column C: ..." or "... at line L, column C");
    // we print the location ourselves, in the same format as every other diagnostic.
    let first_line = text.lines().next().unwrap_or_default().trim_start_matches("error: ");
    let without_prefix = first_line
        .split_once(": ")
        .filter(|(prefix, _)| prefix.starts_with("line "))
        .map_or(first_line, |(_, rest)| rest);
    let message = match without_prefix.rfind(" at line ") {
        Some(position) if without_prefix[position..].contains(", column ") => &without_prefix[..position],
        _ => without_prefix,
    }
    .to_string();
    let nodes_exceeded = message.contains("budget breached") && message.contains("Nodes");
    let message = if message.contains("budget breached") {
        budget_message(&message, limits)
    } else if let Some((duplicate, _)) = message.split_once(", set DuplicateKeyPolicy") {
        format!("{duplicate}; keep only one of them")
    } else {
        message
    };
    SyntaxError {
        location,
        message,
        nodes_exceeded,
    }
}

/// A limit message in the user's terms, without the parser's internal accounting.
fn budget_message(message: &str, limits: &Limits) -> String {
    if message.contains("Nodes") {
        format!(
            "the YAML expands to more than {} nodes (aliases can multiply a small file); split it or remove the aliases",
            limits.max_nodes
        )
    } else if message.contains("Depth") {
        format!("the YAML is nested deeper than {} levels; flatten it", limits.max_depth)
    } else if message.contains("Documents") {
        format!(
            "the file has more than {} documents; split it into several files",
            limits.max_documents
        )
    } else if message.contains("ScalarBytes") {
        format!(
            "the YAML's text expands to more than {} bytes (aliases repeat what they point at); write the values out \
             or split the file",
            limits.max_scalar_bytes
        )
    } else if message.contains("Alias") {
        "the YAML uses too many aliases; write the values out or split the file".to_string()
    } else {
        "the YAML exceeds the parser's limits; split it into smaller files".to_string()
    }
}

fn to_location(location: &serde_saphyr::Location) -> Location {
    Location::new(
        u32::try_from(location.line()).unwrap_or(u32::MAX),
        u32::try_from(location.column()).unwrap_or(u32::MAX),
    )
}

/// A YAML node as the parser gives it, every child with its location.
enum Node {
    Null,
    Bool(bool),
    Integer(i64),
    Unsigned(u64),
    Float(f64),
    String(String),
    Sequence(Vec<Spanned<Node>>),
    Mapping(Vec<(Spanned<String>, Spanned<Node>)>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NodeVisitor;
        impl<'de> Visitor<'de> for NodeVisitor {
            type Value = Node;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a YAML node")
            }
            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_none<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_bool<E>(self, value: bool) -> Result<Node, E> {
                Ok(Node::Bool(value))
            }
            fn visit_i64<E>(self, value: i64) -> Result<Node, E> {
                Ok(Node::Integer(value))
            }
            fn visit_u64<E>(self, value: u64) -> Result<Node, E> {
                Ok(Node::Unsigned(value))
            }
            fn visit_f64<E>(self, value: f64) -> Result<Node, E> {
                Ok(Node::Float(value))
            }
            fn visit_str<E>(self, value: &str) -> Result<Node, E> {
                Ok(Node::String(value.to_string()))
            }
            fn visit_string<E>(self, value: String) -> Result<Node, E> {
                Ok(Node::String(value))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = access.next_element()? {
                    items.push(item);
                }
                Ok(Node::Sequence(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Node, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = access.next_key()? {
                    let value = access.next_value()?;
                    entries.push((key, value));
                }
                Ok(Node::Mapping(entries))
            }
        }
        deserializer.deserialize_any(NodeVisitor)
    }
}

fn into_json(node: Spanned<Node>, path: &FieldPath, spans: &mut Spans) -> Result<Value, (Location, String)> {
    let location = to_location(&node.referenced);
    spans.values.insert(path.clone(), location);
    Ok(match node.value {
        Node::Null => Value::Null,
        Node::Bool(value) => Value::Bool(value),
        Node::Integer(value) => Value::Number(value.into()),
        Node::Unsigned(value) => Value::Number(value.into()),
        Node::Float(value) => match Number::from_f64(value) {
            Some(number) => Value::Number(number),
            None => {
                return Err((
                    location,
                    format!("{value} is not a finite number; quote it if it is text"),
                ));
            }
        },
        Node::String(value) => Value::String(value),
        Node::Sequence(items) => {
            let mut values = Vec::with_capacity(items.len());
            for (index, item) in items.into_iter().enumerate() {
                values.push(into_json(item, &path.index(index), spans)?);
            }
            Value::Array(values)
        }
        Node::Mapping(entries) => {
            let mut map = Map::with_capacity(entries.len());
            for (key, value) in entries {
                let child = path.key(&key.value);
                spans.keys.insert(child.clone(), to_location(&key.referenced));
                let value = into_json(value, &child, spans)?;
                map.insert(key.value, value);
            }
            Value::Object(map)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_has_its_location() {
        let text = "apiVersion: v1\nkind: X\nspec:\n  memorySize: 100MB\n  modules:\n    - name: search\n";
        let documents = parse_documents(text, &Limits::default()).expect("valid YAML");
        assert_eq!(documents.len(), 1);
        let spans = &documents[0].spans;
        assert_eq!(
            spans.value(&FieldPath::of(&["spec", "memorySize"])),
            Location::new(4, 15)
        );
        assert_eq!(spans.key(&FieldPath::of(&["spec", "memorySize"])), Location::new(4, 3));
        let module = FieldPath::of(&["spec", "modules"]).index(0).key("name");
        assert_eq!(spans.value(&module), Location::new(6, 13));
        // A path that does not exist falls back to its closest parent.
        assert_eq!(spans.value(&FieldPath::of(&["spec", "missing"])), Location::new(4, 3));
    }

    #[test]
    fn empty_documents_are_skipped_and_multiple_documents_kept() {
        let text = "---\n# only a comment\n---\na: 1\n---\nb: 2\n";
        let documents = parse_documents(text, &Limits::default()).expect("valid YAML");
        assert_eq!(documents.len(), 2);
        assert_eq!(documents[1].start.line, 6);
    }

    #[test]
    fn syntax_errors_are_located_without_the_parser_prefix() {
        let error = parse_documents("a: [1, 2\nb: 3\n", &Limits::default()).expect_err("invalid YAML");
        assert_eq!(error.location, Location::new(2, 2));
        assert_eq!(error.message, "illegal placement of ':' indicator");
    }
}
