//! One call per deploy: the Reconciler on the fake EKS + IAM with 10 ms of latency per cloud
//! call, for 1,000 workloads of one app in one namespace (ten roles shared round-robin).
//!
//! ```text
//! cargo bench --bench aws
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

mod common;

use std::time::Duration;

use common::{APP, CONCURRENCY, LATENCY, Measured, NAMESPACE};
use futures_util::StreamExt;
use porter_identity::{BindChange, Binding, Connection, RoleRef, Workload};
use porter_identity_aws::AwsPodIdentityProvider;
use porter_identity_aws::fake::FakeAws;

const CLUSTER: &str = "bench";
const ROLES: usize = 10;
const N: usize = 1000;
const REMOVED: usize = 200;
const WRITES: &[&str] = &[
    "CreatePodIdentityAssociation",
    "UpdatePodIdentityAssociation",
    "DeletePodIdentityAssociation",
];
const DELETE: &str = "DeletePodIdentityAssociation";

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
    let build = AwsPodIdentityProvider::builder()
        .cluster(CLUSTER)
        .api(aws.clone())
        .concurrency(CONCURRENCY)
        .build();
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(build)
        .expect("provider")
}

fn bindings(n: usize) -> Vec<Binding> {
    (0..n)
        .map(|i| {
            Binding::new(
                Workload::for_service(NAMESPACE, APP, &format!("svc-{i}")).expect("workload"),
                Connection::aws_role(RoleRef::parse(&format!("role-{}", i % ROLES)).expect("role")),
            )
        })
        .collect()
}

/// Associations of others in the app's namespace: another app's (tagged) and hand-made ones.
const OTHERS: usize = 2000;

/// The app's namespace also holds `OTHERS` associations, half another app's and half made by
/// hand: an unchanged re-deploy, with and without the previous deploy, makes ≤ 1.05 EKS calls
/// per workload of the app (the stale-link search reads only the associations whose service
/// account can be the app's).
fn shared_namespace(rt: &tokio::runtime::Runtime) {
    use porter_identity_aws::api::{CreateAssociation, EksIamApi};
    let aws = fake();
    aws.set_latency(Duration::ZERO);
    rt.block_on(
        futures_util::stream::iter(0..OTHERS).for_each_concurrent(64, |i| {
            let aws = aws.clone();
            async move {
                let (service_account, tags) = if i % 2 == 0 {
                    let service = format!("svc-{i}");
                    let tags = [
                        ("managed-by", "porter-identity"),
                        ("porter-identity/app", "billing"),
                        ("porter-identity/service", service.as_str()),
                    ]
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .into();
                    (format!("billing-{service}"), tags)
                } else {
                    (format!("legacy-{i}"), Default::default())
                };
                aws.create_pod_identity_association(CreateAssociation {
                    cluster: CLUSTER.into(),
                    namespace: NAMESPACE.into(),
                    service_account,
                    role_arn: aws.role_arn("role-0"),
                    client_request_token: format!("other-{i}"),
                    tags,
                    ..CreateAssociation::default()
                })
                .await
                .expect("another's association");
            }
        }),
    );
    let all = bindings(N);
    rt.block_on(common::reconcile(&provider(&aws), &all, &[]));
    aws.set_latency(LATENCY);
    for (label, previous) in [
        ("shared namespace (+2,000), with previous", &all[..]),
        ("shared namespace (+2,000), no previous", &[][..]),
    ] {
        let p = provider(&aws);
        let (m, report) = measure(rt, &aws, label, N, common::reconcile(&p, &all, previous));
        assert_eq!(report.changes(), 0, "{label}");
        assert!(
            report.removed.is_empty() && report.kept.is_empty(),
            "{label}: {report}"
        );
        assert_eq!(m.writes(), 0, "{label}");
        let eks = m.total() - m.count(&["GetRole"]);
        assert!(
            eks as f64 <= 1.05 * N as f64,
            "{label}: {eks} EKS calls for {N} workloads"
        );
    }
    assert_eq!(aws.associations(CLUSTER).len(), N + OTHERS);
}

