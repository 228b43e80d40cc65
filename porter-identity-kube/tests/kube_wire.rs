//! Wire tests: porter-identity-kube's `Cluster` — kube-rs's own client, configured from a
//! kubeconfig with a test certificate authority — against the Kubernetes API fake over HTTPS,
//! started by the test script (`eval "$(scripts/kube-fake start)"`; `scripts/test` does). A test
//! that cannot reach it fails: nothing here is skipped.
//!
//! Every test works in its own namespace of the one server, so they run at once.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::process::Command;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod, ServiceAccount};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use porter_identity_core::ErrorKind;
use porter_identity_kube::Cluster;
use porter_identity_kube::fake::FakeKube;
use serde_json::json;

const KUBECONFIG_VAR: &str = "PORTER_IDENTITY_KUBECONFIG";

/// A namespace (or node name) of this run: the server outlives a test run when started by hand,
/// so names of an earlier run must not collide.
fn fresh(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

fn kubeconfig_path() -> String {
    std::env::var(KUBECONFIG_VAR).unwrap_or_else(|_| {
        panic!(
            "{KUBECONFIG_VAR} is not set: start the Kubernetes API fake first with `eval \"$(scripts/kube-fake start)\"` (scripts/test does)"
        )
    })
}

async fn cluster() -> Cluster {
    let path = kubeconfig_path();
    let yaml = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("{KUBECONFIG_VAR}={path} cannot be read ({e}): is scripts/kube-fake running?")
    });
    Cluster::builder()
        .kubeconfig(yaml)
        .build()
        .await
        .expect("a cluster from the fake's kubeconfig")
}

/// Creates `object` (JSON) through the API as field manager `manager`.
async fn create<K>(
    cluster: &Cluster,
    namespace: Option<&str>,
    manager: &str,
    object: serde_json::Value,
) -> K
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
    K::DynamicType: Default,
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
{
    let typed: K = serde_json::from_value(object).unwrap();
    let api: Api<K> = match namespace {
        Some(ns) => Api::namespaced(cluster.client().clone(), ns),
        None => Api::all(cluster.client().clone()),
    };
    let pp = PostParams {
        field_manager: Some(manager.into()),
        ..PostParams::default()
    };
    api.create(&pp, &typed).await.expect("create")
}

async fn create_node(cluster: &Cluster, name: &str, pool: &str) {
    let api: Api<Node> = Api::all(cluster.client().clone());
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"cloud.google.com/gke-nodepool": pool}},
    }))
    .unwrap();
    api.create(&PostParams::default(), &node)
        .await
        .expect("create node");
}

fn deployment(ns: &str, name: &str, sa: &str, replicas: u32, started: &str) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": started},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"serviceAccountName": sa, "containers": [{"name": "app", "image": "nginx"}]},
            },
        },
    })
}

fn names(pods: &[Pod]) -> Vec<String> {
    let mut n: Vec<String> = pods
        .iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .collect();
    n.sort();
    n
}

#[tokio::test]
async fn server_side_apply_owns_its_annotations_and_names_the_manager_it_conflicts_with() {
    let cluster = cluster().await;
    let ns = &fresh("wire-ssa");
    let _: ServiceAccount = create(
        &cluster,
        Some(ns),
        "helm",
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": "shop-api", "namespace": ns,
                            "annotations": {"azure.workload.identity/client-id": "old-client", "team": "payments"}}}),
    )
    .await;
    let want = BTreeMap::from([(
        "azure.workload.identity/client-id".to_owned(),
        "new-client".to_owned(),
    )]);

    let err = cluster
        .apply_service_account_annotations(ns, "shop-api", &want, false)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(err.to_string().contains("field manager \"helm\""), "{err}");
    assert!(err.fix().unwrap().contains("force"), "{err}");
    let untouched = cluster
        .service_account(ns, "shop-api")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        untouched.metadata.annotations.as_ref().unwrap()["azure.workload.identity/client-id"],
        "old-client"
    );

    let forced = cluster
        .apply_service_account_annotations(ns, "shop-api", &want, true)
        .await
        .unwrap();
    let annotations = forced.metadata.annotations.unwrap();
    assert_eq!(
        annotations["azure.workload.identity/client-id"],
        "new-client"
    );
    assert_eq!(
        annotations["team"], "payments",
        "helm's other annotation is kept"
    );
    let managers: Vec<String> = forced
        .metadata
        .managed_fields
        .unwrap()
        .iter()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert!(
        managers.contains(&"porter-identity".to_owned()),
        "{managers:?}"
    );

    // Applying a smaller set removes only what porter-identity applied before.
    let fewer = cluster
        .apply_service_account_annotations(ns, "shop-api", &BTreeMap::new(), false)
        .await
        .unwrap();
    let left = fewer.metadata.annotations.unwrap_or_default();
    assert!(
        !left.contains_key("azure.workload.identity/client-id"),
        "{left:?}"
    );
    assert_eq!(left["team"], "payments");
}

