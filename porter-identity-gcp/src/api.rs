//! The narrow port between the provider's logic and Google Cloud: only the calls the logic
//! needs. [`crate::google::GoogleApi`] implements it with the official Google Cloud Rust
//! clients, [`crate::fake::FakeGcp`] (feature `fake`) in memory, and tests mock it.
//!
//! IAM policies travel as the official [`Policy`] type, exactly as read: a read-modify-write
//! changes one member and hands back everything else (other bindings, conditions, `version`,
//! `auditConfigs`, fields this crate does not know) untouched. Every method returns a
//! porter-identity [`Error`](porter_identity_core::Error) whose kind is already mapped from the
//! status code, so the logic never sees HTTP or gRPC.

use std::fmt::Debug;

use async_trait::async_trait;
pub use google_cloud_iam_v1::model::{Binding as PolicyBinding, Policy};
use porter_identity_core::Result;

/// A GKE cluster's location and name, in a project.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClusterRef {
    /// The project that holds the cluster.
    pub project: String,
    /// Its region or zone (`us-central1`, `us-central1-a`).
    pub location: String,
    /// Its name.
    pub name: String,
}

impl ClusterRef {
    /// `projects/<project>/locations/<location>/clusters/<name>`, the name GKE's API takes.
    pub fn resource_name(&self) -> String {
        format!(
            "projects/{}/locations/{}/clusters/{}",
            self.project, self.location, self.name
        )
    }

    /// `…/clusters/<name>/nodePools/<pool>`.
    pub fn node_pool_name(&self, pool: &str) -> String {
        format!("{}/nodePools/{pool}", self.resource_name())
    }
}

impl std::fmt::Display for ClusterRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.project, self.location, self.name)
    }
}

/// How a node pool's nodes serve metadata to pods (`nodeConfig.workloadMetadataConfig.mode`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataMode {
    /// `GKE_METADATA`: the GKE metadata server, which gives pods their Workload Identity.
    GkeMetadata,
    /// `GCE_METADATA`: pods see the node's own service account.
    GceMetadata,
    /// Not set (`MODE_UNSPECIFIED`): the pool follows the cluster's default, which for a
    /// pool created before Workload Identity was enabled is the node's metadata.
    Unspecified,
    /// A mode this crate does not know, as the API named it.
    Other(String),
}

impl MetadataMode {
    /// The API's name of the mode.
    pub fn as_str(&self) -> &str {
        match self {
            MetadataMode::GkeMetadata => "GKE_METADATA",
            MetadataMode::GceMetadata => "GCE_METADATA",
            MetadataMode::Unspecified => "MODE_UNSPECIFIED",
            MetadataMode::Other(name) => name,
        }
    }
}

/// A node pool of a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePool {
    /// Its name.
    pub name: String,
    /// Its workload metadata mode.
    pub metadata_mode: MetadataMode,
}

/// A node pool as `projects.locations.clusters.nodePools.get` returns it: what an update must
/// send back unchanged (its Kubernetes version and image type) and its metadata mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePoolDetails {
    /// Its name.
    pub name: String,
    /// Its nodes' Kubernetes version (`version`).
    pub version: String,
    /// Its nodes' image type (`config.imageType`).
    pub image_type: String,
    /// Its workload metadata mode.
    pub metadata_mode: MetadataMode,
}

/// The parts of a GKE cluster (`projects.locations.clusters.get`) the logic uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// Its name.
    pub name: String,
    /// `workloadIdentityConfig.workloadPool` (`<project>.svc.id.goog`); `None` when Workload
    /// Identity is off.
    pub workload_pool: Option<String>,
    /// Its node pools, as the cluster read returns them.
    pub node_pools: Vec<NodePool>,
}

/// A GCP service account (`projects.serviceAccounts.get`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccount {
    /// Its email.
    pub email: String,
    /// The project that owns it.
    pub project_id: String,
    /// Its numeric unique id.
    pub unique_id: String,
    /// Whether it is disabled: a disabled service account cannot be impersonated.
    pub disabled: bool,
}

/// A user-managed key of a service account (`projects.serviceAccounts.keys.list` with
/// `keyTypes=USER_MANAGED`). Only its name: the key material is never asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccountKey {
    /// `projects/<project>/serviceAccounts/<email>/keys/<key id>`.
    pub name: String,
    /// Whether the key is disabled.
    pub disabled: bool,
}

/// The Google Cloud calls the provider makes.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait GcpApi: Send + Sync + Debug {
    /// `container.projects.locations.clusters.get`.
    async fn get_cluster(&self, cluster: &ClusterRef) -> Result<Cluster>;

    /// `iam.projects.serviceAccounts.get` of `projects/-/serviceAccounts/<email>`.
    async fn get_service_account(&self, email: &str) -> Result<ServiceAccount>;

    /// `iam.projects.serviceAccounts.getIamPolicy`, asking for policy version 3 (so that
    /// conditional bindings come back whole).
    async fn get_iam_policy(&self, email: &str) -> Result<Policy>;

    /// `iam.projects.serviceAccounts.setIamPolicy` with the policy as read plus the edit; the
    /// policy's `etag` makes it a compare-and-set (a stale one is a retryable `Conflict`).
    async fn set_iam_policy(&self, email: &str, policy: Policy) -> Result<Policy>;

    /// `iam.projects.serviceAccounts.keys.list` with `keyTypes=USER_MANAGED`.
    async fn list_user_managed_keys(&self, email: &str) -> Result<Vec<ServiceAccountKey>>;

    /// `container.projects.locations.clusters.nodePools.get`.
    async fn get_node_pool(&self, cluster: &ClusterRef, pool: &str) -> Result<NodePoolDetails>;

    /// `container.projects.locations.clusters.nodePools.update` setting
    /// `workloadMetadataConfig.mode` to `GKE_METADATA`, with the pool's own version and image
    /// type (an update must name them; other values would upgrade or re-image the nodes).
    /// Returns the operation's name. The pool's nodes are recreated.
    async fn set_node_pool_gke_metadata(
        &self,
        cluster: &ClusterRef,
        pool: &NodePoolDetails,
    ) -> Result<String>;

    /// `cloudresourcemanager.projects.getIamPolicy` of `projects/<project>`, version 3.
    async fn get_project_iam_policy(&self, project: &str) -> Result<Policy>;
}
