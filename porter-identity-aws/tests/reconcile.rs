//! The Reconciler and the batch calls on the in-memory fake EKS + IAM: stale links of a removed
//! service, a moved role and a removed connection; the never-remove rules; dry runs; the exact
//! cloud calls; colliding service-account names of two apps; two deploy processes at once; an
//! endpoint that stalls.
#![cfg(feature = "fake")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use porter_identity_aws::api::{CreateAssociation, EksIamApi};
use porter_identity_aws::fake::FakeAws;
use porter_identity_aws::{AwsPodIdentityProvider, codes};
use porter_identity_core::{
    AppManifest, BindChange, Binding, Cloud, Connection, ErrorKind, Evidence, Reconciler,
    RetryPolicy, RoleRef, Workload, WorkloadIdentityProvider, testing,
};

const ACCOUNT: &str = "123456789012";
const CLUSTER: &str = "prod";
const NS: &str = "shop";

fn fake() -> FakeAws {
    let aws = FakeAws::new(ACCOUNT, "us-east-1");
    aws.add_cluster(CLUSTER);
    aws.install_addon(CLUSTER, "eks-pod-identity-agent", "ACTIVE");
    for r in ["role-0", "role-1", "role-2"] {
        aws.add_role(r, &FakeAws::pods_trust_policy());
    }
    aws
}

fn retry() -> RetryPolicy {
    RetryPolicy::default()
        .initial_backoff(Duration::from_millis(1))
        .max_backoff(Duration::from_millis(20))
}

async fn provider(aws: &FakeAws) -> AwsPodIdentityProvider {
    AwsPodIdentityProvider::builder()
        .cluster(CLUSTER)
        .api(aws.clone())
        .retry_policy(retry())
        .build()
        .await
        .unwrap()
}

fn manifest(yaml: &str) -> AppManifest {
    AppManifest::from_yaml_str(yaml).unwrap()
}

const ONE_SERVICE: &str =
    "services:\n  - name: api\n    connections:\n      - type: awsRole\n        role: role-0\n";

/// The first deploy of app `demo`: three services, one with a non-identity connection too.
const BEFORE: &str = r"
services:
  - name: api
    connections:
      - type: awsRole
        role: role-0
  - name: worker
    connections:
      - type: awsRole
        role: role-0
  - name: cron
    connections:
      - type: awsRole
        role: role-1
      - type: cloudSql
        instance: main
";

/// The next deploy: `api` moved to role-2, `worker` removed, `cron`'s awsRole removed.
const AFTER: &str = r"
services:
  - name: api
    connections:
      - type: awsRole
        role: role-2
  - name: cron
    connections:
      - type: cloudSql
        instance: main
";

fn role_arn(role: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/{role}")
}

/// The associations of the cluster, as (service account, role ARN).
fn associations(aws: &FakeAws) -> BTreeMap<String, String> {
    aws.associations(CLUSTER)
        .into_iter()
        .map(|a| (a.service_account, a.role_arn))
        .collect()
}

/// An association made by hand (no porter-identity tags) for `service_account`, to role-0.
async fn create_by_hand(aws: &FakeAws, service_account: &str) {
    create_association(aws, service_account, BTreeMap::new()).await;
}

/// An association of `service_account` to role-0, with `tags`.
async fn create_association(aws: &FakeAws, service_account: &str, tags: BTreeMap<String, String>) {
    aws.create_pod_identity_association(CreateAssociation {
        cluster: CLUSTER.into(),
        namespace: NS.into(),
        service_account: service_account.into(),
        role_arn: role_arn("role-0"),
        client_request_token: format!("by-hand-{service_account}"),
        tags,
        ..CreateAssociation::default()
    })
    .await
    .unwrap();
}

