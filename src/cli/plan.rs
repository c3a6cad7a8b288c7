//! `redis-gitops plan`: loads the base and the head (directories or Git revisions, `review::input`), plans the
//! change (`review::plan`) and prints it as text, Markdown or JSON. Exit codes are a contract CI scripts rely on:
//! 0 no change, 1 changes, 2 error (a side that does not validate, an unreadable input), 3 when `--fail-on`
//! matches. Binary-private; the logic is in the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use redis_gitops::api::gitsync::GitSync;
use redis_gitops::manifests::LoadOptions;
use redis_gitops::review::input::{InputError, Side, load_side};
use redis_gitops::review::{self, FailOn, PruneSettings, output};

use super::plan_comment::{self, CommentFlags, CommentTarget};
use super::plan_live::{self, LiveScope};

/// Exit code: nothing changes.
const NO_CHANGE: u8 = 0;
/// Exit code: something changes.
const CHANGES: u8 = 1;
/// Exit code: the plan could not be made.
const ERROR: u8 = 2;
/// Exit code: a risk matches `--fail-on`.
const FAILED_ON: u8 = 3;

/// How the plan is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// For a terminal.
    Text,
    /// A pull-request comment.
    Markdown,
    /// One JSON document.
    Json,
}

/// What the head is compared with.
pub enum Base {
    /// `--base`: a directory or a revision.
    Revision(String),
    /// `--live [--context NAME]`: the objects in the cluster now.
    Live {
        /// The kubeconfig context (default: the current one).
        context: Option<String>,
    },
}

/// The parsed command line of `plan`.
pub struct PlanCommand {
    /// `--base`, or `--live` (the live cluster as the base, through the kubeconfig).
    pub base: Base,
    /// `--head`.
    pub head: String,
    /// `--repo`.
    pub repo: PathBuf,
    /// `--path` (else the GitSync's `spec.path`, else the root).
    pub path: Option<String>,
    /// `-o`.
    pub format: Format,
    /// `--fail-on`.
    pub fail_on: Option<FailOn>,
    /// `-n` (else the GitSync's namespace, else `default`).
    pub namespace: Option<String>,
    /// `--gitsync FILE`.
    pub gitsync: Option<PathBuf>,
    /// `--prune`.
    pub prune: Option<bool>,
    /// `--allow-database-deletion`.
    pub allow_database_deletion: Option<bool>,
    /// `--comment` with its flags: post the plan on the pull request.
    pub comment: Option<CommentFlags>,
}

fn read_gitsync(path: &Path) -> Result<GitSync, String> {
    let text = std::fs::read_to_string(path).map_err(|error| format!("unable to read {}: {error}", path.display()))?;
    serde_saphyr::from_str::<GitSync>(&text).map_err(|error| format!("{} is not a GitSync: {error}", path.display()))
}

/// Runs `plan` and returns its exit code.
pub fn run(command: PlanCommand) -> ExitCode {
    // Where the comment goes is settled first: a CI job missing a variable fails before any work.
    let comment = match command
        .comment
        .as_ref()
        .map(|flags| plan_comment::resolve(flags, &command.repo, &|name| std::env::var(name).ok()))
        .transpose()
    {
        Ok(comment) => comment,
        Err(message) => {
            eprintln!("plan: {message}");
            return ExitCode::from(ERROR);
        }
    };
    plan_and_print(&command, comment.as_ref())
}

/// Posts `markdown` when `--comment` was given; an error there makes the exit code 2.
fn commented(comment: Option<&CommentTarget>, markdown: impl FnOnce() -> String, code: u8) -> ExitCode {
    let Some(target) = comment else {
        return ExitCode::from(code);
    };
    match plan_comment::post(target, &markdown()) {
        Ok(done) => {
            eprintln!("plan: {done}");
            ExitCode::from(code)
        }
        Err(message) => {
            eprintln!("plan: the plan was made but not posted: {message}");
            ExitCode::from(ERROR)
        }
    }
}

