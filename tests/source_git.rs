//! The Git source against real servers on loopback: a bare repository over `file://`, `git daemon`, smart
//! HTTP (`git http-backend` behind a CGI server with auth) and OpenSSH's `sshd` with `known_hosts` enforced.

#[path = "source_git/repo.rs"]
mod repo;
#[path = "source_git/servers.rs"]
mod servers;

use std::sync::Once;
use std::time::{Duration, Instant};

use redis_gitops::source::{
    Credentials, GitRef, GitSource, PollOutcome, ReadOptions, Revision, SourceConfig, TreeEntry, set_network_timeouts,
};
use repo::{TestRepo, git, object_count};
use servers::{Blackhole, GitDaemon, HttpAuth, HttpGitServer, Sshd, free_port, generate_key};

/// libgit2's timeouts are process-wide: short ones keep the timeout test quick, and loopback is fast.
const IO_TIMEOUT: Duration = Duration::from_secs(4);

fn setup() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        set_network_timeouts(Duration::from_secs(4), IO_TIMEOUT).expect("set libgit2 timeouts");
    });
}

fn source(url: &str, reference: GitRef, credentials: Credentials, cache: &tempfile::TempDir) -> GitSource {
    setup();
    GitSource::new(SourceConfig {
        url: url.to_string(),
        reference,
        credentials,
        cache_dir: cache.path().to_path_buf(),
        timeout: Duration::from_secs(30),
    })
    .expect("valid source configuration")
}

fn branch(name: &str) -> GitRef {
    GitRef::Branch(name.to_string())
}

fn poll_ok(source: &GitSource) -> PollOutcome {
    source
        .poll()
        .unwrap_or_else(|error| panic!("poll failed: {error} ({})", error.category()))
}

/// A repository with a few YAML files, a non-YAML file and a nested directory.
fn sample_repo() -> TestRepo {
    let repo = TestRepo::new();
    repo.write("clusters/prod/cluster.yaml", b"kind: RedisEnterpriseCluster\n");
    repo.write("clusters/prod/databases/cache.yml", b"kind: RedisEnterpriseDatabase\n");
    repo.write("clusters/prod/README.md", b"not yaml\n");
    repo.write("clusters/staging/cluster.yaml", b"kind: RedisEnterpriseCluster\n");
    repo.commit("first");
    repo.push();
    repo
}

fn files(entries: &[TreeEntry]) -> Vec<(String, String)> {
    entries
        .iter()
        .map(|entry| match entry {
            TreeEntry::File { path, content } => (path.clone(), String::from_utf8_lossy(content).into_owned()),
            TreeEntry::Symlink { path, target } => (path.clone(), format!("-> {target}")),
        })
        .collect()
}

#[test]
fn file_first_fetch_then_noop_poll_fetches_nothing() {
    let repo = sample_repo();
    let head = git(repo.work.path(), &["rev-parse", "HEAD"]);
    let cache = tempfile::tempdir().unwrap();
    let source = source(&repo.file_url(), branch("main"), Credentials::none(), &cache);

    let first = poll_ok(&source);
    assert!(first.fetched);
    assert!(first.received_objects > 0);
    assert_eq!(first.revision.to_string(), format!("main@sha1:{head}"));
    let objects_after_first = object_count(source.cache_path());

    let second = poll_ok(&source);
    assert_eq!(second.revision, first.revision);
    assert!(!second.fetched, "a poll with an unchanged head must not fetch");
    assert_eq!(second.received_objects, 0);
    assert_eq!(
        object_count(source.cache_path()),
        objects_after_first,
        "the object database changed"
    );
}

#[test]
fn file_new_commit_is_fetched_and_tree_read_from_objects() {
    let repo = sample_repo();
    let cache = tempfile::tempdir().unwrap();
    let source = source(&repo.file_url(), branch("main"), Credentials::none(), &cache);
    let first = poll_ok(&source);

    repo.write(
        "clusters/prod/databases/sessions.yaml",
        b"kind: RedisEnterpriseDatabase\nname: sessions\n",
    );
    let second_commit = repo.commit("add sessions");
    repo.push();
    let second = poll_ok(&source);
    assert!(second.fetched);
    assert_eq!(second.revision.commit, second_commit);
    assert_ne!(second.revision, first.revision);

    let entries = source
        .read_tree(&second.revision, "clusters/prod", &ReadOptions::default())
        .expect("read tree");
    assert_eq!(
        files(&entries),
        vec![
            ("cluster.yaml".to_string(), "kind: RedisEnterpriseCluster\n".to_string()),
            (
                "databases/cache.yml".to_string(),
                "kind: RedisEnterpriseDatabase\n".to_string()
            ),
            (
                "databases/sessions.yaml".to_string(),
                "kind: RedisEnterpriseDatabase\nname: sessions\n".to_string()
            ),
        ]
    );
    // The older revision is still readable from the cache.
    let old = source
        .read_tree(&first.revision, "./clusters/prod/", &ReadOptions::default())
        .unwrap();
    assert_eq!(old.len(), 2);
    // The whole repository: every YAML file, nothing else.
    let all = source.read_tree(&second.revision, "", &ReadOptions::default()).unwrap();
    let paths: Vec<&str> = all.iter().map(TreeEntry::path).collect();
    assert_eq!(
        paths,
        vec![
            "clusters/prod/cluster.yaml",
            "clusters/prod/databases/cache.yml",
            "clusters/prod/databases/sessions.yaml",
            "clusters/staging/cluster.yaml"
        ]
    );
}

