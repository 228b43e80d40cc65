//! Least-privilege lint of a managed identity: its role assignments (broad roles, broad
//! scopes) and the service accounts and clusters its credentials trust (a shared identity).
//! Pure functions over what ARM returned; `verify` reads and reports.

use porter_identity_core::Finding;

use crate::api::FederatedCredential;
use crate::codes;

/// The built-in roles that let their holder do (nearly) anything in their scope:
/// (GUID, name). GUIDs are the same in every tenant.
pub(crate) const BROAD_ROLES: [(&str, &str); 3] = [
    ("8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "Owner"),
    ("b24988ac-6180-42a0-ab88-20f7382dd24c", "Contributor"),
    (
        "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
        "User Access Administrator",
    ),
];

/// What a role assignment's scope is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScopeKind {
    /// `/` (the tenant root management group's parent).
    Root,
    /// `/providers/Microsoft.Management/managementGroups/{id}`.
    ManagementGroup,
    /// `/subscriptions/{id}`.
    Subscription,
    /// `/subscriptions/{id}/resourceGroups/{name}`.
    ResourceGroup,
    /// Anything narrower: one resource (or a child of one).
    Resource,
}

impl ScopeKind {
    /// Reads a scope as ARM writes it (case-insensitive).
    pub(crate) fn of(scope: &str) -> Self {
        let parts: Vec<String> = scope
            .trim_matches('/')
            .split('/')
            .filter(|p| !p.is_empty())
            .map(str::to_ascii_lowercase)
            .collect();
        match parts
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice()
        {
            [] => ScopeKind::Root,
            ["providers", "microsoft.management", "managementgroups", _] => {
                ScopeKind::ManagementGroup
            }
            ["subscriptions", _] => ScopeKind::Subscription,
            ["subscriptions", _, "resourcegroups", _] => ScopeKind::ResourceGroup,
            _ => ScopeKind::Resource,
        }
    }

    /// Whether the scope spans more than one resource.
    pub(crate) fn is_broad(self) -> bool {
        self != ScopeKind::Resource
    }

    fn describe(self) -> &'static str {
        match self {
            ScopeKind::Root => "the tenant root",
            ScopeKind::ManagementGroup => "a management group",
            ScopeKind::Subscription => "a subscription",
            ScopeKind::ResourceGroup => "a resource group",
            ScopeKind::Resource => "a resource",
        }
    }
}

/// The GUID of a role definition id (its last segment).
pub(crate) fn role_guid(role_definition_id: &str) -> &str {
    role_definition_id.rsplit('/').next().unwrap_or_default()
}

/// The broad built-in role with this GUID, if it is one.
pub(crate) fn broad_role(guid: &str) -> Option<&'static str> {
    BROAD_ROLES
        .iter()
        .find(|(g, _)| g.eq_ignore_ascii_case(guid))
        .map(|(_, name)| *name)
}

/// The finding of one role assignment of `identity`, if it breaks least privilege: a broad
/// role at any scope, or any role at a scope wider than one resource.
pub(crate) fn lint_assignment(
    identity: &str,
    role_name: &str,
    guid: &str,
    scope: &str,
) -> Option<Finding> {
    let kind = ScopeKind::of(scope);
    if let Some(broad) = broad_role(guid) {
        return Some(Finding::warning(
            codes::LINT_BROAD_ROLE,
            format!(
                "managed identity {identity} has the {broad} role at {} ({scope}): every workload trusted by it can change (or grant access to) whatever that scope holds",
                kind.describe()
            ),
            format!(
                "replace {broad} with the narrowest role that does the job (for example a data-plane role such as Storage Blob Data Reader) at the scope of the one resource the workload uses"
            ),
        ));
    }
    kind.is_broad().then(|| {
        Finding::warning(
            codes::LINT_BROAD_SCOPE,
            format!(
                "managed identity {identity} has the {role_name} role at {} ({scope}), not on one resource",
                kind.describe()
            ),
            format!(
                "assign {role_name} on the individual resources the workload uses (`az role assignment create --assignee <principal id> --role \"{role_name}\" --scope <resource id>`) and delete this assignment"
            ),
        )
    })
}

