//! `GcpWorkloadIdentityProviderBuilder`: how a provider gets its cluster (or workload pool),
//! credentials, endpoints and retries — from code, or from the environment the way Google
//! Cloud users expect.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use google_cloud_auth::credentials::Credentials;
use porter_identity_core::{Cloud, Error, ErrorKind, Result, RetryPolicy};
use url::Url;

use crate::GcpWorkloadIdentityProvider;
use crate::api::{ClusterRef, GcpApi};
use crate::google::{Endpoints, GoogleApi};
use crate::names::{check_cluster, check_workload_pool};
use crate::provider::PoolSource;

/// A setting `from_env` reads, by the environment variable Google Cloud's own tools use.
/// Tests and callers can set the same settings with
/// [`GcpWorkloadIdentityProviderBuilder::with_config`] instead of the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum GcpConfigKey {
    /// `CLOUDSDK_API_ENDPOINT_OVERRIDES_IAM`: the IAM API (`https://iam.googleapis.com/` by
    /// default; `http://127.0.0.1:PORT/` for an emulator).
    IamEndpoint,
    /// `CLOUDSDK_API_ENDPOINT_OVERRIDES_CONTAINER`: the GKE API.
    ContainerEndpoint,
    /// `CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDRESOURCEMANAGER`: the Resource Manager API.
    ResourceManagerEndpoint,
    /// `GOOGLE_APPLICATION_CREDENTIALS`: a credentials file for Application Default
    /// Credentials (a service-account key file signs self-signed JWTs; no token endpoint).
    ApplicationCredentials,
}

impl GcpConfigKey {
    /// Every key, in the order `from_env` reads them.
    pub const ALL: [GcpConfigKey; 4] = [
        GcpConfigKey::IamEndpoint,
        GcpConfigKey::ContainerEndpoint,
        GcpConfigKey::ResourceManagerEndpoint,
        GcpConfigKey::ApplicationCredentials,
    ];

    /// The environment variable.
    pub const fn env_var(self) -> &'static str {
        match self {
            GcpConfigKey::IamEndpoint => "CLOUDSDK_API_ENDPOINT_OVERRIDES_IAM",
            GcpConfigKey::ContainerEndpoint => "CLOUDSDK_API_ENDPOINT_OVERRIDES_CONTAINER",
            GcpConfigKey::ResourceManagerEndpoint => {
                "CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDRESOURCEMANAGER"
            }
            GcpConfigKey::ApplicationCredentials => "GOOGLE_APPLICATION_CREDENTIALS",
        }
    }
}

impl fmt::Display for GcpConfigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.env_var())
    }
}

/// Builds a [`GcpWorkloadIdentityProvider`].
///
/// ```no_run
/// # async fn run() -> porter_identity_core::Result<()> {
/// use porter_identity_gcp::GcpWorkloadIdentityProvider;
/// let gcp = GcpWorkloadIdentityProvider::builder()
///     .gke_cluster("my-project", "us-central1", "prod")
///     .from_env() // Application Default Credentials; CLOUDSDK_API_ENDPOINT_OVERRIDES_*
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct GcpWorkloadIdentityProviderBuilder {
    cluster: Option<ClusterRef>,
    pool: Option<String>,
    credentials: Option<Credentials>,
    retry: Option<RetryPolicy>,
    concurrency: Option<usize>,
    api: Option<Arc<dyn GcpApi>>,
    config: BTreeMap<GcpConfigKey, String>,
}

impl fmt::Debug for GcpWorkloadIdentityProviderBuilder {
    /// Settings without the credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcpWorkloadIdentityProviderBuilder")
            .field("cluster", &self.cluster)
            .field("workload_pool", &self.pool)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<redacted>"),
            )
            .field("retry", &self.retry)
            .field("concurrency", &self.concurrency)
            .field("api", &self.api)
            .field("config", &self.config)
            .finish()
    }
}

impl GcpWorkloadIdentityProviderBuilder {
    /// The GKE cluster whose workload pool the members are in; read once per provider.
    pub fn gke_cluster(
        mut self,
        project: impl Into<String>,
        location: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        self.cluster = Some(ClusterRef {
            project: project.into(),
            location: location.into(),
            name: name.into(),
        });
        self
    }

    /// The workload pool, given instead of a GKE cluster (a fleet's pool, a cluster that is not
    /// GKE): no cluster is read, and verify does not check node pools.
    pub fn workload_pool(mut self, pool: impl Into<String>) -> Self {
        self.pool = Some(pool.into());
        self
    }

