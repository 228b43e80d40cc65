//! [`ArmApi`] over HTTP: Azure Resource Manager's REST API with `reqwest`, and tokens from an
//! `azure_identity` credential. The only module of this crate that sees HTTP.
//!
//! - URLs are built segment by segment (`Url::path_segments_mut`), so every name is
//!   percent-encoded, never concatenated raw.
//! - The token is fetched inside each call (the credential caches it and refreshes it early),
//!   sent as a sensitive header, and never logged.
//! - Every ARM call runs in its own `tracing` span named `azure.call` (operation, resource
//!   group, identity; never the token), and every error goes through one function,
//!   [`map_arm_error`], which reads ARM's `error.code` first and the status second.
//! - A `nextLink` is followed only to the endpoint's own scheme, host and port: the bearer
//!   token never leaves that host.
//! - There are no retries here: the provider's `RetryPolicy` is the one retry layer.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use porter_identity_core::{Cloud, Error, ErrorKind, Operation, Result};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::Value;
use tracing::Instrument;
use url::Url;

use crate::api::{
    ArmApi, CredentialPage, CredentialSpec, FederatedCredential, Identity, ManagedCluster,
    RoleAssignment, RoleAssignmentPage, RoleDefinition,
};
use crate::operation as op;

/// The Azure Resource Manager endpoint of the public cloud.
pub(crate) const PUBLIC_CLOUD_ENDPOINT: &str = "https://management.azure.com";

/// API version of Microsoft.ManagedIdentity (identities and federated identity credentials).
pub(crate) const MANAGED_IDENTITY_API_VERSION: &str = "2024-11-30";
/// API version of Microsoft.ContainerService (AKS managed clusters).
pub(crate) const CONTAINER_SERVICE_API_VERSION: &str = "2025-10-01";
/// API version of Microsoft.Authorization (role assignments and definitions).
pub(crate) const AUTHORIZATION_API_VERSION: &str = "2022-04-01";

/// Timeouts of the HTTP client. The provider's per-attempt timeout (core `RetryPolicy`, 20 s
/// by default) is the contract; the request timeout here is a backstop just above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ArmClientOptions {
    /// The whole request, answer included.
    pub timeout: Duration,
    /// Establishing the connection.
    pub connect_timeout: Duration,
}

impl Default for ArmClientOptions {
    fn default() -> Self {
        ArmClientOptions {
            timeout: Duration::from_secs(25),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// Whether `url` points at this machine (127.0.0.1, ::1, localhost): where plain http and a
/// static token are allowed, for local emulators.
pub(crate) fn is_loopback(url: &Url) -> bool {
    url.host_str()
        .is_some_and(porter_identity_core::provider::is_loopback_host)
}

/// Checks an ARM endpoint: https, or http on a loopback address (an emulator).
pub(crate) fn check_endpoint(endpoint: &str) -> Result<Url> {
    let fix = "give the Resource Manager endpoint as https://management.azure.com (or your sovereign cloud's), or http://127.0.0.1:PORT for a local emulator";
    let url = Url::parse(endpoint).map_err(|e| {
        Error::invalid_input("endpoint", format!("{endpoint:?} is not a URL ({e})"), fix)
    })?;
    let plain_loopback = url.scheme() == "http" && is_loopback(&url);
    if url.scheme() != "https" && !plain_loopback {
        return Err(Error::invalid_input(
            "endpoint",
            format!(
                "{endpoint:?} is not https; the bearer token is only sent over TLS, or to this machine"
            ),
            fix,
        ));
    }
    if url.cannot_be_a_base() || url.query().is_some() || url.fragment().is_some() {
        return Err(Error::invalid_input(
            "endpoint",
            format!("{endpoint:?} must be a bare base URL (no query, no fragment)"),
            fix,
        ));
    }
    Ok(url)
}

/// [`ArmApi`] over HTTP.
///
/// ```no_run
/// # fn run(credential: std::sync::Arc<dyn azure_core::credentials::TokenCredential>) -> porter_identity_core::Result<()> {
/// use porter_identity_azure::{ArmClient, ArmClientOptions};
/// let arm = ArmClient::new(
///     "https://management.azure.com",
///     "00000000-0000-0000-0000-000000000000",
///     credential,
///     ArmClientOptions::default(),
/// )?;
/// # let _ = arm; Ok(()) }
/// ```
#[derive(Clone)]
pub struct ArmClient {
    endpoint: Url,
    subscription_id: String,
    credential: Arc<dyn TokenCredential>,
    scope: String,
    http: reqwest::Client,
}

// Written by hand: the credential's own Debug is not ours to trust, and only the endpoint and
// the subscription are useful in logs.
impl fmt::Debug for ArmClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArmClient")
            .field("endpoint", &self.endpoint.as_str())
            .field("subscription_id", &self.subscription_id)
            .finish_non_exhaustive()
    }
}

impl ArmClient {
    /// A client of `endpoint` for subscription `subscription_id`, with tokens from
    /// `credential` for the endpoint's `/.default` scope.
    pub fn new(
        endpoint: &str,
        subscription_id: &str,
        credential: Arc<dyn TokenCredential>,
        options: ArmClientOptions,
    ) -> Result<Self> {
        let http = http_client(&options)?;
        Self::with_http_client(endpoint, subscription_id, credential, http)
    }

