//! Pull-request comments, for `plan --comment`: one comment per pull request (and comment key) that is found by its
//! first line, a hidden marker, and then updated in place instead of adding a new one on every push. The documented
//! requests per forge:
//! - GitHub: `GET|POST /repos/{owner}/{repo}/issues/{number}/comments` (`per_page` up to 100, `page`), `PATCH
//!   /repos/{owner}/{repo}/issues/comments/{id}`, body `{"body"}` of at most 65 536 characters;
//! - GitLab: `GET|POST /projects/:id/merge_requests/:iid/notes` (`per_page` up to 100, `page`), `PUT
//!   /projects/:id/merge_requests/:iid/notes/:note_id`, body `{"body"}` of at most 1 000 000 characters;
//! - Gitea and Forgejo: `GET|POST /repos/{owner}/{repo}/issues/{index}/comments` (`page`, `limit`), `PATCH
//!   /repos/{owner}/{repo}/issues/comments/{id}`, body `{"body"}`; no documented limit, so GitHub's is kept.
//!
//! Bitbucket Cloud is not supported here. Pure request building and answer reading.

use reqwest::Method;
use serde_json::{Value, json};

use super::{ForgeProvider, ForgeRequest, ForgeTarget, gitlab};

/// Comments listed per page.
pub const PAGE_SIZE: usize = 100;
/// Pages read before giving up the search for the marked comment (10 000 comments).
pub const MAX_PAGES: usize = 100;

/// The longest comment body each forge accepts, in characters.
pub fn body_limit(provider: ForgeProvider) -> usize {
    match provider {
        ForgeProvider::Gitlab => 1_000_000,
        _ => 65_536,
    }
}

/// Whether `plan --comment` can post to `provider`.
pub fn supported(provider: ForgeProvider) -> bool {
    matches!(
        provider,
        ForgeProvider::Github | ForgeProvider::Gitlab | ForgeProvider::Gitea
    )
}

/// One page of the pull request's comments, oldest first (page numbers start at 1).
pub fn list(target: &ForgeTarget, number: u64, page: usize) -> ForgeRequest {
    let path = match target.provider {
        ForgeProvider::Gitlab => format!(
            "/projects/{}/merge_requests/{number}/notes?sort=asc&order_by=created_at&per_page={PAGE_SIZE}&page={page}",
            gitlab::encode(&target.repository)
        ),
        ForgeProvider::Gitea => format!(
            "/repos/{}/issues/{number}/comments?limit={PAGE_SIZE}&page={page}",
            target.repository
        ),
        _ => format!(
            "/repos/{}/issues/{number}/comments?per_page={PAGE_SIZE}&page={page}",
            target.repository
        ),
    };
    ForgeRequest {
        method: Method::GET,
        path,
        body: None,
    }
}

/// Creates a comment on the pull request.
pub fn create(target: &ForgeTarget, number: u64, body: &str) -> ForgeRequest {
    let path = match target.provider {
        ForgeProvider::Gitlab => format!(
            "/projects/{}/merge_requests/{number}/notes",
            gitlab::encode(&target.repository)
        ),
        _ => format!("/repos/{}/issues/{number}/comments", target.repository),
    };
    ForgeRequest {
        method: Method::POST,
        path,
        body: Some(json!({ "body": body })),
    }
}

/// Replaces the body of comment `id` of the pull request.
pub fn update(target: &ForgeTarget, number: u64, id: u64, body: &str) -> ForgeRequest {
    let (method, path) = match target.provider {
        ForgeProvider::Gitlab => (
            Method::PUT,
            format!(
                "/projects/{}/merge_requests/{number}/notes/{id}",
                gitlab::encode(&target.repository)
            ),
        ),
        _ => (
            Method::PATCH,
            format!("/repos/{}/issues/comments/{id}", target.repository),
        ),
    };
    ForgeRequest {
        method,
        path,
        body: Some(json!({ "body": body })),
    }
}

/// What [`super::ForgeClient::upsert_comment`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommentOutcome {
    /// A new comment was created.
    Created {
        /// Its id.
        id: u64,
    },
    /// The marked comment was updated.
    Updated {
        /// Its id.
        id: u64,
    },
    /// The marked comment already said the same.
    Unchanged {
        /// Its id.
        id: u64,
    },
}

/// A comment as a list answer shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedComment {
    /// The comment's id (GitLab: the note id).
    pub id: u64,
    /// Its body.
    pub body: String,
}

/// The comments of one list answer (GitLab's system notes, such as "added 1 commit", are left out).
pub fn listed(body: &Value) -> Vec<ListedComment> {
    body.as_array()
        .into_iter()
        .flatten()
        .filter(|comment| comment.get("system").and_then(Value::as_bool) != Some(true))
        .filter_map(|comment| {
            Some(ListedComment {
                id: comment.get("id")?.as_u64()?,
                body: comment.get("body")?.as_str()?.to_string(),
            })
        })
        .collect()
}

/// The oldest comment whose first line is `marker`.
pub fn find_marked<'a>(comments: &'a [ListedComment], marker: &str) -> Option<&'a ListedComment> {
    comments
        .iter()
        .find(|comment| comment.body.lines().next().map(str::trim_end) == Some(marker))
}

