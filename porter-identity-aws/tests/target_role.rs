//! Cross-account target roles on the in-memory fakes: one fake account holds the cluster and
//! the association's role, another the target role. The association carries the target; a
//! changed target is an update in place; a target that does not trust the association's role,
//! or a role that may not assume it, is refused before any write with the statement to add; a
//! target in an account the provider cannot read is a note, not an error.
#![cfg(feature = "fake")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use porter_identity_aws::fake::FakeAws;
use porter_identity_aws::{AwsPodIdentityProvider, codes};
use porter_identity_core::{
    AppManifest, BindChange, Binding, Cloud, ErrorKind, Reconciler, RetryPolicy, Severity,
    VerifyReport, WorkloadIdentityProvider,
};

const CLUSTER_ACCOUNT: &str = "111122223333";
const DATA_ACCOUNT: &str = "444455556666";
const CLUSTER: &str = "prod";
const NS: &str = "shop";

fn role_arn(role: &str) -> String {
    format!("arn:aws:iam::{CLUSTER_ACCOUNT}:role/{role}")
}

fn target_arn(role: &str) -> String {
    format!("arn:aws:iam::{DATA_ACCOUNT}:role/{role}")
}

/// A trust policy that lets `principal` assume the role, with `sts:TagSession` when `tags`.
fn trusting(principal: &str, tags: bool) -> String {
    let actions = if tags {
        r#"["sts:AssumeRole","sts:TagSession"]"#
    } else {
        r#""sts:AssumeRole""#
    };
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{principal}"}},"Action":{actions}}}]}}"#
    )
}

/// A permission policy that lets a role assume and tag sessions of roles matching `resource`.
fn may_assume(resource: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":["sts:AssumeRole","sts:TagSession"],"Resource":"{resource}"}}]}}"#
    )
}

/// The cluster's account: cluster, agent, the association role `shop-api` (trusting Pod
/// Identity, allowed to assume every role of the data account).
fn cluster_account() -> FakeAws {
    let aws = FakeAws::new(CLUSTER_ACCOUNT, "us-east-1");
    aws.add_cluster(CLUSTER)
        .install_addon(CLUSTER, "eks-pod-identity-agent", "ACTIVE")
        .add_role("shop-api", &FakeAws::pods_trust_policy())
        .put_role_policy(
            "shop-api",
            "chain-to-data",
            &may_assume(&format!("arn:aws:iam::{DATA_ACCOUNT}:role/*")),
        );
    aws
}

/// The data account: target roles `shop-data` and `shop-archive`, both trusting `shop-api`.
fn data_account() -> FakeAws {
    let data = FakeAws::new(DATA_ACCOUNT, "us-east-1");
    data.add_role("shop-data", &trusting(&role_arn("shop-api"), true))
        .add_role("shop-archive", &trusting(&role_arn("shop-api"), true));
    data
}

/// A trust policy that lets `shop-api` assume the role with `sts:ExternalId` = `external_id`.
fn trusting_with_external_id(external_id: &str) -> String {
    format!(
        r#"{{"Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{}"}},"Action":["sts:AssumeRole","sts:TagSession"],"Condition":{{"StringEquals":{{"sts:ExternalId":"{external_id}"}}}}}}]}}"#,
        role_arn("shop-api")
    )
}

fn assert_no_error(report: &VerifyReport) {
    assert!(
        report
            .findings
            .iter()
            .all(|f| f.severity != Severity::Error),
        "{report:?}"
    );
}

async fn provider(aws: &FakeAws, data: Option<&FakeAws>) -> AwsPodIdentityProvider {
    let mut builder = AwsPodIdentityProvider::builder()
        .cluster(CLUSTER)
        .api(aws.clone())
        .retry_policy(RetryPolicy::default().initial_backoff(Duration::from_millis(1)));
    if let Some(data) = data {
        builder = builder.target_account_api(DATA_ACCOUNT, data.clone());
    }
    builder.build().await.unwrap()
}

/// App `demo`'s service `api` on role `shop-api`, with `extra` lines on its connection.
fn manifest(extra: &[&str]) -> AppManifest {
    let mut yaml = String::from(
        "services:\n  - name: api\n    connections:\n      - type: awsRole\n        role: shop-api\n",
    );
    for line in extra {
        yaml.push_str(&format!("        {line}\n"));
    }
    AppManifest::from_yaml_str(&yaml).unwrap()
}

