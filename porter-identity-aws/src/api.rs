//! The narrow port between the provider's logic and AWS: only the EKS and IAM calls the logic
//! needs, in the provider's own types. [`crate::sdk::SdkApi`] implements it over the AWS SDK,
//! [`crate::fake::FakeAws`] (feature `fake`) in memory, and tests mock it.
//!
//! Every method returns a porter-identity [`Error`](porter_identity_core::Error) whose kind is
//! already mapped from the AWS error code, so the logic never sees SDK types.

use std::collections::BTreeMap;
use std::fmt::Debug;

use async_trait::async_trait;
use porter_identity_core::Result;

/// The `eks-pod-identity-agent` add-on, which injects Pod Identity credentials into pods.
pub const POD_IDENTITY_AGENT_ADDON: &str = "eks-pod-identity-agent";

/// The parts of an EKS cluster (DescribeCluster) the logic uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterInfo {
    /// Cluster name.
    pub name: String,
    /// `arn:<partition>:eks:<region>:<account>:cluster/<name>`.
    pub arn: String,
    /// `CREATING`, `ACTIVE`, `DELETING`, `FAILED`, `UPDATING`, `PENDING`.
    pub status: String,
    /// `identity.oidc.issuer`: the cluster's OIDC issuer URL, which IRSA roles trust through
    /// an IAM OIDC provider.
    pub oidc_issuer: Option<String>,
}

impl ClusterInfo {
    /// The cluster's account, read from its ARN.
    pub fn account(&self) -> Option<&str> {
        self.arn.split(':').nth(4).filter(|a| !a.is_empty())
    }

    /// The cluster's partition, read from its ARN.
    pub fn partition(&self) -> Option<&str> {
        self.arn.split(':').nth(1).filter(|a| !a.is_empty())
    }
}

/// An EKS add-on (DescribeAddon).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddonInfo {
    /// Add-on name.
    pub name: String,
    /// `CREATING`, `ACTIVE`, `CREATE_FAILED`, `UPDATING`, `DELETING`, `DELETE_FAILED`, `DEGRADED`, `UPDATE_FAILED`.
    pub status: String,
    /// `health.issues[]`, as `code: message`.
    pub health_issues: Vec<String>,
}

/// An IAM role (GetRole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleInfo {
    /// Role name.
    pub name: String,
    /// Role ARN.
    pub arn: String,
    /// The trust policy as IAM returns it (URL-encoded JSON per RFC 3986; the provider
    /// decodes it, and takes plain JSON too).
    pub assume_role_policy_document: String,
}

/// A Pod Identity association as ListPodIdentityAssociations summarises it (no role ARN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssociationSummary {
    /// Association ID (`a-…`).
    pub association_id: String,
    /// Association ARN.
    pub association_arn: String,
    /// Namespace.
    pub namespace: String,
    /// Service account.
    pub service_account: String,
    /// Set when an EKS add-on owns the association: it must not be touched.
    pub owner_arn: Option<String>,
}

/// One page of ListPodIdentityAssociations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssociationPage {
    /// The associations of the page.
    pub associations: Vec<AssociationSummary>,
    /// The token of the next page; `None` on the last.
    pub next_token: Option<String>,
}

/// What an association asks of EKS beside its role: chain into a target role, leave out the
/// session tags, narrow the session with a policy. Create, Update and the association carry
/// the same three fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssociationSettings {
    /// `targetRoleArn`: the role EKS assumes with the association's role; its credentials are
    /// the pods'.
    pub target_role_arn: Option<String>,
    /// `disableSessionTags`.
    pub disable_session_tags: bool,
    /// `policy`: a session policy (JSON text).
    pub policy: Option<String>,
}

impl AssociationSettings {
    /// Whether two settings ask the same of EKS: a session policy compares as JSON, since EKS
    /// may return it spaced otherwise than it was sent.
    pub fn same_as(&self, other: &AssociationSettings) -> bool {
        let policy = |p: &Option<String>| {
            p.as_deref()
                .filter(|p| !p.trim().is_empty())
                .map(|p| serde_json::from_str::<serde_json::Value>(p).map_err(|_| p.to_owned()))
        };
        self.target_role_arn.as_deref().filter(|t| !t.is_empty())
            == other.target_role_arn.as_deref().filter(|t| !t.is_empty())
            && self.disable_session_tags == other.disable_session_tags
            && policy(&self.policy) == policy(&other.policy)
    }
}

