//! `ReconcileReport`: what one deploy of an app did (or, in a dry run, would do) to its links.

use std::collections::BTreeSet;
use std::fmt;

use crate::{
    BindChange, BindOutcome, Binding, CallCounts, Cloud, Error, Evidence, Finding, KubernetesName,
    Namespace, Plan, PlanAction, ServiceAccountPatch, Workload,
};

/// What a [`Reconciler`](crate::Reconciler) did, or in a dry run would do.
///
/// - [`workloads`](Self::workloads): one entry per desired binding, in the desired order, with
///   its change or its error;
/// - [`removed`](Self::removed): the stale links removed (would be, in a dry run), with the
///   evidence that they were the app's own;
/// - [`kept`](Self::kept): stale-looking links left in place, each with the reason;
/// - [`service_accounts`](Self::service_accounts): per Kubernetes service account, the merged
///   [`ServiceAccountPatch`] of its bindings on every cloud;
/// - [`calls`](Self::calls): the cloud calls made, by cloud and operation, retries included.
///
/// With feature `serde` it serialises to stable JSON (see the crate README for the schema).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ReconcileReport {
    /// The app deployed.
    pub app: KubernetesName,
    /// Its namespace.
    pub namespace: Namespace,
    /// Whether this was a dry run (nothing written; changes say what would happen).
    pub dry_run: bool,
    /// One entry per desired binding, in order.
    pub workloads: Vec<WorkloadResult>,
    /// Stale links removed (or that a dry run would remove).
    pub removed: Vec<RemovedLink>,
    /// Stale-looking links kept, with the reason.
    pub kept: Vec<KeptLink>,
    /// Errors of a cloud-wide step: looking for stale links on a cloud (nothing was removed
    /// there), or reading the cluster facts the Kubernetes step needs.
    pub cleanup_errors: Vec<Error>,
    /// What the providers know of the cluster that the Kubernetes step needs for its
    /// findings ([`WorkloadIdentityProvider::cluster_facts`](crate::WorkloadIdentityProvider::cluster_facts)),
    /// read when a reconcile has a Kubernetes step.
    pub cluster_facts: ClusterFacts,
    /// What each Kubernetes service account needs, merged over its bindings.
    pub service_accounts: Vec<ServiceAccountNeeds>,
    /// The cloud calls made.
    pub calls: CallCounts,
}

/// The result of one desired binding.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WorkloadResult {
    /// The binding.
    pub binding: Binding,
    /// What changed (would change, in a dry run), or why it could not.
    pub result: Result<LinkChange, Error>,
}

/// What changed for one binding.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LinkChange {
    /// Created, updated (from what) or unchanged.
    pub change: BindChange,
    /// The cloud's id of the link, when known (a dry run of a new link has none).
    pub resource_id: Option<String>,
    /// The change in words (dry runs).
    pub description: Option<String>,
}

impl From<BindOutcome> for LinkChange {
    fn from(outcome: BindOutcome) -> Self {
        LinkChange {
            change: outcome.change,
            resource_id: Some(outcome.resource_id),
            description: None,
        }
    }
}

impl From<Plan> for LinkChange {
    fn from(plan: Plan) -> Self {
        LinkChange {
            change: match plan.action {
                PlanAction::Create => BindChange::Created,
                PlanAction::Update { current } => BindChange::Updated { previous: current },
                PlanAction::Unchanged => BindChange::Unchanged,
            },
            resource_id: None,
            description: Some(plan.description),
        }
    }
}

/// A stale link removed (or that a dry run would remove).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RemovedLink {
    /// Its workload and connection.
    pub binding: Binding,
    /// The cloud's id of the link, when known.
    pub resource_id: Option<String>,
    /// Why it was known to be the app's own.
    pub evidence: Evidence,
    /// Set when removing it failed: it is still there.
    pub error: Option<Error>,
}

/// A stale-looking link that was left in place.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct KeptLink {
    /// Its workload and connection, as far as known.
    pub binding: Binding,
    /// The cloud's id of the link, when known.
    pub resource_id: Option<String>,
    /// Why it was kept, and what the user can do.
    pub reason: String,
}