fn binding(extra: &[&str]) -> Binding {
    manifest(extra)
        .bindings_for(Cloud::Aws, "demo", NS)
        .unwrap()
        .remove(0)
}

#[tokio::test]
async fn a_target_role_goes_on_the_association_and_a_redeploy_changes_nothing() {
    let (aws, data) = (cluster_account(), data_account());
    let aws_provider = provider(&aws, Some(&data)).await;
    let target = format!("targetRole: {}", target_arn("shop-data"));
    let report = Reconciler::new("demo", NS)
        .provider(&aws_provider)
        .desired(&manifest(&[&target]))
        .run()
        .await
        .unwrap();
    assert!(report.is_ok(), "{report}");
    let [a] = aws.associations(CLUSTER).try_into().unwrap();
    assert_eq!(a.role_arn, role_arn("shop-api"));
    assert_eq!(
        a.settings.target_role_arn.as_deref(),
        Some(target_arn("shop-data").as_str())
    );
    assert!(!a.settings.disable_session_tags);
    assert!(
        a.external_id.is_some(),
        "EKS makes an external ID for a target role"
    );
    // The report shows the chain: role -> target role.
    let shown = report.to_string();
    assert!(
        shown.contains(&format!("awsRole shop-api -> {}", target_arn("shop-data"))),
        "{shown}"
    );
    // The target was read with the data account's credentials: one GetRole there.
    assert_eq!(data.call_count("GetRole"), 1);

    aws.reset_calls();
    let again = aws_provider.bind(&binding(&[&target])).await.unwrap();
    assert_eq!(again.change, BindChange::Unchanged);
    assert_eq!(aws.write_calls(), 0);
    // A chain that passed is kept for the provider's lifetime: no second read of the target.
    assert_eq!(data.call_count("GetRole"), 1);
}

#[tokio::test]
async fn a_changed_or_removed_target_is_an_update_in_place() {
    let (aws, data) = (cluster_account(), data_account());
    let p = provider(&aws, Some(&data)).await;
    let first = format!("targetRole: {}", target_arn("shop-data"));
    p.bind(&binding(&[&first])).await.unwrap();
    let id = aws.associations(CLUSTER)[0].association_id.clone();

    aws.reset_calls();
    let moved = format!("targetRole: {}", target_arn("shop-archive"));
    let outcome = p.bind(&binding(&[&moved])).await.unwrap();
    assert_eq!(
        outcome.change,
        BindChange::Updated {
            previous: format!("{} -> {}", role_arn("shop-api"), target_arn("shop-data"))
        }
    );
    assert_eq!(aws.call_count("UpdatePodIdentityAssociation"), 1);
    assert_eq!(
        aws.write_calls(),
        1,
        "no create, no delete: {:?}",
        aws.calls()
    );
    let a = &aws.associations(CLUSTER)[0];
    assert_eq!(a.association_id, id, "the same association");
    assert_eq!(
        a.settings.target_role_arn.as_deref(),
        Some(target_arn("shop-archive").as_str())
    );

    // No target any more: the association goes back to the role alone, still in place.
    let plan = p.plan(&binding(&[])).await.unwrap();
    assert!(plan.description.contains("from "), "{}", plan.description);
    let outcome = p.bind(&binding(&[])).await.unwrap();
    assert!(matches!(outcome.change, BindChange::Updated { .. }));
    let a = &aws.associations(CLUSTER)[0];
    assert_eq!(a.association_id, id);
    assert_eq!(a.settings.target_role_arn, None);
    assert_eq!(a.external_id, None);
}

