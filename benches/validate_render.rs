//! Benchmark: load, validate and render a generated config repository of 10 clusters and 1000 databases (one
//! file each), the way `redis-gitops validate` and `render` do. Target (design.md §7): < 200 ms.
//! Run: `cargo bench --bench validate_render`.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use redis_gitops::desired::render::{Only, render, to_yaml_stream};
use redis_gitops::manifests::{LoadOptions, load_directory};

const CLUSTERS: usize = 10;
const DATABASES: usize = 1000;
const RUNS: usize = 30;

fn generate(root: &Path) {
    for cluster in 0..CLUSTERS {
        let directory = root.join(format!("cluster-{cluster}"));
        fs::create_dir_all(directory.join("databases")).expect("create directory");
        fs::write(
            directory.join("cluster.yaml"),
            format!(
                "apiVersion: app.redislabs.com/v1\nkind: RedisEnterpriseCluster\nmetadata:\n  name: rec-{cluster}\n  namespace: team-{cluster}\n\
                 spec:\n  nodes: 5\n  redisEnterpriseNodeResources:\n    limits: {{cpu: \"4\", memory: 16Gi}}\n    requests: {{cpu: \"4\", memory: 16Gi}}\n\
                 persistentSpec: {{enabled: true, volumeSize: 80Gi}}\n"
            )
            .replace("\npersistentSpec", "\n  persistentSpec"),
        )
        .expect("write cluster");
        for database in 0..DATABASES / CLUSTERS {
            let persistence = ["disabled", "aofEverySecond", "snapshotEvery1Hour"][database % 3];
            fs::write(
                directory.join("databases").join(format!("db-{database}.yaml")),
                format!(
                    "# database {database} of cluster {cluster}\napiVersion: app.redislabs.com/v1alpha1\nkind: RedisEnterpriseDatabase\n\
                     metadata:\n  name: db-{database}\n  namespace: team-{cluster}\n  labels:\n    owner: team-{cluster}\nspec:\n\
                     \x20 redisEnterpriseCluster:\n    name: rec-{cluster}\n  memorySize: {}MB\n  shardCount: {}\n  replication: true\n\
                     \x20 persistence: {persistence}\n  evictionPolicy: allkeys-lru\n  databasePort: {}\n  modulesList:\n    - name: search\n    - name: ReJSON\n",
                    256 + database,
                    1 + database % 4,
                    12_000 + database
                ),
            )
            .expect("write database");
        }
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let root = std::env::temp_dir().join(format!("redis-gitops-bench-{}", std::process::id()));
    let _ = fs::remove_dir_all(&root);
    generate(&root);
    let options = LoadOptions::default();
    let (mut load_times, mut render_times, mut total_times) = (Vec::new(), Vec::new(), Vec::new());
    let mut objects = 0;
    for _ in 0..RUNS {
        let start = Instant::now();
        let repository = load_directory(&root, &options)
            .unwrap_or_else(|errors| panic!("generated repository is valid: {:?}", &errors[..1]));
        let loaded = start.elapsed();
        let rendered = render(&repository);
        let text = to_yaml_stream(&rendered, Only::All).expect("renders");
        let total = start.elapsed();
        objects = rendered.kubernetes.len() + rendered.rest.len();
        assert!(text.len() > 1_000_000);
        load_times.push(loaded);
        render_times.push(total - loaded);
        total_times.push(total);
    }
    fs::remove_dir_all(&root).ok();
    println!(
        "validate_render: {CLUSTERS} clusters, {DATABASES} databases, {objects} rendered objects, {RUNS} runs (median)"
    );
    println!("  load + validate : {:>8.1} ms", median(load_times).as_secs_f64() * 1e3);
    println!(
        "  render to YAML  : {:>8.1} ms",
        median(render_times).as_secs_f64() * 1e3
    );
    println!(
        "  total           : {:>8.1} ms   (target < 200 ms)",
        median(total_times).as_secs_f64() * 1e3
    );
}
