//! One reconcile of an `AppIdentity`: its spec read with porter.yaml's rules, every link checked
//! against the `IdentityPolicy`s (refused ones make no cloud call), then one
//! [`Reconciler`] run over the clouds (and the cluster, with a Kubernetes step), whose previous
//! deploy is what the status records as applied. The result is the object's new status and the
//! events to record on it.

use std::collections::BTreeSet;

use porter_identity_core::{
    Binding, CallCounts, KubernetesStep, ReconcileReport, Reconciler, Severity,
    WorkloadIdentityProvider,
};

use crate::policy::{self, IdentityPolicySpec};
use crate::resource::{
    AppIdentity, AppIdentityStatus, ChangeCounts, Condition, ServiceAccountStatus, ServiceSpec,
};
use crate::spec::{ConnectionAt, indexed_bindings, services_bindings};

/// A Kubernetes Event to record on the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `Normal` or `Warning`.
    pub type_: &'static str,
    /// A CamelCase reason (`LinkCreated`, `PolicyDenied`, …).
    pub reason: &'static str,
    /// What happened, with the fix of an error.
    pub note: String,
    /// The ServiceAccount of the link it is about, if any: the Event's `related` object, so
    /// that the events of two links stay two (the API server's event series are per object).
    pub service_account: Option<String>,
}

/// What one reconcile leaves: the status to write and the events to record.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The object's new status.
    pub status: AppIdentityStatus,
    /// One event per change and per error.
    pub events: Vec<Event>,
    /// The cloud calls the reconcile made, retries included (what the rate limits charge).
    pub calls: CallCounts,
}

impl Outcome {
    /// The `Ready` condition's reason (`Reconciled`, `PolicyDenied`, `CloudError`, …).
    pub fn ready_reason(&self) -> &str {
        self.status
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .map_or("", |c| c.reason.as_str())
    }

    /// Whether every link holds.
    pub fn is_ready(&self) -> bool {
        self.status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    }
}

/// What a reconcile runs on: the providers of the clouds the controller serves, the cluster's
/// step when it runs one, and the cluster's `IdentityPolicy`s.
#[derive(Debug, Clone, Copy)]
pub struct Clouds<'a> {
    /// One provider per cloud.
    pub providers: &'a [&'a dyn WorkloadIdentityProvider],
    /// The Kubernetes step (annotations, labels, restarts), if any.
    pub kubernetes: Option<&'a dyn KubernetesStep>,
    /// The specs of every `IdentityPolicy`.
    pub policies: &'a [IdentityPolicySpec],
    /// Whether to verify the links on the clouds after the run (trust, permissions, least
    /// privilege: the cloud side of `verify`); when `false`, the findings of the last verify
    /// in the status are kept.
    pub verify: bool,
}

/// Reconciles `object` on `clouds`, at `now` (RFC 3339, for the status's times).
///
/// A spec that does not read is `Ready=False` (`InvalidSpec`) with the field and the fix, and
/// nothing is called. A link no policy allows is `Ready=False` (`PolicyDenied`) with the policy
/// to add; the allowed links are reconciled all the same, and the denied one is neither made
/// nor, if it was made before, removed.
pub async fn reconcile(object: &AppIdentity, clouds: Clouds<'_>, now: &str) -> Outcome {
    let mut outcome = reconcile_at(object, clouds, now).await;
    if let Some(previous) = &object.status {
        keep_transition_times(&previous.conditions, &mut outcome.status.conditions);
        // The counts are of the last reconcile that changed something: a resync that changed
        // nothing leaves them (and so the status) as they were.
        let c = outcome.status.counts;
        if c.created == 0 && c.updated == 0 && c.removed == 0 && c.failed == 0 {
            outcome.status.counts = previous.counts;
        }
    }
    outcome
}

/// A condition whose status is what it was keeps the time it last changed: only a change of
/// status is a transition (Kubernetes' API conventions).
fn keep_transition_times(previous: &[Condition], next: &mut [Condition]) {
    for c in next {
        if let Some(p) = previous
            .iter()
            .find(|p| p.type_ == c.type_ && p.status == c.status)
        {
            c.last_transition_time.clone_from(&p.last_transition_time);
        }
    }
}

