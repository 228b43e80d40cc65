//! Federated identity credentials through the Reconciler on the fake ARM, with 10 ms of latency
//! per call: 1,000 workloads of one app on 50 user-assigned managed identities, 20 on each
//! (Azure's limit per identity).
//!
//! ```text
//! cargo bench --bench azure
//! ```
//!
//! The table comes first: exact ARM-call counts (read off the fake's counters) and the wall
//! time of one run of each case, beside its bound — calls × latency / concurrency, or the
//! longest chain of calls one identity needs if that is longer, since Azure takes one write at
//! a time per identity (a second one is a 409). The targets, checked on every run (also under
//! `cargo test --benches`):
//!
//! | case | target |
//! |---|---|
//! | first deploy of 1,000 | 1 write per workload, **zero 409s** from one provider (exactly 1,000 `CreateOrUpdate` calls) |
//! | unchanged re-deploy of 1,000 | **0 writes**; one identity read and ≤ 1 list per identity; at most identities × 2 + 2 reads in all |
//! | 200 services removed | exactly 200 deletes, nothing else written |
//!
//! The first deploy's wall time is checked too when run as a benchmark (`cargo bench`): within
//! 1.25 × its bound (the fake alone takes 1.15 × on the 2-core development machine, a 10 ms
//! sleep lasting longer). The other cases are too short for a ratio to mean much: a few waves of
//! calls, plus the reconciler's own work on 1,000 workloads (about 5 ms). For comparison, the
//! last row is the old way: a loop of `bind`, 32 at a time. divan then times the first and the
//! unchanged deploy.

mod common;

use std::time::Duration;

use common::{APP, CONCURRENCY, LATENCY, Measured, NAMESPACE};
use porter_identity::{
    AzureIdentityName, AzureResourceGroup, BindChange, Binding, Connection, Workload,
};
use porter_identity_azure::AzureWorkloadIdentityProvider;
use porter_identity_azure::fake::FakeAzure;

const CLUSTER_RG: &str = "aks-rg";
const CLUSTER: &str = "bench";
const ISSUER: &str = "https://eastus.oic.prod-aks.azure.com/tenant/bench/";
const RG: &str = "identities";
const IDENTITIES: usize = 50;
const N: usize = 1000;
const PER_IDENTITY: usize = N / IDENTITIES;
const REMOVED: usize = 200;
const PUT: &str = "FederatedIdentityCredentials_CreateOrUpdate";
const DELETE: &str = "FederatedIdentityCredentials_Delete";
const LIST: &str = "FederatedIdentityCredentials_List";
const GET_IDENTITY: &str = "UserAssignedIdentities_Get";
const WRITES: &[&str] = &[PUT, DELETE];

fn fake() -> FakeAzure {
    let azure = FakeAzure::new();
    azure.add_aks_cluster(CLUSTER_RG, CLUSTER, ISSUER);
    for i in 0..IDENTITIES {
        azure.add_identity(RG, &format!("identity-{i}"));
    }
    azure.set_latency(LATENCY);
    azure
}

/// A provider as a new deploy process has it: no cluster or identity read yet.
fn provider(azure: &FakeAzure) -> AzureWorkloadIdentityProvider {
    let build = AzureWorkloadIdentityProvider::builder()
        .aks_cluster(CLUSTER_RG, CLUSTER)
        .api(azure.clone())
        .concurrency(CONCURRENCY)
        .build();
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(build)
        .expect("provider")
}

/// Workload `i` on identity `i % 50`: every identity gets 20.
fn bindings(n: usize) -> Vec<Binding> {
    (0..n)
        .map(|i| {
            Binding::new(
                Workload::for_service(NAMESPACE, APP, &format!("svc-{i}")).expect("workload"),
                Connection::azure_managed_identity(
                    AzureIdentityName::parse(&format!("identity-{}", i % IDENTITIES))
                        .expect("identity"),
                    AzureResourceGroup::parse(RG).expect("resource group"),
                ),
            )
        })
        .collect()
}

