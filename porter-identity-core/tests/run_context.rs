//! The run context is passed, not ambient: a provider that spawns tasks keeps its call counts
//! and its shared reads, and two runs through one provider count apart.
#![cfg(feature = "testing")]
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;

use async_trait::async_trait;
use porter_identity_core::provider::SharedRead;
use porter_identity_core::{
    BindOutcome, Binding, Cloud, Connection, Error, ErrorKind, Plan, Reconciler, Result, RoleRef,
    RunContext, StaleLink, StaleQuery, UnbindOutcome, VerifyReport, Workload,
    WorkloadIdentityProvider,
};
use support::MemoryProvider;

/// What the binds of a run read once and share with the stale-link search.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Listing(Cloud);

impl SharedRead for Listing {
    type Value = usize;
}

/// A provider that lists once per batch, shares the listing, and binds each workload in a task
/// of its own, as a provider handing work to `tokio::spawn` would.
#[derive(Debug)]
struct Spawning(Arc<MemoryProvider>);

impl Spawning {
    async fn list(&self, run: &RunContext) -> Result<usize> {
        let op = self.0.op("List");
        self.0.call(op)?;
        run.record_call(op);
        Ok(self.0.len())
    }
}

#[async_trait]
impl WorkloadIdentityProvider for Spawning {
    fn cloud(&self) -> Cloud {
        self.0.cloud
    }

    async fn plan_all(&self, run: &RunContext, bindings: &[Binding]) -> Vec<Result<Plan>> {
        self.0.plan_all(run, bindings).await
    }

    async fn bind_all(&self, run: &RunContext, bindings: &[Binding]) -> Vec<Result<BindOutcome>> {
        match self.list(run).await {
            Ok(listed) => run.share(Listing(self.0.cloud), listed),
            Err(e) => return bindings.iter().map(|_| Err(e.clone())).collect(),
        }
        let tasks: Vec<_> = bindings
            .iter()
            .map(|b| {
                let (inner, run, b) = (self.0.clone(), run.clone(), b.clone());
                tokio::spawn(async move { inner.bind_one(&run, &b).await })
            })
            .collect();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.unwrap_or_else(|e| {
                Err(Error::cloud(
                    ErrorKind::Other,
                    self.0.cloud,
                    "Link",
                    e.to_string(),
                ))
            }));
        }
        results
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

    async fn stale_links(
        &self,
        run: &RunContext,
        query: &StaleQuery<'_>,
    ) -> Result<Vec<StaleLink>> {
        if run.take_shared(&Listing(self.0.cloud)).is_none() {
            self.list(run).await?;
        }
        Ok(query
            .previous
            .iter()
            .map(StaleLink::from_previous)
            .collect())
    }
}

fn binding(service: &str, role: &str) -> Binding {
    Binding::new(
        Workload::for_service("prod", "shop", service).unwrap(),
        Connection::aws_role(RoleRef::parse(role).unwrap()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_and_shared_reads_survive_a_provider_that_spawns_tasks() {
    let provider = Spawning(Arc::new(MemoryProvider::new(Cloud::Aws)));
    let gone = binding("gone", "old-role");
    provider.0.bind(&gone).await.unwrap();
    let desired = ["api", "worker", "cron"].map(|s| binding(s, "role"));
    let report = Reconciler::new("shop", "prod")
        .provider(&provider)
        .desired_bindings(desired)
        .previous_bindings([gone])
        .run()
        .await
        .unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.removed.len(), 1, "{report}");
    assert_eq!(
        report.calls.get(Cloud::Aws, "Link"),
        3,
        "the binds made in spawned tasks are counted: {:?}",
        report.calls
    );
    assert_eq!(
        report.calls.get(Cloud::Aws, "List"),
        1,
        "the stale-link search took the listing the binds shared: {:?}",
        report.calls
    );
    assert_eq!(report.calls.get(Cloud::Aws, "Unlink"), 1);
    assert_eq!(report.calls.total(), 5);
}

#[tokio::test]
async fn two_runs_through_one_provider_count_apart() {
    let provider = MemoryProvider::new(Cloud::Aws);
    let (one, other) = (RunContext::apply(), RunContext::apply());
    let two = [binding("a", "r"), binding("b", "r")];
    let three = [binding("c", "r"), binding("d", "r"), binding("e", "r")];
    let (first, second) = tokio::join!(
        provider.bind_all(&one, &two),
        provider.bind_all(&other, &three)
    );
    assert!(first.iter().chain(&second).all(Result::is_ok));
    assert_eq!(one.calls().get(Cloud::Aws, "Link"), 2);
    assert_eq!(other.calls().get(Cloud::Aws, "Link"), 3);
    // A single call is a batch of one in a run of its own: it counts in neither.
    provider.unbind(&two[0]).await.unwrap();
    assert_eq!(one.calls().total() + other.calls().total(), 5);
}
