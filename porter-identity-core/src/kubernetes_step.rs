//! `KubernetesStep`: the cluster side of a deploy, which the [`Reconciler`](crate::Reconciler)
//! runs after the clouds when given one. Core knows no Kubernetes client: porter-identity-kube
//! implements it (`Cluster::step`).

use std::fmt::Debug;

use async_trait::async_trait;

use crate::{AppVerifyReport, ClusterStep, ReconcileReport, Result, ServiceAccountNeeds};

/// The Kubernetes side of a deploy: given the report of the clouds' side, it fills in each
/// service account's [`ClusterStep`] (what it applied, restarted and found). In a dry run
/// (`report.dry_run`) it writes nothing.
#[async_trait]
pub trait KubernetesStep: Send + Sync + Debug {
    /// Runs the step on `report`.
    ///
    /// # Errors
    /// When the step could not run at all (the cluster unreachable): the reconciler then puts
    /// the error in every service account's `ClusterStep`. An error of one service account (a
    /// conflict) belongs in its own `ClusterStep` instead.
    async fn run(&self, report: &mut ReconcileReport) -> Result<()>;

    /// The cluster side of a [`Reconciler::verify`](crate::Reconciler::verify), read only:
    /// fills in each service account's [`ClusterStep::findings`] from what its links need
    /// (`report.service_accounts`) and what the clouds know of the cluster
    /// (`report.cluster_facts`). Nothing is applied or restarted.
    ///
    /// # Errors
    /// As [`run`](Self::run): when the cluster cannot be read at all.
    async fn diagnose(&self, report: &mut AppVerifyReport) -> Result<()>;
}

/// Runs `step` on `report`; an error of the whole step goes to every service account.
pub(crate) async fn run_step(step: &dyn KubernetesStep, report: &mut ReconcileReport) {
    if let Err(e) = step.run(report).await {
        mark_all(&mut report.service_accounts, &e);
    }
}

/// Runs `step`'s diagnosis on `report`; an error of the whole step goes to every service
/// account.
pub(crate) async fn diagnose_step(step: &dyn KubernetesStep, report: &mut AppVerifyReport) {
    if let Err(e) = step.diagnose(report).await {
        mark_all(&mut report.service_accounts, &e);
    }
}

fn mark_all(service_accounts: &mut [ServiceAccountNeeds], e: &crate::Error) {
    for sa in service_accounts {
        sa.cluster = Some(ClusterStep {
            error: Some(e.clone()),
            ..ClusterStep::default()
        });
    }
}
