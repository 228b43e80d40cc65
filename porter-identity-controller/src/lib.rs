//! porter-identity in the cluster: one `AppIdentity` custom resource per app, reconciled
//! continuously on AWS, Azure, GCP and the cluster, behind a default-deny `IdentityPolicy`.
//!
//! - [`AppIdentity`] (namespaced, `identity.porter.run/v1alpha1`): an app's services and their
//!   porter.yaml `connections`, the deploy options, and the status a reconcile leaves;
//!   [`AppIdentitySpec::bindings`] reads the spec with porter.yaml's rules.
//! - [`IdentityPolicy`] (cluster-scoped): which namespaces may link which roles, identities
//!   and service accounts; [`policy::check`] denies what no policy names.
//! - [`crd`]: the CRDs, made from these types (`porter-identity-controller crd`).
//! - [`reconcile`]: one reconcile of an object — policy, one `Reconciler` run with the status's
//!   applied links as the previous deploy — into its new status and events; and the teardown
//!   of a deleted one.
//! - [`runner::IdentityController`]: the loop — kube-runtime's `Controller` over every
//!   `AppIdentity`, the finalizer, status and Event writes, resyncs with jitter, backoff, the
//!   per-cloud [`limits`], behind a Lease ([`lease`]); [`metrics`] and [`health`] for
//!   `/metrics`, `/healthz` and `/readyz`.
//!
//! ```no_run
//! use std::sync::Arc;
//! use porter_identity::gcp::GcpWorkloadIdentityProvider;
//! use porter_identity::kube::Cluster;
//! use porter_identity_controller::runner::{IdentityController, Settings};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let cluster = Cluster::builder().from_env().await?;
//! let gcp = GcpWorkloadIdentityProvider::builder()
//!     .gke_cluster("shop-123456", "us-central1", "prod")
//!     .from_env()
//!     .await?;
//! IdentityController::new(cluster, Settings::default())
//!     .provider(Arc::new(gcp))
//!     .run(async {
//!         let _ = tokio::signal::ctrl_c().await;
//!     })
//!     .await;
//! # Ok(()) }
//! ```

pub mod crd;
pub mod health;
pub mod lease;
pub mod limits;
pub mod metrics;
pub mod policy;
pub mod reconcile;
mod resource;
pub mod runner;
mod spec;

pub use policy::{Denial, IdentityPolicy, IdentityPolicySpec};
pub use resource::{
    AppIdentity, AppIdentitySpec, AppIdentityStatus, ChangeCounts, Condition, DeployOptions, GROUP,
    ServiceAccountStatus, ServiceSpec, VERSION,
};
