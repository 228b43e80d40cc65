//! The core of porter-identity: the model every cloud provider shares, with no cloud SDK and
//! no HTTP client.
//!
//! - [`AppManifest`] reads the `services[].connections[]` of a porter.yaml into typed,
//!   validated [`Connection`]s.
//! - [`Workload`] and [`Binding`] say who gets which identity.
//! - [`WorkloadIdentityProvider`] is what each cloud implements: `plan`, `bind`, `unbind`,
//!   `verify`, returning [`Plan`], [`BindOutcome`] (with the [`ServiceAccountPatch`] the
//!   Kubernetes side needs), [`UnbindOutcome`] and [`VerifyReport`].
//! - [`Error`] has an [`ErrorKind`] and says what to fix; [`RetryPolicy`] retries what is
//!   retryable.
//! - With feature `testing`, [`testing`] is the conformance suite every provider passes.
//!
//! ```
//! use porter_identity_core::{AppManifest, Cloud};
//!
//! let manifest = AppManifest::from_yaml_str(r#"
//! services:
//!   - name: api
//!     connections:
//!       - type: awsRole
//!         role: arn:aws:iam::123456789012:role/shop-api
//! "#)?;
//! for binding in manifest.bindings_for(Cloud::Aws, "shop", "default")? {
//!     println!("{binding}"); // default/shop-api -> awsRole arn:aws:iam::123456789012:role/shop-api
//! }
//! # Ok::<(), porter_identity_core::Error>(())
//! ```

mod binding;
mod cloud;
mod connection;
mod error;
mod manifest;
mod names;
mod patch;
mod provider;
mod retry;
mod verify;
mod yaml;

#[cfg(feature = "testing")]
pub mod testing;

pub use binding::{Binding, Workload};
pub use cloud::Cloud;
pub use connection::Connection;
pub use error::{Error, ErrorKind, ManifestError, Result, SourceLocation};
pub use manifest::{AppManifest, MAX_MANIFEST_BYTES, MAX_MANIFEST_DEPTH, Service};
pub use names::{
    AwsPartition, AzureIdentityName, AzureResourceGroup, GcpServiceAccountEmail, KubernetesName,
    Namespace, RoleRef, ServiceAccountName,
};
pub use patch::ServiceAccountPatch;
pub use provider::{
    BindChange, BindOutcome, Plan, PlanAction, UnbindOutcome, WorkloadIdentityProvider,
    ensure_cloud,
};
pub use retry::RetryPolicy;
pub use verify::{Finding, Severity, VerifyReport};
