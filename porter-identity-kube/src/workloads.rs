//! Which workloads run as a ServiceAccount: the Deployments, StatefulSets, DaemonSets and
//! CronJobs whose pod template names it — or names none, and so runs as `default`.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::PodTemplateSpec;

/// The ServiceAccount a pod runs as when its spec names none.
pub(crate) const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// The kinds of workload with a pod template that porter-identity looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum WorkloadKind {
    /// `apps/v1` Deployment.
    Deployment,
    /// `apps/v1` StatefulSet.
    StatefulSet,
    /// `apps/v1` DaemonSet.
    DaemonSet,
    /// `batch/v1` CronJob (its job template's pod template).
    CronJob,
}

impl WorkloadKind {
    /// The kind as Kubernetes names it.
    pub const fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::CronJob => "CronJob",
        }
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A workload with a pod template, as far as identity goes: who its pods run as and the
/// labels its template gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PodWorkload {
    /// Its kind.
    pub kind: WorkloadKind,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The ServiceAccount its pods run as (`default` when the template names none).
    pub service_account: String,
    /// The labels of its pod template.
    pub template_labels: BTreeMap<String, String>,
}

impl fmt::Display for PodWorkload {
    /// `Deployment shop/api`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// The ServiceAccount a pod template runs as: `serviceAccountName`, else the deprecated
/// `serviceAccount`, else `default` (what the API server fills in).
pub(crate) fn service_account_of(template: Option<&PodTemplateSpec>) -> String {
    template
        .and_then(|t| t.spec.as_ref())
        .and_then(|spec| {
            spec.service_account_name
                .as_deref()
                .or(spec.service_account.as_deref())
        })
        .filter(|name| !name.is_empty())
        .unwrap_or(DEFAULT_SERVICE_ACCOUNT)
        .to_owned()
}

fn workload(
    kind: WorkloadKind,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    template: Option<&PodTemplateSpec>,
) -> PodWorkload {
    PodWorkload {
        kind,
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
        service_account: service_account_of(template),
        template_labels: template
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.labels.clone())
            .unwrap_or_default(),
    }
}

impl From<&Deployment> for PodWorkload {
    fn from(d: &Deployment) -> Self {
        workload(
            WorkloadKind::Deployment,
            &d.metadata,
            Some(&d.spec.template),
        )
    }
}

impl From<&StatefulSet> for PodWorkload {
    fn from(s: &StatefulSet) -> Self {
        workload(
            WorkloadKind::StatefulSet,
            &s.metadata,
            Some(&s.spec.template),
        )
    }
}

impl From<&DaemonSet> for PodWorkload {
    fn from(d: &DaemonSet) -> Self {
        workload(WorkloadKind::DaemonSet, &d.metadata, Some(&d.spec.template))
    }
}

impl From<&CronJob> for PodWorkload {
    fn from(c: &CronJob) -> Self {
        let template = c.spec.job_template.spec.as_ref().map(|j| &j.template);
        workload(WorkloadKind::CronJob, &c.metadata, template)
    }
}

/// The workloads of `namespace` whose pods run as `service_account`, in the order given.
pub(crate) fn running_as<'a>(
    workloads: &'a [PodWorkload],
    namespace: &str,
    service_account: &str,
) -> Vec<&'a PodWorkload> {
    workloads
        .iter()
        .filter(|w| w.namespace == namespace && w.service_account == service_account)
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use k8s_openapi::api::apps::v1::DeploymentSpec;
    use k8s_openapi::api::batch::v1::{CronJobSpec, JobSpec, JobTemplateSpec};
    use k8s_openapi::api::core::v1::PodSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn meta(ns: &str, name: &str) -> ObjectMeta {
        ObjectMeta {
            namespace: Some(ns.into()),
            name: Some(name.into()),
            ..ObjectMeta::default()
        }
    }

    fn template(sa: Option<&str>, deprecated: Option<&str>) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(BTreeMap::from([("app".to_owned(), "x".to_owned())])),
                ..ObjectMeta::default()
            }),
            spec: Some(PodSpec {
                service_account_name: sa.map(str::to_owned),
                service_account: deprecated.map(str::to_owned),
                ..PodSpec::default()
            }),
        }
    }

    fn deployment(name: &str, t: PodTemplateSpec) -> Deployment {
        Deployment {
            metadata: meta("shop", name),
            spec: DeploymentSpec {
                template: t,
                ..DeploymentSpec::default()
            },
            ..Deployment::default()
        }
    }

    #[test]
    fn an_explicit_service_account_is_taken_and_the_deprecated_field_is_a_fallback() {
        let explicit = PodWorkload::from(&deployment("api", template(Some("shop-api"), None)));
        assert_eq!(explicit.service_account, "shop-api");
        assert_eq!(explicit.template_labels["app"], "x");
        assert_eq!(explicit.to_string(), "Deployment shop/api");
        let old = PodWorkload::from(&deployment("old", template(None, Some("shop-old"))));
        assert_eq!(old.service_account, "shop-old");
        let both = PodWorkload::from(&deployment("b", template(Some("new"), Some("old"))));
        assert_eq!(both.service_account, "new", "serviceAccountName wins");
    }

    #[test]
    fn a_template_that_names_none_runs_as_default() {
        for t in [template(None, None), template(Some(""), None)] {
            assert_eq!(
                PodWorkload::from(&deployment("d", t)).service_account,
                "default"
            );
        }
        let no_spec = Deployment {
            metadata: meta("shop", "empty"),
            ..Deployment::default()
        };
        assert_eq!(PodWorkload::from(&no_spec).service_account, "default");
    }

    #[test]
    fn a_cronjobs_pod_template_is_its_job_templates() {
        let cron = CronJob {
            metadata: meta("shop", "nightly"),
            spec: CronJobSpec {
                schedule: "0 3 * * *".into(),
                job_template: JobTemplateSpec {
                    spec: Some(JobSpec {
                        template: template(Some("shop-reports"), None),
                        ..JobSpec::default()
                    }),
                    ..JobTemplateSpec::default()
                },
                ..CronJobSpec::default()
            },
            ..CronJob::default()
        };
        let w = PodWorkload::from(&cron);
        assert_eq!(
            (w.kind, w.service_account.as_str()),
            (WorkloadKind::CronJob, "shop-reports")
        );
    }

    #[test]
    fn selection_is_by_namespace_and_service_account() {
        let all = vec![
            PodWorkload::from(&deployment("api", template(Some("shop-api"), None))),
            PodWorkload::from(&deployment("web", template(None, None))),
            PodWorkload {
                namespace: "other".into(),
                ..PodWorkload::from(&deployment("api2", template(Some("shop-api"), None)))
            },
        ];
        let names = |sa: &str| -> Vec<String> {
            running_as(&all, "shop", sa)
                .iter()
                .map(|w| w.name.clone())
                .collect()
        };
        assert_eq!(names("shop-api"), ["api"]);
        assert_eq!(names("default"), ["web"]);
        assert!(names("nobody").is_empty());
    }
}
