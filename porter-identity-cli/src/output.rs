//! What the tool prints: tables for people, stable JSON for scripts.
//!
//! The JSON of `plan` and `apply` is the `ReconcileReport`'s (documented in
//! porter-identity-core's README); `bind`, `unbind` and `verify` print one object per binding
//! with the same link fields (`cloud`, `namespace`, `service_account`, `app`, `service`,
//! `connection`) and errors of the same shape.

use std::fmt::Write as _;

use porter_identity::{BindOutcome, Binding, Error, ReconcileReport, UnbindOutcome, VerifyReport};
use serde_json::{Value, json};

use crate::Failure;
use crate::cli::Common;

fn pretty(v: &impl serde::Serialize) -> Result<String, Failure> {
    serde_json::to_string_pretty(v).map_err(|e| Failure::Input(format!("JSON output: {e}")))
}

/// The report as stable JSON.
pub(crate) fn to_json(report: &ReconcileReport) -> Result<String, Failure> {
    pretty(report)
}

fn link(b: &Binding) -> Value {
    json!({
        "cloud": b.connection.cloud().map(|c| c.as_str()),
        "namespace": b.workload.namespace().as_str(),
        "service_account": b.workload.service_account().as_str(),
        "app": b.workload.app().as_str(),
        "service": b.workload.service().as_str(),
        "connection": serde_json::to_value(&b.connection).unwrap_or(Value::Null),
    })
}

fn error(e: &Error) -> Value {
    json!({
        "kind": e.kind().as_str(),
        "cloud": e.cloud_name().map(|c| c.as_str()),
        "operation": e.operation(),
        "message": e.problem(),
        "fix": e.fix(),
        "retryable": e.is_retryable(),
    })
}

fn with(mut base: Value, extra: Value) -> Value {
    if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    base
}

fn cloud_of(b: &Binding) -> &'static str {
    b.connection.cloud().map_or("-", |c| c.as_str())
}

/// What `bind` or `unbind` did to one binding.
#[derive(Debug)]
pub(crate) enum Outcome {
    Bind(BindOutcome),
    Unbind(UnbindOutcome),
}

impl Outcome {
    fn text(&self) -> String {
        match self {
            Outcome::Bind(o) => o.to_string(),
            Outcome::Unbind(o) => o.to_string(),
        }
    }

    /// `change` (`created`, `updated`, `unchanged`) or `removal` (`deleted`, `already_absent`),
    /// with the link's `resource_id`.
    fn json(&self) -> Value {
        match self {
            Outcome::Bind(o) => json!({
                "change": o.change.as_str(),
                "previous": o.change.previous(),
                "resource_id": o.resource_id
            }),
            Outcome::Unbind(o) => json!({"removal": o.as_str(), "resource_id": o.resource_id()}),
        }
    }
}

/// `bind` and `unbind`: one line per binding.
pub(crate) fn outcome_table(rows: &[(Binding, Result<Outcome, Error>)]) -> String {
    let mut out = String::new();
    for (b, r) in rows {
        let what = match r {
            Ok(outcome) => outcome.text(),
            Err(e) => format!("FAILED: {e}"),
        };
        let _ = writeln!(
            out,
            "{:<5} {:<32} {:<60} {what}",
            cloud_of(b),
            b.workload.to_string(),
            b.connection.describe()
        );
    }
    let failed = rows.iter().filter(|(_, r)| r.is_err()).count();
    let _ = writeln!(out, "{} bindings, {failed} failed", rows.len());
    out
}

/// `bind` and `unbind` as JSON.
pub(crate) fn outcomes_json(
    command: &str,
    common: &Common,
    rows: &[(Binding, Result<Outcome, Error>)],
) -> Result<String, Failure> {
    let results: Vec<Value> = rows
        .iter()
        .map(|(b, r)| {
            let result = match r {
                Ok(outcome) => with(outcome.json(), json!({"error": null})),
                Err(e) => json!({"resource_id": null, "error": error(e)}),
            };
            with(link(b), result)
        })
        .collect();
    pretty(&json!({
        "command": command,
        "app": common.app(),
        "namespace": common.namespace,
        "ok": rows.iter().all(|(_, r)| r.is_ok()),
        "results": results,
    }))
}

/// `verify`: each binding's findings.
pub(crate) fn verify_text(rows: &[(Binding, Result<VerifyReport, Error>)]) -> String {
    let mut out = String::new();
    for (b, r) in rows {
        match r {
            Ok(report) => {
                let text = report.to_string().replace('\n', "\n    ");
                let _ = writeln!(out, "{:<5} {}: {text}", cloud_of(b), b.workload);
            }
            Err(e) => {
                let _ = writeln!(out, "{:<5} {}: FAILED: {e}", cloud_of(b), b.workload);
            }
        }
    }
    let unhealthy = rows
        .iter()
        .filter(|(_, r)| !r.as_ref().is_ok_and(VerifyReport::is_healthy))
        .count();
    let _ = writeln!(
        out,
        "{} bindings verified, {unhealthy} with errors",
        rows.len()
    );
    out
}

