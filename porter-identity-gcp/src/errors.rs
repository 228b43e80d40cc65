//! The one mapping from a Google Cloud error to a porter-identity [`Error`]: the status code's
//! name first (as the official clients and the JSON `error.status` give it), the HTTP status
//! last.

use std::time::Duration;

use crate::operation as op;
use porter_identity_core::{Cloud, Error, ErrorKind};

/// A status code as Google's clients return it: its canonical name (`ABORTED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatusCode<'a> {
    /// The canonical name, e.g. `PERMISSION_DENIED`.
    Name(&'a str),
}

/// What a failed call is: the kind, and whether a retry may succeed (a stale etag: re-read
/// and try again).
fn kind_of(code: Option<&str>, http_status: Option<u16>) -> (ErrorKind, bool) {
    match code {
        Some("ABORTED") => return (ErrorKind::Conflict, true),
        Some("RESOURCE_EXHAUSTED") => return (ErrorKind::Throttled, true),
        Some("UNAVAILABLE" | "INTERNAL" | "DEADLINE_EXCEEDED") => {
            return (ErrorKind::Unavailable, true);
        }
        Some("PERMISSION_DENIED") => return (ErrorKind::PermissionDenied, false),
        Some("UNAUTHENTICATED") => return (ErrorKind::Unauthenticated, false),
        Some("NOT_FOUND") => return (ErrorKind::NotFound, false),
        Some("ALREADY_EXISTS") => return (ErrorKind::AlreadyExists, false),
        Some("INVALID_ARGUMENT" | "OUT_OF_RANGE") => return (ErrorKind::InvalidInput, false),
        Some("FAILED_PRECONDITION") => return (ErrorKind::Conflict, false),
        _ => {}
    }
    match http_status {
        Some(409) => (ErrorKind::Conflict, true),
        Some(429) => (ErrorKind::Throttled, true),
        Some(s) if s >= 500 => (ErrorKind::Unavailable, true),
        Some(403) => (ErrorKind::PermissionDenied, false),
        Some(401) => (ErrorKind::Unauthenticated, false),
        Some(404) => (ErrorKind::NotFound, false),
        Some(400) => (ErrorKind::InvalidInput, false),
        _ => (ErrorKind::Other, false),
    }
}

/// The pool named by IAM's `Identity Pool does not exist (<pool>)`.
fn missing_identity_pool(message: &str) -> Option<&str> {
    let rest = &message[message.find("Identity Pool does not exist (")? + 30..];
    rest.split_once(')').map(|(pool, _)| pool)
}