/// The bound: calls × latency / concurrency, or — if longer — the calls one identity needs
/// one after another (the cluster read, then the identity's own reads, then its writes, one
/// at a time as Azure demands).
fn bound(m: &Measured, chain: u64) -> Duration {
    m.ideal()
        .max(LATENCY * u32::try_from(chain).unwrap_or(u32::MAX))
}

/// Runs one case and prints its row beside the bound for a chain of `chain` calls.
fn measure<F: std::future::Future>(
    rt: &tokio::runtime::Runtime,
    azure: &FakeAzure,
    label: &'static str,
    n: usize,
    chain: impl Fn(&Measured) -> u64,
    work: F,
) -> (Measured, F::Output) {
    let (m, out) = common::measure(
        rt,
        label,
        n,
        (
            &|| {
                azure.reset_calls();
            },
            &|| azure.calls(),
        ),
        (WRITES, DELETE),
        work,
    );
    m.row(bound(&m, chain(&m)));
    (m, out)
}

/// The calls of one identity, one after another, in a case that writes `writes` times to it:
/// its reads (the cluster, the identity and its list pages, read side by side: the longest of
/// them), then the writes.
fn chain_of(m: &Measured, writes: usize) -> u64 {
    let per_identity = |op: &str| m.count(&[op]).div_ceil(IDENTITIES as u64);
    let reads = m
        .count(&["ManagedClusters_Get"])
        .max(per_identity(GET_IDENTITY))
        .max(per_identity(LIST));
    reads + writes as u64
}

/// Within 1.25 × its bound, the bound first scaled by the machine's own overhead on a 10 ms
/// sleep (`overhead`, the calibration: a loaded machine stretches every sleep).
fn assert_within(m: &Measured, chain: u64, overhead: f64) {
    let limit = bound(m, chain).mul_f64(1.25 * overhead);
    assert!(
        m.wall <= limit,
        "{} took {:?}, over 1.25 × its bound × {overhead:.2} ({limit:?})",
        m.label,
        m.wall
    );
}

/// The table, with every count target checked; the first deploy's wall time too when `timed`.
fn count_calls(timed: bool) {
    common::header("Azure federated identity credentials through the Reconciler on the fake");
    let rt = common::runtime();
    let azure = fake();
    let all = bindings(N);
    let overhead = common::calibrate(&rt, N, || {
        use porter_identity_azure::api::ArmApi;
        let azure = azure.clone();
        async move {
            azure
                .get_identity(RG, "identity-0")
                .await
                .expect("identity");
        }
    });

    let p = provider(&azure);
    let (first, report) = measure(
        &rt,
        &azure,
        "first deploy",
        N,
        |m| chain_of(m, PER_IDENTITY),
        common::reconcile(&p, &all, &[]),
    );
    assert_eq!(report.changes(), N);
    assert_eq!(
        first.count(&[PUT]),
        N as u64,
        "one CreateOrUpdate per workload: not one 409 from a single provider"
    );
    assert_eq!(first.writes(), N as u64);
    assert_eq!(first.count(&[GET_IDENTITY]), IDENTITIES as u64);
    assert_eq!(
        first.count(&[LIST]),
        IDENTITIES as u64,
        "one list per identity"
    );
    for i in 0..IDENTITIES {
        assert_eq!(
            azure.credentials(RG, &format!("identity-{i}")).len(),
            PER_IDENTITY
        );
    }
    if timed {
        assert_within(&first, chain_of(&first, PER_IDENTITY), overhead);
    }

    // A new deploy process: a new provider reads the cluster and the identities again.
    let p = provider(&azure);
    let (unchanged, report) = measure(
        &rt,
        &azure,
        "unchanged re-deploy (new process)",
        N,
        |m| chain_of(m, 0),
        common::reconcile(&p, &all, &all),
    );
    assert_eq!(report.changes(), 0);
    assert_eq!(
        unchanged.writes(),
        0,
        "an unchanged re-deploy writes nothing"
    );
    assert_eq!(
        unchanged.count(&[GET_IDENTITY]),
        IDENTITIES as u64,
        "one identity read per identity"
    );
    assert!(
        unchanged.count(&[LIST]) <= N as u64,
        "at most one list per workload"
    );
    assert!(
        unchanged.reads() <= (IDENTITIES * 2 + 2) as u64,
        "unchanged re-deploy: {} reads, over identities × 2 + 2",
        unchanged.reads()
    );

    let (removed, report) = measure(
        &rt,
        &azure,
        "200 services removed",
        N,
        |m| chain_of(m, REMOVED / IDENTITIES),
        common::reconcile(&p, &all[..N - REMOVED], &all),
    );
    assert_eq!(report.removed.len(), REMOVED);
    assert_eq!(removed.count(&[DELETE]), REMOVED as u64);
    assert_eq!(
        removed.writes(),
        REMOVED as u64,
        "nothing but the deletes is written"
    );
    let left: usize = (0..IDENTITIES)
        .map(|i| azure.credentials(RG, &format!("identity-{i}")).len())
        .sum();
    assert_eq!(left, N - REMOVED);

    // The old way, for comparison: a loop of bind over the unchanged workloads.
    let kept = &all[..N - REMOVED];
    let p = provider(&azure);
    let (_, changes) = measure(
        &rt,
        &azure,
        "loop of bind, unchanged (before)",
        N - REMOVED,
        |m| chain_of(m, 0),
        common::loop_of_bind(&p, kept),
    );
    assert!(changes.iter().all(|c| *c == BindChange::Unchanged));
    println!();
}

