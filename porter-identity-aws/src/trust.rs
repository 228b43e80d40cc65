//! Is a role's trust policy right for EKS Pod Identity?
//!
//! The Pod Identity agent assumes the role as the service principal
//! [`EKS_PODS_PRINCIPAL`] and tags the session (`eks-cluster-name`, `kubernetes-namespace`,
//! …), so the trust policy must allow both `sts:AssumeRole` and `sts:TagSession` to that
//! principal, and no `Deny` may block either. The check runs before bind writes anything, so
//! a wrong trust policy is reported as what it is instead of as pods without credentials.

use porter_identity_core::Finding;

use crate::codes::{
    TRUST_CONDITIONAL, TRUST_DENIED, TRUST_MALFORMED, TRUST_MISSING_ASSUME_ROLE,
    TRUST_MISSING_PRINCIPAL, TRUST_MISSING_TAG_SESSION,
};
use crate::policy::{Effect, PolicyDocument, PolicyError, Statement, statement_label};

/// The service principal EKS Pod Identity assumes roles as.
pub(crate) const EKS_PODS_PRINCIPAL: &str = "pods.eks.amazonaws.com";

/// The action that gives the pod the role's credentials.
const ASSUME_ROLE: &str = "sts:AssumeRole";
/// Pod Identity always tags the session; without this STS rejects the whole assume call.
const TAG_SESSION: &str = "sts:TagSession";

/// The statement a Pod Identity role's trust policy needs, written the way the IAM console
/// shows JSON (hand-written so the key order reads Effect, Principal, Action).
const REQUIRED_STATEMENT: &str = r#"{
  "Effect": "Allow",
  "Principal": {
    "Service": "pods.eks.amazonaws.com"
  },
  "Action": [
    "sts:AssumeRole",
    "sts:TagSession"
  ]
}"#;

/// The trust-policy statement EKS Pod Identity needs, as pretty JSON: allow `sts:AssumeRole`
/// and `sts:TagSession` to `pods.eks.amazonaws.com`. Remediations quote it so the fix can be
/// pasted as is.
pub(crate) fn required_trust_statement_json() -> String {
    REQUIRED_STATEMENT.to_owned()
}

/// A complete trust policy (Version `2012-10-17`) holding only
/// [`required_trust_statement_json`], for creating a role from scratch.
pub(crate) fn required_trust_policy_json() -> String {
    let statement = REQUIRED_STATEMENT.replace('\n', "\n    ");
    format!("{{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [\n    {statement}\n  ]\n}}")
}

/// How the trust policy treats one required action for [`EKS_PODS_PRINCIPAL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Permission {
    /// No statement allows it.
    NotAllowed,
    /// At least one `Allow` statement without a `Condition` allows it.
    Allowed,
    /// Only `Allow` statements with a `Condition` allow it: it works when the condition holds,
    /// which cannot be checked offline.
    AllowedWithCondition,
    /// A `Deny` statement without a `Condition` blocks it (Deny wins over any Allow).
    Denied,
}

impl Permission {
    /// Allowed, with or without a condition.
    pub(crate) fn is_allowed(self) -> bool {
        matches!(self, Permission::Allowed | Permission::AllowedWithCondition)
    }
}

/// Per-action evidence gathered over the statements; labels name the statements so a finding
/// can point at them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ActionEvidence {
    allowed_by: Vec<String>,
    allowed_with_condition_by: Vec<String>,
    denied_by: Vec<String>,
    denied_with_condition_by: Vec<String>,
}

impl ActionEvidence {
    fn permission(&self) -> Permission {
        if !self.denied_by.is_empty() {
            Permission::Denied
        } else if !self.allowed_by.is_empty() {
            Permission::Allowed
        } else if !self.allowed_with_condition_by.is_empty() {
            Permission::AllowedWithCondition
        } else {
            Permission::NotAllowed
        }
    }
}

