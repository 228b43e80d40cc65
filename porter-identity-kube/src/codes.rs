//! The stable codes of the Kubernetes findings. Tooling may match on them; they never change
//! meaning.

/// The ServiceAccount a workload runs as does not exist.
pub const SERVICE_ACCOUNT_MISSING: &str = "kube.service_account.missing";
/// An annotation the link needs is missing from the ServiceAccount (the Azure client id, the
/// GCP service-account email).
pub const ANNOTATION_MISSING: &str = "kube.annotation.missing";
/// An annotation the link needs has another value on the ServiceAccount.
pub const ANNOTATION_WRONG: &str = "kube.annotation.wrong";
/// A pod template that runs as the ServiceAccount lacks a label the link needs (Azure's
/// `azure.workload.identity/use: "true"`).
pub const POD_TEMPLATE_LABEL_MISSING: &str = "kube.pod_template.label_missing";
/// Running pods of the ServiceAccount lack that label (they started before it was set).
pub const POD_LABEL_MISSING: &str = "kube.pod.label_missing";
/// Pods started before the link's last change: they do not have its credentials.
pub const PODS_PREDATE_LINK: &str = "kube.pods.predate_link";
/// An IRSA annotation (`eks.amazonaws.com/role-arn`) beside an EKS Pod Identity association:
/// most AWS SDKs read the web-identity token first, so the association is ignored.
pub const IRSA_BESIDE_POD_IDENTITY: &str = "kube.irsa.beside_pod_identity";
/// Pods of a Workload-Identity-bound ServiceAccount on nodes of a GKE pool that is not in
/// `GKE_METADATA` mode: they get the node's service account.
pub const PODS_ON_GCE_METADATA_POOL: &str = "kube.gke.pods_on_gce_metadata_pool";
