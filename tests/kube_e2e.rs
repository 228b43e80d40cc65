//! End to end, on each cloud's fake: a reconcile, then the Kubernetes step against the
//! Kubernetes API fake over HTTPS (kube-rs's client, configured from the fake's kubeconfig):
//! the annotations applied, the pods that predate the link flagged, the restart of exactly
//! their workloads, and a clean diagnosis afterwards. Then what the field does to it: another
//! app in the namespace, another field manager's value, an IRSA annotation, a GKE pool
//! without GKE_METADATA.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use porter_identity::{
    AppVerifyReport, AwsRoleMode, AzureIdentityName, AzureResourceGroup, Binding, Cloud,
    Connection, ErrorKind, GcpServiceAccountEmail, ReconcileReport, Reconciler, RoleRef,
    ServiceAccountNeeds, Workload, WorkloadIdentityProvider,
};
use porter_identity_aws::AwsPodIdentityProvider;
use porter_identity_aws::fake::{FakeAws, pods_trust_policy};
use porter_identity_azure::AzureWorkloadIdentityProvider;
use porter_identity_azure::fake::FakeAzure;
use porter_identity_gcp::GcpWorkloadIdentityProvider;
use porter_identity_gcp::fake::FakeGcp;
use porter_identity_kube::fake::{FakeKube, FakeKubeServer, ObjectKey};
use porter_identity_kube::k8s_openapi;
use porter_identity_kube::migrate::{MigrateOptions, migrate_irsa};
use porter_identity_kube::step::{LINKS_CHANGED_AT_ANNOTATION, StepOptions};
use porter_identity_kube::{Cluster, codes};
use serde_json::json;

const NS: &str = "shop";
const AN_HOUR_AGO: &str = "2026-01-01T00:00:00Z";
const ISSUER: &str = "https://eastus.oic.prod-aks.azure.com/tenant/prod/";
const PROJECT: &str = "shop-project-123456";

async fn cluster_of(kube: &FakeKube) -> (Cluster, FakeKubeServer) {
    let server = kube.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let cluster = server.cluster().await.unwrap();
    (cluster, server)
}

fn workload(service: &str) -> Workload {
    Workload::for_service(NS, "shop", service).unwrap()
}

async fn aws() -> (FakeAws, AwsPodIdentityProvider) {
    let fake = FakeAws::new("123456789012", "us-east-1");
    fake.add_cluster("prod");
    fake.install_addon("prod", "eks-pod-identity-agent", "ACTIVE");
    fake.add_role("api-role", &pods_trust_policy());
    let p = AwsPodIdentityProvider::builder()
        .cluster("prod")
        .api(fake.clone())
        .build()
        .await
        .unwrap();
    (fake, p)
}

async fn azure() -> (FakeAzure, AzureWorkloadIdentityProvider) {
    let fake = FakeAzure::new();
    fake.add_aks_cluster("aks-rg", "prod", ISSUER);
    fake.add_identity("shop-rg", "reports-identity");
    let p = AzureWorkloadIdentityProvider::builder()
        .aks_cluster("aks-rg", "prod")
        .api(fake.clone())
        .build()
        .await
        .unwrap();
    (fake, p)
}

async fn gcp() -> (FakeGcp, GcpWorkloadIdentityProvider) {
    let fake = FakeGcp::new();
    fake.add_gke_cluster(PROJECT, "us-central1", "prod");
    fake.add_service_account(&gcp_email());
    let p = gcp_provider(&fake).await;
    (fake, p)
}

async fn gcp_provider(fake: &FakeGcp) -> GcpWorkloadIdentityProvider {
    GcpWorkloadIdentityProvider::builder()
        .gke_cluster(PROJECT, "us-central1", "prod")
        .api(fake.clone())
        .build()
        .await
        .unwrap()
}

fn gcp_email() -> String {
    format!("reports@{PROJECT}.iam.gserviceaccount.com")
}

fn aws_binding(service: &str, role: &str) -> Binding {
    Binding::new(
        workload(service),
        Connection::aws_role(RoleRef::parse(role).unwrap()),
    )
}

fn azure_binding(service: &str) -> Binding {
    Binding::new(
        workload(service),
        Connection::azure_managed_identity(
            AzureIdentityName::parse("reports-identity").unwrap(),
            AzureResourceGroup::parse("shop-rg").unwrap(),
        ),
    )
}

fn gcp_binding(service: &str) -> Binding {
    Binding::new(
        workload(service),
        Connection::gcp_service_account(GcpServiceAccountEmail::parse(&gcp_email()).unwrap()),
    )
}

async fn reconcile(
    provider: &dyn WorkloadIdentityProvider,
    bindings: Vec<Binding>,
    dry_run: bool,
) -> ReconcileReport {
    let r = Reconciler::new("shop", NS)
        .provider(provider)
        .desired_bindings(bindings);
    let report = if dry_run {
        r.dry_run().await
    } else {
        r.run().await
    };
    let report = report.unwrap();
    assert!(report.is_ok(), "{report}");
    report
}

