//! A small in-memory provider for core's own tests: links keyed by their natural key
//! ([`Binding::link_key`]), for any one cloud, with injectable transient failures and a
//! deliberately broken mode, so the suite and the reconciler are known to pass on a correct
//! provider and fail on broken ones.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)] // each test binary uses a subset

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use async_trait::async_trait;
use porter_identity_core::provider::{CloudCalls, batch_refusals, each_binding, ensure_cloud};
use porter_identity_core::{
    BindChange, BindOutcome, Binding, Cloud, Error, ErrorKind, Finding, LinkKey, Operation, Plan,
    PlanAction, Result, RetryPolicy, RunContext, ServiceAccountPatch, UnbindOutcome, VerifyReport,
    WorkloadIdentityProvider,
};

/// Links of one cloud, in memory.
#[derive(Debug)]
pub struct MemoryProvider {
    pub cloud: Cloud,
    /// Link key → (identity, resource id).
    links: Mutex<BTreeMap<LinkKey, (String, String)>>,
    next_id: AtomicU64,
    /// The next this many calls fail as throttled.
    pub fail_next: AtomicU32,
    /// A deliberately broken provider: bind always reports Created and writes nothing.
    pub forgetful: bool,
    /// Writes made (binds that created or updated, unbinds that deleted).
    pub writes: AtomicU64,
    calls: CloudCalls,
}

impl MemoryProvider {
    pub fn new(cloud: Cloud) -> Self {
        MemoryProvider {
            cloud,
            links: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(1),
            fail_next: AtomicU32::new(0),
            forgetful: false,
            writes: AtomicU64::new(0),
            calls: CloudCalls::new(RetryPolicy::default().jitter_seed(1), 8),
        }
    }

    /// One cloud call, `op`: fails while `fail_next` is above zero.
    pub fn call(&self, op: Operation) -> Result<()> {
        let left = self.fail_next.load(Ordering::SeqCst);
        if left > 0
            && self
                .fail_next
                .compare_exchange(left, left - 1, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            return Err(Error::cloud(
                ErrorKind::Throttled,
                self.cloud,
                op.name(),
                "slow down",
            ));
        }
        Ok(())
    }

    /// The operation `name` of this provider's cloud.
    pub fn op(&self, name: &'static str) -> Operation {
        Operation::new(self.cloud, name)
    }

    async fn checked(
        &self,
        run: &RunContext,
        b: &Binding,
        op: &'static str,
    ) -> Result<(LinkKey, String)> {
        let op = self.op(op);
        self.calls.run(run, op, || async { self.call(op) }).await?;
        Ok((b.link_key().unwrap(), b.connection.describe()))
    }

    /// How many links there are.
    pub fn len(&self) -> usize {
        self.links.lock().unwrap().len()
    }

    pub async fn plan_one(&self, run: &RunContext, b: &Binding) -> Result<Plan> {
        let (key, identity) = self.checked(run, b, "Get").await?;
        let current = self.links.lock().unwrap().get(&key).cloned();
        let action = match current {
            None => PlanAction::Create,
            Some((i, _)) if i == identity => PlanAction::Unchanged,
            Some((i, _)) => PlanAction::Update { current: i },
        };
        let (description, patch) = (
            format!("{action:?} {b}"),
            patch(action != PlanAction::Unchanged),
        );
        Ok(Plan::new(action, description, patch))
    }

    pub async fn bind_one(&self, run: &RunContext, b: &Binding) -> Result<BindOutcome> {
        let (key, identity) = self.checked(run, b, "Link").await?;
        if self.forgetful {
            return Ok(BindOutcome::new(
                BindChange::Created,
                "forgotten",
                patch(true),
            ));
        }
        let mut links = self.links.lock().unwrap();
        let (change, id) = match links.get(&key).cloned() {
            Some((i, id)) if i == identity => (BindChange::Unchanged, id),
            Some((previous, id)) => (BindChange::Updated { previous }, id),
            None => (
                BindChange::Created,
                format!("link-{}", self.next_id.fetch_add(1, Ordering::SeqCst)),
            ),
        };
        if change != BindChange::Unchanged {
            self.writes.fetch_add(1, Ordering::SeqCst);
        }
        links.insert(key, (identity, id.clone()));
        let patch = patch(change != BindChange::Unchanged);
        Ok(BindOutcome::new(change, id, patch))
    }

    pub async fn unbind_one(&self, run: &RunContext, b: &Binding) -> Result<UnbindOutcome> {
        let (key, _) = self.checked(run, b, "Unlink").await?;
        Ok(match self.links.lock().unwrap().remove(&key) {
            Some((_, resource_id)) => {
                self.writes.fetch_add(1, Ordering::SeqCst);
                UnbindOutcome::Deleted { resource_id }
            }
            None => UnbindOutcome::AlreadyAbsent,
        })
    }

    pub async fn verify_one(&self, run: &RunContext, b: &Binding) -> Result<VerifyReport> {
        let (key, identity) = self.checked(run, b, "Get").await?;
        let mut report = VerifyReport::default();
        match self.links.lock().unwrap().get(&key) {
            None => report.push(Finding::error("memory.link.missing", "no link", "bind it")),
            Some((i, _)) if *i != identity => report.push(Finding::error(
                "memory.link.wrong",
                "other identity",
                "bind it",
            )),
            Some(_) => {
                // What the link needs of the cluster, as a real provider says it.
                report
                    .service_account_patch
                    .annotations
                    .insert(format!("memory.example/{}", self.cloud), identity);
            }
        }
        Ok(report)
    }

    /// Runs `one` on each binding that the batch does not refuse, keeping input order.
    pub async fn batch<'a, T, F, Fut>(
        &self,
        bindings: &'a [Binding],
        conflicts: bool,
        one: F,
    ) -> Vec<Result<T>>
    where
        F: Fn(&'a Binding) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let refused = batch_refusals(bindings, conflicts, |b| ensure_cloud(self.cloud, b));
        each_binding(bindings, refused, self.concurrency(), one).await
    }
}

fn patch(changed: bool) -> ServiceAccountPatch {
    let mut patch = ServiceAccountPatch::default();
    patch.needs_pod_restart = changed;
    patch
}

#[async_trait]
impl WorkloadIdentityProvider for MemoryProvider {
    fn cloud(&self) -> Cloud {
        self.cloud
    }

    fn concurrency(&self) -> usize {
        self.calls.concurrency()
    }

    async fn plan_all(&self, run: &RunContext, bindings: &[Binding]) -> Vec<Result<Plan>> {
        self.batch(bindings, true, |b| self.plan_one(run, b)).await
    }

    async fn bind_all(&self, run: &RunContext, bindings: &[Binding]) -> Vec<Result<BindOutcome>> {
        self.batch(bindings, true, |b| self.bind_one(run, b)).await
    }

    async fn unbind_all(
        &self,
        run: &RunContext,
        bindings: &[Binding],
    ) -> Vec<Result<UnbindOutcome>> {
        self.batch(bindings, false, |b| self.unbind_one(run, b))
            .await
    }

    async fn verify_all(
        &self,
        run: &RunContext,
        bindings: &[Binding],
    ) -> Vec<Result<VerifyReport>> {
        self.batch(bindings, false, |b| self.verify_one(run, b))
            .await
    }
}
