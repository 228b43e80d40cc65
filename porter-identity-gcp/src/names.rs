//! Names GKE Workload Identity is made of: the workload pool, the IAM member of a Kubernetes
//! service account, the resource names the APIs take, and the checks that keep user strings
//! that go into URL paths to the characters those names allow.

use porter_identity_core::{Error, Namespace, Result, ServiceAccountName};

use crate::api::ClusterRef;

/// The role that lets a Kubernetes service account impersonate a GCP service account.
pub const WORKLOAD_IDENTITY_USER: &str = "roles/iam.workloadIdentityUser";

/// The IAM policy version asked for and written: 3 returns conditional bindings whole.
pub(crate) const POLICY_VERSION: i32 = 3;

/// The workload pool GKE gives a project's clusters: `<project>.svc.id.goog`.
pub(crate) fn workload_pool_of(project: &str) -> String {
    format!("{project}.svc.id.goog")
}

/// The IAM member of a Kubernetes service account: `serviceAccount:<pool>[<ns>/<ksa>]`.
pub(crate) fn member(
    pool: &str,
    namespace: &Namespace,
    service_account: &ServiceAccountName,
) -> String {
    format!("serviceAccount:{pool}[{namespace}/{service_account}]")
}

/// A Workload Identity member taken apart: `(pool, namespace, service account)`; `None` for
/// any other kind of member (users, groups, plain service accounts, principal sets).
pub(crate) fn parse_member(member: &str) -> Option<(&str, &str, &str)> {
    let rest = member.strip_prefix("serviceAccount:")?;
    let (pool, subject) = rest.split_once('[')?;
    let subject = subject.strip_suffix(']')?;
    let (namespace, ksa) = subject.split_once('/')?;
    (pool.ends_with(".id.goog") && !namespace.is_empty() && !ksa.is_empty())
        .then_some((pool, namespace, ksa))
}

/// The resource name of a service account as the IAM API takes it:
/// `projects/<project>/serviceAccounts/<email>`, with the project read from the email.
///
/// Not the `projects/-/…` wildcard: IAM answers a missing service account named through the
/// wildcard with a 403 rather than a 404 (the discovery document of `serviceAccounts.get`
/// says so), which would send the user after a permission that is not the problem. The email
/// is a validated [`GcpServiceAccountEmail`](porter_identity_core::GcpServiceAccountEmail), so it holds only `[a-z0-9-.@]`.
pub(crate) fn service_account_resource(email: &str) -> String {
    let project = email
        .split_once('@')
        .and_then(|(_, domain)| domain.strip_suffix(".iam.gserviceaccount.com"))
        .filter(|p| !p.is_empty() && !p.contains('.'))
        .unwrap_or("-");
    format!("projects/{project}/serviceAccounts/{email}")
}

/// The `gcloud` command that turns Workload Identity on for a cluster.
pub(crate) fn enable_workload_identity_command(cluster: &ClusterRef) -> String {
    format!(
        "gcloud container clusters update {} --location {} --project {} --workload-pool={}",
        cluster.name,
        cluster.location,
        cluster.project,
        workload_pool_of(&cluster.project)
    )
}

/// The `gcloud` command that puts one node pool in `GKE_METADATA` mode.
pub(crate) fn enable_gke_metadata_command(cluster: &ClusterRef, pool: &str) -> String {
    format!(
        "gcloud container node-pools update {pool} --cluster {} --location {} --project {} --workload-metadata=GKE_METADATA",
        cluster.name, cluster.location, cluster.project
    )
}

fn name_chars(value: &str, dots: bool) -> bool {
    value
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (dots && c == '.'))
}

/// Checks a cluster's project, location and name before they go into a URL path: each is
/// lowercase letters, digits and `-` (GCP's own alphabet for them), so nothing needs escaping
/// and nothing can leave its path segment.
pub(crate) fn check_cluster(cluster: &ClusterRef) -> Result<()> {
    let parts = [
        ("gke_cluster.project", &cluster.project, 6, 30),
        ("gke_cluster.location", &cluster.location, 2, 63),
        ("gke_cluster.name", &cluster.name, 1, 40),
    ];
    for (field, value, min, max) in parts {
        let len = value.chars().count();
        if !(min..=max).contains(&len)
            || !name_chars(value, false)
            || value.starts_with('-')
            || value.ends_with('-')
        {
            return Err(Error::invalid_input(
                field,
                format!(
                    "{value:?} is not a GCP {} ({min} to {max} lowercase letters, digits or '-', not starting or ending with '-')",
                    field.trim_start_matches("gke_cluster.")
                ),
                "pass the values `gcloud container clusters list --format='value(name,location)'` shows, and the project id (not its number or display name)",
            ));
        }
    }
    Ok(())
}

/// Checks a workload pool given explicitly: `<project>.svc.id.goog` for GKE and fleets, or
/// any `<name>.id.goog` pool; lowercase letters, digits, `-` and `.`.
pub(crate) fn check_workload_pool(pool: &str) -> Result<()> {
    let head = pool.strip_suffix(".id.goog").unwrap_or("");
    if head.is_empty() || !name_chars(pool, true) || head.starts_with(['.', '-']) {
        return Err(Error::invalid_input(
            "workload_pool",
            format!("{pool:?} is not a workload pool (`<project>.svc.id.goog`)"),
            "pass the pool `gcloud container clusters describe NAME --format='value(workloadIdentityConfig.workloadPool)'` prints, e.g. my-project.svc.id.goog",
        ));
    }
    Ok(())
}

/// The project of a `<project>.svc.id.goog` pool, where the pool names one.
pub(crate) fn project_of_pool(pool: &str) -> Option<&str> {
    pool.strip_suffix(".svc.id.goog")
}

