//! The stable codes of the findings this provider reports. Tooling may match on them; they
//! never change meaning.

/// The cluster does not exist (or is not visible to the caller).
pub const CLUSTER_NOT_FOUND: &str = "aws.cluster.not_found";
/// The cluster exists but its status is not `ACTIVE`.
pub const CLUSTER_NOT_ACTIVE: &str = "aws.cluster.not_active";
/// The `eks-pod-identity-agent` add-on is not installed: no pod gets Pod Identity credentials.
pub const AGENT_MISSING: &str = "aws.pod_identity_agent.missing";
/// The `eks-pod-identity-agent` add-on is installed but not `ACTIVE`, or reports health issues.
pub const AGENT_DEGRADED: &str = "aws.pod_identity_agent.degraded";
/// The role does not exist.
pub const ROLE_NOT_FOUND: &str = "aws.role.not_found";
/// The role is in another account than the cluster.
pub const ROLE_CROSS_ACCOUNT: &str = "aws.role.cross_account";
/// No trust-policy statement names principal `pods.eks.amazonaws.com`.
pub const TRUST_MISSING_PRINCIPAL: &str = "aws.trust_policy.missing_principal";
/// The trust policy does not allow `sts:AssumeRole` to `pods.eks.amazonaws.com`.
pub const TRUST_MISSING_ASSUME_ROLE: &str = "aws.trust_policy.missing_assume_role";
/// The trust policy does not allow `sts:TagSession` to `pods.eks.amazonaws.com`.
pub const TRUST_MISSING_TAG_SESSION: &str = "aws.trust_policy.missing_tag_session";
/// A `Deny` statement blocks `pods.eks.amazonaws.com`.
pub const TRUST_DENIED: &str = "aws.trust_policy.denied";
/// The allowing statement has conditions that cannot be checked offline.
pub const TRUST_CONDITIONAL: &str = "aws.trust_policy.conditional";
/// The trust policy document cannot be read.
pub const TRUST_MALFORMED: &str = "aws.trust_policy.malformed";
/// No association exists for the service account.
pub const ASSOCIATION_MISSING: &str = "aws.association.missing";
/// The association points at another role.
pub const ASSOCIATION_WRONG_ROLE: &str = "aws.association.wrong_role";
/// The association is owned by an EKS add-on (`ownerArn`): porter-identity will not touch it.
pub const ASSOCIATION_ADDON_OWNED: &str = "aws.association.addon_owned";
/// The association's tags name another app or service (their service-account names collide):
/// porter-identity will not touch it.
pub const ASSOCIATION_OTHER_OWNER: &str = "aws.association.other_owner";
/// The association's target role, session tags or session policy differ from porter.yaml's.
pub const ASSOCIATION_SETTINGS_DIFFER: &str = "aws.association.settings_differ";
/// The target role is in an account the provider has no credentials for: its trust policy was
/// not read (info; the finding gives the statements it needs).
pub const TARGET_ROLE_NOT_CHECKED: &str = "aws.target_role.not_checked";
/// The target role does not exist.
pub const TARGET_ROLE_NOT_FOUND: &str = "aws.target_role.not_found";
/// The target role's trust policy does not let the association's role assume it (or requires
/// another `sts:ExternalId`).
pub const TARGET_ROLE_UNTRUSTED: &str = "aws.target_role.untrusted";
/// No permission policy of the association's role allows `sts:AssumeRole` on the target role.
pub const TARGET_ROLE_NOT_ASSUMABLE: &str = "aws.target_role.not_assumable";
/// A Pod Identity binding whose namespace a Fargate profile selects: Fargate pods get no Pod
/// Identity credentials (the fix names IRSA mode).
pub const FARGATE_SELECTED: &str = "aws.fargate.selected";
/// The cluster's Fargate profiles could not be read for lack of permission (info): whether
/// Fargate runs the pods is not known.
pub const FARGATE_NOT_READ: &str = "aws.fargate.not_read";
/// IRSA: the account has no IAM OIDC provider for the cluster's issuer.
pub const IRSA_OIDC_PROVIDER_MISSING: &str = "aws.irsa.oidc_provider_missing";
/// IRSA: the OIDC provider does not accept the audience `sts.amazonaws.com`.
pub const IRSA_AUDIENCE_MISSING: &str = "aws.irsa.audience_missing";
/// IRSA: the role's trust policy does not let the OIDC provider in for the service account.
pub const IRSA_TRUST_MISSING: &str = "aws.irsa.trust_missing";
/// IRSA: the role trusts a wildcard subject (or any subject): other service accounts may
/// assume it too.
pub const IRSA_WILDCARD_SUBJECT: &str = "aws.irsa.wildcard_subject";
/// IRSA: the role is in an account the provider has no credentials for (info).
pub const IRSA_NOT_CHECKED: &str = "aws.irsa.not_checked";
/// IRSA: the service account also has a Pod Identity association.
pub const IRSA_WITH_ASSOCIATION: &str = "aws.irsa.with_association";

/// `Action: "*"` allowed.
pub const LINT_WILDCARD_ACTION: &str = "lint.wildcard_action";
/// `Action: "<service>:*"` allowed.
pub const LINT_SERVICE_WILDCARD_ACTION: &str = "lint.service_wildcard_action";
/// `Resource: "*"` on write actions.
pub const LINT_WILDCARD_RESOURCE: &str = "lint.wildcard_resource";
/// `AdministratorAccess` or `PowerUserAccess` attached.
pub const LINT_BROAD_MANAGED_POLICY: &str = "lint.broad_managed_policy";
/// An `Allow` statement with `NotAction`.
pub const LINT_NOT_ACTION_ALLOW: &str = "lint.not_action_allow";
/// One role used by several service accounts in the cluster.
pub const LINT_SHARED_ROLE: &str = "lint.shared_role";
/// A permission policy could not be read, so it was not linted.
pub const LINT_POLICY_UNREADABLE: &str = "lint.policy_unreadable";
