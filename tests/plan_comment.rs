//! `plan --comment` against the forge emulator, as a CI job runs it: the real binary with the CI's variables posts
//! one comment per pull request on GitHub, GitLab and Gitea, finds it again past the first page of other comments,
//! updates it in place on the next run (or leaves it when it already says the same), keeps plans with different keys
//! apart, posts the located errors of a head that does not validate, and fails with exit code 2 and a message without
//! the token when the forge refuses.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use redis_gitops_sandbox::forge::{Forge, ForgeEmulator, ForgeHandle, ForgeOptions};

const TOKEN: &str = "forge-token-for-plan-comments";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/plan")
}

async fn forge() -> ForgeHandle {
    ForgeEmulator::start(ForgeOptions {
        tokens: vec![TOKEN.to_string()],
        ..ForgeOptions::default()
    })
    .await
    .expect("the forge emulator starts")
}

/// Runs `plan --comment` from `base` to `head` (fixture directory names) with `env`, off the async threads.
async fn plan(base: &str, head: &str, flags: &[&str], env: &[(&str, String)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_redis-gitops"));
    command
        .arg("plan")
        .arg("--base")
        .arg(fixtures().join(base))
        .arg("--head")
        .arg(fixtures().join(head))
        .args(["-o", "text", "--comment"])
        .args(flags)
        .current_dir(fixtures());
    for name in [
        "GITHUB_ACTIONS",
        "GITEA_ACTIONS",
        "GITLAB_CI",
        "GITHUB_TOKEN",
        "GITLAB_TOKEN",
        "GITEA_TOKEN",
        "GITHUB_EVENT_PATH",
        "GITHUB_REF",
        "GITHUB_API_URL",
        "GITHUB_REPOSITORY",
        "CI_API_V4_URL",
        "CI_PROJECT_PATH",
        "CI_MERGE_REQUEST_IID",
        "REDIS_GITOPS_FORGE_TOKEN",
        "REDIS_GITOPS_FORGE",
        "REDIS_GITOPS_FORGE_API_URL",
        "REDIS_GITOPS_FORGE_REPOSITORY",
        "REDIS_GITOPS_PULL_REQUEST",
    ] {
        command.env_remove(name);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    tokio::task::spawn_blocking(move || command.output().expect("the binary runs"))
        .await
        .expect("the plan process is awaited")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn marked<'a>(comments: &'a [redis_gitops_sandbox::forge::PostedComment], marker: &str) -> Vec<&'a str> {
    comments
        .iter()
        .filter(|comment| comment.body.lines().next() == Some(marker))
        .map(|comment| comment.body.as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_actions_posts_one_comment_and_updates_it_in_place() {
    let forge = forge().await;
    let state = forge.state();
    state.open_pull_request(Forge::Github, "team/config", 7);
    // More than one page of other people's comments: the plan's comment lands on the second page.
    for n in 0..120 {
        state.add_comment(Forge::Github, "team/config", 7, &format!("review remark {n}"));
    }
    let events = tempfile::tempdir().expect("temp dir");
    let event = events.path().join("event.json");
    std::fs::write(&event, r#"{"action": "synchronize", "pull_request": {"number": 7}}"#).expect("event file");
    let env = vec![
        ("GITHUB_ACTIONS", "true".to_string()),
        ("GITHUB_API_URL", forge.url()),
        ("GITHUB_REPOSITORY", "team/config".to_string()),
        ("GITHUB_EVENT_PATH", event.display().to_string()),
        ("GITHUB_TOKEN", TOKEN.to_string()),
    ];

    let first = plan("base", "head", &[], &env).await;
    assert_eq!(first.status.code(), Some(1), "changes: {}", stderr(&first));
    assert!(stderr(&first).contains("posted comment"), "{}", stderr(&first));
    let comments = state.comments(Forge::Github, "team/config", 7);
    assert_eq!(comments.len(), 121);
    let plan_comments = marked(&comments, "<!-- redis-gitops-plan -->");
    assert_eq!(plan_comments.len(), 1);
    assert!(plan_comments[0].contains("### redis-gitops plan"));
    assert!(
        plan_comments[0].contains("| Object | Action | Risks |"),
        "the summary table"
    );
    assert!(
        !plan_comments[0].contains("No changes"),
        "base → head changes things: {}",
        plan_comments[0]
    );

    // The next push: the same comment, updated, found on page 2.
    let second = plan("base", "base", &[], &env).await;
    assert_eq!(second.status.code(), Some(0), "no change: {}", stderr(&second));
    assert!(stderr(&second).contains("updated comment"), "{}", stderr(&second));
    let comments = state.comments(Forge::Github, "team/config", 7);
    assert_eq!(comments.len(), 121, "no second comment");
    let plan_comment = comments.last().expect("the plan comment");
    assert!(plan_comment.body.contains("No changes"), "{}", plan_comment.body);
    assert_eq!(plan_comment.edits, 1);
    assert!(
        state
            .requests()
            .iter()
            .any(|request| request.method == "GET" && request.path.ends_with("page=2")),
        "the search read the second page"
    );

    // Nothing new: nothing written.
    let third = plan("base", "base", &[], &env).await;
    assert_eq!(third.status.code(), Some(0));
    assert!(stderr(&third).contains("already shows this plan"), "{}", stderr(&third));
    assert_eq!(
        state.comments(Forge::Github, "team/config", 7).last().map(|c| c.edits),
        Some(1)
    );
    let patches = state.requests().iter().filter(|r| r.method == "PATCH").count();
    assert_eq!(patches, 1);
    let auth: Vec<String> = state
        .requests()
        .iter()
        .filter_map(|request| request.headers.get("authorization").cloned())
        .collect();
    assert!(auth.iter().all(|value| value == &format!("Bearer {TOKEN}")));
    for output in [&first, &second, &third] {
        assert!(!stderr(output).contains(TOKEN));
        assert!(!String::from_utf8_lossy(&output.stdout).contains(TOKEN));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_ci_posts_the_errors_of_a_head_that_does_not_validate() {
    let forge = forge().await;
    let state = forge.state();
    state.open_pull_request(Forge::Gitlab, "group/sub/config", 3);
    let broken = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        broken.path().join("db.yaml"),
        "apiVersion: app.redislabs.com/v1alpha1\nkind: RedisEnterpriseDatabase\nmetadata:\n  name: broken\nspec:\n  memorySize: lots\n",
    )
    .expect("write broken head");
    let env = vec![
        ("GITLAB_CI", "true".to_string()),
        ("CI_API_V4_URL", forge.gitlab_api_url()),
        ("CI_PROJECT_PATH", "group/sub/config".to_string()),
        ("CI_MERGE_REQUEST_IID", "3".to_string()),
        ("GITLAB_TOKEN", TOKEN.to_string()),
    ];
    let head = broken.path().display().to_string();
    let output = plan("base", &head, &[], &env).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let comments = state.comments(Forge::Gitlab, "group/sub/config", 3);
    assert_eq!(comments.len(), 1, "{}", stderr(&output));
    assert!(comments[0].body.contains("does not validate"), "{}", comments[0].body);
    assert!(
        comments[0].body.contains("db.yaml"),
        "located errors: {}",
        comments[0].body
    );
    let post = state
        .requests()
        .into_iter()
        .find(|request| request.method == "POST")
        .expect("a POST");
    assert_eq!(
        post.path,
        "/api/v4/projects/group%2Fsub%2Fconfig/merge_requests/3/notes"
    );
    assert_eq!(post.headers.get("private-token").map(String::as_str), Some(TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitea_keeps_plans_with_different_keys_apart() {
    let forge = forge().await;
    let state = forge.state();
    state.open_pull_request(Forge::Gitea, "team/config", 5);
    let env = vec![
        ("REDIS_GITOPS_FORGE_TOKEN", TOKEN.to_string()),
        ("REDIS_GITOPS_FORGE_API_URL", forge.gitea_api_url()),
    ];
    let flags = [
        "--forge",
        "gitea",
        "--forge-repository",
        "team/config",
        "--pull-request",
        "5",
    ];
    let plain = plan("base", "head", &flags, &env).await;
    assert_eq!(plain.status.code(), Some(1), "{}", stderr(&plain));
    let mut keyed_flags = flags.to_vec();
    keyed_flags.extend(["--comment-key", "staging"]);
    let keyed = plan("base", "base", &keyed_flags, &env).await;
    assert_eq!(keyed.status.code(), Some(0), "{}", stderr(&keyed));
    let comments = state.comments(Forge::Gitea, "team/config", 5);
    assert_eq!(comments.len(), 2);
    assert_eq!(marked(&comments, "<!-- redis-gitops-plan -->").len(), 1);
    let staging = marked(&comments, "<!-- redis-gitops-plan:staging -->");
    assert_eq!(staging.len(), 1);
    assert!(staging[0].contains("No changes"));
    assert!(
        state
            .requests()
            .iter()
            .all(|request| request.headers.get("authorization") == Some(&format!("token {TOKEN}")))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forge_refusals_exit_2_with_the_plan_printed_and_no_token() {
    let forge = forge().await;
    forge.state().open_pull_request(Forge::Github, "team/config", 7);
    let env = |token: &str| {
        vec![
            ("REDIS_GITOPS_FORGE", "github".to_string()),
            ("REDIS_GITOPS_FORGE_API_URL", forge.url()),
            ("REDIS_GITOPS_FORGE_REPOSITORY", "team/config".to_string()),
            ("REDIS_GITOPS_FORGE_TOKEN", token.to_string()),
        ]
    };

    let unknown = plan("base", "head", &["--pull-request", "99"], &env(TOKEN)).await;
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        stderr(&unknown).contains("pull request 99 of team/config not found"),
        "{}",
        stderr(&unknown)
    );
    assert!(
        String::from_utf8_lossy(&unknown.stdout).contains("Plan: 2 to create"),
        "the plan is still printed for the job log"
    );

    let wrong = "a-wrong-token-that-must-not-leak";
    let refused = plan("base", "head", &["--pull-request", "7"], &env(wrong)).await;
    assert_eq!(refused.status.code(), Some(2));
    assert!(stderr(&refused).contains("401"), "{}", stderr(&refused));
    assert!(!stderr(&refused).contains(wrong));

    forge.state().set_down(true);
    let down = plan("base", "head", &["--pull-request", "7"], &env(TOKEN)).await;
    assert_eq!(down.status.code(), Some(2));
    assert!(stderr(&down).contains("not posted"), "{}", stderr(&down));
    assert!(forge.state().comments(Forge::Github, "team/config", 7).is_empty());

    // Outside a CI, without --forge: the missing flag is named before any work.
    let output = Command::new(env!("CARGO_BIN_EXE_redis-gitops"))
        .args(["plan", "--base", "base", "--head", "head", "--comment"])
        .current_dir(fixtures())
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITLAB_CI")
        .env_remove("GITEA_ACTIONS")
        .env_remove("REDIS_GITOPS_FORGE")
        .output()
        .expect("the binary runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("--forge github|gitlab|gitea"),
        "{}",
        stderr(&output)
    );
    assert!(
        output.stdout.is_empty(),
        "nothing planned before the flags are complete"
    );
}
