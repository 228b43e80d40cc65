//! What the Kubernetes step reads of a namespace, once: its ServiceAccounts, its pods and its
//! four kinds of workload (six lists, read at once). Each service account's share is then
//! picked from them, so a step over 1,000 service accounts reads the namespace, not 3,000
//! objects one by one.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use porter_identity_core::Result;

use crate::Cluster;
use crate::diagnose::pod_service_account;
use crate::workloads::PodWorkload;

/// One namespace as the step read it.
pub(crate) struct NamespaceView {
    /// Its Deployments, StatefulSets, DaemonSets and CronJobs.
    pub(crate) workloads: Vec<PodWorkload>,
    accounts: HashMap<String, ServiceAccount>,
    /// Its pods, by the ServiceAccount they run as.
    pods: HashMap<String, Vec<Pod>>,
}

/// What the cluster holds for one service account.
pub(crate) struct Seen {
    pub(crate) account: Option<ServiceAccount>,
    pub(crate) pods: Vec<Pod>,
}

impl NamespaceView {
    /// Reads `namespace`: six lists, side by side.
    pub(crate) async fn read(cluster: &Cluster, namespace: &str) -> Result<Self> {
        let (workloads, accounts, pods) = futures_util::future::try_join3(
            cluster.workloads(namespace),
            cluster.service_accounts(Some(namespace)),
            cluster.pods_in(namespace),
        )
        .await?;
        let accounts = accounts
            .into_iter()
            .filter_map(|a| a.metadata.name.clone().map(|name| (name, a)))
            .collect();
        Ok(NamespaceView {
            workloads,
            accounts,
            pods: by_service_account(pods),
        })
    }

    /// Reads each of `namespaces` once, side by side.
    pub(crate) async fn read_all<'n>(
        cluster: &Cluster,
        namespaces: impl IntoIterator<Item = &'n str>,
    ) -> Result<BTreeMap<String, NamespaceView>> {
        let namespaces: std::collections::BTreeSet<&str> = namespaces.into_iter().collect();
        let views =
            futures_util::future::try_join_all(namespaces.iter().map(|ns| Self::read(cluster, ns)))
                .await?;
        Ok(namespaces
            .into_iter()
            .map(str::to_owned)
            .zip(views)
            .collect())
    }

    /// The ServiceAccount `name` and the pods running as it.
    pub(crate) fn seen(&self, name: &str) -> Seen {
        Seen {
            account: self.accounts.get(name).cloned(),
            pods: self.pods.get(name).cloned().unwrap_or_default(),
        }
    }

    /// The pods of the namespace, read again (after writes that roll them).
    pub(crate) fn set_pods(&mut self, pods: Vec<Pod>) {
        self.pods = by_service_account(pods);
    }

    /// The pod-template labels of `workload`, as just applied.
    pub(crate) fn relabel(&mut self, workload: &PodWorkload) {
        if let Some(w) = self
            .workloads
            .iter_mut()
            .find(|w| w.kind == workload.kind && w.name == workload.name)
        {
            w.template_labels = workload.template_labels.clone();
        }
    }
}

/// Pods by the ServiceAccount they run as.
fn by_service_account(pods: Vec<Pod>) -> HashMap<String, Vec<Pod>> {
    let mut out: HashMap<String, Vec<Pod>> = HashMap::new();
    for pod in pods {
        out.entry(pod_service_account(&pod).to_owned())
            .or_default()
            .push(pod);
    }
    out
}