#[tokio::test]
async fn lists_filter_by_field_and_label_selectors_on_the_server() {
    let cluster = cluster().await;
    let ns = &fresh("wire-lists");
    let (node_a, node_b, pool_a) = (fresh("node-a"), fresh("node-b"), fresh("pool-a"));
    create_node(&cluster, &node_a, &pool_a).await;
    create_node(&cluster, &node_b, "another-pool").await;
    for (name, sa, node) in [
        ("p1", "shop-api", &node_a),
        ("p2", "shop-api", &node_b),
        ("p3", "default", &node_a),
    ] {
        let _: Pod = create(
            &cluster,
            Some(ns),
            "kubelet",
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
                   "spec": {"serviceAccountName": sa, "nodeName": node, "containers": [{"name": "c", "image": "x"}]}}),
        )
        .await;
    }
    assert_eq!(
        names(&cluster.pods_running_as(ns, "shop-api").await.unwrap()),
        ["p1", "p2"]
    );
    assert_eq!(
        names(&cluster.pods_running_as(ns, "default").await.unwrap()),
        ["p3"]
    );
    assert_eq!(
        names(&cluster.pods_on_node(&node_a).await.unwrap()),
        ["p1", "p3"]
    );
    let in_pool = cluster
        .nodes(Some(&format!("cloud.google.com/gke-nodepool={pool_a}")))
        .await
        .unwrap();
    assert_eq!(in_pool.len(), 1);
    assert_eq!(in_pool[0].metadata.name.as_deref(), Some(node_a.as_str()));
    assert!(
        cluster
            .service_account(ns, "nobody")
            .await
            .unwrap()
            .is_none(),
        "404 is None"
    );
}

#[tokio::test]
async fn a_rollout_restart_replaces_the_pods_of_that_workload_only() {
    let cluster = cluster().await;
    let ns = &fresh("wire-restart");
    let _: Deployment = create(
        &cluster,
        Some(ns),
        "helm",
        deployment(ns, "api", "shop-api", 2, "2026-01-01T00:00:00Z"),
    )
    .await;
    let _: Deployment = create(
        &cluster,
        Some(ns),
        "helm",
        deployment(ns, "web", "shop-api", 1, "2026-01-01T00:00:00Z"),
    )
    .await;
    let before = cluster.pods_running_as(ns, "shop-api").await.unwrap();
    assert_eq!(before.len(), 3, "the fake's controller made the pods");
    let workloads = cluster.workloads(ns).await.unwrap();
    let api = workloads.iter().find(|w| w.name == "api").unwrap();

    cluster
        .rollout_restart(api, Timestamp::now())
        .await
        .unwrap();

    let after = cluster.pods_running_as(ns, "shop-api").await.unwrap();
    assert_eq!(after.len(), 3);
    let started = |p: &Pod| p.metadata.creation_timestamp.as_ref().unwrap().0;
    let old: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    let (api_pods, web_pods): (Vec<&Pod>, Vec<&Pod>) = after
        .iter()
        .partition(|p| p.metadata.name.as_deref().unwrap().starts_with("api-"));
    assert_eq!(api_pods.len(), 2);
    assert!(
        api_pods.iter().all(|p| started(p) > old),
        "api's pods are new"
    );
    assert!(
        api_pods
            .iter()
            .all(|p| !names(&before).contains(p.metadata.name.as_ref().unwrap()))
    );
    assert!(
        web_pods.iter().all(|p| started(p) == old),
        "web's pod is untouched"
    );
    let restarted: Deployment = Api::namespaced(cluster.client().clone(), ns)
        .get("api")
        .await
        .unwrap();
    let annotations = restarted
        .spec
        .template
        .metadata
        .unwrap()
        .annotations
        .unwrap();
    assert!(annotations.contains_key("kubectl.kubernetes.io/restartedAt"));
}

