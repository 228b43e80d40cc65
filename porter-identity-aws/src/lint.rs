//! Least-privilege lint of a role's permissions: wildcard actions, `Resource: "*"` on writes,
//! `Allow` + `NotAction`, broad AWS-managed policies, one role shared by several service
//! accounts.
//!
//! Everything here is a warning: the workload works, it can just do far more than it needs.
//! porter-identity never changes permissions, so each remediation says what to write instead.
//! `Deny` statements only take permissions away and are never flagged.

use porter_identity_core::Finding;

use crate::api::AttachedPolicy;
use crate::codes::{
    LINT_BROAD_MANAGED_POLICY, LINT_NOT_ACTION_ALLOW, LINT_POLICY_UNREADABLE,
    LINT_SERVICE_WILDCARD_ACTION, LINT_SHARED_ROLE, LINT_WILDCARD_ACTION, LINT_WILDCARD_RESOURCE,
};
use crate::policy::{ActionMatch, Effect, PolicyDocument, Statement, statement_label};

/// Action-name prefixes IAM uses for read-only calls. Everything else, and every wildcard
/// that reaches past them, is treated as a write.
const READ_PREFIXES: [&str; 4] = ["get", "list", "describe", "head"];

/// Lints the `Allow` statements of one permission policy (managed or inline).
pub(crate) fn lint_policy_document(policy_name: &str, doc: &PolicyDocument) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (index, statement) in doc.statements.iter().enumerate() {
        if statement.effect == Effect::Allow {
            let at = format!(
                "policy \"{policy_name}\" {}",
                statement_label(index, statement.sid.as_deref())
            );
            lint_statement(&at, statement, &mut findings);
        }
    }
    findings
}

fn lint_statement(at: &str, statement: &Statement, findings: &mut Vec<Finding>) {
    match &statement.action {
        ActionMatch::Action(actions) => {
            if let Some(star) = actions.iter().find(|a| is_all_actions(a)) {
                findings.push(Finding::warning(
                    LINT_WILDCARD_ACTION,
                    format!("{at} allows every action of every service (\"Action\": \"{}\")", star.trim()),
                    "Replace \"*\" with the actions the service calls, for example \"Action\": [\"s3:GetObject\", \"s3:PutObject\"], and scope \"Resource\" to the ARNs it uses."
                        .to_owned(),
                ));
            }
            let services: Vec<(&str, &str)> = actions
                .iter()
                .filter_map(|a| service_wildcard(a).map(|svc| (a.trim(), svc)))
                .collect();
            if !services.is_empty() {
                let names = services
                    .iter()
                    .map(|(_, svc)| *svc)
                    .collect::<Vec<_>>()
                    .join(", ");
                let patterns = quoted(services.iter().map(|(a, _)| *a));
                let examples = services
                    .iter()
                    .map(|(_, svc)| example_actions(svc))
                    .collect::<Vec<_>>()
                    .join(", ");
                findings.push(Finding::warning(
                    LINT_SERVICE_WILDCARD_ACTION,
                    format!("{at} allows every action of {names} ({patterns})"),
                    format!(
                        "Replace {patterns} with the {names} actions the service calls, for example \"Action\": [{examples}]."
                    ),
                ));
            }
            if statement.has_wildcard_resource() {
                let writes: Vec<&str> = actions
                    .iter()
                    .map(|a| a.trim())
                    .filter(|a| is_write(a))
                    .collect();
                if !writes.is_empty() {
                    findings.push(wildcard_resource(
                        at,
                        statement,
                        &quoted(writes.iter().copied()),
                        writes.first().copied(),
                    ));
                }
            }
        }
        ActionMatch::NotAction(excluded) => {
            let excluded = quoted(excluded.iter().map(|a| a.trim()));
            findings.push(Finding::warning(
                LINT_NOT_ACTION_ALLOW,
                format!(
                    "{at} uses Allow with NotAction: it allows every action except {excluded}, including actions AWS adds later"
                ),
                "Replace \"NotAction\" with \"Action\" listing the actions the service calls, for example \"Action\": [\"s3:GetObject\", \"s3:PutObject\"]."
                    .to_owned(),
            ));
            // Everything but a few actions is write access, so an unscoped resource is as
            // broad as it gets.
            if statement.has_wildcard_resource() {
                findings.push(wildcard_resource(
                    at,
                    statement,
                    &format!("every action except {excluded}"),
                    None,
                ));
            }
        }
    }
}

