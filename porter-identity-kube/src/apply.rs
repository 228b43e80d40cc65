//! What porter-identity applies to the cluster, as objects and patches, and who else owns the
//! fields it would set: the server-side-apply body of a ServiceAccount, the conflicts with
//! another field manager read from `metadata.managedFields`, the pod-template label of Azure
//! workload identity, and the rollout restart.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use porter_identity_core::{ServiceAccountPatch, Workload};
use serde_json::{Value, json};

/// The field manager of everything porter-identity applies.
pub const FIELD_MANAGER: &str = "porter-identity";
/// The pod-template annotation a rollout restart sets (what `kubectl rollout restart` does).
pub(crate) const RESTARTED_AT_ANNOTATION: &str = "kubectl.kubernetes.io/restartedAt";

/// The ServiceAccount a workload runs as, with the annotations its links need: the body of a
/// server-side apply (field manager [`FIELD_MANAGER`]) and of `porter-identity manifests`.
///
/// ```
/// use porter_identity_core::{ServiceAccountPatch, Workload};
/// let mut patch = ServiceAccountPatch::default();
/// patch.annotations.insert("iam.gke.io/gcp-service-account".into(), "api@p-123456.iam.gserviceaccount.com".into());
/// let sa = porter_identity_kube::service_account_manifest(&Workload::for_service("shop", "shop", "api")?, &patch);
/// assert_eq!(sa.metadata.name.as_deref(), Some("shop-api"));
/// # Ok::<(), porter_identity_core::Error>(())
/// ```
pub fn service_account_manifest(
    workload: &Workload,
    patch: &ServiceAccountPatch,
) -> ServiceAccount {
    let labels = BTreeMap::from([
        (
            "app.kubernetes.io/part-of".to_owned(),
            workload.app().to_string(),
        ),
        (
            "app.kubernetes.io/name".to_owned(),
            workload.service().to_string(),
        ),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            FIELD_MANAGER.to_owned(),
        ),
    ]);
    ServiceAccount {
        metadata: ObjectMeta {
            name: Some(workload.service_account().to_string()),
            namespace: Some(workload.namespace().to_string()),
            labels: Some(labels),
            annotations: (!patch.annotations.is_empty()).then(|| patch.annotations.clone()),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    }
}

/// An annotation that another field manager owns with another value than the one the link
/// needs: server-side apply would refuse it (or, forced, take it over).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) struct FieldConflict {
    /// The annotation.
    pub key: String,
    /// The field manager that owns it (`kubectl-client-side-apply`, `helm`, `argocd-controller`, …).
    pub manager: String,
    /// Its value now.
    pub current: String,
    /// The value the link needs.
    pub wanted: String,
}

impl std::fmt::Display for FieldConflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "annotation {} is owned by field manager `{}` with value {:?}; the link needs {:?}",
            self.key, self.manager, self.current, self.wanted
        )
    }
}

/// Whether a `fieldsV1` set of a managed-fields entry holds annotation `key`.
fn owns_annotation(fields: &Value, key: &str) -> bool {
    fields
        .get("f:metadata")
        .and_then(|m| m.get("f:annotations"))
        .and_then(|a| a.get(format!("f:{key}")))
        .is_some()
}

/// The annotations of `patch` that another manager than [`FIELD_MANAGER`] owns on `existing`
/// with a different value. Same values are no conflict (server-side apply shares them).
pub(crate) fn annotation_conflicts(
    existing: &ServiceAccount,
    patch: &ServiceAccountPatch,
) -> Vec<FieldConflict> {
    let current = existing.metadata.annotations.clone().unwrap_or_default();
    let entries = existing
        .metadata
        .managed_fields
        .as_deref()
        .unwrap_or_default();
    let mut out = Vec::new();
    for (key, wanted) in &patch.annotations {
        let Some(have) = current.get(key).filter(|have| *have != wanted) else {
            continue;
        };
        let owner = entries.iter().find(|e| {
            e.manager.as_deref() != Some(FIELD_MANAGER)
                && e.fields_v1
                    .as_ref()
                    .is_some_and(|f| owns_annotation(&f.0, key))
        });
        if let Some(owner) = owner {
            out.push(FieldConflict {
                key: key.clone(),
                manager: owner
                    .manager
                    .clone()
                    .unwrap_or_else(|| "(unnamed)".to_owned()),
                current: have.clone(),
                wanted: wanted.clone(),
            });
        }
    }
    out
}

