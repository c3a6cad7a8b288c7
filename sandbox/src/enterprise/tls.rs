//! TLS for the emulated REST API: a self-signed CA generated per emulator (written to a PEM file so
//! the agent can trust it, like the cluster CA of a real REC) and one server certificate per
//! listener, with the listener's DNS names and loopback IP as subject alternative names. Also
//! [`CertificateAuthority::self_signed_server_config`]: a certificate signed by nobody but itself, as a real node
//! generates at first start (what the agent's trust-on-first-use pinning is tested against).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::error::EmulatorError;

/// The emulator's certificate authority: signs every node's server certificate.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    pem_path: PathBuf,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("pem_path", &self.pem_path)
            .finish_non_exhaustive()
    }
}

/// The rustls crypto provider used on both sides (ring: already built for kube).
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl CertificateAuthority {
    /// Generates a new CA and writes its certificate (PEM) to `dir/ca.pem`.
    pub fn generate(dir: &Path) -> Result<Self, EmulatorError> {
        let cert_error = |source| EmulatorError::Certificate {
            what: "emulator CA".to_string(),
            source,
        };
        let key = KeyPair::generate().map_err(cert_error)?;
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "redis-gitops sandbox Redis Enterprise CA");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "redis-gitops sandbox");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).map_err(cert_error)?;
        let cert_pem = cert.pem();
        let pem_path = dir.join("ca.pem");
        std::fs::write(&pem_path, &cert_pem).map_err(|source| EmulatorError::WorkDir {
            path: pem_path.clone(),
            source,
        })?;
        Ok(Self {
            issuer: Issuer::new(params, key),
            cert_pem,
            cert_der: cert.der().clone(),
            pem_path,
        })
    }

    /// The CA certificate in PEM form.
    pub fn pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate in DER form.
    pub fn der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// Where the CA certificate (PEM) was written.
    pub fn pem_path(&self) -> &Path {
        &self.pem_path
    }

    /// Issues a server certificate for `names` and `ips` and returns a rustls server config using it.
    pub fn server_config(
        &self,
        what: &str,
        names: &[String],
        ips: &[IpAddr],
    ) -> Result<Arc<rustls::ServerConfig>, EmulatorError> {
        let cert_error = |source| EmulatorError::Certificate {
            what: what.to_string(),
            source,
        };
        let key = KeyPair::generate().map_err(cert_error)?;
        let mut params = CertificateParams::default();
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_else(|| what.to_string()),
        );
        for name in names {
            let dns = name.clone().try_into().map_err(cert_error)?;
            params.subject_alt_names.push(SanType::DnsName(dns));
        }
        for ip in ips {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer).map_err(cert_error)?;
        let chain = vec![cert.der().clone(), self.cert_der.clone()];
        let private_key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let mut config = rustls::ServerConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()
            .and_then(|builder| builder.with_no_client_auth().with_single_cert(chain, private_key))
            .map_err(|source| EmulatorError::TlsConfig {
                what: what.to_string(),
                source,
            })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// A server certificate signed by its own key, as a real node generates before it joins a cluster, and the
    /// rustls server config serving it; also returns the certificate (DER), which is what a client pins.
    pub fn self_signed_server_config(
        what: &str,
        names: &[String],
        ips: &[IpAddr],
    ) -> Result<(Arc<rustls::ServerConfig>, CertificateDer<'static>), EmulatorError> {
        let cert_error = |source| EmulatorError::Certificate {
            what: what.to_string(),
            source,
        };
        let key = KeyPair::generate().map_err(cert_error)?;
        let mut params = CertificateParams::default();
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_else(|| what.to_string()),
        );
        for name in names {
            let dns = name.clone().try_into().map_err(cert_error)?;
            params.subject_alt_names.push(SanType::DnsName(dns));
        }
        for ip in ips {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.self_signed(&key).map_err(cert_error)?;
        let der = cert.der().clone();
        let private_key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let mut config = rustls::ServerConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()
            .and_then(|builder| {
                builder
                    .with_no_client_auth()
                    .with_single_cert(vec![der.clone()], private_key)
            })
            .map_err(|source| EmulatorError::TlsConfig {
                what: what.to_string(),
                source,
            })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok((Arc::new(config), der))
    }

    /// A rustls client config that trusts only this CA (for reqwest's `tls_backend_preconfigured`).
    pub fn client_config(&self) -> Result<rustls::ClientConfig, EmulatorError> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(self.cert_der.clone())
            .map_err(|source| EmulatorError::TlsConfig {
                what: "client trust store".to_string(),
                source,
            })?;
        let config = rustls::ClientConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()
            .map_err(|source| EmulatorError::TlsConfig {
                what: "client".to_string(),
                source,
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(config)
    }
}
