//! The fake's TLS: a certificate authority made at start (nothing checked in, nothing that
//! expires between runs), a server certificate for `localhost` and `127.0.0.1` signed by it,
//! and the kubeconfig that trusts that authority and carries the face's bearer token.

use std::fmt;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The authority, the server's certificate and key, and the bearer token.
pub(super) struct Credentials {
    pub(super) ca_pem: String,
    pub(super) server: ServerConfig,
    pub(super) token: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("ca_pem", &"<certificate>")
            .field("token", &"<redacted>")
            .finish_non_exhaustive()
    }
}

fn tls_error(e: impl fmt::Display) -> std::io::Error {
    std::io::Error::other(format!("the fake Kubernetes API's TLS set-up failed: {e}"))
}

/// A fresh authority, server certificate and token.
pub(super) fn credentials() -> std::io::Result<Credentials> {
    let ca_key = KeyPair::generate().map_err(tls_error)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(tls_error)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "porter-identity fake Kubernetes CA");
    let ca_cert = ca_params.self_signed(&ca_key).map_err(tls_error)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate().map_err(tls_error)?;
    let mut server_params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .map_err(tls_error)?;
    server_params
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    let server_cert = server_params
        .signed_by(&server_key, &issuer)
        .map_err(tls_error)?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(server_cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
        )
        .map_err(tls_error)?;
    let mut server = server;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Credentials {
        ca_pem: ca_cert.pem(),
        server,
        token: format!("fake-{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..)),
    })
}

/// A kubeconfig for `server` (`https://127.0.0.1:PORT`) that trusts `ca_pem` and sends
/// `token`; its context's namespace is `default`.
pub(super) fn kubeconfig(server: &str, ca_pem: &str, token: &str) -> String {
    let ca = STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: porter-identity-fake
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: porter-identity-fake
  user:
    token: {token}
contexts:
- name: porter-identity-fake
  context:
    cluster: porter-identity-fake
    user: porter-identity-fake
    namespace: default
current-context: porter-identity-fake
"
    )
}
