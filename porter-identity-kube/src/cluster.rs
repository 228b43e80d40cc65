//! [`Cluster`]: a kube-rs client, and the reads and writes of the Kubernetes step — each one
//! API call, retried by the [`RetryPolicy`] like a cloud call, in one `kube.call` span.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{Node, Pod, ServiceAccount};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, Resource};
use porter_identity_core::{DEFAULT_CONCURRENCY, Error, ErrorKind, Result, RetryPolicy};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::apply::{self, FIELD_MANAGER};
use crate::workloads::{PodWorkload, WorkloadKind};

/// A Kubernetes cluster, reached through kube-rs.
///
/// ```no_run
/// # async fn demo() -> porter_identity_core::Result<()> {
/// use porter_identity_kube::Cluster;
/// // KUBECONFIG, else ~/.kube/config, else the in-cluster service account:
/// let cluster = Cluster::builder().from_env().await?;
/// // or from a client you built:
/// let client = kube::Client::try_default().await.expect("a kubeconfig");
/// let cluster = Cluster::builder().client(client).build().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Cluster {
    client: Client,
    retry: RetryPolicy,
    /// At most this many API calls of this cluster (and its clones) in flight: a deploy tool
    /// that runs many reconciles side by side on one `Cluster` stays within it.
    gate: Arc<Semaphore>,
    concurrency: usize,
}

