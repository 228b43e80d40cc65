//! Credentials the provider can use besides azure_identity's: a static bearer token, for local
//! emulators only.

use std::fmt;

use async_trait::async_trait;
use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use azure_core::time::{Duration, OffsetDateTime};

/// A fixed bearer token (`AZURE_ACCESS_TOKEN`), for a Resource Manager emulator on this
/// machine: the builder accepts it only when the endpoint is a loopback address, so a real
/// token pasted into the environment is never sent to a real endpoint this way.
///
/// Its `Debug` never shows the token.
#[derive(Clone)]
pub(crate) struct StaticTokenCredential {
    token: Secret,
}

impl StaticTokenCredential {
    /// A credential that always answers `token`.
    pub(crate) fn new(token: impl Into<String>) -> Self {
        StaticTokenCredential {
            token: Secret::new(token.into()),
        }
    }
}

impl fmt::Debug for StaticTokenCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StaticTokenCredential { token: <redacted> }")
    }
}

#[async_trait]
impl TokenCredential for StaticTokenCredential {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        Ok(AccessToken::new(
            self.token.clone(),
            OffsetDateTime::now_utc() + Duration::hours(1),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_its_token_and_never_shows_it() {
        let c = StaticTokenCredential::new("emulator-token-123");
        let token = c
            .get_token(&["https://management.azure.com/.default"], None)
            .await;
        assert_eq!(token.unwrap().token.secret(), "emulator-token-123");
        let shown = format!("{c:?}");
        assert!(!shown.contains("emulator-token-123"), "{shown}");
    }
}
