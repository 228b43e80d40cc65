//! The cluster's node pools and their workload metadata mode: which pools are not in
//! `GKE_METADATA` mode (their pods get the node's service account), and putting one in it —
//! after porter-identity-kube's preflight has listed the pods that would lose the node's
//! service account, or when the caller forces it.

use std::fmt;

use porter_identity_core::{Error, Result, RunContext};

use crate::GcpWorkloadIdentityProvider;
use crate::api::{ClusterRef, MetadataMode};
use crate::operation as op;
use crate::provider::{ClusterRead, PoolSource};

/// A node pool put in `GKE_METADATA` mode, or found already in it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodePoolChange {
    /// The node pool.
    pub pool: String,
    /// The update's operation; `None` when the pool was already in `GKE_METADATA` mode.
    pub operation: Option<String>,
}

impl fmt::Display for NodePoolChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.operation {
            Some(op) => write!(
                f,
                "node pool {} is being put in GKE_METADATA mode (operation {op}): its nodes are recreated and their pods rescheduled",
                self.pool
            ),
            None => write!(
                f,
                "node pool {} is already in GKE_METADATA mode: nothing changed",
                self.pool
            ),
        }
    }
}

/// A GKE node-pool name: lowercase letters, digits and hyphens, starting with a letter, at most
/// 40 characters (it goes into a URL path).
fn check_pool_name(pool: &str) -> Result<()> {
    let ok = (1..=40).contains(&pool.len())
        && pool.starts_with(|c: char| c.is_ascii_lowercase())
        && !pool.ends_with('-')
        && pool
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_input(
            "pool",
            format!("{pool:?} is not a GKE node-pool name"),
            "give the node pool's name as `gcloud container node-pools list` shows it (lowercase letters, digits and hyphens, starting with a letter, at most 40 characters)",
        ))
    }
}

impl GcpWorkloadIdentityProvider {
    fn gke_cluster(&self, what: &str) -> Result<&ClusterRef> {
        match &self.source {
            PoolSource::Gke(cluster) => Ok(cluster),
            PoolSource::Explicit(pool) => Err(Error::invalid_input(
                "gke_cluster",
                format!(
                    "the provider was given the workload pool {pool}, not a GKE cluster, so it cannot {what}"
                ),
                "build the provider with gke_cluster(project, location, name)",
            )),
        }
    }

    /// The cluster's node pools that are not in `GKE_METADATA` mode: their pods get the node's
    /// service account, not their Workload Identity (porter-identity-kube's diagnosis names the
    /// pods that run there).
    ///
    /// # Errors
    /// When the cluster cannot be read, or the provider has no GKE cluster.
    pub async fn node_pools_without_gke_metadata(&self) -> Result<Vec<String>> {
        self.pools_without_gke_metadata(&RunContext::plan()).await
    }

    /// [`node_pools_without_gke_metadata`](Self::node_pools_without_gke_metadata) in `run`:
    /// the provider's cluster facts. The cluster this run's binds read for the workload pool,
    /// moments ago, serves; otherwise it is read.
    pub(crate) async fn pools_without_gke_metadata(&self, run: &RunContext) -> Result<Vec<String>> {
        let cluster = self.gke_cluster("read its node pools")?;
        let found = match run.take_shared(&ClusterRead(cluster.clone())) {
            Some(found) => found,
            None => self.read_cluster(run, cluster).await?,
        };
        Ok(found
            .node_pools
            .into_iter()
            .filter(|p| p.metadata_mode != MetadataMode::GkeMetadata)
            .map(|p| p.name)
            .collect())
    }

    /// Puts node pool `pool` in `GKE_METADATA` mode (`nodePools.update`), which recreates its
    /// nodes. Run porter-identity-kube's preflight first and pass the pods it found at risk
    /// (pods on the pool whose ServiceAccount has no `iam.gke.io/gcp-service-account`: they
    /// lose the node's service account): the update is refused while there are any, unless
    /// `force`. A pool already in `GKE_METADATA` mode is left as it is.
    ///
    /// ```no_run
    /// # async fn demo(gcp: porter_identity_gcp::GcpWorkloadIdentityProvider) -> porter_identity_core::Result<()> {
    /// // What porter-identity-kube's `preflight::gke_preflight` found (here: nothing at risk),
    /// // as its `pods_at_risk`, or any list of pod descriptions:
    /// let pods_at_risk: &[String] = &[];
    /// let change = gcp.enable_workload_identity("default-pool", pods_at_risk, false).await?;
    /// println!("{change}");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](porter_identity_core::ErrorKind::InvalidInput) for a bad
    /// pool name; [`ErrorKind::Conflict`](porter_identity_core::ErrorKind::Conflict) naming the
    /// pods at risk (nothing written); the cloud's errors.
    pub async fn enable_workload_identity<P: fmt::Display>(
        &self,
        pool: &str,
        pods_at_risk: &[P],
        force: bool,
    ) -> Result<NodePoolChange> {
        check_pool_name(pool)?;
        let cluster = self.gke_cluster("update its node pools")?;
        let run = &RunContext::apply();
        let details = self
            .calls
            .run(run, op::NODE_POOLS_GET, || {
                self.api.get_node_pool(cluster, pool)
            })
            .await?;
        if details.metadata_mode == MetadataMode::GkeMetadata {
            return Ok(NodePoolChange {
                pool: pool.to_owned(),
                operation: None,
            });
        }
        if !pods_at_risk.is_empty() && !force {
            return Err(op::NODE_POOLS_UPDATE.error(porter_identity_core::ErrorKind::Conflict,
                format!(
                    "{} pod(s) on node pool {pool} run as ServiceAccounts without iam.gke.io/gcp-service-account and would lose the node's service account: {}",
                    pods_at_risk.len(),
                    pods_at_risk
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
            .with_fix("bind those workloads to GCP service accounts first (a gcpServiceAccount connection), move them off the pool, or force the change"));
        }
        let operation = self
            .calls
            .run(run, op::NODE_POOLS_UPDATE, || {
                self.api.set_node_pool_gke_metadata(cluster, &details)
            })
            .await?;
        Ok(NodePoolChange {
            pool: pool.to_owned(),
            operation: Some(operation),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_names_are_checked_before_they_go_into_a_path() {
        for good in ["default-pool", "p1", "a"] {
            assert!(check_pool_name(good).is_ok(), "{good}");
        }
        for bad in ["", "Pool", "1pool", "pool-", "a/b", "../x", &"p".repeat(41)] {
            let e = check_pool_name(bad).unwrap_err();
            assert!(e.to_string().starts_with("invalid pool:"), "{e}");
        }
    }
}