    /// A client over a ready `reqwest::Client` (the same one may serve the credential's token
    /// requests, as its `ClientOptions.transport`).
    pub fn with_http_client(
        endpoint: &str,
        subscription_id: &str,
        credential: Arc<dyn TokenCredential>,
        http: reqwest::Client,
    ) -> Result<Self> {
        let endpoint = check_endpoint(endpoint)?;
        check_subscription(subscription_id)?;
        let scope = format!("{}/.default", endpoint.as_str().trim_end_matches('/'));
        Ok(ArmClient {
            endpoint,
            subscription_id: subscription_id.to_owned(),
            credential,
            scope,
            http,
        })
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// `{endpoint}/{segments…}?api-version=…`, each segment percent-encoded.
    fn url(&self, segments: &[&str], api_version: &str) -> Url {
        let mut url = self.endpoint.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url.query_pairs_mut()
            .append_pair("api-version", api_version);
        url
    }

    /// `subscriptions/{sub}/resourceGroups/{rg}/providers/{provider…}`.
    fn resource_url(&self, resource_group: &str, provider: &[&str], api_version: &str) -> Url {
        let mut segments = vec![
            "subscriptions",
            self.subscription_id.as_str(),
            "resourceGroups",
            resource_group,
            "providers",
        ];
        segments.extend_from_slice(provider);
        self.url(&segments, api_version)
    }

    /// The federated identity credentials of an identity, or one of them.
    fn credentials_url(&self, resource_group: &str, identity: &str, name: Option<&str>) -> Url {
        let mut provider = vec![
            "Microsoft.ManagedIdentity",
            "userAssignedIdentities",
            identity,
            "federatedIdentityCredentials",
        ];
        provider.extend(name);
        self.resource_url(resource_group, &provider, MANAGED_IDENTITY_API_VERSION)
    }

    /// A `nextLink`, followed only to this endpoint's scheme, host and port.
    fn next_url(&self, operation: &'static str, link: &str) -> Result<Url> {
        let url = Url::parse(link).map_err(|e| {
            Error::cloud(
                ErrorKind::Other,
                Cloud::Azure,
                operation,
                format!("ARM returned a nextLink that is not a URL: {e}"),
            )
        })?;
        let same = url.scheme() == self.endpoint.scheme()
            && url.host_str() == self.endpoint.host_str()
            && url.port_or_known_default() == self.endpoint.port_or_known_default();
        if !same {
            return Err(Error::cloud(
                ErrorKind::Other,
                Cloud::Azure,
                operation,
                format!(
                    "ARM returned a nextLink to {}://{}, not to the endpoint {}; it is not followed, so the token does not leave the endpoint's host",
                    url.scheme(),
                    url.host_str().unwrap_or("?"),
                    self.endpoint.as_str()
                ),
            )
            .with_fix("check the Resource Manager endpoint (AZURE_RESOURCE_MANAGER_ENDPOINT) and any proxy in between"));
        }
        Ok(url)
    }

    /// One ARM request: the token, the request, the answer or the mapped error. Runs in
    /// `span`.
    async fn send(
        &self,
        span: tracing::Span,
        operation: &'static str,
        method: Method,
        url: Url,
        body: Option<Value>,
    ) -> Result<Answer> {
        async move {
            let result = self.send_inner(operation, method, url, body).await;
            if let Err(e) = &result {
                tracing::debug!(kind = %e.kind(), error = %e, "ARM call failed");
            }
            result
        }
        .instrument(span)
        .await
    }

    async fn send_inner(
        &self,
        operation: &'static str,
        method: Method,
        url: Url,
        body: Option<Value>,
    ) -> Result<Answer> {
        let token = self
            .credential
            .get_token(&[self.scope.as_str()], None)
            .await
            .map_err(|e| token_error(operation, &e))?;
        let mut bearer = HeaderValue::from_str(&format!("Bearer {}", token.token.secret()))
            .map_err(|_| {
                Error::cloud(
                    ErrorKind::Unauthenticated,
                    Cloud::Azure,
                    operation,
                    "the credential returned a token that is not a valid header value",
                )
            })?;
        bearer.set_sensitive(true);
        let mut request = self
            .http
            .request(method, url)
            .header(AUTHORIZATION, bearer)
            .header("x-ms-client-request-id", request_id());
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let response = request
            .send()
            .await
            .map_err(|e| transport_error(operation, &e))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport_error(operation, &e))?;
        if status.is_success() {
            Ok(Answer {
                status,
                body: bytes.to_vec(),
            })
        } else {
            Err(map_arm_error(
                operation,
                status.as_u16(),
                retry_after,
                &bytes,
            ))
        }
    }

