//! `AzureWorkloadIdentityProviderBuilder`: how a provider gets its cluster, subscription,
//! credential, endpoint and retries — from code, or from the environment the way Azure users
//! expect.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::{ClientOptions, HttpClient, RetryOptions, Transport};
use azure_identity::{
    ClientAssertionCredentialOptions, ClientSecretCredential, ClientSecretCredentialOptions,
    DeveloperToolsCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use porter_identity_core::{AzureResourceGroup, Cloud, Error, ErrorKind, Result, RetryPolicy};
use url::Url;

use crate::AzureWorkloadIdentityProvider;
use crate::api::ArmApi;
use crate::arm::{
    ArmClient, ArmClientOptions, PUBLIC_CLOUD_ENDPOINT, check_endpoint, http_client, is_loopback,
};
use crate::credential::StaticTokenCredential;
use crate::provider::ClusterSource;

/// A setting `from_env` reads, by the environment variable Azure's own tools and SDKs use.
/// Tests and callers can set the same settings with
/// [`AzureWorkloadIdentityProviderBuilder::with_config`] instead of the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum AzureConfigKey {
    /// `AZURE_SUBSCRIPTION_ID`: the subscription of the identities and the cluster.
    SubscriptionId,
    /// `AZURE_RESOURCE_MANAGER_ENDPOINT`: ARM (`https://management.azure.com` by default;
    /// `http://127.0.0.1:PORT` for an emulator).
    ResourceManagerEndpoint,
    /// `AZURE_AUTHORITY_HOST`: Entra ID (`https://login.microsoftonline.com` by default).
    AuthorityHost,
    /// `AZURE_TENANT_ID`.
    TenantId,
    /// `AZURE_CLIENT_ID`: of the service principal, the workload identity, or the
    /// user-assigned managed identity to authenticate as.
    ClientId,
    /// `AZURE_CLIENT_SECRET`: selects the client-secret credential.
    ClientSecret,
    /// `AZURE_FEDERATED_TOKEN_FILE`: selects the workload identity credential (set in pods
    /// by the workload identity webhook).
    FederatedTokenFile,
    /// `AZURE_ACCESS_TOKEN`: a static bearer token, accepted only when the ARM endpoint is on
    /// this machine (an emulator).
    AccessToken,
    /// `IDENTITY_ENDPOINT`: set where a managed identity endpoint serves tokens (App Service,
    /// Arc); selects the managed identity credential.
    IdentityEndpoint,
}

impl AzureConfigKey {
    /// Every key, in the order `from_env` reads them.
    pub const ALL: [AzureConfigKey; 9] = [
        AzureConfigKey::SubscriptionId,
        AzureConfigKey::ResourceManagerEndpoint,
        AzureConfigKey::AuthorityHost,
        AzureConfigKey::TenantId,
        AzureConfigKey::ClientId,
        AzureConfigKey::ClientSecret,
        AzureConfigKey::FederatedTokenFile,
        AzureConfigKey::AccessToken,
        AzureConfigKey::IdentityEndpoint,
    ];

    /// The environment variable.
    pub const fn env_var(self) -> &'static str {
        match self {
            AzureConfigKey::SubscriptionId => "AZURE_SUBSCRIPTION_ID",
            AzureConfigKey::ResourceManagerEndpoint => "AZURE_RESOURCE_MANAGER_ENDPOINT",
            AzureConfigKey::AuthorityHost => "AZURE_AUTHORITY_HOST",
            AzureConfigKey::TenantId => "AZURE_TENANT_ID",
            AzureConfigKey::ClientId => "AZURE_CLIENT_ID",
            AzureConfigKey::ClientSecret => "AZURE_CLIENT_SECRET",
            AzureConfigKey::FederatedTokenFile => "AZURE_FEDERATED_TOKEN_FILE",
            AzureConfigKey::AccessToken => "AZURE_ACCESS_TOKEN",
            AzureConfigKey::IdentityEndpoint => "IDENTITY_ENDPOINT",
        }
    }

    /// Whether the value is a secret (never shown).
    pub const fn is_secret(self) -> bool {
        matches!(
            self,
            AzureConfigKey::ClientSecret | AzureConfigKey::AccessToken
        )
    }
}

