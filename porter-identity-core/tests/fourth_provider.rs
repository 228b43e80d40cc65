//! The fourth provider: the one the core README shows under "Writing a provider", written from
//! the README alone, implementing only the batch calls. It passes the conformance suite, and a
//! check keeps it the README's own (a change to either shows here).
#![cfg(feature = "testing")]
#![allow(clippy::unwrap_used, unreachable_pub)]

// ---- the README's provider, verbatim ----
use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use porter_identity_core::provider::{CloudCalls, batch_refusals, each_binding, ensure_cloud};
use porter_identity_core::{
    BindChange, BindOutcome, Binding, Cloud, Finding, LinkKey, Operation, Plan, PlanAction, Result,
    RetryPolicy, RunContext, ServiceAccountPatch, UnbindOutcome, VerifyReport,
    WorkloadIdentityProvider,
};

/// The cloud's operations, each defined once: the calls, their counts and errors use them.
const GET_LINK: Operation = Operation::new(Cloud::Gcp, "links.get");
const SET_LINK: Operation = Operation::new(Cloud::Gcp, "links.set");

/// A cloud that keeps one link per workload and identity, in memory.
#[derive(Debug)]
pub struct InMemoryLinks {
    links: Mutex<BTreeMap<LinkKey, String>>,
    calls: CloudCalls,
}

impl Default for InMemoryLinks {
    /// A cloud with no links, reached at most 8 calls at a time.
    fn default() -> Self {
        InMemoryLinks {
            links: Mutex::new(BTreeMap::new()),
            calls: CloudCalls::new(RetryPolicy::default(), 8),
        }
    }
}

impl InMemoryLinks {
    /// What the link of `binding` points at now: one gated, retried call, counted in `run`.
    async fn get(&self, run: &RunContext, binding: &Binding) -> Result<Option<String>> {
        let key = binding.link_key().expect("an identity binding");
        let links = &self.links;
        self.calls
            .run(run, GET_LINK, || async {
                Ok(links.lock().expect("the links").get(&key).cloned())
            })
            .await
    }

    /// Points the link of `binding` at `to`, or removes it.
    async fn set(&self, run: &RunContext, binding: &Binding, to: Option<String>) -> Result<()> {
        let key = binding.link_key().expect("an identity binding");
        let links = &self.links;
        self.calls
            .run(run, SET_LINK, || async {
                let mut links = links.lock().expect("the links");
                match to.clone() {
                    Some(identity) => links.insert(key.clone(), identity),
                    None => links.remove(&key),
                };
                Ok(())
            })
            .await
    }

    async fn bind_one(&self, run: &RunContext, binding: &Binding) -> Result<BindOutcome> {
        let wanted = binding.connection.describe();
        let change = match self.get(run, binding).await? {
            Some(now) if now == wanted => BindChange::Unchanged,
            Some(previous) => BindChange::Updated { previous },
            None => BindChange::Created,
        };
        if change != BindChange::Unchanged {
            self.set(run, binding, Some(wanted.clone())).await?;
        }
        let mut patch = ServiceAccountPatch::default();
        patch.needs_pod_restart = change != BindChange::Unchanged;
        Ok(BindOutcome::new(change, wanted, patch))
    }

    async fn unbind_one(&self, run: &RunContext, binding: &Binding) -> Result<UnbindOutcome> {
        match self.get(run, binding).await? {
            Some(identity) => {
                self.set(run, binding, None).await?;
                Ok(UnbindOutcome::Deleted {
                    resource_id: identity,
                })
            }
            None => Ok(UnbindOutcome::AlreadyAbsent),
        }
    }
}

#[async_trait]
impl WorkloadIdentityProvider for InMemoryLinks {
    fn cloud(&self) -> Cloud {
        Cloud::Gcp
    }

    fn concurrency(&self) -> usize {
        self.calls.concurrency()
    }

    async fn plan_all(&self, run: &RunContext, bindings: &[Binding]) -> Vec<Result<Plan>> {
        // Refused before any call: another cloud's binding, two identities for one link.
        let refused = batch_refusals(bindings, true, |b| ensure_cloud(Cloud::Gcp, b));
        each_binding(bindings, refused, self.concurrency(), |b| async move {
            let wanted = b.connection.describe();
            let action = match self.get(run, b).await? {
                Some(now) if now == wanted => PlanAction::Unchanged,
                Some(current) => PlanAction::Update { current },
                None => PlanAction::Create,
            };
            Ok(Plan::new(
                action,
                format!("link {b}"),
                ServiceAccountPatch::default(),
            ))
        })
        .await
    }

