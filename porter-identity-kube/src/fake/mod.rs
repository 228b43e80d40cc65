//! An in-memory Kubernetes API store with the rules porter-identity depends on (feature
//! `fake`): server-side apply with field ownership per field manager — a field another manager
//! owns with another value is a conflict naming that manager, unless forced; the same value is
//! shared; fields a manager stops applying are removed — plain updates that take ownership
//! without conflicts (what `kubectl edit` does), and lists with label and field selectors.
//!
//! Objects are JSON as the API server serves them; ownership is kept per manager as the set of
//! leaf field paths it applied (arrays are atomic) and served as `metadata.managedFields`
//! (`fieldsV1`).
//!
//! [`FakeKube::serve`] puts it behind HTTPS as a Kubernetes API server (the core and named API groups, for what
//! porter-identity reads and writes), with a certificate authority made at start and a kubeconfig that trusts it, so
//! that kube-rs's own client, configured from a kubeconfig as a user's is, talks to it. A
//! workload whose pod template changes has its pods replaced, as the cluster's controllers do.
//! The binary `porter-identity-kube-fake` serves one for the test script.
//!
//! ```
//! use porter_identity_kube::fake::{FakeKube, ObjectKey};
//! use serde_json::json;
//!
//! let kube = FakeKube::new();
//! let key = ObjectKey::new("v1", "ServiceAccount", "shop", "shop-api");
//! kube.update(&key, "kubectl-edit", json!({"metadata": {"annotations": {"a": "1"}}}));
//! let conflict = kube
//!     .apply(&key, "porter-identity", json!({"metadata": {"annotations": {"a": "2"}}}), false)
//!     .unwrap_err();
//! assert_eq!(conflict.conflicts[0].manager, "kubectl-edit");
//! kube.apply(&key, "porter-identity", json!({"metadata": {"annotations": {"a": "2"}}}), true).unwrap();
//! assert_eq!(kube.get(&key).unwrap()["metadata"]["annotations"]["a"], "2");
//! ```

mod controller;
mod http;
mod server;
mod store;
mod tls;

pub use server::FakeKubeServer;
pub use store::{ApplyConflict, Conflict, FakeKube, ObjectKey};
