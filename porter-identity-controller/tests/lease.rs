//! Leader election on the Kubernetes API fake: of two candidates one wins; a holder that stops
//! renewing is replaced only after the lease's duration; and a leader whose lease is taken
//! stops reconciling at once — an object changed after that is not touched by it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::{Patch, PatchParams};
use porter_identity::aws::AwsPodIdentityProvider;
use porter_identity::aws::fake::FakeAws;
use porter_identity::kube::Cluster;
use porter_identity::kube::fake::FakeKube;
use porter_identity_controller::lease::{LeaseLock, LeaseTiming};
use porter_identity_controller::runner::{IdentityController, Settings};
use serde_json::json;
use support::{apply_file, eventually, sample};

const LEADER: &str = "porter_identity_controller_leader";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_candidate_wins_and_a_silent_holder_is_replaced_only_after_the_duration() {
    let kube = FakeKube::new();
    let server = kube.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let client = server.cluster().await.unwrap().client().clone();
    let api: Api<Lease> = Api::namespaced(client, "ops");
    let timing = LeaseTiming::for_duration(Duration::from_secs(2));
    let mut a = LeaseLock::new(api.clone(), "leader", "a", timing);
    let mut b = LeaseLock::new(api.clone(), "leader", "b", timing);
    let (wa, wb) = tokio::join!(a.try_acquire_or_renew(), b.try_acquire_or_renew());
    assert!(
        wa.unwrap() ^ wb.unwrap(),
        "exactly one of two racing candidates wins"
    );
    let (mut holder, mut other) = if api
        .get("leader")
        .await
        .unwrap()
        .spec
        .unwrap()
        .holder_identity
        .as_deref()
        == Some("a")
    {
        (a, b)
    } else {
        (b, a)
    };
    assert!(
        holder.try_acquire_or_renew().await.unwrap(),
        "the holder renews"
    );
    // The holder falls silent: the other waits the whole duration by its own clock.
    let start = tokio::time::Instant::now();
    while !other.try_acquire_or_renew().await.unwrap() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(2),
        "took over after {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(3),
        "took over after {waited:?}"
    );
    let spec = api.get("leader").await.unwrap().spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some(other.holder()));
    assert_eq!(spec.lease_transitions, Some(1));
    // The old holder comes back: it does not hold it any more.
    assert!(!holder.try_acquire_or_renew().await.unwrap());
    // The new one releases it: the old one takes it at once.
    other.release().await.unwrap();
    assert!(holder.try_acquire_or_renew().await.unwrap());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_lease_is_taken_stops_reconciling() {
    let kube = FakeKube::new();
    kube.add_service("shop", "shop-api", "shop-api", 1, "2026-01-01T00:00:00Z")
        .add_service(
            "shop",
            "shop-worker",
            "shop-worker",
            1,
            "2026-01-01T00:00:00Z",
        );
    let server = kube.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let cluster = server.cluster().await.unwrap();
    let client = cluster.client().clone();
    apply_file(&client, "crd.yaml").await;
    apply_file(&client, "examples/identitypolicy.yaml").await;
    let aws = FakeAws::new("111122223333", "us-east-1");
    aws.add_cluster("prod")
        .install_addon("prod", "eks-pod-identity-agent", "ACTIVE");
    for r in ["shop-api", "shop-worker"] {
        aws.add_role(r, &FakeAws::pods_trust_policy());
    }
    let provider = AwsPodIdentityProvider::builder()
        .cluster("prod")
        .api(aws.clone())
        .build()
        .await
        .unwrap();
    let settings = Settings {
        lease: LeaseTiming::for_duration(Duration::from_secs(3)),
        lease_namespace: "ops".into(),
        identity: "replica-a".into(),
        ..Settings::default()
    };
    let controller = IdentityController::new(
        Cluster::builder()
            .client(client.clone())
            .build()
            .await
            .unwrap(),
        settings,
    )
    .provider(Arc::new(provider));
    let metrics = controller.metrics();
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(controller.run(async move {
        let _ = stopped.wait_for(|s| *s).await;
    }));
    eventually(Duration::from_secs(10), "replica-a leads", || async {
        (sample(&metrics.render(), LEADER) == Some(1.0)).then_some(())
    })
    .await;

    // Another replica holds the lease now (after a partition, say): replica-a stops leading
    // at its next renewal, before anything else happens.
    let leases: Api<Lease> = Api::namespaced(client.clone(), "ops");
    leases
        .patch(
            "porter-identity-controller",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"holderIdentity": "replica-b", "leaseDurationSeconds": 3600}}),
            ),
        )
        .await
        .unwrap();
    eventually(
        Duration::from_secs(5),
        "replica-a stops leading",
        || async { (sample(&metrics.render(), LEADER) == Some(0.0)).then_some(()) },
    )
    .await;
    aws.reset_calls();
    apply_file(&client, "examples/appidentity.yaml").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        aws.calls().values().all(|n| *n == 0),
        "a follower called AWS: {:?}",
        aws.calls()
    );
    assert!(aws.associations("prod").is_empty());
    let apps: Api<porter_identity_controller::AppIdentity> =
        Api::namespaced(client.clone(), "shop");
    assert!(
        apps.get("shop").await.unwrap().status.is_none(),
        "a follower wrote a status"
    );

    // The lease is free again: replica-a takes it back and reconciles.
    leases
        .patch(
            "porter-identity-controller",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"holderIdentity": null}})),
        )
        .await
        .unwrap();
    eventually(
        Duration::from_secs(20),
        "replica-a links the app",
        || async { (aws.associations("prod").len() == 2).then_some(()) },
    )
    .await;
    let _ = stop.send(true);
    task.await.unwrap();
    server.shutdown().await;
}