#[tokio::test]
async fn a_target_that_does_not_trust_the_role_is_refused_before_any_write() {
    let (aws, data) = (cluster_account(), data_account());
    data.set_trust_policy("shop-data", &trusting(&role_arn("someone-else"), true));
    let p = provider(&aws, Some(&data)).await;
    aws.reset_calls();
    let target = format!("targetRole: {}", target_arn("shop-data"));
    let err = p.bind(&binding(&[&target])).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    let text = err.to_string();
    assert!(text.contains(&target_arn("shop-data")), "{text}");
    // The fix is the statement to paste, naming the association's role.
    let fix = err.fix().unwrap_or_default();
    assert!(
        fix.contains(&format!(
            r#""Principal": {{"AWS": "{}"}}"#,
            role_arn("shop-api")
        )),
        "{fix}"
    );
    assert!(fix.contains("sts:TagSession"), "{fix}");
    assert_eq!(aws.write_calls(), 0, "{:?}", aws.calls());

    // Session tags off: sts:AssumeRole alone is enough, and the fix says so.
    data.set_trust_policy("shop-data", &trusting(&role_arn("shop-api"), false));
    let err = p.bind(&binding(&[&target])).await.unwrap_err();
    assert!(err.to_string().contains("sts:TagSession"), "{err}");
    let outcome = p
        .bind(&binding(&[&target, "disableSessionTags: true"]))
        .await
        .unwrap();
    assert_eq!(outcome.change, BindChange::Created);
    assert!(aws.associations(CLUSTER)[0].settings.disable_session_tags);
}

