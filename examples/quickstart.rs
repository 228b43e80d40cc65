//! Quickstart: deploy the identity links of a porter.yaml with one `Reconciler` call per
//! deploy, on the built-in fakes of EKS + IAM, of Azure Resource Manager and of GCP IAM + GKE
//! (no cloud account needed): plan, deploy (Pod Identity associations on AWS, federated identity
//! credentials on Azure, `roles/iam.workloadIdentityUser` bindings on GCP), print the
//! ServiceAccount manifests, deploy again (nothing to change), verify, break each cloud on
//! purpose and read the fixes, drop a service (its links are removed), and tear the app down.
//! The cluster side runs on the Kubernetes API fake over HTTPS, reached through kube-rs as a
//! real cluster is: the findings before, the Kubernetes step (annotations, the Azure pod label),
//! the pods older than the links, their restart, and a healthy verify after.
//!
//! ```text
//! cargo run --example quickstart                         # uses examples/porter.yaml
//! cargo run --example quickstart -- path/to/porter.yaml --app NAME --namespace NS
//! ```
//!
//! Against real clouds the only difference is how the providers are built:
//! `AwsPodIdentityProvider::builder().cluster("prod").from_env().await?`,
//! `AzureWorkloadIdentityProvider::builder().aks_cluster("aks-rg", "prod").from_env().await?` and
//! `GcpWorkloadIdentityProvider::builder().gke_cluster("my-project", "us-central1", "prod").from_env().await?`.

use std::path::PathBuf;
use std::process::ExitCode;

use porter_identity::{
    AppManifest, Cloud, Connection, ReconcileReport, Reconciler, Result, WorkloadIdentityProvider,
};
use porter_identity_aws::AwsPodIdentityProvider;
use porter_identity_aws::fake::FakeAws;
use porter_identity_azure::AzureWorkloadIdentityProvider;
use porter_identity_azure::fake::{BUILT_IN_ROLES, FakeAzure};
use porter_identity_gcp::GcpWorkloadIdentityProvider;
use porter_identity_gcp::fake::FakeGcp;
use porter_identity_kube::fake::FakeKube;
use porter_identity_kube::step::StepOptions;

const CLUSTER: &str = "demo-cluster";
const DEFAULT_ACCOUNT: &str = "123456789012";
/// The AKS cluster (its resource group and name) and its OIDC issuer.
const AKS_RESOURCE_GROUP: &str = "demo-aks-rg";
const AKS_ISSUER: &str =
    "https://eastus.oic.prod-aks.azure.com/72f988bf-86f1-41af-91ab-2d7cd011db47/demo-cluster/";
/// The GKE cluster's project and location.
const GKE_PROJECT: &str = "demo-project-123456";
const GKE_LOCATION: &str = "us-central1";

struct Args {
    file: PathBuf,
    app: String,
    namespace: String,
}

