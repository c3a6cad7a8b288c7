//! What `redis-gitops sandbox` needs before it starts: redis-server and the Redis module files, found or installed
//! (the sandbox crate's `install` module does the finding and installing and says what it installs), plus the
//! module builds of `--module-dir`. Prints to standard error; starts nothing.

use std::path::PathBuf;

use redis_gitops_sandbox::install;

/// The program and module files the emulator runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmulatorPrograms {
    /// redis-server.
    pub redis_server: PathBuf,
    /// Module files: those of every `--module-dir` first (a user's build of a module wins over the installed one),
    /// then the installed ones.
    pub module_files: Vec<PathBuf>,
}

/// Finds (installing what is missing) redis-server and the modules, and adds the `.so` files of `module_dirs`.
/// The error names what could not be installed or read.
pub fn prepare(module_dirs: &[PathBuf]) -> Result<EmulatorPrograms, String> {
    let mut say = |message: &str| eprintln!("sandbox: {message}");
    let found = install::ensure(&mut say).map_err(|error| error.to_string())?;
    for warning in &found.warnings {
        eprintln!("sandbox: warning: {warning}");
    }
    let mut module_files = Vec::new();
    for dir in module_dirs {
        let files = install::module_files_in(dir)
            .map_err(|error| format!("--module-dir {}: unable to read the directory: {error}", dir.display()))?;
        if files.is_empty() {
            return Err(format!("--module-dir {}: no module files (*.so) in it", dir.display()));
        }
        module_files.extend(files);
    }
    module_files.extend(found.module_files);
    Ok(EmulatorPrograms {
        redis_server: found.redis_server,
        module_files,
    })
}