    async fn get_json<T: for<'de> Deserialize<'de>>(
        &self,
        span: tracing::Span,
        operation: &'static str,
        url: Url,
    ) -> Result<T> {
        let answer = self.send(span, operation, Method::GET, url, None).await?;
        answer.json(operation)
    }
}

/// A successful answer.
struct Answer {
    status: StatusCode,
    body: Vec<u8>,
}

impl Answer {
    fn json<T: for<'de> Deserialize<'de>>(&self, operation: &'static str) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Error::cloud(
                ErrorKind::Other,
                Cloud::Azure,
                operation,
                format!(
                    "ARM answered {} with a body that cannot be read: {e}",
                    self.status
                ),
            )
        })
    }
}

/// The one HTTP client of a provider: TLS by rustls on the `ring` provider with the platform's
/// roots, timeouts, a user agent, no redirects (a redirect could carry the token elsewhere).
pub(crate) fn http_client(options: &ArmClientOptions) -> Result<reqwest::Client> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let failed = |what: String| {
        Error::cloud(
            ErrorKind::Other,
            Cloud::Azure,
            "HttpClient",
            format!("the HTTP client could not be built: {what}"),
        )
    };
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| failed(e.to_string()))?
    .with_platform_verifier()
    .map_err(|e| failed(format!("the platform's certificate roots: {e}")))?
    .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(options.timeout)
        .connect_timeout(options.connect_timeout)
        .user_agent(concat!("porter-identity/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| failed(e.to_string()))
}

fn check_subscription(subscription_id: &str) -> Result<()> {
    let ok = subscription_id.len() == 36
        && subscription_id.chars().enumerate().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        });
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_input(
            "subscription_id",
            format!(
                "{:?} is not a subscription id (a GUID)",
                shown(subscription_id)
            ),
            "give the subscription's id as `az account show --query id -o tsv` prints it (AZURE_SUBSCRIPTION_ID)",
        ))
    }
}

fn shown(value: &str) -> String {
    value.chars().take(64).collect()
}

/// A client request id for ARM's logs (and support tickets); not secret.
fn request_id() -> String {
    let (a, b) = (fastrand::u64(..), fastrand::u64(..));
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}

