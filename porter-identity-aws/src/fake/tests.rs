#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use porter_identity_core::{Cloud, ErrorKind};

use super::*;
use crate::api::{POD_IDENTITY_AGENT_ADDON, UpdateAssociation};

const ACCOUNT: &str = "111122223333";

fn fake() -> FakeAws {
    let aws = FakeAws::new(ACCOUNT, "us-east-1");
    aws.add_cluster("prod")
        .install_addon("prod", POD_IDENTITY_AGENT_ADDON, "ACTIVE")
        .add_role("app", &pods_trust_policy())
        .add_role("other", &pods_trust_policy());
    aws
}

fn create(aws: &FakeAws, ns: &str, sa: &str, role: &str, token: &str) -> CreateAssociation {
    CreateAssociation {
        cluster: "prod".into(),
        namespace: ns.into(),
        service_account: sa.into(),
        role_arn: aws.role_arn(role),
        client_request_token: token.into(),
        tags: BTreeMap::from([("managed-by".to_owned(), "porter-identity".to_owned())]),
        ..CreateAssociation::default()
    }
}

/// An update of the role only, as the port's callers send it on cluster `prod`.
fn update(association_id: &str, role_arn: &str) -> UpdateAssociation {
    UpdateAssociation {
        cluster: "prod".into(),
        association_id: association_id.into(),
        role_arn: role_arn.into(),
        ..UpdateAssociation::default()
    }
}

fn cloud_parts(err: &porter_identity_core::Error) -> (ErrorKind, &str, String) {
    assert_eq!(err.cloud_name(), Some(Cloud::Aws), "{err}");
    (
        err.kind(),
        err.operation().unwrap_or_default(),
        err.to_string(),
    )
}

#[tokio::test]
async fn one_association_per_key_and_resource_in_use_on_duplicate() {
    let aws = fake();
    let first = aws
        .create_pod_identity_association(create(&aws, "shop", "api", "app", "t1"))
        .await
        .unwrap();
    assert!(first.association_id.starts_with("a-"));
    assert_eq!(first.association_id.len(), 19);
    assert_eq!(
        first.association_arn,
        format!(
            "arn:aws:eks:us-east-1:{ACCOUNT}:podidentityassociation/prod/{}",
            first.association_id
        )
    );
    assert_eq!(first.role_arn, format!("arn:aws:iam::{ACCOUNT}:role/app"));
    assert_eq!(first.tags["managed-by"], "porter-identity");

    let err = aws
        .create_pod_identity_association(create(&aws, "shop", "api", "other", "t2"))
        .await
        .unwrap_err();
    let (kind, op, text) = cloud_parts(&err);
    assert_eq!(kind, ErrorKind::AlreadyExists);
    assert_eq!(op, "CreatePodIdentityAssociation");
    assert!(text.contains(&first.association_id), "{text}");

    // Another service account, or the same one in another namespace, is another key.
    aws.create_pod_identity_association(create(&aws, "shop", "worker", "app", "t3"))
        .await
        .unwrap();
    aws.create_pod_identity_association(create(&aws, "blog", "api", "app", "t4"))
        .await
        .unwrap();
    assert_eq!(aws.associations("prod").len(), 3);
    assert_eq!(aws.associations("prod")[0], first);
}

#[tokio::test]
async fn repeated_client_request_token_returns_the_original() {
    let aws = fake();
    let input = create(&aws, "shop", "api", "app", "same-token");
    let first = aws
        .create_pod_identity_association(input.clone())
        .await
        .unwrap();
    let again = aws
        .create_pod_identity_association(input.clone())
        .await
        .unwrap();
    assert_eq!(first, again);
    assert_eq!(aws.associations("prod").len(), 1);

    // The same token with another input is a client bug, not a retry.
    let mut changed = input;
    changed.role_arn = aws.role_arn("other");
    let err = aws
        .create_pod_identity_association(changed)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
}

