//! The Kubernetes side of porter-identity: what each workload's ServiceAccount and pods need
//! for the cloud link to work, diagnosed across clouds.
//!
//! The clouds' providers link the cloud side and return a
//! [`ServiceAccountPatch`](porter_identity_core::ServiceAccountPatch) — what the cluster needs.
//! Most "my pod still gets AccessDenied" reports come from the cluster side: the annotation or
//! the Azure pod label is missing, pods started before the link and were never restarted, a
//! stale IRSA annotation wins over EKS Pod Identity, or pods run on a GKE node pool without
//! `GKE_METADATA`. This crate applies what it owns and finds the rest, through kube-rs:
//!
//! - [`Cluster`]: the kube-rs client (from the environment, a kubeconfig or a ready
//!   `kube::Client`) and its reads and writes, retried by the core `RetryPolicy`;
//! - [`step`]: the Kubernetes step, given to the core `Reconciler` — in `run`, server-side
//!   apply of the ServiceAccounts' annotations, the Azure pod label, restarts when asked, the
//!   findings into the report; in `dry_run`, what it would do; in `verify`, the findings only,
//!   each with a stable code from [`codes`];
//! - [`migrate`]: IRSA → EKS Pod Identity;
//! - [`preflight`]: before a GKE node pool is put in `GKE_METADATA` mode, the pods on it that
//!   would lose the node's service account;
//! - [`service_account_manifest`]: the ServiceAccount as porter-identity applies it (for
//!   `kubectl apply` or a chart), and [`PodWorkload`]: a Deployment, StatefulSet, DaemonSet or
//!   CronJob and the ServiceAccount its pods run as (a template that names none runs as
//!   `default`).
//!
//! The rest — the diagnosis rules, the server-side-apply bodies, which workloads run as a
//! ServiceAccount — is private: it is reached through the step.
//!
//! ```no_run
//! # async fn check(gcp: &dyn porter_identity_core::WorkloadIdentityProvider, app: &porter_identity_core::AppManifest) -> porter_identity_core::Result<()> {
//! use porter_identity_core::Reconciler;
//! use porter_identity_kube::{Cluster, step::StepOptions};
//!
//! let cluster = Cluster::builder().from_env().await?;
//! let step = cluster.step(StepOptions::default());
//! // The links on the cloud, then each ServiceAccount and its pods in the cluster: read only.
//! let report = Reconciler::new("shop", "prod").provider(gcp).desired(app).kubernetes(&step).verify().await?;
//! for (who, finding) in report.findings() {
//!     println!("{who}: {finding}"); // e.g. kube.annotation.missing, with the kubectl command
//! }
//! # Ok(()) }
//! ```

mod apply;
mod cluster;
pub mod codes;
mod diagnose;
#[cfg(feature = "fake")]
pub mod fake;
#[cfg(test)]
mod fixtures;
pub mod migrate;
mod namespace;
pub mod preflight;
pub mod step;
mod workloads;

// The README's Rust examples, compiled as doc tests so that what it promises keeps building.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub use apply::{FIELD_MANAGER, service_account_manifest};
pub use cluster::{Cluster, ClusterBuilder};
// The typed objects this crate reads and returns, at the version it is built with.
pub use k8s_openapi;
pub use workloads::{PodWorkload, WorkloadKind};