/// One verify of `bindings`, with the cluster's findings, as the CLI's `verify` runs it.
async fn verify(
    provider: &dyn WorkloadIdentityProvider,
    bindings: Vec<Binding>,
    cluster: &Cluster,
) -> AppVerifyReport {
    let step = cluster.step(StepOptions::default());
    let report = Reconciler::new("shop", NS)
        .provider(provider)
        .desired_bindings(bindings)
        .kubernetes(&step)
        .verify()
        .await
        .unwrap();
    assert!(report.is_ok(), "{report}");
    report
}

fn codes_of(service_accounts: &[ServiceAccountNeeds], sa: &str) -> Vec<String> {
    let needs = service_accounts
        .iter()
        .find(|n| n.workload.service_account().as_str() == sa)
        .unwrap();
    let step = needs.cluster.as_ref().expect("the Kubernetes step ran");
    assert!(step.error.is_none(), "{:?}", step.error);
    step.findings.iter().map(|f| f.code.clone()).collect()
}

fn started(pod: &Pod) -> Timestamp {
    pod.metadata.creation_timestamp.as_ref().unwrap().0
}

/// The whole loop on one cloud: reconcile, the step (applied, old pods flagged), the restart of
/// exactly their workloads, and a clean diagnosis from a fresh (dry-run) report, as `verify` in
/// another process makes it.
async fn full_loop(
    provider: &dyn WorkloadIdentityProvider,
    binding: Binding,
    want_annotation: Option<(&str, String)>,
) {
    let kube = FakeKube::new();
    let sa = binding.workload.service_account().to_string();
    let service = binding.workload.service().to_string();
    kube.add_service(NS, &sa, &service, 2, AN_HOUR_AGO);
    // Another app's service in the namespace: never touched.
    kube.add_service(NS, "other-api", "other", 1, AN_HOUR_AGO);
    let other_before = kube.get(&ObjectKey::new("v1", "ServiceAccount", NS, "other-api"));
    let (cluster, server) = cluster_of(&kube).await;

    let mut report = reconcile(provider, vec![binding.clone()], false).await;
    cluster
        .reconcile_step(&mut report, &StepOptions::default())
        .await
        .unwrap();
    let step = report.service_accounts[0].cluster.clone().unwrap();
    assert!(
        step.applied
            .iter()
            .any(|a| a.contains(LINKS_CHANGED_AT_ANNOTATION)),
        "{:?}",
        step.applied
    );
    let account = cluster.service_account(NS, &sa).await.unwrap().unwrap();
    let annotations = account.metadata.annotations.unwrap();
    if let Some((key, value)) = &want_annotation {
        assert_eq!(annotations.get(*key), Some(value), "{annotations:?}");
    }
    let old = step
        .findings
        .iter()
        .find(|f| f.code == codes::PODS_PREDATE_LINK)
        .unwrap_or_else(|| panic!("old pods flagged: {:?}", step.findings));
    assert!(
        old.message.contains(&format!("Deployment {NS}/{service}")),
        "{old}"
    );
    assert!(!report.to_string().is_empty());

    let restarts = cluster.restart_step(&report, false).await.unwrap();
    let restarted: Vec<String> = restarts.iter().map(|r| r.workload.to_string()).collect();
    assert_eq!(
        restarted,
        [format!("Deployment {NS}/{service}")],
        "exactly the workload whose pods predate the link"
    );
    let changed: Timestamp = annotations[LINKS_CHANGED_AT_ANNOTATION].parse().unwrap();
    let pods = cluster.pods_running_as(NS, &sa).await.unwrap();
    assert_eq!(pods.len(), 2);
    assert!(
        pods.iter().all(|p| started(p) >= changed),
        "replaced by new pods"
    );
    let other_pods = cluster.pods_running_as(NS, "other-api").await.unwrap();
    assert!(
        other_pods
            .iter()
            .all(|p| started(p) == AN_HOUR_AGO.parse::<Timestamp>().unwrap()),
        "the other app's pods are not restarted"
    );
    assert_eq!(
        kube.get(&ObjectKey::new("v1", "ServiceAccount", NS, "other-api")),
        other_before,
        "the other app's ServiceAccount is untouched"
    );

    // Later, read only: a dry-run report and the cluster's findings, as `verify` does.
    let fresh = reconcile(provider, vec![binding.clone()], true).await;
    let verified = verify(provider, vec![binding.clone()], &cluster).await;
    assert_eq!(
        codes_of(&verified.service_accounts, &sa),
        Vec::<String>::new(),
        "{verified}"
    );
    assert!(provider.verify(&binding).await.unwrap().is_healthy());
    assert!(
        cluster
            .restart_step(&fresh, false)
            .await
            .unwrap()
            .is_empty(),
        "nothing left to restart"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn aws_pod_identity_then_the_cluster_side() {
    let (_fake, p) = aws().await;
    full_loop(&p, aws_binding("api", "api-role"), None).await;
}

/// IRSA: no agent on the cluster, the IAM OIDC provider of its issuer, and `irsa-role` trusting
/// it for exactly `shop/shop-api`.
async fn aws_irsa() -> (FakeAws, AwsPodIdentityProvider) {
    let fake = FakeAws::new("123456789012", "us-east-1");
    fake.add_cluster("prod");
    fake.add_cluster_oidc_provider("prod");
    let host = fake
        .cluster_oidc_issuer("prod")
        .trim_start_matches("https://")
        .to_owned();
    fake.add_role(
        "irsa-role",
        &json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": format!("arn:aws:iam::123456789012:oidc-provider/{host}")},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {
                format!("{host}:sub"): format!("system:serviceaccount:{NS}:shop-api"),
                format!("{host}:aud"): "sts.amazonaws.com",
            }},
        }]})
        .to_string(),
    );
    let p = AwsPodIdentityProvider::builder()
        .cluster("prod")
        .api(fake.clone())
        .mode(AwsRoleMode::Irsa)
        .build()
        .await
        .unwrap();
    (fake, p)
}

