//! `GcpWorkloadIdentityProvider`: the logic of GKE Workload Identity bindings, over the
//! [`GcpApi`] port.
//!
//! This module holds the provider, its reads (the workload pool, the service account) and the
//! trait it implements; the coalesced read-modify-write of a service account's IAM policy and
//! the batches are in `links`, the diagnosis in `verify`.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use porter_identity_core::provider::{
    CloudCalls, SharedRead, batch_refusals, each_binding, ensure_cloud,
};
use porter_identity_core::{
    BindOutcome, Binding, Cloud, ClusterFacts, Connection, DEFAULT_CONCURRENCY, Error, ErrorKind,
    GcpServiceAccountEmail, Plan, Result, RetryPolicy, RunContext, ServiceAccountPatch,
    UnbindOutcome, VerifyReport, WorkloadIdentityProvider,
};
use tokio::sync::OnceCell;

use crate::api::{Cluster, ClusterRef, GcpApi, Policy, ServiceAccount};
use crate::links::PolicyQueue;
use crate::names::{enable_workload_identity_command, member};
use crate::operation as op;

/// The provider's GKE cluster as read in a run (for its workload pool), shared with the
/// cluster facts of the same run, which need its node pools.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct ClusterRead(pub(crate) ClusterRef);

impl SharedRead for ClusterRead {
    type Value = Cluster;
}

/// The ServiceAccount annotation naming the GCP service account the pods act as.
pub const GCP_SERVICE_ACCOUNT_ANNOTATION: &str = "iam.gke.io/gcp-service-account";

/// Where the workload pool comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PoolSource {
    /// A GKE cluster, read once per provider.
    Gke(ClusterRef),
    /// A pool given explicitly (a fleet's pool, a cluster that is not GKE).
    Explicit(String),
}

/// Links Kubernetes workloads of one cluster to GCP service accounts: the member
/// `serviceAccount:<pool>[<namespace>/<service account>]` in the unconditional
/// `roles/iam.workloadIdentityUser` binding of the service account's IAM policy.
///
/// Build it with [`GcpWorkloadIdentityProvider::builder`]; every method takes a [`Binding`]
/// whose connection is `gcpServiceAccount`. The service account may live in another project
/// than the cluster.
///
/// - `bind` reads the policy (version 3): a member already bound is `Unchanged`; otherwise it
///   checks the service account (exists, enabled; once per provider), adds the member and
///   writes the policy with the `etag` read. A stale etag (someone else wrote) re-reads and
///   redoes the whole cycle; nothing of the other writer's is lost.
/// - Binds of many workloads to one service account, concurrent or in one batch, coalesce into
///   one read-modify-write.
/// - `unbind` removes only this member from the unconditional binding (dropping the binding
///   when it is left empty).
/// - `verify` diagnoses the cluster and its node pools, the service account, its keys, the
///   member, and lints the service account's project-level roles.
///
/// IAM members carry no ownership marks: a stale member is removed by the
/// [`Reconciler`](porter_identity_core::Reconciler) only when the previous deploy's bindings
/// name it.
pub struct GcpWorkloadIdentityProvider {
    pub(crate) api: Arc<dyn GcpApi>,
    pub(crate) calls: CloudCalls,
    pub(crate) source: PoolSource,
    pool: OnceCell<String>,
    usable: Mutex<HashMap<String, Arc<OnceCell<ServiceAccount>>>>,
    queues: Mutex<HashMap<String, Arc<PolicyQueue>>>,
    /// The policy of each service account as this provider last read or wrote it: where its
    /// next write starts (see `links`).
    policies: Mutex<HashMap<String, Policy>>,
}

impl fmt::Debug for GcpWorkloadIdentityProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcpWorkloadIdentityProvider")
            .field("source", &self.source)
            .field("api", &self.api)
            .field("retry", self.calls.retry_policy())
            .field("concurrency", &self.calls.concurrency())
            .finish_non_exhaustive()
    }
}

impl GcpWorkloadIdentityProvider {
    /// A builder; see [`crate::GcpWorkloadIdentityProviderBuilder`].
    pub fn builder() -> crate::GcpWorkloadIdentityProviderBuilder {
        crate::GcpWorkloadIdentityProviderBuilder::default()
    }

    pub(crate) fn new(
        api: Arc<dyn GcpApi>,
        source: PoolSource,
        retry: RetryPolicy,
        concurrency: Option<usize>,
    ) -> Self {
        GcpWorkloadIdentityProvider {
            api,
            calls: CloudCalls::new(retry, concurrency.unwrap_or(DEFAULT_CONCURRENCY)),
            source,
            pool: OnceCell::new(),
            usable: Mutex::new(HashMap::new()),
            queues: Mutex::new(HashMap::new()),
            policies: Mutex::new(HashMap::new()),
        }
    }