    /// The credentials every call uses (otherwise Application Default Credentials).
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// The retry policy of every call (the clients' own retries are off).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// How many calls the provider makes at once.
    pub fn concurrency(mut self, calls: usize) -> Self {
        self.concurrency = Some(calls);
        self
    }

    /// Any implementation of the port instead of the Google clients (the fake, a mock).
    pub fn api(mut self, api: impl GcpApi + 'static) -> Self {
        self.api = Some(Arc::new(api));
        self
    }

    /// Sets one setting as `from_env` would read it from its environment variable.
    pub fn with_config(mut self, key: GcpConfigKey, value: impl Into<String>) -> Self {
        self.config.insert(key, value.into());
        self
    }

    /// Reads every [`GcpConfigKey`] that is set (and not empty) in the environment, then
    /// builds. Settings given explicitly win over the environment. Without credentials,
    /// Application Default Credentials are used (`GOOGLE_APPLICATION_CREDENTIALS`, the gcloud
    /// ADC file, the metadata server).
    pub async fn from_env(mut self) -> Result<GcpWorkloadIdentityProvider> {
        for key in GcpConfigKey::ALL {
            if let Ok(value) = std::env::var(key.env_var())
                && !value.trim().is_empty()
                && !self.config.contains_key(&key)
            {
                self.config.insert(key, value);
            }
        }
        self.build().await
    }

    /// Builds the provider. Fails, naming the setting, when the cluster or pool is missing or
    /// invalid, an endpoint is not https (or http on this machine), or no credentials can be
    /// made.
    pub async fn build(self) -> Result<GcpWorkloadIdentityProvider> {
        let source = match (&self.cluster, &self.pool) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid_input(
                    "workload_pool",
                    "is set together with gke_cluster",
                    "give either .gke_cluster(project, location, name) (the pool is read from it) or .workload_pool(pool), not both",
                ));
            }
            (Some(cluster), None) => {
                check_cluster(cluster)?;
                PoolSource::Gke(cluster.clone())
            }
            (None, Some(pool)) => {
                check_workload_pool(pool)?;
                PoolSource::Explicit(pool.clone())
            }
            (None, None) => {
                return Err(Error::invalid_input(
                    "cluster",
                    "is not set",
                    "call .gke_cluster(project, location, name) for a GKE cluster, or .workload_pool(pool) for a fleet or another cluster",
                ));
            }
        };
        let retry = self.retry.clone().unwrap_or_default();
        let api: Arc<dyn GcpApi> = match &self.api {
            Some(api) => api.clone(),
            None => Arc::new(self.google_api(&retry).await?),
        };
        Ok(GcpWorkloadIdentityProvider::new(
            api,
            source,
            retry,
            self.concurrency,
        ))
    }

    fn setting(&self, key: GcpConfigKey) -> Option<&str> {
        self.config
            .get(&key)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    fn endpoints(&self) -> Result<Endpoints> {
        let endpoint = |key| {
            self.setting(key)
                .map(|v| check_endpoint(key, v))
                .transpose()
        };
        Ok(Endpoints {
            iam: endpoint(GcpConfigKey::IamEndpoint)?,
            container: endpoint(GcpConfigKey::ContainerEndpoint)?,
            resource_manager: endpoint(GcpConfigKey::ResourceManagerEndpoint)?,
        })
    }

    async fn google_api(&self, retry: &RetryPolicy) -> Result<GoogleApi> {
        let endpoints = self.endpoints()?;
        let credentials = match &self.credentials {
            Some(c) => c.clone(),
            None => self.application_default_credentials()?,
        };
        GoogleApi::new(credentials, endpoints, retry.get_attempt_timeout()).await
    }

    /// A service-account key file given as the setting is read here (google-cloud-auth signs
    /// self-signed JWTs with it); otherwise ADC finds the credentials itself.
    fn application_default_credentials(&self) -> Result<Credentials> {
        crate::install_crypto_provider();
        let key = GcpConfigKey::ApplicationCredentials;
        let fail = |problem: String, e: Option<google_cloud_auth::build_errors::Error>| {
            let err = Error::cloud(ErrorKind::Unauthenticated, Cloud::Gcp, "credentials", problem)
                .with_fix("point GOOGLE_APPLICATION_CREDENTIALS at a valid credentials file, run `gcloud auth application-default login`, or run where the metadata server gives credentials");
            match e {
                Some(e) => err.with_source(e),
                None => err,
            }
        };
        if let Some(path) = self.setting(key) {
            let text = std::fs::read_to_string(path).map_err(|e| {
                fail(
                    format!("{key} names {path:?}, which cannot be read: {e}"),
                    None,
                )
            })?;
            let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                fail(
                    format!("{key} names {path:?}, which is not JSON: {e}"),
                    None,
                )
            })?;
            if json.get("type").and_then(|t| t.as_str()) == Some("service_account") {
                return google_cloud_auth::credentials::service_account::Builder::new(json)
                    .build()
                    .map_err(|e| {
                        fail(
                            format!("the service-account key file {path:?} is not usable"),
                            Some(e),
                        )
                    });
            }
            if std::env::var(key.env_var()).ok().as_deref() != Some(path) {
                return Err(fail(
                    format!(
                        "{key} given with with_config names {path:?}, which is not a service-account key file"
                    ),
                    None,
                ));
            }
        }
        google_cloud_auth::credentials::Builder::default()
            .build()
            .map_err(|e| {
                fail(
                    "no Application Default Credentials were found".to_owned(),
                    Some(e),
                )
            })
    }
}

