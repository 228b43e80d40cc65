//! The providers of the clouds a run needs: built from each cloud's environment exactly as the
//! providers' `from_env` reads it, or, with `--fake`, on the built-in in-memory clouds seeded
//! with what the porter.yaml names.

use std::collections::BTreeSet;

use porter_identity::{AppManifest, Cloud, Connection, WorkloadIdentityProvider};
use porter_identity_aws::AwsPodIdentityProvider;
use porter_identity_aws::fake::FakeAws;
use porter_identity_azure::AzureWorkloadIdentityProvider;
use porter_identity_azure::fake::{BUILT_IN_ROLES, FakeAzure};
use porter_identity_gcp::GcpWorkloadIdentityProvider;
use porter_identity_gcp::fake::FakeGcp;

use crate::Failure;
use crate::cli::{self, Common};

/// The demo cluster of the fakes: its name on EKS, its resource group on AKS, its project and
/// location on GKE, and the AKS OIDC issuer.
pub(crate) const FAKE_CLUSTER: &str = "demo-cluster";
pub(crate) const FAKE_AKS_RESOURCE_GROUP: &str = "demo-aks-rg";
pub(crate) const FAKE_GKE_PROJECT: &str = "demo-project-123456";
pub(crate) const FAKE_GKE_LOCATION: &str = "us-central1";
const FAKE_AKS_ISSUER: &str =
    "https://eastus.oic.prod-aks.azure.com/72f988bf-86f1-41af-91ab-2d7cd011db47/demo-cluster/";
const FAKE_AWS_ACCOUNT: &str = "123456789012";

/// One provider per cloud in play.
pub(crate) struct Clouds {
    aws: Option<AwsPodIdentityProvider>,
    azure: Option<AzureWorkloadIdentityProvider>,
    gcp: Option<GcpWorkloadIdentityProvider>,
}

impl Clouds {
    /// The providers, AWS, Azure, GCP.
    pub(crate) fn providers(&self) -> Vec<&dyn WorkloadIdentityProvider> {
        let mut out: Vec<&dyn WorkloadIdentityProvider> = Vec::new();
        if let Some(p) = &self.aws {
            out.push(p);
        }
        if let Some(p) = &self.azure {
            out.push(p);
        }
        if let Some(p) = &self.gcp {
            out.push(p);
        }
        out
    }

    /// The GCP provider (node pools), when GCP is in play.
    pub(crate) fn gcp(&self) -> Option<&GcpWorkloadIdentityProvider> {
        self.gcp.as_ref()
    }

    /// The provider of `cloud`.
    pub(crate) fn provider(&self, cloud: Cloud) -> Option<&dyn WorkloadIdentityProvider> {
        match cloud {
            Cloud::Aws => self
                .aws
                .as_ref()
                .map(|p| p as &dyn WorkloadIdentityProvider),
            Cloud::Azure => self
                .azure
                .as_ref()
                .map(|p| p as &dyn WorkloadIdentityProvider),
            Cloud::Gcp => self
                .gcp
                .as_ref()
                .map(|p| p as &dyn WorkloadIdentityProvider),
        }
    }
}

/// The clouds the connections of these manifests are on.
pub(crate) fn clouds_of(manifests: &[&AppManifest]) -> BTreeSet<Cloud> {
    manifests
        .iter()
        .flat_map(|m| m.services())
        .flat_map(|s| s.identity_connections())
        .filter_map(Connection::cloud)
        .collect()
}