    /// The service account a binding names.
    pub(crate) fn email_of(binding: &Binding) -> Result<&GcpServiceAccountEmail> {
        ensure_cloud(Cloud::Gcp, binding)?;
        match &binding.connection {
            Connection::GcpServiceAccount {
                service_account_email,
                ..
            } => Ok(service_account_email),
            _ => Err(Error::invalid_input(
                "binding.connection",
                "is not gcpServiceAccount",
                "pass a gcpServiceAccount binding",
            )),
        }
    }

    /// The key of a binding's service account (emails compare without case).
    pub(crate) fn key_of(binding: &Binding) -> Option<String> {
        Self::email_of(binding)
            .ok()
            .map(|e| e.as_str().to_ascii_lowercase())
    }

    // ---- the workload pool ------------------------------------------------------------------

    /// The workload pool, read from the cluster once per provider (or given explicitly).
    pub(crate) async fn pool(&self, run: &RunContext) -> Result<&str> {
        self.pool
            .get_or_try_init(|| async {
                match &self.source {
                    PoolSource::Explicit(pool) => Ok(pool.clone()),
                    PoolSource::Gke(cluster) => {
                        let found = self.read_cluster(run, cluster).await?;
                        let pool = found
                            .workload_pool
                            .clone()
                            .ok_or_else(|| Self::workload_identity_off(cluster));
                        // The same read tells the cluster facts of this run its node pools.
                        run.share(ClusterRead(cluster.clone()), found);
                        pool
                    }
                }
            })
            .await
            .map(String::as_str)
    }

    /// `clusters.get` of `cluster`, its errors said for the cluster.
    pub(crate) async fn read_cluster(
        &self,
        run: &RunContext,
        cluster: &ClusterRef,
    ) -> Result<Cluster> {
        self.calls
            .run(run, op::CLUSTERS_GET, || self.api.get_cluster(cluster))
            .await
            .map_err(|e| self.cluster_error(cluster, e))
    }

    /// The member of a binding's workload in the pool.
    pub(crate) async fn member_of(&self, run: &RunContext, binding: &Binding) -> Result<String> {
        let pool = self.pool(run).await?;
        Ok(member(
            pool,
            binding.workload.namespace(),
            binding.workload.service_account(),
        ))
    }

    pub(crate) fn cluster_error(&self, cluster: &ClusterRef, e: Error) -> Error {
        if e.kind() != ErrorKind::NotFound {
            return e;
        }
        op::CLUSTERS_GET.error(ErrorKind::NotFound,
            format!("GKE cluster {cluster} was not found"),
        )
        .with_fix(format!(
            "check the project, location and name (`gcloud container clusters list --project {}`), or give the workload pool explicitly for a cluster that is not GKE",
            cluster.project
        ))
        .with_source(e)
    }

    /// Workload Identity is off on the cluster: it has no workload pool.
    pub(crate) fn workload_identity_off(cluster: &ClusterRef) -> Error {
        op::CLUSTERS_GET.error(ErrorKind::Conflict,
            format!(
                "Workload Identity is not enabled on GKE cluster {cluster}: it has no workload pool, so no Kubernetes service account of it can act as a GCP service account"
            ),
        )
        .with_fix(enable_workload_identity_command(cluster))
    }

    // ---- the service account ----------------------------------------------------------------

    /// `serviceAccounts.get`, afresh, its errors said for the binding.
    pub(crate) async fn read_service_account(
        &self,
        run: &RunContext,
        email: &GcpServiceAccountEmail,
    ) -> Result<ServiceAccount> {
        self.calls
            .run(run, op::SERVICE_ACCOUNTS_GET, || {
                self.api.get_service_account(email.as_str())
            })
            .await
            .map_err(|e| Self::service_account_error(email, e))
    }

    /// Checks, once per provider and before its first write, that the service account exists
    /// and is enabled. A failed check is not kept: fixing it is seen on the next bind.
    pub(crate) async fn ensure_usable(
        &self,
        run: &RunContext,
        email: &GcpServiceAccountEmail,
    ) -> Result<()> {
        let cell = self
            .usable
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(email.as_str().to_ascii_lowercase())
            .or_default()
            .clone();
        cell.get_or_try_init(|| async {
            let sa = self.read_service_account(run, email).await?;
            if sa.disabled {
                return Err(Self::disabled(email));
            }
            Ok(sa)
        })
        .await
        .map(drop)
    }

    pub(crate) fn disabled(email: &GcpServiceAccountEmail) -> Error {
        op::SERVICE_ACCOUNTS_GET.error(ErrorKind::Conflict,
            format!(
                "GCP service account {email} is disabled: no workload can act as it until it is enabled"
            ),
        )
        .with_fix(format!(
            "enable it with `gcloud iam service-accounts enable {email}`, or use another service account"
        ))
    }

