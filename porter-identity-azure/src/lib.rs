//! Azure workload identity for porter-identity: links each Kubernetes workload's service
//! account to a user-assigned managed identity with a **federated identity credential** that
//! trusts the cluster's OIDC issuer for `system:serviceaccount:<namespace>:<service account>`.
//!
//! ```no_run
//! use porter_identity_azure::AzureWorkloadIdentityProvider;
//! use porter_identity_core::{AppManifest, Reconciler};
//!
//! # async fn run() -> porter_identity_core::Result<()> {
//! let azure = AzureWorkloadIdentityProvider::builder()
//!     .aks_cluster("prod-rg", "prod-aks")
//!     .from_env() // AZURE_SUBSCRIPTION_ID and a credential chosen as Azure users expect
//!     .await?;
//! let manifest = AppManifest::from_path("porter.yaml".as_ref())?;
//! // One call per deploy: binds every azureManagedIdentity connection, removes stale ones.
//! let report = Reconciler::new("shop", "default")
//!     .provider(&azure)
//!     .desired(&manifest)
//!     .run()
//!     .await?;
//! println!("{report}");
//! # Ok(()) }
//! ```
//!
//! Public: the provider and its builder, [`api`] the port (the ARM calls the logic needs),
//! [`ArmClient`] the port over HTTP, [`codes`] the verify finding codes,
//! [`credential_name`] the name a workload's credential gets, `fake` (feature `fake`) an
//! in-memory ARM with an HTTP face. Inside: `provider` holds the calls, `links` the batches
//! (one read per identity), `stale` the stale-link search, `verify` the diagnosis, `arm` the
//! HTTP client and the error mapping, `names` the credential names (the ownership marks) and
//! issuer comparison, `lint` the least-privilege checks, `credential` the emulator's static
//! token.

pub mod api;
mod arm;
mod builder;
pub mod codes;
mod credential;
mod links;
mod lint;
mod names;
mod operation;
mod provider;
#[cfg(test)]
mod provider_tests;
mod stale;
mod verify;

#[cfg(feature = "fake")]
pub mod fake;

pub use arm::{ArmClient, ArmClientOptions};
pub use builder::{AzureConfigKey, AzureWorkloadIdentityProviderBuilder};
pub use names::credential_name;
pub use provider::{AzureWorkloadIdentityProvider, CLIENT_ID_ANNOTATION, USE_LABEL};

// The README's Rust example, compiled as a doc test so that what it promises keeps building.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
