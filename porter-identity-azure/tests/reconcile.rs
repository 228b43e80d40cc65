//! The Reconciler on the fake ARM the way deploys use it: porter.yaml changes between deploys,
//! credentials made by hand or by another app beside ours, a second cluster trusting the same
//! identity, dry runs, and the exact ARM calls of each deploy.
#![cfg(feature = "fake")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use porter_identity_azure::AzureWorkloadIdentityProvider;
use porter_identity_azure::fake::FakeAzure;
use porter_identity_core::{
    AppManifest, AzureIdentityName, AzureResourceGroup, BindChange, Binding, Cloud, Connection,
    ErrorKind, Evidence, Reconciler, RetryPolicy, Workload, WorkloadIdentityProvider,
};

const RG: &str = "shop-rg";
const CLUSTER_RG: &str = "aks-rg";
const NS: &str = "shop";
const ISSUER: &str = "https://eastus.oic.prod-aks.azure.com/tenant/blue/";
const ISSUER_GREEN: &str = "https://westus.oic.prod-aks.azure.com/tenant/green/";
const AUDIENCE: &str = "api://AzureADTokenExchange";

/// Two AKS clusters, `blue` and `green`, and three identities.
fn fake() -> FakeAzure {
    let azure = FakeAzure::new();
    azure.add_aks_cluster(CLUSTER_RG, "blue", ISSUER);
    azure.add_aks_cluster(CLUSTER_RG, "green", ISSUER_GREEN);
    for identity in ["identity-a", "identity-b", "identity-c"] {
        azure.add_identity(RG, identity);
    }
    azure
}

async fn provider_on(azure: &FakeAzure, cluster: &str) -> AzureWorkloadIdentityProvider {
    AzureWorkloadIdentityProvider::builder()
        .aks_cluster(CLUSTER_RG, cluster)
        .api(azure.clone())
        .retry_policy(
            RetryPolicy::default()
                .initial_backoff(Duration::from_millis(1))
                .max_backoff(Duration::from_millis(20)),
        )
        .build()
        .await
        .unwrap()
}

async fn provider(azure: &FakeAzure) -> AzureWorkloadIdentityProvider {
    provider_on(azure, "blue").await
}

fn manifest(yaml: &str) -> AppManifest {
    AppManifest::from_yaml_str(yaml).unwrap()
}

/// The first deploy of app `demo`: `api` and `worker` on identity-a, `cron` on identity-b with a
/// non-identity connection too.
const BEFORE: &str = r"
services:
  - name: api
    connections:
      - type: azureManagedIdentity
        identityName: identity-a
        resourceGroup: shop-rg
  - name: worker
    connections:
      - type: azureManagedIdentity
        identityName: identity-a
        resourceGroup: shop-rg
  - name: cron
    connections:
      - type: azureManagedIdentity
        identityName: identity-b
        resourceGroup: shop-rg
      - type: cloudSql
        instance: main
";

/// The next deploy: `api` moved to identity-c, `worker` removed, `cron`'s identity removed.
const AFTER: &str = r"
services:
  - name: api
    connections:
      - type: azureManagedIdentity
        identityName: identity-c
        resourceGroup: shop-rg
  - name: cron
    connections:
      - type: cloudSql
        instance: main
";

fn binding(app: &str, service: &str, identity: &str) -> Binding {
    Binding::new(
        Workload::for_service(NS, app, service).unwrap(),
        Connection::azure_managed_identity(
            AzureIdentityName::parse(identity).unwrap(),
            AzureResourceGroup::parse(RG).unwrap(),
        ),
    )
}

/// Every credential of the three identities, as (identity, issuer, subject).
fn credentials(azure: &FakeAzure) -> BTreeSet<(String, String, String)> {
    ["identity-a", "identity-b", "identity-c"]
        .into_iter()
        .flat_map(|identity| {
            azure
                .credentials(RG, identity)
                .into_iter()
                .map(move |c| (identity.to_owned(), c.issuer, c.subject))
        })
        .collect()
}

fn subject(service_account: &str) -> String {
    format!("system:serviceaccount:{NS}:{service_account}")
}

