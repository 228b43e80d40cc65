//! `IdentityPolicy`: who may link what. A namespaced `AppIdentity` could otherwise link any role
//! or identity the controller's credentials reach to any ServiceAccount of its namespace — a
//! privilege escalation — so the controller denies by default: a link is made only when a
//! cluster-scoped `IdentityPolicy` names both its namespace and its identity.

use kube::CustomResource;
use porter_identity_core::provider::wildcard_match;
use porter_identity_core::{Binding, Connection};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Which namespaces may link which cloud identities. Every list holds patterns: `*` matches any
/// run of characters, `?` one.
///
/// ```yaml
/// apiVersion: identity.porter.run/v1alpha1
/// kind: IdentityPolicy
/// metadata: {name: shop}
/// spec:
///   namespaces: [shop, shop-*]
///   awsRoles: ["arn:aws:iam::111122223333:role/shop-*"]
///   azureIdentities: ["shop-rg/*"]
///   gcpServiceAccounts: ["*@shop-123456.iam.gserviceaccount.com"]
/// ```
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "identity.porter.run",
    version = "v1alpha1",
    kind = "IdentityPolicy",
    plural = "identitypolicies",
    printcolumn = r#"{"name":"Namespaces","type":"string","jsonPath":".spec.namespaces"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct IdentityPolicySpec {
    /// The namespaces this policy lets link.
    pub namespaces: Vec<String>,
    /// IAM roles (by ARN; a role given by name in an `AppIdentity` is matched as
    /// `arn:aws:iam::<cluster account>:role/<name>` once its account is known, and by name
    /// before) and target roles they may use.
    #[serde(default)]
    pub aws_roles: Vec<String>,
    /// User-assigned managed identities, as `<resource group>/<identity name>`.
    #[serde(default)]
    pub azure_identities: Vec<String>,
    /// GCP service accounts, by email.
    #[serde(default)]
    pub gcp_service_accounts: Vec<String>,
}

/// Why a link is refused: what it asked, and what to add to an `IdentityPolicy`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no IdentityPolicy lets namespace {namespace} link {identity}; fix: {fix}")]
pub struct Denial {
    /// The namespace of the link.
    pub namespace: String,
    /// The identity, as the connection names it (`awsRole arn:…`).
    pub identity: String,
    /// What to add, as the policy's YAML.
    pub fix: String,
}

/// Whether `policies` let `binding` be linked: a policy names its namespace and every identity
/// it asks for (an AWS target role included). Connections of other types ask for none.
pub fn check(policies: &[IdentityPolicySpec], binding: &Binding) -> Result<(), Denial> {
    let namespace = binding.workload.namespace().as_str();
    let (field, wanted): (&str, Vec<String>) = match &binding.connection {
        Connection::AwsRole { role, options, .. } => (
            "awsRoles",
            std::iter::once(role.as_str().to_owned())
                .chain(options.target_role.iter().map(|t| t.as_str().to_owned()))
                .collect(),
        ),
        Connection::AzureManagedIdentity {
            identity_name,
            resource_group,
            ..
        } => (
            "azureIdentities",
            vec![format!("{resource_group}/{identity_name}")],
        ),
        Connection::GcpServiceAccount {
            service_account_email,
            ..
        } => (
            "gcpServiceAccounts",
            vec![service_account_email.as_str().to_owned()],
        ),
        _ => return Ok(()),
    };
    for identity in &wanted {
        let allowed = policies.iter().any(|p| {
            p.namespaces.iter().any(|n| wildcard_match(n, namespace))
                && p.identities(field)
                    .iter()
                    .any(|i| wildcard_match(i, identity))
        });
        if !allowed {
            return Err(Denial {
                namespace: namespace.to_owned(),
                identity: format!("{} {identity}", binding.connection.type_name()),
                fix: format!(
                    "add an IdentityPolicy (or extend one) with `namespaces: [{namespace}]` and `{field}: [\"{identity}\"]`"
                ),
            });
        }
    }
    Ok(())
}

impl IdentityPolicySpec {
    fn identities(&self, field: &str) -> &[String] {
        match field {
            "awsRoles" => &self.aws_roles,
            "azureIdentities" => &self.azure_identities,
            _ => &self.gcp_service_accounts,
        }
    }
}

#[cfg(test)]
mod tests {
    use porter_identity_core::{AwsRoleOptions, RoleRef, Workload};

    use super::*;

    fn aws(ns: &str, role: &str, target: Option<&str>) -> Binding {
        let mut options = AwsRoleOptions::default();
        if let Some(t) = target {
            options = options.target_role(RoleRef::parse(t).unwrap()).unwrap();
        }
        Binding::new(
            Workload::for_service(ns, "shop", "api").unwrap(),
            Connection::aws_role_with(RoleRef::parse(role).unwrap(), options).unwrap(),
        )
    }

    fn shop_policy() -> IdentityPolicySpec {
        IdentityPolicySpec {
            namespaces: vec!["shop".into(), "shop-*".into()],
            aws_roles: vec!["arn:aws:iam::111122223333:role/shop-*".into()],
            ..IdentityPolicySpec::default()
        }
    }

    #[test]
    fn nothing_is_allowed_without_a_policy() {
        let b = aws("shop", "arn:aws:iam::111122223333:role/shop-api", None);
        let denied = check(&[], &b).unwrap_err();
        assert_eq!(denied.namespace, "shop");
        assert!(denied.fix.contains("namespaces: [shop]"), "{denied}");
        assert!(
            denied
                .fix
                .contains(r#"awsRoles: ["arn:aws:iam::111122223333:role/shop-api"]"#),
            "{denied}"
        );
    }

    #[test]
    fn a_policy_names_both_the_namespace_and_the_identity() {
        let p = [shop_policy()];
        assert!(
            check(
                &p,
                &aws(
                    "shop-staging",
                    "arn:aws:iam::111122223333:role/shop-api",
                    None
                )
            )
            .is_ok()
        );
        // Another namespace, the same role: denied.
        assert!(
            check(
                &p,
                &aws("billing", "arn:aws:iam::111122223333:role/shop-api", None)
            )
            .is_err()
        );
        // The namespace, another role: denied.
        assert!(
            check(
                &p,
                &aws("shop", "arn:aws:iam::111122223333:role/admin", None)
            )
            .is_err()
        );
        // A name is not an ARN the policy names.
        assert!(check(&p, &aws("shop", "shop-api", None)).is_err());
    }

    #[test]
    fn a_target_role_must_be_allowed_too() {
        let p = [shop_policy()];
        let chained = aws(
            "shop",
            "arn:aws:iam::111122223333:role/shop-api",
            Some("arn:aws:iam::444455556666:role/billing-data"),
        );
        let denied = check(&p, &chained).unwrap_err();
        assert!(denied.identity.contains("billing-data"), "{denied}");
    }
}