/// The finding of an identity trusted by several service accounts or clusters, if it is:
/// `held` are its credentials, `issuer` and `subject` the binding's own.
pub(crate) fn lint_shared_identity(
    identity: &str,
    issuer: &str,
    subject: &str,
    held: &[FederatedCredential],
) -> Option<Finding> {
    let others: Vec<String> = held
        .iter()
        .filter(|c| !(c.issuer == issuer && c.subject == subject))
        .map(|c| {
            if c.issuer == issuer {
                c.subject.clone()
            } else {
                format!("{} (issuer {})", c.subject, c.issuer)
            }
        })
        .collect();
    (!others.is_empty()).then(|| {
        Finding::warning(
            codes::LINT_SHARED_IDENTITY,
            format!(
                "managed identity {identity} is trusted by {} other service account{} or cluster{}: {}; each gets all of its permissions",
                others.len(),
                if others.len() == 1 { "" } else { "s" },
                if others.len() == 1 { "" } else { "s" },
                others.join(", ")
            ),
            "give each service its own managed identity with only the roles it needs",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STORAGE_READER: &str = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1";
    const ACCOUNT: &str =
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/a";

    #[test]
    fn scopes_are_read() {
        assert_eq!(ScopeKind::of("/"), ScopeKind::Root);
        assert_eq!(
            ScopeKind::of("/providers/Microsoft.Management/managementGroups/mg"),
            ScopeKind::ManagementGroup
        );
        assert_eq!(ScopeKind::of("/SUBSCRIPTIONS/s"), ScopeKind::Subscription);
        assert_eq!(
            ScopeKind::of("/subscriptions/s/resourcegroups/rg"),
            ScopeKind::ResourceGroup
        );
        assert_eq!(ScopeKind::of(ACCOUNT), ScopeKind::Resource);
        assert_eq!(
            ScopeKind::of(&format!("{ACCOUNT}/blobServices/default/containers/c")),
            ScopeKind::Resource
        );
        assert!(ScopeKind::ResourceGroup.is_broad());
        assert!(!ScopeKind::Resource.is_broad());
    }

    #[test]
    fn every_broad_role_is_found_at_any_scope() {
        for (guid, name) in BROAD_ROLES {
            for scope in ["/", "/subscriptions/s", ACCOUNT] {
                let f = lint_assignment("id", name, &guid.to_uppercase(), scope).unwrap();
                assert_eq!(f.code, codes::LINT_BROAD_ROLE, "{name} at {scope}");
                assert!(f.message.contains(name), "{f}");
            }
        }
    }

    #[test]
    fn any_role_at_a_wide_scope_is_found() {
        for scope in [
            "/",
            "/providers/Microsoft.Management/managementGroups/mg",
            "/subscriptions/s",
            "/subscriptions/s/resourceGroups/rg",
        ] {
            let f =
                lint_assignment("id", "Storage Blob Data Reader", STORAGE_READER, scope).unwrap();
            assert_eq!(f.code, codes::LINT_BROAD_SCOPE, "{scope}");
            assert!(f.remediation.contains("--scope"), "{f}");
        }
        assert!(
            lint_assignment("id", "Storage Blob Data Reader", STORAGE_READER, ACCOUNT).is_none()
        );
    }

    fn credential(issuer: &str, subject: &str) -> FederatedCredential {
        FederatedCredential {
            name: "c".into(),
            id: "x".into(),
            issuer: issuer.into(),
            subject: subject.into(),
            audiences: vec!["api://AzureADTokenExchange".into()],
        }
    }

    #[test]
    fn a_shared_identity_is_found() {
        let ours = credential("https://a/", "system:serviceaccount:prod:shop-api");
        assert!(
            lint_shared_identity(
                "id",
                "https://a/",
                "system:serviceaccount:prod:shop-api",
                std::slice::from_ref(&ours)
            )
            .is_none()
        );
        let other_sa = credential("https://a/", "system:serviceaccount:prod:shop-worker");
        let other_cluster = credential("https://b/", "system:serviceaccount:prod:shop-api");
        let f = lint_shared_identity(
            "id",
            "https://a/",
            "system:serviceaccount:prod:shop-api",
            &[ours, other_sa, other_cluster],
        )
        .unwrap();
        assert_eq!(f.code, codes::LINT_SHARED_IDENTITY);
        assert!(
            f.message.contains("shop-worker") && f.message.contains("issuer https://b/"),
            "{f}"
        );
    }
}

/// The examples that documented these items while they were public, kept as tests.
#[cfg(test)]
mod examples {
    #[test]
    fn example_of_of() {
        use crate::lint::ScopeKind;
        assert_eq!(ScopeKind::of("/subscriptions/s"), ScopeKind::Subscription);
        assert_eq!(
            ScopeKind::of("/subscriptions/s/resourceGroups/rg"),
            ScopeKind::ResourceGroup
        );
        assert_eq!(
            ScopeKind::of(
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/a"
            ),
            ScopeKind::Resource
        );
    }

    #[test]
    fn example_of_lint_assignment() {
        use crate::lint::lint_assignment;
        let f = lint_assignment(
            "api-id",
            "Owner",
            "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/a",
        )
        .unwrap();
        assert_eq!(f.code, "lint.broad_role");
        let f = lint_assignment(
            "api-id",
            "Storage Blob Data Reader",
            "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
            "/subscriptions/s",
        )
        .unwrap();
        assert_eq!(f.code, "lint.broad_scope");
        assert!(
            lint_assignment(
                "api-id",
                "Storage Blob Data Reader",
                "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/a"
            )
            .is_none()
        );
    }
}