#[tokio::test]
async fn aws_irsa_then_the_cluster_side() {
    let (fake, p) = aws_irsa().await;
    full_loop(
        &p,
        aws_binding("api", "irsa-role"),
        Some((
            "eks.amazonaws.com/role-arn",
            "arn:aws:iam::123456789012:role/irsa-role".to_owned(),
        )),
    )
    .await;
    assert_eq!(fake.write_calls(), 0, "IRSA writes nothing in AWS");
}

/// App `shop`'s service `api` deployed with IRSA, clouds and cluster: its provider, the fake
/// cluster, its client and server, and the binding.
async fn irsa_deployed() -> (
    AwsPodIdentityProvider,
    FakeKube,
    Cluster,
    FakeKubeServer,
    Binding,
) {
    let (_fake, p) = aws_irsa().await;
    let kube = FakeKube::new();
    kube.add_service(NS, "shop-api", "api", 1, AN_HOUR_AGO);
    let (cluster, server) = cluster_of(&kube).await;
    let binding = aws_binding("api", "irsa-role");
    let mut report = reconcile(&p, vec![binding.clone()], false).await;
    cluster
        .reconcile_step(&mut report, &StepOptions::default())
        .await
        .unwrap();
    (p, kube, cluster, server, binding)
}

/// The next deploy, which drops `binding`'s connection (stale by the previous deploy), with
/// the Kubernetes step.
async fn drop_the_link(
    p: &AwsPodIdentityProvider,
    cluster: &Cluster,
    binding: Binding,
) -> ReconcileReport {
    let mut report = Reconciler::new("shop", NS)
        .provider(p)
        .desired_bindings(Vec::new())
        .previous_bindings(vec![binding])
        .run()
        .await
        .unwrap();
    assert_eq!(report.removed.len(), 1, "{report}");
    cluster
        .reconcile_step(&mut report, &StepOptions::default())
        .await
        .unwrap();
    report
}