#[tokio::test]
async fn a_pod_template_label_is_applied_and_rolls_the_pods() {
    let cluster = cluster().await;
    let ns = &fresh("wire-label");
    let _: Deployment = create(
        &cluster,
        Some(ns),
        "helm",
        deployment(ns, "api", "shop-api", 1, "2026-01-01T00:00:00Z"),
    )
    .await;
    let workloads = cluster.workloads(ns).await.unwrap();
    let labels = BTreeMap::from([("azure.workload.identity/use".to_owned(), "true".to_owned())]);
    cluster
        .apply_pod_template_labels(&workloads[0], &labels, false)
        .await
        .unwrap();
    let pods = cluster.pods_running_as(ns, "shop-api").await.unwrap();
    assert_eq!(pods.len(), 1);
    assert_eq!(
        pods[0].metadata.labels.as_ref().unwrap()["azure.workload.identity/use"],
        "true"
    );
    assert_eq!(
        pods[0].metadata.labels.as_ref().unwrap()["app"],
        "api",
        "helm's label is kept"
    );
    let again = cluster.workloads(ns).await.unwrap();
    assert_eq!(
        again[0].template_labels["azure.workload.identity/use"],
        "true"
    );
}

#[tokio::test]
async fn a_wrong_token_is_unauthenticated_with_the_fix_and_a_foreign_ca_is_refused() {
    let path = kubeconfig_path();
    let yaml = std::fs::read_to_string(&path).unwrap();
    let token_line = yaml
        .lines()
        .find(|l| l.trim_start().starts_with("token:"))
        .unwrap();
    let wrong = yaml.replace(token_line, "    token: not-the-token");
    let cluster = Cluster::builder().kubeconfig(wrong).build().await.unwrap();
    let err = cluster.service_account("default", "x").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{err}");
    assert!(err.fix().unwrap().contains("credentials"), "{err}");
    assert!(
        !err.to_string().contains("not-the-token"),
        "no token in errors: {err}"
    );

    // Another server's authority: the TLS handshake fails, and says where to look.
    let other = FakeKube::new()
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let ca_line = |y: &str| {
        y.lines()
            .find(|l| l.contains("certificate-authority-data"))
            .unwrap()
            .to_owned()
    };
    let foreign = yaml.replace(&ca_line(&yaml), &ca_line(other.kubeconfig()));
    let cluster = Cluster::builder()
        .kubeconfig(foreign)
        .retry_policy(porter_identity_core::RetryPolicy::default().max_attempts(1))
        .build()
        .await
        .unwrap();
    let err = cluster.service_account("default", "x").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(
        err.fix().unwrap().contains("certificate authority"),
        "{err}"
    );
    other.shutdown().await;
}

const FROM_ENV_CHILD: &str = "PORTER_IDENTITY_KUBE_FROM_ENV_CHILD";

/// `Cluster::from_env` finds the cluster as kube-rs does, through `KUBECONFIG`; in a child run
/// of this test, since the environment is per process.
#[tokio::test]
async fn from_env_reads_kubeconfig() {
    if std::env::var_os(FROM_ENV_CHILD).is_some() {
        let cluster = Cluster::builder().from_env().await.expect("from_env");
        // The namespace the parent made for this run (an earlier run's object, in a fake that
        // outlives one run, must not pass for this one's).
        let ns = std::env::var("PORTER_IDENTITY_KUBE_WIRE_NS").expect("the parent's namespace");
        let want = BTreeMap::from([(
            "iam.gke.io/gcp-service-account".to_owned(),
            "api@p-123456.iam.gserviceaccount.com".to_owned(),
        )]);
        cluster
            .apply_service_account_annotations(&ns, "shop-api", &want, false)
            .await
            .expect("apply");
        return;
    }
    let cluster = cluster().await;
    let ns = fresh("wire-env");
    let _: ServiceAccount = create(
        &cluster,
        Some(&ns),
        "kubectl-create",
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "shop-api", "namespace": ns}}),
    )
    .await;
    // A HOME of this run's own: no ~/.kube/config of the machine's, nor another run's.
    let home = std::env::temp_dir().join(format!("porter-identity-kube-wire-home-{ns}"));
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "from_env_reads_kubeconfig", "--nocapture"])
        .env_clear()
        .env(FROM_ENV_CHILD, "1")
        .env("PORTER_IDENTITY_KUBE_WIRE_NS", &ns)
        .env("KUBECONFIG", kubeconfig_path())
        .env("HOME", &home)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child run failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let sa = cluster
        .service_account(&ns, "shop-api")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        sa.metadata.annotations.unwrap()["iam.gke.io/gcp-service-account"],
        "api@p-123456.iam.gserviceaccount.com",
        "the child applied through KUBECONFIG"
    );

    // Without any kubeconfig and outside a pod, the error says what to set.
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "from_env_reads_kubeconfig", "--nocapture"])
        .env_clear()
        .env(FROM_ENV_CHILD, "1")
        .env("KUBECONFIG", home.join("missing-kubeconfig"))
        .env("HOME", &home)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("KUBECONFIG"), "{stderr}");
}

