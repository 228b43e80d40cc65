//! Every EKS and IAM operation the provider makes, named once: the call, its span, its count
//! in the run and the fake's counters all use these, so a misspelt name cannot miscount.

use porter_identity_core::{Cloud, Operation};

const fn aws(name: &'static str) -> Operation {
    Operation::new(Cloud::Aws, name)
}

pub(crate) const DESCRIBE_CLUSTER: Operation = aws("DescribeCluster");
pub(crate) const DESCRIBE_ADDON: Operation = aws("DescribeAddon");
pub(crate) const GET_ROLE: Operation = aws("GetRole");
pub(crate) const LIST_POD_IDENTITY_ASSOCIATIONS: Operation = aws("ListPodIdentityAssociations");
pub(crate) const DESCRIBE_POD_IDENTITY_ASSOCIATION: Operation =
    aws("DescribePodIdentityAssociation");
pub(crate) const CREATE_POD_IDENTITY_ASSOCIATION: Operation = aws("CreatePodIdentityAssociation");
pub(crate) const UPDATE_POD_IDENTITY_ASSOCIATION: Operation = aws("UpdatePodIdentityAssociation");
pub(crate) const DELETE_POD_IDENTITY_ASSOCIATION: Operation = aws("DeletePodIdentityAssociation");
pub(crate) const LIST_ATTACHED_ROLE_POLICIES: Operation = aws("ListAttachedRolePolicies");
pub(crate) const GET_POLICY: Operation = aws("GetPolicy");
pub(crate) const GET_POLICY_VERSION: Operation = aws("GetPolicyVersion");
pub(crate) const LIST_ROLE_POLICIES: Operation = aws("ListRolePolicies");
pub(crate) const GET_ROLE_POLICY: Operation = aws("GetRolePolicy");

/// Every operation, for the fake's counters.
#[cfg(feature = "fake")]
pub(crate) const ALL: [Operation; 13] = [
    DESCRIBE_CLUSTER,
    DESCRIBE_ADDON,
    GET_ROLE,
    LIST_POD_IDENTITY_ASSOCIATIONS,
    DESCRIBE_POD_IDENTITY_ASSOCIATION,
    CREATE_POD_IDENTITY_ASSOCIATION,
    UPDATE_POD_IDENTITY_ASSOCIATION,
    DELETE_POD_IDENTITY_ASSOCIATION,
    LIST_ATTACHED_ROLE_POLICIES,
    GET_POLICY,
    GET_POLICY_VERSION,
    LIST_ROLE_POLICIES,
    GET_ROLE_POLICY,
];

/// The operations that write, for the fake's counters.
#[cfg(feature = "fake")]
pub(crate) const WRITES: [Operation; 3] = [
    CREATE_POD_IDENTITY_ASSOCIATION,
    UPDATE_POD_IDENTITY_ASSOCIATION,
    DELETE_POD_IDENTITY_ASSOCIATION,
];
