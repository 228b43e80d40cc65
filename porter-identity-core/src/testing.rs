//! The conformance suite every [`WorkloadIdentityProvider`] passes (feature `testing`), and
//! what every provider's fake shares: [`FakeCalls`] (call counters and fault knobs) and
//! [`FakeServer`] (the running HTTP face).
//!
//! Each check is a public async function taking the provider under test and a
//! [`BindingFactory`] that makes bindings of the provider's cloud. The checks panic with a
//! message saying which part of the contract broke, like `assert!`, so they are called from
//! `#[tokio::test]` functions. Each check uses its own workload numbers (listed on it), so
//! all of them can run against one provider, one after the other, as [`run_all`] does.
//!
//! ```no_run
//! # use porter_identity_core::{Binding, Connection, RoleRef, Workload, WorkloadIdentityProvider};
//! # async fn example(provider: &dyn WorkloadIdentityProvider) {
//! let factory = |workload: usize, identity: usize| Binding::new(
//!     Workload::for_service("conformance", "app", &format!("svc-{workload}")).unwrap(),
//!     Connection::aws_role(RoleRef::parse(&format!("role-{identity}")).unwrap()),
//! );
//! porter_identity_core::testing::run_all(provider, &factory).await;
//! # }
//! ```

use futures_util::future::{join, join_all};

pub use crate::fake_calls::FakeCalls;
pub use crate::fake_server::{FakeServer, ShutdownSignal};

use crate::{
    AzureIdentityName, AzureResourceGroup, BindChange, Binding, Cloud, Connection, ErrorKind,
    GcpServiceAccountEmail, PlanAction, ReconcileReport, Reconciler, RoleRef, RunContext,
    UnbindOutcome, Workload, WorkloadIdentityProvider,
};

/// Makes bindings of the provider's cloud for the suite.
///
/// `binding(w, i)` binds workload number `w` to identity number `i` (0 or 1). The same `w`
/// must always give the same workload and distinct `w`s distinct workloads; identities 0 and
/// 1 must differ, and both must be set up in the provider's (fake) cloud so binds succeed.
pub trait BindingFactory: Send + Sync {
    /// The binding of workload `workload` to identity `identity`.
    fn binding(&self, workload: usize, identity: usize) -> Binding;
}

impl<F> BindingFactory for F
where
    F: Fn(usize, usize) -> Binding + Send + Sync,
{
    fn binding(&self, workload: usize, identity: usize) -> Binding {
        self(workload, identity)
    }
}

/// Workload 0: the first bind creates, the second changes nothing, and plan then says unchanged.
pub async fn bind_twice_is_unchanged(
    provider: &dyn WorkloadIdentityProvider,
    factory: &dyn BindingFactory,
) {
    let b = factory.binding(0, 0);
    let first = provider.bind(&b).await.expect("first bind");
    assert_eq!(
        first.change,
        BindChange::Created,
        "first bind of {b} must create"
    );
    let second = provider.bind(&b).await.expect("second bind");
    assert_eq!(
        second.change,
        BindChange::Unchanged,
        "second bind of {b} must change nothing"
    );
    assert_eq!(
        second.resource_id, first.resource_id,
        "bind twice must keep the same resource"
    );
    let plan = provider.plan(&b).await.expect("plan after bind");
    assert_eq!(plan.action, PlanAction::Unchanged, "plan after bind of {b}");
}

/// Workload 1: plan says create and writes nothing (a second plan still says create).
pub async fn plan_does_not_write(
    provider: &dyn WorkloadIdentityProvider,
    factory: &dyn BindingFactory,
) {
    let b = factory.binding(1, 0);
    for _ in 0..2 {
        let plan = provider.plan(&b).await.expect("plan");
        assert_eq!(plan.action, PlanAction::Create, "plan of unbound {b}");
        assert!(
            !plan.description.is_empty(),
            "plan must describe the change"
        );
    }
    let report = provider.verify(&b).await.expect("verify after plan");
    assert!(!report.is_healthy(), "plan must not bind {b}: {report}");
}

