//! The Kubernetes step of a reconcile: for each service account of a [`ReconcileReport`],
//! apply what its links need in the cluster (the ServiceAccount's annotations, the Azure pod
//! label on the templates that run as it), restart the workloads whose pods predate the
//! links when asked, and diagnose what is left — into the report's
//! `ClusterStep`s.
//!
//! Nothing is written in a dry run: the step then says what it would apply and restart, and
//! what it finds. Before a ServiceAccount's pod templates are labelled, its annotations must
//! apply: a conflict with another field manager stops that service account's step with nothing
//! of it written.
//!
//! The step reads each namespace once (its ServiceAccounts, pods and workloads), then decides
//! per service account; the writes of the service accounts run side by side, bounded by the
//! cluster's concurrency. A ServiceAccount that already carries exactly what porter-identity
//! would apply, under its field manager, gets no apply: an unchanged re-deploy writes nothing.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Pod, ServiceAccount};
use k8s_openapi::jiff::Timestamp;
use porter_identity_core::{
    AppVerifyReport, Cloud, ClusterFacts, ClusterStep, Error, ErrorKind, Finding, ReconcileReport,
    Result, ServiceAccountNeeds,
};

use futures_util::stream::{self, StreamExt};

use crate::Cluster;
use crate::apply::{already_applied, annotation_conflicts};
use crate::diagnose::{
    Expected, IRSA_ANNOTATION, Observed, diagnose, owner_of, pods_predating, whole_seconds,
};
use crate::namespace::{NamespaceView, Seen};
use crate::workloads::{PodWorkload, running_as};

/// The ServiceAccount annotation where porter-identity records when a link of the service
/// account last changed, so that any later process (a `verify`, a `restart`) knows which pods
/// predate it.
pub const LINKS_CHANGED_AT_ANNOTATION: &str = "porter.run/identity-changed-at";

/// The ServiceAccount annotation naming the app whose links porter-identity applied to it. All
/// apps apply as the one field manager `porter-identity`, so server-side apply alone would let
/// a second app whose service maps to the same ServiceAccount name (`shop` + `admin-api`,
/// `shop-admin` + `api`) silently replace the first's annotations: this mark makes that a
/// `Conflict` instead.
pub const LINKS_APP_ANNOTATION: &str = "porter.run/identity-app";

/// What the Kubernetes step may do beyond applying.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct StepOptions {
    /// Take over annotations and labels another field manager owns with another value
    /// (server-side apply with force). Off: such a field is a `Conflict` naming the manager.
    pub force_conflicts: bool,
    /// Restart (rollout restart) the workloads whose pods predate the links' last change.
    pub restart: bool,
    /// Create a missing ServiceAccount (with the annotations only). Off: a missing one is a
    /// finding, and nothing is created that a chart or a manifest means to own.
    pub create_service_accounts: bool,
}

impl StepOptions {
    /// [`force_conflicts`](Self::force_conflicts) set to `yes`.
    ///
    /// ```
    /// use porter_identity_kube::step::StepOptions;
    /// let options = StepOptions::default().restart(true).create_service_accounts(true);
    /// assert!(options.restart && options.create_service_accounts && !options.force_conflicts);
    /// ```
    #[must_use]
    pub fn force_conflicts(mut self, yes: bool) -> Self {
        self.force_conflicts = yes;
        self
    }

    /// [`restart`](Self::restart) set to `yes`.
    #[must_use]
    pub fn restart(mut self, yes: bool) -> Self {
        self.restart = yes;
        self
    }

    /// [`create_service_accounts`](Self::create_service_accounts) set to `yes`.
    #[must_use]
    pub fn create_service_accounts(mut self, yes: bool) -> Self {
        self.create_service_accounts = yes;
        self
    }
}

/// The Kubernetes step as the [`Reconciler`](porter_identity_core::Reconciler) runs it, in the
/// same call as the clouds' (`Reconciler::kubernetes`): [`Cluster::step`]. It applies in a
/// `run`, says what it would apply in a `dry_run`, and only diagnoses in a `verify` (its
/// options then play no part).
#[derive(Debug, Clone)]
pub struct ReconcileStep {
    cluster: Cluster,
    options: StepOptions,
}

