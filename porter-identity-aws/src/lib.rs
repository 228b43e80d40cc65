//! EKS Pod Identity for porter-identity: links each Kubernetes workload's service account to
//! an IAM role with an EKS Pod Identity association.
//!
//! ```no_run
//! use porter_identity_aws::AwsPodIdentityProvider;
//! use porter_identity_core::{AppManifest, Reconciler};
//!
//! # async fn run() -> porter_identity_core::Result<()> {
//! let aws = AwsPodIdentityProvider::builder()
//!     .cluster("prod-us-east-1")
//!     .from_env() // default credential chain and region; AWS_ENDPOINT_URL(_EKS|_IAM) honoured
//!     .await?;
//! let manifest = AppManifest::from_path("porter.yaml".as_ref())?;
//! // One call per deploy: binds every awsRole connection, removes the app's stale associations.
//! let report = Reconciler::new("shop", "default")
//!     .provider(&aws)
//!     .desired(&manifest)
//!     .run()
//!     .await?;
//! println!("{report}");
//! # Ok(()) }
//! ```
//!
//! Public: the provider and its builder, [`api`] the port (the EKS and IAM calls the logic
//! needs), [`SdkApi`] the port over the AWS SDK, [`codes`] the verify finding codes, the
//! ownership tags, `fake` (feature `fake`) an in-memory EKS + IAM. Inside: `provider` holds the
//! calls, `links` the batches (one listing per namespace), `stale` the stale-link search,
//! `ownership` the tags and the guard, `verify` the diagnosis, `policy` and `trust` read IAM
//! policy documents, `lint` the least-privilege checks.

pub mod api;
mod builder;
mod chain;
pub mod codes;
mod irsa;
mod irsa_link;
mod links;
mod lint;
mod operation;
mod ownership;
mod passed;
mod policy;
mod provider;
#[cfg(test)]
mod provider_tests;
mod sdk;
mod stale;
mod target_role;
mod trust;
mod verify;

#[cfg(feature = "fake")]
pub mod fake;

pub use builder::AwsPodIdentityProviderBuilder;
pub use ownership::{MANAGED_BY_VALUE, TAG_APP, TAG_MANAGED_BY, TAG_SERVICE};
pub use provider::AwsPodIdentityProvider;
pub use sdk::SdkApi;

// The README's Rust example, compiled as a doc test so that what it promises keeps building.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