async fn reconcile_at(object: &AppIdentity, clouds: Clouds<'_>, now: &str) -> Outcome {
    let namespace = object.metadata.namespace.clone().unwrap_or_default();
    let generation = object.metadata.generation;
    let spec = &object.spec;
    let previous_status = object.status.clone().unwrap_or_default();
    let mut events = Vec::new();

    let desired = match indexed_bindings(&spec.app, &spec.services, &namespace, "spec.services") {
        Ok(b) => b,
        Err(e) => {
            let mut outcome = failed(
                &previous_status,
                "InvalidSpec",
                e.to_string(),
                generation,
                now,
            );
            outcome.status.last_reconcile_time = Some(now.to_owned());
            return outcome;
        }
    };
    let mut allowed: Vec<Binding> = Vec::new();
    let mut allowed_at: BTreeSet<ConnectionAt> = BTreeSet::new();
    let mut denied: Vec<(Binding, policy::Denial)> = Vec::new();
    for (at, b) in desired {
        match policy::check(clouds.policies, &b) {
            Ok(()) => {
                allowed.push(b);
                allowed_at.insert(at);
            }
            Err(d) => denied.push((b, d)),
        }
    }
    for (b, d) in &denied {
        events.push(about(warning("PolicyDenied", d.to_string()), b));
    }
    // What the last reconcile applied, less what is denied now (kept as it is: removing a link
    // the policy no longer names is the policy's owner's call, not a side effect).
    let previous: Vec<Binding> = services_bindings(
        &spec.app,
        &previous_status.applied,
        &namespace,
        "status.applied",
    )
    .unwrap_or_default()
    .into_iter()
    .filter(|p| !denied.iter().any(|(d, _)| d.link_key() == p.link_key()))
    .collect();

    if allowed.is_empty() && previous.is_empty() {
        // Nothing to make and nothing made before: no cloud call at all (a spec whose every
        // link is denied asks the clouds nothing).
        let status = status_of(Vec::new(), None, &denied, generation, now);
        return Outcome {
            status,
            events,
            calls: CallCounts::default(),
        };
    }
    let mut reconciler = Reconciler::new(&spec.app, &namespace)
        .desired_bindings(allowed.clone())
        .previous_bindings(previous);
    for p in clouds.providers {
        reconciler = reconciler.provider(*p);
    }
    if let Some(step) = clouds.kubernetes {
        reconciler = reconciler.kubernetes(step);
    }
    let report = match reconciler.run().await {
        Ok(r) => r,
        Err(e) => {
            let mut outcome = failed(
                &previous_status,
                "ReconcileFailed",
                e.to_string(),
                generation,
                now,
            );
            outcome.status.last_reconcile_time = Some(now.to_owned());
            events.append(&mut outcome.events);
            outcome.events = events;
            return outcome;
        }
    };
    events.extend(report_events(&report));
    let mut status = status_of(
        spec_applied(spec, &allowed_at),
        Some(&report),
        &denied,
        generation,
        now,
    );
    let mut calls = report.calls;
    if clouds.verify {
        let mut verifier = Reconciler::new(&spec.app, &namespace).desired_bindings(allowed);
        for p in clouds.providers {
            verifier = verifier.provider(*p);
        }
        match verifier.verify().await {
            Ok(verified) => {
                for w in &verified.workloads {
                    let sa = w.binding.workload.service_account().as_str().to_owned();
                    let findings = &mut account(&mut status.service_accounts, &sa).findings;
                    match &w.result {
                        Ok(r) => {
                            for f in r.findings.iter().filter(|f| f.severity != Severity::Info) {
                                findings.push(format!(
                                    "{} {}: {} (fix: {})",
                                    f.severity.as_str(),
                                    f.code,
                                    f.message,
                                    f.remediation
                                ));
                                if f.severity == Severity::Error {
                                    events.push(about(
                                        warning(
                                            "LinkFinding",
                                            format!(
                                                "{}: {}: {} (fix: {})",
                                                w.binding, f.code, f.message, f.remediation
                                            ),
                                        ),
                                        &w.binding,
                                    ));
                                }
                            }
                        }
                        Err(e) => findings.push(format!("verify could not run: {e}")),
                    }
                }
                calls.merge(&verified.calls);
            }
            Err(e) => {
                for a in &mut status.service_accounts {
                    a.findings.push(format!("verify could not run: {e}"));
                }
            }
        }
        status.last_verify_time = Some(now.to_owned());
    } else if let Some(before) = &object.status {
        for b in &before.service_accounts {
            if !b.findings.is_empty() {
                account(&mut status.service_accounts, &b.name)
                    .findings
                    .clone_from(&b.findings);
            }
        }
        status.last_verify_time.clone_from(&before.last_verify_time);
    }
    apply_findings(&mut status, generation, now);
    Outcome {
        status,
        events,
        calls,
    }
}