fn wildcard_resource(
    at: &str,
    statement: &Statement,
    actions: &str,
    example_from: Option<&str>,
) -> Finding {
    let element = if statement.not_resource {
        "NotResource (every resource but those listed)"
    } else {
        "\"Resource\": \"*\""
    };
    let example = example_from
        .and_then(|a| a.split_once(':'))
        .map(|(svc, _)| example_arn(svc))
        .unwrap_or_else(|| example_arn(""));
    Finding::warning(
        LINT_WILDCARD_RESOURCE,
        format!("{at} allows write actions {actions} on {element}"),
        format!(
            "Scope \"Resource\" to the ARNs these actions need, for example \"Resource\": [\"{example}\"]; keep \"*\" only for actions that do not support resource-level permissions."
        ),
    )
}

/// `*` (or `*:*`): every action of every service.
fn is_all_actions(action: &str) -> bool {
    matches!(action.trim(), "*" | "*:*")
}

/// The service of a `<service>:*` pattern (`s3:*`, `S3:*`), as written.
fn service_wildcard(action: &str) -> Option<&str> {
    let (service, name) = action.trim().split_once(':')?;
    (name == "*" && !service.is_empty() && !service.contains(['*', '?'])).then_some(service)
}

/// A write action: its name does not start with a read prefix, or it is a wildcard that can
/// reach past the read prefixes (`s3:*`, `*`, `s3:*Object`). `s3:Get*` stays a read.
fn is_write(action: &str) -> bool {
    let name = action
        .split_once(':')
        .map_or(action, |(_, name)| name)
        .to_ascii_lowercase();
    !READ_PREFIXES.iter().any(|p| name.starts_with(p))
}