/// The action a 403 of `operation` lacks, for the fix.
fn required_action(operation: &str) -> &'static str {
    const ACTIONS: [(Operation, &str); 7] = [
        (
            op::MANAGED_CLUSTERS_GET,
            "Microsoft.ContainerService/managedClusters/read",
        ),
        (
            op::USER_ASSIGNED_IDENTITIES_GET,
            "Microsoft.ManagedIdentity/userAssignedIdentities/read",
        ),
        (
            op::FEDERATED_IDENTITY_CREDENTIALS_LIST,
            "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/read",
        ),
        (
            op::FEDERATED_IDENTITY_CREDENTIALS_CREATE_OR_UPDATE,
            "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/write",
        ),
        (
            op::FEDERATED_IDENTITY_CREDENTIALS_DELETE,
            "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/delete",
        ),
        (
            op::ROLE_ASSIGNMENTS_LIST_FOR_SCOPE,
            "Microsoft.Authorization/roleAssignments/read",
        ),
        (
            op::ROLE_DEFINITIONS_GET_BY_ID,
            "Microsoft.Authorization/roleDefinitions/read",
        ),
    ];
    ACTIONS
        .iter()
        .find(|(op, _)| op.name() == operation)
        .map_or("the action of this operation", |(_, action)| action)
}

/// ARM's error body: `{"error": {"code": …, "message": …}}`.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: Option<ErrorDetail>,
}

#[derive(Debug, Deserialize)]
struct ErrorDetail {
    code: Option<String>,
    message: Option<String>,
}

/// The code Azure answers (409) to a write racing another write on the same identity.
pub(crate) const CONCURRENT_WRITES_CODE: &str =
    "ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity";

/// Maps an ARM error answer to a porter-identity [`Error`] of cloud [`Cloud::Azure`]: by
/// `error.code` first, then by status.
///
/// - the concurrent-writes code → a retryable `Conflict`;
/// - 400 naming an issuer and subject that already exist → `AlreadyExists` (another writer won
///   a race under another name); 400 naming the credential limit → `LimitExceeded`; other 400s
///   → `InvalidInput`;
/// - 401 → `Unauthenticated`; 403 → `PermissionDenied` naming the action to grant; 404 →
///   `NotFound`; 409 → `Conflict`; 429 → `Throttled` with its `Retry-After`; 5xx →
///   `Unavailable`.
pub(crate) fn map_arm_error(
    operation: &'static str,
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
) -> Error {
    let detail = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .and_then(|b| b.error);
    let code = detail
        .as_ref()
        .and_then(|d| d.code.clone())
        .unwrap_or_default();
    let message = detail
        .as_ref()
        .and_then(|d| d.message.clone())
        .filter(|m| !m.trim().is_empty())
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body);
            let text: String = text.chars().take(200).collect();
            if text.trim().is_empty() {
                format!("HTTP {status}")
            } else {
                format!("HTTP {status}: {text}")
            }
        });
    let lower = message.to_ascii_lowercase();
    let kind = if code == CONCURRENT_WRITES_CODE {
        ErrorKind::Conflict
    } else if status == 400 && lower.contains("already exist") {
        ErrorKind::AlreadyExists
    } else if status == 400
        && (lower.contains("maximum") || lower.contains("limit") || lower.contains("too many"))
    {
        ErrorKind::LimitExceeded
    } else {
        match (code.as_str(), status) {
            (
                "InvalidAuthenticationToken"
                | "ExpiredAuthenticationToken"
                | "AuthenticationFailed"
                | "InvalidAuthenticationTokenTenant",
                _,
            )
            | (_, 401) => ErrorKind::Unauthenticated,
            ("AuthorizationFailed" | "LinkedAuthorizationFailed", _) | (_, 403) => {
                ErrorKind::PermissionDenied
            }
            (
                "ResourceNotFound"
                | "ResourceGroupNotFound"
                | "NotFound"
                | "SubscriptionNotFound"
                | "ParentResourceNotFound",
                _,
            )
            | (_, 404) => ErrorKind::NotFound,
            ("TooManyRequests", _) | (_, 429) => ErrorKind::Throttled,
            (_, 409) => ErrorKind::Conflict,
            (_, 400) => ErrorKind::InvalidInput,
            (_, 500..=599) => ErrorKind::Unavailable,
            _ => ErrorKind::Other,
        }
    };
    let text = if code.is_empty() || code == "BadRequest" {
        message
    } else {
        format!("{code}: {message}")
    };
    let err = Error::cloud(kind, Cloud::Azure, operation, text);
    let err = match retry_after {
        Some(wait) => err.with_retry_after(wait),
        None => err,
    };
    match kind {
        ErrorKind::Conflict if code == CONCURRENT_WRITES_CODE => err.retryable(true),
        ErrorKind::PermissionDenied => err.with_fix(format!(
            "grant the caller `{}` (the built-in Managed Identity Contributor role on the identity includes the managed-identity actions; Azure Kubernetes Service Cluster User or Reader the cluster read), and check that no deny assignment blocks it",
            required_action(operation)
        )),
        ErrorKind::Unauthenticated => err.with_fix(CREDENTIALS_FIX),
        _ => err,
    }
}

