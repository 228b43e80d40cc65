//! The shared conformance suite, concurrency across providers, every bind path and every verify
//! finding, on the in-memory fake ARM.
#![cfg(feature = "fake")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use futures_util::future::join_all;
use porter_identity_azure::fake::{BUILT_IN_ROLES, FakeAzure};
use porter_identity_azure::{
    AzureWorkloadIdentityProvider, CLIENT_ID_ANNOTATION, USE_LABEL, codes,
};
use porter_identity_core::{
    AzureIdentityName, AzureResourceGroup, BindChange, Binding, Connection, ErrorKind, PlanAction,
    RetryPolicy, Severity, UnbindOutcome, VerifyReport, Workload, WorkloadIdentityProvider,
    testing,
};

const RG: &str = "rg";
const CLUSTER_RG: &str = "aks-rg";
const CLUSTER: &str = "prod";
const ISSUER: &str = "https://eastus.oic.prod-aks.azure.com/tenant/prod/";
const AUDIENCE: &str = "api://AzureADTokenExchange";

fn fake() -> FakeAzure {
    let azure = FakeAzure::new();
    azure.add_aks_cluster(CLUSTER_RG, CLUSTER, ISSUER);
    azure
}

fn retry() -> RetryPolicy {
    RetryPolicy::default()
        .initial_backoff(Duration::from_millis(1))
        .max_backoff(Duration::from_millis(20))
}

async fn provider(azure: &FakeAzure) -> AzureWorkloadIdentityProvider {
    provider_with(azure, retry()).await
}

async fn provider_with(azure: &FakeAzure, retry: RetryPolicy) -> AzureWorkloadIdentityProvider {
    AzureWorkloadIdentityProvider::builder()
        .aks_cluster(CLUSTER_RG, CLUSTER)
        .api(azure.clone())
        .retry_policy(retry)
        .build()
        .await
        .unwrap()
}

/// Deploy processes racing on one identity: Azure refuses all but one write at a time, so
/// each process retries often; give them the attempts a real deadline would.
async fn racing(azure: &FakeAzure) -> Vec<AzureWorkloadIdentityProvider> {
    let retry = RetryPolicy::default()
        .max_attempts(50)
        .initial_backoff(Duration::from_millis(2))
        .max_backoff(Duration::from_millis(40));
    let mut providers = Vec::new();
    for _ in 0..3 {
        providers.push(provider_with(azure, retry.clone()).await);
    }
    providers
}

fn binding(namespace: &str, app: &str, service: &str, identity: &str) -> Binding {
    Binding::new(
        Workload::for_service(namespace, app, service).unwrap(),
        Connection::azure_managed_identity(
            AzureIdentityName::parse(identity).unwrap(),
            AzureResourceGroup::parse(RG).unwrap(),
        ),
    )
}

/// The suite's identity `i` of workload `w`: workloads are spread over identities ten at a
/// time, so that no identity reaches Azure's 20 credentials.
fn suite_identity(workload: usize, identity: usize) -> String {
    format!("identity-{identity}-{}", workload / 10)
}

fn factory(workload: usize, identity: usize) -> Binding {
    binding(
        "apps",
        "shop",
        &format!("svc-{workload}"),
        &suite_identity(workload, identity),
    )
}

/// A fake with every identity the suite's workloads use.
fn suite_fake() -> FakeAzure {
    let azure = fake();
    for bucket in 0..=400 {
        for i in 0..2 {
            azure.add_identity(RG, &suite_identity(bucket * 10, i));
        }
    }
    azure
}

fn codes_of(report: &VerifyReport, severity: Severity) -> BTreeSet<String> {
    report.of(severity).map(|f| f.code.clone()).collect()
}

#[tokio::test]
async fn fake_passes_the_conformance_suite() {
    let azure = suite_fake();
    let p = provider(&azure).await;
    testing::run_all(&p, &factory).await;
    testing::transient_failures_are_retried(&p, &factory, &|n| {
        azure.inject_failures(None, ErrorKind::Throttled, n);
    })
    .await;
    testing::another_owners_link_is_never_touched(&p, &factory).await;
    testing::refused_concurrent_writes_are_retried(&p, &factory, &|n| {
        for op in [
            "FederatedIdentityCredentials_CreateOrUpdate",
            "FederatedIdentityCredentials_Delete",
        ] {
            azure.inject_failures(Some(op), ErrorKind::Conflict, n);
        }
    })
    .await;
}