fn calls(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

#[tokio::test]
async fn first_deploy_creates_and_the_next_changes_nothing_with_exact_calls() {
    let aws = fake();
    let p = provider(&aws).await;
    let before = manifest(BEFORE);
    let first = Reconciler::new("demo", NS)
        .provider(&p)
        .desired(&before)
        .run()
        .await
        .unwrap();
    assert!(first.is_ok(), "{first}");
    assert_eq!(first.changes(), 3, "{first}");
    assert!(first.removed.is_empty() && first.kept.is_empty(), "{first}");
    // One listing of the namespace serves the binds and then the stale search; nothing
    // existed, so nothing is described.
    let expected = calls(&[
        ("DescribeCluster", 1),
        ("GetRole", 2),
        ("ListPodIdentityAssociations", 1),
        ("CreatePodIdentityAssociation", 3),
    ]);
    assert_eq!(aws.calls(), expected);
    assert_eq!(
        first.calls.of(Cloud::Aws),
        expected,
        "the report counts what the cloud saw"
    );
    assert_eq!(first.service_accounts.len(), 3);
    assert!(
        first
            .service_accounts
            .iter()
            .all(|sa| sa.patch.needs_pod_restart)
    );

    aws.reset_calls();
    let second = Reconciler::new("demo", NS)
        .provider(&p)
        .desired(&before)
        .previous(&before)
        .run()
        .await
        .unwrap();
    assert!(second.is_ok(), "{second}");
    assert_eq!(second.changes(), 0, "{second}");
    assert_eq!(
        aws.calls(),
        calls(&[
            ("ListPodIdentityAssociations", 1),
            ("DescribePodIdentityAssociation", 3)
        ])
    );
    assert_eq!(aws.write_calls(), 0);
}

#[tokio::test]
async fn a_removed_service_a_moved_role_and_a_removed_connection_are_reconciled() {
    let aws = fake();
    let p = provider(&aws).await;
    let (before, after) = (manifest(BEFORE), manifest(AFTER));
    let first = Reconciler::new("demo", NS)
        .provider(&p)
        .desired(&before)
        .run()
        .await
        .unwrap();
    assert!(first.is_ok(), "{first}");

    aws.reset_calls();
    let report = Reconciler::new("demo", NS)
        .provider(&p)
        .desired(&after)
        .previous(&before)
        .run()
        .await
        .unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.workloads.len(), 1);
    assert_eq!(
        report.workloads[0].result.as_ref().unwrap().change,
        BindChange::Updated {
            previous: role_arn("role-0")
        },
        "a moved role is the same association, updated in place"
    );
    let mut removed: Vec<_> = report
        .removed
        .iter()
        .map(|r| (r.binding.workload.service().to_string(), r.evidence))
        .collect();
    removed.sort();
    assert_eq!(
        removed,
        [
            ("cron".to_owned(), Evidence::OwnershipMarks),
            ("worker".to_owned(), Evidence::OwnershipMarks)
        ]
    );
    assert_eq!(
        associations(&aws),
        BTreeMap::from([("demo-api".to_owned(), role_arn("role-2"))])
    );
    assert_eq!(aws.call_count("UpdatePodIdentityAssociation"), 1);
    assert_eq!(aws.call_count("DeletePodIdentityAssociation"), 2);
    assert_eq!(aws.call_count("CreatePodIdentityAssociation"), 0);
}

#[tokio::test]
async fn without_the_previous_deploy_the_tags_find_the_stale_links() {
    let aws = fake();
    let p = provider(&aws).await;
    let before = manifest(BEFORE);
    Reconciler::new("demo", NS)
        .provider(&p)
        .desired(&before)
        .run()
        .await
        .unwrap();
    let report = Reconciler::new("demo", NS)
        .provider(&p)
        .desired(&manifest(AFTER))
        .run()
        .await
        .unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.removed.len(), 2, "{report}");
    assert_eq!(associations(&aws).len(), 1);
}

