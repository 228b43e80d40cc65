//! An in-memory Google Cloud — IAM service accounts with their IAM policies and keys, GKE
//! clusters, project IAM policies — with the real rules, for tests and demos without a Google
//! Cloud project (feature `fake`).
//!
//! [`FakeGcp`] implements [`GcpApi`], so the provider runs on it unchanged, and [`serve`] puts
//! the same state behind the v1 REST paths and JSON of `testdata/api-examples/`, so that
//! the official Google clients can be tested against it.
//!
//! What it enforces, like IAM: `setIamPolicy` with a stale etag is a 409 `ABORTED`; bindings
//! left without members are dropped; members need a known type prefix; a Workload Identity
//! member whose pool no cluster has is a 400 `Identity Pool does not exist (<pool>)`;
//! conditions need policy version 3, for writes and for reads. A knob makes "someone else"
//! write a policy between a caller's read and its write ([`FakeGcp::interfere_with_writes`]).
//!
//! ```
//! use porter_identity_gcp::api::GcpApi;
//! use porter_identity_gcp::fake::FakeGcp;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let gcp = FakeGcp::new();
//! gcp.add_gke_cluster("demo-project", "us-central1", "prod");
//! gcp.add_service_account("app@demo-project.iam.gserviceaccount.com");
//! let policy = gcp.get_iam_policy("app@demo-project.iam.gserviceaccount.com").await?;
//! assert!(policy.bindings.is_empty());
//! assert_eq!(gcp.calls()["getIamPolicy"], 1);
//! # Ok::<(), porter_identity_core::Error>(())
//! # }).unwrap();
//! ```

mod http;
mod state;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use porter_identity_core::{ErrorKind, Result};
use serde_json::{Value, json};

use crate::api::{
    Cluster, ClusterRef, GcpApi, MetadataMode, NodePool, NodePoolDetails, Policy, ServiceAccount,
    ServiceAccountKey,
};
use crate::errors::{StatusCode, map_status};
use crate::operation as op;

pub use http::serve;
pub use porter_identity_core::testing::FakeServer;

use state::{BindingRecord, GcpError, State, WIU};

/// A service-account key file (JSON) for the official Google clients to sign with when they
/// talk to the fake's HTTP face: point `GOOGLE_APPLICATION_CREDENTIALS` at a file holding it,
/// and google-cloud-auth's real service-account path signs self-signed JWTs, which the fake
/// accepts (it never calls the key's `token_uri`, a closed loopback port).
///
/// A throwaway key, generated locally for these fakes and never registered with Google: no
/// cloud accepts it. See `testdata/README.md`.
pub const SERVICE_ACCOUNT_KEY_JSON: &str =
    include_str!("../testdata/fake-service-account-key.json");

/// The Kubernetes version of every node pool of the fake.
pub const NODE_VERSION: &str = "1.33.5-gke.1000";
/// The image type of every node pool of the fake.
pub const IMAGE_TYPE: &str = "COS_CONTAINERD";

/// An in-memory Google Cloud.
///
/// Cheap to clone: clones share the state, so a test keeps one handle to set up and inspect
/// while the provider (or [`serve`]) uses another. Setup methods take `&self`; they panic on a
/// setup mistake (an unknown cluster or service account), a bug in the test, not a cloud error.
///
/// Operations are counted by the names the provider uses ([`FakeGcp::calls`]); failures can
/// be injected ([`FakeGcp::inject_failures`]), latency added ([`FakeGcp::set_latency`]) and
/// calls stalled ([`FakeGcp::stall_every`]).
#[derive(Clone)]
pub struct FakeGcp {
    // A std mutex, never held across an await: every operation is a short critical section.
    state: Arc<Mutex<State>>,
    anonymous: Arc<Mutex<bool>>,
}

impl fmt::Debug for FakeGcp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.state.try_lock() {
            Ok(state) => f
                .debug_struct("FakeGcp")
                .field("clusters", &state.clusters.len())
                .field("service_accounts", &state.service_accounts.len())
                .finish_non_exhaustive(),
            Err(_) => f.write_str("FakeGcp { <locked> }"),
        }
    }
}

