//! `porter-identity-controller`: `crd` prints the CRDs; `run` (the default) reconciles every
//! `AppIdentity` of the cluster it runs in, behind a Lease.
//!
//! Cluster settings come from flags or their environment variables; each cloud's credentials
//! come from its provider's `from_env()` (in the cluster: EKS Pod Identity, Azure workload
//! identity, GKE Workload Identity for the controller's own ServiceAccount). No flag takes a
//! secret.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use porter_identity::WorkloadIdentityProvider;
use porter_identity::kube::Cluster;
use porter_identity_controller::lease::LeaseTiming;
use porter_identity_controller::limits::CloudRateLimit;
use porter_identity_controller::runner::{CONTROLLER_NAME, IdentityController, Settings};
use tokio::sync::watch;

#[derive(Parser, Debug)]
#[command(
    name = "porter-identity-controller",
    version,
    about = "porter-identity in the cluster: reconciles AppIdentity objects on AWS, Azure, GCP and the cluster"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Prints the CRDs (deploy/crd.yaml) as YAML.
    Crd,
    /// Runs the controller (the default).
    Run(Box<RunArgs>),
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// The EKS cluster's name: `awsRole` links (credentials: the AWS SDK's chain).
    #[arg(long, env = "PORTER_IDENTITY_EKS_CLUSTER", value_name = "NAME")]
    eks_cluster: Option<String>,
    /// The AKS cluster, as RESOURCE_GROUP/NAME: `azureManagedIdentity` links
    /// (AZURE_SUBSCRIPTION_ID and azure_identity's credentials).
    #[arg(long, env = "PORTER_IDENTITY_AKS_CLUSTER", value_name = "RG/NAME", value_parser = aks_cluster)]
    aks_cluster: Option<(String, String)>,
    /// The GKE cluster, as PROJECT/LOCATION/NAME: `gcpServiceAccount` links (Application
    /// Default Credentials).
    #[arg(long, env = "PORTER_IDENTITY_GKE_CLUSTER", value_name = "PROJECT/LOCATION/NAME", value_parser = gke_cluster)]
    gke_cluster: Option<(String, String, String)>,
    /// How often every AppIdentity is reconciled again, with ±10% jitter (`600`, `10m`, `30s`).
    #[arg(long, env = "PORTER_IDENTITY_RESYNC", default_value = "10m", value_parser = duration)]
    resync: Duration,
    /// How often each AppIdentity's links are verified on the clouds (trust, permissions,
    /// least privilege), beside every change of its spec.
    #[arg(long, env = "PORTER_IDENTITY_VERIFY_EVERY", default_value = "1h", value_parser = duration)]
    verify_every: Duration,
    /// A cloud's rate limit, CLOUD=RATE[/BURST] in calls per second (repeatable; defaults:
    /// aws=10/20, azure=8/40, gcp=5/20).
    #[arg(
        long = "rate-limit",
        env = "PORTER_IDENTITY_RATE_LIMITS",
        value_delimiter = ',',
        value_name = "CLOUD=RATE[/BURST]"
    )]
    rate_limits: Vec<CloudRateLimit>,
    /// Reconciles at once.
    #[arg(long, env = "PORTER_IDENTITY_CONCURRENCY", default_value_t = 8)]
    concurrency: u16,
    /// The namespace of the Lease: the controller's own.
    #[arg(long, env = "POD_NAMESPACE", default_value = "porter-identity-system")]
    lease_namespace: String,
    /// The Lease's name.
    #[arg(long, env = "PORTER_IDENTITY_LEASE_NAME", default_value = CONTROLLER_NAME)]
    lease_name: String,
    /// How long the lease holds without renewal; the renew deadline is 2/3 of it and the retry
    /// period 2/15 (client-go's 15 s / 10 s / 2 s).
    #[arg(long, env = "PORTER_IDENTITY_LEASE_DURATION", default_value = "15s", value_parser = duration)]
    lease_duration: Duration,
    /// This replica's identity in the Lease and in Events (its pod name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Where /healthz, /readyz and /metrics are served.
    #[arg(long, env = "PORTER_IDENTITY_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
}

fn aks_cluster(s: &str) -> Result<(String, String), String> {
    match s.split('/').collect::<Vec<_>>().as_slice() {
        [rg, name] if !rg.is_empty() && !name.is_empty() => Ok(((*rg).into(), (*name).into())),
        _ => Err(format!(
            "{s:?}: give RESOURCE_GROUP/NAME, e.g. shop-rg/prod"
        )),
    }
}

fn gke_cluster(s: &str) -> Result<(String, String, String), String> {
    match s.split('/').collect::<Vec<_>>().as_slice() {
        [p, l, n] if !p.is_empty() && !l.is_empty() && !n.is_empty() => {
            Ok(((*p).into(), (*l).into(), (*n).into()))
        }
        _ => Err(format!(
            "{s:?}: give PROJECT/LOCATION/NAME, e.g. shop-123456/us-central1/prod"
        )),
    }
}

