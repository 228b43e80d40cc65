//! The Kubernetes side of one binding, diagnosed from what the cluster holds: the
//! ServiceAccount and its annotations, the pod templates and pods that run as it, the nodes
//! they run on. Pure functions: the caller reads the objects (kube-rs, or a test).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Node, Pod, ServiceAccount};
use k8s_openapi::jiff::Timestamp;
use porter_identity_core::{Finding, ServiceAccountPatch, Workload};

use crate::codes;
use crate::workloads::{PodWorkload, WorkloadKind, running_as};

/// The annotation of IRSA (IAM Roles for Service Accounts).
pub(crate) const IRSA_ANNOTATION: &str = "eks.amazonaws.com/role-arn";
/// The label GKE puts on every node: its node pool.
pub(crate) const GKE_NODE_POOL_LABEL: &str = "cloud.google.com/gke-nodepool";

/// What the links of one Kubernetes service account need, from the cloud side.
#[derive(Debug, Clone)]
pub(crate) struct Expected<'a> {
    /// The workload: its namespace and ServiceAccount.
    pub workload: &'a Workload,
    /// What its links need (annotations, pod labels), merged over the clouds.
    pub patch: &'a ServiceAccountPatch,
    /// When its links last changed (created or re-pointed), if known: pods started before
    /// then lack the credentials.
    pub changed_at: Option<Timestamp>,
    /// Whether an EKS Pod Identity association serves it (an IRSA annotation then wins).
    pub pod_identity: bool,
    /// Whether it is bound through GKE Workload Identity.
    pub gke_workload_identity: bool,
    /// The GKE node pools not in `GKE_METADATA` mode.
    pub pools_without_gke_metadata: &'a [String],
}

/// What the cluster holds in the workload's namespace.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Observed<'a> {
    /// The ServiceAccount, if it exists.
    pub service_account: Option<&'a ServiceAccount>,
    /// The namespace's workloads with a pod template.
    pub workloads: &'a [PodWorkload],
    /// The namespace's pods.
    pub pods: &'a [Pod],
    /// The cluster's nodes (for GKE node pools).
    pub nodes: &'a [Node],
}

/// The ServiceAccount a pod runs as (`default` when its spec names none, as the API server
/// fills it in).
pub(crate) fn pod_service_account(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| {
            s.service_account_name
                .as_deref()
                .or(s.service_account.as_deref())
        })
        .filter(|n| !n.is_empty())
        .unwrap_or(crate::workloads::DEFAULT_SERVICE_ACCOUNT)
}

fn pod_name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or("?")
}

/// The part of a generated name before its last `-suffix` (a ReplicaSet's pod-template hash,
/// a Job's schedule time).
fn without_suffix(name: &str) -> &str {
    name.rsplit_once('-').map_or(name, |(head, _)| head)
}

/// The workload a pod belongs to, through its owner: a StatefulSet or DaemonSet directly, a
/// Deployment through its ReplicaSet, a CronJob through its Job.
pub(crate) fn owner_of<'a>(pod: &Pod, workloads: &'a [PodWorkload]) -> Option<&'a PodWorkload> {
    let owner = pod.metadata.owner_references.as_ref()?.first()?;
    let (kind, name) = match owner.kind.as_str() {
        "StatefulSet" => (WorkloadKind::StatefulSet, owner.name.as_str()),
        "DaemonSet" => (WorkloadKind::DaemonSet, owner.name.as_str()),
        "ReplicaSet" => (WorkloadKind::Deployment, without_suffix(&owner.name)),
        "Job" => (WorkloadKind::CronJob, without_suffix(&owner.name)),
        _ => return None,
    };
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    workloads
        .iter()
        .find(|w| w.kind == kind && w.name == name && w.namespace == namespace)
}

fn annotate_command(ns: &str, sa: &str, key: &str, value: &str, overwrite: bool) -> String {
    format!(
        "kubectl annotate serviceaccount -n {ns} {sa} {key}={value}{}",
        if overwrite { " --overwrite" } else { "" }
    )
}

