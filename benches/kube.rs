//! The Kubernetes step at 1,000 services: the step of a GKE deploy (the clouds' side on the
//! GCP fake, at no latency) against the Kubernetes API fake over HTTPS with 10 ms of latency per
//! request, 1,000 ServiceAccounts and Deployments in one namespace.
//!
//! ```text
//! cargo bench --bench kube
//! ```
//!
//! | case | target |
//! |---|---|
//! | first deploy | one apply per ServiceAccount that changes, plus the namespace's reads |
//! | unchanged re-deploy | ≤ 10 API calls in all, 0 writes; wall ≤ 1.25 × bound |
//! | 10 services moved to another GCP service account | 10 applies |
//!
//! The bound is the calls in whole waves of the cluster's concurrency (16), 10 ms a wave, each
//! phase after the one before: the namespace's six lists, the writes, the pods read again after
//! them. Call counts are checked on every run (also under `cargo test --benches`); the
//! wall-time target only as a benchmark (`cargo bench`), scaled by the machine's own overhead
//! on the same lists with no step around them.

mod common;

use std::time::{Duration, Instant};

use common::{APP, LATENCY, NAMESPACE};
use porter_identity::{Binding, Connection, GcpServiceAccountEmail, ReconcileReport, Workload};
use porter_identity_gcp::GcpWorkloadIdentityProvider;
use porter_identity_gcp::fake::FakeGcp;
use porter_identity_kube::Cluster;
use porter_identity_kube::fake::{FakeKube, FakeKubeServer};
use porter_identity_kube::step::StepOptions;

const PROJECT: &str = "bench-project-1";
const LOCATION: &str = "us-central1";
const CLUSTER: &str = "bench";
const ACCOUNTS: usize = 50;
const N: usize = 1000;
const MOVED: usize = 10;
/// The cluster's calls in flight at once (its default).
const CONCURRENCY: usize = porter_identity::DEFAULT_CONCURRENCY;
const A_DAY_AGO: &str = "2026-01-01T00:00:00Z";

fn email(i: usize) -> String {
    format!("bench-sa-{i}@{PROJECT}.iam.gserviceaccount.com")
}

fn gcp() -> (FakeGcp, GcpWorkloadIdentityProvider) {
    let gcp = FakeGcp::new();
    gcp.add_gke_cluster(PROJECT, LOCATION, CLUSTER);
    for i in 0..=ACCOUNTS {
        gcp.add_service_account(&email(i));
    }
    let build = GcpWorkloadIdentityProvider::builder()
        .gke_cluster(PROJECT, LOCATION, CLUSTER)
        .api(gcp.clone())
        .build();
    let p = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(build)
        .expect("provider");
    (gcp, p)
}

/// Workload `i` on GCP service account `account(i)`.
fn bindings(account: impl Fn(usize) -> usize) -> Vec<Binding> {
    (0..N)
        .map(|i| {
            Binding::new(
                Workload::for_service(NAMESPACE, APP, &format!("svc-{i}")).expect("workload"),
                Connection::gcp_service_account(
                    GcpServiceAccountEmail::parse(&email(account(i))).expect("email"),
                ),
            )
        })
        .collect()
}

