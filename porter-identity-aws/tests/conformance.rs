//! The shared conformance suite and every verify finding, on the in-memory fake EKS + IAM.
#![cfg(feature = "fake")]
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use porter_identity_aws::AwsPodIdentityProvider;
use porter_identity_aws::codes;
use porter_identity_aws::fake::FakeAws;
use porter_identity_core::testing;
use porter_identity_core::{
    BindChange, Binding, Connection, ErrorKind, RetryPolicy, RoleRef, Severity, VerifyReport,
    Workload, WorkloadIdentityProvider,
};

const ACCOUNT: &str = "123456789012";
const CLUSTER: &str = "prod";

fn fake() -> FakeAws {
    let aws = FakeAws::new(ACCOUNT, "us-east-1");
    aws.add_cluster(CLUSTER);
    aws.install_addon(CLUSTER, "eks-pod-identity-agent", "ACTIVE");
    for r in ["role-0", "role-1"] {
        aws.add_role(r, &FakeAws::pods_trust_policy());
    }
    aws
}

async fn provider(aws: &FakeAws) -> AwsPodIdentityProvider {
    AwsPodIdentityProvider::builder()
        .cluster(CLUSTER)
        .api(aws.clone())
        .retry_policy(
            RetryPolicy::default()
                .initial_backoff(Duration::from_millis(1))
                .max_backoff(Duration::from_millis(20)),
        )
        .build()
        .await
        .unwrap()
}

fn factory(workload: usize, identity: usize) -> Binding {
    binding(&format!("svc-{workload}"), &format!("role-{identity}"))
}

fn binding(service: &str, role: &str) -> Binding {
    Binding::new(
        Workload::for_service("apps", "shop", service).unwrap(),
        Connection::aws_role(RoleRef::parse(role).unwrap()),
    )
}

fn codes_of(report: &VerifyReport, severity: Severity) -> BTreeSet<String> {
    report.of(severity).map(|f| f.code.clone()).collect()
}

#[tokio::test]
async fn fake_passes_the_conformance_suite() {
    let aws = fake();
    let p = provider(&aws).await;
    testing::run_all(&p, &factory).await;
    testing::transient_failures_are_retried(&p, &factory, &|n| {
        aws.inject_failures(None, ErrorKind::Throttled, n);
    })
    .await;
}

#[tokio::test]
async fn the_suite_passes_one_call_at_a_time() {
    // The provider's gate at its narrowest: nothing waits on a call that waits on the gate.
    let aws = fake();
    let p = AwsPodIdentityProvider::builder()
        .cluster(CLUSTER)
        .api(aws.clone())
        .concurrency(1)
        .retry_policy(RetryPolicy::default().initial_backoff(Duration::from_millis(1)))
        .build()
        .await
        .unwrap();
    testing::run_all(&p, &factory).await;
}

#[tokio::test]
async fn two_hundred_concurrent_binds_lose_nothing() {
    let aws = fake();
    let p = provider(&aws).await;
    testing::concurrent_binds_lose_nothing(&p, &factory, 200).await;
    let all = aws.associations(CLUSTER);
    assert_eq!(all.len(), 200, "exactly one association per workload");
    let keys: BTreeSet<_> = all.iter().map(|a| a.service_account.clone()).collect();
    assert_eq!(keys.len(), 200);
    for a in &all {
        let n: usize = a
            .service_account
            .trim_start_matches("shop-svc-")
            .parse()
            .unwrap();
        assert_eq!(
            a.role_arn,
            format!("arn:aws:iam::{ACCOUNT}:role/role-{}", (n - 1000) % 2)
        );
        assert_eq!(
            a.tags.get("managed-by").map(String::as_str),
            Some("porter-identity")
        );
    }
}

#[tokio::test]
async fn fifty_concurrent_binds_of_one_workload_make_one_association() {
    let aws = fake();
    // Latency widens the window between list and create, so the binds really race.
    aws.set_latency(Duration::from_millis(5));
    let p = provider(&aws).await;
    testing::concurrent_binds_of_one_workload_agree(&p, &factory, 50).await;
    let b = factory(7, 0);
    p.bind(&b).await.unwrap();
    assert_eq!(aws.associations(CLUSTER).len(), 1);
}

