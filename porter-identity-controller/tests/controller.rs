//! The controller as a user meets it, on the fakes: kube-rs's real client against the
//! Kubernetes API fake over HTTPS (watch, CRDs, status, finalizers, Events, Leases), and the
//! in-memory EKS + IAM. Apply the CRDs, a policy and an `AppIdentity` (the files of `deploy/`),
//! then watch the controller make the links, restore one deleted behind its back, refuse what
//! no policy allows, and remove the links before the object goes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::events::v1::Event;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Client};
use porter_identity::aws::AwsPodIdentityProvider;
use porter_identity::aws::api::EksIamApi;
use porter_identity::aws::fake::FakeAws;
use porter_identity::kube::Cluster;
use porter_identity::kube::fake::{FakeKube, FakeKubeServer, ObjectKey};
use porter_identity::{ErrorKind, WorkloadIdentityProvider};
use porter_identity_controller::lease::LeaseTiming;
use porter_identity_controller::runner::{
    FINALIZER, IdentityController, ORPHAN_ANNOTATION, ProviderFactory, Settings,
};
use porter_identity_controller::{AppIdentity, AppIdentityStatus};
use serde_json::json;
use support::{apply_file, apply_yaml, eventually};
use tokio::sync::watch;
use tokio::task::JoinHandle;

const ACCOUNT: &str = "111122223333";
const WAIT: Duration = Duration::from_secs(30);

struct World {
    kube: FakeKube,
    _server: FakeKubeServer,
    client: Client,
    aws: FakeAws,
    stop: watch::Sender<bool>,
    controller: Option<JoinHandle<()>>,
}

impl World {
    /// The fakes with the CRDs applied, the shop's two ServiceAccounts and deployments, and
    /// the roles `shop-api`, `shop-worker` and `admin`; the controller is not started.
    async fn new() -> Self {
        let kube = FakeKube::new();
        let started = "2026-01-01T00:00:00Z";
        kube.add_service("shop", "shop-api", "shop-api", 1, started)
            .add_service("shop", "shop-worker", "shop-worker", 1, started);
        let server = kube.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let cluster = server.cluster().await.unwrap();
        let client = cluster.client().clone();
        apply_file(&client, "crd.yaml").await;
        let aws = FakeAws::new(ACCOUNT, "us-east-1");
        aws.add_cluster("prod")
            .install_addon("prod", "eks-pod-identity-agent", "ACTIVE");
        for r in ["shop-api", "shop-worker", "admin"] {
            aws.add_role(r, &FakeAws::pods_trust_policy());
        }
        let (stop, _) = watch::channel(false);
        World {
            kube,
            _server: server,
            client,
            aws,
            stop,
            controller: None,
        }
    }

    async fn start(&mut self, settings: Settings) {
        let cluster = Cluster::builder()
            .client(self.client.clone())
            .build()
            .await
            .unwrap();
        let provider = AwsPodIdentityProvider::builder()
            .cluster("prod")
            .api(self.aws.clone())
            .build()
            .await
            .unwrap();
        let controller = IdentityController::new(cluster, settings).provider(Arc::new(provider));
        self.run(controller);
    }

    /// Runs `controller` until [`stop`](Self::stop).
    fn run(&mut self, controller: IdentityController) {
        let mut stop = self.stop.subscribe();
        self.controller = Some(tokio::spawn(controller.run(async move {
            let _ = stop.wait_for(|s| *s).await;
        })));
    }

    async fn stop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.controller.take() {
            tokio::time::timeout(WAIT, task)
                .await
                .expect("the controller stops")
                .unwrap();
        }
    }

    fn apps(&self, namespace: &str) -> Api<AppIdentity> {
        Api::namespaced(self.client.clone(), namespace)
    }

    async fn status(&self, namespace: &str, name: &str) -> Option<AppIdentityStatus> {
        self.apps(namespace).get_opt(name).await.unwrap()?.status
    }

    /// Waits until the object's `Ready` condition has `status` and `reason`.
    async fn ready(
        &self,
        namespace: &str,
        name: &str,
        status: &str,
        reason: &str,
    ) -> AppIdentityStatus {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let s = self.status(namespace, name).await;
            let ready = s
                .iter()
                .flat_map(|s| &s.conditions)
                .find(|c| c.type_ == "Ready");
            if ready.is_some_and(|c| c.status == status && c.reason == reason) {
                return s.unwrap();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "waited {WAIT:?} for {namespace}/{name} Ready={status} ({reason}); the status: {s:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn events(&self, namespace: &str, reason: &str) -> Vec<Event> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), namespace);
        api.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some(reason))
            .collect()
    }
}

