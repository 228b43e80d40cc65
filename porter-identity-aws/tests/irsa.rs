//! IRSA mode and Fargate on the in-memory fakes: an IRSA bind writes nothing in AWS and asks
//! for the `eks.amazonaws.com/role-arn` annotation; a missing IAM OIDC provider, one without
//! the `sts.amazonaws.com` audience, and a trust policy for another service account are each
//! refused before anything with their fix; a wildcard subject binds with a note and is flagged
//! by verify; switching a service to IRSA deletes only porter-identity's own association; a
//! Pod Identity binding in a namespace a Fargate profile selects is a verify error naming IRSA.
#![cfg(feature = "fake")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use porter_identity_aws::api::{CreateAssociation, EksIamApi};
use porter_identity_aws::fake::FakeAws;
use porter_identity_aws::{AwsPodIdentityProvider, codes};
use porter_identity_core::{
    AppManifest, AwsRoleMode, BindChange, Binding, Cloud, ErrorKind, Reconciler, Severity,
    WorkloadIdentityProvider,
};

const ACCOUNT: &str = "111122223333";
const CLUSTER: &str = "prod";
const NS: &str = "shop";
const ANNOTATION: &str = "eks.amazonaws.com/role-arn";
/// The service account of service `api` of app `demo`.
const SA: &str = "demo-api";

fn role_arn(role: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/{role}")
}

/// An IRSA trust policy: `provider` may assume the role for `subject` (StringEquals, or
/// StringLike when `like`), audience sts.amazonaws.com.
fn irsa_trust(aws: &FakeAws, subject: &str, like: bool) -> String {
    let issuer = aws.cluster_oidc_issuer(CLUSTER);
    let host = issuer.trim_start_matches("https://");
    let aud = format!(r#""{host}:aud":"sts.amazonaws.com""#);
    let sub = format!(r#""{host}:sub":"{subject}""#);
    // One object per operator: JSON keeps the last of two equal keys.
    let condition = if like {
        format!(r#"{{"StringLike":{{{sub}}},"StringEquals":{{{aud}}}}}"#)
    } else {
        format!(r#"{{"StringEquals":{{{sub},{aud}}}}}"#)
    };
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"Federated":"arn:aws:iam::{ACCOUNT}:oidc-provider/{host}"}},"Action":"sts:AssumeRoleWithWebIdentity","Condition":{condition}}}]}}"#
    )
}

/// A cluster without the Pod Identity agent, its IAM OIDC provider, and role `api-role`
/// trusting it for exactly `shop/demo-api`.
fn fake() -> FakeAws {
    let aws = FakeAws::new(ACCOUNT, "us-east-1");
    aws.add_cluster(CLUSTER);
    aws.add_cluster_oidc_provider(CLUSTER);
    aws.add_role(
        "api-role",
        &irsa_trust(&aws, &format!("system:serviceaccount:{NS}:{SA}"), false),
    );
    aws
}

async fn provider(aws: &FakeAws, mode: AwsRoleMode) -> AwsPodIdentityProvider {
    AwsPodIdentityProvider::builder()
        .cluster(CLUSTER)
        .api(aws.clone())
        .mode(mode)
        .build()
        .await
        .unwrap()
}

fn manifest(extra: &str) -> AppManifest {
    AppManifest::from_yaml_str(&format!(
        "services:\n  - name: api\n    connections:\n      - type: awsRole\n        role: api-role\n{extra}"
    ))
    .unwrap()
}

fn binding(extra: &str) -> Binding {
    manifest(extra)
        .bindings_for(Cloud::Aws, "demo", NS)
        .unwrap()
        .remove(0)
}

const IRSA: &str = "        mode: irsa\n";

