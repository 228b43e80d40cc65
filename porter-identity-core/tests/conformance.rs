//! Core's own run of the conformance suite, against a small in-memory provider defined here,
//! so the suite itself is known to pass on a correct provider and fail on broken ones.
#![cfg(feature = "testing")]
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use porter_identity_core::testing;
use porter_identity_core::{
    BindChange, BindOutcome, Binding, Cloud, Connection, Error, ErrorKind, Finding, Plan,
    PlanAction, Result, RetryPolicy, RoleRef, ServiceAccountPatch, UnbindOutcome, VerifyReport,
    Workload, WorkloadIdentityProvider, ensure_cloud,
};

/// Links (namespace, service account) to a role name, with injectable transient failures.
#[derive(Debug, Default)]
struct MemoryProvider {
    links: Mutex<HashMap<(String, String), String>>,
    fail_next: AtomicU32,
    /// A deliberately broken provider: bind always reports Created and writes nothing.
    forgetful: bool,
}

impl MemoryProvider {
    fn call(&self) -> Result<()> {
        let left = self.fail_next.load(Ordering::SeqCst);
        if left > 0
            && self
                .fail_next
                .compare_exchange(left, left - 1, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            return Err(Error::cloud(
                ErrorKind::Throttled,
                Cloud::Aws,
                "Link",
                "slow down",
            ));
        }
        Ok(())
    }

    fn key(b: &Binding) -> (String, String) {
        (
            b.workload.namespace().to_string(),
            b.workload.service_account().to_string(),
        )
    }

    fn role(b: &Binding) -> String {
        match &b.connection {
            Connection::AwsRole { role } => role.name().to_owned(),
            _ => unreachable!("checked by ensure_cloud"),
        }
    }
}

fn retry() -> RetryPolicy {
    RetryPolicy::default().jitter_seed(1)
}

#[async_trait]
impl WorkloadIdentityProvider for MemoryProvider {
    fn cloud(&self) -> Cloud {
        Cloud::Aws
    }

    async fn plan(&self, b: &Binding) -> Result<Plan> {
        ensure_cloud(Cloud::Aws, b)?;
        retry()
            .run(Cloud::Aws, "Link", || async { self.call() })
            .await?;
        let current = self.links.lock().unwrap().get(&Self::key(b)).cloned();
        let action = match current {
            None => PlanAction::Create,
            Some(r) if r == Self::role(b) => PlanAction::Unchanged,
            Some(r) => PlanAction::Update { current: r },
        };
        Ok(Plan {
            description: format!("{action:?} {b}"),
            action,
            service_account_patch: ServiceAccountPatch::default(),
        })
    }

    async fn bind(&self, b: &Binding) -> Result<BindOutcome> {
        ensure_cloud(Cloud::Aws, b)?;
        retry()
            .run(Cloud::Aws, "Link", || async { self.call() })
            .await?;
        let key = Self::key(b);
        let change = if self.forgetful {
            BindChange::Created
        } else {
            let mut links = self.links.lock().unwrap();
            match links.insert(key.clone(), Self::role(b)) {
                None => BindChange::Created,
                Some(prev) if prev == Self::role(b) => BindChange::Unchanged,
                Some(previous) => BindChange::Updated { previous },
            }
        };
        Ok(BindOutcome {
            change,
            resource_id: format!("{}/{}", key.0, key.1),
            service_account_patch: ServiceAccountPatch::default(),
        })
    }

    async fn unbind(&self, b: &Binding) -> Result<UnbindOutcome> {
        ensure_cloud(Cloud::Aws, b)?;
        retry()
            .run(Cloud::Aws, "Unlink", || async { self.call() })
            .await?;
        let key = Self::key(b);
        Ok(match self.links.lock().unwrap().remove(&key) {
            Some(_) => UnbindOutcome::Deleted {
                resource_id: format!("{}/{}", key.0, key.1),
            },
            None => UnbindOutcome::AlreadyAbsent,
        })
    }

    async fn verify(&self, b: &Binding) -> Result<VerifyReport> {
        ensure_cloud(Cloud::Aws, b)?;
        retry()
            .run(Cloud::Aws, "Link", || async { self.call() })
            .await?;
        let mut report = VerifyReport::default();
        match self.links.lock().unwrap().get(&Self::key(b)) {
            None => report.push(Finding::error("memory.link.missing", "no link", "bind it")),
            Some(r) if *r != Self::role(b) => {
                report.push(Finding::error("memory.link.wrong", "other role", "bind it"))
            }
            Some(_) => {}
        }
        Ok(report)
    }
}

fn factory(workload: usize, identity: usize) -> Binding {
    Binding::new(
        Workload::for_service("conformance", "app", &format!("svc-{workload}")).unwrap(),
        Connection::AwsRole {
            role: RoleRef::parse(&format!("role-{identity}")).unwrap(),
        },
    )
}

#[tokio::test]
async fn memory_provider_passes_the_suite() {
    let p = MemoryProvider::default();
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
    let p = MemoryProvider {
        forgetful: true,
        ..MemoryProvider::default()
    };
    testing::bind_twice_is_unchanged(&p, &factory).await;
}

#[tokio::test]
#[should_panic(expected = "must retry transient failures")]
async fn suite_catches_a_provider_that_does_not_retry() {
    #[derive(Debug, Default)]
    struct NoRetry(MemoryProvider);
    #[async_trait]
    impl WorkloadIdentityProvider for NoRetry {
        fn cloud(&self) -> Cloud {
            Cloud::Aws
        }
        async fn plan(&self, b: &Binding) -> Result<Plan> {
            self.0.plan(b).await
        }
        async fn bind(&self, b: &Binding) -> Result<BindOutcome> {
            self.0.call()?;
            self.0.bind(b).await
        }
        async fn unbind(&self, b: &Binding) -> Result<UnbindOutcome> {
            self.0.unbind(b).await
        }
        async fn verify(&self, b: &Binding) -> Result<VerifyReport> {
            self.0.verify(b).await
        }
    }
    let p = NoRetry::default();
    // Three failures: the inner retry absorbs two, the outer unretried call meets the third.
    testing::transient_failures_are_retried(&p, &factory, &|_| {
        p.0.fail_next.store(3, Ordering::SeqCst)
    })
    .await;
}
