//! One reconcile of an `AppIdentity` on the in-memory EKS + IAM: links made and `Ready=True`;
//! a link deleted behind its back restored by the next reconcile; a link no policy allows
//! refused with no cloud call; a service dropped from the spec removed through what the status
//! recorded as applied.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use porter_identity_aws::AwsPodIdentityProvider;
use porter_identity_aws::api::EksIamApi;
use porter_identity_aws::fake::FakeAws;
use porter_identity_controller::reconcile::{Clouds, Outcome, reconcile};
use porter_identity_controller::{AppIdentity, AppIdentitySpec, IdentityPolicySpec};
use porter_identity_core::WorkloadIdentityProvider;
use serde_json::json;

const ACCOUNT: &str = "111122223333";
const NOW: &str = "2026-12-07T12:00:00Z";

fn fake() -> FakeAws {
    let aws = FakeAws::new(ACCOUNT, "us-east-1");
    aws.add_cluster("prod")
        .install_addon("prod", "eks-pod-identity-agent", "ACTIVE");
    for r in ["shop-api", "shop-worker", "admin"] {
        aws.add_role(r, &FakeAws::pods_trust_policy());
    }
    aws
}

async fn provider(aws: &FakeAws) -> AwsPodIdentityProvider {
    AwsPodIdentityProvider::builder()
        .cluster("prod")
        .api(aws.clone())
        .build()
        .await
        .unwrap()
}

fn object(services: serde_json::Value) -> AppIdentity {
    let spec: AppIdentitySpec =
        serde_json::from_value(json!({"app": "shop", "services": services})).unwrap();
    let mut o = AppIdentity::new("shop", spec);
    o.metadata.namespace = Some("shop".into());
    o.metadata.generation = Some(1);
    o
}

fn arn(role: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/{role}")
}

fn both_services() -> serde_json::Value {
    json!([
        {"name": "api", "connections": [{"type": "awsRole", "role": arn("shop-api")}]},
        {"name": "worker", "connections": [{"type": "awsRole", "role": arn("shop-worker")}]}
    ])
}

fn shop_policy() -> Vec<IdentityPolicySpec> {
    vec![IdentityPolicySpec {
        namespaces: vec!["shop".into()],
        aws_roles: vec![format!("arn:aws:iam::{ACCOUNT}:role/shop-*")],
        ..IdentityPolicySpec::default()
    }]
}

async fn run(
    o: &AppIdentity,
    p: &AwsPodIdentityProvider,
    policies: &[IdentityPolicySpec],
) -> Outcome {
    run_at(o, p, policies, NOW).await
}

async fn run_at(
    o: &AppIdentity,
    p: &AwsPodIdentityProvider,
    policies: &[IdentityPolicySpec],
    now: &str,
) -> Outcome {
    let providers: [&dyn WorkloadIdentityProvider; 1] = [p];
    reconcile(
        o,
        Clouds {
            providers: &providers,
            kubernetes: None,
            policies,
            verify: false,
        },
        now,
    )
    .await
}

fn condition<'o>(o: &'o Outcome, type_: &str) -> (&'o str, &'o str) {
    let c = o
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} in {:?}", o.status));
    (c.status.as_str(), c.reason.as_str())
}

#[tokio::test]
async fn links_are_made_and_a_deleted_one_comes_back_on_the_next_reconcile() {
    let aws = fake();
    let p = provider(&aws).await;
    let mut o = object(both_services());
    let first = run(&o, &p, &shop_policy()).await;
    assert_eq!(
        condition(&first, "Ready"),
        ("True", "Reconciled"),
        "{first:?}"
    );
    assert_eq!(first.status.counts.created, 2);
    assert_eq!(first.status.observed_generation, Some(1));
    assert_eq!(aws.associations("prod").len(), 2);
    assert_eq!(
        first
            .events
            .iter()
            .filter(|e| e.reason == "LinkCreated")
            .count(),
        2
    );
    o.status = Some(first.status.clone());

    // An unchanged resync writes nothing, and leaves the status as it was: the counts are of
    // the last reconcile that changed something, the conditions' times of their last change.
    aws.reset_calls();
    let again = run_at(&o, &p, &shop_policy(), "2026-12-07T12:10:00Z").await;
    assert_eq!(aws.write_calls(), 0);
    assert!(again.events.is_empty(), "{:?}", again.events);
    let mut same = again.status.clone();
    assert_eq!(
        same.last_reconcile_time.as_deref(),
        Some("2026-12-07T12:10:00Z")
    );
    same.last_reconcile_time
        .clone_from(&first.status.last_reconcile_time);
    assert_eq!(same, first.status);

    // Someone deletes a link by hand: the next reconcile makes it again.
    let api = aws.associations("prod")[0].clone();
    aws.delete_pod_identity_association("prod", &api.association_id)
        .await
        .unwrap();
    let restored = run(&o, &p, &shop_policy()).await;
    assert_eq!(restored.status.counts.created, 1, "{:?}", restored.status);
    assert_eq!(aws.associations("prod").len(), 2);
}

