//! The bootstrap trust model's verifier (`redis_gitops::enterprise::trust`) against certificates made the way the
//! emulator's nodes make them: a self-signed node certificate is trusted only when pinned, a CA that did not sign it
//! does not help, and first use records what the node presented. In-memory TLS handshakes, no network.

use std::sync::{Arc, Mutex};

use redis_gitops::enterprise::trust::{TrustVerifier, fingerprint};
use redis_gitops_sandbox::enterprise::CertificateAuthority;
use rustls::pki_types::{CertificateDer, ServerName};

/// Runs a TLS handshake in memory between a client using `verifier` and `server`; the client's error if any.
fn handshake(verifier: TrustVerifier, server: Arc<rustls::ServerConfig>) -> Result<(), String> {
    let config = verifier.into_client_config().map_err(|e| e.to_string())?;
    let name = ServerName::try_from("rec-0.rec-headless.ns.svc").map_err(|e| e.to_string())?;
    let mut client = rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let mut server = rustls::ServerConnection::new(server).map_err(|e| e.to_string())?;
    for _ in 0..10 {
        let mut bytes = Vec::new();
        client.write_tls(&mut bytes).map_err(|e| e.to_string())?;
        server.read_tls(&mut bytes.as_slice()).map_err(|e| e.to_string())?;
        server.process_new_packets().map_err(|e| format!("server: {e}"))?;
        let mut bytes = Vec::new();
        server.write_tls(&mut bytes).map_err(|e| e.to_string())?;
        client.read_tls(&mut bytes.as_slice()).map_err(|e| e.to_string())?;
        client.process_new_packets().map_err(|e| e.to_string())?;
        if !client.is_handshaking() && !server.is_handshaking() {
            return Ok(());
        }
    }
    Err("the handshake did not finish".to_string())
}

fn node_certificate() -> (Arc<rustls::ServerConfig>, CertificateDer<'static>) {
    CertificateAuthority::self_signed_server_config(
        "rec-0",
        &["rec-0.rec-headless.ns.svc".to_string()],
        &["127.0.0.1".parse().expect("ip")],
    )
    .expect("self-signed node certificate")
}

#[test]
fn a_self_signed_node_certificate_is_trusted_only_when_pinned() {
    let (server, der) = node_certificate();
    let pin = fingerprint(der.as_ref());
    assert!(
        handshake(
            TrustVerifier::new(b"", vec![pin.clone()]).expect("pinned"),
            server.clone()
        )
        .is_ok()
    );

    let (other, _) = node_certificate();
    let error = handshake(TrustVerifier::new(b"", vec![pin.clone()]).expect("pinned"), other).unwrap_err();
    assert!(error.contains("is not the one pinned for this cluster"), "{error}");

    // A CA that did not sign it does not help; the pin does, next to the CA.
    let dir = tempfile::tempdir().expect("dir");
    let ca = CertificateAuthority::generate(dir.path()).expect("ca");
    let error = handshake(
        TrustVerifier::new(ca.pem().as_bytes(), Vec::new()).expect("ca"),
        server.clone(),
    )
    .unwrap_err();
    assert!(error.to_lowercase().contains("certificate"), "{error}");
    assert!(
        handshake(
            TrustVerifier::new(ca.pem().as_bytes(), vec![pin]).expect("both"),
            server
        )
        .is_ok()
    );
}

#[test]
fn first_use_records_the_presented_certificate() {
    let (server, der) = node_certificate();
    let seen = Arc::new(Mutex::new(None));
    handshake(TrustVerifier::first_use(seen.clone()), server).expect("first use accepts");
    let observed = seen.lock().expect("lock").clone().expect("recorded");
    assert_eq!(observed.fingerprint, fingerprint(der.as_ref()));
}