fn calls(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

#[tokio::test]
async fn first_deploy_creates_and_the_next_changes_nothing_with_exact_calls() {
    let azure = fake();
    let p = provider(&azure).await;
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
    // One read of the cluster, of each identity and of each identity's credentials: the binds
    // and then the stale search share the listing.
    let expected = calls(&[
        ("ManagedClusters_Get", 1),
        ("UserAssignedIdentities_Get", 2),
        ("FederatedIdentityCredentials_List", 2),
        ("FederatedIdentityCredentials_CreateOrUpdate", 3),
    ]);
    assert_eq!(azure.calls(), expected);
    assert_eq!(
        first.calls.of(Cloud::Azure),
        expected,
        "the report counts what the cloud saw"
    );
    let a = azure.identity(RG, "identity-a").unwrap();
    for sa in &first.service_accounts {
        assert!(sa.patch.needs_pod_restart, "{first}");
        let client_id = &sa.patch.annotations["azure.workload.identity/client-id"];
        if sa.workload.service().as_str() != "cron" {
            assert_eq!(client_id, &a.client_id);
        }
    }

    // The next deploy, by the same process: the cluster and identities are known.
    azure.reset_calls();
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
        azure.calls(),
        calls(&[("FederatedIdentityCredentials_List", 2)])
    );
    assert_eq!(azure.write_calls(), 0);
}

#[tokio::test]
async fn a_removed_service_a_moved_identity_and_a_removed_connection_are_reconciled() {
    let azure = fake();
    let p = provider(&azure).await;
    let (before, after) = (manifest(BEFORE), manifest(AFTER));
    let first = Reconciler::new("demo", NS)
        .provider(&p)
        .desired(&before)
        .run()
        .await
        .unwrap();
    assert!(first.is_ok(), "{first}");

    azure.reset_calls();
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
        BindChange::Created,
        "a credential lives on its identity: the moved service gets a new one"
    );
    let mut removed: Vec<_> = report
        .removed
        .iter()
        .map(|r| {
            (
                r.binding.workload.service().to_string(),
                r.binding.connection.describe(),
                r.evidence,
            )
        })
        .collect();
    removed.sort();
    assert_eq!(
        removed,
        [
            (
                "api".to_owned(),
                "azureManagedIdentity shop-rg/identity-a".to_owned(),
                Evidence::OwnershipMarks
            ),
            (
                "cron".to_owned(),
                "azureManagedIdentity shop-rg/identity-b".to_owned(),
                Evidence::OwnershipMarks
            ),
            (
                "worker".to_owned(),
                "azureManagedIdentity shop-rg/identity-a".to_owned(),
                Evidence::OwnershipMarks
            ),
        ],
        "{report}"
    );
    assert_eq!(
        credentials(&azure),
        BTreeSet::from([(
            "identity-c".to_owned(),
            ISSUER.to_owned(),
            subject("demo-api")
        )])
    );
    assert_eq!(azure.call_count("FederatedIdentityCredentials_Delete"), 3);
    assert_eq!(
        azure.call_count("FederatedIdentityCredentials_CreateOrUpdate"),
        1
    );
}

#[tokio::test]
async fn without_the_previous_deploy_the_names_find_stale_credentials_on_the_identities_named() {
    let azure = fake();
    let p = provider(&azure).await;
    Reconciler::new("demo", NS)
        .provider(&p)
        .desired(&manifest(BEFORE))
        .run()
        .await
        .unwrap();
    // `worker` dropped; the deploy names identity-a (for `api`) and identity-b (for `cron`).
    let next = manifest(
        r"
services:
  - name: api
    connections:
      - type: azureManagedIdentity
        identityName: identity-a
        resourceGroup: shop-rg
  - name: cron
    connections:
      - type: azureManagedIdentity
        identityName: identity-b
        resourceGroup: shop-rg
",
    );
    let report = Reconciler::new("demo", NS)
        .provider(&p)
        .desired(&next)
        .run()
        .await
        .unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.removed.len(), 1, "{report}");
    assert_eq!(
        report.removed[0].binding.workload.service().as_str(),
        "worker"
    );
    assert_eq!(report.removed[0].evidence, Evidence::OwnershipMarks);
    assert_eq!(credentials(&azure).len(), 2);
}

