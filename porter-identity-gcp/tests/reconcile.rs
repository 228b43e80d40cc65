//! The Reconciler on the fake the way deploys use it: porter.yaml changes between deploys,
//! members granted by hand or by other tooling beside ours, a second cluster (in another
//! project, so another workload pool) on the same service accounts, dry runs, and the exact
//! calls of each deploy.
#![cfg(feature = "fake")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use porter_identity_core::{
    AppManifest, BindChange, Cloud, Reconciler, RetryPolicy, WorkloadIdentityProvider,
};
use porter_identity_gcp::GcpWorkloadIdentityProvider;
use porter_identity_gcp::WORKLOAD_IDENTITY_USER;
use porter_identity_gcp::fake::FakeGcp;

const PROJECT: &str = "shop-project-1";
const OTHER_PROJECT: &str = "green-project-2";
const NS: &str = "shop";
const ACCOUNTS: [&str; 3] = ["account-a", "account-b", "account-c"];

fn email(account: &str) -> String {
    format!("{account}@{PROJECT}.iam.gserviceaccount.com")
}

/// Two GKE clusters, `blue` in the service accounts' project and `green` in another project
/// (so another workload pool), and three service accounts.
fn fake() -> FakeGcp {
    let gcp = FakeGcp::new();
    gcp.add_gke_cluster(PROJECT, "us-central1", "blue")
        .add_gke_cluster(OTHER_PROJECT, "europe-west1", "green");
    for account in ACCOUNTS {
        gcp.add_service_account(&email(account));
    }
    gcp
}

async fn provider_on(
    gcp: &FakeGcp,
    project: &str,
    location: &str,
    cluster: &str,
) -> GcpWorkloadIdentityProvider {
    GcpWorkloadIdentityProvider::builder()
        .gke_cluster(project, location, cluster)
        .api(gcp.clone())
        .retry_policy(
            RetryPolicy::default()
                .initial_backoff(Duration::from_millis(1))
                .max_backoff(Duration::from_millis(20)),
        )
        .build()
        .await
        .unwrap()
}

async fn provider(gcp: &FakeGcp) -> GcpWorkloadIdentityProvider {
    provider_on(gcp, PROJECT, "us-central1", "blue").await
}

fn manifest(yaml: &str) -> AppManifest {
    AppManifest::from_yaml_str(&yaml.replace("PROJECT", PROJECT)).unwrap()
}

/// The first deploy of app `demo`: `api` and `worker` on account-a, `cron` on account-b with a
/// non-identity connection too.
const BEFORE: &str = r"
services:
  - name: api
    connections:
      - type: gcpServiceAccount
        serviceAccountEmail: account-a@PROJECT.iam.gserviceaccount.com
  - name: worker
    connections:
      - type: gcpServiceAccount
        serviceAccountEmail: account-a@PROJECT.iam.gserviceaccount.com
  - name: cron
    connections:
      - type: gcpServiceAccount
        serviceAccountEmail: account-b@PROJECT.iam.gserviceaccount.com
      - type: cloudSql
        instance: main
";

/// The next deploy: `api` moved to account-c, `worker` removed, `cron`'s account removed.
const AFTER: &str = r"
services:
  - name: api
    connections:
      - type: gcpServiceAccount
        serviceAccountEmail: account-c@PROJECT.iam.gserviceaccount.com
  - name: cron
    connections:
      - type: cloudSql
        instance: main
";

fn member(project: &str, ksa: &str) -> String {
    format!("serviceAccount:{project}.svc.id.goog[{NS}/{ksa}]")
}

/// Every Workload Identity member of the three accounts, as (account, member).
fn members(gcp: &FakeGcp) -> BTreeSet<(String, String)> {
    ACCOUNTS
        .into_iter()
        .flat_map(|account| {
            gcp.members(&email(account), WORKLOAD_IDENTITY_USER)
                .into_iter()
                .map(move |m| (account.to_owned(), m))
        })
        .collect()
}

fn set(pairs: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    pairs
        .iter()
        .map(|(a, ksa)| ((*a).to_owned(), member(PROJECT, ksa)))
        .collect()
}