/// The fix for every credential problem.
const CREDENTIALS_FIX: &str = "check the Azure credential: AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (or AZURE_FEDERATED_TOKEN_FILE), the managed identity of this machine, or `az login`; and that AZURE_SUBSCRIPTION_ID is a subscription of that tenant";

fn token_error(operation: &'static str, e: &azure_core::Error) -> Error {
    Error::cloud(
        ErrorKind::Unauthenticated,
        Cloud::Azure,
        operation,
        format!("no Azure access token: {e}"),
    )
    .with_fix(CREDENTIALS_FIX)
}

fn transport_error(operation: &'static str, e: &reqwest::Error) -> Error {
    // reqwest's Display names the URL; ours carry no secret in the URL, but the error's source
    // chain says more.
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    if e.is_timeout() {
        Error::cloud(
            ErrorKind::Unavailable,
            Cloud::Azure,
            operation,
            format!("Azure Resource Manager did not answer in time: {text}"),
        )
    } else if e.is_connect() || e.is_request() || e.is_body() {
        Error::cloud(
            ErrorKind::Unavailable,
            Cloud::Azure,
            operation,
            format!("could not reach Azure Resource Manager: {text}"),
        )
        .with_fix("check the network path to Azure (proxy, DNS, firewall) and the endpoint (AZURE_RESOURCE_MANAGER_ENDPOINT)")
    } else {
        Error::cloud(ErrorKind::Other, Cloud::Azure, operation, text)
    }
}

