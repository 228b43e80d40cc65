//! Bind of N = 1, 100 and 1,000 workloads on the fake EKS + IAM with 10 ms of latency per
//! cloud call: the cloud calls made, by operation and per workload, and the wall time, for a
//! first bind and for a re-bind of unchanged workloads (what every deploy does).
//!
//! ```text
//! cargo bench --bench bind
//! ```
//!
//! The call counts are printed first (they are exact, not sampled); divan then times each
//! case. Workloads are bound 32 at a time, as a deploy tool binding an app's services would.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use porter_identity::{
    BindChange, Binding, Connection, RetryPolicy, RoleRef, Workload, WorkloadIdentityProvider,
};
use porter_identity_aws::AwsPodIdentityProvider;
use porter_identity_aws::fake::FakeAws;

const CLUSTER: &str = "bench";
const LATENCY: Duration = Duration::from_millis(10);
const CONCURRENCY: usize = 32;
/// Ten roles shared round-robin: GetRole is cached per role, not per workload.
const ROLES: usize = 10;
const WRITES: [&str; 3] = [
    "CreatePodIdentityAssociation",
    "UpdatePodIdentityAssociation",
    "DeletePodIdentityAssociation",
];

fn setup(n: usize) -> (FakeAws, AwsPodIdentityProvider, Vec<Binding>) {
    let aws = FakeAws::new("123456789012", "us-east-1");
    aws.add_cluster(CLUSTER);
    aws.install_addon(CLUSTER, "eks-pod-identity-agent", "ACTIVE");
    for r in 0..ROLES {
        aws.add_role(&format!("role-{r}"), &FakeAws::pods_trust_policy());
    }
    aws.set_latency(LATENCY);
    let provider = AwsPodIdentityProvider::builder()
        .cluster(CLUSTER)
        .api(aws.clone())
        .retry_policy(RetryPolicy::default())
        .build()
        .expect("provider");
    let bindings = (0..n)
        .map(|i| {
            Binding::new(
                Workload::for_service("bench", "app", &format!("svc-{i}")).expect("workload"),
                Connection::AwsRole {
                    role: RoleRef::parse(&format!("role-{}", i % ROLES)).expect("role"),
                },
            )
        })
        .collect();
    (aws, provider, bindings)
}

async fn bind_all(provider: &AwsPodIdentityProvider, bindings: &[Binding]) -> Vec<BindChange> {
    stream::iter(bindings)
        .map(|b| async move { provider.bind(b).await.expect("bind").change })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn report(label: &str, n: usize, calls: &BTreeMap<String, u64>, wall: Duration) {
    let total: u64 = calls.values().sum();
    let writes: u64 = WRITES
        .iter()
        .map(|w| calls.get(*w).copied().unwrap_or(0))
        .sum();
    let reads = total - writes;
    println!(
        "| {label:<9} | {n:>5} | {total:>6} | {reads:>5} | {writes:>6} | {:>8.2} | {:>8.2} | {:>9.0} |",
        reads as f64 / n as f64,
        writes as f64 / n as f64,
        wall.as_secs_f64() * 1000.0
    );
    let by_op: Vec<String> = calls
        .iter()
        .filter(|(_, c)| **c > 0)
        .map(|(op, c)| format!("{op} {:.2}", *c as f64 / n as f64))
        .collect();
    println!(
        "|           |       |        |       |        | per workload: {} |",
        by_op.join(", ")
    );
}

/// Counts calls for first bind and re-bind at each N, and checks the re-bind target.
fn count_calls() {
    println!("\nEKS Pod Identity bind on the fake, {LATENCY:?} per call, {CONCURRENCY} at a time");
    println!("| pass      |     N |  calls | reads | writes | reads/wl | writes/wl |  wall ms |");
    println!("|-----------|-------|--------|-------|--------|----------|-----------|----------|");
    let rt = runtime();
    for n in [1, 100, 1000] {
        let (aws, provider, bindings) = setup(n);
        let start = Instant::now();
        let changes = rt.block_on(bind_all(&provider, &bindings));
        let wall = start.elapsed();
        assert!(changes.iter().all(|c| *c == BindChange::Created));
        report("first", n, &aws.calls(), wall);

        aws.reset_calls();
        let start = Instant::now();
        let changes = rt.block_on(bind_all(&provider, &bindings));
        let wall = start.elapsed();
        assert!(changes.iter().all(|c| *c == BindChange::Unchanged));
        let calls = aws.calls();
        report("re-bind", n, &calls, wall);
        let writes: u64 = WRITES
            .iter()
            .map(|w| calls.get(*w).copied().unwrap_or(0))
            .sum();
        let reads: u64 = calls.values().sum::<u64>() - writes;
        assert_eq!(writes, 0, "an unchanged re-bind must not write");
        assert!(
            reads as usize <= 2 * n,
            "an unchanged re-bind reads at most twice per workload"
        );

        // A new deploy process: a new provider, so the cluster and the roles are read again
        // (once per role, not per workload).
        let fresh = AwsPodIdentityProvider::builder()
            .cluster(CLUSTER)
            .api(aws.clone())
            .build()
            .expect("provider");
        aws.reset_calls();
        let start = Instant::now();
        let changes = rt.block_on(bind_all(&fresh, &bindings));
        let wall = start.elapsed();
        assert!(changes.iter().all(|c| *c == BindChange::Unchanged));
        report("new proc", n, &aws.calls(), wall);
    }
    println!();
}

fn main() {
    count_calls();
    divan::main();
}

#[divan::bench(args = [1, 100, 1000], sample_count = 3, sample_size = 1)]
fn first_bind(bencher: divan::Bencher, n: usize) {
    let rt = runtime();
    bencher
        .with_inputs(|| setup(n))
        .bench_local_values(|(_aws, provider, bindings)| {
            rt.block_on(bind_all(&provider, &bindings))
        });
}

#[divan::bench(args = [1, 100, 1000], sample_count = 3, sample_size = 1)]
fn rebind_unchanged(bencher: divan::Bencher, n: usize) {
    let rt = runtime();
    bencher
        .with_inputs(|| {
            let (aws, provider, bindings) = setup(n);
            rt.block_on(bind_all(&provider, &bindings));
            (aws, provider, bindings)
        })
        .bench_local_values(|(_aws, provider, bindings)| {
            rt.block_on(bind_all(&provider, &bindings))
        });
}
