//! The Kubernetes side of a run: the cluster of the environment (KUBECONFIG, else
//! ~/.kube/config, else in-cluster), or with `--fake` a Kubernetes API fake served over HTTPS
//! in this process and reached through its kubeconfig as a real cluster is. The fake is seeded
//! with what a chart would have made an hour ago — a ServiceAccount and a Deployment of two
//! pods per service of the porter.yaml, on one GKE node — or, with `--fake-state`, restored as
//! the last run left it.

use porter_identity::AppManifest;
use porter_identity::kube::Cluster;
#[cfg(feature = "fake")]
use porter_identity::kube::fake::{FakeKube, FakeKubeServer};
use serde_json::Value;

use crate::Failure;
use crate::cli::Common;

/// The node and node pool of the fake cluster (the fake GKE cluster's `default-pool`).
#[cfg(feature = "fake")]
const FAKE_NODE: &str = "demo-node-1";
#[cfg(feature = "fake")]
const FAKE_POOL: &str = "default-pool";
/// How long before the run the fake cluster's workloads started.
#[cfg(feature = "fake")]
const AN_HOUR: std::time::Duration = std::time::Duration::from_secs(3600);

/// The cluster a run talks to, and the fake behind it when there is one.
pub(crate) struct KubeSide {
    pub(crate) cluster: Cluster,
    #[cfg(feature = "fake")]
    fake: Option<(FakeKube, FakeKubeServer)>,
}

impl KubeSide {
    /// The fake cluster's state, to keep in `--fake-state`.
    #[cfg(feature = "fake")]
    pub(crate) fn snapshot(&self) -> Option<Value> {
        self.fake.as_ref().map(|(kube, _)| kube.snapshot())
    }

    /// Stops the fake's server, if any.
    pub(crate) async fn shutdown(self) {
        #[cfg(feature = "fake")]
        if let Some((_, server)) = self.fake {
            server.shutdown().await;
        }
    }
}

/// The fake cluster: `saved` restored, or seeded for `manifest`'s services.
#[cfg(feature = "fake")]
fn fake_cluster(
    common: &Common,
    manifest: &AppManifest,
    saved: Option<&Value>,
) -> Result<FakeKube, Failure> {
    if let Some(saved) = saved {
        return FakeKube::restore(saved).map_err(|e| {
            Failure::Input(format!(
                "the fake state's cluster cannot be read ({e}); delete the file to start afresh"
            ))
        });
    }
    let kube = FakeKube::new();
    kube.add_node(FAKE_NODE, FAKE_POOL);
    kube.add_app(manifest, common.app(), &common.namespace, AN_HOUR)?;
    Ok(kube)
}

/// The Kubernetes side of a run: with `--fake` the fake cluster (restored from `saved`),
/// otherwise the environment's. `None` when `optional` and no cluster is configured.
pub(crate) async fn connect(
    common: &Common,
    manifest: &AppManifest,
    saved: Option<&Value>,
    optional: bool,
) -> Result<Option<KubeSide>, Failure> {
    #[cfg(not(feature = "fake"))]
    let _ = (common, manifest, saved);
    #[cfg(feature = "fake")]
    if common.fake {
        let kube = fake_cluster(common, manifest, saved)?;
        let server = kube
            .serve(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .map_err(|e| Failure::Input(format!("the fake Kubernetes API cannot start: {e}")))?;
        let cluster = server.cluster().await?;
        return Ok(Some(KubeSide {
            cluster,
            fake: Some((kube, server)),
        }));
    }
    match Cluster::builder().from_env().await {
        Ok(cluster) => Ok(Some(KubeSide {
            cluster,
            #[cfg(feature = "fake")]
            fake: None,
        })),
        Err(e) if optional => {
            eprintln!("note: the Kubernetes side is not checked: {e}");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}
