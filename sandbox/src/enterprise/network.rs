//! Loopback addressing: every emulated node (and every cluster's API/database service) gets its own
//! address in 127.0.0.0/8, so each can listen on the real ports (9443, the database port) exactly
//! as in Kubernetes. Addresses are drawn at random from 127.1.0.0–127.254.255.255 (never 127.0.x.x,
//! so 127.0.0.1 and 127.0.0.53 stay free) and a bind that fails with EADDRINUSE draws again, so
//! parallel test processes do not collide. [`NameTable`] maps the in-cluster DNS names to them.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};

use super::error::EmulatorError;

/// How many random addresses are tried before giving up.
const BIND_ATTEMPTS: usize = 64;

/// A random 64-bit number from the standard library's per-instance random hasher keys.
fn random_u64() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos() as u64)
            .unwrap_or_default(),
    );
    hasher.finish()
}

/// Draws a random loopback address outside 127.0.0.0/16.
fn random_loopback() -> Ipv4Addr {
    let bits = random_u64();
    let second = 1 + (bits % 254) as u8;
    let third = ((bits >> 8) % 256) as u8;
    let fourth = 1 + ((bits >> 16) % 254) as u8;
    Ipv4Addr::new(127, second, third, fourth)
}

/// Hands out loopback addresses that this process has not used yet.
#[derive(Debug, Default)]
pub struct AddressAllocator {
    used: Mutex<HashSet<Ipv4Addr>>,
}

impl AddressAllocator {
    /// Binds a TCP listener on a fresh random loopback address at `port`, retrying on bind errors.
    pub fn bind_fresh(&self, port: u16, what: &str) -> Result<std::net::TcpListener, EmulatorError> {
        let mut last_error = std::io::Error::other("no attempt made");
        for _ in 0..BIND_ATTEMPTS {
            let ip = random_loopback();
            {
                let mut used = self.used.lock().unwrap_or_else(|poison| poison.into_inner());
                if !used.insert(ip) {
                    continue;
                }
            }
            match std::net::TcpListener::bind(SocketAddr::new(IpAddr::V4(ip), port)) {
                Ok(listener) => return Ok(listener),
                Err(error) => last_error = error,
            }
        }
        Err(EmulatorError::NoFreeAddress {
            what: what.to_string(),
            attempts: BIND_ATTEMPTS,
            last_error,
        })
    }
}

/// Normalises a DNS name for lookups: lower case, no trailing dot.
fn normalise(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// In-cluster DNS names (`rec.ns.svc`, `rec-0.rec-headless.ns.svc`, `db.ns.svc`, ...) → loopback IP.
/// Cheap to clone; clones share the table.
#[derive(Debug, Clone, Default)]
pub struct NameTable {
    names: Arc<RwLock<HashMap<String, IpAddr>>>,
}

impl NameTable {
    /// Maps `name` (and, for a `.svc` name, its `.svc.cluster.local` form) to `ip`.
    pub fn insert(&self, name: &str, ip: IpAddr) -> Result<(), EmulatorError> {
        let name = normalise(name);
        let valid = !name.is_empty()
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            });
        if !valid {
            return Err(EmulatorError::InvalidName { name, ip });
        }
        let mut names = self.names.write().unwrap_or_else(|p| p.into_inner());
        if name.ends_with(".svc") {
            names.insert(format!("{name}.cluster.local"), ip);
        }
        names.insert(name, ip);
        Ok(())
    }

    /// Removes `name` (and its `.svc.cluster.local` form).
    pub fn remove(&self, name: &str) {
        let name = normalise(name);
        let mut names = self.names.write().unwrap_or_else(|p| p.into_inner());
        if name.ends_with(".svc") {
            names.remove(&format!("{name}.cluster.local"));
        }
        names.remove(&name);
    }

    /// The address of `name`, if the sandbox serves it.
    pub fn lookup(&self, name: &str) -> Option<IpAddr> {
        let name = normalise(name);
        self.names.read().unwrap_or_else(|p| p.into_inner()).get(&name).copied()
    }

    /// Every name served, sorted, with its address.
    pub fn entries(&self) -> Vec<(String, IpAddr)> {
        let mut entries: Vec<_> = self
            .names
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(name, ip)| (name.clone(), *ip))
            .collect();
        entries.sort();
        entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svc_names_also_answer_as_cluster_local() {
        let names = NameTable::default();
        let ip: IpAddr = "127.4.5.6".parse().expect("literal ip");
        names.insert("Rec.NS.svc.", ip).expect("a valid name");
        assert_eq!(names.lookup("rec.ns.svc"), Some(ip));
        assert_eq!(names.lookup("rec.ns.svc.cluster.local."), Some(ip));
        names.remove("rec.ns.svc");
        assert_eq!(names.lookup("rec.ns.svc.cluster.local"), None);
        assert!(names.entries().is_empty());
    }

    #[test]
    fn invalid_names_are_refused() {
        let names = NameTable::default();
        let ip: IpAddr = "127.4.5.6".parse().expect("literal ip");
        for bad in ["", "a..b", "white space.svc", "slash/name"] {
            assert!(names.insert(bad, ip).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn random_addresses_avoid_127_0() {
        for _ in 0..1000 {
            let ip = random_loopback();
            assert_eq!(ip.octets()[0], 127);
            assert_ne!(ip.octets()[1], 0, "{ip}");
            assert_ne!(ip.octets()[3], 0, "{ip}");
            assert_ne!(ip.octets()[3], 255, "{ip}");
        }
    }
}