#[tokio::test]
async fn an_irsa_bind_writes_nothing_and_asks_for_the_annotation() {
    let aws = fake();
    // The connection says IRSA; the provider's default is Pod Identity.
    let p = provider(&aws, AwsRoleMode::PodIdentity).await;
    let report = Reconciler::new("demo", NS)
        .provider(&p)
        .desired(&manifest(IRSA))
        .run()
        .await
        .unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(aws.write_calls(), 0, "{:?}", aws.calls());
    assert!(aws.associations(CLUSTER).is_empty());
    let needs = report.service_account(NS, SA).expect("the SA's needs");
    assert_eq!(
        needs.patch.annotations.get(ANNOTATION),
        Some(&role_arn("api-role"))
    );
    assert!(report.to_string().contains("(IRSA)"), "{report}");
    // Only reads: the cluster (its issuer), the role, the OIDC provider, the listing.
    let calls = aws.calls();
    assert_eq!(
        calls.get("ListOpenIDConnectProviders"),
        Some(&1),
        "{calls:?}"
    );
    assert_eq!(calls.get("GetOpenIDConnectProvider"), Some(&1), "{calls:?}");

    // Verify: healthy without the Pod Identity agent, and says what the SA needs.
    let v = p.verify(&binding(IRSA)).await.unwrap();
    assert!(v.is_healthy(), "{v:?}");
    assert_eq!(
        v.service_account_patch.annotations.get(ANNOTATION),
        Some(&role_arn("api-role"))
    );
    // The same binding in Pod Identity mode: the missing agent is an error whose fix names IRSA.
    let v = p.verify(&binding("")).await.unwrap();
    let agent = v
        .finding(codes::AGENT_MISSING)
        .unwrap_or_else(|| panic!("no {} in {:?}", codes::AGENT_MISSING, v));
    assert!(agent.remediation.contains("mode: irsa"), "{agent:?}");
}

