//! `tests/official` as a team's repository: every official example shape, each file in a namespace of its own (as
//! `kubectl apply -n <namespace>` places a manifest without one) and each REDB beside the REC it names, runs in
//! `redis-gitops sandbox --once`, and every object ends Ready: modules, TLS and the older shapes included.

use std::path::Path;
use std::process::{Command, Stdio};

mod support;
use support::Repo;

/// The namespace of each official file: its own for a REC, its REC's for a REDB.
const PLACEMENT: [(&str, &str); 15] = [
    ("legacy.yaml", "legacy"),
    ("old-redb-1gb.yaml", "legacy"),
    ("simple.yaml", "simple"),
    ("old-redb-100mb.yaml", "simple"),
    ("persistent.yaml", "persistent"),
    ("rack-aware-rec.yaml", "rack-aware"),
    ("rec-rhel.yaml", "rhel"),
    ("v1-rec.yaml", "v1"),
    ("v1alpha1-redb.yaml", "v1"),
    ("v1alpha1-rec.yaml", "v1alpha1"),
    ("redb-modules.yaml", "v1alpha1"),
    ("redb-tls.yaml", "v1alpha1"),
    ("vault-rec.yaml", "vault"),
    ("with-service-broker.yaml", "service-broker"),
    ("README.md", ""),
];

/// The manifest with `metadata.namespace` set (the official examples leave it to `kubectl apply -n`).
fn in_namespace(manifest: &str, namespace: &str) -> String {
    manifest.replacen("metadata:\n", &format!("metadata:\n  namespace: {namespace}\n"), 1)
}

#[test]
fn every_official_example_runs_in_the_sandbox_and_ends_ready() {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/official");
    let mut files: Vec<String> = std::fs::read_dir(&directory)
        .expect("tests/official")
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut placed: Vec<&str> = PLACEMENT.iter().map(|(file, _)| *file).collect();
    placed.sort();
    assert_eq!(files, placed, "every file of tests/official has a namespace here");

    let temp = tempfile::tempdir().expect("temp dir");
    let repo = Repo::new(temp.path());
    let mut redbs = 0;
    for (file, namespace) in PLACEMENT.iter().filter(|(file, _)| file.ends_with(".yaml")) {
        let manifest = std::fs::read_to_string(directory.join(file)).expect("read the example");
        redbs += usize::from(manifest.contains("kind: RedisEnterpriseDatabase"));
        repo.write(file, &in_namespace(&manifest, namespace));
    }
    repo.commit("the official examples");

    let output = Command::new(env!("CARGO_BIN_EXE_redis-gitops"))
        .args(["sandbox", "--repo"])
        .arg(&repo.dir)
        .args(["--once", "--timeout", "180s", "--kubeconfig"])
        .arg(temp.path().join("kubeconfig"))
        .stderr(Stdio::null())
        .output()
        .expect("the sandbox runs");
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{text}");
    // 9 RECs and every REDB, all Ready (the summary line counts the RECs and REDBs; rows of objects that are not
    // Ready would name what they wait for).
    let total = 9 + redbs;
    assert!(
        text.lines()
            .any(|line| line.starts_with(&format!("{total}/{total} objects Ready"))),
        "{text}"
    );
    let rows: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("rec ") || line.starts_with("redb "))
        .collect();
    for row in &rows {
        assert!(row.contains(" Ready "), "every object is Ready: {row}\n{text}");
    }
}