#[tokio::test]
async fn two_deploy_processes_reconciling_at_once_converge() {
    let azure = suite_fake();
    azure.set_latency(Duration::from_millis(5));
    let (a, b) = (provider(&azure).await, provider(&azure).await);
    testing::concurrent_reconciles_converge(&a, &b, &factory).await;
}

#[tokio::test]
async fn bind_makes_a_credential_and_says_what_the_service_account_needs() {
    let azure = fake();
    let identity = azure.add_identity(RG, "shop-api");
    let p = provider(&azure).await;
    let b = binding("prod", "shop", "api", "shop-api");
    let created = p.bind(&b).await.unwrap();
    assert_eq!(created.change, BindChange::Created);
    let patch = &created.service_account_patch;
    assert_eq!(patch.annotations[CLIENT_ID_ANNOTATION], identity.client_id);
    assert_eq!(patch.pod_labels[USE_LABEL], "true");
    assert!(patch.needs_pod_restart);
    let made = azure.credentials(RG, "shop-api");
    assert_eq!(made.len(), 1);
    assert_eq!(made[0].issuer, ISSUER);
    assert_eq!(made[0].subject, "system:serviceaccount:prod:shop-api");
    assert_eq!(made[0].audiences, [AUDIENCE]);
    assert!(made[0].name.starts_with("pi_shop_api_"), "{}", made[0].name);
    assert_eq!(created.resource_id, made[0].id);

    azure.reset_calls();
    let again = p.bind(&b).await.unwrap();
    assert_eq!(again.change, BindChange::Unchanged);
    assert!(!again.service_account_patch.needs_pod_restart);
    assert_eq!(
        again.service_account_patch.annotations[CLIENT_ID_ANNOTATION],
        identity.client_id
    );
    assert_eq!(azure.write_calls(), 0);
    // The cluster and the identity were read once per provider: only the list now.
    assert_eq!(azure.call_count("FederatedIdentityCredentials_List"), 1);
    assert_eq!(
        azure.calls().values().sum::<u64>(),
        1,
        "{:?}",
        azure.calls()
    );
}

#[tokio::test]
async fn a_credential_under_another_name_is_adopted_and_its_audience_fixed() {
    let azure = fake();
    azure.add_identity(RG, "shop-api");
    let subject = "system:serviceaccount:prod:shop-api";
    azure.add_credential(
        RG,
        "shop-api",
        "made-by-hand",
        ISSUER,
        subject,
        &["api://other"],
    );
    let p = provider(&azure).await;
    let b = binding("prod", "shop", "api", "shop-api");
    let plan = p.plan(&b).await.unwrap();
    assert!(matches!(plan.action, PlanAction::Update { .. }), "{plan:?}");
    let fixed = p.bind(&b).await.unwrap();
    assert!(
        matches!(fixed.change, BindChange::Updated { .. }),
        "{fixed:?}"
    );
    let held = azure.credentials(RG, "shop-api");
    assert_eq!(held.len(), 1, "fixed in place, not duplicated");
    assert_eq!(held[0].name, "made-by-hand");
    assert_eq!(held[0].audiences, [AUDIENCE]);
    assert_eq!(p.bind(&b).await.unwrap().change, BindChange::Unchanged);
}