#[async_trait::async_trait]
impl porter_identity_core::KubernetesStep for ReconcileStep {
    async fn run(&self, report: &mut ReconcileReport) -> Result<()> {
        self.cluster.reconcile_step(report, &self.options).await
    }

    async fn diagnose(&self, report: &mut AppVerifyReport) -> Result<()> {
        self.cluster.diagnose_step(report).await
    }
}

/// A workload restarted (or that would be), and why.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Restart {
    /// The workload.
    pub workload: PodWorkload,
    /// How many of its pods predate the link.
    pub pods: usize,
}

impl Restart {
    /// The same restart as the core report carries it.
    pub fn to_workload_restart(&self) -> porter_identity_core::WorkloadRestart {
        porter_identity_core::WorkloadRestart::new(
            self.workload.kind.as_str(),
            &self.workload.namespace,
            &self.workload.name,
            self.pods,
        )
    }
}

impl std::fmt::Display for Restart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({} pod{} older than the link)",
            self.workload,
            self.pods,
            if self.pods == 1 { "" } else { "s" }
        )
    }
}

/// When the links of a service account last changed: the later of what this reconcile wrote
/// and what an earlier one recorded on the ServiceAccount.
fn changed_at(needs: &ServiceAccountNeeds, account: Option<&ServiceAccount>) -> Option<Timestamp> {
    let written = needs
        .patch
        .changed_at
        .and_then(|t| Timestamp::try_from(t).ok())
        .map(whole_seconds);
    let recorded = account
        .and_then(|a| a.metadata.annotations.as_ref())
        .and_then(|a| a.get(LINKS_CHANGED_AT_ANNOTATION))
        .and_then(|v| v.parse::<Timestamp>().ok());
    written.max(recorded)
}

impl Cluster {
    /// The Kubernetes step with `options`, for [`Reconciler::kubernetes`](porter_identity_core::Reconciler::kubernetes):
    /// one call deploys the clouds' side and then the cluster's.
    ///
    /// ```no_run
    /// # async fn deploy(aws: &dyn porter_identity_core::WorkloadIdentityProvider, manifest: &porter_identity_core::AppManifest) -> porter_identity_core::Result<()> {
    /// use porter_identity_core::Reconciler;
    /// use porter_identity_kube::{Cluster, step::StepOptions};
    ///
    /// let cluster = Cluster::builder().from_env().await?;
    /// let step = cluster.step(StepOptions::default().restart(true));
    /// let report = Reconciler::new("shop", "prod").provider(aws).desired(manifest).kubernetes(&step).run().await?;
    /// assert!(report.is_ok(), "{report}");
    /// # Ok(()) }
    /// ```
    pub fn step(&self, options: StepOptions) -> ReconcileStep {
        ReconcileStep {
            cluster: self.clone(),
            options,
        }
    }