/// The result of checking a trust policy for EKS Pod Identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TrustCheck {
    malformed: Option<PolicyError>,
    principal_present: bool,
    via_wildcard_principal: bool,
    assume_role: ActionEvidence,
    tag_session: ActionEvidence,
}

/// Checks a parsed trust policy for EKS Pod Identity.
pub(crate) fn check_trust_policy(doc: &PolicyDocument) -> TrustCheck {
    let mut check = TrustCheck {
        malformed: None,
        principal_present: false,
        via_wildcard_principal: false,
        assume_role: ActionEvidence::default(),
        tag_session: ActionEvidence::default(),
    };
    let (mut named_explicitly, mut named_by_wildcard) = (false, false);
    for (index, statement) in doc.statements.iter().enumerate() {
        if !statement.applies_to_principal("Service", EKS_PODS_PRINCIPAL) {
            continue;
        }
        let label = statement_label(index, statement.sid.as_deref());
        match statement.effect {
            // An Allow with NotPrincipal grants nothing in a trust policy: IAM only accepts
            // NotPrincipal with Deny, so it is not counted as naming the principal.
            Effect::Allow if statement.not_principal => {}
            Effect::Allow => {
                check.principal_present = true;
                let named = statement.principal.as_ref().is_some_and(|p| {
                    p.values("Service")
                        .iter()
                        .any(|v| v.trim() == EKS_PODS_PRINCIPAL)
                });
                if named {
                    named_explicitly = true;
                } else {
                    named_by_wildcard = true;
                }
                record_allow(&mut check.assume_role, statement, ASSUME_ROLE, &label);
                record_allow(&mut check.tag_session, statement, TAG_SESSION, &label);
            }
            Effect::Deny => {
                record_deny(&mut check.assume_role, statement, ASSUME_ROLE, &label);
                record_deny(&mut check.tag_session, statement, TAG_SESSION, &label);
            }
        }
    }
    check.via_wildcard_principal = named_by_wildcard && !named_explicitly;
    check
}

fn record_allow(evidence: &mut ActionEvidence, statement: &Statement, action: &str, label: &str) {
    if !statement.covers_action(action) {
        return;
    }
    if statement.has_condition {
        evidence.allowed_with_condition_by.push(label.to_owned());
    } else {
        evidence.allowed_by.push(label.to_owned());
    }
}

fn record_deny(evidence: &mut ActionEvidence, statement: &Statement, action: &str, label: &str) {
    if !statement.covers_action(action) {
        return;
    }
    // A conditional Deny may or may not block at run time; failing bind on it would refuse
    // roles that work, so it is reported as a warning instead.
    if statement.has_condition {
        evidence.denied_with_condition_by.push(label.to_owned());
    } else {
        evidence.denied_by.push(label.to_owned());
    }
}

/// Reads a trust policy as IAM returns it (URL-encoded or plain JSON) and checks it; an
/// unreadable document gives a check whose only problem is that it is malformed.
pub(crate) fn check_trust_policy_raw(raw: &str) -> TrustCheck {
    match PolicyDocument::parse(raw) {
        Ok(doc) => check_trust_policy(&doc),
        Err(error) => TrustCheck {
            malformed: Some(error),
            principal_present: false,
            via_wildcard_principal: false,
            assume_role: ActionEvidence::default(),
            tag_session: ActionEvidence::default(),
        },
    }
}

impl TrustCheck {
    /// EKS Pod Identity can assume the role: the document is readable, an `Allow` names the
    /// principal, both actions are allowed and no unconditional `Deny` blocks them. Allowing
    /// only under a condition still counts, because Pod Identity's session tags are meant to
    /// be conditioned on.
    pub(crate) fn is_ok(&self) -> bool {
        self.malformed.is_none()
            && self.principal_present
            && self.assume_role().is_allowed()
            && self.tag_session().is_allowed()
    }

    /// Some `Allow` statement (without `NotPrincipal`) names `pods.eks.amazonaws.com`, or
    /// everyone.
    #[cfg(test)]
    pub(crate) fn principal_present(&self) -> bool {
        self.principal_present
    }

