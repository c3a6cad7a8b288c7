//! HTTPS for the sandbox API server: a CA made at start (rcgen), a serving certificate for `127.0.0.1`,
//! `localhost` and the in-cluster names (`kubernetes`, `kubernetes.default`, `kubernetes.default.svc`,
//! `kubernetes.default.svc.cluster.local`), and the accept loop that serves the router over TLS.
//!
//! It only makes certificates in memory and serves connections; the CA's key never leaves this module.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use super::error::ApiServerError;

/// The DNS names on the serving certificate.
pub const SERVING_NAMES: [&str; 5] = [
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
];

/// The sandbox API server's CA and the server configuration with a certificate it signed.
pub struct ServingCertificates {
    /// The CA certificate (PEM), what clients trust (`certificate-authority-data`, `ca.crt`).
    pub ca_pem: String,
    /// The CA certificate (DER).
    pub ca_der: CertificateDer<'static>,
    /// The rustls server configuration.
    pub server_config: Arc<rustls::ServerConfig>,
}

fn failed(what: &str) -> impl Fn(rcgen::Error) -> ApiServerError + '_ {
    move |e| ApiServerError::Tls {
        what: what.to_string(),
        message: e.to_string(),
    }
}

/// Makes a CA and a serving certificate for loopback and the in-cluster names.
pub fn generate() -> Result<ServingCertificates, ApiServerError> {
    let ca_key = KeyPair::generate().map_err(failed("the API server CA key"))?;
    let mut ca_params = CertificateParams::default();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "redis-gitops sandbox kubernetes CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).map_err(failed("the API server CA"))?;
    let ca_pem = ca_cert.pem();
    let ca_der = ca_cert.der().clone();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);

    let key = KeyPair::generate().map_err(failed("the API server serving key"))?;
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, "kube-apiserver");
    for name in SERVING_NAMES {
        let dns = name
            .to_string()
            .try_into()
            .map_err(failed("a serving certificate name"))?;
        params.subject_alt_names.push(SanType::DnsName(dns));
    }
    params
        .subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(failed("the API server serving certificate"))?;
    let chain = vec![cert.der().clone(), ca_der.clone()];
    let private_key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_no_client_auth().with_single_cert(chain, private_key))
        .map_err(|e| ApiServerError::Tls {
            what: "the API server TLS configuration".to_string(),
            message: e.to_string(),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(ServingCertificates {
        ca_pem,
        ca_der,
        server_config: Arc::new(config),
    })
}

/// Serves `router` over TLS on `listener` until `shutdown` turns true; aborting the task ends every connection.
pub fn serve(
    listener: tokio::net::TcpListener,
    config: Arc<rustls::ServerConfig>,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let acceptor = TlsAcceptor::from(config);
    tokio::spawn(async move {
        // Owned here so that ending this task also ends every connection.
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(accepted) => accepted,
                        Err(error) => {
                            tracing::warn!(%error, "the sandbox API server failed to accept a connection");
                            continue;
                        }
                    };
                    let acceptor = acceptor.clone();
                    let service = TowerToHyperService::new(router.clone());
                    connections.spawn(async move {
                        let stream = match acceptor.accept(stream).await {
                            Ok(stream) => stream,
                            Err(error) => {
                                tracing::debug!(%error, %peer, "TLS handshake with the sandbox API server failed");
                                return;
                            }
                        };
                        let served = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                        if let Err(error) = served {
                            tracing::debug!(%error, %peer, "sandbox API server connection ended with an error");
                        }
                    });
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                _ = shutdown.changed() => break,
            }
        }
    })
}