/// A Pod Identity association in full (Describe/Create/UpdatePodIdentityAssociation).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Association {
    /// Association ID (`a-…`).
    pub association_id: String,
    /// Association ARN.
    pub association_arn: String,
    /// Namespace.
    pub namespace: String,
    /// Service account.
    pub service_account: String,
    /// The association's role (the role the pods get, unless a target role is set).
    pub role_arn: String,
    /// The target role, session tags and session policy.
    pub settings: AssociationSettings,
    /// `externalId`: made by EKS for an association with a target role; the target role's trust
    /// policy may require it as `sts:ExternalId`.
    pub external_id: Option<String>,
    /// Set when an EKS add-on owns the association.
    pub owner_arn: Option<String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// When it was last changed: `modifiedAt`, else `createdAt`. Pods started before then do
    /// not have its credentials (porter-identity-kube compares).
    pub changed_at: Option<std::time::SystemTime>,
}

/// The input of CreatePodIdentityAssociation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateAssociation {
    /// Cluster name.
    pub cluster: String,
    /// Namespace.
    pub namespace: String,
    /// Service account.
    pub service_account: String,
    /// Role ARN.
    pub role_arn: String,
    /// The target role, session tags and session policy.
    pub settings: AssociationSettings,
    /// Idempotency token: the same token within 24 hours returns the same association.
    pub client_request_token: String,
    /// Tags (porter-identity's managed-by marker, app, service).
    pub tags: BTreeMap<String, String>,
}

/// The input of UpdatePodIdentityAssociation, with EKS's semantics: a field that is `None` is
/// left as it is; `Some("")` removes a target role or a policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateAssociation {
    /// Cluster name.
    pub cluster: String,
    /// Association ID.
    pub association_id: String,
    /// Role ARN.
    pub role_arn: String,
    /// `targetRoleArn`: `Some("")` removes the target role.
    pub target_role_arn: Option<String>,
    /// `disableSessionTags`.
    pub disable_session_tags: Option<bool>,
    /// `policy`: `Some("")` removes the session policy.
    pub policy: Option<String>,
}

impl UpdateAssociation {
    /// The update that makes `current` have `role_arn` and `wanted`: every setting sent, those
    /// to remove as `""`.
    pub fn to(
        cluster: &str,
        current: &Association,
        role_arn: &str,
        wanted: &AssociationSettings,
    ) -> Self {
        let removed_or = |wanted: &Option<String>, now: &Option<String>| match (wanted, now) {
            (Some(w), _) => Some(w.clone()),
            (None, Some(n)) if !n.is_empty() => Some(String::new()),
            (None, _) => None,
        };
        UpdateAssociation {
            cluster: cluster.to_owned(),
            association_id: current.association_id.clone(),
            role_arn: role_arn.to_owned(),
            target_role_arn: removed_or(&wanted.target_role_arn, &current.settings.target_role_arn),
            disable_session_tags: Some(wanted.disable_session_tags),
            policy: removed_or(&wanted.policy, &current.settings.policy),
        }
    }
}

/// An IAM OIDC identity provider (GetOpenIDConnectProvider): what IRSA roles trust.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OidcProvider {
    /// Its ARN: `arn:<partition>:iam::<account>:oidc-provider/<issuer host and path>`.
    pub arn: String,
    /// The issuer it trusts, as IAM returns it (without `https://`).
    pub url: String,
    /// The audiences it accepts: IRSA's tokens are for `sts.amazonaws.com`.
    pub client_ids: Vec<String>,
}

/// A Fargate profile's selector: pods of `namespace` (wildcards `*` and `?` allowed) with all of
/// `labels` run on Fargate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FargateSelector {
    /// The namespace pattern.
    pub namespace: String,
    /// The pod labels it requires (none: every pod of the namespace).
    pub labels: BTreeMap<String, String>,
}

/// An EKS Fargate profile (DescribeFargateProfile).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FargateProfile {
    /// Its name.
    pub name: String,
    /// `CREATING`, `ACTIVE`, `DELETING`, `CREATE_FAILED`, `DELETE_FAILED`.
    pub status: String,
    /// Its selectors.
    pub selectors: Vec<FargateSelector>,
}

/// A managed policy attached to a role (ListAttachedRolePolicies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedPolicy {
    /// Policy name.
    pub name: String,
    /// Policy ARN.
    pub arn: String,
}