#[tokio::test]
async fn an_irsa_annotation_goes_when_its_link_is_removed_and_another_managers_stays() {
    let (p, kube, cluster, server, binding) = irsa_deployed().await;
    // Another tool's annotation on the same ServiceAccount.
    kube.merge_patch(
        &ObjectKey::new("v1", "ServiceAccount", NS, "shop-api"),
        "kubectl",
        &json!({"metadata": {"annotations": {"example.com/owner": "team-a"}}}),
    )
    .unwrap();
    let annotations = |c: &Cluster| {
        let c = c.clone();
        async move {
            c.service_account(NS, "shop-api")
                .await
                .unwrap()
                .unwrap()
                .metadata
                .annotations
                .unwrap_or_default()
        }
    };
    assert!(
        annotations(&cluster)
            .await
            .contains_key("eks.amazonaws.com/role-arn")
    );

    // The next deploy drops the connection: the link is stale by the previous deploy.
    let report = drop_the_link(&p, &cluster, binding).await;
    assert!(
        report.removed[0].error.is_none(),
        "{:?}",
        report.removed[0].error
    );
    let left = annotations(&cluster).await;
    assert!(!left.contains_key("eks.amazonaws.com/role-arn"), "{left:?}");
    assert_eq!(
        left.get("example.com/owner").map(String::as_str),
        Some("team-a")
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_removed_link_never_strips_a_service_account_another_app_now_holds() {
    let (p, kube, cluster, server, binding) = irsa_deployed().await;
    // Another app took the ServiceAccount over (its service maps to the same name; forced).
    kube.merge_patch(
        &ObjectKey::new("v1", "ServiceAccount", NS, "shop-api"),
        "porter-identity",
        &json!({"metadata": {"annotations": {"porter.run/identity-app": "shop-other"}}}),
    )
    .unwrap();
    let before = kube.get(&ObjectKey::new("v1", "ServiceAccount", NS, "shop-api"));
    drop_the_link(&p, &cluster, binding).await;
    assert_eq!(
        kube.get(&ObjectKey::new("v1", "ServiceAccount", NS, "shop-api")),
        before,
        "the other app's ServiceAccount is untouched"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn gcp_workload_identity_then_the_cluster_side() {
    let (_fake, p) = gcp().await;
    full_loop(
        &p,
        gcp_binding("reports"),
        Some(("iam.gke.io/gcp-service-account", gcp_email())),
    )
    .await;
}

#[tokio::test]
async fn azure_federated_credential_then_the_cluster_side_with_the_pod_label() {
    let (fake, p) = azure().await;
    let client_id = fake
        .identity("shop-rg", "reports-identity")
        .unwrap()
        .client_id;
    let kube = FakeKube::new();
    kube.add_service(NS, "shop-reports", "reports", 2, AN_HOUR_AGO);
    // A StatefulSet of the same ServiceAccount whose chart already sets the label: its template
    // is not touched, so its pods (an hour old) are the ones that predate the new credential.
    kube.update(
        &ObjectKey::new("apps/v1", "StatefulSet", NS, "reports-cache"),
        "helm",
        json!({
            "metadata": {"creationTimestamp": AN_HOUR_AGO},
            "spec": {"replicas": 1, "template": {
                "metadata": {"labels": {"app": "reports-cache", "azure.workload.identity/use": "true"}},
                "spec": {"serviceAccountName": "shop-reports", "containers": [{"name": "c", "image": "x"}]},
            }},
        }),
    );
    // A CronJob that runs as the same ServiceAccount: its job template gets the label too.
    kube.update(
        &ObjectKey::new("batch/v1", "CronJob", NS, "nightly"),
        "helm",
        json!({"spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": {"spec": {"serviceAccountName": "shop-reports", "containers": [{"name": "c", "image": "x"}]}}}}}}),
    );
    let (cluster, server) = cluster_of(&kube).await;

    let before = verify(&p, vec![azure_binding("reports")], &cluster).await;
    let found = codes_of(&before.service_accounts, "shop-reports");
    for code in [
        codes::ANNOTATION_MISSING,
        codes::POD_TEMPLATE_LABEL_MISSING,
        codes::POD_LABEL_MISSING,
    ] {
        assert!(found.iter().any(|c| c == code), "{code} in {found:?}");
    }

    let mut report = reconcile(&p, vec![azure_binding("reports")], false).await;
    cluster
        .reconcile_step(&mut report, &StepOptions::default())
        .await
        .unwrap();
    let step = report.service_accounts[0].cluster.clone().unwrap();
    let applied = step.applied.join("\n");
    assert!(
        applied.contains(&format!("azure.workload.identity/client-id={client_id}")),
        "{applied}"
    );
    assert!(
        applied.contains(
            "pod template of Deployment shop/reports (changing a pod template rolls its pods)"
        ),
        "{applied}"
    );
    assert!(
        applied.contains("pod template of CronJob shop/nightly"),
        "{applied}"
    );
    // The label rolled the Deployment's pods: new and labelled. The StatefulSet, labelled by its
    // chart, was not touched: its pod predates the new credential and is flagged.
    let old = step
        .findings
        .iter()
        .find(|f| f.code == codes::PODS_PREDATE_LINK)
        .unwrap_or_else(|| panic!("{report}"));
    assert!(
        old.message.contains("StatefulSet shop/reports-cache"),
        "{old}"
    );
    assert!(!old.message.contains("Deployment shop/reports"), "{old}");
    assert!(
        !applied.contains("StatefulSet"),
        "a labelled template is not written: {applied}"
    );
    let deployment_pods: Vec<Pod> = cluster
        .pods_running_as(NS, "shop-reports")
        .await
        .unwrap()
        .into_iter()
        .filter(|p| {
            p.metadata.name.as_deref().unwrap().starts_with("reports-")
                && !p
                    .metadata
                    .name
                    .as_deref()
                    .unwrap()
                    .starts_with("reports-cache")
        })
        .collect();
    assert_eq!(deployment_pods.len(), 2);
    assert!(
        deployment_pods
            .iter()
            .all(|p| p.metadata.labels.as_ref().unwrap()["azure.workload.identity/use"] == "true")
    );
    let cron = kube
        .get(&ObjectKey::new("batch/v1", "CronJob", NS, "nightly"))
        .unwrap();
    assert_eq!(
        cron["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]["azure.workload.identity/use"],
        "true"
    );
    let restarted: Vec<String> = cluster
        .restart_step(&report, false)
        .await
        .unwrap()
        .iter()
        .map(|r| r.workload.to_string())
        .collect();
    assert_eq!(
        restarted,
        ["StatefulSet shop/reports-cache"],
        "exactly the workload whose pods predate the link; the Deployment's roll was its restart"
    );
    let cache = cluster.pods_running_as(NS, "shop-reports").await.unwrap();
    let changed: Timestamp = cluster
        .service_account(NS, "shop-reports")
        .await
        .unwrap()
        .unwrap()
        .metadata
        .annotations
        .unwrap()[LINKS_CHANGED_AT_ANNOTATION]
        .parse()
        .unwrap();
    assert!(
        cache.iter().all(|p| started(p) >= changed),
        "every pod is newer than the link now"
    );

    let after = verify(&p, vec![azure_binding("reports")], &cluster).await;
    assert_eq!(
        codes_of(&after.service_accounts, "shop-reports"),
        Vec::<String>::new()
    );
    server.shutdown().await;
}

/// Another field manager's value of the annotation: a Conflict naming it, and nothing of that
/// service account written (no label on its templates either) until forced.
#[tokio::test]
async fn another_managers_annotation_is_a_conflict_and_nothing_is_written_before_it_is_forced() {
    let (fake, p) = azure().await;
    let client_id = fake
        .identity("shop-rg", "reports-identity")
        .unwrap()
        .client_id;
    let kube = FakeKube::new();
    kube.add_service(NS, "shop-reports", "reports", 1, AN_HOUR_AGO);
    kube.update(
        &ObjectKey::new("v1", "ServiceAccount", NS, "shop-reports"),
        "argocd-controller",
        json!({"metadata": {"annotations": {"azure.workload.identity/client-id": "11111111-2222-3333-4444-555555555555"}}}),
    );
    let (cluster, server) = cluster_of(&kube).await;
    let mut report = reconcile(&p, vec![azure_binding("reports")], false).await;
    cluster
        .reconcile_step(&mut report, &StepOptions::default())
        .await
        .unwrap();
    let step = report.service_accounts[0].cluster.clone().unwrap();
    let err = step.error.clone().expect("a conflict");
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(err.to_string().contains("\"argocd-controller\""), "{err}");
    assert!(!report.is_ok(), "a conflict is an error of the report");
    let deployment = kube
        .get(&ObjectKey::new("apps/v1", "Deployment", NS, "reports"))
        .unwrap();
    assert!(
        deployment["spec"]["template"]["metadata"]["labels"]
            .get("azure.workload.identity/use")
            .is_none(),
        "no label before the annotation applies"
    );

    // A dry run says the same before anything is tried.
    let mut plan = reconcile(&p, vec![azure_binding("reports")], true).await;
    cluster
        .reconcile_step(&mut plan, &StepOptions::default())
        .await
        .unwrap();
    assert_eq!(
        plan.service_accounts[0]
            .cluster
            .as_ref()
            .unwrap()
            .error
            .as_ref()
            .unwrap()
            .kind(),
        ErrorKind::Conflict
    );

    let forced = StepOptions::default().force_conflicts(true);
    let mut report = reconcile(&p, vec![azure_binding("reports")], false).await;
    cluster.reconcile_step(&mut report, &forced).await.unwrap();
    assert!(report.is_ok(), "{report}");
    let account = cluster
        .service_account(NS, "shop-reports")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        account.metadata.annotations.unwrap()["azure.workload.identity/client-id"],
        client_id
    );
    server.shutdown().await;
}

/// A missing ServiceAccount is a finding and is not created (a chart means to own it), unless
/// asked.
#[tokio::test]
async fn a_missing_service_account_is_found_not_created_unless_asked() {
    let (_fake, p) = gcp().await;
    let kube = FakeKube::new();
    let (cluster, server) = cluster_of(&kube).await;
    let mut report = reconcile(&p, vec![gcp_binding("reports")], false).await;
    cluster
        .reconcile_step(&mut report, &StepOptions::default())
        .await
        .unwrap();
    assert_eq!(
        codes_of(&report.service_accounts, "shop-reports"),
        [codes::SERVICE_ACCOUNT_MISSING]
    );
    assert!(
        cluster
            .service_account(NS, "shop-reports")
            .await
            .unwrap()
            .is_none()
    );
    let create = StepOptions::default().create_service_accounts(true);
    cluster.reconcile_step(&mut report, &create).await.unwrap();
    let made = cluster
        .service_account(NS, "shop-reports")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        made.metadata.annotations.unwrap()["iam.gke.io/gcp-service-account"],
        gcp_email()
    );
    server.shutdown().await;
}

