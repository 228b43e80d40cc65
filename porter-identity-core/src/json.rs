//! The stable JSON shapes (feature `serde`): field names are part of the public API, and the
//! crate README documents them. One shape per idea, used by every report and by the CLI:
//!
//! - a **link** ([`Binding`]): `cloud`, `namespace`, `service_account`, `app`, `service`,
//!   `connection`;
//! - an **error** ([`Error`]): `kind`, `target`, `cloud`, `operation`, `message`, `fix`,
//!   `retryable`;
//! - a **finding** ([`Finding`]): `severity`, `code`, `message`, `remediation`;
//! - a **service account**'s needs and its cluster step.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde::ser::{SerializeStruct, Serializer};

use crate::report::{KeptLink, RemovedLink, WorkloadResult};
use crate::{
    AppVerifyReport, BindChange, Binding, CallCounts, ChangeCounts, Cloud, ClusterFacts,
    ClusterStep, Connection, Error, Finding, ReconcileReport, ServiceAccountNeeds, Target,
    VerifyReport, WorkloadRestart, WorkloadVerify,
};

/// A binding as the link it makes: who and to what.
impl Serialize for Binding {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Link::of(self).serialize(s)
    }
}

#[derive(Serialize)]
struct Link<'a> {
    cloud: Option<&'static str>,
    namespace: &'a str,
    service_account: &'a str,
    app: &'a str,
    service: &'a str,
    connection: &'a Connection,
}

impl<'a> Link<'a> {
    fn of(b: &'a Binding) -> Self {
        Link {
            cloud: b.connection.cloud().map(Cloud::as_str),
            namespace: b.workload.namespace().as_str(),
            service_account: b.workload.service_account().as_str(),
            app: b.workload.app().as_str(),
            service: b.workload.service().as_str(),
            connection: &b.connection,
        }
    }
}

/// An error as what failed and what to fix: `target` is what a failed remote call went to
/// (`aws`, `azure`, `gcp` or `kubernetes`; `null` for bad input), `cloud` the same when it is a
/// cloud.
impl Serialize for Error {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let target = self.target().map(Target::as_str);
        let mut e = s.serialize_struct("Error", 7)?;
        e.serialize_field("kind", self.kind().as_str())?;
        e.serialize_field("target", &target)?;
        e.serialize_field("cloud", &self.cloud_name().map(Cloud::as_str))?;
        e.serialize_field("operation", &self.operation())?;
        e.serialize_field("message", &self.problem())?;
        e.serialize_field("fix", &self.fix())?;
        e.serialize_field("retryable", &self.is_retryable())?;
        e.end()
    }
}

impl Serialize for Finding {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut f = s.serialize_struct("Finding", 4)?;
        f.serialize_field("severity", self.severity.as_str())?;
        f.serialize_field("code", &self.code)?;
        f.serialize_field("message", &self.message)?;
        f.serialize_field("remediation", &self.remediation)?;
        f.end()
    }
}

/// `healthy` and the `findings`.
impl Serialize for VerifyReport {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut r = s.serialize_struct("VerifyReport", 2)?;
        r.serialize_field("healthy", &self.is_healthy())?;
        r.serialize_field("findings", &self.findings)?;
        r.end()
    }
}

#[derive(Serialize)]
struct ServiceAccount<'a> {
    namespace: &'a str,
    name: &'a str,
    clouds: Vec<&'static str>,
    annotations: &'a BTreeMap<String, String>,
    pod_labels: &'a BTreeMap<String, String>,
    needs_pod_restart: bool,
    notes: &'a [String],
    cluster: Option<Cluster<'a>>,
}

#[derive(Serialize)]
struct Cluster<'a> {
    applied: &'a [String],
    restarted: &'a [WorkloadRestart],
    findings: &'a [Finding],
    error: Option<&'a Error>,
}

impl Serialize for ServiceAccountNeeds {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let clouds: &BTreeSet<Cloud> = &self.clouds;
        ServiceAccount {
            namespace: self.workload.namespace().as_str(),
            name: self.workload.service_account().as_str(),
            clouds: clouds.iter().map(|c| c.as_str()).collect(),
            annotations: &self.patch.annotations,
            pod_labels: &self.patch.pod_labels,
            needs_pod_restart: self.patch.needs_pod_restart,
            notes: &self.patch.notes,
            cluster: self.cluster.as_ref().map(|step: &ClusterStep| Cluster {
                applied: &step.applied,
                restarted: &step.restarted,
                findings: &step.findings,
                error: step.error.as_ref(),
            }),
        }
        .serialize(s)
    }
}