fn calls(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

#[tokio::test]
async fn first_deploy_creates_and_the_next_changes_nothing_with_exact_calls() {
    let gcp = fake();
    let p = provider(&gcp).await;
    let before = manifest(BEFORE);
    let first = Reconciler::new("demo", NS)
        .provider(&p)
        .desired(&before)
        .run()
        .await
        .unwrap();
    assert!(first.is_ok(), "{first}");
    assert_eq!(first.changes(), 3, "{first}");
    // One cluster read; per service account one policy read, one check and one write, however
    // many workloads it takes.
    let expected = calls(&[
        ("clusters.get", 1),
        ("getIamPolicy", 2),
        ("serviceAccounts.get", 2),
        ("setIamPolicy", 2),
    ]);
    assert_eq!(gcp.calls(), expected);
    assert_eq!(
        first.calls.of(Cloud::Gcp),
        expected,
        "the report counts what the cloud saw"
    );
    assert_eq!(
        members(&gcp),
        set(&[
            ("account-a", "demo-api"),
            ("account-a", "demo-worker"),
            ("account-b", "demo-cron")
        ])
    );
    for sa in &first.service_accounts {
        assert!(sa.patch.needs_pod_restart, "{first}");
        assert!(
            sa.patch.annotations["iam.gke.io/gcp-service-account"]
                .ends_with(".iam.gserviceaccount.com")
        );
    }

    gcp.reset_calls();
    let second = Reconciler::new("demo", NS)
        .provider(&p)
        .desired(&before)
        .previous(&before)
        .run()
        .await
        .unwrap();
    assert!(second.is_ok(), "{second}");
    assert_eq!(second.changes(), 0, "{second}");
    assert_eq!(gcp.calls(), calls(&[("getIamPolicy", 2)]));

    // A new deploy process: it reads the cluster once more, nothing else.
    gcp.reset_calls();
    let fresh = provider(&gcp).await;
    let third = Reconciler::new("demo", NS)
        .provider(&fresh)
        .desired(&before)
        .previous(&before)
        .run()
        .await
        .unwrap();
    assert_eq!(third.changes(), 0, "{third}");
    assert_eq!(
        gcp.calls(),
        calls(&[("clusters.get", 1), ("getIamPolicy", 2)])
    );
}

#[tokio::test]
async fn a_removed_service_a_moved_account_and_a_removed_connection_are_reconciled() {
    let gcp = fake();
    let p = provider(&gcp).await;
    let (before, after) = (manifest(BEFORE), manifest(AFTER));
    Reconciler::new("demo", NS)
        .provider(&p)
        .desired(&before)
        .run()
        .await
        .unwrap();
    let report = Reconciler::new("demo", NS)
        .provider(&p)
        .desired(&after)
        .previous(&before)
        .run()
        .await
        .unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.removed.len(), 3, "{report}");
    assert_eq!(members(&gcp), set(&[("account-c", "demo-api")]), "{report}");
}

#[tokio::test]
async fn never_removes_a_member_granted_by_hand_or_by_other_tooling() {
    let gcp = fake();
    let a = email("account-a");
    let by_hand = member(PROJECT, "hand-made");
    gcp.grant(&a, WORKLOAD_IDENTITY_USER, &by_hand).grant(
        &a,
        "roles/iam.serviceAccountUser",
        "group:ops@example.com",
    );
    let p = provider(&gcp).await;
    let (before, after) = (manifest(BEFORE), manifest(AFTER));
    Reconciler::new("demo", NS)
        .provider(&p)
        .desired(&before)
        .run()
        .await
        .unwrap();
    // Another app in the namespace binds its own service account to account-a.
    Reconciler::new("other", NS)
        .provider(&p)
        .desired(&manifest(
            "services:\n  - name: api\n    connections:\n      - type: gcpServiceAccount\n        serviceAccountEmail: account-a@PROJECT.iam.gserviceaccount.com\n",
        ))
        .run()
        .await
        .unwrap();
    let report = Reconciler::new("demo", NS)
        .provider(&p)
        .desired(&after)
        .previous(&before)
        .run()
        .await
        .unwrap();
    assert!(report.is_ok(), "{report}");
    let left = gcp.members(&a, WORKLOAD_IDENTITY_USER);
    assert_eq!(
        left,
        vec![by_hand, member(PROJECT, "other-api")],
        "{report}"
    );
    assert_eq!(
        gcp.members(&a, "roles/iam.serviceAccountUser"),
        vec!["group:ops@example.com"]
    );
}

#[tokio::test]
async fn a_second_cluster_in_another_project_keeps_its_members() {
    let gcp = fake();
    let blue = provider(&gcp).await;
    let green = provider_on(&gcp, OTHER_PROJECT, "europe-west1", "green").await;
    let (before, after) = (manifest(BEFORE), manifest(AFTER));
    for p in [&blue, &green] {
        let r = Reconciler::new("demo", NS)
            .provider(p)
            .desired(&before)
            .run()
            .await
            .unwrap();
        assert!(r.is_ok(), "{r}");
    }
    // Blue moves on; green still runs the first deploy.
    let report = Reconciler::new("demo", NS)
        .provider(&blue)
        .desired(&after)
        .previous(&before)
        .run()
        .await
        .unwrap();
    assert!(report.is_ok(), "{report}");
    let green_members: BTreeSet<String> = members(&gcp)
        .into_iter()
        .map(|(_, m)| m)
        .filter(|m| m.contains(OTHER_PROJECT))
        .collect();
    assert_eq!(
        green_members,
        ["demo-api", "demo-worker", "demo-cron"]
            .into_iter()
            .map(|k| member(OTHER_PROJECT, k))
            .collect(),
        "green's members are its own (another pool) and stay"
    );
}

#[tokio::test]
async fn a_dry_run_reports_everything_and_writes_nothing() {
    let gcp = fake();
    let p = provider(&gcp).await;
    let (before, after) = (manifest(BEFORE), manifest(AFTER));
    Reconciler::new("demo", NS)
        .provider(&p)
        .desired(&before)
        .run()
        .await
        .unwrap();
    let state = members(&gcp);
    gcp.reset_calls();
    let dry = Reconciler::new("demo", NS)
        .provider(&p)
        .desired(&after)
        .previous(&before)
        .dry_run()
        .await
        .unwrap();
    assert!(dry.dry_run && dry.is_ok(), "{dry}");
    assert_eq!(
        dry.workloads[0].result.as_ref().unwrap().change,
        BindChange::Created,
        "{dry}"
    );
    assert_eq!(dry.removed.len(), 3, "{dry}");
    assert_eq!(gcp.write_calls(), 0, "{:?}", gcp.calls());
    assert_eq!(members(&gcp), state);
    assert!(p.plan(&dry.workloads[0].binding).await.is_ok());
}
