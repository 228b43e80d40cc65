//! The command line: subcommands and flags (clap derive), and the checks clap cannot make.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use clap_complete::Shell;

/// Gives each Kubernetes workload of a porter app a cloud identity — EKS Pod Identity, Azure
/// federated identity credentials, GKE Workload Identity — from its porter.yaml.
///
/// Credentials and endpoints come from each cloud's own environment (AWS_PROFILE,
/// AWS_ENDPOINT_URL_*, AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_MANAGER_ENDPOINT,
/// GOOGLE_APPLICATION_CREDENTIALS, CLOUDSDK_API_ENDPOINT_OVERRIDES_*, …); no flag takes a
/// secret. `--fake` runs on built-in in-memory clouds instead.
///
/// The Kubernetes side (`apply --kube`, `verify`, `restart`, `migrate-irsa`,
/// `gke-enable-workload-identity`) uses the cluster of KUBECONFIG (else ~/.kube/config, else
/// in-cluster); with --fake, a built-in Kubernetes API fake.
///
/// Exit status: 0 ok, 1 verify found errors, 2 bad input (porter.yaml, flags), 3 a cloud or
/// Kubernetes call failed.
#[derive(Debug, Parser)]
#[command(name = "porter-identity", version = crate::version(), max_term_width = 100)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// What apply would do: a dry run of the whole deploy, nothing written.
    Plan(Deploy),
    /// Deploy: bind every identity connection and remove the links the app no longer wants;
    /// with --kube, also the cluster side.
    Apply(Deploy),
    /// Bind every identity connection of the porter.yaml (nothing is removed).
    Bind(Common),
    /// Remove the links of every identity connection of the porter.yaml.
    Unbind(Common),
    /// Diagnose every binding: cluster, identity, link, least privilege — and, when a
    /// kubeconfig is reachable, the Kubernetes side.
    Verify(Common),
    /// Print the ServiceAccount manifests to apply with kubectl.
    #[cfg(feature = "kube")]
    Manifests(Common),
    /// Rollout-restart exactly the workloads whose pods started before their links last
    /// changed (nothing else).
    #[cfg(feature = "kube")]
    Restart(Restart),
    /// Move ServiceAccounts annotated for IRSA (eks.amazonaws.com/role-arn) to EKS Pod
    /// Identity: association, trust-policy check, and (with --remove-annotation) the
    /// annotation's removal.
    #[cfg(all(feature = "aws", feature = "kube"))]
    MigrateIrsa(MigrateIrsa),
    /// Put a GKE node pool in GKE_METADATA mode, after a preflight of the pods on it that would
    /// lose the node's service account. Recreates the pool's nodes.
    #[cfg(all(feature = "gcp", feature = "kube"))]
    GkeEnableWorkloadIdentity(GkeEnable),
    /// Print the completion script of a shell (bash, zsh, fish, elvish, powershell) to stdout,
    /// e.g. `porter-identity completions bash > ~/.local/share/bash-completion/completions/porter-identity`.
    Completions(Completions),
}

/// `completions`.
#[derive(Debug, Clone, Args)]
pub(crate) struct Completions {
    /// The shell to write completions for.
    #[arg(value_enum)]
    pub(crate) shell: Shell,
}

/// `plan` and `apply`.
#[derive(Debug, Clone, Args)]
pub(crate) struct Deploy {
    #[command(flatten)]
    pub(crate) common: Common,

    /// Also the Kubernetes side: server-side apply of the ServiceAccounts' annotations (field
    /// manager porter-identity) and of the Azure pod label on their workloads' pod templates
    /// (which rolls their pods); then the cluster's findings.
    #[cfg(feature = "kube")]
    #[arg(long)]
    pub(crate) kube: bool,

    /// With --kube: take over annotations and labels another field manager set to other
    /// values (otherwise that is an error naming the manager).
    #[cfg(feature = "kube")]
    #[arg(long, requires = "kube")]
    pub(crate) force_conflicts: bool,

    /// With --kube: rollout-restart the workloads whose pods started before their links last
    /// changed.
    #[cfg(feature = "kube")]
    #[arg(long, requires = "kube")]
    pub(crate) restart: bool,

    /// With --kube: create a missing ServiceAccount (otherwise it is a finding, left to the
    /// chart or manifest that owns it).
    #[cfg(feature = "kube")]
    #[arg(long, requires = "kube")]
    pub(crate) create_service_accounts: bool,
}