#[tokio::test]
async fn never_removes_an_untagged_an_addon_owned_or_another_apps_association() {
    let aws = fake();
    let p = provider(&aws).await;
    // Made by hand: no porter-identity tags.
    create_by_hand(&aws, "demo-legacy").await;
    aws.add_addon_owned_association(
        CLUSTER,
        NS,
        "demo-addon",
        &role_arn("role-0"),
        "arn:aws:eks:us-east-1:123456789012:addon/prod/aws-ebs-csi-driver/x",
    );
    // Another app's, in the same namespace.
    let other = Binding::new(
        Workload::for_service(NS, "other", "api").unwrap(),
        Connection::aws_role(RoleRef::parse("role-1").unwrap()),
    );
    p.bind(&other).await.unwrap();
    let before = associations(&aws);
    assert_eq!(before.len(), 3);

    // The previous deploy names all three as if they were app demo's.
    let named = |sa: &str, service: &str| {
        Binding::new(
            Workload::new(NS, sa, "demo", service).unwrap(),
            Connection::aws_role(RoleRef::parse("role-0").unwrap()),
        )
    };
    let previous = [
        named("demo-legacy", "legacy"),
        named("demo-addon", "addon"),
        named("other-api", "api"),
    ];
    aws.reset_calls();
    let report = Reconciler::new("demo", NS)
        .provider(&p)
        .desired_bindings([])
        .previous_bindings(previous)
        .run()
        .await
        .unwrap();
    assert!(report.is_ok(), "{report}");
    assert!(report.removed.is_empty(), "{report}");
    let reasons: BTreeMap<String, String> = report
        .kept
        .iter()
        .map(|k| {
            (
                k.binding.workload.service_account().to_string(),
                k.reason.clone(),
            )
        })
        .collect();
    assert!(
        reasons["demo-legacy"].contains("no porter-identity tags"),
        "{report}"
    );
    assert!(reasons["demo-addon"].contains("add-on"), "{report}");
    assert!(reasons["other-api"].contains("app `other`"), "{report}");
    assert_eq!(aws.write_calls(), 0);
    assert_eq!(associations(&aws), before);

    // Without a previous deploy, none of them is even a candidate.
    let report = Reconciler::new("demo", NS)
        .provider(&p)
        .desired_bindings([])
        .run()
        .await
        .unwrap();
    assert!(
        report.removed.is_empty() && report.kept.is_empty(),
        "{report}"
    );
    assert_eq!(associations(&aws), before);
}

#[tokio::test]
async fn a_dry_run_reports_everything_and_writes_nothing() {
    let aws = fake();
    let p = provider(&aws).await;
    let (before, after) = (manifest(BEFORE), manifest(AFTER));
    Reconciler::new("demo", NS)
        .provider(&p)
        .desired(&before)
        .run()
        .await
        .unwrap();
    let state = associations(&aws);
    aws.reset_calls();
    let dry = Reconciler::new("demo", NS)
        .provider(&p)
        .desired(&after)
        .previous(&before)
        .dry_run()
        .await
        .unwrap();
    assert!(dry.dry_run && dry.is_ok(), "{dry}");
    assert!(
        matches!(
            dry.workloads[0].result.as_ref().unwrap().change,
            BindChange::Updated { .. }
        ),
        "{dry}"
    );
    assert_eq!(dry.removed.len(), 2, "{dry}");
    assert_eq!(dry.changes(), 3);
    assert_eq!(aws.write_calls(), 0, "{:?}", aws.calls());
    assert_eq!(associations(&aws), state);
    let text = dry.to_string();
    assert!(
        text.contains("(dry run)") && text.contains("would remove"),
        "{text}"
    );
}

#[tokio::test]
async fn colliding_service_account_names_of_two_apps_never_clobber_each_other() {
    // app `shop` + service `admin-api` and app `shop-admin` + service `api` both run as
    // `shop-admin-api`.
    let aws = fake();
    let p = provider(&aws).await;
    let shop = manifest(
        "services:\n  - name: admin-api\n    connections:\n      - type: awsRole\n        role: role-0\n",
    );
    let shop_admin = manifest(
        "services:\n  - name: api\n    connections:\n      - type: awsRole\n        role: role-1\n",
    );
    let first = Reconciler::new("shop", NS)
        .provider(&p)
        .desired(&shop)
        .run()
        .await
        .unwrap();
    assert!(first.is_ok(), "{first}");

    let second = Reconciler::new("shop-admin", NS)
        .provider(&p)
        .desired(&shop_admin)
        .run()
        .await
        .unwrap();
    let err = second.workloads[0].result.as_ref().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(
        err.to_string()
            .contains("service `admin-api` of app `shop`"),
        "{err}"
    );
    assert!(!second.is_ok());

    let intruder = &shop_admin.bindings("shop-admin", NS).unwrap()[0];
    assert_eq!(
        p.unbind(intruder).await.unwrap_err().kind(),
        ErrorKind::Conflict
    );
    let report = p.verify(intruder).await.unwrap();
    assert!(report.has(codes::ASSOCIATION_OTHER_OWNER), "{report}");
    let finding = report
        .findings
        .iter()
        .find(|f| f.code == codes::ASSOCIATION_OTHER_OWNER)
        .unwrap();
    assert!(finding.remediation.contains("rename"), "{finding}");
    // Removing the colliding app's link (its previous deploy) leaves the first app's alone.
    let gone = Reconciler::new("shop-admin", NS)
        .provider(&p)
        .desired_bindings([])
        .previous(&shop_admin)
        .run()
        .await
        .unwrap();
    assert!(gone.removed.is_empty(), "{gone}");
    assert_eq!(
        associations(&aws),
        BTreeMap::from([("shop-admin-api".to_owned(), role_arn("role-0"))])
    );
    let tags = &aws.associations(CLUSTER)[0].tags;
    assert_eq!(tags["porter-identity/app"], "shop");
}

