//! The Reconciler across clouds, on the in-memory providers of `support`: its input checks
//! (before any cloud call), the report it builds, and its stable JSON.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::atomic::Ordering;

use porter_identity_core::{
    AppManifest, BindChange, Binding, Cloud, Connection, ErrorKind, Evidence, Reconciler, RoleRef,
    Workload, WorkloadIdentityProvider,
};
use support::MemoryProvider;

/// Three services: `api` on all three clouds, `worker` on AWS and Azure, `web` on nothing.
const MANIFEST: &str = r"
services:
  - name: api
    connections:
      - type: awsRole
        role: api-role
      - type: azureManagedIdentity
        identityName: api-identity
        resourceGroup: shop-rg
      - type: gcpServiceAccount
        serviceAccountEmail: shop-api@shop-project.iam.gserviceaccount.com
  - name: worker
    connections:
      - type: awsRole
        role: worker-role
      - type: azureManagedIdentity
        identityName: worker-identity
        resourceGroup: shop-rg
  - name: web
    connections:
      - type: cloudSql
        instance: main
";

/// The next deploy: `worker` lost its awsRole connection, `api` moved to another identity.
const NEXT: &str = r"
services:
  - name: api
    connections:
      - type: awsRole
        role: api-role
      - type: azureManagedIdentity
        identityName: api-identity-2
        resourceGroup: shop-rg
      - type: gcpServiceAccount
        serviceAccountEmail: shop-api@shop-project.iam.gserviceaccount.com
  - name: worker
    connections:
      - type: azureManagedIdentity
        identityName: worker-identity
        resourceGroup: shop-rg
";

struct Clouds {
    aws: MemoryProvider,
    azure: MemoryProvider,
    gcp: MemoryProvider,
}

impl Clouds {
    fn new() -> Self {
        Clouds {
            aws: MemoryProvider::new(Cloud::Aws),
            azure: MemoryProvider::new(Cloud::Azure),
            gcp: MemoryProvider::new(Cloud::Gcp),
        }
    }

    fn reconciler(&self, app: &str, namespace: &str) -> Reconciler<'_> {
        Reconciler::new(app, namespace)
            .provider(&self.aws)
            .provider(&self.azure)
            .provider(&self.gcp)
    }

    fn writes(&self) -> u64 {
        [&self.aws, &self.azure, &self.gcp]
            .iter()
            .map(|p| p.writes.load(Ordering::SeqCst))
            .sum()
    }
}

fn manifest(yaml: &str) -> AppManifest {
    AppManifest::from_yaml_str(yaml).unwrap()
}

fn aws_binding(app: &str, service: &str, role: &str) -> Binding {
    Binding::new(
        Workload::for_service("prod", app, service).unwrap(),
        Connection::aws_role(RoleRef::parse(role).unwrap()),
    )
}

#[tokio::test]
async fn bad_input_is_refused_before_any_cloud_call() {
    let clouds = Clouds::new();
    let m = manifest(MANIFEST);
    let cases = [
        (
            clouds.reconciler("Shop", "prod").desired(&m),
            "invalid app",
            "lowercase",
        ),
        (
            clouds.reconciler("shop", "prod_1").desired(&m),
            "invalid namespace",
            "DNS-1123",
        ),
        (
            clouds.reconciler("shop", "prod"),
            "invalid desired: is not set",
            ".desired(&manifest)",
        ),
        (
            clouds
                .reconciler("shop", "prod")
                .desired_bindings([aws_binding("other", "api", "r")]),
            "invalid desired[0]: is workload prod/other-api of app other",
            "its own Reconciler",
        ),
        (
            clouds.reconciler("shop", "prod").desired_bindings([
                aws_binding("shop", "api", "role-a"),
                Binding::new(
                    Workload::new("prod", "shop-api", "shop", "api-v2").unwrap(),
                    Connection::aws_role(RoleRef::parse("role-b").unwrap()),
                ),
            ]),
            "invalid bindings[1]",
            "own service accounts",
        ),
        (
            Reconciler::new("shop", "prod")
                .provider(&clouds.aws)
                .desired(&m),
            "services api, worker have `azureManagedIdentity` connections",
            ".ignore_cloud(Cloud::Azure)",
        ),
    ];
    for (reconciler, problem, fix) in cases {
        let err = reconciler.clone().run().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().contains(problem), "{err}");
        assert!(err.fix().unwrap().contains(fix), "{err}");
        let err = reconciler.dry_run().await.unwrap_err();
        assert!(err.to_string().contains(problem), "{err}");
    }
    assert_eq!(clouds.writes(), 0);
    assert_eq!(clouds.aws.len() + clouds.azure.len() + clouds.gcp.len(), 0);
}