#[test]
fn file_force_push_to_unrelated_history() {
    let repo = sample_repo();
    let cache = tempfile::tempdir().unwrap();
    let source = source(&repo.file_url(), branch("main"), Credentials::none(), &cache);
    let before = poll_ok(&source);

    let rewritten = repo.rewrite_history(&[("only/db.yaml", "kind: RedisEnterpriseDatabase\n")]);
    repo.push();
    let after = poll_ok(&source);
    assert!(after.fetched);
    assert_eq!(after.revision.to_string(), format!("main@sha1:{rewritten}"));
    assert_ne!(after.revision.commit, before.revision.commit);
    let entries = source
        .read_tree(&after.revision, "only", &ReadOptions::default())
        .unwrap();
    assert_eq!(
        files(&entries),
        vec![("db.yaml".to_string(), "kind: RedisEnterpriseDatabase\n".to_string())]
    );
    let gone = source
        .read_tree(&after.revision, "clusters", &ReadOptions::default())
        .unwrap_err();
    assert_eq!(gone.category(), "PathNotFound");
}

#[test]
fn file_tags_annotated_and_lightweight() {
    let repo = sample_repo();
    let tagged = git(repo.work.path(), &["rev-parse", "HEAD"]);
    repo.tag("v1.0.0");
    repo.lightweight_tag("light");
    repo.commit("after the tags");
    repo.push();
    let cache = tempfile::tempdir().unwrap();

    let annotated = source(
        &repo.file_url(),
        GitRef::Tag("v1.0.0".into()),
        Credentials::none(),
        &cache,
    );
    let outcome = poll_ok(&annotated);
    assert_eq!(outcome.revision.to_string(), format!("v1.0.0@sha1:{tagged}"));
    assert!(!poll_ok(&annotated).fetched);

    let light = source(
        &repo.file_url(),
        GitRef::Tag("light".into()),
        Credentials::none(),
        &cache,
    );
    assert_eq!(poll_ok(&light).revision.to_string(), format!("light@sha1:{tagged}"));
}

#[test]
fn file_semver_picks_highest_matching_tag() {
    let repo = TestRepo::new();
    let mut commits = std::collections::HashMap::new();
    for tag in ["v1.2.0", "v1.10.0", "v1.11.0-rc.1", "v2.0.0", "0.9.0"] {
        repo.write("db.yaml", tag.as_bytes());
        commits.insert(tag, repo.commit(tag));
        repo.tag(tag);
    }
    repo.push();
    let cache = tempfile::tempdir().unwrap();

    let ranged = source(
        &repo.file_url(),
        GitRef::Semver(">=1.0.0 <2.0.0".into()),
        Credentials::none(),
        &cache,
    );
    let outcome = poll_ok(&ranged);
    assert_eq!(
        outcome.revision.to_string(),
        format!("v1.10.0@sha1:{}", commits["v1.10.0"])
    );
    let entries = ranged
        .read_tree(&outcome.revision, "", &ReadOptions::default())
        .unwrap();
    assert_eq!(files(&entries), vec![("db.yaml".to_string(), "v1.10.0".to_string())]);

    let any = source(
        &repo.file_url(),
        GitRef::Semver("*".into()),
        Credentials::none(),
        &cache,
    );
    assert_eq!(poll_ok(&any).revision.ref_name.as_deref(), Some("v2.0.0"));

    let none = source(
        &repo.file_url(),
        GitRef::Semver("~3.1".into()),
        Credentials::none(),
        &cache,
    );
    let error = none.poll().unwrap_err();
    assert_eq!(error.category(), "RefNotFound");
    assert_eq!(
        error.to_string(),
        format!(
            "ref semver '~3.1' not found in {}: none of the remote's 5 tags is a version in that range",
            repo.file_url()
        )
    );
}

#[test]
fn file_exact_commit_and_missing_refs() {
    let repo = sample_repo();
    let first = git(repo.work.path(), &["rev-parse", "HEAD"]);
    repo.write("clusters/prod/extra.yaml", b"x: 1\n");
    repo.commit("second");
    repo.push();
    let cache = tempfile::tempdir().unwrap();

    let pinned = source(
        &repo.file_url(),
        GitRef::Commit(first.clone()),
        Credentials::none(),
        &cache,
    );
    let outcome = poll_ok(&pinned);
    assert_eq!(outcome.revision.to_string(), format!("sha1:{first}"));
    assert!(outcome.fetched);
    assert!(!poll_ok(&pinned).fetched, "a cached exact commit needs no fetch");

    let unknown = "0123456789abcdef0123456789abcdef01234567";
    let missing_commit = source(
        &repo.file_url(),
        GitRef::Commit(unknown.into()),
        Credentials::none(),
        &cache,
    );
    let error = missing_commit.poll().unwrap_err();
    assert_eq!(error.category(), "RefNotFound");
    assert!(error.to_string().contains(unknown), "{error}");

    let missing_branch = source(&repo.file_url(), branch("does-not-exist"), Credentials::none(), &cache);
    let error = missing_branch.poll().unwrap_err();
    assert_eq!(error.category(), "RefNotFound");
    assert_eq!(
        error.to_string(),
        format!("ref branch 'does-not-exist' not found in {}", repo.file_url())
    );

    let error = GitSource::new(SourceConfig {
        url: repo.file_url(),
        reference: GitRef::Commit("abc123".into()),
        credentials: Credentials::none(),
        cache_dir: cache.path().to_path_buf(),
        timeout: Duration::from_secs(5),
    })
    .unwrap_err();
    assert_eq!(error.category(), "InvalidRef");
}