impl Default for FakeGcp {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeGcp {
    /// An empty cloud.
    pub fn new() -> Self {
        FakeGcp {
            state: Arc::new(Mutex::new(State::new())),
            anonymous: Arc::new(Mutex::new(false)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in a test thread must not turn every later call into a second panic: the
        // state is only mutated in small, consistent steps, so a poisoned lock is still sound.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    // ---- setup ------------------------------------------------------------------------------

    /// Adds a GKE cluster with Workload Identity on (pool `<project>.svc.id.goog`) and one node
    /// pool, `default-pool`, in `GKE_METADATA` mode.
    ///
    /// # Panics
    /// If the cluster exists.
    pub fn add_gke_cluster(&self, project: &str, location: &str, name: &str) -> &Self {
        self.lock().add_cluster(project, location, name, true);
        self
    }

    /// Turns Workload Identity on or off on a cluster (off, it has no workload pool).
    ///
    /// # Panics
    /// If the cluster does not exist.
    pub fn set_workload_identity(
        &self,
        project: &str,
        location: &str,
        name: &str,
        on: bool,
    ) -> &Self {
        self.lock()
            .cluster_mut(project, location, name)
            .workload_pool = on.then(|| format!("{project}.svc.id.goog"));
        self
    }

    /// Adds a node pool (or sets its mode): `GKE_METADATA`, `GCE_METADATA` or
    /// `MODE_UNSPECIFIED`.
    ///
    /// # Panics
    /// If the cluster does not exist.
    pub fn set_node_pool(
        &self,
        project: &str,
        location: &str,
        cluster: &str,
        pool: &str,
        mode: &str,
    ) -> &Self {
        let mut state = self.lock();
        let pools = &mut state.cluster_mut(project, location, cluster).node_pools;
        match pools.iter_mut().find(|(n, _)| n == pool) {
            Some((_, m)) => *m = mode.to_owned(),
            None => pools.push((pool.to_owned(), mode.to_owned())),
        }
        self
    }

    /// Makes a workload pool exist without a GKE cluster of the fake (a fleet's pool).
    pub fn add_workload_pool(&self, pool: &str) -> &Self {
        self.lock().extra_pools.push(pool.to_owned());
        self
    }

    /// Adds a user-managed service account, enabled, with an empty IAM policy.
    ///
    /// # Panics
    /// If it exists, or `email` is not `<id>@<project>.iam.gserviceaccount.com`.
    pub fn add_service_account(&self, email: &str) -> &Self {
        self.lock().add_service_account(email);
        self
    }

    /// Deletes a service account and its policy (no-op when absent).
    pub fn delete_service_account(&self, email: &str) -> &Self {
        self.lock().service_accounts.remove(email);
        self
    }

    /// Disables or enables a service account.
    ///
    /// # Panics
    /// If it does not exist.
    pub fn set_disabled(&self, email: &str, disabled: bool) -> &Self {
        self.lock().account_mut(email).disabled = disabled;
        self
    }

    /// Adds a user-managed key `key_id` to a service account.
    ///
    /// # Panics
    /// If it does not exist.
    pub fn add_user_managed_key(&self, email: &str, key_id: &str) -> &Self {
        self.lock()
            .account_mut(email)
            .user_keys
            .push(key_id.to_owned());
        self
    }

    /// Grants `role` to `member` on a service account, as someone else would (no call counted,
    /// a new etag).
    ///
    /// # Panics
    /// If the service account does not exist.
    pub fn grant(&self, email: &str, role: &str, member: &str) -> &Self {
        self.lock().touch_policy(email, |p| p.grant(role, member));
        self
    }

    /// Removes `member` from every binding of `role` on a service account, as someone else
    /// would (no call counted, a new etag; a binding left empty is dropped).
    ///
    /// # Panics
    /// If the service account does not exist.
    pub fn revoke(&self, email: &str, role: &str, member: &str) -> &Self {
        self.lock().touch_policy(email, |p| {
            for b in p.bindings.iter_mut().filter(|b| b.role == role) {
                b.members.retain(|m| m != member);
            }
            p.bindings.retain(|b| !b.members.is_empty());
        });
        self
    }

    /// Grants `role` to `member` under a condition (`title`, `expression`) on a service
    /// account; the policy becomes version 3.
    ///
    /// # Panics
    /// If the service account does not exist.
    pub fn grant_conditional(
        &self,
        email: &str,
        role: &str,
        member: &str,
        title: &str,
        expression: &str,
    ) -> &Self {
        self.lock().touch_policy(email, |p| {
            p.version = 3;
            p.bindings.push(BindingRecord {
                role: role.to_owned(),
                members: vec![member.to_owned()],
                condition: Some(json!({"title": title, "expression": expression})),
            });
        });
        self
    }

    /// Adds an audit config to a service account's policy (kept by every read-modify-write).
    ///
    /// # Panics
    /// If the service account does not exist.
    pub fn add_audit_config(&self, email: &str, service: &str) -> &Self {
        self.lock().touch_policy(email, |p| {
            p.audit_configs
                .push(json!({"service": service, "auditLogConfigs": [{"logType": "DATA_READ"}]}));
        });
        self
    }

    /// Grants `role` on `project` to `member` (the project's IAM policy, for the lint).
    pub fn grant_on_project(&self, project: &str, role: &str, member: &str) -> &Self {
        self.lock().project_policy_mut(project).grant(role, member);
        self
    }

    /// The members of every binding of `role` on a service account (empty when it does not
    /// exist; no call counted).
    pub fn members(&self, email: &str, role: &str) -> Vec<String> {
        self.members_where(email, |b| b.role == role)
    }

    /// The members of the unconditional `roles/iam.workloadIdentityUser` binding.
    pub fn workload_identity_users(&self, email: &str) -> Vec<String> {
        self.members_where(email, |b| b.role == WIU && b.condition.is_none())
    }

    /// The members of the bindings of a service account's policy that `which` selects.
    fn members_where(&self, email: &str, which: impl Fn(&BindingRecord) -> bool) -> Vec<String> {
        self.lock()
            .service_accounts
            .get(email)
            .map(|sa| {
                sa.policy
                    .bindings
                    .iter()
                    .filter(|b| which(b))
                    .flat_map(|b| b.members.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A service account's policy as IAM would answer it (no call counted).
    pub fn policy_json(&self, email: &str) -> Option<Value> {
        self.lock()
            .service_accounts
            .get(email)
            .map(|sa| sa.policy.to_json())
    }

    // ---- knobs ------------------------------------------------------------------------------

    /// Makes the next `count` calls of operation `op` (one of the names [`FakeGcp::calls`]
    /// counts; `None` for any) fail with `kind`: `Throttled` answers 429 `RESOURCE_EXHAUSTED`,
    /// `Unavailable` 503, `Conflict` 409 `ABORTED`, `PermissionDenied` 403, and so on. Failed
    /// calls still count.
    ///
    /// # Panics
    /// If `op` is not an operation the fake knows, so that a typo cannot make a test vacuous.
    pub fn inject_failures(&self, op: Option<&str>, kind: ErrorKind, count: u32) -> &Self {
        self.lock().calls.inject(op, kind, count);
        self
    }

    /// Makes "someone else" write the policy of the service account between the read and the
    /// write of each of the next `count` setIamPolicy calls: they grant
    /// `roles/iam.serviceAccountTokenCreator` to `user:interloper-<n>@example.com`, so the
    /// caller's etag is stale.
    pub fn interfere_with_writes(&self, count: u32) -> &Self {
        self.lock().interlopers += count;
        self
    }

    /// How many writes the interloper made.
    pub fn interloper_writes(&self) -> u64 {
        self.lock().interloper_writes
    }

    /// Adds `latency` to every call (slept after the state is updated and the lock released).
    pub fn set_latency(&self, latency: Duration) -> &Self {
        self.lock().calls.set_latency(latency);
        self
    }

    /// Makes every `every`-th call (`0` turns it off) answer only after `stall` more.
    pub fn stall_every(&self, every: u64, stall: Duration) -> &Self {
        self.lock().calls.stall_every(every, stall);
        self
    }

    /// Lets the HTTP face answer requests without a bearer token (anonymous credentials).
    pub fn allow_anonymous(&self, yes: bool) -> &Self {
        *self
            .anonymous
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = yes;
        self
    }

    fn anonymous_allowed(&self) -> bool {
        *self
            .anonymous
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Calls made so far, by operation.
    pub fn calls(&self) -> BTreeMap<String, u64> {
        self.lock().calls.counts()
    }

    /// setIamPolicy calls made so far.
    pub fn write_calls(&self) -> u64 {
        self.lock().calls.count(op::SET_IAM_POLICY.name())
    }

    /// Every call but setIamPolicy.
    pub fn read_calls(&self) -> u64 {
        let state = self.lock();
        let counts = state.calls.counts();
        counts.values().sum::<u64>() - state.calls.count(op::SET_IAM_POLICY.name())
    }

    /// Forgets the counts.
    pub fn reset_calls(&self) -> &Self {
        self.lock().calls.reset();
        self
    }

    /// Runs one operation on the state: counts it, applies injected failures, then the latency.
    pub(crate) async fn call<T>(
        &self,
        op: &'static str,
        work: impl FnOnce(&mut State) -> std::result::Result<T, GcpError>,
    ) -> std::result::Result<T, GcpError> {
        let (result, delay) = {
            let mut state = self.lock();
            let result = state.begin_call(op).and_then(|()| work(&mut state));
            (result, state.calls.delay())
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        result
    }
}

fn mapped(op: &str, resource: &str, e: GcpError) -> porter_identity_core::Error {
    map_status(
        op,
        resource,
        Some(StatusCode::Name(e.status)),
        Some(e.http),
        &e.message,
        None,
    )
}

fn to_policy(op: &str, resource: &str, v: Value) -> Result<Policy> {
    serde_json::from_value(v).map_err(|e| {
        porter_identity_core::Error::cloud(
            ErrorKind::Other,
            porter_identity_core::Cloud::Gcp,
            op,
            format!("the fake's policy of {resource} did not parse: {e}"),
        )
    })
}

fn metadata_mode(mode: &str) -> MetadataMode {
    match mode {
        "GKE_METADATA" => MetadataMode::GkeMetadata,
        "GCE_METADATA" => MetadataMode::GceMetadata,
        "MODE_UNSPECIFIED" => MetadataMode::Unspecified,
        other => MetadataMode::Other(other.to_owned()),
    }
}

#[async_trait]
impl GcpApi for FakeGcp {
    async fn get_cluster(&self, cluster: &ClusterRef) -> Result<Cluster> {
        let found = self
            .call(op::CLUSTERS_GET.name(), |s| {
                s.get_cluster(&cluster.project, &cluster.location, &cluster.name)
            })
            .await
            .map_err(|e| mapped(op::CLUSTERS_GET.name(), &cluster.resource_name(), e))?;
        Ok(Cluster {
            name: found.name,
            workload_pool: found.workload_pool,
            node_pools: found
                .node_pools
                .into_iter()
                .map(|(name, mode)| NodePool {
                    name,
                    metadata_mode: metadata_mode(&mode),
                })
                .collect(),
        })
    }

    async fn get_node_pool(&self, cluster: &ClusterRef, pool: &str) -> Result<NodePoolDetails> {
        let name = cluster.node_pool_name(pool);
        let (found, mode) = self
            .call(op::NODE_POOLS_GET.name(), |s| {
                s.node_pool(&cluster.project, &cluster.location, &cluster.name, pool)
            })
            .await
            .map_err(|e| mapped(op::NODE_POOLS_GET.name(), &name, e))?;
        Ok(NodePoolDetails {
            name: found,
            version: NODE_VERSION.to_owned(),
            image_type: IMAGE_TYPE.to_owned(),
            metadata_mode: metadata_mode(&mode),
        })
    }

    async fn set_node_pool_gke_metadata(
        &self,
        cluster: &ClusterRef,
        pool: &NodePoolDetails,
    ) -> Result<String> {
        let name = cluster.node_pool_name(&pool.name);
        self.call(op::NODE_POOLS_UPDATE.name(), |s| {
            s.update_node_pool(
                &cluster.project,
                &cluster.location,
                &cluster.name,
                &pool.name,
                &pool.version,
                &pool.image_type,
                "GKE_METADATA",
            )
        })
        .await
        .map_err(|e| mapped(op::NODE_POOLS_UPDATE.name(), &name, e))
    }

    async fn get_service_account(&self, email: &str) -> Result<ServiceAccount> {
        let sa = self
            .call(op::SERVICE_ACCOUNTS_GET.name(), |s| {
                s.account(email).cloned()
            })
            .await
            .map_err(|e| mapped(op::SERVICE_ACCOUNTS_GET.name(), email, e))?;
        Ok(ServiceAccount {
            email: sa.email,
            project_id: sa.project,
            unique_id: sa.unique_id,
            disabled: sa.disabled,
        })
    }

    async fn get_iam_policy(&self, email: &str) -> Result<Policy> {
        let v = self
            .call(op::GET_IAM_POLICY.name(), |s| s.get_policy(email, 3))
            .await
            .map_err(|e| mapped(op::GET_IAM_POLICY.name(), email, e))?;
        to_policy(op::GET_IAM_POLICY.name(), email, v)
    }

    async fn set_iam_policy(&self, email: &str, policy: Policy) -> Result<Policy> {
        let body = json!({"policy": serde_json::to_value(&policy).unwrap_or_default()});
        let v = self
            .call(op::SET_IAM_POLICY.name(), |s| s.set_policy(email, &body))
            .await
            .map_err(|e| mapped(op::SET_IAM_POLICY.name(), email, e))?;
        to_policy(op::SET_IAM_POLICY.name(), email, v)
    }

    async fn list_user_managed_keys(&self, email: &str) -> Result<Vec<ServiceAccountKey>> {
        let sa = self
            .call(op::SERVICE_ACCOUNTS_KEYS_LIST.name(), |s| {
                s.account(email).cloned()
            })
            .await
            .map_err(|e| mapped(op::SERVICE_ACCOUNTS_KEYS_LIST.name(), email, e))?;
        Ok(sa
            .user_keys
            .iter()
            .map(|id| ServiceAccountKey {
                name: format!("projects/{}/serviceAccounts/{email}/keys/{id}", sa.project),
                disabled: false,
            })
            .collect())
    }

    async fn get_project_iam_policy(&self, project: &str) -> Result<Policy> {
        let v = self
            .call(op::PROJECTS_GET_IAM_POLICY.name(), |s| {
                Ok(s.project_policy(project))
            })
            .await
            .map_err(|e| mapped(op::PROJECTS_GET_IAM_POLICY.name(), project, e))?;
        to_policy(op::PROJECTS_GET_IAM_POLICY.name(), project, v)
    }
}