#[tokio::test]
async fn never_removes_a_hand_made_or_another_apps_credential() {
    let azure = fake();
    let p = provider(&azure).await;
    // Made by hand for a service account of the namespace: not a name porter-identity makes.
    azure.add_credential(
        RG,
        "identity-a",
        "legacy-by-hand",
        ISSUER,
        &subject("demo-legacy"),
        &[AUDIENCE],
    );
    // Another app's, in the same namespace, on the same identity.
    p.bind(&binding("other", "api", "identity-a"))
        .await
        .unwrap();
    let before = credentials(&azure);
    assert_eq!(before.len(), 2);

    // The previous deploy names both as if they were app demo's.
    let named = |sa: &str, service: &str| {
        Binding::new(
            Workload::new(NS, sa, "demo", service).unwrap(),
            Connection::azure_managed_identity(
                AzureIdentityName::parse("identity-a").unwrap(),
                AzureResourceGroup::parse(RG).unwrap(),
            ),
        )
    };
    let previous = [named("demo-legacy", "legacy"), named("other-api", "api")];
    azure.reset_calls();
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
        reasons["demo-legacy"].contains("a name porter-identity does not make"),
        "{report}"
    );
    assert!(
        reasons["other-api"].contains("service `api` of app `other`"),
        "{report}"
    );
    assert_eq!(azure.write_calls(), 0);
    assert_eq!(credentials(&azure), before);

    // Without a previous deploy, none of them is even a candidate.
    let report = Reconciler::new("demo", NS)
        .provider(&p)
        .desired_bindings([binding("demo", "api", "identity-a")])
        .run()
        .await
        .unwrap();
    assert!(report.is_ok(), "{report}");
    assert!(
        report.removed.is_empty() && report.kept.is_empty(),
        "{report}"
    );
    assert_eq!(credentials(&azure).len(), 3);
}

#[tokio::test]
async fn a_second_cluster_on_the_same_identities_keeps_its_credentials() {
    // The same app deployed to two clusters (blue and green) trusting the same identities:
    // one credential per cluster issuer. Tearing the app down on blue leaves green's alone.
    let azure = fake();
    let (blue, green) = (
        provider_on(&azure, "blue").await,
        provider_on(&azure, "green").await,
    );
    let before = manifest(BEFORE);
    for p in [&blue, &green] {
        let report = Reconciler::new("demo", NS)
            .provider(p)
            .desired(&before)
            .run()
            .await
            .unwrap();
        assert!(report.is_ok(), "{report}");
        assert_eq!(report.changes(), 3, "{report}");
    }
    assert_eq!(credentials(&azure).len(), 6);

    let teardown = Reconciler::new("demo", NS)
        .provider(&blue)
        .desired_bindings([])
        .previous(&before)
        .run()
        .await
        .unwrap();
    assert!(teardown.is_ok(), "{teardown}");
    assert_eq!(teardown.removed.len(), 3, "{teardown}");
    let left = credentials(&azure);
    assert_eq!(left.len(), 3);
    assert!(left.iter().all(|(_, issuer, _)| issuer == ISSUER_GREEN));
    for b in before.bindings("demo", NS).unwrap() {
        let report = green.verify(&b).await.unwrap();
        assert!(report.is_healthy(), "{report}");
    }

    // And a teardown without the previous deploy, by the app's marks, is as careful.
    let teardown = Reconciler::new("demo", NS)
        .provider(&blue)
        .desired_bindings([binding("demo", "api", "identity-a")])
        .run()
        .await
        .unwrap();
    assert!(teardown.removed.is_empty(), "{teardown}");
    assert_eq!(
        credentials(&azure).len(),
        4,
        "blue's api again, green's three"
    );
}

#[tokio::test]
async fn a_dry_run_reports_everything_and_writes_nothing() {
    let azure = fake();
    let p = provider(&azure).await;
    let (before, after) = (manifest(BEFORE), manifest(AFTER));
    Reconciler::new("demo", NS)
        .provider(&p)
        .desired(&before)
        .run()
        .await
        .unwrap();
    let state = credentials(&azure);
    azure.reset_calls();
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
    assert_eq!(azure.write_calls(), 0, "{:?}", azure.calls());
    assert_eq!(credentials(&azure), state);
}