fn quoted<'a>(items: impl Iterator<Item = &'a str>) -> String {
    items
        .map(|a| format!("\"{a}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Typical actions for a service, so the remediation shows the shape of the fix.
fn example_actions(service: &str) -> String {
    let lower = service.to_ascii_lowercase();
    let actions: &[&str] = match lower.as_str() {
        "s3" => &["s3:GetObject", "s3:PutObject"],
        "dynamodb" => &["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"],
        "sqs" => &["sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage"],
        "sns" => &["sns:Publish"],
        "secretsmanager" => &["secretsmanager:GetSecretValue"],
        "ssm" => &["ssm:GetParameter", "ssm:GetParametersByPath"],
        "kms" => &["kms:Decrypt", "kms:GenerateDataKey"],
        "kinesis" => &["kinesis:PutRecord", "kinesis:GetRecords"],
        "logs" => &["logs:CreateLogStream", "logs:PutLogEvents"],
        "lambda" => &["lambda:InvokeFunction"],
        _ => return format!("\"{service}:<Action>\""),
    };
    quoted(actions.iter().copied())
}

/// A resource ARN of the right shape for a service, for remediations.
fn example_arn(service: &str) -> String {
    match service.to_ascii_lowercase().as_str() {
        "s3" => "arn:aws:s3:::my-bucket/*".to_owned(),
        "dynamodb" => "arn:aws:dynamodb:us-east-1:123456789012:table/my-table".to_owned(),
        "sqs" => "arn:aws:sqs:us-east-1:123456789012:my-queue".to_owned(),
        "sns" => "arn:aws:sns:us-east-1:123456789012:my-topic".to_owned(),
        "secretsmanager" => {
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:my-secret-*".to_owned()
        }
        "kms" => "arn:aws:kms:us-east-1:123456789012:key/<key-id>".to_owned(),
        "" => "arn:aws:<service>:<region>:<account-id>:<resource>".to_owned(),
        other => format!("arn:aws:{other}:<region>:<account-id>:<resource>"),
    }
}

/// Reads a policy as IAM returns it (URL-encoded or plain JSON) and lints it. A document that
/// cannot be read is reported instead of silently passing.
pub(crate) fn lint_policy_raw(policy_name: &str, raw: &str) -> Vec<Finding> {
    match PolicyDocument::parse(raw) {
        Ok(doc) => lint_policy_document(policy_name, &doc),
        Err(error) => vec![Finding::warning(
            LINT_POLICY_UNREADABLE,
            format!(
                "policy \"{policy_name}\" could not be read, so it was not checked for least privilege: {error}"
            ),
            format!(
                "Check the document of \"{policy_name}\" in IAM (aws iam get-policy-version or get-role-policy) and fix what the error names."
            ),
        )],
    }
}

/// Flags the AWS-managed `AdministratorAccess` and `PowerUserAccess` policies attached to a
/// role (any partition, any path). Customer-managed policies of the same name are linted by
/// their document instead, because their content is the user's.
pub(crate) fn lint_attached_policy(policy: &AttachedPolicy) -> Option<Finding> {
    let (partition, resource) = aws_managed_policy(&policy.arn)?;
    let name = resource.rsplit('/').next()?;
    let grants = match name {
        "AdministratorAccess" => {
            "every action on every resource, including IAM (the role can grant itself anything)"
        }
        "PowerUserAccess" => "every action on every resource except most of IAM and Organizations",
        _ => return None,
    };
    Some(Finding::warning(
        LINT_BROAD_MANAGED_POLICY,
        format!(
            "the AWS-managed policy {name} ({}) is attached: it allows {grants}",
            policy.arn
        ),
        format!(
            "Detach arn:{partition}:iam::aws:policy/{resource} and attach a policy that names only the actions and resource ARNs the service needs, for example \"Action\": [\"s3:GetObject\"], \"Resource\": [\"arn:{partition}:s3:::my-bucket/*\"]."
        ),
    ))
}

/// `arn:<partition>:iam::aws:policy/<path/>name` → (partition, `<path/>name`).
fn aws_managed_policy(arn: &str) -> Option<(&str, &str)> {
    let mut parts = arn.trim().splitn(6, ':');
    let (arn_literal, partition, service, region, account, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    let resource = resource.strip_prefix("policy/")?;
    (arn_literal == "arn"
        && !partition.is_empty()
        && service == "iam"
        && region.is_empty()
        && account == "aws")
        .then_some((partition, resource))
}

/// Flags a role associated with more than one (namespace, service account) of the cluster:
/// every one of them gets the union of what all need.
pub(crate) fn lint_shared_role(
    role_arn: &str,
    service_accounts: &[(String, String)],
) -> Option<Finding> {
    let mut names: Vec<String> = service_accounts
        .iter()
        .map(|(namespace, sa)| format!("{namespace}/{sa}"))
        .collect();
    names.sort();
    names.dedup();
    if names.len() < 2 {
        return None;
    }
    Some(Finding::warning(
        LINT_SHARED_ROLE,
        format!(
            "role {role_arn} is used by {} service accounts in the cluster: {}",
            names.len(),
            names.join(", ")
        ),
        "Use a dedicated role per service, with only the permissions that service needs, and point each service's awsRole connection at its own role.".to_owned(),
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    use porter_identity_core::Severity;

    fn lint(statements: &str) -> Vec<Finding> {
        lint_policy_raw(
            "app-policy",
            &format!(r#"{{"Version": "2012-10-17", "Statement": [{statements}]}}"#),
        )
    }

    fn codes(findings: &[Finding]) -> Vec<&str> {
        findings.iter().map(|f| f.code.as_str()).collect()
    }

    #[test]
    fn wildcard_action_is_flagged() {
        let findings = lint(
            r#"{"Sid": "All", "Effect": "Allow", "Action": "*", "Resource": "arn:aws:s3:::b"}"#,
        );
        assert_eq!(codes(&findings), [LINT_WILDCARD_ACTION]);
        let f = &findings[0];
        assert_eq!(f.severity, Severity::Warning);
        assert!(
            f.message
                .contains("policy \"app-policy\" Statement[0] (Sid \"All\")"),
            "{}",
            f.message
        );
        assert!(f.remediation.contains("s3:GetObject"));
    }

    #[test]
    fn wildcard_action_with_wildcard_resource_gives_both() {
        let findings = lint(r#"{"Effect": "Allow", "Action": ["*"], "Resource": "*"}"#);
        assert_eq!(
            codes(&findings),
            [LINT_WILDCARD_ACTION, LINT_WILDCARD_RESOURCE]
        );
        assert!(findings[0].message.contains("Statement[0]"));
    }

    #[test]
    fn named_actions_are_not_wildcards() {
        let findings = lint(
            r#"{"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:Get*"], "Resource": "arn:aws:s3:::b/*"}"#,
        );
        assert!(findings.is_empty(), "{findings:?}");
    }

    #[test]
    fn service_wildcard_is_flagged_naming_the_service() {
        let findings = lint(
            r#"{"Effect": "Allow", "Action": ["S3:*", "dynamodb:GetItem"], "Resource": "arn:aws:s3:::b/*"}"#,
        );
        assert_eq!(codes(&findings), [LINT_SERVICE_WILDCARD_ACTION]);
        assert!(
            findings[0]
                .message
                .contains("every action of S3 (\"S3:*\")"),
            "{}",
            findings[0].message
        );
        assert!(
            findings[0]
                .remediation
                .contains("\"s3:GetObject\", \"s3:PutObject\"")
        );

        let findings = lint(
            r#"{"Effect": "Allow", "Action": ["sqs:*", "sns:*"], "Resource": "arn:aws:sqs:us-east-1:1:q"}"#,
        );
        assert_eq!(codes(&findings), [LINT_SERVICE_WILDCARD_ACTION]);
        assert!(findings[0].message.contains("sqs, sns"));
    }

    #[test]
    fn wildcard_resource_with_write_actions_is_flagged() {
        let findings = lint(
            r#"{"Sid": "Writes", "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"], "Resource": "*"}"#,
        );
        assert_eq!(codes(&findings), [LINT_WILDCARD_RESOURCE]);
        let f = &findings[0];
        assert!(
            f.message.contains("\"s3:PutObject\", \"s3:DeleteObject\""),
            "{}",
            f.message
        );
        assert!(!f.message.contains("GetObject"));
        assert!(f.remediation.contains("arn:aws:s3:::my-bucket/*"));
    }

    #[test]
    fn wildcard_resource_with_service_wildcard_gives_both() {
        let findings = lint(r#"{"Effect": "Allow", "Action": "s3:*", "Resource": ["*"]}"#);
        assert_eq!(
            codes(&findings),
            [LINT_SERVICE_WILDCARD_ACTION, LINT_WILDCARD_RESOURCE]
        );
    }

    #[test]
    fn read_only_wildcard_resource_is_not_flagged() {
        let findings = lint(
            r#"{"Effect": "Allow", "Action": ["s3:GetObject", "ec2:DescribeInstances", "s3:ListBucket", "s3:HeadObject", "s3:List*", "logs:get*"], "Resource": "*"}"#,
        );
        assert!(findings.is_empty(), "{findings:?}");
    }

    #[test]
    fn not_resource_counts_as_wildcard_resource() {
        let findings = lint(
            r#"{"Effect": "Allow", "Action": "sqs:SendMessage", "NotResource": "arn:aws:sqs:us-east-1:1:admin"}"#,
        );
        assert_eq!(codes(&findings), [LINT_WILDCARD_RESOURCE]);
        assert!(findings[0].message.contains("NotResource"));
        assert!(findings[0].remediation.contains("arn:aws:sqs:"));
    }

    #[test]
    fn wildcard_resource_with_scoped_resource_is_not_flagged() {
        let findings = lint(
            r#"{"Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": "arn:aws:dynamodb:us-east-1:1:table/t"}"#,
        );
        assert!(findings.is_empty());
    }

    #[test]
    fn not_action_allow_is_flagged() {
        let findings = lint(
            r#"{"Effect": "Allow", "NotAction": ["iam:*", "organizations:*"], "Resource": "arn:aws:s3:::b"}"#,
        );
        assert_eq!(codes(&findings), [LINT_NOT_ACTION_ALLOW]);
        assert!(
            findings[0]
                .message
                .contains("every action except \"iam:*\", \"organizations:*\"")
        );
        assert!(findings[0].remediation.contains("\"Action\""));

        let findings = lint(r#"{"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}"#);
        assert_eq!(
            codes(&findings),
            [LINT_NOT_ACTION_ALLOW, LINT_WILDCARD_RESOURCE]
        );
    }

    #[test]
    fn deny_statements_are_never_flagged() {
        let findings = lint(
            r#"{"Effect": "Deny", "Action": "*", "Resource": "*"},
               {"Effect": "Deny", "Action": "s3:*", "Resource": "*"},
               {"Effect": "Deny", "NotAction": "s3:GetObject", "NotResource": "arn:aws:s3:::b"}"#,
        );
        assert!(findings.is_empty(), "{findings:?}");
    }

    #[test]
    fn statement_index_counts_deny_statements_too() {
        let findings = lint(
            r#"{"Effect": "Deny", "Action": "*", "Resource": "*"},
               {"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b"}"#,
        );
        assert_eq!(codes(&findings), [LINT_SERVICE_WILDCARD_ACTION]);
        assert!(
            findings[0]
                .message
                .starts_with("policy \"app-policy\" Statement[1] ")
        );
    }

    #[test]
    fn write_classification() {
        for read in [
            "s3:GetObject",
            "ec2:DescribeInstances",
            "s3:ListBucket",
            "s3:HeadObject",
            "S3:getobject",
            "s3:Get*",
            "s3:List?ucket",
        ] {
            assert!(!is_write(read), "{read}");
        }
        for write in [
            "s3:PutObject",
            "*",
            "s3:*",
            "s3:*Object",
            "iam:PassRole",
            "sts:AssumeRole",
            "s3:G*",
            "PutObject",
        ] {
            assert!(is_write(write), "{write}");
        }
    }

    #[test]
    fn lint_of_parsed_document_and_url_encoded_raw_agree() {
        let json = r#"{"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}}"#;
        let encoded = utf8_percent_encode(json, NON_ALPHANUMERIC).to_string();
        let parsed = PolicyDocument::parse(json).unwrap();
        assert_eq!(
            lint_policy_raw("p", &encoded),
            lint_policy_document("p", &parsed)
        );
        assert_eq!(lint_policy_document("p", &parsed).len(), 2);
    }

    #[test]
    fn unreadable_policy_is_reported() {
        let findings = lint_policy_raw("broken", "{\"Statement\": [{\"Action\": \"s3:*\"}]}");
        assert_eq!(codes(&findings), [LINT_POLICY_UNREADABLE]);
        assert_eq!(findings[0].severity, Severity::Warning);
        assert!(findings[0].message.contains("\"broken\""));
        assert!(
            findings[0]
                .message
                .contains("Statement[0]: it has no Effect")
        );

        assert_eq!(
            codes(&lint_policy_raw("x", "not json")),
            [LINT_POLICY_UNREADABLE]
        );
    }

    fn attached(arn: &str) -> AttachedPolicy {
        AttachedPolicy {
            name: arn.rsplit('/').next().unwrap().to_owned(),
            arn: arn.to_owned(),
        }
    }

    #[test]
    fn broad_managed_policies_are_flagged() {
        let f =
            lint_attached_policy(&attached("arn:aws:iam::aws:policy/AdministratorAccess")).unwrap();
        assert_eq!(f.code, LINT_BROAD_MANAGED_POLICY);
        assert_eq!(f.severity, Severity::Warning);
        assert!(f.message.contains("AdministratorAccess"));
        assert!(f.message.contains("every action on every resource"));
        assert!(
            f.remediation
                .starts_with("Detach arn:aws:iam::aws:policy/AdministratorAccess")
        );

        let f = lint_attached_policy(&attached("arn:aws-us-gov:iam::aws:policy/PowerUserAccess"))
            .unwrap();
        assert!(f.message.contains("PowerUserAccess"));
        assert!(f.message.contains("except most of IAM"));
        assert!(f.remediation.contains("arn:aws-us-gov:s3:::"));

        let f = lint_attached_policy(&attached(
            "arn:aws-cn:iam::aws:policy/job-function/AdministratorAccess",
        ));
        assert!(f.is_some());
    }

    #[test]
    fn other_attached_policies_are_not_flagged() {
        for arn in [
            "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess",
            "arn:aws:iam::aws:policy/job-function/ViewOnlyAccess",
            "arn:aws:iam::123456789012:policy/AdministratorAccess",
            "arn:aws:iam::aws:policy/AdministratorAccessX",
            "arn:aws:iam::aws:role/AdministratorAccess",
            "AdministratorAccess",
            "",
        ] {
            assert_eq!(lint_attached_policy(&attached(arn)), None, "{arn}");
        }
    }

    #[test]
    fn shared_role_is_flagged() {
        let sas = vec![
            ("prod".to_owned(), "api".to_owned()),
            ("prod".to_owned(), "worker".to_owned()),
            ("staging".to_owned(), "api".to_owned()),
        ];
        let f = lint_shared_role("arn:aws:iam::1:role/app", &sas).unwrap();
        assert_eq!(f.code, LINT_SHARED_ROLE);
        assert_eq!(f.severity, Severity::Warning);
        assert!(f.message.contains("3 service accounts"));
        assert!(f.message.contains("prod/api, prod/worker, staging/api"));
        assert!(f.remediation.contains("dedicated role per service"));
    }

    #[test]
    fn single_service_account_is_not_shared() {
        assert_eq!(lint_shared_role("arn:aws:iam::1:role/app", &[]), None);
        let one = vec![("prod".to_owned(), "api".to_owned())];
        assert_eq!(lint_shared_role("arn:aws:iam::1:role/app", &one), None);
        let duplicate = vec![
            ("prod".to_owned(), "api".to_owned()),
            ("prod".to_owned(), "api".to_owned()),
        ];
        assert_eq!(
            lint_shared_role("arn:aws:iam::1:role/app", &duplicate),
            None
        );
    }
}