impl fmt::Display for AzureConfigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.env_var())
    }
}

/// Builds an [`AzureWorkloadIdentityProvider`].
///
/// ```no_run
/// # async fn run() -> porter_identity_core::Result<()> {
/// use porter_identity_azure::AzureWorkloadIdentityProvider;
///
/// // From the environment: AZURE_SUBSCRIPTION_ID, a credential chosen as Azure users expect
/// // (workload identity, a client secret, a managed identity, or `az login`), and
/// // AZURE_RESOURCE_MANAGER_ENDPOINT / AZURE_AUTHORITY_HOST where set.
/// let azure = AzureWorkloadIdentityProvider::builder()
///     .aks_cluster("prod-rg", "prod-aks")
///     .from_env()
///     .await?;
///
/// // A cluster that is not AKS, federating into Azure: give its issuer.
/// let federated = AzureWorkloadIdentityProvider::builder()
///     .issuer("https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE")
///     .from_env()
///     .await?;
/// # Ok(()) }
/// ```
///
/// The credential is chosen, when none is given, in this order: `AZURE_ACCESS_TOKEN` (an
/// emulator on this machine only); workload identity when `AZURE_FEDERATED_TOKEN_FILE` is set;
/// a client secret when `AZURE_CLIENT_SECRET` is set; a managed identity when
/// `IDENTITY_ENDPOINT` is set or `AZURE_CLIENT_ID` alone is (a user-assigned identity);
/// developer tools (`az login`, `azd`) otherwise. The choice is logged at debug level.
#[derive(Default)]
#[must_use]
pub struct AzureWorkloadIdentityProviderBuilder {
    subscription_id: Option<String>,
    cluster: Option<ClusterSource>,
    credential: Option<Arc<dyn TokenCredential>>,
    endpoint: Option<String>,
    retry: Option<RetryPolicy>,
    concurrency: Option<usize>,
    api: Option<Arc<dyn ArmApi>>,
    token_http_client: Option<Arc<dyn HttpClient>>,
    config: BTreeMap<AzureConfigKey, String>,
}

// Written by hand: secrets are never shown, only which settings are set.
impl fmt::Debug for AzureWorkloadIdentityProviderBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let config: BTreeMap<&str, &str> = self
            .config
            .iter()
            .map(|(k, v)| {
                (
                    k.env_var(),
                    if k.is_secret() {
                        "<redacted>"
                    } else {
                        v.as_str()
                    },
                )
            })
            .collect();
        f.debug_struct("AzureWorkloadIdentityProviderBuilder")
            .field("subscription_id", &self.subscription_id)
            .field("cluster", &self.cluster)
            .field("credential", &self.credential.as_ref().map(|_| "<set>"))
            .field("endpoint", &self.endpoint)
            .field("retry", &self.retry)
            .field("concurrency", &self.concurrency)
            .field("api", &self.api)
            .field("config", &config)
            .finish()
    }
}

impl AzureWorkloadIdentityProviderBuilder {
    /// The subscription of the identities (and of the AKS cluster). Default:
    /// `AZURE_SUBSCRIPTION_ID`.
    pub fn subscription_id(mut self, id: impl Into<String>) -> Self {
        self.subscription_id = Some(id.into());
        self
    }

    /// The AKS cluster whose OIDC issuer the credentials trust, read once per provider.
    pub fn aks_cluster(
        mut self,
        resource_group: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        self.cluster = Some(ClusterSource::Aks {
            resource_group: resource_group.into(),
            name: name.into(),
        });
        self
    }