    /// The Kubernetes step of `report` (see the [module](crate::step) docs): fills in each
    /// service account's [`ClusterStep`]. In a dry run nothing is written.
    ///
    /// # Errors
    /// When the namespace's workloads (or the nodes) cannot be read: then no service account
    /// was touched. An error of one service account (a conflict) is its `ClusterStep::error`.
    pub async fn reconcile_step(
        &self,
        report: &mut ReconcileReport,
        options: &StepOptions,
    ) -> Result<()> {
        let dry_run = report.dry_run;
        let (mut views, nodes) = futures_util::future::try_join(
            NamespaceView::read_all(
                self,
                namespaces(&report.service_accounts, &report.namespace).chain(
                    report
                        .removed
                        .iter()
                        .map(|r| r.binding.workload.namespace().as_str()),
                ),
            ),
            self.nodes_if_needed(&report.service_accounts, &report.cluster_facts),
        )
        .await?;
        self.release_removed(report, &views).await;
        // Each service account's writes, side by side: the cluster's gate bounds the calls in
        // flight. Decided from the namespace as read, before any of them.
        // Indexes rather than references: the step's future must be Send for every lifetime,
        // which a closure over borrowed items does not prove.
        let written: Vec<Written> = {
            let (views, accounts) = (&views, &report.service_accounts);
            stream::iter(0..accounts.len())
                .map(|i| {
                    let needs = &accounts[i];
                    let view = &views[needs.workload.namespace().as_str()];
                    let seen = view.seen(needs.workload.service_account().as_str());
                    self.service_account_writes(needs, seen, &view.workloads, dry_run, options)
                })
                .buffered(self.concurrency())
                .collect()
                .await
        };
        // What the writes changed: the labels on the templates, and (pods roll) the pods.
        let mut rolled = std::collections::BTreeSet::new();
        for (needs, w) in report.service_accounts.iter().zip(&written) {
            let ns = needs.workload.namespace().as_str();
            let view = views.get_mut(ns).expect("every namespace was read");
            for relabelled in &w.relabelled {
                view.relabel(relabelled);
            }
            if !dry_run && w.changed() {
                rolled.insert(ns.to_owned());
            }
        }
        // The pods of each namespace where writes rolled them, read again; a read that fails
        // is the error of the service accounts that wrote there.
        let mut unread = BTreeMap::new();
        for ns in rolled {
            match self.pods_in(&ns).await {
                Ok(pods) => views.get_mut(ns.as_str()).expect("read").set_pods(pods),
                Err(e) => {
                    unread.insert(ns, e);
                }
            }
        }
        let pools = &report.cluster_facts.pools_without_gke_metadata;
        for (needs, w) in report.service_accounts.iter_mut().zip(written) {
            let changed = !dry_run && w.changed();
            let Written {
                mut step,
                mut seen,
                relabelled,
            } = w;
            let ns = needs.workload.namespace().as_str();
            let view = &views[ns];
            if changed {
                match unread.get(ns) {
                    Some(e) => step.error = step.error.take().or(Some(e.clone())),
                    None => seen.pods = view.seen(needs.workload.service_account().as_str()).pods,
                }
            }
            step.findings = findings(needs, &seen, &view.workloads, &nodes, pools);
            if dry_run && needs.patch.needs_pod_restart {
                Self::planned_restarts(&seen, &view.workloads, options, &relabelled, &mut step);
            }
            needs.cluster = Some(step);
        }
        Ok(())
    }