fn args() -> std::result::Result<Args, String> {
    let mut out = Args {
        file: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/porter.yaml")),
        app: "demo".into(),
        namespace: "default".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--app" => out.app = it.next().ok_or("--app needs a value")?,
            "--namespace" => out.namespace = it.next().ok_or("--namespace needs a value")?,
            "-h" | "--help" => return Err(String::new()),
            other if other.starts_with('-') => return Err(format!("unknown option {other}")),
            path => out.file = PathBuf::from(path),
        }
    }
    Ok(out)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("error: {e}");
            }
            eprintln!(
                "usage: cargo run --example quickstart [-- porter.yaml --app NAME --namespace NS]"
            );
            return ExitCode::from(2);
        }
    };
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A fake AWS account holding the cluster and every role the porter.yaml names.
fn fake_aws(manifest: &AppManifest, app: &str, namespace: &str) -> Result<FakeAws> {
    let bindings = manifest.bindings_for(Cloud::Aws, app, namespace)?;
    // The fake account is the one the role ARNs name, if any.
    let account = bindings
        .iter()
        .find_map(|b| match &b.connection {
            Connection::AwsRole { role, .. } => role.account().map(str::to_owned),
            _ => None,
        })
        .unwrap_or_else(|| DEFAULT_ACCOUNT.to_owned());
    let aws = FakeAws::new(&account, "us-east-1");
    aws.add_cluster(CLUSTER);
    aws.install_addon(CLUSTER, "eks-pod-identity-agent", "ACTIVE");
    for b in &bindings {
        if let Connection::AwsRole { role, .. } = &b.connection {
            match role.arn() {
                Some(arn) => aws.add_role_with_arn(arn, &FakeAws::pods_trust_policy()),
                None => aws.add_role(role.name(), &FakeAws::pods_trust_policy()),
            };
            aws.put_role_policy(
                role.name(),
                "app-data",
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject","s3:PutObject"],"Resource":"arn:aws:s3:::demo-bucket/*"}]}"#,
            );
        }
    }
    Ok(aws)
}

/// A fake Azure subscription holding the AKS cluster and every managed identity the porter.yaml
/// names, each allowed to read one storage account (a role at resource scope, as least
/// privilege asks).
fn fake_azure(manifest: &AppManifest, app: &str, namespace: &str) -> Result<FakeAzure> {
    let azure = FakeAzure::new();
    azure.add_aks_cluster(AKS_RESOURCE_GROUP, CLUSTER, AKS_ISSUER);
    let (blob_reader, _) = BUILT_IN_ROLES[4];
    for b in manifest.bindings_for(Cloud::Azure, app, namespace)? {
        if let Connection::AzureManagedIdentity {
            identity_name,
            resource_group,
            ..
        } = &b.connection
        {
            let identity = azure.add_identity(resource_group.as_str(), identity_name.as_str());
            let storage = format!(
                "{}/providers/Microsoft.Storage/storageAccounts/demodata",
                azure.resource_group_scope(resource_group.as_str())
            );
            azure.assign_role(&identity.principal_id, blob_reader, &storage);
        }
    }
    Ok(azure)
}

/// A fake GCP project holding the GKE cluster (Workload Identity on, its node pool in
/// `GKE_METADATA` mode) and every service account the porter.yaml names.
fn fake_gcp(manifest: &AppManifest, app: &str, namespace: &str) -> Result<FakeGcp> {
    let gcp = FakeGcp::new();
    gcp.add_gke_cluster(GKE_PROJECT, GKE_LOCATION, CLUSTER);
    for b in manifest.bindings_for(Cloud::Gcp, app, namespace)? {
        if let Connection::GcpServiceAccount {
            service_account_email,
            ..
        } = &b.connection
        {
            gcp.add_service_account(service_account_email.as_str());
        }
    }
    Ok(gcp)
}

/// A cluster with what the app's chart made an hour ago: per service with a connection, its
/// ServiceAccount (no annotations yet) and a Deployment of two pods running as it.
fn fake_kube(manifest: &AppManifest, app: &str, namespace: &str) -> Result<FakeKube> {
    let kube = FakeKube::new();
    kube.add_node("demo-node-1", "default-pool");
    kube.add_app(
        manifest,
        app,
        namespace,
        std::time::Duration::from_secs(3600),
    )?;
    Ok(kube)
}

async fn run(args: &Args) -> Result<()> {
    let manifest = AppManifest::from_path(&args.file)?;
    let (app, namespace) = (args.app.as_str(), args.namespace.as_str());
    let on_aws = manifest.bindings_for(Cloud::Aws, app, namespace)?;
    let on_azure = manifest.bindings_for(Cloud::Azure, app, namespace)?;
    let on_gcp = manifest.bindings_for(Cloud::Gcp, app, namespace)?;
    println!(
        "porter-identity quickstart: one Reconciler call per deploy, on the built-in fakes of EKS, Azure and GCP"
    );
    println!(
        "  porter.yaml {}  app {app}  namespace {namespace}  cluster {CLUSTER}",
        args.file.display()
    );
    if on_aws.is_empty() && on_azure.is_empty() && on_gcp.is_empty() {
        println!(
            "\nno service of this porter.yaml has an awsRole, azureManagedIdentity or gcpServiceAccount connection: nothing to bind"
        );
        return Ok(());
    }
    let aws = fake_aws(&manifest, app, namespace)?;
    let aws_provider = AwsPodIdentityProvider::builder()
        .cluster(CLUSTER)
        .api(aws.clone())
        .build()
        .await?;
    let azure = fake_azure(&manifest, app, namespace)?;
    let azure_provider = AzureWorkloadIdentityProvider::builder()
        .aks_cluster(AKS_RESOURCE_GROUP, CLUSTER)
        .api(azure.clone())
        .build()
        .await?;
    let gcp = fake_gcp(&manifest, app, namespace)?;
    let gcp_provider = GcpWorkloadIdentityProvider::builder()
        .gke_cluster(GKE_PROJECT, GKE_LOCATION, CLUSTER)
        .api(gcp.clone())
        .build()
        .await?;
    // One reconciler for the three clouds.
    let deploy = || {
        Reconciler::new(app, namespace)
            .provider(&aws_provider)
            .provider(&azure_provider)
            .provider(&gcp_provider)
    };
    // The same porter.yaml deployed again.
    let redeploy = || deploy().desired(&manifest).previous(&manifest);
    // The cluster: what the app's chart made an hour ago (a ServiceAccount and a Deployment of
    // two pods per service), served over HTTPS and reached through kube-rs with its kubeconfig.
    let kube = fake_kube(&manifest, app, namespace)?;
    let kube_server = kube
        .serve(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .map_err(|e| {
            porter_identity::Error::invalid_input(
                "fake cluster",
                e.to_string(),
                "free a loopback port",
            )
        })?;
    let cluster = kube_server.cluster().await?;
    // The cluster side runs in the same call as the clouds', after them; what only a cloud
    // knows of the cluster (GKE's node pools) the providers tell it by themselves.
    let kubernetes = cluster.step(StepOptions::default());
    step("1. plan the first deploy (a dry run: nothing is written, in the clouds or the cluster)");
    show(
        &deploy()
            .desired(&manifest)
            .kubernetes(&kubernetes)
            .dry_run()
            .await?,
    );

    step("2. deploy: one call binds every service on the three clouds; then the Kubernetes step");
    let first = deploy()
        .desired(&manifest)
        .kubernetes(&kubernetes)
        .run()
        .await?;
    show(&first);

    step("2b. restart exactly the workloads whose pods started before their links");
    for restarted in cluster.restart_step(&first, false).await? {
        println!("   restarted {restarted}");
    }

    step(
        "2c. verify the app, clouds and cluster in one read-only call: every service account ready",
    );
    let after = deploy()
        .desired(&manifest)
        .kubernetes(&kubernetes)
        .verify()
        .await?;
    for needs in &after.service_accounts {
        let findings = needs.cluster.as_ref().map_or(0, |c| c.findings.len());
        println!(
            "   service account {}/{}: {}",
            needs.workload.namespace(),
            needs.workload.service_account(),
            if findings == 0 {
                "ready".to_owned()
            } else {
                format!("{findings} finding(s)")
            }
        );
    }
    kube_server.shutdown().await;

    step("3. the ServiceAccounts to apply (annotations, pod labels, restart advice)");
    for needs in &first.service_accounts {
        println!(
            "   {}",
            indent(&needs.patch.to_service_account_yaml(&needs.workload))
        );
    }

    step("4. deploy again, as every deploy does: nothing to change");
    aws.reset_calls();
    azure.reset_calls();
    gcp.reset_calls();
    show(&redeploy().run().await?);
    println!(
        "   {} writes on AWS, {} on Azure, {} on GCP",
        aws.write_calls(),
        azure.write_calls(),
        gcp.write_calls()
    );

    step("5. verify the clouds' side: every link, its identity and its permissions");
    let verified = deploy().desired(&manifest).verify().await?;
    println!("   {}", indent(&verified.to_string()));

    if let Some(broken) = on_aws.first() {
        let Connection::AwsRole { role, .. } = &broken.connection else {
            unreachable!("bindings_for(Cloud::Aws) gives awsRole bindings")
        };
        step(&format!(
            "6. break AWS on purpose: role {} trusts pods.eks.amazonaws.com for sts:AssumeRole only",
            role.name()
        ));
        aws.set_trust_policy(
            role.name(),
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
        );
        let report = aws_provider.verify(broken).await?;
        println!("   {}: {}", broken.workload, indent(&report.to_string()));
        aws.set_trust_policy(role.name(), &FakeAws::pods_trust_policy());
    }

    if let Some(broken) = on_azure.first() {
        step(&format!(
            "7. break Azure on purpose: unbind {} by hand, then turn the cluster's OIDC issuer off",
            broken.workload
        ));
        println!("   unbind: {}", azure_provider.unbind(broken).await?);
        let report = azure_provider.verify(broken).await?;
        println!("   {}: {}", broken.workload, indent(&report.to_string()));
        azure.set_oidc_issuer_enabled(AKS_RESOURCE_GROUP, CLUSTER, false);
        let report = azure_provider.verify(broken).await?;
        println!("   {}: {}", broken.workload, indent(&report.to_string()));
        azure.set_oidc_issuer_enabled(AKS_RESOURCE_GROUP, CLUSTER, true);
        step("   the next deploy puts the missing credential back");
        show(&redeploy().run().await?);
    }

    if let Some(broken) = on_gcp.first() {
        let Connection::GcpServiceAccount {
            service_account_email: email,
            ..
        } = &broken.connection
        else {
            unreachable!("bindings_for(Cloud::Gcp) gives gcpServiceAccount bindings")
        };
        step(&format!(
            "7b. break GCP on purpose: a node pool in GCE_METADATA mode, and a user-managed key on {email}"
        ));
        gcp.set_node_pool(
            GKE_PROJECT,
            GKE_LOCATION,
            CLUSTER,
            "legacy-pool",
            "GCE_METADATA",
        )
        .add_user_managed_key(email.as_str(), "3f1c9e0d2b7a");
        let report = gcp_provider.verify(broken).await?;
        println!("   {}: {}", broken.workload, indent(&report.to_string()));
        gcp.set_node_pool(
            GKE_PROJECT,
            GKE_LOCATION,
            CLUSTER,
            "legacy-pool",
            "GKE_METADATA",
        );
        step("   an unchanged re-bind writes nothing; unbind removes only this member");
        gcp.reset_calls();
        println!("   bind: {}", gcp_provider.bind(broken).await?);
        println!("   {} writes on GCP", gcp.write_calls());
        println!("   unbind: {}", gcp_provider.unbind(broken).await?);
        step("   the next deploy puts the member back");
        show(&redeploy().run().await?);
    }

    let services = manifest.bindings(app, namespace)?;
    let Some(last) = services.last() else {
        return Ok(());
    };
    let dropped = last.workload.service().to_string();
    step(&format!(
        "8. the next deploy drops service `{dropped}`: its links are removed (previous = this porter.yaml)"
    ));
    let next: Vec<_> = services
        .into_iter()
        .filter(|b| b.workload.service().as_str() != dropped)
        .collect();
    show(
        &deploy()
            .desired_bindings(next)
            .previous(&manifest)
            .run()
            .await?,
    );

    step("9. tear the app down: an empty desired set removes every link the app made");
    show(
        &deploy()
            .desired_bindings([])
            .previous(&manifest)
            .run()
            .await?,
    );
    let credentials: usize = on_azure
        .iter()
        .filter_map(|b| match &b.connection {
            Connection::AzureManagedIdentity {
                identity_name,
                resource_group,
                ..
            } => Some(
                azure
                    .credentials(resource_group.as_str(), identity_name.as_str())
                    .len(),
            ),
            _ => None,
        })
        .sum();
    let members: usize = on_gcp
        .iter()
        .filter_map(|b| match &b.connection {
            Connection::GcpServiceAccount {
                service_account_email,
                ..
            } => Some(
                gcp.workload_identity_users(service_account_email.as_str())
                    .len(),
            ),
            _ => None,
        })
        .sum();
    println!(
        "\ndone: {} Pod Identity associations left in cluster {CLUSTER}, {credentials} federated identity credentials left on Azure, {members} Workload Identity members left on GCP",
        aws.associations(CLUSTER).len()
    );
    Ok(())
}

fn step(title: &str) {
    println!("\n{title}");
}

fn show(report: &ReconcileReport) {
    println!("   {}", indent(&report.to_string()));
}

fn indent(text: &str) -> String {
    text.replace('\n', "\n   ")
}