    /// A service account that is missing, said with the command that creates it; other errors
    /// as they are.
    pub(crate) fn service_account_error(email: &GcpServiceAccountEmail, e: Error) -> Error {
        if e.kind() != ErrorKind::NotFound {
            return e;
        }
        let operation = e
            .operation()
            .unwrap_or(op::SERVICE_ACCOUNTS_GET.name())
            .to_owned();
        Error::cloud(
            ErrorKind::NotFound,
            Cloud::Gcp,
            operation,
            format!("GCP service account {email} does not exist"),
        )
        .with_fix(format!(
            "create it with `gcloud iam service-accounts create {} --project {}`, or correct gcpServiceAccount.serviceAccountEmail in porter.yaml",
            email.account_id(),
            email.project_id()
        ))
        .with_source(e)
    }

    /// The queue that coalesces the edits of one service account's policy.
    pub(crate) fn queue(&self, email: &GcpServiceAccountEmail) -> Arc<PolicyQueue> {
        self.queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(email.as_str().to_ascii_lowercase())
            .or_default()
            .clone()
    }

    /// The policy this provider last read or wrote for `email`.
    pub(crate) fn remembered_policy(&self, email: &GcpServiceAccountEmail) -> Option<Policy> {
        self.policies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&email.as_str().to_ascii_lowercase())
            .cloned()
    }

    /// Remembers (or, with `None`, forgets) the policy of `email`.
    pub(crate) fn remember_policy(&self, email: &GcpServiceAccountEmail, policy: Option<Policy>) {
        let mut policies = self.policies.lock().unwrap_or_else(PoisonError::into_inner);
        let key = email.as_str().to_ascii_lowercase();
        match policy {
            Some(p) => {
                policies.insert(key, p);
            }
            None => {
                policies.remove(&key);
            }
        }
    }

    /// What the Kubernetes side needs: the annotation, always; a restart of pods created before
    /// a change.
    pub(crate) fn patch(email: &GcpServiceAccountEmail, changed: bool) -> ServiceAccountPatch {
        let mut patch = ServiceAccountPatch::default();
        patch.annotations.insert(
            GCP_SERVICE_ACCOUNT_ANNOTATION.to_owned(),
            email.as_str().to_owned(),
        );
        if changed {
            patch.needs_pod_restart = true;
            patch.notes.push(
                "the GKE metadata server hands out the service account's tokens to pods started after the binding: restart pods created before it".into(),
            );
        }
        patch
    }

    /// The cloud's id of a link: the member, on the service account.
    pub(crate) fn resource_id(email: &GcpServiceAccountEmail, member: &str) -> String {
        format!("{member} on {email}")
    }
}

#[async_trait]
impl WorkloadIdentityProvider for GcpWorkloadIdentityProvider {
    fn cloud(&self) -> Cloud {
        Cloud::Gcp
    }

    fn concurrency(&self) -> usize {
        self.calls.concurrency()
    }

    #[tracing::instrument(skip_all, fields(bindings = bindings.len()))]
    async fn plan_all(&self, run: &RunContext, bindings: &[Binding]) -> Vec<Result<Plan>> {
        self.plan_batch(run, bindings).await
    }

    #[tracing::instrument(skip_all, fields(bindings = bindings.len()))]
    async fn bind_all(&self, run: &RunContext, bindings: &[Binding]) -> Vec<Result<BindOutcome>> {
        self.bind_batch(run, bindings).await
    }

    #[tracing::instrument(skip_all, fields(bindings = bindings.len()))]
    async fn unbind_all(
        &self,
        run: &RunContext,
        bindings: &[Binding],
    ) -> Vec<Result<UnbindOutcome>> {
        self.unbind_batch(run, bindings).await
    }

    /// The node pools not in `GKE_METADATA` mode, when the provider knows its GKE cluster (the
    /// cluster read of this run's binds, or one `clusters.get`); nothing when it was given only
    /// a workload pool.
    #[tracing::instrument(skip_all)]
    async fn cluster_facts(&self, run: &RunContext) -> Result<ClusterFacts> {
        let mut facts = ClusterFacts::default();
        if let PoolSource::Gke(_) = &self.source {
            facts.pools_without_gke_metadata = self.pools_without_gke_metadata(run).await?;
        }
        Ok(facts)
    }

    #[tracing::instrument(skip_all, fields(bindings = bindings.len()))]
    async fn verify_all(
        &self,
        run: &RunContext,
        bindings: &[Binding],
    ) -> Vec<Result<VerifyReport>> {
        let refused = batch_refusals(bindings, false, |b| ensure_cloud(Cloud::Gcp, b));
        each_binding(bindings, refused, self.calls.concurrency(), |b| {
            self.verify_binding(run, b)
        })
        .await
    }
}
