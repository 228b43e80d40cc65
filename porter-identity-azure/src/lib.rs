//! Azure workload identity for porter-identity: links each Kubernetes workload's service
//! account to a user-assigned managed identity with a federated identity credential that
//! trusts the cluster's OIDC issuer.
//!
//! The crate's rooms: [`api`] is the port (the ARM calls the logic needs), [`names`] derives
//! credential names and compares issuers.

pub mod api;
pub mod arm;
pub mod credential;
pub mod names;