/// Workload 2: binding the same workload to another identity changes its link where the two
/// are one link ([`Binding::link_key`] without the identity: AWS updates the association in
/// place), and makes a second link where the cloud keys links by identity (Azure, GCP); either
/// way binding it again changes nothing.
pub async fn changed_identity_is_updated(
    provider: &dyn WorkloadIdentityProvider,
    factory: &dyn BindingFactory,
) {
    let (b0, b1) = (factory.binding(2, 0), factory.binding(2, 1));
    assert_eq!(
        b0.workload, b1.workload,
        "factory: same workload number, same workload"
    );
    assert_ne!(
        b0.connection, b1.connection,
        "factory: identities 0 and 1 must differ"
    );
    let one_link = b0.link_key() == b1.link_key();
    provider.bind(&b0).await.expect("bind identity 0");
    let plan = provider.plan(&b1).await.expect("plan identity 1");
    let updated = provider.bind(&b1).await.expect("bind identity 1");
    if one_link {
        assert!(
            matches!(plan.action, PlanAction::Update { .. }),
            "plan of {b1}: {plan:?}"
        );
        assert!(
            matches!(updated.change, BindChange::Updated { .. }),
            "rebinding {b1} must update, got {:?}",
            updated.change
        );
    } else {
        assert_eq!(plan.action, PlanAction::Create, "plan of {b1}: {plan:?}");
        assert_eq!(updated.change, BindChange::Created, "binding {b1}");
        assert_eq!(
            action(provider, &b0).await,
            PlanAction::Unchanged,
            "{b0} is another link and stays"
        );
        provider.unbind(&b0).await.expect("clean up identity 0");
    }
    let again = provider.bind(&b1).await.expect("bind identity 1 again");
    assert_eq!(again.change, BindChange::Unchanged);
    assert!(provider.verify(&b1).await.expect("verify").is_healthy());
}

/// Workload 3: unbind deletes once, then finds nothing to delete; bind works again after.
pub async fn unbind_is_idempotent(
    provider: &dyn WorkloadIdentityProvider,
    factory: &dyn BindingFactory,
) {
    let b = factory.binding(3, 0);
    provider.bind(&b).await.expect("bind");
    let first = provider.unbind(&b).await.expect("first unbind");
    assert!(
        matches!(first, UnbindOutcome::Deleted { .. }),
        "first unbind of {b}: {first:?}"
    );
    let second = provider.unbind(&b).await.expect("second unbind");
    assert_eq!(second, UnbindOutcome::AlreadyAbsent, "second unbind of {b}");
    let rebound = provider.bind(&b).await.expect("bind after unbind");
    assert_eq!(rebound.change, BindChange::Created);
    provider.unbind(&b).await.expect("clean up");
}

/// Workload 4: verify is healthy after bind and broken after unbind.
pub async fn verify_tracks_binding(
    provider: &dyn WorkloadIdentityProvider,
    factory: &dyn BindingFactory,
) {
    let b = factory.binding(4, 0);
    provider.bind(&b).await.expect("bind");
    let healthy = provider.verify(&b).await.expect("verify after bind");
    assert!(healthy.is_healthy(), "verify after bind of {b}: {healthy}");
    provider.unbind(&b).await.expect("unbind");
    let broken = provider.verify(&b).await.expect("verify after unbind");
    assert!(
        !broken.is_healthy(),
        "verify after unbind of {b} must find it missing: {broken}"
    );
    for f in &broken.findings {
        assert!(
            f.code.contains('.') && !f.code.contains(' '),
            "finding codes are dotted: {:?}",
            f.code
        );
        if f.severity == crate::Severity::Error {
            assert!(
                !f.remediation.is_empty(),
                "error finding {} needs a remediation",
                f.code
            );
        }
    }
}

/// Workload 5: every method refuses a binding of another cloud with `InvalidInput`.
pub async fn wrong_cloud_is_invalid_input(
    provider: &dyn WorkloadIdentityProvider,
    factory: &dyn BindingFactory,
) {
    let workload = factory.binding(5, 0).workload;
    for connection in sample_connections() {
        if connection.cloud() == Some(provider.cloud()) {
            continue;
        }
        let b = Binding::new(workload.clone(), connection);
        let kinds = [
            provider.plan(&b).await.err().map(|e| e.kind()),
            provider.bind(&b).await.err().map(|e| e.kind()),
            provider.unbind(&b).await.err().map(|e| e.kind()),
            provider.verify(&b).await.err().map(|e| e.kind()),
        ];
        for kind in kinds {
            assert_eq!(
                kind,
                Some(ErrorKind::InvalidInput),
                "{b} on {}",
                provider.cloud()
            );
        }
    }
}

/// Workload 6: after `inject(n)` makes the next `n` cloud calls fail transiently, bind still
/// succeeds (the provider retries).
pub async fn transient_failures_are_retried(
    provider: &dyn WorkloadIdentityProvider,
    factory: &dyn BindingFactory,
    inject: &(dyn Fn(u32) + Send + Sync),
) {
    let b = factory.binding(6, 0);
    inject(2);
    let outcome = provider
        .bind(&b)
        .await
        .expect("bind must retry transient failures");
    assert_eq!(outcome.change, BindChange::Created);
    inject(2);
    let verify = provider
        .verify(&b)
        .await
        .expect("verify must retry transient failures");
    assert!(verify.is_healthy(), "{verify}");
    inject(2);
    provider
        .unbind(&b)
        .await
        .expect("unbind must retry transient failures");
}

