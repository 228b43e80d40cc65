//! Wire tests: [`SdkApi`] with the real AWS SDK clients over HTTP against moto, a third-party
//! AWS emulator (IAM and EKS clusters; it has no EKS Pod Identity or add-ons).
//!
//! Run: `scripts/moto install && eval "$(scripts/moto start)" && cargo test -p
//! porter-identity-aws --test moto_wire; scripts/moto stop` (without `PORTER_IDENTITY_MOTO_URL`
//! the tests start their own server from `.venv`).
#![allow(clippy::unwrap_used)]

mod support;

use aws_sdk_eks::types::VpcConfigRequest;
use porter_identity_aws::SdkApi;
use porter_identity_aws::api::EksIamApi;
use porter_identity_core::ErrorKind;
use serde_json::json;
use support::{MOTO_ACCOUNT, REGION};

#[tokio::test]
async fn get_role_returns_the_arn_and_the_trust_policy_as_iam_sends_it() {
    let name = support::unique("trusted");
    let created_arn = support::create_pod_identity_role(&name).await;

    let role = support::api().get_role(&name).await.unwrap();

    assert_eq!(role.name, name);
    assert_eq!(role.arn, created_arn);
    assert_eq!(role.arn, format!("arn:aws:iam::{MOTO_ACCOUNT}:role/{name}"));
    // IAM (and moto) send the document URL-encoded; the port passes it on untouched.
    assert!(
        role.assume_role_policy_document.starts_with("%7B"),
        "{}",
        role.assume_role_policy_document
    );
    assert_eq!(
        support::decode_policy(&role.assume_role_policy_document),
        serde_json::from_str::<serde_json::Value>(support::POD_IDENTITY_TRUST_POLICY).unwrap()
    );
}

#[tokio::test]
async fn get_role_of_a_missing_role_is_not_found() {
    let name = support::unique("missing");
    let err = support::api().get_role(&name).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(!err.is_retryable());
    assert_eq!(err.operation(), Some("GetRole"));
    assert!(err.to_string().contains(&name), "{err}");
}

