//! Every EKS and IAM operation the provider makes, named once: the call, its span, its count
//! in the run and the fake's counters all use these, so a misspelt name cannot miscount.

use porter_identity_core::{Cloud, Operation};

/// An operation of the EKS API.
const fn eks(name: &'static str) -> Operation {
    Operation::new(Cloud::Aws, name).on_endpoint("eks")
}

/// An operation of the IAM API: another endpoint, whose failures do not stop EKS calls.
const fn iam(name: &'static str) -> Operation {
    Operation::new(Cloud::Aws, name).on_endpoint("iam")
}

pub(crate) const DESCRIBE_CLUSTER: Operation = eks("DescribeCluster");
pub(crate) const DESCRIBE_ADDON: Operation = eks("DescribeAddon");
pub(crate) const GET_ROLE: Operation = iam("GetRole");
pub(crate) const LIST_POD_IDENTITY_ASSOCIATIONS: Operation = eks("ListPodIdentityAssociations");
pub(crate) const DESCRIBE_POD_IDENTITY_ASSOCIATION: Operation =
    eks("DescribePodIdentityAssociation");
pub(crate) const CREATE_POD_IDENTITY_ASSOCIATION: Operation = eks("CreatePodIdentityAssociation");
pub(crate) const UPDATE_POD_IDENTITY_ASSOCIATION: Operation = eks("UpdatePodIdentityAssociation");
pub(crate) const DELETE_POD_IDENTITY_ASSOCIATION: Operation = eks("DeletePodIdentityAssociation");
pub(crate) const LIST_ATTACHED_ROLE_POLICIES: Operation = iam("ListAttachedRolePolicies");
pub(crate) const GET_POLICY: Operation = iam("GetPolicy");
pub(crate) const GET_POLICY_VERSION: Operation = iam("GetPolicyVersion");
pub(crate) const LIST_ROLE_POLICIES: Operation = iam("ListRolePolicies");
pub(crate) const GET_ROLE_POLICY: Operation = iam("GetRolePolicy");
pub(crate) const LIST_OPEN_ID_CONNECT_PROVIDERS: Operation = iam("ListOpenIDConnectProviders");
pub(crate) const GET_OPEN_ID_CONNECT_PROVIDER: Operation = iam("GetOpenIDConnectProvider");
pub(crate) const LIST_FARGATE_PROFILES: Operation = eks("ListFargateProfiles");
pub(crate) const DESCRIBE_FARGATE_PROFILE: Operation = eks("DescribeFargateProfile");

/// Every operation, for the fake's counters.
#[cfg(feature = "fake")]
pub(crate) const ALL: [Operation; 17] = [
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
    LIST_OPEN_ID_CONNECT_PROVIDERS,
    GET_OPEN_ID_CONNECT_PROVIDER,
    LIST_FARGATE_PROFILES,
    DESCRIBE_FARGATE_PROFILE,
];

/// The operations that write, for the fake's counters.
#[cfg(feature = "fake")]
pub(crate) const WRITES: [Operation; 3] = [
    CREATE_POD_IDENTITY_ASSOCIATION,
    UPDATE_POD_IDENTITY_ASSOCIATION,
    DELETE_POD_IDENTITY_ASSOCIATION,
];
