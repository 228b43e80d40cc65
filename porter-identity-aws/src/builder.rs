//! `AwsPodIdentityProviderBuilder`: how a provider gets its cluster, credentials and retries.

use std::sync::Arc;

use porter_identity_core::{Cloud, DEFAULT_CONCURRENCY, Error, ErrorKind, Result, RetryPolicy};

use crate::AwsPodIdentityProvider;
use crate::api::EksIamApi;
use crate::sdk::SdkApi;

/// Builds an [`AwsPodIdentityProvider`].
///
/// ```no_run
/// # async fn run() -> porter_identity_core::Result<()> {
/// use porter_identity_aws::AwsPodIdentityProvider;
/// use porter_identity_core::RetryPolicy;
///
/// // From the environment: aws-config's default credential chain (env, profile, SSO, web
/// // identity, IMDS…) and region; AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_EKS and
/// // AWS_ENDPOINT_URL_IAM override the endpoints.
/// let aws = AwsPodIdentityProvider::builder()
///     .cluster("prod-us-east-1")
///     .retry_policy(RetryPolicy::default().max_attempts(8))
///     .from_env()
///     .await?;
///
/// // From an SdkConfig the caller already has.
/// let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
/// let aws = AwsPodIdentityProvider::builder()
///     .cluster("prod-us-east-1")
///     .sdk_config(&config)
///     .build().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
#[must_use]
pub struct AwsPodIdentityProviderBuilder {
    cluster: Option<String>,
    retry: Option<RetryPolicy>,
    concurrency: Option<usize>,
    api: Option<Arc<dyn EksIamApi>>,
}

impl AwsPodIdentityProviderBuilder {
    /// The EKS cluster (required).
    pub fn cluster(mut self, name: impl Into<String>) -> Self {
        self.cluster = Some(name.into());
        self
    }

    /// How cloud calls are retried (default: [`RetryPolicy::default`]).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// How many EKS and IAM calls the provider makes at once, across everything it does
    /// (default [`DEFAULT_CONCURRENCY`]). Lower it when the account's EKS API is throttled.
    pub fn concurrency(mut self, calls: usize) -> Self {
        self.concurrency = Some(calls);
        self
    }

    /// Uses the AWS SDK with this configuration (credentials, region, endpoints), with the
    /// SDK's own retries turned off: the provider's [`RetryPolicy`] is the one retry layer.
    pub fn sdk_config(mut self, config: &aws_config::SdkConfig) -> Self {
        self.api = Some(Arc::new(SdkApi::from_sdk_config(config)));
        self
    }

    /// Uses any implementation of the port: a fake, a mock, or your own client.
    pub fn api(mut self, api: impl EksIamApi + 'static) -> Self {
        self.api = Some(Arc::new(api));
        self
    }

    /// Loads the AWS configuration from the environment and builds the provider. The SDK's
    /// own retries are turned off (see [`sdk_config`](Self::sdk_config)).
    pub async fn from_env(self) -> Result<AwsPodIdentityProvider> {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        if config.region().is_none() {
            return Err(Error::cloud(
                ErrorKind::InvalidInput,
                Cloud::Aws,
                "LoadConfig",
                "no AWS region is configured",
            )
            .with_fix("set AWS_REGION (or `region` in the AWS profile) to the cluster's region"));
        }
        self.sdk_config(&config).build().await
    }

    /// Builds the provider. Fails when the cluster or the API is missing or invalid.
    ///
    /// Async like every builder of porter-identity (see the core README), though building
    /// this one awaits nothing.
    pub async fn build(self) -> Result<AwsPodIdentityProvider> {
        let Some(cluster) = self.cluster else {
            return Err(Error::invalid_input(
                "cluster",
                "is not set",
                "call .cluster(\"<EKS cluster name>\") on the builder",
            ));
        };
        let Some(api) = self.api else {
            return Err(Error::invalid_input(
                "api",
                "is not set",
                "call .from_env().await, .sdk_config(&config) or .api(..) on the builder",
            ));
        };
        AwsPodIdentityProvider::with_concurrency(
            &cluster,
            api,
            self.retry.unwrap_or_default(),
            self.concurrency.unwrap_or(DEFAULT_CONCURRENCY),
        )
    }
}