/// `verify` as JSON.
pub(crate) fn verify_json(
    common: &Common,
    rows: &[(Binding, Result<VerifyReport, Error>)],
) -> Result<String, Failure> {
    let results: Vec<Value> = rows
        .iter()
        .map(|(b, r)| {
            with(
                link(b),
                match r {
                    Ok(report) => json!({
                        "healthy": report.is_healthy(),
                        "findings": report.findings.iter().map(|f| json!({
                            "severity": f.severity.to_string(),
                            "code": f.code,
                            "message": f.message,
                            "remediation": f.remediation,
                        })).collect::<Vec<_>>(),
                        "error": null,
                    }),
                    Err(e) => json!({"healthy": false, "findings": [], "error": error(e)}),
                },
            )
        })
        .collect();
    pretty(&json!({
        "command": "verify",
        "app": common.app(),
        "namespace": common.namespace,
        "healthy": rows.iter().all(|(_, r)| r.as_ref().is_ok_and(VerifyReport::is_healthy)),
        "results": results,
    }))
}

/// `restart`: one line per workload restarted (or that would be).
#[cfg(feature = "kube")]
pub(crate) fn restarts_text(
    restarts: &[porter_identity::kube::step::Restart],
    dry_run: bool,
) -> String {
    if restarts.is_empty() {
        return "nothing to restart: no pod started before its links last changed\n".to_owned();
    }
    let verb = if dry_run {
        "would restart"
    } else {
        "restarted"
    };
    restarts.iter().map(|r| format!("{verb} {r}\n")).collect()
}

/// `restart -o json`: `{"dry_run", "restarted": [{"kind", "namespace", "name", "pods"}]}`.
#[cfg(feature = "kube")]
pub(crate) fn restarts_json(
    restarts: &[porter_identity::kube::step::Restart],
    dry_run: bool,
) -> Result<String, Failure> {
    let list: Vec<Value> = restarts
        .iter()
        .map(|r| {
            json!({
                "kind": r.workload.kind.as_str(),
                "namespace": r.workload.namespace,
                "name": r.workload.name,
                "pods": r.pods,
            })
        })
        .collect();
    pretty(&json!({"dry_run": dry_run, "restarted": list}))
}

/// `migrate-irsa`: each ServiceAccount's migration.
#[cfg(all(feature = "aws", feature = "kube"))]
pub(crate) fn migrations_text(
    done: &[porter_identity::kube::migrate::IrsaMigration],
    dry_run: bool,
) -> String {
    if done.is_empty() {
        return "no ServiceAccount of the app is annotated for IRSA: nothing to migrate\n"
            .to_owned();
    }
    let mut out = String::new();
    if dry_run {
        out.push_str("migration plan (dry run, nothing written):\n");
    }
    for m in done {
        let _ = write!(out, "{m}");
    }
    out
}

/// `migrate-irsa -o json`.
#[cfg(all(feature = "aws", feature = "kube"))]
pub(crate) fn migrations_json(
    done: &[porter_identity::kube::migrate::IrsaMigration],
    dry_run: bool,
) -> Result<String, Failure> {
    let list: Vec<Value> = done
        .iter()
        .map(|m| {
            with(
                link(&m.binding),
                json!({
                    "association": m.association,
                    "trust_findings": m.trust.iter().map(|f| json!({"code": f.code, "message": f.message, "remediation": f.remediation})).collect::<Vec<_>>(),
                    "annotation_removed": m.annotation_removed,
                    "restart": m.restart.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "notes": m.notes,
                }),
            )
        })
        .collect();
    pretty(&json!({"dry_run": dry_run, "migrations": list}))
}

/// `gke-enable-workload-identity`: the preflight.
#[cfg(all(feature = "gcp", feature = "kube"))]
pub(crate) fn gke_preflight_text(pool: &str, nodes: usize, at_risk: &[String]) -> String {
    let mut out = format!("preflight of node pool {pool} ({nodes} node(s) in the cluster): ");
    if at_risk.is_empty() {
        out.push_str("clean, no pod would lose the node's service account\n");
    } else {
        let _ = writeln!(
            out,
            "{} pod(s) would lose the node's service account:",
            at_risk.len()
        );
        for p in at_risk {
            let _ = writeln!(out, "  {p}");
        }
    }
    out
}

/// `gke-enable-workload-identity`: the change (`None`: a dry run).
#[cfg(all(feature = "gcp", feature = "kube"))]
pub(crate) fn gke_change_text(change: Option<&porter_identity::gcp::NodePoolChange>) -> String {
    match change {
        Some(change) => format!("{change}\n"),
        None => "dry run: the node pool was not changed\n".to_owned(),
    }
}

/// `gke-enable-workload-identity -o json`.
#[cfg(all(feature = "gcp", feature = "kube"))]
pub(crate) fn gke_json(
    pool: &str,
    nodes: usize,
    at_risk: &[String],
    change: Option<&porter_identity::gcp::NodePoolChange>,
) -> Result<String, Failure> {
    pretty(&json!({
        "pool": pool,
        "nodes": nodes,
        "pods_at_risk": at_risk,
        "changed": change.is_some_and(|c| c.operation.is_some()),
        "operation": change.and_then(|c| c.operation.as_deref()),
    }))
}
