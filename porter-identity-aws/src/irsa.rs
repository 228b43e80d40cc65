//! IAM roles for service accounts (IRSA), for pods EKS Pod Identity cannot serve (Fargate,
//! clusters without the agent): the ServiceAccount carries `eks.amazonaws.com/role-arn`, EKS's
//! webhook gives its pods a projected token from the cluster's OIDC issuer, and STS trades it
//! for the role's credentials (`sts:AssumeRoleWithWebIdentity`) when the role trusts the
//! account's IAM OIDC provider of that issuer for the pod's subject and audience.
//!
//! Nothing is written in AWS: the role and the OIDC provider are the caller's (they are IAM
//! resources, and a deploy tool has no business writing trust policies). What is checked here,
//! before the annotation is asked for: the provider exists and accepts `sts.amazonaws.com`, and
//! the role's trust policy lets the provider assume it for exactly this service account.

use porter_identity_core::provider::wildcard_match;

use crate::policy::{Effect, PolicyDocument, Statement};

/// The ServiceAccount annotation that names the role (EKS's pod identity webhook reads it).
pub(crate) const ROLE_ARN_ANNOTATION: &str = "eks.amazonaws.com/role-arn";
/// The audience of the tokens the webhook projects.
pub(crate) const AUDIENCE: &str = "sts.amazonaws.com";
const WEB_IDENTITY: &str = "sts:AssumeRoleWithWebIdentity";

/// The issuer as IAM names it: without `https://`.
pub(crate) fn issuer_host(issuer: &str) -> &str {
    issuer.trim_start_matches("https://").trim_end_matches('/')
}

/// The ARN of the IAM OIDC provider of `issuer` in `account`.
pub(crate) fn provider_arn(partition: &str, account: &str, issuer: &str) -> String {
    format!(
        "arn:{partition}:iam::{account}:oidc-provider/{}",
        issuer_host(issuer)
    )
}

/// The token's subject for a service account.
pub(crate) fn subject(namespace: &str, service_account: &str) -> String {
    format!("system:serviceaccount:{namespace}:{service_account}")
}

/// The trust statement an IRSA role needs for one service account, as JSON to paste.
pub(crate) fn required_statement(provider_arn: &str, issuer: &str, subject: &str) -> String {
    let host = issuer_host(issuer);
    format!(
        "{{\"Effect\": \"Allow\", \"Principal\": {{\"Federated\": \"{provider_arn}\"}}, \"Action\": \"{WEB_IDENTITY}\", \"Condition\": {{\"StringEquals\": {{\"{host}:sub\": \"{subject}\", \"{host}:aud\": \"{AUDIENCE}\"}}}}}}"
    )
}

/// The commands that make the OIDC provider of `issuer` (either one).
pub(crate) fn create_provider_commands(issuer: &str, cluster: &str) -> String {
    format!(
        "aws iam create-open-id-connect-provider --url {issuer} --client-id-list {AUDIENCE} (or: eksctl utils associate-iam-oidc-provider --cluster {cluster} --approve)"
    )
}

/// How the role's trust policy lets the provider in for the subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IrsaTrust {
    /// For exactly this subject (`StringEquals`, or a `StringLike` without wildcards).
    Exact,
    /// Through a pattern (or no `:sub` condition at all) that lets other service accounts in
    /// too: it works, but every service account it matches may assume the role.
    Wildcard(String),
}

/// Checks the role's trust policy for IRSA: `Ok` with how the subject is let in, else the
/// problem in one sentence.
pub(crate) fn check_trust(
    doc: &PolicyDocument,
    provider_arn: &str,
    issuer: &str,
    subject: &str,
) -> Result<IrsaTrust, String> {
    let host = issuer_host(issuer);
    let mut best: Option<IrsaTrust> = None;
    let mut refused = Vec::new();
    for s in &doc.statements {
        if !s.applies_to_principal("Federated", provider_arn) || !s.covers_action(WEB_IDENTITY) {
            continue;
        }
        match s.effect {
            Effect::Deny if !s.has_condition => {
                return Err(format!(
                    "the trust policy denies {WEB_IDENTITY} to {provider_arn}"
                ));
            }
            Effect::Deny => {}
            Effect::Allow if s.not_principal => {}
            Effect::Allow => match statement_trust(s, host, subject) {
                Ok(IrsaTrust::Exact) => return Ok(IrsaTrust::Exact),
                Ok(wide) => best = best.or(Some(wide)),
                Err(why) => refused.push(why),
            },
        }
    }
    if let Some(wide) = best {
        return Ok(wide);
    }
    if refused.is_empty() {
        Err(format!(
            "the trust policy has no statement letting {provider_arn} perform {WEB_IDENTITY}"
        ))
    } else {
        Err(refused.join("; "))
    }
}

