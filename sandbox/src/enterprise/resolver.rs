//! The DNS resolver the agent uses in the sandbox (issue 3 §4): a `reqwest::dns::Resolve` that answers
//! in-cluster names from the emulator's [`NameTable`]. reqwest keeps the URL's port, so
//! `https://rec.ns.svc:9443` reaches the node listening on `<ip>:9443`.

use std::net::SocketAddr;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::network::NameTable;

/// The name asked for is not one the sandbox serves.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// No emulated object has this name, and system lookups are off.
    #[error("unable to resolve {name}: the sandbox serves no such name")]
    UnknownName {
        /// The name asked for.
        name: String,
    },
    /// The system resolver failed for a name the sandbox does not serve.
    #[error("failed to resolve {name} with the system resolver: {source}")]
    System {
        /// The name asked for.
        name: String,
        /// The resolver's error.
        source: std::io::Error,
    },
}

impl ResolveError {
    /// A stable category (the variant name), for logs and metric labels.
    pub fn category(&self) -> &'static str {
        match self {
            Self::UnknownName { .. } => "UnknownName",
            Self::System { .. } => "System",
        }
    }
}

/// Resolves sandbox names to the emulator's loopback addresses.
#[derive(Debug, Clone)]
pub struct SandboxResolver {
    names: NameTable,
    system_fallback: bool,
}

impl SandboxResolver {
    /// A resolver that answers only the sandbox's names (any other name is an error naming it).
    pub fn new(names: NameTable) -> Self {
        Self {
            names,
            system_fallback: false,
        }
    }

    /// Also asks the system resolver for names the sandbox does not serve.
    pub fn with_system_fallback(mut self) -> Self {
        self.system_fallback = true;
        self
    }
}

impl Resolve for SandboxResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let name = name.as_str().to_string();
        let found = self.names.lookup(&name);
        let system_fallback = self.system_fallback;
        Box::pin(async move {
            if let Some(ip) = found {
                let addrs: Addrs = Box::new(std::iter::once(SocketAddr::new(ip, 0)));
                return Ok(addrs);
            }
            if !system_fallback {
                return Err(Box::new(ResolveError::UnknownName { name }) as _);
            }
            let found = tokio::net::lookup_host(format!("{name}:0")).await;
            match found {
                Ok(found) => {
                    let addrs: Addrs = Box::new(found.collect::<Vec<_>>().into_iter());
                    Ok(addrs)
                }
                Err(source) => Err(Box::new(ResolveError::System { name, source }) as _),
            }
        })
    }
}
