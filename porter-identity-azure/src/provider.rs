//! `AzureWorkloadIdentityProvider`: the logic of federated identity credentials, over the
//! [`ArmApi`] port.
//!
//! This module holds the provider, the calls it makes and the trait it implements; the batch
//! logic (one identity read and one credential listing per identity) is in `links`, the
//! stale-link search in `stale`, the diagnosis in `verify`.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use futures_util::TryStreamExt;
use porter_identity_core::provider::{
    CloudCalls, SharedRead, batch_refusals, each_binding, ensure_cloud, pages,
};
use porter_identity_core::{
    AzureIdentityName, AzureResourceGroup, BindOutcome, Binding, Cloud, Connection,
    DEFAULT_CONCURRENCY, Error, ErrorKind, Plan, Result, RetryPolicy, RunContext,
    ServiceAccountPatch, StaleLink, StaleQuery, UnbindOutcome, VerifyReport,
    WorkloadIdentityProvider,
};
use tokio::sync::OnceCell;

use crate::api::{ArmApi, CredentialPage, CredentialSpec, FederatedCredential, Identity};
use crate::names::TOKEN_EXCHANGE_AUDIENCE;
use crate::operation as op;

/// Every federated identity credential of one identity, as seen with one issuer, listed by a
/// batch's binds and shared with the stale-link search of the same run.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct CredentialsListing {
    pub(crate) issuer: String,
    pub(crate) identity: String,
}

impl SharedRead for CredentialsListing {
    type Value = Vec<FederatedCredential>;
}

/// The AKS cluster's issuer read that failed in a run (after its retries), so that the other
/// identity groups of the run and its stale-link search say that error instead of each
/// spending a retry budget of their own on an endpoint that just gave up.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct IssuerFailure {
    /// The cluster, `<resource group>/<name>`: two providers may share a run.
    cluster: String,
}

impl SharedRead for IssuerFailure {
    type Value = Error;
}

/// The ServiceAccount annotation naming the identity's client id.
pub const CLIENT_ID_ANNOTATION: &str = "azure.workload.identity/client-id";
/// The pod label that makes the workload identity webhook inject the token.
pub const USE_LABEL: &str = "azure.workload.identity/use";

/// Where the cluster's OIDC issuer comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ClusterSource {
    /// An AKS cluster, read once per provider.
    Aks {
        resource_group: String,
        name: String,
    },
    /// An issuer given explicitly (EKS, GKE, self-managed clusters federating into Azure).
    Issuer(String),
}

/// Links Kubernetes workloads of one cluster to Azure user-assigned managed identities with
/// federated identity credentials that trust the cluster's OIDC issuer for
/// `system:serviceaccount:<namespace>:<service account>`.
///
/// Build it with [`AzureWorkloadIdentityProvider::builder`]; every method takes a
/// [`Binding`] whose connection is `azureManagedIdentity` (the identity lives in the provider's
/// subscription).
///
/// - `bind` reads the identity (once per provider) and lists its credentials: a credential with
///   the same issuer and subject under any name is kept (`Unchanged`) or its audience fixed in
///   place (`Updated`); otherwise one is created under a deterministic name, unless the
///   identity already holds 20 (`LimitExceeded`, before any write, listing what it holds).
/// - `unbind` deletes every credential of the identity with this issuer and subject.
/// - `bind_all`, `plan_all` and `unbind_all` read each identity and list its credentials once
///   for the whole batch, and write to one identity at a time.
/// - `verify` diagnoses the cluster, the identity, the credential and lints the identity's role
///   assignments for least privilege.
///
/// A credential whose name marks another app or service (names are the ownership marks of
/// Azure credentials) is never changed or deleted: a `Conflict` naming the owner.
///
/// Writes to one identity are serialised inside the provider; Azure's 409 for a concurrent
/// write from another process is retried with backoff and jitter, and a duplicate issuer and
/// subject created meanwhile by another process is adopted.
pub struct AzureWorkloadIdentityProvider {
    pub(crate) api: Arc<dyn ArmApi>,
    pub(crate) calls: CloudCalls,
    pub(crate) cluster: ClusterSource,
    issuer: OnceCell<String>,
    identities: Mutex<HashMap<String, Arc<OnceCell<Identity>>>>,
    write_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl fmt::Debug for AzureWorkloadIdentityProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureWorkloadIdentityProvider")
            .field("cluster", &self.cluster)
            .field("api", &self.api)
            .field("retry", self.calls.retry_policy())
            .field("concurrency", &self.calls.concurrency())
            .finish_non_exhaustive()
    }
}