/// `restart`.
#[cfg(feature = "kube")]
#[derive(Debug, Clone, Args)]
pub(crate) struct Restart {
    #[command(flatten)]
    pub(crate) common: Common,

    /// Only list the workloads that would be restarted.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

/// `migrate-irsa`.
#[cfg(all(feature = "aws", feature = "kube"))]
#[derive(Debug, Clone, Args)]
pub(crate) struct MigrateIrsa {
    #[command(flatten)]
    pub(crate) common: Common,

    /// Only show what would be done: the association, the trust check, the annotation.
    #[arg(long)]
    pub(crate) dry_run: bool,

    /// Remove the IRSA annotation once the association exists and the role's trust policy
    /// allows Pod Identity (never otherwise).
    #[arg(long)]
    pub(crate) remove_annotation: bool,
}

/// `gke-enable-workload-identity`.
#[cfg(all(feature = "gcp", feature = "kube"))]
#[derive(Debug, Clone, Args)]
pub(crate) struct GkeEnable {
    #[command(flatten)]
    pub(crate) common: Common,

    /// The node pool to put in GKE_METADATA mode.
    #[arg(long)]
    pub(crate) pool: String,

    /// Change the pool even though the preflight found pods that would lose the node's
    /// service account.
    #[arg(long)]
    pub(crate) force: bool,

    /// Only run the preflight.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

impl Common {
    /// The app, once resolved (see `main::run`).
    pub(crate) fn app(&self) -> &str {
        self.app.as_deref().unwrap_or_default()
    }
}

impl Command {
    /// The flags of a command that runs on a porter.yaml (all but `completions`).
    pub(crate) fn common(&self) -> Option<&Common> {
        match self {
            Command::Plan(d) | Command::Apply(d) => Some(&d.common),
            Command::Bind(c) | Command::Unbind(c) | Command::Verify(c) => Some(c),
            #[cfg(feature = "kube")]
            Command::Manifests(c) => Some(c),
            #[cfg(feature = "kube")]
            Command::Restart(r) => Some(&r.common),
            #[cfg(all(feature = "aws", feature = "kube"))]
            Command::MigrateIrsa(m) => Some(&m.common),
            #[cfg(all(feature = "gcp", feature = "kube"))]
            Command::GkeEnableWorkloadIdentity(g) => Some(&g.common),
            Command::Completions(_) => None,
        }
    }

    #[cfg_attr(not(feature = "fake"), allow(dead_code))] // what --fake-state records
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Command::Plan(_) => "plan",
            Command::Apply(_) => "apply",
            Command::Bind(_) => "bind",
            Command::Unbind(_) => "unbind",
            Command::Verify(_) => "verify",
            #[cfg(feature = "kube")]
            Command::Manifests(_) => "manifests",
            #[cfg(feature = "kube")]
            Command::Restart(_) => "restart",
            #[cfg(all(feature = "aws", feature = "kube"))]
            Command::MigrateIrsa(_) => "migrate-irsa",
            #[cfg(all(feature = "gcp", feature = "kube"))]
            Command::GkeEnableWorkloadIdentity(_) => "gke-enable-workload-identity",
            Command::Completions(_) => "completions",
        }
    }

    /// Whether the command writes links to the clouds (what `--fake-state` replays).
    #[cfg_attr(not(feature = "fake"), allow(dead_code))]
    pub(crate) fn writes(&self) -> bool {
        matches!(
            self,
            Command::Apply(_) | Command::Bind(_) | Command::Unbind(_)
        )
    }
}

/// The flags every subcommand takes.
#[derive(Debug, Clone, Args)]
pub(crate) struct Common {
    /// The app's porter.yaml.
    #[arg(short = 'f', long = "file", default_value = "porter.yaml")]
    pub(crate) file: PathBuf,

    /// The porter app (ServiceAccounts are named APP-SERVICE); by default the porter.yaml's
    /// top-level `name`.
    #[arg(long)]
    pub(crate) app: Option<String>,

    /// The Kubernetes namespace the app is deployed to.
    #[arg(short = 'n', long, default_value = "default")]
    pub(crate) namespace: String,

    /// The porter.yaml of the previous deploy: its links that this one no longer wants are
    /// removed by apply (and shown by plan).
    #[arg(long, value_name = "OLD_PORTER_YAML")]
    pub(crate) previous: Option<PathBuf>,

