//! Peak memory of loading hostile revisions against the revision budget (issue 9, item 8): each load runs in a
//! child process (this program again) and its peak RSS comes from `wait4`'s rusage, so cases do not share a heap.
//! Two paths per revision: `validate`'s (a directory) and the agent's (a Git commit read by `GitSource`, files
//! loaded as the GitSync controller does). Cases: 40 files of 0.97 MB (refused, bytes), 40 alias bombs (refused,
//! nodes), 100 000 REDBs in 200 files (refused, objects) and 1000 REDBs in 1000 files (accepted, examples-like).
//!
//! `cargo bench --bench hostile_revision`

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use redis_gitops::manifests::{LoadOptions, load_directory, load_files};
use redis_gitops::source::{Credentials, GitRef, GitSource, ReadOptions, SourceConfig};
use redis_gitops::sync::settings::tree_files;

const REC: &str =
    "apiVersion: app.redislabs.com/v1\nkind: RedisEnterpriseCluster\nmetadata:\n  name: rec\nspec:\n  nodes: 3\n";

fn database(name: &str, port: u32) -> String {
    format!(
        "apiVersion: app.redislabs.com/v1alpha1\nkind: RedisEnterpriseDatabase\nmetadata:\n  name: {name}\n  labels:\n    \
         team: payments\nspec:\n  redisEnterpriseCluster:\n    name: rec\n  memorySize: 1GB\n  shardCount: 2\n  \
         replication: true\n  evictionPolicy: volatile-lru\n  persistence: aofEverySecond\n  databasePort: {port}\n  \
         tlsMode: enabled\n  modulesList:\n    - name: search\n  alertSettings:\n    bdb_size:\n      enabled: true\n      \
         threshold: \"80\"\n"
    )
}

fn write(dir: &Path, name: &str, content: &str) {
    std::fs::write(dir.join(name), content).expect("write a file");
}

fn huge(dir: &Path) {
    write(dir, "a-cluster.yaml", REC);
    let padding = format!("# {}\n", "x".repeat(1000)).repeat(1000);
    for index in 0..40 {
        write(
            dir,
            &format!("db-{index:02}.yaml"),
            &format!("{}{padding}", database(&format!("db-{index:02}"), 10_000 + index)),
        );
    }
}

fn aliases(dir: &Path) {
    let bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n\
                c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n\
                e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n";
    for index in 0..40 {
        write(dir, &format!("alias-{index:02}.yaml"), bomb);
    }
}

fn many_objects(dir: &Path) {
    write(dir, "a-cluster.yaml", REC);
    for file in 0..200 {
        let documents: Vec<String> = (0..500)
            .map(|index| {
                format!(
                    "apiVersion: app.redislabs.com/v1alpha1\nkind: RedisEnterpriseDatabase\nmetadata:\n  name: \
                     db-{file:03}-{index:03}\nspec:\n  memorySize: 100MB\n"
                )
            })
            .collect();
        write(dir, &format!("objects-{file:03}.yaml"), &documents.join("---\n"));
    }
}

fn thousand(dir: &Path) {
    write(dir, "a-cluster.yaml", REC);
    for index in 0..1000 {
        write(
            dir,
            &format!("db-{index:04}.yaml"),
            &database(&format!("db-{index:04}"), 10_000 + index),
        );
    }
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(
        status.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&status.stderr)
    );
}

fn commit(dir: &Path) {
    git(dir, &["init", "-q", "-b", "main"]);
    git(
        dir,
        &["-c", "user.email=b@example.com", "-c", "user.name=bench", "add", "-A"],
    );
    git(
        dir,
        &[
            "-c",
            "user.email=b@example.com",
            "-c",
            "user.name=bench",
            "commit",
            "-q",
            "-m",
            "revision",
        ],
    );
}