/// An error finding of the last verify makes the app not ready: the link exists, but the
/// workload does not get its identity (a trust that does not let it in, say).
fn apply_findings(status: &mut AppIdentityStatus, generation: Option<i64>, now: &str) {
    let Some(first) = status
        .service_accounts
        .iter()
        .flat_map(|a| &a.findings)
        .find(|f| f.starts_with("error "))
        .cloned()
    else {
        return;
    };
    for c in &mut status.conditions {
        let update = match c.type_.as_str() {
            "Ready" | "CloudLinked" => c.status == "True",
            "Degraded" => c.status == "False",
            _ => false,
        };
        if update {
            let degraded = c.type_ == "Degraded";
            *c = condition(&c.type_, degraded, "CloudFindings", &first, generation, now);
        }
    }
}

/// Removes the links `object` made, before it goes (its finalizer): what its status records as
/// applied, and the spec's links the policies allow (a reconcile may have made them and stopped
/// before it wrote the status). Only porter-identity's own links of this app are removed, as a
/// teardown of the SDK does; another app's, or another cluster's, are kept.
///
/// `Ok` with the events of the removals; `Err` with the status to write (`Ready=False`,
/// `TeardownFailed`, naming what could not be removed and why) when any removal failed: the
/// object then keeps its finalizer and the teardown is retried.
pub async fn teardown(
    object: &AppIdentity,
    clouds: Clouds<'_>,
    now: &str,
) -> Result<Outcome, Outcome> {
    let namespace = object.metadata.namespace.clone().unwrap_or_default();
    let generation = object.metadata.generation;
    let spec = &object.spec;
    let previous_status = object.status.clone().unwrap_or_default();
    let mut made: Vec<Binding> = services_bindings(
        &spec.app,
        &previous_status.applied,
        &namespace,
        "status.applied",
    )
    .unwrap_or_default();
    // A spec that does not read made nothing: only what the status records goes.
    for b in spec.bindings(&namespace).unwrap_or_default() {
        if policy::check(clouds.policies, &b).is_ok()
            && !made.iter().any(|m| m.link_key() == b.link_key())
        {
            made.push(b);
        }
    }
    if made.is_empty() {
        return Ok(Outcome {
            status: previous_status,
            events: Vec::new(),
            calls: CallCounts::default(),
        });
    }
    let mut reconciler = Reconciler::teardown(&spec.app, &namespace).previous_bindings(made);
    for p in clouds.providers {
        reconciler = reconciler.provider(*p);
    }
    if let Some(step) = clouds.kubernetes {
        reconciler = reconciler.kubernetes(step);
    }
    let failed = |message: String, calls: CallCounts| {
        let mut outcome = failed(&previous_status, "TeardownFailed", message, generation, now);
        keep_transition_times(&previous_status.conditions, &mut outcome.status.conditions);
        outcome.calls = calls;
        outcome
    };
    let report = match reconciler.run().await {
        Ok(r) => r,
        Err(e) => return Err(failed(e.to_string(), CallCounts::default())),
    };
    let errors: Vec<String> = report
        .errors()
        .map(|(b, e)| b.map_or_else(|| e.to_string(), |b| format!("{b}: {e}")))
        .collect();
    if !errors.is_empty() {
        let mut outcome = failed(
            format!(
                "the links stay until they can be removed, and the object with them: {}",
                errors.join("; ")
            ),
            report.calls.clone(),
        );
        outcome.events.extend(report_events(&report));
        return Err(outcome);
    }
    Ok(Outcome {
        status: previous_status,
        events: report_events(&report),
        calls: report.calls,
    })
}