/// Providers for `needed` from each cloud's environment and the cluster flags.
pub(crate) async fn from_env(common: &Common, needed: &BTreeSet<Cloud>) -> Result<Clouds, Failure> {
    let missing = |cloud: Cloud, flag: &str| {
        Failure::Input(format!(
            "the porter.yaml has {} connections: pass {flag} (or --fake to run on the built-in fake clouds)",
            cloud.connection_type()
        ))
    };
    let mut clouds = Clouds {
        aws: None,
        azure: None,
        gcp: None,
    };
    if needed.contains(&Cloud::Aws) {
        let name = common
            .eks_cluster
            .as_deref()
            .ok_or_else(|| missing(Cloud::Aws, "--eks-cluster NAME"))?;
        clouds.aws = Some(
            AwsPodIdentityProvider::builder()
                .cluster(name)
                .from_env()
                .await?,
        );
    }
    if needed.contains(&Cloud::Azure) {
        let value = common
            .aks_cluster
            .as_deref()
            .ok_or_else(|| missing(Cloud::Azure, "--aks-cluster RG/NAME"))?;
        let (rg, name) = cli::aks_cluster(value).map_err(Failure::Input)?;
        clouds.azure = Some(
            AzureWorkloadIdentityProvider::builder()
                .aks_cluster(rg, name)
                .from_env()
                .await?,
        );
    }
    if needed.contains(&Cloud::Gcp) {
        let value = common
            .gke_cluster
            .as_deref()
            .ok_or_else(|| missing(Cloud::Gcp, "--gke-cluster PROJECT/LOCATION/NAME"))?;
        let (project, location, name) = cli::gke_cluster(value).map_err(Failure::Input)?;
        clouds.gcp = Some(
            GcpWorkloadIdentityProvider::builder()
                .gke_cluster(project, location, name)
                .from_env()
                .await?,
        );
    }
    Ok(clouds)
}

/// Providers on the built-in fake clouds, seeded with the demo cluster on each cloud and the
/// roles, managed identities and service accounts every one of `manifests` names.
pub(crate) async fn fakes(manifests: &[&AppManifest]) -> Result<Clouds, Failure> {
    let connections: Vec<&Connection> = manifests
        .iter()
        .flat_map(|m| m.services())
        .flat_map(|s| s.identity_connections())
        .collect();

    let account = connections
        .iter()
        .find_map(|c| match c {
            Connection::AwsRole { role } => role.account().map(str::to_owned),
            _ => None,
        })
        .unwrap_or_else(|| FAKE_AWS_ACCOUNT.to_owned());
    let aws = FakeAws::new(&account, "us-east-1");
    aws.add_cluster(FAKE_CLUSTER);
    aws.install_addon(FAKE_CLUSTER, "eks-pod-identity-agent", "ACTIVE");
    let azure = FakeAzure::new();
    azure.add_aks_cluster(FAKE_AKS_RESOURCE_GROUP, FAKE_CLUSTER, FAKE_AKS_ISSUER);
    let (blob_reader, _) = BUILT_IN_ROLES[4];
    let gcp = FakeGcp::new();
    gcp.add_gke_cluster(FAKE_GKE_PROJECT, FAKE_GKE_LOCATION, FAKE_CLUSTER);

    let mut roles = BTreeSet::new();
    for connection in connections {
        match connection {
            Connection::AwsRole { role } => {
                let key = role
                    .arn()
                    .map_or_else(|| role.name().to_owned(), str::to_owned);
                if roles.insert(key) {
                    match role.arn() {
                        Some(arn) => aws.add_role_with_arn(arn, &FakeAws::pods_trust_policy()),
                        None => aws.add_role(role.name(), &FakeAws::pods_trust_policy()),
                    };
                }
            }
            Connection::AzureManagedIdentity {
                identity_name,
                resource_group,
            } if azure
                .identity(resource_group.as_str(), identity_name.as_str())
                .is_none() =>
            {
                let identity = azure.add_identity(resource_group.as_str(), identity_name.as_str());
                let storage = format!(
                    "{}/providers/Microsoft.Storage/storageAccounts/demodata",
                    azure.resource_group_scope(resource_group.as_str())
                );
                azure.assign_role(&identity.principal_id, blob_reader, &storage);
            }
            Connection::GcpServiceAccount {
                service_account_email,
            } if gcp.policy_json(service_account_email.as_str()).is_none() => {
                gcp.add_service_account(service_account_email.as_str());
            }
            _ => {}
        }
    }
    Ok(Clouds {
        aws: Some(
            AwsPodIdentityProvider::builder()
                .cluster(FAKE_CLUSTER)
                .api(aws)
                .build()?,
        ),
        azure: Some(
            AzureWorkloadIdentityProvider::builder()
                .aks_cluster(FAKE_AKS_RESOURCE_GROUP, FAKE_CLUSTER)
                .api(azure)
                .build()?,
        ),
        gcp: Some(
            GcpWorkloadIdentityProvider::builder()
                .gke_cluster(FAKE_GKE_PROJECT, FAKE_GKE_LOCATION, FAKE_CLUSTER)
                .api(gcp)
                .build()
                .await?,
        ),
    })
}
