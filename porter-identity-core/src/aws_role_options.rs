//! `AwsRoleOptions`: what an `awsRole` connection asks beyond its role — a target role in
//! another account, EKS Pod Identity's session tags and session policy, and how the pod gets
//! the role (an EKS Pod Identity association, or IRSA).

use std::fmt;

use serde_json::Value;

use crate::{Error, Result, RoleRef};

/// How pods get an `awsRole` connection's role.
///
/// ```
/// use porter_identity_core::AwsRoleMode;
/// assert_eq!(AwsRoleMode::parse("irsa")?, AwsRoleMode::Irsa);
/// assert_eq!(AwsRoleMode::default().as_str(), "podIdentity");
/// # Ok::<(), porter_identity_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AwsRoleMode {
    /// `podIdentity`: an EKS Pod Identity association of the service account to the role (the
    /// default). Needs the `eks-pod-identity-agent` add-on on EC2 Linux nodes.
    #[default]
    PodIdentity,
    /// `irsa`: IAM roles for service accounts. The ServiceAccount carries the
    /// `eks.amazonaws.com/role-arn` annotation and the role trusts the cluster's OIDC provider;
    /// nothing is written in AWS. For pods Pod Identity cannot serve (Fargate, clusters without
    /// the agent).
    Irsa,
}

impl AwsRoleMode {
    /// The mode as porter.yaml writes it (`podIdentity`, `irsa`).
    pub const fn as_str(self) -> &'static str {
        match self {
            AwsRoleMode::PodIdentity => "podIdentity",
            AwsRoleMode::Irsa => "irsa",
        }
    }

    /// Parses `podIdentity` or `irsa`.
    pub fn parse(value: &str) -> Result<Self> {
        match value {
            "podIdentity" => Ok(AwsRoleMode::PodIdentity),
            "irsa" => Ok(AwsRoleMode::Irsa),
            other => Err(Error::invalid_input(
                "awsRole.mode",
                format!("is {other:?}"),
                "write `mode: podIdentity` (an EKS Pod Identity association, the default) or `mode: irsa` (the eks.amazonaws.com/role-arn annotation, for Fargate pods or clusters without the Pod Identity agent)",
            )),
        }
    }
}

impl fmt::Display for AwsRoleMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The longest session policy STS takes: 2,048 characters of plain text.
pub const MAX_SESSION_POLICY_CHARS: usize = 2048;

/// What an `awsRole` connection asks beyond its role. Every field is optional; the default
/// asks nothing more (a Pod Identity association to the role, as the provider is set).
///
/// In porter.yaml these are porter-identity's own keys on an `awsRole` connection; other
/// readers of porter.yaml ignore keys they do not know:
///
/// ```yaml
/// - type: awsRole
///   role: shop-api                                          # in the cluster's account
///   targetRole: arn:aws:iam::444455556666:role/shop-data    # EKS chains into it
///   disableSessionTags: true
///   sessionPolicy: {"Version": "2012-10-17", "Statement": [...]}
///   mode: podIdentity                                       # or irsa
/// ```
///
/// ```
/// use porter_identity_core::{AwsRoleMode, AwsRoleOptions, Connection, RoleRef};
///
/// let options = AwsRoleOptions::default()
///     .target_role(RoleRef::parse("arn:aws:iam::444455556666:role/shop-data")?)?
///     .session_tags(false);
/// let c = Connection::aws_role_with(RoleRef::parse("shop-api")?, options)?;
/// assert_eq!(c.describe(), "awsRole shop-api -> arn:aws:iam::444455556666:role/shop-data");
/// # Ok::<(), porter_identity_core::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct AwsRoleOptions {
    /// `targetRole`: a role (by full ARN, usually in another account) that EKS Pod Identity
    /// assumes with the association's role, giving the pods the target role's credentials.
    pub target_role: Option<RoleRef>,
    /// `disableSessionTags`: whether EKS Pod Identity leaves out its six session tags. `None`
    /// lets [`session_tags_disabled`](Self::session_tags_disabled) decide.
    pub disable_session_tags: Option<bool>,
    /// `sessionPolicy`: an IAM policy (compact JSON) that narrows what the pods may do with the
    /// role (with a target role: with the target role).
    pub session_policy: Option<String>,
    /// `mode`: how pods get the role; `None` follows the provider's default.
    pub mode: Option<AwsRoleMode>,
}