/// Maps a failed Google Cloud call of `operation` on `resource` (a service account's email, a
/// cluster, a project) to an [`Error`] with the fix.
pub(crate) fn map_status(
    operation: &str,
    resource: &str,
    code: Option<StatusCode<'_>>,
    http_status: Option<u16>,
    message: &str,
    retry_after: Option<Duration>,
) -> Error {
    let name = code.map(|StatusCode::Name(n)| n);
    let (kind, retryable) = kind_of(name, http_status);
    let shown = match (name, http_status) {
        (Some(n), Some(s)) => format!("{n}, HTTP {s}"),
        (Some(n), None) => n.to_owned(),
        (None, Some(s)) => format!("HTTP {s}"),
        (None, None) => "no status".to_owned(),
    };
    let message = message.trim();
    let mut error = Error::cloud(
        kind,
        Cloud::Gcp,
        operation,
        format!("{operation} on {resource} failed ({shown}): {message}"),
    )
    .retryable(retryable);
    if let Some(wait) = retry_after {
        error = error.with_retry_after(wait);
    }
    if let Some(pool) = missing_identity_pool(message) {
        return Error::cloud(
            ErrorKind::InvalidInput,
            Cloud::Gcp,
            operation,
            format!(
                "IAM does not know workload identity pool {pool}: Workload Identity is not enabled on any cluster of that project, so no member of the pool can be granted"
            ),
        )
        .with_fix(format!(
            "enable Workload Identity on a cluster of the project (`gcloud container clusters update NAME --location LOCATION --workload-pool={pool}`), or bind with the workload pool of a cluster that has it"
        ))
        .retryable(false);
    }
    let fix = match kind {
        ErrorKind::PermissionDenied => Some(format!(
            "grant the caller `iam.serviceAccounts.getIamPolicy` and `iam.serviceAccounts.setIamPolicy` on {resource}: `roles/iam.serviceAccountAdmin` on that service account has both (`gcloud iam service-accounts add-iam-policy-binding {resource} --member=<caller> --role=roles/iam.serviceAccountAdmin`)"
        )),
        ErrorKind::Unauthenticated => Some(
            "give the process Google credentials: `gcloud auth application-default login`, GOOGLE_APPLICATION_CREDENTIALS pointing at a key file, or Workload Identity / the metadata server where it runs".to_owned(),
        ),
        _ => None,
    };
    match fix {
        Some(fix)
            if [op::GET_IAM_POLICY, op::SET_IAM_POLICY]
                .iter()
                .any(|op| op.name() == operation)
                || kind == ErrorKind::Unauthenticated =>
        {
            error.with_fix(fix)
        }
        _ => error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SA: &str = "app@demo-project.iam.gserviceaccount.com";

    fn map(code: Option<StatusCode<'_>>, http: Option<u16>, msg: &str) -> Error {
        map_status("setIamPolicy", SA, code, http, msg, None)
    }

    #[test]
    fn names_and_http_statuses_map_alike() {
        // (name, google.rpc.Code number for the reader, HTTP status, kind, retryable)
        let cases: &[(&str, i32, u16, ErrorKind, bool)] = &[
            ("ABORTED", 10, 409, ErrorKind::Conflict, true),
            ("RESOURCE_EXHAUSTED", 8, 429, ErrorKind::Throttled, true),
            ("UNAVAILABLE", 14, 503, ErrorKind::Unavailable, true),
            ("INTERNAL", 13, 500, ErrorKind::Unavailable, true),
            (
                "PERMISSION_DENIED",
                7,
                403,
                ErrorKind::PermissionDenied,
                false,
            ),
            (
                "UNAUTHENTICATED",
                16,
                401,
                ErrorKind::Unauthenticated,
                false,
            ),
            ("NOT_FOUND", 5, 404, ErrorKind::NotFound, false),
            ("INVALID_ARGUMENT", 3, 400, ErrorKind::InvalidInput, false),
        ];
        for &(name, _, http, kind, retryable) in cases {
            for e in [
                map(Some(StatusCode::Name(name)), None, "m"),
                map(None, Some(http), "m"),
            ] {
                assert_eq!(e.kind(), kind, "{name}: {e}");
                assert_eq!(e.is_retryable(), retryable, "{name}: {e}");
            }
        }
    }

    #[test]
    fn the_code_wins_over_the_http_status() {
        let e = map(Some(StatusCode::Name("ABORTED")), Some(400), "m");
        assert_eq!(e.kind(), ErrorKind::Conflict);
        let e = map(Some(StatusCode::Name("SOMETHING_NEW")), Some(503), "m");
        assert_eq!(
            e.kind(),
            ErrorKind::Unavailable,
            "an unknown name falls back on the HTTP status"
        );
    }

    #[test]
    fn the_missing_identity_pool_names_the_pool_and_the_fix() {
        let e = map(
            Some(StatusCode::Name("INVALID_ARGUMENT")),
            Some(400),
            "Identity Pool does not exist (demo-project.svc.id.goog). Please check that you specified a valid resource name as returned in the `name` attribute in the configuration API.",
        );
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        let text = e.to_string();
        assert!(text.contains("demo-project.svc.id.goog"), "{text}");
        assert!(text.contains("not enabled on any cluster"), "{text}");
        assert!(
            e.fix()
                .is_some_and(|f| f.contains("--workload-pool=demo-project.svc.id.goog"))
        );
    }

    #[test]
    fn permission_denied_names_the_permission_and_the_role() {
        let e = map(
            Some(StatusCode::Name("PERMISSION_DENIED")),
            Some(403),
            "denied",
        );
        let fix = e.fix().expect("fix");
        assert!(fix.contains("iam.serviceAccounts.setIamPolicy"), "{fix}");
        assert!(fix.contains("roles/iam.serviceAccountAdmin"), "{fix}");
        assert!(fix.contains(SA), "{fix}");
        assert_eq!(
            e.to_string().matches("Fix:").count(),
            1,
            "the fix is said once: {e}"
        );
        let project = map_status(
            "projects.getIamPolicy",
            "projects/demo-project",
            Some(StatusCode::Name("PERMISSION_DENIED")),
            Some(403),
            "denied",
            None,
        );
        assert!(
            project.fix().is_none(),
            "no setIamPolicy advice for a project read: {project}"
        );
    }

    #[test]
    fn retry_after_is_carried() {
        let e = map_status(
            "getIamPolicy",
            SA,
            None,
            Some(429),
            "slow down",
            Some(Duration::from_secs(2)),
        );
        assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
    }
}

/// The examples that documented these items while they were public, kept as tests.
#[cfg(test)]
mod examples {
    #[test]
    fn example_of_map_status() {
        use crate::errors::{StatusCode, map_status};
        use porter_identity_core::ErrorKind;

        let stale = map_status(
            "setIamPolicy",
            "sa@p-123456.iam.gserviceaccount.com",
            Some(StatusCode::Name("ABORTED")),
            Some(409),
            "There were concurrent policy changes.",
            None,
        );
        assert_eq!(stale.kind(), ErrorKind::Conflict);
        assert!(stale.is_retryable());
    }
}
