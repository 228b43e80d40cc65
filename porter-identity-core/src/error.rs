//! The one error type of porter-identity, with a kind callers can match on.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::Cloud;

/// What went wrong, independent of the cloud: the part of an [`Error`] callers branch on.
///
/// Marked `#[non_exhaustive]` so that new kinds can be added without a breaking change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input was rejected before any cloud call: a bad name, a bad porter.yaml, a binding
    /// of another cloud's connection.
    InvalidInput,
    /// The cloud resource the call needs (role, cluster, identity) does not exist.
    NotFound,
    /// The resource already exists and cannot be adopted.
    AlreadyExists,
    /// The resource is in a state that forbids the change (owned by someone else, a concurrent
    /// write won the race).
    Conflict,
    /// The caller's credentials are valid but lack a permission.
    PermissionDenied,
    /// No usable credentials, or they expired.
    Unauthenticated,
    /// The cloud throttled the call; retrying later succeeds.
    Throttled,
    /// The cloud (or the network to it) failed transiently; retrying later may succeed.
    Unavailable,
    /// A quota of the cloud would be exceeded by the write.
    LimitExceeded,
    /// Anything else.
    Other,
}

impl ErrorKind {
    /// Whether an error of this kind is retried by default (throttling and transient failures).
    pub const fn is_retryable_by_default(self) -> bool {
        matches!(self, ErrorKind::Throttled | ErrorKind::Unavailable)
    }

    /// A short lowercase name, stable for logs and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::NotFound => "not_found",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::Conflict => "conflict",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::Throttled => "throttled",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::LimitExceeded => "limit_exceeded",
            ErrorKind::Other => "other",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where in a porter.yaml a [`ManifestError`] was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct SourceLocation {
    /// 1-based line.
    pub line: u64,
    /// 1-based column.
    pub column: u64,
}

impl fmt::Display for SourceLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// A porter.yaml that could not be read: which service, which connection, which field, where.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ManifestError {
    /// The file, when read from a path.
    pub file: Option<String>,
    /// The path to the offending value, e.g. `services[1].connections[0].role`.
    pub path: String,
    /// The service's name, where it is known.
    pub service: Option<String>,
    /// The connection's index in `connections`, where the error is in a connection.
    pub connection_index: Option<usize>,
    /// The field the error is about, e.g. `role`.
    pub field: Option<String>,
    /// What is wrong.
    pub problem: String,
    /// How to fix it.
    pub fix: String,
    /// Where the parser saw it.
    pub location: Option<SourceLocation>,
}

impl ManifestError {
    /// Writes where and what, without the fix.
    fn fmt_problem(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{file}: ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}", self.path)?;
            if let Some(service) = &self.service {
                write!(f, " (service `{service}`)")?;
            }
            f.write_str(": ")?;
        }
        write!(f, "{}", self.problem)?;
        if let Some(location) = &self.location {
            write!(f, " (at {location})")?;
        }
        Ok(())
    }
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_problem(f)?;
        f.write_str(&fix_suffix(&self.fix))
    }
}

/// What a failed call called: a cloud, or the Kubernetes API server.
///
/// ```
/// use porter_identity_core::{Cloud, Target};
/// assert_eq!(Target::Cloud(Cloud::Gcp).to_string(), "gcp");
/// assert_eq!(Target::Kubernetes.to_string(), "kubernetes");
/// assert_eq!(Target::Kubernetes.cloud(), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Target {
    /// A cloud's API.
    Cloud(Cloud),
    /// The cluster's Kubernetes API server.
    Kubernetes,
}