    /// The ServiceAccounts whose links this reconcile removed and that keep none: the
    /// annotations porter-identity applied to them (an IRSA role, a GCP service account, an
    /// Azure client ID, its own bookkeeping) are removed, by applying none with its field
    /// manager. Another manager's annotations stay. A ServiceAccount that is gone is left so.
    /// In a dry run nothing is written; a failure is the removed link's error.
    async fn release_removed(&self, report: &mut ReconcileReport, views: &Views) {
        if report.dry_run {
            return;
        }
        let kept: std::collections::BTreeSet<(String, String)> = report
            .service_accounts
            .iter()
            .map(|n| sa_key(&n.workload))
            .collect();
        let mut done = std::collections::BTreeSet::new();
        for link in report.removed.iter_mut().filter(|l| l.error.is_none()) {
            let key = sa_key(&link.binding.workload);
            if kept.contains(&key) || !done.insert(key.clone()) {
                continue;
            }
            let (ns, sa) = &key;
            let Some(account) = views.get(ns.as_str()).and_then(|v| v.seen(sa).account) else {
                continue;
            };
            // Another app's ServiceAccount now (their service names map to the same name): its
            // annotations, under the same field manager, are not this app's to remove.
            let owner = account
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(LINKS_APP_ANNOTATION));
            if owner.is_some_and(|o| o != report.app.as_str())
                || already_applied(Some(&account), &BTreeMap::new())
            {
                continue;
            }
            if let Err(e) = self
                .apply_service_account_annotations(ns, sa, &BTreeMap::new(), false)
                .await
            {
                link.error = Some(e);
            }
        }
    }

    /// The Kubernetes findings of a verify's service accounts, read only: each service
    /// account's [`ClusterStep`] gets its findings and nothing applied. What the links need
    /// comes from what the clouds' verifies found; what only the clouds know of the cluster,
    /// from `report.cluster_facts`.
    ///
    /// # Errors
    /// When the namespace's workloads cannot be read.
    async fn diagnose_step(&self, report: &mut AppVerifyReport) -> Result<()> {
        let (views, nodes) = futures_util::future::try_join(
            NamespaceView::read_all(
                self,
                namespaces(&report.service_accounts, &report.namespace),
            ),
            self.nodes_if_needed(&report.service_accounts, &report.cluster_facts),
        )
        .await?;
        let pools = &report.cluster_facts.pools_without_gke_metadata;
        for needs in &mut report.service_accounts {
            let view = &views[needs.workload.namespace().as_str()];
            let seen = view.seen(needs.workload.service_account().as_str());
            let mut step = ClusterStep::default();
            step.findings = findings(needs, &seen, &view.workloads, &nodes, pools);
            needs.cluster = Some(step);
        }
        Ok(())
    }

    /// Restarts exactly the workloads of `report`'s service accounts whose pods started before
    /// the links' last change (nothing else), and returns them; in a dry run, the ones it
    /// would restart. `report` may be a dry run's: only its service accounts are read.
    ///
    /// # Errors
    /// When the cluster cannot be read, or a restart is refused (those before it are done).
    pub async fn restart_step(
        &self,
        report: &ReconcileReport,
        dry_run: bool,
    ) -> Result<Vec<Restart>> {
        let views = NamespaceView::read_all(
            self,
            namespaces(&report.service_accounts, &report.namespace),
        )
        .await?;
        let mut out = Vec::new();
        for needs in &report.service_accounts {
            let view = &views[needs.workload.namespace().as_str()];
            let seen = view.seen(needs.workload.service_account().as_str());
            let restarts = restarts_of(needs, &seen, &view.workloads);
            if !dry_run {
                for r in &restarts {
                    self.rollout_restart(&r.workload, Timestamp::now()).await?;
                }
            }
            out.extend(restarts);
        }
        Ok(out)
    }

    /// The cluster's nodes, when a GCP link is in play and the GCP provider said some node
    /// pool is not in `GKE_METADATA` mode (the finding of pods on those pools needs them).
    async fn nodes_if_needed(
        &self,
        service_accounts: &[ServiceAccountNeeds],
        facts: &ClusterFacts,
    ) -> Result<Vec<Node>> {
        let gcp = service_accounts
            .iter()
            .any(|sa| sa.clouds.contains(&Cloud::Gcp));
        if gcp && !facts.pools_without_gke_metadata.is_empty() {
            self.nodes(None).await
        } else {
            Ok(Vec::new())
        }
    }

    /// The writes of one service account (none in a dry run): its annotations, its pod
    /// templates' labels, and its restarts when asked.
    async fn service_account_writes(
        &self,
        needs: &ServiceAccountNeeds,
        mut seen: Seen,
        workloads: &[PodWorkload],
        dry_run: bool,
        options: &StepOptions,
    ) -> Written {
        let mut step = ClusterStep::default();
        // The templates just labelled: they roll their pods anyway.
        let relabelled = match self
            .apply_needs(needs, &mut seen, workloads, dry_run, options, &mut step)
            .await
        {
            Ok(relabelled) => relabelled,
            Err(e) => {
                step.error = Some(e);
                Vec::new()
            }
        };
        if options.restart && step.error.is_none() {
            let restarts: Vec<Restart> = restarts_of(needs, &seen, workloads)
                .into_iter()
                .filter(|r| !is_among(&r.workload, &relabelled))
                .collect();
            for r in restarts {
                if !dry_run
                    && let Err(e) = self.rollout_restart(&r.workload, Timestamp::now()).await
                {
                    step.error = Some(e);
                    break;
                }
                step.restarted.push(r.to_workload_restart());
            }
        }
        Written {
            step,
            seen,
            relabelled,
        }
    }

    /// In a plan: the links this deploy would make are newer than every running pod, so the
    /// pods of the service account would need a restart (listed as restarts when asked for,
    /// otherwise as a warning).
    fn planned_restarts(
        seen: &Seen,
        workloads: &[PodWorkload],
        options: &StepOptions,
        relabelled: &[PodWorkload],
        step: &mut ClusterStep,
    ) {
        let restarts: Vec<Restart> = restarts_of_pods(&seen.pods, workloads)
            .into_iter()
            .filter(|r| !is_among(&r.workload, relabelled))
            .collect();
        if restarts.is_empty() {
            return;
        }
        if options.restart {
            step.restarted
                .extend(restarts.iter().map(Restart::to_workload_restart));
        } else {
            let names: Vec<String> = restarts.iter().map(|r| r.workload.to_string()).collect();
            step.findings.push(Finding::warning(
                crate::codes::PODS_PREDATE_LINK,
                format!(
                    "the pods of {} would start before the link this deploy makes, and lack its credentials until restarted",
                    names.join(", ")
                ),
                "apply with --kube --restart, or restart them after the deploy (porter-identity restart)",
            ));
        }
    }

    /// Applies the ServiceAccount's annotations, then the pod-template labels.
    async fn apply_needs(
        &self,
        needs: &ServiceAccountNeeds,
        seen: &mut Seen,
        workloads: &[PodWorkload],
        dry_run: bool,
        options: &StepOptions,
        step: &mut ClusterStep,
    ) -> Result<Vec<PodWorkload>> {
        let mut relabelled = Vec::new();
        let ns = needs.workload.namespace().as_str();
        let sa = needs.workload.service_account().as_str();
        if seen.account.is_none() && !options.create_service_accounts {
            // Not created behind the back of whatever is meant to own it: a finding says so.
            return Ok(relabelled);
        }
        let app = needs.workload.app().as_str();
        let current: BTreeMap<String, String> = seen
            .account
            .as_ref()
            .and_then(|a| a.metadata.annotations.clone())
            .unwrap_or_default();
        if let Some(other) = current.get(LINKS_APP_ANNOTATION).filter(|o| *o != app)
            && !options.force_conflicts
        {
            return Err(Error::kubernetes(
                ErrorKind::Conflict,
                format!("apply ServiceAccount {ns}/{sa}"),
                format!(
                    "porter-identity manages this ServiceAccount for app {other}, not {app}: their services map to the same ServiceAccount name, and applying would replace the other app's annotations"
                ),
            )
            .with_fix(format!(
                "rename one of the services so that the ServiceAccount names differ, or take the ServiceAccount over for app {app} with force (the CLI's --force-conflicts)"
            )));
        }
        let mut annotations = needs.patch.annotations.clone();
        annotations.insert(LINKS_APP_ANNOTATION.to_owned(), app.to_owned());
        // A link that is an annotation (IRSA's role, say) reaches only pods admitted after it
        // changes: on a ServiceAccount that already runs pods, that is when the link changed.
        let annotation_changed = !dry_run
            && seen.account.is_some()
            && needs
                .patch
                .annotations
                .iter()
                .any(|(k, v)| current.get(k) != Some(v));
        let now = annotation_changed.then(|| whole_seconds(Timestamp::now()));
        if let Some(at) = changed_at(needs, seen.account.as_ref()).max(now) {
            annotations.insert(LINKS_CHANGED_AT_ANNOTATION.to_owned(), at.to_string());
        }
        let changed: Vec<String> = annotations
            .iter()
            .filter(|(k, v)| current.get(*k) != Some(*v))
            .map(|(k, v)| format!("annotation {k}={v} on ServiceAccount {ns}/{sa}"))
            .collect();
        if dry_run {
            if let Some(account) = &seen.account
                && !options.force_conflicts
            {
                let mut wanted = needs.patch.clone();
                wanted.annotations = annotations.clone();
                let conflicts = annotation_conflicts(account, &wanted);
                if !conflicts.is_empty() {
                    let list: Vec<String> = conflicts.iter().map(ToString::to_string).collect();
                    return Err(Error::kubernetes(
                        ErrorKind::Conflict,
                        format!("apply ServiceAccount {ns}/{sa}"),
                        format!("it would be refused: {}", list.join("; ")),
                    )
                    .with_fix("change the value with the tool that set it, or apply with force (the CLI's --force-conflicts)"));
                }
            }
        } else if !already_applied(seen.account.as_ref(), &annotations) {
            let applied = self
                .apply_service_account_annotations(ns, sa, &annotations, options.force_conflicts)
                .await?;
            seen.account = Some(applied);
        }
        step.applied.extend(changed);

        if needs.patch.pod_labels.is_empty() {
            return Ok(relabelled);
        }
        for w in running_as(workloads, ns, sa) {
            let missing = needs
                .patch
                .pod_labels
                .iter()
                .any(|(k, v)| w.template_labels.get(k) != Some(v));
            if !missing {
                continue;
            }
            if !dry_run {
                self.apply_pod_template_labels(w, &needs.patch.pod_labels, options.force_conflicts)
                    .await?;
            }
            let labels: Vec<String> = needs
                .patch
                .pod_labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            step.applied.push(format!(
                "label {} on the pod template of {w} (changing a pod template rolls its pods)",
                labels.join(", ")
            ));
            let mut w = w.clone();
            w.template_labels.extend(needs.patch.pod_labels.clone());
            relabelled.push(w);
        }
        Ok(relabelled)
    }
}

