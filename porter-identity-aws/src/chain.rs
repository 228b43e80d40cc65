//! A target role (EKS Pod Identity's role chaining): EKS assumes the association's role, then
//! with it the target role, and gives the pods the target role's credentials. Two things must
//! hold, and both are checked before any write where the caller's credentials can read them:
//!
//! - the target role's trust policy lets the association's role `sts:AssumeRole` (and
//!   `sts:TagSession` unless session tags are off), with the `sts:ExternalId` condition EKS
//!   documents when the statement has one;
//! - the association's role may `sts:AssumeRole` (and `sts:TagSession`) on the target.
//!
//! Conditions other than `sts:ExternalId` cannot be evaluated offline and count as allowing,
//! as in the Pod Identity trust check; a `Deny` without a condition blocks.

use porter_identity_core::provider::wildcard_match;

use crate::policy::{Effect, PolicyDocument, Statement};

const ASSUME_ROLE: &str = "sts:AssumeRole";
const TAG_SESSION: &str = "sts:TagSession";
const EXTERNAL_ID: &str = "sts:ExternalId";

/// The actions the chain needs: `sts:AssumeRole`, and `sts:TagSession` unless session tags are
/// off.
fn needed(session_tags: bool) -> &'static [&'static str] {
    if session_tags {
        &[ASSUME_ROLE, TAG_SESSION]
    } else {
        &[ASSUME_ROLE]
    }
}

fn actions_json(session_tags: bool) -> String {
    let actions: Vec<String> = needed(session_tags)
        .iter()
        .map(|a| format!("\"{a}\""))
        .collect();
    format!("[{}]", actions.join(", "))
}

/// The statement the target role's trust policy needs, as JSON to paste. With the
/// association's external ID when it is known (EKS makes it when the association is created).
pub(crate) fn required_target_trust_statement(
    role_arn: &str,
    session_tags: bool,
    external_id: Option<&str>,
) -> String {
    let condition = external_id.map_or(String::new(), |id| {
        format!(", \"Condition\": {{\"StringEquals\": {{\"{EXTERNAL_ID}\": \"{id}\"}}}}")
    });
    format!(
        "{{\"Effect\": \"Allow\", \"Principal\": {{\"AWS\": \"{role_arn}\"}}, \"Action\": {}{condition}}}",
        actions_json(session_tags)
    )
}

/// The statement the association's role needs in a permission policy, as JSON to paste.
pub(crate) fn required_chain_permission_statement(target_arn: &str, session_tags: bool) -> String {
    format!(
        "{{\"Effect\": \"Allow\", \"Action\": {}, \"Resource\": \"{target_arn}\"}}",
        actions_json(session_tags)
    )
}

