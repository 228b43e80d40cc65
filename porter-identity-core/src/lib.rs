//! The core of porter-identity: the model every cloud provider shares, with no cloud SDK and
//! no HTTP client.
//!
//! - [`AppManifest`] reads the `services[].connections[]` of a porter.yaml into typed,
//!   validated [`Connection`]s.
//! - [`Workload`] and [`Binding`] say who gets which identity.
//! - [`WorkloadIdentityProvider`] is what each cloud implements: batches of `plan`, `bind`,
//!   `unbind` and `verify` in a [`RunContext`], returning [`Plan`], [`BindOutcome`] (with the
//!   [`ServiceAccountPatch`] the Kubernetes side needs), [`UnbindOutcome`] and
//!   [`VerifyReport`]. What a provider author needs beside it is in [`provider`].
//! - [`Error`] has an [`ErrorKind`] and says what to fix; [`RetryPolicy`] retries what is
//!   retryable.
//! - With feature `testing`, [`testing`] is the conformance suite every provider passes, and
//!   [`testing::FakeCalls`] and [`testing::FakeServer`] the call counters, fault knobs and
//!   HTTP-face handle every provider's fake shares.
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

mod app_verify;
mod aws_role_options;
mod batch;
mod binding;
mod calls;
mod cloud;
mod connection;
mod error;
#[cfg(feature = "serde")]
mod json;
mod kubernetes_step;
mod loopback;
mod manifest;
mod names;
mod paging;
mod patch;
pub mod provider;
mod provider_trait;
mod reconcile;
mod report;
mod retry;
mod run;
mod stale;
mod streak;
mod verify;
mod wildcard;
mod yaml;

#[cfg(feature = "testing")]
mod fake_calls;
#[cfg(feature = "testing")]
mod fake_server;
#[cfg(feature = "testing")]
pub mod testing;

pub use app_verify::{AppVerifyReport, WorkloadVerify};
pub use aws_role_options::{AwsRoleMode, AwsRoleOptions, MAX_SESSION_POLICY_CHARS};
pub use binding::{Binding, LinkKey, Workload};
pub use calls::{CallCounts, DEFAULT_CONCURRENCY, Operation};
pub use cloud::Cloud;
pub use connection::Connection;
pub use error::{Error, ErrorKind, ManifestError, Result, SourceLocation, Target};
pub use kubernetes_step::KubernetesStep;
pub use manifest::{AppManifest, MAX_MANIFEST_BYTES, MAX_MANIFEST_DEPTH, Service};
pub use names::{
    AwsPartition, AzureIdentityName, AzureResourceGroup, GcpServiceAccountEmail, KubernetesName,
    Namespace, RoleRef, ServiceAccountName,
};
pub use patch::ServiceAccountPatch;
pub use provider_trait::{
    BindChange, BindOutcome, Plan, PlanAction, UnbindOutcome, WorkloadIdentityProvider,
};
pub use reconcile::Reconciler;
pub use report::{
    ChangeCounts, ClusterFacts, ClusterStep, KeptLink, LinkChange, ReconcileReport, RemovedLink,
    ServiceAccountNeeds, WorkloadRestart, WorkloadResult,
};
pub use retry::RetryPolicy;
pub use run::{RunContext, RunMode};
pub use stale::{Evidence, StaleAction, StaleLink, StaleQuery};
pub use verify::{Finding, Severity, VerifyReport};

// The README's Rust examples, compiled as doc tests so that what it promises keeps building.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
