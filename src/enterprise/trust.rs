//! How the agent trusts a cluster's REST API certificate (the bootstrap trust model, README "Trusting the
//! cluster's certificates"). A real cluster serves self-signed certificates: each node generates its own at
//! first start, the first node generates the cluster's at creation and the joining nodes get copies; none is
//! known before bootstrap, and none is signed by a CA the agent could be given in advance. So, in this order:
//!
//! 1. A CA given to the agent (`--enterprise-ca-file`, or `ca.crt` in the cluster's credentials Secret, for a
//!    cluster whose API certificate was replaced with `apiCertificateSecretName`) is trusted as usual.
//! 2. Otherwise the certificate a node presents on first contact, from inside the cluster network (pod-0 through
//!    its headless Service name, before any credentials are sent), is pinned by its SHA-256 fingerprint
//!    ([`observe_certificate`], [`fingerprint`]): trust on first use, scoped to one cluster.
//! 3. After bootstrap the agent reads the cluster's own API certificate (`GET /v1/cluster/certificates`,
//!    `api_cert`) over the pinned connection, and pins that from then on; a rotated certificate is read again
//!    the same way before the old pin is dropped.
//!
//! A pinned certificate is accepted only when the handshake proves the server holds its key; the host name is
//! not checked (the pin names the exact certificate, which is stronger than a name). Pins are public data
//! (fingerprints), never secrets. This module only builds TLS configurations and reads certificates: it
//! writes nothing.

use std::sync::{Arc, Mutex};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, Error as TlsError, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

use super::error::EnterpriseError;

/// The pin of a certificate: `sha256:` and the hex SHA-256 of its DER encoding.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("sha256:{hex}")
}

/// The pins of every certificate in a PEM bundle (for example the `api_cert` of `GET /v1/cluster/certificates`).
pub fn pem_fingerprints(pem: &[u8]) -> Result<Vec<String>, EnterpriseError> {
    use rustls::pki_types::pem::PemObject;
    let pins = CertificateDer::pem_slice_iter(pem)
        .map(|certificate| certificate.map(|der| fingerprint(der.as_ref())))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| EnterpriseError::Configuration {
            reason: format!("the cluster certificate is not valid PEM: {error}"),
        })?;
    if pins.is_empty() {
        return Err(EnterpriseError::Configuration {
            reason: "no certificate found in the PEM".to_string(),
        });
    }
    Ok(pins)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// What the server presented, as seen by a [`TrustVerifier`] in first-use mode.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObservedCertificate {
    /// The pin of the server's certificate.
    pub fingerprint: String,
}

/// A server certificate verifier: a certificate is accepted when the CA (if any) vouches for it, or when its
/// fingerprint is pinned; in first-use mode any certificate is accepted and recorded (only for
/// [`observe_certificate`], which sends no credentials).
#[derive(Debug)]
pub struct TrustVerifier {
    webpki: Option<Arc<WebPkiServerVerifier>>,
    pins: Vec<String>,
    first_use: Option<Arc<Mutex<Option<ObservedCertificate>>>>,
    provider: Arc<CryptoProvider>,
}

impl TrustVerifier {
    /// Trusts `ca_pem` (may be empty) and the `pins`.
    pub fn new(ca_pem: &[u8], pins: Vec<String>) -> Result<Self, EnterpriseError> {
        use rustls::pki_types::pem::PemObject;
        let provider = provider();
        let mut roots = RootCertStore::empty();
        for certificate in CertificateDer::pem_slice_iter(ca_pem) {
            let certificate = certificate.map_err(|error| EnterpriseError::Configuration {
                reason: format!("the CA certificate is not valid PEM: {error}"),
            })?;
            roots.add(certificate).map_err(|error| EnterpriseError::Configuration {
                reason: format!("the CA certificate cannot be trusted: {error}"),
            })?;
        }
        let webpki = if roots.is_empty() {
            None
        } else {
            Some(
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|error| EnterpriseError::Configuration {
                        reason: format!("failed to set up certificate verification: {error}"),
                    })?,
            )
        };
        if webpki.is_none() && pins.is_empty() {
            return Err(EnterpriseError::Configuration {
                reason: "neither a CA nor a pinned certificate to trust the cluster with".to_string(),
            });
        }
        Ok(Self {
            webpki,
            pins,
            first_use: None,
            provider,
        })
    }

    /// Accepts any certificate and records what it was in `seen`: only for observing the certificate a node
    /// presents before it is pinned (`observe_certificate`), never for requests that carry credentials.
    pub fn first_use(seen: Arc<Mutex<Option<ObservedCertificate>>>) -> Self {
        Self {
            webpki: None,
            pins: Vec::new(),
            first_use: Some(seen),
            provider: provider(),
        }
    }

    /// A rustls client configuration using this verifier.
    pub fn into_client_config(self) -> Result<rustls::ClientConfig, EnterpriseError> {
        let provider = self.provider.clone();
        Ok(rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| EnterpriseError::Configuration {
                reason: format!("failed to set up TLS: {error}"),
            })?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(self))
            .with_no_client_auth())
    }
}

impl ServerCertVerifier for TrustVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        let pin = fingerprint(end_entity.as_ref());
        if let Some(seen) = &self.first_use {
            let mut seen = seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            *seen = Some(ObservedCertificate { fingerprint: pin });
            return Ok(ServerCertVerified::assertion());
        }
        if self.pins.contains(&pin) {
            return Ok(ServerCertVerified::assertion());
        }
        match &self.webpki {
            Some(webpki) => webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now),
            None => Err(TlsError::General(format!(
                "the server's certificate {pin} is not the one pinned for this cluster"
            ))),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// First contact with a node: connects to `url` (its REST API) without credentials, accepts whatever certificate
/// it presents and returns that certificate's pin. The answer (401 without credentials) does not matter.
pub async fn observe_certificate(
    url: &str,
    resolver: Option<Arc<dyn reqwest::dns::Resolve>>,
    timeout: std::time::Duration,
) -> Result<ObservedCertificate, EnterpriseError> {
    let seen = Arc::new(Mutex::new(None));
    let config = TrustVerifier::first_use(seen.clone()).into_client_config()?;
    let mut builder = reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .timeout(timeout);
    if let Some(resolver) = resolver {
        builder = builder.dns_resolver(resolver);
    }
    let http = builder.build().map_err(|error| EnterpriseError::Configuration {
        reason: format!("failed to build the HTTP client: {error}"),
    })?;
    let endpoint = format!("GET {}/v1/bootstrap", url.trim_end_matches('/'));
    http.get(format!("{}/v1/bootstrap", url.trim_end_matches('/')))
        .send()
        .await
        .map_err(|error| EnterpriseError::Unreachable {
            endpoint: endpoint.clone(),
            reason: error.to_string(),
        })?;
    let observed = seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
    observed.ok_or_else(|| EnterpriseError::Unreachable {
        endpoint,
        reason: "the server presented no certificate".to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_sha256_of_the_der() {
        assert_eq!(
            fingerprint(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let error = pem_fingerprints(b"no certificate here").expect_err("refused");
        assert!(error.to_string().contains("no certificate found"), "{error}");
    }

    #[test]
    fn a_verifier_needs_a_ca_or_a_pin() {
        let error = TrustVerifier::new(b"", Vec::new()).expect_err("nothing to trust");
        assert!(
            error.to_string().contains("neither a CA nor a pinned certificate"),
            "{error}"
        );
        assert!(TrustVerifier::new(b"", vec![fingerprint(b"x")]).is_ok());
    }
}
