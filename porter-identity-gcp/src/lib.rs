//! GKE Workload Identity for porter-identity: lets each Kubernetes workload's service account
//! act as a GCP service account, through the member
//! `serviceAccount:<project>.svc.id.goog[<namespace>/<service account>]` in the
//! `roles/iam.workloadIdentityUser` binding of the service account's IAM policy.
//!
//! ```no_run
//! use porter_identity_gcp::GcpWorkloadIdentityProvider;
//! use porter_identity_core::{AppManifest, Reconciler};
//!
//! # async fn run() -> porter_identity_core::Result<()> {
//! let gcp = GcpWorkloadIdentityProvider::builder()
//!     .gke_cluster("my-project", "us-central1", "prod")
//!     .from_env() // Application Default Credentials, CLOUDSDK_API_ENDPOINT_OVERRIDES_*
//!     .await?;
//! let manifest = AppManifest::from_path("porter.yaml".as_ref())?;
//! // One call per deploy: binds every gcpServiceAccount connection, removes stale members.
//! let report = Reconciler::new("shop", "default")
//!     .provider(&gcp)
//!     .desired(&manifest)
//!     .run()
//!     .await?;
//! println!("{report}");
//! # Ok(()) }
//! ```
//!
//! Public: the provider and its builder, [`api`] the port (the Google Cloud calls the logic
//! needs), [`GoogleApi`] the port over the official Google Cloud Rust clients, [`codes`] the
//! verify finding codes, `fake` (feature `fake`) an in-memory IAM, GKE and Resource Manager
//! with an HTTP face. Inside: `provider` holds the reads, `links` the coalesced
//! read-modify-write and the batches, `verify` the diagnosis, `errors` the one error mapping,
//! `names` the pool, member and resource names, `policy` the edits of an IAM policy, `lint`
//! the least-privilege checks.

pub mod api;
mod builder;
pub mod codes;
mod errors;
mod google;
mod links;
mod lint;
mod names;
mod node_pools;
mod operation;
mod policy;
mod provider;
#[cfg(test)]
mod provider_tests;
mod verify;

#[cfg(feature = "fake")]
pub mod fake;

pub use builder::{GcpConfigKey, GcpWorkloadIdentityProviderBuilder};
pub use google::{Endpoints, GoogleApi};
pub use names::WORKLOAD_IDENTITY_USER;
pub use node_pools::NodePoolChange;
pub use provider::{GCP_SERVICE_ACCOUNT_ANNOTATION, GcpWorkloadIdentityProvider};

/// Installs rustls on ring as the process's default TLS provider, unless one is installed
/// already. The Google clients are built without their default provider (rustls on aws-lc,
/// which would build AWS's crypto library into a GCP-only build) and then expect the
/// application to install one: this is that step, done before any client or credential is
/// built.
pub(crate) fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

// The README's Rust example, compiled as a doc test so that what it promises keeps building.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