impl Target {
    /// `aws`, `azure`, `gcp` or `kubernetes`, stable for logs and JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            Target::Cloud(cloud) => cloud.as_str(),
            Target::Kubernetes => "kubernetes",
        }
    }

    /// The cloud, when the target is one.
    pub const fn cloud(self) -> Option<Cloud> {
        match self {
            Target::Cloud(cloud) => Some(cloud),
            Target::Kubernetes => None,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<Cloud> for Target {
    fn from(cloud: Cloud) -> Self {
        Target::Cloud(cloud)
    }
}

/// The error of every porter-identity operation.
///
/// Every error has an [`ErrorKind`] to branch on, says whether it is retryable, and reads as
/// a sentence that names the field or resource and how to fix it. The error of a failed call
/// ([`Error::Call`]) also carries its [`Target`] (a cloud or the Kubernetes API server), the
/// operation (`GetRole`, `apply ServiceAccount shop/shop-api`, …) and the underlying source
/// error. No variant ever holds a credential, so `Display` and `Debug` are safe to log.
///
/// ```
/// use porter_identity_core::{Error, ErrorKind, Cloud};
///
/// let err = Error::cloud(ErrorKind::Throttled, Cloud::Aws, "GetRole", "Rate exceeded");
/// assert!(err.is_retryable());
/// assert_eq!(err.kind(), ErrorKind::Throttled);
/// assert_eq!(err.to_string(), "aws GetRole failed (throttled): Rate exceeded");
/// ```
#[derive(thiserror::Error, Clone)]
#[non_exhaustive]
pub enum Error {
    /// A value given by the caller is not valid.
    #[error("invalid {field}: {}{}", sentence(.problem), fix_suffix(.fix))]
    InvalidInput {
        /// The field or argument, e.g. `connections[0].role` or `namespace`.
        field: String,
        /// What is wrong with it.
        problem: String,
        /// How to fix it.
        fix: String,
    },
    /// A porter.yaml could not be read.
    #[error("invalid porter.yaml: {0}")]
    Manifest(Box<ManifestError>),
    /// A call to a cloud or to the Kubernetes API server failed, or the state it found forbids
    /// the operation (another owner's link, another field manager's annotation).
    #[error("{target} {operation} failed ({kind}): {}{}", sentence(.message), fix_suffix(.fix))]
    Call {
        /// What went wrong.
        kind: ErrorKind,
        /// What was called: a cloud, or the Kubernetes API server.
        target: Target,
        /// The operation: the cloud API's (`CreatePodIdentityAssociation`), or the Kubernetes
        /// call with its object (`apply ServiceAccount shop/shop-api`).
        operation: String,
        /// What the cloud or the API server said, or what the client found, in words.
        message: String,
        /// How to fix it, where known.
        fix: String,
        /// Whether retrying may succeed (overrides the kind's default when set).
        retryable: Option<bool>,
        /// How long the callee asked the caller to wait before retrying (`Retry-After`,
        /// Kubernetes' `details.retryAfterSeconds`).
        retry_after: Option<Duration>,
        /// The underlying error, shared so that one error can be reported for each binding it
        /// failed (a list call that failed for a whole namespace, a role check for its services).
        #[source]
        source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
    },
}

/// A problem as the first sentence of an error, without its own closing period: clouds end
/// their messages with one, and `. Fix:` follows.
fn sentence(text: &str) -> &str {
    text.strip_suffix('.').unwrap_or(text)
}

fn fix_suffix(fix: &str) -> String {
    if fix.is_empty() {
        String::new()
    } else {
        format!(". Fix: {fix}")
    }
}

impl Error {
    /// An [`ErrorKind::InvalidInput`] error about `field`.
    pub fn invalid_input(
        field: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Error::InvalidInput {
            field: field.into(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    /// An error of a call to `target`.
    pub fn call(
        kind: ErrorKind,
        target: Target,
        operation: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::Call {
            kind,
            target,
            operation: operation.into(),
            message: message.into(),
            fix: String::new(),
            retryable: None,
            retry_after: None,
            source: None,
        }
    }

    /// An error of a cloud call.
    pub fn cloud(
        kind: ErrorKind,
        cloud: Cloud,
        operation: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::call(kind, Target::Cloud(cloud), operation, message)
    }

    /// An error of a Kubernetes API call.
    ///
    /// ```
    /// use porter_identity_core::{Error, ErrorKind};
    /// let e = Error::kubernetes(ErrorKind::NotFound, "get ServiceAccount shop/api", "not found");
    /// assert_eq!(e.to_string(), "kubernetes get ServiceAccount shop/api failed (not_found): not found");
    /// ```
    pub fn kubernetes(
        kind: ErrorKind,
        operation: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::call(kind, Target::Kubernetes, operation, message)
    }

    /// Adds how to fix it (cloud errors and invalid input).
    #[must_use]
    pub fn with_fix(mut self, how: impl Into<String>) -> Self {
        match &mut self {
            Error::Call { fix, .. } | Error::InvalidInput { fix, .. } => *fix = how.into(),
            Error::Manifest(m) => m.fix = how.into(),
        }
        self
    }

    /// Adds the underlying error (errors of a call; others are unchanged).
    #[must_use]
    pub fn with_source(
        mut self,
        err: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        if let Error::Call { source, .. } = &mut self {
            *source = Some(Arc::from(err.into()));
        }
        self
    }

    /// Overrides whether this error is retryable, e.g. a cloud-specific conflict that a retry
    /// resolves (Azure's concurrent credential writes, a stale GCP policy etag).
    #[must_use]
    pub fn retryable(mut self, yes: bool) -> Self {
        if let Error::Call { retryable, .. } = &mut self {
            *retryable = Some(yes);
        }
        self
    }

    /// Records how long the cloud asked to wait before a retry (an HTTP `Retry-After`);
    /// [`RetryPolicy`](crate::RetryPolicy) waits at least that long (errors of a call).
    #[must_use]
    pub fn with_retry_after(mut self, wait: Duration) -> Self {
        if let Error::Call { retry_after, .. } = &mut self {
            *retry_after = Some(wait);
        }
        self
    }

    /// How long the cloud or the API server asked to wait before a retry, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Call { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidInput { .. } | Error::Manifest(_) => ErrorKind::InvalidInput,
            Error::Call { kind, .. } => *kind,
        }
    }

    /// Whether retrying the same call may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Call {
                retryable: Some(r), ..
            } => *r,
            other => other.kind().is_retryable_by_default(),
        }
    }

    /// What was called, for errors of a call.
    pub fn target(&self) -> Option<Target> {
        match self {
            Error::Call { target, .. } => Some(*target),
            _ => None,
        }
    }

    /// The cloud, for errors of a cloud call.
    pub fn cloud_name(&self) -> Option<Cloud> {
        self.target().and_then(Target::cloud)
    }

    /// The operation, for errors of a call.
    pub fn operation(&self) -> Option<&str> {
        match self {
            Error::Call { operation, .. } => Some(operation),
            _ => None,
        }
    }

    /// How to fix it, where known.
    pub fn fix(&self) -> Option<&str> {
        let fix = match self {
            Error::InvalidInput { fix, .. } | Error::Call { fix, .. } => fix.as_str(),
            Error::Manifest(m) => m.fix.as_str(),
        };
        (!fix.is_empty()).then_some(fix)
    }

    /// What went wrong, without the fix: the error's sentence up to `. Fix:`. Use it with
    /// [`Error::fix`] where the two are shown apart (a verify finding, a report), so that the
    /// fix is not said twice.
    ///
    /// ```
    /// use porter_identity_core::{Cloud, Error, ErrorKind};
    /// let e = Error::cloud(ErrorKind::NotFound, Cloud::Aws, "GetRole", "no role x")
    ///     .with_fix("create role x");
    /// assert_eq!(e.problem(), "aws GetRole failed (not_found): no role x");
    /// assert_eq!(e.to_string(), "aws GetRole failed (not_found): no role x. Fix: create role x");
    /// ```
    pub fn problem(&self) -> String {
        struct Problem<'a>(&'a Error);
        impl fmt::Display for Problem<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.0 {
                    Error::InvalidInput { field, problem, .. } => {
                        write!(f, "invalid {field}: {}", sentence(problem))
                    }
                    Error::Manifest(m) => {
                        f.write_str("invalid porter.yaml: ")?;
                        m.fmt_problem(f)
                    }
                    Error::Call {
                        kind,
                        target,
                        operation,
                        message,
                        ..
                    } => write!(
                        f,
                        "{target} {operation} failed ({kind}): {}",
                        sentence(message)
                    ),
                }
            }
        }
        Problem(self).to_string()
    }

    /// What is wrong and how to fix it, for placing a validator's error on another field.
    pub(crate) fn into_problem_and_fix(self) -> (String, String) {
        match self {
            Error::InvalidInput { problem, fix, .. } => (problem, fix),
            other => (other.to_string(), String::new()),
        }
    }

    /// The porter.yaml details, for [`Error::Manifest`].
    pub fn manifest(&self) -> Option<&ManifestError> {
        match self {
            Error::Manifest(m) => Some(m),
            _ => None,
        }
    }
}

