//! Golden tests of `redis-gitops render examples-repo`: the exact YAML and JSON output is checked in under
//! `tests/golden/` (reviewed by hand), and the Kubernetes objects pass the official schemas.
//! To review a deliberate change: `BLESS=1 cargo test --test render_golden`, then read the diff.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn redis_gitops(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_redis-gitops"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("runs");
    assert!(
        output.status.success(),
        "{args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.stderr.is_empty(),
        "examples-repo renders without warnings:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

fn check_golden(name: &str, actual: &str) {
    let path = root().join("tests/golden").join(name);
    if std::env::var_os("BLESS").is_some() {
        fs::write(&path, actual).expect("golden file is writable");
        return;
    }
    let expected = fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "render output differs from tests/golden/{name}; if the change is intended, run with BLESS=1 and review the diff"
    );
}

#[test]
fn yaml_stream_matches_the_golden_file() {
    check_golden("examples-repo.yaml", &redis_gitops(&["render", "examples-repo"]));
}

#[test]
fn json_output_matches_the_golden_file_and_parses() {
    let json = redis_gitops(&["render", "examples-repo", "-o", "json"]);
    let value: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    assert_eq!(value["kubernetes"].as_array().map(Vec::len), Some(42));
    assert_eq!(value["rest"].as_array().map(Vec::len), Some(9));
    check_golden("examples-repo.json", &json);
}

#[test]
fn rendered_objects_pass_the_official_kubernetes_schemas() {
    let stream = redis_gitops(&["render", "examples-repo", "--only", "kubernetes"]);
    let file = std::env::temp_dir().join(format!("examples-render-{}.yaml", std::process::id()));
    fs::write(&file, &stream).expect("write");
    let tool = root().join("../shared/tools/check-k8s-schemas");
    assert!(
        tool.exists(),
        "{} is missing: the tests need the shared/ directory beside the checkout",
        tool.display()
    );
    let output = Command::new(&tool)
        .arg(&file)
        .output()
        .expect("the schema checker runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        stdout.lines().last(),
        Some("42 objects checked against Kubernetes 1.33, 0 invalid"),
        "{stdout}"
    );
    fs::remove_file(&file).ok();
}

#[test]
fn no_secret_value_is_rendered() {
    let stream = redis_gitops(&["render", "examples-repo"]);
    let documents: Vec<serde_json::Value> =
        serde_saphyr::from_str_multiple(&stream).expect("the YAML stream parses back");
    let secrets: Vec<&serde_json::Value> = documents.iter().filter(|d| d["kind"] == "Secret").collect();
    assert_eq!(
        secrets.len(),
        10,
        "an admin Secret per cluster and a credentials Secret per database"
    );
    for secret in secrets {
        assert_eq!(secret["stringData"]["password"], "", "{secret}");
        assert!(secret.get("data").is_none());
    }
    assert!(
        !stream.contains("authentication_redis_pass:"),
        "passwords are filled in at apply time only"
    );
}