/// One allowing statement against the subject and the audience.
fn statement_trust(s: &Statement, host: &str, subject: &str) -> Result<IrsaTrust, String> {
    let (sub_key, aud_key) = (format!("{host}:sub"), format!("{host}:aud"));
    let mut trust = None;
    for c in &s.conditions {
        let exact = c.operator == "StringEquals";
        let like = c.operator == "StringLike";
        if c.key == aud_key
            && (exact || like)
            && !c.values.iter().any(|v| {
                if like {
                    wildcard_match(v, AUDIENCE)
                } else {
                    v == AUDIENCE
                }
            })
        {
            return Err(format!(
                "a statement requires audience {}, but EKS's tokens are for {AUDIENCE}",
                c.values.join(" or ")
            ));
        }
        if c.key != sub_key || !(exact || like) {
            continue;
        }
        if exact && c.values.iter().any(|v| v == subject) {
            trust = Some(IrsaTrust::Exact);
        } else if like && let Some(p) = c.values.iter().find(|v| wildcard_match(v, subject)) {
            trust = Some(if p.contains(['*', '?']) {
                IrsaTrust::Wildcard(p.clone())
            } else {
                IrsaTrust::Exact
            });
        } else {
            return Err(format!(
                "a statement lets in {} only, not {subject}",
                c.values.join(" or ")
            ));
        }
    }
    // No condition on the subject: every service account of the cluster.
    Ok(trust
        .unwrap_or_else(|| IrsaTrust::Wildcard(format!("any subject (no {sub_key} condition)"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUER: &str = "https://oidc.eks.us-east-1.amazonaws.com/id/ABC123";
    const SUBJECT: &str = "system:serviceaccount:shop:demo-api";

    fn provider() -> String {
        provider_arn("aws", "111122223333", ISSUER)
    }

    fn doc(condition: &str) -> PolicyDocument {
        PolicyDocument::parse(&format!(
            r#"{{"Statement":[{{"Effect":"Allow","Principal":{{"Federated":"{}"}},"Action":"sts:AssumeRoleWithWebIdentity"{condition}}}]}}"#,
            provider()
        ))
        .unwrap()
    }

    #[test]
    fn the_required_statement_is_exact() {
        let d = PolicyDocument::parse(&format!(
            "{{\"Statement\":[{}]}}",
            required_statement(&provider(), ISSUER, SUBJECT)
        ))
        .unwrap();
        assert_eq!(
            check_trust(&d, &provider(), ISSUER, SUBJECT),
            Ok(IrsaTrust::Exact)
        );
        let e =
            check_trust(&d, &provider(), ISSUER, "system:serviceaccount:shop:other").unwrap_err();
        assert!(e.contains("only"), "{e}");
    }

    #[test]
    fn wildcards_and_a_missing_subject_condition_are_wildcards() {
        let host = issuer_host(ISSUER);
        let like = doc(&format!(
            r#","Condition":{{"StringLike":{{"{host}:sub":"system:serviceaccount:shop:*"}}}}"#
        ));
        assert_eq!(
            check_trust(&like, &provider(), ISSUER, SUBJECT),
            Ok(IrsaTrust::Wildcard("system:serviceaccount:shop:*".into()))
        );
        let open = doc("");
        assert!(matches!(
            check_trust(&open, &provider(), ISSUER, SUBJECT),
            Ok(IrsaTrust::Wildcard(_))
        ));
    }

    #[test]
    fn another_audience_or_provider_is_refused() {
        let host = issuer_host(ISSUER);
        let aud = doc(&format!(
            r#","Condition":{{"StringEquals":{{"{host}:sub":"{SUBJECT}","{host}:aud":"other"}}}}"#
        ));
        let e = check_trust(&aud, &provider(), ISSUER, SUBJECT).unwrap_err();
        assert!(e.contains("audience other"), "{e}");
        let elsewhere = provider_arn(
            "aws",
            "111122223333",
            "https://oidc.eks.us-east-1.amazonaws.com/id/OTHER",
        );
        let e = check_trust(
            &doc(""),
            &elsewhere,
            "https://oidc.eks.us-east-1.amazonaws.com/id/OTHER",
            SUBJECT,
        )
        .unwrap_err();
        assert!(e.contains("no statement"), "{e}");
    }
}