fn plan_and_print(command: &PlanCommand, comment: Option<&CommentTarget>) -> ExitCode {
    let gitsync = match command.gitsync.as_deref().map(read_gitsync).transpose() {
        Ok(gitsync) => gitsync,
        Err(message) => {
            eprintln!("plan: {message}");
            return ExitCode::from(ERROR);
        }
    };
    let mut settings = gitsync
        .as_ref()
        .map(|g| PruneSettings::of_gitsync(&g.spec))
        .unwrap_or_default();
    if command.prune.is_some() {
        settings.prune = command.prune;
    }
    if command.allow_database_deletion.is_some() {
        settings.allow_database_deletion = command.allow_database_deletion;
    }
    let path = command
        .path
        .clone()
        .or_else(|| gitsync.as_ref().and_then(|g| g.spec.path.clone()))
        .unwrap_or_default();
    let namespace = command
        .namespace
        .clone()
        .or_else(|| gitsync.as_ref().and_then(|g| g.metadata.namespace.clone()))
        .unwrap_or_else(|| "default".to_string());
    let options = LoadOptions {
        default_namespace: namespace,
        ..LoadOptions::default()
    };
    let head_side = Side::parse(&command.head, &command.repo);
    // The head first: its errors are what the pull request must fix.
    let head = match load_side(&head_side, &path, &options) {
        Ok(head) => head,
        Err(error) => return failed("head", error, command.format, comment),
    };
    let base = match &command.base {
        Base::Revision(base) => match load_side(&Side::parse(base, &command.repo), &path, &options) {
            Ok(base) => base.repository,
            Err(error) => return failed("base", error, command.format, comment),
        },
        Base::Live { context } => {
            let scope = match &gitsync {
                Some(gitsync) => LiveScope::GitSync {
                    namespace: gitsync
                        .metadata
                        .namespace
                        .clone()
                        .unwrap_or_else(|| "default".to_string()),
                    name: gitsync.metadata.name.clone().unwrap_or_default(),
                },
                None => LiveScope::of_head(&head.repository),
            };
            match plan_live::read(&scope, context.as_deref(), &options) {
                Ok(live) => {
                    eprintln!("plan: comparing the head with {}", live.description);
                    live.repository
                }
                Err(message) => {
                    eprintln!("plan: --live: {message}");
                    return ExitCode::from(ERROR);
                }
            }
        }
    };
    let plan = review::plan(&base, &head.repository, &settings);
    match command.format {
        Format::Text => print!("{}", output::text(&plan)),
        Format::Markdown => print!("{}", output::markdown(&plan)),
        Format::Json => match serde_json::to_string_pretty(&output::json(&plan)) {
            Ok(text) => println!("{text}"),
            Err(error) => {
                eprintln!("plan: failed to write JSON: {error}");
                return ExitCode::from(ERROR);
            }
        },
    }
    let code = if command.fail_on.is_some_and(|fail_on| plan.fails(fail_on)) {
        FAILED_ON
    } else if plan.has_changes() {
        CHANGES
    } else {
        NO_CHANGE
    };
    commented(comment, || output::markdown(&plan), code)
}

fn failed(which: &str, error: InputError, format: Format, comment: Option<&CommentTarget>) -> ExitCode {
    match error {
        InputError::Invalid { side, diagnostics } => {
            let side = format!("the {which} ({side})");
            match format {
                Format::Text => print!("{}", output::invalid_text(&side, &diagnostics)),
                Format::Markdown => print!("{}", output::invalid_markdown(&side, &diagnostics)),
                Format::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&output::invalid_json(&side, &diagnostics)).unwrap_or_default()
                ),
            }
            eprintln!(
                "plan: the {which} does not validate; fix the errors above (`redis-gitops validate` lists them too)"
            );
            // The reviewers see the errors in the comment too.
            return commented(comment, || output::invalid_markdown(&side, &diagnostics), ERROR);
        }
        other => eprintln!("plan: {which}: {other}"),
    }
    ExitCode::from(ERROR)
}