/// Pods of a Workload-Identity-bound service account on a pool without GKE_METADATA: an error
/// naming the pool; the preflight of that pool names the pods that would lose the node's
/// service account, and the switch is refused until they are dealt with or it is forced.
#[tokio::test]
async fn gke_pods_on_a_gce_metadata_pool_and_the_preflight_of_switching_it() {
    let (fake, p) = gcp().await;
    fake.set_node_pool(PROJECT, "us-central1", "prod", "batch-pool", "GCE_METADATA");
    let kube = FakeKube::new();
    kube.add_node("node-a", "default-pool");
    kube.add_node("node-b", "batch-pool");
    kube.add_service(NS, "shop-reports", "reports", 2, AN_HOUR_AGO);
    kube.add_service(NS, "shop-legacy", "legacy", 2, AN_HOUR_AGO);
    let (cluster, server) = cluster_of(&kube).await;

    // The GCP provider tells the Kubernetes step which pools are not in GKE_METADATA mode:
    // nothing to fetch and pass by hand.
    let kubernetes = cluster.step(StepOptions::default().restart(true));
    let report = Reconciler::new("shop", NS)
        .provider(&p)
        .desired_bindings(vec![gcp_binding("reports")])
        .kubernetes(&kubernetes)
        .run()
        .await
        .unwrap();
    assert_eq!(
        report.cluster_facts.pools_without_gke_metadata,
        ["batch-pool"],
        "{report}"
    );
    assert_eq!(
        report.calls.get(Cloud::Gcp, "clusters.get"),
        1,
        "one cluster read serves the workload pool and the node pools of the run"
    );
    // A verify of the app finds the same, from the verify's own read of the cluster.
    let verified = verify(&p, vec![gcp_binding("reports")], &cluster).await;
    assert!(
        codes_of(&verified.service_accounts, "shop-reports")
            .contains(&codes::PODS_ON_GCE_METADATA_POOL.to_owned()),
        "{verified}"
    );
    assert_eq!(
        verified.calls.get(Cloud::Gcp, "clusters.get"),
        1,
        "the verify's cluster read serves the node-pool facts too: {verified}"
    );
    let step = report.service_accounts[0].cluster.clone().unwrap();
    let on_pool = step
        .findings
        .iter()
        .find(|f| f.code == codes::PODS_ON_GCE_METADATA_POOL)
        .expect("flagged");
    assert!(on_pool.message.contains("batch-pool"), "{on_pool}");
    assert_eq!(
        step.restarted.len(),
        1,
        "--restart restarted the old pods: {:?}",
        step.restarted
    );

    let preflight = porter_identity_kube::preflight::gke_preflight(&cluster, "batch-pool")
        .await
        .unwrap();
    let at_risk = &preflight.pods_at_risk;
    assert_eq!(preflight.nodes, 1);
    assert!(!at_risk.is_empty());
    assert!(
        at_risk.iter().all(|r| r.service_account == "shop-legacy"),
        "only the unbound service's pods: {at_risk:?}"
    );
    // The preflight's result is what the GCP provider takes.
    let refused = p
        .enable_workload_identity("batch-pool", at_risk, false)
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Conflict);
    assert!(fake.calls().get("nodePools.update").copied().unwrap_or(0) == 0);
    let change = p
        .enable_workload_identity("batch-pool", at_risk, true)
        .await
        .unwrap();
    assert!(change.operation.is_some());
    assert!(
        p.node_pools_without_gke_metadata()
            .await
            .unwrap()
            .is_empty()
    );
    server.shutdown().await;
}