/// What one Kubernetes service account needs after a reconcile (or, after a verify, what its
/// links need).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServiceAccountNeeds {
    /// The (first) workload running as it.
    pub workload: Workload,
    /// Its annotations, pod labels and restart advice, merged over every cloud.
    pub patch: ServiceAccountPatch,
    /// The clouds it is linked on (links made, planned or verified): what the Kubernetes side
    /// checks for (the Pod Identity agent's pods on AWS, the GKE metadata server on GCP).
    pub clouds: BTreeSet<Cloud>,
    /// What the Kubernetes step did in the cluster and found there, when one ran
    /// (porter-identity-kube fills it in).
    pub cluster: Option<ClusterStep>,
}

impl ServiceAccountNeeds {
    /// The one of ServiceAccount `namespace/name` in `list`.
    pub(crate) fn find<'a>(list: &'a [Self], namespace: &str, name: &str) -> Option<&'a Self> {
        list.iter().find(|sa| {
            sa.workload.namespace().as_str() == namespace
                && sa.workload.service_account().as_str() == name
        })
    }
}

/// The Kubernetes side of one service account, as the Kubernetes step left it.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ClusterStep {
    /// What was applied (in a dry run: would be), in words: an annotation on the
    /// ServiceAccount, the Azure label on a pod template (which rolls its pods).
    pub applied: Vec<String>,
    /// The workloads given a rollout restart (in a dry run: that would be).
    pub restarted: Vec<WorkloadRestart>,
    /// What the cluster holds that keeps the link from working, after the step.
    pub findings: Vec<Finding>,
    /// Why the step could not be done (another field manager owns an annotation, the API
    /// server refused): nothing of it was written.
    pub error: Option<Error>,
}

/// What a provider knows of the cluster that the Kubernetes side needs for its findings, and
/// cannot read from the cluster itself: the cloud's view of its nodes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct ClusterFacts {
    /// The GKE node pools not in `GKE_METADATA` mode: their pods get the node's service
    /// account instead of their Workload Identity.
    pub pools_without_gke_metadata: Vec<String>,
}

impl ClusterFacts {
    /// Adds what `other` knows.
    pub fn merge(&mut self, other: ClusterFacts) {
        for pool in other.pools_without_gke_metadata {
            if !self.pools_without_gke_metadata.contains(&pool) {
                self.pools_without_gke_metadata.push(pool);
            }
        }
    }
}

/// A workload the Kubernetes step restarted (in a dry run: would restart) because its pods
/// started before the link they need.
///
/// ```
/// use porter_identity_core::WorkloadRestart;
/// let r = WorkloadRestart::new("Deployment", "shop", "api", 2);
/// assert_eq!(r.to_string(), "Deployment shop/api (2 pods older than the link)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct WorkloadRestart {
    /// Its kind, as Kubernetes names it (`Deployment`, `StatefulSet`, `DaemonSet`, `CronJob`).
    pub kind: String,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// How many of its pods predate the link.
    pub pods: usize,
}

impl WorkloadRestart {
    /// The restart of `kind` `namespace/name`, whose `pods` pods predate the link.
    pub fn new(
        kind: impl Into<String>,
        namespace: impl Into<String>,
        name: impl Into<String>,
        pods: usize,
    ) -> Self {
        WorkloadRestart {
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
            pods,
        }
    }
}

impl fmt::Display for WorkloadRestart {
    /// `Deployment shop/api (2 pods older than the link)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}/{} ({} pod{} older than the link)",
            self.kind,
            self.namespace,
            self.name,
            self.pods,
            plural(self.pods)
        )
    }
}

/// How many links a reconcile changed, by change ([`ReconcileReport::counts`]). In a dry run,
/// what it would change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct ChangeCounts {
    /// Desired links created.
    pub created: usize,
    /// Desired links that pointed at another identity and were updated in place.
    pub updated: usize,
    /// Desired links that were already as asked.
    pub unchanged: usize,
    /// Stale links removed.
    pub removed: usize,
    /// Stale-looking links kept (another app's, an add-on's, made by hand).
    pub kept: usize,
    /// Desired links that failed, and stale links whose removal failed.
    pub failed: usize,
}

impl fmt::Display for ChangeCounts {
    /// `3 created, 1 updated, 6 unchanged, 2 removed, 0 kept, 0 failed`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} created, {} updated, {} unchanged, {} removed, {} kept, {} failed",
            self.created, self.updated, self.unchanged, self.removed, self.kept, self.failed
        )
    }
}

