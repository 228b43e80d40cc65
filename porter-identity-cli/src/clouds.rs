//! The providers of the clouds a run needs: built from each cloud's environment exactly as the
//! providers' `from_env` reads it, or, with `--fake`, on the built-in in-memory clouds seeded
//! with what the porter.yaml names.

use std::collections::BTreeSet;

#[cfg(feature = "aws")]
use porter_identity::aws::AwsPodIdentityProvider;
#[cfg(feature = "azure")]
use porter_identity::azure::AzureWorkloadIdentityProvider;
#[cfg(feature = "gcp")]
use porter_identity::gcp::GcpWorkloadIdentityProvider;
use porter_identity::{AppManifest, Cloud, Connection, WorkloadIdentityProvider};

use crate::Failure;
use crate::cli::Common;

/// One provider per cloud in play (of those this build holds).
#[derive(Default)]
pub(crate) struct Clouds {
    #[cfg(feature = "aws")]
    aws: Option<AwsPodIdentityProvider>,
    #[cfg(feature = "azure")]
    azure: Option<AzureWorkloadIdentityProvider>,
    #[cfg(feature = "gcp")]
    gcp: Option<GcpWorkloadIdentityProvider>,
    /// With `--fake`: the fake EKS behind `aws`, whose links' times `--fake-state` keeps.
    #[cfg(all(feature = "fake", feature = "aws"))]
    fake_aws: Option<porter_identity::aws::fake::FakeAws>,
}

impl Clouds {
    /// The providers, AWS, Azure, GCP.
    pub(crate) fn providers(&self) -> Vec<&dyn WorkloadIdentityProvider> {
        [Cloud::Aws, Cloud::Azure, Cloud::Gcp]
            .into_iter()
            .filter_map(|cloud| self.provider(cloud))
            .collect()
    }

    /// The GCP provider (node pools), when GCP is in play.
    #[cfg(feature = "gcp")]
    pub(crate) fn gcp(&self) -> Option<&GcpWorkloadIdentityProvider> {
        self.gcp.as_ref()
    }

    /// With `--fake`: the fake EKS and the cluster its links are on.
    #[cfg(all(feature = "fake", feature = "aws"))]
    pub(crate) fn fake_aws(&self) -> Option<(&porter_identity::aws::fake::FakeAws, &'static str)> {
        self.fake_aws.as_ref().map(|aws| (aws, fake::FAKE_CLUSTER))
    }

    /// The provider of `cloud`.
    pub(crate) fn provider(&self, cloud: Cloud) -> Option<&dyn WorkloadIdentityProvider> {
        match cloud {
            #[cfg(feature = "aws")]
            Cloud::Aws => self
                .aws
                .as_ref()
                .map(|p| p as &dyn WorkloadIdentityProvider),
            #[cfg(feature = "azure")]
            Cloud::Azure => self
                .azure
                .as_ref()
                .map(|p| p as &dyn WorkloadIdentityProvider),
            #[cfg(feature = "gcp")]
            Cloud::Gcp => self
                .gcp
                .as_ref()
                .map(|p| p as &dyn WorkloadIdentityProvider),
            #[allow(unreachable_patterns)] // a cloud this build does not hold
            _ => None,
        }
    }
}

