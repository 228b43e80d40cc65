//! The ServiceAccount manifests, built from `k8s-openapi` types (porter-identity-kube's
//! `service_account_manifest`, the body the Kubernetes step applies) and serialised (YAML for
//! kubectl, or a JSON `List`), so that names, annotation values and quoting are the library's
//! business, not string formatting's.

use porter_identity::kube::k8s_openapi;
use porter_identity::kube::service_account_manifest;
use porter_identity::{ServiceAccountPatch, Workload};

/// YAML documents, one per ServiceAccount, each followed by comments saying what the pod
/// template needs and whether its pods must restart (a ServiceAccount has no place for them).
pub(crate) fn yaml(accounts: &[(Workload, ServiceAccountPatch)]) -> Result<String, String> {
    let mut out = String::new();
    for (workload, patch) in accounts {
        let object = service_account_manifest(workload, patch);
        let doc = serde_saphyr::to_string(&object).map_err(|e| {
            format!(
                "the ServiceAccount {} cannot be written as YAML: {e}",
                workload.service_account()
            )
        })?;
        out.push_str("---\n");
        out.push_str(&doc);
        if !doc.ends_with('\n') {
            out.push('\n');
        }
        for (k, v) in &patch.pod_labels {
            out.push_str(&format!(
                "# the pod template of {} needs the label {k}: \"{v}\"\n",
                workload.service()
            ));
        }
        if patch.needs_pod_restart {
            out.push_str(&format!(
                "# restart the pods of {} after applying: credentials are injected when a pod starts\n",
                workload.service()
            ));
        }
    }
    Ok(out)
}

/// A `v1/List` of Kubernetes objects, as `kubectl apply -f -` reads it.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct List<T> {
    api_version: &'static str,
    kind: &'static str,
    items: Vec<T>,
}

/// The ServiceAccounts as a `v1/List`, for JSON.
pub(crate) fn list(
    accounts: &[(Workload, ServiceAccountPatch)],
) -> List<k8s_openapi::api::core::v1::ServiceAccount> {
    List {
        api_version: "v1",
        kind: "List",
        items: accounts
            .iter()
            .map(|(w, p)| service_account_manifest(w, p))
            .collect(),
    }
}
