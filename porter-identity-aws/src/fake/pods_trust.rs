//! The trust check EKS makes on CreatePodIdentityAssociation and UpdatePodIdentityAssociation:
//! may `pods.eks.amazonaws.com` do `sts:AssumeRole` and `sts:TagSession` on the role?
//!
//! Deliberately simpler than IAM's evaluation (conditions are ignored, `NotAction` and
//! `NotPrincipal` are not understood): the fake only has to reject the policies real EKS
//! rejects in tests, and the provider runs its own, stricter check before writing.

use serde_json::Value;

/// The service principal of EKS Pod Identity.
pub(crate) const PODS_PRINCIPAL: &str = "pods.eks.amazonaws.com";

/// The actions EKS needs, as reported when missing.
const NEEDED: [&str; 2] = ["sts:AssumeRole", "sts:TagSession"];

/// The actions of [`NEEDED`] the trust policy does not allow to [`PODS_PRINCIPAL`]; empty
/// when EKS would accept the role. A document that is not JSON allows nothing.
pub(crate) fn missing_actions(trust_policy_json: &str) -> Vec<&'static str> {
    let Ok(doc) = serde_json::from_str::<Value>(trust_policy_json) else {
        return NEEDED.to_vec();
    };
    let statements: Vec<&Value> = match doc.get("Statement") {
        Some(Value::Array(list)) => list.iter().collect(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => Vec::new(),
    };
    NEEDED
        .into_iter()
        .filter(|action| {
            let applies = |effect: &str| {
                statements.iter().any(|s| {
                    s.get("Effect").and_then(Value::as_str) == Some(effect)
                        && names_pods_principal(s.get("Principal"))
                        && covers_action(s.get("Action"), action)
                })
            };
            // An explicit Deny wins over any Allow, as in IAM.
            !applies("Allow") || applies("Deny")
        })
        .collect()
}

fn names_pods_principal(principal: Option<&Value>) -> bool {
    match principal {
        Some(Value::String(s)) => s == "*",
        Some(Value::Object(map)) => match map.get("Service") {
            Some(Value::String(s)) => s == PODS_PRINCIPAL,
            Some(Value::Array(list)) => list.iter().any(|v| v.as_str() == Some(PODS_PRINCIPAL)),
            _ => false,
        },
        _ => false,
    }
}

fn covers_action(action: Option<&Value>, wanted: &str) -> bool {
    // IAM action names are case-insensitive.
    let matches =
        |a: &str| a == "*" || a.eq_ignore_ascii_case("sts:*") || a.eq_ignore_ascii_case(wanted);
    match action {
        Some(Value::String(a)) => matches(a),
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).any(matches),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_policy_in_its_usual_shapes() {
        let documented = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
            "Principal":{"Service":"pods.eks.amazonaws.com"},
            "Action":["sts:AssumeRole","sts:TagSession"]}]}"#;
        assert!(missing_actions(documented).is_empty());
        let single_statement_list_principal = r#"{"Statement":{"Effect":"Allow",
            "Principal":{"Service":["ec2.amazonaws.com","pods.eks.amazonaws.com"]},
            "Action":"sts:*"}}"#;
        assert!(missing_actions(single_statement_list_principal).is_empty());
        let split = r#"{"Statement":[
            {"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":"sts:AssumeRole"},
            {"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":"STS:TagSession"}]}"#;
        assert!(missing_actions(split).is_empty());
    }

    #[test]
    fn reports_what_is_missing() {
        let no_tag = r#"{"Statement":[{"Effect":"Allow",
            "Principal":{"Service":"pods.eks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
        assert_eq!(missing_actions(no_tag), vec!["sts:TagSession"]);
        let other_principal = r#"{"Statement":[{"Effect":"Allow",
            "Principal":{"Service":"ec2.amazonaws.com"},"Action":"*"}]}"#;
        assert_eq!(missing_actions(other_principal), NEEDED.to_vec());
        let denied = r#"{"Statement":[
            {"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":"sts:*"},
            {"Effect":"Deny","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":"sts:TagSession"}]}"#;
        assert_eq!(missing_actions(denied), vec!["sts:TagSession"]);
        assert_eq!(missing_actions("not json"), NEEDED.to_vec());
    }
}