/// A time as Kubernetes keeps it: whole seconds.
pub(crate) fn whole_seconds(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

/// The pods that started before `changed` (both in whole seconds, as Kubernetes keeps times: a
/// pod of the same second is given the benefit of the doubt).
pub(crate) fn pods_predating<'a>(
    pods: impl IntoIterator<Item = &'a Pod>,
    changed: Timestamp,
) -> impl Iterator<Item = &'a Pod> {
    let changed = whole_seconds(changed);
    pods.into_iter().filter(move |p| {
        p.metadata
            .creation_timestamp
            .as_ref()
            .is_some_and(|t| t.0 < changed)
    })
}

/// The findings of the Kubernetes side of `expected`, given what the cluster holds.
pub(crate) fn diagnose(expected: &Expected<'_>, observed: &Observed<'_>) -> Vec<Finding> {
    let ns = expected.workload.namespace().as_str();
    let sa = expected.workload.service_account().as_str();
    let mut found = Vec::new();
    let Some(account) = observed.service_account else {
        found.push(Finding::error(
            codes::SERVICE_ACCOUNT_MISSING,
            format!(
                "ServiceAccount {ns}/{sa} does not exist: pods of {} cannot run as it",
                expected.workload
            ),
            "apply the manifest `porter-identity manifests` prints (kubectl apply -f -)",
        ));
        return found;
    };
    let annotations: BTreeMap<String, String> =
        account.metadata.annotations.clone().unwrap_or_default();
    for (key, want) in &expected.patch.annotations {
        match annotations.get(key) {
            None => found.push(Finding::error(
                codes::ANNOTATION_MISSING,
                format!(
                    "ServiceAccount {ns}/{sa} lacks the annotation {key}: its pods get no identity"
                ),
                annotate_command(ns, sa, key, want, false),
            )),
            Some(have) if have != want => found.push(Finding::error(
                codes::ANNOTATION_WRONG,
                format!("ServiceAccount {ns}/{sa} has {key}={have}, but its link is to {want}"),
                annotate_command(ns, sa, key, want, true),
            )),
            Some(_) => {}
        }
    }
    if expected.pod_identity
        && let Some(role) = annotations.get(IRSA_ANNOTATION)
    {
        found.push(Finding::warning(
            codes::IRSA_BESIDE_POD_IDENTITY,
            format!(
                "ServiceAccount {ns}/{sa} is annotated for IRSA ({IRSA_ANNOTATION}={role}) beside its EKS Pod Identity association: most AWS SDKs read the web-identity token first, so the association is ignored"
            ),
            format!(
                "remove the annotation (`kubectl annotate serviceaccount -n {ns} {sa} {IRSA_ANNOTATION}-`) and restart the pods that run as it"
            ),
        ));
    }

    let templates = running_as(observed.workloads, ns, sa);
    let pods: Vec<&Pod> = observed
        .pods
        .iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(ns) && pod_service_account(p) == sa)
        .collect();
    for (key, want) in &expected.patch.pod_labels {
        let has = |labels: Option<&BTreeMap<String, String>>| {
            labels.and_then(|l| l.get(key)).is_some_and(|v| v == want)
        };
        for w in templates.iter().filter(|w| !has(Some(&w.template_labels))) {
            found.push(Finding::error(
                codes::POD_TEMPLATE_LABEL_MISSING,
                format!("the pod template of {w} lacks the label {key}: \"{want}\", so its pods get no token"),
                format!(
                    "add the label to the pod template of {w} (this rolls its pods), or let porter-identity apply it"
                ),
            ));
        }
        let unlabelled: Vec<&str> = pods
            .iter()
            .filter(|p| !has(p.metadata.labels.as_ref()))
            .map(|p| pod_name(p))
            .collect();
        if !unlabelled.is_empty() {
            found.push(Finding::error(
                codes::POD_LABEL_MISSING,
                format!(
                    "{} running pod(s) of ServiceAccount {ns}/{sa} lack the label {key}: \"{want}\": {}",
                    unlabelled.len(),
                    unlabelled.join(", ")
                ),
                "restart them once their pod template has the label (kubectl rollout restart)",
            ));
        }
    }

    if let Some(changed) = expected.changed_at.map(whole_seconds) {
        let old: Vec<&Pod> = pods_predating(pods.iter().copied(), changed).collect();
        if !old.is_empty() {
            let owners: BTreeSet<String> = old
                .iter()
                .map(|p| {
                    owner_of(p, observed.workloads)
                        .map_or_else(|| format!("pod {}", pod_name(p)), ToString::to_string)
                })
                .collect();
            found.push(Finding::error(
                codes::PODS_PREDATE_LINK,
                format!(
                    "{} pod(s) of ServiceAccount {ns}/{sa} started before its link changed ({changed}), so they lack its credentials: {}",
                    old.len(),
                    owners.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
                format!(
                    "restart them: {}",
                    owners
                        .iter()
                        .map(|o| match o.split_once(' ') {
                            Some((kind, path)) if kind != "pod" => {
                                let name = path.rsplit('/').next().unwrap_or(path);
                                format!("`kubectl rollout restart -n {ns} {} {name}`", kind.to_ascii_lowercase())
                            }
                            _ => format!("delete {o} so that it is recreated"),
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }

    if expected.gke_workload_identity && !expected.pools_without_gke_metadata.is_empty() {
        let pool_of: BTreeMap<&str, &str> = observed
            .nodes
            .iter()
            .filter_map(|n| {
                let name = n.metadata.name.as_deref()?;
                let pool = n.metadata.labels.as_ref()?.get(GKE_NODE_POOL_LABEL)?;
                Some((name, pool.as_str()))
            })
            .collect();
        let mut on_bad_pool: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for p in &pods {
            let pool = p
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .and_then(|node| pool_of.get(node).copied());
            if let Some(pool) = pool.filter(|pool| {
                expected
                    .pools_without_gke_metadata
                    .iter()
                    .any(|b| b == pool)
            }) {
                on_bad_pool.entry(pool).or_default().push(pod_name(p));
            }
        }
        for (pool, names) in on_bad_pool {
            found.push(Finding::error(
                codes::PODS_ON_GCE_METADATA_POOL,
                format!(
                    "{} pod(s) of ServiceAccount {ns}/{sa} run on node pool {pool}, which is not in GKE_METADATA mode: they get the node's service account, not their Workload Identity: {}",
                    names.len(),
                    names.join(", ")
                ),
                format!(
                    "put node pool {pool} in GKE_METADATA mode (`gcloud container node-pools update {pool} --cluster CLUSTER --workload-metadata=GKE_METADATA`, which recreates its nodes), or schedule these pods on a pool that is"
                ),
            ));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use k8s_openapi::api::core::v1::PodSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};

    use super::*;
    use crate::fixtures::gke_node;

    const NS: &str = "shop";

    fn workload() -> Workload {
        Workload::for_service(NS, "shop", "api").unwrap()
    }

    fn account(annotations: &[(&str, &str)]) -> ServiceAccount {
        ServiceAccount {
            metadata: ObjectMeta {
                name: Some("shop-api".into()),
                namespace: Some(NS.into()),
                annotations: Some(
                    annotations
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                ),
                ..ObjectMeta::default()
            },
            ..ServiceAccount::default()
        }
    }

    fn at(hour: u32) -> Timestamp {
        format!("2026-11-30T{hour:02}:00:00Z").parse().unwrap()
    }

    fn pod(
        name: &str,
        owner: (&str, &str),
        labels: &[(&str, &str)],
        started: u32,
        node: &str,
    ) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(NS.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                ),
                creation_timestamp: Some(Time(at(started))),
                owner_references: Some(vec![OwnerReference {
                    kind: owner.0.into(),
                    name: owner.1.into(),
                    ..OwnerReference::default()
                }]),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                service_account_name: Some("shop-api".into()),
                node_name: Some(node.into()),
                ..PodSpec::default()
            }),
            ..Pod::default()
        }
    }

    fn api_deployment(labels: &[(&str, &str)]) -> PodWorkload {
        PodWorkload {
            kind: WorkloadKind::Deployment,
            namespace: NS.into(),
            name: "api".into(),
            service_account: "shop-api".into(),
            template_labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    fn codes(found: &[Finding]) -> Vec<&str> {
        found.iter().map(|f| f.code.as_str()).collect()
    }

    fn expected<'a>(w: &'a Workload, patch: &'a ServiceAccountPatch) -> Expected<'a> {
        Expected {
            workload: w,
            patch,
            changed_at: None,
            pod_identity: false,
            gke_workload_identity: false,
            pools_without_gke_metadata: &[],
        }
    }

    fn observed<'a>(
        sa: Option<&'a ServiceAccount>,
        workloads: &'a [PodWorkload],
        pods: &'a [Pod],
        nodes: &'a [Node],
    ) -> Observed<'a> {
        Observed {
            service_account: sa,
            workloads,
            pods,
            nodes,
        }
    }

    #[test]
    fn a_missing_service_account_is_the_only_finding() {
        let w = workload();
        let patch = ServiceAccountPatch::default();
        let found = diagnose(&expected(&w, &patch), &observed(None, &[], &[], &[]));
        assert_eq!(codes(&found), [codes::SERVICE_ACCOUNT_MISSING]);
        assert!(!found[0].remediation.is_empty());
    }

    #[test]
    fn annotations_missing_or_wrong_say_the_kubectl_command() {
        let w = workload();
        let mut patch = ServiceAccountPatch::default();
        patch
            .annotations
            .insert("azure.workload.identity/client-id".into(), "c-1".into());
        patch.annotations.insert(
            "iam.gke.io/gcp-service-account".into(),
            "a@p-123456.iam.gserviceaccount.com".into(),
        );
        let sa = account(&[(
            "iam.gke.io/gcp-service-account",
            "old@p-123456.iam.gserviceaccount.com",
        )]);
        let found = diagnose(&expected(&w, &patch), &observed(Some(&sa), &[], &[], &[]));
        assert_eq!(
            codes(&found),
            [codes::ANNOTATION_MISSING, codes::ANNOTATION_WRONG]
        );
        assert_eq!(
            found[0].remediation,
            "kubectl annotate serviceaccount -n shop shop-api azure.workload.identity/client-id=c-1"
        );
        assert!(found[1].remediation.ends_with("--overwrite"));
        let right = account(&[
            ("azure.workload.identity/client-id", "c-1"),
            (
                "iam.gke.io/gcp-service-account",
                "a@p-123456.iam.gserviceaccount.com",
            ),
        ]);
        assert!(
            diagnose(
                &expected(&w, &patch),
                &observed(Some(&right), &[], &[], &[])
            )
            .is_empty()
        );
    }

    #[test]
    fn the_azure_label_is_checked_on_templates_and_running_pods() {
        let w = workload();
        let mut patch = ServiceAccountPatch::default();
        patch
            .pod_labels
            .insert("azure.workload.identity/use".into(), "true".into());
        let sa = account(&[]);
        let templates = [api_deployment(&[])];
        let pods = [pod("api-7d9c-x1", ("ReplicaSet", "api-7d9c"), &[], 1, "n1")];
        let found = diagnose(
            &expected(&w, &patch),
            &observed(Some(&sa), &templates, &pods, &[]),
        );
        assert_eq!(
            codes(&found),
            [codes::POD_TEMPLATE_LABEL_MISSING, codes::POD_LABEL_MISSING]
        );
        assert!(
            found[0].message.contains("Deployment shop/api"),
            "{}",
            found[0]
        );
        assert!(found[1].message.contains("api-7d9c-x1"));
        let labelled = [api_deployment(&[("azure.workload.identity/use", "true")])];
        let pods = [pod(
            "api-7d9c-x2",
            ("ReplicaSet", "api-7d9c"),
            &[("azure.workload.identity/use", "true")],
            1,
            "n1",
        )];
        assert!(
            diagnose(
                &expected(&w, &patch),
                &observed(Some(&sa), &labelled, &pods, &[])
            )
            .is_empty()
        );
    }

    #[test]
    fn pods_older_than_the_links_change_name_their_workloads_and_the_restart() {
        let w = workload();
        let patch = ServiceAccountPatch::default();
        let sa = account(&[]);
        let templates = [api_deployment(&[])];
        let pods = [
            pod("api-7d9c-old", ("ReplicaSet", "api-7d9c"), &[], 8, "n1"),
            pod("api-7d9c-new", ("ReplicaSet", "api-7d9c"), &[], 12, "n1"),
        ];
        let mut e = expected(&w, &patch);
        e.changed_at = Some(at(10));
        let found = diagnose(&e, &observed(Some(&sa), &templates, &pods, &[]));
        assert_eq!(codes(&found), [codes::PODS_PREDATE_LINK]);
        assert!(found[0].message.starts_with("1 pod(s)"), "{}", found[0]);
        assert!(found[0].message.contains("Deployment shop/api"));
        assert_eq!(
            found[0].remediation,
            "restart them: `kubectl rollout restart -n shop deployment api`"
        );
        e.changed_at = Some(at(6));
        assert!(diagnose(&e, &observed(Some(&sa), &templates, &pods, &[])).is_empty());
    }

    #[test]
    fn an_irsa_annotation_beside_pod_identity_is_a_warning_with_its_removal() {
        let w = workload();
        let patch = ServiceAccountPatch::default();
        let sa = account(&[(IRSA_ANNOTATION, "arn:aws:iam::123456789012:role/old")]);
        let mut e = expected(&w, &patch);
        assert!(
            diagnose(&e, &observed(Some(&sa), &[], &[], &[])).is_empty(),
            "IRSA alone is fine"
        );
        e.pod_identity = true;
        let found = diagnose(&e, &observed(Some(&sa), &[], &[], &[]));
        assert_eq!(codes(&found), [codes::IRSA_BESIDE_POD_IDENTITY]);
        assert_eq!(found[0].severity, porter_identity_core::Severity::Warning);
        assert!(found[0].remediation.contains("eks.amazonaws.com/role-arn-"));
    }

    #[test]
    fn gke_pods_on_a_pool_without_gke_metadata_are_an_error_per_pool() {
        let w = workload();
        let patch = ServiceAccountPatch::default();
        let sa = account(&[]);
        let pods = [
            pod("api-1", ("ReplicaSet", "api-7d9c"), &[], 1, "legacy-node-1"),
            pod("api-2", ("ReplicaSet", "api-7d9c"), &[], 1, "good-node-1"),
        ];
        let nodes = [
            gke_node("legacy-node-1", "legacy-pool"),
            gke_node("good-node-1", "default-pool"),
        ];
        let bad = ["legacy-pool".to_owned()];
        let mut e = expected(&w, &patch);
        e.gke_workload_identity = true;
        e.pools_without_gke_metadata = &bad;
        let found = diagnose(&e, &observed(Some(&sa), &[], &pods, &nodes));
        assert_eq!(codes(&found), [codes::PODS_ON_GCE_METADATA_POOL]);
        assert!(found[0].message.contains("legacy-pool") && found[0].message.contains("api-1"));
        assert!(!found[0].message.contains("api-2"));
    }

    #[test]
    fn owners_are_found_through_replicasets_and_jobs() {
        let workloads = [
            api_deployment(&[]),
            PodWorkload {
                kind: WorkloadKind::CronJob,
                name: "nightly".into(),
                ..api_deployment(&[])
            },
            PodWorkload {
                kind: WorkloadKind::StatefulSet,
                name: "db".into(),
                ..api_deployment(&[])
            },
        ];
        let of = |kind, name| {
            owner_of(&pod("p", (kind, name), &[], 1, "n"), &workloads).map(|w| w.name.clone())
        };
        assert_eq!(of("ReplicaSet", "api-5d8f7b"), Some("api".into()));
        assert_eq!(of("Job", "nightly-29412345"), Some("nightly".into()));
        assert_eq!(of("StatefulSet", "db"), Some("db".into()));
        assert_eq!(of("ReplicaSet", "other-5d8f7b"), None);
    }
}