/// IRSA → Pod Identity: the plan writes nothing; the migration creates the association for the
/// IRSA role, and removes the annotation only when asked and only when the trust policy lets
/// Pod Identity assume the role; otherwise it gives the statement to add.
#[tokio::test]
async fn irsa_migration_creates_the_association_checks_trust_and_removes_the_annotation_only_when_safe()
 {
    let (fake, p) = aws().await;
    let irsa_trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Federated":"arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC"},"Action":"sts:AssumeRoleWithWebIdentity"}]}"#;
    fake.add_role("irsa-only-role", irsa_trust);
    let kube = FakeKube::new();
    kube.add_service(NS, "shop-api", "api", 2, AN_HOUR_AGO);
    kube.add_service(NS, "shop-worker", "worker", 1, AN_HOUR_AGO);
    for (sa, role) in [("shop-api", "api-role"), ("shop-worker", "irsa-only-role")] {
        kube.update(
            &ObjectKey::new("v1", "ServiceAccount", NS, sa),
            "helm",
            json!({"metadata": {"annotations": {"eks.amazonaws.com/role-arn": format!("arn:aws:iam::123456789012:role/{role}")}}}),
        );
    }
    let (cluster, server) = cluster_of(&kube).await;
    let bindings = vec![
        aws_binding("api", "api-role"),
        aws_binding("worker", "irsa-only-role"),
    ];

    // The IRSA annotation beside Pod Identity is found, as a warning.
    let report = verify(&p, vec![aws_binding("api", "api-role")], &cluster).await;
    assert!(
        codes_of(&report.service_accounts, "shop-api")
            .contains(&codes::IRSA_BESIDE_POD_IDENTITY.to_owned())
    );

    let plan = migrate_irsa(
        &cluster,
        &p,
        &bindings,
        MigrateOptions::default()
            .dry_run(true)
            .remove_annotation(true),
    )
    .await
    .unwrap();
    assert_eq!(plan.len(), 2);
    assert!(plan[0].association.contains("create"), "{}", plan[0]);
    assert!(
        fake.associations("prod").is_empty(),
        "the plan wrote nothing"
    );
    let sa = cluster
        .service_account(NS, "shop-api")
        .await
        .unwrap()
        .unwrap();
    assert!(
        sa.metadata
            .annotations
            .unwrap()
            .contains_key("eks.amazonaws.com/role-arn"),
        "the plan removed nothing"
    );

    let done = migrate_irsa(
        &cluster,
        &p,
        &bindings,
        MigrateOptions::default()
            .dry_run(false)
            .remove_annotation(true),
    )
    .await
    .unwrap();
    let roles: BTreeMap<String, String> = fake
        .associations("prod")
        .into_iter()
        .map(|a| (a.service_account, a.role_arn))
        .collect();
    assert_eq!(roles["shop-api"], "arn:aws:iam::123456789012:role/api-role");
    assert!(
        !roles.contains_key("shop-worker"),
        "no association its role would not honour"
    );
    assert!(
        done[1].association.starts_with("not created"),
        "{}",
        done[1]
    );
    assert!(
        done[0].trust.is_empty() && done[0].annotation_removed,
        "{}",
        done[0]
    );
    assert_eq!(
        done[0]
            .restart
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["Deployment shop/api"]
    );
    let api = cluster
        .service_account(NS, "shop-api")
        .await
        .unwrap()
        .unwrap();
    assert!(
        !api.metadata
            .annotations
            .unwrap_or_default()
            .contains_key("eks.amazonaws.com/role-arn")
    );
    assert!(!done[1].annotation_removed, "{}", done[1]);
    assert!(
        done[1]
            .trust
            .iter()
            .any(|f| f.remediation.contains("pods.eks.amazonaws.com")),
        "{}",
        done[1]
    );
    let worker = cluster
        .service_account(NS, "shop-worker")
        .await
        .unwrap()
        .unwrap();
    assert!(
        worker
            .metadata
            .annotations
            .unwrap()
            .contains_key("eks.amazonaws.com/role-arn"),
        "kept: Pod Identity could not assume the role"
    );

    server.shutdown().await;
}

