use serde_json::json;

use super::*;

fn target(provider: ForgeProvider, repository: &str) -> ForgeTarget {
    ForgeTarget {
        provider,
        api_url: "https://forge.example.com".into(),
        repository: repository.into(),
    }
}

fn post(description: &str) -> StatusPost {
    StatusPost {
        sha: "a".repeat(40),
        context: "redis-gitops/team/config".into(),
        state: CommitState::Failure,
        description: description.into(),
    }
}

#[test]
fn each_provider_builds_its_documented_create_request() {
    let sha = "a".repeat(40);
    let github = create_request(&target(ForgeProvider::Github, "team/config"), &post("refused"));
    assert_eq!(github.path, format!("/repos/team/config/statuses/{sha}"));
    assert_eq!(
        github.body,
        Some(json!({"state": "failure", "description": "refused", "context": "redis-gitops/team/config"}))
    );
    let gitlab = create_request(&target(ForgeProvider::Gitlab, "group/sub/config"), &post("refused"));
    assert_eq!(gitlab.path, format!("/projects/group%2Fsub%2Fconfig/statuses/{sha}"));
    assert_eq!(
        gitlab.body,
        Some(json!({"state": "failed", "name": "redis-gitops/team/config", "description": "refused"}))
    );
    let gitea = create_request(&target(ForgeProvider::Gitea, "team/config"), &post("refused"));
    assert_eq!(gitea.path, format!("/repos/team/config/statuses/{sha}"));
    assert_eq!(gitea.body.as_ref().and_then(|b| b.get("target_url")), Some(&json!("")));
    let bitbucket = create_request(&target(ForgeProvider::Bitbucket, "work/config"), &post("refused"));
    assert_eq!(
        bitbucket.path,
        format!("/2.0/repositories/work/config/commit/{sha}/statuses/build")
    );
    let body = bitbucket.body.expect("body");
    assert_eq!(body["state"], "FAILED");
    assert_eq!(body["key"].as_str().map(str::len), Some(40));
    assert_eq!(body["key"], bitbucket::key("redis-gitops/team/config"));
    assert!(
        body["url"]
            .as_str()
            .is_some_and(|url| url.starts_with("https://bitbucket.org/work/config/commits/"))
    );
}

#[test]
fn descriptions_are_cut_to_each_forge_limit() {
    let long = "x".repeat(300);
    let github = create_request(&target(ForgeProvider::Github, "a/b"), &post(&long));
    let description = github.body.expect("body")["description"]
        .as_str()
        .map(|d| d.chars().count());
    assert_eq!(description, Some(140));
    let gitlab = create_request(&target(ForgeProvider::Gitlab, "a/b"), &post(&long));
    let description = gitlab.body.expect("body")["description"]
        .as_str()
        .map(|d| d.chars().count());
    assert_eq!(description, Some(255));
    assert_eq!(truncate("é".repeat(141).as_str(), 140).chars().count(), 140);
    assert!(truncate(&long, 140).ends_with('…'));
}

#[test]
fn the_newest_status_of_the_context_decides_dedup() {
    let target = target(ForgeProvider::Github, "a/b");
    let listed = json!([
        {"id": 3, "context": "other", "state": "failure", "description": "x"},
        {"id": 2, "context": "Redis-GitOps/team/config", "state": "failure", "description": "refused"},
        {"id": 1, "context": "redis-gitops/team/config", "state": "pending", "description": "picked up"},
    ]);
    let newest = newest_status(ForgeProvider::Github, &listed, "redis-gitops/team/config");
    assert_eq!(newest.as_ref().map(|s| s.state.as_str()), Some("failure"));
    assert!(already_shown(&target, newest.as_ref(), &post("refused")));
    assert!(!already_shown(&target, newest.as_ref(), &post("refused again")));
    assert!(!already_shown(&target, None, &post("refused")));
    let gitlab = json!([{"id": 9, "name": "redis-gitops/team/config", "status": "failed", "description": "refused"}]);
    let newest = newest_status(ForgeProvider::Gitlab, &gitlab, "redis-gitops/team/config");
    assert!(already_shown(
        &self::target(ForgeProvider::Gitlab, "a/b"),
        newest.as_ref(),
        &post("refused")
    ));
}