#[tokio::test]
async fn a_missing_oidc_provider_is_refused_with_the_command() {
    let aws = fake();
    let issuer = aws.cluster_oidc_issuer(CLUSTER);
    aws.remove_oidc_provider(&format!(
        "arn:aws:iam::{ACCOUNT}:oidc-provider/{}",
        issuer.trim_start_matches("https://")
    ));
    let p = provider(&aws, AwsRoleMode::Irsa).await;
    let err = p.bind(&binding("")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let fix = err.fix().unwrap_or_default();
    assert!(
        fix.contains(&format!(
            "aws iam create-open-id-connect-provider --url {issuer} --client-id-list sts.amazonaws.com"
        )),
        "{fix}"
    );
    let v = p.verify(&binding("")).await.unwrap();
    assert_eq!(
        v.finding(codes::IRSA_OIDC_PROVIDER_MISSING)
            .unwrap_or_else(|| panic!("no {} in {:?}", codes::IRSA_OIDC_PROVIDER_MISSING, v))
            .severity,
        Severity::Error
    );
    assert_eq!(aws.write_calls(), 0);
}

#[tokio::test]
async fn a_provider_without_the_sts_audience_is_refused() {
    let aws = FakeAws::new(ACCOUNT, "us-east-1");
    aws.add_cluster(CLUSTER);
    let arn = aws.add_oidc_provider(&aws.cluster_oidc_issuer(CLUSTER), &["other-audience"]);
    aws.add_role(
        "api-role",
        &irsa_trust(&aws, &format!("system:serviceaccount:{NS}:{SA}"), false),
    );
    let p = provider(&aws, AwsRoleMode::Irsa).await;
    let err = p.bind(&binding("")).await.unwrap_err();
    assert!(err.to_string().contains("sts.amazonaws.com"), "{err}");
    assert_eq!(
        err.fix().unwrap_or_default(),
        format!(
            "aws iam add-client-id-to-open-id-connect-provider --open-id-connect-provider-arn {arn} --client-id sts.amazonaws.com"
        )
    );
}

#[tokio::test]
async fn a_trust_policy_for_another_service_account_is_refused_with_the_statement() {
    let aws = fake();
    aws.set_trust_policy(
        "api-role",
        &irsa_trust(&aws, "system:serviceaccount:shop:someone-else", false),
    );
    let p = provider(&aws, AwsRoleMode::Irsa).await;
    let err = p.bind(&binding("")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    let fix = err.fix().unwrap_or_default();
    assert!(
        fix.contains(&format!(r#":sub": "system:serviceaccount:{NS}:{SA}""#)),
        "{fix}"
    );
    assert!(fix.contains(r#":aud": "sts.amazonaws.com""#), "{fix}");
    assert!(fix.contains("sts:AssumeRoleWithWebIdentity"), "{fix}");
    // Fixed in IAM: the same provider sees it on the next bind (a refused role is not kept).
    aws.set_trust_policy(
        "api-role",
        &irsa_trust(&aws, &format!("system:serviceaccount:{NS}:{SA}"), false),
    );
    p.bind(&binding(""))
        .await
        .expect("the fixed trust is read again");
    aws.set_trust_policy(
        "api-role",
        &irsa_trust(&aws, "system:serviceaccount:shop:someone-else", false),
    );
    let v = p.verify(&binding("")).await.unwrap();
    assert_eq!(
        v.finding(codes::IRSA_TRUST_MISSING)
            .unwrap_or_else(|| panic!("no {} in {:?}", codes::IRSA_TRUST_MISSING, v))
            .severity,
        Severity::Error
    );
}

#[tokio::test]
async fn a_wildcard_subject_binds_with_a_note_and_verify_flags_it() {
    let aws = fake();
    aws.set_trust_policy(
        "api-role",
        &irsa_trust(&aws, "system:serviceaccount:shop:*", true),
    );
    let p = provider(&aws, AwsRoleMode::Irsa).await;
    let outcome = p.bind(&binding("")).await.unwrap();
    let notes = outcome.service_account_patch.notes.join("\n");
    assert!(notes.contains("system:serviceaccount:shop:*"), "{notes}");
    let v = p.verify(&binding("")).await.unwrap();
    let wide = v
        .finding(codes::IRSA_WILDCARD_SUBJECT)
        .unwrap_or_else(|| panic!("no {} in {:?}", codes::IRSA_WILDCARD_SUBJECT, v));
    assert_eq!(wide.severity, Severity::Warning);
    assert!(wide.message.contains("every service account"), "{wide:?}");
}

#[tokio::test]
async fn irsa_takes_no_target_role() {
    let aws = fake();
    let p = provider(&aws, AwsRoleMode::Irsa).await;
    let err = p
        .bind(&binding(
            "        targetRole: arn:aws:iam::444455556666:role/data\n",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("awsRole.targetRole"), "{err}");
}

#[tokio::test]
async fn switching_to_irsa_deletes_only_porter_identitys_own_association() {
    let aws = fake();
    aws.install_addon(CLUSTER, "eks-pod-identity-agent", "ACTIVE");
    aws.add_role("pods-role", &FakeAws::pods_trust_policy());
    // The service was on Pod Identity, through porter-identity.
    let pods = AppManifest::from_yaml_str(
        "services:\n  - name: api\n    connections:\n      - type: awsRole\n        role: pods-role\n",
    )
    .unwrap();
    let p = provider(&aws, AwsRoleMode::PodIdentity).await;
    Reconciler::new("demo", NS)
        .provider(&p)
        .desired(&pods)
        .run()
        .await
        .unwrap();
    assert_eq!(aws.associations(CLUSTER).len(), 1);

    let outcome = p.bind(&binding(IRSA)).await.unwrap();
    assert!(
        matches!(&outcome.change, BindChange::Updated { previous } if previous.contains("pods-role")),
        "{:?}",
        outcome.change
    );
    assert!(
        aws.associations(CLUSTER).is_empty(),
        "its own association is gone"
    );

    // Someone else's association on the same service account: refused, kept.
    aws.create_pod_identity_association(CreateAssociation {
        cluster: CLUSTER.into(),
        namespace: NS.into(),
        service_account: SA.into(),
        role_arn: role_arn("pods-role"),
        client_request_token: "by-hand".into(),
        tags: BTreeMap::new(),
        ..CreateAssociation::default()
    })
    .await
    .unwrap();
    aws.reset_calls();
    let err = p.bind(&binding(IRSA)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(
        err.fix().unwrap_or_default().contains("mode: podIdentity"),
        "{err}"
    );
    assert_eq!(aws.write_calls(), 0);
    assert_eq!(aws.associations(CLUSTER).len(), 1);
    let v = p.verify(&binding(IRSA)).await.unwrap();
    v.finding(codes::IRSA_WITH_ASSOCIATION)
        .unwrap_or_else(|| panic!("no {} in {:?}", codes::IRSA_WITH_ASSOCIATION, v));
}

#[tokio::test]
async fn a_removed_irsa_link_is_stale_by_the_previous_deploy_with_no_aws_write() {
    let aws = fake();
    let p = provider(&aws, AwsRoleMode::Irsa).await;
    let previous = manifest("");
    let now = AppManifest::from_yaml_str("services:\n  - name: api\n").unwrap();
    let report = Reconciler::new("demo", NS)
        .provider(&p)
        .desired(&now)
        .previous(&previous)
        .run()
        .await
        .unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.removed.len(), 1, "{report}");
    assert_eq!(
        report.removed[0]
            .binding
            .workload
            .service_account()
            .as_str(),
        SA
    );
    assert_eq!(aws.write_calls(), 0);
}

#[tokio::test]
async fn a_fargate_namespace_in_pod_identity_mode_is_a_verify_error_naming_irsa() {
    let aws = FakeAws::new(ACCOUNT, "us-east-1");
    aws.add_cluster(CLUSTER)
        .install_addon(CLUSTER, "eks-pod-identity-agent", "ACTIVE")
        .add_role("api-role", &FakeAws::pods_trust_policy())
        .add_fargate_profile(CLUSTER, "serverless", &[("sh?p", &[])])
        .add_fargate_profile(CLUSTER, "batch", &[("shop", &[("compute", "fargate")])])
        .add_fargate_profile(CLUSTER, "elsewhere", &[("payments-*", &[])]);
    let p = provider(&aws, AwsRoleMode::PodIdentity).await;
    let v = p.verify(&binding("")).await.unwrap();
    let fargate: Vec<_> = v
        .findings
        .iter()
        .filter(|f| f.code == codes::FARGATE_SELECTED)
        .collect();
    assert_eq!(fargate.len(), 2, "{v:?}");
    let all = fargate
        .iter()
        .find(|f| f.message.contains("serverless"))
        .unwrap();
    assert_eq!(all.severity, Severity::Error);
    assert!(all.remediation.contains("mode: irsa"), "{all:?}");
    let labelled = fargate
        .iter()
        .find(|f| f.message.contains("batch"))
        .unwrap();
    assert_eq!(labelled.severity, Severity::Warning);
    assert!(labelled.message.contains("compute=fargate"), "{labelled:?}");
    // In IRSA mode the profiles do not matter.
    let v = p.verify(&binding(IRSA)).await.unwrap();
    assert!(v.findings.iter().all(|f| f.code != codes::FARGATE_SELECTED));
}

#[tokio::test]
async fn irsa_reads_the_role_and_the_oidc_provider_once_not_per_workload() {
    let aws = FakeAws::new(ACCOUNT, "us-east-1");
    aws.add_cluster(CLUSTER);
    aws.add_cluster_oidc_provider(CLUSTER);
    // One role for 50 services, trusting each of their service accounts.
    let issuer = aws.cluster_oidc_issuer(CLUSTER);
    let host = issuer.trim_start_matches("https://");
    let subjects: Vec<String> = (0..50)
        .map(|i| format!("system:serviceaccount:{NS}:demo-svc-{i}"))
        .collect();
    aws.add_role(
        "api-role",
        &serde_json::json!({"Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": format!("arn:aws:iam::{ACCOUNT}:oidc-provider/{host}")},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {format!("{host}:sub"): subjects, format!("{host}:aud"): "sts.amazonaws.com"}},
        }]})
        .to_string(),
    );
    let mut yaml = String::from("services:\n");
    for i in 0..50 {
        yaml.push_str(&format!(
            "  - name: svc-{i}\n    connections:\n      - type: awsRole\n        role: api-role\n"
        ));
    }
    let p = provider(&aws, AwsRoleMode::Irsa).await;
    let report = Reconciler::new("demo", NS)
        .provider(&p)
        .desired(&AppManifest::from_yaml_str(&yaml).unwrap())
        .run()
        .await
        .unwrap();
    assert!(report.is_ok(), "{report}");
    let calls = aws.calls();
    for (op, n) in [
        ("GetRole", 1),
        ("ListOpenIDConnectProviders", 1),
        ("GetOpenIDConnectProvider", 1),
        ("DescribeCluster", 1),
    ] {
        assert_eq!(calls.get(op), Some(&n), "{op}: {calls:?}");
    }
    assert_eq!(aws.write_calls(), 0);
}

#[tokio::test]
async fn an_irsa_role_in_an_account_the_provider_cannot_read_is_noted_not_refused() {
    let aws = fake();
    let p = provider(&aws, AwsRoleMode::Irsa).await;
    let elsewhere = "arn:aws:iam::999999999999:role/shared-irsa";
    let b = manifest("")
        .bindings_for(Cloud::Aws, "demo", NS)
        .unwrap()
        .into_iter()
        .map(|b| {
            Binding::new(
                b.workload,
                porter_identity_core::Connection::aws_role(
                    porter_identity_core::RoleRef::parse(elsewhere).unwrap(),
                ),
            )
        })
        .next()
        .unwrap();
    let outcome = p.bind(&b).await.unwrap();
    assert_eq!(
        outcome.service_account_patch.annotations.get(ANNOTATION),
        Some(&elsewhere.to_owned())
    );
    let notes = outcome.service_account_patch.notes.join("\n");
    assert!(notes.contains("not checked from here"), "{notes}");
    let v = p.verify(&b).await.unwrap();
    assert_eq!(
        v.finding(codes::IRSA_NOT_CHECKED).map(|f| f.severity),
        Some(Severity::Info),
        "{v:?}"
    );
    assert!(v.is_healthy(), "{v:?}");
}

#[tokio::test]
async fn an_apps_verify_reads_the_fargate_profiles_once_and_survives_not_being_allowed_to() {
    let aws = FakeAws::new(ACCOUNT, "us-east-1");
    aws.add_cluster(CLUSTER)
        .install_addon(CLUSTER, "eks-pod-identity-agent", "ACTIVE")
        .add_role("api-role", &FakeAws::pods_trust_policy())
        .add_fargate_profile(CLUSTER, "a", &[("other", &[])])
        .add_fargate_profile(CLUSTER, "b", &[("batch-*", &[])]);
    let p = provider(&aws, AwsRoleMode::PodIdentity).await;
    let mut yaml = String::from("services:\n");
    for i in 0..5 {
        yaml.push_str(&format!(
            "  - name: svc-{i}\n    connections:\n      - type: awsRole\n        role: api-role\n"
        ));
    }
    let manifest = AppManifest::from_yaml_str(&yaml).unwrap();
    aws.reset_calls();
    let report = Reconciler::new("demo", NS)
        .provider(&p)
        .desired(&manifest)
        .verify()
        .await
        .unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(aws.call_count("ListFargateProfiles"), 1);
    assert_eq!(aws.call_count("DescribeFargateProfile"), 2);

    // Not allowed to read them: an info finding, the rest of the verify as before.
    aws.inject_failures(Some("ListFargateProfiles"), ErrorKind::PermissionDenied, 1);
    let v = p.verify(&binding("")).await.unwrap();
    assert_eq!(
        v.finding(codes::FARGATE_NOT_READ).map(|f| f.severity),
        Some(Severity::Info),
        "{v:?}"
    );
}
