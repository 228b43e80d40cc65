//! The narrow port between the provider's logic and Azure Resource Manager: only the ARM calls
//! the logic needs, in the provider's own types. [`crate::arm::ArmClient`] implements it over
//! HTTP, [`crate::fake::FakeAzure`] (feature `fake`) in memory, and tests mock it.
//!
//! Every method returns a porter-identity [`Error`](porter_identity_core::Error) whose kind is
//! already mapped from ARM's error code and status, so the logic never sees HTTP.

use std::fmt::Debug;

use async_trait::async_trait;
use porter_identity_core::Result;

/// Azure's limit of federated identity credentials on one user-assigned managed identity.
pub const FEDERATED_CREDENTIAL_LIMIT: usize = 20;

/// The parts of an AKS managed cluster (ManagedClusters_Get) the logic uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedCluster {
    /// Its ARM resource id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `properties.oidcIssuerProfile.enabled`.
    pub oidc_issuer_enabled: bool,
    /// `properties.oidcIssuerProfile.issuerURL`, exactly as AKS reports it (with its trailing
    /// `/`), when the issuer is enabled.
    pub issuer_url: Option<String>,
    /// `properties.securityProfile.workloadIdentity.enabled`: the mutating webhook that
    /// projects the token into pods.
    pub workload_identity_enabled: bool,
}

/// A user-assigned managed identity (UserAssignedIdentities_Get).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Its ARM resource id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `properties.clientId`: what the ServiceAccount annotation names.
    pub client_id: String,
    /// `properties.principalId`: whom its role assignments are for.
    pub principal_id: String,
    /// `properties.tenantId`.
    pub tenant_id: String,
}

/// A federated identity credential of a managed identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FederatedCredential {
    /// Its name (unique within the identity).
    pub name: String,
    /// Its ARM resource id.
    pub id: String,
    /// The OIDC issuer it trusts.
    pub issuer: String,
    /// The token subject it trusts (`system:serviceaccount:<ns>:<sa>` for Kubernetes).
    pub subject: String,
    /// The audiences it accepts.
    pub audiences: Vec<String>,
}

/// The body of FederatedIdentityCredentials_CreateOrUpdate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialSpec {
    /// The OIDC issuer to trust.
    pub issuer: String,
    /// The token subject to trust.
    pub subject: String,
    /// The audiences to accept.
    pub audiences: Vec<String>,
}

/// One page of FederatedIdentityCredentials_List.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CredentialPage {
    /// The credentials of the page.
    pub credentials: Vec<FederatedCredential>,
    /// ARM's `nextLink`: the absolute URL of the next page; `None` on the last.
    pub next_link: Option<String>,
}

/// A role assignment (RoleAssignments_ListForScope).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleAssignment {
    /// Its ARM resource id.
    pub id: String,
    /// Where it applies: a resource, a resource group, a subscription or a management group.
    pub scope: String,
    /// The role definition's resource id (its last segment is the role's GUID).
    pub role_definition_id: String,
    /// Whom it is for.
    pub principal_id: String,
}

/// One page of role assignments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleAssignmentPage {
    /// The assignments of the page.
    pub assignments: Vec<RoleAssignment>,
    /// ARM's `nextLink`; `None` on the last page.
    pub next_link: Option<String>,
}

/// A role definition (RoleDefinitions_GetById).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleDefinition {
    /// Its resource id.
    pub id: String,
    /// `properties.roleName`, e.g. `Storage Blob Data Reader`.
    pub role_name: String,
}

/// The ARM calls the provider makes, in the provider's subscription. Implementations map ARM
/// errors to [`ErrorKind`](porter_identity_core::ErrorKind)s: 401 → `Unauthenticated`, 403 →
/// `PermissionDenied`, 404 → `NotFound`, 409 concurrent writes → retryable `Conflict`, 429 →
/// `Throttled` (with `Retry-After`), 5xx and timeouts → `Unavailable`, the credential limit →
/// `LimitExceeded`, a duplicate issuer and subject → `AlreadyExists`.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait ArmApi: Send + Sync + Debug {
    /// ManagedClusters_Get (Microsoft.ContainerService).
    async fn get_managed_cluster(&self, resource_group: &str, name: &str)
    -> Result<ManagedCluster>;
    /// UserAssignedIdentities_Get (Microsoft.ManagedIdentity).
    async fn get_identity(&self, resource_group: &str, name: &str) -> Result<Identity>;
    /// FederatedIdentityCredentials_List: one page (`next_link` is `None` for the first).
    async fn list_federated_credentials(
        &self,
        resource_group: &str,
        identity: &str,
        next_link: Option<String>,
    ) -> Result<CredentialPage>;
    /// FederatedIdentityCredentials_CreateOrUpdate: creates or replaces the credential `name`.
    async fn put_federated_credential(
        &self,
        resource_group: &str,
        identity: &str,
        name: &str,
        spec: &CredentialSpec,
    ) -> Result<FederatedCredential>;
    /// FederatedIdentityCredentials_Delete: `true` when it existed (200), `false` when it was
    /// already absent (204).
    async fn delete_federated_credential(
        &self,
        resource_group: &str,
        identity: &str,
        name: &str,
    ) -> Result<bool>;
    /// RoleAssignments_ListForScope at the subscription with `$filter=assignedTo('<principal>')`:
    /// one page of the principal's assignments at every scope it can see.
    async fn list_role_assignments(
        &self,
        principal_id: &str,
        next_link: Option<String>,
    ) -> Result<RoleAssignmentPage>;
    /// RoleDefinitions_GetById.
    async fn get_role_definition(&self, role_definition_id: &str) -> Result<RoleDefinition>;
}
