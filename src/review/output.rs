//! A plan as text (a terminal), as Markdown (a pull-request comment: the summary table first, each object's
//! details folded in `<details>`), and as JSON (`{"changes": [...], "summary": {...}}`). Pure formatting: what is
//! printed is what the plan holds, and a plan holds no Secret values.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{Action, Change, Plan, Severity};
use crate::manifests::Diagnostic;

/// The marker a CI job finds its own comment by, to update it instead of adding one per push.
pub const COMMENT_MARKER: &str = "<!-- redis-gitops-plan -->";

/// The most characters of one value shown in text and Markdown (JSON has them whole).
const MAX_VALUE_CHARS: usize = 120;

fn value_text(value: &Value) -> String {
    let text = match value {
        Value::Null => "(unset)".to_string(),
        Value::String(text) => format!("{text:?}"),
        other => other.to_string(),
    };
    match text.char_indices().nth(MAX_VALUE_CHARS) {
        None => text,
        Some((end, _)) => format!("{}…", &text[..end]),
    }
}

fn counts(plan: &Plan) -> String {
    let summary = &plan.summary;
    let mut text = format!(
        "{} to create, {} to update, {} to delete, {} unchanged",
        summary.create, summary.update, summary.delete, summary.unchanged
    );
    if summary.risks == 0 {
        text.push_str("; no risks");
    } else {
        let _ = write!(
            text,
            "; {} risk{}: {} data-loss, {} disruption, {} warning",
            summary.risks,
            if summary.risks == 1 { "" } else { "s" },
            summary.data_loss,
            summary.disruption,
            summary.warning
        );
    }
    text
}

fn symbol(action: Action) -> &'static str {
    match action {
        Action::Create => "+",
        Action::Update => "~",
        Action::Delete => "-",
    }
}

fn title(change: &Change) -> String {
    let mut text = format!("{} {}/{}", change.kind, change.namespace, change.name);
    if let Some(to) = &change.renamed_to {
        let _ = write!(text, " (probably renamed to {to})");
    }
    if let Some(from) = &change.renamed_from {
        let _ = write!(text, " (probably renamed from {from})");
    }
    text
}

fn body_text(body: &Value) -> String {
    if body.is_null() {
        String::new()
    } else {
        format!(" {body}")
    }
}

/// The plan for a terminal.
pub fn text(plan: &Plan) -> String {
    let mut out = String::new();
    if !plan.has_changes() {
        let _ = writeln!(out, "No changes: {} objects unchanged.", plan.summary.unchanged);
        return out;
    }
    let _ = writeln!(out, "Plan: {}.", counts(plan));
    for change in &plan.changes {
        let _ = writeln!(out);
        let file = change
            .file
            .as_deref()
            .map(|file| format!("  [{file}]"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{} {} ({}){file}",
            symbol(change.action),
            title(change),
            change.action.as_str()
        );
        for field in &change.fields {
            let _ = writeln!(
                out,
                "    {}: {} → {}",
                field.path,
                value_text(&field.from),
                value_text(&field.to)
            );
        }
        for request in &change.requests {
            let _ = writeln!(
                out,
                "    REST {} {} on {}{}",
                request.method,
                request.path,
                request.cluster,
                body_text(&request.body)
            );
            if !request.filled_in_at_apply.is_empty() {
                let _ = writeln!(
                    out,
                    "      filled in at apply time from Secrets: {}",
                    request.filled_in_at_apply.join(", ")
                );
            }
        }
        for child in &change.children {
            let fields = if child.fields.is_empty() {
                String::new()
            } else {
                format!(": {}", child.fields.join(", "))
            };
            let _ = writeln!(
                out,
                "    {} {} {}{fields}",
                child.action.as_str(),
                child.kind,
                child.name
            );
            if let Some(note) = &child.note {
                let _ = writeln!(out, "      {note}");
            }
        }
        for risk in &change.risks {
            let _ = writeln!(
                out,
                "    ! {} ({}): {}",
                risk.code.as_str(),
                risk.severity.as_str(),
                risk.message
            );
        }
    }
    out
}

/// Text safe inside a Markdown table cell or summary line.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\n', " ")
}

fn badge(severity: Severity) -> &'static str {
    match severity {
        Severity::DataLoss => "🔴",
        Severity::Disruption => "🟠",
        Severity::Warning => "🟡",
    }
}

