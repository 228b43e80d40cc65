//! What the benches share: the runtime, the table, a measured case.
#![allow(dead_code)] // each bench uses its own subset

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use porter_identity::{BindChange, Binding, ReconcileReport, Reconciler, WorkloadIdentityProvider};

/// The app every bench deploys, and its namespace.
pub(crate) const APP: &str = "app";
pub(crate) const NAMESPACE: &str = "bench";

/// The latency every call of a fake gets.
pub(crate) const LATENCY: Duration = Duration::from_millis(10);
/// Cloud calls in flight at once (each provider's gate).
pub(crate) const CONCURRENCY: usize = 32;

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Whether this is `cargo bench` (an optimised build, timed) rather than `cargo test --benches`.
pub(crate) fn timed() -> bool {
    std::env::args().any(|a| a == "--bench")
}

pub(crate) fn header(title: &str) {
    println!("\n{title}: {LATENCY:?} per call, {CONCURRENCY} calls in flight");
    println!(
        "| case                              |     N |  calls | reads/wl | writes/wl | deletes | wall ms | bound ms |"
    );
    println!(
        "|-----------------------------------|------:|-------:|---------:|----------:|--------:|--------:|---------:|"
    );
}

/// One measured case: its calls (read off the fake's counters) and its wall time.
pub(crate) struct Measured {
    pub(crate) label: &'static str,
    pub(crate) n: usize,
    pub(crate) calls: BTreeMap<String, u64>,
    pub(crate) wall: Duration,
    /// The operations that write.
    pub(crate) writes: &'static [&'static str],
    /// The operation that deletes.
    pub(crate) delete: &'static str,
    /// Links removed, where no operation of its own deletes them (GCP removes members with
    /// the same setIamPolicy that adds them): shown instead of the delete count.
    pub(crate) removed: Option<u64>,
}

impl Measured {
    pub(crate) fn count(&self, ops: &[&str]) -> u64 {
        ops.iter()
            .map(|op| self.calls.get(*op).copied().unwrap_or(0))
            .sum()
    }

    pub(crate) fn total(&self) -> u64 {
        self.calls.values().sum()
    }

    pub(crate) fn writes(&self) -> u64 {
        self.count(self.writes)
    }

    pub(crate) fn reads(&self) -> u64 {
        self.total() - self.writes()
    }

    /// calls × latency / concurrency, in whole waves of `CONCURRENCY` calls: the wall time of
    /// perfect use of the gate.
    pub(crate) fn ideal(&self) -> Duration {
        LATENCY * u32::try_from(self.total().div_ceil(CONCURRENCY as u64)).unwrap_or(u32::MAX)
    }

    pub(crate) fn row(&self, bound: Duration) {
        let per = |x: u64| x as f64 / self.n as f64;
        println!(
            "| {:<33} | {:>5} | {:>6} | {:>8.3} | {:>9.3} | {:>7} | {:>7.0} | {:>8.0} |",
            self.label,
            self.n,
            self.total(),
            per(self.reads()),
            per(self.writes()),
            self.removed.unwrap_or_else(|| self.count(&[self.delete])),
            self.wall.as_secs_f64() * 1000.0,
            bound.as_secs_f64() * 1000.0,
        );
        let by_op: Vec<String> = self
            .calls
            .iter()
            .filter(|(_, c)| **c > 0)
            .map(|(op, c)| format!("{op} {c}"))
            .collect();
        println!("|   {} |", by_op.join(", "));
    }
}

/// Runs `work`, with the fake's counters reset before and read after.
pub(crate) fn measure<F: Future>(
    rt: &tokio::runtime::Runtime,
    label: &'static str,
    n: usize,
    counters: (&dyn Fn(), &dyn Fn() -> BTreeMap<String, u64>),
    kinds: (&'static [&'static str], &'static str),
    work: F,
) -> (Measured, F::Output) {
    (counters.0)();
    let start = Instant::now();
    let out = rt.block_on(work);
    let wall = start.elapsed();
    (
        Measured {
            label,
            n,
            calls: (counters.1)(),
            wall,
            writes: kinds.0,
            delete: kinds.1,
            removed: None,
        },
        out,
    )
}

