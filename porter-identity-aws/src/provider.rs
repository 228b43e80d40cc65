//! `AwsPodIdentityProvider`: the logic of EKS Pod Identity bindings, over the [`EksIamApi`] port.
//!
//! This module holds the provider, the calls it makes and the trait it implements; the batch
//! logic (one listing per namespace) is in `links`, the stale-link search in `stale`, the
//! diagnosis in `verify`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use futures_util::future::try_join;
use futures_util::stream::Stream;
use porter_identity_core::provider::{
    CloudCalls, SharedRead, batch_refusals, each_binding, ensure_cloud, pages,
};
use porter_identity_core::{
    AwsRoleMode, AwsRoleOptions, BindChange, BindOutcome, Binding, Cloud, Connection, Error,
    ErrorKind, Operation, Plan, Result, RetryPolicy, RoleRef, RunContext, ServiceAccountPatch,
    StaleLink, StaleQuery, UnbindOutcome, VerifyReport, Workload, WorkloadIdentityProvider,
};
use tokio::sync::OnceCell;

use crate::api::{
    Association, AssociationPage, AssociationSettings, AssociationSummary, ClusterInfo,
    CreateAssociation, EksIamApi, RoleInfo, UpdateAssociation,
};
use crate::irsa_link::IrsaRead;
use crate::operation as op;
use crate::passed::Passed;
use crate::target_role::{ChainKey, ChainRead};
use crate::{ownership, trust};

/// Links Kubernetes workloads of one EKS cluster to IAM roles with EKS Pod Identity
/// associations.
///
/// Build it with [`AwsPodIdentityProvider::builder`]; every method takes a
/// [`Binding`] whose connection is `awsRole`.
///
/// - `bind` checks, before any write, that the role exists, is in the cluster's account and
///   trusts `pods.eks.amazonaws.com` for `sts:AssumeRole` and `sts:TagSession`; then creates the
///   association (tagged `managed-by: porter-identity` with the app and service), updates it in
///   place when it points at another role, or does nothing when it is already right.
/// - `unbind` deletes the association of the service account, if any.
/// - `bind_all`, `plan_all` and `unbind_all` list each namespace's associations once (every
///   page) for the whole batch, describe only the associations of the batch's service
///   accounts, and write only what differs.
/// - `verify` diagnoses the cluster, the Pod Identity agent, the role, its trust policy, the
///   association, and lints the role's permission policies for least privilege.
///
/// Never changed or removed: an association owned by an EKS add-on (`ownerArn`), and one whose
/// tags name another app or service (two apps can derive the same service-account name). Both
/// are a `Conflict` naming the owner.
///
/// Every call goes through one gate: at most `concurrency` calls in flight (16 by default),
/// each under the [`RetryPolicy`] (per-attempt timeout, backoff with jitter, deadline). Roles
/// that passed the checks are cached for the provider's lifetime (one GetRole per role, not per
/// workload); `verify` always reads them afresh.
pub struct AwsPodIdentityProvider {
    pub(crate) api: Arc<dyn EksIamApi>,
    pub(crate) cluster: String,
    pub(crate) calls: CloudCalls,
    cluster_info: OnceCell<ClusterInfo>,
    checked_roles: Passed<String, RoleInfo>,
    pub(crate) checked_chains: Passed<ChainKey, ChainRead>,
    pub(crate) irsa_reads: Passed<String, IrsaRead>,
    /// The role and external ID of each association described or written, by id.
    association_roles: Mutex<HashMap<String, (String, Option<String>)>>,
    /// The port of each account whose target roles the caller's credentials can read.
    pub(crate) target_accounts: BTreeMap<String, Arc<dyn EksIamApi>>,
    /// The mode of connections that do not say theirs.
    pub(crate) mode: AwsRoleMode,
}

impl fmt::Debug for AwsPodIdentityProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsPodIdentityProvider")
            .field("cluster", &self.cluster)
            .field("api", &self.api)
            .field("retry", self.calls.retry_policy())
            .field("concurrency", &self.calls.concurrency())
            .field("mode", &self.mode)
            .field("target_accounts", &self.target_accounts.keys())
            .finish_non_exhaustive()
    }
}

impl AwsPodIdentityProvider {
    /// A builder; see [`crate::AwsPodIdentityProviderBuilder`].
    pub fn builder() -> crate::AwsPodIdentityProviderBuilder {
        crate::AwsPodIdentityProviderBuilder::default()
    }