#[tokio::test]
async fn concurrent_binds_from_separate_processes_make_one_association() {
    // Each deploy process has its own provider (no shared cache): they race at EKS.
    let aws = fake();
    aws.set_latency(Duration::from_millis(5));
    let mut providers = Vec::new();
    for _ in 0..20 {
        providers.push(provider(&aws).await);
    }
    let b = binding("api", "role-0");
    let results = futures_util::future::join_all(providers.iter().map(|p| p.bind(&b))).await;
    let created = results
        .iter()
        .filter(|r| r.as_ref().unwrap().change == BindChange::Created)
        .count();
    assert!(created >= 1);
    assert_eq!(aws.associations(CLUSTER).len(), 1);
}

#[tokio::test]
async fn unchanged_rebind_makes_no_write_and_two_reads() {
    let aws = fake();
    let p = provider(&aws).await;
    let bindings: Vec<_> = (0..10).map(|i| factory(i, i % 2)).collect();
    for b in &bindings {
        p.bind(b).await.unwrap();
    }
    aws.reset_calls();
    for b in &bindings {
        assert_eq!(p.bind(b).await.unwrap().change, BindChange::Unchanged);
    }
    assert_eq!(aws.write_calls(), 0);
    let reads: u64 = aws.calls().values().sum();
    assert_eq!(reads, 20, "{:?}", aws.calls());
}

#[tokio::test]
async fn healthy_binding_verifies_clean() {
    let aws = fake();
    let p = provider(&aws).await;
    let b = binding("api", "role-0");
    p.bind(&b).await.unwrap();
    let report = p.verify(&b).await.unwrap();
    assert!(report.is_healthy(), "{report}");
    assert!(codes_of(&report, Severity::Warning).is_empty(), "{report}");
}

#[tokio::test]
async fn verify_cluster_missing() {
    let aws = FakeAws::new(ACCOUNT, "us-east-1");
    aws.add_role("role-0", &FakeAws::pods_trust_policy());
    let report = provider(&aws)
        .await
        .verify(&binding("api", "role-0"))
        .await
        .unwrap();
    assert!(report.has(codes::CLUSTER_NOT_FOUND), "{report}");
    assert!(!report.is_healthy());
}

#[tokio::test]
async fn verify_cluster_not_active() {
    let aws = fake();
    let p = provider(&aws).await;
    let b = binding("api", "role-0");
    p.bind(&b).await.unwrap();
    aws.set_cluster_status(CLUSTER, "UPDATING");
    let report = p.verify(&b).await.unwrap();
    assert!(
        codes_of(&report, Severity::Error).contains(codes::CLUSTER_NOT_ACTIVE),
        "{report}"
    );
}

#[tokio::test]
async fn verify_agent_missing_and_degraded() {
    let aws = fake();
    let p = provider(&aws).await;
    let b = binding("api", "role-0");
    p.bind(&b).await.unwrap();
    aws.remove_addon(CLUSTER, "eks-pod-identity-agent");
    let report = p.verify(&b).await.unwrap();
    assert!(
        codes_of(&report, Severity::Error).contains(codes::AGENT_MISSING),
        "{report}"
    );
    let missing = report
        .findings
        .iter()
        .find(|f| f.code == codes::AGENT_MISSING)
        .unwrap();
    assert!(missing.remediation.contains("create-addon"), "{missing}");

    aws.install_addon(CLUSTER, "eks-pod-identity-agent", "DEGRADED");
    let report = p.verify(&b).await.unwrap();
    assert!(
        codes_of(&report, Severity::Error).contains(codes::AGENT_DEGRADED),
        "{report}"
    );
}

#[tokio::test]
async fn verify_role_missing() {
    let aws = fake();
    let report = provider(&aws)
        .await
        .verify(&binding("api", "ghost"))
        .await
        .unwrap();
    assert!(
        codes_of(&report, Severity::Error).contains(codes::ROLE_NOT_FOUND),
        "{report}"
    );
    // The fix is said once, in the remediation, not also at the end of the message.
    let missing = report
        .findings
        .iter()
        .find(|f| f.code == codes::ROLE_NOT_FOUND)
        .unwrap();
    assert!(missing.remediation.contains("create the role"), "{missing}");
    assert!(!missing.message.contains("Fix:"), "{missing}");
    assert!(!missing.message.contains(&missing.remediation), "{missing}");
}