#[tokio::test]
async fn an_ignored_cloud_is_left_alone() {
    let clouds = Clouds::new();
    let m = manifest(MANIFEST);
    let report = Reconciler::new("shop", "prod")
        .provider(&clouds.aws)
        .ignore_cloud(Cloud::Azure)
        .ignore_cloud(Cloud::Gcp)
        .desired(&m)
        .run()
        .await
        .unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.workloads.len(), 2, "the two awsRole bindings only");
    assert_eq!(clouds.aws.len(), 2);
    assert_eq!(clouds.azure.len() + clouds.gcp.len(), 0);
}

#[tokio::test]
async fn every_cloud_is_reconciled_and_the_report_merges_service_accounts() {
    let clouds = Clouds::new();
    let (m, next) = (manifest(MANIFEST), manifest(NEXT));
    let first = clouds
        .reconciler("shop", "prod")
        .desired(&m)
        .run()
        .await
        .unwrap();
    assert!(first.is_ok(), "{first}");
    assert_eq!(first.workloads.len(), 5);
    assert!(
        first
            .workloads
            .iter()
            .all(|w| w.result.as_ref().unwrap().change == BindChange::Created)
    );
    // In porter.yaml order: api's three clouds, then worker's two.
    let order: Vec<_> = first
        .workloads
        .iter()
        .map(|w| {
            (
                w.binding.workload.service().to_string(),
                w.binding.connection.cloud().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        order,
        [
            ("api".to_owned(), Cloud::Aws),
            ("api".to_owned(), Cloud::Azure),
            ("api".to_owned(), Cloud::Gcp),
            ("worker".to_owned(), Cloud::Aws),
            ("worker".to_owned(), Cloud::Azure),
        ]
    );
    // One entry per Kubernetes service account, whatever the number of clouds.
    let accounts: Vec<_> = first
        .service_accounts
        .iter()
        .map(|sa| sa.workload.service_account().to_string())
        .collect();
    assert_eq!(accounts, ["shop-api", "shop-worker"]);
    assert!(
        first
            .service_accounts
            .iter()
            .all(|sa| sa.patch.needs_pod_restart)
    );
    for cloud in [Cloud::Aws, Cloud::Azure, Cloud::Gcp] {
        assert!(
            first.calls.get(cloud, "Link") >= 1,
            "{cloud}: {:?}",
            first.calls
        );
    }
    assert_eq!(first.calls.get(Cloud::Aws, "Link"), 2);

    let second = clouds
        .reconciler("shop", "prod")
        .desired(&next)
        .previous(&m)
        .run()
        .await
        .unwrap();
    assert!(second.is_ok(), "{second}");
    let mut removed: Vec<_> = second
        .removed
        .iter()
        .map(|r| (r.binding.connection.describe(), r.evidence))
        .collect();
    removed.sort();
    assert_eq!(
        removed,
        [
            ("awsRole worker-role".to_owned(), Evidence::PreviousDeploy),
            (
                "azureManagedIdentity shop-rg/api-identity".to_owned(),
                Evidence::PreviousDeploy
            ),
        ],
        "the removed connection and the moved identity's old link:\n{second}"
    );
    assert_eq!(clouds.aws.len(), 1);
    assert_eq!(clouds.azure.len(), 2);
    assert_eq!(clouds.gcp.len(), 1);
    assert_eq!(
        second.changes(),
        3,
        "one new Azure link, two removed:\n{second}"
    );
}

#[tokio::test]
async fn a_failed_binding_is_reported_and_does_not_stop_the_others() {
    let clouds = Clouds::new();
    let m = manifest(MANIFEST);
    // Two transient failures are retried away; nine are more than the retries of one call.
    clouds.gcp.fail_next.store(9, Ordering::SeqCst);
    let report = clouds
        .reconciler("shop", "prod")
        .desired(&m)
        .run()
        .await
        .unwrap();
    assert!(!report.is_ok());
    let errors: Vec<_> = report.errors().collect();
    assert_eq!(errors.len(), 1, "{report}");
    let (binding, error) = errors[0];
    assert_eq!(binding.unwrap().connection.cloud(), Some(Cloud::Gcp));
    assert_eq!(error.kind(), ErrorKind::Throttled);
    assert!(
        error.fix().unwrap().contains("retry the deploy later"),
        "{error}"
    );
    assert_eq!(clouds.aws.len(), 2);
    assert_eq!(clouds.azure.len(), 2);
    let text = report.to_string();
    assert!(
        text.contains("FAILED: gcp Link failed (throttled)"),
        "{text}"
    );
}

#[tokio::test]
async fn the_reconcile_future_is_send() {
    fn send<T: Send>(t: T) -> T {
        t
    }
    let clouds = Clouds::new();
    let m = manifest(MANIFEST);
    let r = clouds.reconciler("shop", "prod").desired(&m);
    let report = send(r.run()).await.unwrap();
    assert!(report.is_ok());
}

#[cfg(feature = "serde")]
#[tokio::test]
async fn the_report_serialises_to_stable_json() {
    let clouds = Clouds::new();
    let m = manifest(
        "services:\n  - name: api\n    connections:\n      - type: awsRole\n        role: api-role\n",
    );
    clouds
        .reconciler("shop", "prod")
        .desired(&m)
        .run()
        .await
        .unwrap();
    clouds.aws.fail_next.store(9, Ordering::SeqCst);
    let gone = aws_binding("shop", "worker", "worker-role");
    let report = Reconciler::new("shop", "prod")
        .provider(&clouds.aws)
        .desired(&m)
        .previous_bindings([gone])
        .dry_run()
        .await
        .unwrap();
    let json = serde_json::to_value(&report).unwrap();
    let expected = serde_json::json!({
        "app": "shop",
        "namespace": "prod",
        "dry_run": true,
        "ok": false,
        "changes": 1,
        "counts": {
            "created": 0, "updated": 0, "unchanged": 0, "removed": 1, "kept": 0, "failed": 1
        },
        "workloads": [{
            "cloud": "aws",
            "namespace": "prod",
            "service_account": "shop-api",
            "app": "shop",
            "service": "api",
            "connection": {"type": "awsRole", "role": "api-role"},
            "change": null,
            "previous": null,
            "resource_id": null,
            "description": null,
            "error": {
                "kind": "throttled",
                "target": "aws",
                "cloud": "aws",
                "operation": "Get",
                "message": "aws Get failed (throttled): slow down",
                "fix": json["workloads"][0]["error"]["fix"],
                "retryable": true
            }
        }],
        "removed": [{
            "cloud": "aws",
            "namespace": "prod",
            "service_account": "shop-worker",
            "app": "shop",
            "service": "worker",
            "connection": {"type": "awsRole", "role": "worker-role"},
            "resource_id": null,
            "evidence": "previous_deploy",
            "error": null
        }],
        "kept": [],
        "cleanup_errors": [],
        "cluster_facts": {"pools_without_gke_metadata": []},
        "service_accounts": [],
        "calls": {"aws": {"Get": 6}}
    });
    assert_eq!(
        json,
        expected,
        "{}",
        serde_json::to_string_pretty(&json).unwrap()
    );
    let fix = json["workloads"][0]["error"]["fix"].as_str().unwrap();
    assert!(fix.starts_with("it was tried 6 times"), "{fix}");
}

/// What a diagnosis was told of one service account: its name, its clouds, its annotations.
type Diagnosed = (String, Vec<Cloud>, Vec<String>);

/// A step that records what it was given, and fails when told to.
#[derive(Debug, Default)]
struct RecordingStep {
    seen: std::sync::Mutex<Vec<(bool, usize, usize)>>,
    diagnosed: std::sync::Mutex<Vec<Diagnosed>>,
    fail: bool,
}

impl RecordingStep {
    /// The cluster's answer: unreachable when told to fail.
    fn reachable(&self) -> porter_identity_core::Result<()> {
        if self.fail {
            return Err(porter_identity_core::Error::kubernetes(
                ErrorKind::Unavailable,
                "list Deployments in prod",
                "connection refused",
            ));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl porter_identity_core::KubernetesStep for RecordingStep {
    async fn run(
        &self,
        report: &mut porter_identity_core::ReconcileReport,
    ) -> porter_identity_core::Result<()> {
        let links = report.workloads.iter().filter(|w| w.result.is_ok()).count();
        self.seen
            .lock()
            .unwrap()
            .push((report.dry_run, links, report.service_accounts.len()));
        self.reachable()?;
        for sa in &mut report.service_accounts {
            let mut step = porter_identity_core::ClusterStep::default();
            step.applied = vec![format!("annotations on {}", sa.workload.service_account())];
            sa.cluster = Some(step);
        }
        Ok(())
    }

    async fn diagnose(
        &self,
        report: &mut porter_identity_core::AppVerifyReport,
    ) -> porter_identity_core::Result<()> {
        self.reachable()?;
        for sa in &mut report.service_accounts {
            self.diagnosed.lock().unwrap().push((
                sa.workload.service_account().to_string(),
                sa.clouds.iter().copied().collect(),
                sa.patch.annotations.values().cloned().collect(),
            ));
            let mut step = porter_identity_core::ClusterStep::default();
            if sa.workload.service_account().as_str() == "shop-worker" {
                step.findings.push(porter_identity_core::Finding::error(
                    "kube.annotation.missing",
                    "no annotation",
                    "apply it",
                ));
            }
            sa.cluster = Some(step);
        }
        Ok(())
    }
}

/// One call verifies the app: every link once on its cloud (no plan, no second read), then
/// the cluster from what those verifies found the links need.
#[tokio::test]
async fn one_verify_reads_each_link_once_and_gives_the_cluster_what_the_links_need() {
    let clouds = Clouds::new();
    let manifest = manifest(MANIFEST);
    let deployed = clouds
        .reconciler("shop", "prod")
        .desired(&manifest)
        .run()
        .await
        .unwrap();
    assert!(deployed.is_ok(), "{deployed}");
    // Someone removed the GCP link by hand.
    let gcp_binding = manifest.bindings_for(Cloud::Gcp, "shop", "prod").unwrap();
    clouds.gcp.unbind(&gcp_binding[0]).await.unwrap();

    let step = RecordingStep::default();
    let report = clouds
        .reconciler("shop", "prod")
        .desired(&manifest)
        .kubernetes(&step)
        .verify()
        .await
        .unwrap();
    assert!(report.is_ok(), "{report}");
    assert!(!report.is_healthy(), "{report}");
    assert_eq!(report.workloads.len(), 5);
    assert_eq!(
        report.calls.total(),
        5,
        "one read per link, nothing planned: {report}"
    );
    let missing: Vec<String> = report
        .findings()
        .filter(|(_, f)| f.code == "memory.link.missing")
        .map(|(w, _)| w)
        .collect();
    assert_eq!(missing, ["prod/shop-api"], "{report}");
    let mut diagnosed = step.diagnosed.lock().unwrap().clone();
    diagnosed.sort();
    assert_eq!(
        diagnosed,
        [
            (
                "shop-api".to_owned(),
                vec![Cloud::Aws, Cloud::Azure, Cloud::Gcp],
                vec![
                    "awsRole api-role".to_owned(),
                    "azureManagedIdentity shop-rg/api-identity".to_owned(),
                ],
            ),
            (
                "shop-worker".to_owned(),
                vec![Cloud::Aws, Cloud::Azure],
                vec![
                    "awsRole worker-role".to_owned(),
                    "azureManagedIdentity shop-rg/worker-identity".to_owned(),
                ],
            ),
        ],
        "the cluster is told each service account's clouds and what the verified links need"
    );
    assert_eq!(
        report.broken(),
        3,
        "api's GCP link and worker's two: {report}"
    );
    let text = report.to_string();
    assert!(
        text.contains("kube  prod/shop-worker: error kube.annotation.missing"),
        "{text}"
    );
    assert!(
        text.ends_with("5 bindings verified, 3 with errors"),
        "{text}"
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["healthy"], false);
    assert_eq!(json["workloads"].as_array().unwrap().len(), 5);
    assert_eq!(
        json["service_accounts"][1]["cluster"]["findings"][0]["code"], "kube.annotation.missing",
        "{json}"
    );

    // A step that cannot read the cluster: every service account says so, and the report is
    // not ok.
    let failing = RecordingStep {
        fail: true,
        ..RecordingStep::default()
    };
    let unreachable = clouds
        .reconciler("shop", "prod")
        .desired(&manifest)
        .kubernetes(&failing)
        .verify()
        .await
        .unwrap();
    assert!(!unreachable.is_ok());
    assert_eq!(unreachable.errors().count(), 2, "{unreachable}");

    let e = Reconciler::teardown("shop", "prod")
        .provider(&clouds.aws)
        .verify()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("teardown"), "{e}");
}

/// The Kubernetes step runs in the same call, after the clouds, on their report (a dry run
/// told so); a step that cannot run at all marks every service account and the report.
#[tokio::test]
async fn the_kubernetes_step_runs_after_the_clouds_in_the_same_call() {
    let manifest = AppManifest::from_yaml_str(MANIFEST).unwrap();
    let (aws, azure, gcp) = (
        MemoryProvider::new(Cloud::Aws),
        MemoryProvider::new(Cloud::Azure),
        MemoryProvider::new(Cloud::Gcp),
    );
    let step = RecordingStep::default();
    let reconciler = || {
        Reconciler::new("shop", "prod")
            .provider(&aws)
            .provider(&azure)
            .provider(&gcp)
            .desired(&manifest)
    };
    let plan = reconciler().kubernetes(&step).dry_run().await.unwrap();
    let report = reconciler().kubernetes(&step).run().await.unwrap();
    assert_eq!(*step.seen.lock().unwrap(), [(true, 5, 2), (false, 5, 2)]);
    for r in [&plan, &report] {
        assert!(r.is_ok(), "{r}");
        assert!(r.service_accounts.iter().all(|sa| sa.cluster.is_some()));
    }
    assert!(
        report
            .to_string()
            .contains("applied annotations on shop-api"),
        "{report}"
    );
    assert!(
        plan.to_string()
            .contains("would apply annotations on shop-api"),
        "{plan}"
    );

    let failing = RecordingStep {
        fail: true,
        ..RecordingStep::default()
    };
    let broken = reconciler().kubernetes(&failing).run().await.unwrap();
    assert!(
        !broken.is_ok(),
        "the step's error is the report's: {broken}"
    );
    assert_eq!(broken.errors().count(), 2, "one per service account");
    assert!(
        broken
            .to_string()
            .contains("FAILED: kubernetes list Deployments in prod failed (unavailable)"),
        "{broken}"
    );
}

#[tokio::test]
async fn counts_say_each_change_once() {
    let clouds = Clouds::new();
    let first = clouds
        .reconciler("shop", "prod")
        .desired(&manifest(MANIFEST))
        .run()
        .await
        .unwrap();
    let counts = first.counts();
    assert_eq!(
        (
            counts.created,
            counts.updated,
            counts.unchanged,
            counts.removed
        ),
        (first.workloads.len(), 0, 0, 0),
        "{first}"
    );
    assert_eq!(counts.failed, 0);
    let next = clouds
        .reconciler("shop", "prod")
        .desired(&manifest(NEXT))
        .previous(&manifest(MANIFEST))
        .run()
        .await
        .unwrap();
    let counts = next.counts();
    // `api` moved to another Azure identity (a new link; the old one removed), `worker` lost
    // its AWS role (removed); everything else is as it was.
    assert_eq!(counts.created, 1, "{next}");
    assert_eq!(counts.updated, 0, "{next}");
    assert_eq!(counts.removed, 2, "{next}");
    assert_eq!(counts.unchanged, next.workloads.len() - 1, "{next}");
    assert_eq!(
        counts.created + counts.updated + counts.removed,
        next.changes()
    );
    assert_eq!(
        counts.to_string(),
        format!(
            "1 created, 0 updated, {} unchanged, 2 removed, 0 kept, 0 failed",
            counts.unchanged
        )
    );
}

#[tokio::test]
async fn a_teardown_removes_every_link_of_the_app_and_nothing_else() {
    let clouds = Clouds::new();
    let m = manifest(MANIFEST);
    clouds
        .reconciler("shop", "prod")
        .desired(&m)
        .run()
        .await
        .unwrap();
    // Another app's links in the same namespace.
    let other = manifest(
        "services:\n  - name: api\n    connections:\n      - type: awsRole\n        role: other-role\n",
    );
    clouds
        .reconciler("blog", "prod")
        .desired(&other)
        .run()
        .await
        .unwrap();
    let before = clouds.aws.len() + clouds.azure.len() + clouds.gcp.len();

    let plan = Reconciler::teardown("shop", "prod")
        .provider(&clouds.aws)
        .provider(&clouds.azure)
        .provider(&clouds.gcp)
        .previous(&m)
        .dry_run()
        .await
        .unwrap();
    let shop_links = m.bindings("shop", "prod").unwrap().len();
    assert_eq!(plan.counts().removed, shop_links, "{plan}");
    assert_eq!(
        clouds.aws.len() + clouds.azure.len() + clouds.gcp.len(),
        before,
        "a dry run writes nothing"
    );

    let gone = Reconciler::teardown("shop", "prod")
        .provider(&clouds.aws)
        .provider(&clouds.azure)
        .provider(&clouds.gcp)
        .previous(&m)
        .run()
        .await
        .unwrap();
    assert!(gone.is_ok(), "{gone}");
    assert!(gone.workloads.is_empty() && gone.service_accounts.is_empty());
    assert_eq!(gone.counts().removed, shop_links, "{gone}");
    assert_eq!(clouds.aws.len(), 1, "blog's link stays");
    assert_eq!(clouds.azure.len() + clouds.gcp.len(), 0);

    // A teardown with a desired set says which one is meant, before any call.
    let err = Reconciler::teardown("blog", "prod")
        .provider(&clouds.aws)
        .desired(&other)
        .run()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("tears the app down"), "{err}");
    assert_eq!(clouds.aws.len(), 1);
}