/// Workload 9 of app `down-endpoint`, run last on its provider (the cloud stays down): after
/// `down()` makes the cloud's endpoint answer 503 to every call, one bind makes exactly
/// `max_attempts` calls to it (`calls()` counts them), however many reads the provider joins
/// for it: one failure, one budget. So does a one-service reconcile, whose stale-link search
/// adds no call of its own. Each ends with a retryable `Unavailable` error with a fix (one for
/// the workload and, at most, one for the stale-link search), and nothing is written.
pub async fn a_down_endpoint_costs_one_budget(
    provider: &dyn WorkloadIdentityProvider,
    factory: &dyn BindingFactory,
    max_attempts: u32,
    down: &(dyn Fn() + Send + Sync),
    calls: &(dyn Fn() -> u64 + Send + Sync),
) {
    let b = of_app(factory, "down-endpoint", 9, 0);
    down();
    let before = calls();
    let e = provider
        .bind(&b)
        .await
        .expect_err("a bind against an endpoint that is down fails");
    assert_eq!(
        calls() - before,
        u64::from(max_attempts),
        "one bind: max_attempts calls in all, not per joined read ({e})"
    );
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.is_retryable(), "{e}");
    assert!(e.fix().is_some(), "the error says what to do: {e}");

    let before = calls();
    let report = reconciler(provider, &b)
        .desired_bindings([b.clone()])
        .run()
        .await
        .expect("a reconcile reports its errors");
    assert_eq!(
        calls() - before,
        u64::from(max_attempts),
        "a one-service reconcile: max_attempts calls in all\n{report}"
    );
    assert_eq!(report.workloads.len(), 1, "{report}");
    let e = report.workloads[0]
        .result
        .as_ref()
        .expect_err("the workload's error");
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.fix().is_some(), "{e}");
    assert!(report.cleanup_errors.len() <= 1, "{report}");
    assert!(
        report
            .cleanup_errors
            .iter()
            .all(|e| e.kind() == ErrorKind::Unavailable),
        "{report}"
    );
    assert_eq!(report.changes(), 0, "{report}");
}

/// Several deploy processes on one cloud object: `processes` (providers with state of their
/// own, as separate deploy processes have) each bind `per_process` workloads (`of(process,
/// workload)`, all on one identity or service account) at once, each in a run of its own. Every
/// bind must create its link, whatever the contention. Returns the wall time (on tokio's clock:
/// virtual under a paused runtime).
pub async fn contended_binds_all_succeed<P: WorkloadIdentityProvider>(
    processes: &[P],
    per_process: usize,
    of: &(dyn Fn(usize, usize) -> Binding + Send + Sync),
) -> std::time::Duration {
    let start = tokio::time::Instant::now();
    let results =
        futures_util::future::join_all(processes.iter().enumerate().map(|(p, provider)| {
            let bindings: Vec<Binding> = (0..per_process).map(|w| of(p, w)).collect();
            async move {
                (
                    provider.bind_all(&RunContext::apply(), &bindings).await,
                    bindings,
                )
            }
        }))
        .await;
    let wall = start.elapsed();
    for (results, bindings) in results {
        for (r, b) in results.iter().zip(&bindings) {
            let outcome = r
                .as_ref()
                .unwrap_or_else(|e| panic!("{b}: a contended bind failed: {e}"));
            assert_eq!(outcome.change, BindChange::Created, "{b}");
        }
    }
    wall
}

/// Workload 8: after `interfere(n)` makes the cloud refuse the next `n` writes because someone
/// else wrote first (a stale GCP etag, Azure's concurrent-writes 409), bind and unbind still
/// succeed (the provider re-reads and retries), and nothing is left half done: the link is
/// there after the bind and gone after the unbind.
pub async fn refused_concurrent_writes_are_retried(
    provider: &dyn WorkloadIdentityProvider,
    factory: &dyn BindingFactory,
    interfere: &(dyn Fn(u32) + Send + Sync),
) {
    let b = factory.binding(8, 0);
    interfere(2);
    let outcome = provider
        .bind(&b)
        .await
        .expect("bind must retry a write refused for a concurrent one");
    assert!(outcome.is_changed(), "{b}: {outcome}");
    assert_eq!(
        action(provider, &b).await,
        PlanAction::Unchanged,
        "{b} is bound"
    );
    interfere(2);
    let removed = provider
        .unbind(&b)
        .await
        .expect("unbind must retry a write refused for a concurrent one");
    assert!(
        matches!(removed, UnbindOutcome::Deleted { .. }),
        "{b}: {removed}"
    );
    assert_eq!(
        action(provider, &b).await,
        PlanAction::Create,
        "{b} is gone"
    );
}

