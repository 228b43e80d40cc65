//! [`FakeKube::serve`]: the store behind HTTPS, and what a client needs to reach it.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use porter_identity_core::testing::FakeServer;
use tokio_rustls::TlsAcceptor;

use super::{FakeKube, http, tls};
use crate::Cluster;

/// A running HTTPS face of a [`FakeKube`]: its URL, the kubeconfig that reaches it, and a
/// [`Cluster`] built from that kubeconfig. Stops on [`shutdown`](Self::shutdown) or drop.
pub struct FakeKubeServer {
    server: FakeServer,
    kubeconfig: String,
}

impl fmt::Debug for FakeKubeServer {
    // The kubeconfig carries the bearer token: never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeKubeServer")
            .field("url", &self.url())
            .field("kubeconfig", &"<redacted>")
            .finish()
    }
}

impl FakeKube {
    /// Serves this store over HTTPS on `addr` (`127.0.0.1:0` for a free port) as a Kubernetes
    /// API server, with a certificate authority and bearer token made now. Must be called
    /// within a Tokio runtime.
    ///
    /// ```
    /// use porter_identity_kube::fake::FakeKube;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let server = FakeKube::new().serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    /// assert!(server.url().starts_with("https://127.0.0.1:"));
    /// assert!(server.kubeconfig().contains("certificate-authority-data:"));
    /// server.shutdown().await;
    /// # });
    /// ```
    ///
    /// # Errors
    /// When the address cannot be bound or the certificates cannot be made.
    pub async fn serve(&self, addr: SocketAddr) -> std::io::Result<FakeKubeServer> {
        let credentials = tls::credentials()?;
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let kubeconfig = tls::kubeconfig(
            &format!("https://{addr}"),
            &credentials.ca_pem,
            &credentials.token,
        );
        let acceptor = TlsAcceptor::from(Arc::new(credentials.server));
        // Watches stream until told the server stops: open connections outlive its accept loop.
        let (stopping, shutdown) = tokio::sync::watch::channel(false);
        let router = http::router(self.clone(), credentials.token, shutdown);
        let server = FakeServer::spawn(addr, |stop| async move {
            tokio::pin!(stop);
            loop {
                let (tcp, _) = tokio::select! {
                    () = &mut stop => break,
                    accepted = listener.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(error) => {
                            tracing::warn!(%error, "fake Kubernetes API: accept failed");
                            continue;
                        }
                    },
                };
                let acceptor = acceptor.clone();
                let service = TowerToHyperService::new(router.clone());
                tokio::spawn(async move {
                    // A client that gives up on the handshake (a wrong CA) is not an error of
                    // the fake's.
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
            let _ = stopping.send(true);
        });
        Ok(FakeKubeServer { server, kubeconfig })
    }
}

impl FakeKubeServer {
    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.server.addr())
    }

    /// The kubeconfig (YAML) that reaches it: its server, the certificate authority to trust,
    /// the bearer token. Write it to a file and point `KUBECONFIG` at it, or give it to
    /// [`cluster`](Self::cluster).
    pub fn kubeconfig(&self) -> &str {
        &self.kubeconfig
    }

    /// A [`Cluster`] configured from [`kubeconfig`](Self::kubeconfig), as kube-rs configures
    /// a client from a user's.
    ///
    /// # Errors
    /// When kube-rs refuses the kubeconfig.
    pub async fn cluster(&self) -> porter_identity_core::Result<Cluster> {
        Cluster::builder()
            .kubeconfig(self.kubeconfig.clone())
            .build()
            .await
    }

    /// Stops the server.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}