#[test]
fn read_tree_errors_and_symlinks() {
    let repo = sample_repo();
    repo.symlink("clusters/prod/linked.yaml", "../../../etc/passwd");
    repo.symlink("clusters/prod/dir-link", "../staging");
    repo.write("clusters/big/huge.yaml", &vec![b'a'; 2048]);
    repo.write("clusters/file.yaml", b"a: 1\n");
    repo.commit("links and big files");
    repo.push();
    let cache = tempfile::tempdir().unwrap();
    let source = source(&repo.file_url(), branch("main"), Credentials::none(), &cache);
    let revision = poll_ok(&source).revision;
    let limits = ReadOptions {
        max_file_size: 1024,
        max_files: 10,
        ..ReadOptions::default()
    };

    let entries = source.read_tree(&revision, "clusters/prod", &limits).unwrap();
    assert!(entries.contains(&TreeEntry::Symlink {
        path: "linked.yaml".into(),
        target: "../../../etc/passwd".into()
    }));
    assert!(entries.contains(&TreeEntry::Symlink {
        path: "dir-link".into(),
        target: "../staging".into()
    }));

    let error = source.read_tree(&revision, "clusters/missing", &limits).unwrap_err();
    assert_eq!(error.category(), "PathNotFound");
    assert_eq!(
        error.to_string(),
        format!("path 'clusters/missing' not found in revision {revision}")
    );

    let error = source.read_tree(&revision, "clusters/big", &limits).unwrap_err();
    assert_eq!(error.category(), "TooLarge");
    assert_eq!(
        error.to_string(),
        format!("file 'clusters/big/huge.yaml' in revision {revision} is 2048 bytes, over the limit of 1024 bytes")
    );

    let error = source.read_tree(&revision, "clusters/file.yaml", &limits).unwrap_err();
    assert_eq!(error.category(), "NotADirectory");

    let tight = ReadOptions {
        max_file_size: 4096,
        max_files: 2,
        ..ReadOptions::default()
    };
    let error = source.read_tree(&revision, "clusters", &tight).unwrap_err();
    assert_eq!(error.category(), "TooManyFiles");
    assert_eq!(
        error.to_string(),
        format!("more than 2 files under 'clusters' in revision {revision}")
    );

    let error = source.read_tree(&revision, "../outside", &limits).unwrap_err();
    assert_eq!(error.category(), "InvalidPath");

    let never_fetched = Revision {
        ref_name: Some("main".into()),
        commit: "0123456789abcdef0123456789abcdef01234567".into(),
    };
    assert_eq!(
        source.read_tree(&never_fetched, "", &limits).unwrap_err().category(),
        "CommitNotCached"
    );
}

#[test]
fn git_daemon_shallow_fetch_noop_new_commit_and_force_push() {
    let repo = sample_repo();
    for index in 0..5 {
        repo.write(
            "clusters/prod/cluster.yaml",
            format!("generation: {index}\n").as_bytes(),
        );
        repo.commit(&format!("commit {index}"));
    }
    repo.push();
    let daemon = GitDaemon::start(repo.root.path());
    let cache = tempfile::tempdir().unwrap();
    let source = source(&daemon.url(TestRepo::NAME), branch("main"), Credentials::none(), &cache);

    let first = poll_ok(&source);
    assert!(first.fetched);
    assert_eq!(first.revision.commit, git(repo.work.path(), &["rev-parse", "HEAD"]));
    let cached = git2::Repository::open_bare(source.cache_path()).unwrap();
    assert!(cached.is_shallow(), "the first fetch should be shallow (depth 1)");
    // Depth 1: one commit, not the six of the history.
    assert!(
        cached
            .find_commit(git2::Oid::from_str(&first.revision.commit).unwrap())
            .is_ok()
    );
    let parent = git(repo.work.path(), &["rev-parse", "HEAD~1"]);
    assert!(cached.find_commit(git2::Oid::from_str(&parent).unwrap()).is_err());
    let objects = object_count(source.cache_path());

    let noop = poll_ok(&source);
    assert!(!noop.fetched);
    assert_eq!(object_count(source.cache_path()), objects);

    repo.write("clusters/prod/new.yaml", b"new: true\n");
    let newer = repo.commit("newer");
    repo.push();
    let second = poll_ok(&source);
    assert!(second.fetched);
    assert_eq!(second.revision.commit, newer);
    let entries = source
        .read_tree(&second.revision, "clusters/prod", &ReadOptions::default())
        .unwrap();
    assert!(entries.iter().any(|entry| entry.path() == "new.yaml"));

    let rewritten = repo.rewrite_history(&[("db.yaml", "kind: RedisEnterpriseDatabase\n")]);
    repo.push();
    let third = poll_ok(&source);
    assert!(third.fetched);
    assert_eq!(third.revision.commit, rewritten);
    let entries = source.read_tree(&third.revision, "", &ReadOptions::default()).unwrap();
    assert_eq!(
        files(&entries),
        vec![("db.yaml".to_string(), "kind: RedisEnterpriseDatabase\n".to_string())]
    );
}

