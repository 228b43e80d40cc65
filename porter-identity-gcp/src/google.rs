//! [`GcpApi`] over the official Google Cloud Rust clients: `google-cloud-iam-admin-v1`
//! (service accounts, their IAM policy, their keys), `google-cloud-container-v1` (the cluster)
//! and `google-cloud-resourcemanager-v3` (the project's IAM policy).
//!
//! The clients' own retry loop is off ([`NeverRetry`]) and each attempt has the core policy's
//! timeout, so the core [`RetryPolicy`](porter_identity_core::RetryPolicy) is the one retry
//! layer (the clients would retry neither 429 nor any POST, and getIamPolicy and setIamPolicy
//! are POSTs). Every call is one `tracing` span naming the operation and the service account
//! or project, never a token; every failure goes through [`map_status`].

use std::fmt;
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use google_cloud_auth::credentials::Credentials;
use google_cloud_container_v1::client::ClusterManager;
use google_cloud_container_v1::model::workload_metadata_config::Mode;
use google_cloud_gax::retry_policy::NeverRetry;
use google_cloud_iam_admin_v1::client::Iam;
use google_cloud_iam_admin_v1::model::list_service_account_keys_request::KeyType;
use google_cloud_iam_v1::model::GetPolicyOptions;
use google_cloud_resourcemanager_v3::client::Projects;
use porter_identity_core::{Cloud, Error, ErrorKind, Result};
use tracing::Instrument;

use crate::api::{
    Cluster, ClusterRef, GcpApi, MetadataMode, NodePool, NodePoolDetails, Policy, ServiceAccount,
    ServiceAccountKey,
};
use crate::errors::{StatusCode, map_status};
use crate::names::{POLICY_VERSION, service_account_resource};
use crate::operation as op;

/// Where each API is served: Google's own endpoints unless overridden (an emulator, a private
/// endpoint). Each is a base URL such as `https://iam.googleapis.com`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Endpoints {
    /// The IAM API (service accounts, their policies and keys).
    pub iam: Option<String>,
    /// The GKE API.
    pub container: Option<String>,
    /// The Resource Manager API (project policies).
    pub resource_manager: Option<String>,
}

/// The Google Cloud clients behind the [`GcpApi`] port.
pub struct GoogleApi {
    iam: Iam,
    gke: ClusterManager,
    projects: Projects,
    endpoints: Endpoints,
}

