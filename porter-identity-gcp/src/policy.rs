//! Edits of a service account's IAM policy: add or remove one member of the unconditional
//! `roles/iam.workloadIdentityUser` binding, and leave everything else exactly as read.
//!
//! Conditional bindings are never edited: a condition is someone's deliberate limit on a grant,
//! and an unconditional member is what Workload Identity needs. So `bind` adds the member to an
//! unconditional binding even when a conditional one already names it (verify reports that as
//! info), and `unbind` removes it only from unconditional bindings.

use crate::api::{Policy, PolicyBinding};
use crate::names::WORKLOAD_IDENTITY_USER;

/// Where a member stands in a policy, for `roles/iam.workloadIdentityUser`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MemberState {
    /// In an unconditional binding: Workload Identity works.
    Bound,
    /// Only in conditional bindings: it works only when the condition holds.
    OnlyConditional,
    /// Not in any binding of the role.
    Absent,
}

fn is_role(b: &PolicyBinding) -> bool {
    b.role == WORKLOAD_IDENTITY_USER
}

/// Where `member` stands in `policy`.
pub(crate) fn member_state(policy: &Policy, member: &str) -> MemberState {
    let mut conditional = false;
    for b in policy.bindings.iter().filter(|b| is_role(b)) {
        if b.members.iter().any(|m| m == member) {
            if b.condition.is_none() {
                return MemberState::Bound;
            }
            conditional = true;
        }
    }
    if conditional {
        MemberState::OnlyConditional
    } else {
        MemberState::Absent
    }
}

/// Adds `member` to the unconditional `roles/iam.workloadIdentityUser` binding (made if there
/// is none); `false` when it was already there. Nothing else changes.
pub(crate) fn add_member(policy: &mut Policy, member: &str) -> bool {
    if member_state(policy, member) == MemberState::Bound {
        return false;
    }
    match policy
        .bindings
        .iter_mut()
        .find(|b| is_role(b) && b.condition.is_none())
    {
        Some(b) => b.members.push(member.to_owned()),
        None => policy.bindings.push(
            PolicyBinding::new()
                .set_role(WORKLOAD_IDENTITY_USER)
                .set_members([member]),
        ),
    }
    true
}

/// Removes `member` from every unconditional `roles/iam.workloadIdentityUser` binding, and drops
/// a binding it leaves empty (IAM refuses bindings without members); `false` when it was in
/// none. Conditional bindings and every other member stay.
pub(crate) fn remove_member(policy: &mut Policy, member: &str) -> bool {
    let mut removed = false;
    for b in policy
        .bindings
        .iter_mut()
        .filter(|b| is_role(b) && b.condition.is_none())
    {
        let before = b.members.len();
        b.members.retain(|m| m != member);
        removed |= b.members.len() != before;
    }
    if removed {
        policy
            .bindings
            .retain(|b| !(is_role(b) && b.condition.is_none() && b.members.is_empty()));
    }
    removed
}

/// The Workload Identity members of `policy` (unconditional or not): the Kubernetes service
/// accounts that can impersonate the service account.
pub(crate) fn workload_members(policy: &Policy) -> impl Iterator<Item = &str> {
    policy
        .bindings
        .iter()
        .filter(|b| is_role(b))
        .flat_map(|b| b.members.iter().map(String::as_str))
        .filter(|m| crate::names::parse_member(m).is_some())
}

/// The roles `member` holds in a (project) policy, each once, conditional grants included.
pub(crate) fn roles_of<'a>(policy: &'a Policy, member: &str) -> Vec<&'a str> {
    let mut roles: Vec<&str> = policy
        .bindings
        .iter()
        .filter(|b| b.members.iter().any(|m| m == member))
        .map(|b| b.role.as_str())
        .collect();
    roles.sort_unstable();
    roles.dedup();
    roles
}

#[cfg(test)]
mod tests {
    use google_cloud_iam_v1::model::{AuditConfig, AuditLogConfig};
    use google_cloud_type::model::Expr;

    use super::*;

    const ME: &str = "serviceAccount:p-123456.svc.id.goog[shop/api]";
    const OTHER: &str = "serviceAccount:p-123456.svc.id.goog[shop/worker]";

    fn binding(role: &str, members: &[&str]) -> PolicyBinding {
        PolicyBinding::new()
            .set_role(role)
            .set_members(members.iter().copied())
    }