    /// The EKS cluster, for awsRole connections (region and credentials from the AWS
    /// environment).
    #[cfg(feature = "aws")]
    #[arg(long, value_name = "NAME")]
    pub(crate) eks_cluster: Option<String>,

    /// How pods get the awsRole connections that do not say (`mode:` in porter.yaml):
    /// podIdentity (an EKS Pod Identity association) or irsa (the eks.amazonaws.com/role-arn
    /// annotation, for Fargate pods and clusters without the Pod Identity agent).
    #[cfg(feature = "aws")]
    #[arg(long, value_name = "MODE", default_value = "podIdentity", value_parser = parse_aws_mode)]
    pub(crate) aws_mode: porter_identity::AwsRoleMode,

    /// An AWS profile whose credentials read the IAM roles of ACCOUNT, where targetRole roles
    /// live: their trust is then checked before each bind (repeat for several accounts).
    #[cfg(feature = "aws")]
    #[arg(long, value_name = "ACCOUNT=PROFILE", value_parser = parse_target_profile)]
    pub(crate) aws_target_profile: Vec<(String, String)>,

    /// The AKS cluster, for azureManagedIdentity connections (subscription and credentials
    /// from the Azure environment).
    #[cfg(feature = "azure")]
    #[arg(long, value_name = "RG/NAME")]
    pub(crate) aks_cluster: Option<String>,

    /// The GKE cluster, for gcpServiceAccount connections (credentials from Application
    /// Default Credentials).
    #[cfg(feature = "gcp")]
    #[arg(long, value_name = "PROJECT/LOCATION/NAME")]
    pub(crate) gke_cluster: Option<String>,

    /// Run on the built-in in-memory clouds, seeded with a demo cluster and the roles,
    /// identities and service accounts the porter.yaml names. No cloud account needed.
    #[cfg(feature = "fake")]
    #[arg(long)]
    pub(crate) fake: bool,

    /// With --fake: keep the fake clouds' links in FILE between runs.
    #[cfg(feature = "fake")]
    #[arg(long, value_name = "FILE", requires = "fake")]
    pub(crate) fake_state: Option<PathBuf>,

    /// How to print the result.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
    pub(crate) output: Output,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Output {
    /// A table a person reads at a glance.
    Text,
    /// Stable JSON for scripts (see the README).
    Json,
}

/// `RG/NAME`.
#[cfg(feature = "azure")]
pub(crate) fn aks_cluster(value: &str) -> Result<(String, String), String> {
    match value.split('/').collect::<Vec<_>>().as_slice() {
        [rg, name] if !rg.is_empty() && !name.is_empty() => Ok(((*rg).into(), (*name).into())),
        _ => Err(format!(
            "--aks-cluster {value:?}: give the cluster as RESOURCE_GROUP/NAME, e.g. prod-rg/prod-aks"
        )),
    }
}

/// `PROJECT/LOCATION/NAME`.
#[cfg(feature = "gcp")]
pub(crate) fn gke_cluster(value: &str) -> Result<(String, String, String), String> {
    match value.split('/').collect::<Vec<_>>().as_slice() {
        [p, l, n] if !p.is_empty() && !l.is_empty() && !n.is_empty() => {
            Ok(((*p).into(), (*l).into(), (*n).into()))
        }
        _ => Err(format!(
            "--gke-cluster {value:?}: give the cluster as PROJECT/LOCATION/NAME, e.g. my-project/us-central1/prod"
        )),
    }
}

/// `--aws-mode`: `podIdentity` or `irsa`, as porter.yaml writes them.
#[cfg(feature = "aws")]
fn parse_aws_mode(value: &str) -> Result<porter_identity::AwsRoleMode, String> {
    porter_identity::AwsRoleMode::parse(value)
        .map_err(|_| format!("{value:?} is not a mode: write podIdentity (the default) or irsa"))
}

/// `--aws-target-profile ACCOUNT=PROFILE`: a 12-digit account and a profile name.
#[cfg(feature = "aws")]
fn parse_target_profile(value: &str) -> Result<(String, String), String> {
    let fix = "write it as ACCOUNT=PROFILE, e.g. 444455556666=data-readonly";
    let Some((account, profile)) = value.split_once('=') else {
        return Err(format!("{value:?} has no `=`: {fix}"));
    };
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{account:?} is not an AWS account ID (12 digits): {fix}"
        ));
    }
    if profile.trim().is_empty() {
        return Err(format!("the profile is empty: {fix}"));
    }
    Ok((account.to_owned(), profile.to_owned()))
}