fn settings(identity: &str, resync: Duration) -> Settings {
    Settings {
        resync,
        lease: LeaseTiming::for_duration(Duration::from_secs(3)),
        identity: identity.into(),
        error_backoff: Duration::from_millis(200),
        ..Settings::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_applies_a_policy_and_an_app_and_the_controller_keeps_its_links() {
    let mut world = World::new().await;
    apply_file(&world.client, "examples/identitypolicy.yaml").await;
    apply_file(&world.client, "examples/appidentity.yaml").await;
    world
        .start(settings("replica-a", Duration::from_secs(2)))
        .await;

    // Links made, ServiceAccounts annotated, Ready=True, the finalizer on, one event per link.
    let status = world.ready("shop", "shop", "True", "Reconciled").await;
    assert_eq!(status.counts.created + status.counts.unchanged, 2);
    assert_eq!(world.aws.associations("prod").len(), 2);
    let sa: Api<ServiceAccount> = Api::namespaced(world.client.clone(), "shop");
    for name in ["shop-api", "shop-worker"] {
        let annotations = sa
            .get(name)
            .await
            .unwrap()
            .metadata
            .annotations
            .unwrap_or_default();
        assert_eq!(
            annotations
                .get("porter.run/identity-app")
                .map(String::as_str),
            Some("shop"),
            "{name}: {annotations:?}"
        );
    }
    let object = world.apps("shop").get("shop").await.unwrap();
    assert!(
        object
            .metadata
            .finalizers
            .unwrap_or_default()
            .contains(&FINALIZER.to_owned())
    );
    assert_eq!(world.events("shop", "LinkCreated").await.len(), 2);
    let ready_since = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .and_then(|c| c.last_transition_time.clone());

    // An unchanged resync writes nothing: no cloud write, no ServiceAccount, no status, no
    // event. Two periods pass (with jitter, at least one resync of the object).
    world.aws.reset_calls();
    let (sa_writes, app_writes, event_writes) = (
        world.kube.writes_to("ServiceAccount"),
        world.kube.writes_to("AppIdentity"),
        world.kube.writes_to("Event"),
    );
    tokio::time::sleep(Duration::from_millis(4500)).await;
    assert!(
        world.aws.call_count("ListPodIdentityAssociations") >= 1,
        "a resync ran: {:?}",
        world.aws.calls()
    );
    assert_eq!(world.aws.write_calls(), 0, "{:?}", world.aws.calls());
    assert_eq!(world.kube.writes_to("ServiceAccount"), sa_writes);
    assert_eq!(world.kube.writes_to("AppIdentity"), app_writes);
    assert_eq!(world.kube.writes_to("Event"), event_writes);

    // Someone deletes a link by hand: restored within one resync, and said in an event.
    let api_link = world
        .aws
        .associations("prod")
        .into_iter()
        .find(|a| a.service_account == "shop-api")
        .unwrap();
    world
        .aws
        .delete_pod_identity_association("prod", &api_link.association_id)
        .await
        .unwrap();
    eventually(
        Duration::from_secs(5),
        "the deleted link restored",
        || async { (world.aws.associations("prod").len() == 2).then_some(()) },
    )
    .await;
    // The Event of shop-api's link, recorded again: a series of two (kube's Recorder makes a
    // repeat within 6 minutes a series of the first).
    eventually(WAIT, "shop-api's LinkCreated event seen twice", || async {
        let events = world.events("shop", "LinkCreated").await;
        let api = events
            .iter()
            .find(|e| e.related.as_ref().and_then(|r| r.name.as_deref()) == Some("shop-api"))?;
        (events.len() == 2 && api.series.as_ref().is_some_and(|s| s.count == 2)).then_some(())
    })
    .await;
    let status = world.ready("shop", "shop", "True", "Reconciled").await;
    let still = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .and_then(|c| c.last_transition_time.clone());
    assert_eq!(
        still, ready_since,
        "Ready stayed True: its transition time stays"
    );

    // Deleted: the links go, then the object.
    world
        .apps("shop")
        .delete("shop", &DeleteParams::default())
        .await
        .unwrap();
    eventually(WAIT, "the object gone", || async {
        world
            .apps("shop")
            .get_opt("shop")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert!(world.aws.associations("prod").is_empty());
    assert_eq!(world.events("shop", "LinkRemoved").await.len(), 2);
    // The policy allowed every link from the first reconcile on: none was ever denied (a
    // reconcile before the policies were read would have been).
    assert!(world.events("shop", "PolicyDenied").await.is_empty());
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_no_policy_allows_is_refused_with_a_condition_and_an_event_and_no_cloud_call() {
    let mut world = World::new().await;
    apply_file(&world.client, "examples/identitypolicy.yaml").await;
    world.aws.reset_calls();
    apply_yaml(
        &world.client,
        &format!(
            "apiVersion: identity.porter.run/v1alpha1\nkind: AppIdentity\nmetadata: {{name: shop, namespace: shop}}\nspec:\n  app: shop\n  services:\n    - name: api\n      connections:\n        - type: awsRole\n          role: arn:aws:iam::{ACCOUNT}:role/admin\n  options: {{restart: true}}\n"
        ),
    )
    .await;
    world
        .start(settings("replica-a", Duration::from_secs(60)))
        .await;
    let status = world.ready("shop", "shop", "False", "PolicyDenied").await;
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert!(ready.message.contains("role/admin"), "{}", ready.message);
    assert!(
        ready.message.contains("awsRoles"),
        "names what to add: {}",
        ready.message
    );
    let events = world.events("shop", "PolicyDenied").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].type_.as_deref(), Some("Warning"));
    assert!(
        world.aws.calls().values().all(|n| *n == 0),
        "{:?}",
        world.aws.calls()
    );

    // The policy's owner allows it: the watch on policies reconciles the app again.
    apply_yaml(
        &world.client,
        &format!(
            "apiVersion: identity.porter.run/v1alpha1\nkind: IdentityPolicy\nmetadata: {{name: admin}}\nspec:\n  namespaces: [shop]\n  awsRoles: [\"arn:aws:iam::{ACCOUNT}:role/admin\"]\n"
        ),
    )
    .await;
    world.ready("shop", "shop", "True", "Reconciled").await;
    assert_eq!(world.aws.associations("prod").len(), 1);
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_cloud_keeps_the_finalizer_and_says_why_and_orphaning_keeps_the_links() {
    let mut world = World::new().await;
    apply_file(&world.client, "examples/identitypolicy.yaml").await;
    apply_file(&world.client, "examples/appidentity.yaml").await;
    world
        .start(settings("replica-a", Duration::from_secs(60)))
        .await;
    world.ready("shop", "shop", "True", "Reconciled").await;

    // EKS refuses every delete: the object stays, with the reason in Ready.
    world.aws.inject_failures(
        Some("DeletePodIdentityAssociation"),
        ErrorKind::PermissionDenied,
        1000,
    );
    world
        .apps("shop")
        .delete("shop", &DeleteParams::default())
        .await
        .unwrap();
    let status = world.ready("shop", "shop", "False", "TeardownFailed").await;
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert!(ready.message.contains("shop-api"), "{}", ready.message);
    let object = world.apps("shop").get("shop").await.unwrap();
    assert!(object.metadata.deletion_timestamp.is_some());
    assert_eq!(world.aws.associations("prod").len(), 2);

    // The operator orphans the links instead: the object goes, the links stay.
    world
        .apps("shop")
        .patch(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {ORPHAN_ANNOTATION: "true"}}})),
        )
        .await
        .unwrap();
    eventually(WAIT, "the orphaned object gone", || async {
        world
            .apps("shop")
            .get_opt("shop")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert_eq!(world.aws.associations("prod").len(), 2);
    assert_eq!(world.events("shop", "LinksOrphaned").await.len(), 1);
    assert!(
        world
            .kube
            .get(&ObjectKey::new(
                "identity.porter.run/v1alpha1",
                "AppIdentity",
                "shop",
                "shop"
            ))
            .is_none()
    );
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_factory_builds_the_providers_afresh_every_resync_period() {
    let mut world = World::new().await;
    apply_file(&world.client, "examples/identitypolicy.yaml").await;
    apply_file(&world.client, "examples/appidentity.yaml").await;
    let builds = Arc::new(AtomicUsize::new(0));
    let (aws, counted) = (world.aws.clone(), builds.clone());
    let factory: ProviderFactory = Arc::new(move || {
        let (aws, counted) = (aws.clone(), counted.clone());
        Box::pin(async move {
            counted.fetch_add(1, Ordering::SeqCst);
            let p = AwsPodIdentityProvider::builder()
                .cluster("prod")
                .api(aws)
                .build()
                .await
                .map_err(|e| e.to_string())?;
            Ok(vec![Arc::new(p) as Arc<dyn WorkloadIdentityProvider>])
        })
    });
    let cluster = Cluster::builder()
        .client(world.client.clone())
        .build()
        .await
        .unwrap();
    let controller =
        IdentityController::new(cluster, settings("replica-a", Duration::from_secs(1)))
            .providers_from(factory);
    world.run(controller);
    world.ready("shop", "shop", "True", "Reconciled").await;
    assert_eq!(world.aws.associations("prod").len(), 2);
    // A resync period later (1 s here), the next reconcile builds them again.
    eventually(WAIT, "the providers built three times", || async {
        (builds.load(Ordering::SeqCst) >= 3).then_some(())
    })
    .await;
    world.ready("shop", "shop", "True", "Reconciled").await;
    assert_eq!(world.aws.associations("prod").len(), 2);
    world.stop().await;
}