    /// A provider for `cluster` over any implementation of the port, making at most
    /// `DEFAULT_CONCURRENCY` calls at once (the builder's `.api(..)` is the public way).
    /// `cluster` is validated.
    #[cfg(test)]
    pub(crate) fn new(cluster: &str, api: Arc<dyn EksIamApi>, retry: RetryPolicy) -> Result<Self> {
        Self::with_concurrency(
            cluster,
            api,
            retry,
            porter_identity_core::DEFAULT_CONCURRENCY,
        )
    }

    pub(crate) fn with_concurrency(
        cluster: &str,
        api: Arc<dyn EksIamApi>,
        retry: RetryPolicy,
        concurrency: usize,
    ) -> Result<Self> {
        validate_cluster_name(cluster)?;
        Ok(AwsPodIdentityProvider {
            api,
            cluster: cluster.to_owned(),
            calls: CloudCalls::new(retry, concurrency),
            cluster_info: OnceCell::new(),
            checked_roles: Passed::new(),
            checked_chains: Passed::new(),
            irsa_reads: Passed::new(),
            association_roles: Mutex::new(HashMap::new()),
            target_accounts: BTreeMap::new(),
            mode: AwsRoleMode::default(),
        })
    }

    /// The cluster this provider binds in.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    pub(crate) fn role_ref(binding: &Binding) -> Result<&RoleRef> {
        Self::role_and_options(binding).map(|(role, _)| role)
    }

    pub(crate) fn role_and_options(binding: &Binding) -> Result<(&RoleRef, &AwsRoleOptions)> {
        ensure_cloud(Cloud::Aws, binding)?;
        match &binding.connection {
            Connection::AwsRole { role, options, .. } => Ok((role, options)),
            _ => Err(Error::invalid_input(
                "binding.connection",
                "is not awsRole",
                "pass an awsRole binding",
            )),
        }
    }

    /// What the binding's association must ask of EKS beside its role.
    pub(crate) fn wanted_settings(binding: &Binding) -> Result<AssociationSettings> {
        let (_, options) = Self::role_and_options(binding)?;
        Ok(AssociationSettings {
            target_role_arn: options.target_role.as_ref().map(|t| t.as_str().to_owned()),
            disable_session_tags: options.session_tags_disabled(),
            policy: options.session_policy.clone(),
        })
    }

    // ---- the cluster and the roles ---------------------------------------------------------

    pub(crate) async fn cluster_info(&self, run: &RunContext) -> Result<&ClusterInfo> {
        self.cluster_info
            .get_or_try_init(|| self.describe_cluster(run))
            .await
    }

    /// DescribeCluster, always afresh.
    pub(crate) async fn describe_cluster(&self, run: &RunContext) -> Result<ClusterInfo> {
        let fresh = self
            .calls
            .run(run, op::DESCRIBE_CLUSTER, || {
                self.api.describe_cluster(&self.cluster)
            })
            .await
            .map_err(|e| self.cluster_error(e))?;
        // Already set by a concurrent call: the same cluster, nothing to do.
        let _ = self.cluster_info.set(fresh.clone());
        Ok(fresh)
    }

    pub(crate) fn cluster_error(&self, e: Error) -> Error {
        if e.kind() == ErrorKind::NotFound {
            Error::cloud(
                ErrorKind::NotFound,
                Cloud::Aws,
                e.operation()
                    .unwrap_or(op::DESCRIBE_CLUSTER.name())
                    .to_owned(),
                format!("EKS cluster {:?} was not found", self.cluster),
            )
            .with_fix("check the cluster name and the region of the credentials (AWS_REGION)")
            .with_source(e)
        } else {
            e
        }
    }

    /// The port that reads IAM roles of `account` (a target role's, an IRSA role's): the
    /// provider's own for the cluster's account, else one given with `.target_account(..)`;
    /// `None` when the provider has no credentials for it.
    pub(crate) async fn account_api(
        &self,
        run: &RunContext,
        account: &str,
    ) -> Result<Option<Arc<dyn EksIamApi>>> {
        let cluster = self.cluster_info(run).await?;
        Ok(if cluster.account() == Some(account) {
            Some(self.api.clone())
        } else {
            self.target_accounts.get(account).cloned()
        })
    }

    /// GetRole, with the role-name check that needs no trust policy.
    pub(crate) async fn get_role(
        &self,
        run: &RunContext,
        role: &RoleRef,
        binding: &Binding,
    ) -> Result<RoleInfo> {
        let found = self
            .calls
            .run(run, op::GET_ROLE, || self.api.get_role(role.name()))
            .await;
        match found {
            Ok(info) => {
                if let Some(arn) = role.arn()
                    && info.arn != arn
                {
                    return Err(op::GET_ROLE.error(ErrorKind::InvalidInput,
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
            Err(e) if e.kind() == ErrorKind::NotFound => Err(op::GET_ROLE.error(ErrorKind::NotFound,
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
    pub(crate) fn check_account(&self, cluster: &ClusterInfo, role_arn: &str) -> Result<()> {
        let role_account = role_arn.split(':').nth(4).unwrap_or_default();
        match cluster.account() {
            Some(account) if account != role_account => Err(op::CREATE_POD_IDENTITY_ASSOCIATION.error(ErrorKind::InvalidInput,
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
    pub(crate) async fn checked_role(
        &self,
        run: &RunContext,
        binding: &Binding,
    ) -> Result<RoleInfo> {
        let role = Self::role_ref(binding)?;
        if let Some(arn) = role.arn() {
            // Refuse a foreign ARN before calling GetRole, which only sees the caller's account.
            self.check_account(self.cluster_info(run).await?, arn)?;
        }
        let cell = self.checked_roles.cell(&role.as_str().to_owned());
        let info = cell
            .get_or_try_init(|| async {
                // Two independent reads: the role by name needs no cluster to be read.
                // Either failing stops the other.
                let (cluster, info) = try_join(self.cluster_info(run), self.get_role(run, role, binding)).await?;
                self.check_account(cluster, &info.arn)?;
                let check = trust::check_trust_policy_raw(&info.assume_role_policy_document);
                if !check.is_ok() {
                    return Err(op::GET_ROLE.error(ErrorKind::Conflict,
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

    // ---- associations ----------------------------------------------------------------------

    /// The pages of ListPodIdentityAssociations of `namespace` (and `service_account`), each
    /// page one call under the retry policy.
    pub(crate) fn list<'a>(
        &'a self,
        run: &'a RunContext,
        namespace: Option<&'a str>,
        service_account: Option<&'a str>,
    ) -> impl Stream<Item = Result<Vec<AssociationSummary>>> + Send + 'a {
        pages(
            op::LIST_POD_IDENTITY_ASSOCIATIONS,
            move |token, _page| async move {
                let AssociationPage {
                    associations,
                    next_token,
                } = self
                    .calls
                    .run(run, op::LIST_POD_IDENTITY_ASSOCIATIONS, || {
                        self.api.list_pod_identity_associations(
                            &self.cluster,
                            namespace,
                            service_account,
                            token.clone(),
                        )
                    })
                    .await
                    .map_err(|e| self.cluster_error(e))?;
                Ok((associations, next_token))
            },
        )
    }

    /// The key under which a full listing of `namespace` is shared within one run.
    pub(crate) fn namespace_listing(&self, namespace: &str) -> NamespaceListing {
        NamespaceListing {
            cluster: self.cluster.clone(),
            namespace: namespace.to_owned(),
        }
    }

    pub(crate) async fn describe(
        &self,
        run: &RunContext,
        association_id: &str,
    ) -> Result<Association> {
        let a = self
            .calls
            .run(run, op::DESCRIBE_POD_IDENTITY_ASSOCIATION, || {
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
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                a.association_id.clone(),
                (a.role_arn.clone(), a.external_id.clone()),
            );
    }

    /// The external ID EKS made for the association `association_arn`, when this provider has
    /// seen it (every association it wrote).
    pub(crate) fn external_id_of(&self, association_arn: &str) -> Option<String> {
        let id = association_arn.rsplit('/').next()?;
        self.association_roles
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .and_then(|(_, e)| e.clone())
    }

    /// The roles of associations this provider has described, by association id.
    pub(crate) fn known_roles(&self) -> HashMap<String, String> {
        self.association_roles
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(id, (role, _))| (id.clone(), role.clone()))
            .collect()
    }

    pub(crate) fn addon_owned(&self, binding: &Binding, owner: &str, op: Operation) -> Error {
        op.error(ErrorKind::Conflict,
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

    /// What the Kubernetes side needs after a bind: Pod Identity needs no annotation, only a
    /// restart of pods created before a change.
    pub(crate) fn patch(changed: bool) -> ServiceAccountPatch {
        Self::patch_of(changed, None)
    }

    /// The patch after a bind, with when the association last changed (EKS's `modifiedAt`):
    /// pods started before then lack its credentials, whichever process made it.
    pub(crate) fn patch_of(
        changed: bool,
        association: Option<&Association>,
    ) -> ServiceAccountPatch {
        let mut patch = ServiceAccountPatch::default();
        patch.changed_at = association.and_then(|a| a.changed_at);
        if changed {
            patch.needs_pod_restart = true;
            patch.notes.push(
                "EKS Pod Identity needs no ServiceAccount annotation; pods created before this change must be restarted to get the role's credentials".into(),
            );
        }
        patch
    }

    pub(crate) async fn create(
        &self,
        run: &RunContext,
        binding: &Binding,
        role_arn: &str,
    ) -> Result<BindOutcome> {
        let w = &binding.workload;
        let input = CreateAssociation {
            cluster: self.cluster.clone(),
            namespace: w.namespace().to_string(),
            service_account: w.service_account().to_string(),
            role_arn: role_arn.to_owned(),
            settings: Self::wanted_settings(binding)?,
            // One token per bind, reused by its retries: a retried create that already
            // succeeded (its answer lost to a timeout) returns the same association.
            client_request_token: client_request_token(),
            tags: ownership::tags_for(w),
        };
        let created = self
            .calls
            .run(run, op::CREATE_POD_IDENTITY_ASSOCIATION, || {
                self.api.create_pod_identity_association(input.clone())
            })
            .await;
        match created {
            Ok(a) => {
                self.remember_role(&a);
                let patch = Self::patch_of(true, Some(&a));
                Ok(BindOutcome::new(
                    BindChange::Created,
                    a.association_arn,
                    patch,
                ))
            }
            // Another process created it between our list and our create: adopt it.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                tracing::debug!(workload = %binding.workload, "association created concurrently; adopting it");
                self.adopt(run, binding, role_arn, e).await
            }
            Err(e) => Err(self.limit_error(e)),
        }
    }

    /// After a create lost a race: the association that won, if it may be ours, made right.
    async fn adopt(
        &self,
        run: &RunContext,
        binding: &Binding,
        role_arn: &str,
        lost: Error,
    ) -> Result<BindOutcome> {
        let op = op::CREATE_POD_IDENTITY_ASSOCIATION;
        let w = &binding.workload;
        let Some(summary) = self.association_of(run, w).await? else {
            return Err(lost);
        };
        if let Some(owner) = &summary.owner_arn {
            return Err(self.addon_owned(binding, owner, op));
        }
        let current = self.describe(run, &summary.association_id).await?;
        ownership::check(binding, &current, &self.cluster, op)?;
        let wanted = Self::wanted_settings(binding)?;
        if current.role_arn == role_arn && current.settings.same_as(&wanted) {
            let patch = Self::patch_of(false, Some(&current));
            Ok(BindOutcome::new(
                BindChange::Unchanged,
                current.association_arn,
                patch,
            ))
        } else {
            self.update(run, current, role_arn, &wanted).await
        }
    }

    /// The association of a workload's service account, if any (EKS keeps one per service
    /// account): a listing filtered to it.
    pub(crate) async fn association_of(
        &self,
        run: &RunContext,
        workload: &Workload,
    ) -> Result<Option<AssociationSummary>> {
        let found = self
            .list_all(
                run,
                Some(workload.namespace().as_str()),
                Some(workload.service_account().as_str()),
            )
            .await?;
        Ok(found.into_iter().next())
    }

    /// Every association of `namespace` (and `service_account`), all pages.
    pub(crate) async fn list_all(
        &self,
        run: &RunContext,
        namespace: Option<&str>,
        service_account: Option<&str>,
    ) -> Result<Vec<AssociationSummary>> {
        use futures_util::TryStreamExt;
        self.list(run, namespace, service_account)
            .try_concat()
            .await
    }

    fn limit_error(&self, e: Error) -> Error {
        if e.kind() == ErrorKind::LimitExceeded {
            op::CREATE_POD_IDENTITY_ASSOCIATION.error(ErrorKind::LimitExceeded,
                format!(
                    "cluster {} has reached its limit of Pod Identity associations (5,000 per cluster)",
                    self.cluster
                ),
            )
            .with_fix("unbind services that are gone (a Reconciler with the previous deploy's porter.yaml removes them), or share a service account between replicas of one service")
            .with_source(e)
        } else {
            e
        }
    }

    pub(crate) async fn update(
        &self,
        run: &RunContext,
        current: Association,
        role_arn: &str,
        wanted: &AssociationSettings,
    ) -> Result<BindOutcome> {
        let input = UpdateAssociation::to(&self.cluster, &current, role_arn, wanted);
        let updated = self
            .calls
            .run(run, op::UPDATE_POD_IDENTITY_ASSOCIATION, || {
                self.api.update_pod_identity_association(input.clone())
            })
            .await?;
        self.remember_role(&updated);
        let patch = Self::patch_of(true, Some(&updated));
        Ok(BindOutcome::new(
            BindChange::Updated {
                previous: chain_of(&current),
            },
            updated.association_arn,
            patch,
        ))
    }

    /// DeletePodIdentityAssociation; one deleted by another process meanwhile is absent.
    pub(crate) async fn delete(
        &self,
        run: &RunContext,
        association_id: &str,
        association_arn: &str,
    ) -> Result<UnbindOutcome> {
        let deleted = self
            .calls
            .run(run, op::DELETE_POD_IDENTITY_ASSOCIATION, || {
                self.api
                    .delete_pod_identity_association(&self.cluster, association_id)
            })
            .await;
        match deleted {
            Ok(()) => {
                self.association_roles
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(association_id);
                Ok(UnbindOutcome::Deleted {
                    resource_id: association_arn.to_owned(),
                })
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(UnbindOutcome::AlreadyAbsent),
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl WorkloadIdentityProvider for AwsPodIdentityProvider {
    fn cloud(&self) -> Cloud {
        Cloud::Aws
    }

    fn concurrency(&self) -> usize {
        self.calls.concurrency()
    }

    #[tracing::instrument(skip_all, fields(cluster = %self.cluster, bindings = bindings.len()))]
    async fn plan_all(&self, run: &RunContext, bindings: &[Binding]) -> Vec<Result<Plan>> {
        self.plan_batch(run, bindings).await
    }

    #[tracing::instrument(skip_all, fields(cluster = %self.cluster, bindings = bindings.len()))]
    async fn bind_all(&self, run: &RunContext, bindings: &[Binding]) -> Vec<Result<BindOutcome>> {
        self.bind_batch(run, bindings).await
    }

    #[tracing::instrument(skip_all, fields(cluster = %self.cluster, bindings = bindings.len()))]
    async fn unbind_all(
        &self,
        run: &RunContext,
        bindings: &[Binding],
    ) -> Vec<Result<UnbindOutcome>> {
        self.unbind_batch(run, bindings).await
    }

    #[tracing::instrument(skip_all, fields(cluster = %self.cluster, bindings = bindings.len()))]
    async fn verify_all(
        &self,
        run: &RunContext,
        bindings: &[Binding],
    ) -> Vec<Result<VerifyReport>> {
        let refused = batch_refusals(bindings, false, |b| Self::role_ref(b).map(drop));
        // The cluster's Fargate profiles matter to Pod Identity bindings: read once for all.
        let fargate = if bindings
            .iter()
            .zip(&refused)
            .any(|(b, r)| r.is_none() && self.mode_of(b) == AwsRoleMode::PodIdentity)
        {
            self.fargate_profiles(run).await
        } else {
            Ok(Vec::new())
        };
        let fargate = &fargate;
        each_binding(bindings, refused, self.calls.concurrency(), |b| {
            self.verify_binding(run, b, fargate)
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(cluster = %self.cluster, app = %query.app, namespace = %query.namespace))]
    async fn stale_links(
        &self,
        run: &RunContext,
        query: &StaleQuery<'_>,
    ) -> Result<Vec<StaleLink>> {
        self.find_stale(run, query).await
    }

    #[tracing::instrument(skip_all, fields(cluster = %self.cluster, links = links.len()))]
    async fn remove_stale_links(
        &self,
        run: &RunContext,
        links: &[StaleLink],
    ) -> Vec<Result<UnbindOutcome>> {
        self.remove_stale(run, links).await
    }
}

/// Every association of a namespace of a cluster, listed by a batch's binds and shared with the
/// stale-link search of the same run.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct NamespaceListing {
    cluster: String,
    namespace: String,
}

impl SharedRead for NamespaceListing {
    /// The namespace's associations, or why its listing failed after its retries: the
    /// stale-link search of the same run then says that error instead of listing again
    /// against an endpoint that just gave up.
    type Value = Result<Vec<AssociationSummary>>;
}

/// An association's role chain in words: `role`, or `role -> target` with a target role.
pub(crate) fn chain_of(a: &Association) -> String {
    match &a.settings.target_role_arn {
        Some(target) => format!("{} -> {target}", a.role_arn),
        None => a.role_arn.clone(),
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