impl fmt::Debug for GoogleApi {
    /// The endpoints only: the clients hold the credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GoogleApi")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

/// Applies the settings every client shares: endpoint, credentials, no retries of its own, the
/// attempt timeout.
macro_rules! client {
    ($ty:ty, $endpoint:expr, $credentials:expr, $timeout:expr, $what:literal) => {{
        let mut builder = <$ty>::builder()
            .with_credentials($credentials.clone())
            .with_retry_policy(NeverRetry)
            .with_attempt_timeout($timeout);
        if let Some(url) = $endpoint {
            builder = builder.with_endpoint(url.clone());
        }
        builder.build().await.map_err(|e| {
            Error::cloud(
                ErrorKind::Other,
                Cloud::Gcp,
                "connect",
                format!("the {} client could not be built: {e}", $what),
            )
            .with_source(e)
        })?
    }};
}

impl GoogleApi {
    /// Builds the three clients. `attempt_timeout` bounds each attempt (the core policy's).
    pub async fn new(
        credentials: Credentials,
        endpoints: Endpoints,
        attempt_timeout: Duration,
    ) -> Result<Self> {
        crate::install_crypto_provider();
        let iam = client!(Iam, &endpoints.iam, credentials, attempt_timeout, "IAM");
        let gke = client!(
            ClusterManager,
            &endpoints.container,
            credentials,
            attempt_timeout,
            "GKE"
        );
        let projects = client!(
            Projects,
            &endpoints.resource_manager,
            credentials,
            attempt_timeout,
            "Resource Manager"
        );
        Ok(GoogleApi {
            iam,
            gke,
            projects,
            endpoints,
        })
    }
}

/// How long the service asked to wait: the status's `RetryInfo` detail (Google's own way), or
/// an HTTP `Retry-After` header in seconds.
fn retry_after(e: &google_cloud_gax::error::Error) -> Option<Duration> {
    use google_cloud_gax::error::rpc::StatusDetails;
    let from_details = e.status().and_then(|status| {
        status.details.iter().find_map(|d| match d {
            StatusDetails::RetryInfo(info) => info
                .retry_delay
                .and_then(|delay| Duration::try_from(delay).ok()),
            _ => None,
        })
    });
    from_details.or_else(|| {
        let value = e.http_headers()?.get("retry-after")?.to_str().ok()?;
        value.trim().parse::<u64>().ok().map(Duration::from_secs)
    })
}

/// A failed call, mapped.
fn map_google_error(operation: &str, resource: &str, e: google_cloud_gax::error::Error) -> Error {
    let http = e.http_status_code();
    if let Some(status) = e.status() {
        let code = StatusCode::Name(status.code.name());
        let message = status.message.clone();
        return map_status(
            operation,
            resource,
            Some(code),
            http,
            &message,
            retry_after(&e),
        )
        .with_source(e);
    }
    if http.is_some() {
        let message = e
            .http_payload()
            .map(|b| {
                String::from_utf8_lossy(b)
                    .chars()
                    .take(300)
                    .collect::<String>()
            })
            .unwrap_or_default();
        return map_status(operation, resource, None, http, &message, retry_after(&e))
            .with_source(e);
    }
    let (kind, what) = if e.is_authentication() {
        (
            ErrorKind::Unauthenticated,
            "no credentials could be obtained",
        )
    } else if e.is_timeout() {
        (ErrorKind::Unavailable, "the attempt timed out")
    } else if e.is_io() || e.is_connect() || e.is_transport() {
        (ErrorKind::Unavailable, "the endpoint could not be reached")
    } else {
        (ErrorKind::Other, "the call failed")
    };
    let mut error = Error::cloud(
        kind,
        Cloud::Gcp,
        operation,
        format!("{operation} on {resource}: {what} ({e})"),
    )
    .retryable(kind == ErrorKind::Unavailable);
    if kind == ErrorKind::Unauthenticated {
        error = error.with_fix(
            "give the process Google credentials: `gcloud auth application-default login`, GOOGLE_APPLICATION_CREDENTIALS pointing at a key file, or Workload Identity / the metadata server where it runs",
        );
    }
    error.with_source(e)
}

/// One call: its span, and its error mapped.
async fn call<T, Fut>(operation: &'static str, resource: &str, fut: Fut) -> Result<T>
where
    Fut: Future<Output = google_cloud_gax::Result<T>>,
{
    let span = tracing::debug_span!("gcp.call", operation, resource);
    fut.instrument(span)
        .await
        .map_err(|e| map_google_error(operation, resource, e))
}

fn policy_options() -> GetPolicyOptions {
    GetPolicyOptions::new().set_requested_policy_version(POLICY_VERSION)
}

fn metadata_mode(pool: &google_cloud_container_v1::model::NodePool) -> MetadataMode {
    let mode = pool
        .config
        .as_ref()
        .and_then(|c| c.workload_metadata_config.as_ref())
        .map(|w| &w.mode);
    match mode {
        None | Some(Mode::Unspecified) => MetadataMode::Unspecified,
        Some(Mode::GkeMetadata) => MetadataMode::GkeMetadata,
        Some(Mode::GceMetadata) => MetadataMode::GceMetadata,
        Some(other) => MetadataMode::Other(
            other
                .name()
                .map(str::to_owned)
                .or_else(|| other.value().map(|v| v.to_string()))
                .unwrap_or_default(),
        ),
    }
}

#[async_trait]
impl GcpApi for GoogleApi {
    async fn get_cluster(&self, cluster: &ClusterRef) -> Result<Cluster> {
        let name = cluster.resource_name();
        let found = call(
            op::CLUSTERS_GET.name(),
            &name,
            self.gke.get_cluster().set_name(name.clone()).send(),
        )
        .await?;
        Ok(Cluster {
            name: found.name.clone(),
            workload_pool: found
                .workload_identity_config
                .as_ref()
                .map(|w| w.workload_pool.clone())
                .filter(|p| !p.is_empty()),
            node_pools: found
                .node_pools
                .iter()
                .map(|p| NodePool {
                    name: p.name.clone(),
                    metadata_mode: metadata_mode(p),
                })
                .collect(),
        })
    }

    async fn get_node_pool(&self, cluster: &ClusterRef, pool: &str) -> Result<NodePoolDetails> {
        let name = cluster.node_pool_name(pool);
        let found = call(
            op::NODE_POOLS_GET.name(),
            &name,
            self.gke.get_node_pool().set_name(name.clone()).send(),
        )
        .await?;
        Ok(NodePoolDetails {
            name: found.name.clone(),
            version: found.version.clone(),
            image_type: found
                .config
                .as_ref()
                .map(|c| c.image_type.clone())
                .unwrap_or_default(),
            metadata_mode: metadata_mode(&found),
        })
    }

    async fn set_node_pool_gke_metadata(
        &self,
        cluster: &ClusterRef,
        pool: &NodePoolDetails,
    ) -> Result<String> {
        let name = cluster.node_pool_name(&pool.name);
        let operation = call(
            op::NODE_POOLS_UPDATE.name(),
            &name,
            self.gke
                .update_node_pool()
                .set_name(name.clone())
                // The pool's own version and image type: an update must name them, and any
                // other value would upgrade or re-image the nodes.
                .set_node_version(pool.version.clone())
                .set_image_type(pool.image_type.clone())
                .set_workload_metadata_config(
                    google_cloud_container_v1::model::WorkloadMetadataConfig::new()
                        .set_mode(Mode::GkeMetadata),
                )
                .send(),
        )
        .await?;
        Ok(operation.name)
    }

    async fn get_service_account(&self, email: &str) -> Result<ServiceAccount> {
        let sa = call(
            op::SERVICE_ACCOUNTS_GET.name(),
            email,
            self.iam
                .get_service_account()
                .set_name(service_account_resource(email))
                .send(),
        )
        .await?;
        Ok(ServiceAccount {
            email: sa.email,
            project_id: sa.project_id,
            unique_id: sa.unique_id,
            disabled: sa.disabled,
        })
    }

    async fn get_iam_policy(&self, email: &str) -> Result<Policy> {
        call(
            op::GET_IAM_POLICY.name(),
            email,
            self.iam
                .get_iam_policy()
                .set_resource(service_account_resource(email))
                .set_options(policy_options())
                .send(),
        )
        .await
    }

    async fn set_iam_policy(&self, email: &str, policy: Policy) -> Result<Policy> {
        call(
            op::SET_IAM_POLICY.name(),
            email,
            self.iam
                .set_iam_policy()
                .set_resource(service_account_resource(email))
                .set_policy(policy)
                .send(),
        )
        .await
    }

    async fn list_user_managed_keys(&self, email: &str) -> Result<Vec<ServiceAccountKey>> {
        let listed = call(
            op::SERVICE_ACCOUNTS_KEYS_LIST.name(),
            email,
            self.iam
                .list_service_account_keys()
                .set_name(service_account_resource(email))
                .set_key_types([KeyType::UserManaged])
                .send(),
        )
        .await?;
        Ok(listed
            .keys
            .into_iter()
            .map(|k| ServiceAccountKey {
                name: k.name,
                disabled: k.disabled,
            })
            .collect())
    }

    async fn get_project_iam_policy(&self, project: &str) -> Result<Policy> {
        let resource = format!("projects/{project}");
        call(
            op::PROJECTS_GET_IAM_POLICY.name(),
            &resource,
            self.projects
                .get_iam_policy()
                .set_resource(resource.clone())
                .set_options(policy_options())
                .send(),
        )
        .await
    }
}
