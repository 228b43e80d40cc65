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
//! - [`step`]: the Kubernetes step of a reconcile — server-side apply of the ServiceAccounts'
//!   annotations, the Azure pod label, restarts when asked, the findings into the report;
//! - [`migrate`]: IRSA → EKS Pod Identity;
//! - [`workloads`]: which Deployments, StatefulSets, DaemonSets and CronJobs run as a
//!   ServiceAccount (a template that names none runs as `default`);
//! - [`diagnose`]: the findings of one service account's links, with stable [`codes`];
//! - [`apply`]: what porter-identity applies — the ServiceAccount's server-side-apply body,
//!   the conflicts with another field manager, the Azure pod-template label, the rollout
//!   restart;
//! - [`preflight`]: before a GKE node pool is put in `GKE_METADATA` mode, the pods on it that
//!   would lose the node's service account.
//!
//! ```
//! use porter_identity_core::{ServiceAccountPatch, Workload};
//! use porter_identity_kube::diagnose::{diagnose, Expected, Observed};
//! use porter_identity_kube::codes;
//!
//! let workload = Workload::for_service("shop", "shop", "api")?;
//! let mut patch = ServiceAccountPatch::default();
//! patch.annotations.insert("iam.gke.io/gcp-service-account".into(), "api@p-123456.iam.gserviceaccount.com".into());
//! let expected = Expected::new(&workload, &patch).gke_workload_identity(true);
//! // No ServiceAccount in the cluster yet:
//! let found = diagnose(&expected, &Observed::new(None, &[], &[], &[]));
//! assert_eq!(found[0].code, codes::SERVICE_ACCOUNT_MISSING);
//! # Ok::<(), porter_identity_core::Error>(())
//! ```

pub mod apply;
mod cluster;
pub mod codes;
pub mod diagnose;
#[cfg(feature = "fake")]
pub mod fake;
#[cfg(test)]
mod fixtures;
pub mod migrate;
pub mod preflight;
pub mod step;
pub mod workloads;

// The README's Rust examples, compiled as doc tests so that what it promises keeps building.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub use cluster::{Cluster, ClusterBuilder};
// The typed objects this crate reads and returns, at the version it is built with.
pub use k8s_openapi;