    async fn bind_all(&self, run: &RunContext, bindings: &[Binding]) -> Vec<Result<BindOutcome>> {
        let refused = batch_refusals(bindings, true, |b| ensure_cloud(Cloud::Gcp, b));
        each_binding(bindings, refused, self.concurrency(), |b| {
            self.bind_one(run, b)
        })
        .await
    }

    async fn unbind_all(
        &self,
        run: &RunContext,
        bindings: &[Binding],
    ) -> Vec<Result<UnbindOutcome>> {
        let refused = batch_refusals(bindings, false, |b| ensure_cloud(Cloud::Gcp, b));
        each_binding(bindings, refused, self.concurrency(), |b| {
            self.unbind_one(run, b)
        })
        .await
    }

    async fn verify_all(
        &self,
        run: &RunContext,
        bindings: &[Binding],
    ) -> Vec<Result<VerifyReport>> {
        let refused = batch_refusals(bindings, false, |b| ensure_cloud(Cloud::Gcp, b));
        each_binding(bindings, refused, self.concurrency(), |b| async move {
            let mut report = VerifyReport::default();
            if self.get(run, b).await? != Some(b.connection.describe()) {
                report.push(Finding::error(
                    "links.missing",
                    format!("{b} is not linked"),
                    "bind it",
                ));
            }
            Ok(report)
        })
        .await
    }
}
// ---- end of the README's provider ----

use std::sync::atomic::{AtomicUsize, Ordering};

use porter_identity_core::testing;
use porter_identity_core::{Connection, GcpServiceAccountEmail, Workload};

fn factory(workload: usize, identity: usize) -> Binding {
    Binding::new(
        Workload::for_service("conformance", "app", &format!("svc-{workload}")).unwrap(),
        Connection::gcp_service_account(
            GcpServiceAccountEmail::parse(&format!(
                "identity-{identity}@project-x.iam.gserviceaccount.com"
            ))
            .unwrap(),
        ),
    )
}

#[tokio::test]
async fn the_readme_provider_passes_the_conformance_suite() {
    let cloud = InMemoryLinks::default();
    testing::run_all(&cloud, &factory).await;
    testing::concurrent_binds_lose_nothing(&cloud, &|w, i| factory(w + 5000, i), 100).await;
}

#[tokio::test]
async fn its_calls_are_counted_in_the_run_it_is_given() {
    let cloud = InMemoryLinks::default();
    let run = RunContext::apply();
    let batch: Vec<Binding> = (0..5).map(|w| factory(w, 0)).collect();
    let results = cloud.bind_all(&run, &batch).await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(run.calls().get(Cloud::Gcp, "links.get"), 5);
    assert_eq!(run.calls().get(Cloud::Gcp, "links.set"), 5);
    let again = RunContext::apply();
    let counted = AtomicUsize::new(0);
    for r in cloud.bind_all(&again, &batch).await {
        assert_eq!(r.unwrap().change, BindChange::Unchanged);
        counted.fetch_add(1, Ordering::SeqCst);
    }
    assert_eq!(counted.load(Ordering::SeqCst), 5);
    assert_eq!(again.calls().total(), 5, "an unchanged bind only reads");
}

/// The lines of `text` between the line containing `from` and the line containing `to`, each
/// trimmed, blank ones dropped.
fn region<'a>(text: &'a str, from: &str, to: &str) -> Vec<&'a str> {
    text.lines()
        .skip_while(|l| !l.contains(from))
        .skip(1)
        .take_while(|l| !l.contains(to))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn this_provider_is_the_one_the_readme_shows() {
    let readme = include_str!("../README.md");
    let section = &readme[readme
        .find("## Writing a provider")
        .expect("the README's section")..];
    let shown = region(section, "```rust", "# fn main()");
    let here = region(
        include_str!("fourth_provider.rs"),
        "---- the README's provider, verbatim ----",
        "---- end of the README's provider ----",
    );
    assert!(shown.len() > 100, "the README shows the whole provider");
    assert_eq!(shown, here, "the README's provider and this test's differ");
}