/// One service account's writes: its step so far, what it now holds, and the workloads whose
/// templates were labelled.
struct Written {
    step: ClusterStep,
    seen: Seen,
    relabelled: Vec<PodWorkload>,
}

impl Written {
    /// Whether it applied or restarted something (or would have, in a dry run).
    fn changed(&self) -> bool {
        !self.step.applied.is_empty() || !self.step.restarted.is_empty()
    }
}

/// The read namespaces, by name.
type Views = BTreeMap<String, NamespaceView>;

/// A workload's ServiceAccount as (namespace, name).
fn sa_key(w: &porter_identity_core::Workload) -> (String, String) {
    (
        w.namespace().as_str().to_owned(),
        w.service_account().as_str().to_owned(),
    )
}

/// The namespaces of `service_accounts` (and the report's own).
fn namespaces<'a>(
    service_accounts: &'a [ServiceAccountNeeds],
    namespace: &'a porter_identity_core::Namespace,
) -> impl Iterator<Item = &'a str> {
    std::iter::once(namespace.as_str()).chain(
        service_accounts
            .iter()
            .map(|sa| sa.workload.namespace().as_str()),
    )
}

/// Whether `workload` is one of `among` (the same object, whatever its labels now).
fn is_among(workload: &PodWorkload, among: &[PodWorkload]) -> bool {
    among.iter().any(|w| {
        w.kind == workload.kind && w.namespace == workload.namespace && w.name == workload.name
    })
}

