//! The HTTPS listener of one node or API service: accepts TCP connections on its loopback address,
//! completes the TLS handshake with the listener's certificate and serves the REST router over
//! HTTP/1.1. Aborting the returned task closes the listener and every open connection.

use std::sync::Arc;

use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use super::error::EmulatorError;

/// Starts serving `router` over TLS on `listener`.
pub(crate) fn serve(
    listener: std::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    what: &str,
) -> Result<JoinHandle<()>, EmulatorError> {
    let addr = listener.local_addr().map_err(|source| EmulatorError::Bind {
        addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        what: what.to_string(),
        source,
    })?;
    let bind_error = |source| EmulatorError::Bind {
        addr,
        what: what.to_string(),
        source,
    };
    listener.set_nonblocking(true).map_err(bind_error)?;
    let listener = tokio::net::TcpListener::from_std(listener).map_err(bind_error)?;
    let acceptor = TlsAcceptor::from(tls);
    let what = what.to_string();
    Ok(tokio::spawn(async move {
        // Owned here so that aborting this task also ends every connection.
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(accepted) => accepted,
                        Err(error) => {
                            tracing::warn!(%error, listener = %what, "accept failed");
                            continue;
                        }
                    };
                    let acceptor = acceptor.clone();
                    let service = TowerToHyperService::new(router.clone());
                    connections.spawn(async move {
                        let stream = match acceptor.accept(stream).await {
                            Ok(stream) => stream,
                            Err(error) => {
                                tracing::debug!(%error, %peer, "TLS handshake failed");
                                return;
                            }
                        };
                        let served = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                        if let Err(error) = served {
                            tracing::debug!(%error, %peer, "connection ended with an error");
                        }
                    });
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    }))
}
