//! `AwsPodIdentityProviderBuilder`: how a provider gets its cluster, credentials and retries.

use std::collections::BTreeMap;
use std::sync::Arc;

use porter_identity_core::{
    AwsRoleMode, Cloud, DEFAULT_CONCURRENCY, Error, ErrorKind, Result, RetryPolicy,
};

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
    target_accounts: BTreeMap<String, Arc<dyn EksIamApi>>,
    target_profiles: BTreeMap<String, String>,
    mode: AwsRoleMode,
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

    /// Credentials that can read IAM roles of `account`, where target roles live (a role
    /// chained into with `targetRole`). Bind then checks, before any write, that each target
    /// role of that account trusts the association's role. Without them, a target role in an
    /// account other than the cluster's is "not checked from here": the bind goes on and says
    /// which statements the target needs. Only IAM GetRole is called with them.
    ///
    /// ```no_run
    /// # async fn run() -> porter_identity_core::Result<()> {
    /// use porter_identity_aws::AwsPodIdentityProvider;
    /// let data_account = aws_config::from_env().profile_name("data-readonly").load().await;
    /// let aws = AwsPodIdentityProvider::builder()
    ///     .cluster("prod-us-east-1")
    ///     .target_account("444455556666", &data_account)
    ///     .from_env()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn target_account(self, account_id: &str, config: &aws_config::SdkConfig) -> Self {
        self.target_account_api(account_id, SdkApi::from_sdk_config(config))
    }

    /// With [`from_env`](Self::from_env): the AWS profile (of the shared config and
    /// credentials files) whose credentials read the IAM roles of `account`, loaded like the
    /// default one (region, endpoints), as [`target_account`](Self::target_account) takes them.
    /// The CLI's `--aws-target-profile ACCOUNT=PROFILE`.
    pub fn target_account_profile(mut self, account_id: &str, profile: &str) -> Self {
        self.target_profiles
            .insert(account_id.to_owned(), profile.to_owned());
        self
    }

    /// [`target_account`](Self::target_account) with any implementation of the port (a fake of
    /// the other account, a mock).
    pub fn target_account_api(mut self, account_id: &str, api: impl EksIamApi + 'static) -> Self {
        self.target_accounts
            .insert(account_id.to_owned(), Arc::new(api));
        self
    }

    /// How pods get their roles when a connection does not say (`mode:` in porter.yaml):
    /// [`AwsRoleMode::PodIdentity`] (the default) or [`AwsRoleMode::Irsa`].
    pub fn mode(mut self, mode: AwsRoleMode) -> Self {
        self.mode = mode;
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
        let mut builder = self.sdk_config(&config);
        for (account, profile) in std::mem::take(&mut builder.target_profiles) {
            // The profile's own credentials: the default chain would take AWS_ACCESS_KEY_ID
            // and the like from the environment first, which are the cluster account's.
            let loaded = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .profile_name(&profile)
                .load()
                .await;
            let provider_config = aws_config::provider_config::ProviderConfig::default()
                .with_region(loaded.region().cloned())
                .with_behavior_version(Some(aws_config::BehaviorVersion::latest()));
            let credentials = aws_config::profile::ProfileFileCredentialsProvider::builder()
                .configure(&provider_config)
                .profile_name(&profile)
                .build();
            let other = loaded
                .into_builder()
                .credentials_provider(aws_sdk_iam::config::SharedCredentialsProvider::new(
                    credentials,
                ))
                .build();
            builder = builder.target_account(&account, &other);
        }
        builder.build().await
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
        if !self.target_profiles.is_empty() {
            return Err(Error::invalid_input(
                "target_account_profile",
                "takes effect only with .from_env()",
                "build with .from_env().await, or load the profile yourself and pass it with .target_account(id, &config)",
            ));
        }
        if let Some(bad) = self
            .target_accounts
            .keys()
            .find(|a| a.len() != 12 || !a.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(Error::invalid_input(
                "target_account",
                format!("{bad:?} is not an AWS account ID"),
                "pass the 12-digit ID of the account the target roles are in, as in their ARNs",
            ));
        }
        let mut provider = AwsPodIdentityProvider::with_concurrency(
            &cluster,
            api,
            self.retry.unwrap_or_default(),
            self.concurrency.unwrap_or(DEFAULT_CONCURRENCY),
        )?;
        provider.target_accounts = self.target_accounts;
        provider.mode = self.mode;
        Ok(provider)
    }
}