/// The namespace as a chart made it: per service, its ServiceAccount and a Deployment of one
/// pod running as it.
async fn kube() -> (FakeKube, FakeKubeServer, Cluster) {
    let kube = FakeKube::new();
    for i in 0..N {
        let service = format!("svc-{i}");
        let sa = Workload::for_service(NAMESPACE, APP, &service).expect("workload");
        kube.add_service(
            NAMESPACE,
            sa.service_account().as_str(),
            &service,
            1,
            A_DAY_AGO,
        );
    }
    let server = kube
        .serve("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("the Kubernetes API fake");
    let cluster = server.cluster().await.expect("cluster");
    kube.set_latency(LATENCY);
    (kube, server, cluster)
}

/// One measured step.
struct Step {
    label: &'static str,
    requests: u64,
    writes: u64,
    wall: Duration,
}

impl Step {
    /// Whole waves of `CONCURRENCY` calls, 10 ms each: the reads, the writes, the pods read
    /// again when something was written.
    fn bound(&self) -> Duration {
        let reads = self.requests - self.writes;
        let waves = |calls: u64| calls.div_ceil(CONCURRENCY as u64);
        let reread = u64::from(self.writes > 0);
        LATENCY * u32::try_from(waves(reads - reread) + waves(self.writes) + reread).unwrap_or(0)
    }

    fn row(&self) {
        println!(
            "| {:<33} | {:>5} | {:>6} | {:>6} | {:>7.0} | {:>8.0} |",
            self.label,
            N,
            self.requests,
            self.writes,
            self.wall.as_secs_f64() * 1000.0,
            self.bound().as_secs_f64() * 1000.0
        );
    }
}

/// Runs the step of `report` and measures it.
async fn step(
    label: &'static str,
    kube: &FakeKube,
    cluster: &Cluster,
    mut report: ReconcileReport,
) -> Step {
    kube.reset_requests();
    let start = Instant::now();
    cluster
        .reconcile_step(&mut report, &StepOptions::default())
        .await
        .expect("the step");
    let wall = start.elapsed();
    for sa in &report.service_accounts {
        let step = sa.cluster.as_ref().expect("stepped");
        assert!(step.error.is_none(), "{}: {:?}", sa.workload, step.error);
    }
    let m = Step {
        label,
        requests: kube.requests(),
        writes: kube.writes(),
        wall,
    };
    m.row();
    m
}

/// The table, with every count target checked; the wall-time target too when `timed`.
fn count_calls(timed: bool) {
    println!(
        "\nThe Kubernetes step on the API fake: {LATENCY:?} per request, {CONCURRENCY} in flight, 1,000 services"
    );
    println!(
        "| case                              |     N | calls  | writes | wall ms | bound ms |"
    );
    println!(
        "|-----------------------------------|------:|-------:|-------:|--------:|---------:|"
    );
    let rt = common::runtime();
    let (_gcp, p) = gcp();
    let first_set = bindings(|i| i % ACCOUNTS);
    rt.block_on(async {
        let (kube, server, cluster) = kube().await;
        // The machine's own overhead: the namespace's lists alone, with no step around them.
        let start = Instant::now();
        let (w, a, _) = futures_util::future::try_join3(
            cluster.workloads(NAMESPACE),
            cluster.service_accounts(Some(NAMESPACE)),
            cluster.pods_in(NAMESPACE),
        )
        .await
        .expect("lists");
        assert_eq!((w.len(), a.len()), (N, N));
        let overhead = (start.elapsed().as_secs_f64() / LATENCY.as_secs_f64()).max(1.0);
        println!(
            "| the fake alone: the lists         |     - |      6 |      0 | {:>7.0} | {:>8.0} |",
            start.elapsed().as_secs_f64() * 1000.0,
            LATENCY.as_secs_f64() * 1000.0
        );

        let report = common::reconcile(&p, &first_set, &[]).await;
        let first = step("first deploy", &kube, &cluster, report).await;
        assert_eq!(first.writes, N as u64, "one apply per ServiceAccount");
        assert!(
            first.requests - first.writes <= 7,
            "the namespace's reads, and its pods after the writes"
        );

        let report = common::reconcile(&p, &first_set, &first_set).await;
        let unchanged = step("unchanged re-deploy", &kube, &cluster, report).await;
        assert_eq!(unchanged.writes, 0, "an unchanged re-deploy writes nothing");
        assert!(unchanged.requests <= 10, "{} calls", unchanged.requests);
        if timed {
            let limit = unchanged.bound().mul_f64(1.25 * overhead);
            assert!(
                unchanged.wall <= limit,
                "the unchanged step took {:?}, over 1.25 × its bound × the overhead {overhead:.2} ({limit:?})",
                unchanged.wall
            );
        }

        // Ten services move to another GCP service account: their annotations change.
        let moved = bindings(|i| if i < MOVED { ACCOUNTS } else { i % ACCOUNTS });
        let report = common::reconcile(&p, &moved, &first_set).await;
        let ten = step("10 services moved", &kube, &cluster, report).await;
        assert_eq!(ten.writes, MOVED as u64, "one apply per changed ServiceAccount");
        server.shutdown().await;
    });
    println!();
}

fn main() {
    count_calls(common::timed());
    divan::main();
}

/// The unchanged step alone, timed by divan.
#[divan::bench(sample_count = 5, sample_size = 1)]
fn unchanged_step_of_1000(bencher: divan::Bencher) {
    let rt = common::runtime();
    let (_gcp, p) = gcp();
    let all = bindings(|i| i % ACCOUNTS);
    let (kube, server, cluster) = rt.block_on(kube());
    let first = rt.block_on(common::reconcile(&p, &all, &[]));
    let mut report = first;
    rt.block_on(cluster.reconcile_step(&mut report, &StepOptions::default()))
        .expect("first step");
    let unchanged = rt.block_on(common::reconcile(&p, &all, &all));
    bencher
        .with_inputs(|| unchanged.clone())
        .bench_local_values(|mut report| {
            rt.block_on(cluster.reconcile_step(&mut report, &StepOptions::default()))
                .expect("step");
        });
    drop(kube);
    rt.block_on(server.shutdown());
}