/// An API server that throttles (429 with `retryAfterSeconds`), answers 503, or stalls a call:
/// each call is retried by the policy, the server's wait is honoured, a stalled attempt is cut
/// by the attempt timeout, and a server that never recovers ends in a clear error with its fix.
/// (An in-process fake over HTTPS: the knobs act on its face.)
#[tokio::test]
async fn a_throttling_failing_or_stalling_api_server_is_retried_and_its_wait_honoured() {
    use std::time::{Duration, Instant};
    let kube = FakeKube::new();
    kube.add_service("shop", "shop-api", "api", 1, "2026-01-01T00:00:00Z");
    let server = kube.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let policy = porter_identity_core::RetryPolicy::default()
        .max_attempts(4)
        .initial_backoff(Duration::from_millis(5))
        // Long enough that no call but the stalled one is cut on a loaded machine.
        .attempt_timeout(Duration::from_secs(3));
    let cluster = Cluster::builder()
        .kubeconfig(server.kubeconfig())
        .retry_policy(policy.clone())
        .build()
        .await
        .unwrap();

    kube.throttle_next(2);
    let before = kube.requests();
    let started = Instant::now();
    assert!(
        cluster
            .service_account("shop", "shop-api")
            .await
            .unwrap()
            .is_some()
    );
    // Two 429s, then the answer (a slow attempt retried on a loaded machine adds to it).
    assert!(
        kube.requests() - before >= 3,
        "two 429s, then the answer: {}",
        kube.requests() - before
    );
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "retryAfterSeconds: 1 was waited twice: {:?}",
        started.elapsed()
    );

    kube.fail_next(1).stall_next(1, Duration::from_secs(60));
    let started = Instant::now();
    let pods = cluster.pods_running_as("shop", "shop-api").await.unwrap();
    assert_eq!(pods.len(), 1);
    // Uncut, the stalled attempt alone would take a minute: this ceiling only catches that.
    assert!(
        started.elapsed() < Duration::from_secs(45),
        "the stalled attempt was cut: {:?}",
        started.elapsed()
    );

    kube.fail_next(1000); // more than four lists of four attempts
    let err = cluster.workloads("shop").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.fix().unwrap().contains("tried 4 times"), "{err}");
    assert!(err.to_string().starts_with("kubernetes list "), "{err}");
    server.shutdown().await;
}

/// `.concurrency(n)` bounds the API calls in flight, across clones of the cluster (each step
/// holds one): eight reads at once, each held by the server, never meet more than `n` at a
/// time; without the bound they would all be in flight together.
#[tokio::test]
async fn concurrency_bounds_the_calls_in_flight_across_clones() {
    use std::time::Duration;
    let kube = FakeKube::new();
    kube.add_service("shop", "shop-api", "api", 1, "2026-01-01T00:00:00Z");
    let server = kube.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    for (bound, expected) in [(2, 2), (16, 8)] {
        let cluster = Cluster::builder()
            .kubeconfig(server.kubeconfig())
            .concurrency(bound)
            .build()
            .await
            .unwrap();
        let before = kube.max_in_flight();
        assert!(before <= expected, "{before}");
        kube.stall_next(8, Duration::from_millis(300));
        let reads = (0..8).map(|_| {
            let cluster = cluster.clone();
            async move { cluster.service_account("shop", "shop-api").await }
        });
        for read in futures_util::future::join_all(reads).await {
            assert!(read.unwrap().is_some());
        }
        assert_eq!(
            kube.max_in_flight(),
            expected,
            "at most {bound} calls in flight, so {expected} met at the server"
        );
    }
    server.shutdown().await;
}