    /// The cluster's OIDC issuer URL, given explicitly (a cluster that is not AKS): no cluster
    /// is read. It must be exactly the `iss` of the cluster's service-account tokens — Entra
    /// ID compares it as a string, trailing slash included.
    pub fn issuer(mut self, url: impl Into<String>) -> Self {
        self.cluster = Some(ClusterSource::Issuer(url.into()));
        self
    }

    /// The credential to get ARM tokens with (any `azure_identity` 1.x credential).
    pub fn credential(mut self, credential: Arc<dyn TokenCredential>) -> Self {
        self.credential = Some(credential);
        self
    }

    /// The Resource Manager endpoint, for sovereign clouds (`https://management.usgovcloudapi.net`)
    /// or an emulator on this machine. Default: `AZURE_RESOURCE_MANAGER_ENDPOINT`, else
    /// `https://management.azure.com`.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// How ARM calls are retried (default: [`RetryPolicy::default`]).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// How many ARM calls the provider makes at once (default
    /// [`porter_identity_core::DEFAULT_CONCURRENCY`]).
    pub fn concurrency(mut self, calls: usize) -> Self {
        self.concurrency = Some(calls);
        self
    }

    /// Uses any implementation of the port: a fake, a mock, or your own client. Subscription,
    /// credential and endpoint are then unused.
    pub fn api(mut self, api: impl ArmApi + 'static) -> Self {
        self.api = Some(Arc::new(api));
        self
    }

    /// The HTTP client the chosen credential sends its token requests through (its
    /// `ClientOptions.transport`). Default: the provider's own client. For a proxy, or a test
    /// transport.
    pub fn token_http_client(mut self, client: Arc<dyn HttpClient>) -> Self {
        self.token_http_client = Some(client);
        self
    }

    /// Sets one setting as `from_env` would read it from its environment variable.
    pub fn with_config(mut self, key: AzureConfigKey, value: impl Into<String>) -> Self {
        self.config.insert(key, value.into());
        self
    }

    /// Reads every [`AzureConfigKey`] that is set (and not empty) in the environment, then
    /// builds. Settings given explicitly (`.subscription_id`, `.endpoint`, `.credential`, …)
    /// win over the environment.
    pub async fn from_env(mut self) -> Result<AzureWorkloadIdentityProvider> {
        for key in AzureConfigKey::ALL {
            if let Ok(value) = std::env::var(key.env_var())
                && !value.trim().is_empty()
                && !self.config.contains_key(&key)
            {
                self.config.insert(key, value);
            }
        }
        self.build().await
    }

    /// Builds the provider. Fails, naming the setting, when the cluster, the subscription or
    /// the credential is missing or invalid.
    ///
    /// Async like every builder of porter-identity (see the core README), though building
    /// this one awaits nothing.
    pub async fn build(self) -> Result<AzureWorkloadIdentityProvider> {
        let Some(cluster) = self.cluster.clone() else {
            return Err(Error::invalid_input(
                "cluster",
                "is not set",
                "call .aks_cluster(resource_group, name) for an AKS cluster, or .issuer(url) for another cluster",
            ));
        };
        check_cluster(&cluster)?;
        let retry = self.retry.clone().unwrap_or_default();
        let api: Arc<dyn ArmApi> = match &self.api {
            Some(api) => api.clone(),
            None => Arc::new(self.arm_client(&retry)?),
        };
        Ok(AzureWorkloadIdentityProvider::new(
            api,
            cluster,
            retry,
            self.concurrency,
        ))
    }