/// What `calls` calls of the fake alone take, CONCURRENCY at a time: the machine's own
/// overhead (a 10 ms sleep lasts a little longer), which the bounds do not allow for. Returns
/// that overhead as a ratio (wall / ideal, at least 1).
pub(crate) fn calibrate<Fut: Future<Output = ()>>(
    rt: &tokio::runtime::Runtime,
    calls: usize,
    one: impl Fn() -> Fut,
) -> f64 {
    let start = Instant::now();
    rt.block_on(
        stream::iter(0..calls)
            .map(|_| one())
            .buffer_unordered(CONCURRENCY)
            .for_each(|()| async {}),
    );
    let wall = start.elapsed();
    let ideal = LATENCY.mul_f64(calls as f64 / CONCURRENCY as f64);
    println!(
        "| the fake alone: {calls} calls        | {calls:>5} | {calls:>6} |          |           |         | {:>7.0} | {:>8.0} |",
        wall.as_secs_f64() * 1000.0,
        ideal.as_secs_f64() * 1000.0
    );
    (wall.as_secs_f64() / ideal.as_secs_f64()).max(1.0)
}

/// One deploy through the Reconciler, which must succeed.
pub(crate) async fn reconcile(
    p: &dyn WorkloadIdentityProvider,
    desired: &[Binding],
    previous: &[Binding],
) -> ReconcileReport {
    let report = Reconciler::new(APP, NAMESPACE)
        .provider(p)
        .desired_bindings(desired.to_vec())
        .previous_bindings(previous.to_vec())
        .run()
        .await
        .expect("reconcile");
    assert!(report.is_ok(), "{report}");
    report
}

/// The old way, for comparison: `bind` for each binding, CONCURRENCY at a time.
pub(crate) async fn loop_of_bind(
    p: &dyn WorkloadIdentityProvider,
    bindings: &[Binding],
) -> Vec<BindChange> {
    stream::iter(bindings)
        .map(|b| async move { p.bind(b).await.expect("bind").change })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await
}

/// divan: a deploy of `all` by a new process (a new provider), each sample on a new cloud from
/// `cloud` — filled by a first deploy beforehand when `redeploy`, so that the sample is an
/// unchanged re-deploy.
pub(crate) fn bench_deploy<C, P: WorkloadIdentityProvider>(
    bencher: divan::Bencher,
    all: &[Binding],
    redeploy: bool,
    cloud: impl Fn() -> C,
    provider: impl Fn(&C) -> P,
) {
    let rt = runtime();
    let previous = if redeploy { all } else { &[] };
    bencher
        .with_inputs(|| {
            let c = cloud();
            if redeploy {
                rt.block_on(reconcile(&provider(&c), all, &[]));
            }
            (provider(&c), c)
        })
        .bench_local_values(|(p, _c)| rt.block_on(reconcile(&p, all, previous)));
}

/// How a failure case makes its cloud fail, on a fresh fake.
pub(crate) struct Failing<'a, C> {
    /// Every call of the endpoint answers 503.
    pub(crate) down: &'a dyn Fn(&C),
    /// One call in five answers only after 60 s.
    pub(crate) stall: &'a dyn Fn(&C),
    /// The calls of the endpoint so far.
    pub(crate) calls: &'a dyn Fn(&C) -> u64,
}

