//! Name resolution from a hosts file (`<ip> <name>...` per line, `#` comments), for the agent outside a cluster:
//! `agent --hosts-file` against the sandbox, whose in-cluster names (`rec.ns.svc`, `rec-0.rec-headless.ns.svc`)
//! have no DNS. The file is read again whenever it changes; names it does not list go to the system resolver.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// A reqwest resolver backed by a hosts file.
#[derive(Debug)]
pub struct HostsFileResolver {
    path: PathBuf,
    cache: Mutex<(Option<SystemTime>, HashMap<String, IpAddr>)>,
}

impl HostsFileResolver {
    /// A resolver reading `path` (which may not exist yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            cache: Mutex::new((None, HashMap::new())),
        }
    }

    /// The address of `name` in the file, reading it again if it changed since the last lookup.
    pub fn lookup(&self, name: &str) -> Option<IpAddr> {
        let modified = std::fs::metadata(&self.path).and_then(|m| m.modified()).ok();
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if modified != cache.0 {
            *cache = (modified, read_hosts(&self.path));
        }
        cache.1.get(&normalise(name)).copied()
    }
}

fn normalise(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Parses a hosts file; unreadable files and malformed lines are skipped (the system resolver still answers).
pub fn read_hosts(path: &Path) -> HashMap<String, IpAddr> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    parse_hosts(&text)
}

/// Parses hosts-file text.
pub fn parse_hosts(text: &str) -> HashMap<String, IpAddr> {
    let mut names = HashMap::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default();
        let mut fields = line.split_whitespace();
        let Some(ip) = fields.next().and_then(|ip| ip.parse::<IpAddr>().ok()) else {
            continue;
        };
        for name in fields {
            names.insert(normalise(name), ip);
        }
    }
    names
}

/// Renders `(name, ip)` pairs as hosts-file text, one name per line.
pub fn render_hosts(entries: &[(String, IpAddr)]) -> String {
    entries.iter().map(|(name, ip)| format!("{ip} {name}\n")).collect()
}

impl Resolve for HostsFileResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        let found = self.lookup(&host);
        Box::pin(async move {
            let addresses: Vec<SocketAddr> = match found {
                Some(ip) => vec![SocketAddr::new(ip, 0)],
                None => tokio::net::lookup_host((host.as_str(), 0))
                    .await
                    .map_err(|error| -> Box<dyn std::error::Error + Send + Sync> { Box::new(error) })?
                    .collect(),
            };
            let addrs: Addrs = Box::new(addresses.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_comments_aliases_and_skips_garbage() {
        let names =
            parse_hosts("# sandbox\n127.1.2.3 rec.prod.svc rec.prod.svc.cluster.local\nnot-an-ip x\n\n::1 six # v6\n");
        assert_eq!(names.get("rec.prod.svc"), Some(&"127.1.2.3".parse().expect("ip")));
        assert_eq!(
            names.get("rec.prod.svc.cluster.local"),
            Some(&"127.1.2.3".parse().expect("ip"))
        );
        assert_eq!(names.get("six"), Some(&"::1".parse().expect("ip")));
        assert_eq!(names.len(), 3);
    }

    #[test]
    fn rereads_the_file_when_it_changes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("hosts");
        let resolver = HostsFileResolver::new(&path);
        assert_eq!(resolver.lookup("rec.ns.svc"), None, "a missing file resolves nothing");
        std::fs::write(
            &path,
            render_hosts(&[("rec.ns.svc".to_string(), "127.9.9.9".parse().expect("ip"))]),
        )
        .expect("write");
        assert_eq!(resolver.lookup("REC.ns.svc."), Some("127.9.9.9".parse().expect("ip")));
        // A later write with a different modification time is picked up.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&path, "127.8.8.8 rec.ns.svc\n").expect("write");
        let file = std::fs::File::options().write(true).open(&path).expect("open");
        file.set_modified(SystemTime::now() + std::time::Duration::from_secs(1))
            .expect("touch");
        assert_eq!(resolver.lookup("rec.ns.svc"), Some("127.8.8.8".parse().expect("ip")));
    }

    #[tokio::test]
    async fn unknown_names_fall_back_to_the_system_resolver() {
        let resolver = HostsFileResolver::new("/nonexistent/hosts");
        let name: Name = "localhost".parse().expect("name");
        let addresses: Vec<SocketAddr> = resolver.resolve(name).await.expect("localhost resolves").collect();
        assert!(addresses.iter().any(|a| a.ip().is_loopback()), "{addresses:?}");
    }
}