/// Links made by an earlier deploy without the cluster step: EKS keeps when an association last
/// changed (`modifiedAt`), so a later run — a plan, as `verify` reads it, or a deploy — still
/// finds the pods that predate it and restarts them.
#[tokio::test]
async fn an_associations_own_time_flags_pods_when_no_step_ran_at_its_creation() {
    let (_fake, p) = aws().await;
    let kube = FakeKube::new();
    kube.add_service(NS, "shop-api", "api", 2, AN_HOUR_AGO);
    let (cluster, server) = cluster_of(&kube).await;
    reconcile(&p, vec![aws_binding("api", "api-role")], false).await;

    let plan = reconcile(&p, vec![aws_binding("api", "api-role")], true).await;
    assert!(
        plan.service_accounts[0].patch.changed_at.is_some(),
        "the plan read modifiedAt"
    );
    let verified = verify(&p, vec![aws_binding("api", "api-role")], &cluster).await;
    assert!(
        verified.service_accounts[0].patch.changed_at.is_some(),
        "the verify read modifiedAt"
    );
    assert_eq!(
        codes_of(&verified.service_accounts, "shop-api"),
        [codes::PODS_PREDATE_LINK]
    );

    let mut later = reconcile(&p, vec![aws_binding("api", "api-role")], false).await;
    let restart = StepOptions::default().restart(true);
    cluster.reconcile_step(&mut later, &restart).await.unwrap();
    let step = later.service_accounts[0].cluster.clone().unwrap();
    assert_eq!(step.restarted.len(), 1, "{later}");
    assert_eq!(step.findings, vec![], "restarted, nothing left: {later}");
    server.shutdown().await;
}

/// Two apps whose services map to one ServiceAccount name (`shop` + `admin-api`, `shop-admin` +
/// `api`): GCP binds both (the member is the same string), so on the cluster the second app's
/// step would replace the first's annotation under the one field manager. It is a Conflict
/// naming the first app instead, nothing is written, and only force takes the account over.
#[tokio::test]
async fn a_second_app_on_the_same_service_account_name_is_refused_not_clobbered() {
    let fake = FakeGcp::new();
    fake.add_gke_cluster(PROJECT, "us-central1", "prod");
    let first_email = format!("shop-admin@{PROJECT}.iam.gserviceaccount.com");
    let second_email = format!("other-admin@{PROJECT}.iam.gserviceaccount.com");
    fake.add_service_account(&first_email);
    fake.add_service_account(&second_email);
    let p = gcp_provider(&fake).await;
    let binding = |app: &str, service: &str, email: &str| {
        Binding::new(
            Workload::for_service(NS, app, service).unwrap(),
            Connection::gcp_service_account(GcpServiceAccountEmail::parse(email).unwrap()),
        )
    };
    let first = binding("shop", "admin-api", &first_email);
    let second = binding("shop-admin", "api", &second_email);
    assert_eq!(
        first.workload.service_account(),
        second.workload.service_account()
    );
    let kube = FakeKube::new();
    kube.add_service(NS, "shop-admin-api", "admin-api", 1, AN_HOUR_AGO);
    let (cluster, server) = cluster_of(&kube).await;
    let annotation = |c: &Cluster| {
        let c = c.clone();
        async move {
            c.service_account(NS, "shop-admin-api")
                .await
                .unwrap()
                .unwrap()
                .metadata
                .annotations
                .unwrap()["iam.gke.io/gcp-service-account"]
                .clone()
        }
    };

    let deploy =
        |app: &'static str, b: Binding, step: porter_identity_kube::step::ReconcileStep| {
            let p = &p;
            async move {
                Reconciler::new(app, NS)
                    .provider(p)
                    .desired_bindings([b])
                    .kubernetes(&step)
                    .run()
                    .await
                    .unwrap()
            }
        };
    let step = cluster.step(StepOptions::default());
    let one = deploy("shop", first, step.clone()).await;
    assert!(one.is_ok(), "{one}");
    assert_eq!(annotation(&cluster).await, first_email);

    let two = deploy("shop-admin", second.clone(), step).await;
    let err = two.service_accounts[0]
        .cluster
        .as_ref()
        .unwrap()
        .error
        .clone()
        .expect("refused");
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(
        err.to_string().contains("for app shop, not shop-admin"),
        "{err}"
    );
    assert!(!two.is_ok());
    assert_eq!(
        annotation(&cluster).await,
        first_email,
        "the first app's annotation is kept"
    );

    let forced = cluster.step(StepOptions::default().force_conflicts(true));
    let taken = deploy("shop-admin", second, forced).await;
    assert!(taken.is_ok(), "{taken}");
    assert_eq!(annotation(&cluster).await, second_email);
    server.shutdown().await;
}

