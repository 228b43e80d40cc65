//! Every Google Cloud operation the provider makes, named once: the call, its span, its count
//! in the run and the fake's counters all use these, so a misspelt name cannot miscount. The
//! names are the methods of the IAM and GKE APIs (`getIamPolicy` and `setIamPolicy` are
//! `projects.serviceAccounts.*`; `projects.getIamPolicy` is the Resource Manager's).

use porter_identity_core::{Cloud, Operation};

/// An operation of the GKE API (`container.googleapis.com`).
const fn gke(name: &'static str) -> Operation {
    Operation::new(Cloud::Gcp, name).on_endpoint("container")
}

/// An operation of the IAM API (`iam.googleapis.com`).
const fn iam(name: &'static str) -> Operation {
    Operation::new(Cloud::Gcp, name).on_endpoint("iam")
}

/// An operation of the Resource Manager API (`cloudresourcemanager.googleapis.com`).
const fn resource_manager(name: &'static str) -> Operation {
    Operation::new(Cloud::Gcp, name).on_endpoint("cloudresourcemanager")
}

pub(crate) const CLUSTERS_GET: Operation = gke("clusters.get");
pub(crate) const NODE_POOLS_GET: Operation = gke("nodePools.get");
pub(crate) const NODE_POOLS_UPDATE: Operation = gke("nodePools.update");
pub(crate) const SERVICE_ACCOUNTS_GET: Operation = iam("serviceAccounts.get");
pub(crate) const GET_IAM_POLICY: Operation = iam("getIamPolicy");
pub(crate) const SET_IAM_POLICY: Operation = iam("setIamPolicy");
pub(crate) const SERVICE_ACCOUNTS_KEYS_LIST: Operation = iam("serviceAccounts.keys.list");
pub(crate) const PROJECTS_GET_IAM_POLICY: Operation = resource_manager("projects.getIamPolicy");

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