/// The same 1,000 workloads in IRSA mode: no AWS write, and the roles and the IAM OIDC provider
/// read once, not per workload (≤ 0.05 calls per workload, the namespace's listing included).
fn irsa_deploy(rt: &tokio::runtime::Runtime) {
    let aws = fake();
    aws.add_cluster_oidc_provider(CLUSTER);
    let host = aws
        .cluster_oidc_issuer(CLUSTER)
        .trim_start_matches("https://")
        .to_owned();
    let all = bindings(N);
    for r in 0..ROLES {
        let subjects: Vec<String> = all
            .iter()
            .skip(r)
            .step_by(ROLES)
            .map(|b| {
                format!(
                    "system:serviceaccount:{}:{}",
                    b.workload.namespace(),
                    b.workload.service_account()
                )
            })
            .collect();
        aws.set_trust_policy(
            &format!("role-{r}"),
            &serde_json::json!({"Statement": [{
                "Effect": "Allow",
                "Principal": {"Federated": format!("arn:aws:iam::123456789012:oidc-provider/{host}")},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {"StringEquals": {
                    format!("{host}:sub"): subjects,
                    format!("{host}:aud"): "sts.amazonaws.com",
                }},
            }]})
            .to_string(),
        );
    }
    let p = AwsPodIdentityProvider::builder()
        .cluster(CLUSTER)
        .api(aws.clone())
        .concurrency(CONCURRENCY)
        .mode(porter_identity::AwsRoleMode::Irsa);
    let p = rt.block_on(p.build()).expect("provider");
    let label = "IRSA deploy (no AWS write)";
    let (m, report) = measure(rt, &aws, label, N, common::reconcile(&p, &all, &[]));
    assert!(report.is_ok(), "{report}");
    assert_eq!(m.writes(), 0, "{label}");
    assert!(
        m.total() as f64 <= 0.05 * N as f64,
        "{label}: {} calls for {N} workloads",
        m.total()
    );
}

/// 1.25 × calls × latency / concurrency: the wall-time target of the deploy API.
fn wall_target(m: &Measured) -> Duration {
    m.ideal().mul_f64(1.25)
}

/// Runs one case and prints its row.
fn measure<F: std::future::Future>(
    rt: &tokio::runtime::Runtime,
    aws: &FakeAws,
    label: &'static str,
    n: usize,
    work: F,
) -> (Measured, F::Output) {
    let (m, out) = common::measure(
        rt,
        label,
        n,
        (
            &|| {
                aws.reset_calls();
            },
            &|| aws.calls(),
        ),
        (WRITES, DELETE),
        work,
    );
    m.row(wall_target(&m));
    (m, out)
}

/// The table, with every count target checked; the wall-time target too when `timed`.
fn count_calls(timed: bool) {
    common::header("EKS Pod Identity through the Reconciler on the fake");
    let rt = common::runtime();
    let aws = fake();
    let all = bindings(N);
    let overhead = common::calibrate(&rt, N, || {
        use porter_identity_aws::api::EksIamApi;
        let aws = aws.clone();
        async move {
            aws.describe_cluster(CLUSTER).await.expect("describe");
        }
    });

    let p = provider(&aws);
    let (first, report) = measure(
        &rt,
        &aws,
        "first deploy",
        N,
        common::reconcile(&p, &all, &[]),
    );
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
        common::reconcile(&p, &all, &all),
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
        // The target scaled by the machine's own overhead on a 10 ms sleep (the calibration:
        // a loaded machine stretches every sleep, which the target does not allow for).
        let limit = wall_target(&unchanged).mul_f64(overhead);
        assert!(
            unchanged.wall <= limit,
            "unchanged re-deploy took {:?}, over the target × {overhead:.2} ({limit:?})",
            unchanged.wall
        );
    }

    let (removed, report) = measure(
        &rt,
        &aws,
        "200 services removed",
        N,
        common::reconcile(&p, &all[..N - REMOVED], &all),
    );
    assert_eq!(report.removed.len(), REMOVED);
    assert_eq!(removed.count(&[DELETE]), REMOVED as u64);
    assert_eq!(
        removed.writes(),
        REMOVED as u64,
        "nothing but the deletes is written"
    );

    shared_namespace(&rt);
    irsa_deploy(&rt);

    // The old way, for comparison: a loop of bind over the unchanged workloads.
    let kept = &all[..N - REMOVED];
    let p = provider(&aws);
    let (_, changes) = measure(
        &rt,
        &aws,
        "loop of bind, unchanged (before)",
        N - REMOVED,
        common::loop_of_bind(&p, kept),
    );
    assert!(changes.iter().all(|c| *c == BindChange::Unchanged));
    println!();
}

fn main() {
    count_calls(common::timed());
    common::failure_table(
        fake,
        provider,
        common::Failing {
            // The EKS endpoint fails; IAM answers.
            down: &|aws: &FakeAws| {
                aws.inject_eks_failures(porter_identity::ErrorKind::Unavailable, 1_000_000);
            },
            stall: &|aws: &FakeAws| {
                aws.stall_every(5, Duration::from_secs(60));
            },
            calls: &|aws: &FakeAws| aws.eks_calls(),
        },
        &bindings(10),
    );
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