    fn setting(&self, key: AzureConfigKey) -> Option<&str> {
        self.config
            .get(&key)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    fn arm_client(&self, retry: &RetryPolicy) -> Result<ArmClient> {
        let subscription = self
            .subscription_id
            .as_deref()
            .or(self.setting(AzureConfigKey::SubscriptionId))
            .ok_or_else(|| {
                Error::invalid_input(
                    "subscription_id",
                    "is not set",
                    "set AZURE_SUBSCRIPTION_ID (`az account show --query id -o tsv`) or call .subscription_id(..)",
                )
            })?;
        let endpoint = self
            .endpoint
            .as_deref()
            .or(self.setting(AzureConfigKey::ResourceManagerEndpoint))
            .unwrap_or(PUBLIC_CLOUD_ENDPOINT);
        let endpoint_url = check_endpoint(endpoint)?;
        // The per-attempt timeout of the RetryPolicy is the contract; the client's is a
        // backstop just above it.
        let options = ArmClientOptions {
            timeout: retry.get_attempt_timeout() + std::time::Duration::from_secs(5),
            ..ArmClientOptions::default()
        };
        let http = http_client(&options)?;
        let credential = match &self.credential {
            Some(c) => c.clone(),
            None => self.choose_credential(&endpoint_url, &http)?,
        };
        ArmClient::with_http_client(endpoint, subscription, credential, http)
    }

    /// The credential Azure users expect from their environment.
    fn choose_credential(
        &self,
        endpoint: &Url,
        http: &reqwest::Client,
    ) -> Result<Arc<dyn TokenCredential>> {
        use AzureConfigKey as K;
        if let Some(token) = self.setting(K::AccessToken) {
            if !is_loopback(endpoint) {
                return Err(Error::invalid_input(
                    K::AccessToken.env_var(),
                    format!(
                        "is set, but the Resource Manager endpoint {endpoint} is not on this machine; a static token is only for a local emulator"
                    ),
                    "unset AZURE_ACCESS_TOKEN and let a real credential authenticate (AZURE_CLIENT_SECRET, workload identity, a managed identity or `az login`), or point AZURE_RESOURCE_MANAGER_ENDPOINT at the emulator on 127.0.0.1",
                ));
            }
            tracing::debug!(credential = "static-token", "Azure credential chosen");
            return Ok(Arc::new(StaticTokenCredential::new(token)));
        }
        let client_options = self.client_options(http)?;
        let built: azure_core::Result<Arc<dyn TokenCredential>> = if let Some(file) =
            self.setting(K::FederatedTokenFile)
        {
            tracing::debug!(credential = "workload-identity", "Azure credential chosen");
            WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
                credential_options: ClientAssertionCredentialOptions { client_options },
                client_id: Some(self.required(K::ClientId, "workload identity")?.to_owned()),
                tenant_id: Some(self.required(K::TenantId, "workload identity")?.to_owned()),
                token_file_path: Some(PathBuf::from(file)),
            }))
            .map(|c| c as Arc<dyn TokenCredential>)
        } else if let Some(secret) = self.setting(K::ClientSecret) {
            tracing::debug!(credential = "client-secret", "Azure credential chosen");
            ClientSecretCredential::new(
                self.required(K::TenantId, "a client secret")?,
                self.required(K::ClientId, "a client secret")?.to_owned(),
                Secret::new(secret.to_owned()),
                Some(ClientSecretCredentialOptions { client_options }),
            )
            .map(|c| c as Arc<dyn TokenCredential>)
        } else if self.setting(K::IdentityEndpoint).is_some() || self.setting(K::ClientId).is_some()
        {
            tracing::debug!(credential = "managed-identity", "Azure credential chosen");
            ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                user_assigned_id: self
                    .setting(K::ClientId)
                    .map(|id| UserAssignedId::ClientId(id.to_owned())),
                client_options,
            }))
            .map(|c| c as Arc<dyn TokenCredential>)
        } else {
            tracing::debug!(credential = "developer-tools", "Azure credential chosen");
            DeveloperToolsCredential::new(None).map(|c| c as Arc<dyn TokenCredential>)
        };
        built.map_err(|e| {
            let text = e.to_string();
            let fix = if text.contains("HTTPS") {
                "give AZURE_AUTHORITY_HOST as an https URL; for an emulator on plain http, use AZURE_ACCESS_TOKEN with an ARM endpoint on 127.0.0.1"
            } else if text.contains("federated token") {
                "AZURE_FEDERATED_TOKEN_FILE names the projected service-account token, which the workload identity webhook mounts: give this pod's service account the annotation azure.workload.identity/client-id and the pod the label azure.workload.identity/use: \"true\", or unset AZURE_FEDERATED_TOKEN_FILE to use another credential"
            } else {
                "check AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (or AZURE_FEDERATED_TOKEN_FILE)"
            };
            Error::cloud(
                ErrorKind::Unauthenticated,
                Cloud::Azure,
                "Credential",
                format!("the Azure credential could not be set up: {text}"),
            )
            .with_fix(fix)
        })
    }

    fn required(&self, key: AzureConfigKey, what: &str) -> Result<&str> {
        self.setting(key).ok_or_else(|| {
            Error::invalid_input(
                key.env_var(),
                format!("is not set, and {what} needs it"),
                format!("set {key} (see the Overview page of the app registration or identity in the Azure portal)"),
            )
        })
    }

    /// The credential's HTTP options: our transport, no retries of its own (the provider's
    /// RetryPolicy is the one layer, and the token is fetched inside each attempt), and the
    /// authority host when set.
    fn client_options(&self, http: &reqwest::Client) -> Result<ClientOptions> {
        let transport: Arc<dyn HttpClient> = match &self.token_http_client {
            Some(t) => t.clone(),
            None => Arc::new(http.clone()),
        };
        let mut options = ClientOptions {
            retry: RetryOptions::none(),
            transport: Some(Transport::new(transport)),
            ..ClientOptions::default()
        };
        if let Some(host) = self.setting(AzureConfigKey::AuthorityHost) {
            let mut custom = CustomConfiguration::default();
            custom.authority_host = host.to_owned();
            options.cloud = Some(Arc::new(CloudConfiguration::from(custom)));
        }
        Ok(options)
    }
}

