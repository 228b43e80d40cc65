//! The shared conformance suite, concurrency (across providers and against a foreign writer),
//! every bind path and every verify finding, on the in-memory fake.
#![cfg(feature = "fake")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use futures_util::future::join_all;
use porter_identity_core::{
    BindChange, Binding, Connection, ErrorKind, GcpServiceAccountEmail, PlanAction, RetryPolicy,
    Severity, UnbindOutcome, VerifyReport, Workload, WorkloadIdentityProvider, testing,
};
use porter_identity_gcp::WORKLOAD_IDENTITY_USER;
use porter_identity_gcp::fake::FakeGcp;
use porter_identity_gcp::{GCP_SERVICE_ACCOUNT_ANNOTATION, GcpWorkloadIdentityProvider, codes};

const PROJECT: &str = "demo-project-123456";
const LOCATION: &str = "us-central1";
const CLUSTER: &str = "prod";
const POOL: &str = "demo-project-123456.svc.id.goog";

fn email(account: &str) -> String {
    format!("{account}@{PROJECT}.iam.gserviceaccount.com")
}

fn fake() -> FakeGcp {
    let gcp = FakeGcp::new();
    gcp.add_gke_cluster(PROJECT, LOCATION, CLUSTER);
    gcp
}

fn retry() -> RetryPolicy {
    RetryPolicy::default()
        .initial_backoff(Duration::from_millis(1))
        .max_backoff(Duration::from_millis(20))
}

async fn provider(gcp: &FakeGcp) -> GcpWorkloadIdentityProvider {
    provider_with(gcp, retry()).await
}

async fn provider_with(gcp: &FakeGcp, retry: RetryPolicy) -> GcpWorkloadIdentityProvider {
    GcpWorkloadIdentityProvider::builder()
        .gke_cluster(PROJECT, LOCATION, CLUSTER)
        .api(gcp.clone())
        .retry_policy(retry)
        .build()
        .await
        .unwrap()
}

fn binding(namespace: &str, app: &str, service: &str, account: &str) -> Binding {
    Binding::new(
        Workload::for_service(namespace, app, service).unwrap(),
        Connection::gcp_service_account(GcpServiceAccountEmail::parse(&email(account)).unwrap()),
    )
}

fn member(namespace: &str, ksa: &str) -> String {
    format!("serviceAccount:{POOL}[{namespace}/{ksa}]")
}

fn factory(workload: usize, identity: usize) -> Binding {
    binding(
        "conformance",
        "app",
        &format!("svc-{workload}"),
        &format!("suite-sa-{identity}"),
    )
}

fn suite_fake() -> FakeGcp {
    let gcp = fake();
    gcp.add_service_account(&email("suite-sa-0"));
    gcp.add_service_account(&email("suite-sa-1"));
    gcp
}

fn codes_of(report: &VerifyReport, severity: Severity) -> BTreeSet<String> {
    report.of(severity).map(|f| f.code.clone()).collect()
}

#[tokio::test]
async fn fake_passes_the_conformance_suite() {
    let gcp = suite_fake();
    let p = provider(&gcp).await;
    testing::run_all(&p, &factory).await;
    testing::transient_failures_are_retried(&p, &factory, &|n| {
        gcp.inject_failures(None, ErrorKind::Throttled, n);
    })
    .await;
    testing::refused_concurrent_writes_are_retried(&p, &factory, &|n| {
        gcp.interfere_with_writes(n);
    })
    .await;
}

#[tokio::test]
async fn two_deploy_processes_reconciling_at_once_converge() {
    let gcp = suite_fake();
    gcp.set_latency(Duration::from_millis(5));
    let (a, b) = (provider(&gcp).await, provider(&gcp).await);
    testing::concurrent_reconciles_converge(&a, &b, &factory).await;
}