fn factory(workload: usize, identity: usize) -> Binding {
    Binding::new(
        Workload::for_service("apps", "shop", &format!("svc-{workload}")).unwrap(),
        Connection::aws_role(RoleRef::parse(&format!("role-{identity}")).unwrap()),
    )
}

#[tokio::test]
async fn another_owners_association_passes_the_ownership_checks_of_the_suite() {
    let aws = fake();
    let p = provider(&aws).await;
    testing::another_owners_link_is_never_touched(&p, &factory).await;
    assert!(aws.associations(CLUSTER).is_empty());
}

#[tokio::test]
async fn two_deploy_processes_reconciling_at_once_converge_without_duplicates() {
    let aws = fake();
    // Latency widens the windows between list, describe and write, so the two really race.
    aws.set_latency(Duration::from_millis(5));
    let (a, b) = (provider(&aws).await, provider(&aws).await);
    testing::concurrent_reconciles_converge(&a, &b, &factory).await;
    assert!(aws.associations(CLUSTER).is_empty(), "the suite cleans up");

    // The same with a porter.yaml: every service account has exactly one association.
    aws.reset_calls();
    let before = manifest(BEFORE);
    let run = |p| {
        let deploy = Reconciler::new("demo", NS).provider(p).desired(&before);
        async move { deploy.run().await }
    };
    let (ra, rb) = futures_util::future::join(run(&a), run(&b)).await;
    for r in [ra.unwrap(), rb.unwrap()] {
        assert!(r.is_ok(), "{r}");
    }
    let all = aws.associations(CLUSTER);
    assert_eq!(all.len(), 3, "{all:?}");
    assert_eq!(
        associations(&aws).len(),
        3,
        "one association per service account"
    );
    // Both processes found no association and created: the race happened, and the loser of
    // each (ResourceInUseException) adopted the winner's. Without a race this test would
    // prove nothing.
    assert!(
        aws.call_count("CreatePodIdentityAssociation") > 3,
        "the two deploys raced to create: {:?}",
        aws.calls()
    );
}

#[tokio::test(start_paused = true)]
async fn an_endpoint_that_stalls_one_call_in_five_does_not_stall_the_deploy() {
    // Tried as a user: an EKS endpoint that answered one call in five only after 60 s made
    // ten binds take 60 s, and 40 s with 20 s attempt timeouts (a retried call stalled again).
    // With the default policy, a stalled call is cut at 5 s and its retry gets 10 s.
    let aws = fake();
    aws.set_latency(Duration::from_millis(10));
    aws.stall_every(5, Duration::from_secs(60));
    let p = AwsPodIdentityProvider::builder()
        .cluster(CLUSTER)
        .api(aws.clone())
        .retry_policy(RetryPolicy::default())
        .build()
        .await
        .unwrap();
    let desired: Vec<Binding> = (0..10).map(|i| factory(i, i % 3)).collect();
    let started = tokio::time::Instant::now();
    let report = Reconciler::new("shop", "apps")
        .provider(&p)
        .desired_bindings(desired.clone())
        .run()
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(report.is_ok(), "{report}");
    assert!(took < Duration::from_secs(30), "the deploy took {took:?}");
    // Stalled creates had created: their retries, with the same clientRequestToken, got the
    // same association back. One association per workload, no more.
    assert_eq!(aws.associations(CLUSTER).len(), 10);
    let again = p
        .bind_all(&porter_identity_core::RunContext::apply(), &desired)
        .await;
    assert!(
        again
            .iter()
            .all(|r| r.as_ref().unwrap().change == BindChange::Unchanged)
    );
}

