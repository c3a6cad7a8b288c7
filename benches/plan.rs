//! Benchmark: `redis-gitops plan` over a repository of 10 clusters and 1000 databases (one file each) in which a
//! pull request changes 10 databases (memory, shards, eviction, one removed, one renamed), the way the command does
//! it: both revisions read from Git objects without a checkout, loaded and validated, planned, and written as the
//! Markdown comment and as JSON. Target (design.md §7): < 500 ms. Run: `cargo bench --bench plan`.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use redis_gitops::manifests::LoadOptions;
use redis_gitops::review::input::{Side, load_side};
use redis_gitops::review::{PruneSettings, output, plan};

const CLUSTERS: usize = 10;
const DATABASES: usize = 1000;
const CHANGED: usize = 10;
const RUNS: usize = 20;

fn database(cluster: usize, database: usize, memory: usize, shards: usize, eviction: &str) -> String {
    format!(
        "# database {database} of cluster {cluster}\napiVersion: app.redislabs.com/v1alpha1\nkind: RedisEnterpriseDatabase\n\
         metadata:\n  name: db-{database}\n  namespace: team-{cluster}\n  labels:\n    owner: team-{cluster}\nspec:\n\
         \x20 redisEnterpriseCluster:\n    name: rec-{cluster}\n  memorySize: {memory}MB\n  shardCount: {shards}\n  replication: true\n\
         \x20 persistence: aofEverySecond\n  evictionPolicy: {eviction}\n  databasePort: {}\n  modulesList:\n    - name: search\n",
        12_000 + database
    )
}

fn generate(root: &Path) {
    for cluster in 0..CLUSTERS {
        let directory = root.join(format!("cluster-{cluster}"));
        fs::create_dir_all(directory.join("databases")).expect("create directory");
        fs::write(
            directory.join("cluster.yaml"),
            format!(
                "apiVersion: app.redislabs.com/v1\nkind: RedisEnterpriseCluster\nmetadata:\n  name: rec-{cluster}\n  namespace: team-{cluster}\n\
                 spec:\n  nodes: 5\n  persistentSpec: {{enabled: true, volumeSize: 80Gi}}\n"
            ),
        )
        .expect("write cluster");
        for index in 0..DATABASES / CLUSTERS {
            fs::write(
                directory.join("databases").join(format!("db-{index}.yaml")),
                database(cluster, index, 256 + index, 1 + index % 4, "allkeys-lru"),
            )
            .expect("write database");
        }
    }
}

/// The pull request: 10 databases of cluster 0 change.
fn change(root: &Path) {
    let databases = root.join("cluster-0/databases");
    for index in 0..CHANGED - 2 {
        let text = match index % 3 {
            0 => database(0, index, 128, 1 + index % 4, "allkeys-lru"),
            1 => database(0, index, 256 + index, 8, "allkeys-lru"),
            _ => database(0, index, 256 + index, 1 + index % 4, "noeviction"),
        };
        fs::write(databases.join(format!("db-{index}.yaml")), text).expect("edit database");
    }
    fs::remove_file(databases.join("db-8.yaml")).expect("remove database");
    let renamed = fs::read_to_string(databases.join("db-9.yaml")).expect("read database");
    fs::remove_file(databases.join("db-9.yaml")).expect("remove database");
    fs::write(
        databases.join("db-renamed.yaml"),
        renamed.replace("name: db-9", "name: db-renamed"),
    )
    .expect("rename");
}

fn git(root: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(args)
        .current_dir(root)
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com")
        .status()
        .expect("git runs");
    assert!(status.success(), "git {args:?}");
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn main() {
    let root = std::env::temp_dir().join(format!("redis-gitops-bench-plan-{}", std::process::id()));
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(&root).expect("create root");
    git(&root, &["init", "-q", "-b", "main"]);
    generate(&root);
    git(&root, &["add", "."]);
    git(&root, &["commit", "-q", "-m", "base"]);
    change(&root);
    git(&root, &["add", "-A"]);
    git(&root, &["commit", "-q", "-m", "pull request"]);
    let options = LoadOptions::default();
    let base = Side::Revision {
        repository: root.clone(),
        revision: "HEAD~1".to_string(),
    };
    let head = Side::Revision {
        repository: root.clone(),
        revision: "HEAD".to_string(),
    };
    let (mut load_times, mut plan_times, mut output_times, mut total_times) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut summary = None;
    for _ in 0..RUNS {
        let start = Instant::now();
        let old = load_side(&base, "", &options).expect("the base loads");
        let new = load_side(&head, "", &options).expect("the head loads");
        let loaded = start.elapsed();
        let planned = plan(&old.repository, &new.repository, &PruneSettings::default());
        let planning = start.elapsed();
        let markdown = output::markdown(&planned);
        let json = serde_json::to_string(&output::json(&planned)).expect("JSON");
        let total = start.elapsed();
        assert_eq!(
            planned.changes.len(),
            CHANGED + 1,
            "10 databases, the rename as a delete and a create"
        );
        assert!(markdown.len() > 1000 && json.len() > 1000);
        load_times.push(loaded);
        plan_times.push(planning - loaded);
        output_times.push(total - planning);
        total_times.push(total);
        summary = Some(planned.summary);
    }
    // The same from two directories (the checkout of each side).
    let directory = Side::Directory(root.clone());
    let mut directory_times = Vec::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        let old = load_side(&directory, "", &options).expect("loads");
        let new = load_side(&directory, "", &options).expect("loads");
        let planned = plan(&old.repository, &new.repository, &PruneSettings::default());
        assert!(!planned.has_changes());
        directory_times.push(start.elapsed());
    }
    fs::remove_dir_all(&root).ok();
    println!(
        "plan: {CLUSTERS} clusters, {DATABASES} databases, {CHANGED} changed, {RUNS} runs (median); {:?}",
        summary.expect("ran")
    );
    println!("  read 2 Git revisions + validate : {:>8.1} ms", ms(median(load_times)));
    println!("  plan                            : {:>8.1} ms", ms(median(plan_times)));
    println!(
        "  markdown + JSON                 : {:>8.1} ms",
        ms(median(output_times))
    );
    println!(
        "  total (target < 500 ms)         : {:>8.1} ms",
        ms(median(total_times))
    );
    println!(
        "  two directories, no change      : {:>8.1} ms",
        ms(median(directory_times))
    );
}
