//! porter-identity in the cluster: one `AppIdentity` custom resource per app, reconciled on
//! AWS, Azure, GCP and the cluster, behind a default-deny `IdentityPolicy`.
//!
//! This first part holds the custom resources and the rules a reconcile applies before any
//! cloud call:
//! - [`AppIdentity`] (namespaced, `identity.porter.run/v1alpha1`): an app's services and their
//!   porter.yaml `connections`, the deploy options, and the status a reconcile leaves;
//!   [`AppIdentitySpec::bindings`] reads the spec with porter.yaml's rules.
//! - [`IdentityPolicy`] (cluster-scoped): which namespaces may link which roles, identities
//!   and service accounts; [`policy::check`] denies what no policy names.
//! - [`crd`]: the CRDs, made from these types (`porter-identity-controller crd`).
//! - [`reconcile::reconcile`]: one reconcile of an object — policy, one `Reconciler` run with
//!   the status's applied links as the previous deploy — into its new status and events.
//!
//! The loop around it (kube-runtime's `Controller`, the finalizer, writing the status and the
//! events, leader election, metrics) is not built yet.

pub mod crd;
pub mod policy;
pub mod reconcile;
mod resource;
mod spec;

pub use policy::{Denial, IdentityPolicy, IdentityPolicySpec};
pub use resource::{
    AppIdentity, AppIdentitySpec, AppIdentityStatus, ChangeCounts, Condition, DeployOptions, GROUP,
    ServiceAccountStatus, ServiceSpec, VERSION,
};