/// The failure table of a cloud, with the provider's default `RetryPolicy`, in virtual time
/// (tokio's paused clock: the fake's 503s, backoffs and 60 s stalls take no real time, and the
/// times shown are what they would take). Checked on every run:
///
/// - the endpoint down (503 to every call): one bind, and a one-service reconcile, make
///   exactly `max_attempts` calls of it;
/// - one call in five stalling for 60 s: ten binds (one reconcile) all succeed within 30 s.
pub(crate) fn failure_table<C, P: WorkloadIdentityProvider>(
    cloud: impl Fn() -> C,
    provider: impl Fn(&C) -> P,
    failing: Failing<'_, C>,
    bindings: &[Binding],
) {
    let max_attempts = porter_identity::RetryPolicy::default().get_max_attempts();
    println!(
        "\nThe same provider with the default RetryPolicy ({max_attempts} attempts), in virtual time:"
    );
    println!(
        "| case                                              | calls | wall (virtual) | target |"
    );
    println!(
        "|---------------------------------------------------|------:|---------------:|--------|"
    );
    let rt = paused_runtime();
    let row = failure_row;

    let c = cloud();
    let p = provider(&c);
    (failing.down)(&c);
    let start = tokio::time::Instant::now();
    let before = (failing.calls)(&c);
    let bound = rt.block_on(p.bind(&bindings[0]));
    let wall = rt.block_on(async { start.elapsed() });
    let calls = (failing.calls)(&c) - before;
    row("endpoint down: one bind", calls, wall, "= max_attempts");
    assert!(bound.is_err());
    assert_eq!(
        calls,
        u64::from(max_attempts),
        "one bind against a down endpoint"
    );

    let c = cloud();
    let p = provider(&c);
    (failing.down)(&c);
    let before = (failing.calls)(&c);
    let (report, wall) = rt.block_on(timed_reconcile(&p, &bindings[..1]));
    let calls = (failing.calls)(&c) - before;
    row(
        "endpoint down: one-service reconcile",
        calls,
        wall,
        "= max_attempts",
    );
    assert!(report.workloads[0].result.is_err(), "{report}");
    assert_eq!(
        calls,
        u64::from(max_attempts),
        "a one-service reconcile against a down endpoint\n{report}"
    );

    let c = cloud();
    let p = provider(&c);
    (failing.stall)(&c);
    let before = (failing.calls)(&c);
    let (report, wall) = rt.block_on(timed_reconcile(&p, &bindings[..10]));
    let calls = (failing.calls)(&c) - before;
    row(
        "1 call in 5 stalls 60 s: 10 binds",
        calls,
        wall,
        "< 30 s, all bound",
    );
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.changes(), 10, "{report}");
    assert!(wall < Duration::from_secs(30), "ten binds took {wall:?}");
}

/// One reconcile of `desired`, and how long it took on the runtime's clock.
async fn timed_reconcile(
    p: &dyn WorkloadIdentityProvider,
    desired: &[Binding],
) -> (ReconcileReport, Duration) {
    let start = tokio::time::Instant::now();
    let report = Reconciler::new(APP, NAMESPACE)
        .provider(p)
        .desired_bindings(desired.to_vec())
        .run()
        .await
        .expect("reconcile");
    (report, start.elapsed())
}

/// A runtime on tokio's paused clock: sleeps (the fakes' latency, backoffs, stalls) take no
/// real time, and `Instant`s measure what they would take.
pub(crate) fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("paused runtime")
}

/// One row of the failure table.
pub(crate) fn failure_row(label: &str, calls: u64, wall: Duration, target: &str) {
    println!(
        "| {label:<49} | {calls:>5} | {:>12.1} s | {target} |",
        wall.as_secs_f64()
    );
}

/// Five deploy processes (`processes`, providers with state of their own) bind four workloads
/// each (`of(p, w)`) at once, in virtual time: all must bind
/// ([`contended_binds_all_succeed`](porter_identity_core::testing::contended_binds_all_succeed)).
/// Returns the wall time.
pub(crate) fn five_processes<P: WorkloadIdentityProvider>(
    processes: &[P],
    of: impl Fn(usize, usize) -> Binding + Send + Sync,
) -> Duration {
    paused_runtime().block_on(porter_identity_core::testing::contended_binds_all_succeed(
        processes, 4, &of,
    ))
}