#[tokio::test]
async fn verify_cross_account_role() {
    let aws = fake();
    let b = binding("api", "arn:aws:iam::999999999999:role/elsewhere");
    let report = provider(&aws).await.verify(&b).await.unwrap();
    assert!(
        codes_of(&report, Severity::Error).contains(codes::ROLE_CROSS_ACCOUNT),
        "{report}"
    );
    let err = provider(&aws).await.bind(&b).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(aws.associations(CLUSTER).is_empty());
}

#[tokio::test]
async fn verify_trust_policy_gaps() {
    let aws = fake();
    aws.add_role(
        "no-tag",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
    );
    aws.add_role(
        "ec2-only",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
    );
    let p = provider(&aws).await;
    let report = p.verify(&binding("api", "no-tag")).await.unwrap();
    assert!(
        codes_of(&report, Severity::Error).contains(codes::TRUST_MISSING_TAG_SESSION),
        "{report}"
    );
    let report = p.verify(&binding("api", "ec2-only")).await.unwrap();
    assert!(
        codes_of(&report, Severity::Error).contains(codes::TRUST_MISSING_PRINCIPAL),
        "{report}"
    );
    // bind refuses before writing, and says what to add
    let err = p.bind(&binding("api", "no-tag")).await.unwrap_err();
    assert!(err.fix().unwrap().contains("sts:TagSession"), "{err}");
    assert!(aws.associations(CLUSTER).is_empty());
    assert_eq!(aws.write_calls(), 0);
}

#[tokio::test]
async fn fixed_trust_policy_is_seen_on_next_bind() {
    let aws = fake();
    aws.add_role(
        "late",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
    );
    let p = provider(&aws).await;
    let b = binding("api", "late");
    assert!(p.bind(&b).await.is_err());
    aws.set_trust_policy("late", &FakeAws::pods_trust_policy());
    assert_eq!(p.bind(&b).await.unwrap().change, BindChange::Created);
}

#[tokio::test]
async fn verify_association_missing_and_wrong_role() {
    let aws = fake();
    let p = provider(&aws).await;
    let report = p.verify(&binding("api", "role-0")).await.unwrap();
    assert!(
        codes_of(&report, Severity::Error).contains(codes::ASSOCIATION_MISSING),
        "{report}"
    );
    p.bind(&binding("api", "role-1")).await.unwrap();
    let report = p.verify(&binding("api", "role-0")).await.unwrap();
    assert!(
        codes_of(&report, Severity::Error).contains(codes::ASSOCIATION_WRONG_ROLE),
        "{report}"
    );
}

#[tokio::test]
async fn addon_owned_association_is_reported_and_left_alone() {
    let aws = fake();
    let owner = "arn:aws:eks:us-east-1:123456789012:addon/prod/aws-ebs-csi-driver/abc";
    aws.add_addon_owned_association(
        CLUSTER,
        "apps",
        "shop-api",
        &format!("arn:aws:iam::{ACCOUNT}:role/role-1"),
        owner,
    );
    let p = provider(&aws).await;
    let b = binding("api", "role-0");
    let report = p.verify(&b).await.unwrap();
    assert!(
        codes_of(&report, Severity::Error).contains(codes::ASSOCIATION_ADDON_OWNED),
        "{report}"
    );
    assert_eq!(p.bind(&b).await.unwrap_err().kind(), ErrorKind::Conflict);
    assert_eq!(p.unbind(&b).await.unwrap_err().kind(), ErrorKind::Conflict);
    let left = aws.associations(CLUSTER);
    assert_eq!(left.len(), 1);
    assert_eq!(
        left[0].role_arn,
        format!("arn:aws:iam::{ACCOUNT}:role/role-1")
    );
    assert_eq!(aws.write_calls(), 0);
}

