//! The GKE node-pool preflight: before a pool is put in `GKE_METADATA` mode, which pods on its
//! nodes would lose the node's service account. A pod whose ServiceAccount has no
//! `iam.gke.io/gcp-service-account` annotation reaches Google APIs as the node today; once the
//! pool serves Workload Identity, it has no Google identity at all. Read-only.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8s_openapi::api::core::v1::{Node, Pod, ServiceAccount};
use porter_identity_core::{Error, Result};

use crate::Cluster;
use crate::diagnose::GKE_NODE_POOL_LABEL;
use crate::workloads::DEFAULT_SERVICE_ACCOUNT;

/// The ServiceAccount annotation of GKE Workload Identity.
pub const GCP_SERVICE_ACCOUNT_ANNOTATION: &str = "iam.gke.io/gcp-service-account";

/// The preflight of `pool`, read from the cluster: the pods on the pool's nodes (a label
/// selector, then a field selector per node) whose ServiceAccount (read in every namespace) has
/// no `iam.gke.io/gcp-service-account` annotation, and how many nodes the pool has.
///
/// # Errors
/// [`ErrorKind::InvalidInput`](porter_identity_core::ErrorKind::InvalidInput) when `pool` is
/// not a label value (it goes into the selector, where a `,` or `!=` would select other
/// nodes); the API server's errors.
pub async fn gke_preflight(cluster: &Cluster, pool: &str) -> Result<GkePreflight> {
    check_pool_label(pool)?;
    let nodes = cluster
        .nodes(Some(&format!("{GKE_NODE_POOL_LABEL}={pool}")))
        .await?;
    let mut pods = Vec::new();
    for node in nodes.iter().filter_map(|n| n.metadata.name.as_deref()) {
        pods.extend(cluster.pods_on_node(node).await?);
    }
    let accounts = cluster.service_accounts(None).await?;
    Ok(GkePreflight {
        pool: pool.to_owned(),
        nodes: nodes.len(),
        pods_at_risk: pods_at_risk(pool, &nodes, &pods, &accounts),
    })
}

/// What [`gke_preflight`] found on a node pool: what the GCP provider's
/// `enable_workload_identity(pool, &preflight.pods_at_risk, force)` takes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GkePreflight {
    /// The node pool.
    pub pool: String,
    /// How many nodes it has.
    pub nodes: usize,
    /// The pods on them that would lose the node's service account, in order.
    pub pods_at_risk: Vec<PodAtRisk>,
}

/// A Kubernetes label value: at most 63 characters, alphanumeric at both ends, `-`, `_` and
/// `.` between.
fn check_pool_label(pool: &str) -> Result<()> {
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    let ok = (1..=63).contains(&pool.len())
        && alnum(pool.chars().next())
        && alnum(pool.chars().last())
        && pool
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_input(
            "pool",
            format!("{pool:?} is not a node-pool name"),
            "give the node pool's name as `gcloud container node-pools list` shows it",
        ))
    }
}

/// A pod that would lose the node's service account.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub struct PodAtRisk {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub pod: String,
    /// The ServiceAccount it runs as, which has no GCP service-account annotation.
    pub service_account: String,
    /// The node it runs on.
    pub node: String,
}

impl fmt::Display for PodAtRisk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pod {}/{} on node {} (ServiceAccount {} has no {GCP_SERVICE_ACCOUNT_ANNOTATION})",
            self.namespace, self.pod, self.node, self.service_account
        )
    }
}