impl ReconcileReport {
    /// Whether everything asked was done: no binding failed, no stale link failed to be
    /// removed, stale links could be looked for on every cloud, and — when the Kubernetes step
    /// ran — no service account's step failed (a conflict with another field manager, an API
    /// server that refused). The cluster's *findings* (a ServiceAccount missing, pods to
    /// restart) do not make it false; they are in each service account's
    /// [`ClusterStep::findings`]. [`errors`](Self::errors) lists what does.
    pub fn is_ok(&self) -> bool {
        self.errors().next().is_none()
    }

    /// What the report says of the Kubernetes ServiceAccount `namespace/name`, if a desired
    /// binding runs as it.
    ///
    /// ```
    /// # fn check(report: &porter_identity_core::ReconcileReport) {
    /// if let Some(sa) = report.service_account("shop", "shop-api") {
    ///     println!("needs a restart: {}", sa.patch.needs_pod_restart);
    /// }
    /// # }
    /// ```
    pub fn service_account(&self, namespace: &str, name: &str) -> Option<&ServiceAccountNeeds> {
        ServiceAccountNeeds::find(&self.service_accounts, namespace, name)
    }

    /// How many links were (would be) created, updated, left unchanged, removed, kept, and
    /// how many failed.
    pub fn counts(&self) -> ChangeCounts {
        let mut counts = ChangeCounts {
            kept: self.kept.len(),
            ..ChangeCounts::default()
        };
        for w in &self.workloads {
            match &w.result {
                Ok(c) => match c.change {
                    BindChange::Created => counts.created += 1,
                    BindChange::Updated { .. } => counts.updated += 1,
                    BindChange::Unchanged => counts.unchanged += 1,
                },
                Err(_) => counts.failed += 1,
            }
        }
        for r in &self.removed {
            if r.error.is_some() {
                counts.failed += 1;
            } else {
                counts.removed += 1;
            }
        }
        counts
    }

    /// Every error, with what it is about: the binding, the stale link, or none (a failed look
    /// for stale links, a service account's failed Kubernetes step).
    pub fn errors(&self) -> impl Iterator<Item = (Option<&Binding>, &Error)> {
        let workloads = self
            .workloads
            .iter()
            .filter_map(|w| w.result.as_ref().err().map(|e| (Some(&w.binding), e)));
        let removals = self
            .removed
            .iter()
            .filter_map(|r| r.error.as_ref().map(|e| (Some(&r.binding), e)));
        let cleanup = self.cleanup_errors.iter().map(|e| (None, e));
        let cluster = self
            .service_accounts
            .iter()
            .filter_map(|sa| sa.cluster.as_ref()?.error.as_ref().map(|e| (None, e)));
        workloads.chain(removals).chain(cleanup).chain(cluster)
    }

    /// How many links were (would be) created, updated or removed.
    pub fn changes(&self) -> usize {
        let bound = self
            .workloads
            .iter()
            .filter(|w| matches!(&w.result, Ok(c) if c.change != BindChange::Unchanged))
            .count();
        bound + self.removed.iter().filter(|r| r.error.is_none()).count()
    }
}