/// Workloads 1000..1000+n: `n` concurrent binds of distinct workloads all succeed, and each
/// binding is then present (a second bind of each changes nothing).
pub async fn concurrent_binds_lose_nothing(
    provider: &dyn WorkloadIdentityProvider,
    factory: &dyn BindingFactory,
    n: usize,
) {
    let bindings: Vec<Binding> = (0..n).map(|i| factory.binding(1000 + i, i % 2)).collect();
    let results = join_all(bindings.iter().map(|b| provider.bind(b))).await;
    for (b, r) in bindings.iter().zip(results) {
        let outcome = r.unwrap_or_else(|e| panic!("concurrent bind of {b}: {e}"));
        assert_eq!(outcome.change, BindChange::Created, "{b}");
    }
    let again = join_all(bindings.iter().map(|b| provider.bind(b))).await;
    for (b, r) in bindings.iter().zip(again) {
        let outcome = r.unwrap_or_else(|e| panic!("re-bind of {b}: {e}"));
        assert_eq!(
            outcome.change,
            BindChange::Unchanged,
            "{b} was lost or changed"
        );
    }
}

/// Workload 7: `n` concurrent binds of the same workload all succeed and leave one binding.
pub async fn concurrent_binds_of_one_workload_agree(
    provider: &dyn WorkloadIdentityProvider,
    factory: &dyn BindingFactory,
    n: usize,
) {
    let b = factory.binding(7, 0);
    let results = join_all((0..n).map(|_| provider.bind(&b))).await;
    let mut ids = std::collections::BTreeSet::new();
    for r in results {
        let outcome = r.unwrap_or_else(|e| panic!("concurrent bind of {b}: {e}"));
        assert!(
            !matches!(outcome.change, BindChange::Updated { .. }),
            "concurrent binds of one identity must not update: {outcome:?}"
        );
        ids.insert(outcome.resource_id);
    }
    assert_eq!(
        ids.len(),
        1,
        "all binds must report the same resource: {ids:?}"
    );
    assert_eq!(
        provider.bind(&b).await.expect("bind").change,
        BindChange::Unchanged
    );
    assert!(matches!(
        provider.unbind(&b).await.expect("unbind"),
        UnbindOutcome::Deleted { .. }
    ));
    assert_eq!(
        provider.unbind(&b).await.expect("unbind"),
        UnbindOutcome::AlreadyAbsent
    );
}

/// Workloads 10..13: `plan_all`, `bind_all`, `verify_all` and `unbind_all` answer one result
/// per binding, in input order; a failing binding (here, one of another cloud) fails alone; a
/// binding whose link an earlier one takes with another identity is refused. The cloud calls
/// are counted in the run given.
pub async fn batches_keep_order_and_isolate_failures(
    provider: &dyn WorkloadIdentityProvider,
    factory: &dyn BindingFactory,
) {
    let wrong = Binding::new(
        factory.binding(11, 0).workload,
        sample_connections()
            .into_iter()
            .find(|c| c.cloud() != Some(provider.cloud()))
            .expect("another cloud's connection"),
    );
    let batch = vec![factory.binding(10, 0), wrong, factory.binding(12, 1)];
    let planning = RunContext::plan();
    let plans = provider.plan_all(&planning, &batch).await;
    assert_eq!(plans.len(), 3, "plan_all: one result per binding");
    assert_eq!(
        plans[0].as_ref().expect("plan 0").action,
        PlanAction::Create
    );
    assert_eq!(
        plans[1].as_ref().err().map(|e| e.kind()),
        Some(ErrorKind::InvalidInput)
    );
    assert_eq!(
        plans[2].as_ref().expect("plan 2").action,
        PlanAction::Create
    );

    assert!(
        planning.calls().total() > 0,
        "plan_all must count its cloud calls in the run it is given (CloudCalls::run)"
    );
    let run = RunContext::apply();
    let first = provider.bind_all(&run, &batch).await;
    assert_eq!(first.len(), 3, "bind_all: one result per binding");
    assert_eq!(
        first[0].as_ref().expect("bind 0").change,
        BindChange::Created
    );
    assert_eq!(
        first[1].as_ref().err().map(|e| e.kind()),
        Some(ErrorKind::InvalidInput)
    );
    assert_eq!(
        first[2].as_ref().expect("bind 2").change,
        BindChange::Created
    );
    let again = provider.bind_all(&run, &batch).await;
    for i in [0, 2] {
        let outcome = again[i].as_ref().expect("re-bind");
        assert_eq!(
            outcome.change,
            BindChange::Unchanged,
            "bind_all again, [{i}]"
        );
        assert_eq!(
            Some(&outcome.resource_id),
            first[i].as_ref().ok().map(|o| &o.resource_id)
        );
    }

    // Workload 13 to identity 0, then to identity 1, in one batch: where the two are one link
    // (AWS), the second is refused; otherwise both bind.
    let (b0, b1) = (factory.binding(13, 0), factory.binding(13, 1));
    let pair = provider.bind_all(&run, &[b0.clone(), b1.clone()]).await;
    assert!(pair[0].is_ok(), "{:?}", pair[0]);
    if b0.link_key() == b1.link_key() {
        assert_eq!(
            pair[1].as_ref().err().map(|e| e.kind()),
            Some(ErrorKind::InvalidInput)
        );
    } else {
        assert!(pair[1].is_ok(), "{:?}", pair[1]);
    }

    let verified = provider.verify_all(&RunContext::plan(), &batch).await;
    assert_eq!(verified.len(), 3, "verify_all: one result per binding");
    assert!(verified[0].is_ok(), "{:?}", verified[0]);
    assert_eq!(
        verified[1].as_ref().err().map(|e| e.kind()),
        Some(ErrorKind::InvalidInput)
    );
    assert!(verified[2].is_ok(), "{:?}", verified[2]);

    let removed = provider.unbind_all(&run, &batch).await;
    assert_eq!(removed.len(), 3, "unbind_all: one result per binding");
    assert!(
        matches!(removed[0], Ok(UnbindOutcome::Deleted { .. })),
        "{:?}",
        removed[0]
    );
    assert_eq!(
        removed[1].as_ref().err().map(|e| e.kind()),
        Some(ErrorKind::InvalidInput)
    );
    assert!(
        matches!(removed[2], Ok(UnbindOutcome::Deleted { .. })),
        "{:?}",
        removed[2]
    );
    let none = provider.unbind_all(&run, &batch).await;
    assert_eq!(none[0].as_ref().ok(), Some(&UnbindOutcome::AlreadyAbsent));
    assert_eq!(none[2].as_ref().ok(), Some(&UnbindOutcome::AlreadyAbsent));
    for r in provider.unbind_all(&run, &[b0, b1]).await {
        r.expect("clean up");
    }
}