/// Whether the target role's trust policy `doc` lets `role_arn` assume it: `Ok` when it does
/// (or may, under conditions that cannot be checked here), else the problem in one sentence.
pub(crate) fn check_target_trust(
    doc: &PolicyDocument,
    role_arn: &str,
    session_tags: bool,
    external_id: Option<&str>,
) -> Result<(), String> {
    let account = role_arn.split(':').nth(4).unwrap_or_default();
    let partition = role_arn.split(':').nth(1).unwrap_or("aws");
    let root = format!("arn:{partition}:iam::{account}:root");
    let names_role = |s: &Statement| {
        [role_arn, root.as_str(), account]
            .iter()
            .any(|p| !p.is_empty() && s.applies_to_principal("AWS", p))
    };
    let mut wrong_external_id = None;
    let mut missing = Vec::new();
    for action in needed(session_tags) {
        let mut allowed = false;
        for s in doc.statements.iter().filter(|s| names_role(s)) {
            if !s.covers_action(action) {
                continue;
            }
            match s.effect {
                Effect::Deny if !s.has_condition => {
                    return Err(format!(
                        "the target role's trust policy denies {action} to {role_arn}"
                    ));
                }
                Effect::Deny => {}
                Effect::Allow if s.not_principal => {}
                Effect::Allow => match external_id_mismatch(s, external_id) {
                    None => allowed = true,
                    Some(wanted) => wrong_external_id = Some(wanted),
                },
            }
        }
        if !allowed {
            missing.push(*action);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    if let (Some(wanted), Some(have)) = (wrong_external_id, external_id) {
        return Err(format!(
            "the target role's trust policy lets {role_arn} assume it only with sts:ExternalId {wanted}, but the association's external ID is {have}"
        ));
    }
    Err(format!(
        "the target role's trust policy does not allow {} to {role_arn}",
        missing.join(" and ")
    ))
}

/// The `sts:ExternalId` a statement requires when it is not the association's, if any. With no
/// external ID yet (the association is not created), any requirement may be met once EKS makes
/// one, so none is a mismatch.
fn external_id_mismatch(s: &Statement, external_id: Option<&str>) -> Option<String> {
    let have = external_id?;
    for c in &s.conditions {
        if !c.key.eq_ignore_ascii_case(EXTERNAL_ID) {
            continue;
        }
        let matches = match c.operator.as_str() {
            "StringEquals" => c.values.iter().any(|v| v == have),
            "StringLike" => c.values.iter().any(|v| wildcard_match(v, have)),
            // Another operator on the key cannot be evaluated here: it may hold.
            _ => true,
        };
        if !matches {
            return Some(c.values.join(" or "));
        }
    }
    None
}

/// Whether the permission policies `docs` of the association's role let it assume `target_arn`:
/// `Ok` when a statement allows it (or may), else the problem in one sentence.
pub(crate) fn check_chain_permission(
    docs: &[PolicyDocument],
    role_arn: &str,
    target_arn: &str,
    session_tags: bool,
) -> Result<(), String> {
    let mut missing = Vec::new();
    for action in needed(session_tags) {
        let mut allowed = false;
        for s in docs.iter().flat_map(|d| &d.statements) {
            if !s.covers_action(action) || !reaches(s, target_arn) {
                continue;
            }
            match s.effect {
                Effect::Deny if !s.has_condition => {
                    return Err(format!(
                        "a permission policy of {role_arn} denies {action} on {target_arn}"
                    ));
                }
                Effect::Deny => {}
                Effect::Allow => allowed = true,
            }
        }
        if !allowed {
            missing.push(*action);
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "no permission policy of {role_arn} allows {} on {target_arn}",
            missing.join(" and ")
        ))
    }
}

/// Whether a permission statement reaches `arn`: a `Resource` pattern matches it, or it uses
/// `NotResource` (which reaches everything it does not list; counted as reaching).
fn reaches(s: &Statement, arn: &str) -> bool {
    s.not_resource || s.resources.iter().any(|r| wildcard_match(r.trim(), arn))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLE: &str = "arn:aws:iam::111122223333:role/shop-api";
    const TARGET: &str = "arn:aws:iam::444455556666:role/shop-data";

    fn doc(statements: &str) -> PolicyDocument {
        PolicyDocument::parse(&format!(
            r#"{{"Version":"2012-10-17","Statement":{statements}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn the_documented_statement_is_trusted() {
        let required = required_target_trust_statement(ROLE, true, Some("ext-1"));
        let d = doc(&format!("[{required}]"));
        assert_eq!(check_target_trust(&d, ROLE, true, Some("ext-1")), Ok(()));
        // Before the association exists its external ID is unknown: not a mismatch.
        assert_eq!(check_target_trust(&d, ROLE, true, None), Ok(()));
        let e = check_target_trust(&d, ROLE, true, Some("ext-2")).unwrap_err();
        assert!(e.contains("ext-1") && e.contains("ext-2"), "{e}");
    }

    #[test]
    fn session_tags_need_tag_session() {
        let d = doc(&format!(
            r#"[{{"Effect":"Allow","Principal":{{"AWS":"{ROLE}"}},"Action":"sts:AssumeRole"}}]"#
        ));
        let e = check_target_trust(&d, ROLE, true, None).unwrap_err();
        assert!(e.contains("sts:TagSession"), "{e}");
        assert_eq!(check_target_trust(&d, ROLE, false, None), Ok(()));
    }

    #[test]
    fn the_account_principal_counts_and_another_role_does_not() {
        let d = doc(
            r#"[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":["sts:AssumeRole","sts:TagSession"]}]"#,
        );
        assert_eq!(check_target_trust(&d, ROLE, true, None), Ok(()));
        let d = doc(
            r#"[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:role/other"},"Action":["sts:AssumeRole","sts:TagSession"]}]"#,
        );
        let e = check_target_trust(&d, ROLE, true, None).unwrap_err();
        assert!(
            e.contains("does not allow sts:AssumeRole and sts:TagSession"),
            "{e}"
        );
    }

    #[test]
    fn an_unconditional_deny_blocks() {
        let d = doc(&format!(
            r#"[{{"Effect":"Allow","Principal":{{"AWS":"{ROLE}"}},"Action":"sts:*"}},
               {{"Effect":"Deny","Principal":{{"AWS":"*"}},"Action":"sts:AssumeRole"}}]"#
        ));
        let e = check_target_trust(&d, ROLE, false, None).unwrap_err();
        assert!(e.contains("denies"), "{e}");
    }

    #[test]
    fn permissions_reach_the_target_by_pattern() {
        let allow = doc(
            r#"[{"Effect":"Allow","Action":["sts:AssumeRole","sts:TagSession"],"Resource":"arn:aws:iam::444455556666:role/shop-*"}]"#,
        );
        assert_eq!(check_chain_permission(&[allow], ROLE, TARGET, true), Ok(()));
        let elsewhere = doc(
            r#"[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"arn:aws:iam::444455556666:role/other"}]"#,
        );
        let e = check_chain_permission(&[elsewhere], ROLE, TARGET, false).unwrap_err();
        assert!(e.contains("allows sts:AssumeRole on"), "{e}");
        let required = required_chain_permission_statement(TARGET, true);
        let fixed = doc(&format!("[{required}]"));
        assert_eq!(check_chain_permission(&[fixed], ROLE, TARGET, true), Ok(()));
    }
}
