//! The stable codes of the findings this provider reports. Tooling may match on them; they
//! never change meaning.

/// The AKS cluster does not exist (or is not visible to the caller).
pub const CLUSTER_NOT_FOUND: &str = "azure.cluster.not_found";
/// The cluster's OIDC issuer is off: no credential can trust it.
pub const OIDC_ISSUER_DISABLED: &str = "azure.cluster.oidc_issuer_disabled";
/// Workload identity (the mutating webhook) is off: pods get no token and no client id.
pub const WORKLOAD_IDENTITY_DISABLED: &str = "azure.cluster.workload_identity_disabled";
/// The issuer was given explicitly: the cluster itself was not read.
pub const ISSUER_EXPLICIT: &str = "azure.cluster.issuer_explicit";
/// The managed identity does not exist.
pub const IDENTITY_NOT_FOUND: &str = "azure.identity.not_found";
/// No federated identity credential trusts the cluster's issuer for the service account.
pub const CREDENTIAL_MISSING: &str = "azure.credential.missing";
/// The credential for the service account accepts another audience than
/// `api://AzureADTokenExchange`.
pub const CREDENTIAL_WRONG_AUDIENCE: &str = "azure.credential.wrong_audience";
/// The credential for the service account carries another app's or service's name (their
/// service-account names collide): porter-identity will not touch it.
pub const CREDENTIAL_OTHER_OWNER: &str = "azure.credential.other_owner";
/// The identity holds 18 or more of its 20 credentials.
pub const CREDENTIAL_LIMIT_NEAR: &str = "azure.fic.limit_near";

/// Owner, Contributor or User Access Administrator assigned to the identity, at any scope.
pub const LINT_BROAD_ROLE: &str = "lint.broad_role";
/// A role assigned to the identity at resource-group, subscription or management-group scope
/// (scope role assignments to individual resources).
pub const LINT_BROAD_SCOPE: &str = "lint.broad_scope";
/// One identity trusted by several service accounts or clusters.
pub const LINT_SHARED_IDENTITY: &str = "lint.shared_identity";
/// The identity's role assignments could not be read, so they were not linted.
pub const LINT_ROLES_UNREADABLE: &str = "lint.roles_unreadable";