#[tokio::test]
async fn verify_lints_permissions() {
    let aws = fake();
    aws.add_role("broad", &FakeAws::pods_trust_policy());
    aws.attach_managed_policy(
        "broad",
        "AdministratorAccess",
        "arn:aws:iam::aws:policy/AdministratorAccess",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
    );
    aws.attach_managed_policy(
        "broad",
        "s3-all",
        &format!("arn:aws:iam::{ACCOUNT}:policy/s3-all"),
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::b/*"}]}"#,
    );
    aws.put_role_policy(
        "broad",
        "inline",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["dynamodb:PutItem"],"Resource":"*"},{"Effect":"Allow","NotAction":"iam:*","Resource":"*"}]}"#,
    );
    let p = provider(&aws).await;
    let b = binding("api", "broad");
    p.bind(&b).await.unwrap();
    p.bind(&binding("worker", "broad")).await.unwrap();
    let report = p.verify(&b).await.unwrap();
    assert!(report.is_healthy(), "lint findings are warnings: {report}");
    let warnings = codes_of(&report, Severity::Warning);
    for code in [
        codes::LINT_BROAD_MANAGED_POLICY,
        codes::LINT_SERVICE_WILDCARD_ACTION,
        codes::LINT_WILDCARD_RESOURCE,
        codes::LINT_NOT_ACTION_ALLOW,
        codes::LINT_SHARED_ROLE,
    ] {
        assert!(warnings.contains(code), "{code} missing from {report}");
    }
    let shared = report
        .findings
        .iter()
        .find(|f| f.code == codes::LINT_SHARED_ROLE)
        .unwrap();
    assert!(shared.message.contains("shop-worker"), "{shared}");
}

#[tokio::test]
async fn association_limit_is_a_clear_error() {
    let aws = fake();
    aws.set_association_limit(2);
    let p = provider(&aws).await;
    p.bind(&factory(0, 0)).await.unwrap();
    p.bind(&factory(1, 0)).await.unwrap();
    let err = p.bind(&factory(2, 0)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LimitExceeded);
    assert!(err.to_string().contains("5,000"), "{err}");
    assert!(err.fix().is_some());
}

#[tokio::test]
async fn unbind_leaves_other_services_alone() {
    let aws = fake();
    let p = provider(&aws).await;
    p.bind(&binding("api", "role-0")).await.unwrap();
    p.bind(&binding("worker", "role-0")).await.unwrap();
    p.unbind(&binding("api", "role-0")).await.unwrap();
    let left = aws.associations(CLUSTER);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].service_account, "shop-worker");
}

#[tokio::test]
async fn a_down_eks_endpoint_costs_one_budget() {
    // The EKS endpoint down; IAM answers.
    let aws = fake();
    let p = provider(&aws).await;
    testing::a_down_endpoint_costs_one_budget(
        &p,
        &factory,
        RetryPolicy::default().get_max_attempts(),
        &|| {
            aws.inject_eks_failures(ErrorKind::Unavailable, 1_000_000);
        },
        &|| aws.eks_calls(),
    )
    .await;
}

/// The whole suite again with every binding chained into a target role in another account
/// (read with that account's credentials): the target's path keeps every promise the plain one
/// does — idempotent, concurrent, the ownership guard, the reconciler.
#[tokio::test]
async fn the_suite_passes_with_cross_account_target_roles() {
    const DATA: &str = "444455556666";
    let aws = fake();
    let data = FakeAws::new(DATA, "us-east-1");
    for r in ["role-0", "role-1"] {
        let arn = format!("arn:aws:iam::{ACCOUNT}:role/{r}");
        aws.put_role_policy(
            r,
            "chain",
            &format!(
                r#"{{"Statement":[{{"Effect":"Allow","Action":["sts:AssumeRole","sts:TagSession"],"Resource":"arn:aws:iam::{DATA}:role/target-*"}}]}}"#
            ),
        );
        data.add_role(
            &format!("target-{}", &r[5..]),
            &format!(
                r#"{{"Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{arn}"}},"Action":["sts:AssumeRole","sts:TagSession"]}}]}}"#
            ),
        );
    }
    let p = AwsPodIdentityProvider::builder()
        .cluster(CLUSTER)
        .api(aws.clone())
        .target_account_api(DATA, data.clone())
        .retry_policy(RetryPolicy::default().initial_backoff(Duration::from_millis(1)))
        .build()
        .await
        .unwrap();
    let chained = |workload: usize, identity: usize| {
        let options = porter_identity_core::AwsRoleOptions::default()
            .target_role(
                RoleRef::parse(&format!("arn:aws:iam::{DATA}:role/target-{identity}")).unwrap(),
            )
            .unwrap();
        Binding::new(
            Workload::for_service("apps", "shop", &format!("svc-{workload}")).unwrap(),
            Connection::aws_role_with(
                RoleRef::parse(&format!("role-{identity}")).unwrap(),
                options,
            )
            .unwrap(),
        )
    };
    testing::run_all(&p, &chained).await;
    assert!(
        aws.associations(CLUSTER)
            .iter()
            .all(|a| a.settings.target_role_arn.is_some()),
        "every association the suite left carries its target"
    );
    // The targets were read in their own account (verify reads afresh, so more than once).
    assert!(data.call_count("GetRole") > 0);
}