    /// The principal is only reached through a wildcard (`"*"` or `{"AWS": "*"}`): it works,
    /// but the role trusts far more than Pod Identity.
    #[cfg(test)]
    pub(crate) fn via_wildcard_principal(&self) -> bool {
        self.via_wildcard_principal
    }

    /// How `sts:AssumeRole` is treated.
    pub(crate) fn assume_role(&self) -> Permission {
        self.assume_role.permission()
    }

    /// How `sts:TagSession` is treated.
    pub(crate) fn tag_session(&self) -> Permission {
        self.tag_session.permission()
    }

    /// Some required action is allowed only under a condition, or a conditional `Deny` may
    /// block one; either way the outcome depends on values only known at run time.
    #[cfg(test)]
    pub(crate) fn is_conditional(&self) -> bool {
        self.assume_role() == Permission::AllowedWithCondition
            || self.tag_session() == Permission::AllowedWithCondition
            || self.conditional_denies().next().is_some()
    }

    fn actions(&self) -> [(&'static str, &ActionEvidence); 2] {
        [
            (ASSUME_ROLE, &self.assume_role),
            (TAG_SESSION, &self.tag_session),
        ]
    }

    fn with_permission(&self, wanted: Permission) -> Vec<&'static str> {
        self.actions()
            .into_iter()
            .filter(|(_, evidence)| evidence.permission() == wanted)
            .map(|(action, _)| action)
            .collect()
    }

    fn conditional_denies(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.actions()
            .into_iter()
            .filter(|(_, e)| e.permission() != Permission::Denied)
            .filter(|(_, e)| !e.denied_with_condition_by.is_empty())
            .map(|(action, _)| action)
    }

    fn deny_labels(&self) -> Vec<String> {
        labels(self.actions().iter().map(|(_, e)| &e.denied_by))
    }

    /// One sentence naming exactly what is missing or blocking, `None` when [`Self::is_ok`].
    pub(crate) fn problem(&self) -> Option<String> {
        if let Some(error) = &self.malformed {
            return Some(format!("the trust policy cannot be read: {error}"));
        }
        if self.is_ok() {
            return None;
        }
        let mut parts = Vec::new();
        if !self.principal_present {
            parts.push(format!(
                "the trust policy has no Allow statement for principal {EKS_PODS_PRINCIPAL}"
            ));
        } else {
            let allowed: Vec<_> = self
                .actions()
                .into_iter()
                .filter(|(_, e)| e.permission().is_allowed())
                .map(|(a, _)| a)
                .collect();
            let missing = self.with_permission(Permission::NotAllowed);
            match (allowed.as_slice(), missing.as_slice()) {
                (_, []) => {}
                ([allowed], [missing]) => parts.push(format!(
                    "the trust policy allows {allowed} to {EKS_PODS_PRINCIPAL} but not {missing}"
                )),
                ([], [missing]) => parts.push(format!(
                    "the trust policy does not allow {missing} to {EKS_PODS_PRINCIPAL}"
                )),
                _ => parts.push(format!(
                    "the trust policy names {EKS_PODS_PRINCIPAL} but allows neither {ASSUME_ROLE} nor {TAG_SESSION}"
                )),
            }
        }
        let denied = self.with_permission(Permission::Denied);
        if !denied.is_empty() {
            parts.push(format!(
                "{} denies {} to {EKS_PODS_PRINCIPAL}",
                self.deny_labels().join(" and "),
                denied.join(" and ")
            ));
        }
        Some(parts.join("; "))
    }