#[tokio::test]
async fn a_link_no_policy_allows_is_refused_with_no_cloud_call() {
    let aws = fake();
    let p = provider(&aws).await;
    let o = object(json!([
        {"name": "api", "connections": [{"type": "awsRole", "role": arn("admin")}]}
    ]));
    aws.reset_calls();
    let out = run(&o, &p, &shop_policy()).await;
    assert_eq!(condition(&out, "Ready"), ("False", "PolicyDenied"));
    let denial = &out
        .events
        .iter()
        .find(|e| e.reason == "PolicyDenied")
        .unwrap()
        .note;
    assert!(denial.contains(&arn("admin")), "{denial}");
    assert!(denial.contains("namespaces: [shop]"), "{denial}");
    assert!(aws.calls().values().all(|n| *n == 0), "{:?}", aws.calls());
    assert!(aws.associations("prod").is_empty());
    // No policy at all: the same.
    assert_eq!(
        condition(&run(&o, &p, &[]).await, "Ready").1,
        "PolicyDenied"
    );
}

#[tokio::test]
async fn a_service_dropped_from_the_spec_is_removed_through_the_applied_links() {
    let aws = fake();
    let p = provider(&aws).await;
    let mut o = object(both_services());
    let first = run(&o, &p, &shop_policy()).await;
    o.status = Some(first.status);
    o.spec.services.truncate(1);
    let next = run(&o, &p, &shop_policy()).await;
    assert_eq!(next.status.counts.removed, 1, "{:?}", next.status);
    assert!(next.events.iter().any(|e| e.reason == "LinkRemoved"));
    let left = aws.associations("prod");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].role_arn, arn("shop-api"));
    assert_eq!(next.status.applied.len(), 1);
}

#[tokio::test]
async fn an_invalid_spec_calls_nothing_and_names_the_field() {
    let aws = fake();
    let p = provider(&aws).await;
    let o = object(json!([{"name": "api", "connections": [{"type": "awsRole"}]}]));
    aws.reset_calls();
    let out = run(&o, &p, &shop_policy()).await;
    let (status, reason) = condition(&out, "Ready");
    assert_eq!((status, reason), ("False", "InvalidSpec"));
    assert!(
        out.events[0]
            .note
            .contains("spec.services[0].connections[0]"),
        "{:?}",
        out.events
    );
    assert!(aws.calls().values().all(|n| *n == 0));
}

#[tokio::test]
async fn allowed_links_are_made_beside_a_denied_one_which_is_neither_made_nor_removed() {
    let aws = fake();
    let p = provider(&aws).await;
    let o = object(json!([
        {"name": "api", "connections": [{"type": "awsRole", "role": arn("shop-api")}]},
        {"name": "admin", "connections": [{"type": "awsRole", "role": arn("admin")}]}
    ]));
    let out = run(&o, &p, &shop_policy()).await;
    assert_eq!(condition(&out, "Ready"), ("False", "PolicyDenied"));
    assert_eq!(condition(&out, "CloudLinked").0, "True");
    let made = aws.associations("prod");
    assert_eq!(made.len(), 1);
    assert_eq!(made[0].role_arn, arn("shop-api"));
    let admin = out
        .status
        .service_accounts
        .iter()
        .find(|a| a.name == "shop-admin")
        .unwrap();
    assert!(admin.missing[0].contains("no IdentityPolicy"), "{admin:?}");
    // Only the allowed link is recorded as applied.
    assert_eq!(out.status.applied.len(), 1);
}

#[tokio::test]
async fn a_verify_finding_is_in_the_status_and_an_error_one_makes_the_app_not_ready() {
    let aws = fake();
    let p = provider(&aws).await;
    let mut o = object(both_services());
    let providers: [&dyn WorkloadIdentityProvider; 1] = [&p];
    let clouds = |verify| Clouds {
        providers: &providers,
        kubernetes: None,
        policies: &[],
        verify,
    };
    let policies = shop_policy();
    let with_policy = |verify| Clouds {
        policies: &policies,
        ..clouds(verify)
    };
    let first = reconcile(&o, with_policy(true), NOW).await;
    assert_eq!(
        condition(&first, "Ready"),
        ("True", "Reconciled"),
        "{first:?}"
    );
    assert_eq!(first.status.last_verify_time.as_deref(), Some(NOW));
    o.status = Some(first.status.clone());

    // The Pod Identity agent goes away: the associations stay, but no pod gets credentials.
    aws.remove_addon("prod", "eks-pod-identity-agent");
    let verified = reconcile(&o, with_policy(true), "2026-12-07T13:00:00Z").await;
    let (status, reason) = condition(&verified, "Ready");
    assert_eq!(
        (status, reason),
        ("False", "CloudFindings"),
        "{:?}",
        verified.status
    );
    let findings: Vec<&String> = verified
        .status
        .service_accounts
        .iter()
        .flat_map(|a| &a.findings)
        .collect();
    assert!(
        findings
            .iter()
            .any(|f| f.starts_with("error ") && f.contains("fix:")),
        "{findings:?}"
    );
    assert!(verified.events.iter().any(|e| e.reason == "LinkFinding"));

    // A resync between verifies keeps what the last verify found, and makes no verify call.
    o.status = Some(verified.status.clone());
    aws.reset_calls();
    let kept = reconcile(&o, with_policy(false), "2026-12-07T13:10:00Z").await;
    assert_eq!(condition(&kept, "Ready"), ("False", "CloudFindings"));
    assert_eq!(
        kept.status.service_accounts,
        verified.status.service_accounts
    );
    assert_eq!(
        kept.status.last_verify_time.as_deref(),
        Some("2026-12-07T13:00:00Z")
    );
    assert_eq!(aws.call_count("DescribeAddon"), 0, "{:?}", aws.calls());
}
