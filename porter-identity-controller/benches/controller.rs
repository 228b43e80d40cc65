//! The controller at fleet scale: 1,000 `AppIdentity` objects of 10 services each (10,000
//! links, 100 namespaces of 10 apps), on the in-memory EKS + IAM and the Kubernetes API fake over
//! HTTPS, both answering every call after 10 ms.
//!
//! ```text
//! cargo bench -p porter-identity-controller --bench controller
//! ```
//!
//! | case | target |
//! |---|---|
//! | converge from empty (with the first verify of every object) | every object `Ready=True`; one association per link, none written twice |
//! | one resync of all, unchanged | 0 writes on the cloud and in the cluster (the Lease aside); the SDK's unchanged re-deploy: ≤ 1 AWS call per link + 1 per object |
//!
//! EKS's quota of 5,000 associations per cluster is raised on the fake for the 10,000 links
//! (the first run stopped at 500 objects: the fake keeps the quota, and the rest were refused
//! with `LimitExceeded` and retried with backoff).
//!
//! The resync of all is what an `IdentityPolicy` change starts (the controller reconciles every
//! object then), so it is measured exactly, from the change to the 1,000th reconcile. The rate
//! limits are lifted here to measure the controller itself; with the defaults (AWS 10 calls/s)
//! the same fleet's first convergence is bounded by the limit, as it is meant to be.
//!
//! Under `cargo test --benches` (CI) it runs 100 objects with the same checks; `cargo bench`
//! runs the 1,000.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use porter_identity::aws::AwsPodIdentityProvider;
use porter_identity::aws::fake::FakeAws;
use porter_identity::kube::Cluster;
use porter_identity::kube::fake::{FakeKube, ObjectKey};
use porter_identity_controller::lease::LeaseTiming;
use porter_identity_controller::metrics::ReconcileResult;
use porter_identity_controller::runner::{IdentityController, Settings};
use serde_json::json;

const ACCOUNT: &str = "111122223333";
const SERVICES: usize = 10;
const APPS_PER_NAMESPACE: usize = 10;
const ROLES: usize = 100;
const LATENCY: Duration = Duration::from_millis(10);

fn role_arn(i: usize) -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/bench-{}", i % ROLES)
}