#[tokio::test]
async fn association_limit_is_enforced_per_cluster() {
    let aws = fake();
    aws.add_cluster("dev").set_association_limit(2);
    for sa in ["a", "b"] {
        aws.create_pod_identity_association(create(&aws, "ns", sa, "app", sa))
            .await
            .unwrap();
    }
    let err = aws
        .create_pod_identity_association(create(&aws, "ns", "c", "app", "c"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LimitExceeded, "{err}");
    let mut other_cluster = create(&aws, "ns", "c", "app", "c2");
    other_cluster.cluster = "dev".into();
    aws.create_pod_identity_association(other_cluster)
        .await
        .unwrap();
    // Freeing a slot makes room again.
    let id = aws.associations("prod")[0].association_id.clone();
    aws.delete_pod_identity_association("prod", &id)
        .await
        .unwrap();
    aws.create_pod_identity_association(create(&aws, "ns", "c", "app", "c3"))
        .await
        .unwrap();
}

#[tokio::test]
async fn trust_policy_is_checked_on_create_and_update() {
    let aws = fake();
    let ec2_only = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
        "Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    let no_tag_session = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
        "Principal":{"Service":"pods.eks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    aws.add_role("ec2-role", ec2_only)
        .add_role("no-tag", no_tag_session);

    let err = aws
        .create_pod_identity_association(create(&aws, "shop", "api", "ec2-role", "t1"))
        .await
        .unwrap_err();
    let (kind, _, text) = cloud_parts(&err);
    assert_eq!(kind, ErrorKind::InvalidInput);
    assert!(text.contains("Trust policy of role"), "{text}");
    assert!(text.contains("pods.eks.amazonaws.com"), "{text}");
    assert!(text.contains("role/ec2-role"), "{text}");

    let err = aws
        .create_pod_identity_association(create(&aws, "shop", "api", "no-tag", "t2"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("sts:TagSession"), "{err}");
    assert!(!err.to_string().contains("sts:AssumeRole and"), "{err}");

    let err = aws
        .create_pod_identity_association(create(&aws, "shop", "api", "missing", "t3"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("role/missing"), "{err}");
    assert!(aws.associations("prod").is_empty());

    let ok = aws
        .create_pod_identity_association(create(&aws, "shop", "api", "app", "t4"))
        .await
        .unwrap();
    let err = aws
        .update_pod_identity_association(update(&ok.association_id, &aws.role_arn("no-tag")))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(err.operation(), Some("UpdatePodIdentityAssociation"));
    // Fixing the trust policy makes the same update pass, and it changes only the role.
    aws.set_trust_policy("no-tag", &pods_trust_policy());
    let updated = aws
        .update_pod_identity_association(update(&ok.association_id, &aws.role_arn("no-tag")))
        .await
        .unwrap();
    assert_eq!(updated.association_id, ok.association_id);
    assert_eq!(updated.role_arn, aws.role_arn("no-tag"));
    assert_eq!(updated.tags, ok.tags);
}

#[tokio::test]
async fn unknown_things_are_not_found() {
    let aws = fake();
    let err = aws.describe_cluster("nope").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("No cluster found for name: nope"));
    let mut input = create(&aws, "ns", "sa", "app", "t");
    input.cluster = "nope".into();
    let err = aws
        .create_pod_identity_association(input)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    for err in [
        aws.describe_pod_identity_association("prod", "a-0000000000000000")
            .await
            .unwrap_err(),
        aws.update_pod_identity_association(update("a-0000000000000000", &aws.role_arn("app")))
            .await
            .unwrap_err(),
        aws.delete_pod_identity_association("prod", "a-0000000000000000")
            .await
            .unwrap_err(),
        aws.get_role("nobody").await.unwrap_err(),
        aws.describe_addon("nope", POD_IDENTITY_AGENT_ADDON)
            .await
            .unwrap_err(),
    ] {
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    }
    assert_eq!(aws.describe_addon("prod", "vpc-cni").await.unwrap(), None);
}

#[tokio::test]
async fn reads_return_what_setup_stored() {
    let aws = fake();
    aws.set_cluster_status("prod", "UPDATING")
        .install_addon("prod", POD_IDENTITY_AGENT_ADDON, "DEGRADED")
        .set_addon_health_issues(
            "prod",
            POD_IDENTITY_AGENT_ADDON,
            &[("InsufficientNumberOfReplicas", "not enough pods")],
        )
        .attach_managed_policy(
            "app",
            "ReadBucket",
            &format!("arn:aws:iam::{ACCOUNT}:policy/ReadBucket"),
            r#"{"Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#,
        )
        .put_role_policy("app", "inline", r#"{"Statement":[]}"#);

    let cluster = aws.describe_cluster("prod").await.unwrap();
    assert_eq!(cluster.status, "UPDATING");
    assert_eq!(
        cluster.arn,
        format!("arn:aws:eks:us-east-1:{ACCOUNT}:cluster/prod")
    );
    assert_eq!(cluster.account(), Some(ACCOUNT));
    let addon = aws
        .describe_addon("prod", POD_IDENTITY_AGENT_ADDON)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(addon.status, "DEGRADED");
    assert_eq!(
        addon.health_issues,
        vec!["InsufficientNumberOfReplicas: not enough pods"]
    );

    let role = aws.get_role("app").await.unwrap();
    assert_eq!(role.arn, aws.role_arn("app"));
    assert!(
        role.assume_role_policy_document
            .starts_with("%7B%22Version%22")
    );
    let decoded = percent_encoding::percent_decode_str(&role.assume_role_policy_document)
        .decode_utf8()
        .unwrap();
    assert_eq!(decoded, pods_trust_policy());

    let attached = aws.list_attached_role_policies("app").await.unwrap();
    assert_eq!(attached.len(), 1);
    assert_eq!(attached[0].name, "ReadBucket");
    let doc = aws
        .get_managed_policy_document(&attached[0].arn)
        .await
        .unwrap();
    assert!(doc.starts_with("%7B%22Statement%22"), "{doc}");
    assert_eq!(aws.list_role_policies("app").await.unwrap(), vec!["inline"]);
    assert_eq!(
        aws.get_role_policy("app", "inline").await.unwrap(),
        "%7B%22Statement%22%3A%5B%5D%7D"
    );
    assert_eq!(
        aws.get_role_policy("app", "other")
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );

    aws.remove_addon("prod", POD_IDENTITY_AGENT_ADDON)
        .delete_role("app");
    assert_eq!(
        aws.describe_addon("prod", POD_IDENTITY_AGENT_ADDON)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        aws.get_role("app").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[tokio::test]
async fn cross_account_roles_pass_eks_checks_but_not_get_role() {
    let aws = fake();
    let foreign = "arn:aws:iam::999988887777:role/shared/cross";
    aws.add_role_with_arn(foreign, &pods_trust_policy());
    let mut input = create(&aws, "shop", "api", "app", "t");
    input.role_arn = foreign.into();
    let created = aws.create_pod_identity_association(input).await.unwrap();
    assert_eq!(created.role_arn, foreign);
    assert_eq!(
        aws.get_role("cross").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[tokio::test]
async fn list_filters_and_describe_round_trips() {
    let aws = fake();
    for (ns, sa) in [("shop", "api"), ("shop", "worker"), ("blog", "api")] {
        aws.create_pod_identity_association(create(&aws, ns, sa, "app", &format!("{ns}/{sa}")))
            .await
            .unwrap();
    }
    let all = aws
        .list_pod_identity_associations("prod", None, None, None)
        .await
        .unwrap()
        .associations;
    assert_eq!(all.len(), 3);
    let shop = aws
        .list_pod_identity_associations("prod", Some("shop"), None, None)
        .await
        .unwrap()
        .associations;
    assert_eq!(shop.len(), 2);
    let api = aws
        .list_pod_identity_associations("prod", None, Some("api"), None)
        .await
        .unwrap()
        .associations;
    assert_eq!(api.len(), 2);
    let one = aws
        .list_pod_identity_associations("prod", Some("shop"), Some("api"), None)
        .await
        .unwrap()
        .associations;
    assert_eq!(one.len(), 1);
    let described = aws
        .describe_pod_identity_association("prod", &one[0].association_id)
        .await
        .unwrap();
    assert_eq!(described.namespace, "shop");
    assert_eq!(described.service_account, "api");
    assert_eq!(described.association_arn, one[0].association_arn);
    assert_eq!(aws.call_count("ListPodIdentityAssociations"), 4);
}

/// A link's times can be set (a link made long ago) and read back, and Describe serves them.
#[tokio::test]
async fn association_times_are_set_read_back_and_described() {
    let aws = fake();
    let made = aws
        .create_pod_identity_association(create(&aws, "shop", "api", "app", "t"))
        .await
        .unwrap();
    let created = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let modified = created + Duration::from_millis(86_400_500);
    assert!(aws.set_association_times("prod", "shop", "api", created, modified));
    assert_eq!(
        aws.association_times("prod", "shop", "api"),
        Some((created, modified))
    );
    let described = aws
        .describe_pod_identity_association("prod", &made.association_id)
        .await
        .unwrap();
    assert_eq!(described.changed_at, Some(modified));
    // No association there: nothing is set, and nothing is read.
    assert!(!aws.set_association_times("prod", "shop", "worker", created, modified));
    assert_eq!(aws.association_times("prod", "shop", "worker"), None);
    assert_eq!(aws.association_times("staging", "shop", "api"), None);
}

#[tokio::test]
async fn list_answers_pages_of_one_hundred_each_a_call() {
    let aws = fake();
    for i in 0..250 {
        aws.create_pod_identity_association(create(
            &aws,
            "shop",
            &format!("sa-{i}"),
            "app",
            &format!("t{i}"),
        ))
        .await
        .unwrap();
    }
    aws.reset_calls();
    let mut token = None;
    let mut sizes = Vec::new();
    loop {
        let page = aws
            .list_pod_identity_associations("prod", Some("shop"), None, token)
            .await
            .unwrap();
        sizes.push(page.associations.len());
        token = page.next_token;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(sizes, [100, 100, 50]);
    assert_eq!(aws.call_count("ListPodIdentityAssociations"), 3);
}

#[tokio::test]
async fn addon_owned_associations_are_listed_but_cannot_be_changed() {
    let aws = fake();
    let owner = "arn:aws:eks:us-east-1:111122223333:addon/prod/aws-ebs-csi-driver/x";
    let owned = aws.add_addon_owned_association(
        "prod",
        "kube-system",
        "ebs-csi-controller-sa",
        &aws.role_arn("app"),
        owner,
    );
    let listed = aws
        .list_pod_identity_associations("prod", Some("kube-system"), None, None)
        .await
        .unwrap()
        .associations;
    assert_eq!(listed[0].owner_arn.as_deref(), Some(owner));
    assert_eq!(aws.calls().get("CreatePodIdentityAssociation"), None);
    for err in [
        aws.update_pod_identity_association(update(&owned.association_id, &aws.role_arn("other")))
            .await
            .unwrap_err(),
        aws.delete_pod_identity_association("prod", &owned.association_id)
            .await
            .unwrap_err(),
    ] {
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    }
    let err = aws
        .create_pod_identity_association(create(
            &aws,
            "kube-system",
            "ebs-csi-controller-sa",
            "app",
            "t",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
}

#[tokio::test]
async fn injected_throttling_and_outages_fail_the_next_calls_then_stop() {
    let aws = fake();
    aws.inject_failures(Some("GetRole"), ErrorKind::Throttled, 2);
    for _ in 0..2 {
        let err = aws.get_role("app").await.unwrap_err();
        let (kind, op, text) = cloud_parts(&err);
        assert_eq!(kind, ErrorKind::Throttled);
        assert_eq!(op, "GetRole");
        assert!(text.ends_with("Rate exceeded"), "{text}");
        assert!(err.is_retryable());
    }
    // Other operations were never affected; the third GetRole passes.
    aws.describe_cluster("prod").await.unwrap();
    aws.get_role("app").await.unwrap();
    assert_eq!(aws.call_count("GetRole"), 3);

    aws.inject_failures(None, ErrorKind::Unavailable, 1);
    let err = aws.describe_cluster("prod").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(err.operation(), Some("DescribeCluster"));
    aws.describe_cluster("prod").await.unwrap();

    // An injected write failure writes nothing.
    aws.inject_failures(
        Some("CreatePodIdentityAssociation"),
        ErrorKind::Throttled,
        1,
    );
    let input = create(&aws, "shop", "api", "app", "t");
    assert!(
        aws.create_pod_identity_association(input.clone())
            .await
            .is_err()
    );
    assert!(aws.associations("prod").is_empty());
    aws.create_pod_identity_association(input).await.unwrap();
}

#[test]
#[should_panic(expected = "unknown operation")]
fn injecting_into_a_misspelt_operation_panics() {
    fake().inject_failures(Some("CreatePodIdentityAssocation"), ErrorKind::Throttled, 1);
}

#[tokio::test]
async fn counters_count_each_call_by_aws_name() {
    let aws = fake();
    aws.reset_calls();
    let created = aws
        .create_pod_identity_association(create(&aws, "shop", "api", "app", "t"))
        .await
        .unwrap();
    let _ = aws
        .create_pod_identity_association(create(&aws, "shop", "api", "app", "t2"))
        .await;
    aws.update_pod_identity_association(update(&created.association_id, &aws.role_arn("other")))
        .await
        .unwrap();
    aws.list_pod_identity_associations("prod", None, None, None)
        .await
        .unwrap();
    aws.delete_pod_identity_association("prod", &created.association_id)
        .await
        .unwrap();
    aws.attach_managed_policy("app", "P", "arn:aws:iam::aws:policy/P", "{}");
    aws.get_managed_policy_document("arn:aws:iam::aws:policy/P")
        .await
        .unwrap();
    aws.inject_failures(Some("GetRole"), ErrorKind::Throttled, 1);
    let _ = aws.get_role("app").await;

    let expected: BTreeMap<String, u64> = [
        ("CreatePodIdentityAssociation", 2),
        ("UpdatePodIdentityAssociation", 1),
        ("ListPodIdentityAssociations", 1),
        ("DeletePodIdentityAssociation", 1),
        ("GetPolicy", 1),
        ("GetPolicyVersion", 1),
        ("GetRole", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(aws.calls(), expected);
    assert_eq!(aws.write_calls(), 4);
    aws.reset_calls();
    assert!(aws.calls().is_empty());
    assert_eq!(aws.write_calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn latency_is_added_to_every_call() {
    let aws = fake();
    aws.set_latency(Duration::from_millis(250));
    let start = tokio::time::Instant::now();
    aws.describe_cluster("prod").await.unwrap();
    aws.get_managed_policy_document("arn:aws:iam::aws:policy/None")
        .await
        .unwrap_err();
    // One call, then GetPolicy failed: two latencies.
    assert_eq!(start.elapsed(), Duration::from_millis(500));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_creates_of_one_key_make_exactly_one() {
    let aws = fake();
    aws.set_latency(Duration::from_millis(1));
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let aws = aws.clone();
            let input = create(&aws, "shop", "api", "app", &format!("token-{i}"));
            tokio::spawn(async move { aws.create_pod_identity_association(input).await })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => ok += 1,
            Err(err) => assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(aws.associations("prod").len(), 1);
    assert_eq!(aws.call_count("CreatePodIdentityAssociation"), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_creates_of_distinct_keys_all_land() {
    let aws = fake();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let aws = aws.clone();
            let input = create(&aws, "ns", &format!("sa-{i}"), "app", &format!("t-{i}"));
            tokio::spawn(async move { aws.create_pod_identity_association(input).await })
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    for task in tasks {
        ids.insert(task.await.unwrap().unwrap().association_id);
    }
    assert_eq!(ids.len(), 200);
    assert_eq!(aws.associations("prod").len(), 200);
    // Concurrent retries of one token all get the same association.
    let input = create(&aws, "ns", "retried", "app", "one-token");
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (aws, input) = (aws.clone(), input.clone());
            tokio::spawn(async move { aws.create_pod_identity_association(input).await })
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    for task in tasks {
        seen.insert(task.await.unwrap().unwrap().association_id);
    }
    assert_eq!(seen.len(), 1);
}

#[test]
fn debug_is_short_and_clones_share_state() {
    let aws = fake();
    let clone = aws.clone();
    clone.add_cluster("dev");
    let dbg = format!("{aws:?}");
    assert!(dbg.contains("clusters: 2"), "{dbg}");
    assert!(!dbg.contains("Statement"), "{dbg}");
}