    /// The findings for role `role_arn`: errors for what stops Pod Identity, a warning when
    /// the outcome depends on conditions. Every remediation quotes the statement to add.
    pub(crate) fn findings(&self, role_arn: &str) -> Vec<Finding> {
        let statement = required_trust_statement_json();
        if let Some(error) = &self.malformed {
            return vec![Finding::error(
                TRUST_MALFORMED,
                format!("the trust policy of role {role_arn} cannot be read: {error}"),
                format!(
                    "Replace the role's trust policy with a valid document containing this statement:\n{statement}"
                ),
            )];
        }
        let mut findings = Vec::new();
        if !self.principal_present {
            findings.push(Finding::error(
                TRUST_MISSING_PRINCIPAL,
                format!(
                    "the trust policy of role {role_arn} has no Allow statement for principal {EKS_PODS_PRINCIPAL}, so EKS Pod Identity cannot assume it"
                ),
                format!(
                    "Add this statement to the role's trust policy (IAM > Roles > Trust relationships, or `aws iam update-assume-role-policy`):\n{statement}"
                ),
            ));
        } else {
            for (action, evidence) in self.actions() {
                if evidence.permission() != Permission::NotAllowed {
                    continue;
                }
                let (code, why) = if action == ASSUME_ROLE {
                    (
                        TRUST_MISSING_ASSUME_ROLE,
                        "so pods cannot get the role's credentials",
                    )
                } else {
                    (
                        TRUST_MISSING_TAG_SESSION,
                        "and EKS Pod Identity always tags the session, so STS rejects every assume",
                    )
                };
                findings.push(Finding::error(
                    code,
                    format!(
                        "the trust policy of role {role_arn} does not allow {action} to {EKS_PODS_PRINCIPAL}, {why}"
                    ),
                    format!(
                        "Add {action} to the Action of the statement for {EKS_PODS_PRINCIPAL}, so it reads:\n{statement}"
                    ),
                ));
            }
        }

        let denied = self.with_permission(Permission::Denied);
        if !denied.is_empty() {
            let by = self.deny_labels().join(", ");
            findings.push(Finding::error(
                TRUST_DENIED,
                format!(
                    "the trust policy of role {role_arn} denies {} to {EKS_PODS_PRINCIPAL} ({by}); Deny wins over any Allow",
                    denied.join(" and ")
                ),
                format!(
                    "Remove {by}, or narrow its Principal or Action so it no longer matches {EKS_PODS_PRINCIPAL}, and keep this statement:\n{statement}"
                ),
            ));
        }

        let conditional_allow = self.with_permission(Permission::AllowedWithCondition);
        if !conditional_allow.is_empty() {
            let by = labels(
                self.actions()
                    .iter()
                    .filter(|(_, e)| e.permission() == Permission::AllowedWithCondition)
                    .map(|(_, e)| &e.allowed_with_condition_by),
            )
            .join(", ");
            findings.push(Finding::warning(
                TRUST_CONDITIONAL,
                format!(
                    "the trust policy of role {role_arn} allows {} to {EKS_PODS_PRINCIPAL} only under a Condition ({by}), which cannot be checked offline",
                    conditional_allow.join(" and ")
                ),
                format!(
                    "Make sure the Condition holds for Pod Identity sessions: they carry the tags eks-cluster-arn, eks-cluster-name, kubernetes-namespace, kubernetes-service-account, kubernetes-pod-name and kubernetes-pod-uid (match them with aws:RequestTag/<tag>). Or allow without a Condition:\n{statement}"
                ),
            ));
        }

        let conditional_deny: Vec<_> = self.conditional_denies().collect();
        if !conditional_deny.is_empty() {
            let by = labels(
                self.actions()
                    .iter()
                    .filter(|(a, _)| conditional_deny.contains(a))
                    .map(|(_, e)| &e.denied_with_condition_by),
            )
            .join(", ");
            findings.push(Finding::warning(
                TRUST_CONDITIONAL,
                format!(
                    "the trust policy of role {role_arn} may deny {} to {EKS_PODS_PRINCIPAL}: {by} has a Condition that cannot be checked offline",
                    conditional_deny.join(" and ")
                ),
                format!(
                    "Make sure the Condition of {by} is false for this cluster's Pod Identity sessions (they carry the session tags eks-cluster-name, kubernetes-namespace and kubernetes-service-account), or remove it, and keep this statement:\n{statement}"
                ),
            ));
        }
        findings
    }
}