/// A revision to measure: its description and how to write it.
type Case = (&'static str, fn(&Path));

/// The child: loads one revision and prints what came of it.
fn child(mode: &str, target: &str) {
    let options = LoadOptions::default();
    let outcome = match mode {
        "dir" => load_directory(Path::new(target), &options),
        "git" => {
            let cache = tempfile::tempdir().expect("cache dir");
            let source = GitSource::new(SourceConfig {
                url: format!("file://{target}"),
                reference: GitRef::Branch("main".into()),
                credentials: Credentials::none(),
                cache_dir: cache.path().to_path_buf(),
                timeout: Duration::from_secs(120),
            })
            .expect("source");
            let polled = source.poll().expect("poll");
            match source.read_tree(&polled.revision, "", &ReadOptions::default()) {
                Err(error) => {
                    println!("refused while reading the tree: {error}");
                    return;
                }
                Ok(entries) => {
                    let (files, diagnostics) = tree_files(entries);
                    assert!(diagnostics.is_empty());
                    load_files(&files, &options)
                }
            }
        }
        _ => {
            println!("nothing loaded");
            return;
        }
    };
    match outcome {
        Ok(repository) => println!(
            "accepted: {} clusters, {} databases",
            repository.clusters.len(),
            repository.databases.len()
        ),
        Err(diagnostics) => {
            let errors: Vec<_> = diagnostics.iter().filter(|d| d.is_error()).collect();
            let first = errors.last().map(|d| d.to_string()).unwrap_or_default();
            println!(
                "refused: {} errors; last: {}",
                errors.len(),
                &first[..first.len().min(110)]
            );
        }
    }
}

/// Runs this program as a child in `mode` on `target`; returns its output, peak RSS in MiB and wall time.
fn measure(mode: &str, target: &Path) -> (String, f64, Duration) {
    let started = Instant::now();
    // Reaped below with wait4, which gives the rusage that `Child::wait` would discard.
    #[allow(clippy::zombie_processes)]
    let spawned = Command::new(std::env::current_exe().expect("current exe"))
        .args(["--child", mode])
        .arg(target)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the child");
    let pid = i32::try_from(spawned.id()).expect("pid");
    let mut output = String::new();
    if let Some(mut stdout) = spawned.stdout {
        use std::io::Read;
        stdout.read_to_string(&mut output).expect("child output");
    }
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 fills it for our own child, reaped here exactly once.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our child's; status and usage point to live locals.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid, "wait4");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the child failed: {output}"
    );
    (
        output.trim().to_string(),
        usage.ru_maxrss as f64 / 1024.0,
        started.elapsed(),
    )
}

fn main() {
    let arguments: Vec<String> = std::env::args().collect();
    if arguments.get(1).map(String::as_str) == Some("--child") {
        child(&arguments[2], &arguments[3]);
        return;
    }
    if arguments.iter().any(|a| a == "--list") {
        return;
    }
    let temp = tempfile::tempdir().expect("temp dir");
    let (baseline, baseline_rss, _) = measure("none", temp.path());
    println!("baseline (a child that loads nothing): {baseline_rss:.1} MiB peak RSS ({baseline})");
    let cases: [Case; 4] = [
        ("40 files of 0.97 MB (39 MiB)", huge),
        ("40 alias files of 358 bytes", aliases),
        ("100 000 REDBs in 200 files", many_objects),
        ("1000 REDBs in 1000 files, examples-like", thousand),
    ];
    println!("| revision | path | outcome | peak RSS | time |");
    println!("| --- | --- | --- | --- | --- |");
    for (index, (name, make)) in cases.iter().enumerate() {
        let dir = temp.path().join(format!("case-{index}"));
        std::fs::create_dir_all(&dir).expect("case dir");
        make(&dir);
        let bytes: u64 = std::fs::read_dir(&dir)
            .expect("case dir")
            .filter_map(Result::ok)
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum();
        let (outcome, rss, time) = measure("dir", &dir);
        println!("| {name} ({bytes} bytes) | validate (directory) | {outcome} | {rss:.1} MiB | {time:.2?} |");
        commit(&dir);
        let (outcome, rss, time) = measure("git", &dir);
        println!("| {name} | agent (Git commit, read_tree + load) | {outcome} | {rss:.1} MiB | {time:.2?} |");
    }
}
