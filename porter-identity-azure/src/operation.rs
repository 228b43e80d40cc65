//! Every ARM operation the provider makes, by its operation id in the REST specs, named once:
//! the call, its span, its count in the run and the fake's counters all use these, so a
//! misspelt name cannot miscount.

use porter_identity_core::{Cloud, Operation};

const fn azure(name: &'static str) -> Operation {
    // Every call is an Azure Resource Manager call (management.azure.com).
    Operation::new(Cloud::Azure, name).on_endpoint("arm")
}

pub(crate) const MANAGED_CLUSTERS_GET: Operation = azure("ManagedClusters_Get");
pub(crate) const USER_ASSIGNED_IDENTITIES_GET: Operation = azure("UserAssignedIdentities_Get");
pub(crate) const FEDERATED_IDENTITY_CREDENTIALS_LIST: Operation =
    azure("FederatedIdentityCredentials_List");
pub(crate) const FEDERATED_IDENTITY_CREDENTIALS_CREATE_OR_UPDATE: Operation =
    azure("FederatedIdentityCredentials_CreateOrUpdate");
pub(crate) const FEDERATED_IDENTITY_CREDENTIALS_DELETE: Operation =
    azure("FederatedIdentityCredentials_Delete");
pub(crate) const ROLE_ASSIGNMENTS_LIST_FOR_SCOPE: Operation = azure("RoleAssignments_ListForScope");
pub(crate) const ROLE_DEFINITIONS_GET_BY_ID: Operation = azure("RoleDefinitions_GetById");

/// Every ARM operation, for the fake's counters.
#[cfg(feature = "fake")]
pub(crate) const ALL: [Operation; 7] = [
    MANAGED_CLUSTERS_GET,
    USER_ASSIGNED_IDENTITIES_GET,
    FEDERATED_IDENTITY_CREDENTIALS_LIST,
    FEDERATED_IDENTITY_CREDENTIALS_CREATE_OR_UPDATE,
    FEDERATED_IDENTITY_CREDENTIALS_DELETE,
    ROLE_ASSIGNMENTS_LIST_FOR_SCOPE,
    ROLE_DEFINITIONS_GET_BY_ID,
];

/// The operations that write, for the fake's counters.
#[cfg(feature = "fake")]
pub(crate) const WRITES: [Operation; 2] = [
    FEDERATED_IDENTITY_CREDENTIALS_CREATE_OR_UPDATE,
    FEDERATED_IDENTITY_CREDENTIALS_DELETE,
];