/// Refuses connections on a cloud this build does not hold, before any provider is made.
fn ensure_built_in(clouds: impl IntoIterator<Item = Cloud>) -> Result<(), Failure> {
    let built_in = |cloud: &Cloud| match cloud {
        Cloud::Aws => cfg!(feature = "aws"),
        Cloud::Azure => cfg!(feature = "azure"),
        Cloud::Gcp => cfg!(feature = "gcp"),
        // A cloud added to core after this CLI was written is not built in.
        _ => false,
    };
    match clouds.into_iter().find(|c| !built_in(c)) {
        None => Ok(()),
        Some(cloud) => Err(Failure::Input(format!(
            "the porter.yaml has {} connections, but this porter-identity was built without {cloud}: \
             install it with the `{}` feature (e.g. cargo install porter-identity-cli --features {})",
            cloud.connection_type(),
            cloud.as_str(),
            cloud.as_str()
        ))),
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
    ensure_built_in(needed.iter().copied())?;
    // Every cluster flag is read before any provider reads its cloud's environment: a missing
    // or malformed flag is bad input, said first, not after another cloud's configuration error.
    #[cfg(feature = "aws")]
    let eks = needed
        .contains(&Cloud::Aws)
        .then(|| {
            common
                .eks_cluster
                .as_deref()
                .ok_or_else(|| missing(Cloud::Aws, "--eks-cluster NAME"))
        })
        .transpose()?;
    #[cfg(feature = "azure")]
    let aks = needed
        .contains(&Cloud::Azure)
        .then(|| {
            let value = common
                .aks_cluster
                .as_deref()
                .ok_or_else(|| missing(Cloud::Azure, "--aks-cluster RG/NAME"))?;
            crate::cli::aks_cluster(value).map_err(Failure::Input)
        })
        .transpose()?;
    #[cfg(feature = "gcp")]
    let gke = needed
        .contains(&Cloud::Gcp)
        .then(|| {
            let value = common
                .gke_cluster
                .as_deref()
                .ok_or_else(|| missing(Cloud::Gcp, "--gke-cluster PROJECT/LOCATION/NAME"))?;
            crate::cli::gke_cluster(value).map_err(Failure::Input)
        })
        .transpose()?;

    #[allow(unused_mut)] // a build without any cloud sets none
    let mut clouds = Clouds::default();
    #[cfg(feature = "aws")]
    if let Some(name) = eks {
        clouds.aws = Some(
            common
                .aws_target_profile
                .iter()
                .fold(
                    AwsPodIdentityProvider::builder()
                        .cluster(name)
                        .mode(common.aws_mode),
                    |b, (account, profile)| b.target_account_profile(account, profile),
                )
                .from_env()
                .await?,
        );
    }
    #[cfg(feature = "azure")]
    if let Some((rg, name)) = aks {
        clouds.azure = Some(
            AzureWorkloadIdentityProvider::builder()
                .aks_cluster(rg, name)
                .from_env()
                .await?,
        );
    }
    #[cfg(feature = "gcp")]
    if let Some((project, location, name)) = gke {
        clouds.gcp = Some(
            GcpWorkloadIdentityProvider::builder()
                .gke_cluster(project, location, name)
                .from_env()
                .await?,
        );
    }
    #[cfg(not(all(feature = "aws", feature = "azure", feature = "gcp")))]
    let _ = (common, &missing);
    Ok(clouds)
}

#[cfg(feature = "fake")]
pub(crate) use fake::fakes;

/// The built-in fake clouds (`--fake`).
#[cfg(feature = "fake")]
mod fake {
    #[cfg(feature = "aws")]
    use std::collections::BTreeSet;

    #[cfg(feature = "aws")]
    use porter_identity::aws::{AwsPodIdentityProvider, fake::FakeAws};
    #[cfg(feature = "azure")]
    use porter_identity::azure::{
        AzureWorkloadIdentityProvider,
        fake::{BUILT_IN_ROLES, FakeAzure},
    };
    #[cfg(feature = "gcp")]
    use porter_identity::gcp::{GcpWorkloadIdentityProvider, fake::FakeGcp};
    use porter_identity::{AppManifest, Connection};
    #[cfg(feature = "aws")]
    use porter_identity::{AwsRoleMode, Binding, Cloud};

    use super::Clouds;
    use crate::Failure;

    /// The demo cluster of the fakes: its name on EKS, its resource group on AKS, its project
    /// and location on GKE, and the AKS OIDC issuer.
    #[cfg_attr(
        not(any(feature = "aws", feature = "azure", feature = "gcp")),
        allow(dead_code)
    )]
    pub(super) const FAKE_CLUSTER: &str = "demo-cluster";
    #[cfg(feature = "azure")]
    const FAKE_AKS_RESOURCE_GROUP: &str = "demo-aks-rg";
    #[cfg(feature = "gcp")]
    const FAKE_GKE_PROJECT: &str = "demo-project-123456";
    #[cfg(feature = "gcp")]
    const FAKE_GKE_LOCATION: &str = "us-central1";
    #[cfg(feature = "azure")]
    const FAKE_AKS_ISSUER: &str =
        "https://eastus.oic.prod-aks.azure.com/72f988bf-86f1-41af-91ab-2d7cd011db47/demo-cluster/";
    #[cfg(feature = "aws")]
    const FAKE_AWS_ACCOUNT: &str = "123456789012";

    /// Providers on the built-in fake clouds, seeded with the demo cluster on each cloud and
    /// the roles, managed identities and service accounts every one of `manifests` names (as
    /// the app and namespace of `common`: an IRSA role trusts its service accounts by name).
    #[cfg_attr(not(feature = "aws"), allow(unused_variables))] // only AWS's fake needs it
    pub(crate) async fn fakes(
        manifests: &[&AppManifest],
        common: &crate::cli::Common,
    ) -> Result<Clouds, Failure> {
        let connections: Vec<&Connection> = manifests
            .iter()
            .flat_map(|m| m.services())
            .flat_map(|s| s.identity_connections())
            .collect();
        super::ensure_built_in(connections.iter().filter_map(|c| c.cloud()))?;
        #[allow(unused_mut)] // a build without any cloud seeds none
        let mut clouds = Clouds::default();
        #[cfg(feature = "aws")]
        {
            let bindings: Vec<Binding> = manifests
                .iter()
                .filter_map(|m| {
                    m.bindings_for(Cloud::Aws, common.app(), &common.namespace)
                        .ok()
                })
                .flatten()
                .collect();
            let (provider, fake) = aws(&connections, &bindings, common.aws_mode).await?;
            clouds.aws = Some(provider);
            clouds.fake_aws = Some(fake);
        }
        #[cfg(feature = "azure")]
        {
            clouds.azure = Some(azure(&connections).await?);
        }
        #[cfg(feature = "gcp")]
        {
            clouds.gcp = Some(gcp(&connections).await?);
        }
        Ok(clouds)
    }

    /// The fake EKS and IAM: the demo cluster with the Pod Identity agent and its IAM OIDC
    /// provider (for IRSA), and each role named, trusting Pod Identity and, through the OIDC
    /// provider, the service accounts of `bindings` that run as it in IRSA mode.
    #[cfg(feature = "aws")]
    async fn aws(
        connections: &[&Connection],
        bindings: &[Binding],
        mode: AwsRoleMode,
    ) -> Result<(AwsPodIdentityProvider, FakeAws), Failure> {
        let account = connections
            .iter()
            .find_map(|c| match c {
                Connection::AwsRole { role, .. } => role.account().map(str::to_owned),
                _ => None,
            })
            .unwrap_or_else(|| FAKE_AWS_ACCOUNT.to_owned());
        let aws = FakeAws::new(&account, "us-east-1");
        aws.add_cluster(FAKE_CLUSTER);
        aws.install_addon(FAKE_CLUSTER, "eks-pod-identity-agent", "ACTIVE");
        let provider_arn = aws.add_cluster_oidc_provider(FAKE_CLUSTER);
        let host = aws
            .cluster_oidc_issuer(FAKE_CLUSTER)
            .trim_start_matches("https://")
            .to_owned();
        let mut roles = BTreeSet::new();
        for connection in connections {
            if let Connection::AwsRole { role, .. } = connection {
                let key = role
                    .arn()
                    .map_or_else(|| role.name().to_owned(), str::to_owned);
                if roles.insert(key.clone()) {
                    let irsa_subjects: Vec<String> = bindings
                        .iter()
                        .filter(|b| matches!(&b.connection, Connection::AwsRole { role: r, options, .. }
                            if options.mode.unwrap_or(mode) == AwsRoleMode::Irsa && r.arn().map_or_else(|| r.name().to_owned(), str::to_owned) == key))
                        .map(|b| format!("system:serviceaccount:{}:{}", b.workload.namespace(), b.workload.service_account()))
                        .collect();
                    let trust = role_trust(&provider_arn, &host, &irsa_subjects);
                    match role.arn() {
                        Some(arn) => aws.add_role_with_arn(arn, &trust),
                        None => aws.add_role(role.name(), &trust),
                    };
                }
            }
        }
        let mut builder = AwsPodIdentityProvider::builder()
            .cluster(FAKE_CLUSTER)
            .mode(mode)
            .api(aws.clone());
        for (account, fake) in target_accounts(&aws, connections) {
            builder = builder.target_account_api(&account, fake);
        }
        let provider = builder.build().await?;
        Ok((provider, aws))
    }

    /// The accounts of the target roles `connections` name, each a fake holding its targets;
    /// each target trusts the roles that chain into it, which may assume it.
    #[cfg(feature = "aws")]
    fn target_accounts(aws: &FakeAws, connections: &[&Connection]) -> Vec<(String, FakeAws)> {
        use std::collections::BTreeMap;
        // target ARN -> the roles that chain into it
        let mut chains: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for connection in connections {
            if let Connection::AwsRole { role, options, .. } = connection
                && let Some(target) = &options.target_role
            {
                let role_arn = role
                    .arn()
                    .map_or_else(|| aws.role_arn(role.name()), str::to_owned);
                if chains
                    .entry(target.as_str().to_owned())
                    .or_default()
                    .insert(role_arn.clone())
                {
                    aws.put_role_policy(
                        &role_arn,
                        &format!("chain-to-{}", target.name()),
                        &serde_json::json!({"Version": "2012-10-17", "Statement": [{
                            "Effect": "Allow",
                            "Action": ["sts:AssumeRole", "sts:TagSession"],
                            "Resource": target.as_str(),
                        }]})
                        .to_string(),
                    );
                }
            }
        }
        let mut accounts: BTreeMap<String, FakeAws> = BTreeMap::new();
        for (target, principals) in chains {
            let account = target.split(':').nth(4).unwrap_or_default().to_owned();
            let trust = serde_json::json!({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow",
                "Principal": {"AWS": principals},
                "Action": ["sts:AssumeRole", "sts:TagSession"],
            }]})
            .to_string();
            accounts
                .entry(account.clone())
                .or_insert_with(|| FakeAws::new(&account, "us-east-1"))
                .add_role_with_arn(&target, &trust);
        }
        accounts.into_iter().collect()
    }

    /// A demo role's trust policy: EKS Pod Identity, and IRSA for exactly `subjects`.
    #[cfg(feature = "aws")]
    fn role_trust(provider_arn: &str, host: &str, subjects: &[String]) -> String {
        let mut doc: serde_json::Value =
            serde_json::from_str(&FakeAws::pods_trust_policy()).expect("the fake's own policy");
        if !subjects.is_empty()
            && let Some(statements) = doc["Statement"].as_array_mut()
        {
            statements.push(serde_json::json!({
                "Effect": "Allow",
                "Principal": {"Federated": provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {"StringEquals": {
                    format!("{host}:sub"): subjects,
                    format!("{host}:aud"): "sts.amazonaws.com",
                }},
            }));
        }
        doc.to_string()
    }

    /// The fake ARM: the demo AKS cluster, and each managed identity named, with a blob-reader
    /// role on a storage account.
    #[cfg(feature = "azure")]
    async fn azure(connections: &[&Connection]) -> Result<AzureWorkloadIdentityProvider, Failure> {
        let azure = FakeAzure::new();
        azure.add_aks_cluster(FAKE_AKS_RESOURCE_GROUP, FAKE_CLUSTER, FAKE_AKS_ISSUER);
        let (blob_reader, _) = BUILT_IN_ROLES[4];
        for connection in connections {
            if let Connection::AzureManagedIdentity {
                identity_name,
                resource_group,
                ..
            } = connection
                && azure
                    .identity(resource_group.as_str(), identity_name.as_str())
                    .is_none()
            {
                let identity = azure.add_identity(resource_group.as_str(), identity_name.as_str());
                let storage = format!(
                    "{}/providers/Microsoft.Storage/storageAccounts/demodata",
                    azure.resource_group_scope(resource_group.as_str())
                );
                azure.assign_role(&identity.principal_id, blob_reader, &storage);
            }
        }
        Ok(AzureWorkloadIdentityProvider::builder()
            .aks_cluster(FAKE_AKS_RESOURCE_GROUP, FAKE_CLUSTER)
            .api(azure)
            .build()
            .await?)
    }

    /// The fake Google IAM and GKE: the demo cluster, and each GCP service account named.
    #[cfg(feature = "gcp")]
    async fn gcp(connections: &[&Connection]) -> Result<GcpWorkloadIdentityProvider, Failure> {
        let gcp = FakeGcp::new();
        gcp.add_gke_cluster(FAKE_GKE_PROJECT, FAKE_GKE_LOCATION, FAKE_CLUSTER);
        for connection in connections {
            if let Connection::GcpServiceAccount {
                service_account_email,
                ..
            } = connection
                && gcp.policy_json(service_account_email.as_str()).is_none()
            {
                gcp.add_service_account(service_account_email.as_str());
            }
        }
        Ok(GcpWorkloadIdentityProvider::builder()
            .gke_cluster(FAKE_GKE_PROJECT, FAKE_GKE_LOCATION, FAKE_CLUSTER)
            .api(gcp)
            .build()
            .await?)
    }
}