#[tokio::test]
async fn a_full_identity_is_refused_before_any_write_listing_what_it_holds() {
    let azure = fake();
    azure.add_identity(RG, "full");
    for i in 0..20 {
        azure.add_credential(
            RG,
            "full",
            &format!("c{i:02}"),
            ISSUER,
            &format!("system:serviceaccount:other:sa-{i}"),
            &[AUDIENCE],
        );
    }
    let p = provider(&azure).await;
    let err = p
        .bind(&binding("prod", "shop", "api", "full"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LimitExceeded, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("rg/full") && text.contains("system:serviceaccount:other:sa-19"),
        "{text}"
    );
    assert!(
        err.fix()
            .unwrap()
            .contains("az identity federated-credential delete"),
        "{err}"
    );
    assert_eq!(azure.write_calls(), 0);
    assert_eq!(
        p.plan(&binding("prod", "shop", "api", "full"))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::LimitExceeded
    );
}

#[tokio::test]
async fn unbind_deletes_the_credential_whatever_its_name_and_absent_is_success() {
    let azure = fake();
    azure.add_identity(RG, "shop-api");
    let subject = "system:serviceaccount:prod:shop-api";
    azure.add_credential(RG, "shop-api", "made-by-hand", ISSUER, subject, &[AUDIENCE]);
    azure.add_credential(
        RG,
        "shop-api",
        "other-cluster",
        "https://other/",
        subject,
        &[AUDIENCE],
    );
    let p = provider(&azure).await;
    let b = binding("prod", "shop", "api", "shop-api");
    assert!(matches!(
        p.unbind(&b).await.unwrap(),
        UnbindOutcome::Deleted { .. }
    ));
    let left: Vec<_> = azure
        .credentials(RG, "shop-api")
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(
        left,
        ["other-cluster"],
        "another cluster's credential stays"
    );
    assert_eq!(p.unbind(&b).await.unwrap(), UnbindOutcome::AlreadyAbsent);
    // A deleted identity has nothing left to unbind.
    azure.delete_identity(RG, "shop-api");
    assert_eq!(p.unbind(&b).await.unwrap(), UnbindOutcome::AlreadyAbsent);
}

#[tokio::test]
async fn a_missing_identity_is_not_found_with_the_command_that_makes_it() {
    let azure = fake();
    let p = provider(&azure).await;
    let err = p
        .bind(&binding("prod", "shop", "api", "ghost"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains("service api"), "{err}");
    assert!(
        err.fix()
            .unwrap()
            .contains("az identity create --resource-group rg --name ghost"),
        "{err}"
    );
}

#[tokio::test]
async fn an_oidc_issuer_that_is_off_says_the_az_command() {
    let azure = fake();
    azure.add_identity(RG, "shop-api");
    azure.set_oidc_issuer_enabled(CLUSTER_RG, CLUSTER, false);
    let p = provider(&azure).await;
    let err = p
        .bind(&binding("prod", "shop", "api", "shop-api"))
        .await
        .unwrap_err();
    assert_eq!(
        err.fix(),
        Some(
            "az aks update --resource-group aks-rg --name prod --enable-oidc-issuer --enable-workload-identity"
        )
    );
    assert_eq!(azure.write_calls(), 0);
}

#[tokio::test]
async fn an_explicit_issuer_skips_the_aks_read() {
    let azure = FakeAzure::new();
    azure.add_identity(RG, "shop-api");
    let issuer = "https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE";
    let p = AzureWorkloadIdentityProvider::builder()
        .issuer(issuer)
        .api(azure.clone())
        .retry_policy(retry())
        .build()
        .await
        .unwrap();
    let b = binding("prod", "shop", "api", "shop-api");
    assert_eq!(p.bind(&b).await.unwrap().change, BindChange::Created);
    assert_eq!(azure.call_count("ManagedClusters_Get"), 0);
    assert_eq!(azure.credentials(RG, "shop-api")[0].issuer, issuer);
    let report = p.verify(&b).await.unwrap();
    assert!(report.is_healthy(), "{report}");
    assert!(report.has(codes::ISSUER_EXPLICIT), "{report}");
}

// ---- concurrency: each provider stands for a deploy process ----------------------------------

#[tokio::test]
async fn three_processes_binding_fifteen_workloads_to_one_identity_all_succeed() {
    let azure = fake();
    azure.add_identity(RG, "shared");
    // Writes hold the identity for the latency: concurrent ones get Azure's 409.
    azure.set_latency(Duration::from_millis(3));
    let providers = racing(&azure).await;
    let bindings: Vec<Binding> = (0..15)
        .map(|i| binding("prod", "shop", &format!("svc-{i}"), "shared"))
        .collect();
    let results = join_all(
        bindings
            .iter()
            .enumerate()
            .map(|(i, b)| providers[i % 3].bind(b)),
    )
    .await;
    for (b, r) in bindings.iter().zip(&results) {
        assert_eq!(
            r.as_ref().unwrap_or_else(|e| panic!("{b}: {e}")).change,
            BindChange::Created
        );
    }
    assert_eq!(azure.credentials(RG, "shared").len(), 15);
    assert!(
        azure.call_count("FederatedIdentityCredentials_CreateOrUpdate") > 15,
        "the processes raced (409s retried): {:?}",
        azure.calls()
    );
}

#[tokio::test]
async fn twenty_five_workloads_onto_one_identity_make_twenty_and_five_clear_errors() {
    let azure = fake();
    azure.add_identity(RG, "shared");
    azure.set_latency(Duration::from_millis(3));
    let providers = racing(&azure).await;
    let bindings: Vec<Binding> = (0..25)
        .map(|i| binding("prod", "shop", &format!("svc-{i}"), "shared"))
        .collect();
    let results = join_all(
        bindings
            .iter()
            .enumerate()
            .map(|(i, b)| providers[i % 3].bind(b)),
    )
    .await;
    let made = results.iter().filter(|r| r.is_ok()).count();
    let limited: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(made, 20);
    assert_eq!(limited.len(), 5, "{limited:?}");
    for e in limited {
        assert_eq!(e.kind(), ErrorKind::LimitExceeded, "{e}");
        assert!(e.to_string().contains("holds 20"), "{e}");
    }
    let held = azure.credentials(RG, "shared");
    assert_eq!(held.len(), 20);
    for c in &held {
        assert_eq!(c.issuer, ISSUER);
        assert_eq!(c.audiences, [AUDIENCE], "{} damaged", c.name);
        assert!(
            c.subject
                .starts_with("system:serviceaccount:prod:shop-svc-")
        );
    }
}

#[tokio::test]
async fn one_provider_binding_twenty_workloads_to_one_identity_provokes_no_409() {
    let azure = fake();
    azure.add_identity(RG, "shared");
    azure.set_latency(Duration::from_millis(2));
    let p = provider(&azure).await;
    let bindings: Vec<Binding> = (0..20)
        .map(|i| binding("prod", "shop", &format!("svc-{i}"), "shared"))
        .collect();
    // Both ways: a batch, and twenty single binds at once.
    for r in p
        .bind_all(&porter_identity_core::RunContext::apply(), &bindings[..10])
        .await
    {
        assert_eq!(r.unwrap().change, BindChange::Created);
    }
    for r in join_all(bindings[10..].iter().map(|b| p.bind(b))).await {
        assert_eq!(r.unwrap().change, BindChange::Created);
    }
    assert_eq!(
        azure.call_count("FederatedIdentityCredentials_CreateOrUpdate"),
        20,
        "writes to one identity are serialised inside a provider: no 409, no retry"
    );
}

// ---- verify -------------------------------------------------------------------------------

#[tokio::test]
async fn verify_is_healthy_after_bind_and_reports_each_cluster_problem() {
    let azure = fake();
    azure.add_identity(RG, "shop-api");
    let p = provider(&azure).await;
    let b = binding("prod", "shop", "api", "shop-api");
    p.bind(&b).await.unwrap();
    let report = p.verify(&b).await.unwrap();
    assert!(report.is_healthy(), "{report}");
    assert!(codes_of(&report, Severity::Warning).is_empty(), "{report}");

    azure.set_workload_identity_enabled(CLUSTER_RG, CLUSTER, false);
    let report = p.verify(&b).await.unwrap();
    assert!(
        codes_of(&report, Severity::Error).contains(codes::WORKLOAD_IDENTITY_DISABLED),
        "{report}"
    );
    azure.set_oidc_issuer_enabled(CLUSTER_RG, CLUSTER, false);
    let report = p.verify(&b).await.unwrap();
    assert!(
        codes_of(&report, Severity::Error).contains(codes::OIDC_ISSUER_DISABLED),
        "{report}"
    );
    let finding = report
        .findings
        .iter()
        .find(|f| f.code == codes::OIDC_ISSUER_DISABLED)
        .unwrap();
    assert!(
        finding.remediation.contains("--enable-oidc-issuer"),
        "{finding}"
    );
    // The finding says what is wrong in words, not as a failed call.
    assert!(finding.message.starts_with("the OIDC issuer"), "{finding}");

    let gone = FakeAzure::new();
    gone.add_identity(RG, "shop-api");
    let report = provider(&gone).await.verify(&b).await.unwrap();
    assert!(
        codes_of(&report, Severity::Error).contains(codes::CLUSTER_NOT_FOUND),
        "{report}"
    );
}

#[tokio::test]
async fn verify_reports_each_identity_and_credential_problem() {
    let azure = fake();
    let p = provider(&azure).await;
    let b = binding("prod", "shop", "api", "shop-api");
    let report = p.verify(&b).await.unwrap();
    assert!(
        codes_of(&report, Severity::Error).contains(codes::IDENTITY_NOT_FOUND),
        "{report}"
    );

    azure.add_identity(RG, "shop-api");
    let report = p.verify(&b).await.unwrap();
    assert!(
        codes_of(&report, Severity::Error).contains(codes::CREDENTIAL_MISSING),
        "{report}"
    );
    // The fix names the exact credential bind would create.
    let fix = &report
        .findings
        .iter()
        .find(|f| f.code == codes::CREDENTIAL_MISSING)
        .unwrap()
        .remediation;
    let name = porter_identity_azure::credential_name(ISSUER, &b.workload);
    for part in [
        "az identity federated-credential create --resource-group rg --identity-name shop-api",
        &format!("--name {name} --issuer {ISSUER}"),
        "--subject system:serviceaccount:prod:shop-api --audiences api://AzureADTokenExchange",
    ] {
        assert!(fix.contains(part), "{part} not in: {fix}");
    }

    // An issuer that differs only by its trailing slash never matches: say so.
    let subject = "system:serviceaccount:prod:shop-api";
    azure.add_credential(
        RG,
        "shop-api",
        "almost",
        ISSUER.trim_end_matches('/'),
        subject,
        &[AUDIENCE],
    );
    let report = p.verify(&b).await.unwrap();
    let missing = report
        .findings
        .iter()
        .find(|f| f.code == codes::CREDENTIAL_MISSING)
        .unwrap();
    assert!(missing.message.contains("trailing slash"), "{missing}");

    azure.add_credential(
        RG,
        "shop-api",
        "wrong-audience",
        ISSUER,
        subject,
        &["api://other"],
    );
    let report = p.verify(&b).await.unwrap();
    assert!(
        codes_of(&report, Severity::Error).contains(codes::CREDENTIAL_WRONG_AUDIENCE),
        "{report}"
    );
    let wrong = report
        .findings
        .iter()
        .find(|f| f.code == codes::CREDENTIAL_WRONG_AUDIENCE)
        .unwrap();
    assert!(
        wrong.remediation.contains(
            "az identity federated-credential update --resource-group rg --identity-name shop-api --name wrong-audience --audiences api://AzureADTokenExchange"
        ),
        "{wrong}"
    );
}

#[tokio::test]
async fn verify_warns_when_the_identity_is_nearly_full_or_shared() {
    let azure = fake();
    azure.add_identity(RG, "busy");
    for i in 0..17 {
        azure.add_credential(
            RG,
            "busy",
            &format!("c{i}"),
            ISSUER,
            &format!("system:serviceaccount:x:sa-{i}"),
            &[AUDIENCE],
        );
    }
    let p = provider(&azure).await;
    let b = binding("prod", "shop", "api", "busy");
    p.bind(&b).await.unwrap();
    let report = p.verify(&b).await.unwrap();
    let warnings = codes_of(&report, Severity::Warning);
    assert!(warnings.contains(codes::CREDENTIAL_LIMIT_NEAR), "{report}");
    assert!(warnings.contains(codes::LINT_SHARED_IDENTITY), "{report}");
    assert!(report.is_healthy(), "warnings only: {report}");
}

#[tokio::test]
async fn verify_lints_the_identitys_role_assignments() {
    let azure = fake();
    let identity = azure.add_identity(RG, "broad");
    let owner = BUILT_IN_ROLES[0].0;
    let blob_reader = BUILT_IN_ROLES[4].0;
    azure.assign_role(
        &identity.principal_id,
        owner,
        &azure.resource_group_scope("data"),
    );
    azure.assign_role(
        &identity.principal_id,
        blob_reader,
        &azure.subscription_scope(),
    );
    azure.assign_role(
        &identity.principal_id,
        blob_reader,
        &format!(
            "{}/providers/Microsoft.Storage/storageAccounts/one",
            azure.resource_group_scope("data")
        ),
    );
    let p = provider(&azure).await;
    let b = binding("prod", "shop", "api", "broad");
    p.bind(&b).await.unwrap();
    let report = p.verify(&b).await.unwrap();
    assert!(report.is_healthy(), "lint findings are warnings: {report}");
    let broad_role: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.code == codes::LINT_BROAD_ROLE)
        .collect();
    let broad_scope: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.code == codes::LINT_BROAD_SCOPE)
        .collect();
    assert_eq!(broad_role.len(), 1, "{report}");
    assert!(broad_role[0].message.contains("Owner"), "{report}");
    assert_eq!(
        broad_scope.len(),
        1,
        "the resource-scoped assignment is fine: {report}"
    );
    assert!(
        broad_scope[0].message.contains("Storage Blob Data Reader"),
        "{report}"
    );

    // Without the right to read role assignments: a warning, not a failed verify.
    azure.inject_failures(
        Some("RoleAssignments_ListForScope"),
        ErrorKind::PermissionDenied,
        1,
    );
    let report = p.verify(&b).await.unwrap();
    assert!(
        codes_of(&report, Severity::Warning).contains(codes::LINT_ROLES_UNREADABLE),
        "{report}"
    );
}