/// Checks an endpoint override: https, or http on a loopback address (an emulator); a bare
/// base URL. gcloud's overrides end in `/`; the clients want no trailing `/`.
fn check_endpoint(key: GcpConfigKey, value: &str) -> Result<String> {
    let fix = "give a base URL such as https://iam.googleapis.com/, or http://127.0.0.1:PORT/ for a local emulator";
    let url = Url::parse(value).map_err(|e| {
        Error::invalid_input(key.env_var(), format!("{value:?} is not a URL ({e})"), fix)
    })?;
    let loopback = url
        .host_str()
        .is_some_and(porter_identity_core::provider::is_loopback_host);
    if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
        return Err(Error::invalid_input(
            key.env_var(),
            format!(
                "{value:?} is not https; credentials are only sent over TLS, or to this machine"
            ),
            fix,
        ));
    }
    if url.cannot_be_a_base()
        || url.query().is_some()
        || url.fragment().is_some()
        || url.path().trim_matches('/').contains('/')
    {
        return Err(Error::invalid_input(
            key.env_var(),
            format!("{value:?} must be a bare base URL (no path, query or fragment)"),
            fix,
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_https_or_loopback_http_and_lose_their_trailing_slash() {
        let k = GcpConfigKey::IamEndpoint;
        assert_eq!(
            check_endpoint(k, "https://iam.googleapis.com/").expect("https"),
            "https://iam.googleapis.com"
        );
        assert_eq!(
            check_endpoint(k, "http://127.0.0.1:8085/").expect("loopback"),
            "http://127.0.0.1:8085"
        );
        for bad in [
            "http://iam.example.com/",
            "ftp://127.0.0.1/",
            "not a url",
            "https://iam.googleapis.com/?x=1",
            "https://iam.googleapis.com/a/b/",
        ] {
            let e = check_endpoint(k, bad).expect_err(bad);
            assert!(
                e.to_string()
                    .contains("CLOUDSDK_API_ENDPOINT_OVERRIDES_IAM"),
                "names the variable: {e}"
            );
        }
    }

    #[tokio::test]
    async fn the_cluster_or_the_pool_is_required_and_not_both() {
        let e = GcpWorkloadIdentityProvider::builder()
            .build()
            .await
            .expect_err("nothing");
        assert!(e.to_string().contains("cluster"), "{e}");
        let e = GcpWorkloadIdentityProvider::builder()
            .gke_cluster("demo-project", "us-central1", "prod")
            .workload_pool("demo-project.svc.id.goog")
            .build()
            .await
            .expect_err("both");
        assert!(e.to_string().contains("workload_pool"), "{e}");
        let e = GcpWorkloadIdentityProvider::builder()
            .gke_cluster("demo-project", "us-central1", "prod/../x")
            .build()
            .await
            .expect_err("bad name");
        assert!(e.to_string().contains("gke_cluster.name"), "{e}");
    }

    #[tokio::test]
    async fn a_key_file_that_is_not_there_names_the_variable() {
        let e = GcpWorkloadIdentityProvider::builder()
            .workload_pool("demo-project.svc.id.goog")
            .with_config(
                GcpConfigKey::ApplicationCredentials,
                "/nonexistent/key.json",
            )
            .with_config(GcpConfigKey::IamEndpoint, "http://127.0.0.1:9/")
            .build()
            .await
            .expect_err("missing file");
        assert_eq!(e.kind(), ErrorKind::Unauthenticated);
        assert!(
            e.to_string().contains("GOOGLE_APPLICATION_CREDENTIALS"),
            "{e}"
        );
    }

    #[test]
    fn debug_redacts_the_credentials() {
        let creds = google_cloud_auth::credentials::anonymous::Builder::new().build();
        let b = GcpWorkloadIdentityProvider::builder()
            .workload_pool("demo-project.svc.id.goog")
            .credentials(creds);
        let shown = format!("{b:?}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }
}