#[test]
fn git_daemon_semver_tag_and_exact_commit() {
    let repo = sample_repo();
    let first = git(repo.work.path(), &["rev-parse", "HEAD"]);
    repo.tag("v1.0.0");
    repo.write("clusters/prod/two.yaml", b"two: 2\n");
    let second = repo.commit("two");
    repo.tag("v1.1.0");
    repo.write("clusters/prod/three.yaml", b"three: 3\n");
    repo.commit("three");
    repo.tag("v2.0.0");
    repo.push();
    let daemon = GitDaemon::start(repo.root.path());
    let cache = tempfile::tempdir().unwrap();
    let url = daemon.url(TestRepo::NAME);

    let ranged = source(&url, GitRef::Semver("~1".into()), Credentials::none(), &cache);
    assert_eq!(poll_ok(&ranged).revision.to_string(), format!("v1.1.0@sha1:{second}"));
    let tag = source(&url, GitRef::Tag("v1.0.0".into()), Credentials::none(), &cache);
    assert_eq!(poll_ok(&tag).revision.to_string(), format!("v1.0.0@sha1:{first}"));
    // The cache is shallow from the tag fetches; an exact older commit still resolves (full fetch).
    let pinned = source(&url, GitRef::Commit(first.clone()), Credentials::none(), &cache);
    let outcome = poll_ok(&pinned);
    assert_eq!(outcome.revision.to_string(), format!("sha1:{first}"));
    let entries = pinned
        .read_tree(&outcome.revision, "clusters/prod", &ReadOptions::default())
        .unwrap();
    assert_eq!(entries.len(), 2);
}

#[test]
fn unreachable_remote_fails_fast() {
    let port = free_port();
    let cache = tempfile::tempdir().unwrap();
    let source = source(
        &format!("git://127.0.0.1:{port}/repo.git"),
        branch("main"),
        Credentials::none(),
        &cache,
    );
    let started = Instant::now();
    let error = source.poll().unwrap_err();
    assert_eq!(error.category(), "Unreachable", "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        error.to_string().starts_with(&format!(
            "unable to reach git://127.0.0.1:{port}/repo.git while listing remote refs: "
        )),
        "{error}"
    );
}

#[test]
fn silent_server_times_out() {
    let blackhole = Blackhole::start();
    let cache = tempfile::tempdir().unwrap();
    let source = source(
        &format!("git://127.0.0.1:{}/repo.git", blackhole.port),
        branch("main"),
        Credentials::none(),
        &cache,
    );
    let started = Instant::now();
    let error = source.poll().unwrap_err();
    assert_eq!(error.category(), "Timeout", "{error}");
    assert!(
        started.elapsed() < IO_TIMEOUT + Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(error.to_string().contains("while listing remote refs"), "{error}");
}

/// A smart HTTPS server with its test CA: credentials are only ever sent over https (http:// with a password or
/// token is refused before any network use).
fn https_server(root: &std::path::Path, auth: HttpAuth) -> (HttpGitServer, servers::TestPki) {
    let pki = servers::TestPki::generate();
    let server = HttpGitServer::start_with_tls(root, auth, Some((&pki.server_cert, &pki.server_key)));
    (server, pki)
}

/// `credentials` that also trust `pki`'s CA.
fn trusting(pki: &servers::TestPki, credentials: Credentials) -> Credentials {
    Credentials {
        ca_cert: Some(pki.ca_pem.clone()),
        ..credentials
    }
}

fn basic(user: &str, password: &str) -> Credentials {
    Credentials {
        username: Some(user.to_string()),
        password: Some(password.into()),
        ..Credentials::default()
    }
}

#[test]
fn http_basic_auth_noop_poll_is_one_request() {
    let repo = sample_repo();
    let (server, pki) = https_server(
        repo.root.path(),
        HttpAuth::Basic {
            user: "deploy".into(),
            password: "correct-horse".into(),
        },
    );
    let cache = tempfile::tempdir().unwrap();
    let source = source(
        &server.url(TestRepo::NAME),
        branch("main"),
        trusting(&pki, basic("deploy", "correct-horse")),
        &cache,
    );

    let first = poll_ok(&source);
    assert!(first.fetched);
    assert_eq!(first.revision.commit, git(repo.work.path(), &["rev-parse", "HEAD"]));
    // Fetch negotiation happened (stateless HTTP with depth takes more than one POST).
    let posts_after_fetch = server.upload_pack_posts.load(std::sync::atomic::Ordering::SeqCst);
    assert!(posts_after_fetch >= 1);

    let requests_before = server.requests.load(std::sync::atomic::Ordering::SeqCst);
    let unauthorized_before = server.unauthorized.load(std::sync::atomic::Ordering::SeqCst);
    let noop = poll_ok(&source);
    assert!(!noop.fetched);
    let requests = server.requests.load(std::sync::atomic::Ordering::SeqCst) - requests_before;
    let challenges = server.unauthorized.load(std::sync::atomic::Ordering::SeqCst) - unauthorized_before;
    // One ref advertisement (plus libgit2's unauthenticated first try, answered 401), and no negotiation.
    assert_eq!(
        requests - challenges,
        1,
        "a no-op poll is one authenticated ref listing"
    );
    assert_eq!(
        server.upload_pack_posts.load(std::sync::atomic::Ordering::SeqCst),
        posts_after_fetch,
        "no fetch negotiation on a no-op poll"
    );

    repo.write("clusters/prod/more.yaml", b"more: 1\n");
    let newer = repo.commit("more");
    repo.push();
    let second = poll_ok(&source);
    assert!(second.fetched);
    assert_eq!(second.revision.commit, newer);
}

#[test]
fn http_wrong_or_missing_credentials_are_clear_and_secret_free() {
    let repo = sample_repo();
    let (server, pki) = https_server(
        repo.root.path(),
        HttpAuth::Basic {
            user: "deploy".into(),
            password: "correct-horse".into(),
        },
    );
    let url = server.url(TestRepo::NAME);
    let cache = tempfile::tempdir().unwrap();

    let wrong = source(
        &url,
        branch("main"),
        trusting(&pki, basic("deploy", "battery-staple-WRONG")),
        &cache,
    );
    let error = wrong.poll().unwrap_err();
    assert_eq!(error.category(), "AuthenticationFailed", "{error}");
    assert_eq!(
        error.to_string(),
        format!("authentication failed for {url} while listing remote refs: the server refused the username/password")
    );
    let debug = format!("{error:?} {wrong:?}");
    assert!(!debug.contains("battery-staple-WRONG"), "secret leaked: {debug}");
    assert!(!error.to_string().contains("battery-staple-WRONG"));

    let anonymous = source(&url, branch("main"), trusting(&pki, Credentials::none()), &cache);
    let error = anonymous.poll().unwrap_err();
    assert_eq!(error.category(), "AuthenticationFailed", "{error}");
    assert!(
        error.to_string().contains("the Secret has no 'username'/'password'"),
        "{error}"
    );
}

#[test]
fn http_with_credentials_is_refused_before_any_request() {
    let repo = sample_repo();
    let server = HttpGitServer::start(
        repo.root.path(),
        HttpAuth::Basic {
            user: "deploy".into(),
            password: "correct-horse".into(),
        },
    );
    let url = server.url(TestRepo::NAME);
    let cache = tempfile::tempdir().unwrap();
    let error = GitSource::new(SourceConfig {
        url: url.clone(),
        reference: branch("main"),
        credentials: basic("deploy", "correct-horse"),
        cache_dir: cache.path().to_path_buf(),
        timeout: Duration::from_secs(30),
    })
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "invalid credentials for {url}: the Secret sets 'password', which an http:// url would send in cleartext; \
             use the https:// url of the repository (plain http:// is for anonymous access only)"
        )
    );
    assert_eq!(server.requests.load(std::sync::atomic::Ordering::SeqCst), 0);
    // Anonymous http:// still reaches the server (which asks for credentials here).
    let anonymous = source(&url, branch("main"), Credentials::none(), &cache);
    assert_eq!(anonymous.poll().unwrap_err().category(), "AuthenticationFailed");
    assert!(server.requests.load(std::sync::atomic::Ordering::SeqCst) > 0);
}