#[tokio::test]
async fn a_stale_link_made_by_the_caller_is_removed_only_when_its_tags_prove_it() {
    use porter_identity_core::{StaleLink, UnbindOutcome};
    let aws = fake();
    let p = provider(&aws).await;
    let ours = Binding::new(
        Workload::for_service(NS, "demo", "api").unwrap(),
        Connection::aws_role(RoleRef::parse("role-0").unwrap()),
    );
    p.bind(&ours).await.unwrap();
    let by_hand = Binding::new(
        Workload::new(NS, "demo-legacy", "demo", "legacy").unwrap(),
        Connection::aws_role(RoleRef::parse("role-0").unwrap()),
    );
    create_by_hand(&aws, "demo-legacy").await;
    let absent = Binding::new(
        Workload::for_service(NS, "demo", "gone").unwrap(),
        Connection::aws_role(RoleRef::parse("role-0").unwrap()),
    );
    let links: Vec<StaleLink> = [&ours, &by_hand, &absent]
        .into_iter()
        .map(StaleLink::from_previous)
        .collect();
    let results = p
        .remove_stale_links(&porter_identity_core::RunContext::apply(), &links)
        .await;
    assert!(
        matches!(results[0], Ok(UnbindOutcome::Deleted { .. })),
        "{results:?}"
    );
    let refused = results[1].as_ref().unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Conflict, "{refused}");
    assert_eq!(results[2].as_ref().unwrap(), &UnbindOutcome::AlreadyAbsent);
    assert_eq!(
        associations(&aws),
        BTreeMap::from([("demo-legacy".to_owned(), role_arn("role-0"))]),
        "the untagged association stays"
    );
}

#[tokio::test]
async fn a_second_cluster_on_the_same_roles_keeps_its_own_associations() {
    let aws = fake();
    aws.add_cluster("staging");
    aws.install_addon("staging", "eks-pod-identity-agent", "ACTIVE");
    let prod = provider(&aws).await;
    let staging = AwsPodIdentityProvider::builder()
        .cluster("staging")
        .api(aws.clone())
        .retry_policy(retry())
        .build()
        .await
        .unwrap();
    let (before, after) = (manifest(BEFORE), manifest(AFTER));
    for p in [&prod, &staging] {
        let r = Reconciler::new("demo", NS)
            .provider(p)
            .desired(&before)
            .run()
            .await
            .unwrap();
        assert!(r.is_ok(), "{r}");
    }
    // Only prod moves on; staging's associations, of the same app and roles, stay as they were.
    let r = Reconciler::new("demo", NS)
        .provider(&prod)
        .desired(&after)
        .previous(&before)
        .run()
        .await
        .unwrap();
    assert_eq!(r.removed.len(), 2, "{r}");
    assert_eq!(aws.associations(CLUSTER).len(), 1);
    let staged: BTreeMap<String, String> = aws
        .associations("staging")
        .into_iter()
        .map(|a| (a.service_account, a.role_arn))
        .collect();
    assert_eq!(
        staged,
        BTreeMap::from([
            ("demo-api".to_owned(), role_arn("role-0")),
            ("demo-cron".to_owned(), role_arn("role-1")),
            ("demo-worker".to_owned(), role_arn("role-0")),
        ])
    );
}

/// A listing that gave up is not tried again in the same run: the stale-link search of a
/// one-service reconcile says the binds' listing error instead of spending a second retry
/// budget on the endpoint (it made 12 ListPodIdentityAssociations calls, 6 per chain, before).
#[tokio::test]
async fn the_stale_search_does_not_list_again_after_the_binds_listing_failed() {
    let aws = fake();
    let p = provider(&aws).await;
    let m = manifest(
        "services:\n  - name: api\n    connections:\n      - type: awsRole\n        role: role-0\n",
    );
    aws.inject_failures(
        Some("ListPodIdentityAssociations"),
        ErrorKind::Unavailable,
        1_000,
    );
    let report = Reconciler::new("demo", NS)
        .provider(&p)
        .desired(&m)
        .run()
        .await
        .unwrap();
    let attempts = u64::from(retry().get_max_attempts());
    assert_eq!(
        aws.call_count("ListPodIdentityAssociations"),
        attempts,
        "one listing's attempts, not a second budget for the stale search: {report}"
    );
    let e = report.workloads[0].result.as_ref().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert_eq!(report.cleanup_errors.len(), 1, "{report}");
    assert_eq!(
        report.cleanup_errors[0].operation(),
        Some("ListPodIdentityAssociations"),
        "the stale search says the listing's error: {report}"
    );
    assert_eq!(aws.write_calls(), 0);
}

