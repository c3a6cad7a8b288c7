//! No-op poll cost: our `GitSource::poll` against `git ls-remote` on the same repository (1000 YAML files,
//! 5000 commits) served by `git daemon` on loopback, N times each; prints wall time and CPU time per poll.
//!
//! CPU time comes from `/proc/self/stat`: utime+stime of this process for our polls (libgit2 runs in-process),
//! cutime+cstime of reaped children for `git ls-remote`. The server's CPU is counted in neither.

use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use redis_gitops::source::{Credentials, GitRef, GitSource, SourceConfig};

const FILES: usize = 1000;
const COMMITS: usize = 5000;
const POLLS: usize = 200;

/// (own utime+stime, reaped children's cutime+cstime) in seconds.
fn cpu_times() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime is field 14 overall, i.e. index 11 here.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<f64> = after
        .split_whitespace()
        .map(|field| field.parse().unwrap_or(0.0))
        .collect();
    let ticks = 100.0; // CLK_TCK on Linux.
    let get = |index: usize| fields.get(index).copied().unwrap_or(0.0) / ticks;
    (get(11) + get(12), get(13) + get(14))
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdout(Stdio::null())
        .status()
        .expect("git is installed (apt-get install git)");
    assert!(status.success(), "git {args:?} failed");
}

/// Builds the repository with one `git fast-import` stream: a first commit adding every file, then one file
/// changed per commit.
fn build_repository(root: &Path) {
    git(root, &["init", "-q", "--bare", "-b", "main", "repo.git"]);
    let mut stream = Vec::new();
    let mut mark = 0;
    for commit in 0..COMMITS {
        mark += 1;
        writeln!(stream, "commit refs/heads/main\nmark :{mark}").unwrap();
        writeln!(
            stream,
            "committer Bench <bench@example.invalid> {} +0000",
            1_700_000_000 + commit
        )
        .unwrap();
        let message = format!("commit {commit}");
        writeln!(stream, "data {}\n{message}", message.len()).unwrap();
        if commit > 0 {
            writeln!(stream, "from :{}", mark - 1).unwrap();
        }
        let changed: Vec<usize> = if commit == 0 {
            (0..FILES).collect()
        } else {
            vec![commit % FILES]
        };
        for file in changed {
            let content = format!(
                "apiVersion: app.redislabs.com/v1alpha1\nkind: RedisEnterpriseDatabase\nmetadata:\n  name: db-{file}\nspec:\n  memorySize: 100MB\n  revision: {commit}\n"
            );
            writeln!(
                stream,
                "M 100644 inline databases/db-{file:04}.yaml\ndata {}\n{content}",
                content.len()
            )
            .unwrap();
        }
    }
    let mut child = Command::new("git")
        .args(["fast-import", "--quiet"])
        .current_dir(root.join("repo.git"))
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .stdin(Stdio::piped())
        .spawn()
        .expect("run git fast-import");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&stream)
        .expect("feed fast-import");
    assert!(child.wait().expect("fast-import").success());
    git(&root.join("repo.git"), &["gc", "-q"]);
}

fn main() {
    let root = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    build_repository(root.path());
    println!("built {FILES} files x {COMMITS} commits in {:?}", started.elapsed());

    let port = TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    // git-daemon itself: `git daemon` would run it as a grandchild that outlives killing `git`.
    let exec_path = Command::new("git")
        .arg("--exec-path")
        .output()
        .expect("git is installed (apt-get install git)");
    let daemon_program = Path::new(String::from_utf8_lossy(&exec_path.stdout).trim()).join("git-daemon");
    let mut daemon = Command::new(daemon_program)
        .args(["--reuseaddr", "--export-all", "--listen=127.0.0.1"])
        .arg(format!("--port={port}"))
        .arg(format!("--base-path={}", root.path().display()))
        .arg(root.path())
        .stderr(Stdio::null())
        .spawn()
        .expect("git daemon (apt-get install git)");
    let url = format!("git://127.0.0.1:{port}/repo.git");
    let wait_started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() && wait_started.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(50));
    }

    let cache = tempfile::tempdir().expect("cache dir");
    let source = GitSource::new(SourceConfig {
        url: url.clone(),
        reference: GitRef::Branch("main".into()),
        credentials: Credentials::none(),
        cache_dir: cache.path().to_path_buf(),
        timeout: Duration::from_secs(60),
    })
    .expect("source");
    let cold = source.poll().expect("first poll");
    println!(
        "first poll (shallow fetch): {:?}, {} objects, {}",
        cold.duration, cold.received_objects, cold.revision
    );

    let (cpu_before, _) = cpu_times();
    let wall = Instant::now();
    for _ in 0..POLLS {
        let outcome = source.poll().expect("no-op poll");
        assert!(!outcome.fetched, "a no-op poll fetched");
    }
    let ours_wall = wall.elapsed();
    let ours_cpu = cpu_times().0 - cpu_before;

    let (_, children_before) = cpu_times();
    let wall = Instant::now();
    for _ in 0..POLLS {
        let status = Command::new("git")
            .args(["ls-remote", &url, "refs/heads/main"])
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .stdout(Stdio::null())
            .status()
            .expect("git ls-remote");
        assert!(status.success());
    }
    let ls_wall = wall.elapsed();
    let ls_cpu = cpu_times().1 - children_before;

    let per = |total: f64| total * 1000.0 / POLLS as f64;
    println!("{POLLS} no-op polls on {url}");
    println!(
        "  redis-gitops poll : wall {:.3} ms/poll, cpu {:.3} ms/poll",
        per(ours_wall.as_secs_f64()),
        per(ours_cpu)
    );
    println!(
        "  git ls-remote     : wall {:.3} ms/poll, cpu {:.3} ms/poll",
        per(ls_wall.as_secs_f64()),
        per(ls_cpu)
    );
    if ls_cpu > 0.0 {
        println!("  cpu ratio (ours / ls-remote): {:.2}", ours_cpu / ls_cpu);
    }
    let _ = daemon.kill();
    let _ = daemon.wait();
}
