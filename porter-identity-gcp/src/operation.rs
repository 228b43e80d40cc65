//! Every Google Cloud operation the provider makes, named once: the call, its span, its count
//! in the run and the fake's counters all use these, so a misspelt name cannot miscount. The
//! names are the methods of the IAM and GKE APIs (`getIamPolicy` and `setIamPolicy` are
//! `projects.serviceAccounts.*`; `projects.getIamPolicy` is the Resource Manager's).

use porter_identity_core::{Cloud, Operation};

const fn gcp(name: &'static str) -> Operation {
    Operation::new(Cloud::Gcp, name)
}

pub(crate) const CLUSTERS_GET: Operation = gcp("clusters.get");
pub(crate) const NODE_POOLS_GET: Operation = gcp("nodePools.get");
pub(crate) const NODE_POOLS_UPDATE: Operation = gcp("nodePools.update");
pub(crate) const SERVICE_ACCOUNTS_GET: Operation = gcp("serviceAccounts.get");
pub(crate) const GET_IAM_POLICY: Operation = gcp("getIamPolicy");
pub(crate) const SET_IAM_POLICY: Operation = gcp("setIamPolicy");
pub(crate) const SERVICE_ACCOUNTS_KEYS_LIST: Operation = gcp("serviceAccounts.keys.list");
pub(crate) const PROJECTS_GET_IAM_POLICY: Operation = gcp("projects.getIamPolicy");

/// Every operation, for the fake's counters.
#[cfg(feature = "fake")]
pub(crate) const ALL: [Operation; 8] = [
    CLUSTERS_GET,
    NODE_POOLS_GET,
    NODE_POOLS_UPDATE,
    SERVICE_ACCOUNTS_GET,
    GET_IAM_POLICY,
    SET_IAM_POLICY,
    SERVICE_ACCOUNTS_KEYS_LIST,
    PROJECTS_GET_IAM_POLICY,
];
