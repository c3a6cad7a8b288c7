//! The `redis-gitops` command: parses the command line and calls the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use redis_gitops::api;
use redis_gitops::desired::render::{self, Only};
use redis_gitops::manifests::{Diagnostic, LoadOptions, load_directory};

/// Keep Redis Enterprise clusters and databases exactly as a Git repository describes them.
#[derive(Parser)]
#[command(name = "redis-gitops", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check every RedisEnterpriseCluster and RedisEnterpriseDatabase in a config repository.
    ///
    /// Prints one line per valid object, then every error and warning with file:line:column, the field and how
    /// to fix it. Exits 1 if there is any error; warnings alone do not fail.
    Validate {
        /// Directory of the config repository (YAML files are read recursively; hidden directories are skipped).
        #[arg(default_value = ".")]
        path: PathBuf,
        /// Namespace of objects that set none.
        #[arg(long, short = 'n', default_value = "default")]
        namespace: String,
    },
    /// Print every Kubernetes object and Redis Enterprise REST request the agent would create.
    ///
    /// Secrets are templates: their keys are shown, passwords are never (they are generated in the cluster).
    /// Nothing is contacted; the output is computed from the files alone.
    Render {
        /// Directory of the config repository.
        #[arg(default_value = ".")]
        path: PathBuf,
        /// Namespace of objects that set none.
        #[arg(long, short = 'n', default_value = "default")]
        namespace: String,
        /// Output format: a YAML stream or one JSON document `{"kubernetes": [...], "rest": [...]}`.
        #[arg(long, short = 'o', value_enum, default_value_t = Format::Yaml)]
        output: Format,
        /// Print only the Kubernetes objects (pipeable to `kubectl apply --dry-run=client -f -`) or only the REST
        /// requests.
        #[arg(long, value_enum, default_value_t = Part::All)]
        only: Part,
    },
    /// Print the CustomResourceDefinitions (RedisEnterpriseCluster, RedisEnterpriseDatabase, GitSync) as YAML.
    Crds {
        /// Write one file per CRD into this directory instead of printing them.
        #[arg(long)]
        output_dir: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Yaml,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum Part {
    All,
    Kubernetes,
    Rest,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { path, namespace } => validate(&path, namespace),
        Command::Render {
            path,
            namespace,
            output,
            only,
        } => render_command(&path, namespace, output, only),
        Command::Crds { output_dir } => crds(output_dir),
    }
}

fn options(namespace: String) -> LoadOptions {
    LoadOptions {
        default_namespace: namespace,
        ..LoadOptions::default()
    }
}

fn print_diagnostics(diagnostics: &[Diagnostic]) {
    for diagnostic in diagnostics {
        println!("{diagnostic}");
    }
}

fn validate(path: &std::path::Path, namespace: String) -> ExitCode {
    match load_directory(path, &options(namespace)) {
        Ok(repository) => {
            for cluster in &repository.clusters {
                println!("ok {}", cluster.summary());
            }
            for database in &repository.databases {
                println!("ok {}", database.summary(&repository));
            }
            print_diagnostics(&repository.warnings);
            println!(
                "{} clusters, {} databases: valid, {} warnings",
                repository.clusters.len(),
                repository.databases.len(),
                repository.warnings.len()
            );
            ExitCode::SUCCESS
        }
        Err(diagnostics) => {
            print_diagnostics(&diagnostics);
            let errors = diagnostics.iter().filter(|d| d.is_error()).count();
            println!(
                "invalid: {errors} errors, {} warnings; nothing would be applied",
                diagnostics.len() - errors
            );
            ExitCode::FAILURE
        }
    }
}

fn render_command(path: &std::path::Path, namespace: String, output: Format, only: Part) -> ExitCode {
    let repository = match load_directory(path, &options(namespace)) {
        Ok(repository) => repository,
        Err(diagnostics) => {
            for diagnostic in &diagnostics {
                eprintln!("{diagnostic}");
            }
            eprintln!(
                "render: the repository is invalid; fix the errors above (`redis-gitops validate` lists them too)"
            );
            return ExitCode::FAILURE;
        }
    };
    for warning in &repository.warnings {
        eprintln!("{warning}");
    }
    let mut rendered = render::render(&repository);
    let only = match only {
        Part::All => Only::All,
        Part::Kubernetes => Only::Kubernetes,
        Part::Rest => Only::Rest,
    };
    match output {
        Format::Yaml => match render::to_yaml_stream(&rendered, only) {
            Ok(text) => print!("{text}"),
            Err(error) => {
                eprintln!("render: failed to write YAML: {error}");
                return ExitCode::FAILURE;
            }
        },
        Format::Json => {
            if only == Only::Kubernetes {
                rendered.rest.clear();
            } else if only == Only::Rest {
                rendered.kubernetes.clear();
            }
            match serde_json::to_string_pretty(&render::to_json(&rendered)) {
                Ok(text) => println!("{text}"),
                Err(error) => {
                    eprintln!("render: failed to write JSON: {error}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    ExitCode::SUCCESS
}

fn crds(output_dir: Option<PathBuf>) -> ExitCode {
    let Some(directory) = output_dir else {
        match api::crds_yaml() {
            Ok(text) => {
                print!("{text}");
                return ExitCode::SUCCESS;
            }
            Err(error) => {
                eprintln!("crds: {error}");
                return ExitCode::FAILURE;
            }
        }
    };
    match api::write_crds(&directory) {
        Ok(files) => {
            for file in files {
                println!("wrote {}", file.display());
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("crds: {error}");
            ExitCode::FAILURE
        }
    }
}