/// Whether `account` already carries exactly what an apply of `annotations` by
/// porter-identity would leave: each annotation with its value, and porter-identity's field
/// manager owning these annotations and nothing else (an apply would then remove nothing
/// either). Then the apply is not sent: a re-deploy that changes nothing writes nothing.
pub(crate) fn already_applied(
    account: Option<&ServiceAccount>,
    annotations: &BTreeMap<String, String>,
) -> bool {
    let Some(account) = account else {
        return false;
    };
    let current = account.metadata.annotations.clone().unwrap_or_default();
    if annotations.iter().any(|(k, v)| current.get(k) != Some(v)) {
        return false;
    }
    let ours: Vec<&Value> = account
        .metadata
        .managed_fields
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter(|e| {
            e.manager.as_deref() == Some(FIELD_MANAGER) && e.operation.as_deref() == Some("Apply")
        })
        .filter_map(|e| e.fields_v1.as_ref().map(|f| &f.0))
        .collect();
    let mut owned = std::collections::BTreeSet::new();
    for fields in ours {
        let Some(top) = fields.as_object() else {
            return false;
        };
        for (key, value) in top {
            if key == "." {
                continue;
            }
            if key != "f:metadata" {
                return false;
            }
            let Some(metadata) = value.as_object() else {
                return false;
            };
            for (key, value) in metadata {
                match key.as_str() {
                    "." => {}
                    "f:annotations" => {
                        let Some(keys) = value.as_object() else {
                            return false;
                        };
                        owned.extend(
                            keys.keys()
                                .filter(|k| *k != ".")
                                .map(|k| k.strip_prefix("f:").unwrap_or(k).to_owned()),
                        );
                    }
                    _ => return false,
                }
            }
        }
    }
    owned.iter().eq(annotations.keys())
}

/// The server-side-apply body that sets `labels` on the pod template of a workload (Azure's
/// `azure.workload.identity/use: "true"`). Changing a pod template rolls the workload's pods.
/// `api_version` and `kind` are the workload's (`apps/v1` `Deployment`, `batch/v1` `CronJob`,
/// …); a CronJob's pod template is under its job template.
pub(crate) fn pod_template_labels(
    api_version: &str,
    kind: &str,
    namespace: &str,
    name: &str,
    labels: &BTreeMap<String, String>,
) -> Value {
    let template = json!({"metadata": {"labels": labels}});
    let spec = if kind == "CronJob" {
        json!({"jobTemplate": {"spec": {"template": template}}})
    } else {
        json!({"template": template})
    };
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    })
}

