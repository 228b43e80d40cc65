//! What the tool prints: tables for people, stable JSON for scripts.
//!
//! Every JSON output is a typed `Serialize` struct: `plan` and `apply` print the library's
//! `ReconcileReport`, `verify` its `AppVerifyReport` (both documented in porter-identity-core's
//! README); the other commands' structs are here, and use the library's own shapes of a link
//! (`Binding`), an error, a finding and a restart. The CLI README documents each command's
//! shape; `tests/cli_json.rs` holds a snapshot of each.

use std::fmt::Write as _;

use porter_identity::{BindOutcome, Binding, Error, UnbindOutcome};
use serde::Serialize;

use crate::Failure;
use crate::cli::Common;

fn pretty(v: &impl serde::Serialize) -> Result<String, Failure> {
    serde_json::to_string_pretty(v).map_err(|e| Failure::Input(format!("JSON output: {e}")))
}

/// A report (`ReconcileReport`, `AppVerifyReport`) as its stable JSON.
pub(crate) fn to_json(report: &impl serde::Serialize) -> Result<String, Failure> {
    pretty(report)
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
}

/// `bind -o json` and `unbind -o json`.
#[derive(Serialize)]
struct Outcomes<'a> {
    command: &'static str,
    app: &'a str,
    namespace: &'a str,
    ok: bool,
    results: Vec<OutcomeRow<'a>>,
}

/// One binding of `bind` or `unbind`: the link, what was done (`null` fields when it failed),
/// the link's `resource_id`, and the `error`.
#[derive(Serialize)]
struct OutcomeRow<'a> {
    #[serde(flatten)]
    link: &'a Binding,
    #[serde(flatten)]
    done: Done<'a>,
    resource_id: Option<&'a str>,
    error: Option<&'a Error>,
}

/// What `bind` did (`change`: `created`, `updated`, `unchanged`; `previous`) or `unbind` did
/// (`removal`: `deleted`, `already_absent`).
#[derive(Serialize)]
#[serde(untagged)]
enum Done<'a> {
    Bind {
        change: Option<&'static str>,
        previous: Option<&'a str>,
    },
    Unbind {
        removal: Option<&'static str>,
    },
}

fn outcome_row<'a>(bind: bool, b: &'a Binding, r: &'a Result<Outcome, Error>) -> OutcomeRow<'a> {
    let (done, resource_id, error) = match r {
        Ok(Outcome::Bind(o)) => (
            Done::Bind {
                change: Some(o.change.as_str()),
                previous: o.change.previous(),
            },
            Some(o.resource_id.as_str()),
            None,
        ),
        Ok(Outcome::Unbind(o)) => (
            Done::Unbind {
                removal: Some(o.as_str()),
            },
            o.resource_id(),
            None,
        ),
        Err(e) if bind => (
            Done::Bind {
                change: None,
                previous: None,
            },
            None,
            Some(e),
        ),
        Err(e) => (Done::Unbind { removal: None }, None, Some(e)),
    };
    OutcomeRow {
        link: b,
        done,
        resource_id,
        error,
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
    bind: bool,
    common: &Common,
    rows: &[(Binding, Result<Outcome, Error>)],
) -> Result<String, Failure> {
    pretty(&Outcomes {
        command: if bind { "bind" } else { "unbind" },
        app: common.app(),
        namespace: &common.namespace,
        ok: rows.iter().all(|(_, r)| r.is_ok()),
        results: rows.iter().map(|(b, r)| outcome_row(bind, b, r)).collect(),
    })
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
    #[derive(Serialize)]
    struct Restarts {
        dry_run: bool,
        restarted: Vec<porter_identity::WorkloadRestart>,
    }
    pretty(&Restarts {
        dry_run,
        restarted: restarts
            .iter()
            .map(porter_identity::kube::step::Restart::to_workload_restart)
            .collect(),
    })
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

/// `migrate-irsa -o json`: `{"dry_run", "migrations": [{link…, "association",
/// "trust_findings", "annotation_removed", "restart", "notes"}]}`.
#[cfg(all(feature = "aws", feature = "kube"))]
pub(crate) fn migrations_json(
    done: &[porter_identity::kube::migrate::IrsaMigration],
    dry_run: bool,
) -> Result<String, Failure> {
    #[derive(Serialize)]
    struct Migrations<'a> {
        dry_run: bool,
        migrations: Vec<Migration<'a>>,
    }
    #[derive(Serialize)]
    struct Migration<'a> {
        #[serde(flatten)]
        link: &'a Binding,
        association: &'a str,
        trust_findings: &'a [porter_identity::Finding],
        annotation_removed: bool,
        restart: Vec<String>,
        notes: &'a [String],
    }
    pretty(&Migrations {
        dry_run,
        migrations: done
            .iter()
            .map(|m| Migration {
                link: &m.binding,
                association: &m.association,
                trust_findings: &m.trust,
                annotation_removed: m.annotation_removed,
                restart: m.restart.iter().map(ToString::to_string).collect(),
                notes: &m.notes,
            })
            .collect(),
    })
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

/// `gke-enable-workload-identity -o json`: `{"pool", "nodes", "pods_at_risk": [{"namespace",
/// "pod", "service_account", "node"}], "changed", "operation"}`.
#[cfg(all(feature = "gcp", feature = "kube"))]
pub(crate) fn gke_json(
    pool: &str,
    nodes: usize,
    at_risk: &[porter_identity::kube::preflight::PodAtRisk],
    change: Option<&porter_identity::gcp::NodePoolChange>,
) -> Result<String, Failure> {
    #[derive(Serialize)]
    struct GkeEnable<'a> {
        pool: &'a str,
        nodes: usize,
        pods_at_risk: Vec<Pod<'a>>,
        changed: bool,
        operation: Option<&'a str>,
    }
    #[derive(Serialize)]
    struct Pod<'a> {
        namespace: &'a str,
        pod: &'a str,
        service_account: &'a str,
        node: &'a str,
    }
    pretty(&GkeEnable {
        pool,
        nodes,
        pods_at_risk: at_risk
            .iter()
            .map(|p| Pod {
                namespace: &p.namespace,
                pod: &p.pod,
                service_account: &p.service_account,
                node: &p.node,
            })
            .collect(),
        changed: change.is_some_and(|c| c.operation.is_some()),
        operation: change.and_then(|c| c.operation.as_deref()),
    })
}