/// The services of `spec` with only the connections at `allowed`: what this reconcile applied,
/// the next one's previous deploy.
fn spec_applied(
    spec: &crate::AppIdentitySpec,
    allowed: &BTreeSet<ConnectionAt>,
) -> Vec<ServiceSpec> {
    spec.services
        .iter()
        .enumerate()
        .map(|(i, s)| ServiceSpec {
            connections: s
                .connections
                .iter()
                .enumerate()
                .filter(|(j, _)| allowed.contains(&(i, *j)))
                .map(|(_, c)| c.clone())
                .collect(),
            ..s.clone()
        })
        .filter(|s| !s.connections.is_empty())
        .collect()
}

fn status_of(
    applied: Vec<ServiceSpec>,
    report: Option<&ReconcileReport>,
    denied: &[(Binding, policy::Denial)],
    generation: Option<i64>,
    now: &str,
) -> AppIdentityStatus {
    let counts = report.map(ReconcileReport::counts).unwrap_or_default();
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let mut accounts: Vec<ServiceAccountStatus> = Vec::new();
    for w in report.iter().flat_map(|r| &r.workloads) {
        let a = account(&mut accounts, w.binding.workload.service_account().as_str());
        match &w.result {
            Ok(_) => a.linked.push(w.binding.connection.describe()),
            Err(e) => a
                .missing
                .push(format!("{}: {e}", w.binding.connection.describe())),
        }
    }
    for (b, d) in denied {
        account(&mut accounts, b.workload.service_account().as_str())
            .missing
            .push(format!("{}: {d}", b.connection.describe()));
    }
    let cloud_errors: Vec<String> = report
        .iter()
        .flat_map(|r| r.errors())
        .map(|(_, e)| e.to_string())
        .collect();
    let cluster_errors: Vec<String> = report
        .iter()
        .flat_map(|r| &r.service_accounts)
        .filter_map(|sa| sa.cluster.as_ref())
        .flat_map(|c| {
            c.findings
                .iter()
                .filter(|f| f.severity == Severity::Error)
                .map(|f| format!("{}: {} (fix: {})", f.code, f.message, f.remediation))
        })
        .collect();
    let cloud_ok = cloud_errors.is_empty();
    let cluster_ok = cluster_errors.is_empty();
    let denials: Vec<String> = denied.iter().map(|(_, d)| d.to_string()).collect();
    let ready = cloud_ok && cluster_ok && denials.is_empty();
    let first = |list: &[String], ok: &str| list.first().cloned().unwrap_or_else(|| ok.to_owned());
    let reason_ready = if !denials.is_empty() {
        "PolicyDenied"
    } else if !cloud_ok {
        "CloudError"
    } else if !cluster_ok {
        "ClusterNotReady"
    } else {
        "Reconciled"
    };
    let ready_message = if ready {
        let linked: usize = accounts.iter().map(|a| a.linked.len()).sum();
        format!(
            "every link holds: {linked} link{}",
            if linked == 1 { "" } else { "s" }
        )
    } else {
        first(
            &[
                denials.clone(),
                cloud_errors.clone(),
                cluster_errors.clone(),
            ]
            .concat(),
            "",
        )
    };
    AppIdentityStatus {
        observed_generation: generation,
        conditions: vec![
            condition(
                "Ready",
                ready,
                reason_ready,
                &ready_message,
                generation,
                now,
            ),
            condition(
                "CloudLinked",
                cloud_ok,
                if cloud_ok { "Linked" } else { "CloudError" },
                &first(&cloud_errors, "every cloud link is made"),
                generation,
                now,
            ),
            condition(
                "ClusterReady",
                cluster_ok,
                if cluster_ok {
                    "Ready"
                } else {
                    "ClusterFindings"
                },
                &first(
                    &cluster_errors,
                    "the cluster side holds what the links need",
                ),
                generation,
                now,
            ),
            condition(
                "Degraded",
                !cloud_ok,
                if cloud_ok { "Healthy" } else { "CloudError" },
                &first(&cloud_errors, "no error"),
                generation,
                now,
            ),
        ],
        service_accounts: accounts,
        applied,
        counts: ChangeCounts {
            created: count(counts.created),
            updated: count(counts.updated),
            unchanged: count(counts.unchanged),
            removed: count(counts.removed),
            kept: count(counts.kept),
            failed: count(counts.failed),
        },
        last_reconcile_time: Some(now.to_owned()),
        last_verify_time: None,
    }
}