#[test]
fn http_bearer_token() {
    let repo = sample_repo();
    let (server, pki) = https_server(repo.root.path(), HttpAuth::Bearer("tok-0123456789".into()));
    let url = server.url(TestRepo::NAME);
    let cache = tempfile::tempdir().unwrap();
    let token = |value: &str| Credentials {
        bearer_token: Some(value.into()),
        ca_cert: Some(pki.ca_pem.clone()),
        ..Credentials::default()
    };

    let good = source(&url, branch("main"), token("tok-0123456789"), &cache);
    let first = poll_ok(&good);
    assert!(first.fetched);
    assert!(!poll_ok(&good).fetched);

    let bad = source(&url, branch("main"), token("tok-WRONG-999"), &cache);
    let error = bad.poll().unwrap_err();
    assert_eq!(error.category(), "AuthenticationFailed", "{error}");
    assert!(!format!("{error} {error:?} {bad:?}").contains("tok-WRONG-999"));
}

fn ssh_credentials(sshd: &Sshd, known_hosts: String) -> Credentials {
    Credentials {
        identity: Some(sshd.client_private_key.clone().into()),
        known_hosts: Some(known_hosts),
        ..Credentials::default()
    }
}

#[test]
fn ssh_deploy_key_with_known_hosts() {
    let repo = sample_repo();
    let sshd = Sshd::start();
    let cache = tempfile::tempdir().unwrap();
    let source = source(
        &sshd.url(&repo.bare()),
        branch("main"),
        ssh_credentials(&sshd, sshd.known_hosts_line()),
        &cache,
    );
    let first = poll_ok(&source);
    assert!(first.fetched);
    assert_eq!(first.revision.commit, git(repo.work.path(), &["rev-parse", "HEAD"]));
    let objects = object_count(source.cache_path());
    let noop = poll_ok(&source);
    assert!(!noop.fetched);
    assert_eq!(object_count(source.cache_path()), objects);

    repo.write("clusters/prod/ssh.yaml", b"over: ssh\n");
    let newer = repo.commit("ssh");
    repo.push();
    assert_eq!(poll_ok(&source).revision.commit, newer);
}

#[test]
fn ssh_wrong_or_unknown_host_key_is_refused() {
    let repo = sample_repo();
    let sshd = Sshd::start();
    let keys = tempfile::tempdir().unwrap();
    let (_, other_host_key) = generate_key(keys.path(), "other");
    let cache = tempfile::tempdir().unwrap();
    let url = sshd.url(&repo.bare());

    let mismatch = source(
        &url,
        branch("main"),
        ssh_credentials(&sshd, format!("[127.0.0.1]:{} {other_host_key}\n", sshd.port)),
        &cache,
    );
    let error = mismatch.poll().unwrap_err();
    assert_eq!(error.category(), "HostKeyMismatch", "{error}");
    let text = error.to_string();
    assert!(
        text.starts_with(&format!(
            "ssh host key mismatch for [127.0.0.1]:{} ({url}): server offered ssh-ed25519 SHA256:",
            sshd.port
        )),
        "{text}"
    );
    assert!(text.contains("known_hosts expects ssh-ed25519 SHA256:"), "{text}");
    assert!(!text.contains("PRIVATE KEY") && !format!("{error:?}").contains("PRIVATE KEY"));

    let unknown = source(
        &url,
        branch("main"),
        ssh_credentials(&sshd, format!("git.example.com {}\n", sshd.host_public_key)),
        &cache,
    );
    let error = unknown.poll().unwrap_err();
    assert_eq!(error.category(), "UnknownHostKey", "{error}");
    assert!(
        error.to_string().contains("known_hosts has no entry for this host"),
        "{error}"
    );
    // Nothing was fetched from a server we did not trust.
    assert!(
        git2::Repository::open_bare(mismatch.cache_path())
            .unwrap()
            .refname_to_id("refs/gitops/heads/main")
            .is_err()
    );
}