/// Checks the cluster: valid ARM names, or an https issuer.
fn check_cluster(cluster: &ClusterSource) -> Result<()> {
    match cluster {
        ClusterSource::Aks {
            resource_group,
            name,
        } => {
            AzureResourceGroup::parse(resource_group)
                .map_err(|e| rename(e, "aks_cluster.resource_group"))?;
            // AKS cluster names: 1-63 letters, digits, '-' and '_', starting and ending with a
            // letter or digit.
            let ok = !name.is_empty()
                && name.len() <= 63
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && name.starts_with(|c: char| c.is_ascii_alphanumeric())
                && name.ends_with(|c: char| c.is_ascii_alphanumeric());
            if !ok {
                return Err(Error::invalid_input(
                    "aks_cluster.name",
                    format!("{name:?} is not an AKS cluster name"),
                    "give the cluster's name as `az aks list -o table` shows it: 1 to 63 letters, digits, '-' or '_', starting and ending with a letter or digit",
                ));
            }
            Ok(())
        }
        ClusterSource::Issuer(url) => {
            let parsed = Url::parse(url)
                .ok()
                .filter(|u| u.scheme() == "https" && u.host().is_some());
            if parsed.is_none() {
                return Err(Error::invalid_input(
                    "issuer",
                    format!("{url:?} is not an https URL"),
                    "give the cluster's OIDC issuer exactly as its service-account tokens name it (the `iss` claim; `kubectl get --raw /.well-known/openid-configuration` shows it)",
                ));
            }
            Ok(())
        }
    }
}