#[derive(Serialize)]
struct Report<'a> {
    app: &'a str,
    namespace: &'a str,
    dry_run: bool,
    ok: bool,
    changes: usize,
    counts: ChangeCounts,
    workloads: Vec<Workload<'a>>,
    removed: Vec<Removed<'a>>,
    kept: Vec<Kept<'a>>,
    cleanup_errors: &'a [Error],
    cluster_facts: &'a ClusterFacts,
    service_accounts: &'a [ServiceAccountNeeds],
    calls: &'a CallCounts,
}

#[derive(Serialize)]
struct Workload<'a> {
    #[serde(flatten)]
    link: &'a Binding,
    change: Option<&'static str>,
    previous: Option<&'a str>,
    resource_id: Option<&'a str>,
    description: Option<&'a str>,
    error: Option<&'a Error>,
}

#[derive(Serialize)]
struct Removed<'a> {
    #[serde(flatten)]
    link: &'a Binding,
    resource_id: Option<&'a str>,
    evidence: &'static str,
    error: Option<&'a Error>,
}

#[derive(Serialize)]
struct Kept<'a> {
    #[serde(flatten)]
    link: &'a Binding,
    resource_id: Option<&'a str>,
    reason: &'a str,
}

fn workload(w: &WorkloadResult) -> Workload<'_> {
    let mut out = Workload {
        link: &w.binding,
        change: None,
        previous: None,
        resource_id: None,
        description: None,
        error: None,
    };
    match &w.result {
        Ok(c) => {
            out.change = Some(c.change.as_str());
            if let BindChange::Updated { previous } = &c.change {
                out.previous = Some(previous.as_str());
            }
            out.resource_id = c.resource_id.as_deref();
            out.description = c.description.as_deref();
        }
        Err(e) => out.error = Some(e),
    }
    out
}

fn removed(r: &RemovedLink) -> Removed<'_> {
    Removed {
        link: &r.binding,
        resource_id: r.resource_id.as_deref(),
        evidence: r.evidence.as_str(),
        error: r.error.as_ref(),
    }
}

fn kept(k: &KeptLink) -> Kept<'_> {
    Kept {
        link: &k.binding,
        resource_id: k.resource_id.as_deref(),
        reason: &k.reason,
    }
}

impl Serialize for ReconcileReport {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Report {
            app: self.app.as_str(),
            namespace: self.namespace.as_str(),
            dry_run: self.dry_run,
            ok: self.is_ok(),
            changes: self.changes(),
            counts: self.counts(),
            workloads: self.workloads.iter().map(workload).collect(),
            removed: self.removed.iter().map(removed).collect(),
            kept: self.kept.iter().map(kept).collect(),
            cleanup_errors: &self.cleanup_errors,
            cluster_facts: &self.cluster_facts,
            service_accounts: &self.service_accounts,
            calls: &self.calls,
        }
        .serialize(s)
    }
}

#[derive(Serialize)]
struct VerifyApp<'a> {
    app: &'a str,
    namespace: &'a str,
    ok: bool,
    healthy: bool,
    workloads: Vec<Verified<'a>>,
    cluster_facts: &'a ClusterFacts,
    cluster_fact_errors: &'a [Error],
    service_accounts: &'a [ServiceAccountNeeds],
    calls: &'a CallCounts,
}

#[derive(Serialize)]
struct Verified<'a> {
    #[serde(flatten)]
    link: &'a Binding,
    healthy: bool,
    findings: &'a [Finding],
    error: Option<&'a Error>,
}

fn verified(w: &WorkloadVerify) -> Verified<'_> {
    let (findings, error): (&[Finding], _) = match &w.result {
        Ok(report) => (&report.findings, None),
        Err(e) => (&[], Some(e)),
    };
    Verified {
        link: &w.binding,
        healthy: w.is_healthy(),
        findings,
        error,
    }
}

impl Serialize for AppVerifyReport {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        VerifyApp {
            app: self.app.as_str(),
            namespace: self.namespace.as_str(),
            ok: self.is_ok(),
            healthy: self.is_healthy(),
            workloads: self.workloads.iter().map(verified).collect(),
            cluster_facts: &self.cluster_facts,
            cluster_fact_errors: &self.cluster_fact_errors,
            service_accounts: &self.service_accounts,
            calls: &self.calls,
        }
        .serialize(s)
    }
}