#[tokio::test]
async fn a_role_that_may_not_assume_the_target_is_refused_before_any_write() {
    let (aws, data) = (cluster_account(), data_account());
    aws.put_role_policy(
        "shop-api",
        "chain-to-data",
        &may_assume(&target_arn("somewhere-else")),
    );
    let p = provider(&aws, Some(&data)).await;
    aws.reset_calls();
    let target = format!("targetRole: {}", target_arn("shop-data"));
    let err = p.bind(&binding(&[&target])).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    let fix = err.fix().unwrap_or_default();
    assert!(
        fix.contains(&format!(r#""Resource": "{}""#, target_arn("shop-data"))),
        "{fix}"
    );
    assert_eq!(aws.write_calls(), 0);
}

#[tokio::test]
async fn a_target_that_does_not_exist_is_refused_before_any_write() {
    let (aws, data) = (cluster_account(), data_account());
    let p = provider(&aws, Some(&data)).await;
    aws.reset_calls();
    let target = format!("targetRole: {}", target_arn("no-such-role"));
    let err = p.bind(&binding(&[&target])).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains("awsRole.targetRole"), "{err}");
    assert_eq!(aws.write_calls(), 0);
}

#[tokio::test]
async fn an_unreadable_target_is_a_note_and_an_info_finding_not_an_error() {
    let aws = cluster_account();
    // No credentials for the data account.
    let p = provider(&aws, None).await;
    let target = format!("targetRole: {}", target_arn("shop-data"));
    let outcome = p.bind(&binding(&[&target])).await.unwrap();
    assert_eq!(outcome.change, BindChange::Created);
    let notes = outcome.service_account_patch.notes.join("\n");
    assert!(notes.contains("not checked from here"), "{notes}");
    assert!(
        notes.contains(&role_arn("shop-api")),
        "the statement to have: {notes}"
    );

    let report = p.verify(&binding(&[&target])).await.unwrap();
    let finding = report
        .finding(codes::TARGET_ROLE_NOT_CHECKED)
        .unwrap_or_else(|| panic!("no {} in {:?}", codes::TARGET_ROLE_NOT_CHECKED, report));
    assert_eq!(finding.severity, Severity::Info);
    // With the external ID EKS made, in the statement to paste.
    let external_id = aws.associations(CLUSTER)[0].external_id.clone().unwrap();
    assert!(finding.message.contains(&external_id), "{finding:?}");
    assert_no_error(&report);

    // Credentials of another account given for the data account are no evidence either.
    let elsewhere = FakeAws::new("999999999999", "us-east-1");
    elsewhere.add_role("shop-data", &trusting(&role_arn("shop-api"), true));
    let p = AwsPodIdentityProvider::builder()
        .cluster(CLUSTER)
        .api(aws.clone())
        .target_account_api(DATA_ACCOUNT, elsewhere)
        .build()
        .await
        .unwrap();
    let outcome = p.bind(&binding(&[&target])).await.unwrap();
    let notes = outcome.service_account_patch.notes.join("\n");
    assert!(notes.contains("another account's"), "{notes}");
}

#[tokio::test]
async fn verify_flags_an_external_id_the_target_does_not_require() {
    let (aws, data) = (cluster_account(), data_account());
    let p = provider(&aws, Some(&data)).await;
    let target = format!("targetRole: {}", target_arn("shop-data"));
    p.bind(&binding(&[&target])).await.unwrap();
    let external_id = aws.associations(CLUSTER)[0].external_id.clone().unwrap();
    // The target requires another association's external ID.
    data.set_trust_policy(
        "shop-data",
        &trusting_with_external_id(&format!("not-{external_id}")),
    );
    let report = p.verify(&binding(&[&target])).await.unwrap();
    let finding = report
        .finding(codes::TARGET_ROLE_UNTRUSTED)
        .unwrap_or_else(|| panic!("no {} in {:?}", codes::TARGET_ROLE_UNTRUSTED, report));
    assert_eq!(finding.severity, Severity::Error);
    assert!(finding.remediation.contains(&external_id), "{finding:?}");

    // With the association's own external ID, the same condition passes.
    data.set_trust_policy(
        "shop-data",
        &trusting_with_external_id(&external_id.clone()),
    );
    let report = p.verify(&binding(&[&target])).await.unwrap();
    assert_no_error(&report);
}

#[tokio::test]
async fn a_session_policy_goes_on_the_association_with_session_tags_off_and_is_linted() {
    let (aws, data) = (cluster_account(), data_account());
    let p = provider(&aws, Some(&data)).await;
    let policy = r#"sessionPolicy: {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}"#;
    let outcome = p.bind(&binding(&[policy])).await.unwrap();
    assert_eq!(outcome.change, BindChange::Created);
    let a = &aws.associations(CLUSTER)[0];
    assert!(
        a.settings.disable_session_tags,
        "EKS takes a policy only with tags off"
    );
    assert!(
        a.settings
            .policy
            .as_deref()
            .is_some_and(|p| p.contains("s3:*"))
    );

    let report = p.verify(&binding(&[policy])).await.unwrap();
    let lint: Vec<&str> = report
        .findings
        .iter()
        .filter(|f| f.message.contains("session policy of"))
        .map(|f| f.code.as_str())
        .collect();
    assert!(
        lint.contains(&codes::LINT_SERVICE_WILDCARD_ACTION),
        "{report:?}"
    );
    assert!(lint.contains(&codes::LINT_WILDCARD_RESOURCE), "{report:?}");

    // The same policy, spaced otherwise, is no change.
    aws.reset_calls();
    let respaced = r#"sessionPolicy: {"Statement": [{"Resource": "*", "Action": "s3:*", "Effect": "Allow"}], "Version": "2012-10-17"}"#;
    let again = p.bind(&binding(&[respaced])).await.unwrap();
    assert_eq!(again.change, BindChange::Unchanged);
    assert_eq!(aws.write_calls(), 0);
}

#[tokio::test]
async fn a_target_requiring_another_external_id_is_noted_at_creation_and_refused_after() {
    let (aws, data) = (cluster_account(), data_account());
    // The target trusts the role only with an external ID EKS has not made (yet).
    data.set_trust_policy(
        "shop-data",
        &trusting_with_external_id("from-an-old-association"),
    );
    let p = provider(&aws, Some(&data)).await;
    let target = format!("targetRole: {}", target_arn("shop-data"));
    let created = p.bind(&binding(&[&target])).await.unwrap();
    assert_eq!(created.change, BindChange::Created);
    let external_id = aws.associations(CLUSTER)[0].external_id.clone().unwrap();
    let notes = created.service_account_patch.notes.join("\n");
    assert!(notes.contains("from-an-old-association"), "{notes}");
    assert!(
        notes.contains(&external_id),
        "the statement with the new ID: {notes}"
    );
    // The next deploy: refused, with the same fix, and nothing written.
    aws.reset_calls();
    let err = p.bind(&binding(&[&target])).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(
        err.fix().unwrap_or_default().contains(&external_id),
        "{err}"
    );
    assert_eq!(aws.write_calls(), 0);
    // The target fixed: bound, unchanged.
    data.set_trust_policy("shop-data", &trusting_with_external_id(&external_id));
    let fixed = p.bind(&binding(&[&target])).await.unwrap();
    assert_eq!(fixed.change, BindChange::Unchanged);
}