/// The workloads whose pods predate the service account's links.
fn restarts_of(
    needs: &ServiceAccountNeeds,
    seen: &Seen,
    workloads: &[PodWorkload],
) -> Vec<Restart> {
    match changed_at(needs, seen.account.as_ref()) {
        Some(at) => restarts_of_pods(pods_predating(&seen.pods, at), workloads),
        None => Vec::new(),
    }
}

/// The workloads that own `pods`, each with how many of them it owns, in `workloads` order.
fn restarts_of_pods<'a>(
    pods: impl IntoIterator<Item = &'a Pod>,
    workloads: &[PodWorkload],
) -> Vec<Restart> {
    let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
    for pod in pods {
        if let Some(i) =
            owner_of(pod, workloads).and_then(|o| workloads.iter().position(|w| w == o))
        {
            *counts.entry(i).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .map(|(i, pods)| Restart {
            workload: workloads[i].clone(),
            pods,
        })
        .collect()
}

fn findings(
    needs: &ServiceAccountNeeds,
    seen: &Seen,
    workloads: &[PodWorkload],
    nodes: &[Node],
    pools_without_gke_metadata: &[String],
) -> Vec<Finding> {
    let expected = Expected {
        workload: &needs.workload,
        patch: &needs.patch,
        changed_at: changed_at(needs, seen.account.as_ref()),
        // An IRSA link is the annotation itself, not an association beside it.
        pod_identity: needs.clouds.contains(&Cloud::Aws)
            && !needs.patch.annotations.contains_key(IRSA_ANNOTATION),
        gke_workload_identity: needs.clouds.contains(&Cloud::Gcp),
        pools_without_gke_metadata,
    };
    diagnose(
        &expected,
        &Observed {
            service_account: seen.account.as_ref(),
            workloads,
            pods: &seen.pods,
            nodes,
        },
    )
}