#[tokio::test]
async fn another_apps_credential_is_reported_by_verify() {
    // app `shop` + service `admin-api` and app `shop-admin` + service `api`: one subject.
    let azure = fake();
    azure.add_identity(RG, "shared");
    let p = provider(&azure).await;
    let owner = binding("prod", "shop", "admin-api", "shared");
    let intruder = binding("prod", "shop-admin", "api", "shared");
    p.bind(&owner).await.unwrap();
    let err = p.bind(&intruder).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(
        err.to_string()
            .contains("service `admin-api` of app `shop`"),
        "{err}"
    );
    let report = p.verify(&intruder).await.unwrap();
    assert!(
        codes_of(&report, Severity::Error).contains(codes::CREDENTIAL_OTHER_OWNER),
        "{report}"
    );
    assert_eq!(
        p.unbind(&intruder).await.unwrap_err().kind(),
        ErrorKind::Conflict
    );
    assert_eq!(azure.credentials(RG, "shared").len(), 1);
}

#[tokio::test]
async fn a_down_endpoint_costs_one_budget() {
    let cloud = suite_fake();
    let p = provider(&cloud).await;
    testing::a_down_endpoint_costs_one_budget(
        &p,
        &factory,
        retry().get_max_attempts(),
        &|| {
            cloud.inject_failures(None, ErrorKind::Unavailable, 1_000_000);
        },
        &|| cloud.calls().values().sum(),
    )
    .await;
}