#[tokio::test]
async fn bind_adds_the_member_and_keeps_everything_else_exactly() {
    let gcp = fake();
    let sa = email("shop-api");
    gcp.add_service_account(&sa)
        .grant(&sa, "roles/iam.serviceAccountUser", "user:ana@example.com")
        .grant(&sa, WORKLOAD_IDENTITY_USER, &member("other", "worker"))
        .grant_conditional(
            &sa,
            WORKLOAD_IDENTITY_USER,
            &member("batch", "nightly"),
            "nightly-only",
            "request.time.getHours('UTC') < 6",
        )
        .add_audit_config(&sa, "allServices");
    let before = gcp.policy_json(&sa).unwrap();
    let p = provider(&gcp).await;
    let b = binding("shop", "shop", "api", "shop-api");

    let outcome = p.bind(&b).await.unwrap();
    assert_eq!(outcome.change, BindChange::Created);
    let patch = &outcome.service_account_patch;
    assert_eq!(patch.annotations[GCP_SERVICE_ACCOUNT_ANNOTATION], sa);
    assert!(patch.needs_pod_restart);
    assert!(
        outcome.resource_id.contains(&member("shop", "shop-api")),
        "{outcome}"
    );

    let after = gcp.policy_json(&sa).unwrap();
    assert_eq!(after["version"], 3, "version 3 kept: {after}");
    assert_eq!(after["auditConfigs"], before["auditConfigs"]);
    let bindings = after["bindings"].as_array().unwrap();
    assert_eq!(
        bindings[0], before["bindings"][0],
        "another role's binding untouched"
    );
    assert_eq!(
        bindings[2], before["bindings"][2],
        "the conditional binding untouched"
    );
    assert_eq!(
        gcp.workload_identity_users(&sa),
        vec![member("other", "worker"), member("shop", "shop-api")],
        "the other member stays"
    );

    let writes = gcp.write_calls();
    let again = p.bind(&b).await.unwrap();
    assert_eq!(again.change, BindChange::Unchanged);
    assert!(!again.service_account_patch.needs_pod_restart);
    assert_eq!(
        gcp.write_calls(),
        writes,
        "an unchanged bind writes nothing"
    );
}

#[tokio::test]
async fn a_stale_etag_redoes_the_cycle_and_loses_nothing_of_the_other_writer() {
    let gcp = fake();
    let sa = email("shop-api");
    gcp.add_service_account(&sa).interfere_with_writes(3);
    let p = provider(&gcp).await;
    let outcome = p
        .bind(&binding("shop", "shop", "api", "shop-api"))
        .await
        .unwrap();
    assert_eq!(outcome.change, BindChange::Created);
    assert_eq!(gcp.interloper_writes(), 3);
    assert_eq!(
        gcp.calls()["setIamPolicy"],
        4,
        "three stale writes, then one"
    );
    assert_eq!(gcp.calls()["getIamPolicy"], 4, "each cycle read afresh");
    let tokens = gcp.members(&sa, "roles/iam.serviceAccountTokenCreator");
    assert_eq!(
        tokens.len(),
        3,
        "every interloper's member is kept: {tokens:?}"
    );
    assert_eq!(
        gcp.workload_identity_users(&sa),
        vec![member("shop", "shop-api")]
    );
}