/// The binding of workload `workload` to `identity`, moved into app `app`: the same
/// namespace, service and identity, and the service account that app's service runs as.
/// The reconciler checks each use an app of their own, so that one's stale links are never
/// another's.
fn of_app(factory: &dyn BindingFactory, app: &str, workload: usize, identity: usize) -> Binding {
    let b = factory.binding(workload, identity);
    let w = Workload::for_service(
        b.workload.namespace().as_str(),
        app,
        b.workload.service().as_str(),
    )
    .expect("the factory's namespace and service make a workload of another app");
    Binding::new(w, b.connection)
}

fn reconciler<'a>(provider: &'a dyn WorkloadIdentityProvider, sample: &Binding) -> Reconciler<'a> {
    Reconciler::new(
        sample.workload.app().as_str(),
        sample.workload.namespace().as_str(),
    )
    .provider(provider)
}

async fn action(provider: &dyn WorkloadIdentityProvider, b: &Binding) -> PlanAction {
    provider
        .plan(b)
        .await
        .unwrap_or_else(|e| panic!("plan of {b}: {e}"))
        .action
}

fn change_of(report: &ReconcileReport, b: &Binding) -> BindChange {
    let w = report
        .workloads
        .iter()
        .find(|w| w.binding == *b)
        .unwrap_or_else(|| panic!("{b} is not in the report:\n{report}"));
    match &w.result {
        Ok(c) => c.change.clone(),
        Err(e) => panic!("{b} failed: {e}\n{report}"),
    }
}

fn was_removed(report: &ReconcileReport, b: &Binding) -> bool {
    report
        .removed
        .iter()
        .any(|r| r.binding.workload == b.workload && r.error.is_none())
}