    fn conditional(role: &str, members: &[&str]) -> PolicyBinding {
        binding(role, members).set_condition(
            Expr::new()
                .set_title("until-2027")
                .set_expression("request.time < timestamp('2027-01-01T00:00:00Z')"),
        )
    }

    fn policy(bindings: Vec<PolicyBinding>) -> Policy {
        Policy::new()
            .set_version(3)
            .set_etag(bytes::Bytes::from_static(b"\x00\x01etag"))
            .set_bindings(bindings)
            .set_audit_configs([AuditConfig::new()
                .set_service("allServices")
                .set_audit_log_configs([AuditLogConfig::new()])])
    }

    #[test]
    fn adds_to_the_existing_unconditional_binding_keeping_its_members() {
        let mut p = policy(vec![
            binding("roles/iam.serviceAccountUser", &["user:ana@example.com"]),
            binding(WORKLOAD_IDENTITY_USER, &[OTHER]),
        ]);
        let before = p.clone();
        assert!(add_member(&mut p, ME));
        assert_eq!(p.bindings[1].members, vec![OTHER, ME]);
        assert_eq!(p.bindings[0], before.bindings[0]);
        assert_eq!(
            (p.version, &p.etag, &p.audit_configs),
            (3, &before.etag, &before.audit_configs)
        );
        assert!(!add_member(&mut p, ME), "a second add changes nothing");
        assert_eq!(p.bindings[1].members.len(), 2);
    }

    #[test]
    fn adds_a_new_binding_when_the_role_has_none() {
        let mut p = policy(vec![binding("roles/viewer", &["user:ana@example.com"])]);
        assert_eq!(member_state(&p, ME), MemberState::Absent);
        assert!(add_member(&mut p, ME));
        assert_eq!(p.bindings.len(), 2);
        assert_eq!(p.bindings[1].role, WORKLOAD_IDENTITY_USER);
        assert_eq!(p.bindings[1].members, vec![ME]);
        assert!(p.bindings[1].condition.is_none());
        assert_eq!(member_state(&p, ME), MemberState::Bound);
    }

    #[test]
    fn conditional_bindings_are_left_untouched() {
        let cond = conditional(WORKLOAD_IDENTITY_USER, &[ME]);
        let mut p = policy(vec![cond.clone()]);
        assert_eq!(member_state(&p, ME), MemberState::OnlyConditional);
        assert!(
            add_member(&mut p, ME),
            "an unconditional grant is added beside it"
        );
        assert_eq!(p.bindings[0], cond);
        assert_eq!(member_state(&p, ME), MemberState::Bound);
        assert!(remove_member(&mut p, ME));
        assert_eq!(
            p.bindings,
            vec![cond.clone()],
            "only the unconditional one goes"
        );
        assert!(
            !remove_member(&mut p, ME),
            "a conditional grant is not ours to remove"
        );
        assert_eq!(p.bindings, vec![cond]);
    }

    #[test]
    fn removing_the_last_member_drops_the_binding_and_keeps_the_rest() {
        let viewer = binding("roles/viewer", &[ME]);
        let mut p = policy(vec![viewer.clone(), binding(WORKLOAD_IDENTITY_USER, &[ME])]);
        assert!(remove_member(&mut p, ME));
        assert_eq!(
            p.bindings,
            vec![viewer],
            "another role's member of the same name stays"
        );
        assert_eq!(p.version, 3);
        assert_eq!(p.audit_configs.len(), 1);
    }

    #[test]
    fn removing_keeps_the_other_members() {
        let mut p = policy(vec![binding(WORKLOAD_IDENTITY_USER, &[OTHER, ME])]);
        assert!(remove_member(&mut p, ME));
        assert_eq!(p.bindings[0].members, vec![OTHER]);
        assert!(!remove_member(&mut p, ME));
    }

    #[test]
    fn workload_members_and_roles() {
        let p = policy(vec![
            binding(WORKLOAD_IDENTITY_USER, &[ME, "user:ana@example.com"]),
            conditional(WORKLOAD_IDENTITY_USER, &[OTHER]),
            binding("roles/owner", &[ME]),
            binding("roles/editor", &[ME]),
        ]);
        assert_eq!(workload_members(&p).collect::<Vec<_>>(), vec![ME, OTHER]);
        assert_eq!(
            roles_of(&p, ME),
            vec![
                "roles/editor",
                "roles/iam.workloadIdentityUser",
                "roles/owner"
            ]
        );
    }
}