/// A stale etag is contention: retried until the deadline (not only max_attempts times), and a
/// writer that never stops interfering ends in a clear conflict counting the attempts.
#[tokio::test(start_paused = true)]
async fn a_writer_that_never_stops_interfering_ends_in_a_clear_conflict() {
    let gcp = fake();
    let sa = email("shop-api");
    gcp.add_service_account(&sa)
        .interfere_with_writes(1_000_000);
    let policy = RetryPolicy::default().deadline(Duration::from_secs(10));
    let p = provider_with(&gcp, policy).await;
    let e = p
        .bind(&binding("shop", "shop", "api", "shop-api"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    let sets = gcp.calls()["setIamPolicy"];
    assert!(sets > 6, "past max_attempts, up to the deadline: {sets}");
    let fix = e.fix().expect("says what to do");
    assert!(fix.contains(&format!("tried {sets} times")), "{fix}");
    assert!(fix.contains("RetryPolicy::deadline"), "{fix}");
    assert!(
        gcp.workload_identity_users(&sa).is_empty(),
        "nothing half-written"
    );
}

#[tokio::test]
async fn a_missing_service_account_is_not_found_with_the_gcloud_command() {
    let gcp = fake();
    let p = provider(&gcp).await;
    let b = binding("shop", "shop", "api", "not-made");
    for e in [p.bind(&b).await.unwrap_err(), p.plan(&b).await.unwrap_err()] {
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        let fix = e.fix().unwrap();
        assert!(
            fix.contains(
                "gcloud iam service-accounts create not-made --project demo-project-123456"
            ),
            "{fix}"
        );
    }
    assert_eq!(gcp.write_calls(), 0);
    assert_eq!(p.unbind(&b).await.unwrap(), UnbindOutcome::AlreadyAbsent);
}

#[tokio::test]
async fn a_disabled_service_account_is_refused_before_any_write() {
    let gcp = fake();
    let sa = email("shop-api");
    gcp.add_service_account(&sa).set_disabled(&sa, true);
    let p = provider(&gcp).await;
    let b = binding("shop", "shop", "api", "shop-api");
    let e = p.bind(&b).await.unwrap_err();
    assert!(e.to_string().contains("disabled"), "{e}");
    assert!(
        e.fix()
            .unwrap()
            .contains("gcloud iam service-accounts enable"),
        "{e}"
    );
    assert!(p.plan(&b).await.is_err(), "plan fails where bind would");
    assert_eq!(gcp.write_calls(), 0);
    gcp.set_disabled(&sa, false);
    assert_eq!(
        p.bind(&b).await.unwrap().change,
        BindChange::Created,
        "a failed check is not kept"
    );
}

#[tokio::test]
async fn workload_identity_off_says_the_gcloud_command_and_writes_nothing() {
    let gcp = fake();
    gcp.add_service_account(&email("shop-api"))
        .set_workload_identity(PROJECT, LOCATION, CLUSTER, false);
    let p = provider(&gcp).await;
    let e = p
        .bind(&binding("shop", "shop", "api", "shop-api"))
        .await
        .unwrap_err();
    assert_eq!(
        e.fix(),
        Some(
            "gcloud container clusters update prod --location us-central1 --project demo-project-123456 --workload-pool=demo-project-123456.svc.id.goog"
        )
    );
    assert_eq!(gcp.write_calls(), 0);
    let report = p
        .verify(&binding("shop", "shop", "api", "shop-api"))
        .await
        .unwrap();
    assert!(report.has(codes::WORKLOAD_IDENTITY_DISABLED), "{report}");
}

#[tokio::test]
async fn a_missing_cluster_is_not_found() {
    let gcp = FakeGcp::new();
    gcp.add_service_account(&email("shop-api"));
    let p = provider(&gcp).await;
    let b = binding("shop", "shop", "api", "shop-api");
    let e = p.bind(&b).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(
        e.to_string()
            .contains("demo-project-123456/us-central1/prod"),
        "{e}"
    );
    assert!(p.verify(&b).await.unwrap().has(codes::CLUSTER_NOT_FOUND));
}

#[tokio::test]
async fn an_explicit_pool_skips_the_gke_read_and_an_unknown_pool_is_named() {
    let gcp = FakeGcp::new();
    let sa = email("shop-api");
    gcp.add_service_account(&sa)
        .add_workload_pool("fleet-host-1.svc.id.goog");
    let p = GcpWorkloadIdentityProvider::builder()
        .workload_pool("fleet-host-1.svc.id.goog")
        .api(gcp.clone())
        .retry_policy(retry())
        .build()
        .await
        .unwrap();
    let b = binding("shop", "shop", "api", "shop-api");
    assert_eq!(p.bind(&b).await.unwrap().change, BindChange::Created);
    assert!(
        !gcp.calls().contains_key("clusters.get"),
        "{:?}",
        gcp.calls()
    );
    assert_eq!(
        gcp.workload_identity_users(&sa),
        vec!["serviceAccount:fleet-host-1.svc.id.goog[shop/shop-api]".to_owned()]
    );
    let report = p.verify(&b).await.unwrap();
    assert!(
        codes_of(&report, Severity::Info).contains(codes::POOL_EXPLICIT),
        "{report}"
    );
    assert!(codes_of(&report, Severity::Info).contains(codes::SERVICE_ACCOUNT_OTHER_PROJECT));

    let nowhere = GcpWorkloadIdentityProvider::builder()
        .workload_pool("no-wi-project.svc.id.goog")
        .api(gcp.clone())
        .retry_policy(retry())
        .build()
        .await
        .unwrap();
    let e = nowhere.bind(&b).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("no-wi-project.svc.id.goog"), "{e}");
    assert!(e.to_string().contains("not enabled on any cluster"), "{e}");
}

#[tokio::test]
async fn permission_denied_names_the_permission_and_the_role() {
    let gcp = fake();
    gcp.add_service_account(&email("shop-api")).inject_failures(
        Some("setIamPolicy"),
        ErrorKind::PermissionDenied,
        1,
    );
    let p = provider(&gcp).await;
    let e = p
        .bind(&binding("shop", "shop", "api", "shop-api"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    let fix = e.fix().unwrap();
    assert!(
        fix.contains("iam.serviceAccounts.setIamPolicy")
            && fix.contains("roles/iam.serviceAccountAdmin"),
        "{fix}"
    );
    assert_eq!(gcp.calls()["setIamPolicy"], 1, "not retried");
}

#[tokio::test]
async fn unbind_removes_only_this_member_and_drops_an_empty_binding() {
    let gcp = fake();
    let sa = email("shop-api");
    gcp.add_service_account(&sa)
        .grant(
            &sa,
            "roles/iam.serviceAccountUser",
            &member("shop", "shop-api"),
        )
        .grant_conditional(
            &sa,
            WORKLOAD_IDENTITY_USER,
            &member("shop", "shop-api"),
            "t",
            "true",
        );
    let p = provider(&gcp).await;
    let api = binding("shop", "shop", "api", "shop-api");
    let worker = binding("shop", "shop", "worker", "shop-api");
    p.bind_all(
        &porter_identity_core::RunContext::apply(),
        &[api.clone(), worker.clone()],
    )
    .await
    .into_iter()
    .for_each(|r| {
        r.unwrap();
    });
    assert!(matches!(
        p.unbind(&api).await.unwrap(),
        UnbindOutcome::Deleted { .. }
    ));
    assert_eq!(
        gcp.workload_identity_users(&sa),
        vec![member("shop", "shop-worker")]
    );
    assert!(matches!(
        p.unbind(&worker).await.unwrap(),
        UnbindOutcome::Deleted { .. }
    ));
    let policy = gcp.policy_json(&sa).unwrap();
    let roles: Vec<&str> = policy["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        ["roles/iam.serviceAccountUser", WORKLOAD_IDENTITY_USER],
        "the empty unconditional binding is dropped; the other role and the conditional one stay: {policy}"
    );
    assert!(policy["bindings"][1].get("condition").is_some());
    assert_eq!(p.unbind(&api).await.unwrap(), UnbindOutcome::AlreadyAbsent);
}

#[tokio::test]
async fn binds_to_one_service_account_coalesce_into_one_or_two_writes() {
    let gcp = fake();
    let sa = email("shared-sa");
    gcp.add_service_account(&sa)
        .set_latency(Duration::from_millis(5));
    let p = provider(&gcp).await;
    let bindings: Vec<Binding> = (0..50)
        .map(|i| binding("shop", "shop", &format!("svc-{i}"), "shared-sa"))
        .collect();
    let results = join_all(bindings.iter().map(|b| p.bind(b))).await;
    assert!(
        results
            .iter()
            .all(|r| r.as_ref().is_ok_and(|o| o.change == BindChange::Created))
    );
    assert!(
        gcp.write_calls() <= 2,
        "50 concurrent binds, {} writes",
        gcp.write_calls()
    );
    assert_eq!(gcp.workload_identity_users(&sa).len(), 50);

    let more: Vec<Binding> = (50..100)
        .map(|i| binding("shop", "shop", &format!("svc-{i}"), "shared-sa"))
        .collect();
    gcp.reset_calls();
    let results = p
        .bind_all(&porter_identity_core::RunContext::apply(), &more)
        .await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(gcp.write_calls(), 1, "a batch is one read-modify-write");
    assert!(
        gcp.calls().get("getIamPolicy").copied().unwrap_or(0) <= 1,
        "the write starts from the policy this provider last wrote: {:?}",
        gcp.calls()
    );
}

#[tokio::test]
async fn three_providers_and_a_foreign_writer_on_one_service_account_lose_nothing() {
    let gcp = fake();
    let sa = email("shared-sa");
    gcp.add_service_account(&sa)
        .grant(&sa, "roles/iam.serviceAccountUser", "group:ops@example.com")
        .set_latency(Duration::from_millis(2));
    let racing = RetryPolicy::default()
        .max_attempts(60)
        .initial_backoff(Duration::from_millis(1))
        .max_backoff(Duration::from_millis(30));
    let mut providers = Vec::new();
    for _ in 0..3 {
        providers.push(provider_with(&gcp, racing.clone()).await);
    }
    let bindings: Vec<Binding> = (0..50)
        .map(|i| binding("shop", "shop", &format!("svc-{i}"), "shared-sa"))
        .collect();
    common::race_on_one_service_account(&gcp, &sa, &providers, &bindings, |b| {
        member("shop", b.workload.service_account().as_str())
    })
    .await;
}

#[tokio::test]
async fn verify_is_healthy_after_bind_and_reports_each_cluster_problem() {
    let gcp = fake();
    gcp.add_service_account(&email("shop-api"));
    let p = provider(&gcp).await;
    let b = binding("shop", "shop", "api", "shop-api");
    let before = p.verify(&b).await.unwrap();
    assert!(
        codes_of(&before, Severity::Error).contains(codes::BINDING_MISSING),
        "{before}"
    );
    p.bind(&b).await.unwrap();
    let healthy = p.verify(&b).await.unwrap();
    assert!(healthy.is_healthy(), "{healthy}");
    assert!(healthy.findings.is_empty(), "{healthy}");

    gcp.set_node_pool(PROJECT, LOCATION, CLUSTER, "legacy", "GCE_METADATA")
        .set_node_pool(PROJECT, LOCATION, CLUSTER, "old", "MODE_UNSPECIFIED");
    let report = p.verify(&b).await.unwrap();
    let pools: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.code == codes::NODE_POOL_GCE_METADATA)
        .collect();
    assert_eq!(pools.len(), 2, "one warning per pool: {report}");
    assert!(pools.iter().all(|f| f.severity == Severity::Warning));
    assert!(pools[0].message.contains("legacy") && pools[0].message.contains("GCE_METADATA"));
    assert!(
        pools[0]
            .remediation
            .contains("--workload-metadata=GKE_METADATA")
    );
    assert!(pools[0].remediation.contains("recreates the pool's nodes"));
    assert!(pools[1].message.contains("old"));
}

#[tokio::test]
async fn verify_reports_each_service_account_and_binding_problem() {
    let gcp = fake();
    let sa = email("shop-api");
    let p = provider(&gcp).await;
    let b = binding("shop", "shop", "api", "shop-api");
    let missing = p.verify(&b).await.unwrap();
    assert!(
        codes_of(&missing, Severity::Error).contains(codes::SERVICE_ACCOUNT_NOT_FOUND),
        "{missing}"
    );
    assert!(
        missing
            .of(Severity::Error)
            .all(|f| !f.remediation.is_empty())
    );

    gcp.add_service_account(&sa)
        .set_disabled(&sa, true)
        .grant_conditional(
            &sa,
            WORKLOAD_IDENTITY_USER,
            &member("shop", "shop-api"),
            "t",
            "true",
        )
        .add_user_managed_key(&sa, "1f2e3d4c");
    let report = p.verify(&b).await.unwrap();
    let errors = codes_of(&report, Severity::Error);
    assert!(errors.contains(codes::SERVICE_ACCOUNT_DISABLED), "{report}");
    assert!(errors.contains(codes::BINDING_MISSING), "{report}");
    assert!(
        codes_of(&report, Severity::Info).contains(codes::BINDING_CONDITIONAL_ONLY),
        "{report}"
    );
    let keys = report
        .findings
        .iter()
        .find(|f| f.code == codes::SERVICE_ACCOUNT_USER_MANAGED_KEYS)
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(keys.severity, Severity::Warning);
    assert!(
        keys.message.contains("1f2e3d4c") && keys.message.contains("1 user-managed"),
        "{keys}"
    );
    assert!(
        keys.remediation
            .contains("gcloud iam service-accounts keys delete 1f2e3d4c"),
        "{keys}"
    );
    for f in &report.findings {
        assert!(
            !f.message.contains("Fix:") || f.remediation.is_empty(),
            "fix said twice: {f}"
        );
    }
}

#[tokio::test]
async fn verify_lints_project_roles_and_a_shared_identity() {
    let gcp = fake();
    let sa = email("shop-api");
    let me = format!("serviceAccount:{sa}");
    gcp.add_service_account(&sa)
        .grant_on_project(PROJECT, "roles/editor", &me)
        .grant_on_project(PROJECT, "roles/storage.objectViewer", &me)
        .grant_on_project(PROJECT, "roles/iam.serviceAccountTokenCreator", &me)
        .grant_on_project(PROJECT, "roles/owner", "user:ana@example.com");
    let p = provider(&gcp).await;
    let api = binding("shop", "shop", "api", "shop-api");
    p.bind_all(
        &porter_identity_core::RunContext::apply(),
        &[api.clone(), binding("shop", "shop", "worker", "shop-api")],
    )
    .await
    .into_iter()
    .for_each(|r| {
        r.unwrap();
    });
    let report = p.verify(&api).await.unwrap();
    let warnings: Vec<&str> = report
        .of(Severity::Warning)
        .map(|f| f.code.as_str())
        .collect();
    assert_eq!(
        warnings,
        [
            codes::LINT_SHARED_IDENTITY,
            codes::LINT_BROAD_ROLE,
            codes::LINT_IMPERSONATION,
            codes::LINT_BROAD_SCOPE
        ],
        "{report}"
    );
    assert!(report.is_healthy(), "lint findings are warnings: {report}");
}

#[tokio::test]
async fn plan_writes_nothing_and_says_what_bind_would_do() {
    let gcp = fake();
    gcp.add_service_account(&email("shop-api"));
    let p = provider(&gcp).await;
    let b = binding("shop", "shop", "api", "shop-api");
    let plan = p.plan(&b).await.unwrap();
    assert_eq!(plan.action, PlanAction::Create);
    assert!(
        plan.description.contains("roles/iam.workloadIdentityUser"),
        "{}",
        plan.description
    );
    assert_eq!(gcp.write_calls(), 0);
    p.bind(&b).await.unwrap();
    assert_eq!(p.plan(&b).await.unwrap().action, PlanAction::Unchanged);
}

#[tokio::test]
async fn the_remembered_policy_starts_writes_but_never_answers_unchanged() {
    let gcp = fake();
    let sa = email("shop-api");
    gcp.add_service_account(&sa);
    let p = provider(&gcp).await;
    let api = binding("shop", "shop", "api", "shop-api");
    p.bind(&api).await.unwrap();
    // Someone removes the member behind the provider's back (a new etag, the same members
    // but ours gone): the provider's memory says bound, the cloud says not.
    gcp.revoke(&sa, WORKLOAD_IDENTITY_USER, &member("shop", "shop-api"));
    assert_eq!(
        p.bind(&api).await.unwrap().change,
        BindChange::Created,
        "read afresh"
    );
    // A write from memory whose etag went stale meanwhile is refused and redone from a read.
    gcp.grant(&sa, "roles/iam.serviceAccountUser", "group:ops@example.com");
    gcp.reset_calls();
    let worker = binding("shop", "shop", "worker", "shop-api");
    assert_eq!(p.bind(&worker).await.unwrap().change, BindChange::Created);
    assert_eq!(
        gcp.calls()["setIamPolicy"],
        2,
        "the stale write, then the one after a read"
    );
    assert_eq!(
        gcp.members(&sa, "roles/iam.serviceAccountUser"),
        ["group:ops@example.com"]
    );
    assert_eq!(gcp.workload_identity_users(&sa).len(), 2);
}

#[tokio::test]
async fn verify_says_what_it_could_not_read_instead_of_failing() {
    let gcp = fake();
    gcp.add_service_account(&email("shop-api"));
    let p = provider(&gcp).await;
    let b = binding("shop", "shop", "api", "shop-api");
    p.bind(&b).await.unwrap();
    gcp.inject_failures(
        Some("serviceAccounts.keys.list"),
        ErrorKind::PermissionDenied,
        1,
    )
    .inject_failures(
        Some("projects.getIamPolicy"),
        ErrorKind::PermissionDenied,
        1,
    );
    let report = p.verify(&b).await.unwrap();
    let warnings = codes_of(&report, Severity::Warning);
    assert!(
        warnings.contains(codes::SERVICE_ACCOUNT_KEYS_UNREADABLE),
        "{report}"
    );
    assert!(warnings.contains(codes::LINT_ROLES_UNREADABLE), "{report}");
    for f in report.of(Severity::Warning) {
        assert!(f.remediation.contains("grant the caller"), "{f}");
    }
    assert!(report.is_healthy(), "the binding itself is fine: {report}");
}

#[tokio::test]
async fn a_cancelled_bind_does_not_take_the_binds_it_coalesced_with_down() {
    let gcp = fake();
    let sa = email("shared-sa");
    gcp.add_service_account(&sa)
        .set_latency(Duration::from_millis(30));
    let p = provider(&gcp).await;
    let bindings: Vec<Binding> = (0..6)
        .map(|i| binding("shop", "shop", &format!("svc-{i}"), "shared-sa"))
        .collect();
    // The pool is read already (a cancelled first read of it would only be redone).
    p.plan(&bindings[0]).await.unwrap();
    gcp.reset_calls();
    // The first bind takes the turn, and with it the others' edits; then its caller gives up
    // while its policy read is in flight (30 ms).
    let cancelled = tokio::time::timeout(Duration::from_millis(5), p.bind(&bindings[0]));
    let others = join_all(bindings[1..].iter().map(|b| p.bind(b)));
    let (first, rest) = tokio::join!(cancelled, others);
    assert!(first.is_err(), "the first bind was cancelled");
    // The cancelled bind held the turn: its policy read was started, and the bind that took
    // the turn over read again. Had it never held the turn, the others' edits would have gone
    // in one write on the policy the plan read, with no read at all (checked by removing the
    // cancelled bind: `{"setIamPolicy": 1}`), and this test would prove nothing.
    assert!(
        gcp.calls().get("getIamPolicy").copied().unwrap_or(0) >= 2,
        "the cancelled bind held the turn: {:?}",
        gcp.calls()
    );
    for (b, r) in bindings[1..].iter().zip(rest) {
        r.unwrap_or_else(|e| panic!("{b}: {e}"));
        assert!(
            gcp.workload_identity_users(&sa)
                .contains(&member("shop", b.workload.service_account().as_str())),
            "{b}"
        );
    }
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
/// one GCP service account at once, with the default `RetryPolicy`, while every call takes the
/// fake's latency (a policy read can go stale while another process writes: `ABORTED`).
/// Returns the wall time on the paused clock, after checking that all 20 members are there.
async fn five_processes_on_one_account(gcp: &FakeGcp, account: &str) -> Duration {
    gcp.add_service_account(&email(account));
    let mut processes = Vec::new();
    for _ in 0..5 {
        processes.push(provider_with(gcp, RetryPolicy::default()).await);
    }
    let wall = testing::contended_binds_all_succeed(&processes, 4, &|p, w| {
        binding("conformance", "app", &format!("p{p}-w{w}"), account)
    })
    .await;
    assert_eq!(gcp.workload_identity_users(&email(account)).len(), 20);
    wall
}

#[tokio::test(start_paused = true)]
async fn five_processes_on_one_service_account_all_bind_with_the_default_policy() {
    let gcp = fake();
    gcp.set_latency(Duration::from_millis(150));
    for round in 0..10 {
        five_processes_on_one_account(&gcp, &format!("busy-150ms-{round}")).await;
    }
    let gcp = fake();
    gcp.set_latency(Duration::from_secs(1));
    let wall = five_processes_on_one_account(&gcp, "busy-1s").await;
    // Each process writes its four members in one read-modify-write: five writes of ~3 calls.
    assert!(wall <= Duration::from_secs(30), "{wall:?}");
}