/// Five deploy processes (five providers, each with its own state) bind four workloads each to
/// one identity at once, with the default `RetryPolicy`, while each write holds the identity
/// for the fake's latency (Azure answers the concurrent-writes 409 meanwhile). Returns the wall
/// time (on the paused clock) and the 409s suffered, after checking that all 20 bound, once.
async fn five_processes_on_one_identity(azure: &FakeAzure, identity: &str) -> (Duration, u64) {
    azure.add_identity(RG, identity);
    let mut processes = Vec::new();
    for _ in 0..5 {
        processes.push(provider_with(azure, RetryPolicy::default()).await);
    }
    let puts = || azure.call_count("FederatedIdentityCredentials_CreateOrUpdate");
    let before = puts();
    let wall = testing::contended_binds_all_succeed(&processes, 4, &|p, w| {
        binding("prod", "shop", &format!("p{p}-w{w}"), identity)
    })
    .await;
    assert_eq!(azure.credentials(RG, identity).len(), 20, "{identity}");
    (wall, puts() - before - 20)
}

#[tokio::test(start_paused = true)]
async fn five_processes_on_one_identity_all_bind_with_the_default_policy() {
    // 150 ms per write: ten rounds in a row, none failing.
    let azure = fake();
    azure.set_latency(Duration::from_millis(150));
    for round in 0..10 {
        five_processes_on_one_identity(&azure, &format!("busy-150ms-{round}")).await;
    }
    // 1 s per write: the identity is busy 20 s at least; all bind within 1.5 × that.
    let azure = fake();
    azure.set_latency(Duration::from_secs(1));
    let (wall, refused) = five_processes_on_one_identity(&azure, "busy-1s").await;
    assert!(wall <= Duration::from_secs(30), "{wall:?}, {refused} 409s");
}

#[tokio::test(start_paused = true)]
async fn an_identity_busy_past_the_deadline_fails_clearly_and_half_writes_nothing() {
    let azure = fake();
    azure.add_identity(RG, "always-busy");
    azure.inject_failures(
        Some("FederatedIdentityCredentials_CreateOrUpdate"),
        ErrorKind::Conflict,
        1_000_000,
    );
    let p = provider_with(&azure, RetryPolicy::default()).await;
    let e = p
        .bind(&binding("prod", "shop", "api", "always-busy"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    let fix = e.fix().expect("a fix");
    assert!(fix.contains("another writer"), "{fix}");
    assert!(fix.contains("RetryPolicy::deadline"), "{fix}");
    assert!(azure.credentials(RG, "always-busy").is_empty());
}