/// The plan as a pull-request comment.
pub fn markdown(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{COMMENT_MARKER}");
    let _ = writeln!(out, "### redis-gitops plan");
    let _ = writeln!(out);
    if !plan.has_changes() {
        let _ = writeln!(
            out,
            "No changes to clusters or databases ({} objects unchanged).",
            plan.summary.unchanged
        );
        return out;
    }
    let _ = writeln!(out, "**{}**", counts(plan));
    let _ = writeln!(out);
    let _ = writeln!(out, "| Object | Action | Risks |");
    let _ = writeln!(out, "|---|---|---|");
    for change in &plan.changes {
        let risks = if change.risks.is_empty() {
            "—".to_string()
        } else {
            change
                .risks
                .iter()
                .map(|risk| {
                    format!(
                        "{} {} ({})",
                        badge(risk.severity),
                        risk.code.as_str(),
                        risk.severity.as_str()
                    )
                })
                .collect::<Vec<_>>()
                .join("<br>")
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {} |",
            cell(&title(change)).replace('`', "'"),
            change.action.as_str(),
            risks
        );
    }
    for change in &plan.changes {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "<details><summary>{} {}: {}{}</summary>",
            symbol(change.action),
            cell(&title(change)),
            change.action.as_str(),
            change
                .file
                .as_deref()
                .map(|file| format!(" ({})", cell(file)))
                .unwrap_or_default()
        );
        let _ = writeln!(out);
        for risk in &change.risks {
            let _ = writeln!(
                out,
                "- {} **{}** ({}): {}",
                badge(risk.severity),
                risk.code.as_str(),
                risk.severity.as_str(),
                cell(&risk.message)
            );
        }
        if !change.risks.is_empty() {
            let _ = writeln!(out);
        }
        if !change.fields.is_empty() {
            let _ = writeln!(out, "| Field | From | To |");
            let _ = writeln!(out, "|---|---|---|");
            for field in &change.fields {
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} |",
                    cell(&field.path),
                    code_cell(&field.from),
                    code_cell(&field.to)
                );
            }
            let _ = writeln!(out);
        }
        if !change.requests.is_empty() {
            let _ = writeln!(out, "Redis Enterprise REST requests, in order:");
            let _ = writeln!(out);
            let _ = writeln!(out, "```");
            for request in &change.requests {
                let _ = writeln!(out, "{} {} (cluster {})", request.method, request.path, request.cluster);
                if !request.body.is_null() {
                    let _ = writeln!(
                        out,
                        "{}",
                        serde_json::to_string_pretty(&request.body).unwrap_or_default()
                    );
                }
                if !request.filled_in_at_apply.is_empty() {
                    let _ = writeln!(
                        out,
                        "# filled in at apply time from Secrets: {}",
                        request.filled_in_at_apply.join(", ")
                    );
                }
            }
            let _ = writeln!(out, "```");
            let _ = writeln!(out);
        }
        if !change.children.is_empty() {
            let _ = writeln!(out, "Kubernetes objects:");
            let _ = writeln!(out);
            for child in &change.children {
                let fields = if child.fields.is_empty() {
                    String::new()
                } else {
                    format!(
                        ": {}",
                        child
                            .fields
                            .iter()
                            .map(|f| format!("`{}`", cell(f)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                let note = child
                    .note
                    .as_deref()
                    .map(|note| format!(" — {}", cell(note)))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "- {} {} `{}`{fields}{note}",
                    child.action.as_str(),
                    child.kind,
                    cell(&child.name)
                );
            }
            let _ = writeln!(out);
        }
        let _ = writeln!(out, "</details>");
    }
    out
}

fn code_cell(value: &Value) -> String {
    match value {
        Value::Null => "*(unset)*".to_string(),
        other => format!("`{}`", cell(&value_text(other)).replace('`', "'")),
    }
}

/// The plan as JSON: `{"changes": [...], "summary": {...}}`.
pub fn json(plan: &Plan) -> Value {
    serde_json::to_value(plan).unwrap_or_else(|_| json!({"changes": [], "summary": {}}))
}

/// A side that does not validate, in the chosen format: the located errors (and warnings) as `validate` prints them.
pub fn invalid_text(side: &str, diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for diagnostic in diagnostics {
        let _ = writeln!(out, "{diagnostic}");
    }
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let _ = writeln!(
        out,
        "invalid: {side} has {errors} errors, {} warnings; nothing would be applied",
        diagnostics.len() - errors
    );
    out
}

/// [`invalid_text`] as a pull-request comment.
pub fn invalid_markdown(side: &str, diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{COMMENT_MARKER}");
    let _ = writeln!(out, "### redis-gitops plan");
    let _ = writeln!(out);
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let _ = writeln!(
        out,
        "🔴 **{} does not validate** ({errors} errors): the agent would apply nothing of it.",
        cell(side)
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "```");
    for diagnostic in diagnostics {
        let _ = writeln!(out, "{diagnostic}");
    }
    let _ = writeln!(out, "```");
    out
}

/// [`invalid_text`] as JSON: `{"errors": [{"file", "line", "column", "field", "severity", "message"}]}`.
pub fn invalid_json(side: &str, diagnostics: &[Diagnostic]) -> Value {
    let errors: Vec<Value> = diagnostics
        .iter()
        .map(|d| {
            json!({
                "file": d.file,
                "line": d.line,
                "column": d.column,
                "field": d.field,
                "severity": if d.is_error() { "error" } else { "warning" },
                "message": d.message,
            })
        })
        .collect();
    json!({"invalid": side, "errors": errors})
}