/// The status of ServiceAccount `name` in `accounts`, added when absent.
fn account<'s>(
    accounts: &'s mut Vec<ServiceAccountStatus>,
    name: &str,
) -> &'s mut ServiceAccountStatus {
    let i = match accounts.iter().position(|a| a.name == name) {
        Some(i) => i,
        None => {
            accounts.push(ServiceAccountStatus {
                name: name.to_owned(),
                ..ServiceAccountStatus::default()
            });
            accounts.len() - 1
        }
    };
    &mut accounts[i]
}

/// One event per change of the report and per error.
fn report_events(report: &ReconcileReport) -> Vec<Event> {
    use porter_identity_core::BindChange;
    let mut events = Vec::new();
    for w in &report.workloads {
        match &w.result {
            Ok(c) if c.change == BindChange::Created => {
                events.push(about(
                    normal("LinkCreated", w.binding.to_string()),
                    &w.binding,
                ));
            }
            Ok(c) if matches!(c.change, BindChange::Updated { .. }) => {
                events.push(about(
                    normal("LinkUpdated", w.binding.to_string()),
                    &w.binding,
                ));
            }
            Ok(_) => {}
            Err(e) => events.push(about(
                warning("LinkFailed", format!("{}: {e}", w.binding)),
                &w.binding,
            )),
        }
    }
    for r in &report.removed {
        match &r.error {
            None => events.push(about(
                normal("LinkRemoved", r.binding.to_string()),
                &r.binding,
            )),
            Some(e) => events.push(about(
                warning("LinkRemovalFailed", format!("{}: {e}", r.binding)),
                &r.binding,
            )),
        }
    }
    events
}

fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: &str,
) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: if status { "True" } else { "False" }.to_owned(),
        reason: reason.to_owned(),
        message: message.to_owned(),
        last_transition_time: Some(now.to_owned()),
        observed_generation: generation,
    }
}

/// A reconcile or teardown that could not run: the previous status with `Ready=False` and
/// `Degraded=True` for `reason`, and one Warning Event saying why.
fn failed(
    previous: &AppIdentityStatus,
    reason: &'static str,
    message: String,
    generation: Option<i64>,
    now: &str,
) -> Outcome {
    let mut status = previous.clone();
    status.observed_generation = generation;
    status.conditions = vec![
        condition("Ready", false, reason, &message, generation, now),
        condition("Degraded", true, reason, &message, generation, now),
    ];
    Outcome {
        status,
        events: vec![warning(reason, message)],
        calls: CallCounts::default(),
    }
}

/// `event`, about the ServiceAccount of `binding`.
fn about(mut event: Event, binding: &Binding) -> Event {
    event.service_account = Some(binding.workload.service_account().as_str().to_owned());
    event
}

fn normal(reason: &'static str, note: String) -> Event {
    Event {
        type_: "Normal",
        reason,
        note,
        service_account: None,
    }
}

fn warning(reason: &'static str, note: String) -> Event {
    Event {
        type_: "Warning",
        reason,
        note,
        service_account: None,
    }
}
