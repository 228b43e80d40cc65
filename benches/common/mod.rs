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