#[cfg(test)]
mod tests {
    use porter_identity_core::GcpServiceAccountEmail;

    use super::*;

    fn cluster(project: &str, location: &str, name: &str) -> ClusterRef {
        ClusterRef {
            project: project.into(),
            location: location.into(),
            name: name.into(),
        }
    }

    #[test]
    fn member_round_trips_through_parse() {
        let ns = Namespace::parse("team-a").expect("ns");
        let ksa = ServiceAccountName::parse("reports").expect("ksa");
        let m = member("demo-123456.svc.id.goog", &ns, &ksa);
        assert_eq!(m, "serviceAccount:demo-123456.svc.id.goog[team-a/reports]");
        assert_eq!(
            parse_member(&m),
            Some(("demo-123456.svc.id.goog", "team-a", "reports"))
        );
    }

    #[test]
    fn parse_member_refuses_other_members() {
        for m in [
            "serviceAccount:app@p.iam.gserviceaccount.com",
            "group:ops@example.com",
            "serviceAccount:p.svc.id.goog[shop]",
            "serviceAccount:p.svc.id.goog[/api]",
            "principalSet://iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/*",
        ] {
            assert_eq!(parse_member(m), None, "{m}");
        }
    }

    #[test]
    fn resource_names() {
        let email = GcpServiceAccountEmail::parse("app-sa@demo-project.iam.gserviceaccount.com")
            .expect("email");
        assert_eq!(
            service_account_resource(email.as_str()),
            "projects/demo-project/serviceAccounts/app-sa@demo-project.iam.gserviceaccount.com"
        );
        assert_eq!(
            cluster("demo-project", "us-central1", "prod").resource_name(),
            "projects/demo-project/locations/us-central1/clusters/prod"
        );
    }

    #[test]
    fn commands_name_the_cluster_and_the_pool() {
        let c = cluster("demo-project", "europe-west1-b", "prod");
        assert_eq!(
            enable_workload_identity_command(&c),
            "gcloud container clusters update prod --location europe-west1-b --project demo-project --workload-pool=demo-project.svc.id.goog"
        );
        assert!(
            enable_gke_metadata_command(&c, "pool-1")
                .contains("node-pools update pool-1 --cluster prod --location europe-west1-b")
        );
    }

    #[test]
    fn cluster_parts_that_could_leave_their_path_segment_are_refused() {
        assert!(check_cluster(&cluster("demo-project", "us-central1", "prod")).is_ok());
        for (c, field) in [
            (
                cluster("demo/x", "us-central1", "prod"),
                "gke_cluster.project",
            ),
            (
                cluster("demo-project", "us central1", "prod"),
                "gke_cluster.location",
            ),
            (
                cluster("demo-project", "us-central1", "../prod"),
                "gke_cluster.name",
            ),
            (
                cluster("demo-project", "us-central1", "Prod"),
                "gke_cluster.name",
            ),
            (
                cluster("demo-project", "us-central1", ""),
                "gke_cluster.name",
            ),
            (
                cluster("short", "us-central1", "prod"),
                "gke_cluster.project",
            ),
        ] {
            let e = check_cluster(&c).expect_err(field);
            assert!(e.to_string().contains(field), "{e}");
            assert!(e.fix().is_some());
        }
    }

    #[test]
    fn workload_pools() {
        assert!(check_workload_pool("fleet-host.svc.id.goog").is_ok());
        for bad in [
            "",
            ".id.goog",
            "p.svc.id.goog?x",
            "P.svc.id.goog",
            "p svc.id.goog",
        ] {
            assert!(check_workload_pool(bad).is_err(), "{bad:?}");
        }
        assert_eq!(project_of_pool("demo-p.svc.id.goog"), Some("demo-p"));
        assert_eq!(project_of_pool("hub.id.goog"), None);
    }
}

/// The examples that documented these items while they were public, kept as tests.
#[cfg(test)]
mod examples {
    #[test]
    fn example_of_workload_pool_of() {
        assert_eq!(
            crate::names::workload_pool_of("my-project"),
            "my-project.svc.id.goog"
        );
    }

    #[test]
    fn example_of_member() -> Result<(), porter_identity_core::Error> {
        use porter_identity_core::{Namespace, ServiceAccountName};
        let member = crate::names::member(
            "my-project.svc.id.goog",
            &Namespace::parse("shop")?,
            &ServiceAccountName::parse("api")?,
        );
        assert_eq!(member, "serviceAccount:my-project.svc.id.goog[shop/api]");
        Ok::<(), porter_identity_core::Error>(())
    }

    #[test]
    fn example_of_parse_member() {
        use crate::names::parse_member;
        assert_eq!(
            parse_member("serviceAccount:p-123456.svc.id.goog[shop/api]"),
            Some(("p-123456.svc.id.goog", "shop", "api"))
        );
        assert_eq!(parse_member("user:ana@example.com"), None);
    }

    #[test]
    fn example_of_service_account_resource() -> Result<(), porter_identity_core::Error> {
        use porter_identity_core::GcpServiceAccountEmail;
        let email = GcpServiceAccountEmail::parse("app-sa@demo-project.iam.gserviceaccount.com")?;
        assert_eq!(
            crate::names::service_account_resource(email.as_str()),
            "projects/demo-project/serviceAccounts/app-sa@demo-project.iam.gserviceaccount.com"
        );
        Ok::<(), porter_identity_core::Error>(())
    }

    #[test]
    fn example_of_check_workload_pool() {
        use crate::names::check_workload_pool;
        assert!(check_workload_pool("my-project.svc.id.goog").is_ok());
        assert!(check_workload_pool("my-project").is_err());
        assert!(check_workload_pool("a/b.svc.id.goog").is_err());
    }
}