/// Workloads 2000..2002 of app `reconcile-idem`: a reconcile creates the desired set; the next
/// changes nothing, removes nothing, and says so; a dry run agrees.
pub async fn reconcile_binds_then_changes_nothing(
    provider: &dyn WorkloadIdentityProvider,
    factory: &dyn BindingFactory,
) {
    let app = "reconcile-idem";
    let desired: Vec<Binding> = [(2000, 0), (2001, 0), (2002, 1)]
        .into_iter()
        .map(|(w, i)| of_app(factory, app, w, i))
        .collect();
    let r = reconciler(provider, &desired[0]);
    let first = r
        .clone()
        .desired_bindings(desired.clone())
        .run()
        .await
        .expect("reconcile");
    assert!(first.is_ok(), "{first}");
    for b in &desired {
        assert_eq!(change_of(&first, b), BindChange::Created);
    }
    assert!(first.removed.is_empty(), "{first}");
    assert_eq!(first.service_accounts.len(), 3, "{first}");

    let second = r
        .clone()
        .desired_bindings(desired.clone())
        .previous_bindings(desired.clone())
        .run()
        .await
        .expect("reconcile again");
    assert!(second.is_ok(), "{second}");
    assert_eq!(
        second.changes(),
        0,
        "nothing to change the second time:\n{second}"
    );
    assert!(
        second.removed.is_empty() && second.kept.is_empty(),
        "{second}"
    );
    for b in &desired {
        assert_eq!(change_of(&second, b), BindChange::Unchanged);
    }
    let dry = r
        .desired_bindings(desired.clone())
        .dry_run()
        .await
        .expect("dry run");
    assert!(dry.dry_run && dry.is_ok(), "{dry}");
    assert_eq!(dry.changes(), 0, "{dry}");
    for b in &desired {
        provider.unbind(b).await.expect("clean up");
    }
}

/// Workloads 2100..2102 of app `reconcile-stale`: after a deploy of all three, a deploy that
/// drops workload 2101 and moves workload 2102 to identity 1 (with the first as *previous*)
/// removes 2101's link and 2102's old one, and keeps the rest.
pub async fn reconcile_removes_what_the_app_no_longer_wants(
    provider: &dyn WorkloadIdentityProvider,
    factory: &dyn BindingFactory,
) {
    let app = "reconcile-stale";
    let [kept, dropped, moved_from, moved_to] = [
        of_app(factory, app, 2100, 0),
        of_app(factory, app, 2101, 0),
        of_app(factory, app, 2102, 0),
        of_app(factory, app, 2102, 1),
    ];
    let before = vec![kept.clone(), dropped.clone(), moved_from.clone()];
    let after = vec![kept.clone(), moved_to.clone()];
    let r = reconciler(provider, &kept);
    let first = r
        .clone()
        .desired_bindings(before.clone())
        .run()
        .await
        .expect("first deploy");
    assert!(first.is_ok(), "{first}");

    let second = r
        .desired_bindings(after)
        .previous_bindings(before)
        .run()
        .await
        .expect("second deploy");
    assert!(second.is_ok(), "{second}");
    assert_eq!(change_of(&second, &kept), BindChange::Unchanged);
    assert!(
        was_removed(&second, &dropped),
        "the dropped service's link is removed:\n{second}"
    );
    assert_eq!(
        action(provider, &dropped).await,
        PlanAction::Create,
        "{dropped} is gone"
    );
    if moved_from.link_key() == moved_to.link_key() {
        // One link, re-pointed in place (AWS).
        assert!(
            matches!(change_of(&second, &moved_to), BindChange::Updated { .. }),
            "{second}"
        );
    } else {
        assert_eq!(change_of(&second, &moved_to), BindChange::Created);
        assert!(
            second.removed.iter().any(|l| l.binding == moved_from),
            "the moved workload's old link is removed:\n{second}"
        );
        assert_eq!(action(provider, &moved_from).await, PlanAction::Create);
    }
    assert_eq!(action(provider, &moved_to).await, PlanAction::Unchanged);
    assert_eq!(action(provider, &kept).await, PlanAction::Unchanged);
    assert!(
        provider
            .verify(&moved_to)
            .await
            .expect("verify")
            .is_healthy()
    );
    for b in [&kept, &moved_to] {
        provider.unbind(b).await.expect("clean up");
    }
}

/// Workloads 2200..2202 of app `reconcile-dry`: a dry run reports what a run would create,
/// update and remove, and writes nothing.
pub async fn reconcile_dry_run_writes_nothing(
    provider: &dyn WorkloadIdentityProvider,
    factory: &dyn BindingFactory,
) {
    let app = "reconcile-dry";
    let [a0, a1, b0, c0] = [
        of_app(factory, app, 2200, 0),
        of_app(factory, app, 2200, 1),
        of_app(factory, app, 2201, 0),
        of_app(factory, app, 2202, 0),
    ];
    let r = reconciler(provider, &a0);
    let deployed = r
        .clone()
        .desired_bindings([a0.clone(), b0.clone()])
        .run()
        .await
        .expect("deploy");
    assert!(deployed.is_ok(), "{deployed}");

    let dry = r
        .desired_bindings([a1.clone(), c0.clone()])
        .previous_bindings([a0.clone(), b0.clone()])
        .dry_run()
        .await
        .expect("dry run");
    assert!(dry.dry_run && dry.is_ok(), "{dry}");
    assert_eq!(change_of(&dry, &c0), BindChange::Created);
    assert_ne!(change_of(&dry, &a1), BindChange::Unchanged, "{dry}");
    assert!(
        dry.removed
            .iter()
            .any(|l| l.binding.workload == b0.workload),
        "{dry}"
    );
    assert!(dry.changes() >= 3, "{dry}");
    // Nothing was written.
    assert_eq!(action(provider, &a0).await, PlanAction::Unchanged);
    assert_eq!(action(provider, &b0).await, PlanAction::Unchanged);
    assert_eq!(action(provider, &c0).await, PlanAction::Create);
    for b in [&a0, &b0] {
        provider.unbind(b).await.expect("clean up");
    }
}

