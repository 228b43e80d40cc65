//! `ServiceAccountPatch`: what the Kubernetes side needs for a binding to work.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::SystemTime;

use crate::Workload;

/// What the Kubernetes objects of a workload need for its cloud identity to work: annotations
/// on its ServiceAccount and labels on its pod template, and whether running pods must be
/// restarted (credentials are injected at pod admission, so pods created before a new
/// binding do not have it).
///
/// ```
/// use porter_identity_core::{ServiceAccountPatch, Workload};
///
/// let mut patch = ServiceAccountPatch::default();
/// patch.annotations.insert("iam.gke.io/gcp-service-account".into(), "api@p.iam.gserviceaccount.com".into());
/// let yaml = patch.to_service_account_yaml(&Workload::for_service("default", "shop", "api")?);
/// assert!(yaml.contains("name: shop-api"));
/// assert!(yaml.contains("iam.gke.io/gcp-service-account: api@p.iam.gserviceaccount.com"));
/// # Ok::<(), porter_identity_core::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServiceAccountPatch {
    /// Annotations to set on the ServiceAccount.
    pub annotations: BTreeMap<String, String>,
    /// Labels to set on the pod template of the workload.
    pub pod_labels: BTreeMap<String, String>,
    /// Whether pods created before this change must be restarted to get the identity.
    pub needs_pod_restart: bool,
    /// Why, in words, for the deploy log (empty when nothing is needed).
    pub notes: Vec<String>,
    /// When a link of the service account was last created or re-pointed, when known: the
    /// [`Reconciler`](crate::Reconciler) sets it when it writes one. Pods started before then
    /// lack the link's credentials (porter-identity-kube finds and restarts them).
    pub changed_at: Option<SystemTime>,
}

impl ServiceAccountPatch {
    /// Whether nothing needs to change on the Kubernetes side.
    pub fn is_empty(&self) -> bool {
        self.annotations.is_empty() && self.pod_labels.is_empty() && !self.needs_pod_restart
    }

    /// Adds another patch's annotations, labels and notes (a service bound on several clouds).
    pub fn merge(&mut self, other: ServiceAccountPatch) {
        self.annotations.extend(other.annotations);
        self.pod_labels.extend(other.pod_labels);
        self.needs_pod_restart |= other.needs_pod_restart;
        self.changed_at = self.changed_at.max(other.changed_at);
        for note in other.notes {
            if !self.notes.contains(&note) {
                self.notes.push(note);
            }
        }
    }

    /// The ServiceAccount manifest of `workload` with this patch's annotations, as YAML.
    /// Pod-template labels do not belong on a ServiceAccount: they are listed in a comment.
    pub fn to_service_account_yaml(&self, workload: &Workload) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "apiVersion: v1");
        let _ = writeln!(out, "kind: ServiceAccount");
        let _ = writeln!(out, "metadata:");
        let _ = writeln!(out, "  name: {}", workload.service_account());
        let _ = writeln!(out, "  namespace: {}", workload.namespace());
        let _ = writeln!(out, "  labels:");
        let _ = writeln!(out, "    app.kubernetes.io/part-of: {}", workload.app());
        let _ = writeln!(out, "    app.kubernetes.io/name: {}", workload.service());
        if !self.annotations.is_empty() {
            let _ = writeln!(out, "  annotations:");
            for (k, v) in &self.annotations {
                let _ = writeln!(out, "    {}: {}", yaml_scalar(k), yaml_scalar(v));
            }
        }
        if !self.pod_labels.is_empty() {
            let _ = writeln!(out, "# pod template labels of {}:", workload.service());
            for (k, v) in &self.pod_labels {
                let _ = writeln!(out, "#   {}: {}", yaml_scalar(k), yaml_scalar(v));
            }
        }
        if self.needs_pod_restart {
            let _ = writeln!(
                out,
                "# restart the pods of {} after applying: credentials are injected at pod creation",
                workload.service()
            );
        }
        out
    }
}

/// Writes a YAML scalar, quoting it unless it is plainly a string that YAML reads back as the
/// same string (so `"true"` stays a string and `a: b` stays one value).
fn yaml_scalar(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./@".contains(c))
        && !s.starts_with(['-', '.', '@'])
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "y" | "n" | "~"
        )
        && s.parse::<f64>().is_err();
    if plain {
        s.to_owned()
    } else {
        // JSON strings are valid YAML double-quoted scalars.
        serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_quotes() {
        let w = Workload::for_service("prod", "shop", "api").unwrap();
        let mut p = ServiceAccountPatch::default();
        p.annotations.insert(
            "azure.workload.identity/client-id".into(),
            "1234-abcd".into(),
        );
        p.pod_labels
            .insert("azure.workload.identity/use".into(), "true".into());
        p.needs_pod_restart = true;
        let y = p.to_service_account_yaml(&w);
        assert!(
            y.contains("    azure.workload.identity/client-id: 1234-abcd\n"),
            "{y}"
        );
        assert!(
            y.contains("#   azure.workload.identity/use: \"true\"\n"),
            "{y}"
        );
        assert!(y.contains("# restart the pods of api"), "{y}");
        assert!(y.contains("  namespace: prod\n"));
    }

    #[test]
    fn scalars() {
        assert_eq!(yaml_scalar("abc"), "abc");
        assert_eq!(yaml_scalar("true"), "\"true\"");
        assert_eq!(yaml_scalar("123"), "\"123\"");
        assert_eq!(yaml_scalar("a: b"), "\"a: b\"");
        assert_eq!(yaml_scalar(""), "\"\"");
        assert_eq!(yaml_scalar("-x"), "\"-x\"");
    }

    #[test]
    fn merge_and_empty() {
        let mut a = ServiceAccountPatch::default();
        assert!(a.is_empty());
        let b = ServiceAccountPatch {
            needs_pod_restart: true,
            notes: vec!["restart".into()],
            ..ServiceAccountPatch::default()
        };
        a.merge(b.clone());
        a.merge(b);
        let later = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(20);
        for at in [10, 20, 5] {
            a.merge(ServiceAccountPatch {
                changed_at: Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(at)),
                ..ServiceAccountPatch::default()
            });
        }
        assert_eq!(a.changed_at, Some(later), "the latest change counts");
        assert!(a.needs_pod_restart);
        assert_eq!(a.notes.len(), 1);
        assert!(!a.is_empty());
    }
}