/// An unchanged re-deploy reads the namespace once and writes nothing: the ServiceAccounts
/// already carry exactly what porter-identity would apply, under its field manager. A value
/// changed since by another field manager makes the apply go out again, and its conflict is
/// reported before anything is written; an annotation porter-identity no longer applies makes
/// it go out too, and is removed.
#[tokio::test]
async fn an_unchanged_step_reads_the_namespace_once_and_sends_no_apply() {
    let (fake, p) = gcp().await;
    let kube = FakeKube::new();
    let services = ["api", "worker", "cron"];
    for s in services {
        kube.add_service(NS, &format!("shop-{s}"), s, 1, AN_HOUR_AGO);
    }
    let (cluster, server) = cluster_of(&kube).await;
    let bindings: Vec<Binding> = services.iter().map(|s| gcp_binding(s)).collect();
    let step = cluster.step(StepOptions::default());
    let deploy = || async {
        Reconciler::new("shop", NS)
            .provider(&p)
            .desired_bindings(bindings.clone())
            .kubernetes(&step)
            .run()
            .await
            .unwrap()
    };
    let first = deploy().await;
    assert!(first.is_ok(), "{first}");

    kube.reset_requests();
    let again = deploy().await;
    assert!(again.is_ok(), "{again}");
    assert_eq!(kube.writes(), 0, "an unchanged step sends no apply");
    assert_eq!(
        kube.requests(),
        6,
        "the namespace's ServiceAccounts, pods and four kinds of workload, once"
    );
    assert!(
        again
            .service_accounts
            .iter()
            .all(|sa| sa.cluster.as_ref().is_some_and(|c| c.applied.is_empty()))
    );

    // Another manager changes our annotation: the apply is sent, refused, and says who.
    let key = ObjectKey::new("v1", "ServiceAccount", NS, "shop-worker");
    kube.update(
        &key,
        "kubectl-edit",
        json!({"metadata": {"annotations": {"iam.gke.io/gcp-service-account": "other@shop-project-123456.iam.gserviceaccount.com"}}}),
    );
    let before = kube.get(&key);
    kube.reset_requests();
    let conflicted = deploy().await;
    let worker = conflicted
        .service_accounts
        .iter()
        .find(|sa| sa.workload.service_account().as_str() == "shop-worker")
        .unwrap();
    let err = worker
        .cluster
        .as_ref()
        .unwrap()
        .error
        .clone()
        .expect("a conflict");
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(err.to_string().contains("kubectl-edit"), "{err}");
    assert_eq!(kube.get(&key), before, "nothing written");
    assert_eq!(kube.writes(), 1, "only the refused apply of shop-worker");

    // An annotation porter-identity applied and no longer applies: the apply removes it.
    let api = ObjectKey::new("v1", "ServiceAccount", NS, "shop-api");
    kube.apply(
        &api,
        porter_identity_kube::FIELD_MANAGER,
        json!({"metadata": {"annotations": {"iam.gke.io/gcp-service-account": gcp_email(), "porter.run/identity-app": "shop", "stale.example/key": "x"}}}),
        false,
    )
    .unwrap();
    kube.reset_requests();
    let forced = cluster.step(StepOptions::default().force_conflicts(true));
    let report = Reconciler::new("shop", NS)
        .provider(&p)
        .desired_bindings(bindings.clone())
        .kubernetes(&forced)
        .run()
        .await
        .unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(
        kube.writes(),
        2,
        "shop-api (a key to remove) and shop-worker (taken over)"
    );
    let annotations = kube.get(&api).unwrap()["metadata"]["annotations"].clone();
    assert!(
        annotations.get("stale.example/key").is_none(),
        "{annotations}"
    );
    drop(fake);
    server.shutdown().await;
}