/// The key of an identity: its resource group and name, as ARM compares them (without case).
pub(crate) fn identity_key(resource_group: &str, name: &str) -> String {
    format!("{resource_group}/{name}").to_ascii_lowercase()
}

/// The identity key of a binding, if it is an Azure one.
pub(crate) fn key_of(b: &Binding) -> Option<String> {
    AzureWorkloadIdentityProvider::identity_ref(b)
        .ok()
        .map(|(rg, name)| identity_key(rg.as_str(), name.as_str()))
}

impl AzureWorkloadIdentityProvider {
    /// A builder; see [`crate::AzureWorkloadIdentityProviderBuilder`].
    pub fn builder() -> crate::AzureWorkloadIdentityProviderBuilder {
        crate::AzureWorkloadIdentityProviderBuilder::default()
    }

    pub(crate) fn new(
        api: Arc<dyn ArmApi>,
        cluster: ClusterSource,
        retry: RetryPolicy,
        concurrency: Option<usize>,
    ) -> Self {
        AzureWorkloadIdentityProvider {
            api,
            calls: CloudCalls::new(retry, concurrency.unwrap_or(DEFAULT_CONCURRENCY)),
            cluster,
            issuer: OnceCell::new(),
            identities: Mutex::new(HashMap::new()),
            write_locks: Mutex::new(HashMap::new()),
        }
    }

    /// The identity a binding names.
    pub(crate) fn identity_ref(
        binding: &Binding,
    ) -> Result<(&AzureResourceGroup, &AzureIdentityName)> {
        ensure_cloud(Cloud::Azure, binding)?;
        match &binding.connection {
            Connection::AzureManagedIdentity {
                identity_name,
                resource_group,
                ..
            } => Ok((resource_group, identity_name)),
            _ => Err(Error::invalid_input(
                "binding.connection",
                "is not azureManagedIdentity",
                "pass an azureManagedIdentity binding",
            )),
        }
    }

    // ---- the cluster's issuer -----------------------------------------------------------------

    /// The cluster's OIDC issuer, read once per provider (or given explicitly).
    pub(crate) async fn issuer(&self, run: &RunContext) -> Result<&str> {
        self.issuer
            .get_or_try_init(|| async {
                match &self.cluster {
                    ClusterSource::Issuer(url) => Ok(url.clone()),
                    ClusterSource::Aks {
                        resource_group,
                        name,
                    } => {
                        // Inits run one at a time: a waiter that finds this run's read failed
                        // says so without reading again.
                        let failure = || IssuerFailure {
                            cluster: format!("{resource_group}/{name}"),
                        };
                        if let Some(e) = run.take_shared(&failure()) {
                            run.share(failure(), e.clone());
                            return Err(e);
                        }
                        let read = self
                            .calls
                            .run(run, op::MANAGED_CLUSTERS_GET, || {
                                self.api.get_managed_cluster(resource_group, name)
                            })
                            .await
                            .map_err(|e| self.cluster_error(e))
                            .and_then(|cluster| {
                                cluster
                                    .issuer_url
                                    .filter(|_| cluster.oidc_issuer_enabled)
                                    .ok_or_else(|| self.oidc_disabled())
                            });
                        if let Err(e) = &read {
                            run.share(failure(), e.clone());
                        }
                        read
                    }
                }
            })
            .await
            .map(String::as_str)
    }

    /// The error of reads joined with the issuer's: when it is an outage of ARM (whose one
    /// endpoint serves the cluster read too) and the issuer read was stopped with them before
    /// it could say so, the run remembers it as the issuer read's failure, so that the stale-link
    /// search of the run does not try the endpoint again. Returns `e`.
    pub(crate) fn issuer_stopped(&self, run: &RunContext, e: Error) -> Error {
        if let ClusterSource::Aks {
            resource_group,
            name,
        } = &self.cluster
            && self.issuer.get().is_none()
            && e.kind() == ErrorKind::Unavailable
            && e.is_retryable()
        {
            let failure = || IssuerFailure {
                cluster: format!("{resource_group}/{name}"),
            };
            let known = run.take_shared(&failure());
            run.share(failure(), known.unwrap_or_else(|| e.clone()));
        }
        e
    }