fn ready_count(kube: &FakeKube) -> usize {
    kube.list("AppIdentity", None, "", "")
        .iter()
        .filter(|o| {
            o["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        })
        .count()
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let apps = if bench { 1000 } else { 100 };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(apps));
}

async fn run(apps: usize) {
    let kube = FakeKube::new();
    let aws = FakeAws::new(ACCOUNT, "us-east-1");
    aws.add_cluster("prod")
        .install_addon("prod", "eks-pod-identity-agent", "ACTIVE");
    // EKS's quota is 5,000 associations per cluster, which 10,000 links exceed: the fake's is
    // raised to measure the controller. On EKS the links past the quota fail with
    // `LimitExceeded` (and their fix) until the quota is raised, and are retried with backoff.
    aws.set_association_limit(apps * SERVICES);
    for i in 0..ROLES {
        aws.add_role(&format!("bench-{i}"), &FakeAws::pods_trust_policy());
    }
    let crd_text = porter_identity_controller::crd::crd_yaml();
    let crds: Vec<serde_json::Value> = serde_saphyr::from_multiple(&crd_text).unwrap();
    for crd in crds {
        let name = crd["metadata"]["name"].as_str().unwrap().to_owned();
        kube.update(
            &ObjectKey::new(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                "",
                &name,
            ),
            "kubectl",
            crd,
        );
    }
    let policy = ObjectKey::new(
        "identity.porter.run/v1alpha1",
        "IdentityPolicy",
        "",
        "bench",
    );
    kube.update(
        &policy,
        "kubectl",
        json!({"spec": {"namespaces": ["bench-*"], "awsRoles": [format!("arn:aws:iam::{ACCOUNT}:role/bench-*")]}}),
    );
    for a in 0..apps {
        let namespace = format!("bench-{}", a / APPS_PER_NAMESPACE);
        let app = format!("app-{a}");
        let mut services = Vec::new();
        for s in 0..SERVICES {
            let service = format!("s{s}");
            let sa = format!("{app}-{service}");
            kube.add_service(&namespace, &sa, &sa, 1, "2026-01-01T00:00:00Z");
            services.push(json!({
                "name": service,
                "connections": [{"type": "awsRole", "role": role_arn(a * SERVICES + s)}],
            }));
        }
        kube.update(
            &ObjectKey::new(
                "identity.porter.run/v1alpha1",
                "AppIdentity",
                &namespace,
                &app,
            ),
            "kubectl",
            json!({"spec": {"app": app, "services": services, "options": {"restart": true}}}),
        );
    }
    kube.set_latency(LATENCY);
    aws.set_latency(LATENCY);
    let server = kube.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let cluster = Cluster::builder()
        .kubeconfig(server.kubeconfig().to_owned())
        .build()
        .await
        .unwrap();
    let provider = AwsPodIdentityProvider::builder()
        .cluster("prod")
        .api(aws.clone())
        .build()
        .await
        .unwrap();
    let settings = Settings {
        // No resync during the measures: the resync of all is started by a policy change.
        resync: Duration::from_secs(3600),
        concurrency: 16,
        rate_limits: vec!["aws=1000000/1000000".parse().unwrap()],
        lease: LeaseTiming::for_duration(Duration::from_secs(15)),
        identity: "bench".into(),
        ..Settings::default()
    };
    let controller = IdentityController::new(cluster, settings).provider(Arc::new(provider));
    let metrics = controller.metrics();
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    aws.reset_calls();
    kube.reset_requests();
    let started = Instant::now();
    let task = tokio::spawn(controller.run(async move {
        let _ = stop_rx.wait_for(|s| *s).await;
    }));

    // Converge from empty. The controller's own count first (cheap); the objects' status,
    // served by the fake under its one lock, only when it says all are done.
    let deadline = Duration::from_secs(if apps >= 1000 { 1800 } else { 300 });
    let mut said = Instant::now();
    loop {
        let reconciled = metrics.reconciles(ReconcileResult::Ready);
        if reconciled >= apps as u64 && ready_count(&kube) == apps {
            break;
        }
        assert!(
            started.elapsed() < deadline,
            "not converged after {deadline:?}: {reconciled} reconciles ready of {apps}"
        );
        if said.elapsed() > Duration::from_secs(15) {
            eprintln!(
                "converging: {reconciled} of {apps} reconciled ready after {:.0} s",
                started.elapsed().as_secs_f64()
            );
            said = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let converged = started.elapsed();
    let links = aws.associations("prod").len();
    assert_eq!(links, apps * SERVICES, "one association per link");
    let creates = aws.call_count("CreatePodIdentityAssociation");
    assert_eq!(creates as usize, links, "no link written twice");
    let converge_calls: u64 = aws.calls().values().sum();
    let converge_kube = kube.requests();

    // Let the last status writes' watch events pass, then one resync of all.
    tokio::time::sleep(Duration::from_secs(1)).await;
    aws.reset_calls();
    kube.reset_requests();
    let before = metrics.reconciles(ReconcileResult::Ready);
    let writes_before = [
        kube.writes_to("ServiceAccount"),
        kube.writes_to("AppIdentity"),
        kube.writes_to("Event"),
        kube.writes_to("Deployment"),
    ];
    let resync_started = Instant::now();
    kube.update(
        &policy,
        "kubectl",
        json!({"metadata": {"labels": {"resync": "1"}}}),
    );
    while metrics.reconciles(ReconcileResult::Ready) < before + apps as u64 {
        assert!(
            resync_started.elapsed() < deadline,
            "the resync did not end"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let resync = resync_started.elapsed();
    let calls = aws.calls();
    let resync_calls: u64 = calls.values().sum();
    let writes_after = [
        kube.writes_to("ServiceAccount"),
        kube.writes_to("AppIdentity"),
        kube.writes_to("Event"),
        kube.writes_to("Deployment"),
    ];
    let kube_requests = kube.requests();

    let _ = stop_tx.send(true);
    task.await.unwrap();
    server.shutdown().await;

    println!(
        "| case ({apps} AppIdentity x {SERVICES} services, 10 ms a call) | time | AWS calls | AWS writes | Kubernetes requests | Kubernetes writes (Lease aside) |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| converge from empty | {:.1} s | {converge_calls} | {creates} | {converge_kube} | - |",
        converged.as_secs_f64()
    );
    let cluster_writes: u64 = writes_after
        .iter()
        .zip(writes_before)
        .map(|(a, b)| a - b)
        .sum();
    println!(
        "| one resync of all, unchanged | {:.1} s | {resync_calls} | {} | {kube_requests} | {cluster_writes} |",
        resync.as_secs_f64(),
        aws.write_calls()
    );
    println!("AWS calls of the resync, by operation: {calls:?}");
    assert_eq!(
        aws.write_calls(),
        0,
        "an unchanged resync writes nothing: {calls:?}"
    );
    assert_eq!(
        cluster_writes, 0,
        "an unchanged resync writes nothing in the cluster"
    );
    assert!(
        resync_calls <= ((SERVICES + 1) * apps) as u64,
        "≤ 1 AWS call per link + 1 per object: {resync_calls} for {apps} objects"
    );
}