// ---- wire shapes (member names as in the ARM specs and testdata/api-examples) --------

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireCluster {
    id: String,
    name: String,
    #[serde(default)]
    properties: WireClusterProperties,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireClusterProperties {
    oidc_issuer_profile: Option<WireOidcIssuerProfile>,
    security_profile: Option<WireSecurityProfile>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireOidcIssuerProfile {
    #[serde(default)]
    enabled: bool,
    #[serde(rename = "issuerURL")]
    issuer_url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireSecurityProfile {
    workload_identity: Option<WireEnabled>,
}

#[derive(Debug, Deserialize)]
struct WireEnabled {
    #[serde(default)]
    enabled: bool,
}

impl From<WireCluster> for ManagedCluster {
    fn from(c: WireCluster) -> Self {
        let oidc = c.properties.oidc_issuer_profile;
        ManagedCluster {
            id: c.id,
            name: c.name,
            oidc_issuer_enabled: oidc.as_ref().is_some_and(|o| o.enabled),
            issuer_url: oidc.and_then(|o| o.issuer_url).filter(|u| !u.is_empty()),
            workload_identity_enabled: c
                .properties
                .security_profile
                .and_then(|s| s.workload_identity)
                .is_some_and(|w| w.enabled),
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireIdentity {
    id: String,
    name: String,
    properties: WireIdentityProperties,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireIdentityProperties {
    client_id: String,
    principal_id: String,
    tenant_id: String,
}

impl From<WireIdentity> for Identity {
    fn from(i: WireIdentity) -> Self {
        Identity {
            id: i.id,
            name: i.name,
            client_id: i.properties.client_id,
            principal_id: i.properties.principal_id,
            tenant_id: i.properties.tenant_id,
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireCredential {
    id: String,
    name: String,
    properties: WireCredentialProperties,
}

#[derive(Debug, Deserialize)]
struct WireCredentialProperties {
    issuer: String,
    subject: String,
    #[serde(default)]
    audiences: Vec<String>,
}

impl From<WireCredential> for FederatedCredential {
    fn from(c: WireCredential) -> Self {
        FederatedCredential {
            name: c.name,
            id: c.id,
            issuer: c.properties.issuer,
            subject: c.properties.subject,
            audiences: c.properties.audiences,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireList<T> {
    #[serde(default = "Vec::new")]
    value: Vec<T>,
    next_link: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireRoleAssignment {
    id: String,
    properties: WireRoleAssignmentProperties,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireRoleAssignmentProperties {
    role_definition_id: String,
    principal_id: String,
    scope: String,
}

impl From<WireRoleAssignment> for RoleAssignment {
    fn from(a: WireRoleAssignment) -> Self {
        RoleAssignment {
            id: a.id,
            scope: a.properties.scope,
            role_definition_id: a.properties.role_definition_id,
            principal_id: a.properties.principal_id,
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireRoleDefinition {
    id: String,
    properties: WireRoleDefinitionProperties,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireRoleDefinitionProperties {
    role_name: String,
}

impl From<WireRoleDefinition> for RoleDefinition {
    fn from(d: WireRoleDefinition) -> Self {
        RoleDefinition {
            id: d.id,
            role_name: d.properties.role_name,
        }
    }
}

/// The segments of a role definition id as ARM gives it
/// (`[/subscriptions/{sub}]/providers/Microsoft.Authorization/roleDefinitions/{guid}`), checked,
/// so that a path from a response is never sent anywhere unexpected.
fn role_definition_segments(id: &str) -> Result<Vec<&str>> {
    let segments: Vec<&str> = id.trim_start_matches('/').split('/').collect();
    let tail_ok = segments.len() >= 4
        && segments[segments.len() - 4].eq_ignore_ascii_case("providers")
        && segments[segments.len() - 3].eq_ignore_ascii_case("Microsoft.Authorization")
        && segments[segments.len() - 2].eq_ignore_ascii_case("roleDefinitions")
        && !segments[segments.len() - 1].is_empty();
    let head_ok = match segments.len() {
        4 => true,
        6 => segments[0].eq_ignore_ascii_case("subscriptions") && !segments[1].is_empty(),
        _ => false,
    };
    if id.starts_with('/') && tail_ok && head_ok && segments.iter().all(|s| !s.contains(['?', '#']))
    {
        Ok(segments)
    } else {
        Err(Error::invalid_input(
            "role_definition_id",
            format!("{:?} is not a role definition id", shown(id)),
            "pass the roleDefinitionId of a role assignment as ARM returned it",
        ))
    }
}

#[async_trait]
impl ArmApi for ArmClient {
    async fn get_managed_cluster(
        &self,
        resource_group: &str,
        name: &str,
    ) -> Result<ManagedCluster> {
        const OP: &str = op::MANAGED_CLUSTERS_GET.name();
        let span =
            tracing::info_span!("azure.call", operation = OP, resource_group, cluster = name);
        let url = self.resource_url(
            resource_group,
            &["Microsoft.ContainerService", "managedClusters", name],
            CONTAINER_SERVICE_API_VERSION,
        );
        let wire: WireCluster = self.get_json(span, OP, url).await?;
        Ok(wire.into())
    }

    async fn get_identity(&self, resource_group: &str, name: &str) -> Result<Identity> {
        const OP: &str = op::USER_ASSIGNED_IDENTITIES_GET.name();
        let span = tracing::info_span!(
            "azure.call",
            operation = OP,
            resource_group,
            identity = name
        );
        let url = self.resource_url(
            resource_group,
            &["Microsoft.ManagedIdentity", "userAssignedIdentities", name],
            MANAGED_IDENTITY_API_VERSION,
        );
        let wire: WireIdentity = self.get_json(span, OP, url).await?;
        Ok(wire.into())
    }

    async fn list_federated_credentials(
        &self,
        resource_group: &str,
        identity: &str,
        next_link: Option<String>,
    ) -> Result<CredentialPage> {
        const OP: &str = op::FEDERATED_IDENTITY_CREDENTIALS_LIST.name();
        let span = tracing::info_span!(
            "azure.call",
            operation = OP,
            resource_group,
            identity,
            next_page = next_link.is_some()
        );
        let url = match &next_link {
            Some(link) => self.next_url(OP, link)?,
            None => self.credentials_url(resource_group, identity, None),
        };
        let wire: WireList<WireCredential> = self.get_json(span, OP, url).await?;
        Ok(CredentialPage {
            credentials: wire.value.into_iter().map(Into::into).collect(),
            next_link: wire.next_link.filter(|l| !l.is_empty()),
        })
    }

    async fn put_federated_credential(
        &self,
        resource_group: &str,
        identity: &str,
        name: &str,
        spec: &CredentialSpec,
    ) -> Result<FederatedCredential> {
        const OP: &str = op::FEDERATED_IDENTITY_CREDENTIALS_CREATE_OR_UPDATE.name();
        let span = tracing::info_span!(
            "azure.call",
            operation = OP,
            resource_group,
            identity,
            credential = name
        );
        let url = self.credentials_url(resource_group, identity, Some(name));
        let body = serde_json::json!({
            "properties": {
                "issuer": spec.issuer,
                "subject": spec.subject,
                "audiences": spec.audiences,
            }
        });
        let answer = self.send(span, OP, Method::PUT, url, Some(body)).await?;
        let wire: WireCredential = answer.json(OP)?;
        Ok(wire.into())
    }

    async fn delete_federated_credential(
        &self,
        resource_group: &str,
        identity: &str,
        name: &str,
    ) -> Result<bool> {
        const OP: &str = op::FEDERATED_IDENTITY_CREDENTIALS_DELETE.name();
        let span = tracing::info_span!(
            "azure.call",
            operation = OP,
            resource_group,
            identity,
            credential = name
        );
        let url = self.credentials_url(resource_group, identity, Some(name));
        let answer = self.send(span, OP, Method::DELETE, url, None).await?;
        // 200: deleted; 204: there was nothing to delete.
        Ok(answer.status != StatusCode::NO_CONTENT)
    }

    async fn list_role_assignments(
        &self,
        principal_id: &str,
        next_link: Option<String>,
    ) -> Result<RoleAssignmentPage> {
        const OP: &str = op::ROLE_ASSIGNMENTS_LIST_FOR_SCOPE.name();
        let span = tracing::info_span!(
            "azure.call",
            operation = OP,
            principal_id,
            next_page = next_link.is_some()
        );
        let url = match &next_link {
            Some(link) => self.next_url(OP, link)?,
            None => {
                let mut url = self.url(
                    &[
                        "subscriptions",
                        self.subscription_id.as_str(),
                        "providers",
                        "Microsoft.Authorization",
                        "roleAssignments",
                    ],
                    AUTHORIZATION_API_VERSION,
                );
                url.query_pairs_mut()
                    .append_pair("$filter", &format!("assignedTo('{principal_id}')"));
                url
            }
        };
        let wire: WireList<WireRoleAssignment> = self.get_json(span, OP, url).await?;
        Ok(RoleAssignmentPage {
            assignments: wire.value.into_iter().map(Into::into).collect(),
            next_link: wire.next_link.filter(|l| !l.is_empty()),
        })
    }

    async fn get_role_definition(&self, role_definition_id: &str) -> Result<RoleDefinition> {
        const OP: &str = op::ROLE_DEFINITIONS_GET_BY_ID.name();
        let span = tracing::info_span!("azure.call", operation = OP, role_definition_id);
        let segments = role_definition_segments(role_definition_id)?;
        let url = self.url(&segments, AUTHORIZATION_API_VERSION);
        let wire: WireRoleDefinition = self.get_json(span, OP, url).await?;
        Ok(wire.into())
    }
}

#[cfg(test)]
mod tests;