/// The EKS and IAM calls the provider makes. Implementations map AWS errors to
/// [`ErrorKind`](porter_identity_core::ErrorKind)s: `ResourceNotFoundException`/`NoSuchEntity`
/// → `NotFound`, `ResourceInUseException` → `AlreadyExists`, `ResourceLimitExceededException`
/// → `LimitExceeded`, throttling → `Throttled`, 5xx → `Unavailable`, `AccessDenied*` →
/// `PermissionDenied`, invalid or expired credentials → `Unauthenticated`.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait EksIamApi: Send + Sync + Debug {
    /// EKS DescribeCluster.
    async fn describe_cluster(&self, cluster: &str) -> Result<ClusterInfo>;
    /// EKS DescribeAddon; `None` when the add-on is not installed.
    async fn describe_addon(&self, cluster: &str, addon: &str) -> Result<Option<AddonInfo>>;
    /// IAM GetRole by role name.
    async fn get_role(&self, role_name: &str) -> Result<RoleInfo>;
    /// EKS ListPodIdentityAssociations: one page (up to 100 associations), filtered by
    /// namespace and service account where given. `next_token` is `None` for the first page;
    /// the provider follows the pages, each call retried on its own.
    async fn list_pod_identity_associations<'a>(
        &self,
        cluster: &str,
        namespace: Option<&'a str>,
        service_account: Option<&'a str>,
        next_token: Option<String>,
    ) -> Result<AssociationPage>;
    /// EKS DescribePodIdentityAssociation.
    async fn describe_pod_identity_association(
        &self,
        cluster: &str,
        association_id: &str,
    ) -> Result<Association>;
    /// EKS CreatePodIdentityAssociation.
    async fn create_pod_identity_association(
        &self,
        input: CreateAssociation,
    ) -> Result<Association>;
    /// EKS UpdatePodIdentityAssociation: the role and the settings, in place.
    async fn update_pod_identity_association(
        &self,
        input: UpdateAssociation,
    ) -> Result<Association>;
    /// EKS DeletePodIdentityAssociation.
    async fn delete_pod_identity_association(
        &self,
        cluster: &str,
        association_id: &str,
    ) -> Result<()>;
    /// IAM ListAttachedRolePolicies, all pages.
    async fn list_attached_role_policies(&self, role_name: &str) -> Result<Vec<AttachedPolicy>>;
    /// IAM GetPolicy then GetPolicyVersion of its default version: the document as returned
    /// (URL-encoded JSON).
    async fn get_managed_policy_document(&self, policy_arn: &str) -> Result<String>;
    /// IAM ListRolePolicies (inline policy names), all pages.
    async fn list_role_policies(&self, role_name: &str) -> Result<Vec<String>>;
    /// IAM GetRolePolicy: the inline policy's document as returned (URL-encoded JSON).
    async fn get_role_policy(&self, role_name: &str, policy_name: &str) -> Result<String>;
    /// IAM ListOpenIDConnectProviders: the ARNs of the account's OIDC providers.
    async fn list_open_id_connect_providers(&self) -> Result<Vec<String>>;
    /// IAM GetOpenIDConnectProvider.
    async fn get_open_id_connect_provider(&self, arn: &str) -> Result<OidcProvider>;
    /// EKS ListFargateProfiles, all pages: the profile names of a cluster.
    async fn list_fargate_profiles(&self, cluster: &str) -> Result<Vec<String>>;
    /// EKS DescribeFargateProfile.
    async fn describe_fargate_profile(&self, cluster: &str, name: &str) -> Result<FargateProfile>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(arn: &str) -> ClusterInfo {
        ClusterInfo {
            name: "prod".into(),
            arn: arn.into(),
            status: "ACTIVE".into(),
            ..ClusterInfo::default()
        }
    }

    #[test]
    fn cluster_account_and_partition_come_from_the_arn() {
        for (arn, partition) in [
            ("arn:aws:eks:us-east-1:111122223333:cluster/prod", "aws"),
            (
                "arn:aws-cn:eks:cn-north-1:111122223333:cluster/prod",
                "aws-cn",
            ),
            (
                "arn:aws-us-gov:eks:us-gov-west-1:111122223333:cluster/prod",
                "aws-us-gov",
            ),
        ] {
            let c = cluster(arn);
            assert_eq!(c.account(), Some("111122223333"), "{arn}");
            assert_eq!(c.partition(), Some(partition), "{arn}");
        }
    }

    #[test]
    fn a_malformed_cluster_arn_has_no_account() {
        assert_eq!(cluster("").account(), None);
        assert_eq!(
            cluster("arn:aws:eks:us-east-1::cluster/prod").account(),
            None
        );
        assert_eq!(cluster("not-an-arn").partition(), None);
    }
}