impl Debug for Cluster {
    // The client holds the kubeconfig's credentials: only where it points is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("default_namespace", &self.client.default_namespace())
            .field("retry", &self.retry)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Cluster`]: from a ready client, a kubeconfig's text, or the environment.
#[derive(Default)]
pub struct ClusterBuilder {
    client: Option<Client>,
    kubeconfig: Option<String>,
    retry: Option<RetryPolicy>,
    concurrency: Option<usize>,
}

impl Debug for ClusterBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterBuilder")
            .field("client", &self.client.is_some())
            .field(
                "kubeconfig",
                &self.kubeconfig.as_ref().map(|_| "<redacted>"),
            )
            .field("retry", &self.retry)
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

impl ClusterBuilder {
    /// Uses this kube-rs client.
    #[must_use]
    pub fn client(mut self, client: Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Uses this kubeconfig (its YAML text; its current context).
    #[must_use]
    pub fn kubeconfig(mut self, yaml: impl Into<String>) -> Self {
        self.kubeconfig = Some(yaml.into());
        self
    }

    /// How calls are retried (429 and 5xx answers, timeouts); the default otherwise.
    #[must_use]
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// At most `n` API calls in flight (at least 1), as the clouds' providers bound theirs;
    /// [`DEFAULT_CONCURRENCY`] otherwise. It holds for every clone of the cluster (the steps
    /// it makes included), so reconciles run side by side on one `Cluster` share it.
    #[must_use]
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = Some(n.max(1));
        self
    }

    /// The cluster of the [`client`](Self::client) or [`kubeconfig`](Self::kubeconfig) given.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] when neither was given (use [`from_env`](Self::from_env)),
    /// or the kubeconfig is not usable, naming what kube-rs said.
    pub async fn build(self) -> Result<Cluster> {
        self.connect(false).await
    }

    /// The cluster of the environment, as kube-rs finds it: `KUBECONFIG`, else
    /// `~/.kube/config`, else in-cluster; a [`client`](Self::client) or
    /// [`kubeconfig`](Self::kubeconfig) given explicitly wins.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] naming what is missing.
    pub async fn from_env(self) -> Result<Cluster> {
        self.connect(true).await
    }

    /// The client given, the kubeconfig given, or (with `infer`) the environment's.
    async fn connect(self, infer: bool) -> Result<Cluster> {
        // With two rustls crypto providers linked (ring here, aws-lc from the AWS SDK), rustls
        // picks none by itself: install ring unless the process already chose one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = match (self.client, self.kubeconfig) {
            (Some(client), _) => client,
            (None, Some(yaml)) => client_from_kubeconfig(&yaml).await?,
            (None, None) if !infer => {
                return Err(Error::invalid_input(
                    "cluster",
                    "has no client and no kubeconfig",
                    "call .client(client) or .kubeconfig(yaml) on the builder, or .from_env() to use KUBECONFIG, ~/.kube/config or the pod's service account",
                ));
            }
            (None, None) => {
                let config = kube::Config::infer().await.map_err(|e| {
                    Error::invalid_input(
                        "kubeconfig",
                        format!("no Kubernetes cluster configured: {e}"),
                        "set KUBECONFIG to a kubeconfig file (or create ~/.kube/config, e.g. with `aws eks update-kubeconfig`, `az aks get-credentials` or `gcloud container clusters get-credentials`), or run in a pod",
                    )
                })?;
                client_from_config(config)?
            }
        };
        let concurrency = self.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
        Ok(Cluster {
            client,
            retry: self.retry.unwrap_or_default(),
            gate: Arc::new(Semaphore::new(concurrency)),
            concurrency,
        })
    }
}

async fn client_from_kubeconfig(yaml: &str) -> Result<Client> {
    let invalid = |e: &dyn std::fmt::Display| {
        Error::invalid_input(
            "kubeconfig",
            format!("kube-rs refused it: {e}"),
            "give a kubeconfig with a current context, its cluster's server and credentials",
        )
    };
    let config = kube::config::Kubeconfig::from_yaml(yaml).map_err(|e| invalid(&e))?;
    let config =
        kube::Config::from_custom_kubeconfig(config, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(|e| invalid(&e))?;
    client_from_config(config)
}

/// The client of `config`, without kube-rs's own retry layer: the [`RetryPolicy`] is the one
/// retry layer (kube-rs's retries 429s at once, ignoring the server's `retryAfterSeconds`, and
/// its attempts would multiply the policy's).
fn client_from_config(mut config: kube::Config) -> Result<Client> {
    config.default_retry = false;
    Client::try_from(config).map_err(|e| {
        Error::invalid_input(
            "kubeconfig",
            format!("kube-rs cannot build a client from it: {e}"),
            "give a kubeconfig with a current context, its cluster's server and credentials",
        )
    })
}

/// A kube-rs error in porter-identity's terms: the kind from the HTTP status, the API server's
/// message, and what to do.
pub(crate) fn map_error(operation: &str, e: kube::Error) -> Error {
    match e {
        kube::Error::Api(status) => {
            let kind = match status.code {
                400 | 422 => ErrorKind::InvalidInput,
                401 => ErrorKind::Unauthenticated,
                403 => ErrorKind::PermissionDenied,
                404 => ErrorKind::NotFound,
                409 if status.reason == "AlreadyExists" => ErrorKind::AlreadyExists,
                409 => ErrorKind::Conflict,
                429 => ErrorKind::Throttled,
                500..=599 => ErrorKind::Unavailable,
                _ => ErrorKind::Other,
            };
            let fix = match kind {
                ErrorKind::Unauthenticated => {
                    "the kubeconfig's credentials were refused: refresh them (get the cluster's credentials again) or point KUBECONFIG at a current kubeconfig".to_owned()
                }
                ErrorKind::PermissionDenied => format!(
                    "grant the caller RBAC permission to {operation} (porter-identity gets, lists and patches ServiceAccounts, Deployments, StatefulSets, DaemonSets and CronJobs, and lists pods and nodes)"
                ),
                _ => String::new(),
            };
            if status.code == 409
                && status.reason == "Conflict"
                && status.message.starts_with("Apply failed")
            {
                return apply_conflict(operation, &status);
            }
            let retry_after = status
                .details
                .as_ref()
                .map(|d| d.retry_after_seconds)
                .filter(|s| *s > 0);
            let mut err = Error::kubernetes(kind, operation, status.message.clone())
                .with_fix(fix)
                .with_source(kube::Error::Api(status));
            if let Some(s) = retry_after {
                err = err.with_retry_after(std::time::Duration::from_secs(u64::from(s)));
            }
            err
        }
        kube::Error::HyperError(_) | kube::Error::Service(_) => Error::kubernetes(
            ErrorKind::Unavailable,
            operation,
            format!("the API server could not be reached: {e}"),
        )
        .with_fix("check that the kubeconfig's server is reachable from here and its certificate authority is the cluster's")
        .with_source(e),
        other => Error::kubernetes(ErrorKind::Other, operation, other.to_string()).with_source(other),
    }
}

/// A server-side apply refused because another field manager owns fields with other values:
/// which fields and which managers, from the 409's causes (or its message).
fn apply_conflict(operation: &str, status: &kube::core::Status) -> Error {
    let causes: Vec<(String, String)> = status
        .details
        .iter()
        .flat_map(|d| &d.causes)
        .filter(|c| c.reason == "FieldManagerConflict")
        .map(|c| (c.field.clone(), manager_in(&c.message)))
        .collect();
    let (owners, managers): (Vec<String>, Vec<String>) = if causes.is_empty() {
        let manager = manager_in(&status.message);
        (vec![status.message.clone()], vec![manager])
    } else {
        causes
            .iter()
            .map(|(field, manager)| {
                (
                    format!("{field} is owned by field manager \"{manager}\""),
                    manager.clone(),
                )
            })
            .unzip()
    };
    let mut managers = managers;
    managers.dedup();
    Error::kubernetes(
        ErrorKind::Conflict,
        operation,
        format!("another field manager set it with another value: {}", owners.join("; ")),
    )
    .with_fix(format!(
        "change or remove the value with the tool that set it ({}), or take the fields over by applying with force (the CLI's --force-conflicts)",
        managers.join(", ")
    ))
}

/// The manager named in `conflict with "helm" using v1` (or the message itself).
fn manager_in(message: &str) -> String {
    message
        .split_once("conflict with \"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map_or_else(|| message.to_owned(), |(m, _)| m.to_owned())
}

impl Cluster {
    /// A builder: [`client`](ClusterBuilder::client) (the port: a ready kube-rs client),
    /// [`kubeconfig`](ClusterBuilder::kubeconfig),
    /// [`retry_policy`](ClusterBuilder::retry_policy), then
    /// [`build`](ClusterBuilder::build) or [`from_env`](ClusterBuilder::from_env).
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder::default()
    }

    /// The kube-rs client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// One API call: within the concurrency bound, retried, in a `kube.call` span (the
    /// operation, never a credential).
    async fn call<T, F, Fut>(&self, operation: &str, mut f: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<T, kube::Error>>,
    {
        let span = tracing::debug_span!("kube.call", operation);
        // The semaphore is never closed: acquiring fails only in theory, and then the call
        // goes through ungated. The place is held over the retries, as the clouds' gate does.
        let _place = self.gate.acquire().await.ok();
        self.retry
            .run_kubernetes(operation, || {
                let fut = f();
                async move { fut.await.map_err(|e| map_error(operation, e)) }
            })
            .instrument(span)
            .await
    }

    /// The ServiceAccount `namespace/name`, if it exists.
    ///
    /// # Errors
    /// When the API server cannot be read.
    pub async fn service_account(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<ServiceAccount>> {
        let api: Api<ServiceAccount> = self.api_in(Some(namespace));
        self.call(&format!("get ServiceAccount {namespace}/{name}"), || {
            api.get_opt(name)
        })
        .await
    }

    /// The ServiceAccounts of `namespace`.
    ///
    /// # Errors
    /// When the API server cannot be read.
    pub async fn service_accounts(&self, namespace: Option<&str>) -> Result<Vec<ServiceAccount>> {
        let api: Api<ServiceAccount> = self.api_in(namespace);
        let lp = ListParams::default();
        let op = format!(
            "list ServiceAccounts in {}",
            namespace.unwrap_or("every namespace")
        );
        Ok(self.call(&op, || api.list(&lp)).await?.items)
    }

    /// The API of a namespaced kind: in `namespace`, or across all namespaces (`None`).
    fn api_in<K>(&self, namespace: Option<&str>) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        match namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        }
    }

    /// The Deployments, StatefulSets, DaemonSets and CronJobs of `namespace`.
    ///
    /// # Errors
    /// When the API server cannot be read.
    pub async fn workloads(&self, namespace: &str) -> Result<Vec<PodWorkload>> {
        // Four lists, read at once.
        let (d, s, ds, c) = futures_util::future::try_join4(
            self.workloads_of::<Deployment>(namespace, "Deployment"),
            self.workloads_of::<StatefulSet>(namespace, "StatefulSet"),
            self.workloads_of::<DaemonSet>(namespace, "DaemonSet"),
            self.workloads_of::<CronJob>(namespace, "CronJob"),
        )
        .await?;
        Ok([d, s, ds, c].concat())
    }

    async fn workloads_of<K>(&self, namespace: &str, kind: &str) -> Result<Vec<PodWorkload>>
    where
        K: Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
        K::DynamicType: Default,
        for<'k> PodWorkload: From<&'k K>,
    {
        let api: Api<K> = self.api_in(Some(namespace));
        let lp = ListParams::default();
        let op = format!("list {kind}s in {namespace}");
        let list = self.call(&op, || api.list(&lp)).await?;
        Ok(list.items.iter().map(PodWorkload::from).collect())
    }

    /// The pods of `namespace` that run as `service_account` (a field selector: the API server
    /// filters).
    ///
    /// # Errors
    /// When the API server cannot be read.
    pub async fn pods_running_as(
        &self,
        namespace: &str,
        service_account: &str,
    ) -> Result<Vec<Pod>> {
        let api: Api<Pod> = self.api_in(Some(namespace));
        let lp =
            ListParams::default().fields(&format!("spec.serviceAccountName={service_account}"));
        let op = format!("list pods of ServiceAccount {namespace}/{service_account}");
        Ok(self.call(&op, || api.list(&lp)).await?.items)
    }

    /// Every pod of `namespace`.
    ///
    /// # Errors
    /// When the API server cannot be read.
    pub async fn pods_in(&self, namespace: &str) -> Result<Vec<Pod>> {
        let api: Api<Pod> = self.api_in(Some(namespace));
        let lp = ListParams::default();
        Ok(self
            .call(&format!("list pods in {namespace}"), || api.list(&lp))
            .await?
            .items)
    }

    /// How many API calls of this cluster may be in flight at once.
    pub(crate) fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// The pods on `node`, in every namespace.
    ///
    /// # Errors
    /// When the API server cannot be read.
    pub async fn pods_on_node(&self, node: &str) -> Result<Vec<Pod>> {
        let api: Api<Pod> = self.api_in(None);
        let lp = ListParams::default().fields(&format!("spec.nodeName={node}"));
        Ok(self
            .call(&format!("list pods on node {node}"), || api.list(&lp))
            .await?
            .items)
    }

    /// The nodes, all of them or those with `label_selector` (e.g.
    /// `cloud.google.com/gke-nodepool=default-pool`).
    ///
    /// # Errors
    /// When the API server cannot be read.
    pub async fn nodes(&self, label_selector: Option<&str>) -> Result<Vec<Node>> {
        let api: Api<Node> = Api::all(self.client.clone());
        let mut lp = ListParams::default();
        if let Some(selector) = label_selector {
            lp = lp.labels(selector);
        }
        Ok(self.call("list nodes", || api.list(&lp)).await?.items)
    }

    /// Server-side apply of `annotations` on the ServiceAccount `namespace/name`, with field
    /// manager `porter-identity` (annotations it applied before and no longer applies are
    /// removed). An annotation another field manager owns with another value is a
    /// [`ErrorKind::Conflict`] naming that manager; `force` takes it over instead.
    ///
    /// # Errors
    /// The conflict, or the API server's refusal.
    pub async fn apply_service_account_annotations(
        &self,
        namespace: &str,
        name: &str,
        annotations: &BTreeMap<String, String>,
        force: bool,
    ) -> Result<ServiceAccount> {
        let mut body = json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": namespace},
        });
        if !annotations.is_empty() {
            body["metadata"]["annotations"] = json!(annotations);
        }
        let api: Api<ServiceAccount> = self.api_in(Some(namespace));
        self.apply(
            &api,
            &format!("apply ServiceAccount {namespace}/{name}"),
            name,
            &body,
            force,
        )
        .await
    }

    async fn apply<K>(
        &self,
        api: &Api<K>,
        op: &str,
        name: &str,
        body: &Value,
        force: bool,
    ) -> Result<K>
    where
        K: Clone + DeserializeOwned + Debug,
    {
        let params = apply_params(force);
        let patch = Patch::Apply(body);
        self.call(op, || api.patch(name, &params, &patch)).await
    }

    /// Server-side apply of `labels` on the pod template of `workload` (which rolls its pods).
    ///
    /// # Errors
    /// A conflict with another field manager, or the API server's refusal.
    pub async fn apply_pod_template_labels(
        &self,
        workload: &PodWorkload,
        labels: &BTreeMap<String, String>,
        force: bool,
    ) -> Result<()> {
        let (api_version, kind) = workload_type(workload.kind);
        let body = apply::pod_template_labels(
            api_version,
            kind,
            &workload.namespace,
            &workload.name,
            labels,
        );
        let op = format!("apply the pod template labels of {workload}");
        self.patch_workload(workload, &op, &apply_params(force), &Patch::Apply(body))
            .await
    }

    /// One patch of a workload, whatever its kind.
    async fn patch_workload(
        &self,
        workload: &PodWorkload,
        op: &str,
        params: &PatchParams,
        patch: &Patch<Value>,
    ) -> Result<()> {
        let (ns, name) = (workload.namespace.as_str(), workload.name.as_str());
        match workload.kind {
            WorkloadKind::Deployment => {
                self.patch_as::<Deployment>(ns, name, op, params, patch)
                    .await
            }
            WorkloadKind::StatefulSet => {
                self.patch_as::<StatefulSet>(ns, name, op, params, patch)
                    .await
            }
            WorkloadKind::DaemonSet => {
                self.patch_as::<DaemonSet>(ns, name, op, params, patch)
                    .await
            }
            WorkloadKind::CronJob => self.patch_as::<CronJob>(ns, name, op, params, patch).await,
        }
    }

    async fn patch_as<K>(
        &self,
        namespace: &str,
        name: &str,
        op: &str,
        params: &PatchParams,
        patch: &Patch<Value>,
    ) -> Result<()>
    where
        K: Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
        K::DynamicType: Default,
    {
        let api: Api<K> = self.api_in(Some(namespace));
        self.call(op, || api.patch(name, params, patch))
            .await
            .map(drop)
    }

    /// A rollout restart of `workload` at `now`: the pod-template annotation
    /// `kubectl.kubernetes.io/restartedAt`, as `kubectl rollout restart` sets it (a merge
    /// patch: the annotation belongs to no apply of ours).
    ///
    /// # Errors
    /// When the API server refuses.
    pub async fn rollout_restart(&self, workload: &PodWorkload, now: Timestamp) -> Result<()> {
        let (_, kind) = workload_type(workload.kind);
        let patch = apply::rollout_restart(kind, now);
        let op = format!("rollout restart {workload}");
        self.patch_workload(workload, &op, &PatchParams::default(), &Patch::Merge(patch))
            .await
    }

    /// Removes the annotation `key` from the ServiceAccount `namespace/name`, whoever set it (a
    /// merge patch with `null`).
    ///
    /// # Errors
    /// When the API server refuses.
    pub async fn remove_service_account_annotation(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
    ) -> Result<()> {
        let api: Api<ServiceAccount> = self.api_in(Some(namespace));
        let patch = json!({"metadata": {"annotations": {key: null}}});
        let params = PatchParams::default();
        let merge = Patch::Merge(&patch);
        self.call(
            &format!("remove annotation {key} of ServiceAccount {namespace}/{name}"),
            || api.patch(name, &params, &merge),
        )
        .await
        .map(drop)
    }
}

/// A server-side apply by porter-identity, forced or not.
fn apply_params(force: bool) -> PatchParams {
    let params = PatchParams::apply(FIELD_MANAGER);
    if force { params.force() } else { params }
}

/// The API version and kind of a workload kind.
fn workload_type(kind: WorkloadKind) -> (&'static str, &'static str) {
    match kind {
        WorkloadKind::Deployment => ("apps/v1", "Deployment"),
        WorkloadKind::StatefulSet => ("apps/v1", "StatefulSet"),
        WorkloadKind::DaemonSet => ("apps/v1", "DaemonSet"),
        WorkloadKind::CronJob => ("batch/v1", "CronJob"),
    }
}