/// The pods on the nodes of `pool` whose ServiceAccount (among `accounts`, of every namespace)
/// has no `iam.gke.io/gcp-service-account` annotation. Empty: the pool can be switched.
pub(crate) fn pods_at_risk(
    pool: &str,
    nodes: &[Node],
    pods: &[Pod],
    accounts: &[ServiceAccount],
) -> Vec<PodAtRisk> {
    let pool_nodes: BTreeSet<&str> = nodes
        .iter()
        .filter(|n| {
            n.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(GKE_NODE_POOL_LABEL))
                .is_some_and(|p| p == pool)
        })
        .filter_map(|n| n.metadata.name.as_deref())
        .collect();
    let annotated: BTreeMap<(&str, &str), bool> = accounts
        .iter()
        .filter_map(|sa| {
            let ns = sa.metadata.namespace.as_deref()?;
            let name = sa.metadata.name.as_deref()?;
            let has = sa.metadata.annotations.as_ref().is_some_and(|a| {
                a.get(GCP_SERVICE_ACCOUNT_ANNOTATION)
                    .is_some_and(|v| !v.is_empty())
            });
            Some(((ns, name), has))
        })
        .collect();
    let mut out: Vec<PodAtRisk> = pods
        .iter()
        .filter_map(|p| {
            let spec = p.spec.as_ref()?;
            let node = spec
                .node_name
                .as_deref()
                .filter(|n| pool_nodes.contains(n))?;
            if spec.host_network == Some(true) {
                // Host-network pods keep reaching the node's metadata server.
                return None;
            }
            let ns = p.metadata.namespace.as_deref().unwrap_or_default();
            let sa = spec
                .service_account_name
                .as_deref()
                .filter(|s| !s.is_empty())
                .unwrap_or(DEFAULT_SERVICE_ACCOUNT);
            let safe = annotated.get(&(ns, sa)).copied().unwrap_or(false);
            (!safe).then(|| PodAtRisk {
                namespace: ns.to_owned(),
                pod: p.metadata.name.clone().unwrap_or_default(),
                service_account: sa.to_owned(),
                node: node.to_owned(),
            })
        })
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use k8s_openapi::api::core::v1::PodSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;
    use crate::fixtures::gke_node;

    fn pod(ns: &str, name: &str, sa: Option<&str>, node: &str, host_network: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                service_account_name: sa.map(str::to_owned),
                node_name: Some(node.into()),
                host_network: Some(host_network),
                ..PodSpec::default()
            }),
            ..Pod::default()
        }
    }

    fn account(ns: &str, name: &str, gsa: Option<&str>) -> ServiceAccount {
        ServiceAccount {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                annotations: gsa.map(|g| {
                    BTreeMap::from([(GCP_SERVICE_ACCOUNT_ANNOTATION.to_owned(), g.to_owned())])
                }),
                ..ObjectMeta::default()
            },
            ..ServiceAccount::default()
        }
    }

    #[test]
    fn pods_on_the_pool_without_a_gcp_annotation_are_listed() {
        let nodes = [
            gke_node("legacy-1", "legacy"),
            gke_node("good-1", "default-pool"),
        ];
        let pods = [
            pod("shop", "api-1", Some("shop-api"), "legacy-1", false),
            pod("shop", "batch-1", Some("shop-batch"), "legacy-1", false),
            pod("shop", "web-1", None, "legacy-1", false),
            pod("shop", "api-2", Some("shop-batch"), "good-1", false),
            pod("kube-system", "agent", Some("agent"), "legacy-1", true),
        ];
        let accounts = [
            account(
                "shop",
                "shop-api",
                Some("api@p-123456.iam.gserviceaccount.com"),
            ),
            account("shop", "shop-batch", None),
        ];
        let at_risk = pods_at_risk("legacy", &nodes, &pods, &accounts);
        let names: Vec<&str> = at_risk.iter().map(|p| p.pod.as_str()).collect();
        assert_eq!(names, ["batch-1", "web-1"], "{at_risk:?}");
        assert_eq!(at_risk[1].service_account, "default");
        assert!(
            at_risk[0]
                .to_string()
                .contains("has no iam.gke.io/gcp-service-account")
        );
        assert!(pods_at_risk("default-pool", &nodes, &pods[..1], &accounts).is_empty());
    }

    #[test]
    fn a_pool_name_that_would_change_the_selector_is_refused() {
        assert!(check_pool_label("default-pool").is_ok());
        for bad in ["", "a,b", "a!=b", "x=y", "-a", "a b", &"p".repeat(64)] {
            let e = check_pool_label(bad).unwrap_err();
            assert!(e.to_string().starts_with("invalid pool:"), "{e}");
        }
    }
}
