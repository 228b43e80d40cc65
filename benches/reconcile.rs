//! One call per deploy: the Reconciler on the fake EKS + IAM with 10 ms of latency per cloud
//! call, for 1,000 workloads of one app in one namespace (ten roles shared round-robin).
//!
//! ```text
//! cargo bench --bench reconcile
//! ```
//!
//! The table comes first: exact cloud-call counts (read off the fake's counters) and the wall
//! time of one run of each case, against the targets of the deploy API:
//!
//! | case | target |
//! |---|---|
//! | first deploy of 1,000 | 1 write per workload; ≤ 1.05 reads per workload plus one GetRole per role |
//! | unchanged re-deploy of 1,000 | 0 writes; ≤ 1.05 reads per workload; wall ≤ 1.25 × calls × latency / concurrency |
//! | 200 services removed | exactly 200 deletes; nothing else written |
//!
//! Call counts are checked on every run (also under `cargo test --benches`); the wall-time
//! target only when run as a benchmark (`cargo bench`). For comparison, the last row is the old
//! way: a loop of `bind`, 32 at a time. divan then times each case.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use porter_identity::{
    BindChange, Binding, Connection, ReconcileReport, Reconciler, RoleRef, Workload,
    WorkloadIdentityProvider,
};
use porter_identity_aws::AwsPodIdentityProvider;
use porter_identity_aws::fake::FakeAws;

const CLUSTER: &str = "bench";
const APP: &str = "app";
const NAMESPACE: &str = "bench";
const LATENCY: Duration = Duration::from_millis(10);
/// Cloud calls in flight at once (the provider's gate).
const CONCURRENCY: usize = 32;
const ROLES: usize = 10;
const N: usize = 1000;
const REMOVED: usize = 200;
const WRITES: [&str; 3] = [
    "CreatePodIdentityAssociation",
    "UpdatePodIdentityAssociation",
    "DeletePodIdentityAssociation",
];

fn fake() -> FakeAws {
    let aws = FakeAws::new("123456789012", "us-east-1");
    aws.add_cluster(CLUSTER);
    aws.install_addon(CLUSTER, "eks-pod-identity-agent", "ACTIVE");
    for r in 0..ROLES {
        aws.add_role(&format!("role-{r}"), &FakeAws::pods_trust_policy());
    }
    aws.set_latency(LATENCY);
    aws
}

/// A provider as a new deploy process has it: no cluster or role read yet.
fn provider(aws: &FakeAws) -> AwsPodIdentityProvider {
    AwsPodIdentityProvider::builder()
        .cluster(CLUSTER)
        .api(aws.clone())
        .concurrency(CONCURRENCY)
        .build()
        .expect("provider")
}