#[tokio::test]
async fn customer_managed_and_inline_policies_read_back() {
    let role = support::unique("policies");
    support::create_pod_identity_role(&role).await;
    let iam = support::iam();
    let api = support::api();

    // A role without policies lists none.
    assert!(
        api.list_attached_role_policies(&role)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(api.list_role_policies(&role).await.unwrap().is_empty());

    let managed_name = support::unique("bucket-read");
    let v1 = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::shop-assets/*"}
    ]});
    let policy_arn = iam
        .create_policy()
        .policy_name(&managed_name)
        .policy_document(v1.to_string())
        .send()
        .await
        .unwrap()
        .policy()
        .unwrap()
        .arn()
        .unwrap()
        .to_owned();
    // A second version made the default: the port must read the default, not v1.
    let v2 = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"],
         "Resource": ["arn:aws:s3:::shop-assets", "arn:aws:s3:::shop-assets/*"]}
    ]});
    iam.create_policy_version()
        .policy_arn(&policy_arn)
        .policy_document(v2.to_string())
        .set_as_default(true)
        .send()
        .await
        .unwrap();
    iam.attach_role_policy()
        .role_name(&role)
        .policy_arn(&policy_arn)
        .send()
        .await
        .unwrap();

    let inline_name = "queue-send";
    let inline = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*"}
    ]});
    iam.put_role_policy()
        .role_name(&role)
        .policy_name(inline_name)
        .policy_document(inline.to_string())
        .send()
        .await
        .unwrap();

    let attached = api.list_attached_role_policies(&role).await.unwrap();
    assert_eq!(attached.len(), 1, "{attached:?}");
    assert_eq!(attached[0].name, managed_name);
    assert_eq!(attached[0].arn, policy_arn);
    assert_eq!(
        policy_arn,
        format!("arn:aws:iam::{MOTO_ACCOUNT}:policy/{managed_name}")
    );

    let document = api.get_managed_policy_document(&policy_arn).await.unwrap();
    assert_eq!(support::decode_policy(&document), v2);

    assert_eq!(api.list_role_policies(&role).await.unwrap(), [inline_name]);
    let document = api.get_role_policy(&role, inline_name).await.unwrap();
    assert_eq!(support::decode_policy(&document), inline);
}

#[tokio::test]
async fn missing_policies_are_not_found() {
    let role = support::unique("no-inline");
    support::create_pod_identity_role(&role).await;
    let api = support::api();

    let err = api.get_role_policy(&role, "absent").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert_eq!(err.operation(), Some("GetRolePolicy"));

    let arn = format!(
        "arn:aws:iam::{MOTO_ACCOUNT}:policy/{}",
        support::unique("absent")
    );
    let err = api.get_managed_policy_document(&arn).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert_eq!(err.operation(), Some("GetPolicy"));

    let err = api
        .list_attached_role_policies(&support::unique("no-role"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert_eq!(err.operation(), Some("ListAttachedRolePolicies"));
}

#[tokio::test]
async fn aws_managed_administrator_access_is_listed_and_readable() {
    let role = support::unique("admin");
    support::create_pod_identity_role(&role).await;
    let admin_arn = "arn:aws:iam::aws:policy/AdministratorAccess";
    support::iam()
        .attach_role_policy()
        .role_name(&role)
        .policy_arn(admin_arn)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "moto must serve AWS managed policies (start it with \
                 MOTO_IAM_LOAD_MANAGED_POLICIES=true, as scripts/moto does): {}",
                aws_sdk_iam::error::DisplayErrorContext(e)
            )
        });

    let api = support::api();
    let attached = api.list_attached_role_policies(&role).await.unwrap();
    assert_eq!(attached.len(), 1, "{attached:?}");
    assert_eq!(attached[0].name, "AdministratorAccess");
    assert_eq!(attached[0].arn, admin_arn);

    // The AWS managed policy as moto serves it: Allow * on *.
    let document =
        support::decode_policy(&api.get_managed_policy_document(admin_arn).await.unwrap());
    let statements = document["Statement"].as_array().expect("statements");
    assert!(
        statements
            .iter()
            .any(|s| s["Effect"] == "Allow" && s["Action"] == "*" && s["Resource"] == "*"),
        "{document}"
    );
}

#[tokio::test]
async fn describe_cluster_reads_status_and_arn() {
    let cluster = support::unique("cluster");
    let role_arn = support::create_pod_identity_role(&support::unique("cluster-role")).await;
    support::eks()
        .create_cluster()
        .name(&cluster)
        .role_arn(role_arn)
        .resources_vpc_config(
            // moto does not check that the subnets exist.
            VpcConfigRequest::builder()
                .subnet_ids("subnet-0a1b2c3d")
                .subnet_ids("subnet-4e5f6a7b")
                .build(),
        )
        .send()
        .await
        .unwrap();

    let info = support::api().describe_cluster(&cluster).await.unwrap();

    assert_eq!(info.name, cluster);
    assert_eq!(info.status, "ACTIVE");
    assert_eq!(
        info.arn,
        format!("arn:aws:eks:{REGION}:{MOTO_ACCOUNT}:cluster/{cluster}")
    );
    assert_eq!(info.account(), Some(MOTO_ACCOUNT));
    assert_eq!(info.partition(), Some("aws"));
}

#[tokio::test]
async fn describe_cluster_of_a_missing_cluster_is_not_found() {
    let cluster = support::unique("nowhere");
    let err = support::api().describe_cluster(&cluster).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert_eq!(err.operation(), Some("DescribeCluster"));
    assert!(err.to_string().contains(&cluster), "{err}");
}

#[tokio::test]
async fn operations_moto_lacks_are_errors_not_empty_answers() {
    // moto 5 has no DescribeAddon and no Pod Identity API: it answers an HTML 404 without an
    // AWS error code. That must not read as "add-on not installed" or "no associations".
    let api = support::api();
    let err = api
        .describe_addon("any", porter_identity_aws::api::POD_IDENTITY_AGENT_ADDON)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Other, "{err}");
    assert!(err.to_string().contains("HTTP 404"), "{err}");

    let err = api
        .list_pod_identity_associations("any", None, None, None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Other, "{err}");
}

#[tokio::test]
async fn a_server_that_is_not_listening_is_unavailable() {
    let config = support::sdk_config_at(&support::closed_endpoint());
    let api = SdkApi::from_sdk_config(&config);

    let err = api.describe_cluster("prod").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.is_retryable());
    assert!(
        err.to_string().contains("could not reach the EKS endpoint"),
        "{err}"
    );

    let err = api.get_role("app").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.is_retryable());
}