/// Statement labels from several lists, each once, in first-seen order.
fn labels<'a>(lists: impl Iterator<Item = &'a Vec<String>>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for label in lists.flatten() {
        if !out.contains(label) {
            out.push(label.clone());
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    use porter_identity_core::Severity;

    const ROLE: &str = "arn:aws:iam::111122223333:role/api";

    fn doc(statements: &str) -> String {
        format!(r#"{{"Version": "2012-10-17", "Statement": [{statements}]}}"#)
    }

    fn check(statements: &str) -> TrustCheck {
        check_trust_policy_raw(&doc(statements))
    }

    fn codes(check: &TrustCheck) -> Vec<String> {
        check.findings(ROLE).into_iter().map(|f| f.code).collect()
    }

    const GOOD: &str = r#"{"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"},
        "Action": ["sts:AssumeRole", "sts:TagSession"]}"#;

    #[test]
    fn valid_with_action_list() {
        let c = check(GOOD);
        assert!(c.is_ok());
        assert_eq!(c.problem(), None);
        assert!(c.findings(ROLE).is_empty());
        assert_eq!(c.assume_role(), Permission::Allowed);
        assert_eq!(c.tag_session(), Permission::Allowed);
        assert!(!c.is_conditional());
        assert!(!c.via_wildcard_principal());
    }

    #[test]
    fn valid_with_sts_wildcard() {
        let c = check(
            r#"{"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"}, "Action": "sts:*"}"#,
        );
        assert!(c.is_ok());
    }

    #[test]
    fn valid_with_star_action() {
        let c = check(
            r#"{"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"}, "Action": "*"}"#,
        );
        assert!(c.is_ok());
    }

    #[test]
    fn valid_with_partial_wildcards_and_case() {
        let c = check(
            r#"{"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"},
                "Action": ["STS:assume*", "sts:?agSession"]}"#,
        );
        assert!(c.is_ok());
    }

    #[test]
    fn valid_with_single_string_service() {
        let c = check(
            r#"{"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"}, "Action": "sts:AssumeRole"},
               {"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"}, "Action": "sts:TagSession"}"#,
        );
        assert!(c.is_ok());
    }

    #[test]
    fn valid_with_service_list_among_others() {
        let c = check(
            r#"{"Effect": "Allow",
                "Principal": {"Service": ["ec2.amazonaws.com", "pods.eks.amazonaws.com", "lambda.amazonaws.com"],
                              "AWS": "arn:aws:iam::111122223333:root"},
                "Action": ["sts:AssumeRole", "sts:TagSession"]}"#,
        );
        assert!(c.is_ok());
    }

    #[test]
    fn missing_tag_session() {
        let c = check(
            r#"{"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"}, "Action": "sts:AssumeRole"}"#,
        );
        assert!(!c.is_ok());
        assert_eq!(c.tag_session(), Permission::NotAllowed);
        assert_eq!(
            c.problem().unwrap(),
            "the trust policy allows sts:AssumeRole to pods.eks.amazonaws.com but not sts:TagSession"
        );
        let findings = c.findings(ROLE);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].code, TRUST_MISSING_TAG_SESSION);
        assert_eq!(findings[0].severity, Severity::Error);
        assert!(findings[0].message.contains(ROLE));
        assert!(
            findings[0]
                .remediation
                .contains(&required_trust_statement_json())
        );
    }

    #[test]
    fn missing_assume_role() {
        let c = check(
            r#"{"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"}, "Action": ["sts:TagSession"]}"#,
        );
        assert!(!c.is_ok());
        assert_eq!(
            c.problem().unwrap(),
            "the trust policy allows sts:TagSession to pods.eks.amazonaws.com but not sts:AssumeRole"
        );
        assert_eq!(codes(&c), [TRUST_MISSING_ASSUME_ROLE]);
    }

    #[test]
    fn principal_named_but_neither_action() {
        let c = check(
            r#"{"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"}, "Action": "sts:AssumeRoleWithWebIdentity"}"#,
        );
        assert!(c.principal_present());
        assert_eq!(
            c.problem().unwrap(),
            "the trust policy names pods.eks.amazonaws.com but allows neither sts:AssumeRole nor sts:TagSession"
        );
        assert_eq!(
            codes(&c),
            [TRUST_MISSING_ASSUME_ROLE, TRUST_MISSING_TAG_SESSION]
        );
    }

    #[test]
    fn other_service_principal_only() {
        let c = check(
            r#"{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": ["sts:AssumeRole", "sts:TagSession"]}"#,
        );
        assert!(!c.is_ok());
        assert!(!c.principal_present());
        assert_eq!(
            c.problem().unwrap(),
            "the trust policy has no Allow statement for principal pods.eks.amazonaws.com"
        );
        let findings = c.findings(ROLE);
        assert_eq!(codes(&c), [TRUST_MISSING_PRINCIPAL]);
        assert!(
            findings[0]
                .remediation
                .contains(&required_trust_statement_json())
        );
    }

    #[test]
    fn irsa_federated_principal_is_not_pod_identity() {
        let c = check(
            r#"{"Effect": "Allow",
                "Principal": {"Federated": "arn:aws:iam::111122223333:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC"},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {"StringEquals": {"oidc.eks.us-east-1.amazonaws.com/id/ABC:sub": "system:serviceaccount:ns:sa"}}}"#,
        );
        assert!(!c.is_ok());
        assert_eq!(codes(&c), [TRUST_MISSING_PRINCIPAL]);
    }

    #[test]
    fn wildcard_principal_applies() {
        for principal in [r#""*""#, r#"{"AWS": "*"}"#, r#"{"AWS": ["*"]}"#] {
            let c = check(&format!(
                r#"{{"Effect": "Allow", "Principal": {principal}, "Action": ["sts:AssumeRole", "sts:TagSession"]}}"#
            ));
            assert!(c.is_ok(), "{principal}");
            assert!(c.via_wildcard_principal(), "{principal}");
        }
        let c = check(&format!(
            r#"{GOOD}, {{"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole"}}"#
        ));
        assert!(c.is_ok());
        assert!(!c.via_wildcard_principal());
    }

    #[test]
    fn deny_tag_session_for_the_service_wins() {
        let c = check(&format!(
            r#"{GOOD}, {{"Sid": "NoTags", "Effect": "Deny", "Principal": {{"Service": "pods.eks.amazonaws.com"}}, "Action": "sts:TagSession"}}"#
        ));
        assert!(!c.is_ok());
        assert_eq!(c.assume_role(), Permission::Allowed);
        assert_eq!(c.tag_session(), Permission::Denied);
        assert_eq!(
            c.problem().unwrap(),
            "Statement[1] (Sid \"NoTags\") denies sts:TagSession to pods.eks.amazonaws.com"
        );
        let findings = c.findings(ROLE);
        assert_eq!(codes(&c), [TRUST_DENIED]);
        assert!(
            findings[0]
                .message
                .contains("Statement[1] (Sid \"NoTags\")")
        );
        assert!(
            findings[0]
                .remediation
                .contains(&required_trust_statement_json())
        );
    }

    #[test]
    fn deny_everything_to_everyone_wins() {
        let c = check(&format!(
            r#"{GOOD}, {{"Effect": "Deny", "Principal": "*", "Action": "*"}}"#
        ));
        assert!(!c.is_ok());
        assert_eq!(c.assume_role(), Permission::Denied);
        assert_eq!(c.tag_session(), Permission::Denied);
        assert_eq!(codes(&c), [TRUST_DENIED]);
        assert_eq!(
            c.problem().unwrap(),
            "Statement[1] denies sts:AssumeRole and sts:TagSession to pods.eks.amazonaws.com"
        );
    }

    #[test]
    fn deny_for_other_principal_does_not_apply() {
        let c = check(&format!(
            r#"{GOOD}, {{"Effect": "Deny", "Principal": {{"Service": "ec2.amazonaws.com"}}, "Action": "*"}}"#
        ));
        assert!(c.is_ok());
    }

    #[test]
    fn deny_with_not_principal() {
        // Denies everyone except an account: the pods principal is not excepted, so it is denied.
        let c = check(&format!(
            r#"{GOOD}, {{"Effect": "Deny", "NotPrincipal": {{"AWS": "arn:aws:iam::111122223333:root"}}, "Action": "sts:AssumeRole"}}"#
        ));
        assert!(!c.is_ok());
        assert_eq!(c.assume_role(), Permission::Denied);
        assert_eq!(codes(&c), [TRUST_DENIED]);

        // Excepts the pods principal: no effect on it.
        let c = check(&format!(
            r#"{GOOD}, {{"Effect": "Deny", "NotPrincipal": {{"Service": ["pods.eks.amazonaws.com"]}}, "Action": "*"}}"#
        ));
        assert!(c.is_ok());
    }

    #[test]
    fn not_action_allow_counts() {
        let c = check(
            r#"{"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"}, "NotAction": "sts:AssumeRoleWithSAML"}"#,
        );
        assert!(c.is_ok());

        let c = check(
            r#"{"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"}, "NotAction": ["sts:Tag*"]}"#,
        );
        assert!(!c.is_ok());
        assert_eq!(codes(&c), [TRUST_MISSING_TAG_SESSION]);
    }

    #[test]
    fn not_action_deny_blocks_what_it_does_not_list() {
        let c = check(&format!(
            r#"{GOOD}, {{"Effect": "Deny", "Principal": "*", "NotAction": "sts:AssumeRole"}}"#
        ));
        assert_eq!(c.assume_role(), Permission::Allowed);
        assert_eq!(c.tag_session(), Permission::Denied);
        assert!(!c.is_ok());
    }

    #[test]
    fn allow_with_not_principal_does_not_count() {
        let c = check(
            r#"{"Effect": "Allow", "NotPrincipal": {"Service": "ec2.amazonaws.com"}, "Action": ["sts:AssumeRole", "sts:TagSession"]}"#,
        );
        assert!(!c.is_ok());
        assert!(!c.principal_present());
        assert_eq!(codes(&c), [TRUST_MISSING_PRINCIPAL]);
    }

    #[test]
    fn conditions_are_recorded_but_still_ok() {
        let c = check(
            r#"{"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"},
                "Action": ["sts:AssumeRole", "sts:TagSession"],
                "Condition": {"StringEquals": {"aws:RequestTag/kubernetes-namespace": "prod",
                                               "aws:RequestTag/eks-cluster-name": "prod-us-east-1"}}}"#,
        );
        assert!(c.is_ok());
        assert!(c.is_conditional());
        assert_eq!(c.assume_role(), Permission::AllowedWithCondition);
        assert_eq!(c.problem(), None);
        let findings = c.findings(ROLE);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].code, TRUST_CONDITIONAL);
        assert_eq!(findings[0].severity, Severity::Warning);
        assert!(findings[0].remediation.contains("kubernetes-namespace"));
        assert!(
            findings[0]
                .remediation
                .contains(&required_trust_statement_json())
        );
    }

    #[test]
    fn unconditional_allow_beside_conditional_is_not_conditional() {
        let c = check(&format!(
            r#"{GOOD}, {{"Effect": "Allow", "Principal": {{"Service": "pods.eks.amazonaws.com"}}, "Action": "sts:*",
                "Condition": {{"StringEquals": {{"aws:SourceAccount": "111122223333"}}}}}}"#
        ));
        assert!(c.is_ok());
        assert!(!c.is_conditional());
        assert!(c.findings(ROLE).is_empty());
    }

    #[test]
    fn conditional_deny_warns_but_does_not_fail() {
        let c = check(&format!(
            r#"{GOOD}, {{"Effect": "Deny", "Principal": "*", "Action": "sts:AssumeRole",
                "Condition": {{"StringNotEquals": {{"aws:RequestTag/eks-cluster-name": "prod"}}}}}}"#
        ));
        assert!(c.is_ok());
        assert!(c.is_conditional());
        let findings = c.findings(ROLE);
        assert_eq!(codes(&c), [TRUST_CONDITIONAL]);
        assert!(findings[0].message.contains("may deny sts:AssumeRole"));
    }

    #[test]
    fn malformed_json() {
        let c = check_trust_policy_raw("{\"Version\": \"2012-10-17\", \"Statement\": [");
        assert!(!c.is_ok());
        assert!(matches!(c.malformed, Some(PolicyError::NotJson(_))));
        assert!(
            c.problem()
                .unwrap()
                .starts_with("the trust policy cannot be read: the policy document is not JSON")
        );
        let findings = c.findings(ROLE);
        assert_eq!(codes(&c), [TRUST_MALFORMED]);
        assert_eq!(findings[0].severity, Severity::Error);
        assert!(
            findings[0]
                .remediation
                .contains(&required_trust_statement_json())
        );
    }

    #[test]
    fn statement_without_effect() {
        let c = check(
            r#"{"Principal": {"Service": "pods.eks.amazonaws.com"}, "Action": ["sts:AssumeRole", "sts:TagSession"]}"#,
        );
        assert!(!c.is_ok());
        assert_eq!(codes(&c), [TRUST_MALFORMED]);
        assert_eq!(
            c.problem().unwrap(),
            "the trust policy cannot be read: Statement[0]: it has no Effect"
        );
    }

    #[test]
    fn url_encoded_and_plain_agree() {
        let plain = doc(GOOD);
        let encoded = utf8_percent_encode(&plain, NON_ALPHANUMERIC).to_string();
        assert!(encoded.starts_with("%7B%22Version%22"));
        let from_encoded = check_trust_policy_raw(&encoded);
        assert!(from_encoded.is_ok());
        assert_eq!(from_encoded, check_trust_policy_raw(&plain));

        let broken = utf8_percent_encode(
            r#"{"Statement": {"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"}, "Action": "sts:AssumeRole"}}"#,
            NON_ALPHANUMERIC,
        )
        .to_string();
        assert_eq!(
            codes(&check_trust_policy_raw(&broken)),
            [TRUST_MISSING_TAG_SESSION]
        );
    }

    #[test]
    fn single_statement_object() {
        let c = check_trust_policy_raw(&format!(
            r#"{{"Version": "2012-10-17", "Statement": {GOOD}}}"#
        ));
        assert!(c.is_ok());
    }

    #[test]
    fn check_of_parsed_document_matches_raw() {
        let parsed = PolicyDocument::parse(&doc(GOOD)).unwrap();
        assert_eq!(
            check_trust_policy(&parsed),
            check_trust_policy_raw(&doc(GOOD))
        );
    }

    #[test]
    fn required_json_is_exact_and_passes_the_check() {
        let statement: serde_json::Value =
            serde_json::from_str(&required_trust_statement_json()).unwrap();
        assert_eq!(
            statement,
            serde_json::json!({"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession"]})
        );
        // serde_json sorts keys; the hand-written text differs from its pretty form only in
        // key order, so the lengths agree.
        assert_eq!(
            required_trust_statement_json().len(),
            serde_json::to_string_pretty(&statement).unwrap().len(),
        );

        let policy: serde_json::Value =
            serde_json::from_str(&required_trust_policy_json()).unwrap();
        assert_eq!(
            policy,
            serde_json::json!({"Version": "2012-10-17", "Statement": [statement]})
        );
        assert!(check_trust_policy_raw(&required_trust_policy_json()).is_ok());
    }
}
