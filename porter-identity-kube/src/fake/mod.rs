//! An in-memory Kubernetes API store with the rules porter-identity and its controller depend
//! on (feature `fake`): server-side apply with field ownership per field manager — a field
//! another manager owns with another value is a conflict naming that manager, unless forced;
//! the same value is shared; fields a manager stops applying are removed — plain updates that
//! take ownership without conflicts (what `kubectl edit` does), merge and JSON patches,
//! replaces with the optimistic `resourceVersion` check, and lists with label and field
//! selectors.
//!
//! Objects are JSON as the API server serves them; ownership is kept per manager as the set of
//! leaf field paths it applied (arrays are atomic) and served as `metadata.managedFields`
//! (`fieldsV1`). As on the API server:
//!
//! - every change moves the store's resource version ([`FakeKube::version`]) and is kept in a
//!   bounded watch log (the last 100,000 changes; [`FakeKube::set_watch_log_limit`]) that
//!   watches replay; a write that changes nothing makes no new version;
//! - `metadata.generation` is 1 at creation and one more per change outside `metadata` and
//!   `status`;
//! - a delete of an object with `metadata.finalizers` only sets its
//!   `metadata.deletionTimestamp`; the write that leaves it without finalizers removes it;
//! - the kinds of the CustomResourceDefinitions in the store are served (stored under the
//!   CRD's storage version: [`FakeKube::get`] takes that `apiVersion` and the CRD's kind);
//!   with a status subresource, writes to the object keep its `status` and writes to
//!   `/status` change only that.
//!
//! [`FakeKube::writes_to`] counts the writes per kind, for tests that a controller left a
//! kind alone.
//!
//! [`FakeKube::serve`] puts it behind HTTPS as a Kubernetes API server (the core and named API
//! groups, for what porter-identity and its controller read, write and watch; see the face's
//! module for the paths and rules), with a certificate authority made at start and a
//! kubeconfig that trusts it, so that kube-rs's own client, configured from a kubeconfig as a
//! user's is, talks to it — its `Api`, and kube-runtime's watcher, finalizer helper, event
//! recorder and a Lease-based leader election. A workload whose pod template changes has its
//! pods replaced, as the cluster's controllers do. The binary `porter-identity-kube-fake`
//! serves one for the test script.
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
mod patch;
mod resources;
mod server;
mod store;
mod tls;
mod watch;

pub use server::FakeKubeServer;
pub use store::{ApplyConflict, Conflict, FakeKube, ObjectKey};