/// The merge patch of a rollout restart at `now`: the pod-template annotation
/// [`RESTARTED_AT_ANNOTATION`], as `kubectl rollout restart` sets it.
pub(crate) fn rollout_restart(kind: &str, now: Timestamp) -> Value {
    // Kubernetes times have whole seconds.
    let stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let template = json!({"metadata": {"annotations": {RESTARTED_AT_ANNOTATION: stamp}}});
    if kind == "CronJob" {
        json!({"spec": {"jobTemplate": {"spec": {"template": template}}}})
    } else {
        json!({"spec": {"template": template}})
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};

    use super::*;

    const KEY: &str = "azure.workload.identity/client-id";

    fn patch(value: &str) -> ServiceAccountPatch {
        let mut p = ServiceAccountPatch::default();
        p.annotations.insert(KEY.into(), value.into());
        p
    }

    fn existing(value: &str, manager: &str) -> ServiceAccount {
        ServiceAccount {
            metadata: ObjectMeta {
                name: Some("shop-api".into()),
                annotations: Some(BTreeMap::from([(KEY.to_owned(), value.to_owned())])),
                managed_fields: Some(vec![ManagedFieldsEntry {
                    manager: Some(manager.into()),
                    operation: Some("Apply".into()),
                    fields_v1: Some(FieldsV1(json!({
                        "f:metadata": {"f:annotations": {format!("f:{KEY}"): {}}}
                    }))),
                    ..ManagedFieldsEntry::default()
                }]),
                ..ObjectMeta::default()
            },
            ..ServiceAccount::default()
        }
    }

    #[test]
    fn another_managers_annotation_with_another_value_is_a_conflict_naming_it() {
        let found = annotation_conflicts(&existing("old-id", "helm"), &patch("new-id"));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].manager, "helm");
        assert!(
            found[0].to_string().contains("field manager `helm`"),
            "{}",
            found[0]
        );
    }

    #[test]
    fn the_same_value_or_our_own_field_is_no_conflict() {
        assert!(annotation_conflicts(&existing("new-id", "helm"), &patch("new-id")).is_empty());
        assert!(
            annotation_conflicts(&existing("old-id", FIELD_MANAGER), &patch("new-id")).is_empty()
        );
    }

    #[test]
    fn an_apply_is_skipped_only_when_it_would_change_and_remove_nothing() {
        let wanted = BTreeMap::from([(KEY.to_owned(), "id-1".to_owned())]);
        let ours = existing("id-1", FIELD_MANAGER);
        assert!(already_applied(Some(&ours), &wanted));
        assert!(!already_applied(None, &wanted), "a missing ServiceAccount");
        let other_value = BTreeMap::from([(KEY.to_owned(), "id-2".to_owned())]);
        assert!(
            !already_applied(Some(&ours), &other_value),
            "a value to change"
        );
        assert!(
            !already_applied(Some(&ours), &BTreeMap::new()),
            "an annotation we no longer apply, to remove"
        );
        let theirs = existing("id-1", "helm");
        assert!(
            !already_applied(Some(&theirs), &wanted),
            "the same value, but not ours: the apply takes a share of it"
        );
        let mut more = wanted.clone();
        more.insert("porter.run/identity-app".into(), "shop".into());
        assert!(!already_applied(Some(&ours), &more), "one more to set");
    }

    #[test]
    fn the_service_account_body_carries_the_annotations_and_the_ownership_labels() {
        let w = Workload::for_service("shop", "shop", "api").unwrap();
        let sa = service_account_manifest(&w, &patch("id-1"));
        assert_eq!(sa.metadata.namespace.as_deref(), Some("shop"));
        assert_eq!(sa.metadata.annotations.unwrap()[KEY], "id-1");
        assert_eq!(
            sa.metadata.labels.unwrap()["app.kubernetes.io/managed-by"],
            FIELD_MANAGER
        );
        let bare = service_account_manifest(&w, &ServiceAccountPatch::default());
        assert!(bare.metadata.annotations.is_none());
    }

    #[test]
    fn template_labels_and_restarts_go_under_a_cronjobs_job_template() {
        let labels =
            BTreeMap::from([("azure.workload.identity/use".to_owned(), "true".to_owned())]);
        let d = pod_template_labels("apps/v1", "Deployment", "shop", "api", &labels);
        assert_eq!(
            d["spec"]["template"]["metadata"]["labels"]["azure.workload.identity/use"],
            "true"
        );
        let c = pod_template_labels("batch/v1", "CronJob", "shop", "nightly", &labels);
        assert_eq!(
            c["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]["azure.workload.identity/use"],
            "true"
        );
        let now: Timestamp = "2026-11-30T03:04:05.250Z".parse().unwrap();
        let r = rollout_restart("StatefulSet", now);
        assert_eq!(
            r["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT_ANNOTATION],
            "2026-11-30T03:04:05Z"
        );
        let rc = rollout_restart("CronJob", now);
        assert!(
            rc["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["annotations"].is_object()
        );
    }
}
