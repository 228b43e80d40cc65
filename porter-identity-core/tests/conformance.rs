//! Core's own run of the conformance suite, against the small in-memory provider of
//! `support`, so the suite itself is known to pass on a correct provider and fail on broken
//! ones.
#![cfg(feature = "testing")]
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::atomic::Ordering;

use async_trait::async_trait;
use porter_identity_core::testing;
use porter_identity_core::{
    AzureIdentityName, AzureResourceGroup, BindOutcome, Binding, Cloud, Connection,
    GcpServiceAccountEmail, Plan, Result, RoleRef, RunContext, UnbindOutcome, VerifyReport,
    Workload, WorkloadIdentityProvider,
};
use support::MemoryProvider;

fn factory(workload: usize, identity: usize) -> Binding {
    Binding::new(
        Workload::for_service("conformance", "app", &format!("svc-{workload}")).unwrap(),
        Connection::aws_role(RoleRef::parse(&format!("role-{identity}")).unwrap()),
    )
}

#[tokio::test]
async fn memory_provider_passes_the_suite() {
    let p = MemoryProvider::new(Cloud::Aws);
    testing::run_all(&p, &factory).await;
    testing::concurrent_binds_lose_nothing(&p, &|w, i| factory(w + 5000, i), 200).await;
    testing::transient_failures_are_retried(&p, &factory, &|n| {
        p.fail_next.store(n, Ordering::SeqCst)
    })
    .await;
}

#[tokio::test]
#[should_panic(expected = "second bind")]
async fn suite_catches_a_provider_that_never_writes() {
    let mut p = MemoryProvider::new(Cloud::Aws);
    p.forgetful = true;
    testing::bind_twice_is_unchanged(&p, &factory).await;
}

#[tokio::test]
#[should_panic(expected = "must retry transient failures")]
async fn suite_catches_a_provider_that_does_not_retry() {
    #[derive(Debug)]
    struct NoRetry(MemoryProvider);
    #[async_trait]
    impl WorkloadIdentityProvider for NoRetry {
        fn cloud(&self) -> Cloud {
            Cloud::Aws
        }
        async fn plan_all(&self, run: &RunContext, bindings: &[Binding]) -> Vec<Result<Plan>> {
            self.0.plan_all(run, bindings).await
        }
        async fn bind_all(
            &self,
            run: &RunContext,
            bindings: &[Binding],
        ) -> Vec<Result<BindOutcome>> {
            // One call of each bind is made without the retry policy.
            self.0
                .batch(bindings, true, |b| async move {
                    self.0.call(self.0.op("Link"))?;
                    self.0.bind_one(run, b).await
                })
                .await
        }
        async fn unbind_all(
            &self,
            run: &RunContext,
            bindings: &[Binding],
        ) -> Vec<Result<UnbindOutcome>> {
            self.0.unbind_all(run, bindings).await
        }
        async fn verify_all(
            &self,
            run: &RunContext,
            bindings: &[Binding],
        ) -> Vec<Result<VerifyReport>> {
            self.0.verify_all(run, bindings).await
        }
    }
    let p = NoRetry(MemoryProvider::new(Cloud::Aws));
    // Three failures: the inner retry absorbs two, the outer unretried call meets the third.
    testing::transient_failures_are_retried(&p, &factory, &|_| {
        p.0.fail_next.store(3, Ordering::SeqCst)
    })
    .await;
}

/// Bindings of Azure managed identities and GCP service accounts, where another identity is
/// another link: the suite's reconciler checks take the other branch (a moved workload's old
/// link is removed, not updated).
#[tokio::test]
async fn memory_providers_of_azure_and_gcp_pass_the_suite() {
    let azure = |workload: usize, identity: usize| {
        Binding::new(
            Workload::for_service("conformance", "app", &format!("svc-{workload}")).unwrap(),
            Connection::azure_managed_identity(
                AzureIdentityName::parse(&format!("identity-{identity}")).unwrap(),
                AzureResourceGroup::parse("rg").unwrap(),
            ),
        )
    };
    testing::run_all(&MemoryProvider::new(Cloud::Azure), &azure).await;
    let gcp = |workload: usize, identity: usize| {
        Binding::new(
            Workload::for_service("conformance", "app", &format!("svc-{workload}")).unwrap(),
            Connection::gcp_service_account(
                GcpServiceAccountEmail::parse(&format!(
                    "identity-{identity}@project-x.iam.gserviceaccount.com"
                ))
                .unwrap(),
            ),
        )
    };
    testing::run_all(&MemoryProvider::new(Cloud::Gcp), &gcp).await;
}
