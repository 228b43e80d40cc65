//! Least-privilege lint of a GCP service account: the roles it holds on its whole project, and
//! the Kubernetes service accounts that can act as it. Pure functions over what IAM and
//! Resource Manager returned; `verify` reads and reports.

use porter_identity_core::Finding;

use crate::api::Policy;
use crate::codes;
use crate::policy::{roles_of, workload_members};

/// Roles that let their holder do (nearly) anything in the project.
pub(crate) const BROAD_ROLES: [&str; 2] = ["roles/owner", "roles/editor"];

/// Roles that let their holder act as other identities when granted on the project: mint
/// their tokens, attach them, or impersonate them through Workload Identity.
pub(crate) const IMPERSONATION_ROLES: [&str; 3] = [
    "roles/iam.serviceAccountTokenCreator",
    "roles/iam.serviceAccountUser",
    "roles/iam.workloadIdentityUser",
];

/// The findings of the project-level roles of `email` in `project`'s IAM policy: one per role.
pub(crate) fn lint_project_roles(email: &str, project: &str, policy: &Policy) -> Vec<Finding> {
    let member = format!("serviceAccount:{email}");
    roles_of(policy, &member)
        .into_iter()
        .map(|role| {
            let remove = format!(
                "`gcloud projects remove-iam-policy-binding {project} --member={member} --role={role}`"
            );
            if BROAD_ROLES.contains(&role) {
                Finding::warning(
                    codes::LINT_BROAD_ROLE,
                    format!(
                        "service account {email} holds {role} on project {project}: every workload bound to it can change nearly anything in the project"
                    ),
                    format!(
                        "grant only the roles the service needs, on the resources it uses, then remove {role}: {remove}"
                    ),
                )
            } else if IMPERSONATION_ROLES.contains(&role) {
                Finding::warning(
                    codes::LINT_IMPERSONATION,
                    format!(
                        "service account {email} holds {role} on project {project}: it can act as every other service account of the project"
                    ),
                    format!(
                        "grant {role} on the one service account it must act as, if any, and remove the project-level grant: {remove}"
                    ),
                )
            } else {
                Finding::warning(
                    codes::LINT_BROAD_SCOPE,
                    format!(
                        "service account {email} holds {role} on the whole project {project}"
                    ),
                    format!(
                        "grant {role} on the individual resources the service uses (e.g. roles/storage.objectViewer on one bucket), then remove the project-level grant: {remove}"
                    ),
                )
            }
        })
        .collect()
}

/// A finding when several Kubernetes service accounts can act as `email` (a shared identity:
/// one compromised workload has every other one's permissions).
pub(crate) fn lint_shared_identity(email: &str, policy: &Policy) -> Option<Finding> {
    let mut members: Vec<&str> = workload_members(policy).collect();
    members.sort_unstable();
    members.dedup();
    (members.len() > 1).then(|| {
        Finding::warning(
            codes::LINT_SHARED_IDENTITY,
            format!(
                "service account {email} can be used by {} Kubernetes service accounts: {}",
                members.len(),
                members.join(", ")
            ),
            "give each service its own GCP service account with only the roles it needs",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::PolicyBinding;

    const SA: &str = "app@demo-project.iam.gserviceaccount.com";

    fn granted(roles: &[&str]) -> Policy {
        Policy::new().set_bindings(roles.iter().map(|r| {
            PolicyBinding::new().set_role(*r).set_members([
                format!("serviceAccount:{SA}"),
                "user:ana@example.com".into(),
            ])
        }))
    }

    #[test]
    fn every_project_role_rule() {
        let p = granted(&[
            "roles/owner",
            "roles/editor",
            "roles/iam.serviceAccountTokenCreator",
            "roles/iam.serviceAccountUser",
            "roles/iam.workloadIdentityUser",
            "roles/pubsub.publisher",
        ]);
        let found = lint_project_roles(SA, "demo-project", &p);
        let codes: Vec<&str> = found.iter().map(|f| f.code.as_str()).collect();
        assert_eq!(
            codes,
            [
                "lint.broad_role", // roles/editor
                "lint.impersonation",
                "lint.impersonation",
                "lint.impersonation",
                "lint.broad_role",  // roles/owner
                "lint.broad_scope"  // roles/pubsub.publisher
            ],
            "{found:#?}"
        );
        for f in &found {
            assert!(
                f.remediation
                    .contains("remove-iam-policy-binding demo-project"),
                "{f}"
            );
            assert!(!f.message.contains("Fix:"), "the fix is said once: {f}");
        }
    }

    #[test]
    fn other_members_roles_are_not_this_accounts() {
        let p = Policy::new().set_bindings([PolicyBinding::new()
            .set_role("roles/owner")
            .set_members(["serviceAccount:other@demo-project.iam.gserviceaccount.com"])]);
        assert!(lint_project_roles(SA, "demo-project", &p).is_empty());
    }

    #[test]
    fn one_kubernetes_service_account_is_not_shared() {
        let p = Policy::new().set_bindings([PolicyBinding::new()
            .set_role("roles/iam.workloadIdentityUser")
            .set_members([
                "serviceAccount:p-123456.svc.id.goog[shop/api]",
                "user:ana@example.com",
            ])]);
        assert!(lint_shared_identity(SA, &p).is_none());
    }
}

/// The examples that documented these items while they were public, kept as tests.
#[cfg(test)]
mod examples {
    #[test]
    fn example_of_lint_project_roles() {
        use crate::api::{Policy, PolicyBinding};
        use crate::lint::lint_project_roles;
        let sa = "app@demo-project.iam.gserviceaccount.com";
        let policy = Policy::new().set_bindings([
            PolicyBinding::new()
                .set_role("roles/editor")
                .set_members([format!("serviceAccount:{sa}")]),
            PolicyBinding::new()
                .set_role("roles/storage.objectViewer")
                .set_members([format!("serviceAccount:{sa}")]),
        ]);
        let codes: Vec<_> = lint_project_roles(sa, "demo-project", &policy)
            .into_iter()
            .map(|f| f.code)
            .collect();
        assert_eq!(codes, ["lint.broad_role", "lint.broad_scope"]);
    }

    #[test]
    fn example_of_lint_shared_identity() {
        use crate::api::{Policy, PolicyBinding};
        use crate::lint::lint_shared_identity;
        let policy = Policy::new().set_bindings([PolicyBinding::new()
            .set_role("roles/iam.workloadIdentityUser")
            .set_members([
                "serviceAccount:p-123456.svc.id.goog[shop/api]",
                "serviceAccount:p-123456.svc.id.goog[shop/worker]",
            ])]);
        assert_eq!(
            lint_shared_identity("app@p-123456.iam.gserviceaccount.com", &policy)
                .unwrap()
                .code,
            "lint.shared_identity"
        );
    }
}