/// `body` cut to the forge's limit on a line boundary, with a last line saying so. The marker line stays first.
pub fn fit(provider: ForgeProvider, body: &str) -> String {
    let limit = body_limit(provider);
    if body.chars().count() <= limit {
        return body.to_string();
    }
    const NOTE: &str =
        "\n\n… the plan is longer than the forge allows in one comment; the CI job's log has all of it.\n";
    let budget = limit.saturating_sub(NOTE.chars().count());
    let mut kept = String::new();
    let mut used = 0;
    for line in body.split_inclusive('\n') {
        let length = line.chars().count();
        if used + length > budget {
            break;
        }
        kept.push_str(line);
        used += length;
    }
    // Details folded in `<details>` must be closed for the rest of the page to render.
    let open = kept
        .matches("<details>")
        .count()
        .saturating_sub(kept.matches("</details>").count());
    let mut closing = String::new();
    if kept.matches("```").count() % 2 == 1 {
        closing.push_str("```\n");
    }
    for _ in 0..open {
        closing.push_str("</details>\n");
    }
    while kept.chars().count() + closing.chars().count() > budget {
        let Some(cut) = kept.trim_end_matches('\n').rfind('\n') else {
            kept.clear();
            break;
        };
        kept.truncate(cut + 1);
    }
    format!("{kept}{closing}{NOTE}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(provider: ForgeProvider, repository: &str) -> ForgeTarget {
        ForgeTarget {
            provider,
            api_url: "https://forge.example".to_string(),
            repository: repository.to_string(),
        }
    }

    #[test]
    fn requests_follow_each_forges_documentation() {
        let github = target(ForgeProvider::Github, "team/config");
        assert_eq!(
            list(&github, 7, 2).path,
            "/repos/team/config/issues/7/comments?per_page=100&page=2"
        );
        assert_eq!(create(&github, 7, "x").method, Method::POST);
        let patch = update(&github, 7, 42, "new");
        assert_eq!(
            (patch.method, patch.path.as_str()),
            (Method::PATCH, "/repos/team/config/issues/comments/42")
        );
        assert_eq!(patch.body, Some(json!({"body": "new"})));

        let gitlab = target(ForgeProvider::Gitlab, "group/sub/config");
        assert_eq!(
            create(&gitlab, 3, "x").path,
            "/projects/group%2Fsub%2Fconfig/merge_requests/3/notes"
        );
        let put = update(&gitlab, 3, 9, "x");
        assert_eq!(
            (put.method, put.path.as_str()),
            (Method::PUT, "/projects/group%2Fsub%2Fconfig/merge_requests/3/notes/9")
        );
        assert!(list(&gitlab, 3, 1).path.contains("per_page=100&page=1"));

        let gitea = target(ForgeProvider::Gitea, "team/config");
        assert_eq!(
            list(&gitea, 5, 1).path,
            "/repos/team/config/issues/5/comments?limit=100&page=1"
        );
        assert_eq!(update(&gitea, 5, 11, "x").path, "/repos/team/config/issues/comments/11");
        assert!(!supported(ForgeProvider::Bitbucket));
    }

    #[test]
    fn the_marked_comment_is_found_by_its_first_line_only() {
        let answer = json!([
            {"id": 1, "body": "LGTM, but see <!-- redis-gitops-plan -->"},
            {"id": 2, "body": "added 1 commit", "system": true},
            {"id": 3, "body": "<!-- redis-gitops-plan:other -->\n### plan"},
            {"id": 4, "body": "<!-- redis-gitops-plan -->\r\n### redis-gitops plan"},
            {"id": 5, "body": "<!-- redis-gitops-plan -->\nlater duplicate"},
        ]);
        let comments = listed(&answer);
        assert_eq!(comments.len(), 4, "system notes are left out");
        assert_eq!(
            find_marked(&comments, "<!-- redis-gitops-plan -->").map(|c| c.id),
            Some(4)
        );
        assert_eq!(
            find_marked(&comments, "<!-- redis-gitops-plan:other -->").map(|c| c.id),
            Some(3)
        );
        assert_eq!(find_marked(&comments, "<!-- redis-gitops-plan:none -->"), None);
    }

    #[test]
    fn a_long_body_is_cut_on_a_line_with_its_blocks_closed() {
        let mut body = String::from("<!-- redis-gitops-plan -->\n<details>\n```\n");
        for n in 0..20_000 {
            body.push_str(&format!("line {n}\n"));
        }
        let cut = fit(ForgeProvider::Github, &body);
        assert!(cut.chars().count() <= body_limit(ForgeProvider::Github));
        assert!(cut.starts_with("<!-- redis-gitops-plan -->\n"));
        assert!(
            cut.contains("```\n</details>\n"),
            "the code block and the details are closed"
        );
        assert!(cut.ends_with("the CI job's log has all of it.\n"));
        assert_eq!(
            fit(ForgeProvider::Gitlab, &body),
            body,
            "GitLab takes a million characters"
        );
        assert_eq!(fit(ForgeProvider::Github, "short"), "short");
    }
}