    pub(crate) fn cluster_error(&self, e: Error) -> Error {
        match (&self.cluster, e.kind()) {
            (
                ClusterSource::Aks {
                    resource_group,
                    name,
                },
                ErrorKind::NotFound,
            ) => op::MANAGED_CLUSTERS_GET.error(ErrorKind::NotFound,
                format!("AKS cluster {resource_group}/{name} was not found"),
            )
            .with_fix(format!(
                "check the cluster's resource group and name (`az aks show --resource-group {resource_group} --name {name}`) and that AZURE_SUBSCRIPTION_ID is its subscription"
            ))
            .with_source(e),
            _ => e,
        }
    }

    /// The `az aks update` command that turns the OIDC issuer and workload identity on.
    pub(crate) fn enable_command(&self) -> String {
        match &self.cluster {
            ClusterSource::Aks {
                resource_group,
                name,
            } => format!(
                "az aks update --resource-group {resource_group} --name {name} --enable-oidc-issuer --enable-workload-identity"
            ),
            ClusterSource::Issuer(_) => "turn on the cluster's OIDC issuer".to_owned(),
        }
    }

    /// What is wrong when the cluster's OIDC issuer is off.
    pub(crate) fn oidc_disabled_message(&self) -> String {
        let name = match &self.cluster {
            ClusterSource::Aks {
                resource_group,
                name,
            } => format!("{resource_group}/{name}"),
            ClusterSource::Issuer(url) => url.clone(),
        };
        format!(
            "the OIDC issuer of AKS cluster {name} is off: no federated identity credential can trust its service accounts"
        )
    }

    pub(crate) fn oidc_disabled(&self) -> Error {
        op::MANAGED_CLUSTERS_GET
            .error(ErrorKind::Conflict, self.oidc_disabled_message())
            .with_fix(self.enable_command())
    }

    // ---- identities -------------------------------------------------------------------------

    /// The identity of a binding, read once per provider. A missing identity is not cached, so
    /// creating it is seen on the next call.
    pub(crate) async fn identity(&self, run: &RunContext, binding: &Binding) -> Result<Identity> {
        let (rg, name) = Self::identity_ref(binding)?;
        let cell = {
            let mut cells = self
                .identities
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            cells
                .entry(identity_key(rg.as_str(), name.as_str()))
                .or_default()
                .clone()
        };
        cell.get_or_try_init(|| self.read_identity(run, binding))
            .await
            .cloned()
    }

    /// UserAssignedIdentities_Get, afresh.
    pub(crate) async fn read_identity(
        &self,
        run: &RunContext,
        binding: &Binding,
    ) -> Result<Identity> {
        let (rg, name) = Self::identity_ref(binding)?;
        self.calls
            .run(run, op::USER_ASSIGNED_IDENTITIES_GET, || {
                self.api.get_identity(rg.as_str(), name.as_str())
            })
            .await
            .map_err(|e| {
                if e.kind() == ErrorKind::NotFound {
                    op::USER_ASSIGNED_IDENTITIES_GET.error(ErrorKind::NotFound,
                        format!(
                            "managed identity {rg}/{name} (azureManagedIdentity of service {}) does not exist",
                            binding.workload.service()
                        ),
                    )
                    .with_fix(format!(
                        "create it with `az identity create --resource-group {rg} --name {name}`, or correct identityName and resourceGroup in porter.yaml"
                    ))
                    .with_source(e)
                } else {
                    e
                }
            })
    }

    // ---- credentials ------------------------------------------------------------------------

    /// Every federated identity credential of an identity, every page, each page one call.
    pub(crate) async fn list_credentials(
        &self,
        run: &RunContext,
        resource_group: &str,
        identity: &str,
    ) -> Result<Vec<FederatedCredential>> {
        pages(
            op::FEDERATED_IDENTITY_CREDENTIALS_LIST,
            |next: Option<String>, _page| async move {
                let CredentialPage {
                    credentials,
                    next_link,
                } = self
                    .calls
                    .run(run, op::FEDERATED_IDENTITY_CREDENTIALS_LIST, || {
                        self.api
                            .list_federated_credentials(resource_group, identity, next.clone())
                    })
                    .await?;
                Ok((credentials, next_link))
            },
        )
        .try_concat()
        .await
    }

