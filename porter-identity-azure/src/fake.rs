//! An in-memory Azure Resource Manager with the real rules, for tests and demos without an Azure
//! subscription (feature `fake`).
//!
//! [`FakeAzure`] implements [`ArmApi`], so the provider runs on it unchanged, and [`serve`] puts
//! the same state behind ARM's REST API (paths and JSON of `testdata/api-examples/`) and
//! an Entra ID token endpoint, so that the real [`ArmClient`](crate::arm::ArmClient) and the real
//! `azure_identity` credentials can be tested against it.
//!
//! What it enforces, like Azure: credential names `^[a-zA-Z0-9][a-zA-Z0-9-_]{2,119}$`; issuer,
//! subject and exactly one audience; one credential per issuer and subject on an identity (a
//! duplicate under another name is a 400); at most 20 credentials per identity (a 400); a write
//! to an identity while another is in flight is a 409
//! `ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity`; deleting an absent
//! credential answers 204.
//!
//! ```
//! use porter_identity_azure::api::{ArmApi, CredentialSpec};
//! use porter_identity_azure::fake::FakeAzure;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let azure = FakeAzure::new();
//! azure.add_aks_cluster("rg", "prod", "https://oidc.example/tenant/prod/");
//! let identity = azure.add_identity("rg", "shop-api");
//! let spec = CredentialSpec {
//!     issuer: "https://oidc.example/tenant/prod/".into(),
//!     subject: "system:serviceaccount:shop:shop-api".into(),
//!     audiences: vec!["api://AzureADTokenExchange".into()],
//! };
//! azure.put_federated_credential("rg", "shop-api", "shop-api-prod", &spec).await?;
//! assert_eq!(azure.credentials("rg", "shop-api").len(), 1);
//! assert_eq!(azure.write_calls(), 1);
//! # let _ = identity;
//! # Ok::<(), porter_identity_core::Error>(())
//! # }).unwrap();
//! ```

mod http;
mod state;
mod transport;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use porter_identity_core::{ErrorKind, Operation, Result};

use crate::api::{
    ArmApi, CredentialPage, CredentialSpec, FederatedCredential, Identity, ManagedCluster,
    RoleAssignment, RoleAssignmentPage, RoleDefinition,
};
use crate::arm::map_arm_error;
use crate::operation as op;

pub use http::serve;
pub use porter_identity_core::testing::FakeServer;
pub use transport::LoopbackHttpsAsHttp;

use state::{ArmError, CredentialRecord, IdentityRecord, PutBody, State};

/// The subscription every [`FakeAzure::new`] has.
pub const SUBSCRIPTION_ID: &str = "c267c0e7-0a73-4789-9e17-d26aeb0904e5";
/// The tenant every [`FakeAzure::new`] has.
pub const TENANT_ID: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

/// Built-in role definitions the fake knows: (GUID, role name).
pub const BUILT_IN_ROLES: [(&str, &str); 5] = [
    ("8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "Owner"),
    ("b24988ac-6180-42a0-ab88-20f7382dd24c", "Contributor"),
    (
        "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
        "User Access Administrator",
    ),
    ("acdd72a7-3385-48ef-bd42-f606fba81ae7", "Reader"),
    (
        "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
        "Storage Blob Data Reader",
    ),
];

/// An in-memory ARM for one subscription.
///
/// Cheap to clone: clones share the state, so a test keeps one handle to set up and inspect
/// while the provider (or [`serve`]) uses another. Setup methods take `&self`; they panic on a
/// setup mistake (an unknown cluster or identity), a bug in the test, not a cloud error.
///
/// Operations are counted by their ARM operation ids ([`FakeAzure::calls`]); failures can be
/// injected ([`FakeAzure::inject_failures`]), latency added ([`FakeAzure::set_latency`]) and
/// calls stalled ([`FakeAzure::stall_every`]).
#[derive(Clone)]
pub struct FakeAzure {
    // A std mutex, never held across an await: every operation is a short critical section.
    state: Arc<Mutex<State>>,
    /// Who may get tokens, and the tokens ARM accepts (the HTTP face).
    auth: Arc<Mutex<Auth>>,
}

/// The fake Entra ID: the service principals that may get tokens, and the tokens issued.
#[derive(Debug, Default)]
struct Auth {
    client_secrets: BTreeMap<String, String>,
    federated_clients: BTreeSet<String>,
    tokens: BTreeSet<String>,
    issued: u64,
}

impl fmt::Debug for FakeAzure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.state.try_lock() {
            Ok(state) => f
                .debug_struct("FakeAzure")
                .field("subscription_id", &state.subscription_id)
                .finish_non_exhaustive(),
            Err(_) => f.write_str("FakeAzure { <locked> }"),
        }
    }
}

