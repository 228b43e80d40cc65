//! A transport for the real `azure_identity` credentials in tests: it sends requests for
//! `https://127.0.0.1` (or `localhost`) as plain http, so that a credential built with an https
//! authority — `azure_identity` refuses any other — gets its tokens from the fake's token
//! endpoint. Any other URL is refused: it never reaches a real host.

use std::sync::Arc;

use async_trait::async_trait;
use azure_core::http::{AsyncRawResponse, HttpClient, Request};

use crate::arm::{ArmClientOptions, http_client, is_loopback};

/// An [`HttpClient`] that maps `https://127.0.0.1:PORT/...` to `http://127.0.0.1:PORT/...`.
/// For tests only: give it to the builder with
/// [`token_http_client`](crate::AzureWorkloadIdentityProviderBuilder::token_http_client) and
/// set `AZURE_AUTHORITY_HOST=https://127.0.0.1:PORT` (the fake's port).
#[derive(Debug, Clone)]
pub struct LoopbackHttpsAsHttp {
    http: reqwest::Client,
}

impl LoopbackHttpsAsHttp {
    /// The transport, as the builder takes it.
    ///
    /// # Panics
    /// If the HTTP client cannot be built (no platform certificate store).
    pub fn shared() -> Arc<dyn HttpClient> {
        let http = http_client(&ArmClientOptions::default())
            .unwrap_or_else(|e| panic!("LoopbackHttpsAsHttp: {e}"));
        Arc::new(LoopbackHttpsAsHttp { http })
    }
}

#[async_trait]
impl HttpClient for LoopbackHttpsAsHttp {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        let mut request = request.clone();
        let url = request.url_mut();
        if !is_loopback(url) {
            return Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Other,
                format!(
                    "LoopbackHttpsAsHttp only sends to this machine, not to {}",
                    url.host_str().unwrap_or("?")
                ),
            ));
        }
        if url.scheme() == "https" {
            let _ = url.set_scheme("http");
        }
        self.http.execute_request(&request).await
    }
}
