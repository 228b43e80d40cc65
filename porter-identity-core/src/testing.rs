//! The conformance suite every [`WorkloadIdentityProvider`] passes (feature `testing`).
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
//!     Connection::AwsRole { role: RoleRef::parse(&format!("role-{identity}")).unwrap() },
//! );
//! porter_identity_core::testing::run_all(provider, &factory).await;
//! # }
//! ```

use futures_util::future::join_all;

use crate::{
    AzureIdentityName, AzureResourceGroup, BindChange, Binding, Cloud, Connection, ErrorKind,
    GcpServiceAccountEmail, PlanAction, RoleRef, UnbindOutcome, WorkloadIdentityProvider,
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
pub async fn bind_twice_is_unchanged<P>(provider: &P, factory: &dyn BindingFactory)
where
    P: WorkloadIdentityProvider + ?Sized,
{
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
pub async fn plan_does_not_write<P>(provider: &P, factory: &dyn BindingFactory)
where
    P: WorkloadIdentityProvider + ?Sized,
{
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

/// Workload 2: binding the same workload to another identity updates it; again is unchanged.
pub async fn changed_identity_is_updated<P>(provider: &P, factory: &dyn BindingFactory)
where
    P: WorkloadIdentityProvider + ?Sized,
{
    let (b0, b1) = (factory.binding(2, 0), factory.binding(2, 1));
    assert_eq!(
        b0.workload, b1.workload,
        "factory: same workload number, same workload"
    );
    assert_ne!(
        b0.connection, b1.connection,
        "factory: identities 0 and 1 must differ"
    );
    provider.bind(&b0).await.expect("bind identity 0");
    let plan = provider.plan(&b1).await.expect("plan identity 1");
    assert!(
        matches!(plan.action, PlanAction::Update { .. }),
        "plan of {b1}: {plan:?}"
    );
    let updated = provider.bind(&b1).await.expect("bind identity 1");
    assert!(
        matches!(updated.change, BindChange::Updated { .. }),
        "rebinding {b1} must update, got {:?}",
        updated.change
    );
    let again = provider.bind(&b1).await.expect("bind identity 1 again");
    assert_eq!(again.change, BindChange::Unchanged);
    assert!(provider.verify(&b1).await.expect("verify").is_healthy());
}

/// Workload 3: unbind deletes once, then finds nothing to delete; bind works again after.
pub async fn unbind_is_idempotent<P>(provider: &P, factory: &dyn BindingFactory)
where
    P: WorkloadIdentityProvider + ?Sized,
{
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
pub async fn verify_tracks_binding<P>(provider: &P, factory: &dyn BindingFactory)
where
    P: WorkloadIdentityProvider + ?Sized,
{
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
pub async fn wrong_cloud_is_invalid_input<P>(provider: &P, factory: &dyn BindingFactory)
where
    P: WorkloadIdentityProvider + ?Sized,
{
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
pub async fn transient_failures_are_retried<P>(
    provider: &P,
    factory: &dyn BindingFactory,
    inject: &(dyn Fn(u32) + Send + Sync),
) where
    P: WorkloadIdentityProvider + ?Sized,
{
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

/// Workloads 1000..1000+n: `n` concurrent binds of distinct workloads all succeed, and each
/// binding is then present (a second bind of each changes nothing).
pub async fn concurrent_binds_lose_nothing<P>(provider: &P, factory: &dyn BindingFactory, n: usize)
where
    P: WorkloadIdentityProvider + ?Sized,
{
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
pub async fn concurrent_binds_of_one_workload_agree<P>(
    provider: &P,
    factory: &dyn BindingFactory,
    n: usize,
) where
    P: WorkloadIdentityProvider + ?Sized,
{
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

/// Runs every check that needs nothing but the provider and its factory, with 50 concurrent
/// workloads and 20 concurrent binds of one workload.
pub async fn run_all<P>(provider: &P, factory: &dyn BindingFactory)
where
    P: WorkloadIdentityProvider + ?Sized,
{
    bind_twice_is_unchanged(provider, factory).await;
    plan_does_not_write(provider, factory).await;
    changed_identity_is_updated(provider, factory).await;
    unbind_is_idempotent(provider, factory).await;
    verify_tracks_binding(provider, factory).await;
    wrong_cloud_is_invalid_input(provider, factory).await;
    concurrent_binds_lose_nothing(provider, factory, 50).await;
    concurrent_binds_of_one_workload_agree(provider, factory, 20).await;
}

/// One valid connection of each cloud, for the wrong-cloud check.
fn sample_connections() -> Vec<Connection> {
    let parsed = (|| -> crate::Result<Vec<Connection>> {
        Ok(vec![
            Connection::AwsRole {
                role: RoleRef::parse("porter-conformance-role")?,
            },
            Connection::AzureManagedIdentity {
                identity_name: AzureIdentityName::parse("porter-conformance")?,
                resource_group: AzureResourceGroup::parse("porter-conformance-rg")?,
            },
            Connection::GcpServiceAccount {
                service_account_email: GcpServiceAccountEmail::parse(
                    "conformance@porter-project.iam.gserviceaccount.com",
                )?,
            },
        ])
    })();
    let all = parsed.expect("sample connections are valid");
    debug_assert_eq!(all.len(), [Cloud::Aws, Cloud::Azure, Cloud::Gcp].len());
    all
}