impl From<ManifestError> for Error {
    fn from(e: ManifestError) -> Self {
        Error::Manifest(Box::new(e))
    }
}

// Hand-written so that an underlying SDK error is shown by its Display (a sentence) rather
// than its Debug, which for some SDKs dumps whole request/response structures.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidInput {
                field,
                problem,
                fix,
            } => f
                .debug_struct("InvalidInput")
                .field("field", field)
                .field("problem", problem)
                .field("fix", fix)
                .finish(),
            Error::Manifest(m) => f.debug_tuple("Manifest").field(m).finish(),
            Error::Call {
                kind,
                target,
                operation,
                message,
                fix,
                retryable,
                retry_after,
                source,
            } => f
                .debug_struct("Call")
                .field("kind", kind)
                .field("target", target)
                .field("operation", operation)
                .field("message", message)
                .field("fix", fix)
                .field("retryable", retryable)
                .field("retry_after", retry_after)
                .field("source", &source.as_ref().map(|s| s.to_string()))
                .finish(),
        }
    }
}

/// The result type of porter-identity.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_retry_by_default_only_when_transient() {
        assert!(ErrorKind::Throttled.is_retryable_by_default());
        assert!(ErrorKind::Unavailable.is_retryable_by_default());
        for kind in [
            ErrorKind::InvalidInput,
            ErrorKind::NotFound,
            ErrorKind::AlreadyExists,
            ErrorKind::Conflict,
            ErrorKind::PermissionDenied,
            ErrorKind::Unauthenticated,
            ErrorKind::LimitExceeded,
            ErrorKind::Other,
        ] {
            assert!(!kind.is_retryable_by_default(), "{kind}");
        }
    }

    #[test]
    fn a_kubernetes_error_is_a_call_error_with_its_target_as_data() {
        let throttled = Error::kubernetes(ErrorKind::Throttled, "list pods", "slow down")
            .with_retry_after(Duration::from_secs(2));
        assert!(matches!(
            throttled,
            Error::Call {
                target: Target::Kubernetes,
                ..
            }
        ));
        assert_eq!(throttled.target(), Some(Target::Kubernetes));
        assert_eq!(throttled.cloud_name(), None);
        let cloud = Error::cloud(ErrorKind::Throttled, Cloud::Aws, "GetRole", "slow down");
        assert_eq!(cloud.target(), Some(Target::Cloud(Cloud::Aws)));
        assert_eq!(throttled.retry_after(), Some(Duration::from_secs(2)));
        assert!(throttled.is_retryable());
        assert!(!throttled.retryable(false).is_retryable());
    }

    #[test]
    fn retryable_override_wins() {
        let conflict = Error::cloud(ErrorKind::Conflict, Cloud::Azure, "Put", "busy");
        assert!(!conflict.is_retryable());
        assert!(conflict.retryable(true).is_retryable());
        let throttled = Error::cloud(ErrorKind::Throttled, Cloud::Aws, "GetRole", "slow down");
        assert!(!throttled.retryable(false).is_retryable());
    }

    #[test]
    fn display_names_field_and_fix() {
        let e = Error::invalid_input("namespace", "is empty", "give a DNS-1123 label");
        assert_eq!(
            e.to_string(),
            "invalid namespace: is empty. Fix: give a DNS-1123 label"
        );
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert_eq!(e.fix(), Some("give a DNS-1123 label"));
    }

    #[test]
    fn problem_is_display_without_the_fix() {
        let errors = [
            Error::invalid_input("namespace", "is empty", "give a name"),
            Error::cloud(ErrorKind::Conflict, Cloud::Aws, "Op", "busy").with_fix("wait"),
            // Clouds end their messages with a period: not doubled before `. Fix:`.
            Error::cloud(ErrorKind::Unavailable, Cloud::Azure, "Op", "Try later.").with_fix("wait"),
            Error::from(ManifestError {
                file: Some("porter.yaml".into()),
                path: "services[0].name".into(),
                service: None,
                connection_index: None,
                field: Some("name".into()),
                problem: "is missing".into(),
                fix: "add a name".into(),
                location: Some(SourceLocation { line: 2, column: 3 }),
            }),
        ];
        for e in errors {
            let fix = e.fix().unwrap().to_owned();
            assert_eq!(e.to_string(), format!("{}. Fix: {fix}", e.problem()));
            assert!(!e.problem().contains(&fix), "{}", e.problem());
            assert!(!e.to_string().contains(".. Fix"), "{e}");
        }
        let bare = Error::cloud(ErrorKind::Other, Cloud::Gcp, "Op", "boom");
        assert_eq!(bare.problem(), bare.to_string());
    }

    #[test]
    fn debug_shows_source_as_sentence() {
        let e = Error::cloud(ErrorKind::Other, Cloud::Gcp, "getIamPolicy", "boom")
            .with_source(std::io::Error::other("socket closed"));
        let dbg = format!("{e:?}");
        assert!(dbg.contains("socket closed"), "{dbg}");
        assert!(std::error::Error::source(&e).is_some());
        assert_eq!(e.operation(), Some("getIamPolicy"));
        assert_eq!(e.cloud_name(), Some(Cloud::Gcp));
    }
}