/// Workload 2300 of app `reconcile-neighbour` and app `reconcile-empty` in the same
/// namespace: a reconcile of an app with nothing desired and no previous deploy removes no
/// link of another app.
pub async fn reconcile_never_removes_another_apps_link(
    provider: &dyn WorkloadIdentityProvider,
    factory: &dyn BindingFactory,
) {
    let neighbour = of_app(factory, "reconcile-neighbour", 2300, 0);
    provider.bind(&neighbour).await.expect("bind the neighbour");
    let empty = of_app(factory, "reconcile-empty", 2300, 0);
    let report = reconciler(provider, &empty)
        .desired_bindings([])
        .run()
        .await
        .expect("reconcile");
    assert!(report.is_ok(), "{report}");
    assert!(
        report.removed.is_empty(),
        "another app's link was removed:\n{report}"
    );
    assert_eq!(action(provider, &neighbour).await, PlanAction::Unchanged);
    provider.unbind(&neighbour).await.expect("clean up");
}

/// Workloads 2400..2409 of app `reconcile-race`: two reconciles of the same desired set (and
/// the same previous deploy, which had workload 2410 too) run at once, through `a` and `b`
/// (pass two providers of one cluster to model two deploy processes). Both succeed, and a third
/// finds every link in place and nothing to do.
pub async fn concurrent_reconciles_converge(
    a: &dyn WorkloadIdentityProvider,
    b: &dyn WorkloadIdentityProvider,
    factory: &dyn BindingFactory,
) {
    let app = "reconcile-race";
    let desired: Vec<Binding> = (2400..2410)
        .map(|w| of_app(factory, app, w, w % 2))
        .collect();
    let gone = of_app(factory, app, 2410, 0);
    a.bind(&gone).await.expect("the previous deploy's link");
    let mut previous = desired.clone();
    previous.push(gone.clone());
    let run = |p: &'static str, provider| {
        let r = reconciler(provider, &desired[0])
            .desired_bindings(desired.clone())
            .previous_bindings(previous.clone());
        async move { (p, r.run().await.expect("reconcile")) }
    };
    let (first, second) = join(run("a", a), run("b", b)).await;
    for (who, report) in [first, second] {
        assert!(report.is_ok(), "reconcile {who}:\n{report}");
    }
    let settled = reconciler(a, &desired[0])
        .desired_bindings(desired.clone())
        .previous_bindings(previous.clone())
        .run()
        .await
        .expect("reconcile after the race");
    assert!(settled.is_ok(), "{settled}");
    assert_eq!(
        settled.changes(),
        0,
        "the race left work undone:\n{settled}"
    );
    for d in &desired {
        assert_eq!(action(a, d).await, PlanAction::Unchanged, "{d}");
    }
    assert_eq!(
        action(a, &gone).await,
        PlanAction::Create,
        "{gone} is removed"
    );
    for d in &desired {
        a.unbind(d).await.expect("clean up");
    }
}

