//! The bad-input corpus: every directory under `tests/bad-input/` is a config repository with mistakes, and its
//! `expected.txt` holds exactly what `redis-gitops validate` prints for it (exit code first). Hostile inputs
//! that are impractical to commit (huge files, symlinks, thousands of documents) are generated here.
//!
//! To review changed messages: `BLESS=1 cargo test --test bad_input`, then read the diff of `expected.txt` files.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn validate(path: &Path) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_redis-gitops"))
        .arg("validate")
        .arg(path)
        .output()
        .expect("the redis-gitops binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{} panicked:\n{stderr}", path.display());
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

fn corpus() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad-input");
    let mut cases: Vec<PathBuf> = fs::read_dir(&root)
        .expect("tests/bad-input exists")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.is_dir())
        .collect();
    cases.sort();
    cases
}

#[test]
fn every_case_prints_exactly_the_expected_diagnostics() {
    let bless = std::env::var_os("BLESS").is_some();
    let cases = corpus();
    assert!(
        cases.len() >= 40,
        "the corpus must keep at least 40 cases, found {}",
        cases.len()
    );
    let mut failures = Vec::new();
    for case in &cases {
        let (code, stdout) = validate(case);
        let actual = format!("exit: {code}\n{stdout}");
        let expected_path = case.join("expected.txt");
        if bless {
            fs::write(&expected_path, &actual).expect("expected.txt is writable");
            continue;
        }
        let expected = fs::read_to_string(&expected_path).unwrap_or_default();
        if actual != expected {
            failures.push(format!(
                "--- {}\nexpected:\n{expected}\nactual:\n{actual}",
                case.display()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_case_with_errors_fails_and_names_a_file_and_line() {
    for case in corpus() {
        let (code, stdout) = validate(&case);
        if code == 0 {
            // Warning-only cases pass, and say what they warn about.
            assert!(
                stdout.contains("warning: "),
                "{} passed without a warning",
                case.display()
            );
            continue;
        }
        assert_eq!(code, 1, "{}", case.display());
        let diagnostics: Vec<&str> = stdout.lines().filter(|line| !line.starts_with("invalid: ")).collect();
        assert!(
            !diagnostics.is_empty(),
            "{} failed without a diagnostic",
            case.display()
        );
        for line in diagnostics {
            let file = line.split(':').next().unwrap_or_default();
            assert!(
                file.ends_with(".yaml"),
                "{}: diagnostic without a file: {line}",
                case.display()
            );
        }
    }
}

fn temp_repository(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("redis-gitops-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn a_huge_file_is_refused_before_it_is_read() {
    let dir = temp_repository("huge");
    let mut content = "# padding\n".repeat(2 * 1024 * 1024 / 10);
    content.push_str(&" ".repeat(2 * 1024 * 1024 - content.len()));
    fs::write(dir.join("huge.yaml"), content).expect("write");
    let (code, stdout) = validate(&dir);
    assert_eq!(code, 1);
    assert!(
        stdout
            .starts_with("huge.yaml: is 2097152 bytes, over the limit of 1048576 bytes; split it into smaller files\n"),
        "{stdout}"
    );
    fs::remove_dir_all(&dir).ok();
}

#[test]
fn symlinks_that_escape_the_repository_are_not_followed() {
    let outside = temp_repository("outside");
    fs::write(outside.join("secret.yaml"), "apiVersion: v1\nkind: Secret\n").expect("write");
    let dir = temp_repository("symlinks");
    std::os::unix::fs::symlink(outside.join("secret.yaml"), dir.join("escape.yaml")).expect("symlink");
    std::os::unix::fs::symlink(&outside, dir.join("escape-dir")).expect("symlink");
    std::os::unix::fs::symlink(dir.join("missing.yaml"), dir.join("broken.yaml")).expect("symlink");
    fs::create_dir_all(dir.join("inside")).expect("dir");
    fs::write(
        dir.join("inside/db.yaml"),
        "apiVersion: app.redislabs.com/v1alpha1\nkind: RedisEnterpriseDatabase\nmetadata:\n  name: cache\n",
    )
    .expect("write");
    std::os::unix::fs::symlink(dir.join("inside"), dir.join("loop")).expect("symlink");
    let (code, stdout) = validate(&dir);
    assert_eq!(code, 1, "{stdout}");
    assert_eq!(
        stdout,
        "broken.yaml: is a broken symlink; remove it or fix its target\n\
         escape-dir: is a symlink that points outside the repository; it is not followed (copy the file into the repository instead)\n\
         escape.yaml: is a symlink that points outside the repository; it is not followed (copy the file into the repository instead)\n\
         inside/db.yaml:1:1: warning: spec: no RedisEnterpriseCluster in namespace default in this repository; the database goes to the cluster of that namespace, which must already exist\n\
         invalid: 3 errors, 1 warnings; nothing would be applied\n"
    );
    fs::remove_dir_all(&dir).ok();
    fs::remove_dir_all(&outside).ok();
}

#[test]
fn too_many_documents_in_one_file_are_refused() {
    let dir = temp_repository("documents");
    fs::write(dir.join("many.yaml"), "---\na: 1\n".repeat(600)).expect("write");
    let (code, stdout) = validate(&dir);
    assert_eq!(code, 1);
    assert_eq!(
        stdout,
        "many.yaml:1001:1: invalid YAML: the file has more than 500 documents; split it into several files\n\
         invalid: 1 errors, 0 warnings; nothing would be applied\n"
    );
    fs::remove_dir_all(&dir).ok();
}
