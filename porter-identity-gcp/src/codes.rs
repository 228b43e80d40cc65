//! The stable codes of the findings this provider reports. Tooling may match on them; they
//! never change meaning.

/// The GKE cluster does not exist (or is not visible to the caller).
pub const CLUSTER_NOT_FOUND: &str = "gcp.cluster.not_found";
/// Workload Identity is off on the cluster: it has no workload pool.
pub const WORKLOAD_IDENTITY_DISABLED: &str = "gcp.cluster.workload_identity_disabled";
/// The workload pool was given explicitly: the cluster itself was not read.
pub const POOL_EXPLICIT: &str = "gcp.cluster.pool_explicit";
/// A node pool is not in `GKE_METADATA` mode: its pods see the node's service account, not
/// their Workload Identity (one finding per pool).
pub const NODE_POOL_GCE_METADATA: &str = "gcp.node_pool.gce_metadata";
/// The GCP service account does not exist.
pub const SERVICE_ACCOUNT_NOT_FOUND: &str = "gcp.service_account.not_found";
/// The GCP service account is disabled.
pub const SERVICE_ACCOUNT_DISABLED: &str = "gcp.service_account.disabled";
/// The GCP service account lives in another project than the cluster's workload pool
/// (supported by GKE; said for the record).
pub const SERVICE_ACCOUNT_OTHER_PROJECT: &str = "gcp.service_account.other_project";
/// The GCP service account has user-managed keys: static credentials beside Workload Identity.
pub const SERVICE_ACCOUNT_USER_MANAGED_KEYS: &str = "gcp.service_account.user_managed_keys";
/// The service account's keys could not be listed, so they were not checked.
pub const SERVICE_ACCOUNT_KEYS_UNREADABLE: &str = "gcp.service_account.keys_unreadable";
/// The workload's member is not in an unconditional `roles/iam.workloadIdentityUser` binding.
pub const BINDING_MISSING: &str = "gcp.binding.missing";
/// The member is bound only under a condition: it works only when the condition holds.
pub const BINDING_CONDITIONAL_ONLY: &str = "gcp.binding.conditional_only";

/// `roles/owner` or `roles/editor` granted to the service account on its project.
pub const LINT_BROAD_ROLE: &str = "lint.broad_role";
/// Any other role granted to the service account on the whole project (scope role bindings
/// to individual resources).
pub const LINT_BROAD_SCOPE: &str = "lint.broad_scope";
/// A role that lets the service account act as other identities, granted on the project.
pub const LINT_IMPERSONATION: &str = "lint.impersonation";
/// One service account bound to several Kubernetes service accounts.
pub const LINT_SHARED_IDENTITY: &str = "lint.shared_identity";
/// The project's IAM policy could not be read, so the roles were not linted.
pub const LINT_ROLES_UNREADABLE: &str = "lint.roles_unreadable";