#[tokio::test]
async fn colliding_service_account_names_of_two_apps_never_clobber_each_other() {
    // app `shop` + service `admin-api` and app `shop-admin` + service `api` both run as
    // `shop-admin-api`.
    let azure = fake();
    let p = provider(&azure).await;
    let shop = manifest(
        "services:\n  - name: admin-api\n    connections:\n      - type: azureManagedIdentity\n        identityName: identity-a\n        resourceGroup: shop-rg\n",
    );
    let shop_admin = manifest(
        "services:\n  - name: api\n    connections:\n      - type: azureManagedIdentity\n        identityName: identity-a\n        resourceGroup: shop-rg\n",
    );
    let first = Reconciler::new("shop", NS)
        .provider(&p)
        .desired(&shop)
        .run()
        .await
        .unwrap();
    assert!(first.is_ok(), "{first}");
    let state = credentials(&azure);
    let names: Vec<String> = azure
        .credentials(RG, "identity-a")
        .into_iter()
        .map(|c| c.name)
        .collect();

    azure.reset_calls();
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

    // Its teardown, naming the colliding binding as its previous deploy, removes nothing.
    let teardown = Reconciler::new("shop-admin", NS)
        .provider(&p)
        .desired_bindings([])
        .previous(&shop_admin)
        .run()
        .await
        .unwrap();
    assert!(teardown.removed.is_empty(), "{teardown}");
    assert_eq!(azure.write_calls(), 0, "{:?}", azure.calls());
    assert_eq!(credentials(&azure), state);
    let after: Vec<String> = azure
        .credentials(RG, "identity-a")
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(after, names, "shop's credential, name and all");
}

/// One failed issuer read per run: the other identity groups of a reconcile and its stale-link
/// search say that read's error instead of each reading the AKS cluster again with a retry
/// budget of its own. With ARM failing every call, 3 identities made 24 ManagedClusters_Get
/// calls before (6 per group, 6 for the stale search); now 6.
#[tokio::test]
async fn a_failed_issuer_read_is_not_repeated_in_the_same_run() {
    let three = "services:
  - name: api
    connections:
      - type: azureManagedIdentity
        identityName: identity-a
        resourceGroup: shop-rg
  - name: worker
    connections:
      - type: azureManagedIdentity
        identityName: identity-b
        resourceGroup: shop-rg
  - name: cron
    connections:
      - type: azureManagedIdentity
        identityName: identity-c
        resourceGroup: shop-rg
";
    let azure = fake();
    let p = provider(&azure).await;
    // Exactly one read's attempts fail: a second read in the run would succeed, and show.
    azure.inject_failures(Some("ManagedClusters_Get"), ErrorKind::Unavailable, 6);
    let report = Reconciler::new("demo", NS)
        .provider(&p)
        .desired(&manifest(three))
        .run()
        .await
        .unwrap();
    let calls = azure.calls();
    assert_eq!(
        calls.get("ManagedClusters_Get").copied(),
        Some(6),
        "one issuer read's attempts in the run: {calls:?}\n{report}"
    );
    assert_eq!(report.workloads.len(), 3);
    assert!(
        report.workloads.iter().all(|w| w
            .result
            .as_ref()
            .is_err_and(|e| e.kind() == ErrorKind::Unavailable)),
        "{report}"
    );
    assert_eq!(report.cleanup_errors.len(), 1, "{report}");
    assert_eq!(azure.write_calls(), 0);

    // The next run reads the cluster afresh: a failure is remembered for one run only.
    let again = Reconciler::new("demo", NS)
        .provider(&p)
        .desired(&manifest(three))
        .run()
        .await
        .unwrap();
    assert!(again.is_ok(), "{again}");
}

/// When one joined read gives up, the bind stops: an identity that does not exist (a 404, for
/// good) ends the bind, and the cluster read beside it (failing with 503s) is dropped instead
/// of going on to its own six attempts.
#[tokio::test]
async fn a_joined_read_does_not_outlive_its_siblings_failure() {
    let azure = fake();
    let p = provider(&azure).await;
    azure.reset_calls();
    azure.inject_failures(Some("ManagedClusters_Get"), ErrorKind::Unavailable, 1_000);
    azure.set_latency(Duration::from_millis(5));
    let b = Binding::new(
        Workload::for_service(NS, "demo", "api").unwrap(),
        Connection::azure_managed_identity(
            AzureIdentityName::parse("no-such-identity").unwrap(),
            AzureResourceGroup::parse(RG).unwrap(),
        ),
    );
    let e = p.bind(&b).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains("no-such-identity"), "{e}");
    assert_eq!(
        azure.call_count("ManagedClusters_Get"),
        1,
        "the cluster read stops with the bind: {:?}",
        azure.calls()
    );
}
