//! `AwsPodIdentityProvider`: the logic of EKS Pod Identity bindings, over the [`EksIamApi`] port.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures_util::stream::{self, StreamExt};
use porter_identity_core::{
    BindChange, BindOutcome, Binding, Cloud, Connection, Error, ErrorKind, Finding, Plan,
    PlanAction, Result, RetryPolicy, RoleRef, ServiceAccountPatch, Severity, UnbindOutcome,
    VerifyReport, WorkloadIdentityProvider, ensure_cloud,
};
use tokio::sync::OnceCell;

use crate::api::{
    Association, AssociationSummary, ClusterInfo, CreateAssociation, EksIamApi,
    POD_IDENTITY_AGENT_ADDON, RoleInfo,
};
use crate::{codes, lint, trust};

/// Tag marking an association as made by porter-identity.
pub const TAG_MANAGED_BY: &str = "managed-by";
/// Value of [`TAG_MANAGED_BY`].
pub const MANAGED_BY_VALUE: &str = "porter-identity";
/// Tag naming the porter app of an association.
pub const TAG_APP: &str = "porter-identity/app";
/// Tag naming the porter service of an association.
pub const TAG_SERVICE: &str = "porter-identity/service";

/// How many DescribePodIdentityAssociation calls verify makes at once for the shared-role lint.
const DESCRIBE_CONCURRENCY: usize = 8;

/// Links Kubernetes workloads of one EKS cluster to IAM roles with EKS Pod Identity
/// associations.
///
/// Build it with [`AwsPodIdentityProvider::builder`]; every method takes a
/// [`Binding`] whose connection is `awsRole`.
///
/// - `bind` checks, before any write, that the role exists, is in the cluster's account and
///   trusts `pods.eks.amazonaws.com` for `sts:AssumeRole` and `sts:TagSession`; then creates the
///   association (tagged `managed-by: porter-identity`), updates it in place when it points at
///   another role, or does nothing when it is already right. An association owned by an EKS
///   add-on (`ownerArn`) is never modified.
/// - `unbind` deletes the association of the service account, if any.
/// - `verify` diagnoses the cluster, the Pod Identity agent, the role, its trust policy, the
///   association, and lints the role's permission policies for least privilege.
///
/// Roles that passed the checks are cached for the provider's lifetime (one GetRole per role,
/// not per workload); `verify` always reads them afresh.
pub struct AwsPodIdentityProvider {
    api: Arc<dyn EksIamApi>,
    cluster: String,
    retry: RetryPolicy,
    cluster_info: OnceCell<ClusterInfo>,
    checked_roles: Mutex<HashMap<String, Arc<OnceCell<RoleInfo>>>>,
    association_roles: Mutex<HashMap<String, String>>,
}

impl fmt::Debug for AwsPodIdentityProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsPodIdentityProvider")
            .field("cluster", &self.cluster)
            .field("api", &self.api)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// What bind found before deciding to write.
enum Current {
    None,
    Same(Association),
    Other(Association),
}

impl AwsPodIdentityProvider {
    /// A builder; see [`crate::AwsPodIdentityProviderBuilder`].
    pub fn builder() -> crate::AwsPodIdentityProviderBuilder {
        crate::AwsPodIdentityProviderBuilder::default()
    }

    /// A provider for `cluster` over any implementation of the port (a fake, a mock, or
    /// [`crate::sdk::SdkApi`]). `cluster` is validated.
    pub fn new(cluster: &str, api: Arc<dyn EksIamApi>, retry: RetryPolicy) -> Result<Self> {
        validate_cluster_name(cluster)?;
        Ok(AwsPodIdentityProvider {
            api,
            cluster: cluster.to_owned(),
            retry,
            cluster_info: OnceCell::new(),
            checked_roles: Mutex::new(HashMap::new()),
            association_roles: Mutex::new(HashMap::new()),
        })
    }

