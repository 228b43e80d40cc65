//! `VerifyReport` and `Finding`: the read-only diagnosis of a binding.

use std::fmt;

use crate::ServiceAccountPatch;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Severity {
    /// For information; nothing to do.
    Info,
    /// Works, but is risky or breaks least privilege.
    Warning,
    /// The workload does not get its identity until this is fixed.
    Error,
}

impl Severity {
    /// `info`, `warning` or `error`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing a verify found.
///
/// `code` is stable and dotted (`aws.trust_policy.missing_tag_session`, `lint.wildcard_action`),
/// so tooling can match on it; `message` says what is wrong and `remediation` how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Finding {
    /// How bad it is.
    pub severity: Severity,
    /// Stable, dotted code.
    pub code: String,
    /// What was found.
    pub message: String,
    /// How to fix it (empty for info).
    pub remediation: String,
}

impl Finding {
    /// A finding.
    pub fn new(
        severity: Severity,
        code: impl Into<String>,
        message: impl Into<String>,
        remediation: impl Into<String>,
    ) -> Self {
        Finding {
            severity,
            code: code.into(),
            message: message.into(),
            remediation: remediation.into(),
        }
    }

    /// An error finding.
    pub fn error(
        code: impl Into<String>,
        message: impl Into<String>,
        remediation: impl Into<String>,
    ) -> Self {
        Self::new(Severity::Error, code, message, remediation)
    }

    /// A warning finding.
    pub fn warning(
        code: impl Into<String>,
        message: impl Into<String>,
        remediation: impl Into<String>,
    ) -> Self {
        Self::new(Severity::Warning, code, message, remediation)
    }

    /// An error finding made from an error that verify reports instead of returning: the
    /// error's problem as the message and its fix as the remediation, each said once.
    ///
    /// ```
    /// use porter_identity_core::{Cloud, Error, ErrorKind, Finding};
    /// let e = Error::cloud(ErrorKind::NotFound, Cloud::Aws, "GetRole", "role x does not exist")
    ///     .with_fix("create role x");
    /// let f = Finding::from_error("aws.role.not_found", &e);
    /// assert_eq!(f.message, "aws GetRole failed (not_found): role x does not exist");
    /// assert_eq!(f.remediation, "create role x");
    /// ```
    pub fn from_error(code: impl Into<String>, error: &crate::Error) -> Self {
        Self::error(code, error.problem(), error.fix().unwrap_or_default())
    }

    /// An info finding.
    pub fn info(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Severity::Info, code, message, "")
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<7} {}: {}", self.severity, self.code, self.message)?;
        if !self.remediation.is_empty() {
            write!(
                f,
                "\n        fix: {}",
                self.remediation.replace('\n', "\n             ")
            )?;
        }
        Ok(())
    }
}

/// What verify found for one binding. Healthy means no [`Severity::Error`] finding.
///
/// Beside its findings it says what the link needs of the Kubernetes side, as far as verify
/// read it ([`service_account_patch`](Self::service_account_patch)): the same needs a plan
/// gives, so that [`Reconciler::verify`](crate::Reconciler::verify) diagnoses the cluster
/// without planning the app again.
///
/// ```
/// use porter_identity_core::{Finding, VerifyReport};
///
/// let mut report = VerifyReport::default();
/// report.push(Finding::warning("lint.wildcard_action", "policy allows s3:*", "name the actions"));
/// assert!(report.is_healthy());
/// report.push(Finding::error("aws.role.missing", "role api-role does not exist", "create it"));
/// assert!(!report.is_healthy());
/// assert!(report.has("aws.role.missing"));
/// println!("{report}");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// The findings, in the order they were found.
    pub findings: Vec<Finding>,
    /// What the link needs of the Kubernetes side, as far as verify read it: the annotations
    /// and pod labels a working link needs, and when the link last changed (when the cloud
    /// says). Empty when verify stopped before it knew (a missing managed identity has no
    /// client id to annotate).
    pub service_account_patch: ServiceAccountPatch,
}

impl VerifyReport {
    /// Adds a finding.
    pub fn push(&mut self, finding: Finding) {
        self.findings.push(finding);
    }

    /// Whether the binding works: no error findings.
    pub fn is_healthy(&self) -> bool {
        !self.findings.iter().any(|f| f.severity == Severity::Error)
    }

    /// Whether a finding with `code` is present.
    pub fn has(&self, code: &str) -> bool {
        self.findings.iter().any(|f| f.code == code)
    }

    /// The first finding with `code`, to read its message and fix.
    pub fn finding(&self, code: &str) -> Option<&Finding> {
        self.findings.iter().find(|f| f.code == code)
    }

    /// The findings of `severity`.
    pub fn of(&self, severity: Severity) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.severity == severity)
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let errors = self.of(Severity::Error).count();
        let warnings = self.of(Severity::Warning).count();
        if self.is_healthy() {
            write!(f, "healthy")?;
        } else {
            write!(f, "BROKEN")?;
        }
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        write!(
            f,
            " ({errors} error{}, {warnings} warning{})",
            plural(errors),
            plural(warnings)
        )?;
        let mut sorted: Vec<&Finding> = self.findings.iter().collect();
        sorted.sort_by_key(|f| std::cmp::Reverse(f.severity));
        for finding in sorted {
            write!(f, "\n  {finding}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_sorts_errors_first() {
        let mut r = VerifyReport::default();
        r.push(Finding::info("x.info", "fine"));
        r.push(Finding::error("x.err", "broken", "do this\nthen that"));
        let s = r.to_string();
        assert!(s.starts_with("BROKEN (1 error, 0 warnings)"), "{s}");
        let err_at = s.find("x.err").unwrap();
        let info_at = s.find("x.info").unwrap();
        assert!(err_at < info_at, "{s}");
        assert!(s.contains("fix: do this\n             then that"), "{s}");
    }

    #[test]
    fn empty_is_healthy() {
        assert!(VerifyReport::default().is_healthy());
        assert_eq!(
            VerifyReport::default().to_string(),
            "healthy (0 errors, 0 warnings)"
        );
    }
}