/// Five deploy processes bind four workloads each to one identity while each write holds it
/// for 1 s: all bind, against the serialised bound of 20 × 1 s.
fn contended_identity() {
    let azure = fake();
    azure.add_identity(RG, "contended");
    azure.set_latency(Duration::from_secs(1));
    let processes: Vec<_> = (0..5).map(|_| provider(&azure)).collect();
    azure.reset_calls();
    let wall = common::five_processes(&processes, |p, w| {
        Binding::new(
            Workload::for_service(NAMESPACE, APP, &format!("p{p}-w{w}")).expect("workload"),
            Connection::azure_managed_identity(
                AzureIdentityName::parse("contended").expect("name"),
                AzureResourceGroup::parse(RG).expect("group"),
            ),
        )
    });
    let puts = azure.call_count(PUT);
    common::failure_row(
        "5 processes × 4 on one identity, 1 s a write",
        puts,
        wall,
        &format!(
            "≤ 30 s (20 × 1 s serialised), all bound; {} 409s",
            puts - 20
        ),
    );
    assert_eq!(azure.credentials(RG, "contended").len(), 20);
    assert!(wall <= Duration::from_secs(30), "{wall:?}");
}

fn main() {
    count_calls(common::timed());
    common::failure_table(
        fake,
        provider,
        common::Failing {
            down: &|azure: &FakeAzure| {
                azure.inject_failures(None, porter_identity::ErrorKind::Unavailable, 1_000_000);
            },
            stall: &|azure: &FakeAzure| {
                azure.stall_every(5, Duration::from_secs(60));
            },
            calls: &|azure: &FakeAzure| azure.calls().values().sum(),
        },
        &bindings(10),
    );
    contended_identity();
    divan::main();
}

#[divan::bench(sample_count = 3, sample_size = 1)]
fn first_deploy_of_1000(bencher: divan::Bencher) {
    common::bench_deploy(bencher, &bindings(N), false, fake, provider);
}

#[divan::bench(sample_count = 3, sample_size = 1)]
fn unchanged_redeploy_of_1000(bencher: divan::Bencher) {
    common::bench_deploy(bencher, &bindings(N), true, fake, provider);
}