fn bindings(n: usize) -> Vec<Binding> {
    (0..n)
        .map(|i| {
            Binding::new(
                Workload::for_service(NAMESPACE, APP, &format!("svc-{i}")).expect("workload"),
                Connection::AwsRole {
                    role: RoleRef::parse(&format!("role-{}", i % ROLES)).expect("role"),
                },
            )
        })
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

async fn reconcile(
    p: &AwsPodIdentityProvider,
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

/// One measured case: its calls and wall time.
struct Measured {
    label: &'static str,
    n: usize,
    calls: BTreeMap<String, u64>,
    wall: Duration,
}

impl Measured {
    fn count(&self, ops: &[&str]) -> u64 {
        ops.iter()
            .map(|op| self.calls.get(*op).copied().unwrap_or(0))
            .sum()
    }

    fn total(&self) -> u64 {
        self.calls.values().sum()
    }

    fn writes(&self) -> u64 {
        self.count(&WRITES)
    }

    fn reads(&self) -> u64 {
        self.total() - self.writes()
    }

    /// 1.25 × calls × latency / concurrency.
    fn wall_target(&self) -> Duration {
        LATENCY.mul_f64(1.25 * self.total() as f64 / CONCURRENCY as f64)
    }

    fn row(&self) {
        let per = |x: u64| x as f64 / self.n as f64;
        println!(
            "| {:<33} | {:>5} | {:>6} | {:>8.3} | {:>9.3} | {:>7} | {:>7.0} | {:>9.0} |",
            self.label,
            self.n,
            self.total(),
            per(self.reads()),
            per(self.writes()),
            self.count(&["DeletePodIdentityAssociation"]),
            self.wall.as_secs_f64() * 1000.0,
            self.wall_target().as_secs_f64() * 1000.0,
        );
        let by_op: Vec<String> = self
            .calls
            .iter()
            .filter(|(_, c)| **c > 0)
            .map(|(op, c)| format!("{op} {c}"))
            .collect();
        println!(
            "|   {:<31} |       |        |          |           |         |         |           |",
            by_op.join(", ")
        );
    }
}

fn measure<F: Future>(
    rt: &tokio::runtime::Runtime,
    aws: &FakeAws,
    label: &'static str,
    n: usize,
    work: F,
) -> (Measured, F::Output) {
    aws.reset_calls();
    let start = Instant::now();
    let out = rt.block_on(work);
    let wall = start.elapsed();
    let measured = Measured {
        label,
        n,
        calls: aws.calls(),
        wall,
    };
    measured.row();
    (measured, out)
}

/// What the fake alone achieves on this machine: N calls, CONCURRENCY at a time, no provider
/// in between. The timer makes a 10 ms sleep last a little longer; the targets do not allow
/// for that.
fn calibrate(rt: &tokio::runtime::Runtime, aws: &FakeAws) {
    use porter_identity_aws::api::EksIamApi;
    let start = Instant::now();
    rt.block_on(
        stream::iter(0..N)
            .map(|_| aws.describe_cluster(CLUSTER))
            .buffer_unordered(CONCURRENCY)
            .for_each(|r| async move {
                r.expect("describe");
            }),
    );
    let wall = start.elapsed();
    let ideal = LATENCY.mul_f64(N as f64 / CONCURRENCY as f64);
    println!(
        "| the fake alone: {N} calls        | {N:>5} | {N:>6} |          |           |         | {:>7.0} | ideal {:>3.0} |",
        wall.as_secs_f64() * 1000.0,
        ideal.as_secs_f64() * 1000.0
    );
}

/// The table, with every count target checked; the wall-time target too when `timed`.
fn count_calls(timed: bool) {
    println!(
        "\nEKS Pod Identity through the Reconciler on the fake: {LATENCY:?} per call, {CONCURRENCY} calls in flight"
    );
    println!(
        "| case                              |     N |  calls | reads/wl | writes/wl | deletes | wall ms | target ms |"
    );
    println!(
        "|-----------------------------------|------:|-------:|---------:|----------:|--------:|--------:|----------:|"
    );
    let rt = runtime();
    let aws = fake();
    let all = bindings(N);
    calibrate(&rt, &aws);

    let p = provider(&aws);
    let (first, report) = measure(&rt, &aws, "first deploy", N, reconcile(&p, &all, &[]));
    assert_eq!(report.changes(), N);
    assert_eq!(first.writes(), N as u64, "one write per workload");
    let get_role = first.count(&["GetRole"]);
    assert_eq!(get_role, ROLES as u64, "one GetRole per role");
    assert!(
        (first.reads() - get_role) as f64 <= 1.05 * N as f64,
        "first deploy: {} reads besides GetRole",
        first.reads() - get_role
    );

    // A new deploy process: a new provider reads the cluster and the roles again.
    let p = provider(&aws);
    let (unchanged, report) = measure(
        &rt,
        &aws,
        "unchanged re-deploy (new process)",
        N,
        reconcile(&p, &all, &all),
    );
    assert_eq!(report.changes(), 0);
    assert_eq!(
        unchanged.writes(),
        0,
        "an unchanged re-deploy writes nothing"
    );
    assert!(
        unchanged.reads() as f64 <= 1.05 * N as f64,
        "unchanged re-deploy: {} reads",
        unchanged.reads()
    );
    if timed {
        assert!(
            unchanged.wall <= unchanged.wall_target(),
            "unchanged re-deploy took {:?}, over the target {:?}",
            unchanged.wall,
            unchanged.wall_target()
        );
    }

    let (removed, report) = measure(
        &rt,
        &aws,
        "200 services removed",
        N,
        reconcile(&p, &all[..N - REMOVED], &all),
    );
    assert_eq!(report.removed.len(), REMOVED);
    assert_eq!(
        removed.count(&["DeletePodIdentityAssociation"]),
        REMOVED as u64
    );
    assert_eq!(
        removed.writes(),
        REMOVED as u64,
        "nothing but the deletes is written"
    );

    // The old way, for comparison: a loop of bind over the unchanged workloads.
    let kept = &all[..N - REMOVED];
    let p = provider(&aws);
    let (_, changes) = measure(
        &rt,
        &aws,
        "loop of bind, unchanged (before)",
        N - REMOVED,
        stream::iter(kept)
            .map(|b| {
                let p = &p;
                async move { p.bind(b).await.expect("bind").change }
            })
            .buffer_unordered(32)
            .collect::<Vec<_>>(),
    );
    assert!(changes.iter().all(|c| *c == BindChange::Unchanged));
    println!();
}

fn main() {
    let timed = std::env::args().any(|a| a == "--bench");
    count_calls(timed);
    divan::main();
}

#[divan::bench(sample_count = 3, sample_size = 1)]
fn first_deploy_of_1000(bencher: divan::Bencher) {
    let rt = runtime();
    let all = bindings(N);
    bencher
        .with_inputs(|| {
            let aws = fake();
            (provider(&aws), aws)
        })
        .bench_local_values(|(p, _aws)| rt.block_on(reconcile(&p, &all, &[])));
}

#[divan::bench(sample_count = 3, sample_size = 1)]
fn unchanged_redeploy_of_1000(bencher: divan::Bencher) {
    let rt = runtime();
    let all = bindings(N);
    bencher
        .with_inputs(|| {
            let aws = fake();
            rt.block_on(reconcile(&provider(&aws), &all, &[]));
            (provider(&aws), aws)
        })
        .bench_local_values(|(p, _aws)| rt.block_on(reconcile(&p, &all, &all)));
}