/// `600`, `600s`, `10m`, `1h`, `250ms`.
fn duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?}: give a duration such as 600, 30s, 10m, 1h or 250ms");
    let (number, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = number.parse().map_err(|_| bad())?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(bad()),
    };
    if d.is_zero() {
        return Err(format!("{s:?}: must be greater than 0"));
    }
    Ok(d)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Crd) => {
            print!("{}", porter_identity_controller::crd::crd_yaml());
            return ExitCode::SUCCESS;
        }
        Some(Command::Run(args)) => *args,
        None => cli.run,
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: RunArgs) -> Result<(), String> {
    if args.eks_cluster.is_none() && args.aks_cluster.is_none() && args.gke_cluster.is_none() {
        return Err("no cluster to serve: pass --eks-cluster, --aks-cluster or --gke-cluster (or PORTER_IDENTITY_EKS_CLUSTER, …)".into());
    }
    if args.lease_duration < Duration::from_secs(1) {
        return Err("--lease-duration: give at least 1s".into());
    }
    let cluster = Cluster::builder()
        .from_env()
        .await
        .map_err(|e| format!("the Kubernetes API: {e}"))?;
    let settings = Settings {
        resync: args.resync,
        verify_every: args.verify_every,
        concurrency: args.concurrency.max(1),
        rate_limits: args.rate_limits.clone(),
        lease_namespace: args.lease_namespace.clone(),
        lease_name: args.lease_name.clone(),
        identity: args
            .identity
            .clone()
            .unwrap_or_else(|| Settings::default().identity),
        lease: LeaseTiming::for_duration(args.lease_duration),
        ..Settings::default()
    };
    let clouds = CloudSettings {
        eks: args.eks_cluster.clone(),
        aks: args.aks_cluster.clone(),
        gke: args.gke_cluster.clone(),
    };
    // Once now, so that a configuration error stops the start with its message; then afresh
    // every resync period (the providers keep reads that passed for their lifetime).
    providers(clouds.clone()).await?;
    let controller = IdentityController::new(cluster, settings)
        .providers_from(Arc::new(move || Box::pin(providers(clouds.clone()))));
    let listener = porter_identity_controller::health::bind(args.listen)
        .await
        .map_err(|e| format!("--listen {}: {e}", args.listen))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("--listen {}: {e}", args.listen))?;
    tracing::info!(%addr, "serving /healthz, /readyz and /metrics");
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing the reconciles running, then releasing the lease");
        let _ = stop_tx.send(true);
    });
    let health = tokio::spawn(porter_identity_controller::health::serve(
        listener,
        controller.metrics(),
        controller.readiness(),
        wait(stop_rx.clone()),
    ));
    controller.run(wait(stop_rx)).await;
    let _ = health.await;
    Ok(())
}

async fn wait(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// SIGTERM (the kubelet's) or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = term => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// The settings of the clouds to serve, as the factory needs them.
#[derive(Debug, Clone)]
struct CloudSettings {
    eks: Option<String>,
    aks: Option<(String, String)>,
    gke: Option<(String, String, String)>,
}

/// Builds the provider of every cloud given, each from its environment.
async fn providers(c: CloudSettings) -> Result<Vec<Arc<dyn WorkloadIdentityProvider>>, String> {
    #[allow(unused_mut)] // a build with no cloud feature adds none
    let mut all: Vec<Arc<dyn WorkloadIdentityProvider>> = Vec::new();
    if let Some(name) = &c.eks {
        #[cfg(feature = "aws")]
        all.push(Arc::new(
            porter_identity::aws::AwsPodIdentityProvider::builder()
                .cluster(name)
                .from_env()
                .await
                .map_err(|e| format!("AWS: {e}"))?,
        ));
        #[cfg(not(feature = "aws"))]
        return Err(format!(
            "--eks-cluster {name}: this build has no AWS (feature aws)"
        ));
    }
    if let Some((rg, name)) = &c.aks {
        #[cfg(feature = "azure")]
        all.push(Arc::new(
            porter_identity::azure::AzureWorkloadIdentityProvider::builder()
                .aks_cluster(rg, name)
                .from_env()
                .await
                .map_err(|e| format!("Azure: {e}"))?,
        ));
        #[cfg(not(feature = "azure"))]
        return Err(format!(
            "--aks-cluster {rg}/{name}: this build has no Azure (feature azure)"
        ));
    }
    if let Some((project, location, name)) = &c.gke {
        #[cfg(feature = "gcp")]
        all.push(Arc::new(
            porter_identity::gcp::GcpWorkloadIdentityProvider::builder()
                .gke_cluster(project, location, name)
                .from_env()
                .await
                .map_err(|e| format!("GCP: {e}"))?,
        ));
        #[cfg(not(feature = "gcp"))]
        return Err(format!(
            "--gke-cluster {project}/{location}/{name}: this build has no GCP (feature gcp)"
        ));
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn durations_and_clusters_read_or_say_the_form() {
        assert_eq!(duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(duration("600").unwrap(), Duration::from_secs(600));
        assert_eq!(duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(duration("ten").unwrap_err().contains("30s"));
        assert!(duration("0s").unwrap_err().contains("greater than 0"));
        assert!(
            aks_cluster("rg")
                .unwrap_err()
                .contains("RESOURCE_GROUP/NAME")
        );
        assert!(
            gke_cluster("p/l")
                .unwrap_err()
                .contains("PROJECT/LOCATION/NAME")
        );
    }
}
