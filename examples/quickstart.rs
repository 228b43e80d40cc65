//! Quickstart: bind a porter.yaml's `awsRole` connections with EKS Pod Identity on the
//! built-in fake EKS + IAM (no AWS account needed), verify, break a trust policy on purpose,
//! re-bind, and unbind.
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

use porter_identity::{AppManifest, Cloud, Connection, Result, WorkloadIdentityProvider};
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

async fn run(args: &Args) -> Result<()> {
    let manifest = AppManifest::from_path(&args.file)?;
    let bindings = manifest.bindings_for(Cloud::Aws, &args.app, &args.namespace)?;
    println!("porter-identity quickstart: EKS Pod Identity on the built-in fake (no AWS account)");
    println!(
        "  porter.yaml {}  app {}  namespace {}  cluster {CLUSTER}",
        args.file.display(),
        args.app,
        args.namespace
    );
    if bindings.is_empty() {
        println!("\nno service of this porter.yaml has an awsRole connection: nothing to bind");
        return Ok(());
    }

    // The fake account holds the roles porter.yaml names (ARNs say which account).
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
    let provider = AwsPodIdentityProvider::builder()
        .cluster(CLUSTER)
        .api(aws.clone())
        .build()?;

    println!("\n1. bind (creates one Pod Identity association per service)");
    for b in &bindings {
        let outcome = provider.bind(b).await?;
        println!("   {:<28} {}", b.workload.to_string(), outcome);
        for note in &outcome.service_account_patch.notes {
            println!("   {:<28} note: {note}", "");
        }
    }

    println!("\n2. verify");
    for b in &bindings {
        let report = provider.verify(b).await?;
        println!("   {}: {}", b.workload, indent(&report.to_string()));
    }

    let broken = &bindings[0];
    let Connection::AwsRole { role } = &broken.connection else {
        unreachable!("bindings_for(Cloud::Aws) gives awsRole bindings")
    };
    println!(
        "\n3. break it on purpose: role {} trusts pods.eks.amazonaws.com for sts:AssumeRole only",
        role.name()
    );
    let original = FakeAws::pods_trust_policy();
    aws.set_trust_policy(
        role.name(),
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
    );
    let report = provider.verify(broken).await?;
    println!("   {}: {}", broken.workload, indent(&report.to_string()));
    aws.set_trust_policy(role.name(), &original);

    println!("\n4. re-bind after fixing the trust policy (every deploy does this)");
    aws.reset_calls();
    for b in &bindings {
        let outcome = provider.bind(b).await?;
        println!("   {:<28} {}", b.workload.to_string(), outcome);
    }
    println!(
        "   cloud calls: {} in all, {} writes",
        aws.calls().values().sum::<u64>(),
        aws.write_calls()
    );

    println!("\n5. unbind");
    for b in &bindings {
        let outcome = provider.unbind(b).await?;
        println!("   {:<28} {outcome}", b.workload.to_string());
    }
    let again = provider.unbind(&bindings[0]).await?;
    println!("   again: {again} (unbind is idempotent)");
    println!(
        "\ndone: {} Pod Identity associations left in cluster {CLUSTER}",
        aws.associations(CLUSTER).len()
    );
    Ok(())
}

fn indent(text: &str) -> String {
    text.replace('\n', "\n   ")
}
