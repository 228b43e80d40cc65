//! `GcpServiceAccountEmail`: a user-managed GCP service account.

use super::{shown, string_newtype};
use crate::{Error, Result};

/// The email of a user-managed GCP service account:
/// `<account-id>@<project-id>.iam.gserviceaccount.com`.
///
/// The account id is 6–30 characters of lowercase letters, digits and `-`, starting with a
/// letter and not ending with `-`; the project id is 6–30 characters of the same alphabet.
/// The project id is taken from the email, which is how Workload Identity finds the
/// workload pool (`<project>.svc.id.goog`).
///
/// Refused, each with its reason in the error:
/// - the Compute Engine default account `<number>-compute@developer.gserviceaccount.com`
///   and the App Engine default `<project>@appspot.gserviceaccount.com`: shared by every
///   workload of the project, so binding one workload to them breaks least privilege; and
///   the project id cannot be read from the compute one.
/// - Google-managed service agents (`…@gcp-sa-*.iam.gserviceaccount.com`, `…@cloudservices…`):
///   Google operates them; they cannot be impersonated by workloads.
/// - service accounts of domain-scoped projects (`…@<project>.<domain>.iam.gserviceaccount.com`):
///   their workload pool naming is not supported yet.
/// - upper case: GCP emails are lowercase, and IAM members compare exactly.
///
/// ```
/// use porter_identity_core::GcpServiceAccountEmail;
/// let sa = GcpServiceAccountEmail::parse("my-app@my-project.iam.gserviceaccount.com")?;
/// assert_eq!(sa.project_id(), "my-project");
/// assert_eq!(sa.account_id(), "my-app");
/// # Ok::<(), porter_identity_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GcpServiceAccountEmail(String);

const FIELD: &str = "gcpServiceAccount.serviceAccountEmail";
const SUFFIX: &str = ".iam.gserviceaccount.com";
const FIX: &str = "use the email of a service account you created: <account-id>@<project-id>.iam.gserviceaccount.com, as `gcloud iam service-accounts list` shows it";

impl GcpServiceAccountEmail {
    /// Validates a service-account email.
    pub fn parse(value: &str) -> Result<Self> {
        let bad = |problem: &str, fix: &str| {
            Error::invalid_input(FIELD, format!("{} {problem}", shown(value)), fix)
        };
        if value.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(bad(
                "has upper-case letters; GCP service-account emails are lowercase",
                "write the email in lower case",
            ));
        }
        let Some((account, domain)) = value.split_once('@') else {
            return Err(bad("is not an email (no '@')", FIX));
        };
        if domain == "developer.gserviceaccount.com" || domain == "appspot.gserviceaccount.com" {
            return Err(bad(
                "is a default service account, shared by every workload of the project; binding a workload to it breaks least privilege",
                "create a dedicated service account for this service and give it only the roles it needs",
            ));
        }
        let Some(project) = domain.strip_suffix(SUFFIX) else {
            return Err(bad(
                "is not a user-managed service account (it must end in .iam.gserviceaccount.com)",
                FIX,
            ));
        };
        if project.starts_with("gcp-sa-") || project.contains("cloudservices") {
            return Err(bad(
                "is a Google-managed service agent; workloads cannot impersonate it",
                FIX,
            ));
        }
        if project.contains('.') {
            return Err(bad(
                "belongs to a domain-scoped project, which is not supported",
                "use a service account in a project without a domain prefix",
            ));
        }
        check_id(account, "account id", value)?;
        check_id(project, "project id", value)?;
        Ok(GcpServiceAccountEmail(value.to_owned()))
    }

    /// The project that owns the service account.
    pub fn project_id(&self) -> &str {
        let domain = self.0.split_once('@').map_or("", |(_, d)| d);
        domain.strip_suffix(SUFFIX).unwrap_or(domain)
    }

    /// The part before `@`.
    pub fn account_id(&self) -> &str {
        self.0.split_once('@').map_or("", |(a, _)| a)
    }
}
string_newtype!(GcpServiceAccountEmail);

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

fn check_id(id: &str, what: &str, whole: &str) -> Result<()> {
    let len = id.chars().count();
    let problem = if !(6..=30).contains(&len) {
        Some(format!(
            "has {} {what} of {len} characters; GCP allows 6 to 30",
            article(what)
        ))
    } else if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        Some(format!("has {c:?} in its {what}"))
    } else if !id.starts_with(|c: char| c.is_ascii_lowercase()) {
        Some(format!(
            "has {} {what} that does not start with a letter",
            article(what)
        ))
    } else if id.ends_with('-') {
        Some(format!("has {} {what} that ends with '-'", article(what)))
    } else {
        None
    };
    match problem {
        Some(p) => Err(Error::invalid_input(
            FIELD,
            format!("{} {p}", shown(whole)),
            FIX,
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid() {
        let sa = GcpServiceAccountEmail::parse("abcdef@projec.iam.gserviceaccount.com").unwrap();
        assert_eq!(sa.project_id(), "projec");
        let long = format!(
            "{}@{}.iam.gserviceaccount.com",
            "a".repeat(30),
            "p".repeat(30)
        );
        assert!(GcpServiceAccountEmail::parse(&long).is_ok());
        assert!(GcpServiceAccountEmail::parse("app-01@my-proj-42.iam.gserviceaccount.com").is_ok());
    }

    #[test]
    fn invalid() {
        for (bad, needle) in [
            ("no-at-sign", "no '@'"),
            ("My-App@my-project.iam.gserviceaccount.com", "upper-case"),
            ("my-app@gmail.com", "user-managed"),
            (
                "123-compute@developer.gserviceaccount.com",
                "default service account",
            ),
            (
                "my-project@appspot.gserviceaccount.com",
                "default service account",
            ),
            (
                "service-1@gcp-sa-pubsub.iam.gserviceaccount.com",
                "service agent",
            ),
            (
                "my-app@proj.example.com.iam.gserviceaccount.com",
                "domain-scoped",
            ),
            ("abcde@my-project.iam.gserviceaccount.com", "5 characters"),
            (
                &format!("{}@my-project.iam.gserviceaccount.com", "a".repeat(31)) as &str,
                "31 characters",
            ),
            ("my-app@short.iam.gserviceaccount.com", "project id of 5"),
            (
                "1myapp@my-project.iam.gserviceaccount.com",
                "start with a letter",
            ),
            (
                "my-app-@my-project.iam.gserviceaccount.com",
                "ends with '-'",
            ),
            ("my_app@my-project.iam.gserviceaccount.com", "'_'"),
            (
                "my-app@my-project-.iam.gserviceaccount.com",
                "ends with '-'",
            ),
        ] {
            let e = GcpServiceAccountEmail::parse(bad).unwrap_err().to_string();
            assert!(e.contains(needle), "{bad}: {e}");
            assert!(e.contains("serviceAccountEmail"), "{e}");
        }
    }
}