fn rename(e: Error, field: &str) -> Error {
    match e {
        Error::InvalidInput { problem, fix, .. } => Error::invalid_input(field, problem, fix),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUB: &str = "c267c0e7-0a73-4789-9e17-d26aeb0904e5";

    #[tokio::test]
    async fn the_cluster_is_required_and_checked() {
        let e = AzureWorkloadIdentityProviderBuilder::default()
            .build()
            .await
            .unwrap_err();
        assert!(e.to_string().contains("invalid cluster: is not set"), "{e}");
        let e = AzureWorkloadIdentityProvider::builder()
            .aks_cluster("rg", "bad name!")
            .build()
            .await
            .unwrap_err();
        assert!(e.to_string().contains("aks_cluster.name"), "{e}");
        let e = AzureWorkloadIdentityProvider::builder()
            .issuer("http://oidc.example/")
            .build()
            .await
            .unwrap_err();
        assert!(e.to_string().contains("invalid issuer"), "{e}");
    }

    #[tokio::test]
    async fn the_subscription_is_required() {
        let e = AzureWorkloadIdentityProvider::builder()
            .aks_cluster("rg", "aks")
            .with_config(AzureConfigKey::AccessToken, "t")
            .with_config(
                AzureConfigKey::ResourceManagerEndpoint,
                "http://127.0.0.1:9",
            )
            .build()
            .await
            .unwrap_err();
        assert!(e.to_string().contains("AZURE_SUBSCRIPTION_ID"), "{e}");
    }

    #[tokio::test]
    async fn a_static_token_is_only_for_an_emulator_on_this_machine() {
        let e = AzureWorkloadIdentityProvider::builder()
            .aks_cluster("rg", "aks")
            .subscription_id(SUB)
            .with_config(AzureConfigKey::AccessToken, "real-looking-token")
            .build()
            .await
            .unwrap_err();
        assert!(e.to_string().contains("AZURE_ACCESS_TOKEN"), "{e}");
        assert!(!e.to_string().contains("real-looking-token"), "{e}");
        assert!(
            AzureWorkloadIdentityProvider::builder()
                .aks_cluster("rg", "aks")
                .subscription_id(SUB)
                .with_config(AzureConfigKey::AccessToken, "t")
                .with_config(
                    AzureConfigKey::ResourceManagerEndpoint,
                    "http://127.0.0.1:9"
                )
                .build()
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn a_plain_http_authority_is_refused_with_the_way_out() {
        let e = AzureWorkloadIdentityProvider::builder()
            .aks_cluster("rg", "aks")
            .subscription_id(SUB)
            .with_config(AzureConfigKey::AuthorityHost, "http://127.0.0.1:9")
            .with_config(
                AzureConfigKey::TenantId,
                "72f988bf-86f1-41af-91ab-2d7cd011db47",
            )
            .with_config(AzureConfigKey::ClientId, "app")
            .with_config(AzureConfigKey::ClientSecret, "s3cret-value")
            .build()
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
        assert!(e.fix().unwrap().contains("AZURE_ACCESS_TOKEN"), "{e}");
        assert!(!format!("{e:?}").contains("s3cret-value"));
    }

    #[tokio::test]
    async fn a_client_secret_needs_its_tenant() {
        let e = AzureWorkloadIdentityProvider::builder()
            .aks_cluster("rg", "aks")
            .subscription_id(SUB)
            .with_config(AzureConfigKey::ClientId, "app")
            .with_config(AzureConfigKey::ClientSecret, "s3cret-value")
            .build()
            .await
            .unwrap_err();
        assert!(e.to_string().contains("AZURE_TENANT_ID"), "{e}");
    }

    #[test]
    fn debug_redacts_secrets() {
        let b = AzureWorkloadIdentityProvider::builder()
            .with_config(AzureConfigKey::ClientSecret, "s3cret-value")
            .with_config(AzureConfigKey::AccessToken, "token-value")
            .with_config(AzureConfigKey::ClientId, "app-id");
        let shown = format!("{b:?}");
        assert!(
            !shown.contains("s3cret-value") && !shown.contains("token-value"),
            "{shown}"
        );
        assert!(shown.contains("app-id"), "{shown}");
    }
}
