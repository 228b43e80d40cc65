//! IRSA → EKS Pod Identity: for a ServiceAccount annotated for IRSA
//! (`eks.amazonaws.com/role-arn`), create the Pod Identity association for the same role,
//! check that the role's trust policy lets `pods.eks.amazonaws.com` assume it (and give the
//! statement to add if not), then — only when asked — remove the IRSA annotation, which wins
//! over the association for as long as it is there, and say which workloads to restart.
//!
//! The annotation is never removed while the trust policy would refuse Pod Identity: the pods
//! would lose their credentials.

use std::fmt;

use porter_identity_core::provider::ensure_cloud;
use porter_identity_core::{
    Binding, Cloud, Connection, Error, Finding, Result, RoleRef, Severity, WorkloadIdentityProvider,
};

use crate::Cluster;
use crate::diagnose::IRSA_ANNOTATION;
use crate::workloads::{PodWorkload, running_as};

/// What a migration may do.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct MigrateOptions {
    /// Only say what would be done (the plan): nothing is written.
    pub dry_run: bool,
    /// Remove the IRSA annotation once the association exists and the trust policy allows Pod
    /// Identity. Off: the annotation is kept and the report says how to remove it.
    pub remove_annotation: bool,
}

impl MigrateOptions {
    /// [`dry_run`](Self::dry_run) set to `yes`.
    #[must_use]
    pub fn dry_run(mut self, yes: bool) -> Self {
        self.dry_run = yes;
        self
    }

    /// [`remove_annotation`](Self::remove_annotation) set to `yes`.
    #[must_use]
    pub fn remove_annotation(mut self, yes: bool) -> Self {
        self.remove_annotation = yes;
        self
    }
}

/// The migration of one ServiceAccount.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct IrsaMigration {
    /// The binding migrated (its workload, and the role of the IRSA annotation).
    pub binding: Binding,
    /// The association: created, unchanged, or what would be done.
    pub association: String,
    /// The trust policy's findings that keep Pod Identity from assuming the role, each with
    /// the statement to add. Empty: the trust policy allows it.
    pub trust: Vec<Finding>,
    /// Whether the IRSA annotation was removed (or would be).
    pub annotation_removed: bool,
    /// The workloads whose pods run as the ServiceAccount: they switch to Pod Identity when
    /// restarted after the annotation is gone.
    pub restart: Vec<PodWorkload>,
    /// What is left to do, in words.
    pub notes: Vec<String>,
}

impl fmt::Display for IrsaMigration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = &self.binding.workload;
        writeln!(
            f,
            "ServiceAccount {}/{} ({})",
            w.namespace(),
            w.service_account(),
            self.binding.connection.describe()
        )?;
        writeln!(f, "  association: {}", self.association)?;
        if self.trust.is_empty() {
            writeln!(f, "  trust policy: allows pods.eks.amazonaws.com")?;
        }
        for finding in &self.trust {
            writeln!(f, "  trust policy: {finding}")?;
        }
        writeln!(
            f,
            "  IRSA annotation: {}",
            if self.annotation_removed {
                "removed"
            } else {
                "kept"
            }
        )?;
        for r in &self.restart {
            writeln!(f, "  restart: {r}")?;
        }
        for note in &self.notes {
            writeln!(f, "  note: {note}")?;
        }
        Ok(())
    }
}

/// Migrates the ServiceAccounts of `bindings` (AWS bindings) that are annotated for IRSA;
/// the others are left alone and not listed. `provider` is the AWS provider.
///
/// # Errors
/// A binding of another cloud (nothing is done), or a call that failed (the migrations before
/// it are done).
pub async fn migrate_irsa(
    cluster: &Cluster,
    provider: &dyn WorkloadIdentityProvider,
    bindings: &[Binding],
    options: MigrateOptions,
) -> Result<Vec<IrsaMigration>> {
    for b in bindings {
        ensure_cloud(Cloud::Aws, b)?;
    }
    let mut out = Vec::new();
    for b in bindings {
        let ns = b.workload.namespace().as_str();
        let sa = b.workload.service_account().as_str();
        let Some(account) = cluster.service_account(ns, sa).await? else {
            continue;
        };
        let Some(irsa_role) = account
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(IRSA_ANNOTATION))
            .cloned()
        else {
            continue;
        };
        let role = RoleRef::parse(&irsa_role).map_err(|e| {
            Error::invalid_input(
                format!("annotation {IRSA_ANNOTATION} of ServiceAccount {ns}/{sa}"),
                e.to_string(),
                "give it the role's ARN, or remove it",
            )
        })?;
        let mut notes = Vec::new();
        if b.connection.describe() != format!("awsRole {role}") {
            notes.push(format!(
                "the porter.yaml names {}, IRSA used {irsa_role}: the association is made for the IRSA role, so that nothing changes for the pods; the next deploy points it at the porter.yaml's",
                b.connection.describe()
            ));
        }
        let binding = Binding::new(b.workload.clone(), Connection::aws_role(role));
        let made = if options.dry_run {
            provider.plan(&binding).await.map(|plan| plan.description)
        } else {
            provider
                .bind(&binding)
                .await
                .map(|outcome| outcome.to_string())
        };
        let trust: Vec<Finding> = provider
            .verify(&binding)
            .await?
            .findings
            .into_iter()
            .filter(|f| f.code.starts_with("aws.trust_policy.") && f.severity == Severity::Error)
            .collect();
        // The provider refuses an association its role's trust policy would not honour: that
        // is this migration's finding (with the statement to add), not a failure of the others.
        let association = match made {
            Ok(done) => done,
            Err(e) if !trust.is_empty() => format!("not created: {}", e.problem()),
            Err(e) => return Err(e),
        };
        let workloads = cluster.workloads(ns).await?;
        let restart: Vec<PodWorkload> = running_as(&workloads, ns, sa)
            .into_iter()
            .cloned()
            .collect();
        let mut annotation_removed = false;
        if !trust.is_empty() {
            notes.push("the IRSA annotation is kept: with it gone, Pod Identity could not assume the role; add the statement above to its trust policy, then run again".into());
        } else if options.remove_annotation {
            if !options.dry_run {
                cluster
                    .remove_service_account_annotation(ns, sa, IRSA_ANNOTATION)
                    .await?;
            }
            annotation_removed = true;
            notes.push("restart the workloads above: their pods read IRSA's token until they are recreated".into());
        } else {
            notes.push(format!(
                "the IRSA annotation still wins over the association: remove it when ready (again with --remove-annotation, or `kubectl annotate serviceaccount -n {ns} {sa} {IRSA_ANNOTATION}-`), then restart the workloads above"
            ));
        }
        out.push(IrsaMigration {
            binding,
            association,
            trust,
            annotation_removed,
            restart: if annotation_removed {
                restart
            } else {
                Vec::new()
            },
            notes,
        });
    }
    Ok(out)
}