    /// The lock that keeps this provider's writes to one identity one at a time.
    pub(crate) fn write_lock(
        &self,
        resource_group: &str,
        identity: &str,
    ) -> Arc<tokio::sync::Mutex<()>> {
        self.write_locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(identity_key(resource_group, identity))
            .or_default()
            .clone()
    }

    /// Creates or replaces credential `name`, one write at a time per identity. Azure's 409
    /// for another process's concurrent write is retried by the policy.
    pub(crate) async fn put_credential(
        &self,
        run: &RunContext,
        resource_group: &str,
        identity: &str,
        name: &str,
        spec: &CredentialSpec,
    ) -> Result<FederatedCredential> {
        let lock = self.write_lock(resource_group, identity);
        let _one_at_a_time = lock.lock().await;
        self.calls
            .run(
                run,
                op::FEDERATED_IDENTITY_CREDENTIALS_CREATE_OR_UPDATE,
                || {
                    self.api
                        .put_federated_credential(resource_group, identity, name, spec)
                },
            )
            .await
    }

    /// Deletes credential `name`, one write at a time per identity; `false` when it was
    /// already gone.
    pub(crate) async fn delete_credential(
        &self,
        run: &RunContext,
        resource_group: &str,
        identity: &str,
        name: &str,
    ) -> Result<bool> {
        let lock = self.write_lock(resource_group, identity);
        let _one_at_a_time = lock.lock().await;
        self.calls
            .run(run, op::FEDERATED_IDENTITY_CREDENTIALS_DELETE, || {
                self.api
                    .delete_federated_credential(resource_group, identity, name)
            })
            .await
    }

    /// The credential spec of a binding: the cluster's issuer, the workload's subject, the one
    /// audience.
    pub(crate) fn spec(issuer: &str, binding: &Binding) -> CredentialSpec {
        CredentialSpec {
            issuer: issuer.to_owned(),
            subject: binding.workload.subject(),
            audiences: vec![TOKEN_EXCHANGE_AUDIENCE.to_owned()],
        }
    }

    /// What the Kubernetes side needs: the client-id annotation and the pod label, always;
    /// a restart of pods created before a change.
    pub(crate) fn patch(identity: &Identity, changed: bool) -> ServiceAccountPatch {
        let mut patch = ServiceAccountPatch::default();
        patch
            .annotations
            .insert(CLIENT_ID_ANNOTATION.to_owned(), identity.client_id.clone());
        patch
            .pod_labels
            .insert(USE_LABEL.to_owned(), "true".to_owned());
        if changed {
            patch.needs_pod_restart = true;
            patch.notes.push(
                "the workload identity webhook injects the token at pod admission: pods created before this change must be restarted".into(),
            );
        }
        patch
    }
}

#[async_trait]
impl WorkloadIdentityProvider for AzureWorkloadIdentityProvider {
    fn cloud(&self) -> Cloud {
        Cloud::Azure
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

    #[tracing::instrument(skip_all, fields(bindings = bindings.len()))]
    async fn verify_all(
        &self,
        run: &RunContext,
        bindings: &[Binding],
    ) -> Vec<Result<VerifyReport>> {
        let refused = batch_refusals(bindings, false, |b| ensure_cloud(Cloud::Azure, b));
        each_binding(bindings, refused, self.calls.concurrency(), |b| {
            self.verify_binding(run, b)
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(app = %query.app, namespace = %query.namespace))]
    async fn stale_links(
        &self,
        run: &RunContext,
        query: &StaleQuery<'_>,
    ) -> Result<Vec<StaleLink>> {
        self.find_stale(run, query).await
    }

    #[tracing::instrument(skip_all, fields(links = links.len()))]
    async fn remove_stale_links(
        &self,
        run: &RunContext,
        links: &[StaleLink],
    ) -> Vec<Result<UnbindOutcome>> {
        self.remove_stale(run, links).await
    }
}
