//! `verify` of the GCP provider: the cluster (its workload pool and every node pool's metadata
//! mode), the service account (exists, enabled, its project, its user-managed keys), the
//! workload's member in its IAM policy, and the least-privilege lint of its project-level roles
//! and of who can act as it.

use porter_identity_core::{Binding, ErrorKind, Finding, Result, RunContext, VerifyReport};

use crate::api::MetadataMode;
use crate::names::{enable_gke_metadata_command, member, project_of_pool};
use crate::operation as op;
use crate::policy::{MemberState, member_state};
use crate::provider::{ClusterRead, GcpWorkloadIdentityProvider, PoolSource};
use crate::{codes, lint};

impl GcpWorkloadIdentityProvider {
    /// The whole diagnosis of one binding, read afresh.
    pub(crate) async fn verify_binding(
        &self,
        run: &RunContext,
        binding: &Binding,
    ) -> Result<VerifyReport> {
        let email = Self::email_of(binding)?;
        let mut report = VerifyReport::default();
        // The annotation the ServiceAccount must carry follows from the binding alone.
        report.service_account_patch = Self::patch(email, false);
        let Some(pool) = self.verify_cluster(run, &mut report).await? else {
            return Ok(report);
        };
        if let Some(project) = project_of_pool(&pool)
            && project != email.project_id()
        {
            report.push(Finding::info(
                codes::SERVICE_ACCOUNT_OTHER_PROJECT,
                format!(
                    "service account {email} lives in project {}, the cluster's workload pool in project {project}: supported by GKE",
                    email.project_id()
                ),
            ));
        }
        let account = match self.read_service_account(run, email).await {
            Ok(sa) => sa,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                report.push(Finding::from_error(codes::SERVICE_ACCOUNT_NOT_FOUND, &e));
                return Ok(report);
            }
            Err(e) => return Err(e),
        };
        if account.disabled {
            report.push(Finding::from_error(
                codes::SERVICE_ACCOUNT_DISABLED,
                &Self::disabled(email),
            ));
        }
        let policy = self.read_policy(run, email).await?;
        let wanted = member(
            &pool,
            binding.workload.namespace(),
            binding.workload.service_account(),
        );
        match member_state(&policy, &wanted) {
            MemberState::Bound => {}
            state => {
                if state == MemberState::OnlyConditional {
                    report.push(Finding::info(
                        codes::BINDING_CONDITIONAL_ONLY,
                        format!(
                            "{wanted} holds roles/iam.workloadIdentityUser on {email} only under a condition: Workload Identity works only while it holds"
                        ),
                    ));
                }
                report.push(Finding::error(
                    codes::BINDING_MISSING,
                    format!(
                        "{wanted} is not in an unconditional roles/iam.workloadIdentityUser binding of {email}: pods of {} cannot act as it",
                        binding.workload
                    ),
                    format!(
                        "run bind (porter-identity), or `gcloud iam service-accounts add-iam-policy-binding {email} --role=roles/iam.workloadIdentityUser --member=\"{wanted}\"`"
                    ),
                ));
            }
        }
        if let Some(finding) = lint::lint_shared_identity(email.as_str(), &policy) {
            report.push(finding);
        }
        self.verify_keys(run, email, &mut report).await?;
        self.lint_project(run, email, &mut report).await?;
        Ok(report)
    }

    /// The cluster's part: its workload pool, or why there is none; a warning per node pool
    /// not in `GKE_METADATA` mode.
    async fn verify_cluster(
        &self,
        run: &RunContext,
        report: &mut VerifyReport,
    ) -> Result<Option<String>> {
        let cluster = match &self.source {
            PoolSource::Explicit(pool) => {
                report.push(Finding::info(
                    codes::POOL_EXPLICIT,
                    format!(
                        "workload pool {pool} was given explicitly: the cluster and its node pools were not checked"
                    ),
                ));
                return Ok(Some(pool.clone()));
            }
            PoolSource::Gke(cluster) => cluster,
        };
        let found = match self.read_cluster(run, cluster).await {
            Ok(found) => found,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                report.push(Finding::from_error(codes::CLUSTER_NOT_FOUND, &e));
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        // The cluster facts of the same run (its node pools, for the Kubernetes side) take
        // this read instead of making their own.
        run.share(ClusterRead(cluster.clone()), found.clone());
        let Some(pool) = found.workload_pool else {
            report.push(Finding::from_error(
                codes::WORKLOAD_IDENTITY_DISABLED,
                &Self::workload_identity_off(cluster),
            ));
            return Ok(None);
        };
        for np in found
            .node_pools
            .iter()
            .filter(|np| np.metadata_mode != MetadataMode::GkeMetadata)
        {
            report.push(Finding::warning(
                codes::NODE_POOL_GCE_METADATA,
                format!(
                    "node pool {} of GKE cluster {cluster} is in {} mode: its pods get the node's service account, not their Workload Identity",
                    np.name,
                    np.metadata_mode.as_str()
                ),
                format!(
                    "{} — this recreates the pool's nodes (their pods are rescheduled), and pods there that relied on the node's service account lose it",
                    enable_gke_metadata_command(cluster, &np.name)
                ),
            ));
        }
        Ok(Some(pool))
    }

    /// User-managed keys: static credentials that defeat the point of Workload Identity.
    async fn verify_keys(
        &self,
        run: &RunContext,
        email: &porter_identity_core::GcpServiceAccountEmail,
        report: &mut VerifyReport,
    ) -> Result<()> {
        let keys = match self
            .calls
            .run(run, op::SERVICE_ACCOUNTS_KEYS_LIST, || {
                self.api.list_user_managed_keys(email.as_str())
            })
            .await
        {
            Ok(keys) => keys,
            Err(e) if e.kind() == ErrorKind::PermissionDenied => {
                report.push(Finding::warning(
                    codes::SERVICE_ACCOUNT_KEYS_UNREADABLE,
                    format!("the user-managed keys of {email} could not be listed: {}", e.problem()),
                    format!("grant the caller iam.serviceAccountKeys.list on {email} (roles/iam.serviceAccountKeyAdmin or roles/iam.securityReviewer)"),
                ));
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        if keys.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = keys
            .iter()
            .map(|k| k.name.rsplit('/').next().unwrap_or(&k.name))
            .collect();
        report.push(Finding::warning(
            codes::SERVICE_ACCOUNT_USER_MANAGED_KEYS,
            format!(
                "service account {email} has {} user-managed key(s) ({}): static credentials that work from anywhere, which Workload Identity exists to avoid",
                keys.len(),
                ids.join(", ")
            ),
            format!(
                "delete them once nothing uses them: {}",
                ids.iter()
                    .map(|id| format!("`gcloud iam service-accounts keys delete {id} --iam-account={email}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
        Ok(())
    }

    /// The service account's roles on its own project.
    async fn lint_project(
        &self,
        run: &RunContext,
        email: &porter_identity_core::GcpServiceAccountEmail,
        report: &mut VerifyReport,
    ) -> Result<()> {
        let project = email.project_id();
        match self
            .calls
            .run(run, op::PROJECTS_GET_IAM_POLICY, || {
                self.api.get_project_iam_policy(project)
            })
            .await
        {
            Ok(policy) => {
                for finding in lint::lint_project_roles(email.as_str(), project, &policy) {
                    report.push(finding);
                }
                Ok(())
            }
            Err(e) if matches!(e.kind(), ErrorKind::PermissionDenied | ErrorKind::NotFound) => {
                report.push(Finding::warning(
                    codes::LINT_ROLES_UNREADABLE,
                    format!(
                        "the IAM policy of project {project} could not be read, so the roles of {email} were not linted: {}",
                        e.problem()
                    ),
                    format!("grant the caller resourcemanager.projects.getIamPolicy on project {project} (roles/iam.securityReviewer)"),
                ));
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}