#[test]
fn ssh_unauthorized_deploy_key_fails_authentication() {
    let repo = sample_repo();
    let sshd = Sshd::start();
    let keys = tempfile::tempdir().unwrap();
    let (stranger_key, _) = generate_key(keys.path(), "stranger");
    let cache = tempfile::tempdir().unwrap();
    let credentials = Credentials {
        identity: Some(stranger_key.clone().into()),
        known_hosts: Some(sshd.known_hosts_line()),
        ..Credentials::default()
    };
    let stranger = source(&sshd.url(&repo.bare()), branch("main"), credentials, &cache);
    let error = stranger.poll().unwrap_err();
    assert_eq!(error.category(), "AuthenticationFailed", "{error}");
    let key_body = stranger_key.lines().nth(1).unwrap_or("unreachable-default");
    assert!(!format!("{error} {error:?} {stranger:?}").contains(key_body));
}

#[test]
fn config_errors_are_clear() {
    setup();
    let cache = tempfile::tempdir().unwrap();
    let make = |url: &str, credentials: Credentials| {
        GitSource::new(SourceConfig {
            url: url.to_string(),
            reference: branch("main"),
            credentials,
            cache_dir: cache.path().to_path_buf(),
            timeout: Duration::from_secs(5),
        })
    };
    let error = make("https://user:p4ssw0rd@example.com/repo.git", Credentials::none()).unwrap_err();
    assert_eq!(error.category(), "InvalidUrl");
    assert!(!error.to_string().contains("p4ssw0rd"));
    let error = make("ssh://git@example.com/repo.git", Credentials::none()).unwrap_err();
    assert_eq!(error.category(), "InvalidCredentials");
    assert_eq!(
        error.to_string(),
        "invalid credentials for ssh://git@example.com/repo.git: ssh needs 'known_hosts' in the Secret (host keys are never trusted on first use)"
    );
    let error = make(
        "git@example.com:org/repo.git",
        Credentials {
            known_hosts: Some("x".into()),
            ..Credentials::default()
        },
    )
    .unwrap_err();
    assert!(error.to_string().contains("'identity'"), "{error}");
}

#[test]
fn https_with_custom_ca() {
    let repo = sample_repo();
    let pki = servers::TestPki::generate();
    let server = HttpGitServer::start_with_tls(
        repo.root.path(),
        HttpAuth::Basic {
            user: "deploy".into(),
            password: "tls-pass".into(),
        },
        Some((&pki.server_cert, &pki.server_key)),
    );
    let url = server.url(TestRepo::NAME);
    assert!(url.starts_with("https://"));
    let cache = tempfile::tempdir().unwrap();
    let with_ca = |ca: Option<Vec<u8>>| Credentials {
        ca_cert: ca,
        ..basic("deploy", "tls-pass")
    };

    let trusted = source(&url, branch("main"), with_ca(Some(pki.ca_pem.clone())), &cache);
    let outcome = poll_ok(&trusted);
    assert!(outcome.fetched);
    assert_eq!(outcome.revision.commit, git(repo.work.path(), &["rev-parse", "HEAD"]));
    assert!(!poll_ok(&trusted).fetched);

    let system_store_only = source(&url, branch("main"), with_ca(None), &cache);
    let error = system_store_only.poll().unwrap_err();
    assert_eq!(error.category(), "CertificateInvalid", "{error}");

    let other_pki = servers::TestPki::generate();
    let wrong_ca = source(&url, branch("main"), with_ca(Some(other_pki.ca_pem.clone())), &cache);
    let error = wrong_ca.poll().unwrap_err();
    assert_eq!(error.category(), "CertificateInvalid", "{error}");
    assert!(
        error.to_string().starts_with(&format!(
            "tls certificate of {url} not trusted: certificate for '127.0.0.1' does not verify against 'ca.crt'"
        )),
        "{error}"
    );
}

#[test]
fn cache_persists_across_instances_and_recovers_from_corruption() {
    let repo = sample_repo();
    let cache = tempfile::tempdir().unwrap();
    let first = source(&repo.file_url(), branch("main"), Credentials::none(), &cache);
    let fetched = poll_ok(&first);
    assert!(fetched.fetched);

    // A new instance (an agent restart) finds the commit in the cache on disk: no fetch.
    let restarted = source(&repo.file_url(), branch("main"), Credentials::none(), &cache);
    assert_eq!(restarted.cache_path(), first.cache_path());
    let outcome = poll_ok(&restarted);
    assert!(!outcome.fetched);
    assert_eq!(outcome.revision, fetched.revision);

    // A damaged cache is thrown away and fetched again.
    std::fs::remove_dir_all(restarted.cache_path()).unwrap();
    std::fs::create_dir_all(restarted.cache_path()).unwrap();
    std::fs::write(restarted.cache_path().join("HEAD"), b"garbage").unwrap();
    let recovered = poll_ok(&restarted);
    assert!(recovered.fetched);
    assert_eq!(recovered.revision, fetched.revision);
    assert_eq!(
        restarted
            .read_tree(&recovered.revision, "clusters/staging", &ReadOptions::default())
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn concurrent_polls_of_one_url_share_the_cache_safely() {
    let repo = sample_repo();
    let daemon = GitDaemon::start(repo.root.path());
    let cache = tempfile::tempdir().unwrap();
    let url = daemon.url(TestRepo::NAME);
    let head = git(repo.work.path(), &["rev-parse", "HEAD"]);
    let revisions: Vec<Revision> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let source = source(&url, branch("main"), Credentials::none(), &cache);
                scope.spawn(move || poll_ok(&source).revision)
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("poll thread"))
            .collect()
    });
    assert!(
        revisions.iter().all(|revision| revision.commit == head),
        "{revisions:?}"
    );
}