/// When one joined chain gives up, the operation stops: a listing refused for good (access
/// denied) ends the bind, and the cluster read beside it (failing with 503s) is dropped instead
/// of going on to its own six attempts.
#[tokio::test]
async fn a_joined_chain_does_not_outlive_its_siblings_failure() {
    let aws = fake();
    let p = provider(&aws).await;
    aws.reset_calls();
    aws.inject_failures(
        Some("ListPodIdentityAssociations"),
        ErrorKind::PermissionDenied,
        1,
    );
    aws.inject_failures(Some("DescribeCluster"), ErrorKind::Unavailable, 10_000);
    aws.set_latency(Duration::from_millis(5));
    let binding = Binding::new(
        Workload::for_service(NS, "demo", "api").unwrap(),
        Connection::aws_role(RoleRef::parse("role-0").unwrap()),
    );
    let e = p.bind(&binding).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert_eq!(aws.call_count("ListPodIdentityAssociations"), 1);
    assert_eq!(
        aws.call_count("DescribeCluster"),
        1,
        "the cluster read stops with the bind: {:?}",
        aws.calls()
    );
}

/// Creates an association of `service_account` tagged as made by porter-identity for `app`'s
/// `service`.
async fn create_tagged(aws: &FakeAws, service_account: &str, app: &str, service: &str) {
    let tags = [
        ("managed-by", "porter-identity"),
        ("porter-identity/app", app),
        ("porter-identity/service", service),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .into();
    create_association(aws, service_account, tags).await;
}

/// The stale-link search costs the app, not the namespace: without a previous deploy it reads
/// only the associations whose service account can be one of the app's derived names, so other
/// apps' and hand-made associations in a shared namespace are not described. An association
/// of the app under an explicit name is found through the previous deploy.
#[tokio::test]
async fn the_stale_search_reads_only_what_can_be_the_apps() {
    let aws = fake();
    let p = provider(&aws).await;
    create_tagged(&aws, "demo-old", "demo", "old").await;
    create_tagged(&aws, "custom-sa", "demo", "batch").await;
    for i in 0..5 {
        create_tagged(
            &aws,
            &format!("billing-svc-{i}"),
            "billing",
            &format!("svc-{i}"),
        )
        .await;
        create_by_hand(&aws, &format!("legacy-{i}")).await;
    }
    aws.reset_calls();
    let m = manifest(ONE_SERVICE);
    let report = Reconciler::new("demo", NS)
        .provider(&p)
        .desired(&m)
        .run()
        .await
        .unwrap();
    assert!(report.is_ok(), "{report}");
    let removed: Vec<String> = report
        .removed
        .iter()
        .map(|r| r.binding.workload.service_account().to_string())
        .collect();
    assert_eq!(removed, ["demo-old"], "{report}");
    assert_eq!(
        aws.call_count("DescribePodIdentityAssociation"),
        1,
        "only demo-old is read: {:?}",
        aws.calls()
    );
    let left: Vec<String> = aws
        .associations(CLUSTER)
        .into_iter()
        .map(|a| a.service_account)
        .collect();
    assert!(left.contains(&"custom-sa".to_owned()), "{left:?}");
    assert_eq!(left.len(), 1 + 1 + 10, "api, custom-sa and the ten others");

    // Named by the previous deploy, the explicit name is found, proven by its tags and removed.
    let custom = Binding::new(
        Workload::new(NS, "custom-sa", "demo", "batch").unwrap(),
        Connection::aws_role(RoleRef::parse("role-0").unwrap()),
    );
    let report = Reconciler::new("demo", NS)
        .provider(&p)
        .desired(&m)
        .previous_bindings([custom])
        .run()
        .await
        .unwrap();
    assert_eq!(report.removed.len(), 1, "{report}");
    assert_eq!(aws.associations(CLUSTER).len(), 1 + 10);
}