impl Default for FakeAzure {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeAzure {
    /// An empty subscription [`SUBSCRIPTION_ID`] of tenant [`TENANT_ID`], knowing the
    /// [`BUILT_IN_ROLES`].
    pub fn new() -> Self {
        let mut state = State::new(SUBSCRIPTION_ID, TENANT_ID);
        for (guid, name) in BUILT_IN_ROLES {
            state.add_role_definition(guid, name);
        }
        FakeAzure {
            state: Arc::new(Mutex::new(state)),
            auth: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in a test thread must not turn every later call into a second panic: the
        // state is only mutated in small, consistent steps, so a poisoned lock is still sound.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn auth(&self) -> MutexGuard<'_, Auth> {
        self.auth.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The subscription id.
    pub fn subscription_id(&self) -> String {
        self.lock().subscription_id.clone()
    }

    /// The tenant id.
    pub fn tenant_id(&self) -> String {
        self.lock().tenant_id.clone()
    }

    // ---- setup ----------------------------------------------------------------------------

    /// Adds an AKS cluster with the OIDC issuer `issuer_url` and workload identity both on.
    ///
    /// # Panics
    /// If the cluster exists.
    pub fn add_aks_cluster(&self, resource_group: &str, name: &str, issuer_url: &str) -> &Self {
        self.lock().add_cluster(resource_group, name, issuer_url);
        self
    }

    /// Turns a cluster's OIDC issuer on or off (off, AKS reports no issuer URL).
    ///
    /// # Panics
    /// If the cluster does not exist.
    pub fn set_oidc_issuer_enabled(&self, resource_group: &str, name: &str, on: bool) -> &Self {
        self.lock()
            .cluster_mut(resource_group, name)
            .oidc_issuer_enabled = on;
        self
    }

    /// Turns a cluster's workload identity (the webhook) on or off.
    ///
    /// # Panics
    /// If the cluster does not exist.
    pub fn set_workload_identity_enabled(
        &self,
        resource_group: &str,
        name: &str,
        on: bool,
    ) -> &Self {
        self.lock()
            .cluster_mut(resource_group, name)
            .workload_identity_enabled = on;
        self
    }

    /// Adds a user-assigned managed identity with fresh client and principal ids.
    ///
    /// # Panics
    /// If the identity exists.
    pub fn add_identity(&self, resource_group: &str, name: &str) -> Identity {
        to_identity(self.lock().add_identity(resource_group, name))
    }

    /// The identity, if it exists (no call counted).
    pub fn identity(&self, resource_group: &str, name: &str) -> Option<Identity> {
        self.lock()
            .identity_record(resource_group, name)
            .cloned()
            .map(to_identity)
    }

    /// Deletes an identity and its credentials (no-op when absent).
    pub fn delete_identity(&self, resource_group: &str, name: &str) -> &Self {
        self.lock().delete_identity(resource_group, name);
        self
    }

    /// The credentials of an identity, by name (empty for an unknown identity; no call
    /// counted).
    pub fn credentials(&self, resource_group: &str, identity: &str) -> Vec<FederatedCredential> {
        self.lock()
            .credentials(resource_group, identity)
            .into_iter()
            .map(to_credential)
            .collect()
    }

    /// Adds a credential as a user would in the portal (no call counted, no rule but the
    /// identity's existence).
    ///
    /// # Panics
    /// If the identity does not exist.
    pub fn add_credential(
        &self,
        resource_group: &str,
        identity: &str,
        name: &str,
        issuer: &str,
        subject: &str,
        audiences: &[&str],
    ) -> &Self {
        self.lock()
            .insert_credential(resource_group, identity, name, issuer, subject, audiences);
        self
    }

    /// Adds a custom role definition.
    pub fn add_role_definition(&self, guid: &str, role_name: &str) -> &Self {
        self.lock().add_role_definition(guid, role_name);
        self
    }

    /// Assigns role `role_guid` (a [`BUILT_IN_ROLES`] GUID or an added one) to `principal_id`
    /// at `scope` (`/subscriptions/…`, `…/resourceGroups/…`, a resource id, or a management
    /// group).
    pub fn assign_role(&self, principal_id: &str, role_guid: &str, scope: &str) -> &Self {
        self.lock().assign_role(principal_id, role_guid, scope);
        self
    }

    /// The scope of a resource group of this subscription, for [`FakeAzure::assign_role`].
    pub fn resource_group_scope(&self, resource_group: &str) -> String {
        let state = self.lock();
        format!(
            "/subscriptions/{}/resourceGroups/{resource_group}",
            state.subscription_id
        )
    }

    /// The scope of this subscription.
    pub fn subscription_scope(&self) -> String {
        format!("/subscriptions/{}", self.lock().subscription_id)
    }

    /// Lets service principal `client_id` get tokens from the HTTP face's token endpoint with
    /// `secret` (the client-secret credential).
    pub fn add_client_secret(&self, client_id: &str, secret: &str) -> &Self {
        self.auth()
            .client_secrets
            .insert(client_id.to_owned(), secret.to_owned());
        self
    }

    /// Lets `client_id` get tokens with any client assertion (the workload identity
    /// credential, whose assertion is the projected service-account token).
    pub fn add_federated_client(&self, client_id: &str) -> &Self {
        self.auth().federated_clients.insert(client_id.to_owned());
        self
    }

    /// Makes ARM on the HTTP face accept `token` as a bearer token (`AZURE_ACCESS_TOKEN`).
    pub fn accept_token(&self, token: &str) -> &Self {
        self.auth().tokens.insert(token.to_owned());
        self
    }

    // ---- knobs ----------------------------------------------------------------------------

    /// Makes the next `count` calls of operation `op` (an ARM operation id such as
    /// `UserAssignedIdentities_Get`, or `Token`; `None` for any) fail with `kind`:
    /// `Throttled` answers 429 `TooManyRequests`, `Unavailable` 503, `Conflict` the
    /// concurrent-writes 409, and so on. Failed calls still count.
    ///
    /// # Panics
    /// If `op` is not an operation the fake knows, so that a typo cannot make a test vacuous.
    pub fn inject_failures(&self, op: Option<&str>, kind: ErrorKind, count: u32) -> &Self {
        self.lock().calls.inject(op, kind, count);
        self
    }

    /// Adds `latency` to every call (slept after the state is updated and the lock
    /// released). A write holds its identity for the latency: another write to it meanwhile
    /// gets the concurrent-writes 409.
    pub fn set_latency(&self, latency: Duration) -> &Self {
        self.lock().calls.set_latency(latency);
        self
    }

    /// Makes every `every`-th call (`0` turns it off) answer only after `stall` more.
    pub fn stall_every(&self, every: u64, stall: Duration) -> &Self {
        self.lock().calls.stall_every(every, stall);
        self
    }

    /// How many credentials a list page holds (20 by default; at least 1).
    pub fn set_page_size(&self, size: usize) -> &Self {
        self.lock().page_size = size.max(1);
        self
    }

    /// Calls so far, by ARM operation id (and `Token`).
    pub fn calls(&self) -> BTreeMap<String, u64> {
        self.lock().calls.counts()
    }

    /// Calls of one operation so far.
    pub fn call_count(&self, op: &str) -> u64 {
        self.lock().calls.count(op)
    }

    /// Credential creates, replaces and deletes so far, failed ones included.
    pub fn write_calls(&self) -> u64 {
        self.lock().calls.sum(&state::WRITE_OPERATIONS)
    }

    /// Forgets the calls counted so far.
    pub fn reset_calls(&self) -> &Self {
        self.lock().calls.reset();
        self
    }

    // ---- the calls ------------------------------------------------------------------------

    /// Runs one ARM call: counts it, answers an injected failure or runs `op` on the state
    /// (with the latency, the window a write holds its identity), then sleeps the call's delay
    /// (latency, and a stall) with the lock released. Shared by both faces.
    async fn call<T, F>(&self, name: &'static str, op: F) -> std::result::Result<T, ArmError>
    where
        F: FnOnce(&mut State, Duration) -> std::result::Result<T, ArmError> + Send,
        T: Send,
    {
        let (result, delay) = {
            let mut state = self.lock();
            let begun = state.begin_call(name);
            // A write holds its identity for the time it takes; a stalled answer (the write
            // done, its answer late) does not hold it longer.
            let window = state.calls.latency();
            let delay = state.calls.delay();
            (begun.and_then(|()| op(&mut state, window)), delay)
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        result
    }

    /// [`FakeAzure::call`] with the error as the real client maps it.
    async fn api_call<T, F>(&self, operation: Operation, op: F) -> Result<T>
    where
        F: FnOnce(&mut State, Duration) -> std::result::Result<T, ArmError> + Send,
        T: Send,
    {
        let name = operation.name();
        self.call(name, op)
            .await
            .map_err(|e| map_arm_error(name, e.status, None, e.body().as_bytes()))
    }
}

fn to_identity(r: IdentityRecord) -> Identity {
    Identity {
        id: r.id,
        name: r.name,
        client_id: r.client_id,
        principal_id: r.principal_id,
        tenant_id: r.tenant_id,
    }
}

fn to_credential(c: CredentialRecord) -> FederatedCredential {
    FederatedCredential {
        name: c.name,
        id: c.id,
        issuer: c.issuer,
        subject: c.subject,
        audiences: c.audiences,
    }
}

/// The in-memory face's page token: the index of the page's first credential.
fn page_index(next_link: Option<&str>) -> usize {
    next_link.and_then(|l| l.parse().ok()).unwrap_or(0)
}

#[async_trait]
impl ArmApi for FakeAzure {
    async fn get_managed_cluster(
        &self,
        resource_group: &str,
        name: &str,
    ) -> Result<ManagedCluster> {
        let c = self
            .api_call(op::MANAGED_CLUSTERS_GET, |s, _| {
                s.get_cluster(resource_group, name)
            })
            .await?;
        Ok(ManagedCluster {
            id: c.id,
            name: c.name,
            oidc_issuer_enabled: c.oidc_issuer_enabled,
            issuer_url: c.oidc_issuer_enabled.then_some(c.issuer_url),
            workload_identity_enabled: c.workload_identity_enabled,
        })
    }

    async fn get_identity(&self, resource_group: &str, name: &str) -> Result<Identity> {
        self.api_call(op::USER_ASSIGNED_IDENTITIES_GET, |s, _| {
            s.get_identity(resource_group, name)
        })
        .await
        .map(to_identity)
    }

    async fn list_federated_credentials(
        &self,
        resource_group: &str,
        identity: &str,
        next_link: Option<String>,
    ) -> Result<CredentialPage> {
        let from = page_index(next_link.as_deref());
        let page = self
            .api_call(op::FEDERATED_IDENTITY_CREDENTIALS_LIST, |s, _| {
                s.list_credentials(resource_group, identity, from)
            })
            .await?;
        Ok(CredentialPage {
            credentials: page.credentials.into_iter().map(to_credential).collect(),
            next_link: page.next.map(|n| n.to_string()),
        })
    }

    async fn put_federated_credential(
        &self,
        resource_group: &str,
        identity: &str,
        name: &str,
        spec: &CredentialSpec,
    ) -> Result<FederatedCredential> {
        let spec = spec.clone();
        self.api_call(
            op::FEDERATED_IDENTITY_CREDENTIALS_CREATE_OR_UPDATE,
            |s, window| {
                let body = PutBody {
                    issuer: Some(spec.issuer),
                    subject: Some(spec.subject),
                    audiences: Some(spec.audiences),
                };
                s.put_credential(resource_group, identity, name, body, window)
            },
        )
        .await
        .map(|(c, _)| to_credential(c))
    }

    async fn delete_federated_credential(
        &self,
        resource_group: &str,
        identity: &str,
        name: &str,
    ) -> Result<bool> {
        self.api_call(op::FEDERATED_IDENTITY_CREDENTIALS_DELETE, |s, window| {
            s.delete_credential(resource_group, identity, name, window)
        })
        .await
    }

    async fn list_role_assignments(
        &self,
        principal_id: &str,
        _next_link: Option<String>,
    ) -> Result<RoleAssignmentPage> {
        let assignments = self
            .api_call(op::ROLE_ASSIGNMENTS_LIST_FOR_SCOPE, |s, _| {
                Ok(s.role_assignments_of(principal_id))
            })
            .await?;
        Ok(RoleAssignmentPage {
            assignments: assignments
                .into_iter()
                .map(|a| RoleAssignment {
                    id: a.id,
                    scope: a.scope,
                    role_definition_id: a.role_definition_id,
                    principal_id: a.principal_id,
                })
                .collect(),
            next_link: None,
        })
    }

    async fn get_role_definition(&self, role_definition_id: &str) -> Result<RoleDefinition> {
        let guid = role_definition_id.rsplit('/').next().unwrap_or_default();
        let d = self
            .api_call(op::ROLE_DEFINITIONS_GET_BY_ID, |s, _| {
                s.role_definition(guid)
            })
            .await?;
        Ok(RoleDefinition {
            id: d.id,
            role_name: d.role_name,
        })
    }
}
