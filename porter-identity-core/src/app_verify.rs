//! `AppVerifyReport`: what one verify of a whole app found, on its clouds and in its cluster.

use std::fmt;

use crate::{
    Binding, CallCounts, ClusterFacts, Error, Finding, KubernetesName, Namespace,
    ServiceAccountNeeds, Severity, VerifyReport,
};

/// What [`Reconciler::verify`](crate::Reconciler::verify) found of an app, read only:
///
/// - [`workloads`](Self::workloads): one entry per desired binding, in the desired order, with
///   its [`VerifyReport`] or why it could not be verified;
/// - [`service_accounts`](Self::service_accounts): per Kubernetes service account, what its
///   links need of the cluster, and — with the Kubernetes step — what the cluster holds that
///   keeps them from working ([`ClusterStep::findings`](crate::ClusterStep::findings));
/// - [`calls`](Self::calls): the cloud calls made, by cloud and operation.
///
/// With feature `serde` it serialises to stable JSON (see the crate README for the schema).
///
/// ```
/// # fn show(report: &porter_identity_core::AppVerifyReport) {
/// for (workload, finding) in report.findings() {
///     println!("{workload}: {finding}");
/// }
/// if !report.is_healthy() {
///     eprintln!("{report}");
/// }
/// # }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AppVerifyReport {
    /// The app verified.
    pub app: KubernetesName,
    /// Its namespace.
    pub namespace: Namespace,
    /// One entry per desired binding, in order.
    pub workloads: Vec<WorkloadVerify>,
    /// What each Kubernetes service account's links need, merged over its bindings, with the
    /// cluster's findings when the Kubernetes step ran.
    pub service_accounts: Vec<ServiceAccountNeeds>,
    /// What the providers know of the cluster that the Kubernetes step needs, read when a
    /// verify has a Kubernetes step.
    pub cluster_facts: ClusterFacts,
    /// Errors reading those cluster facts (the cluster's findings that need them are missing).
    pub cluster_fact_errors: Vec<Error>,
    /// The cloud calls made.
    pub calls: CallCounts,
}

/// The verify of one desired binding.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WorkloadVerify {
    /// The binding.
    pub binding: Binding,
    /// What verify found, or why it could not look (a cloud call failed).
    pub result: Result<VerifyReport, Error>,
}

impl WorkloadVerify {
    /// Whether the binding was verified and has no error finding.
    pub fn is_healthy(&self) -> bool {
        self.result.as_ref().is_ok_and(VerifyReport::is_healthy)
    }
}

impl AppVerifyReport {
    /// Whether every check could run: no binding's verify failed, and — with the Kubernetes
    /// step — the cluster could be read for every service account and the cluster facts
    /// could be read. What the checks *found* is [`is_healthy`](Self::is_healthy).
    pub fn is_ok(&self) -> bool {
        self.errors().next().is_none()
    }

    /// Whether the app's links work: every check ran ([`is_ok`](Self::is_ok)) and nothing of
    /// [`Severity::Error`] was found, on the clouds or in the cluster.
    pub fn is_healthy(&self) -> bool {
        self.is_ok()
            && !self
                .findings()
                .any(|(_, finding)| finding.severity == Severity::Error)
    }

    /// Every finding, with the workload (a binding's) or service account (the cluster's) it is
    /// about, bindings first.
    pub fn findings(&self) -> impl Iterator<Item = (String, &Finding)> {
        let links = self.workloads.iter().flat_map(|w| {
            w.result
                .iter()
                .flat_map(|r| r.findings.iter())
                .map(|f| (w.binding.workload.to_string(), f))
        });
        let cluster = self.service_accounts.iter().flat_map(|sa| {
            sa.cluster
                .iter()
                .flat_map(|step| step.findings.iter())
                .map(|f| (service_account_name(sa), f))
        });
        links.chain(cluster)
    }

    /// Every error, with the binding it is about, or none (the cluster facts, a service
    /// account's cluster read).
    pub fn errors(&self) -> impl Iterator<Item = (Option<&Binding>, &Error)> {
        let workloads = self
            .workloads
            .iter()
            .filter_map(|w| w.result.as_ref().err().map(|e| (Some(&w.binding), e)));
        let facts = self.cluster_fact_errors.iter().map(|e| (None, e));
        let cluster = self
            .service_accounts
            .iter()
            .filter_map(|sa| sa.cluster.as_ref()?.error.as_ref().map(|e| (None, e)));
        workloads.chain(facts).chain(cluster)
    }

    /// What the report says of the Kubernetes ServiceAccount `namespace/name`, if a desired
    /// binding runs as it.
    pub fn service_account(&self, namespace: &str, name: &str) -> Option<&ServiceAccountNeeds> {
        ServiceAccountNeeds::find(&self.service_accounts, namespace, name)
    }

    /// How many bindings have an error: their own verify's, or their service account's in the
    /// cluster.
    pub fn broken(&self) -> usize {
        self.workloads
            .iter()
            .filter(|w| {
                !w.is_healthy()
                    || self
                        .service_account(
                            w.binding.workload.namespace().as_str(),
                            w.binding.workload.service_account().as_str(),
                        )
                        .and_then(|sa| sa.cluster.as_ref())
                        .is_some_and(|step| {
                            step.error.is_some()
                                || step.findings.iter().any(|f| f.severity == Severity::Error)
                        })
            })
            .count()
    }
}

fn service_account_name(sa: &ServiceAccountNeeds) -> String {
    format!(
        "{}/{}",
        sa.workload.namespace(),
        sa.workload.service_account()
    )
}

impl fmt::Display for AppVerifyReport {
    /// One block per binding (its findings, errors first), then each service account's
    /// cluster findings, the cloud calls, and a summary line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "verify of app {} in namespace {}: {}",
            self.app,
            self.namespace,
            if self.is_healthy() {
                "healthy"
            } else {
                "BROKEN"
            }
        )?;
        for w in &self.workloads {
            let cloud = w.binding.connection.cloud().map_or("-", |c| c.as_str());
            match &w.result {
                Ok(report) => {
                    let text = report.to_string().replace('\n', "\n    ");
                    writeln!(f, "{cloud:<5} {}: {text}", w.binding.workload)?;
                }
                Err(e) => writeln!(f, "{cloud:<5} {}: FAILED: {e}", w.binding.workload)?,
            }
        }
        for e in &self.cluster_fact_errors {
            writeln!(f, "cluster facts not read: {e}")?;
        }
        for sa in &self.service_accounts {
            let Some(step) = &sa.cluster else { continue };
            let name = service_account_name(sa);
            if let Some(e) = &step.error {
                writeln!(f, "kube  {name}: FAILED: {e}")?;
                continue;
            }
            let mut findings: Vec<&Finding> = step.findings.iter().collect();
            findings.sort_by_key(|finding| std::cmp::Reverse(finding.severity));
            if findings.is_empty() {
                writeln!(f, "kube  {name}: ready in the cluster")?;
            }
            for finding in findings {
                let text = finding.to_string().replace('\n', "\n    ");
                writeln!(f, "kube  {name}: {text}")?;
            }
        }
        writeln!(f, "cloud calls: {}", self.calls.total())?;
        write!(
            f,
            "{} binding{} verified, {} with errors",
            self.workloads.len(),
            if self.workloads.len() == 1 { "" } else { "s" },
            self.broken()
        )
    }
}
