//! Quickstart: deploy the identity links of a porter.yaml with one `Reconciler` call per
//! deploy, on the built-in fake EKS + IAM (no AWS account needed): plan, deploy, deploy again
//! (nothing to change), verify, break a trust policy on purpose, drop a service (its link is
//! removed), and tear the app down.
//!
//! ```text
//! cargo run --example quickstart                         # uses examples/porter.yaml
//! cargo run --example quickstart -- path/to/porter.yaml --app NAME --namespace NS
//! ```
//!
//! Against a real cluster the only difference is how the provider is built:
//! `AwsPodIdentityProvider::builder().cluster("prod").from_env().await?`.

use std::path::PathBuf;
use std::process::ExitCode;

use porter_identity::{
    AppManifest, Cloud, Connection, ReconcileReport, Reconciler, Result, WorkloadIdentityProvider,
};
use porter_identity_aws::AwsPodIdentityProvider;
use porter_identity_aws::fake::FakeAws;

const CLUSTER: &str = "demo-cluster";
const DEFAULT_ACCOUNT: &str = "123456789012";

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
            Connection::AwsRole { role } => role.account().map(str::to_owned),
            _ => None,
        })
        .unwrap_or_else(|| DEFAULT_ACCOUNT.to_owned());
    let aws = FakeAws::new(&account, "us-east-1");
    aws.add_cluster(CLUSTER);
    aws.install_addon(CLUSTER, "eks-pod-identity-agent", "ACTIVE");
    for b in &bindings {
        if let Connection::AwsRole { role } = &b.connection {
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

async fn run(args: &Args) -> Result<()> {
    let manifest = AppManifest::from_path(&args.file)?;
    let (app, namespace) = (args.app.as_str(), args.namespace.as_str());
    let bindings = manifest.bindings_for(Cloud::Aws, app, namespace)?;
    println!(
        "porter-identity quickstart: one Reconciler call per deploy, on the built-in fake EKS"
    );
    println!(
        "  porter.yaml {}  app {app}  namespace {namespace}  cluster {CLUSTER}",
        args.file.display()
    );
    if bindings.is_empty() {
        println!("\nno service of this porter.yaml has an awsRole connection: nothing to bind");
        return Ok(());
    }
    let aws = fake_aws(&manifest, app, namespace)?;
    let provider = AwsPodIdentityProvider::builder()
        .cluster(CLUSTER)
        .api(aws.clone())
        .build()?;
    // This demo has only the AWS provider: Azure and GCP connections are left as they are.
    let deploy = || {
        Reconciler::new(app, namespace)
            .provider(&provider)
            .ignore_cloud(Cloud::Azure)
            .ignore_cloud(Cloud::Gcp)
    };

    step("1. plan the first deploy (a dry run: nothing is written)");
    show(&deploy().desired(&manifest).dry_run().await?);

    step("2. deploy: one call binds every service");
    show(&deploy().desired(&manifest).run().await?);

    step("3. deploy again, as every deploy does: nothing to change");
    aws.reset_calls();
    show(
        &deploy()
            .desired(&manifest)
            .previous(&manifest)
            .run()
            .await?,
    );
    println!("   {} writes", aws.write_calls());

    step("4. verify");
    for b in &bindings {
        let report = provider.verify(b).await?;
        println!("   {}: {}", b.workload, indent(&report.to_string()));
    }

    let broken = &bindings[0];
    let Connection::AwsRole { role } = &broken.connection else {
        unreachable!("bindings_for(Cloud::Aws) gives awsRole bindings")
    };
    step(&format!(
        "5. break it on purpose: role {} trusts pods.eks.amazonaws.com for sts:AssumeRole only",
        role.name()
    ));
    aws.set_trust_policy(
        role.name(),
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
    );
    let report = provider.verify(broken).await?;
    println!("   {}: {}", broken.workload, indent(&report.to_string()));
    aws.set_trust_policy(role.name(), &FakeAws::pods_trust_policy());

    let dropped = bindings[bindings.len() - 1].workload.service().to_string();
    step(&format!(
        "6. the next deploy drops service `{dropped}`: its link is removed (previous = this porter.yaml)"
    ));
    let next: Vec<_> = manifest
        .bindings(app, namespace)?
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

    step("7. tear the app down: an empty desired set removes every link the app made");
    show(
        &deploy()
            .desired_bindings([])
            .previous(&manifest)
            .run()
            .await?,
    );
    println!(
        "\ndone: {} Pod Identity associations left in cluster {CLUSTER}",
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
