//! `verify` of the Azure provider: the cluster (its OIDC issuer and workload identity), the
//! managed identity, its credential for the workload (and who owns it), how full the identity
//! is, and the least-privilege lint of its role assignments and trust.

use futures_util::TryStreamExt;
use porter_identity_core::provider::pages;
use porter_identity_core::{Binding, ErrorKind, Finding, Result, RunContext, VerifyReport};

use crate::api::{FEDERATED_CREDENTIAL_LIMIT, FederatedCredential, Identity, RoleAssignment};
use crate::names::{
    NameMarks, TOKEN_EXCHANGE_AUDIENCE, credential_name, differ_only_by_trailing_slash, same_issuer,
};
use crate::operation as op;
use crate::provider::{AzureWorkloadIdentityProvider, ClusterSource};
use crate::{codes, lint};

/// From how many credentials an identity is reported as nearly full.
const LIMIT_NEAR: usize = FEDERATED_CREDENTIAL_LIMIT - 2;

impl AzureWorkloadIdentityProvider {
    /// The whole diagnosis of one binding, read afresh.
    pub(crate) async fn verify_binding(
        &self,
        run: &RunContext,
        binding: &Binding,
    ) -> Result<VerifyReport> {
        let (rg, name) = Self::identity_ref(binding)?;
        let mut report = VerifyReport::default();
        let Some(issuer) = self.verify_cluster(run, &mut report).await? else {
            return Ok(report);
        };
        let identity = match self.read_identity(run, binding).await {
            Ok(identity) => identity,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                report.push(Finding::from_error(codes::IDENTITY_NOT_FOUND, &e));
                return Ok(report);
            }
            Err(e) => return Err(e),
        };
        // The client id the ServiceAccount must carry, and the pod label.
        report.service_account_patch = Self::patch(&identity, false);
        let held = self
            .list_credentials(run, rg.as_str(), name.as_str())
            .await?;
        self.verify_credential(binding, &issuer, &held, &mut report);
        let label = format!("{rg}/{name}");
        if held.len() >= LIMIT_NEAR {
            report.push(Finding::warning(
                codes::CREDENTIAL_LIMIT_NEAR,
                format!(
                    "managed identity {label} holds {} of its {FEDERATED_CREDENTIAL_LIMIT} federated identity credentials",
                    held.len()
                ),
                "delete the credentials of service accounts that are gone, or move some services to another managed identity",
            ));
        }
        if let Some(finding) =
            lint::lint_shared_identity(&label, &issuer, &binding.workload.subject(), &held)
        {
            report.push(finding);
        }
        self.lint_roles(run, &label, &identity, &mut report).await?;
        Ok(report)
    }

    /// The cluster's part: its issuer, or why there is none.
    async fn verify_cluster(
        &self,
        run: &RunContext,
        report: &mut VerifyReport,
    ) -> Result<Option<String>> {
        let (rg, name) = match &self.cluster {
            ClusterSource::Issuer(url) => {
                report.push(Finding::info(
                    codes::ISSUER_EXPLICIT,
                    format!(
                        "the issuer {url} was given explicitly: the cluster itself is not checked"
                    ),
                ));
                return Ok(Some(url.clone()));
            }
            ClusterSource::Aks {
                resource_group,
                name,
            } => (resource_group, name),
        };
        let cluster = match self
            .calls
            .run(run, op::MANAGED_CLUSTERS_GET, || {
                self.api.get_managed_cluster(rg, name)
            })
            .await
            .map_err(|e| self.cluster_error(e))
        {
            Ok(cluster) => cluster,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                report.push(Finding::from_error(codes::CLUSTER_NOT_FOUND, &e));
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        if !cluster.workload_identity_enabled {
            report.push(Finding::error(
                codes::WORKLOAD_IDENTITY_DISABLED,
                format!(
                    "workload identity is off on AKS cluster {rg}/{name}: its webhook does not give pods the token and the client id, so no pod can use the identity"
                ),
                format!("az aks update --resource-group {rg} --name {name} --enable-workload-identity"),
            ));
        }
        match cluster.issuer_url.filter(|_| cluster.oidc_issuer_enabled) {
            Some(issuer) => Ok(Some(issuer)),
            None => {
                report.push(Finding::error(
                    codes::OIDC_ISSUER_DISABLED,
                    self.oidc_disabled_message(),
                    self.enable_command(),
                ));
                Ok(None)
            }
        }
    }

    /// The credential's part.
    fn verify_credential(
        &self,
        binding: &Binding,
        issuer: &str,
        held: &[FederatedCredential],
        report: &mut VerifyReport,
    ) {
        let w = &binding.workload;
        let subject = w.subject();
        // For the `az` commands of the fixes.
        let (rg, name) = Self::identity_ref(binding)
            .map_or(("<group>", "<identity>"), |(rg, name)| {
                (rg.as_str(), name.as_str())
            });
        let Some(found) = held
            .iter()
            .find(|c| same_issuer(&c.issuer, issuer) && c.subject == subject)
        else {
            let near_miss = held
                .iter()
                .find(|c| c.subject == subject && differ_only_by_trailing_slash(&c.issuer, issuer));
            let hint = near_miss.map_or_else(String::new, |c| {
                format!(
                    "; credential {} trusts {} — the same URL but for its trailing slash, which Entra ID compares exactly, so it never matches",
                    c.name, c.issuer
                )
            });
            report.push(Finding::error(
                codes::CREDENTIAL_MISSING,
                format!(
                    "no federated identity credential trusts {issuer} for {subject}: the pods of {w} get no Azure token{hint}"
                ),
                format!(
                    "deploy again (bind creates it), or by hand: `az identity federated-credential create --resource-group {rg} --identity-name {name} --name {} --issuer {issuer} --subject {subject} --audiences {TOKEN_EXCHANGE_AUDIENCE}`",
                    credential_name(issuer, w)
                ),
            ));
            return;
        };
        let marks = NameMarks::of(&found.name);
        if marks != NameMarks::Foreign && !marks.is(w) {
            let e = self.other_owner(
                binding,
                &marks,
                found,
                op::FEDERATED_IDENTITY_CREDENTIALS_LIST,
            );
            report.push(Finding::from_error(codes::CREDENTIAL_OTHER_OWNER, &e));
            return;
        }
        if found.audiences != [TOKEN_EXCHANGE_AUDIENCE] {
            report.push(Finding::error(
                codes::CREDENTIAL_WRONG_AUDIENCE,
                format!(
                    "credential {} trusts {subject} for the audiences {:?}, but workload identity tokens are for {TOKEN_EXCHANGE_AUDIENCE} only",
                    found.name, found.audiences
                ),
                format!(
                    "deploy again (bind sets the audience in place), or by hand: `az identity federated-credential update --resource-group {rg} --identity-name {name} --name {} --audiences {TOKEN_EXCHANGE_AUDIENCE}`",
                    found.name
                ),
            ));
        }
    }

    /// The identity principal's role assignments, linted. Reading them needs
    /// `Microsoft.Authorization/roleAssignments/read`: without it, a warning, not a failure.
    async fn lint_roles(
        &self,
        run: &RunContext,
        label: &str,
        identity: &Identity,
        report: &mut VerifyReport,
    ) -> Result<()> {
        let principal = identity.principal_id.as_str();
        let assignments: Result<Vec<RoleAssignment>> = pages(
            op::ROLE_ASSIGNMENTS_LIST_FOR_SCOPE,
            |next: Option<String>, _| async move {
                let page = self
                    .calls
                    .run(run, op::ROLE_ASSIGNMENTS_LIST_FOR_SCOPE, || {
                        self.api.list_role_assignments(principal, next.clone())
                    })
                    .await?;
                Ok((page.assignments, page.next_link))
            },
        )
        .try_concat()
        .await;
        let assignments = match assignments {
            Ok(a) => a,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::PermissionDenied | ErrorKind::Unauthenticated
                ) =>
            {
                report.push(Finding::warning(
                    codes::LINT_ROLES_UNREADABLE,
                    format!(
                        "the role assignments of managed identity {label} could not be read, so they were not linted: {}",
                        e.problem()
                    ),
                    e.fix().unwrap_or("grant the caller Microsoft.Authorization/roleAssignments/read (the Reader role) on the subscription"),
                ));
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        for a in &assignments {
            let guid = lint::role_guid(&a.role_definition_id);
            let role_name = match lint::broad_role(guid) {
                Some(name) => name.to_owned(),
                None if lint::ScopeKind::of(&a.scope).is_broad() => self
                    .calls
                    .run(run, op::ROLE_DEFINITIONS_GET_BY_ID, || {
                        self.api.get_role_definition(&a.role_definition_id)
                    })
                    .await
                    .map_or_else(|_| guid.to_owned(), |d| d.role_name),
                // Narrow and not broad: nothing to say, and nothing to read.
                None => continue,
            };
            if let Some(finding) = lint::lint_assignment(label, &role_name, guid, &a.scope) {
                report.push(finding);
            }
        }
        Ok(())
    }
}