impl AwsRoleOptions {
    /// Sets the target role, which must be a full role ARN.
    pub fn target_role(mut self, role: RoleRef) -> Result<Self> {
        if !role.is_arn() {
            return Err(target_not_arn(role.as_str()));
        }
        self.target_role = Some(role);
        Ok(self)
    }

    /// Whether EKS Pod Identity adds its session tags (`false` sets `disableSessionTags`).
    pub fn session_tags(mut self, on: bool) -> Self {
        self.disable_session_tags = Some(!on);
        self
    }

    /// Sets the session policy from its JSON text, checked (a JSON object with a `Statement`,
    /// at most [`MAX_SESSION_POLICY_CHARS`] characters once compacted).
    pub fn session_policy(mut self, json: &str) -> Result<Self> {
        let value: Value = serde_json::from_str(json).map_err(|e| {
            Error::invalid_input(
                "awsRole.sessionPolicy",
                format!("is not JSON: {e}"),
                "write the session policy as an IAM policy document: {\"Version\": \"2012-10-17\", \"Statement\": [...]}",
            )
        })?;
        self.session_policy = Some(session_policy_text(&value)?);
        Ok(self)
    }

    /// Sets the mode, overriding the provider's default.
    pub fn mode(mut self, mode: AwsRoleMode) -> Self {
        self.mode = Some(mode);
        self
    }

    /// Whether the association leaves out EKS Pod Identity's session tags: as set, else when a
    /// session policy is given (EKS takes a session policy only with session tags off).
    pub fn session_tags_disabled(&self) -> bool {
        self.disable_session_tags
            .unwrap_or(self.session_policy.is_some())
    }

    /// Whether these options ask anything of a Pod Identity association (and so cannot be
    /// served in IRSA mode): the keys that do, as porter.yaml names them.
    pub fn pod_identity_keys(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        if self.target_role.is_some() {
            keys.push("targetRole");
        }
        if self.disable_session_tags.is_some() {
            keys.push("disableSessionTags");
        }
        if self.session_policy.is_some() {
            keys.push("sessionPolicy");
        }
        keys
    }

    /// Checks the options together: a session policy needs session tags off, and IRSA takes
    /// none of the association's fields.
    pub fn validate(&self) -> Result<()> {
        if self.session_policy.is_some() && self.disable_session_tags == Some(false) {
            return Err(Error::invalid_input(
                "awsRole.disableSessionTags",
                "is false while a sessionPolicy is set; EKS takes a session policy only with session tags disabled",
                "remove `disableSessionTags: false` (a session policy turns session tags off), or remove the sessionPolicy",
            ));
        }
        if self.mode == Some(AwsRoleMode::Irsa) {
            self.check_mode(AwsRoleMode::Irsa)?;
        }
        Ok(())
    }

    /// Checks that the options fit `mode` (the connection's own, or the provider's default).
    pub fn check_mode(&self, mode: AwsRoleMode) -> Result<()> {
        let keys = self.pod_identity_keys();
        if mode == AwsRoleMode::Irsa && !keys.is_empty() {
            return Err(Error::invalid_input(
                format!("awsRole.{}", keys[0]),
                format!(
                    "is set on a connection in IRSA mode; {} belong(s) to an EKS Pod Identity association, and IRSA makes none",
                    keys.join(", ")
                ),
                "use `mode: podIdentity` for a target role, session tags or a session policy; in IRSA mode, name the role the pods assume in `role` and put its limits in its own policies",
            ));
        }
        Ok(())
    }

    /// The session policy as a JSON value, for comparing with what EKS returns (which may
    /// differ in spacing).
    pub fn session_policy_value(&self) -> Option<Value> {
        self.session_policy
            .as_deref()
            .and_then(|p| serde_json::from_str(p).ok())
    }
}

