//! GKE Workload Identity bindings through the Reconciler on the fake, with 10 ms of latency per
//! call: 1,000 workloads of one app on 50 GCP service accounts, 20 on each.
//!
//! ```text
//! cargo bench --bench gcp
//! ```
//!
//! The table comes first: exact call counts (read off the fake's counters) and the wall time of
//! one run of each case, beside its bound — calls × latency / concurrency, or the chain of
//! calls one service account needs one after another if that is longer (its policy is read,
//! checked and written in turn). The targets, checked on every run (also under
//! `cargo test --benches`):
//!
//! | case | target |
//! |---|---|
//! | first deploy of 1,000 | at most 2 `setIamPolicy` per service account (coalescing), not one per workload |
//! | unchanged re-deploy of 1,000 | **0 writes**; at most service accounts + 2 reads in all (≤ 1 read per workload) |
//! | 200 services removed | their 200 members removed with at most 2 `setIamPolicy` per service account |
//!
//! The first deploy's wall time is checked too when run as a benchmark (`cargo bench`): within
//! its bound × the machine's own overhead on a 10 ms sleep (measured first: the fake alone) ×
//! 1.15. For comparison, the last row is the old way: a loop of `bind`, 32 at a
//! time, whose binds to one service account still coalesce. divan then times the first and
//! the unchanged deploy.

mod common;

use std::time::Duration;

use common::{APP, CONCURRENCY, LATENCY, Measured, NAMESPACE};
use porter_identity::{BindChange, Binding, Connection, GcpServiceAccountEmail, Workload};
use porter_identity_gcp::GcpWorkloadIdentityProvider;
use porter_identity_gcp::WORKLOAD_IDENTITY_USER;
use porter_identity_gcp::fake::FakeGcp;

const PROJECT: &str = "bench-project-1";
const LOCATION: &str = "us-central1";
const CLUSTER: &str = "bench";
const ACCOUNTS: usize = 50;
const N: usize = 1000;
const REMOVED: usize = 200;
const SET: &str = "setIamPolicy";
const GET: &str = "getIamPolicy";
const WRITES: &[&str] = &[SET];

fn email(i: usize) -> String {
    format!("bench-sa-{i}@{PROJECT}.iam.gserviceaccount.com")
}

fn fake() -> FakeGcp {
    let gcp = FakeGcp::new();
    gcp.add_gke_cluster(PROJECT, LOCATION, CLUSTER);
    for i in 0..ACCOUNTS {
        gcp.add_service_account(&email(i));
    }
    gcp.set_latency(LATENCY);
    gcp
}

/// A provider as a new deploy process has it: no cluster or service account read yet. (The
/// builder is async for the Google clients; with `.api(..)` it awaits nothing.)
fn provider(gcp: &FakeGcp) -> GcpWorkloadIdentityProvider {
    let build = GcpWorkloadIdentityProvider::builder()
        .gke_cluster(PROJECT, LOCATION, CLUSTER)
        .api(gcp.clone())
        .concurrency(CONCURRENCY)
        .build();
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(build)
        .expect("provider")
}

/// Workload `i` on service account `i % 50`: every account gets 20.
fn bindings(n: usize) -> Vec<Binding> {
    (0..n)
        .map(|i| {
            Binding::new(
                Workload::for_service(NAMESPACE, APP, &format!("svc-{i}")).expect("workload"),
                Connection::gcp_service_account(
                    GcpServiceAccountEmail::parse(&email(i % ACCOUNTS)).expect("email"),
                ),
            )
        })
        .collect()
}

/// The bound: the cluster read (a serial first step), then the other calls in whole waves of
/// `CONCURRENCY`; or — if longer — the chain one service account needs one after another: the
/// cluster read, then per read-modify-write its policy read, its check (first write only) and
/// its write.
fn bound(m: &Measured) -> Duration {
    let per_account = |op: &str| m.count(&[op]).div_ceil(ACCOUNTS as u64);
    let cluster = m.count(&["clusters.get"]);
    let chain = cluster + per_account(GET) + per_account("serviceAccounts.get") + per_account(SET);
    let waves = cluster + (m.total() - cluster).div_ceil(CONCURRENCY as u64);
    LATENCY * u32::try_from(waves.max(chain)).unwrap_or(u32::MAX)
}

fn measure<F: std::future::Future>(
    rt: &tokio::runtime::Runtime,
    gcp: &FakeGcp,
    label: &'static str,
    n: usize,
    work: F,
) -> (Measured, F::Output) {
    common::measure(
        rt,
        label,
        n,
        (
            &|| {
                gcp.reset_calls();
            },
            &|| gcp.calls(),
        ),
        (WRITES, "—"),
        work,
    )
}

fn members(gcp: &FakeGcp) -> usize {
    (0..ACCOUNTS)
        .map(|i| gcp.members(&email(i), WORKLOAD_IDENTITY_USER).len())
        .sum()
}