impl fmt::Display for ReconcileReport {
    /// A table for a deploy log: one line per binding, removed and kept link, then the
    /// service accounts' needs and the cloud calls.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (create, update, remove) = if self.dry_run {
            ("would create", "would update", "would remove")
        } else {
            ("created", "updated", "removed")
        };
        writeln!(
            f,
            "reconcile of app {} in namespace {}{}: {} change{}, {} error{}",
            self.app,
            self.namespace,
            if self.dry_run { " (dry run)" } else { "" },
            self.changes(),
            plural(self.changes()),
            self.errors().count(),
            plural(self.errors().count()),
        )?;
        for w in &self.workloads {
            let what = match &w.result {
                Ok(c) => match &c.change {
                    BindChange::Created => create.to_owned(),
                    BindChange::Updated { previous } => format!("{update} (was {previous})"),
                    BindChange::Unchanged => "unchanged".to_owned(),
                },
                Err(e) => format!("FAILED: {e}"),
            };
            line(f, &w.binding, &what)?;
        }
        for r in &self.removed {
            let what = match &r.error {
                None => format!("{remove} (stale; {})", r.evidence),
                Some(e) => format!("FAILED to remove (stale; {}): {e}", r.evidence),
            };
            line(f, &r.binding, &what)?;
        }
        for k in &self.kept {
            line(f, &k.binding, &format!("kept: {}", k.reason))?;
        }
        for e in &self.cleanup_errors {
            writeln!(f, "  stale links not looked for: {e}")?;
        }
        for sa in &self.service_accounts {
            if let Some(step) = &sa.cluster {
                cluster_lines(f, sa, step, self.dry_run)?;
                continue;
            }
            if sa.patch.is_empty() {
                continue;
            }
            let needs: Vec<String> = sa
                .patch
                .annotations
                .iter()
                .map(|(k, v)| format!("annotation {k}={v}"))
                .chain(
                    sa.patch
                        .pod_labels
                        .iter()
                        .map(|(k, v)| format!("pod label {k}={v}")),
                )
                .chain(
                    sa.patch
                        .needs_pod_restart
                        .then(|| "a restart of its pods".to_owned()),
                )
                .collect();
            writeln!(
                f,
                "  service account {}/{} needs {}",
                sa.workload.namespace(),
                sa.workload.service_account(),
                needs.join("; ")
            )?;
        }
        write!(f, "  cloud calls: {}", self.calls.total())?;
        for (cloud, op, n) in self.calls.iter() {
            write!(f, ", {cloud} {op} {n}")?;
        }
        Ok(())
    }
}

/// The Kubernetes step's lines of one service account: what it applied and restarted, what it
/// found, or why it could not.
fn cluster_lines(
    f: &mut fmt::Formatter<'_>,
    sa: &ServiceAccountNeeds,
    step: &ClusterStep,
    dry_run: bool,
) -> fmt::Result {
    let name = format!(
        "{}/{}",
        sa.workload.namespace(),
        sa.workload.service_account()
    );
    let (applied, restarted) = if dry_run {
        ("would apply", "would restart")
    } else {
        ("applied", "restarted")
    };
    if let Some(e) = &step.error {
        writeln!(f, "  service account {name}: FAILED: {e}")?;
    }
    for a in &step.applied {
        writeln!(f, "  service account {name}: {applied} {a}")?;
    }
    for r in &step.restarted {
        writeln!(f, "  service account {name}: {restarted} {r}")?;
    }
    for finding in &step.findings {
        writeln!(f, "  service account {name}: {finding}")?;
    }
    if step.error.is_none() && step.findings.is_empty() {
        writeln!(f, "  service account {name}: ready in the cluster")?;
    }
    Ok(())
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn line(f: &mut fmt::Formatter<'_>, binding: &Binding, what: &str) -> fmt::Result {
    let cloud = binding.connection.cloud().map_or("-", |c| c.as_str());
    writeln!(
        f,
        "  {cloud:<5} {:<32} {:<40} {what}",
        binding.workload.to_string(),
        binding.connection.describe()
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::CallCounts;

    fn report(patch: ServiceAccountPatch) -> ReconcileReport {
        let workload = Workload::for_service("prod", "shop", "api").unwrap();
        ReconcileReport {
            app: workload.app().clone(),
            namespace: workload.namespace().clone(),
            dry_run: false,
            workloads: Vec::new(),
            removed: Vec::new(),
            kept: Vec::new(),
            cleanup_errors: Vec::new(),
            cluster_facts: ClusterFacts::default(),
            service_accounts: vec![ServiceAccountNeeds {
                workload,
                patch,
                clouds: BTreeSet::from([Cloud::Azure]),
                cluster: None,
            }],
            calls: CallCounts::default(),
        }
    }

    #[test]
    fn a_service_accounts_needs_are_listed_without_a_dangling_separator() {
        let mut patch = ServiceAccountPatch::default();
        patch
            .annotations
            .insert("azure.workload.identity/client-id".into(), "c1".into());
        patch
            .pod_labels
            .insert("azure.workload.identity/use".into(), "true".into());
        let text = report(patch.clone()).to_string();
        assert!(
            text.contains(
                "service account prod/shop-api needs annotation azure.workload.identity/client-id=c1; pod label azure.workload.identity/use=true\n"
            ),
            "{text}"
        );
        patch.needs_pod_restart = true;
        let text = report(patch).to_string();
        assert!(
            text.contains("pod label azure.workload.identity/use=true; a restart of its pods\n"),
            "{text}"
        );
    }
}