/// A session policy given as a JSON value (porter.yaml may write it as a mapping or as a string
/// of JSON), checked and compacted.
pub(crate) fn session_policy_text(value: &Value) -> Result<String> {
    const FIELD: &str = "awsRole.sessionPolicy";
    const SHAPE: &str = "write the session policy as an IAM policy document: {\"Version\": \"2012-10-17\", \"Statement\": [{\"Effect\": \"Allow\", \"Action\": [...], \"Resource\": [...]}]}";
    let value = match value {
        Value::String(s) => serde_json::from_str(s).map_err(|e| {
            Error::invalid_input(FIELD, format!("is a string that is not JSON: {e}"), SHAPE)
        })?,
        other => other.clone(),
    };
    let Value::Object(doc) = &value else {
        return Err(Error::invalid_input(
            FIELD,
            "is not a policy document (a JSON object)",
            SHAPE,
        ));
    };
    match doc.get("Statement") {
        Some(Value::Array(s)) if !s.is_empty() => {}
        Some(Value::Object(_)) => {}
        _ => {
            return Err(Error::invalid_input(FIELD, "has no Statement", SHAPE));
        }
    }
    let text = value.to_string();
    let chars = text.chars().count();
    if chars > MAX_SESSION_POLICY_CHARS {
        return Err(Error::invalid_input(
            FIELD,
            format!(
                "is {chars} characters once compacted; STS takes at most {MAX_SESSION_POLICY_CHARS}"
            ),
            "shorten the session policy (wildcards in resource ARNs, fewer statements), or put the permissions in the role's own policies",
        ));
    }
    Ok(text)
}

pub(crate) fn target_not_arn(value: &str) -> Error {
    Error::invalid_input(
        "awsRole.targetRole",
        format!("is {value:?}, a role name; a target role must be a full role ARN"),
        "write the target role's ARN as IAM shows it: arn:aws:iam::<account>:role/<name> (it is usually in another account, so a name cannot say which)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_policy_turns_session_tags_off_unless_asked_otherwise() {
        let o = AwsRoleOptions::default();
        assert!(!o.session_tags_disabled());
        let o = o
            .session_policy(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#)
            .unwrap();
        assert!(o.session_tags_disabled());
        let explicit = o.clone().session_tags(true);
        let e = explicit.validate().unwrap_err();
        assert!(e.to_string().contains("awsRole.disableSessionTags"), "{e}");
        assert!(o.validate().is_ok());
    }

    #[test]
    fn session_policies_are_checked_and_compacted() {
        let o = AwsRoleOptions::default()
            .session_policy("{ \"Statement\" : { \"Effect\": \"Allow\" } }")
            .unwrap();
        assert_eq!(
            o.session_policy.as_deref(),
            Some(r#"{"Statement":{"Effect":"Allow"}}"#)
        );
        for bad in ["[]", "{}", "not json", r#"{"Statement":[]}"#] {
            let e = AwsRoleOptions::default().session_policy(bad).unwrap_err();
            assert!(
                e.to_string().contains("awsRole.sessionPolicy"),
                "{bad}: {e}"
            );
        }
        let long = format!(
            r#"{{"Statement":[{{"Effect":"Allow","Action":"s3:GetObject","Resource":"{}"}}]}}"#,
            "x".repeat(2100)
        );
        let e = AwsRoleOptions::default().session_policy(&long).unwrap_err();
        assert!(e.to_string().contains("2048"), "{e}");
    }

    #[test]
    fn a_target_role_is_a_full_arn() {
        let e = AwsRoleOptions::default()
            .target_role(RoleRef::parse("data").unwrap())
            .unwrap_err();
        assert!(e.to_string().contains("awsRole.targetRole"), "{e}");
        assert!(e.to_string().contains("full role ARN"), "{e}");
    }

    #[test]
    fn irsa_takes_no_association_fields() {
        let o = AwsRoleOptions::default()
            .target_role(RoleRef::parse("arn:aws:iam::444455556666:role/data").unwrap())
            .unwrap();
        assert!(o.check_mode(AwsRoleMode::PodIdentity).is_ok());
        let e = o.clone().mode(AwsRoleMode::Irsa).validate().unwrap_err();
        assert!(e.to_string().contains("awsRole.targetRole"), "{e}");
        assert!(e.to_string().contains("mode: podIdentity"), "{e}");
        assert!(
            AwsRoleOptions::default()
                .mode(AwsRoleMode::Irsa)
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn modes_parse_with_a_fix() {
        assert_eq!(
            AwsRoleMode::parse("podIdentity").unwrap(),
            AwsRoleMode::PodIdentity
        );
        let e = AwsRoleMode::parse("IRSA").unwrap_err();
        assert!(e.to_string().contains("mode: irsa"), "{e}");
    }
}