/// Workload 3000 of app `owner-a`, for providers whose links carry ownership marks (AWS): a
/// workload of another app, or of another service of the same app, that runs as the same
/// service account (names can collide: `shop` + `admin-api` and `shop-admin` + `api`) never
/// changes or removes the first one's link — not by `plan`, `bind`, `unbind`, nor a reconcile
/// — and `verify` reports it.
pub async fn another_owners_link_is_never_touched(
    provider: &dyn WorkloadIdentityProvider,
    factory: &dyn BindingFactory,
) {
    let owner = of_app(factory, "owner-a", 3000, 0);
    provider.bind(&owner).await.expect("bind the owner");
    let w = &owner.workload;
    let intruders = [
        ("another app", "owner-b", w.service().as_str()),
        ("another service of the same app", "owner-a", "intruder"),
    ];
    for (who, app, service) in intruders {
        let intruder = Binding::new(
            Workload::new(
                w.namespace().as_str(),
                w.service_account().as_str(),
                app,
                service,
            )
            .expect("intruder workload"),
            // The same identity and the same service account: the one link both would make.
            owner.connection.clone(),
        );
        let conflict = |what: &str, r: Option<crate::Error>| {
            let e = r.unwrap_or_else(|| panic!("{what} by {who} must be refused"));
            assert_eq!(e.kind(), ErrorKind::Conflict, "{what} by {who}: {e}");
            assert!(
                e.to_string().contains("owner-a"),
                "{what} by {who} names the owner: {e}"
            );
            assert!(
                e.fix().is_some(),
                "{what} by {who} says how to resolve it: {e}"
            );
        };
        conflict("plan", provider.plan(&intruder).await.err());
        conflict("bind", provider.bind(&intruder).await.err());
        conflict("unbind", provider.unbind(&intruder).await.err());
        let report = provider.verify(&intruder).await.expect("verify");
        assert!(
            !report.is_healthy(),
            "verify by {who} reports the other owner: {report}"
        );

        if app == "owner-a" {
            // The same app: its deploy names both services, which fight over one link; the
            // reconciler refuses that before any call. A deploy of the owner alone, with the
            // other service as its previous deploy, leaves the owner's link in place.
            let both = Reconciler::new(app, w.namespace().as_str())
                .provider(provider)
                .desired_bindings([owner.clone(), intruder.clone()])
                .run()
                .await;
            if owner.link_key() == intruder.link_key() {
                let e = both.expect_err("two services on one link is refused");
                assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
            }
            let kept = Reconciler::new(app, w.namespace().as_str())
                .provider(provider)
                .desired_bindings([owner.clone()])
                .previous_bindings([intruder.clone()])
                .run()
                .await
                .expect("reconcile of the owner");
            assert!(kept.is_ok() && kept.removed.is_empty(), "{kept}");
        } else {
            let deploy = Reconciler::new(app, w.namespace().as_str())
                .provider(provider)
                .desired_bindings([intruder.clone()])
                .run()
                .await
                .expect("reconcile of the intruder");
            let failed = deploy.workloads[0].result.as_ref().err().map(|e| e.kind());
            assert_eq!(failed, Some(ErrorKind::Conflict), "{deploy}");
            let cleanup = Reconciler::new(app, w.namespace().as_str())
                .provider(provider)
                .desired_bindings([])
                .previous_bindings([intruder.clone()])
                .run()
                .await
                .expect("reconcile removing the intruder");
            assert!(
                cleanup.removed.is_empty(),
                "{who} removed the owner's link:\n{cleanup}"
            );
            assert!(
                cleanup
                    .kept
                    .iter()
                    .any(|k| k.binding.workload == intruder.workload),
                "{who}'s stale link is kept, with the reason:\n{cleanup}"
            );
        }
        assert_eq!(
            action(provider, &owner).await,
            PlanAction::Unchanged,
            "after {who}"
        );
    }
    provider.unbind(&owner).await.expect("clean up");
}

/// Runs every check that needs nothing but the provider and its factory, with 50 concurrent
/// workloads and 20 concurrent binds of one workload, the batch methods and the reconciler
/// (two concurrent reconciles through the one provider).
pub async fn run_all(provider: &dyn WorkloadIdentityProvider, factory: &dyn BindingFactory) {
    bind_twice_is_unchanged(provider, factory).await;
    plan_does_not_write(provider, factory).await;
    changed_identity_is_updated(provider, factory).await;
    unbind_is_idempotent(provider, factory).await;
    verify_tracks_binding(provider, factory).await;
    wrong_cloud_is_invalid_input(provider, factory).await;
    concurrent_binds_lose_nothing(provider, factory, 50).await;
    concurrent_binds_of_one_workload_agree(provider, factory, 20).await;
    batches_keep_order_and_isolate_failures(provider, factory).await;
    reconcile_binds_then_changes_nothing(provider, factory).await;
    reconcile_removes_what_the_app_no_longer_wants(provider, factory).await;
    reconcile_dry_run_writes_nothing(provider, factory).await;
    reconcile_never_removes_another_apps_link(provider, factory).await;
    concurrent_reconciles_converge(provider, provider, factory).await;
}

/// One valid connection of each cloud, for the wrong-cloud check.
fn sample_connections() -> Vec<Connection> {
    let parsed = (|| -> crate::Result<Vec<Connection>> {
        Ok(vec![
            Connection::aws_role(RoleRef::parse("porter-conformance-role")?),
            Connection::azure_managed_identity(
                AzureIdentityName::parse("porter-conformance")?,
                AzureResourceGroup::parse("porter-conformance-rg")?,
            ),
            Connection::gcp_service_account(GcpServiceAccountEmail::parse(
                "conformance@porter-project.iam.gserviceaccount.com",
            )?),
        ])
    })();
    let all = parsed.expect("sample connections are valid");
    debug_assert_eq!(all.len(), [Cloud::Aws, Cloud::Azure, Cloud::Gcp].len());
    all
}
