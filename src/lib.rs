//! # porter-identity
//!
//! Gives each Kubernetes workload a cloud identity through the cloud's own workload-identity
//! mechanism: EKS Pod Identity associations on AWS, federated identity credentials on Azure
//! managed identities, `roles/iam.workloadIdentityUser` bindings on GCP service accounts.
//! No static credentials anywhere.
//!
//! Everything of [`porter_identity_core`] is re-exported here; each cloud is a module behind
//! its feature:
//!
//! | feature | module | what it adds |
//! |---|---|---|
//! | `aws` | `porter_identity::aws` | `AwsPodIdentityProvider`: EKS Pod Identity associations |
//! | `azure` | `porter_identity::azure` | `AzureWorkloadIdentityProvider`: federated identity credentials on managed identities |
//! | `gcp` | `porter_identity::gcp` | `GcpWorkloadIdentityProvider`: `roles/iam.workloadIdentityUser` bindings on GCP service accounts (GKE Workload Identity) |
//! | `kube` | `porter_identity::kube` | the Kubernetes side on kube-rs: the Kubernetes step of a reconcile (ServiceAccount annotations by server-side apply, the Azure pod label, restarts), its findings, the IRSA migration, the GKE node-pool preflight |
//! | `fake` | `aws::fake`, `azure::fake`, `gcp::fake`, `kube::fake` | in-memory clouds and Kubernetes API for tests and demos, no account needed |
//! | `testing` | `testing` | the conformance suite every provider passes |
//! | `serde` | — | `Serialize` for `ReconcileReport`: its stable JSON, for scripts and CI |
//!
//! A deploy is one call: a [`Reconciler`] binds the app's desired set on every cloud and
//! removes the links the app no longer wants (only those provably its own).
//!
//! ```
//! use porter_identity::{AppManifest, Cloud};
//!
//! let manifest = AppManifest::from_yaml_str(r#"
//! services:
//!   - name: api
//!     connections:
//!       - type: awsRole
//!         role: shop-api-role
//! "#)?;
//! let bindings = manifest.bindings_for(Cloud::Aws, "shop", "default")?;
//! assert_eq!(bindings.len(), 1);
//! # Ok::<(), porter_identity::Error>(())
//! ```
//!
//! ```no_run
//! # #[cfg(feature = "aws")]
//! # async fn deploy() -> porter_identity::Result<()> {
//! use porter_identity::{AppManifest, Reconciler};
//! use porter_identity::aws::AwsPodIdentityProvider;
//!
//! let aws = AwsPodIdentityProvider::builder().cluster("prod-us-east-1").from_env().await?;
//! let now = AppManifest::from_path("porter.yaml".as_ref())?;
//! let before = AppManifest::from_path("porter.previous.yaml".as_ref())?;
//! let report = Reconciler::new("shop", "production")
//!     .provider(&aws)
//!     .desired(&now)
//!     .previous(&before)
//!     .run()
//!     .await?;
//! println!("{report}");
//! # Ok(()) }
//! ```

pub use porter_identity_core::*;

/// EKS Pod Identity (feature `aws`).
#[cfg(feature = "aws")]
pub use porter_identity_aws as aws;

/// Federated identity credentials on Azure user-assigned managed identities (feature `azure`).
#[cfg(feature = "azure")]
pub use porter_identity_azure as azure;

/// GKE Workload Identity bindings on GCP service accounts (feature `gcp`).
#[cfg(feature = "gcp")]
pub use porter_identity_gcp as gcp;

/// The Kubernetes side (feature `kube`): the cluster through kube-rs, the Kubernetes step of a
/// reconcile (annotations, the Azure pod label, restarts), its findings, the IRSA migration and
/// the GKE node-pool preflight.
#[cfg(feature = "kube")]
pub use porter_identity_kube as kube;

// The README's and the guide's Rust examples, compiled as doc tests so that what they promise
// keeps building.
#[cfg(all(doctest, feature = "aws", feature = "azure", feature = "gcp"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[cfg(all(doctest, feature = "aws", feature = "azure", feature = "gcp"))]
#[doc = include_str!("../docs/guide.md")]
struct GuideDoctests;