#[test]
fn overall_deadline_is_enforced() {
    let repo = sample_repo();
    let daemon = GitDaemon::start(repo.root.path());
    setup();
    let cache = tempfile::tempdir().unwrap();
    let hurried = GitSource::new(SourceConfig {
        url: daemon.url(TestRepo::NAME),
        reference: branch("main"),
        credentials: Credentials::none(),
        cache_dir: cache.path().to_path_buf(),
        timeout: Duration::ZERO,
    })
    .unwrap();
    let error = hurried.poll().unwrap_err();
    assert_eq!(error.category(), "Timeout", "{error}");
    assert_eq!(
        error.to_string(),
        format!(
            "timed out after 0ns while listing remote refs ({})",
            daemon.url(TestRepo::NAME)
        )
    );
}

#[test]
fn ssh_key_with_passphrase() {
    let repo = sample_repo();
    let sshd = Sshd::start();
    let cache = tempfile::tempdir().unwrap();
    let url = sshd.url(&repo.bare());
    let encrypted = sshd.client_private_key_encrypted("open-sesame-42");
    let with_passphrase = |passphrase: &str| Credentials {
        identity: Some(encrypted.clone().into()),
        password: Some(passphrase.into()),
        known_hosts: Some(sshd.known_hosts_line()),
        ..Credentials::default()
    };
    let good = source(&url, branch("main"), with_passphrase("open-sesame-42"), &cache);
    assert!(poll_ok(&good).fetched);

    let wrong = source(&url, branch("main"), with_passphrase("not-the-passphrase"), &cache);
    let error = wrong.poll().unwrap_err();
    assert_eq!(error.category(), "AuthenticationFailed", "{error}");
    assert!(
        error.to_string().contains("could not be used (wrong passphrase?)"),
        "{error}"
    );
    assert!(!format!("{error} {error:?}").contains("not-the-passphrase"));
}

#[test]
fn ignore_rules_default_spec_and_sourceignore() {
    let repo = sample_repo();
    repo.write(".github/workflows/ci.yml", b"on: push\n");
    repo.write(".sops.yaml", b"creation_rules: []\n");
    repo.write("clusters/prod/.sourceignore", b"drafts/\n*.tmp.yaml\n");
    repo.write("clusters/prod/drafts/next.yaml", b"draft: true\n");
    repo.write("clusters/prod/scratch.tmp.yaml", b"tmp: true\n");
    repo.write(".sourceignore", b"staging/\n");
    repo.commit("ci, sops, drafts");
    repo.push();
    let cache = tempfile::tempdir().unwrap();
    let source = source(&repo.file_url(), branch("main"), Credentials::none(), &cache);
    let revision = poll_ok(&source).revision;
    let paths = |options: &ReadOptions, path: &str| -> Vec<String> {
        source
            .read_tree(&revision, path, options)
            .unwrap()
            .iter()
            .map(|entry| entry.path().to_string())
            .collect()
    };

    // Defaults drop CI and tool files; .sourceignore files (root and nested) apply.
    assert_eq!(
        paths(&ReadOptions::default(), ""),
        vec!["clusters/prod/cluster.yaml", "clusters/prod/databases/cache.yml"]
    );
    // Reading below a directory still honours the .sourceignore files above it.
    assert_eq!(
        paths(&ReadOptions::default(), "clusters/prod"),
        vec!["cluster.yaml", "databases/cache.yml"]
    );

    // spec.ignore replaces the defaults (so .github is read) and may re-include with '!'.
    let custom = ReadOptions {
        ignore: Some("databases/\n".into()),
        ..ReadOptions::default()
    };
    assert_eq!(
        paths(&custom, ""),
        vec![".github/workflows/ci.yml", ".sops.yaml", "clusters/prod/cluster.yaml"]
    );

    let invalid = ReadOptions {
        ignore: Some("[z-a].yaml\n".into()),
        ..ReadOptions::default()
    };
    let error = source.read_tree(&revision, "", &invalid).unwrap_err();
    assert_eq!(error.category(), "InvalidIgnore", "{error}");
    assert!(
        error.to_string().starts_with("invalid ignore pattern in spec.ignore: "),
        "{error}"
    );
}

#[test]
fn missing_repository_is_reported_per_transport() {
    let repo = sample_repo();
    let daemon = GitDaemon::start(repo.root.path());
    let (http, pki) = https_server(
        repo.root.path(),
        HttpAuth::Basic {
            user: "deploy".into(),
            password: "pw-123".into(),
        },
    );
    let cache = tempfile::tempdir().unwrap();
    for (url, credentials) in [
        (
            format!("file://{}/missing.git", repo.root.path().display()),
            Credentials::none(),
        ),
        (daemon.url("missing.git"), Credentials::none()),
        (http.url("missing.git"), trusting(&pki, basic("deploy", "pw-123"))),
    ] {
        let error = source(&url, branch("main"), credentials, &cache).poll().unwrap_err();
        assert_eq!(error.category(), "Unreachable", "{url}: {error}");
        assert!(
            error
                .to_string()
                .starts_with(&format!("unable to reach {url} while listing remote refs: ")),
            "{error}"
        );
    }
}