/// The table, with every count target checked; the first deploy's wall time too when `timed`.
fn count_calls(timed: bool) {
    common::header("GKE Workload Identity bindings through the Reconciler on the fake");
    let rt = common::runtime();
    let gcp = fake();
    let all = bindings(N);
    let overhead = common::calibrate(&rt, N, || {
        use porter_identity_gcp::api::GcpApi;
        let gcp = gcp.clone();
        async move {
            gcp.get_iam_policy(&email(0)).await.expect("policy");
        }
    });

    let p = provider(&gcp);
    let (first, report) = measure(
        &rt,
        &gcp,
        "first deploy",
        N,
        common::reconcile(&p, &all, &[]),
    );
    first.row(bound(&first));
    assert_eq!(report.changes(), N);
    assert!(
        first.count(&[SET]) <= 2 * ACCOUNTS as u64,
        "first deploy: {} setIamPolicy, over 2 per service account",
        first.count(&[SET])
    );
    assert_eq!(members(&gcp), N);
    if timed {
        // The machine's own overhead on every 10 ms sleep (the calibration), compounded over
        // the deploy's serial steps, plus 15 % for the provider's own work.
        let limit = bound(&first).mul_f64(overhead * 1.15);
        assert!(
            first.wall <= limit,
            "first deploy took {:?}, over {limit:?} (bound × {overhead:.2} × 1.15)",
            first.wall
        );
    }

    // A new deploy process: a new provider reads the cluster again.
    let p = provider(&gcp);
    let (unchanged, report) = measure(
        &rt,
        &gcp,
        "unchanged re-deploy (new process)",
        N,
        common::reconcile(&p, &all, &all),
    );
    unchanged.row(bound(&unchanged));
    assert_eq!(report.changes(), 0);
    assert_eq!(
        unchanged.writes(),
        0,
        "an unchanged re-deploy writes nothing"
    );
    assert!(
        unchanged.reads() <= (ACCOUNTS + 2) as u64,
        "unchanged re-deploy: {} reads, over service accounts + 2",
        unchanged.reads()
    );

    let (mut removed, report) = measure(
        &rt,
        &gcp,
        "200 services removed",
        N,
        common::reconcile(&p, &all[..N - REMOVED], &all),
    );
    removed.removed = Some(report.removed.len() as u64);
    removed.row(bound(&removed));
    assert_eq!(report.removed.len(), REMOVED);
    assert!(removed.count(&[SET]) <= 2 * ACCOUNTS as u64);
    assert_eq!(members(&gcp), N - REMOVED);

    // The old way, for comparison: a loop of bind over the unchanged workloads.
    let kept = &all[..N - REMOVED];
    let p = provider(&gcp);
    let (old, changes) = measure(
        &rt,
        &gcp,
        "loop of bind, unchanged (before)",
        N - REMOVED,
        common::loop_of_bind(&p, kept),
    );
    old.row(bound(&old));
    assert!(changes.iter().all(|c| *c == BindChange::Unchanged));
    println!();
}

/// Five deploy processes bind four workloads each to one service account while every call
/// takes 1 s (a policy read goes stale while another process writes: `ABORTED`, re-read).
fn contended_account() {
    let gcp = fake();
    let contended = format!("bench-contended@{PROJECT}.iam.gserviceaccount.com");
    gcp.add_service_account(&contended);
    gcp.set_latency(Duration::from_secs(1));
    let processes: Vec<_> = (0..5).map(|_| provider(&gcp)).collect();
    gcp.reset_calls();
    let wall = common::five_processes(&processes, |p, w| {
        Binding::new(
            Workload::for_service(NAMESPACE, APP, &format!("p{p}-w{w}")).expect("workload"),
            Connection::gcp_service_account(
                GcpServiceAccountEmail::parse(&contended).expect("email"),
            ),
        )
    });
    let sets = gcp.calls().get(SET).copied().unwrap_or(0);
    common::failure_row(
        "5 processes × 4 on one service account, 1 s a call",
        sets,
        wall,
        &format!("≤ 30 s, all bound; {} stale etags", sets.saturating_sub(5)),
    );
    assert_eq!(gcp.workload_identity_users(&contended).len(), 20);
    assert!(wall <= Duration::from_secs(30), "{wall:?}");
}

fn main() {
    count_calls(common::timed());
    common::failure_table(
        fake,
        provider,
        common::Failing {
            down: &|gcp: &FakeGcp| {
                gcp.inject_failures(None, porter_identity::ErrorKind::Unavailable, 1_000_000);
            },
            stall: &|gcp: &FakeGcp| {
                gcp.stall_every(5, Duration::from_secs(60));
            },
            calls: &|gcp: &FakeGcp| gcp.calls().values().sum(),
        },
        &bindings(10),
    );
    contended_account();
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
