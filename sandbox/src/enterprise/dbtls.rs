//! Database TLS (`tls_mode: enabled`): each cluster's proxy certificate authority, generated on first use, and the
//! server certificate it signs for every TLS database's redis-server (written beside the database's redis.conf, key
//! mode 0600). Applications trust the cluster's `proxy_cert` (`GET /v1/cluster/certificates`, or the cluster
//! object's `proxy_certificate`), as the Redis Enterprise docs tell them to. Makes certificates and files only; the
//! process manager (process.rs) runs redis-server with them.

use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType,
};
use rustls::pki_types::CertificateDer;

use super::error::EmulatorError;

/// A cluster's proxy certificate authority: signs the certificates its TLS databases present.
pub struct ProxyCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    key_pem: String,
    cert_der: CertificateDer<'static>,
    client: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for ProxyCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyCa").finish_non_exhaustive()
    }
}

/// The files one TLS database's redis-server uses, and how the emulator itself connects to it.
#[derive(Clone)]
pub struct DatabaseTls {
    /// The server certificate (PEM, with the CA after it).
    pub cert_file: PathBuf,
    /// Its private key (PEM, mode 0600).
    pub key_file: PathBuf,
    /// The proxy CA certificate (PEM).
    pub ca_file: PathBuf,
    /// A client config trusting the proxy CA (the emulator's own connections to the database).
    pub client: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for DatabaseTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseTls")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}

impl PartialEq for DatabaseTls {
    fn eq(&self, other: &Self) -> bool {
        (&self.cert_file, &self.key_file, &self.ca_file) == (&other.cert_file, &other.key_file, &other.ca_file)
    }
}

impl Eq for DatabaseTls {}

fn cert_error(what: &str) -> impl Fn(rcgen::Error) -> EmulatorError + '_ {
    move |source| EmulatorError::Certificate {
        what: what.to_string(),
        source,
    }
}

fn write_file(path: &Path, content: &str, mode: u32) -> Result<(), EmulatorError> {
    let io_error = |source| EmulatorError::WorkDir {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(io_error)?;
    file.write_all(content.as_bytes()).map_err(io_error)
}

impl ProxyCa {
    /// Generates the proxy CA of cluster `cluster` (its display name goes into the subject).
    pub fn generate(cluster: &str) -> Result<Self, EmulatorError> {
        let what = format!("proxy CA of cluster {cluster}");
        let key = KeyPair::generate().map_err(cert_error(&what))?;
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{cluster} proxy CA"));
        params
            .distinguished_name
            .push(DnType::OrganizationName, "redis-gitops sandbox");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).map_err(cert_error(&what))?;
        let cert_der = cert.der().clone();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert_der.clone()).map_err(|source| EmulatorError::TlsConfig {
            what: what.clone(),
            source,
        })?;
        let client = rustls::ClientConfig::builder_with_provider(super::tls::crypto_provider())
            .with_safe_default_protocol_versions()
            .map_err(|source| EmulatorError::TlsConfig {
                what: what.clone(),
                source,
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            issuer: Issuer::new(params, key),
            cert_der,
            client: Arc::new(client),
        })
    }

    /// The CA certificate (PEM): what `proxy_cert` returns and applications trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA's private key (PEM): `proxy_key` of `GET /v1/cluster/certificates`, which returns private keys.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The CA certificate (DER).
    pub fn der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// Issues the server certificate of a database for `names` and `ips` and writes it, its key and the CA into
    /// `dir` (created if needed).
    pub fn issue(&self, dir: &Path, names: &[String], ips: &[IpAddr]) -> Result<DatabaseTls, EmulatorError> {
        let what = format!("database certificate in {}", dir.display());
        let key = KeyPair::generate().map_err(cert_error(&what))?;
        let mut params = CertificateParams::default();
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_else(|| "redis".to_string()),
        );
        for name in names {
            let dns = name.clone().try_into().map_err(cert_error(&what))?;
            params.subject_alt_names.push(SanType::DnsName(dns));
        }
        for ip in ips {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer).map_err(cert_error(&what))?;
        std::fs::create_dir_all(dir).map_err(|source| EmulatorError::WorkDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let tls = DatabaseTls {
            cert_file: dir.join("tls-cert.pem"),
            key_file: dir.join("tls-key.pem"),
            ca_file: dir.join("tls-ca.pem"),
            client: self.client.clone(),
        };
        write_file(&tls.cert_file, &format!("{}{}", cert.pem(), self.cert_pem), 0o644)?;
        write_file(&tls.key_file, &key.serialize_pem(), 0o600)?;
        write_file(&tls.ca_file, &self.cert_pem, 0o644)?;
        Ok(tls)
    }
}

/// The certificate names of a database: its Service names in the cluster's namespace (also with
/// `.cluster.local`), its endpoint name `redis-<port>.<fqdn>`, and wildcards for Services in any namespace.
pub fn database_cert_names(service_names: &[String], port: u16, fqdn: Option<&str>) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for name in service_names {
        names.push(name.clone());
        names.push(format!("{name}.cluster.local"));
    }
    if let Some(fqdn) = fqdn.filter(|fqdn| !fqdn.is_empty()) {
        names.push(format!("redis-{port}.{fqdn}"));
    }
    names.push("localhost".to_string());
    names
}

impl super::cluster::Cluster {
    /// The cluster's proxy CA, generated on first use.
    pub fn proxy_ca(&self) -> Result<Arc<ProxyCa>, EmulatorError> {
        if let Some(ca) = self.proxy_ca.get() {
            return Ok(ca.clone());
        }
        let generated = Arc::new(ProxyCa::generate(&self.key.to_string())?);
        // Two first users may race: both generate, the first stored wins.
        Ok(self.proxy_ca.get_or_init(|| generated).clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_certificate_is_signed_by_the_proxy_ca_and_its_key_is_private() {
        let ca = ProxyCa::generate("default/rec").expect("CA");
        let dir = std::env::temp_dir().join(format!("dbtls-test-{}", std::process::id()));
        let names = database_cert_names(
            &["db.default.svc".to_string()],
            12000,
            Some("rec.default.svc.cluster.local"),
        );
        assert!(names.contains(&"redis-12000.rec.default.svc.cluster.local".to_string()));
        let tls = ca
            .issue(&dir, &names, &["127.0.0.1".parse().expect("ip")])
            .expect("issued");
        let cert = std::fs::read_to_string(&tls.cert_file).expect("cert written");
        assert!(cert.ends_with(ca.cert_pem()), "the chain ends with the CA");
        assert_eq!(
            std::fs::read_to_string(&tls.ca_file).expect("ca written"),
            ca.cert_pem()
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&tls.key_file)
            .expect("key written")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the key is readable by its owner only");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