/// The controller shares a source across `spawn_blocking` calls and sends errors between tasks.
#[test]
fn source_and_errors_cross_threads() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<GitSource>();
    assert_send_sync::<redis_gitops::source::SourceError>();
    assert_send_sync::<PollOutcome>();
    assert_send_sync::<TreeEntry>();
}

#[test]
fn exact_old_commit_unshallows_a_shared_shallow_cache() {
    let repo = sample_repo();
    let old = git(repo.work.path(), &["rev-parse", "HEAD"]);
    for index in 0..3 {
        repo.write(
            "clusters/prod/cluster.yaml",
            format!("generation: {index}\n").as_bytes(),
        );
        repo.commit(&format!("commit {index}"));
    }
    repo.push();
    let daemon = GitDaemon::start(repo.root.path());
    let cache = tempfile::tempdir().unwrap();
    let url = daemon.url(TestRepo::NAME);
    let follower = source(&url, branch("main"), Credentials::none(), &cache);
    poll_ok(&follower);
    let cached = git2::Repository::open_bare(follower.cache_path()).unwrap();
    assert!(cached.is_shallow());
    assert!(cached.find_commit(git2::Oid::from_str(&old).unwrap()).is_err());

    let pinned = source(&url, GitRef::Commit(old.clone()), Credentials::none(), &cache);
    assert_eq!(pinned.cache_path(), follower.cache_path(), "one cache per url");
    let outcome = poll_ok(&pinned);
    assert!(outcome.fetched);
    assert_eq!(outcome.revision.to_string(), format!("sha1:{old}"));
    let entries = pinned
        .read_tree(&outcome.revision, "clusters/prod", &ReadOptions::default())
        .unwrap();
    assert_eq!(
        files(&entries)[0],
        ("cluster.yaml".to_string(), "kind: RedisEnterpriseCluster\n".to_string())
    );
    // The branch follower keeps working on the now complete cache, without fetching.
    assert!(!poll_ok(&follower).fetched);
}

#[test]
fn credentials_never_follow_an_off_site_redirect() {
    let repo = sample_repo();
    let (target, pki) = https_server(
        repo.root.path(),
        HttpAuth::Basic {
            user: "deploy".into(),
            password: "redirect-secret".into(),
        },
    );
    // Same machine, another host name: libgit2 treats it as off-site.
    let redirect = servers::RedirectServer::start_with_tls(
        format!("https://localhost:{}", target.port),
        Some((&pki.server_cert, &pki.server_key)),
    );
    let cache = tempfile::tempdir().unwrap();
    let url = format!("https://127.0.0.1:{}/{}", redirect.port, TestRepo::NAME);
    let redirected = source(
        &url,
        branch("main"),
        trusting(&pki, basic("deploy", "redirect-secret")),
        &cache,
    );
    let error = redirected.poll().unwrap_err();
    assert!(!error.to_string().contains("redirect-secret"), "{error}");
    assert!(
        error
            .to_string()
            .ends_with("cannot redirect from '127.0.0.1' to 'localhost'"),
        "{error}"
    );
    assert_eq!(
        target.requests.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the redirect target must never be contacted with our credentials ({error})"
    );
}

#[test]
fn fragmented_cache_is_rebuilt() {
    let repo = sample_repo();
    let daemon = GitDaemon::start(repo.root.path());
    let cache = tempfile::tempdir().unwrap();
    let source =
        source(&daemon.url(TestRepo::NAME), branch("main"), Credentials::none(), &cache).with_max_cache_packs(3);
    let packs = |source: &GitSource| {
        std::fs::read_dir(source.cache_path().join("objects/pack"))
            .unwrap()
            .filter(|entry| entry.as_ref().unwrap().file_name().to_string_lossy().ends_with(".pack"))
            .count()
    };
    let mut counts = Vec::new();
    for index in 0..5 {
        repo.write(
            "clusters/prod/cluster.yaml",
            format!("generation: {index}\n").as_bytes(),
        );
        let head = repo.commit(&format!("change {index}"));
        repo.push();
        let outcome = poll_ok(&source);
        assert!(outcome.fetched);
        assert_eq!(outcome.revision.commit, head);
        counts.push(packs(&source));
    }
    // One pack per fetch until the limit, then a rebuild starts over with one.
    assert_eq!(counts, vec![1, 2, 3, 1, 2]);
    let entries = source
        .read_tree(&poll_ok(&source).revision, "clusters/prod", &ReadOptions::default())
        .unwrap();
    assert!(files(&entries).contains(&("cluster.yaml".to_string(), "generation: 4\n".to_string())));
}

#[test]
fn full_ref_name_such_as_a_pull_request_head() {
    let repo = sample_repo();
    repo.write("clusters/prod/pr.yaml", b"pr: 1\n");
    let pr_head = repo.commit("proposed change");
    git(repo.work.path(), &["push", "-q", "origin", "HEAD:refs/pull/1/head"]);
    let daemon = GitDaemon::start(repo.root.path());
    let cache = tempfile::tempdir().unwrap();
    let source = source(
        &daemon.url(TestRepo::NAME),
        GitRef::Name("refs/pull/1/head".into()),
        Credentials::none(),
        &cache,
    );
    let outcome = poll_ok(&source);
    assert_eq!(outcome.revision.to_string(), format!("refs/pull/1/head@sha1:{pr_head}"));
    assert!(!poll_ok(&source).fetched);
}