    /// The cluster this provider binds in.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    fn role_ref(binding: &Binding) -> Result<&RoleRef> {
        ensure_cloud(Cloud::Aws, binding)?;
        match &binding.connection {
            Connection::AwsRole { role } => Ok(role),
            _ => Err(Error::invalid_input(
                "binding.connection",
                "is not awsRole",
                "pass an awsRole binding",
            )),
        }
    }

    async fn cluster_info(&self) -> Result<&ClusterInfo> {
        self.cluster_info
            .get_or_try_init(|| async {
                self.retry
                    .run("DescribeCluster", || {
                        self.api.describe_cluster(&self.cluster)
                    })
                    .await
                    .map_err(|e| self.cluster_error(e))
            })
            .await
    }

    fn cluster_error(&self, e: Error) -> Error {
        if e.kind() == ErrorKind::NotFound {
            Error::cloud(
                ErrorKind::NotFound,
                Cloud::Aws,
                "DescribeCluster",
                format!("EKS cluster {:?} was not found", self.cluster),
            )
            .with_fix("check the cluster name and the region of the credentials (AWS_REGION)")
            .with_source(e)
        } else {
            e
        }
    }

    /// GetRole, with the role-name and account checks that need no trust policy.
    async fn get_role(&self, role: &RoleRef, binding: &Binding) -> Result<RoleInfo> {
        let found = self
            .retry
            .run("GetRole", || self.api.get_role(role.name()))
            .await;
        match found {
            Ok(info) => {
                if let Some(arn) = role.arn()
                    && info.arn != arn
                {
                    return Err(Error::cloud(
                            ErrorKind::InvalidInput,
                            Cloud::Aws,
                            "GetRole",
                            format!(
                                "role {:?} of service {} is {}, not the ARN written in porter.yaml ({arn})",
                                role.name(),
                                binding.workload.service(),
                                info.arn
                            ),
                        )
                        .with_fix("correct awsRole.role in porter.yaml to the role's ARN as IAM shows it"));
                }
                Ok(info)
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Err(Error::cloud(
                ErrorKind::NotFound,
                Cloud::Aws,
                "GetRole",
                format!(
                    "IAM role {:?} (awsRole.role of service {}) does not exist",
                    role.name(),
                    binding.workload.service()
                ),
            )
            .with_fix(format!(
                "create the role with the trust policy {} or correct awsRole.role in porter.yaml",
                trust::required_trust_policy_json()
            ))
            .with_source(e)),
            Err(e) => Err(e),
        }
    }

    /// The account check: a Pod Identity association's role must be in the cluster's account.
    fn check_account(&self, cluster: &ClusterInfo, role_arn: &str) -> Result<()> {
        let role_account = role_arn.split(':').nth(4).unwrap_or_default();
        match cluster.account() {
            Some(account) if account != role_account => Err(Error::cloud(
                ErrorKind::InvalidInput,
                Cloud::Aws,
                "CreatePodIdentityAssociation",
                format!(
                    "role {role_arn} is in account {role_account}, but cluster {} is in account {account}; EKS Pod Identity associates roles of the cluster's own account",
                    self.cluster
                ),
            )
            .with_fix(format!(
                "use a role in account {account} (it may assume the role in {role_account} itself)"
            ))),
            _ => Ok(()),
        }
    }

    /// The role of a binding, checked once per provider: exists, same account as the cluster,
    /// trust policy right. A role that failed a check is not cached, so a fix is seen on the
    /// next call.
    async fn checked_role(&self, binding: &Binding) -> Result<RoleInfo> {
        let role = Self::role_ref(binding)?;
        let cluster = self.cluster_info().await?;
        if let Some(arn) = role.arn() {
            // Refuse a foreign ARN before calling GetRole, which only sees the caller's account.
            self.check_account(cluster, arn)?;
        }
        let cell = {
            let mut roles = self
                .checked_roles
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            roles.entry(role.as_str().to_owned()).or_default().clone()
        };
        let info = cell
            .get_or_try_init(|| async {
                let info = self.get_role(role, binding).await?;
                self.check_account(cluster, &info.arn)?;
                let check = trust::check_trust_policy_raw(&info.assume_role_policy_document);
                if !check.is_ok() {
                    return Err(Error::cloud(
                        ErrorKind::Conflict,
                        Cloud::Aws,
                        "GetRole",
                        format!(
                            "role {} cannot be used by EKS Pod Identity: {}",
                            info.arn,
                            check.problem().unwrap_or_else(|| "the trust policy is wrong".into())
                        ),
                    )
                    .with_fix(format!(
                        "add this statement to the role's trust policy (IAM > Roles > {} > Trust relationships): {}",
                        info.name,
                        trust::required_trust_statement_json()
                    )));
                }
                Ok(info)
            })
            .await?;
        Ok(info.clone())
    }

    async fn list(&self, binding: &Binding) -> Result<Vec<AssociationSummary>> {
        let ns = binding.workload.namespace().as_str();
        let sa = binding.workload.service_account().as_str();
        self.retry
            .run("ListPodIdentityAssociations", || {
                self.api
                    .list_pod_identity_associations(&self.cluster, Some(ns), Some(sa))
            })
            .await
            .map_err(|e| self.cluster_error(e))
    }

    async fn describe(&self, association_id: &str) -> Result<Association> {
        let a = self
            .retry
            .run("DescribePodIdentityAssociation", || {
                self.api
                    .describe_pod_identity_association(&self.cluster, association_id)
            })
            .await?;
        self.remember_role(&a);
        Ok(a)
    }

    fn remember_role(&self, a: &Association) {
        self.association_roles
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(a.association_id.clone(), a.role_arn.clone());
    }

    fn refuse_addon_owned(&self, binding: &Binding, owner: &str, op: &str) -> Error {
        Error::cloud(
            ErrorKind::Conflict,
            Cloud::Aws,
            op,
            format!(
                "the Pod Identity association of {} in cluster {} is owned by {owner}; porter-identity does not modify associations owned by an EKS add-on",
                binding.workload, self.cluster
            ),
        )
        .with_fix(format!(
            "give service {} its own service account, or change the association through the add-on that owns it",
            binding.workload.service()
        ))
    }

    /// Finds the association of the binding's service account and compares its role.
    async fn current(&self, binding: &Binding, role_arn: &str, op: &str) -> Result<Current> {
        let found = self.list(binding).await?;
        let Some(summary) = found.into_iter().next() else {
            return Ok(Current::None);
        };
        if let Some(owner) = &summary.owner_arn {
            return Err(self.refuse_addon_owned(binding, owner, op));
        }
        let a = self.describe(&summary.association_id).await?;
        if let Some(owner) = &a.owner_arn {
            return Err(self.refuse_addon_owned(binding, owner, op));
        }
        Ok(if a.role_arn == role_arn {
            Current::Same(a)
        } else {
            Current::Other(a)
        })
    }

    fn patch(changed: bool) -> ServiceAccountPatch {
        let mut patch = ServiceAccountPatch::default();
        if changed {
            patch.needs_pod_restart = true;
            patch.notes.push(
                "EKS Pod Identity needs no ServiceAccount annotation; pods created before this change must be restarted to get the role's credentials".into(),
            );
        }
        patch
    }

    async fn create(&self, binding: &Binding, role_arn: &str) -> Result<BindOutcome> {
        let w = &binding.workload;
        let input = CreateAssociation {
            cluster: self.cluster.clone(),
            namespace: w.namespace().to_string(),
            service_account: w.service_account().to_string(),
            role_arn: role_arn.to_owned(),
            // One token per bind, reused by its retries: a retried create that already
            // succeeded returns the same association instead of failing.
            client_request_token: client_request_token(),
            tags: BTreeMap::from([
                (TAG_MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned()),
                (TAG_APP.to_owned(), w.app().to_string()),
                (TAG_SERVICE.to_owned(), w.service().to_string()),
            ]),
        };
        let created = self
            .retry
            .run("CreatePodIdentityAssociation", || {
                self.api.create_pod_identity_association(input.clone())
            })
            .await;
        match created {
            Ok(a) => {
                self.remember_role(&a);
                Ok(BindOutcome {
                    change: BindChange::Created,
                    resource_id: a.association_arn,
                    service_account_patch: Self::patch(true),
                })
            }
            // Another process created it between our list and our create: adopt it.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                tracing::debug!(workload = %binding.workload, "association created concurrently; adopting it");
                match self
                    .current(binding, role_arn, "CreatePodIdentityAssociation")
                    .await?
                {
                    Current::Same(a) => Ok(BindOutcome {
                        change: BindChange::Unchanged,
                        resource_id: a.association_arn,
                        service_account_patch: Self::patch(false),
                    }),
                    Current::Other(a) => self.update(a, role_arn).await,
                    Current::None => Err(e),
                }
            }
            Err(e) => Err(self.limit_error(e)),
        }
    }

    fn limit_error(&self, e: Error) -> Error {
        if e.kind() == ErrorKind::LimitExceeded {
            Error::cloud(
                ErrorKind::LimitExceeded,
                Cloud::Aws,
                "CreatePodIdentityAssociation",
                format!(
                    "cluster {} has reached its limit of Pod Identity associations (5,000 per cluster)",
                    self.cluster
                ),
            )
            .with_fix("unbind services that are gone, or share a service account between replicas of one service")
            .with_source(e)
        } else {
            e
        }
    }

    async fn update(&self, current: Association, role_arn: &str) -> Result<BindOutcome> {
        let updated = self
            .retry
            .run("UpdatePodIdentityAssociation", || {
                self.api.update_pod_identity_association(
                    &self.cluster,
                    &current.association_id,
                    role_arn,
                )
            })
            .await?;
        self.remember_role(&updated);
        Ok(BindOutcome {
            change: BindChange::Updated {
                previous: current.role_arn,
            },
            resource_id: updated.association_arn,
            service_account_patch: Self::patch(true),
        })
    }

    /// The verify checks of the role: existence, account, trust, permissions lint.
    async fn verify_role(
        &self,
        role: &RoleRef,
        binding: &Binding,
        cluster: Option<&ClusterInfo>,
        report: &mut VerifyReport,
    ) -> Result<Option<RoleInfo>> {
        if let (Some(arn), Some(cluster)) = (role.arn(), cluster)
            && let Err(e) = self.check_account(cluster, arn)
        {
            report.push(Finding::from_error(codes::ROLE_CROSS_ACCOUNT, &e));
            return Ok(None);
        }
        let info = match self.get_role(role, binding).await {
            Ok(info) => info,
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::InvalidInput) => {
                report.push(Finding::from_error(codes::ROLE_NOT_FOUND, &e));
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        if let Some(cluster) = cluster
            && let Err(e) = self.check_account(cluster, &info.arn)
        {
            report.push(Finding::from_error(codes::ROLE_CROSS_ACCOUNT, &e));
        }
        for finding in
            trust::check_trust_policy_raw(&info.assume_role_policy_document).findings(&info.arn)
        {
            report.push(finding);
        }
        self.lint_permissions(&info, report).await?;
        Ok(Some(info))
    }

    async fn lint_permissions(&self, role: &RoleInfo, report: &mut VerifyReport) -> Result<()> {
        let attached = self
            .retry
            .run("ListAttachedRolePolicies", || {
                self.api.list_attached_role_policies(&role.name)
            })
            .await?;
        for policy in &attached {
            if let Some(finding) = lint::lint_attached_policy(policy) {
                // Its document would repeat the same finding in other words.
                report.push(finding);
                continue;
            }
            let doc = self
                .retry
                .run("GetPolicyVersion", || {
                    self.api.get_managed_policy_document(&policy.arn)
                })
                .await?;
            for finding in lint::lint_policy_raw(&policy.name, &doc) {
                report.push(finding);
            }
        }
        let inline = self
            .retry
            .run("ListRolePolicies", || {
                self.api.list_role_policies(&role.name)
            })
            .await?;
        for name in &inline {
            let doc = self
                .retry
                .run("GetRolePolicy", || {
                    self.api.get_role_policy(&role.name, name)
                })
                .await?;
            for finding in lint::lint_policy_raw(name, &doc) {
                report.push(finding);
            }
        }
        Ok(())
    }

    /// Every (namespace, service account) of the cluster associated with `role_arn`.
    async fn service_accounts_of_role(&self, role_arn: &str) -> Result<Vec<(String, String)>> {
        let all = self
            .retry
            .run("ListPodIdentityAssociations", || {
                self.api
                    .list_pod_identity_associations(&self.cluster, None, None)
            })
            .await?;
        let known: HashMap<String, String> = self
            .association_roles
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        let roles: Vec<Result<(AssociationSummary, String)>> = stream::iter(all)
            .map(|s| {
                let cached = known.get(&s.association_id).cloned();
                async move {
                    let role = match cached {
                        Some(r) => r,
                        None => self.describe(&s.association_id).await?.role_arn,
                    };
                    Ok((s, role))
                }
            })
            .buffer_unordered(DESCRIBE_CONCURRENCY)
            .collect()
            .await;
        let mut out = Vec::new();
        for r in roles {
            match r {
                Ok((s, role)) if role == role_arn => out.push((s.namespace, s.service_account)),
                Ok(_) => {}
                // Deleted between list and describe: not sharing anything any more.
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        out.sort();
        Ok(out)
    }

    async fn verify_cluster(&self, report: &mut VerifyReport) -> Result<Option<ClusterInfo>> {
        // Verify reads the cluster afresh: a cached status may be old.
        let fresh = self
            .retry
            .run("DescribeCluster", || {
                self.api.describe_cluster(&self.cluster)
            })
            .await
            .map_err(|e| self.cluster_error(e));
        let fresh = match fresh {
            Ok(c) => c,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                report.push(Finding::from_error(codes::CLUSTER_NOT_FOUND, &e));
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        // Already set by a concurrent call: the same cluster, nothing to do.
        let _ = self.cluster_info.set(fresh.clone());
        if fresh.status != "ACTIVE" {
            report.push(Finding::error(
                codes::CLUSTER_NOT_ACTIVE,
                format!("cluster {} is {}, not ACTIVE", self.cluster, fresh.status),
                "wait for the cluster to become ACTIVE, or repair it in the EKS console",
            ));
        }
        let addon = self
            .retry
            .run("DescribeAddon", || {
                self.api
                    .describe_addon(&self.cluster, POD_IDENTITY_AGENT_ADDON)
            })
            .await?;
        match addon {
            None => report.push(Finding::error(
                codes::AGENT_MISSING,
                format!(
                    "the {POD_IDENTITY_AGENT_ADDON} add-on is not installed in cluster {}: no pod gets Pod Identity credentials",
                    self.cluster
                ),
                format!(
                    "aws eks create-addon --cluster-name {} --addon-name {POD_IDENTITY_AGENT_ADDON}",
                    self.cluster
                ),
            )),
            Some(a) if a.status != "ACTIVE" || !a.health_issues.is_empty() => {
                let severity = if a.status == "ACTIVE" || a.status == "UPDATING" {
                    Severity::Warning
                } else {
                    Severity::Error
                };
                let issues = if a.health_issues.is_empty() {
                    String::new()
                } else {
                    format!("; health issues: {}", a.health_issues.join("; "))
                };
                report.push(Finding::new(
                    severity,
                    codes::AGENT_DEGRADED,
                    format!("the {POD_IDENTITY_AGENT_ADDON} add-on is {}{issues}", a.status),
                    format!(
                        "inspect it with `aws eks describe-addon --cluster-name {} --addon-name {POD_IDENTITY_AGENT_ADDON}` and update or re-install it",
                        self.cluster
                    ),
                ));
            }
            Some(_) => {}
        }
        Ok(Some(fresh))
    }

    async fn verify_association(
        &self,
        binding: &Binding,
        role: Option<&RoleInfo>,
        report: &mut VerifyReport,
    ) -> Result<()> {
        let found = self.list(binding).await?;
        let Some(summary) = found.into_iter().next() else {
            report.push(Finding::error(
                codes::ASSOCIATION_MISSING,
                format!(
                    "no Pod Identity association for {} in cluster {}: its pods get no AWS credentials",
                    binding.workload, self.cluster
                ),
                "run bind for this service",
            ));
            return Ok(());
        };
        if let Some(owner) = &summary.owner_arn {
            report.push(Finding::error(
                codes::ASSOCIATION_ADDON_OWNED,
                format!(
                    "the association of {} is owned by {owner}; porter-identity will not change it",
                    binding.workload
                ),
                format!(
                    "give service {} its own service account",
                    binding.workload.service()
                ),
            ));
            return Ok(());
        }
        let a = self.describe(&summary.association_id).await?;
        let Some(role) = role else {
            return Ok(());
        };
        if a.role_arn != role.arn {
            report.push(Finding::error(
                codes::ASSOCIATION_WRONG_ROLE,
                format!(
                    "the association of {} points at {}, not at {}",
                    binding.workload, a.role_arn, role.arn
                ),
                "run bind for this service to point it at the role in porter.yaml",
            ));
            return Ok(());
        }
        let sharing = self.service_accounts_of_role(&role.arn).await?;
        if let Some(finding) = lint::lint_shared_role(&role.arn, &sharing) {
            report.push(finding);
        }
        Ok(())
    }
}

#[async_trait]
impl WorkloadIdentityProvider for AwsPodIdentityProvider {
    fn cloud(&self) -> Cloud {
        Cloud::Aws
    }

    #[tracing::instrument(skip_all, fields(cluster = %self.cluster, workload = %binding.workload))]
    async fn plan(&self, binding: &Binding) -> Result<Plan> {
        let role = self.checked_role(binding).await?;
        let (action, description) = match self
            .current(binding, &role.arn, "ListPodIdentityAssociations")
            .await?
        {
            Current::None => (
                PlanAction::Create,
                format!(
                    "create a Pod Identity association of {} to {} in cluster {}",
                    binding.workload, role.arn, self.cluster
                ),
            ),
            Current::Same(_) => (
                PlanAction::Unchanged,
                format!(
                    "{} is already associated with {}",
                    binding.workload, role.arn
                ),
            ),
            Current::Other(a) => (
                PlanAction::Update {
                    current: a.role_arn.clone(),
                },
                format!(
                    "update the association of {} from {} to {}",
                    binding.workload, a.role_arn, role.arn
                ),
            ),
        };
        let changed = action != PlanAction::Unchanged;
        Ok(Plan {
            action,
            description,
            service_account_patch: Self::patch(changed),
        })
    }

    #[tracing::instrument(skip_all, fields(cluster = %self.cluster, workload = %binding.workload))]
    async fn bind(&self, binding: &Binding) -> Result<BindOutcome> {
        let role = self.checked_role(binding).await?;
        match self
            .current(binding, &role.arn, "CreatePodIdentityAssociation")
            .await?
        {
            Current::None => self.create(binding, &role.arn).await,
            Current::Same(a) => Ok(BindOutcome {
                change: BindChange::Unchanged,
                resource_id: a.association_arn,
                service_account_patch: Self::patch(false),
            }),
            Current::Other(a) => self.update(a, &role.arn).await,
        }
    }

    #[tracing::instrument(skip_all, fields(cluster = %self.cluster, workload = %binding.workload))]
    async fn unbind(&self, binding: &Binding) -> Result<UnbindOutcome> {
        Self::role_ref(binding)?;
        let Some(summary) = self.list(binding).await?.into_iter().next() else {
            return Ok(UnbindOutcome::AlreadyAbsent);
        };
        if let Some(owner) = &summary.owner_arn {
            return Err(self.refuse_addon_owned(binding, owner, "DeletePodIdentityAssociation"));
        }
        let deleted = self
            .retry
            .run("DeletePodIdentityAssociation", || {
                self.api
                    .delete_pod_identity_association(&self.cluster, &summary.association_id)
            })
            .await;
        match deleted {
            Ok(()) => {
                self.association_roles
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .remove(&summary.association_id);
                Ok(UnbindOutcome::Deleted {
                    resource_id: summary.association_arn,
                })
            }
            // Deleted by another process between our list and our delete.
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(UnbindOutcome::AlreadyAbsent),
            Err(e) => Err(e),
        }
    }

    #[tracing::instrument(skip_all, fields(cluster = %self.cluster, workload = %binding.workload))]
    async fn verify(&self, binding: &Binding) -> Result<VerifyReport> {
        let role = Self::role_ref(binding)?;
        let mut report = VerifyReport::default();
        let Some(cluster) = self.verify_cluster(&mut report).await? else {
            return Ok(report);
        };
        let info = self
            .verify_role(role, binding, Some(&cluster), &mut report)
            .await?;
        self.verify_association(binding, info.as_ref(), &mut report)
            .await?;
        Ok(report)
    }
}

/// A random idempotency token for CreatePodIdentityAssociation (EKS accepts up to 64 chars).
fn client_request_token() -> String {
    format!(
        "porter-identity-{:016x}{:016x}",
        fastrand::u64(..),
        fastrand::u64(..)
    )
}

/// EKS cluster names: 1–100 characters, letters, digits, `-` and `_`, starting with a letter
/// or digit. Checked because the name goes into every EKS URL path.
fn validate_cluster_name(cluster: &str) -> Result<()> {
    let fix = "give the EKS cluster's name as `aws eks list-clusters` shows it: 1 to 100 letters, digits, '-' or '_', starting with a letter or digit";
    let problem = if cluster.is_empty() || cluster.len() > 100 {
        Some(format!("is {} characters", cluster.len()))
    } else if let Some(c) = cluster
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        Some(format!("contains {c:?}"))
    } else if !cluster.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        Some("must start with a letter or digit".to_owned())
    } else {
        None
    };
    match problem {
        Some(p) => Err(Error::invalid_input(
            "cluster",
            format!("{cluster:?} {p}"),
            fix,
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names() {
        for ok in ["prod", "prod-us-east-1", "a_b", &"c".repeat(100)] {
            assert!(validate_cluster_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", "a/b", "a b", "ä", &"c".repeat(101)] {
            let e = validate_cluster_name(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad}");
            assert!(e.to_string().contains("cluster"), "{e}");
        }
    }

    #[test]
    fn tokens_are_unique_and_short() {
        let a = client_request_token();
        assert_ne!(a, client_request_token());
        assert!(a.len() <= 64);
    }
}
